//! Gnocchi v1: resources, metrics, measures, the aggregates API, and the server
//! metrics the console and the autoscaler read. CPU % comes from the `rate:mean` of
//! the cumulative `cpu` metric (nanoseconds) divided by granularity × 1e9 × vCPUs —
//! `cpu_util` no longer exists.

use super::error::{ErrorKind, Result};
use super::session::{Req, Session};
use super::wire::gnocchi::*;
use crate::domain::json::json;
use crate::domain::time::format_offset;
use crate::domain::Timestamp;
use serde_json::Value;
use std::collections::HashMap;

pub struct MetricService<'a>(pub &'a Session);

/// Recent metrics of one server, as plotted: (time, value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerMetrics {
    /// % of the server's vCPUs.
    pub cpu_pct: Vec<(Timestamp, f64)>,
    /// MiB used.
    pub memory_mb: Vec<(Timestamp, f64)>,
    /// Bytes per second, all interfaces.
    pub net_in_bps: Vec<(Timestamp, f64)>,
    pub net_out_bps: Vec<(Timestamp, f64)>,
}

/// CPU % from a `rate:mean` of cumulative CPU nanoseconds.
pub fn cpu_percent(rate_ns: f64, granularity_s: f64, vcpus: u32) -> f64 {
    if granularity_s <= 0.0 {
        return 0.0;
    }
    rate_ns / (granularity_s * 1e9 * vcpus.max(1) as f64) * 100.0
}

/// The `rel="next"` target of a `Link` header.
pub fn link_next(h: Option<&str>) -> Option<String> {
    let h = h?;
    for part in h.split(',') {
        let mut segs = part.split(';');
        let url = segs.next()?.trim().trim_start_matches('<').trim_end_matches('>').to_string();
        if segs.any(|s| s.trim().replace(' ', "") == "rel=\"next\"" || s.trim() == "rel=next") {
            return Some(url);
        }
    }
    None
}

impl MetricService<'_> {
    async fn paged_resources(&self, mut req: Req) -> Result<Vec<Resource>> {
        let mut out = Vec::new();
        let mut pages = 0;
        loop {
            let (items, resp): (Vec<Resource>, _) = self.0.json("metric", req.clone()).await?;
            let n = items.len();
            out.extend(items);
            pages += 1;
            // Re-issue with the marker rather than following the href host.
            let next = link_next(resp.header("link"));
            match (next, out.last()) {
                (Some(_), _) if pages >= super::compute::MAX_PAGES => {
                    return Err(super::compute::endless(self.0, "metric", "resources"));
                }
                (Some(_), Some(last)) if n > 0 => {
                    req.query.retain(|(k, _)| k != "marker");
                    req.query.push(("marker".into(), last.id.clone()));
                }
                _ => break,
            }
        }
        Ok(out)
    }

    pub async fn list_resources(&self, resource_type: &str) -> Result<Vec<Resource>> {
        self.paged_resources(Req::get(format!("/resource/{resource_type}")).query("sort", "id:asc")).await
    }

    /// `POST /v1/search/resource/{type}` with a JSON filter.
    pub async fn search_resources(&self, resource_type: &str, filter: Value) -> Result<Vec<Resource>> {
        self.paged_resources(Req::post(format!("/search/resource/{resource_type}"), filter).query("sort", "id:asc"))
            .await
    }

    pub async fn get_resource(&self, resource_type: &str, id: &str) -> Result<Resource> {
        Ok(self.0.json("metric", Req::get(format!("/resource/{resource_type}/{id}"))).await?.0)
    }

    pub async fn create_resource(&self, resource_type: &str, body: Value) -> Result<Resource> {
        Ok(self.0.json("metric", Req::post(format!("/resource/{resource_type}"), body)).await?.0)
    }

    pub async fn delete_resource(&self, resource_type: &str, id: &str) -> Result<()> {
        self.0.request("metric", Req::delete(format!("/resource/{resource_type}/{id}"))).await?;
        Ok(())
    }

    pub async fn get_metric(&self, id: &str) -> Result<Metric> {
        Ok(self.0.json("metric", Req::get(format!("/metric/{id}"))).await?.0)
    }

    pub async fn get_archive_policy(&self, name: &str) -> Result<ArchivePolicy> {
        Ok(self.0.json("metric", Req::get(format!("/archive_policy/{name}"))).await?.0)
    }

    /// Create an archive policy (admin), e.g. one with `rate:mean` for cumulative meters.
    pub async fn create_archive_policy(
        &self,
        name: &str,
        methods: &[&str],
        granularity_s: u64,
        points: u64,
    ) -> Result<ArchivePolicy> {
        let body = json!({
            "name": name,
            "back_window": 0,
            "aggregation_methods": methods,
            "definition": [{"granularity": format!("{granularity_s}s"), "points": points}]
        });
        Ok(self.0.json("metric", Req::post("/archive_policy", body)).await?.0)
    }

    /// Measures of a metric at one granularity (always pass one: without it Gnocchi
    /// mixes every granularity in one list).
    pub async fn measures(
        &self,
        metric_id: &str,
        aggregation: &str,
        granularity_s: u64,
        start: Option<Timestamp>,
        stop: Option<Timestamp>,
    ) -> Result<Vec<Measure>> {
        let mut req = Req::get(format!("/metric/{metric_id}/measures"))
            .query("aggregation", aggregation)
            .query("granularity", granularity_s);
        if let Some(s) = start {
            req = req.query("start", format_offset(&s));
        }
        if let Some(s) = stop {
            req = req.query("stop", format_offset(&s));
        }
        let (v, _): (Value, _) = self.0.json("metric", req).await?;
        Ok(parse_measures(&v))
    }

    pub async fn resource_measures(
        &self,
        resource_type: &str,
        id: &str,
        metric: &str,
        aggregation: &str,
        granularity_s: u64,
        start: Option<Timestamp>,
    ) -> Result<Vec<Measure>> {
        let mut req = Req::get(format!("/resource/{resource_type}/{id}/metric/{metric}/measures"))
            .query("aggregation", aggregation)
            .query("granularity", granularity_s);
        if let Some(s) = start {
            req = req.query("start", format_offset(&s));
        }
        let (v, _): (Value, _) = self.0.json("metric", req).await?;
        Ok(parse_measures(&v))
    }

    /// Post measures to a resource's named metric.
    pub async fn post_resource_measures(
        &self,
        resource_type: &str,
        id: &str,
        metric: &str,
        points: &[(Timestamp, f64)],
    ) -> Result<()> {
        let body =
            Value::Array(points.iter().map(|(t, v)| json!({"timestamp": format_offset(t), "value": v})).collect());
        self.0
            .request("metric", Req::post(format!("/resource/{resource_type}/{id}/metric/{metric}/measures"), body))
            .await?;
        Ok(())
    }

    /// `POST /v1/aggregates`, raw answer.
    pub async fn aggregates(&self, query: &[(&str, String)], body: Value) -> Result<Value> {
        let mut req = Req::post("/aggregates", body);
        for (k, v) in query {
            req = req.query(k, v);
        }
        Ok(self.0.json("metric", req).await?.0)
    }

    async fn aggregate_by_resource(
        &self,
        resource_type: &str,
        search: Value,
        operations: &str,
        granularity_s: u64,
        start: Timestamp,
        groupby: Option<&str>,
    ) -> Result<Vec<AggregateSeries>> {
        let mut q = vec![("granularity", granularity_s.to_string()), ("start", format_offset(&start))];
        if let Some(g) = groupby {
            q.push(("groupby", g.to_string()));
        }
        let body = json!({"resource_type": resource_type, "search": search, "operations": operations});
        match self.aggregates(&q, body).await {
            Ok(v) => Ok(parse_aggregates(&v)),
            // No resource or metric matched yet (new servers): nothing to plot.
            Err(e) if e.kind == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// CPU %, memory and network rates of many servers in three requests, whatever
    /// their number (chunks of 200 ids). `servers` are (server id, vCPUs).
    pub async fn server_metrics(
        &self,
        servers: &[(String, u32)],
        granularity_s: u64,
        start: Timestamp,
    ) -> Result<HashMap<String, ServerMetrics>> {
        let mut out: HashMap<String, ServerMetrics> = HashMap::new();
        let g = granularity_s as f64;
        for chunk in servers.chunks(200) {
            let vcpus: HashMap<&str, u32> = chunk.iter().map(|(id, v)| (id.as_str(), *v)).collect();
            let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
            let search = json!({"in": {"id": ids}});
            for s in self
                .aggregate_by_resource("instance", search.clone(), "(metric cpu rate:mean)", granularity_s, start, None)
                .await?
            {
                let Some(&v) = vcpus.get(s.key.as_str()) else { continue };
                let e = out.entry(s.key.clone()).or_default();
                e.cpu_pct = s
                    .measures
                    .iter()
                    .filter_map(|m| Some((m.at, cpu_percent(m.value?, m.granularity.seconds().unwrap_or(g), v))))
                    .collect();
            }
            for s in self
                .aggregate_by_resource("instance", search, "(metric memory.usage mean)", granularity_s, start, None)
                .await?
            {
                if !vcpus.contains_key(s.key.as_str()) {
                    continue;
                }
                out.entry(s.key.clone()).or_default().memory_mb =
                    s.measures.iter().filter_map(|m| Some((m.at, m.value?))).collect();
            }
            let nsearch = json!({"in": {"instance_id": ids}});
            let ops = "(metric (network.incoming.bytes rate:mean) (network.outgoing.bytes rate:mean))";
            let mut sums: HashMap<(String, bool), std::collections::BTreeMap<Timestamp, f64>> = HashMap::new();
            for s in self
                .aggregate_by_resource(
                    "instance_network_interface",
                    nsearch,
                    ops,
                    granularity_s,
                    start,
                    Some("instance_id"),
                )
                .await?
            {
                let Some(server) = s.group.get("instance_id").cloned() else { continue };
                let incoming = s.metric.as_deref() == Some("network.incoming.bytes");
                let e = sums.entry((server, incoming)).or_default();
                for m in &s.measures {
                    if let Some(v) = m.value {
                        *e.entry(m.at).or_insert(0.0) += v / m.granularity.seconds().unwrap_or(g).max(1.0);
                    }
                }
            }
            for ((server, incoming), series) in sums {
                let e = out.entry(server).or_default();
                let v: Vec<(Timestamp, f64)> = series.into_iter().collect();
                if incoming {
                    e.net_in_bps = v;
                } else {
                    e.net_out_bps = v;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_from_rate() {
        // 60 s of CPU time in 300 s on 1 vCPU = 20 %.
        assert!((cpu_percent(60e9, 300.0, 1) - 20.0).abs() < 1e-9);
        assert!((cpu_percent(60e9, 300.0, 2) - 10.0).abs() < 1e-9);
        assert_eq!(cpu_percent(1.0, 0.0, 1), 0.0);
    }

    #[test]
    fn link_header_next() {
        let h = r#"<http://localhost/v1/resource/generic?limit=2&marker=75c4&sort=id%3Aasc>; rel="next""#;
        assert_eq!(
            link_next(Some(h)).as_deref(),
            Some("http://localhost/v1/resource/generic?limit=2&marker=75c4&sort=id%3Aasc")
        );
        assert_eq!(link_next(Some(r#"<http://x>; rel="prev""#)), None);
        assert_eq!(link_next(None), None);
    }
}
