//! stackpilot's own settings (`config.toml`): refresh intervals, metric retention,
//! theme, key bindings and engine mode. Parsing is strict: an unknown key or a wrong
//! type is an error with file:line:col.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::domain::time::Dur;
use crate::domain::time::DurRange;

/// The engine's tick: at least 100 ms (no busy loop), at most an hour.
pub const TICK_RANGE: DurRange = DurRange::new(Dur::millis(100), Dur::secs(3600));

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EngineMode {
    /// The engine plans nothing and acts on nothing.
    #[default]
    Off,
    /// The engine plans and shows its plan; an operator approves it.
    DryRun,
    /// The engine acts on its plan.
    Auto,
}

impl EngineMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            EngineMode::Off => "off",
            EngineMode::DryRun => "dry-run",
            EngineMode::Auto => "auto",
        }
    }
    pub fn parse(s: &str) -> Option<EngineMode> {
        match s {
            "off" => Some(EngineMode::Off),
            "dry-run" | "dryrun" | "dry_run" => Some(EngineMode::DryRun),
            "auto" => Some(EngineMode::Auto),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    #[default]
    Dark,
    Light,
    Mono,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Refresh {
    pub servers: Dur,
    pub flavors: Dur,
    pub images: Dur,
    pub networks: Dur,
    pub volumes: Dur,
    pub backups: Dur,
    pub metrics: Dur,
    pub limits: Dur,
    /// A full server list every so often catches deletions `changes-since` can miss.
    pub full_resync: Dur,
    /// Per-request timeout of a poll.
    pub timeout: Dur,
    /// Longest backoff after failures.
    pub max_backoff: Dur,
}

impl Default for Refresh {
    fn default() -> Self {
        let s = |n| Dur(Duration::from_secs(n));
        Refresh {
            servers: s(5),
            flavors: s(600),
            images: s(600),
            networks: s(600),
            volumes: s(15),
            backups: s(30),
            metrics: s(30),
            limits: s(60),
            full_resync: s(300),
            timeout: s(20),
            max_backoff: s(120),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// How much history each series keeps.
    pub retention: Dur,
    /// Gnocchi granularity (seconds) read; must exist in the archive policy.
    pub granularity: u32,
    /// At most this many servers have their metrics polled (busiest apps first).
    pub max_servers: usize,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings { retention: Dur(Duration::from_secs(3600)), granularity: 60, max_servers: 500 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiSettings {
    pub theme: Theme,
    pub ascii: bool,
    pub max_fps: u32,
    /// Data older than this many refresh intervals is shown as stale.
    pub stale_after: u32,
    /// Mouse capture: a click selects a row, the wheel scrolls. Off by default:
    /// while the console captures the mouse, the terminal cannot select text to
    /// copy (over SSH too) without holding Shift.
    pub mouse: bool,
}

impl Default for UiSettings {
    fn default() -> Self {
        UiSettings { theme: Theme::Dark, ascii: false, max_fps: 30, stale_after: 3, mouse: false }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    pub mode: EngineMode,
    pub policies_dir: Option<PathBuf>,
    pub tick: Dur,
    pub concurrency: usize,
    /// Loopback port of `/metrics` and `/healthz` for `stackpilot engine`.
    pub metrics_port: u16,
    pub create_visibility_timeout: Dur,
    pub build_timeout: Dur,
    pub orphan_grace: Dur,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            mode: EngineMode::Off,
            policies_dir: None,
            tick: Dur(Duration::from_secs(10)),
            concurrency: 4,
            metrics_port: 9187,
            create_visibility_timeout: Dur(Duration::from_secs(120)),
            build_timeout: Dur(Duration::from_secs(1200)),
            orphan_grace: Dur(Duration::from_secs(600)),
        }
    }
}

/// An Alertmanager that gets the engine's alerts (`[[alerting.alertmanager]]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerReceiver {
    /// Its base URL, e.g. `http://alertmanager:9093`.
    pub url: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "default_receiver_timeout")]
    pub timeout: Dur,
}

/// A webhook that gets one signed JSON document per notification (`[[alerting.webhook]]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookReceiver {
    pub url: String,
    #[serde(default)]
    pub name: Option<String>,
    /// The HMAC-SHA256 key, from this environment variable ...
    #[serde(default)]
    pub secret_env: Option<String>,
    /// ... or from this file (never written in the settings themselves).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default = "default_receiver_timeout")]
    pub timeout: Dur,
}

fn default_receiver_timeout() -> Dur {
    Dur(Duration::from_secs(10))
}

/// Where alerts go besides the console (`[alerting]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingSettings {
    /// A firing alert is sent to webhooks again after this long (until it is
    /// acknowledged or resolved).
    pub repeat_interval: Dur,
    /// Firing alerts are sent to Alertmanager again this often.
    pub resend: Dur,
    /// `info`, `warning` or `critical`: the lowest severity sent out.
    pub min_severity: String,
    pub alertmanager: Vec<AlertmanagerReceiver>,
    pub webhook: Vec<WebhookReceiver>,
}

impl Default for AlertingSettings {
    fn default() -> Self {
        AlertingSettings {
            repeat_interval: Dur(Duration::from_secs(3600)),
            resend: Dur(Duration::from_secs(60)),
            min_severity: "warning".into(),
            alertmanager: vec![],
            webhook: vec![],
        }
    }
}

/// The whole `config.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub refresh: Refresh,
    pub metrics: MetricsSettings,
    pub ui: UiSettings,
    pub engine: EngineSettings,
    pub alerting: AlertingSettings,
    /// Key bindings: action name → key (`""` unbinds).
    pub keys: BTreeMap<String, String>,
    /// Clouds marked protected ask the operator to type the name before dangerous actions.
    pub protected_clouds: Vec<String>,
    /// Extra clouds shown side by side in the console.
    pub clouds: Vec<String>,
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// Line of each key binding in the file (for conflict reports).
    #[serde(skip)]
    pub key_lines: BTreeMap<String, usize>,
}

/// A settings error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.col, self.message)
    }
}

impl std::error::Error for SettingsError {}

impl Settings {
    /// Parse settings text; `file` is used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Settings, SettingsError> {
        let mut s: Settings = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map_or((1, 1), |sp| super::line_col(text, sp.start));
            SettingsError { file: file.to_path_buf(), line, col, message: e.message().trim().replace('\n', " ") }
        })?;
        s.source = Some(file.to_path_buf());
        // Record where each key binding was written.
        let mut in_keys = false;
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.starts_with('[') {
                in_keys = t == "[keys]";
                continue;
            }
            if in_keys {
                if let Some((k, _)) = t.split_once('=') {
                    let k = k.trim().trim_matches('"').trim_matches('\'').to_string();
                    s.key_lines.insert(k, i + 1);
                }
            }
        }
        s.check(text, file)?;
        Ok(s)
    }

    /// Every duration against its sane range, and the numbers that must not be 0.
    fn check(&self, text: &str, file: &Path) -> Result<(), SettingsError> {
        let at = |path: &str, message: String| {
            let (line, col) = super::toml_position(text, path).unwrap_or((1, 1));
            SettingsError { file: file.to_path_buf(), line, col, message: format!("{path}: {message}") }
        };
        for (path, d, range) in self.durations() {
            range.check(d.0).map_err(|m| at(path, m.to_string()))?;
        }
        if self.ui.max_fps == 0 || self.ui.max_fps > 120 {
            return Err(at("ui.max_fps", format!("must be between 1 and 120, got {}", self.ui.max_fps)));
        }
        if self.engine.concurrency == 0 || self.engine.concurrency > 64 {
            return Err(at("engine.concurrency", format!("must be between 1 and 64, got {}", self.engine.concurrency)));
        }
        if self.metrics.granularity == 0 || self.metrics.granularity > 86_400 {
            return Err(at(
                "metrics.granularity",
                format!("must be between 1 and 86400 seconds, got {}", self.metrics.granularity),
            ));
        }
        if self.ui.stale_after == 0 {
            return Err(at("ui.stale_after", "must be at least 1 (refresh intervals)".into()));
        }
        if !["info", "warning", "critical"].contains(&self.alerting.min_severity.as_str()) {
            return Err(at(
                "alerting.min_severity",
                format!("`{}`: use info, warning or critical", self.alerting.min_severity),
            ));
        }
        for w in &self.alerting.webhook {
            if w.secret_env.is_some() && w.secret_file.is_some() {
                return Err(at("alerting.webhook", "give secret_env or secret_file, not both".into()));
            }
        }
        for url in self.alerting.alertmanager.iter().map(|a| &a.url).chain(self.alerting.webhook.iter().map(|w| &w.url))
        {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(at("alerting", format!("`{url}`: a receiver URL starts with http:// or https://")));
            }
        }
        Ok(())
    }

    /// Every duration setting with its dotted path and allowed range.
    pub fn durations(&self) -> Vec<(&'static str, Dur, DurRange)> {
        let r = &self.refresh;
        let e = &self.engine;
        // 200 ms is the fastest refresh anything needs (tests, a lab); 0 would
        // list servers hundreds of times a second.
        let poll = DurRange::new(Dur::millis(200), Dur::secs(86_400));
        vec![
            (
                "alerting.repeat_interval",
                self.alerting.repeat_interval,
                DurRange::new(Dur::secs(1), Dur::secs(7 * 86_400)),
            ),
            ("alerting.resend", self.alerting.resend, DurRange::new(Dur::secs(1), Dur::secs(3600))),
            ("refresh.servers", r.servers, poll),
            ("refresh.flavors", r.flavors, poll),
            ("refresh.images", r.images, poll),
            ("refresh.networks", r.networks, poll),
            ("refresh.volumes", r.volumes, poll),
            ("refresh.backups", r.backups, poll),
            ("refresh.metrics", r.metrics, poll),
            ("refresh.limits", r.limits, poll),
            ("refresh.full_resync", r.full_resync, DurRange::new(Dur::secs(1), Dur::secs(86_400))),
            ("refresh.timeout", r.timeout, DurRange::new(Dur::secs(1), Dur::secs(600))),
            ("refresh.max_backoff", r.max_backoff, DurRange::new(Dur::millis(200), Dur::secs(3600))),
            ("metrics.retention", self.metrics.retention, DurRange::new(Dur::secs(60), Dur::secs(7 * 86_400))),
            ("engine.tick", e.tick, TICK_RANGE),
            (
                "engine.create_visibility_timeout",
                e.create_visibility_timeout,
                DurRange::new(Dur::secs(1), Dur::secs(3600)),
            ),
            ("engine.build_timeout", e.build_timeout, DurRange::new(Dur::secs(60), Dur::secs(86_400))),
            ("engine.orphan_grace", e.orphan_grace, DurRange::new(Dur::secs(1), Dur::secs(30 * 86_400))),
        ]
    }

    /// Load from a path; a missing file gives the defaults.
    pub fn load(path: &Path) -> Result<Settings, SettingsError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Settings::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(e) => {
                Err(SettingsError { file: path.to_path_buf(), line: 1, col: 1, message: format!("cannot read: {e}") })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_empty() {
        let s = Settings::parse("", Path::new("c.toml")).unwrap();
        assert_eq!(s.refresh.servers.0, Duration::from_secs(5));
        assert_eq!(s.engine.mode, EngineMode::Off);
    }

    #[test]
    fn parses_a_full_file() {
        let text = r#"
[refresh]
servers = "3s"
metrics = 45

[ui]
theme = "mono"

[engine]
mode = "dry-run"

[keys]
reboot = "R"
delete = ""
"#;
        let s = Settings::parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(s.refresh.servers.0, Duration::from_secs(3));
        assert_eq!(s.refresh.metrics.0, Duration::from_secs(45));
        assert_eq!(s.ui.theme, Theme::Mono);
        assert_eq!(s.engine.mode, EngineMode::DryRun);
        assert_eq!(s.keys.get("reboot").map(String::as_str), Some("R"));
        assert_eq!(s.key_lines.get("delete"), Some(&14));
    }

    #[test]
    fn mouse_is_off_unless_the_ui_section_turns_it_on() {
        assert!(!Settings::parse("", Path::new("c.toml")).unwrap().ui.mouse);
        assert!(Settings::parse("[ui]\nmouse = true\n", Path::new("c.toml")).unwrap().ui.mouse);
        let e = Settings::parse("[ui]\nmouse = \"yes\"\n", Path::new("c.toml")).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn unknown_keys_are_errors_with_position() {
        let text = "[refresh]\nservers = \"5s\"\nserverz = \"1s\"\n";
        let e = Settings::parse(text, Path::new("/etc/c.toml")).unwrap_err();
        assert_eq!((e.line, e.col), (3, 1));
        assert!(e.to_string().starts_with("/etc/c.toml:3:1: unknown field `serverz`"), "{e}");
    }

    #[test]
    fn bad_values_are_errors_with_position() {
        let e = Settings::parse("[refresh]\nservers = \"5 minutes\"\n", Path::new("c.toml")).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("invalid duration"), "{e}");
        let e = Settings::parse("[engine]\nmode = \"yolo\"\n", Path::new("c.toml")).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("off") && e.message.contains("dry-run"), "{e}");
        let e = Settings::parse("[ui]\nmax_fps = 0\n", Path::new("c.toml")).unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn durations_out_of_range_are_errors_with_position() {
        for (text, line, what) in [
            (
                "[engine]\nmode = \"auto\"\ntick = \"0s\"\n",
                3,
                "engine.tick: 0s is out of range: expected between 100ms and 1h",
            ),
            ("[refresh]\nservers = \"0s\"\n", 2, "refresh.servers: 0s is out of range: expected between 200ms and 1d"),
            ("[engine]\norphan_grace = \"150000000000d\"\n", 2, "invalid duration `150000000000d`"),
            ("[engine]\norphan_grace = \"40d\"\n", 2, "engine.orphan_grace: 40d is out of range"),
            ("[refresh]\ntimeout = 0\n", 2, "refresh.timeout: 0s is out of range"),
        ] {
            let e = Settings::parse(text, Path::new("c.toml")).unwrap_err();
            assert_eq!(e.line, line, "{e}");
            assert!(e.message.contains(what), "{e}");
        }
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_shipped_example_parses_to_the_defaults() {
        let text = include_str!("../../config/config.example.toml");
        let s = Settings::parse(text, Path::new("config.example.toml")).unwrap();
        assert_eq!(s.refresh, Refresh::default());
        assert_eq!(s.metrics, MetricsSettings::default());
        assert_eq!(s.ui, UiSettings::default());
        assert_eq!(s.engine, EngineSettings::default());
    }
}
