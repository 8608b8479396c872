//! Connection sync with kernel IPVS peers (protocol version 1, `masq_wire::ipvs_sync`).
//!
//! [`daemon`]: the master and backup daemons the operator started and their options;
//! [`emit`]: when a master syncs a connection and the entry it sends; [`outbox`]: the
//! master's queue from the packet workers to the sync thread; [`apply`]: what a backup
//! takes from an entry it receives; [`counters`]: what both did. The table's side of it
//! is the director's (`director/synced.rs`).
pub mod apply;
pub mod counters;
pub mod daemon;
pub mod emit;
pub mod outbox;

pub use counters::{Applied, EntryRefusal, SyncCounters};
pub use daemon::{DaemonConfig, DaemonRequest, SyncDaemons, SyncRole};
pub use emit::SyncThreshold;
pub use outbox::SyncOutbox;
