//! Apps across clouds: where each location of an app stands, and how many
//! members each location plans for this tick. Pure: the runner gathers the
//! facts (is the cloud answering, is the location blocked by capacity, how many
//! of its members are ready) and persists the state between ticks, so a
//! restart (even a kill -9 in the middle of a failover) plans the same shares
//! and creates nothing twice.
//!
//! A location that fails (unreachable, or blocked by capacity) for longer than
//! `grace` fails over: its share moves to the healthy locations, while it keeps
//! its own share to come back to. It fails back once it answers again and has
//! as many ready members as its own share: only then do the other locations
//! give the extra members up (make before break).

use crate::domain::{Severity, Timestamp};
use crate::policy::placement::Placement;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the engine remembers of an app's locations (store: `placement:<app>`),
/// by cloud name: an edit of the locations keeps what it knew of those that stay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlacementState {
    pub locations: BTreeMap<String, LocationState>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LocationState {
    /// Failing since (unreachable or blocked), while it fails.
    pub failing_since: Option<Timestamp>,
    /// Its share is served by the other locations.
    pub failed_over: bool,
    /// When it was last looked at: a failure seen after a gap longer than the
    /// grace (the engine was stopped) starts its grace again.
    #[serde(default)]
    pub observed_at: Option<Timestamp>,
}

/// What was observed of one location this tick. A location with no facts
/// (not served by this engine) is unknown: what was known of it stays as it
/// was, and nothing moves on its account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocationFacts {
    /// Why it does not answer (`unreachable: ...`, `failing: ...`).
    pub failing: Option<String>,
    /// Why its members cannot be created (`capacity blocked ...`): a failure only
    /// while it has fewer members than its own share (not when it is the extra
    /// members of another location's share that do not fit).
    pub blocked: Option<String>,
    /// Its members, and those ready and healthy, as decided on fresh data (0
    /// until the location has been read since it answered again).
    pub members: u32,
    pub ready: u32,
}

/// A change of where an app's members go, for the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    pub cloud: String,
    pub action: &'static str,
    pub reason: String,
    pub severity: Severity,
}

/// This tick's shares and the new state.
#[derive(Debug, Clone, PartialEq)]
pub struct Shares {
    /// (cloud, members it plans for), in the placement's order.
    pub shares: Vec<(String, u32)>,
    pub state: PlacementState,
    pub moves: Vec<Move>,
    /// (cloud, why): locations failed over now.
    pub failed_over: Vec<(String, String)>,
}

/// One tick of an app placed on several locations.
pub fn step(
    app: &str,
    placement: &Placement,
    total: u32,
    prev: &PlacementState,
    facts: &BTreeMap<String, LocationFacts>,
    now: Timestamp,
) -> Shares {
    let grace = chrono::Duration::from_std(placement.grace.0).unwrap_or(chrono::Duration::MAX);
    let nominal = placement.nominal(total);
    let mut state = PlacementState::default();
    let mut moves = Vec::new();
    let mut failed = Vec::new();
    let mut why_failed = Vec::new();
    for (l, own) in placement.locations.iter().zip(&nominal) {
        let before = prev.locations.get(&l.cloud).cloned().unwrap_or_default();
        let Some(f) = facts.get(&l.cloud) else {
            // Unknown: kept as it was.
            if before.failed_over {
                why_failed.push((l.cloud.clone(), "not served by this engine".to_string()));
            }
            failed.push(before.failed_over);
            state.locations.insert(l.cloud.clone(), before);
            continue;
        };
        let failing = f.failing.clone().or_else(|| f.blocked.clone().filter(|_| f.members < *own));
        let mut st = LocationState { failing_since: None, failed_over: before.failed_over, observed_at: Some(now) };
        let watched = before.observed_at.is_some_and(|t| now - t <= grace);
        match &failing {
            Some(why) => {
                let since = before.failing_since.filter(|_| watched).unwrap_or(now);
                st.failing_since = Some(since);
                if placement.failover && !st.failed_over && now - since >= grace {
                    st.failed_over = true;
                    moves.push(Move {
                        cloud: l.cloud.clone(),
                        action: "failover",
                        reason: format!(
                            "{app}: `{}` has failed for {} ({why}): its share of {own} moves to the other locations",
                            l.cloud,
                            crate::domain::time::human_age((now - since).num_seconds())
                        ),
                        severity: Severity::Warning,
                    });
                }
                if st.failed_over {
                    why_failed.push((l.cloud.clone(), why.clone()));
                }
            }
            None if st.failed_over && (f.ready >= *own || !placement.failover) => {
                st.failed_over = false;
                moves.push(Move {
                    cloud: l.cloud.clone(),
                    action: "failback",
                    reason: format!(
                        "{app}: `{}` serves again ({} of {own} ready): the other locations give its share back",
                        l.cloud, f.ready
                    ),
                    severity: Severity::Info,
                });
            }
            None if st.failed_over => {
                why_failed.push((l.cloud.clone(), format!("answering again, {} of {own} ready", f.ready)));
            }
            None => {}
        }
        failed.push(st.failed_over);
        state.locations.insert(l.cloud.clone(), st);
    }
    let shares = placement.shares(total, &failed);
    Shares {
        shares: placement.locations.iter().map(|l| l.cloud.clone()).zip(shares).collect(),
        state,
        moves,
        failed_over: why_failed,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::policy::placement::Location;
    use chrono::TimeZone;

    fn pl() -> Placement {
        Placement {
            locations: vec![
                Location { cloud: "a".into(), weight: Some(2), count: None },
                Location { cloud: "b".into(), weight: Some(1), count: None },
            ],
            failover: true,
            grace: crate::policy::model::Dur(std::time::Duration::from_secs(60)),
        }
    }
    fn facts(b_failing: bool, b_ready: u32) -> BTreeMap<String, LocationFacts> {
        BTreeMap::from([
            ("a".to_string(), LocationFacts { failing: None, blocked: None, members: 2, ready: 2 }),
            (
                "b".to_string(),
                LocationFacts {
                    failing: b_failing.then(|| "unreachable".to_string()),
                    blocked: None,
                    members: b_ready,
                    ready: b_ready,
                },
            ),
        ])
    }

    #[test]
    fn a_location_fails_over_after_the_grace_and_back_once_its_members_are_ready() {
        let t0 = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let s = step("web", &pl(), 3, &PlacementState::default(), &facts(false, 1), t0);
        assert_eq!(s.shares, [("a".into(), 2), ("b".into(), 1)]);
        // Failing, within the grace: nothing moves.
        let s = step("web", &pl(), 3, &s.state, &facts(true, 0), t0);
        let s = step("web", &pl(), 3, &s.state, &facts(true, 0), t0 + chrono::Duration::seconds(59));
        assert!(s.moves.is_empty());
        assert_eq!(s.shares[0].1, 2);
        // Past the grace: a takes b's share; b keeps its own.
        let s = step("web", &pl(), 3, &s.state, &facts(true, 0), t0 + chrono::Duration::seconds(61));
        assert_eq!(s.shares, [("a".into(), 3), ("b".into(), 1)]);
        assert_eq!(s.moves[0].action, "failover");
        // The same state after a restart plans the same (nothing moves twice).
        let again = step("web", &pl(), 3, &s.state, &facts(true, 0), t0 + chrono::Duration::seconds(90));
        assert_eq!((again.shares.clone(), again.moves.len()), (s.shares.clone(), 0));
        // Answering but not ready yet: the extra stays at a.
        let s = step("web", &pl(), 3, &again.state, &facts(false, 0), t0 + chrono::Duration::seconds(100));
        assert_eq!(s.shares[0].1, 3);
        // Ready again: back.
        let s = step("web", &pl(), 3, &s.state, &facts(false, 1), t0 + chrono::Duration::seconds(110));
        assert_eq!(s.shares, [("a".into(), 2), ("b".into(), 1)]);
        assert_eq!(s.moves[0].action, "failback");
    }

    #[test]
    fn an_unknown_location_keeps_what_was_known_and_moves_nothing() {
        let t0 = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let s = step("web", &pl(), 3, &PlacementState::default(), &facts(false, 1), t0);
        let mut only_a = facts(false, 1);
        only_a.remove("b");
        let later = step("web", &pl(), 3, &s.state, &only_a, t0 + chrono::Duration::hours(1));
        assert_eq!(later.shares, [("a".into(), 2), ("b".into(), 1)]);
        assert!(later.moves.is_empty());
        // Failed over before it became unknown: it stays failed over (no failback on no data).
        let s = step("web", &pl(), 3, &PlacementState::default(), &facts(true, 0), t0);
        let s = step("web", &pl(), 3, &s.state, &facts(true, 0), t0 + chrono::Duration::seconds(50));
        let s = step("web", &pl(), 3, &s.state, &facts(true, 0), t0 + chrono::Duration::seconds(100));
        assert_eq!(s.shares[0].1, 3);
        let later = step("web", &pl(), 3, &s.state, &only_a, t0 + chrono::Duration::seconds(150));
        assert_eq!((later.shares[0].1, later.moves.len()), (3, 0));
    }

    #[test]
    fn capacity_fails_a_location_only_short_of_its_own_share() {
        let t0 = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let blocked = |members: u32| {
            let mut f = facts(false, 1);
            if let Some(a) = f.get_mut("a") {
                a.blocked = Some("capacity blocked (quota)".into());
                a.members = members;
                a.ready = members;
            }
            f
        };
        // `a` holds its own 2 and cannot fit more: not a failure.
        let s = step("web", &pl(), 3, &PlacementState::default(), &blocked(2), t0);
        let s = step("web", &pl(), 3, &s.state, &blocked(2), t0 + chrono::Duration::seconds(50));
        let s = step("web", &pl(), 3, &s.state, &blocked(2), t0 + chrono::Duration::seconds(100));
        assert!(s.moves.is_empty() && s.state.locations["a"].failing_since.is_none());
        // Short of its own share past the grace: it fails over.
        let s = step("web", &pl(), 3, &s.state, &blocked(1), t0 + chrono::Duration::seconds(150));
        let s = step("web", &pl(), 3, &s.state, &blocked(1), t0 + chrono::Duration::seconds(200));
        let s = step("web", &pl(), 3, &s.state, &blocked(1), t0 + chrono::Duration::seconds(215));
        assert_eq!(s.moves.first().map(|m| (m.cloud.as_str(), m.action)), Some(("a", "failover")));
    }

    #[test]
    fn a_failure_seen_after_a_gap_starts_its_grace_again() {
        let t0 = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let s = step("web", &pl(), 3, &PlacementState::default(), &facts(true, 0), t0);
        // The engine was stopped for ten minutes: the grace starts again.
        let s = step("web", &pl(), 3, &s.state, &facts(true, 0), t0 + chrono::Duration::minutes(10));
        assert!(s.moves.is_empty(), "{:?}", s.moves);
        let s = step("web", &pl(), 3, &s.state, &facts(true, 0), t0 + chrono::Duration::seconds(650));
        let s = step("web", &pl(), 3, &s.state, &facts(true, 0), t0 + chrono::Duration::seconds(661));
        assert_eq!(s.moves.first().map(|m| m.action), Some("failover"));
    }

    #[test]
    fn without_failover_nothing_moves() {
        let t0 = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let p = Placement { failover: false, ..pl() };
        let s = step("web", &p, 3, &PlacementState::default(), &facts(true, 0), t0);
        let s = step("web", &p, 3, &s.state, &facts(true, 0), t0 + chrono::Duration::hours(1));
        assert_eq!(s.shares, [("a".into(), 2), ("b".into(), 1)]);
        assert!(s.moves.is_empty());
    }
}
