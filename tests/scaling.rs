//! The autoscaler, table by table: HPA target tracking (tolerance, ceil, missing
//! and unready members, stabilization, rate-limit policies with select), the
//! engine's own rules (metrics stale, scale-out in flight, capacity, schedules),
//! step mode (M-of-N, step adjustments, Heat rounding, cooldowns) and a history
//! that survives a restart.

// Tests fail by panicking: unwrap, expect and indexing say so plainly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::let_underscore_must_use,
    clippy::print_stdout,
    clippy::print_stderr
)]

use stackpilot::domain::Timestamp;
use stackpilot::engine::scaling::{evaluate, MemberSample, Reason, ScaleEvent, ScaleHistory, ScaleInput};
use stackpilot::policy::scaling::Scaling;

fn now() -> Timestamp {
    stackpilot::domain::time::parse_timestamp("2026-11-25T12:00:00Z").unwrap()
}

fn ago(secs: i64) -> Timestamp {
    now() - chrono::Duration::seconds(secs)
}

/// Target tracking on cpu 60 %, no stabilization and generous limits unless the
/// extra TOML says otherwise.
fn scaling(extra: &str) -> Scaling {
    let base = r#"
evaluation_interval = "30s"
warmup = "60s"
[[metrics]]
name = "cpu"
target = 60
[behavior.scale_up]
stabilization = "0s"
policies = [{ type = "count", value = 100, period = "60s" }]
[behavior.scale_down]
stabilization = "0s"
policies = [{ type = "count", value = 100, period = "60s" }]
"#;
    let text = if extra.trim_start().starts_with("REPLACE") {
        extra.replacen("REPLACE", "", 1)
    } else if extra.trim_start().starts_with('[') {
        format!("{base}\n{extra}")
    } else {
        format!("{extra}\n{base}")
    };
    toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn ready(v: &[f64]) -> Vec<MemberSample> {
    v.iter()
        .enumerate()
        .map(|(i, x)| MemberSample { server_id: format!("s{i}"), ready: true, warming: false, values: vec![Some(*x)] })
        .collect()
}

fn missing(i: usize) -> MemberSample {
    MemberSample { server_id: format!("m{i}"), ready: true, warming: false, values: vec![None] }
}

fn warming(i: usize) -> MemberSample {
    MemberSample { server_id: format!("w{i}"), ready: true, warming: true, values: vec![Some(0.0)] }
}

fn input(s: &Scaling, current: u32, members: Vec<MemberSample>) -> ScaleInput<'_> {
    ScaleInput {
        scaling: s,
        min: 1,
        max: 20,
        current,
        members,
        scale_out_in_flight: false,
        capacity_limit: None,
        aggregates: vec![],
    }
}

fn run(i: &ScaleInput<'_>) -> (u32, Reason) {
    let d = evaluate(i, &mut ScaleHistory::default(), now());
    (d.desired, d.reason)
}

#[test]
fn tolerance_band_and_ceil_rounding() {
    let s = scaling("");
    let table: &[(&[f64], u32, Reason)] = &[
        // 64/60 = 1.067: inside the 10 % band, no change.
        (&[64.0, 64.0, 64.0, 64.0], 4, Reason::DesiredWithinRange),
        (&[55.0, 55.0, 55.0, 55.0], 4, Reason::DesiredWithinRange),
        // 70/60 = 1.167 x 4 = 4.67 → 5.
        (&[70.0, 70.0, 70.0, 70.0], 5, Reason::DesiredWithinRange),
        // 61, 61, 61 at target 50 would be 3.66; at 60 it is in band. 90 x 3 / 60 = 4.5 → 5.
        (&[90.0, 90.0, 90.0], 5, Reason::DesiredWithinRange),
        // 20 % x 4 / 60 = 1.33 → 2.
        (&[20.0, 20.0, 20.0, 20.0], 2, Reason::DesiredWithinRange),
    ];
    for (vals, want, reason) in table {
        let current = vals.len() as u32;
        assert_eq!(run(&input(&s, current, ready(vals))), (*want, *reason), "{vals:?}");
    }
    // Asymmetric tolerance: a 5 % band up, 30 % down.
    let s = scaling("tolerance = { up = 0.05, down = 0.30 }");
    assert_eq!(run(&input(&s, 4, ready(&[64.0; 4]))).0, 5, "1.067 is outside a 5 % band");
    assert_eq!(run(&input(&s, 4, ready(&[45.0; 4]))).0, 4, "0.75 is inside a 30 % band");
}

#[test]
fn missing_metrics_count_as_idle_going_up_and_as_target_going_down() {
    let s = scaling("min_fresh_share = 0.5");
    // Up: 3 x 90 and one missing (0) → 270 / 4 / 60 = 1.125 → 4.5 → 5.
    let mut m = ready(&[90.0, 90.0, 90.0]);
    m.push(missing(0));
    assert_eq!(run(&input(&s, 4, m)), (5, Reason::DesiredWithinRange));
    // Down: 3 x 30 and one missing (60) → 150 / 4 / 60 = 0.625 → 2.5 → 3.
    let mut m = ready(&[30.0, 30.0, 30.0]);
    m.push(missing(0));
    assert_eq!(run(&input(&s, 4, m)), (3, Reason::DesiredWithinRange));
    // Down with too few fresh members (3 of 4 < 80 %): no scale-down on partial data.
    let s = scaling("");
    let mut m = ready(&[30.0, 30.0, 30.0]);
    m.push(missing(0));
    assert_eq!(run(&input(&s, 4, m)), (4, Reason::MetricsStale));
    // Nothing at all: hold.
    assert_eq!(run(&input(&s, 4, vec![missing(0), missing(1)])), (4, Reason::MetricsStale));
    // Filling in flips the direction (40 and two missing at 100 %... going down, but
    // with missing at target it is 0.78 → 2.3 → 3): still down, and not below.
    let s = scaling("min_fresh_share = 0.0");
    let mut m = ready(&[66.0]);
    m.extend([missing(0), missing(1)]);
    // 66/60 = 1.1 → up by ratio, but filled (66+0+0)/3/60 = 0.37 → reversed → hold.
    assert_eq!(run(&input(&s, 3, m)), (3, Reason::DesiredWithinRange));
}

#[test]
fn unready_and_warming_members_count_as_idle_on_the_way_up() {
    let s = scaling("");
    // 2 ready at 90 %, 2 still warming: (180 + 0 + 0) / 4 / 60 = 0.75, the other way → hold.
    let mut m = ready(&[90.0, 90.0]);
    m.extend([warming(0), warming(1)]);
    assert_eq!(run(&input(&s, 4, m)), (4, Reason::DesiredWithinRange));
    // 2 ready at 150 %, 1 warming: (300) / 3 / 60 = 1.67 → 5.
    let mut m = ready(&[150.0, 150.0]);
    m.push(warming(0));
    assert_eq!(run(&input(&s, 3, m)), (5, Reason::DesiredWithinRange));
    // Going down, warming members are left out: 2 at 20 % → 0.33 x 2 → 1.
    let mut m = ready(&[20.0, 20.0]);
    m.push(warming(0));
    assert_eq!(run(&input(&s, 3, m)), (1, Reason::DesiredWithinRange));
}

#[test]
fn stabilization_picks_the_max_down_and_the_min_up_over_the_window() {
    let s = scaling(
        r#"REPLACE
[[metrics]]
name = "cpu"
target = 60
[behavior.scale_up]
stabilization = "120s"
policies = [{ type = "count", value = 100, period = "60s" }]
[behavior.scale_down]
stabilization = "300s"
policies = [{ type = "count", value = 100, period = "60s" }]
"#,
    );
    // Down: 20 % on 6 → 2, but within 300 s the recommendations were 6 and 5.
    let mut h = ScaleHistory { recommendations: vec![(ago(200), 6), (ago(50), 5)], ..Default::default() };
    let d = evaluate(&input(&s, 6, ready(&[20.0; 6])), &mut h, now());
    assert_eq!((d.desired, d.reason), (6, Reason::ScaleDownStabilized));
    assert_eq!(d.recommendation, 2);
    // Once the 6 leaves the window the max is 5.
    let mut h = ScaleHistory { recommendations: vec![(ago(400), 6), (ago(50), 5)], ..Default::default() };
    let d = evaluate(&input(&s, 6, ready(&[20.0; 6])), &mut h, now());
    assert_eq!((d.desired, d.reason), (5, Reason::ScaleDownStabilized));
    // And with the window empty it goes to the recommendation.
    let mut h = ScaleHistory { recommendations: vec![(ago(400), 6)], ..Default::default() };
    assert_eq!(evaluate(&input(&s, 6, ready(&[20.0; 6])), &mut h, now()).desired, 2);
    // Up: 120 % on 3 → 6, but the last 120 s recommended 3 and 4 → min is 3.
    let mut h = ScaleHistory { recommendations: vec![(ago(100), 3), (ago(30), 4)], ..Default::default() };
    let d = evaluate(&input(&s, 3, ready(&[120.0; 3])), &mut h, now());
    assert_eq!((d.desired, d.reason), (3, Reason::ScaleUpLimit));
    let mut h = ScaleHistory { recommendations: vec![(ago(30), 4)], ..Default::default() };
    assert_eq!(evaluate(&input(&s, 3, ready(&[120.0; 3])), &mut h, now()).desired, 4);
}

fn limits(select_up: &str, select_down: &str) -> Scaling {
    scaling(&format!(
        r#"REPLACE
[[metrics]]
name = "cpu"
target = 60
[behavior.scale_up]
stabilization = "0s"
select = "{select_up}"
policies = [{{ type = "percent", value = 100, period = "60s" }}, {{ type = "count", value = 2, period = "60s" }}]
[behavior.scale_down]
stabilization = "0s"
select = "{select_down}"
policies = [{{ type = "count", value = 1, period = "300s" }}, {{ type = "percent", value = 50, period = "300s" }}]
"#
    ))
}

#[test]
fn rate_limit_policies_with_select_max_and_min() {
    // Up from 3 wanting 10 (200 % each): percent allows 6, count allows 5.
    let hot = ready(&[200.0; 3]);
    assert_eq!(run(&input(&limits("max", "max"), 3, hot.clone())), (6, Reason::ScaleUpLimit));
    assert_eq!(run(&input(&limits("min", "max"), 3, hot.clone())), (5, Reason::ScaleUpLimit));
    assert_eq!(run(&input(&limits("disabled", "max"), 3, hot.clone())), (3, Reason::ScaleUpLimit));
    // Changes already made in the period count: 2 → 3 thirty seconds ago, so the
    // period started at 2: percent allows 4, count 4.
    let s = limits("max", "max");
    let mut h = ScaleHistory { events: vec![ScaleEvent { at: ago(30), from: 2, to: 3 }], ..Default::default() };
    assert_eq!(evaluate(&input(&s, 3, hot.clone()), &mut h, now()).desired, 4);
    // Down from 10 wanting 1 (5 % each): count allows 9, percent allows 5.
    let cold = ready(&[5.0; 10]);
    assert_eq!(run(&input(&limits("max", "max"), 10, cold.clone())), (5, Reason::ScaleDownLimit));
    assert_eq!(run(&input(&limits("max", "min"), 10, cold.clone())), (9, Reason::ScaleDownLimit));
    assert_eq!(run(&input(&limits("max", "disabled"), 10, cold.clone())), (10, Reason::ScaleDownLimit));
    // One member went already in this period: the count policy allows no more.
    let mut h = ScaleHistory { events: vec![ScaleEvent { at: ago(100), from: 11, to: 10 }], ..Default::default() };
    assert_eq!(evaluate(&input(&limits("max", "min"), 10, cold), &mut h, now()).desired, 10);
}

#[test]
fn bounds_in_flight_scale_out_and_capacity() {
    let s = scaling("");
    let mut i = input(&s, 4, ready(&[5.0; 4]));
    i.min = 3;
    assert_eq!(run(&i), (3, Reason::TooFewReplicas));
    let mut i = input(&s, 4, ready(&[300.0; 4]));
    i.max = 8;
    assert_eq!(run(&i), (8, Reason::TooManyReplicas));
    // Scale-in waits while a scale-out is in flight.
    let mut i = input(&s, 4, ready(&[5.0; 4]));
    i.scale_out_in_flight = true;
    assert_eq!(run(&i), (4, Reason::ScaleDownStabilized));
    // Capacity for 5 members: growth stops there...
    let mut i = input(&s, 4, ready(&[120.0; 4]));
    i.capacity_limit = Some(5);
    assert_eq!(run(&i), (5, Reason::CapacityBlocked));
    // ...and a desired count above it is not shrunk for it either.
    let mut i = input(&s, 8, ready(&[120.0; 5]));
    i.capacity_limit = Some(5);
    assert_eq!(run(&i), (8, Reason::CapacityBlocked));
    // Scale-in is never blocked by capacity.
    let mut i = input(&s, 4, ready(&[10.0; 4]));
    i.capacity_limit = Some(4);
    assert_eq!(run(&i).1, Reason::DesiredWithinRange);
}

#[test]
fn the_highest_metric_wins_and_a_missing_one_blocks_scale_down() {
    let s = scaling(
        r#"REPLACE
[[metrics]]
name = "cpu"
target = 60
[[metrics]]
name = "memory"
target = 50
[behavior.scale_down]
stabilization = "0s"
policies = [{ type = "count", value = 100, period = "60s" }]
"#,
    );
    let both = |cpu: f64, mem: Option<f64>, n: usize| {
        (0..n)
            .map(|i| MemberSample {
                server_id: format!("s{i}"),
                ready: true,
                warming: false,
                values: vec![Some(cpu), mem],
            })
            .collect::<Vec<_>>()
    };
    // cpu wants 2 (30 % on 4), memory wants 8 (100 % on 4): 8.
    let d = evaluate(&input(&s, 4, both(30.0, Some(100.0), 4)), &mut ScaleHistory::default(), now());
    // The default scale-up policies allow max(100 % of 4, 4 + 2) = 8.
    assert_eq!((d.desired, d.recommendation, d.reason), (8, 8, Reason::DesiredWithinRange));
    // cpu wants 2, memory missing: no scale-down.
    let d = evaluate(&input(&s, 4, both(30.0, None, 4)), &mut ScaleHistory::default(), now());
    assert_eq!((d.desired, d.reason), (4, Reason::MetricsStale));
}

#[test]
fn schedules_raise_the_floor_inside_their_window() {
    // Weekdays 08:00-20:00 UTC at least 6; 2026-11-25 is a Wednesday, 12:00.
    let s = scaling(
        r#"[[schedules]]
cron = "0 8 * * 1-5"
until_cron = "0 20 * * 1-5"
tz = "UTC"
min = 6"#,
    );
    let d = evaluate(&input(&s, 4, ready(&[60.0; 4])), &mut ScaleHistory::default(), now());
    assert_eq!((d.desired, d.reason, d.min), (6, Reason::TooFewReplicas, 6));
    assert!(d.message.contains("schedule 1"), "{}", d.message);
    // At 21:00 the window is closed.
    let late = now() + chrono::Duration::hours(9);
    let d = evaluate(&input(&s, 4, ready(&[60.0; 4])), &mut ScaleHistory::default(), late);
    assert_eq!((d.desired, d.min), (4, 1));
    // In another zone: 12:00 UTC is 21:00 in Tokyo, outside 08-20 there.
    let s = scaling(
        r#"[[schedules]]
cron = "0 8 * * *"
until_cron = "0 20 * * *"
tz = "Asia/Tokyo"
max = 2"#,
    );
    assert_eq!(evaluate(&input(&s, 4, ready(&[60.0; 4])), &mut ScaleHistory::default(), now()).max, 20);
}

fn step(extra: &str) -> Scaling {
    scaling(&format!(
        r#"REPLACE
mode = "step"
[[metrics]]
name = "cpu"
target = 60
[step]
out_threshold = 70
in_threshold = 30
out_steps = [{{ lower = 0, upper = 20, adjust = 1 }}, {{ lower = 20, adjust = 3 }}]
in_steps = [{{ upper = 0, adjust = -1 }}]
datapoints = {{ m = 2, n = 3 }}
cooldown = {{ out = "120s", in = "300s" }}
{extra}
"#
    ))
}

#[test]
fn step_mode_needs_m_of_n_datapoints_and_honours_cooldowns() {
    let s = step("");
    let mut h = ScaleHistory::default();
    // One breaching datapoint of the needed two: nothing.
    let d = evaluate(&input(&s, 4, ready(&[80.0; 4])), &mut h, ago(60));
    assert_eq!(d.desired, 4);
    // Second breach (80 - 70 = 10: first step, +1).
    let d = evaluate(&input(&s, 4, ready(&[80.0; 4])), &mut h, ago(30));
    assert_eq!(d.desired, 5);
    // Far above (95 - 70 = 25: +3), but the scale-out cooldown (120 s) holds.
    let d = evaluate(&input(&s, 5, ready(&[95.0; 5])), &mut h, now());
    assert_eq!((d.desired, d.reason), (5, Reason::ScaleUpLimit));
    let d = evaluate(&input(&s, 5, ready(&[95.0; 5])), &mut h, now() + chrono::Duration::seconds(120));
    assert_eq!(d.desired, 8);
    // M-of-N: 2 of the last 3 below 30 → -1; alternating values never reach it.
    let mut h = ScaleHistory::default();
    for (i, v) in [20.0, 50.0, 50.0, 20.0, 50.0].iter().enumerate() {
        let d = evaluate(&input(&s, 4, ready(&[*v; 4])), &mut h, ago(300 - i as i64 * 30));
        assert_eq!(d.desired, 4, "datapoint {i}");
    }
    let d = evaluate(&input(&s, 4, ready(&[20.0; 4])), &mut h, now());
    assert_eq!(d.desired, 3, "20, 50, 20: two of three");
}

#[test]
fn step_mode_percent_changes_round_like_heat() {
    let s = step(
        r#"adjustment_type = "percent_change_in_capacity"
min_adjustment_step = 2"#,
    );
    let s = {
        let mut s = s;
        let st = s.step.as_mut().unwrap();
        st.out_steps = vec![stackpilot::policy::scaling::StepRule { lower: Some(0.0), upper: None, adjust: 10 }];
        st.datapoints.m = 1;
        st.datapoints.n = 1;
        s
    };
    // 10 % of 4 = 0.4 → away from zero = 1 → min_adjustment_step 2.
    assert_eq!(evaluate(&input(&s, 4, ready(&[90.0; 4])), &mut ScaleHistory::default(), now()).desired, 6);
    // 10 % of 15 = 1.5 → truncated to 1 → raised to 2.
    assert_eq!(evaluate(&input(&s, 15, ready(&[90.0; 15])), &mut ScaleHistory::default(), now()).desired, 17);
    let mut s = s;
    s.step.as_mut().unwrap().min_adjustment_step = None;
    assert_eq!(evaluate(&input(&s, 4, ready(&[90.0; 4])), &mut ScaleHistory::default(), now()).desired, 5);
    assert_eq!(evaluate(&input(&s, 15, ready(&[90.0; 15])), &mut ScaleHistory::default(), now()).desired, 16);
}

#[test]
fn the_history_survives_a_restart() {
    let s = scaling(
        r#"REPLACE
[[metrics]]
name = "cpu"
target = 60
[behavior.scale_down]
stabilization = "300s"
policies = [{ type = "count", value = 100, period = "60s" }]
"#,
    );
    let mut h = ScaleHistory::default();
    // A spike: 150 % on 4 → 10.
    assert_eq!(evaluate(&input(&s, 4, ready(&[150.0; 4])), &mut h, ago(120)).recommendation, 10);
    // Persisted and read back (the engine restarts here).
    let saved = serde_json::to_string(&h).unwrap();
    let mut h: ScaleHistory = serde_json::from_str(&saved).unwrap();
    // Quiet again: 10 % on 8 → 2, but the 10 two minutes ago keeps it up.
    let d = evaluate(&input(&s, 8, ready(&[10.0; 8])), &mut h, now());
    assert_eq!((d.desired, d.reason), (8, Reason::ScaleDownStabilized));
    // Without the history (what a restart would do if it were not persisted) it drops.
    let d = evaluate(&input(&s, 8, ready(&[10.0; 8])), &mut ScaleHistory::default(), now());
    assert_eq!(d.desired, 2);
    assert_eq!(h.decisions.len(), 2, "decisions are kept for the console");
}
