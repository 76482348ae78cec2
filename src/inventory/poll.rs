//! One poller per (cloud, kind): its interval, skip-if-busy, a timeout, backoff
//! after failures (capped near the kind's interval so data comes back soon after
//! an outage), and a wake-up of the cloud's other pollers when one succeeds after
//! failing. Servers are read incrementally with `changes-since`.

use super::hub::{InventoryConfig, Update};
use super::snapshot::{CloudSnapshot, Kind, PollState};
use crate::cloud::compute::ServerQuery;
use crate::cloud::metric::ServerMetrics;
use crate::cloud::{ApiError, Client, ErrorKind};
use crate::config::settings::MetricsSettings;
use crate::domain::{Server, ServerStatus, Timestamp};
use chrono::Utc;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

/// The wait before the next poll after `failures` failures in a row: doubling,
/// at most `max`, and at most six intervals (a 5 s poller retries within 30 s).
pub fn backoff(interval: Duration, failures: u32, max: Duration) -> Duration {
    if failures == 0 {
        return interval;
    }
    let f = 2u32.saturating_pow(failures.min(16));
    let cap = max.min(interval.saturating_mul(6)).max(interval);
    interval.saturating_mul(f).min(cap)
}

/// Incremental server polling state.
#[derive(Default)]
pub(super) struct ServersPoll {
    /// Newest `updated` seen (cloud time).
    mark: Option<Timestamp>,
    last_full: Option<Instant>,
}

/// What one server poll brought.
pub(super) struct ServersPage {
    pub full: bool,
    pub servers: Vec<Server>,
    pub project: Option<String>,
    /// Records that did not decode: their id (when readable) and why. The hub
    /// keeps them, as placeholders, until they decode or a full listing drops them.
    pub undecodable: Vec<(Option<String>, String)>,
}

/// One server poll: a full listing when due, else `changes-since` the newest
/// `updated` seen.
pub(super) async fn poll_servers(
    st: Arc<std::sync::Mutex<ServersPoll>>,
    c: Client,
    full_every: Duration,
    page: Option<u32>,
) -> Result<ServersPage, ApiError> {
    let (full, since) = {
        let g = st.lock().map_err(|_| ApiError::new(ErrorKind::Config, c.name(), "compute", "poll state poisoned"))?;
        let full = g.mark.is_none() || g.last_full.is_none_or(|t| t.elapsed() >= full_every);
        // `changes-since` is inclusive (updated >= since) and Nova's times have
        // whole seconds: servers changed in the mark's second come again and merge
        // idempotently; nothing changed later is missed.
        (full, if full { None } else { g.mark })
    };
    // The raw view reads a server's own record when asked: no copy of each
    // record's JSON is held for it (two thirds of the memory at 10,000 servers).
    let q = ServerQuery { changes_since: since, page_size: page, without_raw: true, ..Default::default() };
    let listing = c.compute().list_servers_report(&q).await?;
    let servers = listing.items;
    let mut undecodable = Vec::new();
    for u in listing.undecodable {
        tracing::warn!(cloud = c.name(), "a server record does not decode: {u}");
        undecodable.push((u.id, u.error));
    }
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
    Ok(ServersPage { full, servers, project, undecodable })
}

/// Poll one kind until the hub goes away.
#[allow(clippy::too_many_arguments)]
pub(super) async fn poll_loop<F, Fut>(
    cloud: usize,
    kind: Kind,
    c: &Client,
    cfg: &InventoryConfig,
    now_signal: Arc<Notify>,
    siblings: Vec<Arc<Notify>>,
    tx: mpsc::Sender<Update>,
    mut f: F,
) where
    F: FnMut(&Client) -> Fut,
    Fut: Future<Output = Result<Update, ApiError>>,
{
    let interval = cfg.interval(kind);
    let timeout = cfg.refresh.timeout.0.max(Duration::from_secs(1));
    let mut state = PollState { interval, ..Default::default() };
    let task = format!("poller {}/{}", c.name(), kind.as_str());
    loop {
        super::liveness::injected_panic(&task);
        let started = Instant::now();
        state.last_attempt = Some(Utc::now());
        let (result, requests) = crate::cloud::session::counting(tokio::time::timeout(timeout + timeout, f(c))).await;
        let result = result.unwrap_or_else(|_| {
            Err(ApiError::new(
                ErrorKind::Transient,
                c.name(),
                kind.service(),
                format!("poll timed out after {}s", (timeout + timeout).as_secs()),
            ))
        });
        state.last_duration = started.elapsed();
        state.last_requests = requests;
        match result {
            Ok(update) => {
                let recovered = state.failures > 0;
                state.last_ok = Some(Utc::now());
                state.clock_offset = c.session.clock_offset();
                state.last_error = None;
                state.unreachable = false;
                state.auth_failed = false;
                state.failures = 0;
                if tx.send(update).await.is_err() {
                    return;
                }
                if recovered {
                    // The cloud answers again: the other kinds need not wait out their backoff.
                    for n in &siblings {
                        n.notify_one();
                    }
                }
            }
            Err(e) => {
                state.failures += 1;
                state.unreachable = e.kind == ErrorKind::Transient && e.status.is_none();
                state.auth_failed = e.kind == ErrorKind::Unauthorized;
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
    crate::domain::sort::sort_by_key(&mut v, |s| (s.app().is_none(), s.display_name().to_string()));
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

pub(super) async fn poll_metrics(
    c: &Client,
    cloud: Option<&CloudSnapshot>,
    m: &MetricsSettings,
) -> Result<HashMap<String, ServerMetrics>, ApiError> {
    let Some(cloud) = cloud else { return Ok(HashMap::new()) };
    let targets = metric_targets(cloud, m.max_servers);
    if targets.is_empty() {
        return Ok(HashMap::new());
    }
    let g = m.granularity.max(1) as i64;
    // From the oldest "last point" of the targets (or the retention window), with
    // two granularities of overlap so rates can be recomputed.
    // On the cloud's clock: the first read asks for the whole window.
    let retention_start = cloud.cloud_now(Utc::now()) - m.retention.chrono();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let i = Duration::from_secs(5);
        let max = Duration::from_secs(120);
        assert_eq!(backoff(i, 0, max), i);
        assert_eq!(backoff(i, 1, max), Duration::from_secs(10));
        assert_eq!(backoff(i, 2, max), Duration::from_secs(20));
        assert_eq!(backoff(i, 3, max), Duration::from_secs(30), "at most six intervals");
        assert_eq!(backoff(i, 10, max), Duration::from_secs(30));
        let slow = Duration::from_secs(600);
        assert_eq!(backoff(slow, 3, max), slow, "never below the interval");
        assert_eq!(backoff(Duration::from_secs(30), 5, Duration::from_secs(60)), Duration::from_secs(60));
    }
}
