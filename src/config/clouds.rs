//! `clouds.yaml`, `secure.yaml` and `OS_*` variables, resolved the way the
//! `openstack` CLI (openstacksdk's config loader) resolves them.
//!
//! Files: the first `clouds.{yaml,yml,json}` found in `$OS_CLIENT_CONFIG_FILE`, `./`,
//! `$XDG_CONFIG_HOME/openstack/`, `~/.config/openstack/`, `/etc/xdg/openstack/`,
//! `/etc/openstack/` is used (files are not merged with each other); the first
//! `secure.{yaml,yml,json}` found in the same places (`$OS_CLIENT_SECURE_FILE` first)
//! is deep-merged over it. Keys accept `-` or `_`.
//!
//! Which cloud: `--cloud NAME`, else `OS_CLOUD`, else the `envvars` cloud made of
//! `OS_*` variables (renamed by `OS_CLOUD_NAME`) when any is set, else the only cloud
//! in the file.
//!
//! Precedence of values for the selected cloud (one rule, as python-openstackclient
//! applies it): command-line flags > `OS_*` variables > `secure.yaml` > `clouds.yaml`.
//! `OS_*` variables only ever apply to the selected cloud, never to the other clouds a
//! multi-cloud console shows.

use super::paths::{self, Env};
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A secret (password, application credential secret, token). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A Keystone domain given by id or by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DomainRef {
    pub id: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    pub id: Option<String>,
    pub name: Option<String>,
    pub domain: DomainRef,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Project { id: Option<String>, name: Option<String>, domain: DomainRef },
    Domain(DomainRef),
    System,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    Password { user: UserRef, password: Secret, scope: Scope },
    ApplicationCredential { id: Option<String>, name: Option<String>, user: Option<UserRef>, secret: Secret },
    Token { token: Secret, scope: Scope },
}

impl AuthMethod {
    pub fn kind(&self) -> &'static str {
        match self {
            AuthMethod::Password { .. } => "password",
            AuthMethod::ApplicationCredential { .. } => "v3applicationcredential",
            AuthMethod::Token { .. } => "token",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interface {
    #[default]
    Public,
    Internal,
    Admin,
}

impl Interface {
    pub fn parse(s: &str) -> Option<Interface> {
        let s = s.trim().to_ascii_lowercase();
        let s = s.strip_suffix("url").unwrap_or(&s);
        match s {
            "public" => Some(Interface::Public),
            "internal" => Some(Interface::Internal),
            "admin" => Some(Interface::Admin),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Interface::Public => "public",
            Interface::Internal => "internal",
            Interface::Admin => "admin",
        }
    }
}

/// Where a cloud's settings came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudSource {
    File { clouds: PathBuf, secure: Option<PathBuf>, env_overrides: Vec<String> },
    Env,
}

impl fmt::Display for CloudSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloudSource::Env => f.write_str("environment (OS_* variables)"),
            CloudSource::File { clouds, secure, env_overrides } => {
                write!(f, "{}", clouds.display())?;
                if let Some(s) = secure {
                    write!(f, " + {}", s.display())?;
                }
                if !env_overrides.is_empty() {
                    write!(f, " + {}", env_overrides.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

/// One cloud, fully resolved and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudConfig {
    pub name: String,
    pub source: CloudSource,
    pub auth_url: String,
    pub auth: AuthMethod,
    pub region: Option<String>,
    pub regions: Vec<String>,
    pub interface: Interface,
    pub verify: bool,
    pub cacert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Service type (`compute`, `block-storage`, ...) → endpoint URL.
    pub endpoint_overrides: BTreeMap<String, String>,
}

/// A configuration problem, printed on one line: where, what, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub col: Option<usize>,
    pub key: Option<String>,
    pub message: String,
    pub fix: String,
}

impl ConfigError {
    fn new(message: impl Into<String>, fix: impl Into<String>) -> Self {
        ConfigError { file: None, line: None, col: None, key: None, message: message.into(), fix: fix.into() }
    }
    fn at(mut self, file: Option<&Path>, line: Option<usize>) -> Self {
        self.file = file.map(Path::to_path_buf);
        self.line = line;
        self
    }
    fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(l) = self.line {
                write!(f, ":{l}")?;
                if let Some(c) = self.col {
                    write!(f, ":{c}")?;
                }
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)?;
        if let Some(k) = &self.key {
            write!(f, " (key `{k}`)")?;
        }
        if !self.fix.is_empty() {
            write!(f, "; {}", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A parsed YAML file with its text kept for error positions.
#[derive(Debug, Clone)]
struct YamlFile {
    path: PathBuf,
    text: String,
    clouds: Mapping,
}

/// Everything that defines clouds on this machine: the clouds file, the secure
/// file, and the `OS_*` variables.
#[derive(Debug, Clone, Default)]
pub struct CloudsFile {
    clouds: Option<YamlFile>,
    secure: Option<YamlFile>,
    /// `OS_*` settings (keys without the prefix, lower case), selectors removed.
    env_settings: BTreeMap<String, String>,
    env_cloud_name: String,
    env_cloud_exists: bool,
    os_cloud: Option<String>,
    os_region: Option<String>,
    /// `~` in file settings (cacert, cert, key).
    home: Option<PathBuf>,
}

const CLOUD_FILE_NAMES: [&str; 3] = ["clouds.yaml", "clouds.yml", "clouds.json"];
const SECURE_FILE_NAMES: [&str; 3] = ["secure.yaml", "secure.yml", "secure.json"];
const ENV_SELECTORS: [&str; 5] = ["cloud", "region_name", "client_config_file", "client_secure_file", "cloud_name"];
/// Keys that belong under `auth:` (openstacksdk moves them there).
const AUTH_KEYS: [&str; 20] = [
    "auth_url",
    "username",
    "user_id",
    "password",
    "project_name",
    "project_id",
    "project_domain_name",
    "project_domain_id",
    "user_domain_name",
    "user_domain_id",
    "domain_name",
    "domain_id",
    "application_credential_id",
    "application_credential_name",
    "application_credential_secret",
    "token",
    "system_scope",
    "tenant_name",
    "tenant_id",
    "default_domain",
];
pub const SUPPORTED_AUTH_TYPES: &str = "password, v3password, v3applicationcredential, token, v3token";

/// The directories searched, in order (without the `OS_CLIENT_*_FILE` override).
pub fn search_dirs(env: &dyn Env) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(cwd) = env.cwd() {
        dirs.push(cwd);
    }
    if let Some(c) = paths::config_home(env) {
        dirs.push(c.join("openstack"));
    }
    if let Some(h) = paths::home(env) {
        dirs.push(h.join(".config").join("openstack"));
    }
    dirs.push(PathBuf::from("/etc/xdg/openstack"));
    dirs.push(PathBuf::from("/etc/openstack"));
    dirs.dedup();
    dirs
}

fn candidates(env: &dyn Env, override_var: &str, names: &[&str]) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = env.var(override_var) {
        v.push(PathBuf::from(p));
    }
    for d in search_dirs(env) {
        for n in names {
            v.push(d.join(n));
        }
    }
    v
}

fn normalize_keys(v: Value) -> Value {
    match v {
        Value::Mapping(m) => Value::Mapping(
            m.into_iter()
                .map(|(k, v)| {
                    let k = match k {
                        Value::String(s) => Value::String(s.replace('-', "_")),
                        other => other,
                    };
                    (k, normalize_keys(v))
                })
                .collect(),
        ),
        Value::Sequence(s) => Value::Sequence(s.into_iter().map(normalize_keys).collect()),
        other => other,
    }
}

fn deep_merge(base: &mut Mapping, over: &Mapping) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Mapping(b)), Value::Mapping(o)) => deep_merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

fn load_yaml(path: &Path) -> Result<Option<YamlFile>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // openstacksdk skips files it may not read; so do we.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(None),
        Err(e) => return Err(ConfigError::new(format!("cannot read: {e}"), "check the file").at(Some(path), None)),
    };
    let value: Value = serde_yaml::from_str(&text).map_err(|e| {
        let (line, col) = e.location().map_or((None, None), |l| (Some(l.line()), Some(l.column())));
        let mut msg = e.to_string();
        // serde_yaml appends " at line X column Y"; the position is printed in front.
        if let Some(i) = msg.find(" at line ") {
            msg.truncate(i);
        }
        // The parser quotes what it read (`invalid type: string "…"`, a duplicate
        // key): in a file of passwords that may be one. The position says where.
        let msg = redact_quoted(&msg);
        let mut err = ConfigError::new(
            format!("not valid YAML: {msg}"),
            "fix the syntax at that position (indentation, a missing ':' or an unclosed quote)",
        )
        .at(Some(path), line);
        err.col = col;
        err
    })?;
    let clouds = match &value {
        Value::Null => Mapping::new(),
        Value::Mapping(m) => match m.get("clouds") {
            None | Some(Value::Null) => Mapping::new(),
            // Setting keys accept `-` or `_`; cloud names are kept as written.
            Some(Value::Mapping(c)) => c.iter().map(|(k, v)| (k.clone(), normalize_keys(v.clone()))).collect(),
            Some(_) => {
                return Err(ConfigError::new(
                    "`clouds` must be a mapping of cloud names to settings",
                    "write `clouds:` followed by indented `<name>:` entries",
                )
                .at(Some(path), find_key_line(&text, &["clouds"]))
                .key("clouds"))
            }
        },
        _ => {
            return Err(ConfigError::new(
                "the top level must be a mapping with a `clouds` key",
                "start the file with `clouds:`",
            )
            .at(Some(path), Some(1)))
        }
    };
    Ok(Some(YamlFile { path: path.to_path_buf(), text, clouds }))
}

/// Line (1-based) of a nested key in a YAML text, following indentation.
fn find_key_line(text: &str, keys: &[&str]) -> Option<usize> {
    let mut want = 0;
    let mut min_indent: isize = -1;
    let mut found = None;
    for (i, line) in text.lines().enumerate() {
        let Some(key) = keys.get(want).copied() else { break };
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = (line.len() - trimmed.len()) as isize;
        let matches =
            [format!("{key}:"), format!("'{key}':"), format!("\"{key}\":"), format!("{}:", key.replace('_', "-"))]
                .iter()
                .any(|k| trimmed.starts_with(k.as_str()));
        if indent > min_indent && matches {
            found = Some(i + 1);
            min_indent = indent;
            want += 1;
        } else if indent <= min_indent && want > 0 && found.is_some() {
            // Left the block of the last matched key without finding the next one.
            break;
        }
    }
    if want == keys.len() {
        found
    } else {
        // Best effort: the deepest key found.
        found
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `s` with the text between double quotes hidden.
fn redact_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut inside = false;
    for c in s.chars() {
        if c == '"' {
            if !inside {
                out.push_str("\"…\"");
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

fn truthy(s: &str) -> bool {
    matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "yes" | "1" | "on")
}

impl CloudsFile {
    /// Find and read the files and variables. A file that exists but cannot be
    /// parsed is an error (it would otherwise be silently ignored).
    pub fn discover(env: &dyn Env) -> Result<CloudsFile, ConfigError> {
        let mut cf = CloudsFile::default();
        for p in candidates(env, "OS_CLIENT_CONFIG_FILE", &CLOUD_FILE_NAMES) {
            if let Some(f) = load_yaml(&p)? {
                cf.clouds = Some(f);
                break;
            }
        }
        for p in candidates(env, "OS_CLIENT_SECURE_FILE", &SECURE_FILE_NAMES) {
            if let Some(f) = load_yaml(&p)? {
                cf.secure = Some(f);
                break;
            }
        }
        cf.load_env(env);
        Ok(cf)
    }

    /// A clouds file given explicitly (used with `--clouds-file` and by tests).
    pub fn from_paths(clouds: &Path, secure: Option<&Path>, env: &dyn Env) -> Result<CloudsFile, ConfigError> {
        let mut cf = CloudsFile { clouds: load_yaml(clouds)?, ..Default::default() };
        if cf.clouds.is_none() {
            return Err(ConfigError::new("file not found", "check the path").at(Some(clouds), None));
        }
        if let Some(s) = secure {
            cf.secure = load_yaml(s)?;
        }
        cf.load_env(env);
        Ok(cf)
    }

    fn load_env(&mut self, env: &dyn Env) {
        self.home = env.var("HOME").map(PathBuf::from);
        self.os_cloud = env.var("OS_CLOUD");
        self.os_region = env.var("OS_REGION_NAME");
        self.env_cloud_name = env.var("OS_CLOUD_NAME").unwrap_or_else(|| "envvars".to_string());
        for (k, v) in env.vars() {
            let Some(rest) = k.strip_prefix("OS_") else { continue };
            if rest.starts_with("TEST") || rest.starts_with("STD") || rest.starts_with("LOG") || v.is_empty() {
                continue;
            }
            let mut key = rest.to_ascii_lowercase();
            key = match key.as_str() {
                "tenant_name" => "project_name".into(),
                "tenant_id" => "project_id".into(),
                "endpoint_type" => "interface".into(),
                _ => key,
            };
            if ENV_SELECTORS.contains(&key.as_str()) {
                if key == "region_name" {
                    self.env_settings.insert(key, v);
                }
                continue;
            }
            self.env_cloud_exists = true;
            self.env_settings.insert(key, v);
        }
    }

    pub fn clouds_path(&self) -> Option<&Path> {
        self.clouds.as_ref().map(|f| f.path.as_path())
    }
    pub fn secure_path(&self) -> Option<&Path> {
        self.secure.as_ref().map(|f| f.path.as_path())
    }

    /// Every cloud name defined (file clouds first, then the env cloud).
    pub fn names(&self) -> Vec<String> {
        // An entry only secure.yaml has that is no mapping is a broken secure file
        // (its "name" may be a password run together): never listed.
        let in_clouds = |k: &Value| self.clouds.as_ref().is_some_and(|f| f.clouds.contains_key(k));
        let mut v: Vec<String> = self
            .merged_clouds()
            .iter()
            .filter(|(k, v)| v.is_mapping() || in_clouds(k))
            .filter_map(|(k, _)| k.as_str().map(String::from))
            .collect();
        if self.env_cloud_exists && !v.contains(&self.env_cloud_name) {
            v.push(self.env_cloud_name.clone());
        }
        v
    }

    fn merged_clouds(&self) -> Mapping {
        let mut m = self.clouds.as_ref().map(|f| f.clouds.clone()).unwrap_or_default();
        if let Some(s) = &self.secure {
            deep_merge(&mut m, &s.clouds);
        }
        m
    }

    /// Which cloud a session uses when none is named on the command line.
    pub fn default_name(&self) -> Result<String, ConfigError> {
        if let Some(c) = &self.os_cloud {
            return Ok(c.clone());
        }
        if self.env_cloud_exists {
            return Ok(self.env_cloud_name.clone());
        }
        let names = self.names();
        match names.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(ConfigError::new(
                "no cloud is configured",
                "create clouds.yaml (see README: `Pointing it at a real cloud`), set OS_AUTH_URL and friends, or run `stackpilot --demo`",
            )
            .at(self.clouds_path(), None)),
            _ => Err(ConfigError::new(
                format!("several clouds are defined ({})", names.join(", ")),
                "choose one with --cloud NAME or OS_CLOUD=NAME",
            )
            .at(self.clouds_path(), None)),
        }
    }

    /// Resolve the selected cloud (`name` from `--cloud`, else the default rule),
    /// with `OS_*` overrides applied.
    pub fn resolve_selected(&self, name: Option<&str>, region_flag: Option<&str>) -> Result<CloudConfig, ConfigError> {
        let name = match name {
            Some(n) => n.to_string(),
            None => self.default_name()?,
        };
        self.resolve_inner(&name, true, region_flag)
    }

    /// Resolve any cloud by name, as written in the files (no `OS_*` overrides unless
    /// it is the env cloud).
    pub fn resolve(&self, name: &str) -> Result<CloudConfig, ConfigError> {
        self.resolve_inner(name, false, None)
    }

    fn resolve_inner(&self, name: &str, selected: bool, region_flag: Option<&str>) -> Result<CloudConfig, ConfigError> {
        let merged = self.merged_clouds();
        let is_env_cloud = self.env_cloud_exists && name == self.env_cloud_name && merged.get(name).is_none();
        let mut settings: BTreeMap<String, String> = BTreeMap::new();
        let mut regions_value: Option<Value> = None;
        let mut env_overrides = Vec::new();
        let file_path = self.clouds_path().map(Path::to_path_buf);
        if is_env_cloud {
            settings = self.env_settings.clone();
        } else {
            let Some(entry) = merged.get(name) else {
                let names = self.names();
                let fix = if names.is_empty() {
                    "no clouds are defined: create clouds.yaml or set OS_* variables".to_string()
                } else {
                    format!("defined clouds: {}", names.join(", "))
                };
                return Err(ConfigError::new(format!("cloud `{name}` is not defined"), fix)
                    .at(self.clouds_path(), None)
                    .key(format!("clouds.{name}")));
            };
            let Value::Mapping(entry) = entry else {
                return Err(ConfigError::new(
                    format!("cloud `{name}` must be a mapping of settings"),
                    "indent its settings (auth:, region_name:, ...) under the name",
                )
                .at(self.clouds_path(), self.line_of(&["clouds", name]))
                .key(format!("clouds.{name}")));
            };
            for (k, v) in entry {
                let Some(k) = k.as_str() else { continue };
                match (k, v) {
                    ("auth", Value::Mapping(auth)) => {
                        for (ak, av) in auth {
                            if let (Some(ak), Some(av)) = (ak.as_str(), scalar(av)) {
                                settings.insert(ak.to_string(), av);
                            }
                        }
                    }
                    ("auth", Value::Null) => {}
                    ("auth", _) => {
                        return Err(ConfigError::new(
                            "`auth` must be a mapping",
                            "indent auth_url, username, password, ... under `auth:`",
                        )
                        .at(self.clouds_path(), self.line_of(&["clouds", name, "auth"]))
                        .key(format!("clouds.{name}.auth")))
                    }
                    ("regions", v) => regions_value = Some(v.clone()),
                    (k, v) => {
                        if let Some(s) = scalar(v) {
                            settings.insert(k.to_string(), s);
                        }
                    }
                }
            }
            if selected {
                for (k, v) in &self.env_settings {
                    if settings.get(k) != Some(v) {
                        env_overrides.push(format!("OS_{}", k.to_ascii_uppercase()));
                    }
                    settings.insert(k.clone(), v.clone());
                }
            }
        }
        // Legacy names.
        for (old, new) in [("tenant_name", "project_name"), ("tenant_id", "project_id"), ("endpoint_type", "interface")]
        {
            if let Some(v) = settings.remove(old) {
                settings.entry(new.to_string()).or_insert(v);
            }
        }
        if selected {
            if let Some(r) = &self.os_region {
                settings.insert("region_name".into(), r.clone());
            }
        }
        if let Some(r) = region_flag {
            settings.insert("region_name".into(), r.to_string());
        }
        let source = if is_env_cloud {
            CloudSource::Env
        } else {
            CloudSource::File {
                clouds: file_path.clone().unwrap_or_default(),
                secure: self.secure_path().map(Path::to_path_buf),
                env_overrides,
            }
        };
        self.build(name, settings, regions_value, source)
    }

    fn line_of(&self, keys: &[&str]) -> Option<usize> {
        self.clouds.as_ref().and_then(|f| find_key_line(&f.text, keys))
    }

    fn err_for(&self, name: &str, source: &CloudSource, key: &str, message: String, fix: String) -> ConfigError {
        match source {
            CloudSource::Env => ConfigError::new(message, fix).key(format!("OS_{}", key.to_ascii_uppercase())),
            CloudSource::File { .. } => {
                let mut path: Vec<&str> = vec!["clouds", name];
                let auth_key = AUTH_KEYS.contains(&key);
                if auth_key {
                    path.push("auth");
                }
                // The key's own line when it is in clouds.yaml, else its block's.
                let block = self.line_of(&path);
                path.push(key);
                let line = self.line_of(&path).or(block);
                let full = if auth_key { format!("clouds.{name}.auth.{key}") } else { format!("clouds.{name}.{key}") };
                ConfigError::new(message, fix).at(self.clouds_path(), line).key(full)
            }
        }
    }

    fn build(
        &self,
        name: &str,
        s: BTreeMap<String, String>,
        regions_value: Option<Value>,
        source: CloudSource,
    ) -> Result<CloudConfig, ConfigError> {
        let get = |k: &str| s.get(k).cloned().filter(|v| !v.is_empty());
        let secure_hint = |k: &str| match &source {
            CloudSource::Env => format!("set OS_{}", k.to_ascii_uppercase()),
            CloudSource::File { clouds, .. } => format!(
                "add `{k}:` under clouds.{name}.auth in secure.yaml (next to {}) or set OS_{}",
                clouds.display(),
                k.to_ascii_uppercase()
            ),
        };
        let auth_type = get("auth_type").unwrap_or_else(|| "password".into()).to_ascii_lowercase();
        let Some(auth_url) = get("auth_url") else {
            return Err(self.err_for(
                name,
                &source,
                "auth_url",
                format!("cloud `{name}` has no auth_url"),
                "add `auth_url: https://keystone.example.com:5000/v3` under auth".into(),
            ));
        };
        let auth_url = format_placeholders(&auth_url, &s);
        let parsed = url::Url::parse(&auth_url);
        if !parsed.as_ref().is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some()) {
            let why = parsed.err().map(|e| format!(" ({e})")).unwrap_or_default();
            // `user:password@host` would show a password: everything before `@` is hidden.
            let shown = match auth_url.rsplit_once('@') {
                Some((before, after)) => {
                    let scheme = before.split_once("://").map(|(s, _)| format!("{s}://")).unwrap_or_default();
                    format!("{scheme}…@{after}")
                }
                None => auth_url.clone(),
            };
            return Err(self.err_for(
                name,
                &source,
                "auth_url",
                format!("auth_url `{shown}` is not an http(s) URL{why}"),
                "write the whole Keystone URL, e.g. `auth_url: https://keystone.example.com:5000/v3`".into(),
            ));
        }
        let domain_default =
            DomainRef { id: get("domain_id").or_else(|| get("default_domain")), name: get("domain_name") };
        let dom = |id_key: &str, name_key: &str| {
            let d = DomainRef { id: get(id_key), name: get(name_key) };
            if d.id.is_none() && d.name.is_none() {
                if domain_default.id.is_none() && domain_default.name.is_none() {
                    DomainRef { id: Some("default".into()), name: None }
                } else {
                    domain_default.clone()
                }
            } else {
                d
            }
        };
        let scope = || -> Option<Scope> {
            if get("project_id").is_some() || get("project_name").is_some() {
                Some(Scope::Project {
                    id: get("project_id"),
                    name: get("project_name"),
                    domain: dom("project_domain_id", "project_domain_name"),
                })
            } else if get("system_scope").is_some() {
                Some(Scope::System)
            } else if domain_default.id.is_some() || domain_default.name.is_some() {
                Some(Scope::Domain(domain_default.clone()))
            } else {
                None
            }
        };
        let no_scope = || {
            self.err_for(
                name,
                &source,
                "project_name",
                format!("cloud `{name}` names no project: a token without a project has no service catalog"),
                "add `project_name:` (or project_id) under auth".into(),
            )
        };
        let auth = match auth_type.as_str() {
            "password" | "v3password" => {
                let user = UserRef {
                    id: get("user_id"),
                    name: get("username"),
                    domain: dom("user_domain_id", "user_domain_name"),
                };
                if user.id.is_none() && user.name.is_none() {
                    return Err(self.err_for(
                        name,
                        &source,
                        "username",
                        format!("cloud `{name}` uses password auth but names no user"),
                        "add `username:` (or user_id) under auth".into(),
                    ));
                }
                let Some(password) = get("password") else {
                    return Err(self.err_for(
                        name,
                        &source,
                        "password",
                        format!("cloud `{name}` uses password auth but has no password"),
                        secure_hint("password"),
                    ));
                };
                AuthMethod::Password { user, password: Secret(password), scope: scope().ok_or_else(no_scope)? }
            }
            "v3applicationcredential" | "applicationcredential" | "v3_application_credential" => {
                let id = get("application_credential_id");
                let cname = get("application_credential_name");
                if id.is_none() && cname.is_none() {
                    return Err(self.err_for(
                        name,
                        &source,
                        "application_credential_id",
                        format!("cloud `{name}` uses an application credential but gives neither its id nor its name"),
                        "add `application_credential_id:` under auth".into(),
                    ));
                }
                let user = if id.is_none() {
                    let u = UserRef {
                        id: get("user_id"),
                        name: get("username"),
                        domain: dom("user_domain_id", "user_domain_name"),
                    };
                    if u.id.is_none() && u.name.is_none() {
                        return Err(self.err_for(
                            name,
                            &source,
                            "user_id",
                            format!("cloud `{name}` names its application credential but not the user who owns it"),
                            "add `user_id:` (or username and user_domain_name) under auth, or use application_credential_id".into(),
                        ));
                    }
                    Some(u)
                } else {
                    None
                };
                let Some(secret) = get("application_credential_secret") else {
                    return Err(self.err_for(
                        name,
                        &source,
                        "application_credential_secret",
                        format!("cloud `{name}` has no application credential secret"),
                        secure_hint("application_credential_secret"),
                    ));
                };
                AuthMethod::ApplicationCredential { id, name: cname, user, secret: Secret(secret) }
            }
            "token" | "v3token" => {
                let Some(token) = get("token") else {
                    return Err(self.err_for(
                        name,
                        &source,
                        "token",
                        format!("cloud `{name}` uses token auth but has no token"),
                        secure_hint("token"),
                    ));
                };
                AuthMethod::Token { token: Secret(token), scope: scope().ok_or_else(no_scope)? }
            }
            other => {
                return Err(self.err_for(
                    name,
                    &source,
                    "auth_type",
                    format!("auth_type `{other}` is not supported"),
                    format!("use one of: {SUPPORTED_AUTH_TYPES}"),
                ))
            }
        };
        // Regions.
        let mut regions: Vec<String> = Vec::new();
        if let Some(v) = &regions_value {
            if let Value::Sequence(seq) = v {
                for r in seq {
                    match r {
                        Value::Mapping(m) => {
                            if let Some(n) = m.get("name").and_then(scalar) {
                                regions.push(n);
                            }
                        }
                        other => {
                            if let Some(n) = scalar(other) {
                                regions.push(n);
                            }
                        }
                    }
                }
            } else if let Some(sv) = scalar(v) {
                regions.extend(sv.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()));
            }
        }
        let mut region = None;
        if let Some(r) = get("region_name") {
            let listed: Vec<String> = r.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect();
            if regions.is_empty() && listed.len() > 1 {
                regions = listed.clone();
            }
            region = listed.first().cloned();
        }
        if region.is_none() {
            region = regions.first().cloned();
        }
        if let (Some(r), false) = (&region, regions.is_empty()) {
            if !regions.contains(r) {
                return Err(self.err_for(
                    name,
                    &source,
                    "region_name",
                    format!("region `{r}` is not one of the regions of cloud `{name}` ({})", regions.join(", ")),
                    "region names are case sensitive; pick one of the listed regions".into(),
                ));
            }
        }
        let interface = match get("interface") {
            None => Interface::Public,
            Some(i) => Interface::parse(&i).ok_or_else(|| {
                self.err_for(
                    name,
                    &source,
                    "interface",
                    format!("interface `{i}` is not public, internal or admin"),
                    "use `interface: public` (or internal/admin)".into(),
                )
            })?,
        };
        let insecure = get("insecure").map(|v| truthy(&v)).unwrap_or(false);
        let verify_setting = get("verify");
        let mut verify = !insecure;
        let mut cacert = get("cacert").map(|p| ("cacert", expand_tilde(&p, self)));
        if let Some(v) = verify_setting {
            if v.eq_ignore_ascii_case("false") || v == "0" || v.eq_ignore_ascii_case("no") {
                verify = false;
            } else if !truthy(&v) {
                // `verify` may also hold a CA bundle path.
                cacert.get_or_insert(("verify", expand_tilde(&v, self)));
            }
        }
        if !verify {
            cacert = None;
        }
        let pem = |key: &str, path: &Path, what: &str, marker: &str, fix: &str| -> Result<(), ConfigError> {
            // A bundle is a few hundred KiB at most; a FIFO or /dev/zero is refused.
            let problem = match paths::read_regular(path, 16 << 20) {
                Err(e) => Some(format!("{what} `{}` cannot be read: {e}", path.display())),
                Ok(t) if !String::from_utf8_lossy(&t).contains(marker) => {
                    Some(format!("{what} `{}` is not a PEM file", path.display()))
                }
                Ok(_) => None,
            };
            match problem {
                Some(m) => Err(self.err_for(name, &source, key, m, fix.to_string())),
                None => Ok(()),
            }
        };
        if let Some((key, p)) = &cacert {
            let fix = match *key {
                "verify" => "`verify` is true, false or the path of a CA bundle (PEM)",
                _ => "point it at the PEM file of your cloud's CA, or remove it to trust the system's CAs",
            };
            pem(key, p, "the CA bundle", "-----BEGIN CERTIFICATE-----", fix)?;
        }
        let client_cert = get("cert").map(|p| expand_tilde(&p, self));
        let client_key = get("key").map(|p| expand_tilde(&p, self));
        if let Some(p) = &client_cert {
            pem("cert", p, "the client certificate", "-----BEGIN", "point `cert` at your client certificate (PEM)")?;
        }
        if let Some(p) = &client_key {
            pem("key", p, "the client key", "-----BEGIN", "point `key` at the private key of `cert` (PEM)")?;
        }
        let cacert = cacert.map(|(_, p)| p);
        let mut endpoint_overrides = BTreeMap::new();
        for (k, v) in &s {
            if let Some(svc) = k.strip_suffix("_endpoint_override") {
                endpoint_overrides.insert(canonical_service_type(&svc.replace('_', "-")).to_string(), v.clone());
            }
        }
        Ok(CloudConfig {
            name: name.to_string(),
            source,
            auth_url,
            auth,
            region,
            regions,
            interface,
            verify,
            cacert,
            client_cert,
            client_key,
            endpoint_overrides,
        })
    }
}

fn expand_tilde(p: &str, cf: &CloudsFile) -> PathBuf {
    match (p.strip_prefix("~/"), &cf.home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(p),
    }
}

/// `auth_url` may contain `{key}` placeholders filled from the other settings.
fn format_placeholders(url: &str, s: &BTreeMap<String, String>) -> String {
    let mut out = url.to_string();
    for (k, v) in s {
        if k == "password" || k.ends_with("secret") || k == "token" {
            continue;
        }
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// The official service type for the names and aliases found in catalogs and in
/// `<service>_endpoint_override` keys.
pub fn canonical_service_type(s: &str) -> &str {
    match s {
        "volume" | "volumev2" | "volumev3" | "block-store" | "block-storage" | "block_storage" => "block-storage",
        "alarming" | "alarm" => "alarm",
        "metric" | "gnocchi" => "metric",
        "orchestration" | "heat" => "orchestration",
        "compute" | "nova" => "compute",
        "image" | "glance" => "image",
        "network" | "neutron" => "network",
        "identity" | "keystone" => "identity",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_messages_never_repeat_what_they_quote() {
        assert_eq!(
            redact_quoted(r#"duplicate entry with key "p file-passroject_name""#),
            r#"duplicate entry with key "…""#
        );
        assert_eq!(
            redact_quoted(r#"invalid type: string "s3cret", expected a map"#),
            r#"invalid type: string "…", expected a map"#
        );
        assert_eq!(redact_quoted("no quotes"), "no quotes");
    }

    #[test]
    fn a_broken_secure_entry_is_not_a_cloud() {
        let dir = tempfile::tempdir().unwrap();
        let clouds = dir.path().join("clouds.yaml");
        let secure = dir.path().join("secure.yaml");
        std::fs::write(
            &clouds,
            "clouds:\n  prod:\n    auth:\n      auth_url: https://k/v3\n      username: u\n      project_name: p\n",
        )
        .unwrap();
        // A dropped line runs the password into a "cloud name".
        std::fs::write(&secure, "clouds:\n  prod:\n    auth: {}\n  password secure-pass:\n").unwrap();
        let cf = CloudsFile::from_paths(&clouds, Some(&secure), &super::super::paths::MapEnv::default()).unwrap();
        assert_eq!(cf.names(), vec!["prod".to_string()]);
    }
}
