//! Policy changes made the way the console makes them, against the engine and
//! the simulator over HTTP: the engine's preview of a change, the save (recorded
//! with who and what, atomic, refused when the file changed on disk), the engine
//! acting on the saved file, and the per-application modes (paused, dry-run).

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
use common::rig::*;
use stackpilot::engine::policies::{save, SaveError, SaveRequest};
use stackpilot::engine::preview::{effect, Preview};
use stackpilot::engine::EngineCommand;
use stackpilot::policy::edit::{content_hash, set_fields, Field};
use stackpilot::sim::SimConfig;
use std::time::Duration;

async fn preview(eng: &Running, file: &std::path::Path, text: &str) -> Result<Preview, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    eng.handle
        .commands
        .send(EngineCommand::Preview { text: text.to_string(), file: file.to_path_buf(), reply: tx })
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx).await.unwrap().unwrap()
}

fn request(file: &std::path::Path, base: &str, text: String, summary: &str) -> SaveRequest {
    SaveRequest {
        file: file.to_path_buf(),
        base_hash: Some(content_hash(base)),
        text,
        actor: "operator:alice".into(),
        summary: summary.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_change_is_previewed_saved_attributed_and_acted_on() {
    let rig = Rig::new(SimConfig::default()).await;
    rig.policy("web", 2);
    let eng = rig.start(rig.engine_cfg());
    rig.converged(&[("web", 2)], Duration::from_secs(60)).await;
    let file = rig.policies().join("web.toml");
    let before = std::fs::read_to_string(&file).unwrap();
    let after = set_fields(&before, &[(Field::Desired, "4".into())]).unwrap();

    // The engine's own planner says what the change does, and nothing happens yet.
    let p = preview(&eng, &file, &after).await.unwrap();
    assert_eq!((p.creates, p.removes, p.desired, p.members), (2, 0, 4, 2), "{p:?}");
    let old = stackpilot::policy::parse(&before, &file).unwrap().spec;
    let new = stackpilot::policy::parse(&after, &file).unwrap().spec;
    let words = effect(Some(&old), &new, Some(&p));
    assert_eq!(words, vec!["desired 2 → 4: 2 creates"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rig.members("web").await.len(), 2, "a preview changes nothing");
    // A preview of a text that does not validate says why.
    let broken = after.replace("desired = 4", "desired = 40");
    assert!(preview(&eng, &file, &broken).await.unwrap_err().contains("outside min..max"));

    // Saved: recorded with who and what, then written; the engine acts on it.
    let generation =
        save(&eng.store, &request(&file, &before, after.clone(), &words.join("; ")), chrono::Utc::now()).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), after);
    rig.converged(&[("web", 4)], Duration::from_secs(60)).await;
    let pid = stackpilot::policy::policy_id(&rig.cloud.name, &rig.app("web"));
    let h = eng.store.policy_history(&pid).unwrap();
    assert_eq!(h[0].generation, generation);
    assert_eq!(h[0].actor.as_deref(), Some("operator:alice"));
    assert_eq!(h[0].summary.as_deref(), Some("desired 2 → 4: 2 creates"));
    assert_eq!(h[0].text.as_deref(), Some(after.as_str()));
    assert!(h[1].actor.as_deref().unwrap().starts_with("engine:"), "the first text, found by the engine: {h:?}");
    assert_eq!(events(&eng.store, "policy-edit", &rig.app("web")).len(), 1);
    // The console's view of the policy says who changed it last.
    let s = wait_status(&eng, "the last change", 10, |s| {
        s.policies.iter().any(|p| p.changed_by.as_deref() == Some("operator:alice"))
    })
    .await;
    assert!(s.policies.iter().all(|p| p.changed_at.is_some()));

    // Restoring the first text is one more change, through the same save.
    let restore = h[1].text.clone().unwrap();
    save(&eng.store, &request(&file, &after, restore, "desired 4 → 2"), chrono::Utc::now()).unwrap();
    rig.converged(&[("web", 2)], Duration::from_secs(60)).await;
    assert_eq!(eng.store.policy_history(&pid).unwrap().len(), 3);
    drop(eng);
    rig.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_on_disk_is_never_overwritten_and_bad_saves_write_nothing() {
    let rig = Rig::new(SimConfig::default()).await;
    rig.policy("web", 1);
    let store = stackpilot::store::Store::memory().unwrap();
    let file = rig.policies().join("web.toml");
    let opened = std::fs::read_to_string(&file).unwrap();
    // Someone else changes the file after it was opened.
    rig.policy("web", 3);
    let on_disk = std::fs::read_to_string(&file).unwrap();
    let mine = set_fields(&opened, &[(Field::Max, "5".into())]).unwrap();
    match save(&store, &request(&file, &opened, mine.clone(), "max 10 → 5"), chrono::Utc::now()) {
        Err(SaveError::Conflict { on_disk: d, .. }) => assert_eq!(d, on_disk),
        other => panic!("not refused: {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), on_disk, "nothing written");
    // A text that does not validate is refused.
    let bad = on_disk.replace("max = 10", "max = 0");
    assert!(matches!(
        save(&store, &request(&file, &on_disk, bad, "x"), chrono::Utc::now()),
        Err(SaveError::Invalid(_))
    ));
    // A new file where one exists is refused; a second file for the same app too.
    let new = SaveRequest { base_hash: None, ..request(&file, &on_disk, on_disk.clone(), "new") };
    assert!(matches!(save(&store, &new, chrono::Utc::now()), Err(SaveError::Exists(_))));
    let twin = SaveRequest { file: rig.policies().join("twin.toml"), ..new };
    assert!(matches!(save(&store, &twin, chrono::Utc::now()), Err(SaveError::Duplicate { .. })));
    assert!(!rig.policies().join("twin.toml").exists());
    // Nothing of it was recorded.
    let pid = stackpilot::policy::policy_id(&rig.cloud.name, &rig.app("web"));
    assert!(store.policy_history(&pid).unwrap().is_empty());
    // A write that fails is taken back from the history.
    let gone = SaveRequest { file: rig.dir.path().join("no/such/dir/web.toml"), base_hash: None, ..twin };
    assert!(matches!(save(&store, &gone, chrono::Utc::now()), Err(SaveError::Write { .. })));
    assert!(store.policy_history(&pid).unwrap().is_empty(), "a failed write leaves no change behind");
    rig.cleanup().await;
}

/// Insert `mode = "..."` in the `[app]` table of a rig's policy.
fn set_mode(rig: &Rig, short: &str, mode: &str) {
    let file = rig.policies().join(format!("{short}.toml"));
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, set_fields(&text, &[(Field::Mode, mode.into())]).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_app_is_left_alone_and_a_dry_run_app_waits_for_approval() {
    let rig = Rig::new(SimConfig::default()).await;
    rig.policy("web", 2);
    set_mode(&rig, "web", "paused");
    rig.policy("api", 1);
    set_mode(&rig, "api", "dry-run");
    let eng = rig.start(rig.engine_cfg());
    let s = wait_status(&eng, "the plans", 15, |s| {
        s.apps
            .iter()
            .any(|a| a.app == rig.app("web") && a.hold.as_deref().is_some_and(|h| h.contains("paused by its policy")))
            && s.plans.iter().any(|p| p.app == rig.app("api") && p.lines.iter().any(|x| x.starts_with("create")))
    })
    .await;
    assert!(s.approval_pending, "a dry-run app's plan waits for approval: {s:#?}");
    assert!(s.policies.iter().any(|p| p.app_mode == "paused"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(rig.members("web").await.is_empty(), "paused: nothing created");
    assert!(rig.members("api").await.is_empty(), "dry-run: nothing created before approval");
    // Approved in a console whose engine only observes (read-only): the
    // approval reaches the engine that acts, through the store.
    let mut ro_cfg = rig.engine_cfg();
    ro_cfg.may_act = false;
    ro_cfg.engine_id = format!("read-only/{}", rig.run);
    let ro = rig.start(ro_cfg);
    wait_status(&ro, "observing", 10, |s| s.observer).await;
    ro.handle.commands.send(EngineCommand::Approve).await.unwrap();
    rig.converged(&[("api", 1)], Duration::from_secs(60)).await;
    drop(ro);
    assert!(rig.members("web").await.is_empty());
    // Back to auto: the paused app converges.
    set_mode(&rig, "web", "auto");
    rig.converged(&[("web", 2), ("api", 1)], Duration::from_secs(60)).await;
    drop(eng);
    rig.cleanup().await;
}
