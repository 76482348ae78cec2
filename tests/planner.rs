//! The pure planner, rule by rule (ENGINE-SPEC sections 1, 2, 6 and 8).

// Tests fail by panicking: unwrap, expect and indexing say so plainly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::let_underscore_must_use,
    clippy::print_stdout,
    clippy::print_stderr
)]

use stackpilot::domain::{ComputeLimits, Fault, Server, ServerStatus, Timestamp};
use stackpilot::engine::members::{member as member_of, phase, Phase, PhaseFacts};
use stackpilot::engine::plan::{Blocked, CapacityReason, Observed, Step};
use stackpilot::engine::{plan, AppInput, AppMode, EngineState, Plan, PlanConfig};
use stackpilot::store::{Intent, IntentStatus};
use std::collections::BTreeMap;
use std::sync::Arc;

const PID: &str = "11111111-1111-5111-8111-111111111111";

fn now() -> Timestamp {
    stackpilot::domain::time::parse_timestamp("2026-11-25T12:00:00Z").unwrap()
}

fn ago(secs: i64) -> Timestamp {
    now() - chrono::Duration::seconds(secs)
}

fn app(desired: u32) -> AppInput {
    AppInput {
        policy_id: PID.into(),
        app: "web".into(),
        revision: 2,
        spec: "abcdef123456".into(),
        vcpus: 1,
        ram_mb: 2048,
        desired,
        invalid: None,
        zones: vec![],
        phases: BTreeMap::new(),
        boot_failed: Default::default(),
        startup_grace: chrono::Duration::minutes(10),
        mode: AppMode::Active,
        rollout: None,
        recovery_owned: Default::default(),
    }
}

/// Phases as the engine reads them, for members a case did not set: every check
/// passed since creation (ACTIVE → ready, BUILD → building, SHUTOFF → stopped).
fn with_phases(apps: &[AppInput], servers: &[Arc<Server>]) -> Vec<AppInput> {
    apps.iter()
        .map(|a| {
            let mut a = a.clone();
            for m in servers.iter().filter_map(|s| member_of(s)) {
                let facts = PhaseFacts {
                    since: m.created,
                    checks: stackpilot::inventory::probes::Checks::Passed,
                    watched_since: m.created,
                    build_timeout: PlanConfig::default().build_timeout,
                    min_ready: chrono::Duration::zero(),
                    startup_grace: a.startup_grace,
                    going: false,
                    now: now(),
                };
                a.phases.entry(m.server_id.clone()).or_insert_with(|| phase(&m, &facts));
            }
            a
        })
        .collect()
}

/// A member of `web` (tags and metadata as the engine writes them).
fn member(n: u32, slot: u32, rev: u32, status: ServerStatus, age_secs: i64) -> Arc<Server> {
    let op = format!("op-{n:04}-0000-0000-000000000000");
    let mut s = Server::new(format!("srv-{n}"), format!("web-r{rev}-s{slot}-{}", &op[..8]), status);
    s.tags = vec![format!("stackpilot-app-{PID}"), format!("stackpilot-op-{op}")];
    for (k, v) in [
        ("stackpilot:app", "web".to_string()),
        ("stackpilot:policy", PID.into()),
        ("stackpilot:rev", rev.to_string()),
        ("stackpilot:slot", slot.to_string()),
        ("stackpilot:op", op.clone()),
        ("stackpilot:state", "active".into()),
        ("stackpilot:ready", "2026-11-25T10:00:00Z".into()),
    ] {
        s.metadata.insert(k.into(), v);
    }
    s.created = Some(ago(age_secs));
    Arc::new(s)
}

fn with_meta(s: Arc<Server>, k: &str, v: &str) -> Arc<Server> {
    let mut s = (*s).clone();
    s.metadata.insert(k.into(), v.into());
    Arc::new(s)
}

fn intent(op: &str, slot: u32, age_secs: i64, status: IntentStatus) -> Intent {
    Intent {
        op_id: op.into(),
        policy_id: PID.into(),
        cloud: "demo".into(),
        app: "web".into(),
        action: "create".into(),
        slot: Some(slot),
        revision: Some(2),
        generation: 1,
        server_id: None,
        status,
        error: None,
        created_at: ago(age_secs),
        updated_at: ago(age_secs),
    }
}

fn run(
    apps: &[AppInput],
    servers: &[Arc<Server>],
    limits: Option<&ComputeLimits>,
    intents: &[Intent],
    state: &EngineState,
) -> Plan {
    let apps = with_phases(apps, servers);
    plan(&apps, Observed { servers, limits, intents, failed: &[] }, state, &PlanConfig::default(), now())
}

fn creates(p: &Plan) -> Vec<u32> {
    p.actions.iter().filter_map(|a| if let Step::Create { slot, .. } = a.step { Some(slot) } else { None }).collect()
}

fn marked(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .filter_map(
            |a| if let Step::MarkTerminating { server_id, .. } = &a.step { Some(server_id.clone()) } else { None },
        )
        .collect()
}

fn deleted(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .filter_map(|a| if let Step::Delete { server_id, .. } = &a.step { Some(server_id.clone()) } else { None })
        .collect()
}

#[test]
fn from_nothing_creates_the_lowest_free_slots_with_reasons() {
    let p = run(&[app(3)], &[], None, &[], &EngineState::default());
    assert_eq!(creates(&p), vec![0, 1, 2]);
    assert!(p.actions.iter().all(|a| a.reason == "0 of 3 members"));
    assert!(!p.apps[0].converged);
    let p = run(&[app(3)], &[member(1, 1, 2, ServerStatus::Active, 600)], None, &[], &EngineState::default());
    assert_eq!(creates(&p), vec![0, 2]);
}

#[test]
fn open_intents_count_as_members_in_flight() {
    let ops = [intent("aaaa1111-0000-0000-0000-000000000000", 0, 10, IntentStatus::Pending)];
    let p = run(&[app(2)], &[], None, &ops, &EngineState::default());
    assert_eq!(creates(&p), vec![1], "slot 0 is taken by the create in flight");
    assert_eq!(p.apps[0].in_flight, 1);
}

#[test]
fn an_intent_found_by_its_op_tag_is_adopted_and_completed() {
    let m = member(7, 0, 2, ServerStatus::Active, 30);
    let op = m.meta("stackpilot:op").unwrap().to_string();
    let p = run(
        &[app(1)],
        std::slice::from_ref(&m),
        None,
        &[intent(&op, 0, 30, IntentStatus::Pending)],
        &EngineState::default(),
    );
    assert!(p.actions.iter().any(|a| a.step == Step::AdoptIntent { op_id: op.clone(), server_id: "srv-7".into() }));
    assert!(p.actions.iter().any(|a| a.step == Step::CompleteIntent { op_id: op.clone() }));
    assert!(creates(&p).is_empty(), "adopted, not created again");
    assert!(p.apps[0].converged);
    // Still building: adopted, not complete.
    let b = member(7, 0, 2, ServerStatus::Build, 5);
    let p = run(&[app(1)], &[b], None, &[intent(&op, 0, 5, IntentStatus::Pending)], &EngineState::default());
    assert!(p.actions.iter().any(|a| matches!(a.step, Step::AdoptIntent { .. })));
    assert!(!p.actions.iter().any(|a| matches!(a.step, Step::CompleteIntent { .. })));
}

#[test]
fn an_invisible_create_is_given_up_after_the_visibility_timeout() {
    let young = [intent("bbbb2222-0000-0000-0000-000000000000", 0, 60, IntentStatus::Pending)];
    let p = run(&[app(1)], &[], None, &young, &EngineState::default());
    assert!(creates(&p).is_empty(), "never re-POST while the outcome is unknown");
    let old = [intent("bbbb2222-0000-0000-0000-000000000000", 0, 121, IntentStatus::Pending)];
    let p = run(&[app(1)], &[], None, &old, &EngineState::default());
    assert!(matches!(&p.actions[0].step, Step::FailIntent { why, .. } if why.contains("after 120s")));
    assert_eq!(creates(&p), vec![0], "then a new operation may be tried");
}

#[test]
fn scale_in_is_two_phase_and_prefers_outdated_unhealthy_then_oldest() {
    let servers = vec![
        member(1, 0, 2, ServerStatus::Active, 900),
        member(2, 1, 1, ServerStatus::Active, 100),  // outdated revision
        member(3, 2, 2, ServerStatus::Shutoff, 200), // unhealthy
        member(4, 3, 2, ServerStatus::Active, 50),
    ];
    let p = run(&[app(2)], &servers, None, &[], &EngineState::default());
    assert_eq!(marked(&p), vec!["srv-2", "srv-3"]);
    assert!(deleted(&p).is_empty(), "no delete before the drain");
    let p = run(&[app(3)], &servers, None, &[], &EngineState::default());
    assert_eq!(marked(&p), vec!["srv-2"]);
    // The oldest goes when all else is equal.
    let same = vec![member(1, 0, 2, ServerStatus::Active, 900), member(4, 3, 2, ServerStatus::Active, 50)];
    assert_eq!(marked(&run(&[app(1)], &same, None, &[], &EngineState::default())), vec!["srv-1"]);
    // Protected members are never chosen.
    let prot = vec![
        with_meta(member(1, 0, 2, ServerStatus::Active, 900), "stackpilot:protect", "true"),
        member(4, 3, 2, ServerStatus::Active, 50),
    ];
    assert_eq!(marked(&run(&[app(1)], &prot, None, &[], &EngineState::default())), vec!["srv-4"]);
    // Nor members an operator put in maintenance.
    let maint = vec![
        with_meta(member(1, 0, 2, ServerStatus::Active, 900), "stackpilot:maint", "true"),
        member(4, 3, 2, ServerStatus::Active, 50),
    ];
    assert_eq!(marked(&run(&[app(1)], &maint, None, &[], &EngineState::default())), vec!["srv-4"]);
}

#[test]
fn terminating_members_are_deleted_after_the_drain_and_not_counted() {
    let draining = with_meta(
        with_meta(member(1, 0, 2, ServerStatus::Active, 900), "stackpilot:state", "terminating"),
        "stackpilot:terminate_at",
        &stackpilot::domain::time::format_z(&ago(10)),
    );
    let p = run(&[app(1)], std::slice::from_ref(&draining), None, &[], &EngineState::default());
    assert!(deleted(&p).is_empty());
    assert_eq!(creates(&p), vec![0], "a draining member does not count toward capacity, and frees its slot");
    let drained = with_meta(draining, "stackpilot:terminate_at", &stackpilot::domain::time::format_z(&ago(31)));
    let p = run(&[app(0)], &[drained], None, &[], &EngineState::default());
    assert_eq!(deleted(&p), vec!["srv-1"]);
}

#[test]
fn error_members_are_deleted_and_no_valid_host_blocks_scale_out() {
    let mut e = (*member(1, 0, 2, ServerStatus::Error, 60)).clone();
    e.fault = Some(Fault {
        code: Some(500),
        message: "No valid host was found. There are not enough hosts available.".into(),
        created: None,
    });
    let p = run(&[app(2)], &[Arc::new(e)], None, &[], &EngineState::default());
    assert_eq!(deleted(&p), vec!["srv-1"]);
    assert!(p
        .actions
        .iter()
        .any(|a| matches!(&a.step, Step::Block(b) if b.reason == CapacityReason::NoValidHost && b.backoff_secs == 30)));
    assert!(creates(&p).is_empty(), "back off instead of creating into a full cloud");
    assert!(p.apps[0].blocked.as_deref().unwrap().contains("no valid host"));
    // Other errors: replaced right away.
    let mut e2 = (*member(2, 0, 2, ServerStatus::Error, 60)).clone();
    e2.fault = Some(Fault { code: Some(500), message: "Build of instance aborted".into(), created: None });
    let p = run(&[app(1)], &[Arc::new(e2)], None, &[], &EngineState::default());
    assert_eq!((deleted(&p), creates(&p)), (vec!["srv-2".to_string()], vec![0]));
}

#[test]
fn stuck_builds_are_deleted() {
    let p = run(&[app(1)], &[member(1, 0, 2, ServerStatus::Build, 21 * 60)], None, &[], &EngineState::default());
    assert_eq!(deleted(&p), vec!["srv-1"]);
    let p = run(&[app(1)], &[member(1, 0, 2, ServerStatus::Build, 60)], None, &[], &EngineState::default());
    assert!(p.actions.is_empty());
}

#[test]
fn duplicate_slots_keep_the_older_ready_member() {
    let mut a = app(2);
    a.phases.insert("srv-2".into(), Phase::Ready);
    a.phases.insert("srv-1".into(), Phase::NotReady);
    a.phases.insert("srv-3".into(), Phase::Ready);
    let servers = vec![
        member(1, 0, 2, ServerStatus::Active, 300),
        member(2, 0, 2, ServerStatus::Active, 100),
        member(3, 1, 2, ServerStatus::Active, 100),
    ];
    let p = run(&[a], &servers, None, &[], &EngineState::default());
    assert_eq!(marked(&p), vec!["srv-1"], "the ready one keeps slot 0");
    assert!(p.actions[0].reason.contains("duplicate of slot 0"));
}

#[test]
fn untagged_servers_are_never_touched_even_with_member_names() {
    let mut lookalike = Server::new("legacy", "web-r2-s0-deadbeef", ServerStatus::Error);
    lookalike.metadata.insert("stackpilot:app".into(), "web".into());
    let p = run(&[app(0)], &[Arc::new(lookalike)], None, &[], &EngineState::default());
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.untouched, vec!["web-r2-s0-deadbeef"]);
}

#[test]
fn servers_of_an_unknown_policy_are_never_deleted_only_reported() {
    // Deleting needs a positive reason: a policy the engine does not know (its
    // file gone, the store wiped) is an absence, not a reason.
    let mut o = (*member(9, 0, 1, ServerStatus::Active, 3600)).clone();
    o.tags[0] = "stackpilot-app-99999999-9999-5999-8999-999999999999".into();
    let o = Arc::new(o);
    let mut st = EngineState::default();
    st.orphans.insert("srv-9".into(), ago(100_000));
    let p = run(&[app(0)], &[o], None, &[], &st);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.unmanaged.len(), 1);
    assert_eq!(p.unmanaged[0].0, "99999999-9999-5999-8999-999999999999");
    assert_eq!(p.unmanaged[0].2, vec!["web-r1-s0-op-0009-"]);
}

#[test]
fn a_held_app_is_left_alone_and_a_retired_one_is_removed() {
    let servers = vec![
        member(1, 0, 2, ServerStatus::Active, 900),
        member(2, 1, 2, ServerStatus::Error, 100),
        member(3, 2, 2, ServerStatus::Active, 100),
    ];
    let mut held = app(5);
    held.mode = AppMode::Hold("PolicyMissing: web.toml is gone".into());
    let p = run(&[held], &servers, None, &[], &EngineState::default());
    assert!(p.actions.is_empty(), "nothing created, nothing deleted, not even the ERROR member: {:?}", p.actions);
    assert_eq!(p.apps[0].hold.as_deref(), Some("PolicyMissing: web.toml is gone"));
    assert!(!p.apps[0].converged);
    let mut retired = app(5);
    retired.mode = AppMode::Retire;
    let p = run(&[retired], &servers, None, &[], &EngineState::default());
    assert!(creates(&p).is_empty());
    assert_eq!(deleted(&p), vec!["srv-2"], "the ERROR member goes at once");
    assert_eq!(marked(&p), vec!["srv-1", "srv-3"], "the others are drained");
    assert!(p.actions.iter().any(|a| a.reason.contains("retired")));
}

#[test]
fn stopped_members_count_but_are_not_ready_and_operator_stops_are_not_scaled_in() {
    let servers = vec![
        member(1, 0, 2, ServerStatus::Active, 900),
        with_meta(member(2, 1, 2, ServerStatus::Shutoff, 800), "stackpilot:state", "stopped-by-operator"),
        member(3, 2, 2, ServerStatus::Shutoff, 700),
    ];
    let p = run(&[app(3)], &servers, None, &[], &EngineState::default());
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    let s = &p.apps[0];
    assert_eq!((s.members, s.ready, s.stopped), (3, 1, 2));
    assert!(!s.converged, "a stopped member is not ready: the app is not converged");
    let p = run(&[app(1)], &servers, None, &[], &EngineState::default());
    assert_eq!(marked(&p), vec!["srv-3", "srv-1"], "never the member an operator stopped");
}

#[test]
fn servers_of_failed_operations_are_orphans_not_members() {
    let late = member(5, 0, 2, ServerStatus::Active, 900);
    let op = late.meta("stackpilot:op").unwrap().to_string();
    let failed = [intent(&op, 0, 1000, IntentStatus::Failed)];
    let mut st = EngineState::default();
    st.orphans.insert("srv-5".into(), ago(700));
    let p = plan(
        &[app(1)],
        Observed { servers: &[late], limits: None, intents: &[], failed: &failed },
        &st,
        &PlanConfig::default(),
        now(),
    );
    assert_eq!(deleted(&p), vec!["srv-5"]);
    assert_eq!(creates(&p), vec![0], "its slot is free");
}

#[test]
fn quota_headroom_gives_a_partial_scale_out_and_a_block() {
    let limits = ComputeLimits { max_instances: Some(10), instances_used: 8, ..Default::default() };
    let p = run(&[app(5)], &[], Some(&limits), &[], &EngineState::default());
    assert_eq!(creates(&p), vec![0, 1]);
    assert!(p.actions.iter().any(|a| matches!(&a.step, Step::Block(b) if b.reason == CapacityReason::Quota)));
    let full = ComputeLimits { max_cores: Some(4), cores_used: 4, ..Default::default() };
    let p = run(&[app(2)], &[], Some(&full), &[], &EngineState::default());
    assert!(creates(&p).is_empty(), "no request when the quota has no room");
}

#[test]
fn a_blocked_scale_out_never_blocks_scale_in() {
    let mut st = EngineState::default();
    st.blocked.insert(
        PID.into(),
        Blocked {
            reason: CapacityReason::Quota,
            since: ago(10),
            until: now() + chrono::Duration::seconds(50),
            backoff_secs: 60,
            detail: "quota".into(),
        },
    );
    let p = run(&[app(3)], &[member(1, 0, 2, ServerStatus::Active, 600)], None, &[], &st);
    assert!(creates(&p).is_empty());
    assert!(p.apps[0].blocked.is_some());
    let servers = vec![member(1, 0, 2, ServerStatus::Active, 600), member(2, 1, 2, ServerStatus::Active, 500)];
    assert_eq!(marked(&run(&[app(1)], &servers, None, &[], &st)), vec!["srv-1"]);
    // Expired block: scale out again, with the next backoff doubled if it repeats.
    st.blocked.get_mut(PID).unwrap().until = ago(1);
    let p = run(&[app(3)], &[member(1, 0, 2, ServerStatus::Active, 600)], None, &[], &st);
    assert_eq!(creates(&p), vec![1, 2]);
    let limits = ComputeLimits { max_instances: Some(1), instances_used: 1, ..Default::default() };
    let p = run(&[app(3)], &[member(1, 0, 2, ServerStatus::Active, 600)], Some(&limits), &[], &st);
    assert!(p.actions.iter().any(|a| matches!(&a.step, Step::Block(b) if b.backoff_secs == 120)));
    // Capacity back at desired: unblock.
    let p = run(&[app(1)], &[member(1, 0, 2, ServerStatus::Active, 600)], None, &[], &st);
    assert!(p.actions.iter().any(|a| a.step == Step::Unblock));
}

#[test]
fn an_invalid_spec_blocks_creates_only() {
    let mut a = app(2);
    a.invalid = Some("no active image `gone`".into());
    let p = run(&[a.clone()], &[], None, &[], &EngineState::default());
    assert!(creates(&p).is_empty());
    assert!(p.apps[0].blocked.as_deref().unwrap().starts_with("bad spec"));
    a.desired = 0;
    assert_eq!(
        marked(&run(&[a], &[member(1, 0, 2, ServerStatus::Active, 60)], None, &[], &EngineState::default())),
        vec!["srv-1"]
    );
}

#[test]
fn scale_in_waits_for_creates_in_flight() {
    let ops = [intent("cccc3333-0000-0000-0000-000000000000", 2, 10, IntentStatus::Running)];
    let servers = vec![member(1, 0, 2, ServerStatus::Active, 600), member(2, 1, 2, ServerStatus::Active, 500)];
    let p = run(&[app(1)], &servers, None, &ops, &EngineState::default());
    assert!(marked(&p).is_empty());
}

#[test]
fn zones_are_spread_round_robin_by_slot_and_plans_are_deterministic() {
    let mut a = app(3);
    a.zones = vec!["az1".into(), "az2".into()];
    let p = run(&[a.clone()], &[], None, &[], &EngineState::default());
    let zones: Vec<Option<String>> = p
        .actions
        .iter()
        .filter_map(|x| if let Step::Create { zone, .. } = &x.step { Some(zone.clone()) } else { None })
        .collect();
    assert_eq!(zones, vec![Some("az1".into()), Some("az2".into()), Some("az1".into())]);
    assert_eq!(p, run(&[a], &[], None, &[], &EngineState::default()));
}

#[test]
fn a_building_member_chosen_for_termination_is_deleted_at_once() {
    // Nova refuses metadata changes while a server builds (409): a duplicate still
    // in BUILD goes straight to the (intent-backed) delete.
    let a = app(1);
    let servers = vec![member(1, 0, 2, ServerStatus::Active, 300), member(2, 0, 2, ServerStatus::Build, 5)];
    let p = run(std::slice::from_ref(&a), &servers, None, &[], &EngineState::default());
    assert_eq!(deleted(&p), vec!["srv-2"]);
    assert!(marked(&p).is_empty());
    assert!(p.actions[0].reason.contains("still building"), "{}", p.actions[0].reason);
    // Scale-in of a building member: the same.
    let servers = vec![member(1, 0, 2, ServerStatus::Active, 300), member(2, 1, 2, ServerStatus::Build, 5)];
    let mut st = EngineState::default();
    let p = run(&[app(1)], &servers, None, &[], &st);
    assert_eq!((deleted(&p), marked(&p)), (vec!["srv-2".to_string()], vec![]), "unhealthy first, and not drained");
    // An ACTIVE member is drained first.
    st.blocked.clear();
    let servers = vec![member(1, 0, 2, ServerStatus::Active, 300), member(2, 1, 2, ServerStatus::Active, 200)];
    let p = run(&[app(1)], &servers, None, &[], &st);
    assert_eq!((deleted(&p), marked(&p)), (vec![], vec!["srv-1".to_string()]));
}

#[test]
fn a_mark_the_inventory_has_not_seen_yet_is_not_repeated() {
    let servers = vec![member(1, 0, 2, ServerStatus::Active, 300), member(2, 1, 2, ServerStatus::Active, 200)];
    let mut st = EngineState::default();
    st.terminating.insert("srv-1".into(), ago(5));
    let p = run(&[app(1)], &servers, None, &[], &st);
    assert!(marked(&p).is_empty(), "srv-1 is already terminating: {:?}", p.actions);
    assert!(deleted(&p).is_empty(), "draining for 30 s");
    assert_eq!(p.apps[0].terminating, 1);
    st.terminating.insert("srv-1".into(), ago(31));
    let p = run(&[app(1)], &servers, None, &[], &st);
    assert_eq!(deleted(&p), vec!["srv-1"], "drained from the time of the mark");
}

#[test]
fn a_stale_listing_after_the_mark_was_seen_never_drains_again() {
    let unmarked = vec![member(1, 0, 2, ServerStatus::Active, 300), member(2, 1, 2, ServerStatus::Active, 200)];
    let marked_srv = with_meta(member(1, 0, 2, ServerStatus::Active, 300), "stackpilot:state", "terminating");
    let seen = vec![marked_srv, member(2, 1, 2, ServerStatus::Active, 200)];
    let mut st = EngineState::default();
    st.terminating.insert("srv-1".into(), ago(5));
    let none = std::collections::BTreeSet::new();
    // The mark shows in one listing ...
    stackpilot::engine::plan::orphan_bookkeeping(&seen, &none, &mut st, ago(0));
    // ... and a listing that started before it was written comes after.
    stackpilot::engine::plan::orphan_bookkeeping(&unmarked, &none, &mut st, ago(0));
    let p = run(&[app(1)], &unmarked, None, &[], &st);
    assert!(marked(&p).is_empty(), "srv-1 drained once, srv-2 never chosen: {:?}", p.actions);
    assert_eq!(p.apps[0].terminating, 1);
    // Gone: forgotten.
    stackpilot::engine::plan::orphan_bookkeeping(&unmarked[1..], &none, &mut st, ago(0));
    assert!(st.terminating.is_empty());
}

#[test]
fn a_server_with_a_delete_under_way_is_not_deleted_again() {
    // Nova deletes asynchronously: the server may still list as ACTIVE.
    let drained = with_meta(
        with_meta(member(1, 0, 2, ServerStatus::Active, 900), "stackpilot:state", "terminating"),
        "stackpilot:terminate_at",
        &stackpilot::domain::time::format_z(&ago(60)),
    );
    let mut del = intent("del-1", 0, 2, IntentStatus::Running);
    del.action = "delete".into();
    del.slot = None;
    del.server_id = Some("srv-1".into());
    let p = run(&[app(0)], std::slice::from_ref(&drained), None, std::slice::from_ref(&del), &EngineState::default());
    assert!(deleted(&p).is_empty(), "{:?}", p.actions);
    assert!(!p.apps[0].converged, "not converged until the server is gone");
    // Gone: the intent completes.
    let p = run(&[app(0)], &[], None, &[del], &EngineState::default());
    assert!(p.actions.iter().any(|a| matches!(a.step, Step::CompleteIntent { .. })));
    assert!(p.apps[0].converged);
}

#[test]
fn members_that_failed_to_boot_are_replaced_and_ready_ones_are_marked() {
    let mut a = app(2);
    let mut failed = (*member(1, 0, 2, ServerStatus::Active, 900)).clone();
    failed.metadata.remove("stackpilot:ready");
    let mut unknown = (*member(2, 1, 2, ServerStatus::Active, 900)).clone();
    unknown.metadata.remove("stackpilot:ready");
    a.boot_failed.insert("srv-1".into());
    a.phases.insert("srv-1".into(), Phase::NotReady);
    a.phases.insert("srv-2".into(), Phase::NotReady);
    let p =
        run(&[a.clone()], &[Arc::new(failed.clone()), Arc::new(unknown.clone())], None, &[], &EngineState::default());
    assert_eq!(marked(&p), vec!["srv-1"], "only the member seen failing its boot is replaced");
    assert!(p.actions.iter().any(|x| x.reason.contains("not ready 10m after creation")), "{:?}", p.actions);
    // A ready member without the mark gets it; one with the mark does not.
    let mut b = app(1);
    b.phases.insert("srv-2".into(), Phase::Ready);
    let p = run(&[b], &[Arc::new(unknown)], None, &[], &EngineState::default());
    assert!(p.actions.iter().any(|x| matches!(&x.step, Step::MarkReady { server_id, .. } if server_id == "srv-2")));
    let p = run(&[app(1)], &[member(3, 0, 2, ServerStatus::Active, 900)], None, &[], &EngineState::default());
    assert!(p.actions.is_empty(), "{:?}", p.actions);
}

// ---- rollouts (ENGINE-SPEC 4) -------------------------------------------------

fn rolling(desired: u32, surge: u32, unavailable: u32, batch: u32) -> AppInput {
    AppInput {
        rollout: Some(stackpilot::engine::rollout::RolloutPlan {
            target: 2,
            target_spec: Some("abcdef123456".into()),
            skip_matching: true,
            surge,
            unavailable,
            batch,
            paused: false,
        }),
        ..app(desired)
    }
}

/// Six members of revision 1, ready.
fn old_six() -> Vec<Arc<Server>> {
    (0..6).map(|i| member(i, i, 1, ServerStatus::Active, 3600)).collect()
}

/// A member built from a server (BUILD, not ready yet).
fn booting(n: u32, slot: u32) -> Arc<Server> {
    let s = member(n, slot, 2, ServerStatus::Build, 5);
    let mut s = (*s).clone();
    s.metadata.remove("stackpilot:ready");
    Arc::new(s)
}

#[test]
fn a_rollout_surges_first_and_removes_old_members_only_when_new_ones_are_ready() {
    // Surge 2, unavailable 0: two creates, nothing removed while they boot.
    let p = run(&[rolling(6, 2, 0, 0)], &old_six(), None, &[], &EngineState::default());
    assert_eq!(creates(&p), vec![6, 7]);
    assert!(marked(&p).is_empty() && deleted(&p).is_empty(), "{:?}", p.actions);
    assert!(p.actions.iter().any(|a| a.reason.starts_with("rollout to revision 2: 0 new of 6 (6 old")));
    // Booting: no more creates (surge used), no removal (6 available = 6 needed).
    let mut s = old_six();
    s.extend([booting(6, 6), booting(7, 7)]);
    let p = run(&[rolling(6, 2, 0, 0)], &s, None, &[], &EngineState::default());
    assert!(creates(&p).is_empty() && marked(&p).is_empty(), "{:?}", p.actions);
    // Ready: two old ones go (8 available, 6 kept).
    let mut s = old_six();
    s.extend([member(6, 6, 2, ServerStatus::Active, 60), member(7, 7, 2, ServerStatus::Active, 60)]);
    let p = run(&[rolling(6, 2, 0, 0)], &s, None, &[], &EngineState::default());
    assert_eq!(marked(&p), vec!["srv-0", "srv-1"], "the oldest old ones");
    assert!(creates(&p).is_empty());
}

#[test]
fn max_unavailable_lets_old_members_go_first_and_batches_cap_creates() {
    // Unavailable 2, surge 0: two old members go at once, two creates.
    let p = run(&[rolling(6, 0, 2, 0)], &old_six(), None, &[], &EngineState::default());
    assert_eq!(marked(&p).len(), 2);
    assert!(creates(&p).is_empty(), "no surge: creates wait for room");
    // A batch of 1 caps a surge of 3.
    let p = run(&[rolling(6, 3, 0, 1)], &old_six(), None, &[], &EngineState::default());
    assert_eq!(creates(&p).len(), 1);
}

#[test]
fn a_rollout_without_quota_holds_and_keeps_every_old_member() {
    let full = ComputeLimits {
        max_instances: Some(6),
        max_cores: None,
        max_ram_mb: None,
        instances_used: 6,
        cores_used: 6,
        ram_used_mb: 0,
    };
    let p = run(&[rolling(6, 2, 0, 0)], &old_six(), Some(&full), &[], &EngineState::default());
    assert!(creates(&p).is_empty());
    assert!(marked(&p).is_empty() && deleted(&p).is_empty(), "old members are never removed for a blocked rollout");
}

#[test]
fn a_lower_desired_mid_rollout_is_absorbed_old_members_first() {
    // The autoscaler went from 6 to 3: 7 available, 3 needed: 4 old ones go.
    let mut s = old_six();
    s.extend([member(6, 6, 2, ServerStatus::Active, 60)]);
    let p = run(&[rolling(3, 1, 0, 0)], &s, None, &[], &EngineState::default());
    let m = marked(&p);
    assert_eq!(m.len(), 4, "7 members down to 3: {:?}", p.actions);
    assert!(!m.contains(&"srv-6".to_string()), "the new member stays");
}

#[test]
fn without_a_rollout_members_of_another_revision_stay() {
    let p = run(&[app(6)], &old_six(), None, &[], &EngineState::default());
    assert!(creates(&p).is_empty() && marked(&p).is_empty());
    assert!(p.apps[0].converged);
}

#[test]
fn a_paused_rollout_keeps_its_mix_and_restores_capacity() {
    let mut a = rolling(6, 2, 0, 0);
    if let Some(r) = a.rollout.as_mut() {
        r.paused = true;
    }
    a.revision = 1;
    // 4 old + 3 new = 7 (one surge member still there): nothing is removed.
    let mut s: Vec<Arc<Server>> = (0..4).map(|i| member(i, i, 1, ServerStatus::Active, 3600)).collect();
    s.extend((4..7).map(|i| member(i, i, 2, ServerStatus::Active, 60)));
    let p = run(&[a.clone()], &s, None, &[], &EngineState::default());
    assert!(marked(&p).is_empty() && creates(&p).is_empty(), "{:?}", p.actions);
    // A member lost while paused is replaced (capacity), with the stable revision.
    s.truncate(5);
    let p = run(&[a], &s, None, &[], &EngineState::default());
    assert_eq!(creates(&p).len(), 1);
    assert!(p.actions.iter().any(|x| matches!(x.step, Step::Create { revision: 1, .. })));
}
