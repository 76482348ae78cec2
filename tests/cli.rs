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
