//! The simulator behaves like a cloud, seen through the client over HTTP:
//! lifecycles, quotas, capacity, faults, volumes and backups, metrics that follow
//! the workload, persistence.

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
use stackpilot::cloud::compute::{CreateServer, NetworkSpec, RebootKind, ServerAction};
use stackpilot::cloud::volume::CreateBackup;
use stackpilot::cloud::{Client, ErrorKind};
use stackpilot::domain::ServerStatus;
use stackpilot::sim::{SimConfig, WorldSource};
use std::time::Duration;

async fn ids(c: &Client) -> (String, String) {
    let img = c
        .image()
        .list_images()
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.name.as_deref() == Some("cirros-0.6.2-x86_64-disk"))
        .unwrap()
        .id;
    let net = c.network().list_networks().await.unwrap().into_iter().find(|n| n.name == "private").unwrap().id;
    (img, net)
}

fn spec(name: &str, img: &str, net: &str) -> CreateServer {
    CreateServer {
        name: name.into(),
        image_id: Some(img.into()),
        flavor_id: "1".into(),
        networks: vec![NetworkSpec::Uuid(net.into())],
        user_data: Some("#cloud-config\nruncmd: [echo hello]\n".into()),
        metadata: [("stackpilot:app".to_string(), "t".to_string())].into(),
        tags: vec!["stackpilot-op-t1".into()],
        ..Default::default()
    }
}

async fn wait_status(c: &Client, id: &str, want: ServerStatus) -> stackpilot::domain::Server {
    eventually(20, &format!("{id} to be {want}"), || {
        let c = c.clone();
        let want = want.clone();
        async move { c.compute().get_server(id).await.ok().filter(|s| s.status == want) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_lifecycle_build_active_actions_delete() {
    let h = sim_fast().await;
    let c = client(&h);
    let (img, net) = ids(&c).await;
    let created = c.compute().create_server(&spec("life", &img, &net)).await.unwrap();
    assert!(created.request_id.is_some());
    let s = c.compute().get_server(&created.id).await.unwrap();
    assert_eq!(s.status, ServerStatus::Build);
    assert_eq!(s.tags, vec!["stackpilot-op-t1"], "tags set at birth");
    assert_eq!(s.app(), Some("t"));
    // Like Nova, metadata changes wait for the server to be at rest.
    let item: std::collections::BTreeMap<String, String> = [("k".to_string(), "v".to_string())].into();
    let e = c.compute().set_metadata(&created.id, &item).await.unwrap_err();
    assert_eq!(e.kind, stackpilot::cloud::ErrorKind::Conflict);
    assert!(e.message.contains("Cannot 'update metadata' instance") && e.message.contains("vm_state building"), "{e}");
    let s = wait_status(&c, &created.id, ServerStatus::Active).await;
    c.compute().set_metadata(&created.id, &item).await.unwrap();
    assert!(s.primary_ip().unwrap().starts_with("10.0.0."));
    assert_eq!(s.flavor.vcpus, Some(1), "embedded flavor at 2.96");
    let log = eventually(20, "cloud-init to finish", || {
        let c = c.clone();
        let id = created.id.clone();
        async move {
            c.compute().console_output(&id, Some(5)).await.ok().filter(|l| l.contains("Cloud-init v. 23.4 finished"))
        }
    })
    .await;
    assert!(log.lines().count() <= 5, "length is honoured");
    assert!(c.compute().console_output(&created.id, None).await.unwrap().contains("user-data: runcmd: [echo hello]"));

    // A soft reboot of a SHUTOFF server is refused with Nova's 409.
    c.compute().action(&created.id, &ServerAction::Stop).await.unwrap();
    wait_status(&c, &created.id, ServerStatus::Shutoff).await;
    let e = c.compute().action(&created.id, &ServerAction::Reboot(RebootKind::Soft)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(e.message.contains("while it is in vm_state stopped"), "{e}");
    c.compute().action(&created.id, &ServerAction::Start).await.unwrap();
    wait_status(&c, &created.id, ServerStatus::Active).await;
    c.compute().action(&created.id, &ServerAction::Reboot(RebootKind::Hard)).await.unwrap();
    assert_eq!(c.compute().get_server(&created.id).await.unwrap().status, ServerStatus::HardReboot);
    wait_status(&c, &created.id, ServerStatus::Active).await;
    c.compute()
        .action(&created.id, &ServerAction::Rebuild { image_id: img.clone(), user_data: None, metadata: None })
        .await
        .unwrap();
    assert_eq!(c.compute().get_server(&created.id).await.unwrap().status, ServerStatus::Rebuild);
    wait_status(&c, &created.id, ServerStatus::Active).await;

    c.compute().delete_server(&created.id).await.unwrap();
    eventually(20, "the server to be gone", || {
        let c = c.clone();
        let id = created.id.clone();
        async move { matches!(c.compute().get_server(&id).await, Err(e) if e.kind == ErrorKind::NotFound).then_some(()) }
    })
    .await;
    let e = c.compute().get_server(&created.id).await.unwrap_err();
    assert!(e.message.contains("could not be found") && e.request_id.is_some(), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_and_capacity_limits() {
    let h = sim_fast().await;
    let c = client(&h);
    let (img, net) = ids(&c).await;
    let project = {
        c.compute().list_flavors().await.unwrap();
        c.session.current_token().unwrap().project_id.clone().unwrap()
    };
    c.compute().update_quota(&project, &[("instances".to_string(), 1i64)].into()).await.unwrap();
    c.compute().create_server(&spec("q1", &img, &net)).await.unwrap();
    let e = c.compute().create_server(&spec("q2", &img, &net)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::QuotaExceeded);
    assert_eq!(e.status, Some(403));
    assert_eq!(e.message, "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances");
    let limits = c.compute().limits().await.unwrap();
    assert_eq!((limits.max_instances, limits.instances_used), (Some(1), 1));
    assert_eq!(limits.headroom(1, 512), Some(0));

    c.compute().update_quota(&project, &[("instances".to_string(), 10i64)].into()).await.unwrap();
    control(&h, "capacity", json!({"host_vcpus": 1})).await;
    let id = c.compute().create_server(&spec("nohost", &img, &net)).await.unwrap().id;
    let s = wait_status(&c, &id, ServerStatus::Error).await;
    let f = s.fault.unwrap();
    assert_eq!(f.code, Some(500));
    assert!(f.message.starts_with("No valid host was found"), "{}", f.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_reach_the_client_classified() {
    let h = sim_fast().await;
    let c = Client::with_timeout(admin_cloud(&h), Duration::from_millis(800)).unwrap();
    let (img, net) = ids(&c).await;
    c.compute().list_flavors().await.unwrap(); // microversion negotiated before the faults

    control(&h, "faults", json!({"service": "compute", "error_rate": 1.0})).await;
    let e = c.compute().list_flavors().await.unwrap_err();
    assert_eq!((e.kind, e.status), (ErrorKind::Transient, Some(503)));
    assert!(c.image().list_images().await.is_ok(), "other services are untouched");

    // A create that Nova carries out but answers too late: the server exists.
    control(&h, "faults", json!({"service": "compute", "timeout_rate": 1.0, "timeout_ms": 3000})).await;
    let e = c.compute().create_server(&spec("late", &img, &net)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient);
    assert!(e.message.contains("timed out"), "{e}");
    let stats = control_get(&h, "stats").await;
    assert_eq!(stats["creates_by_op_tag"]["stackpilot-op-t1"], 1, "accepted once");

    control(&h, "faults", json!({"service": "compute", "drop_rate": 1.0})).await;
    let e = c.compute().list_flavors().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient);
    assert!(e.message.contains("dropped") || e.message.contains("failed"), "{e}");

    common::control_request(&h, reqwest::Method::DELETE, "faults").send().await.unwrap();
    let servers = c.compute().list_servers(&Default::default()).await.unwrap();
    assert_eq!(servers.len(), 1);

    control(&h, "fail-creates", json!({"count": 1, "mode": "http"})).await;
    let e = c.compute().create_server(&spec("f1", &img, &net)).await.unwrap_err();
    assert_eq!((e.kind, e.status), (ErrorKind::Transient, Some(500)));
    control(&h, "fail-creates", json!({"count": 1})).await;
    let id = c.compute().create_server(&spec("f2", &img, &net)).await.unwrap().id;
    let s = wait_status(&c, &id, ServerStatus::Error).await;
    assert!(s.fault.unwrap().message.contains("Build of instance aborted"));
    let id = c.compute().create_server(&spec("f3", &img, &net)).await.unwrap().id;
    wait_status(&c, &id, ServerStatus::Active).await;

    control(&h, &format!("servers/{id}/state"), json!({"status": "SHUTOFF"})).await;
    assert_eq!(c.compute().get_server(&id).await.unwrap().status, ServerStatus::Shutoff);
    control(&h, &format!("servers/{id}/state"), json!({"status": "ERROR", "message": "hypervisor lost"})).await;
    assert_eq!(c.compute().get_server(&id).await.unwrap().fault.unwrap().message, "hypervisor lost");

    control(&h, "quota", json!({"exhaust": true})).await;
    let e = c.compute().create_server(&spec("f4", &img, &net)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::QuotaExceeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_and_backup_chains() {
    let h = sim_fast().await;
    let c = client(&h);
    let v = c.volume().create_volume(2, "data", &Default::default()).await.unwrap();
    assert_eq!(v.status, "creating");
    let vol = c.volume();
    eventually(20, "volume available", || async {
        vol.get_volume(&v.id).await.ok().filter(|x| x.status == "available")
    })
    .await;

    let e = vol
        .create_backup(&CreateBackup { volume_id: v.id.clone(), incremental: true, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest);
    assert!(e.message.contains("No backups available to do an incremental backup"), "{e}");

    let meta = [("stackpilot:policy".to_string(), "p1".to_string())].into();
    let (full, _) = vol
        .create_backup(&CreateBackup {
            volume_id: v.id.clone(),
            name: Some("full".into()),
            metadata: meta,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(vol.get_volume(&v.id).await.unwrap().status, "backing-up");
    eventually(20, "full backup", || async { vol.get_backup(&full).await.ok().filter(|b| b.status == "available") })
        .await;
    let (inc, _) = vol
        .create_backup(&CreateBackup { volume_id: v.id.clone(), incremental: true, ..Default::default() })
        .await
        .unwrap();
    let b = eventually(20, "incremental backup", || async {
        vol.get_backup(&inc).await.ok().filter(|b| b.status == "available")
    })
    .await;
    assert!(b.is_incremental);
    let f = vol.get_backup(&full).await.unwrap();
    assert!(f.has_dependent_backups);
    assert_eq!(f.metadata.get("stackpilot:policy").map(String::as_str), Some("p1"));

    let e = vol.delete_backup(&full).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest);
    assert_eq!(e.message, "Invalid backup: Incremental backups exist for this backup.");

    let r = vol.restore_backup(&inc, None, Some("restored")).await.unwrap();
    assert_eq!(r.volume_name.as_deref(), Some("restored"));
    eventually(20, "restored volume", || async {
        vol.get_volume(&r.volume_id).await.ok().filter(|x| x.status == "available")
    })
    .await;

    vol.delete_backup(&inc).await.unwrap();
    eventually(20, "incremental gone", || async {
        vol.get_backup(&inc).await.err().filter(|e| e.kind == ErrorKind::NotFound)
    })
    .await;
    vol.delete_backup(&full).await.unwrap();
    assert_eq!(vol.list_backups().await.unwrap().iter().filter(|b| b.status != "deleting").count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_follows_the_app_load_shared_by_its_active_servers() {
    // Demo world: `worker` is a steady 0.8 vCPU of work on one 1-vCPU server.
    let h = sim(SimConfig { speed: 600.0, world: WorldSource::Demo, incidents: false, ..Default::default() }).await;
    let c = Client::new(password_cloud(&h, "demo", "demo", "demo")).unwrap();
    control(&h, "seed", json!({"count": 1, "prefix": "worker", "app": "worker", "metrics": true, "project": "demo", "flavor": "m1.small"}))
        .await;
    let servers = c.compute().list_servers(&Default::default()).await.unwrap();
    let w1 = servers.iter().find(|s| s.app() == Some("worker")).unwrap().clone();
    let cpu_of = |ids: Vec<String>| {
        let c = c.clone();
        let h_now = h.now();
        async move {
            let pairs: Vec<(String, u32)> = ids.into_iter().map(|i| (i, 1)).collect();
            c.metric().server_metrics(&pairs, 60, h_now - chrono::Duration::minutes(5)).await.unwrap()
        }
    };
    control(&h, "clock/advance", json!({"seconds": 600})).await;
    let m = cpu_of(vec![w1.id.clone()]).await;
    let last = m[&w1.id].cpu_pct.last().unwrap().1;
    assert!((70.0..=90.0).contains(&last), "one worker carries 80 %: {last}");
    assert!(m[&w1.id].memory_mb.last().unwrap().1 > 0.0);
    assert!(m[&w1.id].net_in_bps.last().unwrap().1 > 0.0, "network rates from instance_network_interface");

    // A second worker halves the share.
    let mut sp = CreateServer {
        name: "worker-2".into(),
        image_id: w1.image_id.clone(),
        flavor_id: "2".into(),
        networks: vec![NetworkSpec::Auto],
        metadata: [("stackpilot:app".to_string(), "worker".to_string())].into(),
        ..Default::default()
    };
    sp.networks = vec![NetworkSpec::Uuid(
        c.network().list_networks().await.unwrap().into_iter().find(|n| n.name == "private").unwrap().id,
    )];
    let w2 = c.compute().create_server(&sp).await.unwrap().id;
    wait_status(&c, &w2, ServerStatus::Active).await;
    control(&h, "clock/advance", json!({"seconds": 600})).await;
    let m = cpu_of(vec![w1.id.clone(), w2.clone()]).await;
    for id in [&w1.id, &w2] {
        let v = m[id].cpu_pct.last().unwrap().1;
        assert!((30.0..=50.0).contains(&v), "two workers carry 40 % each: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_world_survives_a_restart_with_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("world.json");
    let cfg = SimConfig { speed: 60.0, state: Some(state.clone()), ..Default::default() };
    let h = sim(cfg.clone()).await;
    let c = client(&h);
    let (img, net) = ids(&c).await;
    let id = c.compute().create_server(&spec("keep", &img, &net)).await.unwrap().id;
    h.shutdown().await;
    assert!(state.exists());
    let h = sim(cfg).await;
    let c = client(&h);
    let s = c.compute().get_server(&id).await.unwrap();
    assert_eq!(s.display_name(), "keep");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_servers_list_completely() {
    let h = sim_fast().await;
    control(&h, "seed", json!({"count": 10000, "prefix": "scale"})).await;
    let c = client(&h);
    let all = c.compute().list_servers(&Default::default()).await.unwrap();
    assert_eq!(all.len(), 10_000);
    assert!(all.iter().all(|s| s.status == ServerStatus::Active));
}

/// The control API answers only whoever holds the token the simulator printed,
/// never a web page (not even a "simple" cross-site POST with a text/plain body),
/// and a request it cannot honour is a 4xx, never a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_api_needs_its_token_and_refuses_web_pages() {
    let world = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        world.path(),
        "[[projects]]\nname = \"admin\"\n\n[[users]]\nname = \"admin\"\npassword = \"secret\"\nroles = { admin = \"admin\" }\n\n[[flavors]]\nid = \"1\"\nname = \"m1.tiny\"\nvcpus = 1\nram = 512\ndisk = 1\n",
    )
    .unwrap();
    let h = sim(SimConfig { world: WorldSource::File(world.path().to_path_buf()), ..Default::default() }).await;
    assert_eq!(h.control_token.len(), 32, "a random token when none is given");
    let url = format!("{}/_sim/clock/advance", h.base_url);
    let http = reqwest::Client::new();
    let clock = |v: serde_json::Value| chrono::DateTime::parse_from_rfc3339(v["time"].as_str().unwrap()).unwrap();
    let before = clock(control_get(&h, "state").await);

    let none = http.post(&url).header("content-type", "text/plain").body(r#"{"seconds": 3600}"#).send().await.unwrap();
    assert_eq!(none.status(), 401, "no token");
    let wrong = http.post(&url).header("x-sim-token", "guess").json(&json!({"seconds": 3600})).send().await.unwrap();
    assert_eq!(wrong.status(), 401, "a wrong token");
    let page = http
        .post(&url)
        .header("x-sim-token", &h.control_token)
        .header("origin", "https://attacker.example")
        .header("content-type", "text/plain")
        .body(r#"{"seconds": 3600}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403, "a browser's cross-site request, even with the token");
    let fetch = http.get(format!("{}/_sim/state", h.base_url)).header("sec-fetch-site", "cross-site").send().await;
    assert_eq!(fetch.unwrap().status(), 403);
    let moved = clock(control_get(&h, "state").await) - before;
    assert!(moved.num_seconds() < 600, "none of them moved the clock an hour: {moved}");

    let bearer = http
        .get(format!("{}/_sim/exporter/metrics", h.base_url))
        .header("authorization", format!("Bearer {}", h.control_token))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200, "Prometheus sends the token as a bearer credential");

    // Seeding images into a world that has none to copy: a clear 400.
    let r = control_request(&h, reqwest::Method::POST, "seed").json(&json!({"images": 3})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body.to_string().contains("no image"), "{body}");
    // The simulator still serves.
    assert_eq!(control_request(&h, reqwest::Method::GET, "stats").send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_break_repairs_fail_zones_crash_and_incidents_strike_on_schedule() {
    let h = sim(SimConfig { speed: 600.0, world: WorldSource::Demo, ..Default::default() }).await;
    let c = Client::new(password_cloud(&h, "demo", "demo", "demo")).unwrap();
    for app in ["worker", "api", "web"] {
        control(&h, "seed", json!({"count": 1, "prefix": app, "app": app, "project": "demo", "flavor": "m1.small"}))
            .await;
    }
    let all = c.compute().list_servers(&Default::default()).await.unwrap();
    let of = |app: &str| all.iter().find(|s| s.app() == Some(app)).unwrap().clone();
    let (worker, api, web) = (of("worker"), of("api"), of("web"));
    let health = |id: String| {
        let url = format!("{}/guest/{id}/health", h.base_url);
        async move {
            match reqwest::Client::new().get(url).timeout(Duration::from_millis(500)).send().await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            }
        }
    };
    // The health endpoint needs no control token: it is the guest's.
    assert_eq!(health(web.id.clone()).await, 200);
    control(&h, &format!("servers/{}/guest", web.id), json!({"health": "hung", "until": "reboot-hard"})).await;
    assert_eq!(health(web.id.clone()).await, 0, "hung: no answer");
    // A soft reboot does not mend it; it fails once as told, then a hard reboot mends it.
    control(&h, &format!("servers/{}/fail-actions", web.id), json!({"reboot-soft": 1})).await;
    let srv = c.compute();
    srv.action(&web.id, &ServerAction::Reboot(RebootKind::Soft)).await.unwrap();
    control(&h, "clock/advance", json!({"seconds": 120})).await;
    let s = srv.get_server(&web.id).await.unwrap();
    assert_eq!(s.status, ServerStatus::Error, "a failed reboot ends in ERROR");
    srv.action(&web.id, &ServerAction::Reboot(RebootKind::Hard)).await.unwrap();
    control(&h, "clock/advance", json!({"seconds": 120})).await;
    assert_eq!(srv.get_server(&web.id).await.unwrap().status, ServerStatus::Active);
    assert_eq!(health(web.id.clone()).await, 200, "a hard reboot mends it");
    // The demo's incidents: the worker powers off at 300 s, the api member crashes at 900 s.
    control(&h, "clock/advance", json!({"seconds": 900})).await;
    let mut seen = (ServerStatus::Unknown, ServerStatus::Unknown);
    for _ in 0..50 {
        seen = (srv.get_server(&worker.id).await.unwrap().status, srv.get_server(&api.id).await.unwrap().status);
        if seen == (ServerStatus::Shutoff, ServerStatus::Error) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, (ServerStatus::Shutoff, ServerStatus::Error));
    // A whole zone crashes at once.
    let r = control(&h, "zones/nova/crash", json!({})).await;
    assert!(r["crashed"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(srv.get_server(&web.id).await.unwrap().status, ServerStatus::Error);
}

/// A seeded fleet looks booted over time: an idle `changes-since` poll from the
/// newest change brings back the servers of that second only (Nova's filter is
/// inclusive), and a deletion comes back as a DELETED record, which a plain
/// listing no longer shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_since_of_a_seeded_fleet_brings_only_the_newest_second_and_deletions() {
    use stackpilot::cloud::compute::ServerQuery;
    let h = sim_fast().await;
    control(&h, "seed", json!({"count": 1000, "prefix": "fleet"})).await;
    let c = client(&h);
    let all = c.compute().list_servers(&Default::default()).await.unwrap();
    assert_eq!(all.len(), 1000);
    let mark = all.iter().filter_map(|s| s.updated).max().unwrap();
    let since = |t| {
        let c = c.clone();
        async move { c.compute().list_servers(&ServerQuery { changes_since: Some(t), ..Default::default() }).await }
    };
    let idle = since(mark).await.unwrap();
    assert!(!idle.is_empty() && idle.len() <= 10, "the newest second only: {} servers", idle.len());
    let gone = all.iter().find(|s| s.updated < Some(mark)).unwrap();
    c.compute().delete_server(&gone.id).await.unwrap();
    let changed = eventually(10, "the deletion to land", || {
        let since = since(mark);
        async move { since.await.ok().filter(|v| v.iter().any(|s| s.status == ServerStatus::Deleted)) }
    })
    .await;
    let deleted: Vec<_> = changed.iter().filter(|s| s.status == ServerStatus::Deleted).collect();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].id, gone.id);
    assert!(changed.len() <= 11, "the deletion and the newest second: {}", changed.len());
    let now = c.compute().list_servers(&Default::default()).await.unwrap();
    assert_eq!(now.len(), 999);
    assert!(!now.iter().any(|s| s.id == gone.id));
}

/// A seeded server was created by a request too: its instance actions list the
/// finished `create` (clients such as ostui and `openstack server event list`
/// show it), and a later action is listed before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_server_lists_its_create_action() {
    use stackpilot::cloud::Req;
    let h = sim_fast().await;
    control(&h, "seed", json!({"count": 2, "prefix": "old"})).await;
    let c = client(&h);
    let s = c.compute().list_servers(&Default::default()).await.unwrap().into_iter().next().unwrap();
    let actions = |id: String| {
        let c = c.clone();
        async move {
            let r = c.session.request("compute", Req::get(format!("/servers/{id}/os-instance-actions"))).await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["instanceActions"].as_array().unwrap().clone()
        }
    };
    let list = actions(s.id.clone()).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["action"], json!("create"));
    assert!(list[0]["request_id"].as_str().unwrap().starts_with("req-"));
    let rid = list[0]["request_id"].as_str().unwrap().to_string();
    let shown =
        c.session.request("compute", Req::get(format!("/servers/{}/os-instance-actions/{rid}", s.id))).await.unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&shown.body).unwrap();
    let events = shown["instanceAction"]["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["result"] == json!("Success") && e["finish_time"].is_string()), "{shown}");
    c.compute().action(&s.id, &ServerAction::Reboot(RebootKind::Soft)).await.unwrap();
    let list = actions(s.id.clone()).await;
    let names: Vec<&str> = list.iter().filter_map(|a| a["action"].as_str()).collect();
    assert_eq!(names, ["reboot", "create"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn y_reads_a_servers_exact_record_and_names_the_request_of_an_error() {
    use stackpilot::tui::app::Msg;
    let h = sim_fast().await;
    let c = client(&h);
    let (img, net) = ids(&c).await;
    let created = c.compute().create_server(&spec("raw", &img, &net)).await.unwrap();
    let msg = stackpilot::tui::read_server_record(Some(&c), "sim".into(), created.id.clone()).await;
    let Msg::ServerRecord { cloud, server_id, result } = msg else { panic!("{msg:?}") };
    assert_eq!((cloud.as_str(), server_id.as_str()), ("sim", created.id.as_str()));
    let text = result.unwrap();
    // Every field the API sent, as it sent it, one a line.
    let raw = c.compute().get_server(&created.id).await.unwrap().raw.unwrap();
    let sent: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let shown: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&shown), keys(&sent));
    assert_eq!(shown.get("id"), sent.get("id"));
    assert!(text.starts_with("{\n  \"") && text.contains("\n  \"OS-EXT-STS:vm_state\": "), "{text}");
    // An unknown server: the error names the cloud, the service and the request id.
    let msg = stackpilot::tui::read_server_record(Some(&c), "sim".into(), "no-such-server".into()).await;
    let Msg::ServerRecord { result: Err(e), .. } = msg else { panic!("{msg:?}") };
    assert!(e.starts_with("compute not found (404)"), "{e}");
    assert!(e.contains("[cloud sim, GET ") && e.contains("/servers/no-such-server, request req-"), "{e}");
    h.shutdown().await;
}
