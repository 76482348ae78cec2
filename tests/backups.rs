//! Volume backups on the simulator: a daily policy with weekly fulls over 60
//! simulated days leaves exactly the set retention keeps (checked against an
//! independent reading of the rules); snapshot-then-backup cleans up after an
//! interrupted run; restores to a new volume and over an attached one (stop,
//! detach, restore, attach, start) survive the loss of whoever carried them
//! out; and how many API requests a run of 50 volumes makes.

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

use chrono::{Datelike, Duration as ChronoDuration, NaiveDate};
use common::*;
use serde_json::json;
use stackpilot::cloud::compute::{CreateServer, NetworkSpec};
use stackpilot::cloud::Client;
use stackpilot::domain::names::{CHAIN, POLICY, RUN};
use stackpilot::domain::{ServerStatus, Timestamp};
use stackpilot::engine::backup_run::{self, PlannedPolicy};
use stackpilot::engine::backups::BackupStep;
use stackpilot::engine::restore::{self, JobStatus, StepState, Target};
use stackpilot::policy::backup::{parse_standalone, BackupPolicy};
use stackpilot::sim::{SimConfig, SimHandle};
use stackpilot::store::Store;
use std::collections::{BTreeMap, BTreeSet};

async fn advance(h: &SimHandle, secs: f64) {
    control(h, "clock/advance", json!({"seconds": secs})).await;
}

fn policy(text: &str) -> BackupPolicy {
    parse_standalone(text, std::path::Path::new("backups/test.toml"))
        .unwrap_or_else(|e| panic!("{}", e.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")))
}

/// Cases that drive the simulator's clock run only on it.
fn on_real(case: &str) -> bool {
    let real = rig::side() == rig::Side::Real;
    if real {
        rig::not_run(case, "drives the simulator's clock");
    }
    real
}

/// A sim with room for many backups, and fast lifecycles.
async fn backup_sim() -> (SimHandle, Client) {
    let h = sim(SimConfig { incidents: false, ..Default::default() }).await;
    control(
        &h,
        "quota",
        json!({"volumes": -1, "gigabytes": -1, "snapshots": -1, "backups": -1, "backup_gigabytes": -1}),
    )
    .await;
    control(
        &h,
        "timings",
        json!({"backup_secs": 60, "snapshot_secs": 5, "delete_secs": 10, "volume_secs": 2, "restore_secs": 30}),
    )
    .await;
    let c = client(&h);
    (h, c)
}

async fn volumes(h: &SimHandle, c: &Client, n: usize, meta: &[(&str, &str)]) -> Vec<String> {
    let meta: BTreeMap<String, String> = meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(c.volume().create_volume(10, &format!("data-{i}"), &meta).await.unwrap().id);
    }
    advance(h, 5.0).await;
    ids
}

/// One pass at the simulator's time: plan, carry out; the plans.
async fn pass(
    h: &SimHandle,
    c: &Client,
    store: &Store,
    p: &BackupPolicy,
    since: Timestamp,
    members: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<PlannedPolicy> {
    let now = h.now();
    let data = backup_run::read(c).await.unwrap();
    let since = BTreeMap::from([(p.id.clone(), since)]);
    let planned = backup_run::plan_all(std::slice::from_ref(p), &data, members, &since, now, None);
    let out = backup_run::carry_out(c, store, "engine:test", &planned, now).await;
    for o in &out {
        assert!(o.result.is_ok(), "{}: {:?}", o.step.describe(), o.result);
    }
    planned
}

/// Passes every 30 simulated seconds until the policy has nothing left to do.
async fn settle(h: &SimHandle, c: &Client, store: &Store, p: &BackupPolicy, since: Timestamp) -> Vec<BackupStep> {
    let mut steps = Vec::new();
    let none = BTreeMap::new();
    for _ in 0..40 {
        let planned = pass(h, c, store, p, since, &none).await;
        let plan = &planned[0].plan;
        steps.extend(plan.steps.iter().cloned());
        if plan.settled() {
            return steps;
        }
        advance(h, 30.0).await;
    }
    panic!("the policy did not settle: {steps:?}");
}

/// Seconds from `now` to the next `hh:mm:ss` UTC.
fn until(now: Timestamp, h: u32, m: u32, s: u32) -> f64 {
    let today = now.date_naive().and_hms_opt(h, m, s).unwrap().and_utc();
    let at = if today > now { today } else { today + ChronoDuration::days(1) };
    (at - now).num_milliseconds() as f64 / 1000.0
}

/// What the rules keep, read independently of the engine: days `0..n` of daily
/// runs (a full on every 7th run), `dates[d]` the local date of day `d`; keep
/// the 2 newest chains whole, and for the 7 newest days, the 4 newest ISO weeks
/// and the 6 newest months the newest backup with its chain up to it.
fn expected_days(dates: &[NaiveDate]) -> BTreeSet<usize> {
    let n = dates.len();
    let chain_start = |d: usize| d - d % 7;
    let mut keep = BTreeSet::new();
    let last_chain = chain_start(n - 1);
    let prev_chain = last_chain.saturating_sub(7);
    keep.extend(prev_chain..n);
    let pin = |p: usize, keep: &mut BTreeSet<usize>| keep.extend(chain_start(p)..=p);
    for bucket in [
        Box::new(|d: &NaiveDate| d.to_string()) as Box<dyn Fn(&NaiveDate) -> String>,
        Box::new(|d: &NaiveDate| format!("{:?}", d.iso_week())),
        Box::new(|d: &NaiveDate| format!("{}-{}", d.year(), d.month())),
    ]
    .iter()
    .zip([7usize, 4, 6])
    {
        let (f, count) = bucket;
        let mut seen: Vec<String> = Vec::new();
        for d in (0..n).rev() {
            let k = f(&dates[d]);
            if seen.contains(&k) {
                continue;
            }
            if seen.len() == count {
                break;
            }
            seen.push(k);
            pin(d, &mut keep);
        }
    }
    keep
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_days_of_a_daily_policy_with_weekly_fulls_leave_exactly_the_expected_set() {
    if on_real("sixty days of a daily policy with weekly fulls leave exactly the expected set") {
        return;
    }
    let (h, c) = backup_sim().await;
    let vols = volumes(&h, &c, 3, &[("backup", "daily")]).await;
    let p = policy(
        r#"name = "db"
cloud = "sim"
[backup]
select = { volume_metadata = { backup = "daily" } }
cron = "0 2 * * *"
full_every = 7
per_policy = 3
"#,
    );
    let store = Store::memory().unwrap();
    let since = h.now();
    let started = std::time::Instant::now();
    let mut dates = Vec::new();
    let mut made = 0;
    for day in 0..60 {
        advance(&h, until(h.now(), 2, 0, 30)).await;
        dates.push(h.now().date_naive());
        let steps = settle(&h, &c, &store, &p, since).await;
        let backups: Vec<&BackupStep> = steps.iter().filter(|s| matches!(s, BackupStep::Backup { .. })).collect();
        assert_eq!(backups.len(), 3, "day {day}: one backup per volume: {steps:?}");
        let fulls = backups.iter().filter(|s| matches!(s, BackupStep::Backup { full: true, .. })).count();
        assert_eq!(fulls, if day % 7 == 0 { 3 } else { 0 }, "day {day}: fulls on every 7th run");
        made += backups.len();
    }
    let elapsed = started.elapsed();
    // A pass once the run is over changes nothing (retention is idempotent).
    advance(&h, 3600.0).await;
    let again = settle(&h, &c, &store, &p, since).await;
    assert!(again.is_empty(), "{again:?}");
    let data = backup_run::read(&c).await.unwrap();
    let want = expected_days(&dates);
    for v in &vols {
        let mut have: Vec<(usize, bool)> = data
            .backups
            .iter()
            .filter(|b| &b.volume_id == v)
            .map(|b| {
                assert_eq!(b.status, "available", "{b:?}");
                assert_eq!(b.metadata.get(POLICY), Some(&p.id));
                let d = b.created_at.unwrap().date_naive();
                (dates.iter().position(|x| *x == d).unwrap(), b.is_incremental)
            })
            .collect();
        have.sort();
        let days: Vec<usize> = have.iter().map(|x| x.0).collect();
        assert_eq!(days, want.iter().copied().collect::<Vec<_>>(), "volume {v}");
        // Every incremental names the full its chain starts with, and that full is there.
        for b in data.backups.iter().filter(|b| &b.volume_id == v && b.is_incremental) {
            let chain = b.metadata.get(CHAIN).unwrap();
            let full = data.backups.iter().find(|f| &f.id == chain).unwrap();
            assert!(!full.is_incremental);
        }
    }
    assert!(data.snapshots.is_empty());
    println!(
        "60 simulated days, 3 volumes: {made} backups made, {} kept per volume, in {:.1}s",
        want.len(),
        elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_backup_cleans_up_after_an_interrupted_run_and_a_missed_slot_is_alerted() {
    if on_real("snapshot then backup cleans up after an interrupted run and a missed slot is alerted") {
        return;
    }
    let (h, c) = backup_sim().await;
    let vols = volumes(&h, &c, 2, &[]).await;
    let server = server(&h, &c).await;
    c.compute().attach_volume(&server, &vols[0]).await.unwrap();
    advance(&h, 5.0).await;
    assert_eq!(c.volume().get_volume(&vols[0]).await.unwrap().status, "in-use");
    let p = policy(&format!(
        r#"name = "db"
cloud = "sim"
[backup]
select = {{ volumes = ["{}", "{}"] }}
cron = "0 2 * * *"
in_use = "snapshot_then_backup"
per_policy = 2
"#,
        vols[0], vols[1]
    ));
    let store = Store::memory().unwrap();
    let since = h.now();
    advance(&h, until(h.now(), 2, 0, 30)).await;
    // The first pass snapshots the attached volume and backs up the other
    // directly; then the one carrying it out is lost.
    let first = pass(&h, &c, &store, &p, since, &BTreeMap::new()).await;
    let mut kinds: Vec<&str> = first[0].plan.steps.iter().map(|s| s.kind()).collect();
    kinds.sort();
    assert_eq!(kinds, vec!["backup-full", "backup-snapshot"]);
    advance(&h, 10.0).await;
    // Whoever comes next backs up from the snapshot, then deletes it.
    let steps = settle(&h, &c, &store, &p, since).await;
    assert!(
        steps.iter().any(|s| matches!(s, BackupStep::Backup { snapshot_id: Some(_), force: false, .. })),
        "{steps:?}"
    );
    assert!(steps.iter().any(|s| matches!(s, BackupStep::DeleteSnapshot { .. })), "{steps:?}");
    advance(&h, 30.0).await;
    let data = backup_run::read(&c).await.unwrap();
    assert!(data.snapshots.is_empty(), "no snapshot left: {:?}", data.snapshots);
    let mine: Vec<_> = data.backups.iter().filter(|b| b.metadata.get(POLICY) == Some(&p.id)).collect();
    assert_eq!(mine.len(), 2, "one backup per volume, nothing twice: {mine:?}");
    assert!(mine.iter().all(|b| b.status == "available" && b.metadata.contains_key(RUN)));

    // A snapshot left by a run that never came back is deleted once its run is over.
    advance(&h, until(h.now(), 2, 0, 30)).await;
    let next = pass(&h, &c, &store, &p, since, &BTreeMap::new()).await;
    assert!(next[0].plan.steps.iter().any(|s| s.kind() == "backup-snapshot"));
    advance(&h, 3600.0).await;
    let late = pass(&h, &c, &store, &p, since, &BTreeMap::new()).await;
    let plan = &late[0].plan;
    assert!(
        plan.steps.iter().any(|s| matches!(s, BackupStep::DeleteSnapshot { why, .. } if why.contains("run is over"))),
        "{:?}",
        plan.steps
    );
    assert!(!plan.steps.iter().any(|s| matches!(s, BackupStep::Backup { .. })), "never run late: {:?}", plan.steps);
    let missed = plan.problems.iter().find(|p| p.kind == "backup-missed").expect("a missed slot is alerted");
    assert!(missed.message.contains("data-0"), "{}", missed.message);
    advance(&h, 10.0).await;
    assert!(backup_run::read(&c).await.unwrap().snapshots.is_empty());
}

async fn server(h: &SimHandle, c: &Client) -> String {
    let cp = c.compute();
    let flavor = cp.list_flavors().await.unwrap().into_iter().find(|f| f.name == "m1.tiny").unwrap().id;
    let image = c.image().list_images().await.unwrap().into_iter().find(|i| i.status == "active").unwrap().id;
    let net = c.network().list_networks().await.unwrap().into_iter().find(|n| n.name == "private").unwrap().id;
    let id = cp
        .create_server(&CreateServer {
            name: "db-host".into(),
            image_id: Some(image),
            flavor_id: flavor,
            networks: vec![NetworkSpec::Uuid(net)],
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    for _ in 0..20 {
        advance(h, 10.0).await;
        if cp.get_server(&id).await.unwrap().status == ServerStatus::Active {
            return id;
        }
    }
    panic!("the server did not become ACTIVE");
}

/// Advance a restore job at the simulator's time until it is no longer running.
async fn run_job(h: &SimHandle, c: &Client, store: &Store, job: &mut restore::RestoreJob, runner: &str) {
    for _ in 0..60 {
        restore::advance(c, store, job, runner, h.now()).await.unwrap();
        if job.status != JobStatus::Running {
            return;
        }
        advance(h, 5.0).await;
    }
    panic!("the restore did not finish: {job:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_to_a_new_volume_and_over_an_attached_one_survive_the_loss_of_their_runner() {
    if on_real("restores to a new volume and over an attached one survive the loss of their runner") {
        return;
    }
    let (h, c) = backup_sim().await;
    let vols = volumes(&h, &c, 1, &[]).await;
    let server = server(&h, &c).await;
    c.compute().attach_volume(&server, &vols[0]).await.unwrap();
    advance(&h, 5.0).await;
    let (bid, _) = c
        .volume()
        .create_backup(&stackpilot::cloud::volume::CreateBackup {
            volume_id: vols[0].clone(),
            force: true,
            ..Default::default()
        })
        .await
        .unwrap();
    advance(&h, 70.0).await;
    let store = Store::memory().unwrap();

    // To a new volume with a type and a zone (created from the backup).
    let target = Target::NewVolume {
        name: "restored".into(),
        volume_type: Some("__DEFAULT__".into()),
        availability_zone: Some("nova".into()),
    };
    let mut job = restore::plan_job(&c, &bid, target, "operator:test", 3600, h.now()).await.unwrap();
    restore::save(&store, &job, h.now()).unwrap();
    run_job(&h, &c, &store, &mut job, "cli:1").await;
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    let v = c.volume().get_volume(job.volume_id.as_ref().unwrap()).await.unwrap();
    assert_eq!((v.status.as_str(), v.name.as_deref()), ("available", Some("restored")));

    // Over the attached volume: stop, detach, restore, attach, start.
    let mut job =
        restore::plan_job(&c, &bid, Target::Existing { volume_id: vols[0].clone() }, "operator:test", 3600, h.now())
            .await
            .unwrap();
    let kinds: Vec<String> = job.steps.iter().map(|s| s.kind.describe()).collect();
    assert_eq!(kinds.len(), 5, "{kinds:?}");
    assert!(kinds[0].starts_with("stop") && kinds[1].starts_with("detach") && kinds[4].starts_with("start"));
    restore::save(&store, &job, h.now()).unwrap();
    // The first runner sends the stop and the detach, then is lost.
    for _ in 0..30 {
        restore::advance(&c, &store, &mut job, "cli:1", h.now()).await.unwrap();
        if job.steps[1].state == StepState::Sent {
            break;
        }
        advance(&h, 3.0).await;
    }
    assert_eq!(job.steps[1].state, StepState::Sent, "{job:?}");
    // Another (the engine) may take the job over only once the claim is stale.
    let mut taken = restore::jobs(&store, "sim").unwrap().into_iter().find(|j| j.op == job.op).unwrap();
    assert!(!restore::may_run(&taken, "engine:x", h.now()), "a fresh claim is respected");
    advance(&h, 130.0).await;
    assert!(restore::may_run(&taken, "engine:x", h.now()));
    run_job(&h, &c, &store, &mut taken, "engine:x").await;
    assert_eq!(taken.status, JobStatus::Done, "{taken:?}");
    assert!(taken.steps.iter().all(|s| s.state == StepState::Done));
    let v = c.volume().get_volume(&vols[0]).await.unwrap();
    assert_eq!(v.status, "in-use");
    assert!(v.attachments.iter().any(|a| a.server_id == server));
    assert_eq!(c.compute().get_server(&server).await.unwrap().status, ServerStatus::Active);
    let b = c.volume().get_backup(&bid).await.unwrap();
    assert_eq!(b.status, "available", "the backup is not lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_fifty_volumes_counts_its_api_requests() {
    if on_real("a run of fifty volumes counts its api requests") {
        return;
    }
    let (h, c) = backup_sim().await;
    volumes(&h, &c, 50, &[("backup", "daily")]).await;
    let p = policy(
        r#"name = "fleet"
cloud = "sim"
[backup]
select = { volume_metadata = { backup = "daily" } }
cron = "0 2 * * *"
per_policy = 50
per_backend = 50
"#,
    );
    let store = Store::memory().unwrap();
    let since = h.now();
    advance(&h, until(h.now(), 2, 0, 30)).await;
    let (steps, requests) = stackpilot::cloud::session::counting(settle(&h, &c, &store, &p, since)).await;
    let made = steps.iter().filter(|s| matches!(s, BackupStep::Backup { .. })).count();
    assert_eq!(made, 50);
    // Three listings per pass, one request per backup.
    assert!((53..53 + 3 * 10).contains(&requests), "{requests} requests");
    println!("a run of 50 volumes: {requests} API requests ({made} backups)");
}

#[test]
fn the_oracle_keeps_chains_whole() {
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let dates: Vec<NaiveDate> = (0..60).map(|d| start + ChronoDuration::days(d)).collect();
    let keep = expected_days(&dates);
    // The newest two chains (days 49..59) whole.
    assert!((49..60).all(|d| keep.contains(&d)));
    // A kept day keeps its chain's full.
    for d in &keep {
        assert!(keep.contains(&(d - d % 7)), "day {d}");
    }
    // January's newest backup (day 30) is a monthly restore point.
    assert!(keep.contains(&30) && keep.contains(&28));
    assert!(!keep.contains(&27), "{keep:?}");
}

/// Poll the simulator's world in real time (its clock runs with ours).
async fn wait<T, F, Fut>(secs: u64, what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually(secs, what, f).await
}

fn write_policy(rig: &rig::Rig, name: &str, body: &str) {
    let dir = rig.policies().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.toml")),
        format!("name = \"{name}\"\ncloud = \"{}\"\n{body}", rig.cloud.name),
    )
    .unwrap();
}

/// A cron line for the current UTC minute: its slot runs as soon as the
/// policy is seen (its window is open).
fn this_minute() -> String {
    let now = chrono::Utc::now();
    format!("{} {} * * *", now.format("%-M"), now.format("%-H"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_killed_during_a_backup_and_during_a_restore_leaves_no_orphan_and_loses_nothing() {
    let rig = rig::Rig::at_speed(SimConfig { incidents: false, ..Default::default() }, 1.0).await;
    let Some(h) = rig.sim.as_ref() else {
        rig::not_run("engine killed during a backup and a restore", "needs the simulator's timings");
        return;
    };
    control(h, "timings", json!({"snapshot_secs": 12, "backup_secs": 3, "volume_secs": 1, "boot_secs": 2, "cloud_init_secs": 1, "stop_secs": 2, "start_secs": 2, "restore_secs": 4, "schedule_secs": 1, "delete_secs": 1})).await;
    let c = rig.client.clone();
    let vol = c.volume().create_volume(1, "db-data", &BTreeMap::new()).await.unwrap().id;
    let server = {
        let cp = c.compute();
        let flavor = cp.list_flavors().await.unwrap().into_iter().find(|f| f.name == "m1.tiny").unwrap().id;
        let image = c.image().list_images().await.unwrap().into_iter().find(|i| i.status == "active").unwrap().id;
        let net = c.network().list_networks().await.unwrap().into_iter().find(|n| n.name == "private").unwrap().id;
        let create = CreateServer {
            name: "db-host".into(),
            image_id: Some(image),
            flavor_id: flavor,
            networks: vec![NetworkSpec::Uuid(net)],
            ..Default::default()
        };
        let id = cp.create_server(&create).await.unwrap().id;
        wait(30, "the server ACTIVE", || {
            let c = c.clone();
            let id = id.clone();
            async move { (c.compute().get_server(&id).await.ok()?.status == ServerStatus::Active).then_some(()) }
        })
        .await;
        id
    };
    c.compute().attach_volume(&server, &vol).await.unwrap();
    wait(10, "the volume in use", || {
        let c = c.clone();
        let vol = vol.clone();
        async move { (c.volume().get_volume(&vol).await.ok()?.status == "in-use").then_some(()) }
    })
    .await;
    let pid = stackpilot::policy::backup::standalone_id(&rig.cloud.name, "db");
    write_policy(
        &rig,
        "db",
        &format!(
            "[backup]\nselect = {{ volumes = [\"{vol}\"] }}\ncron = \"{}\"\nstart_window = \"10m\"\nin_use = \"snapshot_then_backup\"\n",
            this_minute()
        ),
    );
    let ours = |m: &BTreeMap<String, String>| m.get(POLICY) == Some(&pid);
    let state = rig.state();
    let mut e1 = rig::spawn_engine(&rig, &state, "engine-1.log");
    // Killed while the temporary snapshot is being made.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !c.volume().list_snapshots().await.unwrap().iter().any(|s| ours(&s.metadata)) {
        let log = std::fs::read_to_string(rig.dir.path().join("engine-1.log")).unwrap_or_default();
        assert!(std::time::Instant::now() < deadline, "no snapshot of the run:\n{log}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    e1.proc.kill().unwrap();
    e1.proc.wait().unwrap();
    let data = backup_run::read(&c).await.unwrap();
    assert!(data.backups.iter().all(|b| !ours(&b.metadata)), "killed before the backup");
    let _e2 = rig::spawn_engine(&rig, &state, "engine-2.log");
    let bid = wait(60, "the backup made from the snapshot, the snapshot gone", || {
        let c = c.clone();
        async move {
            let d = backup_run::read(&c).await.ok()?;
            let mine: Vec<_> = d.backups.iter().filter(|b| ours(&b.metadata)).collect();
            let snaps = d.snapshots.iter().filter(|s| ours(&s.metadata)).count();
            match mine.as_slice() {
                [b] if b.status == "available" && snaps == 0 => Some(b.id.clone()),
                _ => None,
            }
        }
    })
    .await;
    let b = c.volume().get_backup(&bid).await.unwrap();
    assert!(b.snapshot_id.is_some(), "backed up from the snapshot: {b:?}");
    drop(_e2);

    // A restore over the attached volume, queued for the engine; the engine is
    // killed once the detach is sent, and the next one finishes the job.
    let store = Store::open(&state.join("stackpilot.db")).unwrap();
    let job = restore::plan_job(
        &c,
        &bid,
        Target::Existing { volume_id: vol.clone() },
        "operator:test",
        3600,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    restore::save(&store, &job, chrono::Utc::now()).unwrap();
    let mut e3 = rig::spawn_engine(&rig, &state, "engine-3.log");
    let cloud = rig.cloud.name.clone();
    let read_job = |store: &Store| restore::jobs(store, &cloud).unwrap().into_iter().find(|j| j.op == job.op).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while read_job(&store).steps[1].state == StepState::Pending {
        assert!(std::time::Instant::now() < deadline, "the engine did not start the restore: {:?}", read_job(&store));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    e3.proc.kill().unwrap();
    e3.proc.wait().unwrap();
    assert_ne!(read_job(&store).status, JobStatus::Done, "killed mid-restore");
    let _e4 = rig::spawn_engine(&rig, &state, "engine-4.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let done = loop {
        let j = read_job(&store);
        if j.status != JobStatus::Running {
            break j;
        }
        assert!(std::time::Instant::now() < deadline, "the next engine did not finish the restore: {j:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(done.status, JobStatus::Done, "{done:?}");
    let v = c.volume().get_volume(&vol).await.unwrap();
    assert_eq!(v.status, "in-use");
    assert!(v.attachments.iter().any(|a| a.server_id == server));
    assert_eq!(c.compute().get_server(&server).await.unwrap().status, ServerStatus::Active);
    let d = backup_run::read(&c).await.unwrap();
    assert!(d.snapshots.iter().all(|s| !ours(&s.metadata)), "no orphan snapshot");
    assert_eq!(d.backups.iter().filter(|b| ours(&b.metadata) && b.status == "available").count(), 1, "no lost backup");
}

/// Passes at the wall clock until the policy settles (`run_now`: an operator's run).
async fn settle_now(
    c: &Client,
    store: &Store,
    p: &BackupPolicy,
    since: Timestamp,
    run_now: Option<Timestamp>,
) -> Vec<BackupStep> {
    let mut steps = Vec::new();
    for _ in 0..120 {
        let now = chrono::Utc::now();
        let data = backup_run::read(c).await.unwrap();
        let planned = backup_run::plan_all(
            std::slice::from_ref(p),
            &data,
            &BTreeMap::new(),
            &BTreeMap::from([(p.id.clone(), since)]),
            now,
            run_now.map(|t| (p.id.as_str(), t)),
        );
        for o in backup_run::carry_out(c, store, "engine:test", &planned, now).await {
            assert!(o.result.is_ok(), "{}: {:?}", o.step.describe(), o.result);
            steps.push(o.step);
        }
        if planned[0].plan.settled() {
            return steps;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    panic!("the policy did not settle: {steps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_cloud_a_scheduled_full_then_an_incremental_retention_and_a_restore_to_a_new_volume() {
    let rig = rig::Rig::at_speed(SimConfig { incidents: false, ..Default::default() }, 1.0).await;
    if let Some(h) = &rig.sim {
        control(h, "timings", json!({"backup_secs": 2, "volume_secs": 1, "restore_secs": 2, "delete_secs": 1})).await;
    }
    let c = rig.client.clone();
    let name = rig.app("bk");
    let vol = c.volume().create_volume(1, &name, &BTreeMap::new()).await.unwrap().id;
    wait(120, "the volume available", || {
        let c = c.clone();
        let vol = vol.clone();
        async move { (c.volume().get_volume(&vol).await.ok()?.status == "available").then_some(()) }
    })
    .await;
    let p = policy(&format!(
        "name = \"{name}\"\ncloud = \"{}\"\n[backup]\nselect = {{ volumes = [\"{vol}\"] }}\ncron = \"{}\"\nstart_window = \"10m\"\nfull_every = 2\nretention = {{ keep_last_chains = 1, daily = 0, weekly = 0, monthly = 0 }}\n",
        rig.cloud.name,
        this_minute()
    ));
    let store = Store::memory().unwrap();
    let since = chrono::Utc::now();
    let ours = |b: &&stackpilot::domain::Backup| b.metadata.get(POLICY) == Some(&p.id);
    // The scheduled run: a full.
    let steps = settle_now(&c, &store, &p, since, None).await;
    assert!(matches!(&steps[..], [BackupStep::Backup { full: true, .. }]), "{steps:?}");
    let full1 = backup_run::read(&c).await.unwrap().backups.iter().filter(ours).map(|b| b.id.clone()).next().unwrap();
    // The next run: an incremental on its chain.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let steps = settle_now(&c, &store, &p, since, Some(chrono::Utc::now())).await;
    assert!(
        matches!(&steps[..], [BackupStep::Backup { full: false, metadata, .. }] if metadata.get(CHAIN) == Some(&full1)),
        "{steps:?}"
    );
    let data = backup_run::read(&c).await.unwrap();
    let inc = data.backups.iter().filter(ours).find(|b| b.is_incremental).unwrap().clone();
    // full_every = 2: the third run starts a new chain; retention (one chain)
    // then deletes the incremental, then its full.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let steps = settle_now(&c, &store, &p, since, Some(chrono::Utc::now())).await;
    let deleted: Vec<&str> = steps
        .iter()
        .filter_map(|s| match s {
            BackupStep::Delete { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    assert!(matches!(&steps[0], BackupStep::Backup { full: true, .. }), "{steps:?}");
    assert_eq!(deleted, vec![inc.id.as_str(), full1.as_str()], "newest first: {steps:?}");
    let left: Vec<_> = backup_run::read(&c).await.unwrap().backups.into_iter().filter(|b| ours(&b)).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!left[0].is_incremental && left[0].status == "available");
    // A restore to a new volume.
    let mut job = restore::plan_job(
        &c,
        &left[0].id,
        Target::NewVolume { name: format!("{name}-restored"), volume_type: None, availability_zone: None },
        "operator:test",
        600,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    for _ in 0..120 {
        restore::advance(&c, &store, &mut job, "cli:test", chrono::Utc::now()).await.unwrap();
        if job.status != JobStatus::Running {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert_eq!(job.status, JobStatus::Done, "{job:?}");
    let restored = job.volume_id.clone().unwrap();
    assert_eq!(c.volume().get_volume(&restored).await.unwrap().status, "available");
    println!("on the cloud: full, incremental, full; retention deleted {deleted:?}; restored to {restored}");
    // Leave nothing behind.
    let _ = c.volume().delete_backup(&left[0].id).await;
    let _ = c.volume().delete_volume(&restored).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let _ = c.volume().delete_volume(&vol).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_pass_cut_short_is_finished_by_the_next_and_keeps_what_it_must() {
    if on_real("a retention pass cut short") {
        return;
    }
    let (h, c) = backup_sim().await;
    volumes(&h, &c, 2, &[("backup", "daily")]).await;
    let p = policy(
        r#"name = "db"
cloud = "sim"
[backup]
select = { volume_metadata = { backup = "daily" } }
cron = "0 2 * * *"
full_every = 2
per_policy = 2
retention = { keep_last_chains = 1, daily = 0, weekly = 0, monthly = 0 }
"#,
    );
    let store = Store::memory().unwrap();
    let since = h.now();
    // Two days: a chain (full, incremental) per volume.
    for _ in 0..2 {
        advance(&h, until(h.now(), 2, 0, 30)).await;
        settle(&h, &c, &store, &p, since).await;
    }
    // The third day starts a new chain; once it is available, retention has the
    // old chains to delete (their incrementals first).
    advance(&h, until(h.now(), 2, 0, 30)).await;
    let made = pass(&h, &c, &store, &p, since, &BTreeMap::new()).await;
    assert_eq!(made[0].plan.steps.iter().filter(|s| matches!(s, BackupStep::Backup { full: true, .. })).count(), 2);
    advance(&h, 70.0).await;
    let now = h.now();
    let data = backup_run::read(&c).await.unwrap();
    let kept: BTreeSet<String> = data
        .backups
        .iter()
        .filter(|b| b.created_at.is_some_and(|t| (now - t).num_seconds() < 120))
        .map(|b| b.id.clone())
        .collect();
    assert_eq!(kept.len(), 2);
    let planned = backup_run::plan_all(
        std::slice::from_ref(&p),
        &data,
        &BTreeMap::new(),
        &BTreeMap::from([(p.id.clone(), since)]),
        now,
        None,
    );
    let deletes: Vec<BackupStep> =
        planned[0].plan.steps.iter().filter(|s| matches!(s, BackupStep::Delete { .. })).cloned().collect();
    assert_eq!(deletes.len(), 2, "one incremental per volume: {deletes:?}");
    assert!(deletes.iter().all(|d| matches!(d, BackupStep::Delete { id, .. } if !kept.contains(id))));
    // Cut short after its first deletion (the engine killed mid-pass).
    let mut cut = planned[0].clone();
    cut.plan.steps.truncate(1);
    for o in backup_run::carry_out(&c, &store, "engine:test", &[cut], now).await {
        assert!(o.result.is_ok());
    }
    // The next engine's passes finish the job from what the cloud shows.
    advance(&h, 15.0).await;
    settle(&h, &c, &store, &p, since).await;
    let left: BTreeSet<String> = backup_run::read(&c).await.unwrap().backups.into_iter().map(|b| b.id).collect();
    assert_eq!(left, kept, "only the new chains are left, and none of them went");
}
