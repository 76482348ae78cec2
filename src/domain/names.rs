//! The names stackpilot writes on what it creates: server metadata keys, server
//! tags and the values of `stackpilot:state`. One home for them, so the engine
//! that writes them, the inventory and console that read them, and the policy
//! checks that reserve them agree (ENGINE-SPEC section 1).

/// Prefix of every metadata key the engine owns (policies may not set them).
pub const META_PREFIX: &str = "stackpilot:";
/// Application name.
pub const APP: &str = "stackpilot:app";
/// Policy id (a UUID derived from cloud and application).
pub const POLICY: &str = "stackpilot:policy";
/// Launch-spec revision.
pub const REV: &str = "stackpilot:rev";
/// First 12 hex characters of the launch spec's hash.
pub const SPEC: &str = "stackpilot:spec";
/// Member slot index.
pub const SLOT: &str = "stackpilot:slot";
/// Operation (write-ahead intent) that created the server.
pub const OP: &str = "stackpilot:op";
/// Engine instance that created the server.
pub const ENGINE: &str = "stackpilot:engine";
/// Lifecycle mark: one of the `STATE_*` values.
pub const STATE: &str = "stackpilot:state";
/// When the member was marked `terminating` (drain start).
pub const TERMINATE_AT: &str = "stackpilot:terminate_at";
/// `true`: scale-in never picks this member.
pub const PROTECT: &str = "stackpilot:protect";
/// When the member first passed its readiness checks (it booted; an engine that
/// restarts does not judge its boot again).
pub const READY: &str = "stackpilot:ready";
/// Set by an operator (`:maint` in the console): recovery leaves the member
/// alone while it is `true`.
pub const MAINT: &str = "stackpilot:maint";
/// When recovery quarantined the member (it is deleted `keep_quarantined` later).
pub const QUARANTINED_AT: &str = "stackpilot:quarantined_at";

/// On backups and their temporary snapshots: `<policy>:<slot>`, the run that
/// made them (a run finds what it already made before creating anything).
pub const RUN: &str = "stackpilot:run";
/// On incremental backups: the id of the full their chain starts with.
pub const CHAIN: &str = "stackpilot:chain";

/// `stackpilot:state` of a serving member.
pub const STATE_ACTIVE: &str = "active";
/// `stackpilot:state` of a member being drained before its delete.
pub const STATE_TERMINATING: &str = "terminating";
/// `stackpilot:state` of a member kept for inspection.
pub const STATE_QUARANTINED: &str = "quarantined";
/// `stackpilot:state` of a member an operator stopped: never "recovered".
pub const STATE_STOPPED_BY_OPERATOR: &str = "stopped-by-operator";

/// Prefix of the tag naming the policy a member belongs to.
pub const APP_TAG_PREFIX: &str = "stackpilot-app-";
/// Prefix of the tag naming the operation that created a server.
pub const OP_TAG_PREFIX: &str = "stackpilot-op-";

/// Tag of the members of a policy.
pub fn app_tag(policy_id: &str) -> String {
    format!("{APP_TAG_PREFIX}{policy_id}")
}

/// Tag of the operation that created a server.
pub fn op_tag(op: &str) -> String {
    format!("{OP_TAG_PREFIX}{op}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_fit_nova_limits() {
        let id = "0b5f1b43-9f3b-5d3e-8a5e-2a3c4f5e6d7c";
        assert!(app_tag(id).len() <= 60, "Nova tags are at most 60 characters");
        assert!(op_tag(id).len() <= 60);
        assert!(APP.starts_with(META_PREFIX) && STATE.starts_with(META_PREFIX));
    }
}
