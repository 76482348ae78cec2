//! Restores (ENGINE-SPEC section 7): a restore is a job of steps kept in the
//! store, each written down before its call is made (the write-ahead intent)
//! and marked done only when the cloud shows it done. A job survives the crash
//! of whoever carries it out: the next one to pick it up (the acting engine, or
//! `stackpilot backup restore --here`) looks at the cloud and goes on from the
//! step it finds, re-sending a step only when the cloud shows it was never
//! carried out.
//!
//! - to a new volume: one step (restore with a name; created from the backup
//!   when a volume type or zone is asked for, Cinder 3.47);
//! - over an available volume: one step;
//! - over a volume attached to a server: stop the server, detach, restore,
//!   attach, start;
//! - a restore test (the monthly verification): restore to a scratch volume,
//!   then delete it.
//!
//! A step that fails or takes longer than its limit fails the job and raises an
//! alert; nothing is reset or retried behind the operator's back.

use crate::cloud::compute::ServerAction;
use crate::cloud::Client;
use crate::domain::{Event, ServerStatus, Timestamp};
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};

/// Where a backup is restored to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    NewVolume { name: String, volume_type: Option<String>, availability_zone: Option<String> },
    Existing { volume_id: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StepKind {
    Stop {
        server_id: String,
    },
    Detach {
        server_id: String,
        volume_id: String,
    },
    Restore,
    Attach {
        server_id: String,
        volume_id: String,
    },
    Start {
        server_id: String,
    },
    /// The scratch volume of a restore test.
    DeleteVolume,
}

impl StepKind {
    pub fn describe(&self) -> String {
        match self {
            StepKind::Stop { server_id } => format!("stop server {server_id}"),
            StepKind::Detach { server_id, volume_id } => format!("detach volume {volume_id} from {server_id}"),
            StepKind::Restore => "restore the backup".into(),
            StepKind::Attach { server_id, volume_id } => format!("attach volume {volume_id} to {server_id}"),
            StepKind::Start { server_id } => format!("start server {server_id}"),
            StepKind::DeleteVolume => "delete the scratch volume".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    /// Written down, then sent; done once the cloud shows it.
    Sent,
    Done,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStep {
    pub kind: StepKind,
    pub state: StepState,
    pub sent_at: Option<Timestamp>,
    pub note: Option<String>,
    /// The cloud accepted the call (recorded right after it answered).
    #[serde(default)]
    pub accepted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreJob {
    pub op: String,
    pub cloud: String,
    pub backup_id: String,
    pub target: Target,
    /// The volume restored to (known once the restore is sent, for a new one).
    pub volume_id: Option<String>,
    pub steps: Vec<JobStep>,
    pub status: JobStatus,
    pub error: Option<String>,
    pub requested_by: String,
    /// Who carries it out now (`engine:<id>` or `cli:<pid>`), and when it last moved.
    pub runner: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The longest a restore may take (the policy's `restore_timeout`).
    pub restore_timeout_secs: u64,
    /// A restore test of this policy (scratch volume, deleted after).
    pub verify_of: Option<String>,
}

/// Every step but the restore may take this long.
const STEP_LIMIT_SECS: i64 = 600;
/// A step written down as sent but not seen moving after this long is sent
/// again (the one that wrote it may have crashed before the call).
const RESEND_AFTER_SECS: i64 = 60;
/// A job whose runner has not moved it for this long may be taken over.
pub const RUNNER_STALE_SECS: i64 = 120;

fn prefix(cloud: &str) -> String {
    format!("restore-job:{cloud}:")
}

/// Every restore job of a cloud (one store record each: whoever writes one job
/// never overwrites another), oldest first.
pub fn jobs(store: &Store, cloud: &str) -> Result<Vec<RestoreJob>, StoreError> {
    let mut v = Vec::new();
    for (k, value) in store.controls_with_prefix(&prefix(cloud))? {
        let j: RestoreJob = serde_json::from_value(value).map_err(|e| StoreError::Corrupt {
            path: store.path.display().to_string(),
            what: format!("restore job `{k}` does not decode: {e}"),
        })?;
        v.push(j);
    }
    crate::domain::sort::sort_by_key(&mut v, |j| j.created_at);
    Ok(v)
}

fn job(store: &Store, cloud: &str, op: &str) -> Result<Option<RestoreJob>, StoreError> {
    store.control_as::<RestoreJob>(&format!("{}{op}", prefix(cloud)))
}

/// Write a job; finished jobs older than a week are dropped.
pub fn save(store: &Store, job: &RestoreJob, now: Timestamp) -> Result<(), StoreError> {
    for old in jobs(store, &job.cloud)?
        .iter()
        .filter(|j| j.op != job.op && j.status != JobStatus::Running && (now - j.updated_at).num_days() > 7)
    {
        store.delete_control(&format!("{}{}", prefix(&old.cloud), old.op))?;
    }
    store.put_control_as(&format!("{}{}", prefix(&job.cloud), job.op), job, &now)
}

/// What a restore will do: read the backup and the target from the cloud.
pub async fn plan_job(
    client: &Client,
    backup_id: &str,
    target: Target,
    requested_by: &str,
    restore_timeout_secs: u64,
    now: Timestamp,
) -> Result<RestoreJob, String> {
    let v = client.volume();
    let b = v.get_backup(backup_id).await.map_err(|e| format!("backup {backup_id}: {e}"))?;
    if b.status != "available" {
        return Err(format!("backup {backup_id} is {}: only an available backup can be restored", b.status));
    }
    let mut steps = Vec::new();
    let mut volume_id = None;
    match &target {
        Target::NewVolume { name, .. } => {
            // The new volume is found by its name when the answer to the
            // restore is lost: the name must be free.
            let vols = v.list_volumes().await.map_err(|e| format!("volumes: {e}"))?;
            if vols.iter().any(|x| x.name.as_deref() == Some(name.as_str())) {
                return Err(format!("a volume named `{name}` exists: choose another name"));
            }
            if name.trim().is_empty() {
                return Err("name the new volume".into());
            }
            steps.push(StepKind::Restore)
        }
        Target::Existing { volume_id: vid } => {
            let vol = v.get_volume(vid).await.map_err(|e| format!("volume {vid}: {e}"))?;
            if vol.size_gb < b.size_gb {
                return Err(format!("volume {vid} is {} GB, smaller than the backup ({} GB)", vol.size_gb, b.size_gb));
            }
            volume_id = Some(vid.clone());
            match (vol.status.as_str(), vol.attachments.as_slice()) {
                ("available", _) => steps.push(StepKind::Restore),
                ("in-use", [a]) => {
                    let s = a.server_id.clone();
                    // A running server is stopped and started again; a stopped one stays stopped.
                    let running = match client.compute().get_server(&s).await {
                        Ok(x) if x.status == ServerStatus::Active => true,
                        Ok(x) if x.status == ServerStatus::Shutoff => false,
                        Ok(x) => {
                            return Err(format!(
                                "server {} is {}: a restore over its volume needs it ACTIVE or SHUTOFF",
                                x.display_name(),
                                x.status
                            ))
                        }
                        Err(e) => return Err(format!("server {s}: {e}")),
                    };
                    if running {
                        steps.push(StepKind::Stop { server_id: s.clone() });
                    }
                    steps.push(StepKind::Detach { server_id: s.clone(), volume_id: vid.clone() });
                    steps.push(StepKind::Restore);
                    steps.push(StepKind::Attach { server_id: s.clone(), volume_id: vid.clone() });
                    if running {
                        steps.push(StepKind::Start { server_id: s });
                    }
                }
                ("in-use", many) => {
                    return Err(format!("volume {vid} is attached to {} servers: detach it first", many.len()))
                }
                (st, _) => return Err(format!("volume {vid} is {st}: it must be available or in use")),
            }
        }
    }
    Ok(RestoreJob {
        op: uuid::Uuid::new_v4().to_string(),
        cloud: client.name().to_string(),
        backup_id: backup_id.to_string(),
        target,
        volume_id,
        steps: steps
            .into_iter()
            .map(|kind| JobStep { kind, state: StepState::Pending, sent_at: None, note: None, accepted: false })
            .collect(),
        status: JobStatus::Running,
        error: None,
        requested_by: requested_by.to_string(),
        runner: None,
        created_at: now,
        updated_at: now,
        restore_timeout_secs,
        verify_of: None,
    })
}

/// Whether `runner` may carry the job out now (it is running, and unclaimed,
/// claimed by `runner`, or its claim went stale). An engine only carries jobs
/// out while it holds the cloud's lease, so it takes over another engine's
/// job at once (that engine lost the lease, or died).
pub fn may_run(job: &RestoreJob, runner: &str, now: Timestamp) -> bool {
    let engine = |r: &str| r.starts_with("engine:");
    job.status == JobStatus::Running
        && match &job.runner {
            None => true,
            Some(r) if r == runner => true,
            Some(r) if engine(r) && engine(runner) => true,
            Some(_) => (now - job.updated_at).num_seconds() > RUNNER_STALE_SECS,
        }
}

/// Move a job on as far as the cloud allows now (every step written down
/// before its call). Returns whether it changed.
pub async fn advance(
    client: &Client,
    store: &Store,
    job: &mut RestoreJob,
    runner: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    // The store's copy is the truth: another runner may have moved the job on.
    if let Some(stored) = self::job(store, &job.cloud, &job.op)? {
        *job = stored;
    }
    if !may_run(job, runner, now) {
        return Ok(false);
    }
    // Claim it, and keep the claim fresh while it runs (a claim goes stale
    // only when its runner stops calling).
    job.runner = Some(runner.to_string());
    job.updated_at = now;
    save(store, job, now)?;
    let mut changed = false;
    loop {
        let Some(i) = job.steps.iter().position(|s| s.state != StepState::Done) else {
            job.status = JobStatus::Done;
            job.updated_at = now;
            save(store, job, now)?;
            event(store, job, runner, now, "restore", "restore finished".into(), "ok");
            return Ok(true);
        };
        let Some(step) = job.steps.get(i).cloned() else { return Ok(changed) };
        match step.state {
            StepState::Pending => {
                // Write-ahead: the step is recorded before its call.
                set(job, i, |s| {
                    s.state = StepState::Sent;
                    s.sent_at = Some(now);
                });
                job.updated_at = now;
                save(store, job, now)?;
                let r = send(client, job, &step.kind).await;
                match r {
                    Ok(note) => {
                        set(job, i, |s| {
                            s.accepted = true;
                            if let Some(n) = note {
                                s.note = Some(n);
                            }
                        });
                        event(store, job, runner, now, "restore-step", step.kind.describe(), "sent");
                    }
                    Err(e) => return fail(store, job, i, runner, now, e).map(|_| true),
                }
                save(store, job, now)?;
                return Ok(true);
            }
            StepState::Sent => {
                let sent = step.sent_at.unwrap_or(now);
                let waited = (now - sent).num_seconds();
                match seen(client, job, &step.kind).await {
                    Seen::Done => {
                        set(job, i, |s| s.state = StepState::Done);
                        job.updated_at = now;
                        event(store, job, runner, now, "restore-step", step.kind.describe(), "done");
                        save(store, job, now)?;
                        changed = true;
                        continue;
                    }
                    Seen::Failed(why) => return fail(store, job, i, runner, now, why).map(|_| true),
                    Seen::NotStarted if waited > RESEND_AFTER_SECS => {
                        set(job, i, |s| {
                            s.state = StepState::Pending;
                            s.accepted = false;
                            s.note = Some("not seen on the cloud: sent again".into());
                        });
                        continue;
                    }
                    Seen::Moving | Seen::NotStarted => {
                        let limit = if step.kind == StepKind::Restore {
                            job.restore_timeout_secs as i64
                        } else {
                            STEP_LIMIT_SECS
                        };
                        if waited > limit {
                            let why = format!("{} did not finish within {limit}s", step.kind.describe());
                            return fail(store, job, i, runner, now, why).map(|_| true);
                        }
                        if changed {
                            save(store, job, now)?;
                        }
                        return Ok(changed);
                    }
                }
            }
            StepState::Done | StepState::Failed => return Ok(changed),
        }
    }
}

fn fail(
    store: &Store,
    job: &mut RestoreJob,
    i: usize,
    runner: &str,
    now: Timestamp,
    why: String,
) -> Result<(), StoreError> {
    if let Some(s) = job.steps.get_mut(i) {
        s.state = StepState::Failed;
        s.note = Some(why.clone());
    }
    job.status = JobStatus::Failed;
    job.error = Some(why.clone());
    job.updated_at = now;
    save(store, job, now)?;
    event(store, job, runner, now, "restore", format!("restore failed: {why}"), "failed");
    Ok(())
}

fn set(job: &mut RestoreJob, i: usize, f: impl FnOnce(&mut JobStep)) {
    if let Some(s) = job.steps.get_mut(i) {
        f(s);
    }
}

fn event(store: &Store, job: &RestoreJob, actor: &str, now: Timestamp, action: &str, what: String, result: &str) {
    let e = Event::new(now, actor, &job.cloud, action, format!("backup {}: {what}", job.backup_id))
        .target(job.volume_id.clone().unwrap_or_default())
        .result(result)
        .detail(format!("op {}", job.op));
    if let Err(err) = store.add_event(&e) {
        tracing::error!("cannot record a restore step: {err}");
    }
}

async fn send(client: &Client, job: &mut RestoreJob, kind: &StepKind) -> Result<Option<String>, String> {
    let c = client.compute();
    let v = client.volume();
    let tolerate_conflict = |r: crate::cloud::error::Result<Option<String>>| match r {
        Ok(_) => Ok(None),
        // Already stopping, started, detaching: the cloud is on it.
        Err(e) if e.status == Some(409) => Ok(Some(format!("the cloud answered: {e}"))),
        Err(e) => Err(e.to_string()),
    };
    // The server of an attached volume must be at rest before its volume is
    // detached or overwritten: anything else ends the job.
    let stopped = |server_id: String| async move {
        match client.compute().get_server(&server_id).await {
            Ok(s) if s.status == ServerStatus::Shutoff && s.task_state.is_none() => Ok(()),
            Ok(s) => Err(format!("server {} is {}, not stopped: the restore stops here", s.display_name(), s.status)),
            Err(e) => Err(format!("server {server_id}: {e}")),
        }
    };
    let attached_to = job.steps.iter().find_map(|s| match &s.kind {
        StepKind::Detach { server_id, .. } => Some(server_id.clone()),
        _ => None,
    });
    match kind {
        StepKind::Stop { server_id } => {
            // A member is marked first: recovery leaves an operator's stop alone.
            mark_member(client, server_id, crate::domain::names::STATE_STOPPED_BY_OPERATOR).await?;
            tolerate_conflict(c.action(server_id, &ServerAction::Stop).await)
        }
        StepKind::Start { server_id } => {
            mark_member(client, server_id, crate::domain::names::STATE_ACTIVE).await?;
            tolerate_conflict(c.action(server_id, &ServerAction::Start).await)
        }
        StepKind::Detach { server_id, volume_id } => {
            stopped(server_id.clone()).await?;
            c.detach_volume(server_id, volume_id).await.map(|_| None).map_err(|e| e.to_string())
        }
        StepKind::Attach { server_id, volume_id } => tolerate_conflict(c.attach_volume(server_id, volume_id).await),
        StepKind::Restore => match (&job.target, job.volume_id.clone()) {
            (Target::Existing { volume_id }, _) => {
                if let Some(s) = attached_to {
                    stopped(s).await?;
                }
                v.restore_backup(&job.backup_id, Some(volume_id), None).await.map_err(|e| e.to_string())?;
                Ok(None)
            }
            (Target::NewVolume { name, volume_type, availability_zone }, _) => {
                let vid = if volume_type.is_some() || availability_zone.is_some() {
                    let b = v.get_backup(&job.backup_id).await.map_err(|e| e.to_string())?;
                    v.create_volume_from_backup(
                        &job.backup_id,
                        b.size_gb,
                        name,
                        volume_type.as_deref(),
                        availability_zone.as_deref(),
                    )
                    .await
                    .map_err(|e| e.to_string())?
                    .id
                } else {
                    v.restore_backup(&job.backup_id, None, Some(name)).await.map_err(|e| e.to_string())?.volume_id
                };
                job.volume_id = Some(vid.clone());
                Ok(Some(format!("new volume {vid}")))
            }
        },
        StepKind::DeleteVolume => match job.volume_id.clone() {
            Some(vid) => match v.delete_volume(&vid).await {
                Ok(()) => Ok(None),
                Err(e) if e.status == Some(404) => Ok(None),
                Err(e) => Err(e.to_string()),
            },
            None => Ok(None),
        },
    }
}

/// Set `stackpilot:state` on a member of an application (not on a quarantined
/// or terminating one, nor on a server no application owns).
async fn mark_member(client: &Client, server_id: &str, state: &str) -> Result<(), String> {
    use crate::domain::names::{POLICY, STATE, STATE_QUARANTINED, STATE_TERMINATING};
    let s = client.compute().get_server(server_id).await.map_err(|e| format!("server {server_id}: {e}"))?;
    if s.meta(POLICY).is_none() || s.meta(STATE).is_some_and(|x| x == STATE_QUARANTINED || x == STATE_TERMINATING) {
        return Ok(());
    }
    let items = std::collections::BTreeMap::from([(STATE.to_string(), state.to_string())]);
    client.compute().set_metadata(server_id, &items).await.map_err(|e| format!("server {server_id}: {e}"))
}

enum Seen {
    Done,
    Moving,
    /// Nothing shows the step was carried out.
    NotStarted,
    Failed(String),
}

async fn seen(client: &Client, job: &mut RestoreJob, kind: &StepKind) -> Seen {
    let c = client.compute();
    let v = client.volume();
    let server = |id: &str| {
        let id = id.to_string();
        async move { c.get_server(&id).await }
    };
    match kind {
        StepKind::Stop { server_id } => match server(server_id).await {
            Ok(s) if s.status == ServerStatus::Shutoff => Seen::Done,
            Ok(s) if s.task_state.is_some() => Seen::Moving,
            Ok(s) if s.status == ServerStatus::Error => Seen::Failed(format!("server {server_id} went to ERROR")),
            Ok(_) => Seen::NotStarted,
            Err(e) => Seen::Failed(format!("server {server_id}: {e}")),
        },
        StepKind::Start { server_id } => match server(server_id).await {
            Ok(s) if s.status == ServerStatus::Active => Seen::Done,
            Ok(s) if s.task_state.is_some() => Seen::Moving,
            Ok(s) if s.status == ServerStatus::Error => Seen::Failed(format!("server {server_id} went to ERROR")),
            Ok(_) => Seen::NotStarted,
            Err(e) => Seen::Failed(format!("server {server_id}: {e}")),
        },
        StepKind::Detach { server_id, volume_id } => match v.get_volume(volume_id).await {
            Ok(vol) if !vol.attachments.iter().any(|a| &a.server_id == server_id) && vol.status == "available" => {
                Seen::Done
            }
            Ok(vol) if vol.status == "detaching" => Seen::Moving,
            Ok(vol) if vol.status.starts_with("error") => Seen::Failed(format!("volume {volume_id} is {}", vol.status)),
            Ok(_) => Seen::NotStarted,
            Err(e) => Seen::Failed(format!("volume {volume_id}: {e}")),
        },
        StepKind::Attach { server_id, volume_id } => match v.get_volume(volume_id).await {
            Ok(vol) if vol.status == "in-use" && vol.attachments.iter().any(|a| &a.server_id == server_id) => {
                Seen::Done
            }
            Ok(vol) if vol.status == "attaching" || vol.status == "reserved" => Seen::Moving,
            Ok(vol) if vol.status.starts_with("error") => Seen::Failed(format!("volume {volume_id} is {}", vol.status)),
            Ok(_) => Seen::NotStarted,
            Err(e) => Seen::Failed(format!("volume {volume_id}: {e}")),
        },
        StepKind::Restore => {
            let vid = match (&job.target, &job.volume_id) {
                (_, Some(v)) => v.clone(),
                (Target::NewVolume { name, .. }, None) => {
                    // Sent, but the answer was lost: the new volume is found by its name.
                    let sent = job.steps.iter().find(|s| s.kind == StepKind::Restore).and_then(|s| s.sent_at);
                    let after = |x: &crate::domain::Volume| match (x.created_at, sent) {
                        (Some(c), Some(s)) => c >= s - chrono::Duration::seconds(30),
                        _ => true,
                    };
                    match v.list_volumes().await {
                        Ok(vs) => match vs.into_iter().find(|x| x.name.as_deref() == Some(name.as_str()) && after(x)) {
                            Some(x) => {
                                // Made after the send and named so: the restore was accepted.
                                job.volume_id = Some(x.id.clone());
                                for s in job.steps.iter_mut().filter(|s| s.kind == StepKind::Restore) {
                                    s.accepted = true;
                                }
                                x.id
                            }
                            None => return Seen::NotStarted,
                        },
                        Err(_) => return Seen::Moving,
                    }
                }
                (Target::Existing { volume_id }, None) => volume_id.clone(),
            };
            match v.get_volume(&vid).await {
                Ok(vol) if vol.status == "restoring-backup" || vol.status == "creating" => Seen::Moving,
                Ok(vol) if vol.status.starts_with("error") => Seen::Failed(format!("volume {vid} is {}", vol.status)),
                Ok(vol) if vol.status == "available" => {
                    // Done once the cloud accepted the restore and the backup is no
                    // longer restoring; never accepted: it was never sent.
                    let accepted = job.steps.iter().any(|s| s.kind == StepKind::Restore && s.accepted);
                    match v.get_backup(&job.backup_id).await {
                        Ok(b) if b.status == "restoring" => Seen::Moving,
                        Ok(_) if accepted => Seen::Done,
                        Ok(_) => Seen::NotStarted,
                        Err(e) => Seen::Failed(format!("backup {}: {e}", job.backup_id)),
                    }
                }
                Ok(_) => Seen::Moving,
                Err(e) if e.status == Some(404) => Seen::NotStarted,
                Err(e) => Seen::Failed(format!("volume {vid}: {e}")),
            }
        }
        StepKind::DeleteVolume => match &job.volume_id {
            None => Seen::Done,
            Some(vid) => match v.get_volume(vid).await {
                Err(e) if e.status == Some(404) => Seen::Done,
                Ok(vol) if vol.status == "deleting" => Seen::Moving,
                Ok(vol) if vol.status.starts_with("error") => Seen::Failed(format!("volume {vid} is {}", vol.status)),
                Ok(_) => Seen::NotStarted,
                Err(e) => Seen::Failed(format!("volume {vid}: {e}")),
            },
        },
    }
}
