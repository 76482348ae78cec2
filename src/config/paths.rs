//! Where stackpilot keeps things (XDG base directories):
//! config in `$XDG_CONFIG_HOME/stackpilot/` (default `~/.config/stackpilot/`),
//! policies in `<config>/policies/`, state (SQLite store, logs) in
//! `$XDG_STATE_HOME/stackpilot/` (default `~/.local/state/stackpilot/`).

use std::path::{Path, PathBuf};

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

/// Create a directory (and its parents) private to the user (0700). One that
/// exists is made private too when this user owns it and it is not a shared
/// place (a sticky directory such as /tmp): the state directory holds revisions
/// whose user data may carry secrets, crash reports and logs.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        if !dir.is_dir() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
            return std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let meta = std::fs::metadata(dir)?;
        let mode = meta.permissions().mode();
        if mode & 0o077 == 0 {
            return Ok(());
        }
        // Who we are, without libc: the owner of a file we just made.
        let probe = dir.join(format!(".stackpilot-owner-{}", std::process::id()));
        let me = std::fs::File::create(&probe).and_then(|f| f.metadata()).map(|m| m.uid());
        std::fs::remove_file(&probe).ok();
        if me.is_ok_and(|uid| uid == meta.uid()) && mode & 0o1000 == 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o7700))?;
        } else {
            tracing::warn!("{} is open to other users and not ours to change: `chmod 700` it", dir.display());
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Make a file private to the user (0600).
pub fn private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Write a file that only the user can read (created 0600, never readable by
/// others even for a moment), in a private directory.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_dir(dir)?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    private_file(path)?;
    f.write_all(bytes)
}

/// Read a regular file (symlinks followed) of at most `max` bytes. A FIFO, a
/// device or a directory is refused without being opened for reading, and an
/// endless file stops at the limit: nothing a path names can hang or exhaust us.
pub fn read_regular(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file (a FIFO, a device or a directory)"));
    }
    if meta.len() > max {
        return Err(Error::new(ErrorKind::FileTooLarge, format!("{} bytes: at most {max} are read", meta.len())));
    }
    let mut buf = Vec::new();
    std::fs::File::open(path)?.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(Error::new(ErrorKind::FileTooLarge, format!("more than {max} bytes")));
    }
    Ok(buf)
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
