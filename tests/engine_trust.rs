//! The engine never harms an app by accident and always says what is wrong: each
//! case is a way it used to delete, stall, go quiet or die silently, driven over
//! HTTP against the simulator (and the `stackpilot engine` binary where the
//! process itself is what is tested).

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

mod common;
use common::rig::*;
use common::*;
use serde_json::json;
use stackpilot::domain::{Server, ServerStatus};
use stackpilot::engine::EngineStatus;
use stackpilot::sim::SimConfig;
use std::collections::BTreeSet;
use std::time::Duration;

/// Wait until the engine's status satisfies `f` (or fail with the last one).
fn ids(ms: &[Server]) -> BTreeSet<String> {
    ms.iter().map(|s| s.id.clone()).collect()
}

fn policy_state(s: &EngineStatus, app: &str) -> Option<(String, Vec<String>)> {
    s.policies.iter().find(|p| p.app == app).map(|p| (p.state.clone(), p.problems.clone()))
}

fn active_alert<'a>(s: &'a EngineStatus, kind: &str) -> Option<&'a stackpilot::domain::Alert> {
    s.alerts.iter().find(|a| a.kind == kind && a.is_active())
}

/// The members stay the same ones for `secs` (nothing deleted, nothing added).
async fn members_hold(rig: &Rig, short: &str, want: &BTreeSet<String>, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        let now = ids(&rig.members(short).await);
        assert_eq!(&now, want, "the members of {short} changed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_stops_validating_keeps_its_last_good_revision_in_force() {
    let rig = Rig::new(SimConfig::default()).await;
    rig.policy("web", 2);
    let app = rig.app("web");
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 2)], Duration::from_secs(60)).await;
    let before = ids(&rig.members("web").await);
    let path = rig.policies().join("web.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    let cloud = format!("cloud = \"{}\"", rig.cloud.name);
    for (what, bad, at) in [
        ("a syntax error", good.replace("[deploy]", "[deploy"), "web.toml:5:"),
        ("min > max", good.replace("min = 0, max = 10, desired = 2", "min = 5, max = 1, desired = 4"), "web.toml:10:1"),
        ("a changed cloud", good.replace(&cloud, "cloud = \"elsewhere\""), "became"),
    ] {
        std::fs::write(&path, &bad).unwrap();
        let s = wait_status(&eng, what, 15, |s| policy_state(s, &app).is_some_and(|p| p.0 == "invalid")).await;
        let (_, problems) = policy_state(&s, &app).unwrap();
        assert!(problems[0].contains(at), "{what}: the problem names where: {problems:?}");
        let alert = active_alert(&s, "policy-invalid").unwrap_or_else(|| panic!("{what}: no alert: {:?}", s.alerts));
        assert!(alert.message.contains("last good revision stays in force"), "{alert:?}");
        // Longer than the orphan grace (3 s): nothing is deleted, nothing added.
        members_hold(&rig, "web", &before, 4).await;
        std::fs::write(&path, &good).unwrap();
        let s = wait_status(&eng, "valid again", 15, |s| policy_state(s, &app).is_some_and(|p| p.0 == "ok")).await;
        assert!(active_alert(&s, "policy-invalid").is_none(), "the alert resolves: {:?}", s.alerts);
    }
    let ev: Vec<_> =
        eng.store.recent_events(10_000).unwrap().into_iter().filter(|e| e.action == "policy-invalid").collect();
    assert_eq!(ev.len(), 3, "one event per broken edit: {ev:?}");
    assert!(eng.store.recent_events(10_000).unwrap().iter().all(|e| e.action != "delete"), "nothing was deleted");
    drop(eng);
    rig.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_policy_or_directory_holds_the_app_until_an_operator_retires_it() {
    let rig = Rig::new(SimConfig::default()).await;
    rig.policy("web", 2);
    let app = rig.app("web");
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 2)], Duration::from_secs(60)).await;
    let before = ids(&rig.members("web").await);
    let retire = || {
        stackpilot::engine::policies::retire(
            &eng.store,
            &rig.policies(),
            &app,
            None,
            "operator:test",
            chrono::Utc::now(),
        )
    };
    let refused = retire();
    assert!(refused.as_ref().is_err_and(|e| e.to_string().contains("still defined in")), "{refused:?}");
    // A file broken a moment ago (before the engine saw it) may still define the app.
    std::fs::write(rig.policies().join("web.toml"), "[app\nname = ").unwrap();
    let refused = retire();
    // (Refused as unreadable, or as invalid once the engine has seen it.)
    let why = refused.as_ref().map_err(|e| e.to_string()).err().unwrap_or_default();
    assert!(why.contains("may still define") || why.contains("does not validate"), "{refused:?}");

    std::fs::remove_file(rig.policies().join("web.toml")).unwrap();
    let s = wait_status(&eng, "missing", 15, |s| policy_state(s, &app).is_some_and(|p| p.0 == "missing")).await;
    let web = s.apps.iter().find(|a| a.app == app).unwrap();
    assert!(web.hold.as_deref().is_some_and(|h| h.starts_with("PolicyMissing")), "{web:?}");
    assert!(active_alert(&s, "policy-missing").is_some(), "{:?}", s.alerts);
    members_hold(&rig, "web", &before, 4).await;

    // The whole directory gone: still on hold.
    std::fs::remove_dir_all(rig.policies()).unwrap();
    let s = wait_status(&eng, "the directory alert", 15, |s| {
        s.alerts.iter().any(|a| a.is_active() && a.message.contains("policies directory"))
    })
    .await;
    assert!(policy_state(&s, &app).is_some_and(|p| p.0 == "missing"));
    members_hold(&rig, "web", &before, 4).await;

    std::fs::create_dir_all(rig.policies()).unwrap();
    retire().unwrap();
    let deadline = rig.deadline(30);
    while !rig.members("web").await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "retired members are removed: {}", rig.journal(20));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let all = eng.store.recent_events(10_000).unwrap();
    assert!(all.iter().any(|e| e.action == "retire" && e.actor == "operator:test"), "the retire is in Events");
    assert!(
        all.iter().filter(|e| e.action == "drain").all(|e| e.reason.contains("retired")),
        "only the retire drained"
    );
    wait_status(&eng, "the retired app forgotten", 15, |s| policy_state(s, &app).is_none()).await;
    drop(eng);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_be_read_stops_acting_and_alerts() {
    let rig = Rig::new(SimConfig::default()).await;
    rig.policy("web", 2);
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 2)], Duration::from_secs(60)).await;
    // A damaged intent record: its time cannot be read (it must never become 1970).
    let db = rusqlite::Connection::open(rig.state().join("stackpilot.db")).unwrap();
    db.execute(
        "INSERT INTO intents (op_id, policy_id, cloud, app, action, slot, revision, generation, server_id, status, error, created_at, updated_at)
         VALUES ('damaged', 'p', ?1, 'x', 'create', 9, 1, 0, NULL, 'PENDING', NULL, 'not a time', 'not a time')",
        [&rig.cloud.name],
    )
    .unwrap();
    rig.policy("web", 4);
    let s = wait_status(&eng, "the store hold", 15, |s| s.holds.iter().any(|(_, h)| h.contains("damaged"))).await;
    let alert = active_alert(&s, "store-unavailable").unwrap_or_else(|| panic!("{:?}", s.alerts));
    assert!(alert.message.contains("stackpilot.db") && alert.message.contains("move it aside"), "{alert:?}");
    members_hold(&rig, "web", &ids(&rig.members("web").await), 3).await;
    db.execute("DELETE FROM intents WHERE op_id = 'damaged'", []).unwrap();
    rig.converged(&[("web", 4)], Duration::from_secs(60)).await;
    drop(eng);
    rig.cleanup().await;
}

/// The policy of `web` with a key pair.
fn with_key(rig: &Rig, desired: u32) {
    rig.policy("web", desired);
    let path = rig.policies().join("web.toml");
    let t = std::fs::read_to_string(&path)
        .unwrap()
        .replace("networks = [\"private\"]", "networks = [\"private\"]\nkey_name = \"ops\"");
    std::fs::write(path, t).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_read_that_fails_is_never_taken_for_an_empty_catalog() {
    let Some(rig) = sim_rig("failed catalog reads", "the real services cannot be told to fail key pair listings").await
    else {
        return;
    };
    let h = rig.sim.as_ref().unwrap();
    let keypairs_fail = |rate: f64| json!({"service": "compute", "error_rate": rate, "methods": ["GET"], "path_suffix": "/os-keypairs"});
    control(h, "faults", keypairs_fail(1.0)).await;
    with_key(&rig, 2);
    let eng = rig.start(rig.engine_cfg());
    let s = wait_status(&eng, "the catalog hold", 15, |s| s.holds.iter().any(|(_, h)| h.contains("keypairs"))).await;
    assert!(active_alert(&s, "catalog-unavailable").is_some(), "{:?}", s.alerts);
    assert!(active_alert(&s, "bad-spec").is_none(), "a failed read is not a missing key pair: {:?}", s.alerts);
    assert!(rig.members("web").await.is_empty());
    common::control_request(h, reqwest::Method::DELETE, "faults").send().await.unwrap();
    rig.converged(&[("web", 2)], Duration::from_secs(60)).await;
    // Intermittent failures of the key pair list later on change nothing.
    control(h, "faults", keypairs_fail(0.5)).await;
    with_key(&rig, 3);
    rig.converged(&[("web", 3)], Duration::from_secs(60)).await;
    let bad: Vec<_> = eng
        .store
        .recent_events(10_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.target.as_deref() == Some("bad-spec"))
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    drop(eng);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_member_is_not_ready_and_never_freezes_a_scale_in() {
    let Some(rig) = sim_rig("stopped members", "the fake virt driver has no CPU metrics for the autoscaler").await
    else {
        return;
    };
    let h = rig.sim.as_ref().unwrap();
    let app = rig.app("web");
    control(h, &format!("apps/{app}"), json!({"base_load": 0.3})).await;
    // Stabilization 0 s and quick evaluations: the autoscaler wants 1 member.
    rig.policy_full("web", 3, 3, 4, &scaling_section(1, 0));
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 3)], Duration::from_secs(60)).await;
    let victim = rig.members("web").await[0].id.clone();
    control(h, &format!("servers/{victim}/state"), json!({"status": "SHUTOFF"})).await;
    let s = wait_status(&eng, "the stopped member", 15, |s| s.apps.first().is_some_and(|a| a.stopped == 1)).await;
    let web = &s.apps[0];
    assert!(!web.converged, "a stopped member is not ready: not converged: {web:?}");
    assert_eq!(web.ready, 2);
    // Now let the autoscaler go below 3.
    rig.policy_full("web", 1, 3, 4, &scaling_section(1, 0));
    let s = wait_status(&eng, "a scale-in", 30, |s| s.scaling.first().is_some_and(|v| v.desired < 3)).await;
    assert!(!s.scaling[0].message.contains("in flight"), "{:?}", s.scaling[0]);
    drop(eng);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_console_never_takes_the_lease() {
    let rig = Rig::new(SimConfig::default()).await;
    rig.policy("web", 2);
    let mut ro_cfg = rig.engine_cfg();
    ro_cfg.may_act = false;
    ro_cfg.engine_id = format!("read-only/{}", rig.run);
    let ro = rig.start(ro_cfg);
    let s = wait_status(&ro, "observing", 10, |s| s.observer).await;
    assert!(s.observing_why.as_deref().is_some_and(|w| w.contains("read-only")), "{s:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(rig.members("web").await.is_empty(), "a read-only console never acts");
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 2)], Duration::from_secs(60)).await;
    let s =
        wait_status(&ro, "the holder's plan", 10, |s| s.lease_holder.as_deref() == Some(&*rig.engine_cfg().engine_id))
            .await;
    assert!(s.observer);
    drop(eng);
    drop(ro);
    rig.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_probes_never_stall_the_tick() {
    let Some(rig) = sim_rig("slow console logs", "the real services cannot be slowed down on demand").await else {
        return;
    };
    let h = rig.sim.as_ref().unwrap();
    // A marker never printed: every member is probed every round; each console
    // log takes 3 s to come.
    rig.policy_with("web", 8, 10, "");
    let path = rig.policies().join("web.toml");
    let t = std::fs::read_to_string(&path)
        .unwrap()
        .replace("cloud_init_marker = \"Cloud-init v. * finished\"", "cloud_init_marker = \"never printed\"");
    std::fs::write(&path, t).unwrap();
    let eng = rig.start(rig.engine_cfg());
    let deadline = rig.deadline(60);
    while rig.members("web").await.iter().filter(|s| s.status == ServerStatus::Active).count() < 8 {
        assert!(tokio::time::Instant::now() < deadline, "8 members booted");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    control(
        h,
        "faults",
        json!({"service": "compute", "latency_ms": 3000, "methods": ["POST"], "path_suffix": "/action"}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t0 = eng.handle.status.borrow().ticks;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let ticks = eng.handle.status.borrow().ticks - t0;
    println!("{ticks} ticks in 6 s with 8 members probed through a 3 s console log");
    assert!(ticks >= 10, "the tick (300 ms) never waits for probes: {ticks} ticks in 6 s");
    let snap = eng.inventory.subscribe().borrow().clone();
    let probed = snap.clouds[0].probes.values().filter(|p| p.last_check.is_some()).count();
    assert!(probed >= 8, "the observer probed every member: {probed}");
    drop(eng);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_member_is_never_replaced() {
    let Some(rig) = sim_rig("undecodable records", "the real services cannot be told to send broken records").await
    else {
        return;
    };
    let h = rig.sim.as_ref().unwrap();
    rig.policy("web", 2);
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 2)], Duration::from_secs(60)).await;
    let before = ids(&rig.members("web").await);
    let victim = before.iter().next().unwrap().clone();
    control(h, &format!("servers/{victim}/corrupt"), json!({"fields": {"flavor": 5}})).await;
    let s = wait_status(&eng, "the hold", 15, |s| s.holds.iter().any(|(_, h)| h.contains("do not decode"))).await;
    assert!(active_alert(&s, "undecodable").is_some(), "{:?}", s.alerts);
    // Unreadable members are not absent ones: no replacement is created.
    let stats = rig.sim_stats().await["create_requests"].as_u64().unwrap();
    // Another server changes: incremental listings no longer carry the broken
    // record, and the hold stays all the same.
    let other =
        control(h, "seed", json!({"count": 1, "prefix": "bystander"})).await["ids"][0].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_secs(2)).await;
    control(h, &format!("servers/{other}/state"), json!({"status": "SHUTOFF"})).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = eng.handle.status.borrow().clone();
    assert!(s.holds.iter().any(|(_, h)| h.contains("do not decode")), "still held: {:?}", s.holds);
    assert_eq!(rig.sim_stats().await["create_requests"].as_u64().unwrap(), stats, "nothing created meanwhile");
    control(h, &format!("servers/{victim}/corrupt"), json!({"fields": {}})).await;
    wait_status(&eng, "acting again", 15, |s| s.holds.is_empty()).await;
    rig.converged(&[("web", 2)], Duration::from_secs(30)).await;
    assert_eq!(ids(&rig.members("web").await), before);
    drop(eng);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_startup_grace_of_the_policy_is_honoured() {
    let rig = Rig::at_speed(SimConfig::default(), 1.0).await;
    if rig.side == Side::Real {
        return not_run("startup grace", "the fake virt driver prints no console log to wait for");
    }
    rig.policy("web", 1);
    let path = rig.policies().join("web.toml");
    let t = std::fs::read_to_string(&path).unwrap().replace(
        "cloud_init_marker = \"Cloud-init v. * finished\"",
        "cloud_init_marker = \"never printed\"\nstartup_grace = \"10s\"",
    );
    std::fs::write(&path, t).unwrap();
    let eng = rig.start(rig.engine_cfg());
    let deadline = rig.deadline(40);
    loop {
        let drained: Vec<_> =
            eng.store.recent_events(1000).unwrap().into_iter().filter(|e| e.action == "drain").collect();
        if let Some(e) = drained.first() {
            assert!(e.reason.contains("not ready 10s after creation"), "{e:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not replaced after its 10 s startup grace: {}",
            rig.journal(20)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(eng);
}

/// `stackpilot` run to completion with the rig's clouds and config; (status, stderr).
fn run_cli(rig: &Rig, args: &[&str], config: &str) -> (Option<i32>, String) {
    let home = rig.dir.path();
    std::fs::create_dir_all(home.join("config/stackpilot")).unwrap();
    std::fs::write(home.join("config/stackpilot/config.toml"), config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stackpilot"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("STACKPILOT_STATE_DIR", rig.state())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durations_out_of_range_are_refused_with_their_place() {
    let rig = Rig::new(SimConfig::default()).await;
    let (code, err) = run_cli(&rig, &["engine", "--tick", "inf"], "");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`inf` is not a duration"), "{err}");
    let (code, err) = run_cli(&rig, &["engine", "--tick", "0s"], "");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("0s is out of range: expected between 100ms and 1h"), "{err}");
    for (config, want) in [
        ("[engine]\ntick = \"0s\"\n", "config.toml:2:1: engine.tick: 0s is out of range"),
        ("[refresh]\nservers = \"0s\"\n", "config.toml:2:1: refresh.servers: 0s is out of range"),
        ("[engine]\norphan_grace = \"150000000000d\"\n", "config.toml:2:16: invalid duration `150000000000d`"),
    ] {
        let (code, err) = run_cli(&rig, &["engine"], config);
        assert_eq!(code, Some(1), "{config}: {err}");
        assert!(err.contains(want), "{config}: {err}");
    }
}

/// Wait for a child engine to exit; its status and log.
async fn exit_of(child: &mut Child, rig: &Rig, log: &str, secs: u64) -> (Option<i32>, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.proc.try_wait().unwrap() {
            return (st.code(), log_of(rig, log));
        }
        assert!(tokio::time::Instant::now() < deadline, "still running: {}", log_of(rig, log));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dying_engine_or_poller_ends_the_process_with_a_failure() {
    let rig = Rig::new(SimConfig::default()).await;
    rig.policy("web", 1);
    let poller = format!("poller {}/servers", rig.cloud.name);
    for (task, log) in [("engine", "die-engine.log"), (poller.as_str(), "die-poller.log")] {
        let mut child = spawn_engine_with(
            &rig,
            &rig.state(),
            log,
            &["--metrics-port", "0"],
            &[("STACKPILOT_TEST_PANIC", task)],
            "",
        );
        let (code, log) = exit_of(&mut child, &rig, log, 30).await;
        assert_eq!(code, Some(1), "{task}: a supervisor with Restart=on-failure must see a failure: {log}");
        assert!(log.contains(&format!("{task} died")) && log.contains("injected panic"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_on_one_host_observe_each_other_and_share_no_port() {
    let rig = Rig::new(SimConfig::default()).await;
    rig.policy("web", 1);
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let cfg = format!("metrics_port = {port}");
    let _a = spawn_engine_with(&rig, &rig.state(), "a.log", &[], &[], &cfg);
    rig.converged(&[("web", 1)], Duration::from_secs(60)).await;
    let mut b = spawn_engine_with(&rig, &rig.state(), "b.log", &[], &[], &cfg);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let log_b = loop {
        let l = log_of(&rig, "b.log");
        if l.contains("observing") {
            break l;
        }
        assert!(b.proc.try_wait().unwrap().is_none(), "the second engine exited: {l}");
        assert!(tokio::time::Instant::now() < deadline, "the second engine does not say it observes: {l}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(log_b.contains(&format!("127.0.0.1:{port} is in use by stackpilot engine")), "{log_b}");
    let base = metrics_base(&log_b).unwrap();
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    let text = health.text().await.unwrap();
    assert!(text.contains("observing") && text.contains("lease is held by"), "{text}");
    // Asking for the taken port by name is an error that names the holder.
    let mut c = spawn_engine_with(&rig, &rig.state(), "c.log", &["--metrics-port", &port.to_string()], &[], "");
    let (code, log) = exit_of(&mut c, &rig, "c.log", 20).await;
    assert_eq!(code, Some(1));
    assert!(log.contains(&format!("127.0.0.1:{port} is in use by stackpilot engine")), "{log}");
    rig.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_turns_unhealthy_when_the_engine_holds() {
    let Some(rig) = sim_rig("unhealthy engine", "the real services cannot be told to send broken records").await else {
        return;
    };
    let h = rig.sim.as_ref().unwrap();
    rig.policy("web", 1);
    let _e = spawn_engine_with(&rig, &rig.state(), "h.log", &["--metrics-port", "0"], &[], "");
    rig.converged(&[("web", 1)], Duration::from_secs(60)).await;
    let base = metrics_base(&log_of(&rig, "h.log")).unwrap();
    assert!(reqwest::get(format!("{base}/healthz")).await.unwrap().status().is_success());
    let victim = rig.members("web").await[0].id.clone();
    control(h, &format!("servers/{victim}/corrupt"), json!({"fields": {"flavor": 5}})).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
        if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            let text = r.text().await.unwrap();
            assert!(text.contains("do not decode"), "{text}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "healthz stays ok while the engine holds");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("kind=\"undecodable\",severity=\"critical\"}"), "{metrics}");
    assert!(metrics.contains("stackpilot_engine_healthy 0"), "{metrics}");
    rig.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_and_a_pause_are_alerted_and_resolve() {
    use stackpilot::engine::EngineCommand;
    let rig = Rig::new(SimConfig::default()).await;
    rig.policy("web", 1);
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 1)], Duration::from_secs(60)).await;
    // Someone removes the lease file: another engine could lock a new one.
    std::fs::remove_file(stackpilot::engine::lease::lease_path(&rig.state(), &rig.cloud.name)).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let ev = eng.store.recent_events(1000).unwrap();
        let fired =
            ev.iter().any(|e| e.action == "alert" && e.target.as_deref() == Some("lease-lost") && e.result == "firing");
        let resolved = ev
            .iter()
            .any(|e| e.action == "alert" && e.target.as_deref() == Some("lease-lost") && e.result == "resolved");
        if fired && resolved {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lost lease is alerted, then taken again: {}",
            rig.journal(20)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eng.handle.commands.send(EngineCommand::TogglePause).await.unwrap();
    let s = wait_status(&eng, "the pause alert", 10, |s| active_alert(s, "engine-paused").is_some()).await;
    assert!(s.paused);
    rig.policy("web", 2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rig.members("web").await.len(), 1, "a paused engine does not act");
    eng.handle.commands.send(EngineCommand::TogglePause).await.unwrap();
    rig.converged(&[("web", 2)], Duration::from_secs(60)).await;
    let s = eng.handle.status.borrow().clone();
    assert!(active_alert(&s, "engine-paused").is_none(), "{:?}", s.alerts);
    drop(eng);
    rig.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_engine_never_replaces_members_whose_checks_it_could_not_read() {
    // Simulated time runs as ours (members are timed against our clock); a quick boot.
    let rig = Rig::at_speed(SimConfig { boot_secs: Some(2.0), ..SimConfig::default() }, 1.0).await;
    if rig.side == Side::Real {
        return not_run("unreadable checks after a restart", "the real services cannot be told to fail console logs");
    }
    let h = rig.sim.as_ref().unwrap();
    rig.policy("web", 2);
    let path = rig.policies().join("web.toml");
    let t = std::fs::read_to_string(&path)
        .unwrap()
        .replace("min_ready_seconds = 0", "min_ready_seconds = 0\nstartup_grace = \"30s\"");
    std::fs::write(&path, t).unwrap();
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 2)], Duration::from_secs(60)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !rig.members("web").await.iter().all(|s| s.metadata.contains_key("stackpilot:ready")) {
        assert!(tokio::time::Instant::now() < deadline, "ready members are marked so");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(eng);
    // Members of an older engine carry no mark; the console log cannot be read.
    let before = ids(&rig.members("web").await);
    for s in rig.members("web").await {
        let mut m = s.metadata.clone();
        m.remove("stackpilot:ready");
        let req = stackpilot::cloud::Req::put(format!("/servers/{}/metadata", s.id), json!({"metadata": m}));
        rig.client.session.request("compute", req).await.unwrap();
    }
    control(
        h,
        "faults",
        json!({"service": "compute", "error_rate": 1.0, "methods": ["POST"], "path_suffix": "/action"}),
    )
    .await;
    // Until the members are past their 30 s grace.
    tokio::time::sleep(Duration::from_secs(16)).await;
    let eng = rig.start(rig.engine_cfg());
    // Past their grace, checks unanswered: not ready, never replaced.
    members_hold(&rig, "web", &before, 12).await;
    let s = eng.handle.status.borrow().clone();
    assert!(s.apps.first().is_some_and(|a| a.ready == 0 && !a.converged), "{:?}", s.apps);
    assert!(eng.store.recent_events(1000).unwrap().iter().all(|e| e.action != "drain"), "{}", rig.journal(20));
    common::control_request(h, reqwest::Method::DELETE, "faults").send().await.unwrap();
    wait_status(&eng, "ready again", 30, |s| s.apps.first().is_some_and(|a| a.ready == 2 && a.converged)).await;
    assert_eq!(ids(&rig.members("web").await), before);
    drop(eng);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_holds_for_the_headless_engine_and_retire_too() {
    let rig = Rig::new(SimConfig::default()).await;
    rig.policy("web", 1);
    let mut ro = spawn_engine_with(&rig, &rig.state(), "ro.log", &["--read-only", "--metrics-port", "0"], &[], "");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !log_of(&rig, "ro.log").contains("read-only: observing") {
        assert!(ro.proc.try_wait().unwrap().is_none(), "{}", log_of(&rig, "ro.log"));
        assert!(tokio::time::Instant::now() < deadline, "{}", log_of(&rig, "ro.log"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(rig.members("web").await.is_empty(), "a read-only engine never acts");
    let (code, err) = run_cli(&rig, &["--read-only", "policy", "retire", "web", "--cloud", "sim"], "");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("read-only"), "{err}");
    drop(ro);
}
