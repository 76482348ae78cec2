//! Simulated time: a speed factor applied to the wall clock, plus an offset that
//! tests and operators can advance. Lifecycles, workloads and metric timestamps all
//! read this clock; tokens use the wall clock (their lifetime is a real-world
//! security setting).

use crate::domain::{Clock, Timestamp};
use chrono::{Duration as ChronoDuration, Utc};
use std::sync::Mutex;
use std::time::Instant;

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
            *o += (secs * 1000.0) as i64;
        }
    }
    /// Real time that `sim_secs` of simulated time take.
    pub fn real_duration(&self, sim_secs: f64) -> std::time::Duration {
        std::time::Duration::from_secs_f64((sim_secs / self.speed).max(0.0))
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        let elapsed = self.real_start.elapsed().as_secs_f64() * self.speed;
        let offset = self.offset_ms.lock().map(|o| *o).unwrap_or(0);
        self.sim_start + ChronoDuration::milliseconds((elapsed * 1000.0) as i64 + offset)
    }
}

impl Default for SimClock {
    fn default() -> Self {
        SimClock::new(1.0, Utc::now())
    }
}
