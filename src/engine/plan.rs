//! The pure planner: `plan(apps, observed, state, config, now) -> Plan`. No I/O, no
//! clock, no randomness: the same inputs give the same plan, each action with its
//! reason. Priority order of ENGINE-SPEC section 8: garbage collection, then
//! restoring capacity, then scale-in. A blocked scale-out never blocks scale-in.
//!
//! Deleting needs a positive reason: a planned scale-in, a duplicate slot, a
//! member in ERROR or stuck, a retire the operator asked for, or a server created
//! by an operation given up on. A server whose policy is unknown (its file gone,
//! a store wiped) is never deleted for that absence: it is reported as unmanaged
//! until an operator retires the app. (ENGINE-SPEC section 8.7 deletes servers of
//! a policy that no longer exists after a grace; we deliberately do not: a broken
//! or missing file must never delete an app.)

use super::members::{member, Member, MemberState, Phase};
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
    /// The phase of each member (server id → phase). A member missing here is
    /// counted but never judged: not ready, not building, never replaced.
    pub phases: BTreeMap<String, Phase>,
    /// Members seen failing their readiness checks through their startup grace:
    /// the only ones replaced for not being ready.
    pub boot_failed: BTreeSet<String>,
    /// A member not ready this long after its creation is replaced.
    pub startup_grace: chrono::Duration,
    pub mode: AppMode,
    /// A rollout going on: members not at its target are replaced (ENGINE-SPEC 4).
    pub rollout: Option<super::rollout::RolloutPlan>,
    /// Members recovery is in charge of (ENGINE-SPEC 5): never deleted here for
    /// their state; recovery repairs, recreates or quarantines them.
    pub recovery_owned: BTreeSet<String>,
}

/// What the engine may do for an application.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AppMode {
    /// Converge it to its policy.
    #[default]
    Active,
    /// Do nothing to it (its policy is missing): why.
    Hold(String),
    /// Remove its members: an operator retired it.
    Retire,
}

impl AppInput {
    fn phase(&self, m: &Member) -> Option<Phase> {
        self.phases.get(&m.server_id).copied()
    }
    fn is_ready(&self, m: &Member) -> bool {
        self.phase(m) == Some(Phase::Ready)
    }
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
    /// Rollouts, stable and failed revisions, undo pins.
    #[serde(default)]
    pub rollouts: super::rollout::RolloutBook,
    /// Recoveries: what was tried on each member, and apps where recovery paused.
    #[serde(default)]
    pub recovery: super::recovery::RecoveryBook,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanConfig {
    pub create_visibility_timeout: chrono::Duration,
    pub build_timeout: chrono::Duration,
    pub orphan_grace: chrono::Duration,
    pub drain: chrono::Duration,
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
            max_creates_per_tick: 10,
            backoff_min_secs: 30,
            backoff_max_secs: 600,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Launch a member (the executor writes the intent, then the POST). The
    /// launch spec travels with the step (`decide` attaches it to the plan).
    Create {
        slot: u32,
        revision: u32,
        zone: Option<String>,
        launch: Option<Box<super::exec::LaunchInfo>>,
    },
    /// Record on a member that it booted (`stackpilot:ready`): a restarted engine
    /// does not judge its boot again.
    MarkReady {
        server_id: String,
        name: String,
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
    /// A recovery step on a member: start, reboot, rebuild (from `image`).
    Recover {
        server_id: String,
        name: String,
        rung: crate::policy::recovery::Rung,
        image: Option<String>,
    },
    /// Out of the capacity and kept for inspection (`stackpilot:state=quarantined`).
    Quarantine {
        server_id: String,
        name: String,
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
            Step::MarkReady { .. } => "mark-ready",
            Step::MarkTerminating { .. } => "mark-terminating",
            Step::Delete { .. } => "delete",
            Step::AdoptIntent { .. } => "adopt",
            Step::CompleteIntent { .. } => "complete",
            Step::FailIntent { .. } => "fail-intent",
            Step::Recover { .. } => "recover",
            Step::Quarantine { .. } => "quarantine",
            Step::Block(_) => "capacity-blocked",
            Step::Unblock => "capacity-unblocked",
        }
    }
    /// Changes the cloud (as opposed to bookkeeping).
    pub fn mutating(&self) -> bool {
        matches!(
            self,
            Step::Create { .. }
                | Step::MarkTerminating { .. }
                | Step::Delete { .. }
                | Step::Recover { .. }
                | Step::Quarantine { .. }
        )
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
            Step::Create { slot, revision, zone, .. } => format!(
                "create slot {slot} (revision {revision}{})",
                zone.as_ref().map(|z| format!(", zone {z}")).unwrap_or_default()
            ),
            Step::MarkReady { name, .. } => format!("mark {name} ready"),
            Step::MarkTerminating { name, .. } => format!("drain {name}"),
            Step::Delete { name, .. } => format!("delete {name}"),
            Step::Recover { name, rung, .. } => format!("{} {name}", rung.as_str()),
            Step::Quarantine { name, .. } => format!("quarantine {name}"),
            Step::AdoptIntent { server_id, .. } => format!("adopt {server_id}"),
            Step::CompleteIntent { op_id } => format!("complete op {}", short(op_id)),
            Step::FailIntent { op_id, .. } => format!("give up op {}", short(op_id)),
            Step::Block(b) => format!("hold scale-out ({}) for {}s", b.reason.as_str(), b.backoff_secs),
            Step::Unblock => "resume scale-out".into(),
        };
        format!("{what}: {}", self.reason)
    }
}

/// The first 8 characters of an id.
pub fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

/// Where an application stands.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppStatus {
    pub policy_id: String,
    pub app: String,
    /// The cloud of this location of the app.
    pub cloud: String,
    pub desired: u32,
    /// Members counted toward capacity (not terminating, not failed).
    pub members: u32,
    pub ready: u32,
    /// Members booting (BUILD, or ACTIVE within the startup grace).
    pub building: u32,
    /// Members counted but not serving: not ready, stopped.
    pub not_ready: u32,
    pub stopped: u32,
    pub in_flight: u32,
    pub terminating: u32,
    pub blocked: Option<String>,
    /// A rollout going on (filled in by `decide`).
    pub rollout: Option<super::rollout::RolloutView>,
    /// Held or retired: why (the policy's state).
    pub hold: Option<String>,
    pub converged: bool,
    /// Members failing now (ERROR, stopped unexpectedly, unhealthy; filled in by `decide`).
    pub unhealthy: u32,
    /// Too many failing at once: automatic recovery waits (filled in by `decide`).
    pub recovery_paused: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub actions: Vec<PlannedAction>,
    pub apps: Vec<AppStatus>,
    /// Servers that look like members but carry no stackpilot tag: never touched.
    pub untouched: Vec<String>,
    /// Members of policies the engine does not know (policy id, app, servers):
    /// never touched until an operator retires the app.
    pub unmanaged: Vec<(String, String, Vec<String>)>,
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
pub fn terminate(m: &Member) -> (Step, &'static str) {
    if m.status == ServerStatus::Build {
        (Step::Delete { server_id: m.server_id.clone(), name: m.name.clone() }, " (still building: nothing to drain)")
    } else {
        (Step::MarkTerminating { server_id: m.server_id.clone(), name: m.name.clone() }, "")
    }
}

/// A block of scale-out from now, its backoff doubled from the previous one.
fn block(reason: CapacityReason, detail: String, prev: Option<&Blocked>, cfg: &PlanConfig, now: Timestamp) -> Blocked {
    let secs = backoff_after(prev, cfg);
    Blocked { reason, since: now, until: now + chrono::Duration::seconds(secs as i64), backoff_secs: secs, detail }
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
    let mut out = Plan::default();
    let known: BTreeSet<&str> = apps.iter().map(|a| a.policy_id.as_str()).collect();
    let members = classify(apps, obs.servers, &mut out);
    let app_of = |pid: &str| {
        apps.iter().find(|a| a.policy_id == pid).map(|a| a.app.clone()).unwrap_or_else(|| "(unknown)".into())
    };
    let flight = intents(obs, &app_of, cfg, now, &mut out);
    let orphans = garbage(&members, &known, obs.failed, &flight.being_deleted, state, cfg, now, &app_of, &mut out);
    for a in apps {
        let mine: Vec<&Member> = members
            .get(&a.policy_id)
            .map(|v| v.iter().filter(|m| !orphans.contains(&m.server_id)).collect())
            .unwrap_or_default();
        let flying = flight.creates.get(&a.policy_id).cloned().unwrap_or_default();
        plan_app(a, &mine, &flying, &flight.being_deleted, obs.limits, state, cfg, now, &mut out);
    }
    out
}

/// Members by policy; tagged servers of unknown policies are reported as
/// unmanaged, untagged lookalikes as untouched.
fn classify(apps: &[AppInput], servers: &[Arc<Server>], out: &mut Plan) -> BTreeMap<String, Vec<Member>> {
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
    for (pid, ms) in &members {
        if !apps.iter().any(|a| &a.policy_id == pid) {
            let app = ms.iter().find_map(|m| servers.iter().find(|s| s.id == m.server_id).and_then(|s| s.app()));
            let live: Vec<String> = ms.iter().filter(|m| !m.deleting).map(|m| m.name.clone()).collect();
            if !live.is_empty() {
                out.unmanaged.push((pid.clone(), app.unwrap_or("(unnamed)").to_string(), live));
            }
        }
    }
    members
}

/// What the open intents say: creates in flight per policy, servers being deleted.
#[derive(Default)]
struct Flight {
    creates: BTreeMap<String, Vec<(u32, String)>>,
    /// Nova deletes asynchronously and the inventory may not show `deleting` yet;
    /// one DELETE per server is enough.
    being_deleted: BTreeSet<String>,
}

/// Intents: adopt what appeared, complete what finished, give up on what never
/// showed. Open create intents count as members in flight.
fn intents(
    obs: Observed<'_>,
    app_of: &dyn Fn(&str) -> String,
    cfg: &PlanConfig,
    now: Timestamp,
    out: &mut Plan,
) -> Flight {
    let by_tag: HashMap<&str, &Arc<Server>> = obs
        .servers
        .iter()
        .filter(|s| s.status != ServerStatus::Deleted)
        .flat_map(|s| {
            s.tags.iter().filter(|t| t.starts_with(crate::domain::names::OP_TAG_PREFIX)).map(move |t| (t.as_str(), s))
        })
        .collect();
    let mut f = Flight::default();
    for i in obs.intents {
        let app = app_of(&i.policy_id);
        let mut act = |step: Step, reason: String| {
            out.actions.push(PlannedAction { app: app.clone(), policy_id: Some(i.policy_id.clone()), step, reason })
        };
        match i.action.as_str() {
            "create" => match by_tag.get(op_tag(&i.op_id).as_str()) {
                Some(s) => {
                    if i.status == IntentStatus::Pending || i.server_id.as_deref() != Some(s.id.as_str()) {
                        let step = Step::AdoptIntent { op_id: i.op_id.clone(), server_id: s.id.clone() };
                        act(step, format!("found {} by its op tag", s.display_name()));
                    }
                    if s.status != ServerStatus::Build {
                        act(
                            Step::CompleteIntent { op_id: i.op_id.clone() },
                            format!("{} is {}", s.display_name(), s.status),
                        );
                    }
                }
                None if now - i.created_at > cfg.create_visibility_timeout => {
                    let why = format!(
                        "no server tagged {} after {}s",
                        op_tag(&i.op_id),
                        cfg.create_visibility_timeout.num_seconds()
                    );
                    act(
                        Step::FailIntent { op_id: i.op_id.clone(), why },
                        "create not visible: a new operation may be tried".into(),
                    );
                }
                None => {
                    if let Some(slot) = i.slot {
                        f.creates.entry(i.policy_id.clone()).or_default().push((slot, i.op_id.clone()));
                    }
                }
            },
            "delete" => {
                let there = |id: &String| obs.servers.iter().any(|s| &s.id == id && s.status != ServerStatus::Deleted);
                if !i.server_id.as_ref().is_some_and(there) {
                    act(Step::CompleteIntent { op_id: i.op_id.clone() }, "server gone".into());
                } else if now - i.created_at > cfg.create_visibility_timeout {
                    let why = "server still there after the delete".to_string();
                    act(
                        Step::FailIntent { op_id: i.op_id.clone(), why },
                        "delete not visible: it will be retried".into(),
                    );
                } else if let Some(id) = &i.server_id {
                    f.being_deleted.insert(id.clone());
                }
            }
            _ => {}
        }
    }
    f
}

/// Garbage: servers created by operations given up on, after a grace. Returns
/// their ids (they are not members of their app).
#[allow(clippy::too_many_arguments)]
fn garbage(
    members: &BTreeMap<String, Vec<Member>>,
    known: &BTreeSet<&str>,
    failed: &[Intent],
    being_deleted: &BTreeSet<String>,
    state: &EngineState,
    cfg: &PlanConfig,
    now: Timestamp,
    app_of: &dyn Fn(&str) -> String,
    out: &mut Plan,
) -> BTreeSet<String> {
    let failed_ops: BTreeSet<&str> = failed.iter().map(|i| i.op_id.as_str()).collect();
    let mut orphans = BTreeSet::new();
    for (pid, ms) in members.iter().filter(|(pid, _)| known.contains(pid.as_str())) {
        for m in ms.iter().filter(|m| m.op.as_deref().is_some_and(|o| failed_ops.contains(o))) {
            orphans.insert(m.server_id.clone());
            if m.deleting || being_deleted.contains(&m.server_id) {
                continue;
            }
            let first = state.orphans.get(&m.server_id).copied().unwrap_or(now);
            if now - first >= cfg.orphan_grace {
                out.actions.push(PlannedAction {
                    app: app_of(pid),
                    policy_id: Some(pid.clone()),
                    step: Step::Delete { server_id: m.server_id.clone(), name: m.name.clone() },
                    reason: "orphan: created by an operation given up on".into(),
                });
            }
        }
    }
    orphans
}

/// Plan one application from its members.
#[allow(clippy::too_many_arguments)]
fn plan_app(
    a: &AppInput,
    all: &[&Member],
    flying: &[(u32, String)],
    being_deleted: &BTreeSet<String>,
    limits: Option<&ComputeLimits>,
    state: &EngineState,
    cfg: &PlanConfig,
    now: Timestamp,
    out: &mut Plan,
) {
    let mut status = AppStatus { policy_id: a.policy_id.clone(), app: a.app.clone(), ..Default::default() };
    if let AppMode::Hold(why) = &a.mode {
        // Nothing is done to a held app, whatever its members look like.
        status.members = all.iter().filter(|m| !m.deleting).count() as u32;
        status.ready = all.iter().filter(|m| a.is_ready(m)).count() as u32;
        status.desired = a.desired;
        status.hold = Some(why.clone());
        out.apps.push(status);
        return;
    }
    let retire = a.mode == AppMode::Retire;
    let desired = if retire { 0 } else { a.desired };
    status.desired = desired;
    if retire {
        status.hold = Some("retired: removing its members".into());
    }
    let before = out.actions.len();
    let (keep, capacity_fault) = triage(a, all, being_deleted, state, cfg, now, &mut status, out);
    status.members = keep.len() as u32;
    for m in &keep {
        match a.phase(m) {
            Some(Phase::Ready) => status.ready += 1,
            Some(Phase::Building) => status.building += 1,
            Some(Phase::StoppedByOperator | Phase::StoppedUnexpectedly) => status.stopped += 1,
            _ => status.not_ready += 1,
        }
    }
    status.in_flight = flying.len() as u32;
    let current = keep.len() as u32 + flying.len() as u32;
    let rolling = if retire { None } else { rollout_split(a, &keep) };
    // A rollout creates up to its surge above desired, and never more new members than desired.
    let create_to = match &rolling {
        // Paused: capacity is kept (with the stable revision), nothing rolls.
        Some((r, _, _)) if r.paused => desired,
        Some((r, new, _)) => {
            let new_n = new.len() as u32 + flying.len() as u32;
            let n = (desired + r.surge).saturating_sub(current).min(desired.saturating_sub(new_n));
            let n = if r.batch > 0 { n.min(r.batch) } else { n };
            desired.max(current + n)
        }
        None => desired,
    };
    let first_create = out.actions.len();
    let blocked =
        capacity(a, create_to, current, capacity_fault, &keep, flying, limits, state, cfg, now, &mut status, out);
    match &rolling {
        Some((r, new, old)) => {
            if !r.paused {
                for x in out.actions.iter_mut().skip(first_create).filter(|x| matches!(x.step, Step::Create { .. })) {
                    x.reason = format!(
                        "rollout to revision {}: {} new of {desired} ({} old to replace)",
                        r.target,
                        new.len() + flying.len(),
                        old.len()
                    );
                }
            }
            replace_old(a, r, desired, current, new, old, out);
        }
        None if current > desired && flying.is_empty() => scale_in(a, desired, current, &keep, retire, out),
        None => {}
    }
    if a.mode == AppMode::Active {
        for m in keep.iter().filter(|m| a.is_ready(m) && !m.ready_mark) {
            let step = Step::MarkReady { server_id: m.server_id.clone(), name: m.name.clone() };
            let reason = "passed its readiness checks".to_string();
            out.actions.push(PlannedAction { app: a.app.clone(), policy_id: Some(a.policy_id.clone()), step, reason });
        }
    }
    let acted = out.actions.iter().skip(before).any(|x| x.step.mutating());
    status.converged = current == desired
        && flying.is_empty()
        && status.terminating == 0
        && status.blocked.is_none()
        && status.ready == status.members
        && !acted;
    if status.blocked.is_none() && current < desired {
        if let Some(b) = &blocked {
            status.blocked = Some(format!("capacity blocked ({}): {}", b.reason.as_str(), b.detail));
        }
    }
    out.apps.push(status);
}

/// Sort an app's members: the ones to keep (deduplicated by slot), and act on
/// the rest (drained → delete, ERROR → delete, stuck → delete, never ready →
/// replace, duplicates → terminate). Returns the members kept and the capacity
/// fault seen in an ERROR member.
#[allow(clippy::too_many_arguments)]
fn triage<'m>(
    a: &AppInput,
    all: &[&'m Member],
    being_deleted: &BTreeSet<String>,
    state: &EngineState,
    cfg: &PlanConfig,
    now: Timestamp,
    status: &mut AppStatus,
    out: &mut Plan,
) -> (Vec<&'m Member>, Option<String>) {
    let act = |out: &mut Plan, step: Step, reason: String| {
        out.actions.push(PlannedAction { app: a.app.clone(), policy_id: Some(a.policy_id.clone()), step, reason })
    };
    let mut alive: Vec<&Member> = Vec::new();
    let mut capacity_fault: Option<String> = None;
    for m in all {
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
                    let step = Step::Delete { server_id: m.server_id.clone(), name: m.name.clone() };
                    act(out, step, "drained: second phase of the termination".into());
                }
                continue;
            }
            MemberState::Quarantined => continue,
            MemberState::Active => {}
        }
        if m.status == ServerStatus::Error && !a.recovery_owned.contains(&m.server_id) {
            let fault = m.fault.clone().unwrap_or_else(|| "no fault reported".into());
            if is_capacity_fault(&fault) {
                capacity_fault = Some(fault.clone());
            }
            let step = Step::Delete { server_id: m.server_id.clone(), name: m.name.clone() };
            act(out, step, format!("in ERROR: {fault}"));
            continue;
        }
        if m.status == ServerStatus::Build && m.created.is_some_and(|c| now - c > cfg.build_timeout) {
            let step = Step::Delete { server_id: m.server_id.clone(), name: m.name.clone() };
            act(out, step, format!("stuck in BUILD for more than {} min", cfg.build_timeout.num_minutes()));
            continue;
        }
        // Seen failing its checks through its startup grace: replaced.
        if a.boot_failed.contains(&m.server_id) && m.created.is_some_and(|c| now - c > a.startup_grace) {
            let step = Step::MarkTerminating { server_id: m.server_id.clone(), name: m.name.clone() };
            act(
                out,
                step,
                format!("not ready {} after creation", crate::domain::time::human_age(a.startup_grace.num_seconds())),
            );
            continue;
        }
        alive.push(m);
    }
    (dedupe_slots(a, alive, out), capacity_fault)
}

/// Slot uniqueness: keep the older ready one of two claiming a slot.
fn dedupe_slots<'m>(a: &AppInput, alive: Vec<&'m Member>, out: &mut Plan) -> Vec<&'m Member> {
    let mut by_slot: BTreeMap<u32, Vec<&Member>> = BTreeMap::new();
    let mut keep = Vec::new();
    for m in alive {
        match m.slot {
            Some(s) => by_slot.entry(s).or_default().push(m),
            None => keep.push(m),
        }
    }
    for (slot, mut ms) in by_slot {
        crate::domain::sort::sort_by(&mut ms, |x, y| {
            a.is_ready(y).cmp(&a.is_ready(x)).then(x.created.cmp(&y.created)).then(x.server_id.cmp(&y.server_id))
        });
        let mut it = ms.into_iter();
        let Some(first) = it.next() else { continue };
        keep.push(first);
        for dup in it {
            let (step, why) = terminate(dup);
            let reason = format!("duplicate of slot {slot}: {} keeps it{why}", first.name);
            out.actions.push(PlannedAction { app: a.app.clone(), policy_id: Some(a.policy_id.clone()), step, reason });
        }
    }
    keep
}

/// Restore capacity: create members up to `desired` unless the spec is bad or
/// capacity is blocked, within the quota's headroom (a partial scale-out then
/// blocks with backoff). Returns the block in force.
#[allow(clippy::too_many_arguments)]
fn capacity(
    a: &AppInput,
    desired: u32,
    current: u32,
    capacity_fault: Option<String>,
    keep: &[&Member],
    flying: &[(u32, String)],
    limits: Option<&ComputeLimits>,
    state: &EngineState,
    cfg: &PlanConfig,
    now: Timestamp,
    status: &mut AppStatus,
    out: &mut Plan,
) -> Option<Blocked> {
    let act = |out: &mut Plan, step: Step, reason: String| {
        out.actions.push(PlannedAction { app: a.app.clone(), policy_id: Some(a.policy_id.clone()), step, reason })
    };
    // An ERROR from the scheduler blocks scale-out with backoff.
    let prev_block = state.blocked.get(&a.policy_id);
    let mut blocked = prev_block.filter(|b| now < b.until).cloned();
    if let Some(f) = &capacity_fault {
        if blocked.is_none() {
            let b = block(CapacityReason::NoValidHost, f.clone(), prev_block, cfg, now);
            act(out, Step::Block(b.clone()), format!("the scheduler found no host: {f}"));
            blocked = Some(b);
        }
    }
    if current < desired {
        let need = desired - current;
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
            let used: BTreeSet<u32> = keep.iter().filter_map(|m| m.slot).chain(flying.iter().map(|f| f.0)).collect();
            let free = (0u32..).filter(|s| !used.contains(s)).take(n as usize);
            for slot in free {
                let zone = a.zones.get(slot as usize % a.zones.len().max(1)).cloned();
                let step = Step::Create { slot, revision: a.revision, zone, launch: None };
                act(out, step, format!("{current} of {desired} members"));
            }
            if let Some(h) = headroom.filter(|h| *h < need) {
                let detail = format!("quota allows {h} more of {need} wanted");
                let b = block(CapacityReason::Quota, detail.clone(), prev_block, cfg, now);
                act(out, Step::Block(b), detail.clone());
                status.blocked = Some(format!("capacity blocked (quota): {detail}"));
            }
        }
    }
    if prev_block.is_some() && blocked.is_none() && capacity_fault.is_none() && current >= desired {
        act(out, Step::Unblock, "capacity is back".into());
    }
    blocked
}

/// The members of a rollout: new (at its target revision, or at its launch spec
/// with `skip_matching`) and old. `None` when no rollout goes on or nothing is old.
#[allow(clippy::type_complexity)]
fn rollout_split<'a, 'm>(
    a: &'a AppInput,
    keep: &[&'m Member],
) -> Option<(&'a super::rollout::RolloutPlan, Vec<&'m Member>, Vec<&'m Member>)> {
    let r = a.rollout.as_ref()?;
    let is_new = |m: &Member| {
        m.revision == Some(r.target) || (r.skip_matching && r.target_spec.is_some() && m.spec == r.target_spec)
    };
    let (new, old): (Vec<&Member>, Vec<&Member>) = keep.iter().partition(|m| is_new(m));
    (!old.is_empty()).then_some((r, new, old))
}

/// Remove old members as long as enough stay available (ENGINE-SPEC 4):
/// `min(|old|, available − (desired − max_unavailable))`, and whatever stands
/// above desired + surge (the autoscaler lowered desired) — old ones first,
/// unhealthy before healthy, oldest first. Protected members, members in
/// maintenance and members an operator stopped are never chosen.
fn replace_old(
    a: &AppInput,
    r: &super::rollout::RolloutPlan,
    desired: u32,
    current: u32,
    new: &[&Member],
    old: &[&Member],
    out: &mut Plan,
) {
    // Available means ready and recorded so (`stackpilot:ready`): an engine
    // killed right after this step, and the one after it, count the same members.
    let ready = |ms: &[&Member]| ms.iter().filter(|m| a.is_ready(m) && m.ready_mark).count() as u32;
    let available = ready(new) + ready(old);
    let floor = desired.saturating_sub(r.unavailable);
    let excess = current.saturating_sub(desired + r.surge);
    // Old members that serve nothing cost no availability: they go first, and always.
    let not_ready_old = old.iter().filter(|m| !a.is_ready(m)).count() as u32;
    let n = if r.paused {
        // Paused: only what stands above desired + surge goes (old first).
        (old.len() as u32).min(excess)
    } else {
        (old.len() as u32).min((not_ready_old + available.saturating_sub(floor)).max(excess))
    };
    let mut victims: Vec<&&Member> =
        old.iter().filter(|m| !m.protected && !m.maint && a.phase(m) != Some(Phase::StoppedByOperator)).collect();
    crate::domain::sort::sort_by(&mut victims, |x, y| {
        let unhealthy = |m: &Member| m.status != ServerStatus::Active || !a.is_ready(m);
        unhealthy(y).cmp(&unhealthy(x)).then(x.created.cmp(&y.created)).then(x.server_id.cmp(&y.server_id))
    });
    for m in victims.into_iter().take(n as usize) {
        let (step, why) = terminate(m);
        let reason =
            format!("rollout to revision {}: replaced ({available} available, at least {floor} kept){why}", r.target);
        out.actions.push(PlannedAction { app: a.app.clone(), policy_id: Some(a.policy_id.clone()), step, reason });
    }
}

/// Scale-in (never blocked by capacity): outdated revision first, then
/// unhealthy, then the oldest. Protected members, members in maintenance and
/// members an operator stopped are never chosen.
fn scale_in(a: &AppInput, desired: u32, current: u32, keep: &[&Member], retire: bool, out: &mut Plan) {
    let mut candidates: Vec<&&Member> =
        keep.iter().filter(|m| !m.protected && !m.maint && a.phase(m) != Some(Phase::StoppedByOperator)).collect();
    crate::domain::sort::sort_by(&mut candidates, |x, y| {
        let outdated = |m: &Member| m.revision != Some(a.revision);
        let unhealthy = |m: &Member| m.status != ServerStatus::Active || !a.is_ready(m);
        outdated(y)
            .cmp(&outdated(x))
            .then(unhealthy(y).cmp(&unhealthy(x)))
            .then(x.created.cmp(&y.created))
            .then(y.slot.cmp(&x.slot))
    });
    for m in candidates.into_iter().take((current - desired) as usize) {
        let (step, why) = terminate(m);
        let reason = if retire {
            format!("the app is retired: {current} members to remove{why}")
        } else {
            format!("{current} members, {desired} desired{why}")
        };
        out.actions.push(PlannedAction { app: a.app.clone(), policy_id: Some(a.policy_id.clone()), step, reason });
    }
}

/// Orphans first seen now, to remember (and those no longer orphans, to forget).
pub fn orphan_bookkeeping(
    servers: &[Arc<Server>],
    failed_ops: &BTreeSet<String>,
    state: &mut EngineState,
    now: Timestamp,
) {
    let mut current = BTreeSet::new();
    for s in servers {
        if let Some(m) = member(s) {
            let failed = m.op.as_ref().is_some_and(|o| failed_ops.contains(o));
            if failed && !m.deleting {
                current.insert(m.server_id.clone());
                state.orphans.entry(m.server_id).or_insert(now);
            }
        }
    }
    state.orphans.retain(|id, _| current.contains(id));
    // A mark is remembered until the server is gone: a listing that started
    // before the mark was written (a full resync on a loaded cloud) may show
    // the member unmarked after one that showed the mark, and a drained member
    // must never be drained again, nor another member chosen in its place.
    state.terminating.retain(|id, _| servers.iter().any(|s| &s.id == id && s.status != ServerStatus::Deleted));
}
