//! The engine: level-triggered reconciliation of application policies against
//! tagged OpenStack state. `plan` is pure (observed state, engine state and `now`
//! in, actions with reasons out); `exec` carries actions out with write-ahead
//! intents and bounded concurrency; `runner` ticks, holds the lease, reloads
//! policies, tracks readiness and publishes status; `metrics` serves `/metrics`.

pub mod exec;
pub mod members;
pub mod metrics;
pub mod plan;
pub mod prometheus;
pub mod runner;
pub mod scaling;

pub use plan::{plan, AppInput, AppStatus, EngineState, Plan, PlanConfig, PlannedAction, Step};
pub use runner::{Engine, EngineCommand, EngineConfig, EngineHandle, EngineStatus};

/// Metadata keys of members.
pub mod meta {
    pub const APP: &str = "stackpilot:app";
    pub const POLICY: &str = "stackpilot:policy";
    pub const REV: &str = "stackpilot:rev";
    pub const SPEC: &str = "stackpilot:spec";
    pub const SLOT: &str = "stackpilot:slot";
    pub const OP: &str = "stackpilot:op";
    pub const ENGINE: &str = "stackpilot:engine";
    pub const STATE: &str = "stackpilot:state";
    pub const TERMINATE_AT: &str = "stackpilot:terminate_at";
    pub const PROTECT: &str = "stackpilot:protect";
}

/// Tag of the operation that created a server.
pub fn op_tag(op: &str) -> String {
    format!("stackpilot-op-{op}")
}
