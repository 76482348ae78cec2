//! Nova: servers (paged detail listing, `changes-since`, tag filters, create with
//! tags and metadata at birth, delete, actions, console output, tags, metadata),
//! flavors, limits and quotas.

use super::error::{ApiError, ErrorKind, Result};
use super::session::{Req, Session};
use super::wire::next_link;
use super::wire::nova::*;
use crate::domain::json::json;
use crate::domain::json::Obj;
use crate::domain::{self, time::format_z, ComputeLimits, Flavor, Timestamp};
use base64::Engine as _;
use serde_json::Value;
use std::collections::BTreeMap;

pub struct Compute<'a>(pub &'a Session);

/// Filters of a server listing.
#[derive(Debug, Clone, Default)]
pub struct ServerQuery {
    /// Servers changed since (includes recently deleted ones, status DELETED).
    pub changes_since: Option<Timestamp>,
    /// All of these tags.
    pub tags: Vec<String>,
    /// Any of these tags.
    pub tags_any: Vec<String>,
    pub not_tags: Vec<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    /// Page size (the server caps it at its own max_limit).
    pub page_size: Option<u32>,
    /// Stop after this many servers.
    pub max_items: Option<usize>,
    /// Leave out each server's JSON as the API returned it (`Server::raw`): a
    /// poller holding 100,000 servers keeps only what the views use.
    pub without_raw: bool,
}

impl ServerQuery {
    /// The query string of `GET /servers/detail` (paging aside).
    fn to_query(&self) -> Vec<(String, String)> {
        let q = self;
        let mut query: Vec<(String, String)> = Vec::new();
        if let Some(t) = q.changes_since {
            query.push(("changes-since".into(), format_z(&t)));
        }
        if !q.tags.is_empty() {
            query.push(("tags".into(), q.tags.join(",")));
        }
        if !q.tags_any.is_empty() {
            query.push(("tags-any".into(), q.tags_any.join(",")));
        }
        if !q.not_tags.is_empty() {
            query.push(("not-tags".into(), q.not_tags.join(",")));
        }
        if let Some(n) = &q.name {
            query.push(("name".into(), n.clone()));
        }
        if let Some(s) = &q.status {
            query.push(("status".into(), s.clone()));
        }
        query
    }
}

/// A network to attach at create time.
#[derive(Debug, Clone, PartialEq)]
pub enum NetworkSpec {
    Uuid(String),
    Port(String),
    Auto,
    None,
}

/// Everything a server create can carry.
#[derive(Debug, Clone, Default)]
pub struct CreateServer {
    pub name: String,
    pub image_id: Option<String>,
    pub flavor_id: String,
    pub networks: Vec<NetworkSpec>,
    pub key_name: Option<String>,
    pub security_groups: Vec<String>,
    /// Plain text; base64-encoded on the wire.
    pub user_data: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub availability_zone: Option<String>,
    /// Boot from a new volume of this size (GiB) made from the image.
    pub boot_volume_gb: Option<u64>,
    pub delete_volume_on_termination: bool,
    pub server_group: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub id: String,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootKind {
    Soft,
    Hard,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServerAction {
    Start,
    Stop,
    Reboot(RebootKind),
    Rebuild { image_id: String, user_data: Option<String>, metadata: Option<BTreeMap<String, String>> },
}

impl ServerAction {
    pub fn name(&self) -> &'static str {
        match self {
            ServerAction::Start => "start",
            ServerAction::Stop => "stop",
            ServerAction::Reboot(RebootKind::Soft) => "reboot",
            ServerAction::Reboot(RebootKind::Hard) => "reboot --hard",
            ServerAction::Rebuild { .. } => "rebuild",
        }
    }
    fn body(&self) -> Value {
        match self {
            ServerAction::Start => json!({"os-start": null}),
            ServerAction::Stop => json!({"os-stop": null}),
            ServerAction::Reboot(k) => {
                json!({"reboot": {"type": if *k == RebootKind::Hard { "HARD" } else { "SOFT" }}})
            }
            ServerAction::Rebuild { image_id, user_data, metadata } => {
                let mut r = json!({"imageRef": image_id});
                if let Some(u) = user_data {
                    r.put("user_data", json!(base64::engine::general_purpose::STANDARD.encode(u)));
                }
                if let Some(m) = metadata {
                    r.put("metadata", json!(m));
                }
                json!({"rebuild": r})
            }
        }
    }
}

impl CreateServer {
    pub fn body(&self) -> Value {
        let mut s = json!({"name": self.name, "flavorRef": self.flavor_id});
        let nets: Value = if self.networks.contains(&NetworkSpec::Auto) {
            json!("auto")
        } else if self.networks.is_empty() || self.networks.contains(&NetworkSpec::None) {
            json!("none")
        } else {
            Value::Array(
                self.networks
                    .iter()
                    .map(|n| match n {
                        NetworkSpec::Uuid(u) => json!({"uuid": u}),
                        NetworkSpec::Port(p) => json!({"port": p}),
                        _ => json!({}),
                    })
                    .collect(),
            )
        };
        s.put("networks", nets);
        match (self.boot_volume_gb, &self.image_id) {
            (Some(size), Some(img)) => {
                s.put(
                    "block_device_mapping_v2",
                    json!([{
                        "boot_index": 0, "uuid": img, "source_type": "image", "destination_type": "volume",
                        "volume_size": size, "delete_on_termination": self.delete_volume_on_termination
                    }]),
                );
            }
            (None, Some(img)) => s.put("imageRef", json!(img)),
            _ => {}
        }
        if let Some(k) = &self.key_name {
            s.put("key_name", json!(k));
        }
        if !self.security_groups.is_empty() {
            s.put("security_groups", Value::Array(self.security_groups.iter().map(|g| json!({"name": g})).collect()));
        }
        if let Some(u) = &self.user_data {
            s.put("user_data", json!(base64::engine::general_purpose::STANDARD.encode(u)));
        }
        if !self.metadata.is_empty() {
            s.put("metadata", json!(self.metadata));
        }
        if !self.tags.is_empty() {
            s.put("tags", json!(self.tags));
        }
        if let Some(az) = &self.availability_zone {
            s.put("availability_zone", json!(az));
        }
        if let Some(d) = &self.description {
            s.put("description", json!(d));
        }
        let mut body = json!({"server": s});
        if let Some(g) = &self.server_group {
            body.put("os:scheduler_hints", json!({"group": g}));
        }
        body
    }
}

/// What a paged listing gave: the items, and the ones that could not be decoded
/// (their id when it could be read, and why) — never silently dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub undecodable: Vec<Undecodable>,
}

/// An item of a listing that did not decode.
#[derive(Debug, Clone, PartialEq)]
pub struct Undecodable {
    pub id: Option<String>,
    pub error: String,
}

impl std::fmt::Display for Undecodable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.id.as_deref().unwrap_or("(no id)"), self.error)
    }
}

impl<T> Listing<T> {
    /// The items; undecodable ones are logged (for listings nothing plans from).
    /// The same records failing poll after poll are logged once, when that changes.
    pub fn logged(self, cloud: &str, collection: &str) -> Vec<T> {
        use std::collections::HashMap;
        use std::sync::{LazyLock, Mutex};
        static LAST: LazyLock<Mutex<HashMap<(String, String), String>>> = LazyLock::new(Default::default);
        let what: Vec<String> = self.undecodable.iter().map(|u| u.to_string()).collect();
        let now = what.join("; ");
        let changed = match LAST.lock() {
            Ok(mut last) => {
                last.insert((cloud.to_string(), collection.to_string()), now.clone()).unwrap_or_default() != now
            }
            Err(_) => true,
        };
        if changed && !what.is_empty() {
            tracing::warn!(cloud, "{} {collection} could not be decoded: {now}", what.len());
        } else if changed && what.is_empty() {
            tracing::info!(cloud, "every one of the {collection} decodes again");
        }
        self.items
    }
}

/// The most pages a listing follows: a cloud whose `next` never ends is an
/// error, not an endless loop.
pub const MAX_PAGES: usize = 10_000;

/// The error of a listing that would not end.
pub(crate) fn endless(session: &Session, service: &str, collection: &str) -> ApiError {
    ApiError::new(
        ErrorKind::InvalidResponse,
        session.cloud_name(),
        service,
        format!("the {collection} listing went on for more than {MAX_PAGES} pages: stopped"),
    )
}

/// The id of an item that did not decode as a whole, if it has a readable one.
fn raw_id(raw: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: Value,
    }
    serde_json::from_slice::<Id>(raw.as_bytes()).ok().and_then(|i| super::lenient::value_to_string(&i.id))
}

/// Pages of a paged listing: follows `<collection>_links` by re-issuing the query
/// with `marker=<last id>` against the catalog endpoint (the hrefs may name a host
/// the client cannot reach), and stops on a page without a next link or an empty
/// page.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn paged<T, F>(
    session: &Session,
    service: &str,
    path: &str,
    base_query: &[(String, String)],
    collection: &str,
    page_size: Option<u32>,
    max_items: Option<usize>,
    mut parse: F,
) -> Result<Vec<T>>
where
    F: FnMut(&str) -> Option<(T, String)>,
{
    let l = paged_report(session, service, path, base_query, collection, page_size, max_items, |raw| {
        parse(raw).ok_or(super::wire::DecodeError::Unreadable)
    })
    .await?;
    Ok(l.logged(session.cloud_name(), collection))
}

/// `paged`, reporting the items that do not decode.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn paged_report<T, F>(
    session: &Session,
    service: &str,
    path: &str,
    base_query: &[(String, String)],
    collection: &str,
    page_size: Option<u32>,
    max_items: Option<usize>,
    mut parse: F,
) -> Result<Listing<T>>
where
    F: FnMut(&str) -> std::result::Result<(T, String), super::wire::DecodeError>,
{
    let mut out: Vec<T> = Vec::new();
    let mut bad: Vec<Undecodable> = Vec::new();
    let mut marker: Option<String> = None;
    let links_key = format!("{collection}_links");
    for _ in 0..MAX_PAGES {
        let mut req = Req::get(path);
        req.query = base_query.to_vec();
        if let Some(n) = page_size {
            req.query.push(("limit".into(), n.to_string()));
        }
        if let Some(m) = &marker {
            req.query.push(("marker".into(), m.clone()));
        }
        let resp = session.request(service, req).await?;
        let (items, rest) = super::raw_items(&resp.body, collection).map_err(|e| {
            let mut err = ApiError::new(
                ErrorKind::InvalidResponse,
                session.cloud_name(),
                service,
                format!("cannot decode {collection} page: {e}"),
            );
            err.request_id = resp.request_id.clone();
            err
        })?;
        // Links that do not decode would end the listing early, and what it did
        // not list would look deleted: an error instead.
        let links: Vec<super::wire::Link> = match rest.get(&links_key).filter(|l| !l.is_null()) {
            None => vec![],
            Some(l) => serde_json::from_value(l.clone()).map_err(|e| {
                let mut err = ApiError::new(
                    ErrorKind::InvalidResponse,
                    session.cloud_name(),
                    service,
                    format!("cannot decode {links_key}: {e}"),
                );
                err.request_id = resp.request_id.clone();
                err
            })?,
        };
        let mut last_id = None;
        let n = items.len();
        for raw in items {
            match parse(raw.get()) {
                Ok((item, id)) => {
                    last_id = Some(id);
                    out.push(item);
                }
                Err(error) => {
                    let id = raw_id(raw.get());
                    if id.is_some() {
                        last_id = id.clone();
                    }
                    bad.push(Undecodable { id, error: error.to_string() });
                }
            }
        }
        if let Some(max) = max_items {
            if out.len() >= max {
                out.truncate(max);
                return Ok(Listing { items: out, undecodable: bad });
            }
        }
        if n == 0 || next_link(&links).is_none() {
            return Ok(Listing { items: out, undecodable: bad });
        }
        match last_id {
            Some(id) if Some(&id) != marker.as_ref() => marker = Some(id),
            _ => return Ok(Listing { items: out, undecodable: bad }),
        }
    }
    Err(endless(session, service, collection))
}

impl Compute<'_> {
    /// `GET /servers/detail` across every page.
    pub async fn list_servers(&self, q: &ServerQuery) -> Result<Vec<domain::Server>> {
        Ok(self.list_servers_report(q).await?.logged(self.0.cloud_name(), "servers"))
    }

    /// `GET /servers/detail` across every page, with the servers that do not decode.
    pub async fn list_servers_report(&self, q: &ServerQuery) -> Result<Listing<domain::Server>> {
        let query = q.to_query();
        paged_report(self.0, "compute", "/servers/detail", &query, "servers", q.page_size, q.max_items, |raw| {
            server_from_raw(raw).map(|mut s| {
                if q.without_raw {
                    s.raw = None;
                }
                let id = s.id.clone();
                (s, id)
            })
        })
        .await
    }

    pub async fn get_server(&self, id: &str) -> Result<domain::Server> {
        let resp = self.0.request("compute", Req::get(format!("/servers/{id}"))).await?;
        let body: BTreeMap<String, Box<serde_json::value::RawValue>> =
            serde_json::from_slice(&resp.body).map_err(|e| self.decode_err(e))?;
        body.get("server")
            .ok_or_else(|| self.decode_err("an answer without `server`"))
            .and_then(|raw| server_from_raw(raw.get()).map_err(|e| self.decode_err(format!("server: {e}"))))
    }

    /// `GET /servers/{id}`: the `server` object exactly as the API wrote it
    /// (keys in their order, values as spelled), for showing, not decoding.
    pub async fn server_record(&self, id: &str) -> Result<String> {
        let resp = self.0.request("compute", Req::get(format!("/servers/{id}"))).await?;
        let body: BTreeMap<String, Box<serde_json::value::RawValue>> =
            serde_json::from_slice(&resp.body).map_err(|e| self.decode_err(e))?;
        body.get("server").map(|raw| raw.get().to_string()).ok_or_else(|| self.decode_err("an answer without `server`"))
    }

    fn decode_err(&self, e: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            ErrorKind::InvalidResponse,
            self.0.cloud_name(),
            "compute",
            format!("cannot decode response: {e}"),
        )
    }

    /// `POST /servers`. Everything (metadata, tags) is set in this one request.
    pub async fn create_server(&self, c: &CreateServer) -> Result<Created> {
        let (body, resp): (CreatedServerBody, _) = self.0.json("compute", Req::post("/servers", c.body())).await?;
        let id = body
            .server
            .map(|s| s.id)
            .filter(|i| !i.is_empty())
            .ok_or_else(|| self.decode_err("create response without server id"))?;
        Ok(Created { id, request_id: resp.request_id })
    }

    /// Same as `create_server` with a per-request timeout (the engine never re-POSTs
    /// after a timeout; it looks the server up by its op tag).
    pub async fn create_server_with_timeout(&self, c: &CreateServer, t: std::time::Duration) -> Result<Created> {
        let (body, resp): (CreatedServerBody, _) =
            self.0.json("compute", Req::post("/servers", c.body()).timeout(t)).await?;
        let id = body
            .server
            .map(|s| s.id)
            .filter(|i| !i.is_empty())
            .ok_or_else(|| self.decode_err("create response without server id"))?;
        Ok(Created { id, request_id: resp.request_id })
    }

    /// `DELETE /servers/{id}` (asynchronous on the server side).
    pub async fn delete_server(&self, id: &str) -> Result<Option<String>> {
        Ok(self.0.request("compute", Req::delete(format!("/servers/{id}"))).await?.request_id)
    }

    pub async fn action(&self, id: &str, a: &ServerAction) -> Result<Option<String>> {
        Ok(self.0.request("compute", Req::post(format!("/servers/{id}/action"), a.body())).await?.request_id)
    }

    /// Attach a volume (`POST /servers/{id}/os-volume_attachments`).
    pub async fn attach_volume(&self, server_id: &str, volume_id: &str) -> Result<Option<String>> {
        let body = json!({"volumeAttachment": {"volumeId": volume_id}});
        let path = format!("/servers/{server_id}/os-volume_attachments");
        Ok(self.0.request("compute", Req::post(path, body)).await?.request_id)
    }

    /// Detach a volume (asynchronous: the volume goes `detaching`, then `available`).
    pub async fn detach_volume(&self, server_id: &str, volume_id: &str) -> Result<Option<String>> {
        let path = format!("/servers/{server_id}/os-volume_attachments/{volume_id}");
        Ok(self.0.request("compute", Req::delete(path)).await?.request_id)
    }

    /// The tail of the console log (`length` lines; all when `None`).
    pub async fn console_output(&self, id: &str, length: Option<u32>) -> Result<String> {
        let body = match length {
            Some(n) => json!({"os-getConsoleOutput": {"length": n}}),
            None => json!({"os-getConsoleOutput": {}}),
        };
        let (b, _): (ConsoleOutputBody, _) =
            self.0.json("compute", Req::post(format!("/servers/{id}/action"), body)).await?;
        Ok(b.output)
    }

    pub async fn list_flavors(&self) -> Result<Vec<Flavor>> {
        paged(
            self.0,
            "compute",
            "/flavors/detail",
            &[("is_public".into(), "None".into())],
            "flavors",
            None,
            None,
            |raw| {
                serde_json::from_slice::<WFlavor>(raw.as_bytes()).ok().filter(|f| !f.id.is_empty()).map(|f| {
                    let id = f.id.clone();
                    (f.into_domain(), id)
                })
            },
        )
        .await
    }

    pub async fn limits(&self) -> Result<ComputeLimits> {
        let (b, _): (LimitsBody, _) = self.0.json("compute", Req::get("/limits")).await?;
        Ok(b.limits.into_domain())
    }

    pub async fn quota_set(&self, project_id: &str) -> Result<QuotaSetBody> {
        Ok(self.0.json("compute", Req::get(format!("/os-quota-sets/{project_id}/detail"))).await?.0)
    }

    /// Change a project's quota (admin).
    pub async fn update_quota(&self, project_id: &str, values: &BTreeMap<String, i64>) -> Result<QuotaSetBody> {
        Ok(self
            .0
            .json("compute", Req::put(format!("/os-quota-sets/{project_id}"), json!({"quota_set": values})))
            .await?
            .0)
    }

    /// Merge metadata items into a server's metadata.
    pub async fn set_metadata(&self, id: &str, items: &BTreeMap<String, String>) -> Result<()> {
        self.0.request("compute", Req::post(format!("/servers/{id}/metadata"), json!({"metadata": items}))).await?;
        Ok(())
    }

    pub async fn tags(&self, id: &str) -> Result<Vec<String>> {
        Ok(self.0.json::<TagsBody>("compute", Req::get(format!("/servers/{id}/tags"))).await?.0.tags)
    }

    pub async fn add_tag(&self, id: &str, tag: &str) -> Result<()> {
        let req = super::session::Req {
            method: reqwest::Method::PUT,
            path: format!("/servers/{id}/tags/{tag}"),
            ..Default::default()
        };
        self.0.request("compute", req).await?;
        Ok(())
    }

    /// The nova-compute services and whether each is up (`os-services`; admins
    /// only: a 403 says the cloud does not let this user see hosts).
    pub async fn list_compute_services(&self) -> Result<Vec<domain::ComputeService>> {
        let (v, _): (Value, _) = self.0.json("compute", Req::get("/os-services?binary=nova-compute")).await?;
        let text = |x: &Value, k: &str| x.at(k).as_str().map(String::from);
        Ok(v.at("services")
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| {
                        Some(domain::ComputeService {
                            host: text(s, "host")?,
                            binary: text(s, "binary").unwrap_or_default(),
                            zone: text(s, "zone"),
                            status: text(s, "status").unwrap_or_default(),
                            state: text(s, "state").unwrap_or_default(),
                            forced_down: s.at("forced_down").as_bool().unwrap_or(false),
                            disabled_reason: text(s, "disabled_reason"),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Names of the key pairs the user can use.
    pub async fn list_keypairs(&self) -> Result<Vec<String>> {
        let (v, _): (Value, _) = self.0.json("compute", Req::get("/os-keypairs")).await?;
        Ok(v.at("keypairs")
            .as_array()
            .map(|a| a.iter().filter_map(|k| k.at("keypair").at("name").as_str().map(String::from)).collect())
            .unwrap_or_default())
    }

    /// The version document of the compute endpoint.
    pub async fn version(&self) -> Result<VersionDoc> {
        let ep = self.0.endpoint("compute").await?;
        let (b, _): (VersionBody, _) =
            self.0.json("compute", Req::get(format!("{}/", ep.as_str().trim_end_matches('/')))).await?;
        b.version.or_else(|| b.versions.into_iter().next()).ok_or_else(|| self.decode_err("no version document"))
    }
}
