//! `lc` — least connection (ip_vs_lc.c).
//!
//! Algorithm: among the destinations that are neither overloaded nor quiesced (weight 0),
//! pick the one with the smallest connection overhead, `active * 256 + inactive`
//! (the kernel's `ip_vs_dest_conn_overhead`; the `<<5` in ip_vs_lc.c's comment is stale).
//! Weights are otherwise ignored.
//!
//! Invariants: the comparison is strict, so ties go to the earliest entry in list order —
//! the newest server. No state between calls but the shared least-load index
//! (`least/mod.rs`), which gives the same pick.

use super::least::{open_weight, Least, Load, LoadRule};
use crate::dest::Destination;

/// lc's view of a destination: its connection overhead, weight aside.
#[derive(Debug)]
pub struct Lc;

impl LoadRule for Lc {
    const NAME: &'static str = "lc";

    fn load(dest: &Destination) -> Option<Load> {
        open_weight(dest)?;
        Some(Load {
            // The overhead is never negative: two unsigned counters.
            num: dest.overhead().unsigned_abs(),
            den: 1,
        })
    }
}

/// The `lc` scheduler.
pub type LeastConnection = Least<Lc>;

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
