//! Neutron v2.0 networks, ports and floating IPs.

use super::Link;
use crate::cloud::lenient;
use crate::domain::{self, Timestamp};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WNetwork {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::string")]
    pub status: String,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub admin_state_up: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub shared: Option<bool>,
    #[serde(rename = "router:external", deserialize_with = "lenient::opt_bool")]
    pub external: Option<bool>,
    #[serde(deserialize_with = "lenient::string_vec")]
    pub subnets: Vec<String>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub mtu: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub project_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub tenant_id: Option<String>,
    #[serde(deserialize_with = "lenient::string_vec")]
    pub tags: Vec<String>,
    #[serde(deserialize_with = "lenient::ts")]
    pub created_at: Option<Timestamp>,
}

impl WNetwork {
    pub fn into_domain(self) -> domain::Network {
        domain::Network {
            id: self.id,
            name: self.name,
            status: self.status,
            shared: self.shared.unwrap_or(false),
            external: self.external.unwrap_or(false),
            subnets: self.subnets,
            mtu: self.mtu.map(|m| m as u32),
            project_id: self.project_id.or(self.tenant_id),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NetworksPage {
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub networks: Vec<WNetwork>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub networks_links: Vec<Link>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WFixedIp {
    #[serde(deserialize_with = "lenient::string")]
    pub subnet_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub ip_address: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WPort {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub network_id: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub device_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub device_owner: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub mac_address: Option<String>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub fixed_ips: Vec<WFixedIp>,
    #[serde(deserialize_with = "lenient::string")]
    pub status: String,
    #[serde(deserialize_with = "lenient::string_vec")]
    pub tags: Vec<String>,
    #[serde(deserialize_with = "lenient::string_vec")]
    pub security_groups: Vec<String>,
}

impl WPort {
    pub fn into_domain(self) -> domain::Port {
        domain::Port {
            id: self.id,
            name: self.name.filter(|n| !n.is_empty()),
            network_id: self.network_id,
            device_id: self.device_id.filter(|d| !d.is_empty()),
            device_owner: self.device_owner.filter(|d| !d.is_empty()),
            mac_address: self.mac_address,
            fixed_ips: self.fixed_ips.into_iter().map(|f| (f.subnet_id, f.ip_address)).collect(),
            status: self.status,
            tags: self.tags,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PortsPage {
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub ports: Vec<WPort>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub ports_links: Vec<Link>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WFloatingIp {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub floating_ip_address: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub fixed_ip_address: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub port_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub router_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub floating_network_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub status: String,
}

impl WFloatingIp {
    pub fn into_domain(self) -> domain::FloatingIp {
        domain::FloatingIp {
            id: self.id,
            floating_ip_address: self.floating_ip_address,
            fixed_ip_address: self.fixed_ip_address,
            port_id: self.port_id,
            floating_network_id: self.floating_network_id,
            status: self.status,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FloatingIpsPage {
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub floatingips: Vec<WFloatingIp>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub floatingips_links: Vec<Link>,
}
