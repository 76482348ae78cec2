//! Alerts that reach people, through a webhook (a local receiver): signed with
//! HMAC-SHA256, one delivery per notification (a retry keeps its delivery id),
//! and a resolve that survives an outage of the receiver. The Alertmanager side
//! is `tests/engine_alertmanager.rs` (it needs the `prometheus-alertmanager`
//! binary).

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
use stackpilot::cloud::compute::ServerAction;
use stackpilot::domain::ServerStatus;
use stackpilot::engine::notify::{sign, NotifyConfig, ReceiverKind};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const SECRET: &str = "webhook-test-secret";

async fn until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {secs}s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_gets_signed_deduplicated_notifications_and_the_resolve_after_an_outage() {
    let Some(rig) = sim_rig("webhook", "the simulator case covers the notifier").await else { return };
    let hook = Receiver::start().await;
    // Recovery only reports here: the failure lasts until the test ends it.
    rig.policy_with("web", 1, 2, "\n[recovery]\nenabled = false\n\n[alerts]\nlabels = { team = \"shop\" }\n");
    let mut cfg = rig.engine_cfg();
    cfg.notify = Ok(NotifyConfig {
        receivers: vec![stackpilot::engine::notify::Receiver {
            name: "hook".into(),
            kind: ReceiverKind::Webhook {
                url: format!("{}/stackpilot", hook.url),
                secret: Some(stackpilot::config::Secret::new(SECRET)),
            },
            timeout: Duration::from_secs(2),
        }],
        max_backoff: chrono::Duration::seconds(2),
        ..Default::default()
    });
    let eng = rig.start(cfg);
    rig.converged(&[("web", 1)], Duration::from_secs(90)).await;
    let m = rig.members("web").await.remove(0);
    let mut ready = false;
    for _ in 0..150 {
        let s = rig.client.compute().get_server(&m.id).await.unwrap();
        if s.metadata.contains_key("stackpilot:ready") {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "the member never got its ready mark");
    rig.client.compute().action(&m.id, &ServerAction::Stop).await.unwrap();
    let firing = |r: &common::receiver::Received| {
        let v = r.json();
        v["status"] == "firing" && v["alert"]["kind"] == "unhealthy-members"
    };
    until("a firing notification", 30, || hook.accepted().iter().any(firing)).await;
    let first = hook.accepted().into_iter().find(|r| firing(r)).unwrap();
    // Signed over the exact body.
    assert_eq!(first.header("x-stackpilot-signature").unwrap(), sign(SECRET.as_bytes(), &first.body));
    assert_eq!(first.json()["alert"]["app"], rig.app("web"));
    assert_eq!(first.json()["alert"]["labels"]["team"], "shop", "the policy's [alerts] labels go with it");
    // Nothing more while it lasts (the repeat interval is an hour).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hook.accepted().iter().filter(|r| firing(r)).count(), 1, "deduplicated");
    // The receiver goes away; the member is started by hand; the alert resolves.
    hook.set_down(true);
    rig.client.compute().action(&m.id, &ServerAction::Start).await.unwrap();
    let resolved = |r: &common::receiver::Received| {
        let v = r.json();
        v["status"] == "resolved" && v["alert"]["kind"] == "unhealthy-members"
    };
    until("tries of the resolve while the receiver is down", 30, || {
        hook.all().iter().filter(|r| resolved(r) && r.status == 503).count() >= 2
    })
    .await;
    let s = rig.client.compute().get_server(&m.id).await.unwrap();
    assert_eq!(s.status, ServerStatus::Active);
    hook.set_down(false);
    until("the resolve delivered once the receiver is back", 30, || hook.accepted().iter().any(resolved)).await;
    let tries: Vec<String> = hook
        .all()
        .iter()
        .filter(|r| resolved(r))
        .map(|r| r.header("x-stackpilot-delivery").unwrap().to_string())
        .collect();
    assert!(tries.iter().all(|t| t == &tries[0]), "every try of the resolve has one delivery id: {tries:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hook.accepted().iter().filter(|r| resolved(r)).count(), 1, "delivered once");
    let ids: BTreeMap<String, usize> = hook.accepted().iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.header("x-stackpilot-delivery").unwrap().to_string()).or_default() += 1;
        m
    });
    assert!(ids.values().all(|n| *n == 1), "no delivery accepted twice: {ids:?}");
    drop(eng);
}
