//! Engine counters and the loopback HTTP endpoint of `stackpilot engine`:
//! `/healthz` and Prometheus-format `/metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct EngineMetrics {
    pub ticks: AtomicU64,
    actions: Mutex<BTreeMap<(String, String, String), u64>>,
    apps: Mutex<BTreeMap<String, (usize, usize)>>,
    lease: Mutex<BTreeMap<String, bool>>,
    intents: AtomicU64,
}

impl EngineMetrics {
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
                async move { format!("ok ticks={}\n", m.ticks.load(Ordering::Relaxed)) }
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
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, h))
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
    }
}
