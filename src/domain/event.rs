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

/// The actor of an operator's action: `operator:<login>`.
pub fn operator_actor() -> String {
    format!("operator:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()))
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

/// A condition that needs an operator's attention, deduplicated by `key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub key: String,
    pub cloud: String,
    pub app: Option<String>,
    pub severity: Severity,
    pub message: String,
    pub since: Timestamp,
    pub last_seen: Timestamp,
    pub resolved_at: Option<Timestamp>,
}

impl Alert {
    pub fn is_active(&self) -> bool {
        self.resolved_at.is_none()
    }
}
