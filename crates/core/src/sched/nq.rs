//! `nq` — never queue (ip_vs_nq.c).
//!
//! Algorithm: the first destination in list order with no active connection gets the new
//! one at once, whatever its weight and its inactive connections. If every eligible server
//! is busy, fall back to sed: least `(active + 1) / weight`, compared as
//! `loh * w(d) > doh * w(least)` in 64-bit.
//!
//! As a least-load rule: an idle server's load is 0, below any busy one's `(active + 1) /
//! weight`, and among idle servers the first in list order wins — the kernel's early
//! return.
//!
//! Invariants: overloaded and quiesced (weight 0) destinations are skipped; ties keep the
//! earlier (newer) entry; no state but the shared least-load index (`least/mod.rs`). With connections that close at once every server stays
//! idle, so the newest one takes everything (c-leastconn.txt, `c-nq-closed`).

use super::least::{open_weight, Least, Load, LoadRule};
use crate::dest::Destination;

/// nq's view of a destination: idle first, then sed's expected delay.
#[derive(Debug)]
pub struct Nq;

impl LoadRule for Nq {
    const NAME: &'static str = "nq";

    fn load(dest: &Destination) -> Option<Load> {
        let weight = open_weight(dest)?;
        let active = u64::from(dest.active_conns());
        Some(Load {
            num: if active == 0 { 0 } else { active + 1 },
            den: weight,
        })
    }
}

/// The `nq` scheduler.
pub type NeverQueue = Least<Nq>;

#[cfg(test)]
mod tests {
    use crate::sched::testutil::{Conn, Lab};

    fn lab() -> Lab {
        let mut lab = Lab::new("nq");
        lab.add(7, 3).add(9, 1).add(11, 2);
        lab
    }

    #[test]
    fn sched_nq_c_nq_held() {
        assert_eq!(lab().picks(9, Conn::Held), "11 9 7 7 11 7 7 11 7");
    }

    #[test]
    fn sched_nq_c_nq_closed() {
        assert_eq!(lab().picks(9, Conn::Closed), "11 11 11 11 11 11 11 11 11");
    }

    #[test]
    fn sched_nq_idle_server_wins_regardless_of_weight() {
        let mut lab = lab();
        lab.dest(11).set_conns_for_test(1, 0);
        lab.dest(7).set_conns_for_test(1, 0);
        lab.dest(9).set_conns_for_test(0, 1000);
        assert_eq!(lab.picks(1, Conn::Untracked), "9");
        lab.edit(9, 0);
        assert_eq!(lab.picks(1, Conn::Untracked), "7");
        lab.dest(7).set_overloaded_for_test(true);
        assert_eq!(lab.picks(1, Conn::Untracked), "11");
    }
}
