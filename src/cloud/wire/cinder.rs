//! Cinder v3 volumes, snapshots, backups and limits.

use super::Link;
use crate::cloud::lenient;
use crate::domain::{self, Timestamp, VolumeAttachment};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WAttachment {
    #[serde(deserialize_with = "lenient::string")]
    pub server_id: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub attachment_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub device: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub host_name: Option<String>,
    #[serde(deserialize_with = "lenient::ts")]
    pub attached_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WVolume {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub status: String,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub size: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub availability_zone: Option<String>,
    /// `"true"`/`"false"` as a string.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub bootable: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub encrypted: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub multiattach: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub volume_type: Option<String>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub attachments: Vec<WAttachment>,
    #[serde(deserialize_with = "lenient::string_map")]
    pub metadata: BTreeMap<String, String>,
    #[serde(deserialize_with = "lenient::ts")]
    pub created_at: Option<Timestamp>,
    #[serde(deserialize_with = "lenient::ts")]
    pub updated_at: Option<Timestamp>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub snapshot_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub source_volid: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    #[serde(rename = "os-vol-tenant-attr:tenant_id", deserialize_with = "lenient::opt_string")]
    pub tenant_id: Option<String>,
}

impl WVolume {
    pub fn into_domain(self) -> domain::Volume {
        domain::Volume {
            id: self.id,
            name: self.name,
            status: self.status,
            size_gb: self.size.unwrap_or(0),
            availability_zone: self.availability_zone,
            bootable: self.bootable.unwrap_or(false),
            encrypted: self.encrypted.unwrap_or(false),
            volume_type: self.volume_type,
            attachments: self
                .attachments
                .into_iter()
                .map(|a| VolumeAttachment { server_id: a.server_id, device: a.device, attachment_id: a.attachment_id })
                .collect(),
            metadata: self.metadata,
            created_at: self.created_at,
            updated_at: self.updated_at,
            raw: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VolumesPage {
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub volumes: Vec<Value>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub volumes_links: Vec<Link>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub count: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WSnapshot {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub volume_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub status: String,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub size: Option<u64>,
    #[serde(rename = "os-extended-snapshot-attributes:progress", deserialize_with = "lenient::opt_string")]
    pub progress: Option<String>,
    #[serde(deserialize_with = "lenient::string_map")]
    pub metadata: BTreeMap<String, String>,
    #[serde(deserialize_with = "lenient::ts")]
    pub created_at: Option<Timestamp>,
}

impl WSnapshot {
    pub fn into_domain(self) -> domain::Snapshot {
        domain::Snapshot {
            id: self.id,
            name: self.name,
            volume_id: self.volume_id,
            status: self.status,
            size_gb: self.size.unwrap_or(0),
            progress: self.progress,
            metadata: self.metadata,
            created_at: self.created_at,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SnapshotsPage {
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub snapshots: Vec<WSnapshot>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub snapshots_links: Vec<Link>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WBackup {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub description: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub volume_id: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub snapshot_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub status: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub fail_reason: Option<String>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub size: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub object_count: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub container: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub availability_zone: Option<String>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub is_incremental: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub has_dependent_backups: Option<bool>,
    #[serde(deserialize_with = "lenient::string_map")]
    pub metadata: BTreeMap<String, String>,
    #[serde(deserialize_with = "lenient::ts")]
    pub created_at: Option<Timestamp>,
    #[serde(deserialize_with = "lenient::ts")]
    pub updated_at: Option<Timestamp>,
    #[serde(deserialize_with = "lenient::ts")]
    pub data_timestamp: Option<Timestamp>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub links: Vec<Link>,
}

impl WBackup {
    pub fn into_domain(self) -> domain::Backup {
        domain::Backup {
            id: self.id,
            name: self.name,
            description: self.description,
            volume_id: self.volume_id,
            snapshot_id: self.snapshot_id,
            status: self.status,
            fail_reason: self.fail_reason,
            size_gb: self.size.unwrap_or(0),
            is_incremental: self.is_incremental.unwrap_or(false),
            has_dependent_backups: self.has_dependent_backups.unwrap_or(false),
            container: self.container,
            availability_zone: self.availability_zone,
            object_count: self.object_count,
            metadata: self.metadata,
            created_at: self.created_at,
            updated_at: self.updated_at,
            data_timestamp: self.data_timestamp,
            raw: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BackupsPage {
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub backups: Vec<Value>,
    #[serde(deserialize_with = "lenient::vec_skip")]
    pub backups_links: Vec<Link>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub count: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BackupBody {
    pub backup: WBackup,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VolumeBody {
    pub volume: WVolume,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SnapshotBody {
    pub snapshot: WSnapshot,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WRestore {
    #[serde(deserialize_with = "lenient::string")]
    pub backup_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub volume_id: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub volume_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RestoreBody {
    pub restore: WRestore,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VolumeLimitsBody {
    pub limits: super::nova::WLimits,
}
