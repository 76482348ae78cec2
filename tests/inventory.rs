//! The inventory against the simulator: incremental refresh, deletions, failures
//! that keep data on screen, unreachable clouds, metrics and applications.

mod common;
use common::*;
use serde_json::json;
use stackpilot::config::settings::Dur;
use stackpilot::inventory::{Inventory, InventoryConfig, Snapshot};
use stackpilot::sim::{SimConfig, WorldSource};
use std::sync::Arc;
use std::time::Duration;

fn fast_cfg() -> InventoryConfig {
    let mut c = inventory_every(300);
    c.refresh.servers = Dur(Duration::from_millis(150));
    c
}

async fn wait_snap<F: Fn(&Snapshot) -> bool>(inv: &Inventory, what: &str, f: F) -> Arc<Snapshot> {
    let mut rx = inv.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        {
            let s = rx.borrow_and_update().clone();
            if f(&s) {
                return s;
            }
        }
        if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
            panic!("timed out waiting for {what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_refresh_costs_requests_per_change_not_per_server() {
    let h = sim_fast().await;
    control(&h, "seed", json!({"count": 2500, "prefix": "inv"})).await;
    let c = client(&h);
    let inv = Inventory::start(vec![c.clone()], fast_cfg());
    wait_snap(&inv, "2500 servers", |s| s.clouds[0].servers.len() == 2500).await;
    // A deletion is seen without a full resync, and moves the mark past the seeding.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let victim = inv.subscribe().borrow().clouds[0].servers[0].id.clone();
    c.compute().delete_server(&victim).await.unwrap();
    let s = wait_snap(&inv, "the deletion", |s| s.clouds[0].servers.len() == 2499).await;
    assert!(s.clouds[0].server(&victim).is_none());
    // Idle polls now cost one request each, whatever the number of servers.
    let before = s.clouds[0].servers_poll();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let p = inv.subscribe().borrow().clouds[0].servers_poll();
    assert!(p.last_ok > before.last_ok, "polling goes on");
    assert_eq!(p.last_requests, 1, "an incremental poll of an idle cloud is one request");
    control(&h, "seed", json!({"count": 1, "prefix": "late"})).await;
    wait_snap(&inv, "the new server", |s| s.clouds[0].servers.iter().any(|x| x.display_name() == "late-00000")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_back_off_keep_the_data_and_flag_unreachable_clouds() {
    let h = sim_fast().await;
    control(&h, "seed", json!({"count": 3, "prefix": "keep"})).await;
    let inv = Inventory::start(vec![client(&h)], fast_cfg());
    wait_snap(&inv, "servers", |s| s.clouds[0].servers.len() == 3).await;
    control(&h, "faults", json!({"service": "compute", "error_rate": 1.0})).await;
    let s = wait_snap(&inv, "failing polls", |s| s.clouds[0].servers_poll().failures >= 2).await;
    let p = s.clouds[0].servers_poll();
    assert_eq!(s.clouds[0].servers.len(), 3, "data stays while polls fail");
    assert!(p.last_error.as_deref().unwrap().contains("503"), "{:?}", p.last_error);
    assert!(!p.unreachable, "a 503 is an answer");
    h.shutdown().await;
    let s = wait_snap(&inv, "unreachable", |s| s.clouds[0].unreachable()).await;
    assert_eq!(s.clouds[0].servers.len(), 3);
    assert!(s.alerts.iter().any(|a| a.key.ends_with(":unreachable")), "{:?}", s.alerts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_fill_series_and_apps_aggregate_them() {
    let h = sim(SimConfig { speed: 600.0, world: WorldSource::Demo, ..Default::default() }).await;
    let c = stackpilot::cloud::Client::new(password_cloud(&h, "demo", "demo", "demo")).unwrap();
    for app in ["web", "api", "worker"] {
        let seed =
            json!({"count": 1, "prefix": app, "app": app, "metrics": true, "project": "demo", "flavor": "m1.small"});
        control(&h, "seed", seed).await;
    }
    let mut cfg = fast_cfg();
    cfg.metrics.retention = Dur(Duration::from_secs(7200));
    let inv = Inventory::start(vec![c], cfg);
    let s = wait_snap(&inv, "metrics for app members", |s| {
        let cl = &s.clouds[0];
        cl.apps.len() == 3 && cl.apps.iter().all(|a| a.cpu.len() >= 3)
    })
    .await;
    let cl = &s.clouds[0];
    let worker = cl.apps.iter().find(|a| a.name == "worker").unwrap();
    assert_eq!((worker.total(), worker.active), (1, 1));
    let cpu = worker.cpu.last().unwrap().1;
    assert!((60.0..=95.0).contains(&cpu), "worker carries ~80 %: {cpu}");
    let m = cl.metrics.get(&worker.members[0]).unwrap();
    assert!(!m.mem.is_empty() && !m.net_in.is_empty());
    assert!(m.cpu.len() <= m.cpu.capacity());
    assert!(cl.flavors.len() >= 3 && !cl.images.is_empty() && !cl.volumes.is_empty());
    assert!(cl.limits.is_some());
    assert_eq!(cl.scope.project.as_deref(), Some("demo"));
}
