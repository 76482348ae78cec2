//! Keystone v3 token responses and catalogs.

use crate::cloud::lenient;
use crate::domain::Timestamp;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct TokenBody {
    pub token: TokenInfo,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Named {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct User {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    pub domain: Option<Named>,
    #[serde(deserialize_with = "lenient::ts")]
    pub password_expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Project {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    pub domain: Option<Named>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ApplicationCredential {
    pub id: Option<String>,
    pub name: Option<String>,
    pub restricted: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TokenInfo {
    #[serde(deserialize_with = "lenient::ts")]
    pub expires_at: Option<Timestamp>,
    #[serde(deserialize_with = "lenient::ts")]
    pub issued_at: Option<Timestamp>,
    #[serde(deserialize_with = "lenient::string_vec")]
    pub methods: Vec<String>,
    #[serde(deserialize_with = "lenient::string_vec")]
    pub audit_ids: Vec<String>,
    pub user: Option<User>,
    pub project: Option<Project>,
    pub domain: Option<Named>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub roles: Vec<Named>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub catalog: Vec<CatalogEntry>,
    pub application_credential: Option<ApplicationCredential>,
    pub is_domain: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct CatalogEntry {
    #[serde(rename = "type")]
    pub service_type: String,
    pub name: Option<String>,
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Endpoint {
    pub id: Option<String>,
    pub interface: String,
    pub region_id: Option<String>,
    pub region: Option<String>,
    pub url: String,
}

impl Endpoint {
    /// `region_id`, else the deprecated `region`.
    pub fn region(&self) -> &str {
        self.region_id.as_deref().or(self.region.as_deref()).unwrap_or("")
    }
}

/// `GET /v3/auth/catalog`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CatalogBody {
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub catalog: Vec<CatalogEntry>,
}
