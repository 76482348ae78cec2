//! The observed state of every cloud, as the console and the engine see it.

use crate::domain::{
    Alert, Backup, CloudScope, ComputeLimits, Flavor, Image, MetricSeries, Network, Server, ServerStatus, Severity,
    Timestamp, Volume,
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
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Servers,
        Kind::Flavors,
        Kind::Images,
        Kind::Networks,
        Kind::Volumes,
        Kind::Backups,
        Kind::Limits,
        Kind::Metrics,
    ];
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
    pub flavors: Arc<Vec<Flavor>>,
    pub images: Arc<Vec<Image>>,
    pub networks: Arc<Vec<Network>>,
    pub volumes: Arc<Vec<Volume>>,
    pub backups: Arc<Vec<Backup>>,
    pub limits: Option<ComputeLimits>,
    pub metrics: Arc<HashMap<String, Arc<ServerSeries>>>,
    pub apps: Arc<Vec<AppSummary>>,
    pub polls: BTreeMap<Kind, PollState>,
}

impl CloudSnapshot {
    pub fn empty(name: &str, scope: CloudScope) -> Self {
        CloudSnapshot {
            name: name.to_string(),
            scope,
            servers: Arc::default(),
            flavors: Arc::default(),
            images: Arc::default(),
            networks: Arc::default(),
            volumes: Arc::default(),
            backups: Arc::default(),
            limits: None,
            metrics: Arc::default(),
            apps: Arc::default(),
            polls: BTreeMap::new(),
        }
    }
    pub fn server(&self, id: &str) -> Option<&Arc<Server>> {
        self.servers.iter().find(|s| s.id == id)
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
            }
        })
        .collect()
}

/// Conditions the observed state alone reveals (the engine adds its own).
pub fn derive_alerts(snap: &Snapshot, now: Timestamp) -> Vec<Alert> {
    let mut out = Vec::new();
    let mk = |key: String, cloud: &str, app: Option<String>, sev: Severity, msg: String| Alert {
        key,
        cloud: cloud.to_string(),
        app,
        severity: sev,
        message: msg,
        since: now,
        last_seen: now,
        resolved_at: None,
    };
    for c in &snap.clouds {
        if c.unreachable() {
            let err = c.servers_poll().last_error.unwrap_or_default();
            out.push(mk(
                format!("{}:unreachable", c.name),
                &c.name,
                None,
                Severity::Critical,
                format!("cloud {} is unreachable: {err}", c.name),
            ));
        }
        for s in c.servers.iter().filter(|s| s.status == ServerStatus::Error) {
            let why = s.fault.as_ref().map(|f| f.message.clone()).unwrap_or_else(|| "no fault reported".into());
            out.push(mk(
                format!("{}:server-error:{}", c.name, s.id),
                &c.name,
                s.app().map(String::from),
                Severity::Warning,
                format!("server {} is in ERROR: {why}", s.display_name()),
            ));
        }
        if let Some(l) = &c.limits {
            if let (Some(max), used) = (l.max_instances, l.instances_used) {
                if max > 0 && used * 10 >= max * 9 {
                    out.push(mk(
                        format!("{}:quota-instances", c.name),
                        &c.name,
                        None,
                        if used >= max { Severity::Critical } else { Severity::Warning },
                        format!("instance quota {used}/{max} on {}", c.name),
                    ));
                }
            }
        }
    }
    out
}
