//! Simulated Gnocchi v1: archive policies, resources (generic, instance,
//! instance_network_interface, ...), metrics, measures with granularity and
//! `rate:` aggregations, resource search and the aggregates API (operations in string
//! or list form, resource search, groupby, details).

use super::http::*;
use super::world::{found, ArchivePolicy, Metric, Resource, World};
use crate::domain::json::json;
use crate::domain::json::Obj;
use crate::domain::time::{format_offset, parse_timestamp};
use crate::domain::Timestamp;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub fn router() -> Router<S> {
    let p = "/metric/v1";
    Router::new()
        .route("/metric", get(h1(versions)))
        .route("/metric/", get(h1(versions)))
        .route(&format!("{p}/status"), get(h3(status)))
        .route(&format!("{p}/archive_policy"), get(h2(ap_list)).post(h3(ap_create)))
        .route(&format!("{p}/archive_policy/"), get(h2(ap_list)).post(h3(ap_create)))
        .route(&format!("{p}/archive_policy/{{name}}"), get(h3(ap_show)))
        .route(&format!("{p}/metric"), get(h2(metric_list)).post(h3(metric_create)))
        .route(&format!("{p}/metric/"), get(h2(metric_list)).post(h3(metric_create)))
        .route(&format!("{p}/metric/{{id}}"), get(h3(metric_show)))
        .route(&format!("{p}/metric/{{id}}/measures"), get(h4(metric_measures)).post(h4(metric_post)))
        .route(&format!("{p}/resource_type"), get(h2(resource_types)).post(h3(resource_type_create)))
        .route(&format!("{p}/resource_type/"), get(h2(resource_types)).post(h3(resource_type_create)))
        .route(&format!("{p}/resource_type/{{name}}"), get(h3(resource_type_show)))
        .route(&format!("{p}/resource/{{rtype}}"), get(h4(resource_list)).post(h4(resource_create)))
        .route(&format!("{p}/resource/{{rtype}}/"), get(h4(resource_list)).post(h4(resource_create)))
        .route(&format!("{p}/resource/{{rtype}}/{{id}}"), get(h3(resource_show)).delete(h3(resource_delete)))
        .route(&format!("{p}/resource/{{rtype}}/{{id}}/metric"), get(h3(resource_metrics)))
        .route(
            &format!("{p}/resource/{{rtype}}/{{id}}/metric/{{name}}/measures"),
            get(h4(resource_measures)).post(h4(resource_post)),
        )
        .route(&format!("{p}/search/resource/{{rtype}}"), post(h5(search)))
        .route(&format!("{p}/aggregates"), post(h4(aggregates)))
}

fn versions(State(s): State<S>) -> Response {
    json_response(
        200,
        &json!({"versions": [{"status": "CURRENT", "links": [{"href": format!("{}/metric/v1/", s.base()), "rel": "self"}], "id": "v1.0", "updated": "2015-03-19"}]}),
    )
}

/// `GET /v1/status` (admins): the backlog of measures to process, none here since
/// the simulator aggregates measures as they arrive, and the one metricd processor.
/// `details` (default true) adds the backlog per metric.
fn status(State(s): State<S>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !c.admin {
        return gerr(&h, 403, "Access was denied to this resource.");
    }
    let q = query_pairs(q.as_deref());
    let details =
        q_get(&q, "details").is_none_or(|d| !matches!(d.to_ascii_lowercase().as_str(), "false" | "0" | "no" | "off"));
    let processor = format!("sim.0.{}", uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, s.base().as_bytes()));
    let mut storage = json!({"summary": {"metrics": 0, "measures": 0}});
    if details {
        storage.put("measures_to_process", json!({}));
    }
    json_response(
        200,
        &json!({"storage": storage, "metricd": {"processors": [processor], "statistics": {processor: {"weight": 1}}}}),
    )
}

const RESOURCE_TYPES: &[&str] =
    &["generic", "instance", "instance_network_interface", "instance_disk", "volume", "image"];

fn gerr(h: &HeaderMap, status: u16, d: impl Into<Value>) -> Response {
    gnocchi_error(h, status, d.into())
}

fn timedelta(secs: u64) -> String {
    let d = secs / 86_400;
    let rest = secs % 86_400;
    let hms = format!("{}:{:02}:{:02}", rest / 3600, (rest % 3600) / 60, rest % 60);
    match d {
        0 => hms,
        1 => format!("1 day, {hms}"),
        n => format!("{n} days, {hms}"),
    }
}

fn ap_json(a: &ArchivePolicy) -> Value {
    json!({
        "name": a.name, "back_window": a.back_window, "aggregation_methods": a.aggregation_methods,
        "definition": a.definition.iter().map(|(g, p)| json!({"granularity": timedelta(*g), "timespan": timedelta(g.saturating_mul(*p)), "points": p})).collect::<Vec<_>>()
    })
}

/// Durations as Gnocchi accepts them: seconds, `5 minutes`, `300s`, `1 hour`, `30 days`.
pub fn parse_span(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_f64().map(|f| f as u64),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(f) = s.parse::<f64>() {
                return Some(f as u64);
            }
            if let Some(d) = crate::domain::time::parse_duration(s) {
                return Some(d.as_secs());
            }
            let mut it = s.split_whitespace();
            let n: f64 = it.next()?.parse().ok()?;
            let unit = it.next()?.trim_end_matches('s');
            let mult = match unit {
                "second" | "sec" => 1.0,
                "minute" | "min" => 60.0,
                "hour" => 3600.0,
                "day" => 86400.0,
                "week" => 604800.0,
                _ => return None,
            };
            Some((n * mult) as u64)
        }
        _ => None,
    }
}

fn ap_list(State(s): State<S>, h: HeaderMap) -> Response {
    if let Err(r) = authenticate(&s, &h) {
        return r;
    }
    let w = s.world();
    json_response(200, &Value::Array(w.archive_policies.values().map(ap_json).collect()))
}

fn ap_show(State(s): State<S>, h: HeaderMap, Path(name): Path<String>) -> Response {
    if let Err(r) = authenticate(&s, &h) {
        return r;
    }
    let w = s.world();
    match w.archive_policies.get(&name) {
        Some(a) => json_response(200, &ap_json(a)),
        None => gerr(&h, 404, format!("Archive policy {name} does not exist")),
    }
}

fn ap_create(State(s): State<S>, h: HeaderMap, body: Bytes) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !c.admin {
        return gerr(&h, 403, "Access was denied to this resource.");
    }
    let Ok(b) = serde_json::from_slice::<Value>(&body) else { return gerr(&h, 400, "Unable to decode body") };
    let Some(name) = b.get("name").and_then(Value::as_str) else {
        return gerr(
            &h,
            400,
            json!({"cause": "Invalid input", "reason": "required key not provided @ data['name']", "detail": ["name"]}),
        );
    };
    let mut defs = Vec::new();
    for d in b.get("definition").and_then(Value::as_array).cloned().unwrap_or_default() {
        // At most ten years per point and ten million points (as a real Gnocchi
        // would answer, never an overflow).
        let g = d.get("granularity").and_then(parse_span).filter(|g| *g > 0 && *g <= 10 * 365 * 86_400);
        let points =
            d.get("points").and_then(Value::as_u64).or_else(|| Some(d.get("timespan").and_then(parse_span)? / g?));
        match (g, points) {
            (Some(g), Some(p)) if p > 0 && p <= 10_000_000 => defs.push((g, p)),
            _ => {
                return gerr(
                    &h,
                    400,
                    json!({"cause": "Invalid input", "reason": "Invalid archive policy definition", "detail": ["definition"]}),
                )
            }
        }
    }
    if defs.is_empty() {
        return gerr(
            &h,
            400,
            json!({"cause": "Invalid input", "reason": "required key not provided @ data['definition']", "detail": ["definition"]}),
        );
    }
    let mut methods: Vec<String> = b
        .get("aggregation_methods")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|m| m.as_str().map(String::from)).collect())
        .unwrap_or_else(|| ["mean", "min", "max", "sum", "std", "count"].iter().map(|s| s.to_string()).collect());
    methods.sort();
    methods.dedup();
    methods.reverse();
    let mut w = s.world();
    if w.archive_policies.contains_key(name) {
        return gerr(&h, 409, format!("Archive policy {name} already exists"));
    }
    let ap = ArchivePolicy {
        name: name.to_string(),
        back_window: b.get("back_window").and_then(Value::as_u64).unwrap_or(0),
        aggregation_methods: methods,
        definition: defs,
    };
    let v = ap_json(&ap);
    w.archive_policies.insert(name.to_string(), ap);
    let mut r = json_response(201, &v);
    if let Ok(l) = HeaderValue::from_str(&format!("{}/metric/v1/archive_policy/{name}", s.base())) {
        r.headers_mut().insert("location", l);
    }
    r
}

/// A resource as its own type shows it.
fn resource_json(r: &Resource) -> Value {
    resource_json_as(r, true)
}

/// Listing through the `generic` type shows only the generic attributes unless
/// `details=true`.
fn resource_json_as(r: &Resource, with_attributes: bool) -> Value {
    let mut v = json!({
        "id": r.id, "type": r.resource_type, "original_resource_id": r.original_resource_id, "creator": r.creator,
        "created_by_user_id": r.user_id, "created_by_project_id": r.project_id,
        "started_at": format_offset(&r.started_at), "revision_start": format_offset(&r.revision_start),
        "ended_at": r.ended_at.map(|t| format_offset(&t)), "revision_end": null,
        "user_id": r.user_id, "project_id": r.project_id, "metrics": r.metrics
    });
    if with_attributes {
        if let Some(o) = v.as_object_mut() {
            for (k, val) in &r.attributes {
                o.insert(k.clone(), val.clone());
            }
        }
    }
    v
}

fn metric_json(w: &World, m: &Metric, with_resource: bool) -> Value {
    let mut v = json!({
        "id": m.id, "name": m.name, "unit": m.unit, "creator": m.creator, "resource_id": m.resource_id,
        "archive_policy": w.archive_policies.get(&m.archive_policy).map(ap_json)
    });
    if with_resource {
        v.put(
            "resource",
            m.resource_id.as_ref().and_then(|r| w.resources.get(r)).map(resource_json).unwrap_or(Value::Null),
        );
    }
    v
}

fn visible(c: &Caller, r: &Resource) -> bool {
    c.admin || r.project_id.as_deref() == Some(c.project_id.as_str())
}

fn type_ok(rtype: &str, r: &Resource) -> bool {
    rtype == "generic" || r.resource_type == rtype
}

/// Resolve `start`/`stop`: ISO 8601, epoch seconds, or relative (`-1 hour`).
fn when(v: Option<&str>, now: Timestamp) -> Result<Option<i64>, String> {
    let Some(v) = v else { return Ok(None) };
    let t = v.trim();
    if let Some(ts) = parse_timestamp(t) {
        return Ok(Some(ts.timestamp()));
    }
    if let Ok(f) = t.parse::<f64>() {
        return Ok(Some(f as i64));
    }
    if let Some(rest) = t.strip_prefix('-').or_else(|| t.strip_prefix('+')) {
        if let Some(span) = parse_span(&json!(rest.trim())) {
            let span = i64::try_from(span).unwrap_or(i64::MAX);
            let offset = if t.starts_with('-') { span.saturating_neg() } else { span };
            return Ok(Some(now.timestamp().saturating_add(offset)));
        }
    }
    Err(format!("Timestamp value {v} is invalid"))
}

fn agg_values(method: &str, vals: &[f64]) -> Option<f64> {
    let (&first, &last) = (vals.first()?, vals.last()?);
    let n = vals.len() as f64;
    Some(match method {
        "mean" => vals.iter().sum::<f64>() / n,
        "sum" => vals.iter().sum(),
        "min" => vals.iter().cloned().fold(f64::INFINITY, f64::min),
        "max" => vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        "count" => n,
        "first" => first,
        "last" => last,
        "median" => {
            let mut v = vals.to_vec();
            crate::domain::sort::sort_by(&mut v, f64::total_cmp);
            let mid = v.len() / 2;
            match (v.get(mid.wrapping_sub(1)), v.get(mid)) {
                (Some(a), Some(b)) if v.len().is_multiple_of(2) => (a + b) / 2.0,
                (_, Some(m)) => *m,
                _ => return None,
            }
        }
        "std" => {
            if vals.len() < 2 {
                return None;
            }
            let m = vals.iter().sum::<f64>() / n;
            (vals.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        }
        _ => return None,
    })
}

/// The aggregated series of a metric at one granularity.
fn metric_series(m: &Metric, agg: &str, g: i64, start: Option<i64>, stop: Option<i64>) -> Vec<(i64, f64)> {
    let (rate, base) = match agg.strip_prefix("rate:") {
        Some(b) => (true, b),
        None => (false, agg),
    };
    let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for &(t, v) in &m.points {
        buckets.entry(t - t.rem_euclid(g)).or_default().push(v);
    }
    let mut out: Vec<(i64, f64)> =
        buckets.into_iter().filter_map(|(t, vs)| agg_values(base, &vs).map(|v| (t, v))).collect();
    if rate {
        out = out.iter().zip(out.iter().skip(1)).map(|(a, b)| (b.0, b.1 - a.1)).collect();
    }
    out.retain(|(t, _)| start.is_none_or(|s| *t >= s) && stop.is_none_or(|s| *t < s));
    out
}

fn check_agg(w: &World, m: &Metric, agg: &str, g: i64) -> Result<(), String> {
    let ap = w.archive_policies.get(&m.archive_policy);
    let ok_agg = ap.is_some_and(|a| {
        a.aggregation_methods.iter().any(|x| x == agg)
            || agg.starts_with("rate:") && a.aggregation_methods.iter().any(|x| x == agg)
    });
    let ok_g = ap.is_some_and(|a| a.definition.iter().any(|(dg, _)| *dg as i64 == g));
    if ok_agg && ok_g {
        Ok(())
    } else {
        Err(format!("Aggregation method '{agg}' at granularity '{:.1}' for metric {} does not exist", g as f64, m.id))
    }
}

fn render(points: &[(i64, f64)], g: f64) -> Value {
    Value::Array(
        points
            .iter()
            .filter_map(|(t, v)| {
                let ts = chrono::DateTime::from_timestamp(*t, 0)?;
                Some(json!([format_offset(&ts), g, v]))
            })
            .collect(),
    )
}

fn measures_of(s: &SimShared, h: &HeaderMap, w: &World, m: &Metric, q: &[(String, String)]) -> Response {
    let agg = q_get(q, "aggregation").unwrap_or("mean");
    let now = s.now();
    let (start, stop) = match (when(q_get(q, "start"), now), when(q_get(q, "stop"), now)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return gerr(h, 400, e),
    };
    let grans: Vec<i64> = match q_get(q, "granularity") {
        Some(g) => match parse_span(&json!(g)) {
            Some(g) if g > 0 => vec![g as i64],
            _ => return gerr(h, 400, format!("Invalid granularity {g}")),
        },
        None => {
            let mut g: Vec<i64> = w
                .archive_policies
                .get(&m.archive_policy)
                .map(|a| a.definition.iter().map(|d| d.0 as i64).collect())
                .unwrap_or_default();
            g.sort_unstable_by(|a, b| b.cmp(a));
            g
        }
    };
    let mut out = Vec::new();
    for g in grans {
        if let Err(e) = check_agg(w, m, agg, g) {
            return gerr(h, 404, e);
        }
        let mut pts = metric_series(m, agg, g, start, stop);
        let mut gv = json!(g as f64);
        if let Some(rs) = q_get(q, "resample") {
            match parse_span(&json!(rs)) {
                Some(r) if r as i64 >= g => {
                    let r = r as i64;
                    let mut b: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
                    for (t, v) in pts {
                        b.entry(t - t.rem_euclid(r)).or_default().push(v);
                    }
                    let base = agg.trim_start_matches("rate:");
                    pts = b.into_iter().filter_map(|(t, vs)| agg_values(base, &vs).map(|v| (t, v))).collect();
                    gv = json!(r as f64);
                }
                _ => return gerr(h, 400, format!("Invalid resample value {rs}")),
            }
        }
        if let Value::Array(a) = render(&pts, gv.as_f64().unwrap_or(g as f64)) {
            out.extend(a);
        }
    }
    json_response(200, &Value::Array(out))
}

/// Parse posted measures: `[{"timestamp": ..., "value": ...}]`.
fn parse_points(body: &Value) -> Result<Vec<(i64, f64)>, String> {
    let arr = body.as_array().ok_or("Invalid input: expected a list of measures")?;
    let mut out = Vec::new();
    for m in arr {
        let t = match m.get("timestamp") {
            Some(Value::String(s)) => {
                parse_timestamp(s).map(|t| t.timestamp()).or_else(|| s.parse::<f64>().ok().map(|f| f as i64))
            }
            Some(Value::Number(n)) => n.as_f64().map(|f| f as i64),
            _ => None,
        }
        .ok_or("Invalid input: invalid timestamp")?;
        let v = m
            .get("value")
            .and_then(|v| v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
            .ok_or("Invalid input: invalid value")?;
        out.push((t, v));
    }
    Ok(out)
}

fn metric_list(State(s): State<S>, h: HeaderMap) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let w = s.world();
    let v: Vec<Value> = w
        .metrics
        .values()
        .filter(|m| c.admin || m.resource_id.as_ref().and_then(|r| w.resources.get(r)).is_none_or(|r| visible(&c, r)))
        .take(1000)
        .map(|m| metric_json(&w, m, false))
        .collect();
    json_response(200, &Value::Array(v))
}

fn metric_create(State(s): State<S>, h: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authenticate(&s, &h) {
        return r;
    }
    let Ok(b) = serde_json::from_slice::<Value>(&body) else { return gerr(&h, 400, "Unable to decode body") };
    let mut w = s.world();
    let policy = b.get("archive_policy_name").and_then(Value::as_str).unwrap_or("ceilometer-low").to_string();
    if !w.archive_policies.contains_key(&policy) {
        return gerr(&h, 400, format!("Archive policy {policy} does not exist"));
    }
    let name = b.get("name").and_then(Value::as_str).unwrap_or("").to_string();
    let rid = b.get("resource_id").and_then(Value::as_str).map(String::from);
    let id = w.new_metric(&name, b.get("unit").and_then(Value::as_str), rid.as_deref(), &policy);
    if let Some(r) = rid.and_then(|r| w.resources.get_mut(&r)) {
        r.metrics.insert(name.clone(), id.clone());
    }
    match found(&w.metrics, &id) {
        Ok(m) => json_response(201, &metric_json(&w, m, false)),
        Err(e) => gerr(&h, e.status, e.message),
    }
}

fn metric_show(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authenticate(&s, &h) {
        return r;
    }
    let w = s.world();
    match w.metrics.get(&id) {
        Some(m) => json_response(200, &metric_json(&w, m, true)),
        None => gerr(&h, 404, format!("Metric {id} does not exist")),
    }
}

fn metric_measures(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, RawQuery(raw): RawQuery) -> Response {
    if let Err(r) = authenticate(&s, &h) {
        return r;
    }
    let q = query_pairs(raw.as_deref());
    let w = s.world();
    match w.metrics.get(&id) {
        Some(m) => measures_of(&s, &h, &w, m, &q),
        None => gerr(&h, 404, format!("Metric {id} does not exist")),
    }
}

fn metric_post(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    if let Err(r) = authenticate(&s, &h) {
        return r;
    }
    let pts = match serde_json::from_slice::<Value>(&body).map_err(|e| e.to_string()).and_then(|b| parse_points(&b)) {
        Ok(p) => p,
        Err(e) => return gerr(&h, 400, e),
    };
    let mut w = s.world();
    if !w.metrics.contains_key(&id) {
        return gerr(&h, 404, format!("Metric {id} does not exist"));
    }
    for (t, v) in pts {
        w.push_point(&id, t, v);
    }
    empty(202)
}

/// Attributes of the resource types Ceilometer creates.
fn type_attributes(name: &str) -> Value {
    let s = |required: bool| json!({"type": "string", "required": required, "min_length": 0, "max_length": 255});
    match name {
        "instance" => json!({
            "display_name": s(true), "flavor_id": s(true), "flavor_name": s(false), "host": s(true), "image_ref": s(false),
            "server_group": s(false), "launched_at": {"type": "datetime", "required": false}, "created_at": {"type": "datetime", "required": false},
            "deleted_at": {"type": "datetime", "required": false}, "availability_zone": s(false)
        }),
        "instance_network_interface" | "instance_disk" => {
            json!({"name": s(true), "instance_id": {"type": "uuid", "required": true}})
        }
        _ => json!({}),
    }
}

fn known_type(w: &World, name: &str) -> bool {
    RESOURCE_TYPES.contains(&name) || w.extra_resource_types.contains_key(name)
}

fn resource_types(State(s): State<S>, h: HeaderMap) -> Response {
    if let Err(r) = authenticate(&s, &h) {
        return r;
    }
    let w = s.world();
    let mut v: Vec<Value> = RESOURCE_TYPES
        .iter()
        .map(|t| json!({"name": t, "state": "active", "attributes": type_attributes(t)}))
        .collect();
    v.extend(w.extra_resource_types.iter().map(|(n, a)| json!({"name": n, "state": "active", "attributes": a})));
    json_response(200, &Value::Array(v))
}

fn resource_type_show(State(s): State<S>, h: HeaderMap, Path(name): Path<String>) -> Response {
    if let Err(r) = authenticate(&s, &h) {
        return r;
    }
    let w = s.world();
    if RESOURCE_TYPES.contains(&name.as_str()) {
        return json_response(200, &json!({"name": name, "state": "active", "attributes": type_attributes(&name)}));
    }
    match w.extra_resource_types.get(&name) {
        Some(a) => json_response(200, &json!({"name": name, "state": "active", "attributes": a})),
        None => gerr(&h, 404, format!("Resource type {name} does not exist")),
    }
}

fn resource_type_create(State(s): State<S>, h: HeaderMap, body: Bytes) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !c.admin {
        return gerr(&h, 403, "Access was denied to this resource.");
    }
    let Ok(b) = serde_json::from_slice::<Value>(&body) else { return gerr(&h, 400, "Unable to decode body") };
    let Some(name) = b.get("name").and_then(Value::as_str) else {
        return gerr(
            &h,
            400,
            json!({"cause": "Invalid input", "reason": "required key not provided @ data['name']", "detail": ["name"]}),
        );
    };
    let mut w = s.world();
    if known_type(&w, name) {
        return gerr(&h, 409, format!("Resource type {name} already exists"));
    }
    let attrs = b.get("attributes").cloned().unwrap_or(json!({}));
    w.extra_resource_types.insert(name.to_string(), attrs.clone());
    json_response(201, &json!({"name": name, "state": "active", "attributes": attrs}))
}

fn page_resources(
    s: &SimShared,
    h: &HeaderMap,
    rtype: &str,
    mut items: Vec<&Resource>,
    q: &[(String, String)],
    path: &str,
) -> Response {
    let (key, desc) = match q_get(q, "sort") {
        Some(sv) => {
            let (k, d) = sv.split_once(':').unwrap_or((sv, "asc"));
            (k.to_string(), d == "desc")
        }
        None => ("id".to_string(), false),
    };
    crate::domain::sort::sort_by(&mut items, |a, b| {
        let o = match key.as_str() {
            "started_at" => a.started_at.cmp(&b.started_at),
            "revision_start" => a.revision_start.cmp(&b.revision_start),
            _ => a.id.cmp(&b.id),
        }
        .then_with(|| a.id.cmp(&b.id));
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    if let Some(m) = q_get(q, "marker") {
        match items.iter().position(|r| r.id == m) {
            Some(i) => {
                items.drain(..=i);
            }
            None => return gerr(h, 400, format!("Invalid marker: `{m}'")),
        }
    }
    let limit = q_get(q, "limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(1000).min(1000);
    let more = items.len() > limit;
    items.truncate(limit);
    let attrs = rtype != "generic" || q_get(q, "details").is_some_and(|d| d.eq_ignore_ascii_case("true"));
    let body = Value::Array(items.iter().map(|r| resource_json_as(r, attrs)).collect());
    let mut resp = json_response(200, &body);
    if more || (items.len() == limit && q_get(q, "limit").is_some()) {
        if let Some(last) = items.last() {
            let sort = q_get(q, "sort").unwrap_or("id:asc");
            let link = format!(
                "<{}/metric/v1/{path}/{rtype}?limit={limit}&marker={}&sort={}>; rel=\"next\"",
                s.base(),
                last.id,
                sort.replace(':', "%3A")
            );
            if let Ok(v) = HeaderValue::from_str(&link) {
                resp.headers_mut().insert("link", v);
            }
        }
    }
    resp
}

fn resource_list(State(s): State<S>, h: HeaderMap, Path(rtype): Path<String>, RawQuery(raw): RawQuery) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = query_pairs(raw.as_deref());
    let w = s.world();
    if !known_type(&w, &rtype) {
        return gerr(&h, 404, format!("Resource type {rtype} does not exist"));
    }
    let items: Vec<&Resource> = w.resources.values().filter(|r| type_ok(&rtype, r) && visible(&c, r)).collect();
    page_resources(&s, &h, &rtype, items, &q, "resource")
}

fn resource_id(raw: &str) -> String {
    if uuid::Uuid::parse_str(raw).is_ok() {
        raw.to_string()
    } else {
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, raw.as_bytes()).to_string()
    }
}

fn resource_create(State(s): State<S>, h: HeaderMap, Path(rtype): Path<String>, body: Bytes) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(b) = serde_json::from_slice::<Value>(&body) else { return gerr(&h, 400, "Unable to decode body") };
    let Some(raw_id) = b.get("id").and_then(Value::as_str) else {
        return gerr(
            &h,
            400,
            json!({"cause": "Invalid input", "reason": "required key not provided @ data['id']", "detail": ["id"]}),
        );
    };
    let id = resource_id(raw_id);
    let now = s.now();
    let mut w = s.world();
    if !known_type(&w, &rtype) {
        return gerr(&h, 404, format!("Resource type {rtype} does not exist"));
    }
    if w.resources.contains_key(&id) {
        return gerr(&h, 409, format!("Resource {id} already exists"));
    }
    let mut metrics = BTreeMap::new();
    if let Some(ms) = b.get("metrics").and_then(Value::as_object) {
        for (name, spec) in ms {
            if let Some(existing) = spec.as_str() {
                metrics.insert(name.clone(), existing.to_string());
                continue;
            }
            let policy =
                spec.get("archive_policy_name").and_then(Value::as_str).unwrap_or("ceilometer-low").to_string();
            if !w.archive_policies.contains_key(&policy) {
                return gerr(&h, 400, format!("Archive policy {policy} does not exist"));
            }
            let mid = w.new_metric(name, spec.get("unit").and_then(Value::as_str), Some(&id), &policy);
            metrics.insert(name.clone(), mid);
        }
    }
    let reserved = ["id", "metrics", "user_id", "project_id", "started_at", "ended_at", "type"];
    let attributes: BTreeMap<String, Value> = b
        .as_object()
        .map(|o| {
            o.iter().filter(|(k, _)| !reserved.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
        })
        .unwrap_or_default();
    let started = b.get("started_at").and_then(Value::as_str).and_then(parse_timestamp).unwrap_or(now);
    let r = Resource {
        id: id.clone(),
        resource_type: rtype.clone(),
        original_resource_id: raw_id.to_string(),
        project_id: b.get("project_id").and_then(Value::as_str).map(String::from).or(Some(c.project_id.clone())),
        user_id: b.get("user_id").and_then(Value::as_str).map(String::from).or(Some(c.user_id.clone())),
        creator: c.user_id.clone(),
        started_at: started,
        revision_start: now,
        ended_at: b.get("ended_at").and_then(Value::as_str).and_then(parse_timestamp),
        attributes,
        metrics,
    };
    let v = resource_json(&r);
    w.resources.insert(id.clone(), r);
    let mut resp = json_response(201, &v);
    if let Ok(l) = HeaderValue::from_str(&format!("{}/metric/v1/resource/{rtype}/{id}", s.base())) {
        resp.headers_mut().insert("location", l);
    }
    resp
}

fn find_resource<'a>(w: &'a World, c: &Caller, rtype: &str, id: &str) -> Option<&'a Resource> {
    let rid = resource_id(id);
    w.resources
        .get(&rid)
        .or_else(|| w.resources.values().find(|r| r.original_resource_id == id))
        .filter(|r| type_ok(rtype, r) && visible(c, r))
}

fn resource_show(State(s): State<S>, h: HeaderMap, Path((rtype, id)): Path<(String, String)>) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let w = s.world();
    match find_resource(&w, &c, &rtype, &id) {
        Some(r) => json_response(200, &resource_json_as(r, rtype != "generic")),
        None => gerr(&h, 404, format!("Resource {id} does not exist")),
    }
}

fn resource_delete(State(s): State<S>, h: HeaderMap, Path((rtype, id)): Path<(String, String)>) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut w = s.world();
    let Some(rid) = find_resource(&w, &c, &rtype, &id).map(|r| r.id.clone()) else {
        return gerr(&h, 404, format!("Resource {id} does not exist"));
    };
    if let Some(r) = w.resources.remove(&rid) {
        for m in r.metrics.values() {
            w.metrics.remove(m);
        }
    }
    empty(204)
}

fn resource_metrics(State(s): State<S>, h: HeaderMap, Path((rtype, id)): Path<(String, String)>) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let w = s.world();
    match find_resource(&w, &c, &rtype, &id) {
        Some(r) => json_response(
            200,
            &Value::Array(
                r.metrics.values().filter_map(|m| w.metrics.get(m)).map(|m| metric_json(&w, m, false)).collect(),
            ),
        ),
        None => gerr(&h, 404, format!("Resource {id} does not exist")),
    }
}

fn resource_measures(
    State(s): State<S>,
    h: HeaderMap,
    Path((rtype, id, name)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = query_pairs(raw.as_deref());
    let w = s.world();
    let Some(r) = find_resource(&w, &c, &rtype, &id) else {
        return gerr(&h, 404, format!("Resource {id} does not exist"));
    };
    match r.metrics.get(&name).and_then(|m| w.metrics.get(m)) {
        Some(m) => measures_of(&s, &h, &w, m, &q),
        None => gerr(&h, 404, format!("Metric {name} does not exist")),
    }
}

fn resource_post(
    State(s): State<S>,
    h: HeaderMap,
    Path((rtype, id, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let pts = match serde_json::from_slice::<Value>(&body).map_err(|e| e.to_string()).and_then(|b| parse_points(&b)) {
        Ok(p) => p,
        Err(e) => return gerr(&h, 400, e),
    };
    let mut w = s.world();
    let Some(mid) = find_resource(&w, &c, &rtype, &id).and_then(|r| r.metrics.get(&name).cloned()) else {
        return gerr(&h, 404, format!("Metric {name} does not exist"));
    };
    for (t, v) in pts {
        w.push_point(&mid, t, v);
    }
    empty(202)
}

fn attr(r: &Resource, k: &str) -> Value {
    match k {
        "id" => json!(r.id),
        "type" => json!(r.resource_type),
        "project_id" => json!(r.project_id),
        "user_id" => json!(r.user_id),
        "original_resource_id" => json!(r.original_resource_id),
        "creator" => json!(r.creator),
        "started_at" => json!(format_offset(&r.started_at)),
        "revision_start" => json!(format_offset(&r.revision_start)),
        "ended_at" => json!(r.ended_at.map(|t| format_offset(&t))),
        _ => r.attributes.get(k).cloned().unwrap_or(Value::Null),
    }
}

fn cmp_values(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => match (parse_timestamp(x), parse_timestamp(y)) {
            (Some(p), Some(q)) => Some(p.cmp(&q)),
            _ => Some(x.cmp(y)),
        },
        (Value::String(x), Value::Number(y)) => x.parse::<f64>().ok()?.partial_cmp(&y.as_f64()?),
        (Value::Null, Value::Null) => Some(std::cmp::Ordering::Equal),
        _ => None,
    }
}

fn like(pat: &str, s: &str) -> bool {
    let parts: Vec<&str> = pat.split('%').collect();
    if parts.len() == 1 {
        return pat == s;
    }
    let mut rest = s;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else if let Some((_, r)) = rest.split_once(p) {
            rest = r;
        } else {
            return false;
        }
    }
    true
}

/// Evaluate a Gnocchi search filter on a resource.
fn filter_match(f: &Value, r: &Resource) -> Result<bool, String> {
    let Some(o) = f.as_object() else { return Err("Invalid filter".into()) };
    if o.is_empty() {
        return Ok(true);
    }
    for (op, arg) in o {
        let ok = match op.as_str() {
            "and" | "∧" => {
                let list = arg.as_array().ok_or("and needs a list")?;
                let mut all = true;
                for x in list {
                    all &= filter_match(x, r)?;
                }
                all
            }
            "or" | "∨" => {
                let list = arg.as_array().ok_or("or needs a list")?;
                let mut any = false;
                for x in list {
                    any |= filter_match(x, r)?;
                }
                any
            }
            "not" | "¬" => !filter_match(arg, r)?,
            cmp => {
                let (k, v) =
                    arg.as_object().and_then(|m| m.iter().next()).ok_or_else(|| format!("{cmp} needs an attribute"))?;
                let have = attr(r, k);
                match cmp {
                    "=" | "==" | "eq" => cmp_values(&have, v) == Some(std::cmp::Ordering::Equal),
                    "!=" | "≠" | "ne" => cmp_values(&have, v) != Some(std::cmp::Ordering::Equal),
                    "<" | "lt" => cmp_values(&have, v) == Some(std::cmp::Ordering::Less),
                    ">" | "gt" => cmp_values(&have, v) == Some(std::cmp::Ordering::Greater),
                    "<=" | "≤" | "le" => {
                        matches!(cmp_values(&have, v), Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal))
                    }
                    ">=" | "≥" | "ge" => {
                        matches!(cmp_values(&have, v), Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal))
                    }
                    "in" | "∈" => v
                        .as_array()
                        .ok_or("in needs a list")?
                        .iter()
                        .any(|x| cmp_values(&have, x) == Some(std::cmp::Ordering::Equal)),
                    "like" => have.as_str().zip(v.as_str()).is_some_and(|(h, p)| like(p, h)),
                    other => return Err(format!("Unknown operator {other}")),
                }
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn search_filter(h: &HeaderMap, q: &[(String, String)], body: &Bytes) -> Result<Value, Response> {
    if let Some(f) = q_get(q, "filter") {
        return parse_string_filter(f).ok_or_else(|| gerr(h, 400, format!("Invalid filter: {f}")));
    }
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice::<Value>(body).map_err(|_| gerr(h, 400, "Unable to decode body"))
}

/// `attr = 'value'`, `attr like 'x%'`, joined with `and`.
fn parse_string_filter(f: &str) -> Option<Value> {
    let mut clauses = Vec::new();
    for part in f.split(" and ") {
        let part = part.trim();
        let ops = [" like ", "!=", ">=", "<=", "=", ">", "<"];
        let (op, (k, v)) = ops.iter().find_map(|o| part.split_once(o).map(|kv| (*o, kv)))?;
        let k = k.trim();
        let v = v.trim().trim_matches('\'').trim_matches('"');
        let op = op.trim();
        clauses.push(json!({op: {k: v}}));
    }
    Some(if clauses.len() == 1 { clauses.remove(0) } else { json!({"and": clauses}) })
}

fn search(
    State(s): State<S>,
    h: HeaderMap,
    Path(rtype): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = query_pairs(raw.as_deref());
    let f = match search_filter(&h, &q, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let w = s.world();
    if !known_type(&w, &rtype) {
        return gerr(&h, 404, format!("Resource type {rtype} does not exist"));
    }
    let mut items = Vec::new();
    for r in w.resources.values().filter(|r| type_ok(&rtype, r) && visible(&c, r)) {
        match filter_match(&f, r) {
            Ok(true) => items.push(r),
            Ok(false) => {}
            Err(e) => return gerr(&h, 400, json!({"cause": "Invalid input", "reason": e, "detail": []})),
        }
    }
    page_resources(&s, &h, &rtype, items, &q, "search/resource")
}

// ---- aggregates -------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Sx {
    Atom(String),
    Num(f64),
    List(Vec<Sx>),
}

/// How deep operations may nest.
const MAX_NESTING: usize = 64;

fn parse_sexp(s: &str) -> Result<Sx, String> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    for ch in s.chars() {
        match ch {
            '(' | ')' => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
                tokens.push(ch.to_string());
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    // Operations nest a few levels; a deeper one is refused before it is read
    // (reading and evaluating recurse once per level).
    let mut depth = 0usize;
    for t in &tokens {
        match t.as_str() {
            "(" => depth += 1,
            ")" => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_NESTING {
            return Err(format!("Operations nest deeper than {MAX_NESTING} levels"));
        }
    }
    fn read(t: &[String], i: &mut usize) -> Result<Sx, String> {
        let tok = t.get(*i).ok_or("Unexpected end of operations")?;
        *i += 1;
        if tok == "(" {
            let mut items = Vec::new();
            while t.get(*i).map(String::as_str) != Some(")") {
                if *i >= t.len() {
                    return Err("Unbalanced parentheses".into());
                }
                items.push(read(t, i)?);
            }
            *i += 1;
            Ok(Sx::List(items))
        } else if tok == ")" {
            Err("Unexpected ')'".into())
        } else if let Ok(n) = tok.parse::<f64>() {
            Ok(Sx::Num(n))
        } else {
            Ok(Sx::Atom(tok.trim_matches('"').to_string()))
        }
    }
    let mut i = 0;
    let v = read(&tokens, &mut i)?;
    if i != tokens.len() {
        return Err("Trailing tokens after operations".into());
    }
    Ok(v)
}

fn sx_from_json(v: &Value) -> Result<Sx, String> {
    match v {
        Value::String(s) => Ok(Sx::Atom(s.clone())),
        Value::Number(n) => Ok(Sx::Num(n.as_f64().unwrap_or(0.0))),
        Value::Array(a) => Ok(Sx::List(a.iter().map(sx_from_json).collect::<Result<_, _>>()?)),
        _ => Err("Invalid operations".into()),
    }
}

#[derive(Debug, Clone)]
struct Series {
    /// Resource id (search mode), metric id (ids mode) or `aggregated`.
    key: String,
    /// Metric name (search mode).
    metric: Option<String>,
    agg: String,
    points: Vec<(i64, f64)>,
}

enum Ev {
    Series(Vec<Series>),
    Const(f64),
}

struct AggCtx<'a> {
    w: &'a World,
    /// Resources of a search; `None` when operations name metric ids.
    resources: Option<Vec<&'a Resource>>,
    g: Option<i64>,
    start: Option<i64>,
    stop: Option<i64>,
    references: Vec<Value>,
    unknown: Vec<String>,
}

fn atom(sx: &Sx) -> Option<String> {
    match sx {
        Sx::Atom(a) => Some(a.clone()),
        Sx::Num(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `(name aggregation)` as a metric reference.
fn pair(p: &[Sx]) -> Option<(String, String)> {
    match p {
        [name, agg] => Some((atom(name).unwrap_or_default(), atom(agg).unwrap_or_default())),
        _ => None,
    }
}

fn name_match(pat: &str, name: &str) -> bool {
    match pat.split_once('*') {
        Some((a, b)) => name.starts_with(a) && name.ends_with(b) && name.len() >= a.len() + b.len(),
        None => pat == name,
    }
}

impl AggCtx<'_> {
    fn granularity_of(&self, m: &Metric) -> i64 {
        self.g.unwrap_or_else(|| {
            self.w
                .archive_policies
                .get(&m.archive_policy)
                .and_then(|a| a.definition.first())
                .map(|d| d.0 as i64)
                .unwrap_or(300)
        })
    }

    fn metric_refs(&mut self, pairs: Vec<(String, String)>) -> Result<Vec<Series>, String> {
        let mut out = Vec::new();
        for (name, agg) in pairs {
            match &self.resources {
                None => {
                    let Some(m) = self.w.metrics.get(&name) else {
                        self.unknown.push(name.clone());
                        continue;
                    };
                    let g = self.granularity_of(m);
                    check_agg(self.w, m, &agg, g)?;
                    self.references.push(metric_json(self.w, m, false));
                    out.push(Series {
                        key: m.id.clone(),
                        metric: None,
                        agg: agg.clone(),
                        points: metric_series(m, &agg, g, self.start, self.stop),
                    });
                }
                Some(rs) => {
                    let rs = rs.clone();
                    for r in rs {
                        for (mname, mid) in &r.metrics {
                            if !name_match(&name, mname) {
                                continue;
                            }
                            let Some(m) = self.w.metrics.get(mid) else { continue };
                            let g = self.granularity_of(m);
                            check_agg(self.w, m, &agg, g)?;
                            out.push(Series {
                                key: r.id.clone(),
                                metric: Some(mname.clone()),
                                agg: agg.clone(),
                                points: metric_series(m, &agg, g, self.start, self.stop),
                            });
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    fn eval(&mut self, sx: &Sx) -> Result<Ev, String> {
        let items = match sx {
            Sx::Num(n) => return Ok(Ev::Const(*n)),
            Sx::Atom(a) => return Err(format!("Unexpected atom {a}")),
            Sx::List(items) => items,
        };
        let Some(head) = items.first().and_then(atom) else {
            return Err("Operation need at least one argument for dictionary value @ data['operations']".into());
        };
        match head.as_str() {
            "metric" => {
                let mut pairs = Vec::new();
                if let [_, name, agg] = items.as_slice() {
                    if let Some(name) = atom(name) {
                        pairs.push((name, atom(agg).unwrap_or_default()));
                    }
                }
                if pairs.is_empty() {
                    for it in items.iter().skip(1) {
                        match it {
                            Sx::List(p) if p.len() == 2 => pairs.extend(pair(p)),
                            Sx::List(ps) => {
                                for p in ps {
                                    if let Sx::List(p) = p {
                                        pairs.extend(pair(p));
                                    }
                                }
                            }
                            _ => return Err("Invalid metric operation".into()),
                        }
                    }
                }
                if pairs.is_empty() {
                    return Err("Operation need at least one argument for dictionary value @ data['operations']".into());
                }
                Ok(Ev::Series(self.metric_refs(pairs)?))
            }
            "aggregate" => {
                let agg = items.get(1).and_then(atom).ok_or("aggregate needs a method")?;
                let inner = self.eval(items.get(2).ok_or("aggregate needs an operation")?)?;
                let Ev::Series(ss) = inner else { return Err("aggregate needs series".into()) };
                let mut by_t: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
                for s in &ss {
                    for (t, v) in &s.points {
                        by_t.entry(*t).or_default().push(*v);
                    }
                }
                let n = ss.len();
                let points = by_t
                    .into_iter()
                    .filter(|(_, v)| v.len() == n)
                    .filter_map(|(t, v)| agg_values(agg.trim_start_matches("rate:"), &v).map(|x| (t, x)))
                    .collect();
                Ok(Ev::Series(vec![Series { key: "aggregated".into(), metric: None, agg, points }]))
            }
            "resample" => {
                let agg = items.get(1).and_then(atom).ok_or("resample needs a method")?;
                let g = items
                    .get(2)
                    .and_then(atom)
                    .and_then(|x| parse_span(&json!(x)))
                    .ok_or("resample needs a granularity")? as i64;
                let Ev::Series(mut ss) = self.eval(items.get(3).ok_or("resample needs an operation")?)? else {
                    return Err("resample needs series".into());
                };
                for s in ss.iter_mut() {
                    let mut b: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
                    for (t, v) in &s.points {
                        b.entry(t - t.rem_euclid(g.max(1))).or_default().push(*v);
                    }
                    s.points = b.into_iter().filter_map(|(t, v)| agg_values(&agg, &v).map(|x| (t, x))).collect();
                }
                self.g = Some(g);
                Ok(Ev::Series(ss))
            }
            "rolling" => {
                let agg = items.get(1).and_then(atom).ok_or("rolling needs a method")?;
                let n =
                    items.get(2).and_then(atom).and_then(|x| x.parse::<f64>().ok()).ok_or("rolling needs a window")?
                        as usize;
                let Ev::Series(mut ss) = self.eval(items.get(3).ok_or("rolling needs an operation")?)? else {
                    return Err("rolling needs series".into());
                };
                for s in ss.iter_mut() {
                    let pts = s.points.clone();
                    s.points = pts
                        .windows(n.max(1))
                        .filter_map(|w| {
                            let end = w.last()?.0;
                            agg_values(&agg, &w.iter().map(|p| p.1).collect::<Vec<_>>()).map(|v| (end, v))
                        })
                        .collect();
                }
                Ok(Ev::Series(ss))
            }
            op @ ("abs" | "absolute" | "neg" | "negative" | "cos" | "sin" | "tan" | "floor" | "ceil") => {
                let Ev::Series(mut ss) = self.eval(items.get(1).ok_or("unary needs an operand")?)? else {
                    return Err("unary needs series".into());
                };
                let f: fn(f64) -> f64 = match op {
                    "abs" | "absolute" => f64::abs,
                    "neg" | "negative" => |x| -x,
                    "cos" => f64::cos,
                    "sin" => f64::sin,
                    "tan" => f64::tan,
                    "floor" => f64::floor,
                    _ => f64::ceil,
                };
                for s in ss.iter_mut() {
                    for p in s.points.iter_mut() {
                        p.1 = f(p.1);
                    }
                }
                Ok(Ev::Series(ss))
            }
            op => {
                let f: fn(f64, f64) -> f64 = match op {
                    "+" | "add" => |a, b| a + b,
                    "-" | "sub" => |a, b| a - b,
                    "*" | "mul" => |a, b| a * b,
                    "/" | "truediv" | "div" => |a, b| a / b,
                    "**" | "pow" => f64::powf,
                    "%" | "mod" => |a, b| a % b,
                    "clip_min" => f64::max,
                    "clip_max" => f64::min,
                    "=" | "eq" => |a, b| (a == b) as u8 as f64,
                    "!=" | "ne" => |a, b| (a != b) as u8 as f64,
                    "<" | "lt" => |a, b| (a < b) as u8 as f64,
                    ">" | "gt" => |a, b| (a > b) as u8 as f64,
                    "<=" | "le" => |a, b| (a <= b) as u8 as f64,
                    ">=" | "ge" => |a, b| (a >= b) as u8 as f64,
                    other => return Err(format!("'{other}' operation invalid")),
                };
                let [_, a, b] = items.as_slice() else {
                    return Err(format!("'{op}' needs two operands"));
                };
                let a = self.eval(a)?;
                let b = self.eval(b)?;
                match (a, b) {
                    (Ev::Const(x), Ev::Const(y)) => Ok(Ev::Const(f(x, y))),
                    (Ev::Series(mut ss), Ev::Const(c)) => {
                        ss.iter_mut().for_each(|s| s.points.iter_mut().for_each(|p| p.1 = f(p.1, c)));
                        Ok(Ev::Series(ss))
                    }
                    (Ev::Const(c), Ev::Series(mut ss)) => {
                        ss.iter_mut().for_each(|s| s.points.iter_mut().for_each(|p| p.1 = f(c, p.1)));
                        Ok(Ev::Series(ss))
                    }
                    (Ev::Series(mut l), Ev::Series(r)) => {
                        for (ls, rs) in l.iter_mut().zip(r.iter()) {
                            let rm: BTreeMap<i64, f64> = rs.points.iter().cloned().collect();
                            ls.points =
                                ls.points.iter().filter_map(|(t, v)| rm.get(t).map(|x| (*t, f(*v, *x)))).collect();
                        }
                        Ok(Ev::Series(l))
                    }
                }
            }
        }
    }
}

fn render_series(ss: &[Series], search_mode: bool, default_g: i64) -> Value {
    let mut out = Map::new();
    for s in ss {
        let pts = render(&s.points, default_g as f64);
        if s.key == "aggregated" {
            out.insert("aggregated".into(), pts);
            continue;
        }
        let e = out.entry(s.key.clone()).or_insert_with(|| json!({}));
        if search_mode {
            let m = s.metric.clone().unwrap_or_default();
            if e.get(&m).is_none() {
                e.put(&m, json!({}));
            }
            if let Some(em) = e.get_mut(&m) {
                em.put(&s.agg, pts);
            }
        } else {
            e.put(&s.agg, pts);
        }
    }
    Value::Object(out)
}

fn aggregates(State(s): State<S>, h: HeaderMap, RawQuery(raw): RawQuery, body: Bytes) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = query_pairs(raw.as_deref());
    let Ok(b) = serde_json::from_slice::<Value>(&body) else { return gerr(&h, 400, "Unable to decode body") };
    let bad_ops =
        |reason: String| gerr(&h, 400, json!({"cause": "Invalid input", "reason": reason, "detail": ["operations"]}));
    let ops = match b.get("operations") {
        Some(Value::String(st)) => parse_sexp(st),
        Some(v @ Value::Array(_)) => sx_from_json(v),
        _ => {
            return gerr(
                &h,
                400,
                json!({"cause": "Invalid input", "reason": "required key not provided @ data['operations']", "detail": ["operations"]}),
            )
        }
    };
    let ops = match ops {
        Ok(Sx::List(l)) if l.len() >= 2 => Sx::List(l),
        Ok(_) => {
            return bad_ops("Operation need at least one argument for dictionary value @ data['operations']".into())
        }
        Err(e) => return bad_ops(e),
    };
    let now = s.now();
    let (start, stop) = match (when(q_get(&q, "start"), now), when(q_get(&q, "stop"), now)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return gerr(&h, 400, e),
    };
    let g = q_get(&q, "granularity").and_then(|x| parse_span(&json!(x))).map(|x| x as i64);
    let details = q_get(&q, "details").is_some_and(|d| d.eq_ignore_ascii_case("true"));
    let groupby = q_all(&q, "groupby");
    let w = s.world();
    let search_mode = b.get("resource_type").is_some();
    type Group<'a> = (BTreeMap<String, Value>, Option<Vec<&'a Resource>>);
    let mut groups: Vec<Group> = Vec::new();
    if let Some(rt) = b.get("resource_type").and_then(Value::as_str) {
        if !known_type(&w, rt) {
            return gerr(&h, 404, format!("Resource type {rt} does not exist"));
        }
        let filter = match b.get("search") {
            Some(Value::String(f)) => match parse_string_filter(f) {
                Some(f) => f,
                None => return gerr(&h, 400, format!("Invalid filter: {f}")),
            },
            Some(f) => f.clone(),
            None => json!({}),
        };
        let mut rs = Vec::new();
        for r in w.resources.values().filter(|r| type_ok(rt, r) && visible(&c, r)) {
            match filter_match(&filter, r) {
                Ok(true) => rs.push(r),
                Ok(false) => {}
                Err(e) => return gerr(&h, 400, json!({"cause": "Invalid input", "reason": e, "detail": ["search"]})),
            }
        }
        if groupby.is_empty() {
            groups.push((BTreeMap::new(), Some(rs)));
        } else {
            let mut by: BTreeMap<String, (BTreeMap<String, Value>, Vec<&Resource>)> = BTreeMap::new();
            for r in rs {
                let key: BTreeMap<String, Value> = groupby.iter().map(|k| (k.to_string(), attr(r, k))).collect();
                let ks = serde_json::to_string(&key).unwrap_or_default();
                by.entry(ks).or_insert_with(|| (key, Vec::new())).1.push(r);
            }
            groups.extend(by.into_values().map(|(k, v)| (k, Some(v))));
        }
    } else {
        groups.push((BTreeMap::new(), None));
    }
    let mut results = Vec::new();
    let mut references = Vec::new();
    for (key, rs) in groups {
        let mut ctx = AggCtx { w: &w, references: vec![], unknown: vec![], resources: rs.clone(), g, start, stop };
        let ev = match ctx.eval(&ops) {
            Ok(e) => e,
            Err(e) if e.contains("does not exist") => return gerr(&h, 404, e),
            Err(e) => return bad_ops(e),
        };
        if !ctx.unknown.is_empty() {
            return gerr(
                &h,
                404,
                json!({"cause": "Unknown metrics", "reason": "Provided metrics don't exists", "detail": ctx.unknown}),
            );
        }
        let series = match ev {
            Ev::Series(s) => s,
            Ev::Const(_) => return bad_ops("Operations must reference at least one metric".into()),
        };
        let dg = g.unwrap_or(w.settings.granularity as i64);
        if details {
            match &rs {
                Some(rs) => references.extend(rs.iter().map(|r| resource_json(r))),
                None => references.extend(ctx.references.clone()),
            }
        }
        results.push((key, render_series(&series, search_mode, dg)));
    }
    let body = if groupby.is_empty() || !search_mode {
        let m = results.into_iter().next().map(|r| r.1).unwrap_or_else(|| json!({}));
        let mut v = json!({"measures": m});
        if details {
            v.put("references", Value::Array(references));
        }
        v
    } else {
        Value::Array(results.into_iter().map(|(k, m)| json!({"group": k, "measures": {"measures": m}})).collect())
    };
    json_response(200, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_operation_strings() {
        let s = parse_sexp("(* (/ (metric cpu rate:mean) 300000000000.0) 100)").unwrap();
        let Sx::List(items) = s else { panic!() };
        assert_eq!(items.len(), 3);
        assert!(parse_sexp("(metric cpu").is_err());
        assert!(parse_sexp("(metric cpu mean))").is_err());
    }

    #[test]
    fn like_patterns() {
        assert!(like("compute%", "compute1"));
        assert!(like("%pute%", "compute1"));
        assert!(!like("compute%", "xcompute"));
        assert!(like("a", "a"));
    }

    #[test]
    fn spans() {
        assert_eq!(parse_span(&json!("5 minutes")), Some(300));
        assert_eq!(parse_span(&json!("30 days")), Some(2_592_000));
        assert_eq!(parse_span(&json!("300")), Some(300));
        assert_eq!(parse_span(&json!(60)), Some(60));
        assert_eq!(parse_span(&json!("1h")), Some(3600));
        assert_eq!(timedelta(300), "0:05:00");
        assert_eq!(timedelta(2_592_000), "30 days, 0:00:00");
    }

    #[test]
    fn rate_drops_the_first_point() {
        let m = Metric {
            id: "m".into(),
            name: "cpu".into(),
            unit: None,
            resource_id: None,
            archive_policy: "x".into(),
            creator: "t".into(),
            points: vec![(0, 100.0), (300, 160.0), (600, 220.0)].into(),
        };
        assert_eq!(metric_series(&m, "rate:mean", 300, None, None), vec![(300, 60.0), (600, 60.0)]);
        assert_eq!(metric_series(&m, "mean", 300, Some(300), None).len(), 2);
    }
}
