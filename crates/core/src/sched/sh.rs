//! `sh` — source hashing (ip_vs_sh.c).
//!
//! Algorithm: a table of 256 buckets (`CONFIG_IP_VS_SH_TAB_BITS` = 8) is filled from the
//! destination list, walked cyclically: each destination takes `weight` consecutive
//! buckets per lap (a quiesced one still takes one), until all 256 are filled. A
//! connection goes to `bucket[(hash_32(port + addr, 8)) & 255]`, where `addr` is the
//! client address as a host-order u32 (IPv6 folded by XOR) and `port` is the client port
//! with `-b sh-port` (flag-2), else 0.
//!
//! Lookup: a destination that is quiesced (weight <= 0) or overloaded is unavailable.
//! Without `-b sh-fallback` (flag-1) an unavailable bucket refuses the connection. With it,
//! the kernel probes `bucket[(roff + hash) & 255]` for `roff = (ih + offset) % 256`,
//! `offset = 0..255` — i.e. starting at `2 * ih` — and takes the first available one; an
//! empty bucket ends the search.
//!
//! Invariants: the table is rebuilt on init, `-a`, `-e` and `-d` with the *current*
//! weights, so it always holds indices into the current list (`None` only when the list
//! is empty). A masq director and a kernel director with the same list pick the same real
//! server for the same client (d-hashing.txt). Removing a destination reshuffles the
//! round-robin fill: unlike `mh`, sh does not keep other flows in place — quiescing with
//! `sh-fallback` does.

use std::sync::Arc;

use super::hash::{fold_addr, hash_32};
use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Destination;

/// `CONFIG_IP_VS_SH_TAB_BITS`.
const TAB_BITS: u32 = 8;
/// Number of buckets.
const TAB_SIZE: usize = 1 << TAB_BITS;

/// The `sh` scheduler.
#[derive(Debug)]
pub struct SourceHashing {
    /// Index into the destination list, per bucket.
    buckets: [Option<usize>; TAB_SIZE],
}

impl SourceHashing {
    /// init_service: fill the table from the current list.
    pub fn new(dests: &[Arc<Destination>]) -> Self {
        let mut sh = SourceHashing {
            buckets: [None; TAB_SIZE],
        };
        sh.reassign(dests);
        sh
    }

    /// ip_vs_sh_reassign.
    fn reassign(&mut self, dests: &[Arc<Destination>]) {
        if dests.is_empty() {
            self.buckets = [None; TAB_SIZE];
            return;
        }
        let mut current = 0;
        let mut count = 0;
        for bucket in self.buckets.iter_mut() {
            *bucket = Some(current);
            // A destination keeps filling until it has `weight` buckets this lap; the
            // pre-increment compare gives weight 0 one bucket, as in the kernel.
            count += 1;
            if count >= dests[current].weight() {
                current = (current + 1) % dests.len();
                count = 0;
            }
        }
    }

    fn hashkey(addr: u32, port: u16, offset: usize) -> usize {
        (offset + hash_32(u32::from(port).wrapping_add(addr), TAB_BITS) as usize) & (TAB_SIZE - 1)
    }
}

fn unavailable(dest: &Destination) -> bool {
    dest.weight() <= 0 || dest.is_overloaded()
}

impl Scheduler for SourceHashing {
    fn name(&self) -> &'static str {
        "sh"
    }

    fn dests_changed(&mut self, dests: &[Arc<Destination>], _change: DestChange) {
        self.reassign(dests);
    }

    fn schedule(&mut self, dests: &[Arc<Destination>], input: &SchedInput) -> Option<usize> {
        let addr = fold_addr(input.src);
        let port = if input.flags.port() { input.sport } else { 0 };
        let ihash = Self::hashkey(addr, port, 0);
        let first = self.buckets[ihash]?;
        if !unavailable(dests.get(first)?) {
            return Some(first);
        }
        if !input.flags.fallback() {
            return None;
        }
        for offset in 0..TAB_SIZE {
            let roffset = (offset + ihash) % TAB_SIZE;
            let index = self.buckets[Self::hashkey(addr, port, roffset)]?;
            if !unavailable(dests.get(index)?) {
                return Some(index);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::SchedFlags;
    use crate::sched::testutil::{from, Conn, Lab};
    use crate::sched::SchedInput;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    /// The d-hashing.txt clients: conn k comes from 192.168.0.(101 + k % 8), port base + k.
    fn clients(n: usize, base: u16, flags: u8) -> Vec<SchedInput> {
        (0..n)
            .map(|k| SchedInput {
                flags: SchedFlags(flags),
                ..from(101 + (k % 8) as u8, base + k as u16)
            })
            .collect()
    }

    fn lab(weights: [i32; 3]) -> Lab {
        let mut lab = Lab::new("sh");
        lab.add(7, weights[0])
            .add(9, weights[1])
            .add(11, weights[2]);
        lab
    }

    #[test]
    fn sched_sh_d_sh() {
        let picks = lab([1, 1, 1]).picks_for(&clients(16, 20204, 0), Conn::Closed);
        assert_eq!(picks, "7 11 7 11 9 11 9 11 7 11 7 11 9 11 9 11");
    }

    #[test]
    fn sched_sh_d_sh_port() {
        let flags = SchedFlags::FLAG2;
        let picks = lab([1, 1, 1]).picks_for(&clients(16, 20220, flags), Conn::Closed);
        assert_eq!(picks, "7 9 7 9 9 11 9 11 9 11 9 11 11 11 11 11");
    }

    #[test]
    fn sched_sh_d_sh_w312() {
        let picks = lab([3, 1, 2]).picks_for(&clients(8, 20268, 0), Conn::Closed);
        assert_eq!(picks, "9 11 9 11 11 7 11 7");
    }

    #[test]
    fn sched_sh_d_sh_fallback_with_9_quiesced() {
        let mut lab = lab([1, 1, 1]);
        lab.edit(9, 0);
        let picks = lab.picks_for(&clients(8, 20292, SchedFlags::FLAG1), Conn::Closed);
        assert_eq!(picks, "7 11 7 11 7 11 7 11");
    }

    #[test]
    fn sched_sh_d_sh_nofallback_with_9_quiesced() {
        let mut lab = lab([1, 1, 1]);
        lab.edit(9, 0);
        let picks = lab.picks_for(&clients(8, 20308, 0), Conn::Closed);
        assert_eq!(picks, "7 11 7 11 - 11 - 11");
    }

    #[test]
    fn sched_sh_fill_gives_weight_consecutive_buckets_and_weight_zero_one() {
        let mut lab = Lab::new("sh");
        lab.add(7, 0).add(9, 2).add(11, 3);
        let sh = SourceHashing::new(&lab.dests);
        // List [11 (w3), 9 (w2), 7 (w0)]: 0 0 0 1 1 2, repeating.
        let want: Vec<Option<usize>> = (0..TAB_SIZE)
            .map(|i| Some([0, 0, 0, 1, 1, 2][i % 6]))
            .collect();
        assert_eq!(sh.buckets.to_vec(), want);
        assert!(SourceHashing::new(&[]).buckets.iter().all(Option::is_none));
    }

    #[test]
    fn sched_sh_empty_list_and_overloaded_without_fallback() {
        let mut lab = Lab::new("sh");
        assert_eq!(lab.picks(1, Conn::Untracked), "-");
        lab.add(7, 1);
        assert_eq!(lab.picks(1, Conn::Untracked), "7");
        lab.dest(7).set_overloaded_for_test(true);
        assert_eq!(lab.picks(1, Conn::Untracked), "-");
        let fallback = SchedInput {
            flags: SchedFlags(SchedFlags::FLAG1),
            ..from(101, 1)
        };
        assert_eq!(lab.picks_for(&[fallback], Conn::Untracked), "-");
    }

    #[test]
    fn sched_sh_removal_reshuffles_other_flows_as_the_kernel_does() {
        // Measured, not wished for: the kernel refills the table round robin, so deleting
        // the newest of three equal servers keeps only 84 of the other 170 buckets.
        let mut lab = lab([1, 1, 1]);
        let before = SourceHashing::new(&lab.dests).buckets;
        lab.delete(11);
        let after = SourceHashing::new(&lab.dests).buckets;
        let others = before.iter().filter(|b| **b != Some(0)).count();
        let kept = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| **b != Some(0) && b.map(|i| i - 1) == **a)
            .count();
        assert_eq!((others, kept), (170, 84));
    }

    fn table_picks(dests: &[Arc<Destination>], flows: &[SchedInput]) -> Vec<Option<usize>> {
        let mut sh = SourceHashing::new(dests);
        flows.iter().map(|f| sh.schedule(dests, f)).collect()
    }

    proptest! {
        /// Deleting a destination moves its flows to the others; quiescing it (weight 0)
        /// with sh-fallback moves only its flows and leaves every other flow where it was.
        #[test]
        fn sched_sh_prop_removal_moves_the_removed_dests_flows(
            addrs in proptest::collection::hash_set(any::<u32>(), 2..8),
            victim in any::<prop::sample::Index>(),
            seed in any::<u32>(),
        ) {
            let dests: Vec<Arc<Destination>> = addrs
                .iter()
                .map(|&a| Arc::new(Destination::for_test(Ipv4Addr::from(a), 80, 1)))
                .collect();
            let victim = victim.index(dests.len());
            let flows: Vec<SchedInput> = (0..2000u32)
                .map(|k| SchedInput {
                    src: Ipv4Addr::from(seed.wrapping_add(k.wrapping_mul(0x9E37_79B9))).into(),
                    flags: SchedFlags(SchedFlags::FLAG1),
                    ..from(101, 1)
                })
                .collect();
            let before = table_picks(&dests, &flows);

            let mut remaining = dests.clone();
            remaining.remove(victim);
            let after_delete = table_picks(&remaining, &flows);
            for (b, a) in before.iter().zip(&after_delete) {
                let a = a.map(|i| if i >= victim { i + 1 } else { i });
                prop_assert!(a.is_some());
                prop_assert_ne!(a, Some(victim));
                if *b == Some(victim) {
                    prop_assert_ne!(a, *b);
                }
            }

            dests[victim].update(&crate::control::DestParams { weight: 0, ..Default::default() });
            let after_quiesce = table_picks(&dests, &flows);
            let mut moved = 0;
            for (b, a) in before.iter().zip(&after_quiesce) {
                prop_assert_ne!(*a, Some(victim));
                if *b != Some(victim) {
                    prop_assert_eq!(a, b);
                } else {
                    moved += 1;
                }
            }
            // Equal weights: the victim held about 1/n of the flows.
            prop_assert!(moved > 0);
        }
    }
}
