//! Engine counters, health and the loopback HTTP endpoint of `stackpilot
//! engine`: `/healthz` (every task alive, ticks on time, no cloud held for a
//! store, data or catalog problem) and Prometheus-format `/metrics` (with the
//! active alerts).

use crate::domain::json::Obj;
use crate::domain::Alert;
use crate::inventory::liveness::{describe, Liveness};
use prometheus_client::encoding::EncodeLabelSet;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What `/healthz` judges from.
#[derive(Debug, Default)]
struct Health {
    started: Option<Instant>,
    tick: Duration,
    last_tick: Option<Instant>,
    /// Why the last tick could not act (per cloud).
    problems: Vec<String>,
    /// Clouds this engine only observes, and why.
    observing: Vec<String>,
    liveness: Option<Liveness>,
}

type Counter = prometheus_client::metrics::counter::Counter;
type Gauge = prometheus_client::metrics::gauge::Gauge;
type GaugeF = prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>;
type Family<L, M> = prometheus_client::metrics::family::Family<L, M>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloudL {
    cloud: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionL {
    cloud: String,
    kind: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertL {
    cloud: String,
    kind: String,
    severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppL {
    cloud: String,
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppMetricL {
    cloud: String,
    app: String,
    metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppReasonL {
    cloud: String,
    app: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppStepL {
    cloud: String,
    app: String,
    step: String,
    result: String,
}

/// One application's figures after a tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppFigures {
    pub desired: u32,
    pub members: u32,
    pub ready: u32,
    pub unhealthy: u32,
    /// The scaling metric: (name, value averaged over the members, target).
    pub metric: Option<(String, Option<f64>, f64)>,
    /// A rollout: (new members ready, desired).
    pub rollout: Option<(u32, u32)>,
}

/// The engine's metrics, kept in a `prometheus-client` registry (the text
/// exposition is the crate's, never formatted by hand).
pub struct EngineMetrics {
    pub ticks: AtomicU64,
    ticks_c: Counter,
    actions: Family<ActionL, Counter>,
    action_counts: Mutex<BTreeMap<(String, bool), u64>>,
    apps: Family<CloudL, Gauge>,
    apps_converged: Family<CloudL, Gauge>,
    lease: Family<CloudL, Gauge>,
    intents: Gauge,
    healthy: Gauge,
    alerts_g: Family<AlertL, Gauge>,
    app_desired: Family<AppL, Gauge>,
    app_members: Family<AppL, Gauge>,
    app_ready: Family<AppL, Gauge>,
    app_unhealthy: Family<AppL, Gauge>,
    app_alerts: Family<AppL, Gauge>,
    app_metric: Family<AppMetricL, GaugeF>,
    app_target: Family<AppMetricL, GaugeF>,
    app_rollout_ready: Family<AppL, Gauge>,
    app_rollout_desired: Family<AppL, Gauge>,
    scaling: Family<AppReasonL, Counter>,
    recovery: Family<AppStepL, Counter>,
    registry: prometheus_client::registry::Registry,
    health: Mutex<Health>,
    alerts: Mutex<Vec<Alert>>,
}

impl std::fmt::Debug for EngineMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineMetrics").field("ticks", &self.ticks).finish_non_exhaustive()
    }
}

impl Default for EngineMetrics {
    fn default() -> Self {
        let mut r = prometheus_client::registry::Registry::default();
        let ticks_c = Counter::default();
        r.register("stackpilot_engine_ticks", "Engine ticks since start", ticks_c.clone());
        let actions = Family::<ActionL, Counter>::default();
        r.register("stackpilot_engine_actions", "Actions carried out, by kind and result", actions.clone());
        let intents = Gauge::default();
        r.register("stackpilot_engine_intents_pending", "Write-ahead intents not resolved yet", intents.clone());
        let apps = Family::<CloudL, Gauge>::default();
        r.register("stackpilot_engine_apps", "Applications with a policy", apps.clone());
        let apps_converged = Family::<CloudL, Gauge>::default();
        r.register("stackpilot_engine_apps_converged", "Applications at their desired state", apps_converged.clone());
        let lease = Family::<CloudL, Gauge>::default();
        r.register("stackpilot_engine_lease_held", "1 when this engine holds the cloud's lease", lease.clone());
        let alerts_g = Family::<AlertL, Gauge>::default();
        r.register("stackpilot_alerts", "Active alerts, by kind and severity", alerts_g.clone());
        let healthy = Gauge::default();
        r.register("stackpilot_engine_healthy", "1 when /healthz answers ok", healthy.clone());
        let fam = || Family::<AppL, Gauge>::default();
        let (app_desired, app_members, app_ready, app_unhealthy, app_alerts) = (fam(), fam(), fam(), fam(), fam());
        r.register("stackpilot_app_desired", "Members an application wants", app_desired.clone());
        r.register("stackpilot_app_members", "Members counted toward capacity", app_members.clone());
        r.register("stackpilot_app_ready", "Members ready (serving)", app_ready.clone());
        r.register(
            "stackpilot_app_unhealthy",
            "Members failing (ERROR, stopped unexpectedly, unhealthy)",
            app_unhealthy.clone(),
        );
        r.register("stackpilot_app_alerts_firing", "Alerts firing for an application", app_alerts.clone());
        let app_metric = Family::<AppMetricL, GaugeF>::default();
        r.register("stackpilot_app_metric_value", "The scaling metric, averaged over the members", app_metric.clone());
        let app_target = Family::<AppMetricL, GaugeF>::default();
        r.register("stackpilot_app_metric_target", "The scaling metric's target", app_target.clone());
        let (app_rollout_ready, app_rollout_desired) = (fam(), fam());
        r.register(
            "stackpilot_app_rollout_new_ready",
            "New-revision members ready in a rollout",
            app_rollout_ready.clone(),
        );
        r.register(
            "stackpilot_app_rollout_desired",
            "Members a rollout brings to the new revision",
            app_rollout_desired.clone(),
        );
        let scaling = Family::<AppReasonL, Counter>::default();
        r.register("stackpilot_app_scaling_decisions", "Scaling decisions, by reason", scaling.clone());
        let recovery = Family::<AppStepL, Counter>::default();
        r.register("stackpilot_app_recovery_actions", "Recovery steps, by step and result", recovery.clone());
        EngineMetrics {
            ticks: AtomicU64::new(0),
            ticks_c,
            actions,
            action_counts: Mutex::default(),
            apps,
            apps_converged,
            lease,
            intents,
            healthy,
            alerts_g,
            app_desired,
            app_members,
            app_ready,
            app_unhealthy,
            app_alerts,
            app_metric,
            app_target,
            app_rollout_ready,
            app_rollout_desired,
            scaling,
            recovery,
            registry: r,
            health: Mutex::default(),
            alerts: Mutex::default(),
        }
    }
}

fn g(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

impl EngineMetrics {
    /// The engine started with this tick; `live` knows its tasks.
    pub fn started(&self, tick: Duration, live: Liveness) {
        if let Ok(mut h) = self.health.lock() {
            h.started = Some(Instant::now());
            h.tick = tick;
            h.liveness = Some(live);
        }
    }
    /// A tick ended: why it could not act, and what it only observes.
    pub fn ticked(&self, problems: Vec<String>, observing: Vec<String>) {
        if let Ok(mut h) = self.health.lock() {
            h.last_tick = Some(Instant::now());
            h.problems = problems;
            h.observing = observing;
        }
        self.ticks_c.inc();
    }
    pub fn set_alerts(&self, alerts: &[Alert]) {
        self.alerts_g.clear();
        self.app_alerts.clear();
        for x in alerts.iter().filter(|x| x.is_active()) {
            let l = AlertL { cloud: x.cloud.clone(), kind: x.kind.clone(), severity: x.severity.as_str().to_string() };
            self.alerts_g.get_or_create(&l).inc();
            if let Some(app) = &x.app {
                self.app_alerts.get_or_create(&AppL { cloud: x.cloud.clone(), app: app.clone() }).inc();
            }
        }
        if let Ok(mut a) = self.alerts.lock() {
            *a = alerts.to_vec();
        }
    }
    /// `(healthy, text)`: every task alive, the last tick recent, no cloud held.
    pub fn health(&self) -> (bool, String) {
        let Ok(h) = self.health.lock() else { return (false, "unhealthy: health state poisoned\n".into()) };
        let mut bad: Vec<String> = Vec::new();
        if let Some(live) = &h.liveness {
            bad.extend(live.dead().iter().map(|(n, s)| describe(n, s)));
        }
        let late = (h.tick * 3).max(Duration::from_secs(30));
        match (h.last_tick, h.started) {
            (Some(t), _) if t.elapsed() > late => bad.push(format!("no tick for {}s", t.elapsed().as_secs())),
            (None, Some(s)) if s.elapsed() > late => {
                bad.push(format!("no tick since the start {}s ago", s.elapsed().as_secs()))
            }
            _ => {}
        }
        bad.extend(h.problems.iter().cloned());
        let mut text = String::new();
        if bad.is_empty() {
            text.push_str(&format!("ok ticks={}\n", self.ticks.load(Ordering::Relaxed)));
        } else {
            text.push_str("unhealthy\n");
            for b in &bad {
                text.push_str(&format!("- {b}\n"));
            }
        }
        for o in &h.observing {
            text.push_str(&format!("observing {o}\n"));
        }
        (bad.is_empty(), text)
    }
    pub fn count_action(&self, cloud: &str, kind: &str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.actions.get_or_create(&ActionL { cloud: cloud.into(), kind: kind.into(), result: result.into() }).inc();
        if let Ok(mut m) = self.action_counts.lock() {
            *m.entry((kind.to_string(), ok)).or_insert(0) += 1;
        }
    }
    pub fn set_apps(&self, cloud: &str, total: usize, converged: usize) {
        self.apps.get_or_create(&CloudL { cloud: cloud.into() }).set(g(total));
        self.apps_converged.get_or_create(&CloudL { cloud: cloud.into() }).set(g(converged));
    }
    /// One application's figures after a tick.
    pub fn set_app(&self, cloud: &str, app: &str, f: &AppFigures) {
        let l = AppL { cloud: cloud.into(), app: app.into() };
        self.app_desired.get_or_create(&l).set(g(f.desired));
        self.app_members.get_or_create(&l).set(g(f.members));
        self.app_ready.get_or_create(&l).set(g(f.ready));
        self.app_unhealthy.get_or_create(&l).set(g(f.unhealthy));
        if let Some((name, value, target)) = &f.metric {
            let ml = AppMetricL { cloud: cloud.into(), app: app.into(), metric: name.clone() };
            self.app_target.get_or_create(&ml).set(*target);
            match value {
                Some(v) => {
                    self.app_metric.get_or_create(&ml).set(*v);
                }
                // No value: no sample, rather than a stale or made-up one.
                None => {
                    self.app_metric.remove(&ml);
                }
            }
        }
        match f.rollout {
            Some((ready, desired)) => {
                self.app_rollout_ready.get_or_create(&l).set(g(ready));
                self.app_rollout_desired.get_or_create(&l).set(g(desired));
            }
            None => {
                self.app_rollout_ready.remove(&l);
                self.app_rollout_desired.remove(&l);
            }
        }
    }
    /// A scaling decision was made for `reason` (`scale-out`, `scale-in`, ...).
    pub fn count_scaling(&self, cloud: &str, app: &str, reason: &str) {
        self.scaling.get_or_create(&AppReasonL { cloud: cloud.into(), app: app.into(), reason: reason.into() }).inc();
    }
    /// A recovery step was sent (or failed to be).
    pub fn count_recovery(&self, cloud: &str, app: &str, step: &str, ok: bool) {
        let result = if ok { "ok" } else { "failed" }.to_string();
        self.recovery
            .get_or_create(&AppStepL { cloud: cloud.into(), app: app.into(), step: step.into(), result })
            .inc();
    }
    pub fn set_lease(&self, cloud: &str, held: bool) {
        self.lease.get_or_create(&CloudL { cloud: cloud.into() }).set(i64::from(held));
    }
    pub fn set_intents(&self, n: i64) {
        self.intents.set(n.max(0));
    }
    pub fn actions(&self, kind: &str, ok: bool) -> u64 {
        self.action_counts.lock().map(|m| m.get(&(kind.to_string(), ok)).copied().unwrap_or(0)).unwrap_or(0)
    }

    /// The text exposition (OpenMetrics, which Prometheus reads).
    pub fn render(&self) -> String {
        self.healthy.set(i64::from(self.health().0));
        let mut s = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut s, &self.registry) {
            tracing::error!("the metrics do not encode: {e}");
        }
        s
    }
}

/// Serve `/healthz` and `/metrics` on 127.0.0.1:`port` (0 picks a port).
pub async fn serve(
    metrics: std::sync::Arc<EngineMetrics>,
    port: u16,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let m1 = metrics.clone();
    let app =
        axum::Router::new()
            .route(
                "/healthz",
                get(move || {
                    let m = m1.clone();
                    async move {
                        let (ok, text) = m.health();
                        let code =
                            if ok { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
                        (code, text)
                    }
                }),
            )
            .route(
                "/metrics",
                get(move || {
                    let m = metrics.clone();
                    async move {
                        ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.render())
                    }
                }),
            );
    let h = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the /metrics endpoint stopped: {e}");
        }
    });
    Ok((addr, h))
}

/// The file that says which engine serves on a port.
fn port_file(state_dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    state_dir.join(format!("engine-metrics-{port}.json"))
}

/// Note that this engine serves on `port` (so another can name it).
pub fn record_port(state_dir: &std::path::Path, port: u16, engine_id: &str) {
    let v = crate::domain::json::json!({"engine": engine_id, "pid": std::process::id()});
    if let Err(e) = crate::config::paths::write_private(&port_file(state_dir, port), v.to_string().as_bytes()) {
        tracing::warn!("cannot note the metrics port in {}: {e}", state_dir.display());
    }
}

/// Who holds a port: the engine that noted it (when that process still runs),
/// else "another program".
pub fn port_holder(state_dir: &std::path::Path, port: u16) -> String {
    let noted = std::fs::read_to_string(port_file(state_dir, port))
        .ok()
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(t.as_bytes()).ok());
    match noted {
        Some(v) => {
            let pid = v.at("pid").as_u64().unwrap_or(0);
            let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
            match (v.at("engine").as_str(), alive) {
                (Some(e), true) => format!("stackpilot engine {e}"),
                _ => "another program".into(),
            }
        }
        None => "another program".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_exposition_with_per_app_figures() {
        let m = EngineMetrics::default();
        m.ticked(vec![], vec![]);
        m.count_action("demo", "create", true);
        m.count_action("demo", "create", true);
        m.count_action("demo", "delete", false);
        m.set_apps("demo", 3, 2);
        m.set_lease("demo", true);
        let fig = AppFigures {
            desired: 4,
            members: 4,
            ready: 3,
            unhealthy: 1,
            metric: Some(("cpu".into(), Some(61.5), 60.0)),
            rollout: Some((1, 4)),
        };
        m.set_app("demo", "web", &fig);
        m.count_recovery("demo", "web", "reboot-soft", true);
        m.count_scaling("demo", "web", "scale-out");
        let t = m.render();
        for line in [
            "stackpilot_engine_ticks_total 1\n",
            "stackpilot_engine_actions_total{cloud=\"demo\",kind=\"create\",result=\"ok\"} 2\n",
            "stackpilot_engine_actions_total{cloud=\"demo\",kind=\"delete\",result=\"failed\"} 1\n",
            "stackpilot_engine_apps_converged{cloud=\"demo\"} 2\n",
            "stackpilot_engine_lease_held{cloud=\"demo\"} 1\n",
            "stackpilot_app_ready{cloud=\"demo\",app=\"web\"} 3\n",
            "stackpilot_app_unhealthy{cloud=\"demo\",app=\"web\"} 1\n",
            "stackpilot_app_metric_value{cloud=\"demo\",app=\"web\",metric=\"cpu\"} 61.5\n",
            "stackpilot_app_rollout_new_ready{cloud=\"demo\",app=\"web\"} 1\n",
            "stackpilot_app_recovery_actions_total{cloud=\"demo\",app=\"web\",step=\"reboot-soft\",result=\"ok\"} 1\n",
            "stackpilot_app_scaling_decisions_total{cloud=\"demo\",app=\"web\",reason=\"scale-out\"} 1\n",
        ] {
            assert!(t.contains(line), "{line} in\n{t}");
        }
        assert_eq!(m.actions("create", true), 2);
        let a = crate::domain::Alert::new(
            "api-unreachable",
            "demo:api:compute",
            "demo",
            crate::domain::Severity::Critical,
            "x",
        )
        .app(Some("web\"\n".into()));
        m.set_alerts(&[a.clone(), a]);
        let t = m.render();
        assert!(
            t.contains("stackpilot_alerts{cloud=\"demo\",kind=\"api-unreachable\",severity=\"critical\"} 2\n"),
            "{t}"
        );
        assert!(t.contains("app=\"web\\\"\\n\""), "label values are escaped: {t}");
        // A metric without a value has no sample.
        m.set_app("demo", "web", &AppFigures { metric: Some(("cpu".into(), None, 60.0)), ..fig });
        assert!(!m.render().contains("stackpilot_app_metric_value{"));
    }

    #[tokio::test]
    async fn health_follows_tasks_ticks_and_holds() {
        let m = EngineMetrics::default();
        let live = Liveness::default();
        let g = live.register("poller demo/servers");
        m.started(Duration::from_secs(10), live.clone());
        m.ticked(vec![], vec!["demo: the engine lease is held by h/1".into()]);
        let (ok, text) = m.health();
        assert!(ok && text.contains("observing demo"), "{text}");
        m.ticked(vec!["demo: store x: database is locked".into()], vec![]);
        assert!(!m.health().0);
        m.ticked(vec![], vec![]);
        drop(g);
        let (ok, text) = m.health();
        assert!(!ok && text.contains("poller demo/servers stopped"), "{text}");
    }
}
