//! `stackpilot backup list|run|prune|restore`: backups without the console.
//! `run` and `prune` carry out the same passes as the engine (what a run made
//! is found again by its `stackpilot:run` metadata, so a run interrupted and
//! started again makes nothing twice); `restore` writes a restore job and
//! carries it out step by step (or leaves it to the acting engine with
//! `--queue`).

use super::output::{Format, Table};
use super::{cli_err, emit, load_settings, open_store, policies_dir, say, Cli, CliResult};
use crate::cloud::Client;
use crate::config::clouds::CloudsFile;
use crate::config::paths::ProcessEnv;
use crate::engine::backup_run::{self, CloudBackups};
use crate::engine::backups::BackupStep;
use crate::engine::restore::{self, JobStatus, StepState, Target};
use crate::policy::backup::BackupPolicy;
use clap::{Args, Subcommand};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub cloud: super::CloudFlags,
    #[command(flatten)]
    pub config: super::ConfigFlag,
    #[command(flatten)]
    pub read_only: super::ReadOnlyFlag,
    #[command(subcommand)]
    pub command: BackupCommand,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Each volume a backup policy covers: last backup, next run, chains, RPO;
    /// with --chains, every backup drawn as chains (a full and its incrementals).
    List {
        /// Only this policy (an application's name, or a standalone policy's).
        policy: Option<String>,
        #[arg(long)]
        chains: bool,
        #[arg(short = 'f', long = "format", value_enum, default_value_t)]
        output: Format,
    },
    /// Back up the policy's volumes now, then apply retention; waits until done.
    Run { policy: String },
    /// Apply the policy's retention (with --dry-run: what would go, and why).
    Prune {
        policy: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Restore a backup to a new volume, or over a volume (one attached to a
    /// server is stopped, detached, restored, attached and started again).
    Restore {
        backup: String,
        /// Name of a new volume to restore to.
        #[arg(long, conflicts_with = "volume")]
        new_volume: Option<String>,
        /// Volume type of the new volume.
        #[arg(long = "type", requires = "new_volume")]
        volume_type: Option<String>,
        /// Availability zone of the new volume.
        #[arg(long, requires = "new_volume")]
        az: Option<String>,
        /// An existing volume to restore over (its data is replaced).
        #[arg(long)]
        volume: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Leave the job to the engine that acts on the cloud instead of carrying it out here.
        #[arg(long)]
        queue: bool,
    },
}

/// Every backup policy of the policies directory (applications' `[backup]`
/// sections and standalone files), with the problems of files that do not parse.
fn all_policies(cli: &Cli) -> CliResult<(Vec<BackupPolicy>, Vec<String>)> {
    let settings = load_settings(cli)?;
    let dir = policies_dir(None, &settings);
    let (apps, errors) = crate::policy::load_dir(&dir);
    let (mut standalone, mut problems) = backup_run::read_standalone(&dir);
    problems.extend(errors.iter().map(ToString::to_string));
    let mut v: Vec<BackupPolicy> = apps.iter().filter_map(|p| p.backup()).collect();
    v.append(&mut standalone);
    Ok((v, problems))
}

fn find(cli: &Cli, name: &str) -> CliResult<BackupPolicy> {
    let (all, problems) = all_policies(cli)?;
    let found: Vec<&BackupPolicy> =
        all.iter().filter(|p| p.name == name && cli.cloud.as_ref().is_none_or(|c| &p.cloud == c)).collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            let names: Vec<String> = all.iter().map(|p| format!("{} ({})", p.name, p.cloud)).collect();
            let mut msg = format!(
                "no backup policy `{name}`; policies: {}",
                if names.is_empty() { "none".into() } else { names.join(", ") }
            );
            if !problems.is_empty() {
                msg.push_str(&format!("; files with problems: {}", problems.join("; ")));
            }
            Err(cli_err(msg))
        }
        many => Err(cli_err(format!(
            "`{name}` is a backup policy on {} clouds: choose one with --cloud",
            many.iter().map(|p| p.cloud.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn client_for(cli: &Cli, cloud: &str) -> CliResult<Client> {
    let timeout = load_settings(cli)?.refresh.timeout.0;
    let cf = CloudsFile::discover(&ProcessEnv)?;
    Ok(Client::with_timeout(cf.resolve(cloud)?, timeout)?)
}

/// Server ids of an application's members (for `attached = true`).
async fn members(c: &Client, p: &BackupPolicy) -> CliResult<BTreeMap<String, BTreeSet<String>>> {
    let mut m = BTreeMap::new();
    if let (Some(app), true) = (&p.app, p.spec.select.attached) {
        let tag = crate::domain::names::app_tag(&p.id);
        let servers = c.compute().list_servers(&Default::default()).await?;
        m.insert(app.clone(), servers.into_iter().filter(|s| s.has_tag(&tag)).map(|s| s.id).collect());
    }
    Ok(m)
}

pub async fn run(cli: &Cli, a: &BackupArgs) -> CliResult<()> {
    match &a.command {
        BackupCommand::List { policy, chains, output } => list(cli, policy.as_deref(), *chains, *output).await,
        BackupCommand::Run { policy } => run_now(cli, policy, false).await,
        BackupCommand::Prune { policy, dry_run } => {
            if *dry_run {
                prune_dry(cli, policy).await
            } else {
                run_now(cli, policy, true).await
            }
        }
        BackupCommand::Restore { backup, new_volume, volume_type, az, volume, yes, queue } => {
            let target = match (new_volume, volume) {
                (Some(n), None) => Target::NewVolume {
                    name: n.clone(),
                    volume_type: volume_type.clone(),
                    availability_zone: az.clone(),
                },
                (None, Some(v)) => Target::Existing { volume_id: v.clone() },
                _ => return Err(cli_err("say where to restore: --new-volume NAME or --volume VOLUME")),
            };
            restore_cmd(cli, backup, target, *yes, *queue).await
        }
    }
}

async fn list(cli: &Cli, only: Option<&str>, chains: bool, f: Format) -> CliResult<()> {
    let (all, problems) = all_policies(cli)?;
    for p in &problems {
        say(format!("warning: {p}"));
    }
    let policies: Vec<BackupPolicy> = all.into_iter().filter(|p| only.is_none_or(|n| p.name == n)).collect();
    if policies.is_empty() {
        return Err(cli_err(match only {
            Some(n) => format!("no backup policy `{n}`"),
            None => "no backup policies: add [backup] to an application's policy, or a file to the backups/ folder of the policies directory".into(),
        }));
    }
    let now = chrono::Utc::now();
    let clouds: BTreeSet<String> = policies.iter().map(|p| p.cloud.clone()).collect();
    let mut t = Table::new(&[
        "Cloud",
        "Policy",
        "Volume",
        "Name",
        "Last backup",
        "Age",
        "Size",
        "Kind",
        "Result",
        "Next run",
        "Chains",
        "RPO",
    ]);
    let mut tree = String::new();
    for cloud in clouds {
        let c = client_for(cli, &cloud)?;
        let mine: Vec<BackupPolicy> = policies.iter().filter(|p| p.cloud == cloud).cloned().collect();
        let mut m = BTreeMap::new();
        for p in &mine {
            m.extend(members(&c, p).await?);
        }
        let data = backup_run::read(&c).await.map_err(cli_err)?;
        let since: BTreeMap<String, chrono::DateTime<chrono::Utc>> = mine.iter().map(|p| (p.id.clone(), now)).collect();
        for pp in backup_run::plan_all(&mine, &data, &m, &since, now, None) {
            for v in &pp.plan.volumes {
                let name = data.volumes.iter().find(|x| x.id == v.volume_id).map(|x| x.label().to_string());
                let (id, age, size, kind, result) = match &v.last {
                    Some(l) => (
                        l.id.clone(),
                        crate::domain::time::human_age((now - l.at).num_seconds()),
                        format!("{} GB", l.size_gb),
                        if l.incremental { "incremental" } else { "full" }.to_string(),
                        l.status.clone(),
                    ),
                    None => ("none".into(), String::new(), String::new(), String::new(), String::new()),
                };
                t.push(vec![
                    cloud.clone(),
                    pp.policy.name.clone(),
                    v.volume_id.clone(),
                    name.unwrap_or_default(),
                    id,
                    age,
                    size,
                    kind,
                    result,
                    v.next.map(|n| n.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default(),
                    v.chains.to_string(),
                    if v.rpo_breached { "BREACHED".into() } else { "ok".into() },
                ]);
                if chains {
                    tree.push_str(&chain_tree(&data, &v.volume_id, now));
                }
            }
        }
    }
    if chains {
        emit(&tree)?;
    } else {
        t.print(f)?;
    }
    Ok(())
}

/// A volume's backups as chains: each full, its incrementals below it.
pub fn chain_tree(data: &CloudBackups, volume_id: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    use crate::domain::names::CHAIN;
    let mut out = String::new();
    let name = data.volumes.iter().find(|v| v.id == volume_id).map(|v| v.label().to_string()).unwrap_or_default();
    out.push_str(&format!("{volume_id} {name}\n"));
    let mut backups: Vec<&crate::domain::Backup> = data.backups.iter().filter(|b| b.volume_id == volume_id).collect();
    crate::domain::sort::sort_by_key(&mut backups, |b| b.data_timestamp.or(b.created_at));
    let line = |b: &crate::domain::Backup| {
        let at = b.data_timestamp.or(b.created_at).unwrap_or(now);
        format!(
            "{}  {:<11} {:>4} GB  {:>4} old  {}",
            b.id,
            if b.is_incremental { "incremental" } else { "full" },
            b.size_gb,
            crate::domain::time::human_age((now - at).num_seconds()),
            b.status
        )
    };
    let fulls: Vec<&&crate::domain::Backup> = backups.iter().filter(|b| !b.is_incremental).collect();
    for f in &fulls {
        out.push_str(&format!("  {}\n", line(f)));
        let kids: Vec<&&crate::domain::Backup> =
            backups.iter().filter(|b| b.is_incremental && b.metadata.get(CHAIN) == Some(&f.id)).collect();
        for (i, k) in kids.iter().enumerate() {
            let branch = if i + 1 == kids.len() { "└─" } else { "├─" };
            out.push_str(&format!("    {branch} {}\n", line(k)));
        }
    }
    let known: BTreeSet<&str> = fulls.iter().map(|f| f.id.as_str()).collect();
    for b in backups
        .iter()
        .filter(|b| b.is_incremental && !b.metadata.get(CHAIN).is_some_and(|c| known.contains(c.as_str())))
    {
        out.push_str(&format!("  ? {} (chain unknown)\n", line(b)));
    }
    out
}

/// `run` (backups now, then retention) or `prune` (retention only), pass after
/// pass until nothing is left to do; prints each step and the API requests made.
async fn run_now(cli: &Cli, name: &str, prune_only: bool) -> CliResult<()> {
    if cli.read_only {
        return Err(cli_err("read-only: nothing is backed up or deleted"));
    }
    let p = find(cli, name)?;
    let c = client_for(cli, &p.cloud)?;
    let store = open_store()?;
    let actor = crate::domain::event::operator_actor();
    let slot = chrono::Utc::now();
    let limit = p.spec.create_timeout.0;
    let started = std::time::Instant::now();
    let (r, requests) = crate::cloud::session::counting(async {
        let m = members(&c, &p).await?;
        let mut idle = 0;
        loop {
            let now = chrono::Utc::now();
            let data = backup_run::read(&c).await.map_err(cli_err)?;
            let since = BTreeMap::from([(p.id.clone(), slot)]);
            let run = (!prune_only).then_some((p.id.as_str(), slot));
            let mut planned = backup_run::plan_all(std::slice::from_ref(&p), &data, &m, &since, now, run);
            if prune_only {
                for pp in planned.iter_mut() {
                    pp.plan.steps.retain(|s| matches!(s, BackupStep::Delete { .. }));
                }
            }
            let Some(pp) = planned.first() else { return Ok::<_, eyre::Report>(()) };
            if (prune_only && pp.plan.steps.is_empty() && pp.plan.deleting == 0) || pp.plan.settled() {
                for pr in &pp.plan.problems {
                    say(format!("{}: {}", pr.kind, pr.message));
                }
                return Ok(());
            }
            let outcomes = backup_run::carry_out(&c, &store, &actor, &planned, now).await;
            for o in &outcomes {
                match &o.result {
                    Ok(id) if id.is_empty() => emit(&format!("{}\n", o.step.describe()))?,
                    Ok(id) => emit(&format!("{} → {id}\n", o.step.describe()))?,
                    Err(e) => say(format!("failed: {}: {e}", o.step.describe())),
                }
            }
            // Only volumes that cannot be backed up now are left (in error, busy).
            idle = if outcomes.is_empty() && pp.plan.in_flight == 0 && pp.plan.deleting == 0 { idle + 1 } else { 0 };
            if idle >= 5 {
                return Err(cli_err(format!(
                    "{} volume(s) could not be backed up: {}",
                    pp.plan.run_left,
                    pp.plan.problems.iter().map(|p| p.message.clone()).collect::<Vec<_>>().join("; ")
                )));
            }
            if started.elapsed() > limit {
                return Err(cli_err(format!("not done after {}s (create_timeout)", limit.as_secs())));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    })
    .await;
    r?;
    say(format!("done in {:.1}s, {requests} API requests", started.elapsed().as_secs_f64()));
    Ok(())
}

async fn prune_dry(cli: &Cli, name: &str) -> CliResult<()> {
    let p = find(cli, name)?;
    let c = client_for(cli, &p.cloud)?;
    let m = members(&c, &p).await?;
    let data = backup_run::read(&c).await.map_err(cli_err)?;
    let now = chrono::Utc::now();
    let since = BTreeMap::from([(p.id.clone(), now)]);
    let planned = backup_run::plan_all(std::slice::from_ref(&p), &data, &m, &since, now, None);
    let mut out = String::new();
    for pp in &planned {
        let r = &pp.plan.retention;
        out.push_str(&format!(
            "retention of {} on {}: {} to delete\n",
            pp.policy.name,
            pp.policy.cloud,
            r.delete.len()
        ));
        for d in &r.delete {
            out.push_str(&format!("  delete {} (volume {}): {}\n", d.id, d.volume_id, d.why));
        }
        for (vol, why) in &r.held {
            out.push_str(&format!("  volume {vol} left alone: {why}\n"));
        }
        out.push_str(&format!("  {} kept:\n", r.kept.len()));
        for (id, why) in &r.kept {
            out.push_str(&format!("    {id}: {}\n", why.join("; ")));
        }
    }
    emit(&out)?;
    Ok(())
}

async fn restore_cmd(cli: &Cli, backup: &str, target: Target, yes: bool, queue: bool) -> CliResult<()> {
    use std::io::IsTerminal;
    if cli.read_only {
        return Err(cli_err("read-only: nothing is restored"));
    }
    let c = super::client(cli)?;
    let store = open_store()?;
    let actor = crate::domain::event::operator_actor();
    let now = chrono::Utc::now();
    let mut job = restore::plan_job(&c, backup, target, &actor, 6 * 3600, now).await.map_err(cli_err)?;
    let mut plan = format!("restore backup {} on {}:\n", job.backup_id, job.cloud);
    for (i, s) in job.steps.iter().enumerate() {
        plan.push_str(&format!("  {}. {}\n", i + 1, s.kind.describe()));
    }
    emit(&plan)?;
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(cli_err("confirm with --yes (no terminal to ask on)"));
        }
        say("carry this out? [y/N]");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Err(cli_err("not confirmed: nothing was done"));
        }
    }
    let runner = format!("cli:{}", std::process::id());
    if !queue {
        // Claimed from the first write: the engine does not start it meanwhile.
        job.runner = Some(runner.clone());
    }
    restore::save(&store, &job, now)?;
    if queue {
        emit(&format!("queued as {}: the engine acting on {} carries it out\n", job.op, job.cloud))?;
        return Ok(());
    }
    let mut shown = vec![StepState::Pending; job.steps.len()];
    loop {
        let now = chrono::Utc::now();
        restore::advance(&c, &store, &mut job, &runner, now).await?;
        for (i, s) in job.steps.iter().enumerate() {
            if shown.get(i) != Some(&s.state) {
                let state = match s.state {
                    StepState::Pending => "waiting",
                    StepState::Sent => "sent",
                    StepState::Done => "done",
                    StepState::Failed => "FAILED",
                };
                emit(&format!("  {}. {} … {state}\n", i + 1, s.kind.describe()))?;
                if let Some(x) = shown.get_mut(i) {
                    *x = s.state;
                }
            }
        }
        match job.status {
            JobStatus::Done => {
                emit(&format!("restored to volume {}\n", job.volume_id.clone().unwrap_or_default()))?;
                return Ok(());
            }
            JobStatus::Failed => {
                return Err(cli_err(format!("restore failed: {}", job.error.clone().unwrap_or_default())));
            }
            JobStatus::Running => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}
