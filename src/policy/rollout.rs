//! `[rollout]`: how a new revision replaces the members of an application
//! (ENGINE-SPEC section 4): surge and max-unavailable as counts or percentages
//! of desired, a cap on creates per step, a progress deadline, a failure
//! threshold, what a failure does (roll back to the last stable revision, or
//! pause), checkpoints, and whether members already at the new spec are kept.

use super::model::Dur;
use crate::domain::time::DurRange;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A count of members, or a percentage of desired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "AmountText", into = "AmountText")]
pub enum Amount {
    Count(u32),
    Percent(u32),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
enum AmountText {
    Count(u32),
    Text(String),
}

impl TryFrom<AmountText> for Amount {
    type Error = String;
    fn try_from(v: AmountText) -> Result<Amount, String> {
        match v {
            AmountText::Count(n) => Ok(Amount::Count(n)),
            AmountText::Text(s) => {
                let p = s.trim().strip_suffix('%').and_then(|n| n.trim().parse::<u32>().ok());
                match p {
                    Some(p) if p <= 100 => Ok(Amount::Percent(p)),
                    _ => Err(format!("`{s}`: expected a count (2) or a percentage of desired (\"25%\")")),
                }
            }
        }
    }
}

impl From<Amount> for AmountText {
    fn from(a: Amount) -> AmountText {
        match a {
            Amount::Count(n) => AmountText::Count(n),
            Amount::Percent(p) => AmountText::Text(format!("{p}%")),
        }
    }
}

impl Amount {
    /// The count for `desired` members, percentages rounded up or down.
    pub fn of(&self, desired: u32, round_up: bool) -> u32 {
        match *self {
            Amount::Count(n) => n,
            Amount::Percent(p) => {
                let x = u64::from(desired) * u64::from(p);
                let n = if round_up { x.div_ceil(100) } else { x / 100 };
                u32::try_from(n).unwrap_or(u32::MAX)
            }
        }
    }
}

/// What a failed rollout does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Go back to the last stable revision by the same algorithm.
    #[default]
    Rollback,
    /// Stop where it is until an operator resumes or aborts.
    Pause,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutSpec {
    /// Members above desired during the rollout (ceil of a percentage; at least
    /// one when `max_unavailable` is 0).
    pub max_surge: Amount,
    /// Members below desired the rollout may take down (floor of a percentage).
    pub max_unavailable: Amount,
    /// At most this many creates per step (0: no cap but the surge).
    pub batch_size: u32,
    /// No new member ready within this: the rollout failed.
    pub progress_deadline: Dur,
    /// This many new members failing readiness in a row: the rollout failed.
    pub failure_threshold: u32,
    pub on_failure: OnFailure,
    /// Percentages of new ready members at which the rollout pauses.
    pub checkpoints: Vec<u32>,
    /// How long a checkpoint pauses (absent: until an operator resumes).
    pub checkpoint_delay: Option<Dur>,
    /// Members already at the new launch spec are kept.
    pub skip_matching: bool,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        RolloutSpec {
            max_surge: Amount::Percent(25),
            max_unavailable: Amount::Count(0),
            batch_size: 0,
            progress_deadline: Dur(Duration::from_secs(900)),
            failure_threshold: 2,
            on_failure: OnFailure::Rollback,
            checkpoints: vec![],
            checkpoint_delay: None,
            skip_matching: true,
        }
    }
}

impl RolloutSpec {
    /// Surge and unavailable for `desired` members (ENGINE-SPEC 4: if both are 0, surge is 1).
    pub fn surge_unavailable(&self, desired: u32) -> (u32, u32) {
        let s = self.max_surge.of(desired, true);
        let u = self.max_unavailable.of(desired, false).min(desired);
        if s == 0 && u == 0 {
            (1, 0)
        } else {
            (s, u)
        }
    }

    pub fn durations(&self) -> Vec<(String, Dur, DurRange)> {
        let secs = |n| Dur(Duration::from_secs(n));
        let mut v = vec![(
            "rollout.progress_deadline".to_string(),
            self.progress_deadline,
            DurRange::new(secs(10), secs(86_400)),
        )];
        if let Some(d) = self.checkpoint_delay {
            v.push(("rollout.checkpoint_delay".into(), d, DurRange::new(secs(0), secs(7 * 86_400))));
        }
        v
    }

    /// Semantic checks: (dotted field, message).
    pub fn check(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        if self.failure_threshold == 0 {
            v.push(("rollout.failure_threshold".into(), "must be at least 1".into()));
        }
        let mut last = 0;
        for c in &self.checkpoints {
            if *c == 0 || *c >= 100 || *c <= last {
                v.push((
                    "rollout.checkpoints".into(),
                    format!("{c}: checkpoints are increasing percentages between 1 and 99, e.g. [20, 50]"),
                ));
                break;
            }
            last = *c;
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_counts_or_percentages_of_desired() {
        let s: RolloutSpec = toml::from_str("max_surge = 2\nmax_unavailable = \"25%\"").unwrap();
        assert_eq!(s.surge_unavailable(6), (2, 1));
        let d = RolloutSpec::default();
        assert_eq!(d.surge_unavailable(6), (2, 0), "25 % of 6, rounded up");
        assert_eq!(d.surge_unavailable(1), (1, 0));
        let z: RolloutSpec = toml::from_str("max_surge = 0").unwrap();
        assert_eq!(z.surge_unavailable(4), (1, 0), "surge and unavailable both 0: surge 1");
        let e = toml::from_str::<RolloutSpec>("max_surge = \"lots\"").unwrap_err();
        assert!(e.to_string().contains("percentage"), "{e}");
        assert!(toml::from_str::<RolloutSpec>("max_surge = \"101%\"").is_err());
        let c: RolloutSpec = toml::from_str("checkpoints = [50, 20]").unwrap();
        assert!(c.check()[0].1.contains("increasing"));
    }
}
