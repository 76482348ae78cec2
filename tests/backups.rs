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
