//! Build script: the git commit `stackpilot --version` prints, as the
//! STACKPILOT_COMMIT environment variable of the crate.
//!
//! The short hash of HEAD; `unknown` when the sources are not a git checkout
//! (a tarball, a vendored copy) or git is missing. A packager can set
//! STACKPILOT_COMMIT to name the commit such a copy came from. The script runs
//! again when HEAD moves (a commit, a checkout), not on every edit.

// A build script speaks to cargo on stdout.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=STACKPILOT_COMMIT");
    let given = std::env::var("STACKPILOT_COMMIT").ok().filter(|c| !c.trim().is_empty());
    let commit = given.or_else(|| git(&["rev-parse", "--short", "HEAD"])).unwrap_or_else(|| "unknown".to_string());
    // HEAD, the branch it names and packed-refs: whatever moves HEAD writes one
    // of them (in a worktree, HEAD is the worktree's, the refs are shared).
    // Only files that exist: cargo runs the script on every build for a missing one.
    let watch = |p: PathBuf| {
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    };
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        watch(PathBuf::from(head));
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            if let Some(r) = git(&["rev-parse", "--git-path", &branch]) {
                watch(PathBuf::from(r));
            }
        }
        if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
            watch(Path::new(&common).join("packed-refs"));
        }
    }
    println!("cargo:rustc-env=STACKPILOT_COMMIT={commit}");
    identical_code_folding();
}

/// Release binaries fold functions whose machine code is identical (lld's
/// `--icf=all`: serde, axum and tokio leave many such copies; about 67 KB).
///
/// Only where the linker is known to be lld: rustc 1.90 and later link
/// x86_64-unknown-linux-gnu with its own rust-lld unless told otherwise, and
/// GNU ld (or an older rustc's default, `cc` with bfd) refuses the flag. So the
/// flag is left out for another target, an older or unreadable rustc, and any
/// linker the user chose: `target.<triple>.linker` (RUSTC_LINKER),
/// CARGO_TARGET_<TRIPLE>_LINKER, or `-C linker`, `-C linker-flavor`,
/// `-C link-self-contained` or `-fuse-ld` in the rustflags.
fn identical_code_folding() {
    for var in ["PROFILE", "TARGET", "RUSTC", "RUSTC_LINKER", "CARGO_ENCODED_RUSTFLAGS"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let linker_var = "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER";
    println!("cargo:rerun-if-env-changed={linker_var}");
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    if env("PROFILE") != "release" || env("TARGET") != "x86_64-unknown-linux-gnu" {
        return;
    }
    if std::env::var_os("RUSTC_LINKER").is_some() || std::env::var_os(linker_var).is_some() {
        return;
    }
    let flags = env("CARGO_ENCODED_RUSTFLAGS");
    let chosen = ["linker", "link-self-contained", "linker-flavor", "linker-features", "fuse-ld"];
    if chosen.iter().any(|c| flags.contains(c)) {
        return;
    }
    if !rustc_at_least(1, 90) {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,--icf=all");
}

/// Whether `$RUSTC --version` names at least `major.minor` ("rustc 1.95.0 (...)").
fn rustc_at_least(major: u32, minor: u32) -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut nums = text.split_whitespace().nth(1).unwrap_or("").split('.').map(|n| n.parse::<u32>().ok());
    match (nums.next().flatten(), nums.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}
