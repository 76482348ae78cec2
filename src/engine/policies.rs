//! The policies the engine acts on, and where each stands. The store remembers
//! every policy it has known with its last good text, so that:
//!
//! - a file that stops parsing or validating (a syntax error, `min > max`, a
//!   changed `cloud` or `name`) keeps its last good revision in force, shown as
//!   `invalid` with file:line:col; only the change is refused;
//! - a file (or the whole directory) that disappears puts its app on hold
//!   (`missing`): nothing is created or deleted for it;
//! - an app's members are removed only after an operator retires it
//!   (`stackpilot policy retire APP`, or `:retire` in the console).
//!
//! Files are read bounded (regular files of at most 1 MiB) and parsed once per
//! change of their text.

use crate::domain::{Event, Severity, Timestamp};
use crate::policy::{self, Policy, PolicyError};
use crate::store::{KnownPolicy, PolicyState, Store, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// One policy and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyEntry {
    pub id: String,
    pub app: String,
    pub cloud: String,
    pub file: PathBuf,
    /// The policy in force: the file's when it is valid, else its last good text.
    /// `None` only for a retired app whose text was never known.
    pub policy: Option<Policy>,
    pub state: PolicyState,
    /// Why it is invalid (file:line:col: field: message) or missing.
    pub problems: Vec<String>,
}

impl PolicyEntry {
    /// One line on the state: `ok`, `invalid: web.toml:3:1: ...`, `missing: ...`.
    pub fn describe(&self) -> String {
        match (self.state, self.problems.first()) {
            (PolicyState::Ok, _) => "ok".into(),
            (s, Some(p)) => format!("{}: {p}", s.as_str()),
            (s, None) => s.as_str().into(),
        }
    }
}

/// Every policy of the engine after one reading of the directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyBook {
    pub entries: Vec<PolicyEntry>,
    /// Files that never held a good policy: their errors (no app is affected).
    pub stray: Vec<PolicyError>,
    /// The directory could not be read (every policy is then missing).
    pub dir_error: Option<String>,
}

impl PolicyBook {
    pub fn of_cloud<'a>(&'a self, cloud: &'a str) -> impl Iterator<Item = &'a PolicyEntry> {
        self.entries.iter().filter(move |e| e.cloud == cloud)
    }
    pub fn clouds(&self) -> Vec<String> {
        let mut v: Vec<String> = self.entries.iter().map(|e| e.cloud.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// The engine's reader of the policies directory (parse cache included).
#[derive(Default)]
pub struct Policies {
    /// (file, text) → what parsing gave; only the entries of the last reading are kept.
    cache: HashMap<(PathBuf, String), Result<Policy, Vec<PolicyError>>>,
}

/// What changed in one reading, for the audit log.
struct Changes<'a> {
    events: Vec<Event>,
    actor: &'a str,
    now: Timestamp,
}

impl Changes<'_> {
    fn add(&mut self, e: &PolicyEntry, action: &str, reason: String, sev: Severity) {
        let ev = Event::new(self.now, self.actor, &e.cloud, action, reason).app(e.app.clone()).severity(sev);
        self.events.push(ev.target(e.file.display().to_string()));
    }
}

impl Policies {
    fn parse(
        &mut self,
        file: &Path,
        text: &str,
        used: &mut Vec<(PathBuf, String)>,
    ) -> Result<Policy, Vec<PolicyError>> {
        let key = (file.to_path_buf(), text.to_string());
        used.push(key.clone());
        self.cache.entry(key).or_insert_with(|| policy::parse(text, file)).clone()
    }

    /// Read the directory, reconcile it with what the store knows, and (when
    /// `write`: this engine acts somewhere) record what changed. A store error is
    /// returned: the engine then holds (it never acts on policies it could not
    /// reconcile). An observer reads without writing.
    pub fn refresh(
        &mut self,
        dir: &Path,
        store: &Store,
        actor: &str,
        now: Timestamp,
        write: bool,
    ) -> Result<(PolicyBook, Vec<Event>), StoreError> {
        let known: BTreeMap<String, KnownPolicy> =
            store.known_policies()?.into_iter().map(|k| (k.policy_id.clone(), k)).collect();
        let mut used = Vec::new();
        let mut book = PolicyBook::default();
        let mut ch = Changes { events: Vec::new(), actor, now };
        let scan = policy::scan_dir(dir);
        let mut good: BTreeMap<String, (Policy, String)> = BTreeMap::new();
        let mut invalid: BTreeMap<String, Vec<String>> = BTreeMap::new();
        // Locations a file's placement no longer names: held until retired.
        let mut dropped: BTreeMap<String, String> = BTreeMap::new();
        match scan {
            Err(e) => book.dir_error = Some(format!("{}: {e}", dir.display())),
            Ok(files) => {
                for (file, text) in files {
                    let mut out = FileOut { good: &mut good, invalid: &mut invalid, dropped: &mut dropped };
                    self.file(&file, text, &known, &mut out, &mut book.stray, &mut used);
                }
            }
        }
        self.cache.retain(|k, _| used.contains(k));
        for (id, (p, text)) in &good {
            let entry = PolicyEntry {
                id: id.clone(),
                app: p.name().to_string(),
                cloud: p.cloud().to_string(),
                file: p.file.clone(),
                policy: Some(p.clone()),
                state: PolicyState::Ok,
                problems: vec![],
            };
            if write {
                record(store, known.get(id), &entry, text, &p.content_hash, &mut ch)?;
            }
            book.entries.push(entry);
        }
        for (id, k) in known.iter().filter(|(id, _)| !good.contains_key(*id)) {
            let file = PathBuf::from(&k.file);
            // The last good text, as this location runs it.
            let last = (!k.text.is_empty())
                .then(|| self.parse(&file, &k.text, &mut used).ok())
                .flatten()
                .and_then(|p| p.placed().into_iter().find(|x| &x.id == id));
            let (state, problems) = match (k.state, invalid.remove(id), &book.dir_error) {
                (PolicyState::Retired, _, _) => (PolicyState::Retired, vec![]),
                (_, Some(errs), _) => (PolicyState::Invalid, errs),
                (_, None, None) if dropped.contains_key(id) => {
                    (PolicyState::Missing, dropped.remove(id).into_iter().collect())
                }
                (_, None, Some(e)) => (PolicyState::Missing, vec![format!("the policies directory {e}")]),
                (_, None, None) => (PolicyState::Missing, vec![format!("{} is gone", k.file)]),
            };
            let entry = PolicyEntry {
                id: id.clone(),
                app: k.app.clone(),
                cloud: k.cloud.clone(),
                file,
                policy: last,
                state,
                problems,
            };
            if write {
                record(store, Some(k), &entry, &k.text, &k.content_hash, &mut ch)?;
            }
            book.entries.push(entry);
        }
        crate::domain::sort::sort_by(&mut book.entries, |a, b| (&a.cloud, &a.app).cmp(&(&b.cloud, &b.app)));
        Ok((book, ch.events))
    }

    /// One file: a good policy (one per location of its placement), a known
    /// policy's invalid edit, or a stray error.
    fn file(
        &mut self,
        file: &Path,
        text: Result<String, policy::model::ReadError>,
        known: &BTreeMap<String, KnownPolicy>,
        out: &mut FileOut<'_>,
        stray: &mut Vec<PolicyError>,
        used: &mut Vec<(PathBuf, String)>,
    ) {
        // The live (not retired) policies this file held last: one per location.
        let owners: Vec<&KnownPolicy> =
            known.values().filter(|k| Path::new(&k.file) == file && k.state != PolicyState::Retired).collect();
        let parsed = match text {
            Ok(t) => self.parse(file, &t, used).map(|p| (p, t)),
            Err(e) => Err(vec![policy::file_error(file, e.to_string())]),
        };
        match parsed {
            Ok((p, t)) => {
                let placed = p.placed();
                let kept = |k: &&KnownPolicy| placed.iter().any(|x| x.id == k.policy_id);
                if let (false, Some(k)) = (owners.iter().any(kept), owners.first()) {
                    // The file now names another app or cloud: an app does not move.
                    let msg = format!(
                        "{}: app `{}` on `{}` became `{}` on `{}`: an application does not move or rename; retire it (`stackpilot policy retire {}`) or put the new one in its own file",
                        file.display(),
                        k.app,
                        k.cloud,
                        p.name(),
                        p.locations().join(", "),
                        k.app
                    );
                    for k in &owners {
                        out.invalid.insert(k.policy_id.clone(), vec![msg.clone()]);
                    }
                    return;
                }
                for k in owners.iter().filter(|k| !kept(k)) {
                    out.dropped.insert(
                        k.policy_id.clone(),
                        format!(
                            "{}: `{}` no longer lists `{}` among its locations: nothing is created or removed there until it is retired (`stackpilot policy retire {} --cloud {}`)",
                            file.display(),
                            k.app,
                            k.cloud,
                            k.app,
                            k.cloud
                        ),
                    );
                }
                for x in placed {
                    match out.good.get(&x.id) {
                        Some(g) => {
                            let first = g.0.file.clone();
                            stray.push(policy::duplicate_error(&x, &first));
                        }
                        None => {
                            out.good.insert(x.id.clone(), (x, t.clone()));
                        }
                    }
                }
            }
            Err(errs) => {
                for k in &owners {
                    out.invalid.insert(k.policy_id.clone(), errs.iter().map(|e| e.to_string()).collect());
                }
                if owners.is_empty() {
                    stray.extend(errs);
                }
            }
        }
    }
}

/// Where one file's policies go.
struct FileOut<'a> {
    good: &'a mut BTreeMap<String, (Policy, String)>,
    invalid: &'a mut BTreeMap<String, Vec<String>>,
    dropped: &'a mut BTreeMap<String, String>,
}

/// Write a policy's state to the store when it changed, with an event.
/// What changed since the last recorded text of a policy, in words.
fn summary_since(store: &Store, policy_id: &str, spec: &policy::PolicyFile) -> Option<String> {
    let history = store.policy_history(policy_id).ok()?;
    if history.is_empty() {
        return Some(policy::edit::describe_change(None, spec).join("; "));
    }
    // The last recorded text (changes recorded before texts were kept have none).
    let Some(old) = history.into_iter().find_map(|c| c.text).and_then(|t| policy::parse(&t, Path::new("")).ok()) else {
        return Some("policy changed".into());
    };
    let lines = policy::edit::describe_change(Some(&old.spec), spec);
    (!lines.is_empty()).then(|| lines.join("; "))
}

fn record(
    store: &Store,
    before: Option<&KnownPolicy>,
    e: &PolicyEntry,
    text: &str,
    hash: &str,
    ch: &mut Changes<'_>,
) -> Result<(), StoreError> {
    let detail = e.problems.first().cloned();
    let same = before.is_some_and(|k| {
        k.state == e.state && k.text == text && k.file == e.file.display().to_string() && k.detail == detail
    });
    if same {
        return Ok(());
    }
    let prev = before.map(|k| k.state);
    match (prev, e.state) {
        (_, PolicyState::Invalid) => ch.add(
            e,
            "policy-invalid",
            format!("the policy no longer validates; revision in force kept: {}", detail.clone().unwrap_or_default()),
            Severity::Warning,
        ),
        (_, PolicyState::Missing) => ch.add(
            e,
            "policy-missing",
            format!("the app is on hold (nothing created or deleted): {}", detail.clone().unwrap_or_default()),
            Severity::Warning,
        ),
        (None, PolicyState::Ok) => ch.add(e, "policy", "new policy".into(), Severity::Info),
        (Some(PolicyState::Ok), PolicyState::Ok) => ch.add(e, "policy", "policy changed".into(), Severity::Info),
        (Some(s), PolicyState::Ok) => {
            ch.add(e, "policy", format!("policy valid again (was {})", s.as_str()), Severity::Info)
        }
        (_, PolicyState::Retired) => {}
    }
    if e.state == PolicyState::Ok {
        if let Some(p) = &e.policy {
            let file = p.file.display().to_string();
            let summary = summary_since(store, &p.id, &p.spec);
            let rec = crate::store::PolicyChangeRecord {
                policy_id: &p.id,
                app: p.name(),
                file: &file,
                content_hash: hash,
                text,
                actor: ch.actor,
                summary: summary.as_deref(),
            };
            store.record_policy(&rec, &ch.now)?;
        }
    }
    store.put_known_policy(&KnownPolicy {
        policy_id: e.id.clone(),
        app: e.app.clone(),
        cloud: e.cloud.clone(),
        file: e.file.display().to_string(),
        text: text.to_string(),
        content_hash: hash.to_string(),
        state: e.state,
        detail,
        updated_at: ch.now,
    })
}

/// Why an application is not retired.
#[derive(Debug, thiserror::Error)]
pub enum RetireError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("read-only: this console does not retire applications")]
    ReadOnly,
    #[error("`{app}` runs on several clouds ({clouds}): name one with --cloud")]
    Ambiguous { app: String, clouds: String },
    #[error("no application `{0}` is known; to remove servers of an app the engine no longer knows, name its cloud: --cloud CLOUD")]
    Unknown(String),
    #[error("`{app}` is still defined in {file} (the file does not validate, and its last good revision is in force): remove that file first, then retire it")]
    InvalidFile { app: String, file: String },
    #[error("`{app}` on `{cloud}` is already retired; the engine is removing its members")]
    AlreadyRetired { app: String, cloud: String },
    #[error("`{app}` is still defined in {file}: remove (or rename) that file first — the engine then holds the app — and retire it again")]
    StillDefined { app: String, file: String },
    #[error("{file} cannot be read ({why}): it may still define `{app}`; fix or remove it, then retire again")]
    Unreadable { app: String, file: String, why: String },
}

/// Whether a policy file that does not load may still define `app` on `cloud`:
/// yes when its `[app]` table says so, and when it cannot even be read as TOML.
fn may_define(file: &Path, app: &str, cloud: &str) -> bool {
    let Ok(text) = policy::read_policy_file(file) else { return true };
    let Ok(v) = toml::from_str::<toml::Value>(&text) else { return true };
    let field = |k: &str| v.get("app").and_then(|a| a.get(k)).and_then(toml::Value::as_str).map(String::from);
    match (field("name"), field("cloud")) {
        (Some(n), Some(c)) => n == app && c == cloud,
        _ => true,
    }
}

/// Retire an application (an operator's explicit request): its members are
/// removed by the engine that holds its cloud. Refused while a policy file still
/// defines it. `cloud` picks among apps of the same name; an app the store does
/// not know can be retired only with its cloud (its servers carry the policy id
/// derived from both).
pub fn retire(
    store: &Store,
    dir: &Path,
    app: &str,
    cloud: Option<&str>,
    actor: &str,
    now: Timestamp,
) -> Result<KnownPolicy, RetireError> {
    let known = store.known_policies()?;
    let mut matches: Vec<&KnownPolicy> =
        known.iter().filter(|k| k.app == app && cloud.is_none_or(|c| c == k.cloud)).collect();
    if matches.len() > 1 {
        let clouds: Vec<&str> = matches.iter().map(|k| k.cloud.as_str()).collect();
        return Err(RetireError::Ambiguous { app: app.to_string(), clouds: clouds.join(", ") });
    }
    let target = match (matches.pop(), cloud) {
        (Some(k), _) => k.clone(),
        (None, Some(c)) => KnownPolicy {
            policy_id: policy::policy_id(c, app),
            app: app.to_string(),
            cloud: c.to_string(),
            file: String::new(),
            text: String::new(),
            content_hash: String::new(),
            state: PolicyState::Missing,
            detail: None,
            updated_at: now,
        },
        (None, None) => return Err(RetireError::Unknown(app.to_string())),
    };
    if target.state == PolicyState::Invalid {
        return Err(RetireError::InvalidFile { app: app.to_string(), file: target.file });
    }
    if target.state == PolicyState::Retired {
        return Err(RetireError::AlreadyRetired { app: app.to_string(), cloud: target.cloud });
    }
    let (defined, errors) = policy::load_dir(dir);
    // Every location of a placement is defined by its file.
    if let Some(p) = defined.iter().flat_map(|p| p.placed()).find(|p| p.id == target.policy_id) {
        return Err(RetireError::StillDefined { app: app.to_string(), file: p.file.display().to_string() });
    }
    // A file that does not load may still define the app: never retire on the
    // strength of a file nobody could read.
    if let Some(e) = errors.iter().find(|e| e.file.as_path() == dir || may_define(&e.file, app, &target.cloud)) {
        let file = e.file.display().to_string();
        return Err(RetireError::Unreadable { app: app.to_string(), file, why: e.message.clone() });
    }
    let retired = KnownPolicy {
        state: PolicyState::Retired,
        detail: Some(format!("retired by {actor}")),
        updated_at: now,
        ..target
    };
    store.put_known_policy(&retired)?;
    let e = Event::new(now, actor, &retired.cloud, "retire", "operator retired the app: its members will be removed")
        .app(app)
        .severity(Severity::Warning);
    store.add_event(&e)?;
    Ok(retired)
}

/// A policy change an operator confirmed (in the console).
#[derive(Debug, Clone, PartialEq)]
pub struct SaveRequest {
    pub file: PathBuf,
    /// The hash of the file's content when the operator opened it; `None` for a
    /// new file, which must not exist yet.
    pub base_hash: Option<String>,
    pub text: String,
    /// The OS user (`alice@host`).
    pub actor: String,
    /// What the change does, in words.
    pub summary: String,
}

/// Why a confirmed change was not written.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("{file} changed on disk since it was opened: nothing was written; look at both and edit again")]
    Conflict { file: String, on_disk: String },
    #[error("{0} already exists: nothing was written")]
    Exists(String),
    #[error("the change does not validate: {}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("application `{app}` on `{cloud}` is already defined in {other}: nothing was written")]
    Duplicate { app: String, cloud: String, other: String },
    #[error("cannot read {file}: {why}")]
    Read { file: String, why: String },
    #[error("cannot write {file}: {source}")]
    Write { file: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Write an operator's change: refused when the file changed on disk since it
/// was opened (never overwritten blindly), when the text does not validate, or
/// when another file defines the same application. Recorded (who, when, the
/// text, what it does) before the file is replaced atomically, so the engine
/// that reads the file next finds the change already attributed; the record is
/// taken back when the write fails. Returns the change's generation.
pub fn save(store: &Store, r: &SaveRequest, now: Timestamp) -> Result<u64, SaveError> {
    let file = r.file.display().to_string();
    let on_disk = match policy::read_policy_file(&r.file) {
        Ok(t) => Some(t),
        Err(policy::model::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(SaveError::Read { file, why: e.to_string() }),
    };
    match (&r.base_hash, on_disk) {
        (None, Some(_)) => return Err(SaveError::Exists(file)),
        (Some(h), Some(t)) if &policy::edit::content_hash(&t) != h => {
            return Err(SaveError::Conflict { file, on_disk: t })
        }
        (Some(_), None) => return Err(SaveError::Conflict { file, on_disk: String::new() }),
        _ => {}
    }
    let p =
        policy::parse(&r.text, &r.file).map_err(|e| SaveError::Invalid(e.iter().map(|x| x.to_string()).collect()))?;
    if let Some(dir) = r.file.parent() {
        let (others, _) = policy::load_dir(dir);
        if let Some(o) = others.iter().find(|o| o.id == p.id && o.file != r.file) {
            return Err(SaveError::Duplicate {
                app: p.name().to_string(),
                cloud: p.cloud().to_string(),
                other: o.file.display().to_string(),
            });
        }
    }
    let rec = crate::store::PolicyChangeRecord {
        policy_id: &p.id,
        app: p.name(),
        file: &file,
        content_hash: &p.content_hash,
        text: &r.text,
        actor: &r.actor,
        summary: Some(&r.summary),
    };
    let (generation, new) = store.record_policy(&rec, &now)?;
    // Once more just before the rename: a write that landed meanwhile is not lost.
    let unchanged = || {
        let now_there = policy::read_policy_file(&r.file).ok().map(|t| policy::edit::content_hash(&t));
        if now_there == r.base_hash {
            Ok(())
        } else {
            Err(std::io::Error::other("the file changed on disk while it was being saved; nothing was written"))
        }
    };
    if let Err(source) = policy::edit::save_atomic(&r.file, &r.text, unchanged) {
        if new {
            if let Err(e) = store.forget_policy_change(&p.id, generation) {
                tracing::error!("a failed policy write stays recorded: {e}");
            }
        }
        return Err(SaveError::Write { file, source });
    }
    let e = Event::new(now, &r.actor, p.cloud(), "policy-edit", r.summary.clone())
        .app(p.name().to_string())
        .target(file)
        .detail(format!("change {generation}"));
    // The file is written: a failure to record the event does not undo that.
    if let Err(err) = store.add_event(&e) {
        tracing::error!("the policy change {generation} of {} is saved, its event is not: {err}", p.name());
    }
    Ok(generation)
}
