//! Backup retention on chains (ENGINE-SPEC section 7), a pure function: a
//! chain is a full backup and the incrementals that depend on it. Restore
//! points are kept by `keep_last_chains` and grandfather-father-son (the newest
//! available backup of each of the last N days, ISO weeks and months, in the
//! policy's time zone); a kept restore point keeps its chain up to it (the full
//! and every incremental before it), so a chain is never broken. Only backups
//! the policy made are ever deleted, never the last available full of a
//! volume, and never while a backup of the volume is still being made. What is
//! deleted goes newest first within its chain (Cinder refuses to delete a
//! backup that has dependents), each with the reason.

use crate::domain::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

/// One backup as retention reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupRef {
    pub id: String,
    pub volume_id: String,
    pub created_at: Timestamp,
    pub incremental: bool,
    /// `available`, `creating`, `error`, `deleting`, ...
    pub status: String,
    /// The full backup of its chain (`stackpilot:chain`; a full is its own).
    pub chain: Option<String>,
    /// It carries this policy's `stackpilot:policy`.
    pub owned: bool,
}

impl BackupRef {
    fn available(&self) -> bool {
        self.status == "available"
    }
    fn chain_id(&self) -> Option<&str> {
        if self.incremental {
            self.chain.as_deref()
        } else {
            Some(self.chain.as_deref().unwrap_or(&self.id))
        }
    }
}

/// What is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub keep_last_chains: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

/// A backup to delete and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Deletion {
    pub id: String,
    pub volume_id: String,
    pub why: String,
}

/// One pass of retention: deletions in the order they must be carried out,
/// and the volumes left alone this pass (why).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetentionPlan {
    pub delete: Vec<Deletion>,
    pub held: Vec<(String, String)>,
    /// Why each kept backup is kept (id → reasons), for the dry-run.
    pub kept: BTreeMap<String, Vec<String>>,
}

/// The retention pass over every volume's backups.
pub fn plan(backups: &[BackupRef], rules: &Rules, tz: &jiff::tz::TimeZone) -> RetentionPlan {
    let mut out = RetentionPlan::default();
    let mut by_volume: BTreeMap<&str, Vec<&BackupRef>> = BTreeMap::new();
    for b in backups {
        by_volume.entry(b.volume_id.as_str()).or_default().push(b);
    }
    for (vol, list) in by_volume {
        volume(vol, list, rules, tz, &mut out);
    }
    out
}

fn volume(vol: &str, mut list: Vec<&BackupRef>, rules: &Rules, tz: &jiff::tz::TimeZone, out: &mut RetentionPlan) {
    crate::domain::sort::sort_by(&mut list, |a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    // The new backup must be there before anything older goes.
    if list.iter().any(|b| b.status == "creating" || b.status == "backing-up") {
        out.held.push((vol.to_string(), "a backup is still being made: retention waits for it".into()));
        return;
    }
    // Only this policy's backups are counted: another's (an operator's, another
    // tool's) never take the place of one of ours, and are never deleted.
    for b in list.iter().filter(|b| !b.owned) {
        out.kept.entry(b.id.clone()).or_default().push("not made by this policy".into());
    }
    list.retain(|b| b.owned);
    // Chains (full id → members, oldest first); incrementals of an unknown full
    // cannot be judged and are never deleted.
    let fulls: BTreeSet<&str> = list.iter().filter(|b| !b.incremental).map(|b| b.id.as_str()).collect();
    let mut chains: BTreeMap<&str, Vec<&BackupRef>> = BTreeMap::new();
    for b in &list {
        match b.chain_id() {
            Some(c) if fulls.contains(c) => chains.entry(c).or_default().push(b),
            _ => {
                out.kept.entry(b.id.clone()).or_default().push("its chain is unknown (no full of this volume)".into());
            }
        }
    }
    let mut keep: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let chain_of = |id: &str| chains.iter().find(|(_, ms)| ms.iter().any(|b| b.id == id)).map(|(c, ms)| (*c, ms));
    // The newest chains, whole.
    let mut order: Vec<(&str, Timestamp)> =
        chains.iter().map(|(c, ms)| (*c, ms.iter().map(|b| b.created_at).max().unwrap_or_default())).collect();
    crate::domain::sort::sort_by_key(&mut order, |c| std::cmp::Reverse(c.1));
    // A chain whose full failed is no restore point: it takes no place among the newest.
    let usable = |c: &str| list.iter().any(|b| b.id == c && b.available());
    for (c, _) in order.iter().filter(|(c, _)| usable(c)).take(rules.keep_last_chains as usize) {
        if let Some(ms) = chains.get(c) {
            if let Some(last) = ms.last() {
                pin(ms, &last.id, &format!("one of the {} newest chains", rules.keep_last_chains), &mut keep);
            }
        }
    }
    // Grandfather-father-son over available restore points.
    let points: Vec<&&BackupRef> =
        list.iter().filter(|b| b.available() && b.chain_id().is_some_and(|c| fulls.contains(c))).collect();
    let gfs = |n: u32,
               label: &str,
               bucket: &dyn Fn(&jiff::civil::Date) -> String,
               keep: &mut BTreeMap<String, Vec<String>>| {
        let mut seen: Vec<String> = Vec::new();
        for b in points.iter().rev() {
            let Some(day) = crate::domain::cron::local(&b.created_at, tz).map(|d| d.date()) else { continue };
            let key = bucket(&day);
            if seen.contains(&key) {
                continue;
            }
            if seen.len() as u32 >= n {
                break;
            }
            seen.push(key.clone());
            if let Some((_, ms)) = chain_of(&b.id) {
                pin(ms, &b.id, &format!("{label} {key}"), keep);
            }
        }
    };
    gfs(rules.daily, "daily", &|d| d.to_string(), &mut keep);
    gfs(
        rules.weekly,
        "weekly",
        &|d| {
            let w = d.iso_week_date();
            format!("{}-W{:02}", w.year(), w.week())
        },
        &mut keep,
    );
    gfs(rules.monthly, "monthly", &|d| format!("{}-{:02}", d.year(), d.month()), &mut keep);
    // Never the last available full of the volume.
    let has_full = list.iter().any(|b| !b.incremental && b.available() && keep.contains_key(&b.id));
    if !has_full {
        if let Some(f) = list.iter().rev().find(|b| !b.incremental && b.available()) {
            keep.entry(f.id.clone()).or_default().push("the last available full of the volume".into());
        }
    }
    for (id, why) in &keep {
        out.kept.entry(id.clone()).or_default().extend(why.iter().cloned());
    }
    // What is not kept goes, newest first within each chain; a full only when
    // nothing of its chain stays. Only the policy's own backups.
    for (c, _) in order {
        let Some(ms) = chains.get(c) else { continue };
        for b in ms.iter().rev() {
            if keep.contains_key(&b.id) {
                // Everything before a kept backup is kept (a pinned prefix).
                break;
            }
            if !b.owned {
                out.kept.entry(b.id.clone()).or_default().push("not made by this policy".into());
                break;
            }
            let kind = if b.incremental { "incremental" } else { "full" };
            let why = if b.available() {
                format!(
                    "{kind} outside the {} newest chains and {} daily, {} weekly, {} monthly restore points",
                    rules.keep_last_chains, rules.daily, rules.weekly, rules.monthly
                )
            } else {
                format!("{kind} in state {} and kept by no rule", b.status)
            };
            out.delete.push(Deletion { id: b.id.clone(), volume_id: vol.to_string(), why });
        }
    }
}

/// Keep a chain up to and including `upto` (a restore point needs its full and
/// every incremental before it).
fn pin(chain: &[&BackupRef], upto: &str, why: &str, keep: &mut BTreeMap<String, Vec<String>>) {
    for b in chain {
        keep.entry(b.id.clone()).or_default().push(why.to_string());
        if b.id == upto {
            break;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn day(n: i64) -> Timestamp {
        crate::domain::time::parse_timestamp("2026-01-01T02:00:00Z").unwrap_or_default() + chrono::Duration::days(n)
    }

    /// A year of daily runs, a full every 7 runs, retention after each run:
    /// what a real policy would leave, and how it got there.
    #[test]
    fn a_year_of_daily_runs_keeps_gfs_chains_whole_and_deletes_newest_first() {
        let rules = Rules { keep_last_chains: 2, daily: 7, weekly: 4, monthly: 6 };
        let tz = jiff::tz::TimeZone::UTC;
        let mut have: Vec<BackupRef> = Vec::new();
        let mut chain = String::new();
        let mut deleted_total = 0;
        for d in 0..365 {
            let id = format!("b{d:03}");
            let full = d % 7 == 0;
            if full {
                chain = id.clone();
            }
            have.push(BackupRef {
                id: id.clone(),
                volume_id: "v".into(),
                created_at: day(d),
                incremental: !full,
                status: "available".into(),
                chain: Some(chain.clone()),
                owned: true,
            });
            let p = plan(&have, &rules, &tz);
            // Deletion order: within a chain, newest first.
            let mut seen: BTreeMap<String, String> = BTreeMap::new();
            for x in &p.delete {
                let b = have.iter().find(|b| b.id == x.id).unwrap();
                let c = b.chain.clone().unwrap();
                if let Some(prev) = seen.get(&c) {
                    assert!(prev > &x.id, "{} deleted after {prev} of the same chain", x.id);
                }
                seen.insert(c, x.id.clone());
            }
            deleted_total += p.delete.len();
            have.retain(|b| !p.delete.iter().any(|x| x.id == b.id));
            // Never a broken chain, always a full.
            for b in have.iter().filter(|b| b.incremental) {
                let c = b.chain.clone().unwrap();
                assert!(have.iter().any(|f| f.id == c), "day {d}: {} lost its full {c}", b.id);
                let n = |id: &str| id.trim_start_matches('b').parse::<i64>().unwrap();
                let between = (n(&c)..n(&b.id)).all(|k| have.iter().any(|x| x.id == format!("b{k:03}")));
                assert!(between, "day {d}: a gap in the chain before {}", b.id);
            }
            assert!(have.iter().any(|b| !b.incremental), "day {d}: no full left");
        }
        // Kept: whole chains for the last 4 weeks and the last day of each of
        // the last 6 months (the monthly point pins its chain up to it).
        let fulls: Vec<&str> = have.iter().filter(|b| !b.incremental).map(|b| b.id.as_str()).collect();
        assert!(fulls.len() >= 6 && fulls.len() <= 11, "{fulls:?}");
        let newest = have.iter().map(|b| b.created_at).max().unwrap();
        assert_eq!(newest, day(364));
        assert!(have.len() < 80, "bounded: {} backups kept", have.len());
        assert!(deleted_total > 280, "the rest went: {deleted_total}");
        let p = plan(&have, &rules, &tz);
        assert!(p.delete.is_empty(), "a second pass deletes nothing: {:?}", p.delete);
        assert!(p.kept.values().any(|w| w.iter().any(|r| r.starts_with("monthly"))));
    }

    #[test]
    fn only_own_backups_of_known_chains_go_and_never_while_one_is_being_made() {
        let rules = Rules { keep_last_chains: 1, daily: 0, weekly: 0, monthly: 0 };
        let tz = jiff::tz::TimeZone::UTC;
        let b = |id: &str, d: i64, inc: bool, chain: &str, owned: bool, status: &str| BackupRef {
            id: id.into(),
            volume_id: "v".into(),
            created_at: day(d),
            incremental: inc,
            status: status.into(),
            chain: Some(chain.into()),
            owned,
        };
        let list = vec![
            b("f1", 0, false, "f1", true, "available"),
            b("i1", 1, true, "f1", true, "available"),
            b("x1", 1, false, "x1", false, "available"),
            b("o1", 2, true, "gone", true, "available"),
            b("f2", 3, false, "f2", true, "available"),
        ];
        let p = plan(&list, &rules, &tz);
        let ids: Vec<&str> = p.delete.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, vec!["i1", "f1"], "newest first; not x1 (not ours), not o1 (unknown chain)");
        assert!(p.kept["x1"].iter().any(|w| w.contains("not made by this policy")));
        let mut busy = list.clone();
        busy.push(b("f3", 4, false, "f3", true, "creating"));
        let p = plan(&busy, &rules, &tz);
        assert!(p.delete.is_empty() && p.held.len() == 1, "{p:?}");
        // The only full is never deleted, even when no rule keeps it.
        let none = Rules { keep_last_chains: 0, daily: 0, weekly: 0, monthly: 0 };
        let p = plan(&list[..2], &none, &tz);
        assert_eq!(p.delete.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), vec!["i1"], "{p:?}");
        // Another's newer fulls take no place of ours: our newest chain stays whole.
        let two = Rules { keep_last_chains: 2, daily: 1, weekly: 0, monthly: 0 };
        let mut crowded = vec![
            b("f1", 0, false, "f1", true, "available"),
            b("i1", 1, true, "f1", true, "available"),
            b("f2", 2, false, "f2", true, "available"),
            b("i2", 3, true, "f2", true, "available"),
        ];
        crowded.push(b("m1", 4, false, "m1", false, "available"));
        crowded.push(b("m2", 5, false, "m2", false, "available"));
        let p = plan(&crowded, &two, &tz);
        assert!(p.delete.is_empty(), "two chains of ours are kept: {p:?}");
        // A chain whose full failed is no restore point and keeps nothing.
        let failed = vec![
            b("f1", 0, false, "f1", true, "available"),
            b("i1", 1, true, "f1", true, "available"),
            b("f2", 2, false, "f2", true, "error"),
        ];
        let one = Rules { keep_last_chains: 1, daily: 0, weekly: 0, monthly: 0 };
        let p = plan(&failed, &one, &tz);
        let ids: Vec<&str> = p.delete.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, vec!["f2"], "the failed full goes, the good chain stays: {p:?}");
    }
}
