//! Members as the engine reads them from tagged servers: which application,
//! revision and slot, the state of a two-phase termination, and the explicit
//! phase (building, ready, not-ready, stopped, error, deleting) every loop uses.

use super::meta;
use crate::domain::{Server, ServerStatus, Timestamp};

#[derive(Debug, Clone, PartialEq)]
pub enum MemberState {
    Active,
    /// Marked for deletion at this time (drained until the delete).
    Terminating(Option<Timestamp>),
    Quarantined,
}

/// A server the engine owns.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub server_id: String,
    pub name: String,
    pub policy_id: String,
    pub revision: Option<u32>,
    pub spec: Option<String>,
    pub slot: Option<u32>,
    pub op: Option<String>,
    pub state: MemberState,
    pub status: ServerStatus,
    pub deleting: bool,
    pub created: Option<Timestamp>,
    pub fault: Option<String>,
    pub protected: bool,
    /// An operator stopped it (`stackpilot:state=stopped-by-operator`).
    pub stopped_by_operator: bool,
    pub az: Option<String>,
}

/// The policy id of a server from its `stackpilot-app-<id>` tag (metadata as a
/// fallback), `None` for servers the engine does not own.
pub fn owner(s: &Server) -> Option<String> {
    s.tags.iter().find_map(|t| t.strip_prefix(meta::APP_TAG_PREFIX).map(String::from)).or_else(|| {
        s.tags
            .iter()
            .any(|t| t.starts_with(meta::OP_TAG_PREFIX))
            .then(|| s.meta(meta::POLICY).map(String::from))
            .flatten()
    })
}

pub fn member(s: &Server) -> Option<Member> {
    let policy_id = owner(s)?;
    let state = match s.meta(meta::STATE) {
        Some(meta::STATE_TERMINATING) => {
            MemberState::Terminating(s.meta(meta::TERMINATE_AT).and_then(crate::domain::time::parse_timestamp))
        }
        Some(meta::STATE_QUARANTINED) => MemberState::Quarantined,
        _ => MemberState::Active,
    };
    let op = s
        .meta(meta::OP)
        .map(String::from)
        .or_else(|| s.tags.iter().find_map(|t| t.strip_prefix(meta::OP_TAG_PREFIX).map(String::from)));
    Some(Member {
        server_id: s.id.clone(),
        name: s.display_name().to_string(),
        policy_id,
        revision: s.meta(meta::REV).and_then(|r| r.parse().ok()),
        spec: s.meta(meta::SPEC).map(String::from),
        slot: s.meta(meta::SLOT).and_then(|r| r.parse().ok()),
        op,
        state,
        status: s.status.clone(),
        deleting: s.task_state.as_deref() == Some("deleting") || s.status == ServerStatus::Deleted,
        created: s.created,
        fault: s.fault.as_ref().map(|f| f.message.clone()),
        protected: s.meta(meta::PROTECT) == Some("true"),
        stopped_by_operator: s.meta(meta::STATE) == Some(meta::STATE_STOPPED_BY_OPERATOR),
        az: s.availability_zone.clone(),
    })
}

/// Where a member stands, as every loop of the engine reads it. Only `Building`
/// members hold a scale-in back; only `Ready` members count as serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// In BUILD, or ACTIVE and still booting (checks not passed, or passed for
    /// less than `min_ready_seconds`) within the startup grace.
    Building,
    /// ACTIVE, every readiness check passed, for at least `min_ready_seconds`.
    Ready,
    /// ACTIVE past its startup grace without passing its checks, or in a
    /// transition (reboot, resize, migration, rebuild, rescue, unknown).
    NotReady,
    /// Stopped (SHUTOFF, SUSPENDED, PAUSED, SHELVED) with the operator's mark.
    StoppedByOperator,
    /// Stopped without the operator's mark.
    StoppedUnexpectedly,
    Error,
    /// Being drained or deleted.
    Deleting,
}

impl Phase {
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Building => "building",
            Phase::Ready => "ready",
            Phase::NotReady => "not-ready",
            Phase::StoppedByOperator => "stopped-by-operator",
            Phase::StoppedUnexpectedly => "stopped-unexpectedly",
            Phase::Error => "error",
            Phase::Deleting => "deleting",
        }
    }
}

/// What a member's phase is read from besides the member itself.
#[derive(Debug, Clone, Copy)]
pub struct PhaseFacts {
    /// When it started booting: Nova's `launched_at`, else when first seen ACTIVE.
    pub since: Option<Timestamp>,
    /// Every readiness check of its policy has passed.
    pub checks_passed: bool,
    pub min_ready: chrono::Duration,
    pub startup_grace: chrono::Duration,
    /// The engine marked it `terminating`, or a delete of it is under way.
    pub going: bool,
    pub now: Timestamp,
}

/// The phase of a member.
pub fn phase(m: &Member, f: &PhaseFacts) -> Phase {
    use ServerStatus as S;
    if m.deleting || f.going || matches!(m.state, MemberState::Terminating(_)) {
        return Phase::Deleting;
    }
    match &m.status {
        S::Error => Phase::Error,
        S::Build => Phase::Building,
        S::Shutoff | S::Suspended | S::Paused | S::Shelved | S::ShelvedOffloaded => {
            if m.stopped_by_operator {
                Phase::StoppedByOperator
            } else {
                Phase::StoppedUnexpectedly
            }
        }
        S::Active => {
            let since = f.since.unwrap_or(f.now);
            if f.checks_passed && f.now - since >= f.min_ready {
                Phase::Ready
            } else if f.now - m.created.unwrap_or(since).min(since) < f.startup_grace {
                Phase::Building
            } else {
                Phase::NotReady
            }
        }
        _ => Phase::NotReady,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(status: ServerStatus) -> Member {
        Member {
            server_id: "s".into(),
            name: "web-r1-s0".into(),
            policy_id: "p".into(),
            revision: Some(1),
            spec: None,
            slot: Some(0),
            op: None,
            state: MemberState::Active,
            status,
            deleting: false,
            created: None,
            fault: None,
            protected: false,
            stopped_by_operator: false,
            az: None,
        }
    }

    #[test]
    fn phases_are_explicit() {
        let now = chrono::Utc::now();
        let f = |since_secs: i64, passed: bool| PhaseFacts {
            since: Some(now - chrono::Duration::seconds(since_secs)),
            checks_passed: passed,
            min_ready: chrono::Duration::seconds(30),
            startup_grace: chrono::Duration::seconds(600),
            going: false,
            now,
        };
        let active = member(ServerStatus::Active);
        assert_eq!(phase(&active, &f(60, true)), Phase::Ready);
        assert_eq!(phase(&active, &f(10, true)), Phase::Building, "ready for less than min_ready_seconds");
        assert_eq!(phase(&active, &f(100, false)), Phase::Building, "booting within the startup grace");
        assert_eq!(phase(&active, &f(700, false)), Phase::NotReady, "past the startup grace");
        assert_eq!(phase(&member(ServerStatus::Build), &f(0, false)), Phase::Building);
        assert_eq!(phase(&member(ServerStatus::Shutoff), &f(700, true)), Phase::StoppedUnexpectedly);
        let stopped = Member { stopped_by_operator: true, ..member(ServerStatus::Shutoff) };
        assert_eq!(phase(&stopped, &f(700, true)), Phase::StoppedByOperator);
        assert_eq!(phase(&member(ServerStatus::Error), &f(700, true)), Phase::Error);
        assert_eq!(phase(&member(ServerStatus::Reboot), &f(700, true)), Phase::NotReady);
        assert_eq!(phase(&active, &PhaseFacts { going: true, ..f(60, true) }), Phase::Deleting);
    }
}
