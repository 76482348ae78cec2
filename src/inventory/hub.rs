//! The pollers and the hub that merges what they bring into snapshots.
//!
//! One task per (cloud, kind) polls on its own interval; a poll that is still
//! running when the next is due is not doubled (skip-if-busy), failures back off
//! exponentially up to `max_backoff`, and every poll has a timeout. Servers are
//! refreshed with `changes-since` from the newest `updated` time seen (cloud time,
//! never the local clock), with a full list every `full_resync` to catch what an
//! incremental listing can miss. The hub owns all mutable state and publishes an
//! `Arc<Snapshot>` after each batch of updates.

use super::snapshot::*;
use crate::cloud::compute::ServerQuery;
use crate::cloud::metric::ServerMetrics;
use crate::cloud::{ApiError, Client, ErrorKind};
use crate::config::settings::{MetricsSettings, Refresh};
use crate::domain::{
    Backup, CloudScope, ComputeLimits, Flavor, Image, Network, Server, ServerStatus, Timestamp, Volume,
};
use chrono::Utc;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify};

/// Asks the poller of (cloud, kind) to poll now.
pub type Notifier = Arc<dyn Fn(&str, Kind) + Send + Sync>;

#[derive(Debug, Clone, Default)]
pub struct InventoryConfig {
    pub refresh: Refresh,
    pub metrics: MetricsSettings,
    /// Server page size (`None`: the cloud's maximum).
    pub page_size: Option<u32>,
}

impl InventoryConfig {
    pub fn from_settings(s: &crate::config::Settings) -> Self {
        InventoryConfig { refresh: s.refresh.clone(), metrics: s.metrics.clone(), page_size: None }
    }
    fn interval(&self, k: Kind) -> Duration {
        let r = &self.refresh;
        match k {
            Kind::Servers => r.servers.0,
            Kind::Flavors => r.flavors.0,
            Kind::Images => r.images.0,
            Kind::Networks => r.networks.0,
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

enum Update {
    Servers { cloud: usize, full: bool, servers: Vec<Server>, project: Option<String> },
    Flavors(usize, Vec<Flavor>),
    Images(usize, Vec<Image>),
    Networks(usize, Vec<Network>),
    Volumes(usize, Vec<Volume>),
    Backups(usize, Vec<Backup>),
    Limits(usize, ComputeLimits),
    Metrics(usize, HashMap<String, ServerMetrics>),
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
    limits: Option<ComputeLimits>,
    metrics: HashMap<String, Arc<ServerSeries>>,
    polls: BTreeMap<Kind, PollState>,
}

/// A running inventory.
pub struct Inventory {
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    notify: HashMap<(String, Kind), Arc<Notify>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Inventory {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn backoff(interval: Duration, failures: u32, max: Duration) -> Duration {
    if failures == 0 {
        return interval;
    }
    let f = 2u32.saturating_pow(failures.min(16));
    interval.saturating_mul(f).min(max.max(interval))
}

impl Inventory {
    /// Start polling every cloud.
    pub fn start(clients: Vec<Client>, cfg: InventoryConfig) -> Inventory {
        let (tx, rx) = mpsc::channel::<Update>(256);
        let initial = Snapshot {
            clouds: clients.iter().map(|c| CloudSnapshot::empty(c.name(), scope_of(c))).collect(),
            ..Default::default()
        };
        let (snap_tx, snap_rx) = watch::channel(Arc::new(initial));
        let mut tasks = Vec::new();
        let mut notify = HashMap::new();
        let states: Vec<CloudState> = clients
            .iter()
            .map(|c| CloudState {
                name: c.name().to_string(),
                scope: scope_of(c),
                servers: HashMap::new(),
                flavors: Arc::default(),
                images: Arc::default(),
                networks: Arc::default(),
                volumes: Arc::default(),
                backups: Arc::default(),
                limits: None,
                metrics: HashMap::new(),
                polls: BTreeMap::new(),
            })
            .collect();
        tasks.push(tokio::spawn(hub(states, rx, snap_tx, cfg.clone())));
        for (i, client) in clients.into_iter().enumerate() {
            for kind in Kind::ALL {
                let n = Arc::new(Notify::new());
                notify.insert((client.name().to_string(), kind), n.clone());
                let c = client.clone();
                let cfg2 = cfg.clone();
                let tx2 = tx.clone();
                let snap = snap_rx.clone();
                tasks.push(tokio::spawn(async move {
                    match kind {
                        Kind::Servers => {
                            let st = Arc::new(std::sync::Mutex::new(ServersPoll::default()));
                            let full_every = cfg2.refresh.full_resync.0;
                            let page = cfg2.page_size;
                            poll_loop(i, kind, &c, &cfg2, n, tx2, |c| {
                                let fut = poll_servers(st.clone(), c.clone(), full_every, page);
                                async move {
                                    fut.await.map(|(full, servers, project)| Update::Servers {
                                        cloud: i,
                                        full,
                                        servers,
                                        project,
                                    })
                                }
                            })
                            .await
                        }
                        Kind::Flavors => {
                            poll_loop(i, kind, &c, &cfg2, n, tx2, |c| {
                                let c = c.clone();
                                async move { c.compute().list_flavors().await.map(|v| Update::Flavors(i, v)) }
                            })
                            .await
                        }
                        Kind::Images => {
                            poll_loop(i, kind, &c, &cfg2, n, tx2, |c| {
                                let c = c.clone();
                                async move { c.image().list_images().await.map(|v| Update::Images(i, v)) }
                            })
                            .await
                        }
                        Kind::Networks => {
                            poll_loop(i, kind, &c, &cfg2, n, tx2, |c| {
                                let c = c.clone();
                                async move { c.network().list_networks().await.map(|v| Update::Networks(i, v)) }
                            })
                            .await
                        }
                        Kind::Volumes => {
                            poll_loop(i, kind, &c, &cfg2, n, tx2, |c| {
                                let c = c.clone();
                                async move { c.volume().list_volumes().await.map(|v| Update::Volumes(i, v)) }
                            })
                            .await
                        }
                        Kind::Backups => {
                            poll_loop(i, kind, &c, &cfg2, n, tx2, |c| {
                                let c = c.clone();
                                async move { c.volume().list_backups().await.map(|v| Update::Backups(i, v)) }
                            })
                            .await
                        }
                        Kind::Limits => {
                            poll_loop(i, kind, &c, &cfg2, n, tx2, |c| {
                                let c = c.clone();
                                async move { c.compute().limits().await.map(|v| Update::Limits(i, v)) }
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
                            let mcfg = cfg2.metrics.clone();
                            poll_loop(i, kind, &c, &cfg2, n, tx2, |c| {
                                let c = c.clone();
                                let snap = snap.borrow().clone();
                                let mcfg = mcfg.clone();
                                async move { poll_metrics(&c, &snap, i, &mcfg).await.map(|m| Update::Metrics(i, m)) }
                            })
                            .await
                        }
                    }
                }));
            }
        }
        Inventory { snapshot: snap_rx, notify, tasks }
    }

    /// Ask for a poll now (ignored while that poll is already running).
    pub fn command(&self, c: InventoryCommand) {
        match c {
            InventoryCommand::RefreshNow { cloud, kind } => {
                if let Some(n) = self.notify.get(&(cloud, kind)) {
                    n.notify_one();
                }
            }
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.clone()
    }

    /// A callback that asks for a poll now (for the engine, after it acted).
    pub fn notifier(&self) -> Notifier {
        let n = self.notify.clone();
        Arc::new(move |cloud: &str, kind: Kind| {
            if let Some(x) = n.get(&(cloud.to_string(), kind)) {
                x.notify_one();
            }
        })
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

/// Incremental server polling state.
#[derive(Default)]
struct ServersPoll {
    /// Newest `updated` seen (cloud time).
    mark: Option<Timestamp>,
    last_full: Option<Instant>,
}

/// One server poll: a full listing when due, else `changes-since` the newest
/// `updated` seen. Returns (full?, servers, project name).
async fn poll_servers(
    st: Arc<std::sync::Mutex<ServersPoll>>,
    c: Client,
    full_every: Duration,
    page: Option<u32>,
) -> Result<(bool, Vec<Server>, Option<String>), ApiError> {
    let (full, since) = {
        let g = st.lock().map_err(|_| ApiError::new(ErrorKind::Config, c.name(), "compute", "poll state poisoned"))?;
        let full = g.mark.is_none() || g.last_full.is_none_or(|t| t.elapsed() >= full_every);
        // `changes-since` is inclusive (updated >= since) and Nova's times have
        // whole seconds: servers changed in the mark's second come again and merge
        // idempotently; nothing changed later is missed.
        (full, if full { None } else { g.mark })
    };
    let q = ServerQuery { changes_since: since, page_size: page, ..Default::default() };
    let servers = c.compute().list_servers(&q).await?;
    let project = c.session.current_token().and_then(|t| t.project_name.clone());
    if let Ok(mut g) = st.lock() {
        if full {
            g.last_full = Some(Instant::now());
        }
        let newest = servers.iter().filter_map(|s| s.updated).max();
        g.mark = match (g.mark, newest) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => b.or(a),
        };
    }
    Ok((full, servers, project))
}

async fn poll_loop<F, Fut>(
    cloud: usize,
    kind: Kind,
    c: &Client,
    cfg: &InventoryConfig,
    now_signal: Arc<Notify>,
    tx: mpsc::Sender<Update>,
    mut f: F,
) where
    F: FnMut(&Client) -> Fut,
    Fut: Future<Output = Result<Update, ApiError>>,
{
    let interval = cfg.interval(kind);
    let timeout = cfg.refresh.timeout.0.max(Duration::from_secs(1));
    let mut state = PollState { interval, ..Default::default() };
    loop {
        let started = Instant::now();
        state.last_attempt = Some(Utc::now());
        let (result, requests) = crate::cloud::session::counting(tokio::time::timeout(timeout + timeout, f(c))).await;
        let result = result.unwrap_or_else(|_| {
            Err(ApiError::new(
                ErrorKind::Transient,
                c.name(),
                kind.as_str(),
                format!("poll timed out after {}s", (timeout + timeout).as_secs()),
            ))
        });
        state.last_duration = started.elapsed();
        state.last_requests = requests;
        match result {
            Ok(update) => {
                state.last_ok = Some(Utc::now());
                state.last_error = None;
                state.unreachable = false;
                state.failures = 0;
                if tx.send(update).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                state.failures += 1;
                state.unreachable = e.kind == ErrorKind::Transient && e.status.is_none();
                tracing::debug!(cloud = c.name(), kind = kind.as_str(), "poll failed: {e}");
                state.last_error = Some(e.to_string());
            }
        }
        if tx.send(Update::Poll(cloud, kind, state.clone())).await.is_err() {
            return;
        }
        let wait = backoff(interval, state.failures, cfg.refresh.max_backoff.0);
        // Skip-if-busy: the next poll starts only after this one ended; a refresh
        // request that arrives meanwhile is kept (Notify stores one permit).
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = now_signal.notified() => {}
        }
    }
}

/// Which servers get their metrics polled: ACTIVE ones, application members first.
pub fn metric_targets(snap: &CloudSnapshot, max: usize) -> Vec<(String, u32)> {
    let mut v: Vec<&Arc<Server>> = snap.servers.iter().filter(|s| s.status == ServerStatus::Active).collect();
    v.sort_by_key(|s| (s.app().is_none(), s.display_name().to_string()));
    v.into_iter()
        .take(max)
        .map(|s| {
            let vcpus = s
                .flavor
                .vcpus
                .or_else(|| {
                    s.flavor.id.as_ref().and_then(|id| snap.flavors.iter().find(|f| &f.id == id)).map(|f| f.vcpus)
                })
                .unwrap_or(1);
            (s.id.clone(), vcpus.max(1))
        })
        .collect()
}

async fn poll_metrics(
    c: &Client,
    snap: &Snapshot,
    i: usize,
    m: &MetricsSettings,
) -> Result<HashMap<String, ServerMetrics>, ApiError> {
    let Some(cloud) = snap.clouds.get(i) else { return Ok(HashMap::new()) };
    let targets = metric_targets(cloud, m.max_servers);
    if targets.is_empty() {
        return Ok(HashMap::new());
    }
    let g = m.granularity.max(1) as i64;
    // From the oldest "last point" of the targets (or the retention window), with
    // two granularities of overlap so rates can be recomputed.
    let retention_start = Utc::now() - chrono::Duration::from_std(m.retention.0).unwrap_or_default();
    let mut start: Option<Timestamp> = None;
    for (id, _) in &targets {
        let from = cloud
            .metrics
            .get(id)
            .and_then(|s| s.cpu.last_time())
            .and_then(|t| chrono::DateTime::from_timestamp(t - 2 * g, 0))
            .unwrap_or(retention_start);
        start = Some(start.map_or(from, |s: Timestamp| s.min(from)));
    }
    c.metric().server_metrics(&targets, g as u64, start.unwrap_or(retention_start)).await
}

async fn hub(
    mut states: Vec<CloudState>,
    mut rx: mpsc::Receiver<Update>,
    out: watch::Sender<Arc<Snapshot>>,
    cfg: InventoryConfig,
) {
    let mut seq = 0u64;
    let cap = cfg.series_capacity();
    let retention = cfg.metrics.retention.0.as_secs() as i64;
    while let Some(first) = rx.recv().await {
        apply(&mut states, first, cap, retention);
        // Coalesce whatever else is already queued into one publication.
        while let Ok(more) = rx.try_recv() {
            apply(&mut states, more, cap, retention);
        }
        seq += 1;
        let mut snap =
            Snapshot { clouds: states.iter().map(|s| publish(s, cap, retention)).collect(), seq, ..Default::default() };
        snap.alerts = Arc::new(derive_alerts(&snap, Utc::now()));
        if out.send(Arc::new(snap)).is_err() {
            return;
        }
    }
}

fn apply(states: &mut [CloudState], u: Update, cap: usize, retention: i64) {
    let idx = match &u {
        Update::Servers { cloud, .. } => *cloud,
        Update::Flavors(i, _)
        | Update::Images(i, _)
        | Update::Networks(i, _)
        | Update::Volumes(i, _)
        | Update::Backups(i, _) => *i,
        Update::Limits(i, _) | Update::Metrics(i, _) | Update::Poll(i, _, _) => *i,
    };
    let Some(st) = states.get_mut(idx) else { return };
    match u {
        Update::Servers { full, servers, project, .. } => {
            if project.is_some() {
                st.scope.project = project;
            }
            if full {
                let fresh: HashMap<String, Arc<Server>> = servers
                    .into_iter()
                    .filter(|s| s.status != ServerStatus::Deleted)
                    .map(|s| (s.id.clone(), Arc::new(s)))
                    .collect();
                st.metrics.retain(|id, _| fresh.contains_key(id));
                st.servers = fresh;
            } else {
                for s in servers {
                    if s.status == ServerStatus::Deleted {
                        st.servers.remove(&s.id);
                        st.metrics.remove(&s.id);
                    } else {
                        st.servers.insert(s.id.clone(), Arc::new(s));
                    }
                }
            }
        }
        Update::Flavors(_, v) => st.flavors = Arc::new(v),
        Update::Images(_, v) => st.images = Arc::new(v),
        Update::Networks(_, v) => st.networks = Arc::new(v),
        Update::Volumes(_, v) => st.volumes = Arc::new(v),
        Update::Backups(_, v) => st.backups = Arc::new(v),
        Update::Limits(_, v) => st.limits = Some(v),
        Update::Metrics(_, m) => {
            for (id, sm) in m {
                if !st.servers.contains_key(&id) {
                    continue;
                }
                let e = st.metrics.entry(id).or_insert_with(|| Arc::new(ServerSeries::new(cap, retention)));
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

fn publish(st: &CloudState, cap: usize, retention: i64) -> CloudSnapshot {
    let mut servers: Vec<Arc<Server>> = st.servers.values().cloned().collect();
    servers.sort_by(|a, b| a.display_name().cmp(b.display_name()).then_with(|| a.id.cmp(&b.id)));
    let apps = summarize_apps(&st.name, &servers, &st.metrics, cap, retention);
    CloudSnapshot {
        name: st.name.clone(),
        scope: st.scope.clone(),
        servers: Arc::new(servers),
        flavors: st.flavors.clone(),
        images: st.images.clone(),
        networks: st.networks.clone(),
        volumes: st.volumes.clone(),
        backups: st.backups.clone(),
        limits: st.limits.clone(),
        metrics: Arc::new(st.metrics.clone()),
        apps: Arc::new(apps),
        polls: st.polls.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let i = Duration::from_secs(5);
        let max = Duration::from_secs(60);
        assert_eq!(backoff(i, 0, max), i);
        assert_eq!(backoff(i, 1, max), Duration::from_secs(10));
        assert_eq!(backoff(i, 3, max), Duration::from_secs(40));
        assert_eq!(backoff(i, 10, max), max);
    }
}
