//! Policy editing in the console, as pure state and updates: the quick-edit
//! form (values checked as they are typed, names completed from the cloud's
//! catalog), the review of every change (a unified diff and its effect in the
//! engine's words) and a policy's history (diff any two changes, restore one).
//! The runtime loads files, runs `$EDITOR`, asks the engine for a preview and
//! writes; every write goes through the review.

use super::app::{App, Effect, Mode, ViewKind};
use super::keymap::{Code, Key};
use crate::domain::Severity;
use crate::engine::policies::SaveRequest;
use crate::engine::preview::{effect, Preview};
use crate::inventory::{CloudSnapshot, Kind, Snapshot};
use crate::policy::edit::{self, Field};
use crate::policy::{AppRunMode, CloudCatalog, PolicyFile};
use crate::store::PolicyChange;
use std::path::{Path, PathBuf};
use tui_input::Input;

/// A policy file as the console last read it, with its recorded history.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDoc {
    pub policy_id: String,
    pub app: String,
    pub cloud: String,
    pub file: PathBuf,
    /// The file's text, or why it could not be read.
    pub text: Result<String, String>,
    /// Newest first.
    pub history: Vec<PolicyChange>,
    /// Why the history could not be read.
    pub history_error: Option<String>,
}

impl PolicyDoc {
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref().ok()
    }
    pub fn spec(&self) -> Option<PolicyFile> {
        crate::policy::parse(self.text()?, &self.file).ok().map(|p| p.spec)
    }
}

/// What a form field edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKey {
    Field(Field),
    /// A new application's name.
    Name,
    /// A new application's network.
    Network,
}

#[derive(Debug, Clone)]
pub struct FormField {
    pub key: FormKey,
    pub label: String,
    pub input: Input,
    pub original: String,
    pub error: Option<String>,
}

/// The quick-edit form (or a new application's).
#[derive(Debug, Clone)]
pub struct Form {
    pub title: String,
    /// `None`: a new application.
    pub policy_id: Option<String>,
    pub cloud: String,
    pub file: PathBuf,
    pub base_text: Option<String>,
    pub fields: Vec<FormField>,
    pub focus: usize,
    /// Completion: (what was typed, index of the candidate shown).
    pub completion: Option<(String, usize)>,
    /// Checks that could not be made (a catalog list was not read).
    pub notes: Vec<String>,
    /// A new application's policies directory (its file is named after it).
    pub dir: Option<PathBuf>,
    /// What the operator should know about the values (kept while typing).
    pub info: Vec<String>,
    /// Applications already defined on the cloud (a new one needs another name).
    pub taken: Vec<String>,
}

/// The engine's preview of a change.
#[derive(Debug, Clone, PartialEq)]
pub enum PreviewState {
    /// No engine runs in this console: the policy's change is shown alone.
    NoEngine,
    Waiting,
    Ready(Preview),
    Failed(String),
}

/// A change waiting for the operator's confirmation.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub title: String,
    pub policy_id: Option<String>,
    pub app: String,
    pub cloud: String,
    pub file: PathBuf,
    pub base_hash: Option<String>,
    pub old_text: Option<String>,
    pub new_text: String,
    pub diff: String,
    pub effect: Vec<String>,
    pub preview: PreviewState,
    /// Why the new text cannot be applied (it is shown, Apply is refused).
    pub problems: Vec<String>,
    pub confirm_focused: bool,
    pub scroll: u16,
}

/// How an `$EDITOR` session ended.
#[derive(Debug, Clone, PartialEq)]
pub enum EditOutcome {
    /// Quit without a change: nothing happens.
    Unchanged,
    /// A text that parses and validates.
    Changed(String),
    /// Quit on a text that did not validate: nothing written, the text kept there.
    Cancelled(Option<PathBuf>),
    Failed(String),
}

/// What to do once a policy's file is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    Form,
    Editor,
}

/// The catalog of a cloud (what names resolve against), and what was not read.
fn catalog(c: &CloudSnapshot) -> (CloudCatalog, Vec<Kind>) {
    let cat = CloudCatalog {
        images: c.images.to_vec(),
        flavors: c.flavors.to_vec(),
        networks: c.networks.to_vec(),
        keypairs: c.keypairs.to_vec(),
        security_groups: c.security_groups.to_vec(),
    };
    (cat, c.catalog_unread())
}

/// A candidate text checked as the engine reads it: strict parse and
/// validation, the same application (an application does not move or rename),
/// names resolved on its cloud when the cloud's lists were read.
pub fn check_candidate(
    snap: &Snapshot,
    text: &str,
    file: &Path,
    expect_id: Option<&str>,
) -> Result<(crate::policy::Policy, Vec<String>), Vec<crate::policy::PolicyError>> {
    let p = crate::policy::parse(text, file)?;
    let problem = |field: &str, message: String| crate::policy::PolicyError {
        file: file.to_path_buf(),
        line: None,
        col: None,
        field: Some(field.to_string()),
        message,
    };
    if expect_id.is_some_and(|id| id != p.id) {
        return Err(vec![problem(
            "app.name",
            "[app] name and cloud cannot change (an application does not move or rename): create another with :new-app"
                .into(),
        )]);
    }
    let mut notes = Vec::new();
    let Some(c) = snap.clouds.iter().find(|c| c.name == p.cloud()) else {
        return Err(vec![problem("app.cloud", format!("no cloud `{}` in this console", p.cloud()))]);
    };
    let (cat, unread) = catalog(c);
    if unread.is_empty() {
        crate::policy::resolve(&p, &cat, Some(text))?;
    } else {
        let kinds: Vec<&str> = unread.iter().map(|k| k.as_str()).collect();
        notes.push(format!("names not checked: the cloud's {} were not read yet", kinds.join(", ")));
    }
    Ok((p, notes))
}

/// Names of a kind in a cloud's catalog, for completion.
fn names_of(c: Option<&CloudSnapshot>, key: FormKey) -> Vec<String> {
    let Some(c) = c else { return vec![] };
    let mut v: Vec<String> = match key {
        FormKey::Field(Field::Image) => {
            c.images.iter().filter(|i| i.status == "active").filter_map(|i| i.name.clone()).collect()
        }
        FormKey::Field(Field::Flavor) => c.flavors.iter().map(|f| f.name.clone()).collect(),
        FormKey::Network => c.networks.iter().map(|n| n.name.clone()).collect(),
        FormKey::Field(Field::Mode) => AppRunMode::ALL.iter().map(|m| m.as_str().to_string()).collect(),
        _ => vec![],
    };
    v.sort();
    v.dedup();
    v
}

fn completes(key: FormKey) -> bool {
    matches!(key, FormKey::Field(Field::Image | Field::Flavor | Field::Mode) | FormKey::Network)
}

fn field(key: FormKey, label: String, value: String) -> FormField {
    FormField { key, label, input: Input::new(value.clone()), original: value, error: None }
}

/// The quick-edit form of a loaded policy.
pub fn form_for(doc: &PolicyDoc) -> Result<Form, String> {
    let text = doc.text.clone().map_err(|e| format!("{}: {e}", doc.file.display()))?;
    let spec = crate::policy::parse(&text, &doc.file).map_err(|es| {
        let first = es.first().map(|e| e.to_string()).unwrap_or_default();
        format!("the file does not validate ({first}): edit it with e")
    })?;
    let spec = spec.spec;
    let fields =
        Field::of(&spec).into_iter().map(|f| field(FormKey::Field(f), f.label(&spec), f.value(&spec))).collect();
    Ok(Form {
        title: format!("change {} on {}", doc.app, doc.cloud),
        policy_id: Some(doc.policy_id.clone()),
        cloud: doc.cloud.clone(),
        file: doc.file.clone(),
        base_text: Some(text),
        fields,
        focus: 0,
        completion: None,
        notes: vec![],
        dir: None,
        info: vec![],
        taken: vec![],
    })
}

/// The form of a new application, filled from the cloud's catalog.
pub fn new_app_form(c: &CloudSnapshot, name: &str, dir: &Path) -> Form {
    let first = |key| names_of(Some(c), key).into_iter().next().unwrap_or_default();
    let fields = vec![
        field(FormKey::Name, "name".into(), name.to_string()),
        field(FormKey::Field(Field::Image), "image".into(), first(FormKey::Field(Field::Image))),
        field(FormKey::Field(Field::Flavor), "flavor".into(), first(FormKey::Field(Field::Flavor))),
        field(FormKey::Network, "network".into(), first(FormKey::Network)),
        field(FormKey::Field(Field::Min), "min".into(), "1".into()),
        field(FormKey::Field(Field::Max), "max".into(), "4".into()),
        field(FormKey::Field(Field::Desired), "desired".into(), "2".into()),
    ];
    Form {
        title: format!("new application on {}", c.name),
        policy_id: None,
        cloud: c.name.clone(),
        file: dir.join("new.toml"),
        base_text: None,
        fields,
        focus: 0,
        completion: None,
        notes: vec![],
        dir: Some(dir.to_path_buf()),
        info: vec![],
        taken: vec![],
    }
}

impl Form {
    fn value(&self, key: FormKey) -> String {
        self.fields.iter().find(|f| f.key == key).map(|f| f.input.value().trim().to_string()).unwrap_or_default()
    }

    /// The text the form stands for (its values set in the file, or a new file).
    pub fn candidate(&self) -> Result<String, (FormKey, String)> {
        for f in &self.fields {
            if let FormKey::Field(k) = f.key {
                k.check(f.input.value()).map_err(|m| (f.key, m))?;
            }
        }
        match &self.base_text {
            Some(base) => {
                let changes: Vec<(Field, String)> = self
                    .fields
                    .iter()
                    .filter(|f| f.input.value().trim() != f.original)
                    .filter_map(|f| match f.key {
                        FormKey::Field(k) => Some((k, f.input.value().trim().to_string())),
                        _ => None,
                    })
                    .collect();
                edit::set_fields(base, &changes).map_err(|e| match e {
                    edit::EditError::Value { field, message } => (FormKey::Field(field), message),
                    other => (FormKey::Field(Field::Desired), other.to_string()),
                })
            }
            None => {
                let n = |k| self.value(FormKey::Field(k)).parse::<u32>().unwrap_or_default();
                Ok(edit::new_app_text(
                    &self.value(FormKey::Name),
                    &self.cloud,
                    &self.value(FormKey::Field(Field::Image)),
                    &self.value(FormKey::Field(Field::Flavor)),
                    &self.value(FormKey::Network),
                    (n(Field::Min), n(Field::Max), n(Field::Desired)),
                ))
            }
        }
    }

    /// Check every field: its type and range, then the whole policy as the
    /// engine would read it, each error shown on the field it is about.
    pub fn validate(&mut self, snap: &Snapshot) -> Option<String> {
        for f in self.fields.iter_mut() {
            f.error = None;
        }
        self.notes.clear();
        if let Some(dir) = &self.dir {
            // Named after the application; a name that is not one is refused below.
            let name = self.value(FormKey::Name);
            let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            self.file = dir.join(format!("{}.toml", if plain { name.as_str() } else { "invalid" }));
        }
        let text = match self.candidate() {
            Ok(t) => t,
            Err((key, m)) => {
                self.set_error(key, m.clone());
                return Some(m);
            }
        };
        let name = self.value(FormKey::Name);
        if self.dir.is_some() && self.taken.contains(&name) {
            let m = format!("`{name}` is already an application on {}: pick another name", self.cloud);
            self.set_error(FormKey::Name, m.clone());
            return Some(m);
        }
        let file = self.file.clone();
        match check_candidate(snap, &text, &file, self.policy_id.as_deref()) {
            Ok((_, notes)) => {
                self.notes = notes;
                None
            }
            Err(errs) => {
                let first = errs.first().map(|e| e.to_string());
                for e in errs {
                    let key = self.key_of(e.field.as_deref().unwrap_or_default());
                    self.set_error(key, e.message);
                }
                first
            }
        }
    }

    fn key_of(&self, path: &str) -> FormKey {
        if path == "app.name" && self.base_text.is_none() {
            return FormKey::Name;
        }
        if path == "deploy.networks" {
            return FormKey::Network;
        }
        // Capacity errors belong to the field the operator changed, else desired.
        let changed =
            |k: Field| self.fields.iter().any(|f| f.key == FormKey::Field(k) && f.input.value().trim() != f.original);
        if path.starts_with("deploy.capacity") {
            for k in [Field::Min, Field::Max, Field::Desired] {
                if changed(k) {
                    return FormKey::Field(k);
                }
            }
            return FormKey::Field(Field::Desired);
        }
        self.fields
            .iter()
            .filter_map(|f| match f.key {
                FormKey::Field(k) if k.owns(path) => Some(f.key),
                _ => None,
            })
            .next()
            .unwrap_or(FormKey::Field(Field::Desired))
    }

    fn set_error(&mut self, key: FormKey, m: String) {
        if let Some(f) = self.fields.iter_mut().find(|f| f.key == key) {
            if f.error.is_none() {
                f.error = Some(m);
            }
        }
    }

    /// The completion candidates of the focused field.
    pub fn candidates(&self, snap: Option<&CloudSnapshot>) -> Vec<String> {
        let Some(f) = self.fields.get(self.focus) else { return vec![] };
        if !completes(f.key) {
            return vec![];
        }
        let typed = self.completion.as_ref().map(|c| c.0.clone()).unwrap_or_else(|| f.input.value().to_string());
        let low = typed.to_lowercase();
        // The mode has three values: all of them, always, the matching first.
        if f.key == FormKey::Field(Field::Mode) {
            let mut all = names_of(snap, f.key);
            crate::domain::sort::sort_by_key(&mut all, |n| !n.contains(&low));
            return all;
        }
        names_of(snap, f.key).into_iter().filter(|n| n.to_lowercase().contains(&low)).collect()
    }
}

/// A review of a change from one text to another.
pub fn review(
    title: String,
    policy_id: Option<String>,
    file: &Path,
    old_text: Option<String>,
    new_text: String,
    with_engine: bool,
) -> Review {
    let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let diff = edit::unified_diff(
        old_text.as_deref().unwrap_or_default(),
        &new_text,
        &format!("{name} (as opened)"),
        &format!("{name} (after)"),
    );
    let old = old_text.as_deref().and_then(|t| crate::policy::parse(t, file).ok()).map(|p| p.spec);
    let new = crate::policy::parse(&new_text, file).ok();
    let (app, cloud) = new.as_ref().map(|p| (p.name().to_string(), p.cloud().to_string())).unwrap_or_default();
    let effect = match (&old_text, &old, &new) {
        // The file on disk does not validate: there is nothing to compare with.
        (Some(_), None, Some(_)) => vec!["the file on disk does not validate; after this change it does".to_string()],
        (_, _, Some(p)) => effect(old.as_ref(), &p.spec, None),
        _ => vec![],
    };
    Review {
        title,
        policy_id,
        app,
        cloud,
        file: file.to_path_buf(),
        base_hash: old_text.as_deref().map(edit::content_hash),
        old_text,
        new_text,
        diff,
        effect,
        preview: if with_engine { PreviewState::Waiting } else { PreviewState::NoEngine },
        problems: vec![],
        confirm_focused: false,
        scroll: 0,
    }
}

/// Open the review of a change and ask the engine for its preview.
pub fn start_review(app: &mut App, r: Review) -> Vec<Effect> {
    app.message = None;
    let fx = match r.preview {
        PreviewState::Waiting => vec![Effect::Preview { file: r.file.clone(), text: r.new_text.clone() }],
        _ => vec![],
    };
    app.mode = Mode::Review(Box::new(r));
    fx
}

/// The engine answered a preview.
pub fn preview_done(app: &mut App, file: &Path, text: &str, result: Result<Preview, String>) {
    let Mode::Review(r) = &mut app.mode else { return };
    if r.file != file || r.new_text != text {
        return;
    }
    match result {
        Ok(p) => {
            let old = r.old_text.as_deref().and_then(|t| crate::policy::parse(t, file).ok()).map(|p| p.spec);
            if let Ok(new) = crate::policy::parse(&r.new_text, file) {
                r.effect = effect(old.as_ref(), &new.spec, Some(&p));
            }
            r.preview = PreviewState::Ready(p);
        }
        Err(e) => r.preview = PreviewState::Failed(e),
    }
}

/// Keys of the quick-edit form.
pub fn form_key(app: &mut App, k: Key, mut form: Form) -> Vec<Effect> {
    let n = form.fields.len().max(1);
    match k.code {
        Code::Esc => {
            app.mode = Mode::Normal;
            app.notify(format!("{}: cancelled, nothing written", form.title), Severity::Info);
            return vec![];
        }
        Code::Down | Code::BackTab | Code::Up => {
            form.completion = None;
            form.focus = if k.code == Code::Down { (form.focus + 1) % n } else { (form.focus + n - 1) % n };
        }
        Code::Tab => {
            let cloud = app.shown().clouds.iter().find(|c| c.name == form.cloud).cloned();
            let cands = form.candidates(cloud.as_ref());
            let current = form.fields.get(form.focus).map(|f| f.input.value().to_string()).unwrap_or_default();
            let settled = form.completion.is_none() && cands.len() == 1 && cands.first() == Some(&current);
            if cands.is_empty() || settled {
                form.completion = None;
                form.focus = (form.focus + 1) % n;
            } else {
                let (typed, i) = match form.completion.take() {
                    Some((t, i)) => (t, (i + 1) % cands.len()),
                    None => (form.fields.get(form.focus).map(|f| f.input.value().to_string()).unwrap_or_default(), 0),
                };
                if let (Some(f), Some(c)) = (form.fields.get_mut(form.focus), cands.get(i)) {
                    f.input = Input::new(c.clone());
                }
                form.completion = Some((typed, i));
            }
        }
        Code::Enter => {
            let snap = app.shown().clone();
            if let Some(e) = form.validate(&snap) {
                app.notify(format!("not yet: {e}"), Severity::Warning);
                app.mode = Mode::Form(Box::new(form));
                return vec![];
            }
            let text = match form.candidate() {
                Ok(t) => t,
                Err((_, m)) => {
                    app.notify(m, Severity::Warning);
                    app.mode = Mode::Form(Box::new(form));
                    return vec![];
                }
            };
            if form.base_text.as_deref() == Some(text.as_str()) {
                app.mode = Mode::Normal;
                app.notify("no value changed: nothing to write", Severity::Info);
                return vec![];
            }
            let r = review(
                form.title.clone(),
                form.policy_id.clone(),
                &form.file,
                form.base_text.clone(),
                text,
                app.engine.is_some(),
            );
            return start_review(app, r);
        }
        _ => {
            if let (Some(req), Some(f)) = (super::app::input_request(k), form.fields.get_mut(form.focus)) {
                f.input.handle(req);
                form.completion = None;
            }
        }
    }
    let snap = app.shown().clone();
    form.validate(&snap);
    app.mode = Mode::Form(Box::new(form));
    vec![]
}

/// Keys of a change's review: Cancel is focused first.
pub fn review_key(app: &mut App, k: Key, mut r: Review) -> Vec<Effect> {
    let page = app.page() as u16;
    let lines = (r.diff.lines().count() + r.effect.len() + 4) as u16;
    match k.code {
        Code::Esc => {
            app.mode = Mode::Normal;
            app.notify(format!("{}: cancelled, nothing written", r.title), Severity::Info);
            return vec![];
        }
        Code::Tab | Code::BackTab | Code::Left | Code::Right | Code::Char('h') | Code::Char('l') => {
            r.confirm_focused = !r.confirm_focused
        }
        Code::Down | Code::Char('j') => r.scroll = (r.scroll + 1).min(lines),
        Code::Up | Code::Char('k') => r.scroll = r.scroll.saturating_sub(1),
        Code::PageDown | Code::Char(' ') => r.scroll = (r.scroll + page).min(lines),
        Code::PageUp => r.scroll = r.scroll.saturating_sub(page),
        Code::Enter if !r.confirm_focused => {
            app.mode = Mode::Normal;
            app.notify(format!("{}: cancelled, nothing written", r.title), Severity::Info);
            return vec![];
        }
        Code::Enter if !r.problems.is_empty() => {
            app.notify("this change does not validate: it cannot be applied", Severity::Warning);
        }
        Code::Enter if r.preview == PreviewState::Waiting => {
            app.notify("waiting for the engine's plan of this change (a few seconds)", Severity::Info);
        }
        Code::Enter => {
            app.mode = Mode::Normal;
            if app.read_only {
                app.notify("read-only: policies are not changed from this console", Severity::Warning);
                return vec![];
            }
            app.notify(format!("{}: writing {}…", r.title, r.file.display()), Severity::Info);
            let mut summary = if r.effect.is_empty() { "policy edited".to_string() } else { r.effect.join("; ") };
            if !matches!(r.preview, PreviewState::Ready(_)) {
                summary.push_str(" (no plan preview)");
            }
            return vec![Effect::SavePolicy(SaveRequest {
                file: r.file.clone(),
                base_hash: r.base_hash.clone(),
                text: r.new_text.clone(),
                actor: crate::domain::event::operator_actor(),
                summary,
            })];
        }
        _ => {}
    }
    app.mode = Mode::Review(Box::new(r));
    vec![]
}

/// The policy an action applies to: the selected row of Policies, or the
/// open policy.
pub fn selected_policy(app: &App) -> Option<crate::engine::PolicyView> {
    let v = app.view();
    let id = match v.kind {
        ViewKind::Policies => v.selected_id.clone(),
        ViewKind::PolicyDetail => v.policy.clone(),
        _ => None,
    }?;
    app.engine.as_ref()?.policies.iter().find(|p| p.policy_id == id).cloned()
}

/// Load a policy (its file and history), then go on with `then`.
pub fn load(app: &mut App, p: &crate::engine::PolicyView, then: Option<Then>) -> Vec<Effect> {
    app.after_load = then.map(|t| (p.policy_id.clone(), t));
    vec![Effect::LoadPolicy {
        policy_id: p.policy_id.clone(),
        app: p.app.clone(),
        cloud: p.cloud.clone(),
        file: PathBuf::from(&p.file),
    }]
}

/// A policy's file and history arrived.
pub fn loaded(app: &mut App, doc: PolicyDoc) -> Vec<Effect> {
    let id = doc.policy_id.clone();
    app.docs.insert(id.clone(), doc);
    if app.view().kind == ViewKind::PolicyDetail {
        app.refresh_rows();
    }
    match app.after_load.take() {
        Some((pid, then)) if pid == id => proceed(app, &id, then),
        other => {
            app.after_load = other;
            vec![]
        }
    }
}

/// Open the form or the editor on a loaded policy.
pub fn proceed(app: &mut App, id: &str, then: Then) -> Vec<Effect> {
    let Some(doc) = app.docs.get(id).cloned() else { return vec![] };
    match then {
        Then::Form => match form_for(&doc) {
            Ok(mut f) => {
                let view = app.engine.as_ref().and_then(|e| e.policies.iter().find(|p| p.policy_id == doc.policy_id));
                if let (Some(v), Some(spec)) = (view, doc.spec()) {
                    if spec.scaling.is_some() && v.desired != spec.deploy.capacity.desired {
                        f.info.push(format!(
                            "the autoscaler owns desired ({} now): the file's value only matters within min..max",
                            v.desired
                        ));
                    }
                }
                let snap = app.shown().clone();
                f.validate(&snap);
                app.mode = Mode::Form(Box::new(f));
                vec![]
            }
            Err(e) => {
                app.notify(e, Severity::Warning);
                vec![]
            }
        },
        Then::Editor => match doc.text.clone() {
            Ok(text) => {
                vec![Effect::EditPolicy { policy_id: Some(doc.policy_id.clone()), file: doc.file.clone(), text }]
            }
            Err(e) => {
                app.notify(format!("{}: {e}", doc.file.display()), Severity::Warning);
                vec![]
            }
        },
    }
}

/// An `$EDITOR` session ended.
pub fn edited(
    app: &mut App,
    policy_id: Option<String>,
    file: PathBuf,
    base: String,
    outcome: EditOutcome,
) -> Vec<Effect> {
    match outcome {
        EditOutcome::Unchanged => {
            app.notify(format!("{}: no change, nothing written", file.display()), Severity::Info);
            vec![]
        }
        EditOutcome::Cancelled(kept) => {
            let kept = kept
                .map(|k| format!("; the text that did not validate is kept in {}", k.display()))
                .unwrap_or_default();
            app.notify(format!("{}: cancelled, nothing written{kept}", file.display()), Severity::Info);
            vec![]
        }
        EditOutcome::Failed(e) => {
            app.notify(format!("the editor failed: {e}; nothing written"), Severity::Warning);
            vec![]
        }
        EditOutcome::Changed(text) => {
            let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let r = review(format!("edit {name}"), policy_id, &file, Some(base), text, app.engine.is_some());
            start_review(app, r)
        }
    }
}

/// A confirmed change was written, or why not.
pub fn saved(app: &mut App, p: SavedPolicy) -> Vec<Effect> {
    match p.result {
        Ok(generation) => {
            app.notify(
                format!("{} saved (change {generation}): the engine applies it on its next tick", p.file.display()),
                Severity::Info,
            );
        }
        Err(SaveFailure::Conflict { on_disk, yours, kept }) => {
            let name = p.file.display().to_string();
            app.notify(format!("not saved: {name} changed on disk since it was opened"), Severity::Warning);
            let diff =
                edit::unified_diff(&on_disk, &yours, &format!("{name} (on disk now)"), &format!("{name} (yours)"));
            let kept = kept.map(|k| format!(" Your text is kept in {}.", k.display())).unwrap_or_default();
            let text = format!(
                "{name} changed on disk since you opened it: nothing was written.{kept}\n\
                 Below: what is on disk now, and your change against it. Edit again (e) to start from the file as it is.\n\n{diff}"
            );
            app.mode = Mode::Raw { title: format!("conflict: {name}"), text, scroll: 0 };
        }
        Err(SaveFailure::Other(e)) => app.notify(format!("not saved: {e}"), Severity::Warning),
    }
    let Some(id) = p.policy_id else { return vec![] };
    let Some(v) = app.engine.as_ref().and_then(|e| e.policies.iter().find(|x| x.policy_id == id)).cloned() else {
        return vec![];
    };
    load(app, &v, None)
}

/// The outcome of a save, for `update`.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedPolicy {
    pub policy_id: Option<String>,
    pub file: PathBuf,
    pub result: Result<u64, SaveFailure>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SaveFailure {
    /// The file changed on disk since it was opened (`kept`: where the
    /// operator's text was saved aside).
    Conflict {
        on_disk: String,
        yours: String,
        kept: Option<PathBuf>,
    },
    Other(String),
}

/// `:new-app NAME`.
pub fn new_app(app: &mut App, name: &str) -> Vec<Effect> {
    if app.read_only {
        app.notify("read-only: no application is created from this console", Severity::Warning);
        return vec![];
    }
    let Some(dir) = app.policies_dir.clone() else {
        app.notify("this console has no policies directory ([engine] policies_dir)", Severity::Warning);
        return vec![];
    };
    let Some(c) = app.cloud_snapshot().cloned() else {
        app.notify("no cloud to create it on", Severity::Warning);
        return vec![];
    };
    let mut f = new_app_form(&c, name, &dir);
    f.taken = app
        .engine
        .as_ref()
        .map(|e| e.policies.iter().filter(|p| p.cloud == c.name).map(|p| p.app.clone()).collect())
        .unwrap_or_default();
    let snap = app.shown().clone();
    f.validate(&snap);
    app.mode = Mode::Form(Box::new(f));
    vec![]
}

/// The changes of the open policy's history: `m` marks, `d` diffs, `R` restores.
pub fn history_action(app: &mut App, action: super::keymap::Action) -> Vec<Effect> {
    use super::keymap::Action;
    let v = app.view().clone();
    let Some(doc) = v.policy.as_ref().and_then(|id| app.docs.get(id)).cloned() else {
        app.notify("the policy is still loading", Severity::Info);
        return vec![];
    };
    let sel: Option<u64> = v.selected_id.as_deref().and_then(|s| s.parse().ok());
    let change = |g: Option<u64>| doc.history.iter().find(|c| Some(c.generation) == g).cloned();
    let Some(selected) = change(sel) else {
        app.notify("no change selected", Severity::Info);
        return vec![];
    };
    match action {
        Action::MarkChange => {
            app.marked_change =
                if app.marked_change == Some(selected.generation) { None } else { Some(selected.generation) };
            vec![]
        }
        Action::DiffChange => {
            let Some(new) = selected.text.clone() else {
                app.notify(format!("change {} was recorded without its text", selected.generation), Severity::Info);
                return vec![];
            };
            let name = doc.file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            // Older first: the diff reads as what changed since.
            let this = (new, format!("{name} change {}", selected.generation));
            let (from, to) = match app.marked_change.and_then(|g| change(Some(g))) {
                Some(m) if m.generation != selected.generation => {
                    let marked = (m.text.clone().unwrap_or_default(), format!("{name} change {}", m.generation));
                    if m.generation < selected.generation {
                        (marked, this)
                    } else {
                        (this, marked)
                    }
                }
                _ => (this, (doc.text().unwrap_or_default().to_string(), format!("{name} (file now)"))),
            };
            let diff = edit::unified_diff(&from.0, &to.0, &from.1, &to.1);
            let text = if diff.is_empty() { "no difference".to_string() } else { diff };
            app.mode = Mode::Raw { title: format!("diff of {}", doc.app), text, scroll: 0 };
            vec![]
        }
        Action::RestoreChange => {
            let Some(text) = selected.text.clone() else {
                app.notify(
                    format!("change {} was recorded without its text: it cannot be restored", selected.generation),
                    Severity::Warning,
                );
                return vec![];
            };
            let old = doc.text().map(str::to_string);
            if old.as_deref() == Some(text.as_str()) {
                app.notify(format!("the file already holds change {}", selected.generation), Severity::Info);
                return vec![];
            }
            let mut r = review(
                format!("restore {} to change {}", doc.app, selected.generation),
                Some(doc.policy_id.clone()),
                &doc.file,
                old,
                text,
                app.engine.is_some(),
            );
            // Checked as any edit: the cloud may have lost an image since.
            let snap = app.shown().clone();
            if let Err(errs) = check_candidate(&snap, &r.new_text, &doc.file, Some(&doc.policy_id)) {
                r.problems = errs.iter().map(ToString::to_string).collect();
                r.preview = PreviewState::Failed("the restored text does not validate".into());
            }
            start_review(app, r)
        }
        _ => vec![],
    }
}

/// `u` in an open policy: the user data a member boots with (slot 0, the
/// revision in force).
pub fn render(app: &mut App) {
    let Some(doc) = app.view().policy.as_ref().and_then(|id| app.docs.get(id)).cloned() else {
        app.notify("the policy is still loading", Severity::Info);
        return;
    };
    let Some(spec) = doc.spec() else {
        app.notify(format!("{} does not validate: nothing to render", doc.file.display()), Severity::Warning);
        return;
    };
    let rev = app
        .engine
        .as_ref()
        .and_then(|e| e.policies.iter().find(|p| p.policy_id == doc.policy_id))
        .map(|p| p.revision.max(1))
        .unwrap_or(1);
    let text = match spec.effective_user_data() {
        Some(t) => crate::policy::render_user_data(&t, &doc.app, rev, 0, &doc.cloud),
        None => "no user data: no deploy.user_data, no [environment] or [application]".into(),
    };
    app.mode = Mode::Raw { title: format!("user data of {} (revision {rev}, slot 0)", doc.app), text, scroll: 0 };
}
