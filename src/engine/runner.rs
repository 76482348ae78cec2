//! The engine loop. Every tick: read the policies (once per change), then for
//! each cloud hold (or watch) its lease and run observe → decide → act; raise the
//! engine's alerts, publish the status. The loop never waits on a probe or a
//! metric source: those are observers in the inventory. Commands from the
//! console (mode, pause, approve) arrive between ticks.

use super::act::{carry_out, persist, ActCtx};
use super::backups::BackupStep;
use super::decide::{decide, DecideInput, Decision};
use super::lease::{Lease, LeaseState};
use super::metrics::EngineMetrics;
use super::observe::{catalog_needs, observe, Hold, Observation};
use super::plan::{EngineState, PlanConfig, Step};
use super::policies::{Policies, PolicyBook};
use super::status::{EngineStatus, PlanLines};
use crate::cloud::Client;
use crate::config::settings::EngineMode;
use crate::domain::json::Obj;
use crate::domain::{Alert, AlertBook, AlertChange, Event, Severity, Timestamp};
use crate::inventory::{InventoryLink, Kind, Snapshot};
use crate::store::{PolicyState, Store};
use chrono::Utc;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

pub use super::status::ScalingView;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub mode: EngineMode,
    pub tick: Duration,
    pub concurrency: usize,
    pub plan: PlanConfig,
    pub policies_dir: PathBuf,
    pub state_dir: PathBuf,
    /// `host/pid`, written on members (`stackpilot:engine`) and in events.
    pub engine_id: String,
    pub create_timeout: Duration,
    /// Hold when the server data is older than this.
    pub max_data_age: Duration,
    /// Gnocchi granularity the inventory reads (seconds): samples older than twice
    /// this are missing unless a metric sets `max_staleness`.
    pub metrics_granularity: u32,
    /// May take the lease and act; a read-only console only observes.
    pub may_act: bool,
    /// Where alerts go besides the console (`[alerting]`), or why that could not be set up.
    pub notify: Result<super::notify::NotifyConfig, String>,
}

impl EngineConfig {
    pub fn from_settings(
        s: &crate::config::settings::EngineSettings,
        policies_dir: PathBuf,
        state_dir: PathBuf,
    ) -> EngineConfig {
        EngineConfig {
            mode: s.mode,
            tick: s.tick.0,
            concurrency: s.concurrency,
            plan: PlanConfig {
                create_visibility_timeout: s.create_visibility_timeout.chrono(),
                build_timeout: s.build_timeout.chrono(),
                orphan_grace: s.orphan_grace.chrono(),
                ..PlanConfig::default()
            },
            policies_dir,
            state_dir,
            engine_id: engine_id(),
            create_timeout: Duration::from_secs(30),
            max_data_age: Duration::from_secs(120),
            metrics_granularity: 60,
            may_act: true,
            notify: Ok(Default::default()),
        }
    }
}

impl EngineConfig {
    /// The engine's configuration from the whole of `config.toml`: server data
    /// counts as stale after three refreshes (at least two minutes).
    pub fn for_settings(s: &crate::config::Settings, policies_dir: PathBuf, state_dir: PathBuf) -> EngineConfig {
        let mut c = EngineConfig::from_settings(&s.engine, policies_dir, state_dir);
        c.metrics_granularity = s.metrics.granularity;
        c.max_data_age = (s.refresh.servers.0 * 3).max(Duration::from_secs(120));
        c.notify = super::notify::NotifyConfig::from_settings(&s.alerting);
        c
    }
}

pub fn engine_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into());
    format!("{host}/{}", std::process::id())
}

#[derive(Debug)]
pub enum EngineCommand {
    SetMode(EngineMode),
    TogglePause,
    /// Carry out the next plan once (dry-run mode).
    Approve,
    TickNow,
    /// An operator retires an application (its members will be removed); the
    /// answer says what happened or why not.
    Retire {
        cloud: String,
        app: String,
        reply: Option<tokio::sync::oneshot::Sender<Result<String, super::policies::RetireError>>>,
    },
    /// What a changed policy text would make the engine do now (nothing is
    /// recorded or carried out, and no tick follows).
    Preview {
        text: String,
        file: PathBuf,
        reply: tokio::sync::oneshot::Sender<Result<super::preview::Preview, String>>,
    },
}

pub struct EngineHandle {
    pub status: watch::Receiver<EngineStatus>,
    pub commands: mpsc::Sender<EngineCommand>,
    pub task: tokio::task::JoinHandle<()>,
}

/// One cloud as the engine keeps it between ticks.
struct CloudEngine {
    name: String,
    client: Client,
    lease: Lease,
    /// `None` until read from the store (the engine does not act without it).
    state: Option<EngineState>,
    /// The last lease state, to log changes once.
    lease_seen: Option<LeaseState>,
}

pub struct Engine;

/// The running loop's state.
struct Runner {
    cfg: EngineConfig,
    clouds: Vec<CloudEngine>,
    store: Store,
    metrics: Arc<EngineMetrics>,
    link: InventoryLink,
    policies: Policies,
    book: PolicyBook,
    alerts: AlertBook,
    mode: EngineMode,
    paused: bool,
    approved: bool,
    ticks: u64,
    actor: String,
    started: std::time::Instant,
    /// Why the current tick could not act, for `/healthz`.
    problems: Vec<String>,
    /// The persisted alert book was taken over (once this engine holds a lease).
    alerts_loaded: bool,
    /// The alerts for the notifier (sent while this engine holds a lease: an
    /// observer never notifies).
    alerts_out: Option<watch::Sender<Option<Vec<Alert>>>>,
    /// Backups per cloud: when the last pass ran and whether work was in
    /// flight, what it found (the view and alerts stay until the next pass).
    backup_passes: std::collections::BTreeMap<String, BackupPassState>,
    /// Per policy id (one per location of an app): its members, those ready
    /// and healthy, and its capacity block, as last decided on fresh data (none
    /// while its cloud's data cannot be trusted), for placements across clouds.
    located: std::collections::BTreeMap<String, (u32, u32, Option<String>)>,
}

/// The last backup pass of a cloud.
#[derive(Default)]
struct BackupPassState {
    at: Option<(std::time::Instant, Timestamp)>,
    busy: bool,
    views: Vec<super::backups::VolumeBackups>,
    alerts: Vec<Alert>,
    plans: Vec<PlanLines>,
}

/// An idle cloud's backups are looked at this often (in flight: every tick).
const BACKUP_IDLE_PASS: Duration = Duration::from_secs(60);

impl Engine {
    /// Start the engine for every cloud it has a client for.
    pub fn start(
        cfg: EngineConfig,
        clients: Vec<Client>,
        snapshots: watch::Receiver<Arc<Snapshot>>,
        link: InventoryLink,
        store: Store,
        metrics: Arc<EngineMetrics>,
    ) -> EngineHandle {
        let (status_tx, status_rx) =
            watch::channel(EngineStatus { mode: cfg.mode.as_str().into(), ..Default::default() });
        let (cmd_tx, cmd_rx) = mpsc::channel::<EngineCommand>(32);
        let guard = link.liveness.register("engine");
        metrics.started(cfg.tick, link.liveness.clone());
        // `None` until this engine holds a lease (and whenever it does not):
        // only the acting engine notifies, and never from an empty start.
        let (alerts_tx, alerts_rx) = watch::channel(None);
        if let Ok(n) = cfg.notify.clone() {
            if !n.receivers.is_empty() {
                let (store, guard) = (store.clone(), link.liveness.register("alert notifier"));
                tokio::spawn(async move {
                    let _guard = guard;
                    super::notify::run(n, store, alerts_rx).await;
                });
            }
        }
        let task = tokio::spawn(async move {
            let _guard = guard;
            let mut r = Runner::new(cfg, clients, store, metrics, link);
            r.alerts_out = Some(alerts_tx);
            r.run(snapshots, status_tx, cmd_rx).await;
        });
        EngineHandle { status: status_rx, commands: cmd_tx, task }
    }
}

impl Runner {
    fn new(
        cfg: EngineConfig,
        clients: Vec<Client>,
        store: Store,
        metrics: Arc<EngineMetrics>,
        link: InventoryLink,
    ) -> Runner {
        let clouds = clients
            .into_iter()
            .map(|c| CloudEngine {
                name: c.name().to_string(),
                lease: Lease::new(&cfg.state_dir, c.name()),
                client: c,
                state: None,
                lease_seen: None,
            })
            .collect();
        let paused = match store.control_as::<bool>("engine-paused") {
            Ok(p) => p.unwrap_or(false),
            Err(e) => {
                // Unknown: stay paused rather than act against an operator's pause.
                tracing::error!("{e}; the engine starts paused");
                true
            }
        };
        let actor = format!("engine:{}", cfg.engine_id);
        Runner {
            mode: cfg.mode,
            cfg,
            clouds,
            store,
            metrics,
            link,
            policies: Policies::default(),
            book: PolicyBook::default(),
            alerts: AlertBook::default(),
            paused,
            approved: false,
            ticks: 0,
            actor,
            started: std::time::Instant::now(),
            problems: vec![],
            alerts_loaded: false,
            alerts_out: None,
            backup_passes: Default::default(),
            located: Default::default(),
        }
    }

    async fn run(
        &mut self,
        snapshots: watch::Receiver<Arc<Snapshot>>,
        status_tx: watch::Sender<EngineStatus>,
        mut cmd_rx: mpsc::Receiver<EngineCommand>,
    ) {
        // The first tick waits (a tick at most) for every cloud's first listing
        // of its servers and of the catalog policies resolve names against, or
        // their first failures: on an inventory still empty it could only hold,
        // and new members would come a tick later.
        let mut first = snapshots.clone();
        let kinds = [Kind::Servers, Kind::Flavors, Kind::Images, Kind::Networks, Kind::Keypairs, Kind::SecurityGroups];
        let listed = |s: &Arc<Snapshot>| {
            s.clouds
                .iter()
                .all(|c| kinds.iter().all(|k| c.polls.get(k).is_some_and(|p| p.last_ok.is_some() || p.failures > 0)))
        };
        if tokio::time::timeout(self.cfg.tick, first.wait_for(listed)).await.is_err() {
            tracing::debug!("the first tick starts before every cloud was listed");
        }
        let mut iv = tokio::time::interval(self.cfg.tick);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = iv.tick() => {}
                c = cmd_rx.recv() => match c {
                    None => return,
                    Some(EngineCommand::Preview { text, file, reply }) => {
                        let snap = snapshots.borrow().clone();
                        let r = self.preview(&snap, &text, &file);
                        if reply.send(r).is_err() {
                            tracing::debug!("a preview was no longer awaited");
                        }
                        continue;
                    }
                    Some(c) => self.command(c),
                }
            }
            let snap = snapshots.borrow().clone();
            let status = self.tick(&snap).await;
            if status_tx.send(status).is_err() {
                return;
            }
        }
    }

    fn event(&self, e: Event) {
        if let Err(err) = self.store.add_event(&e) {
            tracing::error!("cannot record an event: {err}");
        }
    }

    fn command(&mut self, c: EngineCommand) {
        let now = Utc::now();
        let op = crate::domain::event::operator_actor();
        match c {
            EngineCommand::SetMode(m) => {
                self.event(Event::new(
                    now,
                    &op,
                    "",
                    "set-mode",
                    format!("engine mode {} → {}", self.mode.as_str(), m.as_str()),
                ));
                self.mode = m;
            }
            EngineCommand::TogglePause => {
                self.paused = !self.paused;
                if let Err(e) = self.store.put_control("engine-paused", &crate::domain::json::json!(self.paused), &now)
                {
                    tracing::error!("cannot record the pause: {e}");
                }
                let what = if self.paused { "pause-engine" } else { "resume-engine" };
                self.event(Event::new(now, &op, "", what, "operator request from the console"));
            }
            EngineCommand::Approve => {
                let acting = self.clouds.iter().any(|c| c.lease_seen == Some(LeaseState::Held));
                if acting {
                    self.approved = true;
                } else if let Err(e) = self.store.put_control("engine-approve", &crate::domain::json::json!(true), &now)
                {
                    // The engine that acts reads the approval from the store.
                    tracing::error!("cannot pass the approval on to the acting engine: {e}");
                }
                self.event(Event::new(now, &op, "", "approve-plan", "operator approved the plan shown"));
            }
            EngineCommand::TickNow | EngineCommand::Preview { .. } => {}
            EngineCommand::Retire { cloud, app, reply } => {
                let r = if !self.cfg.may_act {
                    Err(super::policies::RetireError::ReadOnly)
                } else {
                    super::policies::retire(&self.store, &self.cfg.policies_dir, &app, Some(&cloud), &op, now)
                        .map(|k| format!("{} on {}: its members will be removed", k.app, k.cloud))
                };
                if let Err(why) = &r {
                    self.event(Event::new(now, &op, &cloud, "retire", why.to_string()).app(app).result("refused"));
                }
                if let Some(tx) = reply {
                    if tx.send(r).is_err() {
                        tracing::debug!("the retire request was no longer awaited");
                    }
                }
            }
        }
    }

    /// One tick over every cloud.
    async fn tick(&mut self, snap: &Snapshot) -> EngineStatus {
        crate::inventory::liveness::injected_panic("engine");
        let now = Utc::now();
        let mut status = EngineStatus { mode: self.mode.as_str().into(), paused: self.paused, ..Default::default() };
        if self.mode == EngineMode::Off {
            self.metrics.ticked(vec![], vec![]);
            return status;
        }
        self.ticks += 1;
        status.ticks = self.ticks;
        status.last_tick = Some(now);
        let execute_now =
            !self.paused && (self.mode == EngineMode::Auto || self.mode == EngineMode::DryRun && self.approved);
        self.problems.clear();
        let acting: Vec<bool> = (0..self.clouds.len()).map(|i| self.lease(i, now, &mut status)).collect();
        let holding = acting.iter().any(|a| *a);
        if holding && !self.alerts_loaded {
            // The acting engine owns the alerts: their SINCE survives a restart.
            match self.store.control_as::<AlertBook>("engine-alerts") {
                Ok(b) => self.alerts = b.unwrap_or_default(),
                Err(e) => tracing::error!("the alerts of the last run cannot be read: {e}"),
            }
            self.alerts_loaded = true;
        }
        if holding && matches!(self.store.control_as::<bool>("engine-approve"), Ok(Some(true))) {
            // An approval given in a console whose engine only observes.
            match self.store.put_control("engine-approve", &crate::domain::json::json!(false), &now) {
                Ok(()) => self.approved = true,
                Err(e) => tracing::error!("cannot take an approval from the store: {e}"),
            }
        }
        self.alerts.begin();
        self.lease_alerts(now);
        let policies_ok = self.read_policies(now, holding);
        if policies_ok {
            self.placement_pass(snap, now, &acting, &mut status);
        }
        let (standalone, standalone_errors) = super::backup_run::read_standalone(&self.cfg.policies_dir);
        for e in standalone_errors {
            status.policy_errors.push(e.clone());
            self.alerts
                .raise(now, Alert::new("policy-invalid", format!("backup-policy:{e}"), "", Severity::Warning, e));
        }
        for (i, act) in acting.iter().enumerate() {
            if !*act {
                // Not decided here this tick: what placements count on must be read again.
                if let Some(name) = self.clouds.get(i).map(|c| c.name.clone()) {
                    let ids: Vec<String> = self.book.of_cloud(&name).map(|e| e.id.clone()).collect();
                    for id in ids {
                        self.located.remove(&id);
                    }
                }
            }
            if *act {
                self.tick_cloud(i, snap, execute_now && policies_ok, now, &mut status).await;
                self.backups(i, snap, &standalone, execute_now && policies_ok, now, &mut status).await;
                self.restores(i, execute_now && policies_ok, now, &mut status).await;
            }
        }
        if execute_now && self.approved {
            self.approved = false;
        }
        status.approval_pending |= self.mode == EngineMode::DryRun && status.plans.iter().any(|p| !p.lines.is_empty());
        self.engine_alerts(now, holding);
        status.alerts = self.alerts.alerts();
        if !holding {
            // An observer shows the acting engine's alerts.
            if let Ok(Some(b)) = self.store.control_as::<AlertBook>("engine-alerts") {
                let mine: BTreeSet<String> = status.alerts.iter().map(|a| a.key.clone()).collect();
                status.alerts.extend(b.alerts().into_iter().filter(|a| !mine.contains(&a.key)));
            }
        }
        crate::domain::sort::sort_by(&mut status.policies, |a, b| (&a.cloud, &a.app).cmp(&(&b.cloud, &b.app)));
        for p in status.policies.iter_mut() {
            if let Ok(Some((at, by))) = self.store.last_policy_change(&p.policy_id) {
                (p.changed_at, p.changed_by) = (Some(at), by);
            }
        }
        let observing: Vec<String> = status.observing_why.iter().cloned().collect();
        self.metrics.ticked(std::mem::take(&mut self.problems), observing);
        // `/metrics` carries what the inventory observed too (unreachable APIs, auth).
        let mut all = status.alerts.clone();
        all.extend(snap.alerts.iter().cloned());
        self.metrics.set_alerts(&all);
        if holding {
            // What leaves follows each app's `[alerts]` rules (muted kinds stay in the console).
            let all: Vec<Alert> = all
                .iter()
                .filter_map(|a| {
                    let rules = a.app.as_ref().and_then(|app| {
                        self.book.of_cloud(&a.cloud).find(|e| &e.app == app).and_then(|e| e.policy.as_ref())
                    });
                    match rules {
                        Some(p) => p.spec.alerts.apply(a),
                        None => Some(a.clone()),
                    }
                })
                .collect();
            if let Some(tx) = &self.alerts_out {
                tx.send_if_modified(|cur| {
                    let changed = cur.as_ref() != Some(&all);
                    if changed {
                        *cur = Some(all);
                    }
                    changed
                });
            }
        } else if let Some(tx) = &self.alerts_out {
            // Not acting (lease lost or held elsewhere): the notifier pauses,
            // resolving nothing; the holder speaks for the alerts.
            tx.send_if_modified(|cur| cur.take().is_some());
        }
        self.metrics.ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        status
    }

    /// Read the policies and record what changed; false when the store failed
    /// (the book of the last tick is kept for display, and nothing acts).
    fn read_policies(&mut self, now: Timestamp, write: bool) -> bool {
        match self.policies.refresh(&self.cfg.policies_dir, &self.store, &self.actor, now, write) {
            Ok((book, events)) => {
                for e in events {
                    self.event(e);
                }
                self.book = book;
                true
            }
            Err(e) => {
                self.alerts.keep_prefix("policy:");
                self.problems.push(e.to_string());
                self.alerts.raise(now, Alert::new("store-unavailable", "store", "", Severity::Critical, e.to_string()));
                false
            }
        }
    }

    /// Apps placed on several clouds: each location's share this tick (moved
    /// off a location that failed past its grace, back once it serves again).
    /// The state lives in the store; an app whose state cannot be read or
    /// written holds at every location (a share is never guessed). Only an
    /// engine holding the lease of every location of an app moves its shares;
    /// one holding some of them follows the stored state.
    fn placement_pass(&mut self, snap: &Snapshot, now: Timestamp, acting: &[bool], status: &mut EngineStatus) {
        use super::placement::{step, LocationFacts, PlacementState};
        let mut groups: BTreeMap<String, crate::policy::Policy> = BTreeMap::new();
        // The placements in force (a location no longer listed is held as it was).
        let in_force = self.book.entries.iter().filter(|e| matches!(e.state, PolicyState::Ok | PolicyState::Invalid));
        for e in in_force {
            if let Some(p) =
                e.policy.as_ref().filter(|p| p.spec.placement.as_ref().is_some_and(|x| x.locations.len() > 1))
            {
                // By app: an edit of the locations keeps what was known of those that stay.
                let key = format!("placement:{}", p.name());
                groups.entry(key).or_insert_with(|| p.clone());
            }
        }
        for (key, p) in groups {
            let Some(pl) = p.spec.placement.clone() else { continue };
            let served = |c: &str| self.clouds.iter().position(|x| x.name == c);
            let write = pl.locations.iter().all(|l| served(&l.cloud).is_some_and(|i| acting.get(i) == Some(&true)));
            let mut facts: BTreeMap<String, LocationFacts> = BTreeMap::new();
            for l in &pl.locations {
                if served(&l.cloud).is_none() {
                    // Unknown, not failed: nothing moves on its account.
                    let msg = format!(
                        "{}: `{}` is a location of the app but not a cloud this engine serves; restart the engine with it (its share stays where it was)",
                        p.name(),
                        l.cloud
                    );
                    let key = format!("{}:placement-unserved:{}", l.cloud, p.name());
                    self.alerts.raise(
                        now,
                        Alert::new("placement-unserved", key, &l.cloud, Severity::Warning, msg)
                            .app(Some(p.name().to_string())),
                    );
                    continue;
                }
                let id = crate::policy::policy_id(&l.cloud, p.name());
                let (members, ready, blocked) = self.located.get(&id).cloned().unwrap_or_default();
                let cloud = snap.clouds.iter().find(|c| c.name == l.cloud);
                let poll = cloud.map(|c| c.servers_poll()).unwrap_or_default();
                let age = poll.last_ok.map(|t| (now - t).to_std().unwrap_or_default());
                let failing = match (cloud, age) {
                    (Some(c), _) if c.unreachable() => {
                        Some(format!("unreachable: {}", poll.last_error.unwrap_or_default()))
                    }
                    // Failing polls in a row (5xx, cut connections, timeouts).
                    _ if poll.failures >= 3 => {
                        Some(format!("failing: {}", poll.last_error.clone().unwrap_or_default()))
                    }
                    (_, Some(a)) if a > self.cfg.max_data_age => {
                        Some(format!("no answer for {}", crate::domain::time::human_age(a.as_secs() as i64)))
                    }
                    (_, None) if self.started.elapsed() > self.cfg.max_data_age => Some("never answered".to_string()),
                    _ => None,
                };
                // Capacity only: a bad spec is the operator's to fix, not a reason to move.
                let blocked = blocked.filter(|b| b.starts_with("capacity blocked"));
                facts.insert(l.cloud.clone(), LocationFacts { failing, blocked, members, ready });
            }
            let prev = match self.store.control_as::<PlacementState>(&key) {
                Ok(s) => s.unwrap_or_default(),
                Err(e) => {
                    self.hold_placed(&p, &format!("the placement state cannot be read: {e}"), now);
                    continue;
                }
            };
            let mut out = step(p.name(), &pl, p.app_desired, &prev, &facts, now);
            if !write {
                // Not every location's lease is here: the stored state decides, unchanged.
                let failed: Vec<bool> =
                    pl.locations.iter().map(|l| prev.locations.get(&l.cloud).is_some_and(|x| x.failed_over)).collect();
                out.shares =
                    pl.locations.iter().map(|l| l.cloud.clone()).zip(pl.shares(p.app_desired, &failed)).collect();
                out.moves.clear();
                out.failed_over.clear();
            }
            if write {
                // The events first: a crash between the two repeats an event, never loses one.
                for m in &out.moves {
                    self.event(
                        Event::new(now, &self.actor.clone(), &m.cloud, m.action, m.reason.clone())
                            .app(p.name().to_string())
                            .severity(m.severity),
                    );
                }
            }
            if write && out.state != prev {
                if let Err(e) = self.store.put_control(&key, &crate::domain::json::json!(out.state), &now) {
                    self.hold_placed(&p, &format!("the placement state cannot be written: {e}"), now);
                    continue;
                }
            }
            for (cloud, why) in &out.failed_over {
                let msg = format!("{}: `{cloud}` failed over ({why}); its share runs on the other locations", p.name());
                let key = format!("{cloud}:placement:{}", p.name());
                self.alerts.raise(
                    now,
                    Alert::new("placement-failover", key, cloud, Severity::Warning, msg)
                        .app(Some(p.name().to_string())),
                );
            }
            let line: Vec<String> = out.shares.iter().map(|(c, n)| format!("{c} {n}")).collect();
            status.placements.push((p.name().to_string(), line.join(" · ")));
            for (cloud, n) in out.shares {
                let id = crate::policy::policy_id(&cloud, p.name());
                if let Some(e) = self.book.entries.iter_mut().find(|e| e.id == id) {
                    if let Some(x) = e.policy.as_mut().filter(|x| x.spec.placement.as_ref() == Some(&pl)) {
                        x.spec.deploy.capacity = crate::policy::Capacity { min: n, desired: n, max: n };
                    }
                }
            }
        }
    }

    /// Every location of a placed app holds (its share is unknown).
    fn hold_placed(&mut self, p: &crate::policy::Policy, why: &str, now: Timestamp) {
        self.problems.push(format!("{}: {why}", p.name()));
        self.alerts.raise(now, Alert::new("store-unavailable", "store", "", Severity::Critical, why.to_string()));
        for e in self.book.entries.iter_mut().filter(|e| e.app == p.name() && p.locations().contains(&e.cloud)) {
            e.state = crate::store::PolicyState::Missing;
            e.problems.insert(0, why.to_string());
        }
    }

    /// One cloud: lease, observe, decide, act.
    async fn tick_cloud(
        &mut self,
        i: usize,
        snap: &Snapshot,
        may_execute: bool,
        now: Timestamp,
        status: &mut EngineStatus,
    ) {
        let Some(name) = self.clouds.get(i).map(|c| c.name.clone()) else { return };
        let entries: Vec<super::policies::PolicyEntry> = self.book.of_cloud(&name).cloned().collect();
        let state = self.engine_state(i, &name);
        let pids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        let needs = catalog_needs(entries.iter().filter_map(|e| e.policy.as_ref()));
        let obs = observe(&self.cfg, snap, &name, &self.store, state.as_ref(), &pids, &needs, now);
        for h in &obs.holds {
            status.holds.push((name.clone(), h.describe(&name)));
            // The first listing may take a while after a start; not forever.
            let late = matches!(h, Hold::ServersUnread) && self.started.elapsed() > self.cfg.max_data_age;
            if h.unhealthy() || late {
                self.problems.push(format!("{name}: {}", h.describe(&name)));
            }
        }
        let (Some(sv), Some(state)) = (obs.store.as_ref(), state.as_ref()) else {
            for pid in &pids {
                self.located.remove(pid);
            }
            // Nothing could be decided: what was alerted for this cloud stays as it was.
            self.alerts.keep_prefix(&format!("{name}:"));
            self.hold_alerts(&name, &obs, now);
            return;
        };
        let refs: Vec<&super::policies::PolicyEntry> = entries.iter().collect();
        let d = decide(&DecideInput {
            obs: &obs,
            store: sv,
            state,
            entries: &refs,
            plan_cfg: &self.cfg.plan,
            actor: &self.actor,
            granularity: self.cfg.metrics_granularity,
        });
        self.link.observe(&name, d.targets.clone());
        // What placements across clouds count on: only what was decided on data
        // that can be trusted (a location that answers again is read first).
        let answering =
            snap.clouds.iter().find(|c| c.name == name).is_some_and(|c| {
                !c.unreachable() && c.servers_poll().failures == 0 && c.servers_poll().last_ok.is_some()
            });
        for a in &d.plan.apps {
            if obs.acting_allowed() && answering {
                let healthy = a.ready.saturating_sub(a.unhealthy);
                self.located.insert(a.policy_id.clone(), (a.members, healthy, a.blocked.clone()));
            } else {
                self.located.remove(&a.policy_id);
            }
        }
        self.show(&name, &d, status);
        self.decision_alerts(&name, &obs, &d, now);
        self.hold_alerts(&name, &obs, now);
        self.act(i, &name, obs, d, may_execute, now, status).await;
    }

    /// The backup pass of a cloud, when it is time: every tick while backups,
    /// snapshots or deletes are in flight, when a slot opens, else once a
    /// minute. Its alerts and view stay up between passes.
    async fn backups(
        &mut self,
        i: usize,
        snap: &Snapshot,
        standalone: &[crate::policy::backup::BackupPolicy],
        may_execute: bool,
        now: Timestamp,
        status: &mut EngineStatus,
    ) {
        let Some((name, client)) = self.clouds.get(i).map(|c| (c.name.clone(), c.client.clone())) else { return };
        let policies = super::backup_run::policies_of(&self.book, standalone, &name);
        let st = self.backup_passes.entry(name.clone()).or_default();
        if policies.is_empty() {
            *st = BackupPassState::default();
            return;
        }
        let slot_opened = policies.iter().any(|p| match (p.spec.due(&now), st.at) {
            (Some(crate::policy::backup::Slot::Due(t)), Some((_, last))) => t > last,
            (_, None) => true,
            _ => false,
        });
        let due = st.busy || slot_opened || st.at.is_none_or(|(at, _)| at.elapsed() >= BACKUP_IDLE_PASS);
        if due {
            let r = self.backup_pass(&client, &name, snap, &policies, may_execute, now).await;
            let st = self.backup_passes.entry(name.clone()).or_default();
            match r {
                Ok(new) => *st = new,
                Err(why) => {
                    // Nothing was done on unread data; the pass is tried again next tick.
                    st.busy = true;
                    st.alerts = vec![Alert::new(
                        "backup-hold",
                        format!("{name}:backup:hold"),
                        &name,
                        Severity::Warning,
                        format!("backups hold (nothing created or deleted): {why}"),
                    )];
                }
            }
        }
        if let Some(st) = self.backup_passes.get(&name) {
            for a in &st.alerts {
                self.alerts.raise(now, a.clone());
            }
            status.backups.extend(st.views.iter().map(|v| (name.clone(), v.clone())));
            status.plans.extend(st.plans.iter().cloned());
        }
    }

    /// Carry restore jobs on (each step written down first), and alert on the
    /// ones that failed in the last day.
    async fn restores(&mut self, i: usize, may_execute: bool, now: Timestamp, status: &mut EngineStatus) {
        use super::restore::{self, JobStatus};
        let Some((name, client)) = self.clouds.get(i).map(|c| (c.name.clone(), c.client.clone())) else { return };
        let jobs = match restore::jobs(&self.store, &name) {
            Ok(j) => j,
            Err(e) => {
                self.problems.push(format!("{name}: restore jobs: {e}"));
                return;
            }
        };
        for mut job in jobs {
            if may_execute && restore::may_run(&job, &self.actor, now) {
                if let Err(e) = restore::advance(&client, &self.store, &mut job, &self.actor, now).await {
                    self.problems.push(format!("{name}: restore {}: {e}", job.op));
                }
                // Running, or just ended: the console's volumes follow.
                if (now - job.updated_at).num_seconds() < 10 || job.status == JobStatus::Running {
                    self.link.refresh(&name, Kind::Volumes);
                    self.link.refresh(&name, Kind::Backups);
                }
            }
            if job.status == JobStatus::Running || (now - job.updated_at).num_minutes() < 60 {
                status.restores.push(job.clone());
            }
            if job.status == JobStatus::Failed && (now - job.updated_at).num_hours() < 24 {
                let what = if job.verify_of.is_some() { "restore test" } else { "restore" };
                self.alerts.raise(
                    now,
                    Alert::new(
                        "restore-failed",
                        format!("{name}:restore:{}", job.op),
                        &name,
                        Severity::Critical,
                        format!("{what} of backup {} failed: {}", job.backup_id, job.error.clone().unwrap_or_default()),
                    ),
                );
            }
        }
    }

    async fn backup_pass(
        &mut self,
        client: &Client,
        name: &str,
        snap: &Snapshot,
        policies: &[crate::policy::backup::BackupPolicy],
        may_execute: bool,
        now: Timestamp,
    ) -> Result<BackupPassState, String> {
        use super::backup_run;
        let mut since = std::collections::BTreeMap::new();
        for p in policies {
            since.insert(p.id.clone(), backup_run::since(&self.store, &p.id, now)?);
        }
        // Members of each application, for `attached = true` (from the inventory).
        let mut members: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
        if let Some(cs) = snap.cloud(name) {
            for p in policies.iter().filter(|p| p.app.is_some() && p.spec.select.attached) {
                let tag = crate::domain::names::app_tag(&p.id);
                let ids = cs.servers.iter().filter(|s| s.has_tag(&tag)).map(|s| s.id.clone()).collect();
                members.insert(p.app.clone().unwrap_or_default(), ids);
            }
        }
        let cloud = backup_run::read(client).await?;
        let planned = backup_run::plan_all(policies, &cloud, &members, &since, now, None);
        let mut st = BackupPassState { at: Some((std::time::Instant::now(), now)), ..Default::default() };
        let dry: BTreeSet<String> = self
            .book
            .of_cloud(name)
            .filter(|e| e.policy.as_ref().is_some_and(|p| p.spec.app.mode != crate::policy::AppRunMode::Auto))
            .map(|e| e.id.clone())
            .collect();
        let (go, wait): (Vec<_>, Vec<_>) =
            planned.iter().cloned().partition(|pp| may_execute && (self.approved || !dry.contains(&pp.policy.id)));
        let outcomes = backup_run::carry_out(client, &self.store, &self.actor, &go, now).await;
        if may_execute {
            match backup_run::start_restore_tests(client, &self.store, &self.actor, &go, &cloud, now).await {
                Ok(ops) if !ops.is_empty() => st.busy = true,
                Ok(_) => {}
                Err(e) => tracing::warn!("{name}: a restore test could not start: {e}"),
            }
        }
        for o in &outcomes {
            self.metrics.count_action(name, o.step.kind(), o.result.is_ok());
        }
        // The console's lists follow what the pass makes and sees finish.
        if !outcomes.is_empty() || self.backup_passes.get(name).is_some_and(|p| p.busy) {
            self.link.refresh(name, Kind::Backups);
            if outcomes.iter().any(|o| !matches!(o.step, BackupStep::Delete { .. })) {
                self.link.refresh(name, Kind::Volumes);
            }
        }
        for pp in &planned {
            let key = |kind: &str| format!("{name}:{kind}:{}", pp.policy.id);
            let mut by_kind: std::collections::BTreeMap<&str, (Severity, Vec<String>)> = Default::default();
            for pr in &pp.plan.problems {
                let e = by_kind.entry(pr.kind).or_insert((pr.severity, vec![]));
                e.1.push(pr.message.clone());
            }
            for o in outcomes.iter().filter(|o| o.policy == pp.policy.id) {
                if let Err(e) = &o.result {
                    let e2 = by_kind.entry("backup-failed").or_insert((Severity::Critical, vec![]));
                    e2.1.push(format!("{}: {e}", o.step.describe()));
                }
            }
            for (kind, (sev, msgs)) in by_kind {
                st.alerts.push(
                    Alert::new(
                        kind,
                        key(kind),
                        name,
                        sev,
                        format!("backup policy {}: {}", pp.policy.name, msgs.join("; ")),
                    )
                    .app(pp.policy.app.clone()),
                );
            }
            st.views.extend(pp.plan.volumes.iter().cloned());
            st.busy |= !pp.plan.settled();
        }
        for pp in wait.iter().filter(|pp| !pp.plan.steps.is_empty()) {
            let label = pp.policy.app.clone().unwrap_or_else(|| format!("backup:{}", pp.policy.name));
            st.plans.push(PlanLines::new(name, &label, pp.plan.steps.iter().map(|s| s.describe()).collect()));
        }
        Ok(st)
    }

    /// Decide for a cloud with a changed policy in place of the one in force.
    fn preview(&mut self, snap: &Snapshot, text: &str, file: &Path) -> Result<super::preview::Preview, String> {
        use super::policies::PolicyEntry;
        let p = crate::policy::parse(text, file)
            .map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))?;
        let name = p.cloud().to_string();
        let i = self
            .clouds
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| format!("this engine has no cloud `{name}`"))?;
        // The state this engine keeps when it acts on the cloud, else the store's
        // (read, never kept: an observer's copy would go stale).
        let state = match self.clouds.get(i).and_then(|c| c.state.clone()) {
            Some(s) => s,
            None => self
                .store
                .control_as::<EngineState>(&format!("engine-state:{name}"))
                .map_err(|e| format!("the engine's state cannot be read: {e}"))?
                .unwrap_or_default(),
        };
        let mut entries: Vec<PolicyEntry> = self.book.of_cloud(&name).filter(|e| e.id != p.id).cloned().collect();
        entries.push(PolicyEntry {
            id: p.id.clone(),
            app: p.name().to_string(),
            cloud: name.clone(),
            file: file.to_path_buf(),
            policy: Some(p.clone()),
            state: PolicyState::Ok,
            problems: vec![],
        });
        let pids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        let needs = catalog_needs(entries.iter().filter_map(|e| e.policy.as_ref()));
        let obs = observe(&self.cfg, snap, &name, &self.store, Some(&state), &pids, &needs, Utc::now());
        let sv = obs.store.as_ref().ok_or("the store cannot be read")?;
        let refs: Vec<&PolicyEntry> = entries.iter().collect();
        let d = decide(&DecideInput {
            obs: &obs,
            store: sv,
            state: &state,
            entries: &refs,
            plan_cfg: &self.cfg.plan,
            actor: &self.actor,
            granularity: self.cfg.metrics_granularity,
        });
        super::preview::summarize(&d, &p.id, &obs.cloud.servers).ok_or_else(|| "the planner made no decision".into())
    }

    /// The cloud's engine state, read from the store the first time (`None` while
    /// the store cannot give it: the cloud then holds).
    fn engine_state(&mut self, i: usize, name: &str) -> Option<EngineState> {
        let c = self.clouds.get_mut(i)?;
        if c.state.is_none() {
            match self.store.control_as::<EngineState>(&format!("engine-state:{name}")) {
                Ok(s) => c.state = Some(s.unwrap_or_default()),
                Err(e) => tracing::error!(cloud = %name, "{e}"),
            }
        }
        c.state.clone()
    }

    /// Hold or watch the cloud's lease; true when this engine acts on it.
    fn lease(&mut self, i: usize, now: Timestamp, status: &mut EngineStatus) -> bool {
        let Some(c) = self.clouds.get_mut(i) else { return false };
        let name = c.name.clone();
        let name = name.as_str();
        let st = if self.cfg.may_act {
            c.lease.check(&self.store, &self.cfg.engine_id, now)
        } else {
            LeaseState::Observing(Lease::holder(&self.store, name).unwrap_or_else(|| "no engine".into()))
        };
        if c.lease_seen.as_ref() != Some(&st) {
            match &st {
                LeaseState::Held => tracing::info!(cloud = name, "holding the engine lease: this engine acts"),
                LeaseState::Observing(h) if !self.cfg.may_act => {
                    tracing::info!(cloud = name, "read-only: observing (the engine lease is held by {h})")
                }
                LeaseState::Observing(h) => {
                    tracing::info!(cloud = name, "observing: the engine lease is held by {h}; this engine does not act")
                }
                LeaseState::Lost(why) => tracing::error!(cloud = name, "lease lost: {why}"),
            }
            c.lease_seen = Some(st.clone());
        }
        self.metrics.set_lease(name, st == LeaseState::Held);
        match st {
            LeaseState::Held => {
                status.lease_holder = Some(self.cfg.engine_id.clone());
                true
            }
            LeaseState::Observing(holder) => {
                let why = if self.cfg.may_act {
                    format!("{name}: the engine lease is held by {holder}")
                } else {
                    format!("{name}: read-only (the engine lease is held by {holder})")
                };
                self.observe_holder(name, &holder, why, status);
                false
            }
            LeaseState::Lost(why) => {
                self.problems.push(format!("{name}: {why}"));
                status.holds.push((name.to_string(), why));
                false
            }
        }
    }

    /// A lease held and lost: alerted until it is taken again (or another engine
    /// is seen holding it).
    fn lease_alerts(&mut self, now: Timestamp) {
        for c in &self.clouds {
            if let Some(LeaseState::Lost(why)) = &c.lease_seen {
                let a = Alert::new("lease-lost", format!("{}:lease", c.name), &c.name, Severity::Critical, why.clone());
                self.alerts.raise(now, a);
            }
        }
    }

    /// An observing engine shows the holder's plan and state.
    fn observe_holder(&self, name: &str, holder: &str, why: String, status: &mut EngineStatus) {
        status.observer = true;
        status.lease_holder = Some(holder.to_string());
        status.observing_why = Some(why);
        if let Ok(Some(v)) = self.store.control(&format!("engine-status:{name}")) {
            for p in v.at("plans").as_array().into_iter().flatten() {
                let app = p["app"].as_str().unwrap_or_default().to_string();
                let lines = p["lines"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(String::from));
                status.plans.push(PlanLines::new(name, &app, lines.collect()));
            }
            status.last_tick = v.at("last_tick").as_str().and_then(crate::domain::time::parse_timestamp);
        }
        status.policies.extend(self.book.of_cloud(name).map(super::status::PolicyView::of));
    }

    /// What the console shows of a decision.
    fn show(&mut self, name: &str, d: &Decision, status: &mut EngineStatus) {
        for a in &d.inputs {
            let lines: Vec<String> = d
                .plan
                .actions
                .iter()
                .filter(|x| {
                    x.policy_id.as_deref() == Some(&a.policy_id) && !matches!(x.step, Step::CompleteIntent { .. })
                })
                .map(|x| x.describe())
                .collect();
            let mut lines = lines;
            if let Some(r) = d.rollouts.get(&a.policy_id) {
                let kind = if r.rolling_back { "rollback" } else { "rollout" };
                let from = r.from.map(|f| format!("revision {f} → ")).unwrap_or_default();
                let deadline = r
                    .deadline
                    .map(|d| format!("; fails at {} without progress", d.format("%H:%M:%S")))
                    .unwrap_or_default();
                lines.insert(
                    0,
                    format!(
                        "{kind} {from}revision {}: {}, {}/{} new ready, {} old{deadline}",
                        r.target, r.phase, r.new_ready, r.desired, r.old
                    ),
                );
            }
            if d.dry_run.contains(&a.policy_id) && !lines.is_empty() {
                status.approval_pending = true;
            }
            status.plans.push(PlanLines::new(name, &a.app, lines));
        }
        status.apps.extend(d.plan.apps.iter().cloned().map(|mut a| {
            a.cloud = name.to_string();
            a
        }));
        status.policies.extend(d.policies.iter().cloned());
        status.policy_errors.extend(d.problems.iter().cloned());
        status.scaling.extend(d.scaling.iter().map(|(_, o)| o.view.clone()));
        for (_, app, names) in &d.plan.unmanaged {
            status.plans.push(PlanLines::new(
                name,
                app,
                vec![format!("left alone: {} server(s) of an unknown policy on {name}", names.len())],
            ));
        }
        self.metrics.set_apps(name, d.plan.apps.len(), d.plan.apps.iter().filter(|a| a.converged).count());
        for s in &d.plan.apps {
            let scaling = d.scaling.iter().find(|(pid, _)| pid == &s.policy_id).map(|(_, o)| o);
            let metric = scaling.filter(|o| !o.view.metric.is_empty()).map(|o| {
                let v = &o.view;
                (v.metric.clone(), v.series.last().map(|x| x.1), v.target)
            });
            let fig = super::metrics::AppFigures {
                desired: s.desired,
                members: s.members,
                ready: s.ready,
                unhealthy: s.unhealthy,
                metric,
                rollout: s.rollout.as_ref().map(|r| (r.new_ready, r.desired)),
            };
            self.metrics.set_app(name, &s.app, &fig);
            if let Some(e) = scaling.and_then(|o| o.event.as_ref()) {
                // The reason of the decision (`scale-out`, ... when it has none).
                let reason = e.reason.split(':').next().filter(|r| !r.is_empty()).unwrap_or(&e.action);
                self.metrics.count_scaling(name, &s.app, reason.trim());
            }
        }
    }

    /// Persist, then act when allowed; record the state and the plan for observers.
    #[allow(clippy::too_many_arguments)]
    async fn act(
        &mut self,
        i: usize,
        name: &str,
        obs: Observation,
        d: Decision,
        may_execute: bool,
        now: Timestamp,
        status: &mut EngineStatus,
    ) {
        // Nothing decided from held data is kept: the next tick decides again.
        let persisted = obs.acting_allowed()
            && match persist(&self.store, name, &self.actor, &d, now) {
                Ok(()) => true,
                Err(e) => {
                    status.holds.push((name.to_string(), e.to_string()));
                    self.problems.push(format!("{name}: {e}"));
                    self.alerts
                        .raise(now, Alert::new("store-unavailable", "store", "", Severity::Critical, e.to_string()));
                    false
                }
            };
        let Some(client) = self.clouds.get(i).map(|c| c.client.clone()) else { return };
        let mut state = d.state.clone();
        let mut d = d;
        let repairs: Vec<String> =
            d.plan.actions.iter().filter_map(super::act::repair_target).map(String::from).collect();
        let repair_steps: Vec<(String, String, String)> = d
            .plan
            .actions
            .iter()
            .filter_map(|a| {
                let id = super::act::repair_target(a)?;
                let step = match &a.step {
                    Step::Recover { rung, .. } => rung.as_str(),
                    Step::Quarantine { .. } => "quarantine",
                    _ => "recreate",
                };
                Some((a.app.clone(), step.to_string(), id.to_string()))
            })
            .collect();
        let mut sent: BTreeSet<String> = BTreeSet::new();
        if !self.approved {
            // Applications in dry-run mode act only when an operator approves.
            d.plan.actions.retain(|a| {
                matches!(a.step, Step::CompleteIntent { .. })
                    || !a.policy_id.as_ref().is_some_and(|p| d.dry_run.contains(p))
            });
        }
        let executed: BTreeSet<String> = if may_execute && persisted && obs.acting_allowed() {
            d.plan.actions.iter().filter_map(super::act::repair_target).map(String::from).collect()
        } else {
            BTreeSet::new()
        };
        if may_execute && persisted && obs.acting_allowed() {
            let a = ActCtx { cfg: &self.cfg, client: &client, store: &self.store, cloud: name, actor: &self.actor };
            let outcomes = carry_out(&a, &d, &mut state, now).await;
            for o in &outcomes {
                self.metrics.count_action(name, o.kind, o.ok);
            }
            sent.extend(outcomes.iter().filter_map(|o| o.repaired.clone().or_else(|| o.marked.clone())));
            if outcomes
                .iter()
                .any(|o| matches!(o.kind, "create" | "delete" | "mark-terminating" | "recover" | "quarantine"))
            {
                self.link.refresh(name, Kind::Servers);
                // The quota's use changed: the next headroom is read, not remembered.
                self.link.refresh(name, Kind::Limits);
            }
            self.finish_retires(name, &obs, &d, now);
        }
        // A recovery step not sent (not acting, waiting for approval, refused)
        // is not waited for: the next tick decides it again.
        for id in repairs.iter().filter(|id| !sent.contains(*id)) {
            if executed.contains(id) {
                // Sent and refused: tried, the next tick climbs on.
                super::recovery::refused(&mut state.recovery, id);
            } else {
                super::recovery::not_sent(&mut state.recovery, id, now);
            }
        }
        for (app, step, id) in &repair_steps {
            if may_execute && persisted && obs.acting_allowed() {
                self.metrics.count_recovery(name, app, step, sent.contains(id));
            }
        }
        if let Some(c) = self.clouds.get_mut(i) {
            c.state = Some(state.clone());
        }
        let plans: Vec<serde_json::Value> = status
            .plans
            .iter()
            .filter(|p| p.cloud == *name)
            .map(|p| crate::domain::json::json!({"app": p.app, "lines": p.lines}))
            .collect();
        let writes = self.store.put_control_as(&format!("engine-state:{name}"), &state, &now).and_then(|_| {
            self.store.put_control(
                &format!("engine-status:{name}"),
                &crate::domain::json::json!({"holder": self.cfg.engine_id, "last_tick": now.to_rfc3339(), "plans": plans}),
                &now,
            )
        });
        if let Err(e) = writes {
            self.problems.push(format!("{name}: {e}"));
            self.alerts.raise(now, Alert::new("store-unavailable", "store", "", Severity::Critical, e.to_string()));
        }
        let open = self
            .store
            .count_intents(crate::store::IntentStatus::Pending)
            .and_then(|p| self.store.count_intents(crate::store::IntentStatus::Running).map(|r| p + r));
        if let Ok(n) = open {
            self.metrics.set_intents(n);
        }
    }

    /// A retired app whose members are all gone is forgotten.
    fn finish_retires(&self, name: &str, obs: &Observation, d: &Decision, now: Timestamp) {
        for e in self.book.of_cloud(name).filter(|e| e.state == PolicyState::Retired) {
            let tag = crate::domain::names::app_tag(&e.id);
            let left = obs.cloud.servers.iter().any(|s| s.has_tag(&tag));
            let open = obs.store.as_ref().is_some_and(|s| s.open_intents.iter().any(|x| x.policy_id == e.id));
            let acting = d.plan.actions.iter().any(|a| a.policy_id.as_deref() == Some(&e.id));
            if !left && !open && !acting {
                match self.store.forget_policy(&e.id) {
                    Ok(()) => self.event(
                        Event::new(now, &self.actor, name, "retire", "retired: every member is gone")
                            .app(e.app.clone()),
                    ),
                    Err(err) => tracing::error!("cannot forget the retired app {}: {err}", e.app),
                }
            }
        }
    }

    /// Alerts of the holds of a cloud.
    fn hold_alerts(&mut self, name: &str, obs: &Observation, now: Timestamp) {
        for h in &obs.holds {
            if matches!(h, Hold::ServersUnread) {
                continue;
            }
            let sev = if matches!(h, Hold::ServersStale(_)) { Severity::Warning } else { Severity::Critical };
            let key =
                if matches!(h, Hold::Store(_)) { "store".to_string() } else { format!("{name}:hold:{}", h.kind()) };
            let msg = format!("{}; the engine does not act on {name}", h.describe(name));
            self.alerts.raise(now, Alert::new(h.kind(), key, name, sev, msg));
        }
    }

    /// Alerts of a decision: policies, capacity, bad specs, unmanaged servers, stale metrics.
    fn decision_alerts(&mut self, name: &str, obs: &Observation, d: &Decision, now: Timestamp) {
        for p in &d.policies {
            let (kind, sev) = match p.state.as_str() {
                "invalid" => ("policy-invalid", Severity::Warning),
                "missing" => ("policy-missing", Severity::Critical),
                _ => continue,
            };
            let what = if kind == "policy-invalid" {
                "the policy does not validate; the last good revision stays in force"
            } else {
                "the app is on hold (nothing is created or deleted)"
            };
            let msg = format!("{}: {what}: {}", p.app, p.problems.join("; "));
            self.alerts.raise(
                now,
                Alert::new(kind, format!("{name}:policy:{}", p.app), name, sev, msg).app(Some(p.app.clone())),
            );
        }
        let state = obs.store.as_ref().map(|_| &d.state);
        for (pid, b) in state.map(|s| s.blocked.iter()).into_iter().flatten() {
            let app = d.inputs.iter().find(|a| &a.policy_id == pid).map(|a| a.app.clone());
            let msg = format!(
                "capacity blocked ({}): {}; scale-out resumes after {}s (backoff), scale-in and recovery go on",
                b.reason.as_str(),
                b.detail,
                b.backoff_secs
            );
            self.alerts.raise(
                now,
                Alert::new("capacity-blocked", format!("{name}:capacity:{pid}"), name, Severity::Critical, msg)
                    .app(app),
            );
        }
        for a in &d.alerts {
            self.alerts.raise(now, a.clone());
        }
        for (pid, app, why) in &d.rollout_alerts {
            self.alerts.raise(
                now,
                Alert::new(
                    "rollout-failed",
                    format!("{name}:rollout:{pid}"),
                    name,
                    Severity::Critical,
                    format!("{app}: {why}"),
                )
                .app(Some(app.clone())),
            );
        }
        for a in d.inputs.iter().filter(|a| a.invalid.is_some() && !d.waiting.contains(&a.policy_id)) {
            let msg = format!("{}: the launch spec cannot be used: {}", a.app, a.invalid.clone().unwrap_or_default());
            self.alerts.raise(
                now,
                Alert::new("bad-spec", format!("{name}:bad-spec:{}", a.app), name, Severity::Critical, msg)
                    .app(Some(a.app.clone())),
            );
        }
        for (pid, app, servers) in &d.plan.unmanaged {
            let msg = format!(
                "{} server(s) of `{app}` belong to a policy this engine does not know (policy {pid}): left alone; `stackpilot policy retire {app} --cloud {name}` removes them",
                servers.len()
            );
            self.alerts.raise(
                now,
                Alert::new("unmanaged", format!("{name}:unmanaged:{pid}"), name, Severity::Warning, msg)
                    .app(Some(app.clone())),
            );
        }
        for (_, o) in d.scaling.iter().filter(|(_, o)| o.metrics_missing) {
            let msg = format!("{}: metrics are missing or stale, no scale-in: {}", o.view.app, o.view.message);
            self.alerts.raise(
                now,
                Alert::new("metrics-stale", format!("{name}:metrics:{}", o.view.app), name, Severity::Warning, msg)
                    .app(Some(o.view.app.clone())),
            );
        }
    }

    /// Engine-wide alerts, then the end of the evaluation: events for what
    /// started or ended, and the book kept in the store (SINCE survives restarts).
    fn engine_alerts(&mut self, now: Timestamp, holding: bool) {
        if let Err(e) = &self.cfg.notify {
            self.alerts.raise(
                now,
                Alert::new(
                    "alerting-misconfigured",
                    "engine:alerting",
                    "",
                    Severity::Critical,
                    format!("alerts are not sent out: {e}"),
                ),
            );
        }
        if self.paused {
            self.alerts.raise(
                now,
                Alert::new(
                    "engine-paused",
                    "engine:paused",
                    "",
                    Severity::Warning,
                    "the engine is paused by an operator: it plans but does not act",
                ),
            );
        }
        if let Some(e) = &self.book.dir_error {
            self.alerts.raise(
                now,
                Alert::new(
                    "policy-missing",
                    "policy:dir",
                    "",
                    Severity::Critical,
                    format!("the policies directory {e}: every app is on hold"),
                ),
            );
        }
        for e in &self.book.stray {
            self.alerts.raise(
                now,
                Alert::new(
                    "policy-invalid",
                    format!("policy:file:{}", e.file.display()),
                    "",
                    Severity::Warning,
                    e.to_string(),
                ),
            );
        }
        let changes = self.alerts.end(now);
        // Only an engine that acts (or acted and lost its lease) records alerts:
        // observers would repeat them.
        if !holding && !self.alerts_loaded {
            return;
        }
        for ch in changes {
            let (a, result) = match ch {
                AlertChange::Started(a) => (a, "firing"),
                AlertChange::Resolved(a) => (a, "resolved"),
            };
            let mut e = Event::new(now, &self.actor, &a.cloud, "alert", a.message.clone())
                .result(result)
                .severity(if result == "resolved" { Severity::Info } else { a.severity })
                .target(a.kind.clone());
            e.app = a.app.clone();
            self.event(e);
        }
        if let Err(e) = self.store.put_control_as("engine-alerts", &self.alerts, &now) {
            tracing::error!("cannot record the alerts: {e}");
        }
    }
}
