//! `ovf` — weighted overflow (ip_vs_ovf.c).
//!
//! Algorithm: the highest-weight destination takes new connections until its active
//! connections exceed its weight, then the next heaviest, and so on: a destination is
//! eligible while `active <= weight`, it is not overloaded and its weight is not 0. When
//! every destination is full, the connection is refused.
//!
//! Invariants: strict `w > highest`, so among equal weights the earliest entry (the newest
//! server) wins; inactive connections never count; no state. A server of weight `w` takes
//! `w + 1` held connections before it overflows (c-leastconn.txt, `c-ovf-held`).

use std::sync::Arc;

use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Destination;

/// The `ovf` scheduler.
#[derive(Debug, Default)]
pub struct WeightedOverflow;

impl WeightedOverflow {
    /// init_service: nothing to build.
    pub fn new(_dests: &[Arc<Destination>]) -> Self {
        WeightedOverflow
    }
}

impl Scheduler for WeightedOverflow {
    fn name(&self) -> &'static str {
        "ovf"
    }

    fn dests_changed(&mut self, _dests: &[Arc<Destination>], _change: DestChange) {}

    fn schedule(&mut self, dests: &[Arc<Destination>], _input: &SchedInput) -> Option<usize> {
        let mut highest: Option<usize> = None;
        let mut hw = 0;
        for (i, dest) in dests.iter().enumerate() {
            let w = dest.weight();
            if dest.is_overloaded() || i64::from(dest.active_conns()) > i64::from(w) || w == 0 {
                continue;
            }
            if highest.is_none() || w > hw {
                highest = Some(i);
                hw = w;
            }
        }
        highest
    }
}

#[cfg(test)]
mod tests {
    use crate::sched::testutil::{Conn, Lab};

    #[test]
    fn sched_ovf_c_ovf_held() {
        let mut lab = Lab::new("ovf");
        lab.add(7, 3).add(9, 1).add(11, 2);
        assert_eq!(lab.picks(10, Conn::Held), "7 7 7 7 11 11 11 9 9 -");
    }

    #[test]
    fn sched_ovf_inactive_connections_never_overflow() {
        let mut lab = Lab::new("ovf");
        lab.add(7, 3).add(9, 1);
        assert_eq!(lab.picks(20, Conn::Closed), ["7"; 20].join(" "));
    }

    #[test]
    fn sched_ovf_ties_go_to_the_newest_and_overload_is_skipped() {
        let mut lab = Lab::new("ovf");
        lab.add(7, 2).add(9, 2);
        assert_eq!(lab.picks(4, Conn::Held), "9 9 9 7");
        lab.dest(7).set_overloaded_for_test(true);
        assert_eq!(lab.picks(1, Conn::Held), "-");
    }
}
