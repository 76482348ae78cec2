//! Resolving a policy's names against its cloud (image, flavor, networks, key pair,
//! security groups), with errors that say which field and what exists instead, and
//! the launch spec whose hash identifies a revision.

use super::model::{locate, Policy, PolicyError};
use crate::domain::{Flavor, Image, Network};
use serde::Serialize;

/// What a cloud offers, for resolving names.
#[derive(Debug, Clone, Default)]
pub struct CloudCatalog {
    pub images: Vec<Image>,
    pub flavors: Vec<Flavor>,
    pub networks: Vec<Network>,
    pub keypairs: Vec<String>,
    pub security_groups: Vec<String>,
}

/// The launch spec with every name resolved to an id (what a revision pins).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ResolvedSpec {
    pub image_id: String,
    pub image_name: String,
    pub flavor_id: String,
    pub flavor_name: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub network_ids: Vec<String>,
    pub key_name: Option<String>,
    pub security_groups: Vec<String>,
    pub user_data: Option<String>,
    pub metadata: std::collections::BTreeMap<String, String>,
    pub availability_zones: Vec<String>,
}

impl ResolvedSpec {
    /// sha256 of the canonical JSON (keys sorted, names excluded: ids are what matter).
    pub fn hash(&self) -> String {
        use sha2::Digest;
        let v = crate::domain::json::json!({
            "image": self.image_id, "flavor": self.flavor_id, "networks": self.network_ids,
            "key_name": self.key_name, "security_groups": self.security_groups,
            "user_data": self.user_data, "metadata": self.metadata, "availability_zones": self.availability_zones,
        });
        let canonical = serde_json::to_string(&v).unwrap_or_default();
        sha2::Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn some_names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let mut v: Vec<&str> = it.collect();
    v.sort();
    v.dedup();
    let more = v.len().saturating_sub(12);
    v.truncate(12);
    let mut s = if v.is_empty() { "none".to_string() } else { v.join(", ") };
    if more > 0 {
        s.push_str(&format!(" and {more} more"));
    }
    s
}

/// Resolve a policy on a cloud. `text` (the policy file) gives error positions.
pub fn resolve(p: &Policy, cat: &CloudCatalog, text: Option<&str>) -> Result<ResolvedSpec, Vec<PolicyError>> {
    let d = &p.spec.deploy;
    let cloud = p.cloud();
    let mut errs = Vec::new();
    let mut err = |field: &str, message: String| {
        let (line, col) = text.and_then(|t| locate(t, field)).map_or((None, None), |(l, c)| (Some(l), Some(c)));
        errs.push(PolicyError { file: p.file.clone(), line, col, field: Some(field.to_string()), message });
    };
    let active: Vec<&Image> = cat.images.iter().filter(|i| i.status == "active").collect();
    let image = match active.iter().find(|i| i.id == d.image) {
        Some(i) => Some(*i),
        None => {
            let named: Vec<&&Image> = active.iter().filter(|i| i.name.as_deref() == Some(d.image.as_str())).collect();
            match named.as_slice() {
                [one] => Some(**one),
                [] => {
                    err(
                        "deploy.image",
                        format!(
                            "no active image `{}` on cloud {cloud}; images: {}",
                            d.image,
                            some_names(active.iter().filter_map(|i| i.name.as_deref()))
                        ),
                    );
                    None
                }
                more => {
                    let n = more.len();
                    err(
                        "deploy.image",
                        format!(
                            "{n} images are named `{}` on cloud {cloud}; use the id of one: {}",
                            d.image,
                            named.iter().map(|i| i.id.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    );
                    None
                }
            }
        }
    };
    let flavor =
        cat.flavors.iter().find(|f| f.id == d.flavor).or_else(|| cat.flavors.iter().find(|f| f.name == d.flavor));
    if flavor.is_none() {
        err(
            "deploy.flavor",
            format!(
                "no flavor `{}` on cloud {cloud}; flavors: {}",
                d.flavor,
                some_names(cat.flavors.iter().map(|f| f.name.as_str()))
            ),
        );
    }
    let mut network_ids = Vec::new();
    for n in &d.networks {
        match cat.networks.iter().find(|x| &x.id == n).or_else(|| cat.networks.iter().find(|x| &x.name == n)) {
            Some(x) => network_ids.push(x.id.clone()),
            None => err(
                "deploy.networks",
                format!(
                    "no network `{n}` on cloud {cloud}; networks: {}",
                    some_names(cat.networks.iter().map(|x| x.name.as_str()))
                ),
            ),
        }
    }
    if let Some(k) = &d.key_name {
        if !cat.keypairs.contains(k) {
            err(
                "deploy.key_name",
                format!(
                    "no key pair `{k}` on cloud {cloud}; key pairs: {}",
                    some_names(cat.keypairs.iter().map(String::as_str))
                ),
            );
        }
    }
    for g in &d.security_groups {
        if !cat.security_groups.contains(g) {
            err(
                "deploy.security_groups",
                format!(
                    "no security group `{g}` on cloud {cloud}; groups: {}",
                    some_names(cat.security_groups.iter().map(String::as_str))
                ),
            );
        }
    }
    if let (Some(i), Some(f)) = (image, flavor) {
        if let Some(min) = i.min_disk {
            if min > f.disk_gb && f.disk_gb > 0 {
                err(
                    "deploy.flavor",
                    format!(
                        "flavor `{}` has a {} GB disk but image `{}` needs {min} GB",
                        f.name,
                        f.disk_gb,
                        i.name.as_deref().unwrap_or(&i.id)
                    ),
                );
            }
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let (Some(image), Some(flavor)) = (image, flavor) else { return Err(errs) };
    Ok(ResolvedSpec {
        image_id: image.id.clone(),
        image_name: image.name.clone().unwrap_or_default(),
        flavor_id: flavor.id.clone(),
        flavor_name: flavor.name.clone(),
        vcpus: flavor.vcpus,
        ram_mb: flavor.ram_mb,
        network_ids,
        key_name: d.key_name.clone(),
        security_groups: d.security_groups.clone(),
        user_data: p.spec.effective_user_data(),
        metadata: d.metadata.clone(),
        availability_zones: d.availability_zones.clone(),
    })
}
