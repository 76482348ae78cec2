//! Lenient wire models: every field optional or defaulted, unknown fields ignored,
//! `:`-keys renamed, timestamps in any shape. Each converts into a `domain` type.

pub mod cinder;
pub mod glance;
pub mod gnocchi;
pub mod heat;
pub mod keystone;
pub mod neutron;
pub mod nova;

use serde::Deserialize;

/// Why an item of a listing (or an answer) does not decode.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("a {0} without an id")]
    NoId(&'static str),
    #[error("does not decode")]
    Unreadable,
}

/// A `{"href", "rel"}` link (`servers_links`, `volumes_links`, ...).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Link {
    pub href: String,
    pub rel: String,
}

/// The `next` link of a page, if any.
pub fn next_link(links: &[Link]) -> Option<&str> {
    links.iter().find(|l| l.rel == "next").map(|l| l.href.as_str())
}
