//! The real binary in a real terminal: tmux runs `stackpilot` against the
//! simulator, keys are typed, and the screen is read back with `capture-pane`.
//! Needs tmux (installed by .ci/run).

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
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    session: String,
}

impl Tmux {
    fn start(cmd: &str, w: u16, h: u16) -> Tmux {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let session = format!("sp-e2e-{}-{n}", std::process::id());
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", &session, "-x", &w.to_string(), "-y", &h.to_string(), cmd])
            .status()
            .expect("tmux must be installed (apt-get install tmux)")
            .success();
        assert!(ok, "tmux new-session failed");
        Tmux { session }
    }
    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let st = Command::new("tmux").args(["send-keys", "-t", &self.session, k]).status().unwrap();
            assert!(st.success());
            std::thread::sleep(Duration::from_millis(120));
        }
    }
    fn literal(&self, text: &str) {
        let st = Command::new("tmux").args(["send-keys", "-t", &self.session, "-l", text]).status().unwrap();
        assert!(st.success());
        std::thread::sleep(Duration::from_millis(150));
    }
    fn screen(&self) -> String {
        let out = Command::new("tmux").args(["capture-pane", "-p", "-t", &self.session]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    /// Wait until the screen contains `text`.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("`{text}` never appeared; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }
    /// Wait until the screen no longer contains `text`.
    fn wait_gone(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            if !s.contains(text) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("`{text}` never went away; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.session]).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_tmux_against_the_simulator() {
    let h = sim_fast().await;
    control(&h, "seed", json!({"count": 3, "prefix": "web", "app": "web"})).await;
    control(&h, "seed", json!({"count": 2, "prefix": "api", "app": "api"})).await;
    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(&clouds, stackpilot::sim::clouds_yaml(&h.base_url, "sim", "admin", "secret", "admin")).unwrap();
    let cmd = format!(
        "env -u OS_CLOUD OS_CLIENT_CONFIG_FILE={} XDG_STATE_HOME={} XDG_CONFIG_HOME={} {} --cloud sim",
        clouds.display(),
        dir.path().join("state").display(),
        dir.path().join("config").display(),
        env!("CARGO_BIN_EXE_stackpilot")
    );
    let t = Tmux::start(&cmd, 120, 35);
    let s = t.wait_for("sim@RegionOne/admin");
    assert!(s.contains("Overview"), "{s}");
    t.wait_for("web");

    t.keys(&[":"]);
    t.literal("servers");
    t.keys(&["Enter"]);
    let s = t.wait_for("servers [5]");
    assert!(s.contains("web-00000") && s.contains("api-00001") && s.contains("ACTIVE"), "{s}");

    t.keys(&["/"]);
    t.literal("web");
    t.keys(&["Enter"]);
    let s = t.wait_for("servers [3]");
    assert!(!s.contains("api-00000"), "filtered: {s}");
    assert!(s.contains("filter: /web"));

    t.keys(&["Enter"]);
    let s = t.wait_for("Server web-00000");
    assert!(s.contains("status ACTIVE") && s.contains("CPU %"), "{s}");

    t.keys(&["?"]);
    let s = t.wait_for("keys of Server");
    assert!(s.contains("reboot (soft)") && s.contains("console log"), "{s}");
    t.keys(&["Escape", "Escape"]);
    let s = t.wait_for("servers [3]");
    assert!(s.contains("filter: /web"), "the filter survived going back: {s}");

    t.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Command::new("tmux").args(["has-session", "-t", &t.session]).status().map(|s| s.success()).unwrap_or(false) {
        assert!(Instant::now() < deadline, "q quits");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_dying_engine_leaves_the_terminal_intact_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // The console's own process, its engine made to panic on its first tick; after
    // quitting, the shell prints the exit status on the restored screen.
    let cmd = format!(
        "sh -c 'env STACKPILOT_TEST_PANIC=engine XDG_STATE_HOME={} XDG_CONFIG_HOME={} {} --demo --speed 60; echo EXITED $?; sleep 30'",
        dir.path().join("state").display(),
        dir.path().join("config").display(),
        env!("CARGO_BIN_EXE_stackpilot")
    );
    let t = Tmux::start(&cmd, 120, 35);
    let s = t.wait_for("engine died");
    assert!(s.contains("engine died — the engine no longer plans or acts"), "{s}");
    assert!(s.lines().next().is_some_and(|l| l.contains("stackpilot")), "the header is in place: {s}");
    assert!(!s.contains("RUST_BACKTRACE"), "no panic text over the screen: {s}");
    // Still a working console.
    t.keys(&[":"]);
    t.literal("servers");
    t.keys(&["Enter"]);
    // `:servers` replaces the view: the header names Servers, the table is drawn.
    let s = t.wait_for("STATUS");
    assert!(s.lines().next().is_some_and(|l| l.contains("Servers")), "{s}");
    assert!(s.contains("engine died"), "the banner stays: {s}");
    t.keys(&["q"]);
    let s = t.wait_for("EXITED 0");
    assert!(!s.contains("STATUS"), "the alternate screen was left: {s}");
    let crash = std::fs::read_dir(dir.path().join("state/stackpilot"))
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("crash-"))
        .expect("a crash report was written");
    let report = std::fs::read_to_string(crash.path()).unwrap();
    assert!(report.contains("injected panic in engine"), "{report}");
}

/// The processes whose environment holds `marker` (a `KEY=value`).
fn processes_with(marker: &str) -> Vec<String> {
    let want = format!("{marker}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|pid| pid.chars().all(|c| c.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| String::from_utf8_lossy(&env).contains(want.as_str()))
        })
        .collect()
}

/// Closing the window the console runs in (the pty goes away, every write
/// fails, and SIGHUP arrives — or, detached with setsid, never does) ends it
/// quietly: no crash report, no panic in the log, and the process is gone.
#[test]
fn closing_the_terminal_ends_the_console_without_a_crash() {
    for wrapper in ["", "setsid -w "] {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let cmd = format!(
            "{wrapper}env XDG_STATE_HOME={} XDG_CONFIG_HOME={} {} --demo --speed 60",
            state.display(),
            dir.path().join("config").display(),
            env!("CARGO_BIN_EXE_stackpilot")
        );
        let marker = format!("XDG_STATE_HOME={}", state.display());
        let t = Tmux::start(&cmd, 120, 35);
        t.wait_for("Overview");
        assert_eq!(processes_with(&marker).len(), 1, "{wrapper}: the console runs");
        drop(t); // kill-session: the pty closes under the running console
        let deadline = Instant::now() + Duration::from_secs(15);
        while !processes_with(&marker).is_empty() {
            assert!(Instant::now() < deadline, "{wrapper}: the console did not end after its terminal closed");
            std::thread::sleep(Duration::from_millis(100));
        }
        let files: Vec<String> = std::fs::read_dir(state.join("stackpilot"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!files.iter().any(|f| f.starts_with("crash-")), "{wrapper}: no crash report: {files:?}");
        let log = std::fs::read_to_string(state.join("stackpilot/stackpilot.log")).unwrap_or_default();
        assert!(!log.contains("panicked"), "{wrapper}: no panic in the log: {log}");
    }
}

/// Issue-level walk through policy editing on `--demo`: a quick edit of web's
/// max, an image change through `$EDITOR` (a scripted editor), the engine acting
/// on it, a restore of the previous change, and a broken edit that comes back
/// in the editor with its error and leaves the file untouched.
#[test]
fn policies_are_edited_reviewed_and_restored_in_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let policy = state.join("stackpilot/demo/policies/web.toml");
    // The editor: what it does is read from a file the test writes before each `e`.
    let editor = dir.path().join("editor.sh");
    let mode = dir.path().join("editor-mode");
    let reopened = dir.path().join("reopened.toml");
    std::fs::write(
        &editor,
        format!(
            "#!/bin/sh\n\
             if grep -q 'this change was NOT saved' \"$1\"; then cp \"$1\" {reopened}; exit 0; fi\n\
             case \"$(cat {mode})\" in\n\
             image) sed -i 's/debian-12-genericcloud-amd64/ubuntu-24.04-server-cloudimg-amd64/' \"$1\" ;;\n\
             broken) printf 'bogus = 1\\n' >> \"$1\" ;;\n\
             esac\n",
            reopened = reopened.display(),
            mode = mode.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&editor).status().unwrap();
    let cmd = format!(
        "env XDG_STATE_HOME={} XDG_CONFIG_HOME={} EDITOR={} VISUAL= {} --demo --speed 60",
        state.display(),
        dir.path().join("config").display(),
        editor.display(),
        env!("CARGO_BIN_EXE_stackpilot")
    );
    let t = Tmux::start(&cmd, 160, 45);
    t.wait_for("Overview");
    t.keys(&[":"]);
    t.literal("policies");
    t.keys(&["Enter"]);
    t.wait_for("policies [5]");
    // Select web: the filter leaves it alone.
    t.keys(&["/"]);
    t.literal("web");
    t.keys(&["Enter"]);
    t.wait_for("policies [1]");

    // 1. Raise... lower max 8 → 3 with a quick edit: c, ↓ ↓, ctrl-u, 3, enter, tab, enter.
    t.keys(&["c"]);
    t.wait_for("change web on demo");
    t.keys(&["Down", "Down", "C-u"]);
    t.literal("3");
    t.keys(&["Enter"]);
    let s = t.wait_for("max 8 → 3");
    assert!(s.contains("+capacity = { min = 2, max = 3, desired = 2 }"), "the diff: {s}");
    t.wait_gone("computing its plan");
    t.keys(&["Tab", "Enter"]);
    t.wait_for("saved (change");
    let text = std::fs::read_to_string(&policy).unwrap();
    assert!(text.contains("max = 3") && text.contains("# The web tier of the demo"), "comments kept: {text}");

    // 2. The image through $EDITOR: the review names the new revision.
    std::fs::write(&mode, "image").unwrap();
    t.keys(&["e"]);
    let s = t.wait_for("image debian-12-genericcloud-amd64 → ubuntu-24.04-server-cloudimg-amd64");
    assert!(s.contains("+image = \"ubuntu-24.04-server-cloudimg-amd64\""), "{s}");
    t.wait_for("launch spec change: revision");
    t.wait_gone("computing its plan");
    t.keys(&["Tab", "Enter"]);
    t.wait_for("saved (change");
    assert!(std::fs::read_to_string(&policy).unwrap().contains("ubuntu-24.04"));
    // The engine acts on it: a new revision with the new image.
    t.keys(&[":"]);
    t.literal("events");
    t.keys(&["Enter"]);
    t.wait_for("revision 2: image ubuntu-24.04");

    // 3. Restore the change before the image: Enter on web, j, R, tab, enter.
    t.keys(&[":"]);
    t.literal("policies");
    t.keys(&["Enter", "Enter"]);
    let s = t.wait_for("history");
    let row = s.lines().find(|l| l.contains("max 8 → 3") && !l.contains("policy-edit")).unwrap_or_default();
    assert!(!row.contains("engine") && !row.contains("unknown"), "the history says who (the OS user): {s}");
    t.keys(&["j", "R"]);
    t.wait_for("image ubuntu-24.04-server-cloudimg-amd64 → debian-12-genericcloud-amd64");
    t.wait_gone("computing its plan");
    t.keys(&["Tab", "Enter"]);
    t.wait_for("saved (change");
    let text = std::fs::read_to_string(&policy).unwrap();
    assert!(text.contains("debian-12-genericcloud-amd64") && text.contains("max = 3"), "{text}");

    // 4. A broken edit: the editor comes back with the error; quitting it unchanged writes nothing.
    std::fs::write(&mode, "broken").unwrap();
    t.keys(&["e"]);
    t.wait_for("cancelled, nothing written; the text that did not validate is kept in");
    // The rejected text is kept (privately) for the operator.
    let kept: Vec<_> = std::fs::read_dir(state.join("stackpilot/edits"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("rejected"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(std::fs::read_to_string(kept[0].path()).unwrap().contains("bogus = 1"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(kept[0].metadata().unwrap().permissions().mode() & 0o777, 0o600);
    let again = std::fs::read_to_string(&reopened).unwrap();
    assert!(again.contains("unknown field `bogus`"), "the error on top: {again}");
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), text, "the file is untouched");
    // The console is whole again after the editor.
    t.keys(&["?"]);
    t.wait_for("keys of Policy");
}

/// One view to visit: the `:` command, the text its box title starts with, the
/// columns it keeps at every width (in display order) and those only a wide
/// terminal shows.
struct Visit {
    command: &'static str,
    title: &'static str,
    columns: &'static [&'static str],
    wide_only: &'static [&'static str],
}

const VISITS: [Visit; 9] = [
    Visit { command: "overview", title: "▍demo ", columns: &[], wide_only: &[] },
    Visit {
        command: "servers",
        title: "servers [",
        columns: &["STATUS", "NAME", "APP", "CPU"],
        wide_only: &["IMAGE", "ADDRESSES", "AZ"],
    },
    Visit { command: "apps", title: "apps [", columns: &["APP", "DESIRED", "WHY", "CPU"], wide_only: &["FLAVORS"] },
    Visit {
        command: "vol",
        title: "volumes & backups [",
        columns: &["KIND", "NAME", "STATUS"],
        wide_only: &["DETAIL"],
    },
    Visit { command: "alerts", title: "alerts [", columns: &["SEV", "MESSAGE"], wide_only: &["SENT"] },
    Visit { command: "events", title: "events [", columns: &["TIME", "ACTION", "RESULT"], wide_only: &["REQUEST"] },
    Visit { command: "clouds", title: "clouds [", columns: &["CLOUD", "STATUS", "SERVERS"], wide_only: &["REQUESTS"] },
    Visit { command: "policies", title: "policies [", columns: &["APP", "STATE", "DESIRED"], wide_only: &["BY"] },
    Visit { command: "plan", title: "plan: what the engine", columns: &[], wide_only: &[] },
];

/// No line wider than the terminal.
fn assert_fits(s: &str, w: u16, what: &str) {
    use unicode_width::UnicodeWidthStr;
    for l in s.lines() {
        assert!(l.width() <= w as usize, "{what}: a line of {} columns on {w}: `{l}`\n{s}", l.width());
    }
}

/// The header row of the table whose box title contains `title`: its columns
/// in order, the wide-only ones only when `wide`, no word cut without a mark.
fn assert_header(s: &str, v: &Visit, wide: bool) {
    if v.columns.is_empty() {
        return;
    }
    let lines: Vec<&str> = s.lines().collect();
    let at = lines.iter().position(|l| l.contains(v.title)).unwrap_or_else(|| panic!("{}: no title\n{s}", v.command));
    let row = lines.get(at + 1).copied().unwrap_or_default().trim_matches('│');
    let pos: Vec<usize> = v
        .columns
        .iter()
        .map(|c| row.find(c).unwrap_or_else(|| panic!("{}: no {c} in `{row}`\n{s}", v.command)))
        .collect();
    assert!(pos.windows(2).all(|p| p[0] < p[1]), "{}: {:?} in this order: `{row}`", v.command, v.columns);
    for c in v.wide_only {
        assert_eq!(row.contains(c), wide, "{}: {c} shown only on a wide terminal: `{row}`", v.command);
    }
    for word in row.split_whitespace() {
        let word = word.trim_end_matches(['↑', '↓']);
        assert!(
            titles::TITLE_WORDS.contains(&word) || word.ends_with('…'),
            "{}: `{word}` cut without a mark in `{row}`",
            v.command
        );
    }
}

/// `--demo` in a `w`×`h` terminal: every view through `:` commands, the server
/// and policy details through Enter; each screen read back and checked.
fn every_view_fits(w: u16, h: u16) {
    let dir = tempfile::tempdir().unwrap();
    let cmd = format!(
        "env XDG_STATE_HOME={} XDG_CONFIG_HOME={} {} --demo --speed 60",
        dir.path().join("state").display(),
        dir.path().join("config").display(),
        env!("CARGO_BIN_EXE_stackpilot")
    );
    let t = Tmux::start(&cmd, w, h);
    // The tiles say what their numbers are.
    let s = t.wait_for(" VMs");
    assert!(s.contains("ready ") && s.contains(" unhealthy"), "the tile legend: {s}");
    assert_fits(&s, w, "first screen");
    let go = |command: &str| {
        t.keys(&[":"]);
        t.literal(command);
        t.keys(&["Enter"]);
    };
    for v in &VISITS {
        go(v.command);
        let s = t.wait_for(v.title);
        assert_fits(&s, w, v.command);
        assert_header(&s, v, w >= 200);
        println!("--- :{} at {w}x{h}\n{s}", v.command);
    }
    // One server, one policy.
    go("servers");
    t.wait_for("servers [");
    t.keys(&["Enter"]);
    let s = t.wait_for("     status ");
    assert!(s.contains("CPU %") && s.contains("name "), "{s}");
    assert_fits(&s, w, "server detail");
    println!("--- server detail at {w}x{h}\n{s}");
    go("policies");
    t.wait_for("policies [");
    t.keys(&["Enter"]);
    let s = t.wait_for("history (m marks, d diffs)");
    assert!(s.contains("policy ") && s.contains("WHAT CHANGED"), "{s}");
    assert_fits(&s, w, "policy detail");
    println!("--- policy detail at {w}x{h}\n{s}");
}

#[test]
fn every_view_fits_80x24() {
    every_view_fits(80, 24);
}

#[test]
fn every_view_fits_200x60() {
    every_view_fits(200, 60);
}
