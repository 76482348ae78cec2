//! Members as the engine reads them from tagged servers: which application,
//! revision and slot, and the state of a two-phase termination.

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
    pub az: Option<String>,
}

/// The policy id of a server from its `stackpilot-app-<id>` tag (metadata as a
/// fallback), `None` for servers the engine does not own.
pub fn owner(s: &Server) -> Option<String> {
    s.tags.iter().find_map(|t| t.strip_prefix("stackpilot-app-").map(String::from)).or_else(|| {
        s.tags.iter().any(|t| t.starts_with("stackpilot-op-")).then(|| s.meta(meta::POLICY).map(String::from)).flatten()
    })
}

pub fn member(s: &Server) -> Option<Member> {
    let policy_id = owner(s)?;
    let state = match s.meta(meta::STATE) {
        Some("terminating") => {
            MemberState::Terminating(s.meta(meta::TERMINATE_AT).and_then(crate::domain::time::parse_timestamp))
        }
        Some("quarantined") => MemberState::Quarantined,
        _ => MemberState::Active,
    };
    let op = s
        .meta(meta::OP)
        .map(String::from)
        .or_else(|| s.tags.iter().find_map(|t| t.strip_prefix("stackpilot-op-").map(String::from)));
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
        az: s.availability_zone.clone(),
    })
}
