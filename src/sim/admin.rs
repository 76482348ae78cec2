//! The simulator's own control API under `/_sim/` (never reachable through the
//! OpenStack paths): faults, failing creates, forced server states, token expiry,
//! quotas, capacity, simulated time, app load, bulk seeding and counters.

use super::http::*;
use super::world::{FailCreates, Quota, SimError};
use crate::domain::json::json;
use crate::domain::Clock;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use std::collections::BTreeMap;

pub fn router() -> Router<S> {
    Router::new()
        .route("/_sim/state", get(h1(state)))
        .route("/_sim/stats", get(h1(stats)))
        .route("/_sim/faults", post(h2(set_faults)).delete(h1(clear_faults)).get(h1(get_faults)))
        .route("/_sim/fail-creates", post(h2(fail_creates)))
        .route("/_sim/servers/{id}/state", post(h3(server_state)))
        .route("/_sim/servers-state", post(h2(servers_state)))
        .route("/_sim/zones/{az}/crash", post(h3(zone_crash)))
        .route("/_sim/hosts/{host}", post(h3(host_state)))
        .route("/_sim/servers/{id}/corrupt", post(h3(server_corrupt)))
        .route("/_sim/servers/{id}/guest", post(h3(server_guest)))
        .route("/_sim/servers/{id}/fail-actions", post(h3(server_fail_actions)))
        // What a guest serves: reachable without the control token, like an application.
        .route("/guest/{id}/health", get(guest_health))
        .route("/_sim/tokens/expire", post(h1(expire_tokens)))
        .route("/_sim/quota", post(h2(quota)))
        .route("/_sim/capacity", post(h2(capacity)))
        .route("/_sim/clock/advance", post(h2(advance)))
        .route("/_sim/timings", post(h2(timings)))
        .route("/_sim/apps/{name}/load", post(h3(app_load)))
        .route("/_sim/apps/{name}", post(h3(app_define)))
        .route("/_sim/seed", post(h2(seed)))
        .route("/_sim/clouds.yaml", get(h1(clouds_yaml)))
        .route("/_sim/exporter/metrics", get(h1(exporter)))
}

fn bad(m: impl Into<String>) -> Response {
    json_response(400, &json!({"error": m.into()}))
}

fn body_json(b: &Bytes) -> Result<Value, Response> {
    if b.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(b).map_err(|e| bad(format!("invalid JSON: {e}")))
}

fn state(State(s): State<S>) -> Response {
    let w = s.world();
    let now = s.clock.now();
    let by_status = w.servers.values().fold(BTreeMap::<&str, u64>::new(), |mut m, sv| {
        *m.entry(sv.status()).or_default() += 1;
        m
    });
    json_response(
        200,
        &json!({
            "time": crate::domain::time::format_z(&now), "speed": s.clock.speed(),
            "servers": by_status, "volumes": w.volumes.len(), "backups": w.backups.len(), "snapshots": w.snapshots.len(),
            "resources": w.resources.len(), "metrics": w.metrics.len(), "pending": w.pending.len(),
            "fail_creates": w.fail_creates, "host_vcpus": w.settings.host_vcpus,
            "apps": w.workload.apps.values().map(|a| json!({"name": a.name, "load": a.load_at(now.timestamp(), w.workload.epoch), "override": a.override_factor})).collect::<Vec<_>>(),
        }),
    )
}

fn stats(State(s): State<S>) -> Response {
    let counters = s.counters.lock().map(|c| c.clone()).unwrap_or_default();
    let w = s.world();
    json_response(
        200,
        &json!({"requests": counters, "create_requests": w.stats.create_requests, "server_creates": w.stats.server_creates, "server_deletes": w.stats.server_deletes, "creates_by_op_tag": w.stats.creates_by_op_tag}),
    )
}

fn get_faults(State(s): State<S>) -> Response {
    let f = s.faults.lock().map(|f| f.clone()).unwrap_or_default();
    json_response(200, &json!(f))
}

fn set_faults(State(s): State<S>, body: Bytes) -> Response {
    let b = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let service = b.get("service").and_then(Value::as_str).unwrap_or("all").to_string();
    let valid = ["all", "identity", "compute", "image", "network", "block-storage", "metric"];
    if !valid.contains(&service.as_str()) {
        return bad(format!("unknown service `{service}`; use one of {}", valid.join(", ")));
    }
    let f: ServiceFaults = match serde_json::from_value(b.clone()) {
        Ok(f) => f,
        Err(e) => return bad(format!("{e}")),
    };
    if let Ok(mut m) = s.faults.lock() {
        m.insert(service.clone(), f.clone());
    }
    json_response(200, &json!({"service": service, "faults": f}))
}

fn clear_faults(State(s): State<S>) -> Response {
    if let Ok(mut m) = s.faults.lock() {
        m.clear();
    }
    if let Ok(mut w) = s.world.lock() {
        w.fail_creates = None;
    }
    empty(204)
}

fn fail_creates(State(s): State<S>, body: Bytes) -> Response {
    let b = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let count = b.get("count").and_then(Value::as_u64).unwrap_or(1) as u32;
    let mode = b.get("mode").and_then(Value::as_str).unwrap_or("error").to_string();
    if mode != "error" && mode != "http" {
        return bad("mode is `error` (server goes to ERROR) or `http` (500 on POST)");
    }
    let message = b
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or(if mode == "http" { "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach the Nova API log if possible." } else { "Build of instance aborted: Failed to allocate the network(s), not rescheduling." })
        .to_string();
    let mut w = s.world();
    w.fail_creates = (count > 0).then_some(FailCreates { count, mode, message });
    json_response(200, &json!({"fail_creates": w.fail_creates}))
}

fn server_state(State(s): State<S>, Path(id): Path<String>, body: Bytes) -> Response {
    let b = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let status = b.get("status").and_then(Value::as_str).unwrap_or("ERROR").to_string();
    let message = b.get("message").and_then(Value::as_str).unwrap_or("").to_string();
    let now = s.now();
    let mut w = s.world();
    match w.force_state(&id, &status, &message, now) {
        Ok(()) => json_response(200, &json!({"id": id, "status": w.servers.get(&id).map(|sv| sv.status())})),
        Err(SimError { status, message, .. }) => json_response(status, &json!({"error": message})),
    }
}

/// Force several servers at once (one failure that strikes them together):
/// `{"ids": [...], "status": "ERROR", "message": "..."}`.
fn servers_state(State(s): State<S>, body: Bytes) -> Response {
    let b = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ids: Vec<String> = b
        .get("ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let status = b.get("status").and_then(Value::as_str).unwrap_or("ERROR").to_string();
    let message = b.get("message").and_then(Value::as_str).unwrap_or("").to_string();
    let now = s.now();
    let mut w = s.world();
    for id in &ids {
        if let Err(SimError { status, message, .. }) = w.force_state(id, &status, &message, now) {
            return json_response(status, &json!({"error": message, "id": id}));
        }
    }
    json_response(200, &json!({"ids": ids, "status": status}))
}

/// A whole availability zone crashes: every running server in it goes to
/// ERROR at once (`{"message": "..."}` is the fault Nova shows).
fn zone_crash(State(s): State<S>, Path(az): Path<String>, body: Bytes) -> Response {
    let b = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let message = b
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("Instance lost: its availability zone went down")
        .to_string();
    let now = s.now();
    let mut w = s.world();
    let ids: Vec<String> = w
        .servers
        .values()
        .filter(|sv| sv.availability_zone == az && !sv.is_deleted() && sv.vm_state != "error")
        .map(|sv| sv.id.clone())
        .collect();
    for id in &ids {
        if let Err(e) = w.force_state(id, "ERROR", &message, now) {
            tracing::debug!("zone crash: {id}: {}", e.message);
        }
    }
    json_response(200, &json!({"zone": az, "crashed": ids.len()}))
}

/// A compute host fails or comes back: `{"state": "down" | "disabled" | "up",
/// "reason": "..."}`. Its servers keep their status, as Nova shows them when
/// it cannot reach the host; their guests stop answering while it is down.
fn host_state(State(s): State<S>, Path(host): Path<String>, body: Bytes) -> Response {
    let b = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let state = b.get("state").and_then(Value::as_str).unwrap_or("down").to_string();
    let reason = b.get("reason").and_then(Value::as_str).unwrap_or("").to_string();
    if !super::world::COMPUTE_HOSTS.contains(&host.as_str()) {
        return json_response(
            404,
            &json!({"error": format!("no host {host}; hosts: {}", super::world::COMPUTE_HOSTS.join(", "))}),
        );
    }
    let mut w = s.world();
    match state.as_str() {
        "up" => {
            w.host_faults.remove(&host);
        }
        "down" | "disabled" => {
            w.host_faults.insert(host.clone(), (state.clone(), reason));
        }
        other => return bad(format!("state `{other}`: use down, disabled or up")),
    }
    json_response(200, &json!({"host": host, "state": state}))
}

/// Break a server's record: `{"fields": {"flavor": 5}}` replaces those fields in
/// every answer about it; `{"fields": {}}` mends it.
fn server_corrupt(State(s): State<S>, Path(id): Path<String>, body: Bytes) -> Response {
    let b = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(fields) = b.get("fields").and_then(Value::as_object).cloned() else {
        return json_response(400, &json!({"error": "expected {\"fields\": {...}}"}));
    };
    let now = s.now();
    let mut w = s.world();
    let Some(sv) = w.servers.get_mut(&id) else {
        return json_response(404, &json!({"error": format!("no server {id}")}));
    };
    // A changed record: `changes-since` lists it again.
    sv.updated = now;
    if fields.is_empty() {
        w.corrupt.remove(&id);
    } else {
        w.corrupt.insert(id.clone(), fields);
    }
    json_response(200, &json!({"id": id, "corrupt": w.corrupt.contains_key(&id)}))
}

/// Break (or mend) the application inside a guest: `{"health": "hung" |
/// "failing" | "ok", "until": "reboot-soft" | "reboot-hard" | "rebuild" |
/// "never"}` (`until` defaults to `reboot-soft`).
fn server_guest(State(s): State<S>, Path(id): Path<String>, body: Bytes) -> Response {
    use super::world::GuestFault;
    let b = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let health = b.get("health").and_then(Value::as_str).unwrap_or("hung").to_string();
    let until = b.get("until").and_then(Value::as_str).unwrap_or("reboot-soft").to_string();
    if health != "ok" && !GuestFault::MODES.contains(&health.as_str()) {
        return bad(format!("health is ok, {}", GuestFault::MODES.join(" or ")));
    }
    if !GuestFault::UNTIL.contains(&until.as_str()) {
        return bad(format!("until is one of {}", GuestFault::UNTIL.join(", ")));
    }
    let mut w = s.world();
    let Some(sv) = w.servers.get_mut(&id).filter(|sv| !sv.is_deleted()) else {
        return json_response(404, &json!({"error": format!("no server {id}")}));
    };
    sv.guest_fault = (health != "ok").then_some(GuestFault { mode: health, until });
    json_response(200, &json!({"id": id, "guest_fault": sv.guest_fault}))
}

/// Make repairs fail: `{"start": 1, "reboot-soft": 2, "reboot-hard": 1,
/// "rebuild": 1}` (how many more times each ends in ERROR; 0 mends it).
fn server_fail_actions(State(s): State<S>, Path(id): Path<String>, body: Bytes) -> Response {
    let b = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(obj) = b.as_object() else { return bad("expected {\"reboot-soft\": 1, ...}") };
    let known = ["start", "reboot-soft", "reboot-hard", "rebuild"];
    let mut counts = BTreeMap::new();
    for (k, v) in obj {
        let Some(n) = v.as_u64().filter(|_| known.contains(&k.as_str())) else {
            return bad(format!("`{k}`: use {} with a count", known.join(", ")));
        };
        counts.insert(k.clone(), u32::try_from(n).unwrap_or(u32::MAX));
    }
    let mut w = s.world();
    let Some(sv) = w.servers.get_mut(&id).filter(|sv| !sv.is_deleted()) else {
        return json_response(404, &json!({"error": format!("no server {id}")}));
    };
    sv.failing_actions.extend(counts);
    sv.failing_actions.retain(|_, n| *n > 0);
    json_response(200, &json!({"id": id, "failing_actions": sv.failing_actions}))
}

/// The health endpoint of the application in a guest: 200 while the server
/// runs and its application is sound, 503 when it fails or is not running, no
/// answer at all when it hangs (a prober's timeout ends the wait).
async fn guest_health(State(s): State<S>, Path(id): Path<String>) -> Response {
    let state = {
        let w = s.world();
        w.servers.get(&id).filter(|sv| !sv.is_deleted()).map(|sv| {
            let mode = sv.guest_fault.as_ref().map(|g| g.mode.clone());
            (sv.status(), mode)
        })
    };
    let host_down = {
        let w = s.world();
        w.servers.get(&id).is_some_and(|sv| w.host_faults.get(&sv.host).is_some_and(|f| f.0 == "down"))
    };
    if host_down {
        // The host is gone: nothing answers.
        tokio::time::sleep(std::time::Duration::from_secs(120)).await;
        return json_response(504, &json!({"status": "unreachable"}));
    }
    match state {
        None => json_response(404, &json!({"error": format!("no server {id}")})),
        Some((_, Some(m))) if m == "hung" => {
            tokio::time::sleep(std::time::Duration::from_secs(120)).await;
            json_response(504, &json!({"status": "hung"}))
        }
        Some((_, Some(_))) => json_response(503, &json!({"status": "failing"})),
        Some((st, None)) if st != "ACTIVE" => json_response(503, &json!({"status": st})),
        Some(_) => json_response(200, &json!({"status": "ok"})),
    }
}

fn expire_tokens(State(s): State<S>) -> Response {
    let n = match s.tokens.lock() {
        Ok(mut t) => {
            let n = t.len();
            t.clear();
            n
        }
        Err(_) => 0,
    };
    json_response(200, &json!({"expired": n}))
}

fn quota(State(s): State<S>, body: Bytes) -> Response {
    let b = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut w = s.world();
    let targets: Vec<String> = match b.get("project").and_then(Value::as_str) {
        Some(p) => match w.projects.iter().find(|x| x.id == p || x.name == p) {
            Some(x) => vec![x.id.clone()],
            None => return bad(format!("no project `{p}`")),
        },
        None => w.projects.iter().map(|p| p.id.clone()).collect(),
    };
    for pid in targets {
        let mut q: Quota = w.quota(&pid);
        if b.get("exhaust").and_then(Value::as_bool).unwrap_or(false) {
            let (i, c, r) = w.compute_usage(&pid);
            q.instances = i;
            q.cores = c;
            q.ram = r;
        }
        if let Some(o) = b.as_object() {
            for (k, v) in o {
                if let Some(n) = v.as_i64() {
                    q.set(k, n);
                }
            }
        }
        w.quotas.insert(pid, q);
    }
    json_response(200, &json!({"quotas": w.quotas}))
}

fn capacity(State(s): State<S>, body: Bytes) -> Response {
    let b = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut w = s.world();
    w.settings.host_vcpus = b.get("host_vcpus").and_then(Value::as_u64).map(|v| v as u32);
    json_response(200, &json!({"host_vcpus": w.settings.host_vcpus}))
}

/// How long transitions take (simulated seconds): `{"backup_secs": 2, ...}`.
fn timings(State(s): State<S>, body: Bytes) -> Response {
    let b = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut w = s.world();
    let st = &mut w.settings;
    let fields: [(&str, &mut f64); 15] = [
        ("boot_secs", &mut st.boot_secs),
        ("cloud_init_secs", &mut st.cloud_init_secs),
        ("delete_secs", &mut st.delete_secs),
        ("reboot_secs", &mut st.reboot_secs),
        ("hard_reboot_secs", &mut st.hard_reboot_secs),
        ("rebuild_secs", &mut st.rebuild_secs),
        ("stop_secs", &mut st.stop_secs),
        ("start_secs", &mut st.start_secs),
        ("pause_secs", &mut st.pause_secs),
        ("suspend_secs", &mut st.suspend_secs),
        ("schedule_secs", &mut st.schedule_secs),
        ("volume_secs", &mut st.volume_secs),
        ("snapshot_secs", &mut st.snapshot_secs),
        ("backup_secs", &mut st.backup_secs),
        ("restore_secs", &mut st.restore_secs),
    ];
    let mut out = serde_json::Map::new();
    for (k, slot) in fields {
        if let Some(v) = b.get(k) {
            match v.as_f64().filter(|x| (0.0..=86_400.0).contains(x)) {
                Some(x) => *slot = x,
                None => return bad(format!("{k}: seconds between 0 and 86400")),
            }
        }
        out.insert(k.to_string(), json!(*slot));
    }
    json_response(200, &Value::Object(out))
}

fn advance(State(s): State<S>, body: Bytes) -> Response {
    let b = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let secs = b.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
    if !(0.0..=86_400.0 * 30.0).contains(&secs) {
        return bad("seconds must be between 0 and 30 days");
    }
    s.clock.advance(secs);
    let now = s.now();
    let mut w = s.world();
    w.tick_metrics(now);
    json_response(200, &json!({"time": crate::domain::time::format_z(&now)}))
}

/// Define (or replace) an application's traffic: `{"base_load": 1.0, "profile":
/// {"kind": "spike", ...}, "bytes_per_core": 2e6}`. A spike's `start_in_secs` counts
/// from now (simulated seconds) instead of from the world's epoch.
fn app_define(State(s): State<S>, Path(name): Path<String>, body: Bytes) -> Response {
    let b = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = s.now().timestamp();
    let mut w = s.world();
    let epoch = w.workload.epoch;
    let mut profile = b.get("profile").cloned().unwrap_or(json!({"kind": "steady"}));
    if let Some(o) = profile.as_object_mut() {
        if let Some(d) = o.remove("start_in_secs").and_then(|v| v.as_f64()) {
            o.insert("start_secs".into(), json!((now - epoch) as f64 + d));
        }
    }
    let profile: super::workload::Profile = match serde_json::from_value(profile) {
        Ok(p) => p,
        Err(e) => return bad(format!("profile: {e}")),
    };
    let Some(base_load) = b.get("base_load").and_then(Value::as_f64).filter(|l| *l >= 0.0) else {
        return bad("base_load (vCPU-equivalents of work, >= 0) is required");
    };
    let app = super::workload::AppTraffic {
        name: name.clone(),
        profile,
        base_load,
        bytes_per_core: b.get("bytes_per_core").and_then(Value::as_f64).unwrap_or(250_000.0),
        override_factor: None,
    };
    w.workload.apps.insert(name, app.clone());
    json_response(200, &json!({"app": app}))
}

fn app_load(State(s): State<S>, Path(name): Path<String>, body: Bytes) -> Response {
    let b = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut w = s.world();
    let Some(a) = w.workload.apps.get_mut(&name) else {
        return json_response(404, &json!({"error": format!("no app `{name}`")}));
    };
    a.override_factor = b.get("factor").and_then(Value::as_f64);
    json_response(200, &json!({"app": name, "override": a.override_factor}))
}

/// Seeded servers booted per simulated second.
const SEED_PER_SECOND: u64 = 10;

fn seed(State(s): State<S>, body: Bytes) -> Response {
    let b = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let count = b.get("count").and_then(Value::as_u64).unwrap_or(1).min(100_000);
    let prefix = b.get("prefix").and_then(Value::as_str).unwrap_or("bulk").to_string();
    let metrics = b.get("metrics").and_then(Value::as_bool).unwrap_or(false);
    let now = s.now();
    let mut w = s.world();
    let project = b.get("project").and_then(Value::as_str).unwrap_or("admin");
    let Some(p) = w.projects.iter().find(|x| x.id == project || x.name == project).cloned() else {
        return bad(format!("no project `{project}`"));
    };
    let user =
        w.users.iter().find(|u| u.roles.iter().any(|(rp, _)| rp == &p.id)).map(|u| u.id.clone()).unwrap_or_default();
    let flavor = b.get("flavor").and_then(Value::as_str).unwrap_or("m1.tiny");
    let Some(fid) = w.flavor(flavor).map(|f| f.id.clone()) else { return bad(format!("no flavor `{flavor}`")) };
    let image = w.images.first().map(|i| i.id.clone());
    let net = w.networks.iter().find(|n| !n.external).map(|n| n.id.clone());
    let mut meta = BTreeMap::new();
    if let Some(app) = b.get("app").and_then(Value::as_str) {
        meta.insert(crate::domain::META_APP.to_string(), app.to_string());
    }
    let images = b.get("images").and_then(Value::as_u64).unwrap_or(0).min(10_000);
    let template = w.images.first().cloned();
    if images > 0 && template.is_none() {
        return bad("this world has no image to copy; seed images into a world that has one".to_string());
    }
    for i in 0..images {
        let Some(mut img) = template.clone() else { break };
        img.id = super::world::new_id();
        img.name = format!("{prefix}-image-{i:05}");
        img.created_at = now;
        w.images.push(img);
    }
    let count = if b.get("count").is_none() && images > 0 { 0 } else { count };
    if let Some(n) = &net {
        w.make_room(n, count);
    }
    let mut ids = Vec::new();
    for i in 0..count {
        match w.seed_server(
            &format!("{prefix}-{i:05}"),
            &p.id,
            &user,
            &fid,
            image.as_deref(),
            net.as_deref(),
            meta.clone(),
            metrics,
            now,
        ) {
            Ok(id) => {
                // As if booted over time (ten a second, the last one now), as a
                // real cloud fills: every change of Nova has its own second, and a
                // `changes-since` poll of an idle cloud brings back only the few
                // servers of the newest second, not the whole seeded fleet.
                let back = chrono::Duration::seconds(((count - 1 - i) / SEED_PER_SECOND) as i64);
                if let Some(sv) = w.servers.get_mut(&id) {
                    sv.created = now - back;
                    sv.updated = now - back;
                    sv.launched_at = Some(now - back);
                }
                ids.push(id)
            }
            Err(e) => return bad(e.message),
        }
    }
    json_response(200, &json!({"created": ids.len(), "ids": ids, "images": images}))
}

fn clouds_yaml(State(s): State<S>) -> Response {
    let mut r =
        axum::response::IntoResponse::into_response(super::clouds_yaml(&s.base(), "sim", "admin", "secret", "admin"));
    r.headers_mut().insert("content-type", axum::http::HeaderValue::from_static("text/yaml"));
    r
}

/// Per-server metrics in the Prometheus text format, as a libvirt exporter on the
/// hypervisors would publish them, for Prometheus to scrape. Counters are scaled to
/// real time (divided by the speed factor) so that `rate()` over real seconds gives
/// the utilisation the guest sees.
fn exporter(State(s): State<S>) -> Response {
    let speed = s.clock.speed().max(1e-9);
    let w = s.world();
    let mut out = String::new();
    let families = [
        ("stackpilot_sim_server_cpu_seconds_total", "counter", "CPU time used by the server (all vCPUs)."),
        ("stackpilot_sim_server_vcpus", "gauge", "vCPUs of the server's flavor."),
        ("stackpilot_sim_server_memory_bytes", "gauge", "RAM of the server's flavor."),
        ("stackpilot_sim_server_network_receive_bytes_total", "counter", "Bytes received on all ports."),
        ("stackpilot_sim_server_network_transmit_bytes_total", "counter", "Bytes sent on all ports."),
    ];
    let mut rows: Vec<Vec<String>> = vec![Vec::new(); families.len()];
    for sv in w.servers.values().filter(|x| !x.is_deleted() && x.vm_state != "building") {
        let esc = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let labels = format!(
            "server_id=\"{}\",name=\"{}\",app=\"{}\",project_id=\"{}\"",
            sv.id,
            esc(&sv.name),
            esc(sv.app().unwrap_or("")),
            sv.project_id
        );
        let flavor = w.flavor(&sv.flavor_id);
        let (bin, bout) =
            sv.ports.iter().filter_map(|p| w.net_bytes.get(p)).fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        let values = [
            w.cpu_ns.get(&sv.id).copied().unwrap_or(0.0) / 1e9 / speed,
            flavor.map(|f| f.vcpus as f64).unwrap_or(1.0),
            flavor.map(|f| f.ram as f64 * 1024.0 * 1024.0).unwrap_or(0.0),
            bin / speed,
            bout / speed,
        ];
        for ((row, family), v) in rows.iter_mut().zip(&families).zip(values) {
            row.push(format!("{}{{{labels}}} {v}", family.0));
        }
    }
    for ((name, kind, help), lines) in families.iter().zip(rows) {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    let mut r = axum::response::IntoResponse::into_response(out);
    r.headers_mut()
        .insert("content-type", axum::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}
