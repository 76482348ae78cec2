//! The engine lease: one acting engine per cloud on a host, held as an OS file
//! lock on `<state>/engine-<cloud>.lock` for as long as the process lives, with a
//! record in the store (holder, epoch) so others can say who acts. A lease whose
//! file was removed or replaced is lost (another engine could lock the new file):
//! the engine stops acting at once and tries to take it again.

use crate::domain::json::Obj;
use crate::domain::{Event, Timestamp};
use crate::store::Store;
use std::path::{Path, PathBuf};

/// Where this engine stands for one cloud.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseState {
    /// This engine acts.
    Held,
    /// Another engine acts (its id, as recorded).
    Observing(String),
    /// The lease was held and is gone (why): no acting until it is taken again.
    Lost(String),
}

/// The lease of one cloud.
#[derive(Debug)]
pub struct Lease {
    path: PathBuf,
    cloud: String,
    file: Option<std::fs::File>,
}

/// The lease file of a cloud.
pub fn lease_path(state_dir: &Path, cloud: &str) -> PathBuf {
    state_dir.join(format!("engine-{}.lock", cloud.replace(['/', '\\'], "_")))
}

#[cfg(unix)]
fn same_file(f: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_f: &std::fs::File, path: &Path) -> bool {
    path.exists()
}

impl Lease {
    pub fn new(state_dir: &Path, cloud: &str) -> Lease {
        Lease { path: lease_path(state_dir, cloud), cloud: cloud.to_string(), file: None }
    }

    /// The recorded holder of the cloud's lease.
    pub fn holder(store: &Store, cloud: &str) -> Option<String> {
        match store.control(&format!("lease:{cloud}")) {
            Ok(v) => v.and_then(|v| v.at("holder").as_str().map(String::from)),
            Err(err) => {
                tracing::warn!(%cloud, "cannot read who holds the lease: {err}");
                None
            }
        }
    }

    /// Keep the lease, or try to take it.
    pub fn check(&mut self, store: &Store, engine_id: &str, now: Timestamp) -> LeaseState {
        if let Some(f) = &self.file {
            if same_file(f, &self.path) {
                return LeaseState::Held;
            }
            self.file = None;
            return LeaseState::Lost(format!(
                "the lease file {} was removed or replaced: another engine may act; this one stops acting",
                self.path.display()
            ));
        }
        match self.take() {
            Ok(Some(f)) => {
                self.file = Some(f);
                self.record(store, engine_id, now);
                LeaseState::Held
            }
            Ok(None) => {
                LeaseState::Observing(Self::holder(store, &self.cloud).unwrap_or_else(|| "another engine".into()))
            }
            Err(e) => LeaseState::Lost(e),
        }
    }

    fn take(&self) -> Result<Option<std::fs::File>, String> {
        if let Some(dir) = self.path.parent() {
            crate::config::paths::private_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|e| format!("cannot open the lease file {}: {e}", self.path.display()))?;
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(format!("cannot lock the lease file {}: {e}", self.path.display()))
            }
        }
    }

    /// Record the holder and a new epoch (a fencing token for what it writes).
    fn record(&self, store: &Store, engine_id: &str, now: Timestamp) {
        let key = format!("lease:{}", self.cloud);
        let epoch = match store.control(&key) {
            Ok(v) => v.and_then(|v| v.at("epoch").as_u64()).unwrap_or(0) + 1,
            Err(err) => {
                tracing::error!(cloud = %self.cloud, "cannot read the lease record: {err}");
                return;
            }
        };
        let v = crate::domain::json::json!({"holder": engine_id, "epoch": epoch, "since": now.to_rfc3339()});
        let e = Event::new(
            now,
            &format!("engine:{engine_id}"),
            &self.cloud,
            "lease",
            format!("took the engine lease (epoch {epoch})"),
        );
        if let Err(err) = store.put_control(&key, &v, &now).and_then(|_| store.add_event(&e).map(|_| ())) {
            tracing::error!(cloud = %self.cloud, "cannot record the lease: {err}");
        }
    }
}
