//! Shared test helpers: start the simulator, build cloud configs for it, and call
//! its control API.
#![allow(dead_code)]

pub mod receiver;
pub mod rig;
pub mod titles;

use serde_json::Value;
use stackpilot::config::clouds::{AuthMethod, CloudSource, DomainRef, Interface, Scope, UserRef};
use stackpilot::config::{CloudConfig, Secret};
use stackpilot::sim::{SimConfig, SimHandle};

pub async fn sim(cfg: SimConfig) -> SimHandle {
    stackpilot::sim::start(cfg).await.expect("simulator starts")
}

pub async fn sim_fast() -> SimHandle {
    sim(SimConfig { speed: 60.0, ..Default::default() }).await
}

pub fn password_cloud(h: &SimHandle, user: &str, password: &str, project: &str) -> CloudConfig {
    let d = DomainRef { id: None, name: Some("Default".into()) };
    CloudConfig {
        name: "sim".into(),
        source: CloudSource::Env,
        auth_url: h.auth_url(),
        auth: AuthMethod::Password {
            user: UserRef { id: None, name: Some(user.into()), domain: d.clone() },
            password: Secret::new(password),
            scope: Scope::Project { id: None, name: Some(project.into()), domain: d },
        },
        region: Some("RegionOne".into()),
        regions: vec![],
        interface: Interface::Public,
        verify: true,
        cacert: None,
        client_cert: None,
        client_key: None,
        endpoint_overrides: Default::default(),
    }
}

pub fn admin_cloud(h: &SimHandle) -> CloudConfig {
    password_cloud(h, "admin", "secret", "admin")
}

pub fn client(h: &SimHandle) -> stackpilot::cloud::Client {
    stackpilot::cloud::Client::new(admin_cloud(h)).expect("client")
}

/// POST to the simulator's control API.
pub async fn control(h: &SimHandle, path: &str, body: Value) -> Value {
    let r = control_request(h, reqwest::Method::POST, path).json(&body).send().await.expect("control API");
    assert!(r.status().is_success(), "control {path}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

pub async fn control_get(h: &SimHandle, path: &str) -> Value {
    let r = control_request(h, reqwest::Method::GET, path).send().await.expect("control API");
    r.json().await.expect("json")
}

/// A request to the simulator's control API, with its token.
pub fn control_request(h: &SimHandle, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, format!("{}/_sim/{path}", h.base_url))
        .header("x-sim-token", &h.control_token)
}

/// Requests the simulator saw for a "service METHOD" key.
pub async fn requests(h: &SimHandle, key: &str) -> u64 {
    control_get(h, "stats").await["requests"][key].as_u64().unwrap_or(0)
}

/// Poll until `f` returns Some, or panic after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if std::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

pub fn env_or(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.to_string())
}

/// The real services of ../shared/tools/openstack (`OS_AUTH_URL`, `OS_USERNAME`,
/// `OS_PASSWORD`, `OS_PROJECT_NAME`, `OS_REGION_NAME` override the defaults).
pub fn real_cloud() -> CloudConfig {
    let d = DomainRef { id: Some("default".into()), name: None };
    CloudConfig {
        name: "real".into(),
        source: CloudSource::Env,
        auth_url: env_or("OS_AUTH_URL", "http://127.0.0.1:5000/v3"),
        auth: AuthMethod::Password {
            user: UserRef { id: None, name: Some(env_or("OS_USERNAME", "admin")), domain: d.clone() },
            password: Secret::new(env_or("OS_PASSWORD", "secret")),
            scope: Scope::Project { id: None, name: Some(env_or("OS_PROJECT_NAME", "admin")), domain: d },
        },
        region: Some(env_or("OS_REGION_NAME", "RegionOne")),
        regions: vec![],
        interface: Interface::Public,
        verify: true,
        cacert: None,
        client_cert: None,
        client_key: None,
        endpoint_overrides: Default::default(),
    }
}

/// Inventory settings for tests: every kind polled every `ms` milliseconds, a
/// full resync once an hour, 2 s request timeout, backoff capped at 600 ms, a
/// failing service alerted after 2 s.
pub fn inventory_every(ms: u64) -> stackpilot::inventory::InventoryConfig {
    use stackpilot::config::settings::Dur;
    use std::time::Duration;
    let mut c = stackpilot::inventory::InventoryConfig::default();
    let d = Dur(Duration::from_millis(ms));
    let r = &mut c.refresh;
    (r.servers, r.flavors, r.images, r.networks, r.volumes, r.backups, r.metrics, r.limits) = (d, d, d, d, d, d, d, d);
    r.full_resync = Dur(Duration::from_secs(3600));
    r.timeout = Dur(Duration::from_secs(2));
    r.max_backoff = Dur(Duration::from_millis(600));
    c.alert_after = Duration::from_secs(2);
    c
}
