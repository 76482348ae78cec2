//! Conditions the observed state reveals, raised into an `AlertBook` at every
//! publication so each keeps its start time and resolves when it ends: a service
//! that cannot be reached, refused credentials, stale metrics, undecodable
//! servers, a task that died, servers in ERROR, a nearly full instance quota.
//! The engine raises its own (policies, store, lease, capacity) the same way.

use super::liveness::{describe, Liveness};
use super::snapshot::{CloudSnapshot, Kind, Snapshot};
use crate::domain::{Alert, AlertBook, ServerStatus, Severity, Timestamp};
use std::collections::BTreeMap;

/// A service counts as failing after this many of its fastest poll intervals
/// without a successful answer, and not before the inventory's `alert_after`
/// (30 s by default): a service that fails one request in three is slow, not
/// down, and gets no alert that comes and goes.
const FAILING_AFTER_INTERVALS: u32 = 5;

/// Raise every condition of the snapshot into the book (one evaluation). A
/// service is alerted after `after` without an answer (at the soonest).
pub fn evaluate(book: &mut AlertBook, snap: &Snapshot, live: &Liveness, after: std::time::Duration, now: Timestamp) {
    book.begin();
    for c in &snap.clouds {
        cloud(book, c, after, now);
    }
    for (name, st) in live.dead() {
        book.raise(now, Alert::new("task-died", format!("task:{name}"), "", Severity::Critical, describe(&name, &st)));
    }
    book.end(now);
}

/// Services of a cloud that have not answered for a while: the latest attempt
/// failed and no poll of the service succeeded for `FAILING_AFTER_INTERVALS` of
/// its fastest interval. Each with its most recent failing poll.
fn failing_services(
    c: &CloudSnapshot,
    at_least: std::time::Duration,
    now: Timestamp,
) -> Vec<(&'static str, &super::PollState)> {
    let mut by: BTreeMap<&'static str, Vec<&super::PollState>> = BTreeMap::new();
    for (k, p) in &c.polls {
        by.entry(k.service()).or_default().push(p);
    }
    let mut out = Vec::new();
    for (svc, polls) in by {
        // The most recent failure, for its message; none: nothing to say.
        let failed = polls.iter().copied().filter(|p| p.failures > 0).max_by_key(|p| p.last_attempt);
        let Some(latest) = failed else { continue };
        if polls.iter().any(|p| p.auth_failed) {
            continue;
        }
        let fastest = polls.iter().map(|p| p.interval).filter(|i| !i.is_zero()).min().unwrap_or_default();
        let after = (fastest * FAILING_AFTER_INTERVALS).max(at_least);
        let silent = match polls.iter().filter_map(|p| p.last_ok).max() {
            Some(t) => (now - t).to_std().unwrap_or_default() > after,
            None => polls.iter().any(|p| p.failures >= FAILING_AFTER_INTERVALS),
        };
        if silent {
            out.push((svc, latest));
        }
    }
    out
}

fn cloud(book: &mut AlertBook, c: &CloudSnapshot, after: std::time::Duration, now: Timestamp) {
    for (svc, p) in failing_services(c, after, now) {
        let sev = if svc == "compute" { Severity::Critical } else { Severity::Warning };
        let msg = format!("{svc} API of {} fails: {}", c.name, p.last_error.clone().unwrap_or_default());
        book.raise(now, Alert::new("api-unreachable", format!("{}:api:{svc}", c.name), &c.name, sev, msg));
    }
    if let Some(p) = c.polls.values().find(|p| p.auth_failed) {
        book.raise(
            now,
            Alert::new(
                "auth-failed",
                format!("{}:auth", c.name),
                &c.name,
                Severity::Critical,
                format!(
                    "{} refuses the credentials: {}; check the cloud's auth in clouds.yaml / secure.yaml",
                    c.name,
                    p.last_error.clone().unwrap_or_default()
                ),
            ),
        );
    }
    if let Some(p) = c.polls.get(&Kind::Servers).filter(|p| !p.undecodable.is_empty()) {
        book.raise(
            now,
            Alert::new(
                "undecodable",
                format!("{}:undecodable", c.name),
                &c.name,
                Severity::Critical,
                format!(
                    "{} server record(s) of {} cannot be decoded (the engine holds): {}",
                    p.undecodable.len(),
                    c.name,
                    p.undecodable.join("; ")
                ),
            ),
        );
    }
    if let Some(p) = c.polls.get(&Kind::Metrics) {
        if p.last_attempt.is_some() && p.is_stale(now, 3) && !c.servers.is_empty() {
            let age = p.age(now).map(|a| format!("{a}s old")).unwrap_or_else(|| "never read".into());
            book.raise(
                now,
                Alert::new(
                    "metrics-stale",
                    format!("{}:metrics-stale", c.name),
                    &c.name,
                    Severity::Warning,
                    format!(
                        "metrics of {} are stale ({age}): {}",
                        c.name,
                        p.last_error.clone().unwrap_or_else(|| "no error reported".into())
                    ),
                ),
            );
        }
    }
    for s in c.servers.iter().filter(|s| s.status == ServerStatus::Error) {
        let why = s.fault.as_ref().map(|f| f.message.clone()).unwrap_or_else(|| "no fault reported".into());
        book.raise(
            now,
            Alert::new(
                "server-error",
                format!("{}:server-error:{}", c.name, s.id),
                &c.name,
                Severity::Warning,
                format!("server {} is in ERROR: {why}", s.display_name()),
            )
            .app(s.app().map(String::from)),
        );
    }
    if let Some(l) = &c.limits {
        if let (Some(max), used) = (l.max_instances, l.instances_used) {
            if max > 0 && used * 10 >= max * 9 {
                book.raise(
                    now,
                    Alert::new(
                        "quota",
                        format!("{}:quota-instances", c.name),
                        &c.name,
                        if used >= max { Severity::Critical } else { Severity::Warning },
                        format!("instance quota {used}/{max} on {}", c.name),
                    ),
                );
            }
        }
    }
}
