//! A fixed, deterministic snapshot and clock for view snapshots, tests and
//! benchmarks: three applications, a bastion, volumes, backups, alerts and an hour
//! of metrics — or ten thousand servers for the benchmarks.

// Test data: fixed indexes into vectors built right here.
#![allow(clippy::indexing_slicing)]

use crate::domain::*;
use crate::engine::PlanLines;
use crate::inventory::snapshot::{summarize_apps, CloudSnapshot, PollState, ServerSeries, Snapshot};
use crate::inventory::Kind;
use chrono::TimeZone;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// 2026-11-25 12:00:00 UTC.
pub fn now() -> Timestamp {
    chrono::Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).single().unwrap_or_default()
}

fn server(i: usize, name: &str, app: Option<&str>, status: ServerStatus, flavor: &str, vcpus: u32) -> Server {
    let mut s = Server::new(format!("00000000-0000-4000-8000-{i:012}"), name, status);
    s.flavor = FlavorInfo {
        id: None,
        name: Some(flavor.into()),
        vcpus: Some(vcpus),
        ram_mb: Some(2048 * vcpus as u64),
        disk_gb: Some(20),
    };
    s.image_id = Some("img-debian".into());
    s.addresses = vec![Address {
        network: "private".into(),
        addr: format!("10.0.{}.{}", i / 250, i % 250 + 2),
        version: 4,
        kind: Some("fixed".into()),
        mac: None,
    }];
    s.availability_zone = Some("nova".into());
    s.created = Some(now() - chrono::Duration::hours(3 + (i % 48) as i64));
    s.updated = s.created;
    s.launched_at = s.created;
    s.vm_state = Some("active".into());
    s.power_state = Some(1);
    s.key_name = Some("ops".into());
    if let Some(a) = app {
        s.metadata.insert(META_APP.into(), a.into());
    }
    s.raw = Some(format!(r#"{{"id": "{}", "name": "{name}", "status": "{}"}}"#, s.id, s.status).into());
    s
}

fn series(seed: usize, base: f64, points: usize) -> ServerSeries {
    series_until(seed, base, points, now().timestamp())
}

/// A series whose last sample is at `end`.
fn series_until(seed: usize, base: f64, points: usize, end: i64) -> ServerSeries {
    let mut m = ServerSeries::new(points + 2, 7200);
    for k in 0..points {
        let t = end - ((points - 1 - k) as i64) * 60;
        let wave = ((k + seed) as f64 / 7.0).sin() * 12.0;
        m.cpu.push(t, (base + wave).clamp(0.5, 100.0));
        m.mem.push(t, 900.0 + wave * 10.0);
        m.net_in.push(t, 150_000.0 + wave * 5000.0);
        m.net_out.push(t, 90_000.0 + wave * 3000.0);
    }
    m
}

fn poll(secs_ago: i64, interval: u64) -> PollState {
    PollState {
        last_ok: Some(now() - chrono::Duration::seconds(secs_ago)),
        last_attempt: Some(now() - chrono::Duration::seconds(secs_ago)),
        interval: Duration::from_secs(interval),
        last_requests: 1,
        ..Default::default()
    }
}

/// The demo-like snapshot used by view tests.
pub fn snapshot() -> Snapshot {
    let mut servers = vec![
        server(1, "web-1", Some("web"), ServerStatus::Active, "m1.small", 1),
        server(2, "web-2", Some("web"), ServerStatus::Active, "m1.small", 1),
        server(3, "web-3", Some("web"), ServerStatus::Build, "m1.small", 1),
        server(4, "api-1", Some("api"), ServerStatus::Active, "m1.medium", 2),
        server(5, "api-2", Some("api"), ServerStatus::Active, "m1.medium", 2),
        server(6, "worker-1", Some("worker"), ServerStatus::Error, "m1.small", 1),
        server(7, "bastion", None, ServerStatus::Shutoff, "m1.tiny", 1),
    ];
    servers[2].task_state = Some("spawning".into());
    servers[5].fault = Some(Fault {
        code: Some(500),
        message: "No valid host was found. There are not enough hosts available.".into(),
        created: Some(now()),
    });
    let mut metrics: HashMap<String, Arc<ServerSeries>> = HashMap::new();
    for (i, s) in servers.iter().enumerate() {
        // Running servers report up to now, except api-2, whose reports stopped ten
        // minutes ago (stale); worker-1 reported until it failed, twenty minutes ago
        // (history only).
        let end = match s.display_name() {
            "api-2" => now() - chrono::Duration::minutes(10),
            "worker-1" => now() - chrono::Duration::minutes(20),
            _ if s.status == ServerStatus::Active => now(),
            _ => continue,
        };
        let base = match s.app() {
            Some("web") => 78.0,
            Some("api") => 41.0,
            _ => 6.0,
        };
        metrics.insert(s.id.clone(), Arc::new(series_until(i, base, 60, end.timestamp())));
    }
    cloud_snapshot("demo", servers, metrics, 60)
}

fn cloud_snapshot(
    name: &str,
    servers: Vec<Server>,
    metrics: HashMap<String, Arc<ServerSeries>>,
    points: usize,
) -> Snapshot {
    let mut servers: Vec<Arc<Server>> = servers.into_iter().map(Arc::new).collect();
    crate::domain::sort::sort_by(&mut servers, |a, b| {
        a.display_name().cmp(b.display_name()).then_with(|| a.id.cmp(&b.id))
    });
    let apps = summarize_apps(name, &servers, &metrics, points + 2, 7200);
    let vol = |id: &str, name: &str, size: u64, status: &str, att: Option<&str>| Volume {
        id: id.into(),
        name: Some(name.into()),
        status: status.into(),
        size_gb: size,
        availability_zone: Some("nova".into()),
        bootable: false,
        encrypted: false,
        volume_type: Some("__DEFAULT__".into()),
        attachments: att
            .map(|s| {
                vec![VolumeAttachment { server_id: s.into(), device: Some("/dev/vdb".into()), attachment_id: None }]
            })
            .unwrap_or_default(),
        metadata: BTreeMap::new(),
        created_at: Some(now() - chrono::Duration::days(3)),
        updated_at: None,
        raw: None,
    };
    let backup = |id: &str, name: &str, inc: bool, status: &str| Backup {
        id: id.into(),
        name: Some(name.into()),
        description: None,
        volume_id: "vol-web-data".into(),
        snapshot_id: None,
        status: status.into(),
        fail_reason: None,
        size_gb: 20,
        is_incremental: inc,
        has_dependent_backups: !inc,
        container: None,
        availability_zone: None,
        object_count: None,
        metadata: if inc {
            BTreeMap::from([(crate::domain::names::CHAIN.to_string(), "bak-1".to_string())])
        } else {
            BTreeMap::new()
        },
        created_at: Some(now() - chrono::Duration::hours(if inc { 2 } else { 26 })),
        updated_at: None,
        data_timestamp: None,
        raw: None,
    };
    let mut polls = std::collections::BTreeMap::new();
    for k in Kind::ALL {
        polls.insert(k, poll(3, 5));
    }
    let c = CloudSnapshot {
        name: name.into(),
        scope: CloudScope { cloud: name.into(), region: Some("RegionOne".into()), project: Some("demo".into()) },
        servers: Arc::new(servers),
        flavors: Arc::new(vec![flavor("fl-small", "m1.small", 1), flavor("fl-medium", "m1.medium", 2)]),
        images: Arc::new(vec![
            image("img-debian", "debian-12-genericcloud-amd64"),
            image("img-debian13", "debian-13-genericcloud-amd64"),
        ]),
        networks: Arc::new(vec![Network {
            id: "net-private".into(),
            name: "private".into(),
            status: "ACTIVE".into(),
            shared: false,
            external: false,
            subnets: vec![],
            mtu: None,
            project_id: None,
        }]),
        keypairs: Arc::new(vec!["ops".into()]),
        security_groups: Arc::new(vec!["default".into()]),
        volumes: Arc::new(vec![
            vol("vol-web-data", "web-data", 20, "in-use", Some("00000000-0000-4000-8000-000000000001")),
            vol("vol-scratch", "scratch", 10, "available", None),
        ]),
        backups: Arc::new(vec![
            backup("bak-1", "web-data-full", false, "available"),
            backup("bak-2", "web-data-inc", true, "creating"),
        ]),
        limits: Some(ComputeLimits {
            max_instances: Some(30),
            max_cores: Some(60),
            max_ram_mb: Some(122880),
            instances_used: 7,
            cores_used: 9,
            ram_used_mb: 18432,
        }),
        metrics: Arc::new(metrics),
        apps: Arc::new(apps),
        polls,
        ..CloudSnapshot::empty(name, CloudScope::default())
    };
    let c = CloudSnapshot { server_index: Arc::new(crate::inventory::snapshot::ServerIndex::of(&c.servers)), ..c };
    let mut snap = Snapshot { clouds: vec![c], seq: 1, ..Default::default() };
    let mut book = crate::domain::AlertBook::default();
    crate::inventory::alerts::evaluate(
        &mut book,
        &snap,
        &crate::inventory::liveness::Liveness::default(),
        std::time::Duration::from_secs(30),
        now(),
    );
    snap.alerts = Arc::new(book.alerts());
    snap
}

fn image(id: &str, name: &str) -> Image {
    Image {
        id: id.into(),
        name: Some(name.into()),
        status: "active".into(),
        visibility: Some("public".into()),
        size: None,
        min_disk: None,
        min_ram: None,
        disk_format: None,
        created_at: None,
        tags: vec![],
        properties: BTreeMap::new(),
    }
}

fn flavor(id: &str, name: &str, vcpus: u32) -> crate::domain::Flavor {
    crate::domain::Flavor {
        id: id.into(),
        name: name.into(),
        vcpus,
        ram_mb: 2048 * vcpus as u64,
        disk_gb: 20,
        ephemeral_gb: 0,
        swap_mb: 0,
        is_public: true,
        description: None,
        extra_specs: BTreeMap::new(),
    }
}

/// The demo's web policy as the fixture's policy of web on demo (file `policies/web.toml`).
pub fn web_policy_doc() -> crate::tui::editing::PolicyDoc {
    let text = include_str!("../../assets/demo/policies/web.toml").to_string();
    let older = text.replace("max = 8", "max = 6");
    let change = |generation: u64, hours: i64, actor: &str, text: &str, summary: &str| crate::store::PolicyChange {
        policy_id: crate::policy::policy_id("demo", "web"),
        generation,
        app: "web".into(),
        file: "policies/web.toml".into(),
        content_hash: crate::policy::edit::content_hash(text),
        at: now() - chrono::Duration::hours(hours),
        text: Some(text.to_string()),
        actor: Some(actor.to_string()),
        summary: Some(summary.to_string()),
    };
    crate::tui::editing::PolicyDoc {
        policy_id: crate::policy::policy_id("demo", "web"),
        app: "web".into(),
        cloud: "demo".into(),
        file: "policies/web.toml".into(),
        history: vec![
            change(2, 2, "operator:alice", &text, "max 6 → 8"),
            change(1, 30, "engine:ops-1/4242", &older, "new application web on demo"),
        ],
        text: Ok(text),
        history_error: None,
    }
}

/// `n` servers in 50 applications, `with_metrics` of them with an hour of metrics.
pub fn big_snapshot(n: usize, with_metrics: usize) -> Snapshot {
    let servers: Vec<Server> = (0..n)
        .map(|i| {
            let app = format!("app-{:02}", i % 50);
            server(
                i,
                &format!("{app}-{i:05}"),
                Some(&app),
                if i % 97 == 0 { ServerStatus::Error } else { ServerStatus::Active },
                "m1.small",
                1,
            )
        })
        .collect();
    let metrics: HashMap<String, Arc<ServerSeries>> = servers
        .iter()
        .take(with_metrics)
        .enumerate()
        .map(|(i, s)| (s.id.clone(), Arc::new(series(i, 40.0, 60))))
        .collect();
    cloud_snapshot("scale", servers, metrics, 60)
}

/// A sample of events (operator and engine).
pub fn events() -> Vec<Event> {
    vec![
        Event::new(
            now() - chrono::Duration::minutes(2),
            "engine:host-1",
            "demo",
            "create",
            "scale out: cpu 78% > target 60%",
        )
        .app("web")
        .target("web-3")
        .request_id(Some("req-5e1c".into())),
        Event::new(
            now() - chrono::Duration::minutes(9),
            "operator:ops",
            "demo",
            "reboot",
            "operator request from the console",
        )
        .target("api-2")
        .request_id(Some("req-77aa".into())),
        Event::new(now() - chrono::Duration::minutes(15), "engine:host-1", "demo", "create", "replace failed member")
            .app("worker")
            .target("worker-1")
            .result("failed")
            .severity(Severity::Warning)
            .detail("No valid host was found."),
    ]
}

/// The engine as the console sees it: `web` autoscaled on CPU (scaling out after a
/// rise), `api` governed by a fixed capacity.
pub fn engine() -> super::app::EngineView {
    use crate::engine::scaling::{DecisionRecord, Reason};
    let t0 = now().timestamp();
    let series: Vec<(i64, f64)> =
        (0..60).map(|i| (t0 - (59 - i) * 60, if i < 40 { 45.0 + (i % 5) as f64 } else { 78.0 })).collect();
    let decisions = [
        (50, 2, 2, Reason::DesiredWithinRange),
        (20, 4, 3, Reason::ScaleUpLimit),
        (0, 4, 4, Reason::DesiredWithinRange),
    ]
    .into_iter()
    .map(|(ago, rec, desired, reason)| DecisionRecord {
        at: now() - chrono::Duration::seconds(ago),
        recommendation: rec,
        desired,
        reason,
        value: Some(78.0),
        target: Some(60.0),
    })
    .collect();
    super::app::EngineView {
        mode: "auto".into(),
        last_tick: Some(now() - chrono::Duration::seconds(4)),
        lease_holder: Some("host-1/4242".into()),
        plan: vec![
            PlanLines::new("demo", "web", vec!["create slot 3 (revision 2): 3 of 4 members".into()]),
            PlanLines::new("demo", "api", vec![]),
        ],
        apps: vec![
            super::app::EngineApp {
                app: "web".into(),
                cloud: "demo".into(),
                desired: 4,
                members: 3,
                ready: 2,
                blocked: None,
                converged: false,
                ..Default::default()
            },
            super::app::EngineApp {
                app: "api".into(),
                cloud: "demo".into(),
                desired: 2,
                members: 2,
                ready: 2,
                blocked: None,
                converged: true,
                ..Default::default()
            },
        ],
        scaling: vec![crate::engine::runner::ScalingView {
            app: "web".into(),
            cloud: "demo".into(),
            current: 3,
            desired: 4,
            min: 2,
            max: 8,
            reason: "DesiredWithinRange".into(),
            message: "cpu 78.0/60 → 4: desired 4".into(),
            metric: "cpu".into(),
            unit: "%".into(),
            target: 60.0,
            series,
            decisions,
        }],
        policies: vec![
            crate::engine::PolicyView {
                app: "api".into(),
                cloud: "demo".into(),
                policy_id: crate::policy::policy_id("demo", "api"),
                file: "policies/api.toml".into(),
                state: "invalid".into(),
                problems: vec![
                    "policies/api.toml:12:1: deploy.capacity: min (5) is above max (3): expected min <= desired <= max"
                        .into(),
                ],
                revision: 3,
                desired: 2,
                min: 1,
                max: 4,
                target: None,
                app_mode: "auto".into(),
                changed_at: Some(now() - chrono::Duration::minutes(5)),
                changed_by: Some("engine:ops-1/4242".into()),
            },
            crate::engine::PolicyView {
                app: "web".into(),
                cloud: "demo".into(),
                policy_id: crate::policy::policy_id("demo", "web"),
                file: "policies/web.toml".into(),
                state: "ok".into(),
                problems: vec![],
                revision: 2,
                desired: 4,
                min: 2,
                max: 8,
                target: Some("cpu 60 %".into()),
                app_mode: "auto".into(),
                changed_at: Some(now() - chrono::Duration::hours(2)),
                changed_by: Some("operator:alice".into()),
            },
        ],
        backups: vec![(
            "demo".into(),
            crate::engine::backups::VolumeBackups {
                volume_id: "vol-web-data".into(),
                policy: "web".into(),
                last: Some(crate::engine::backups::LastBackup {
                    id: "bak-2".into(),
                    at: now() - chrono::Duration::hours(2),
                    size_gb: 20,
                    incremental: true,
                    status: "creating".into(),
                }),
                last_good: Some(now() - chrono::Duration::hours(26)),
                next: Some(now() + chrono::Duration::hours(5)),
                chains: 1,
                rpo_breached: true,
            },
        )],
        restores: vec![restore_job()],
        placements: vec![],
        ..Default::default()
    }
}

/// A restore over the attached `web-data` volume, at its detach.
pub fn restore_job() -> crate::engine::restore::RestoreJob {
    use crate::engine::restore::{JobStatus, JobStep, RestoreJob, StepKind, StepState, Target};
    let server = "00000000-0000-4000-8000-000000000001".to_string();
    let vol = "vol-web-data".to_string();
    let step = |kind, state| JobStep { kind, state, sent_at: None, note: None, accepted: false };
    RestoreJob {
        op: "op-restore-1".into(),
        cloud: "demo".into(),
        backup_id: "bak-1".into(),
        target: Target::Existing { volume_id: vol.clone() },
        volume_id: Some(vol.clone()),
        steps: vec![
            step(StepKind::Stop { server_id: server.clone() }, StepState::Done),
            step(StepKind::Detach { server_id: server.clone(), volume_id: vol.clone() }, StepState::Sent),
            step(StepKind::Restore, StepState::Pending),
            step(StepKind::Attach { server_id: server.clone(), volume_id: vol }, StepState::Pending),
            step(StepKind::Start { server_id: server }, StepState::Pending),
        ],
        status: JobStatus::Running,
        error: None,
        requested_by: "operator:alice".into(),
        runner: Some("engine:ops-1/4242".into()),
        created_at: now() - chrono::Duration::minutes(1),
        updated_at: now(),
        restore_timeout_secs: 3600,
        verify_of: None,
    }
}

/// Two clouds: `demo` (the snapshot above) and `demo-east`, a copy whose servers
/// are named `east-…`; `east_down` makes `demo-east` unreachable since a minute.
pub fn two_clouds(east_down: bool) -> Snapshot {
    let mut snap = snapshot();
    let Some(demo) = snap.clouds.first().cloned() else { return snap };
    let mut east = demo.clone();
    east.name = "demo-east".into();
    east.scope.region = Some("RegionTwo".into());
    let servers: Vec<Arc<Server>> = demo
        .servers
        .iter()
        .map(|s| {
            let mut s = (**s).clone();
            s.name = Some(format!("east-{}", s.display_name()));
            Arc::new(s)
        })
        .collect();
    east.servers = Arc::new(servers);
    if east_down {
        for p in east.polls.values_mut() {
            p.unreachable = true;
            p.last_error = Some("connection refused".into());
            p.last_ok = Some(now() - chrono::Duration::seconds(60));
        }
    }
    snap.clouds = vec![demo, east];
    snap
}
