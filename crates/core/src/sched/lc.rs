//! `lc` — least connection (ip_vs_lc.c).
//!
//! Algorithm: among the destinations that are neither overloaded nor quiesced (weight 0),
//! pick the one with the smallest connection overhead, `active * 256 + inactive`
//! (the kernel's `ip_vs_dest_conn_overhead`; the `<<5` in ip_vs_lc.c's comment is stale).
//! Weights are otherwise ignored.
//!
//! Invariants: the comparison is strict, so ties go to the earliest entry in list order —
//! the newest server. No state between calls; the list hooks are not used.

use std::sync::Arc;

use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Destination;

/// The `lc` scheduler.
#[derive(Debug, Default)]
pub struct LeastConnection;

impl LeastConnection {
    /// init_service: nothing to build.
    pub fn new(_dests: &[Arc<Destination>]) -> Self {
        LeastConnection
    }
}

impl Scheduler for LeastConnection {
    fn name(&self) -> &'static str {
        "lc"
    }

    fn dests_changed(&mut self, _dests: &[Arc<Destination>], _change: DestChange) {}

    fn schedule(&mut self, dests: &[Arc<Destination>], _input: &SchedInput) -> Option<usize> {
        let mut least: Option<(usize, i64)> = None;
        for (i, dest) in dests.iter().enumerate() {
            if dest.is_overloaded() || dest.weight() == 0 {
                continue;
            }
            let doh = dest.overhead();
            if least.is_none_or(|(_, loh)| doh < loh) {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use crate::sched::testutil::{Conn, Lab};

    fn lab() -> Lab {
        let mut lab = Lab::new("lc");
        lab.add(7, 3).add(9, 1).add(11, 2);
        lab
    }

    #[test]
    fn sched_lc_c_lc_held() {
        assert_eq!(lab().picks(9, Conn::Held), "11 9 7 11 9 7 11 9 7");
    }

    #[test]
    fn sched_lc_c_lc_closed() {
        assert_eq!(lab().picks(9, Conn::Closed), "11 9 7 11 9 7 11 9 7");
    }

    #[test]
    fn sched_lc_one_active_outweighs_255_inactive() {
        let mut lab = lab();
        lab.dest(11).set_conns_for_test(1, 0);
        lab.dest(9).set_conns_for_test(0, 256);
        lab.dest(7).set_conns_for_test(0, 255);
        assert_eq!(lab.picks(1, Conn::Untracked), "7");
        lab.dest(7).set_conns_for_test(0, 257);
        // 11 (256) and 9 (256) tie: the earlier entry wins.
        assert_eq!(lab.picks(1, Conn::Untracked), "11");
    }

    #[test]
    fn sched_lc_skips_quiesced_and_overloaded() {
        let mut lab = lab();
        lab.edit(11, 0);
        lab.dest(9).set_overloaded_for_test(true);
        lab.dest(7).set_conns_for_test(50, 0);
        assert_eq!(lab.picks(2, Conn::Held), "7 7");
        lab.dest(7).set_overloaded_for_test(true);
        assert_eq!(lab.picks(1, Conn::Held), "-");
    }
}
