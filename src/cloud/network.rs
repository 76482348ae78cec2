//! Neutron v2.0: networks, ports, floating IPs.

use super::compute::paged;
use super::error::Result;
use super::session::{Req, Session};
use super::wire::neutron::{WFloatingIp, WNetwork, WPort};
use crate::domain::json::Obj;
use crate::domain::{FloatingIp, Network, Port};

pub struct NetworkService<'a>(pub &'a Session);

impl NetworkService<'_> {
    pub async fn list_networks(&self) -> Result<Vec<Network>> {
        paged(self.0, "network", "/networks", &[], "networks", None, None, |raw| {
            serde_json::from_slice::<WNetwork>(raw.as_bytes()).ok().filter(|n| !n.id.is_empty()).map(|n| {
                let id = n.id.clone();
                (n.into_domain(), id)
            })
        })
        .await
    }

    /// Ports, optionally of one device (server) or carrying all the given tags.
    pub async fn list_ports(&self, device_id: Option<&str>, tags: &[String]) -> Result<Vec<Port>> {
        let mut q = Vec::new();
        if let Some(d) = device_id {
            q.push(("device_id".to_string(), d.to_string()));
        }
        if !tags.is_empty() {
            q.push(("tags".to_string(), tags.join(",")));
        }
        paged(self.0, "network", "/ports", &q, "ports", None, None, |raw| {
            serde_json::from_slice::<WPort>(raw.as_bytes()).ok().filter(|p| !p.id.is_empty()).map(|p| {
                let id = p.id.clone();
                (p.into_domain(), id)
            })
        })
        .await
    }

    pub async fn delete_port(&self, id: &str) -> Result<()> {
        self.0.request("network", Req::delete(format!("/ports/{id}"))).await?;
        Ok(())
    }

    /// Names of the project's security groups.
    pub async fn list_security_groups(&self) -> Result<Vec<String>> {
        let (v, _): (serde_json::Value, _) = self.0.json("network", Req::get("/security-groups")).await?;
        let mut names: Vec<String> = v
            .at("security_groups")
            .as_array()
            .map(|a| a.iter().filter_map(|g| g["name"].as_str().map(String::from)).collect())
            .unwrap_or_default();
        names.sort();
        names.dedup();
        Ok(names)
    }

    pub async fn list_floating_ips(&self) -> Result<Vec<FloatingIp>> {
        paged(self.0, "network", "/floatingips", &[], "floatingips", None, None, |raw| {
            serde_json::from_slice::<WFloatingIp>(raw.as_bytes()).ok().filter(|f| !f.id.is_empty()).map(|f| {
                let id = f.id.clone();
                (f.into_domain(), id)
            })
        })
        .await
    }
}
