//! Nova (compute v2.1) servers, flavors, limits and quotas, from MV 2.1 to 2.104.

use super::Link;
use crate::cloud::lenient;
use crate::domain::{self, Address, Fault, FlavorInfo, ServerStatus, Timestamp};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ServersPage {
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub servers: Vec<Value>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub servers_links: Vec<Link>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WAddress {
    #[serde(deserialize_with = "lenient::string")]
    pub addr: String,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub version: Option<u64>,
    #[serde(rename = "OS-EXT-IPS:type", deserialize_with = "lenient::opt_string")]
    pub kind: Option<String>,
    #[serde(rename = "OS-EXT-IPS-MAC:mac_addr", deserialize_with = "lenient::opt_string")]
    pub mac: Option<String>,
}

/// The server's flavor: `{id, links}` before MV 2.47, embedded after; `{}` if gone.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WServerFlavor {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub original_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub vcpus: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub ram: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub disk: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WFault {
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub code: Option<u64>,
    #[serde(deserialize_with = "lenient::string")]
    pub message: String,
    #[serde(deserialize_with = "lenient::ts")]
    pub created: Option<Timestamp>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub details: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WNamed {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WServer {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub tenant_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    #[serde(deserialize_with = "lenient::ts")]
    pub created: Option<Timestamp>,
    #[serde(deserialize_with = "lenient::ts")]
    pub updated: Option<Timestamp>,
    #[serde(rename = "hostId", deserialize_with = "lenient::opt_string")]
    pub host_id: Option<String>,
    pub addresses: Option<BTreeMap<String, Vec<WAddress>>>,
    pub flavor: Option<WServerFlavor>,
    /// `""` for boot-from-volume, else `{id, links[, properties]}`.
    pub image: Value,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub key_name: Option<String>,
    #[serde(deserialize_with = "lenient::string_map")]
    pub metadata: BTreeMap<String, String>,
    #[serde(deserialize_with = "lenient::string_vec")]
    pub tags: Vec<String>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub security_groups: Vec<WNamed>,
    #[serde(rename = "OS-EXT-STS:vm_state", deserialize_with = "lenient::opt_string")]
    pub vm_state: Option<String>,
    #[serde(rename = "OS-EXT-STS:task_state", deserialize_with = "lenient::opt_string")]
    pub task_state: Option<String>,
    #[serde(rename = "OS-EXT-STS:power_state", deserialize_with = "lenient::opt_u64")]
    pub power_state: Option<u64>,
    #[serde(rename = "OS-EXT-AZ:availability_zone", deserialize_with = "lenient::opt_string")]
    pub availability_zone: Option<String>,
    /// The compute host (admins only).
    #[serde(rename = "OS-EXT-SRV-ATTR:host", deserialize_with = "lenient::opt_string")]
    pub host: Option<String>,
    #[serde(rename = "OS-SRV-USG:launched_at", deserialize_with = "lenient::ts")]
    pub launched_at: Option<Timestamp>,
    #[serde(rename = "OS-SRV-USG:terminated_at", deserialize_with = "lenient::ts")]
    pub terminated_at: Option<Timestamp>,
    #[serde(rename = "os-extended-volumes:volumes_attached", deserialize_with = "lenient::vec_skip")]
    pub volumes_attached: Vec<WNamed>,
    pub fault: Option<WFault>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub locked: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub progress: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub description: Option<String>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub links: Vec<Link>,
}

/// A list without spare capacity (a list collected in place keeps its source's).
fn exact<T>(mut v: Vec<T>) -> Vec<T> {
    v.shrink_to_fit();
    v
}

impl WServer {
    pub fn into_domain(self) -> domain::Server {
        let mut addresses = Vec::new();
        for (net, list) in self.addresses.unwrap_or_default() {
            for a in list {
                addresses.push(Address {
                    network: net.clone(),
                    version: a.version.unwrap_or(if a.addr.contains(':') { 6 } else { 4 }) as u8,
                    addr: a.addr,
                    kind: a.kind,
                    mac: a.mac,
                });
            }
        }
        // Held for every server (10,000 and more): no spare capacity.
        addresses.shrink_to_fit();
        let flavor = self
            .flavor
            .map(|f| FlavorInfo {
                id: f.id,
                name: f.original_name,
                vcpus: f.vcpus.map(|v| v as u32),
                ram_mb: f.ram,
                disk_gb: f.disk,
            })
            .unwrap_or_default();
        let image_id = match &self.image {
            Value::Object(o) => o.get("id").and_then(lenient::value_to_string),
            _ => None,
        };
        domain::Server {
            id: self.id,
            name: self.name,
            status: ServerStatus::parse(self.status.as_deref().unwrap_or("UNKNOWN")),
            task_state: self.task_state,
            vm_state: self.vm_state,
            power_state: self.power_state.map(|p| p as u8),
            flavor,
            image_id,
            addresses,
            availability_zone: self.availability_zone,
            host: self.host,
            key_name: self.key_name,
            metadata: self.metadata,
            tags: exact(self.tags),
            security_groups: exact(self.security_groups.into_iter().filter_map(|s| s.name).collect()),
            project_id: self.tenant_id,
            user_id: self.user_id,
            host_id: self.host_id.filter(|h| !h.is_empty()),
            created: self.created,
            updated: self.updated,
            launched_at: self.launched_at,
            fault: self.fault.map(|f| Fault { code: f.code.map(|c| c as u16), message: f.message, created: f.created }),
            locked: self.locked,
            progress: self.progress.map(|p| p.min(100) as u8),
            volumes_attached: exact(self.volumes_attached.into_iter().filter_map(|v| v.id).collect()),
            raw: None,
            decode_error: None,
        }
    }
}

/// Parse one server object (keeping its raw JSON for the raw view); why not
/// when it cannot be.
pub fn server_from_raw(raw: &str) -> Result<domain::Server, super::DecodeError> {
    let w: WServer = serde_json::from_slice(raw.as_bytes())?;
    if w.id.is_empty() {
        return Err(super::DecodeError::NoId("server"));
    }
    let mut s = w.into_domain();
    s.raw = Some(raw.into());
    Ok(s)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ServerBody {
    pub server: Value,
}

/// `POST /servers` 202 body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CreatedServer {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(rename = "adminPass", deserialize_with = "lenient::opt_string")]
    pub admin_pass: Option<String>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub links: Vec<Link>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub security_groups: Vec<WNamed>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CreatedServerBody {
    pub server: Option<CreatedServer>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub reservation_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WFlavor {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub vcpus: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub ram: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub disk: Option<u64>,
    #[serde(rename = "OS-FLV-EXT-DATA:ephemeral", deserialize_with = "lenient::opt_u64")]
    pub ephemeral: Option<u64>,
    /// `""` before MV 2.75 when there is no swap.
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub swap: Option<u64>,
    #[serde(rename = "os-flavor-access:is_public", deserialize_with = "lenient::opt_bool")]
    pub is_public: Option<bool>,
    #[serde(rename = "OS-FLV-DISABLED:disabled", deserialize_with = "lenient::opt_bool")]
    pub disabled: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub description: Option<String>,
    #[serde(deserialize_with = "lenient::string_map")]
    pub extra_specs: BTreeMap<String, String>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub links: Vec<Link>,
}

impl WFlavor {
    pub fn into_domain(self) -> domain::Flavor {
        domain::Flavor {
            id: self.id,
            name: self.name,
            vcpus: self.vcpus.unwrap_or(0) as u32,
            ram_mb: self.ram.unwrap_or(0),
            disk_gb: self.disk.unwrap_or(0),
            ephemeral_gb: self.ephemeral.unwrap_or(0),
            swap_mb: self.swap.unwrap_or(0),
            is_public: self.is_public.unwrap_or(true),
            description: self.description,
            extra_specs: self.extra_specs,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FlavorsPage {
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub flavors: Vec<WFlavor>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub flavors_links: Vec<Link>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LimitsBody {
    pub limits: WLimits,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WLimits {
    pub absolute: BTreeMap<String, Value>,
    pub rate: Vec<Value>,
}

impl WLimits {
    fn get(&self, k: &str) -> Option<i64> {
        self.absolute.get(k).and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
    }
    pub fn into_domain(self) -> domain::ComputeLimits {
        let lim = |k: &str| self.get(k).filter(|v| *v >= 0);
        domain::ComputeLimits {
            max_instances: lim("maxTotalInstances"),
            max_cores: lim("maxTotalCores"),
            max_ram_mb: lim("maxTotalRAMSize"),
            instances_used: self.get("totalInstancesUsed").unwrap_or(0),
            cores_used: self.get("totalCoresUsed").unwrap_or(0),
            ram_used_mb: self.get("totalRAMUsed").unwrap_or(0),
        }
    }
}

/// `GET /os-quota-sets/{p}[/detail]`: plain numbers, or `{in_use, limit, reserved}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct QuotaSetBody {
    pub quota_set: BTreeMap<String, Value>,
}

impl QuotaSetBody {
    pub fn limit(&self, k: &str) -> Option<i64> {
        match self.quota_set.get(k)? {
            Value::Number(n) => n.as_i64(),
            Value::Object(o) => o.get("limit").and_then(Value::as_i64),
            _ => None,
        }
    }
    pub fn in_use(&self, k: &str) -> Option<i64> {
        match self.quota_set.get(k)? {
            Value::Object(o) => o.get("in_use").and_then(Value::as_i64),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VersionBody {
    pub version: Option<VersionDoc>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub versions: Vec<VersionDoc>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VersionDoc {
    pub id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub version: String,
    #[serde(deserialize_with = "lenient::string")]
    pub min_version: String,
    pub status: String,
    #[serde(deserialize_with = "lenient::ts")]
    pub updated: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TagsBody {
    #[serde(deserialize_with = "lenient::string_vec")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ConsoleOutputBody {
    #[serde(deserialize_with = "lenient::string")]
    pub output: String,
}
