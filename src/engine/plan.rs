//! The pure planner: `plan(apps, observed, state, config, now) -> Plan`. No I/O, no
//! clock, no randomness: the same inputs give the same plan, each action with its
//! reason. Priority order of ENGINE-SPEC section 8: garbage collection, then
//! restoring capacity, then scale-in. A blocked scale-out never blocks scale-in.

use super::members::{member, Member, MemberState};
use super::op_tag;
use crate::domain::{ComputeLimits, Server, ServerStatus, Timestamp};
use crate::store::{Intent, IntentStatus};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// One application as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AppInput {
    pub policy_id: String,
    pub app: String,
    /// Revision new members get.
    pub revision: u32,
    /// Short spec hash of that revision (`stackpilot:spec`).
    pub spec: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    /// Members wanted (policy capacity or the autoscaler's decision).
    pub desired: u32,
    /// Why the launch spec cannot be used (image or flavor gone, ...).
    pub invalid: Option<String>,
    /// Availability zones to spread over.
    pub zones: Vec<String>,
    /// Members ready per readiness checks (server id → ready).
    pub ready: BTreeMap<String, bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CapacityReason {
    Quota,
    NoValidHost,
}

impl CapacityReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            CapacityReason::Quota => "quota",
            CapacityReason::NoValidHost => "no valid host",
        }
    }
}

/// Scale-out is held back until `until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blocked {
    pub reason: CapacityReason,
    pub since: Timestamp,
    pub until: Timestamp,
    pub backoff_secs: u64,
    pub detail: String,
}

/// What the engine remembers between ticks (persisted in the store).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    pub blocked: BTreeMap<String, Blocked>,
    /// When a server was first seen as an orphan.
    pub orphans: BTreeMap<String, Timestamp>,
    /// Members this engine marked `terminating`, until the mark shows in the
    /// observed state (the inventory may lag a tick behind the engine's own writes).
    #[serde(default)]
    pub terminating: BTreeMap<String, Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanConfig {
    pub create_visibility_timeout: chrono::Duration,
    pub build_timeout: chrono::Duration,
    pub orphan_grace: chrono::Duration,
    pub drain: chrono::Duration,
    pub startup_grace: chrono::Duration,
    pub max_creates_per_tick: u32,
    pub backoff_min_secs: u64,
    pub backoff_max_secs: u64,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            create_visibility_timeout: chrono::Duration::seconds(120),
            build_timeout: chrono::Duration::minutes(20),
            orphan_grace: chrono::Duration::minutes(10),
            drain: chrono::Duration::seconds(30),
            startup_grace: chrono::Duration::minutes(10),
            max_creates_per_tick: 10,
            backoff_min_secs: 30,
            backoff_max_secs: 600,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Launch a member (the executor writes the intent, then the POST).
    Create {
        slot: u32,
        revision: u32,
        zone: Option<String>,
    },
    /// First phase of a termination: `stackpilot:state=terminating`.
    MarkTerminating {
        server_id: String,
        name: String,
    },
    Delete {
        server_id: String,
        name: String,
    },
    /// An intent's server was found by its op tag.
    AdoptIntent {
        op_id: String,
        server_id: String,
    },
    /// The intent's work is visible and finished.
    CompleteIntent {
        op_id: String,
    },
    FailIntent {
        op_id: String,
        why: String,
    },
    /// Hold scale-out back (no API call).
    Block(Blocked),
    /// Scale-out may resume.
    Unblock,
}

impl Step {
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Create { .. } => "create",
            Step::MarkTerminating { .. } => "mark-terminating",
            Step::Delete { .. } => "delete",
            Step::AdoptIntent { .. } => "adopt",
            Step::CompleteIntent { .. } => "complete",
            Step::FailIntent { .. } => "fail-intent",
            Step::Block(_) => "capacity-blocked",
            Step::Unblock => "capacity-unblocked",
        }
    }
    /// Changes the cloud (as opposed to bookkeeping).
    pub fn mutating(&self) -> bool {
        matches!(self, Step::Create { .. } | Step::MarkTerminating { .. } | Step::Delete { .. })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedAction {
    pub app: String,
    pub policy_id: Option<String>,
    pub step: Step,
    pub reason: String,
}

impl PlannedAction {
    /// One line for the Plan view and events.
    pub fn describe(&self) -> String {
        let what = match &self.step {
            Step::Create { slot, revision, zone } => format!(
                "create slot {slot} (revision {revision}{})",
                zone.as_ref().map(|z| format!(", zone {z}")).unwrap_or_default()
            ),
            Step::MarkTerminating { name, .. } => format!("drain {name}"),
            Step::Delete { name, .. } => format!("delete {name}"),
            Step::AdoptIntent { server_id, .. } => format!("adopt {server_id}"),
            Step::CompleteIntent { op_id } => format!("complete op {}", &op_id[..op_id.len().min(8)]),
            Step::FailIntent { op_id, .. } => format!("give up op {}", &op_id[..op_id.len().min(8)]),
            Step::Block(b) => format!("hold scale-out ({}) for {}s", b.reason.as_str(), b.backoff_secs),
            Step::Unblock => "resume scale-out".into(),
        };
        format!("{what}: {}", self.reason)
    }
}

/// Where an application stands.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppStatus {
    pub policy_id: String,
    pub app: String,
    pub desired: u32,
    /// Members counted toward capacity (not terminating, not failed).
    pub members: u32,
    pub ready: u32,
    pub in_flight: u32,
    pub terminating: u32,
    pub blocked: Option<String>,
    pub converged: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub actions: Vec<PlannedAction>,
    pub apps: Vec<AppStatus>,
    /// Servers that look like members but carry no stackpilot tag: never touched.
    pub untouched: Vec<String>,
}

impl Plan {
    pub fn mutating(&self) -> impl Iterator<Item = &PlannedAction> {
        self.actions.iter().filter(|a| a.step.mutating())
    }
}

fn is_capacity_fault(f: &str) -> bool {
    let f = f.to_ascii_lowercase();
    f.contains("no valid host") || f.contains("exceeded maximum number of retries") || f.contains("not enough hosts")
}

/// The first step of terminating a member. Two-phase (mark `terminating`, drain,
/// delete) for a member that may serve; a member still in BUILD never served and
/// Nova refuses metadata changes until it is at rest (409), so it is deleted at
/// once, under a write-ahead delete intent like every delete.
fn terminate(m: &Member) -> (Step, &'static str) {
    if m.status == ServerStatus::Build {
        (Step::Delete { server_id: m.server_id.clone(), name: m.name.clone() }, " (still building: nothing to drain)")
    } else {
        (Step::MarkTerminating { server_id: m.server_id.clone(), name: m.name.clone() }, "")
    }
}

fn backoff_after(prev: Option<&Blocked>, cfg: &PlanConfig) -> u64 {
    match prev {
        Some(b) => (b.backoff_secs * 2).clamp(cfg.backoff_min_secs, cfg.backoff_max_secs),
        None => cfg.backoff_min_secs,
    }
}

/// What the planner reads about one cloud: the observed servers and limits and the
/// engine's open and failed intents.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub servers: &'a [Arc<Server>],
    pub limits: Option<&'a ComputeLimits>,
    pub intents: &'a [Intent],
    pub failed: &'a [Intent],
}

/// Plan one tick for one cloud.
pub fn plan(apps: &[AppInput], obs: Observed<'_>, state: &EngineState, cfg: &PlanConfig, now: Timestamp) -> Plan {
    let Observed { servers, limits, intents, failed } = obs;
    let mut out = Plan::default();
    let known: BTreeSet<&str> = apps.iter().map(|a| a.policy_id.as_str()).collect();
    let by_tag: HashMap<&str, &Arc<Server>> = servers
        .iter()
        .filter(|s| s.status != ServerStatus::Deleted)
        .flat_map(|s| s.tags.iter().filter(|t| t.starts_with("stackpilot-op-")).map(move |t| (t.as_str(), s)))
        .collect();
    let failed_ops: BTreeSet<&str> = failed.iter().map(|i| i.op_id.as_str()).collect();
    let mut members: BTreeMap<String, Vec<Member>> = BTreeMap::new();
    for s in servers {
        match member(s) {
            Some(m) if m.status != ServerStatus::Deleted => members.entry(m.policy_id.clone()).or_default().push(m),
            Some(_) => {}
            None => {
                // A lookalike without our tags: noted, never touched.
                if apps.iter().any(|a| s.display_name().starts_with(&format!("{}-r", a.app))) {
                    out.untouched.push(s.display_name().to_string());
                }
            }
        }
    }
    let app_of = |pid: &str| {
        apps.iter().find(|a| a.policy_id == pid).map(|a| a.app.clone()).unwrap_or_else(|| "(removed)".into())
    };

    // 1. Intents: adopt what appeared, complete what finished, give up on what never
    // showed. Open create intents count as members in flight.
    let mut in_flight: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
    // Servers with a delete under way: Nova deletes asynchronously and the
    // inventory may not show `deleting` yet; one DELETE per server is enough.
    let mut being_deleted: BTreeSet<String> = BTreeSet::new();
    for i in intents {
        let app = app_of(&i.policy_id);
        match i.action.as_str() {
            "create" => match by_tag.get(op_tag(&i.op_id).as_str()) {
                Some(s) => {
                    if i.status == IntentStatus::Pending || i.server_id.as_deref() != Some(s.id.as_str()) {
                        out.actions.push(PlannedAction {
                            app: app.clone(),
                            policy_id: Some(i.policy_id.clone()),
                            step: Step::AdoptIntent { op_id: i.op_id.clone(), server_id: s.id.clone() },
                            reason: format!("found {} by its op tag", s.display_name()),
                        });
                    }
                    if s.status != ServerStatus::Build {
                        out.actions.push(PlannedAction {
                            app,
                            policy_id: Some(i.policy_id.clone()),
                            step: Step::CompleteIntent { op_id: i.op_id.clone() },
                            reason: format!("{} is {}", s.display_name(), s.status),
                        });
                    }
                }
                None => {
                    if now - i.created_at > cfg.create_visibility_timeout {
                        out.actions.push(PlannedAction {
                            app,
                            policy_id: Some(i.policy_id.clone()),
                            step: Step::FailIntent {
                                op_id: i.op_id.clone(),
                                why: format!(
                                    "no server tagged {} after {}s",
                                    op_tag(&i.op_id),
                                    cfg.create_visibility_timeout.num_seconds()
                                ),
                            },
                            reason: "create not visible: a new operation may be tried".into(),
                        });
                    } else if let Some(slot) = i.slot {
                        in_flight.entry(i.policy_id.clone()).or_default().push((slot, i.op_id.clone()));
                    }
                }
            },
            "delete" => {
                let gone = i
                    .server_id
                    .as_ref()
                    .is_none_or(|id| !servers.iter().any(|s| &s.id == id && s.status != ServerStatus::Deleted));
                if gone {
                    out.actions.push(PlannedAction {
                        app,
                        policy_id: Some(i.policy_id.clone()),
                        step: Step::CompleteIntent { op_id: i.op_id.clone() },
                        reason: "server gone".into(),
                    });
                } else if now - i.created_at > cfg.create_visibility_timeout {
                    out.actions.push(PlannedAction {
                        app,
                        policy_id: Some(i.policy_id.clone()),
                        step: Step::FailIntent {
                            op_id: i.op_id.clone(),
                            why: "server still there after the delete".into(),
                        },
                        reason: "delete not visible: it will be retried".into(),
                    });
                } else if let Some(id) = &i.server_id {
                    being_deleted.insert(id.clone());
                }
            }
            _ => {}
        }
    }

    // 2. Garbage: servers of removed policies and of failed operations, after a grace.
    let mut orphan_ids = BTreeSet::new();
    for (pid, ms) in &members {
        for m in ms {
            let failed_op = m.op.as_deref().is_some_and(|o| failed_ops.contains(o));
            if known.contains(pid.as_str()) && !failed_op {
                continue;
            }
            orphan_ids.insert(m.server_id.clone());
            if m.deleting || being_deleted.contains(&m.server_id) {
                continue;
            }
            let first = state.orphans.get(&m.server_id).copied().unwrap_or(now);
            if now - first >= cfg.orphan_grace {
                out.actions.push(PlannedAction {
                    app: app_of(pid),
                    policy_id: Some(pid.clone()),
                    step: Step::Delete { server_id: m.server_id.clone(), name: m.name.clone() },
                    reason: if failed_op {
                        "orphan: created by an operation given up on".into()
                    } else {
                        "orphan: its policy no longer exists".into()
                    },
                });
            }
        }
    }

    // 3. Each application.
    for a in apps {
        let all: Vec<&Member> = members
            .get(&a.policy_id)
            .map(|v| v.iter().filter(|m| !orphan_ids.contains(&m.server_id)).collect())
            .unwrap_or_default();
        let mut status =
            AppStatus { policy_id: a.policy_id.clone(), app: a.app.clone(), desired: a.desired, ..Default::default() };
        let act = |out: &mut Plan, step: Step, reason: String| {
            out.actions.push(PlannedAction { app: a.app.clone(), policy_id: Some(a.policy_id.clone()), step, reason })
        };
        let mut alive: Vec<&Member> = Vec::new();
        let mut capacity_fault: Option<String> = None;
        for m in &all {
            if m.deleting || being_deleted.contains(&m.server_id) {
                status.terminating += 1;
                continue;
            }
            let marked = state.terminating.get(&m.server_id).map(|at| MemberState::Terminating(Some(*at)));
            let m_state = match (&m.state, marked) {
                (MemberState::Active, Some(t)) => t,
                (st, _) => st.clone(),
            };
            match &m_state {
                MemberState::Terminating(at) => {
                    status.terminating += 1;
                    let since = at.unwrap_or(now - cfg.drain);
                    if now - since >= cfg.drain {
                        act(
                            &mut out,
                            Step::Delete { server_id: m.server_id.clone(), name: m.name.clone() },
                            "drained: second phase of the termination".into(),
                        );
                    }
                    continue;
                }
                MemberState::Quarantined => continue,
                MemberState::Active => {}
            }
            if m.status == ServerStatus::Error {
                let fault = m.fault.clone().unwrap_or_else(|| "no fault reported".into());
                if is_capacity_fault(&fault) {
                    capacity_fault = Some(fault.clone());
                }
                act(
                    &mut out,
                    Step::Delete { server_id: m.server_id.clone(), name: m.name.clone() },
                    format!("in ERROR: {fault}"),
                );
                continue;
            }
            if m.status == ServerStatus::Build && m.created.is_some_and(|c| now - c > cfg.build_timeout) {
                act(
                    &mut out,
                    Step::Delete { server_id: m.server_id.clone(), name: m.name.clone() },
                    format!("stuck in BUILD for more than {} min", cfg.build_timeout.num_minutes()),
                );
                continue;
            }
            let ready = a.ready.get(&m.server_id).copied().unwrap_or(false);
            if !ready
                && m.status == ServerStatus::Active
                && m.created.is_some_and(|c| now - c > cfg.startup_grace)
                && !a.ready.is_empty()
            {
                act(
                    &mut out,
                    Step::MarkTerminating { server_id: m.server_id.clone(), name: m.name.clone() },
                    format!("not ready {} min after creation", cfg.startup_grace.num_minutes()),
                );
                continue;
            }
            alive.push(m);
        }
        // Slot uniqueness: keep the older ready one of two claiming a slot.
        let mut by_slot: BTreeMap<u32, Vec<&Member>> = BTreeMap::new();
        let mut unslotted = Vec::new();
        for m in &alive {
            match m.slot {
                Some(s) => by_slot.entry(s).or_default().push(m),
                None => unslotted.push(*m),
            }
        }
        let mut keep: Vec<&Member> = unslotted;
        for (slot, mut ms) in by_slot {
            ms.sort_by(|x, y| {
                let rx = a.ready.get(&x.server_id).copied().unwrap_or(false);
                let ry = a.ready.get(&y.server_id).copied().unwrap_or(false);
                ry.cmp(&rx).then(x.created.cmp(&y.created)).then(x.server_id.cmp(&y.server_id))
            });
            keep.push(ms[0]);
            for dup in &ms[1..] {
                let (step, why) = terminate(dup);
                act(&mut out, step, format!("duplicate of slot {slot}: {} keeps it{why}", ms[0].name));
            }
        }
        let flying = in_flight.get(&a.policy_id).cloned().unwrap_or_default();
        let current = keep.len() as u32 + flying.len() as u32;
        status.members = keep.len() as u32;
        status.in_flight = flying.len() as u32;
        status.ready = keep.iter().filter(|m| a.ready.get(&m.server_id).copied().unwrap_or(false)).count() as u32;

        // Capacity: an ERROR from the scheduler blocks scale-out with backoff.
        let prev_block = state.blocked.get(&a.policy_id);
        let mut blocked = prev_block.filter(|b| now < b.until).cloned();
        if let Some(f) = &capacity_fault {
            if blocked.is_none() {
                let secs = backoff_after(prev_block, cfg);
                let b = Blocked {
                    reason: super::plan::CapacityReason::NoValidHost,
                    since: now,
                    until: now + chrono::Duration::seconds(secs as i64),
                    backoff_secs: secs,
                    detail: f.clone(),
                };
                act(&mut out, Step::Block(b.clone()), format!("the scheduler found no host: {f}"));
                blocked = Some(b);
            }
        }
        if current < a.desired {
            let need = a.desired - current;
            if let Some(why) = &a.invalid {
                status.blocked = Some(format!("bad spec: {why}"));
            } else if let Some(b) = &blocked {
                status.blocked = Some(format!(
                    "capacity blocked ({}) until {}: {}",
                    b.reason.as_str(),
                    b.until.format("%H:%M:%S"),
                    b.detail
                ));
            } else {
                let headroom = limits.and_then(|l| l.headroom(a.vcpus, a.ram_mb)).map(|h| h.max(0) as u32);
                let n = need.min(headroom.unwrap_or(u32::MAX)).min(cfg.max_creates_per_tick);
                let used: BTreeSet<u32> =
                    keep.iter().filter_map(|m| m.slot).chain(flying.iter().map(|f| f.0)).collect();
                let mut slot = 0u32;
                for _ in 0..n {
                    while used.contains(&slot) {
                        slot += 1;
                    }
                    let zone = (!a.zones.is_empty()).then(|| a.zones[slot as usize % a.zones.len()].clone());
                    act(
                        &mut out,
                        Step::Create { slot, revision: a.revision, zone },
                        format!("{current} of {} members", a.desired),
                    );
                    slot += 1;
                }
                if headroom.is_some_and(|h| h < need) {
                    let secs = backoff_after(prev_block, cfg);
                    let detail = format!("quota allows {} more of {} wanted", headroom.unwrap_or(0), need);
                    let b = Blocked {
                        reason: CapacityReason::Quota,
                        since: now,
                        until: now + chrono::Duration::seconds(secs as i64),
                        backoff_secs: secs,
                        detail: detail.clone(),
                    };
                    act(&mut out, Step::Block(b), detail.clone());
                    status.blocked = Some(format!("capacity blocked (quota): {detail}"));
                }
            }
        } else if current > a.desired && flying.is_empty() {
            // Scale-in (never blocked by capacity): outdated revision first, then
            // unhealthy, then the oldest; protected members are never chosen.
            let mut candidates: Vec<&&Member> = keep.iter().filter(|m| !m.protected).collect();
            candidates.sort_by(|x, y| {
                let outdated = |m: &Member| m.revision != Some(a.revision);
                let unhealthy = |m: &Member| {
                    m.status != ServerStatus::Active
                        || !a.ready.get(&m.server_id).copied().unwrap_or(false) && !a.ready.is_empty()
                };
                outdated(y)
                    .cmp(&outdated(x))
                    .then(unhealthy(y).cmp(&unhealthy(x)))
                    .then(x.created.cmp(&y.created))
                    .then(y.slot.cmp(&x.slot))
            });
            for m in candidates.into_iter().take((current - a.desired) as usize) {
                let (step, why) = terminate(m);
                act(&mut out, step, format!("{current} members, {} desired{why}", a.desired));
            }
        }
        if prev_block.is_some() && blocked.is_none() && capacity_fault.is_none() && current >= a.desired {
            act(&mut out, Step::Unblock, "capacity is back".into());
        }
        status.converged = current == a.desired
            && flying.is_empty()
            && status.terminating == 0
            && status.blocked.is_none()
            && !out.actions.iter().any(|x| x.policy_id.as_deref() == Some(&a.policy_id) && x.step.mutating());
        if status.blocked.is_none() {
            if let Some(b) = &blocked {
                if current < a.desired {
                    status.blocked = Some(format!("capacity blocked ({}): {}", b.reason.as_str(), b.detail));
                }
            }
        }
        out.apps.push(status);
    }
    out
}

/// Orphans first seen now, to remember (and those no longer orphans, to forget).
pub fn orphan_bookkeeping(
    servers: &[Arc<Server>],
    known: &BTreeSet<String>,
    failed_ops: &BTreeSet<String>,
    state: &mut EngineState,
    now: Timestamp,
) {
    let mut current = BTreeSet::new();
    for s in servers {
        if let Some(m) = member(s) {
            let failed = m.op.as_ref().is_some_and(|o| failed_ops.contains(o));
            if (!known.contains(&m.policy_id) || failed) && !m.deleting {
                current.insert(m.server_id.clone());
                state.orphans.entry(m.server_id).or_insert(now);
            }
        }
    }
    state.orphans.retain(|id, _| current.contains(id));
    // A mark is remembered until the server shows it (or is gone).
    state.terminating.retain(|id, _| {
        servers.iter().any(|s| {
            &s.id == id
                && s.status != ServerStatus::Deleted
                && member(s).is_some_and(|m| m.state == MemberState::Active)
        })
    });
}
