//! Act: persist what a decision needs before anything changes the cloud (new
//! revisions, autoscaler histories, the orphans seen), then — when the tick may
//! act — carry the plan out (see `exec`) and record the outcome. A store write
//! that fails stops the tick before any cloud call: the engine holds rather than
//! act on state it could not record.

use super::decide::Decision;
use super::exec::{execute, ExecContext, Outcome};
use super::plan::EngineState;
use super::runner::EngineConfig;
use crate::cloud::Client;
use crate::domain::{Event, Severity, Timestamp};
use crate::store::{Store, StoreError};
use std::sync::Arc;

/// Record what the decision needs kept, whether or not the tick acts.
pub fn persist(store: &Store, cloud: &str, actor: &str, d: &Decision, now: Timestamp) -> Result<(), StoreError> {
    for r in &d.new_revisions {
        let spec_json = serde_json::to_string(&r.spec).map_err(|e| StoreError::Corrupt {
            path: store.path.display().to_string(),
            what: format!("the launch spec of {} does not encode: {e}", r.app),
        })?;
        store.insert_revision(&r.policy_id, r.revision, &r.spec_hash, &spec_json, 10, &now)?;
        let short: String = r.spec_hash.chars().take(12).collect();
        let e = Event::new(
            now,
            actor,
            cloud,
            "revision",
            format!("revision {}: image {} flavor {}", r.revision, r.spec.image_name, r.spec.flavor_name),
        )
        .app(r.app.clone())
        .detail(format!("spec {short}"));
        store.add_event(&e)?;
    }
    for e in &d.events {
        store.add_event(e)?;
    }
    for pid in &d.commands_applied {
        store.delete_control(&super::rollout::command_key(pid))?;
    }
    for (pid, out) in &d.scaling {
        if let Some((hist, message)) = &out.history {
            store.put_control_as(&format!("scaling:{pid}"), hist, &now)?;
            store.put_control_as(&format!("scaling:{pid}:message"), message, &now)?;
        }
        if let Some(e) = &out.event {
            store.add_event(e)?;
        }
    }
    Ok(())
}

/// The member a recovery step of the plan acts on.
pub fn repair_target(a: &super::plan::PlannedAction) -> Option<&str> {
    use super::plan::Step;
    match &a.step {
        Step::Recover { server_id, .. } | Step::Quarantine { server_id, .. } => Some(server_id),
        Step::MarkTerminating { server_id, .. } if a.reason.starts_with("recovery:") => Some(server_id),
        _ => None,
    }
}

/// What acting needs besides the decision.
pub struct ActCtx<'a> {
    pub cfg: &'a EngineConfig,
    pub client: &'a Client,
    pub store: &'a Store,
    pub cloud: &'a str,
    pub actor: &'a str,
}

/// Carry a decision's plan out. Returns the outcomes (for `/metrics`).
pub async fn carry_out(a: &ActCtx<'_>, d: &Decision, state: &mut EngineState, now: Timestamp) -> Vec<Outcome> {
    if d.plan.actions.is_empty() {
        return vec![];
    }
    let ctx = Arc::new(ExecContext {
        client: a.client.clone(),
        store: a.store.clone(),
        cloud: a.cloud.to_string(),
        engine_id: a.cfg.engine_id.clone(),
        concurrency: a.cfg.concurrency,
        create_timeout: a.cfg.create_timeout,
    });
    let outcomes = execute(ctx, d.plan.actions.clone(), state).await;

    for o in &outcomes {
        if let Some((pid, msg)) = &o.bad_spec {
            let app = d.inputs.iter().find(|x| &x.policy_id == pid).map(|x| x.app.clone()).unwrap_or_default();
            let e = Event::new(now, a.actor, a.cloud, "alert", format!("the cloud refused the launch spec: {msg}"))
                .app(app)
                .result("blocked")
                .severity(Severity::Critical);
            if let Err(err) = a.store.add_event(&e) {
                tracing::error!("cannot record an event: {err}");
            }
        }
    }
    outcomes
}
