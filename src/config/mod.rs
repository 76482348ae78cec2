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
    // An offset inside a multi-byte character counts from that character's start.
    let start = (0..=offset).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    let before = text.get(..start).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The 1-based (line, column) of the key at a dotted path in TOML text:
/// `engine.tick`, `deploy.capacity`, `scaling.metrics.0.max_staleness` (a number
/// indexes an array of tables). Works for `[table]` headers, dotted keys and
/// inline tables alike. `None` when the text does not parse or has no such key.
pub fn toml_position(text: &str, path: &str) -> Option<(usize, usize)> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = root.get_ref();
    let mut at: Option<usize> = None;
    let mut parts = path.split('.').peekable();
    let mut current: Option<&toml::Spanned<DeValue<'_>>> = None;
    while let Some(part) = parts.next() {
        if let Ok(i) = part.parse::<usize>() {
            let Some(DeValue::Array(a)) = current.map(|v| v.get_ref()) else { return None };
            let item = a.get(i)?;
            at = Some(item.span().start);
            current = Some(item);
        } else {
            if let Some(v) = current {
                match v.get_ref() {
                    DeValue::Table(t) => table = t,
                    _ => return None,
                }
            }
            let (k, v) = table.get_key_value(part)?;
            at = Some(k.span().start);
            current = Some(v);
        }
        if parts.peek().is_none() {
            break;
        }
    }
    at.map(|o| line_col(text, o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_keys_in_every_toml_shape() {
        let t = "[engine]\ntick = \"0s\"\n\n[deploy]\ncapacity = { min = 1, max = 2 }\n\n[[scaling.metrics]]\nname = \"cpu\"\n\n[[scaling.metrics]]\nname = \"memory\"\nmax_staleness = \"0s\"\n[a]\nb.c = 1\n";
        assert_eq!(toml_position(t, "engine.tick"), Some((2, 1)));
        assert_eq!(toml_position(t, "deploy.capacity"), Some((5, 1)));
        assert_eq!(toml_position(t, "deploy.capacity.max"), Some((5, 23)));
        assert_eq!(toml_position(t, "scaling.metrics.1.max_staleness"), Some((12, 1)));
        assert_eq!(toml_position(t, "scaling.metrics.1"), Some((10, 1)));
        assert_eq!(toml_position(t, "a.b.c"), Some((14, 3)));
        assert_eq!(toml_position(t, "engine.nope"), None);
        assert_eq!(toml_position("[broken", "a"), None);
    }
}
