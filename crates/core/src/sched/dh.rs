//! `dh` — destination hashing (ip_vs_dh.c).
//!
//! Algorithm: a table of 256 buckets (`CONFIG_IP_VS_DH_TAB_BITS` = 8) filled round robin
//! from the destination list, one bucket per destination per lap — weights are ignored.
//! A connection goes to `bucket[hash_32(daddr, 8)]`, where `daddr` is the packet's
//! destination address (the VIP for a normal service; the original destination for a
//! fwmark service in front of caches) as a host-order u32, IPv6 folded by XOR.
//!
//! Lookup fails — no fallback — when the bucket is empty or its destination is not linked,
//! quiesced (weight <= 0) or overloaded.
//!
//! Invariants: the table is rebuilt on init, `-a` and `-d` only; the kernel has no
//! `upd_dest` hook for dh, and an edit changes no index, so the table stays valid. All
//! connections to one VIP go to one server (d-hashing.txt, `d-dh`).

use std::sync::Arc;

use super::hash::{fold_addr, hash_32};
use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Destination;

/// `CONFIG_IP_VS_DH_TAB_BITS`.
const TAB_BITS: u32 = 8;
/// Number of buckets.
const TAB_SIZE: usize = 1 << TAB_BITS;

/// The `dh` scheduler.
#[derive(Debug)]
pub struct DestinationHashing {
    /// Index into the destination list, per bucket.
    buckets: [Option<usize>; TAB_SIZE],
}

impl DestinationHashing {
    /// init_service: fill the table from the current list.
    pub fn new(dests: &[Arc<Destination>]) -> Self {
        let mut dh = DestinationHashing {
            buckets: [None; TAB_SIZE],
        };
        dh.reassign(dests);
        dh
    }

    /// ip_vs_dh_reassign.
    fn reassign(&mut self, dests: &[Arc<Destination>]) {
        for (i, bucket) in self.buckets.iter_mut().enumerate() {
            *bucket = if dests.is_empty() {
                None
            } else {
                Some(i % dests.len())
            };
        }
    }
}

impl Scheduler for DestinationHashing {
    fn name(&self) -> &'static str {
        "dh"
    }

    fn dests_changed(&mut self, dests: &[Arc<Destination>], change: DestChange) {
        if !matches!(change, DestChange::Edited(_)) {
            self.reassign(dests);
        }
    }

    fn schedule(&mut self, dests: &[Arc<Destination>], input: &SchedInput) -> Option<usize> {
        let index = self.buckets[hash_32(fold_addr(input.dst), TAB_BITS) as usize]?;
        let dest = dests.get(index)?;
        if !dest.is_available() || dest.weight() <= 0 || dest.is_overloaded() {
            return None;
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use crate::sched::testutil::{from, Conn, Lab};
    use crate::sched::SchedInput;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn sched_dh_d_dh() {
        let mut lab = Lab::new("dh");
        lab.add(7, 1).add(9, 1).add(11, 1);
        let inputs: Vec<SchedInput> = (0..8).map(|k| from(101 + k as u8, 20284 + k)).collect();
        assert_eq!(
            lab.picks_for(&inputs, Conn::Closed),
            "11 11 11 11 11 11 11 11"
        );
    }

    #[test]
    fn sched_dh_hashes_the_destination_address_and_ignores_weights() {
        let mut lab = Lab::new("dh");
        lab.add(7, 5).add(9, 1);
        // List [9, 7]: bucket b holds index b % 2. 10.0.0.1 hashes to bucket 0x27 (odd:
        // .7), 10.0.0.6 to bucket 0x10 (even: .9), whatever the weights.
        let to = |d: u8| SchedInput {
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, d)),
            ..from(101, 1)
        };
        assert_eq!(
            lab.picks_for(&[to(1), to(6), to(1), to(6)], Conn::Untracked),
            "7 9 7 9"
        );
        // No fallback: a quiesced server's destinations are refused.
        lab.edit(9, 0);
        assert_eq!(lab.picks_for(&[to(1), to(6)], Conn::Untracked), "7 -");
        lab.dest(7).set_overloaded_for_test(true);
        assert_eq!(lab.picks_for(&[to(1)], Conn::Untracked), "-");
    }

    #[test]
    fn sched_dh_refills_on_add_and_delete() {
        let mut lab = Lab::new("dh");
        assert_eq!(lab.picks(1, Conn::Untracked), "-");
        lab.add(7, 1);
        assert_eq!(lab.picks(1, Conn::Untracked), "7");
        lab.add(9, 1).add(11, 1);
        assert_eq!(lab.picks(1, Conn::Untracked), "11");
        lab.delete(11);
        // The VIP's bucket 48 is even: index 0 of [9, 7].
        assert_eq!(lab.picks(1, Conn::Untracked), "9");
    }
}
