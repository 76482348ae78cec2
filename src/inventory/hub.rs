//! The hub and the running inventory. One task per (cloud, kind) polls (see
//! `poll`), one observer per cloud runs the readiness probes and Prometheus
//! queries the engine asked for (see `probes`); the hub owns all mutable state,
//! folds what they bring into snapshots, raises the alerts the observed state
//! reveals, and publishes an `Arc<Snapshot>` after each batch of updates. Every
//! task is registered with `Liveness`, so a task that dies is known.

use super::liveness::Liveness;
use super::poll::{poll_loop, poll_metrics, poll_servers, ServersPage, ServersPoll};
use super::probes::{self, Observation, ObserveTargets, ProbeState, PromSample};
use super::snapshot::*;
use crate::cloud::metric::ServerMetrics;
use crate::cloud::Client;
use crate::config::settings::{MetricsSettings, Refresh};
use crate::domain::{
    AlertBook, Backup, CloudScope, ComputeLimits, Flavor, Image, Network, Server, ServerStatus, Volume,
};
use chrono::Utc;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};

/// Asks the poller of (cloud, kind) to poll now.
pub type Notifier = Arc<dyn Fn(&str, Kind) + Send + Sync>;

#[derive(Debug, Clone)]
pub struct InventoryConfig {
    pub refresh: Refresh,
    pub metrics: MetricsSettings,
    /// Server page size (`None`: the cloud's maximum).
    pub page_size: Option<u32>,
    /// A service without an answer this long (at least) is alerted as failing.
    pub alert_after: Duration,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig {
            refresh: Refresh::default(),
            metrics: MetricsSettings::default(),
            page_size: None,
            alert_after: Duration::from_secs(30),
        }
    }
}

impl InventoryConfig {
    pub fn from_settings(s: &crate::config::Settings) -> Self {
        InventoryConfig { refresh: s.refresh.clone(), metrics: s.metrics.clone(), ..InventoryConfig::default() }
    }
    pub(super) fn interval(&self, k: Kind) -> Duration {
        let r = &self.refresh;
        match k {
            Kind::Servers => r.servers.0,
            Kind::Flavors | Kind::Keypairs => r.flavors.0,
            Kind::Images => r.images.0,
            Kind::Networks | Kind::SecurityGroups => r.networks.0,
            Kind::Volumes => r.volumes.0,
            Kind::Backups => r.backups.0,
            Kind::Limits => r.limits.0,
            Kind::Metrics => r.metrics.0,
        }
    }
    fn series_capacity(&self) -> usize {
        let g = self.metrics.granularity.max(1) as u64;
        ((self.metrics.retention.0.as_secs() / g) as usize + 2).clamp(8, 100_000)
    }
}

#[derive(Debug, Clone)]
pub enum InventoryCommand {
    /// Poll this kind now (after an action, or on operator request).
    RefreshNow { cloud: String, kind: Kind },
}

pub(super) enum Update {
    Servers {
        cloud: usize,
        full: bool,
        servers: Vec<Server>,
        project: Option<String>,
        undecodable: Vec<(Option<String>, String)>,
    },
    Flavors(usize, Vec<Flavor>),
    Images(usize, Vec<Image>),
    Networks(usize, Vec<Network>),
    Volumes(usize, Vec<Volume>),
    Backups(usize, Vec<Backup>),
    Limits(usize, ComputeLimits, Option<Vec<crate::domain::ComputeService>>),
    Metrics(usize, HashMap<String, ServerMetrics>),
    Keypairs(usize, Vec<String>),
    SecurityGroups(usize, Vec<String>),
    Poll(usize, Kind, PollState),
}

struct CloudState {
    name: String,
    scope: CloudScope,
    servers: HashMap<String, Arc<Server>>,
    flavors: Arc<Vec<Flavor>>,
    images: Arc<Vec<Image>>,
    networks: Arc<Vec<Network>>,
    volumes: Arc<Vec<Volume>>,
    backups: Arc<Vec<Backup>>,
    keypairs: Arc<Vec<String>>,
    security_groups: Arc<Vec<String>>,
    limits: Option<ComputeLimits>,
    services: Option<Arc<Vec<crate::domain::ComputeService>>>,
    metrics: Arc<HashMap<String, Arc<ServerSeries>>>,
    polls: BTreeMap<Kind, PollState>,
    probes: Arc<HashMap<String, ProbeState>>,
    prometheus: Arc<BTreeMap<String, PromSample>>,
    /// Server records that did not decode: id (`None`: not even that) → why.
    /// Kept until the server decodes again or a full listing no longer has it.
    undecodable: BTreeMap<Option<String>, String>,
    /// What the last publication showed, kept while nothing changes: a poll
    /// that brings no change publishes the same lists, neither sorted nor
    /// summarized again, and the console sees it has nothing to redo.
    sorted: Option<SortedServers>,
    apps: Option<Arc<Vec<AppSummary>>>,
}

/// The servers as last published, in order, and their index by id.
type SortedServers = (Arc<Vec<Arc<Server>>>, Arc<ServerIndex>);

/// What the engine and the console hold of a running inventory: ask for a poll
/// now, say what to observe, see which tasks are alive. Cheap to clone.
#[derive(Clone)]
pub struct InventoryLink {
    notify: Arc<HashMap<(String, Kind), Arc<Notify>>>,
    targets: Arc<HashMap<String, watch::Sender<ObserveTargets>>>,
    pub liveness: Liveness,
}

impl InventoryLink {
    /// Poll this kind of this cloud now (ignored while that poll is running).
    pub fn refresh(&self, cloud: &str, kind: Kind) {
        if let Some(n) = self.notify.get(&(cloud.to_string(), kind)) {
            n.notify_one();
        }
    }
    /// What the cloud's observer probes and queries from now on.
    pub fn observe(&self, cloud: &str, t: ObserveTargets) {
        if let Some(tx) = self.targets.get(cloud) {
            tx.send_if_modified(|cur| {
                let changed = *cur != t;
                *cur = t;
                changed
            });
        }
    }
}

/// A running inventory.
pub struct Inventory {
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    link: InventoryLink,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Inventory {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What one poller task runs with.
struct Poller {
    i: usize,
    kind: Kind,
    client: Client,
    cfg: InventoryConfig,
    /// Wakes it for a poll now.
    n: Arc<Notify>,
    /// Wake the cloud's other pollers (when this one recovers).
    siblings: Vec<Arc<Notify>>,
    tx: mpsc::Sender<Update>,
    snap: watch::Receiver<Arc<Snapshot>>,
    guard: super::liveness::TaskGuard,
}

/// Start the poller of one kind of one cloud.
fn spawn_poller(p: Poller) -> tokio::task::JoinHandle<()> {
    let Poller { i, kind, client, cfg, n, siblings, tx, snap, guard } = p;
    tokio::spawn(async move {
        let _guard = guard;
        let c = &client;
        match kind {
            Kind::Servers => {
                let st = Arc::new(std::sync::Mutex::new(ServersPoll::default()));
                let (full_every, page) = (cfg.refresh.full_resync.0, cfg.page_size);
                poll_loop(i, kind, c, &cfg, n, siblings, tx, |c| {
                    let fut = poll_servers(st.clone(), c.clone(), full_every, page);
                    async move {
                        fut.await.map(|p: ServersPage| Update::Servers {
                            cloud: i,
                            full: p.full,
                            servers: p.servers,
                            project: p.project,
                            undecodable: p.undecodable,
                        })
                    }
                })
                .await
            }
            Kind::Flavors => {
                poll_loop(i, kind, c, &cfg, n, siblings, tx, |c| {
                    let c = c.clone();
                    async move { c.compute().list_flavors().await.map(|v| Update::Flavors(i, v)) }
                })
                .await
            }
            Kind::Images => {
                poll_loop(i, kind, c, &cfg, n, siblings, tx, |c| {
                    let c = c.clone();
                    async move { c.image().list_images().await.map(|v| Update::Images(i, v)) }
                })
                .await
            }
            Kind::Networks => {
                poll_loop(i, kind, c, &cfg, n, siblings, tx, |c| {
                    let c = c.clone();
                    async move { c.network().list_networks().await.map(|v| Update::Networks(i, v)) }
                })
                .await
            }
            Kind::Volumes => {
                poll_loop(i, kind, c, &cfg, n, siblings, tx, |c| {
                    let c = c.clone();
                    async move { c.volume().list_volumes().await.map(|v| Update::Volumes(i, v)) }
                })
                .await
            }
            Kind::Backups => {
                poll_loop(i, kind, c, &cfg, n, siblings, tx, |c| {
                    let c = c.clone();
                    async move { c.volume().list_backups().await.map(|v| Update::Backups(i, v)) }
                })
                .await
            }
            Kind::Limits => {
                poll_loop(i, kind, c, &cfg, n, siblings, tx, |c| {
                    let c = c.clone();
                    async move {
                        let limits = c.compute().limits().await?;
                        // Hosts ride along (admins only): what a user may not see stays unknown.
                        let services = c.compute().list_compute_services().await.ok();
                        Ok(Update::Limits(i, limits, services))
                    }
                })
                .await
            }
            Kind::Keypairs => {
                poll_loop(i, kind, c, &cfg, n, siblings, tx, |c| {
                    let c = c.clone();
                    async move { c.compute().list_keypairs().await.map(|v| Update::Keypairs(i, v)) }
                })
                .await
            }
            Kind::SecurityGroups => {
                poll_loop(i, kind, c, &cfg, n, siblings, tx, |c| {
                    let c = c.clone();
                    async move { c.network().list_security_groups().await.map(|v| Update::SecurityGroups(i, v)) }
                })
                .await
            }
            Kind::Metrics => {
                // Start as soon as the first servers are known.
                let mut first = snap.clone();
                while first.borrow().clouds.get(i).is_none_or(|c| c.servers.is_empty()) {
                    if first.changed().await.is_err() {
                        return;
                    }
                }
                let mcfg = cfg.metrics.clone();
                let nudge = tokio::spawn(read_when_active(snap.clone(), i, n.clone(), mcfg.max_servers));
                poll_loop(i, kind, c, &cfg, n, siblings, tx, |c| {
                    let c = c.clone();
                    let snap = snap.borrow().clone();
                    let mcfg = mcfg.clone();
                    async move { poll_metrics(&c, snap.clouds.get(i), &mcfg).await.map(|m| Update::Metrics(i, m)) }
                })
                .await;
                nudge.abort();
            }
        }
    })
}

/// Wake cloud `i`'s metrics poller when a server it reads (one of the
/// `max_servers` targets) turns ACTIVE with no CPU history yet: a new member's
/// samples are read as soon as it runs, not an interval later. The servers are
/// looked at only when their list changed; a failing metrics poll keeps its
/// backoff (no wake), and the list seen at start only sets what was active.
async fn read_when_active(mut snap: watch::Receiver<Arc<Snapshot>>, i: usize, wake: Arc<Notify>, max_servers: usize) {
    let mut listed: Option<Arc<Vec<Arc<Server>>>> = None;
    let mut active: Option<std::collections::HashSet<String>> = None;
    loop {
        let s = snap.borrow_and_update().clone();
        if let Some(c) = s.clouds.get(i) {
            if !listed.as_ref().is_some_and(|l| Arc::ptr_eq(l, &c.servers)) {
                listed = Some(c.servers.clone());
                let now: std::collections::HashSet<String> =
                    super::poll::metric_targets(c, max_servers).into_iter().map(|(id, _)| id).collect();
                let unread = |id: &String| c.metrics.get(id).is_none_or(|m| m.cpu.last_time().is_none());
                let failing = c.polls.get(&Kind::Metrics).is_some_and(|p| p.failures > 0);
                if let Some(before) = &active {
                    if !failing && now.iter().any(|id| !before.contains(id) && unread(id)) {
                        wake.notify_one();
                    }
                }
                active = Some(now);
            }
        }
        if snap.changed().await.is_err() {
            return;
        }
    }
}

impl Inventory {
    /// Start polling and observing every cloud.
    pub fn start(clients: Vec<Client>, cfg: InventoryConfig) -> Inventory {
        let liveness = Liveness::default();
        let (tx, rx) = mpsc::channel::<Update>(256);
        let (obs_tx, obs_rx) = mpsc::channel::<(usize, Observation)>(256);
        let initial = Snapshot {
            clouds: clients.iter().map(|c| CloudSnapshot::empty(c.name(), scope_of(c))).collect(),
            ..Default::default()
        };
        let (snap_tx, snap_rx) = watch::channel(Arc::new(initial));
        let mut tasks = Vec::new();
        let mut notify = HashMap::new();
        let mut targets = HashMap::new();
        let states: Vec<CloudState> = clients.iter().map(|c| CloudState::new(c.name(), scope_of(c))).collect();
        let hub_guard = liveness.register("inventory hub");
        tasks.push(tokio::spawn(hub(states, rx, obs_rx, snap_tx, cfg.clone(), liveness.clone(), hub_guard)));
        for (i, client) in clients.into_iter().enumerate() {
            let mine: Vec<Arc<Notify>> = Kind::ALL.iter().map(|_| Arc::new(Notify::new())).collect();
            for (kind, n) in Kind::ALL.iter().zip(mine.iter()) {
                notify.insert((client.name().to_string(), *kind), n.clone());
                let siblings: Vec<Arc<Notify>> = mine.iter().filter(|x| !Arc::ptr_eq(x, n)).cloned().collect();
                let guard = liveness.register(format!("poller {}/{}", client.name(), kind.as_str()));
                tasks.push(spawn_poller(Poller {
                    i,
                    kind: *kind,
                    client: client.clone(),
                    cfg: cfg.clone(),
                    n: n.clone(),
                    siblings,
                    tx: tx.clone(),
                    snap: snap_rx.clone(),
                    guard,
                }));
            }
            let (t_tx, t_rx) = watch::channel(ObserveTargets::default());
            targets.insert(client.name().to_string(), t_tx);
            let guard = liveness.register(format!("observer {}", client.name()));
            let (snap, obs) = (snap_rx.clone(), obs_tx.clone());
            tasks.push(tokio::spawn(async move {
                let _guard = guard;
                probes::observe(client, snap, i, t_rx, obs).await
            }));
        }
        let link = InventoryLink { notify: Arc::new(notify), targets: Arc::new(targets), liveness };
        Inventory { snapshot: snap_rx, link, tasks }
    }

    /// Ask for a poll now (ignored while that poll is already running).
    pub fn command(&self, c: InventoryCommand) {
        match c {
            InventoryCommand::RefreshNow { cloud, kind } => self.link.refresh(&cloud, kind),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.clone()
    }

    /// What the engine holds of the inventory.
    pub fn link(&self) -> InventoryLink {
        self.link.clone()
    }

    pub fn liveness(&self) -> &Liveness {
        &self.link.liveness
    }
}

fn scope_of(c: &Client) -> CloudScope {
    let cfg = c.session.cloud();
    let project = match &cfg.auth {
        crate::config::AuthMethod::Password {
            scope: crate::config::clouds::Scope::Project { name, id, .. }, ..
        }
        | crate::config::AuthMethod::Token { scope: crate::config::clouds::Scope::Project { name, id, .. }, .. } => {
            name.clone().or(id.clone())
        }
        _ => None,
    };
    CloudScope { cloud: cfg.name.clone(), region: cfg.region.clone(), project }
}

impl CloudState {
    fn new(name: &str, scope: CloudScope) -> CloudState {
        CloudState {
            name: name.to_string(),
            scope,
            servers: HashMap::new(),
            flavors: Arc::default(),
            images: Arc::default(),
            networks: Arc::default(),
            volumes: Arc::default(),
            backups: Arc::default(),
            keypairs: Arc::default(),
            security_groups: Arc::default(),
            limits: None,
            services: None,
            metrics: Arc::default(),
            polls: BTreeMap::new(),
            probes: Arc::default(),
            prometheus: Arc::default(),
            undecodable: BTreeMap::new(),
            sorted: None,
            apps: None,
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn hub(
    mut states: Vec<CloudState>,
    mut rx: mpsc::Receiver<Update>,
    mut obs: mpsc::Receiver<(usize, Observation)>,
    out: watch::Sender<Arc<Snapshot>>,
    cfg: InventoryConfig,
    live: Liveness,
    _guard: super::liveness::TaskGuard,
) {
    let mut seq = 0u64;
    let cap = cfg.series_capacity();
    let retention = cfg.metrics.retention.0.as_secs() as i64;
    let mut book = AlertBook::default();
    loop {
        // A closed channel means its tasks ended (their own guards report that,
        // or there are no clouds): the hub keeps serving the other one.
        tokio::select! {
            Some(u) = rx.recv() => apply(&mut states, u, cap, retention),
            Some((i, o)) = obs.recv() => observe(&mut states, i, o),
            else => std::future::pending::<()>().await,
        }
        // Coalesce whatever else is already queued into one publication.
        while let Ok(more) = rx.try_recv() {
            apply(&mut states, more, cap, retention);
        }
        while let Ok((i, o)) = obs.try_recv() {
            observe(&mut states, i, o);
        }
        seq += 1;
        let mut snap = Snapshot {
            clouds: states.iter_mut().map(|s| publish(s, cap, retention)).collect(),
            seq,
            ..Default::default()
        };
        super::alerts::evaluate(&mut book, &snap, &live, cfg.alert_after, Utc::now());
        snap.alerts = Arc::new(book.alerts());
        if out.send(Arc::new(snap)).is_err() {
            return;
        }
    }
}

fn observe(states: &mut [CloudState], i: usize, o: Observation) {
    if let Some(st) = states.get_mut(i) {
        probes::apply(Arc::make_mut(&mut st.probes), Arc::make_mut(&mut st.prometheus), o, Utc::now());
    }
}

fn apply(states: &mut [CloudState], u: Update, cap: usize, retention: i64) {
    let idx = match &u {
        Update::Servers { cloud, .. } => *cloud,
        Update::Flavors(i, _)
        | Update::Images(i, _)
        | Update::Networks(i, _)
        | Update::Volumes(i, _)
        | Update::Backups(i, _)
        | Update::Keypairs(i, _)
        | Update::SecurityGroups(i, _) => *i,
        Update::Limits(i, _, _) | Update::Metrics(i, _) | Update::Poll(i, _, _) => *i,
    };
    let Some(st) = states.get_mut(idx) else { return };
    match u {
        Update::Servers { full, servers, project, undecodable, .. } => {
            if project.is_some() {
                st.scope.project = project;
            }
            let before = (st.undecodable.clone(), st.servers.len());
            let mut changed = false;
            let mut previous = HashMap::new();
            if full {
                st.undecodable.clear();
                previous = std::mem::take(&mut st.servers);
                // What the cloud did not list is gone; a record equal to the one
                // held keeps the held one (shared with what is on screen).
                for s in servers.into_iter().filter(|s| s.status != ServerStatus::Deleted) {
                    let same = previous.get(&s.id).filter(|p| ***p == s).cloned();
                    changed |= same.is_none();
                    st.servers.insert(s.id.clone(), same.unwrap_or_else(|| Arc::new(s)));
                }
                changed |= previous.keys().any(|id| !st.servers.contains_key(id));
            } else {
                // Only what the cloud reported changes: a server it did not
                // list is kept as it was, and only a DELETED record removes one.
                for s in servers {
                    st.undecodable.remove(&Some(s.id.clone()));
                    if s.status == ServerStatus::Deleted {
                        changed |= st.servers.remove(&s.id).is_some();
                    } else if st.servers.get(&s.id).is_none_or(|p| **p != s) {
                        changed = true;
                        st.servers.insert(s.id.clone(), Arc::new(s));
                    }
                }
            }
            st.undecodable.extend(undecodable);
            if !st.undecodable.is_empty() || before.0 != st.undecodable {
                changed = true;
                keep_undecodable(st, &previous);
            }
            changed |= before.1 != st.servers.len();
            if changed {
                st.sorted = None;
                st.apps = None;
                if st.metrics.keys().any(|id| !st.servers.contains_key(id)) {
                    Arc::make_mut(&mut st.metrics).retain(|id, _| st.servers.contains_key(id));
                }
                probes::track_active(Arc::make_mut(&mut st.probes), &st.servers, Utc::now());
            }
        }
        Update::Flavors(_, v) => replace_if_changed(&mut st.flavors, v),
        Update::Images(_, v) => replace_if_changed(&mut st.images, v),
        Update::Networks(_, v) => replace_if_changed(&mut st.networks, v),
        Update::Volumes(_, v) => replace_if_changed(&mut st.volumes, v),
        Update::Backups(_, v) => replace_if_changed(&mut st.backups, v),
        Update::Keypairs(_, v) => replace_if_changed(&mut st.keypairs, v),
        Update::SecurityGroups(_, v) => replace_if_changed(&mut st.security_groups, v),
        Update::Limits(_, v, services) => {
            st.limits = Some(v);
            match (&mut st.services, services) {
                (Some(held), Some(v)) => replace_if_changed(held, v),
                (held, v) => *held = v.map(Arc::new),
            }
        }
        Update::Metrics(_, m) => {
            if m.is_empty() {
                return;
            }
            st.apps = None;
            let metrics = Arc::make_mut(&mut st.metrics);
            for (id, sm) in m {
                if !st.servers.contains_key(&id) {
                    continue;
                }
                let e = metrics.entry(id).or_insert_with(|| Arc::new(ServerSeries::new(cap, retention)));
                let ser = Arc::make_mut(e);
                for (t, v) in sm.cpu_pct {
                    ser.cpu.push(t.timestamp(), v);
                }
                for (t, v) in sm.memory_mb {
                    ser.mem.push(t.timestamp(), v);
                }
                for (t, v) in sm.net_in_bps {
                    ser.net_in.push(t.timestamp(), v);
                }
                for (t, v) in sm.net_out_bps {
                    ser.net_out.push(t.timestamp(), v);
                }
            }
        }
        Update::Poll(_, k, p) => {
            st.polls.insert(k, p);
        }
    }
}

/// Keep the list held (and shared with what is on screen) when the new one is
/// the same.
fn replace_if_changed<T: PartialEq>(held: &mut Arc<Vec<T>>, new: Vec<T>) {
    if **held != new {
        *held = Arc::new(new);
    }
}

/// A server whose record stopped decoding keeps its last good record (tags and
/// metadata: still a member), marked with why; one never seen decoded gets a
/// bare placeholder. A server must never look gone because it could not be read.
/// `previous` holds the records a full listing replaced (an incremental one
/// leaves them in place).
fn keep_undecodable(st: &mut CloudState, previous: &HashMap<String, Arc<Server>>) {
    for (id, why) in &st.undecodable {
        let Some(id) = id else { continue };
        let mut s = previous
            .get(id)
            .or_else(|| st.servers.get(id))
            .map(|p| (**p).clone())
            .unwrap_or_else(|| Server::new(id.clone(), "(undecodable)", ServerStatus::Unknown));
        s.decode_error = Some(why.clone());
        st.servers.insert(id.clone(), Arc::new(s));
    }
}

fn publish(st: &mut CloudState, cap: usize, retention: i64) -> CloudSnapshot {
    let (servers, index) = st
        .sorted
        .get_or_insert_with(|| {
            let mut servers: Vec<Arc<Server>> = st.servers.values().cloned().collect();
            crate::domain::sort::sort_by(&mut servers, |a, b| {
                a.display_name().cmp(b.display_name()).then_with(|| a.id.cmp(&b.id))
            });
            let index = Arc::new(ServerIndex::of(&servers));
            (Arc::new(servers), index)
        })
        .clone();
    let apps = st
        .apps
        .get_or_insert_with(|| Arc::new(summarize_apps(&st.name, &servers, &st.metrics, cap, retention)))
        .clone();
    CloudSnapshot {
        name: st.name.clone(),
        scope: st.scope.clone(),
        servers,
        server_index: index,
        flavors: st.flavors.clone(),
        images: st.images.clone(),
        networks: st.networks.clone(),
        volumes: st.volumes.clone(),
        backups: st.backups.clone(),
        limits: st.limits.clone(),
        services: st.services.clone(),
        metrics: st.metrics.clone(),
        apps,
        polls: {
            let mut polls = st.polls.clone();
            if let Some(p) = polls.get_mut(&Kind::Servers) {
                p.undecodable = st
                    .undecodable
                    .iter()
                    .map(|(id, why)| format!("{}: {why}", id.as_deref().unwrap_or("(no id)")))
                    .collect();
            }
            polls
        },
        keypairs: st.keypairs.clone(),
        security_groups: st.security_groups.clone(),
        probes: st.probes.clone(),
        prometheus: st.prometheus.clone(),
    }
}
