//! Error classification shared by every caller of the client: what kind of failure,
//! from which cloud and service, with the service's own message and request id.

use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    Unauthorized,
    Forbidden,
    QuotaExceeded,
    NotFound,
    Conflict,
    BadRequest,
    RateLimited,
    /// 5xx, timeouts, refused or dropped connections: worth another look later.
    Transient,
    /// The catalog has no endpoint for the service, interface and region.
    EndpointNotFound,
    /// The response could not be understood.
    InvalidResponse,
    /// A local problem (TLS setup, a bad certificate file).
    Config,
}

impl ErrorKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::QuotaExceeded => "quota exceeded",
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::BadRequest => "bad request",
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::Transient => "transient",
            ErrorKind::EndpointNotFound => "no endpoint",
            ErrorKind::InvalidResponse => "invalid response",
            ErrorKind::Config => "configuration",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub cloud: String,
    /// Service type (`compute`, `identity`, ...).
    pub service: String,
    pub method: String,
    /// Path of the request (no query string, no host).
    pub path: String,
    pub status: Option<u16>,
    pub message: String,
    pub request_id: Option<String>,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, cloud: &str, service: &str, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            cloud: cloud.to_string(),
            service: service.to_string(),
            method: String::new(),
            path: String::new(),
            status: None,
            message: message.into(),
            request_id: None,
            retry_after: None,
        }
    }
    pub fn is(&self, kind: ErrorKind) -> bool {
        self.kind == kind
    }
    /// Quota, or the scheduler found no host: more servers cannot be had now.
    pub fn is_capacity(&self) -> bool {
        self.kind == ErrorKind::QuotaExceeded
    }
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Transient | ErrorKind::RateLimited)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.service, self.kind.as_str())?;
        if let Some(s) = self.status {
            write!(f, " ({s})")?;
        }
        write!(f, ": {}", self.message)?;
        write!(f, " [cloud {}", self.cloud)?;
        if !self.method.is_empty() {
            write!(f, ", {} {}", self.method, self.path)?;
        }
        if let Some(r) = &self.request_id {
            write!(f, ", request {r}")?;
        }
        f.write_str("]")
    }
}

impl std::error::Error for ApiError {}

pub type Result<T> = std::result::Result<T, ApiError>;

/// Classify an HTTP error status and the service's message.
pub fn classify(status: u16, message: &str) -> ErrorKind {
    let m = message.to_ascii_lowercase();
    let quota = m.contains("quota")
        || m.contains("maximum number of")
        || m.contains("exceeded") && (m.contains("allowed") || m.contains("limit"));
    match status {
        401 => ErrorKind::Unauthorized,
        403 if quota => ErrorKind::QuotaExceeded,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        413 if quota => ErrorKind::QuotaExceeded,
        413 | 429 => ErrorKind::RateLimited,
        400 | 405 | 406 | 411 | 414 | 415 | 422 => ErrorKind::BadRequest,
        500..=599 => ErrorKind::Transient,
        408 => ErrorKind::Transient,
        _ => ErrorKind::BadRequest,
    }
}

/// Extract the human message from any OpenStack service's error body:
/// nova/cinder `{"<fault>": {"message"}}`, keystone and heat `{"error": {"message"}}`,
/// neutron `{"NeutronError": {"message"}}`, gnocchi `{"description": str|obj}`,
/// glance `{"message"}`, aodh `{"error_message": {"faultstring"}}`, and plain text
/// or HTML bodies.
pub fn error_message(body: &str) -> Option<String> {
    let body = body.trim();
    if body.is_empty() {
        return None;
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body.as_bytes()) {
        return json_message(&v);
    }
    Some(text_message(body))
}

fn json_message(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let obj = match v {
        Value::Object(o) => o,
        Value::String(s) => return Some(s.clone()),
        _ => return None,
    };
    let as_msg = |x: &Value| -> Option<String> {
        match x {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Object(o) => o
                .get("message")
                .or_else(|| o.get("faultstring"))
                .and_then(|m| m.as_str())
                .filter(|s| !s.is_empty())
                .map(String::from),
            _ => None,
        }
    };
    // Gnocchi: description (string or {cause, reason, detail}).
    if let Some(d) = obj.get("description") {
        match d {
            Value::String(s) => return Some(s.clone()),
            Value::Object(o) => {
                let cause = o.get("cause").and_then(Value::as_str).unwrap_or("");
                let reason = o.get("reason").and_then(Value::as_str).unwrap_or("");
                let msg = match (cause.is_empty(), reason.is_empty()) {
                    (false, false) => format!("{cause}: {reason}"),
                    (true, false) => reason.to_string(),
                    _ => cause.to_string(),
                };
                if !msg.is_empty() {
                    return Some(msg);
                }
            }
            _ => {}
        }
    }
    // Heat/keystone `error` object, heat `explanation` fallback.
    if let Some(m) = obj.get("error").and_then(as_msg) {
        return Some(m);
    }
    if let Some(m) = obj.get("message").and_then(as_msg) {
        return Some(m);
    }
    for (_, val) in obj.iter() {
        if let Some(m) = as_msg(val).filter(|_| val.is_object()) {
            return Some(m);
        }
    }
    if let Some(m) = obj.get("explanation").and_then(as_msg) {
        return Some(m);
    }
    obj.get("title").and_then(Value::as_str).map(String::from)
}

/// `404 Not Found\n\nThe resource could not be found.\n\n Metric x does not exist  `
/// → `Metric x does not exist`; HTML tags are removed.
fn text_message(body: &str) -> String {
    let mut text = String::with_capacity(body.len());
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let paragraphs: Vec<&str> = text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()).collect();
    let pick = paragraphs.last().copied().unwrap_or("");
    let mut s: String = pick.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.len() > 400 {
        let mut cut = 400;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// A transport failure in one line: what happened and its root cause, without the
/// URL reqwest puts in its message (it may carry tokens in query strings).
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "connection dropped while reading the response"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    if cause.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses_and_quota_messages() {
        let q = "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances";
        assert_eq!(classify(403, q), ErrorKind::QuotaExceeded);
        assert_eq!(classify(403, "Policy doesn't allow os_compute_api:servers:create"), ErrorKind::Forbidden);
        assert_eq!(classify(413, "Maximum number of backups allowed (10) exceeded"), ErrorKind::QuotaExceeded);
        assert_eq!(classify(413, "Too many requests"), ErrorKind::RateLimited);
        assert_eq!(classify(429, ""), ErrorKind::RateLimited);
        assert_eq!(classify(401, ""), ErrorKind::Unauthorized);
        assert_eq!(classify(404, ""), ErrorKind::NotFound);
        assert_eq!(classify(409, ""), ErrorKind::Conflict);
        assert_eq!(classify(400, ""), ErrorKind::BadRequest);
        assert_eq!(classify(503, ""), ErrorKind::Transient);
    }

    #[test]
    fn extracts_messages_from_every_body_shape() {
        let cases = [
            (r#"{"forbidden": {"code": 403, "message": "Quota exceeded for cores"}}"#, "Quota exceeded for cores"),
            (
                r#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#,
                "The request you have made requires authentication.",
            ),
            (
                r#"{"NeutronError": {"type": "NetworkNotFound", "message": "Network x could not be found.", "detail": ""}}"#,
                "Network x could not be found.",
            ),
            (
                r#"{"code": 404, "title": "Not Found", "description": "Metric m does not exist"}"#,
                "Metric m does not exist",
            ),
            (
                r#"{"code": 400, "title": "Bad Request", "description": {"cause": "Invalid input", "reason": "bad op", "detail": ["operations"]}}"#,
                "Invalid input: bad op",
            ),
            (
                r#"{"code": "404 Not Found", "title": "Not Found", "message": "No image found with ID x"}"#,
                "No image found with ID x",
            ),
            (
                r#"{"error_message": {"faultstring": "Alarm not found", "faultcode": "Client", "debuginfo": null}}"#,
                "Alarm not found",
            ),
            (
                r#"{"code": 404, "title": "Not Found", "explanation": "The resource could not be found.", "error": {"type": "EntityNotFound", "message": "The Stack (x) could not be found.", "traceback": null}}"#,
                "The Stack (x) could not be found.",
            ),
            (
                "404 Not Found\n\nThe resource could not be found.\n\n Metric 0000 does not exist  ",
                "Metric 0000 does not exist",
            ),
            ("<html><body><h1>503 Service Unavailable</h1></body></html>", "503 Service Unavailable"),
        ];
        for (body, want) in cases {
            assert_eq!(error_message(body).as_deref(), Some(want), "{body}");
        }
        assert_eq!(error_message(""), None);
    }

    #[test]
    fn display_names_cloud_service_and_request() {
        let mut e = ApiError::new(ErrorKind::QuotaExceeded, "prod", "compute", "Quota exceeded for instances");
        e.status = Some(403);
        e.method = "POST".into();
        e.path = "/v2.1/servers".into();
        e.request_id = Some("req-123".into());
        assert_eq!(
            e.to_string(),
            "compute quota exceeded (403): Quota exceeded for instances [cloud prod, POST /v2.1/servers, request req-123]"
        );
    }
}
