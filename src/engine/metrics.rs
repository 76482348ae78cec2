//! Engine counters, health and the loopback HTTP endpoint of `stackpilot
//! engine`: `/healthz` (every task alive, ticks on time, no cloud held for a
//! store, data or catalog problem) and Prometheus-format `/metrics` (with the
//! active alerts).

use crate::domain::json::Obj;
use crate::domain::Alert;
use crate::inventory::liveness::{describe, Liveness};
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

#[derive(Debug, Default)]
pub struct EngineMetrics {
    pub ticks: AtomicU64,
    actions: Mutex<BTreeMap<(String, String, String), u64>>,
    apps: Mutex<BTreeMap<String, (usize, usize)>>,
    lease: Mutex<BTreeMap<String, bool>>,
    intents: AtomicU64,
    health: Mutex<Health>,
    alerts: Mutex<Vec<Alert>>,
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
    }
    pub fn set_alerts(&self, alerts: &[Alert]) {
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
        if let Ok(mut m) = self.actions.lock() {
            *m.entry((cloud.to_string(), kind.to_string(), if ok { "ok" } else { "failed" }.to_string()))
                .or_insert(0) += 1;
        }
    }
    pub fn set_apps(&self, cloud: &str, total: usize, converged: usize) {
        if let Ok(mut m) = self.apps.lock() {
            m.insert(cloud.to_string(), (total, converged));
        }
    }
    pub fn set_lease(&self, cloud: &str, held: bool) {
        if let Ok(mut m) = self.lease.lock() {
            m.insert(cloud.to_string(), held);
        }
    }
    pub fn set_intents(&self, n: i64) {
        self.intents.store(n.max(0) as u64, Ordering::Relaxed);
    }
    pub fn actions(&self, kind: &str, ok: bool) -> u64 {
        self.actions
            .lock()
            .map(|m| m.iter().filter(|((_, k, r), _)| k == kind && (r == "ok") == ok).map(|(_, v)| *v).sum())
            .unwrap_or(0)
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("# HELP stackpilot_engine_ticks_total Engine ticks since start.\n# TYPE stackpilot_engine_ticks_total counter\n");
        s.push_str(&format!("stackpilot_engine_ticks_total {}\n", self.ticks.load(Ordering::Relaxed)));
        s.push_str("# HELP stackpilot_engine_actions_total Actions carried out, by kind and result.\n# TYPE stackpilot_engine_actions_total counter\n");
        if let Ok(m) = self.actions.lock() {
            for ((cloud, kind, result), v) in m.iter() {
                s.push_str(&format!(
                    "stackpilot_engine_actions_total{{cloud=\"{cloud}\",kind=\"{kind}\",result=\"{result}\"}} {v}\n"
                ));
            }
        }
        s.push_str("# HELP stackpilot_engine_intents_pending Write-ahead intents not resolved yet.\n# TYPE stackpilot_engine_intents_pending gauge\n");
        s.push_str(&format!("stackpilot_engine_intents_pending {}\n", self.intents.load(Ordering::Relaxed)));
        s.push_str("# HELP stackpilot_engine_apps Applications with a policy.\n# TYPE stackpilot_engine_apps gauge\n");
        s.push_str("# HELP stackpilot_engine_apps_converged Applications at their desired state.\n# TYPE stackpilot_engine_apps_converged gauge\n");
        if let Ok(m) = self.apps.lock() {
            for (cloud, (total, conv)) in m.iter() {
                s.push_str(&format!("stackpilot_engine_apps{{cloud=\"{cloud}\"}} {total}\n"));
                s.push_str(&format!("stackpilot_engine_apps_converged{{cloud=\"{cloud}\"}} {conv}\n"));
            }
        }
        s.push_str("# HELP stackpilot_engine_lease_held 1 when this engine holds the cloud's lease.\n# TYPE stackpilot_engine_lease_held gauge\n");
        if let Ok(m) = self.lease.lock() {
            for (cloud, held) in m.iter() {
                s.push_str(&format!("stackpilot_engine_lease_held{{cloud=\"{cloud}\"}} {}\n", u8::from(*held)));
            }
        }
        s.push_str("# HELP stackpilot_alerts Active alerts, by kind and severity.\n# TYPE stackpilot_alerts gauge\n");
        if let Ok(a) = self.alerts.lock() {
            let mut by: BTreeMap<(String, String, String), u64> = BTreeMap::new();
            for x in a.iter().filter(|x| x.is_active()) {
                *by.entry((x.cloud.clone(), x.kind.clone(), x.severity.as_str().to_string())).or_default() += 1;
            }
            for ((cloud, kind, sev), n) in by {
                s.push_str(&format!(
                    "stackpilot_alerts{{cloud=\"{}\",kind=\"{}\",severity=\"{sev}\"}} {n}\n",
                    label(&cloud),
                    label(&kind)
                ));
            }
        }
        s.push_str(
            "# HELP stackpilot_engine_healthy 1 when /healthz answers ok.\n# TYPE stackpilot_engine_healthy gauge\n",
        );
        s.push_str(&format!("stackpilot_engine_healthy {}\n", u8::from(self.health().0)));
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
    let app = axum::Router::new()
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
                async move { ([("content-type", "text/plain; version=0.0.4")], m.render()) }
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
    let v = serde_json::json!({"engine": engine_id, "pid": std::process::id()});
    if let Err(e) = crate::config::paths::write_private(&port_file(state_dir, port), v.to_string().as_bytes()) {
        tracing::warn!("cannot note the metrics port in {}: {e}", state_dir.display());
    }
}

/// Who holds a port: the engine that noted it (when that process still runs),
/// else "another program".
pub fn port_holder(state_dir: &std::path::Path, port: u16) -> String {
    let noted = std::fs::read_to_string(port_file(state_dir, port))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
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

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = EngineMetrics::default();
        m.ticks.fetch_add(3, Ordering::Relaxed);
        m.count_action("demo", "create", true);
        m.count_action("demo", "create", true);
        m.count_action("demo", "delete", false);
        m.set_apps("demo", 3, 2);
        m.set_lease("demo", true);
        let t = m.render();
        assert!(t.contains("stackpilot_engine_ticks_total 3\n"));
        assert!(t.contains("stackpilot_engine_actions_total{cloud=\"demo\",kind=\"create\",result=\"ok\"} 2\n"));
        assert!(t.contains("stackpilot_engine_actions_total{cloud=\"demo\",kind=\"delete\",result=\"failed\"} 1\n"));
        assert!(t.contains("stackpilot_engine_apps_converged{cloud=\"demo\"} 2\n"));
        assert!(t.contains("stackpilot_engine_lease_held{cloud=\"demo\"} 1\n"));
        assert_eq!(m.actions("create", true), 2);
        let a = crate::domain::Alert::new(
            "api-unreachable",
            "demo:api:compute",
            "demo",
            crate::domain::Severity::Critical,
            "x",
        );
        m.set_alerts(&[a.clone(), a]);
        assert!(m
            .render()
            .contains("stackpilot_alerts{cloud=\"demo\",kind=\"api-unreachable\",severity=\"critical\"} 2\n"));
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
