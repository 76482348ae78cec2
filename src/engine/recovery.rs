//! Recovery (ENGINE-SPEC section 5), a pure state machine: from what is wrong
//! with each member and what was tried, the next repair. The ladder is climbed
//! one rung at a time — start, soft reboot, hard reboot, rebuild, recreate —
//! and each rung must prove itself (the member healthy again, seen after the
//! repair) within its verify timeout before the next is tried. A member that
//! keeps failing is quarantined: kept for inspection, out of the capacity, and
//! replaced. Too many members failing at once pauses recovery with an alert: a
//! mass failure is the infrastructure's, and replacing everything would make
//! it worse.
//!
//! What it needs between ticks lives in the `RecoveryBook` (persisted with the
//! engine state): a restarted engine resumes the ladder where it was, and never
//! repeats a repair it already sent within its verify window.

use crate::domain::{Severity, Timestamp};
use crate::policy::recovery::{Condition, RecoverySpec, Rung};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One member's recovery history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRecovery {
    pub policy_id: String,
    pub name: String,
    /// What is wrong now (`None`: nothing).
    pub condition: Option<Condition>,
    /// Since when it is wrong.
    pub since: Option<Timestamp>,
    /// The repair being verified: what, when, and until when it may take.
    pub rung: Option<Rung>,
    pub acted_at: Option<Timestamp>,
    pub verify_until: Option<Timestamp>,
    /// Rungs tried in this recovery, mildest first.
    pub tried: Vec<Rung>,
    /// When each recovery began (for `max_attempts` within `attempt_window`).
    pub attempts: Vec<Timestamp>,
    /// No new recovery before this (backoff after a failed one).
    pub not_before: Option<Timestamp>,
    pub backoff_secs: u64,
}

impl MemberRecovery {
    fn new(policy_id: &str, name: &str) -> MemberRecovery {
        MemberRecovery {
            policy_id: policy_id.to_string(),
            name: name.to_string(),
            condition: None,
            since: None,
            rung: None,
            acted_at: None,
            verify_until: None,
            tried: vec![],
            attempts: vec![],
            not_before: None,
            backoff_secs: 0,
        }
    }
}

/// Recovery state of every member and app (server id → history; policy id →
/// when recovery paused).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecoveryBook {
    pub members: BTreeMap<String, MemberRecovery>,
    pub paused: BTreeMap<String, Timestamp>,
}

/// A member as recovery sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberHealth {
    pub server_id: String,
    pub name: String,
    /// What is wrong (`None`: healthy, or not judged).
    pub condition: Option<Condition>,
    /// Rebooting, rebuilding, powering on: a repair is under way.
    pub in_transition: bool,
    /// Why recovery leaves it alone (maintenance, stopped by an operator, still
    /// booting, being removed): never repaired while this is set.
    pub excluded: Option<&'static str>,
    /// When its health check last passed (`None` with `health_checked`: never).
    pub health_ok_at: Option<Timestamp>,
    /// It has an HTTP health check: a repair is proven by a pass after it.
    pub health_checked: bool,
    /// Never deleted, so never recreated nor quarantined.
    pub protected: bool,
    /// Wait this long after the failure was first seen before repairing
    /// (Masakari evacuates an `HA_Enabled` member of a failed host first).
    pub defer: Option<chrono::Duration>,
    /// It has an image to rebuild from (a member booted from a volume has none).
    pub rebuildable: bool,
}

/// A quarantined member, to delete once it was kept long enough.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    pub server_id: String,
    pub name: String,
    /// When it was quarantined; a member without a readable time is never deleted.
    pub at: Option<Timestamp>,
    pub protected: bool,
}

/// What recovery does to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    Rung(Rung),
    /// Mark it quarantined (out of the capacity; a new member takes its slot).
    Quarantine,
    /// Delete a quarantined member kept long enough.
    DeleteQuarantined,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RepairAction {
    pub server_id: String,
    pub name: String,
    pub repair: Repair,
    pub reason: String,
}

/// What one tick of recovery gives for one app.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecoveryOut {
    pub actions: Vec<RepairAction>,
    /// (action, target, reason, severity) for the audit log.
    pub events: Vec<(String, String, String, Severity)>,
    /// (kind, key suffix, severity, message) of alerts in force.
    pub alerts: Vec<(String, String, Severity, String)>,
    /// Members recovery is in charge of: the planner never deletes them for
    /// their state (ERROR), only recovery's recreate or quarantine does.
    pub owned: BTreeSet<String>,
    /// Failing members now.
    pub failing: u32,
    pub paused: bool,
}

fn secs(n: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX))
}

fn dur(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The next rung for `c` after those tried: the first of the policy's steps
/// that mends it, is above every rung tried, and can be used on this member
/// (no recreate of a member that must not be deleted, no rebuild without an
/// image).
fn next_rung(spec: &RecoverySpec, c: Condition, tried: &[Rung], m: &MemberHealth, replaceable: bool) -> Option<Rung> {
    let top = tried.iter().max().copied();
    spec.steps
        .iter()
        .copied()
        .filter(|r| top.is_none_or(|t| *r > t))
        .filter(|r| !(*r == Rung::Recreate && (m.protected || !replaceable)))
        .filter(|r| *r != Rung::Rebuild || m.rebuildable)
        .find(|r| r.mends(c))
}

/// Has the repair under way proven itself?
fn proven(m: &MemberHealth, e: &MemberRecovery) -> bool {
    m.condition.is_none()
        && !m.in_transition
        && (!m.health_checked || matches!((m.health_ok_at, e.acted_at), (Some(ok), Some(at)) if ok >= at))
}

/// One tick of recovery for one app. `replaceable`: a new member can be
/// launched (the launch spec resolves); without it nothing is recreated or
/// quarantined, since nothing could take its place.
#[allow(clippy::too_many_arguments)]
pub fn recover(
    policy_id: &str,
    desired: u32,
    spec: &RecoverySpec,
    members: &[MemberHealth],
    quarantined: &[Quarantined],
    replaceable: bool,
    book: &mut RecoveryBook,
    now: Timestamp,
) -> RecoveryOut {
    let mut out = RecoveryOut::default();
    let event = |out: &mut RecoveryOut, action: &str, target: &str, reason: String, sev: Severity| {
        out.events.push((action.to_string(), target.to_string(), reason, sev));
    };
    // Forget members gone (a recreate, a scale-in, a delete by hand).
    let present: BTreeSet<&str> = members.iter().map(|m| m.server_id.as_str()).collect();
    book.members.retain(|id, e| e.policy_id != policy_id || present.contains(id.as_str()));

    let window = dur(spec.attempt_window.0);
    let mut failing: Vec<&MemberHealth> = Vec::new();
    for m in members {
        let e = book.members.entry(m.server_id.clone()).or_insert_with(|| MemberRecovery::new(policy_id, &m.name));
        e.name = m.name.clone();
        e.attempts.retain(|t| now - *t < window);
        if e.rung.is_some() && proven(m, e) {
            let what = e.rung.map(|r| r.as_str()).unwrap_or_default();
            let was = e.condition.map(|c| c.as_str()).unwrap_or("failing");
            event(&mut out, "recovered", &m.name, format!("{was}, healthy again after {what}"), Severity::Info);
            e.rung = None;
            e.tried.clear();
            e.backoff_secs = 0;
        }
        match (m.condition, m.excluded) {
            (Some(c), None) => {
                if e.condition.is_none() {
                    e.since = Some(now);
                }
                e.condition = Some(c);
                out.owned.insert(m.server_id.clone());
                failing.push(m);
            }
            (Some(c), Some(_)) => {
                // Left alone (a repair under way is no longer waited for), and
                // never deleted for its state either.
                e.condition = Some(c);
                e.rung = None;
                e.tried.clear();
                out.owned.insert(m.server_id.clone());
            }
            (None, Some(_)) => {
                e.rung = None;
                e.condition = None;
                e.since = None;
                e.tried.clear();
            }
            (None, None) if e.rung.is_none() => {
                e.condition = None;
                e.since = None;
                e.tried.clear();
            }
            // A repair still in a transition (rebooting, rebuilding) past its
            // verify timeout is stuck: it failed like one that ended unhealthy.
            (None, None) if m.in_transition && e.verify_until.is_some_and(|u| now >= u) && e.condition.is_some() => {
                out.owned.insert(m.server_id.clone());
                failing.push(m);
            }
            (None, None) => {}
        }
    }
    book.members
        .retain(|_, e| e.policy_id != policy_id || e.condition.is_some() || e.rung.is_some() || !e.attempts.is_empty());
    out.failing = failing.len() as u32;

    // Quarantined members are kept for inspection, then deleted.
    let keep = dur(spec.keep_quarantined.0);
    for q in quarantined {
        out.alerts.push((
            "member-quarantined".into(),
            format!("quarantine:{}", q.server_id),
            Severity::Critical,
            format!(
                "{} quarantined: its recoveries did not hold; kept for inspection{}, a new member took its slot",
                q.name,
                q.at.map(|at| format!(" until {}", (at + keep).format("%Y-%m-%d %H:%M UTC"))).unwrap_or_default()
            ),
        ));
    }
    // Failing, or being repaired (a reboot shows no failure for a while): one
    // alert for the app while it lasts, not one that flaps with each step.
    let troubled: Vec<String> = members
        .iter()
        .filter_map(|m| {
            let e = book.members.get(&m.server_id)?;
            let c = m.condition.or(e.rung.and(e.condition))?;
            let step = e.rung.map(|r| format!(", {} under way", r.as_str())).unwrap_or_default();
            Some(format!("{} ({}{step})", m.name, c.as_str()))
        })
        .collect();
    if !troubled.is_empty() {
        out.alerts.push((
            "unhealthy-members".into(),
            "unhealthy".into(),
            Severity::Warning,
            format!("{} member(s) failing: {}", troubled.len(), troubled.join(", ")),
        ));
    }

    // A mass failure pauses automatic recovery.
    let limit = spec.unhealthy_limit(desired);
    if failing.len() as u32 > limit {
        out.paused = true;
        if !book.paused.contains_key(policy_id) {
            book.paused.insert(policy_id.to_string(), now);
            event(
                &mut out,
                "recovery-paused",
                "",
                format!(
                    "MaxUnhealthyExceeded: {} of {desired} members failing (more than {limit}): an infrastructure problem, nothing is repaired until fewer fail",
                    failing.len()
                ),
                Severity::Critical,
            );
        }
        out.alerts.push((
            "recovery-paused".into(),
            "paused".into(),
            Severity::Critical,
            format!(
                "recovery paused (MaxUnhealthyExceeded): {} of {desired} members failing, more than {limit}; check the cloud (hosts, network, storage) before anything is replaced",
                failing.len()
            ),
        ));
        return out;
    }
    if book.paused.remove(policy_id).is_some() {
        event(
            &mut out,
            "recovery-resumed",
            "",
            format!("{} member(s) failing, at most {limit}: recovery goes on", failing.len()),
            Severity::Info,
        );
    }
    if !spec.enabled {
        return out;
    }
    // Quarantined members kept long enough go (never one whose time cannot be
    // read, never a protected one, never while recovery is paused or off).
    for q in quarantined.iter().filter(|q| !q.protected) {
        if q.at.is_some_and(|at| now - at >= keep) {
            out.actions.push(RepairAction {
                server_id: q.server_id.clone(),
                name: q.name.clone(),
                repair: Repair::DeleteQuarantined,
                reason: format!(
                    "quarantined for {}: kept for inspection long enough",
                    crate::domain::time::human_age(keep.num_seconds())
                ),
            });
        }
    }

    // Repairs under way: sent and still within their verify timeout.
    let busy = |book: &RecoveryBook| {
        book.members
            .values()
            .filter(|e| e.policy_id == policy_id && e.rung.is_some() && e.verify_until.is_some_and(|u| now < u))
            .count() as u32
    };
    let concurrent = spec.concurrent(desired);
    crate::domain::sort::sort_by(&mut failing, |x, y| {
        let since = |m: &MemberHealth| book.members.get(&m.server_id).and_then(|e| e.since);
        since(x).cmp(&since(y)).then(x.name.cmp(&y.name))
    });
    for m in failing {
        let in_flight = busy(book);
        let Some(e) = book.members.get_mut(&m.server_id) else { continue };
        let Some(c) = e.condition else { continue };
        if let (Some(wait), Some(since)) = (m.defer, e.since) {
            if now - since < wait {
                continue;
            }
        }
        if let Some(r) = e.rung {
            // A repair is verified until its timeout, unless what is wrong now is
            // something it cannot mend (a reboot under way when the host dies).
            let waiting = e.verify_until.is_some_and(|u| now < u);
            if waiting && r.mends(c) {
                continue;
            }
            e.tried.push(r);
            e.rung = None;
            event(
                &mut out,
                "recovery-step-failed",
                &m.name,
                format!(
                    "{} did not make it healthy within {} (still {})",
                    r.as_str(),
                    crate::domain::time::human_age(dur(spec.verify_for(r)).num_seconds()),
                    c.as_str()
                ),
                Severity::Warning,
            );
        }
        if e.tried.is_empty() {
            if e.not_before.is_some_and(|t| now < t) {
                continue;
            }
            if e.attempts.len() as u32 >= spec.max_attempts && !m.protected && replaceable {
                out.actions.push(RepairAction {
                    server_id: m.server_id.clone(),
                    name: m.name.clone(),
                    repair: Repair::Quarantine,
                    reason: format!(
                        "{}: {} recoveries within {} did not hold; kept for inspection and replaced",
                        c.as_str(),
                        e.attempts.len(),
                        crate::domain::time::human_age(window.num_seconds())
                    ),
                });
                continue;
            }
        }
        let Some(r) = next_rung(spec, c, &e.tried, m, replaceable) else {
            // The ladder is spent: this recovery failed; the next one waits.
            let b = if e.backoff_secs == 0 { spec.backoff.0.as_secs() } else { e.backoff_secs.saturating_mul(2) };
            e.backoff_secs = b.min(spec.max_backoff.0.as_secs());
            e.not_before = Some(now + secs(e.backoff_secs));
            let tried: Vec<&str> = e.tried.iter().map(|r| r.as_str()).collect();
            e.tried.clear();
            event(
                &mut out,
                "recovery-failed",
                &m.name,
                format!(
                    "{}: {} tried, none held; next recovery in {}",
                    c.as_str(),
                    if tried.is_empty() { "no step of the policy applies".to_string() } else { tried.join(", ") },
                    crate::domain::time::human_age(i64::try_from(e.backoff_secs).unwrap_or(i64::MAX))
                ),
                Severity::Warning,
            );
            continue;
        };
        if in_flight >= concurrent {
            continue;
        }
        if e.tried.is_empty() {
            e.attempts.push(now);
        }
        e.rung = Some(r);
        e.acted_at = Some(now);
        e.verify_until = Some(now + dur(spec.verify_for(r)));
        let step = e.tried.len() + 1;
        let reason = format!(
            "{} (seen {} ago): step {step} ({}), recovery {} of {}",
            c.as_str(),
            crate::domain::time::human_age(e.since.map_or(0, |s| (now - s).num_seconds())),
            r.as_str(),
            e.attempts.len(),
            spec.max_attempts
        );
        out.actions.push(RepairAction {
            server_id: m.server_id.clone(),
            name: m.name.clone(),
            repair: Repair::Rung(r),
            reason,
        });
    }
    out
}

/// A recovery step decided but not sent (not acting, dry-run without approval,
/// refused by the cloud): forgotten, so the next tick decides it again instead
/// of waiting for a repair that never happened.
pub fn not_sent(book: &mut RecoveryBook, server_id: &str, now: Timestamp) {
    if let Some(e) = book.members.get_mut(server_id) {
        if e.acted_at == Some(now) || e.rung.is_some() {
            e.rung = None;
            e.verify_until = None;
            if e.tried.is_empty() && e.attempts.last() == e.acted_at.as_ref() {
                e.attempts.pop();
            }
        }
    }
}

/// A recovery step the cloud refused (a 4xx, a 409 in a task state): it
/// counts as tried, so the next tick climbs to the next rung instead of
/// sending it again.
pub fn refused(book: &mut RecoveryBook, server_id: &str) {
    if let Some(e) = book.members.get_mut(server_id) {
        if let Some(r) = e.rung.take() {
            e.tried.push(r);
            e.verify_until = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::Dur;
    use std::time::Duration;

    fn t0() -> Timestamp {
        chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").unwrap().with_timezone(&chrono::Utc)
    }

    fn at(s: i64) -> Timestamp {
        t0() + chrono::Duration::seconds(s)
    }

    fn m(id: &str, c: Option<Condition>) -> MemberHealth {
        MemberHealth {
            server_id: id.into(),
            name: format!("web-{id}"),
            condition: c,
            in_transition: false,
            excluded: None,
            health_ok_at: None,
            health_checked: true,
            protected: false,
            defer: None,
            rebuildable: true,
        }
    }

    fn spec() -> RecoverySpec {
        RecoverySpec {
            verify_timeout: Dur(Duration::from_secs(60)),
            rebuild_verify_timeout: Dur(Duration::from_secs(120)),
            backoff: Dur(Duration::from_secs(30)),
            max_concurrent: crate::policy::rollout::Amount::Count(2),
            ..Default::default()
        }
    }

    fn rungs(o: &RecoveryOut) -> Vec<(String, Repair)> {
        o.actions.iter().map(|a| (a.server_id.clone(), a.repair)).collect()
    }

    #[test]
    fn an_unhealthy_member_climbs_the_ladder_one_verified_rung_at_a_time() {
        let s = spec();
        let mut b = RecoveryBook::default();
        let others: Vec<MemberHealth> = (1..10).map(|i| m(&format!("ok{i}"), None)).collect();
        let with = |x: MemberHealth| std::iter::once(x).chain(others.iter().cloned()).collect::<Vec<_>>();
        let sick = m("a", Some(Condition::Unhealthy));
        let o = recover("p", 10, &s, &with(sick.clone()), &[], true, &mut b, at(0));
        assert_eq!(rungs(&o), vec![("a".into(), Repair::Rung(Rung::RebootSoft))]);
        assert!(o.owned.contains("a"));
        // Within the verify timeout nothing more is done, in transition or not.
        let rebooting = MemberHealth { in_transition: true, condition: None, ..sick.clone() };
        let o = recover("p", 10, &s, &with(rebooting.clone()), &[], true, &mut b, at(30));
        assert!(o.actions.is_empty(), "{o:?}");
        let o = recover("p", 10, &s, &with(sick.clone()), &[], true, &mut b, at(59));
        assert!(o.actions.is_empty(), "{o:?}");
        let mut seen = vec![];
        for t in [61, 122, 300] {
            let o = recover("p", 10, &s, &with(sick.clone()), &[], true, &mut b, at(t));
            seen.extend(rungs(&o).into_iter().map(|x| x.1));
            assert!(o.events.iter().any(|e| e.0 == "recovery-step-failed"), "{o:?}");
        }
        assert_eq!(
            seen,
            vec![Repair::Rung(Rung::RebootHard), Repair::Rung(Rung::Rebuild), Repair::Rung(Rung::Recreate)],
            "soft → hard → rebuild → recreate, each after the previous one's verify timeout"
        );
        assert_eq!(b.members["a"].attempts.len(), 1, "one recovery, four steps");
    }

    #[test]
    fn a_repair_is_proven_only_by_a_health_check_passed_after_it() {
        let s = spec();
        let mut b = RecoveryBook::default();
        let sick = m("a", Some(Condition::Unhealthy));
        recover("p", 3, &s, &[sick], &[], true, &mut b, at(0));
        // The old pass (before the reboot) proves nothing: the reboot is still verified.
        let stale = MemberHealth { health_ok_at: Some(at(-100)), ..m("a", None) };
        let o = recover("p", 3, &s, &[stale], &[], true, &mut b, at(10));
        assert!(o.events.is_empty() && b.members["a"].rung.is_some(), "{o:?}");
        let fresh = MemberHealth { health_ok_at: Some(at(12)), ..m("a", None) };
        let o = recover("p", 3, &s, std::slice::from_ref(&fresh), &[], true, &mut b, at(15));
        assert_eq!(o.events[0].0, "recovered");
        assert!(b.members["a"].rung.is_none());
        // A stop is proven by the member running again (no health check needed).
        let mut b = RecoveryBook::default();
        let stopped = MemberHealth { health_checked: false, ..m("s", Some(Condition::Shutoff)) };
        let o = recover("p", 3, &s, &[stopped], &[], true, &mut b, at(0));
        assert_eq!(rungs(&o), vec![("s".into(), Repair::Rung(Rung::Start))]);
        let o =
            recover("p", 3, &s, &[MemberHealth { health_checked: false, ..m("s", None) }], &[], true, &mut b, at(6));
        assert_eq!(o.events[0].0, "recovered");
    }

    #[test]
    fn recoveries_that_do_not_hold_end_in_quarantine_with_backoff_between_them() {
        let s = RecoverySpec { steps: vec![Rung::RebootSoft], ..spec() };
        let mut b = RecoveryBook::default();
        let sick = m("a", Some(Condition::Unhealthy));
        let mut log = vec![];
        for t in (0..1200).step_by(5) {
            let o = recover("p", 3, &s, std::slice::from_ref(&sick), &[], true, &mut b, at(t));
            log.extend(o.actions.iter().map(|a| (t, a.repair)));
            if o.actions.iter().any(|a| a.repair == Repair::Quarantine) {
                break;
            }
        }
        let reboots: Vec<i64> = log.iter().filter(|x| x.1 == Repair::Rung(Rung::RebootSoft)).map(|x| x.0).collect();
        assert_eq!(reboots.len(), 3, "{log:?}");
        // verify 60 s, then backoff 30 s, then 60 s: the gaps grow.
        assert!(reboots[1] - reboots[0] >= 90 && reboots[2] - reboots[1] >= 120, "{reboots:?}");
        assert_eq!(log.last().map(|x| x.1), Some(Repair::Quarantine));
        // Kept for inspection, then deleted.
        let q = Quarantined { server_id: "a".into(), name: "web-a".into(), at: Some(at(0)), protected: false };
        let o = recover("p", 3, &s, &[], std::slice::from_ref(&q), true, &mut b, at(1800));
        assert!(o.actions.is_empty());
        assert!(o.alerts.iter().any(|a| a.0 == "member-quarantined"), "alerted while it is kept");
        let o = recover("p", 3, &s, &[], &[q], true, &mut b, at(3601));
        assert_eq!(o.actions[0].repair, Repair::DeleteQuarantined);
    }

    #[test]
    fn a_mass_failure_pauses_recovery_with_one_event_and_repairs_nothing() {
        let s = spec();
        let mut b = RecoveryBook::default();
        let mut ms: Vec<MemberHealth> = (0..5).map(|i| m(&format!("e{i}"), Some(Condition::Error))).collect();
        ms.extend((0..5).map(|i| m(&format!("ok{i}"), None)));
        for t in [0, 5, 10] {
            let o = recover("p", 10, &s, &ms, &[], true, &mut b, at(t));
            assert!(o.paused && o.actions.is_empty(), "{o:?}");
            assert_eq!(o.owned.len(), 5, "ERROR members are never deleted while paused");
            assert_eq!(o.events.len(), usize::from(t == 0), "one event when it pauses");
            assert!(o.alerts.iter().any(|a| a.0 == "recovery-paused"));
        }
        // Four failing of ten is within 40 %: recovery resumes, two at a time.
        ms[0].condition = None;
        let o = recover("p", 10, &s, &ms, &[], true, &mut b, at(20));
        assert!(!o.paused);
        assert_eq!(o.events[0].0, "recovery-resumed");
        assert_eq!(o.actions.len(), 2, "max_concurrent = 2: {o:?}");
        assert!(o.actions.iter().all(|a| a.repair == Repair::Rung(Rung::Rebuild)), "ERROR is rebuilt first");
    }

    #[test]
    fn a_repair_that_cannot_mend_what_is_wrong_now_is_not_waited_for() {
        let s = spec();
        let mut b = RecoveryBook::default();
        recover("p", 10, &s, &[m("a", Some(Condition::Unhealthy))], &[], true, &mut b, at(0));
        assert_eq!(b.members["a"].rung, Some(Rung::RebootSoft));
        // The host dies while the reboot is verified: straight to a recreate.
        let o = recover("p", 10, &s, &[m("a", Some(Condition::HostDown))], &[], true, &mut b, at(5));
        assert_eq!(rungs(&o), vec![("a".into(), Repair::Rung(Rung::Recreate))], "{o:?}");
    }

    #[test]
    fn a_repair_stuck_in_its_transition_escalates_and_blocked_rungs_are_skipped() {
        let s = spec();
        let mut b = RecoveryBook::default();
        // No image (booted from a volume): an ERROR member goes to a recreate.
        let vol = MemberHealth { rebuildable: false, ..m("v", Some(Condition::Error)) };
        let o = recover("p", 10, &s, std::slice::from_ref(&vol), &[], true, &mut b, at(0));
        assert_eq!(rungs(&o), vec![("v".into(), Repair::Rung(Rung::Recreate))]);
        // Nothing can take its place (a bad launch spec): no recreate, no quarantine.
        let mut b = RecoveryBook::default();
        let o = recover("p", 10, &s, std::slice::from_ref(&vol), &[], false, &mut b, at(0));
        assert!(o.actions.is_empty() && o.owned.contains("v"), "{o:?}");
        // A reboot that never leaves REBOOT is stuck: after its timeout, the next rung.
        let mut b = RecoveryBook::default();
        recover("p", 10, &s, &[m("a", Some(Condition::Unhealthy))], &[], true, &mut b, at(0));
        let stuck = MemberHealth { in_transition: true, ..m("a", None) };
        assert!(recover("p", 10, &s, std::slice::from_ref(&stuck), &[], true, &mut b, at(30)).actions.is_empty());
        let o = recover("p", 10, &s, std::slice::from_ref(&stuck), &[], true, &mut b, at(61));
        assert_eq!(rungs(&o), vec![("a".into(), Repair::Rung(Rung::RebootHard))], "{o:?}");
        // A quarantined member without a readable time, or protected, is kept.
        let q = |id: &str, at_: Option<Timestamp>, protected| Quarantined {
            server_id: id.into(),
            name: id.into(),
            at: at_,
            protected,
        };
        let o = recover("p", 10, &s, &[], &[q("x", None, false), q("y", Some(at(0)), true)], true, &mut b, at(90_000));
        assert!(o.actions.is_empty(), "{o:?}");
        // A member an operator takes over mid-repair is no longer waited for.
        let mut b = RecoveryBook::default();
        recover("p", 10, &s, &[m("c", Some(Condition::Unhealthy))], &[], true, &mut b, at(0));
        let maint = MemberHealth { excluded: Some("in maintenance"), ..m("c", Some(Condition::Unhealthy)) };
        recover("p", 10, &s, std::slice::from_ref(&maint), &[], true, &mut b, at(5));
        assert!(b.members["c"].rung.is_none());
    }

    #[test]
    fn excluded_and_protected_members_are_left_alone() {
        let s = spec();
        let mut b = RecoveryBook::default();
        let maint = MemberHealth { excluded: Some("maintenance"), ..m("a", Some(Condition::Error)) };
        let o = recover("p", 10, &s, &[maint], &[], true, &mut b, at(0));
        assert!(o.actions.is_empty() && o.owned.contains("a"));
        let prot = MemberHealth { protected: true, ..m("b", Some(Condition::HostDown)) };
        let o = recover("p", 10, &s, &[prot], &[], true, &mut b, at(0));
        assert!(o.actions.is_empty(), "only a recreate mends a dead host, and a protected member is never deleted");
        assert_eq!(o.events[0].0, "recovery-failed");
        // Masakari protects it: its evacuation goes first.
        let ha = MemberHealth { defer: Some(chrono::Duration::seconds(600)), ..m("h", Some(Condition::HostDown)) };
        let o = recover("p", 10, &s, std::slice::from_ref(&ha), &[], true, &mut b, at(0));
        assert!(o.actions.is_empty() && o.owned.contains("h"));
        let o = recover("p", 10, &s, std::slice::from_ref(&ha), &[], true, &mut b, at(601));
        assert_eq!(rungs(&o), vec![("h".into(), Repair::Rung(Rung::Recreate))], "only a recreate mends a dead host");
        let off = RecoverySpec { enabled: false, ..spec() };
        let o = recover("p", 10, &off, &[m("c", Some(Condition::Shutoff))], &[], true, &mut b, at(0));
        assert!(o.actions.is_empty() && o.alerts.iter().any(|a| a.0 == "unhealthy-members"));
    }
}
