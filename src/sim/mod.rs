//! The embedded OpenStack simulator: an HTTP server on 127.0.0.1 that speaks the
//! Keystone, Nova, Glance, Neutron, Cinder and Gnocchi wire formats over a world
//! model with lifecycles, workloads, quotas, capacity and fault injection.
//!
//! It is a separate program that happens to live in the same binary: it never
//! imports `cloud`, `engine` or `tui`, builds its JSON from its own types, and is
//! tested through HTTP like a real cloud.
//!
//! Service paths (one port, like a devstack behind Apache): `/identity`,
//! `/compute/v2.1`, `/image`, `/networking`, `/volume/v3/<project>`, `/metric`;
//! the control API lives under `/_sim/`.

pub mod admin;
pub mod cinder;
pub mod clock;
pub mod glance;
pub mod gnocchi;
pub mod http;
pub mod keystone;
pub mod netmodel;
pub mod neutron;
pub mod nova;
pub mod nova_ops;
pub mod sshkey;
pub mod workload;
pub mod world;
pub mod worldfile;

use crate::domain::Clock;
use http::{ServiceFaults, SimShared};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which world to start with.
#[derive(Debug, Clone, PartialEq)]
pub enum WorldSource {
    /// The built-in default world (tests, `stackpilot sim`).
    Default,
    /// The demo world (`--demo`).
    Demo,
    /// The demo's second cloud.
    DemoEast,
    /// A world file.
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// 0 picks a free port.
    pub port: u16,
    /// Simulated seconds per real second.
    pub speed: f64,
    pub world: WorldSource,
    /// Persist the world here (loaded at start when it exists).
    pub state: Option<PathBuf>,
    pub seed: u64,
    /// Initial faults per service (`all` for every service).
    pub faults: BTreeMap<String, ServiceFaults>,
    /// Override the world's token lifetime (real seconds).
    pub token_lifetime_secs: Option<u64>,
    /// Override the world's boot time (simulated seconds).
    pub boot_secs: Option<f64>,
    /// The secret every `/_sim/` request carries (`X-Sim-Token`, or
    /// `Authorization: Bearer`); a random one when not given.
    pub control_token: Option<String>,
    /// Carry out the world's scheduled incidents (`[[incidents]]`); off for a
    /// measurement that needs every server running.
    pub incidents: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            port: 0,
            speed: 1.0,
            world: WorldSource::Default,
            state: None,
            seed: 42,
            faults: BTreeMap::new(),
            token_lifetime_secs: None,
            boot_secs: None,
            control_token: None,
            incidents: true,
        }
    }
}

/// A running simulator.
pub struct SimHandle {
    pub addr: SocketAddr,
    pub base_url: String,
    /// What `/_sim/` requests must carry (see `SimConfig::control_token`).
    pub control_token: String,
    shared: Arc<SimShared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    state_path: Option<PathBuf>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle").field("base_url", &self.base_url).finish()
    }
}

impl SimHandle {
    /// Keystone URL for clients (`.../identity/v3`).
    pub fn auth_url(&self) -> String {
        format!("{}/identity/v3", self.base_url)
    }
    /// The simulated clock.
    pub fn now(&self) -> crate::domain::Timestamp {
        self.shared.clock.now()
    }
    /// Stop serving and save the world (with `--state`).
    pub async fn shutdown(mut self) {
        self.stop().await;
    }
    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            // The server may already be gone; then there is nobody left to tell.
            tx.send(()).ok();
        }
        if let Some(s) = self.server.take() {
            if tokio::time::timeout(Duration::from_secs(5), s).await.is_err() {
                tracing::warn!("the simulator did not stop serving within 5 s");
            }
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(p) = &self.state_path {
            if let Err(e) = save(&self.shared, p) {
                tracing::warn!("could not save the simulator state to {}: {e}", p.display());
            }
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            tx.send(()).ok();
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

/// A `clouds.yaml` that points a client at the simulator.
pub fn clouds_yaml(base: &str, cloud: &str, user: &str, password: &str, project: &str) -> String {
    format!(
        "clouds:\n  {cloud}:\n    auth:\n      auth_url: {base}/identity/v3\n      username: {user}\n      password: {password}\n      project_name: {project}\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    interface: public\n    identity_api_version: 3\n"
    )
}

/// Why the simulator could not start or save its world.
#[derive(Debug, thiserror::Error)]
pub enum SimStartError {
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{}: not a simulator state file: {err}; move it aside to start from the world file", path.display())]
    State { path: PathBuf, err: serde_json::Error },
    #[error(transparent)]
    World(#[from] worldfile::WorldFileError),
    #[error("{}: cannot write the world: {err}", path.display())]
    Save { path: PathBuf, err: serde_json::Error },
    #[error("cannot listen on 127.0.0.1:{port}: {err}; choose another port")]
    Listen { port: u16, err: std::io::Error },
    #[error("a task panicked while holding the world")]
    Poisoned,
}

fn io_at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> SimStartError + '_ {
    move |err| SimStartError::Io { path: path.to_path_buf(), err }
}

fn save(s: &SimShared, path: &PathBuf) -> Result<(), SimStartError> {
    let json = {
        let w = s.world.lock().map_err(|_| SimStartError::Poisoned)?;
        serde_json::to_vec(&*w).map_err(|err| SimStartError::Save { path: path.clone(), err })?
    };
    // The world holds user data and passwords: the user's alone.
    let tmp = path.with_extension("tmp");
    crate::config::paths::write_private(&tmp, &json).map_err(io_at(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_at(path))?;
    Ok(())
}

/// Build the initial world.
pub fn initial_world(cfg: &SimConfig, now: crate::domain::Timestamp) -> Result<world::World, SimStartError> {
    if let Some(p) = &cfg.state {
        if p.exists() {
            let bytes = std::fs::read(p).map_err(io_at(p))?;
            return serde_json::from_slice(&bytes).map_err(|err| SimStartError::State { path: p.clone(), err });
        }
    }
    let mut w = match &cfg.world {
        WorldSource::Default => worldfile::load(worldfile::DEFAULT_WORLD, "default world", now)?,
        WorldSource::Demo => worldfile::load(worldfile::DEMO_WORLD, "assets/demo/world.toml", now)?,
        WorldSource::DemoEast => worldfile::load(worldfile::DEMO_EAST_WORLD, "assets/demo/world-east.toml", now)?,
        WorldSource::File(p) => {
            let text = std::fs::read_to_string(p).map_err(io_at(p))?;
            worldfile::load(&text, &p.display().to_string(), now)?
        }
    };
    w.settings.seed = cfg.seed;
    Ok(w)
}

/// The history a new world starts with (simulated seconds).
pub const BACKFILL_SECS: i64 = 3600;

/// Start the simulator on 127.0.0.1.
pub async fn start(cfg: SimConfig) -> Result<SimHandle, SimStartError> {
    let wall = chrono::Utc::now();
    let mut w = initial_world(&cfg, wall)?;
    // Simulated time never goes back: a world saved by an earlier run (whose
    // clock ran ahead at a higher speed) resumes where it stopped.
    let resume = w
        .metrics_until
        .and_then(|t| chrono::DateTime::from_timestamp(t.saturating_add(w.settings.granularity.max(1) as i64), 0))
        .filter(|t| *t > wall);
    let clock = clock::SimClock::new(cfg.speed, resume.unwrap_or(wall));
    // A new world has been running for an hour: its first read shows history.
    w.backfill_metrics(clock.now(), BACKFILL_SECS);
    if let Some(t) = cfg.token_lifetime_secs {
        w.settings.token_lifetime_secs = t;
    }
    if !cfg.incidents {
        w.workload.incidents.clear();
    }
    if let Some(b) = cfg.boot_secs {
        w.settings.boot_secs = b;
    }
    let granularity = w.settings.granularity.max(1) as f64;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", cfg.port))
        .await
        .map_err(|err| SimStartError::Listen { port: cfg.port, err })?;
    let addr = listener.local_addr().map_err(|err| SimStartError::Listen { port: cfg.port, err })?;
    let base_url = format!("http://{addr}");
    let control_token = cfg
        .control_token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .unwrap_or_else(|| http::random_hex(32));
    let shared = Arc::new(SimShared {
        world: Mutex::new(w),
        clock,
        base_url: Mutex::new(base_url.clone()),
        tokens: Mutex::new(HashMap::new()),
        faults: Mutex::new(cfg.faults.clone()),
        rng: Mutex::new(fastrand::Rng::with_seed(cfg.seed)),
        counters: Mutex::new(BTreeMap::new()),
        dirty: std::sync::atomic::AtomicBool::new(false),
        control_token: control_token.clone(),
    });
    let app = axum::Router::new()
        .merge(keystone::router())
        .merge(nova::router())
        .merge(glance::router())
        .merge(neutron::router())
        .merge(cinder::router())
        .merge(gnocchi::router())
        .merge(admin::router())
        .fallback(http::h1(fallback))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), http::layer))
        .with_state(shared.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                // A dropped sender stops the server just as a sent stop does.
                rx.await.ok();
            })
            .await;
        if let Err(e) = served {
            tracing::warn!("the simulator stopped serving: {e}");
        }
    });
    let mut tasks = Vec::new();
    // Metrics and lifecycles move even when nobody calls.
    let tick_shared = shared.clone();
    let period = Duration::from_secs_f64((granularity / cfg.speed.max(0.001)).clamp(0.05, 1.0));
    tasks.push(tokio::spawn(async move {
        let mut iv = tokio::time::interval(period);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            iv.tick().await;
            let now = tick_shared.clock.now();
            if let Ok(mut w) = tick_shared.world.lock() {
                w.advance(now);
                w.run_incidents(now);
                w.tick_metrics(now);
            }
        }
    }));
    if let Some(p) = cfg.state.clone() {
        let save_shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut iv = tokio::time::interval(Duration::from_secs(5));
            loop {
                iv.tick().await;
                if save_shared.dirty.swap(false, Ordering::Relaxed) {
                    if let Err(e) = save(&save_shared, &p) {
                        tracing::warn!("could not save the simulator state to {}: {e}", p.display());
                    }
                }
            }
        }));
    }
    Ok(SimHandle {
        addr,
        base_url,
        control_token,
        shared,
        shutdown: Some(tx),
        server: Some(server),
        tasks,
        state_path: cfg.state,
    })
}

fn fallback(req: axum::http::Request<axum::body::Body>) -> axum::response::Response {
    let path = req.uri().path().to_string();
    let service = http::service_of(&path);
    let e = world::SimError::not_found("The resource could not be found.");
    http::render_error(service, req.headers(), &e)
}
