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

/// What a create needs besides the plan.
#[derive(Debug, Clone)]
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
    /// (policy id, revision) → what to launch.
    pub launches: BTreeMap<(String, u32), LaunchInfo>,
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

/// Carry out every action of a plan; bookkeeping steps are applied to `state`.
pub async fn execute(ctx: Arc<ExecContext>, actions: Vec<PlannedAction>, state: &mut EngineState) -> Vec<Outcome> {
    let sem = Arc::new(tokio::sync::Semaphore::new(ctx.concurrency.max(1)));
    let mut tasks = Vec::new();
    let mut outcomes = Vec::new();
    for a in actions {
        match &a.step {
            Step::Block(b) => {
                let pid = a.policy_id.clone().unwrap_or_default();
                let first = !state.blocked.contains_key(&pid);
                state.blocked.insert(pid, b.clone());
                if first {
                    // One alert when scale-out stops, not one per tick.
                    let e = Event::new(
                        now(),
                        &actor(&ctx.engine_id),
                        &ctx.cloud,
                        "alert",
                        format!("capacity blocked ({}): {}", b.reason.as_str(), b.detail),
                    )
                    .app(a.app.clone())
                    .result("blocked")
                    .severity(Severity::Critical)
                    .detail(format!(
                        "scale-out resumes after {}s (backoff); scale-in and recovery go on",
                        b.backoff_secs
                    ));
                    let _ = ctx.store.add_event(&e);
                }
                outcomes.push(Outcome::new("capacity-blocked", true));
            }
            Step::Unblock => {
                if let Some(pid) = &a.policy_id {
                    if state.blocked.remove(pid).is_some() {
                        let e = Event::new(
                            now(),
                            &actor(&ctx.engine_id),
                            &ctx.cloud,
                            "alert",
                            "capacity is back: scale-out resumes",
                        )
                        .app(a.app.clone())
                        .result("resolved");
                        let _ = ctx.store.add_event(&e);
                    }
                }
                outcomes.push(Outcome::new("capacity-unblocked", true));
            }
            Step::AdoptIntent { op_id, server_id } => {
                let _ = ctx.store.set_intent_status(op_id, IntentStatus::Running, Some(server_id), None, &now());
                let e = Event::new(now(), &actor(&ctx.engine_id), &ctx.cloud, "adopt", a.reason.clone())
                    .app(a.app.clone())
                    .target(server_id.clone());
                let _ = ctx.store.add_event(&e);
                outcomes.push(Outcome::new("adopt", true));
            }
            Step::CompleteIntent { op_id } => {
                let _ = ctx.store.set_intent_status(op_id, IntentStatus::Done, None, None, &now());
                outcomes.push(Outcome::new("complete", true));
            }
            Step::FailIntent { op_id, why } => {
                let _ = ctx.store.set_intent_status(op_id, IntentStatus::Failed, None, Some(why), &now());
                let e = Event::new(now(), &actor(&ctx.engine_id), &ctx.cloud, "give-up", a.reason.clone())
                    .app(a.app.clone())
                    .target(format!("op {op_id}"))
                    .result("failed")
                    .severity(Severity::Warning)
                    .detail(why.clone());
                let _ = ctx.store.add_event(&e);
                outcomes.push(Outcome::new("fail-intent", true));
            }
            _ => {
                let ctx = ctx.clone();
                let sem = sem.clone();
                tasks.push(tokio::spawn(async move {
                    let _permit = sem.acquire_owned().await;
                    run_one(&ctx, a).await
                }));
            }
        }
    }
    // Several creates refused in one tick make one block (and one alert) per app.
    let mut refused: BTreeMap<String, Blocked> = BTreeMap::new();
    for t in tasks {
        if let Ok(o) = t.await {
            if let Some((pid, b)) = &o.block {
                refused.entry(pid.clone()).or_insert_with(|| b.clone());
            }
            if let Some(id) = &o.marked {
                state.terminating.insert(id.clone(), now());
            }
            outcomes.push(o);
        }
    }
    for (pid, mut b) in refused {
        // The cloud refused a create for quota: back off like a planned block.
        let prev = state.blocked.get(&pid);
        let secs = prev.map(|p| (p.backoff_secs * 2).min(600)).unwrap_or(b.backoff_secs);
        if prev.is_none() {
            let app = ctx.launches.values().find(|l| l.policy_id == pid).map(|l| l.app.clone());
            let e = Event::new(
                now(),
                &actor(&ctx.engine_id),
                &ctx.cloud,
                "alert",
                format!("capacity blocked ({}): {}", b.reason.as_str(), b.detail),
            )
            .app(app.unwrap_or_default())
            .result("blocked")
            .severity(Severity::Critical)
            .detail(format!("scale-out resumes after {secs}s (backoff); scale-in and recovery go on"));
            let _ = ctx.store.add_event(&e);
        }
        b.backoff_secs = secs;
        b.until = b.since + chrono::Duration::seconds(secs as i64);
        state.blocked.insert(pid, b);
    }
    outcomes
}

async fn run_one(ctx: &ExecContext, a: PlannedAction) -> Outcome {
    match a.step.clone() {
        Step::Create { slot, revision, zone } => create(ctx, &a, slot, revision, zone).await,
        Step::MarkTerminating { server_id, name } => {
            let mut items = BTreeMap::new();
            items.insert(meta::STATE.to_string(), "terminating".to_string());
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
            let _ = ctx.store.add_event(&e);
            let marked = (ok && r.is_ok()).then_some(server_id);
            Outcome { marked, ..Outcome::new("mark-terminating", ok) }
        }
        Step::Delete { server_id, name } => {
            let op = uuid::Uuid::new_v4().to_string();
            let intent = Intent { server_id: Some(server_id.clone()), ..new_intent(ctx, &a, "delete", &op) };
            if let Err(e) = ctx.store.put_intent(&intent) {
                tracing::error!("cannot write the intent, not deleting {server_id}: {e}");
                return Outcome::new("delete", false);
            }
            let r = ctx.client.compute().delete_server(&server_id).await;
            let mut e = Event::new(now(), &actor(&ctx.engine_id), &ctx.cloud, "delete", a.reason.clone())
                .app(a.app.clone())
                .target(name);
            let ok = match r {
                Ok(rid) => {
                    let _ = ctx.store.set_intent_status(&op, IntentStatus::Running, None, None, &now());
                    e = e.request_id(rid);
                    true
                }
                Err(err) if err.kind == ErrorKind::NotFound => {
                    let _ = ctx.store.set_intent_status(&op, IntentStatus::Done, None, None, &now());
                    e = e.request_id(err.request_id.clone()).detail("already gone");
                    true
                }
                Err(err) => {
                    // Transient: the intent stays open; the next tick looks again.
                    if !err.is_transient() {
                        let _ =
                            ctx.store.set_intent_status(&op, IntentStatus::Failed, None, Some(&err.message), &now());
                    }
                    e = failed(e, &err);
                    false
                }
            };
            let _ = ctx.store.add_event(&e);
            Outcome::new("delete", ok)
        }
        _ => Outcome::new("noop", true),
    }
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
        (meta::STATE, "active".to_string()),
    ] {
        metadata.insert(k.to_string(), v);
    }
    CreateServer {
        name: format!("{}-r{revision}-s{slot}-{}", info.app, &op[..8.min(op.len())]),
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

async fn create(ctx: &ExecContext, a: &PlannedAction, slot: u32, revision: u32, zone: Option<String>) -> Outcome {
    let pid = a.policy_id.clone().unwrap_or_default();
    let Some(info) = ctx.launches.get(&(pid.clone(), revision)) else {
        return Outcome::new("create", false);
    };
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
            let _ = ctx.store.set_intent_status(&op, IntentStatus::Running, Some(&c.id), None, &now());
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
            let _ = ctx.store.set_intent_status(&op, IntentStatus::Failed, None, Some(&err.message), &now());
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
    let _ = ctx.store.add_event(&e);
    out
}
