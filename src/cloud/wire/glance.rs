//! Glance v2 images: unwrapped objects with arbitrary extra properties at top level.

use crate::cloud::lenient;
use crate::domain::{self, Timestamp};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ImagesPage {
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub images: Vec<WImage>,
    pub next: Option<String>,
    pub first: Option<String>,
    pub schema: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WImage {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub status: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub visibility: Option<String>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub protected: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub size: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub virtual_size: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub min_disk: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub min_ram: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub disk_format: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub container_format: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub owner: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub checksum: Option<String>,
    #[serde(deserialize_with = "lenient::ts")]
    pub created_at: Option<Timestamp>,
    #[serde(deserialize_with = "lenient::ts")]
    pub updated_at: Option<Timestamp>,
    #[serde(deserialize_with = "lenient::string_vec")]
    pub tags: Vec<String>,
    #[serde(rename = "self", deserialize_with = "lenient::opt_string")]
    pub self_link: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub file: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl WImage {
    pub fn into_domain(self) -> domain::Image {
        let properties = self
            .extra
            .iter()
            .filter(|(k, _)| k.as_str() != "schema")
            .filter_map(|(k, v)| lenient::value_to_string(v).map(|s| (k.clone(), s)))
            .collect();
        domain::Image {
            id: self.id,
            name: self.name,
            status: self.status,
            visibility: self.visibility,
            size: self.size,
            min_disk: self.min_disk,
            min_ram: self.min_ram,
            disk_format: self.disk_format,
            created_at: self.created_at,
            tags: self.tags,
            properties,
        }
    }
}
