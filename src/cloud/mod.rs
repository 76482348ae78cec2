//! The OpenStack HTTP client: a session (Keystone v3 auth, catalog, token refresh),
//! one module per service, lenient wire models and error classification.

pub mod compute;
pub mod error;
pub mod image;
pub mod lenient;
pub mod metric;
pub mod network;
pub mod session;
pub mod volume;
pub mod wire;

pub use error::{ApiError, ErrorKind, Result};
pub use session::{Req, Response, Session};

use crate::config::CloudConfig;
use std::sync::Arc;

/// A connected cloud: a cheap handle to its session and services.
#[derive(Debug, Clone)]
pub struct Client {
    pub session: Arc<Session>,
}

impl Client {
    pub fn new(cloud: CloudConfig) -> Result<Client> {
        Ok(Client { session: Arc::new(Session::new(cloud)?) })
    }
    pub fn with_timeout(cloud: CloudConfig, timeout: std::time::Duration) -> Result<Client> {
        Ok(Client { session: Arc::new(Session::with_timeout(cloud, timeout)?) })
    }
    pub fn name(&self) -> &str {
        self.session.cloud_name()
    }
    pub fn compute(&self) -> compute::Compute<'_> {
        compute::Compute(&self.session)
    }
    pub fn image(&self) -> image::ImageService<'_> {
        image::ImageService(&self.session)
    }
    pub fn network(&self) -> network::NetworkService<'_> {
        network::NetworkService(&self.session)
    }
    pub fn volume(&self) -> volume::VolumeService<'_> {
        volume::VolumeService(&self.session)
    }
    pub fn metric(&self) -> metric::MetricService<'_> {
        metric::MetricService(&self.session)
    }
}

/// Split a JSON page into raw objects without building a tree for each.
pub(crate) fn raw_items(
    body: &[u8],
    key: &str,
) -> std::result::Result<(Vec<Box<serde_json::value::RawValue>>, serde_json::Value), serde_json::Error> {
    use serde_json::value::RawValue;
    let map: std::collections::BTreeMap<String, Box<RawValue>> = serde_json::from_slice(body)?;
    let mut items = Vec::new();
    let mut rest = serde_json::Map::new();
    for (k, v) in map {
        if k == key {
            items = serde_json::from_slice(v.get().as_bytes())?;
        } else {
            rest.insert(k, serde_json::from_slice(v.get().as_bytes()).unwrap_or(serde_json::Value::Null));
        }
    }
    Ok((items, serde_json::Value::Object(rest)))
}
