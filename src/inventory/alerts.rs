//! Conditions the observed state reveals, raised into an `AlertBook` at every
//! publication so each keeps its start time and resolves when it ends: a service
//! that cannot be reached, refused credentials, stale metrics, undecodable
//! servers, a task that died, servers in ERROR, a nearly full instance quota.
//! The engine raises its own (policies, store, lease, capacity) the same way.

use super::liveness::{describe, Liveness};
use super::snapshot::{CloudSnapshot, Kind, Snapshot};
use crate::domain::{Alert, AlertBook, ServerStatus, Severity, Timestamp};
use std::collections::BTreeMap;

/// Consecutive failed polls before a service counts as unreachable.
const UNREACHABLE_AFTER: u32 = 2;

/// Raise every condition of the snapshot into the book (one evaluation).
pub fn evaluate(book: &mut AlertBook, snap: &Snapshot, live: &Liveness, now: Timestamp) {
    book.begin();
    for c in &snap.clouds {
        cloud(book, c, now);
    }
    for (name, st) in live.dead() {
        book.raise(now, Alert::new("task-died", format!("task:{name}"), "", Severity::Critical, describe(&name, &st)));
    }
    book.end(now);
}

fn cloud(book: &mut AlertBook, c: &CloudSnapshot, now: Timestamp) {
    // Per service: the poll of it tried last says whether it answers.
    let mut services: BTreeMap<&str, &super::PollState> = BTreeMap::new();
    for (k, p) in &c.polls {
        let e = services.entry(k.service()).or_insert(p);
        if p.last_attempt > e.last_attempt {
            *e = p;
        }
    }
    for (svc, p) in &services {
        if p.failures >= UNREACHABLE_AFTER && !p.auth_failed {
            let err = &p.last_error;
            let sev = if *svc == "compute" { Severity::Critical } else { Severity::Warning };
            book.raise(
                now,
                Alert::new(
                    "api-unreachable",
                    format!("{}:api:{svc}", c.name),
                    &c.name,
                    sev,
                    format!("{svc} API of {} fails: {}", c.name, err.clone().unwrap_or_default()),
                ),
            );
        }
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
