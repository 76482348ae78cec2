//! World files (`assets/demo/world.toml` and the built-in default): identities,
//! flavors, images, networks, volumes, servers and application traffic, loaded into
//! a fresh `World`. Parsing is strict: an unknown key is an error with its line.

use super::netmodel::{parse_cidr, Pool, Subnet};
use super::workload::{AppTraffic, Profile, Workload};
use super::world::*;
use crate::domain::Timestamp;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The world used when none is given: an `admin` and a `demo` project, four
/// flavors, three images, a shared private network and an external one.
pub const DEFAULT_WORLD: &str = include_str!("../../assets/sim/default-world.toml");
/// The world of `stackpilot --demo`.
pub const DEMO_WORLD: &str = include_str!("../../assets/demo/world.toml");
/// The demo's second cloud (region RegionTwo, its own Keystone).
pub const DEMO_EAST_WORLD: &str = include_str!("../../assets/demo/world-east.toml");

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct WorldFile {
    settings: Option<Settings>,
    projects: Vec<ProjectDef>,
    users: Vec<UserDef>,
    application_credentials: Vec<AppCredDef>,
    flavors: Vec<FlavorDef>,
    images: Vec<ImageDef>,
    networks: Vec<NetworkDef>,
    keypairs: Vec<KeypairDef>,
    default_quota: Option<QuotaDef>,
    quotas: Vec<QuotaDef>,
    apps: Vec<AppDef>,
    incidents: Vec<super::workload::Incident>,
    servers: Vec<ServerDef>,
    volumes: Vec<VolumeDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectDef {
    name: String,
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserDef {
    name: String,
    id: Option<String>,
    password: String,
    /// project name → role.
    roles: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppCredDef {
    name: String,
    id: String,
    secret: String,
    user: String,
    project: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlavorDef {
    id: String,
    name: String,
    vcpus: u32,
    ram: u64,
    disk: u64,
    #[serde(default)]
    ephemeral: u64,
    #[serde(default)]
    swap: u64,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    extra_specs: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageDef {
    name: String,
    id: Option<String>,
    #[serde(default = "default_size")]
    size: u64,
    #[serde(default)]
    min_disk: u64,
    #[serde(default)]
    min_ram: u64,
    #[serde(default = "default_format")]
    disk_format: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

fn default_size() -> u64 {
    20_000_000
}
fn default_format() -> String {
    "qcow2".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkDef {
    name: String,
    /// A /24 written as `10.0.0.0/24`.
    cidr: String,
    #[serde(default)]
    shared: bool,
    #[serde(default)]
    external: bool,
    #[serde(default)]
    project: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeypairDef {
    name: String,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct QuotaDef {
    project: Option<String>,
    instances: Option<i64>,
    cores: Option<i64>,
    ram: Option<i64>,
    volumes: Option<i64>,
    gigabytes: Option<i64>,
    snapshots: Option<i64>,
    backups: Option<i64>,
    backup_gigabytes: Option<i64>,
    metadata_items: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppDef {
    name: String,
    profile: Profile,
    base_load: f64,
    #[serde(default = "default_bpc")]
    bytes_per_core: f64,
}

fn default_bpc() -> f64 {
    250_000.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerDef {
    name: String,
    #[serde(default = "one")]
    count: u32,
    flavor: String,
    image: String,
    network: String,
    project: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default = "yes")]
    metrics: bool,
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VolumeDef {
    name: String,
    size: u64,
    project: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    /// Name of a server (from `servers`) to attach to.
    #[serde(default)]
    attach_to: Option<String>,
}

fn stable(kind: &str, name: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("stackpilot-sim/{kind}/{name}").as_bytes())
        .simple()
        .to_string()
}

fn stable_uuid(kind: &str, name: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("stackpilot-sim/{kind}/{name}").as_bytes()).to_string()
}

/// What is wrong with a world file, and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{place}: {message}")]
pub struct WorldFileError {
    /// The file, with line and column when known.
    pub place: String,
    pub message: String,
}

impl WorldFileError {
    fn at(file: &str, message: String) -> WorldFileError {
        WorldFileError { place: file.to_string(), message }
    }
}

/// Build a world from TOML text. `source` names the file in errors.
pub fn load(text: &str, source: &str, now: Timestamp) -> Result<World, WorldFileError> {
    let f: WorldFile = toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map_or((1, 1), |s| crate::config::line_col(text, s.start));
        WorldFileError { place: format!("{source}:{line}:{col}"), message: e.message().to_string() }
    })?;
    let mut w = World { settings: f.settings.unwrap_or_default(), ..Default::default() };
    w.domains.push(Domain { id: "default".into(), name: "Default".into() });
    for p in &f.projects {
        w.projects.push(Project {
            id: p.id.clone().unwrap_or_else(|| stable("project", &p.name)),
            name: p.name.clone(),
            domain_id: "default".into(),
        });
    }
    let projects = w.projects.clone();
    let pid = |name: &str| -> Result<String, WorldFileError> {
        projects
            .iter()
            .find(|p| p.name == name || p.id == name)
            .map(|p| p.id.clone())
            .ok_or_else(|| WorldFileError::at(source, format!("unknown project `{name}`")))
    };
    let mut users = Vec::new();
    for u in &f.users {
        let mut roles = Vec::new();
        for (p, r) in &u.roles {
            roles.push((pid(p)?, r.clone()));
        }
        users.push(User {
            id: u.id.clone().unwrap_or_else(|| stable("user", &u.name)),
            name: u.name.clone(),
            domain_id: "default".into(),
            password: u.password.clone(),
            roles,
        });
    }
    let mut sgs = Vec::new();
    for p in &w.projects {
        sgs.push(SecurityGroup {
            id: stable_uuid("sg", &p.name),
            name: "default".into(),
            project_id: p.id.clone(),
            description: "Default security group".into(),
            created_at: now,
            updated_at: now,
            revision: 1,
        });
    }
    let mut networks = Vec::new();
    let mut subnets = Vec::new();
    for n in &f.networks {
        let Some((net, len)) = parse_cidr(&n.cidr).filter(|(_, l)| *l <= 30) else {
            return Err(WorldFileError::at(source, format!("network `{}`: `{}` is not an IPv4 CIDR", n.name, n.cidr)));
        };
        let project = match &n.project {
            Some(p) => pid(p)?,
            None => w.projects.first().map(|p| p.id.clone()).unwrap_or_default(),
        };
        let ip = |k: u32| std::net::Ipv4Addr::from(net + k).to_string();
        let last = ((1u64 << (32 - len)) - 2) as u32;
        subnets.push(Subnet {
            id: stable_uuid("subnet", &n.name),
            name: format!("{}-subnet", n.name),
            network_id: stable_uuid("net", &n.name),
            project_id: project.clone(),
            description: String::new(),
            cidr: format!("{}/{len}", std::net::Ipv4Addr::from(net)),
            gateway_ip: Some(ip(1)),
            allocation_pools: vec![Pool { start: ip(2), end: ip(last) }],
            enable_dhcp: true,
            dns_nameservers: vec![],
            next_host: 1,
            reserved: Default::default(),
            created_at: now,
            updated_at: now,
            revision: 0,
        });
        networks.push(Network {
            id: stable_uuid("net", &n.name),
            name: n.name.clone(),
            project_id: project,
            shared: n.shared,
            external: n.external,
            mtu: 1450,
            created_at: now,
            updated_at: Some(now),
            description: String::new(),
            network_type: "flat".into(),
            physical_network: Some(if n.external { "public" } else { "physnet1" }.into()),
            segmentation_id: None,
            admin_state_up: true,
            revision: 1,
        });
    }
    let mut app_creds = Vec::new();
    for a in &f.application_credentials {
        let uid = users
            .iter()
            .find(|u| u.name == a.user)
            .map(|u| u.id.clone())
            .ok_or_else(|| WorldFileError::at(source, format!("unknown user `{}`", a.user)))?;
        let project_id = pid(&a.project)?;
        let direct: Vec<String> = users
            .iter()
            .filter(|u| u.id == uid)
            .flat_map(|u| u.roles.iter().filter(|(p, _)| p == &project_id).map(|(_, r)| r.clone()))
            .collect();
        app_creds.push(AppCred {
            id: a.id.clone(),
            name: a.name.clone(),
            secret: a.secret.clone(),
            user_id: uid,
            project_id,
            roles: super::world::effective_roles(&direct),
            description: None,
            unrestricted: None,
        });
    }
    let keypairs = f
        .keypairs
        .iter()
        .enumerate()
        .map(|(n, k)| {
            let public_key = super::sshkey::seeded_public_key(&k.name);
            Keypair {
                name: k.name.clone(),
                fingerprint: super::sshkey::fingerprint(&public_key).unwrap_or_default(),
                public_key,
                user_id: k
                    .user
                    .as_ref()
                    .and_then(|u| users.iter().find(|x| &x.name == u))
                    .map(|u| u.id.clone())
                    .unwrap_or_default(),
                created_at: now,
                id: n as u64 + 1,
                key_type: "ssh".into(),
            }
        })
        .collect();
    let owner = w.projects.first().map(|p| p.id.clone()).unwrap_or_default();
    w.images = f
        .images
        .iter()
        .map(|i| Image {
            id: i.id.clone().unwrap_or_else(|| stable_uuid("image", &i.name)),
            name: i.name.clone(),
            status: "active".into(),
            visibility: "public".into(),
            size: i.size,
            min_disk: i.min_disk,
            min_ram: i.min_ram,
            disk_format: i.disk_format.clone(),
            container_format: "bare".into(),
            owner: owner.clone(),
            created_at: now,
            updated_at: now,
            tags: i.tags.clone(),
            properties: i.properties.clone(),
            checksum: None,
            os_hash_value: None,
            protected: false,
        })
        .collect();
    w.flavors = f
        .flavors
        .iter()
        .map(|x| Flavor {
            id: x.id.clone(),
            name: x.name.clone(),
            vcpus: x.vcpus,
            ram: x.ram,
            disk: x.disk,
            ephemeral: x.ephemeral,
            swap: x.swap,
            is_public: true,
            description: x.description.clone(),
            extra_specs: x.extra_specs.clone(),
            deleted: false,
        })
        .collect();
    w.users = users;
    for g in &sgs {
        w.add_default_rules(&g.id, &g.project_id, true, now);
    }
    w.security_groups = sgs;
    w.networks = networks;
    w.subnets = subnets;
    w.app_creds = app_creds;
    w.keypairs = keypairs;
    let apply = |q: &mut Quota, d: &QuotaDef| {
        for (k, v) in [
            ("instances", d.instances),
            ("cores", d.cores),
            ("ram", d.ram),
            ("volumes", d.volumes),
            ("gigabytes", d.gigabytes),
            ("snapshots", d.snapshots),
            ("backups", d.backups),
            ("backup_gigabytes", d.backup_gigabytes),
            ("metadata_items", d.metadata_items),
        ] {
            if let Some(v) = v {
                q.set(k, v);
            }
        }
    };
    if let Some(d) = &f.default_quota {
        let mut q = Quota::default();
        apply(&mut q, d);
        w.default_quota = q;
    } else {
        w.default_quota = Quota::default();
    }
    for d in &f.quotas {
        let p = pid(d.project.as_deref().unwrap_or(""))?;
        let mut q = w.default_quota.clone();
        apply(&mut q, d);
        w.quotas.insert(p, q);
    }
    w.ensure_default_archive_policies();
    w.workload = Workload {
        incidents: f.incidents.iter().map(|i| super::workload::Incident { fired: None, ..i.clone() }).collect(),
        epoch: now.timestamp(),
        apps: f
            .apps
            .iter()
            .map(|a| {
                (
                    a.name.clone(),
                    AppTraffic {
                        name: a.name.clone(),
                        profile: a.profile.clone(),
                        base_load: a.base_load,
                        bytes_per_core: a.bytes_per_core,
                        override_factor: None,
                    },
                )
            })
            .collect(),
    };
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    for sd in &f.servers {
        let p = pid(&sd.project)?;
        let user =
            w.users.iter().find(|u| u.roles.iter().any(|(rp, _)| rp == &p)).map(|u| u.id.clone()).unwrap_or_default();
        let fid = w.flavor(&sd.flavor).map(|x| x.id.clone()).ok_or_else(|| {
            WorldFileError::at(source, format!("server `{}`: unknown flavor `{}`", sd.name, sd.flavor))
        })?;
        let img =
            w.images.iter().find(|i| i.name == sd.image).map(|i| i.id.clone()).ok_or_else(|| {
                WorldFileError::at(source, format!("server `{}`: unknown image `{}`", sd.name, sd.image))
            })?;
        let net = w.networks.iter().find(|n| n.name == sd.network).map(|n| n.id.clone()).ok_or_else(|| {
            WorldFileError::at(source, format!("server `{}`: unknown network `{}`", sd.name, sd.network))
        })?;
        for i in 0..sd.count {
            let name = if sd.count > 1 { format!("{}-{}", sd.name, i + 1) } else { sd.name.clone() };
            let id = w
                .seed_server(&name, &p, &user, &fid, Some(&img), Some(&net), sd.metadata.clone(), sd.metrics, now)
                .map_err(|e| WorldFileError::at(source, format!("server `{name}`: {}", e.message)))?;
            by_name.insert(name, id);
        }
    }
    for v in &f.volumes {
        let p = pid(&v.project)?;
        let user =
            w.users.iter().find(|u| u.roles.iter().any(|(rp, _)| rp == &p)).map(|u| u.id.clone()).unwrap_or_default();
        let id = stable_uuid("volume", &v.name);
        let mut vol = Volume {
            id: id.clone(),
            name: Some(v.name.clone()),
            description: None,
            project_id: p,
            user_id: user,
            size: v.size,
            status: "available".into(),
            availability_zone: "nova".into(),
            bootable: false,
            volume_type: "__DEFAULT__".into(),
            attachments: vec![],
            metadata: v.metadata.clone(),
            created_at: now,
            updated_at: Some(now),
            snapshot_id: None,
            source_volid: None,
            resting_status: "available".into(),
        };
        if let Some(sname) = &v.attach_to {
            let sid = by_name
                .get(sname)
                .ok_or_else(|| WorldFileError::at(source, format!("volume `{}`: unknown server `{sname}`", v.name)))?;
            vol.status = "in-use".into();
            vol.resting_status = "in-use".into();
            vol.attachments.push(VolAttachment {
                server_id: sid.clone(),
                attachment_id: new_id(),
                device: "/dev/vdb".into(),
                attached_at: now,
            });
            if let Some(s) = w.servers.get_mut(sid) {
                s.volumes_attached.push(id.clone());
            }
        }
        w.volumes.insert(id, vol);
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_worlds_load() {
        let now = chrono::Utc::now();
        let w = load(DEFAULT_WORLD, "default", now).unwrap();
        assert!(w.users.iter().any(|u| u.name == "admin"));
        assert!(w.flavor("m1.small").is_some());
        let d = load(DEMO_WORLD, "demo", now).unwrap();
        assert!(!d.workload.apps.is_empty());
        assert!(!d.servers.is_empty());
    }

    #[test]
    fn unknown_keys_are_reported_with_position() {
        let e = load(
            "[[flavors]]\nid = \"1\"\nname = \"x\"\nvcpus = 1\nram = 1\ndisk = 1\ncolour = \"red\"\n",
            "w.toml",
            chrono::Utc::now(),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("w.toml:7:1: unknown field `colour`"), "{e}");
    }
}
