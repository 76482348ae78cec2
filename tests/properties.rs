//! Property tests: what a cloud, a file or a terminal user can send never
//! panics, and each parser either answers or says why in a typed error.
//!
//! - every wire decoder of the client (and the simulator's request parsers) over
//!   arbitrary JSON, and over the real vectors of ../shared/vectors with parts
//!   replaced by arbitrary values (which reaches the decoders' deep branches);
//! - clouds.yaml, config.toml and policy files: valid files with random edits;
//! - durations: anything parses or is refused, and what is written reads back;
//! - `next` links: whatever a service sends, the token stays on the endpoint;
//! - output sanitising: nothing a terminal would interpret survives.
//!
//! `PROPTEST_CASES` raises or lowers the number of cases of every property.

// Tests fail by panicking: unwrap, expect and indexing say so plainly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::let_underscore_must_use,
    clippy::print_stdout,
    clippy::print_stderr
)]

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use stackpilot::cloud::wire::{cinder, glance, gnocchi, heat, keystone, neutron, nova};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn cases(default: u32) -> Config {
    let n = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    Config { cases: n, failure_persistence: None, ..Config::default() }
}

// ---------------------------------------------------------------- JSON values

/// Keys the decoders look for, so that random objects reach their fields.
const KEYS: &[&str] = &[
    "id",
    "name",
    "status",
    "servers",
    "server",
    "servers_links",
    "links",
    "href",
    "rel",
    "next",
    "flavor",
    "flavors",
    "image",
    "images",
    "addresses",
    "addr",
    "version",
    "OS-EXT-IPS:type",
    "metadata",
    "tags",
    "created",
    "updated",
    "launched_at",
    "OS-SRV-USG:launched_at",
    "fault",
    "message",
    "code",
    "details",
    "power_state",
    "OS-EXT-STS:power_state",
    "task_state",
    "OS-EXT-STS:task_state",
    "vm_state",
    "key_name",
    "security_groups",
    "availability_zone",
    "OS-EXT-AZ:availability_zone",
    "vcpus",
    "ram",
    "disk",
    "limits",
    "absolute",
    "maxTotalInstances",
    "totalInstancesUsed",
    "maxTotalCores",
    "totalCoresUsed",
    "quota_set",
    "in_use",
    "limit",
    "volumes",
    "volume",
    "size",
    "attachments",
    "backups",
    "backup",
    "snapshots",
    "snapshot",
    "restore",
    "volume_id",
    "networks",
    "ports",
    "fixed_ips",
    "ip_address",
    "floatingips",
    "router:external",
    "token",
    "expires_at",
    "issued_at",
    "catalog",
    "endpoints",
    "interface",
    "region",
    "region_id",
    "url",
    "type",
    "project",
    "user",
    "domain",
    "roles",
    "methods",
    "stacks",
    "stack",
    "stack_status",
    "measures",
    "granularity",
    "aggregated",
    "references",
    "measures_",
    "metrics",
    "archive_policy",
    "definition",
    "timespan",
    "points",
    "resource_id",
    "auth",
    "identity",
    "password",
    "application_credential",
    "secret",
    "scope",
    "system",
    "versions",
    "min_version",
    "count",
    "min_count",
    "max_count",
    "networks_links",
    "imageRef",
    "flavorRef",
    "user_data",
    "block_device_mapping_v2",
    "badRequest",
    "computeFault",
    "itemNotFound",
    "error",
    "NeutronError",
    "title",
    "output",
    "data",
    "result",
    "resultType",
    "value",
    "metric",
    "errorType",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        any::<String>().prop_map(Value::String),
        prop::sample::select(vec![
            "",
            "ACTIVE",
            "ERROR",
            "2026-11-25T12:00:00Z",
            "2026-11-25T12:00:00.123456",
            "2026-11-25 12:00:00",
            "-1",
            "1e308",
            "NaN",
            "inf",
            "-9223372036854775808",
            "300.0",
            "1:00:00",
            "00:05:00",
            "next",
            "http://h/v2/images?marker=x",
            "../../etc",
            "\u{1b}[2J",
            "é",
            "0 days, 1:00:00",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Map<String, Value>>())
            }),
        ]
    })
}

/// Every JSON file of ../shared/vectors.
fn vectors() -> &'static [(String, Value)] {
    static V: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    V.get_or_init(|| {
        let root = std::env::var("STACKPILOT_VECTORS")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors")));
        let mut out = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "json") {
                    let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                    out.push((p.strip_prefix(&root).unwrap().display().to_string(), v));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        assert!(out.len() > 50, "the vectors are there: {}", out.len());
        out
    })
}

/// The JSON pointers of every node of `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                pointers(x, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// A vector with up to four of its nodes replaced by arbitrary values.
fn mutated_vector() -> impl Strategy<Value = (String, Value)> {
    let n = vectors().len();
    (0..n, prop::collection::vec((any::<prop::sample::Index>(), json()), 1..5)).prop_map(|(i, edits)| {
        let (name, v) = &vectors()[i];
        let mut v = v.clone();
        for (at, new) in edits {
            let mut ps = Vec::new();
            pointers(&v, String::new(), &mut ps);
            let p = at.get(&ps).clone();
            if p.is_empty() {
                v = new;
            } else if let Some(slot) = v.pointer_mut(&p) {
                *slot = new;
            }
        }
        (name.clone(), v)
    })
}

/// A decoder's result, looked at and let go (only a panic fails a property).
fn keep<T>(_: T) {}

fn decode<T: DeserializeOwned>(v: &Value) -> Option<T> {
    // A typed error is the other answer; only a panic fails the property.
    serde_json::from_value::<T>(v.clone()).ok()
}

/// Hand `v` to every decoder and conversion that reads cloud answers (and to the
/// simulator's request parsers, the server side of the same wire).
fn decode_everything(v: &Value) {
    let raw = v.to_string();
    if let Some(p) = decode::<nova::ServersPage>(v) {
        for s in &p.servers {
            let _ = nova::server_from_raw(&s.to_string());
        }
        let _ = stackpilot::cloud::wire::next_link(&p.servers_links);
    }
    if let Some(b) = decode::<nova::ServerBody>(v) {
        let _ = nova::server_from_raw(&b.server.to_string());
    }
    let _ = nova::server_from_raw(&raw);
    let _ = decode::<nova::CreatedServerBody>(v);
    if let Some(p) = decode::<nova::FlavorsPage>(v) {
        p.flavors.into_iter().for_each(|f| keep(f.into_domain()));
    }
    if let Some(l) = decode::<nova::LimitsBody>(v) {
        let _ = l.limits.into_domain().headroom(2, 2048);
    }
    if let Some(q) = decode::<nova::QuotaSetBody>(v) {
        let _ = (q.limit("instances"), q.in_use("cores"));
    }
    let _ = decode::<nova::VersionBody>(v);
    let _ = decode::<nova::TagsBody>(v);
    let _ = decode::<nova::ConsoleOutputBody>(v);
    if let Some(p) = decode::<glance::ImagesPage>(v) {
        p.images.into_iter().for_each(|i| keep(i.into_domain()));
    }
    if let Some(p) = decode::<neutron::NetworksPage>(v) {
        p.networks.into_iter().for_each(|n| keep(n.into_domain()));
    }
    if let Some(p) = decode::<neutron::PortsPage>(v) {
        p.ports.into_iter().for_each(|n| keep(n.into_domain()));
    }
    if let Some(p) = decode::<neutron::FloatingIpsPage>(v) {
        p.floatingips.into_iter().for_each(|n| keep(n.into_domain()));
    }
    if let Some(p) = decode::<cinder::VolumesPage>(v) {
        p.volumes.iter().filter_map(decode::<cinder::WVolume>).for_each(|x| keep(x.into_domain()));
    }
    if let Some(p) = decode::<cinder::BackupsPage>(v) {
        p.backups.iter().filter_map(decode::<cinder::WBackup>).for_each(|x| keep(x.into_domain()));
    }
    if let Some(p) = decode::<cinder::SnapshotsPage>(v) {
        p.snapshots.into_iter().for_each(|x| keep(x.into_domain()));
    }
    if let Some(b) = decode::<cinder::VolumeBody>(v) {
        keep(b.volume.into_domain());
    }
    if let Some(b) = decode::<cinder::BackupBody>(v) {
        keep(b.backup.into_domain());
    }
    if let Some(b) = decode::<cinder::SnapshotBody>(v) {
        keep(b.snapshot.into_domain());
    }
    let _ = decode::<cinder::RestoreBody>(v);
    if let Some(l) = decode::<cinder::VolumeLimitsBody>(v) {
        keep(l.limits.into_domain());
    }
    if let Some(p) = decode::<heat::StacksPage>(v) {
        p.stacks.iter().for_each(|s| keep(s.action_state()));
    }
    if let Some(t) = decode::<keystone::TokenBody>(v) {
        t.token.catalog.iter().flat_map(|c| &c.endpoints).for_each(|e| keep(e.region()));
    }
    let _ = decode::<keystone::CatalogBody>(v);
    let _ = gnocchi::parse_measures(v);
    let _ = gnocchi::parse_aggregates(v);
    if let Some(r) = decode::<gnocchi::Resource>(v) {
        let _ = r.attr("flavor_id");
    }
    let _ = decode::<gnocchi::ArchivePolicy>(v);
    let _ = decode::<gnocchi::Metric>(v);
    if let Some(s) = v.as_str() {
        let _ = gnocchi::parse_timedelta(s);
        let _ = stackpilot::domain::time::parse_timestamp(s);
    }
    let _ = stackpilot::cloud::error::error_message(&raw);
    let _ = stackpilot::inventory::prometheus::parse(raw.as_bytes());
    let _ = stackpilot::sim::keystone::parse_auth(v);
    let _ = stackpilot::sim::nova::parse_create(v, (2, 1));
    let _ = stackpilot::sim::nova::parse_create(v, (2, 90));
}

proptest! {
    #![proptest_config(cases(10_000))]

    #[test]
    fn arbitrary_json_never_panics_a_decoder(v in json()) {
        decode_everything(&v);
    }

    #[test]
    fn real_answers_with_arbitrary_parts_never_panic_a_decoder((_name, v) in mutated_vector()) {
        decode_everything(&v);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_text_decoders(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = nova::server_from_raw(&text);
        let _ = stackpilot::cloud::error::error_message(&text);
        let _ = stackpilot::inventory::prometheus::parse(&bytes);
        let _ = stackpilot::cloud::session::parse_version(&text);
        let _ = stackpilot::domain::cron::Cron::parse(&text);
    }
}

// ------------------------------------------------------------------ files

/// Random edits of a valid text: characters inserted, removed or replaced,
/// lines duplicated or dropped (indentation and structure break in every way).
#[derive(Debug, Clone)]
enum Edit {
    Insert(prop::sample::Index, String),
    Remove(prop::sample::Index, usize),
    DupLine(prop::sample::Index),
    DropLine(prop::sample::Index),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let piece = prop_oneof![
        any::<String>(),
        prop::sample::select(vec![
            " ",
            "  ",
            "\t",
            "\n",
            ":",
            ": ",
            "-",
            "- ",
            "=",
            "\"",
            "'",
            "[",
            "]",
            "{",
            "}",
            "#",
            "\\",
            "~",
            "*",
            "&a",
            "!!binary",
            "0x",
            "1e999",
            "-1",
            "99999999999999999999",
            "null",
            "true",
            "é",
            "\u{0}",
            "[[",
            "]]",
            "\"\"\"",
            "10s",
            "0s",
            "100y",
            "ms",
            "${X}",
            "{app}",
            "%",
        ])
        .prop_map(String::from),
    ];
    prop::collection::vec(
        prop_oneof![
            (any::<prop::sample::Index>(), piece).prop_map(|(i, s)| Edit::Insert(i, s)),
            (any::<prop::sample::Index>(), 1usize..12).prop_map(|(i, n)| Edit::Remove(i, n)),
            any::<prop::sample::Index>().prop_map(Edit::DupLine),
            any::<prop::sample::Index>().prop_map(Edit::DropLine),
        ],
        1..6,
    )
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut t: Vec<char> = text.chars().collect();
    for e in edits {
        match e {
            Edit::Insert(i, s) => {
                let at = i.index(t.len() + 1);
                t.splice(at..at, s.chars());
            }
            Edit::Remove(i, n) if !t.is_empty() => {
                let at = i.index(t.len());
                t.drain(at..(at + n).min(t.len()));
            }
            Edit::DupLine(i) | Edit::DropLine(i) => {
                let s: String = t.iter().collect();
                let mut lines: Vec<&str> = s.split('\n').collect();
                let at = i.index(lines.len());
                if matches!(e, Edit::DupLine(_)) {
                    lines.insert(at, lines[at]);
                } else {
                    lines.remove(at);
                }
                t = lines.join("\n").chars().collect();
            }
            Edit::Remove(..) => {}
        }
    }
    t.into_iter().collect()
}

const CLOUDS: &str = "clouds:
  prod:
    auth:
      auth_url: https://keystone.prod:5000/v3
      username: ops
      password: file-pass
      project_name: web
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
  appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://k/v3
      application_credential_id: abc
      application_credential_secret: s3
    regions: [West, East]
    verify: false
";

const SECURE: &str = "clouds:\n  prod:\n    auth:\n      password: secure-pass\n";

fn policy_example() -> &'static str {
    static T: OnceLock<String> = OnceLock::new();
    T.get_or_init(|| {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/policies/example.toml")).unwrap()
    })
}

fn config_example() -> &'static str {
    static T: OnceLock<String> = OnceLock::new();
    T.get_or_init(|| {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/config.example.toml")).unwrap()
    })
}

fn file_in(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn edited_clouds_files_resolve_or_say_where_and_never_leak(e in edits(), s in edits()) {
        let dir = tempfile::tempdir().unwrap();
        let clouds = file_in(dir.path(), "clouds.yaml", &apply(CLOUDS, &e));
        let secure = file_in(dir.path(), "secure.yaml", &apply(SECURE, &s));
        let env = stackpilot::config::paths::MapEnv::default();
        match stackpilot::config::clouds::CloudsFile::from_paths(&clouds, Some(&secure), &env) {
            Ok(cf) => {
                for name in cf.names() {
                    if let Err(err) = cf.resolve(&name) {
                        let m = err.to_string();
                        prop_assert!(!m.contains("file-pass") && !m.contains("secure-pass") && !m.contains("s3cr"), "{m}");
                        prop_assert!(!m.contains('\n'), "one line: {m}");
                    }
                }
            }
            Err(err) => {
                let m = err.to_string();
                prop_assert!(m.contains("clouds.yaml") || m.contains("secure.yaml"), "names the file: {m}");
                prop_assert!(!m.contains("file-pass") && !m.contains("secure-pass"), "{m}");
            }
        }
    }

    #[test]
    fn edited_policies_parse_or_say_where(e in edits()) {
        let text = apply(policy_example(), &e);
        if let Err(errs) = stackpilot::policy::parse(&text, Path::new("web.toml")) {
            prop_assert!(!errs.is_empty());
            for err in errs {
                prop_assert!(err.to_string().starts_with("web.toml"), "{err}");
                if let Some(l) = err.line {
                    prop_assert!(l >= 1 && l <= text.lines().count().max(1) + 1, "line {l} of {}: {err}", text.lines().count());
                }
            }
        }
    }

    #[test]
    fn edited_settings_parse_or_say_where(e in edits()) {
        let text = apply(config_example(), &e);
        if let Err(err) = stackpilot::config::settings::Settings::parse(&text, Path::new("config.toml")) {
            prop_assert!(err.to_string().starts_with("config.toml"), "{err}");
        }
    }
}

// ------------------------------------------------------------ small parsers

proptest! {
    #![proptest_config(cases(10_000))]

    #[test]
    fn any_text_is_a_duration_or_not_and_never_a_panic(s in any::<String>()) {
        let _ = stackpilot::domain::time::parse_duration(&s);
        let _ = toml::from_str::<std::collections::BTreeMap<String, stackpilot::domain::Dur>>(&format!("d = {s:?}"));
    }

    #[test]
    fn written_durations_read_back(n in 0u64..100_000, unit in prop::sample::select(vec!["ms", "s", "m", "h", "d"])) {
        use stackpilot::domain::time::{format_duration, parse_duration, MAX_DURATION};
        let ms = n * match unit { "ms" => 1, "s" => 1000, "m" => 60_000, "h" => 3_600_000, _ => 86_400_000 };
        let Some(d) = parse_duration(&format!("{n}{unit}")) else {
            prop_assert!(ms > MAX_DURATION.as_millis() as u64, "{n}{unit} is refused only beyond 100 years");
            return Ok(());
        };
        prop_assert_eq!(d.as_millis() as u64, ms);
        let back = parse_duration(&format_duration(d)).unwrap();
        prop_assert_eq!(back, d);
        prop_assert_eq!(parse_duration(&format!(" {n}{unit} ")), Some(d), "spaces around are fine");
    }

    #[test]
    fn next_links_never_leave_the_endpoint(
        scheme in prop::sample::select(vec!["", "http://", "https://", "HTTP://", "//", "/", "ftp://", "javascript:"]),
        user in prop::sample::select(vec!["", "u@", "u:p@", "@", ":@"]),
        host in prop::sample::select(vec!["", "h", "h:8080", "H:8080", "h:80", "evil", "evil:8080", "h.evil", "127.0.0.1", "[::1]", "h:8080@evil", "%68"]),
        path in any::<String>(),
    ) {
        use stackpilot::cloud::session::resolve_link;
        let ep = url::Url::parse("http://h:8080/image/v2").unwrap();
        let prefix = url::Url::parse("http://h:8080/image").unwrap();
        let link = format!("{scheme}{user}{host}{path}");
        if let Ok(u) = resolve_link(&ep, &prefix, &link) {
            prop_assert_eq!(u.scheme(), "http", "{}", link);
            prop_assert_eq!(u.host_str(), Some("h"), "{}", link);
            prop_assert_eq!(u.port_or_known_default(), Some(8080), "{}", link);
            prop_assert!(u.username().is_empty() && u.password().is_none(), "{}", link);
        }
    }

    #[test]
    fn sanitised_text_holds_nothing_a_terminal_interprets(s in any::<String>(), ctl in prop::collection::vec(prop_oneof![0u32..0x20, Just(0x7f), 0x80u32..0xa0, 0x202au32..0x202f, 0x2066u32..0x206a], 0..8)) {
        use stackpilot::domain::text::{is_safe, sanitize, sanitize_lines};
        let mut s = s;
        for c in ctl.into_iter().filter_map(char::from_u32) {
            s.push(c);
            s.push('x');
        }
        let clean = sanitize(&s);
        prop_assert!(is_safe(&clean), "{:?}", clean);
        prop_assert!(!clean.chars().any(|c| c.is_control()), "{:?}", clean);
        prop_assert_eq!(clean.chars().count(), s.chars().count(), "one stand-in per character");
        let again = sanitize(&clean).into_owned();
        prop_assert_eq!(again.as_str(), clean.as_ref(), "idempotent");
        let lines = sanitize_lines(&s);
        prop_assert!(!lines.chars().any(|c| c.is_control() && c != '\n' && c != '\t'), "{:?}", lines);
        let width = unicode_width::UnicodeWidthStr::width(clean.as_ref());
        prop_assert!(width <= 2 * clean.chars().count(), "{}", width);
    }
}
