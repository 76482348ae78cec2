//! Simulated Glance v2 with one file store: image list with filters, sorting and
//! the relative `next` link (25 per page by default), image show, create, data
//! upload (queued → active with its size and checksums), JSON-patch updates,
//! delete, the import and store discovery calls, schemas.

use super::http::*;
use super::world::{new_id, Image};
use crate::domain::json::json;
use crate::domain::json::Obj;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, put};
use axum::Router;
use serde_json::Value;
use sha2::Digest;
use std::collections::BTreeMap;

pub fn router() -> Router<S> {
    Router::new()
        .route("/image", get(h1(versions)))
        .route("/image/", get(h1(versions)))
        .route("/image/versions", get(h1(versions)))
        .route("/image/v2/images", get(h3(list)).post(h3(create)))
        .route("/image/v2/images/{id}", get(h3(show)).patch(h4(update)).delete(h3(delete)))
        .route("/image/v2/images/{id}/file", put(h4(upload)).layer(DefaultBodyLimit::max(UPLOAD_LIMIT)))
        .route("/image/v2/info/import", get(h2(info_import)))
        .route("/image/v2/info/stores", get(h2(info_stores)))
        .route("/image/v2/schemas/image", get(h0(schema_image)))
        .route("/image/v2/schemas/images", get(h0(schema_images)))
}

fn versions(State(s): State<S>) -> Response {
    let base = s.base();
    let v = |id: &str, st: &str| json!({"id": id, "status": st, "links": [{"rel": "self", "href": format!("{base}/image/v2/")}]});
    json_response(300, &json!({"versions": [v("v2.16", "CURRENT"), v("v2.15", "SUPPORTED"), v("v2.0", "SUPPORTED")]}))
}

/// The largest image data the simulator takes in one upload.
const UPLOAD_LIMIT: usize = 256 * 1024 * 1024;

/// A raw image's data is its disk; a world-file image (no data) has the disk its
/// `min_disk` asks for, or its size. Uploaded data in other formats is not read.
fn virtual_size(i: &Image) -> Option<u64> {
    match (i.status.as_str(), i.disk_format.as_str(), &i.checksum) {
        ("queued", _, _) => None,
        (_, "raw", _) => Some(i.size),
        (_, _, None) if i.min_disk > 0 => Some(i.min_disk << 30),
        (_, _, None) => Some(i.size),
        _ => None,
    }
}

pub fn image_json(i: &Image) -> Value {
    let has_data = i.status != "queued";
    // Images of the world file have no data: their checksums come from the size.
    let checksum = i.checksum.clone().unwrap_or_else(|| format!("{:032x}", i.size.wrapping_mul(2654435761)));
    let hash =
        i.os_hash_value.clone().unwrap_or_else(|| format!("{:0128x}", i.size.wrapping_mul(11400714819323198485)));
    let mut v = json!({
        "id": i.id, "name": i.name, "status": i.status, "visibility": i.visibility, "protected": i.protected, "os_hidden": false,
        "owner": i.owner, "size": has_data.then_some(i.size),
        "virtual_size": virtual_size(i), "min_disk": i.min_disk, "min_ram": i.min_ram,
        "disk_format": (!i.disk_format.is_empty()).then_some(&i.disk_format),
        "container_format": (!i.container_format.is_empty()).then_some(&i.container_format),
        "checksum": has_data.then_some(checksum), "os_hash_algo": has_data.then_some("sha512"),
        "os_hash_value": has_data.then_some(hash),
        "tags": i.tags, "created_at": crate::domain::time::format_z(&i.created_at), "updated_at": crate::domain::time::format_z(&i.updated_at),
        "self": format!("/v2/images/{}", i.id), "file": format!("/v2/images/{}/file", i.id), "schema": "/v2/schemas/image",
    });
    if has_data {
        v.put("stores", json!("file"));
    }
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

fn list(State(s): State<S>, h: HeaderMap, RawQuery(raw): RawQuery) -> Response {
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
    crate::domain::sort::sort_by(&mut items, |a, b| {
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

fn show(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
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

const DISK_FORMATS: [&str; 11] = ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"];
const CONTAINER_FORMATS: [&str; 8] = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"];
/// Attributes Glance computes itself: a request that sets one is refused (403).
const READ_ONLY: [&str; 12] = [
    "status",
    "size",
    "virtual_size",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "created_at",
    "updated_at",
    "self",
    "file",
    "schema",
    "direct_url",
];

fn may_see(i: &Image, c: &Caller) -> bool {
    i.visibility != "private" || i.owner == c.project_id || c.admin
}

/// Set one attribute from a create body or a patch; properties are strings.
fn set_attr(i: &mut Image, k: &str, v: &Value, c: &Caller) -> Result<(), (u16, String)> {
    let bad = |m: String| Err((400, m));
    if READ_ONLY.contains(&k) || k == "id" || k == "stores" || k == "locations" {
        return Err((403, format!("Attribute '{k}' is read-only.")));
    }
    let int =
        |v: &Value| v.as_u64().ok_or_else(|| (400, format!("Invalid value for {k}: {v} is not of type 'integer'")));
    match k {
        "name" => match v {
            Value::String(s) if s.len() <= 255 => i.name = s.clone(),
            Value::Null => i.name = String::new(),
            _ => return bad(format!("Provided object does not match schema 'image': {v} is not of type 'string'")),
        },
        "visibility" => match v.as_str() {
            Some(x @ ("public" | "private" | "shared" | "community")) => {
                if x == "public" && !c.admin {
                    return Err((403, "Forbidden to set 'public' visibility".into()));
                }
                i.visibility = x.to_string()
            }
            _ => {
                return bad(format!(
                    "Invalid value '{v}' for parameter 'visibility': must be one of community, public, private, shared"
                ))
            }
        },
        "disk_format" | "container_format" => {
            if i.status != "queued" {
                return Err((403, format!("Attribute {k} can be only replaced for a queued image.")));
            }
            let allowed: &[&str] = if k == "disk_format" { &DISK_FORMATS } else { &CONTAINER_FORMATS };
            match v.as_str() {
                Some(x) if allowed.contains(&x) => {
                    if k == "disk_format" {
                        i.disk_format = x.into()
                    } else {
                        i.container_format = x.into()
                    }
                }
                _ => {
                    return bad(format!(
                        "Invalid value '{v}' for parameter '{k}': must be one of {}",
                        allowed.join(", ")
                    ))
                }
            }
        }
        "min_disk" => i.min_disk = int(v)?,
        "min_ram" => i.min_ram = int(v)?,
        "protected" => i.protected = v.as_bool().ok_or_else(|| (400, format!("Invalid value for protected: {v}")))?,
        "os_hidden" => {}
        "owner" if c.admin => i.owner = v.as_str().unwrap_or_default().to_string(),
        "owner" => return Err((403, "Attribute 'owner' is reserved.".into())),
        "tags" => match v.as_array() {
            Some(a) => i.tags = a.iter().filter_map(|t| t.as_str().map(String::from)).collect(),
            None => return bad(format!("Provided object does not match schema 'image': {v} is not of type 'array'")),
        },
        _ => match v.as_str() {
            Some(x) => {
                i.properties.insert(k.to_string(), x.to_string());
            }
            None => {
                return bad(format!(
                    "Provided object does not match schema 'image': {v} is not of type 'string' (property {k})"
                ))
            }
        },
    }
    Ok(())
}

fn create(State(s): State<S>, h: HeaderMap, body: Bytes) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(&body) else {
        return glance_error(&h, 400, "Body expected in request.");
    };
    let now = s.now();
    let id = match o.get("id").map(|v| v.as_str().and_then(|x| uuid::Uuid::parse_str(x).ok())) {
        Some(Some(u)) => u.to_string(),
        Some(None) => return glance_error(&h, 400, "Provided object does not match schema 'image': id is not a UUID"),
        None => new_id(),
    };
    let mut img = Image {
        id: id.clone(),
        name: String::new(),
        status: "queued".into(),
        visibility: "shared".into(),
        size: 0,
        min_disk: 0,
        min_ram: 0,
        disk_format: String::new(),
        container_format: String::new(),
        owner: c.project_id.clone(),
        created_at: now,
        updated_at: now,
        tags: vec![],
        properties: BTreeMap::new(),
        checksum: None,
        os_hash_value: None,
        protected: false,
    };
    for (k, v) in &o {
        if k == "id" {
            continue;
        }
        if let Err((code, m)) = set_attr(&mut img, k, v, &c) {
            return glance_error(&h, code, &m);
        }
    }
    let mut w = s.world();
    if w.images.iter().any(|i| i.id == id) {
        return glance_error(&h, 409, &format!("Image with identifier {id} already exists!"));
    }
    let v = image_json(&img);
    w.images.push(img);
    let mut r = json_response(201, &v);
    if let Ok(l) = axum::http::HeaderValue::from_str(&format!("{}/image/v2/images/{id}", s.base())) {
        r.headers_mut().insert("location", l);
    }
    r
}

/// `PUT /v2/images/{id}/file`: the data of a queued image; it becomes active
/// with the data's size, MD5 checksum and SHA-512 hash (the data is not kept).
fn upload(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let ctype = h.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ctype.starts_with("application/octet-stream") {
        return glance_error(
            &h,
            415,
            &format!("Content type {ctype} is not supported for image data; use application/octet-stream"),
        );
    }
    let now = s.now();
    let mut w = s.world();
    let Some(i) = w.images.iter_mut().find(|i| i.id == id && may_see(i, &c)) else {
        return glance_error(&h, 404, &format!("No image found with ID {id}"));
    };
    if i.owner != c.project_id && !c.admin {
        return glance_error(&h, 403, "You are not permitted to upload data for this image.");
    }
    if i.status != "queued" {
        return glance_error(&h, 409, &format!("Image status transition from {} to saving is not allowed", i.status));
    }
    if i.disk_format.is_empty() || i.container_format.is_empty() {
        return glance_error(&h, 400, "Properties disk_format, container_format must be set prior to saving data.");
    }
    i.size = body.len() as u64;
    i.checksum = Some(md5_hex(&body));
    i.os_hash_value = Some(sha2::Sha512::digest(&body).iter().map(|b| format!("{b:02x}")).collect());
    i.status = "active".into();
    i.updated_at = now;
    empty(204)
}

/// `PATCH /v2/images/{id}` with an `application/openstack-images-v2.1-json-patch` body.
fn update(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let ctype = h.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ctype.starts_with("application/openstack-images-v2.1-json-patch")
        && !ctype.starts_with("application/openstack-images-v2.0-json-patch")
    {
        return glance_error(
            &h,
            415,
            &format!("Unsupported Content-Type {ctype}: use application/openstack-images-v2.1-json-patch"),
        );
    }
    let Ok(Value::Array(ops)) = serde_json::from_slice::<Value>(&body) else {
        return glance_error(&h, 400, "Request body must be a JSON array of operation objects.");
    };
    let now = s.now();
    let mut w = s.world();
    let Some(slot) = w.images.iter_mut().find(|i| i.id == id && may_see(i, &c)) else {
        return glance_error(&h, 404, &format!("No image found with ID {id}"));
    };
    if slot.owner != c.project_id && !c.admin {
        return glance_error(&h, 403, "You are not permitted to modify this image.");
    }
    // All operations apply, or none.
    let mut img = slot.clone();
    for op in &ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
        let Some(path) = op.get("path").and_then(Value::as_str).and_then(|p| p.strip_prefix('/')) else {
            return glance_error(&h, 400, "Unable to find '/path' in JSON Schema change");
        };
        let key = path.replace("~1", "/").replace("~0", "~");
        let result = match kind {
            "add" | "replace" => {
                let Some(v) = op.get("value") else {
                    return glance_error(&h, 400, "Operation objects must contain exactly one member named \"value\".");
                };
                let known = matches!(
                    key.as_str(),
                    "name"
                        | "visibility"
                        | "disk_format"
                        | "container_format"
                        | "min_disk"
                        | "min_ram"
                        | "protected"
                        | "tags"
                        | "owner"
                        | "os_hidden"
                );
                if kind == "replace"
                    && !known
                    && !img.properties.contains_key(&key)
                    && !READ_ONLY.contains(&key.as_str())
                {
                    Err((409, format!("Property {key} does not exist.")))
                } else {
                    set_attr(&mut img, &key, v, &c)
                }
            }
            "remove" => {
                if READ_ONLY.contains(&key.as_str())
                    || [
                        "id",
                        "name",
                        "visibility",
                        "owner",
                        "protected",
                        "tags",
                        "min_disk",
                        "min_ram",
                        "disk_format",
                        "container_format",
                    ]
                    .contains(&key.as_str())
                {
                    Err((403, format!("Attribute '{key}' is read-only.")))
                } else if img.properties.remove(&key).is_none() {
                    Err((409, format!("Property {key} does not exist.")))
                } else {
                    Ok(())
                }
            }
            other => Err((400, format!("Invalid operation: `{other}`: must be one of add, remove, replace"))),
        };
        if let Err((code, m)) = result {
            return glance_error(&h, code, &m);
        }
    }
    img.updated_at = now;
    let v = image_json(&img);
    *slot = img;
    json_response(200, &v)
}

fn delete(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut w = s.world();
    let Some(i) = w.images.iter().find(|i| i.id == id && may_see(i, &c)) else {
        return glance_error(&h, 404, &format!("No image found with ID {id}"));
    };
    if i.owner != c.project_id && !c.admin {
        return glance_error(&h, 403, "You are not permitted to delete this image.");
    }
    if i.protected {
        return glance_error(&h, 403, &format!("Image {id} is protected and cannot be deleted."));
    }
    w.images.retain(|i| i.id != id);
    empty(204)
}

fn info_import(State(s): State<S>, h: HeaderMap) -> Response {
    if let Err(r) = authenticate(&s, &h) {
        return r;
    }
    json_response(
        200,
        &json!({"import-methods": {"description": "Import methods available.", "type": "array", "value": ["glance-direct", "web-download", "copy-image"]}}),
    )
}

/// The one store, `file`, the default (the store every image's `stores` names), as
/// Glance lists its `enabled_backends`.
fn info_stores(State(s): State<S>, h: HeaderMap) -> Response {
    if let Err(r) = authenticate(&s, &h) {
        return r;
    }
    json_response(200, &json!({"stores": [{"id": "file", "default": "true"}]}))
}

/// MD5 (RFC 1321), the checksum Glance keeps next to `os_hash_value`.
fn md5_hex(data: &[u8]) -> String {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14,
        20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6,
        10, 15, 21,
    ];
    let k: Vec<u32> = (0..64).map(|i| ((i as f64 + 1.0).sin().abs() * 4294967296.0) as u32).collect();
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_le_bytes());
    let mut st: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    for chunk in msg.chunks_exact(64) {
        let mut m = [0u32; 16];
        for (word, b) in m.iter_mut().zip(chunk.chunks_exact(4)) {
            *word = b.iter().rev().fold(0, |acc, x| (acc << 8) | u32::from(*x));
        }
        let [mut a, mut b, mut c, mut d] = st;
        for (i, (s, k)) in S.iter().zip(&k).enumerate() {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(*k).wrapping_add(m.get(g).copied().unwrap_or(0));
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(*s));
        }
        st = [st[0].wrapping_add(a), st[1].wrapping_add(b), st[2].wrapping_add(c), st[3].wrapping_add(d)];
    }
    st.iter().flat_map(|w| w.to_le_bytes()).map(|b| format!("{b:02x}")).collect()
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

fn schema_image() -> Response {
    json_response(
        200,
        &json!({"name": "image", "properties": schema_props(), "additionalProperties": {"type": "string"}, "links": []}),
    )
}

fn schema_images() -> Response {
    json_response(
        200,
        &json!({"name": "images", "properties": {"images": {"type": "array", "items": {"name": "image", "properties": schema_props()}}, "first": {"type": "string"}, "next": {"type": "string"}, "schema": {"type": "string"}}, "links": []}),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn md5_matches_the_rfc_vectors() {
        assert_eq!(super::md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(super::md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            super::md5_hex(b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }
}
