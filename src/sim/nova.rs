//! Simulated Nova (compute v2.1, microversions 2.1–2.100): servers with paging,
//! `changes-since` and tag filters, create/delete, actions (power, pause, suspend,
//! security groups), console output, tags, metadata, flavors, limits, quota sets
//! and services. The operator side (flavor and key pair management, zones,
//! hypervisors, usage, server groups, instance actions) is in `nova_ops`.

use super::http::*;
use super::nova_ops as ops;
use super::world::{found, Flavor, Server, ServerCreate, SimError, World};
use crate::domain::json::json;
use crate::domain::json::Obj;
use crate::domain::text;
use crate::domain::time::{format_naive_micros, format_z, parse_timestamp};
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const MIN_MV: (u32, u32) = (2, 1);
pub const MAX_MV: (u32, u32) = (2, 100);

pub fn router() -> Router<S> {
    let p = "/compute/v2.1";
    Router::new()
        .route("/compute", get(h1(versions)))
        .route("/compute/", get(h1(versions)))
        .route(p, get(h1(version)))
        .route(&format!("{p}/"), get(h1(version)))
        .route(&format!("{p}/servers"), get(h3(list_basic)).post(h4(create)))
        .route(&format!("{p}/servers/detail"), get(h3(list_detail)))
        .route(&format!("{p}/servers/{{id}}"), get(h3(show)).put(h4(update)).delete(h4(delete)))
        .route(&format!("{p}/servers/{{id}}/action"), post(h5(action)))
        .route(&format!("{p}/servers/{{id}}/tags"), get(h3(tags_get)).put(h4(tags_put)).delete(h3(tags_delete_all)))
        .route(&format!("{p}/servers/{{id}}/tags/{{tag}}"), get(h3(tag_get)).put(h3(tag_put)).delete(h3(tag_delete)))
        .route(&format!("{p}/servers/{{id}}/metadata"), get(h3(meta_get)).put(h4(meta_put)).post(h4(meta_post)))
        .route(
            &format!("{p}/servers/{{id}}/metadata/{{key}}"),
            get(h3(meta_item_get)).put(h4(meta_item_put)).delete(h3(meta_item_delete)),
        )
        .route(&format!("{p}/servers/{{id}}/os-volume_attachments"), get(h3(attachments_list)).post(h5(attach)))
        .route(&format!("{p}/servers/{{id}}/os-volume_attachments/{{vid}}"), axum::routing::delete(h4(detach)))
        .route(&format!("{p}/flavors"), get(h3(flavors_basic)).post(h3(ops::flavor_create)))
        .route(&format!("{p}/flavors/detail"), get(h3(flavors_detail)))
        .route(&format!("{p}/flavors/{{id}}"), get(h3(flavor_show)).delete(h3(ops::flavor_delete)))
        .route(&format!("{p}/flavors/{{id}}/os-extra_specs"), get(h3(flavor_specs)))
        .route(&format!("{p}/limits"), get(h2(limits)))
        .route(&format!("{p}/os-quota-sets/{{pid}}"), get(h3(quota_show)).put(h4(quota_update)))
        .route(&format!("{p}/os-quota-sets/{{pid}}/detail"), get(h3(quota_detail)))
        .route(&format!("{p}/os-quota-sets/{{pid}}/defaults"), get(h3(quota_defaults)))
        .route(&format!("{p}/os-services"), get(h3(services)))
        .route(&format!("{p}/os-keypairs"), get(h3(ops::keypairs)).post(h3(ops::keypair_create)))
        .route(&format!("{p}/os-keypairs/{{name}}"), get(h4(ops::keypair)).delete(h4(ops::keypair_delete)))
        .route(&format!("{p}/os-availability-zone"), get(h2(ops::azs)))
        .route(&format!("{p}/os-availability-zone/detail"), get(h2(ops::azs_detail)))
        .route(&format!("{p}/os-hypervisors"), get(h3(ops::hypervisors)))
        .route(&format!("{p}/os-hypervisors/detail"), get(h3(ops::hypervisors_detail)))
        .route(&format!("{p}/os-hypervisors/statistics"), get(h2(ops::hypervisor_stats)))
        .route(&format!("{p}/os-hypervisors/{{id}}"), get(h4(ops::hypervisor_show)))
        .route(&format!("{p}/os-aggregates"), get(h2(ops::aggregates)))
        .route(&format!("{p}/os-hosts"), get(h3(ops::hosts)))
        .route(&format!("{p}/os-simple-tenant-usage"), get(h3(ops::usage_list)))
        .route(&format!("{p}/os-simple-tenant-usage/{{pid}}"), get(h4(ops::usage_show)))
        .route(&format!("{p}/os-server-groups"), get(h3(ops::groups)).post(h3(ops::group_create)))
        .route(&format!("{p}/os-server-groups/{{id}}"), get(h3(ops::group_show)).delete(h3(ops::group_delete)))
        .route(&format!("{p}/servers/{{id}}/os-instance-actions"), get(h4(ops::actions)))
        .route(&format!("{p}/servers/{{id}}/os-instance-actions/{{rid}}"), get(h3(ops::action_show)))
}

fn version_doc(base: &str) -> Value {
    json!({
        "id": "v2.1", "status": "CURRENT", "version": format!("{}.{}", MAX_MV.0, MAX_MV.1),
        "min_version": format!("{}.{}", MIN_MV.0, MIN_MV.1), "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": format!("{base}/compute/v2.1/")}, {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}]
    })
}

fn versions(State(s): State<S>) -> Response {
    let base = s.base();
    json_response(
        200,
        &json!({"versions": [
            {"id": "v2.0", "status": "DEPRECATED", "version": "", "min_version": "", "updated": "2025-07-04T12:00:00Z", "links": [{"rel": "self", "href": format!("{base}/compute/v2/")}]},
            version_doc(&base)
        ]}),
    )
}

fn version(State(s): State<S>) -> Response {
    json_response(200, &json!({"version": version_doc(&s.base())}))
}

/// Authenticate and negotiate the microversion.
pub(super) fn ctx(s: &SimShared, h: &HeaderMap) -> Result<(Caller, (u32, u32)), Response> {
    let c = authenticate(s, h)?;
    let mv = microversion(h, "compute", Some("x-openstack-nova-api-version"), MIN_MV, MAX_MV)
        .map_err(|e| nova_error(e.status, &e.message))?;
    Ok((c, mv))
}

pub(super) fn with_mv(mut r: Response, mv: (u32, u32)) -> Response {
    let v = format!("{}.{}", mv.0, mv.1);
    if let Ok(h) = HeaderValue::from_str(&format!("compute {v}")) {
        r.headers_mut().insert("openstack-api-version", h);
    }
    if let Ok(h) = HeaderValue::from_str(&v) {
        r.headers_mut().insert("x-openstack-nova-api-version", h);
    }
    r.headers_mut().insert("vary", HeaderValue::from_static("OpenStack-API-Version, X-OpenStack-Nova-API-Version"));
    r
}

pub(super) fn err(e: SimError, mv: (u32, u32)) -> Response {
    with_mv(nova_error(e.status, &e.message), mv)
}

pub(super) fn ok(status: u16, v: &Value, mv: (u32, u32)) -> Response {
    with_mv(json_response(status, v), mv)
}

pub(super) fn ge(mv: (u32, u32), a: u32, b: u32) -> bool {
    mv >= (a, b)
}

pub(super) fn links(base: &str, kind: &str, id: &str) -> Value {
    json!([
        {"rel": "self", "href": format!("{base}/compute/v2.1/{kind}/{id}")},
        {"rel": "bookmark", "href": format!("{base}/compute/{kind}/{id}")}
    ])
}

pub(super) fn flavor_json(base: &str, f: &Flavor, mv: (u32, u32)) -> Value {
    let mut v = json!({
        "id": f.id, "name": f.name, "ram": f.ram, "disk": f.disk, "vcpus": f.vcpus,
        "OS-FLV-EXT-DATA:ephemeral": f.ephemeral, "os-flavor-access:is_public": f.is_public,
        "links": links(base, "flavors", &f.id)
    });
    v.put(
        "swap",
        if ge(mv, 2, 75) {
            json!(f.swap)
        } else if f.swap == 0 {
            json!("")
        } else {
            json!(f.swap)
        },
    );
    if !ge(mv, 2, 102) {
        v.put("rxtx_factor", json!(1.0));
        v.put("OS-FLV-DISABLED:disabled", json!(false));
    }
    if ge(mv, 2, 55) {
        v.put("description", json!(f.description));
    }
    if ge(mv, 2, 61) {
        v.put("extra_specs", json!(f.extra_specs));
    }
    v
}

pub(super) fn host_id(s: &Server) -> String {
    if s.host.is_empty() {
        return String::new();
    }
    use sha2::Digest;
    let d = sha2::Sha224::digest(format!("{}{}", s.project_id, s.host).as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A server as Nova renders it at a microversion.
pub fn server_json(w: &World, base: &str, s: &Server, mv: (u32, u32), admin: bool, show: bool) -> Value {
    let mut addresses: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for pid in &s.ports {
        if let Some(p) = w.ports.get(pid) {
            let net = w.networks.iter().find(|n| n.id == p.network_id).map(|n| n.name.clone()).unwrap_or_default();
            let e = addresses.entry(net).or_default();
            e.push(json!({"version": 4, "addr": p.ip, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": p.mac}));
            for f in w.floating_ips.values().filter(|f| f.port_id.as_deref() == Some(pid.as_str())) {
                e.push(json!({"version": 4, "addr": f.address, "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": p.mac}));
            }
        }
    }
    let flavor = w.flavor(&s.flavor_id);
    let flavor_v = if ge(mv, 2, 47) {
        match flavor {
            Some(f) => {
                let mut fv = json!({"vcpus": f.vcpus, "ram": f.ram, "disk": f.disk, "ephemeral": f.ephemeral, "swap": f.swap, "original_name": f.name});
                fv.put("extra_specs", json!(f.extra_specs));
                fv
            }
            None => json!({}),
        }
    } else {
        json!({"id": s.flavor_id, "links": [{"rel": "bookmark", "href": format!("{base}/compute/flavors/{}", s.flavor_id)}]})
    };
    let image_v = match &s.image_id {
        Some(i) => {
            let mut iv = json!({"id": i, "links": [{"rel": "bookmark", "href": format!("{base}/compute/images/{i}")}]});
            if ge(mv, 2, 98) {
                iv.put("properties", json!({}));
            }
            iv
        }
        None => json!(""),
    };
    let status = s.status();
    let mut v = json!({
        "id": s.id, "name": s.name, "status": status, "tenant_id": s.project_id, "user_id": s.user_id,
        "metadata": s.metadata, "hostId": host_id(s), "image": image_v, "flavor": flavor_v,
        "created": format_z(&s.created), "updated": format_z(&s.updated), "addresses": addresses,
        "accessIPv4": "", "accessIPv6": "", "links": links(base, "servers", &s.id),
        "OS-DCF:diskConfig": "MANUAL",
        "progress": 0,
        "OS-EXT-AZ:availability_zone": if s.host.is_empty() { "" } else { s.availability_zone.as_str() },
        "config_drive": if s.config_drive { "True" } else { "" },
        "key_name": s.key_name,
        "OS-SRV-USG:launched_at": s.launched_at.map(|t| format_naive_micros(&t)),
        "OS-SRV-USG:terminated_at": s.terminated_at.map(|t| format_naive_micros(&t)),
        "OS-EXT-STS:task_state": s.task_state, "OS-EXT-STS:vm_state": s.vm_state, "OS-EXT-STS:power_state": s.power_state,
        "os-extended-volumes:volumes_attached": s.volumes_attached.iter().map(|v| json!({"id": v, "delete_on_termination": false})).collect::<Vec<_>>(),
    });
    if !s.ports.is_empty() {
        v.put("security_groups", Value::Array(s.security_groups.iter().map(|g| json!({"name": g})).collect()));
    }
    if admin {
        v.put("OS-EXT-SRV-ATTR:host", json!(if s.host.is_empty() { None } else { Some(&s.host) }));
        v.put(
            "OS-EXT-SRV-ATTR:hypervisor_hostname",
            json!(if s.host.is_empty() { None } else { Some(format!("{}.sim", s.host)) }),
        );
        v.put("OS-EXT-SRV-ATTR:instance_name", json!(format!("instance-{}", text::prefix(&s.id, 8))));
        if ge(mv, 2, 3) {
            use base64::Engine as _;
            v.put("OS-EXT-SRV-ATTR:reservation_id", json!(format!("r-{}", text::prefix(&s.id, 8))));
            v.put("OS-EXT-SRV-ATTR:launch_index", json!(0));
            v.put("OS-EXT-SRV-ATTR:hostname", json!(s.name.to_lowercase().replace(['_', ' '], "-")));
            v.put("OS-EXT-SRV-ATTR:kernel_id", json!(""));
            v.put("OS-EXT-SRV-ATTR:ramdisk_id", json!(""));
            v.put("OS-EXT-SRV-ATTR:root_device_name", json!("/dev/vda"));
            v.put(
                "OS-EXT-SRV-ATTR:user_data",
                json!(s.user_data.as_ref().map(|u| base64::engine::general_purpose::STANDARD.encode(u))),
            );
        }
    }
    if ge(mv, 2, 9) {
        v.put("locked", json!(s.locked));
    }
    if ge(mv, 2, 16) && admin {
        v.put("host_status", json!(if s.host.is_empty() { "" } else { "UP" }));
    }
    if ge(mv, 2, 19) {
        v.put("description", json!(s.description));
    }
    if ge(mv, 2, 26) {
        v.put("tags", json!(s.tags));
    }
    if ge(mv, 2, 63) {
        v.put("trusted_image_certificates", Value::Null);
    }
    if ge(mv, 2, 71) && show {
        let groups: Vec<&str> =
            w.server_groups.values().filter(|g| g.members.contains(&s.id)).map(|g| g.id.as_str()).collect();
        v.put("server_groups", json!(groups));
    }
    if ge(mv, 2, 73) {
        v.put("locked_reason", Value::Null);
    }
    if ge(mv, 2, 90) {
        v.put("OS-EXT-SRV-ATTR:hostname", json!(s.name.to_lowercase().replace(['_', ' '], "-")));
    }
    if ge(mv, 2, 96) {
        v.put("pinned_availability_zone", Value::Null);
    }
    if ge(mv, 2, 100) {
        v.put("scheduler_hints", json!(s.scheduler_hints));
    }
    if let Some(f) = &s.fault {
        if matches!(status, "ERROR" | "DELETED") {
            let mut fv = json!({"code": f.code, "created": format_z(&f.created), "message": f.message});
            if admin || f.code != 500 {
                fv.put("details", json!("Traceback (most recent call last):\n  (simulated)"));
            }
            v.put("fault", fv);
        }
    }
    // A record broken on purpose (fault injection): the given fields replace the real ones.
    if let (Some(fields), Some(obj)) = (w.corrupt.get(&s.id), v.as_object_mut()) {
        for (k, x) in fields {
            obj.insert(k.clone(), x.clone());
        }
    }
    v
}

/// Nova's `name` filter is a regular expression (`re.search`). This matcher covers
/// the forms operators use: literals, `.`, `x*`, `.*`, `\\x`, `^` and `$`. It runs
/// as a set of pattern positions stepped once per character of the text: time
/// grows with pattern × text, never exponentially, and nothing recurses.
pub fn name_matches(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy)]
    struct Tok {
        any: bool,
        c: char,
        star: bool,
    }
    let mut p: &str = pattern;
    let anchored = p.starts_with('^');
    if anchored {
        p = p.get(1..).unwrap_or_default();
    }
    let mut toks: Vec<Tok> = Vec::new();
    let mut chars = p.chars().peekable();
    let mut end_anchor = false;
    while let Some(c) = chars.next() {
        let tok = match c {
            '\\' => Tok { any: false, c: chars.next().unwrap_or('\\'), star: false },
            '.' => Tok { any: true, c, star: false },
            '$' if chars.peek().is_none() => {
                end_anchor = true;
                break;
            }
            '*' if toks.last().is_some_and(|t| !t.star) => {
                if let Some(t) = toks.last_mut() {
                    t.star = true;
                }
                continue;
            }
            _ => Tok { any: false, c, star: false },
        };
        toks.push(tok);
    }
    let n = toks.len();
    // Add position `i` and what a starred token lets it skip to.
    let add = |set: &mut Vec<bool>, mut i: usize| {
        while let Some(slot) = set.get_mut(i) {
            if *slot {
                break;
            }
            *slot = true;
            match toks.get(i) {
                Some(t) if t.star => i += 1,
                _ => break,
            }
        }
    };
    let mut now = vec![false; n + 1];
    add(&mut now, 0);
    for ch in text.chars() {
        if !end_anchor && now.get(n).copied().unwrap_or(false) {
            return true;
        }
        let mut next = vec![false; n + 1];
        for (i, t) in toks.iter().enumerate() {
            if now.get(i).copied().unwrap_or(false) && (t.any || t.c == ch) {
                add(&mut next, if t.star { i } else { i + 1 });
            }
        }
        if !anchored {
            add(&mut next, 0);
        }
        now = next;
    }
    now.get(n).copied().unwrap_or(false)
}

const LIST_PARAMS: &[&str] = &[
    "limit",
    "marker",
    "sort_key",
    "sort_dir",
    "changes-since",
    "changes-before",
    "status",
    "name",
    "image",
    "flavor",
    "ip",
    "ip6",
    "reservation_id",
    "tags",
    "tags-any",
    "not-tags",
    "not-tags-any",
    "locked",
    "all_tenants",
    "project_id",
    "tenant_id",
    "host",
    "node",
    "deleted",
    "availability_zone",
    "key_name",
    "config_drive",
    "created_at",
    "launched_at",
    "terminated_at",
    "power_state",
    "task_state",
    "vm_state",
    "progress",
    "user_id",
    "description",
    "hostname",
    "pinned_availability_zone",
    "uuid",
    "display_name",
];

const STATUSES: &[&str] = &[
    "ACTIVE",
    "BUILD",
    "DELETED",
    "ERROR",
    "HARD_REBOOT",
    "MIGRATING",
    "PASSWORD",
    "PAUSED",
    "REBOOT",
    "REBUILD",
    "RESCUE",
    "RESIZE",
    "REVERT_RESIZE",
    "SHELVED",
    "SHELVED_OFFLOADED",
    "SHUTOFF",
    "SOFT_DELETED",
    "SUSPENDED",
    "UNKNOWN",
    "VERIFY_RESIZE",
];

fn list(s: &SimShared, h: &HeaderMap, raw_q: Option<&str>, detail: bool) -> Response {
    let (c, mv) = match ctx(s, h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = query_pairs(raw_q);
    if ge(mv, 2, 75) {
        if let Some((k, v)) = q.iter().find(|(k, _)| !LIST_PARAMS.contains(&k.as_str())) {
            return err(SimError::bad(format!("Invalid input for query parameters {k}. Value: {v}. Additional properties are not allowed ('{k}' was unexpected)")), mv);
        }
    }
    let w = s.world();
    let max_limit = w.settings.max_limit;
    let limit = match q_get(&q, "limit") {
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n >= 0 => (n as usize).min(max_limit),
            _ => return err(SimError::bad("limit param must be positive"), mv),
        },
        None => max_limit,
    };
    let since = match q_get(&q, "changes-since") {
        Some(t) => match parse_timestamp(t) {
            Some(t) => Some(t),
            None => {
                return err(
                    SimError::bad(format!(
                        "Invalid input for query parameters changes-since. Value: {t}. '{t}' is not a 'date-time'"
                    )),
                    mv,
                )
            }
        },
        None => None,
    };
    let before = q_get(&q, "changes-before").and_then(parse_timestamp);
    let status = q_get(&q, "status").map(|x| x.to_ascii_uppercase());
    if let Some(st) = &status {
        if ge(mv, 2, 38) && !STATUSES.contains(&st.as_str()) {
            return err(SimError::bad("Invalid status value"), mv);
        }
    }
    // A server name is at most 255 characters; so is a pattern worth matching.
    for k in ["name", "ip", "ip6"] {
        if q_get(&q, k).is_some_and(|v| v.chars().count() > 255) {
            return err(SimError::bad(format!("Invalid input for query parameters {k}.")), mv);
        }
    }
    let split = |k: &str| -> Vec<String> {
        q_get(&q, k)
            .map(|v| v.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
            .unwrap_or_default()
    };
    let (tags, tags_any, not_tags, not_tags_any) =
        (split("tags"), split("tags-any"), split("not-tags"), split("not-tags-any"));
    let all_tenants = c.admin && q_get(&q, "all_tenants").is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"));
    let project_filter =
        if c.admin { q_get(&q, "project_id").or(q_get(&q, "tenant_id")).map(String::from) } else { None };
    let deleted_only = q_get(&q, "deleted").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut items: Vec<&Server> = w
        .servers
        .values()
        .filter(|sv| match &project_filter {
            Some(p) => &sv.project_id == p,
            None => all_tenants || sv.project_id == c.project_id,
        })
        .filter(|sv| {
            if deleted_only {
                return sv.is_deleted();
            }
            if sv.is_deleted() {
                // Deleted servers show only to changes-since queries.
                return since.is_some() && status.as_deref().is_none_or(|x| x == "DELETED");
            }
            true
        })
        .filter(|sv| since.is_none_or(|t| sv.updated >= t))
        .filter(|sv| before.is_none_or(|t| sv.updated <= t))
        .filter(|sv| status.as_deref().is_none_or(|st| sv.status() == st))
        .filter(|sv| q_get(&q, "name").is_none_or(|n| name_matches(n, &sv.name)))
        .filter(|sv| q_get(&q, "flavor").is_none_or(|f| sv.flavor_id == f))
        .filter(|sv| q_get(&q, "image").is_none_or(|i| sv.image_id.as_deref() == Some(i)))
        .filter(|sv| q_get(&q, "key_name").is_none_or(|k| sv.key_name.as_deref() == Some(k)))
        .filter(|sv| q_get(&q, "availability_zone").is_none_or(|a| sv.availability_zone == a))
        .filter(|sv| q_get(&q, "locked").is_none_or(|l| sv.locked == l.eq_ignore_ascii_case("true")))
        .filter(|sv| {
            q_get(&q, "ip")
                .is_none_or(|ip| sv.ports.iter().filter_map(|p| w.ports.get(p)).any(|p| name_matches(ip, &p.ip)))
        })
        .filter(|sv| tags.iter().all(|t| sv.tags.contains(t)))
        .filter(|sv| tags_any.is_empty() || tags_any.iter().any(|t| sv.tags.contains(t)))
        .filter(|sv| not_tags.is_empty() || !not_tags.iter().all(|t| sv.tags.contains(t)))
        .filter(|sv| !not_tags_any.iter().any(|t| sv.tags.contains(t)))
        .collect();
    let sort_key = q_get(&q, "sort_key").unwrap_or("created_at");
    let desc = q_get(&q, "sort_dir").is_none_or(|d| !d.eq_ignore_ascii_case("asc"));
    crate::domain::sort::sort_by(&mut items, |a, b| {
        let o = match sort_key {
            "display_name" | "name" => a.name.cmp(&b.name),
            "updated_at" => a.updated.cmp(&b.updated),
            "uuid" | "id" => a.id.cmp(&b.id),
            _ => a.created.cmp(&b.created),
        }
        .then_with(|| a.id.cmp(&b.id));
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    let start = match q_get(&q, "marker") {
        Some(m) => match items.iter().position(|x| x.id == m) {
            Some(i) => i + 1,
            None => return err(SimError::bad(format!("marker [{m}] not found")), mv),
        },
        None => 0,
    };
    let page: Vec<&Server> = items.into_iter().skip(start).take(limit).collect();
    let base = s.base();
    let rendered: Vec<Value> = page
        .iter()
        .map(|sv| {
            if detail {
                server_json(&w, &base, sv, mv, c.admin, false)
            } else {
                json!({"id": sv.id, "name": sv.name, "links": links(&base, "servers", &sv.id)})
            }
        })
        .collect();
    let mut body = json!({"servers": rendered});
    if limit > 0 && page.len() == limit {
        if let Some(last) = page.last() {
            let mut qs: Vec<(String, String)> =
                q.iter().filter(|(k, _)| k != "marker" && k != "limit").cloned().collect();
            qs.push(("limit".into(), limit.to_string()));
            qs.push(("marker".into(), last.id.clone()));
            let enc: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(qs).finish();
            let path = if detail { "servers/detail" } else { "servers" };
            body.put("servers_links", json!([{"href": format!("{base}/compute/v2.1/{path}?{enc}"), "rel": "next"}]));
        }
    }
    ok(200, &body, mv)
}

fn list_basic(State(s): State<S>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    list(&s, &h, q.as_deref(), false)
}

fn list_detail(State(s): State<S>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    list(&s, &h, q.as_deref(), true)
}

pub(super) fn owned<'a>(w: &'a World, c: &Caller, id: &str) -> Result<&'a Server, SimError> {
    w.servers
        .get(id)
        .filter(|sv| !sv.is_deleted() && (c.admin || sv.project_id == c.project_id))
        .ok_or_else(|| SimError::not_found(format!("Instance {id} could not be found.")))
}

fn show(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    match owned(&w, &c, &id) {
        Ok(sv) => ok(200, &json!({"server": server_json(&w, &s.base(), sv, mv, c.admin, true)}), mv),
        Err(e) => err(e, mv),
    }
}

fn check_tag(t: &str) -> Result<(), SimError> {
    if t.is_empty() || t.chars().count() > 60 || t.contains('/') || t.contains(',') {
        return Err(SimError::bad(format!(
            "Invalid input for field/attribute tags. Value: {t}. Tags must be 1-60 characters without '/' or ','"
        )));
    }
    Ok(())
}

const CREATE_KEYS: &[&str] = &[
    "name",
    "imageRef",
    "flavorRef",
    "networks",
    "key_name",
    "user_data",
    "metadata",
    "tags",
    "security_groups",
    "availability_zone",
    "block_device_mapping_v2",
    "block_device_mapping",
    "config_drive",
    "description",
    "min_count",
    "max_count",
    "return_reservation_id",
    "accessIPv4",
    "accessIPv6",
    "adminPass",
    "OS-DCF:diskConfig",
    "hostname",
    "personality",
    "trusted_image_certificates",
    "host",
    "hypervisor_hostname",
];

fn int_of(v: &Value) -> Option<u32> {
    v.as_u64().map(|n| n as u32).or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Parse a `POST /servers` body (accepts every documented request shape).
pub fn parse_create(body: &Value, mv: (u32, u32)) -> Result<(ServerCreate, bool), SimError> {
    let Some(sv) = body.get("server").and_then(Value::as_object) else {
        return Err(SimError::bad("Invalid input for field/attribute server. 'server' is a required property"));
    };
    for k in sv.keys() {
        let since = match k.as_str() {
            "tags" => ge(mv, 2, 52),
            "description" => ge(mv, 2, 19),
            "hostname" => ge(mv, 2, 90),
            "personality" => !ge(mv, 2, 57),
            _ => true,
        };
        let allowed = since && CREATE_KEYS.contains(&k.as_str());
        if !allowed {
            return Err(SimError::bad(format!("Invalid input for field/attribute server. Value: (elided). Additional properties are not allowed ('{k}' was unexpected)")));
        }
    }
    let name = sv.get("name").and_then(Value::as_str).unwrap_or("").trim().to_string();
    if name.is_empty() || name.len() > 255 {
        return Err(SimError::bad("Invalid input for field/attribute name. Value: . '' is too short"));
    }
    let flavor_ref = match sv.get("flavorRef") {
        Some(Value::String(f)) if !f.is_empty() => f.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(SimError::bad(
                "Invalid input for field/attribute server. Value: (elided). 'flavorRef' is a required property",
            ))
        }
    };
    let mut c = ServerCreate {
        name,
        flavor_ref,
        min_count: sv.get("min_count").and_then(int_of).unwrap_or(1),
        ..Default::default()
    };
    c.image_ref = sv.get("imageRef").and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
    match sv.get("networks") {
        None if ge(mv, 2, 37) => {
            return Err(SimError::bad(
                "Invalid input for field/attribute server. Value: (elided). 'networks' is a required property",
            ));
        }
        None => c.auto_network = true,
        Some(Value::String(s)) if s == "auto" => c.auto_network = true,
        Some(Value::String(s)) if s == "none" => {}
        Some(Value::Array(a)) => {
            for n in a {
                if let Some(p) = n.get("port").and_then(Value::as_str) {
                    c.networks.push(format!("port:{p}"));
                } else if let Some(u) = n.get("uuid").and_then(Value::as_str) {
                    c.networks.push(u.to_string());
                } else {
                    return Err(SimError::bad("Bad networks format: network uuid is not in proper format"));
                }
            }
        }
        Some(_) => return Err(SimError::bad("Invalid input for field/attribute networks.")),
    }
    if let Some(Value::Array(bdms)) = sv.get("block_device_mapping_v2") {
        for b in bdms {
            let boot = b.get("boot_index").and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
                == Some(0);
            if boot && b.get("destination_type").and_then(Value::as_str) == Some("volume") {
                c.boot_volume_gb = Some(b.get("volume_size").and_then(int_of).unwrap_or(1) as u64);
                if b.get("source_type").and_then(Value::as_str) == Some("image") {
                    c.image_ref = b.get("uuid").and_then(Value::as_str).map(String::from).or(c.image_ref);
                }
            }
        }
    }
    c.key_name = sv.get("key_name").and_then(Value::as_str).map(String::from);
    if let Some(ud) = sv.get("user_data") {
        let s = ud.as_str().ok_or_else(|| {
            SimError::bad("Invalid input for field/attribute user_data. Value: None. None is not of type 'string'")
        })?;
        if s.len() > 65535 {
            return Err(SimError::bad("Invalid input for field/attribute user_data. Value: (elided). is too long"));
        }
        c.user_data = Some(decode_user_data(s)?);
    }
    if let Some(m) = sv.get("metadata") {
        let Some(m) = m.as_object() else {
            return Err(SimError::bad(
                "Invalid input for field/attribute metadata. Value: (elided). is not of type 'object'",
            ));
        };
        for (k, v) in m {
            let Some(v) = v.as_str() else {
                return Err(SimError::bad(format!(
                    "Invalid input for field/attribute metadata. Value: {v}. {v} is not of type 'string'"
                )));
            };
            if k.is_empty() || k.len() > 255 || v.len() > 255 {
                return Err(SimError::bad(
                    "Invalid input for field/attribute metadata. Keys and values must be 1-255 characters",
                ));
            }
            c.metadata.insert(k.clone(), v.to_string());
        }
    }
    if let Some(t) = sv.get("tags") {
        let tags = t.as_array().ok_or_else(|| SimError::bad("Invalid input for field/attribute tags."))?;
        if tags.len() > 50 {
            return Err(SimError::bad("Invalid input for field/attribute tags. Value: (elided). is too long"));
        }
        for t in tags {
            let t = t.as_str().ok_or_else(|| SimError::bad("Invalid input for field/attribute tags."))?;
            check_tag(t)?;
            if !c.tags.iter().any(|x| x == t) {
                c.tags.push(t.to_string());
            }
        }
    }
    if let Some(Value::Array(sgs)) = sv.get("security_groups") {
        for g in sgs {
            if let Some(n) = g.get("name").and_then(Value::as_str) {
                c.security_groups.push(n.to_string());
            }
        }
    }
    c.availability_zone =
        sv.get("availability_zone").and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
    c.description = sv.get("description").and_then(Value::as_str).map(String::from);
    let rri = sv
        .get("return_reservation_id")
        .is_some_and(|v| v.as_bool().unwrap_or(false) || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true")));
    Ok((c, rri))
}

/// The request id the middleware gave this request.
pub(super) fn rid_of(r: Option<Extension<RequestId>>) -> String {
    r.map(|Extension(RequestId(x))| x).unwrap_or_else(|| format!("req-{}", uuid::Uuid::new_v4()))
}

fn create(State(s): State<S>, h: HeaderMap, rid: Option<Extension<RequestId>>, body: Bytes) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    // Every authenticated attempt, refused or not (retry storms show here).
    s.world().stats.create_requests += 1;
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return err(e, mv),
    };
    let (req, rri) = match parse_create(&body, mv) {
        Ok(x) => x,
        Err(e) => return err(e, mv),
    };
    let sgs = req.security_groups.clone();
    let group = body.pointer("/os:scheduler_hints/group").and_then(Value::as_str).map(String::from);
    let hints = body.get("os:scheduler_hints").and_then(Value::as_object).cloned().unwrap_or_default();
    let now = s.now();
    let mut w = s.world();
    if let Some(g) = &group {
        let visible = w.server_groups.get(g).is_some_and(|x| c.admin || x.project_id == c.project_id);
        if !visible {
            return err(
                SimError::bad(format!(
                    "Invalid input for field/attribute group. Value: {g}. Instance group {g} could not be found."
                )),
                mv,
            );
        }
    }
    let ids = match w.create_servers(req, &c.project_id, &c.user_id, now) {
        Ok(ids) => ids,
        Err(e) => return err(e, mv),
    };
    let rid = rid_of(rid);
    for id in &ids {
        w.record_action(id, "create", &rid, &c.user_id, now);
        if let Some(sv) = w.servers.get_mut(id) {
            sv.scheduler_hints = hints.clone();
        }
        if let Some(g) = group.as_ref().and_then(|g| w.server_groups.get_mut(g)) {
            g.members.push(id.clone());
        }
    }
    if rri {
        return ok(202, &json!({"reservation_id": format!("r-{}", random_hex(8))}), mv);
    }
    let Some(id) = ids.first().cloned() else {
        return err(SimError::new(500, "No server was created."), mv);
    };
    let base = s.base();
    let groups: Vec<Value> = if sgs.is_empty() {
        vec![json!({"name": "default"})]
    } else {
        sgs.iter().map(|g| json!({"name": g})).collect()
    };
    let pass = random_hex(12);
    let mut r = ok(
        202,
        &json!({"server": {"id": id, "links": links(&base, "servers", &id), "OS-DCF:diskConfig": "MANUAL", "security_groups": groups, "adminPass": pass}}),
        mv,
    );
    if let Ok(v) = HeaderValue::from_str(&format!("{base}/compute/v2.1/servers/{id}")) {
        r.headers_mut().insert("location", v);
    }
    r
}

fn update(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return err(e, mv),
    };
    let now = s.now();
    let mut w = s.world();
    if let Err(e) = owned(&w, &c, &id) {
        return err(e, mv);
    }
    if let Some(sv) = w.servers.get_mut(&id) {
        if let Some(n) = body.pointer("/server/name").and_then(Value::as_str) {
            sv.name = n.to_string();
        }
        if let Some(d) = body.pointer("/server/description") {
            sv.description = d.as_str().map(String::from);
        }
        sv.updated = now;
    }
    match found(&w.servers, &id) {
        Ok(sv) => ok(200, &json!({"server": server_json(&w, &s.base(), sv, mv, c.admin, true)}), mv),
        Err(e) => err(e, mv),
    }
}

fn delete(State(s): State<S>, h: HeaderMap, rid: Option<Extension<RequestId>>, Path(id): Path<String>) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = s.now();
    let mut w = s.world();
    let proj = if c.admin { None } else { Some(c.project_id.as_str()) };
    let deleting = w.servers.get(&id).is_some_and(|sv| sv.task_state.as_deref() == Some("deleting"));
    match w.delete_server(&id, proj, now) {
        Ok(()) => {
            if !deleting {
                w.record_action(&id, "delete", &rid_of(rid), &c.user_id, now);
            }
            with_mv(empty(204), mv)
        }
        Err(e) => err(e, mv),
    }
}

fn action(
    State(s): State<S>,
    h: HeaderMap,
    rid: Option<Extension<RequestId>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return err(e, mv),
    };
    let Some((name, arg)) = body.as_object().and_then(|o| o.iter().next()).map(|(k, v)| (k.clone(), v.clone())) else {
        return err(SimError::bad("Malformed request body"), mv);
    };
    let now = s.now();
    let mut w = s.world();
    let sv = match owned(&w, &c, &id) {
        Ok(sv) => sv,
        Err(e) => return err(e, mv),
    };
    match name.as_str() {
        "os-getConsoleOutput" => {
            if sv.vm_state == "building" {
                return err(
                    SimError::conflict(format!(
                        "Cannot 'get_console_output' instance {id} while it is in vm_state building"
                    )),
                    mv,
                );
            }
            let n = match arg.get("length") {
                None | Some(Value::Null) => None,
                Some(v) => match v.as_i64().or_else(|| v.as_str().and_then(|x| x.parse().ok())) {
                    Some(n) if n >= -1 => (n >= 0).then_some(n as usize),
                    _ => return err(SimError::bad("Invalid input for field/attribute length."), mv),
                },
            };
            let lines: Vec<&str> = sv.console.iter().map(String::as_str).collect();
            let skip = n.map_or(0, |n| lines.len().saturating_sub(n));
            let mut out = lines.get(skip..).unwrap_or_default().join("\n");
            if !out.is_empty() {
                out.push('\n');
            }
            ok(200, &json!({"output": out}), mv)
        }
        "lock" | "unlock" => {
            if let Some(sv) = w.servers.get_mut(&id) {
                sv.locked = name == "lock";
                sv.updated = now;
            }
            w.record_action(&id, &name, &rid_of(rid), &c.user_id, now);
            with_mv(empty(202), mv)
        }
        "addSecurityGroup" | "removeSecurityGroup" => {
            let Some(group) = arg.get("name").and_then(Value::as_str) else {
                return err(
                    SimError::bad(format!(
                        "Invalid input for field/attribute {name}. Value: {arg}. 'name' is a required property"
                    )),
                    mv,
                );
            };
            match w.server_security_group(&id, group, name == "addSecurityGroup", now) {
                Ok(()) => with_mv(empty(202), mv),
                Err(e) => err(e, mv),
            }
        }
        "os-start" | "os-stop" | "reboot" | "rebuild" | "pause" | "unpause" | "suspend" | "resume" => match w
            .server_action(&id, &name, &arg, now)
            .map(|()| w.record_action(&id, name.trim_start_matches("os-"), &rid_of(rid), &c.user_id, now))
        {
            Ok(()) if name == "rebuild" => match found(&w.servers, &id) {
                Ok(sv) => {
                    let mut v = server_json(&w, &s.base(), sv, mv, c.admin, true);
                    v.put("adminPass", json!(random_hex(12)));
                    ok(202, &json!({"server": v}), mv)
                }
                Err(e) => err(e, mv),
            },
            Ok(()) => with_mv(empty(202), mv),
            Err(e) => err(e, mv),
        },
        other => err(SimError::bad(format!("There is no such action: {other}")), mv),
    }
}

fn server_mut_check(
    s: &SimShared,
    h: &HeaderMap,
    id: &str,
    need: (u32, u32),
) -> Result<(Caller, (u32, u32)), Response> {
    let (c, mv) = ctx(s, h)?;
    if mv < need {
        return Err(err(SimError::not_found("The resource could not be found."), mv));
    }
    let w = s.world();
    owned(&w, &c, id).map_err(|e| err(e, mv))?;
    Ok((c, mv))
}

fn tags_get(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let (_, mv) = match server_mut_check(&s, &h, &id, (2, 26)) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    match found(&w.servers, &id) {
        Ok(sv) => ok(200, &json!({"tags": sv.tags}), mv),
        Err(e) => err(e, mv),
    }
}

fn tags_put(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let (_, mv) = match server_mut_check(&s, &h, &id, (2, 26)) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return err(e, mv),
    };
    let Some(tags) = body.get("tags").and_then(Value::as_array) else {
        return err(SimError::bad("Invalid input for field/attribute tags."), mv);
    };
    let mut new = Vec::new();
    for t in tags {
        let Some(t) = t.as_str() else { return err(SimError::bad("Invalid input for field/attribute tags."), mv) };
        if let Err(e) = check_tag(t) {
            return err(e, mv);
        }
        if !new.iter().any(|x: &String| x == t) {
            new.push(t.to_string());
        }
    }
    if new.len() > 50 {
        return err(SimError::bad("The number of tags exceeded the per-server limit 50"), mv);
    }
    let now = s.now();
    let mut w = s.world();
    if let Some(sv) = w.servers.get_mut(&id) {
        sv.tags = new.clone();
        sv.updated = now;
    }
    ok(200, &json!({"tags": new}), mv)
}

fn tags_delete_all(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let (_, mv) = match server_mut_check(&s, &h, &id, (2, 26)) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = s.now();
    let mut w = s.world();
    if let Some(sv) = w.servers.get_mut(&id) {
        sv.tags.clear();
        sv.updated = now;
    }
    with_mv(empty(204), mv)
}

fn tag_get(State(s): State<S>, h: HeaderMap, Path((id, tag)): Path<(String, String)>) -> Response {
    let (_, mv) = match server_mut_check(&s, &h, &id, (2, 26)) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    if w.servers.get(&id).is_some_and(|sv| sv.tags.contains(&tag)) {
        with_mv(empty(204), mv)
    } else {
        err(SimError::not_found(format!("Tag '{tag}' could not be found for instance {id}.")), mv)
    }
}

fn tag_put(State(s): State<S>, h: HeaderMap, Path((id, tag)): Path<(String, String)>) -> Response {
    let (_, mv) = match server_mut_check(&s, &h, &id, (2, 26)) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = check_tag(&tag) {
        return err(e, mv);
    }
    let now = s.now();
    let mut w = s.world();
    let Some(sv) = w.servers.get_mut(&id) else { return err(SimError::not_found("gone"), mv) };
    if sv.tags.contains(&tag) {
        return with_mv(empty(204), mv);
    }
    if sv.tags.len() >= 50 {
        return err(SimError::bad("The number of tags exceeded the per-server limit 50"), mv);
    }
    sv.tags.push(tag.clone());
    sv.updated = now;
    let mut r = with_mv(empty(201), mv);
    if let Ok(v) = HeaderValue::from_str(&format!("{}/compute/v2.1/servers/{id}/tags/{tag}", s.base())) {
        r.headers_mut().insert("location", v);
    }
    r
}

fn tag_delete(State(s): State<S>, h: HeaderMap, Path((id, tag)): Path<(String, String)>) -> Response {
    let (_, mv) = match server_mut_check(&s, &h, &id, (2, 26)) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = s.now();
    let mut w = s.world();
    let Some(sv) = w.servers.get_mut(&id) else { return err(SimError::not_found("gone"), mv) };
    if !sv.tags.contains(&tag) {
        return err(SimError::not_found(format!("Tag '{tag}' could not be found for instance {id}.")), mv);
    }
    sv.tags.retain(|t| t != &tag);
    sv.updated = now;
    with_mv(empty(204), mv)
}

fn meta_map(v: &Value, key: &str) -> Result<BTreeMap<String, String>, SimError> {
    let o = v
        .get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| SimError::bad(format!("Invalid input for field/attribute {key}.")))?;
    let mut m = BTreeMap::new();
    for (k, v) in o {
        let s = v.as_str().ok_or_else(|| {
            SimError::bad(format!("Invalid input for field/attribute {key}. Value: {v}. {v} is not of type 'string'"))
        })?;
        if k.is_empty() || k.len() > 255 || s.len() > 255 {
            return Err(SimError::bad(
                "Invalid input for field/attribute metadata. Keys and values must be 1-255 characters",
            ));
        }
        m.insert(k.clone(), s.to_string());
    }
    Ok(m)
}

fn meta_get(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let (_, mv) = match server_mut_check(&s, &h, &id, (2, 1)) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    match found(&w.servers, &id) {
        Ok(sv) => ok(200, &json!({"metadata": sv.metadata}), mv),
        Err(e) => err(e, mv),
    }
}

/// Nova changes metadata only of servers at rest (`check_instance_state` on
/// active, paused, suspended or stopped with no task): 409 otherwise.
fn metadata_writable(w: &super::world::World, id: &str, what: &str) -> Result<(), SimError> {
    let Some(sv) = w.servers.get(id) else { return Ok(()) };
    if !["active", "paused", "suspended", "stopped"].contains(&sv.vm_state.as_str()) {
        return Err(SimError::conflict(format!(
            "Cannot '{what}' instance {id} while it is in vm_state {}",
            sv.vm_state
        )));
    }
    if let Some(t) = &sv.task_state {
        return Err(SimError::conflict(format!("Cannot '{what}' instance {id} while it is in task_state {t}")));
    }
    Ok(())
}

fn meta_write(s: &SimShared, h: &HeaderMap, id: &str, body: &Bytes, replace: bool) -> Response {
    let (c, mv) = match server_mut_check(s, h, id, (2, 1)) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let m = match parse_body(body).and_then(|b| meta_map(&b, "metadata")) {
        Ok(m) => m,
        Err(e) => return err(e, mv),
    };
    let now = s.now();
    let mut w = s.world();
    let limit = w.quota(&c.project_id).metadata_items;
    if let Err(e) = metadata_writable(&w, id, "update metadata") {
        return err(e, mv);
    }
    let Some(sv) = w.servers.get_mut(id) else { return err(SimError::not_found("gone"), mv) };
    let mut new = if replace { BTreeMap::new() } else { sv.metadata.clone() };
    new.extend(m);
    if new.len() as i64 > limit {
        return err(
            SimError::new(
                403,
                format!(
                    "Quota exceeded for metadata_items: Requested {}, but already used 0 of {limit} metadata_items",
                    new.len()
                ),
            ),
            mv,
        );
    }
    sv.metadata = new.clone();
    sv.updated = now;
    ok(200, &json!({"metadata": new}), mv)
}

fn meta_put(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    meta_write(&s, &h, &id, &body, true)
}

fn meta_post(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    meta_write(&s, &h, &id, &body, false)
}

fn meta_item_get(State(s): State<S>, h: HeaderMap, Path((id, key)): Path<(String, String)>) -> Response {
    let (_, mv) = match server_mut_check(&s, &h, &id, (2, 1)) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    match w.servers.get(&id).and_then(|sv| sv.metadata.get(&key)) {
        Some(v) => ok(200, &json!({"meta": {key: v}}), mv),
        None => err(SimError::not_found("Metadata item was not found"), mv),
    }
}

fn meta_item_put(State(s): State<S>, h: HeaderMap, Path((id, key)): Path<(String, String)>, body: Bytes) -> Response {
    let (_, mv) = match server_mut_check(&s, &h, &id, (2, 1)) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let m = match parse_body(&body).and_then(|b| meta_map(&b, "meta")) {
        Ok(m) => m,
        Err(e) => return err(e, mv),
    };
    if m.len() != 1 || !m.contains_key(&key) {
        return err(SimError::bad("Request body and URI mismatch"), mv);
    }
    let now = s.now();
    let mut w = s.world();
    if let Err(e) = metadata_writable(&w, &id, "update metadata") {
        return err(e, mv);
    }
    if let Some(sv) = w.servers.get_mut(&id) {
        sv.metadata.extend(m.clone());
        sv.updated = now;
    }
    ok(200, &json!({"meta": m}), mv)
}

fn meta_item_delete(State(s): State<S>, h: HeaderMap, Path((id, key)): Path<(String, String)>) -> Response {
    let (_, mv) = match server_mut_check(&s, &h, &id, (2, 1)) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = s.now();
    let mut w = s.world();
    if let Err(e) = metadata_writable(&w, &id, "delete metadata") {
        return err(e, mv);
    }
    let Some(sv) = w.servers.get_mut(&id) else { return err(SimError::not_found("gone"), mv) };
    if sv.metadata.remove(&key).is_none() {
        return err(SimError::not_found("Metadata item was not found"), mv);
    }
    sv.updated = now;
    with_mv(empty(204), mv)
}

fn flavors(s: &SimShared, h: &HeaderMap, raw_q: Option<&str>, detail: bool) -> Response {
    let (_, mv) = match ctx(s, h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = query_pairs(raw_q);
    let w = s.world();
    let min_disk: u64 = q_get(&q, "minDisk").and_then(|v| v.parse().ok()).unwrap_or(0);
    let min_ram: u64 = q_get(&q, "minRam").and_then(|v| v.parse().ok()).unwrap_or(0);
    let public = q_get(&q, "is_public").map(|v| v.to_ascii_lowercase());
    let mut fl: Vec<&Flavor> = w
        .flavors
        .iter()
        .filter(|f| !f.deleted && f.disk >= min_disk && f.ram >= min_ram)
        .filter(|f| match public.as_deref() {
            Some("none") => true,
            Some("false") => !f.is_public,
            _ => f.is_public,
        })
        .filter(|f| q_get(&q, "name").is_none_or(|n| f.name == n))
        .collect();
    crate::domain::sort::sort_by(&mut fl, |a, b| a.id.cmp(&b.id));
    let start = match q_get(&q, "marker") {
        Some(m) => match fl.iter().position(|f| f.id == m) {
            Some(i) => i + 1,
            None => return err(SimError::bad(format!("marker [{m}] not found")), mv),
        },
        None => 0,
    };
    let limit: usize =
        q_get(&q, "limit").and_then(|v| v.parse().ok()).unwrap_or(w.settings.max_limit).min(w.settings.max_limit);
    let page: Vec<&Flavor> = fl.into_iter().skip(start).take(limit).collect();
    let base = s.base();
    let items: Vec<Value> = page
        .iter()
        .map(|f| {
            if detail {
                flavor_json(&base, f, mv)
            } else {
                let mut v = json!({"id": f.id, "name": f.name, "links": links(&base, "flavors", &f.id)});
                if ge(mv, 2, 55) {
                    v.put("description", json!(f.description));
                }
                v
            }
        })
        .collect();
    let mut body = json!({"flavors": items});
    if page.len() == limit && limit > 0 {
        if let Some(last) = page.last() {
            body.put("flavors_links", json!([{"rel": "next", "href": format!("{base}/compute/v2.1/flavors{}?limit={limit}&marker={}", if detail { "/detail" } else { "" }, last.id)}]));
        }
    }
    ok(200, &body, mv)
}

fn flavors_basic(State(s): State<S>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    flavors(&s, &h, q.as_deref(), false)
}

fn flavors_detail(State(s): State<S>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    flavors(&s, &h, q.as_deref(), true)
}

fn flavor_show(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let (_, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    match w.flavors.iter().find(|f| f.id == id && !f.deleted) {
        Some(f) => ok(200, &json!({"flavor": flavor_json(&s.base(), f, mv)}), mv),
        None => err(SimError::not_found(format!("Flavor {id} could not be found.")), mv),
    }
}

fn flavor_specs(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let (_, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    match w.flavors.iter().find(|f| f.id == id && !f.deleted) {
        Some(f) => ok(200, &json!({"extra_specs": f.extra_specs}), mv),
        None => err(SimError::not_found(format!("Flavor {id} could not be found.")), mv),
    }
}

fn limits(State(s): State<S>, h: HeaderMap) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    let q = w.quota(&c.project_id);
    let (inst, cores, ram) = w.compute_usage(&c.project_id);
    let mut a = Map::new();
    for (k, v) in [
        ("maxServerMeta", q.metadata_items),
        ("maxTotalInstances", q.instances),
        ("maxTotalCores", q.cores),
        ("maxTotalRAMSize", q.ram),
        ("maxTotalKeypairs", q.key_pairs),
        ("maxServerGroups", q.server_groups),
        ("maxServerGroupMembers", q.server_group_members),
        ("totalInstancesUsed", inst),
        ("totalCoresUsed", cores),
        ("totalRAMUsed", ram),
        ("totalServerGroupsUsed", w.server_groups.values().filter(|g| g.project_id == c.project_id).count() as i64),
    ] {
        a.insert(k.into(), json!(v));
    }
    if !ge(mv, 2, 36) {
        for (k, v) in [
            ("maxTotalFloatingIps", -1),
            ("maxSecurityGroups", -1),
            ("maxSecurityGroupRules", -1),
            ("totalFloatingIpsUsed", 0),
            ("totalSecurityGroupsUsed", 0),
        ] {
            a.insert(k.into(), json!(v));
        }
    }
    if !ge(mv, 2, 39) {
        a.insert("maxImageMeta".into(), json!(128));
    }
    if !ge(mv, 2, 57) {
        a.insert("maxPersonality".into(), json!(5));
        a.insert("maxPersonalitySize".into(), json!(10240));
    }
    ok(200, &json!({"limits": {"absolute": a, "rate": []}}), mv)
}

fn quota_keys(mv: (u32, u32)) -> Vec<&'static str> {
    let mut k =
        vec!["instances", "cores", "ram", "key_pairs", "metadata_items", "server_groups", "server_group_members"];
    if !ge(mv, 2, 57) {
        k.extend(["injected_files", "injected_file_content_bytes", "injected_file_path_bytes"]);
    }
    if !ge(mv, 2, 36) {
        k.extend(["floating_ips", "fixed_ips", "security_groups", "security_group_rules"]);
    }
    k
}

fn quota_body(w: &World, pid: &str, mv: (u32, u32), detail: bool, defaults: bool) -> Value {
    let q = if defaults { w.default_quota.clone() } else { w.quota(pid) };
    let (inst, cores, ram) = w.compute_usage(pid);
    let mut m = Map::new();
    m.insert("id".into(), json!(pid));
    for k in quota_keys(mv) {
        let limit = q.get(k).unwrap_or(match k {
            "injected_files" => 5,
            "injected_file_content_bytes" => 10240,
            "injected_file_path_bytes" => 255,
            _ => -1,
        });
        let used = match k {
            "instances" => inst,
            "cores" => cores,
            "ram" => ram,
            _ => 0,
        };
        m.insert(k.into(), if detail { json!({"in_use": used, "limit": limit, "reserved": 0}) } else { json!(limit) });
    }
    json!({"quota_set": m})
}

fn quota_show(State(s): State<S>, h: HeaderMap, Path(pid): Path<String>) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !c.admin && pid != c.project_id {
        return err(SimError::new(403, "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed."), mv);
    }
    let w = s.world();
    ok(200, &quota_body(&w, &pid, mv, false, false), mv)
}

fn quota_detail(State(s): State<S>, h: HeaderMap, Path(pid): Path<String>) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !c.admin && pid != c.project_id {
        return err(
            SimError::new(403, "Policy doesn't allow os_compute_api:os-quota-sets:detail to be performed."),
            mv,
        );
    }
    let w = s.world();
    ok(200, &quota_body(&w, &pid, mv, true, false), mv)
}

fn quota_defaults(State(s): State<S>, h: HeaderMap, Path(pid): Path<String>) -> Response {
    let (_, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    ok(200, &quota_body(&w, &pid, mv, false, true), mv)
}

fn quota_update(State(s): State<S>, h: HeaderMap, Path(pid): Path<String>, body: Bytes) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !c.admin {
        return err(
            SimError::new(403, "Policy doesn't allow os_compute_api:os-quota-sets:update to be performed."),
            mv,
        );
    }
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return err(e, mv),
    };
    let Some(qs) = body.get("quota_set").and_then(Value::as_object) else {
        return err(SimError::bad("Invalid input for field/attribute quota_set."), mv);
    };
    let mut w = s.world();
    if w.project(&pid).is_none() {
        return err(SimError::bad(format!("Project ID {pid} is not a valid project.")), mv);
    }
    let mut q = w.quota(&pid);
    for (k, v) in qs {
        if k == "force" {
            continue;
        }
        let Some(n) = v.as_i64().or_else(|| v.as_str().and_then(|x| x.parse().ok())) else {
            return err(
                SimError::bad(format!(
                    "Invalid input for field/attribute {k}. Value: {v}. {v} is not of type 'integer'"
                )),
                mv,
            );
        };
        if n < -1 || !q.set(k, n) {
            return err(SimError::bad(format!("Invalid input for field/attribute quota_set. Additional properties are not allowed ('{k}' was unexpected)")), mv);
        }
    }
    w.quotas.insert(pid.clone(), q);
    let mut b = quota_body(&w, &pid, mv, false, false);
    if let Some(o) = b.get_mut("quota_set").and_then(Value::as_object_mut) {
        o.remove("id");
    }
    ok(200, &b, mv)
}

/// `os-services`: the scheduler, conductor and one nova-compute per host (admins only).
fn services(
    State(s): State<S>,
    h: HeaderMap,
    q: axum::extract::Query<std::collections::BTreeMap<String, String>>,
) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !c.admin {
        return err(SimError::new(403, "Policy doesn't allow os_compute_api:os-services:list to be performed."), mv);
    }
    let w = s.world();
    let now = format_naive_micros(&s.now());
    let mut list = vec![("nova-scheduler", "controller"), ("nova-conductor", "controller")];
    list.extend(super::world::COMPUTE_HOSTS.iter().map(|h| ("nova-compute", *h)));
    let rows: Vec<Value> = list
        .into_iter()
        .enumerate()
        .filter(|(_, (b, host))| q.get("binary").is_none_or(|x| x == b) && q.get("host").is_none_or(|x| x == host))
        .map(|(n, (binary, host))| {
            let fault = if binary == "nova-compute" { w.host_faults.get(host) } else { None };
            let (status, state, reason) = match fault {
                Some((k, _)) if k == "down" => ("enabled", "down", None),
                Some((_, r)) => ("disabled", "up", Some(r.clone())),
                None => ("enabled", "up", None),
            };
            // Ids are UUIDs from 2.53, integers before.
            let id = if mv >= (2, 53) {
                json!(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{binary}@{host}").as_bytes()).to_string())
            } else {
                json!(n + 1)
            };
            let zone = if binary == "nova-compute" { "nova" } else { "internal" };
            json!({"id": id, "binary": binary, "host": host, "zone": zone, "status": status, "state": state,
                "updated_at": now, "disabled_reason": reason, "forced_down": fault.is_some_and(|f| f.0 == "down")})
        })
        .collect();
    ok(200, &json!({"services": rows}), mv)
}

fn attachment_json(server_id: &str, volume_id: &str, device: &str, attachment_id: &str) -> Value {
    json!({"id": volume_id, "serverId": server_id, "volumeId": volume_id, "device": device,
           "tag": null, "delete_on_termination": false, "attachment_id": attachment_id})
}

fn attachments_list(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let w = s.world();
    let sv = match owned(&w, &c, &id) {
        Ok(sv) => sv,
        Err(e) => return err(e, mv),
    };
    let list: Vec<Value> = sv
        .volumes_attached
        .iter()
        .filter_map(|v| w.volumes.get(v))
        .flat_map(|v| {
            v.attachments
                .iter()
                .filter(|a| a.server_id == id)
                .map(|a| attachment_json(&id, &v.id, &a.device, &a.attachment_id))
        })
        .collect();
    ok(200, &json!({"volumeAttachments": list}), mv)
}

fn attach(
    State(s): State<S>,
    h: HeaderMap,
    rid: Option<Extension<RequestId>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return err(e, mv),
    };
    let Some(vid) = body.pointer("/volumeAttachment/volumeId").and_then(Value::as_str) else {
        return err(
            SimError::bad("Invalid input for field/attribute volumeAttachment. 'volumeId' is a required property"),
            mv,
        );
    };
    let now = s.now();
    let mut w = s.world();
    if let Err(e) = owned(&w, &c, &id) {
        return err(e, mv);
    }
    let project = w.servers.get(&id).map(|sv| sv.project_id.clone()).unwrap_or_default();
    match w.attach_volume(&id, vid, &project, now) {
        Ok(a) => {
            w.record_action(&id, "attach_volume", &rid_of(rid), &c.user_id, now);
            ok(200, &json!({"volumeAttachment": attachment_json(&id, vid, &a.device, &a.attachment_id)}), mv)
        }
        Err(e) => err(e, mv),
    }
}

fn detach(
    State(s): State<S>,
    h: HeaderMap,
    rid: Option<Extension<RequestId>>,
    Path((id, vid)): Path<(String, String)>,
) -> Response {
    let (c, mv) = match ctx(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = s.now();
    let mut w = s.world();
    if let Err(e) = owned(&w, &c, &id) {
        return err(e, mv);
    }
    match w.detach_volume(&id, &vid, now) {
        Ok(()) => {
            w.record_action(&id, "detach_volume", &rid_of(rid), &c.user_id, now);
            with_mv(empty(202), mv)
        }
        Err(e) => err(e, mv),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_filter_is_a_regex_search() {
        assert!(name_matches("web", "prod-web-1"));
        assert!(name_matches("^web", "web-1"));
        assert!(!name_matches("^web", "prod-web"));
        assert!(name_matches("web-.*-s1$", "web-r2-s1"));
        assert!(!name_matches("web-.*-s1$", "web-r2-s10"));
        assert!(name_matches("w.b", "wib"));
        assert!(name_matches("a\\.b", "a.b"));
        assert!(!name_matches("a\\.b", "axb"));
        assert!(name_matches("^a*b$", "aaab"));
        assert!(name_matches("^a*b$", "b"));
        assert!(!name_matches("^a*b$", "aaabc"));
        assert!(name_matches("", "anything"));
        assert!(name_matches("^$", ""));
        assert!(name_matches("x.*", "x"));
        assert!(name_matches("*a", "x*a"), "a leading star is a literal");
        // Patterns that backtrack exponentially in a naive matcher answer at once.
        let evil = ".*".repeat(200) + "x";
        assert!(!name_matches(&evil, &"a".repeat(255)));
        assert!(!name_matches(&"(".repeat(100_000), "web"));
    }
}
