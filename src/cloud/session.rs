//! The authenticated session: Keystone v3 tokens, the service catalog, endpoint
//! selection, microversion negotiation, and the one request path every service
//! call goes through (token refresh, one shared re-authentication on 401, request
//! ids, error classification, `Retry-After` on idempotent reads).

use super::error::{classify, error_message, ApiError, ErrorKind, Result};
use super::wire::keystone::{CatalogEntry, TokenBody};
use crate::config::clouds::{canonical_service_type, AuthMethod, CloudConfig, DomainRef, Scope, UserRef};
use crate::config::Secret;
use crate::domain::json::json;
use crate::domain::json::Obj;
use crate::domain::Timestamp;
use chrono::Utc;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use url::Url;

/// Refresh a token when less than this remains (keystoneauth's MIN_TOKEN_LIFE_SECONDS).
pub const MIN_TOKEN_LIFE: i64 = 120;
/// Highest compute microversion this client is tested against.
pub const COMPUTE_MICROVERSION: (u32, u32) = (2, 96);
/// Highest block-storage microversion this client is tested against.
pub const VOLUME_MICROVERSION: (u32, u32) = (3, 64);
/// Longest `Retry-After` honoured automatically.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// A valid token and what came with it.
pub struct Token {
    pub id: Secret,
    pub expires_at: Option<Timestamp>,
    pub catalog: Vec<CatalogEntry>,
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub roles: Vec<String>,
    /// Increments with every new token (lets concurrent callers share a re-auth).
    pub generation: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("expires_at", &self.expires_at)
            .field("project_id", &self.project_id)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// One HTTP response, body already read.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
    pub request_id: Option<String>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Options of one request.
#[derive(Debug, Clone, Default)]
pub struct Req {
    pub method: Method,
    /// Path below the service endpoint (`/servers/detail`), or an absolute URL.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    /// Per-request timeout (the session default otherwise).
    pub timeout: Option<Duration>,
}

impl Req {
    pub fn get(path: impl Into<String>) -> Req {
        Req { method: Method::GET, path: path.into(), ..Default::default() }
    }
    pub fn post(path: impl Into<String>, body: Value) -> Req {
        Req { method: Method::POST, path: path.into(), body: Some(body), ..Default::default() }
    }
    pub fn put(path: impl Into<String>, body: Value) -> Req {
        Req { method: Method::PUT, path: path.into(), body: Some(body), ..Default::default() }
    }
    pub fn delete(path: impl Into<String>) -> Req {
        Req { method: Method::DELETE, path: path.into(), ..Default::default() }
    }
    pub fn query(mut self, k: &str, v: impl ToString) -> Req {
        self.query.push((k.to_string(), v.to_string()));
        self
    }
    pub fn timeout(mut self, t: Duration) -> Req {
        self.timeout = Some(t);
        self
    }
}

tokio::task_local! {
    static REQUEST_TALLY: std::cell::Cell<u64>;
}

/// Run `f` and count the HTTP requests it made (through any session).
pub async fn counting<F: std::future::Future>(f: F) -> (F::Output, u64) {
    REQUEST_TALLY
        .scope(std::cell::Cell::new(0), async move {
            let out = f.await;
            (out, REQUEST_TALLY.with(|c| c.get()))
        })
        .await
}

fn tally() {
    // Outside a counted scope there is nothing to count.
    REQUEST_TALLY.try_with(|c| c.set(c.get() + 1)).unwrap_or(());
}

/// Counters of what a session did (benchmarks, tests, the Clouds view).
#[derive(Debug, Default)]
pub struct SessionStats {
    pub requests: AtomicU64,
    pub authentications: AtomicU64,
    pub errors: AtomicU64,
}

pub struct Session {
    cloud: CloudConfig,
    http: reqwest::Client,
    token: RwLock<Option<Arc<Token>>>,
    /// Serializes authentication; holds the outcome of the last attempt (its
    /// number, and its error when it failed) so callers that waited for it share
    /// it instead of trying again (a hung Keystone costs one timeout, not several).
    auth_lock: tokio::sync::Mutex<(u64, Option<ApiError>)>,
    /// Authentication attempts started, and finished.
    auth_attempts: AtomicU64,
    auth_finished: AtomicU64,
    generation: AtomicU64,
    microversions: Mutex<HashMap<String, Option<(u32, u32)>>>,
    timeout: Duration,
    pub stats: SessionStats,
    /// How far the cloud's clock is ahead of ours, in milliseconds, from the
    /// `Date` of its last successful answer (`i64::MIN`: none seen yet).
    clock_offset_ms: AtomicI64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("cloud", &self.cloud.name).finish_non_exhaustive()
    }
}

/// The service types this client knows and the version path each uses when the
/// catalog endpoint carries none.
fn version_suffix(service: &str) -> Option<&'static str> {
    match service {
        "compute" => Some("v2.1"),
        "block-storage" => Some("v3"),
        "image" => Some("v2"),
        "network" => Some("v2.0"),
        "metric" => Some("v1"),
        "identity" => Some("v3"),
        "orchestration" => Some("v1"),
        "alarm" => Some("v2"),
        _ => None,
    }
}

fn is_version_segment(s: &str) -> bool {
    let s = s.strip_prefix('v').unwrap_or("");
    !s.is_empty() && s.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// Parse `2.96` into (2, 96).
pub fn parse_version(s: &str) -> Option<(u32, u32)> {
    let s = s.trim().trim_start_matches('v');
    let (a, b) = s.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn request_id(h: &HeaderMap) -> Option<String> {
    ["x-openstack-request-id", "x-compute-request-id", "openstack-request-id"]
        .iter()
        .find_map(|n| h.get(*n).and_then(|v| v.to_str().ok()).map(String::from))
}

/// The longest `Retry-After` taken as given: a day (anything longer, infinite or
/// not a number is read as that day, never as a panic or as "now").
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(86_400);

/// `Retry-After` as seconds (any float a server may send) or an HTTP date.
pub fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get("retry-after")?.to_str().ok()?.trim().to_string();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_nan() {
            return None;
        }
        return Some(Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(RETRY_AFTER_CAP).min(RETRY_AFTER_CAP));
    }
    // An HTTP date from a proxy.
    chrono::DateTime::parse_from_rfc2822(&v)
        .ok()
        .map(|t| (t.with_timezone(&Utc) - Utc::now()).to_std().unwrap_or_default().min(RETRY_AFTER_CAP))
}

/// The largest response body read (a 1,000-server page is a few MiB); a body
/// larger than this (or endless) is an error, never an out-of-memory abort.
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// Read a response body, at most `MAX_BODY` bytes.
pub async fn read_body(mut resp: reqwest::Response) -> std::result::Result<bytes::Bytes, BodyError> {
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if buf.len() + chunk.len() > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    Transport(reqwest::Error),
    TooLarge,
}

/// Resolve a link a service sent (a `next` page, absolute or relative to
/// `prefix`) and keep it on the endpoint's scheme, host and port, without user
/// info: the token goes nowhere else.
pub fn resolve_link(endpoint: &Url, prefix: &Url, link: &str) -> std::result::Result<Url, LinkError> {
    let link = link.trim();
    let malformed = |e: url::ParseError| LinkError::Malformed { link: link.to_string(), reason: e.to_string() };
    let url = if link.starts_with("http://") || link.starts_with("https://") {
        Url::parse(link).map_err(malformed)?
    } else {
        let base = prefix.as_str().trim_end_matches('/');
        let joined = if link.starts_with('/') { format!("{base}{link}") } else { format!("{base}/{link}") };
        Url::parse(&joined).map_err(malformed)?
    };
    let same = url.scheme() == endpoint.scheme()
        && url.host_str() == endpoint.host_str()
        && url.port_or_known_default() == endpoint.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none();
    if !same {
        return Err(LinkError::OffEndpoint {
            link: link.to_string(),
            endpoint: format!("{}://{}", endpoint.scheme(), endpoint.host_str().unwrap_or_default()),
        });
    }
    Ok(url)
}

/// Why a link a service sent is not followed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LinkError {
    #[error("bad link `{link}`: {reason}")]
    Malformed { link: String, reason: String },
    #[error("the link `{link}` leaves the endpoint {endpoint}: not followed (the token is sent to the endpoint only)")]
    OffEndpoint { link: String, endpoint: String },
}

fn domain_json(d: &DomainRef) -> Value {
    match (&d.id, &d.name) {
        (Some(id), _) => json!({"id": id}),
        (None, Some(n)) => json!({"name": n}),
        _ => json!({"id": "default"}),
    }
}

fn user_json(u: &UserRef) -> Value {
    match (&u.id, &u.name) {
        (Some(id), _) => json!({"id": id}),
        (None, Some(n)) => json!({"name": n, "domain": domain_json(&u.domain)}),
        _ => json!({}),
    }
}

fn scope_json(s: &Scope) -> Value {
    match s {
        Scope::Project { id: Some(id), .. } => json!({"project": {"id": id}}),
        Scope::Project { name, domain, .. } => json!({"project": {"name": name, "domain": domain_json(domain)}}),
        Scope::Domain(d) => json!({"domain": domain_json(d)}),
        Scope::System => json!({"system": {"all": true}}),
    }
}

/// The body of `POST /v3/auth/tokens` for a configured auth method.
pub fn auth_body(auth: &AuthMethod) -> Value {
    match auth {
        AuthMethod::Password { user, password, scope } => {
            let mut u = user_json(user);
            u.put("password", json!(password.expose()));
            json!({"auth": {"identity": {"methods": ["password"], "password": {"user": u}}, "scope": scope_json(scope)}})
        }
        AuthMethod::ApplicationCredential { id, name, user, secret } => {
            let mut ac = json!({"secret": secret.expose()});
            if let Some(id) = id {
                ac.put("id", json!(id));
            } else {
                ac.put("name", json!(name));
                if let Some(u) = user {
                    ac.put("user", user_json(u));
                }
            }
            // Application credentials are bound to their project: no scope.
            json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": ac}}})
        }
        AuthMethod::Token { token, scope } => {
            json!({"auth": {"identity": {"methods": ["token"], "token": {"id": token.expose()}}, "scope": scope_json(scope)}})
        }
    }
}

impl Session {
    /// How far the cloud's clock is ahead of ours (its `Date` header against our
    /// clock when the answer came), once an answer carried one.
    pub fn clock_offset(&self) -> Option<chrono::Duration> {
        match self.clock_offset_ms.load(Ordering::Relaxed) {
            i64::MIN => None,
            ms => Some(chrono::Duration::milliseconds(ms)),
        }
    }

    fn note_clock(&self, headers: &HeaderMap) {
        let date = headers.get(reqwest::header::DATE).and_then(|v| v.to_str().ok());
        if let Some(d) = date.and_then(crate::domain::time::parse_http_date) {
            let off = crate::domain::time::clock_offset(d, Utc::now());
            self.clock_offset_ms.store(off.num_milliseconds(), Ordering::Relaxed);
        }
    }

    /// Build a session (no network I/O until the first request).
    pub fn new(cloud: CloudConfig) -> Result<Session> {
        Self::with_timeout(cloud, Duration::from_secs(30))
    }

    pub fn with_timeout(cloud: CloudConfig, timeout: Duration) -> Result<Session> {
        let cfg_err = |m: String| ApiError::new(ErrorKind::Config, &cloud.name, "identity", m);
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("stackpilot/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(50));
        if !cloud.verify {
            b = b.danger_accept_invalid_certs(true);
        }
        if let Some(ca) = &cloud.cacert {
            let pem = std::fs::read(ca).map_err(|e| cfg_err(format!("cannot read CA bundle {}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| cfg_err(format!("CA bundle {} is not PEM: {e}", ca.display())))?;
            if certs.is_empty() {
                return Err(cfg_err(format!("CA bundle {} holds no certificate", ca.display())));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if let Some(cert) = &cloud.client_cert {
            let mut pem = std::fs::read(cert)
                .map_err(|e| cfg_err(format!("cannot read client certificate {}: {e}", cert.display())))?;
            if let Some(key) = &cloud.client_key {
                let k = std::fs::read(key)
                    .map_err(|e| cfg_err(format!("cannot read client key {}: {e}", key.display())))?;
                pem.push(b'\n');
                pem.extend_from_slice(&k);
            }
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| cfg_err(format!("client certificate {}: {e}", cert.display())))?;
            b = b.identity(id);
        }
        let http = b.build().map_err(|e| cfg_err(format!("HTTP client: {e}")))?;
        Ok(Session {
            cloud,
            http,
            token: RwLock::new(None),
            auth_lock: tokio::sync::Mutex::new((0, None)),
            auth_attempts: AtomicU64::new(0),
            auth_finished: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            microversions: Mutex::new(HashMap::new()),
            timeout,
            stats: SessionStats::default(),
            clock_offset_ms: AtomicI64::new(i64::MIN),
        })
    }

    pub fn cloud(&self) -> &CloudConfig {
        &self.cloud
    }
    pub fn cloud_name(&self) -> &str {
        &self.cloud.name
    }
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn err(&self, kind: ErrorKind, service: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(kind, &self.cloud.name, service, message)
    }

    /// The current token, if any (no I/O).
    pub fn current_token(&self) -> Option<Arc<Token>> {
        self.token.read().ok().and_then(|t| t.clone())
    }

    fn token_fresh(t: &Token) -> bool {
        match t.expires_at {
            Some(exp) => (exp - Utc::now()).num_seconds() >= MIN_TOKEN_LIFE,
            None => true,
        }
    }

    /// A token with more than two minutes to live, authenticating when needed.
    pub async fn token(&self) -> Result<Arc<Token>> {
        if let Some(t) = self.current_token() {
            if Self::token_fresh(&t) {
                return Ok(t);
            }
        }
        let seen = self.current_token().map(|t| t.generation);
        self.reauthenticate(seen).await
    }

    /// Authenticate unless another caller already replaced the token of generation
    /// `seen`: concurrent callers that all saw a 401 share one re-authentication.
    pub async fn reauthenticate(&self, seen: Option<u64>) -> Result<Arc<Token>> {
        // An attempt under way when this caller arrived answers for it too.
        let finished = self.auth_finished.load(Ordering::SeqCst);
        let started = self.auth_attempts.load(Ordering::SeqCst);
        let awaited = (started > finished).then_some(started);
        let mut last = self.auth_lock.lock().await;
        if let Some(t) = self.current_token() {
            if Some(t.generation) != seen && Self::token_fresh(&t) {
                return Ok(t);
            }
        }
        if let ((n, Some(e)), Some(a)) = (&*last, awaited) {
            if *n >= a {
                return Err(e.clone());
            }
        }
        let n = self.auth_attempts.fetch_add(1, Ordering::SeqCst) + 1;
        let outcome = self.authenticate().await;
        self.auth_finished.store(n, Ordering::SeqCst);
        match outcome {
            Ok(t) => {
                *last = (n, None);
                let t = Arc::new(t);
                if let Ok(mut w) = self.token.write() {
                    *w = Some(t.clone());
                }
                Ok(t)
            }
            Err(e) => {
                *last = (n, Some(e.clone()));
                Err(e)
            }
        }
    }

    /// Forget the token (the next request authenticates).
    pub fn invalidate(&self) {
        if let Ok(mut w) = self.token.write() {
            *w = None;
        }
    }

    fn auth_url(&self) -> String {
        let base = self.cloud.auth_url.trim_end_matches('/');
        if base.ends_with("/v3") {
            format!("{base}/auth/tokens")
        } else {
            format!("{base}/v3/auth/tokens")
        }
    }

    async fn authenticate(&self) -> Result<Token> {
        self.stats.authentications.fetch_add(1, Ordering::Relaxed);
        let url = self.auth_url();
        let body = auth_body(&self.cloud.auth);
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        tally();
        let resp = self
            .http
            .post(&url)
            .header("Accept", "application/json")
            .json(&body)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.transport_error("identity", "POST", "/v3/auth/tokens", e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let rid = request_id(&headers);
        let body = read_body(resp).await.map_err(|e| self.body_error("identity", "POST", "/v3/auth/tokens", e))?;
        let text = String::from_utf8_lossy(&body).into_owned();
        if status != 201 && status != 200 {
            let msg = error_message(&text).unwrap_or_else(|| format!("HTTP {status}"));
            // Keystone answers a dead token given to the token method with 404.
            let kind = if status == 404 { ErrorKind::Unauthorized } else { classify(status, &msg) };
            let mut e = self.err(kind, "identity", msg);
            e.status = Some(status);
            e.method = "POST".into();
            e.path = "/v3/auth/tokens".into();
            e.request_id = rid;
            if headers.contains_key("openstack-auth-receipt") {
                e.message = format!("{}: additional authentication (MFA) is required", e.message);
            }
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(cloud = %self.cloud.name, status, request_id = ?e.request_id, "authentication failed: {}", e.message);
            return Err(e);
        }
        let Some(id) = headers.get("x-subject-token").and_then(|v| v.to_str().ok()) else {
            return Err(self.err(
                ErrorKind::InvalidResponse,
                "identity",
                "token response without X-Subject-Token header",
            ));
        };
        let parsed: TokenBody = serde_json::from_slice(text.as_bytes())
            .map_err(|e| self.err(ErrorKind::InvalidResponse, "identity", format!("token body: {e}")))?;
        let t = parsed.token;
        if t.catalog.is_empty() {
            tracing::warn!(cloud = %self.cloud.name, "token has an empty service catalog");
        }
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Token {
            id: Secret::new(id),
            expires_at: t.expires_at,
            catalog: t.catalog,
            project_id: t.project.as_ref().and_then(|p| p.id.clone()),
            project_name: t.project.as_ref().and_then(|p| p.name.clone()),
            user_id: t.user.as_ref().and_then(|u| u.id.clone()),
            user_name: t.user.as_ref().and_then(|u| u.name.clone()),
            roles: t.roles.into_iter().filter_map(|r| r.name).collect(),
            generation,
        })
    }

    /// The endpoint URL of a service for this cloud's interface and region.
    pub fn endpoint_in(&self, token: &Token, service: &str) -> Result<Url> {
        let service = canonical_service_type(service);
        let raw = if let Some(o) = self.cloud.endpoint_overrides.get(service) {
            o.clone()
        } else {
            select_endpoint(&token.catalog, service, self.cloud.interface.as_str(), self.cloud.region.as_deref())
                .ok_or_else(|| {
                    let offered: Vec<String> = token
                        .catalog
                        .iter()
                        .filter(|c| canonical_service_type(&c.service_type) == service)
                        .flat_map(|c| c.endpoints.iter().map(|e| format!("{}@{}", e.interface, e.region())))
                        .collect();
                    self.err(
                        ErrorKind::EndpointNotFound,
                        service,
                        format!(
                            "the catalog has no {} endpoint for interface {} in region {}{}",
                            service,
                            self.cloud.interface.as_str(),
                            self.cloud.region.as_deref().unwrap_or("(any)"),
                            if offered.is_empty() {
                                String::new()
                            } else {
                                format!(" (offered: {})", offered.join(", "))
                            }
                        ),
                    )
                })?
        };
        let raw = raw.replace("%(project_id)s", token.project_id.as_deref().unwrap_or(""));
        let mut url = Url::parse(raw.trim_end_matches('/'))
            .map_err(|e| self.err(ErrorKind::InvalidResponse, service, format!("endpoint URL `{raw}`: {e}")))?;
        let has_version = url.path_segments().is_some_and(|mut s| s.any(is_version_segment));
        if !has_version {
            if let Some(v) = version_suffix(service) {
                let mut path = url.path().trim_end_matches('/').to_string();
                path.push('/');
                path.push_str(v);
                if service == "block-storage" {
                    if let Some(p) = &token.project_id {
                        path.push('/');
                        path.push_str(p);
                    }
                }
                url.set_path(&path);
            }
        }
        Ok(url)
    }

    pub async fn endpoint(&self, service: &str) -> Result<Url> {
        let t = self.token().await?;
        self.endpoint_in(&t, service)
    }

    /// The microversion sent to a service: min(tested ceiling, server maximum),
    /// negotiated once from the service's version document. A discovery that fails
    /// transiently is not remembered (the next request tries again) and fails the
    /// request: sending none would silently fall back to the oldest API.
    pub async fn microversion(&self, service: &str) -> Result<Option<(u32, u32)>> {
        let ceiling = match service {
            "compute" => COMPUTE_MICROVERSION,
            "block-storage" => VOLUME_MICROVERSION,
            _ => return Ok(None),
        };
        if let Some(v) = self.microversions.lock().ok().and_then(|m| m.get(service).cloned()) {
            return Ok(v);
        }
        let negotiated = match self.discover_versions(service).await? {
            Some((min, max)) if min <= ceiling => Some(if max < ceiling { max } else { ceiling }),
            Some((min, _)) => {
                tracing::warn!(cloud = %self.cloud.name, service, "service minimum microversion {}.{} is above the tested {}.{}", min.0, min.1, ceiling.0, ceiling.1);
                Some(min)
            }
            None => None,
        };
        if let Ok(mut m) = self.microversions.lock() {
            m.insert(service.to_string(), negotiated);
        }
        Ok(negotiated)
    }

    async fn discover_versions(&self, service: &str) -> Result<Option<((u32, u32), (u32, u32))>> {
        let token = self.token().await?;
        let ep = self.endpoint_in(&token, service)?;
        // Cut the URL after its version segment: .../v2.1/<project> → .../v2.1/
        let mut root = ep.clone();
        let segs: Vec<String> = ep.path_segments().map(|s| s.map(String::from).collect()).unwrap_or_default();
        let Some(idx) = segs.iter().position(|s| is_version_segment(s)) else { return Ok(None) };
        let Some(major) = segs.get(idx).cloned() else { return Ok(None) };
        root.set_path(&format!("{}/", segs.get(..=idx).unwrap_or_default().join("/")));
        let mut candidates = vec![root.clone()];
        let mut host_root = root.clone();
        host_root.set_path(&format!("{}/", segs.get(..idx).unwrap_or_default().join("/")));
        candidates.push(host_root);
        for url in candidates {
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            tally();
            let resp = self
                .http
                .get(url.clone())
                .header("Accept", "application/json")
                .header("X-Auth-Token", token.id.expose())
                .timeout(self.timeout)
                .send()
                .await
                .map_err(|e| self.transport_error(service, "GET", url.path(), e))?;
            let status = resp.status().as_u16();
            if status >= 500 {
                let mut e =
                    self.err(ErrorKind::Transient, service, format!("version discovery answered HTTP {status}"));
                e.status = Some(status);
                e.method = "GET".into();
                e.path = url.path().to_string();
                e.request_id = request_id(resp.headers());
                return Err(e);
            }
            if !resp.status().is_success() && status != 300 {
                continue;
            }
            let Ok(body) = read_body(resp).await else { continue };
            let Ok(v) = serde_json::from_slice::<Value>(&body) else { continue };
            let mut docs = Vec::new();
            if let Some(d) = v.get("version") {
                docs.push(d.clone());
            }
            if let Some(Value::Array(a)) = v.get("versions") {
                docs.extend(a.iter().cloned());
            }
            if let Some(Value::Array(a)) = v.get("versions").and_then(|x| x.get("values")) {
                docs.extend(a.iter().cloned());
            }
            let want_major = major.trim_start_matches('v').split('.').next().unwrap_or("").to_string();
            for d in docs {
                let id = d.get("id").and_then(Value::as_str).unwrap_or("");
                let id_major = id.trim_start_matches('v').split('.').next().unwrap_or("");
                if id_major != want_major {
                    continue;
                }
                let max = d.get("version").and_then(Value::as_str).and_then(parse_version);
                let min = d.get("min_version").and_then(Value::as_str).and_then(parse_version);
                if let (Some(min), Some(max)) = (min, max) {
                    return Ok(Some((min, max)));
                }
            }
        }
        Ok(None)
    }

    fn body_error(&self, service: &str, method: &str, path: &str, e: BodyError) -> ApiError {
        match e {
            BodyError::Transport(e) => self.transport_error(service, method, path, e),
            BodyError::TooLarge => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                let mut err = self.err(
                    ErrorKind::InvalidResponse,
                    service,
                    format!("the answer is larger than {} MiB: not read", MAX_BODY / (1024 * 1024)),
                );
                err.method = method.to_string();
                err.path = path.to_string();
                err
            }
        }
    }

    fn transport_error(&self, service: &str, method: &str, path: &str, e: reqwest::Error) -> ApiError {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        let message = super::error::describe_reqwest(&e);
        let mut err = self.err(ErrorKind::Transient, service, message);
        err.method = method.to_string();
        err.path = path.to_string();
        tracing::warn!(cloud = %self.cloud.name, service, method, path, "{}", err.message);
        err
    }

    /// Send one request to a service. Handles token refresh, a single retry after
    /// re-authentication on 401, `Retry-After` on idempotent reads, and turns every
    /// failure into a classified `ApiError`.
    pub async fn request(&self, service: &str, req: Req) -> Result<Response> {
        let service = canonical_service_type(service).to_string();
        let mv = self.microversion(&service).await?;
        let mut reauthed = false;
        let mut rate_retries = 0;
        loop {
            let token = self.token().await?;
            let base = self.endpoint_in(&token, &service)?;
            let url = if req.path.starts_with("http://") || req.path.starts_with("https://") {
                // An absolute URL must stay on the service's endpoint.
                resolve_link(&base, &base, &req.path)
                    .map_err(|e| self.err(ErrorKind::InvalidResponse, &service, e.to_string()))?
            } else {
                join_path(&base, &req.path)
            };
            let path_for_errors = url.path().to_string();
            let mut rb = self
                .http
                .request(req.method.clone(), url.clone())
                .header(
                    "X-Auth-Token",
                    HeaderValue::from_str(token.id.expose()).map_err(|_| {
                        self.err(ErrorKind::InvalidResponse, "identity", "token is not a valid header value")
                    })?,
                )
                .header("Accept", "application/json")
                .timeout(req.timeout.unwrap_or(self.timeout));
            if !req.query.is_empty() {
                rb = rb.query(&req.query);
            }
            if let Some((a, b)) = mv {
                match service.as_str() {
                    "compute" => {
                        rb = rb
                            .header("OpenStack-API-Version", format!("compute {a}.{b}"))
                            .header("X-OpenStack-Nova-API-Version", format!("{a}.{b}"));
                    }
                    "block-storage" => {
                        rb = rb.header("OpenStack-API-Version", format!("volume {a}.{b}"));
                    }
                    _ => {}
                }
            }
            if let Some(b) = &req.body {
                rb = rb.json(b);
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            tally();
            let resp = rb
                .send()
                .await
                .map_err(|e| self.transport_error(&service, req.method.as_str(), &path_for_errors, e))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let rid = request_id(&headers);
            let body = read_body(resp)
                .await
                .map_err(|e| self.body_error(&service, req.method.as_str(), &path_for_errors, e))?;
            if (200..300).contains(&status) || status == 300 {
                self.note_clock(&headers);
                return Ok(Response { status, headers, body, request_id: rid });
            }
            let text = String::from_utf8_lossy(&body);
            let msg = error_message(&text).unwrap_or_else(|| format!("HTTP {status}"));
            let kind = classify(status, &msg);
            if kind == ErrorKind::Unauthorized && !reauthed {
                reauthed = true;
                tracing::info!(cloud = %self.cloud.name, service = %service, request_id = ?rid, "401 from service; re-authenticating once");
                self.reauthenticate(Some(token.generation)).await?;
                continue;
            }
            let ra = retry_after(&headers);
            if kind == ErrorKind::RateLimited && req.method == Method::GET && rate_retries < 2 {
                if let Some(d) = ra.filter(|d| *d <= MAX_RETRY_AFTER) {
                    rate_retries += 1;
                    tokio::time::sleep(d).await;
                    continue;
                }
            }
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            let mut e = self.err(kind, &service, msg);
            e.status = Some(status);
            e.method = req.method.to_string();
            e.path = path_for_errors;
            e.request_id = rid;
            e.retry_after = ra;
            tracing::warn!(
                cloud = %self.cloud.name, service = %service, status, method = %e.method, path = %e.path,
                request_id = e.request_id.as_deref().unwrap_or("-"), "API error: {}", e.message
            );
            return Err(e);
        }
    }

    /// `request` and decode the JSON body.
    pub async fn json<T: serde::de::DeserializeOwned>(&self, service: &str, req: Req) -> Result<(T, Response)> {
        let r = self.request(service, req).await?;
        let v = serde_json::from_slice::<T>(&r.body).map_err(|e| {
            let mut err = self.err(ErrorKind::InvalidResponse, service, format!("cannot decode response: {e}"));
            err.request_id = r.request_id.clone();
            err.status = Some(r.status);
            err
        })?;
        Ok((v, r))
    }
}

/// Join a path (with optional query) below an endpoint URL.
pub fn join_path(base: &Url, path: &str) -> Url {
    let mut u = base.clone();
    let (p, q) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let mut full = u.path().trim_end_matches('/').to_string();
    if !p.is_empty() {
        if !p.starts_with('/') {
            full.push('/');
        }
        full.push_str(p);
    }
    u.set_path(&full);
    u.set_query(q);
    u
}

/// Pick an endpoint from a catalog by service type (with aliases), interface and
/// region (`region_id`, else the deprecated `region`).
pub fn select_endpoint(
    catalog: &[CatalogEntry],
    service: &str,
    interface: &str,
    region: Option<&str>,
) -> Option<String> {
    let want = canonical_service_type(service);
    let interface = interface.trim_end_matches("URL");
    // Prefer the exact type over aliases (volumev3 over volumev2).
    let mut entries: Vec<&CatalogEntry> =
        catalog.iter().filter(|c| canonical_service_type(&c.service_type) == want).collect();
    crate::domain::sort::sort_by_key(&mut entries, |c| match c.service_type.as_str() {
        t if t == service => 0,
        "block-storage" | "volumev3" => 1,
        "volumev2" => 3,
        _ => 2,
    });
    for c in entries {
        for e in &c.endpoints {
            if e.interface.trim_end_matches("URL") != interface {
                continue;
            }
            if let Some(r) = region {
                if e.region() != r {
                    continue;
                }
            }
            return Some(e.url.clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_stay_on_the_endpoint() {
        let ep = Url::parse("http://h:8080/v2").unwrap();
        let prefix = Url::parse("http://h:8080").unwrap();
        let ok = resolve_link(&ep, &prefix, "/v2/images?marker=x").unwrap();
        assert_eq!(ok.as_str(), "http://h:8080/v2/images?marker=x");
        for bad in
            ["@evil:80/v2/images", "http://evil/v2/images", "//evil/x", "https://h:8080/v2", "http://u:p@h:8080/x"]
        {
            let r = resolve_link(&ep, &prefix, bad);
            assert!(r.as_ref().is_err() || r.as_ref().is_ok_and(|u| u.host_str() == Some("h")), "{bad}: {r:?}");
            if let Ok(u) = r {
                assert!(u.username().is_empty() && u.port_or_known_default() == Some(8080), "{bad}: {u}");
            }
        }
        let with_path = Url::parse("http://h/image").unwrap();
        let u = resolve_link(&Url::parse("http://h/image/v2").unwrap(), &with_path, "/v2/images?marker=1").unwrap();
        assert_eq!(u.as_str(), "http://h/image/v2/images?marker=1");
    }

    #[test]
    fn retry_after_never_panics_and_is_capped() {
        let mut h = HeaderMap::new();
        for (v, want) in [
            ("5", Some(Duration::from_secs(5))),
            ("0.5", Some(Duration::from_millis(500))),
            ("1e300", Some(RETRY_AFTER_CAP)),
            ("inf", Some(RETRY_AFTER_CAP)),
            ("-3", Some(Duration::ZERO)),
            ("NaN", None),
            ("soon", None),
        ] {
            h.insert("retry-after", HeaderValue::from_static(v));
            assert_eq!(retry_after(&h), want, "{v}");
        }
    }
    use crate::config::clouds::DomainRef;

    #[test]
    fn auth_bodies_follow_keystone_shapes() {
        let pw = AuthMethod::Password {
            user: UserRef {
                id: None,
                name: Some("admin".into()),
                domain: DomainRef { id: None, name: Some("Default".into()) },
            },
            password: Secret::new("s3cret"),
            scope: Scope::Project {
                id: None,
                name: Some("demo".into()),
                domain: DomainRef { id: Some("default".into()), name: None },
            },
        };
        let b = auth_body(&pw);
        assert_eq!(b["auth"]["identity"]["password"]["user"]["name"], "admin");
        assert_eq!(b["auth"]["identity"]["password"]["user"]["domain"]["name"], "Default");
        assert_eq!(b["auth"]["scope"]["project"]["name"], "demo");
        assert_eq!(b["auth"]["scope"]["project"]["domain"]["id"], "default");
        let ac = AuthMethod::ApplicationCredential {
            id: Some("abc".into()),
            name: None,
            user: None,
            secret: Secret::new("x"),
        };
        let b = auth_body(&ac);
        assert_eq!(b["auth"]["identity"]["methods"][0], "application_credential");
        assert!(b["auth"].get("scope").is_none(), "application credentials must not send a scope");
        let tok = AuthMethod::Token { token: Secret::new("t"), scope: Scope::System };
        assert_eq!(auth_body(&tok)["auth"]["scope"]["system"]["all"], true);
    }

    #[test]
    fn secrets_do_not_reach_debug_output() {
        let pw = AuthMethod::Password {
            user: UserRef { id: Some("u".into()), name: None, domain: DomainRef::default() },
            password: Secret::new("hunter2"),
            scope: Scope::System,
        };
        assert!(!format!("{pw:?}").contains("hunter2"));
    }

    #[test]
    fn joins_paths_and_queries() {
        let base = Url::parse("http://h:8774/v2.1").unwrap();
        assert_eq!(join_path(&base, "/servers/detail").as_str(), "http://h:8774/v2.1/servers/detail");
        let base = Url::parse("https://h/image").unwrap();
        assert_eq!(
            join_path(&base, "/v2/images?marker=x&limit=2").as_str(),
            "https://h/image/v2/images?marker=x&limit=2"
        );
    }

    #[test]
    fn version_segments() {
        assert!(is_version_segment("v2.1"));
        assert!(is_version_segment("v3"));
        assert!(!is_version_segment("volumes"));
        assert!(!is_version_segment("v"));
        assert_eq!(parse_version("2.104"), Some((2, 104)));
    }
}
