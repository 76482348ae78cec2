//! Policies: one TOML file per application (`[app]`, `[deploy]`, `[readiness]`,
//! `[scaling]`), parsed strictly (unknown keys and wrong types are errors with
//! file:line:col and the expected form), validated (capacity bounds; names that
//! must resolve on the cloud), hashed into launch-spec revisions, and described as
//! a JSON Schema for editors.

pub mod backup;
pub mod edit;
pub mod model;
pub mod placement;
pub mod recovery;
pub mod rollout;
pub mod scaling;
pub mod schema;
pub mod stages;
pub mod validate;

pub use model::*;
pub use validate::{resolve, CloudCatalog, ResolvedSpec};
