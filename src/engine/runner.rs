//! The engine loop: one tick per interval for every cloud with policies. Each tick
//! holds (or waits for) the cloud's lease, reloads policies, resolves launch specs
//! into revisions, checks readiness, plans from the inventory's snapshot and, in
//! `auto` mode (or once per approval in `dry-run`), carries the plan out.

use super::exec::{execute, ExecContext, LaunchInfo};
use super::metrics::EngineMetrics;
use super::plan::{orphan_bookkeeping, plan, AppInput, AppStatus, EngineState, Observed, PlanConfig};
use crate::cloud::Client;
use crate::config::settings::EngineMode;
use crate::domain::{Alert, Event, ServerStatus, Severity, Timestamp};
use crate::inventory::{Kind, Snapshot};
use crate::policy::{self, CloudCatalog, Policy};
use crate::store::Store;
use chrono::Utc;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub mode: EngineMode,
    pub tick: Duration,
    pub concurrency: usize,
    pub plan: PlanConfig,
    pub policies_dir: PathBuf,
    pub state_dir: PathBuf,
    /// `host/pid`, written on members (`stackpilot:engine`) and in events.
    pub engine_id: String,
    pub create_timeout: Duration,
    /// Skip planning when the server data is older than this.
    pub max_data_age: Duration,
    /// Gnocchi granularity the inventory reads (seconds): samples older than twice
    /// this are missing unless a metric sets `max_staleness`.
    pub metrics_granularity: u32,
}

impl EngineConfig {
    pub fn from_settings(
        s: &crate::config::settings::EngineSettings,
        policies_dir: PathBuf,
        state_dir: PathBuf,
    ) -> EngineConfig {
        let d = |x: &crate::config::settings::Dur| chrono::Duration::from_std(x.0).unwrap_or_default();
        EngineConfig {
            mode: s.mode,
            tick: s.tick.0,
            concurrency: s.concurrency,
            plan: PlanConfig {
                create_visibility_timeout: d(&s.create_visibility_timeout),
                build_timeout: d(&s.build_timeout),
                orphan_grace: d(&s.orphan_grace),
                ..PlanConfig::default()
            },
            policies_dir,
            state_dir,
            engine_id: engine_id(),
            create_timeout: Duration::from_secs(30),
            max_data_age: Duration::from_secs(120),
            metrics_granularity: 60,
        }
    }
}

pub fn engine_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into());
    format!("{host}/{}", std::process::id())
}

#[derive(Debug, Clone, PartialEq)]
pub enum EngineCommand {
    SetMode(EngineMode),
    TogglePause,
    /// Carry out the next plan once (dry-run mode).
    Approve,
    TickNow,
}

/// What the console shows of the engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStatus {
    pub mode: String,
    pub paused: bool,
    /// Another engine holds the lease; this one only watches.
    pub observer: bool,
    pub lease_holder: Option<String>,
    pub last_tick: Option<Timestamp>,
    pub ticks: u64,
    /// Per application: what the engine will do next and why.
    pub plans: Vec<(String, Vec<String>)>,
    pub apps: Vec<AppStatus>,
    pub policy_errors: Vec<String>,
    pub alerts: Vec<Alert>,
    pub approval_pending: bool,
    /// Autoscaled applications: why (not) scaling, and the recent decisions.
    pub scaling: Vec<ScalingView>,
}

/// What the console shows of one autoscaled application.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScalingView {
    pub app: String,
    pub cloud: String,
    /// Members counted toward capacity now.
    pub current: u32,
    pub desired: u32,
    pub min: u32,
    pub max: u32,
    pub reason: String,
    pub message: String,
    /// The first metric: name, unit and target.
    pub metric: String,
    pub unit: String,
    pub target: f64,
    /// (unix seconds, value) of the first metric, averaged over the members.
    pub series: Vec<(i64, f64)>,
    pub decisions: Vec<super::scaling::DecisionRecord>,
}

pub struct EngineHandle {
    pub status: watch::Receiver<EngineStatus>,
    pub commands: mpsc::Sender<EngineCommand>,
    pub task: tokio::task::JoinHandle<()>,
}

/// A callback asking the inventory to poll a cloud's servers now.
pub type Refresher = crate::inventory::hub::Notifier;

struct CloudEngine {
    name: String,
    client: Client,
    lease: Option<std::fs::File>,
    state: EngineState,
    catalog: Option<(CloudCatalog, Instant)>,
    /// server id → (first seen ACTIVE, cloud-init marker seen).
    readiness: BTreeMap<String, (Timestamp, bool)>,
    last_status: Vec<AppStatus>,
    /// For Prometheus metric sources.
    http: reqwest::Client,
}

pub struct Engine;

fn marker_matches(marker: &str, log: &str) -> bool {
    if marker.is_empty() {
        return true;
    }
    let parts: Vec<&str> = marker.split('*').collect();
    // Each piece must appear, in order, on one line.
    log.lines().any(|line| {
        let mut rest = line;
        for p in &parts {
            match rest.find(p) {
                Some(idx) => rest = &rest[idx + p.len()..],
                None => return false,
            }
        }
        true
    })
}

impl Engine {
    /// Start the engine for every cloud it has a client for.
    pub fn start(
        cfg: EngineConfig,
        clients: Vec<Client>,
        snapshots: watch::Receiver<Arc<Snapshot>>,
        refresh: Refresher,
        store: Store,
        metrics: Arc<EngineMetrics>,
    ) -> EngineHandle {
        let (status_tx, status_rx) =
            watch::channel(EngineStatus { mode: cfg.mode.as_str().into(), ..Default::default() });
        let (cmd_tx, mut cmd_rx) = mpsc::channel::<EngineCommand>(32);
        let task = tokio::spawn(async move {
            let mut clouds: Vec<CloudEngine> = clients
                .into_iter()
                .map(|c| CloudEngine {
                    name: c.name().to_string(),
                    client: c,
                    lease: None,
                    state: EngineState::default(),
                    catalog: None,
                    readiness: BTreeMap::new(),
                    last_status: vec![],
                    http: reqwest::Client::new(),
                })
                .collect();
            for c in &mut clouds {
                if let Ok(Some(v)) = store.control(&format!("engine-state:{}", c.name)) {
                    if let Ok(s) = serde_json::from_value(v) {
                        c.state = s;
                    }
                }
            }
            let mut mode = cfg.mode;
            let mut paused = store.control("engine-paused").ok().flatten().and_then(|v| v.as_bool()).unwrap_or(false);
            let mut approved = false;
            let mut ticks = 0u64;
            let mut iv = tokio::time::interval(cfg.tick);
            iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = iv.tick() => {}
                    c = cmd_rx.recv() => match c {
                        None => return,
                        Some(EngineCommand::SetMode(m)) => {
                            let e = Event::new(Utc::now(), &crate::domain::event::operator_actor(), "", "set-mode", format!("engine mode {} → {}", mode.as_str(), m.as_str()));
                            let _ = store.add_event(&e);
                            mode = m;
                        }
                        Some(EngineCommand::TogglePause) => {
                            paused = !paused;
                            let _ = store.put_control("engine-paused", &serde_json::json!(paused), &Utc::now());
                            let e = Event::new(Utc::now(), &crate::domain::event::operator_actor(), "", if paused { "pause-engine" } else { "resume-engine" }, "operator request from the console");
                            let _ = store.add_event(&e);
                        }
                        Some(EngineCommand::Approve) => {
                            approved = true;
                            let e = Event::new(Utc::now(), &crate::domain::event::operator_actor(), "", "approve-plan", "operator approved the plan shown");
                            let _ = store.add_event(&e);
                        }
                        Some(EngineCommand::TickNow) => {}
                    }
                }
                if mode == EngineMode::Off {
                    let _ = status_tx.send(EngineStatus { mode: mode.as_str().into(), paused, ..Default::default() });
                    continue;
                }
                ticks += 1;
                let execute_now =
                    mode == EngineMode::Auto && !paused || mode == EngineMode::DryRun && approved && !paused;
                let snap = snapshots.borrow().clone();
                let mut status = EngineStatus {
                    mode: mode.as_str().into(),
                    paused,
                    ticks,
                    last_tick: Some(Utc::now()),
                    ..Default::default()
                };
                let (policies, errors) = policy::load_dir(&cfg.policies_dir);
                status.policy_errors = errors.iter().map(|e| e.to_string()).collect();
                for c in clouds.iter_mut() {
                    let mine: Vec<&Policy> = policies.iter().filter(|p| p.cloud() == c.name).collect();
                    tick_cloud(&cfg, c, &mine, &snap, &store, &metrics, &refresh, execute_now, &mut status).await;
                }
                if execute_now && approved {
                    approved = false;
                }
                status.approval_pending = mode == EngineMode::DryRun && status.plans.iter().any(|(_, p)| !p.is_empty());
                metrics.ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = status_tx.send(status);
            }
        });
        EngineHandle { status: status_rx, commands: cmd_tx, task }
    }
}

fn try_lease(cfg: &EngineConfig, c: &mut CloudEngine, store: &Store) -> Result<(), String> {
    if c.lease.is_some() {
        return Ok(());
    }
    let path = cfg.state_dir.join(format!("engine-{}.lock", c.name.replace('/', "_")));
    let _ = std::fs::create_dir_all(&cfg.state_dir);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match f.try_lock() {
        Ok(()) => {
            let epoch = store
                .control(&format!("lease:{}", c.name))
                .ok()
                .flatten()
                .and_then(|v| v["epoch"].as_u64())
                .unwrap_or(0)
                + 1;
            let _ = store.put_control(
                &format!("lease:{}", c.name),
                &serde_json::json!({"holder": cfg.engine_id, "epoch": epoch, "since": Utc::now().to_rfc3339()}),
                &Utc::now(),
            );
            let e = Event::new(
                Utc::now(),
                &format!("engine:{}", cfg.engine_id),
                &c.name,
                "lease",
                format!("took the engine lease (epoch {epoch})"),
            );
            let _ = store.add_event(&e);
            c.lease = Some(f);
            Ok(())
        }
        Err(_) => {
            let holder = store
                .control(&format!("lease:{}", c.name))
                .ok()
                .flatten()
                .and_then(|v| v["holder"].as_str().map(String::from))
                .unwrap_or_else(|| "another engine".into());
            Err(holder)
        }
    }
}

async fn catalog(c: &mut CloudEngine, snap: Option<&crate::inventory::CloudSnapshot>) -> CloudCatalog {
    let fresh = c.catalog.as_ref().is_some_and(|(_, t)| t.elapsed() < Duration::from_secs(300));
    if !fresh {
        let kp = c.client.compute().list_keypairs().await.unwrap_or_default();
        let sg = c.client.network().list_security_groups().await.unwrap_or_default();
        let mut cat = CloudCatalog { keypairs: kp, security_groups: sg, ..Default::default() };
        // Images, flavors and networks come from the snapshot when it has them.
        match snap {
            Some(s) if !s.flavors.is_empty() && !s.images.is_empty() && !s.networks.is_empty() => {
                cat.images = s.images.to_vec();
                cat.flavors = s.flavors.to_vec();
                cat.networks = s.networks.to_vec();
            }
            _ => {
                cat.images = c.client.image().list_images().await.unwrap_or_default();
                cat.flavors = c.client.compute().list_flavors().await.unwrap_or_default();
                cat.networks = c.client.network().list_networks().await.unwrap_or_default();
            }
        }
        if cat.flavors.is_empty() || cat.images.is_empty() {
            // Do not cache an answer from a cloud that did not answer.
            return cat;
        }
        c.catalog = Some((cat, Instant::now()));
    }
    c.catalog.as_ref().map(|x| x.0.clone()).unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
async fn tick_cloud(
    cfg: &EngineConfig,
    c: &mut CloudEngine,
    policies: &[&Policy],
    snap: &Snapshot,
    store: &Store,
    metrics: &EngineMetrics,
    refresh: &Refresher,
    execute_now: bool,
    status: &mut EngineStatus,
) {
    let now = Utc::now();
    if policies.is_empty()
        && c.state.orphans.is_empty()
        && !snap.cloud(&c.name).is_some_and(|s| s.servers.iter().any(|x| super::members::owner(x).is_some()))
    {
        return;
    }
    if let Err(holder) = try_lease(cfg, c, store) {
        status.observer = true;
        status.lease_holder = Some(holder);
        if let Ok(Some(v)) = store.control(&format!("engine-status:{}", c.name)) {
            if let Some(plans) = v["plans"].as_array() {
                for p in plans {
                    let app = p["app"].as_str().unwrap_or_default().to_string();
                    let lines: Vec<String> = p["lines"]
                        .as_array()
                        .map(|l| l.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                        .unwrap_or_default();
                    status.plans.push((app, lines));
                }
            }
            status.last_tick = v["last_tick"].as_str().and_then(crate::domain::time::parse_timestamp);
        }
        metrics.set_lease(&c.name, false);
        return;
    }
    metrics.set_lease(&c.name, true);
    status.lease_holder = Some(cfg.engine_id.clone());
    let Some(cs) = snap.cloud(&c.name) else { return };
    let poll = cs.servers_poll();
    let age = poll.last_ok.map(|t| (now - t).to_std().unwrap_or_default());
    if age.is_none_or(|a| a > cfg.max_data_age) {
        status.plans.push((
            format!("({})", c.name),
            vec![format!("waiting for fresh server data from {} before planning", c.name)],
        ));
        return;
    }
    let cat = catalog(c, Some(cs)).await;
    let intents_all = store.open_intents(&c.name).unwrap_or_default();
    // One pass over the servers per tick: by id, and members by policy.
    let by_id: HashMap<&str, &Arc<crate::domain::Server>> = cs.servers.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut members_of: HashMap<String, Vec<super::members::Member>> = HashMap::new();
    for m in cs.servers.iter().filter_map(|s| super::members::member(s)) {
        members_of.entry(m.policy_id.clone()).or_default().push(m);
    }
    // Policies → launch specs → revisions.
    let mut inputs = Vec::new();
    let mut launches = BTreeMap::new();
    for p in policies {
        let text = std::fs::read_to_string(&p.file).ok();
        if let Ok((g, changed)) =
            store.record_policy(&p.id, p.name(), &p.file.display().to_string(), &p.content_hash, &now)
        {
            if changed {
                let e = Event::new(
                    now,
                    &format!("engine:{}", cfg.engine_id),
                    &c.name,
                    "policy",
                    format!("{} generation {g}", p.file.display()),
                )
                .app(p.name());
                let _ = store.add_event(&e);
            }
        }
        let members = members_of.remove(&p.id).unwrap_or_default();
        let floor = members.iter().filter_map(|m| m.revision).max().unwrap_or(0);
        let cap = p.spec.deploy.capacity;
        let desired = cap.desired.clamp(cap.min, cap.max);
        let mut ready = BTreeMap::new();
        for m in &members {
            if m.status == ServerStatus::Active {
                // Since launch when the cloud says (a restarted engine does not
                // re-warm members that were serving), else since first seen ACTIVE.
                let launched = by_id.get(m.server_id.as_str()).and_then(|s| s.launched_at);
                let first = launched.map(|l| l.min(now)).unwrap_or(now);
                let (since, marker) = c.readiness.get(&m.server_id).copied().unwrap_or((first, false));
                let mut marker = marker;
                if !marker && p.spec.readiness.cloud_init_marker.is_empty() {
                    marker = true;
                } else if !marker {
                    // Cheap and bounded: one console call per new member until it shows.
                    // Bounded: a slow console never holds the tick.
                    let compute = c.client.compute();
                    let call = compute.console_output(&m.server_id, Some(40));
                    if let Ok(Ok(log)) = tokio::time::timeout(Duration::from_secs(5), call).await {
                        marker = marker_matches(&p.spec.readiness.cloud_init_marker, &log);
                    }
                }
                // Then the HTTP probe, until it answers as expected.
                let checked = c.readiness.get(&m.server_id).is_some_and(|r| r.1);
                if marker && !checked {
                    if let Some(probe) = &p.spec.readiness.http {
                        let server = by_id.get(m.server_id.as_str());
                        marker = http_probe(&c.http, probe, server.map(|s| &***s), &m.name).await;
                    }
                }
                c.readiness.insert(m.server_id.clone(), (since, marker));
                ready.insert(
                    m.server_id.clone(),
                    marker && (now - since).num_seconds() >= p.spec.readiness.min_ready_seconds as i64,
                );
            } else {
                ready.insert(m.server_id.clone(), false);
            }
        }
        let desired = match &p.spec.scaling {
            Some(sc) if super::scaling::enabled(Some(sc)) => {
                let prom = prometheus_values(&c.http, p, sc, store, now).await;
                let ctx = ScaleCtx {
                    cfg,
                    cloud: &c.name,
                    cs,
                    servers: &by_id,
                    members: &members,
                    ready: &ready,
                    now,
                    prom: &prom,
                    metrics: &sc.metrics,
                };
                let (d, view) = autoscale(ctx, p, sc, &c.readiness, &c.state, &intents_all, store);
                status.scaling.push(view);
                d
            }
            _ => desired,
        };
        match policy::resolve(p, &cat, text.as_deref()) {
            Ok(spec) => {
                let hash = spec.hash();
                let spec_json = serde_json::to_string(&spec).unwrap_or_default();
                let (rev, new) =
                    store.revision_for(&p.id, &hash, &spec_json, floor, 10, &now).unwrap_or((floor.max(1), false));
                if new {
                    let e = Event::new(
                        now,
                        &format!("engine:{}", cfg.engine_id),
                        &c.name,
                        "revision",
                        format!("revision {rev}: image {} flavor {}", spec.image_name, spec.flavor_name),
                    )
                    .app(p.name())
                    .detail(format!("spec {}", &hash[..12]));
                    let _ = store.add_event(&e);
                }
                let short = hash[..12].to_string();
                launches.insert(
                    (p.id.clone(), rev),
                    LaunchInfo {
                        app: p.name().to_string(),
                        policy_id: p.id.clone(),
                        generation: 0,
                        spec: spec.clone(),
                        spec_short: short.clone(),
                        app_tag: p.app_tag(),
                    },
                );
                inputs.push(AppInput {
                    policy_id: p.id.clone(),
                    app: p.name().into(),
                    revision: rev,
                    spec: short,
                    vcpus: spec.vcpus,
                    ram_mb: spec.ram_mb,
                    desired,
                    invalid: None,
                    zones: spec.availability_zones.clone(),
                    ready,
                });
            }
            Err(errs) => {
                let why = errs.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; ");
                status.policy_errors.extend(errs.iter().map(|e| e.to_string()));
                inputs.push(AppInput {
                    policy_id: p.id.clone(),
                    app: p.name().into(),
                    revision: floor.max(1),
                    spec: String::new(),
                    vcpus: 1,
                    ram_mb: 0,
                    desired,
                    invalid: Some(why),
                    zones: vec![],
                    ready,
                });
            }
        }
    }
    c.readiness.retain(|id, _| by_id.contains_key(id.as_str()));
    let intents = intents_all;
    let failed =
        store.failed_intents(&c.name, &(now - cfg.plan.orphan_grace - cfg.plan.orphan_grace)).unwrap_or_default();
    let known: BTreeSet<String> = policies.iter().map(|p| p.id.clone()).collect();
    let failed_ops: BTreeSet<String> = failed.iter().map(|i| i.op_id.clone()).collect();
    orphan_bookkeeping(&cs.servers, &known, &failed_ops, &mut c.state, now);
    let the_plan = plan(
        &inputs,
        Observed { servers: &cs.servers, limits: cs.limits.as_ref(), intents: &intents, failed: &failed },
        &c.state,
        &cfg.plan,
        now,
    );
    for a in &inputs {
        let lines: Vec<String> = the_plan
            .actions
            .iter()
            .filter(|x| {
                x.policy_id.as_deref() == Some(&a.policy_id)
                    && !matches!(x.step, super::plan::Step::CompleteIntent { .. })
            })
            .map(|x| x.describe())
            .collect();
        status.plans.push((a.app.clone(), lines));
    }
    status.apps.extend(the_plan.apps.clone());
    metrics.set_apps(&c.name, the_plan.apps.len(), the_plan.apps.iter().filter(|a| a.converged).count());
    for (pid, b) in &c.state.blocked {
        let app = inputs.iter().find(|a| &a.policy_id == pid).map(|a| a.app.clone());
        status.alerts.push(Alert {
            key: format!("{}:capacity:{pid}", c.name),
            cloud: c.name.clone(),
            app,
            severity: Severity::Critical,
            message: format!("capacity blocked ({}): {}", b.reason.as_str(), b.detail),
            since: b.since,
            last_seen: now,
            resolved_at: None,
        });
    }
    if execute_now && !the_plan.actions.is_empty() {
        let ctx = Arc::new(ExecContext {
            client: c.client.clone(),
            store: store.clone(),
            cloud: c.name.clone(),
            engine_id: cfg.engine_id.clone(),
            launches,
            concurrency: cfg.concurrency,
            create_timeout: cfg.create_timeout,
        });
        let mutating = the_plan.actions.iter().any(|a| a.step.mutating());
        let outcomes = execute(ctx, the_plan.actions.clone(), &mut c.state).await;
        for o in &outcomes {
            metrics.count_action(&c.name, o.kind, o.ok);
            if let Some((pid, msg)) = &o.bad_spec {
                let e = Event::new(
                    now,
                    &format!("engine:{}", cfg.engine_id),
                    &c.name,
                    "alert",
                    format!("the cloud refused the launch spec: {msg}"),
                )
                .app(inputs.iter().find(|a| &a.policy_id == pid).map(|a| a.app.clone()).unwrap_or_default())
                .result("blocked")
                .severity(Severity::Critical);
                let _ = store.add_event(&e);
            }
        }
        if mutating {
            refresh(&c.name, Kind::Servers);
        }
    }
    c.last_status = the_plan.apps.clone();
    metrics.set_intents(
        store.count_intents(crate::store::IntentStatus::Pending).unwrap_or(0)
            + store.count_intents(crate::store::IntentStatus::Running).unwrap_or(0),
    );
    let _ = store.put_control(
        &format!("engine-state:{}", c.name),
        &serde_json::to_value(&c.state).unwrap_or_default(),
        &now,
    );
    let plans: Vec<serde_json::Value> =
        status.plans.iter().map(|(a, l)| serde_json::json!({"app": a, "lines": l})).collect();
    let _ = store.put_control(
        &format!("engine-status:{}", c.name),
        &serde_json::json!({"holder": cfg.engine_id, "last_tick": now.to_rfc3339(), "plans": plans}),
        &now,
    );
}

/// The readiness HTTP probe: `{ip}`, `{name}` and `{id}` in the URL are the
/// member's first fixed IPv4 address, name and server id. Ready when the answer's
/// status is one of `expect_status`.
async fn http_probe(
    http: &reqwest::Client,
    probe: &crate::policy::HttpProbe,
    server: Option<&crate::domain::Server>,
    name: &str,
) -> bool {
    let Some(s) = server else { return false };
    let Some(ip) = s.primary_ip() else { return false };
    let url = probe.url.replace("{ip}", ip).replace("{name}", name).replace("{id}", &s.id);
    match http.get(&url).timeout(probe.timeout.0).send().await {
        Ok(r) => probe.expect_status.contains(&r.status().as_u16()),
        Err(_) => false,
    }
}

/// What an autoscaling evaluation reads besides the policy.
struct ScaleCtx<'a> {
    cfg: &'a EngineConfig,
    cloud: &'a str,
    cs: &'a crate::inventory::CloudSnapshot,
    /// The cloud's servers by id.
    servers: &'a HashMap<&'a str, &'a Arc<crate::domain::Server>>,
    members: &'a [super::members::Member],
    ready: &'a BTreeMap<String, bool>,
    now: Timestamp,
    /// Per metric of the policy: what its Prometheus query gave (None for Gnocchi
    /// metrics or when no evaluation is due).
    prom: &'a [Option<Result<super::prometheus::PromValues, String>>],
    /// The policy's metrics (to find a metric's position).
    metrics: &'a [crate::policy::scaling::MetricSpec],
}

impl ScaleCtx<'_> {
    /// The position of a metric in the policy (the order of `prom`).
    fn prom_index(&self, spec: &crate::policy::scaling::MetricSpec) -> Option<usize> {
        self.metrics.iter().position(|m| std::ptr::eq(m, spec))
    }
}

fn load_history(store: &Store, policy_id: &str) -> super::scaling::ScaleHistory {
    store
        .control(&format!("scaling:{policy_id}"))
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// Run the Prometheus queries of a policy's metrics when an evaluation is due.
async fn prometheus_values(
    http: &reqwest::Client,
    p: &Policy,
    sc: &crate::policy::scaling::Scaling,
    store: &Store,
    now: Timestamp,
) -> Vec<Option<Result<super::prometheus::PromValues, String>>> {
    use crate::policy::scaling::Source;
    if !sc.metrics.iter().any(|m| m.source == Source::Prometheus)
        || !super::scaling::due(sc, &load_history(store, &p.id), now)
    {
        return vec![None; sc.metrics.len()];
    }
    let mut out = Vec::new();
    for m in &sc.metrics {
        out.push(match (m.source, &m.prometheus_url, &m.query) {
            (Source::Prometheus, Some(url), Some(q)) => {
                let q = q.replace("{app}", p.name());
                Some(super::prometheus::query(http, url, &q, Duration::from_secs(5)).await)
            }
            _ => None,
        });
    }
    out
}

/// The latest fresh value of one metric of one member.
fn member_value(
    ctx: &ScaleCtx<'_>,
    spec: &crate::policy::scaling::MetricSpec,
    server_id: &str,
    ram_mb: Option<u64>,
) -> Option<f64> {
    if spec.source == crate::policy::scaling::Source::Prometheus {
        let idx = ctx.prom_index(spec)?;
        return match ctx.prom.get(idx)? {
            Some(Ok(v)) => v.per_server.get(server_id).copied(),
            _ => None,
        };
    }
    let (t, v) = series_of(ctx.cs.metrics.get(server_id)?, spec.name).last()?;
    let stale =
        spec.max_staleness.map(|d| d.0.as_secs() as i64).unwrap_or(2 * ctx.cfg.metrics_granularity.max(1) as i64);
    // Samples from a cloud clock ahead of ours count as fresh.
    if ctx.now.timestamp() - t > stale {
        return None;
    }
    in_policy_units(spec.name, v, ram_mb)
}

/// The inventory's series of one metric.
fn series_of(
    s: &crate::inventory::ServerSeries,
    name: crate::policy::scaling::MetricName,
) -> &crate::domain::MetricSeries {
    use crate::policy::scaling::MetricName;
    match name {
        MetricName::Cpu => &s.cpu,
        MetricName::Memory => &s.mem,
        MetricName::NetworkIn => &s.net_in,
        MetricName::NetworkOut => &s.net_out,
    }
}

/// A sample in the unit the policy's target uses: memory in MB becomes % of the
/// flavor's RAM (unknown RAM: no value); CPU is already % and network bytes/s.
fn in_policy_units(name: crate::policy::scaling::MetricName, v: f64, ram_mb: Option<u64>) -> Option<f64> {
    match name {
        crate::policy::scaling::MetricName::Memory => ram_mb.filter(|r| *r > 0).map(|r| v / r as f64 * 100.0),
        _ => Some(v),
    }
}

/// Evaluate the autoscaler for one policy when due; returns the desired count
/// and what the console shows. The history is persisted in the store.
#[allow(clippy::too_many_arguments)]
fn autoscale(
    ctx: ScaleCtx<'_>,
    p: &Policy,
    sc: &crate::policy::scaling::Scaling,
    readiness: &BTreeMap<String, (Timestamp, bool)>,
    state: &EngineState,
    intents: &[crate::store::Intent],
    store: &Store,
) -> (u32, ScalingView) {
    use super::scaling::{due, evaluate, MemberSample, ScaleHistory, ScaleInput};
    let now = ctx.now;
    let key = format!("scaling:{}", p.id);
    let mut hist: ScaleHistory = load_history(store, &p.id);
    let cap = p.spec.deploy.capacity;
    // The autoscaler owns desired once it has decided; policy edits of other fields
    // never reset it, and min/max edits re-clamp it.
    let current = hist.desired.unwrap_or(cap.desired).clamp(cap.min, cap.max);
    let alive: Vec<&super::members::Member> = ctx
        .members
        .iter()
        .filter(|m| m.state == super::members::MemberState::Active && !m.deleting && m.status != ServerStatus::Error)
        .collect();
    let warmup = chrono::Duration::from_std(sc.warmup.0).unwrap_or_default();
    let min_ready = chrono::Duration::seconds(p.spec.readiness.min_ready_seconds as i64);
    let samples: Vec<MemberSample> = alive
        .iter()
        .map(|m| {
            let ready = ctx.ready.get(&m.server_id).copied().unwrap_or(false);
            let ready_at = readiness.get(&m.server_id).map(|(since, _)| *since + min_ready);
            let warming = ready && ready_at.is_none_or(|t| now - t < warmup);
            let ram = ctx.servers.get(m.server_id.as_str()).and_then(|s| s.flavor.ram_mb);
            MemberSample {
                server_id: m.server_id.clone(),
                ready,
                warming,
                values: sc.metrics.iter().map(|spec| member_value(&ctx, spec, &m.server_id, ram)).collect(),
            }
        })
        .collect();
    let flying = intents.iter().any(|i| i.policy_id == p.id && i.action == "create");
    let not_ready = samples.iter().any(|m| !m.ready);
    let capacity_limit = state.blocked.get(&p.id).map(|_| {
        let vcpus = alive.first().and_then(|m| ctx.servers.get(m.server_id.as_str())).and_then(|s| s.flavor.vcpus);
        let ram = alive.first().and_then(|m| ctx.servers.get(m.server_id.as_str())).and_then(|s| s.flavor.ram_mb);
        let room =
            ctx.cs.limits.as_ref().and_then(|l| l.headroom(vcpus.unwrap_or(1), ram.unwrap_or(0))).unwrap_or(0).max(0)
                as u32;
        alive.len() as u32 + room
    });
    let input = ScaleInput {
        scaling: sc,
        min: cap.min,
        max: cap.max,
        current,
        members: samples,
        scale_out_in_flight: flying || not_ready,
        capacity_limit,
        aggregates: ctx
            .prom
            .iter()
            .map(|r| match r {
                Some(Ok(v)) => v.aggregate,
                _ => None,
            })
            .collect(),
    };
    let prom_errors: Vec<String> = ctx
        .prom
        .iter()
        .zip(sc.metrics.iter())
        .filter_map(|(r, m)| match r {
            Some(Err(e)) => Some(format!("{} from prometheus: {e}", m.name.as_str())),
            _ => None,
        })
        .collect();
    let first = sc.metrics.first();
    let mut view = ScalingView {
        app: p.name().to_string(),
        cloud: ctx.cloud.to_string(),
        current: alive.len() as u32,
        desired: current,
        min: cap.min,
        max: cap.max,
        metric: first.map(|m| m.name.as_str().to_string()).unwrap_or_default(),
        unit: first
            .map(|m| match m.name {
                crate::policy::scaling::MetricName::Cpu | crate::policy::scaling::MetricName::Memory => "%",
                _ => "B/s",
            })
            .unwrap_or_default()
            .to_string(),
        target: first.map(|m| m.target).unwrap_or_default(),
        ..Default::default()
    };
    // The first metric over time, averaged across members, for the sparkline.
    if let Some(spec) = first {
        let mut by_t: BTreeMap<i64, (f64, u32)> = BTreeMap::new();
        for m in &alive {
            if let Some(series) = ctx.cs.metrics.get(&m.server_id) {
                let ram = ctx.servers.get(m.server_id.as_str()).and_then(|s| s.flavor.ram_mb);
                for (t, v) in series_of(series, spec.name).iter() {
                    let Some(v) = in_policy_units(spec.name, v, ram) else { continue };
                    let e = by_t.entry(t).or_default();
                    e.0 += v;
                    e.1 += 1;
                }
            }
        }
        view.series = by_t.into_iter().map(|(t, (sum, n))| (t, sum / n as f64)).collect();
    }
    // A Prometheus metric has no series in the inventory: its values at each
    // evaluation draw the line instead.
    if first.is_some_and(|m| m.source == crate::policy::scaling::Source::Prometheus) {
        view.series = hist.decisions.iter().filter_map(|d| d.value.map(|v| (d.at.timestamp(), v))).collect();
    }
    if !due(sc, &hist, now) {
        let last = hist.decisions.last();
        view.reason = last.map(|d| d.reason.as_str().to_string()).unwrap_or_default();
        view.message = store
            .control(&format!("{key}:message"))
            .ok()
            .flatten()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        view.decisions = hist.decisions.clone();
        return (current, view);
    }
    let prev_reason = hist.decisions.last().map(|d| d.reason);
    let mut d = evaluate(&input, &mut hist, now);
    if !prom_errors.is_empty() {
        d.message = format!("{}; {}", d.message, prom_errors.join("; "));
    }
    if d.desired != current || prev_reason != Some(d.reason) {
        let action = if d.desired > current {
            "scale-out"
        } else if d.desired < current {
            "scale-in"
        } else {
            "scale-hold"
        };
        let sev = match d.reason {
            super::scaling::Reason::CapacityBlocked | super::scaling::Reason::MetricsStale => Severity::Warning,
            _ => Severity::Info,
        };
        let e = Event::new(
            now,
            &format!("engine:{}", ctx.cfg.engine_id),
            ctx.cloud,
            action,
            format!("{}: desired {current} → {}", d.reason, d.desired),
        )
        .app(p.name())
        .severity(sev)
        .result(d.reason.as_str())
        .detail(d.message.clone());
        let _ = store.add_event(&e);
    }
    let _ = store.put_control(&key, &serde_json::to_value(&hist).unwrap_or_default(), &now);
    let _ = store.put_control(&format!("{key}:message"), &serde_json::json!(d.message), &now);
    view.desired = d.desired;
    view.min = d.min;
    view.max = d.max;
    view.reason = d.reason.as_str().to_string();
    view.message = d.message;
    view.decisions = hist.decisions;
    (d.desired, view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_init_markers_match_with_wildcards() {
        let log = "[ 22.0] cloud-init[598]: Cloud-init v. 23.4 finished at Wed, 25 Nov 2026. Datasource x.\nlogin:";
        assert!(marker_matches("Cloud-init v. * finished", log));
        assert!(!marker_matches("Cloud-init v. * failed", log));
        assert!(marker_matches("", ""));
        assert!(!marker_matches("Cloud-init v. * finished", "Cloud-init v. 23.4 running 'init'"));
    }
}
