//! Cloud resources as the rest of stackpilot sees them, independent of any wire
//! format or microversion.

use super::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Nova server status (`status` field). Unknown values are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub enum ServerStatus {
    Active,
    Build,
    Deleted,
    Error,
    HardReboot,
    Migrating,
    Paused,
    Reboot,
    Rebuild,
    Rescue,
    Resize,
    RevertResize,
    Shelved,
    ShelvedOffloaded,
    Shutoff,
    SoftDeleted,
    Suspended,
    #[default]
    Unknown,
    VerifyResize,
    Other(String),
}

impl ServerStatus {
    pub fn parse(s: &str) -> Self {
        use ServerStatus::*;
        match s.to_ascii_uppercase().as_str() {
            "ACTIVE" => Active,
            "BUILD" | "BUILDING" => Build,
            "DELETED" => Deleted,
            "ERROR" => Error,
            "HARD_REBOOT" => HardReboot,
            "MIGRATING" => Migrating,
            "PAUSED" => Paused,
            "REBOOT" => Reboot,
            "REBUILD" => Rebuild,
            "RESCUE" => Rescue,
            "RESIZE" => Resize,
            "REVERT_RESIZE" => RevertResize,
            "SHELVED" => Shelved,
            "SHELVED_OFFLOADED" => ShelvedOffloaded,
            "SHUTOFF" => Shutoff,
            "SOFT_DELETED" => SoftDeleted,
            "SUSPENDED" => Suspended,
            "UNKNOWN" | "" => Unknown,
            "VERIFY_RESIZE" => VerifyResize,
            other => Other(other.to_string()),
        }
    }
    pub fn as_str(&self) -> &str {
        use ServerStatus::*;
        match self {
            Active => "ACTIVE",
            Build => "BUILD",
            Deleted => "DELETED",
            Error => "ERROR",
            HardReboot => "HARD_REBOOT",
            Migrating => "MIGRATING",
            Paused => "PAUSED",
            Reboot => "REBOOT",
            Rebuild => "REBUILD",
            Rescue => "RESCUE",
            Resize => "RESIZE",
            RevertResize => "REVERT_RESIZE",
            Shelved => "SHELVED",
            ShelvedOffloaded => "SHELVED_OFFLOADED",
            Shutoff => "SHUTOFF",
            SoftDeleted => "SOFT_DELETED",
            Suspended => "SUSPENDED",
            Unknown => "UNKNOWN",
            VerifyResize => "VERIFY_RESIZE",
            Other(s) => s,
        }
    }
    /// In a transition an operator waits for (amber in the console).
    pub fn is_transitional(&self) -> bool {
        use ServerStatus::*;
        matches!(self, Build | HardReboot | Reboot | Rebuild | Migrating | Resize | RevertResize | VerifyResize)
    }
    pub fn is_error(&self) -> bool {
        matches!(self, ServerStatus::Error | ServerStatus::Unknown)
    }
}

impl std::fmt::Display for ServerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a server says about its flavor: an id before Nova 2.47, the embedded
/// description from 2.47 on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlavorInfo {
    pub id: Option<String>,
    pub name: Option<String>,
    pub vcpus: Option<u32>,
    pub ram_mb: Option<u64>,
    pub disk_gb: Option<u64>,
}

impl FlavorInfo {
    pub fn label(&self) -> &str {
        self.name.as_deref().or(self.id.as_deref()).unwrap_or("-")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub network: String,
    pub addr: String,
    pub version: u8,
    /// `fixed` or `floating`.
    pub kind: Option<String>,
    pub mac: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub code: Option<u16>,
    pub message: String,
    pub created: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Server {
    pub id: String,
    /// `None` for records from a Nova cell that is down (MV 2.69).
    pub name: Option<String>,
    pub status: ServerStatus,
    pub task_state: Option<String>,
    pub vm_state: Option<String>,
    pub power_state: Option<u8>,
    pub flavor: FlavorInfo,
    /// `None` for boot-from-volume servers (`image: ""`).
    pub image_id: Option<String>,
    pub addresses: Vec<Address>,
    pub availability_zone: Option<String>,
    /// The compute host it runs on (only admins see it).
    pub host: Option<String>,
    pub key_name: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub security_groups: Vec<String>,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub host_id: Option<String>,
    pub created: Option<Timestamp>,
    pub updated: Option<Timestamp>,
    pub launched_at: Option<Timestamp>,
    pub fault: Option<Fault>,
    pub locked: Option<bool>,
    pub progress: Option<u8>,
    pub volumes_attached: Vec<String>,
    /// The object exactly as the API returned it (for the raw view).
    #[serde(skip)]
    pub raw: Option<Arc<str>>,
    /// The last record could not be decoded (why): this is the last one that
    /// could, kept so the server never looks gone.
    #[serde(skip)]
    pub decode_error: Option<String>,
}

impl Server {
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or("(unknown)")
    }
    /// The application this server belongs to (`stackpilot:app` metadata).
    pub fn app(&self) -> Option<&str> {
        self.metadata.get(super::META_APP).map(String::as_str)
    }
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
    /// First fixed IPv4 address, else the first address.
    pub fn primary_ip(&self) -> Option<&str> {
        self.addresses
            .iter()
            .find(|a| a.version == 4 && a.kind.as_deref() != Some("floating"))
            .or_else(|| self.addresses.first())
            .map(|a| a.addr.as_str())
    }
    pub fn addresses_label(&self) -> String {
        let v: Vec<String> = self.addresses.iter().map(|a| format!("{}={}", a.network, a.addr)).collect();
        v.join(", ")
    }
    pub fn new(id: impl Into<String>, name: impl Into<String>, status: ServerStatus) -> Self {
        Server {
            id: id.into(),
            name: Some(name.into()),
            status,
            task_state: None,
            vm_state: None,
            power_state: None,
            flavor: FlavorInfo::default(),
            image_id: None,
            addresses: vec![],
            availability_zone: None,
            host: None,
            key_name: None,
            metadata: BTreeMap::new(),
            tags: vec![],
            security_groups: vec![],
            project_id: None,
            user_id: None,
            host_id: None,
            created: None,
            updated: None,
            launched_at: None,
            fault: None,
            locked: None,
            progress: None,
            volumes_attached: vec![],
            raw: None,
            decode_error: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
    pub ephemeral_gb: u64,
    pub swap_mb: u64,
    pub is_public: bool,
    pub description: Option<String>,
    pub extra_specs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    pub name: Option<String>,
    pub status: String,
    pub visibility: Option<String>,
    pub size: Option<u64>,
    pub min_disk: Option<u64>,
    pub min_ram: Option<u64>,
    pub disk_format: Option<String>,
    pub created_at: Option<Timestamp>,
    pub tags: Vec<String>,
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub status: String,
    pub shared: bool,
    pub external: bool,
    pub subnets: Vec<String>,
    pub mtu: Option<u32>,
    pub project_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Port {
    pub id: String,
    pub name: Option<String>,
    pub network_id: String,
    pub device_id: Option<String>,
    pub device_owner: Option<String>,
    pub mac_address: Option<String>,
    pub fixed_ips: Vec<(String, String)>,
    pub status: String,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloatingIp {
    pub id: String,
    pub floating_ip_address: String,
    pub fixed_ip_address: Option<String>,
    pub port_id: Option<String>,
    pub floating_network_id: Option<String>,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeAttachment {
    pub server_id: String,
    pub device: Option<String>,
    pub attachment_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    pub id: String,
    pub name: Option<String>,
    pub status: String,
    pub size_gb: u64,
    pub availability_zone: Option<String>,
    pub bootable: bool,
    pub encrypted: bool,
    pub volume_type: Option<String>,
    pub attachments: Vec<VolumeAttachment>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    #[serde(skip)]
    pub raw: Option<Arc<str>>,
}

impl Volume {
    pub fn label(&self) -> &str {
        match self.name.as_deref() {
            Some(n) if !n.is_empty() => n,
            _ => &self.id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: String,
    pub name: Option<String>,
    pub volume_id: String,
    pub status: String,
    pub size_gb: u64,
    pub progress: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub volume_id: String,
    pub snapshot_id: Option<String>,
    pub status: String,
    pub fail_reason: Option<String>,
    pub size_gb: u64,
    pub is_incremental: bool,
    pub has_dependent_backups: bool,
    pub container: Option<String>,
    pub availability_zone: Option<String>,
    pub object_count: Option<u64>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub data_timestamp: Option<Timestamp>,
    #[serde(skip)]
    pub raw: Option<Arc<str>>,
}

impl Backup {
    pub fn label(&self) -> &str {
        match self.name.as_deref() {
            Some(n) if !n.is_empty() => n,
            _ => &self.id,
        }
    }
}

/// A compute service (`os-services`): whether the host's nova-compute is up
/// and enabled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ComputeService {
    pub host: String,
    pub binary: String,
    pub zone: Option<String>,
    /// `enabled` or `disabled`.
    pub status: String,
    /// `up` or `down`.
    pub state: String,
    pub forced_down: bool,
    pub disabled_reason: Option<String>,
}

impl ComputeService {
    /// Its instances cannot be trusted to run: the service is down (or forced down).
    pub fn is_down(&self) -> bool {
        self.forced_down || self.state.eq_ignore_ascii_case("down")
    }
}

/// Compute limits (`-1` means unlimited and is mapped to `None`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ComputeLimits {
    pub max_instances: Option<i64>,
    pub max_cores: Option<i64>,
    pub max_ram_mb: Option<i64>,
    pub instances_used: i64,
    pub cores_used: i64,
    pub ram_used_mb: i64,
}

impl ComputeLimits {
    /// How many more servers of the given size fit in the quota.
    pub fn headroom(&self, vcpus: u32, ram_mb: u64) -> Option<i64> {
        let mut h: Option<i64> = None;
        let mut take = |limit: Option<i64>, used: i64, per: i64| {
            if let Some(l) = limit {
                // Whatever a cloud answers (a negative use, a limit near i64::MAX):
                // saturating, never an overflow or a wrapped headroom.
                let room = if per <= 0 { i64::MAX } else { l.saturating_sub(used).max(0) / per };
                h = Some(h.map_or(room, |x: i64| x.min(room)));
            }
        };
        take(self.max_instances, self.instances_used, 1);
        take(self.max_cores, self.cores_used, vcpus as i64);
        take(self.max_ram_mb, self.ram_used_mb, i64::try_from(ram_mb).unwrap_or(i64::MAX));
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_of_absurd_limits_saturates() {
        let l = ComputeLimits { max_instances: Some(i64::MAX), instances_used: -5, ..Default::default() };
        assert_eq!(l.headroom(1, 512), Some(i64::MAX));
        let l = ComputeLimits { max_instances: Some(i64::MIN), instances_used: i64::MAX, ..Default::default() };
        assert_eq!(l.headroom(1, 512), Some(0));
        let l = ComputeLimits { max_ram_mb: Some(1024), ..Default::default() };
        assert_eq!(l.headroom(1, u64::MAX), Some(0), "a flavor larger than any quota fits none");
        let l = ComputeLimits { max_cores: Some(10), cores_used: 4, ..Default::default() };
        assert_eq!(l.headroom(2, 512), Some(3));
    }

    #[test]
    fn status_round_trips_and_keeps_unknown_values() {
        for s in ["ACTIVE", "BUILD", "SHUTOFF", "HARD_REBOOT", "VERIFY_RESIZE", "UNKNOWN"] {
            assert_eq!(ServerStatus::parse(s).as_str(), s);
        }
        assert_eq!(ServerStatus::parse("WEIRD"), ServerStatus::Other("WEIRD".into()));
        assert!(ServerStatus::Build.is_transitional());
        assert!(!ServerStatus::Active.is_transitional());
    }

    #[test]
    fn headroom_is_the_tightest_limit() {
        let l = ComputeLimits {
            max_instances: Some(10),
            max_cores: Some(20),
            max_ram_mb: None,
            instances_used: 4,
            cores_used: 14,
            ram_used_mb: 0,
        };
        assert_eq!(l.headroom(2, 2048), Some(3));
        assert_eq!(ComputeLimits::default().headroom(2, 2048), None);
    }
}
