//! Where stackpilot keeps things (XDG base directories):
//! config in `$XDG_CONFIG_HOME/stackpilot/` (default `~/.config/stackpilot/`),
//! policies in `<config>/policies/`, state (SQLite store, logs) in
//! `$XDG_STATE_HOME/stackpilot/` (default `~/.local/state/stackpilot/`).

use std::path::PathBuf;

/// A view of the process environment, so lookups can be tested without touching
/// the real one.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;
    fn vars(&self) -> Vec<(String, String)>;
    fn cwd(&self) -> Option<PathBuf>;
}

/// The real environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
    fn vars(&self) -> Vec<(String, String)> {
        std::env::vars().collect()
    }
    fn cwd(&self) -> Option<PathBuf> {
        std::env::current_dir().ok()
    }
}

/// A fixed environment (tests).
#[derive(Debug, Clone, Default)]
pub struct MapEnv {
    pub vars: std::collections::BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
}

impl MapEnv {
    pub fn with(mut self, k: &str, v: impl Into<String>) -> Self {
        self.vars.insert(k.to_string(), v.into());
        self
    }
}

impl Env for MapEnv {
    fn var(&self, key: &str) -> Option<String> {
        self.vars.get(key).cloned().filter(|v| !v.is_empty())
    }
    fn vars(&self) -> Vec<(String, String)> {
        self.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
    fn cwd(&self) -> Option<PathBuf> {
        self.cwd.clone()
    }
}

pub fn home(env: &dyn Env) -> Option<PathBuf> {
    env.var("HOME").map(PathBuf::from)
}

/// `$XDG_CONFIG_HOME` or `~/.config`.
pub fn config_home(env: &dyn Env) -> Option<PathBuf> {
    env.var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home(env).map(|h| h.join(".config")))
}

/// `$XDG_STATE_HOME` or `~/.local/state`.
pub fn state_home(env: &dyn Env) -> Option<PathBuf> {
    env.var("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home(env).map(|h| h.join(".local").join("state")))
}

/// stackpilot's config directory.
pub fn config_dir(env: &dyn Env) -> PathBuf {
    config_home(env).unwrap_or_else(|| PathBuf::from(".")).join("stackpilot")
}

/// The default `config.toml` (`STACKPILOT_CONFIG` overrides it).
pub fn config_file(env: &dyn Env) -> PathBuf {
    env.var("STACKPILOT_CONFIG").map(PathBuf::from).unwrap_or_else(|| config_dir(env).join("config.toml"))
}

/// The default policies directory.
pub fn policies_dir(env: &dyn Env) -> PathBuf {
    config_dir(env).join("policies")
}

/// stackpilot's state directory (SQLite store, logs).
pub fn state_dir(env: &dyn Env) -> PathBuf {
    env.var("STACKPILOT_STATE_DIR")
        .map(PathBuf::from)
        .or_else(|| state_home(env).map(|s| s.join("stackpilot")))
        .unwrap_or_else(|| PathBuf::from(".stackpilot-state"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_variables_win_over_home() {
        let env = MapEnv::default().with("HOME", "/home/op");
        assert_eq!(config_file(&env), PathBuf::from("/home/op/.config/stackpilot/config.toml"));
        assert_eq!(state_dir(&env), PathBuf::from("/home/op/.local/state/stackpilot"));
        let env = env.with("XDG_CONFIG_HOME", "/cfg").with("XDG_STATE_HOME", "/st");
        assert_eq!(policies_dir(&env), PathBuf::from("/cfg/stackpilot/policies"));
        assert_eq!(state_dir(&env), PathBuf::from("/st/stackpilot"));
        let env = env.with("XDG_CONFIG_HOME", "relative/not/allowed");
        assert_eq!(config_dir(&env), PathBuf::from("/home/op/.config/stackpilot"));
    }
}
