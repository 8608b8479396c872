//! Connection sync with kernel IPVS peers (protocol version 1, `masq_wire::ipvs_sync`).
//!
//! [`daemon`]: the master and backup daemons the operator started and their options.
pub mod daemon;

pub use daemon::{DaemonConfig, DaemonRequest, SyncDaemons, SyncRole};
