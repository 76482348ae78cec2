//! Simulated time: a speed factor applied to the wall clock, plus an offset that
//! tests and operators can advance. Lifecycles, workloads and metric timestamps all
//! read this clock; tokens use the wall clock (their lifetime is a real-world
//! security setting).

use crate::domain::{Clock, Timestamp};
use chrono::{Duration as ChronoDuration, Utc};
use std::sync::Mutex;
use std::time::Instant;

/// The longest step simulated time takes at once: a century (beyond it, a
/// timestamp would leave what dates can hold).
const MAX_STEP_MS: f64 = 100.0 * 365.0 * 86_400_000.0;

/// `t` moved by `ms` milliseconds of simulated time, saturating: a huge, infinite
/// or undefined step (from a speed, a world file or a request) is clamped to a
/// century, never an overflow.
pub fn shifted(t: Timestamp, ms: f64) -> Timestamp {
    let ms = if ms.is_nan() { 0.0 } else { ms.clamp(-MAX_STEP_MS, MAX_STEP_MS) };
    t.checked_add_signed(ChronoDuration::milliseconds(ms as i64)).unwrap_or(t)
}

#[derive(Debug)]
pub struct SimClock {
    speed: f64,
    real_start: Instant,
    sim_start: Timestamp,
    offset_ms: Mutex<i64>,
}

impl SimClock {
    pub fn new(speed: f64, sim_start: Timestamp) -> Self {
        SimClock {
            speed: if speed.is_finite() && speed > 0.0 { speed } else { 1.0 },
            real_start: Instant::now(),
            sim_start,
            offset_ms: Mutex::new(0),
        }
    }
    pub fn speed(&self) -> f64 {
        self.speed
    }
    /// Jump forward in simulated time.
    pub fn advance(&self, secs: f64) {
        if let Ok(mut o) = self.offset_ms.lock() {
            let step = if secs.is_finite() { (secs * 1000.0).clamp(0.0, MAX_STEP_MS) as i64 } else { 0 };
            *o = o.saturating_add(step);
        }
    }
    /// Real time that `sim_secs` of simulated time take.
    pub fn real_duration(&self, sim_secs: f64) -> std::time::Duration {
        std::time::Duration::try_from_secs_f64((sim_secs / self.speed).max(0.0)).unwrap_or(std::time::Duration::MAX)
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        let elapsed = self.real_start.elapsed().as_secs_f64() * self.speed;
        let offset = self.offset_ms.lock().map(|o| *o).unwrap_or(0);
        shifted(self.sim_start, elapsed * 1000.0 + offset as f64)
    }
}

impl Default for SimClock {
    fn default() -> Self {
        SimClock::new(1.0, Utc::now())
    }
}
