//! Rollouts (ENGINE-SPEC section 4), the pure state machine: which revision an
//! application should run, whether a rollout is going on, paused, failed or
//! rolling back, and the numbers the planner replaces members by (surge,
//! max-unavailable, batch). The planner then creates and removes members; this
//! module only decides the target and records why.
//!
//! - A member not at the target revision (nor at its launch spec, with
//!   `skip_matching`) starts a rollout from the last stable revision.
//! - Progress is a new member becoming ready; no progress within the deadline,
//!   or `failure_threshold` new members failing readiness in a row, fails the
//!   rollout: it rolls back to the last stable revision (by the same algorithm)
//!   or pauses. The failed revision is not tried again until the policy changes.
//! - Checkpoints pause at a percentage of new ready members, until an operator
//!   resumes or a delay passes.
//! - Operators pause, resume, abort (roll back now) and undo (go to an earlier
//!   revision until the policy changes).
//! - Complete when every wanted member is a ready new one and no old one is
//!   left: the target becomes the stable revision.

use crate::domain::{Severity, Timestamp};
use crate::policy::rollout::{OnFailure, RolloutSpec};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Phase {
    Progressing,
    /// Waiting: why, and until when (`None`: until an operator resumes).
    Paused {
        why: String,
        until: Option<Timestamp>,
    },
}

/// One rollout, persisted with the engine state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub target: u32,
    /// The stable revision it started from (where a failure rolls back to).
    pub from: Option<u32>,
    /// Set when this rollout is a rollback: the revision that failed.
    pub rolling_back_from: Option<u32>,
    pub started: Timestamp,
    /// The last time a new member became ready (or the start).
    pub progress_at: Timestamp,
    pub new_ready: u32,
    /// New members that failed readiness since the last one became ready.
    pub failures: u32,
    /// Members already counted as failed.
    pub counted: BTreeSet<String>,
    pub phase: Phase,
    pub next_checkpoint: usize,
}

/// A revision that failed: it is not rolled out again until the policy changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failed {
    pub revision: u32,
    pub why: String,
}

/// An operator's `undo`: run this revision while the policy stays at `policy_rev`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pin {
    pub revision: u32,
    pub policy_rev: u32,
}

/// Rollout state of every application of a cloud (part of the engine state).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RolloutBook {
    #[serde(default)]
    pub rollouts: BTreeMap<String, Rollout>,
    /// The last revision every member ran, ready.
    #[serde(default)]
    pub stable: BTreeMap<String, u32>,
    #[serde(default)]
    pub failed: BTreeMap<String, Failed>,
    #[serde(default)]
    pub pinned: BTreeMap<String, Pin>,
}

/// An operator's request about a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum Command {
    Pause,
    Resume,
    /// Give up on the rollout: back to the stable revision.
    Abort,
    /// Run this earlier revision (until the policy changes).
    Undo {
        revision: u32,
    },
}

/// The store's control key an operator's rollout command waits under.
pub fn command_key(policy_id: &str) -> String {
    format!("rollout-command:{policy_id}")
}

/// One member as the rollout sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberFact {
    pub server_id: String,
    pub revision: Option<u32>,
    pub spec: Option<String>,
    pub ready: bool,
    pub boot_failed: bool,
}

/// What the state machine reads for one application.
pub struct Facts<'a> {
    pub policy_id: &'a str,
    /// The revision the policy's launch spec resolves to now.
    pub policy_rev: u32,
    pub desired: u32,
    /// Live members (not terminating).
    pub members: &'a [MemberFact],
    pub spec: &'a RolloutSpec,
    /// The short spec hash of a revision, when known.
    pub spec_of: &'a dyn Fn(u32) -> Option<String>,
    pub now: Timestamp,
}

/// What the planner replaces members by.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutPlan {
    pub target: u32,
    pub target_spec: Option<String>,
    pub skip_matching: bool,
    pub surge: u32,
    pub unavailable: u32,
    /// At most this many creates per step (0: no cap but the surge).
    pub batch: u32,
    /// Paused (checkpoint, failure, operator): capacity is kept, nothing is replaced.
    pub paused: bool,
}

/// What the console shows of a rollout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RolloutView {
    pub target: u32,
    pub from: Option<u32>,
    pub rolling_back: bool,
    pub new_ready: u32,
    pub old: u32,
    pub desired: u32,
    /// `progressing`, `paused: why`.
    pub phase: String,
    /// When it fails if no new member becomes ready.
    pub deadline: Option<Timestamp>,
}

/// The decision for one application.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The revision new members get (the stable one while a rollout is paused).
    pub create_rev: u32,
    /// `None`: no rollout going on.
    pub plan: Option<RolloutPlan>,
    /// (action, reason, severity) for the audit log.
    pub events: Vec<(String, String, Severity)>,
    /// A failure an operator must see (alert), while it stands.
    pub alert: Option<String>,
    pub view: Option<RolloutView>,
}

fn is_at(m: &MemberFact, rev: u32, spec: Option<&str>, skip_matching: bool) -> bool {
    m.revision == Some(rev) || (skip_matching && spec.is_some() && m.spec.as_deref() == spec)
}

fn start(target: u32, from: Option<u32>, back_from: Option<u32>, now: Timestamp) -> Rollout {
    Rollout {
        target,
        from,
        rolling_back_from: back_from,
        started: now,
        progress_at: now,
        new_ready: 0,
        failures: 0,
        counted: BTreeSet::new(),
        phase: Phase::Progressing,
        next_checkpoint: 0,
    }
}

/// The most common revision among members not at `target`.
fn most_common_other(members: &[MemberFact], target: u32) -> Option<u32> {
    let mut n: BTreeMap<u32, usize> = BTreeMap::new();
    for r in members.iter().filter_map(|m| m.revision).filter(|r| *r != target) {
        *n.entry(r).or_default() += 1;
    }
    n.into_iter().max_by_key(|(r, c)| (*c, *r)).map(|(r, _)| r)
}

/// Apply an operator's command.
fn command(book: &mut RolloutBook, f: &Facts<'_>, c: &Command, ev: &mut Vec<(String, String, Severity)>) {
    let pid = f.policy_id.to_string();
    let say = |ev: &mut Vec<_>, what: String| ev.push(("rollout".to_string(), what, Severity::Info));
    match c {
        Command::Pause => {
            if let Some(r) = book.rollouts.get_mut(&pid) {
                r.phase = Phase::Paused { why: "paused by an operator".into(), until: None };
                say(ev, format!("rollout to revision {} paused by an operator", r.target));
            }
        }
        Command::Resume => {
            if let Some(r) = book.rollouts.get_mut(&pid) {
                if matches!(r.phase, Phase::Paused { .. }) {
                    r.phase = Phase::Progressing;
                    r.progress_at = f.now;
                    r.failures = 0;
                    say(ev, format!("rollout to revision {} resumed", r.target));
                }
            }
        }
        Command::Abort => {
            if let Some(r) = book.rollouts.get(&pid).cloned() {
                match (r.rolling_back_from, r.from) {
                    (None, Some(from)) => {
                        let why = "aborted by an operator".to_string();
                        book.failed.insert(pid.clone(), Failed { revision: r.target, why: why.clone() });
                        book.rollouts.insert(pid.clone(), start(from, None, Some(r.target), f.now));
                        ev.push((
                            "rollback".into(),
                            format!("rollout to revision {} {why}: back to revision {from}", r.target),
                            Severity::Warning,
                        ));
                    }
                    _ => say(ev, "nothing to abort: no stable revision to go back to".into()),
                }
            }
        }
        Command::Undo { revision } => {
            book.pinned.insert(pid, Pin { revision: *revision, policy_rev: f.policy_rev });
            ev.push((
                "rollout".into(),
                format!("undo: back to revision {revision} until the policy changes"),
                Severity::Warning,
            ));
        }
    }
}

/// One step of the state machine for one application.
pub fn advance(f: &Facts<'_>, book: &mut RolloutBook, cmd: Option<&Command>) -> Outcome {
    let pid = f.policy_id.to_string();
    let mut ev = Vec::new();
    if let Some(c) = cmd {
        command(book, f, c, &mut ev);
    }
    // The policy moved on: a failure or an undo of the old one no longer holds.
    if book.failed.get(&pid).is_some_and(|x| x.revision != f.policy_rev) {
        book.failed.remove(&pid);
    }
    if book.pinned.get(&pid).is_some_and(|p| p.policy_rev != f.policy_rev) {
        book.pinned.remove(&pid);
    }
    let stable = book.stable.get(&pid).copied();
    let wanted = match (book.pinned.get(&pid), book.failed.get(&pid), stable) {
        (Some(p), _, _) => p.revision,
        (None, Some(_), Some(s)) => s,
        _ => f.policy_rev,
    };
    // Going back on an operator's undo is a rollback: no checkpoints, a failure pauses.
    let undoing = book.pinned.contains_key(&pid);
    let back_from = |from: Option<u32>| if undoing { from } else { None };
    let skip = f.spec.skip_matching;
    let off = |rev: u32| {
        let spec = (f.spec_of)(rev);
        f.members.iter().any(|m| !is_at(m, rev, spec.as_deref(), skip))
    };
    match book.rollouts.get(&pid) {
        None if !off(wanted) => {
            book.stable.insert(pid.clone(), wanted);
            return Outcome { create_rev: wanted, plan: None, events: ev, alert: failed_alert(book, &pid), view: None };
        }
        None => {
            let from = stable.filter(|s| *s != wanted).or_else(|| most_common_other(f.members, wanted));
            let what = match from {
                Some(fr) => format!("rollout started: revision {fr} → {wanted}"),
                None => format!("rollout started to revision {wanted}"),
            };
            ev.push(("rollout".into(), format!("{what} ({} desired)", f.desired), Severity::Info));
            book.rollouts.insert(pid.clone(), start(wanted, from, back_from(from), f.now));
        }
        Some(r) if r.target != wanted => {
            let from = stable.filter(|s| *s != wanted).or(r.from);
            ev.push((
                "rollout".into(),
                format!("rollout retargeted: revision {} → {wanted} (the policy changed)", r.target),
                Severity::Info,
            ));
            book.rollouts.insert(pid.clone(), start(wanted, from, back_from(from), f.now));
        }
        Some(_) => {}
    }
    let Some(mut r) = book.rollouts.get(&pid).cloned() else {
        return Outcome { create_rev: wanted, plan: None, events: ev, alert: None, view: None };
    };
    let tspec = (f.spec_of)(r.target);
    let new: Vec<&MemberFact> = f.members.iter().filter(|m| is_at(m, r.target, tspec.as_deref(), skip)).collect();
    let old = (f.members.len() - new.len()) as u32;
    let new_ready = new.iter().filter(|m| m.ready).count() as u32;
    if new_ready > r.new_ready {
        r.progress_at = f.now;
        r.failures = 0;
    }
    r.new_ready = new_ready;
    for m in new.iter().filter(|m| m.boot_failed) {
        if r.counted.insert(m.server_id.clone()) {
            r.failures += 1;
        }
    }
    if let Phase::Paused { until: Some(u), .. } = &r.phase {
        if f.now >= *u {
            r.phase = Phase::Progressing;
            r.progress_at = f.now;
            ev.push((
                "rollout".into(),
                format!("rollout to revision {} goes on after its checkpoint", r.target),
                Severity::Info,
            ));
        }
    }
    if new_ready >= f.desired && old == 0 {
        book.rollouts.remove(&pid);
        book.stable.insert(pid.clone(), r.target);
        let what = match r.rolling_back_from {
            Some(_) if undoing => format!("undo complete: revision {} runs until the policy changes", r.target),
            Some(bad) => format!("rollback complete: revision {} is stable again (revision {bad} failed)", r.target),
            None => format!("rollout complete: revision {} is stable ({new_ready} ready)", r.target),
        };
        ev.push(("rollout".into(), what, Severity::Info));
        return Outcome { create_rev: r.target, plan: None, events: ev, alert: failed_alert(book, &pid), view: None };
    }
    fail_if_stuck(f, book, &mut r, &mut ev);
    checkpoint(f, &mut r, &mut ev);
    let paused = matches!(r.phase, Phase::Paused { .. });
    let (surge, unavailable) = f.spec.surge_unavailable(f.desired);
    let deadline = (!paused).then(|| r.progress_at + f.spec.progress_deadline.chrono());
    let view = RolloutView {
        target: r.target,
        from: r.from.or(r.rolling_back_from),
        rolling_back: r.rolling_back_from.is_some(),
        new_ready,
        old,
        desired: f.desired,
        phase: match &r.phase {
            Phase::Progressing => "progressing".into(),
            Phase::Paused { why, until: Some(u) } => format!("paused until {}: {why}", u.format("%H:%M:%S")),
            Phase::Paused { why, until: None } => format!("paused: {why}"),
        },
        deadline,
    };
    let create_rev = if paused { r.from.unwrap_or(r.target) } else { r.target };
    let plan = Some(RolloutPlan {
        target: r.target,
        target_spec: (f.spec_of)(r.target),
        skip_matching: skip,
        surge,
        unavailable,
        batch: f.spec.batch_size,
        paused,
    });
    let alert = failed_alert(book, &pid).or_else(|| match &r.phase {
        Phase::Paused { why, .. } if why.starts_with("failed") => Some(why.clone()),
        _ => None,
    });
    book.rollouts.insert(pid, r);
    Outcome { create_rev, plan, events: ev, alert, view: Some(view) }
}

fn failed_alert(book: &RolloutBook, pid: &str) -> Option<String> {
    book.failed
        .get(pid)
        .map(|x| format!("revision {} failed ({}); the app runs its stable revision", x.revision, x.why))
}

/// No progress within the deadline, or too many failed new members: roll back or pause.
fn fail_if_stuck(f: &Facts<'_>, book: &mut RolloutBook, r: &mut Rollout, ev: &mut Vec<(String, String, Severity)>) {
    if r.phase != Phase::Progressing {
        return;
    }
    let deadline = f.spec.progress_deadline.chrono();
    let why = if r.failures >= f.spec.failure_threshold {
        format!("{} new member(s) failed their readiness checks in a row", r.failures)
    } else if f.now - r.progress_at > deadline {
        format!("no new member became ready within {}", crate::domain::time::human_age(deadline.num_seconds()))
    } else {
        return;
    };
    let pid = f.policy_id.to_string();
    match (f.spec.on_failure, r.rolling_back_from, r.from) {
        (OnFailure::Rollback, None, Some(from)) => {
            book.failed.insert(pid, Failed { revision: r.target, why: why.clone() });
            ev.push((
                "rollback".into(),
                format!("rollout to revision {} failed: {why}; rolling back to revision {from}", r.target),
                Severity::Critical,
            ));
            *r = start(from, None, Some(r.target), f.now);
        }
        _ => {
            ev.push((
                "rollout".into(),
                format!(
                    "rollout to revision {} failed: {why}; paused until an operator resumes or aborts it",
                    r.target
                ),
                Severity::Critical,
            ));
            r.phase = Phase::Paused { why: format!("failed: {why}"), until: None };
        }
    }
}

/// Pause at the next checkpoint once enough new members are ready.
fn checkpoint(f: &Facts<'_>, r: &mut Rollout, ev: &mut Vec<(String, String, Severity)>) {
    if r.phase != Phase::Progressing || r.rolling_back_from.is_some() || f.desired == 0 {
        return;
    }
    let Some(cp) = f.spec.checkpoints.get(r.next_checkpoint).copied() else { return };
    if u64::from(r.new_ready) * 100 < u64::from(cp) * u64::from(f.desired) {
        return;
    }
    r.next_checkpoint += 1;
    let until = f.spec.checkpoint_delay.map(|d| f.now + d.chrono());
    let how = match until {
        Some(u) => format!("until {}", u.format("%H:%M:%S")),
        None => "until an operator resumes it".into(),
    };
    ev.push((
        "rollout".into(),
        format!("rollout to revision {} reached its {cp} % checkpoint: paused {how}", r.target),
        Severity::Info,
    ));
    r.phase = Phase::Paused { why: format!("checkpoint {cp} %"), until };
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> Timestamp {
        chrono::Utc.timestamp_opt(1_800_000_000 + s, 0).single().unwrap()
    }

    fn m(id: &str, rev: u32, ready: bool) -> MemberFact {
        MemberFact {
            server_id: id.into(),
            revision: Some(rev),
            spec: Some(format!("spec{rev}")),
            ready,
            boot_failed: false,
        }
    }

    fn spec_of(r: u32) -> Option<String> {
        Some(format!("spec{r}"))
    }

    fn step(
        book: &mut RolloutBook,
        spec: &RolloutSpec,
        policy_rev: u32,
        members: &[MemberFact],
        now: i64,
        cmd: Option<&Command>,
    ) -> Outcome {
        let f = Facts { policy_id: "p", policy_rev, desired: 4, members, spec, spec_of: &spec_of, now: t(now) };
        advance(&f, book, cmd)
    }

    fn at(rev: u32, n: usize, ready: bool) -> Vec<MemberFact> {
        (0..n).map(|i| m(&format!("{rev}-{i}"), rev, ready)).collect()
    }

    #[test]
    fn a_new_revision_rolls_out_and_becomes_stable() {
        let spec = RolloutSpec::default();
        let mut b = RolloutBook::default();
        let o = step(&mut b, &spec, 1, &at(1, 4, true), 0, None);
        assert_eq!((o.create_rev, o.plan.is_none()), (1, true), "all at 1: stable");
        assert_eq!(b.stable.get("p"), Some(&1));
        let o = step(&mut b, &spec, 2, &at(1, 4, true), 10, None);
        let p = o.plan.unwrap();
        assert_eq!((p.target, p.surge, p.unavailable), (2, 1, 0));
        assert!(o.events[0].1.contains("rollout started: revision 1 → 2"), "{:?}", o.events);
        let mut ms = at(1, 2, true);
        ms.extend(at(2, 2, true));
        let o = step(&mut b, &spec, 2, &ms, 20, None);
        assert_eq!(o.view.unwrap().new_ready, 2);
        let o = step(&mut b, &spec, 2, &at(2, 4, true), 30, None);
        assert!(o.plan.is_none() && o.events[0].1.contains("rollout complete: revision 2"), "{:?}", o.events);
        assert_eq!(b.stable.get("p"), Some(&2));
        assert!(b.rollouts.is_empty());
    }

    #[test]
    fn a_missed_deadline_rolls_back_and_the_failed_revision_is_not_retried() {
        let spec = RolloutSpec { progress_deadline: crate::domain::time::Dur::secs(60), ..Default::default() };
        let mut b = RolloutBook::default();
        step(&mut b, &spec, 1, &at(1, 4, true), 0, None);
        step(&mut b, &spec, 2, &at(1, 4, true), 10, None);
        let mut ms = at(1, 4, true);
        ms.extend(at(2, 1, false));
        let o = step(&mut b, &spec, 2, &ms, 60, None);
        assert!(o.alert.is_none(), "within the deadline");
        let o = step(&mut b, &spec, 2, &ms, 71, None);
        assert_eq!(o.events[0].0, "rollback");
        assert!(o.events[0].1.contains("no new member became ready within 60s"), "{:?}", o.events);
        assert_eq!(o.plan.unwrap().target, 1, "back to the stable revision by the same algorithm");
        assert!(o.alert.unwrap().contains("revision 2 failed"));
        // Rolled back: stable again, and revision 2 is not started again.
        let o = step(&mut b, &spec, 2, &at(1, 4, true), 80, None);
        assert!(o.plan.is_none());
        assert_eq!(o.create_rev, 1);
        assert!(o.alert.is_some(), "the failure stays visible until the policy changes");
        let o = step(&mut b, &spec, 2, &at(1, 4, true), 90, None);
        assert!(o.plan.is_none() && o.events.is_empty());
        // The policy moves on: a new rollout.
        let o = step(&mut b, &spec, 3, &at(1, 4, true), 100, None);
        assert_eq!(o.plan.unwrap().target, 3);
        assert!(o.alert.is_none());
    }

    #[test]
    fn failing_members_fail_the_rollout_and_pause_is_an_alternative() {
        let spec = RolloutSpec { on_failure: OnFailure::Pause, ..Default::default() };
        let mut b = RolloutBook::default();
        step(&mut b, &spec, 1, &at(1, 4, true), 0, None);
        let mut ms = at(1, 4, true);
        let mut bad = at(2, 2, false);
        bad.iter_mut().for_each(|m| m.boot_failed = true);
        ms.extend(bad);
        let o = step(&mut b, &spec, 2, &ms, 10, None);
        assert!(o.plan.unwrap().paused, "paused: no rollout steps");
        assert_eq!(o.create_rev, 1, "recovery uses the stable revision while paused");
        assert!(o.view.unwrap().phase.contains("2 new member(s) failed"));
        assert!(o.alert.is_some());
        // Resumed by an operator: the failures count again from zero.
        let o = step(&mut b, &spec, 2, &ms, 20, Some(&Command::Resume));
        assert!(!o.plan.unwrap().paused);
    }

    #[test]
    fn checkpoints_pause_until_resumed_or_for_their_delay() {
        let spec = RolloutSpec {
            checkpoints: vec![50],
            checkpoint_delay: Some(crate::domain::time::Dur::secs(30)),
            ..Default::default()
        };
        let mut b = RolloutBook::default();
        step(&mut b, &spec, 1, &at(1, 4, true), 0, None);
        step(&mut b, &spec, 2, &at(1, 4, true), 1, None);
        let mut ms = at(1, 2, true);
        ms.extend(at(2, 2, true));
        let paused = |o: &Outcome| o.plan.as_ref().is_some_and(|p| p.paused);
        let o = step(&mut b, &spec, 2, &ms, 10, None);
        assert!(paused(&o) && o.events[0].1.contains("50 % checkpoint"), "{:?}", o.events);
        let o = step(&mut b, &spec, 2, &ms, 30, None);
        assert!(paused(&o), "still within the delay");
        let o = step(&mut b, &spec, 2, &ms, 41, None);
        assert!(!paused(&o), "the delay passed");
        // Operators pause, abort (roll back) and undo.
        let o = step(&mut b, &spec, 2, &ms, 42, Some(&Command::Pause));
        assert!(paused(&o) && o.view.unwrap().phase.contains("paused by an operator"));
        let o = step(&mut b, &spec, 2, &ms, 43, Some(&Command::Abort));
        assert_eq!(o.plan.unwrap().target, 1);
        let o = step(&mut b, &spec, 2, &at(1, 4, true), 44, None);
        assert!(o.plan.is_none());
        let o = step(&mut b, &spec, 3, &at(1, 4, true), 45, None);
        assert_eq!(o.plan.unwrap().target, 3);
        let o = step(&mut b, &spec, 3, &at(1, 4, true), 46, Some(&Command::Undo { revision: 1 }));
        assert!(o.plan.is_none() && o.create_rev == 1, "undo: back to 1 while the policy stays at 3");
    }

    #[test]
    fn members_at_the_new_spec_are_kept_with_skip_matching() {
        let spec = RolloutSpec::default();
        let mut b = RolloutBook::default();
        step(&mut b, &spec, 1, &at(1, 4, true), 0, None);
        // Revision 2 has the spec of revision 1 (a change back and forth).
        let same = |r: u32| Some(if r == 2 { "spec1".to_string() } else { format!("spec{r}") });
        let f = Facts {
            policy_id: "p",
            policy_rev: 2,
            desired: 4,
            members: &at(1, 4, true),
            spec: &spec,
            spec_of: &same,
            now: t(5),
        };
        let o = advance(&f, &mut b, None);
        assert!(o.plan.is_none(), "nothing to replace");
    }
}
