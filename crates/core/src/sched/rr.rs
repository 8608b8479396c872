//! `rr` — round robin (ip_vs_rr.c).
//!
//! Algorithm: a pointer into the destination list, initially the list head (before the
//! first entry). A new connection goes to the first destination after the pointer that is
//! neither overloaded nor quiesced (weight 0), scanning to the end of the list and then,
//! unless the pointer is the head, wrapping round from the first entry up to and including
//! the pointed-at entry itself. The pointer then moves to the chosen destination.
//!
//! Invariants:
//! * The pointer is the list head or a destination still in the list: on `-d` of the
//!   pointed-at destination it moves to the *previous* entry (or the head), exactly as the
//!   kernel's `ip_vs_rr_del_dest` does, so the rotation carries on with the entry after
//!   the deleted one.
//! * `-a` and `-e` never move it (a destination added at the head is only reached after
//!   the rotation wraps), and weights other than zero are ignored.
//! * Since the list is newest first, the most recently added server gets the first
//!   connection: `-a .7; -a .9` picks 9 7 9 7 (`crates/ctl/tests/ipvsadm/data/a.txt`).

use std::sync::Arc;

use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Destination;

/// The `rr` scheduler.
#[derive(Debug, Default)]
pub struct RoundRobin {
    /// Index of the last chosen destination, `None` for the list head.
    last: Option<usize>,
}

impl RoundRobin {
    /// init_service: the pointer starts at the list head.
    pub fn new(_dests: &[Arc<Destination>]) -> Self {
        RoundRobin { last: None }
    }
}

fn eligible(dest: &Destination) -> bool {
    !dest.is_overloaded() && dest.weight() > 0
}

impl Scheduler for RoundRobin {
    fn name(&self) -> &'static str {
        "rr"
    }

    fn dests_changed(&mut self, _dests: &[Arc<Destination>], change: DestChange) {
        // The kernel keeps a pointer to a list node; we keep an index, so it has to follow
        // the node when the list shifts under it.
        self.last = match (change, self.last) {
            (_, None) => None,
            (DestChange::Added, Some(i)) => Some(i + 1),
            (DestChange::Edited(_), last) => last,
            (DestChange::Removed(gone), Some(i)) if gone == i => i.checked_sub(1),
            (DestChange::Removed(gone), Some(i)) if gone < i => Some(i - 1),
            (DestChange::Removed(_), last) => last,
        };
    }

    fn schedule(&mut self, dests: &[Arc<Destination>], _input: &SchedInput) -> Option<usize> {
        let after = self.last.map_or(0, |i| i + 1);
        let first_pass = dests.iter().enumerate().skip(after);
        // The second pass (from the first entry up to and including the last pick) only
        // happens when the pointer is not the head: from the head one pass saw everything.
        let second_pass = dests
            .iter()
            .enumerate()
            .take(self.last.map_or(0, |i| i + 1));
        let (index, _) = first_pass.chain(second_pass).find(|(_, d)| eligible(d))?;
        self.last = Some(index);
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use crate::control::DestParams;
    use crate::dest::Destination;
    use crate::sched::testutil::{rs, Conn, Lab};
    use std::sync::Arc;

    #[test]
    fn sched_rr_seed_lab_newest_first() {
        // crates/ctl/tests/ipvsadm/data/a.txt, PICKS a-rr.
        let mut lab = Lab::new("rr");
        lab.add(7, 1).add(9, 1);
        assert_eq!(lab.picks(6, Conn::Closed), "9 7 9 7 9 7");
    }

    #[test]
    fn sched_rr_delete_and_quiesce_b_rr3() {
        // b-wrr.txt, port 8026: PICKS b-rr3, b-rr3-after-del9, b-rr3-7quiesced.
        let mut lab = Lab::new("rr");
        lab.add(7, 1).add(9, 1).add(11, 1);
        assert_eq!(lab.picks(6, Conn::Closed), "11 9 7 11 9 7");
        lab.delete(9);
        assert_eq!(lab.picks(4, Conn::Closed), "11 7 11 7");
        lab.edit(7, 0);
        assert_eq!(lab.picks(3, Conn::Closed), "11 11 11");
    }

    #[test]
    fn sched_rr_delete_of_the_current_entry_moves_the_pointer_back() {
        // b-wrr.txt, port 8027: PICKS b-rr3-2picks then b-rr3-after-del-current.
        let mut lab = Lab::new("rr");
        lab.add(7, 1).add(9, 1).add(11, 1);
        assert_eq!(lab.picks(2, Conn::Closed), "11 9");
        lab.delete(9);
        assert_eq!(lab.picks(3, Conn::Closed), "7 11 7");
    }

    #[test]
    fn sched_rr_delete_of_the_first_current_entry_goes_back_to_the_head() {
        let mut lab = Lab::new("rr");
        lab.add(7, 1).add(9, 1).add(11, 1);
        assert_eq!(lab.picks(1, Conn::Untracked), "11");
        lab.delete(11);
        assert_eq!(lab.picks(3, Conn::Untracked), "9 7 9");
    }

    #[test]
    fn sched_rr_add_does_not_move_the_pointer() {
        let mut lab = Lab::new("rr");
        lab.add(7, 1).add(9, 1);
        assert_eq!(lab.picks(1, Conn::Untracked), "9");
        // .11 goes to the head, before the pointer: it is reached only after the wrap.
        lab.add(11, 1);
        assert_eq!(lab.picks(4, Conn::Untracked), "7 11 9 7");
    }

    #[test]
    fn sched_rr_upper_threshold_overloads_c_rr_uthr2() {
        // c-leastconn.txt, port 8051: .7 has -x 2; after two connections it is overloaded
        // and skipped. PICKS c-rr-uthr2-closed.
        let mut lab = Lab::new("rr");
        let params = DestParams {
            weight: 1,
            u_threshold: 2,
            ..DestParams::default()
        };
        lab.add_dest(Arc::new(Destination::new(
            crate::control::DestKey {
                addr: rs(7).into(),
                port: 80,
            },
            &params,
        )));
        lab.add(9, 1);
        assert_eq!(lab.picks(6, Conn::Closed), "9 7 9 7 9 9");
        assert!(lab.dest(7).is_overloaded());
    }

    #[test]
    fn sched_rr_none_when_everything_is_quiesced_or_overloaded() {
        let mut lab = Lab::new("rr");
        assert_eq!(lab.picks(1, Conn::Untracked), "-");
        lab.add(7, 0).add(9, 1);
        lab.dest(9).set_overloaded_for_test(true);
        assert_eq!(lab.picks(2, Conn::Untracked), "- -");
        lab.dest(9).set_overloaded_for_test(false);
        assert_eq!(lab.picks(2, Conn::Untracked), "9 9");
    }
}
