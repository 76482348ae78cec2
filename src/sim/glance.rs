//! Simulated Glance v2: image list with filters, sorting and the relative `next`
//! link (25 per page by default), image show, schemas.

use super::http::*;
use super::world::Image;
use crate::domain::json::Obj;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

pub fn router() -> Router<S> {
    Router::new()
        .route("/image", get(versions))
        .route("/image/", get(versions))
        .route("/image/versions", get(versions))
        .route("/image/v2/images", get(list))
        .route("/image/v2/images/{id}", get(show))
        .route("/image/v2/schemas/image", get(schema_image))
        .route("/image/v2/schemas/images", get(schema_images))
}

async fn versions(State(s): State<S>) -> Response {
    let base = s.base();
    let v = |id: &str, st: &str| json!({"id": id, "status": st, "links": [{"rel": "self", "href": format!("{base}/image/v2/")}]});
    json_response(300, &json!({"versions": [v("v2.16", "CURRENT"), v("v2.15", "SUPPORTED"), v("v2.0", "SUPPORTED")]}))
}

pub fn image_json(i: &Image) -> Value {
    let mut v = json!({
        "id": i.id, "name": i.name, "status": i.status, "visibility": i.visibility, "protected": false, "os_hidden": false,
        "owner": i.owner, "size": i.size, "virtual_size": null, "min_disk": i.min_disk, "min_ram": i.min_ram,
        "disk_format": i.disk_format, "container_format": i.container_format,
        "checksum": format!("{:032x}", i.size.wrapping_mul(2654435761)), "os_hash_algo": "sha512",
        "os_hash_value": format!("{:0128x}", i.size.wrapping_mul(11400714819323198485)),
        "tags": i.tags, "created_at": crate::domain::time::format_z(&i.created_at), "updated_at": crate::domain::time::format_z(&i.updated_at),
        "self": format!("/v2/images/{}", i.id), "file": format!("/v2/images/{}/file", i.id), "schema": "/v2/schemas/image",
        "stores": "file"
    });
    if let Some(o) = v.as_object_mut() {
        for (k, val) in &i.properties {
            o.entry(k.clone()).or_insert(json!(val));
        }
    }
    v
}

fn in_filter(v: &str) -> Vec<&str> {
    v.strip_prefix("in:").map(|x| x.split(',').map(|s| s.trim_matches('"')).collect()).unwrap_or_else(|| vec![v])
}

async fn list(State(s): State<S>, h: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = query_pairs(raw.as_deref());
    let limit = match q_get(&q, "limit").map(|l| l.parse::<usize>()) {
        Some(Ok(n)) => n.min(1000),
        Some(Err(_)) => return glance_error(&h, 400, "limit param must be an integer"),
        None => 25,
    };
    let w = s.world();
    let visibility = q_get(&q, "visibility");
    let tags = q_all(&q, "tag");
    let mut items: Vec<&Image> = w
        .images
        .iter()
        .filter(|i| match visibility {
            Some("all") | None => {
                i.visibility == "public"
                    || i.visibility == "community" && visibility.is_some()
                    || i.owner == c.project_id
                    || i.visibility == "shared"
            }
            Some(v) => i.visibility == v && (v == "public" || i.owner == c.project_id || c.admin),
        })
        .filter(|i| q_get(&q, "name").is_none_or(|n| in_filter(n).contains(&i.name.as_str())))
        .filter(|i| q_get(&q, "id").is_none_or(|n| in_filter(n).contains(&i.id.as_str())))
        .filter(|i| q_get(&q, "status").is_none_or(|n| in_filter(n).contains(&i.status.as_str())))
        .filter(|i| q_get(&q, "owner").is_none_or(|o| i.owner == o))
        .filter(|i| q_get(&q, "disk_format").is_none_or(|d| in_filter(d).contains(&i.disk_format.as_str())))
        .filter(|i| tags.iter().all(|t| i.tags.iter().any(|x| x == t)))
        .collect();
    let (key, dir) = match q_get(&q, "sort") {
        Some(sort) => {
            let first = sort.split(',').next().unwrap_or("created_at");
            let (k, d) = first.split_once(':').unwrap_or((first, "desc"));
            (k.to_string(), d.to_string())
        }
        None => (
            q_get(&q, "sort_key").unwrap_or("created_at").to_string(),
            q_get(&q, "sort_dir").unwrap_or("desc").to_string(),
        ),
    };
    items.sort_by(|a, b| {
        let o = match key.as_str() {
            "name" => a.name.cmp(&b.name),
            "size" => a.size.cmp(&b.size),
            "status" => a.status.cmp(&b.status),
            "id" => a.id.cmp(&b.id),
            "updated_at" => a.updated_at.cmp(&b.updated_at),
            _ => a.created_at.cmp(&b.created_at),
        }
        .then_with(|| a.id.cmp(&b.id));
        if dir == "asc" {
            o
        } else {
            o.reverse()
        }
    });
    let start = match q_get(&q, "marker") {
        Some(m) => match items.iter().position(|i| i.id == m) {
            Some(i) => i + 1,
            None => return glance_error(&h, 400, &format!("marker could not be found: {m}")),
        },
        None => 0,
    };
    let page: Vec<&Image> = items.into_iter().skip(start).take(limit).collect();
    let mut body = json!({"images": page.iter().map(|i| image_json(i)).collect::<Vec<_>>(), "first": "/v2/images", "schema": "/v2/schemas/images"});
    if page.len() == limit && limit > 0 {
        if let Some(last) = page.last() {
            let mut qs: Vec<(String, String)> =
                q.iter().filter(|(k, _)| k != "marker" && k != "limit").cloned().collect();
            qs.push(("marker".into(), last.id.clone()));
            qs.push(("limit".into(), limit.to_string()));
            let enc: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(qs).finish();
            body.put("next", json!(format!("/v2/images?{enc}")));
        }
    }
    json_response(200, &body)
}

async fn show(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let w = s.world();
    match w.images.iter().find(|i| i.id == id && (i.visibility != "private" || i.owner == c.project_id || c.admin)) {
        Some(i) => json_response(200, &image_json(i)),
        None => glance_error(&h, 404, &format!("No image found with ID {id}")),
    }
}

fn schema_props() -> Value {
    let mut props = serde_json::Map::new();
    for k in [
        "id",
        "name",
        "status",
        "visibility",
        "owner",
        "disk_format",
        "container_format",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "self",
        "file",
        "schema",
        "created_at",
        "updated_at",
    ] {
        props.insert(k.into(), json!({"type": ["null", "string"]}));
    }
    for k in ["size", "virtual_size", "min_disk", "min_ram"] {
        props.insert(k.into(), json!({"type": ["null", "integer"]}));
    }
    for k in ["protected", "os_hidden"] {
        props.insert(k.into(), json!({"type": "boolean"}));
    }
    props.insert("tags".into(), json!({"type": "array", "items": {"type": "string"}}));
    Value::Object(props)
}

async fn schema_image() -> Response {
    json_response(
        200,
        &json!({"name": "image", "properties": schema_props(), "additionalProperties": {"type": "string"}, "links": []}),
    )
}

async fn schema_images() -> Response {
    json_response(
        200,
        &json!({"name": "images", "properties": {"images": {"type": "array", "items": {"name": "image", "properties": schema_props()}}, "first": {"type": "string"}, "next": {"type": "string"}, "schema": {"type": "string"}}, "links": []}),
    )
}
