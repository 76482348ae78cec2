//! `[placement]`: an application on several clouds or regions. Its members are
//! split over the locations by fixed counts and weights; each location is
//! planned on its own (its own lease, its own members, its own policy id), and
//! with `failover = true` the share of a location that stays unreachable or
//! blocked by capacity for longer than `grace` moves to the healthy ones, and
//! moves back once the location serves its own share again.
//!
//! ```toml
//! [app]
//! name = "web"
//! cloud = "demo"          # the home location: one of the locations below
//!
//! [placement]
//! failover = true
//! grace = "2m"
//! locations = [
//!   { cloud = "demo", weight = 2 },
//!   { cloud = "demo-east", weight = 1 },
//! ]
//! ```

use super::model::Dur;
use crate::domain::time::DurRange;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// A cloud from clouds.yaml (a cloud per region for regions).
    pub cloud: String,
    /// Its part of what is left after the fixed counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// A fixed number of members here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    pub locations: Vec<Location>,
    /// Move the share of a failed location to the healthy ones.
    #[serde(default)]
    pub failover: bool,
    /// How long a location fails before its share moves.
    #[serde(default = "default_grace")]
    pub grace: Dur,
}

fn default_grace() -> Dur {
    Dur(Duration::from_secs(120))
}

impl Placement {
    pub fn durations(&self) -> Vec<(String, Dur, DurRange)> {
        vec![("placement.grace".into(), self.grace, DurRange::new(Dur::secs(1), Dur::secs(86_400)))]
    }

    pub fn clouds(&self) -> Vec<String> {
        self.locations.iter().map(|l| l.cloud.clone()).collect()
    }

    /// What needs no cloud: locations named once, the home among them, a count
    /// or a weight each, counts that fit the capacity.
    pub fn check(&self, home: &str, capacity: &super::model::Capacity, scaled: bool) -> Vec<(String, String)> {
        let mut v = Vec::new();
        let p = "placement.locations";
        if self.locations.is_empty() {
            v.push((p.into(), "name at least one location, e.g. [{ cloud = \"prod\", weight = 1 }]".into()));
        }
        for (i, l) in self.locations.iter().enumerate() {
            if self.locations.iter().take(i).any(|x| x.cloud == l.cloud) {
                v.push((p.into(), format!("`{}` is listed twice", l.cloud)));
            }
            match (l.weight, l.count) {
                (Some(_), Some(_)) => v.push((p.into(), format!("`{}`: give a weight or a count, not both", l.cloud))),
                (None, None) => v.push((p.into(), format!("`{}`: give it a weight or a count", l.cloud))),
                (Some(w), None) if w == 0 || w > 1000 => {
                    v.push((p.into(), format!("`{}`: weight {w} is out of range: expected 1 to 1000", l.cloud)))
                }
                _ => {}
            }
        }
        if !self.locations.is_empty() && !self.locations.iter().any(|l| l.cloud == home) {
            v.push((
                "app.cloud".into(),
                format!("`{home}` is not among the placement's locations: the app's cloud is its home location"),
            ));
        }
        let fixed: u32 = self.locations.iter().filter_map(|l| l.count).sum();
        let weighted = self.locations.iter().any(|l| l.weight.is_some());
        if !weighted && !self.locations.is_empty() && fixed != capacity.desired {
            v.push((
                p.into(),
                format!(
                    "the counts add up to {fixed} but deploy.capacity.desired is {}: make them agree or give a location a weight",
                    capacity.desired
                ),
            ));
        } else if fixed > capacity.max {
            v.push((p.into(), format!("the counts add up to {fixed}, above deploy.capacity.max ({})", capacity.max)));
        }
        if scaled && self.locations.len() > 1 {
            v.push((
                "scaling".into(),
                "autoscaling an app placed on several locations is not supported: give each location its own app"
                    .into(),
            ));
        }
        v
    }

    /// Members per location when every location serves (in `locations` order).
    pub fn nominal(&self, total: u32) -> Vec<u32> {
        split(total, &self.locations)
    }

    /// Members per location when the locations marked `failed` gave their share
    /// away: a failed location keeps its own (it is rebuilt there once it
    /// answers; the engine cannot act on it meanwhile), the others take its share
    /// by weight (equally when none has a weight). Nothing moves when no
    /// location is left to take it.
    pub fn shares(&self, total: u32, failed: &[bool]) -> Vec<u32> {
        let nominal = self.nominal(total);
        let moved: u32 = nominal.iter().zip(failed).filter(|(_, f)| **f).map(|(n, _)| *n).sum();
        let takers: Vec<Location> =
            self.locations.iter().zip(failed).filter(|(_, f)| !**f).map(|(l, _)| l.clone()).collect();
        if moved == 0 || takers.is_empty() {
            return nominal;
        }
        let any_weight = takers.iter().any(|l| l.weight.is_some());
        let as_weights: Vec<Location> = takers
            .iter()
            .map(|l| Location {
                cloud: l.cloud.clone(),
                weight: Some(if any_weight { l.weight.unwrap_or(0) } else { 1 }),
                count: None,
            })
            .collect();
        let extra = split(moved, &as_weights);
        let mut out = nominal;
        let mut k = 0;
        for (i, f) in failed.iter().enumerate() {
            if !*f {
                if let (Some(o), Some(e)) = (out.get_mut(i), extra.get(k)) {
                    *o += e;
                }
                k += 1;
            }
        }
        out
    }
}

/// Fixed counts first (in order, as far as `total` goes), the rest by weight
/// with the largest remainders rounded up (ties to the earlier location).
fn split(total: u32, locations: &[Location]) -> Vec<u32> {
    let mut out = vec![0u32; locations.len()];
    let mut left = total;
    for (o, l) in out.iter_mut().zip(locations) {
        if let Some(c) = l.count {
            *o = c.min(left);
            left -= *o;
        }
    }
    let weights: Vec<u64> = locations.iter().map(|l| u64::from(l.weight.unwrap_or(0))).collect();
    let sum: u64 = weights.iter().sum();
    if sum == 0 || left == 0 {
        return out;
    }
    let mut rems: Vec<(u64, usize)> = Vec::new();
    let mut given = 0u64;
    for (i, w) in weights.iter().enumerate() {
        if *w == 0 {
            continue;
        }
        let exact = u64::from(left) * w;
        let q = exact / sum;
        if let Some(o) = out.get_mut(i) {
            *o += q as u32;
        }
        given += q;
        rems.push((exact % sum, i));
    }
    crate::domain::sort::sort_by(&mut rems, |a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in rems.into_iter().take((u64::from(left) - given) as usize) {
        if let Some(o) = out.get_mut(i) {
            *o += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn w(cloud: &str, weight: u32) -> Location {
        Location { cloud: cloud.into(), weight: Some(weight), count: None }
    }
    fn c(cloud: &str, count: u32) -> Location {
        Location { cloud: cloud.into(), weight: None, count: Some(count) }
    }
    fn p(locations: Vec<Location>) -> Placement {
        Placement { locations, failover: true, grace: default_grace() }
    }

    #[test]
    fn weights_split_with_the_largest_remainders() {
        assert_eq!(p(vec![w("a", 2), w("b", 1)]).nominal(3), [2, 1]);
        assert_eq!(p(vec![w("a", 2), w("b", 1)]).nominal(4), [3, 1]);
        assert_eq!(p(vec![w("a", 1), w("b", 1), w("c", 1)]).nominal(4), [2, 1, 1]);
        assert_eq!(p(vec![c("a", 1), w("b", 1), w("c", 3)]).nominal(5), [1, 1, 3]);
        assert_eq!(p(vec![c("a", 5), w("b", 1)]).nominal(3), [3, 0], "counts first, as far as the total goes");
    }

    #[test]
    fn a_failed_share_moves_to_the_healthy_ones_and_nothing_moves_without_them() {
        let pl = p(vec![w("a", 2), w("b", 1)]);
        assert_eq!(pl.shares(3, &[false, true]), [3, 1], "b keeps its own to come back to; a takes it");
        assert_eq!(pl.shares(3, &[true, false]), [2, 3]);
        assert_eq!(pl.shares(3, &[true, true]), [2, 1], "no taker: nothing moves");
        let fixed = p(vec![c("a", 2), c("b", 2)]);
        assert_eq!(fixed.shares(4, &[false, true]), [4, 2], "fixed counts take equally");
    }

    #[test]
    fn placements_are_checked() {
        let cap = crate::policy::Capacity { min: 1, max: 4, desired: 3 };
        let msgs = |pl: Placement, scaled| pl.check("a", &cap, scaled).into_iter().map(|x| x.1).collect::<Vec<_>>();
        assert!(msgs(p(vec![w("a", 1), w("b", 1)]), false).is_empty());
        assert!(msgs(p(vec![w("b", 1)]), false)[0].contains("home location"));
        assert!(msgs(p(vec![w("a", 1), w("a", 1)]), false)[0].contains("twice"));
        assert!(msgs(p(vec![c("a", 1), c("b", 1)]), false)[0].contains("add up to 2"));
        assert!(msgs(p(vec![w("a", 0)]), false)[0].contains("out of range"));
        assert!(msgs(p(vec![w("a", 1), w("b", 1)]), true)[0].contains("not supported"));
        let both = Location { cloud: "a".into(), weight: Some(1), count: Some(1) };
        assert!(msgs(p(vec![both]), false)[0].contains("not both"));
    }

    proptest! {
        #[test]
        fn shares_never_lose_or_invent_members(
            total in 0u32..200,
            ws in proptest::collection::vec((0u32..2, 1u32..9), 1..5),
            failed in proptest::collection::vec(any::<bool>(), 5),
        ) {
            let locations: Vec<Location> = ws
                .iter()
                .enumerate()
                .map(|(i, (kind, n))| if *kind == 0 { w(&format!("c{i}"), *n) } else { c(&format!("c{i}"), *n) })
                .collect();
            let pl = p(locations);
            let nominal = pl.nominal(total);
            let fixed: u32 = pl.locations.iter().filter_map(|l| l.count).sum();
            let weighted = pl.locations.iter().any(|l| l.weight.is_some());
            let expect = if weighted { total } else { total.min(fixed) };
            prop_assert_eq!(nominal.iter().sum::<u32>(), expect);
            let failed = &failed[..pl.locations.len()];
            let shares = pl.shares(total, failed);
            // Healthy locations hold the whole nominal total (when any is healthy);
            // failed ones keep their own.
            if failed.iter().any(|f| !*f) {
                let healthy: u32 = shares.iter().zip(failed).filter(|(_, f)| !**f).map(|(s, _)| *s).sum();
                prop_assert_eq!(healthy, expect);
            }
            for (i, f) in failed.iter().enumerate() {
                if *f {
                    prop_assert_eq!(shares[i], nominal[i]);
                } else {
                    prop_assert!(shares[i] >= nominal[i]);
                }
            }
        }
    }
}
