//! The session against the simulator over HTTP: authentication, one shared
//! re-authentication on 401, proactive refresh, catalog selection, pagination.

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
use stackpilot::cloud::compute::ServerQuery;
use stackpilot::cloud::{Client, ErrorKind};
use stackpilot::config::clouds::Interface;
use stackpilot::sim::SimConfig;
use std::sync::atomic::Ordering;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_triggers_one_reauthentication_shared_by_concurrent_callers() {
    let h = sim_fast().await;
    let c = client(&h);
    c.compute().list_flavors().await.unwrap();
    assert_eq!(c.session.stats.authentications.load(Ordering::SeqCst), 1);
    control(&h, "tokens/expire", serde_json::json!({})).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { c.compute().list_flavors().await.map(|f| f.len()) }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 4);
    }
    assert_eq!(
        c.session.stats.authentications.load(Ordering::SeqCst),
        2,
        "one re-authentication for all eight callers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_close_to_expiry_is_refreshed_before_use() {
    let h = sim(SimConfig { token_lifetime_secs: Some(121), ..Default::default() }).await;
    let c = client(&h);
    c.compute().list_flavors().await.unwrap();
    assert_eq!(c.session.stats.authentications.load(Ordering::SeqCst), 1);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let before_errors = c.session.stats.errors.load(Ordering::SeqCst);
    c.compute().list_flavors().await.unwrap();
    assert_eq!(c.session.stats.authentications.load(Ordering::SeqCst), 2, "refreshed with < 120 s left");
    assert_eq!(c.session.stats.errors.load(Ordering::SeqCst), before_errors, "without waiting for a 401");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_unauthorized_with_a_request_id() {
    let h = sim_fast().await;
    let c = Client::new(password_cloud(&h, "admin", "wrong", "admin")).unwrap();
    let e = c.compute().list_flavors().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unauthorized);
    assert_eq!(e.status, Some(401));
    assert_eq!(e.service, "identity");
    assert!(e.request_id.as_deref().is_some_and(|r| r.starts_with("req-")), "{e}");
    assert!(!e.to_string().contains("wrong"), "the password never appears: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_token_for_token_auth_is_a_final_unauthorized() {
    use stackpilot::config::clouds::{AuthMethod, DomainRef, Scope};
    let h = sim_fast().await;
    let admin = client(&h);
    admin.compute().list_flavors().await.unwrap();
    let tok = admin.session.current_token().unwrap().id.expose().to_string();
    let mut cfg = admin_cloud(&h);
    cfg.auth = AuthMethod::Token {
        token: stackpilot::config::Secret::new(tok),
        scope: Scope::Project {
            id: None,
            name: Some("admin".into()),
            domain: DomainRef { id: Some("default".into()), name: None },
        },
    };
    let c = Client::new(cfg).unwrap();
    assert_eq!(c.compute().list_flavors().await.unwrap().len(), 4);
    control(&h, "tokens/expire", serde_json::json!({})).await;
    let e = c.compute().list_flavors().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unauthorized, "{e}");
    assert_eq!(c.session.stats.authentications.load(Ordering::SeqCst), 2, "one retry, then final");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_selection_by_interface_region_and_override() {
    let h = sim_fast().await;
    let mut cfg = admin_cloud(&h);
    cfg.interface = Interface::Internal;
    let c = Client::new(cfg.clone()).unwrap();
    let ep = c.session.endpoint("compute").await.unwrap();
    assert_eq!(ep.as_str(), format!("{}/compute/v2.1", h.base_url));
    let img = c.session.endpoint("image").await.unwrap();
    assert_eq!(img.as_str(), format!("{}/image/v2", h.base_url), "version-less endpoint gets /v2");
    let vol = c.session.endpoint("volumev3").await.unwrap();
    assert!(vol.path().starts_with("/volume/v3/"), "{vol}");

    cfg.region = Some("RegionTwo".into());
    let c = Client::new(cfg.clone()).unwrap();
    let e = c.session.endpoint("compute").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::EndpointNotFound);
    assert!(e.message.contains("RegionTwo") && e.message.contains("internal@RegionOne"), "{}", e.message);

    cfg.endpoint_overrides.insert("compute".into(), format!("{}/compute/v2.1", h.base_url));
    let c = Client::new(cfg).unwrap();
    assert_eq!(c.compute().list_flavors().await.unwrap().len(), 4, "override bypasses the catalog");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_pages_follow_markers_to_an_empty_last_page() {
    let h = sim_fast().await;
    control(&h, "seed", serde_json::json!({"count": 25, "prefix": "page"})).await;
    let c = client(&h);
    c.compute().list_flavors().await.unwrap();
    let before = requests(&h, "compute GET").await;
    let q = ServerQuery { page_size: Some(5), ..Default::default() };
    let servers = c.compute().list_servers(&q).await.unwrap();
    let after = requests(&h, "compute GET").await;
    assert_eq!(servers.len(), 25);
    let mut ids: Vec<&str> = servers.iter().map(|s| s.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 25, "no server twice");
    // The /_sim/stats request itself is not a compute GET.
    assert_eq!(after - before, 6, "five full pages and an empty last one");
    let capped = c
        .compute()
        .list_servers(&ServerQuery { page_size: Some(5), max_items: Some(7), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(capped.len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_pages_follow_relative_next_links() {
    let h = sim_fast().await;
    control(&h, "seed", serde_json::json!({"images": 60, "prefix": "img"})).await;
    let c = client(&h);
    c.image().list_images().await.unwrap();
    let before = requests(&h, "image GET").await;
    let images = c.image().list_images().await.unwrap();
    let after = requests(&h, "image GET").await;
    assert_eq!(images.len(), 64);
    assert_eq!(after - before, 3, "25 + 25 + 14");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_since_returns_only_what_changed_including_deletions() {
    let h = sim_fast().await;
    control(&h, "seed", serde_json::json!({"count": 10, "prefix": "old"})).await;
    let c = client(&h);
    let all = c.compute().list_servers(&Default::default()).await.unwrap();
    assert_eq!(all.len(), 10);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let mark = h.now();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    c.compute().delete_server(&all[0].id).await.unwrap();
    let changed = eventually(10, "the deletion to land", || {
        let c = c.clone();
        async move {
            let v = c
                .compute()
                .list_servers(&ServerQuery { changes_since: Some(mark), ..Default::default() })
                .await
                .unwrap();
            v.iter().any(|s| s.status == stackpilot::domain::ServerStatus::Deleted).then_some(v)
        }
    })
    .await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].id, all[0].id);
    assert_eq!(c.compute().list_servers(&Default::default()).await.unwrap().len(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microversion_is_negotiated_and_sent() {
    let h = sim_fast().await;
    let c = client(&h);
    assert_eq!(c.session.microversion("compute").await.unwrap(), Some((2, 96)));
    assert_eq!(c.session.microversion("block-storage").await.unwrap(), Some((3, 64)));
    assert_eq!(c.session.microversion("image").await.unwrap(), None);
    let v = c.compute().version().await.unwrap();
    assert_eq!(v.min_version, "2.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_version_discovery_is_retried_not_remembered() {
    let h = sim_fast().await;
    control(&h, "faults", serde_json::json!({"service": "compute", "error_rate": 1.0})).await;
    let c = client(&h);
    let e = c.compute().list_flavors().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient);
    common::control_request(&h, reqwest::Method::DELETE, "faults").send().await.unwrap();
    assert_eq!(c.session.microversion("compute").await.unwrap(), Some((2, 96)), "negotiated once the service answers");
}
