//! Prometheus as a metric source: an instant query over the HTTP API
//! (`GET /api/v1/query`), each result mapped to a member by its `server_id`
//! (or `instance_id`, `uuid`) label, or taken as one value for the whole app.

use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Deserialize)]
struct Response {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: HashMap<String, String>,
    value: (f64, String),
}

/// What one query gave: values per server id, and a value for the app when the
/// query aggregates (one series without a server label, or a scalar).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromValues {
    pub per_server: HashMap<String, f64>,
    pub aggregate: Option<f64>,
}

/// Labels that name the server a series is about.
pub const SERVER_LABELS: [&str; 3] = ["server_id", "instance_id", "uuid"];

fn number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Why a Prometheus query gave no values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromError {
    #[error("not a Prometheus API answer: {0}")]
    NotAnAnswer(String),
    #[error("{kind}: {message}")]
    Failed { kind: String, message: String },
    #[error("answer without data")]
    NoData,
    #[error("unexpected {what}: {reason}")]
    Unexpected { what: &'static str, reason: String },
    #[error("{0} series without a server label: return one per member (label server_id) or aggregate to one")]
    Unlabelled(usize),
    #[error("a {0} result: the query must return an instant vector or a scalar")]
    ResultType(String),
    #[error("{url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url}: the answer is larger than {} MiB", crate::cloud::session::MAX_BODY >> 20)]
    TooLarge { url: String },
    #[error("{url}: HTTP {status}: {cause}")]
    Status { url: String, status: u16, cause: Box<PromError> },
    #[error("{url}: {cause}")]
    Answer { url: String, cause: Box<PromError> },
}

/// Parse a `/api/v1/query` answer.
pub fn parse(body: &[u8]) -> Result<PromValues, PromError> {
    let r: Response = serde_json::from_slice(body).map_err(|e| PromError::NotAnAnswer(e.to_string()))?;
    if r.status != "success" {
        return Err(PromError::Failed {
            kind: r.error_type.unwrap_or_else(|| "error".into()),
            message: r.error.unwrap_or_else(|| "query failed".into()),
        });
    }
    let Some(d) = r.data else { return Err(PromError::NoData) };
    let mut out = PromValues::default();
    match d.result_type.as_str() {
        "vector" => {
            let samples: Vec<VectorSample> = serde_json::from_value(d.result)
                .map_err(|e| PromError::Unexpected { what: "vector", reason: e.to_string() })?;
            let mut unlabelled = Vec::new();
            for s in samples {
                let Some(v) = number(&s.value.1) else { continue };
                match SERVER_LABELS.iter().find_map(|l| s.metric.get(*l)) {
                    Some(id) => {
                        out.per_server.insert(id.clone(), v);
                    }
                    None => unlabelled.push(v),
                }
            }
            if out.per_server.is_empty() {
                match unlabelled.as_slice() {
                    [] => {}
                    [one] => out.aggregate = Some(*one),
                    more => return Err(PromError::Unlabelled(more.len())),
                }
            }
        }
        "scalar" => {
            let (_, v): (f64, String) = serde_json::from_value(d.result)
                .map_err(|e| PromError::Unexpected { what: "scalar", reason: e.to_string() })?;
            out.aggregate = number(&v);
        }
        other => return Err(PromError::ResultType(other.to_string())),
    }
    Ok(out)
}

/// Run an instant query.
/// Run an instant query. The answer is read up to the client's body limit.
pub async fn query(
    http: &reqwest::Client,
    base: &str,
    promql: &str,
    timeout: Duration,
) -> Result<PromValues, PromError> {
    use crate::cloud::session::{read_body, BodyError};
    let url = format!("{}/api/v1/query", base.trim_end_matches('/'));
    let unreachable = |e: &reqwest::Error| PromError::Unreachable {
        url: url.clone(),
        reason: crate::cloud::error::describe_reqwest(e),
    };
    let r = http.get(&url).query(&[("query", promql)]).timeout(timeout).send().await.map_err(|e| unreachable(&e))?;
    let status = r.status();
    let body = match read_body(r).await {
        Ok(b) => b,
        Err(BodyError::Transport(e)) => return Err(unreachable(&e)),
        Err(BodyError::TooLarge) => return Err(PromError::TooLarge { url }),
    };
    parse(&body).map_err(|e| match status.is_success() {
        true => PromError::Answer { url: url.clone(), cause: Box::new(e) },
        false => PromError::Status { url: url.clone(), status: status.as_u16(), cause: Box::new(e) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_map_to_members_or_to_the_app() {
        let per = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"server_id":"a"},"value":[1795637090.286,"57.5"]},
            {"metric":{"server_id":"b"},"value":[1795637090.286,"NaN"]}]}}"#;
        let v = parse(per).unwrap();
        assert_eq!(v.per_server.get("a"), Some(&57.5));
        assert!(!v.per_server.contains_key("b"), "NaN is no sample");
        let agg = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"42"]}]}}"#;
        assert_eq!(parse(agg).unwrap().aggregate, Some(42.0));
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"7"]}}"#;
        assert_eq!(parse(scalar).unwrap().aggregate, Some(7.0));
        let many = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"x"},"value":[1,"1"]},{"metric":{"job":"y"},"value":[1,"2"]}]}}"#;
        assert_eq!(parse(many).unwrap_err(), PromError::Unlabelled(2));
        assert!(parse(many).unwrap_err().to_string().contains("without a server label"));
        let bad = br#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected"}"#;
        assert_eq!(parse(bad).unwrap_err().to_string(), "bad_data: 1:5: parse error: unexpected");
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse(matrix).unwrap_err().to_string().contains("instant vector"));
    }
}
