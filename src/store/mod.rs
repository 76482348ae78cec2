//! The local store (SQLite, WAL): the event/audit log, write-ahead intents,
//! launch-spec revisions, policy changes, engine control state (key/value JSON,
//! including autoscaling histories) and the engine lease record. Observed,
//! tagged OpenStack state stays the truth; this holds what happened and what is
//! in flight.

use crate::domain::{Event, Severity, Timestamp};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum IntentStatus {
    /// Written before the call; the outcome is not known yet.
    Pending,
    /// The cloud accepted it (server id known); waiting to be observed.
    Running,
    Done,
    Failed,
}

impl IntentStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            IntentStatus::Pending => "PENDING",
            IntentStatus::Running => "RUNNING",
            IntentStatus::Done => "DONE",
            IntentStatus::Failed => "FAILED",
        }
    }
    pub fn parse(s: &str) -> Option<IntentStatus> {
        match s {
            "PENDING" => Some(IntentStatus::Pending),
            "RUNNING" => Some(IntentStatus::Running),
            "DONE" => Some(IntentStatus::Done),
            "FAILED" => Some(IntentStatus::Failed),
            _ => None,
        }
    }
}

/// A write-ahead record of a mutating call.
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    pub op_id: String,
    pub policy_id: String,
    pub cloud: String,
    pub app: String,
    /// `create`, `delete`, `mark-terminating`.
    pub action: String,
    pub slot: Option<u32>,
    pub revision: Option<u32>,
    pub generation: u64,
    pub server_id: Option<String>,
    pub status: IntentStatus,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    pub policy_id: String,
    pub revision: u32,
    pub spec_hash: String,
    pub spec: String,
    pub created_at: Timestamp,
}

/// A policy change to record (see `Store::record_policy`).
#[derive(Debug, Clone, Copy)]
pub struct PolicyChangeRecord<'a> {
    pub policy_id: &'a str,
    pub app: &'a str,
    pub file: &'a str,
    pub content_hash: &'a str,
    pub text: &'a str,
    /// The OS user (`alice@host`) or the engine (`engine:<id>`).
    pub actor: &'a str,
    /// What the change does, in words (`max 8 → 3; ...`).
    pub summary: Option<&'a str>,
}

/// One recorded change of a policy file.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyChange {
    pub policy_id: String,
    pub generation: u64,
    pub app: String,
    pub file: String,
    pub content_hash: String,
    pub at: Timestamp,
    /// `None` for changes recorded before texts were kept.
    pub text: Option<String>,
    pub actor: Option<String>,
    pub summary: Option<String>,
}

/// Changes kept per policy.
const POLICY_HISTORY: i64 = 100;

/// Columns added after the first release: added to an older store when opened.
const MIGRATIONS: &[(&str, &str, &str)] =
    &[("policy_changes", "text", "TEXT"), ("policy_changes", "actor", "TEXT"), ("policy_changes", "summary", "TEXT")];

fn migrate(c: &Connection) -> rusqlite::Result<()> {
    for (table, column, ty) in MIGRATIONS {
        let mut st = c.prepare(&format!("PRAGMA table_info({table})"))?;
        let have: Vec<String> = st.query_map([], |r| r.get::<_, String>(1))?.collect::<rusqlite::Result<_>>()?;
        if !have.iter().any(|h| h == column) {
            match c.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}")) {
                // Another process opening the same store added it first.
                Err(e) if e.to_string().contains("duplicate column") => {}
                r => r?,
            }
        }
    }
    Ok(())
}

/// What went wrong with the store, always with the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}; check the file and its directory ({fix})")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
        fix: &'static str,
    },
    #[error("store {path}: {what}; the file is damaged: move it aside and restart (the engine rebuilds its members from their tags)")]
    Corrupt { path: String, what: String },
    #[error("store {path}: {what}: {source}")]
    Io {
        path: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("store {path}: a task panicked while holding the store; restart stackpilot")]
    Poisoned { path: String },
}

impl StoreError {
    fn sqlite(path: &Path, source: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode;
        let fix = match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                "another process holds it locked; it is retried next tick"
            }
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                "it is damaged: move it aside and restart; the engine rebuilds its members from their tags"
            }
            Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::CannotOpen) => {
                "it must be readable and writable by this user"
            }
            Some(ErrorCode::DiskFull) => "the disk is full",
            _ => "see the message",
        };
        StoreError::Sqlite { path: path.display().to_string(), source, fix }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A handle to the store; cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    pub path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn ts(t: &Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A timestamp of a record the engine plans from: unreadable is an error, never 1970.
fn strict_ts(idx: usize, s: &str) -> rusqlite::Result<Timestamp> {
    crate::domain::time::parse_timestamp(s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, format!("bad time `{s}`").into())
    })
}

/// A timestamp of an event (shown, never planned from).
fn lenient_ts(s: &str) -> Timestamp {
    crate::domain::time::parse_timestamp(s).unwrap_or_default()
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL, cloud TEXT NOT NULL,
  app TEXT, action TEXT NOT NULL, target TEXT, reason TEXT NOT NULL, result TEXT NOT NULL,
  severity TEXT NOT NULL, request_id TEXT, detail TEXT);
CREATE INDEX IF NOT EXISTS events_at ON events(at);
CREATE TABLE IF NOT EXISTS intents (
  op_id TEXT PRIMARY KEY, policy_id TEXT NOT NULL, cloud TEXT NOT NULL, app TEXT NOT NULL, action TEXT NOT NULL,
  slot INTEGER, revision INTEGER, generation INTEGER NOT NULL, server_id TEXT, status TEXT NOT NULL, error TEXT,
  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS intents_open ON intents(status);
CREATE TABLE IF NOT EXISTS revisions (
  policy_id TEXT NOT NULL, revision INTEGER NOT NULL, spec_hash TEXT NOT NULL, spec TEXT NOT NULL, created_at TEXT NOT NULL,
  PRIMARY KEY (policy_id, revision));
CREATE TABLE IF NOT EXISTS policy_changes (
  policy_id TEXT NOT NULL, generation INTEGER NOT NULL, app TEXT NOT NULL, file TEXT NOT NULL, content_hash TEXT NOT NULL,
  at TEXT NOT NULL, PRIMARY KEY (policy_id, generation));
CREATE TABLE IF NOT EXISTS control (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS policies (
  policy_id TEXT PRIMARY KEY, app TEXT NOT NULL, cloud TEXT NOT NULL, file TEXT NOT NULL, text TEXT NOT NULL,
  content_hash TEXT NOT NULL, state TEXT NOT NULL, detail TEXT, updated_at TEXT NOT NULL);
";

/// Where a policy stands, as the engine last saw its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyState {
    /// The file parses and validates; its text is in force.
    Ok,
    /// The file no longer parses or validates: the last good text stays in force.
    Invalid,
    /// The file (or the policies directory) is gone: the app is on hold.
    Missing,
    /// An operator retired the app: its members are removed.
    Retired,
}

impl PolicyState {
    pub fn as_str(&self) -> &'static str {
        match self {
            PolicyState::Ok => "ok",
            PolicyState::Invalid => "invalid",
            PolicyState::Missing => "missing",
            PolicyState::Retired => "retired",
        }
    }
    pub fn parse(s: &str) -> Option<PolicyState> {
        Some(match s {
            "ok" => PolicyState::Ok,
            "invalid" => PolicyState::Invalid,
            "missing" => PolicyState::Missing,
            "retired" => PolicyState::Retired,
            _ => return None,
        })
    }
}

/// A policy the engine has known: its last good text and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownPolicy {
    pub policy_id: String,
    pub app: String,
    pub cloud: String,
    pub file: String,
    /// The last text that parsed and validated.
    pub text: String,
    pub content_hash: String,
    pub state: PolicyState,
    /// Why it is invalid or missing (file:line:col and the message).
    pub detail: Option<String>,
    pub updated_at: Timestamp,
}

impl Store {
    /// Open (or create) the store at `path`. A directory it creates is private
    /// to the user (0700) and so is the database (0600): revisions keep user data,
    /// which often carries bootstrap secrets.
    pub fn open(path: &Path) -> Result<Store> {
        let io = |what: &'static str, source: std::io::Error| StoreError::Io {
            path: path.display().to_string(),
            what,
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::config::paths::private_dir(dir).map_err(|e| io("cannot create its directory", e))?;
        }
        let conn = Connection::open(path).map_err(|e| StoreError::sqlite(path, e))?;
        crate::config::paths::private_file(path).map_err(|e| io("cannot make it private (0600)", e))?;
        let init = |c: &Connection| -> rusqlite::Result<()> {
            c.busy_timeout(std::time::Duration::from_secs(5))?;
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", "FULL")?;
            c.execute_batch(SCHEMA)?;
            migrate(c)
        };
        init(&conn).map_err(|e| StoreError::sqlite(path, e))?;
        for side in ["-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(side);
            let p = PathBuf::from(p);
            if p.exists() {
                crate::config::paths::private_file(&p).map_err(|e| io("cannot make its journal private (0600)", e))?;
            }
        }
        Ok(Store { conn: Arc::new(Mutex::new(conn)), path: path.to_path_buf() })
    }

    /// A store in memory (tests).
    pub fn memory() -> Result<Store> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| StoreError::sqlite(&path, e))?;
        conn.execute_batch(SCHEMA).and_then(|_| migrate(&conn)).map_err(|e| StoreError::sqlite(&path, e))?;
        Ok(Store { conn: Arc::new(Mutex::new(conn)), path })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let c = self.conn.lock().map_err(|_| StoreError::Poisoned { path: self.path.display().to_string() })?;
        f(&c).map_err(|e| match e {
            rusqlite::Error::FromSqlConversionFailure(_, _, why) => {
                StoreError::Corrupt { path: self.path.display().to_string(), what: why.to_string() }
            }
            e => StoreError::sqlite(&self.path, e),
        })
    }

    // ---- events -------------------------------------------------------------

    pub fn add_event(&self, e: &Event) -> Result<i64> {
        self.with(|c| {
            c.execute(
                "INSERT INTO events (at, actor, cloud, app, action, target, reason, result, severity, request_id, detail) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
                params![ts(&e.at), e.actor, e.cloud, e.app, e.action, e.target, e.reason, e.result, e.severity.as_str(), e.request_id, e.detail],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Events with an id above `after`, oldest first (at most `limit`).
    pub fn events_after(&self, after: i64, limit: usize) -> Result<Vec<Event>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id, at, actor, cloud, app, action, target, reason, result, severity, request_id, detail FROM events WHERE id > ?1 ORDER BY id LIMIT ?2")?;
            let rows = st.query_map(params![after, limit as i64], |r| {
                Ok(Event {
                    id: r.get(0)?,
                    at: lenient_ts(&r.get::<_, String>(1)?),
                    actor: r.get(2)?,
                    cloud: r.get(3)?,
                    app: r.get(4)?,
                    action: r.get(5)?,
                    target: r.get(6)?,
                    reason: r.get(7)?,
                    result: r.get(8)?,
                    severity: Severity::parse(&r.get::<_, String>(9)?),
                    request_id: r.get(10)?,
                    detail: r.get(11)?,
                })
            })?;
            rows.collect()
        })
    }

    /// The newest `n` events, oldest first.
    pub fn recent_events(&self, n: usize) -> Result<Vec<Event>> {
        let max: i64 = self.with(|c| c.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0)))?;
        self.events_after((max - n as i64).max(0), n)
    }

    // ---- intents ------------------------------------------------------------

    pub fn put_intent(&self, i: &Intent) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO intents (op_id, policy_id, cloud, app, action, slot, revision, generation, server_id, status, error, created_at, updated_at)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)
                 ON CONFLICT(op_id) DO UPDATE SET server_id=excluded.server_id, status=excluded.status, error=excluded.error, updated_at=excluded.updated_at",
                params![i.op_id, i.policy_id, i.cloud, i.app, i.action, i.slot, i.revision, i.generation as i64, i.server_id, i.status.as_str(), i.error, ts(&i.created_at), ts(&i.updated_at)],
            )?;
            Ok(())
        })
    }

    pub fn set_intent_status(
        &self,
        op_id: &str,
        status: IntentStatus,
        server_id: Option<&str>,
        error: Option<&str>,
        now: &Timestamp,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE intents SET status=?2, server_id=COALESCE(?3, server_id), error=COALESCE(?4, error), updated_at=?5 WHERE op_id=?1",
                params![op_id, status.as_str(), server_id, error, ts(now)],
            )?;
            Ok(())
        })
    }

    fn intents_where(&self, clause: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Vec<Intent>> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT op_id, policy_id, cloud, app, action, slot, revision, generation, server_id, status, error, created_at, updated_at FROM intents WHERE {clause} ORDER BY created_at"
            ))?;
            let rows = st.query_map(p, |r| {
                Ok(Intent {
                    op_id: r.get(0)?,
                    policy_id: r.get(1)?,
                    cloud: r.get(2)?,
                    app: r.get(3)?,
                    action: r.get(4)?,
                    slot: r.get(5)?,
                    revision: r.get(6)?,
                    generation: r.get::<_, i64>(7)? as u64,
                    server_id: r.get(8)?,
                    status: {
                        let st: String = r.get(9)?;
                        IntentStatus::parse(&st).ok_or_else(|| {
                            rusqlite::Error::FromSqlConversionFailure(
                                9,
                                rusqlite::types::Type::Text,
                                format!("unknown intent status `{st}`").into(),
                            )
                        })?
                    },
                    error: r.get(10)?,
                    created_at: strict_ts(11, &r.get::<_, String>(11)?)?,
                    updated_at: strict_ts(12, &r.get::<_, String>(12)?)?,
                })
            })?;
            rows.collect()
        })
    }

    /// PENDING and RUNNING intents of a cloud.
    pub fn open_intents(&self, cloud: &str) -> Result<Vec<Intent>> {
        self.intents_where("cloud = ?1 AND status IN ('PENDING', 'RUNNING')", &[&cloud])
    }

    /// Intents that failed recently (their servers, if any appear, are orphans).
    pub fn failed_intents(&self, cloud: &str, since: &Timestamp) -> Result<Vec<Intent>> {
        let s = ts(since);
        self.intents_where("cloud = ?1 AND status = 'FAILED' AND updated_at >= ?2", &[&cloud, &s])
    }

    pub fn intent(&self, op_id: &str) -> Result<Option<Intent>> {
        Ok(self.intents_where("op_id = ?1", &[&op_id])?.into_iter().next())
    }

    pub fn count_intents(&self, status: IntentStatus) -> Result<i64> {
        self.with(|c| {
            c.query_row("SELECT COUNT(*) FROM intents WHERE status = ?1", params![status.as_str()], |r| r.get(0))
        })
    }

    // ---- revisions and policy changes ---------------------------------------

    pub fn revisions(&self, policy_id: &str) -> Result<Vec<Revision>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT policy_id, revision, spec_hash, spec, created_at FROM revisions WHERE policy_id = ?1 ORDER BY revision")?;
            let rows = st.query_map(params![policy_id], |r| {
                Ok(Revision { policy_id: r.get(0)?, revision: r.get(1)?, spec_hash: r.get(2)?, spec: r.get(3)?, created_at: strict_ts(4, &r.get::<_, String>(4)?)? })
            })?;
            rows.collect()
        })
    }

    /// The revision of a launch spec: the existing one with this hash, else a new
    /// one numbered after the highest known (`floor` lets a wiped store continue
    /// from what the cloud's members carry). Keeps the newest `keep` revisions.
    pub fn revision_for(
        &self,
        policy_id: &str,
        spec_hash: &str,
        spec: &str,
        floor: u32,
        keep: usize,
        now: &Timestamp,
    ) -> Result<(u32, bool)> {
        let revs = self.revisions(policy_id)?;
        if let Some(r) = revs.iter().rev().find(|r| r.spec_hash == spec_hash) {
            return Ok((r.revision, false));
        }
        let next = revs.iter().map(|r| r.revision).max().unwrap_or(0).max(floor) + 1;
        self.with(|c| {
            c.execute("INSERT INTO revisions (policy_id, revision, spec_hash, spec, created_at) VALUES (?1,?2,?3,?4,?5)", params![policy_id, next, spec_hash, spec, ts(now)])?;
            c.execute(
                "DELETE FROM revisions WHERE policy_id = ?1 AND revision NOT IN (SELECT revision FROM revisions WHERE policy_id = ?1 ORDER BY revision DESC LIMIT ?2)",
                params![policy_id, keep as i64],
            )?;
            Ok(())
        })?;
        Ok((next, true))
    }

    /// Record a new revision (decided by the engine from what it read); keeps the
    /// newest `keep`. A revision number already taken is an error, never overwritten.
    pub fn insert_revision(
        &self,
        policy_id: &str,
        revision: u32,
        spec_hash: &str,
        spec: &str,
        keep: usize,
        now: &Timestamp,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO revisions (policy_id, revision, spec_hash, spec, created_at) VALUES (?1,?2,?3,?4,?5)",
                params![policy_id, revision, spec_hash, spec, ts(now)],
            )?;
            c.execute(
                "DELETE FROM revisions WHERE policy_id = ?1 AND revision NOT IN (SELECT revision FROM revisions WHERE policy_id = ?1 ORDER BY revision DESC LIMIT ?2)",
                params![policy_id, keep as i64],
            )?;
            Ok(())
        })
    }

    /// Record a policy file's content: who changed it (the OS user, or the
    /// engine that found it changed on disk), its text and what the change does.
    /// Returns its generation (bumped on change; the same content is no change).
    /// The newest `POLICY_HISTORY` changes of each policy are kept.
    pub fn record_policy(&self, c: &PolicyChangeRecord<'_>, now: &Timestamp) -> Result<(u64, bool)> {
        // One immediate transaction: a console and an engine recording at once
        // each get their own generation.
        self.with(|conn| {
            let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
            let last: Option<(i64, String)> = tx
                .query_row("SELECT generation, content_hash FROM policy_changes WHERE policy_id = ?1 ORDER BY generation DESC LIMIT 1", params![c.policy_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let out = match last {
                Some((g, h)) if h == c.content_hash => (g as u64, false),
                other => {
                    let g = other.map(|o| o.0 + 1).unwrap_or(1);
                    tx.execute("INSERT INTO policy_changes (policy_id, generation, app, file, content_hash, at, text, actor, summary) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)", params![c.policy_id, g, c.app, c.file, c.content_hash, ts(now), c.text, c.actor, c.summary])?;
                    tx.execute(
                        "DELETE FROM policy_changes WHERE policy_id = ?1 AND generation <= ?2",
                        params![c.policy_id, g - POLICY_HISTORY],
                    )?;
                    (g as u64, true)
                }
            };
            tx.commit()?;
            Ok(out)
        })
    }

    /// Take back a change recorded for a write that then failed.
    pub fn forget_policy_change(&self, policy_id: &str, generation: u64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM policy_changes WHERE policy_id = ?1 AND generation = ?2",
                params![policy_id, generation as i64],
            )
            .map(|_| ())
        })
    }

    /// When a policy last changed, and who changed it.
    pub fn last_policy_change(&self, policy_id: &str) -> Result<Option<(Timestamp, Option<String>)>> {
        self.with(|c| {
            c.query_row(
                "SELECT at, actor FROM policy_changes WHERE policy_id = ?1 ORDER BY generation DESC LIMIT 1",
                params![policy_id],
                |r| Ok((strict_ts(0, &r.get::<_, String>(0)?)?, r.get(1)?)),
            )
            .optional()
        })
    }

    /// The recorded changes of a policy, newest first.
    pub fn policy_history(&self, policy_id: &str) -> Result<Vec<PolicyChange>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT generation, app, file, content_hash, at, text, actor, summary FROM policy_changes WHERE policy_id = ?1 ORDER BY generation DESC")?;
            let rows = st.query_map(params![policy_id], |r| {
                Ok(PolicyChange {
                    policy_id: policy_id.to_string(),
                    generation: r.get::<_, i64>(0)? as u64,
                    app: r.get(1)?,
                    file: r.get(2)?,
                    content_hash: r.get(3)?,
                    at: strict_ts(4, &r.get::<_, String>(4)?)?,
                    text: r.get(5)?,
                    actor: r.get(6)?,
                    summary: r.get(7)?,
                })
            })?;
            rows.collect()
        })
    }

    // ---- control state --------------------------------------------------------

    pub fn put_control(&self, key: &str, value: &serde_json::Value, now: &Timestamp) -> Result<()> {
        let v = value.to_string();
        self.with(|c| {
            c.execute(
                "INSERT INTO control (key, value, updated_at) VALUES (?1,?2,?3) ON CONFLICT(key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at",
                params![key, v, ts(now)],
            )?;
            Ok(())
        })
    }

    /// A control value; one that does not decode is an error, never "absent".
    pub fn delete_control(&self, key: &str) -> Result<()> {
        self.with(|c| c.execute("DELETE FROM control WHERE key = ?1", params![key]).map(|_| ()))
    }

    pub fn control(&self, key: &str) -> Result<Option<serde_json::Value>> {
        let s: Option<String> = self
            .with(|c| c.query_row("SELECT value FROM control WHERE key = ?1", params![key], |r| r.get(0)).optional())?;
        s.map(|s| {
            serde_json::from_slice(s.as_bytes()).map_err(|e| StoreError::Corrupt {
                path: self.path.display().to_string(),
                what: format!("control value `{key}` does not decode: {e}"),
            })
        })
        .transpose()
    }

    /// Every control value whose key starts with `prefix`, by key.
    pub fn controls_with_prefix(&self, prefix: &str) -> Result<Vec<(String, serde_json::Value)>> {
        let rows: Vec<(String, String)> = self.with(|c| {
            let mut st = c.prepare("SELECT key, value FROM control WHERE substr(key, 1, ?2) = ?1 ORDER BY key")?;
            let rows = st.query_map(params![prefix, prefix.chars().count() as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(k, v)| {
                serde_json::from_slice(v.as_bytes()).map(|v| (k.clone(), v)).map_err(|e| StoreError::Corrupt {
                    path: self.path.display().to_string(),
                    what: format!("control value `{k}` does not decode: {e}"),
                })
            })
            .collect()
    }

    /// A control value decoded into its type (absent: `None`; undecodable: an error).
    pub fn control_as<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.control(key)?
            .map(|v| {
                serde_json::from_value(v).map_err(|e| StoreError::Corrupt {
                    path: self.path.display().to_string(),
                    what: format!("control value `{key}` does not decode: {e}"),
                })
            })
            .transpose()
    }

    /// Store a serializable control value.
    pub fn put_control_as<T: serde::Serialize>(&self, key: &str, value: &T, now: &Timestamp) -> Result<()> {
        let v = serde_json::to_value(value).map_err(|e| StoreError::Corrupt {
            path: self.path.display().to_string(),
            what: format!("control value `{key}` does not encode: {e}"),
        })?;
        self.put_control(key, &v, now)
    }

    // ---- the policy registry ------------------------------------------------

    /// Every policy the engine has known, with its last good text.
    pub fn known_policies(&self) -> Result<Vec<KnownPolicy>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT policy_id, app, cloud, file, text, content_hash, state, detail, updated_at FROM policies ORDER BY app, cloud",
            )?;
            let rows = st.query_map([], |r| {
                let state: String = r.get(6)?;
                Ok(KnownPolicy {
                    policy_id: r.get(0)?,
                    app: r.get(1)?,
                    cloud: r.get(2)?,
                    file: r.get(3)?,
                    text: r.get(4)?,
                    content_hash: r.get(5)?,
                    state: PolicyState::parse(&state).ok_or_else(|| {
                        rusqlite::Error::FromSqlConversionFailure(
                            6,
                            rusqlite::types::Type::Text,
                            format!("unknown policy state `{state}`").into(),
                        )
                    })?,
                    detail: r.get(7)?,
                    updated_at: strict_ts(8, &r.get::<_, String>(8)?)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Record a policy's last good text and state (insert or replace).
    pub fn put_known_policy(&self, p: &KnownPolicy) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO policies (policy_id, app, cloud, file, text, content_hash, state, detail, updated_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)
                 ON CONFLICT(policy_id) DO UPDATE SET app=excluded.app, cloud=excluded.cloud, file=excluded.file, text=excluded.text,
                 content_hash=excluded.content_hash, state=excluded.state, detail=excluded.detail, updated_at=excluded.updated_at",
                params![p.policy_id, p.app, p.cloud, p.file, p.text, p.content_hash, p.state.as_str(), p.detail, ts(&p.updated_at)],
            )?;
            Ok(())
        })
    }

    /// Forget a policy whose members are all gone after a retire.
    pub fn forget_policy(&self, policy_id: &str) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM policies WHERE policy_id = ?1", params![policy_id])?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        crate::domain::time::parse_timestamp("2026-11-25T12:00:00Z").unwrap()
    }

    #[test]
    fn events_round_trip_in_order() {
        let s = Store::memory().unwrap();
        for i in 0..5 {
            s.add_event(
                &Event::new(now(), "engine:x", "demo", "create", format!("r{i}"))
                    .app("web")
                    .request_id(Some(format!("req-{i}"))),
            )
            .unwrap();
        }
        let all = s.events_after(0, 100).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all[4].reason, "r4");
        assert_eq!(all[0].request_id.as_deref(), Some("req-0"));
        assert_eq!(s.events_after(all[2].id, 100).unwrap().len(), 2);
        assert_eq!(s.recent_events(2).unwrap().iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(), vec!["r3", "r4"]);
    }

    #[test]
    fn intents_move_through_their_states() {
        let s = Store::memory().unwrap();
        let i = Intent {
            op_id: "op1".into(),
            policy_id: "p".into(),
            cloud: "demo".into(),
            app: "web".into(),
            action: "create".into(),
            slot: Some(2),
            revision: Some(1),
            generation: 1,
            server_id: None,
            status: IntentStatus::Pending,
            error: None,
            created_at: now(),
            updated_at: now(),
        };
        s.put_intent(&i).unwrap();
        assert_eq!(s.open_intents("demo").unwrap().len(), 1);
        s.set_intent_status("op1", IntentStatus::Running, Some("srv-1"), None, &now()).unwrap();
        let got = s.intent("op1").unwrap().unwrap();
        assert_eq!((got.status, got.server_id.as_deref(), got.slot), (IntentStatus::Running, Some("srv-1"), Some(2)));
        s.set_intent_status("op1", IntentStatus::Failed, None, Some("not visible after 120 s"), &now()).unwrap();
        assert!(s.open_intents("demo").unwrap().is_empty());
        assert_eq!(
            s.failed_intents("demo", &now()).unwrap()[0].server_id.as_deref(),
            Some("srv-1"),
            "the server id is kept"
        );
    }

    #[test]
    fn revisions_are_immutable_and_numbered_after_the_floor() {
        let s = Store::memory().unwrap();
        assert_eq!(s.revision_for("p", "h1", "{}", 0, 10, &now()).unwrap(), (1, true));
        assert_eq!(s.revision_for("p", "h1", "{}", 0, 10, &now()).unwrap(), (1, false));
        assert_eq!(s.revision_for("p", "h2", "{}", 0, 10, &now()).unwrap(), (2, true));
        assert_eq!(
            s.revision_for("p", "h1", "{}", 0, 10, &now()).unwrap(),
            (1, false),
            "an old spec keeps its revision"
        );
        assert_eq!(
            s.revision_for("q", "h9", "{}", 7, 10, &now()).unwrap(),
            (8, true),
            "a wiped store continues after what members carry"
        );
        for k in 3..20 {
            s.revision_for("p", &format!("h{k}"), "{}", 0, 10, &now()).unwrap();
        }
        assert_eq!(s.revisions("p").unwrap().len(), 10, "revision history is bounded");
    }

    fn change<'a>(hash: &'a str, text: &'a str, actor: &'a str) -> PolicyChangeRecord<'a> {
        PolicyChangeRecord {
            policy_id: "p",
            app: "web",
            file: "web.toml",
            content_hash: hash,
            text,
            actor,
            summary: Some("max 8 → 3"),
        }
    }

    #[test]
    fn policy_generations_bump_on_change_only_and_keep_who_and_what() {
        let s = Store::memory().unwrap();
        assert_eq!(s.record_policy(&change("a", "A", "engine:x"), &now()).unwrap(), (1, true));
        assert_eq!(s.record_policy(&change("a", "A", "alice@h"), &now()).unwrap(), (1, false));
        assert_eq!(s.record_policy(&change("b", "B", "alice@h"), &now()).unwrap(), (2, true));
        let h = s.policy_history("p").unwrap();
        assert_eq!(h.iter().map(|c| c.generation).collect::<Vec<_>>(), vec![2, 1], "newest first");
        assert_eq!(h[0].text.as_deref(), Some("B"));
        assert_eq!(h[0].actor.as_deref(), Some("alice@h"));
        assert_eq!(h[1].actor.as_deref(), Some("engine:x"));
        s.forget_policy_change("p", 2).unwrap();
        assert_eq!(s.policy_history("p").unwrap().len(), 1);
        for k in 0..150 {
            s.record_policy(&change(&format!("h{k}"), "t", "e"), &now()).unwrap();
        }
        assert_eq!(s.policy_history("p").unwrap().len(), POLICY_HISTORY as usize, "history is bounded");
    }

    #[test]
    fn an_older_store_gains_the_history_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old.db");
        {
            let c = rusqlite::Connection::open(&p).unwrap();
            c.execute_batch("CREATE TABLE policy_changes (policy_id TEXT NOT NULL, generation INTEGER NOT NULL, app TEXT NOT NULL, file TEXT NOT NULL, content_hash TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (policy_id, generation)); INSERT INTO policy_changes VALUES ('p', 1, 'web', 'web.toml', 'a', '2026-01-01T00:00:00Z');").unwrap();
        }
        let s = Store::open(&p).unwrap();
        let h = s.policy_history("p").unwrap();
        assert_eq!((h[0].generation, h[0].text.clone()), (1, None));
        assert_eq!(s.record_policy(&change("b", "B", "alice@h"), &now()).unwrap(), (2, true));
    }

    #[test]
    fn the_file_store_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.db");
        {
            let s = Store::open(&p).unwrap();
            s.put_control("engine", &crate::domain::json::json!({"paused": true}), &now()).unwrap();
        }
        let s = Store::open(&p).unwrap();
        assert_eq!(s.control("engine").unwrap().unwrap()["paused"], true);
    }

    /// Revisions keep user data (cloud-init often carries bootstrap secrets):
    /// the state directory and every file of the store are the user's alone,
    /// even when an older version left them readable to others.
    #[cfg(unix)]
    #[test]
    fn the_store_and_its_directory_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let db = state.join("stackpilot.db");
        let s = Store::open(&db).unwrap();
        s.revision_for("p", "h1", r#"{"user_data":"token=s3cret"}"#, 0, 10, &now()).unwrap();
        assert_eq!(mode(&state), 0o700, "the state directory");
        assert_eq!(mode(&db), 0o600, "the database");
        let wal = state.join("stackpilot.db-wal");
        assert_eq!(mode(&wal), 0o600, "the journal");
        drop(s);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        let reopened = Store::open(&db).unwrap();
        reopened.revision_for("p", "h2", "{}", 0, 10, &now()).unwrap();
        assert_eq!((mode(&state), mode(&db), mode(&wal)), (0o700, 0o600, 0o600), "tightened on open");
        // A shared place (sticky, as /tmp) is left as it is.
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o1777)).unwrap();
        drop(reopened);
        let _again = Store::open(&db).unwrap();
        assert_eq!(mode(&state), 0o1777 & 0o777, "not ours to change");
    }
}
