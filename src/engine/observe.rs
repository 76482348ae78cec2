//! Observe: everything one tick of one cloud reads, read once, up front — the
//! inventory's snapshot of the cloud (servers, catalog, metrics, probe results,
//! Prometheus answers) and the store (open and failed intents, autoscaler
//! histories, revisions). Whatever could not be read becomes a `Hold`: the tick
//! still decides (so the console shows what the engine sees) but does not act.

use super::plan::EngineState;
use super::runner::EngineConfig;
use super::scaling::ScaleHistory;
use crate::domain::Timestamp;
use crate::inventory::{CloudSnapshot, Kind, Snapshot};
use crate::store::{Intent, Revision, Store};
use std::collections::BTreeMap;

/// Why a cloud's tick does not act.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// The store could not be read or written.
    Store(String),
    /// No successful server listing yet.
    ServersUnread,
    /// The last successful server listing is this many seconds old.
    ServersStale(i64),
    /// Server records that did not decode (a server must never look deleted).
    Undecodable(Vec<String>),
    /// Catalog kinds never read successfully (names cannot be resolved).
    CatalogUnread(Vec<Kind>),
    /// The cloud is not in the inventory.
    NoInventory,
}

impl Hold {
    pub fn describe(&self, cloud: &str) -> String {
        match self {
            Hold::Store(e) => e.clone(),
            Hold::ServersUnread => format!("waiting for the first server listing of {cloud}"),
            Hold::ServersStale(a) => format!("the server data of {cloud} is {a}s old"),
            Hold::Undecodable(v) => {
                format!("{} server record(s) of {cloud} do not decode: {}", v.len(), v.join("; "))
            }
            Hold::CatalogUnread(k) => format!(
                "the {} of {cloud} could not be read yet: names cannot be resolved",
                k.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            ),
            Hold::NoInventory => format!("{cloud} is not observed"),
        }
    }
    /// A kind of hold that makes `/healthz` unhealthy (the store, undecodable
    /// data, a catalog that cannot be read, data too old).
    pub fn unhealthy(&self) -> bool {
        !matches!(self, Hold::ServersUnread)
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Hold::Store(_) => "store-unavailable",
            Hold::ServersUnread | Hold::ServersStale(_) | Hold::NoInventory => "data-stale",
            Hold::Undecodable(_) => "undecodable",
            Hold::CatalogUnread(_) => "catalog-unavailable",
        }
    }
}

/// What the store holds for one cloud's tick.
#[derive(Debug, Clone, Default)]
pub struct StoreView {
    pub open_intents: Vec<Intent>,
    /// Recently failed intents (their servers are orphans).
    pub failed_intents: Vec<Intent>,
    /// Autoscaler history per policy id.
    pub histories: BTreeMap<String, ScaleHistory>,
    /// The autoscaler's last message per policy id.
    pub messages: BTreeMap<String, String>,
    /// Revisions per policy id.
    pub revisions: BTreeMap<String, Vec<Revision>>,
    /// Operators' rollout commands waiting for this engine, per policy id.
    pub rollout_commands: BTreeMap<String, super::rollout::Command>,
}

/// One cloud as a tick sees it.
#[derive(Debug, Clone)]
pub struct Observation {
    pub now: Timestamp,
    pub cloud: CloudSnapshot,
    /// `None` when the store could not be read (then `holds` says why).
    pub store: Option<StoreView>,
    pub holds: Vec<Hold>,
}

impl Observation {
    pub fn acting_allowed(&self) -> bool {
        self.holds.is_empty() && self.store.is_some()
    }
}

/// Read the store for the policies of a cloud.
fn read_store(
    store: &Store,
    cloud: &str,
    pids: &[String],
    cfg: &EngineConfig,
    now: Timestamp,
) -> Result<StoreView, crate::store::StoreError> {
    let mut v = StoreView {
        open_intents: store.open_intents(cloud)?,
        failed_intents: store.failed_intents(cloud, &(now - cfg.plan.orphan_grace - cfg.plan.orphan_grace))?,
        ..Default::default()
    };
    for pid in pids {
        if let Some(h) = store.control_as::<ScaleHistory>(&format!("scaling:{pid}"))? {
            v.histories.insert(pid.clone(), h);
        }
        if let Some(m) = store.control_as::<String>(&format!("scaling:{pid}:message"))? {
            v.messages.insert(pid.clone(), m);
        }
        v.revisions.insert(pid.clone(), store.revisions(pid)?);
        if let Some(c) = store.control_as::<super::rollout::Command>(&super::rollout::command_key(pid))? {
            v.rollout_commands.insert(pid.clone(), c);
        }
    }
    Ok(v)
}

/// The catalog kinds a set of policies resolves names against.
pub fn catalog_needs<'a>(policies: impl Iterator<Item = &'a crate::policy::Policy>) -> Vec<Kind> {
    let mut v = vec![Kind::Flavors, Kind::Images, Kind::Networks];
    for p in policies {
        if p.spec.deploy.key_name.is_some() && !v.contains(&Kind::Keypairs) {
            v.push(Kind::Keypairs);
        }
        if !p.spec.deploy.security_groups.is_empty() && !v.contains(&Kind::SecurityGroups) {
            v.push(Kind::SecurityGroups);
        }
    }
    v
}

/// Observe one cloud for a tick; `needs` are the catalog kinds its policies use.
#[allow(clippy::too_many_arguments)]
pub fn observe(
    cfg: &EngineConfig,
    snap: &Snapshot,
    cloud: &str,
    store: &Store,
    state: Option<&EngineState>,
    pids: &[String],
    needs: &[Kind],
    now: Timestamp,
) -> Observation {
    let mut holds = Vec::new();
    let cs = match snap.cloud(cloud) {
        Some(c) => c.clone(),
        None => {
            holds.push(Hold::NoInventory);
            CloudSnapshot::empty(cloud, crate::domain::CloudScope::new(cloud))
        }
    };
    let poll = cs.servers_poll();
    match poll.last_ok.map(|t| (now - t).num_seconds().max(0)) {
        None if !holds.contains(&Hold::NoInventory) => holds.push(Hold::ServersUnread),
        Some(age) if age as u64 > cfg.max_data_age.as_secs() => holds.push(Hold::ServersStale(age)),
        _ => {}
    }
    if !poll.undecodable.is_empty() {
        holds.push(Hold::Undecodable(poll.undecodable.clone()));
    }
    let unread: Vec<Kind> = cs.catalog_unread().into_iter().filter(|k| needs.contains(k)).collect();
    if !unread.is_empty() && poll.last_ok.is_some() {
        holds.push(Hold::CatalogUnread(unread));
    }
    if state.is_none() {
        holds.push(Hold::Store("the engine state of this cloud could not be read from the store".into()));
    }
    let store = match read_store(store, cloud, pids, cfg, now) {
        Ok(v) => Some(v),
        Err(e) => {
            holds.push(Hold::Store(e.to_string()));
            None
        }
    };
    Observation { now, cloud: cs, store, holds }
}
