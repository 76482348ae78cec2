//! Carrying a plan out: each mutating call is preceded by a write-ahead intent,
//! creates carry the op tag and every `stackpilot:*` key in the request itself, a
//! create that times out is never re-POSTed (the next tick looks the server up by
//! its op tag), and every action becomes an event. Concurrency is bounded.

use super::meta;
use super::plan::{Blocked, CapacityReason, PlannedAction, Step};
use super::{op_tag, EngineState};
use crate::cloud::compute::{CreateServer, NetworkSpec};
use crate::cloud::{Client, ErrorKind};
use crate::domain::{Event, Severity, Timestamp};
use crate::policy::ResolvedSpec;
use crate::store::{Intent, IntentStatus, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What a create launches (the revision's resolved spec and the identity of its app).
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchInfo {
    pub app: String,
    pub policy_id: String,
    pub generation: u64,
    pub spec: ResolvedSpec,
    pub spec_short: String,
    pub app_tag: String,
}

pub struct ExecContext {
    pub client: Client,
    pub store: Store,
    pub cloud: String,
    pub engine_id: String,
    pub concurrency: usize,
    pub create_timeout: Duration,
}

/// What happened to one action.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    pub kind: &'static str,
    pub ok: bool,
    /// A capacity block to record.
    pub block: Option<(String, Blocked)>,
    /// A launch spec the cloud refused (bad spec): (policy id, message).
    pub bad_spec: Option<(String, String)>,
    /// A member marked `terminating` (server id).
    pub marked: Option<String>,
    /// A recovery step sent to this member (server id).
    pub repaired: Option<String>,
}

impl Outcome {
    fn new(kind: &'static str, ok: bool) -> Outcome {
        Outcome { kind, ok, ..Default::default() }
    }
}

fn actor(engine_id: &str) -> String {
    format!("engine:{engine_id}")
}

/// A pending write-ahead intent of this engine for one action.
fn new_intent(ctx: &ExecContext, a: &PlannedAction, action: &str, op: &str) -> Intent {
    let t = now();
    Intent {
        op_id: op.to_string(),
        policy_id: a.policy_id.clone().unwrap_or_default(),
        cloud: ctx.cloud.clone(),
        app: a.app.clone(),
        action: action.into(),
        slot: None,
        revision: None,
        generation: 0,
        server_id: None,
        status: IntentStatus::Pending,
        error: None,
        created_at: t,
        updated_at: t,
    }
}

/// An event marked failed with the API's message and request id.
fn failed(e: Event, err: &crate::cloud::ApiError) -> Event {
    e.result("failed").severity(Severity::Warning).request_id(err.request_id.clone()).detail(err.message.clone())
}

fn now() -> Timestamp {
    chrono::Utc::now()
}

/// Log a store write that failed (the next tick reads the store again and holds
/// if it stays unavailable).
fn logged<T>(r: crate::store::Result<T>, what: &str) {
    if let Err(e) = r {
        tracing::error!("cannot {what}: {e}");
    }
}

/// A bookkeeping step (no cloud call): applied to `state` and the store at once.
/// `None` for steps that call the cloud; an error when the store refused it.
fn bookkeeping(
    ctx: &ExecContext,
    a: &PlannedAction,
    state: &mut EngineState,
) -> Option<Result<Outcome, crate::store::StoreError>> {
    let ev = |action: &str| {
        Event::new(now(), &actor(&ctx.engine_id), &ctx.cloud, action, a.reason.clone()).app(a.app.clone())
    };
    let st = &ctx.store;
    Some(match &a.step {
        // Blocks are alerted by the engine's alert book (one alert while it lasts).
        Step::Block(b) => {
            state.blocked.insert(a.policy_id.clone().unwrap_or_default(), b.clone());
            Ok(Outcome::new("capacity-blocked", true))
        }
        Step::Unblock => {
            if let Some(pid) = &a.policy_id {
                state.blocked.remove(pid);
            }
            Ok(Outcome::new("capacity-unblocked", true))
        }
        Step::AdoptIntent { op_id, server_id } => st
            .set_intent_status(op_id, IntentStatus::Running, Some(server_id), None, &now())
            .and_then(|_| st.add_event(&ev("adopt").target(server_id.clone())))
            .map(|_| Outcome::new("adopt", true)),
        Step::CompleteIntent { op_id } => {
            st.set_intent_status(op_id, IntentStatus::Done, None, None, &now()).map(|_| Outcome::new("complete", true))
        }
        Step::FailIntent { op_id, why } => {
            let e = ev("give-up")
                .target(format!("op {op_id}"))
                .result("failed")
                .severity(Severity::Warning)
                .detail(why.clone());
            st.set_intent_status(op_id, IntentStatus::Failed, None, Some(why), &now())
                .and_then(|_| st.add_event(&e))
                .map(|_| Outcome::new("fail-intent", true))
        }
        _ => return None,
    })
}

/// Carry out every action of a plan. Bookkeeping comes first; when the store
/// refuses any of it, nothing is sent to the cloud this tick (a create must never
/// follow an intent whose failure could not be recorded).
pub async fn execute(ctx: Arc<ExecContext>, actions: Vec<PlannedAction>, state: &mut EngineState) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut calls = Vec::new();
    for a in actions {
        match bookkeeping(&ctx, &a, state) {
            Some(Ok(o)) => outcomes.push(o),
            Some(Err(e)) => {
                tracing::error!(cloud = %ctx.cloud, "the store refused the engine's bookkeeping, nothing is sent this tick: {e}");
                outcomes.push(Outcome::new(a.step.kind(), false));
                return outcomes;
            }
            None => calls.push(a),
        }
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(ctx.concurrency.max(1)));
    let mut tasks = Vec::new();
    for a in calls {
        let ctx = ctx.clone();
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            run_one(&ctx, a).await
        }));
    }
    // Several creates refused in one tick make one block per app.
    let mut refused: BTreeMap<String, Blocked> = BTreeMap::new();
    for t in tasks {
        match t.await {
            Ok(o) => {
                if let Some((pid, b)) = &o.block {
                    refused.entry(pid.clone()).or_insert_with(|| b.clone());
                }
                if let Some(id) = &o.marked {
                    state.terminating.insert(id.clone(), now());
                }
                outcomes.push(o);
            }
            Err(e) => tracing::error!("an action of the plan did not finish: {e}"),
        }
    }
    for (pid, mut b) in refused {
        // The cloud refused a create for quota: back off like a planned block.
        let prev = state.blocked.get(&pid);
        let secs = prev.map(|p| (p.backoff_secs * 2).min(600)).unwrap_or(b.backoff_secs);
        b.backoff_secs = secs;
        b.until = b.since + chrono::Duration::seconds(secs as i64);
        state.blocked.insert(pid, b);
    }
    outcomes
}

async fn run_one(ctx: &ExecContext, a: PlannedAction) -> Outcome {
    match a.step.clone() {
        Step::Create { slot, revision, zone, launch } => match launch {
            Some(info) => create(ctx, &a, &info, slot, revision, zone).await,
            None => create_without_spec(ctx, &a, revision),
        },
        Step::MarkReady { server_id, name } => mark_ready(ctx, &server_id, &name).await,
        Step::MarkTerminating { server_id, name } => mark_terminating(ctx, &a, server_id, name).await,
        Step::Delete { server_id, name } => delete(ctx, &a, server_id, name).await,
        Step::Recover { server_id, name, rung, image } => recover(ctx, &a, server_id, name, rung, image).await,
        Step::Quarantine { server_id, name } => quarantine(ctx, &a, server_id, name).await,
        _ => Outcome::new("noop", true),
    }
}

/// The planner asked for a revision decide could not resolve: a bug, recorded and not sent.
fn create_without_spec(ctx: &ExecContext, a: &PlannedAction, revision: u32) -> Outcome {
    tracing::error!(cloud = %ctx.cloud, app = %a.app, "a create without its launch spec: not sent");
    let e = Event::new(now(), &actor(&ctx.engine_id), &ctx.cloud, "create", a.reason.clone())
        .app(a.app.clone())
        .result("failed")
        .severity(Severity::Critical)
        .detail(format!("no launch spec for revision {revision}: nothing was sent"));
    logged(ctx.store.add_event(&e), "record an event");
    Outcome::new("create", false)
}

async fn mark_ready(ctx: &ExecContext, server_id: &str, name: &str) -> Outcome {
    let mut items = BTreeMap::new();
    items.insert(meta::READY.to_string(), crate::domain::time::format_z(&now()));
    // Harmless when it fails: the mark is tried again next tick.
    let r = ctx.client.compute().set_metadata(server_id, &items).await;
    if let Err(e) = &r {
        tracing::warn!(cloud = %ctx.cloud, "cannot mark {name} ready: {e}");
    }
    Outcome::new("mark-ready", r.is_ok())
}

async fn mark_terminating(ctx: &ExecContext, a: &PlannedAction, server_id: String, name: String) -> Outcome {
    let mut items = BTreeMap::new();
    items.insert(meta::STATE.to_string(), meta::STATE_TERMINATING.to_string());
    items.insert(meta::TERMINATE_AT.to_string(), crate::domain::time::format_z(&now()));
    let r = ctx.client.compute().set_metadata(&server_id, &items).await;
    let mut e = Event::new(now(), &actor(&ctx.engine_id), &ctx.cloud, "drain", a.reason.clone())
        .app(a.app.clone())
        .target(name);
    let ok = match &r {
        Ok(()) => true,
        Err(err) if err.kind == ErrorKind::NotFound => true,
        Err(err) => {
            e = failed(e, err);
            false
        }
    };
    logged(ctx.store.add_event(&e), "record an event");
    let marked = (ok && r.is_ok()).then_some(server_id);
    Outcome { marked, ..Outcome::new("mark-terminating", ok) }
}

/// A recovery step: start, reboot or rebuild (from the member's own image: its
/// ports, addresses and volumes stay). Not sent when there is no image to
/// rebuild from.
async fn recover(
    ctx: &ExecContext,
    a: &PlannedAction,
    server_id: String,
    name: String,
    rung: crate::policy::recovery::Rung,
    image: Option<String>,
) -> Outcome {
    use crate::cloud::compute::{RebootKind, ServerAction};
    use crate::policy::recovery::Rung;
    let action = match (rung, image) {
        (Rung::Start, _) => Some(ServerAction::Start),
        (Rung::RebootSoft, _) => Some(ServerAction::Reboot(RebootKind::Soft)),
        (Rung::RebootHard, _) => Some(ServerAction::Reboot(RebootKind::Hard)),
        (Rung::Rebuild, Some(image_id)) => Some(ServerAction::Rebuild { image_id, user_data: None, metadata: None }),
        (Rung::Rebuild, None) | (Rung::Recreate, _) => None,
    };
    let mut e = Event::new(now(), &actor(&ctx.engine_id), &ctx.cloud, rung.as_str(), a.reason.clone())
        .app(a.app.clone())
        .target(name);
    let ok = match action {
        None => {
            e = e.result("failed").severity(Severity::Warning).detail("no image to rebuild from (boot from volume)");
            false
        }
        Some(act) => match ctx.client.compute().action(&server_id, &act).await {
            Ok(rid) => {
                e = e.request_id(rid);
                true
            }
            Err(err) => {
                e = failed(e, &err);
                false
            }
        },
    };
    logged(ctx.store.add_event(&e), "record an event");
    Outcome { repaired: ok.then_some(server_id), ..Outcome::new("recover", ok) }
}

/// Quarantine: `stackpilot:state=quarantined` with the time, so the member is
/// kept for inspection, out of the capacity, and replaced.
async fn quarantine(ctx: &ExecContext, a: &PlannedAction, server_id: String, name: String) -> Outcome {
    let mut items = BTreeMap::new();
    items.insert(meta::STATE.to_string(), meta::STATE_QUARANTINED.to_string());
    items.insert(meta::QUARANTINED_AT.to_string(), crate::domain::time::format_z(&now()));
    let r = ctx.client.compute().set_metadata(&server_id, &items).await;
    let mut e = Event::new(now(), &actor(&ctx.engine_id), &ctx.cloud, "quarantine", a.reason.clone())
        .app(a.app.clone())
        .target(name)
        .severity(Severity::Critical);
    if let Err(err) = &r {
        e = failed(e, err);
    }
    logged(ctx.store.add_event(&e), "record an event");
    Outcome { repaired: r.is_ok().then_some(server_id), ..Outcome::new("quarantine", r.is_ok()) }
}

async fn delete(ctx: &ExecContext, a: &PlannedAction, server_id: String, name: String) -> Outcome {
    let op = uuid::Uuid::new_v4().to_string();
    let intent = Intent { server_id: Some(server_id.clone()), ..new_intent(ctx, a, "delete", &op) };
    if let Err(e) = ctx.store.put_intent(&intent) {
        tracing::error!("cannot write the intent, not deleting {server_id}: {e}");
        return Outcome::new("delete", false);
    }
    let r = ctx.client.compute().delete_server(&server_id).await;
    let mut e = Event::new(now(), &actor(&ctx.engine_id), &ctx.cloud, "delete", a.reason.clone())
        .app(a.app.clone())
        .target(name);
    let status = |s, msg: Option<&str>| {
        logged(ctx.store.set_intent_status(&op, s, None, msg, &now()), "update an intent");
    };
    let ok = match r {
        Ok(rid) => {
            status(IntentStatus::Running, None);
            e = e.request_id(rid);
            true
        }
        Err(err) if err.kind == ErrorKind::NotFound => {
            status(IntentStatus::Done, None);
            e = e.request_id(err.request_id.clone()).detail("already gone");
            true
        }
        Err(err) => {
            // Transient: the intent stays open; the next tick looks again.
            if !err.is_transient() {
                status(IntentStatus::Failed, Some(&err.message));
            }
            e = failed(e, &err);
            false
        }
    };
    logged(ctx.store.add_event(&e), "record an event");
    Outcome::new("delete", ok)
}

/// The server a create launches, everything set at birth.
pub fn create_request(
    info: &LaunchInfo,
    engine_id: &str,
    op: &str,
    slot: u32,
    revision: u32,
    zone: Option<String>,
    cloud: &str,
) -> CreateServer {
    let mut metadata = info.spec.metadata.clone();
    for (k, v) in [
        (meta::APP, info.app.clone()),
        (meta::POLICY, info.policy_id.clone()),
        (meta::REV, revision.to_string()),
        (meta::SPEC, info.spec_short.clone()),
        (meta::SLOT, slot.to_string()),
        (meta::OP, op.to_string()),
        (meta::ENGINE, engine_id.to_string()),
        (meta::STATE, meta::STATE_ACTIVE.to_string()),
    ] {
        metadata.insert(k.to_string(), v);
    }
    CreateServer {
        name: format!("{}-r{revision}-s{slot}-{}", info.app, super::plan::short(op)),
        image_id: Some(info.spec.image_id.clone()),
        flavor_id: info.spec.flavor_id.clone(),
        networks: info.spec.network_ids.iter().map(|n| NetworkSpec::Uuid(n.clone())).collect(),
        key_name: info.spec.key_name.clone(),
        security_groups: info.spec.security_groups.clone(),
        user_data: info
            .spec
            .user_data
            .as_ref()
            .map(|u| crate::policy::render_user_data(u, &info.app, revision, slot, cloud)),
        metadata,
        tags: vec![info.app_tag.clone(), op_tag(op)],
        availability_zone: zone,
        ..Default::default()
    }
}

async fn create(
    ctx: &ExecContext,
    a: &PlannedAction,
    info: &LaunchInfo,
    slot: u32,
    revision: u32,
    zone: Option<String>,
) -> Outcome {
    let pid = a.policy_id.clone().unwrap_or_default();
    let op = uuid::Uuid::new_v4().to_string();
    let req = create_request(info, &ctx.engine_id, &op, slot, revision, zone, &ctx.cloud);
    let intent = Intent {
        slot: Some(slot),
        revision: Some(revision),
        generation: info.generation,
        ..new_intent(ctx, a, "create", &op)
    };
    // Write-ahead: no intent, no create.
    if let Err(e) = ctx.store.put_intent(&intent) {
        tracing::error!("cannot write the intent, not creating: {e}");
        return Outcome::new("create", false);
    }
    let r = ctx.client.compute().create_server_with_timeout(&req, ctx.create_timeout).await;
    let mut e = Event::new(now(), &actor(&ctx.engine_id), &ctx.cloud, "create", a.reason.clone())
        .app(a.app.clone())
        .target(req.name.clone());
    let mut out = Outcome::new("create", true);
    match r {
        Ok(c) => {
            logged(
                ctx.store.set_intent_status(&op, IntentStatus::Running, Some(&c.id), None, &now()),
                "update an intent",
            );
            e = e.request_id(c.request_id);
        }
        Err(err) if err.is_transient() => {
            // The outcome is unknown: never re-POST; the op tag tells next tick.
            e = e.result("unknown").severity(Severity::Warning).request_id(err.request_id.clone()).detail(format!(
                "{}; looking for {} next tick",
                err.message,
                op_tag(&op)
            ));
            out.ok = false;
        }
        Err(err) => {
            logged(
                ctx.store.set_intent_status(&op, IntentStatus::Failed, None, Some(&err.message), &now()),
                "update an intent",
            );
            e = failed(e, &err);
            out.ok = false;
            if err.kind == ErrorKind::QuotaExceeded {
                let b = Blocked {
                    reason: CapacityReason::Quota,
                    since: now(),
                    until: now() + chrono::Duration::seconds(30),
                    backoff_secs: 30,
                    detail: err.message.clone(),
                };
                out.block = Some((pid.clone(), b));
            } else if matches!(err.kind, ErrorKind::BadRequest | ErrorKind::NotFound) {
                out.bad_spec = Some((pid.clone(), err.message.clone()));
            }
        }
    }
    logged(ctx.store.add_event(&e), "record an event");
    out
}
