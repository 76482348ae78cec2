//! Which long-running tasks are alive. Every poller, observer and the engine
//! holds a guard for as long as it runs; the guard notes the end when the task
//! returns, is aborted or panics (with the panic's message when the process's
//! panic hook passed it on). `/healthz`, the console's banner and the headless
//! engine's exit status read it.

use crate::domain::Timestamp;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// How a task stands.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskState {
    Running,
    /// It ended; `panic` holds the panic's message when it panicked.
    Ended {
        at: Timestamp,
        panic: Option<String>,
    },
}

/// Shared registry of task states; cheap to clone.
#[derive(Clone)]
pub struct Liveness {
    tasks: Arc<Mutex<BTreeMap<String, TaskState>>>,
    changed: watch::Sender<u64>,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness { tasks: Arc::default(), changed: watch::channel(0).0 }
    }
}

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Liveness").field("tasks", &self.tasks()).finish()
    }
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Called by the process's panic hook: the message a guard dropped while this
/// thread unwinds reports.
pub fn note_panic(message: String) {
    LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
}

impl Liveness {
    /// Register a running task; it is alive until the guard drops.
    pub fn register(&self, name: impl Into<String>) -> TaskGuard {
        let name = name.into();
        if let Ok(mut t) = self.tasks.lock() {
            t.insert(name.clone(), TaskState::Running);
        }
        self.changed.send_modify(|n| *n += 1);
        TaskGuard { name, live: self.clone() }
    }

    /// Every task and its state.
    pub fn tasks(&self) -> BTreeMap<String, TaskState> {
        self.tasks.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Tasks that ended, with how (a task ends only when something went wrong or
    /// the program stops).
    pub fn dead(&self) -> Vec<(String, TaskState)> {
        self.tasks().into_iter().filter(|(_, s)| *s != TaskState::Running).collect()
    }

    /// A receiver that changes whenever a task starts or ends.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Wait until a task ends (returns at once when one already has).
    pub async fn first_death(&self) -> (String, TaskState) {
        let mut rx = self.changed.subscribe();
        loop {
            if let Some(d) = self.dead().into_iter().next() {
                return d;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    fn end(&self, name: &str) {
        let panic = std::thread::panicking()
            .then(|| LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| "panicked".into()));
        if let Ok(mut t) = self.tasks.lock() {
            t.insert(name.to_string(), TaskState::Ended { at: chrono::Utc::now(), panic });
        }
        self.changed.send_modify(|n| *n += 1);
    }
}

/// Marks its task ended when dropped (return, abort or panic).
pub struct TaskGuard {
    name: String,
    live: Liveness,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.live.end(&self.name);
    }
}

/// Fault injection for the supervision tests, in debug builds only: the task
/// named by `STACKPILOT_TEST_PANIC` panics at its next turn, as a bug would.
pub fn injected_panic(name: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("STACKPILOT_TEST_PANIC").is_ok_and(|v| v == name) {
        #[allow(clippy::panic)]
        {
            panic!("injected panic in {name} (STACKPILOT_TEST_PANIC)");
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// One line about a task that ended.
pub fn describe(name: &str, s: &TaskState) -> String {
    match s {
        TaskState::Running => format!("{name} runs"),
        TaskState::Ended { panic: Some(p), .. } => format!("{name} died: {p}"),
        TaskState::Ended { panic: None, .. } => format!("{name} stopped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_reported_dead_with_its_message() {
        let live = Liveness::default();
        let g = live.register("poller demo/servers");
        let h = tokio::spawn(async move {
            let _g = g;
            note_panic("boom at poller".into());
            panic!("boom");
        });
        assert!(h.await.is_err());
        let (name, st) = live.first_death().await;
        assert_eq!(name, "poller demo/servers");
        assert!(matches!(st, TaskState::Ended { panic: Some(ref m), .. } if m == "boom at poller"), "{st:?}");
    }

    #[test]
    fn a_task_that_returns_is_stopped_not_panicked() {
        let live = Liveness::default();
        drop(live.register("engine"));
        assert!(matches!(live.dead().as_slice(), [(_, TaskState::Ended { panic: None, .. })]));
    }
}
