//! The inventory against the simulator: incremental refresh, deletions, failures
//! that keep data on screen, unreachable clouds, metrics and applications.

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
use common::*;
use serde_json::json;
use stackpilot::config::settings::Dur;
use stackpilot::inventory::{Inventory, InventoryConfig, Kind, Snapshot};
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
    let s = wait_snap(&inv, "the alert", |s| s.alerts.iter().any(|a| a.key == "sim:api:compute")).await;
    let p = s.clouds[0].servers_poll();
    assert_eq!(s.clouds[0].servers.len(), 3, "data stays while polls fail");
    assert!(p.last_error.as_deref().unwrap().contains("503"), "{:?}", p.last_error);
    assert!(!p.unreachable, "a 503 is an answer");
    let a = s.alerts.iter().find(|a| a.key == "sim:api:compute").expect("an alert for the failing service");
    assert!(a.message.contains("compute API of sim fails") && a.message.contains("503"), "{a:?}");
    h.shutdown().await;
    let s = wait_snap(&inv, "unreachable", |s| s.clouds[0].unreachable()).await;
    assert_eq!(s.clouds[0].servers.len(), 3);
    let b = s.alerts.iter().find(|a| a.key == "sim:api:compute").expect("still alerted");
    assert_eq!(b.since, a.since, "one alert for the whole outage, SINCE from its start");
    assert!(b.message.contains("connection"), "{b:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_the_data_recovers_by_itself_and_the_alert_resolves() {
    let h = sim_fast().await;
    control(&h, "seed", json!({"count": 2, "prefix": "up"})).await;
    // Flavors fail from the start and then wait out a long backoff: they must come
    // back with the servers, not a backoff later.
    control(&h, "faults", json!({"service": "compute", "error_rate": 1.0})).await;
    let mut cfg = fast_cfg();
    cfg.refresh.flavors = Dur(Duration::from_secs(3600));
    cfg.refresh.max_backoff = Dur(Duration::from_secs(120));
    let inv = Inventory::start(vec![client(&h)], cfg);
    let s = wait_snap(&inv, "the outage alert", |s| s.alerts.iter().any(|a| a.key == "sim:api:compute")).await;
    let since = s.alerts.iter().find(|a| a.key == "sim:api:compute").map(|a| a.since);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    common::control_request(&h, reqwest::Method::DELETE, "faults").send().await.unwrap();
    let t0 = std::time::Instant::now();
    wait_snap(&inv, "fresh servers and flavors", |s| {
        let c = &s.clouds[0];
        c.servers.len() == 2 && c.polls.get(&Kind::Flavors).is_some_and(|p| p.last_ok.is_some())
    })
    .await;
    let took = t0.elapsed();
    println!("data back {:.1}s after the outage ended", took.as_secs_f64());
    assert!(took < Duration::from_secs(10), "recovered by itself, not after the backoff: {took:?}");
    let s = wait_snap(&inv, "the alert resolved", |s| {
        s.alerts.iter().any(|a| a.key == "sim:api:compute" && a.resolved_at.is_some())
    })
    .await;
    let a = s.alerts.iter().find(|a| a.key == "sim:api:compute").unwrap();
    assert_eq!(Some(a.since), since, "resolved with the SINCE it started with");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_record_that_does_not_decode_stays_with_a_placeholder_and_an_alert() {
    let h = sim_fast().await;
    let ids = control(&h, "seed", json!({"count": 3, "prefix": "odd"})).await;
    let bad = ids["ids"][0].as_str().unwrap().to_string();
    let inv = Inventory::start(vec![client(&h)], fast_cfg());
    wait_snap(&inv, "servers", |s| s.clouds[0].servers.len() == 3).await;
    control(&h, &format!("servers/{bad}/corrupt"), json!({"fields": {"flavor": 5}})).await;
    let s = wait_snap(&inv, "the undecodable record", |s| !s.clouds[0].servers_poll().undecodable.is_empty()).await;
    let c = &s.clouds[0];
    assert_eq!(c.servers.len(), 3, "the server does not vanish");
    let kept = c.server(&bad).unwrap();
    assert!(kept.decode_error.is_some() && kept.display_name().starts_with("odd-"), "the last good record: {kept:?}");
    assert!(c.servers_poll().undecodable[0].starts_with(&bad), "{:?}", c.servers_poll().undecodable);
    assert!(s.alerts.iter().any(|a| a.kind == "undecodable"), "{:?}", s.alerts);
    // Another server changes: incremental listings no longer carry the broken
    // one, and it stays undecodable all the same.
    let other = ids["ids"][1].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    control(&h, &format!("servers/{other}/state"), json!({"status": "SHUTOFF"})).await;
    wait_snap(&inv, "the other change", |s| {
        s.clouds[0].server(&other).is_some_and(|x| x.status == stackpilot::domain::ServerStatus::Shutoff)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let s = inv.subscribe().borrow().clone();
    assert_eq!(s.clouds[0].servers_poll().undecodable.len(), 1, "still known undecodable");
    assert!(s.clouds[0].server(&bad).is_some_and(|x| x.decode_error.is_some()));
    control(&h, &format!("servers/{bad}/corrupt"), json!({"fields": {}})).await;
    wait_snap(&inv, "the record mended", |s| {
        s.clouds[0].servers_poll().undecodable.is_empty()
            && !s.alerts.iter().any(|a| a.kind == "undecodable" && a.is_active())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_fill_series_and_apps_aggregate_them() {
    let h = sim(SimConfig { speed: 600.0, world: WorldSource::Demo, incidents: false, ..Default::default() }).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_raise_one_auth_alert_not_an_outage() {
    let h = sim_fast().await;
    let c = stackpilot::cloud::Client::new(password_cloud(&h, "admin", "not-the-password", "admin")).unwrap();
    let inv = Inventory::start(vec![c], fast_cfg());
    let s = wait_snap(&inv, "the auth alert", |s| s.alerts.iter().any(|a| a.kind == "auth-failed")).await;
    let a = s.alerts.iter().find(|a| a.kind == "auth-failed").unwrap();
    assert!(a.message.contains("refuses the credentials") && a.message.contains("clouds.yaml"), "{a:?}");
    assert!(!s.alerts.iter().any(|a| a.kind == "api-unreachable"), "refused is not unreachable: {:?}", s.alerts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_fails_a_third_of_its_requests_raises_no_alert_that_comes_and_goes() {
    let h = sim_fast().await;
    control(&h, "seed", json!({"count": 2, "prefix": "flaky"})).await;
    control(&h, "faults", json!({"service": "compute", "error_rate": 0.3})).await;
    let inv = Inventory::start(vec![client(&h)], fast_cfg());
    let mut rx = inv.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let mut seen = 0;
    while tokio::time::timeout_at(deadline, rx.changed()).await.is_ok_and(|r| r.is_ok()) {
        let s = rx.borrow_and_update().clone();
        seen += s.alerts.iter().filter(|a| a.kind == "api-unreachable").count();
    }
    let failures: u32 = inv.subscribe().borrow().clouds[0].polls.values().map(|p| p.failures).sum();
    println!("{failures} failing polls at the end; {seen} snapshots with an unreachable alert");
    assert_eq!(seen, 0, "a third of the requests failing is not an outage");
}

/// A simulator starts with the last hour of its workload: the first metrics read
/// after start draws an hour of a server's CPU, not one point, and the server
/// was there for all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_metrics_read_after_start_has_an_hour_of_history() {
    let h = sim(SimConfig { world: WorldSource::Demo, incidents: false, ..Default::default() }).await;
    let c = stackpilot::cloud::Client::new(password_cloud(&h, "demo", "demo", "demo")).unwrap();
    let inv = Inventory::start(vec![c], fast_cfg());
    let s = wait_snap(&inv, "the first metrics read", |s| {
        s.clouds[0].polls.get(&Kind::Metrics).is_some_and(|p| p.last_ok.is_some())
    })
    .await;
    let cl = &s.clouds[0];
    let bastion = cl.servers.iter().find(|x| x.display_name() == "bastion").unwrap();
    let cpu = &cl.metrics.get(&bastion.id).expect("the bastion's metrics").cpu;
    let first = cpu.iter().next().expect("points").0;
    let last = cpu.last_time().unwrap();
    assert!(last - first >= 55 * 60, "an hour of CPU, got {} s in {} points", last - first, cpu.len());
    assert!(cpu.len() >= 50, "a point a minute: {}", cpu.len());
    let created = bastion.created.unwrap().timestamp();
    assert!(created <= first, "no measure before the server existed: created {created}, first {first}");
}

/// Ages are measured on the cloud's clock: a simulator at 20× is soon a minute
/// ahead of ours, and the snapshot follows its clock (its `Date` header), so a
/// server it just created is seconds old, not "in the future".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ages_are_measured_on_the_clouds_clock() {
    let h = sim(SimConfig { speed: 20.0, world: WorldSource::Demo, incidents: false, ..Default::default() }).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let seed = json!({"count": 1, "prefix": "late", "metrics": false, "project": "demo", "flavor": "m1.small"});
    control(&h, "seed", seed).await;
    let c = stackpilot::cloud::Client::new(password_cloud(&h, "demo", "demo", "demo")).unwrap();
    let inv = Inventory::start(vec![c], fast_cfg());
    let s = wait_snap(&inv, "the seeded server", |s| {
        s.clouds[0].servers.iter().any(|x| x.display_name().starts_with("late-"))
    })
    .await;
    let cl = &s.clouds[0];
    let now = chrono::Utc::now();
    let ahead = cl.clock_offset().num_seconds();
    assert!((50..=200).contains(&ahead), "the simulated clock is ~75 s ahead of ours, measured {ahead} s");
    let drift = (cl.cloud_now(now) - h.now()).num_seconds().abs();
    assert!(drift <= 20, "the snapshot's idea of the cloud's time is {drift} s off");
    let late = cl.servers.iter().find(|x| x.display_name().starts_with("late-")).unwrap();
    let created = late.created.unwrap();
    assert!(created > now, "created on the simulated clock, ahead of ours");
    let age = stackpilot::domain::time::cloud_age(now, cl.clock_offset(), created);
    assert!((0..=60).contains(&age), "seconds old on the cloud's clock: {age}");
}

/// A poll that brings no change publishes the very same server list (the
/// console sees there is nothing to compute or draw again); a change read
/// incrementally replaces that one server, and the servers the cloud did not
/// report stay exactly as they were (an absence is never a deletion).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_without_change_publishes_the_same_list_and_keeps_unreported_servers() {
    let h = sim_fast().await;
    control(&h, "seed", json!({"count": 50, "prefix": "idle"})).await;
    let c = client(&h);
    let inv = Inventory::start(vec![c.clone()], fast_cfg());
    let first = wait_snap(&inv, "50 servers", |s| s.clouds[0].servers.len() == 50).await;
    let t0 = first.clouds[0].servers_poll().last_ok.unwrap();
    let later = wait_snap(&inv, "three more polls", |s| {
        s.clouds[0].servers_poll().last_ok.is_some_and(|t| t > t0 + chrono::Duration::milliseconds(400))
    })
    .await;
    assert!(Arc::ptr_eq(&first.clouds[0].servers, &later.clouds[0].servers), "the same list");

    let victim = later.clouds[0].servers[7].id.clone();
    c.compute().action(&victim, &stackpilot::cloud::compute::ServerAction::Stop).await.unwrap();
    let s = wait_snap(&inv, "the stop", |s| {
        s.clouds[0].server(&victim).is_some_and(|x| x.status == stackpilot::domain::ServerStatus::Shutoff)
    })
    .await;
    assert_eq!(s.clouds[0].servers.len(), 50);
    for (a, b) in later.clouds[0].servers.iter().zip(s.clouds[0].servers.iter()) {
        assert_eq!(a.id, b.id);
        if a.id != victim {
            assert!(Arc::ptr_eq(a, b), "{} is kept as it was", a.display_name());
        }
    }
}
