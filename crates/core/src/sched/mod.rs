//! Schedulers: how a new connection picks its destination.
//!
//! One file per scheduler, each a port of the kernel's `ip_vs_<name>.c` with the algorithm
//! stated at its top. They all see the service's destinations in the kernel's list order —
//! **newest first**, because `ipvsadm -a` inserts at the head of the list — and are told of
//! every change to that list through [`Scheduler::dests_changed`], exactly where the kernel
//! calls its `add_dest` / `upd_dest` / `del_dest` hooks.
//!
//! A scheduler runs under its service's lock (the kernel's per-service `sched_lock`) and
//! only for the first packet of a connection, so it may keep mutable state.

use std::net::IpAddr;
use std::sync::Arc;

use crate::control::SchedFlags;
use crate::dest::Destination;
use crate::time::Timestamp;

/// What a scheduler may look at about the packet that opens a connection.
#[derive(Debug, Clone, Copy)]
pub struct SchedInput {
    /// Client (source) address and port.
    pub src: IpAddr,
    pub sport: u16,
    /// Packet destination address and port (the VIP and virtual port).
    pub dst: IpAddr,
    pub dport: u16,
    /// The service's `-b` flags.
    pub flags: SchedFlags,
    pub now: Timestamp,
}

/// How the destination list changed, passed to [`Scheduler::dests_changed`] after the
/// change has been applied to the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestChange {
    /// A destination was inserted at the head (index 0) of the list (`-a`).
    Added,
    /// The destination at this index had its weight or thresholds edited (`-e`).
    Edited(usize),
    /// The destination that was at this index (in the list before removal) was removed (`-d`).
    Removed(usize),
}

/// A connection scheduler (the kernel's `struct ip_vs_scheduler`).
pub trait Scheduler: Send + std::fmt::Debug {
    /// The ipvsadm name (`rr`, `wrr`, ...).
    fn name(&self) -> &'static str;

    /// Called after the destination list changed (kernel add_dest / upd_dest / del_dest).
    /// Schedulers without such hooks in the kernel ignore the call.
    fn dests_changed(&mut self, dests: &[Arc<Destination>], change: DestChange);

    /// Picks the index of a destination in `dests` for a new connection, or `None` when no
    /// destination is available ("no destination available").
    fn schedule(&mut self, dests: &[Arc<Destination>], input: &SchedInput) -> Option<usize>;
}
