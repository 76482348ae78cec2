//! stackpilot: a keyboard-driven terminal operations console for OpenStack, with a
//! policy engine that keeps applications deployed, scaled, recovered and backed up,
//! and an embedded OpenStack simulator.
//!
//! Module walls (see DESIGN.md): `engine`, `inventory`, `cloud`, `policy` and `store`
//! never import `tui`; `sim` never imports `cloud`, `engine` or `tui`.

// Errors are cold paths and carry what an operator needs (cloud, service, request
// id, message); their size is not worth boxing them.
#![allow(clippy::result_large_err)]
// The JSON Schema of policies is one large `json!` literal.
#![recursion_limit = "256"]

pub mod cli;
pub mod cloud;
pub mod config;
pub mod domain;
pub mod engine;
pub mod inventory;
pub mod policy;
pub mod sim;
pub mod store;
pub mod tui;
