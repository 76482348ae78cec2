//! Plain data shared by every module: servers, flavors, images, networks, volumes,
//! backups, metric series, alerts, events, the cloud scope and the clock.
//! No I/O lives here.

pub mod cron;
pub mod event;
pub mod json;
pub mod metrics;
pub mod names;
pub mod resources;
pub mod sort;
pub mod text;
pub mod time;

pub use event::{Alert, AlertBook, AlertChange, Event, Severity};
pub use metrics::MetricSeries;
pub use resources::*;
pub use time::{Clock, Dur, ManualClock, SystemClock, Timestamp};

pub use names::{APP as META_APP, META_PREFIX};

/// Where a resource lives: `cloud@region/project`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
pub struct CloudScope {
    pub cloud: String,
    pub region: Option<String>,
    pub project: Option<String>,
}

impl CloudScope {
    pub fn new(cloud: impl Into<String>) -> Self {
        CloudScope { cloud: cloud.into(), region: None, project: None }
    }
}

impl std::fmt::Display for CloudScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.cloud)?;
        if let Some(r) = &self.region {
            write!(f, "@{r}")?;
        }
        if let Some(p) = &self.project {
            write!(f, "/{p}")?;
        }
        Ok(())
    }
}
