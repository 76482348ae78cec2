//! Cinder v3: volumes, snapshots, backups (full, incremental, forced), restore,
//! limits.

use super::compute::paged;
use super::error::{ApiError, ErrorKind, Result};
use super::session::{Req, Session};
use super::wire::cinder::*;
use crate::domain::json::json;
use crate::domain::json::Obj;
use crate::domain::{Backup, Snapshot, Volume};
use serde_json::Value;
use std::collections::BTreeMap;

pub struct VolumeService<'a>(pub &'a Session);

#[derive(Debug, Clone, Default)]
pub struct CreateBackup {
    pub volume_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub incremental: bool,
    /// Needed to back up an `in-use` volume.
    pub force: bool,
    pub snapshot_id: Option<String>,
    pub container: Option<String>,
    /// Needs MV 3.43.
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Restore {
    pub backup_id: String,
    pub volume_id: String,
    pub volume_name: Option<String>,
    pub request_id: Option<String>,
}

fn volume_from_raw(raw: &str) -> Option<(Volume, String)> {
    let w: WVolume = serde_json::from_slice(raw.as_bytes()).ok()?;
    if w.id.is_empty() {
        return None;
    }
    let mut v = w.into_domain();
    v.raw = Some(raw.into());
    let id = v.id.clone();
    Some((v, id))
}

fn backup_from_raw(raw: &str) -> Option<(Backup, String)> {
    let w: WBackup = serde_json::from_slice(raw.as_bytes()).ok()?;
    if w.id.is_empty() {
        return None;
    }
    let mut b = w.into_domain();
    b.raw = Some(raw.into());
    let id = b.id.clone();
    Some((b, id))
}

impl VolumeService<'_> {
    fn decode_err(&self, m: &str) -> ApiError {
        ApiError::new(ErrorKind::InvalidResponse, self.0.cloud_name(), "block-storage", m.to_string())
    }

    pub async fn list_volumes(&self) -> Result<Vec<Volume>> {
        paged(self.0, "block-storage", "/volumes/detail", &[], "volumes", None, None, volume_from_raw).await
    }

    /// Volumes whose metadata holds all the given items.
    pub async fn list_volumes_with_metadata(&self, meta: &BTreeMap<String, String>) -> Result<Vec<Volume>> {
        let q = vec![("metadata".to_string(), serde_json::to_string(meta).unwrap_or_default())];
        paged(self.0, "block-storage", "/volumes/detail", &q, "volumes", None, None, volume_from_raw).await
    }

    pub async fn get_volume(&self, id: &str) -> Result<Volume> {
        let (b, _): (VolumeBody, _) = self.0.json("block-storage", Req::get(format!("/volumes/{id}"))).await?;
        if b.volume.id.is_empty() {
            return Err(self.decode_err("volume without id"));
        }
        Ok(b.volume.into_domain())
    }

    pub async fn create_volume(&self, size_gb: u64, name: &str, metadata: &BTreeMap<String, String>) -> Result<Volume> {
        let body = json!({"volume": {"size": size_gb, "name": name, "metadata": metadata}});
        let (b, _): (VolumeBody, _) = self.0.json("block-storage", Req::post("/volumes", body)).await?;
        if b.volume.id.is_empty() {
            return Err(self.decode_err("volume create response without id"));
        }
        Ok(b.volume.into_domain())
    }

    /// A new volume filled from a backup (Cinder 3.47), with its own type and zone.
    pub async fn create_volume_from_backup(
        &self,
        backup_id: &str,
        size_gb: u64,
        name: &str,
        volume_type: Option<&str>,
        availability_zone: Option<&str>,
    ) -> Result<Volume> {
        let mut v = json!({"backup_id": backup_id, "size": size_gb, "name": name});
        if let Some(t) = volume_type {
            v.put("volume_type", json!(t));
        }
        if let Some(az) = availability_zone {
            v.put("availability_zone", json!(az));
        }
        let (b, _): (VolumeBody, _) = self.0.json("block-storage", Req::post("/volumes", json!({"volume": v}))).await?;
        if b.volume.id.is_empty() {
            return Err(self.decode_err("volume create response without id"));
        }
        Ok(b.volume.into_domain())
    }

    pub async fn delete_volume(&self, id: &str) -> Result<()> {
        self.0.request("block-storage", Req::delete(format!("/volumes/{id}"))).await?;
        Ok(())
    }

    pub async fn list_snapshots(&self) -> Result<Vec<Snapshot>> {
        paged(self.0, "block-storage", "/snapshots/detail", &[], "snapshots", None, None, |raw| {
            serde_json::from_slice::<WSnapshot>(raw.as_bytes()).ok().filter(|s| !s.id.is_empty()).map(|s| {
                let id = s.id.clone();
                (s.into_domain(), id)
            })
        })
        .await
    }

    pub async fn create_snapshot(
        &self,
        volume_id: &str,
        name: &str,
        force: bool,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Snapshot> {
        let body = json!({"snapshot": {"volume_id": volume_id, "name": name, "force": force, "metadata": metadata}});
        let (b, _): (SnapshotBody, _) = self.0.json("block-storage", Req::post("/snapshots", body)).await?;
        Ok(b.snapshot.into_domain())
    }

    pub async fn delete_snapshot(&self, id: &str) -> Result<()> {
        self.0.request("block-storage", Req::delete(format!("/snapshots/{id}"))).await?;
        Ok(())
    }

    pub async fn list_backups(&self) -> Result<Vec<Backup>> {
        paged(self.0, "block-storage", "/backups/detail", &[], "backups", None, None, backup_from_raw).await
    }

    pub async fn get_backup(&self, id: &str) -> Result<Backup> {
        let (b, _): (BackupBody, _) = self.0.json("block-storage", Req::get(format!("/backups/{id}"))).await?;
        if b.backup.id.is_empty() {
            return Err(self.decode_err("backup without id"));
        }
        Ok(b.backup.into_domain())
    }

    /// `POST /backups` → the new backup's id (status `creating`).
    pub async fn create_backup(&self, c: &CreateBackup) -> Result<(String, Option<String>)> {
        let mut b = json!({"volume_id": c.volume_id, "incremental": c.incremental, "force": c.force});
        if let Some(n) = &c.name {
            b.put("name", json!(n));
        }
        if let Some(d) = &c.description {
            b.put("description", json!(d));
        }
        if let Some(s) = &c.snapshot_id {
            b.put("snapshot_id", json!(s));
        }
        if let Some(cn) = &c.container {
            b.put("container", json!(cn));
        }
        if !c.metadata.is_empty() {
            b.put("metadata", json!(c.metadata));
        }
        let (body, resp): (BackupBody, _) =
            self.0.json("block-storage", Req::post("/backups", json!({"backup": b}))).await?;
        if body.backup.id.is_empty() {
            return Err(self.decode_err("backup create response without id"));
        }
        Ok((body.backup.id, resp.request_id))
    }

    /// Restore to a new volume (`volume_id = None`, optionally named) or onto an
    /// existing available volume.
    pub async fn restore_backup(
        &self,
        backup_id: &str,
        volume_id: Option<&str>,
        name: Option<&str>,
    ) -> Result<Restore> {
        let mut r = serde_json::Map::new();
        if let Some(v) = volume_id {
            r.insert("volume_id".into(), json!(v));
        }
        if let Some(n) = name {
            r.insert("name".into(), json!(n));
        }
        let (b, resp): (RestoreBody, _) = self
            .0
            .json(
                "block-storage",
                Req::post(format!("/backups/{backup_id}/restore"), json!({"restore": Value::Object(r)})),
            )
            .await?;
        Ok(Restore {
            backup_id: b.restore.backup_id,
            volume_id: b.restore.volume_id,
            volume_name: b.restore.volume_name,
            request_id: resp.request_id,
        })
    }

    pub async fn delete_backup(&self, id: &str) -> Result<Option<String>> {
        Ok(self.0.request("block-storage", Req::delete(format!("/backups/{id}"))).await?.request_id)
    }

    pub async fn limits(&self) -> Result<BTreeMap<String, i64>> {
        let (b, _): (VolumeLimitsBody, _) = self.0.json("block-storage", Req::get("/limits")).await?;
        Ok(b.limits.absolute.iter().filter_map(|(k, v)| v.as_i64().map(|i| (k.clone(), i))).collect())
    }
}
