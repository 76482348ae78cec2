//! The simulated cloud's networking as Neutron keeps it: networks with their
//! provider segments, subnets with allocation pools, ports with fixed IPs from
//! them, security groups with their rules, and network quotas. The rules Neutron
//! enforces (a network with ports in use, a group in use, duplicate rules,
//! overlapping subnets, quotas) are kept here; `neutron.rs` only speaks HTTP.

use super::world::{new_id, Network, Port, SecurityGroup, SimError, SimResult, World};
use crate::domain::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pool {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subnet {
    pub id: String,
    pub name: String,
    pub network_id: String,
    pub project_id: String,
    pub description: String,
    pub cidr: String,
    pub gateway_ip: Option<String>,
    pub allocation_pools: Vec<Pool>,
    pub enable_dhcp: bool,
    pub dns_nameservers: Vec<String>,
    /// Addresses of the pools handed out in order; the next one is tried first.
    pub next_host: u64,
    /// Addresses asked for by ports explicitly (the cursor skips them).
    #[serde(default)]
    pub reserved: BTreeSet<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub revision: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecurityGroupRule {
    pub id: String,
    pub security_group_id: String,
    pub project_id: String,
    /// `ingress` or `egress`.
    pub direction: String,
    /// `IPv4` or `IPv6`.
    pub ethertype: String,
    pub protocol: Option<String>,
    pub port_range_min: Option<u32>,
    pub port_range_max: Option<u32>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    pub description: String,
    pub created_at: Timestamp,
}

/// Neutron's per-project limits (`-1` = unlimited).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkQuota {
    pub network: i64,
    pub subnet: i64,
    pub port: i64,
    pub router: i64,
    pub floatingip: i64,
    pub security_group: i64,
    pub security_group_rule: i64,
    pub rbac_policy: i64,
    pub subnetpool: i64,
}

impl Default for NetworkQuota {
    fn default() -> Self {
        NetworkQuota {
            network: 100,
            subnet: 100,
            port: 500,
            router: 10,
            floatingip: 50,
            security_group: 10,
            security_group_rule: 100,
            rbac_policy: 10,
            subnetpool: -1,
        }
    }
}

impl NetworkQuota {
    pub const KEYS: [&'static str; 9] = [
        "network",
        "subnet",
        "port",
        "router",
        "floatingip",
        "security_group",
        "security_group_rule",
        "rbac_policy",
        "subnetpool",
    ];
    pub fn get(&self, k: &str) -> Option<i64> {
        Some(match k {
            "network" => self.network,
            "subnet" => self.subnet,
            "port" => self.port,
            "router" => self.router,
            "floatingip" => self.floatingip,
            "security_group" => self.security_group,
            "security_group_rule" => self.security_group_rule,
            "rbac_policy" => self.rbac_policy,
            "subnetpool" => self.subnetpool,
            _ => return None,
        })
    }
    pub fn set(&mut self, k: &str, v: i64) -> bool {
        let slot = match k {
            "network" => &mut self.network,
            "subnet" => &mut self.subnet,
            "port" => &mut self.port,
            "router" => &mut self.router,
            "floatingip" => &mut self.floatingip,
            "security_group" => &mut self.security_group,
            "security_group_rule" => &mut self.security_group_rule,
            "rbac_policy" => &mut self.rbac_policy,
            "subnetpool" => &mut self.subnetpool,
            _ => return false,
        };
        *slot = v;
        true
    }
}

/// `10.0.0.0/24` → (network address, prefix length); the host bits are cleared.
pub fn parse_cidr(cidr: &str) -> Option<(u32, u8)> {
    let (addr, len) = cidr.split_once('/')?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    let ip: std::net::Ipv4Addr = addr.parse().ok()?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some((u32::from(ip) & mask, len))
}

fn ip_of(s: &str) -> Option<u32> {
    s.parse::<std::net::Ipv4Addr>().ok().map(u32::from)
}

fn ip_text(n: u32) -> String {
    std::net::Ipv4Addr::from(n).to_string()
}

fn pool_ranges(s: &Subnet) -> Vec<(u32, u32)> {
    s.allocation_pools.iter().filter_map(|p| Some((ip_of(&p.start)?, ip_of(&p.end)?))).filter(|(a, b)| a <= b).collect()
}

fn nth_in_pools(ranges: &[(u32, u32)], mut n: u64) -> Option<u32> {
    for (a, b) in ranges {
        let size = u64::from(b - a) + 1;
        if n < size {
            return u32::try_from(u64::from(*a) + n).ok();
        }
        n -= size;
    }
    None
}

/// A subnet create request, already read from the body by the HTTP layer.
#[derive(Debug, Clone, Default)]
pub struct SubnetCreate {
    pub name: String,
    pub network_id: String,
    pub cidr: String,
    pub ip_version: u8,
    /// `None`: the first address; `Some(None)`: no gateway.
    pub gateway_ip: Option<Option<String>>,
    pub allocation_pools: Option<Vec<Pool>>,
    pub enable_dhcp: bool,
    pub dns_nameservers: Vec<String>,
    pub description: String,
}

/// A port create request.
#[derive(Debug, Clone, Default)]
pub struct PortCreate {
    pub name: String,
    pub network_id: String,
    pub description: String,
    /// Asked fixed IPs: (subnet id, address), either may be absent.
    pub fixed_ips: Option<Vec<(Option<String>, Option<String>)>>,
    pub security_groups: Option<Vec<String>>,
    pub device_id: String,
    pub device_owner: String,
    pub admin_state_up: bool,
}

/// A security group rule create request.
#[derive(Debug, Clone, Default)]
pub struct RuleCreate {
    pub security_group_id: String,
    pub direction: String,
    pub ethertype: String,
    pub protocol: Option<String>,
    pub port_range_min: Option<u32>,
    pub port_range_max: Option<u32>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    pub description: String,
}

fn over_quota(what: &str) -> SimError {
    SimError::conflict(format!("Quota exceeded for resources: ['{what}'].")).kind("OverQuota")
}

impl World {
    pub fn network_quota(&self, project: &str) -> NetworkQuota {
        self.network_quotas.get(project).cloned().unwrap_or_else(|| self.default_network_quota.clone())
    }

    /// Whether a project has its router (`router1`): it has a network of its own
    /// and the cloud an external network (the routers are read-only, see neutron.rs).
    pub fn routed(&self, project: &str) -> bool {
        self.networks.iter().any(|n| n.external)
            && self.networks.iter().any(|n| !n.external && !project.is_empty() && n.project_id == project)
    }

    /// What a project uses of each network quota.
    pub fn network_usage(&self, project: &str) -> BTreeMap<&'static str, i64> {
        let n = |c: usize| c as i64;
        BTreeMap::from([
            ("network", n(self.networks.iter().filter(|x| x.project_id == project).count())),
            ("subnet", n(self.subnets.iter().filter(|x| x.project_id == project).count())),
            ("port", n(self.ports.values().filter(|x| x.project_id == project).count())),
            ("router", n(usize::from(self.routed(project)))),
            ("floatingip", n(self.floating_ips.values().filter(|x| x.project_id == project).count())),
            ("security_group", n(self.security_groups.iter().filter(|x| x.project_id == project).count())),
            ("security_group_rule", n(self.security_group_rules.values().filter(|x| x.project_id == project).count())),
            ("rbac_policy", 0),
            ("subnetpool", 0),
        ])
    }

    fn check_network_quota(&self, project: &str, what: &'static str) -> SimResult<()> {
        let limit = self.network_quota(project).get(what).unwrap_or(-1);
        let used = self.network_usage(project).get(what).copied().unwrap_or(0);
        if limit >= 0 && used >= limit {
            return Err(over_quota(what));
        }
        Ok(())
    }

    /// The subnets of a network, oldest first.
    pub fn subnets_of<'a>(&'a self, network_id: &'a str) -> impl Iterator<Item = &'a Subnet> + 'a {
        self.subnets.iter().filter(move |s| s.network_id == network_id)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn create_network(
        &mut self,
        project: &str,
        name: &str,
        network_type: Option<&str>,
        physical_network: Option<&str>,
        segmentation_id: Option<u32>,
        shared: bool,
        description: &str,
        now: Timestamp,
    ) -> SimResult<Network> {
        self.check_network_quota(project, "network")?;
        let kind = network_type.unwrap_or("geneve").to_string();
        let bad = |m: String| SimError::bad(m).kind("InvalidInput");
        let (physnet, seg) = match kind.as_str() {
            "flat" => {
                let p = physical_network.unwrap_or("physnet1");
                if self.networks.iter().any(|n| n.network_type == "flat" && n.physical_network.as_deref() == Some(p)) {
                    return Err(SimError::conflict(format!(
                        "Unable to create the flat network. Physical network {p} is in use."
                    ))
                    .kind("FlatNetworkInUse"));
                }
                (Some(p.to_string()), None)
            }
            "vlan" => {
                let p = physical_network.unwrap_or("physnet1").to_string();
                let used: BTreeSet<u32> = self
                    .networks
                    .iter()
                    .filter(|n| n.network_type == "vlan" && n.physical_network.as_deref() == Some(p.as_str()))
                    .filter_map(|n| n.segmentation_id)
                    .collect();
                let seg = match segmentation_id {
                    Some(s) if !(1..=4094).contains(&s) => {
                        return Err(bad(format!("Invalid input for operation: segmentation_id {s} out of range.")))
                    }
                    Some(s) if used.contains(&s) => {
                        return Err(SimError::conflict(format!(
                            "Unable to create the network. The VLAN {s} on physical network {p} is in use."
                        ))
                        .kind("VlanIdInUse"))
                    }
                    Some(s) => s,
                    None => (100..=4094).find(|s| !used.contains(s)).ok_or_else(|| {
                        SimError::new(
                            503,
                            "Unable to create the network. No tenant network is available for allocation.",
                        )
                        .kind("NoNetworkAvailable")
                    })?,
                };
                (Some(p), Some(seg))
            }
            "geneve" | "vxlan" | "gre" => {
                if physical_network.is_some() {
                    return Err(bad(format!(
                        "Invalid input for operation: provider:physical_network specified for {kind} network."
                    )));
                }
                let used: BTreeSet<u32> =
                    self.networks.iter().filter(|n| n.network_type == kind).filter_map(|n| n.segmentation_id).collect();
                (None, Some(segmentation_id.unwrap_or_else(|| (1..).find(|s| !used.contains(s)).unwrap_or(1))))
            }
            "local" => (None, None),
            other => {
                return Err(bad(format!("Invalid input for operation: network_type value '{other}' not supported.")))
            }
        };
        let mtu = match kind.as_str() {
            "geneve" => 1442,
            "vxlan" => 1450,
            _ => 1500,
        };
        let n = Network {
            id: new_id(),
            name: name.to_string(),
            project_id: project.to_string(),
            shared,
            external: false,
            mtu,
            created_at: now,
            updated_at: Some(now),
            description: description.to_string(),
            network_type: kind,
            physical_network: physnet,
            segmentation_id: seg,
            admin_state_up: true,
            revision: 1,
        };
        self.networks.push(n.clone());
        Ok(n)
    }

    /// Neutron refuses while ports other than its own (DHCP) are on the network;
    /// its subnets go with it.
    pub fn delete_network(&mut self, id: &str) -> SimResult<()> {
        if !self.networks.iter().any(|n| n.id == id) {
            return Err(SimError::not_found(format!("Network {id} could not be found.")).kind("NetworkNotFound"));
        }
        if self.ports.values().any(|p| p.network_id == id) {
            return Err(SimError::conflict(format!(
                "Unable to complete operation on network {id}. There are one or more ports still in use on the network."
            ))
            .kind("NetworkInUse"));
        }
        self.subnets.retain(|s| s.network_id != id);
        self.networks.retain(|n| n.id != id);
        Ok(())
    }

    pub fn create_subnet(&mut self, project: &str, req: SubnetCreate, now: Timestamp) -> SimResult<Subnet> {
        let bad = |m: String| SimError::bad(format!("Invalid input for operation: {m}")).kind("InvalidInput");
        if !self.networks.iter().any(|n| n.id == req.network_id) {
            return Err(
                SimError::not_found(format!("Network {} could not be found.", req.network_id)).kind("NetworkNotFound")
            );
        }
        if req.ip_version != 4 {
            return Err(bad(format!("ip_version {} is not supported by this cloud.", req.ip_version)));
        }
        let Some((net, len)) = parse_cidr(&req.cidr) else {
            return Err(bad(format!("'{}' is not a valid IP subnet.", req.cidr)));
        };
        if len > 30 {
            return Err(bad(format!("Invalid CIDR {} for IP version 4.", req.cidr)));
        }
        self.check_network_quota(project, "subnet")?;
        let cidr = format!("{}/{len}", ip_text(net));
        let size = 1u64 << (32 - len);
        let last = u32::try_from(u64::from(net) + size - 1).unwrap_or(u32::MAX);
        for other in self.subnets_of(&req.network_id) {
            if let Some((o, ol)) = parse_cidr(&other.cidr) {
                let olast = u32::try_from(u64::from(o) + (1u64 << (32 - ol)) - 1).unwrap_or(u32::MAX);
                if net <= olast && o <= last {
                    return Err(bad(format!(
                        "Requested subnet with cidr: {cidr} for network: {} overlaps with another subnet.",
                        req.network_id
                    )));
                }
            }
        }
        let inside = |ip: u32| ip > net && ip < last;
        let gateway = match &req.gateway_ip {
            None => Some(net + 1),
            Some(None) => None,
            Some(Some(g)) => match ip_of(g) {
                Some(ip) if inside(ip) => Some(ip),
                _ => return Err(bad(format!("Gateway IP {g} conflicts with the subnet {cidr}."))),
            },
        };
        let pools = match req.allocation_pools {
            Some(pools) => {
                for p in &pools {
                    match (ip_of(&p.start), ip_of(&p.end)) {
                        (Some(a), Some(b)) if a <= b && inside(a) && inside(b) => {
                            if gateway.is_some_and(|g| a <= g && g <= b) {
                                return Err(SimError::conflict(format!(
                                    "Gateway ip {} conflicts with allocation pool {}-{}.",
                                    gateway.map(ip_text).unwrap_or_default(),
                                    p.start,
                                    p.end
                                ))
                                .kind("GatewayConflictWithAllocationPools"));
                            }
                        }
                        _ => {
                            return Err(SimError::bad(format!(
                                "The allocation pool {}-{} spans beyond the subnet cidr {cidr}.",
                                p.start, p.end
                            ))
                            .kind("OutOfBoundsAllocationPool"))
                        }
                    }
                }
                pools
            }
            None => {
                // Every host address but the gateway, as one or two ranges.
                let (first, end) = (net + 1, last - 1);
                match gateway {
                    Some(g) if g == first => vec![(first + 1, end)],
                    Some(g) if g == end => vec![(first, end - 1)],
                    Some(g) => vec![(first, g - 1), (g + 1, end)],
                    None => vec![(first, end)],
                }
                .into_iter()
                .filter(|(a, b)| a <= b)
                .map(|(a, b)| Pool { start: ip_text(a), end: ip_text(b) })
                .collect()
            }
        };
        let s = Subnet {
            id: new_id(),
            name: req.name,
            network_id: req.network_id,
            project_id: project.to_string(),
            description: req.description,
            cidr,
            gateway_ip: gateway.map(ip_text),
            allocation_pools: pools,
            enable_dhcp: req.enable_dhcp,
            dns_nameservers: req.dns_nameservers,
            next_host: 0,
            reserved: BTreeSet::new(),
            created_at: now,
            updated_at: now,
            revision: 0,
        };
        self.subnets.push(s.clone());
        Ok(s)
    }

    pub fn delete_subnet(&mut self, id: &str) -> SimResult<()> {
        if !self.subnets.iter().any(|s| s.id == id) {
            return Err(SimError::not_found(format!("Subnet {id} could not be found.")).kind("SubnetNotFound"));
        }
        if self.ports.values().any(|p| p.subnet_id == id) {
            return Err(SimError::conflict(format!(
                "Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."
            ))
            .kind("SubnetInUse"));
        }
        self.subnets.retain(|s| s.id != id);
        Ok(())
    }

    /// A fixed IP on a network: from the asked subnet (and address), else from
    /// the first subnet with a free address. `None` when the network has no subnet.
    pub fn allocate_ip(
        &mut self,
        network_id: &str,
        subnet: Option<&str>,
        address: Option<&str>,
    ) -> SimResult<Option<(String, String)>> {
        let candidates: Vec<Subnet> = self
            .subnets
            .iter()
            .filter(|s| s.network_id == network_id && subnet.is_none_or(|x| x == s.id))
            .cloned()
            .collect();
        if let Some(sid) = subnet {
            if candidates.is_empty() {
                return Err(SimError::bad(format!(
                    "Invalid input for operation: Failed to create port on network {network_id}, because fixed_ips included invalid subnet {sid}."
                ))
                .kind("InvalidInput"));
            }
        }
        if let Some(addr) = address {
            let ip = ip_of(addr).ok_or_else(|| {
                SimError::bad(format!("Invalid input for operation: '{addr}' is not a valid IP address."))
                    .kind("InvalidInput")
            })?;
            let Some(sub) = candidates.iter().find(|s| {
                parse_cidr(&s.cidr).is_some_and(|(n, l)| {
                    let last = u64::from(n) + (1u64 << (32 - l)) - 1;
                    ip > n && u64::from(ip) < last
                })
            }) else {
                return Err(SimError::bad(format!(
                    "Invalid input for operation: IP address {addr} is not a valid IP for the specified subnet."
                ))
                .kind("InvalidInput"));
            };
            let text = ip_text(ip);
            if self.ports.values().any(|p| p.subnet_id == sub.id && p.ip == text)
                || sub.gateway_ip.as_deref() == Some(text.as_str())
            {
                return Err(SimError::conflict(format!("IP address {addr} already allocated in subnet {}", sub.id))
                    .kind("IpAddressAlreadyAllocated"));
            }
            if let Some(s) = self.subnets.iter_mut().find(|s| s.id == sub.id) {
                s.reserved.insert(text.clone());
            }
            return Ok(Some((sub.id.clone(), text)));
        }
        if candidates.is_empty() {
            return Ok(None);
        }
        for sub in candidates {
            let ranges = pool_ranges(&sub);
            let total: u64 = ranges.iter().map(|(a, b)| u64::from(b - a) + 1).sum();
            // Addresses go out in order; once the pools are used up, free ones are
            // looked for from the start.
            let mut used: Option<BTreeSet<String>> = None;
            for k in 0..total {
                let n = (sub.next_host + k) % total;
                let Some(ip) = nth_in_pools(&ranges, n).map(ip_text) else { continue };
                if sub.reserved.contains(&ip) && used.is_none() {
                    continue;
                }
                if sub.next_host + k >= total || used.is_some() {
                    let set = used.get_or_insert_with(|| {
                        self.ports.values().filter(|p| p.subnet_id == sub.id).map(|p| p.ip.clone()).collect()
                    });
                    if set.contains(&ip) {
                        continue;
                    }
                }
                if let Some(s) = self.subnets.iter_mut().find(|s| s.id == sub.id) {
                    s.next_host = n + 1;
                }
                return Ok(Some((sub.id, ip)));
            }
        }
        Err(SimError::conflict(format!("No more IP addresses available on network {network_id}."))
            .kind("IpAddressGenerationFailure"))
    }

    /// Widen a network's first subnet to a /16 when `count` more addresses would
    /// not fit (bulk seeding for scale runs).
    pub fn make_room(&mut self, network_id: &str, count: u64) {
        let Some(s) = self.subnets.iter_mut().find(|s| s.network_id == network_id) else { return };
        let free: u64 =
            pool_ranges(s).iter().map(|(a, b)| u64::from(b - a) + 1).sum::<u64>().saturating_sub(s.next_host);
        if free >= count {
            return;
        }
        if let Some((net, len)) = parse_cidr(&s.cidr) {
            if len > 16 {
                let wide = net & 0xffff_0000;
                s.cidr = format!("{}/16", ip_text(wide));
                if let Some(p) = s.allocation_pools.last_mut() {
                    p.end = ip_text((wide | 0xffff) - 1);
                }
            }
        }
    }

    /// The group ids of names or ids in a project; an unknown one is a 404.
    fn group_ids(&self, project: &str, names: &[String]) -> SimResult<Vec<String>> {
        names
            .iter()
            .map(|n| {
                self.security_groups
                    .iter()
                    .find(|g| &g.id == n || (&g.name == n && g.project_id == project))
                    .map(|g| g.id.clone())
                    .ok_or_else(|| {
                        SimError::not_found(format!("Security group {n} does not exist")).kind("SecurityGroupNotFound")
                    })
            })
            .collect()
    }

    pub fn create_port(&mut self, project: &str, req: PortCreate, now: Timestamp) -> SimResult<Port> {
        if !self.networks.iter().any(|n| n.id == req.network_id) {
            return Err(
                SimError::not_found(format!("Network {} could not be found.", req.network_id)).kind("NetworkNotFound")
            );
        }
        self.check_network_quota(project, "port")?;
        let sgs = match &req.security_groups {
            Some(g) => self.group_ids(project, g)?,
            None => self
                .security_groups
                .iter()
                .filter(|g| g.project_id == project && g.name == "default")
                .map(|g| g.id.clone())
                .collect(),
        };
        let asked = req.fixed_ips.clone().unwrap_or_default();
        let (subnet_id, ip) = match asked.first() {
            Some((sub, addr)) => self.allocate_ip(&req.network_id, sub.as_deref(), addr.as_deref())?,
            None if req.fixed_ips.is_some() => None,
            None => self.allocate_ip(&req.network_id, None, None)?,
        }
        .unwrap_or_default();
        let id = new_id();
        let h = id.bytes().fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64));
        let p = Port {
            id: id.clone(),
            name: req.name,
            network_id: req.network_id,
            project_id: project.to_string(),
            device_id: req.device_id,
            device_owner: req.device_owner,
            mac: format!("fa:16:3e:{:02x}:{:02x}:{:02x}", (h >> 16) & 0xff, (h >> 8) & 0xff, h & 0xff),
            ip,
            subnet_id,
            description: req.description,
            admin_state_up: req.admin_state_up,
            revision: 1,
            status: "DOWN".into(),
            tags: vec![],
            security_groups: sgs,
            created_at: now,
            updated_at: now,
        };
        self.ports.insert(id, p.clone());
        Ok(p)
    }

    /// `PUT /ports/{id}`: name, description, admin state, security groups.
    pub fn update_port(
        &mut self,
        id: &str,
        project: &str,
        changes: &serde_json::Map<String, serde_json::Value>,
        now: Timestamp,
    ) -> SimResult<Port> {
        let groups = match changes.get("security_groups") {
            Some(serde_json::Value::Array(a)) => {
                let names: Vec<String> = a.iter().filter_map(|v| v.as_str().map(String::from)).collect();
                Some(self.group_ids(project, &names)?)
            }
            Some(serde_json::Value::Null) => Some(vec![]),
            _ => None,
        };
        let p = self
            .ports
            .get_mut(id)
            .ok_or_else(|| SimError::not_found(format!("Port {id} could not be found.")).kind("PortNotFound"))?;
        for (k, v) in changes {
            match (k.as_str(), v) {
                ("name", serde_json::Value::String(s)) => p.name = s.clone(),
                ("description", serde_json::Value::String(s)) => p.description = s.clone(),
                ("admin_state_up", serde_json::Value::Bool(b)) => p.admin_state_up = *b,
                ("security_groups", _) => {}
                (k, _) if k == "tags" || k.starts_with("binding:") || k == "device_id" || k == "device_owner" => {
                    if let (Some(s), "device_id") = (v.as_str(), k) {
                        p.device_id = s.to_string();
                    } else if let (Some(s), "device_owner") = (v.as_str(), k) {
                        p.device_owner = s.to_string();
                    }
                }
                (k, _) => {
                    return Err(SimError::bad(format!(
                        "Invalid input for operation: attribute '{k}' cannot be updated or has a wrong value."
                    ))
                    .kind("HTTPBadRequest"))
                }
            }
        }
        if let Some(g) = groups {
            p.security_groups = g;
        }
        p.revision += 1;
        p.updated_at = now;
        Ok(p.clone())
    }

    /// A new group and the two egress rules Neutron gives every group it creates.
    pub fn create_security_group(
        &mut self,
        project: &str,
        name: &str,
        description: &str,
        now: Timestamp,
    ) -> SimResult<SecurityGroup> {
        self.check_network_quota(project, "security_group")?;
        let g = SecurityGroup {
            id: new_id(),
            name: name.to_string(),
            project_id: project.to_string(),
            description: description.to_string(),
            created_at: now,
            updated_at: now,
            revision: 1,
        };
        self.security_groups.push(g.clone());
        self.add_default_rules(&g.id, project, false, now);
        Ok(g)
    }

    /// Egress to anywhere over IPv4 and IPv6; the `default` group also lets in
    /// whatever comes from its own members.
    pub fn add_default_rules(&mut self, group: &str, project: &str, default_group: bool, now: Timestamp) {
        let mut dirs = vec![("egress", None)];
        if default_group {
            dirs.push(("ingress", Some(group.to_string())));
        }
        for (dir, remote) in dirs {
            for eth in ["IPv4", "IPv6"] {
                let r = SecurityGroupRule {
                    id: new_id(),
                    security_group_id: group.to_string(),
                    project_id: project.to_string(),
                    direction: dir.into(),
                    ethertype: eth.into(),
                    protocol: None,
                    port_range_min: None,
                    port_range_max: None,
                    remote_ip_prefix: None,
                    remote_group_id: remote.clone(),
                    description: String::new(),
                    created_at: now,
                };
                self.security_group_rules.insert(r.id.clone(), r);
            }
        }
    }

    pub fn delete_security_group(&mut self, id: &str) -> SimResult<()> {
        let Some(g) = self.security_groups.iter().find(|g| g.id == id) else {
            return Err(
                SimError::not_found(format!("Security group {id} does not exist")).kind("SecurityGroupNotFound")
            );
        };
        if g.name == "default" {
            return Err(SimError::conflict("Insufficient rights for removing default security group.")
                .kind("SecurityGroupCannotRemoveDefault"));
        }
        let in_use = self.ports.values().any(|p| p.security_groups.iter().any(|s| s == id))
            || self.servers.values().any(|s| !s.is_deleted() && s.security_groups.iter().any(|x| x == id));
        if in_use {
            return Err(SimError::conflict(format!("Security Group {id} in use.")).kind("SecurityGroupInUse"));
        }
        self.security_groups.retain(|g| g.id != id);
        self.security_group_rules.retain(|_, r| r.security_group_id != id);
        Ok(())
    }

    pub fn create_security_group_rule(
        &mut self,
        project: &str,
        req: RuleCreate,
        now: Timestamp,
    ) -> SimResult<SecurityGroupRule> {
        let bad = |m: String| SimError::bad(format!("Invalid input for operation: {m}")).kind("InvalidInput");
        let Some(g) = self.security_groups.iter().find(|g| g.id == req.security_group_id) else {
            return Err(SimError::not_found(format!("Security group {} does not exist", req.security_group_id))
                .kind("SecurityGroupNotFound"));
        };
        let owner = g.project_id.clone();
        if !["ingress", "egress"].contains(&req.direction.as_str()) {
            return Err(bad(format!("'{}' is not in ['ingress', 'egress'].", req.direction)));
        }
        if !["IPv4", "IPv6"].contains(&req.ethertype.as_str()) {
            return Err(bad(format!("'{}' is not in ['IPv4', 'IPv6'].", req.ethertype)));
        }
        let protocol = req.protocol.map(|p| p.to_ascii_lowercase()).filter(|p| !p.is_empty() && p != "any");
        let ported = matches!(protocol.as_deref(), Some("tcp" | "udp" | "sctp" | "dccp" | "udplite" | "6" | "17"));
        if (req.port_range_min.is_some() || req.port_range_max.is_some()) && protocol.is_none() {
            return Err(SimError::bad("Must also specify protocol if port range is given.")
                .kind("SecurityGroupProtocolRequiredWithPorts"));
        }
        if ported {
            if let (Some(a), Some(b)) = (req.port_range_min, req.port_range_max) {
                if a > b || a == 0 || b > 65535 {
                    return Err(SimError::bad("For TCP/UDP protocols, port_range_min must be <= port_range_max")
                        .kind("SecurityGroupInvalidPortRange"));
                }
            }
        }
        if req.remote_ip_prefix.is_some() && req.remote_group_id.is_some() {
            return Err(SimError::bad("Only remote_ip_prefix or remote_group_id may be provided.")
                .kind("SecurityGroupRemoteGroupAndRemoteIpPrefix"));
        }
        if let Some(r) = &req.remote_group_id {
            if !self.security_groups.iter().any(|g| &g.id == r) {
                return Err(
                    SimError::not_found(format!("Security group {r} does not exist")).kind("SecurityGroupNotFound")
                );
            }
        }
        // Neutron stores a prefix with its host bits cleared.
        let remote_ip_prefix = match req.remote_ip_prefix {
            Some(p) if p.contains(':') => Some(p),
            Some(p) => {
                let full = if p.contains('/') { p.clone() } else { format!("{p}/32") };
                let (n, l) = parse_cidr(&full).ok_or_else(|| bad(format!("'{p}' is not a valid IP subnet.")))?;
                Some(format!("{}/{l}", ip_text(n)))
            }
            None => None,
        };
        self.check_network_quota(&owner, "security_group_rule")?;
        let r = SecurityGroupRule {
            id: new_id(),
            security_group_id: req.security_group_id,
            project_id: if project.is_empty() { owner } else { project.to_string() },
            direction: req.direction,
            ethertype: req.ethertype,
            protocol,
            port_range_min: req.port_range_min,
            port_range_max: req.port_range_max,
            remote_ip_prefix,
            remote_group_id: req.remote_group_id,
            description: req.description,
            created_at: now,
        };
        let same = |x: &SecurityGroupRule| {
            x.security_group_id == r.security_group_id
                && x.direction == r.direction
                && x.ethertype == r.ethertype
                && x.protocol == r.protocol
                && x.port_range_min == r.port_range_min
                && x.port_range_max == r.port_range_max
                && x.remote_ip_prefix.as_deref().filter(|p| !p.ends_with("/0"))
                    == r.remote_ip_prefix.as_deref().filter(|p| !p.ends_with("/0"))
                && x.remote_group_id == r.remote_group_id
        };
        if let Some(dup) = self.security_group_rules.values().find(|x| same(x)) {
            return Err(SimError::conflict(format!("Security group rule already exists. Rule id is {}.", dup.id))
                .kind("SecurityGroupRuleExists"));
        }
        self.security_group_rules.insert(r.id.clone(), r.clone());
        if let Some(g) = self.security_groups.iter_mut().find(|g| g.id == r.security_group_id) {
            g.revision += 1;
            g.updated_at = now;
        }
        Ok(r)
    }

    pub fn delete_security_group_rule(&mut self, id: &str, now: Timestamp) -> SimResult<()> {
        let Some(r) = self.security_group_rules.remove(id) else {
            return Err(SimError::not_found(format!("Security group rule {id} does not exist"))
                .kind("SecurityGroupRuleNotFound"));
        };
        if let Some(g) = self.security_groups.iter_mut().find(|g| g.id == r.security_group_id) {
            g.revision += 1;
            g.updated_at = now;
        }
        Ok(())
    }
}
