//! The autoscaler (ENGINE-SPEC section 3), a pure function: the observed metric
//! values of each member, the persisted history and `now` in; the new desired
//! count with its reason code out.
//!
//! Target tracking follows the Kubernetes HPA: `ceil(ratio x members)` per metric
//! with a tolerance band, members still warming or not ready counted as 0 % on the
//! way up, members without fresh samples as 0 % on the way up and 100 % on the way
//! down (and a scale-down only when enough members have fresh samples), the
//! highest proposal of all metrics, scheduled bounds, stabilization windows over the
//! recommendation history, rate-limit policies over the scale events, then min/max.
//! Unlike HPA, that history is persisted, so a restart does not reset it. Step mode
//! keeps Aodh/AWS semantics: M-of-N breaching datapoints, step adjustments and a
//! cooldown per direction.

use crate::domain::cron::{parse_tz, Cron};
use crate::domain::Timestamp;
use crate::policy::scaling::{
    AdjustmentType, Direction, MetricName, Mode, PolicyType, Scaling, Select, Step as StepSpec,
};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why the autoscaler settled on its desired count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    /// The recommendation is applied as is (including "no change needed").
    DesiredWithinRange,
    /// Held up at the minimum (policy or schedule).
    TooFewReplicas,
    /// Held down at the maximum (policy or schedule).
    TooManyReplicas,
    /// A scale-up rate policy (or the scale-up stabilization window) held it.
    ScaleUpLimit,
    /// A scale-down rate policy held it.
    ScaleDownLimit,
    /// The scale-down stabilization window (or a scale-out in flight) held it up.
    ScaleDownStabilized,
    /// Metrics are missing or stale: no scale-down on partial data.
    MetricsStale,
    /// Quota or no valid host: scale-out held to what the cloud can take.
    CapacityBlocked,
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::DesiredWithinRange => "DesiredWithinRange",
            Reason::TooFewReplicas => "TooFewReplicas",
            Reason::TooManyReplicas => "TooManyReplicas",
            Reason::ScaleUpLimit => "ScaleUpLimit",
            Reason::ScaleDownLimit => "ScaleDownLimit",
            Reason::ScaleDownStabilized => "ScaleDownStabilized",
            Reason::MetricsStale => "MetricsStale",
            Reason::CapacityBlocked => "CapacityBlocked",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member as the autoscaler sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemberSample {
    pub server_id: String,
    /// Passed its readiness checks.
    pub ready: bool,
    /// Ready for less than the warm-up: left out of the averages like an unready one.
    pub warming: bool,
    /// Fresh value per metric of the policy, in the policy's order (None: missing or stale).
    pub values: Vec<Option<f64>>,
}

/// Everything one evaluation reads.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleInput<'a> {
    pub scaling: &'a Scaling,
    /// `deploy.capacity` bounds.
    pub min: u32,
    pub max: u32,
    /// The current desired count (the autoscaler's last decision).
    pub current: u32,
    pub members: Vec<MemberSample>,
    /// Members created but not yet Ready, or creates in flight: no scale-in meanwhile.
    pub scale_out_in_flight: bool,
    /// Scale-out is blocked by capacity: members that exist plus what still fits.
    pub capacity_limit: Option<u32>,
    /// Aggregate values when a metric has no per-member data (Prometheus aggregates),
    /// in the policy's order.
    pub aggregates: Vec<Option<f64>>,
}

/// A scale event (a change of desired), for the rate-limit policies and cooldowns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScaleEvent {
    pub at: Timestamp,
    pub from: u32,
    pub to: u32,
}

/// One evaluation, kept for the console's recommendation history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub at: Timestamp,
    /// What the metrics asked for (before stabilization, limits and bounds).
    pub recommendation: u32,
    pub desired: u32,
    pub reason: Reason,
    /// The first metric's value (average over the members it counted).
    pub value: Option<f64>,
    pub target: Option<f64>,
}

/// What the autoscaler remembers per policy (persisted in the store).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScaleHistory {
    /// The autoscaler-owned desired count.
    pub desired: Option<u32>,
    pub last_eval: Option<Timestamp>,
    /// (time, recommendation before stabilization) for the stabilization windows.
    pub recommendations: Vec<(Timestamp, u32)>,
    pub events: Vec<ScaleEvent>,
    /// Step mode: the last N aggregate values of the first metric.
    pub datapoints: Vec<(Timestamp, f64)>,
    /// The recent decisions, newest last (bounded).
    pub decisions: Vec<DecisionRecord>,
}

/// Decisions kept for the console.
pub const DECISIONS_KEPT: usize = 120;

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub desired: u32,
    pub recommendation: u32,
    pub reason: Reason,
    /// One line: why (not) scaling.
    pub message: String,
    /// Per metric: (name, value, target, proposal).
    pub metrics: Vec<MetricEval>,
    /// Effective bounds after schedules.
    pub min: u32,
    pub max: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricEval {
    pub name: MetricName,
    pub value: Option<f64>,
    pub target: f64,
    /// None when the metric is unavailable.
    pub proposal: Option<u32>,
    pub note: String,
}

/// Bounds in force at `now`: `deploy.capacity` narrowed by every active schedule.
pub fn bounds(s: &Scaling, min: u32, max: u32, now: Timestamp) -> (u32, u32, Vec<String>) {
    let (mut lo, mut hi) = (min, max);
    let mut active = Vec::new();
    for (i, sc) in s.schedules.iter().enumerate() {
        let (Ok(start), Ok(end)) = (Cron::parse(&sc.cron), Cron::parse(&sc.until_cron)) else { continue };
        let Some(tz) = parse_tz(&sc.tz) else { continue };
        if crate::domain::cron::window_open(&start, &end, &now, &tz) {
            if let Some(m) = sc.min {
                lo = lo.max(m);
            }
            if let Some(m) = sc.max {
                hi = hi.min(m);
            }
            active.push(format!("schedule {}", i + 1));
        }
    }
    // A schedule's floor wins over another's ceiling.
    (lo, hi.max(lo), active)
}

fn ceil_u32(x: f64) -> u32 {
    if x.is_finite() && x > 0.0 {
        x.ceil().min(u32::MAX as f64) as u32
    } else {
        0
    }
}

/// HPA's replica calculation for one metric with per-member values.
fn track_metric(input: &ScaleInput<'_>, idx: usize, name: MetricName, target: f64) -> MetricEval {
    let s = input.scaling;
    let current = input.current;
    let counted: Vec<&MemberSample> = input.members.iter().filter(|m| m.ready && !m.warming).collect();
    let with: Vec<f64> = counted.iter().filter_map(|m| m.values.get(idx).copied().flatten()).collect();
    let missing = counted.len() - with.len();
    let unready = input.members.len() - counted.len();
    let unavailable = |note: String| MetricEval { name, value: None, target, proposal: None, note };
    if with.is_empty() {
        // Aggregate sources (one value for the app) stand in for per-member data.
        if let Some(v) = input.aggregates.get(idx).copied().flatten() {
            let n = counted.len().max(1) as f64;
            let ratio = v / target;
            let tol = if ratio > 1.0 { s.tolerance.up } else { s.tolerance.down };
            let proposal = if (1.0 - ratio).abs() <= tol { current } else { ceil_u32(ratio * n) };
            return MetricEval { name, value: Some(v), target, proposal: Some(proposal), note: "aggregate".into() };
        }
        return unavailable(if counted.is_empty() {
            "no ready member past its warm-up".into()
        } else {
            format!("no fresh samples from {} ready members", counted.len())
        });
    }
    let avg = with.iter().sum::<f64>() / with.len() as f64;
    let ratio = avg / target;
    let tol = |r: f64| if r > 1.0 { s.tolerance.up } else { s.tolerance.down };
    let eval =
        |proposal: u32, note: String| MetricEval { name, value: Some(avg), target, proposal: Some(proposal), note };
    if missing == 0 && (unready == 0 || ratio <= 1.0) {
        if (1.0 - ratio).abs() <= tol(ratio) {
            return eval(current, format!("within the {:.0} % tolerance", tol(ratio) * 100.0));
        }
        return eval(ceil_u32(ratio * with.len() as f64), format!("{:.2}x the target", ratio));
    }
    // Fill in the members without data the conservative way (HPA).
    let mut sum: f64 = with.iter().sum();
    let mut n = with.len();
    if ratio < 1.0 {
        // Scaling down: missing members are taken to be at the target.
        sum += target * missing as f64;
        n += missing;
    } else {
        // Scaling up: missing and unready members are taken to be idle.
        n += missing + unready;
    }
    let new_ratio = sum / n as f64 / target;
    let reversed = (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0);
    if (1.0 - new_ratio).abs() <= tol(new_ratio) || reversed {
        return eval(current, format!("{:.2}x with missing or warming members counted conservatively", new_ratio));
    }
    let proposal = ceil_u32(new_ratio * n as f64);
    if (new_ratio < 1.0 && proposal > current) || (new_ratio > 1.0 && proposal < current) {
        return eval(current, "held: the conservative estimate points the other way".into());
    }
    eval(proposal, format!("{:.2}x the target ({missing} without samples, {unready} warming)", new_ratio))
}

/// Members changed in one direction within `period` before `now`.
fn changed_within(events: &[ScaleEvent], now: Timestamp, period: chrono::Duration, up: bool) -> u32 {
    events
        .iter()
        .filter(|e| e.at > now - period)
        .map(|e| if up { e.to.saturating_sub(e.from) } else { e.from.saturating_sub(e.to) })
        .sum()
}

fn dur(d: &crate::policy::model::Dur) -> chrono::Duration {
    chrono::Duration::from_std(d.0).unwrap_or_default()
}

/// The count at the start of a policy's period: the current one with the period's
/// scale-ups taken back and its scale-downs put back (HPA).
fn period_start(current: u32, events: &[ScaleEvent], now: Timestamp, period: chrono::Duration) -> u32 {
    (current + changed_within(events, now, period, false)).saturating_sub(changed_within(events, now, period, true))
}

/// The highest count the scale-up policies allow now.
fn scale_up_limit(current: u32, events: &[ScaleEvent], d: &Direction, now: Timestamp) -> u32 {
    if d.select == Select::Disabled {
        return current;
    }
    let mut out: Option<u32> = None;
    for p in &d.policies {
        let start = period_start(current, events, now, dur(&p.period));
        let proposed = match p.kind {
            PolicyType::Count => start + p.value,
            PolicyType::Percent => ceil_u32(start as f64 * (1.0 + p.value as f64 / 100.0)).max(start),
        };
        out = Some(match (out, d.select) {
            (None, _) => proposed,
            (Some(o), Select::Min) => o.min(proposed),
            (Some(o), _) => o.max(proposed),
        });
    }
    out.unwrap_or(current).max(current)
}

/// The lowest count the scale-down policies allow now.
fn scale_down_limit(current: u32, events: &[ScaleEvent], d: &Direction, now: Timestamp) -> u32 {
    if d.select == Select::Disabled {
        return current;
    }
    let mut out: Option<u32> = None;
    for p in &d.policies {
        let start = period_start(current, events, now, dur(&p.period));
        let proposed = match p.kind {
            PolicyType::Count => start.saturating_sub(p.value),
            PolicyType::Percent => (start as f64 * (1.0 - p.value as f64 / 100.0)).max(0.0) as u32,
        };
        out = Some(match (out, d.select) {
            (None, _) => proposed,
            (Some(o), Select::Min) => o.max(proposed),
            (Some(o), _) => o.min(proposed),
        });
    }
    out.unwrap_or(current).min(current)
}

/// Evaluate once. The history is updated (recommendation, scale event, datapoint,
/// decision record); the caller persists it.
pub fn evaluate(input: &ScaleInput<'_>, hist: &mut ScaleHistory, now: Timestamp) -> Decision {
    let s = input.scaling;
    let (min, max, active) = bounds(s, input.min, input.max, now);
    let current = input.current;
    let mut d = match s.mode {
        Mode::TargetTracking => target_tracking(input, hist, now, min, max),
        Mode::Step => step_mode(input, hist, now, min, max),
    };
    if !active.is_empty() {
        d.message = format!("{} [{} in force: {min}..{max}]", d.message, active.join(", "));
    }
    if d.desired != current {
        hist.events.push(ScaleEvent { at: now, from: current, to: d.desired });
    }
    hist.desired = Some(d.desired);
    hist.last_eval = Some(now);
    hist.decisions.push(DecisionRecord {
        at: now,
        recommendation: d.recommendation,
        desired: d.desired,
        reason: d.reason,
        value: d.metrics.first().and_then(|m| m.value),
        target: d.metrics.first().map(|m| m.target),
    });
    let keep_decisions = hist.decisions.len().saturating_sub(DECISIONS_KEPT);
    hist.decisions.drain(..keep_decisions);
    // History only as long as a window or a period can look back.
    let horizon = [
        dur(&s.behavior.scale_up.stabilization),
        dur(&s.behavior.scale_down.stabilization),
        s.step.as_ref().map(|st| dur(&st.cooldown.out).max(dur(&st.cooldown.in_))).unwrap_or_default(),
    ]
    .into_iter()
    .chain(s.behavior.scale_up.policies.iter().chain(&s.behavior.scale_down.policies).map(|p| dur(&p.period)))
    .max()
    .unwrap_or_default();
    hist.recommendations.retain(|(t, _)| now - *t <= horizon);
    hist.events.retain(|e| now - e.at <= horizon);
    d
}

fn target_tracking(input: &ScaleInput<'_>, hist: &mut ScaleHistory, now: Timestamp, min: u32, max: u32) -> Decision {
    let s = input.scaling;
    let current = input.current;
    let evals: Vec<MetricEval> =
        s.metrics.iter().enumerate().map(|(i, m)| track_metric(input, i, m.name, m.target)).collect();
    let any_missing = evals.iter().any(|e| e.proposal.is_none());
    let mut reason = Reason::DesiredWithinRange;
    let mut why = Vec::new();
    let proposals: Vec<u32> = evals.iter().filter_map(|e| e.proposal).collect();
    let mut rec = proposals.iter().copied().max().unwrap_or(current);
    if any_missing && rec < current {
        rec = current;
        reason = Reason::MetricsStale;
        why.push("metrics missing: no scale-down on partial data".to_string());
    }
    // Scale-down only when enough members report.
    let counted = input.members.iter().filter(|m| m.ready && !m.warming).count();
    if rec < current && counted > 0 {
        let fresh =
            input.members.iter().filter(|m| m.ready && !m.warming && m.values.iter().all(|v| v.is_some())).count();
        let share = fresh as f64 / counted as f64;
        let aggregate = input.aggregates.iter().any(|a| a.is_some());
        if share < s.min_fresh_share && !aggregate {
            rec = current;
            reason = Reason::MetricsStale;
            why.push(format!(
                "only {fresh} of {counted} ready members have fresh samples (scale-down needs {:.0} %)",
                s.min_fresh_share * 100.0
            ));
        }
    }
    if proposals.is_empty() {
        reason = Reason::MetricsStale;
        why.push("no metric is available".into());
    }
    // Stabilization over the persisted recommendations (HPA with behaviors).
    let up_w = dur(&s.behavior.scale_up.stabilization);
    let down_w = dur(&s.behavior.scale_down.stabilization);
    let mut up_rec = rec;
    let mut down_rec = rec;
    for (t, r) in &hist.recommendations {
        if now - *t < up_w {
            up_rec = up_rec.min(*r);
        }
        if now - *t < down_w {
            down_rec = down_rec.max(*r);
        }
    }
    hist.recommendations.push((now, rec));
    let mut desired = current.max(up_rec).min(down_rec);
    if desired > rec && rec < current && reason == Reason::DesiredWithinRange {
        reason = Reason::ScaleDownStabilized;
        why.push(format!("the highest recommendation of the last {}s is {down_rec}", down_w.num_seconds()));
    } else if desired < rec && rec > current {
        reason = Reason::ScaleUpLimit;
        why.push(format!("scale-up stabilization window of {}s", up_w.num_seconds()));
    }
    // Rate limits over the persisted scale events, then the bounds.
    desired = apply_limits(input, hist, now, desired, min, max, &mut reason, &mut why);
    let metrics_line = evals
        .iter()
        .map(|e| match e.value {
            Some(v) => format!("{} {:.1}/{} → {}", e.name.as_str(), v, e.target, e.proposal.unwrap_or(current)),
            None => format!("{} n/a ({})", e.name.as_str(), e.note),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let message = if why.is_empty() {
        format!("{metrics_line}: desired {desired}")
    } else {
        format!("{metrics_line}: desired {desired}; {}", why.join("; "))
    };
    Decision { desired, recommendation: rec, reason, message, metrics: evals, min, max }
}

/// Scale-up/down rate policies, scale-in held while a scale-out is in flight,
/// capacity blocks and min/max, in that order.
#[allow(clippy::too_many_arguments)]
fn apply_limits(
    input: &ScaleInput<'_>,
    hist: &ScaleHistory,
    now: Timestamp,
    mut desired: u32,
    min: u32,
    max: u32,
    reason: &mut Reason,
    why: &mut Vec<String>,
) -> u32 {
    let s = input.scaling;
    let current = input.current;
    let wanted = desired;
    if desired > current {
        let limit = if s.mode == Mode::Step {
            u32::MAX
        } else {
            scale_up_limit(current, &hist.events, &s.behavior.scale_up, now)
        };
        if desired > limit.min(max) {
            if limit < max {
                *reason = Reason::ScaleUpLimit;
                why.push(format!("scale-up policies allow {limit} now"));
                desired = limit;
            } else {
                *reason = Reason::TooManyReplicas;
                why.push(format!("capped at max {max}"));
                desired = max;
            }
        }
    } else if desired < current {
        if input.scale_out_in_flight {
            *reason = Reason::ScaleDownStabilized;
            why.push("a scale-out is still in flight".into());
            desired = current;
        } else {
            let limit = if s.mode == Mode::Step {
                0
            } else {
                scale_down_limit(current, &hist.events, &s.behavior.scale_down, now)
            };
            if desired < limit.max(min) {
                if limit > min {
                    *reason = Reason::ScaleDownLimit;
                    why.push(format!("scale-down policies allow {limit} now"));
                    desired = limit;
                } else {
                    *reason = Reason::TooFewReplicas;
                    why.push(format!("held at min {min}"));
                    desired = min;
                }
            }
        }
    }
    // Capacity: never grow past what the cloud can take (members plus headroom),
    // never shrink a desired count because of it either.
    if let Some(cap) = input.capacity_limit {
        if wanted > cap && wanted >= current {
            *reason = Reason::CapacityBlocked;
            why.push(format!("the cloud has room for {cap} members"));
            desired = desired.min(current.max(cap));
        }
    }
    if desired < min {
        *reason = Reason::TooFewReplicas;
        why.push(format!("raised to min {min}"));
        desired = min;
    }
    if desired > max {
        *reason = Reason::TooManyReplicas;
        why.push(format!("lowered to max {max}"));
        desired = max;
    }
    desired
}

/// Heat's rounding of a percent change: below one member rounds away from zero,
/// otherwise truncates; `min_adjustment_step` is a floor on the size.
fn percent_change(current: u32, pct: i64, min_step: Option<u32>) -> i64 {
    let delta = current as f64 * pct as f64 / 100.0;
    let mut n = if delta.abs() < 1.0 && delta != 0.0 { delta.signum() as i64 } else { delta.trunc() as i64 };
    if let Some(m) = min_step {
        if n != 0 && n.unsigned_abs() < m as u64 {
            n = n.signum() * m as i64;
        }
    }
    n
}

fn step_adjust(st: &StepSpec, rules: &[crate::policy::scaling::StepRule], current: u32, diff: f64) -> Option<u32> {
    let rule = rules.iter().find(|r| r.lower.is_none_or(|l| diff >= l) && r.upper.is_none_or(|u| diff < u))?;
    let next = match st.adjustment_type {
        AdjustmentType::ChangeInCapacity => current as i64 + rule.adjust,
        AdjustmentType::ExactCapacity => rule.adjust,
        AdjustmentType::PercentChangeInCapacity => {
            current as i64 + percent_change(current, rule.adjust, st.min_adjustment_step)
        }
    };
    Some(next.max(0) as u32)
}

/// The first metric's value over the counted members (or its aggregate).
fn first_value(input: &ScaleInput<'_>) -> Option<f64> {
    let counted: Vec<f64> = input
        .members
        .iter()
        .filter(|m| m.ready && !m.warming)
        .filter_map(|m| m.values.first().copied().flatten())
        .collect();
    if counted.is_empty() {
        input.aggregates.first().copied().flatten()
    } else {
        Some(counted.iter().sum::<f64>() / counted.len() as f64)
    }
}

fn step_mode(input: &ScaleInput<'_>, hist: &mut ScaleHistory, now: Timestamp, min: u32, max: u32) -> Decision {
    let s = input.scaling;
    let current = input.current;
    let Some(st) = s.step.as_ref() else {
        return Decision {
            desired: current.clamp(min, max),
            recommendation: current,
            reason: Reason::DesiredWithinRange,
            message: "step mode without [scaling.step]".into(),
            metrics: vec![],
            min,
            max,
        };
    };
    let first = s.metrics.first();
    let value = first_value(input);
    let mut evals = vec![];
    if let Some(m) = first {
        evals.push(MetricEval {
            name: m.name,
            value,
            target: st.out_threshold,
            proposal: None,
            note: format!("in below {}, out above {}", st.in_threshold, st.out_threshold),
        });
    }
    let n = st.datapoints.n.max(1) as usize;
    if let Some(v) = value {
        hist.datapoints.push((now, v));
    }
    let drop = hist.datapoints.len().saturating_sub(n);
    hist.datapoints.drain(..drop);
    let Some(v) = value else {
        return Decision {
            desired: current.clamp(min, max),
            recommendation: current,
            reason: Reason::MetricsStale,
            message: "no datapoint: insufficient data, no change".into(),
            metrics: evals,
            min,
            max,
        };
    };
    let m = st.datapoints.m as usize;
    let above = hist.datapoints.iter().filter(|(_, x)| *x > st.out_threshold).count();
    let below = hist.datapoints.iter().filter(|(_, x)| *x < st.in_threshold).count();
    let last_change =
        |up: bool| hist.events.iter().rev().find(|e| if up { e.to > e.from } else { e.to < e.from }).map(|e| e.at);
    let mut reason = Reason::DesiredWithinRange;
    let mut why = vec![];
    let mut rec = current;
    if above >= m {
        let cool = dur(&st.cooldown.out);
        if last_change(true).is_some_and(|t| now - t < cool) {
            reason = Reason::ScaleUpLimit;
            why.push(format!("scale-out cooldown of {}s", cool.num_seconds()));
        } else if let Some(next) = step_adjust(st, &st.out_steps, current, v - st.out_threshold) {
            rec = next.max(current);
            why.push(format!("{above} of the last {n} datapoints above {}", st.out_threshold));
        }
    } else if below >= m {
        let cool = dur(&st.cooldown.in_);
        if last_change(false).is_some_and(|t| now - t < cool) {
            reason = Reason::ScaleDownLimit;
            why.push(format!("scale-in cooldown of {}s", cool.num_seconds()));
        } else if let Some(next) = step_adjust(st, &st.in_steps, current, v - st.in_threshold) {
            rec = next.min(current);
            why.push(format!("{below} of the last {n} datapoints below {}", st.in_threshold));
        }
    }
    hist.recommendations.push((now, rec));
    let desired = apply_limits(input, hist, now, rec, min, max, &mut reason, &mut why);
    let message = format!(
        "{} {v:.1} (out > {}, in < {}): desired {desired}{}",
        first.map(|m| m.name.as_str()).unwrap_or("metric"),
        st.out_threshold,
        st.in_threshold,
        if why.is_empty() { String::new() } else { format!("; {}", why.join("; ")) }
    );
    Decision { desired, recommendation: rec, reason, message, metrics: evals, min, max }
}

/// Whether an evaluation is due (`evaluation_interval` since the last one).
pub fn due(s: &Scaling, hist: &ScaleHistory, now: Timestamp) -> bool {
    hist.last_eval.is_none_or(|t| now - t >= dur(&s.evaluation_interval) - chrono::Duration::milliseconds(50))
}

/// Whether the policy's scaling mode is one the loop evaluates.
pub fn enabled(s: Option<&Scaling>) -> bool {
    s.is_some_and(|s| !s.metrics.is_empty())
}
