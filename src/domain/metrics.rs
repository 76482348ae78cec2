//! Bounded metric series: a ring buffer of (time, value) points that never grows past
//! its capacity and drops points older than its retention window.

use std::collections::VecDeque;

/// One series (e.g. CPU % of one server). Times are unix seconds, kept as
/// seconds from the series' first point (i32), values as f32: eight bytes a
/// point keep ten thousand series of an hour each small.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSeries {
    points: VecDeque<(i32, f32)>,
    /// The time the offsets count from (the first point pushed).
    base: i64,
    capacity: usize,
    retention_secs: i64,
}

impl MetricSeries {
    pub fn new(capacity: usize, retention_secs: i64) -> Self {
        MetricSeries {
            points: VecDeque::with_capacity(capacity.min(64)),
            base: 0,
            capacity: capacity.max(1),
            retention_secs: retention_secs.max(1),
        }
    }

    /// Insert a point. Points arrive mostly in order; a point older than the newest is
    /// placed in order, and a point at an existing time replaces the old value.
    pub fn push(&mut self, at: i64, value: f64) {
        if !value.is_finite() {
            return;
        }
        let v = value as f32;
        if self.points.is_empty() {
            self.base = at;
        }
        // A time 68 years away from the first point is no measure: dropped.
        let Some(at) = at.checked_sub(self.base).and_then(|d| i32::try_from(d).ok()) else { return };
        match self.points.back() {
            Some(&(last, _)) if at > last => self.points.push_back((at, v)),
            None => self.points.push_back((at, v)),
            _ => match self.points.binary_search_by_key(&at, |p| p.0) {
                Ok(i) => {
                    if let Some(p) = self.points.get_mut(i) {
                        p.1 = v;
                    }
                }
                Err(i) => self.points.insert(i, (at, v)),
            },
        }
        while self.points.len() > self.capacity {
            self.points.pop_front();
        }
        if let Some(&(newest, _)) = self.points.back() {
            while let Some(&(t, _)) = self.points.front() {
                if i64::from(newest) - i64::from(t) > self.retention_secs {
                    self.points.pop_front();
                } else {
                    break;
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    pub fn last(&self) -> Option<(i64, f64)> {
        self.points.back().map(|&(t, v)| (self.base + i64::from(t), v as f64))
    }
    pub fn last_time(&self) -> Option<i64> {
        self.points.back().map(|p| self.base + i64::from(p.0))
    }
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (i64, f64)> + '_ {
        self.points.iter().map(|&(t, v)| (self.base + i64::from(t), v as f64))
    }
    /// The last `n` values, oldest first (what a sparkline draws).
    pub fn tail_values(&self, n: usize) -> Vec<f64> {
        let skip = self.points.len().saturating_sub(n);
        self.points.iter().skip(skip).map(|p| p.1 as f64).collect()
    }
    /// Points at or after `since` (unix seconds).
    pub fn since(&self, since: i64) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.iter().filter(move |p| p.0 >= since)
    }
    pub fn max(&self) -> Option<f64> {
        self.points.iter().map(|p| p.1 as f64).fold(None, |m, v| Some(m.map_or(v, |m: f64| m.max(v))))
    }
    /// Mean of the points at or after `since`.
    pub fn mean_since(&self, since: i64) -> Option<f64> {
        let (n, sum) = self.since(since).fold((0usize, 0.0), |(n, s), (_, v)| (n + 1, s + v));
        (n > 0).then(|| sum / n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_order_and_replaces_duplicates() {
        let mut s = MetricSeries::new(10, 3600);
        s.push(100, 1.0);
        s.push(300, 3.0);
        s.push(200, 2.0);
        s.push(300, 4.0);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(100, 1.0), (200, 2.0), (300, 4.0)]);
        assert_eq!(s.tail_values(2), vec![2.0, 4.0]);
        assert_eq!(s.max(), Some(4.0));
        assert_eq!(s.mean_since(200), Some(3.0));
    }

    #[test]
    fn drops_old_points_by_retention() {
        let mut s = MetricSeries::new(100, 60);
        for t in (0..=300).step_by(30) {
            s.push(t, t as f64);
        }
        assert_eq!(s.iter().next().map(|p| p.0), Some(240));
        assert_eq!(s.len(), 3);
        s.push(400, f64::NAN);
        assert_eq!(s.len(), 3, "non-finite values are ignored");
    }

    #[test]
    fn keeps_times_before_and_far_from_the_first_point() {
        let mut s = MetricSeries::new(10, 1_000_000);
        s.push(1_700_000_000, 1.0);
        s.push(1_699_999_940, 0.5);
        s.push(1_700_000_060, 2.0);
        s.push(i64::MAX, 9.0);
        s.push(i64::MIN, 9.0);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![(1_699_999_940, 0.5), (1_700_000_000, 1.0), (1_700_000_060, 2.0)]
        );
        assert_eq!(s.last(), Some((1_700_000_060, 2.0)));
        assert_eq!(s.last_time(), Some(1_700_000_060));
    }

    proptest! {
        #[test]
        fn never_exceeds_capacity(points in proptest::collection::vec((0i64..10_000, -1e6f64..1e6), 0..500), cap in 1usize..50) {
            let mut s = MetricSeries::new(cap, 1_000_000);
            for (t, v) in points { s.push(t, v); }
            prop_assert!(s.len() <= cap);
            let times: Vec<i64> = s.iter().map(|p| p.0).collect();
            prop_assert!(times.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
