//! Shared HTTP plumbing of the simulator: state, token checks, error bodies in each
//! service's own shape, request ids, microversions, fault injection.

use super::clock::SimClock;
use super::world::{SimError, World};
use crate::domain::json::json;
use crate::domain::json::Obj;
use crate::domain::{Clock, Timestamp};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Routes to the simulator's handlers, which answer at once (no handler waits
/// on anything): `get(h3(show))` instead of `get(show)`. axum builds its request
/// handling (extractors, rejections, the boxed route) once for each handler
/// type, and every handler function is a type of its own; through a function
/// pointer, all handlers with the same extractors share one copy. Over the
/// simulator's 220 handlers that is about 570 KB of machine code less in the
/// binary, for an indirect call per request.
macro_rules! sync_route {
    ($name:ident $(, $t:ident)*) => {
        #[allow(non_snake_case)]
        pub fn $name<$($t: 'static,)*>(
            f: fn($($t),*) -> Response,
        ) -> impl FnOnce($($t),*) -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
            move |$($t),*| std::future::ready(f($($t),*))
        }
    };
}
/// As `sync_route`, for a handler that takes one more argument after its
/// extractors, the same for every request of the route (a collection's name).
macro_rules! sync_route_with {
    ($name:ident $(, $t:ident)*) => {
        #[allow(non_snake_case)]
        pub fn $name<$($t: 'static,)* K: Clone + Send + Sync + 'static>(
            f: fn($($t,)* K) -> Response,
            k: K,
        ) -> impl FnOnce($($t),*) -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
            move |$($t),*| std::future::ready(f($($t,)* k))
        }
    };
}
sync_route_with!(hk3, A, B, C);
sync_route_with!(hk4, A, B, C, D);
sync_route!(h0);
sync_route!(h1, A);
sync_route!(h2, A, B);
sync_route!(h3, A, B, C);
sync_route!(h4, A, B, C, D);
sync_route!(h5, A, B, C, D, E);

/// `n` random hexadecimal digits (request ids, passwords, reservation ids).
pub fn random_hex(n: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string().chars().take(n).collect()
}
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// A token the simulated Keystone issued.
#[derive(Debug, Clone)]
pub struct TokenRec {
    pub user_id: String,
    pub project_id: Option<String>,
    pub domain_scope: Option<String>,
    pub system: bool,
    /// Wall-clock expiry.
    pub expires: Timestamp,
    pub issued: Timestamp,
    pub methods: Vec<String>,
    pub app_cred: Option<String>,
    pub roles: Vec<String>,
    pub audit_id: String,
}

/// Faults of one service.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ServiceFaults {
    /// Fraction of requests answered with a 5xx.
    pub error_rate: f64,
    /// Added latency (real milliseconds).
    pub latency_ms: u64,
    /// Fraction of requests that are carried out but answered only after
    /// `timeout_ms` (longer than any client waits).
    pub timeout_rate: f64,
    pub timeout_ms: u64,
    /// Fraction of requests whose connection is cut before the body arrives.
    pub drop_rate: f64,
    /// Only requests with these methods are hit (all when empty), e.g. `["POST"]`
    /// to make creates time out while listings keep working.
    pub methods: Vec<String>,
    /// Only requests whose path ends with this are hit (all when unset), e.g.
    /// `/servers` with `["POST"]` for server creates alone.
    pub path_suffix: Option<String>,
}

pub struct SimShared {
    pub world: Mutex<World>,
    pub clock: SimClock,
    pub base_url: Mutex<String>,
    pub tokens: Mutex<HashMap<String, TokenRec>>,
    pub faults: Mutex<BTreeMap<String, ServiceFaults>>,
    pub rng: Mutex<fastrand::Rng>,
    /// "service METHOD" → requests seen.
    pub counters: Mutex<BTreeMap<String, u64>>,
    pub dirty: std::sync::atomic::AtomicBool,
    /// The secret of the control API (`/_sim/`).
    pub control_token: String,
}

pub type S = Arc<SimShared>;

impl SimShared {
    /// The world, with every transition due by now applied.
    pub fn world(&self) -> MutexGuard<'_, World> {
        let mut w = match self.world.lock() {
            Ok(w) => w,
            Err(p) => p.into_inner(),
        };
        let now = self.clock.now();
        w.advance(now);
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
        w
    }
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
    pub fn base(&self) -> String {
        self.base_url.lock().map(|b| b.clone()).unwrap_or_default()
    }
    pub fn count(&self, key: String) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry(key).or_insert(0) += 1;
        }
    }
}

pub fn status_title(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

pub fn json_response(status: u16, v: &Value) -> Response {
    let mut r =
        (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), v.to_string()).into_response();
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    r
}

pub fn empty(status: u16) -> Response {
    StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT).into_response()
}

/// Nova / Cinder fault body.
pub fn nova_error(status: u16, message: &str) -> Response {
    let name = match status {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 | 429 => "overLimit",
        415 => "badMediaType",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    };
    let mut body = json!({name: {"code": status, "message": message}});
    if status == 413 || status == 429 {
        if let Some(fault) = body.get_mut(name) {
            fault.put("retryAfter", json!("0"));
        }
    }
    let mut r = json_response(status, &body);
    if status == 413 || status == 429 {
        r.headers_mut().insert("retry-after", HeaderValue::from_static("0"));
    }
    r
}

pub fn keystone_error(status: u16, message: &str) -> Response {
    json_response(status, &json!({"error": {"code": status, "title": status_title(status), "message": message}}))
}

pub fn neutron_error(status: u16, kind: &str, message: &str) -> Response {
    let kind = if kind.is_empty() {
        match status {
            404 => "NotFound",
            409 => "Conflict",
            400 => "BadRequest",
            _ => "NeutronError",
        }
    } else {
        kind
    };
    json_response(status, &json!({"NeutronError": {"type": kind, "message": message, "detail": ""}}))
}

fn accepts_json(h: &HeaderMap) -> bool {
    h.get("accept").and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("json"))
}

/// Glance (webob) errors: JSON only when asked for.
pub fn glance_error(h: &HeaderMap, status: u16, message: &str) -> Response {
    if accepts_json(h) {
        json_response(
            status,
            &json!({"code": format!("{status} {}", status_title(status)), "title": status_title(status), "message": message}),
        )
    } else {
        let body = format!(
            "<html>\n <head>\n  <title>{status} {t}</title>\n </head>\n <body>\n  <h1>{status} {t}</h1>\n  {message}<br /><br />\n\n\n\n </body>\n</html>",
            t = status_title(status)
        );
        let mut r = (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), body).into_response();
        r.headers_mut().insert("content-type", HeaderValue::from_static("text/html; charset=UTF-8"));
        r
    }
}

/// Gnocchi errors: JSON with `Accept: application/json`, text otherwise.
pub fn gnocchi_error(h: &HeaderMap, status: u16, description: Value) -> Response {
    if accepts_json(h) {
        json_response(status, &json!({"code": status, "title": status_title(status), "description": description}))
    } else {
        let d = match &description {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let explain = match status {
            404 => "The resource could not be found.",
            400 => "The server could not comply with the request since it is either malformed or otherwise incorrect.",
            409 => "There was a conflict when trying to complete your request.",
            403 => "Access was denied to this resource.",
            _ => "An error occurred.",
        };
        let body = format!("{status} {}\n\n{explain}\n\n {d}  ", status_title(status));
        let mut r = (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), body).into_response();
        r.headers_mut().insert("content-type", HeaderValue::from_static("text/plain; charset=UTF-8"));
        r
    }
}

/// Which service a path belongs to.
pub fn service_of(path: &str) -> &'static str {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "identity" => "identity",
        "compute" => "compute",
        "image" => "image",
        "networking" => "network",
        "volume" => "block-storage",
        "metric" => "metric",
        "_sim" => "admin",
        "guest" => "guest",
        _ => "unknown",
    }
}

/// Render a `SimError` in a service's shape.
pub fn render_error(service: &str, h: &HeaderMap, e: &SimError) -> Response {
    match service {
        "identity" => keystone_error(e.status, &e.message),
        "network" => neutron_error(e.status, e.kind, &e.message),
        "image" => glance_error(h, e.status, &e.message),
        "metric" => gnocchi_error(h, e.status, json!(e.message)),
        _ => nova_error(e.status, &e.message),
    }
}

/// The caller of a service request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: TokenRec,
    pub project_id: String,
    pub user_id: String,
    pub admin: bool,
}

/// Check `X-Auth-Token` as keystonemiddleware does.
pub fn authenticate(s: &SimShared, h: &HeaderMap) -> Result<Caller, Response> {
    let unauthorized = || {
        let mut r = keystone_error(401, "The request you have made requires authentication.");
        if let Ok(v) = HeaderValue::from_str(&format!("Keystone uri=\"{}/identity\"", s.base())) {
            r.headers_mut().insert("www-authenticate", v);
        }
        r
    };
    let Some(tok) = h.get("x-auth-token").and_then(|v| v.to_str().ok()) else {
        return Err(unauthorized());
    };
    let rec = s.tokens.lock().ok().and_then(|t| t.get(tok).cloned());
    let Some(rec) = rec else { return Err(unauthorized()) };
    if rec.expires <= chrono::Utc::now() {
        return Err(unauthorized());
    }
    let Some(project) = rec.project_id.clone() else {
        return Err(keystone_error(403, "A project-scoped token is required for this service."));
    };
    Ok(Caller {
        admin: rec.roles.iter().any(|r| r == "admin"),
        user_id: rec.user_id.clone(),
        project_id: project,
        token: rec,
    })
}

/// Parse a query string keeping repeated keys.
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

pub fn q_get<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

pub fn q_all<'a>(q: &'a [(String, String)], k: &str) -> Vec<&'a str> {
    q.iter().filter(|(a, _)| a == k).map(|(_, v)| v.as_str()).collect()
}

/// Parse a JSON body; a malformed one gets the service's 400.
pub fn parse_body(b: &Bytes) -> Result<Value, SimError> {
    if b.is_empty() {
        return Err(SimError::bad("The request body is empty; a JSON body is required."));
    }
    serde_json::from_slice(b).map_err(|e| SimError::bad(format!("Malformed request body: {e}")))
}

pub fn decode_user_data(s: &str) -> Result<String, SimError> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s.trim()).map_err(|_| {
        SimError::bad("Invalid input for field/attribute user_data. Value: (elided). 'user_data' is not a 'base64'")
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Negotiate a microversion as Nova and Cinder do: `OpenStack-API-Version:
/// <service> X.Y` (or Nova's legacy header), `latest`, default `min`, 406 outside
/// the range.
pub fn microversion(
    h: &HeaderMap,
    service: &str,
    legacy: Option<&str>,
    min: (u32, u32),
    max: (u32, u32),
) -> Result<(u32, u32), SimError> {
    let mut wanted: Option<String> = None;
    for v in h.get_all("openstack-api-version").iter() {
        if let Ok(s) = v.to_str() {
            for part in s.split(',') {
                let mut it = part.split_whitespace();
                if it.next().is_some_and(|svc| svc.eq_ignore_ascii_case(service)) {
                    wanted = it.next().map(String::from);
                }
            }
        }
    }
    if wanted.is_none() {
        if let Some(l) = legacy {
            wanted = h.get(l).and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string());
        }
    }
    let Some(w) = wanted else { return Ok(min) };
    if w.eq_ignore_ascii_case("latest") {
        return Ok(max);
    }
    let v = parse_version(&w).ok_or_else(|| {
        SimError::bad(format!("API Version String {w} is of invalid format. Must be of format MajorNum.MinorNum."))
    })?;
    if v < min || v > max {
        return Err(SimError::new(
            406,
            format!(
                "Version {w} is not supported by the API. Minimum is {}.{} and maximum is {}.{}.",
                min.0, min.1, max.0, max.1
            ),
        ));
    }
    Ok(v)
}

/// `2.96` → (2, 96).
pub fn parse_version(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().trim_start_matches('v').split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The request id the answer will carry (`x-openstack-request-id`), for handlers
/// that record it (Nova's instance actions).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn request_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4())
}

/// A body that fails after the headers went out: the client sees the connection
/// drop mid-response.
fn dropped_body() -> Body {
    let s = futures_lite_stream();
    Body::from_stream(s)
}

fn futures_lite_stream() -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> {
    struct Once(bool);
    impl futures_core::Stream for Once {
        type Item = Result<Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.0 {
                std::task::Poll::Ready(None)
            } else {
                self.0 = true;
                std::task::Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "simulated drop",
                ))))
            }
        }
    }
    Once(false)
}

/// Middleware: request ids, counters and injected faults.
/// The control API changes the world: only for whoever holds the token the
/// simulator printed, and never from a web page (a browser sends `Origin` or
/// `Sec-Fetch-Site` with every cross-site request, including the "simple" POSTs
/// that need no preflight).
fn control_allowed(h: &HeaderMap, token: &str) -> Result<(), SimError> {
    if h.contains_key("origin") || h.contains_key("sec-fetch-site") {
        return Err(SimError::new(403, "the control API does not answer web pages"));
    }
    let given = h
        .get("x-sim-token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| h.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")));
    // Compared in full whatever the first difference (no timing to learn from).
    let same = |a: &str| a.len() == token.len() && a.bytes().zip(token.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0;
    match given {
        Some(t) if same(t.trim()) => Ok(()),
        Some(_) => Err(SimError::new(401, "wrong control token: use the one `stackpilot sim` printed")),
        None => Err(SimError::new(
            401,
            "the control API needs the token `stackpilot sim` printed, as header X-Sim-Token (or Authorization: Bearer)",
        )),
    }
}

pub async fn layer(axum::extract::State(s): axum::extract::State<S>, mut req: Request<Body>, next: Next) -> Response {
    let service = service_of(req.uri().path());
    s.count(format!("{service} {}", req.method()));
    if service == "admin" {
        if let Err(why) = control_allowed(req.headers(), &s.control_token) {
            return json_response(why.status, &json!({"error": why.message}));
        }
    }
    let rid = request_id();
    req.extensions_mut().insert(RequestId(rid.clone()));
    let faults = if service == "admin" {
        ServiceFaults::default()
    } else {
        s.faults.lock().ok().and_then(|f| f.get(service).cloned().or_else(|| f.get("all").cloned())).unwrap_or_default()
    };
    let method = req.method().as_str();
    let path_hit = faults.path_suffix.as_deref().is_none_or(|p| req.uri().path().trim_end_matches('/').ends_with(p));
    let method_hit = faults.methods.is_empty() || faults.methods.iter().any(|m| m.eq_ignore_ascii_case(method));
    let faults = if path_hit && method_hit { faults } else { ServiceFaults::default() };
    let (roll_err, roll_timeout, roll_drop) = match s.rng.lock() {
        Ok(mut r) => (r.f64(), r.f64(), r.f64()),
        Err(_) => (1.0, 1.0, 1.0),
    };
    if faults.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(faults.latency_ms)).await;
    }
    let headers = req.headers().clone();
    let mut resp = if roll_err < faults.error_rate {
        let e = SimError::new(503, "The server is currently unavailable. Please try again at a later time.");
        render_error(service, &headers, &e)
    } else {
        let r = next.run(req).await;
        if roll_timeout < faults.timeout_rate {
            // The work is done; the answer comes too late for any client.
            tokio::time::sleep(std::time::Duration::from_millis(faults.timeout_ms.max(1))).await;
        }
        r
    };
    if roll_drop < faults.drop_rate {
        let (parts, _) = resp.into_parts();
        resp = Response::from_parts(parts, dropped_body());
    }
    // The simulated clock, not the host's: a client learns the cloud's time from
    // `Date`, as from a real cloud whose clock is not its own.
    let date = crate::domain::Clock::now(&s.clock).format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    if let Ok(v) = HeaderValue::from_str(&date) {
        resp.headers_mut().insert("date", v);
    }
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("x-openstack-request-id", v.clone());
        if service == "compute" {
            resp.headers_mut().insert("x-compute-request-id", v);
        }
    }
    resp
}
