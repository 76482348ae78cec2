//! `[backup]`: scheduled Cinder backups of an application's volumes
//! (ENGINE-SPEC section 7): which volumes, when (cron in a time zone with a
//! start window: a missed window is skipped and alerted, never run late),
//! incremental with a full every N runs or days, how in-use volumes are
//! backed up, concurrency, and retention on chains.
//!
//! The model, its checks and the schedule. A `[backup]` section rides in an
//! application's policy (usually `attached = true`: the volumes of its
//! members); volumes no application owns get a standalone backup policy, a
//! file in the `backups/` folder of the policies directory:
//!
//! ```toml
//! name = "db-volumes"
//! cloud = "prod"
//! [backup]
//! select = { volume_metadata = { "backup" = "daily" } }
//! ```

use super::model::Dur;
use crate::domain::time::DurRange;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Which volumes a policy backs up.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Select {
    /// Volume ids.
    pub volumes: Vec<String>,
    /// Volumes whose metadata has every one of these keys and values.
    pub volume_metadata: BTreeMap<String, String>,
    /// Every volume attached to the members of the policy's application.
    pub attached: bool,
}

/// How a volume in use is backed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InUse {
    /// `force`: a crash-consistent backup of the attached volume.
    #[default]
    Force,
    /// A snapshot, a backup from it, the snapshot deleted (even after a crash).
    SnapshotThenBackup,
}

/// A restore test: the newest backup restored to a scratch volume, which is
/// deleted after; a failure raises an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreTest {
    #[default]
    Off,
    Monthly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub keep_last_chains: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { keep_last_chains: 2, daily: 7, weekly: 4, monthly: 6 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupSpec {
    pub select: Select,
    /// Five-field cron (`0 2 * * *`), in `tz`.
    pub cron: String,
    pub tz: String,
    /// A run may start this long after its slot; later, it is skipped and alerted.
    pub start_window: Dur,
    pub incremental: bool,
    /// A full every this many runs (the first run, or no parent, is a full).
    pub full_every: u32,
    /// And a full when the chain's full is older than this.
    pub full_interval: Option<Dur>,
    pub in_use: InUse,
    /// Backups of this policy at once, and per backup backend.
    pub per_policy: u32,
    pub per_backend: u32,
    pub retention: Retention,
    /// The newest good backup older than this raises an alert.
    pub rpo: Option<Dur>,
    /// A backup, delete or restore that takes longer raises an alert.
    pub create_timeout: Dur,
    pub delete_timeout: Dur,
    pub restore_timeout: Dur,
    pub restore_test: RestoreTest,
}

impl Default for BackupSpec {
    fn default() -> Self {
        let secs = |n| Dur(Duration::from_secs(n));
        BackupSpec {
            select: Select::default(),
            cron: "0 2 * * *".into(),
            tz: "UTC".into(),
            start_window: secs(1800),
            incremental: true,
            full_every: 7,
            full_interval: None,
            in_use: InUse::Force,
            per_policy: 1,
            per_backend: 2,
            retention: Retention::default(),
            rpo: None,
            create_timeout: secs(6 * 3600),
            delete_timeout: secs(3600),
            restore_timeout: secs(6 * 3600),
            restore_test: RestoreTest::Off,
        }
    }
}

impl BackupSpec {
    pub fn durations(&self) -> Vec<(String, Dur, DurRange)> {
        let secs = |n| Dur(Duration::from_secs(n));
        let r = |a, b| DurRange::new(secs(a), secs(b));
        let mut v = vec![
            ("backup.start_window".to_string(), self.start_window, r(60, 86_400)),
            ("backup.create_timeout".into(), self.create_timeout, r(60, 7 * 86_400)),
            ("backup.delete_timeout".into(), self.delete_timeout, r(60, 7 * 86_400)),
            ("backup.restore_timeout".into(), self.restore_timeout, r(60, 7 * 86_400)),
        ];
        if let Some(rpo) = self.rpo {
            v.push(("backup.rpo".into(), rpo, r(60, 366 * 86_400)));
        }
        if let Some(f) = self.full_interval {
            v.push(("backup.full_interval".into(), f, r(3600, 366 * 86_400)));
        }
        v
    }

    /// Problems with their dotted paths.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        if let Err(e) = crate::domain::cron::Cron::parse(&self.cron) {
            v.push(("backup.cron".into(), format!("`{}`: {e}", self.cron)));
        }
        if crate::domain::cron::parse_tz(&self.tz).is_none() {
            v.push(("backup.tz".into(), format!("`{}`: use an IANA name (Europe/Paris), UTC or +02:00", self.tz)));
        }
        let s = &self.select;
        if s.volumes.is_empty() && s.volume_metadata.is_empty() && !s.attached {
            v.push((
                "backup.select".into(),
                "select volumes: volumes = [ids], volume_metadata = { key = \"value\" } or attached = true".into(),
            ));
        }
        if self.full_every == 0 {
            v.push(("backup.full_every".into(), "use 1 or more (1: every run is a full)".into()));
        }
        if self.per_policy == 0 || self.per_backend == 0 {
            v.push(("backup.per_policy".into(), "concurrency is at least 1".into()));
        }
        let r = &self.retention;
        if r.keep_last_chains == 0 && r.daily == 0 && r.weekly == 0 && r.monthly == 0 {
            v.push(("backup.retention".into(), "keeps nothing: set keep_last_chains or daily/weekly/monthly".into()));
        }
        v
    }

    /// Whether a run due at a slot may still start at `now`, and the slot:
    /// `Due(slot)` within the start window, `Missed(slot)` past it (skipped and
    /// alerted, never run late), `None` before the first slot.
    pub fn due(&self, now: &crate::domain::Timestamp) -> Option<Slot> {
        let cron = crate::domain::cron::Cron::parse(&self.cron).ok()?;
        let tz = crate::domain::cron::parse_tz(&self.tz)?;
        let local = crate::domain::cron::local(now, &tz)?;
        let prev = cron.prev(local)?;
        let slot_ts = tz.to_ambiguous_zoned_datetime(prev).compatible().ok()?.timestamp();
        let slot = chrono::DateTime::from_timestamp(slot_ts.as_second(), 0)?;
        let window = chrono::Duration::from_std(self.start_window.0).unwrap_or(chrono::Duration::MAX);
        Some(if *now - slot <= window { Slot::Due(slot) } else { Slot::Missed(slot) })
    }

    /// Whether the run of this ordinal (0 = first) is a full.
    pub fn is_full_run(&self, runs_since_full: Option<u32>) -> bool {
        !self.incremental || runs_since_full.is_none_or(|n| n + 1 >= self.full_every)
    }

    /// The next scheduled slot after `now` (for display).
    pub fn next_slot(&self, now: &crate::domain::Timestamp) -> Option<crate::domain::Timestamp> {
        let cron = crate::domain::cron::Cron::parse(&self.cron).ok()?;
        let tz = crate::domain::cron::parse_tz(&self.tz)?;
        let next = cron.next(crate::domain::cron::local(now, &tz)?)?;
        let ts = tz.to_ambiguous_zoned_datetime(next).compatible().ok()?.timestamp();
        chrono::DateTime::from_timestamp(ts.as_second(), 0)
    }
}

/// A standalone backup policy: volumes no application owns (a file in the
/// `backups/` folder of the policies directory).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackupPolicyFile {
    /// Letters, digits and `-`; with `cloud`, what identifies the policy.
    pub name: String,
    pub cloud: String,
    pub backup: BackupSpec,
}

/// A backup policy as the engine runs it: from an application's `[backup]`
/// section or a standalone file.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupPolicy {
    /// `stackpilot:policy` on the backups it makes.
    pub id: String,
    /// Names its backups (`<name>-<volume8>-<slot>`).
    pub name: String,
    pub cloud: String,
    /// The application whose members' volumes `attached = true` selects.
    pub app: Option<String>,
    pub file: std::path::PathBuf,
    pub spec: BackupSpec,
}

/// The policy id of a standalone backup policy (apart from the apps' ids).
pub fn standalone_id(cloud: &str, name: &str) -> String {
    super::model::policy_id(cloud, &format!("backup/{name}"))
}

/// Parse a standalone backup policy (strict, with file:line:col).
pub fn parse_standalone(text: &str, file: &std::path::Path) -> Result<BackupPolicy, Vec<super::PolicyError>> {
    let f: BackupPolicyFile = toml::from_str(text).map_err(|e| vec![super::model::toml_error(text, file, &e)])?;
    let mut errs = Vec::new();
    let mut problems = f.backup.check();
    if f.backup.select.attached {
        problems
            .push(("backup.select".into(), "attached = true needs an application: put [backup] in its policy".into()));
    }
    if !super::model::valid_name(&f.name) {
        problems.push(("name".into(), format!("`{}` is not a valid name: use 1-40 letters, digits and `-`", f.name)));
    }
    for (path, d, range) in f.backup.durations() {
        if let Err(m) = range.check(d.0) {
            problems.push((path, m.to_string()));
        }
    }
    for (path, msg) in problems {
        errs.push(super::model::field_error(text, file, &path, msg));
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(BackupPolicy {
        id: standalone_id(&f.cloud, &f.name),
        name: f.name,
        cloud: f.cloud,
        app: None,
        file: file.to_path_buf(),
        spec: f.backup,
    })
}

/// The latest scheduled slot and whether it may still run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Due(crate::domain::Timestamp),
    Missed(crate::domain::Timestamp),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> crate::domain::Timestamp {
        crate::domain::time::parse_timestamp(s).unwrap_or_default()
    }

    #[test]
    fn slots_run_within_their_window_and_are_missed_after_it() {
        let s = BackupSpec {
            cron: "0 2 * * *".into(),
            tz: "Europe/Paris".into(),
            select: Select { attached: true, ..Default::default() },
            ..Default::default()
        };
        assert!(s.check().is_empty(), "{:?}", s.check());
        // 02:00 in Paris in winter is 01:00 UTC.
        assert_eq!(s.due(&at("2026-12-02T01:10:00Z")), Some(Slot::Due(at("2026-12-02T01:00:00Z"))));
        assert_eq!(s.due(&at("2026-12-02T01:31:00Z")), Some(Slot::Missed(at("2026-12-02T01:00:00Z"))));
        // In summer (UTC+2), the same slot is 00:00 UTC.
        assert_eq!(s.due(&at("2026-07-02T00:20:00Z")), Some(Slot::Due(at("2026-07-02T00:00:00Z"))));
        // A full on the first run and every 7th.
        assert!(s.is_full_run(None));
        assert!(!s.is_full_run(Some(0)) && !s.is_full_run(Some(5)) && s.is_full_run(Some(6)));
        let bad =
            BackupSpec { cron: "61 * * * *".into(), tz: "Mars/Olympus".into(), full_every: 0, ..Default::default() };
        let paths: Vec<String> = bad.check().into_iter().map(|x| x.0).collect();
        assert_eq!(paths, vec!["backup.cron", "backup.tz", "backup.select", "backup.full_every"]);
    }
}
