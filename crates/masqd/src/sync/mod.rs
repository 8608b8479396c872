//! masqd's side of connection sync: the thread that owns the sync daemons' multicast
//! sockets ([`thread`]: a master's sender and a backup's receiver, opened and closed as
//! `--start-daemon`/`--stop-daemon` change the core's [`masq_core::sync::SyncDaemons`]),
//! and what the daemons need from the host ([`mtu`]).

mod mtu;
mod sockets;
mod thread;

pub use mtu::interface_mtu;
pub use thread::start;
