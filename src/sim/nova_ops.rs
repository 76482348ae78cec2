//! Simulated Nova, the operator side: flavor create and delete, key pairs,
//! availability zones, hypervisors and their statistics, aggregates, hosts,
//! simple tenant usage, server groups and instance actions. Everything is drawn
//! from the world: its compute hosts (with their injected faults), servers,
//! flavors and clock.

use super::http::*;
use super::nova::{ctx, err, ge, host_id, ok, with_mv};
use super::world::{new_id, Flavor, InstanceAction, Keypair, Server, ServerGroup, SimError, World, COMPUTE_HOSTS};
use crate::domain::json::json;
use crate::domain::json::Obj;
use crate::domain::time::{format_naive_micros, parse_timestamp, Timestamp};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value};

fn forbidden(rule: &str) -> SimError {
    SimError::new(403, format!("Policy doesn't allow {rule} to be performed."))
}

fn admin_only(c: &Caller, rule: &str) -> Result<(), SimError> {
    if c.admin {
        Ok(())
    } else {
        Err(forbidden(rule))
    }
}

fn uuid5(what: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, what.as_bytes()).to_string()
}

fn invalid(field: &str, v: &Value, why: &str) -> SimError {
    SimError::bad(format!("Invalid input for field/attribute {field}. Value: {v}. {why}"))
}

// ---- flavors -------------------------------------------------------------------

fn int_field(o: &Map<String, Value>, k: &str, min: i64, default: Option<i64>) -> Result<i64, SimError> {
    match o.get(k) {
        None | Some(Value::Null) => {
            default.ok_or_else(|| invalid("flavor", &json!(o), &format!("'{k}' is a required property")))
        }
        Some(v) => {
            let n = v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
            match n {
                Some(n) if n >= min => Ok(n),
                Some(n) => Err(invalid(k, v, &format!("{n} is less than the minimum of {min}"))),
                None => Err(invalid(k, v, &format!("{v} is not of type 'integer', 'string'"))),
            }
        }
    }
}

pub fn flavor_create(State(s): State<S>, h: HeaderMap, body: Bytes) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = admin_only(&c, "os_compute_api:os-flavor-manage:create") {
        return err(e, mv);
    }
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return err(e, mv),
    };
    let Some(o) = body.get("flavor").and_then(Value::as_object) else {
        return err(SimError::bad("Invalid input for field/attribute flavor. 'flavor' is a required property"), mv);
    };
    let name = match o.get("name").and_then(Value::as_str).map(str::trim) {
        Some(n) if !n.is_empty() && n.chars().count() <= 255 => n.to_string(),
        _ => return err(invalid("name", o.get("name").unwrap_or(&Value::Null), "'name' must be 1-255 characters"), mv),
    };
    let fields = (|| {
        Ok::<_, SimError>((
            int_field(o, "ram", 1, None)?,
            int_field(o, "vcpus", 1, None)?,
            int_field(o, "disk", 0, None)?,
            int_field(o, "OS-FLV-EXT-DATA:ephemeral", 0, Some(0))?,
            int_field(o, "swap", 0, Some(0))?,
        ))
    })();
    let (ram, vcpus, disk, ephemeral, swap) = match fields {
        Ok(x) => x,
        Err(e) => return err(e, mv),
    };
    let id = match o.get("id") {
        None | Some(Value::Null) => new_id(),
        Some(Value::String(i)) if !i.trim().is_empty() => i.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(v) => return err(invalid("id", v, "the id must be 1-255 characters"), mv),
    };
    let is_public = o.get("os-flavor-access:is_public").and_then(Value::as_bool).unwrap_or(true);
    let description = if ge(mv, 2, 55) { o.get("description").and_then(Value::as_str).map(String::from) } else { None };
    let mut w = s.world();
    if w.flavors.iter().any(|f| !f.deleted && f.name == name) {
        return err(SimError::conflict(format!("Flavor with name {name} already exists.")), mv);
    }
    if w.flavors.iter().any(|f| f.id == id) {
        return err(SimError::conflict(format!("Flavor with ID {id} already exists.")), mv);
    }
    let f = Flavor {
        id,
        name,
        vcpus: vcpus as u32,
        ram: ram as u64,
        disk: disk as u64,
        ephemeral: ephemeral as u64,
        swap: swap as u64,
        is_public,
        description,
        extra_specs: Default::default(),
        deleted: false,
    };
    let v = super::nova::flavor_json(&s.base(), &f, mv);
    w.flavors.push(f);
    ok(200, &json!({ "flavor": v }), mv)
}

pub fn flavor_delete(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = admin_only(&c, "os_compute_api:os-flavor-manage:delete") {
        return err(e, mv);
    }
    let mut w = s.world();
    if !w.flavors.iter().any(|f| f.id == id && !f.deleted) {
        return err(SimError::not_found(format!("Flavor {id} could not be found.")), mv);
    }
    // Servers keep showing the flavor they were built with.
    let used = w.servers.values().any(|sv| sv.flavor_id == id);
    if used {
        if let Some(f) = w.flavors.iter_mut().find(|f| f.id == id) {
            f.deleted = true;
        }
    } else {
        w.flavors.retain(|f| f.id != id);
    }
    with_mv(empty(202), mv)
}

// ---- key pairs -----------------------------------------------------------------

fn keypair_visible(k: &Keypair, user: &str) -> bool {
    k.user_id == user || k.user_id.is_empty()
}

fn keypair_json(k: &Keypair, mv: (u32, u32), full: bool) -> Value {
    let mut v = json!({"name": k.name, "public_key": k.public_key, "fingerprint": k.fingerprint});
    if ge(mv, 2, 2) {
        v.put("type", json!(if k.key_type.is_empty() { "ssh" } else { k.key_type.as_str() }));
    }
    if full {
        v.put("user_id", json!(k.user_id));
        v.put("created_at", json!(format_naive_micros(&k.created_at)));
        v.put("deleted", json!(false));
        v.put("deleted_at", Value::Null);
        v.put("updated_at", Value::Null);
        v.put("id", json!(k.id));
    }
    v
}

/// The user whose key pairs a request means: `?user_id=` is for admins from 2.10.
fn keypair_user(c: &Caller, mv: (u32, u32), raw_q: Option<&str>) -> Result<String, SimError> {
    let q = query_pairs(raw_q);
    match q_get(&q, "user_id") {
        Some(u) if ge(mv, 2, 10) && u != c.user_id => {
            admin_only(c, "os_compute_api:os-keypairs:index")?;
            Ok(u.to_string())
        }
        _ => Ok(c.user_id.clone()),
    }
}

pub fn keypairs(State(s): State<S>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let user = match keypair_user(&c, mv, q.as_deref()) {
        Ok(u) => u,
        Err(e) => return err(e, mv),
    };
    let w = s.world();
    let kps: Vec<Value> = w
        .keypairs
        .iter()
        .filter(|k| keypair_visible(k, &user))
        .map(|k| json!({"keypair": keypair_json(k, mv, false)}))
        .collect();
    ok(200, &json!({ "keypairs": kps }), mv)
}

pub fn keypair(State(s): State<S>, h: HeaderMap, Path(name): Path<String>, RawQuery(q): RawQuery) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let user = match keypair_user(&c, mv, q.as_deref()) {
        Ok(u) => u,
        Err(e) => return err(e, mv),
    };
    let w = s.world();
    match w.keypairs.iter().find(|k| k.name == name && keypair_visible(k, &user)) {
        Some(k) => ok(200, &json!({"keypair": keypair_json(k, mv, true)}), mv),
        None => err(SimError::not_found(format!("Keypair {name} not found for user {user}")), mv),
    }
}

pub fn keypair_create(State(s): State<S>, h: HeaderMap, body: Bytes) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return err(e, mv),
    };
    let Some(o) = body.get("keypair").and_then(Value::as_object) else {
        return err(SimError::bad("Invalid input for field/attribute keypair. 'keypair' is a required property"), mv);
    };
    let name = o.get("name").and_then(Value::as_str).unwrap_or("");
    let allowed = |ch: char| ch.is_ascii_alphanumeric() || " _-".contains(ch) || (ge(mv, 2, 92) && "@.".contains(ch));
    if name.is_empty() || name.chars().count() > 255 || !name.chars().all(allowed) || name.trim() != name {
        return err(
            invalid(
                "name",
                &json!(name),
                "Keypair name must be 1-255 characters: letters, digits, spaces, '_' and '-'",
            ),
            mv,
        );
    }
    let key_type = match o.get("type").and_then(Value::as_str) {
        Some(t) if ge(mv, 2, 2) && (t == "ssh" || t == "x509") => t.to_string(),
        Some(t) if ge(mv, 2, 2) => return err(invalid("type", &json!(t), "'type' is not one of ['ssh', 'x509']"), mv),
        _ => "ssh".to_string(),
    };
    let user = match o.get("user_id").and_then(Value::as_str) {
        Some(u) if ge(mv, 2, 10) && u != c.user_id => {
            if let Err(e) = admin_only(&c, "os_compute_api:os-keypairs:create") {
                return err(e, mv);
            }
            u.to_string()
        }
        _ => c.user_id.clone(),
    };
    let (public_key, private_key) = match o.get("public_key").and_then(Value::as_str) {
        Some(p) => (p.trim().to_string(), None),
        None if ge(mv, 2, 92) => {
            return err(invalid("keypair", &Value::Object(o.clone()), "'public_key' is a required property"), mv)
        }
        None => {
            let (p, k) = super::sshkey::generate(&format!("Generated-by-Nova-{name}"));
            (p, Some(k))
        }
    };
    let Some(fingerprint) = super::sshkey::fingerprint(&public_key) else {
        return err(SimError::bad("Keypair data is invalid: failed to generate fingerprint"), mv);
    };
    let now = s.now();
    let mut w = s.world();
    if w.keypairs.iter().any(|k| k.name == name && k.user_id == user) {
        return err(SimError::conflict(format!("Key pair '{name}' already exists.")), mv);
    }
    let limit = w.quota(&c.project_id).key_pairs;
    if limit >= 0 && w.keypairs.iter().filter(|k| k.user_id == user).count() as i64 >= limit {
        return err(SimError::new(403, "Quota exceeded, too many key pairs."), mv);
    }
    let id = w.keypairs.iter().map(|k| k.id).max().unwrap_or(0) + 1;
    let k = Keypair { name: name.to_string(), fingerprint, public_key, user_id: user, created_at: now, id, key_type };
    let mut v = keypair_json(&k, mv, false);
    v.put("user_id", json!(k.user_id));
    if let Some(p) = private_key {
        v.put("private_key", json!(p));
    }
    w.keypairs.push(k);
    ok(if ge(mv, 2, 2) { 201 } else { 200 }, &json!({ "keypair": v }), mv)
}

pub fn keypair_delete(State(s): State<S>, h: HeaderMap, Path(name): Path<String>, RawQuery(q): RawQuery) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let user = match keypair_user(&c, mv, q.as_deref()) {
        Ok(u) => u,
        Err(e) => return err(e, mv),
    };
    let mut w = s.world();
    let Some(i) = w.keypairs.iter().position(|k| k.name == name && keypair_visible(k, &user)) else {
        return err(SimError::not_found(format!("Keypair {name} not found for user {user}")), mv);
    };
    w.keypairs.remove(i);
    with_mv(empty(if ge(mv, 2, 2) { 204 } else { 202 }), mv)
}

// ---- hosts, hypervisors, zones, aggregates -----------------------------------------

/// A compute host as the hypervisor APIs show it.
struct HostView {
    index: usize,
    name: String,
    up: bool,
    enabled: bool,
    reason: Option<String>,
    vcpus: u64,
    memory_mb: u64,
    local_gb: u64,
    vcpus_used: u64,
    memory_mb_used: u64,
    local_gb_used: u64,
    running_vms: u64,
    workload: u64,
    servers: Vec<(String, String)>,
}

/// Memory the host keeps for itself (`reserved_host_memory_mb`).
const RESERVED_MB: u64 = 512;

fn host_views(w: &World) -> Vec<HostView> {
    let n = COMPUTE_HOSTS.len() as u32;
    COMPUTE_HOSTS
        .iter()
        .enumerate()
        .map(|(i, h)| {
            // The world's vCPU cap spreads over the hosts; unlimited hosts have 32.
            let vcpus = match w.settings.host_vcpus {
                Some(cap) => u64::from(cap / n + u32::from((i as u32) < cap % n)),
                None => 32,
            };
            let fault = w.host_faults.get(*h);
            let mut v = HostView {
                index: i,
                name: h.to_string(),
                up: fault.is_none_or(|f| f.0 != "down"),
                enabled: fault.is_none_or(|f| f.0 == "down"),
                reason: fault.filter(|f| f.0 != "down").map(|f| f.1.clone()),
                vcpus,
                memory_mb: 65_536,
                local_gb: 500,
                vcpus_used: 0,
                memory_mb_used: RESERVED_MB,
                local_gb_used: 0,
                running_vms: 0,
                workload: 0,
                servers: vec![],
            };
            for sv in w.servers.values().filter(|sv| sv.host == *h && !sv.is_deleted()) {
                v.running_vms += 1;
                v.servers.push((instance_name(sv), sv.id.clone()));
                if sv.task_state.is_some() {
                    v.workload += 1;
                }
                if let Some(f) = w.flavor(&sv.flavor_id) {
                    v.vcpus_used += u64::from(f.vcpus);
                    v.memory_mb_used += f.ram;
                    if sv.image_id.is_some() {
                        v.local_gb_used += f.disk + f.ephemeral;
                    }
                }
            }
            v
        })
        .collect()
}

fn instance_name(sv: &Server) -> String {
    format!("instance-{}", crate::domain::text::prefix(&sv.id, 8))
}

/// The id `os-services` gives a host's nova-compute (scheduler 1, conductor 2).
fn compute_service_id(h: &HostView, mv: (u32, u32)) -> Value {
    if ge(mv, 2, 53) {
        json!(uuid5(&format!("nova-compute@{}", h.name)))
    } else {
        json!(h.index + 3)
    }
}

fn hypervisor_id(h: &HostView, mv: (u32, u32)) -> Value {
    if ge(mv, 2, 53) {
        json!(uuid5(&format!("hypervisor@{}", h.name)))
    } else {
        json!(h.index + 1)
    }
}

fn hypervisor_json(h: &HostView, mv: (u32, u32), detail: bool, with_servers: bool) -> Value {
    let mut v = json!({
        "id": hypervisor_id(h, mv), "hypervisor_hostname": format!("{}.sim", h.name),
        "state": if h.up { "up" } else { "down" }, "status": if h.enabled { "enabled" } else { "disabled" },
    });
    if detail {
        v.put("hypervisor_type", json!("QEMU"));
        v.put("hypervisor_version", json!(8_002_000));
        v.put("host_ip", json!(format!("192.168.100.{}", 11 + h.index)));
        v.put("service", json!({"id": compute_service_id(h, mv), "host": h.name, "disabled_reason": h.reason}));
        if ge(mv, 2, 88) {
            v.put("uptime", Value::Null);
        } else {
            let free_disk = h.local_gb as i64 - h.local_gb_used as i64;
            for (k, x) in [
                ("vcpus", json!(h.vcpus)),
                ("memory_mb", json!(h.memory_mb)),
                ("local_gb", json!(h.local_gb)),
                ("vcpus_used", json!(h.vcpus_used)),
                ("memory_mb_used", json!(h.memory_mb_used)),
                ("local_gb_used", json!(h.local_gb_used)),
                ("free_ram_mb", json!(h.memory_mb as i64 - h.memory_mb_used as i64)),
                ("free_disk_gb", json!(free_disk)),
                ("current_workload", json!(h.workload)),
                ("running_vms", json!(h.running_vms)),
                ("disk_available_least", json!(free_disk)),
            ] {
                v.put(k, x);
            }
            let cpu = json!({"arch": "x86_64", "model": "EPYC-Rome", "vendor": "AMD", "features": ["sse4.2", "avx2", "aes"],
                "topology": {"cores": h.vcpus / 2, "threads": 2, "sockets": 1}});
            v.put("cpu_info", json!(cpu.to_string()));
        }
    }
    if with_servers && !h.servers.is_empty() {
        v.put("servers", json!(h.servers.iter().map(|(n, u)| json!({"name": n, "uuid": u})).collect::<Vec<_>>()));
    }
    v
}

fn hypervisor_list(s: &SimShared, h: &HeaderMap, raw_q: Option<&str>, detail: bool) -> Response {
    let (c, mv) = match ctx(s, h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = admin_only(&c, "os_compute_api:os-hypervisors:list") {
        return err(e, mv);
    }
    let q = query_pairs(raw_q);
    let truthy =
        |k: &str| q_get(&q, k).is_some_and(|v| ["1", "true", "yes", "on"].contains(&v.to_ascii_lowercase().as_str()));
    let pattern = q_get(&q, "hypervisor_hostname_pattern").filter(|_| ge(mv, 2, 53));
    let with_servers = ge(mv, 2, 53) && truthy("with_servers");
    let w = s.world();
    let views = host_views(&w);
    let mut rows: Vec<&HostView> =
        views.iter().filter(|v| pattern.is_none_or(|p| format!("{}.sim", v.name).contains(p))).collect();
    if let Some(m) = q_get(&q, "marker").filter(|_| ge(mv, 2, 33)) {
        match rows.iter().position(|v| hypervisor_id(v, mv).to_string().trim_matches('"') == m) {
            Some(i) => rows = rows.split_off(i + 1),
            None => return err(SimError::bad(format!("marker [{m}] not found")), mv),
        }
    }
    if let Some(l) = q_get(&q, "limit").and_then(|l| l.parse::<usize>().ok()).filter(|_| ge(mv, 2, 33)) {
        rows.truncate(l);
    }
    if pattern.is_some() && rows.is_empty() {
        return err(SimError::not_found("No hypervisor matching the pattern could be found."), mv);
    }
    let list: Vec<Value> = rows.iter().map(|v| hypervisor_json(v, mv, detail, with_servers)).collect();
    ok(200, &json!({ "hypervisors": list }), mv)
}

pub fn hypervisors(State(s): State<S>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    hypervisor_list(&s, &h, q.as_deref(), false)
}

pub fn hypervisors_detail(State(s): State<S>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    hypervisor_list(&s, &h, q.as_deref(), true)
}

pub fn hypervisor_show(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, RawQuery(q): RawQuery) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = admin_only(&c, "os_compute_api:os-hypervisors:show") {
        return err(e, mv);
    }
    if ge(mv, 2, 53) && uuid::Uuid::parse_str(&id).is_err() {
        return err(SimError::bad(format!("Invalid uuid {id}")), mv);
    }
    let q = query_pairs(q.as_deref());
    let with_servers =
        ge(mv, 2, 53) && q_get(&q, "with_servers").is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    let w = s.world();
    let views = host_views(&w);
    match views.iter().find(|v| hypervisor_id(v, mv).to_string().trim_matches('"') == id) {
        Some(v) => ok(200, &json!({"hypervisor": hypervisor_json(v, mv, true, with_servers)}), mv),
        None => err(SimError::not_found(format!("Hypervisor with ID {id} could not be found.")), mv),
    }
}

pub fn hypervisor_stats(State(s): State<S>, h: HeaderMap) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if ge(mv, 2, 88) {
        return err(SimError::not_found("The resource could not be found."), mv);
    }
    if let Err(e) = admin_only(&c, "os_compute_api:os-hypervisors:statistics") {
        return err(e, mv);
    }
    let w = s.world();
    let views = host_views(&w);
    let sum = |f: fn(&HostView) -> u64| views.iter().map(f).sum::<u64>();
    let (local, used) = (sum(|v| v.local_gb), sum(|v| v.local_gb_used));
    let (mem, mem_used) = (sum(|v| v.memory_mb), sum(|v| v.memory_mb_used));
    ok(
        200,
        &json!({"hypervisor_statistics": {
            "count": views.len(), "current_workload": sum(|v| v.workload),
            "disk_available_least": local as i64 - used as i64, "free_disk_gb": local as i64 - used as i64,
            "free_ram_mb": mem as i64 - mem_used as i64, "local_gb": local, "local_gb_used": used,
            "memory_mb": mem, "memory_mb_used": mem_used, "running_vms": sum(|v| v.running_vms),
            "vcpus": sum(|v| v.vcpus), "vcpus_used": sum(|v| v.vcpus_used),
        }}),
        mv,
    )
}

fn service_state(up: bool, enabled: bool, now: &str) -> Value {
    json!({"available": up, "active": enabled, "updated_at": now})
}

pub fn azs(State(s): State<S>, h: HeaderMap) -> Response {
    let (_, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    let any_enabled = host_views(&w).iter().any(|v| v.enabled);
    ok(
        200,
        &json!({"availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {"available": any_enabled}, "hosts": null}]}),
        mv,
    )
}

/// `os-availability-zone/detail`: the enabled services by zone and host, as
/// Nova lists them (admins only).
pub fn azs_detail(State(s): State<S>, h: HeaderMap) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = admin_only(&c, "os_compute_api:os-availability-zone:detail") {
        return err(e, mv);
    }
    let now = format_naive_micros(&s.now());
    let w = s.world();
    let views = host_views(&w);
    let mut compute = Map::new();
    for v in views.iter().filter(|v| v.enabled) {
        compute.insert(v.name.clone(), json!({"nova-compute": service_state(v.up, true, &now)}));
    }
    let internal = json!({"controller": {
        "nova-scheduler": service_state(true, true, &now), "nova-conductor": service_state(true, true, &now)}});
    let nova = if compute.is_empty() {
        json!({"zoneName": "nova", "zoneState": {"available": false}, "hosts": null})
    } else {
        json!({"zoneName": "nova", "zoneState": {"available": true}, "hosts": compute})
    };
    ok(
        200,
        &json!({"availabilityZoneInfo": [
            {"zoneName": "internal", "zoneState": {"available": true}, "hosts": internal}, nova]}),
        mv,
    )
}

pub fn aggregates(State(s): State<S>, h: HeaderMap) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = admin_only(&c, "os_compute_api:os-aggregates:index") {
        return err(e, mv);
    }
    let w = s.world();
    let list: Vec<Value> = w
        .aggregates
        .iter()
        .map(|a| {
            let mut meta = a.metadata.clone();
            if let Some(z) = &a.availability_zone {
                meta.insert("availability_zone".into(), z.clone());
            }
            let mut v = json!({"id": a.id, "name": a.name, "availability_zone": a.availability_zone, "hosts": a.hosts,
                "metadata": meta, "created_at": format_naive_micros(&a.created_at), "updated_at": null,
                "deleted": false, "deleted_at": null});
            if ge(mv, 2, 41) {
                v.put("uuid", json!(a.uuid));
            }
            v
        })
        .collect();
    ok(200, &json!({ "aggregates": list }), mv)
}

/// `os-hosts` (gone from 2.43): every service's host, with its zone.
pub fn hosts(State(s): State<S>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if ge(mv, 2, 43) {
        return err(SimError::not_found("The resource could not be found."), mv);
    }
    if let Err(e) = admin_only(&c, "os_compute_api:os-hosts:list") {
        return err(e, mv);
    }
    let q = query_pairs(q.as_deref());
    let mut rows = vec![
        json!({"host_name": "controller", "service": "scheduler", "zone": "internal"}),
        json!({"host_name": "controller", "service": "conductor", "zone": "internal"}),
    ];
    rows.extend(COMPUTE_HOSTS.iter().map(|h| json!({"host_name": h, "service": "compute", "zone": "nova"})));
    rows.retain(|r| q_get(&q, "zone").is_none_or(|z| r.get("zone").and_then(Value::as_str) == Some(z)));
    ok(200, &json!({ "hosts": rows }), mv)
}

// ---- simple tenant usage ---------------------------------------------------------

struct UsageQuery {
    start: Timestamp,
    stop: Timestamp,
    detailed: bool,
    limit: Option<usize>,
    marker: Option<String>,
}

fn usage_query(raw_q: Option<&str>, now: Timestamp, mv: (u32, u32)) -> Result<UsageQuery, SimError> {
    let q = query_pairs(raw_q);
    let when = |k: &str| match q_get(&q, k) {
        None => Ok(now),
        Some(t) => {
            parse_timestamp(t).ok_or_else(|| SimError::bad("Invalid datetime string: Datetime is in invalid format"))
        }
    };
    let (start, stop) = (when("start")?, when("end")?);
    // Nova reads the clock once for each missing bound: two missing ones are in order.
    let defaulted = q_get(&q, "start").is_none() && q_get(&q, "end").is_none();
    if start >= stop && !defaulted {
        return Err(SimError::bad("Invalid start time. The start time cannot occur after the end time."));
    }
    Ok(UsageQuery {
        start,
        // Nothing is charged past the present.
        stop: stop.min(now),
        detailed: q_get(&q, "detailed") == Some("1"),
        limit: q_get(&q, "limit").and_then(|l| l.parse().ok()).filter(|_| ge(mv, 2, 40)),
        marker: q_get(&q, "marker").filter(|_| ge(mv, 2, 40)).map(String::from),
    })
}

/// One server's usage in the window (Nova's `_hours_for` and its record).
fn server_usage(w: &World, sv: &Server, q: &UsageQuery, now: Timestamp) -> Value {
    let hours = match sv.launched_at {
        Some(l) if l <= q.stop && sv.terminated_at.is_none_or(|t| t >= q.start) => {
            let start = l.max(q.start);
            let stop = sv.terminated_at.map_or(q.stop, |t| t.min(q.stop));
            ((stop - start).num_microseconds().unwrap_or(0) as f64 / 3_600_000_000.0).max(0.0)
        }
        _ => 0.0,
    };
    let f = w.flavor(&sv.flavor_id);
    let state = if sv.terminated_at.is_some() { "terminated" } else { sv.vm_state.as_str() };
    let uptime = sv.launched_at.map_or(0, |l| (sv.terminated_at.unwrap_or(now) - l).num_seconds());
    json!({
        "hours": hours, "flavor": f.map(|f| f.name.clone()), "instance_id": sv.id, "name": sv.name,
        "tenant_id": sv.project_id, "memory_mb": f.map_or(0, |f| f.ram), "local_gb": f.map_or(0, |f| f.disk + f.ephemeral),
        "vcpus": f.map_or(0, |f| f.vcpus), "started_at": sv.launched_at.map(|t| format_naive_micros(&t)),
        "ended_at": sv.terminated_at.map(|t| format_naive_micros(&t)), "state": state, "uptime": uptime,
    })
}

/// Per-project usage summaries, projects in the order their servers come.
fn usages(w: &World, project: Option<&str>, q: &UsageQuery, now: Timestamp) -> Result<Vec<Value>, SimError> {
    let mut servers: Vec<&Server> = w
        .servers
        .values()
        .filter(|sv| project.is_none_or(|p| sv.project_id == p))
        .filter(|sv| sv.terminated_at.is_none_or(|t| t >= q.start) && sv.launched_at.is_none_or(|l| l <= q.stop))
        .collect();
    crate::domain::sort::sort_by(&mut servers, |a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
    if let Some(m) = &q.marker {
        match servers.iter().position(|sv| &sv.id == m) {
            Some(i) => servers = servers.split_off(i + 1),
            None => return Err(SimError::bad(format!("Marker {m} could not be found."))),
        }
    }
    if let Some(l) = q.limit {
        servers.truncate(l);
    }
    let mut out: Vec<(String, Map<String, Value>)> = Vec::new();
    for sv in servers {
        let u = server_usage(w, sv, q, now);
        let i = match out.iter().position(|(p, _)| p == &sv.project_id) {
            Some(i) => i,
            None => {
                let mut m = Map::new();
                m.insert("tenant_id".into(), json!(sv.project_id));
                if q.detailed {
                    m.insert("server_usages".into(), json!([]));
                }
                for k in ["total_local_gb_usage", "total_vcpus_usage", "total_memory_mb_usage", "total_hours"] {
                    m.insert(k.into(), json!(0.0));
                }
                m.insert("start".into(), json!(format_naive_micros(&q.start)));
                m.insert("stop".into(), json!(format_naive_micros(&q.stop)));
                out.push((sv.project_id.clone(), m));
                out.len() - 1
            }
        };
        let Some((_, m)) = out.get_mut(i) else { continue };
        let num = |k: &str| u.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let hours = num("hours");
        for (k, per) in [
            ("total_local_gb_usage", "local_gb"),
            ("total_vcpus_usage", "vcpus"),
            ("total_memory_mb_usage", "memory_mb"),
            ("total_hours", ""),
        ] {
            let add = if per.is_empty() { hours } else { num(per) * hours };
            let cur = m.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            m.insert(k.into(), json!(cur + add));
        }
        if let Some(Value::Array(list)) = m.get_mut("server_usages") {
            list.push(u);
        }
    }
    Ok(out.into_iter().map(|(_, m)| Value::Object(m)).collect())
}

pub fn usage_list(State(s): State<S>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = admin_only(&c, "os_compute_api:os-simple-tenant-usage:list") {
        return err(e, mv);
    }
    let now = s.now();
    let uq = match usage_query(q.as_deref(), now, mv) {
        Ok(x) => x,
        Err(e) => return err(e, mv),
    };
    let w = s.world();
    match usages(&w, None, &uq, now) {
        Ok(list) => ok(200, &json!({ "tenant_usages": list }), mv),
        Err(e) => err(e, mv),
    }
}

pub fn usage_show(State(s): State<S>, h: HeaderMap, Path(pid): Path<String>, RawQuery(q): RawQuery) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !c.admin && pid != c.project_id {
        return err(forbidden("os_compute_api:os-simple-tenant-usage:show"), mv);
    }
    let now = s.now();
    let mut uq = match usage_query(q.as_deref(), now, mv) {
        Ok(x) => x,
        Err(e) => return err(e, mv),
    };
    uq.detailed = true;
    let w = s.world();
    match usages(&w, Some(&pid), &uq, now) {
        Ok(list) => ok(200, &json!({"tenant_usage": list.into_iter().next().unwrap_or_else(|| json!({}))}), mv),
        Err(e) => err(e, mv),
    }
}

// ---- server groups -------------------------------------------------------------

const POLICIES: [&str; 4] = ["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"];

fn group_json(g: &ServerGroup, mv: (u32, u32)) -> Value {
    let mut v = json!({"id": g.id, "name": g.name, "members": g.members});
    if ge(mv, 2, 64) {
        v.put("policy", json!(g.policy));
        v.put("rules", json!(g.rules));
    } else {
        v.put("policies", json!([g.policy]));
        v.put("metadata", json!({}));
    }
    if ge(mv, 2, 13) {
        v.put("project_id", json!(g.project_id));
        v.put("user_id", json!(g.user_id));
    }
    v
}

pub fn groups(State(s): State<S>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = query_pairs(q.as_deref());
    let all = c.admin && q_get(&q, "all_projects").is_some_and(|v| !v.eq_ignore_ascii_case("false") && v != "0");
    let offset: usize = q_get(&q, "offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let w = s.world();
    let limit: usize = q_get(&q, "limit").and_then(|v| v.parse().ok()).unwrap_or(w.settings.max_limit);
    let list: Vec<Value> = w
        .server_groups
        .values()
        .filter(|g| all || g.project_id == c.project_id)
        .skip(offset)
        .take(limit)
        .map(|g| group_json(g, mv))
        .collect();
    ok(200, &json!({ "server_groups": list }), mv)
}

pub fn group_create(State(s): State<S>, h: HeaderMap, body: Bytes) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return err(e, mv),
    };
    let Some(o) = body.get("server_group").and_then(Value::as_object) else {
        return err(
            SimError::bad("Invalid input for field/attribute server_group. 'server_group' is a required property"),
            mv,
        );
    };
    let name = match o.get("name").and_then(Value::as_str).map(str::trim) {
        Some(n) if !n.is_empty() && n.chars().count() <= 255 => n.to_string(),
        _ => return err(invalid("name", o.get("name").unwrap_or(&Value::Null), "'name' must be 1-255 characters"), mv),
    };
    let policy = if ge(mv, 2, 64) {
        o.get("policy").and_then(Value::as_str).map(String::from)
    } else {
        o.get("policies").and_then(Value::as_array).and_then(|p| p.first()).and_then(Value::as_str).map(String::from)
    };
    let known = |p: &str| POLICIES.contains(&p) && (ge(mv, 2, 15) || !p.starts_with("soft-"));
    let Some(policy) = policy.filter(|p| known(p)) else {
        let field = if ge(mv, 2, 64) { "policy" } else { "policies" };
        return err(
            invalid(field, o.get(field).unwrap_or(&Value::Null), &format!("'{field}' must be one of {POLICIES:?}")),
            mv,
        );
    };
    let rules = o.get("rules").and_then(Value::as_object).cloned().filter(|_| ge(mv, 2, 64)).unwrap_or_default();
    if !rules.is_empty() && policy != "anti-affinity" {
        return err(SimError::bad("Only anti-affinity policy supports rules."), mv);
    }
    if let Some(v) = rules.get("max_server_per_host") {
        if v.as_i64().is_none_or(|n| n < 1) {
            return err(invalid("max_server_per_host", v, "must be an integer of at least 1"), mv);
        }
    }
    let mut w = s.world();
    let limit = w.quota(&c.project_id).server_groups;
    if limit >= 0 && w.server_groups.values().filter(|g| g.project_id == c.project_id).count() as i64 >= limit {
        return err(SimError::new(403, "Quota exceeded, too many server groups."), mv);
    }
    let g = ServerGroup {
        id: new_id(),
        name,
        policy,
        rules,
        members: vec![],
        project_id: c.project_id.clone(),
        user_id: c.user_id.clone(),
    };
    let v = group_json(&g, mv);
    w.server_groups.insert(g.id.clone(), g);
    ok(200, &json!({ "server_group": v }), mv)
}

fn group_of<'a>(w: &'a World, c: &Caller, id: &str) -> Result<&'a ServerGroup, SimError> {
    w.server_groups
        .get(id)
        .filter(|g| c.admin || g.project_id == c.project_id)
        .ok_or_else(|| SimError::not_found(format!("Instance group {id} could not be found.")))
}

pub fn group_show(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    match group_of(&w, &c, &id) {
        Ok(g) => ok(200, &json!({"server_group": group_json(g, mv)}), mv),
        Err(e) => err(e, mv),
    }
}

pub fn group_delete(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut w = s.world();
    if let Err(e) = group_of(&w, &c, &id) {
        return err(e, mv);
    }
    w.server_groups.remove(&id);
    with_mv(empty(204), mv)
}

// ---- instance actions ------------------------------------------------------------

/// The server whose actions are asked for: deleted ones too from 2.21.
fn action_server<'a>(w: &'a World, c: &Caller, id: &str, mv: (u32, u32)) -> Result<&'a Server, SimError> {
    w.servers
        .get(id)
        .filter(|sv| (ge(mv, 2, 21) || !sv.is_deleted()) && (c.admin || sv.project_id == c.project_id))
        .ok_or_else(|| SimError::not_found(format!("Instance {id} could not be found.")))
}

fn action_json(sv: &Server, a: &InstanceAction, mv: (u32, u32)) -> Value {
    let mut v = json!({
        "action": a.action, "instance_uuid": sv.id, "request_id": a.request_id, "user_id": a.user_id,
        "project_id": a.project_id, "start_time": format_naive_micros(&a.start_time), "message": a.message,
    });
    if ge(mv, 2, 58) {
        v.put("updated_at", json!(format_naive_micros(&a.updated_at)));
    }
    v
}

pub fn actions(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, RawQuery(q): RawQuery) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = query_pairs(q.as_deref());
    let w = s.world();
    let sv = match action_server(&w, &c, &id, mv) {
        Ok(sv) => sv,
        Err(e) => return err(e, mv),
    };
    let since = q_get(&q, "changes-since").filter(|_| ge(mv, 2, 58)).and_then(parse_timestamp);
    let mut list: Vec<&InstanceAction> = w
        .instance_actions
        .get(&id)
        .map(|l| l.iter().rev().filter(|a| since.is_none_or(|t| a.updated_at >= t)).collect())
        .unwrap_or_default();
    if let Some(m) = q_get(&q, "marker").filter(|_| ge(mv, 2, 58)) {
        match list.iter().position(|a| a.request_id == m) {
            Some(i) => list = list.split_off(i + 1),
            None => return err(SimError::bad(format!("Marker {m} could not be found.")), mv),
        }
    }
    if let Some(l) = q_get(&q, "limit").filter(|_| ge(mv, 2, 58)).and_then(|l| l.parse().ok()) {
        list.truncate(l);
    }
    let list: Vec<Value> = list.into_iter().map(|a| action_json(sv, a, mv)).collect();
    ok(200, &json!({ "instanceActions": list }), mv)
}

pub fn action_show(State(s): State<S>, h: HeaderMap, Path((id, rid)): Path<(String, String)>) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    let sv = match action_server(&w, &c, &id, mv) {
        Ok(sv) => sv,
        Err(e) => return err(e, mv),
    };
    let Some(a) = w.instance_actions.get(&id).and_then(|l| l.iter().rev().find(|a| a.request_id == rid)) else {
        return err(SimError::not_found(format!("Action {rid} not found")), mv);
    };
    let mut v = action_json(sv, a, mv);
    if c.admin || ge(mv, 2, 51) {
        let events: Vec<Value> = a
            .event
            .iter()
            .map(|e| {
                let mut ev = json!({
                    "event": e, "start_time": format_naive_micros(&a.start_time),
                    "finish_time": a.finish_time.map(|t| format_naive_micros(&t)), "result": a.result,
                });
                if c.admin {
                    ev.put("traceback", Value::Null);
                }
                if ge(mv, 2, 62) {
                    let placed = Server { host: a.host.clone(), ..sv.clone() };
                    ev.put("hostId", json!(host_id(&placed)));
                    if c.admin {
                        ev.put("host", json!(a.host));
                    }
                }
                if ge(mv, 2, 84) {
                    ev.put("details", Value::Null);
                }
                ev
            })
            .collect();
        v.put("events", json!(events));
    }
    ok(200, &json!({ "instanceAction": v }), mv)
}
