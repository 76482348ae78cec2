//! Simulated Neutron v2.0: networks, subnets, ports, floating IPs, security groups
//! and extensions, with attribute filters, `fields` and `<resource>_links` paging.

use super::http::*;
use super::world::{new_id, FloatingIp, SimError, World};
use crate::domain::json::Obj;
use crate::domain::time::format_z;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

pub fn router() -> Router<S> {
    let p = "/networking/v2.0";
    Router::new()
        .route("/networking", get(versions))
        .route("/networking/", get(versions))
        .route(&format!("{p}/extensions"), get(extensions))
        .route(&format!("{p}/networks"), get(|s: State<S>, h: HeaderMap, q: RawQuery| listing(s, h, q, "networks")))
        .route(
            &format!("{p}/networks/{{id}}"),
            get(|s: State<S>, h: HeaderMap, p: Path<String>| showing(s, h, p, "networks")),
        )
        .route(&format!("{p}/subnets"), get(|s: State<S>, h: HeaderMap, q: RawQuery| listing(s, h, q, "subnets")))
        .route(
            &format!("{p}/subnets/{{id}}"),
            get(|s: State<S>, h: HeaderMap, p: Path<String>| showing(s, h, p, "subnets")),
        )
        .route(&format!("{p}/ports"), get(|s: State<S>, h: HeaderMap, q: RawQuery| listing(s, h, q, "ports")))
        .route(
            &format!("{p}/ports/{{id}}"),
            get(|s: State<S>, h: HeaderMap, p: Path<String>| showing(s, h, p, "ports")).delete(delete_port),
        )
        .route(
            &format!("{p}/security-groups"),
            get(|s: State<S>, h: HeaderMap, q: RawQuery| listing(s, h, q, "security_groups")),
        )
        .route(
            &format!("{p}/security-groups/{{id}}"),
            get(|s: State<S>, h: HeaderMap, p: Path<String>| showing(s, h, p, "security_groups")),
        )
        .route(
            &format!("{p}/floatingips"),
            get(|s: State<S>, h: HeaderMap, q: RawQuery| listing(s, h, q, "floatingips")).post(create_fip),
        )
        .route(
            &format!("{p}/floatingips/{{id}}"),
            get(|s: State<S>, h: HeaderMap, p: Path<String>| showing(s, h, p, "floatingips"))
                .put(update_fip)
                .delete(delete_fip),
        )
}

async fn versions(State(s): State<S>) -> Response {
    json_response(
        200,
        &json!({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": format!("{}/networking/v2.0/", s.base())}]}]}),
    )
}

async fn extensions(State(s): State<S>, h: HeaderMap) -> Response {
    if let Err(r) = authenticate(&s, &h) {
        return r;
    }
    let ext = |alias: &str, name: &str| json!({"alias": alias, "name": name, "description": name, "updated": "2018-01-01T00:00:00-00:00", "links": []});
    json_response(
        200,
        &json!({"extensions": [
            ext("standard-attr-tag", "Tag support for resources with standard attribute"),
            ext("external-net", "Neutron external network"),
            ext("router", "Neutron L3 Router"),
            ext("security-group", "security-group"),
            ext("port-security", "Port Security"),
            ext("standard-attr-timestamp", "Resource timestamps"),
            ext("network_availability_zone", "Network Availability Zone"),
        ]}),
    )
}

fn all(w: &World, kind: &str, project: &str, admin: bool) -> Vec<Value> {
    let visible = |p: &str, shared: bool| admin || shared || p == project;
    match kind {
        "networks" => w
            .networks
            .iter()
            .filter(|n| visible(&n.project_id, n.shared || n.external))
            .map(|n| {
                let mut v = json!({
                    "id": n.id, "name": n.name, "status": "ACTIVE", "admin_state_up": true, "shared": n.shared,
                    "router:external": n.external, "subnets": [n.subnet_id], "mtu": n.mtu, "project_id": n.project_id,
                    "tenant_id": n.project_id, "availability_zones": [], "availability_zone_hints": [], "tags": [],
                    "port_security_enabled": true, "ipv4_address_scope": null, "ipv6_address_scope": null,
                    "description": "", "created_at": format_z(&n.created_at), "updated_at": format_z(&n.created_at),
                    "revision_number": 1, "qinq": false, "vlan_transparent": null
                });
                if admin {
                    v.put("provider:network_type", json!("flat"));
                    v.put("provider:physical_network", json!("physnet1"));
                    v.put("provider:segmentation_id", Value::Null);
                }
                v
            })
            .collect(),
        "subnets" => w
            .networks
            .iter()
            .filter(|n| visible(&n.project_id, n.shared || n.external))
            .map(|n| {
                json!({
                    "id": n.subnet_id, "name": format!("{}-subnet", n.name), "network_id": n.id, "ip_version": 4,
                    "cidr": format!("{}.0/24", n.prefix), "gateway_ip": format!("{}.1", n.prefix), "enable_dhcp": true,
                    "allocation_pools": [{"start": format!("{}.2", n.prefix), "end": format!("{}.254", n.prefix)}],
                    "dns_nameservers": [], "host_routes": [], "project_id": n.project_id, "tenant_id": n.project_id,
                    "tags": [], "description": "", "created_at": format_z(&n.created_at), "updated_at": format_z(&n.created_at), "revision_number": 0
                })
            })
            .collect(),
        "ports" => w
            .ports
            .values()
            .filter(|p| visible(&p.project_id, false))
            .map(|p| {
                let subnet = w.networks.iter().find(|n| n.id == p.network_id).map(|n| n.subnet_id.clone()).unwrap_or_default();
                let mut v = json!({
                    "id": p.id, "name": p.name, "network_id": p.network_id, "device_id": p.device_id, "device_owner": p.device_owner,
                    "mac_address": p.mac, "fixed_ips": [{"subnet_id": subnet, "ip_address": p.ip}], "status": p.status,
                    "admin_state_up": true, "security_groups": p.security_groups.iter().filter_map(|g| w.security_groups.iter().find(|x| &x.name == g || &x.id == g).map(|x| x.id.clone())).collect::<Vec<_>>(),
                    "project_id": p.project_id, "tenant_id": p.project_id, "tags": p.tags, "description": "",
                    "allowed_address_pairs": [], "extra_dhcp_opts": [], "port_security_enabled": true,
                    "binding:vnic_type": "normal", "created_at": format_z(&p.created_at), "updated_at": format_z(&p.updated_at), "revision_number": 1
                });
                if admin {
                    let host = w.servers.get(&p.device_id).map(|s| s.host.clone()).unwrap_or_default();
                    v.put("binding:host_id", json!(host));
                    v.put("binding:profile", json!({}));
                    v.put("binding:vif_details", json!({"port_filter": true, "ovs_hybrid_plug": false, "bound_drivers": {"0": "alwaysbind"}}));
                    v.put("binding:vif_type", json!(if host.is_empty() { "unbound" } else { "ovs" }));
                }
                v
            })
            .collect(),
        "security_groups" => w
            .security_groups
            .iter()
            .filter(|g| visible(&g.project_id, false))
            .map(|g| {
                json!({
                    "id": g.id, "name": g.name, "description": g.description, "project_id": g.project_id, "tenant_id": g.project_id,
                    "stateful": true, "tags": [], "revision_number": 1,
                    "security_group_rules": [
                        {"id": format!("{}-egress", g.id), "direction": "egress", "ethertype": "IPv4", "protocol": null, "port_range_min": null, "port_range_max": null, "remote_ip_prefix": null, "remote_group_id": null, "security_group_id": g.id},
                        {"id": format!("{}-ingress", g.id), "direction": "ingress", "ethertype": "IPv4", "protocol": null, "port_range_min": null, "port_range_max": null, "remote_ip_prefix": null, "remote_group_id": g.id, "security_group_id": g.id}
                    ]
                })
            })
            .collect(),
        "floatingips" => w.floating_ips.values().filter(|f| visible(&f.project_id, false)).map(fip_json).collect(),
        _ => vec![],
    }
}

fn fip_json(f: &FloatingIp) -> Value {
    json!({
        "id": f.id, "floating_ip_address": f.address, "fixed_ip_address": f.fixed_ip, "port_id": f.port_id,
        "router_id": f.port_id.as_ref().map(|_| "router-sim"), "floating_network_id": f.network_id, "status": f.status,
        "project_id": f.project_id, "tenant_id": f.project_id, "description": "", "tags": [], "port_details": null,
        "dns_domain": "", "dns_name": "", "port_forwardings": [], "qos_policy_id": null,
        "created_at": format_z(&f.created_at), "updated_at": format_z(&f.created_at), "revision_number": 1
    })
}

fn singular(kind: &str) -> &str {
    match kind {
        "networks" => "network",
        "subnets" => "subnet",
        "ports" => "port",
        "security_groups" => "security_group",
        "floatingips" => "floatingip",
        _ => kind,
    }
}

fn not_found_type(kind: &str) -> &'static str {
    match kind {
        "networks" => "NetworkNotFound",
        "subnets" => "SubnetNotFound",
        "ports" => "PortNotFound",
        "security_groups" => "SecurityGroupNotFound",
        "floatingips" => "FloatingIPNotFound",
        _ => "NotFound",
    }
}

fn matches(v: &Value, k: &str, wanted: &[&str]) -> bool {
    let field = match v.get(k) {
        Some(f) => f,
        None => return true,
    };
    match field {
        Value::String(s) => wanted.contains(&s.as_str()),
        Value::Bool(b) => wanted.iter().any(|w| w.eq_ignore_ascii_case(if *b { "true" } else { "false" })),
        Value::Number(n) => wanted.contains(&n.to_string().as_str()),
        Value::Array(a) if k == "tags" => {
            wanted.iter().all(|w| w.split(',').all(|t| a.iter().any(|x| x.as_str() == Some(t))))
        }
        Value::Null => wanted.iter().any(|w| w.is_empty()),
        _ => true,
    }
}

async fn listing(State(s): State<S>, h: HeaderMap, RawQuery(raw): RawQuery, kind: &'static str) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = query_pairs(raw.as_deref());
    let w = s.world();
    let mut items = all(&w, kind, &c.project_id, c.admin);
    drop(w);
    let skip =
        ["limit", "marker", "fields", "sort_key", "sort_dir", "page_reverse", "tags-any", "not-tags", "not-tags-any"];
    let mut keys: Vec<&str> = q.iter().map(|(k, _)| k.as_str()).filter(|k| !skip.contains(k)).collect();
    keys.dedup();
    for k in keys {
        let wanted = q_all(&q, k);
        items.retain(|v| matches(v, k, &wanted));
    }
    if let Some(any) = q_get(&q, "tags-any") {
        let want: Vec<&str> = any.split(',').collect();
        items.retain(|v| {
            v["tags"].as_array().is_some_and(|a| a.iter().any(|t| want.contains(&t.as_str().unwrap_or(""))))
        });
    }
    items.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let limit: Option<usize> = q_get(&q, "limit").and_then(|l| l.parse().ok()).filter(|l| *l > 0);
    if let Some(m) = q_get(&q, "marker") {
        match items.iter().position(|v| v["id"] == m) {
            Some(i) => {
                items.drain(..=i);
            }
            None => return neutron_error(404, "NotFound", &format!("Marker {m} could not be found.")),
        }
    }
    let mut links = None;
    if let Some(l) = limit {
        if items.len() > l {
            items.truncate(l);
        }
        if items.len() == l {
            if let Some(last) = items.last().and_then(|v| v["id"].as_str()) {
                let path = kind.replace('_', "-");
                links = Some(
                    json!([{"rel": "next", "href": format!("{}/networking/v2.0/{path}?limit={l}&marker={last}", s.base())}]),
                );
            }
        }
    }
    let fields = q_all(&q, "fields");
    if !fields.is_empty() {
        for v in items.iter_mut() {
            if let Some(o) = v.as_object_mut() {
                o.retain(|k, _| fields.contains(&k.as_str()));
            }
        }
    }
    let mut body = json!({kind: items});
    if let Some(l) = links {
        body.put(&format!("{kind}_links"), l);
    }
    json_response(200, &body)
}

async fn showing(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, kind: &'static str) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let w = s.world();
    let items = all(&w, kind, &c.project_id, c.admin);
    match items.into_iter().find(|v| v["id"] == id.as_str()) {
        Some(v) => json_response(200, &json!({singular(kind): v})),
        None => {
            let what = match kind {
                "floatingips" => "Floating IP".to_string(),
                "security_groups" => "Security group".to_string(),
                other => singular(other).to_string(),
            };
            let mut letters = what.chars();
            let cap: String = letters.next().map(|f| f.to_uppercase().chain(letters).collect()).unwrap_or_default();
            neutron_error(404, not_found_type(kind), &format!("{cap} {id} could not be found."))
        }
    }
}

async fn delete_port(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut w = s.world();
    match w.ports.get(&id) {
        Some(p) if c.admin || p.project_id == c.project_id => {
            let dev = p.device_id.clone();
            w.ports.remove(&id);
            if let Some(sv) = w.servers.get_mut(&dev) {
                sv.ports.retain(|x| x != &id);
            }
            empty(204)
        }
        _ => neutron_error(404, "PortNotFound", &format!("Port {id} could not be found.")),
    }
}

fn render(e: SimError) -> Response {
    neutron_error(e.status, e.kind, &e.message)
}

async fn create_fip(State(s): State<S>, h: HeaderMap, body: Bytes) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return render(e),
    };
    let Some(net) = body.pointer("/floatingip/floating_network_id").and_then(Value::as_str) else {
        return neutron_error(
            400,
            "HTTPBadRequest",
            "Failed to parse request. Required attribute 'floating_network_id' not specified",
        );
    };
    let now = s.now();
    let mut w = s.world();
    if !w.networks.iter().any(|n| n.id == net && n.external) {
        return neutron_error(404, "ExternalNetworkNotFound", &format!("External network {net} could not be found."));
    }
    let n = w.floating_ips.len() as u32 + 10;
    let port_id = body.pointer("/floatingip/port_id").and_then(Value::as_str).map(String::from);
    let fixed = port_id.as_ref().and_then(|p| w.ports.get(p)).map(|p| p.ip.clone());
    let f = FloatingIp {
        id: new_id(),
        address: format!("172.24.4.{}", n % 250 + 2),
        network_id: net.to_string(),
        fixed_ip: fixed,
        status: if port_id.is_some() { "ACTIVE".into() } else { "DOWN".into() },
        port_id,
        project_id: c.project_id.clone(),
        created_at: now,
    };
    let v = fip_json(&f);
    w.floating_ips.insert(f.id.clone(), f);
    json_response(201, &json!({"floatingip": v}))
}

async fn update_fip(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return render(e),
    };
    let mut w = s.world();
    let port = body.pointer("/floatingip/port_id").and_then(Value::as_str).map(String::from);
    let fixed = port.as_ref().and_then(|p| w.ports.get(p)).map(|p| p.ip.clone());
    match w.floating_ips.get_mut(&id).filter(|f| c.admin || f.project_id == c.project_id) {
        Some(f) => {
            f.status = if port.is_some() { "ACTIVE".into() } else { "DOWN".into() };
            f.port_id = port;
            f.fixed_ip = fixed;
            json_response(200, &json!({"floatingip": fip_json(f)}))
        }
        None => neutron_error(404, "FloatingIPNotFound", &format!("Floating IP {id} could not be found.")),
    }
}

async fn delete_fip(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut w = s.world();
    if w.floating_ips.get(&id).is_some_and(|f| c.admin || f.project_id == c.project_id) {
        w.floating_ips.remove(&id);
        empty(204)
    } else {
        neutron_error(404, "FloatingIPNotFound", &format!("Floating IP {id} could not be found."))
    }
}
