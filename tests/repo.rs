//! The repository itself: the module walls of DESIGN.md hold, and nothing a
//! machine wrote (crash dumps, logs, pending snapshots, big outputs) sits in the
//! tree next to the sources.

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

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir`, skipping build outputs and VCS metadata.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if p.is_dir() {
            if !matches!(name.as_str(), "target" | ".git" | ".stackpilot-state") {
                files(&p, out);
            }
        } else {
            out.push(p);
        }
    }
}

#[test]
fn module_walls_hold() {
    // (module, what it may never use)
    let walls: &[(&str, &[&str])] = &[
        ("engine", &["crate::tui"]),
        ("inventory", &["crate::tui", "crate::engine"]),
        ("cloud", &["crate::tui", "crate::engine", "crate::inventory", "crate::sim"]),
        ("policy", &["crate::tui", "crate::engine", "crate::store", "crate::cloud"]),
        ("store", &["crate::tui", "crate::engine", "crate::cloud", "crate::inventory"]),
        ("domain", &["crate::tui", "crate::engine", "crate::cloud", "crate::inventory", "crate::store", "crate::sim"]),
        ("sim", &["crate::cloud", "crate::engine", "crate::tui", "crate::inventory", "crate::store"]),
    ];
    let mut broken = Vec::new();
    for (module, forbidden) in walls {
        let mut fs = Vec::new();
        files(&root().join("src").join(module), &mut fs);
        for f in fs.iter().filter(|f| f.extension().is_some_and(|e| e == "rs")) {
            let text = std::fs::read_to_string(f).unwrap();
            for (n, line) in text.lines().enumerate() {
                for bad in *forbidden {
                    if line.contains(bad) {
                        broken.push(format!("{}:{}: {module} uses {bad}", f.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "module walls broken:\n{}", broken.join("\n"));
}

#[test]
fn no_machine_written_files_in_the_tree() {
    let mut fs = Vec::new();
    files(&root(), &mut fs);
    let bad: Vec<String> = fs
        .iter()
        .filter(|f| {
            let name = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let big = std::fs::metadata(f).map(|m| m.len() > 400_000).unwrap_or(false) && !name.ends_with(".lock");
            name == "erl_crash.dump"
                || name == "core"
                || name.ends_with(".log")
                || name.ends_with(".snap.new")
                || name.starts_with("crash-")
                || big
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(bad.is_empty(), "crash dumps, logs or outputs next to the sources: {bad:?}");
}
