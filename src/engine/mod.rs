//! The engine: level-triggered reconciliation of application policies against
//! tagged OpenStack state. Each tick of each cloud is observe → decide → act:
//!
//! - `observe` reads the inventory's snapshot and the store, once, up front;
//!   whatever it cannot read becomes a hold (the tick decides but never acts);
//! - `decide` is pure: `members` (phases), `autoscale` + `scaling` (the
//!   autoscaler), `plan` (the planner) turn the observation into a `Decision`;
//! - `act` persists what the decision needs, then `exec` carries the plan out
//!   with write-ahead intents and bounded concurrency.
//!
//! Around them: `policies` (the policy book: last good revisions, missing and
//! retired apps), `lease` (one acting engine per cloud), `runner` (the loop,
//! commands, alerts), `status` (what the console sees), `metrics` (`/metrics`
//! and `/healthz`). Backups run beside the apps: `backups` plans a pass (pure),
//! `retention` chooses what goes, `backup_run` reads the cloud and carries the
//! pass out.

pub mod act;
pub mod autoscale;
pub mod backup_run;
pub mod backups;
pub mod decide;
pub mod exec;
pub mod lease;
pub mod members;
pub mod metrics;
pub mod notify;
pub mod observe;
pub mod operate;
pub mod placement;
pub mod plan;
pub mod policies;
pub mod preview;
pub mod recovery;
pub mod restore;
pub mod retention;
pub mod rollout;
pub mod runner;
pub mod scaling;
pub mod status;

pub use plan::{plan, AppInput, AppMode, AppStatus, EngineState, Plan, PlanConfig, PlannedAction, Step};
pub use runner::{Engine, EngineCommand, EngineConfig, EngineHandle};
pub use status::{EngineStatus, PlanLines, PolicyView, ScalingView};

/// The metadata keys and tags of members.
pub use crate::domain::names as meta;
pub use crate::domain::names::op_tag;
