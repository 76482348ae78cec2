//! Inventory: every observation of the clouds. Pollers keep a snapshot of each
//! cloud fresh (one task per cloud and resource kind, each with its own interval,
//! skip-if-busy, backoff and a timeout; servers refreshed incrementally with
//! `changes-since` plus a periodic full resync), metrics go into bounded ring
//! buffers, observers run readiness probes and Prometheus queries, and the hub
//! publishes an `Arc<Snapshot>` on a `watch` channel with the alerts the observed
//! state raises. Every task is known to `Liveness`. Nothing here waits on the
//! console; the console never waits on the network.

pub mod alerts;
pub mod hub;
pub mod liveness;
pub mod poll;
pub mod probes;
pub mod prometheus;
pub mod snapshot;

pub use hub::{Inventory, InventoryCommand, InventoryConfig, InventoryLink};
pub use snapshot::{AppSummary, CloudSnapshot, Kind, PollState, ServerSeries, Snapshot};
