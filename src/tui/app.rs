//! The console's state and its pure `update`: every key, snapshot and result is a
//! `Msg`; `update` changes the state and returns the effects (cloud actions,
//! console fetches, refreshes) for the runtime to carry out. Nothing here does I/O.

use super::keymap::{info_of, Action, Code, Context, Key, Keymap};
use super::rows::{self, RowSet};
use super::theme::Theme;
use crate::domain::{Event, Severity, Timestamp};
use crate::inventory::{Kind, Snapshot};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use tui_input::{Input, InputRequest};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViewKind {
    Overview,
    Apps,
    Servers,
    ServerDetail,
    Storage,
    Alerts,
    Events,
    Clouds,
    Plan,
    Policies,
    PolicyDetail,
}

impl ViewKind {
    pub fn title(&self) -> &'static str {
        match self {
            ViewKind::Overview => "Overview",
            ViewKind::Apps => "Apps",
            ViewKind::Servers => "Servers",
            ViewKind::ServerDetail => "Server",
            ViewKind::Storage => "Volumes & Backups",
            ViewKind::Alerts => "Alerts",
            ViewKind::Events => "Events",
            ViewKind::Clouds => "Clouds",
            ViewKind::Plan => "Plan",
            ViewKind::Policies => "Policies",
            ViewKind::PolicyDetail => "Policy",
        }
    }
    /// Key contexts active in this view.
    pub fn contexts(&self) -> Vec<Context> {
        let mut v = vec![Context::Global];
        match self {
            ViewKind::Servers => v.extend([Context::Server, Context::NoCharts]),
            ViewKind::ServerDetail => v.extend([Context::Server, Context::Charts]),
            ViewKind::Overview => v.push(Context::Charts),
            ViewKind::Plan => v.extend([Context::Plan, Context::NoCharts]),
            ViewKind::Policies => v.extend([Context::Policies, Context::NoCharts]),
            ViewKind::PolicyDetail => v.extend([Context::Policies, Context::PolicyDetail, Context::NoCharts]),
            ViewKind::Alerts => v.extend([Context::Alerts, Context::NoCharts]),
            ViewKind::Storage => v.extend([Context::Storage, Context::NoCharts]),
            _ => v.push(Context::NoCharts),
        }
        v
    }
}

/// `:` commands, their aliases, and the view each opens.
pub const COMMANDS: &[(&str, &[&str], ViewKind)] = &[
    ("overview", &["ov", "home"], ViewKind::Overview),
    ("apps", &["app", "a"], ViewKind::Apps),
    ("servers", &["server", "srv", "s", "vm", "vms"], ViewKind::Servers),
    ("volumes", &["vol", "vols", "backups", "backup", "storage"], ViewKind::Storage),
    ("alerts", &["alert", "al"], ViewKind::Alerts),
    ("events", &["event", "ev", "audit"], ViewKind::Events),
    ("clouds", &["cloud", "ctx"], ViewKind::Clouds),
    ("plan", &["engine"], ViewKind::Plan),
    ("policies", &["policy", "pol"], ViewKind::Policies),
];

/// One level of the navigation stack.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewState {
    pub kind: ViewKind,
    /// Selected row (index into the filtered, sorted rows).
    pub selected: usize,
    /// Id of the selected row, to keep the selection when rows move.
    pub selected_id: Option<String>,
    pub offset: usize,
    pub filter: String,
    /// Sort column (hotkey letter) and descending flag.
    pub sort: Option<(char, bool)>,
    /// Servers of one application (drilled in from Apps).
    pub app: Option<String>,
    /// The server of a Server view.
    pub server: Option<String>,
    /// The policy id of an open policy.
    pub policy: Option<String>,
}

/// Between a cloud's name and an item's id in the row ids of views that show
/// every cloud at once (`demo-east\u{1f}vol:...`).
pub const ROW_SEP: char = '\u{1f}';

/// A row id's item part (the cloud's name taken off when all clouds are shown).
pub fn item_of(id: &str) -> &str {
    id.split_once(ROW_SEP).map_or(id, |(_, rest)| rest)
}

impl ViewState {
    pub fn new(kind: ViewKind) -> Self {
        ViewState {
            kind,
            selected: 0,
            selected_id: None,
            offset: 0,
            filter: String::new(),
            sort: None,
            app: None,
            server: None,
            policy: None,
        }
    }
    /// The selected row's item id (without the cloud of a merged view).
    pub fn selected_key(&self) -> Option<String> {
        self.selected_id.as_deref().map(|s| item_of(s).to_string())
    }
    /// Breadcrumb text; `name` resolves a server id to its name.
    pub fn crumb(&self, name: impl Fn(&str) -> Option<String>) -> String {
        match (&self.kind, &self.app, &self.server) {
            (ViewKind::Servers, Some(a), _) => format!("Servers of {a}"),
            (ViewKind::ServerDetail, _, Some(s)) => format!("Server {}", name(s).unwrap_or_else(|| s.clone())),
            (ViewKind::PolicyDetail, Some(a), _) => format!("Policy {a}"),
            (k, _, _) => k.title().to_string(),
        }
    }
}

/// What a confirmation carries out.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub action: Action,
    pub cloud: String,
    pub server_id: String,
    pub server_name: String,
    /// The server is a member of an application (a stop is marked as the operator's).
    pub member: bool,
}

#[derive(Debug, Clone)]
pub enum Mode {
    Normal,
    Command {
        input: Input,
        completion: usize,
    },
    Filter {
        input: Input,
    },
    /// Cancel is focused first; `confirm_focused` moves to the action.
    Confirm {
        pending: Pending,
        confirm_focused: bool,
        typed: Option<Input>,
    },
    Help {
        scroll: u16,
    },
    Raw {
        title: String,
        text: String,
        scroll: u16,
    },
    /// The quick-edit form of a policy (or a new application's).
    Form(Box<super::editing::Form>),
    /// A policy change shown as a diff with its effect, waiting for confirmation.
    Review(Box<super::editing::Review>),
}

/// Input to `update`.
#[derive(Debug, Clone)]
pub enum Msg {
    Key(Key),
    /// Terminal size (debounced by the runtime).
    Resize(u16, u16),
    Snapshot(Arc<Snapshot>),
    /// Once a second: ages on screen move.
    Tick(Timestamp),
    /// A cloud action ended (the event records who/what/why/result).
    ActionDone(Event),
    Console {
        server_id: String,
        result: Result<String, String>,
    },
    /// A server's record as its cloud's API wrote it (indented), or the API
    /// error (with its cloud, service and request id).
    ServerRecord {
        cloud: String,
        server_id: String,
        result: Result<String, String>,
    },
    /// Events written by the engine or another console (from the store).
    Events(Vec<Event>),
    /// Alert deliveries and what operators did to alerts (from the store).
    Deliveries(crate::engine::notify::DeliveryBook, crate::engine::notify::AlertOps),
    /// The engine's status changed.
    Engine(EngineView),
    /// A task of the console died (the engine, a poller): what and how.
    TaskDied(String),
    /// The terminal cannot be read any more (handled by the runtime: the
    /// console ends).
    InputLost(String),
    /// A policy's file and history were read.
    PolicyLoaded(super::editing::PolicyDoc),
    /// An `$EDITOR` session on a policy ended.
    Edited {
        policy_id: Option<String>,
        file: std::path::PathBuf,
        /// The text the editor started from.
        base: String,
        outcome: super::editing::EditOutcome,
    },
    /// The engine's preview of a changed policy.
    Previewed {
        file: std::path::PathBuf,
        text: String,
        result: Result<crate::engine::preview::Preview, String>,
    },
    /// A confirmed policy change was written, or why not.
    PolicySaved(super::editing::SavedPolicy),
    /// A text to show (title, text), e.g. a rollout's status.
    Show(String, String),
    /// A mouse click or wheel turn (only with `--mouse` / `[ui] mouse`).
    Mouse {
        kind: MouseKind,
        column: u16,
        row: u16,
    },
    /// The kiosk's timer: the next page.
    KioskNext,
    /// What a restore would do (its steps), or why it cannot be done.
    RestorePlanned(Result<Box<crate::engine::restore::RestoreJob>, String>),
    Quit,
}

/// Work for the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    ServerAction(Pending),
    FetchConsole {
        cloud: String,
        server_id: String,
    },
    /// Read a server's exact record (`GET /servers/{id}`), answered with
    /// `Msg::ServerRecord`.
    FetchServer {
        cloud: String,
        server_id: String,
    },
    Refresh {
        cloud: String,
        kind: Kind,
    },
    EngineControl(EngineCommand),
    /// Read a policy file and its recorded history.
    LoadPolicy {
        policy_id: String,
        app: String,
        cloud: String,
        file: std::path::PathBuf,
    },
    /// Suspend the console and edit a policy's text in `$VISUAL`/`$EDITOR`.
    EditPolicy {
        policy_id: Option<String>,
        file: std::path::PathBuf,
        text: String,
    },
    /// Ask the engine what a changed policy would make it do.
    Preview {
        file: std::path::PathBuf,
        text: String,
    },
    /// Write a confirmed policy change (checked against the file on disk).
    SavePolicy(crate::engine::policies::SaveRequest),
    /// Acknowledge or silence an alert (store, and Alertmanager when configured).
    AlertOp {
        alert: Box<crate::domain::Alert>,
        op: AlertOp,
    },
    /// Set or clear a member's `stackpilot:maint` mark.
    Maintenance {
        cloud: String,
        server_id: String,
        on: bool,
    },
    /// Leave a rollout command for the acting engine.
    Rollout {
        cloud: String,
        app: String,
        cmd: crate::engine::rollout::Command,
    },
    /// Show where an application's rollout stands.
    RolloutStatus {
        cloud: String,
        app: String,
    },
    /// Read what a restore would do (answered with `Msg::RestorePlanned`).
    PlanRestore {
        cloud: String,
        backup_id: String,
        target: crate::engine::restore::Target,
    },
    /// Leave a confirmed restore job for the acting engine.
    QueueRestore(Box<crate::engine::restore::RestoreJob>),
    Quit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineCommand {
    TogglePause,
    ApprovePlan,
    SetMode(crate::config::settings::EngineMode),
    /// Remove an application's members (confirmed by typing its name).
    Retire {
        cloud: String,
        app: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConsoleState {
    Loading,
    Text(String),
    Failed(String),
}

/// Engine status shown in the header, the Overview and the Plan view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineView {
    pub mode: String,
    pub paused: bool,
    pub lease_holder: Option<String>,
    pub observer: bool,
    pub last_tick: Option<Timestamp>,
    /// (app, lines describing what the engine will do next and why).
    pub plan: Vec<crate::engine::status::PlanLines>,
    pub apps: Vec<EngineApp>,
    pub alerts: Vec<crate::domain::Alert>,
    pub policy_errors: Vec<String>,
    pub approval_pending: bool,
    /// Autoscaled applications: current/desired/min/max, why, metric and history.
    pub scaling: Vec<crate::engine::runner::ScalingView>,
    /// Every policy and where it stands.
    pub policies: Vec<crate::engine::PolicyView>,
    /// (cloud, why the engine does not act on it).
    pub holds: Vec<(String, String)>,
    /// Why this console's engine only observes.
    pub observing_why: Option<String>,
    /// (cloud, volume) under a backup policy: last backup, next run, chains, RPO.
    pub backups: Vec<(String, crate::engine::backups::VolumeBackups)>,
    /// Restore jobs running or recently ended.
    pub restores: Vec<crate::engine::restore::RestoreJob>,
    /// Apps on several clouds: (app, `demo 2 · demo-east 1`), each location's share now.
    pub placements: Vec<(String, String)>,
}

impl EngineView {
    /// Whether the screen changes when this view replaces `before` while `shown`
    /// is on screen: each engine tick moves `last_tick`, which only the Plan shows.
    pub fn redraws(&self, before: Option<&EngineView>, shown: ViewKind) -> bool {
        let Some(b) = before else { return true };
        if shown == ViewKind::Plan || self.last_tick == b.last_tick {
            return self != b;
        }
        let mut at_same_tick = b.clone();
        at_same_tick.last_tick = self.last_tick;
        at_same_tick != *self
    }
    pub fn scaling_of(&self, cloud: &str, app: &str) -> Option<&crate::engine::runner::ScalingView> {
        self.scaling.iter().find(|s| s.app == app && s.cloud == cloud)
    }
    pub fn policy_of(&self, cloud: &str, app: &str) -> Option<&crate::engine::PolicyView> {
        self.policies.iter().find(|p| p.app == app && p.cloud == cloud)
    }
    pub fn app_of(&self, cloud: &str, app: &str) -> Option<&EngineApp> {
        self.apps.iter().find(|a| a.app == app && a.cloud == cloud)
    }
}

/// One application as the engine sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineApp {
    pub app: String,
    pub cloud: String,
    /// A rollout going on.
    pub rollout: Option<crate::engine::rollout::RolloutView>,
    pub desired: u32,
    pub members: u32,
    pub ready: u32,
    pub stopped: u32,
    pub blocked: Option<String>,
    /// Held or retired: why.
    pub hold: Option<String>,
    pub converged: bool,
    /// Members failing now, and whether recovery paused (too many at once).
    pub unhealthy: u32,
    pub recovery_paused: bool,
}

pub struct App {
    pub snapshot: Arc<Snapshot>,
    /// Snapshot shown while frozen.
    pub frozen: Option<Arc<Snapshot>>,
    /// The cloud shown (in a merged view: the selected row's cloud, which
    /// actions apply to).
    pub cloud: usize,
    /// Every cloud at once (`:cloud *`; the start when several are configured).
    pub merged: bool,
    /// Never empty: it starts with the Overview and only `back` pops, never the last
    /// one (private, so the invariant is this module's alone). A `:` jump replaces
    /// it; Enter pushes (drills in).
    stack: Vec<ViewState>,
    /// The stacks `:` jumps replaced, newest last (Esc at the top of a stack goes
    /// back to the one before, as it was).
    jumps: Vec<Vec<ViewState>>,
    /// The Overview, for an empty stack (never: only `back` pops, never the last).
    home: ViewState,
    /// Last filter, sort and selected row per view kind (kept across `:` jumps).
    pub remembered: BTreeMap<ViewKind, Remembered>,
    pub mode: Mode,
    pub events: VecDeque<Event>,
    /// How each alert was delivered to each receiver (from the store).
    pub deliveries: crate::engine::notify::DeliveryBook,
    /// Acknowledged and silenced alerts (from the store).
    pub alert_ops: crate::engine::notify::AlertOps,
    pub message: Option<(String, Severity)>,
    pub keymap: Keymap,
    pub theme: Theme,
    pub ascii: bool,
    pub read_only: bool,
    pub protected_clouds: Vec<String>,
    pub now: Timestamp,
    pub history: Vec<String>,
    pub history_pos: Option<usize>,
    pub console: BTreeMap<String, ConsoleState>,
    /// The server record the raw view is waiting for (cloud, server id, the
    /// view's title).
    pub record_wanted: Option<(String, String, String)>,
    pub stale_after: u32,
    /// Chart window in seconds.
    pub window_secs: i64,
    pub size: (u16, u16),
    pub rows: RowSet,
    pub engine: Option<EngineView>,
    /// Tasks that died (shown as a red banner until the console restarts).
    pub banners: Vec<String>,
    /// Policy files and histories read for the Policies views, by policy id.
    pub docs: BTreeMap<String, super::editing::PolicyDoc>,
    /// What to open once a policy is loaded.
    pub after_load: Option<(String, super::editing::Then)>,
    /// The change of a policy's history marked for a diff.
    pub marked_change: Option<u64>,
    /// Where new applications' policies are written.
    pub policies_dir: Option<std::path::PathBuf>,
    /// A restore planned and shown for confirmation.
    pub restore_plan: Option<crate::engine::restore::RestoreJob>,
    /// A line kept on screen until the operator hides it (the demo's clouds and
    /// how to reach them); Esc on the first view hides it.
    pub notice: Option<String>,
    /// The war-room mode (`--kiosk`): its page and how often it turns.
    pub kiosk: Option<Kiosk>,
    /// When the screen next changes by the clock alone (noted while drawing).
    pub clock: ScreenClock,
    /// Rows computed before, kept to answer a narrower filter or a cleared one
    /// without going over every item again (see `rows::compute_cached`).
    pub row_cache: rows::RowCache,
    pub quit: bool,
}

/// What a draw noted about time: the instant (Unix seconds) at which a text
/// below the header changes by the clock alone (an age turning `59s` into
/// `1m`, a ticker turning, staleness setting in), whether that part shows poll
/// times (a refresh moves them), and the header's data age as drawn. A tick
/// redraws only what it changed (see `tick`).
#[derive(Debug, Default)]
pub struct ScreenClock {
    next: std::cell::Cell<Option<i64>>,
    polls: std::cell::Cell<bool>,
    /// Something below the header changed since it was drawn.
    due: std::cell::Cell<bool>,
    header: std::cell::RefCell<Option<(String, ratatui::style::Style)>>,
}

impl ScreenClock {
    /// A full draw starts: nothing noted yet.
    pub(crate) fn start(&self) {
        self.next.set(None);
        self.polls.set(false);
        self.due.set(false);
    }
    /// A text on screen changes at `unix` seconds.
    pub(crate) fn changes_at(&self, unix: i64) {
        self.next.set(Some(self.next.get().map_or(unix, |n| n.min(unix))));
    }
    /// A text on screen shows how old a poll is, or whether it is stale.
    pub(crate) fn shows_polls(&self) {
        self.polls.set(true);
    }
    pub(crate) fn set_header(&self, age: (String, ratatui::style::Style)) {
        *self.header.borrow_mut() = Some(age);
    }
    /// What was noted so far (the header notes nothing: it is compared whole).
    pub(crate) fn save(&self) -> (Option<i64>, bool) {
        (self.next.get(), self.polls.get())
    }
    pub(crate) fn restore(&self, saved: (Option<i64>, bool)) {
        self.next.set(saved.0);
        self.polls.set(saved.1);
    }
}

/// What a tick asks to redraw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redraw {
    /// Nothing on screen changed.
    Nothing,
    /// Only the header's data age ("updated 4s ago", stale, unreachable).
    Header,
    /// Something else: the whole screen.
    All,
}

/// Seconds until `human_age(secs)` reads differently.
fn age_turns_in(secs: i64) -> i64 {
    let s = secs.max(0);
    let step = match s {
        0..120 => 1,
        120..7200 => 60,
        7200..172_800 => 3600,
        _ => 86_400,
    };
    // Below zero the text stays `0s` until the age reaches one second.
    if secs < 0 {
        1 - secs
    } else {
        step - s % step
    }
}

/// The clock moved to `now`: what on screen this changes. The header's data age
/// is compared as drawn; the rest is redrawn once an instant noted while drawing
/// (an age, the ticker, staleness) has come, or a refresh moved poll times it shows.
pub fn tick(app: &mut App, now: Timestamp) -> Redraw {
    app.now = now;
    let kiosk = app.kiosk.is_some() && app.view().kind == ViewKind::Overview && matches!(app.mode, Mode::Normal);
    // Overlays may cover the header; the kiosk counts its page down every second.
    let overlay = !matches!(app.mode, Mode::Normal | Mode::Filter { .. } | Mode::Command { .. });
    if kiosk || overlay || app.clock.due.get() || app.clock.next.get().is_some_and(|t| now.timestamp() >= t) {
        return Redraw::All;
    }
    let head = super::view::header_age(app);
    if app.clock.header.borrow().as_ref() != Some(&head) {
        Redraw::Header
    } else {
        Redraw::Nothing
    }
}

/// A view kind's filter, sort and selection, as it was left.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Remembered {
    pub filter: String,
    pub sort: Option<(char, bool)>,
    pub selected_id: Option<String>,
}

impl Remembered {
    fn of(v: &ViewState) -> Remembered {
        Remembered { filter: v.filter.clone(), sort: v.sort, selected_id: v.selected_id.clone() }
    }
}

/// The war room's state: every `interval_secs` (a `Msg::KioskNext` from the
/// runtime) the Overview turns to the next page, one application of one cloud
/// after the other.
#[derive(Debug, Clone, PartialEq)]
pub struct Kiosk {
    pub interval_secs: u64,
    /// Pages turned since the start.
    pub step: usize,
    /// When the page last turned.
    pub turned_at: Timestamp,
}

/// What the kiosk shows now: a cloud and, when it has any, one of its applications.
#[derive(Debug, Clone, PartialEq)]
pub struct KioskPage {
    pub cloud: usize,
    pub app: Option<String>,
    /// This page's place among all of them (1-based) and how many there are.
    pub number: usize,
    pub pages: usize,
}

/// A mouse event, in terminal cells (0-based column and row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MouseKind {
    /// The left button went down.
    Click,
    ScrollUp,
    ScrollDown,
}

const MAX_EVENTS: usize = 2000;
/// Stacks kept for Esc after `:` jumps.
const MAX_JUMPS: usize = 16;
/// Views drilled into, at most.
const MAX_DEPTH: usize = 8;

impl App {
    pub fn new(snapshot: Arc<Snapshot>, keymap: Keymap, theme: Theme, now: Timestamp) -> App {
        let mut a = App {
            snapshot,
            frozen: None,
            cloud: 0,
            merged: true,
            stack: vec![ViewState::new(ViewKind::Overview)],
            jumps: vec![],
            home: ViewState::new(ViewKind::Overview),
            remembered: BTreeMap::new(),
            mode: Mode::Normal,
            events: VecDeque::new(),
            deliveries: Default::default(),
            alert_ops: Default::default(),
            message: None,
            read_only: keymap.read_only(),
            keymap,
            theme,
            ascii: false,
            protected_clouds: vec![],
            now,
            history: vec![],
            history_pos: None,
            console: BTreeMap::new(),
            record_wanted: None,
            stale_after: 3,
            window_secs: 3600,
            size: (80, 24),
            rows: RowSet::default(),
            engine: None,
            banners: vec![],
            docs: BTreeMap::new(),
            after_load: None,
            marked_change: None,
            policies_dir: None,
            restore_plan: None,
            notice: None,
            kiosk: None,
            clock: ScreenClock::default(),
            row_cache: rows::RowCache::default(),
            quit: false,
        };
        a.refresh_rows();
        a
    }

    /// The navigation stack, outermost first (breadcrumbs).
    pub fn stack(&self) -> &[ViewState] {
        &self.stack
    }

    pub fn view(&self) -> &ViewState {
        // The stack is never empty (see `stack`); the Overview stands in otherwise.
        self.stack.last().unwrap_or(&self.home)
    }
    fn view_mut(&mut self) -> &mut ViewState {
        if self.stack.is_empty() {
            self.stack.push(ViewState::new(ViewKind::Overview));
        }
        self.stack.last_mut().unwrap_or(&mut self.home)
    }
    /// The current view, writable (benchmarks set a sort directly).
    #[doc(hidden)]
    pub fn view_mut_for_bench(&mut self) -> &mut ViewState {
        self.view_mut()
    }
    /// The snapshot on screen (frozen or live).
    pub fn shown(&self) -> &Arc<Snapshot> {
        self.frozen.as_ref().unwrap_or(&self.snapshot)
    }
    pub fn cloud_snapshot(&self) -> Option<&crate::inventory::CloudSnapshot> {
        self.shown().clouds.get(self.cloud)
    }
    /// Alerts from the observed state and from the engine.
    pub fn alerts(&self) -> Vec<crate::domain::Alert> {
        let mut v: Vec<crate::domain::Alert> = self.shown().alerts.to_vec();
        if let Some(e) = &self.engine {
            v.extend(e.alerts.iter().cloned());
        }
        v
    }
    /// Views show every cloud at once (merged, and more than one configured).
    pub fn all_clouds(&self) -> bool {
        self.merged && self.shown().clouds.len() > 1
    }
    /// The cloud and item of a row id (its cloud named in a merged view).
    pub fn row<'a>(&'a self, id: &'a str) -> Option<(&'a crate::inventory::CloudSnapshot, &'a str)> {
        match id.split_once(ROW_SEP) {
            Some((c, rest)) => self.shown().clouds.iter().find(|x| x.name == c).map(|x| (x, rest)),
            None => self.cloud_snapshot().map(|c| (c, id)),
        }
    }
    /// What the header names: one cloud's scope, or every cloud.
    pub fn scope_label(&self) -> String {
        if self.all_clouds() {
            format!("all clouds ({})", self.shown().clouds.len())
        } else {
            self.cloud_snapshot().map(|c| c.scope.to_string()).unwrap_or_else(|| "no cloud".into())
        }
    }
    pub fn cloud_name(&self) -> String {
        self.cloud_snapshot().map(|c| c.name.clone()).unwrap_or_default()
    }
    /// Visible rows of a table (the body minus header and borders).
    pub fn page(&self) -> usize {
        (self.size.1 as usize).saturating_sub(6 + banner_height(self) as usize + notice_lines(self).len()).max(1)
    }

    pub fn refresh_rows(&mut self) {
        let keep = self.view().selected_id.clone();
        let mut cache = std::mem::take(&mut self.row_cache);
        self.rows = rows::compute(self, &mut cache);
        self.row_cache = cache;
        let n = self.rows.len();
        let cur = self.view().selected;
        // The selected row most often stays where it was: no search through the rows then.
        let at =
            |id: &str| if self.rows.ids.get(cur).is_some_and(|x| x == id) { Some(cur) } else { self.rows.position(id) };
        let sel = keep.and_then(|id| at(&id)).unwrap_or(cur.min(n.saturating_sub(1)));
        self.select(sel);
    }

    fn select(&mut self, i: usize) {
        let n = self.rows.len();
        let i = if n == 0 { 0 } else { i.min(n - 1) };
        let id = self.rows.id(i);
        // In a merged view the selected row's cloud is the one actions apply to.
        if let Some((c, _)) = id.as_deref().and_then(|x| x.split_once(ROW_SEP)) {
            if let Some(ci) = self.shown().clouds.iter().position(|x| x.name == c) {
                self.cloud = ci;
            }
        }
        let page = self.page();
        let v = self.view_mut();
        v.selected = i;
        v.selected_id = id;
        if i < v.offset {
            v.offset = i;
        } else if i >= v.offset + page {
            v.offset = i + 1 - page;
        }
    }

    fn push_event(&mut self, e: Event) {
        self.events.push_front(e);
        while self.events.len() > MAX_EVENTS {
            self.events.pop_back();
        }
    }

    /// A `:` jump: the view replaces the whole stack (the breadcrumb shows it
    /// alone); the stack it replaced is kept for Esc.
    fn goto(&mut self, kind: ViewKind) {
        if self.stack.len() == 1 && self.view().kind == kind {
            return;
        }
        // Remember where we were for this kind of view.
        let cur = self.view().clone();
        if cur.app.is_none() && cur.server.is_none() {
            self.remembered.insert(cur.kind, Remembered::of(&cur));
        }
        let mut v = ViewState::new(kind);
        if let Some(r) = self.remembered.get(&kind) {
            v.filter = r.filter.clone();
            v.sort = r.sort;
            v.selected_id = r.selected_id.clone();
        }
        let before = std::mem::replace(&mut self.stack, vec![v]);
        self.jumps.push(before);
        if self.jumps.len() > MAX_JUMPS {
            self.jumps.remove(0);
        }
        self.refresh_rows();
    }

    /// Drill in: the view goes on top of the stack.
    fn push(&mut self, v: ViewState) {
        let cur = self.view().clone();
        if cur.app.is_none() && cur.server.is_none() {
            self.remembered.insert(cur.kind, Remembered::of(&cur));
        }
        self.stack.push(v);
        if self.stack.len() > MAX_DEPTH {
            self.stack.remove(0);
        }
        self.refresh_rows();
    }

    /// One view back: out of a drill-in, else to the stack the last `:` jump
    /// replaced (each with its selection, filter and sort). False when there is
    /// nowhere to go.
    fn back(&mut self) -> bool {
        if self.stack.len() > 1 {
            if let Some(cur) = self.stack.pop() {
                if cur.app.is_none() && cur.server.is_none() {
                    self.remembered.insert(cur.kind, Remembered::of(&cur));
                }
            }
        } else if let Some(before) = self.jumps.pop().filter(|s| !s.is_empty()) {
            let cur = self.view().clone();
            self.remembered.insert(cur.kind, Remembered::of(&cur));
            self.stack = before;
        } else {
            return false;
        }
        self.refresh_rows();
        true
    }

    /// The kiosk's page now: the pages are every application of every cloud (a
    /// cloud without applications is one page), in order.
    pub fn kiosk_page(&self) -> Option<KioskPage> {
        let k = self.kiosk.as_ref()?;
        let clouds = &self.shown().clouds;
        let pages: Vec<(usize, Option<String>)> = clouds
            .iter()
            .enumerate()
            .flat_map(|(i, c)| {
                let mut names: Vec<String> = c.apps.iter().map(|a| a.name.clone()).collect();
                names.sort();
                if names.is_empty() {
                    vec![(i, None)]
                } else {
                    names.into_iter().map(|n| (i, Some(n))).collect()
                }
            })
            .collect();
        if pages.is_empty() {
            return None;
        }
        let n = k.step % pages.len();
        let (cloud, app) = pages.get(n).cloned()?;
        Some(KioskPage { cloud, app, number: n + 1, pages: pages.len() })
    }

    /// `human_age` of `secs`, noting when the text next changes (for texts
    /// below the header; see `tick`).
    pub(crate) fn age_text(&self, secs: i64) -> String {
        self.clock.changes_at(self.now.timestamp().saturating_add(age_turns_in(secs)));
        crate::domain::time::human_age(secs)
    }

    pub(crate) fn notify(&mut self, m: impl Into<String>, s: Severity) {
        self.message = Some((m.into(), s));
    }
}

pub(crate) fn input_request(k: Key) -> Option<InputRequest> {
    Some(match (k.code, k.ctrl) {
        (Code::Char('w'), true) => InputRequest::DeletePrevWord,
        (Code::Char('u'), true) => InputRequest::DeleteLine,
        (Code::Char('a'), true) => InputRequest::GoToStart,
        (Code::Char('e'), true) => InputRequest::GoToEnd,
        (Code::Char(c), false) => InputRequest::InsertChar(c),
        (Code::Backspace, _) => InputRequest::DeletePrevChar,
        (Code::Delete, _) => InputRequest::DeleteNextChar,
        (Code::Left, _) => InputRequest::GoToPrevChar,
        (Code::Right, _) => InputRequest::GoToNextChar,
        (Code::Home, _) => InputRequest::GoToStart,
        (Code::End, _) => InputRequest::GoToEnd,
        _ => return None,
    })
}

/// Commands completing a prefix (names first, then aliases).
pub fn completions(prefix: &str) -> Vec<&'static str> {
    let p = prefix.trim_start_matches(':');
    let mut v: Vec<&'static str> = COMMANDS.iter().map(|c| c.0).filter(|n| n.starts_with(p)).collect();
    v.extend(
        ["new-app", "rollout", "retire", "mode", "silence", "maint", "restore", "quit"]
            .iter()
            .filter(|n| n.starts_with(p)),
    );
    v
}

/// A parsed `:` command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandLine {
    pub view: Option<ViewKind>,
    pub cloud: Option<String>,
    pub filter: Option<String>,
    pub quit: bool,
    /// `:mode off|dry-run|auto`: switch the engine.
    pub mode: Option<crate::config::settings::EngineMode>,
    /// `:retire APP`: remove an application's members.
    pub retire: Option<String>,
    /// `:new-app NAME`: a new application from the cloud's catalog.
    pub new_app: Option<String>,
    /// `:rollout status|pause|resume|abort APP`, `:rollout undo APP REV`.
    pub rollout: Option<(String, String, Option<u32>)>,
    /// `:silence DURATION`: silence the selected alert.
    pub silence: Option<chrono::Duration>,
    /// `:maint` (true) / `:maint off` (false) on the selected member.
    pub maint: Option<bool>,
    /// `:restore new NAME [type=T] [az=Z]` / `:restore over [VOLUME]` on the selected backup.
    pub restore: Option<RestoreTo>,
}

/// Where `:restore` puts the selected backup.
#[derive(Debug, Clone, PartialEq)]
pub enum RestoreTo {
    New {
        name: String,
        volume_type: Option<String>,
        az: Option<String>,
    },
    /// Over a volume (the backup's own when `None`).
    Over(Option<String>),
}

fn parse_restore<'a>(words: &mut impl Iterator<Item = &'a str>) -> Result<RestoreTo, String> {
    let usage = "`:restore new NAME [type=TYPE] [az=ZONE]` or `:restore over [VOLUME]`";
    match words.next().map(|w| w.to_ascii_lowercase()).as_deref() {
        Some("new") => {
            let name = words.next().ok_or_else(|| format!("name the new volume: {usage}"))?.to_string();
            let (mut volume_type, mut az) = (None, None);
            for w in words {
                match w.split_once('=') {
                    Some(("type", t)) if !t.is_empty() => volume_type = Some(t.to_string()),
                    Some(("az", z)) if !z.is_empty() => az = Some(z.to_string()),
                    _ => return Err(format!("`{w}`: {usage}")),
                }
            }
            Ok(RestoreTo::New { name, volume_type, az })
        }
        Some("over") => {
            let v = words.next().map(String::from);
            match words.next() {
                Some(w) => Err(format!("unexpected `{w}`: {usage}")),
                None => Ok(RestoreTo::Over(v)),
            }
        }
        Some(other) => Err(format!("`{other}`: restore to a new volume or over one: {usage}")),
        None => Err(usage.into()),
    }
}

/// Parse `servers @cloud /filter` (and `q`/`quit`).
fn parse_command(line: &str) -> Result<CommandLine, String> {
    let line = line.trim().trim_start_matches(':');
    let mut c = CommandLine::default();
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if let Some(cl) = w.strip_prefix('@') {
            c.cloud = Some(cl.to_string());
        } else if c.view.is_none()
            && c.cloud.is_none()
            && !c.quit
            && ["cloud", "ctx"].iter().any(|x| w.eq_ignore_ascii_case(x))
            && words.clone().next().is_some_and(|n| !n.starts_with('/') && !n.starts_with('@'))
        {
            // `:cloud NAME` shows one cloud in the view on screen; `:cloud *` all of them.
            c.cloud = words.next().map(String::from);
        } else if let Some(f) = w.strip_prefix('/') {
            let mut f = f.to_string();
            for rest in words.by_ref() {
                f.push(' ');
                f.push_str(rest);
            }
            c.filter = Some(f);
        } else if c.view.is_none() && !c.quit && w.eq_ignore_ascii_case("retire") {
            match words.next() {
                Some(a) => c.retire = Some(a.to_string()),
                None => return Err("retire which application? `:retire APP`".into()),
            }
        } else if c.view.is_none() && !c.quit && w.eq_ignore_ascii_case("rollout") {
            let usage = "`:rollout status|pause|resume|abort APP` or `:rollout undo APP REVISION`";
            let (Some(sub), Some(app)) = (words.next(), words.next()) else { return Err(usage.into()) };
            let sub = sub.to_ascii_lowercase();
            let rev = match (sub.as_str(), words.next()) {
                ("undo", Some(r)) => Some(r.parse::<u32>().map_err(|_| format!("`{r}` is not a revision; {usage}"))?),
                ("undo", None) => return Err(format!("undo to which revision? {usage}")),
                ("status" | "pause" | "resume" | "abort", None) => None,
                _ => return Err(usage.into()),
            };
            c.rollout = Some((sub, app.to_string(), rev));
        } else if c.view.is_none() && !c.quit && w.eq_ignore_ascii_case("silence") {
            let d = words.next().unwrap_or("1h");
            match crate::domain::time::parse_duration(d) {
                Some(x) if x.as_secs() >= 60 && x.as_secs() <= 30 * 86_400 => {
                    c.silence = Some(chrono::Duration::from_std(x).unwrap_or(chrono::Duration::hours(1)))
                }
                _ => return Err(format!("`{d}`: silence for a duration from 1m to 30d, e.g. `:silence 4h`")),
            }
        } else if c.view.is_none() && !c.quit && w.eq_ignore_ascii_case("restore") {
            c.restore = Some(parse_restore(&mut words)?);
        } else if c.view.is_none() && !c.quit && w.eq_ignore_ascii_case("maint") {
            match words.next().map(|x| x.to_ascii_lowercase()) {
                None => c.maint = Some(true),
                Some(x) if x == "on" => c.maint = Some(true),
                Some(x) if x == "off" => c.maint = Some(false),
                Some(x) => return Err(format!("`:maint {x}`: use `:maint` or `:maint off`")),
            }
        } else if c.view.is_none() && !c.quit && w.eq_ignore_ascii_case("new-app") {
            match words.next() {
                Some(a) => c.new_app = Some(a.to_string()),
                None => return Err("name the application: `:new-app NAME`".into()),
            }
        } else if c.view.is_none() && !c.quit && w.eq_ignore_ascii_case("mode") {
            let m = words.next().unwrap_or_default();
            match crate::config::settings::EngineMode::parse(m) {
                Some(m) => c.mode = Some(m),
                None => return Err(format!("mode `{m}`: use :mode off, :mode dry-run or :mode auto")),
            }
        } else if c.view.is_none() && !c.quit {
            let w = w.to_ascii_lowercase();
            match COMMANDS.iter().find(|(n, aliases, _)| *n == w || aliases.contains(&w.as_str())) {
                Some((_, _, k)) => c.view = Some(*k),
                None if w == "q" || w == "quit" || w == "q!" => c.quit = true,
                None => {
                    let names: Vec<&str> = COMMANDS.iter().map(|c| c.0).collect();
                    return Err(format!("unknown command `{w}`; try {}", names.join(", ")));
                }
            }
        } else {
            return Err(format!("unexpected `{w}`; use `:view @cloud /filter`"));
        }
    }
    Ok(c)
}

/// Apply a message to the state; return the effects to carry out.
pub fn update(app: &mut App, msg: Msg) -> Vec<Effect> {
    if !matches!(msg, Msg::Tick(_) | Msg::Snapshot(_)) {
        // The runtime redraws after every other message.
        app.clock.due.set(true);
    }
    match msg {
        Msg::InputLost(_) | Msg::Quit => {
            app.quit = true;
            vec![Effect::Quit]
        }
        Msg::Resize(w, h) => {
            app.size = (w, h);
            let sel = app.view().selected;
            app.select(sel);
            vec![]
        }
        Msg::Tick(now) => {
            tick(app, now);
            vec![]
        }
        Msg::Snapshot(s) => {
            // A refresh that brought no change leaves the rows as they are.
            let same = app.snapshot.same_data(&s);
            // It still moves poll times: redraw what shows them, and the CPU
            // cells when their metrics turned stale or fresh again.
            if same && app.frozen.is_none() {
                let stale_moved = app.snapshot.clouds.iter().zip(s.clouds.iter()).any(|(a, b)| {
                    super::view::metrics_stale_at(a, app.now, app.stale_after)
                        != super::view::metrics_stale_at(b, app.now, app.stale_after)
                });
                if stale_moved || app.clock.polls.get() {
                    app.clock.due.set(true);
                }
            } else if !same {
                app.clock.due.set(true);
            }
            app.snapshot = s;
            if app.cloud >= app.snapshot.clouds.len() {
                app.cloud = 0;
            }
            if app.frozen.is_none() && !same {
                app.refresh_rows();
            }
            vec![]
        }
        Msg::ActionDone(e) => {
            let sev = if e.result == "ok" { Severity::Info } else { Severity::Warning };
            let text = format!(
                "{} {}: {}{}",
                e.action,
                e.target.clone().unwrap_or_default(),
                e.result,
                e.detail.as_ref().map(|d| format!(" — {d}")).unwrap_or_default()
            );
            app.notify(text, sev);
            let cloud = e.cloud.clone();
            app.push_event(e);
            if app.view().kind == ViewKind::Events {
                app.refresh_rows();
            }
            vec![Effect::Refresh { cloud, kind: Kind::Servers }]
        }
        Msg::Events(list) => {
            for e in list {
                if !app.events.iter().any(|x| x.id != 0 && x.id == e.id) {
                    app.push_event(e);
                }
            }
            if app.view().kind == ViewKind::Events {
                app.refresh_rows();
            }
            vec![]
        }
        Msg::Deliveries(book, ops) => {
            app.deliveries = book;
            app.alert_ops = ops;
            vec![]
        }
        Msg::Engine(v) => {
            app.engine = Some(v);
            if matches!(app.view().kind, ViewKind::Alerts | ViewKind::Plan | ViewKind::Policies) {
                app.refresh_rows();
            }
            vec![]
        }
        Msg::TaskDied(what) => {
            if !app.banners.contains(&what) {
                app.banners.push(what);
            }
            vec![]
        }
        Msg::Console { server_id, result } => {
            app.console.insert(
                server_id,
                match result {
                    Ok(t) => ConsoleState::Text(t),
                    Err(e) => ConsoleState::Failed(e),
                },
            );
            vec![]
        }
        Msg::ServerRecord { cloud, server_id, result } => {
            record_read(app, cloud, server_id, result);
            vec![]
        }
        Msg::PolicyLoaded(doc) => super::editing::loaded(app, doc),
        Msg::Edited { policy_id, file, base, outcome } => super::editing::edited(app, policy_id, file, base, outcome),
        Msg::Previewed { file, text, result } => {
            super::editing::preview_done(app, &file, &text, result);
            vec![]
        }
        Msg::PolicySaved(p) => super::editing::saved(app, p),
        Msg::Show(title, text) => {
            app.mode = Mode::Raw { title, text, scroll: 0 };
            vec![]
        }
        Msg::RestorePlanned(Err(e)) => {
            app.notify(format!("restore: {e}"), Severity::Warning);
            vec![]
        }
        Msg::RestorePlanned(Ok(job)) => {
            let name = match &job.target {
                crate::engine::restore::Target::NewVolume { name, .. } => format!("to a new volume {name}"),
                crate::engine::restore::Target::Existing { volume_id } => format!("over volume {volume_id}"),
            };
            app.mode = Mode::Confirm {
                pending: Pending {
                    action: Action::RestoreBackup,
                    cloud: job.cloud.clone(),
                    server_id: job.op.clone(),
                    server_name: format!("backup {} {name}", job.backup_id),
                    member: false,
                },
                confirm_focused: false,
                typed: None,
            };
            app.restore_plan = Some(*job);
            vec![]
        }
        Msg::Key(k) => key(app, k),
        Msg::Mouse { kind, column, row } => {
            mouse(app, kind, column, row);
            vec![]
        }
        Msg::KioskNext => {
            if let Some(k) = app.kiosk.as_mut() {
                k.step = k.step.wrapping_add(1);
                k.turned_at = app.now;
            }
            if let Some(p) = app.kiosk_page() {
                if app.view().kind == ViewKind::Overview {
                    (app.merged, app.cloud) = (false, p.cloud);
                    if let Some(id) = p.app {
                        if let Some(i) = app.rows.position(&id) {
                            app.select(i);
                        }
                    }
                }
            }
            vec![]
        }
    }
}

/// Rows of the screen above a view's body: the header line and the banners.
pub fn body_top(app: &App) -> u16 {
    1 + banner_height(app)
}

/// Lines the banners of dead tasks take (at most three).
pub fn banner_height(app: &App) -> u16 {
    (app.banners.len() as u16).min(3).min(app.size.1.saturating_sub(3))
}

/// Views whose body is a table from its top (a click picks a row).
fn table_view(kind: ViewKind) -> bool {
    matches!(
        kind,
        ViewKind::Apps
            | ViewKind::Servers
            | ViewKind::Storage
            | ViewKind::Alerts
            | ViewKind::Events
            | ViewKind::Clouds
            | ViewKind::Policies
    )
}

/// Rows a wheel notch moves.
const WHEEL_ROWS: usize = 3;

/// A click selects the table row under the pointer; the wheel moves the
/// selection (or scrolls the help and raw text).
fn mouse(app: &mut App, kind: MouseKind, _column: u16, row: u16) {
    let help_max = help_max_scroll(app);
    match (&mut app.mode, kind) {
        (Mode::Help { scroll }, MouseKind::ScrollDown) => {
            *scroll = scroll.saturating_add(WHEEL_ROWS as u16).min(help_max)
        }
        (Mode::Help { scroll }, MouseKind::ScrollUp) => *scroll = scroll.saturating_sub(WHEEL_ROWS as u16),
        (Mode::Raw { scroll, text, .. }, MouseKind::ScrollDown) => {
            *scroll = scroll.saturating_add(WHEEL_ROWS as u16).min(text.lines().count() as u16)
        }
        (Mode::Raw { scroll, .. }, MouseKind::ScrollUp) => *scroll = scroll.saturating_sub(WHEEL_ROWS as u16),
        (Mode::Normal, MouseKind::ScrollDown) => {
            let sel = app.view().selected;
            app.select(sel + WHEEL_ROWS);
        }
        (Mode::Normal, MouseKind::ScrollUp) => {
            let sel = app.view().selected;
            app.select(sel.saturating_sub(WHEEL_ROWS));
        }
        (Mode::Normal, MouseKind::Click) => {
            if !table_view(app.view().kind) {
                return;
            }
            // Border, then the column titles, then the rows from the offset.
            let first = body_top(app) + 2;
            let Some(n) = row.checked_sub(first) else { return };
            if n as usize >= app.page() {
                return;
            }
            let i = app.view().offset + n as usize;
            if i < app.rows.len() {
                app.message = None;
                app.select(i);
            }
        }
        _ => {}
    }
}

fn key(app: &mut App, k: Key) -> Vec<Effect> {
    match app.mode.clone() {
        Mode::Command { mut input, completion } => command_key(app, k, &mut input, completion),
        Mode::Filter { mut input } => {
            match k.code {
                Code::Enter => app.mode = Mode::Normal,
                Code::Esc => {
                    app.view_mut().filter.clear();
                    app.mode = Mode::Normal;
                    app.refresh_rows();
                }
                _ => {
                    if let Some(r) = input_request(k) {
                        input.handle(r);
                    }
                    app.view_mut().filter = input.value().to_string();
                    app.mode = Mode::Filter { input };
                    app.refresh_rows();
                }
            }
            vec![]
        }
        Mode::Confirm { pending, confirm_focused, typed } => confirm_key(app, k, pending, confirm_focused, typed),
        Mode::Help { scroll } => {
            let max = help_max_scroll(app);
            let page = help_page(app);
            app.mode = match (k.code, k.ctrl) {
                (Code::Down | Code::Char('j'), false) => Mode::Help { scroll: scroll.saturating_add(1).min(max) },
                (Code::Up | Code::Char('k'), false) => Mode::Help { scroll: scroll.saturating_sub(1) },
                (Code::PageDown | Code::Char(' '), false) | (Code::Char('d'), true) => {
                    Mode::Help { scroll: scroll.saturating_add(page).min(max) }
                }
                (Code::PageUp, false) | (Code::Char('u'), true) => Mode::Help { scroll: scroll.saturating_sub(page) },
                (Code::Home | Code::Char('g'), false) => Mode::Help { scroll: 0 },
                (Code::End | Code::Char('G'), false) => Mode::Help { scroll: max },
                (Code::Esc | Code::Enter | Code::Char('q') | Code::Char('?'), false) => Mode::Normal,
                _ => Mode::Help { scroll },
            };
            vec![]
        }
        Mode::Raw { title, text, scroll } => {
            let lines = text.lines().count() as u16;
            let page = app.page() as u16;
            app.mode = match k.code {
                Code::Down | Code::Char('j') => Mode::Raw { title, text, scroll: (scroll + 1).min(lines) },
                Code::Up | Code::Char('k') => Mode::Raw { title, text, scroll: scroll.saturating_sub(1) },
                Code::PageDown | Code::Char(' ') => Mode::Raw { title, text, scroll: (scroll + page).min(lines) },
                Code::PageUp => Mode::Raw { title, text, scroll: scroll.saturating_sub(page) },
                _ => Mode::Normal,
            };
            vec![]
        }
        Mode::Form(form) => super::editing::form_key(app, k, *form),
        Mode::Review(r) => super::editing::review_key(app, k, *r),
        Mode::Normal => normal_key(app, k),
    }
}

fn command_key(app: &mut App, k: Key, input: &mut Input, completion: usize) -> Vec<Effect> {
    match k.code {
        Code::Esc => {
            app.mode = Mode::Normal;
            vec![]
        }
        Code::Tab => {
            let c = completions(input.value());
            if let Some(first) = c.get(completion % c.len().max(1)) {
                *input = Input::new(first.to_string());
            }
            app.mode = Mode::Command { input: input.clone(), completion: completion + 1 };
            vec![]
        }
        Code::Up | Code::Down => {
            if !app.history.is_empty() {
                let n = app.history.len();
                let pos = match (app.history_pos, k.code) {
                    (None, Code::Up) => n - 1,
                    (Some(p), Code::Up) => p.saturating_sub(1),
                    (Some(p), _) => (p + 1).min(n - 1),
                    (None, _) => n - 1,
                };
                app.history_pos = Some(pos);
                *input = Input::new(app.history.get(pos).cloned().unwrap_or_default());
            }
            app.mode = Mode::Command { input: input.clone(), completion };
            vec![]
        }
        Code::Enter => {
            let line = input.value().to_string();
            app.mode = Mode::Normal;
            run_command(app, &line)
        }
        _ => {
            if let Some(r) = input_request(k) {
                input.handle(r);
            }
            app.mode = Mode::Command { input: input.clone(), completion: 0 };
            vec![]
        }
    }
}

/// Carry out a `:` command line.
pub fn run_command(app: &mut App, line: &str) -> Vec<Effect> {
    if line.trim().is_empty() {
        return vec![];
    }
    app.history.retain(|h| h != line.trim());
    app.history.push(line.trim().to_string());
    app.history_pos = None;
    match parse_command(line) {
        Err(e) => {
            app.notify(e, Severity::Warning);
            vec![]
        }
        Ok(CommandLine { quit: true, .. }) => update(app, Msg::Quit),
        Ok(CommandLine { retire: Some(name), .. }) => ask_retire(app, &name),
        Ok(CommandLine { new_app: Some(name), .. }) => super::editing::new_app(app, &name),
        Ok(CommandLine { rollout: Some((sub, name, rev)), .. }) => ask_rollout(app, &sub, &name, rev),
        Ok(CommandLine { silence: Some(d), .. }) => alert_op(app, AlertOp::Silence(d)),
        Ok(CommandLine { maint: Some(on), .. }) => maintenance(app, on),
        Ok(CommandLine { restore: Some(to), .. }) => ask_restore(app, to),
        Ok(CommandLine { mode: Some(m), .. }) => {
            use crate::config::settings::EngineMode;
            if app.engine.is_none() {
                app.notify("no engine runs in this console: set [engine] mode in config.toml", Severity::Warning);
                return vec![];
            }
            if m == EngineMode::Auto {
                if app.read_only {
                    app.notify("read-only: the engine may plan but not act", Severity::Warning);
                    return vec![];
                }
                // Letting the engine act is confirmed like any dangerous action.
                return normal_action(app, Action::EngineAuto);
            }
            app.notify(format!("engine mode {}", m.as_str()), Severity::Info);
            vec![Effect::EngineControl(EngineCommand::SetMode(m))]
        }
        Ok(CommandLine { view, cloud, filter, .. }) => {
            if let Some(c) = cloud {
                match app.shown().clouds.iter().position(|x| x.name == c) {
                    _ if c == "*" => app.merged = true,
                    Some(i) => (app.merged, app.cloud) = (false, i),
                    None => {
                        let names: Vec<String> = app.shown().clouds.iter().map(|x| x.name.clone()).collect();
                        app.notify(format!("no cloud `{c}`; clouds: {}", names.join(", ")), Severity::Warning);
                        return vec![];
                    }
                }
            }
            if let Some(v) = view {
                app.goto(v);
            }
            if let Some(f) = filter {
                app.view_mut().filter = f;
            }
            app.refresh_rows();
            vec![]
        }
    }
}

fn confirm_key(app: &mut App, k: Key, pending: Pending, focused: bool, typed: Option<Input>) -> Vec<Effect> {
    match k.code {
        Code::Esc => {
            app.mode = Mode::Normal;
            app.notify(format!("{} cancelled", info_of(pending.action).name), Severity::Info);
            vec![]
        }
        Code::Tab | Code::BackTab | Code::Left | Code::Right => {
            app.mode = Mode::Confirm { pending, confirm_focused: !focused, typed };
            vec![]
        }
        Code::Enter => {
            app.mode = Mode::Normal;
            if !focused {
                app.notify(format!("{} cancelled", info_of(pending.action).name), Severity::Info);
                return vec![];
            }
            if let Some(t) = &typed {
                if t.value() != pending.server_name {
                    app.notify(
                        format!("the typed name does not match `{}`; nothing done", pending.server_name),
                        Severity::Warning,
                    );
                    return vec![];
                }
            }
            let q = confirm_question(app, &pending);
            app.notify(format!("{} {}…", q.verb, q.what), Severity::Info);
            match pending.action {
                Action::PauseEngine => vec![Effect::EngineControl(EngineCommand::TogglePause)],
                Action::Rollout => rollout_command(&pending.server_id)
                    .map(|cmd| {
                        vec![Effect::Rollout { cloud: pending.cloud.clone(), app: pending.server_name.clone(), cmd }]
                    })
                    .unwrap_or_default(),
                Action::ApprovePlan => vec![Effect::EngineControl(EngineCommand::ApprovePlan)],
                Action::EngineAuto => {
                    vec![Effect::EngineControl(EngineCommand::SetMode(crate::config::settings::EngineMode::Auto))]
                }
                Action::RetireApp => {
                    vec![Effect::EngineControl(EngineCommand::Retire {
                        cloud: pending.cloud,
                        app: pending.server_name,
                    })]
                }
                Action::RestoreBackup => match app.restore_plan.take() {
                    Some(job) if job.op == pending.server_id => vec![Effect::QueueRestore(Box::new(job))],
                    _ => vec![],
                },
                _ => vec![Effect::ServerAction(pending)],
            }
        }
        _ => {
            let mut typed = typed;
            if let (Some(t), Some(r)) = (typed.as_mut(), input_request(k)) {
                t.handle(r);
            } else if matches!(k.code, Code::Char('h')) {
                return confirm_key(app, Key::code(Code::Left), pending, focused, typed);
            } else if matches!(k.code, Code::Char('l')) {
                return confirm_key(app, Key::code(Code::Right), pending, focused, typed);
            }
            app.mode = Mode::Confirm { pending, confirm_focused: focused, typed };
            vec![]
        }
    }
}

fn normal_key(app: &mut App, k: Key) -> Vec<Effect> {
    app.message = None;
    let ctx = app.view().kind.contexts();
    let Some(action) = app.keymap.action(k, &ctx) else {
        // Shift + a column's letter sorts by it; again reverses.
        if let Code::Char(c) = k.code {
            if c.is_ascii_uppercase() && !k.ctrl && rows::sort_columns(app.view().kind).contains(&c) {
                let v = app.view_mut();
                v.sort = match v.sort {
                    Some((s, desc)) if s == c => Some((c, !desc)),
                    _ => Some((c, false)),
                };
                app.refresh_rows();
            }
        }
        return vec![];
    };
    normal_action(app, action)
}

fn normal_action(app: &mut App, action: Action) -> Vec<Effect> {
    let page = app.page();
    let sel = app.view().selected;
    match action {
        Action::Quit => return update(app, Msg::Quit),
        Action::Help => app.mode = Mode::Help { scroll: 0 },
        Action::Command => app.mode = Mode::Command { input: Input::default(), completion: 0 },
        Action::Filter => {
            let f = app.view().filter.clone();
            app.mode = Mode::Filter { input: Input::new(f) };
        }
        Action::Back => {
            if !app.view().filter.is_empty() {
                app.view_mut().filter.clear();
                app.refresh_rows();
            } else if app.notice.is_some() {
                // The demo line says Esc hides it: the first Esc without a
                // filter does, wherever the operator is.
                app.notice = None;
            } else {
                app.back();
            }
        }
        Action::PreviousView => {
            app.back();
        }
        Action::Up => app.select(sel.saturating_sub(1)),
        Action::Down => app.select(sel + 1),
        Action::Top => app.select(0),
        Action::Bottom => app.select(usize::MAX),
        Action::PageUp => app.select(sel.saturating_sub(page)),
        Action::PageDown => app.select(sel + page),
        Action::HalfPageUp => app.select(sel.saturating_sub(page / 2)),
        Action::HalfPageDown => app.select(sel + page / 2),
        Action::Open => return open(app),
        Action::Raw => return raw(app),
        Action::HistoryPrev | Action::HistoryNext => {
            if !app.history.is_empty() {
                let n = app.history.len();
                let pos = match (app.history_pos, action) {
                    (None, _) => n - 1,
                    (Some(p), Action::HistoryPrev) => p.saturating_sub(1),
                    (Some(p), _) => (p + 1).min(n - 1),
                };
                app.history_pos = Some(pos);
                let line = app.history.get(pos).cloned().unwrap_or_default();
                let saved = app.history.clone();
                let effects = run_command(app, &line);
                app.history = saved;
                app.history_pos = Some(pos);
                return effects;
            }
        }
        Action::Freeze => {
            if app.frozen.take().is_none() {
                app.frozen = Some(app.snapshot.clone());
                app.notify("frozen: data stops moving until f", Severity::Info);
            } else {
                app.refresh_rows();
            }
        }
        Action::ZoomIn => app.window_secs = (app.window_secs / 2).max(300),
        Action::ZoomOut => app.window_secs = (app.window_secs * 2).min(86_400),
        Action::NextCloud => {
            // One cloud after the other, then all of them (when there are several).
            let n = app.shown().clouds.len().max(1);
            if app.all_clouds() {
                (app.merged, app.cloud) = (false, 0);
            } else if app.cloud + 1 >= n && n > 1 {
                app.merged = true;
            } else {
                (app.merged, app.cloud) = (false, (app.cloud + 1) % n);
            }
            app.notify(format!("showing {}", app.scope_label()), Severity::Info);
            app.refresh_rows();
        }
        Action::Refresh => {
            let clouds: Vec<String> = if app.all_clouds() {
                app.shown().clouds.iter().map(|c| c.name.clone()).collect()
            } else {
                vec![app.cloud_name()]
            };
            return clouds
                .iter()
                .flat_map(|cloud| Kind::ALL.iter().map(|k| Effect::Refresh { cloud: cloud.clone(), kind: *k }))
                .collect();
        }
        Action::Start | Action::Stop | Action::Reboot | Action::HardReboot | Action::Delete => return ask(app, action),
        Action::RetireApp => app.notify("retire an application with `:retire APP`", Severity::Info),
        Action::NewApp => app.notify("create an application with `:new-app NAME`", Severity::Info),
        Action::Rollout => app.notify("steer a rollout with `:rollout pause|resume|abort|undo APP`", Severity::Info),
        Action::AckAlert => return alert_op(app, AlertOp::Ack),
        Action::SilenceAlert => return alert_op(app, AlertOp::Silence(chrono::Duration::hours(1))),
        Action::Maintenance => {
            app.notify("`:maint` puts the selected member in maintenance, `:maint off` ends it", Severity::Info)
        }
        Action::RestoreBackup => return start_restore(app),
        Action::QuickEdit | Action::EditPolicy => return edit_policy(app, action),
        Action::RenderPolicy => super::editing::render(app),
        Action::MarkChange | Action::DiffChange | Action::RestoreChange => {
            return super::editing::history_action(app, action)
        }
        Action::ConsoleLog => {
            if let Some((cloud, id)) = selected_server(app) {
                app.console.insert(id.clone(), ConsoleState::Loading);
                if app.view().kind != ViewKind::ServerDetail {
                    open_server(app, &id);
                }
                return vec![Effect::FetchConsole { cloud, server_id: id }];
            }
        }
        Action::PauseEngine | Action::ApprovePlan | Action::EngineAuto => {
            if app.engine.is_none() {
                app.notify("no engine runs in this console: set [engine] mode in config.toml", Severity::Warning);
                return vec![];
            }
            let what = match action {
                Action::PauseEngine => "the engine",
                Action::ApprovePlan => "the plan",
                _ => "auto mode",
            };
            app.mode = Mode::Confirm {
                pending: Pending {
                    action,
                    cloud: String::new(),
                    server_id: String::new(),
                    server_name: what.into(),
                    member: false,
                },
                confirm_focused: false,
                typed: None,
            };
        }
    }
    vec![]
}

/// What an operator does to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertOp {
    /// No more repeats of this occurrence.
    Ack,
    /// Nothing sent for it for this long (through Alertmanager when there is one).
    Silence(chrono::Duration),
}

/// Acknowledge or silence the selected alert.
pub fn alert_op(app: &mut App, op: AlertOp) -> Vec<Effect> {
    if app.view().kind != ViewKind::Alerts {
        app.notify("acknowledge and silence alerts in the Alerts view (:alerts)", Severity::Info);
        return vec![];
    }
    if app.read_only {
        app.notify("read-only: alerts are not acknowledged or silenced from this console", Severity::Warning);
        return vec![];
    }
    let Some(key) = app.view().selected_id.clone() else {
        app.notify("no alert selected", Severity::Info);
        return vec![];
    };
    let Some(alert) = app.alerts().into_iter().find(|a| a.key == key) else { return vec![] };
    if !alert.is_active() {
        app.notify("this alert is resolved: nothing to acknowledge or silence", Severity::Info);
        return vec![];
    }
    vec![Effect::AlertOp { alert: Box::new(alert), op }]
}

/// The backup selected in the Volumes & Backups view.
fn selected_backup(app: &App) -> Option<crate::domain::Backup> {
    let v = app.view();
    if v.kind != ViewKind::Storage {
        return None;
    }
    let key = v.selected_key()?;
    let id = key.strip_prefix("bak:")?;
    app.cloud_snapshot()?.backups.iter().find(|b| b.id == id).cloned()
}

/// `R` on a backup: the command line, ready for `:restore`.
fn start_restore(app: &mut App) -> Vec<Effect> {
    let Some(b) = selected_backup(app) else {
        app.notify("select a backup row of the Volumes & Backups view (:volumes, j/k) to restore", Severity::Info);
        return vec![];
    };
    let vol = app
        .cloud_snapshot()
        .and_then(|c| c.volumes.iter().find(|v| v.id == b.volume_id).map(|v| v.label().to_string()))
        .unwrap_or_else(|| "volume".into());
    let line = format!("restore new {vol}-restored");
    app.mode = Mode::Command { input: Input::new(line), completion: 0 };
    vec![]
}

/// `:restore ...` on the selected backup: the engine plans the steps (read
/// from the cloud); they are shown for confirmation, then left for the
/// engine to carry out.
fn ask_restore(app: &mut App, to: RestoreTo) -> Vec<Effect> {
    if app.read_only {
        app.notify("read-only: nothing is restored from this console", Severity::Warning);
        return vec![];
    }
    if app.engine.is_none() {
        app.notify(
            "no engine runs in this console: use `stackpilot backup restore`, or set [engine] mode",
            Severity::Warning,
        );
        return vec![];
    }
    let Some(b) = selected_backup(app) else {
        app.notify("select a backup row of the Volumes & Backups view (:volumes, j/k) to restore", Severity::Info);
        return vec![];
    };
    let target = match to {
        RestoreTo::New { name, volume_type, az } => {
            crate::engine::restore::Target::NewVolume { name, volume_type, availability_zone: az }
        }
        RestoreTo::Over(v) => {
            let want = v.unwrap_or_else(|| b.volume_id.clone());
            let found = app
                .cloud_snapshot()
                .and_then(|c| c.volumes.iter().find(|x| x.id == want || x.name.as_deref() == Some(want.as_str())))
                .map(|x| x.id.clone());
            crate::engine::restore::Target::Existing { volume_id: found.unwrap_or(want) }
        }
    };
    app.notify(format!("planning the restore of {}…", b.label()), Severity::Info);
    vec![Effect::PlanRestore { cloud: app.cloud_name(), backup_id: b.id, target }]
}

/// `:maint` / `:maint off` on the selected member.
fn maintenance(app: &mut App, on: bool) -> Vec<Effect> {
    if app.read_only {
        app.notify("read-only: maintenance is not changed from this console", Severity::Warning);
        return vec![];
    }
    let Some((cloud, id)) = selected_server(app) else {
        app.notify("select a server (Servers view) for :maint", Severity::Info);
        return vec![];
    };
    let member = app
        .cloud_snapshot()
        .and_then(|c| c.server(&id))
        .is_some_and(|s| crate::engine::members::owner(s).is_some() || s.app().is_some());
    if !member {
        app.notify(
            "maintenance is for members of an application (the engine leaves other servers alone anyway)",
            Severity::Info,
        );
        return vec![];
    }
    vec![Effect::Maintenance { cloud, server_id: id, on }]
}

/// `:rollout ...`: status is shown at once; a change is confirmed (and refused
/// read-only) before it is left for the acting engine.
fn ask_rollout(app: &mut App, sub: &str, name: &str, rev: Option<u32>) -> Vec<Effect> {
    let cloud = app.cloud_name();
    if sub == "status" {
        return vec![Effect::RolloutStatus { cloud, app: name.to_string() }];
    }
    if app.read_only {
        app.notify("read-only: rollouts are not changed from this console", Severity::Warning);
        return vec![];
    }
    let what = match rev {
        Some(r) => format!("undo:{r}"),
        None => sub.to_string(),
    };
    app.mode = Mode::Confirm {
        pending: Pending {
            action: Action::Rollout,
            cloud,
            server_id: what,
            server_name: name.to_string(),
            member: false,
        },
        confirm_focused: false,
        typed: None,
    };
    vec![]
}

/// The rollout command a confirmation carries (`pause`, `undo:3`, ...).
pub fn rollout_command(what: &str) -> Option<crate::engine::rollout::Command> {
    use crate::engine::rollout::Command;
    Some(match what.split_once(':') {
        Some(("undo", r)) => Command::Undo { revision: r.parse().ok()? },
        _ => match what {
            "pause" => Command::Pause,
            "resume" => Command::Resume,
            "abort" => Command::Abort,
            _ => return None,
        },
    })
}

/// `c` and `e` on a policy: the form or the editor, once its file is loaded.
fn edit_policy(app: &mut App, action: Action) -> Vec<Effect> {
    let Some(p) = super::editing::selected_policy(app) else {
        app.notify("no policy selected", Severity::Info);
        return vec![];
    };
    if p.state == "retired" {
        app.notify(format!("{} is retired: create it again with :new-app", p.app), Severity::Info);
        return vec![];
    }
    let then = if action == Action::QuickEdit { super::editing::Then::Form } else { super::editing::Then::Editor };
    // Always from the file as it is now.
    super::editing::load(app, &p, Some(then))
}

/// `:retire APP`: refused under --read-only or without an engine; otherwise
/// confirmed by typing the application's name (it removes every member).
fn ask_retire(app: &mut App, name: &str) -> Vec<Effect> {
    if app.read_only {
        app.notify("read-only: retiring an application is not allowed", Severity::Warning);
        return vec![];
    }
    if app.engine.is_none() {
        app.notify(
            "no engine runs in this console: use `stackpilot policy retire APP`, or set [engine] mode",
            Severity::Warning,
        );
        return vec![];
    }
    let cloud = app.cloud_name();
    app.mode = Mode::Confirm {
        pending: Pending {
            action: Action::RetireApp,
            cloud,
            server_id: String::new(),
            server_name: name.to_string(),
            member: false,
        },
        confirm_focused: false,
        typed: Some(Input::default()),
    };
    vec![]
}

/// The server a server action applies to (selected row, or the detail view's).
pub fn selected_server(app: &App) -> Option<(String, String)> {
    let v = app.view();
    let id = match v.kind {
        ViewKind::ServerDetail => v.server.clone(),
        ViewKind::Servers => v.selected_key(),
        _ => None,
    }?;
    Some((app.cloud_name(), id))
}

fn ask(app: &mut App, action: Action) -> Vec<Effect> {
    let Some((cloud, id)) = selected_server(app) else {
        app.notify("no server selected", Severity::Warning);
        return vec![];
    };
    let server = app.cloud_snapshot().and_then(|c| c.server(&id));
    let name = server.map(|s| s.display_name().to_string()).unwrap_or_else(|| id.clone());
    let member = server.is_some_and(|s| crate::engine::members::owner(s).is_some());
    let typed = app.protected_clouds.contains(&cloud).then(Input::default);
    app.mode = Mode::Confirm {
        pending: Pending { action, cloud, server_id: id, server_name: name, member },
        confirm_focused: false,
        typed,
    };
    vec![]
}

fn open_server(app: &mut App, id: &str) {
    let mut v = ViewState::new(ViewKind::ServerDetail);
    v.server = Some(id.to_string());
    app.push(v);
}

fn open(app: &mut App) -> Vec<Effect> {
    let v = app.view().clone();
    match v.kind {
        ViewKind::Overview | ViewKind::Apps => {
            if let Some(name) = v.selected_key() {
                let mut s = ViewState::new(ViewKind::Servers);
                s.app = Some(name);
                app.push(s);
            }
        }
        ViewKind::Servers => {
            if let Some(id) = v.selected_key() {
                open_server(app, &id);
            }
        }
        ViewKind::Policies => {
            if let Some(p) = super::editing::selected_policy(app) {
                let mut s = ViewState::new(ViewKind::PolicyDetail);
                s.policy = Some(p.policy_id.clone());
                s.app = Some(p.app.clone());
                app.push(s);
                app.marked_change = None;
                return super::editing::load(app, &p, None);
            }
        }
        ViewKind::Clouds => {
            if let Some(name) = v.selected_id.clone() {
                if let Some(i) = app.shown().clouds.iter().position(|c| c.name == name) {
                    app.cloud = i;
                    app.merged = false;
                    app.goto(ViewKind::Overview);
                }
            }
        }
        _ => return raw(app),
    }
    vec![]
}

/// `y`: the selection as JSON. A server's record is read from its cloud when
/// asked (the inventory keeps servers decoded, not as the API wrote them): the
/// raw view says so until it comes.
fn raw(app: &mut App) -> Vec<Effect> {
    if let Some((cloud, id)) = selected_server(app) {
        let name = app.cloud_snapshot().and_then(|c| c.server(&id)).map(|s| s.display_name().to_string());
        let title = format!("server {}", name.unwrap_or_else(|| id.clone()));
        let text = format!("reading the server's record from cloud {cloud} (GET /servers/{id})…");
        app.mode = Mode::Raw { title: title.clone(), text, scroll: 0 };
        app.record_wanted = Some((cloud.clone(), id.clone(), title));
        return vec![Effect::FetchServer { cloud, server_id: id }];
    }
    if let Some((title, text)) = rows::raw_of_selection(app) {
        app.mode = Mode::Raw { title, text, scroll: 0 };
    } else {
        app.notify("nothing selected", Severity::Info);
    }
    vec![]
}

/// A server's record came (or the API's error): shown in the raw view still
/// waiting for it; one nobody waits for any more is dropped.
fn record_read(app: &mut App, cloud: String, server_id: String, result: Result<String, String>) {
    let Some((c, id, title)) = app.record_wanted.take() else { return };
    if c != cloud || id != server_id {
        app.record_wanted = Some((c, id, title));
        return;
    }
    let Mode::Raw { title: shown, text, scroll } = &mut app.mode else { return };
    if *shown != title {
        return;
    }
    *scroll = 0;
    *text = match result {
        Ok(record) => record,
        Err(e) => format!("cannot read the server's record: {e}"),
    };
}

/// What a confirmation asks: the action's verb (its button) and what it acts on,
/// named in full (`the plan for app web on cloud demo`).
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub verb: &'static str,
    pub what: String,
}

impl Question {
    /// `Approve the plan for app web on cloud demo?`
    pub fn text(&self) -> String {
        format!("{} {}?", self.verb, self.what)
    }
}

/// `cloud demo`, or `clouds demo, demo-east` for what acts on all of them.
fn clouds_phrase(app: &App, cloud: &str) -> String {
    if !cloud.is_empty() {
        return format!("cloud {cloud}");
    }
    let names: Vec<&str> = app.shown().clouds.iter().map(|c| c.name.as_str()).collect();
    match names.as_slice() {
        [] => "no cloud".into(),
        [one] => format!("cloud {one}"),
        many => format!("clouds {}", many.join(", ")),
    }
}

/// The question a confirmation asks about `p`.
pub fn confirm_question(app: &App, p: &Pending) -> Question {
    let on = clouds_phrase(app, &p.cloud);
    let (verb, what) = match p.action {
        Action::Start => ("Start", format!("server {} on {on}", p.server_name)),
        Action::Stop => ("Stop", format!("server {} on {on}", p.server_name)),
        Action::Reboot => ("Reboot", format!("server {} on {on} (soft reboot)", p.server_name)),
        Action::HardReboot => ("Reboot", format!("server {} on {on} (hard reboot: power cycle)", p.server_name)),
        Action::Delete => ("Delete", format!("server {} on {on}", p.server_name)),
        Action::PauseEngine => {
            let paused = app.engine.as_ref().is_some_and(|e| e.paused);
            (if paused { "Resume" } else { "Pause" }, format!("the engine on {on}"))
        }
        Action::ApprovePlan => ("Approve", plan_phrase(app)),
        Action::EngineAuto => ("Switch", format!("the engine to auto mode on {on} (it acts without asking)")),
        Action::RetireApp => ("Retire", format!("app {} on {on} (every member is removed)", p.server_name)),
        Action::Rollout => match p.server_id.split_once(':') {
            Some((_, rev)) => ("Undo", format!("the rollout of app {} on {on}, back to revision {rev}", p.server_name)),
            None => {
                let verb = match p.server_id.as_str() {
                    "pause" => "Pause",
                    "resume" => "Resume",
                    _ => "Abort",
                };
                (verb, format!("the rollout of app {} on {on}", p.server_name))
            }
        },
        Action::RestoreBackup => ("Restore", format!("{} on {on}", p.server_name)),
        other => ("Run", format!("{} on {on}", info_of(other).help)),
    };
    Question { verb, what }
}

/// `the plan for app web on cloud demo`: the applications the plan has steps for.
fn plan_phrase(app: &App) -> String {
    let Some(e) = &app.engine else { return "the engine's plan".into() };
    let acting: Vec<&crate::engine::status::PlanLines> = e.plan.iter().filter(|p| !p.lines.is_empty()).collect();
    let clouds: std::collections::BTreeSet<&str> = acting.iter().map(|p| p.cloud.as_str()).collect();
    match (acting.as_slice(), clouds.len()) {
        ([], _) => "the engine's plan (no step to carry out now)".into(),
        ([one], _) => format!("the plan for app {} on cloud {}", one.app, one.cloud),
        (many, 1) => format!(
            "the plan for apps {} on cloud {}",
            many.iter().map(|p| p.app.as_str()).collect::<Vec<_>>().join(", "),
            clouds.iter().next().copied().unwrap_or_default()
        ),
        (many, _) => format!(
            "the plan for {}",
            many.iter().map(|p| format!("app {} on cloud {}", p.app, p.cloud)).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// One line of the `?` overlay: a key (or command) and what it does.
#[derive(Debug, Clone, PartialEq)]
pub struct HelpLine {
    pub key: String,
    pub text: String,
    pub dangerous: bool,
    /// A section title (`commands`), or an empty spacer when `text` is empty.
    pub heading: bool,
}

/// What `?` lists in the current view: exactly the keys bound here (from the
/// key registry that dispatches them), the sort letters, and the `:` commands.
pub fn help_lines(app: &App) -> Vec<HelpLine> {
    let kind = app.view().kind;
    let ctx = kind.contexts();
    let line =
        |key: String, text: &str, dangerous: bool| HelpLine { key, text: text.to_string(), dangerous, heading: false };
    let heading = |text: &str| HelpLine { key: String::new(), text: text.to_string(), dangerous: false, heading: true };
    let mut v: Vec<HelpLine> = app.keymap.help(&ctx).into_iter().map(|(k, h, d)| line(k, h, d)).collect();
    let sorts = rows::sort_columns(kind);
    if !sorts.is_empty() {
        let letters = sorts.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" ");
        v.push(line(letters, "sort by that column (again: reverse)", false));
    }
    v.push(heading("commands (after :, tab completes)"));
    for (name, aliases, _) in COMMANDS {
        let also = if aliases.is_empty() { String::new() } else { format!(" (also :{})", aliases.join(" :")) };
        v.push(line(format!(":{name}"), &format!("open the view{also}"), false));
    }
    for (usage, help) in app.keymap.command_help(&ctx) {
        v.push(line(usage.to_string(), help, false));
    }
    v
}

/// Lines of the help overlay's text area at the current size (borders off).
pub fn help_page(app: &App) -> u16 {
    let n = help_lines(app).len() as u16;
    n.min(app.size.1.saturating_sub(2)).max(1)
}

/// The last scroll position of the help overlay (its last line at the bottom).
pub fn help_max_scroll(app: &App) -> u16 {
    (help_lines(app).len() as u16).saturating_sub(help_page(app))
}

/// The notice (the demo line) wrapped to the width, at most four lines, the
/// key that hides it named first (from the key registry).
pub fn notice_lines(app: &App) -> Vec<String> {
    let Some(n) = &app.notice else { return vec![] };
    let text = match app.keymap.hint(Action::Back) {
        Some(k) => format!("{k} hides this · {n}"),
        None => n.clone(),
    };
    let width = (app.size.0 as usize).saturating_sub(2).max(10);
    let mut lines = wrap_words(&text, width, app.ascii);
    if lines.len() > 4 {
        lines.truncate(4);
        if let Some(last) = lines.last_mut() {
            *last =
                super::widgets::truncate(&format!("{last} {}", super::widgets::ellipsis(app.ascii)), width, app.ascii);
        }
    }
    lines
}

/// Words of `text` in lines at most `width` columns wide (a longer word is cut
/// with an ellipsis).
pub fn wrap_words(text: &str, width: usize, ascii: bool) -> Vec<String> {
    use unicode_width::UnicodeWidthStr;
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let word = if word.width() > width { super::widgets::truncate(word, width, ascii) } else { word.to_string() };
        if cur.is_empty() {
            cur = word;
        } else if cur.width() + 1 + word.width() <= width {
            cur.push(' ');
            cur.push_str(&word);
        } else {
            lines.push(std::mem::replace(&mut cur, word));
        }
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}
