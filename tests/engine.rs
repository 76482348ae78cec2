//! The engine against a cloud over HTTP. The cloud is chosen by
//! `STACKPILOT_ENGINE_CLOUD`: `sim` (the default; each case starts its own
//! simulator) or `real` (the upstream services of ../shared/tools/openstack, with
//! the flavor, image and network the conformance suite's fixture creates; `OS_*`
//! variables override the defaults as in tests/conformance.rs).
//!
//! Cases that need the simulator's fault injection or counters print
//! `NOT RUN on real` with the reason: the real services cannot be told to fail
//! (10% 5xx, late answers, exhausted quota with a stale limits cache) on demand.
//! Converge, crash-restart and the untagged lookalike run on both.

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
use stackpilot::cloud::compute::{CreateServer, NetworkSpec};
use stackpilot::domain::ServerStatus;
use stackpilot::sim::SimConfig;
use stackpilot::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_three_apps_and_follows_desired_up_and_down() {
    let rig = Rig::new(SimConfig::default()).await;
    rig.policy("web", 3);
    rig.policy("api", 2);
    rig.policy("worker", 1);
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 3), ("api", 2), ("worker", 1)], Duration::from_secs(90)).await;
    // The engine sees what the cloud lists a refresh later (on a loaded real
    // cloud, seconds later): wait for its own status to say so.
    let status = wait_status(&eng, "the engine's converged status", 60, |s| {
        s.apps.len() == 3 && s.apps.iter().all(|a| a.converged && a.ready == a.desired)
    })
    .await;
    assert_eq!(status.apps.len(), 3);

    rig.policy("web", 1);
    rig.policy("api", 4);
    rig.converged(&[("web", 1), ("api", 4), ("worker", 1)], Duration::from_secs(90)).await;
    for short in ["web", "api", "worker"] {
        assert_well_formed(short, &rig.members(short).await);
    }
    // 3 + 2 + 1 at first, then 2 more for api: eight creates, each once. On a
    // loaded real cloud a create's answer can be lost and its server stay unseen
    // past the visibility timeout: the engine gives that operation up and makes
    // the member again (ENGINE-SPEC), then deletes the late one as a duplicate.
    // Each give-up explains exactly one more create; the simulator has none.
    let apps = ["web", "api", "worker"];
    let count = |action: &str| -> usize { apps.iter().map(|s| events(&eng.store, action, &rig.app(s)).len()).sum() };
    let creates = count("create");
    // Only a create given up explains a create (a slow delete is given up too).
    let give_ups: usize = apps
        .iter()
        .map(|s| {
            events(&eng.store, "give-up", &rig.app(s))
                .iter()
                .filter(|e| e.reason.starts_with("create not visible"))
                .count()
        })
        .sum();
    let journal: Vec<String> = eng
        .store
        .recent_events(1000)
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} {:?} {} {} {:?}",
                e.action,
                e.result,
                e.app,
                e.reason,
                e.target.clone().unwrap_or_default(),
                e.detail
            )
        })
        .collect();
    if rig.side == Side::Sim {
        assert_eq!(give_ups, 0, "{journal:#?}");
    }
    assert_eq!(creates, 8 + give_ups, "{journal:#?}");
    // Web went from 3 to 1: two members drained once each, then deleted; any
    // other delete is a given-up create's late duplicate.
    let deletes = events(&eng.store, "delete", &rig.app("web"));
    let drained: BTreeSet<_> =
        deletes.iter().filter(|e| e.reason.starts_with("drained")).filter_map(|e| e.target.clone()).collect();
    assert_eq!(drained.len(), 2, "web went from 3 to 1: {journal:#?}");
    let duplicates = deletes.iter().filter(|e| e.reason.starts_with("duplicate")).count();
    assert!(duplicates <= give_ups, "a duplicate is deleted only after a give-up: {journal:#?}");
    let other: Vec<_> =
        deletes.iter().filter(|e| !e.reason.starts_with("drained") && !e.reason.starts_with("duplicate")).collect();
    assert!(other.is_empty(), "no delete of web for another reason: {journal:#?}");
    // Two-phase: each of the two marked terminating once. A mark that failed
    // (on the real services: a request past the client's timeout) is tried again
    // next tick; the simulator never fails one here.
    let drains = events(&eng.store, "drain", &rig.app("web"));
    let (marked, failed): (Vec<_>, Vec<_>) = drains.iter().partition(|e| e.result == "ok");
    let marked_targets: BTreeSet<_> = marked.iter().filter_map(|e| e.target.clone()).collect();
    assert_eq!(marked.len(), 2, "two-phase, each drained once: {journal:#?}");
    assert_eq!(marked_targets, drained, "the drained ones are the deleted ones: {journal:#?}");
    if rig.side == Side::Sim {
        assert!(failed.is_empty(), "no drain fails on the simulator: {journal:#?}");
        assert_eq!(deletes.len(), 2, "each drained member deleted once: {journal:#?}");
        assert_eq!(assert_no_duplicate_creates(&rig).await, 8);
    }
    drop(eng);
    rig.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nova_errors_and_latency_do_not_duplicate_servers() {
    if side() == Side::Real {
        return not_run("nova 5xx and latency", "needs the simulator's fault injection");
    }
    let mut faults = BTreeMap::new();
    faults.insert(
        "compute".to_string(),
        stackpilot::sim::http::ServiceFaults {
            error_rate: 0.10,
            latency_ms: 80,
            drop_rate: 0.05,
            ..Default::default()
        },
    );
    let rig = Rig::new(SimConfig { faults, ..Default::default() }).await;
    rig.policy("web", 4);
    rig.policy("api", 3);
    rig.policy("worker", 2);
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 4), ("api", 3), ("worker", 2)], Duration::from_secs(120)).await;
    for short in ["web", "api", "worker"] {
        assert_well_formed(short, &rig.members(short).await);
    }
    let creates = assert_no_duplicate_creates(&rig).await;
    // Creates that failed with a 5xx never reached the world; dropped answers were
    // adopted. Either way nine servers exist, each created once.
    assert_eq!(creates, 9);
    let st = rig.sim_stats().await;
    assert!(st["create_requests"].as_u64().unwrap() >= 9);
    drop(eng);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_answered_too_late_is_adopted_not_repeated() {
    if side() == Side::Real {
        return not_run("create accepted then timed out", "needs the simulator's late answers");
    }
    let rig = Rig::new(SimConfig::default()).await;
    let h = rig.sim.as_ref().unwrap();
    // Nova carries every create out but answers after the engine stopped waiting.
    control(h, "faults", json!({"service": "compute", "timeout_rate": 1.0, "timeout_ms": 8000, "methods": ["POST"], "path_suffix": "/servers"}))
        .await;
    rig.policy("web", 2);
    let mut cfg = rig.engine_cfg();
    cfg.create_timeout = Duration::from_millis(800);
    let eng = rig.start(cfg);
    rig.converged(&[("web", 2)], Duration::from_secs(60)).await;
    // The servers are there; the engine settles its two open intents.
    let deadline = rig.deadline(30);
    while !eng.store.open_intents(&rig.cloud.name).unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "intents still open: {:?}", eng.handle.status.borrow());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(assert_no_duplicate_creates(&rig).await, 2, "two creates, both adopted");
    let app = rig.app("web");
    let unknown: Vec<_> = events(&eng.store, "create", &app).into_iter().filter(|e| e.result == "unknown").collect();
    assert_eq!(unknown.len(), 2, "both creates ended without an answer");
    let adopted = events(&eng.store, "adopt", &app);
    let mut all: Vec<String> = eng
        .store
        .recent_events(100)
        .unwrap()
        .iter()
        .map(|e| format!("{} {} {} {:?}", e.action, e.result, e.reason, e.app))
        .collect();
    all.push(format!("{:?}", eng.handle.status.borrow().clone()));
    all.push(format!("{:?}", eng.store.open_intents(&rig.cloud.name)));
    assert_eq!(adopted.len(), 2, "both found by their op tag: {all:#?}");
    assert!(events(&eng.store, "give-up", &app).is_empty());
    drop(eng);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_quota_blocks_scale_out_with_one_alert_and_few_requests() {
    if side() == Side::Real {
        return not_run("quota exhausted", "lowering the shared real project's quota would disturb other cases");
    }
    let rig = Rig::new(SimConfig::default()).await;
    let h = rig.sim.as_ref().unwrap();
    control(h, "quota", json!({"project": "admin", "instances": 2})).await;
    rig.policy("web", 5);
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 2)], Duration::from_secs(60)).await;
    let before = rig.sim_stats().await["create_requests"].as_u64().unwrap();
    // Twenty-five ticks held back.
    tokio::time::sleep(Duration::from_millis(7500)).await;
    let after = rig.sim_stats().await["create_requests"].as_u64().unwrap();
    println!("create requests: {before} up to the block, {} in 7.5 s while blocked", after - before);
    assert_eq!(rig.members("web").await.len(), 2, "partial scale-out to the quota's headroom");
    assert!(after - before <= 2, "no retry storm: {} creates tried while blocked", after - before);
    // Two fit; the first tick may try all five when the quota is not read yet
    // (the cloud refuses three), never more: limits are re-read after acting.
    assert!(before <= 5, "creates before the block: {before}");
    let status = eng.handle.status.borrow().clone();
    let web = &status.apps[0];
    assert!(web.blocked.as_deref().is_some_and(|b| b.contains("quota")), "{web:?}");
    assert!(status.alerts.iter().any(|a| a.message.contains("capacity blocked")));
    let app = rig.app("web");
    let alerts: Vec<_> = events(&eng.store, "alert", &app)
        .into_iter()
        .filter(|e| e.result == "firing" && e.reason.contains("capacity blocked"))
        .collect();
    assert_eq!(alerts.len(), 1, "one alert, not one per tick: {alerts:?}");

    // Room again: scale-out resumes after the backoff and the block clears.
    control(h, "quota", json!({"project": "admin", "instances": 20})).await;
    rig.converged(&[("web", 5)], Duration::from_secs(60)).await;
    let resolved: Vec<_> = events(&eng.store, "alert", &app)
        .into_iter()
        .filter(|e| e.result == "resolved" && e.reason.contains("capacity blocked"))
        .collect();
    assert_eq!(resolved.len(), 1);
    assert_eq!(assert_no_duplicate_creates(&rig).await, 5);
    drop(eng);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untagged_server_named_like_a_member_is_never_touched() {
    let rig = Rig::new(SimConfig::default()).await;
    let app = rig.app("web");
    let c = rig.client.compute();
    let img = rig.client.image().list_images().await.unwrap();
    let img = img.iter().find(|i| i.name.as_deref() == Some("cirros-0.6.2-x86_64-disk")).expect("image").id.clone();
    let flv = c.list_flavors().await.unwrap().into_iter().find(|f| f.name == "m1.tiny").expect("flavor").id;
    let net = rig.client.network().list_networks().await.unwrap().into_iter().find(|n| n.name == "private").unwrap().id;
    // Same name scheme, even the app metadata: but no stackpilot tags.
    let look = CreateServer {
        name: format!("{app}-r1-s0"),
        image_id: Some(img),
        flavor_id: flv,
        networks: vec![NetworkSpec::Uuid(net)],
        metadata: [("stackpilot:app".to_string(), app.clone()), ("stackpilot:slot".to_string(), "0".to_string())]
            .into(),
        ..Default::default()
    };
    let look = c.create_server(&look).await.unwrap().id;
    rig.policy("web", 1);
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 1)], Duration::from_secs(60)).await;
    rig.policy("web", 0);
    rig.converged(&[("web", 0)], Duration::from_secs(60)).await;
    // And it stays so while the engine keeps ticking with nothing of its own left.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = c.get_server(&look).await.expect("the lookalike is still there");
    assert_ne!(s.status, ServerStatus::Deleted);
    assert!(!s.metadata.contains_key("stackpilot:state"), "not even marked for termination");
    let touched: Vec<_> = eng
        .store
        .recent_events(1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.target.as_deref() == Some(look.as_str()) || e.target.as_deref() == Some(s.display_name()))
        .collect();
    assert!(touched.is_empty(), "{touched:?}");
    drop(eng);
    let _ = c.delete_server(&look).await;
    rig.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_converge_the_engine_restarts_without_duplicates_or_orphans() {
    let rig = Rig::new(SimConfig::default()).await;
    if let Some(h) = &rig.sim {
        // Slow creates, so the kill lands while some are in flight.
        control(
            h,
            "faults",
            json!({"service": "compute", "latency_ms": 400, "methods": ["POST"], "path_suffix": "/servers"}),
        )
        .await;
    }
    let state = rig.state();
    rig.policy("web", 6);
    let mut child = spawn_engine(&rig, &state, "engine-1.log");
    // Kill it as soon as the first members exist.
    let deadline = rig.deadline(60);
    loop {
        let n = rig.members("web").await.len();
        if n >= 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the engine created nothing: {}", log_of(&rig, "engine-1.log"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.proc.kill().unwrap(); // SIGKILL
    child.proc.wait().unwrap();
    let at_kill = rig.members("web").await.len();
    assert!(at_kill < 6, "killed mid-converge ({at_kill} of 6 existed)");
    let store = Store::open(&state.join("stackpilot.db")).unwrap();
    let pending = store.open_intents(&rig.cloud.name).unwrap().len();
    println!("killed with {at_kill} members and {pending} open intents");
    drop(store);

    let child2 = spawn_engine(&rig, &state, "engine-2.log");
    rig.converged(&[("web", 6)], Duration::from_secs(120)).await;
    let ms = rig.members("web").await;
    assert_well_formed("web", &ms);
    if rig.side == Side::Sim {
        assert_eq!(assert_no_duplicate_creates(&rig).await, 6, "{}", log_of(&rig, "engine-2.log"));
    }
    // The headless engine's own health and metrics.
    let log = log_of(&rig, "engine-2.log");
    // Into a file: no colour codes, and what does not change is not said again.
    assert!(!log.contains('\u{1b}'), "no terminal codes in a log file:\n{log}");
    let mut said: std::collections::BTreeMap<&str, usize> = Default::default();
    for l in log.lines() {
        // Without its timestamp.
        *said.entry(l.split_once(' ').map_or(l, |(_, rest)| rest)).or_default() += 1;
    }
    let most = said.iter().max_by_key(|(_, n)| **n).map(|(l, n)| (*n, *l)).unwrap_or_default();
    assert!(most.0 <= 3, "a line logged {} times: {}", most.0, most.1);
    let base = log
        .split("metrics on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(|u| u.trim_end_matches("/metrics").to_string())
        .unwrap_or_else(|| panic!("no metrics address in the log: {log}"));
    // Healthy once its data is fresh again after the restart (on a loaded real
    // cloud the first listings take a while).
    let deadline = rig.deadline(30);
    loop {
        let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
        if health.status().is_success() {
            break;
        }
        let body = health.text().await.unwrap_or_default();
        assert!(tokio::time::Instant::now() < deadline, "/healthz stays unhealthy: {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cloud = &rig.cloud.name;
    let wants = [
        format!("stackpilot_engine_apps_converged{{cloud=\"{cloud}\"}} 1"),
        format!("stackpilot_engine_lease_held{{cloud=\"{cloud}\"}} 1"),
        format!("stackpilot_engine_actions_total{{cloud=\"{cloud}\","),
        "stackpilot_engine_ticks_total ".to_string(),
        "stackpilot_engine_intents_pending 0".to_string(),
    ];
    // The engine's own view follows the cloud's by a tick (longer on a busy machine).
    let mut metrics = String::new();
    let deadline = rig.deadline(30);
    while !wants.iter().all(|w| metrics.contains(w.as_str())) {
        let missing: Vec<&String> = wants.iter().filter(|w| !metrics.contains(w.as_str())).collect();
        assert!(tokio::time::Instant::now() < deadline, "{missing:?} in\n{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    }
    drop(child2);

    // A wiped store is rebuilt from the tags: the six are members, not strangers.
    std::fs::remove_dir_all(&state).unwrap();
    rig.policy("web", 7);
    let child3 = spawn_engine(&rig, &state, "engine-3.log");
    rig.converged(&[("web", 7)], Duration::from_secs(90)).await;
    let after = rig.members("web").await;
    assert_well_formed("web", &after);
    let kept: BTreeSet<&String> = ms.iter().map(|s| &s.id).collect();
    assert_eq!(after.iter().filter(|s| kept.contains(&s.id)).count(), 6, "the six survived the wiped store");
    if rig.side == Side::Sim {
        assert_eq!(assert_no_duplicate_creates(&rig).await, 7);
    }
    drop(child3);
    rig.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_autoscaler_closes_the_loop_on_a_traffic_spike() {
    if side() == Side::Real {
        return not_run("autoscaling closed loop", "the fake virt driver has no guests, so no CPU metrics");
    }
    let rig = Rig::new(SimConfig::default()).await;
    let h = rig.sim.as_ref().unwrap();
    let app = rig.app("web");
    // One vCPU of work; 4 times that for 1500 simulated seconds (25 s at speed
    // 60), starting 720 simulated seconds (12 s) from now. Two members at 100 %
    // (saturated) ask for 4, four at 100 % for 7, and 4 vCPU on 7 is 57 %.
    let spike_in = Duration::from_secs(12);
    let spike_len = Duration::from_secs(25);
    let profile =
        json!({"kind": "spike", "every_secs": 1e9, "duration_secs": 1500.0, "factor": 4.0, "start_in_secs": 720.0});
    control(h, &format!("apps/{app}"), json!({"base_load": 1.0, "profile": profile})).await;
    let t0 = tokio::time::Instant::now();
    let wall0 = chrono::Utc::now();
    let eval = 3;
    let stabilization = 10;
    // Scale-in two members at a time, so the way down is visible too. A member
    // that booted first carried the whole load alone until the second one was
    // up, and its last sample says so: the warm-up spans three metric steps
    // (180 simulated seconds, the default) so that the average the first
    // evaluation reads is the shared load, not that start.
    let section = replace_last(
        &replace_last(&scaling_section(eval, stabilization), "warmup = \"1s\"", "warmup = \"3s\""),
        "value = 10, period = \"1s\"",
        "value = 2, period = \"2s\"",
    );
    rig.policy_with("web", 2, 10, &section);
    let eng = rig.start(rig.engine_cfg());
    // Watch desired, members and the app's CPU until it has scaled back in.
    let mut trace: Vec<(f64, u32, u32, Option<f64>)> = vec![];
    let mut under_target_at_peak = None;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let el = t0.elapsed();
        let st = eng.handle.status.borrow().clone();
        let Some(v) = st.scaling.first() else { continue };
        let cpu = v.series.last().map(|x| x.1);
        trace.push((el.as_secs_f64(), v.desired, v.current, cpu));
        // In the spike, once the scaled-out members carry it, CPU is back under target.
        if el > spike_in + Duration::from_secs(12)
            && el < spike_in + spike_len
            && v.current == v.desired
            && v.desired >= 7
        {
            if let Some(c) = cpu {
                under_target_at_peak.get_or_insert(c);
            }
        }
        if el > spike_in + spike_len + Duration::from_secs(stabilization + 5) && v.desired == 2 && v.current == 2 {
            break;
        }
        assert!(el < Duration::from_secs(120), "did not settle: {trace:?}");
    }
    let since = |t: chrono::DateTime<chrono::Utc>| (t - wall0).to_std().unwrap_or_default();
    let all = eng.store.recent_events(10_000).unwrap();
    let mut scale: Vec<_> = all.iter().filter(|e| e.action == "scale-out" || e.action == "scale-in").collect();
    scale.sort_by_key(|e| e.at);
    let first_out = scale.iter().find(|e| e.action == "scale-out").expect("scaled out");
    let first_in = scale.iter().find(|e| e.action == "scale-in").expect("scaled in");
    let reaction = since(first_out.at).saturating_sub(spike_in);
    println!(
        "scale-out {:.1}s after the spike began; first scale-in {:.1}s after it ended",
        reaction.as_secs_f64(),
        since(first_in.at).as_secs_f64() - (spike_in + spike_len).as_secs_f64()
    );
    println!("trace (s, desired, members, cpu %): {:?}", trace.iter().step_by(4).collect::<Vec<_>>());
    assert!(since(first_out.at) >= spike_in, "no scale-out before the spike: {first_out:?}");
    assert!(
        reaction <= Duration::from_secs(2 * eval),
        "scaled out {reaction:?} after the spike, more than two evaluation intervals"
    );
    let peak = trace.iter().map(|t| t.1).max().unwrap();
    assert!((7..=8).contains(&peak), "4 vCPU at 60 % wants 7 members: peak {peak}");
    let cpu = under_target_at_peak.expect("the spike was carried at full size");
    assert!(cpu < 60.0, "CPU back under target at the peak: {cpu:.1} %");
    // Scale-in only after the stabilization window that follows the spike.
    let quiet = since(first_in.at).saturating_sub(spike_in + spike_len);
    assert!(quiet >= Duration::from_secs(stabilization - 1), "scaled in {quiet:?} after the spike ended");
    // No flapping: every scale-out comes before every scale-in.
    let dirs: Vec<&str> = scale.iter().map(|e| e.action.as_str()).collect();
    let changes = dirs.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(changes, 1, "one change of direction: {dirs:?}");
    assert!(scale.iter().all(|e| e.result != "MetricsStale"), "{scale:?}");
    drop(eng);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_inside_the_down_stabilization_window_does_not_scale_in_early() {
    if side() == Side::Real {
        return not_run("restart during stabilization", "the fake virt driver has no guests, so no CPU metrics");
    }
    let rig = Rig::new(SimConfig::default()).await;
    let h = rig.sim.as_ref().unwrap();
    let app = rig.app("web");
    control(h, &format!("apps/{app}"), json!({"base_load": 1.0, "profile": {"kind": "steady"}})).await;
    control(h, &format!("apps/{app}/load"), json!({"factor": 4.0})).await;
    let stabilization = 20;
    rig.policy_with("web", 2, 10, &scaling_section(2, stabilization));
    let eng = rig.start(rig.engine_cfg());
    wait_scaling(&eng, "scaled out to carry 4 vCPU", Duration::from_secs(60), |v| {
        v.desired >= 7 && v.current == v.desired
    })
    .await;
    // The load drops; the engine restarts six seconds into the window.
    control(h, &format!("apps/{app}/load"), json!({"factor": 1.0})).await;
    let dropped = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let peak = eng.handle.status.borrow().scaling[0].desired;
    drop(eng);
    let eng = rig.start(rig.engine_cfg());
    wait_scaling(&eng, "scaled back in", Duration::from_secs(60), |v| v.desired == 2).await;
    let first_in = eng
        .store
        .recent_events(10_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "scale-in")
        .min_by_key(|e| e.at)
        .expect("a scale-in");
    let after = (first_in.at - dropped).num_milliseconds() as f64 / 1000.0;
    println!("peak {peak}; first scale-in {after:.1}s after the load dropped (window {stabilization}s, restart at 6s)");
    assert!(after >= stabilization as f64 - 1.0, "scaled in {after:.1}s after the drop: the window was forgotten");
    drop(eng);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_hit_mid_scale_out_gives_a_partial_scale_out_and_no_retry_storm() {
    if side() == Side::Real {
        return not_run("quota mid scale-out", "the fake virt driver has no guests, so no CPU metrics");
    }
    let rig = Rig::new(SimConfig::default()).await;
    let h = rig.sim.as_ref().unwrap();
    let app = rig.app("web");
    control(h, "quota", json!({"project": "admin", "instances": 5})).await;
    control(h, &format!("apps/{app}"), json!({"base_load": 1.0, "profile": {"kind": "steady"}})).await;
    rig.policy_with("web", 2, 10, &scaling_section(2, 30));
    let eng = rig.start(rig.engine_cfg());
    wait_scaling(&eng, "settled at 2", Duration::from_secs(30), |v| v.current == 2 && !v.decisions.is_empty()).await;
    control(h, &format!("apps/{app}/load"), json!({"factor": 4.0})).await;
    wait_scaling(&eng, "blocked by the quota", Duration::from_secs(60), |v| {
        v.reason == "CapacityBlocked" && v.current == 5
    })
    .await;
    let posts = || async { rig.sim_stats().await["create_requests"].as_u64().unwrap() };
    let before = posts().await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let tried = posts().await - before;
    let v = eng.handle.status.borrow().scaling[0].clone();
    println!("blocked at {} members, desired {}; {tried} creates tried in 8 s: {}", v.current, v.desired, v.message);
    assert_eq!(rig.members("web").await.len(), 5, "partial scale-out to the quota");
    assert_eq!(v.reason, "CapacityBlocked");
    assert!(v.desired > 5, "desired stays where the metrics put it");
    assert!(tried <= 2, "no retry storm: {tried} creates in 8 s");
    let alerts: Vec<_> = events(&eng.store, "alert", &app)
        .into_iter()
        .filter(|e| e.result == "firing" && e.reason.contains("capacity blocked"))
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let holds: Vec<_> =
        eng.store.recent_events(10_000).unwrap().into_iter().filter(|e| e.result == "CapacityBlocked").collect();
    assert_eq!(holds.len(), 1, "one event when the autoscaler is held by capacity: {holds:?}");
    drop(eng);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_edits_keep_the_autoscalers_desired_and_min_max_edits_reclamp_it() {
    if side() == Side::Real {
        return not_run("autoscaler-owned desired", "the fake virt driver has no guests, so no CPU metrics");
    }
    let rig = Rig::new(SimConfig::default()).await;
    let h = rig.sim.as_ref().unwrap();
    let app = rig.app("web");
    control(h, &format!("apps/{app}"), json!({"base_load": 1.0, "profile": {"kind": "steady"}})).await;
    control(h, &format!("apps/{app}/load"), json!({"factor": 2.0})).await;
    let section = scaling_section(2, 4);
    rig.policy_full("web", 1, 2, 10, &section);
    let eng = rig.start(rig.engine_cfg());
    wait_scaling(&eng, "scaled to 4 for 2 vCPU", Duration::from_secs(60), |v| v.desired == 4 && v.current == 4).await;
    // Unrelated edits (the warm-up, a comment, even the policy's initial desired):
    // the autoscaler's 4 stays.
    let edited = format!("{section}\n# tuned by an operator\n").replace("warmup = \"1s\"", "warmup = \"2s\"");
    assert_ne!(edited, section);
    rig.policy_full("web", 1, 3, 10, &edited);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let v = eng.handle.status.borrow().scaling[0].clone();
    assert_eq!((v.desired, v.current), (4, 4), "not reset to the policy's desired 2: {}", v.message);
    assert_eq!(rig.members("web").await.len(), 4);
    // A lower max re-clamps it.
    rig.policy_full("web", 1, 2, 3, &section);
    wait_scaling(&eng, "re-clamped to max 3", Duration::from_secs(30), |v| v.desired == 3 && v.current == 3).await;
    // 2 vCPU on 3 members is 67 %: the metric asks for 4, the max holds it.
    wait_scaling(&eng, "held at max", Duration::from_secs(30), |v| v.reason == "TooManyReplicas" && v.desired == 3)
        .await;
    // A higher min raises it.
    rig.policy_full("web", 5, 5, 10, &section);
    wait_scaling(&eng, "raised to min 5", Duration::from_secs(30), |v| v.desired == 5 && v.current == 5).await;
    wait_scaling(&eng, "held at min", Duration::from_secs(30), |v| v.reason == "TooFewReplicas" && v.desired == 5)
        .await;
    drop(eng);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_ready_only_when_their_http_probe_answers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let rig = Rig::new(SimConfig::default()).await;
    // The application's health endpoint: slot 0 is healthy; the others once `all` is set.
    let all = Arc::new(AtomicBool::new(false));
    let seen_ips = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let (a2, ips) = (all.clone(), seen_ips.clone());
    let router = axum::Router::new().route(
        "/ready",
        axum::routing::get(move |q: axum::extract::Query<BTreeMap<String, String>>| {
            let ok = a2.load(Ordering::SeqCst) || q.get("name").is_some_and(|n| n.contains("-s0-"));
            ips.lock().unwrap().insert(q.get("ip").cloned().unwrap_or_default());
            async move {
                if ok {
                    axum::http::StatusCode::OK
                } else {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let srv = tokio::spawn(async move { axum::serve(listener, router).await });
    let probe = format!(
        "http = {{ url = \"http://127.0.0.1:{port}/ready?name={{name}}&ip={{ip}}\", expect_status = [200], timeout = \"2s\" }}"
    );
    rig.policy_with("web", 2, 10, &probe);
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 2)], Duration::from_secs(90)).await;
    // Slot 0 becomes ready once its probe has answered; slot 1 never does while it fails.
    let deadline = rig.deadline(30);
    while eng.handle.status.borrow().apps[0].ready < 1 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", eng.handle.status.borrow().apps);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A few more probe rounds: the failing member stays not ready.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let st = eng.handle.status.borrow().apps[0].clone();
    assert_eq!((st.members, st.ready), (2, 1), "only slot 0 answers 200: {st:?}");
    all.store(true, Ordering::SeqCst);
    let deadline = rig.deadline(30);
    while eng.handle.status.borrow().apps[0].ready < 2 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", eng.handle.status.borrow().apps);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ips = seen_ips.lock().unwrap().clone();
    assert!(ips.iter().all(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok()), "{{ip}} is the member's address: {ips:?}");
    srv.abort();
    drop(eng);
    rig.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_engine_on_the_same_host_only_observes() {
    let rig = Rig::new(SimConfig::default()).await;
    rig.policy("web", 2);
    let first = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 2)], Duration::from_secs(90)).await;
    let mut cfg = rig.engine_cfg();
    cfg.engine_id = "second/1".into();
    let second = rig.start(cfg);
    // The second one sees the holder and its plan, and never acts.
    let deadline = rig.deadline(20);
    loop {
        let st = second.handle.status.borrow().clone();
        if st.observer && st.ticks > 3 {
            assert_eq!(st.lease_holder.as_deref(), Some(format!("test/{}", rig.run).as_str()));
            assert!(st.plans.iter().any(|p| p.app == rig.app("web")), "the holder's plan: {:?}", st.plans);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{st:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    rig.policy("web", 3);
    rig.converged(&[("web", 3)], Duration::from_secs(90)).await;
    let by_second: Vec<_> =
        second.store.recent_events(1000).unwrap().into_iter().filter(|e| e.actor == "engine:second/1").collect();
    assert!(by_second.is_empty(), "the observer acted: {by_second:?}");
    // The holder goes away: the observer takes over.
    drop(first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.policy("web", 1);
    rig.converged(&[("web", 1)], Duration::from_secs(90)).await;
    let st = second.handle.status.borrow().clone();
    assert!(!st.observer, "took the lease");
    assert!(second
        .store
        .recent_events(1000)
        .unwrap()
        .iter()
        .any(|e| e.actor == "engine:second/1" && e.action == "lease"));
    drop(second);
    rig.cleanup().await;
}
