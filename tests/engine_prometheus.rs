//! The engine with a real Prometheus as its second metric source. Needs the
//! `prometheus` binary on PATH: `.ci/run` installs Debian's and runs this target
//! (`cargo test --test engine_prometheus`); `cargo test` leaves it out.

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
use common::rig::*;
use common::*;
use serde_json::json;
use stackpilot::sim::{SimConfig, SimHandle};
use std::time::Duration;

/// A real Prometheus (the `prometheus` binary; `.ci/run` installs Debian's) scraping
/// the simulator's per-server exporter every second.
struct Prometheus {
    proc: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

async fn prometheus_for(h: &SimHandle) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let target = h.base_url.trim_start_matches("http://").to_string();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sim\n    metrics_path: /_sim/exporter/metrics\n    authorization:\n      credentials: {token}\n    static_configs:\n      - targets: [\"{target}\"]\n",
        token = h.control_token
    );
    std::fs::write(dir.path().join("prometheus.yml"), cfg).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let proc = std::process::Command::new("prometheus")
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
        .spawn()
        .expect("the `prometheus` binary (apt install prometheus; .ci/run installs it)");
    let log = dir.path().join("log");
    let p = Prometheus { proc, url: format!("http://127.0.0.1:{port}"), _dir: dir };
    for _ in 0..100 {
        if reqwest::get(format!("{}/-/ready", p.url)).await.is_ok_and(|r| r.status().is_success()) {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("prometheus did not start: {}", std::fs::read_to_string(log).unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_is_a_second_metric_source() {
    if side() == Side::Real {
        return not_run("prometheus source", "the fake virt driver has no guests, so nothing to scrape");
    }
    let rig = Rig::new(SimConfig::default()).await;
    let h = rig.sim.as_ref().unwrap();
    let prom = prometheus_for(h).await;
    let app = rig.app("web");
    control(h, &format!("apps/{app}"), json!({"base_load": 1.0, "profile": {"kind": "steady"}})).await;
    control(h, &format!("apps/{app}/load"), json!({"factor": 2.0})).await;
    // CPU % per member from the exporter's counters, through PromQL.
    let query = r#"sum by (server_id) (rate(stackpilot_sim_server_cpu_seconds_total{app="{app}"}[5s])) / sum by (server_id) (stackpilot_sim_server_vcpus{app="{app}"}) * 100"#;
    let section = format!(
        r#"
[scaling]
evaluation_interval = "2s"
warmup = "1s"

[[scaling.metrics]]
name = "cpu"
source = "prometheus"
target = 60
prometheus_url = "{}"
query = '{query}'

[scaling.behavior.scale_up]
stabilization = "0s"
policies = [{{ type = "count", value = 10, period = "1s" }}]
"#,
        prom.url
    );
    rig.policy_with("web", 2, 10, &section);
    let eng = rig.start(rig.engine_cfg());
    // Two vCPU of work on two 1-vCPU members is 100 %: four members carry it at 50 %.
    wait_scaling(&eng, "scaled out on the Prometheus metric", Duration::from_secs(60), |v| {
        v.desired == 4 && v.current == 4
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let v = eng.handle.status.borrow().scaling[0].clone();
    println!("{}: {}", v.reason, v.message);
    assert_eq!(v.desired, 4, "steady at four: {}", v.message);
    let last = v.decisions.last().and_then(|d| d.value).expect("a value from prometheus");
    assert!((40.0..60.0).contains(&last), "about 50 % on four members: {last}");
    assert!(!v.series.is_empty(), "the evaluations draw the line");

    // A query Prometheus rejects: the metric is unavailable, with the server's message.
    let broken = section.replace("sum by (server_id) (rate(", "sum by (server_id (rate(");
    rig.policy_with("web", 2, 10, &broken);
    let start = tokio::time::Instant::now();
    loop {
        let v = eng.handle.status.borrow().scaling[0].clone();
        if v.reason == "MetricsStale" {
            assert!(v.message.contains("cpu from prometheus:") && v.message.contains("bad_data"), "{}", v.message);
            assert_eq!(v.desired, 4, "no scale-in on a broken query");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{v:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(eng);
}
