//! The policy file model and its strict loader.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::domain::time::Dur;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// Application name (letters, digits, `-`).
    pub name: String,
    /// Cloud from clouds.yaml the application runs on.
    pub cloud: String,
    /// What the engine may do for this application (`auto` when absent).
    #[serde(default, skip_serializing_if = "AppRunMode::is_auto")]
    pub mode: AppRunMode,
}

/// Per application: converge on its own (`auto`), plan only (`dry-run`: the plan
/// is shown and carried out when an operator approves it), or do nothing
/// (`paused`: the engine neither creates nor removes members).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppRunMode {
    #[default]
    Auto,
    DryRun,
    Paused,
}

impl AppRunMode {
    pub const ALL: [AppRunMode; 3] = [AppRunMode::Auto, AppRunMode::DryRun, AppRunMode::Paused];
    pub fn as_str(&self) -> &'static str {
        match self {
            AppRunMode::Auto => "auto",
            AppRunMode::DryRun => "dry-run",
            AppRunMode::Paused => "paused",
        }
    }
    pub fn parse(s: &str) -> Option<AppRunMode> {
        AppRunMode::ALL.into_iter().find(|m| m.as_str() == s.trim())
    }
    pub fn is_auto(&self) -> bool {
        *self == AppRunMode::Auto
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    pub min: u32,
    pub max: u32,
    pub desired: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// Image name or id.
    pub image: String,
    /// Flavor name or id.
    pub flavor: String,
    /// Network names or ids.
    pub networks: Vec<String>,
    #[serde(default)]
    pub key_name: Option<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// cloud-init user data; `{app}`, `{revision}`, `{slot}` and `{cloud}` are filled in.
    #[serde(default)]
    pub user_data: Option<String>,
    /// Extra server metadata (the `stackpilot:*` keys are the engine's).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Availability zones to spread members over (round robin by slot).
    #[serde(default)]
    pub availability_zones: Vec<String>,
    pub capacity: Capacity,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    /// `{ip}` is the member's first fixed IPv4 address.
    pub url: String,
    #[serde(default = "default_status")]
    pub expect_status: Vec<u16>,
    #[serde(default = "default_probe_timeout")]
    pub timeout: Dur,
}

fn default_status() -> Vec<u16> {
    vec![200]
}
fn default_probe_timeout() -> Dur {
    Dur(Duration::from_secs(5))
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Readiness {
    /// A line of the console log that says cloud-init finished (`*` matches anything);
    /// empty to not wait for it.
    pub cloud_init_marker: String,
    pub http: Option<HttpProbe>,
    /// Ready only after this long ACTIVE with all checks passing.
    pub min_ready_seconds: u64,
    /// A member not ready after this long is replaced.
    pub startup_grace: Dur,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            cloud_init_marker: "Cloud-init v. * finished".into(),
            http: None,
            min_ready_seconds: 30,
            startup_grace: Dur(Duration::from_secs(600)),
        }
    }
}

/// `[alerts]`: the application's alert rules. They shape what is sent out
/// (Alertmanager, webhooks); the console shows every alert as raised.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertRules {
    /// Labels added to every alert of the app (routing: `team`, `service`, ...).
    pub labels: BTreeMap<String, String>,
    /// Kinds never sent out (`metrics-stale`, `unhealthy-members`, ...).
    pub mute: Vec<String>,
    /// Severity by kind (`info`, `warning`, `critical`) when sent out.
    pub severity: BTreeMap<String, String>,
}

impl AlertRules {
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.mute.is_empty() && self.severity.is_empty()
    }

    /// The alert as it leaves, or `None` when muted.
    pub fn apply(&self, a: &crate::domain::Alert) -> Option<crate::domain::Alert> {
        if self.mute.iter().any(|k| k == &a.kind) {
            return None;
        }
        let mut out = a.clone();
        if let Some(s) = self.severity.get(&a.kind).and_then(|s| severity(s)) {
            out.severity = s;
        }
        out.labels.extend(self.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        Some(out)
    }

    fn check(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        for (k, s) in &self.severity {
            if severity(s).is_none() {
                v.push((format!("alerts.severity.{k}"), format!("`{s}`: use info, warning or critical")));
            }
        }
        for k in self.labels.keys() {
            if crate::domain::event::RESERVED_ALERT_LABELS.contains(&k.as_str()) {
                v.push(("alerts.labels".into(), format!("`{k}` is set by stackpilot itself")));
            } else if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                v.push(("alerts.labels".into(), format!("`{k}`: a label name is letters, digits and `_`")));
            }
        }
        v
    }
}

fn severity(s: &str) -> Option<crate::domain::Severity> {
    use crate::domain::Severity;
    [Severity::Info, Severity::Warning, Severity::Critical].into_iter().find(|x| x.as_str() == s)
}

/// The whole policy file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub app: AppSection,
    pub deploy: Deploy,
    #[serde(default)]
    pub readiness: Readiness,
    #[serde(default)]
    pub scaling: Option<super::scaling::Scaling>,
    #[serde(default)]
    pub rollout: super::rollout::RolloutSpec,
    /// Keeping members healthy once they served (ENGINE-SPEC 5).
    #[serde(default)]
    pub recovery: super::recovery::RecoverySpec,
    /// Scheduled Cinder backups of the application's volumes (ENGINE-SPEC 7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<super::backup::BackupSpec>,
    /// The app on several clouds or regions: shares and failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<super::placement::Placement>,
    /// How this application's alerts leave the console.
    #[serde(default, skip_serializing_if = "AlertRules::is_empty")]
    pub alerts: AlertRules,
    /// The application's environment: packages, runtime, variables, files, users.
    #[serde(default, skip_serializing_if = "super::stages::Environment::is_empty")]
    pub environment: super::stages::Environment,
    /// The application itself: artifact, configuration, service, health endpoint.
    #[serde(default, skip_serializing_if = "super::stages::Application::is_empty")]
    pub application: super::stages::Application,
}

impl PolicyFile {
    /// What members boot with: `deploy.user_data`, or the stages rendered to one
    /// `#cloud-config` document (`{app}`, `{revision}`, `{slot}`, `{cloud}` left
    /// for each member).
    pub fn effective_user_data(&self) -> Option<String> {
        self.deploy
            .user_data
            .clone()
            .or_else(|| super::stages::render(&self.app.name, &self.environment, &self.application))
    }

    /// Every duration of the policy with its dotted path and allowed range.
    pub fn durations(&self) -> Vec<(String, Dur, crate::domain::time::DurRange)> {
        use crate::domain::time::DurRange;
        let mut v = vec![(
            "readiness.startup_grace".to_string(),
            self.readiness.startup_grace,
            DurRange::new(Dur::secs(10), Dur::secs(86_400)),
        )];
        if let Some(h) = &self.readiness.http {
            v.push(("readiness.http.timeout".into(), h.timeout, DurRange::new(Dur::millis(100), Dur::secs(300))));
        }
        if let Some(sc) = &self.scaling {
            v.extend(sc.durations());
        }
        v.extend(self.rollout.durations());
        v.extend(self.recovery.durations());
        if let Some(b) = &self.backup {
            v.extend(b.durations());
        }
        if let Some(p) = &self.placement {
            v.extend(p.durations());
        }
        v
    }
}

/// A loaded policy: the file's content, where it came from, and its identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Stable identity: derived from (cloud, app name), so editing the file keeps it.
    pub id: String,
    pub file: PathBuf,
    pub spec: PolicyFile,
    /// sha256 of the file text (a change bumps the generation in the store).
    pub content_hash: String,
    /// The text it was parsed from (error positions are found in it).
    pub text: String,
    /// The app's members over all its locations (the file's `capacity.desired`;
    /// a location's own capacity is its share of it).
    pub app_desired: u32,
}

impl Policy {
    pub fn name(&self) -> &str {
        &self.spec.app.name
    }
    pub fn cloud(&self) -> &str {
        &self.spec.app.cloud
    }
    /// Its `[backup]` section as a backup policy (the app's volumes).
    pub fn backup(&self) -> Option<super::backup::BackupPolicy> {
        self.spec.backup.clone().map(|spec| super::backup::BackupPolicy {
            id: self.id.clone(),
            name: self.name().to_string(),
            cloud: self.cloud().to_string(),
            app: Some(self.name().to_string()),
            file: self.file.clone(),
            spec,
        })
    }
    /// The `stackpilot-app-<id>` server tag of members.
    pub fn app_tag(&self) -> String {
        crate::domain::names::app_tag(&self.id)
    }
    /// Every cloud the app runs on: its placement's locations, else its cloud.
    pub fn locations(&self) -> Vec<String> {
        match &self.spec.placement {
            Some(p) if !p.locations.is_empty() => p.clouds(),
            _ => vec![self.cloud().to_string()],
        }
    }
    /// The app as one location runs it: that cloud, its own policy id, and
    /// `members` as its capacity (the placement stays for reference).
    pub fn at_location(&self, cloud: &str, members: u32) -> Policy {
        let mut p = self.clone();
        p.id = policy_id(cloud, self.name());
        p.spec.app.cloud = cloud.to_string();
        p.spec.deploy.capacity = Capacity { min: members, desired: members, max: members };
        p
    }
    /// The app's policy at each of its locations (itself when it has one), each
    /// with its share of the capacity when every location serves.
    pub fn placed(&self) -> Vec<Policy> {
        match &self.spec.placement {
            Some(pl) if !pl.locations.is_empty() => {
                let shares = pl.nominal(self.spec.deploy.capacity.desired);
                pl.locations.iter().zip(shares).map(|(l, n)| self.at_location(&l.cloud, n)).collect()
            }
            _ => vec![self.clone()],
        }
    }
    /// This location's members when every location serves.
    pub fn nominal_share(&self, total: u32) -> u32 {
        match &self.spec.placement {
            Some(pl) => {
                let i = pl.locations.iter().position(|l| l.cloud == self.cloud());
                i.and_then(|i| pl.nominal(total).get(i).copied()).unwrap_or(0)
            }
            None => total,
        }
    }
}

/// The policy id of an application on a cloud.
pub fn policy_id(cloud: &str, app: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("stackpilot/{cloud}/{app}").as_bytes()).to_string()
}

/// A policy problem, with its position when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub col: Option<usize>,
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.col {
                write!(f, ":{c}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for PolicyError {}

/// Line and column of a dotted key path (`deploy.capacity`) in TOML text; a key
/// the file leaves to its default is placed at its nearest written parent.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let mut p = path;
    loop {
        if let Some(at) = crate::config::toml_position(text, p) {
            return Some(at);
        }
        p = p.rsplit_once('.')?.0;
    }
}

pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 40 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') && !s.starts_with('-')
}

/// A parse message with what to do about it.
fn with_fix(message: String) -> String {
    if message.starts_with("missing field") {
        format!("{message}: add it to this table (config/policies/example.toml documents every key)")
    } else {
        message
    }
}

/// A TOML error of a policy text, at its position.
pub(crate) fn toml_error(text: &str, file: &Path, e: &toml::de::Error) -> PolicyError {
    let (line, col) = e.span().map_or((None, None), |s| {
        let (l, c) = crate::config::line_col(text, s.start);
        (Some(l), Some(c))
    });
    PolicyError {
        file: file.to_path_buf(),
        line,
        col,
        field: None,
        message: with_fix(e.message().trim().replace('\n', " ")),
    }
}

/// A problem with a field (dotted path), at the field's position in the text.
pub(crate) fn field_error(text: &str, file: &Path, path: &str, message: String) -> PolicyError {
    let (line, col) = locate(text, path).map_or((None, None), |(l, c)| (Some(l), Some(c)));
    PolicyError { file: file.to_path_buf(), line, col, field: Some(path.to_string()), message }
}

/// Parse a policy text (strict) and check what needs no cloud.
pub fn parse(text: &str, file: &Path) -> Result<Policy, Vec<PolicyError>> {
    let spec: PolicyFile = toml::from_str(text).map_err(|e| vec![toml_error(text, file, &e)])?;
    let mut errs = Vec::new();
    let mut err = |path: &str, msg: String| errs.push(field_error(text, file, path, msg));
    if !valid_name(&spec.app.name) {
        err("app.name", format!("`{}` is not a valid name: use 1-40 letters, digits and `-`", spec.app.name));
    }
    let c = spec.deploy.capacity;
    if c.min > c.max {
        err("deploy.capacity", format!("min ({}) is above max ({}): expected min <= desired <= max", c.min, c.max));
    } else if c.desired < c.min || c.desired > c.max {
        err(
            "deploy.capacity",
            format!(
                "desired ({}) is outside min..max ({}..{}): expected min <= desired <= max",
                c.desired, c.min, c.max
            ),
        );
    }
    if c.max > 1000 {
        err("deploy.capacity", format!("max ({}) is above the supported 1000", c.max));
    }
    if spec.deploy.networks.is_empty() {
        err("deploy.networks", "name at least one network, e.g. networks = [\"private\"]".into());
    }
    for (path, msg) in super::stages::check(&spec.environment, &spec.application, spec.deploy.user_data.as_deref()) {
        err(&path, msg);
    }
    if let Some(ud) = spec.effective_user_data() {
        if ud.len() > super::stages::MAX_USER_DATA {
            let field = if spec.deploy.user_data.is_some() { "deploy.user_data" } else { "application" };
            err(
                field,
                format!(
                    "the user data is {} bytes: more than Nova's 64 KiB once encoded (48 KiB of text); move large files into the artifact",
                    ud.len()
                ),
            );
        }
    }
    for k in spec.deploy.metadata.keys() {
        if k.starts_with(crate::domain::META_PREFIX) {
            err("deploy.metadata", format!("`{k}`: keys starting with `stackpilot:` belong to the engine"));
        }
        if k.len() > 255 {
            let head: String = k.chars().take(20).collect();
            err("deploy.metadata", format!("key `{head}…` is longer than 255 bytes"));
        }
    }
    let backup = spec.backup.as_ref().map(|b| b.check()).unwrap_or_default();
    for (path, msg) in spec.recovery.check().into_iter().chain(spec.alerts.check()).chain(backup) {
        err(&path, msg);
    }
    if let Some(sc) = &spec.scaling {
        for (path, msg) in sc.check(&spec.deploy.capacity) {
            err(&path, msg);
        }
    }
    if let Some(pl) = &spec.placement {
        for (path, msg) in pl.check(&spec.app.cloud, &spec.deploy.capacity, spec.scaling.is_some()) {
            err(&path, msg);
        }
    }
    for (path, msg) in spec.rollout.check() {
        err(&path, msg);
    }
    for (path, d, range) in spec.durations() {
        if let Err(m) = range.check(d.0) {
            err(&path, m.to_string());
        }
    }
    if spec.readiness.min_ready_seconds > 86_400 {
        err(
            "readiness.min_ready_seconds",
            format!("{} is out of range: expected between 0 and 86400 (a day)", spec.readiness.min_ready_seconds),
        );
    }
    if let Some(h) = &spec.readiness.http {
        if !h.url.starts_with("http://") && !h.url.starts_with("https://") {
            err("readiness.http", format!("url `{}` must start with http:// or https://", h.url));
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    use sha2::Digest;
    let content_hash = sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    Ok(Policy {
        id: policy_id(&spec.app.cloud, &spec.app.name),
        app_desired: spec.deploy.capacity.desired,
        file: file.to_path_buf(),
        spec,
        content_hash,
        text: text.to_string(),
    })
}

/// The largest policy file read (a policy is a few KiB; this bounds a mistake).
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;

/// Read one policy file: a regular file (symlinks followed) of at most
/// `MAX_POLICY_BYTES`, as UTF-8. A FIFO, a device or an endless file is refused
/// without reading it, so nothing can hang or exhaust the engine.
pub fn read_policy_file(path: &Path) -> Result<String, ReadError> {
    use std::io::ErrorKind;
    let buf = crate::config::paths::read_regular(path, MAX_POLICY_BYTES).map_err(|e| match e.kind() {
        ErrorKind::InvalidInput => ReadError::NotAFile,
        ErrorKind::FileTooLarge => ReadError::TooLarge(e.to_string()),
        _ => ReadError::Io(e),
    })?;
    String::from_utf8(buf).map_err(|e| ReadError::NotUtf8(e.utf8_error().valid_up_to()))
}

/// Why a policy file (or the directory) could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read: {0}")]
    Io(std::io::Error),
    #[error("not a regular file (a FIFO, a device or a directory): policies are plain files")]
    NotAFile,
    #[error("{0}: a policy file is at most {MAX_POLICY_BYTES} bytes")]
    TooLarge(String),
    #[error("not UTF-8 text (byte {0})")]
    NotUtf8(usize),
    #[error("cannot read the directory: {0}")]
    Dir(std::io::Error),
    #[error("no such file or directory")]
    Missing,
}

/// Policy files and what reading each gave (its text, or why not).
pub type PolicyFiles = Vec<(PathBuf, Result<String, ReadError>)>;

/// The `*.toml` files of a policies directory (or the one file named), sorted,
/// each with its text or why it could not be read. An error when the directory
/// itself cannot be read.
pub fn scan_dir(path: &Path) -> Result<PolicyFiles, ReadError> {
    let mut files: Vec<PathBuf> = if path.is_dir() {
        let rd = std::fs::read_dir(path).map_err(ReadError::Dir)?;
        let mut v = Vec::new();
        for e in rd {
            let e = e.map_err(ReadError::Dir)?;
            let p = e.path();
            if p.extension().is_some_and(|x| x == "toml") {
                v.push(p);
            }
        }
        v
    } else if path.exists() {
        vec![path.to_path_buf()]
    } else {
        return Err(ReadError::Missing);
    };
    files.sort();
    Ok(files
        .into_iter()
        .map(|f| {
            let t = read_policy_file(&f);
            (f, t)
        })
        .collect())
}

/// An error about a whole file (no position).
pub fn file_error(file: &Path, message: String) -> PolicyError {
    PolicyError { file: file.to_path_buf(), line: None, col: None, field: None, message }
}

/// Every `*.toml` policy of a directory (or one file), sorted by file name.
/// Returns the policies that loaded and the errors of those that did not.
pub fn load_dir(path: &Path) -> (Vec<Policy>, Vec<PolicyError>) {
    let files = match scan_dir(path) {
        Ok(f) => f,
        Err(e) => return (vec![], vec![file_error(path, e.to_string())]),
    };
    let mut ok = Vec::new();
    let mut errs = Vec::new();
    for (f, text) in files {
        match text {
            Ok(t) => match parse(&t, &f) {
                Ok(p) => ok.push(p),
                Err(e) => errs.extend(e),
            },
            Err(e) => errs.push(file_error(&f, e.to_string())),
        }
    }
    // Two files for one application on one cloud would fight over the same members.
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut dups = Vec::new();
    for p in &ok {
        if let Some(first) = seen.insert(p.id.clone(), p.file.clone()) {
            dups.push(duplicate_error(p, &first));
        }
    }
    if !dups.is_empty() {
        let bad: Vec<PathBuf> = dups.iter().map(|d| d.file.clone()).collect();
        ok.retain(|p| !bad.contains(&p.file));
        errs.extend(dups);
    }
    (ok, errs)
}

/// A second file defining an application already defined in `first`.
pub fn duplicate_error(p: &Policy, first: &Path) -> PolicyError {
    PolicyError {
        file: p.file.clone(),
        line: None,
        col: None,
        field: Some("app.name".into()),
        message: format!("application `{}` on `{}` is already defined in {}", p.name(), p.cloud(), first.display()),
    }
}

/// Fill `{app}`, `{revision}`, `{slot}`, `{cloud}` in user data.
pub fn render_user_data(template: &str, app: &str, revision: u32, slot: u32, cloud: &str) -> String {
    template
        .replace("{app}", app)
        .replace("{revision}", &revision.to_string())
        .replace("{slot}", &slot.to_string())
        .replace("{cloud}", cloud)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r##"
[app]
name = "web"
cloud = "demo"

[deploy]
image = "debian-12"
flavor = "m1.small"
networks = ["private"]
user_data = """#cloud-config
runcmd: [echo {app} r{revision} s{slot}]
"""
capacity = { min = 1, max = 5, desired = 2 }
"##;

    #[test]
    fn alert_rules_label_mute_and_reweigh_what_leaves() {
        let text = format!(
            "{OK}\n[alerts]\nlabels = {{ team = \"web\" }}\nmute = [\"metrics-stale\"]\nseverity = {{ unhealthy-members = \"critical\" }}\n"
        );
        let p = parse(&text, Path::new("web.toml")).unwrap();
        let a = crate::domain::Alert::new("unhealthy-members", "k", "demo", crate::domain::Severity::Warning, "x");
        let out = p.spec.alerts.apply(&a).unwrap();
        assert_eq!(out.severity, crate::domain::Severity::Critical);
        assert_eq!(out.labels.get("team").map(String::as_str), Some("web"));
        let stale = crate::domain::Alert::new("metrics-stale", "k2", "demo", crate::domain::Severity::Warning, "x");
        assert!(p.spec.alerts.apply(&stale).is_none(), "muted");
        let bad = format!("{OK}\n[alerts]\nlabels = {{ severity = \"x\" }}\nseverity = {{ x = \"loud\" }}\n");
        let errs = parse(&bad, Path::new("web.toml")).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().all(|e| e.line.is_some()), "with their place: {errs:?}");
    }

    #[test]
    fn parses_with_defaults_and_a_stable_id() {
        let p = parse(OK, Path::new("web.toml")).unwrap();
        assert_eq!(p.name(), "web");
        assert_eq!(p.spec.readiness.min_ready_seconds, 30);
        assert_eq!(p.id, policy_id("demo", "web"));
        assert_eq!(p.app_tag().len(), "stackpilot-app-".len() + 36);
        assert!(p.app_tag().len() <= 60, "Nova tags are at most 60 characters");
        assert_eq!(
            render_user_data(p.spec.deploy.user_data.as_deref().unwrap(), "web", 3, 1, "demo"),
            "#cloud-config\nruncmd: [echo web r3 s1]\n"
        );
    }

    #[test]
    fn unknown_keys_and_types_point_at_the_line() {
        let bad = OK.replace("flavor = \"m1.small\"", "flavour = \"m1.small\"");
        let e = parse(&bad, Path::new("web.toml")).unwrap_err();
        assert_eq!(e[0].line, Some(8));
        assert!(e[0].to_string().starts_with("web.toml:8:1: unknown field `flavour`"), "{}", e[0]);
        let bad = OK.replace("min = 1,", "min = \"one\",");
        let e = parse(&bad, Path::new("web.toml")).unwrap_err();
        assert_eq!(e[0].line, Some(13));
        assert!(e[0].message.contains("invalid type"), "{}", e[0]);
    }

    #[test]
    fn a_long_metadata_key_with_wide_characters_is_an_error_not_a_panic() {
        // A multi-byte character across byte 20 (where the message cuts the key).
        let key = format!("{}é{}", "k".repeat(19), "x".repeat(300));
        let bad = OK.replace(
            "networks = [\"private\"]",
            &format!("networks = [\"private\"]\nmetadata = {{ \"{key}\" = \"v\" }}"),
        );
        let e = parse(&bad, Path::new("w.toml")).unwrap_err();
        assert!(e[0].message.contains("longer than 255 bytes"), "{}", e[0]);
        assert!(e[0].message.contains(&format!("{}é…", "k".repeat(19))), "{}", e[0]);
    }

    #[test]
    fn a_missing_duration_names_the_field_the_table_and_the_fix() {
        let bad = format!(
            "{OK}\n[scaling]\n[[scaling.metrics]]\nname = \"cpu\"\ntarget = 60\n[scaling.behavior.scale_down]\npolicies = [{{ type = \"count\", value = 1, period = \"60s\" }}]\n"
        );
        let e = parse(&bad, Path::new("web.toml")).unwrap_err();
        let text = e[0].to_string();
        assert!(text.starts_with("web.toml:19:"), "the table's line: {text}");
        assert!(text.contains("missing field `stabilization`"), "{text}");
        assert!(text.contains("example.toml"), "{text}");
        assert!(!text.contains("expected a duration"), "{text}");
    }

    #[test]
    fn semantic_checks_name_the_field() {
        let bad = OK.replace("desired = 2", "desired = 9");
        let e = parse(&bad, Path::new("web.toml")).unwrap_err();
        assert_eq!(e[0].field.as_deref(), Some("deploy.capacity"));
        assert!(
            e[0].to_string().contains("web.toml:13:1: deploy.capacity: desired (9) is outside min..max (1..5)"),
            "{}",
            e[0]
        );
        let bad = OK.replace("name = \"web\"", "name = \"web app\"");
        assert!(parse(&bad, Path::new("w.toml")).unwrap_err()[0]
            .to_string()
            .contains("app.name: `web app` is not a valid name"));
        let bad = OK
            .replace("networks = [\"private\"]", "networks = [\"private\"]\nmetadata = { \"stackpilot:app\" = \"x\" }");
        assert!(parse(&bad, Path::new("w.toml")).unwrap_err()[0].message.contains("belong to the engine"));
    }
}
