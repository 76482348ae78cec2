//! Operators' requests about rollouts, through the store: the acting engine
//! (in a console or headless, on this host) reads a command on its next tick,
//! applies it and clears it; status is read from the state it persists. Used
//! by `stackpilot rollout ...` and the console.

use super::plan::EngineState;
use super::rollout::{command_key, Command, Phase};
use crate::domain::{Event, Severity, Timestamp};
use crate::store::{KnownPolicy, PolicyState, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum OperateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("read-only: rollouts are not changed from here")]
    ReadOnly,
    #[error("no application `{0}` is known to the engine on this host")]
    Unknown(String),
    #[error("`{app}` runs on several clouds ({clouds}): name one with --cloud")]
    Ambiguous { app: String, clouds: String },
    #[error("revision {revision} of `{app}` is not recorded (recorded: {known})")]
    NoSuchRevision { app: String, revision: u32, known: String },
    #[error("`{app}` has no rollout going on: nothing to {what}")]
    NoRollout { app: String, what: &'static str },
}

/// The policy of an application, by name (and cloud when several run it).
pub fn find(store: &Store, app: &str, cloud: Option<&str>) -> Result<KnownPolicy, OperateError> {
    let known = store.known_policies()?;
    let mut m: Vec<KnownPolicy> = known
        .into_iter()
        .filter(|k| k.app == app && k.state != PolicyState::Retired && cloud.is_none_or(|c| c == k.cloud))
        .collect();
    match m.len() {
        0 => Err(OperateError::Unknown(app.to_string())),
        1 => m.pop().ok_or_else(|| OperateError::Unknown(app.to_string())),
        _ => Err(OperateError::Ambiguous {
            app: app.to_string(),
            clouds: m.iter().map(|k| k.cloud.as_str()).collect::<Vec<_>>().join(", "),
        }),
    }
}

fn state_of(store: &Store, cloud: &str) -> Result<EngineState, StoreError> {
    Ok(store.control_as::<EngineState>(&format!("engine-state:{cloud}"))?.unwrap_or_default())
}

/// Where an application's rollout stands, in a few lines.
pub fn status(store: &Store, k: &KnownPolicy) -> Result<String, OperateError> {
    let st = state_of(store, &k.cloud)?;
    let book = &st.rollouts;
    let pid = &k.policy_id;
    let mut out = format!("{} on {}\n", k.app, k.cloud);
    match book.stable.get(pid) {
        Some(s) => out.push_str(&format!("  stable revision  {s}\n")),
        None => out.push_str("  stable revision  none yet\n"),
    }
    match book.rollouts.get(pid) {
        None => out.push_str("  rollout          none going on\n"),
        Some(r) => {
            let kind = if r.rolling_back_from.is_some() { "rollback" } else { "rollout" };
            let from = r.from.or(r.rolling_back_from).map(|f| format!("revision {f} → ")).unwrap_or_default();
            out.push_str(&format!("  {kind:<16} {from}revision {}\n", r.target));
            let phase = match &r.phase {
                Phase::Progressing => "progressing".to_string(),
                Phase::Paused { why, until: Some(u) } => format!("paused until {}: {why}", u.format("%H:%M:%S")),
                Phase::Paused { why, until: None } => format!("paused: {why}"),
            };
            out.push_str(&format!("  phase            {phase}\n"));
            out.push_str(&format!("  new ready        {}\n", r.new_ready));
            out.push_str(&format!("  started          {}\n", r.started.format("%Y-%m-%d %H:%M:%S")));
            out.push_str(&format!("  last progress    {}\n", r.progress_at.format("%Y-%m-%d %H:%M:%S")));
        }
    }
    if let Some(f) = book.failed.get(pid) {
        out.push_str(&format!(
            "  failed           revision {}: {} (not retried until the policy changes)\n",
            f.revision, f.why
        ));
    }
    if let Some(p) = book.pinned.get(pid) {
        out.push_str(&format!("  undone to        revision {} (until the policy changes)\n", p.revision));
    }
    if let Some(c) = store.control_as::<Command>(&command_key(pid))? {
        out.push_str(&format!("  waiting command  {c:?} (the acting engine applies it on its next tick)\n"));
    }
    out.push_str("  revisions\n");
    for r in store.revisions(pid)?.iter().rev() {
        let spec: String = r.spec_hash.chars().take(12).collect();
        let what = serde_json::from_slice::<crate::policy::ResolvedSpec>(r.spec.as_bytes())
            .map(|s| format!("image {} flavor {}", s.image_name, s.flavor_name))
            .unwrap_or_default();
        out.push_str(&format!("    {:>4}  {}  {spec}  {what}\n", r.revision, r.created_at.format("%Y-%m-%d %H:%M:%S")));
    }
    Ok(out)
}

/// Leave a command for the acting engine (recorded in Events).
pub fn request(
    store: &Store,
    k: &KnownPolicy,
    cmd: Command,
    actor: &str,
    may_act: bool,
    now: Timestamp,
) -> Result<String, OperateError> {
    if !may_act {
        return Err(OperateError::ReadOnly);
    }
    let st = state_of(store, &k.cloud)?;
    let rolling = st.rollouts.rollouts.contains_key(&k.policy_id);
    let what = match &cmd {
        Command::Pause => "pause",
        Command::Resume => "resume",
        Command::Abort => "abort",
        Command::Undo { .. } => "undo",
    };
    if !rolling && matches!(cmd, Command::Pause | Command::Resume | Command::Abort) {
        return Err(OperateError::NoRollout { app: k.app.clone(), what });
    }
    if let Command::Undo { revision } = cmd {
        let revs = store.revisions(&k.policy_id)?;
        if !revs.iter().any(|r| r.revision == revision) {
            let known = revs.iter().map(|r| r.revision.to_string()).collect::<Vec<_>>().join(", ");
            return Err(OperateError::NoSuchRevision { app: k.app.clone(), revision, known });
        }
    }
    let text = match &cmd {
        Command::Undo { revision } => format!("undo to revision {revision}"),
        _ => format!("{what} the rollout"),
    };
    store.put_control_as(&command_key(&k.policy_id), &cmd, &now)?;
    let e = Event::new(now, actor, &k.cloud, "rollout", format!("operator request: {text}"))
        .app(k.app.clone())
        .severity(Severity::Info);
    store.add_event(&e)?;
    Ok(format!("{}: {text}: the engine acting on {} applies it on its next tick", k.app, k.cloud))
}
