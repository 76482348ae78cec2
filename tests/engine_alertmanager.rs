//! The engine's alerts through a real Alertmanager (Debian's
//! `prometheus-alertmanager`; `.ci/run` installs it and runs this target with
//! `cargo test --test engine_alertmanager`; `cargo test` leaves it out): an
//! application's failure fires, its alerts arrive grouped at Alertmanager's own
//! receiver, resolve, and a silence made the way the console makes it
//! suppresses the repeat.

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
use common::receiver::Receiver;
use common::rig::*;
use serde_json::Value;
use stackpilot::cloud::compute::ServerAction;
use stackpilot::engine::notify::{NotifyConfig, ReceiverKind};
use std::time::{Duration, Instant};

struct Alertmanager {
    proc: std::process::Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

fn binary() -> &'static str {
    ["prometheus-alertmanager", "alertmanager"]
        .into_iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok())
        .expect("the Alertmanager binary (apt install prometheus-alertmanager; .ci/run installs it)")
}

/// An Alertmanager that groups by app, notifies `hook` (resolves too) and
/// repeats every 2 s.
async fn alertmanager(hook: &str) -> Alertmanager {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "route:\n  receiver: hook\n  group_by: [app]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 2s\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {hook}/am\n        send_resolved: true\n"
    );
    std::fs::write(dir.path().join("am.yml"), cfg).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let proc = std::process::Command::new(binary())
        .arg(format!("--config.file={}", dir.path().join("am.yml").display()))
        .arg(format!("--storage.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
        .spawn()
        .unwrap();
    let am = Alertmanager { proc, url: format!("http://127.0.0.1:{port}"), dir };
    for _ in 0..100 {
        if reqwest::get(format!("{}/-/ready", am.url)).await.is_ok_and(|r| r.status().is_success()) {
            return am;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("alertmanager did not start: {}", std::fs::read_to_string(am.dir.path().join("log")).unwrap_or_default());
}

async fn until<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs}s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Alertmanager's notifications (webhook v4 documents) for an app.
fn notes(hook: &Receiver, app: &str) -> Vec<Value> {
    hook.accepted().iter().map(|r| r.json()).filter(|v| v["groupLabels"]["app"] == app).collect()
}

async fn am_alerts(am: &Alertmanager) -> Vec<Value> {
    reqwest::get(format!("{}/api/v2/alerts", am.url)).await.unwrap().json::<Vec<Value>>().await.unwrap()
}

async fn ready(rig: &Rig, short: &str) -> Vec<stackpilot::domain::Server> {
    until("members marked ready", 60, async || {
        let ms = rig.members(short).await;
        ms.iter().all(|s| s.metadata.contains_key("stackpilot:ready")).then_some(ms)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_group_resolve_and_a_console_silence_suppresses_the_repeat() {
    let Some(rig) = sim_rig("alertmanager", "the simulator case covers the notifier").await else { return };
    let hook = Receiver::start().await;
    let am = alertmanager(&hook.url).await;
    // Recovery only reports: the failures last until the test ends them.
    rig.policy_with("web", 2, 3, "\n[recovery]\nenabled = false\n");
    rig.policy_with("api", 1, 2, "\n[recovery]\nenabled = false\n");
    let mut cfg = rig.engine_cfg();
    cfg.notify = Ok(NotifyConfig {
        receivers: vec![stackpilot::engine::notify::Receiver {
            name: "am".into(),
            kind: ReceiverKind::Alertmanager { url: am.url.clone() },
            timeout: Duration::from_secs(3),
        }],
        resend: chrono::Duration::seconds(2),
        ..Default::default()
    });
    let eng = rig.start(cfg);
    rig.converged(&[("web", 2), ("api", 1)], Duration::from_secs(90)).await;
    let web = ready(&rig, "web").await;
    // Both web members stop: too many failing at once, recovery pauses (and says so).
    for m in &web {
        rig.client.compute().action(&m.id, &ServerAction::Stop).await.unwrap();
    }
    let app = rig.app("web");
    let grouped = until("one notification grouping web's alerts", 60, async || {
        notes(&hook, &app).into_iter().find(|n| {
            let names: Vec<&str> =
                n["alerts"].as_array().unwrap().iter().filter_map(|a| a["labels"]["alertname"].as_str()).collect();
            n["status"] == "firing" && names.contains(&"unhealthy-members") && names.contains(&"recovery-paused")
        })
    })
    .await;
    println!("grouped: {} alerts in one notification", grouped["alerts"].as_array().unwrap().len());
    assert_eq!(grouped["alerts"][0]["labels"]["source"], "stackpilot");
    // Started by hand: the alerts resolve, and Alertmanager says so.
    for m in &web {
        rig.client.compute().action(&m.id, &ServerAction::Start).await.unwrap();
    }
    until("a resolved notification for web", 60, async || {
        notes(&hook, &app).into_iter().find(|n| n["status"] == "resolved")
    })
    .await;

    // api's member stops; its alert reaches Alertmanager and repeats every 2 s ...
    let api = rig.app("api");
    let m = ready(&rig, "api").await.remove(0);
    rig.client.compute().action(&m.id, &ServerAction::Stop).await.unwrap();
    until("two notifications for api (a repeat)", 60, async || (notes(&hook, &api).len() >= 2).then_some(())).await;
    // ... until it is silenced the way the console's `s` does it.
    let alert = until("the alert in the engine", 30, async || {
        eng.handle
            .status
            .borrow()
            .alerts
            .iter()
            .find(|a| a.kind == "unhealthy-members" && a.app.as_deref() == Some(api.as_str()) && a.is_active())
            .cloned()
    })
    .await;
    let id = stackpilot::engine::notify::silence_in_alertmanager(
        &am.url,
        &alert,
        chrono::Duration::minutes(10),
        "operator",
        "silenced from the console",
    )
    .await
    .unwrap();
    assert!(!id.is_empty());
    until("the alert suppressed in Alertmanager", 30, async || {
        am_alerts(&am).await.into_iter().find(|a| a["labels"]["app"] == api && a["status"]["state"] == "suppressed")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = notes(&hook, &api).len();
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(notes(&hook, &api).len(), before, "no repeat while silenced");
    drop(eng);
}
