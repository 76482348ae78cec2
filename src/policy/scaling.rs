//! `[scaling]`: target tracking (the default) or step scaling, metrics from Gnocchi
//! or Prometheus, tolerance, warm-up, behavior (stabilization windows and rate
//! limits), scheduled bounds. Defaults follow ENGINE-SPEC section 3.

use super::model::Dur;
use crate::domain::time::DurRange;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    TargetTracking,
    Step,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricName {
    /// % of the members' vCPUs (from Gnocchi's cumulative `cpu`).
    Cpu,
    /// % of the flavor's RAM (Gnocchi `memory.usage`).
    Memory,
    /// Bytes per second received, per member.
    NetworkIn,
    /// Bytes per second sent, per member.
    NetworkOut,
}

impl MetricName {
    pub fn as_str(&self) -> &'static str {
        match self {
            MetricName::Cpu => "cpu",
            MetricName::Memory => "memory",
            MetricName::NetworkIn => "network_in",
            MetricName::NetworkOut => "network_out",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    #[default]
    Gnocchi,
    Prometheus,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    pub name: MetricName,
    #[serde(default)]
    pub source: Source,
    /// Target per member: % for cpu and memory, bytes/s for network.
    pub target: f64,
    /// PromQL returning one value per member (label `server_id`) or one aggregate;
    /// `{app}` is replaced by the application name. Prometheus only.
    #[serde(default)]
    pub query: Option<String>,
    /// Prometheus base URL. Prometheus only.
    #[serde(default)]
    pub prometheus_url: Option<String>,
    /// Samples older than this are missing (default: twice the granularity).
    #[serde(default)]
    pub max_staleness: Option<Dur>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    #[serde(default = "tol")]
    pub up: f64,
    #[serde(default = "tol")]
    pub down: f64,
}

fn tol() -> f64 {
    0.10
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance { up: 0.10, down: 0.10 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyType {
    Percent,
    Count,
}

/// At most `value` members (or `value` % of the current count) per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RatePolicy {
    #[serde(rename = "type")]
    pub kind: PolicyType,
    pub value: u32,
    pub period: Dur,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    /// The policy allowing the biggest change wins.
    #[default]
    Max,
    Min,
    /// No change in this direction.
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Direction {
    pub stabilization: Dur,
    #[serde(default)]
    pub select: Select,
    pub policies: Vec<RatePolicy>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Behavior {
    pub scale_up: Direction,
    pub scale_down: Direction,
}

fn secs(n: u64) -> Dur {
    Dur(Duration::from_secs(n))
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            scale_up: Direction {
                stabilization: secs(0),
                select: Select::Max,
                policies: vec![
                    RatePolicy { kind: PolicyType::Percent, value: 100, period: secs(180) },
                    RatePolicy { kind: PolicyType::Count, value: 2, period: secs(180) },
                ],
            },
            scale_down: Direction {
                stabilization: secs(600),
                select: Select::Max,
                policies: vec![
                    RatePolicy { kind: PolicyType::Count, value: 1, period: secs(300) },
                    RatePolicy { kind: PolicyType::Percent, value: 10, period: secs(300) },
                ],
            },
        }
    }
}

/// Bounds that apply from `cron` until `until_cron` (in `tz`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub cron: String,
    pub until_cron: String,
    #[serde(default = "utc")]
    pub tz: String,
    #[serde(default)]
    pub min: Option<u32>,
    #[serde(default)]
    pub max: Option<u32>,
}

fn utc() -> String {
    "UTC".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentType {
    #[default]
    ChangeInCapacity,
    ExactCapacity,
    PercentChangeInCapacity,
}

/// One step: applies when `lower <= metric - threshold < upper`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StepRule {
    #[serde(default)]
    pub lower: Option<f64>,
    #[serde(default)]
    pub upper: Option<f64>,
    pub adjust: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Datapoints {
    pub m: u32,
    pub n: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Cooldown {
    pub out: Dur,
    #[serde(rename = "in")]
    pub in_: Dur,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default)]
    pub adjustment_type: AdjustmentType,
    #[serde(default)]
    pub min_adjustment_step: Option<u32>,
    /// Scale out above this value of the first metric.
    pub out_threshold: f64,
    pub out_steps: Vec<StepRule>,
    /// Scale in below this value.
    pub in_threshold: f64,
    pub in_steps: Vec<StepRule>,
    #[serde(default = "dp")]
    pub datapoints: Datapoints,
    #[serde(default = "cd")]
    pub cooldown: Cooldown,
}

fn dp() -> Datapoints {
    Datapoints { m: 2, n: 3 }
}
fn cd() -> Cooldown {
    Cooldown { out: secs(120), in_: secs(300) }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scaling {
    #[serde(default)]
    pub mode: Mode,
    #[serde(default = "interval")]
    pub evaluation_interval: Dur,
    /// Members are left out of the averages this long after they are Ready.
    #[serde(default = "warmup")]
    pub warmup: Dur,
    #[serde(default)]
    pub tolerance: Tolerance,
    pub metrics: Vec<MetricSpec>,
    #[serde(default)]
    pub behavior: Behavior,
    #[serde(default)]
    pub schedules: Vec<Schedule>,
    #[serde(default)]
    pub step: Option<Step>,
    /// Scale down only when at least this share of Ready members have fresh samples.
    #[serde(default = "fresh")]
    pub min_fresh_share: f64,
}

fn interval() -> Dur {
    secs(30)
}
fn warmup() -> Dur {
    secs(180)
}
fn fresh() -> f64 {
    0.8
}

impl Scaling {
    /// Every duration of the section with its dotted path and allowed range.
    pub fn durations(&self) -> Vec<(String, Dur, DurRange)> {
        let r = |a: Dur, b: Dur| DurRange::new(a, b);
        let mut v = vec![
            ("scaling.evaluation_interval".to_string(), self.evaluation_interval, r(secs(1), secs(3600))),
            ("scaling.warmup".to_string(), self.warmup, r(secs(0), secs(3600))),
        ];
        for (i, m) in self.metrics.iter().enumerate() {
            if let Some(d) = m.max_staleness {
                v.push((format!("scaling.metrics.{i}.max_staleness"), d, r(secs(1), secs(86_400))));
            }
        }
        for (name, d) in [("scale_up", &self.behavior.scale_up), ("scale_down", &self.behavior.scale_down)] {
            // Kubernetes' own bounds: a window of at most an hour, periods of at most 30 min.
            v.push((format!("scaling.behavior.{name}.stabilization"), d.stabilization, r(secs(0), secs(3600))));
            for (i, p) in d.policies.iter().enumerate() {
                v.push((format!("scaling.behavior.{name}.policies.{i}.period"), p.period, r(secs(1), secs(1800))));
            }
        }
        if let Some(st) = &self.step {
            v.push(("scaling.step.cooldown.out".into(), st.cooldown.out, r(secs(0), secs(86_400))));
            v.push(("scaling.step.cooldown.in".into(), st.cooldown.in_, r(secs(0), secs(86_400))));
        }
        v
    }

    /// Semantic checks: (dotted field, message).
    pub fn check(&self, cap: &super::model::Capacity) -> Vec<(String, String)> {
        let mut v = Vec::new();
        if self.metrics.is_empty() {
            v.push((
                "scaling.metrics".into(),
                "name at least one metric, e.g. [[scaling.metrics]] name = \"cpu\" target = 60".into(),
            ));
        }
        for m in &self.metrics {
            if !(m.target.is_finite() && m.target > 0.0) {
                v.push((
                    "scaling.metrics".into(),
                    format!("{}: target must be above 0, got {}", m.name.as_str(), m.target),
                ));
            }
            if matches!(m.name, MetricName::Cpu | MetricName::Memory) && m.target > 100.0 {
                v.push((
                    "scaling.metrics".into(),
                    format!(
                        "{}: target is a percentage of the member (at most 100), got {}",
                        m.name.as_str(),
                        m.target
                    ),
                ));
            }
            if m.source == Source::Prometheus && (m.query.is_none() || m.prometheus_url.is_none()) {
                v.push((
                    "scaling.metrics".into(),
                    format!("{}: a prometheus metric needs `query` and `prometheus_url`", m.name.as_str()),
                ));
            }
            if m.source == Source::Gnocchi && m.query.is_some() {
                v.push(("scaling.metrics".into(), format!("{}: `query` is for prometheus metrics", m.name.as_str())));
            }
        }
        for (name, t) in [("up", self.tolerance.up), ("down", self.tolerance.down)] {
            if !(0.0..1.0).contains(&t) {
                v.push((
                    "scaling.tolerance".into(),
                    format!("{name} must be between 0 and 1 (a fraction of the target), got {t}"),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.min_fresh_share) {
            v.push((
                "scaling.min_fresh_share".into(),
                format!("must be between 0 and 1, got {}", self.min_fresh_share),
            ));
        }
        for (name, d) in [("scale_up", &self.behavior.scale_up), ("scale_down", &self.behavior.scale_down)] {
            if d.policies.is_empty() && d.select != Select::Disabled {
                v.push((
                    format!("scaling.behavior.{name}"),
                    "name at least one rate policy, or select = \"disabled\"".into(),
                ));
            }
            for p in &d.policies {
                if p.value == 0 || p.period.0.is_zero() {
                    v.push((
                        format!("scaling.behavior.{name}"),
                        "policies need a value above 0 and a period above 0s".into(),
                    ));
                }
            }
        }
        for (i, s) in self.schedules.iter().enumerate() {
            for (k, c) in [("cron", &s.cron), ("until_cron", &s.until_cron)] {
                if let Err(e) = crate::domain::cron::Cron::parse(c) {
                    v.push(("scaling.schedules".into(), format!("schedule {}: {k} `{c}`: {e}", i + 1)));
                }
            }
            if crate::domain::cron::parse_tz(&s.tz).is_none() {
                v.push((
                    "scaling.schedules".into(),
                    format!(
                        "schedule {}: unknown time zone `{}` (use e.g. \"UTC\", \"Europe/Paris\" or \"+02:00\")",
                        i + 1,
                        s.tz
                    ),
                ));
            }
            if let (Some(a), Some(b)) = (s.min, s.max) {
                if a > b {
                    v.push(("scaling.schedules".into(), format!("schedule {}: min {a} is above max {b}", i + 1)));
                }
            }
            if s.max.is_some_and(|m| m > cap.max) || s.min.is_some_and(|m| m > cap.max) {
                v.push((
                    "scaling.schedules".into(),
                    format!("schedule {}: bounds must stay within deploy.capacity ({}..{})", i + 1, cap.min, cap.max),
                ));
            }
        }
        match (self.mode, &self.step) {
            (Mode::Step, None) => {
                v.push(("scaling.step".into(), "mode = \"step\" needs a [scaling.step] table".into()))
            }
            (Mode::Step, Some(st)) => {
                if st.datapoints.m == 0 || st.datapoints.m > st.datapoints.n {
                    v.push((
                        "scaling.step".into(),
                        format!("datapoints: m ({}) must be between 1 and n ({})", st.datapoints.m, st.datapoints.n),
                    ));
                }
                if st.in_threshold >= st.out_threshold {
                    v.push((
                        "scaling.step".into(),
                        format!(
                            "in_threshold ({}) must be below out_threshold ({})",
                            st.in_threshold, st.out_threshold
                        ),
                    ));
                }
                for (dir, steps) in [("out_steps", &st.out_steps), ("in_steps", &st.in_steps)] {
                    if let Err(e) = check_steps(steps) {
                        v.push(("scaling.step".to_string(), format!("{dir}: {e}")));
                    }
                }
            }
            (Mode::TargetTracking, Some(_)) => {
                v.push(("scaling.step".into(), "[scaling.step] only applies with mode = \"step\"".into()))
            }
            _ => {}
        }
        v
    }
}

/// AWS step bounds: sorted, no overlap, no gap, at most one open lower and one open
/// upper bound.
fn check_steps(steps: &[StepRule]) -> Result<(), String> {
    if steps.is_empty() {
        return Err("name at least one step".into());
    }
    let mut v: Vec<&StepRule> = steps.iter().collect();
    crate::domain::sort::sort_by(&mut v, |a, b| {
        a.lower
            .unwrap_or(f64::NEG_INFINITY)
            .partial_cmp(&b.lower.unwrap_or(f64::NEG_INFINITY))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    for w in v.windows(2) {
        let [a, b] = w else { continue };
        match (a.upper, b.lower) {
            (Some(u), Some(l)) if (u - l).abs() > 1e-9 => {
                return Err(format!("steps must touch: one ends at {u}, the next starts at {l}"));
            }
            (None, _) => return Err("only the last step may have no upper bound".into()),
            (_, None) => return Err("only the first step may have no lower bound".into()),
            _ => {}
        }
    }
    for s in &v {
        if let (Some(l), Some(u)) = (s.lower, s.upper) {
            if l >= u {
                return Err(format!("lower ({l}) must be below upper ({u})"));
            }
        }
    }
    Ok(())
}
