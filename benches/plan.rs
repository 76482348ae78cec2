//! The engine's pure parts at fleet scale: one `plan()` over 500 applications of
//! 20 members each (10,000 servers), with some apps converged, some scaling out,
//! some scaling in and some with creates in flight; and one autoscaler evaluation
//! of 500 scaling policies (20 members each, two metrics, a full history).

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

use criterion::{criterion_group, criterion_main, Criterion};
use stackpilot::domain::{Server, ServerStatus, Timestamp};
use stackpilot::engine::members::Phase;
use stackpilot::engine::plan::Observed;
use stackpilot::engine::{plan, AppInput, AppMode, EngineState, PlanConfig};
use stackpilot::store::{Intent, IntentStatus};
use std::collections::BTreeMap;
use std::sync::Arc;

const APPS: usize = 500;
const MEMBERS: u32 = 20;

fn fleet(now: Timestamp) -> (Vec<AppInput>, Vec<Arc<Server>>, Vec<Intent>) {
    let mut apps = Vec::new();
    let mut servers = Vec::new();
    let mut intents = Vec::new();
    for a in 0..APPS {
        let pid = stackpilot::policy::policy_id("bench", &format!("app-{a:03}"));
        let mut phases = BTreeMap::new();
        for slot in 0..MEMBERS {
            let op = format!("{a:04}{slot:04}-0000-0000-0000-000000000000");
            let id = format!("srv-{a}-{slot}");
            let mut s = Server::new(id.clone(), format!("app-{a:03}-r1-s{slot}-{}", &op[..8]), ServerStatus::Active);
            s.tags = vec![format!("stackpilot-app-{pid}"), format!("stackpilot-op-{op}")];
            for (k, v) in [
                ("stackpilot:app", format!("app-{a:03}")),
                ("stackpilot:policy", pid.clone()),
                ("stackpilot:rev", "1".into()),
                ("stackpilot:slot", slot.to_string()),
                ("stackpilot:op", op.clone()),
                ("stackpilot:state", "active".into()),
            ] {
                s.metadata.insert(k.into(), v);
            }
            s.created = Some(now - chrono::Duration::minutes(30 + slot as i64));
            phases.insert(id, Phase::Ready);
            servers.push(Arc::new(s));
        }
        // A fifth scale out, a fifth scale in, one in ten has a create in flight.
        let desired = match a % 5 {
            0 => MEMBERS + 3,
            1 => MEMBERS - 2,
            _ => MEMBERS,
        };
        if a % 10 == 0 {
            intents.push(Intent {
                op_id: format!("flight-{a}"),
                policy_id: pid.clone(),
                cloud: "bench".into(),
                app: format!("app-{a:03}"),
                action: "create".into(),
                slot: Some(MEMBERS),
                revision: Some(1),
                generation: 1,
                server_id: None,
                status: IntentStatus::Pending,
                error: None,
                created_at: now,
                updated_at: now,
            });
        }
        apps.push(AppInput {
            policy_id: pid,
            app: format!("app-{a:03}"),
            revision: 1,
            spec: "0123456789ab".into(),
            vcpus: 1,
            ram_mb: 512,
            desired,
            invalid: None,
            zones: vec!["az1".into(), "az2".into()],
            phases,
            boot_failed: Default::default(),
            startup_grace: chrono::Duration::minutes(10),
            mode: AppMode::Active,
            rollout: None,
            recovery_owned: Default::default(),
        });
    }
    (apps, servers, intents)
}

fn bench(c: &mut Criterion) {
    let now = stackpilot::domain::time::parse_timestamp("2026-11-25T12:00:00Z").unwrap();
    let (apps, servers, intents) = fleet(now);
    let state = EngineState::default();
    let cfg = PlanConfig::default();
    let obs = Observed { servers: &servers, limits: None, intents: &intents, failed: &[] };
    let p = plan(&apps, obs, &state, &cfg, now);
    assert!(p.actions.len() > 300, "the fleet has work to plan: {}", p.actions.len());
    c.bench_function("plan 500 apps x 20 servers", |b| b.iter(|| plan(&apps, obs, &state, &cfg, now)));
}

fn autoscale(c: &mut Criterion) {
    use stackpilot::engine::scaling::{evaluate, MemberSample, ScaleEvent, ScaleHistory, ScaleInput};
    let now = stackpilot::domain::time::parse_timestamp("2026-11-25T12:00:00Z").unwrap();
    let policy: stackpilot::policy::scaling::Scaling = toml::from_str(
        r#"
[[metrics]]
name = "cpu"
target = 60
[[metrics]]
name = "memory"
target = 70
[[schedules]]
cron = "0 8 * * 1-5"
until_cron = "0 20 * * 1-5"
tz = "Europe/Paris"
min = 4
"#,
    )
    .unwrap();
    // Each app: 20 members, a 10-minute history of recommendations every 30 s and
    // a few scale events.
    let apps: Vec<(Vec<MemberSample>, ScaleHistory)> = (0..APPS)
        .map(|a| {
            let members = (0..MEMBERS)
                .map(|i| MemberSample {
                    server_id: format!("s-{a}-{i}"),
                    ready: i % 7 != 0,
                    warming: i % 11 == 0,
                    values: vec![Some(30.0 + ((a * 7 + i as usize) % 60) as f64), Some(50.0)],
                })
                .collect();
            let hist = ScaleHistory {
                recommendations: (0..20)
                    .map(|k| (now - chrono::Duration::seconds(30 * k), 18 + (k % 5) as u32))
                    .collect(),
                events: vec![ScaleEvent { at: now - chrono::Duration::seconds(200), from: 18, to: 20 }],
                ..Default::default()
            };
            (members, hist)
        })
        .collect();
    c.bench_function("autoscaler: 500 scaling policies", |b| {
        b.iter(|| {
            let mut total = 0u32;
            for (members, hist) in &apps {
                let mut h = hist.clone();
                let input = ScaleInput {
                    scaling: &policy,
                    min: 2,
                    max: 40,
                    current: 20,
                    members: members.clone(),
                    scale_out_in_flight: false,
                    capacity_limit: None,
                    aggregates: vec![],
                };
                total += evaluate(&input, &mut h, now).desired;
            }
            total
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench, autoscale
}
criterion_main!(benches);
