//! Rolling updates against the simulator over HTTP (ENGINE-SPEC 4): a new
//! revision replaces every member without dropping below desired, a revision
//! whose members never get ready rolls back by itself, and an engine killed
//! with SIGKILL mid-rollout finishes it without a duplicate.

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
use stackpilot::domain::{Server, ServerStatus};
use stackpilot::sim::SimConfig;
use std::time::{Duration, Instant};

/// Members that serve: ACTIVE, not being removed, passed their checks once.
fn serving(ms: &[Server]) -> usize {
    ms.iter()
        .filter(|s| {
            s.status == ServerStatus::Active
                && s.metadata.get("stackpilot:state").map(String::as_str) == Some("active")
                && s.metadata.contains_key("stackpilot:ready")
        })
        .count()
}

fn revision(s: &Server) -> Option<&str> {
    s.metadata.get("stackpilot:rev").map(String::as_str)
}

/// Rewrite the policy of `short` with a text change.
fn edit(rig: &Rig, short: &str, from: &str, to: &str) {
    let p = rig.policies().join(format!("{short}.toml"));
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{from} in {text}");
    std::fs::write(&p, text.replace(from, to)).unwrap();
}

/// Wait until every member runs `rev` (and `n` of them serve), watching the
/// lowest number serving on the way. Returns (seconds, lowest serving).
async fn roll(rig: &Rig, short: &str, n: usize, rev: &str, within: Duration) -> (f64, usize) {
    let start = Instant::now();
    let mut lowest = usize::MAX;
    loop {
        let ms = rig.members(short).await;
        lowest = lowest.min(serving(&ms));
        let done = ms.len() == n && ms.iter().all(|s| revision(s) == Some(rev)) && serving(&ms) == n;
        if done {
            return (start.elapsed().as_secs_f64(), lowest);
        }
        assert!(
            start.elapsed() < within,
            "not rolled out to revision {rev} after {within:?}: {:?}\n{}",
            ms.iter().map(|s| (s.name.clone(), revision(s).map(str::to_string), s.status.clone())).collect::<Vec<_>>(),
            rig.journal(60)
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// The flavor a rollout moves to: the simulator's m1.small, or one made for the
/// case on the real services (which hold only what the suites create).
async fn second_flavor(rig: &Rig) -> String {
    if rig.side == Side::Sim {
        return "m1.small".into();
    }
    use serde_json::json;
    use stackpilot::cloud::Req;
    let name = "spe-rollout-small";
    let (v, _): (serde_json::Value, _) =
        rig.client.session.json("compute", Req::get("/flavors/detail?is_public=None")).await.unwrap();
    let have = v["flavors"].as_array().is_some_and(|a| a.iter().any(|f| f["name"] == name));
    if !have {
        let body = json!({"flavor": {"name": name, "ram": 512, "vcpus": 1, "disk": 1}});
        let _: (serde_json::Value, _) = rig.client.session.json("compute", Req::post("/flavors", body)).await.unwrap();
    }
    name.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_roll_to_a_new_flavor_without_dropping_below_desired() {
    // The demo's speed (10x) on the simulator; three members on the real services.
    let rig = Rig::at_speed(SimConfig::default(), 10.0).await;
    let n = if rig.side == Side::Real { 3 } else { 6 };
    rig.policy_with("web", n as u32, 10, "[rollout]\nmax_surge = 2\nmax_unavailable = 0\n");
    let to = second_flavor(&rig).await;
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", n)], Duration::from_secs(120)).await;
    // Every member serving (ready and recorded so) before the change.
    roll(&rig, "web", n, "1", Duration::from_secs(120)).await;
    let before: Vec<String> = rig.members("web").await.iter().map(|s| s.id.clone()).collect();
    edit(&rig, "web", "flavor = \"m1.tiny\"", &format!("flavor = \"{to}\""));
    let within = if rig.side == Side::Real { 600 } else { 180 };
    let (secs, lowest) = roll(&rig, "web", n, "2", Duration::from_secs(within)).await;
    println!("rollout of {n} members: {secs:.1} s, at least {lowest} serving throughout");
    assert!(lowest >= n, "never fewer than {n} serving; saw {lowest}");
    let after = rig.members("web").await;
    assert!(after.iter().all(|s| !before.contains(&s.id)), "every member was replaced");
    assert_well_formed(&rig.app("web"), &after);
    let ev = events(&eng.store, "rollout", &rig.app("web"));
    assert!(ev.iter().any(|e| e.reason.contains("rollout started: revision 1 → 2")), "{ev:?}");
    assert!(ev.iter().any(|e| e.reason.contains("rollout complete: revision 2 is stable")), "{ev:?}");
    if rig.side == Side::Sim {
        // The simulator counts creates per op tag; the real services do not.
        assert_no_duplicate_creates(&rig).await;
    }
    drop(eng);
    rig.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_whose_members_never_get_ready_rolls_back_by_itself() {
    let Some(rig) = sim_rig("automatic rollback", "needs the simulator's image whose cloud-init never finishes").await
    else {
        return;
    };
    rig.policy_with("web", 3, 6, "[rollout]\nmax_surge = 1\nprogress_deadline = \"15s\"\n");
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 3)], Duration::from_secs(60)).await;
    let started = Instant::now();
    edit(&rig, "web", "image = \"cirros-0.6.2-x86_64-disk\"", "image = \"cirros-0.6.2-broken-release\"");
    // It tries revision 2, misses the deadline, and comes back to revision 1.
    let s = wait_status(&eng, "the rollback", 60, |s| {
        s.alerts.iter().any(|a| a.kind == "rollout-failed" && a.is_active() && a.message.contains("revision 2 failed"))
    })
    .await;
    assert!(s.alerts.iter().any(|a| a.message.contains("no new member became ready within 15s")), "{:?}", s.alerts);
    let (secs, lowest) = roll(&rig, "web", 3, "1", Duration::from_secs(60)).await;
    println!(
        "rolled back {:.1} s after the change ({secs:.1} s after the alert), at least {lowest} serving",
        started.elapsed().as_secs_f64()
    );
    assert!(lowest >= 3, "the stable members kept serving: {lowest}");
    let ev = events(&eng.store, "rollback", &rig.app("web"));
    assert!(ev.iter().any(|e| e.reason.contains("rolling back to revision 1")), "{ev:?}");
    // The failed revision is not tried again while the policy stays as it is.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ms = rig.members("web").await;
    assert!(ms.iter().all(|s| revision(s) == Some("1")), "no new attempt at revision 2");
    // The operator fixes the policy: a new rollout to a new revision.
    edit(&rig, "web", "image = \"cirros-0.6.2-broken-release\"", "image = \"debian-12-genericcloud-amd64\"");
    edit(&rig, "web", "flavor = \"m1.tiny\"", "flavor = \"m1.small\"");
    roll(&rig, "web", 3, "3", Duration::from_secs(90)).await;
    wait_status(&eng, "the alert resolved", 20, |s| {
        !s.alerts.iter().any(|a| a.kind == "rollout-failed" && a.is_active())
    })
    .await;
    drop(eng);
    rig.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_killed_three_times_mid_rollout_finishes_it_without_duplicates() {
    let Some(rig) =
        sim_rig("kill -9 mid-rollout", "four members rolled three times take too long on two shared cores").await
    else {
        return;
    };
    rig.policy_with("web", 4, 8, "[rollout]\nmax_surge = 2\n");
    let state = rig.dir.path().join("engine-state");
    let mut child = spawn_engine(&rig, &state, "engine-1.log");
    rig.converged(&[("web", 4)], Duration::from_secs(90)).await;
    edit(&rig, "web", "flavor = \"m1.tiny\"", "flavor = \"m1.small\"");
    let mut lowest = usize::MAX;
    for k in 0..3 {
        // Let the rollout move, then kill the engine in the middle of it.
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(1200 + 400 * k) {
            lowest = lowest.min(serving(&rig.members("web").await));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        child.proc.kill().unwrap(); // SIGKILL
        child.proc.wait().unwrap();
        let ms = rig.members("web").await;
        println!(
            "killed with {} members ({} at revision 2)",
            ms.len(),
            ms.iter().filter(|s| revision(s) == Some("2")).count()
        );
        child = spawn_engine(&rig, &state, &format!("engine-{}.log", k + 2));
    }
    let (_, low) = roll(&rig, "web", 4, "2", Duration::from_secs(120)).await;
    lowest = lowest.min(low);
    println!("after three kills: rolled out, at least {lowest} serving throughout");
    assert!(lowest >= 4, "never below desired - max_unavailable (4): {lowest}");
    assert_no_duplicate_creates(&rig).await;
    assert_well_formed(&rig.app("web"), &rig.members("web").await);
    child.proc.kill().unwrap();
    rig.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_pauses_resumes_and_undoes_through_the_store_and_the_cli() {
    use stackpilot::engine::operate;
    use stackpilot::engine::rollout::Command;
    let Some(rig) =
        sim_rig("operator pause, resume, undo", "the simulator case covers it; the real one runs the flavor rollout")
            .await
    else {
        return;
    };
    // One create per step and a checkpoint at 50 % that waits for an operator.
    rig.policy_with("web", 4, 8, "[rollout]\nmax_surge = 1\nbatch_size = 1\ncheckpoints = [50]\n");
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 4)], Duration::from_secs(90)).await;
    edit(&rig, "web", "flavor = \"m1.tiny\"", "flavor = \"m1.small\"");
    let app = rig.app("web");
    let s = wait_status(&eng, "the checkpoint", 60, |s| {
        s.apps.iter().any(|a| a.app == app && a.rollout.as_ref().is_some_and(|r| r.phase.contains("checkpoint 50 %")))
    })
    .await;
    assert!(s
        .plans
        .iter()
        .any(|p| p.app == app && p.lines.iter().any(|x| x.starts_with("rollout revision 1 → revision 2: paused"))));
    // The CLI says where it stands (reading the engine's store).
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_stackpilot"))
            .args(args)
            .env("STACKPILOT_STATE_DIR", rig.state())
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    let (ok, text) = cli(&["rollout", "status", &app]);
    assert!(ok, "{text}");
    assert!(text.contains("stable revision  1") && text.contains("paused: checkpoint 50 %"), "{text}");
    let (ok, text) = cli(&["--read-only", "rollout", "resume", &app]);
    assert!(!ok && text.contains("read-only"), "{text}");
    // Resumed from the CLI: it completes.
    let (ok, text) = cli(&["rollout", "resume", &app]);
    assert!(ok && text.contains("applies it on its next tick"), "{text}");
    roll(&rig, "web", 4, "2", Duration::from_secs(90)).await;
    // Undo to revision 1 (through the store, as the console does): back to the old flavor.
    let k = operate::find(&eng.store, &app, None).unwrap();
    let msg =
        operate::request(&eng.store, &k, Command::Undo { revision: 1 }, "operator:test", true, chrono::Utc::now());
    assert!(msg.is_ok(), "{msg:?}");
    let e = operate::request(&eng.store, &k, Command::Undo { revision: 9 }, "operator:test", true, chrono::Utc::now());
    assert!(e.unwrap_err().to_string().contains("revision 9 of"));
    roll(&rig, "web", 4, "1", Duration::from_secs(90)).await;
    let ev = events(&eng.store, "rollout", &app);
    assert!(ev.iter().any(|e| e.reason.contains("undo: back to revision 1")), "{ev:?}");
    drop(eng);
    rig.cleanup().await;
}

/// The user data a member was created with (Nova's admin attribute, base64).
fn user_data_of(s: &Server) -> String {
    use base64::Engine;
    let raw: serde_json::Value = serde_json::from_str(s.raw.as_deref().expect("the raw server")).unwrap();
    let b64 = raw["OS-EXT-SRV-ATTR:user_data"].as_str().expect("user data");
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_stages_boot_every_member_and_a_stage_change_rolls_out() {
    let Some(rig) = sim_rig("deploy stages", "the fake virt driver boots no guest to run them").await else {
        return;
    };
    let stages = "[environment]\npackages = [\"nginx\"]\nvariables = { MODE = \"one\" }\n\n[application]\nconfig = [{ path = \"/etc/web.conf\", content = \"slot={slot} ip={ip}\\n\" }]\nstart = \"/usr/sbin/nginx -g 'daemon off;'\"\n";
    rig.policy_with("web", 2, 4, stages);
    // Stages and user_data do not mix: the escape hatch goes.
    edit(&rig, "web", "user_data = \"#cloud-config\\nruncmd: [echo {app} {revision} {slot}]\\n\"\n", "");
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 2)], Duration::from_secs(90)).await;
    let file = rig.policies().join("web.toml");
    let p = stackpilot::policy::parse(&std::fs::read_to_string(&file).unwrap(), &file).unwrap();
    let template = p.spec.effective_user_data().unwrap();
    for s in rig.members("web").await {
        let slot: u32 = s.metadata["stackpilot:slot"].parse().unwrap();
        let ud = user_data_of(&s);
        assert_eq!(ud, stackpilot::policy::render_user_data(&template, &rig.app("web"), 1, slot, &rig.cloud.name));
        assert!(ud.starts_with("#cloud-config\n") && ud.contains(&format!("slot={slot} ip=@STACKPILOT_IP@")), "{ud}");
        serde_yaml::from_str::<serde_yaml::Value>(&ud).expect("valid YAML");
    }
    // A change of a stage is a new revision, rolled out.
    edit(&rig, "web", "MODE = \"one\"", "MODE = \"two\"");
    roll(&rig, "web", 2, "2", Duration::from_secs(90)).await;
    assert!(rig.members("web").await.iter().all(|s| user_data_of(s).contains("MODE='two'")));
    drop(eng);
    rig.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_without_quota_holds_and_never_deletes_old_members() {
    use serde_json::json;
    let Some(rig) =
        sim_rig("quota mid-rollout", "lowering the shared real project's quota would disturb other cases").await
    else {
        return;
    };
    let h = rig.sim.as_ref().unwrap();
    rig.policy_with("web", 4, 8, "[rollout]\nmax_surge = 2\n");
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 4)], Duration::from_secs(90)).await;
    roll(&rig, "web", 4, "1", Duration::from_secs(60)).await;
    // No room for a single surge member: the quota is exactly what runs.
    common::control(h, "quota", json!({"project": "admin", "instances": 4})).await;
    edit(&rig, "web", "flavor = \"m1.tiny\"", "flavor = \"m1.small\"");
    let start = Instant::now();
    let mut lowest = usize::MAX;
    while start.elapsed() < Duration::from_secs(8) {
        let ms = rig.members("web").await;
        lowest = lowest.min(serving(&ms));
        assert!(ms.iter().all(|s| revision(s) == Some("1")), "nothing replaced without room");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(lowest, 4, "every old member kept serving");
    // Room again: the rollout goes on by itself.
    common::control(h, "quota", json!({"project": "admin", "instances": 20})).await;
    let (_, low) = roll(&rig, "web", 4, "2", Duration::from_secs(120)).await;
    assert!(low >= 4, "{low}");
    drop(eng);
    rig.cleanup().await;
}
