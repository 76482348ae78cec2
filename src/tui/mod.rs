//! The terminal console: state and pure `update` (app), the key registry (keymap),
//! rows per view (rows), pure rendering (view), theme and widgets, and the runtime
//! below that owns the terminal, reads keys on a thread, receives snapshots from the
//! inventory, carries out effects in their own tasks, and redraws only on change
//! (at most `max_fps` a second, inside synchronized output).

pub mod app;
pub mod editing;
pub mod fixture;
pub mod keymap;
pub mod kiosk;
pub mod rows;
pub mod theme;
pub mod view;
mod view_policy;
pub mod widgets;

use crate::cloud::compute::{RebootKind, ServerAction};
use crate::cloud::Client;
use crate::domain::{Event, Severity};
use crate::inventory::{Inventory, InventoryCommand};
use app::{update, App, Effect, Msg, Pending};
use keymap::{Action, Code, Key, Keymap};
use ratatui::crossterm::event::{
    self, DisableMouseCapture, EnableMouseCapture, Event as CtEvent, KeyCode, KeyEventKind, KeyModifiers, MouseButton,
    MouseEventKind,
};
use ratatui::crossterm::terminal::{
    self, BeginSynchronizedUpdate, EndSynchronizedUpdate, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::crossterm::{cursor, execute};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Everything the console needs to run.
pub struct Console {
    pub clients: Vec<Client>,
    pub keymap: Keymap,
    pub theme: theme::Theme,
    pub ascii: bool,
    pub read_only: bool,
    pub max_fps: u32,
    pub stale_after: u32,
    pub protected_clouds: Vec<String>,
    /// A line kept on screen until the operator hides it (the demo's clouds,
    /// their addresses and where the demo keeps its state).
    pub greeting: Option<String>,
    /// The war room (`--kiosk`): the Overview turns to the next cloud or
    /// application every this many seconds.
    pub kiosk: Option<u64>,
    /// Capture the mouse (`--mouse`, `[ui] mouse`): click selects, wheel scrolls.
    pub mouse: bool,
    /// The engine running in this process, if any.
    pub engine: Option<crate::engine::EngineHandle>,
    /// The store the Events view reads (and operator actions are written to).
    pub store: Option<crate::store::Store>,
    /// The policies directory (new applications are written there).
    pub policies_dir: Option<std::path::PathBuf>,
    /// Alertmanagers the engine sends to: a silence is made there.
    pub alertmanagers: Vec<String>,
}

/// The console's view of the engine's status.
pub fn engine_view(s: &crate::engine::EngineStatus) -> app::EngineView {
    app::EngineView {
        mode: s.mode.clone(),
        paused: s.paused,
        lease_holder: s.lease_holder.clone(),
        observer: s.observer,
        last_tick: s.last_tick,
        plan: s.plans.clone(),
        apps: s
            .apps
            .iter()
            .map(|a| app::EngineApp {
                app: a.app.clone(),
                cloud: a.cloud.clone(),
                desired: a.desired,
                members: a.members,
                ready: a.ready,
                stopped: a.stopped,
                blocked: a.blocked.clone(),
                hold: a.hold.clone(),
                converged: a.converged,
                rollout: a.rollout.clone(),
                unhealthy: a.unhealthy,
                recovery_paused: a.recovery_paused,
            })
            .collect(),
        alerts: s.alerts.clone(),
        policy_errors: s.policy_errors.clone(),
        approval_pending: s.approval_pending,
        scaling: s.scaling.clone(),
        policies: s.policies.clone(),
        holds: s.holds.clone(),
        observing_why: s.observing_why.clone(),
        backups: s.backups.clone(),
        restores: s.restores.clone(),
        placements: s.placements.clone(),
    }
}

/// Translate a terminal key event.
pub fn key_of(k: event::KeyEvent) -> Option<Key> {
    if !matches!(k.kind, KeyEventKind::Press | KeyEventKind::Repeat) {
        return None;
    }
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    let code = match k.code {
        KeyCode::Char(c) => Code::Char(if ctrl { c.to_ascii_lowercase() } else { c }),
        KeyCode::Enter => Code::Enter,
        KeyCode::Esc => Code::Esc,
        KeyCode::Tab => Code::Tab,
        KeyCode::BackTab => Code::BackTab,
        KeyCode::Backspace => Code::Backspace,
        KeyCode::Delete => Code::Delete,
        KeyCode::Up => Code::Up,
        KeyCode::Down => Code::Down,
        KeyCode::Left => Code::Left,
        KeyCode::Right => Code::Right,
        KeyCode::Home => Code::Home,
        KeyCode::End => Code::End,
        KeyCode::PageUp => Code::PageUp,
        KeyCode::PageDown => Code::PageDown,
        KeyCode::F(n) => Code::F(n),
        _ => return None,
    };
    Some(Key { code, ctrl })
}

/// Translate a terminal mouse event (left click and wheel only).
pub fn mouse_of(m: event::MouseEvent) -> Option<Msg> {
    let kind = match m.kind {
        MouseEventKind::Down(MouseButton::Left) => app::MouseKind::Click,
        MouseEventKind::ScrollUp => app::MouseKind::ScrollUp,
        MouseEventKind::ScrollDown => app::MouseKind::ScrollDown,
        _ => return None,
    };
    Some(Msg::Mouse { kind, column: m.column, row: m.row })
}

/// Whether the console captured the mouse (given back however it ends).
static MOUSE_CAPTURED: AtomicBool = AtomicBool::new(false);

/// Puts the terminal back however the console ends (return, error or panic).
pub struct TerminalGuard;

/// Whether the console holds the terminal: its panic hook stays installed after
/// it ends (hooks cannot be taken back from under others), and then only passes
/// panics on.
static CONSOLE_ACTIVE: AtomicBool = AtomicBool::new(false);

fn restore_terminal() {
    let mut out = std::io::stdout();
    if MOUSE_CAPTURED.swap(false, Ordering::SeqCst) {
        if let Err(e) = execute!(out, DisableMouseCapture) {
            tracing::debug!("cannot give the mouse back: {e}");
        }
    }
    // Best effort: the terminal may be gone already (a closed pty).
    if let Err(e) = execute!(out, EndSynchronizedUpdate, LeaveAlternateScreen, cursor::Show) {
        tracing::debug!("cannot restore the screen: {e}");
    }
    if let Err(e) = terminal::disable_raw_mode() {
        tracing::debug!("cannot leave raw mode: {e}");
    }
}

impl TerminalGuard {
    /// Take the terminal. A panic of the console's own thread restores it first,
    /// then reports; a panic of any other task (the engine, a poller) leaves the
    /// terminal alone: its report goes to a crash file and the console shows a
    /// banner (the console goes on, intact).
    pub fn enter() -> std::io::Result<TerminalGuard> {
        terminal::enable_raw_mode()?;
        let mut out = std::io::stdout();
        if let Err(e) = execute!(out, EnterAlternateScreen, cursor::Hide) {
            restore_terminal();
            return Err(e);
        }
        let ui = std::thread::current().id();
        let previous = std::panic::take_hook();
        CONSOLE_ACTIVE.store(true, Ordering::SeqCst);
        std::panic::set_hook(Box::new(move |info| {
            if !CONSOLE_ACTIVE.load(Ordering::SeqCst) {
                return previous(info);
            }
            let report = crash_report(info);
            if std::thread::current().id() == ui {
                restore_terminal();
                if let Some(path) = &report {
                    crate::cli::say(format_args!("stackpilot crashed; the report is in {}", path.display()));
                }
                previous(info);
            } else {
                let whence = report.map(|p| format!(" (report: {})", p.display())).unwrap_or_default();
                crate::inventory::liveness::note_panic(format!("{info}{whence}"));
            }
        }));
        Ok(TerminalGuard)
    }
}

/// Write a crash report into the state directory; its path.
fn crash_report(info: &std::panic::PanicHookInfo<'_>) -> Option<std::path::PathBuf> {
    let dir = crate::config::paths::state_dir(&crate::config::paths::ProcessEnv);
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f");
    let path = dir.join(format!("crash-{stamp}.txt"));
    let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
    let report = format!("stackpilot {} crashed in thread {thread}: {info}\n", env!("CARGO_PKG_VERSION"));
    crate::config::paths::write_private(&path, report.as_bytes()).is_ok().then_some(path)
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        CONSOLE_ACTIVE.store(false, Ordering::SeqCst);
        restore_terminal();
    }
}

/// Mark a member stopped by the operator (or serving again): the engine then
/// never takes the stop for a failure.
async fn mark_member(client: &Client, p: &Pending, state: &str) -> Result<(), crate::cloud::ApiError> {
    if !p.member {
        return Ok(());
    }
    // A quarantined or terminating member keeps its mark: an operator's stop
    // or start must not put it back into the capacity.
    let current = client.compute().get_server(&p.server_id).await?;
    let kept = [crate::domain::names::STATE_QUARANTINED, crate::domain::names::STATE_TERMINATING];
    if current.meta(crate::domain::names::STATE).is_some_and(|s| kept.contains(&s)) {
        return Ok(());
    }
    let mut items = std::collections::BTreeMap::new();
    items.insert(crate::domain::names::STATE.to_string(), state.to_string());
    client.compute().set_metadata(&p.server_id, &items).await
}

/// `y` on a server: its record as the cloud's API wrote it (`GET
/// /servers/{id}`), indented; or the API's error, which names the cloud, the
/// service and the request id.
pub async fn read_server_record(client: Option<&Client>, cloud: String, server_id: String) -> Msg {
    let result = match client {
        Some(c) => c
            .compute()
            .server_record(&server_id)
            .await
            .map(|r| crate::domain::json::indent(&r))
            .map_err(|e| e.to_string()),
        None => Err(format!("no client for cloud {cloud} in this console")),
    };
    Msg::ServerRecord { cloud, server_id, result }
}

/// Carry out a confirmed server action and describe the outcome as an event.
pub async fn perform(client: &Client, p: &Pending) -> Event {
    let now = chrono::Utc::now();
    let c = client.compute();
    use crate::domain::names::{STATE_ACTIVE, STATE_STOPPED_BY_OPERATOR};
    let (name, res) = match p.action {
        Action::Start => {
            // The mark first, while the server is at rest: Nova refuses metadata
            // changes while it powers on (409), and a mark left behind would hide
            // the next unexpected stop from recovery.
            let r = match mark_member(client, p, STATE_ACTIVE).await {
                Ok(()) => c.action(&p.server_id, &ServerAction::Start).await,
                Err(e) => Err(e),
            };
            ("start", r)
        }
        Action::Stop => {
            // The mark first: a member is never seen stopped without it.
            let r = match mark_member(client, p, STATE_STOPPED_BY_OPERATOR).await {
                Ok(()) => c.action(&p.server_id, &ServerAction::Stop).await,
                Err(e) => Err(e),
            };
            ("stop", r)
        }
        Action::Reboot => ("reboot", c.action(&p.server_id, &ServerAction::Reboot(RebootKind::Soft)).await),
        Action::HardReboot => ("reboot --hard", c.action(&p.server_id, &ServerAction::Reboot(RebootKind::Hard)).await),
        Action::Delete => ("delete", c.delete_server(&p.server_id).await),
        other => (keymap::info_of(other).name, Ok(None)),
    };
    let e =
        Event::new(now, &crate::domain::event::operator_actor(), &p.cloud, name, "operator request from the console")
            .target(p.server_name.clone());
    match res {
        Ok(rid) => e.request_id(rid),
        Err(err) => e
            .result("failed")
            .severity(Severity::Warning)
            .request_id(err.request_id.clone())
            .detail(err.message.clone()),
    }
}

/// Record an operator's event in the store (when there is one) and hand it to
/// the console.
async fn record_and_show(store: Option<&crate::store::Store>, tx: &mpsc::Sender<Msg>, mut e: Event) {
    if let Some(s) = store {
        if let Ok(id) = s.add_event(&e) {
            e.id = id;
        }
    }
    if tx.send(Msg::ActionDone(e)).await.is_err() {
        tracing::debug!("the console ended before an action's result");
    }
}

/// Acknowledge or silence an alert: in the store (the notifier reads it), and
/// for a silence in every Alertmanager the engine sends to. The event says
/// what was done and where it failed.
async fn alert_op(
    store: Option<crate::store::Store>,
    alertmanagers: &[String],
    alert: &crate::domain::Alert,
    op: app::AlertOp,
) -> Event {
    use crate::engine::notify::{silence_in_alertmanager, AlertOps, OPS_KEY};
    let now = chrono::Utc::now();
    let actor = crate::domain::event::operator_actor();
    let (what, why) = match op {
        app::AlertOp::Ack => ("alert-ack", "acknowledged: no more repeats".to_string()),
        app::AlertOp::Silence(d) => {
            ("alert-silence", format!("silenced for {}", crate::domain::time::human_age(d.num_seconds())))
        }
    };
    let mut e = Event::new(now, &actor, &alert.cloud, what, why).target(alert.key.clone());
    if let Some(app) = &alert.app {
        e = e.app(app.clone());
    }
    let mut problems = Vec::new();
    if let app::AlertOp::Silence(d) = op {
        for url in alertmanagers {
            match silence_in_alertmanager(url, alert, d, &actor, "silenced from the stackpilot console").await {
                Ok(id) => e = e.detail(format!("Alertmanager silence {id}")),
                Err(err) => problems.push(format!("Alertmanager {url}: {err}")),
            }
        }
    }
    let key = alert.key.clone();
    let task = tokio::task::spawn_blocking(move || -> Result<Option<Event>, String> {
        let Some(s) = store else { return Err("no store in this console".into()) };
        let mut ops: AlertOps = s.control_as(OPS_KEY).map_err(|e| e.to_string())?.unwrap_or_default();
        match op {
            app::AlertOp::Ack => ops.acked.insert(key, now),
            app::AlertOp::Silence(d) => ops.silenced.insert(key, now + d),
        };
        ops.silenced.retain(|_, until| *until > now);
        s.put_control_as(OPS_KEY, &ops, &now).map_err(|e| e.to_string())?;
        Ok(None)
    });
    match task.await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => problems.push(err),
        Err(err) => problems.push(err.to_string()),
    }
    if !problems.is_empty() {
        e = e.result("failed").severity(Severity::Warning).detail(problems.join("; "));
    }
    e
}

fn spawn_effect(effect: Effect, console: &Console, inventory: &Inventory, tx: &mpsc::Sender<Msg>) -> bool {
    let clients = &console.clients;
    match effect {
        Effect::Quit => return false,
        Effect::Refresh { cloud, kind } => inventory.command(InventoryCommand::RefreshNow { cloud, kind }),
        Effect::ServerAction(p) => {
            if let Some(c) = clients.iter().find(|c| c.name() == p.cloud).cloned() {
                let tx = tx.clone();
                let store = console.store.clone();
                tokio::spawn(async move {
                    let e = perform(&c, &p).await;
                    record_and_show(store.as_ref(), &tx, e).await;
                });
            }
        }
        Effect::FetchConsole { cloud, server_id } => {
            if let Some(c) = clients.iter().find(|c| c.name() == cloud).cloned() {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let r = c.compute().console_output(&server_id, Some(200)).await.map_err(|e| e.to_string());
                    if tx.send(Msg::Console { server_id, result: r }).await.is_err() {
                        tracing::debug!("the console ended before a console log came");
                    }
                });
            }
        }
        Effect::FetchServer { cloud, server_id } => {
            let client = clients.iter().find(|c| c.name() == cloud).cloned();
            let tx = tx.clone();
            tokio::spawn(async move {
                if tx.send(read_server_record(client.as_ref(), cloud, server_id).await).await.is_err() {
                    tracing::debug!("the console ended before a server's record came");
                }
            });
        }
        Effect::LoadPolicy { policy_id, app, cloud, file } => {
            let tx = tx.clone();
            let store = console.store.clone();
            tokio::spawn(async move {
                let load = move || {
                    let text = crate::policy::read_policy_file(&file).map_err(|e| e.to_string());
                    let (history, history_error) = match store.as_ref().map(|s| s.policy_history(&policy_id)) {
                        Some(Ok(h)) => (h, None),
                        Some(Err(e)) => (vec![], Some(e.to_string())),
                        None => (vec![], Some("no store in this console".to_string())),
                    };
                    editing::PolicyDoc { policy_id, app, cloud, file, text, history, history_error }
                };
                match tokio::task::spawn_blocking(load).await {
                    Ok(doc) => {
                        if tx.send(Msg::PolicyLoaded(doc)).await.is_err() {
                            tracing::debug!("the console ended before a policy was read");
                        }
                    }
                    Err(e) => tracing::error!("reading a policy failed: {e}"),
                }
            });
        }
        Effect::Preview { file, text } => {
            let tx = tx.clone();
            let (reply_tx, reply) = tokio::sync::oneshot::channel();
            let sent = console.engine.as_ref().map(|h| {
                h.commands.try_send(crate::engine::EngineCommand::Preview {
                    text: text.clone(),
                    file: file.clone(),
                    reply: reply_tx,
                })
            });
            tokio::spawn(async move {
                let result = match sent {
                    Some(Ok(())) => match tokio::time::timeout(Duration::from_secs(20), reply).await {
                        Ok(Ok(r)) => r,
                        Ok(Err(_)) => Err("the engine ended before it answered".into()),
                        Err(_) => Err("the engine did not answer within 20 s".into()),
                    },
                    Some(Err(e)) => Err(format!("the engine did not take the request: {e}")),
                    None => Err("no engine runs in this console".into()),
                };
                if tx.send(Msg::Previewed { file, text, result }).await.is_err() {
                    tracing::debug!("the console ended before a preview came");
                }
            });
        }
        Effect::SavePolicy(req) => {
            let tx = tx.clone();
            let store = console.store.clone();
            let tick = console.engine.as_ref().map(|h| h.commands.clone());
            tokio::spawn(async move {
                let file = req.file.clone();
                let policy_id = crate::policy::parse(&req.text, &req.file).ok().map(|p| p.id);
                let save = move || {
                    let r = match store {
                        Some(s) => crate::engine::policies::save(&s, &req, chrono::Utc::now()).map_err(|e| match e {
                            crate::engine::policies::SaveError::Conflict { on_disk, .. } => {
                                editing::SaveFailure::Conflict { on_disk, yours: req.text.clone(), kept: None }
                            }
                            other => editing::SaveFailure::Other(other.to_string()),
                        }),
                        None => Err(editing::SaveFailure::Other("no store in this console".into())),
                    };
                    // What was not written is kept for the operator.
                    let stem = req.file.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
                    r.map_err(|f| match f {
                        editing::SaveFailure::Conflict { on_disk, yours, .. } => {
                            let kept = keep_text(&stem, "unsaved", &yours);
                            editing::SaveFailure::Conflict { on_disk, yours, kept }
                        }
                        editing::SaveFailure::Other(e) => match keep_text(&stem, "unsaved", &req.text) {
                            Some(p) => {
                                editing::SaveFailure::Other(format!("{e}; your text is kept in {}", p.display()))
                            }
                            None => editing::SaveFailure::Other(e),
                        },
                    })
                };
                let result = tokio::task::spawn_blocking(save)
                    .await
                    .unwrap_or_else(|e| Err(editing::SaveFailure::Other(format!("the write failed: {e}"))));
                // The engine of this console picks the change up now rather than
                // at its next tick (a headless engine reads the file on its own).
                if result.is_ok() {
                    if let Some(Err(e)) = tick.map(|t| t.try_send(crate::engine::EngineCommand::TickNow)) {
                        tracing::debug!("the engine will see the change at its next tick: {e}");
                    }
                }
                if tx.send(Msg::PolicySaved(editing::SavedPolicy { policy_id, file, result })).await.is_err() {
                    tracing::debug!("the console ended before a policy was written");
                }
            });
        }
        // Handled by the console loop, which owns the terminal.
        Effect::EditPolicy { .. } => {}
        Effect::Rollout { cloud, app, cmd } => {
            let (tx, store, read_only) = (tx.clone(), console.store.clone(), console.read_only);
            tokio::spawn(async move {
                let ask = move || -> Result<String, String> {
                    let store = store.ok_or("no store in this console")?;
                    let k = crate::engine::operate::find(&store, &app, Some(&cloud)).map_err(|e| e.to_string())?;
                    let actor = crate::domain::event::operator_actor();
                    crate::engine::operate::request(&store, &k, cmd, &actor, !read_only, chrono::Utc::now())
                        .map_err(|e| e.to_string())
                };
                let msg = match tokio::task::spawn_blocking(ask).await {
                    Ok(Ok(text)) => Msg::Show("rollout".into(), text),
                    Ok(Err(e)) => Msg::Show("rollout: refused".into(), e),
                    Err(e) => Msg::Show("rollout".into(), e.to_string()),
                };
                if tx.send(msg).await.is_err() {
                    tracing::debug!("the console ended before a rollout request was answered");
                }
            });
        }
        Effect::PlanRestore { cloud, backup_id, target } => {
            let Some(c) = clients.iter().find(|c| c.name() == cloud).cloned() else { return true };
            let tx = tx.clone();
            tokio::spawn(async move {
                let actor = crate::domain::event::operator_actor();
                let r = crate::engine::restore::plan_job(&c, &backup_id, target, &actor, 6 * 3600, chrono::Utc::now())
                    .await
                    .map(Box::new);
                if tx.send(Msg::RestorePlanned(r)).await.is_err() {
                    tracing::debug!("the console ended before a restore was planned");
                }
            });
        }
        Effect::QueueRestore(job) => {
            let (tx, store) = (tx.clone(), console.store.clone());
            tokio::spawn(async move {
                let now = chrono::Utc::now();
                let e = Event::new(
                    now,
                    &crate::domain::event::operator_actor(),
                    &job.cloud,
                    "restore",
                    format!(
                        "backup {}: {} step(s) queued for the engine: {}",
                        job.backup_id,
                        job.steps.len(),
                        job.steps.iter().map(|s| s.kind.describe()).collect::<Vec<_>>().join(", ")
                    ),
                )
                .detail(format!("op {}", job.op));
                let e = match store.as_ref().map(|s| crate::engine::restore::save(s, &job, now)) {
                    Some(Ok(())) => e,
                    Some(Err(err)) => e.result("failed").severity(Severity::Warning).detail(err.to_string()),
                    None => e.result("failed").severity(Severity::Warning).detail("no store in this console"),
                };
                record_and_show(store.as_ref(), &tx, e).await;
            });
        }
        Effect::Maintenance { cloud, server_id, on } => {
            if let Some(c) = clients.iter().find(|c| c.name() == cloud).cloned() {
                let (tx, store) = (tx.clone(), console.store.clone());
                tokio::spawn(async move {
                    let mut items = std::collections::BTreeMap::new();
                    items.insert(crate::domain::names::MAINT.to_string(), on.to_string());
                    let r = c.compute().set_metadata(&server_id, &items).await;
                    let what = if on { "maint" } else { "maint-off" };
                    let server = c.compute().get_server(&server_id).await.ok();
                    let name = server.as_ref().map(|s| s.display_name().to_string()).unwrap_or(server_id);
                    let mut e = Event::new(
                        chrono::Utc::now(),
                        &crate::domain::event::operator_actor(),
                        &cloud,
                        what,
                        "operator request from the console",
                    )
                    .target(name);
                    if let Some(app) = server.as_ref().and_then(|s| s.app()) {
                        e = e.app(app.to_string());
                    }
                    let e = match r {
                        Ok(()) => e,
                        Err(err) => e
                            .result("failed")
                            .severity(Severity::Warning)
                            .request_id(err.request_id.clone())
                            .detail(err.message.clone()),
                    };
                    record_and_show(store.as_ref(), &tx, e).await;
                });
            }
        }
        Effect::AlertOp { alert, op } => {
            let (tx, store, ams) = (tx.clone(), console.store.clone(), console.alertmanagers.clone());
            tokio::spawn(async move {
                let e = alert_op(store.clone(), &ams, &alert, op).await;
                record_and_show(store.as_ref(), &tx, e).await;
            });
        }
        Effect::RolloutStatus { cloud, app } => {
            let (tx, store) = (tx.clone(), console.store.clone());
            tokio::spawn(async move {
                let read = move || -> Result<String, String> {
                    let store = store.ok_or("no store in this console")?;
                    let k = crate::engine::operate::find(&store, &app, Some(&cloud)).map_err(|e| e.to_string())?;
                    crate::engine::operate::status(&store, &k).map_err(|e| e.to_string())
                };
                let text = match tokio::task::spawn_blocking(read).await {
                    Ok(Ok(t)) | Ok(Err(t)) => t,
                    Err(e) => e.to_string(),
                };
                if tx.send(Msg::Show("rollout status".into(), text)).await.is_err() {
                    tracing::debug!("the console ended before a rollout status came");
                }
            });
        }
        Effect::EngineControl(cmd) => {
            use crate::engine::EngineCommand as E;
            let tx = tx.clone();
            let what = match &cmd {
                app::EngineCommand::TogglePause => "pause / resume".to_string(),
                app::EngineCommand::ApprovePlan => "approve the plan".to_string(),
                app::EngineCommand::SetMode(m) => format!("mode {}", m.as_str()),
                app::EngineCommand::Retire { app, .. } => format!("retire {app}"),
            };
            let (reply_tx, reply) = tokio::sync::oneshot::channel();
            let sent = console.engine.as_ref().map(|h| {
                h.commands.try_send(match cmd {
                    app::EngineCommand::TogglePause => E::TogglePause,
                    app::EngineCommand::ApprovePlan => E::Approve,
                    app::EngineCommand::SetMode(m) => E::SetMode(m),
                    app::EngineCommand::Retire { cloud, app } => E::Retire { cloud, app, reply: Some(reply_tx) },
                })
            });
            tokio::spawn(async move {
                let e = Event::new(
                    chrono::Utc::now(),
                    &crate::domain::event::operator_actor(),
                    "",
                    "engine",
                    "operator request",
                )
                .target(what);
                let e = match sent {
                    // A command that answers (retire) says how it went.
                    Some(Ok(())) => match reply.await {
                        Ok(Err(why)) => e.result("refused").detail(why.to_string()),
                        Ok(Ok(done)) => e.detail(done),
                        Err(_) => e,
                    },
                    Some(Err(err)) => e.result("failed").detail(format!("the engine did not take it: {err}")),
                    None => e.result("failed").detail("no engine runs in this console"),
                };
                if tx.send(Msg::ActionDone(e)).await.is_err() {
                    tracing::debug!("the console ended before an engine command answered");
                }
            });
        }
    }
    true
}

/// Lets the console hand the terminal's keys to an editor and take them back.
#[derive(Clone, Default)]
struct InputControl {
    /// Set by the console: the input thread stops reading.
    paused: Arc<AtomicBool>,
    /// Set by the input thread once it no longer reads.
    parked: Arc<AtomicBool>,
}

type Term = ratatui::Terminal<ratatui::backend::CrosstermBackend<std::io::Stdout>>;

/// Suspend the console, edit a policy's text in `$VISUAL`/`$EDITOR` until it
/// validates (or the operator quits without a change), and take the terminal
/// back.
async fn edit_in_editor(
    term: &mut Term,
    input: &InputControl,
    file: &std::path::Path,
    policy_id: Option<&str>,
    base: &str,
    snap: Arc<crate::inventory::Snapshot>,
) -> editing::EditOutcome {
    input.paused.store(true, Ordering::SeqCst);
    // The input thread finishes its current wait (at most 200 ms) and parks.
    for _ in 0..100 {
        if input.parked.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    restore_terminal();
    let (file, policy_id, base) = (file.to_path_buf(), policy_id.map(str::to_string), base.to_string());
    let outcome = tokio::task::spawn_blocking(move || editor_session(&file, policy_id.as_deref(), &base, &snap))
        .await
        .unwrap_or_else(|e| editing::EditOutcome::Failed(e.to_string()));
    let back = terminal::enable_raw_mode()
        .and_then(|_| execute!(std::io::stdout(), EnterAlternateScreen, cursor::Hide))
        .and_then(|_| term.clear());
    if let Err(e) = back {
        tracing::error!("cannot take the terminal back after the editor: {e}");
    }
    input.parked.store(false, Ordering::SeqCst);
    input.paused.store(false, Ordering::SeqCst);
    outcome
}

/// Where edits in progress (and edits that could not be saved) are kept: the
/// state directory, private.
fn edits_dir() -> std::path::PathBuf {
    crate::config::paths::state_dir(&crate::config::paths::ProcessEnv).join("edits")
}

/// Keep an operator's text that was not saved (private); its path.
fn keep_text(stem: &str, why: &str, text: &str) -> Option<std::path::PathBuf> {
    let dir = edits_dir();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
    let p = dir.join(format!("{stem}-{why}-{stamp}.toml"));
    let r =
        crate::config::paths::private_dir(&dir).and_then(|_| crate::config::paths::write_private(&p, text.as_bytes()));
    match r {
        Ok(()) => Some(p),
        Err(e) => {
            tracing::error!("cannot keep the unsaved text in {}: {e}", p.display());
            None
        }
    }
}

/// The editor's command line: `$VISUAL`, else `$EDITOR`, else `vi`.
fn editor_command() -> String {
    ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "vi".into())
}

/// The editor loop, as `kubectl edit` does it: a text that does not validate
/// comes back in the editor with the errors on top as comments; saving it
/// unchanged (or quitting) cancels. The policy file itself is never touched
/// here: the change goes to the review first.
fn editor_session(
    file: &std::path::Path,
    policy_id: Option<&str>,
    base: &str,
    snap: &crate::inventory::Snapshot,
) -> editing::EditOutcome {
    use crate::policy::edit::{strip_error_header, with_error_header};
    use editing::EditOutcome;
    let dir = edits_dir();
    if let Err(e) = crate::config::paths::private_dir(&dir) {
        return EditOutcome::Failed(format!("cannot create {}: {e}", dir.display()));
    }
    let stem = file.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "policy".into());
    let tmp = dir.join(format!("{stem}-{}.toml", std::process::id()));
    let mut rejected = false;
    let editor = editor_command();
    let mut shown = base.to_string();
    let outcome = loop {
        if let Err(e) = crate::config::paths::write_private(&tmp, shown.as_bytes()) {
            break EditOutcome::Failed(format!("cannot write {}: {e}", tmp.display()));
        }
        // Through the shell, so that `EDITOR="code -w"` works as it does for git.
        let status =
            std::process::Command::new("sh").arg("-c").arg(format!("{editor} \"$1\"")).arg("sh").arg(&tmp).status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => break EditOutcome::Failed(format!("`{editor}` ended with {s}")),
            Err(e) => break EditOutcome::Failed(format!("cannot run `{editor}`: {e}")),
        }
        let back = match crate::policy::read_policy_file(&tmp) {
            Ok(t) => t,
            Err(e) => break EditOutcome::Failed(format!("cannot read the edited text back: {e}")),
        };
        let text = strip_error_header(&back);
        if text == base {
            break EditOutcome::Unchanged;
        }
        if back == shown {
            // Quit on a text that did not validate: nothing is written, and
            // the operator's work is kept where it can be found.
            break match rejected {
                false => EditOutcome::Unchanged,
                true => EditOutcome::Cancelled(keep_text(&stem, "rejected", &text)),
            };
        }
        match editing::check_candidate(snap, &text, file, policy_id) {
            Ok(_) => break EditOutcome::Changed(text),
            Err(errs) => {
                let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
                shown = with_error_header(&text, &msgs);
                rejected = true;
            }
        }
    };
    if let Err(e) = std::fs::remove_file(&tmp) {
        tracing::debug!("cannot remove {}: {e}", tmp.display());
    }
    outcome
}

/// Why the console ended other than by the operator's choice.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("cannot take over the terminal: {0}; run stackpilot in an interactive terminal, or use a one-shot command (`stackpilot servers`)")]
    NoTerminal(std::io::Error),
    #[error("the terminal is gone: {0}")]
    TerminalGone(String),
    #[error("the terminal failed: {0}")]
    Terminal(std::io::Error),
}

/// What a failed terminal write or read means: the terminal went away (its
/// window closed, the SSH session dropped), or something to report.
fn terminal_error(e: std::io::Error) -> ConsoleError {
    use std::io::ErrorKind;
    // EIO and ENXIO: the pty's other side is gone.
    let gone = matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::NotConnected | ErrorKind::UnexpectedEof)
        || matches!(e.raw_os_error(), Some(5) | Some(6));
    if gone {
        ConsoleError::TerminalGone(e.to_string())
    } else {
        ConsoleError::Terminal(e)
    }
}

/// Run the console until the operator quits or a signal arrives.
pub async fn run(console: Console, inventory: Inventory) -> Result<(), ConsoleError> {
    let mut snap_rx = inventory.subscribe();
    let initial = snap_rx.borrow().clone();
    let mut app = App::new(initial, console.keymap.clone(), console.theme, chrono::Utc::now());
    app.ascii = console.ascii;
    app.read_only = console.read_only;
    app.stale_after = console.stale_after;
    app.protected_clouds = console.protected_clouds.clone();
    app.policies_dir = console.policies_dir.clone();
    // The demo line stays until the operator hides it (Esc on the first view).
    app.notice = console.greeting.clone();
    if let Some(secs) = console.kiosk {
        app.kiosk = Some(app::Kiosk { interval_secs: secs.max(1), step: 0, turned_at: app.now });
    }
    let (w, h) = terminal::size().unwrap_or((80, 24));
    update(&mut app, Msg::Resize(w, h));

    let guard = TerminalGuard::enter().map_err(ConsoleError::NoTerminal)?;
    if console.mouse {
        match execute!(std::io::stdout(), EnableMouseCapture) {
            Ok(()) => MOUSE_CAPTURED.store(true, Ordering::SeqCst),
            Err(e) => tracing::warn!("cannot capture the mouse: {e}"),
        }
    }
    let backend = ratatui::backend::CrosstermBackend::new(std::io::stdout());
    let mut terminal = ratatui::Terminal::new(backend).map_err(ConsoleError::NoTerminal)?;

    let (tx, mut rx) = mpsc::channel::<Msg>(1024);
    let stop = Arc::new(AtomicBool::new(false));
    let input = InputControl::default();
    {
        let tx = tx.clone();
        let stop = stop.clone();
        let input = input.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // While an editor runs, the keys are the editor's.
                if input.paused.load(Ordering::SeqCst) {
                    input.parked.store(true, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                input.parked.store(false, Ordering::SeqCst);
                match event::poll(Duration::from_millis(200)) {
                    Ok(true) => match event::read() {
                        Ok(CtEvent::Key(k)) => {
                            if let Some(k) = key_of(k) {
                                if tx.blocking_send(Msg::Key(k)).is_err() {
                                    return;
                                }
                            }
                        }
                        Ok(CtEvent::Mouse(m)) => {
                            if let Some(m) = mouse_of(m) {
                                if tx.blocking_send(m).is_err() {
                                    return;
                                }
                            }
                        }
                        Ok(CtEvent::Resize(w, h)) => {
                            if tx.blocking_send(Msg::Resize(w, h)).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            // The console cannot read keys any more: it ends.
                            if tx.blocking_send(Msg::InputLost(e.to_string())).is_err() {
                                tracing::debug!("the console ended before its input failed: {e}");
                            }
                            return;
                        }
                    },
                    Ok(false) => {}
                    Err(e) => {
                        if tx.blocking_send(Msg::InputLost(e.to_string())).is_err() {
                            tracing::debug!("the console ended before its input failed: {e}");
                        }
                        return;
                    }
                }
            }
        });
    }
    {
        let tx = tx.clone();
        tokio::spawn(async move {
            crate::cli::wait_for_signal().await;
            if tx.send(Msg::Quit).await.is_err() {
                tracing::debug!("the console ended before the signal");
            }
        });
    }
    // Events written by the engine, other consoles and this one, from the store.
    if let Some(store) = console.store.clone() {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut last = 0i64;
            if let Ok(recent) = store.recent_events(500) {
                last = recent.last().map(|e| e.id).unwrap_or(0);
                if tx.send(Msg::Events(recent)).await.is_err() {
                    return;
                }
            }
            let mut iv = tokio::time::interval(Duration::from_secs(1));
            let mut seen: Option<(crate::engine::notify::DeliveryBook, crate::engine::notify::AlertOps)> = None;
            loop {
                iv.tick().await;
                use crate::engine::notify::{BOOK_KEY, OPS_KEY};
                let book = store.control_as(BOOK_KEY).ok().flatten().unwrap_or_default();
                let ops = store.control_as(OPS_KEY).ok().flatten().unwrap_or_default();
                let now = Some((book, ops));
                if now != seen {
                    seen = now.clone();
                    if let Some((b, o)) = now {
                        if tx.send(Msg::Deliveries(b, o)).await.is_err() {
                            return;
                        }
                    }
                }
                if let Ok(new) = store.events_after(last, 500) {
                    if let Some(l) = new.last() {
                        last = l.id;
                    }
                    if !new.is_empty() && tx.send(Msg::Events(new)).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    // A task that dies (the engine, a poller) becomes a red banner.
    {
        let tx = tx.clone();
        let live = inventory.liveness().clone();
        tokio::spawn(async move {
            let mut told = std::collections::BTreeSet::new();
            let mut changes = live.changes();
            loop {
                for (n, st) in live.dead() {
                    let what = crate::inventory::liveness::describe(&n, &st);
                    if told.insert(n) && tx.send(Msg::TaskDied(what)).await.is_err() {
                        return;
                    }
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        });
    }
    let mut engine_rx = console.engine.as_ref().map(|h| h.status.clone());
    if let Some(rx) = &engine_rx {
        app.engine = Some(engine_view(&rx.borrow()));
    }
    let frame = Duration::from_secs_f64(1.0 / console.max_fps.clamp(1, 120) as f64);
    let mut dirty = true;
    // Only the header's data age moved (a tick): drawn over the last frame.
    let mut header_due = false;
    let mut last_frame: Option<ratatui::buffer::Buffer> = None;
    let mut last_draw = Instant::now() - frame;
    let mut pending_resize: Option<(u16, u16, Instant)> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let far = Duration::from_secs(3600);
    // The kiosk's page turns on its own (no key needed); without a kiosk this
    // timer never fires.
    let mut kiosk_timer = tokio::time::interval(Duration::from_secs(console.kiosk.unwrap_or(3600).max(1)));
    kiosk_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    kiosk_timer.reset();
    let result = loop {
        let mut wake = if dirty || header_due { (last_draw + frame).max(Instant::now()) } else { Instant::now() + far };
        if let Some((_, _, at)) = pending_resize {
            wake = wake.min(at);
        }
        tokio::select! {
            m = rx.recv() => {
                let Some(m) = m else { break Ok(()) };
                if let Msg::InputLost(why) = m {
                    break Err(ConsoleError::TerminalGone(why));
                }
                if let Msg::Resize(w, h) = m {
                    // Debounce: apply the size once the terminal stops moving.
                    pending_resize = Some((w, h, Instant::now() + Duration::from_millis(60)));
                    continue;
                }
                let effects = update(&mut app, m);
                dirty = true;
                let mut go_on = true;
                for e in effects {
                    if let Effect::EditPolicy { policy_id, file, text } = e {
                        let snap = snap_rx.borrow().clone();
                        let outcome = edit_in_editor(&mut terminal, &input, &file, policy_id.as_deref(), &text, snap).await;
                        // Straight into update: this loop is the channel's only reader.
                        for fx in update(&mut app, Msg::Edited { policy_id, file, base: text, outcome }) {
                            go_on &= spawn_effect(fx, &console, &inventory, &tx);
                        }
                        continue;
                    }
                    go_on &= spawn_effect(e, &console, &inventory, &tx);
                }
                if !go_on || app.quit {
                    break Ok(());
                }
            }
            changed = snap_rx.changed() => {
                if changed.is_err() { break Ok(()) }
                let s = snap_rx.borrow_and_update().clone();
                // No redraw for a refresh that brought no change (ages move with the tick).
                dirty |= !app.snapshot.same_data(&s);
                update(&mut app, Msg::Snapshot(s));
            }
            _ = tick.tick() => {
                // Redraw what the clock changed on screen, if anything.
                match app::tick(&mut app, chrono::Utc::now()) {
                    app::Redraw::All => dirty = true,
                    app::Redraw::Header => header_due = true,
                    app::Redraw::Nothing => {}
                }
            }
            _ = kiosk_timer.tick(), if console.kiosk.is_some() => {
                update(&mut app, Msg::KioskNext);
                dirty = true;
            }
            changed = async { match engine_rx.as_mut() { Some(rx) => rx.changed().await, None => std::future::pending().await } } => {
                if changed.is_ok() {
                    if let Some(rx) = engine_rx.as_mut() {
                        let v = engine_view(&rx.borrow_and_update());
                        // A tick that changed nothing on screen draws nothing.
                        dirty |= v.redraws(app.engine.as_ref(), app.view().kind);
                        update(&mut app, Msg::Engine(v));
                    }
                } else {
                    engine_rx = None;
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                if let Some((w, h, at)) = pending_resize {
                    if Instant::now() >= at {
                        pending_resize = None;
                        update(&mut app, Msg::Resize(w, h));
                        if let Err(e) = terminal.autoresize() {
                            break Err(terminal_error(e));
                        }
                        dirty = true;
                    }
                }
                if (dirty || header_due) && Instant::now() >= last_draw + frame {
                    // A terminal that went away (a closed pty) ends the console
                    // cleanly: no crash, no report.
                    let last = if dirty { None } else { last_frame.take() };
                    let r = execute!(terminal.backend_mut(), BeginSynchronizedUpdate)
                        .and_then(|_| {
                            terminal
                                .draw(|f| match last {
                                    Some(b) => view::draw_header_only(f, &app, Some(b)),
                                    None => view::draw(f, &app),
                                })
                                .map(|done| last_frame = Some(done.buffer.clone()))
                        })
                        .and_then(|_| execute!(terminal.backend_mut(), EndSynchronizedUpdate))
                        .and_then(|_| terminal.backend_mut().flush());
                    if let Err(e) = r {
                        break Err(terminal_error(e));
                    }
                    last_draw = Instant::now();
                    dirty = false;
                    header_due = false;
                }
            }
        }
    };
    stop.store(true, Ordering::Relaxed);
    if let Some(h) = &console.engine {
        h.task.abort();
    }
    drop(guard);
    result
}
