//! `wlc` — weighted least connection (ip_vs_wlc.c), the default scheduler.
//!
//! Algorithm: the destination with the least `overhead / weight`, where overhead is
//! `active * 256 + inactive`. Compared without division: `d` beats the current `least`
//! when `loh * w(d) > doh * w(least)`, in 64-bit integers.
//!
//! Invariants:
//! * The first candidate is the first entry that is neither overloaded nor quiesced; later
//!   entries are only skipped when overloaded — a weight-0 entry is compared but can never
//!   win (`loh * 0 > doh * w` is false).
//! * Strict comparison: ties keep the earlier entry, the newest server, so idle equal
//!   servers added R1, R2, R3 are used R3, R2, R1.
//! * No state between calls but the shared least-load index (`least/mod.rs`), which gives
//!   the same pick. `lblc` and `lblcr` walk the list with `least_loaded`, the kernel's loop.

use std::sync::Arc;

use super::least::{open_weight, Least, Load, LoadRule};
use crate::dest::Destination;

/// wlc's view of a destination: overhead per unit of weight.
#[derive(Debug)]
pub struct Wlc;

impl LoadRule for Wlc {
    const NAME: &'static str = "wlc";

    fn load(dest: &Destination) -> Option<Load> {
        Some(Load {
            // The overhead is never negative: two unsigned counters.
            num: dest.overhead().unsigned_abs(),
            den: open_weight(dest)?,
        })
    }
}

/// The `wlc` scheduler.
pub type WeightedLeastConnection = Least<Wlc>;

/// The wlc selection loop over `dests` with the load measure `overhead` (the kernel
/// repeats it in wlc, sed, lblc and lblcr): index of the least loaded destination.
/// lblc and lblcr use it; the tests hold wlc and sed to it.
pub(crate) fn least_loaded(
    dests: &[Arc<Destination>],
    overhead: impl Fn(&Destination) -> i64,
) -> Option<usize> {
    let first = dests
        .iter()
        .position(|d| !d.is_overloaded() && d.weight() > 0)?;
    let mut least = first;
    let mut loh = overhead(&dests[first]);
    for (i, dest) in dests.iter().enumerate().skip(first + 1) {
        if dest.is_overloaded() {
            continue;
        }
        let doh = overhead(dest);
        if loh * i64::from(dest.weight()) > doh * i64::from(dests[least].weight()) {
            least = i;
            loh = doh;
        }
    }
    Some(least)
}

#[cfg(test)]
mod tests {
    use crate::sched::testutil::{Conn, Lab};

    fn lab() -> Lab {
        let mut lab = Lab::new("wlc");
        lab.add(7, 3).add(9, 1).add(11, 2);
        lab
    }

    #[test]
    fn sched_wlc_c_wlc_held() {
        assert_eq!(lab().picks(9, Conn::Held), "11 9 7 7 11 7 11 9 7");
    }

    #[test]
    fn sched_wlc_c_wlc_closed() {
        assert_eq!(lab().picks(9, Conn::Closed), "11 9 7 7 11 7 11 9 7");
    }

    #[test]
    fn sched_wlc_equal_idle_servers_newest_first() {
        let mut lab = Lab::new("wlc");
        lab.add(1, 1).add(2, 1).add(3, 1);
        assert_eq!(lab.picks(6, Conn::Held), "3 2 1 3 2 1");
    }

    #[test]
    fn sched_wlc_resurrected_destination_brings_its_counters_back() {
        // README.md: a deleted destination re-added while its connections live comes back
        // at the head with its old ActiveConn, and least-connection picks around it.
        let mut lab = lab();
        assert_eq!(lab.picks(3, Conn::Held), "11 9 7");
        let old = lab.delete(11);
        assert_eq!(old.active_conns(), 1);
        lab.add_dest(old);
        // 11 (w2, 1 active) is at the head again; 9 (w1, 1 active) and 7 (w3, 1 active).
        assert_eq!(lab.picks(3, Conn::Held), "7 11 7");
    }

    #[test]
    fn sched_wlc_weight_zero_never_wins_and_overloaded_is_skipped() {
        let mut lab = lab();
        lab.edit(9, 0);
        lab.dest(11).set_conns_for_test(100, 0);
        lab.dest(7).set_conns_for_test(100, 0);
        assert_eq!(lab.picks(1, Conn::Untracked), "7");
        lab.dest(7).set_overloaded_for_test(true);
        assert_eq!(lab.picks(1, Conn::Untracked), "11");
        lab.dest(11).set_overloaded_for_test(true);
        assert_eq!(lab.picks(1, Conn::Untracked), "-");
    }

    #[test]
    fn sched_wlc_cross_multiplies_in_64_bits() {
        let mut lab = Lab::new("wlc");
        lab.add(7, 65535).add(9, 65535);
        // 9's overhead is larger than 7's; i32 products would overflow and flip the result.
        lab.dest(9).set_conns_for_test(40_000, 0);
        lab.dest(7).set_conns_for_test(39_999, 0);
        assert_eq!(lab.picks(1, Conn::Untracked), "7");
    }
}
