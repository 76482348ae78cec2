//! The observed state of every cloud, as the console and the engine see it.

use crate::domain::{
    Alert, Backup, CloudScope, ComputeLimits, Flavor, Image, MetricSeries, Network, Server, ServerStatus, Timestamp,
    Volume,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Servers,
    Flavors,
    Images,
    Networks,
    Volumes,
    Backups,
    Limits,
    Metrics,
    Keypairs,
    SecurityGroups,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Servers,
        Kind::Flavors,
        Kind::Images,
        Kind::Networks,
        Kind::Volumes,
        Kind::Backups,
        Kind::Limits,
        Kind::Metrics,
        Kind::Keypairs,
        Kind::SecurityGroups,
    ];
    /// What the engine resolves policy names against.
    pub const CATALOG: [Kind; 5] = [Kind::Flavors, Kind::Images, Kind::Networks, Kind::Keypairs, Kind::SecurityGroups];
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Servers => "servers",
            Kind::Flavors => "flavors",
            Kind::Images => "images",
            Kind::Networks => "networks",
            Kind::Volumes => "volumes",
            Kind::Backups => "backups",
            Kind::Limits => "limits",
            Kind::Metrics => "metrics",
            Kind::Keypairs => "keypairs",
            Kind::SecurityGroups => "security groups",
        }
    }
    /// The OpenStack service a kind is read from.
    pub fn service(&self) -> &'static str {
        match self {
            Kind::Servers | Kind::Flavors | Kind::Limits | Kind::Keypairs => "compute",
            Kind::Images => "image",
            Kind::Networks | Kind::SecurityGroups => "network",
            Kind::Volumes | Kind::Backups => "volume",
            Kind::Metrics => "metric",
        }
    }
}

/// How one poller is doing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollState {
    /// Wall-clock time of the last successful poll.
    pub last_ok: Option<Timestamp>,
    pub last_attempt: Option<Timestamp>,
    pub last_error: Option<String>,
    /// The last failure was a connection problem (the cloud is unreachable).
    pub unreachable: bool,
    pub failures: u32,
    pub interval: Duration,
    pub last_duration: Duration,
    /// Requests the last poll made.
    pub last_requests: u64,
    /// The last failure was refused credentials (401 from Keystone or the service).
    pub auth_failed: bool,
    /// Items of the last successful poll that could not be decoded (id and why).
    pub undecodable: Vec<String>,
    /// How far the cloud's clock was ahead of ours at the last successful poll.
    pub clock_offset: Option<chrono::Duration>,
}

impl PollState {
    /// Seconds since the last successful poll.
    pub fn age(&self, now: Timestamp) -> Option<i64> {
        self.last_ok.map(|t| (now - t).num_seconds().max(0))
    }
    /// Older than `factor` intervals.
    pub fn is_stale(&self, now: Timestamp, factor: u32) -> bool {
        match self.age(now) {
            Some(a) => a as f64 > self.interval.as_secs_f64() * factor.max(1) as f64 + 1.0,
            None => true,
        }
    }
}

/// Recent metrics of one server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSeries {
    pub cpu: MetricSeries,
    pub mem: MetricSeries,
    pub net_in: MetricSeries,
    pub net_out: MetricSeries,
}

impl ServerSeries {
    pub fn new(capacity: usize, retention_secs: i64) -> Self {
        let s = || MetricSeries::new(capacity, retention_secs);
        ServerSeries { cpu: s(), mem: s(), net_in: s(), net_out: s() }
    }
}

/// An application: the servers carrying the same `stackpilot:app` metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSummary {
    pub name: String,
    pub cloud: String,
    pub members: Vec<String>,
    pub active: usize,
    pub building: usize,
    pub error: usize,
    pub shutoff: usize,
    /// Mean CPU % of the members, per time.
    pub cpu: MetricSeries,
    pub flavors: Vec<String>,
    /// Mean CPU % now of the members with a value now (see [`cpu_now`]), and how
    /// many members that is.
    pub cpu_now: Option<f64>,
    pub cpu_live: usize,
}

impl AppSummary {
    pub fn total(&self) -> usize {
        self.members.len()
    }
    pub fn healthy(&self) -> usize {
        self.active
    }
}

/// One cloud's observed state. Cheap to clone: every collection is shared.
#[derive(Debug, Clone)]
pub struct CloudSnapshot {
    pub name: String,
    pub scope: CloudScope,
    /// Sorted by name, then id.
    pub servers: Arc<Vec<Arc<Server>>>,
    /// `servers` by id, for `server` (checked at each lookup: a list replaced
    /// without it is searched in full).
    pub server_index: Arc<ServerIndex>,
    pub flavors: Arc<Vec<Flavor>>,
    pub images: Arc<Vec<Image>>,
    pub networks: Arc<Vec<Network>>,
    pub volumes: Arc<Vec<Volume>>,
    pub backups: Arc<Vec<Backup>>,
    pub limits: Option<ComputeLimits>,
    /// The nova-compute services (`None`: not allowed to see them, or not read yet).
    pub services: Option<Arc<Vec<crate::domain::ComputeService>>>,
    pub metrics: Arc<HashMap<String, Arc<ServerSeries>>>,
    pub apps: Arc<Vec<AppSummary>>,
    pub polls: BTreeMap<Kind, PollState>,
    pub keypairs: Arc<Vec<String>>,
    pub security_groups: Arc<Vec<String>>,
    /// Readiness observations per server id (console marker, HTTP probe).
    pub probes: Arc<HashMap<String, super::probes::ProbeState>>,
    /// The latest answer of each Prometheus query the engine asked for, by key.
    pub prometheus: Arc<BTreeMap<String, super::probes::PromSample>>,
}

impl CloudSnapshot {
    pub fn empty(name: &str, scope: CloudScope) -> Self {
        CloudSnapshot {
            name: name.to_string(),
            scope,
            servers: Arc::default(),
            server_index: Arc::default(),
            flavors: Arc::default(),
            images: Arc::default(),
            networks: Arc::default(),
            volumes: Arc::default(),
            backups: Arc::default(),
            limits: None,
            services: None,
            metrics: Arc::default(),
            apps: Arc::default(),
            polls: BTreeMap::new(),
            keypairs: Arc::default(),
            security_groups: Arc::default(),
            probes: Arc::default(),
            prometheus: Arc::default(),
        }
    }
    /// How far the cloud's clock is ahead of ours, as its latest answer showed
    /// (zero before any).
    pub fn clock_offset(&self) -> chrono::Duration {
        self.polls
            .values()
            .filter(|p| p.clock_offset.is_some())
            .max_by_key(|p| p.last_ok)
            .and_then(|p| p.clock_offset)
            .unwrap_or_else(chrono::Duration::zero)
    }
    /// Our `local` time on the cloud's clock: what the ages of the times it
    /// stamps (created, backed up) are measured against.
    pub fn cloud_now(&self, local: Timestamp) -> Timestamp {
        crate::domain::time::on_cloud_clock(local, self.clock_offset())
    }
    /// Kinds of the catalog that were never read successfully: names cannot be
    /// resolved against them (an empty list that failed is not "none").
    pub fn catalog_unread(&self) -> Vec<Kind> {
        Kind::CATALOG.iter().copied().filter(|k| self.polls.get(k).is_none_or(|p| p.last_ok.is_none())).collect()
    }
    pub fn server(&self, id: &str) -> Option<&Arc<Server>> {
        self.server_index.find(&self.servers, id).or_else(|| self.servers.iter().find(|s| s.id == id))
    }
    /// The same observed data as `other` (the same shared lists; poll times
    /// aside): nothing on screen but ages needs computing again.
    pub fn same_data(&self, other: &CloudSnapshot) -> bool {
        fn polls_alike(a: &BTreeMap<Kind, PollState>, b: &BTreeMap<Kind, PollState>) -> bool {
            a.len() == b.len()
                && a.iter().zip(b.iter()).all(|((ka, pa), (kb, pb))| {
                    ka == kb
                        && pa.last_ok.is_some() == pb.last_ok.is_some()
                        && pa.last_error == pb.last_error
                        && pa.unreachable == pb.unreachable
                        && pa.auth_failed == pb.auth_failed
                        && pa.failures == pb.failures
                        && pa.undecodable == pb.undecodable
                })
        }
        let services = match (&self.services, &other.services) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        };
        self.name == other.name
            && self.scope == other.scope
            && Arc::ptr_eq(&self.servers, &other.servers)
            && Arc::ptr_eq(&self.flavors, &other.flavors)
            && Arc::ptr_eq(&self.images, &other.images)
            && Arc::ptr_eq(&self.networks, &other.networks)
            && Arc::ptr_eq(&self.volumes, &other.volumes)
            && Arc::ptr_eq(&self.backups, &other.backups)
            && Arc::ptr_eq(&self.metrics, &other.metrics)
            && Arc::ptr_eq(&self.apps, &other.apps)
            && Arc::ptr_eq(&self.keypairs, &other.keypairs)
            && Arc::ptr_eq(&self.security_groups, &other.security_groups)
            && Arc::ptr_eq(&self.probes, &other.probes)
            && Arc::ptr_eq(&self.prometheus, &other.prometheus)
            && services
            && self.limits == other.limits
            && polls_alike(&self.polls, &other.polls)
    }
    pub fn flavor_name(&self, id: &str) -> Option<&str> {
        self.flavors.iter().find(|f| f.id == id).map(|f| f.name.as_str())
    }
    pub fn image_name(&self, id: &str) -> Option<&str> {
        self.images.iter().find(|i| i.id == id).and_then(|i| i.name.as_deref())
    }
    /// The cloud answered none of the last polls because it could not be reached.
    pub fn unreachable(&self) -> bool {
        self.polls.get(&Kind::Servers).is_some_and(|p| p.unreachable)
    }
    /// The oldest successful poll among the kinds shown everywhere.
    pub fn servers_poll(&self) -> PollState {
        self.polls.get(&Kind::Servers).cloned().unwrap_or_default()
    }
}

/// Every cloud, plus what needs attention.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub clouds: Vec<CloudSnapshot>,
    pub alerts: Arc<Vec<Alert>>,
    /// Increments with every publication.
    pub seq: u64,
}

impl Snapshot {
    pub fn cloud(&self, name: &str) -> Option<&CloudSnapshot> {
        self.clouds.iter().find(|c| c.name == name)
    }
    /// The same observed data as `other` in every cloud, the same alerts (poll
    /// times aside): a refresh that brought no change.
    pub fn same_data(&self, other: &Snapshot) -> bool {
        self.clouds.len() == other.clouds.len()
            && self.clouds.iter().zip(other.clouds.iter()).all(|(a, b)| a.same_data(b))
            && self.alerts == other.alerts
    }
}

/// Positions of a server list ordered by id: a lookup by id is a binary search,
/// not a scan of 100,000 servers for each row drawn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerIndex {
    by_id: Vec<u32>,
}

impl ServerIndex {
    pub fn of(servers: &[Arc<Server>]) -> ServerIndex {
        let mut by_id: Vec<u32> = (0..servers.len()).filter_map(|i| u32::try_from(i).ok()).collect();
        crate::domain::sort::sort_by(&mut by_id, |a, b| {
            let id = |i: &u32| servers.get(*i as usize).map(|s| s.id.as_str());
            id(a).cmp(&id(b))
        });
        ServerIndex { by_id }
    }
    /// The server of this id in `servers`, if this index was made of them (a
    /// stale or foreign index finds nothing, never a wrong server).
    pub fn find<'a>(&self, servers: &'a [Arc<Server>], id: &str) -> Option<&'a Arc<Server>> {
        if self.by_id.len() != servers.len() {
            return None;
        }
        let at = |i: &u32| servers.get(*i as usize);
        let k = self.by_id.binary_search_by(|i| at(i).map(|s| s.id.as_str()).unwrap_or_default().cmp(id)).ok()?;
        self.by_id.get(k).and_then(at).filter(|s| s.id == id)
    }
}

/// Samples a series may lag behind the cloud's newest before its value is stale.
pub const STALE_SAMPLES: i64 = 3;

/// The time of the newest CPU sample of any server of a cloud: "now" on the
/// clock of the cloud's metric source.
pub fn newest_sample(metrics: &HashMap<String, Arc<ServerSeries>>) -> Option<i64> {
    metrics.values().filter_map(|m| m.cpu.last_time()).max()
}

/// Seconds between a series' last two samples (60 when it has fewer).
pub fn sample_spacing(s: &MetricSeries) -> i64 {
    let mut it = s.iter().rev();
    match (it.next(), it.next()) {
        (Some((a, _)), Some((b, _))) if a > b => a - b,
        _ => 60,
    }
}

/// A server's CPU % now: its last sample, when the server runs and the sample is
/// no more than [`STALE_SAMPLES`] intervals behind `newest` (see
/// [`newest_sample`]). A stopped server (SHUTOFF, PAUSED, SUSPENDED, SHELVED,
/// ERROR, BUILD...) or a stale series has none: its last value is history.
pub fn cpu_now(s: &Server, m: Option<&ServerSeries>, newest: Option<i64>) -> Option<f64> {
    use ServerStatus::*;
    let running =
        matches!(s.status, Active | Reboot | HardReboot | Migrating | Resize | VerifyResize | RevertResize | Rescue);
    let (at, v) = m?.cpu.last()?;
    let behind = newest.map_or(0, |n| n - at);
    (running && behind <= STALE_SAMPLES * sample_spacing(&m?.cpu)).then_some(v)
}

/// Group servers into applications by their `stackpilot:app` metadata and
/// aggregate their CPU.
pub fn summarize_apps(
    cloud: &str,
    servers: &[Arc<Server>],
    metrics: &HashMap<String, Arc<ServerSeries>>,
    capacity: usize,
    retention: i64,
) -> Vec<AppSummary> {
    let newest = newest_sample(metrics);
    let mut by: BTreeMap<&str, Vec<&Arc<Server>>> = BTreeMap::new();
    for s in servers {
        if let Some(a) = s.app() {
            by.entry(a).or_default().push(s);
        }
    }
    by.into_iter()
        .map(|(name, members)| {
            let mut sums: BTreeMap<i64, (f64, u32)> = BTreeMap::new();
            for m in &members {
                if let Some(ser) = metrics.get(&m.id) {
                    for (t, v) in ser.cpu.iter() {
                        let e = sums.entry(t).or_insert((0.0, 0));
                        e.0 += v;
                        e.1 += 1;
                    }
                }
            }
            let mut cpu = MetricSeries::new(capacity, retention);
            for (t, (s, n)) in sums {
                cpu.push(t, s / n.max(1) as f64);
            }
            let mut flavors: Vec<String> = members.iter().map(|m| m.flavor.label().to_string()).collect();
            flavors.sort();
            flavors.dedup();
            let live: Vec<f64> =
                members.iter().filter_map(|m| cpu_now(m, metrics.get(&m.id).map(|s| &**s), newest)).collect();
            AppSummary {
                name: name.to_string(),
                cloud: cloud.to_string(),
                members: members.iter().map(|m| m.id.clone()).collect(),
                active: members.iter().filter(|m| m.status == ServerStatus::Active).count(),
                building: members.iter().filter(|m| m.status.is_transitional()).count(),
                error: members.iter().filter(|m| m.status.is_error()).count(),
                shutoff: members.iter().filter(|m| m.status == ServerStatus::Shutoff).count(),
                cpu,
                flavors,
                cpu_now: (!live.is_empty()).then(|| live.iter().sum::<f64>() / live.len() as f64),
                cpu_live: live.len(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(names: &[&str]) -> Vec<Arc<Server>> {
        names.iter().map(|n| Arc::new(Server::new(format!("id-{n}"), *n, ServerStatus::Active))).collect()
    }

    #[test]
    fn servers_are_found_by_id_and_a_stale_index_never_finds_a_wrong_one() {
        let mut c = CloudSnapshot::empty("c", CloudScope::default());
        c.servers = Arc::new(servers(&["web-2", "api-1", "web-1"]));
        c.server_index = Arc::new(ServerIndex::of(&c.servers));
        assert_eq!(c.server("id-api-1").map(|s| s.display_name()), Some("api-1"));
        assert_eq!(c.server("id-web-1").map(|s| s.display_name()), Some("web-1"));
        assert!(c.server("id-db-1").is_none());
        // The list replaced without its index: still found, by a scan.
        c.servers = Arc::new(servers(&["db-1", "web-1", "zz-9"]));
        assert_eq!(c.server("id-db-1").map(|s| s.display_name()), Some("db-1"));
        assert_eq!(c.server("id-zz-9").map(|s| s.display_name()), Some("zz-9"));
        assert!(c.server("id-api-1").is_none());
    }
}
