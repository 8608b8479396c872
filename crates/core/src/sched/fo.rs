//! `fo` — weighted failover (ip_vs_fo.c).
//!
//! Algorithm: every new connection goes to the non-overloaded destination with the highest
//! weight; connection counts are ignored. Lower-weight servers only take over when every
//! heavier one is overloaded or quiesced.
//!
//! Invariants: the comparison is `w > highest` with `highest` starting at 0, so weight 0
//! never wins and among equal weights the earliest entry (the newest server) wins. No state.

use std::sync::Arc;

use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Destination;

/// The `fo` scheduler.
#[derive(Debug, Default)]
pub struct WeightedFailover;

impl WeightedFailover {
    /// init_service: nothing to build.
    pub fn new(_dests: &[Arc<Destination>]) -> Self {
        WeightedFailover
    }
}

impl Scheduler for WeightedFailover {
    fn name(&self) -> &'static str {
        "fo"
    }

    fn dests_changed(&mut self, _dests: &[Arc<Destination>], _change: DestChange) {}

    fn schedule(&mut self, dests: &[Arc<Destination>], _input: &SchedInput) -> Option<usize> {
        let mut highest: Option<usize> = None;
        let mut hw = 0;
        for (i, dest) in dests.iter().enumerate() {
            if !dest.is_overloaded() && dest.weight() > hw {
                highest = Some(i);
                hw = dest.weight();
            }
        }
        highest
    }
}

#[cfg(test)]
mod tests {
    use crate::sched::testutil::{Conn, Lab};

    #[test]
    fn sched_fo_c_fo_held() {
        let mut lab = Lab::new("fo");
        lab.add(7, 3).add(9, 1).add(11, 2);
        assert_eq!(lab.picks(9, Conn::Held), "7 7 7 7 7 7 7 7 7");
    }

    #[test]
    fn sched_fo_fails_over_by_weight_then_list_order() {
        let mut lab = Lab::new("fo");
        lab.add(7, 3).add(9, 2).add(11, 2);
        lab.dest(7).set_overloaded_for_test(true);
        // 9 and 11 tie on weight 2: 11 is earlier in the list (added last).
        assert_eq!(lab.picks(2, Conn::Held), "11 11");
        lab.edit(11, 0);
        assert_eq!(lab.picks(1, Conn::Held), "9");
        lab.dest(7).set_overloaded_for_test(false);
        assert_eq!(lab.picks(1, Conn::Held), "7");
        lab.edit(7, 0).edit(9, 0);
        assert_eq!(lab.picks(1, Conn::Held), "-");
    }
}
