//! The two deploy stages operators asked for, rendered to one `#cloud-config`
//! document with cloud-init's own modules:
//!
//! - `[environment]`: package repositories (`apt.sources`), packages and the
//!   runtime (`packages`), environment variables (`/etc/default/<app>` and
//!   `/etc/profile.d/<app>.sh`), files with mode and owner and sysctl settings
//!   (`write_files`), users (`users`), commands run once (`runcmd`);
//! - `[application]`: an artifact downloaded, checked against its sha256 and
//!   unpacked, configuration files templated with `{app}`, `{revision}`, `{slot}`,
//!   `{cloud}` and `{ip}` (the member's first IPv4 address, filled in on the VM),
//!   a start command (made into a systemd unit) or a unit of its own, and a
//!   health endpoint the readiness probe uses unless `[readiness] http` says
//!   otherwise.
//!
//! `deploy.user_data` stays the escape hatch; it cannot be combined with the
//! stages. The rendered document must stay under Nova's user-data limit.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// User data Nova accepts: 65535 bytes once base64-encoded, about 48 KiB of text.
pub const MAX_USER_DATA: usize = 48 * 1024;

/// Where `{ip}` goes until the VM knows its address.
const IP_MARK: &str = "@STACKPILOT_IP@";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Repository {
    pub name: String,
    /// An APT source line (`deb https://... suite main`).
    pub source: String,
    /// The repository's signing key (ASCII armored), or its id on a keyserver.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub keyid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub path: String,
    pub content: String,
    #[serde(default = "default_mode")]
    pub mode: String,
    #[serde(default = "default_owner")]
    pub owner: String,
}

fn default_mode() -> String {
    "0644".into()
}
fn default_owner() -> String {
    "root:root".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub shell: Option<String>,
    /// A system account (no home directory login).
    #[serde(default)]
    pub system: bool,
}

/// `[environment]`: what the application runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Environment {
    pub repositories: Vec<Repository>,
    pub packages: Vec<String>,
    /// The runtime's package (`openjdk-17-jre-headless`, `python3`, `nodejs`).
    pub runtime: Option<String>,
    pub variables: BTreeMap<String, String>,
    pub files: Vec<FileSpec>,
    pub sysctl: BTreeMap<String, String>,
    pub users: Vec<User>,
    /// Run once, after packages and files, before the application.
    pub commands: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    pub url: String,
    /// The sha256 of the download (64 hex digits): a mismatch stops the boot.
    pub sha256: String,
    /// Unpacked (tar) into this directory; `{app}` is filled in.
    #[serde(default = "default_unpack")]
    pub unpack_to: String,
}

fn default_unpack() -> String {
    "/opt/{app}".into()
}

/// `[application]`: the application itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Application {
    pub artifact: Option<Artifact>,
    /// Configuration files; `{app}`, `{revision}`, `{slot}`, `{cloud}`, `{ip}` are filled in.
    pub config: Vec<FileSpec>,
    /// The command that starts it (run as a systemd service).
    pub start: Option<String>,
    /// A whole systemd unit instead of `start`.
    pub unit: Option<String>,
    /// The user the service runs as.
    pub user: Option<String>,
    /// The health endpoint (`http://{ip}:8080/healthz`): the readiness probe by default.
    pub health: Option<String>,
}

impl Environment {
    pub fn is_empty(&self) -> bool {
        self == &Environment::default()
    }
}

impl Application {
    pub fn is_empty(&self) -> bool {
        self == &Application::default()
    }
}

/// Checks of the stages: (dotted field, message).
pub fn check(env: &Environment, app: &Application, user_data: Option<&str>) -> Vec<(String, String)> {
    let mut v = Vec::new();
    if user_data.is_some() && !(env.is_empty() && app.is_empty()) {
        v.push((
            "deploy.user_data".into(),
            "user_data cannot be combined with [environment] or [application]: move its commands into [environment] commands (or drop the stages)".into(),
        ));
    }
    if let Some(a) = &app.artifact {
        if a.sha256.len() != 64 || !a.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            v.push(("application.artifact".into(), "sha256 must be 64 hex digits".into()));
        }
        if !a.url.starts_with("https://") && !a.url.starts_with("http://") {
            v.push(("application.artifact".into(), format!("url `{}` must start with http:// or https://", a.url)));
        }
    }
    if app.start.is_some() && app.unit.is_some() {
        v.push(("application".into(), "give `start` or `unit`, not both".into()));
    }
    for (i, f) in env.files.iter().chain(&app.config).enumerate() {
        if !f.path.starts_with('/') {
            v.push(("environment.files".into(), format!("file {i}: path `{}` must be absolute", f.path)));
        }
        if f.mode.len() != 4 || !f.mode.chars().all(|c| ('0'..='7').contains(&c)) {
            v.push(("environment.files".into(), format!("file {}: mode `{}` is not like 0644", f.path, f.mode)));
        }
    }
    for k in env.variables.keys() {
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            v.push(("environment.variables".into(), format!("`{k}` is not a variable name (letters, digits, _)")));
        }
    }
    v
}

/// Single quotes for a shell word.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A `write_files` entry. Deferred ones are written in cloud-init's final
/// stage, after users and packages exist (an owner created by `users`, a unit
/// file), and before `runcmd` runs.
fn file(f: &FileSpec, content: String, deferred: bool) -> serde_yaml::Value {
    let mut m = serde_yaml::Mapping::new();
    m.insert("path".into(), f.path.clone().into());
    m.insert("content".into(), content.into());
    m.insert("permissions".into(), f.mode.clone().into());
    m.insert("owner".into(), f.owner.clone().into());
    if deferred || f.owner != default_owner() {
        m.insert("defer".into(), true.into());
    }
    serde_yaml::Value::Mapping(m)
}

/// The `#cloud-config` document of the stages (templates left for each
/// member: `{app}`, `{revision}`, `{slot}`, `{cloud}`). `None` without stages.
pub fn render(app_name: &str, env: &Environment, app: &Application) -> Option<String> {
    if env.is_empty() && app.is_empty() {
        return None;
    }
    let mut doc = serde_yaml::Mapping::new();
    let mut files: Vec<serde_yaml::Value> = Vec::new();
    let mut runcmd: Vec<serde_yaml::Value> = Vec::new();
    let fixed = |s: &str| s.replace("{app}", app_name);
    // Environment.
    if !env.repositories.is_empty() {
        let mut sources = serde_yaml::Mapping::new();
        for r in &env.repositories {
            let mut s = serde_yaml::Mapping::new();
            s.insert("source".into(), r.source.clone().into());
            if let Some(k) = &r.key {
                s.insert("key".into(), k.clone().into());
            }
            if let Some(k) = &r.keyid {
                s.insert("keyid".into(), k.clone().into());
            }
            sources.insert(format!("{}.list", r.name).into(), serde_yaml::Value::Mapping(s));
        }
        let mut apt = serde_yaml::Mapping::new();
        apt.insert("sources".into(), serde_yaml::Value::Mapping(sources));
        doc.insert("apt".into(), serde_yaml::Value::Mapping(apt));
    }
    let mut packages: Vec<String> = env.packages.clone();
    packages.extend(env.runtime.iter().cloned());
    if app.artifact.is_some() && !packages.iter().any(|p| p == "curl") {
        packages.push("curl".into());
    }
    if !packages.is_empty() {
        doc.insert("package_update".into(), true.into());
        doc.insert("packages".into(), packages.into_iter().map(serde_yaml::Value::from).collect::<Vec<_>>().into());
    }
    if !env.users.is_empty() {
        let mut users = vec![serde_yaml::Value::from("default")];
        for u in &env.users {
            let mut m = serde_yaml::Mapping::new();
            m.insert("name".into(), u.name.clone().into());
            if !u.groups.is_empty() {
                m.insert("groups".into(), u.groups.join(", ").into());
            }
            if let Some(s) = &u.shell {
                m.insert("shell".into(), s.clone().into());
            }
            if u.system {
                m.insert("system".into(), true.into());
            }
            users.push(serde_yaml::Value::Mapping(m));
        }
        doc.insert("users".into(), users.into());
    }
    if !env.variables.is_empty() {
        let plain: String = env.variables.iter().map(|(k, v)| format!("{k}={}\n", sh_quote(v))).collect();
        let exported: String = env.variables.iter().map(|(k, v)| format!("export {k}={}\n", sh_quote(v))).collect();
        files.push(file(
            &FileSpec {
                path: fixed("/etc/default/{app}"),
                content: String::new(),
                mode: "0644".into(),
                owner: default_owner(),
            },
            plain,
            false,
        ));
        files.push(file(
            &FileSpec {
                path: fixed("/etc/profile.d/{app}.sh"),
                content: String::new(),
                mode: "0644".into(),
                owner: default_owner(),
            },
            exported,
            false,
        ));
    }
    for f in &env.files {
        files.push(file(f, f.content.clone(), false));
    }
    if !env.sysctl.is_empty() {
        let text: String = env.sysctl.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        let path = fixed("/etc/sysctl.d/90-{app}.conf");
        files.push(file(
            &FileSpec { path: path.clone(), content: String::new(), mode: "0644".into(), owner: default_owner() },
            text,
            false,
        ));
        runcmd.push(
            vec!["sysctl", "-p", path.as_str()].into_iter().map(serde_yaml::Value::from).collect::<Vec<_>>().into(),
        );
    }
    runcmd.extend(env.commands.iter().map(|c| serde_yaml::Value::from(c.clone())));
    // Application.
    let mut ip_files = Vec::new();
    for f in &app.config {
        let content = f.content.replace("{ip}", IP_MARK);
        if content.contains(IP_MARK) {
            ip_files.push(f.path.clone());
        }
        files.push(file(f, content, true));
    }
    if !ip_files.is_empty() {
        let paths: Vec<String> = ip_files.iter().map(|p| sh_quote(p)).collect();
        runcmd.push(
            format!("ip=$(hostname -I | awk '{{print $1}}'); sed -i \"s/{IP_MARK}/$ip/g\" {}", paths.join(" ")).into(),
        );
    }
    if let Some(a) = &app.artifact {
        let dir = fixed(&a.unpack_to);
        runcmd.push(
            format!(
                "set -e; curl -fsSL -o /var/tmp/{app_name}.artifact {url}; echo {sum} /var/tmp/{app_name}.artifact | sha256sum -c -; mkdir -p {dir}; tar -xf /var/tmp/{app_name}.artifact -C {dir}",
                url = sh_quote(&a.url),
                sum = sh_quote(&a.sha256),
                dir = sh_quote(&dir)
            )
            .into(),
        );
    }
    let unit = match (&app.unit, &app.start) {
        (Some(u), _) => Some(u.clone()),
        (None, Some(start)) => {
            let user = app.user.as_ref().map(|u| format!("User={u}\n")).unwrap_or_default();
            let env_file =
                if env.variables.is_empty() { String::new() } else { fixed("EnvironmentFile=/etc/default/{app}\n") };
            let wd = app
                .artifact
                .as_ref()
                .map(|a| format!("WorkingDirectory={}\n", fixed(&a.unpack_to)))
                .unwrap_or_default();
            Some(format!(
                "[Unit]\nDescription={app_name} (revision {{revision}}, slot {{slot}})\nAfter=network-online.target\nWants=network-online.target\n\n[Service]\n{user}{env_file}{wd}ExecStart={start}\nRestart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n"
            ))
        }
        (None, None) => None,
    };
    if let Some(u) = unit {
        let path = fixed("/etc/systemd/system/{app}.service");
        files.push(file(
            &FileSpec { path, content: String::new(), mode: "0644".into(), owner: default_owner() },
            u,
            true,
        ));
        runcmd.push(fixed("systemctl daemon-reload && systemctl enable --now {app}.service").into());
    }
    if !files.is_empty() {
        doc.insert("write_files".into(), files.into());
    }
    if !runcmd.is_empty() {
        doc.insert("runcmd".into(), runcmd.into());
    }
    let body = serde_yaml::to_string(&serde_yaml::Value::Mapping(doc)).unwrap_or_default();
    Some(format!("#cloud-config\n# rendered by stackpilot from [environment] and [application]\n{body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages() -> (Environment, Application) {
        let env: Environment = toml::from_str(
            r#"
packages = ["nginx"]
runtime = "python3"
variables = { APP_ENV = "prod", GREETING = "it's {app}" }
sysctl = { "net.core.somaxconn" = "1024" }
users = [{ name = "svc", system = true }]
commands = ["echo ready > /var/tmp/env-done"]
repositories = [{ name = "extra", source = "deb http://deb.example.org/debian bookworm main", keyid = "ABCDEF01" }]
files = [{ path = "/etc/motd", content = "{app} r{revision} s{slot}\n" }]
"#,
        )
        .unwrap();
        let app: Application = toml::from_str(
            r#"
artifact = { url = "https://artifacts.example.org/shop-1.2.tar.gz", sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
config = [{ path = "/etc/shop/shop.conf", content = "listen = {ip}:8080\nslot = {slot}\n", mode = "0640", owner = "svc:svc" }]
start = "/opt/shop/bin/shop --config /etc/shop/shop.conf"
user = "svc"
health = "http://{ip}:8080/healthz"
"#,
        )
        .unwrap();
        (env, app)
    }

    #[test]
    fn both_stages_render_to_one_valid_cloud_config() {
        let (env, app) = stages();
        assert!(check(&env, &app, None).is_empty());
        let text = render("shop", &env, &app).unwrap();
        assert!(text.starts_with("#cloud-config\n"));
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let packages: Vec<&str> = doc["packages"].as_sequence().unwrap().iter().filter_map(|v| v.as_str()).collect();
        assert_eq!(packages, ["nginx", "python3", "curl"]);
        assert_eq!(doc["apt"]["sources"]["extra.list"]["keyid"].as_str(), Some("ABCDEF01"));
        assert_eq!(doc["users"][0].as_str(), Some("default"));
        let files = doc["write_files"].as_sequence().unwrap();
        let paths: Vec<&str> = files.iter().filter_map(|f| f["path"].as_str()).collect();
        assert!(
            paths.contains(&"/etc/default/shop") && paths.contains(&"/etc/systemd/system/shop.service"),
            "{paths:?}"
        );
        let conf = files.iter().find(|f| f["path"].as_str() == Some("/etc/shop/shop.conf")).unwrap();
        assert_eq!(conf["permissions"].as_str(), Some("0640"));
        assert_eq!(conf["defer"].as_bool(), Some(true), "written after the users exist");
        assert!(conf["content"].as_str().unwrap().contains("listen = @STACKPILOT_IP@:8080"));
        assert!(conf["content"].as_str().unwrap().contains("slot = {slot}"), "filled per member at create");
        let env_file = files.iter().find(|f| f["path"].as_str() == Some("/etc/default/shop")).unwrap();
        assert!(env_file["content"].as_str().unwrap().contains("GREETING='it'\\''s {app}'"));
        let cmds: Vec<String> = doc["runcmd"].as_sequence().unwrap().iter().map(|c| format!("{c:?}")).collect();
        let joined = cmds.join("\n");
        assert!(joined.contains("sha256sum -c"), "{joined}");
        assert!(joined.contains("systemctl daemon-reload && systemctl enable --now shop.service"), "{joined}");
        // Environment first, then the application.
        let env_at = joined.find("env-done").unwrap();
        let app_at = joined.find("sha256sum").unwrap();
        assert!(env_at < app_at);
        let unit = files.iter().find(|f| f["path"].as_str() == Some("/etc/systemd/system/shop.service")).unwrap();
        assert!(unit["content"].as_str().unwrap().contains(
            "User=svc\nEnvironmentFile=/etc/default/shop\nWorkingDirectory=/opt/shop\nExecStart=/opt/shop/bin/shop"
        ));
    }

    #[test]
    fn the_full_example_parses_renders_and_stays_under_novas_limit() {
        let text = include_str!("../../tests/stages/shop.toml");
        let p = crate::policy::parse(text, std::path::Path::new("shop.toml")).unwrap();
        let ud = p.spec.effective_user_data().unwrap();
        assert!(ud.len() < MAX_USER_DATA);
        let doc: serde_yaml::Value = serde_yaml::from_str(&ud).unwrap();
        assert!(doc["runcmd"].as_sequence().unwrap().len() >= 4);
        // A huge file is refused with the limit named.
        let big = text.replace("commands = [", &format!("commands = [\"{}\", ", "x".repeat(60_000)));
        let e = crate::policy::parse(&big, std::path::Path::new("shop.toml")).unwrap_err();
        assert!(e[0].message.contains("64 KiB"), "{}", e[0]);
    }

    #[test]
    fn mistakes_are_named_and_user_data_does_not_mix_silently() {
        let (env, mut app) = stages();
        assert!(check(&env, &app, Some("#cloud-config\n"))[0].1.contains("cannot be combined"));
        app.artifact.as_mut().unwrap().sha256 = "abc".into();
        app.unit = Some("[Service]\n".into());
        let errs = check(&env, &app, None);
        assert!(errs.iter().any(|e| e.1.contains("64 hex digits")));
        assert!(errs.iter().any(|e| e.1.contains("not both")));
        assert_eq!(render("x", &Environment::default(), &Application::default()), None);
    }
}
