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
}
