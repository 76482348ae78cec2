//! Simulated Keystone v3: version documents, token issue (password by user id or
//! name with domains, application credential by id or name, token), validation,
//! revocation and the catalog of every simulated service.

use super::http::*;
use super::world::World;
use crate::domain::json::json;
use crate::domain::json::Obj;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use serde_json::Value;

pub fn router() -> Router<S> {
    Router::new()
        .route("/identity", get(h1(versions)))
        .route("/identity/", get(h1(versions)))
        .route("/identity/v3", get(h1(version)))
        .route("/identity/v3/", get(h1(version)))
        .route("/identity/v3/auth/tokens", get(h3(validate)).head(h2(check)).post(h3(issue)).delete(h2(revoke)))
        .route("/identity/v3/auth/catalog", get(h2(catalog_of_token)))
        .route("/identity/v3/auth/projects", get(h2(token_projects)))
        .route(
            "/identity/v3/users/{uid}/application_credentials",
            axum::routing::post(h4(app_cred_create)).get(h4(app_cred_list)),
        )
        .route(
            "/identity/v3/users/{uid}/application_credentials/{id}",
            axum::routing::get(h3(app_cred_show)).delete(h3(app_cred_delete)),
        )
        .route("/identity/v3/regions", get(hk3(list, Kind::Region)))
        .route("/identity/v3/regions/{id}", get(hk3(show, Kind::Region)))
        .route("/identity/v3/services", get(hk3(list, Kind::Service)))
        .route("/identity/v3/services/{id}", get(hk3(show, Kind::Service)))
        .route("/identity/v3/endpoints", get(hk3(list, Kind::Endpoint)))
        .route("/identity/v3/endpoints/{id}", get(hk3(show, Kind::Endpoint)))
        .route("/identity/v3/domains", get(hk3(list, Kind::Domain)))
        .route("/identity/v3/domains/{id}", get(hk3(show, Kind::Domain)))
        .route("/identity/v3/projects", get(hk3(list, Kind::Project)))
        .route("/identity/v3/projects/{id}", get(hk3(show, Kind::Project)))
        .route("/identity/v3/users", get(hk3(list, Kind::User)))
        .route("/identity/v3/users/{id}", get(hk3(show, Kind::User)))
        .route("/identity/v3/roles", get(hk3(list, Kind::Role)))
        .route("/identity/v3/roles/{id}", get(hk3(show, Kind::Role)))
        .route("/identity/v3/role_assignments", get(h3(role_assignments)))
}

fn stable_id(name: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).simple().to_string()
}

fn version_doc(base: &str) -> Value {
    json!({
        "id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/identity/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
    })
}

fn versions(State(s): State<S>) -> Response {
    json_response(300, &json!({"versions": {"values": [version_doc(&s.base())]}}))
}

fn version(State(s): State<S>) -> Response {
    json_response(200, &json!({"version": version_doc(&s.base())}))
}

/// The simulated services: (type, name, path under the base URL, where
/// `%(project_id)s` stands for the project as in Keystone's endpoint table).
const SERVICES: [(&str, &str, &str); 7] = [
    ("identity", "keystone", "/identity"),
    ("compute", "nova", "/compute/v2.1"),
    ("image", "glance", "/image"),
    ("network", "neutron", "/networking"),
    ("block-storage", "cinder", "/volume/v3/%(project_id)s"),
    ("volumev3", "cinderv3", "/volume/v3/%(project_id)s"),
    ("metric", "gnocchi", "/metric"),
];

const INTERFACES: [&str; 3] = ["public", "internal", "admin"];

fn endpoint_id(service_type: &str, interface: &str) -> String {
    stable_id(&format!("{service_type}-{interface}"))
}

/// The service catalog for a project (URLs with the project id substituted).
pub fn catalog(base: &str, region: &str, project_id: &str) -> Value {
    Value::Array(
        SERVICES
            .iter()
            .map(|(t, n, path)| {
                let url = format!("{base}{}", path.replace("%(project_id)s", project_id));
                let eps: Vec<Value> = INTERFACES
                    .iter()
                    .map(|i| json!({"id": endpoint_id(t, i), "interface": i, "region_id": region, "region": region, "url": url}))
                    .collect();
                json!({"type": t, "name": n, "id": stable_id(t), "endpoints": eps})
            })
            .collect(),
    )
}

fn domain_json(w: &World, id: &str) -> Value {
    let name = w.domains.iter().find(|d| d.id == id).map(|d| d.name.clone()).unwrap_or_default();
    json!({"id": id, "name": name})
}

fn token_body(s: &SimShared, w: &World, t: &TokenRec, with_catalog: bool) -> Value {
    let user = w.users.iter().find(|u| u.id == t.user_id);
    let mut tok = json!({
        "methods": t.methods,
        "user": {
            "domain": user.map(|u| domain_json(w, &u.domain_id)).unwrap_or(Value::Null),
            "id": t.user_id,
            "name": user.map(|u| u.name.clone()),
            "password_expires_at": Value::Null
        },
        "audit_ids": [t.audit_id],
        "expires_at": crate::domain::time::format_micros_z(&t.expires),
        "issued_at": crate::domain::time::format_micros_z(&t.issued),
        "is_domain": false,
        "roles": t.roles.iter().map(|r| json!({"id": stable_id(&format!("role-{r}")), "name": r})).collect::<Vec<_>>(),
    });
    if let Some(p) = t.project_id.as_ref().and_then(|p| w.project(p)) {
        tok.put("project", json!({"domain": domain_json(w, &p.domain_id), "id": p.id, "name": p.name}));
        if with_catalog {
            tok.put("catalog", catalog(&s.base(), &w.settings.region, &p.id));
        }
    } else if let Some(d) = &t.domain_scope {
        tok.put("domain", domain_json(w, d));
        if with_catalog {
            tok.put("catalog", json!([]));
        }
    } else if t.system {
        tok.put("system", json!({"all": true}));
        if with_catalog {
            tok.put("catalog", json!([]));
        }
    }
    if let Some(ac) = &t.app_cred {
        if let Some(a) = w.app_creds.iter().find(|a| &a.id == ac) {
            tok.put("application_credential", json!({"id": a.id, "name": a.name, "restricted": true}));
        }
    }
    json!({"token": tok})
}

/// A domain named in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainSel {
    Id(String),
    Name(String),
}

/// A user or project named in a request: by id, or by name within a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    Id(String),
    Name { name: String, domain: DomainSel },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCredSel {
    pub id: Option<String>,
    pub name: Option<String>,
    pub user: Option<Named>,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeSel {
    Project(Named),
    Domain(DomainSel),
    System,
}

/// A parsed `POST /v3/auth/tokens` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    pub methods: Vec<String>,
    pub password: Option<(Named, String)>,
    pub token: Option<String>,
    pub application_credential: Option<AppCredSel>,
    pub scope: Option<ScopeSel>,
}

const MALFORMED: &str = "The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.";

fn domain_sel(d: &Value) -> Option<DomainSel> {
    d.get("id")
        .and_then(Value::as_str)
        .map(|i| DomainSel::Id(i.into()))
        .or_else(|| d.get("name").and_then(Value::as_str).map(|n| DomainSel::Name(n.into())))
}

fn named(v: &Value, what: &str) -> Result<Named, String> {
    if let Some(id) = v.get("id").and_then(Value::as_str) {
        return Ok(Named::Id(id.to_string()));
    }
    let Some(name) = v.get("name").and_then(Value::as_str) else {
        return Err(format!("Expecting to find id or name in {what} - {MALFORMED}"));
    };
    let domain = v
        .get("domain")
        .and_then(domain_sel)
        .ok_or_else(|| format!("Expecting to find domain in {what}. {MALFORMED}"))?;
    Ok(Named::Name { name: name.to_string(), domain })
}

/// Why Keystone refuses an authentication request before looking anyone up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthParseError {
    /// A 400: the body is not an authentication request.
    #[error("{0}")]
    Malformed(String),
    /// A 401: a method Keystone does not offer.
    #[error("Attempted to authenticate with an unsupported method ({0}).")]
    Unsupported(String),
}

impl From<String> for AuthParseError {
    fn from(m: String) -> Self {
        AuthParseError::Malformed(m)
    }
}

/// Parse an authentication request as Keystone reads it.
pub fn parse_auth(body: &Value) -> Result<AuthRequest, AuthParseError> {
    let auth = body.get("auth").ok_or_else(|| format!("Expecting to find auth in request body. {MALFORMED}"))?;
    let identity = auth.get("identity").ok_or_else(|| format!("Expecting to find identity in auth. {MALFORMED}"))?;
    let methods: Vec<String> = identity
        .get("methods")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|m| m.as_str().map(String::from)).collect())
        .unwrap_or_default();
    if methods.is_empty() {
        return Err(AuthParseError::Malformed(format!("Expecting to find methods in identity. {MALFORMED}")));
    }
    let mut r = AuthRequest {
        methods: methods.clone(),
        password: None,
        token: None,
        application_credential: None,
        scope: None,
    };
    for m in &methods {
        match m.as_str() {
            "password" => {
                let u = identity
                    .pointer("/password/user")
                    .ok_or_else(|| format!("Expecting to find user in password. {MALFORMED}"))?;
                let pw = u.get("password").and_then(Value::as_str).unwrap_or("").to_string();
                r.password = Some((named(u, "user")?, pw));
            }
            "token" => {
                r.token = Some(identity.pointer("/token/id").and_then(Value::as_str).unwrap_or("").to_string());
            }
            "application_credential" => {
                let ac = identity.get("application_credential").cloned().unwrap_or(Value::Null);
                let id = ac.get("id").and_then(Value::as_str).map(String::from);
                let name = ac.get("name").and_then(Value::as_str).map(String::from);
                if id.is_none() && name.is_none() {
                    return Err(AuthParseError::Malformed(format!(
                        "Expecting to find id or name in application_credential. {MALFORMED}"
                    )));
                }
                let user = match (&id, ac.get("user")) {
                    (None, Some(u)) => Some(named(u, "user")?),
                    (None, None) => {
                        return Err(AuthParseError::Malformed(format!(
                            "Expecting to find user in application_credential. {MALFORMED}"
                        )))
                    }
                    _ => None,
                };
                let secret = ac.get("secret").and_then(Value::as_str).unwrap_or("").to_string();
                r.application_credential = Some(AppCredSel { id, name, user, secret });
            }
            other => return Err(AuthParseError::Unsupported(other.to_string())),
        }
    }
    if let Some(scope) = auth.get("scope") {
        r.scope = if let Some(p) = scope.get("project") {
            Some(ScopeSel::Project(named(p, "project")?))
        } else if let Some(d) = scope.get("domain") {
            Some(ScopeSel::Domain(
                domain_sel(d).ok_or_else(|| format!("Expecting to find id or name in domain. {MALFORMED}"))?,
            ))
        } else if scope.get("system").is_some() {
            Some(ScopeSel::System)
        } else {
            None
        };
    }
    Ok(r)
}

fn find_domain(w: &World, d: &DomainSel) -> Option<String> {
    match d {
        DomainSel::Id(id) => w.domains.iter().find(|x| &x.id == id).map(|x| x.id.clone()),
        DomainSel::Name(n) => w.domains.iter().find(|x| &x.name == n).map(|x| x.id.clone()),
    }
}

fn find_user(w: &World, u: &Named) -> Option<String> {
    match u {
        Named::Id(id) => w.users.iter().find(|x| &x.id == id).map(|x| x.id.clone()),
        Named::Name { name, domain } => {
            let did = find_domain(w, domain)?;
            w.users.iter().find(|x| &x.name == name && x.domain_id == did).map(|x| x.id.clone())
        }
    }
}

fn find_project(w: &World, p: &Named) -> Option<String> {
    match p {
        Named::Id(id) => w.projects.iter().find(|x| &x.id == id).map(|x| x.id.clone()),
        Named::Name { name, domain } => {
            let did = find_domain(w, domain)?;
            w.projects.iter().find(|x| &x.name == name && x.domain_id == did).map(|x| x.id.clone())
        }
    }
}

const UNAUTH: &str = "The request you have made requires authentication.";

fn issue(State(s): State<S>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let q = query_pairs(q.as_deref());
    let nocatalog = q.iter().any(|(k, _)| k == "nocatalog");
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return keystone_error(400, &format!("Expecting to find auth in request body. {MALFORMED}")),
    };
    let req = match parse_auth(&body) {
        Ok(r) => r,
        Err(e @ AuthParseError::Unsupported(_)) => return keystone_error(401, &e.to_string()),
        Err(e) => return keystone_error(400, &e.to_string()),
    };
    let w = s.world();
    let mut user_id: Option<String> = None;
    let mut app_cred: Option<String> = None;
    let mut bound_project: Option<String> = None;
    if let Some((u, pw)) = &req.password {
        match find_user(&w, u).and_then(|id| w.users.iter().find(|x| x.id == id)) {
            Some(user) if &user.password == pw => user_id = Some(user.id.clone()),
            _ => return keystone_error(401, UNAUTH),
        }
    }
    if let Some(tid) = &req.token {
        let rec = s.tokens.lock().ok().and_then(|t| t.get(tid).cloned());
        match rec {
            Some(r) if r.expires > Utc::now() => user_id = Some(r.user_id),
            _ => return keystone_error(404, &format!("Could not find token: {tid}.")),
        }
    }
    if let Some(ac) = &req.application_credential {
        let found = match (&ac.id, &ac.name, &ac.user) {
            (Some(id), _, _) => w.app_creds.iter().find(|a| &a.id == id),
            (None, Some(name), Some(u)) => {
                let Some(uid) = find_user(&w, u) else { return keystone_error(401, UNAUTH) };
                w.app_creds.iter().find(|a| &a.name == name && a.user_id == uid)
            }
            _ => None,
        };
        match found {
            Some(a) if a.secret == ac.secret => {
                user_id = Some(a.user_id.clone());
                app_cred = Some(a.id.clone());
                bound_project = Some(a.project_id.clone());
            }
            _ => return keystone_error(401, UNAUTH),
        }
        if body.pointer("/auth/scope").is_some() {
            return keystone_error(401, "Application credentials cannot request a scope.");
        }
    }
    let Some(uid) = user_id else { return keystone_error(401, UNAUTH) };
    let user = w.users.iter().find(|u| u.id == uid).cloned();
    let Some(user) = user else { return keystone_error(401, UNAUTH) };
    // Scope.
    let mut project_id = bound_project;
    let mut domain_scope = None;
    let mut system = false;
    match &req.scope {
        Some(ScopeSel::Project(p)) => {
            let Some(pid) = find_project(&w, p) else { return keystone_error(401, UNAUTH) };
            if !user.roles.iter().any(|(rp, _)| rp == &pid) {
                return keystone_error(401, &format!("User {} has no access to project {pid}", user.id));
            }
            project_id = Some(pid);
        }
        Some(ScopeSel::Domain(d)) => match find_domain(&w, d) {
            Some(did) => domain_scope = Some(did),
            None => return keystone_error(401, UNAUTH),
        },
        Some(ScopeSel::System) => system = true,
        None => {}
    }
    let roles: Vec<String> = match &project_id {
        Some(p) => user.roles.iter().filter(|(rp, _)| rp == p).map(|(_, r)| r.clone()).collect(),
        None if system || domain_scope.is_some() => user.roles.iter().map(|(_, r)| r.clone()).collect(),
        None => vec![],
    };
    let now = Utc::now();
    let rec = TokenRec {
        user_id: user.id.clone(),
        project_id,
        domain_scope,
        system,
        expires: super::clock::shifted(now, w.settings.token_lifetime_secs as f64 * 1000.0),
        issued: now,
        methods: req.methods.clone(),
        app_cred,
        roles,
        audit_id: uuid::Uuid::new_v4().simple().to_string().chars().take(22).collect(),
    };
    let token_id = format!("gAAAAA{}", uuid::Uuid::new_v4().simple());
    let body = token_body(&s, &w, &rec, !nocatalog);
    drop(w);
    if let Ok(mut t) = s.tokens.lock() {
        // Drop expired tokens now and then so the table stays small.
        if t.len() > 10_000 {
            let n = Utc::now();
            t.retain(|_, r| r.expires > n);
        }
        t.insert(token_id.clone(), rec);
    }
    let mut r = json_response(201, &body);
    if let Ok(v) = HeaderValue::from_str(&token_id) {
        r.headers_mut().insert("x-subject-token", v);
    }
    r.headers_mut().insert("vary", HeaderValue::from_static("X-Auth-Token"));
    r
}

fn subject(s: &SimShared, h: &HeaderMap) -> Result<(String, TokenRec), Response> {
    authenticate_any(s, h)?;
    let sub = h.get("x-subject-token").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let rec = s.tokens.lock().ok().and_then(|t| t.get(&sub).cloned());
    match rec {
        Some(r) if r.expires > Utc::now() => Ok((sub, r)),
        _ => Err(keystone_error(404, &format!("Could not find token: {sub}."))),
    }
}

/// Any valid token (unscoped allowed) in X-Auth-Token.
fn authenticate_any(s: &SimShared, h: &HeaderMap) -> Result<TokenRec, Response> {
    let tok = h.get("x-auth-token").and_then(|v| v.to_str().ok()).unwrap_or("");
    let rec = s.tokens.lock().ok().and_then(|t| t.get(tok).cloned());
    match rec {
        Some(r) if r.expires > Utc::now() => Ok(r),
        _ => Err(keystone_error(401, UNAUTH)),
    }
}

fn validate(State(s): State<S>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let (sub, rec) = match subject(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let nocatalog = query_pairs(q.as_deref()).iter().any(|(k, _)| k == "nocatalog");
    let w = s.world();
    let mut r = json_response(200, &token_body(&s, &w, &rec, !nocatalog));
    if let Ok(v) = HeaderValue::from_str(&sub) {
        r.headers_mut().insert("x-subject-token", v);
    }
    r
}

fn check(State(s): State<S>, h: HeaderMap) -> Response {
    match subject(&s, &h) {
        Ok(_) => empty(200),
        Err(r) => r,
    }
}

fn revoke(State(s): State<S>, h: HeaderMap) -> Response {
    match subject(&s, &h) {
        Ok((sub, _)) => {
            if let Ok(mut t) = s.tokens.lock() {
                t.remove(&sub);
            }
            empty(204)
        }
        Err(r) => r,
    }
}

fn catalog_of_token(State(s): State<S>, h: HeaderMap) -> Response {
    let rec = match authenticate_any(&s, &h) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let w = s.world();
    let cat = match &rec.project_id {
        Some(p) => catalog(&s.base(), &w.settings.region, p),
        None => json!([]),
    };
    json_response(
        200,
        &json!({"catalog": cat, "links": {"self": format!("{}/identity/v3/auth/catalog", s.base()), "previous": null, "next": null}}),
    )
}

fn token_projects(State(s): State<S>, h: HeaderMap) -> Response {
    let rec = match authenticate_any(&s, &h) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let w = s.world();
    let Some(user) = w.users.iter().find(|u| u.id == rec.user_id) else { return keystone_error(401, UNAUTH) };
    let projects: Vec<Value> = w
        .projects
        .iter()
        .filter(|p| user.roles.iter().any(|(rp, _)| rp == &p.id))
        .map(|p| json!({"id": p.id, "name": p.name, "domain_id": p.domain_id, "enabled": true, "is_domain": false, "parent_id": p.domain_id, "description": "", "links": {"self": format!("{}/identity/v3/projects/{}", s.base(), p.id)}}))
        .collect();
    json_response(
        200,
        &json!({"projects": projects, "links": {"self": format!("{}/identity/v3/auth/projects", s.base()), "previous": null, "next": null}}),
    )
}

fn app_cred_json(base: &str, a: &super::world::AppCred, secret: bool) -> Value {
    let mut v = json!({
        "id": a.id, "name": a.name, "description": a.description, "user_id": a.user_id, "project_id": a.project_id,
        "system": null, "expires_at": null, "unrestricted": a.unrestricted,
        "roles": a.roles.iter().map(|r| role_json(r)).collect::<Vec<_>>(),
        "links": {"self": format!("{base}/identity/v3/application_credentials/{}", a.id)}
    });
    if secret {
        v.put("secret", json!(a.secret));
    }
    v
}

/// A valid token of user `uid` itself (Keystone's policy for application credentials).
fn own_token(s: &SimShared, h: &HeaderMap, uid: &str, action: &str) -> Result<TokenRec, Response> {
    let rec = authenticate_any(s, h)?;
    if rec.user_id != uid {
        return Err(keystone_error(
            403,
            &format!("You are not authorized to perform the requested action: identity:{action}."),
        ));
    }
    Ok(rec)
}

/// `POST /v3/users/{user_id}/application_credentials`: bound to the token's project.
fn app_cred_create(
    State(s): State<S>,
    h: HeaderMap,
    axum::extract::Path(uid): axum::extract::Path<String>,
    body: Bytes,
) -> Response {
    let rec = match own_token(&s, &h, &uid, "create_application_credential") {
        Ok(r) => r,
        Err(r) => return r,
    };
    if rec.app_cred.is_some() {
        return keystone_error(
            403,
            "Using method 'application_credential' is not allowed for managing additional application credentials.",
        );
    }
    let Some(project) = rec.project_id.clone() else {
        return keystone_error(400, "Application credentials need a project-scoped token.");
    };
    let b: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(ac) = b.get("application_credential") else {
        return keystone_error(400, &format!("Expecting to find application_credential in request body. {MALFORMED}"));
    };
    let Some(name) = ac.get("name").and_then(Value::as_str) else {
        return keystone_error(400, &format!("'name' is a required property. {MALFORMED}"));
    };
    let mut w = s.world();
    if w.app_creds.iter().any(|a| a.user_id == uid && a.name == name) {
        return keystone_error(409, "Conflict occurred attempting to store application_credential - Duplicate entry.");
    }
    let secret = ac
        .get("secret")
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    // The token's roles, or the subset of them the request names.
    let held = super::world::effective_roles(&rec.roles);
    let roles = match ac.get("roles").and_then(Value::as_array).filter(|r| !r.is_empty()) {
        None => held,
        Some(asked) => {
            let mut roles = Vec::new();
            for r in asked {
                let found = held.iter().find(|h| {
                    r.get("name").and_then(Value::as_str) == Some(h.as_str())
                        || r.get("id").and_then(Value::as_str) == Some(role_id(h).as_str())
                });
                match found {
                    Some(h) => roles.push(h.clone()),
                    None => {
                        return keystone_error(
                            403,
                            "You are not authorized to perform the requested action: identity:create_application_credential.",
                        )
                    }
                }
            }
            roles
        }
    };
    let a = super::world::AppCred {
        id: uuid::Uuid::new_v4().simple().to_string(),
        name: name.to_string(),
        secret,
        user_id: uid,
        project_id: project,
        roles,
        description: ac.get("description").and_then(Value::as_str).map(String::from),
        unrestricted: ac.get("unrestricted").and_then(Value::as_bool),
    };
    let v = app_cred_json(&s.base(), &a, true);
    w.app_creds.push(a);
    json_response(201, &json!({"application_credential": v}))
}

/// `GET /v3/users/{user_id}/application_credentials`, `?name=` filters.
fn app_cred_list(
    State(s): State<S>,
    h: HeaderMap,
    axum::extract::Path(uid): axum::extract::Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(r) = own_token(&s, &h, &uid, "list_application_credentials") {
        return r;
    }
    let q = query_pairs(raw.as_deref());
    let name = q_get(&q, "name");
    let w = s.world();
    let base = s.base();
    let v: Vec<Value> = w
        .app_creds
        .iter()
        .filter(|a| a.user_id == uid && name.is_none_or(|n| n == a.name))
        .map(|a| app_cred_json(&base, a, false))
        .collect();
    let self_href = match raw.as_deref() {
        Some(r) if !r.is_empty() => format!("{base}/identity/v3/users/{uid}/application_credentials?{r}"),
        _ => format!("{base}/identity/v3/users/{uid}/application_credentials"),
    };
    json_response(
        200,
        &json!({"application_credentials": v, "links": {"self": self_href, "previous": null, "next": null}}),
    )
}

/// `GET /v3/users/{user_id}/application_credentials/{id}` (no secret).
fn app_cred_show(
    State(s): State<S>,
    h: HeaderMap,
    axum::extract::Path((uid, id)): axum::extract::Path<(String, String)>,
) -> Response {
    if let Err(r) = own_token(&s, &h, &uid, "get_application_credential") {
        return r;
    }
    let w = s.world();
    match w.app_creds.iter().find(|a| a.id == id && a.user_id == uid) {
        Some(a) => json_response(200, &json!({"application_credential": app_cred_json(&s.base(), a, false)})),
        None => keystone_error(404, &format!("Could not find Application Credential: {id}.")),
    }
}

fn app_cred_delete(
    State(s): State<S>,
    h: HeaderMap,
    axum::extract::Path((uid, id)): axum::extract::Path<(String, String)>,
) -> Response {
    if let Err(r) = own_token(&s, &h, &uid, "delete_application_credential") {
        return r;
    }
    let mut w = s.world();
    let before = w.app_creds.len();
    w.app_creds.retain(|a| !(a.id == id && a.user_id == uid));
    if w.app_creds.len() == before {
        return keystone_error(404, &format!("Could not find Application Credential: {id}."));
    }
    empty(204)
}

/// The Keystone collections the simulator reads out of its world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Region,
    Service,
    Endpoint,
    Domain,
    Project,
    User,
    Role,
}

impl Kind {
    /// (collection, member, policy noun).
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Kind::Region => ("regions", "region", "region"),
            Kind::Service => ("services", "service", "service"),
            Kind::Endpoint => ("endpoints", "endpoint", "endpoint"),
            Kind::Domain => ("domains", "domain", "domain"),
            Kind::Project => ("projects", "project", "project"),
            Kind::User => ("users", "user", "user"),
            Kind::Role => ("roles", "role", "role"),
        }
    }

    /// The query parameters Keystone filters this collection by (others are ignored).
    fn filters(self) -> &'static [&'static str] {
        match self {
            Kind::Region => &["parent_region_id"],
            Kind::Service => &["type", "name"],
            Kind::Endpoint => &["interface", "service_id", "region_id"],
            Kind::Domain => &["name", "enabled"],
            Kind::Project => &["name", "domain_id", "enabled", "parent_id", "is_domain"],
            Kind::User => &["name", "domain_id", "enabled"],
            Kind::Role => &["name", "domain_id"],
        }
    }
}

fn self_link(base: &str, path: &str) -> Value {
    json!({"self": format!("{base}/identity/v3/{path}")})
}

fn role_id(name: &str) -> String {
    stable_id(&format!("role-{name}"))
}

/// Every role of the world: Keystone's bootstrap roles and any other a user holds.
fn role_names(w: &World) -> Vec<String> {
    let mut names: Vec<String> = super::world::BOOTSTRAP_ROLES.iter().map(|r| r.to_string()).collect();
    for u in &w.users {
        for (_, r) in &u.roles {
            if !names.contains(r) {
                names.push(r.clone());
            }
        }
    }
    names
}

fn role_json(name: &str) -> Value {
    let options = if super::world::BOOTSTRAP_ROLES.contains(&name) { json!({"immutable": true}) } else { json!({}) };
    json!({"id": role_id(name), "name": name, "domain_id": null, "description": null, "options": options})
}

/// Every member of a collection, in Keystone's shape.
fn members(base: &str, w: &World, kind: Kind) -> Vec<Value> {
    let region = &w.settings.region;
    let (coll, _, _) = kind.names();
    let link = |id: &str| self_link(base, &format!("{coll}/{id}"));
    match kind {
        Kind::Region => {
            vec![json!({"id": region, "description": "", "parent_region_id": null, "links": link(region)})]
        }
        Kind::Service => SERVICES
            .iter()
            .map(|(t, n, _)| json!({"id": stable_id(t), "name": n, "type": t, "enabled": true, "links": link(&stable_id(t))}))
            .collect(),
        Kind::Endpoint => SERVICES
            .iter()
            .flat_map(|(t, _, path)| {
                INTERFACES.iter().map(move |i| {
                    let id = endpoint_id(t, i);
                    json!({"id": id, "interface": i, "region_id": region, "region": region, "service_id": stable_id(t),
                        "url": format!("{base}{path}"), "enabled": true, "links": link(&id)})
                })
            })
            .collect(),
        Kind::Domain => w
            .domains
            .iter()
            .map(|d| {
                let description = if d.id == "default" { "The default domain" } else { "" };
                json!({"id": d.id, "name": d.name, "description": description, "enabled": true, "tags": [],
                    "options": {}, "links": link(&d.id)})
            })
            .collect(),
        Kind::Project => w
            .projects
            .iter()
            .map(|p| {
                json!({"id": p.id, "name": p.name, "domain_id": p.domain_id, "description": "", "enabled": true,
                    "parent_id": p.domain_id, "is_domain": false, "tags": [], "options": {}, "links": link(&p.id)})
            })
            .collect(),
        Kind::User => w
            .users
            .iter()
            .map(|u| {
                json!({"id": u.id, "name": u.name, "domain_id": u.domain_id, "enabled": true,
                    "password_expires_at": null, "options": {}, "links": link(&u.id)})
            })
            .collect(),
        Kind::Role => role_names(w)
            .iter()
            .map(|r| {
                let mut v = role_json(r);
                v.put("links", link(&role_id(r)));
                v
            })
            .collect(),
    }
}

/// Whether a member passes Keystone's exact-match filter `key=want`.
fn matches(v: &Value, key: &str, want: &str) -> bool {
    match v.get(key) {
        Some(Value::String(s)) => s == want,
        Some(Value::Bool(b)) => {
            let t = !matches!(want.to_ascii_lowercase().as_str(), "0" | "false" | "no" | "off");
            *b == t
        }
        Some(Value::Number(n)) => want.parse::<f64>().ok() == n.as_f64(),
        _ => false,
    }
}

/// The token of a caller Keystone lets do `identity:<action>` on anything: an admin.
fn admin_token(s: &SimShared, h: &HeaderMap, action: &str) -> Result<TokenRec, Response> {
    let rec = authenticate_any(s, h)?;
    if !rec.roles.iter().any(|r| r == "admin") {
        return Err(forbidden(action));
    }
    Ok(rec)
}

fn forbidden(action: &str) -> Response {
    keystone_error(403, &format!("You are not authorized to perform the requested action: identity:{action}."))
}

/// `GET /v3/<collection>`: regions for any token, the rest for admins.
fn list(State(s): State<S>, h: HeaderMap, RawQuery(q): RawQuery, kind: Kind) -> Response {
    let (coll, _, noun) = kind.names();
    let auth = match kind {
        Kind::Region => authenticate_any(&s, &h),
        _ => admin_token(&s, &h, &format!("list_{noun}s")),
    };
    if let Err(r) = auth {
        return r;
    }
    let pairs = query_pairs(q.as_deref());
    let w = s.world();
    let base = s.base();
    let items: Vec<Value> = members(&base, &w, kind)
        .into_iter()
        .filter(|v| {
            pairs.iter().filter(|(k, _)| kind.filters().contains(&k.as_str())).all(|(k, want)| matches(v, k, want))
        })
        .collect();
    let self_href = match q.as_deref() {
        Some(q) if !q.is_empty() => format!("{base}/identity/v3/{coll}?{q}"),
        _ => format!("{base}/identity/v3/{coll}"),
    };
    json_response(200, &json!({coll: items, "links": {"self": self_href, "previous": null, "next": null}}))
}

/// `GET /v3/<collection>/{id}`: a user may read itself and the project of its
/// token, an admin anything; regions are public.
fn show(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, kind: Kind) -> Response {
    let (_, member, noun) = kind.names();
    let rec = match authenticate_any(&s, &h) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let own = match kind {
        Kind::Region => true,
        Kind::User => rec.user_id == id,
        Kind::Project => rec.project_id.as_deref() == Some(id.as_str()),
        Kind::Domain => rec.domain_scope.as_deref() == Some(id.as_str()),
        _ => false,
    };
    if !own && !rec.roles.iter().any(|r| r == "admin") {
        return forbidden(&format!("get_{noun}"));
    }
    let w = s.world();
    match members(&s.base(), &w, kind).into_iter().find(|v| v["id"] == id.as_str()) {
        Some(v) => json_response(200, &json!({member: v})),
        None => keystone_error(404, &format!("Could not find {noun}: {id}.")),
    }
}

/// One row of `GET /v3/role_assignments`: a user's role on a project, direct or
/// (with `effective`) implied by another of its roles there.
#[derive(Debug, Clone, PartialEq)]
struct Assignment {
    user_id: String,
    project_id: String,
    role: String,
    /// The role that implies this one, when it is implied.
    prior: Option<String>,
}

fn assignments(w: &World, effective: bool) -> Vec<Assignment> {
    let mut out = Vec::new();
    for u in &w.users {
        for (p, r) in &u.roles {
            let direct = Assignment { user_id: u.id.clone(), project_id: p.clone(), role: r.clone(), prior: None };
            if out.contains(&direct) {
                continue;
            }
            out.push(direct);
            if !effective {
                continue;
            }
            let mut prior = r.clone();
            while let Some((_, implied)) = super::world::IMPLIED_ROLES.iter().find(|(pr, _)| *pr == prior) {
                if out.iter().any(|a| a.user_id == u.id && &a.project_id == p && a.role == *implied) {
                    break;
                }
                out.push(Assignment {
                    user_id: u.id.clone(),
                    project_id: p.clone(),
                    role: implied.to_string(),
                    prior: Some(prior.clone()),
                });
                prior = implied.to_string();
            }
        }
    }
    out
}

/// Keystone reads a flag as set unless its value is `0` or `false`.
fn flag(q: &[(String, String)], k: &str) -> bool {
    q.iter().any(|(a, v)| a == k && !matches!(v.to_ascii_lowercase().as_str(), "0" | "false"))
}

/// `GET /v3/role_assignments` (admins): filters `user.id`, `group.id`,
/// `role.id`, `scope.project.id`, `scope.domain.id`, `scope.system`; `effective`
/// adds the roles the assigned ones imply; `include_names` names everything.
fn role_assignments(State(s): State<S>, h: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    if let Err(r) = admin_token(&s, &h, "list_role_assignments") {
        return r;
    }
    let q = query_pairs(raw.as_deref());
    if q_get(&q, "user.id").is_some() && q_get(&q, "group.id").is_some() {
        return keystone_error(400, "Specify a user or group, not both.");
    }
    let effective = flag(&q, "effective");
    let names = flag(&q, "include_names");
    let w = s.world();
    let base = s.base();
    // The world assigns roles to users on projects only: no groups, domains or system.
    let none_here = ["group.id", "scope.domain.id", "scope.system", "scope.OS-INHERIT:inherited_to"]
        .iter()
        .any(|k| q_get(&q, k).is_some());
    let rows: Vec<Value> = if none_here {
        vec![]
    } else {
        assignments(&w, effective)
            .into_iter()
            .filter(|a| q_get(&q, "user.id").is_none_or(|u| u == a.user_id))
            .filter(|a| q_get(&q, "scope.project.id").is_none_or(|p| p == a.project_id))
            .filter(|a| q_get(&q, "role.id").is_none_or(|r| r == role_id(&a.role)))
            .map(|a| {
                let rid = role_id(&a.role);
                let mut user = json!({"id": a.user_id});
                let mut project = json!({"id": a.project_id});
                let mut role = json!({"id": rid});
                if names {
                    if let Some(u) = w.users.iter().find(|u| u.id == a.user_id) {
                        user.put("name", json!(u.name));
                        user.put("domain", domain_json(&w, &u.domain_id));
                    }
                    if let Some(p) = w.project(&a.project_id) {
                        project.put("name", json!(p.name));
                        project.put("domain", domain_json(&w, &p.domain_id));
                    }
                    role.put("name", json!(a.role));
                }
                let granted = a.prior.as_deref().map_or(rid.clone(), role_id);
                let mut links = json!({"assignment": format!(
                    "{base}/identity/v3/projects/{}/users/{}/roles/{granted}", a.project_id, a.user_id
                )});
                if a.prior.is_some() {
                    links.put("prior_role", json!(format!("{base}/identity/v3/prior_role/{rid}/implies/{granted}")));
                }
                json!({"links": links, "scope": {"project": project}, "user": user, "role": role})
            })
            .collect()
    };
    let self_href = match raw.as_deref() {
        Some(r) if !r.is_empty() => format!("{base}/identity/v3/role_assignments?{r}"),
        _ => format!("{base}/identity/v3/role_assignments"),
    };
    json_response(200, &json!({"role_assignments": rows, "links": {"self": self_href, "previous": null, "next": null}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        super::super::worldfile::load(super::super::worldfile::DEFAULT_WORLD, "default", Utc::now()).unwrap()
    }

    #[test]
    fn roles_imply_as_bootstrap_sets_them() {
        let eff = super::super::world::effective_roles(&["admin".to_string()]);
        assert_eq!(eff, ["admin", "member", "reader"]);
        let eff = super::super::world::effective_roles(&["reader".to_string(), "member".to_string()]);
        assert_eq!(eff, ["reader", "member"]);
        assert!(super::super::world::effective_roles(&[]).is_empty());
    }

    #[test]
    fn effective_assignments_name_the_prior_role() {
        let w = world();
        let direct = assignments(&w, false);
        assert!(direct.iter().all(|a| a.prior.is_none()));
        let admin = w.users.iter().find(|u| u.name == "admin").unwrap();
        let eff: Vec<_> = assignments(&w, true).into_iter().filter(|a| a.user_id == admin.id).collect();
        let reader = eff.iter().find(|a| a.role == "reader").unwrap();
        assert_eq!(reader.prior.as_deref(), Some("member"));
        let member = eff.iter().find(|a| a.role == "member").unwrap();
        assert_eq!(member.prior.as_deref(), Some("admin"));
        assert!(eff.len() > direct.iter().filter(|a| a.user_id == admin.id).count());
    }

    #[test]
    fn collections_come_from_the_world() {
        let mut w = world();
        let eps = members("http://x", &w, Kind::Endpoint);
        assert_eq!(eps.len(), SERVICES.len() * INTERFACES.len());
        assert!(eps.iter().any(|e| e["url"] == "http://x/volume/v3/%(project_id)s"));
        let services = members("http://x", &w, Kind::Service);
        assert!(eps.iter().all(|e| services.iter().any(|s| s["id"] == e["service_id"])));
        assert_eq!(members("http://x", &w, Kind::Project).len(), w.projects.len());
        // A role only a user holds is listed too, without the bootstrap roles' immutability.
        if let Some(u) = w.users.first_mut() {
            let p = u.roles.first().map(|(p, _)| p.clone()).unwrap_or_default();
            u.roles.push((p, "auditor".into()));
        }
        let roles = members("http://x", &w, Kind::Role);
        let auditor = roles.iter().find(|r| r["name"] == "auditor").unwrap();
        assert_eq!(auditor["options"], json!({}));
        assert_eq!(roles.iter().find(|r| r["name"] == "admin").unwrap()["options"]["immutable"], true);
    }

    #[test]
    fn filters_match_exactly() {
        let v = json!({"name": "admin", "enabled": true, "parent_region_id": null});
        assert!(matches(&v, "name", "admin"));
        assert!(!matches(&v, "name", "adm"));
        assert!(matches(&v, "enabled", "True"));
        assert!(!matches(&v, "enabled", "false"));
        assert!(!matches(&v, "parent_region_id", "RegionOne"));
    }
}
