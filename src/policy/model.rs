//! The policy file model and its strict loader.

use crate::domain::time::parse_duration;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A duration written as `30s`, `10m`, `1h` (or a number of seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(u64),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a duration such as \"30s\", \"10m\" or \"1h\""))?
        {
            Raw::N(n) => Ok(Dur(Duration::from_secs(n))),
            Raw::S(s) => parse_duration(&s).map(Dur).ok_or_else(|| {
                serde::de::Error::custom(format!("invalid duration `{s}`, expected e.g. \"30s\", \"10m\" or \"1h\""))
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// Application name (letters, digits, `-`).
    pub name: String,
    /// Cloud from clouds.yaml the application runs on.
    pub cloud: String,
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
}

impl Policy {
    pub fn name(&self) -> &str {
        &self.spec.app.name
    }
    pub fn cloud(&self) -> &str {
        &self.spec.app.cloud
    }
    /// The `stackpilot-app-<id>` server tag of members.
    pub fn app_tag(&self) -> String {
        format!("stackpilot-app-{}", self.id)
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

/// Line and column of a dotted key path (`deploy.capacity`) in TOML text.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let mut parts: Vec<&str> = path.split('.').collect();
    let key = parts.pop()?;
    let table = parts.join(".");
    let mut in_table = table.is_empty();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            let name = t.trim_matches(|c| c == '[' || c == ']').trim();
            in_table = name == table;
            if !table.is_empty() && name == format!("{table}.{key}") {
                return Some((i + 1, 1));
            }
            continue;
        }
        if in_table {
            if let Some(rest) = t.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return Some((i + 1, line.len() - t.len() + 1));
                }
            }
        }
    }
    // Inline tables: `capacity = { min = ... }` inside `[deploy]`.
    if let Some((l, c)) = parts.last().and_then(|_| locate(text, &table)) {
        return Some((l, c));
    }
    None
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 40 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') && !s.starts_with('-')
}

/// Parse a policy text (strict) and check what needs no cloud.
pub fn parse(text: &str, file: &Path) -> Result<Policy, Vec<PolicyError>> {
    let spec: PolicyFile = toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map_or((None, None), |s| {
            let (l, c) = crate::config::line_col(text, s.start);
            (Some(l), Some(c))
        });
        vec![PolicyError {
            file: file.to_path_buf(),
            line,
            col,
            field: None,
            message: e.message().trim().replace('\n', " "),
        }]
    })?;
    let mut errs = Vec::new();
    let mut err = |path: &str, msg: String| {
        let (line, col) = locate(text, path).map_or((None, None), |(l, c)| (Some(l), Some(c)));
        errs.push(PolicyError { file: file.to_path_buf(), line, col, field: Some(path.to_string()), message: msg });
    };
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
    if let Some(ud) = &spec.deploy.user_data {
        if ud.len() > 48 * 1024 {
            err(
                "deploy.user_data",
                format!("{} bytes is more than Nova accepts once encoded (48 KiB of text)", ud.len()),
            );
        }
    }
    for k in spec.deploy.metadata.keys() {
        if k.starts_with(crate::domain::META_PREFIX) {
            err("deploy.metadata", format!("`{k}`: keys starting with `stackpilot:` belong to the engine"));
        }
        if k.len() > 255 {
            err("deploy.metadata", format!("key `{}…` is longer than 255 characters", &k[..20]));
        }
    }
    if let Some(sc) = &spec.scaling {
        for (path, msg) in sc.check(&spec.deploy.capacity) {
            err(&path, msg);
        }
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
    Ok(Policy { id: policy_id(&spec.app.cloud, &spec.app.name), file: file.to_path_buf(), spec, content_hash })
}

/// Every `*.toml` policy of a directory (or one file), sorted by file name.
/// Returns the policies that loaded and the errors of those that did not.
pub fn load_dir(path: &Path) -> (Vec<Policy>, Vec<PolicyError>) {
    let mut files: Vec<PathBuf> = if path.is_dir() {
        match std::fs::read_dir(path) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect(),
            Err(e) => {
                return (
                    vec![],
                    vec![PolicyError {
                        file: path.to_path_buf(),
                        line: None,
                        col: None,
                        field: None,
                        message: format!("cannot read the directory: {e}"),
                    }],
                )
            }
        }
    } else {
        vec![path.to_path_buf()]
    };
    files.sort();
    let mut ok = Vec::new();
    let mut errs = Vec::new();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(t) => match parse(&t, &f) {
                Ok(p) => ok.push(p),
                Err(e) => errs.extend(e),
            },
            Err(e) => errs.push(PolicyError {
                file: f.clone(),
                line: None,
                col: None,
                field: None,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    // Two files for one application on one cloud would fight over the same members.
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut dups = Vec::new();
    for p in &ok {
        if let Some(first) = seen.insert(p.id.clone(), p.file.clone()) {
            dups.push(PolicyError {
                file: p.file.clone(),
                line: None,
                col: None,
                field: Some("app.name".into()),
                message: format!(
                    "application `{}` on `{}` is already defined in {}",
                    p.name(),
                    p.cloud(),
                    first.display()
                ),
            });
        }
    }
    if !dups.is_empty() {
        let bad: Vec<PathBuf> = dups.iter().map(|d| d.file.clone()).collect();
        ok.retain(|p| !bad.contains(&p.file));
        errs.extend(dups);
    }
    (ok, errs)
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
