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

mod hash;
mod locality;

pub mod dh;
pub mod fo;
pub mod lblc;
pub mod lblcr;
pub mod lc;
pub mod least;
pub mod mh;
pub mod none;
pub mod nq;
pub mod ovf;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod twos;
pub mod wlc;
pub mod wrr;

#[cfg(test)]
mod testutil;

/// Every scheduler name `-s` accepts, as ipvsadm spells them: ipvsadm 1.31's list, then
/// `twos` (kernel 6.2+, accepted by the kernel though ipvsadm's help does not list it) and
/// `none` (no scheduler: nothing is ever scheduled).
pub const SCHEDULER_NAMES: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
    "none",
];

/// The scheduler called `name` (case-sensitive, as the kernel's module lookup is), set up
/// for the service's current destination list as the kernel's `init_service` does; `None`
/// for an unknown name (the kernel's ENOENT).
pub fn create(name: &str, dests: &[Arc<Destination>]) -> Option<Box<dyn Scheduler>> {
    let scheduler: Box<dyn Scheduler> = match name {
        "rr" => Box::new(rr::RoundRobin::new(dests)),
        "wrr" => Box::new(wrr::WeightedRoundRobin::new(dests)),
        "lc" => Box::new(lc::LeastConnection::new(dests)),
        "wlc" => Box::new(wlc::WeightedLeastConnection::new(dests)),
        "lblc" => Box::new(lblc::LocalityLeastConnection::new(dests)),
        "lblcr" => Box::new(lblcr::LocalityLeastConnectionReplicated::new(dests)),
        "dh" => Box::new(dh::DestinationHashing::new(dests)),
        "sh" => Box::new(sh::SourceHashing::new(dests)),
        "sed" => Box::new(sed::ShortestExpectedDelay::new(dests)),
        "nq" => Box::new(nq::NeverQueue::new(dests)),
        "fo" => Box::new(fo::WeightedFailover::new(dests)),
        "ovf" => Box::new(ovf::WeightedOverflow::new(dests)),
        "mh" => Box::new(mh::MaglevHashing::new(dests)),
        "twos" => Box::new(twos::PowerOfTwoChoices::new(dests)),
        "none" => Box::new(none::NoScheduler::new(dests)),
        _ => return None,
    };
    Some(scheduler)
}

#[cfg(test)]
mod tests {
    use super::*;
    use testutil::{Conn, Lab};

    #[test]
    fn sched_registry_knows_every_name_and_nothing_else() {
        for &name in SCHEDULER_NAMES {
            let sched = create(name, &[]).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(sched.name(), name);
        }
        assert_eq!(SCHEDULER_NAMES.len(), 15);
        for unknown in ["", "RR", "Wlc", "nosuch", "rr ", "wrr2"] {
            assert!(create(unknown, &[]).is_none(), "{unknown:?}");
        }
    }

    #[test]
    fn sched_registry_inits_on_the_current_list() {
        // -E to another scheduler on a built list: init_service sees the destinations.
        for name in ["sh", "mh", "dh", "wrr", "rr"] {
            let mut lab = Lab::new("wlc");
            lab.add(7, 1).add(9, 1);
            lab.switch(name);
            assert_ne!(lab.picks(1, Conn::Untracked), "-", "{name}");
        }
    }
}
