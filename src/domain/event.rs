//! Events (the audit log: who did what, why, with what result) and alerts.

use super::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
    pub fn parse(s: &str) -> Severity {
        match s {
            "critical" => Severity::Critical,
            "warning" => Severity::Warning,
            _ => Severity::Info,
        }
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub at: Timestamp,
    /// `engine:<id>`, `operator:<user>`, `inventory`.
    pub actor: String,
    pub cloud: String,
    /// Application (policy name) it concerns, if any.
    pub app: Option<String>,
    /// What was done: `create`, `delete`, `reboot`, `scale`, `adopt`, ...
    pub action: String,
    /// What it was done to (server id or name, volume id, ...).
    pub target: Option<String>,
    /// Why.
    pub reason: String,
    /// `ok`, `failed`, `planned`, `skipped`, ...
    pub result: String,
    pub severity: Severity,
    pub request_id: Option<String>,
    pub detail: Option<String>,
}

/// The actor of an operator's action: `operator:<login>` — `$USER`, else
/// `$LOGNAME`, else the name of the process's user id in /etc/passwd (a
/// service or a container often sets neither variable).
pub fn operator_actor() -> String {
    let login = ["USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .or_else(login_of_uid)
        .unwrap_or_else(|| "unknown".into());
    format!("operator:{login}")
}

fn login_of_uid() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

impl Event {
    pub fn new(at: Timestamp, actor: &str, cloud: &str, action: &str, reason: impl Into<String>) -> Self {
        Event {
            id: 0,
            at,
            actor: actor.to_string(),
            cloud: cloud.to_string(),
            app: None,
            action: action.to_string(),
            target: None,
            reason: reason.into(),
            result: "ok".to_string(),
            severity: Severity::Info,
            request_id: None,
            detail: None,
        }
    }
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.app = Some(app.into());
        self
    }
    pub fn target(mut self, t: impl Into<String>) -> Self {
        self.target = Some(t.into());
        self
    }
    pub fn result(mut self, r: impl Into<String>) -> Self {
        self.result = r.into();
        self
    }
    pub fn severity(mut self, s: Severity) -> Self {
        self.severity = s;
        self
    }
    pub fn request_id(mut self, r: Option<String>) -> Self {
        self.request_id = r;
        self
    }
    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
}

/// Labels stackpilot sets itself on alerts it sends out (a policy's
/// `[alerts] labels` cannot).
pub const RESERVED_ALERT_LABELS: [&str; 6] = ["alertname", "severity", "key", "source", "cloud", "app"];

/// A condition that needs an operator's attention, deduplicated by `key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub key: String,
    /// What sort of condition: `api-unreachable`, `auth-failed`, `policy-invalid`, ...
    #[serde(default)]
    pub kind: String,
    pub cloud: String,
    pub app: Option<String>,
    pub severity: Severity,
    pub message: String,
    /// When the condition started (kept while it lasts).
    pub since: Timestamp,
    pub last_seen: Timestamp,
    pub resolved_at: Option<Timestamp>,
    /// Labels its app's policy adds when it is sent out (`[alerts] labels`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

impl Alert {
    pub fn is_active(&self) -> bool {
        self.resolved_at.is_none()
    }
    /// A new alert starting now.
    pub fn new(
        kind: &str,
        key: impl Into<String>,
        cloud: &str,
        severity: Severity,
        message: impl Into<String>,
    ) -> Alert {
        let now = Timestamp::default();
        Alert {
            key: key.into(),
            kind: kind.to_string(),
            cloud: cloud.to_string(),
            app: None,
            severity,
            message: message.into(),
            since: now,
            last_seen: now,
            resolved_at: None,
            labels: Default::default(),
        }
    }
    pub fn app(mut self, app: Option<String>) -> Alert {
        self.app = app;
        self
    }
}

/// An alert that started or ended in one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertChange {
    Started(Alert),
    Resolved(Alert),
}

/// Alerts with a life: each evaluation raises the conditions that hold; one that
/// was already active keeps its `since` (so SINCE counts), one no longer raised is
/// resolved, and resolved alerts stay visible for a while. Deduplicated by key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertBook {
    alerts: std::collections::BTreeMap<String, Alert>,
    #[serde(skip)]
    raised: std::collections::BTreeSet<String>,
    #[serde(skip)]
    started: std::collections::BTreeSet<String>,
}

/// How long a resolved alert stays on screen.
pub const RESOLVED_KEPT_SECS: i64 = 600;

impl AlertBook {
    /// Start an evaluation: nothing is raised yet.
    pub fn begin(&mut self) {
        self.raised.clear();
        self.started.clear();
    }

    /// The condition holds now. `since` and `last_seen` of `a` are ignored.
    pub fn raise(&mut self, now: Timestamp, a: Alert) {
        self.raised.insert(a.key.clone());
        match self.alerts.get_mut(&a.key) {
            Some(old) if old.is_active() => {
                old.message = a.message;
                old.severity = a.severity;
                old.app = a.app;
                old.last_seen = now;
            }
            _ => {
                let key = a.key.clone();
                self.started.insert(key.clone());
                self.alerts.insert(key, Alert { since: now, last_seen: now, resolved_at: None, ..a });
            }
        }
    }

    /// Keep an alert's state as it is without raising or resolving it (its
    /// condition could not be evaluated this time).
    pub fn keep(&mut self, key: &str) {
        self.raised.insert(key.to_string());
    }

    /// Keep every alert whose key starts with `prefix` (a part that was not evaluated).
    pub fn keep_prefix(&mut self, prefix: &str) {
        let keys: Vec<String> = self.alerts.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
        self.raised.extend(keys);
    }

    /// End an evaluation: what was not raised is resolved. Returns what changed
    /// since the last evaluation.
    pub fn end(&mut self, now: Timestamp) -> Vec<AlertChange> {
        let mut changes = Vec::new();
        for (k, a) in self.alerts.iter_mut() {
            if self.raised.contains(k) {
                if self.started.contains(k) {
                    changes.push(AlertChange::Started(a.clone()));
                }
            } else if a.is_active() {
                a.resolved_at = Some(now);
                changes.push(AlertChange::Resolved(a.clone()));
            }
        }
        self.alerts.retain(|_, a| a.resolved_at.is_none_or(|r| (now - r).num_seconds() < RESOLVED_KEPT_SECS));
        changes
    }

    /// Active alerts first (most severe, then oldest), then recently resolved ones.
    pub fn alerts(&self) -> Vec<Alert> {
        let mut v: Vec<Alert> = self.alerts.values().cloned().collect();
        crate::domain::sort::sort_by(&mut v, |a, b| {
            b.is_active()
                .cmp(&a.is_active())
                .then(b.severity.cmp(&a.severity))
                .then(a.since.cmp(&b.since))
                .then(a.key.cmp(&b.key))
        });
        v
    }

    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values().filter(|a| a.is_active())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap_or_default()
    }

    #[test]
    fn alerts_start_keep_their_since_and_resolve() {
        let mut b = AlertBook::default();
        let a = || Alert::new("api-unreachable", "demo:compute", "demo", Severity::Critical, "compute is unreachable");
        b.begin();
        b.raise(t(0), a());
        let ch = b.end(t(0));
        assert!(matches!(ch.as_slice(), [AlertChange::Started(_)]), "{ch:?}");
        b.begin();
        b.raise(t(30), a());
        assert!(b.end(t(30)).is_empty(), "an ongoing alert is not started again");
        let x = &b.alerts()[0];
        assert_eq!((x.since, x.last_seen), (t(0), t(30)), "SINCE counts from the start");
        b.begin();
        let ch = b.end(t(40));
        assert!(matches!(ch.as_slice(), [AlertChange::Resolved(r)] if r.resolved_at == Some(t(40))), "{ch:?}");
        b.begin();
        b.raise(t(50), a());
        assert!(matches!(b.end(t(50)).as_slice(), [AlertChange::Started(x)] if x.since == t(50)), "a new episode");
        b.begin();
        b.end(t(60));
        b.begin();
        b.end(t(60 + RESOLVED_KEPT_SECS));
        assert!(b.alerts().is_empty(), "resolved alerts are dropped after a while");
    }

    #[test]
    fn kept_alerts_are_neither_raised_nor_resolved() {
        let mut b = AlertBook::default();
        b.begin();
        b.raise(t(0), Alert::new("policy-invalid", "demo:policy:web", "demo", Severity::Warning, "x"));
        b.end(t(0));
        b.begin();
        b.keep_prefix("demo:");
        assert!(b.end(t(10)).is_empty());
        assert_eq!(b.active().count(), 1);
    }
}
