//! Simulated Cinder v3 (microversions 3.0–3.70): volumes, snapshots, backups
//! (full/incremental chains, forced, restore, refused delete of a parent),
//! limits, with the `creating → available` lifecycles.

use super::http::*;
use super::world::{found, Backup, SimError, Snapshot, Volume, World};
use crate::domain::json::json;
use crate::domain::json::Obj;
use crate::domain::time::format_naive_micros;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const MIN_MV: (u32, u32) = (3, 0);
pub const MAX_MV: (u32, u32) = (3, 70);

pub fn router() -> Router<S> {
    let p = "/volume/v3/{pid}";
    Router::new()
        .route("/volume", get(h1(versions)))
        .route("/volume/", get(h1(versions)))
        .route("/volume/v3", get(h1(versions)))
        .route("/volume/v3/", get(h1(versions)))
        .route(&format!("{p}/volumes"), get(hk4(vol_list, false)).post(h4(vol_create)))
        .route(&format!("{p}/volumes/detail"), get(hk4(vol_list, true)))
        .route(&format!("{p}/volumes/{{id}}"), get(h3(vol_show)).delete(h3(vol_delete)).put(h4(vol_update)))
        .route(&format!("{p}/snapshots"), get(hk4(snap_list, false)).post(h4(snap_create)))
        .route(&format!("{p}/snapshots/detail"), get(hk4(snap_list, true)))
        .route(&format!("{p}/snapshots/{{id}}"), get(h3(snap_show)).delete(h3(snap_delete)))
        .route(&format!("{p}/backups"), get(hk4(backup_list, false)).post(h4(backup_create)))
        .route(&format!("{p}/backups/detail"), get(hk4(backup_list, true)))
        .route(&format!("{p}/backups/{{id}}"), get(h3(backup_show)).delete(h3(backup_delete)))
        .route(&format!("{p}/backups/{{id}}/restore"), post(h4(backup_restore)))
        .route(&format!("{p}/backups/{{id}}/action"), post(h4(backup_action)))
        .route(&format!("{p}/volumes/{{id}}/metadata"), get(h3(meta_show)).post(h4(meta_merge)).put(h4(meta_replace)))
        .route(
            &format!("{p}/volumes/{{id}}/metadata/{{key}}"),
            get(h3(meta_item)).put(h4(meta_item_set)).delete(h3(meta_item_delete)),
        )
        .route(&format!("{p}/limits"), get(h3(limits)))
        .route(&format!("{p}/types"), get(h3(types)))
        .route(
            &format!("{p}/os-quota-sets/{{target}}"),
            get(h4(quota_show)).put(h4(quota_update)).delete(h3(quota_delete)),
        )
        .route(&format!("{p}/os-quota-sets/{{target}}/defaults"), get(h3(quota_defaults)))
        .route(&format!("{p}/os-services"), get(h4(services)))
}

/// The one volume type of the simulated Cinder.
const DEFAULT_TYPE: &str = "__DEFAULT__";
const DEFAULT_TYPE_ID: &str = "5f9c1ad1-0000-4000-8000-00000000d3f1";
/// The host of the one volume backend (`host@backend`) and its zone.
const VOLUME_HOST: &str = "cinder-volume@fake";
const STORAGE_ZONE: &str = "nova";

fn version_entry(base: &str) -> Value {
    json!({
        "id": "v3.0", "status": "CURRENT", "version": format!("{}.{}", MAX_MV.0, MAX_MV.1), "min_version": "3.0",
        "updated": "2023-08-31T00:00:00Z", "links": [{"rel": "self", "href": format!("{base}/volume/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}]
    })
}

fn versions(State(s): State<S>) -> Response {
    json_response(300, &json!({"versions": [version_entry(&s.base())]}))
}

type Ctx = (Caller, (u32, u32));

fn ctx(s: &SimShared, h: &HeaderMap, pid: &str) -> Result<Ctx, Response> {
    let c = authenticate(s, h)?;
    let mv = microversion(h, "volume", None, MIN_MV, MAX_MV).map_err(|e| nova_error(e.status, &e.message))?;
    if pid != c.project_id && !c.admin {
        return Err(with_mv(nova_error(400, "Malformed request url"), mv));
    }
    Ok((c, mv))
}

fn with_mv(mut r: Response, mv: (u32, u32)) -> Response {
    if let Ok(h) = HeaderValue::from_str(&format!("volume {}.{}", mv.0, mv.1)) {
        r.headers_mut().insert("openstack-api-version", h);
    }
    r.headers_mut().insert("vary", HeaderValue::from_static("OpenStack-API-Version"));
    r
}

fn ok(status: u16, v: &Value, mv: (u32, u32)) -> Response {
    with_mv(json_response(status, v), mv)
}

fn err(e: SimError, mv: (u32, u32)) -> Response {
    with_mv(nova_error(e.status, &e.message), mv)
}

fn links(base: &str, pid: &str, kind: &str, id: &str) -> Value {
    json!([
        {"rel": "self", "href": format!("{base}/volume/v3/{pid}/{kind}/{id}")},
        {"rel": "bookmark", "href": format!("{base}/volume/{pid}/{kind}/{id}")}
    ])
}

fn volume_json(base: &str, v: &Volume, mv: (u32, u32), detail: bool, admin: bool) -> Value {
    if !detail {
        return json!({"id": v.id, "name": v.name, "links": links(base, &v.project_id, "volumes", &v.id)});
    }
    let mut j = json!({
        "id": v.id, "name": v.name, "description": v.description, "status": v.status, "size": v.size,
        "availability_zone": v.availability_zone, "bootable": if v.bootable { "true" } else { "false" },
        "encrypted": false, "multiattach": false, "volume_type": v.volume_type,
        "attachments": v.attachments.iter().map(|a| json!({
            "id": v.id, "attachment_id": a.attachment_id, "volume_id": v.id, "server_id": a.server_id,
            "device": a.device, "host_name": null, "attached_at": format_naive_micros(&a.attached_at)
        })).collect::<Vec<_>>(),
        "metadata": v.metadata, "created_at": format_naive_micros(&v.created_at),
        "updated_at": v.updated_at.map(|t| format_naive_micros(&t)), "user_id": v.user_id,
        "os-vol-tenant-attr:tenant_id": v.project_id, "snapshot_id": v.snapshot_id, "source_volid": v.source_volid,
        "consistencygroup_id": null, "replication_status": null, "migration_status": null,
        "links": links(base, &v.project_id, "volumes", &v.id)
    });
    if admin {
        j.put("os-vol-host-attr:host", json!(format!("{VOLUME_HOST}#fake")));
        j.put("os-vol-mig-status-attr:migstat", Value::Null);
        j.put("os-vol-mig-status-attr:name_id", Value::Null);
        j.put("provider_id", Value::Null);
        j.put("cluster_name", Value::Null);
    }
    if mv >= (3, 48) {
        j.put("shared_targets", json!(false));
        j.put("service_uuid", Value::Null);
    }
    if mv >= (3, 13) {
        j.put("group_id", Value::Null);
    }
    if mv >= (3, 63) {
        j.put("volume_type_id", json!(DEFAULT_TYPE_ID));
    }
    if mv >= (3, 65) {
        j.put("consumes_quota", json!(true));
    }
    j
}

fn snapshot_json(s: &Snapshot, mv: (u32, u32), detail: bool) -> Value {
    let mut j = json!({
        "id": s.id, "name": s.name, "description": s.description, "volume_id": s.volume_id, "status": s.status,
        "size": s.size, "metadata": s.metadata, "created_at": format_naive_micros(&s.created_at),
        "updated_at": s.updated_at.map(|t| format_naive_micros(&t))
    });
    if detail {
        j.put("os-extended-snapshot-attributes:progress", json!(if s.status == "available" { "100%" } else { "0%" }));
        j.put("os-extended-snapshot-attributes:project_id", json!(s.project_id));
        if mv >= (3, 41) {
            j.put("user_id", json!(s.user_id));
        }
        if mv >= (3, 14) {
            j.put("group_snapshot_id", Value::Null);
        }
        if mv >= (3, 65) {
            j.put("consumes_quota", json!(true));
        }
    }
    j
}

fn backup_json(w: &World, base: &str, b: &Backup, mv: (u32, u32), detail: bool) -> Value {
    let l = links(base, &b.project_id, "backups", &b.id);
    if !detail {
        return json!({"id": b.id, "name": b.name, "links": l});
    }
    let mut j = json!({
        "id": b.id, "name": b.name, "description": b.description, "status": b.status, "fail_reason": b.fail_reason,
        "volume_id": b.volume_id, "snapshot_id": b.snapshot_id, "size": b.size, "object_count": b.object_count,
        "container": b.container, "availability_zone": b.availability_zone, "is_incremental": b.is_incremental,
        "has_dependent_backups": w.has_dependents(&b.id), "data_timestamp": format_naive_micros(&b.data_timestamp),
        "created_at": format_naive_micros(&b.created_at), "updated_at": b.updated_at.map(|t| format_naive_micros(&t)), "links": l
    });
    if mv >= (3, 18) {
        j.put("os-backup-project-attr:project_id", json!(b.project_id));
    }
    if mv >= (3, 43) {
        j.put("metadata", json!(b.metadata));
    }
    if mv >= (3, 56) {
        j.put("user_id", json!(b.user_id));
    }
    j
}

/// Apply `limit`/`marker`/`sort`/`offset` and the `<kind>_links` next link.
fn page(
    base: &str,
    pid: &str,
    kind: &str,
    detail: bool,
    q: &[(String, String)],
    mut items: Vec<Value>,
    mv: (u32, u32),
) -> Result<Value, SimError> {
    let (key, dir) = match q_get(q, "sort") {
        Some(s) => {
            let first = s.split(',').next().unwrap_or("created_at");
            let (k, d) = first.split_once(':').unwrap_or((first, "desc"));
            (k.to_string(), d.to_string())
        }
        None => (
            q_get(q, "sort_key").unwrap_or("created_at").to_string(),
            q_get(q, "sort_dir").unwrap_or("desc").to_string(),
        ),
    };
    crate::domain::sort::sort_by(&mut items, |a, b| {
        let ka = a.get(&key).map(|v| v.to_string()).unwrap_or_default();
        let kb = b.get(&key).map(|v| v.to_string()).unwrap_or_default();
        let o = ka.cmp(&kb).then_with(|| a["id"].as_str().cmp(&b["id"].as_str()));
        if dir == "asc" {
            o
        } else {
            o.reverse()
        }
    });
    let total = items.len();
    if let Some(m) = q_get(q, "marker") {
        match items.iter().position(|v| v["id"] == m) {
            Some(i) => {
                items.drain(..=i);
            }
            None => return Err(SimError::not_found(format!("Marker {m} could not be found."))),
        }
    }
    if let Some(off) = q_get(q, "offset").and_then(|o| o.parse::<usize>().ok()) {
        items.drain(..off.min(items.len()));
    }
    let mut body = Map::new();
    let limit = q_get(q, "limit").and_then(|l| l.parse::<usize>().ok());
    let max = 1000;
    let eff = limit.unwrap_or(max).min(max);
    if items.len() > eff {
        items.truncate(eff);
    }
    let last = items.last().and_then(|v| v["id"].as_str()).map(String::from);
    let n = items.len();
    body.insert(kind.into(), Value::Array(items));
    if n == eff && eff > 0 {
        if let Some(last) = last {
            let suffix = if detail { "/detail" } else { "" };
            body.insert(format!("{kind}_links"), json!([{"rel": "next", "href": format!("{base}/volume/v3/{pid}/{kind}{suffix}?limit={eff}&marker={last}")}]));
        }
    }
    if mv >= (3, 45) && q_get(q, "with_count").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        body.insert("count".into(), json!(total));
    }
    Ok(Value::Object(body))
}

fn filters_ok(v: &Value, q: &[(String, String)]) -> bool {
    if let Some(n) = q_get(q, "name") {
        if v["name"].as_str() != Some(n) {
            return false;
        }
    }
    if let Some(st) = q_get(q, "status") {
        if v["status"].as_str() != Some(st) {
            return false;
        }
    }
    if let Some(vid) = q_get(q, "volume_id") {
        if v["volume_id"].as_str() != Some(vid) {
            return false;
        }
    }
    if let Some(m) = q_get(q, "metadata") {
        // `{"k": "v"}` (JSON or Python-literal quoting).
        let parsed: Option<BTreeMap<String, String>> = serde_json::from_slice(m.as_bytes())
            .ok()
            .or_else(|| serde_json::from_slice(m.replace('\'', "\"").as_bytes()).ok());
        if let Some(want) = parsed {
            let have = v["metadata"].as_object();
            if !want.iter().all(|(k, val)| have.and_then(|h| h.get(k)).and_then(Value::as_str) == Some(val.as_str())) {
                return false;
            }
        }
    }
    true
}

fn vol_list(
    State(s): State<S>,
    h: HeaderMap,
    Path(pid): Path<String>,
    RawQuery(raw): RawQuery,
    detail: bool,
) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = query_pairs(raw.as_deref());
    let w = s.world();
    let base = s.base();
    let items: Vec<Value> = w
        .volumes
        .values()
        .filter(|v| v.project_id == c.project_id)
        .map(|v| volume_json(&base, v, mv, true, c.admin))
        .filter(|v| filters_ok(v, &q))
        .collect();
    match page(&base, &pid, "volumes", detail, &q, items, mv) {
        Ok(mut b) => {
            if !detail {
                if let Some(a) = b.get_mut("volumes").and_then(Value::as_array_mut) {
                    for v in a.iter_mut() {
                        *v = json!({"id": v["id"], "name": v["name"], "links": v["links"]});
                    }
                }
            }
            ok(200, &b, mv)
        }
        Err(e) => err(e, mv),
    }
}

fn str_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|o| o.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
        .unwrap_or_default()
}

fn vol_create(State(s): State<S>, h: HeaderMap, Path(pid): Path<String>, body: Bytes) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return err(e, mv),
    };
    let Some(v) = body.get("volume") else {
        return err(SimError::bad("Missing required element 'volume' in request body."), mv);
    };
    let size = v.get("size").and_then(|x| x.as_u64().or_else(|| x.as_str().and_then(|s| s.parse().ok())));
    let Some(size) = size else {
        return err(
            SimError::bad(
                "Invalid input for field/attribute size. Value: None. None is not of type 'integer', 'string'",
            ),
            mv,
        );
    };
    let now = s.now();
    let mut w = s.world();
    let name = v.get("name").and_then(Value::as_str).map(String::from);
    let desc = v.get("description").and_then(Value::as_str).map(String::from);
    let az = v.get("availability_zone").and_then(Value::as_str).map(String::from);
    if let Some(bid) = v.get("backup_id").and_then(Value::as_str) {
        // Create from a backup (3.47): the volume is filled by a restore.
        if mv < (3, 47) {
            return err(SimError::bad("Invalid input for field/attribute volume. Additional properties are not allowed ('backup_id' was unexpected)"), mv);
        }
        let vt = v.get("volume_type").and_then(Value::as_str).map(String::from);
        let r = w.restore_backup_to(
            bid,
            &c.project_id,
            &c.user_id,
            None,
            name,
            Some(vt.unwrap_or_else(|| DEFAULT_TYPE.into())),
            az,
            now,
        );
        return match r.and_then(|(id, _)| found(&w.volumes, &id).cloned()) {
            Ok(v) => ok(202, &json!({"volume": volume_json(&s.base(), &v, mv, true, c.admin)}), mv),
            Err(e) => err(e, mv),
        };
    }
    match w.create_volume(&c.project_id, &c.user_id, size, name, desc, str_map(v.get("metadata")), az, now) {
        Ok(id) => match found(&w.volumes, &id) {
            Ok(v) => ok(202, &json!({"volume": volume_json(&s.base(), v, mv, true, c.admin)}), mv),
            Err(e) => err(e, mv),
        },
        Err(e) => err(e, mv),
    }
}

fn vol_show(State(s): State<S>, h: HeaderMap, Path((pid, id)): Path<(String, String)>) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    match w.volumes.get(&id).filter(|v| v.project_id == c.project_id) {
        Some(v) => ok(200, &json!({"volume": volume_json(&s.base(), v, mv, true, c.admin)}), mv),
        None => err(SimError::not_found(format!("Volume {id} could not be found.")), mv),
    }
}

fn vol_update(State(s): State<S>, h: HeaderMap, Path((pid, id)): Path<(String, String)>, body: Bytes) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return err(e, mv),
    };
    let now = s.now();
    let mut w = s.world();
    let Some(v) = w.volumes.get_mut(&id).filter(|v| v.project_id == c.project_id) else {
        return err(SimError::not_found(format!("Volume {id} could not be found.")), mv);
    };
    if let Some(n) = body.pointer("/volume/name").and_then(Value::as_str) {
        v.name = Some(n.to_string());
    }
    if let Some(d) = body.pointer("/volume/description").and_then(Value::as_str) {
        v.description = Some(d.to_string());
    }
    if let Some(m) = body.pointer("/volume/metadata") {
        v.metadata = str_map(Some(m));
    }
    v.updated_at = Some(now);
    let v = v.clone();
    ok(200, &json!({"volume": volume_json(&s.base(), &v, mv, true, c.admin)}), mv)
}

fn vol_delete(State(s): State<S>, h: HeaderMap, Path((pid, id)): Path<(String, String)>) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = s.now();
    let mut w = s.world();
    match w.delete_volume(&id, &c.project_id, now) {
        Ok(()) => with_mv(empty(202), mv),
        Err(e) => err(e, mv),
    }
}

fn snap_list(
    State(s): State<S>,
    h: HeaderMap,
    Path(pid): Path<String>,
    RawQuery(raw): RawQuery,
    detail: bool,
) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = query_pairs(raw.as_deref());
    let w = s.world();
    let base = s.base();
    let items: Vec<Value> = w
        .snapshots
        .values()
        .filter(|x| x.project_id == c.project_id)
        .map(|x| snapshot_json(x, mv, detail))
        .filter(|v| filters_ok(v, &q))
        .collect();
    match page(&base, &pid, "snapshots", detail, &q, items, mv) {
        Ok(b) => ok(200, &b, mv),
        Err(e) => err(e, mv),
    }
}

fn snap_create(State(s): State<S>, h: HeaderMap, Path(pid): Path<String>, body: Bytes) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return err(e, mv),
    };
    let Some(sn) = body.get("snapshot") else {
        return err(SimError::bad("Missing required element 'snapshot' in request body."), mv);
    };
    let Some(vid) = sn.get("volume_id").and_then(Value::as_str) else {
        return err(SimError::bad("'volume_id' is a required property"), mv);
    };
    let force = sn
        .get("force")
        .is_some_and(|f| f.as_bool().unwrap_or(false) || f.as_str().is_some_and(|x| x.eq_ignore_ascii_case("true")));
    let now = s.now();
    let mut w = s.world();
    match w.create_snapshot(
        &c.project_id,
        &c.user_id,
        vid,
        sn.get("name").and_then(Value::as_str).map(String::from),
        force,
        str_map(sn.get("metadata")),
        now,
    ) {
        Ok(id) => match found(&w.snapshots, &id) {
            Ok(sn) => ok(202, &json!({"snapshot": snapshot_json(sn, mv, true)}), mv),
            Err(e) => err(e, mv),
        },
        Err(e) => err(e, mv),
    }
}

fn snap_show(State(s): State<S>, h: HeaderMap, Path((pid, id)): Path<(String, String)>) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    match w.snapshots.get(&id).filter(|x| x.project_id == c.project_id) {
        Some(x) => ok(200, &json!({"snapshot": snapshot_json(x, mv, true)}), mv),
        None => err(SimError::not_found(format!("Snapshot {id} could not be found.")), mv),
    }
}

fn snap_delete(State(s): State<S>, h: HeaderMap, Path((pid, id)): Path<(String, String)>) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = s.now();
    let mut w = s.world();
    match w.delete_snapshot(&id, &c.project_id, now) {
        Ok(()) => with_mv(empty(202), mv),
        Err(e) => err(e, mv),
    }
}

fn backup_list(
    State(s): State<S>,
    h: HeaderMap,
    Path(pid): Path<String>,
    RawQuery(raw): RawQuery,
    detail: bool,
) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = query_pairs(raw.as_deref());
    let w = s.world();
    let base = s.base();
    let items: Vec<Value> = w
        .backups
        .values()
        .filter(|b| b.project_id == c.project_id)
        .map(|b| backup_json(&w, &base, b, mv.max((3, 43)), true))
        .filter(|v| filters_ok(v, &q))
        .collect();
    match page(&base, &pid, "backups", detail, &q, items, mv) {
        Ok(mut b) => {
            if let Some(a) = b.get_mut("backups").and_then(Value::as_array_mut) {
                for v in a.iter_mut() {
                    if !detail {
                        *v = json!({"id": v["id"], "name": v["name"], "links": v["links"]});
                    } else if let Some(o) = v.as_object_mut() {
                        if mv < (3, 43) {
                            o.remove("metadata");
                        }
                    }
                }
            }
            ok(200, &b, mv)
        }
        Err(e) => err(e, mv),
    }
}

fn truthy(v: Option<&Value>) -> bool {
    v.is_some_and(|f| f.as_bool().unwrap_or(false) || f.as_str().is_some_and(|x| x.eq_ignore_ascii_case("true")))
}

/// A parsed `POST /backups` body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BackupCreate {
    pub volume_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub incremental: bool,
    pub force: bool,
    pub snapshot_id: Option<String>,
    pub container: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

pub fn parse_backup_create(body: &Value, mv: (u32, u32)) -> Result<BackupCreate, SimError> {
    let Some(b) = body.get("backup") else {
        return Err(SimError::bad("Missing required element 'backup' in request body."));
    };
    let Some(vid) = b.get("volume_id").and_then(Value::as_str) else {
        return Err(SimError::bad("Invalid input for field/attribute backup. 'volume_id' is a required property"));
    };
    if b.get("metadata").is_some() && mv < (3, 43) {
        return Err(SimError::bad("Invalid input for field/attribute backup. Additional properties are not allowed ('metadata' was unexpected)"));
    }
    let s = |k: &str| b.get(k).and_then(Value::as_str).map(String::from);
    Ok(BackupCreate {
        volume_id: vid.to_string(),
        name: s("name"),
        description: s("description"),
        incremental: truthy(b.get("incremental")),
        force: truthy(b.get("force")),
        snapshot_id: s("snapshot_id"),
        container: s("container"),
        metadata: str_map(b.get("metadata")),
    })
}

fn backup_create(State(s): State<S>, h: HeaderMap, Path(pid): Path<String>, body: Bytes) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let req = match parse_body(&body).and_then(|b| parse_backup_create(&b, mv)) {
        Ok(r) => r,
        Err(e) => return err(e, mv),
    };
    let now = s.now();
    let mut w = s.world();
    let res = w.create_backup(
        &c.project_id,
        &c.user_id,
        &req.volume_id,
        req.name,
        req.description,
        req.incremental,
        req.force,
        req.snapshot_id,
        req.container,
        req.metadata,
        now,
    );
    // Cinder answers a create with id, name and links only.
    match res.and_then(|id| found(&w.backups, &id).map(|bk| (id.clone(), bk.name.clone()))) {
        Ok((id, name)) => {
            let v = json!({"id": id, "name": name, "links": links(&s.base(), &c.project_id, "backups", &id)});
            ok(202, &json!({"backup": v}), mv)
        }
        Err(e) => err(e, mv),
    }
}

fn backup_show(State(s): State<S>, h: HeaderMap, Path((pid, id)): Path<(String, String)>) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    match w.backups.get(&id).filter(|b| b.project_id == c.project_id) {
        Some(b) => ok(200, &json!({"backup": backup_json(&w, &s.base(), b, mv, true)}), mv),
        None => err(SimError::not_found(format!("Backup {id} could not be found.")), mv),
    }
}

fn backup_delete(State(s): State<S>, h: HeaderMap, Path((pid, id)): Path<(String, String)>) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = s.now();
    let mut w = s.world();
    match w.delete_backup(&id, &c.project_id, now) {
        Ok(()) => with_mv(empty(202), mv),
        Err(e) => err(e, mv),
    }
}

/// Parse a restore request body (both fields optional).
pub fn parse_restore(body: &Value) -> Result<(Option<String>, Option<String>), SimError> {
    let Some(r) = body.get("restore") else {
        return Err(SimError::bad("Missing required element 'restore' in request body."));
    };
    if !r.is_object() && !r.is_null() {
        return Err(SimError::bad("Invalid input for field/attribute restore."));
    }
    Ok((
        r.get("volume_id").and_then(Value::as_str).map(String::from),
        r.get("name").and_then(Value::as_str).map(String::from),
    ))
}

fn backup_restore(State(s): State<S>, h: HeaderMap, Path((pid, id)): Path<(String, String)>, body: Bytes) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (vid, name) = match parse_body(&body).and_then(|b| parse_restore(&b)) {
        Ok(x) => x,
        Err(e) => return err(e, mv),
    };
    let now = s.now();
    let mut w = s.world();
    match w.restore_backup(&id, &c.project_id, &c.user_id, vid.as_deref(), name, now) {
        Ok((vid, vname)) => ok(202, &json!({"restore": {"backup_id": id, "volume_id": vid, "volume_name": vname}}), mv),
        Err(e) => err(e, mv),
    }
}

fn backup_action(State(s): State<S>, h: HeaderMap, Path((pid, id)): Path<(String, String)>, body: Bytes) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return err(e, mv),
    };
    let now = s.now();
    let mut w = s.world();
    if w.backups.get(&id).is_none_or(|b| b.project_id != c.project_id) {
        return err(SimError::not_found(format!("Backup {id} could not be found.")), mv);
    }
    if body.get("os-force_delete").is_some() {
        if w.has_dependents(&id) {
            return err(SimError::bad("Invalid backup: Incremental backups exist for this backup."), mv);
        }
        w.backups.remove(&id);
        return with_mv(empty(202), mv);
    }
    if let Some(st) = body.pointer("/os-reset_status/status").and_then(Value::as_str) {
        if !c.admin {
            return err(SimError::new(403, "Policy doesn't allow backup:backup-reset_status to be performed."), mv);
        }
        if let Some(b) = w.backups.get_mut(&id) {
            b.status = st.to_string();
            b.updated_at = Some(now);
        }
        return with_mv(empty(202), mv);
    }
    err(SimError::bad("Invalid request body"), mv)
}

fn limits(State(s): State<S>, h: HeaderMap, Path(pid): Path<String>) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    let q = w.quota(&c.project_id);
    let (vols, gb, snaps, baks, bgb) = w.volume_usage(&c.project_id);
    ok(
        200,
        &json!({"limits": {"rate": [], "absolute": {
            "maxTotalVolumes": q.volumes, "maxTotalSnapshots": q.snapshots, "maxTotalVolumeGigabytes": q.gigabytes,
            "maxTotalBackups": q.backups, "maxTotalBackupGigabytes": q.backup_gigabytes,
            "totalVolumesUsed": vols, "totalGigabytesUsed": gb, "totalSnapshotsUsed": snaps,
            "totalBackupsUsed": baks, "totalBackupGigabytesUsed": bgb
        }}}),
        mv,
    )
}

fn types(State(s): State<S>, h: HeaderMap, Path(pid): Path<String>) -> Response {
    let (_, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    ok(
        200,
        &json!({"volume_types": [{"id": DEFAULT_TYPE_ID, "name": DEFAULT_TYPE, "description": "Default Volume Type", "is_public": true, "extra_specs": {}, "qos_specs_id": null, "os-volume-type-access:is_public": true}]}),
        mv,
    )
}

// ---- Volume metadata -------------------------------------------------------------

/// Cinder's checks of metadata items.
fn check_metadata(m: &BTreeMap<String, String>) -> Result<(), SimError> {
    for (k, v) in m {
        if k.is_empty() {
            return Err(SimError::bad("Invalid input received: Metadata property key blank."));
        }
        if k.chars().count() > 255 {
            return Err(SimError::bad("Invalid input received: Metadata property key greater than 255 characters."));
        }
        if v.chars().count() > 255 {
            return Err(SimError::bad("Invalid input received: Metadata property value greater than 255 characters."));
        }
    }
    Ok(())
}

/// The metadata object under `key` of a request body (`metadata` or `meta`).
fn body_metadata(body: &Bytes, key: &str) -> Result<BTreeMap<String, String>, SimError> {
    let b = parse_body(body)?;
    let Some(o) = b.get(key).and_then(Value::as_object) else {
        return Err(SimError::bad(format!(
            "Invalid input received: Missing required element '{key}' in request body."
        )));
    };
    let mut m = BTreeMap::new();
    for (k, v) in o {
        let Some(v) = v.as_str() else {
            return Err(SimError::bad(format!("Invalid input received: Value for metadata key {k} must be a string.")));
        };
        m.insert(k.clone(), v.to_string());
    }
    check_metadata(&m)?;
    Ok(m)
}

fn no_volume(id: &str) -> SimError {
    SimError::not_found(format!("Volume {id} could not be found."))
}

/// Change a volume's metadata with `f`; its metadata after.
fn with_metadata(
    s: &SimShared,
    c: &Caller,
    id: &str,
    f: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), SimError>,
) -> Result<BTreeMap<String, String>, SimError> {
    let now = s.now();
    let mut w = s.world();
    let v = w.volumes.get_mut(id).filter(|v| v.project_id == c.project_id).ok_or_else(|| no_volume(id))?;
    f(&mut v.metadata)?;
    v.updated_at = Some(now);
    Ok(v.metadata.clone())
}

fn meta_show(State(s): State<S>, h: HeaderMap, Path((pid, id)): Path<(String, String)>) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    match w.volumes.get(&id).filter(|v| v.project_id == c.project_id) {
        Some(v) => ok(200, &json!({"metadata": v.metadata}), mv),
        None => err(no_volume(&id), mv),
    }
}

/// `POST .../metadata`: merge the given items into the volume's.
fn meta_merge(State(s): State<S>, h: HeaderMap, Path((pid, id)): Path<(String, String)>, body: Bytes) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let r = body_metadata(&body, "metadata").and_then(|m| {
        with_metadata(&s, &c, &id, |cur| {
            cur.extend(m);
            Ok(())
        })
    });
    match r {
        Ok(m) => ok(200, &json!({"metadata": m}), mv),
        Err(e) => err(e, mv),
    }
}

/// `PUT .../metadata`: replace all of the volume's items.
fn meta_replace(State(s): State<S>, h: HeaderMap, Path((pid, id)): Path<(String, String)>, body: Bytes) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let r = body_metadata(&body, "metadata").and_then(|m| {
        with_metadata(&s, &c, &id, |cur| {
            *cur = m;
            Ok(())
        })
    });
    match r {
        Ok(m) => ok(200, &json!({"metadata": m}), mv),
        Err(e) => err(e, mv),
    }
}

fn meta_item(State(s): State<S>, h: HeaderMap, Path((pid, id, key)): Path<(String, String, String)>) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    let Some(v) = w.volumes.get(&id).filter(|v| v.project_id == c.project_id) else {
        return err(no_volume(&id), mv);
    };
    match v.metadata.get(&key) {
        Some(val) => ok(200, &json!({"meta": {key: val}}), mv),
        None => err(SimError::not_found(format!("Metadata item was not found for volume {id}.")), mv),
    }
}

/// `PUT .../metadata/{key}` with `{"meta": {key: value}}`.
fn meta_item_set(
    State(s): State<S>,
    h: HeaderMap,
    Path((pid, id, key)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let m = match body_metadata(&body, "meta") {
        Ok(m) => m,
        Err(e) => return err(e, mv),
    };
    if m.len() != 1 || !m.contains_key(&key) {
        let e = if m.len() > 1 { "Request body contains too many items." } else { "Request body and URI mismatch" };
        return err(SimError::bad(e), mv);
    }
    let r = with_metadata(&s, &c, &id, |cur| {
        cur.extend(m.clone());
        Ok(())
    });
    match r {
        Ok(_) => ok(200, &json!({"meta": m}), mv),
        Err(e) => err(e, mv),
    }
}

fn meta_item_delete(
    State(s): State<S>,
    h: HeaderMap,
    Path((pid, id, key)): Path<(String, String, String)>,
) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let r = with_metadata(&s, &c, &id, |cur| match cur.remove(&key) {
        Some(_) => Ok(()),
        None => Err(SimError::not_found(format!("Metadata item was not found for volume {id}."))),
    });
    match r {
        Ok(_) => with_mv(empty(200), mv),
        Err(e) => err(e, mv),
    }
}

// ---- Quotas and services -----------------------------------------------------------

/// The quota keys of each volume type (`volumes___DEFAULT__`, ...).
fn type_keys() -> [(String, &'static str); 3] {
    ["volumes", "gigabytes", "snapshots"].map(|k| (format!("{k}_{DEFAULT_TYPE}"), k))
}

/// A quota set as Cinder shows it: limits, or with `usage` `{limit, in_use, reserved}`.
fn volume_quota_body(w: &World, target: &str, defaults: bool, usage: bool, with_id: bool) -> Value {
    let q = if defaults { w.default_quota.clone() } else { w.quota(target) };
    let (vols, gb, snaps, baks, bgb) = w.volume_usage(target);
    let typed_vols: Vec<&Volume> =
        w.volumes.values().filter(|v| v.project_id == target && v.volume_type == DEFAULT_TYPE).collect();
    let typed_snaps: Vec<&Snapshot> = w
        .snapshots
        .values()
        .filter(|s| s.project_id == target && typed_vols.iter().any(|v| v.id == s.volume_id))
        .collect();
    let typed_gb =
        typed_vols.iter().map(|v| v.size as i64).sum::<i64>() + typed_snaps.iter().map(|s| s.size as i64).sum::<i64>();
    let mut m = Map::new();
    let mut put = |k: &str, limit: i64, used: i64| {
        let v = if usage { json!({"limit": limit, "in_use": used, "reserved": 0}) } else { json!(limit) };
        m.insert(k.to_string(), v);
    };
    for k in super::world::Quota::VOLUME_KEYS {
        let used = match k {
            "volumes" => vols,
            "gigabytes" => gb,
            "snapshots" => snaps,
            "backups" => baks,
            "backup_gigabytes" => bgb,
            _ => 0,
        };
        put(k, q.get(k).unwrap_or(-1), used);
    }
    for (k, base) in type_keys() {
        let used = match base {
            "volumes" => typed_vols.len() as i64,
            "gigabytes" => typed_gb,
            _ => typed_snaps.len() as i64,
        };
        put(&k, -1, used);
    }
    if with_id {
        m.insert("id".into(), json!(target));
    }
    json!({"quota_set": m})
}

/// `GET os-quota-sets/{project}?usage=`: one's own project, or any as an admin
/// (an unknown project shows the defaults, as Cinder does).
fn quota_show(
    State(s): State<S>,
    h: HeaderMap,
    Path((pid, target)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !c.admin && target != c.project_id {
        return err(SimError::new(403, "Policy doesn't allow volume_extension:quotas:show to be performed."), mv);
    }
    let q = query_pairs(q.as_deref());
    let usage =
        q_get(&q, "usage").is_some_and(|u| matches!(u.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on"));
    let w = s.world();
    ok(200, &volume_quota_body(&w, &target, false, usage, true), mv)
}

fn quota_defaults(State(s): State<S>, h: HeaderMap, Path((pid, target)): Path<(String, String)>) -> Response {
    let (_, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    ok(200, &volume_quota_body(&w, &target, true, false, true), mv)
}

/// `PUT os-quota-sets/{project}` (admins): Cinder's keys, integers ≥ -1 (and,
/// with `skip_validation: false`, not below what the project already uses).
fn quota_update(
    State(s): State<S>,
    h: HeaderMap,
    Path((pid, target)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !c.admin {
        return err(SimError::new(403, "Policy doesn't allow volume_extension:quotas:update to be performed."), mv);
    }
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return err(e, mv),
    };
    let Some(qs) = body.get("quota_set").and_then(Value::as_object) else {
        return err(SimError::bad("Invalid input received: Missing required element 'quota_set' in request body."), mv);
    };
    // Limits below the usage are refused only when asked (`skip_validation: false`).
    let skip_validation = match body.get("skip_validation") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(t)) if matches!(t.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on") => true,
        Some(Value::String(t)) if matches!(t.to_ascii_lowercase().as_str(), "false" | "0" | "no" | "off") => false,
        Some(other) => {
            return err(
                SimError::bad(format!("Invalid input received: Invalid value '{other}' for skip_validation.")),
                mv,
            )
        }
    };
    let typed: Vec<String> = type_keys().into_iter().map(|(k, _)| k).collect();
    let known = |k: &str| {
        super::world::Quota::VOLUME_KEYS.contains(&k) || typed.iter().any(|t| t == k) || k == "id" || k == "tenant_id"
    };
    let bad: Vec<&str> = qs.keys().map(String::as_str).filter(|k| !known(k)).collect();
    if !bad.is_empty() {
        return err(SimError::bad(format!("Invalid input received: Bad key(s) in quota set: {}", bad.join(","))), mv);
    }
    let mut w = s.world();
    let mut q = w.quota(&target);
    let (vols, gb, snaps, baks, bgb) = w.volume_usage(&target);
    for (k, v) in qs {
        if k == "id" || k == "tenant_id" {
            continue;
        }
        let Some(n) = v.as_i64().or_else(|| v.as_str().and_then(|x| x.trim().parse().ok())) else {
            return err(SimError::bad(format!("{k} must be an integer")), mv);
        };
        if n < -1 {
            return err(SimError::bad(format!("{k} must be >= -1")), mv);
        }
        let used = match k.as_str() {
            "volumes" => vols,
            "gigabytes" => gb,
            "snapshots" => snaps,
            "backups" => baks,
            "backup_gigabytes" => bgb,
            _ => 0,
        };
        if !skip_validation && n >= 0 && n < used {
            return err(
                SimError::bad(format!(
                    "Quota {k} limit must be equal or greater than existing resources. Current usage is {used} and the requested limit is {n}."
                )),
                mv,
            );
        }
        // The per-type keys have no limit here: accepted, and shown as -1.
        q.set(k, n);
    }
    w.quotas.insert(target.clone(), q);
    ok(200, &volume_quota_body(&w, &target, false, false, false), mv)
}

/// `DELETE os-quota-sets/{project}` (admins): Cinder's limits back to the defaults.
fn quota_delete(State(s): State<S>, h: HeaderMap, Path((pid, target)): Path<(String, String)>) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !c.admin {
        return err(SimError::new(403, "Policy doesn't allow volume_extension:quotas:delete to be performed."), mv);
    }
    let mut w = s.world();
    let defaults = w.default_quota.clone();
    let mut q = w.quota(&target);
    for k in super::world::Quota::VOLUME_KEYS {
        if let Some(d) = defaults.get(k) {
            q.set(k, d);
        }
    }
    w.quotas.insert(target, q);
    with_mv(empty(200), mv)
}

/// `GET os-services` (admins): the scheduler, the volume service of the one
/// backend and the backup service, with `binary` and `host` filters.
fn services(State(s): State<S>, h: HeaderMap, Path(pid): Path<String>, RawQuery(q): RawQuery) -> Response {
    let (c, mv) = match ctx(&s, &h, &pid) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !c.admin {
        return err(SimError::new(403, "Policy doesn't allow volume_extension:services:index to be performed."), mv);
    }
    let q = query_pairs(q.as_deref());
    let now = format_naive_micros(&s.now());
    let zone = STORAGE_ZONE;
    let rows: Vec<Value> =
        [("cinder-scheduler", "cinder"), ("cinder-volume", VOLUME_HOST), ("cinder-backup", "cinder")]
            .into_iter()
            .filter(|(b, host)| {
                q_get(&q, "binary").is_none_or(|x| x == *b) && q_get(&q, "host").is_none_or(|x| x == *host)
            })
            .map(|(binary, host)| {
                let mut v = json!({"binary": binary, "host": host, "zone": zone, "status": "enabled", "state": "up",
                "updated_at": now, "disabled_reason": null});
                if mv >= (3, 7) {
                    v.put("cluster", Value::Null);
                }
                if binary == "cinder-volume" {
                    v.put("replication_status", json!("disabled"));
                    v.put("active_backend_id", Value::Null);
                    v.put("frozen", json!(false));
                    if mv >= (3, 49) {
                        v.put("backend_state", json!("up"));
                    }
                }
                v
            })
            .collect();
    ok(200, &json!({"services": rows}), mv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> (World, String) {
        let w = super::super::worldfile::load(super::super::worldfile::DEFAULT_WORLD, "default", chrono::Utc::now())
            .unwrap();
        let pid = w.projects[0].id.clone();
        (w, pid)
    }

    #[test]
    fn quota_sets_show_limits_usage_and_type_keys() {
        let (mut w, pid) = world();
        let now = chrono::Utc::now();
        let uid = w.users[0].id.clone();
        w.create_volume(&pid, &uid, 3, None, None, BTreeMap::new(), None, now).unwrap();
        let plain = volume_quota_body(&w, &pid, false, false, true);
        let q = &plain["quota_set"];
        assert_eq!(q["id"], pid.as_str());
        assert_eq!(q["volumes___DEFAULT__"], -1);
        assert_eq!(q["per_volume_gigabytes"], -1);
        let used = volume_quota_body(&w, &pid, false, true, false);
        let u = &used["quota_set"];
        assert!(u.get("id").is_none());
        assert_eq!(u["volumes"]["in_use"], 1);
        assert_eq!(u["gigabytes"]["in_use"], 3);
        assert_eq!(u["gigabytes___DEFAULT__"]["in_use"], 3);
        assert_eq!(u["volumes"]["limit"], q["volumes"]);
    }

    #[test]
    fn per_volume_limit_refuses_a_larger_volume() {
        let (mut w, pid) = world();
        let uid = w.users[0].id.clone();
        let mut q = w.quota(&pid);
        assert!(q.set("per_volume_gigabytes", 2));
        w.quotas.insert(pid.clone(), q);
        let now = chrono::Utc::now();
        let e = w.create_volume(&pid, &uid, 3, None, None, BTreeMap::new(), None, now).unwrap_err();
        assert_eq!(e.status, 413);
        assert!(e.message.contains("VolumeSizeExceedsLimit"), "{}", e.message);
        assert!(w.create_volume(&pid, &uid, 2, None, None, BTreeMap::new(), None, now).is_ok());
    }

    #[test]
    fn metadata_checks() {
        let ok: BTreeMap<String, String> = [("k".to_string(), "v".to_string())].into();
        assert!(check_metadata(&ok).is_ok());
        let blank: BTreeMap<String, String> = [(String::new(), "v".to_string())].into();
        assert_eq!(check_metadata(&blank).unwrap_err().status, 400);
        let long: BTreeMap<String, String> = [("k".to_string(), "x".repeat(256))].into();
        assert!(check_metadata(&long).is_err());
        assert!(body_metadata(&Bytes::from_static(br#"{"metadata": {"a": 1}}"#), "metadata").is_err());
        assert_eq!(body_metadata(&Bytes::from_static(br#"{"meta": {"a": "1"}}"#), "meta").unwrap().len(), 1);
    }
}
