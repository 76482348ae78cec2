//! `[recovery]`: how the engine keeps the members of an application healthy
//! once they served (ENGINE-SPEC section 5): the continuous health check, the
//! escalation ladder (start, soft reboot, hard reboot, rebuild, recreate), the
//! time each step gets to prove itself, per-member backoff and attempts before
//! quarantine, and the limits that keep a mass failure from becoming a
//! replace storm.

use super::model::Dur;
use super::rollout::Amount;
use crate::domain::time::DurRange;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One rung of the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rung {
    /// Power a stopped member on (only for an unexpected SHUTOFF).
    Start,
    /// A soft reboot (an unhealthy application).
    RebootSoft,
    /// A hard reboot (an unhealthy application, or a stopped one that did not start).
    RebootHard,
    /// Rebuild from the member's image: ports, addresses and volumes are kept.
    Rebuild,
    /// A new member in the same slot, the old one drained and deleted.
    Recreate,
}

impl Rung {
    pub const ALL: [Rung; 5] = [Rung::Start, Rung::RebootSoft, Rung::RebootHard, Rung::Rebuild, Rung::Recreate];
    pub fn as_str(&self) -> &'static str {
        match self {
            Rung::Start => "start",
            Rung::RebootSoft => "reboot-soft",
            Rung::RebootHard => "reboot-hard",
            Rung::Rebuild => "rebuild",
            Rung::Recreate => "recreate",
        }
    }
}

/// What is wrong with a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// SHUTOFF (or suspended, paused, shelved) without the operator's mark.
    Shutoff,
    /// Its health check failed `unhealthy_threshold` times in a row.
    Unhealthy,
    /// Nova says ERROR.
    Error,
    /// The compute service of its host is down or disabled.
    HostDown,
}

impl Condition {
    pub fn as_str(&self) -> &'static str {
        match self {
            Condition::Shutoff => "stopped unexpectedly",
            Condition::Unhealthy => "unhealthy",
            Condition::Error => "in ERROR",
            Condition::HostDown => "on a host that is down",
        }
    }
}

impl Rung {
    /// Whether this rung can mend `c` (ENGINE-SPEC 5's `when`): a stopped member
    /// is started (a hard reboot powers it on too), an application that stopped
    /// answering is rebooted, ERROR is rebuilt, and anything is recreated. A
    /// member on a dead host can only be recreated elsewhere.
    pub fn mends(&self, c: Condition) -> bool {
        use Condition as C;
        match self {
            Rung::Start => c == C::Shutoff,
            Rung::RebootSoft => c == C::Unhealthy,
            Rung::RebootHard => matches!(c, C::Unhealthy | C::Shutoff),
            Rung::Rebuild => matches!(c, C::Unhealthy | C::Error),
            Rung::Recreate => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoverySpec {
    /// Recover members on its own (false: failures are only reported).
    pub enabled: bool,
    /// How often a ready member's health check runs (the readiness HTTP probe,
    /// or the application's health endpoint).
    pub health_interval: Dur,
    /// Failed health checks in a row that make a member unhealthy.
    pub unhealthy_threshold: u32,
    /// The ladder, in order; a rung that cannot mend the condition is skipped.
    pub steps: Vec<Rung>,
    /// How long a start or a reboot gets to make the member healthy again.
    pub verify_timeout: Dur,
    /// How long a rebuild gets.
    pub rebuild_verify_timeout: Dur,
    /// Recoveries of one member within `attempt_window` before it is quarantined.
    pub max_attempts: u32,
    pub attempt_window: Dur,
    /// Wait after a recovery that failed, doubled each time up to `max_backoff`.
    pub backoff: Dur,
    pub max_backoff: Dur,
    /// Members recovered at once (a count, or a percentage of desired; at least one).
    pub max_concurrent: Amount,
    /// More members than this failing at once pauses automatic recovery: a mass
    /// failure is an infrastructure problem, never a replace storm.
    pub max_unhealthy: Amount,
    /// A quarantined member is kept this long for inspection, then deleted.
    pub keep_quarantined: Dur,
    /// A member whose host failed waits this long when Masakari protects it
    /// (`HA_Enabled=True`): Masakari evacuates it first.
    pub masakari_defer: Dur,
}

impl Default for RecoverySpec {
    fn default() -> Self {
        let secs = |n| Dur(Duration::from_secs(n));
        RecoverySpec {
            enabled: true,
            health_interval: secs(30),
            unhealthy_threshold: 3,
            steps: Rung::ALL.to_vec(),
            verify_timeout: secs(300),
            rebuild_verify_timeout: secs(600),
            max_attempts: 3,
            attempt_window: secs(3600),
            backoff: secs(60),
            max_backoff: secs(1800),
            max_concurrent: Amount::Percent(10),
            max_unhealthy: Amount::Percent(40),
            keep_quarantined: secs(3600),
            masakari_defer: secs(600),
        }
    }
}

impl RecoverySpec {
    /// Members recovered at once for `desired` (at least one).
    pub fn concurrent(&self, desired: u32) -> u32 {
        self.max_concurrent.of(desired, true).max(1)
    }

    /// Failing members tolerated before recovery pauses (at least one, so a
    /// single failure of a small app is always recovered).
    pub fn unhealthy_limit(&self, desired: u32) -> u32 {
        self.max_unhealthy.of(desired, false).max(1)
    }

    /// How long `rung` gets to prove itself.
    pub fn verify_for(&self, rung: Rung) -> Duration {
        match rung {
            Rung::Rebuild => self.rebuild_verify_timeout.0,
            _ => self.verify_timeout.0,
        }
    }

    pub fn durations(&self) -> Vec<(String, Dur, DurRange)> {
        let secs = |n| Dur(Duration::from_secs(n));
        let r = |a, b| DurRange::new(secs(a), secs(b));
        vec![
            ("recovery.health_interval".into(), self.health_interval, DurRange::new(Dur::millis(500), secs(3600))),
            ("recovery.verify_timeout".into(), self.verify_timeout, r(1, 86_400)),
            ("recovery.rebuild_verify_timeout".into(), self.rebuild_verify_timeout, r(1, 86_400)),
            ("recovery.attempt_window".into(), self.attempt_window, r(60, 7 * 86_400)),
            ("recovery.backoff".into(), self.backoff, r(0, 86_400)),
            ("recovery.max_backoff".into(), self.max_backoff, r(0, 7 * 86_400)),
            ("recovery.keep_quarantined".into(), self.keep_quarantined, r(0, 30 * 86_400)),
            ("recovery.masakari_defer".into(), self.masakari_defer, r(0, 86_400)),
        ]
    }

    /// Problems with their dotted paths.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        if self.unhealthy_threshold == 0 {
            v.push(("recovery.unhealthy_threshold".into(), "use 1 or more failed checks in a row".into()));
        }
        if self.max_attempts == 0 {
            v.push(("recovery.max_attempts".into(), "use 1 or more (the recoveries before quarantine)".into()));
        }
        let mut seen = Vec::new();
        for s in &self.steps {
            if seen.contains(s) {
                v.push(("recovery.steps".into(), format!("`{}` is listed twice", s.as_str())));
            }
            seen.push(*s);
        }
        let order: Vec<usize> = self.steps.iter().filter_map(|s| Rung::ALL.iter().position(|x| x == s)).collect();
        if order.iter().zip(order.iter().skip(1)).any(|(a, b)| a > b) {
            v.push((
                "recovery.steps".into(),
                "list the steps from the mildest: start, reboot-soft, reboot-hard, rebuild, recreate".into(),
            ));
        }
        if self.backoff.0 > self.max_backoff.0 {
            v.push(("recovery.backoff".into(), "is above max_backoff".into()));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ladder_names_what_each_rung_mends() {
        use Condition as C;
        assert!(Rung::Start.mends(C::Shutoff) && !Rung::Start.mends(C::Unhealthy));
        assert!(Rung::RebootSoft.mends(C::Unhealthy) && !Rung::RebootSoft.mends(C::Error));
        assert!(Rung::Rebuild.mends(C::Error) && !Rung::Rebuild.mends(C::HostDown));
        assert!(Rung::ALL.iter().filter(|r| r.mends(C::HostDown)).eq([Rung::Recreate].iter()));
        let s = RecoverySpec::default();
        assert_eq!((s.concurrent(5), s.concurrent(30)), (1, 3));
        assert_eq!((s.unhealthy_limit(2), s.unhealthy_limit(10)), (1, 4));
        let bad = RecoverySpec { steps: vec![Rung::Rebuild, Rung::Start, Rung::Start], ..s };
        let msgs: Vec<String> = bad.check().into_iter().map(|(_, m)| m).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
    }
}
