//! The simulated cloud: identities, flavors, images, networks, servers, volumes,
//! backups, Gnocchi resources and measures, quotas and capacity, with lifecycles
//! that move in simulated time. HTTP handlers are thin layers over these methods.

use super::netmodel::{NetworkQuota, SecurityGroupRule, Subnet};
use super::workload::Workload;
use crate::domain::time::format_z;
use crate::domain::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An error as a service would answer it: status and message (the HTTP layer
/// renders the body in the service's own shape).
#[derive(Debug, Clone, PartialEq)]
pub struct SimError {
    pub status: u16,
    pub message: String,
    /// Neutron error type (`NetworkNotFound`, ...).
    pub kind: &'static str,
}

impl SimError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        SimError { status, message: message.into(), kind: "" }
    }
    pub fn kind(mut self, k: &'static str) -> Self {
        self.kind = k;
        self
    }
    pub fn bad(m: impl Into<String>) -> Self {
        SimError::new(400, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        SimError::new(404, m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        SimError::new(409, m)
    }
}

pub type SimResult<T> = Result<T, SimError>;

/// The compute hosts of the simulated cloud.
pub const COMPUTE_HOSTS: [&str; 4] = ["compute-1", "compute-2", "compute-3", "compute-4"];

/// The hypervisor a server lands on: one of four, by its id.
fn compute_host(id: &str) -> String {
    format!("compute-{}", id.bytes().next().unwrap_or(0) % 4 + 1)
}

/// `map[id]` as an answer: a missing entry is a 404, never a panic.
pub fn found<'a, T>(map: &'a BTreeMap<String, T>, id: &str) -> SimResult<&'a T> {
    map.get(id).ok_or_else(|| SimError::not_found(format!("`{id}` could not be found.")))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub region: String,
    /// Simulated seconds each transition takes.
    pub boot_secs: f64,
    pub cloud_init_secs: f64,
    pub delete_secs: f64,
    pub reboot_secs: f64,
    pub hard_reboot_secs: f64,
    pub rebuild_secs: f64,
    pub stop_secs: f64,
    pub start_secs: f64,
    pub pause_secs: f64,
    pub suspend_secs: f64,
    pub schedule_secs: f64,
    pub volume_secs: f64,
    pub snapshot_secs: f64,
    pub backup_secs: f64,
    pub restore_secs: f64,
    /// Gnocchi granularity of generated measures (simulated seconds).
    pub granularity: u32,
    /// Points kept per metric.
    pub metric_points: usize,
    /// Real seconds a token lives.
    pub token_lifetime_secs: u64,
    /// Nova's `[api]/max_limit`.
    pub max_limit: usize,
    /// Total vCPUs of the hypervisors; `None` = unlimited.
    pub host_vcpus: Option<u32>,
    /// How long deleted servers stay visible to `changes-since` (simulated seconds).
    pub deleted_retention_secs: i64,
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            region: "RegionOne".into(),
            boot_secs: 20.0,
            cloud_init_secs: 15.0,
            delete_secs: 3.0,
            reboot_secs: 10.0,
            hard_reboot_secs: 15.0,
            rebuild_secs: 20.0,
            stop_secs: 4.0,
            start_secs: 6.0,
            pause_secs: 1.0,
            suspend_secs: 3.0,
            schedule_secs: 2.0,
            volume_secs: 5.0,
            snapshot_secs: 5.0,
            backup_secs: 15.0,
            restore_secs: 15.0,
            granularity: 60,
            metric_points: 720,
            token_lifetime_secs: 3600,
            max_limit: 1000,
            host_vcpus: None,
            deleted_retention_secs: 86_400,
            seed: 42,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Domain {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub domain_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub password: String,
    /// (project id, role name).
    pub roles: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppCred {
    pub id: String,
    pub name: String,
    pub secret: String,
    pub user_id: String,
    pub project_id: String,
    /// The roles it carries (names), the effective roles of its user on its
    /// project when it was made.
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub unrestricted: Option<bool>,
}

/// The roles every Keystone has from its bootstrap.
pub const BOOTSTRAP_ROLES: [&str; 3] = ["admin", "member", "reader"];

/// Keystone's implied roles as bootstrap sets them: (prior, implied).
pub const IMPLIED_ROLES: [(&str, &str); 2] = [("admin", "member"), ("member", "reader")];

/// The roles `direct` roles carry with the roles they imply, each once, the
/// direct ones first.
pub fn effective_roles(direct: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut todo: Vec<String> = direct.to_vec();
    while !todo.is_empty() {
        let r = todo.remove(0);
        if out.contains(&r) {
            continue;
        }
        todo.extend(IMPLIED_ROLES.iter().filter(|(p, _)| *p == r).map(|(_, i)| i.to_string()));
        out.push(r);
    }
    out
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    pub ram: u64,
    pub disk: u64,
    pub ephemeral: u64,
    pub swap: u64,
    pub is_public: bool,
    pub description: Option<String>,
    pub extra_specs: BTreeMap<String, String>,
    /// Deleted while servers still use it: they keep showing it; nothing else does.
    #[serde(default)]
    pub deleted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub status: String,
    pub visibility: String,
    pub size: u64,
    pub min_disk: u64,
    pub min_ram: u64,
    pub disk_format: String,
    pub container_format: String,
    pub owner: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub tags: Vec<String>,
    pub properties: BTreeMap<String, String>,
    /// MD5 and SHA-512 of the uploaded data (`None`: derived from the size, for
    /// images of the world file, which have no data).
    #[serde(default)]
    pub checksum: Option<String>,
    #[serde(default)]
    pub os_hash_value: Option<String>,
    #[serde(default)]
    pub protected: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub shared: bool,
    pub external: bool,
    pub mtu: u32,
    pub created_at: Timestamp,
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
    #[serde(default)]
    pub description: String,
    /// `flat`, `vlan`, `geneve`, ... (`provider:network_type`).
    #[serde(default = "default_network_type")]
    pub network_type: String,
    #[serde(default)]
    pub physical_network: Option<String>,
    #[serde(default)]
    pub segmentation_id: Option<u32>,
    #[serde(default = "yes")]
    pub admin_state_up: bool,
    #[serde(default)]
    pub revision: u32,
}

fn default_network_type() -> String {
    "flat".into()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub description: String,
    #[serde(default)]
    pub created_at: Timestamp,
    #[serde(default)]
    pub updated_at: Timestamp,
    #[serde(default)]
    pub revision: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Keypair {
    pub name: String,
    pub fingerprint: String,
    pub public_key: String,
    pub user_id: String,
    pub created_at: Timestamp,
    /// Nova's database id (shown from microversion 2.10).
    #[serde(default)]
    pub id: u64,
    /// `ssh` or `x509`.
    #[serde(default)]
    pub key_type: String,
}

/// A Nova server group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerGroup {
    pub id: String,
    pub name: String,
    pub policy: String,
    pub rules: serde_json::Map<String, serde_json::Value>,
    pub members: Vec<String>,
    pub project_id: String,
    pub user_id: String,
}

/// A host aggregate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Aggregate {
    pub id: u64,
    pub uuid: String,
    pub name: String,
    pub availability_zone: Option<String>,
    pub hosts: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: Timestamp,
}

/// One recorded server action (`os-instance-actions`) with its compute event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceAction {
    pub action: String,
    pub request_id: String,
    pub user_id: String,
    pub project_id: String,
    pub start_time: Timestamp,
    pub updated_at: Timestamp,
    pub message: Option<String>,
    /// The compute event (`compute_stop_instance`); `None` for API-only actions.
    pub event: Option<String>,
    pub finish_time: Option<Timestamp>,
    /// `Success` or `Error` once finished.
    pub result: Option<String>,
    pub host: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Port {
    pub id: String,
    pub name: String,
    pub network_id: String,
    pub project_id: String,
    pub device_id: String,
    pub device_owner: String,
    pub mac: String,
    /// The fixed IP (empty when the network has no subnet) and its subnet.
    pub ip: String,
    #[serde(default)]
    pub subnet_id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub admin_state_up: bool,
    #[serde(default)]
    pub revision: u32,
    pub status: String,
    pub tags: Vec<String>,
    pub security_groups: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FloatingIp {
    pub id: String,
    pub address: String,
    pub network_id: String,
    pub port_id: Option<String>,
    pub fixed_ip: Option<String>,
    pub project_id: String,
    pub status: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    pub code: u16,
    pub message: String,
    pub created: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    pub flavor_id: String,
    pub image_id: Option<String>,
    pub key_name: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub security_groups: Vec<String>,
    pub availability_zone: String,
    pub created: Timestamp,
    pub updated: Timestamp,
    pub launched_at: Option<Timestamp>,
    pub terminated_at: Option<Timestamp>,
    pub vm_state: String,
    pub task_state: Option<String>,
    pub power_state: u8,
    pub fault: Option<Fault>,
    pub ports: Vec<String>,
    pub user_data: Option<String>,
    pub locked: bool,
    pub description: Option<String>,
    pub host: String,
    pub console: VecDeque<String>,
    /// Bumped by each boot (reboot, rebuild): stale pending events are ignored.
    pub boot_gen: u32,
    pub metrics: bool,
    pub config_drive: bool,
    pub volumes_attached: Vec<String>,
    /// The guest's application, when it is broken: how its health endpoint
    /// fails and which repair mends it.
    #[serde(default)]
    pub guest_fault: Option<GuestFault>,
    /// Repairs (`start`, `reboot-soft`, `reboot-hard`, `rebuild`) that fail this
    /// many more times: the server ends in ERROR instead of booting.
    #[serde(default)]
    pub failing_actions: BTreeMap<String, u32>,
    /// The repair under way, which the boot that ends it carries out
    /// (`:fail` appended when it is to fail).
    #[serde(default)]
    pub last_action: Option<String>,
    /// The `os:scheduler_hints` it was created with (shown from 2.100).
    #[serde(default)]
    pub scheduler_hints: serde_json::Map<String, serde_json::Value>,
}

/// A broken application inside a guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestFault {
    /// `failing`: the health endpoint answers 503; `hung`: it never answers.
    pub mode: String,
    /// The mildest repair that mends it: `reboot-soft`, `reboot-hard`,
    /// `rebuild`, or `never` (only a new server does).
    pub until: String,
}

impl GuestFault {
    pub const MODES: [&'static str; 2] = ["failing", "hung"];
    pub const UNTIL: [&'static str; 4] = ["reboot-soft", "reboot-hard", "rebuild", "never"];
    /// How strong a repair is: a start powers the guest on like a hard reboot.
    fn strength(repair: &str) -> u8 {
        match repair {
            "reboot-soft" => 1,
            "reboot-hard" | "start" => 2,
            "rebuild" => 3,
            _ => u8::MAX,
        }
    }
    /// Does `repair` mend it?
    pub fn mended_by(&self, repair: &str) -> bool {
        self.until != "never" && Self::strength(repair) >= Self::strength(&self.until)
    }
}

impl Server {
    /// Nova's status from vm_state and task_state.
    pub fn status(&self) -> &'static str {
        let task = self.task_state.as_deref().unwrap_or("");
        match self.vm_state.as_str() {
            "active" => match task {
                t if t.starts_with("reboot") && t.ends_with("_hard") => "HARD_REBOOT",
                "rebooting_hard" | "reboot_pending_hard" | "reboot_started_hard" => "HARD_REBOOT",
                t if t.starts_with("reboot") => "REBOOT",
                t if t.starts_with("rebuild") => "REBUILD",
                _ => "ACTIVE",
            },
            "building" => "BUILD",
            "stopped" => match task {
                t if t.starts_with("rebuild") => "REBUILD",
                "rebooting_hard" => "HARD_REBOOT",
                _ => "SHUTOFF",
            },
            "error" => match task {
                t if t.starts_with("rebuild") => "REBUILD",
                "rebooting_hard" => "HARD_REBOOT",
                _ => "ERROR",
            },
            "deleted" => "DELETED",
            "paused" => "PAUSED",
            "suspended" => "SUSPENDED",
            "soft-delete" => "SOFT_DELETED",
            _ => "UNKNOWN",
        }
    }
    pub fn is_deleted(&self) -> bool {
        self.vm_state == "deleted"
    }
    pub fn app(&self) -> Option<&str> {
        self.metadata.get(crate::domain::META_APP).map(String::as_str)
    }
    fn log(&mut self, line: String) {
        self.console.push_back(line);
        while self.console.len() > 400 {
            self.console.pop_front();
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolAttachment {
    pub server_id: String,
    pub attachment_id: String,
    pub device: String,
    pub attached_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub project_id: String,
    pub user_id: String,
    pub size: u64,
    pub status: String,
    pub availability_zone: String,
    pub bootable: bool,
    pub volume_type: String,
    pub attachments: Vec<VolAttachment>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
    pub snapshot_id: Option<String>,
    pub source_volid: Option<String>,
    /// Status to return to after a backup/restore finishes.
    pub resting_status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub volume_id: String,
    pub project_id: String,
    pub user_id: String,
    pub size: u64,
    pub status: String,
    pub metadata: BTreeMap<String, String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Backup {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub volume_id: String,
    pub snapshot_id: Option<String>,
    pub project_id: String,
    pub user_id: String,
    pub size: u64,
    pub status: String,
    pub fail_reason: Option<String>,
    pub container: Option<String>,
    pub availability_zone: Option<String>,
    pub is_incremental: bool,
    /// The backup this incremental one depends on.
    pub parent_id: Option<String>,
    pub object_count: u64,
    pub metadata: BTreeMap<String, String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
    pub data_timestamp: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Quota {
    pub instances: i64,
    pub cores: i64,
    pub ram: i64,
    pub key_pairs: i64,
    pub metadata_items: i64,
    pub server_groups: i64,
    pub server_group_members: i64,
    pub volumes: i64,
    pub gigabytes: i64,
    pub snapshots: i64,
    pub backups: i64,
    pub backup_gigabytes: i64,
    /// The largest volume, in GiB (-1: no limit).
    #[serde(default = "unlimited")]
    pub per_volume_gigabytes: i64,
    #[serde(default = "ten")]
    pub groups: i64,
}

fn unlimited() -> i64 {
    -1
}

fn ten() -> i64 {
    10
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            instances: 10,
            cores: 20,
            ram: 51200,
            key_pairs: 100,
            metadata_items: 128,
            server_groups: 10,
            server_group_members: 10,
            volumes: 10,
            gigabytes: 1000,
            snapshots: 10,
            backups: 10,
            backup_gigabytes: 1000,
            per_volume_gigabytes: -1,
            groups: 10,
        }
    }
}

impl Quota {
    pub fn get(&self, k: &str) -> Option<i64> {
        Some(match k {
            "instances" => self.instances,
            "cores" => self.cores,
            "ram" => self.ram,
            "key_pairs" => self.key_pairs,
            "metadata_items" => self.metadata_items,
            "server_groups" => self.server_groups,
            "server_group_members" => self.server_group_members,
            "volumes" => self.volumes,
            "gigabytes" => self.gigabytes,
            "snapshots" => self.snapshots,
            "backups" => self.backups,
            "backup_gigabytes" => self.backup_gigabytes,
            "per_volume_gigabytes" => self.per_volume_gigabytes,
            "groups" => self.groups,
            _ => return None,
        })
    }
    pub fn set(&mut self, k: &str, v: i64) -> bool {
        let slot = match k {
            "instances" => &mut self.instances,
            "cores" => &mut self.cores,
            "ram" => &mut self.ram,
            "key_pairs" => &mut self.key_pairs,
            "metadata_items" => &mut self.metadata_items,
            "server_groups" => &mut self.server_groups,
            "server_group_members" => &mut self.server_group_members,
            "volumes" => &mut self.volumes,
            "gigabytes" => &mut self.gigabytes,
            "snapshots" => &mut self.snapshots,
            "backups" => &mut self.backups,
            "backup_gigabytes" => &mut self.backup_gigabytes,
            "per_volume_gigabytes" => &mut self.per_volume_gigabytes,
            "groups" => &mut self.groups,
            _ => return false,
        };
        *slot = v;
        true
    }
    pub const COMPUTE_KEYS: [&'static str; 7] =
        ["instances", "cores", "ram", "key_pairs", "metadata_items", "server_groups", "server_group_members"];
    /// Cinder's quota keys (besides those of each volume type).
    pub const VOLUME_KEYS: [&'static str; 7] =
        ["volumes", "per_volume_gigabytes", "snapshots", "gigabytes", "backups", "backup_gigabytes", "groups"];
}

/// A Gnocchi archive policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchivePolicy {
    pub name: String,
    pub back_window: u64,
    pub aggregation_methods: Vec<String>,
    /// (granularity seconds, points).
    pub definition: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metric {
    pub id: String,
    pub name: String,
    pub unit: Option<String>,
    pub resource_id: Option<String>,
    pub archive_policy: String,
    pub creator: String,
    /// Raw points (unix seconds, value), time-ordered, bounded.
    pub points: VecDeque<(i64, f64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resource {
    pub id: String,
    pub resource_type: String,
    pub original_resource_id: String,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub creator: String,
    pub started_at: Timestamp,
    pub revision_start: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// Type attributes (display_name, flavor_id, host, instance_id, name, ...).
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// metric name → metric id.
    pub metrics: BTreeMap<String, String>,
}

/// A timed transition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pending {
    Scheduled(String, u32),
    ServerActive(String, u32),
    CloudInitDone(String, u32),
    ServerGone(String),
    ServerStopped(String, u32),
    VolumeReady(String),
    VolumeGone(String),
    SnapshotReady(String),
    SnapshotGone(String),
    BackupReady(String),
    BackupGone(String),
    RestoreDone(String, String),
    /// Volume, server: the attach or detach finished.
    Attached(String, String),
    Detached(String, String),
    /// Pause, unpause, suspend or resume finished.
    PowerDone(String, u32),
}

/// How the next creates fail (admin fault).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailCreates {
    pub count: u32,
    /// `error`: the server goes to ERROR with `message`; `http`: 500 before anything.
    pub mode: String,
    pub message: String,
}

/// Counters the admin API reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorldStats {
    /// `POST /servers` requests that got past authentication.
    #[serde(default)]
    pub create_requests: u64,
    /// Servers actually created.
    pub server_creates: u64,
    /// `stackpilot-op-*` tag → number of servers created with it.
    pub creates_by_op_tag: BTreeMap<String, u32>,
    pub server_deletes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct World {
    pub settings: Settings,
    pub domains: Vec<Domain>,
    pub projects: Vec<Project>,
    pub users: Vec<User>,
    pub app_creds: Vec<AppCred>,
    pub flavors: Vec<Flavor>,
    pub images: Vec<Image>,
    pub networks: Vec<Network>,
    pub subnets: Vec<Subnet>,
    pub security_groups: Vec<SecurityGroup>,
    pub security_group_rules: BTreeMap<String, SecurityGroupRule>,
    /// Neutron quotas set for a project, and the defaults.
    pub network_quotas: BTreeMap<String, NetworkQuota>,
    pub default_network_quota: NetworkQuota,
    pub keypairs: Vec<Keypair>,
    pub ports: BTreeMap<String, Port>,
    pub floating_ips: BTreeMap<String, FloatingIp>,
    pub servers: BTreeMap<String, Server>,
    pub volumes: BTreeMap<String, Volume>,
    pub snapshots: BTreeMap<String, Snapshot>,
    pub backups: BTreeMap<String, Backup>,
    pub quotas: BTreeMap<String, Quota>,
    pub default_quota: Quota,
    pub archive_policies: BTreeMap<String, ArchivePolicy>,
    pub resources: BTreeMap<String, Resource>,
    pub metrics: BTreeMap<String, Metric>,
    pub workload: Workload,
    pub pending: BTreeSet<(i64, u64, Pending)>,
    pub seq: u64,
    pub fail_creates: Option<FailCreates>,
    pub stats: WorldStats,
    /// Last metric generation step (unix seconds, aligned to the granularity).
    pub metrics_until: Option<i64>,
    /// Cumulative counters: server id → CPU ns; port id → (bytes in, bytes out).
    pub cpu_ns: BTreeMap<String, f64>,
    pub net_bytes: BTreeMap<String, (f64, f64)>,
    /// Port id → its `instance_network_interface` resource id.
    pub port_iface: BTreeMap<String, String>,
    /// Gnocchi resource types created through the API (name → attributes).
    pub extra_resource_types: BTreeMap<String, serde_json::Value>,
    /// Server records broken on purpose: server id → fields that replace the real
    /// ones in every answer (a record a client cannot decode).
    pub corrupt: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    /// Compute hosts made to fail: host → (`down` | `disabled`, reason).
    pub host_faults: BTreeMap<String, (String, String)>,
    pub server_groups: BTreeMap<String, ServerGroup>,
    pub aggregates: Vec<Aggregate>,
    /// Server id → its actions, oldest first.
    pub instance_actions: BTreeMap<String, Vec<InstanceAction>>,
}

pub const BOOT_MARKER_PREFIX: &str = "Cloud-init v. 23.4 finished at";

fn fmt_console_time(t: &Timestamp) -> String {
    t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

fn mac(seed: &str) -> String {
    let h = seed.bytes().fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64));
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", (h >> 16) & 0xff, (h >> 8) & 0xff, h & 0xff)
}

/// A server create request, already validated for shape by the HTTP layer.
#[derive(Debug, Clone, Default)]
pub struct ServerCreate {
    pub name: String,
    pub flavor_ref: String,
    pub image_ref: Option<String>,
    /// Network ids or port ids (`port:<id>`); empty with `auto`.
    pub networks: Vec<String>,
    pub auto_network: bool,
    pub key_name: Option<String>,
    pub user_data: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub security_groups: Vec<String>,
    pub availability_zone: Option<String>,
    pub boot_volume_gb: Option<u64>,
    pub description: Option<String>,
    pub min_count: u32,
}

impl World {
    fn schedule(&mut self, at: Timestamp, p: Pending) {
        self.seq += 1;
        self.pending.insert((at.timestamp_micros(), self.seq, p));
    }

    fn after(now: Timestamp, secs: f64) -> Timestamp {
        super::clock::shifted(now, secs * 1000.0)
    }

    pub fn quota(&self, project: &str) -> Quota {
        self.quotas.get(project).cloned().unwrap_or_else(|| self.default_quota.clone())
    }

    pub fn project(&self, id: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.id == id)
    }

    pub fn flavor(&self, id_or_name: &str) -> Option<&Flavor> {
        let key = id_or_name.rsplit('/').next().unwrap_or(id_or_name);
        self.flavors.iter().find(|f| f.id == key).or_else(|| self.flavors.iter().find(|f| f.name == key && !f.deleted))
    }

    pub fn image(&self, id: &str) -> Option<&Image> {
        let key = id.rsplit('/').next().unwrap_or(id);
        self.images.iter().find(|i| i.id == key)
    }

    /// (instances, cores, ram) used by a project (every server not deleted).
    pub fn compute_usage(&self, project: &str) -> (i64, i64, i64) {
        let mut u = (0, 0, 0);
        for s in self.servers.values().filter(|s| s.project_id == project && !s.is_deleted()) {
            u.0 += 1;
            if let Some(f) = self.flavor(&s.flavor_id) {
                u.1 += f.vcpus as i64;
                u.2 += f.ram as i64;
            }
        }
        u
    }

    pub fn volume_usage(&self, project: &str) -> (i64, i64, i64, i64, i64) {
        let vols: Vec<&Volume> = self.volumes.values().filter(|v| v.project_id == project).collect();
        let baks: Vec<&Backup> = self.backups.values().filter(|b| b.project_id == project).collect();
        (
            vols.len() as i64,
            vols.iter().map(|v| v.size as i64).sum::<i64>()
                + self.snapshots.values().filter(|s| s.project_id == project).map(|s| s.size as i64).sum::<i64>(),
            self.snapshots.values().filter(|s| s.project_id == project).count() as i64,
            baks.len() as i64,
            baks.iter().map(|b| b.size as i64).sum(),
        )
    }

    /// vCPUs claimed on the hypervisors (servers already placed on a host).
    fn used_host_vcpus(&self) -> u32 {
        self.servers
            .values()
            .filter(|s| !s.is_deleted() && s.vm_state != "error" && !s.host.is_empty())
            .filter_map(|s| self.flavor(&s.flavor_id).map(|f| f.vcpus))
            .sum()
    }

    fn allocate_port(
        &mut self,
        network_id: &str,
        project: &str,
        device: &str,
        az: &str,
        sgs: &[String],
        now: Timestamp,
    ) -> SimResult<String> {
        if !self.networks.iter().any(|n| n.id == network_id) {
            return Err(SimError::bad(format!("Network {network_id} could not be found.")).kind("NetworkNotFound"));
        }
        let (subnet_id, ip) = self.allocate_ip(network_id, None, None)?.unwrap_or_default();
        let id = new_id();
        // Ports get the project's `default` group unless others are asked for.
        let sgs: Vec<String> = if sgs.is_empty() {
            self.security_groups
                .iter()
                .filter(|g| g.project_id == project && g.name == "default")
                .map(|g| g.id.clone())
                .collect()
        } else {
            sgs.iter()
                .map(|n| {
                    self.security_groups
                        .iter()
                        .find(|g| (g.name == *n || g.id == *n) && g.project_id == project)
                        .map(|g| g.id.clone())
                        .unwrap_or_else(|| n.clone())
                })
                .collect()
        };
        let port = Port {
            id: id.clone(),
            name: String::new(),
            network_id: network_id.to_string(),
            project_id: project.to_string(),
            device_id: device.to_string(),
            device_owner: format!("compute:{az}"),
            mac: mac(&id),
            ip,
            subnet_id,
            description: String::new(),
            admin_state_up: true,
            revision: 1,
            status: "DOWN".into(),
            tags: vec![],
            security_groups: sgs.to_vec(),
            created_at: now,
            updated_at: now,
        };
        self.ports.insert(id.clone(), port);
        Ok(id)
    }

    /// Create a server (Nova `POST /servers`). Returns the new server ids.
    pub fn create_servers(
        &mut self,
        req: ServerCreate,
        project: &str,
        user: &str,
        now: Timestamp,
    ) -> SimResult<Vec<String>> {
        let flavor = self
            .flavor(&req.flavor_ref)
            .filter(|f| !f.deleted)
            .cloned()
            .ok_or_else(|| SimError::bad(format!("Flavor {} could not be found.", req.flavor_ref)))?;
        let image_id = match (&req.image_ref, req.boot_volume_gb) {
            (Some(i), _) => Some(
                self.image(i)
                    .map(|i| i.id.clone())
                    .ok_or_else(|| SimError::bad(format!("Image {i} could not be found.")))?,
            ),
            (None, Some(_)) => None,
            (None, None) => return Err(SimError::bad("Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid.")),
        };
        if let Some(k) = &req.key_name {
            if !self.keypairs.iter().any(|kp| &kp.name == k) {
                return Err(SimError::bad("Invalid key_name provided.".to_string()));
            }
        }
        for sg in &req.security_groups {
            if !self.security_groups.iter().any(|g| &g.name == sg || &g.id == sg) {
                return Err(SimError::bad(format!("Unable to find security_group with name or id '{sg}'")));
            }
        }
        let az = req.availability_zone.clone().unwrap_or_else(|| "nova".into());
        if az != "nova" && !az.starts_with("nova:") && !az.starts_with("az") {
            return Err(SimError::bad("The requested availability zone is not available".to_string()));
        }
        let mut nets = req.networks.clone();
        if req.auto_network {
            // `auto`: the project's own network, else a shared one.
            let n = self
                .networks
                .iter()
                .find(|n| n.project_id == project && !n.external)
                .or_else(|| self.networks.iter().find(|n| n.shared && !n.external))
                .ok_or_else(|| SimError::bad("Unable to automatically allocate a network for project"))?;
            nets = vec![n.id.clone()];
        }
        for n in &nets {
            if let Some(pid) = n.strip_prefix("port:") {
                let p = self.ports.get(pid).ok_or_else(|| SimError::bad(format!("Port {pid} could not be found.")))?;
                if !p.device_id.is_empty() {
                    return Err(SimError::conflict(format!("Port {pid} is still in use.")));
                }
            } else if !self.networks.iter().any(|x| &x.id == n) {
                return Err(SimError::bad(format!("Network {n} could not be found.")));
            }
        }
        let count = req.min_count.max(1) as i64;
        // Quota (counted like Nova: every server that is not deleted).
        let q = self.quota(project);
        let (inst, cores, ram) = self.compute_usage(project);
        for (name, used, per, limit) in [
            ("instances", inst, 1, q.instances),
            ("cores", cores, flavor.vcpus as i64, q.cores),
            ("ram", ram, flavor.ram as i64, q.ram),
        ] {
            if limit >= 0 && used + per * count > limit {
                return Err(SimError::new(
                    403,
                    format!(
                        "Quota exceeded for {name}: Requested {}, but already used {used} of {limit} {name}",
                        per * count
                    ),
                ));
            }
        }
        if req.metadata.len() as i64 > q.metadata_items {
            return Err(SimError::new(
                403,
                format!(
                    "Quota exceeded for metadata_items: Requested {}, but already used 0 of {} metadata_items",
                    req.metadata.len(),
                    q.metadata_items
                ),
            ));
        }
        if let Some(fc) = &mut self.fail_creates {
            if fc.count > 0 && fc.mode == "http" {
                fc.count -= 1;
                return Err(SimError::new(500, fc.message.clone()));
            }
        }
        let mut ids = Vec::new();
        for i in 0..count {
            let id = new_id();
            let name = if count > 1 { format!("{}-{}", req.name, i + 1) } else { req.name.clone() };
            let mut ports = Vec::new();
            for n in &nets {
                if let Some(pid) = n.strip_prefix("port:") {
                    if let Some(p) = self.ports.get_mut(pid) {
                        p.device_id = id.clone();
                        p.device_owner = format!("compute:{az}");
                        p.updated_at = now;
                    }
                    ports.push(pid.to_string());
                } else {
                    ports.push(self.allocate_port(n, project, &id, &az, &req.security_groups, now)?);
                }
            }
            let sgs =
                if req.security_groups.is_empty() { vec!["default".to_string()] } else { req.security_groups.clone() };
            let mut server = Server {
                scheduler_hints: serde_json::Map::new(),
                id: id.clone(),
                name,
                project_id: project.to_string(),
                user_id: user.to_string(),
                flavor_id: flavor.id.clone(),
                image_id: image_id.clone(),
                key_name: req.key_name.clone(),
                metadata: req.metadata.clone(),
                tags: req.tags.clone(),
                security_groups: sgs,
                availability_zone: az.split(':').next().unwrap_or("nova").to_string(),
                created: now,
                updated: now,
                launched_at: None,
                terminated_at: None,
                vm_state: "building".into(),
                task_state: Some("scheduling".into()),
                power_state: 0,
                fault: None,
                ports,
                user_data: req.user_data.clone(),
                locked: false,
                description: req.description.clone(),
                host: String::new(),
                console: VecDeque::new(),
                boot_gen: 1,
                metrics: true,
                config_drive: false,
                volumes_attached: vec![],
                guest_fault: None,
                failing_actions: BTreeMap::new(),
                last_action: None,
            };
            if let Some(gb) = req.boot_volume_gb {
                let vid = new_id();
                self.volumes.insert(
                    vid.clone(),
                    Volume {
                        id: vid.clone(),
                        name: Some(String::new()),
                        description: None,
                        project_id: project.to_string(),
                        user_id: user.to_string(),
                        size: gb,
                        status: "in-use".into(),
                        availability_zone: "nova".into(),
                        bootable: true,
                        volume_type: "__DEFAULT__".into(),
                        attachments: vec![VolAttachment {
                            server_id: id.clone(),
                            attachment_id: new_id(),
                            device: "/dev/vda".into(),
                            attached_at: now,
                        }],
                        metadata: BTreeMap::new(),
                        created_at: now,
                        updated_at: Some(now),
                        snapshot_id: None,
                        source_volid: None,
                        resting_status: "in-use".into(),
                    },
                );
                server.volumes_attached.push(vid);
            }
            self.stats.server_creates += 1;
            for t in &server.tags {
                if t.starts_with("stackpilot-op-") {
                    *self.stats.creates_by_op_tag.entry(t.clone()).or_insert(0) += 1;
                }
            }
            self.servers.insert(id.clone(), server);
            self.schedule(Self::after(now, self.settings.schedule_secs), Pending::Scheduled(id.clone(), 1));
            ids.push(id);
        }
        Ok(ids)
    }

    /// Put a server in ERROR with a fault (scheduler failure, admin fault).
    pub fn fail_server(&mut self, id: &str, code: u16, message: &str, now: Timestamp) {
        if let Some(s) = self.servers.get_mut(id) {
            s.vm_state = "error".into();
            s.task_state = None;
            s.power_state = if s.launched_at.is_some() { 4 } else { 0 };
            s.fault = Some(Fault { code, message: message.to_string(), created: now });
            s.updated = now;
            s.boot_gen += 1;
            let host = s.host.clone();
            Self::finish_actions(&mut self.instance_actions, id, &host, now, false, None);
        }
    }

    /// Record a server action as Nova's API does when it accepts one; its compute
    /// event finishes when the transition does.
    pub fn record_action(&mut self, server_id: &str, action: &str, request_id: &str, user: &str, now: Timestamp) {
        let Some(s) = self.servers.get(server_id) else { return };
        let event = match action {
            "create" => Some("compute__do_build_and_run_instance".to_string()),
            "delete" => Some("compute_terminate_instance".to_string()),
            "attach_volume" | "detach_volume" => Some(format!("compute_{action}")),
            "lock" | "unlock" => None,
            other => Some(format!("compute_{other}_instance")),
        };
        let done = event.is_none();
        let rec = InstanceAction {
            action: action.to_string(),
            request_id: request_id.to_string(),
            user_id: user.to_string(),
            project_id: s.project_id.clone(),
            start_time: now,
            updated_at: now,
            message: None,
            event,
            finish_time: done.then_some(now),
            result: done.then(|| "Success".to_string()),
            host: s.host.clone(),
        };
        self.instance_actions.entry(server_id.to_string()).or_default().push(rec);
    }

    /// Finish the server's open actions (only those named `only`, else all but the
    /// volume ones, which finish with their own transitions).
    fn finish_actions(
        actions: &mut BTreeMap<String, Vec<InstanceAction>>,
        server_id: &str,
        host: &str,
        at: Timestamp,
        ok: bool,
        only: Option<&str>,
    ) {
        let Some(list) = actions.get_mut(server_id) else { return };
        for a in list.iter_mut().filter(|a| a.finish_time.is_none()) {
            let volume = matches!(a.action.as_str(), "attach_volume" | "detach_volume");
            let hit = match only {
                Some(o) => a.action == o,
                None => !volume,
            };
            if !hit {
                continue;
            }
            a.finish_time = Some(at);
            a.updated_at = at;
            a.result = Some(if ok { "Success" } else { "Error" }.to_string());
            if !ok {
                a.message = Some("Error".to_string());
            }
            if !host.is_empty() {
                a.host = host.to_string();
            }
        }
    }

    fn boot_log(s: &mut Server, now: Timestamp, ip: &str) {
        s.log("[    0.000000] Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org)".into());
        s.log(
            "[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz root=LABEL=cloudimg-rootfs ro console=ttyS0".into(),
        );
        s.log("[    1.842113] Run /sbin/init as init process".into());
        s.log(format!(
            "[    4.120511] cloud-init[312]: Cloud-init v. 23.4 running 'init' at {}. Up 4.05 seconds.",
            fmt_console_time(&now)
        ));
        s.log(format!("[    4.300201] cloud-init[312]: ci-info: | eth0 | True | {ip} | 255.255.255.0 | global |"));
    }

    fn cloud_init_finish(s: &mut Server, now: Timestamp) {
        s.log(format!(
            "[   21.503311] cloud-init[598]: Cloud-init v. 23.4 running 'modules:final' at {}. Up 21.41 seconds.",
            fmt_console_time(&now)
        ));
        if let Some(ud) = &s.user_data {
            if let Some(first) = ud.lines().find(|l| !l.trim().is_empty() && !l.starts_with('#')) {
                s.log(format!(
                    "[   21.600000] cloud-init[598]: user-data: {}",
                    first.chars().take(120).collect::<String>()
                ));
            }
        }
        s.log(format!(
            "[   22.017744] cloud-init[598]: {BOOT_MARKER_PREFIX} {}. Datasource DataSourceOpenStackLocal [net,ver=2].  Up 22.01 seconds",
            fmt_console_time(&now)
        ));
        s.log(String::new());
        s.log(format!("{} login: ", s.name));
    }

    /// Apply every transition due at or before `now`.
    pub fn advance(&mut self, now: Timestamp) {
        let now_us = now.timestamp_micros();
        while let Some(first) = self.pending.first().cloned() {
            if first.0 > now_us {
                break;
            }
            self.pending.remove(&first);
            let at = chrono::DateTime::from_timestamp_micros(first.0).unwrap_or(now);
            self.apply(first.2, at);
        }
        // Forget servers deleted long ago.
        let horizon = super::clock::shifted(now, -(self.settings.deleted_retention_secs as f64) * 1000.0);
        let old: Vec<String> = self
            .servers
            .values()
            .filter(|s| s.is_deleted() && s.terminated_at.is_some_and(|t| t < horizon))
            .map(|s| s.id.clone())
            .collect();
        for id in old {
            self.servers.remove(&id);
            self.instance_actions.remove(&id);
        }
    }

    fn apply(&mut self, p: Pending, at: Timestamp) {
        match p {
            Pending::Scheduled(id, gen) => {
                let Some(s) = self.servers.get(&id) else { return };
                if s.boot_gen != gen || s.vm_state != "building" {
                    return;
                }
                let vcpus = self.flavor(&s.flavor_id).map(|f| f.vcpus).unwrap_or(1);
                // Admin fault: fail the next N creates.
                if let Some(fc) = &mut self.fail_creates {
                    if fc.count > 0 && fc.mode != "http" {
                        fc.count -= 1;
                        let m = fc.message.clone();
                        if fc.count == 0 {
                            self.fail_creates = None;
                        }
                        self.fail_server(&id, 500, &m, at);
                        return;
                    }
                }
                if let Some(cap) = self.settings.host_vcpus {
                    if self.used_host_vcpus() + vcpus > cap {
                        self.fail_server(
                            &id,
                            500,
                            "No valid host was found. There are not enough hosts available.",
                            at,
                        );
                        return;
                    }
                }
                let boot = self.settings.boot_secs;
                // The scheduler skips hosts that are down or disabled.
                let usable = |h: &str| !self.host_faults.contains_key(h);
                let preferred = compute_host(&id);
                let host = if usable(&preferred) {
                    preferred
                } else {
                    COMPUTE_HOSTS.iter().find(|h| usable(h)).map(|h| h.to_string()).unwrap_or(preferred)
                };
                if let Some(s) = self.servers.get_mut(&id) {
                    s.task_state = Some("spawning".into());
                    s.host = host;
                    s.updated = at;
                }
                // Ceilometer knows the instance from the moment it is spawned: its
                // resource and a first sample, so its history (and its CPU rate,
                // a granularity on) starts with it rather than a boot later.
                if gen == 1 {
                    self.create_instance_resources(&id, at);
                    self.first_sample(&id, at);
                }
                self.schedule(Self::after(at, boot), Pending::ServerActive(id, gen));
            }
            Pending::ServerActive(id, gen) => {
                let ip = self.server_ip(&id).unwrap_or_default();
                let ci = self.settings.cloud_init_secs;
                let Some(s) = self.servers.get_mut(&id) else { return };
                // A failure since bumped the generation; a hard reboot of a
                // server in ERROR is a new boot (Nova brings it back ACTIVE).
                if s.boot_gen != gen || s.is_deleted() {
                    return;
                }
                // A repair the control API told to fail leaves the server in ERROR.
                if let Some(a) = s.last_action.take() {
                    if let Some(what) = a.strip_suffix(":fail") {
                        let m = format!("Failed to {what} the instance: the hypervisor reported an error");
                        self.fail_server(&id, 500, &m, at);
                        return;
                    }
                    if s.guest_fault.as_ref().is_some_and(|g| g.mended_by(&a)) {
                        s.guest_fault = None;
                    }
                }
                let first = s.launched_at.is_none();
                s.vm_state = "active".into();
                s.task_state = None;
                s.power_state = 1;
                s.updated = at;
                let host = s.host.clone();
                Self::finish_actions(&mut self.instance_actions, &id, &host, at, true, None);
                if first {
                    s.launched_at = Some(at);
                }
                Self::boot_log(s, at, &ip);
                let ports = s.ports.clone();
                for pid in &ports {
                    if let Some(p) = self.ports.get_mut(pid) {
                        p.status = "ACTIVE".into();
                        p.updated_at = at;
                    }
                }
                if first {
                    self.create_instance_resources(&id, at);
                    if let Some(r) = self.resources.get_mut(&id) {
                        r.attributes.insert("launched_at".into(), crate::domain::json::json!(format_z(&at)));
                    }
                }
                self.schedule(Self::after(at, ci), Pending::CloudInitDone(id, gen));
            }
            Pending::CloudInitDone(id, gen) => {
                // An image with the property `sim_cloud_init = "fail"` boots, but its
                // cloud-init never finishes: a bad release, as a readiness check sees it.
                let fails = self
                    .servers
                    .get(&id)
                    .and_then(|s| s.image_id.as_ref())
                    .and_then(|iid| self.images.iter().find(|i| &i.id == iid))
                    .is_some_and(|i| i.properties.get("sim_cloud_init").is_some_and(|v| v == "fail"));
                if let Some(s) = self.servers.get_mut(&id) {
                    if s.boot_gen == gen && s.vm_state == "active" {
                        if fails {
                            s.log(format!(
                                "[   21.503311] cloud-init[598]: 2026 - util.py[WARNING]: Running module scripts_user failed at {}",
                                fmt_console_time(&at)
                            ));
                        } else {
                            Self::cloud_init_finish(s, at);
                        }
                    }
                }
            }
            Pending::ServerStopped(id, gen) => {
                if let Some(s) = self.servers.get_mut(&id) {
                    if s.boot_gen == gen && s.task_state.as_deref() == Some("powering-off") {
                        s.vm_state = "stopped".into();
                        s.task_state = None;
                        s.power_state = 4;
                        s.updated = at;
                        s.log("[  OK  ] Reached target System Power Off.".into());
                        let host = s.host.clone();
                        Self::finish_actions(&mut self.instance_actions, &id, &host, at, true, None);
                    }
                }
            }
            Pending::PowerDone(id, gen) => {
                let Some(s) = self.servers.get_mut(&id) else { return };
                if s.boot_gen != gen || s.is_deleted() {
                    return;
                }
                let (vm, power) = match s.task_state.as_deref() {
                    Some("pausing") => ("paused", 3),
                    Some("suspending") => ("suspended", 4),
                    Some("unpausing" | "resuming") => ("active", 1),
                    _ => return,
                };
                s.vm_state = vm.into();
                s.task_state = None;
                s.power_state = power;
                s.updated = at;
                let host = s.host.clone();
                Self::finish_actions(&mut self.instance_actions, &id, &host, at, true, None);
            }
            Pending::ServerGone(id) => {
                let Some(s) = self.servers.get_mut(&id) else { return };
                s.vm_state = "deleted".into();
                s.task_state = None;
                s.power_state = 0;
                s.updated = at;
                s.terminated_at = Some(at);
                let host = s.host.clone();
                Self::finish_actions(&mut self.instance_actions, &id, &host, at, true, None);
                for g in self.server_groups.values_mut() {
                    g.members.retain(|m| m != &id);
                }
                // Nova removes tags and metadata with the instance: a deleted record
                // answers `tags: []`, `metadata: {}` and no addresses.
                s.tags.clear();
                s.metadata.clear();
                let ports = std::mem::take(&mut s.ports);
                let vols = std::mem::take(&mut s.volumes_attached);
                for pid in ports {
                    self.ports.remove(&pid);
                    self.port_iface.remove(&pid);
                    self.net_bytes.remove(&pid);
                }
                for v in vols {
                    if let Some(vol) = self.volumes.get_mut(&v) {
                        vol.attachments.retain(|a| a.server_id != id);
                        if vol.bootable && vol.name.as_deref() == Some("") {
                            self.volumes.remove(&v);
                        } else if vol.attachments.is_empty() {
                            vol.status = "available".into();
                            vol.resting_status = "available".into();
                        }
                    }
                }
                for fip in self.floating_ips.values_mut() {
                    if fip.port_id.as_ref().is_some_and(|p| !self.ports.contains_key(p)) {
                        fip.port_id = None;
                        fip.fixed_ip = None;
                        fip.status = "DOWN".into();
                    }
                }
                let ended: Vec<String> = self
                    .resources
                    .values()
                    .filter(|r| {
                        r.id == id || r.attributes.get("instance_id").and_then(|v| v.as_str()) == Some(id.as_str())
                    })
                    .map(|r| r.id.clone())
                    .collect();
                for r in ended {
                    if let Some(r) = self.resources.get_mut(&r) {
                        r.ended_at = Some(at);
                    }
                }
                self.cpu_ns.remove(&id);
            }
            Pending::VolumeReady(id) => {
                if let Some(v) = self.volumes.get_mut(&id) {
                    if v.status == "creating" {
                        v.status = "available".into();
                        v.resting_status = "available".into();
                        v.updated_at = Some(at);
                    }
                }
            }
            Pending::VolumeGone(id) => {
                self.volumes.remove(&id);
            }
            Pending::SnapshotReady(id) => {
                if let Some(s) = self.snapshots.get_mut(&id) {
                    if s.status == "creating" {
                        s.status = "available".into();
                        s.updated_at = Some(at);
                    }
                }
            }
            Pending::SnapshotGone(id) => {
                self.snapshots.remove(&id);
            }
            Pending::BackupReady(id) => {
                let Some(b) = self.backups.get_mut(&id) else { return };
                if b.status != "creating" {
                    return;
                }
                b.status = "available".into();
                b.updated_at = Some(at);
                b.object_count = b.size.max(1) * 4;
                let vid = b.volume_id.clone();
                if let Some(v) = self.volumes.get_mut(&vid) {
                    if v.status == "backing-up" {
                        v.status = v.resting_status.clone();
                        v.updated_at = Some(at);
                    }
                }
            }
            Pending::BackupGone(id) => {
                self.backups.remove(&id);
            }
            Pending::Attached(vid, sid) => {
                let host = self.servers.get(&sid).map(|s| s.host.clone()).unwrap_or_default();
                Self::finish_actions(&mut self.instance_actions, &sid, &host, at, true, Some("attach_volume"));
                if let Some(v) = self.volumes.get_mut(&vid) {
                    if v.status == "attaching" {
                        v.status = "in-use".into();
                        v.resting_status = "in-use".into();
                        v.updated_at = Some(at);
                    }
                }
            }
            Pending::Detached(vid, sid) => {
                let host = self.servers.get(&sid).map(|s| s.host.clone()).unwrap_or_default();
                Self::finish_actions(&mut self.instance_actions, &sid, &host, at, true, Some("detach_volume"));
                if let Some(v) = self.volumes.get_mut(&vid) {
                    if v.status == "detaching" {
                        v.attachments.retain(|a| a.server_id != sid);
                        v.status = if v.attachments.is_empty() { "available" } else { "in-use" }.into();
                        v.resting_status = v.status.clone();
                        v.updated_at = Some(at);
                    }
                }
                if let Some(s) = self.servers.get_mut(&sid) {
                    s.volumes_attached.retain(|x| x != &vid);
                }
            }
            Pending::RestoreDone(bid, vid) => {
                if let Some(b) = self.backups.get_mut(&bid) {
                    if b.status == "restoring" {
                        b.status = "available".into();
                        b.updated_at = Some(at);
                    }
                }
                if let Some(v) = self.volumes.get_mut(&vid) {
                    if v.status == "restoring-backup" {
                        v.status = "available".into();
                        v.resting_status = "available".into();
                        v.updated_at = Some(at);
                    }
                }
            }
        }
    }

    /// Nova's `os-volume_attachments`: the volume goes `attaching`, then `in-use`.
    pub fn attach_volume(
        &mut self,
        server_id: &str,
        volume_id: &str,
        project: &str,
        now: Timestamp,
    ) -> SimResult<VolAttachment> {
        let sv = self
            .servers
            .get(server_id)
            .filter(|s| !s.is_deleted())
            .ok_or_else(|| SimError::not_found(format!("Instance {server_id} could not be found.")))?;
        if !matches!(sv.vm_state.as_str(), "active" | "stopped" | "paused" | "suspended") {
            return Err(SimError::conflict(format!(
                "Cannot 'attach_volume' instance {server_id} while it is in vm_state {}",
                sv.vm_state
            )));
        }
        let device = format!("/dev/vd{}", (b'b' + sv.volumes_attached.len().min(24) as u8) as char);
        let v = self
            .volumes
            .get_mut(volume_id)
            .filter(|v| v.project_id == project)
            .ok_or_else(|| SimError::not_found(format!("Volume {volume_id} could not be found.")))?;
        if v.status != "available" {
            return Err(SimError::bad(format!(
                "Invalid volume: volume {volume_id} status must be available to reserve, but the status is {}.",
                v.status
            )));
        }
        let a = VolAttachment { server_id: server_id.to_string(), attachment_id: new_id(), device, attached_at: now };
        v.status = "attaching".into();
        v.updated_at = Some(now);
        let secs = self.settings.schedule_secs;
        self.schedule(Self::after(now, secs), Pending::Attached(volume_id.to_string(), server_id.to_string()));
        if let Some(sv) = self.servers.get_mut(server_id) {
            sv.volumes_attached.push(volume_id.to_string());
        }
        if let Some(v) = self.volumes.get_mut(volume_id) {
            v.attachments.push(a.clone());
        }
        Ok(a)
    }

    /// Detach: the volume goes `detaching`, then `available`.
    pub fn detach_volume(&mut self, server_id: &str, volume_id: &str, now: Timestamp) -> SimResult<()> {
        let attached = self.servers.get(server_id).is_some_and(|s| s.volumes_attached.iter().any(|v| v == volume_id));
        if !attached {
            return Err(SimError::not_found(format!("volume_id not found: {volume_id}")));
        }
        let v = self.volumes.get_mut(volume_id).ok_or_else(|| SimError::not_found("gone"))?;
        if v.status != "in-use" {
            return Err(SimError::bad(format!(
                "Invalid volume: Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach, but is {}.",
                v.status
            )));
        }
        if v.bootable && v.attachments.iter().any(|a| a.server_id == server_id && a.device == "/dev/vda") {
            return Err(SimError::bad("Can't detach root device volume"));
        }
        v.status = "detaching".into();
        v.updated_at = Some(now);
        let secs = self.settings.schedule_secs;
        self.schedule(Self::after(now, secs), Pending::Detached(volume_id.to_string(), server_id.to_string()));
        Ok(())
    }

    pub fn server_ip(&self, id: &str) -> Option<String> {
        let s = self.servers.get(id)?;
        s.ports.iter().filter_map(|p| self.ports.get(p)).map(|p| p.ip.clone()).next()
    }

    /// Delete a server (Nova `DELETE /servers/{id}`).
    pub fn delete_server(&mut self, id: &str, project: Option<&str>, now: Timestamp) -> SimResult<()> {
        let Some(s) = self.servers.get_mut(id).filter(|s| !s.is_deleted() && project.is_none_or(|p| s.project_id == p))
        else {
            return Err(SimError::not_found(format!("Instance {id} could not be found.")));
        };
        if s.locked {
            return Err(SimError::conflict(format!("Instance {id} is locked")));
        }
        if s.task_state.as_deref() == Some("deleting") {
            return Ok(());
        }
        s.task_state = Some("deleting".into());
        s.updated = now;
        s.boot_gen += 1;
        self.stats.server_deletes += 1;
        let secs = self.settings.delete_secs;
        self.schedule(Self::after(now, secs), Pending::ServerGone(id.to_string()));
        Ok(())
    }

    /// A server action (`os-start`, `os-stop`, `reboot`, `rebuild`).
    pub fn server_action(&mut self, id: &str, action: &str, arg: &serde_json::Value, now: Timestamp) -> SimResult<()> {
        let image_ok = |w: &World, i: &str| w.image(i).map(|x| x.id.clone());
        let rebuild_image = if action == "rebuild" {
            let img = arg.get("imageRef").and_then(|v| v.as_str()).ok_or_else(|| {
                SimError::bad("Invalid input for field/attribute rebuild. Value: {}. 'imageRef' is a required property")
            })?;
            Some(image_ok(self, img).ok_or_else(|| SimError::bad(format!("Image {img} could not be found.")))?)
        } else {
            None
        };
        let settings = self.settings.clone();
        let Some(s) = self.servers.get_mut(id).filter(|s| !s.is_deleted()) else {
            return Err(SimError::not_found(format!("Instance {id} could not be found.")));
        };
        let conflict = |s: &Server, attr: &str| {
            let (a, st) = if s.task_state.is_some() && attr == "task_state" {
                ("task_state", s.task_state.clone().unwrap_or_default())
            } else {
                ("vm_state", s.vm_state.clone())
            };
            SimError::conflict(format!("Cannot '{action}' instance {id} while it is in {a} {st}"))
        };
        if s.locked {
            return Err(SimError::conflict(format!("Instance {id} is locked")));
        }
        if s.task_state.is_some() && action != "reboot" {
            return Err(conflict(s, "task_state"));
        }
        let repair = match action {
            "os-start" => Some("start"),
            "reboot" => {
                let t = arg.get("type").and_then(|v| v.as_str()).unwrap_or("");
                Some(if t.eq_ignore_ascii_case("HARD") { "reboot-hard" } else { "reboot-soft" })
            }
            "rebuild" => Some("rebuild"),
            _ => None,
        };
        let previous = s.last_action.clone();
        s.last_action = repair.map(|r| match s.failing_actions.get_mut(r) {
            Some(n) if *n > 0 => {
                *n -= 1;
                format!("{r}:fail")
            }
            _ => r.to_string(),
        });
        let r = self.server_action_inner(id, action, arg, rebuild_image, settings, now);
        if r.is_err() {
            // Refused: nothing is under way, and a failure it would have used is kept.
            if let Some(s) = self.servers.get_mut(id) {
                if let Some(r) = s.last_action.as_deref().and_then(|a| a.strip_suffix(":fail")).map(String::from) {
                    *s.failing_actions.entry(r).or_default() += 1;
                }
                s.last_action = previous;
            }
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn server_action_inner(
        &mut self,
        id: &str,
        action: &str,
        arg: &serde_json::Value,
        rebuild_image: Option<String>,
        settings: Settings,
        now: Timestamp,
    ) -> SimResult<()> {
        let Some(s) = self.servers.get_mut(id).filter(|s| !s.is_deleted()) else {
            return Err(SimError::not_found(format!("Instance {id} could not be found.")));
        };
        let conflict = |s: &Server, attr: &str| {
            let (a, st) = if s.task_state.is_some() && attr == "task_state" {
                ("task_state", s.task_state.clone().unwrap_or_default())
            } else {
                ("vm_state", s.vm_state.clone())
            };
            SimError::conflict(format!("Cannot '{action}' instance {id} while it is in {a} {st}"))
        };
        match action {
            "os-start" => {
                if s.vm_state != "stopped" {
                    return Err(conflict(s, "vm_state"));
                }
                s.task_state = Some("powering-on".into());
                s.updated = now;
                s.boot_gen += 1;
                let g = s.boot_gen;
                self.schedule(Self::after(now, settings.start_secs), Pending::ServerActive(id.to_string(), g));
            }
            "os-stop" => {
                if s.vm_state != "active" && s.vm_state != "error" {
                    return Err(conflict(s, "vm_state"));
                }
                s.task_state = Some("powering-off".into());
                s.updated = now;
                s.boot_gen += 1;
                let g = s.boot_gen;
                self.schedule(Self::after(now, settings.stop_secs), Pending::ServerStopped(id.to_string(), g));
            }
            "reboot" => {
                let hard =
                    arg.get("type").and_then(|v| v.as_str()).map(|t| t.eq_ignore_ascii_case("HARD")).unwrap_or(false);
                let t = arg.get("type").and_then(|v| v.as_str()).unwrap_or("");
                if !t.eq_ignore_ascii_case("HARD") && !t.eq_ignore_ascii_case("SOFT") {
                    return Err(SimError::bad(format!("Invalid input for field/attribute type. Value: {t}. '{t}' is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']")));
                }
                let ok = if hard {
                    matches!(s.vm_state.as_str(), "active" | "stopped" | "error" | "paused" | "suspended")
                } else {
                    s.vm_state == "active" && s.task_state.is_none()
                };
                if !ok {
                    return Err(if s.task_state.is_some() {
                        conflict(s, "task_state")
                    } else {
                        conflict(s, "vm_state")
                    });
                }
                s.task_state = Some(if hard { "rebooting_hard".into() } else { "rebooting".into() });
                s.updated = now;
                s.boot_gen += 1;
                let g = s.boot_gen;
                s.log(String::new());
                s.log("[  OK  ] Reached target Reboot.".into());
                let secs = if hard { settings.hard_reboot_secs } else { settings.reboot_secs };
                self.schedule(Self::after(now, secs), Pending::ServerActive(id.to_string(), g));
            }
            "rebuild" => {
                if !matches!(s.vm_state.as_str(), "active" | "stopped" | "error") {
                    return Err(conflict(s, "vm_state"));
                }
                // Undecodable user data is a 400, as Nova answers, before anything changes.
                let user_data = match arg.get("user_data").and_then(|v| v.as_str()) {
                    Some(ud) => Some(super::http::decode_user_data(ud)?),
                    None => None,
                };
                s.image_id = rebuild_image;
                if user_data.is_some() {
                    s.user_data = user_data;
                }
                if let Some(m) = arg.get("metadata").and_then(|v| v.as_object()) {
                    s.metadata = m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect();
                }
                if let Some(n) = arg.get("name").and_then(|v| v.as_str()) {
                    s.name = n.to_string();
                }
                s.vm_state = "active".into();
                s.task_state = Some("rebuilding".into());
                s.fault = None;
                s.power_state = 0;
                s.updated = now;
                s.boot_gen += 1;
                s.console.clear();
                let g = s.boot_gen;
                self.schedule(Self::after(now, settings.rebuild_secs), Pending::ServerActive(id.to_string(), g));
            }
            "pause" | "unpause" | "suspend" | "resume" => {
                let (from, task, secs) = match action {
                    "pause" => ("active", "pausing", settings.pause_secs),
                    "unpause" => ("paused", "unpausing", settings.pause_secs),
                    "suspend" => ("active", "suspending", settings.suspend_secs),
                    _ => ("suspended", "resuming", settings.suspend_secs),
                };
                if s.vm_state != from {
                    return Err(conflict(s, "vm_state"));
                }
                s.task_state = Some(task.into());
                s.updated = now;
                s.boot_gen += 1;
                let g = s.boot_gen;
                self.schedule(Self::after(now, secs), Pending::PowerDone(id.to_string(), g));
            }
            _ => return Err(SimError::bad(format!("There is no such action: {action}"))),
        }
        Ok(())
    }

    /// Nova's `addSecurityGroup` / `removeSecurityGroup`: the group (by name or id,
    /// of the server's project) goes onto or off every port of the server.
    pub fn server_security_group(&mut self, id: &str, group: &str, add: bool, now: Timestamp) -> SimResult<()> {
        let Some(s) = self.servers.get(id).filter(|s| !s.is_deleted()) else {
            return Err(SimError::not_found(format!("Instance {id} could not be found.")));
        };
        let project = s.project_id.clone();
        let Some(g) =
            self.security_groups.iter().find(|g| g.project_id == project && (g.name == group || g.id == group))
        else {
            return Err(SimError::not_found(format!("Security group {group} is not found for project {project}")));
        };
        let (gid, gname) = (g.id.clone(), g.name.clone());
        let ports: Vec<String> = s.ports.clone();
        let on = ports.iter().filter_map(|p| self.ports.get(p)).any(|p| p.security_groups.contains(&gid))
            || s.security_groups.contains(&gname);
        if add && on {
            return Err(SimError::bad(format!(
                "Invalid input for security_groups. Reason: Duplicate items in the list: '{gid}'."
            )));
        }
        if !add && !on {
            return Err(SimError::not_found(format!("Security group {group} not associated with the instance {id}")));
        }
        for pid in &ports {
            if let Some(p) = self.ports.get_mut(pid) {
                p.security_groups.retain(|x| x != &gid);
                if add {
                    p.security_groups.push(gid.clone());
                }
                p.updated_at = now;
            }
        }
        if let Some(s) = self.servers.get_mut(id) {
            s.security_groups.retain(|x| x != &gname);
            if add {
                s.security_groups.push(gname);
            }
            s.updated = now;
        }
        Ok(())
    }

    /// Admin fault: force a server into ERROR or SHUTOFF.
    pub fn force_state(&mut self, id: &str, status: &str, message: &str, now: Timestamp) -> SimResult<()> {
        let Some(s) = self.servers.get_mut(id).filter(|s| !s.is_deleted()) else {
            return Err(SimError::not_found(format!("Instance {id} could not be found.")));
        };
        match status.to_ascii_uppercase().as_str() {
            "ERROR" => {
                let m = if message.is_empty() { "Instance failed: hypervisor reported a crash" } else { message };
                self.fail_server(id, 500, m, now);
            }
            "SHUTOFF" => {
                s.vm_state = "stopped".into();
                s.task_state = None;
                s.power_state = 4;
                s.updated = now;
                s.boot_gen += 1;
                s.log("[  OK  ] Reached target System Power Off.".into());
            }
            "ACTIVE" => {
                s.vm_state = "active".into();
                s.task_state = None;
                s.power_state = 1;
                s.fault = None;
                s.updated = now;
            }
            other => return Err(SimError::bad(format!("unsupported state {other}; use ERROR, SHUTOFF or ACTIVE"))),
        }
        Ok(())
    }

    // ---- Cinder ----------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub fn create_volume(
        &mut self,
        project: &str,
        user: &str,
        size: u64,
        name: Option<String>,
        description: Option<String>,
        metadata: BTreeMap<String, String>,
        az: Option<String>,
        now: Timestamp,
    ) -> SimResult<String> {
        if size == 0 {
            return Err(SimError::bad("Invalid input received: Volume size '0' must be an integer and greater than 0"));
        }
        let q = self.quota(project);
        let (n, gb, _, _, _) = self.volume_usage(project);
        if q.per_volume_gigabytes >= 0 && size as i64 > q.per_volume_gigabytes {
            return Err(SimError::new(
                413,
                format!(
                    "VolumeSizeExceedsLimit: Requested volume size {size}G is larger than maximum allowed limit {}G.",
                    q.per_volume_gigabytes
                ),
            ));
        }
        if q.volumes >= 0 && n + 1 > q.volumes {
            return Err(SimError::new(
                413,
                format!(
                    "VolumeLimitExceeded: Maximum number of volumes allowed ({}) exceeded for quota 'volumes'.",
                    q.volumes
                ),
            ));
        }
        if q.gigabytes >= 0 && gb + size as i64 > q.gigabytes {
            return Err(SimError::new(413, format!("VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested {size}G, quota is {}G and {gb}G has been consumed.", q.gigabytes)));
        }
        let id = new_id();
        self.volumes.insert(
            id.clone(),
            Volume {
                id: id.clone(),
                name,
                description,
                project_id: project.to_string(),
                user_id: user.to_string(),
                size,
                status: "creating".into(),
                availability_zone: az.unwrap_or_else(|| "nova".into()),
                bootable: false,
                volume_type: "__DEFAULT__".into(),
                attachments: vec![],
                metadata,
                created_at: now,
                updated_at: None,
                snapshot_id: None,
                source_volid: None,
                resting_status: "available".into(),
            },
        );
        let secs = self.settings.volume_secs;
        self.schedule(Self::after(now, secs), Pending::VolumeReady(id.clone()));
        Ok(id)
    }

    pub fn delete_volume(&mut self, id: &str, project: &str, now: Timestamp) -> SimResult<()> {
        let Some(v) = self.volumes.get_mut(id).filter(|v| v.project_id == project) else {
            return Err(SimError::not_found(format!("Volume {id} could not be found.")));
        };
        if !matches!(
            v.status.as_str(),
            "available" | "error" | "error_restoring" | "error_extending" | "error_managing"
        ) {
            return Err(SimError::bad("Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer. (HTTP 400)".to_string()));
        }
        if self.snapshots.values().any(|s| s.volume_id == id) {
            return Err(SimError::bad("Invalid volume: Volume cannot be deleted while it has snapshots."));
        }
        let Some(v) = self.volumes.get_mut(id) else { return Err(SimError::not_found("gone")) };
        v.status = "deleting".into();
        v.updated_at = Some(now);
        let secs = self.settings.delete_secs;
        self.schedule(Self::after(now, secs), Pending::VolumeGone(id.to_string()));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn create_snapshot(
        &mut self,
        project: &str,
        user: &str,
        volume_id: &str,
        name: Option<String>,
        force: bool,
        metadata: BTreeMap<String, String>,
        now: Timestamp,
    ) -> SimResult<String> {
        let v = self
            .volumes
            .get(volume_id)
            .filter(|v| v.project_id == project)
            .ok_or_else(|| SimError::not_found(format!("Volume {volume_id} could not be found.")))?;
        if !(v.status == "available" || (v.status == "in-use" && force)) {
            return Err(SimError::bad(format!(
                "Invalid volume: Volume {volume_id} status must be available, but current status is: {}.",
                v.status
            )));
        }
        let q = self.quota(project);
        let (_, _, snaps, _, _) = self.volume_usage(project);
        if q.snapshots >= 0 && snaps + 1 > q.snapshots {
            return Err(SimError::new(
                413,
                format!("SnapshotLimitExceeded: Maximum number of snapshots allowed ({}) exceeded", q.snapshots),
            ));
        }
        let id = new_id();
        let size = v.size;
        self.snapshots.insert(
            id.clone(),
            Snapshot {
                id: id.clone(),
                name,
                description: None,
                volume_id: volume_id.to_string(),
                project_id: project.to_string(),
                user_id: user.to_string(),
                size,
                status: "creating".into(),
                metadata,
                created_at: now,
                updated_at: None,
            },
        );
        let secs = self.settings.snapshot_secs;
        self.schedule(Self::after(now, secs), Pending::SnapshotReady(id.clone()));
        Ok(id)
    }

    pub fn delete_snapshot(&mut self, id: &str, project: &str, now: Timestamp) -> SimResult<()> {
        let Some(s) = self.snapshots.get_mut(id).filter(|s| s.project_id == project) else {
            return Err(SimError::not_found(format!("Snapshot {id} could not be found.")));
        };
        if !matches!(s.status.as_str(), "available" | "error") {
            return Err(SimError::bad("Invalid snapshot: Volume Snapshot status must be available or error."));
        }
        if self.backups.values().any(|b| b.snapshot_id.as_deref() == Some(id) && b.status == "creating") {
            return Err(SimError::bad("Invalid snapshot: Snapshot is being backed up."));
        }
        let Some(s) = self.snapshots.get_mut(id) else { return Err(SimError::not_found("gone")) };
        s.status = "deleting".into();
        s.updated_at = Some(now);
        let secs = self.settings.delete_secs;
        self.schedule(Self::after(now, secs), Pending::SnapshotGone(id.to_string()));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn create_backup(
        &mut self,
        project: &str,
        user: &str,
        volume_id: &str,
        name: Option<String>,
        description: Option<String>,
        incremental: bool,
        force: bool,
        snapshot_id: Option<String>,
        container: Option<String>,
        metadata: BTreeMap<String, String>,
        now: Timestamp,
    ) -> SimResult<String> {
        let v = self
            .volumes
            .get(volume_id)
            .filter(|v| v.project_id == project)
            .ok_or_else(|| SimError::not_found(format!("Volume {volume_id} could not be found.")))?
            .clone();
        if let Some(sid) = &snapshot_id {
            let s = self
                .snapshots
                .get(sid)
                .ok_or_else(|| SimError::not_found(format!("Snapshot {sid} could not be found.")))?;
            if s.volume_id != volume_id || s.status != "available" {
                return Err(SimError::bad(format!("Invalid snapshot: Snapshot {sid} status must be available")));
            }
        } else if v.status == "in-use" && !force {
            return Err(SimError::bad(format!(
                "Invalid volume: Volume {volume_id} is in-use; use force to back up an in-use volume."
            )));
        } else if v.status != "available" && v.status != "in-use" {
            return Err(SimError::bad(format!(
                "Invalid volume: Volume to be backed up must be available or in-use, but the current status is \"{}\".",
                v.status
            )));
        }
        let parent = if incremental {
            let p = self
                .backups
                .values()
                .filter(|b| b.volume_id == volume_id && b.status == "available")
                .max_by_key(|b| b.data_timestamp)
                .map(|b| b.id.clone());
            if p.is_none() {
                return Err(SimError::bad("Invalid backup: No backups available to do an incremental backup."));
            }
            p
        } else {
            None
        };
        let q = self.quota(project);
        let (_, _, _, nb, bgb) = self.volume_usage(project);
        if q.backups >= 0 && nb + 1 > q.backups {
            return Err(SimError::new(
                413,
                format!("BackupLimitExceeded: Maximum number of backups allowed ({}) exceeded", q.backups),
            ));
        }
        if q.backup_gigabytes >= 0 && bgb + v.size as i64 > q.backup_gigabytes {
            return Err(SimError::new(413, format!("VolumeBackupSizeExceedsAvailableQuota: Requested backup exceeds allowed Backup gigabytes quota. Requested {}G, quota is {}G and {bgb}G has been consumed.", v.size, q.backup_gigabytes)));
        }
        let id = new_id();
        self.backups.insert(
            id.clone(),
            Backup {
                id: id.clone(),
                name,
                description,
                volume_id: volume_id.to_string(),
                snapshot_id,
                project_id: project.to_string(),
                user_id: user.to_string(),
                size: v.size,
                status: "creating".into(),
                fail_reason: None,
                container: Some(container.unwrap_or_else(|| "volumebackups".into())),
                availability_zone: Some("nova".into()),
                is_incremental: parent.is_some(),
                parent_id: parent,
                object_count: 0,
                metadata,
                created_at: now,
                updated_at: Some(now),
                data_timestamp: now,
            },
        );
        if let Some(vol) = self.volumes.get_mut(volume_id) {
            if vol.status == "available" || vol.status == "in-use" {
                vol.resting_status = vol.status.clone();
                vol.status = "backing-up".into();
                vol.updated_at = Some(now);
            }
        }
        let secs = self.settings.backup_secs;
        self.schedule(Self::after(now, secs), Pending::BackupReady(id.clone()));
        Ok(id)
    }

    pub fn has_dependents(&self, backup_id: &str) -> bool {
        self.backups.values().any(|b| b.parent_id.as_deref() == Some(backup_id))
    }

    pub fn delete_backup(&mut self, id: &str, project: &str, now: Timestamp) -> SimResult<()> {
        let Some(b) = self.backups.get(id).filter(|b| b.project_id == project) else {
            return Err(SimError::not_found(format!("Backup {id} could not be found.")));
        };
        if !matches!(b.status.as_str(), "available" | "error") {
            return Err(SimError::bad("Invalid backup: Backup status must be available or error".to_string()));
        }
        if self.has_dependents(id) {
            return Err(SimError::bad("Invalid backup: Incremental backups exist for this backup."));
        }
        let Some(b) = self.backups.get_mut(id) else { return Err(SimError::not_found("gone")) };
        b.status = "deleting".into();
        b.updated_at = Some(now);
        let secs = self.settings.delete_secs;
        self.schedule(Self::after(now, secs), Pending::BackupGone(id.to_string()));
        Ok(())
    }

    /// Restore a backup to a new volume or onto an existing available one.
    pub fn restore_backup(
        &mut self,
        id: &str,
        project: &str,
        user: &str,
        volume_id: Option<&str>,
        name: Option<String>,
        now: Timestamp,
    ) -> SimResult<(String, String)> {
        self.restore_backup_to(id, project, user, volume_id, name, None, None, now)
    }

    /// Restore, or create a volume from a backup (`volume_type` and `az` for the
    /// new volume: Cinder's create-from-backup, MV 3.47).
    #[allow(clippy::too_many_arguments)]
    pub fn restore_backup_to(
        &mut self,
        id: &str,
        project: &str,
        user: &str,
        volume_id: Option<&str>,
        name: Option<String>,
        volume_type: Option<String>,
        az: Option<String>,
        now: Timestamp,
    ) -> SimResult<(String, String)> {
        let b = self
            .backups
            .get(id)
            .filter(|b| b.project_id == project)
            .ok_or_else(|| SimError::not_found(format!("Backup {id} could not be found.")))?
            .clone();
        if b.status != "available" {
            return Err(SimError::bad(format!("Invalid backup: Backup status must be available but is {}.", b.status)));
        }
        let vid = match volume_id {
            Some(v) => {
                let vol = self
                    .volumes
                    .get_mut(v)
                    .filter(|x| x.project_id == project)
                    .ok_or_else(|| SimError::not_found(format!("Volume {v} could not be found.")))?;
                if vol.status != "available" {
                    return Err(SimError::bad(format!(
                        "Invalid volume: Volume to be restored to must be available, but the current status is \"{}\".",
                        vol.status
                    )));
                }
                if vol.size < b.size {
                    return Err(SimError::bad(format!(
                        "Invalid volume: volume size {}GB is too small to restore backup of size {}GB.",
                        vol.size, b.size
                    )));
                }
                vol.status = "restoring-backup".into();
                vol.updated_at = Some(now);
                v.to_string()
            }
            None => {
                let name = name.unwrap_or_else(|| format!("restore_backup_{id}"));
                let v = self.create_volume(project, user, b.size, Some(name), None, BTreeMap::new(), az, now)?;
                if let Some(vol) = self.volumes.get_mut(&v) {
                    vol.status = "restoring-backup".into();
                    if let Some(t) = volume_type {
                        vol.volume_type = t;
                    }
                }
                v
            }
        };
        if let Some(bk) = self.backups.get_mut(id) {
            bk.status = "restoring".into();
            bk.updated_at = Some(now);
        }
        let vname = self.volumes.get(&vid).and_then(|v| v.name.clone()).unwrap_or_default();
        let secs = self.settings.restore_secs;
        self.schedule(Self::after(now, secs), Pending::RestoreDone(id.to_string(), vid.clone()));
        Ok((vid, vname))
    }

    // ---- Gnocchi ---------------------------------------------------------------

    pub fn ensure_default_archive_policies(&mut self) {
        let g = self.settings.granularity as u64;
        let pts = self.settings.metric_points as u64;
        for (name, methods) in [
            ("ceilometer-low", vec!["mean"]),
            ("ceilometer-low-rate", vec!["mean", "rate:mean"]),
            ("low", vec!["mean", "min", "max", "sum", "std", "count"]),
        ] {
            self.archive_policies.entry(name.to_string()).or_insert_with(|| ArchivePolicy {
                name: name.to_string(),
                back_window: 0,
                aggregation_methods: methods.into_iter().map(String::from).collect(),
                definition: vec![(g, pts)],
            });
        }
    }

    pub fn new_metric(&mut self, name: &str, unit: Option<&str>, resource_id: Option<&str>, policy: &str) -> String {
        let id = new_id();
        self.metrics.insert(
            id.clone(),
            Metric {
                id: id.clone(),
                name: name.to_string(),
                unit: unit.map(String::from),
                resource_id: resource_id.map(String::from),
                archive_policy: policy.to_string(),
                creator: "ceilometer".into(),
                points: VecDeque::new(),
            },
        );
        id
    }

    /// Ceilometer's view of a new server: an `instance` resource with its meters and
    /// one `instance_network_interface` per port.
    fn create_instance_resources(&mut self, server_id: &str, now: Timestamp) {
        let Some(s) = self.servers.get(server_id).cloned() else { return };
        if !s.metrics || self.resources.contains_key(server_id) {
            return;
        }
        let flavor = self.flavor(&s.flavor_id).cloned();
        let mut metrics = BTreeMap::new();
        for (m, unit, pol) in [
            ("cpu", "ns", "ceilometer-low-rate"),
            ("vcpus", "vcpu", "ceilometer-low"),
            ("memory", "MB", "ceilometer-low"),
            ("memory.usage", "MB", "ceilometer-low"),
        ] {
            let id = self.new_metric(m, Some(unit), Some(server_id), pol);
            metrics.insert(m.to_string(), id);
        }
        let mut attrs = BTreeMap::new();
        attrs.insert("display_name".into(), crate::domain::json::json!(s.name));
        attrs.insert("flavor_id".into(), crate::domain::json::json!(s.flavor_id));
        attrs.insert("flavor_name".into(), crate::domain::json::json!(flavor.as_ref().map(|f| f.name.clone())));
        attrs.insert("host".into(), crate::domain::json::json!(s.host));
        attrs.insert("image_ref".into(), crate::domain::json::json!(s.image_id));
        attrs.insert("server_group".into(), crate::domain::json::json!(s.metadata.get(crate::domain::META_APP)));
        attrs.insert("launched_at".into(), crate::domain::json::json!(s.launched_at.map(|t| format_z(&t))));
        attrs.insert("created_at".into(), crate::domain::json::json!(format_z(&s.created)));
        attrs.insert("deleted_at".into(), serde_json::Value::Null);
        attrs.insert("availability_zone".into(), crate::domain::json::json!(s.availability_zone));
        self.resources.insert(
            server_id.to_string(),
            Resource {
                id: server_id.to_string(),
                resource_type: "instance".into(),
                original_resource_id: server_id.to_string(),
                project_id: Some(s.project_id.clone()),
                user_id: Some(s.user_id.clone()),
                creator: "ceilometer".into(),
                started_at: now,
                revision_start: now,
                ended_at: None,
                attributes: attrs,
                metrics,
            },
        );
        for (i, pid) in s.ports.iter().enumerate() {
            let tap = format!("tap{}", crate::domain::text::prefix(pid, 11));
            let orig = format!("instance-{:08x}-{}-{}", i, server_id, tap);
            let rid = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, orig.as_bytes()).to_string();
            let mut metrics = BTreeMap::new();
            for m in ["network.incoming.bytes", "network.outgoing.bytes"] {
                let id = self.new_metric(m, Some("B"), Some(&rid), "ceilometer-low-rate");
                metrics.insert(m.to_string(), id);
            }
            let mut attrs = BTreeMap::new();
            attrs.insert("instance_id".into(), crate::domain::json::json!(server_id));
            attrs.insert("name".into(), crate::domain::json::json!(tap));
            self.port_iface.insert(pid.clone(), rid.clone());
            self.resources.insert(
                rid.clone(),
                Resource {
                    id: rid,
                    resource_type: "instance_network_interface".into(),
                    original_resource_id: orig,
                    project_id: Some(s.project_id.clone()),
                    user_id: Some(s.user_id.clone()),
                    creator: "ceilometer".into(),
                    started_at: now,
                    revision_start: now,
                    ended_at: None,
                    attributes: attrs,
                    metrics,
                },
            );
        }
    }

    /// A new server's first sample, taken at `at` (Gnocchi puts it in that
    /// granularity's bucket): its counters as they stand (zero before it ever
    /// ran), its size.
    fn first_sample(&mut self, server_id: &str, at: Timestamp) {
        let Some(s) = self.servers.get(server_id) else { return };
        let Some(r) = self.resources.get(server_id) else { return };
        let t = at.timestamp();
        let flavor = self.flavor(&s.flavor_id);
        let (vcpus, ram) = (flavor.map(|f| f.vcpus).unwrap_or(1).max(1), flavor.map(|f| f.ram).unwrap_or(512));
        let cpu = self.cpu_ns.get(server_id).copied().unwrap_or(0.0);
        let mut points: Vec<(String, f64)> = Vec::new();
        for (m, v) in [("cpu", cpu), ("vcpus", vcpus as f64), ("memory", ram as f64)] {
            if let Some(id) = r.metrics.get(m) {
                points.push((id.clone(), v));
            }
        }
        for pid in &s.ports {
            let (bin, bout) = self.net_bytes.get(pid).copied().unwrap_or((0.0, 0.0));
            let Some(iface) = self.port_iface.get(pid).and_then(|rid| self.resources.get(rid)) else { continue };
            for (m, v) in [("network.incoming.bytes", bin), ("network.outgoing.bytes", bout)] {
                if let Some(id) = iface.metrics.get(m) {
                    points.push((id.clone(), v));
                }
            }
        }
        for (m, v) in points {
            self.push_point(&m, t, v);
        }
    }

    /// Add a point to a metric, keeping points ordered and bounded.
    pub fn push_point(&mut self, metric_id: &str, at: i64, value: f64) {
        let cap = self.settings.metric_points.max(2) * 2;
        if let Some(m) = self.metrics.get_mut(metric_id) {
            match m.points.back() {
                Some(&(last, _)) if at < last => {
                    let idx = m.points.partition_point(|p| p.0 < at);
                    if let Some(p) = m.points.get_mut(idx).filter(|p| p.0 == at) {
                        p.1 = value;
                    } else {
                        m.points.insert(idx, (at, value));
                    }
                }
                Some(&(last, _)) if at == last => {
                    if let Some(b) = m.points.back_mut() {
                        b.1 = value;
                    }
                }
                _ => m.points.push_back((at, value)),
            }
            while m.points.len() > cap {
                m.points.pop_front();
            }
        }
    }

    /// Generate the measures Ceilometer would have sent up to `now`.
    /// Strike the servers the scheduled incidents are due for.
    pub fn run_incidents(&mut self, now: Timestamp) {
        use super::workload::IncidentKind;
        let t = now.timestamp();
        let epoch = self.workload.epoch;
        for i in 0..self.workload.incidents.len() {
            let Some(inc) = self.workload.incidents.get(i).cloned() else { continue };
            let Some(n) = inc.due(t, epoch) else { continue };
            if let Some(x) = self.workload.incidents.get_mut(i) {
                x.fired = Some(n);
            }
            let target = self
                .servers
                .values()
                .filter(|s| s.metadata.get("stackpilot:app") == Some(&inc.app))
                .filter(|s| s.vm_state == "active" && s.task_state.is_none() && s.guest_fault.is_none())
                .min_by_key(|s| (s.created, s.id.clone()))
                .map(|s| s.id.clone());
            let Some(id) = target else { continue };
            let r = match inc.kind {
                IncidentKind::Stop => self.force_state(&id, "SHUTOFF", "", now),
                IncidentKind::Error => self.force_state(&id, "ERROR", "Instance crashed: the hypervisor lost it", now),
                IncidentKind::Hang => {
                    if let Some(s) = self.servers.get_mut(&id) {
                        s.guest_fault = Some(GuestFault { mode: "hung".into(), until: "reboot-soft".into() });
                    }
                    Ok(())
                }
            };
            if let Err(e) = r {
                tracing::debug!("incident on {id} not carried out: {}", e.message);
            }
        }
    }

    /// Give a world that starts without metrics the last `secs` of its workload
    /// (at most its archive's points): the servers it starts with have been
    /// running that long, and their measures carry the past timestamps the
    /// workload model gives them, so a client's first read has history to draw.
    pub fn backfill_metrics(&mut self, now: Timestamp, secs: i64) {
        if self.metrics_until.is_some() {
            return;
        }
        let g = self.settings.granularity.max(1) as i64;
        let span = secs.clamp(0, g * (self.settings.metric_points as i64 - 1).max(0));
        let since = super::clock::shifted(now, -(span as f64) * 1000.0);
        for s in self.servers.values_mut().filter(|s| !s.is_deleted() && s.created > since) {
            s.created = since;
            s.launched_at = s.launched_at.map(|l| l.min(since));
        }
        for r in self.resources.values_mut() {
            r.started_at = r.started_at.min(since);
        }
        let first = since.timestamp() - since.timestamp().rem_euclid(g);
        self.metrics_until = Some(first - g);
        self.tick_metrics(now);
    }

    pub fn tick_metrics(&mut self, now: Timestamp) {
        let g = self.settings.granularity.max(1) as i64;
        let now_s = now.timestamp();
        let aligned = now_s - now_s.rem_euclid(g);
        let start = match self.metrics_until {
            Some(t) => t + g,
            None => aligned,
        };
        let max_steps = self.settings.metric_points as i64;
        let start = start.max(aligned - g * (max_steps - 1));
        let mut t = start;
        while t <= aligned {
            self.metric_step(t, g as f64);
            t += g;
        }
        if start <= aligned {
            self.metrics_until = Some(aligned);
        }
    }

    fn metric_step(&mut self, t: i64, g: f64) {
        // Active members per app at this step.
        let mut active: BTreeMap<String, u32> = BTreeMap::new();
        for s in self.servers.values() {
            if s.vm_state == "active" && s.task_state.is_none() {
                if let Some(a) = s.app() {
                    *active.entry(a.to_string()).or_insert(0) += 1;
                }
            }
        }
        let mut updates: Vec<(String, f64)> = Vec::new();
        let ids: Vec<String> = self
            .servers
            .values()
            .filter(|s| s.metrics && !s.is_deleted() && self.resources.contains_key(&s.id))
            .map(|s| s.id.clone())
            .collect();
        for id in ids {
            let Some(s) = self.servers.get(&id) else { continue };
            let running = s.power_state == 1 && s.vm_state == "active";
            let vcpus = self.flavor(&s.flavor_id).map(|f| f.vcpus).unwrap_or(1).max(1);
            let ram = self.flavor(&s.flavor_id).map(|f| f.ram).unwrap_or(512);
            let app = s.app().map(String::from);
            let ports = s.ports.clone();
            let (util, net_bps) = if running {
                let n = app.as_ref().and_then(|a| active.get(a)).copied().unwrap_or(1);
                self.workload.server_load(app.as_deref(), &id, n, vcpus, t)
            } else {
                (0.0, 0.0)
            };
            let cpu = self.cpu_ns.entry(id.clone()).or_insert(0.0);
            *cpu += util * vcpus as f64 * g * 1e9;
            let cpu_total = *cpu;
            let res = self.resources.get(&id).cloned();
            if let Some(r) = &res {
                if let Some(m) = r.metrics.get("cpu") {
                    updates.push((m.clone(), cpu_total));
                }
                if let Some(m) = r.metrics.get("vcpus") {
                    updates.push((m.clone(), vcpus as f64));
                }
                if let Some(m) = r.metrics.get("memory") {
                    updates.push((m.clone(), ram as f64));
                }
                if let Some(m) = r.metrics.get("memory.usage") {
                    if running {
                        updates.push((m.clone(), ram as f64 * (0.25 + 0.5 * util)));
                    }
                }
            }
            let per_port = net_bps / ports.len().max(1) as f64;
            for pid in ports {
                let e = self.net_bytes.entry(pid.clone()).or_insert((0.0, 0.0));
                e.0 += per_port * g;
                e.1 += per_port * 0.6 * g;
                let (bin, bout) = *e;
                let rid = self.port_iface.get(&pid).and_then(|r| self.resources.get(r)).map(|r| r.metrics.clone());
                if let Some(ms) = rid {
                    if let Some(m) = ms.get("network.incoming.bytes") {
                        updates.push((m.clone(), bin));
                    }
                    if let Some(m) = ms.get("network.outgoing.bytes") {
                        updates.push((m.clone(), bout));
                    }
                }
            }
        }
        for (m, v) in updates {
            self.push_point(&m, t, v);
        }
    }

    /// Add a server that is ACTIVE at once (bulk seeding for scale runs).
    #[allow(clippy::too_many_arguments)]
    pub fn seed_server(
        &mut self,
        name: &str,
        project: &str,
        user: &str,
        flavor_id: &str,
        image_id: Option<&str>,
        network_id: Option<&str>,
        metadata: BTreeMap<String, String>,
        metrics: bool,
        now: Timestamp,
    ) -> SimResult<String> {
        let id = new_id();
        let mut ports = Vec::new();
        if let Some(n) = network_id {
            ports.push(self.allocate_port(n, project, &id, "nova", &[], now)?);
            if let Some(p) = ports.last().and_then(|p| self.ports.get_mut(p)) {
                p.status = "ACTIVE".into();
            }
        }
        let mut s = Server {
            scheduler_hints: serde_json::Map::new(),
            id: id.clone(),
            name: name.to_string(),
            project_id: project.to_string(),
            user_id: user.to_string(),
            flavor_id: flavor_id.to_string(),
            image_id: image_id.map(String::from),
            key_name: None,
            metadata,
            tags: vec![],
            security_groups: vec!["default".into()],
            availability_zone: "nova".into(),
            created: now,
            updated: now,
            launched_at: Some(now),
            terminated_at: None,
            vm_state: "active".into(),
            task_state: None,
            power_state: 1,
            fault: None,
            ports,
            user_data: None,
            locked: false,
            description: None,
            host: compute_host(&id),
            console: VecDeque::new(),
            boot_gen: 1,
            metrics,
            config_drive: false,
            volumes_attached: vec![],
            guest_fault: None,
            failing_actions: BTreeMap::new(),
            last_action: None,
        };
        let ip = s.ports.first().and_then(|p| self.ports.get(p)).map(|p| p.ip.clone()).unwrap_or_default();
        Self::boot_log(&mut s, now, &ip);
        Self::cloud_init_finish(&mut s, now);
        let host = s.host.clone();
        self.servers.insert(id.clone(), s);
        // Every server Nova knows was created by a request it recorded: a seeded
        // one carries its finished `create` action too (clients list it).
        self.record_action(&id, "create", &format!("req-{}", uuid::Uuid::new_v4()), user, now);
        Self::finish_actions(&mut self.instance_actions, &id, &host, now, true, None);
        if metrics {
            self.create_instance_resources(&id, now);
        }
        Ok(id)
    }
}
