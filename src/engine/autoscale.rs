//! The autoscaler of one policy inside a tick, a pure function: the members and
//! their phases, the metric samples of the snapshot (Gnocchi series, Prometheus
//! answers), the persisted history and `now` in; the desired count, the view the
//! console shows, and the history and event to persist out. The decision itself
//! is `scaling::evaluate`.

use super::members::{Member, MemberState, Phase};
use super::plan::Blocked;
use super::scaling::{due, evaluate, MemberSample, Reason, ScaleHistory, ScaleInput};
use super::status::ScalingView;
use crate::domain::{Event, Severity, Timestamp};
use crate::inventory::CloudSnapshot;
use crate::policy::scaling::{MetricName, MetricSpec, Scaling, Source};
use crate::policy::Policy;
use std::collections::BTreeMap;

/// What an evaluation reads besides the policy.
pub struct ScaleCtx<'a> {
    pub cloud: &'a CloudSnapshot,
    pub members: &'a [Member],
    pub phases: &'a BTreeMap<String, Phase>,
    /// When each member started booting (for warm-up).
    pub since: &'a BTreeMap<String, Timestamp>,
    /// A create of this policy is in flight.
    pub creating: bool,
    pub blocked: Option<&'a Blocked>,
    pub now: Timestamp,
    /// Gnocchi granularity (seconds): samples older than twice this are stale.
    pub granularity: u32,
    pub actor: &'a str,
}

/// What one evaluation gives.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleOutcome {
    pub desired: u32,
    pub view: ScalingView,
    /// The history to persist, with the message (None: not due, nothing changed).
    pub history: Option<(ScaleHistory, String)>,
    pub event: Option<Event>,
    /// Metrics are missing for members that should have them (serving, past their
    /// warm-up), two evaluations in a row: an alert, not just a held scale-in.
    pub metrics_missing: bool,
}

/// The key of a Prometheus query of a policy's metric in the snapshot.
pub fn prom_key(policy_id: &str, metric: usize) -> String {
    format!("{policy_id}:{metric}")
}

/// The inventory's series of one metric.
fn series_of(s: &crate::inventory::ServerSeries, name: MetricName) -> &crate::domain::MetricSeries {
    match name {
        MetricName::Cpu => &s.cpu,
        MetricName::Memory => &s.mem,
        MetricName::NetworkIn => &s.net_in,
        MetricName::NetworkOut => &s.net_out,
    }
}

/// A sample in the unit the policy's target uses: memory in MB becomes % of the
/// flavor's RAM (unknown RAM: no value); CPU is already % and network bytes/s.
fn in_policy_units(name: MetricName, v: f64, ram_mb: Option<u64>) -> Option<f64> {
    match name {
        MetricName::Memory => ram_mb.filter(|r| *r > 0).map(|r| v / r as f64 * 100.0),
        _ => Some(v),
    }
}

/// A Prometheus answer, when it is fresh enough; why not otherwise.
fn prom_answer<'a>(
    ctx: &'a ScaleCtx<'_>,
    p: &Policy,
    sc: &Scaling,
    i: usize,
    spec: &MetricSpec,
) -> Result<&'a crate::inventory::prometheus::PromValues, String> {
    let Some(sample) = ctx.cloud.prometheus.get(&prom_key(&p.id, i)) else {
        return Err(format!("{}: no prometheus answer yet", spec.name.as_str()));
    };
    let max = spec.max_staleness.unwrap_or(crate::domain::Dur(sc.evaluation_interval.0 * 2)).chrono();
    if ctx.now - sample.at > max {
        let age = (ctx.now - sample.at).num_seconds();
        return Err(format!("{}: the last prometheus answer is {age}s old", spec.name.as_str()));
    }
    sample.result.as_ref().map_err(|e| format!("{} from prometheus: {e}", spec.name.as_str()))
}

/// The latest fresh value of one metric of one member.
fn member_value(ctx: &ScaleCtx<'_>, p: &Policy, sc: &Scaling, i: usize, spec: &MetricSpec, m: &Member) -> Option<f64> {
    if spec.source == Source::Prometheus {
        return prom_answer(ctx, p, sc, i, spec).ok()?.per_server.get(&m.server_id).copied();
    }
    let (t, v) = series_of(ctx.cloud.metrics.get(&m.server_id)?, spec.name).last()?;
    let stale = spec.max_staleness.map(|d| d.0.as_secs() as i64).unwrap_or(2 * ctx.granularity.max(1) as i64);
    // Samples from a cloud clock ahead of ours count as fresh.
    if ctx.now.timestamp() - t > stale {
        return None;
    }
    let ram = ctx.cloud.server(&m.server_id).and_then(|s| s.flavor.ram_mb);
    in_policy_units(spec.name, v, ram)
}

/// Members counted by the autoscaler: not terminating, not in ERROR, not deleting.
fn alive<'m>(ctx: &ScaleCtx<'m>) -> Vec<&'m Member> {
    ctx.members
        .iter()
        .filter(|m| {
            m.state == MemberState::Active
                && !matches!(ctx.phases.get(&m.server_id), Some(Phase::Deleting | Phase::Error) | None)
        })
        .collect()
}

/// The console's view before any evaluation: bounds, the first metric and its series.
fn base_view(ctx: &ScaleCtx<'_>, p: &Policy, sc: &Scaling, alive: &[&Member], current: u32) -> ScalingView {
    let cap = p.spec.deploy.capacity;
    let first = sc.metrics.first();
    let mut view = ScalingView {
        app: p.name().to_string(),
        cloud: ctx.cloud.name.clone(),
        current: alive.len() as u32,
        desired: current,
        min: cap.min,
        max: cap.max,
        metric: first.map(|m| m.name.as_str().to_string()).unwrap_or_default(),
        unit: first
            .map(|m| if matches!(m.name, MetricName::Cpu | MetricName::Memory) { "%" } else { "B/s" })
            .unwrap_or_default()
            .to_string(),
        target: first.map(|m| m.target).unwrap_or_default(),
        ..Default::default()
    };
    // The first metric over time, averaged across the members that have data.
    if let Some(spec) = first.filter(|m| m.source == Source::Gnocchi) {
        let mut by_t: BTreeMap<i64, (f64, u32)> = BTreeMap::new();
        for m in alive {
            let Some(series) = ctx.cloud.metrics.get(&m.server_id) else { continue };
            let ram = ctx.cloud.server(&m.server_id).and_then(|s| s.flavor.ram_mb);
            for (t, v) in series_of(series, spec.name).iter() {
                let Some(v) = in_policy_units(spec.name, v, ram) else { continue };
                let e = by_t.entry(t).or_default();
                e.0 += v;
                e.1 += 1;
            }
        }
        view.series = by_t.into_iter().map(|(t, (sum, n))| (t, sum / n.max(1) as f64)).collect();
    }
    view
}

/// Evaluate the autoscaler for one policy (when due).
pub fn autoscale(
    ctx: &ScaleCtx<'_>,
    p: &Policy,
    sc: &Scaling,
    mut hist: ScaleHistory,
    last_message: Option<&String>,
) -> ScaleOutcome {
    let now = ctx.now;
    let cap = p.spec.deploy.capacity;
    // The autoscaler owns desired once it has decided; policy edits of other fields
    // never reset it, and min/max edits re-clamp it.
    let current = hist.desired.unwrap_or(cap.desired).clamp(cap.min, cap.max);
    let alive = alive(ctx);
    let mut view = base_view(ctx, p, sc, &alive, current);
    if sc.metrics.first().is_some_and(|m| m.source == Source::Prometheus) {
        // A Prometheus metric has no series in the inventory: its values at each
        // evaluation draw the line instead.
        view.series = hist.decisions.iter().filter_map(|d| d.value.map(|v| (d.at.timestamp(), v))).collect();
    }
    let warmup = sc.warmup.chrono();
    let min_ready = chrono::Duration::seconds(p.spec.readiness.min_ready_seconds as i64);
    let samples: Vec<MemberSample> = alive
        .iter()
        .map(|m| {
            let ready = ctx.phases.get(&m.server_id) == Some(&Phase::Ready);
            let ready_at = ctx.since.get(&m.server_id).map(|since| *since + min_ready);
            MemberSample {
                server_id: m.server_id.clone(),
                ready,
                warming: ready && ready_at.is_none_or(|t| now - t < warmup),
                values: sc.metrics.iter().enumerate().map(|(i, spec)| member_value(ctx, p, sc, i, spec, m)).collect(),
            }
        })
        .collect();
    // Members booting or warming have no metrics yet by design: not an alert.
    let serving = samples.iter().any(|m| m.ready && !m.warming);
    if !due(sc, &hist, now) {
        view.reason = hist.decisions.last().map(|d| d.reason.as_str().to_string()).unwrap_or_default();
        view.message = last_message.cloned().unwrap_or_default();
        let metrics_missing = serving && stale_streak(&hist);
        view.decisions = hist.decisions;
        return ScaleOutcome { desired: current, view, history: None, event: None, metrics_missing };
    }
    // Only members still building hold a scale-in back: a stopped or failing
    // member is not a scale-out in flight.
    let building = alive.iter().any(|m| ctx.phases.get(&m.server_id) == Some(&Phase::Building));
    let capacity_limit = capacity_limit(ctx, &alive);
    let answers: Vec<Option<Result<&crate::inventory::prometheus::PromValues, String>>> = sc
        .metrics
        .iter()
        .enumerate()
        .map(|(i, m)| (m.source == Source::Prometheus).then(|| prom_answer(ctx, p, sc, i, m)))
        .collect();
    let input = ScaleInput {
        scaling: sc,
        min: cap.min,
        max: cap.max,
        current,
        members: samples,
        scale_out_in_flight: ctx.creating || building,
        capacity_limit,
        aggregates: answers
            .iter()
            .map(|a| a.as_ref().and_then(|r| r.as_ref().ok()).and_then(|v| v.aggregate))
            .collect(),
    };
    let prev_reason = hist.decisions.last().map(|d| d.reason);
    let mut d = evaluate(&input, &mut hist, now);
    let problems: Vec<String> = answers.into_iter().flatten().filter_map(|a| a.err()).collect();
    if !problems.is_empty() {
        d.message = format!("{}; {}", d.message, problems.join("; "));
    }
    let event = (d.desired != current || prev_reason != Some(d.reason)).then(|| event_of(ctx, p, current, &d));
    view.desired = d.desired;
    view.min = d.min;
    view.max = d.max;
    view.reason = d.reason.as_str().to_string();
    view.message = d.message.clone();
    view.decisions = hist.decisions.clone();
    let metrics_missing = serving && stale_streak(&hist);
    ScaleOutcome { desired: d.desired, view, history: Some((hist, d.message)), event, metrics_missing }
}

/// The event of a decision that changed desired or its reason.
fn event_of(ctx: &ScaleCtx<'_>, p: &Policy, current: u32, d: &super::scaling::Decision) -> Event {
    let action = match d.desired.cmp(&current) {
        std::cmp::Ordering::Greater => "scale-out",
        std::cmp::Ordering::Less => "scale-in",
        std::cmp::Ordering::Equal => "scale-hold",
    };
    let sev = match d.reason {
        Reason::CapacityBlocked | Reason::MetricsStale => Severity::Warning,
        _ => Severity::Info,
    };
    let reason = format!("{}: desired {current} → {}", d.reason, d.desired);
    Event::new(ctx.now, ctx.actor, &ctx.cloud.name, action, reason)
        .app(p.name())
        .severity(sev)
        .result(d.reason.as_str())
        .detail(d.message.clone())
}

/// What the cloud can still take while capacity blocks: members that exist
/// plus the quota's headroom for one more of the members' flavor.
fn capacity_limit(ctx: &ScaleCtx<'_>, alive: &[&Member]) -> Option<u32> {
    ctx.blocked.map(|_| {
        let flavor = alive.first().and_then(|m| ctx.cloud.server(&m.server_id)).map(|s| s.flavor.clone());
        let (vcpus, ram) = flavor.map(|f| (f.vcpus, f.ram_mb)).unwrap_or((None, None));
        let room = ctx.cloud.limits.as_ref().and_then(|l| l.headroom(vcpus.unwrap_or(1), ram.unwrap_or(0)));
        alive.len() as u32 + room.unwrap_or(0).max(0) as u32
    })
}

/// The last two evaluations found the metrics stale.
fn stale_streak(hist: &ScaleHistory) -> bool {
    hist.decisions.len() >= 2 && hist.decisions.iter().rev().take(2).all(|d| d.reason == Reason::MetricsStale)
}
