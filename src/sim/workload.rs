//! Application traffic: each app (servers carrying `stackpilot:app` metadata) has a
//! load in vCPU-equivalents that follows a profile (steady, diurnal, spike). The load
//! is shared by the app's ACTIVE servers, so adding servers lowers each one's CPU —
//! the autoscaler has a real loop to close.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Profile {
    Steady,
    /// A daily wave: `base × (1 + amplitude × sin(…))`, peaking at `peak_hour` UTC.
    Diurnal {
        amplitude: f64,
        peak_hour: f64,
    },
    /// `factor × base` for `duration_secs` every `every_secs`, first at `start_secs`
    /// (simulated seconds since the epoch of the world).
    Spike {
        every_secs: f64,
        duration_secs: f64,
        factor: f64,
        start_secs: f64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppTraffic {
    pub name: String,
    pub profile: Profile,
    /// Work in vCPU-equivalents at factor 1.
    pub base_load: f64,
    /// Network bytes/s per vCPU-equivalent of work.
    pub bytes_per_core: f64,
    /// Operator override of the load factor (`/_sim/apps/{name}/load`).
    pub override_factor: Option<f64>,
}

impl AppTraffic {
    pub fn load_at(&self, t: i64, epoch: i64) -> f64 {
        let f = match &self.profile {
            Profile::Steady => 1.0,
            Profile::Diurnal { amplitude, peak_hour } => {
                let h = (t.rem_euclid(86_400)) as f64 / 3600.0;
                1.0 + amplitude * (std::f64::consts::TAU * (h - peak_hour) / 24.0).cos()
            }
            Profile::Spike { every_secs, duration_secs, factor, start_secs } => {
                let since = (t - epoch) as f64 - start_secs;
                if since >= 0.0 && every_secs.max(1.0) > 0.0 && since.rem_euclid(every_secs.max(1.0)) < *duration_secs {
                    *factor
                } else {
                    1.0
                }
            }
        };
        self.base_load * f.max(0.0) * self.override_factor.unwrap_or(1.0)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Workload {
    pub apps: BTreeMap<String, AppTraffic>,
    /// Unix seconds the profiles count from.
    pub epoch: i64,
    /// Failures that strike an app's servers on a schedule.
    #[serde(default)]
    pub incidents: Vec<Incident>,
}

/// What an incident does to the server it strikes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IncidentKind {
    /// The guest powers off (SHUTOFF).
    Stop,
    /// The hypervisor reports a crash (ERROR).
    Error,
    /// The application stops answering its health endpoint (a soft reboot mends it).
    Hang,
}

/// Every `every_secs` simulated seconds from `start_secs` after the epoch, the
/// oldest running server of `app` (servers carrying `stackpilot:app`) is struck.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Incident {
    pub app: String,
    pub kind: IncidentKind,
    pub every_secs: f64,
    pub start_secs: f64,
    /// The occurrence last carried out.
    #[serde(default)]
    pub fired: Option<i64>,
}

impl Incident {
    /// The occurrence due at `t` (unix seconds) that was not carried out yet.
    pub fn due(&self, t: i64, epoch: i64) -> Option<i64> {
        let since = (t - epoch) as f64 - self.start_secs;
        if since < 0.0 {
            return None;
        }
        let n = (since / self.every_secs.max(1.0)).floor() as i64;
        (self.fired != Some(n)).then_some(n)
    }
}

/// Deterministic noise in [-1, 1] from a server id and a time.
fn noise(id: &str, t: i64) -> f64 {
    let mut h: u64 = 1469598103934665603;
    for b in id.bytes().chain(t.to_le_bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(1099511628211);
    }
    (h % 2001) as f64 / 1000.0 - 1.0
}

impl Workload {
    /// (CPU utilisation 0..1, network bytes/s) of one running server at time `t`.
    /// `active` is the number of ACTIVE servers of its app.
    pub fn server_load(&self, app: Option<&str>, id: &str, active: u32, vcpus: u32, t: i64) -> (f64, f64) {
        match app.and_then(|a| self.apps.get(a)) {
            Some(a) => {
                let load = a.load_at(t, self.epoch) / active.max(1) as f64;
                let util = (load / vcpus.max(1) as f64 + 0.02 * noise(id, t)).clamp(0.01, 1.0);
                (util, load * a.bytes_per_core * (1.0 + 0.05 * noise(id, t + 1)))
            }
            None => {
                // Idle servers: a few percent, steady per server.
                let base = 0.03 + 0.02 * (noise(id, 0) + 1.0);
                ((base + 0.005 * noise(id, t)).clamp(0.005, 1.0), 2_000.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(profile: Profile) -> AppTraffic {
        AppTraffic { name: "web".into(), profile, base_load: 2.0, bytes_per_core: 1e5, override_factor: None }
    }

    #[test]
    fn spike_raises_load_in_its_window_only() {
        let a = app(Profile::Spike { every_secs: 3600.0, duration_secs: 600.0, factor: 4.0, start_secs: 300.0 });
        assert_eq!(a.load_at(100, 0), 2.0);
        assert_eq!(a.load_at(400, 0), 8.0);
        assert_eq!(a.load_at(1000, 0), 2.0);
        assert_eq!(a.load_at(3600 + 400, 0), 8.0);
    }

    #[test]
    fn more_servers_mean_less_cpu_each() {
        let mut w = Workload::default();
        w.apps.insert("web".into(), app(Profile::Steady));
        let (u2, _) = w.server_load(Some("web"), "a", 2, 1, 60);
        let (u4, _) = w.server_load(Some("web"), "a", 4, 1, 60);
        assert!(u2 > 0.9 && u4 < 0.6 && u4 > 0.4, "{u2} {u4}");
    }

    #[test]
    fn diurnal_peaks_at_its_hour() {
        let a = app(Profile::Diurnal { amplitude: 0.5, peak_hour: 14.0 });
        assert!((a.load_at(14 * 3600, 0) - 3.0).abs() < 1e-9);
        assert!((a.load_at(2 * 3600, 0) - 1.0).abs() < 1e-9);
    }
}
