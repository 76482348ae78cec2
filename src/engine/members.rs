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
    /// It passed its readiness checks once (`stackpilot:ready`).
    pub ready_mark: bool,
    pub az: Option<String>,
    /// An operator put it in maintenance (`stackpilot:maint=true`): recovery leaves it alone.
    pub maint: bool,
    /// When recovery quarantined it.
    pub quarantined_at: Option<Timestamp>,
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
        ready_mark: s.meta(meta::READY).is_some(),
        az: s.availability_zone.clone(),
        maint: s.meta(meta::MAINT) == Some("true"),
        quarantined_at: s.meta(meta::QUARANTINED_AT).and_then(crate::domain::time::parse_timestamp),
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
    /// What its readiness checks say.
    pub checks: crate::inventory::probes::Checks,
    /// Since when this process has watched the member (first seen, in any state).
    pub watched_since: Option<Timestamp>,
    pub min_ready: chrono::Duration,
    pub startup_grace: chrono::Duration,
    /// A BUILD longer than this is stuck (it no longer counts as building).
    pub build_timeout: chrono::Duration,
    /// The engine marked it `terminating`, or a delete of it is under way.
    pub going: bool,
    pub now: Timestamp,
}

/// A member that failed to boot: ACTIVE past its startup grace, never ready, its
/// checks answering "not yet", and watched by this process since within that
/// grace. Only such a member is replaced for not being ready: one whose checks
/// were never answered (a console API that fails), or that this process first
/// saw long after its birth (a restart), is not.
pub fn boot_failed(m: &Member, f: &PhaseFacts) -> bool {
    let (Some(created), Some(watched)) = (m.created, f.watched_since) else { return false };
    let failing = matches!(f.checks, crate::inventory::probes::Checks::Failing(_));
    m.status == ServerStatus::Active
        && !m.ready_mark
        && failing
        && f.now - created > f.startup_grace
        && watched - created <= f.startup_grace
}

/// The phase of a member.
pub fn phase(m: &Member, f: &PhaseFacts) -> Phase {
    use ServerStatus as S;
    if m.deleting || f.going || matches!(m.state, MemberState::Terminating(_)) {
        return Phase::Deleting;
    }
    let created = m.created.unwrap_or(f.now);
    match &m.status {
        S::Error => Phase::Error,
        S::Build if f.now - created > f.build_timeout => Phase::NotReady,
        S::Build => Phase::Building,
        S::Shutoff | S::Suspended | S::Paused | S::Shelved | S::ShelvedOffloaded => {
            if m.stopped_by_operator {
                Phase::StoppedByOperator
            } else {
                Phase::StoppedUnexpectedly
            }
        }
        // It booted once (recorded on the server): its boot is not judged again.
        S::Active if m.ready_mark => Phase::Ready,
        S::Active => {
            let since = f.since.unwrap_or(f.now);
            let passed = f.checks == crate::inventory::probes::Checks::Passed;
            if passed && f.now - since >= f.min_ready {
                Phase::Ready
            } else if f.now - created.min(since) < f.startup_grace {
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
    use crate::inventory::probes::Checks;

    fn member(status: ServerStatus, created_secs_ago: i64, now: Timestamp) -> Member {
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
            created: Some(now - chrono::Duration::seconds(created_secs_ago)),
            fault: None,
            protected: false,
            stopped_by_operator: false,
            ready_mark: false,
            az: None,
            maint: false,
            quarantined_at: None,
        }
    }

    fn facts(now: Timestamp, checks: Checks) -> PhaseFacts {
        PhaseFacts {
            since: None,
            checks,
            watched_since: None,
            min_ready: chrono::Duration::seconds(30),
            startup_grace: chrono::Duration::seconds(600),
            build_timeout: chrono::Duration::seconds(1200),
            going: false,
            now,
        }
    }

    #[test]
    fn phases_are_explicit() {
        let now = chrono::Utc::now();
        let ago = |s: i64| now - chrono::Duration::seconds(s);
        let f = |booted_secs: i64, checks: Checks| PhaseFacts { since: Some(ago(booted_secs)), ..facts(now, checks) };
        let m = |st: ServerStatus, age: i64| member(st, age, now);
        let active = m(ServerStatus::Active, 60);
        assert_eq!(phase(&active, &f(60, Checks::Passed)), Phase::Ready);
        assert_eq!(phase(&active, &f(10, Checks::Passed)), Phase::Building, "ready for less than min_ready_seconds");
        assert_eq!(phase(&m(ServerStatus::Active, 100), &f(100, Checks::Unobserved)), Phase::Building, "booting");
        assert_eq!(phase(&m(ServerStatus::Active, 700), &f(700, Checks::Failing(ago(650)))), Phase::NotReady);
        assert_eq!(phase(&m(ServerStatus::Build, 5), &f(0, Checks::Unobserved)), Phase::Building);
        assert_eq!(
            phase(&m(ServerStatus::Build, 1300), &f(0, Checks::Unobserved)),
            Phase::NotReady,
            "a stuck build does not count as building"
        );
        assert_eq!(phase(&m(ServerStatus::Shutoff, 700), &f(700, Checks::Passed)), Phase::StoppedUnexpectedly);
        let stopped = Member { stopped_by_operator: true, ..m(ServerStatus::Shutoff, 700) };
        assert_eq!(phase(&stopped, &f(700, Checks::Passed)), Phase::StoppedByOperator);
        assert_eq!(phase(&m(ServerStatus::Error, 700), &f(700, Checks::Passed)), Phase::Error);
        assert_eq!(phase(&m(ServerStatus::Reboot, 700), &f(700, Checks::Passed)), Phase::NotReady);
        assert_eq!(phase(&active, &PhaseFacts { going: true, ..f(60, Checks::Passed) }), Phase::Deleting);
        let marked = Member { ready_mark: true, ..m(ServerStatus::Active, 7200) };
        assert_eq!(phase(&marked, &f(7200, Checks::Unobserved)), Phase::Ready, "booted once: not judged again");
    }

    #[test]
    fn only_a_boot_watched_from_within_its_grace_is_a_failed_boot() {
        let now = chrono::Utc::now();
        let ago = |s: i64| now - chrono::Duration::seconds(s);
        let watched = |from: i64, checks: Checks| PhaseFacts { watched_since: Some(ago(from)), ..facts(now, checks) };
        let old = member(ServerStatus::Active, 7200, now);
        assert!(!boot_failed(&old, &watched(30, Checks::Unobserved)), "nothing answered: not failed");
        assert!(
            !boot_failed(&old, &watched(30, Checks::Failing(ago(20)))),
            "first seen long after its grace (a restart)"
        );
        let young = member(ServerStatus::Active, 700, now);
        assert!(
            boot_failed(&young, &watched(700, Checks::Failing(ago(60)))),
            "watched since its birth, failing past its grace"
        );
        let early = member(ServerStatus::Active, 100, now);
        assert!(!boot_failed(&early, &watched(100, Checks::Failing(ago(90)))), "still in its grace");
        let marked = Member { ready_mark: true, ..young.clone() };
        assert!(!boot_failed(&marked, &watched(700, Checks::Failing(ago(60)))));
        assert!(!boot_failed(&young, &facts(now, Checks::Failing(ago(60)))), "never watched");
    }
}
