//! The engine test rig: a cloud (each case's own simulator, or the real services
//! of ../shared/tools/openstack with `STACKPILOT_ENGINE_CLOUD=real`), policies in
//! a temporary directory, the engine in this process or as a `stackpilot engine`
//! child, and the checks every case shares.
#![allow(dead_code)]

use super::*;
use serde_json::Value;
use stackpilot::cloud::compute::ServerQuery;
use stackpilot::cloud::Client;
use stackpilot::config::settings::{Dur, EngineMode};
use stackpilot::config::CloudConfig;
use stackpilot::domain::{Server, ServerStatus};
use stackpilot::engine::metrics::EngineMetrics;
use stackpilot::engine::{Engine, EngineConfig, EngineHandle, EngineStatus, PlanConfig};
use stackpilot::inventory::{Inventory, InventoryConfig};
use stackpilot::policy::policy_id;
use stackpilot::sim::{SimConfig, SimHandle};
use stackpilot::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The real cloud is shared: its cases run one at a time. Each simulator case has
/// its own simulator and state directory, so those run side by side.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Sim,
    Real,
}

pub fn side() -> Side {
    match std::env::var("STACKPILOT_ENGINE_CLOUD").as_deref() {
        Ok("real") => Side::Real,
        _ => Side::Sim,
    }
}

/// Test apps are named `spe-<run>-<name>`; leftovers of earlier runs on the real
/// cloud are removed by prefix.
pub const PREFIX: &str = "spe-";

pub struct Rig {
    pub side: Side,
    pub cloud: CloudConfig,
    pub client: Client,
    pub sim: Option<SimHandle>,
    pub dir: tempfile::TempDir,
    pub run: String,
    pub _guard: Option<tokio::sync::MutexGuard<'static, ()>>,
}

pub struct Running {
    pub handle: EngineHandle,
    pub inventory: Inventory,
    pub store: Store,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.task.abort();
    }
}

pub fn inventory_cfg() -> InventoryConfig {
    let mut c = inventory_every(300);
    let ms = |n| Dur(Duration::from_millis(n));
    (c.refresh.servers, c.refresh.metrics, c.refresh.full_resync) = (ms(200), ms(500), ms(3000));
    (c.refresh.timeout, c.refresh.max_backoff) = (Dur(Duration::from_secs(5)), ms(500));
    // The engine reads no volumes, and the real services share two cores.
    (c.refresh.volumes, c.refresh.backups, c.refresh.images) = (ms(60_000), ms(60_000), ms(2000));
    c
}

pub fn plan_cfg() -> PlanConfig {
    PlanConfig {
        create_visibility_timeout: chrono::Duration::seconds(6),
        orphan_grace: chrono::Duration::seconds(3),
        drain: chrono::Duration::milliseconds(500),
        backoff_min_secs: 2,
        backoff_max_secs: 4,
        ..PlanConfig::default()
    }
}

impl Rig {
    pub async fn new(sim_cfg: SimConfig) -> Rig {
        Rig::at_speed(sim_cfg, 60.0).await
    }

    /// A rig whose simulator runs `speed` simulated seconds per second (1: its
    /// clock and ours agree, for cases that time members against the wall clock).
    pub async fn at_speed(sim_cfg: SimConfig, speed: f64) -> Rig {
        let side = side();
        let guard = match side {
            Side::Real => Some(SERIAL.lock().await),
            Side::Sim => None,
        };
        let (cloud, sim) = match side {
            Side::Sim => {
                let h = sim(SimConfig { speed, ..sim_cfg }).await;
                (admin_cloud(&h), Some(h))
            }
            Side::Real => (real_cloud(), None),
        };
        let client = Client::with_timeout(cloud.clone(), Duration::from_secs(20)).unwrap();
        let run = format!("{:x}", std::process::id() as u64 * 1000 + fastrand::u64(0..1000));
        let rig = Rig { side, cloud, client, sim, dir: tempfile::tempdir().unwrap(), run, _guard: guard };
        std::fs::create_dir_all(rig.policies()).unwrap();
        if side == Side::Real {
            rig.remove_leftovers().await;
        }
        rig
    }

    pub fn policies(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The full app name of a case's short name.
    pub fn app(&self, short: &str) -> String {
        format!("{PREFIX}{}-{short}", self.run)
    }

    pub fn app_tag(&self, short: &str) -> String {
        format!("stackpilot-app-{}", policy_id(&self.cloud.name, &self.app(short)))
    }

    /// Write (or rewrite) the policy of an app.
    pub fn policy(&self, short: &str, desired: u32) {
        self.policy_with(short, desired, 10, "");
    }

    /// A policy with more sections (e.g. `[scaling]`) after `[readiness]`.
    pub fn policy_with(&self, short: &str, desired: u32, max: u32, extra: &str) {
        self.policy_full(short, if extra.is_empty() { 0 } else { 1 }, desired, max, extra);
    }

    pub fn policy_full(&self, short: &str, min: u32, desired: u32, max: u32, extra: &str) {
        // The fake virt driver of the real stack boots no guest: no cloud-init line.
        let marker = match self.side {
            Side::Sim => "Cloud-init v. * finished",
            Side::Real => "",
        };
        let text = format!(
            r##"[app]
name = "{app}"
cloud = "{cloud}"

[deploy]
image = "cirros-0.6.2-x86_64-disk"
flavor = "m1.tiny"
networks = ["private"]
user_data = "#cloud-config\nruncmd: [echo {{app}} {{revision}} {{slot}}]\n"
capacity = {{ min = {min}, max = {max}, desired = {desired} }}

[readiness]
cloud_init_marker = "{marker}"
min_ready_seconds = 0
{extra}
"##,
            app = self.app(short),
            cloud = self.cloud.name,
        );
        let path = self.policies().join(format!("{short}.toml"));
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, path).unwrap();
    }

    /// When a wait of `secs` ends. A real Nova on two shared cores can take tens
    /// of seconds for one request (the engine's timeout, then its retry next
    /// tick), so a wait for the real services is three times as long.
    pub fn deadline(&self, secs: u64) -> tokio::time::Instant {
        let factor = if self.side == Side::Real { 3 } else { 1 };
        tokio::time::Instant::now() + Duration::from_secs(secs * factor)
    }

    /// Creates on the real Nova take seconds under load; the simulator answers at once.
    pub fn visibility_timeout(&self) -> u64 {
        match self.side {
            Side::Sim => 6,
            Side::Real => 90,
        }
    }

    pub fn engine_cfg(&self) -> EngineConfig {
        EngineConfig {
            mode: EngineMode::Auto,
            tick: Duration::from_millis(300),
            concurrency: 4,
            plan: PlanConfig {
                create_visibility_timeout: chrono::Duration::seconds(self.visibility_timeout() as i64),
                ..plan_cfg()
            },
            policies_dir: self.policies(),
            state_dir: self.state(),
            engine_id: format!("test/{}", self.run),
            create_timeout: Duration::from_secs(if self.side == Side::Real { 30 } else { 3 }),
            max_data_age: Duration::from_secs(30),
            metrics_granularity: 60,
            may_act: true,
            notify: Ok(Default::default()),
        }
    }

    /// The engine in this process, with its own inventory and store.
    pub fn start(&self, cfg: EngineConfig) -> Running {
        std::fs::create_dir_all(self.state()).unwrap();
        let store = Store::open(&self.state().join("stackpilot.db")).unwrap();
        let inventory = Inventory::start(vec![self.client.clone()], inventory_cfg());
        let handle = Engine::start(
            cfg,
            vec![self.client.clone()],
            inventory.subscribe(),
            inventory.link(),
            store.clone(),
            Arc::new(EngineMetrics::default()),
        );
        Running { handle, inventory, store }
    }

    /// Every live server carrying the app's tag.
    pub async fn members(&self, short: &str) -> Vec<Server> {
        let q = ServerQuery { tags: vec![self.app_tag(short)], ..Default::default() };
        loop {
            match self.client.compute().list_servers(&q).await {
                Ok(v) => return v.into_iter().filter(|s| s.status != ServerStatus::Deleted).collect(),
                // The list itself may hit an injected fault.
                Err(e) if e.is_transient() => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => panic!("listing members: {e}"),
            }
        }
    }

    /// Wait until every app has exactly its desired number of ACTIVE members, none
    /// terminating, and that holds for a few more ticks.
    pub async fn converged(&self, want: &[(&str, usize)], within: Duration) {
        // A real Nova on two shared cores takes its time (a create may take tens of
        // seconds right after the services start).
        let within = if self.side == Side::Real { within * 3 } else { within };
        let deadline = tokio::time::Instant::now() + within;
        let mut stable = 0;
        loop {
            let mut ok = true;
            let mut seen = vec![];
            for (short, n) in want {
                let ms = self.members(short).await;
                let active = ms
                    .iter()
                    .filter(|s| {
                        s.status == ServerStatus::Active
                            && s.metadata.get("stackpilot:state").map(String::as_str) == Some("active")
                    })
                    .count();
                seen.push(format!("{short}: {active}/{} of {n}", ms.len()));
                ok &= active == *n && ms.len() == *n;
            }
            stable = if ok { stable + 1 } else { 0 };
            if stable >= 4 {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "not converged after {within:?}: {}\nengine events, newest first:\n{}",
                    seen.join(", "),
                    self.journal(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    }

    /// The newest engine events of the store under the rig's state directory.
    pub fn journal(&self, n: usize) -> String {
        let Ok(store) = Store::open(&self.state().join("stackpilot.db")) else { return "(no store)".into() };
        store
            .recent_events(n)
            .unwrap_or_default()
            .iter()
            .map(|e| {
                format!(
                    "  {} {} {} {} {} {}",
                    e.at.format("%H:%M:%S%.3f"),
                    e.action,
                    e.result,
                    e.target.clone().unwrap_or_default(),
                    e.reason,
                    e.detail.clone().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub async fn sim_stats(&self) -> Value {
        let h = self.sim.as_ref().unwrap();
        super::control_get(h, "stats").await
    }

    /// Delete what earlier runs left on the real cloud.
    pub async fn remove_leftovers(&self) {
        let all = self.client.compute().list_servers(&ServerQuery::default()).await.unwrap();
        for s in all.iter().filter(|s| s.display_name().starts_with(PREFIX)) {
            let _ = self.client.compute().delete_server(&s.id).await;
        }
    }

    pub async fn cleanup(&self) {
        if self.side == Side::Real {
            self.remove_leftovers().await;
        }
    }
}

/// Members have distinct slots and distinct op tags, and all carry the
/// `stackpilot:*` metadata set at birth.
pub fn assert_well_formed(app: &str, ms: &[Server]) {
    let slots: BTreeSet<&str> =
        ms.iter().filter_map(|s| s.metadata.get("stackpilot:slot").map(String::as_str)).collect();
    assert_eq!(slots.len(), ms.len(), "{app}: one member per slot: {:?}", names(ms));
    let ops: BTreeSet<&String> =
        ms.iter().flat_map(|s| s.tags.iter().filter(|t| t.starts_with("stackpilot-op-"))).collect();
    assert_eq!(ops.len(), ms.len(), "{app}: one op tag per member");
    for s in ms {
        for k in [
            "stackpilot:app",
            "stackpilot:policy",
            "stackpilot:rev",
            "stackpilot:spec",
            "stackpilot:op",
            "stackpilot:engine",
        ] {
            assert!(s.metadata.contains_key(k), "{}: {k} missing", s.display_name());
        }
    }
}

pub fn names(ms: &[Server]) -> Vec<String> {
    ms.iter().map(|s| s.display_name().to_string()).collect()
}

/// On the simulator: no op tag was ever used by more than one accepted create.
pub async fn assert_no_duplicate_creates(rig: &Rig) -> u64 {
    let st = rig.sim_stats().await;
    let by_tag: BTreeMap<String, u64> = serde_json::from_value(st["creates_by_op_tag"].clone()).unwrap();
    let dup: Vec<_> = by_tag.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "creates repeated under one op tag: {dup:?}");
    st["server_creates"].as_u64().unwrap()
}

/// Wait until the engine's status satisfies `f`.
pub async fn wait_status(eng: &Running, what: &str, secs: u64, f: impl Fn(&EngineStatus) -> bool) -> EngineStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let s = eng.handle.status.borrow().clone();
        if f(&s) {
            return s;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}: {s:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn events(store: &Store, action: &str, app: &str) -> Vec<stackpilot::domain::Event> {
    store
        .recent_events(10_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == action && e.app.as_deref() == Some(app))
        .collect()
}

/// A rig on the simulator; on the real services the case is reported NOT RUN
/// with the reason, and `None` ends it.
pub async fn sim_rig(case: &str, why: &str) -> Option<Rig> {
    let rig = Rig::new(SimConfig::default()).await;
    if rig.side == Side::Real {
        not_run(case, why);
        return None;
    }
    Some(rig)
}

pub fn not_run(case: &str, why: &str) {
    println!("NOT RUN on real: {case}: {why}");
}

/// `stackpilot engine` as a child process against the rig's cloud.
pub struct Child {
    pub proc: std::process::Child,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

pub fn clouds_yaml(rig: &Rig) -> String {
    match &rig.sim {
        Some(h) => stackpilot::sim::clouds_yaml(&h.base_url, &rig.cloud.name, "admin", "secret", "admin"),
        None => format!(
            "clouds:\n  {}:\n    auth:\n      auth_url: {}\n      username: {}\n      password: {}\n      project_name: {}\n      user_domain_id: default\n      project_domain_id: default\n    region_name: {}\n",
            rig.cloud.name,
            env_or("OS_AUTH_URL", "http://127.0.0.1:5000/v3"),
            env_or("OS_USERNAME", "admin"),
            env_or("OS_PASSWORD", "secret"),
            env_or("OS_PROJECT_NAME", "admin"),
            env_or("OS_REGION_NAME", "RegionOne"),
        ),
    }
}

pub fn spawn_engine(rig: &Rig, state: &Path, log: &str) -> Child {
    spawn_engine_with(rig, state, log, &["--metrics-port", "0"], &[], "")
}

/// `stackpilot engine` with more arguments, environment and `[engine]` settings.
pub fn spawn_engine_with(
    rig: &Rig,
    state: &Path,
    log: &str,
    args: &[&str],
    env: &[(&str, &str)],
    engine: &str,
) -> Child {
    let home = rig.dir.path();
    std::fs::write(home.join("clouds.yaml"), clouds_yaml(rig)).unwrap();
    let cfg_dir = home.join("config/stackpilot");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    let config = format!(
        r#"[refresh]
servers = "200ms"
full_resync = "3s"
limits = "500ms"
timeout = "30s"
max_backoff = "500ms"

[engine]
mode = "auto"
tick = "300ms"
create_visibility_timeout = "{}s"
orphan_grace = "3s"
{engine}
"#,
        rig.visibility_timeout()
    );
    std::fs::write(cfg_dir.join("config.toml"), config).unwrap();
    let log = std::fs::File::create(home.join(log)).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stackpilot"));
    cmd.arg("engine")
        .args(args)
        .arg("--policies")
        .arg(rig.policies())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("OS_CLIENT_CONFIG_FILE", home.join("clouds.yaml"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("STACKPILOT_STATE_DIR", state)
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let proc = cmd.stdout(std::process::Stdio::null()).stderr(log).spawn().expect("stackpilot engine starts");
    Child { proc }
}

/// The address of `/healthz` and `/metrics` an engine logged.
pub fn metrics_base(log: &str) -> Option<String> {
    log.split("metrics on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(|u| u.trim_end_matches("/metrics").trim_end_matches(',').to_string())
}

pub fn log_of(rig: &Rig, name: &str) -> String {
    std::fs::read_to_string(rig.dir.path().join(name)).unwrap_or_default()
}

pub fn replace_last(s: &str, from: &str, to: &str) -> String {
    match s.rfind(from) {
        Some(i) => format!("{}{to}{}", &s[..i], &s[i + from.len()..]),
        None => panic!("`{from}` not in {s}"),
    }
}

/// A steady app under the autoscaler: `[scaling]` on cpu 60 % with quick
/// evaluations, fast scale-up and a scale-down stabilization window.
pub fn scaling_section(eval: u64, stabilization: u64) -> String {
    format!(
        r#"
[scaling]
evaluation_interval = "{eval}s"
warmup = "1s"

[[scaling.metrics]]
name = "cpu"
target = 60

[scaling.behavior.scale_up]
stabilization = "0s"
policies = [{{ type = "count", value = 10, period = "1s" }}]

[scaling.behavior.scale_down]
stabilization = "{stabilization}s"
policies = [{{ type = "count", value = 10, period = "1s" }}]
"#
    )
}

pub async fn wait_scaling(
    eng: &Running,
    what: &str,
    within: Duration,
    f: impl Fn(&stackpilot::engine::runner::ScalingView) -> bool,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if eng.handle.status.borrow().scaling.first().is_some_and(&f) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {:?}", eng.handle.status.borrow().scaling);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
