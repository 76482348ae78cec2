//! Observers that look inside members: the console-log line that says cloud-init
//! finished, the HTTP readiness probe, and the Prometheus queries of autoscaling
//! policies. The engine says what to observe (`ObserveTargets`, from its
//! policies); one task per cloud runs the checks concurrently, each bounded by a
//! timeout, and hands the results to the hub, so they land in the same snapshot
//! the console shows and the engine plans from. A slow Nova or a hung probe
//! never holds an engine tick.

use super::prometheus::PromValues;
use crate::cloud::Client;
use crate::domain::{names, Server, ServerStatus, Timestamp};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};

/// An HTTP readiness check; `{ip}`, `{name}` and `{id}` in the URL are filled in
/// per server (first fixed IPv4 address, name, id).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCheck {
    pub url: String,
    pub expect_status: Vec<u16>,
    pub timeout: Duration,
}

/// How to tell that a member finished booting.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProbeSpec {
    /// A console-log line (`*` matches anything) that says the guest is up; `None`:
    /// not checked.
    pub console_marker: Option<String>,
    pub http: Option<HttpCheck>,
    /// Once the readiness checks passed, the HTTP check keeps running this
    /// often as a health check (`None`: readiness only).
    pub health_every: Option<Duration>,
}

/// One Prometheus instant query, run every `every`.
#[derive(Debug, Clone, PartialEq)]
pub struct PromQuery {
    pub url: String,
    pub query: String,
    pub every: Duration,
}

/// What the engine asks one cloud's observer to watch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObserveTargets {
    /// By member tag (`stackpilot-app-<policy id>`): how its servers are probed.
    pub probes: BTreeMap<String, ProbeSpec>,
    /// By key (the engine's choice): the queries to run.
    pub prometheus: BTreeMap<String, PromQuery>,
}

/// What has been observed of one server. The marker and the HTTP probe are sticky:
/// once seen, a member stays booted (continuous health is a separate concern).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProbeState {
    /// When this process first saw the server (in any state).
    pub first_seen: Option<Timestamp>,
    /// When this process first saw the server ACTIVE.
    pub first_active: Option<Timestamp>,
    /// When the console-log marker was first seen (or the cloud does not allow
    /// console logs, and readiness falls back to ACTIVE).
    pub marker_at: Option<Timestamp>,
    /// When the HTTP probe first answered as expected.
    pub http_ok_at: Option<Timestamp>,
    /// When a check first answered "not yet" (a log without the marker, a probe
    /// refused or answered wrong). Failures of the cloud's API are not answers
    /// about the member and never set this.
    pub failing_since: Option<Timestamp>,
    pub last_check: Option<Timestamp>,
    /// Why the last check did not pass (timeout, refused, unexpected status).
    pub last_error: Option<String>,
    /// The continuous health check after readiness: failures in a row.
    pub health_fails: u32,
    /// When the health check last ran, and last passed.
    pub health_at: Option<Timestamp>,
    pub health_ok_at: Option<Timestamp>,
    /// Why the last health check failed.
    pub health_error: Option<String>,
}

/// What the checks of a member say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    Passed,
    /// A check answered "not yet", first at this time.
    Failing(Timestamp),
    /// Nothing answered yet (not probed, or the cloud's API failed).
    Unobserved,
}

impl ProbeState {
    /// Every check of `spec` has passed.
    pub fn passed(&self, spec: &ProbeSpec) -> bool {
        (spec.console_marker.is_none() || self.marker_at.is_some())
            && (spec.http.is_none() || self.http_ok_at.is_some())
    }
    /// What the checks of `spec` say.
    pub fn checks(&self, spec: &ProbeSpec) -> Checks {
        match (self.passed(spec), self.failing_since) {
            (true, _) => Checks::Passed,
            (false, Some(t)) => Checks::Failing(t),
            (false, None) => Checks::Unobserved,
        }
    }
}

/// What a console-log check gave.
#[derive(Debug, Clone, PartialEq)]
pub enum MarkerOutcome {
    Seen,
    /// The log came and does not show the marker (yet).
    NotSeen,
    /// The cloud does not allow console logs (403/404 on the action): readiness
    /// falls back to ACTIVE and the other checks.
    NotAllowed(String),
    /// The cloud's API failed: nothing is known about the member.
    ApiError(String),
}

/// The latest answer of one query.
#[derive(Debug, Clone, PartialEq)]
pub struct PromSample {
    pub at: Timestamp,
    pub result: Result<PromValues, super::prometheus::PromError>,
}

/// A result for the hub.
#[derive(Debug, Clone)]
pub enum Observation {
    Marker {
        server_id: String,
        outcome: MarkerOutcome,
    },
    Http {
        server_id: String,
        ok: bool,
        error: Option<String>,
    },
    /// A health check of a member that passed its readiness checks.
    Health {
        server_id: String,
        ok: bool,
        error: Option<String>,
    },
    Prometheus {
        key: String,
        sample: PromSample,
    },
}

/// Does a console log show the marker? Each `*`-separated piece must appear, in
/// order, on one line.
pub fn marker_matches(marker: &str, log: &str) -> bool {
    if marker.is_empty() {
        return true;
    }
    let parts: Vec<&str> = marker.split('*').collect();
    log.lines().any(|line| {
        let mut rest = line;
        for p in &parts {
            match rest.find(p) {
                Some(idx) => rest = rest.get(idx + p.len()..).unwrap_or_default(),
                None => return false,
            }
        }
        true
    })
}

/// Checks in flight at once per cloud.
const CONCURRENCY: usize = 16;
/// Longest wait for a console log.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a Prometheus answer.
const PROM_TIMEOUT: Duration = Duration::from_secs(5);

/// A check to run.
enum Job {
    Console { server_id: String, marker: String },
    Http { server: Arc<Server>, check: HttpCheck },
    Health { server: Arc<Server>, check: HttpCheck },
    Prom { key: String, q: PromQuery },
}

impl Job {
    fn key(&self) -> String {
        match self {
            Job::Console { server_id, .. } => format!("console:{server_id}"),
            Job::Http { server, .. } | Job::Health { server, .. } => format!("http:{}", server.id),
            Job::Prom { key, .. } => format!("prom:{key}"),
        }
    }
}

/// What is due now: members whose checks have not passed yet, health checks
/// of members that passed them whose interval has elapsed, queries whose
/// interval has elapsed. `last_prom` remembers when each query last ran.
fn due(
    snap: &super::CloudSnapshot,
    t: &ObserveTargets,
    last_prom: &BTreeMap<String, std::time::Instant>,
    now: std::time::Instant,
    wall: Timestamp,
) -> Vec<Job> {
    let mut jobs = Vec::new();
    if !t.probes.is_empty() {
        for s in snap.servers.iter().filter(|s| s.status == ServerStatus::Active) {
            let Some(spec) = s.tags.iter().find_map(|tag| t.probes.get(tag)) else { continue };
            let st = snap.probes.get(&s.id).cloned().unwrap_or_default();
            match (&spec.console_marker, st.marker_at) {
                (Some(m), None) => jobs.push(Job::Console { server_id: s.id.clone(), marker: m.clone() }),
                _ => match (&spec.http, st.http_ok_at, spec.health_every) {
                    // A member that served before (a restarted engine sees it
                    // anew) is checked for its health, not for its boot.
                    (Some(h), None, None) => jobs.push(Job::Http { server: s.clone(), check: h.clone() }),
                    (Some(h), None, Some(_)) if s.meta(names::READY).is_none() => {
                        jobs.push(Job::Http { server: s.clone(), check: h.clone() })
                    }
                    (Some(h), _, Some(every)) => {
                        let every = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX);
                        if st.health_at.is_none_or(|at| wall - at >= every) {
                            jobs.push(Job::Health { server: s.clone(), check: h.clone() });
                        }
                    }
                    _ => {}
                },
            }
        }
    }
    for (k, q) in &t.prometheus {
        if last_prom.get(k).is_none_or(|at| now.duration_since(*at) >= q.every) {
            jobs.push(Job::Prom { key: k.clone(), q: q.clone() });
        }
    }
    jobs
}

async fn run_job(client: &Client, http: &reqwest::Client, job: Job) -> Observation {
    match job {
        Job::Console { server_id, marker } => {
            let compute = client.compute();
            use crate::cloud::ErrorKind;
            let outcome = match tokio::time::timeout(CONSOLE_TIMEOUT, compute.console_output(&server_id, Some(40)))
                .await
            {
                Ok(Ok(log)) if marker_matches(&marker, &log) => MarkerOutcome::Seen,
                Ok(Ok(_)) => MarkerOutcome::NotSeen,
                Ok(Err(e)) if matches!(e.kind, ErrorKind::Forbidden | ErrorKind::NotFound | ErrorKind::BadRequest) => {
                    MarkerOutcome::NotAllowed(e.to_string())
                }
                Ok(Err(e)) => MarkerOutcome::ApiError(e.to_string()),
                Err(_) => MarkerOutcome::ApiError(format!("no console log within {}s", CONSOLE_TIMEOUT.as_secs())),
            };
            Observation::Marker { server_id, outcome }
        }
        Job::Http { server, check } => {
            let (ok, error) = http_probe(http, &check, &server).await;
            Observation::Http { server_id: server.id.clone(), ok, error }
        }
        Job::Health { server, check } => {
            let (ok, error) = http_probe(http, &check, &server).await;
            Observation::Health { server_id: server.id.clone(), ok, error }
        }
        Job::Prom { key, q } => {
            let result = super::prometheus::query(http, &q.url, &q.query, PROM_TIMEOUT).await;
            Observation::Prometheus { key, sample: PromSample { at: chrono::Utc::now(), result } }
        }
    }
}

/// Probe one member over HTTP: ready when the status is one of `expect_status`.
async fn http_probe(http: &reqwest::Client, c: &HttpCheck, s: &Server) -> (bool, Option<String>) {
    let Some(ip) = s.primary_ip() else { return (false, Some("no IPv4 address yet".into())) };
    let url = c.url.replace("{ip}", ip).replace("{name}", s.display_name()).replace("{id}", &s.id);
    match http.get(&url).timeout(c.timeout).send().await {
        Ok(r) if c.expect_status.contains(&r.status().as_u16()) => (true, None),
        Ok(r) => (false, Some(format!("{url}: HTTP {}", r.status().as_u16()))),
        Err(e) => (false, Some(format!("{url}: {}", crate::cloud::error::describe_reqwest(&e)))),
    }
}

/// The observer of one cloud: every second, start what is due (at most
/// `CONCURRENCY` checks at once, none twice), and send each result as it comes.
pub(super) async fn observe(
    client: Client,
    mut snaps: watch::Receiver<Arc<super::Snapshot>>,
    index: usize,
    mut targets: watch::Receiver<ObserveTargets>,
    tx: mpsc::Sender<(usize, Observation)>,
) {
    let http = reqwest::Client::new();
    let sem = Arc::new(Semaphore::new(CONCURRENCY));
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut last_prom: BTreeMap<String, std::time::Instant> = BTreeMap::new();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            r = targets.changed() => if r.is_err() { return },
        }
        let t = targets.borrow_and_update().clone();
        let Some(snap) = snaps.borrow_and_update().clone().clouds.get(index).cloned() else { continue };
        let now = std::time::Instant::now();
        last_prom.retain(|k, _| t.prometheus.contains_key(k));
        for job in due(&snap, &t, &last_prom, now, chrono::Utc::now()) {
            let key = job.key();
            let fresh = in_flight.lock().map(|mut f| f.insert(key.clone())).unwrap_or(false);
            if !fresh {
                continue;
            }
            if let Job::Prom { key, .. } = &job {
                last_prom.insert(key.clone(), now);
            }
            let (client, http, tx, sem, in_flight) =
                (client.clone(), http.clone(), tx.clone(), sem.clone(), in_flight.clone());
            tokio::spawn(async move {
                let _permit = sem.acquire_owned().await;
                let o = run_job(&client, &http, job).await;
                if let Ok(mut f) = in_flight.lock() {
                    f.remove(&key);
                }
                if tx.send((index, o)).await.is_err() {
                    tracing::debug!("the hub ended before a probe's result");
                }
            });
        }
    }
}

/// Fold an observation into a cloud's probe states.
pub(super) fn apply(
    probes: &mut std::collections::HashMap<String, ProbeState>,
    prom: &mut BTreeMap<String, PromSample>,
    o: Observation,
    now: Timestamp,
) {
    match o {
        Observation::Marker { server_id, outcome } => {
            let st = probes.entry(server_id).or_default();
            st.last_check = Some(now);
            match outcome {
                MarkerOutcome::Seen => {
                    st.last_error = None;
                    st.marker_at.get_or_insert(now);
                }
                MarkerOutcome::NotSeen => {
                    st.last_error = Some("the console log does not show the marker yet".into());
                    st.failing_since.get_or_insert(now);
                }
                MarkerOutcome::NotAllowed(e) => {
                    st.last_error = Some(format!("no console log ({e}): readiness falls back to ACTIVE"));
                    st.marker_at.get_or_insert(now);
                }
                MarkerOutcome::ApiError(e) => st.last_error = Some(e),
            }
        }
        Observation::Http { server_id, ok, error } => {
            let st = probes.entry(server_id).or_default();
            st.last_check = Some(now);
            st.last_error = error;
            if ok {
                st.http_ok_at.get_or_insert(now);
            } else {
                st.failing_since.get_or_insert(now);
            }
        }
        Observation::Health { server_id, ok, error } => {
            let st = probes.entry(server_id).or_default();
            st.health_at = Some(now);
            if ok {
                st.health_fails = 0;
                st.health_ok_at = Some(now);
                st.http_ok_at.get_or_insert(now);
                st.health_error = None;
            } else {
                st.health_fails = st.health_fails.saturating_add(1);
                st.health_error = error;
            }
        }
        Observation::Prometheus { key, sample } => {
            prom.insert(key, sample);
        }
    }
}

/// Keep the servers' first-ACTIVE times and drop the states of servers gone.
pub(super) fn track_active(
    probes: &mut std::collections::HashMap<String, ProbeState>,
    servers: &std::collections::HashMap<String, Arc<Server>>,
    now: Timestamp,
) {
    // Only the engine's members are read (tagged as an application's or an
    // operation's): at 10,000 servers the others would hold megabytes for nothing.
    let member =
        |s: &Server| s.tags.iter().any(|t| t.starts_with(names::APP_TAG_PREFIX) || t.starts_with(names::OP_TAG_PREFIX));
    probes.retain(|id, _| servers.get(id).is_some_and(|s| member(s)));
    for s in servers.values().filter(|s| member(s)) {
        let st = probes.entry(s.id.clone()).or_default();
        st.first_seen.get_or_insert(now);
        if s.status == ServerStatus::Active {
            st.first_active.get_or_insert(now);
        }
    }
}

/// The member tag a spec is keyed by.
pub fn probe_key(policy_id: &str) -> String {
    names::app_tag(policy_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_init_markers_match_with_wildcards() {
        let log = "[ 22.0] cloud-init[598]: Cloud-init v. 23.4 finished at Wed, 25 Nov 2026. Datasource x.\nlogin:";
        assert!(marker_matches("Cloud-init v. * finished", log));
        assert!(!marker_matches("Cloud-init v. * failed", log));
        assert!(marker_matches("", ""));
        assert!(!marker_matches("Cloud-init v. * finished", "Cloud-init v. 23.4 running 'init'"));
        assert!(marker_matches("é*ü", "xé yü"), "multi-byte pieces");
    }

    #[test]
    fn sticky_observations() {
        let mut p = std::collections::HashMap::new();
        let mut q = BTreeMap::new();
        let t0 = chrono::Utc::now();
        let spec = ProbeSpec { console_marker: Some("x".into()), http: None, health_every: None };
        let m = |o: MarkerOutcome| Observation::Marker { server_id: "a".into(), outcome: o };
        apply(&mut p, &mut q, m(MarkerOutcome::ApiError("503".into())), t0);
        assert_eq!(p["a"].checks(&spec), Checks::Unobserved, "a failing API says nothing about the member");
        apply(&mut p, &mut q, m(MarkerOutcome::NotSeen), t0);
        assert_eq!(p["a"].checks(&spec), Checks::Failing(t0));
        apply(&mut p, &mut q, m(MarkerOutcome::Seen), t0 + chrono::Duration::seconds(3));
        assert!(p["a"].passed(&spec));
        apply(&mut p, &mut q, m(MarkerOutcome::Seen), t0 + chrono::Duration::seconds(5));
        assert_eq!(p["a"].marker_at, Some(t0 + chrono::Duration::seconds(3)), "first sighting is kept");
        let mut p2 = std::collections::HashMap::new();
        let forbidden = Observation::Marker { server_id: "b".into(), outcome: MarkerOutcome::NotAllowed("403".into()) };
        apply(&mut p2, &mut q, forbidden, t0);
        assert!(p2["b"].passed(&spec), "no console logs allowed: readiness falls back to ACTIVE");
        let http = ProbeSpec {
            console_marker: None,
            http: Some(HttpCheck {
                url: "http://{ip}/".into(),
                expect_status: vec![200],
                timeout: Duration::from_secs(1),
            }),
            health_every: Some(Duration::from_secs(1)),
        };
        assert!(!p["a"].passed(&http));
        let h = |ok: bool| Observation::Health { server_id: "a".into(), ok, error: None };
        apply(&mut p, &mut q, h(false), t0);
        apply(&mut p, &mut q, h(false), t0);
        assert_eq!(p["a"].health_fails, 2, "failures in a row are counted");
        apply(&mut p, &mut q, h(true), t0);
        assert_eq!((p["a"].health_fails, p["a"].health_ok_at), (0, Some(t0)), "a pass ends the run");
    }
}
