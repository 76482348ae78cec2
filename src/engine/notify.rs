//! Alerts out: the engine's alerts delivered to an Alertmanager (its v2 API, so
//! grouping, silences, inhibition and routing stay Alertmanager's) and to
//! generic webhooks (one JSON document per notification, HMAC-SHA256 signed,
//! retried with backoff, deduplicated by a delivery id that a retry keeps).
//!
//! A task of its own reads the alert list the engine publishes after each tick:
//! a slow or dead receiver never holds an engine tick, and a resolve is kept
//! until it is delivered, however long the receiver is away. What to send is
//! decided by pure functions (`plan_webhook`, `plan_alertmanager`) over a small
//! delivery book; the task only does the HTTP.

use crate::domain::json::json;
use crate::domain::{Alert, Severity, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where alerts go.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverKind {
    /// An Alertmanager: `url` is its base (`http://host:9093`).
    Alertmanager { url: String },
    /// A webhook: the JSON document is POSTed to `url`, signed when a secret is set.
    Webhook { url: String, secret: Option<crate::config::Secret> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    pub name: String,
    pub kind: ReceiverKind,
    pub timeout: Duration,
}

/// How often and what is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    pub receivers: Vec<Receiver>,
    /// A firing alert is sent to a webhook again after this long.
    pub repeat_interval: chrono::Duration,
    /// Firing alerts are sent to Alertmanager again this often (it resolves an
    /// alert by itself when it is not sent again before its `endsAt`).
    pub resend: chrono::Duration,
    /// Alerts below this severity stay in the console.
    pub min_severity: Severity,
    /// The longest wait between two tries of a failed delivery.
    pub max_backoff: chrono::Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            receivers: vec![],
            repeat_interval: chrono::Duration::hours(1),
            resend: chrono::Duration::seconds(60),
            min_severity: Severity::Warning,
            max_backoff: chrono::Duration::minutes(5),
        }
    }
}

impl NotifyConfig {
    /// The receivers of `[alerting]`; a webhook secret that cannot be read is
    /// an error naming where it was looked for (never its value).
    pub fn from_settings(a: &crate::config::settings::AlertingSettings) -> Result<NotifyConfig, String> {
        let dur = |d: crate::domain::time::Dur| chrono::Duration::from_std(d.0).unwrap_or(chrono::Duration::MAX);
        let mut receivers = Vec::new();
        for (i, m) in a.alertmanager.iter().enumerate() {
            receivers.push(Receiver {
                name: m.name.clone().unwrap_or_else(|| format!("alertmanager-{}", i + 1)),
                kind: ReceiverKind::Alertmanager { url: m.url.clone() },
                timeout: m.timeout.0,
            });
        }
        for (i, w) in a.webhook.iter().enumerate() {
            let name = w.name.clone().unwrap_or_else(|| format!("webhook-{}", i + 1));
            let secret = match (&w.secret_env, &w.secret_file) {
                (Some(var), _) => Some(std::env::var(var).map_err(|_| {
                    format!("alerting.webhook `{name}`: the environment variable {var} (its secret) is not set")
                })?),
                (None, Some(f)) => Some(
                    std::fs::read_to_string(f)
                        .map_err(|e| format!("alerting.webhook `{name}`: the secret file {}: {e}", f.display()))?
                        .trim()
                        .to_string(),
                ),
                (None, None) => None,
            };
            receivers.push(Receiver {
                name,
                kind: ReceiverKind::Webhook { url: w.url.clone(), secret: secret.map(crate::config::Secret::new) },
                timeout: w.timeout.0,
            });
        }
        let min_severity = match a.min_severity.as_str() {
            "info" => Severity::Info,
            "critical" => Severity::Critical,
            _ => Severity::Warning,
        };
        Ok(NotifyConfig {
            receivers,
            repeat_interval: dur(a.repeat_interval),
            resend: dur(a.resend),
            min_severity,
            ..Default::default()
        })
    }
}

/// One alert's notification state at one receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The occurrence (the alert's `since`): a new occurrence is a new notification.
    pub since: Timestamp,
    /// The alert as last sent (for a resolve after it left the list).
    pub alert: Alert,
    /// When the firing notification was last delivered.
    pub fired_at: Option<Timestamp>,
    /// How many firing notifications were delivered (repeats count).
    pub fired: u32,
    /// The resolve was delivered: the record is done.
    pub resolved_sent: bool,
    /// Failed tries since the last success, and when to try again.
    pub failures: u32,
    pub next_try: Option<Timestamp>,
    /// What the last try gave (`delivered`, `HTTP 503`, `timeout`, ...).
    pub last_result: String,
    pub last_at: Option<Timestamp>,
}

/// Delivery state by receiver name and alert key (kept by the notifier).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryBook {
    pub deliveries: BTreeMap<String, BTreeMap<String, Delivery>>,
}

/// What operators did to alerts (kept by consoles, read by the notifier).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertOps {
    /// Keys silenced here (no Alertmanager to silence them): until when.
    #[serde(default)]
    pub silenced: BTreeMap<String, Timestamp>,
    /// Keys an operator acknowledged, and when: no more repeats of that occurrence.
    #[serde(default)]
    pub acked: BTreeMap<String, Timestamp>,
}

/// The store key of the operators' acknowledgements and silences.
pub const OPS_KEY: &str = "alert-ops";

/// A notification to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub key: String,
    pub alert: Alert,
    pub resolved: bool,
    /// The same for every try of one notification: receivers deduplicate on it.
    pub delivery_id: String,
}

fn backoff(failures: u32, max: chrono::Duration) -> chrono::Duration {
    let secs = 1i64.checked_shl(failures.min(20)).unwrap_or(i64::MAX);
    chrono::Duration::seconds(secs).min(max)
}

fn delivery_id(key: &str, since: &Timestamp, what: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{key}|{}|{what}", since.to_rfc3339()).as_bytes())
        .to_string()
}

/// Alerts worth sending out.
fn wanted<'a>(alerts: &'a [Alert], cfg: &NotifyConfig) -> BTreeMap<&'a str, &'a Alert> {
    alerts.iter().filter(|a| a.severity >= cfg.min_severity).map(|a| (a.key.as_str(), a)).collect()
}

/// What a webhook receiver is due now: new occurrences, repeats of firing
/// alerts not acknowledged, resolves not delivered yet (also of alerts that
/// left the list), and retries whose backoff ended. Silenced keys send nothing.
pub fn plan_webhook(
    alerts: &[Alert],
    book: &BTreeMap<String, Delivery>,
    silenced: &BTreeMap<String, Timestamp>,
    acked: &BTreeMap<String, Timestamp>,
    cfg: &NotifyConfig,
    now: Timestamp,
) -> Vec<Notification> {
    let live = wanted(alerts, cfg);
    let mut out = Vec::new();
    let waiting = |d: &Delivery| d.next_try.is_some_and(|t| now < t);
    for (key, a) in &live {
        if silenced.get(*key).is_some_and(|until| now < *until) {
            continue;
        }
        let d = book.get(*key).filter(|d| d.since == a.since);
        if let Some(d) = d {
            if waiting(d) {
                continue;
            }
        }
        match (a.resolved_at, d) {
            (None, None) => out.push(Notification {
                key: key.to_string(),
                alert: (*a).clone(),
                resolved: false,
                delivery_id: delivery_id(key, &a.since, "firing-0"),
            }),
            (None, Some(d)) => {
                let acked_now = acked.get(*key).is_some_and(|t| *t >= a.since);
                let due = match d.fired_at {
                    None => true,
                    Some(at) => !acked_now && now - at >= cfg.repeat_interval,
                };
                if due {
                    let n = if d.fired_at.is_none() { d.fired } else { d.fired + 1 };
                    out.push(Notification {
                        key: key.to_string(),
                        alert: (*a).clone(),
                        resolved: false,
                        delivery_id: delivery_id(key, &a.since, &format!("firing-{n}")),
                    });
                }
            }
            // Resolved: told only to receivers that were told it fired.
            (Some(_), Some(d)) if d.fired > 0 && !d.resolved_sent => out.push(resolve(key, d, Some(a), now)),
            _ => {}
        }
    }
    // Fired, then gone from the list before its resolve went out: resolved now.
    for (key, d) in book {
        let gone = live.get(key.as_str()).is_none_or(|a| a.since != d.since);
        if gone && d.fired > 0 && !d.resolved_sent && !waiting(d) {
            out.push(resolve(key, d, None, now));
        }
    }
    out
}

/// The resolve of a delivered occurrence: with the alert as it is now, or as
/// last sent when it left the list (ended now).
fn resolve(key: &str, d: &Delivery, current: Option<&Alert>, now: Timestamp) -> Notification {
    let mut alert = current.cloned().unwrap_or_else(|| d.alert.clone());
    alert.resolved_at.get_or_insert(now);
    Notification { key: key.to_string(), alert, resolved: true, delivery_id: delivery_id(key, &d.since, "resolved") }
}

/// What an Alertmanager is due now: every firing alert when one is new or
/// changed or `resend` passed since the last batch, and resolves not delivered
/// yet. Silences are Alertmanager's own: everything is sent.
pub fn plan_alertmanager(
    alerts: &[Alert],
    book: &BTreeMap<String, Delivery>,
    cfg: &NotifyConfig,
    now: Timestamp,
) -> Vec<Notification> {
    let live = wanted(alerts, cfg);
    let blocked = book.values().any(|d| d.next_try.is_some_and(|t| now < t));
    if blocked {
        return vec![];
    }
    let firing: Vec<&&Alert> = live.values().filter(|a| a.resolved_at.is_none()).collect();
    let stale = firing.iter().any(|a| {
        book.get(&a.key).filter(|d| d.since == a.since).and_then(|d| d.fired_at).is_none_or(|at| now - at >= cfg.resend)
    });
    let mut out: Vec<Notification> = Vec::new();
    if stale {
        out.extend(firing.iter().map(|a| Notification {
            key: a.key.clone(),
            alert: (**a).clone(),
            resolved: false,
            delivery_id: delivery_id(&a.key, &a.since, "firing"),
        }));
    }
    for (key, d) in book {
        if d.fired == 0 || d.resolved_sent {
            continue;
        }
        let current = live.get(key.as_str()).filter(|a| a.since == d.since).copied();
        if current.is_none_or(|a| a.resolved_at.is_some()) {
            out.push(resolve(key, d, current, now));
        }
    }
    out
}

/// Record what a try gave.
pub fn record(
    book: &mut BTreeMap<String, Delivery>,
    n: &Notification,
    result: Result<(), String>,
    cfg: &NotifyConfig,
    now: Timestamp,
) {
    let d = book.entry(n.key.clone()).or_insert_with(|| Delivery {
        since: n.alert.since,
        alert: n.alert.clone(),
        fired_at: None,
        fired: 0,
        resolved_sent: false,
        failures: 0,
        next_try: None,
        last_result: String::new(),
        last_at: None,
    });
    if d.since != n.alert.since {
        // A new occurrence of the key replaces the old record.
        *d = Delivery { since: n.alert.since, fired_at: None, fired: 0, resolved_sent: false, ..d.clone() };
    }
    d.alert = n.alert.clone();
    d.last_at = Some(now);
    match result {
        Ok(()) => {
            d.failures = 0;
            d.next_try = None;
            d.last_result = if n.resolved { "resolved delivered".into() } else { "delivered".into() };
            if n.resolved {
                d.resolved_sent = true;
            } else {
                d.fired += 1;
                d.fired_at = Some(now);
            }
        }
        Err(e) => {
            d.failures += 1;
            d.next_try = Some(now + backoff(d.failures, cfg.max_backoff));
            d.last_result = e;
        }
    }
}

/// Drop records whose resolve went out and whose alert left the list.
pub fn prune(book: &mut BTreeMap<String, Delivery>, alerts: &[Alert]) {
    book.retain(|k, d| !(d.resolved_sent && alerts.iter().all(|a| &a.key != k || a.since != d.since)));
}

pub use crate::domain::event::RESERVED_ALERT_LABELS as RESERVED_LABELS;

/// The Alertmanager v2 labels of an alert: `alertname` is its kind; cloud,
/// app, severity and the key (which makes it unique) go with it, and the
/// labels of its app's policy.
pub fn labels(a: &Alert) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> = a
        .labels
        .iter()
        .filter(|(k, _)| !RESERVED_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    l.insert("alertname".to_string(), if a.kind.is_empty() { "stackpilot".into() } else { a.kind.clone() });
    l.insert("severity".into(), a.severity.as_str().to_string());
    l.insert("key".into(), a.key.clone());
    l.insert("source".into(), "stackpilot".into());
    if !a.cloud.is_empty() {
        l.insert("cloud".into(), a.cloud.clone());
    }
    if let Some(app) = &a.app {
        l.insert("app".into(), app.clone());
    }
    l
}

/// The Alertmanager v2 document of a batch (`POST /api/v2/alerts`).
pub fn alertmanager_body(batch: &[Notification], resend: chrono::Duration, now: Timestamp) -> Value {
    let fmt = |t: &Timestamp| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Value::Array(
        batch
            .iter()
            .map(|n| {
                // A firing alert ends by itself unless it is sent again in time.
                let ends = if n.resolved { n.alert.resolved_at.unwrap_or(now) } else { now + resend * 4 };
                json!({
                    "labels": labels(&n.alert),
                    "annotations": {"summary": n.alert.message, "description": n.alert.message},
                    "startsAt": fmt(&n.alert.since),
                    "endsAt": fmt(&ends),
                    "generatorURL": format!("stackpilot://{}/alerts/{}", n.alert.cloud, urlencode(&n.alert.key)),
                })
            })
            .collect(),
    )
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The webhook document of one notification.
pub fn webhook_body(n: &Notification, now: Timestamp) -> Value {
    json!({
        "version": "1",
        "delivery_id": n.delivery_id,
        "status": if n.resolved { "resolved" } else { "firing" },
        "sent_at": now.to_rfc3339(),
        "alert": {
            "key": n.key,
            "kind": n.alert.kind,
            "severity": n.alert.severity.as_str(),
            "cloud": n.alert.cloud,
            "app": n.alert.app,
            "message": n.alert.message,
            "since": n.alert.since.to_rfc3339(),
            "resolved_at": n.alert.resolved_at.map(|t| t.to_rfc3339()),
            "labels": labels(&n.alert),
        }
    })
}

/// `sha256=<hex>` of HMAC-SHA256(secret, body): the `X-Stackpilot-Signature` header.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => return String::new(),
    };
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Describe a failed HTTP try in a few words (never the URL's credentials).
fn describe(r: Result<reqwest::Response, reqwest::Error>) -> Result<(), String> {
    match r {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("HTTP {}", resp.status().as_u16())),
        Err(e) => Err(crate::cloud::error::describe_reqwest(&e)),
    }
}

async fn post_alertmanager(http: &reqwest::Client, url: &str, body: &Value, timeout: Duration) -> Result<(), String> {
    let u = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
    describe(http.post(u).json(body).timeout(timeout).send().await)
}

async fn post_webhook(
    http: &reqwest::Client,
    url: &str,
    secret: Option<&crate::config::Secret>,
    n: &Notification,
    body: &Value,
    timeout: Duration,
) -> Result<(), String> {
    let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .header("x-stackpilot-delivery", &n.delivery_id)
        .header("x-stackpilot-event", if n.resolved { "resolved" } else { "firing" })
        .timeout(timeout);
    if let Some(s) = secret {
        req = req.header("x-stackpilot-signature", sign(s.expose().as_bytes(), &bytes));
    }
    describe(req.body(bytes).send().await)
}

/// One round: send what each receiver is due, record the results. Receivers
/// are tried concurrently; each try is bounded by the receiver's timeout.
pub async fn round(
    http: &reqwest::Client,
    cfg: &NotifyConfig,
    book: &mut DeliveryBook,
    ops: &AlertOps,
    alerts: &[Alert],
    now: Timestamp,
) -> bool {
    let mut changed = false;
    let mut tasks = Vec::new();
    for r in &cfg.receivers {
        let entries = book.deliveries.get(&r.name).cloned().unwrap_or_default();
        let (r, http, alerts) = (r.clone(), http.clone(), alerts.to_vec());
        let plan = match &r.kind {
            ReceiverKind::Alertmanager { .. } => plan_alertmanager(&alerts, &entries, cfg, now),
            ReceiverKind::Webhook { .. } => plan_webhook(&alerts, &entries, &ops.silenced, &ops.acked, cfg, now),
        };
        if plan.is_empty() {
            continue;
        }
        let resend = cfg.resend;
        tasks.push(tokio::spawn(async move {
            let results: Vec<(Notification, Result<(), String>)> = match &r.kind {
                ReceiverKind::Alertmanager { url } => {
                    let body = alertmanager_body(&plan, resend, now);
                    let res = post_alertmanager(&http, url, &body, r.timeout).await;
                    plan.into_iter().map(|n| (n, res.clone())).collect()
                }
                ReceiverKind::Webhook { url, secret } => {
                    let mut v = Vec::new();
                    for n in plan {
                        let body = webhook_body(&n, now);
                        let res = post_webhook(&http, url, secret.as_ref(), &n, &body, r.timeout).await;
                        let failed = res.is_err();
                        v.push((n, res));
                        if failed {
                            // The receiver is down: the rest waits for the next round.
                            break;
                        }
                    }
                    v
                }
            };
            (r.name.clone(), results)
        }));
    }
    for t in tasks {
        let Ok((name, results)) = t.await else { continue };
        let entries = book.deliveries.entry(name.clone()).or_default();
        for (n, res) in results {
            if let Err(e) = &res {
                tracing::warn!(receiver = %name, key = %n.key, "alert delivery failed: {e}");
            }
            record(entries, &n, res, cfg, now);
            changed = true;
        }
    }
    for entries in book.deliveries.values_mut() {
        let before = entries.len();
        prune(entries, alerts);
        changed |= entries.len() != before;
    }
    changed
}

/// Create a silence in an Alertmanager for an alert's key, for `for_`; returns
/// the silence id.
pub async fn silence_in_alertmanager(
    url: &str,
    a: &Alert,
    for_: chrono::Duration,
    by: &str,
    comment: &str,
) -> Result<String, String> {
    let now = chrono::Utc::now();
    let fmt = |t: &Timestamp| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = json!({
        "matchers": [
            {"name": "key", "value": a.key, "isRegex": false, "isEqual": true},
            {"name": "source", "value": "stackpilot", "isRegex": false, "isEqual": true},
        ],
        "startsAt": fmt(&now),
        "endsAt": fmt(&(now + for_)),
        "createdBy": by,
        "comment": comment,
    });
    let u = format!("{}/api/v2/silences", url.trim_end_matches('/'));
    let r = reqwest::Client::new()
        .post(u)
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| crate::cloud::error::describe_reqwest(&e))?;
    if !r.status().is_success() {
        let code = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        return Err(format!("HTTP {code}: {}", text.trim()));
    }
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    Ok(v.get("silenceID").and_then(Value::as_str).unwrap_or_default().to_string())
}

/// The store key of the delivery book.
pub const BOOK_KEY: &str = "alert-deliveries";

/// Run the notifier: after each change of the alert list (and every second, for
/// repeats and retries), one round; the book is kept in the store so a restart
/// neither repeats what was delivered nor loses a resolve. While the list is
/// `None` (the engine does not hold a lease, or has not ticked yet) nothing is
/// sent: an empty list would resolve every alert the acting engine raised.
pub async fn run(
    cfg: NotifyConfig,
    store: crate::store::Store,
    mut alerts: tokio::sync::watch::Receiver<Option<Vec<Alert>>>,
) {
    if cfg.receivers.is_empty() {
        return;
    }
    let http = reqwest::Client::new();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            r = alerts.changed() => if r.is_err() { return },
        }
        let Some(list) = alerts.borrow_and_update().clone() else { continue };
        // The book as the acting engine left it (this one, or one before it).
        let mut book: DeliveryBook = match store.control_as(BOOK_KEY) {
            Ok(b) => b.unwrap_or_default(),
            Err(e) => {
                tracing::error!("the alert delivery book cannot be read, nothing is sent: {e}");
                continue;
            }
        };
        // Silences and acknowledgements made in a console come through the store.
        let ops: AlertOps = store.control_as(OPS_KEY).ok().flatten().unwrap_or_default();
        let now = chrono::Utc::now();
        if round(&http, &cfg, &mut book, &ops, &list, now).await {
            if let Err(e) = store.put_control_as(BOOK_KEY, &book, &now) {
                tracing::error!("cannot keep the alert delivery book: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").unwrap().with_timezone(&chrono::Utc)
            + chrono::Duration::seconds(s)
    }

    fn alert(key: &str, since: i64) -> Alert {
        let mut a = Alert::new("unhealthy-members", key, "demo", Severity::Warning, "web: 1 member failing");
        a.since = at(since);
        a.last_seen = at(since);
        a
    }

    fn cfg() -> NotifyConfig {
        NotifyConfig { repeat_interval: chrono::Duration::seconds(100), ..Default::default() }
    }

    fn send(book: &mut BTreeMap<String, Delivery>, alerts: &[Alert], ok: bool, t: i64) -> Vec<Notification> {
        let none = BTreeMap::new();
        let plan = plan_webhook(alerts, book, &none, &none, &cfg(), at(t));
        for n in &plan {
            record(book, n, if ok { Ok(()) } else { Err("HTTP 503".into()) }, &cfg(), at(t));
        }
        plan
    }

    #[test]
    fn webhooks_get_each_occurrence_once_repeats_and_the_resolve_through_an_outage() {
        let mut book = BTreeMap::new();
        let a = alert("k", 0);
        assert_eq!(send(&mut book, std::slice::from_ref(&a), true, 0).len(), 1);
        assert!(send(&mut book, std::slice::from_ref(&a), true, 50).is_empty(), "deduplicated");
        let rep = send(&mut book, std::slice::from_ref(&a), true, 100);
        assert_eq!(rep.len(), 1, "repeated after repeat_interval");
        // The receiver goes away; the alert resolves and leaves the list.
        let mut r = a.clone();
        r.resolved_at = Some(at(120));
        let failed = send(&mut book, std::slice::from_ref(&r), false, 120);
        assert!(failed[0].resolved);
        assert!(send(&mut book, &[], false, 120).is_empty(), "backoff: no retry before the next try");
        let mut ids = vec![failed[0].delivery_id.clone()];
        for t in [122, 130, 200] {
            for n in send(&mut book, &[], t == 200, t) {
                ids.push(n.delivery_id.clone());
            }
        }
        assert!(ids.len() >= 2 && ids.iter().all(|i| i == &ids[0]), "a retry keeps the delivery id: {ids:?}");
        assert!(book["k"].resolved_sent, "the resolve went out once the receiver came back");
        prune(&mut book, &[]);
        assert!(book.is_empty());
        // A new occurrence of the same key is a new notification.
        let b = alert("k", 500);
        let n = send(&mut book, &[b], true, 500);
        assert_eq!(n.len(), 1);
        assert_ne!(n[0].delivery_id, ids[0]);
    }

    #[test]
    fn acknowledged_and_silenced_alerts_are_not_repeated() {
        let mut book = BTreeMap::new();
        let a = alert("k", 0);
        send(&mut book, std::slice::from_ref(&a), true, 0);
        let mut acked = BTreeMap::new();
        acked.insert("k".to_string(), at(10));
        let none = BTreeMap::new();
        assert!(plan_webhook(std::slice::from_ref(&a), &book, &none, &acked, &cfg(), at(300)).is_empty());
        let mut silenced = BTreeMap::new();
        silenced.insert("j".to_string(), at(1000));
        let j = alert("j", 0);
        assert!(plan_webhook(&[j], &BTreeMap::new(), &silenced, &none, &cfg(), at(10)).is_empty());
        let info = Alert { severity: Severity::Info, ..alert("i", 0) };
        assert!(plan_webhook(&[info], &BTreeMap::new(), &none, &none, &cfg(), at(10)).is_empty(), "below min_severity");
    }

    #[test]
    fn alertmanager_gets_the_firing_set_again_before_it_would_expire_and_each_resolve() {
        let c = cfg();
        let mut book = BTreeMap::new();
        let (a, b) = (alert("a", 0), alert("b", 0));
        let p = plan_alertmanager(&[a.clone(), b.clone()], &book, &c, at(0));
        assert_eq!(p.len(), 2);
        for n in &p {
            record(&mut book, n, Ok(()), &c, at(0));
        }
        assert!(plan_alertmanager(&[a.clone(), b.clone()], &book, &c, at(30)).is_empty());
        assert_eq!(plan_alertmanager(&[a.clone(), b.clone()], &book, &c, at(60)).len(), 2, "resent");
        let body = alertmanager_body(&p, c.resend, at(0));
        assert_eq!(body[0]["labels"]["alertname"], "unhealthy-members");
        assert_eq!(body[0]["endsAt"], "2026-12-01T10:04:00.000Z", "ends unless sent again");
        // b goes away: resolved with its end.
        let p = plan_alertmanager(std::slice::from_ref(&a), &book, &c, at(40));
        assert_eq!(p.iter().filter(|n| n.resolved).count(), 1);
        assert_eq!(p.len(), 1, "a was sent 40 s ago: only the resolve of b");
    }

    #[test]
    fn signatures_are_hmac_sha256() {
        // RFC 4231 test case 2.
        let s = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(s, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
