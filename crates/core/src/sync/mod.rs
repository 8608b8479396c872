//! Connection sync with kernel IPVS peers (protocol version 1, `masq_wire::ipvs_sync`).
//!
//! [`daemon`]: the master and backup daemons the operator started and their options;
//! [`emit`]: when a master syncs a connection and the entry it sends.
pub mod daemon;
pub mod emit;

pub use daemon::{DaemonConfig, DaemonRequest, SyncDaemons, SyncRole};
pub use emit::SyncThreshold;
