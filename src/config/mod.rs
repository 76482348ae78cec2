//! Configuration: stackpilot's own `config.toml`, the `clouds.yaml` / `secure.yaml` /
//! `OS_*` cloud definitions (found and merged exactly as the `openstack` CLI does),
//! and the XDG paths of config and state.

pub mod clouds;
pub mod paths;
pub mod settings;

pub use clouds::{AuthMethod, CloudConfig, CloudsFile, ConfigError, Interface, Secret};
pub use settings::Settings;

/// Turn a byte offset into 1-based (line, column).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |i| offset - i - 1) + 1;
    (line, col)
}
