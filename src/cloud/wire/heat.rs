//! Heat v1 stacks (list and show only: stackpilot reads stacks, it does not drive them).

use super::Link;
use crate::cloud::lenient;
use crate::domain::Timestamp;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Stack {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub stack_name: String,
    /// `<ACTION>_<STATE>`, e.g. `CREATE_COMPLETE`.
    #[serde(deserialize_with = "lenient::string")]
    pub stack_status: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stack_status_reason: Option<String>,
    #[serde(deserialize_with = "lenient::ts")]
    pub creation_time: Option<Timestamp>,
    #[serde(deserialize_with = "lenient::ts")]
    pub updated_time: Option<Timestamp>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub description: Option<String>,
    #[serde(deserialize_with = "lenient::string_vec")]
    pub tags: Vec<String>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub links: Vec<Link>,
    pub parameters: Option<Value>,
    pub outputs: Option<Value>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub disable_rollback: Option<bool>,
}

impl Stack {
    /// (action, state) of `stack_status`.
    pub fn action_state(&self) -> (&str, &str) {
        match self.stack_status.split_once('_') {
            Some((a, s)) => (a, s),
            None => (self.stack_status.as_str(), ""),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StacksPage {
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub stacks: Vec<Stack>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StackBody {
    pub stack: Stack,
}
