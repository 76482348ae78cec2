//! Carrying out backup passes: read the cloud's volumes, backups and snapshots
//! (three listings), plan each policy ([`super::backups::plan`]), then make,
//! delete and clean up what the plans say, each step in the audit log. The
//! engine runs a pass on its tick (every tick while something is in flight, at
//! least once a minute otherwise); `stackpilot backup run|prune` run the same
//! passes from the command line.
//!
//! Anything unread (a listing, the store) ends the pass before any call that
//! changes the cloud: nothing is created or deleted on partial data.

use super::backups::{self, BackupStep, Observed, PolicyPlan};
use crate::cloud::volume::CreateBackup;
use crate::cloud::Client;
use crate::domain::{Backup, Event, Snapshot, Timestamp, Volume};
use crate::policy::backup::BackupPolicy;
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet};

/// The cloud as one pass reads it.
#[derive(Debug, Clone, Default)]
pub struct CloudBackups {
    pub volumes: Vec<Volume>,
    pub backups: Vec<Backup>,
    pub snapshots: Vec<Snapshot>,
}

impl CloudBackups {
    pub fn observed(&self) -> Observed<'_> {
        Observed { volumes: &self.volumes, backups: &self.backups, snapshots: &self.snapshots }
    }
}

/// Read what backups are planned from (every listing, or an error naming the one that failed).
pub async fn read(client: &Client) -> Result<CloudBackups, String> {
    let v = client.volume();
    let (volumes, backups, snapshots) = tokio::join!(v.list_volumes(), v.list_backups(), v.list_snapshots());
    Ok(CloudBackups {
        volumes: volumes.map_err(|e| format!("volumes: {e}"))?,
        backups: backups.map_err(|e| format!("backups: {e}"))?,
        snapshots: snapshots.map_err(|e| format!("snapshots: {e}"))?,
    })
}

/// When the policy was first seen (slots before it are not missed), recorded
/// on first sight.
pub fn since(store: &Store, policy_id: &str, now: Timestamp) -> Result<Timestamp, String> {
    let key = format!("backup-since:{policy_id}");
    match store.control_as::<Timestamp>(&key).map_err(|e| e.to_string())? {
        Some(t) => Ok(t),
        None => {
            store.put_control_as(&key, &now, &now).map_err(|e| e.to_string())?;
            Ok(now)
        }
    }
}

/// What a step did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    pub policy: String,
    pub step: BackupStep,
    /// The id made (backup, snapshot), or the error.
    pub result: Result<String, String>,
}

/// One policy's plan in a pass.
#[derive(Debug, Clone)]
pub struct PlannedPolicy {
    pub policy: BackupPolicy,
    pub plan: PolicyPlan,
}

/// Plan every policy over one reading. `members`: server ids per application
/// (for `attached = true`); `run_now`: an operator's run of one policy.
pub fn plan_all(
    policies: &[BackupPolicy],
    cloud: &CloudBackups,
    members: &BTreeMap<String, BTreeSet<String>>,
    since: &BTreeMap<String, Timestamp>,
    now: Timestamp,
    run_now: Option<(&str, Timestamp)>,
) -> Vec<PlannedPolicy> {
    let obs = cloud.observed();
    let mut busy = obs.busy_backends();
    let none = BTreeSet::new();
    policies
        .iter()
        .map(|p| {
            let m = p.app.as_ref().and_then(|a| members.get(a)).unwrap_or(&none);
            let first = since.get(&p.id).copied().unwrap_or(now);
            let run = run_now.filter(|(id, _)| *id == p.id).map(|(_, t)| t);
            PlannedPolicy { policy: p.clone(), plan: backups::plan(p, &obs, m, first, &mut busy, now, run) }
        })
        .collect()
}

/// Carry out the steps of planned policies, each recorded in the audit log.
pub async fn carry_out(
    client: &Client,
    store: &Store,
    actor: &str,
    planned: &[PlannedPolicy],
    now: Timestamp,
) -> Vec<StepOutcome> {
    let mut out = Vec::new();
    let cloud = client.name().to_string();
    for pp in planned {
        for step in &pp.plan.steps {
            let result = one(client, step).await;
            let (what, result_word) = match &result {
                Ok(id) if !id.is_empty() => (format!("{} → {id}", step.describe()), "ok"),
                Ok(_) => (step.describe(), "ok"),
                Err(e) => (format!("{}: {e}", step.describe()), "failed"),
            };
            let mut e =
                Event::new(now, actor, &cloud, step.kind(), what).target(step.volume().to_string()).result(result_word);
            if let Some(app) = &pp.policy.app {
                e = e.app(app.clone());
            } else {
                e = e.detail(format!("backup policy {}", pp.policy.name));
            }
            if let Err(err) = store.add_event(&e) {
                tracing::error!("cannot record a backup step: {err}");
            }
            out.push(StepOutcome { policy: pp.policy.id.clone(), step: step.clone(), result });
        }
    }
    out
}

async fn one(client: &Client, step: &BackupStep) -> Result<String, String> {
    let v = client.volume();
    match step {
        BackupStep::Snapshot { volume_id, name, metadata, .. } => {
            v.create_snapshot(volume_id, name, true, metadata).await.map(|s| s.id).map_err(|e| e.to_string())
        }
        BackupStep::Backup { volume_id, full, force, snapshot_id, name, metadata, .. } => v
            .create_backup(&CreateBackup {
                volume_id: volume_id.clone(),
                name: Some(name.clone()),
                description: Some("made by stackpilot".into()),
                incremental: !*full,
                force: *force,
                snapshot_id: snapshot_id.clone(),
                container: None,
                metadata: metadata.clone(),
            })
            .await
            .map(|(id, _)| id)
            .map_err(|e| e.to_string()),
        BackupStep::DeleteSnapshot { id, .. } => match v.delete_snapshot(id).await {
            Ok(()) => Ok(String::new()),
            Err(e) if e.status == Some(404) => Ok(String::new()),
            Err(e) => Err(e.to_string()),
        },
        BackupStep::Delete { id, .. } => match v.delete_backup(id).await {
            Ok(_) => Ok(String::new()),
            Err(e) if e.status == Some(404) => Ok(String::new()),
            Err(e) => Err(e.to_string()),
        },
    }
}

/// Monthly restore tests: once a month per policy that asks for one, its
/// newest available backup is restored to a scratch volume (deleted after).
/// Returns the jobs started.
pub async fn start_restore_tests(
    client: &Client,
    store: &Store,
    actor: &str,
    planned: &[PlannedPolicy],
    cloud: &CloudBackups,
    now: Timestamp,
) -> Result<Vec<String>, String> {
    use super::restore::{self, JobStep, StepKind, StepState, Target};
    use crate::policy::backup::RestoreTest;
    let month = now.format("%Y-%m").to_string();
    let mut started = Vec::new();
    for pp in planned.iter().filter(|pp| pp.policy.spec.restore_test == RestoreTest::Monthly) {
        let key = format!("backup-verify:{}", pp.policy.id);
        if store.control_as::<String>(&key).map_err(|e| e.to_string())?.as_deref() == Some(month.as_str()) {
            continue;
        }
        let vols: BTreeSet<&str> = pp.plan.volumes.iter().map(|v| v.volume_id.as_str()).collect();
        let newest = cloud
            .backups
            .iter()
            .filter(|b| b.status == "available" && vols.contains(b.volume_id.as_str()))
            .filter(|b| b.metadata.get(crate::domain::names::POLICY) == Some(&pp.policy.id))
            .max_by_key(|b| b.created_at);
        let Some(b) = newest else { continue };
        let name = format!("{}-restore-test-{}", pp.policy.name, now.format("%Y%m"));
        let mut job = restore::plan_job(
            client,
            &b.id,
            Target::NewVolume { name, volume_type: None, availability_zone: None },
            actor,
            pp.policy.spec.restore_timeout.0.as_secs(),
            now,
        )
        .await?;
        job.steps.push(JobStep {
            kind: StepKind::DeleteVolume,
            state: StepState::Pending,
            sent_at: None,
            note: None,
            accepted: false,
        });
        job.verify_of = Some(pp.policy.id.clone());
        restore::save(store, &job, now).map_err(|e| e.to_string())?;
        store.put_control_as(&key, &month, &now).map_err(|e| e.to_string())?;
        started.push(job.op.clone());
    }
    Ok(started)
}

/// The backup policies in force on a cloud: the `[backup]` sections of its
/// applications' policies (the last good text of an invalid file; none of a
/// missing or retired app) and the standalone files of `backups/`.
pub fn policies_of(book: &super::policies::PolicyBook, standalone: &[BackupPolicy], cloud: &str) -> Vec<BackupPolicy> {
    use crate::store::PolicyState;
    let mut v: Vec<BackupPolicy> = book
        .of_cloud(cloud)
        .filter(|e| matches!(e.state, PolicyState::Ok | PolicyState::Invalid))
        .filter_map(|e| e.policy.as_ref().and_then(|p| p.backup()))
        .collect();
    v.extend(standalone.iter().filter(|p| p.cloud == cloud).cloned());
    v
}

/// Read the standalone backup policies (`<policies>/backups/*.toml`): the good
/// ones, and the errors of the others (file:line:col).
pub fn read_standalone(dir: &std::path::Path) -> (Vec<BackupPolicy>, Vec<String>) {
    let dir = dir.join("backups");
    if !dir.is_dir() {
        return (vec![], vec![]);
    }
    let files = match crate::policy::scan_dir(&dir) {
        Ok(f) => f,
        Err(e) => return (vec![], vec![format!("{}: {e}", dir.display())]),
    };
    let mut good: Vec<BackupPolicy> = Vec::new();
    let mut errors = Vec::new();
    for (file, text) in files {
        match text.map_err(|e| e.to_string()) {
            Err(e) => errors.push(format!("{}: {e}", file.display())),
            Ok(t) => match crate::policy::backup::parse_standalone(&t, &file) {
                Ok(p) if good.iter().any(|g| g.id == p.id) => errors.push(format!(
                    "{}: backup policy `{}` on `{}` is defined twice",
                    file.display(),
                    p.name,
                    p.cloud
                )),
                Ok(p) => good.push(p),
                Err(es) => errors.extend(es.iter().map(ToString::to_string)),
            },
        }
    }
    (good, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_backup_policies_parse() {
        for (file, text) in [
            ("tagged-volumes.toml", include_str!("../../assets/demo/policies/backups/tagged-volumes.toml")),
            ("example.toml", include_str!("../../config/policies/backups/example.toml")),
        ] {
            let p = crate::policy::backup::parse_standalone(text, std::path::Path::new(file))
                .unwrap_or_else(|e| panic!("{file}: {e:?}"));
            assert!(p.app.is_none() && !p.spec.select.volume_metadata.is_empty(), "{file}");
        }
        let app = crate::policy::parse(
            include_str!("../../config/policies/example.toml"),
            std::path::Path::new("example.toml"),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let b = app.backup().unwrap_or_else(|| panic!("the example has [backup]"));
        assert!(b.spec.select.attached && b.app.as_deref() == Some(app.name()) && b.id == app.id);
    }

    #[test]
    fn standalone_policies_are_read_with_positions() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let b = dir.path().join("backups");
        std::fs::create_dir(&b).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            b.join("db.toml"),
            "name = \"db\"\ncloud = \"demo\"\n[backup]\nselect = { volumes = [\"v1\"] }\ncron = \"0 3 * * *\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(b.join("bad.toml"), "name = \"x\"\ncloud = \"demo\"\n[backup]\ncron = \"0 99 * * *\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let (good, errors) = read_standalone(dir.path());
        assert_eq!(good.len(), 1);
        assert_eq!(good[0].name, "db");
        assert_eq!(good[0].id, crate::policy::backup::standalone_id("demo", "db"));
        assert!(errors.iter().any(|e| e.contains("bad.toml:4:1") && e.contains("backup.cron")), "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("backup.select")), "{errors:?}");
    }
}
