//! Gnocchi v1: resources, metrics, measures and aggregates.

use crate::cloud::lenient;
use crate::domain::time::parse_timestamp;
use crate::domain::Timestamp;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One measure: `[timestamp, granularity, value]`. The granularity is a number of
/// seconds, or a calendar group (`"W"`) after a calendar resample; the value may be
/// `null` with `fill=null`.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    pub at: Timestamp,
    pub granularity: Granularity,
    pub value: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Granularity {
    Seconds(f64),
    Calendar(String),
}

impl Granularity {
    pub fn seconds(&self) -> Option<f64> {
        match self {
            Granularity::Seconds(s) => Some(*s),
            Granularity::Calendar(_) => None,
        }
    }
}

/// Parse a measures array; malformed triples are skipped.
pub fn parse_measures(v: &Value) -> Vec<Measure> {
    let Value::Array(items) = v else { return Vec::new() };
    items
        .iter()
        .filter_map(|m| {
            let [at, granularity, value, ..] = m.as_array()?.as_slice() else { return None };
            let at = parse_timestamp(at.as_str()?)?;
            let granularity = match granularity {
                Value::Number(n) => Granularity::Seconds(n.as_f64()?),
                Value::String(s) => match s.parse::<f64>() {
                    Ok(f) => Granularity::Seconds(f),
                    Err(_) => Granularity::Calendar(s.clone()),
                },
                _ => return None,
            };
            let value = value.as_f64();
            Some(Measure { at, granularity, value })
        })
        .collect()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Resource {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    pub resource_type: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub original_resource_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub project_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub creator: Option<String>,
    #[serde(deserialize_with = "lenient::ts")]
    pub started_at: Option<Timestamp>,
    #[serde(deserialize_with = "lenient::ts")]
    pub ended_at: Option<Timestamp>,
    #[serde(deserialize_with = "lenient::ts")]
    pub revision_start: Option<Timestamp>,
    #[serde(deserialize_with = "lenient::string_map")]
    pub metrics: BTreeMap<String, String>,
    #[serde(flatten)]
    pub attributes: BTreeMap<String, Value>,
}

impl Resource {
    pub fn attr(&self, k: &str) -> Option<String> {
        self.attributes.get(k).and_then(lenient::value_to_string)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ArchivePolicyDef {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub granularity: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub timespan: Option<String>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub points: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ArchivePolicy {
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub definition: Vec<ArchivePolicyDef>,
    #[serde(deserialize_with = "lenient::string_vec")]
    pub aggregation_methods: Vec<String>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub back_window: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Metric {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub unit: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub resource_id: Option<String>,
    pub archive_policy: Option<ArchivePolicy>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub archive_policy_name: Option<String>,
}

/// Parse a Python timedelta as Gnocchi prints it: `[D day[s], ]H:MM:SS`.
pub fn parse_timedelta(s: &str) -> Option<f64> {
    let s = s.trim();
    let (days, rest) = match s.split_once(", ") {
        Some((d, r)) => {
            let n: f64 = d.split_whitespace().next()?.parse().ok()?;
            (n, r)
        }
        None if s.contains("day") => {
            let n: f64 = s.split_whitespace().next()?.parse().ok()?;
            return Some(n * 86400.0);
        }
        None => (0.0, s),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let [h, m, sec] = parts.as_slice() else { return None };
    let (h, m, sec): (f64, f64, f64) = (h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?);
    Some(days * 86400.0 + h * 3600.0 + m * 60.0 + sec)
}

/// The measures of an `/v1/aggregates` answer, flattened to
/// (resource or metric id, metric name, aggregation) → measures, whatever the
/// response shape: by metric id, `aggregated`, by resource, or grouped (the
/// doubled `measures.measures` key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AggregateSeries {
    /// Group attributes (with `groupby`), empty otherwise.
    pub group: BTreeMap<String, String>,
    /// Resource id (resource search), metric id (metric ids) or `aggregated`.
    pub key: String,
    /// Metric name for resource searches, else `None`.
    pub metric: Option<String>,
    pub aggregation: String,
    pub measures: Vec<Measure>,
}

pub fn parse_aggregates(v: &Value) -> Vec<AggregateSeries> {
    let mut out = Vec::new();
    match v {
        Value::Array(groups) => {
            for g in groups {
                let group: BTreeMap<String, String> = g
                    .get("group")
                    .and_then(Value::as_object)
                    .map(|o| {
                        o.iter().filter_map(|(k, v)| lenient::value_to_string(v).map(|s| (k.clone(), s))).collect()
                    })
                    .unwrap_or_default();
                if let Some(m) = g.get("measures") {
                    let inner = m.get("measures").unwrap_or(m);
                    walk_measures(inner, &group, &mut out);
                }
            }
        }
        Value::Object(o) => {
            if let Some(m) = o.get("measures") {
                walk_measures(m, &BTreeMap::new(), &mut out);
            }
        }
        _ => {}
    }
    out
}

fn walk_measures(m: &Value, group: &BTreeMap<String, String>, out: &mut Vec<AggregateSeries>) {
    let Value::Object(o) = m else { return };
    for (key, val) in o {
        match val {
            // {"aggregated": [[...]]}
            Value::Array(_) => out.push(AggregateSeries {
                group: group.clone(),
                key: key.clone(),
                metric: None,
                aggregation: key.clone(),
                measures: parse_measures(val),
            }),
            Value::Object(inner) => {
                for (k2, v2) in inner {
                    match v2 {
                        // metric id → {agg: [...]}
                        Value::Array(_) => out.push(AggregateSeries {
                            group: group.clone(),
                            key: key.clone(),
                            metric: None,
                            aggregation: k2.clone(),
                            measures: parse_measures(v2),
                        }),
                        // resource id → {metric name: {agg: [...]}}
                        Value::Object(aggs) => {
                            for (agg, series) in aggs {
                                out.push(AggregateSeries {
                                    group: group.clone(),
                                    key: key.clone(),
                                    metric: Some(k2.clone()),
                                    aggregation: agg.clone(),
                                    measures: parse_measures(series),
                                });
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}
