//! The `stackpilot` binary's one-shot commands as a shell runs them: a pipe
//! closed by `head`, a policies directory holding a FIFO or a symlink to
//! /dev/zero, a Keystone that never answers under config.toml's timeout.

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

mod common;
use common::*;
use serde_json::json;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary with an environment of its own (config, state, clouds.yaml in `home`).
fn stackpilot(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stackpilot"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("OS_CLIENT_CONFIG_FILE", home.join("clouds.yaml"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"));
    cmd
}

/// Wait for `child` at most `secs`; its exit status, or a failure naming `what`.
fn finish(mut child: Child, secs: u64, what: &str) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                e.read_to_string(&mut err).unwrap();
            }
            return (st, err);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{what}: still running after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_early_ends_the_listing_quietly() {
    let h = sim_fast().await;
    // Far more than a pipe holds (64 KiB): the writer meets the closed pipe.
    control(&h, "seed", json!({"count": 3000, "prefix": "pipe"})).await;
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("clouds.yaml"),
        stackpilot::sim::clouds_yaml(&h.base_url, "sim", "admin", "secret", "admin"),
    )
    .unwrap();
    let mut child = stackpilot(home.path(), &["--cloud", "sim", "servers"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -2`: two lines, then the pipe closes.
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 256];
    let n = out.read(&mut first).unwrap();
    assert!(n > 0, "the listing starts");
    drop(out);
    let (st, err) = tokio::task::spawn_blocking(move || finish(child, 60, "servers | head")).await.unwrap();
    assert!(st.success(), "a closed pipe is not a failure: {st:?}\n{err}");
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "quiet: {err}");
}

#[test]
fn a_fifo_or_an_endless_file_named_toml_is_refused_not_read() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("policies");
    std::fs::create_dir_all(&dir).unwrap();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/policies/example.toml")).unwrap();
    std::fs::write(dir.join("web.toml"), example).unwrap();
    let fifo = dir.join("pipe.toml");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success(), "mkfifo");
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.toml")).unwrap();
    let child = stackpilot(home.path(), &["policy", "check", "--offline", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (st, err) = finish(child, 30, "policy check over a FIFO");
    assert!(!st.success(), "two files are not policies: {err}");
    for f in ["pipe.toml", "zero.toml"] {
        assert!(
            err.lines().any(|l| l.contains(f) && l.contains("not a regular file")),
            "{f} is named and refused: {err}"
        );
    }
    assert!(!err.contains("web.toml"), "the good policy passes: {err}");
}

#[test]
fn one_shots_give_up_after_the_configured_timeout() {
    // A Keystone that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for s in listener.incoming().take(8) {
            open.push(s);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("clouds.yaml"),
        format!(
            "clouds:\n  hung:\n    auth:\n      auth_url: http://127.0.0.1:{port}/v3\n      username: u\n      password: p\n      project_name: x\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(home.path().join("config/stackpilot")).unwrap();
    std::fs::write(home.path().join("config/stackpilot/config.toml"), "[refresh]\ntimeout = \"2s\"\n").unwrap();
    let child = stackpilot(home.path(), &["--cloud", "hung", "servers"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The default timeout is 30 s, and two attempts would take twice the setting:
    // ending well inside 20 s shows the setting is used, once.
    let (st, err) = finish(child, 20, "servers against a hung Keystone");
    assert!(!st.success());
    assert!(err.contains("hung") && err.to_lowercase().contains("time"), "says which cloud timed out: {err}");
    drop(held);
}

/// What the binary prints on stdout for `args` (it must succeed).
fn stdout_of(args: &[&str]) -> String {
    let home = tempfile::tempdir().unwrap();
    let out = stackpilot(home.path(), args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let text = stdout_of(&["--version"]);
    let line = text.trim_end();
    let prefix = format!("stackpilot {} (", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&prefix) && line.ends_with(')'), "{line}");
    let commit = line.trim_start_matches(&prefix).trim_end_matches(')');
    let head =
        Command::new("git").args(["rev-parse", "--short", "HEAD"]).current_dir(env!("CARGO_MANIFEST_DIR")).output();
    match head {
        Ok(o) if o.status.success() => assert_eq!(commit, String::from_utf8_lossy(&o.stdout).trim(), "{line}"),
        _ => assert_eq!(commit, "unknown", "built outside git: {line}"),
    }
}

/// `policy schema` prints the checked-in document, pretty JSON with a newline at the end.
#[test]
fn policy_schema_prints_the_document() {
    let text = stdout_of(&["policy", "schema"]);
    assert_eq!(text, include_str!("../src/policy/schema.json"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["title"], "stackpilot application policy");
    assert!(v.pointer("/properties/scaling/properties/behavior").is_some(), "{text}");
}

#[test]
fn each_subcommand_lists_only_the_flags_it_uses() {
    let console = ["--read-only", "--ascii", "--cloud", "--region", "--config", "--demo"];
    let sim = stdout_of(&["sim", "--help"]);
    assert!(sim.contains("--port") && sim.contains("--speed") && sim.contains("--world"), "{sim}");
    for f in console {
        assert!(!sim.contains(f), "`{f}` on `sim --help`:\n{sim}");
    }
    let servers = stdout_of(&["servers", "--help"]);
    for f in ["--cloud", "--region", "--config", "--output"] {
        assert!(servers.contains(f), "`{f}` missing from `servers --help`:\n{servers}");
    }
    for f in ["--read-only", "--ascii", "--demo"] {
        assert!(!servers.contains(f), "`{f}` on `servers --help`:\n{servers}");
    }
    let engine = stdout_of(&["engine", "--help"]);
    assert!(engine.contains("--read-only") && engine.contains("--cloud") && !engine.contains("--ascii"), "{engine}");
    let top = stdout_of(&["--help"]);
    for f in console {
        assert!(top.contains(f), "`{f}` missing from `--help`:\n{top}");
    }
}

#[test]
fn a_console_flag_before_a_subcommand_that_does_not_take_it_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let out = stackpilot(home.path(), &["--read-only", "sim", "--port", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`--read-only` is not a flag of `stackpilot sim`"), "{err}");
}

#[test]
fn console_flags_before_a_subcommand_reach_it() {
    use stackpilot::cli::{Cli, Command as C, PolicyCommand};
    let p = |a: &[&str]| Cli::try_parse_args_from(std::iter::once("stackpilot").chain(a.iter().copied()));
    let c = p(&["--cloud", "sim", "servers"]).unwrap();
    assert_eq!(c.cloud.as_deref(), Some("sim"));
    let c = p(&["servers", "--cloud", "sim", "--region", "R2"]).unwrap();
    assert_eq!((c.cloud.as_deref(), c.region.as_deref()), (Some("sim"), Some("R2")));
    let c = p(&["--cloud", "a", "servers", "--cloud", "b"]).unwrap();
    assert_eq!(c.cloud.as_deref(), Some("b"), "the subcommand's own wins");
    assert!(p(&["--read-only", "rollout", "resume", "web"]).unwrap().read_only);
    let c = p(&["--read-only", "policy", "retire", "web", "--cloud", "sim"]).unwrap();
    assert!(c.read_only);
    match c.command {
        Some(C::Policy(a)) => match a.command {
            PolicyCommand::Retire { cloud, .. } => assert_eq!(cloud.as_deref(), Some("sim")),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    let c = p(&["--cloud", "east", "policy", "retire", "web"]).unwrap();
    assert_eq!(c.cloud.as_deref(), Some("east"));
    let c = p(&["engine", "--read-only", "--cloud", "sim"]).unwrap();
    assert!(c.read_only && c.cloud.as_deref() == Some("sim"));
    assert_eq!(p(&["backup", "list", "--cloud", "east"]).unwrap().cloud.as_deref(), Some("east"));
    assert_eq!(p(&["--cloud", "east", "backup", "list"]).unwrap().cloud.as_deref(), Some("east"));
    let c = p(&["sim", "--port", "0"]).unwrap();
    assert!(!c.read_only && c.cloud.is_none());
    let c = p(&["--read-only", "--ascii", "--cloud", "prod"]).unwrap();
    assert!(c.read_only && c.ascii && c.cloud.as_deref() == Some("prod") && c.command.is_none());
    for bad in [&["--read-only", "sim"][..], &["--ascii", "servers"], &["--demo", "sim"], &["--region", "x", "engine"]]
    {
        let e = p(bad).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{bad:?}");
        assert!(e.to_string().contains("is not a flag of"), "{bad:?}: {e}");
    }
}

#[test]
fn a_demo_kiosk_keeps_its_engine_acting_and_a_real_cloud_kiosk_does_not() {
    use stackpilot::cli::{Access, Cli};
    let access =
        |a: &[&str]| Cli::try_parse_args_from(std::iter::once("stackpilot").chain(a.iter().copied())).unwrap().access();
    let acting = Access { console_read_only: false, engine_may_act: true };
    let watching = Access { console_read_only: true, engine_may_act: false };
    let kiosk_acting = Access { console_read_only: true, engine_may_act: true };
    // The demo's kiosk: no key changes the cloud, but the engine deploys the demo's apps.
    assert_eq!(access(&["--demo", "--kiosk"]), kiosk_acting);
    assert_eq!(access(&["--demo", "--kiosk", "--kiosk-interval", "5"]), kiosk_acting);
    // An explicit --read-only stops the demo's engine too.
    assert_eq!(access(&["--demo", "--kiosk", "--read-only"]), watching);
    assert_eq!(access(&["--demo", "--read-only"]), watching);
    assert_eq!(access(&["--demo"]), acting);
    // On a real cloud a kiosk implies read-only for the console and its engine.
    assert_eq!(access(&["--kiosk"]), watching);
    assert_eq!(access(&["--cloud", "prod", "--kiosk"]), watching);
    assert_eq!(access(&["--read-only"]), watching);
    assert_eq!(access(&[]), acting);
}
