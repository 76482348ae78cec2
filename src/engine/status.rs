//! What the engine publishes after every tick for the console, `/healthz`,
//! `/metrics` and the headless log: its mode, the lease, per-app plans and
//! states, the policies and where each stands, holds and alerts.

use super::plan::AppStatus;
use crate::domain::{Alert, Timestamp};

/// What the console shows of the engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStatus {
    pub mode: String,
    pub paused: bool,
    /// Another engine holds the lease (or this console is read-only): this one
    /// only watches.
    pub observer: bool,
    /// Why this engine observes instead of acting.
    pub observing_why: Option<String>,
    pub lease_holder: Option<String>,
    pub last_tick: Option<Timestamp>,
    pub ticks: u64,
    /// Per application and cloud: what the engine will do next and why.
    pub plans: Vec<PlanLines>,
    pub apps: Vec<AppStatus>,
    /// Apps on several clouds: (app, `demo 2 · demo-east 1`) this tick.
    pub placements: Vec<(String, String)>,
    /// Every policy and where it stands.
    pub policies: Vec<PolicyView>,
    /// Problems of files that define no running app (file:line:col: message).
    pub policy_errors: Vec<String>,
    /// Per cloud: why it does not act this tick.
    pub holds: Vec<(String, String)>,
    pub alerts: Vec<Alert>,
    pub approval_pending: bool,
    /// Autoscaled applications: why (not) scaling, and the recent decisions.
    pub scaling: Vec<ScalingView>,
    /// Per cloud, each volume a backup policy covers: its last backup, next run,
    /// chains and RPO (from the last backup pass).
    pub backups: Vec<(String, super::backups::VolumeBackups)>,
    /// Restore jobs running, and those that ended in the last hour.
    pub restores: Vec<super::restore::RestoreJob>,
}

/// One policy as the console's Policies view and the Apps view show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyView {
    pub app: String,
    pub cloud: String,
    pub policy_id: String,
    pub file: String,
    /// `ok`, `invalid`, `missing`, `retired`.
    pub state: String,
    /// file:line:col: field: message (invalid), or why missing.
    pub problems: Vec<String>,
    /// The revision in force (0: none yet).
    pub revision: u32,
    pub desired: u32,
    pub min: u32,
    pub max: u32,
    /// The first scaling metric and its target, e.g. `cpu 60 %`.
    pub target: Option<String>,
    /// `[app] mode`: auto, dry-run or paused.
    pub app_mode: String,
    /// When the file last changed, and who changed it (an operator, or the
    /// engine that found it changed on disk).
    pub changed_at: Option<Timestamp>,
    pub changed_by: Option<String>,
}

impl PolicyView {
    /// A policy as the book has it: capacity, target and mode from the policy in
    /// force (`decide` then puts the autoscaler's desired and the revision).
    pub fn of(e: &super::policies::PolicyEntry) -> PolicyView {
        let mut v = PolicyView {
            app: e.app.clone(),
            cloud: e.cloud.clone(),
            policy_id: e.id.clone(),
            file: e.file.display().to_string(),
            state: e.state.as_str().to_string(),
            problems: e.problems.clone(),
            ..Default::default()
        };
        if let Some(p) = &e.policy {
            let cap = p.spec.deploy.capacity;
            (v.desired, v.min, v.max) = (cap.desired, cap.min, cap.max);
            v.app_mode = p.spec.app.mode.as_str().to_string();
            v.target = p.spec.scaling.as_ref().and_then(|s| s.metrics.first()).map(|m| {
                let unit = if matches!(m.name.as_str(), "cpu" | "memory") { " %" } else { " B/s" };
                format!("{} {}{unit}", m.name.as_str(), m.target)
            });
        }
        v
    }
}

/// What the console shows of one autoscaled application.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScalingView {
    pub app: String,
    pub cloud: String,
    /// Members counted toward capacity now.
    pub current: u32,
    pub desired: u32,
    pub min: u32,
    pub max: u32,
    pub reason: String,
    pub message: String,
    /// The first metric: name, unit and target.
    pub metric: String,
    pub unit: String,
    pub target: f64,
    /// (unix seconds, value) of the first metric, averaged over the members.
    pub series: Vec<(i64, f64)>,
    pub decisions: Vec<super::scaling::DecisionRecord>,
}

/// What the engine will do next for one application on one cloud, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanLines {
    pub cloud: String,
    pub app: String,
    pub lines: Vec<String>,
}

impl PlanLines {
    pub fn new(cloud: &str, app: &str, lines: Vec<String>) -> Self {
        Self { cloud: cloud.to_string(), app: app.to_string(), lines }
    }
}
