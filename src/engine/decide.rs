//! Decide: a pure function of one cloud's observation, the policies and the
//! engine's state. It resolves each policy's launch spec into a revision, reads
//! each member's phase from the observed probes, runs the autoscaler, and plans
//! (see `plan`). No I/O and no clock: what it decides to write (new revisions,
//! autoscaler histories, events) travels in the `Decision` for `act` to persist.

use super::autoscale::{autoscale, prom_key, ScaleCtx, ScaleOutcome};
use super::exec::LaunchInfo;
use super::members::{boot_failed, member, phase, Member, MemberState, Phase, PhaseFacts};
use super::observe::{Observation, StoreView};
use super::plan::{orphan_bookkeeping, plan, AppInput, AppMode, EngineState, Observed, Plan, PlanConfig, Step};
use super::policies::PolicyEntry;
use super::status::PolicyView;
use crate::domain::{names, Timestamp};
use crate::inventory::probes::{HttpCheck, ObserveTargets, ProbeSpec, PromQuery};
use crate::inventory::CloudSnapshot;
use crate::policy::scaling::Source;
use crate::policy::{self, AppRunMode, CloudCatalog, Policy, ResolvedSpec};
use crate::store::PolicyState;
use std::collections::{BTreeMap, BTreeSet};

/// What `decide` reads.
pub struct DecideInput<'a> {
    pub obs: &'a Observation,
    pub store: &'a StoreView,
    pub state: &'a EngineState,
    /// The policies of this cloud.
    pub entries: &'a [&'a PolicyEntry],
    pub plan_cfg: &'a PlanConfig,
    /// `engine:<id>`, for events.
    pub actor: &'a str,
    /// Gnocchi granularity in seconds.
    pub granularity: u32,
}

/// The catalog kinds a policy resolves against that were never read.
fn unread_for(p: &Policy, c: &CloudSnapshot) -> Vec<&'static str> {
    let needs = super::observe::catalog_needs(std::iter::once(p));
    c.catalog_unread().into_iter().filter(|k| needs.contains(k)).map(|k| k.as_str()).collect()
}

/// A revision to record before a create uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRevision {
    pub policy_id: String,
    pub app: String,
    pub revision: u32,
    pub spec_hash: String,
    pub spec: ResolvedSpec,
}

/// What one tick of one cloud decided.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    pub plan: Plan,
    pub inputs: Vec<AppInput>,
    /// The launch spec of each (policy, revision) a create may use.
    pub launches: BTreeMap<(String, u32), LaunchInfo>,
    pub new_revisions: Vec<NewRevision>,
    /// Autoscaler outcomes by policy id.
    pub scaling: Vec<(String, ScaleOutcome)>,
    /// What the inventory's observer should probe and query.
    pub targets: ObserveTargets,
    pub policies: Vec<PolicyView>,
    /// Launch specs the cloud cannot resolve (file:line:col: field: message).
    pub problems: Vec<String>,
    /// Policies whose names wait for a catalog read (never "bad spec" for that).
    pub waiting: BTreeSet<String>,
    /// The engine state with the orphans seen now remembered.
    pub state: EngineState,
    /// Policies in `dry-run` mode: their steps wait for an operator's approval.
    pub dry_run: BTreeSet<String>,
    /// Rollout steps for the audit log.
    pub events: Vec<crate::domain::Event>,
    /// Failed rollouts an operator must see: (policy id, app, why).
    pub rollout_alerts: Vec<(String, String, String)>,
    /// Rollout commands applied (their store keys are cleared once persisted).
    pub commands_applied: Vec<String>,
    /// Rollouts going on, per policy id (for the console).
    pub rollouts: BTreeMap<String, super::rollout::RolloutView>,
    /// Recovery steps, added to the plan after the planner ran.
    pub repairs: Vec<super::plan::PlannedAction>,
    /// Alerts of this cloud's apps (recovery) in force now.
    pub alerts: Vec<crate::domain::Alert>,
    /// Failing members per policy id (for the console and `/metrics`).
    pub unhealthy: BTreeMap<String, u32>,
}

/// How a policy's members are probed (its readiness section).
fn probe_spec(p: &Policy) -> ProbeSpec {
    let r = &p.spec.readiness;
    ProbeSpec {
        console_marker: (!r.cloud_init_marker.is_empty()).then(|| r.cloud_init_marker.clone()),
        // The application's health endpoint is the probe unless [readiness] names one.
        http: r
            .http
            .as_ref()
            .map(|h| HttpCheck { url: h.url.clone(), expect_status: h.expect_status.clone(), timeout: h.timeout.0 })
            .or_else(|| {
                p.spec.application.health.as_ref().map(|url| HttpCheck {
                    url: url.clone(),
                    expect_status: vec![200],
                    timeout: std::time::Duration::from_secs(5),
                })
            }),
        health_every: Some(p.spec.recovery.health_interval.0),
    }
}

/// The catalog of a cloud, from the inventory.
fn catalog(c: &CloudSnapshot) -> CloudCatalog {
    CloudCatalog {
        images: c.images.to_vec(),
        flavors: c.flavors.to_vec(),
        networks: c.networks.to_vec(),
        keypairs: c.keypairs.to_vec(),
        security_groups: c.security_groups.to_vec(),
    }
}

/// What decide reads of each member: its phase, its boot time, the members that
/// failed to boot.
#[derive(Default)]
struct MemberFacts {
    phases: BTreeMap<String, Phase>,
    since: BTreeMap<String, Timestamp>,
    boot_failed: BTreeSet<String>,
}

/// Every member's phase and boot time.
fn phases(i: &DecideInput<'_>, members: &[Member], p: Option<&Policy>) -> MemberFacts {
    let c = &i.obs.cloud;
    let spec = p.map(probe_spec).unwrap_or_default();
    let deleting: BTreeSet<&str> =
        i.store.open_intents.iter().filter(|x| x.action == "delete").filter_map(|x| x.server_id.as_deref()).collect();
    let mut out = MemberFacts::default();
    for m in members {
        let probe = c.probes.get(&m.server_id).cloned().unwrap_or_default();
        // Since launch when the cloud says (a restarted engine does not re-warm
        // members that were serving); a cloud clock ahead of ours gives way to
        // when this process first saw it ACTIVE, so the time never moves.
        let launched = c.server(&m.server_id).and_then(|s| s.launched_at);
        let s = match (launched, probe.first_active) {
            (Some(l), Some(f)) => Some(l.min(f)),
            (Some(l), None) => Some(l.min(i.obs.now)),
            (None, f) => f,
        };
        if let Some(s) = s {
            out.since.insert(m.server_id.clone(), s);
        }
        let facts = PhaseFacts {
            since: s,
            checks: probe.checks(&spec),
            watched_since: probe.first_seen,
            min_ready: chrono::Duration::seconds(p.map_or(0, |p| p.spec.readiness.min_ready_seconds) as i64),
            startup_grace: p.map_or(chrono::Duration::MAX, |p| p.spec.readiness.startup_grace.chrono()),
            build_timeout: i.plan_cfg.build_timeout,
            going: i.state.terminating.contains_key(&m.server_id) || deleting.contains(m.server_id.as_str()),
            now: i.obs.now,
        };
        if boot_failed(m, &facts) {
            out.boot_failed.insert(m.server_id.clone());
        }
        out.phases.insert(m.server_id.clone(), phase(m, &facts));
    }
    out
}

/// The revision of a resolved spec: the recorded one with its hash, else the
/// next after the highest recorded (or carried by members: a wiped store goes on).
fn revision_of(store: &StoreView, pid: &str, hash: &str, floor: u32) -> (u32, bool) {
    let revs = store.revisions.get(pid).map(Vec::as_slice).unwrap_or_default();
    match revs.iter().rev().find(|r| r.spec_hash == hash) {
        Some(r) => (r.revision, false),
        None => (revs.iter().map(|r| r.revision).max().unwrap_or(0).max(floor) + 1, true),
    }
}

/// Decide one cloud's tick.
pub fn decide(i: &DecideInput<'_>) -> Decision {
    let c = &i.obs.cloud;
    let now = i.obs.now;
    let mut d = Decision { state: i.state.clone(), ..Default::default() };
    let cat = catalog(c);
    let mut members_of: BTreeMap<String, Vec<Member>> = BTreeMap::new();
    for m in c.servers.iter().filter_map(|s| member(s)) {
        members_of.entry(m.policy_id.clone()).or_default().push(m);
    }
    for e in i.entries {
        let members = members_of.remove(&e.id).unwrap_or_default();
        let input = app_input(i, e, &members, &cat, &mut d);
        d.inputs.push(input);
    }
    let failed_ops: BTreeSet<String> = i.store.failed_intents.iter().map(|x| x.op_id.clone()).collect();
    orphan_bookkeeping(&c.servers, &failed_ops, &mut d.state, now);
    d.plan = plan(
        &d.inputs,
        Observed {
            servers: &c.servers,
            limits: c.limits.as_ref(),
            intents: &i.store.open_intents,
            failed: &i.store.failed_intents,
        },
        &d.state,
        i.plan_cfg,
        now,
    );
    d.plan.actions.append(&mut d.repairs);
    // Each create carries what it launches.
    for a in &mut d.plan.actions {
        if let (Step::Create { revision, launch, .. }, Some(pid)) = (&mut a.step, &a.policy_id) {
            *launch = d.launches.get(&(pid.clone(), *revision)).cloned().map(Box::new);
        }
    }
    // A rollout going on is shown with its app, which is not converged.
    for s in &mut d.plan.apps {
        s.unhealthy = d.unhealthy.get(&s.policy_id).copied().unwrap_or(0);
        s.recovery_paused = d.state.recovery.paused.contains_key(&s.policy_id);
        if let Some(v) = d.rollouts.get(&s.policy_id) {
            s.rollout = Some(v.clone());
            s.converged = false;
        }
    }
    // A block only matters to an app being converged.
    let active: BTreeSet<&str> =
        d.inputs.iter().filter(|a| a.mode == AppMode::Active).map(|a| a.policy_id.as_str()).collect();
    d.state.blocked.retain(|pid, _| active.contains(pid.as_str()));
    d
}

/// The planner's input for one policy, and what it needs observed.
fn app_input(
    i: &DecideInput<'_>,
    e: &PolicyEntry,
    members: &[Member],
    cat: &CloudCatalog,
    d: &mut Decision,
) -> AppInput {
    let floor = members.iter().filter_map(|m| m.revision).max().unwrap_or(0);
    let p = e.policy.as_ref().filter(|_| e.state != PolicyState::Retired);
    let facts = phases(i, members, p);
    let mode = match (e.state, p) {
        (PolicyState::Retired, _) => AppMode::Retire,
        (PolicyState::Missing, _) => AppMode::Hold(format!("PolicyMissing: {}", e.problems.join("; "))),
        (_, None) => AppMode::Hold(format!("no valid revision in force: {}", e.problems.join("; "))),
        (_, Some(p)) => match p.spec.app.mode {
            AppRunMode::Paused => {
                AppMode::Hold("paused by its policy ([app] mode = \"paused\"): nothing is created or removed".into())
            }
            AppRunMode::DryRun => {
                d.dry_run.insert(e.id.clone());
                AppMode::Active
            }
            AppRunMode::Auto => AppMode::Active,
        },
    };
    let mut input = AppInput {
        policy_id: e.id.clone(),
        app: e.app.clone(),
        revision: floor.max(1),
        spec: String::new(),
        vcpus: 1,
        ram_mb: 0,
        desired: 0,
        invalid: None,
        zones: vec![],
        phases: facts.phases,
        boot_failed: facts.boot_failed,
        startup_grace: chrono::Duration::MAX,
        mode,
        rollout: None,
        recovery_owned: Default::default(),
    };
    let mut view = PolicyView { revision: floor, ..PolicyView::of(e) };
    if let Some(p) = p {
        let cap = p.spec.deploy.capacity;
        input.startup_grace = p.spec.readiness.startup_grace.chrono();
        input.desired = cap.desired.clamp(cap.min, cap.max);
        if input.mode == AppMode::Active {
            observe_targets(p, &mut d.targets);
            if let Some(desired) = scale(i, p, members, &input, &facts.since, d) {
                input.desired = desired;
                view.desired = desired;
            }
            launch(i, p, cat, floor, &mut input, d);
            if input.invalid.is_none() {
                rollout(i, p, members, &mut input, d);
            }
            recovery(i, p, members, &mut input, d);
            view.revision = input.revision;
        }
    }
    d.policies.push(view);
    input
}

/// The rollout state machine for one policy: the revision its new members get
/// and how the planner replaces the others (ENGINE-SPEC 4).
fn rollout(i: &DecideInput<'_>, p: &Policy, members: &[Member], input: &mut AppInput, d: &mut Decision) {
    use super::rollout::{advance, Facts, MemberFact};
    let live: Vec<MemberFact> = members
        .iter()
        .filter(|m| !m.deleting && m.state == MemberState::Active && !d.state.terminating.contains_key(&m.server_id))
        .map(|m| MemberFact {
            server_id: m.server_id.clone(),
            revision: m.revision,
            spec: m.spec.clone(),
            ready: input.phases.get(&m.server_id) == Some(&Phase::Ready),
            boot_failed: input.boot_failed.contains(&m.server_id),
        })
        .collect();
    let revs: &[crate::store::Revision] = i.store.revisions.get(&p.id).map(Vec::as_slice).unwrap_or_default();
    let (policy_rev, policy_spec) = (input.revision, input.spec.clone());
    let spec_of = |rev: u32| -> Option<String> {
        if rev == policy_rev {
            return Some(policy_spec.clone());
        }
        revs.iter().find(|r| r.revision == rev).map(|r| r.spec_hash.chars().take(12).collect())
    };
    let f = Facts {
        policy_id: &p.id,
        policy_rev,
        desired: input.desired,
        members: &live,
        spec: &p.spec.rollout,
        spec_of: &spec_of,
        now: i.obs.now,
    };
    let cmd = i.store.rollout_commands.get(&p.id);
    if cmd.is_some() {
        d.commands_applied.push(p.id.clone());
    }
    let out = advance(&f, &mut d.state.rollouts, cmd);
    for (action, reason, sev) in out.events {
        let e = crate::domain::Event::new(i.obs.now, i.actor, &i.obs.cloud.name, &action, reason)
            .app(p.name().to_string())
            .severity(sev);
        d.events.push(e);
    }
    if let Some(why) = out.alert {
        d.rollout_alerts.push((p.id.clone(), p.name().to_string(), why));
    }
    if let Some(v) = out.view {
        d.rollouts.insert(p.id.clone(), v);
    }
    input.rollout = out.plan;
    if out.create_rev == policy_rev {
        return;
    }
    // An earlier revision (rollback, undo, a paused rollout): launched as recorded.
    input.revision = out.create_rev;
    let recorded = revs.iter().find(|r| r.revision == out.create_rev);
    match recorded.and_then(|r| serde_json::from_slice::<ResolvedSpec>(r.spec.as_bytes()).ok().map(|s| (r, s))) {
        Some((r, spec)) => use_revision(p, out.create_rev, &r.spec_hash, spec, input, d),
        None => {
            // Nothing to launch it from: no creates, and nothing replaced either
            // (the old members stay until a revision can be launched).
            input.rollout = None;
            input.invalid = Some(format!(
                "the launch spec of revision {} is not in the store: `stackpilot rollout undo` to a recorded revision, or change the policy",
                out.create_rev
            ));
        }
    }
}

/// New members of the policy get this revision: what the planner needs of it,
/// and what its creates launch.
fn use_revision(p: &Policy, rev: u32, hash: &str, spec: ResolvedSpec, input: &mut AppInput, d: &mut Decision) {
    let short: String = hash.chars().take(12).collect();
    input.revision = rev;
    input.spec = short.clone();
    input.vcpus = spec.vcpus;
    input.ram_mb = spec.ram_mb;
    input.zones = spec.availability_zones.clone();
    let info = LaunchInfo {
        app: p.name().to_string(),
        policy_id: p.id.clone(),
        generation: 0,
        spec,
        spec_short: short,
        app_tag: p.app_tag(),
    };
    d.launches.insert((p.id.clone(), rev), info);
}

/// Ask the observer for the policy's probes and Prometheus queries.
fn observe_targets(p: &Policy, t: &mut ObserveTargets) {
    t.probes.insert(names::app_tag(&p.id), probe_spec(p));
    if let Some(sc) = p.spec.scaling.as_ref().filter(|s| super::scaling::enabled(Some(s))) {
        for (n, m) in sc.metrics.iter().enumerate() {
            if let (Source::Prometheus, Some(url), Some(q)) = (m.source, &m.prometheus_url, &m.query) {
                let every = sc.evaluation_interval.0;
                let q = PromQuery { url: url.clone(), query: q.replace("{app}", p.name()), every };
                t.prometheus.insert(prom_key(&p.id, n), q);
            }
        }
    }
}

/// The autoscaler's desired count, when the policy scales.
fn scale(
    i: &DecideInput<'_>,
    p: &Policy,
    members: &[Member],
    input: &AppInput,
    since: &BTreeMap<String, Timestamp>,
    d: &mut Decision,
) -> Option<u32> {
    let sc = p.spec.scaling.as_ref().filter(|s| super::scaling::enabled(Some(s)))?;
    let ctx = ScaleCtx {
        cloud: &i.obs.cloud,
        members,
        phases: &input.phases,
        since,
        creating: i.store.open_intents.iter().any(|x| x.policy_id == p.id && x.action == "create"),
        blocked: i.state.blocked.get(&p.id),
        now: i.obs.now,
        granularity: i.granularity,
        actor: i.actor,
    };
    let hist = i.store.histories.get(&p.id).cloned().unwrap_or_default();
    let out = autoscale(&ctx, p, sc, hist, i.store.messages.get(&p.id));
    let desired = out.desired;
    d.scaling.push((p.id.clone(), out));
    Some(desired)
}

/// Resolve the launch spec into a revision (recording a new one) and what a
/// create launches; an unresolvable spec blocks creates only.
fn launch(i: &DecideInput<'_>, p: &Policy, cat: &CloudCatalog, floor: u32, input: &mut AppInput, d: &mut Decision) {
    // A list that could not be read is no list: wait for it, never call the spec bad.
    let unread = unread_for(p, &i.obs.cloud);
    if !unread.is_empty() {
        input.invalid = Some(format!("waiting for the {} of the cloud", unread.join(", ")));
        d.waiting.insert(p.id.clone());
        return;
    }
    match policy::resolve(p, cat, Some(&p.text)) {
        Ok(spec) => {
            let hash = spec.hash();
            let (rev, new) = revision_of(i.store, &p.id, &hash, floor);
            if new {
                d.new_revisions.push(NewRevision {
                    policy_id: p.id.clone(),
                    app: p.name().to_string(),
                    revision: rev,
                    spec_hash: hash.clone(),
                    spec: spec.clone(),
                });
            }
            use_revision(p, rev, &hash, spec, input, d);
        }
        Err(errs) => {
            input.invalid = Some(errs.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; "));
            d.problems.extend(errs.iter().map(|e| e.to_string()));
        }
    }
}

/// What recovery reads of a member: what is wrong with it, whether a repair
/// is under way, and whether it is recovery's to repair.
fn member_health(i: &DecideInput<'_>, p: &Policy, m: &Member, input: &AppInput) -> super::recovery::MemberHealth {
    use crate::domain::ServerStatus as S;
    use crate::policy::recovery::Condition;
    let c = &i.obs.cloud;
    let server = c.server(&m.server_id);
    let probe = c.probes.get(&m.server_id).cloned().unwrap_or_default();
    let task = server.and_then(|s| s.task_state.clone());
    let phase = input.phases.get(&m.server_id).copied();
    let threshold = p.spec.recovery.unhealthy_threshold.max(1);
    // The compute service of its host is down (admins see hosts; others never get this).
    let host_down = server.and_then(|s| s.host.as_deref()).is_some_and(|h| {
        c.services
            .as_ref()
            .is_some_and(|svcs| svcs.iter().any(|x| x.host == h && x.binary == "nova-compute" && x.is_down()))
    });
    let checked = probe_spec(p).http.is_some();
    let condition = match &m.status {
        // A host reported down whose member still answers its health check is
        // a heartbeat blip, not a dead host: nothing is recreated for it.
        _ if host_down && m.ready_mark && (!checked || probe.health_fails > 0) => Some(Condition::HostDown),
        // An ERROR before it ever served is a failed boot: the planner replaces it.
        S::Error if m.ready_mark => Some(Condition::Error),
        _ if phase == Some(Phase::StoppedUnexpectedly) && task.is_none() => Some(Condition::Shutoff),
        S::Active if m.ready_mark && task.is_none() && probe.health_fails >= threshold => Some(Condition::Unhealthy),
        _ => None,
    };
    let excluded = if m.maint {
        Some("in maintenance")
    } else if m.stopped_by_operator {
        Some("stopped by an operator")
    } else {
        None
    };
    super::recovery::MemberHealth {
        server_id: m.server_id.clone(),
        name: m.name.clone(),
        condition,
        in_transition: task.is_some() || matches!(m.status, S::Reboot | S::HardReboot | S::Rebuild),
        excluded,
        health_ok_at: probe.health_ok_at,
        health_checked: checked,
        protected: m.protected,
        rebuildable: server.and_then(|s| s.image_id.as_deref()).is_some_and(|i| !i.is_empty()),
        // Masakari evacuates an HA_Enabled instance of a failed host: wait for it.
        defer: (condition == Some(Condition::HostDown)
            && server.and_then(|s| s.meta("HA_Enabled")).is_some_and(|v| v.eq_ignore_ascii_case("true")))
        .then(|| p.spec.recovery.masakari_defer.chrono()),
    }
}

/// Recovery of one policy's members (ENGINE-SPEC 5): its steps join the plan,
/// its events the audit log, its alerts the engine's; members it is in charge
/// of are never deleted by the planner for their state, and unhealthy members
/// do not count as ready.
fn recovery(i: &DecideInput<'_>, p: &Policy, members: &[Member], input: &mut AppInput, d: &mut Decision) {
    use super::plan::{PlannedAction, Step};
    use super::recovery::{recover, Quarantined, Repair};
    use crate::policy::recovery::Rung;
    let now = i.obs.now;
    let live: Vec<&Member> = members
        .iter()
        .filter(|m| !m.deleting && m.state == MemberState::Active && !d.state.terminating.contains_key(&m.server_id))
        .collect();
    let health: Vec<_> = live.iter().map(|m| member_health(i, p, m, input)).collect();
    let quarantined: Vec<Quarantined> = members
        .iter()
        .filter(|m| !m.deleting && m.state == MemberState::Quarantined)
        .map(|m| Quarantined {
            server_id: m.server_id.clone(),
            name: m.name.clone(),
            at: m.quarantined_at,
            protected: m.protected,
        })
        .collect();
    // Nothing is recreated or quarantined when no new member could take its place.
    let replaceable = input.invalid.is_none();
    let out =
        recover(&p.id, input.desired, &p.spec.recovery, &health, &quarantined, replaceable, &mut d.state.recovery, now);
    for h in health.iter().filter(|h| h.condition.is_some()) {
        if input.phases.get(&h.server_id) == Some(&Phase::Ready) {
            input.phases.insert(h.server_id.clone(), Phase::NotReady);
        }
    }
    input.recovery_owned = out.owned;
    d.unhealthy.insert(p.id.clone(), out.failing);
    let cloud = &i.obs.cloud.name;
    for (action, target, reason, sev) in out.events {
        let mut e =
            crate::domain::Event::new(now, i.actor, cloud, &action, reason).app(p.name().to_string()).severity(sev);
        if !target.is_empty() {
            e = e.target(target);
        }
        d.events.push(e);
    }
    for (kind, key, sev, msg) in out.alerts {
        let a = crate::domain::Alert::new(
            &kind,
            format!("{cloud}:recovery:{}:{key}", p.id),
            cloud,
            sev,
            format!("{}: {msg}", p.name()),
        )
        .app(Some(p.name().to_string()));
        d.alerts.push(a);
    }
    for a in out.actions {
        let step = match a.repair {
            Repair::Rung(Rung::Recreate) => Step::MarkTerminating { server_id: a.server_id, name: a.name },
            Repair::Rung(rung) => {
                let image = i.obs.cloud.server(&a.server_id).and_then(|s| s.image_id.clone());
                Step::Recover { server_id: a.server_id, name: a.name, rung, image }
            }
            Repair::Quarantine => Step::Quarantine { server_id: a.server_id, name: a.name },
            Repair::DeleteQuarantined => Step::Delete { server_id: a.server_id, name: a.name },
        };
        let reason = if matches!(a.repair, Repair::Rung(Rung::Recreate)) {
            format!("recovery: recreate in the same slot: {}", a.reason)
        } else {
            format!("recovery: {}", a.reason)
        };
        d.repairs.push(PlannedAction { app: p.name().to_string(), policy_id: Some(p.id.clone()), step, reason });
    }
}
