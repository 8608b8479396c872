//! `nq` — never queue (ip_vs_nq.c).
//!
//! Algorithm: the first destination in list order with no active connection gets the new
//! one at once, whatever its weight and its inactive connections. If every eligible server
//! is busy, fall back to sed: least `(active + 1) / weight`, compared as
//! `loh * w(d) > doh * w(least)` in 64-bit.
//!
//! Invariants: overloaded and quiesced (weight 0) destinations are skipped; ties keep the
//! earlier (newer) entry; no state. With connections that close at once every server stays
//! idle, so the newest one takes everything (c-leastconn.txt, `c-nq-closed`).

use std::sync::Arc;

use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Destination;

/// The `nq` scheduler.
#[derive(Debug, Default)]
pub struct NeverQueue;

impl NeverQueue {
    /// init_service: nothing to build.
    pub fn new(_dests: &[Arc<Destination>]) -> Self {
        NeverQueue
    }
}

impl Scheduler for NeverQueue {
    fn name(&self) -> &'static str {
        "nq"
    }

    fn dests_changed(&mut self, _dests: &[Arc<Destination>], _change: DestChange) {}

    fn schedule(&mut self, dests: &[Arc<Destination>], _input: &SchedInput) -> Option<usize> {
        let mut least: Option<(usize, i64)> = None;
        for (i, dest) in dests.iter().enumerate() {
            if dest.is_overloaded() || dest.weight() == 0 {
                continue;
            }
            if dest.active_conns() == 0 {
                return Some(i);
            }
            let doh = i64::from(dest.active_conns()) + 1;
            let wins = match least {
                None => true,
                Some((l, loh)) => {
                    loh * i64::from(dest.weight()) > doh * i64::from(dests[l].weight())
                }
            };
            if wins {
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
