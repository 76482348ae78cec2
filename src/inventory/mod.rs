//! Inventory: pollers that keep an observed snapshot of each cloud fresh (one task
//! per cloud and resource kind, each with its own interval, skip-if-busy,
//! exponential backoff and a timeout; servers refreshed incrementally with
//! `changes-since` plus a periodic full resync), metric collection into bounded ring
//! buffers, and the `Arc<Snapshot>` published on a `watch` channel. Nothing here
//! waits on the console; the console never waits on the network.

pub mod hub;
pub mod snapshot;

pub use hub::{Inventory, InventoryCommand, InventoryConfig};
pub use snapshot::{AppSummary, CloudSnapshot, Kind, PollState, ServerSeries, Snapshot};
