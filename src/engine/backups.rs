//! Scheduled Cinder backups (ENGINE-SPEC section 7), planned by a pure function
//! over what the cloud holds: volumes, backups and snapshots, read fresh for
//! each pass. Everything a run makes carries `stackpilot:policy` and
//! `stackpilot:run = <policy>:<slot>`, so a pass finds what an earlier pass (or
//! an engine that crashed) already made and never makes it twice; nothing is
//! remembered between passes but when the policy was first seen (slots before
//! it are not "missed").
//!
//! One pass of a policy:
//!
//! - the current slot (cron in the policy's time zone): within its start window,
//!   each selected volume without a backup of this run gets one, up to
//!   `per_policy` backups in flight for the policy and `per_backend` per volume
//!   type; past the window, a slot that did not run is skipped and alerted;
//! - full or incremental: a full on the first run, every `full_every` runs,
//!   when the chain's full is older than `full_interval`, and whenever the
//!   newest available backup of the volume is not this policy's (Cinder would
//!   chain the incremental onto it);
//! - an in-use volume is backed up with `force`, or from a temporary snapshot
//!   (`snapshot_then_backup`) that is deleted once its backup is no longer
//!   being made, or once its run is over (after a crash);
//! - retention ([`super::retention`]) once no backup of the volume is being
//!   made and this slot's backup is available, only on backups without
//!   dependents (Cinder refuses the others; they go on a later pass);
//! - alerts: failed or stuck backups, deletes and restores, missed slots, a
//!   newest good backup older than the RPO, volumes named but not found.

use super::retention::{self, BackupRef, RetentionPlan, Rules};
use crate::domain::names::{CHAIN, POLICY, RUN};
use crate::domain::{Backup, Severity, Snapshot, Timestamp, Volume};
use crate::policy::backup::{BackupPolicy, InUse, Slot};
use std::collections::{BTreeMap, BTreeSet};

/// The run id of a slot: `<policy>:<YYYYMMDDTHHMMSSZ>` (an operator's run
/// is at the second it was asked for).
pub fn run_id(policy_id: &str, slot: &Timestamp) -> String {
    format!("{policy_id}:{}", slot.format("%Y%m%dT%H%M%SZ"))
}

/// The backend a volume's backups load (its volume type).
pub fn backend(v: &Volume) -> String {
    v.volume_type.clone().unwrap_or_else(|| "default".into())
}

/// What one pass reads from the cloud.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub volumes: &'a [Volume],
    pub backups: &'a [Backup],
    pub snapshots: &'a [Snapshot],
}

impl Observed<'_> {
    /// Backups being made per backend, over the whole cloud.
    pub fn busy_backends(&self) -> BTreeMap<String, u32> {
        let mut m = BTreeMap::new();
        for b in self.backups.iter().filter(|b| b.status == "creating") {
            let be = self.volumes.iter().find(|v| v.id == b.volume_id).map(backend).unwrap_or_else(|| "default".into());
            *m.entry(be).or_insert(0) += 1;
        }
        m
    }
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum BackupStep {
    /// A temporary snapshot to back up from.
    Snapshot {
        volume_id: String,
        run: String,
        name: String,
        metadata: BTreeMap<String, String>,
    },
    Backup {
        volume_id: String,
        run: String,
        full: bool,
        force: bool,
        snapshot_id: Option<String>,
        name: String,
        metadata: BTreeMap<String, String>,
    },
    DeleteSnapshot {
        id: String,
        volume_id: String,
        why: String,
    },
    /// Retention.
    Delete {
        id: String,
        volume_id: String,
        why: String,
    },
}

impl BackupStep {
    pub fn kind(&self) -> &'static str {
        match self {
            BackupStep::Snapshot { .. } => "backup-snapshot",
            BackupStep::Backup { full: true, .. } => "backup-full",
            BackupStep::Backup { .. } => "backup-incremental",
            BackupStep::DeleteSnapshot { .. } => "delete-snapshot",
            BackupStep::Delete { .. } => "delete-backup",
        }
    }
    pub fn volume(&self) -> &str {
        match self {
            BackupStep::Snapshot { volume_id, .. }
            | BackupStep::Backup { volume_id, .. }
            | BackupStep::DeleteSnapshot { volume_id, .. }
            | BackupStep::Delete { volume_id, .. } => volume_id,
        }
    }
    /// One line for plans and the audit log.
    pub fn describe(&self) -> String {
        match self {
            BackupStep::Snapshot { volume_id, run, .. } => format!("snapshot {volume_id} for run {run}"),
            BackupStep::Backup { volume_id, full, force, snapshot_id, .. } => format!(
                "{} backup of {volume_id}{}",
                if *full { "full" } else { "incremental" },
                match (snapshot_id, force) {
                    (Some(s), _) => format!(" from snapshot {s}"),
                    (None, true) => " (in use: force)".to_string(),
                    _ => String::new(),
                }
            ),
            BackupStep::DeleteSnapshot { id, why, .. } => format!("delete snapshot {id}: {why}"),
            BackupStep::Delete { id, why, .. } => format!("delete backup {id}: {why}"),
        }
    }
}

/// A condition to alert on.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// `backup-failed`, `backup-stuck`, `backup-missed`, `backup-rpo`, `backup-volume-missing`.
    pub kind: &'static str,
    pub severity: Severity,
    pub message: String,
}

/// The newest backup of a volume, for the Volumes view.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LastBackup {
    pub id: String,
    pub at: Timestamp,
    pub size_gb: u64,
    pub incremental: bool,
    pub status: String,
}

/// Where a volume stands with its backup policy.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VolumeBackups {
    pub volume_id: String,
    pub policy: String,
    pub last: Option<LastBackup>,
    /// The newest available backup (what a restore would use).
    pub last_good: Option<Timestamp>,
    pub next: Option<Timestamp>,
    pub chains: usize,
    /// The newest available backup is older than the policy's RPO.
    pub rpo_breached: bool,
}

/// One pass of one policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyPlan {
    pub steps: Vec<BackupStep>,
    pub problems: Vec<Problem>,
    pub volumes: Vec<VolumeBackups>,
    pub retention: RetentionPlan,
    /// Backups (or their snapshots) of this policy being made after the steps.
    pub in_flight: usize,
    /// The run this pass works on, when its slot is open.
    pub run: Option<String>,
    /// Volumes of the open run that have no finished backup yet.
    pub run_left: usize,
    /// Backups of this policy being deleted (a parent goes once they are gone).
    pub deleting: usize,
}

impl PolicyPlan {
    /// Nothing is being made and nothing is left to do this slot.
    pub fn settled(&self) -> bool {
        self.steps.is_empty() && self.in_flight == 0 && self.run_left == 0 && self.deleting == 0
    }
}

/// The volumes a policy selects: by id, by metadata, attached to the members
/// (`members`: server ids of the policy's application). The criteria add up.
pub fn selected<'a>(p: &BackupPolicy, members: &BTreeSet<String>, volumes: &'a [Volume]) -> Vec<&'a Volume> {
    let s = &p.spec.select;
    volumes
        .iter()
        .filter(|v| {
            s.volumes.contains(&v.id)
                || (!s.volume_metadata.is_empty()
                    && s.volume_metadata.iter().all(|(k, val)| v.metadata.get(k) == Some(val)))
                || (s.attached && v.attachments.iter().any(|a| members.contains(&a.server_id)))
        })
        .collect()
}

fn owned(b: &Backup, pid: &str) -> bool {
    b.metadata.get(POLICY).map(String::as_str) == Some(pid)
}

fn data_time(b: &Backup) -> Timestamp {
    b.data_timestamp.or(b.created_at).unwrap_or_default()
}

/// Retention's view of a volume's backups.
pub fn refs(pid: &str, backups: &[&Backup]) -> Vec<BackupRef> {
    backups
        .iter()
        .map(|b| BackupRef {
            id: b.id.clone(),
            volume_id: b.volume_id.clone(),
            created_at: data_time(b),
            incremental: b.is_incremental,
            status: b.status.clone(),
            chain: b.metadata.get(CHAIN).cloned(),
            owned: owned(b, pid),
        })
        .collect()
}

fn age(now: Timestamp, t: Option<Timestamp>) -> i64 {
    t.map(|t| (now - t).num_seconds()).unwrap_or(0)
}

/// Plan one pass of a policy. `members`: server ids of its application;
/// `since`: when the engine first saw the policy (earlier slots are not
/// missed); `busy`: backups being made per backend over the cloud (updated with
/// what this pass starts); `run_now`: an operator's run at this time, in place
/// of the schedule.
pub fn plan(
    p: &BackupPolicy,
    obs: &Observed,
    members: &BTreeSet<String>,
    since: Timestamp,
    busy: &mut BTreeMap<String, u32>,
    now: Timestamp,
    run_now: Option<Timestamp>,
) -> PolicyPlan {
    let spec = &p.spec;
    let pid = p.id.as_str();
    let mut out = PolicyPlan::default();
    let vols = selected(p, members, obs.volumes);
    for id in &spec.select.volumes {
        if !obs.volumes.iter().any(|v| &v.id == id) {
            out.problems.push(Problem {
                kind: "backup-volume-missing",
                severity: Severity::Warning,
                message: format!("volume {id} named by the policy does not exist"),
            });
        }
    }
    // A slot belongs to the policy when its window was still open when the
    // policy was first seen (an earlier one is neither run nor missed).
    let window = chrono::Duration::from_std(spec.start_window.0).unwrap_or(chrono::Duration::zero());
    let slot = match run_now {
        Some(t) => Some(Slot::Due(t)),
        None => spec.due(&now).filter(|s| match s {
            Slot::Due(t) | Slot::Missed(t) => *t + window >= since,
        }),
    };
    let run = match slot {
        Some(Slot::Due(t)) => Some(run_id(pid, &t)),
        _ => None,
    };
    out.run = run.clone();
    let tz = crate::domain::cron::parse_tz(&spec.tz).unwrap_or(jiff::tz::TimeZone::UTC);
    let rules = Rules {
        keep_last_chains: spec.retention.keep_last_chains,
        daily: spec.retention.daily,
        weekly: spec.retention.weekly,
        monthly: spec.retention.monthly,
    };
    let mine_all: Vec<&Backup> = obs.backups.iter().filter(|b| owned(b, pid)).collect();
    let snaps: Vec<&Snapshot> =
        obs.snapshots.iter().filter(|s| s.metadata.get(POLICY).map(String::as_str) == Some(pid)).collect();
    // What is in flight: backups being made, and snapshots waiting for theirs.
    let mut in_flight = mine_all.iter().filter(|b| b.status == "creating").count();
    let chosen: BTreeSet<&str> = vols.iter().map(|v| v.id.as_str()).collect();
    for s in snaps.iter().filter(|s| chosen.contains(s.volume_id.as_str())) {
        let r = s.metadata.get(RUN);
        let backed = mine_all.iter().any(|b| b.metadata.get(RUN) == r && b.volume_id == s.volume_id);
        if !backed && run.as_ref() == r && s.status != "error" {
            in_flight += 1;
        }
    }
    let mut missed = Vec::new();
    let mut failed = Vec::new();
    let next = spec.next_slot(&now);
    for v in &vols {
        let all: Vec<&Backup> = obs.backups.iter().filter(|b| b.volume_id == v.id).collect();
        let mine: Vec<&Backup> = all.iter().copied().filter(|b| owned(b, pid)).collect();
        let this_run = run.as_ref().and_then(|r| mine.iter().find(|b| b.metadata.get(RUN) == Some(r)));
        let mut planned = false;
        // Temporary snapshots: gone once their backup is made or their run is over.
        for s in snaps.iter().filter(|s| s.volume_id == v.id) {
            let r = s.metadata.get(RUN);
            let backup = mine.iter().find(|b| b.metadata.get(RUN) == r);
            let why = match (backup, s.status.as_str()) {
                (_, "creating" | "deleting") => None,
                (Some(b), _) if b.status == "creating" => None,
                (Some(b), _) => Some(format!("its backup {} is {}", b.id, b.status)),
                (None, "error") => Some("the snapshot failed".to_string()),
                (None, _) if run.as_ref() != r => Some("its run is over (left by an interrupted run)".into()),
                (None, _) => None,
            };
            if let Some(why) = why {
                out.steps.push(BackupStep::DeleteSnapshot { id: s.id.clone(), volume_id: v.id.clone(), why });
                planned = true;
            }
        }
        match (&slot, &run, this_run) {
            (Some(Slot::Due(t)), Some(r), None) => {
                out.run_left += 1;
                let snap = snaps.iter().find(|s| s.volume_id == v.id && s.metadata.get(RUN) == Some(r));
                let be = backend(v);
                let room = |busy: &BTreeMap<String, u32>, in_flight: usize| {
                    (in_flight as u32) < spec.per_policy && busy.get(&be).copied().unwrap_or(0) < spec.per_backend
                };
                let name =
                    format!("{}-{}-{}", p.name, v.id.chars().take(8).collect::<String>(), t.format("%Y%m%dT%H%MZ"));
                let mut meta = BTreeMap::from([(POLICY.to_string(), pid.to_string()), (RUN.to_string(), r.clone())]);
                let in_use = v.status == "in-use";
                let via_snapshot = in_use && spec.in_use == InUse::SnapshotThenBackup;
                match snap {
                    Some(s) if s.status == "available" => {
                        let (full, chain) = full_or_chain(p, &all, &mine, now);
                        if let Some(c) = chain {
                            meta.insert(CHAIN.into(), c);
                        }
                        out.steps.push(BackupStep::Backup {
                            volume_id: v.id.clone(),
                            run: r.clone(),
                            full,
                            force: false,
                            snapshot_id: Some(s.id.clone()),
                            name,
                            metadata: meta,
                        });
                        *busy.entry(be.clone()).or_insert(0) += 1;
                        planned = true;
                    }
                    Some(_) => planned = true,
                    None if !matches!(v.status.as_str(), "available" | "in-use") => {
                        // Busy (backing-up, attaching...) or broken: try again on the next pass.
                        if v.status.starts_with("error") {
                            failed.push(format!("{} is {}", v.label(), v.status));
                        }
                    }
                    None if room(busy, in_flight) => {
                        in_flight += 1;
                        planned = true;
                        if via_snapshot {
                            out.steps.push(BackupStep::Snapshot {
                                volume_id: v.id.clone(),
                                run: r.clone(),
                                name: format!("{name}-snap"),
                                metadata: meta,
                            });
                        } else {
                            let (full, chain) = full_or_chain(p, &all, &mine, now);
                            if let Some(c) = chain {
                                meta.insert(CHAIN.into(), c);
                            }
                            out.steps.push(BackupStep::Backup {
                                volume_id: v.id.clone(),
                                run: r.clone(),
                                full,
                                force: in_use,
                                snapshot_id: None,
                                name,
                                metadata: meta,
                            });
                            *busy.entry(be.clone()).or_insert(0) += 1;
                        }
                    }
                    None => planned = true,
                }
            }
            (Some(Slot::Missed(t)), _, _) => {
                let r = run_id(pid, t);
                if !mine.iter().any(|b| b.metadata.get(RUN) == Some(&r)) {
                    missed.push(v.label().to_string());
                }
            }
            (_, _, Some(b)) if b.status == "creating" => out.run_left += 1,
            (_, _, Some(b)) if b.status == "error" => {
                failed.push(format!(
                    "backup {} of {}: {}",
                    b.id,
                    v.label(),
                    b.fail_reason.as_deref().unwrap_or("no reason given")
                ));
            }
            _ => {}
        }
        for b in &mine {
            let (limit, since_t) = match b.status.as_str() {
                "creating" => (spec.create_timeout, b.created_at),
                "deleting" => (spec.delete_timeout, b.updated_at.or(b.created_at)),
                "restoring" => (spec.restore_timeout, b.updated_at.or(b.created_at)),
                _ => continue,
            };
            if age(now, since_t) > limit.0.as_secs() as i64 {
                out.problems.push(Problem {
                    kind: "backup-stuck",
                    severity: Severity::Critical,
                    message: format!(
                        "backup {} of {} has been {} for {}s (limit {}s): an administrator must look (no automatic reset-state)",
                        b.id,
                        v.label(),
                        b.status,
                        age(now, since_t),
                        limit.0.as_secs()
                    ),
                });
            }
        }
        // Retention, once this slot's backup is there and nothing is being made.
        let run_done = this_run.is_none_or(|b| b.status == "available") || run.is_none();
        let waiting_for_run = run.is_some() && this_run.is_none();
        let rp = retention::plan(&refs(pid, &all), &rules, &tz);
        if !planned && run_done && !waiting_for_run {
            for d in &rp.delete {
                let Some(b) = all.iter().find(|b| b.id == d.id) else { continue };
                if matches!(b.status.as_str(), "available" | "error") && !b.has_dependent_backups {
                    out.steps.push(BackupStep::Delete {
                        id: d.id.clone(),
                        volume_id: v.id.clone(),
                        why: d.why.clone(),
                    });
                }
            }
        }
        out.retention.delete.extend(rp.delete);
        out.retention.held.extend(rp.held);
        out.retention.kept.extend(rp.kept);
        // What the Volumes view shows.
        let newest = mine.iter().max_by_key(|b| data_time(b));
        let good = all.iter().filter(|b| b.status == "available").map(|b| data_time(b)).max();
        let rpo_breached = spec.rpo.is_some_and(|rpo| {
            let limit = rpo.0.as_secs() as i64;
            match good {
                Some(t) => (now - t).num_seconds() > limit,
                None => (now - since).num_seconds() > limit,
            }
        });
        if rpo_breached {
            out.problems.push(Problem {
                kind: "backup-rpo",
                severity: Severity::Critical,
                message: match good {
                    Some(t) => format!(
                        "{}: the newest good backup is {} old (RPO {})",
                        v.label(),
                        crate::domain::time::human_age((now - t).num_seconds()),
                        crate::domain::time::human_age(spec.rpo.map_or(0, |r| r.0.as_secs() as i64))
                    ),
                    None => format!("{}: no good backup yet", v.label()),
                },
            });
        }
        let chains = mine.iter().filter(|b| !b.is_incremental && b.status == "available").count();
        out.volumes.push(VolumeBackups {
            volume_id: v.id.clone(),
            policy: p.name.clone(),
            last: newest.map(|b| LastBackup {
                id: b.id.clone(),
                at: data_time(b),
                size_gb: b.size_gb,
                incremental: b.is_incremental,
                status: b.status.clone(),
            }),
            last_good: good,
            next,
            chains,
            rpo_breached,
        });
    }
    // Snapshots of volumes the policy no longer selects (a member replaced
    // between a snapshot and its backup) go too, unless a backup is being made from one.
    for s in snaps.iter().filter(|s| !chosen.contains(s.volume_id.as_str())) {
        let r = s.metadata.get(RUN);
        let making =
            mine_all.iter().any(|b| b.metadata.get(RUN) == r && b.volume_id == s.volume_id && b.status == "creating");
        if !making && matches!(s.status.as_str(), "available" | "error") {
            out.steps.push(BackupStep::DeleteSnapshot {
                id: s.id.clone(),
                volume_id: s.volume_id.clone(),
                why: "its volume is no longer selected by the policy".into(),
            });
        }
    }
    if !missed.is_empty() {
        out.problems.push(Problem {
            kind: "backup-missed",
            severity: Severity::Warning,
            message: format!(
                "the run of this slot did not start within its {}s window and is skipped (never run late): {}",
                spec.start_window.0.as_secs(),
                missed.join(", ")
            ),
        });
    }
    for f in failed {
        out.problems.push(Problem { kind: "backup-failed", severity: Severity::Critical, message: f });
    }
    out.in_flight = in_flight;
    out.deleting = mine_all.iter().filter(|b| b.status == "deleting").count();
    out
}

/// Whether the next backup of a volume is a full, and the chain an incremental
/// joins (its full's id).
fn full_or_chain(p: &BackupPolicy, all: &[&Backup], mine: &[&Backup], now: Timestamp) -> (bool, Option<String>) {
    let spec = &p.spec;
    if !spec.incremental {
        return (true, None);
    }
    // Cinder chains an incremental onto the newest available backup of the
    // volume, whoever made it: only ours can be followed.
    let Some(parent) = all.iter().filter(|b| b.status == "available").max_by_key(|b| data_time(b)) else {
        return (true, None);
    };
    if !mine.iter().any(|b| b.id == parent.id) {
        return (true, None);
    }
    let chain = if parent.is_incremental { parent.metadata.get(CHAIN).cloned() } else { Some(parent.id.clone()) };
    let Some(chain) = chain else { return (true, None) };
    let Some(full) = mine.iter().find(|b| b.id == chain && !b.is_incremental && b.status == "available") else {
        return (true, None);
    };
    if spec.full_interval.is_some_and(|i| age(now, Some(data_time(full))) >= i.0.as_secs() as i64) {
        return (true, None);
    }
    let since_full = mine
        .iter()
        .filter(|b| b.is_incremental && b.metadata.get(CHAIN) == Some(&chain) && b.status == "available")
        .count();
    if spec.is_full_run(Some(since_full as u32)) {
        (true, None)
    } else {
        (false, Some(chain))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::policy::backup::{BackupSpec, Select};

    fn at(s: &str) -> Timestamp {
        crate::domain::time::parse_timestamp(s).unwrap()
    }

    fn vol(id: &str, status: &str) -> Volume {
        Volume {
            id: id.into(),
            name: Some(format!("v-{id}")),
            status: status.into(),
            size_gb: 10,
            availability_zone: None,
            bootable: false,
            encrypted: false,
            volume_type: Some("lvm".into()),
            attachments: vec![],
            metadata: BTreeMap::new(),
            created_at: None,
            updated_at: None,
            raw: None,
        }
    }

    fn bak(id: &str, vol: &str, t: &str, inc: bool, meta: &[(&str, &str)]) -> Backup {
        Backup {
            id: id.into(),
            name: None,
            description: None,
            volume_id: vol.into(),
            snapshot_id: None,
            status: "available".into(),
            fail_reason: None,
            size_gb: 10,
            is_incremental: inc,
            has_dependent_backups: false,
            container: None,
            availability_zone: None,
            object_count: None,
            metadata: meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            created_at: Some(at(t)),
            updated_at: Some(at(t)),
            data_timestamp: Some(at(t)),
            raw: None,
        }
    }

    fn policy(spec: BackupSpec) -> BackupPolicy {
        BackupPolicy { id: "P".into(), name: "db".into(), cloud: "c".into(), app: None, file: "x".into(), spec }
    }

    #[test]
    fn a_due_slot_backs_up_each_volume_once_within_the_concurrency() {
        let p = policy(BackupSpec {
            select: Select { volumes: vec!["a".into(), "b".into(), "gone".into()], ..Default::default() },
            per_policy: 1,
            ..Default::default()
        });
        let vols = vec![vol("a", "available"), vol("b", "in-use"), vol("c", "available")];
        let obs = Observed { volumes: &vols, backups: &[], snapshots: &[] };
        let now = at("2026-12-02T02:05:00Z");
        let mut busy = BTreeMap::new();
        let pl = plan(&p, &obs, &BTreeSet::new(), at("2026-12-01T00:00:00Z"), &mut busy, now, None);
        assert_eq!(pl.run.as_deref(), Some("P:20261202T020000Z"));
        // One at a time (per_policy = 1): a full of `a`; `b` waits.
        assert_eq!(pl.steps.len(), 1, "{:?}", pl.steps);
        let BackupStep::Backup { volume_id, full, force, metadata, .. } = &pl.steps[0] else { panic!() };
        assert!(volume_id == "a" && *full && !*force);
        assert_eq!(metadata.get(RUN).map(String::as_str), Some("P:20261202T020000Z"));
        assert_eq!(pl.run_left, 2);
        assert!(pl.problems.iter().any(|p| p.kind == "backup-volume-missing"));
        // The backup of `a` exists (made, or adopted after a crash): `b` goes, forced (in use).
        let mut made = bak("x", "a", "2026-12-02T02:05:00Z", false, &[(POLICY, "P"), (RUN, "P:20261202T020000Z")]);
        made.status = "creating".into();
        let baks = vec![made];
        let obs = Observed { volumes: &vols, backups: &baks, snapshots: &[] };
        let mut busy = obs.busy_backends();
        let pl = plan(&p, &obs, &BTreeSet::new(), at("2026-12-01T00:00:00Z"), &mut busy, now, None);
        assert!(pl.steps.is_empty(), "per_policy 1 with one in flight: {:?}", pl.steps);
        let mut baks = baks;
        baks[0].status = "available".into();
        let obs = Observed { volumes: &vols, backups: &baks, snapshots: &[] };
        let mut busy = obs.busy_backends();
        let pl = plan(&p, &obs, &BTreeSet::new(), at("2026-12-01T00:00:00Z"), &mut busy, now, None);
        assert!(
            matches!(&pl.steps[..], [BackupStep::Backup { volume_id, force: true, full: true, .. }] if volume_id == "b"),
            "{:?}",
            pl.steps
        );
        // Past the window, a slot not run is missed (alerted), never run late.
        let late = at("2026-12-02T02:45:00Z");
        let pl = plan(&p, &obs, &BTreeSet::new(), at("2026-12-01T00:00:00Z"), &mut BTreeMap::new(), late, None);
        assert!(pl.steps.iter().all(|s| !matches!(s, BackupStep::Backup { .. })));
        let m = pl.problems.iter().find(|p| p.kind == "backup-missed").unwrap();
        assert!(m.message.contains("v-b") && !m.message.contains("v-a"), "{}", m.message);
        // A slot whose window had closed when the policy was first seen is not missed.
        let pl = plan(&p, &obs, &BTreeSet::new(), at("2026-12-02T02:31:00Z"), &mut BTreeMap::new(), late, None);
        assert!(!pl.problems.iter().any(|p| p.kind == "backup-missed"));
    }

    #[test]
    fn incrementals_follow_our_chain_and_a_foreign_backup_forces_a_full() {
        let p = policy(BackupSpec {
            select: Select { volumes: vec!["a".into()], ..Default::default() },
            full_every: 3,
            ..Default::default()
        });
        let full = bak("f1", "a", "2026-12-01T02:00:00Z", false, &[(POLICY, "P"), (RUN, "P:1")]);
        let inc = bak("i1", "a", "2026-12-02T02:00:00Z", true, &[(POLICY, "P"), (RUN, "P:2"), (CHAIN, "f1")]);
        let mine = [&full, &inc];
        assert_eq!(full_or_chain(&p, &mine, &mine, at("2026-12-03T02:00:00Z")), (false, Some("f1".into())));
        let inc2 = bak("i2", "a", "2026-12-03T02:00:00Z", true, &[(POLICY, "P"), (RUN, "P:3"), (CHAIN, "f1")]);
        let mine = [&full, &inc, &inc2];
        // full_every = 3: the fourth run starts a new chain.
        assert_eq!(full_or_chain(&p, &mine, &mine, at("2026-12-04T02:00:00Z")), (true, None));
        let manual = bak("m", "a", "2026-12-02T12:00:00Z", false, &[]);
        let all = [&full, &inc, &manual];
        assert_eq!(full_or_chain(&p, &all, &[&full, &inc], at("2026-12-03T02:00:00Z")), (true, None));
        // Only this run's snapshot is kept; a snapshot of an interrupted run goes.
        let p = policy(BackupSpec { in_use: InUse::SnapshotThenBackup, ..p.spec.clone() });
        let vols = vec![vol("a", "in-use")];
        let snap = |id: &str, run: &str| Snapshot {
            id: id.into(),
            name: None,
            volume_id: "a".into(),
            status: "available".into(),
            size_gb: 10,
            progress: None,
            metadata: BTreeMap::from([(POLICY.into(), "P".into()), (RUN.into(), run.into())]),
            created_at: None,
        };
        let snaps = vec![snap("s-old", "P:20261201T020000Z"), snap("s-now", "P:20261202T020000Z")];
        let obs = Observed { volumes: &vols, backups: &[], snapshots: &snaps };
        let now = at("2026-12-02T02:05:00Z");
        let pl = plan(&p, &obs, &BTreeSet::new(), at("2026-11-01T00:00:00Z"), &mut BTreeMap::new(), now, None);
        assert!(matches!(&pl.steps[0], BackupStep::DeleteSnapshot { id, .. } if id == "s-old"), "{:?}", pl.steps);
        assert!(
            matches!(&pl.steps[1], BackupStep::Backup { snapshot_id: Some(s), force: false, .. } if s == "s-now"),
            "{:?}",
            pl.steps
        );
        assert_eq!(pl.steps.len(), 2);
    }

    #[test]
    fn a_snapshot_of_a_volume_no_longer_selected_goes() {
        let p = policy(BackupSpec {
            select: Select { volumes: vec!["a".into()], ..Default::default() },
            in_use: InUse::SnapshotThenBackup,
            ..Default::default()
        });
        let vols = vec![vol("a", "available"), vol("gone-member", "available")];
        let snap = Snapshot {
            id: "s1".into(),
            name: None,
            volume_id: "gone-member".into(),
            status: "available".into(),
            size_gb: 10,
            progress: None,
            metadata: BTreeMap::from([(POLICY.into(), "P".into()), (RUN.into(), "P:20261202T020000Z".into())]),
            created_at: None,
        };
        let obs = Observed { volumes: &vols, backups: &[], snapshots: std::slice::from_ref(&snap) };
        let now = at("2026-12-02T02:05:00Z");
        let pl = plan(&p, &obs, &BTreeSet::new(), at("2026-12-01T00:00:00Z"), &mut BTreeMap::new(), now, None);
        assert!(
            pl.steps.iter().any(|s| matches!(s, BackupStep::DeleteSnapshot { id, .. } if id == "s1")),
            "{:?}",
            pl.steps
        );
        // It takes no place of the selected volume's backup (per_policy = 1).
        assert!(pl.steps.iter().any(|s| matches!(s, BackupStep::Backup { volume_id, .. } if volume_id == "a")));
    }
}
