//! Simulated Neutron v2.0: networks, subnets, ports, floating IPs, security groups
//! and their rules, agents, quotas and extensions, with attribute filters, `fields`
//! and `<resource>_links` paging. The rules of the model live in `netmodel.rs`.

use super::http::*;
use super::netmodel::{NetworkQuota, Pool, PortCreate, RuleCreate, SecurityGroupRule, SubnetCreate};
use super::world::{new_id, FloatingIp, SimError, World, COMPUTE_HOSTS};
use crate::domain::json::json;
use crate::domain::json::Obj;
use crate::domain::time::format_z;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::Value;

pub fn router() -> Router<S> {
    let p = "/networking/v2.0";
    Router::new()
        .route("/networking", get(h1(versions)))
        .route("/networking/", get(h1(versions)))
        .route(&format!("{p}/extensions"), get(h2(extensions)))
        .route(&format!("{p}/networks"), get(hk3(listing, "networks")).post(h3(create_network)))
        .route(
            &format!("{p}/networks/{{id}}"),
            get(hk3(showing, "networks")).put(h4(update_network)).delete(h3(delete_network)),
        )
        .route(&format!("{p}/subnets"), get(hk3(listing, "subnets")).post(h3(create_subnet)))
        .route(&format!("{p}/subnets/{{id}}"), get(hk3(showing, "subnets")).delete(h3(delete_subnet)))
        .route(&format!("{p}/ports"), get(hk3(listing, "ports")).post(h3(create_port)))
        .route(&format!("{p}/ports/{{id}}"), get(hk3(showing, "ports")).put(h4(update_port)).delete(h3(delete_port)))
        .route(&format!("{p}/security-groups"), get(hk3(listing, "security_groups")).post(h3(create_group)))
        .route(
            &format!("{p}/security-groups/{{id}}"),
            get(hk3(showing, "security_groups")).put(h4(update_group)).delete(h3(delete_group)),
        )
        .route(&format!("{p}/security-group-rules"), get(hk3(listing, "security_group_rules")).post(h3(create_rule)))
        .route(
            &format!("{p}/security-group-rules/{{id}}"),
            get(hk3(showing, "security_group_rules")).delete(h3(delete_rule)),
        )
        .route(&format!("{p}/agents"), get(hk3(listing, "agents")))
        .route(&format!("{p}/agents/{{id}}"), get(hk3(showing, "agents")))
        .route(&format!("{p}/routers"), get(hk3(listing, "routers")))
        .route(&format!("{p}/routers/{{id}}"), get(hk3(showing, "routers")))
        .route(&format!("{p}/quotas"), get(h2(quota_list)))
        .route(&format!("{p}/quotas/{{id}}"), get(h3(quota_show)).put(h4(quota_update)).delete(h3(quota_reset)))
        .route(&format!("{p}/quotas/{{id}}/{{what}}"), get(h3(quota_more)))
        .route(&format!("{p}/floatingips"), get(hk3(listing, "floatingips")).post(h3(create_fip)))
        .route(
            &format!("{p}/floatingips/{{id}}"),
            get(hk3(showing, "floatingips")).put(h4(update_fip)).delete(h3(delete_fip)),
        )
}

fn versions(State(s): State<S>) -> Response {
    json_response(
        200,
        &json!({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": format!("{}/networking/v2.0/", s.base())}]}]}),
    )
}

fn extensions(State(s): State<S>, h: HeaderMap) -> Response {
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

fn network_json(w: &World, n: &super::world::Network, admin: bool) -> Value {
    let subnets: Vec<&str> = w.subnets_of(&n.id).map(|x| x.id.as_str()).collect();
    let mut v = json!({
        "id": n.id, "name": n.name, "status": "ACTIVE", "admin_state_up": n.admin_state_up, "shared": n.shared,
        "router:external": n.external, "subnets": subnets, "mtu": n.mtu, "project_id": n.project_id,
        "tenant_id": n.project_id, "availability_zones": [], "availability_zone_hints": [], "tags": [],
        "port_security_enabled": true, "ipv4_address_scope": null, "ipv6_address_scope": null,
        "description": n.description, "created_at": format_z(&n.created_at),
        "updated_at": format_z(&n.updated_at.unwrap_or(n.created_at)),
        "revision_number": n.revision.max(1), "qinq": false, "vlan_transparent": null
    });
    if admin {
        v.put("provider:network_type", json!(n.network_type));
        v.put("provider:physical_network", json!(n.physical_network));
        v.put("provider:segmentation_id", json!(n.segmentation_id));
    }
    v
}

fn subnet_json(w: &World, x: &super::netmodel::Subnet) -> Value {
    let external = w.networks.iter().any(|n| n.id == x.network_id && n.external);
    json!({
        "id": x.id, "name": x.name, "network_id": x.network_id, "ip_version": 4, "cidr": x.cidr,
        "gateway_ip": x.gateway_ip, "enable_dhcp": x.enable_dhcp, "allocation_pools": x.allocation_pools,
        "dns_nameservers": x.dns_nameservers, "host_routes": [], "project_id": x.project_id, "tenant_id": x.project_id,
        "ipv6_address_mode": null, "ipv6_ra_mode": null, "subnetpool_id": null, "segment_id": null,
        "service_types": [], "router:external": external, "dns_publish_fixed_ip": null,
        "tags": [], "description": x.description, "created_at": format_z(&x.created_at),
        "updated_at": format_z(&x.updated_at), "revision_number": x.revision
    })
}

fn port_json(w: &World, p: &super::world::Port, admin: bool) -> Value {
    let subnet = if p.subnet_id.is_empty() {
        w.subnets_of(&p.network_id).next().map(|x| x.id.clone()).unwrap_or_default()
    } else {
        p.subnet_id.clone()
    };
    let fixed = if p.ip.is_empty() { json!([]) } else { json!([{"subnet_id": subnet, "ip_address": p.ip}]) };
    let groups: Vec<String> = p
        .security_groups
        .iter()
        .filter_map(|g| w.security_groups.iter().find(|x| &x.name == g || &x.id == g).map(|x| x.id.clone()))
        .collect();
    let mut v = json!({
        "id": p.id, "name": p.name, "network_id": p.network_id, "device_id": p.device_id, "device_owner": p.device_owner,
        "mac_address": p.mac, "fixed_ips": fixed, "status": p.status,
        "admin_state_up": p.admin_state_up, "security_groups": groups,
        "project_id": p.project_id, "tenant_id": p.project_id, "tags": p.tags, "description": p.description,
        "allowed_address_pairs": [], "extra_dhcp_opts": [], "port_security_enabled": true,
        "binding:vnic_type": "normal", "created_at": format_z(&p.created_at), "updated_at": format_z(&p.updated_at),
        "revision_number": p.revision.max(1)
    });
    if admin {
        let host = w.servers.get(&p.device_id).map(|s| s.host.clone()).unwrap_or_default();
        v.put("binding:host_id", json!(host));
        v.put("binding:profile", json!({}));
        if host.is_empty() {
            v.put("binding:vif_details", json!({}));
        } else {
            v.put(
                "binding:vif_details",
                json!({"port_filter": true, "ovs_hybrid_plug": false, "bound_drivers": {"0": "alwaysbind"}}),
            );
        }
        v.put("binding:vif_type", json!(if host.is_empty() { "unbound" } else { "ovs" }));
    }
    v
}

fn rule_json(w: &World, r: &SecurityGroupRule) -> Value {
    let default_sg = w.security_groups.iter().any(|g| g.id == r.security_group_id && g.name == "default");
    json!({
        "id": r.id, "project_id": r.project_id, "tenant_id": r.project_id, "security_group_id": r.security_group_id,
        "ethertype": r.ethertype, "direction": r.direction, "protocol": r.protocol,
        "port_range_min": r.port_range_min, "port_range_max": r.port_range_max,
        "remote_ip_prefix": r.remote_ip_prefix, "remote_address_group_id": null, "normalized_cidr": r.remote_ip_prefix,
        "remote_group_id": r.remote_group_id, "belongs_to_default_sg": default_sg, "description": r.description,
        "tags": [], "created_at": format_z(&r.created_at), "updated_at": format_z(&r.created_at), "revision_number": 0
    })
}

fn group_json(w: &World, g: &super::world::SecurityGroup) -> Value {
    let rules: Vec<Value> =
        w.security_group_rules.values().filter(|r| r.security_group_id == g.id).map(|r| rule_json(w, r)).collect();
    json!({
        "id": g.id, "name": g.name, "description": g.description, "project_id": g.project_id, "tenant_id": g.project_id,
        "stateful": true, "shared": false, "tags": [], "revision_number": g.revision.max(1),
        "created_at": format_z(&g.created_at), "updated_at": format_z(&g.updated_at),
        "security_group_rules": rules
    })
}

/// The agents of an ML2/OVN deployment on the simulator's hosts: a gateway
/// chassis on the controller, a chassis and a metadata agent per compute host.
/// A host made to fail (`down`) has its agents not alive.
fn agents(w: &World, now: &crate::domain::Timestamp) -> Vec<Value> {
    let mut list = vec![("controller", "OVN Controller Gateway agent", "ovn-controller")];
    for h in COMPUTE_HOSTS {
        list.push((h, "OVN Controller agent", "ovn-controller"));
        list.push((h, "OVN Metadata agent", "neutron-ovn-metadata-agent"));
    }
    let started = w.networks.iter().map(|n| n.created_at).min().unwrap_or(*now);
    list.into_iter()
        .map(|(host, kind, binary)| {
            let down = w.host_faults.get(host).is_some_and(|(k, _)| k == "down");
            let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{kind}@{host}").as_bytes()).to_string();
            json!({
                "id": id, "agent_type": kind, "binary": binary, "host": host, "topic": "n/a", "alive": !down,
                "admin_state_up": true, "availability_zone": "", "description": "", "resources_synced": null,
                "created_at": agent_time(&started),
                "started_at": agent_time(&started),
                "heartbeat_timestamp": agent_time(now),
                "configurations": if binary == "ovn-controller" {
                    json!({"chassis_name": id, "bridge-mappings": "physnet1:br-ex"})
                } else {
                    json!({"chassis_name": id, "bridge-mappings": ""})
                }
            })
        })
        .collect()
}

fn agent_time(t: &crate::domain::Timestamp) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn all(w: &World, kind: &str, project: &str, admin: bool, now: &crate::domain::Timestamp) -> Vec<Value> {
    let visible = |p: &str, shared: bool| admin || shared || p == project;
    let net_visible =
        |id: &str| w.networks.iter().any(|n| n.id == id && visible(&n.project_id, n.shared || n.external));
    match kind {
        "networks" => w
            .networks
            .iter()
            .filter(|n| visible(&n.project_id, n.shared || n.external))
            .map(|n| network_json(w, n, admin))
            .collect(),
        "subnets" => w
            .subnets
            .iter()
            .filter(|x| x.project_id == project || admin || net_visible(&x.network_id))
            .map(|x| subnet_json(w, x))
            .collect(),
        "ports" => w.ports.values().filter(|p| visible(&p.project_id, false)).map(|p| port_json(w, p, admin)).collect(),
        "security_groups" => {
            w.security_groups.iter().filter(|g| visible(&g.project_id, false)).map(|g| group_json(w, g)).collect()
        }
        "security_group_rules" => w
            .security_group_rules
            .values()
            .filter(|r| {
                visible(&r.project_id, false)
                    || w.security_groups.iter().any(|g| g.id == r.security_group_id && g.project_id == project)
            })
            .map(|r| rule_json(w, r))
            .collect(),
        "agents" if admin => agents(w, now),
        "floatingips" => w.floating_ips.values().filter(|f| visible(&f.project_id, false)).map(fip_json).collect(),
        "routers" => {
            routers(w).into_iter().filter(|r| visible(r["project_id"].as_str().unwrap_or_default(), false)).collect()
        }
        _ => vec![],
    }
}

/// The id of a project's router (stable across restarts).
fn router_id(project: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("router:{project}").as_bytes()).to_string()
}

/// The simulator's routers, read-only: each project with a network of its own
/// reaches the external network through one router (`router1`), as a devstack
/// cloud is set up; floating IPs are served by it.
fn routers(w: &World) -> Vec<Value> {
    let Some(ext) = w.networks.iter().find(|n| n.external) else { return vec![] };
    let ext_subnet = w.subnets_of(&ext.id).next();
    let mut projects: Vec<&super::world::Network> = Vec::new();
    for n in w.networks.iter().filter(|n| !n.external && !n.project_id.is_empty()) {
        if !projects.iter().any(|p| p.project_id == n.project_id) {
            projects.push(n);
        }
    }
    projects
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let gw_ip =
                ext_subnet.and_then(|x| x.gateway_ip.as_deref()).and_then(|g| g.parse::<std::net::Ipv4Addr>().ok());
            let ip = gw_ip.map(|g| std::net::Ipv4Addr::from(u32::from(g).saturating_add(100 + i as u32)).to_string());
            let fixed: Vec<Value> = ext_subnet
                .iter()
                .filter_map(|x| ip.as_ref().map(|ip| json!({"subnet_id": x.id, "ip_address": ip})))
                .collect();
            json!({
                "id": router_id(&n.project_id), "name": "router1", "status": "ACTIVE", "admin_state_up": true,
                "project_id": n.project_id, "tenant_id": n.project_id, "description": "", "tags": [],
                "external_gateway_info": {"network_id": ext.id, "enable_snat": true, "external_fixed_ips": fixed},
                "routes": [], "distributed": false, "ha": false, "flavor_id": null,
                "availability_zone_hints": [], "availability_zones": ["nova"],
                "created_at": format_z(&n.created_at), "updated_at": format_z(&n.created_at), "revision_number": 1
            })
        })
        .collect()
}

fn fip_json(f: &FloatingIp) -> Value {
    json!({
        "id": f.id, "floating_ip_address": f.address, "fixed_ip_address": f.fixed_ip, "port_id": f.port_id,
        "router_id": f.port_id.as_ref().map(|_| router_id(&f.project_id)), "floating_network_id": f.network_id, "status": f.status,
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
        "security_group_rules" => "security_group_rule",
        "agents" => "agent",
        "floatingips" => "floatingip",
        "routers" => "router",
        _ => kind,
    }
}

fn not_found_type(kind: &str) -> &'static str {
    match kind {
        "networks" => "NetworkNotFound",
        "subnets" => "SubnetNotFound",
        "ports" => "PortNotFound",
        "security_groups" => "SecurityGroupNotFound",
        "security_group_rules" => "SecurityGroupRuleNotFound",
        "agents" => "AgentNotFound",
        "floatingips" => "FloatingIPNotFound",
        "routers" => "RouterNotFound",
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

fn listing(State(s): State<S>, h: HeaderMap, RawQuery(raw): RawQuery, kind: &'static str) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let q = query_pairs(raw.as_deref());
    let now = s.now();
    let w = s.world();
    let mut items = all(&w, kind, &c.project_id, c.admin, &now);
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
    crate::domain::sort::sort_by(&mut items, |a, b| a["id"].as_str().cmp(&b["id"].as_str()));
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

fn showing(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, kind: &'static str) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let now = s.now();
    let w = s.world();
    let items = all(&w, kind, &c.project_id, c.admin, &now);
    match items.into_iter().find(|v| v["id"] == id.as_str()) {
        Some(v) => {
            let key = singular(kind);
            json_response(200, &json!({key: v}))
        }
        None => not_found(kind, &id),
    }
}

fn not_found(kind: &str, id: &str) -> Response {
    let message = match kind {
        "floatingips" => format!("Floating IP {id} could not be found."),
        "security_groups" => format!("Security group {id} does not exist"),
        "security_group_rules" => format!("Security group rule {id} does not exist"),
        "agents" => format!("Agent {id} could not be found."),
        other => {
            let what = singular(other);
            let mut letters = what.chars();
            let cap: String = letters.next().map(|f| f.to_uppercase().chain(letters).collect()).unwrap_or_default();
            format!("{cap} {id} could not be found.")
        }
    };
    neutron_error(404, not_found_type(kind), &message)
}

fn delete_port(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
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

fn create_fip(State(s): State<S>, h: HeaderMap, body: Bytes) -> Response {
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

fn update_fip(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
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

fn delete_fip(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
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

/// The caller and the object under `key` of a JSON body, or Neutron's 400.
fn request(s: &S, h: &HeaderMap, body: &Bytes, key: &str) -> Result<(Caller, Obj0), Response> {
    let c = authenticate(s, h)?;
    let v = parse_body(body).map_err(render)?;
    match v.get(key) {
        Some(Value::Object(o)) => Ok((c, o.clone())),
        _ => Err(neutron_error(400, "HTTPBadRequest", &format!("Resource body required: '{key}' is missing"))),
    }
}

type Obj0 = serde_json::Map<String, Value>;

fn text(o: &Obj0, k: &str) -> Option<String> {
    o.get(k).and_then(Value::as_str).map(String::from)
}

fn flag(o: &Obj0, k: &str, default: bool) -> bool {
    o.get(k).and_then(Value::as_bool).unwrap_or(default)
}

fn port_number(o: &Obj0, k: &str) -> Result<Option<u32>, Response> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|x| x.parse().ok()))
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                neutron_error(400, "InvalidInput", &format!("Invalid input for {k}. Reason: '{v}' is not an integer."))
            }),
    }
}

/// The owner of something found, or a 404 unless the caller may act on it.
fn owned(c: &Caller, owner: Option<String>, kind: &str, id: &str) -> Result<String, Response> {
    match owner {
        Some(p) if c.admin || p == c.project_id => Ok(p),
        _ => Err(not_found(kind, id)),
    }
}

fn create_network(State(s): State<S>, h: HeaderMap, body: Bytes) -> Response {
    let (c, o) = match request(&s, &h, &body, "network") {
        Ok(x) => x,
        Err(r) => return r,
    };
    let provider = ["provider:network_type", "provider:physical_network", "provider:segmentation_id"];
    if !c.admin && provider.iter().any(|k| o.contains_key(*k)) {
        return neutron_error(
            403,
            "PolicyNotAuthorized",
            "(rule:create_network and rule:create_network:provider:network_type) is disallowed by policy",
        );
    }
    let seg = match port_number(&o, "provider:segmentation_id") {
        Ok(x) => x,
        Err(r) => return r,
    };
    let project = text(&o, "project_id").or_else(|| text(&o, "tenant_id")).filter(|_| c.admin);
    let now = s.now();
    let mut w = s.world();
    match w.create_network(
        project.as_deref().unwrap_or(&c.project_id),
        &text(&o, "name").unwrap_or_default(),
        text(&o, "provider:network_type").as_deref(),
        text(&o, "provider:physical_network").as_deref(),
        seg,
        flag(&o, "shared", false),
        &text(&o, "description").unwrap_or_default(),
        now,
    ) {
        Ok(n) => {
            let v = network_json(&w, &n, c.admin);
            json_response(201, &json!({"network": v}))
        }
        Err(e) => render(e),
    }
}

fn update_network(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let (c, o) = match request(&s, &h, &body, "network") {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = s.now();
    let mut w = s.world();
    let found = w.networks.iter().find(|n| n.id == id).map(|n| n.project_id.clone());
    if let Err(r) = owned(&c, found, "networks", &id) {
        return r;
    }
    let Some(n) = w.networks.iter_mut().find(|n| n.id == id) else { return not_found("networks", &id) };
    if let Some(x) = text(&o, "name") {
        n.name = x;
    }
    if let Some(x) = text(&o, "description") {
        n.description = x;
    }
    n.admin_state_up = flag(&o, "admin_state_up", n.admin_state_up);
    n.shared = flag(&o, "shared", n.shared);
    n.revision = n.revision.max(1) + 1;
    n.updated_at = Some(now);
    let n = n.clone();
    json_response(200, &json!({"network": network_json(&w, &n, c.admin)}))
}

fn delete_network(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut w = s.world();
    let found = w.networks.iter().find(|n| n.id == id).map(|n| n.project_id.clone());
    if let Err(r) = owned(&c, found, "networks", &id) {
        return r;
    }
    match w.delete_network(&id) {
        Ok(()) => empty(204),
        Err(e) => render(e),
    }
}

fn create_subnet(State(s): State<S>, h: HeaderMap, body: Bytes) -> Response {
    let (c, o) = match request(&s, &h, &body, "subnet") {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(network_id) = text(&o, "network_id") else {
        return neutron_error(
            400,
            "HTTPBadRequest",
            "Failed to parse request. Required attribute 'network_id' not specified",
        );
    };
    let Some(cidr) = text(&o, "cidr") else {
        return neutron_error(
            400,
            "BadRequest",
            "Bad subnets request: a cidr must be specified in the absence of a subnet pool.",
        );
    };
    let pools = match o.get("allocation_pools") {
        None | Some(Value::Null) => None,
        Some(v) => match serde_json::from_value::<Vec<Pool>>(v.clone()) {
            Ok(p) => Some(p),
            Err(_) => return neutron_error(400, "InvalidInput", "Invalid input for allocation_pools."),
        },
    };
    let req = SubnetCreate {
        name: text(&o, "name").unwrap_or_default(),
        network_id: network_id.clone(),
        cidr,
        ip_version: o.get("ip_version").and_then(Value::as_u64).unwrap_or(4) as u8,
        gateway_ip: match o.get("gateway_ip") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(v) => Some(v.as_str().map(String::from)),
        },
        allocation_pools: pools,
        enable_dhcp: flag(&o, "enable_dhcp", true),
        dns_nameservers: o
            .get("dns_nameservers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
            .unwrap_or_default(),
        description: text(&o, "description").unwrap_or_default(),
    };
    let now = s.now();
    let mut w = s.world();
    let found = w.networks.iter().find(|n| n.id == network_id).map(|n| n.project_id.clone());
    if let Err(r) = owned(&c, found, "networks", &network_id) {
        return r;
    }
    match w.create_subnet(&c.project_id, req, now) {
        Ok(x) => json_response(201, &json!({"subnet": subnet_json(&w, &x)})),
        Err(e) => render(e),
    }
}

fn delete_subnet(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut w = s.world();
    let found = w.subnets.iter().find(|x| x.id == id).map(|x| x.project_id.clone());
    if let Err(r) = owned(&c, found, "subnets", &id) {
        return r;
    }
    match w.delete_subnet(&id) {
        Ok(()) => empty(204),
        Err(e) => render(e),
    }
}

fn create_port(State(s): State<S>, h: HeaderMap, body: Bytes) -> Response {
    let (c, o) = match request(&s, &h, &body, "port") {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(network_id) = text(&o, "network_id") else {
        return neutron_error(
            400,
            "HTTPBadRequest",
            "Failed to parse request. Required attribute 'network_id' not specified",
        );
    };
    let strings = |k: &str| {
        o.get(k).and_then(Value::as_array).map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
    };
    let req = PortCreate {
        name: text(&o, "name").unwrap_or_default(),
        network_id: network_id.clone(),
        description: text(&o, "description").unwrap_or_default(),
        fixed_ips: o
            .get("fixed_ips")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|f| (text_of(f, "subnet_id"), text_of(f, "ip_address"))).collect()),
        security_groups: strings("security_groups"),
        device_id: text(&o, "device_id").unwrap_or_default(),
        device_owner: text(&o, "device_owner").unwrap_or_default(),
        admin_state_up: flag(&o, "admin_state_up", true),
    };
    let now = s.now();
    let mut w = s.world();
    let visible =
        w.networks.iter().any(|n| n.id == network_id && (c.admin || n.shared || n.project_id == c.project_id));
    if !visible {
        return not_found("networks", &network_id);
    }
    match w.create_port(&c.project_id, req, now) {
        Ok(p) => json_response(201, &json!({"port": port_json(&w, &p, c.admin)})),
        Err(e) => render(e),
    }
}

fn text_of(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(String::from)
}

fn update_port(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let (c, o) = match request(&s, &h, &body, "port") {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = s.now();
    let mut w = s.world();
    let found = w.ports.get(&id).map(|p| p.project_id.clone());
    let project = match owned(&c, found, "ports", &id) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match w.update_port(&id, &project, &o, now) {
        Ok(p) => json_response(200, &json!({"port": port_json(&w, &p, c.admin)})),
        Err(e) => render(e),
    }
}

fn create_group(State(s): State<S>, h: HeaderMap, body: Bytes) -> Response {
    let (c, o) = match request(&s, &h, &body, "security_group") {
        Ok(x) => x,
        Err(r) => return r,
    };
    let name = text(&o, "name").unwrap_or_default();
    if name == "default" {
        return neutron_error(409, "SecurityGroupDefaultAlreadyExists", "Default security group already exists.");
    }
    let now = s.now();
    let mut w = s.world();
    match w.create_security_group(&c.project_id, &name, &text(&o, "description").unwrap_or_default(), now) {
        Ok(g) => json_response(201, &json!({"security_group": group_json(&w, &g)})),
        Err(e) => render(e),
    }
}

fn update_group(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let (c, o) = match request(&s, &h, &body, "security_group") {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = s.now();
    let mut w = s.world();
    let found = w.security_groups.iter().find(|g| g.id == id).map(|g| g.project_id.clone());
    if let Err(r) = owned(&c, found, "security_groups", &id) {
        return r;
    }
    let Some(g) = w.security_groups.iter_mut().find(|g| g.id == id) else { return not_found("security_groups", &id) };
    if let Some(n) = text(&o, "name") {
        if g.name == "default" && n != "default" {
            return neutron_error(
                409,
                "SecurityGroupCannotUpdateDefault",
                "Updating default security group not allowed.",
            );
        }
        g.name = n;
    }
    if let Some(d) = text(&o, "description") {
        g.description = d;
    }
    g.revision += 1;
    g.updated_at = now;
    let g = g.clone();
    json_response(200, &json!({"security_group": group_json(&w, &g)}))
}

fn delete_group(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut w = s.world();
    let found = w.security_groups.iter().find(|g| g.id == id).map(|g| g.project_id.clone());
    if let Err(r) = owned(&c, found, "security_groups", &id) {
        return r;
    }
    match w.delete_security_group(&id) {
        Ok(()) => empty(204),
        Err(e) => render(e),
    }
}

fn create_rule(State(s): State<S>, h: HeaderMap, body: Bytes) -> Response {
    let (c, o) = match request(&s, &h, &body, "security_group_rule") {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(group) = text(&o, "security_group_id") else {
        return neutron_error(
            400,
            "HTTPBadRequest",
            "Failed to parse request. Required attribute 'security_group_id' not specified",
        );
    };
    let (min, max) = match (port_number(&o, "port_range_min"), port_number(&o, "port_range_max")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let protocol = match o.get("protocol") {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(v) => v.as_str().map(String::from),
        None => None,
    };
    let req = RuleCreate {
        security_group_id: group.clone(),
        direction: text(&o, "direction").unwrap_or_default(),
        ethertype: text(&o, "ethertype").unwrap_or_else(|| "IPv4".into()),
        protocol,
        port_range_min: min,
        port_range_max: max,
        remote_ip_prefix: text(&o, "remote_ip_prefix"),
        remote_group_id: text(&o, "remote_group_id"),
        description: text(&o, "description").unwrap_or_default(),
    };
    let now = s.now();
    let mut w = s.world();
    let found = w.security_groups.iter().find(|g| g.id == group).map(|g| g.project_id.clone());
    let owner = match owned(&c, found, "security_groups", &group) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match w.create_security_group_rule(&owner, req, now) {
        Ok(r) => json_response(201, &json!({"security_group_rule": rule_json(&w, &r)})),
        Err(e) => render(e),
    }
}

fn delete_rule(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let now = s.now();
    let mut w = s.world();
    let found = w.security_group_rules.get(&id).map(|r| r.project_id.clone());
    if let Err(r) = owned(&c, found, "security_group_rules", &id) {
        return r;
    }
    match w.delete_security_group_rule(&id, now) {
        Ok(()) => empty(204),
        Err(e) => render(e),
    }
}

fn quota_json(q: &NetworkQuota) -> Value {
    let mut o = serde_json::Map::new();
    for k in NetworkQuota::KEYS {
        o.insert(k.into(), json!(q.get(k)));
    }
    Value::Object(o)
}

/// Only admins see another project's quotas, as Neutron's policy says.
fn quota_target(c: &Caller, w: &World, id: &str) -> Result<String, Response> {
    if !c.admin && id != c.project_id {
        return Err(neutron_error(403, "PolicyNotAuthorized", "(rule:get_quota) is disallowed by policy"));
    }
    if w.project(id).is_none() && !c.admin {
        return Err(neutron_error(404, "NotFound", &format!("Project {id} could not be found.")));
    }
    Ok(id.to_string())
}

/// `GET /quotas`: the projects whose quotas differ from the defaults.
fn quota_list(State(s): State<S>, h: HeaderMap) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let w = s.world();
    let list: Vec<Value> = w
        .network_quotas
        .iter()
        .filter(|(p, _)| c.admin || **p == c.project_id)
        .map(|(p, q)| {
            let mut v = quota_json(q);
            v.put("project_id", json!(p));
            v.put("tenant_id", json!(p));
            v
        })
        .collect();
    json_response(200, &json!({"quotas": list}))
}

fn quota_show(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let w = s.world();
    match quota_target(&c, &w, &id) {
        Ok(p) => json_response(200, &json!({"quota": quota_json(&w.network_quota(&p))})),
        Err(r) => r,
    }
}

/// `GET /quotas/{project}/details[.json]` (limit, used, reserved) and
/// `GET /quotas/{project}/default[.json]`.
fn quota_more(State(s): State<S>, h: HeaderMap, Path((id, what)): Path<(String, String)>) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let w = s.world();
    let p = match quota_target(&c, &w, &id) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match what.trim_end_matches(".json") {
        "default" => json_response(200, &json!({"quota": quota_json(&w.default_network_quota)})),
        "details" => {
            let q = w.network_quota(&p);
            let used = w.network_usage(&p);
            let mut o = serde_json::Map::new();
            for k in NetworkQuota::KEYS {
                o.insert(
                    k.into(),
                    json!({"limit": q.get(k), "used": used.get(k).copied().unwrap_or(0), "reserved": 0}),
                );
            }
            json_response(200, &json!({"quota": o}))
        }
        _ => neutron_error(404, "HTTPNotFound", "The resource could not be found."),
    }
}

fn quota_update(State(s): State<S>, h: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let (c, o) = match request(&s, &h, &body, "quota") {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !c.admin {
        return neutron_error(403, "PolicyNotAuthorized", "(rule:update_quota) is disallowed by policy");
    }
    let mut w = s.world();
    let mut q = w.network_quota(&id);
    for (k, v) in &o {
        if k == "force" || k == "check_limit" {
            continue;
        }
        let n = v.as_i64().or_else(|| v.as_str().and_then(|x| x.parse().ok()));
        match n {
            Some(n) if n >= -1 && q.set(k, n) => {}
            _ => {
                return neutron_error(
                    400,
                    "InvalidInput",
                    &format!("Invalid input for operation: Unrecognized attribute(s) or bad value for '{k}'."),
                )
            }
        }
    }
    w.network_quotas.insert(id, q.clone());
    json_response(200, &json!({"quota": quota_json(&q)}))
}

fn quota_reset(State(s): State<S>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let c = match authenticate(&s, &h) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !c.admin {
        return neutron_error(403, "PolicyNotAuthorized", "(rule:delete_quota) is disallowed by policy");
    }
    s.world().network_quotas.remove(&id);
    empty(204)
}
