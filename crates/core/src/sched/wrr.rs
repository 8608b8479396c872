//! `wrr` — weighted round robin (ip_vs_wrr.c).
//!
//! Algorithm: a current weight `cw` steps down from the maximum weight `mw` in steps of
//! `di`, the gcd of all positive weights. At each step a pass over the list (newest first)
//! hands one connection to every destination whose weight is at least `cw`; when a pass
//! ends, `cw -= di`, and when `cw` drops to zero or below it starts again at `mw`. With
//! weights that are multiples of `di`, one cycle of `sum(w) / di` picks gives each
//! destination exactly `w / di` connections.
//!
//! State (the kernel's `ip_vs_wrr_mark`): `cl` — the last chosen destination or the list
//! head; `cw`; `mw = max weight - (di - 1)`; `di`.
//!
//! Invariants and kernel details kept on purpose:
//! * init_service: `cl = head`, `cw = mw`. So switching an existing service to wrr starts
//!   at the heaviest destinations (b-wrr.txt, `b-wrr31-switched`: 7 7 9 7).
//! * Every `-a`, `-e` and `-d` (add_dest/upd_dest/del_dest) sets `cl = head` and
//!   recomputes `di` and `mw`, but only resets `cw` to `mw` when `cw > mw` or `cw == 0`;
//!   if `di > 1` it is rounded to `(cw / di) * di + 1`; otherwise **`cw` is kept**. That is
//!   why a service built with `-a` after `-A` begins with the lightest server:
//!   `-a .7 -w 3; -a .9 -w 1` picks 9 7 7 7 9 7 7 7 (b-wrr.txt, `b-wrr31`).
//! * Weight 0 is never chosen (`cw >= 1` always), nor is an overloaded destination.
//! * A schedule call gives up ("all destinations are overloaded") after one full lap at
//!   the lowest weight level; it never loops forever.

use std::sync::Arc;

use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Destination;

/// The `wrr` scheduler.
#[derive(Debug)]
pub struct WeightedRoundRobin {
    /// Index of the last chosen destination, `None` for the list head.
    cl: Option<usize>,
    /// Current weight.
    cw: i32,
    /// Maximum weight, less `di - 1`.
    mw: i32,
    /// Decreasing interval: gcd of the positive weights (1 if there are none).
    di: i32,
}

fn gcd(mut a: i32, mut b: i32) -> i32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The kernel's `ip_vs_wrr_gcd_weight`: gcd of the positive weights, 1 if there are none.
fn gcd_weight(dests: &[Arc<Destination>]) -> i32 {
    let g = dests
        .iter()
        .map(|d| d.weight())
        .filter(|&w| w > 0)
        .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w });
    if g == 0 {
        1
    } else {
        g
    }
}

fn max_weight(dests: &[Arc<Destination>]) -> i32 {
    dests.iter().map(|d| d.weight()).fold(0, i32::max)
}

impl WeightedRoundRobin {
    /// init_service: `cl` at the head, `cw = mw`.
    pub fn new(dests: &[Arc<Destination>]) -> Self {
        let di = gcd_weight(dests);
        let mw = max_weight(dests) - (di - 1);
        WeightedRoundRobin {
            cl: None,
            cw: mw,
            mw,
            di,
        }
    }
}

impl Scheduler for WeightedRoundRobin {
    fn name(&self) -> &'static str {
        "wrr"
    }

    fn dests_changed(&mut self, dests: &[Arc<Destination>], _change: DestChange) {
        // ip_vs_wrr_dest_changed, the same for add, edit and delete.
        self.cl = None;
        self.di = gcd_weight(dests);
        self.mw = max_weight(dests) - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    fn schedule(&mut self, dests: &[Arc<Destination>], _input: &SchedInput) -> Option<usize> {
        if self.mw == 0 {
            return None;
        }
        let last = self.cl;
        let mut position = self.cl;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            let from = position.map_or(0, |i| i + 1);
            for (i, dest) in dests.iter().enumerate().skip(from) {
                if !dest.is_overloaded() && dest.weight() >= self.cw {
                    self.cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = Some(i);
                    return None;
                }
            }
            position = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                // Stop if the last pass (all weights >= 1) already ran from the first
                // entry, or if we started at the head, where the only lap was that pass.
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                // The lap at weight >= 1 so far only covered the entries after `last`;
                // finish it at `last` itself.
                stop = last;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{from, Conn, Lab};
    use crate::sched::Scheduler;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    #[test]
    fn sched_wrr_seed_lab_switch_then_edit() {
        // crates/ctl/tests/ipvsadm/data/a.txt: rr 9 7 9 7 9 7, then -E wrr and -e .7 -w 3.
        let mut lab = Lab::new("rr");
        lab.add(7, 1).add(9, 1);
        assert_eq!(lab.picks(6, Conn::Closed), "9 7 9 7 9 7");
        lab.switch("wrr").edit(7, 3);
        assert_eq!(lab.picks(8, Conn::Closed), "9 7 7 7 9 7 7 7");
    }

    #[test]
    fn sched_wrr_b_wrr31_built_with_adds() {
        let mut lab = Lab::new("wrr");
        lab.add(7, 3).add(9, 1);
        assert_eq!(lab.picks(8, Conn::Closed), "9 7 7 7 9 7 7 7");
    }

    #[test]
    fn sched_wrr_b_wrr432() {
        let mut lab = Lab::new("wrr");
        lab.add(7, 4).add(9, 3).add(11, 2);
        assert_eq!(
            lab.picks(18, Conn::Closed),
            "11 9 7 7 9 7 11 9 7 11 9 7 7 9 7 11 9 7"
        );
    }

    #[test]
    fn sched_wrr_b_wrr31_switched_from_rr() {
        let mut lab = Lab::new("rr");
        lab.add(7, 3).add(9, 1).switch("wrr");
        assert_eq!(lab.picks(8, Conn::Closed), "7 7 9 7 7 7 9 7");
    }

    #[test]
    fn sched_wrr_b_wrr13() {
        let mut lab = Lab::new("wrr");
        lab.add(9, 1).add(7, 3);
        assert_eq!(lab.picks(8, Conn::Closed), "7 9 7 7 7 9 7 7");
    }

    #[test]
    fn sched_wrr_b_wrr42_rounds_cw_with_the_gcd() {
        let mut lab = Lab::new("wrr");
        lab.add(7, 4).add(9, 2);
        assert_eq!(lab.picks(6, Conn::Closed), "9 7 7 9 7 7");
    }

    #[test]
    fn sched_wrr_b_wrr31_same_scheduler_edit_keeps_state() {
        // -E with the same scheduler name calls no hook: the Lab simply keeps going.
        let mut lab = Lab::new("wrr");
        lab.add(7, 3).add(9, 1);
        assert_eq!(lab.picks(3, Conn::Closed), "9 7 7");
        assert_eq!(lab.picks(5, Conn::Closed), "7 9 7 7 7");
    }

    #[test]
    fn sched_wrr_b_wrr432_delete_then_edit() {
        // b-wrr.txt port 8029: b-wrr432-5picks, b-wrr42-after-del9, b-wrr46-after-edit11.
        let mut lab = Lab::new("wrr");
        lab.add(7, 4).add(9, 3).add(11, 2);
        assert_eq!(lab.picks(5, Conn::Closed), "11 9 7 7 9");
        lab.delete(9);
        assert_eq!(lab.picks(6, Conn::Closed), "7 11 7 7 11 7");
        lab.edit(11, 6);
        assert_eq!(lab.picks(6, Conn::Closed), "11 7 11 11 7 11");
    }

    #[test]
    fn sched_wrr_reference_examples() {
        // Worked examples of the kernel's wrr, switching to wrr on a built list.
        let mut lab = Lab::new("rr");
        lab.add(7, 3).add(9, 1).switch("wrr");
        assert_eq!(lab.picks(8, Conn::Untracked), "7 7 9 7 7 7 9 7");
        let mut lab = Lab::new("rr");
        lab.add(9, 1).add(7, 3).switch("wrr");
        assert_eq!(lab.picks(8, Conn::Untracked), "7 7 7 9 7 7 7 9");
    }

    #[test]
    fn sched_wrr_quiesced_and_overloaded_are_skipped() {
        let mut lab = Lab::new("wrr");
        lab.add(7, 2).add(9, 1).add(11, 1);
        lab.edit(9, 0);
        assert_eq!(lab.picks(6, Conn::Untracked), "11 7 7 11 7 7");
        lab.dest(7).set_overloaded_for_test(true);
        assert_eq!(lab.picks(3, Conn::Untracked), "11 11 11");
        lab.dest(11).set_overloaded_for_test(true);
        assert_eq!(lab.picks(2, Conn::Untracked), "- -");
        lab.dest(7).set_overloaded_for_test(false);
        assert_eq!(lab.picks(2, Conn::Untracked), "7 7");
    }

    #[test]
    fn sched_wrr_no_destination_when_all_weights_are_zero() {
        let mut lab = Lab::new("wrr");
        assert_eq!(lab.picks(1, Conn::Untracked), "-");
        lab.add(7, 0).add(9, 0);
        assert_eq!(lab.picks(2, Conn::Untracked), "- -");
        lab.edit(9, 5);
        assert_eq!(lab.picks(2, Conn::Untracked), "9 9");
    }

    #[test]
    fn sched_wrr_dests_changed_cw_rules() {
        let dests: Vec<Arc<Destination>> = [4, 2]
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                Arc::new(Destination::for_test(
                    Ipv4Addr::new(10, 0, 0, i as u8 + 1),
                    80,
                    w,
                ))
            })
            .collect();
        let mut wrr = WeightedRoundRobin::new(&dests);
        assert_eq!((wrr.cw, wrr.mw, wrr.di, wrr.cl), (3, 3, 2, None));
        // cw within range and di > 1: rounded to (cw / di) * di + 1.
        wrr.cw = 2;
        wrr.dests_changed(&dests, DestChange::Edited(0));
        assert_eq!(wrr.cw, 3);
        // cw above the new mw: reset to mw.
        dests[0].update(&crate::control::DestParams {
            weight: 2,
            ..Default::default()
        });
        wrr.dests_changed(&dests, DestChange::Edited(0));
        assert_eq!((wrr.cw, wrr.mw, wrr.di), (1, 1, 2));
        // di == 1 and cw in range: kept as is.
        dests[1].update(&crate::control::DestParams {
            weight: 5,
            ..Default::default()
        });
        wrr.cw = 1;
        wrr.cl = Some(1);
        wrr.dests_changed(&dests, DestChange::Edited(1));
        assert_eq!((wrr.cw, wrr.mw, wrr.di, wrr.cl), (1, 5, 1, None));
    }

    proptest! {
        /// Over any window of one full cycle (sum of weight/gcd picks, the sequence's
        /// period), every destination is picked exactly weight/gcd times; weight 0 never.
        #[test]
        fn sched_wrr_prop_one_cycle_picks_each_weight_over_gcd_times(
            weights in proptest::collection::vec(0i32..=12, 1..7),
            scale in 1i32..=4,
            warmup in 0usize..40,
        ) {
            let weights: Vec<i32> = weights.iter().map(|w| w * scale).collect();
            let dests: Vec<Arc<Destination>> = weights
                .iter()
                .enumerate()
                .map(|(i, &w)| Arc::new(Destination::for_test(Ipv4Addr::new(10, 0, 0, i as u8 + 1), 80, w)))
                .collect();
            let g = weights.iter().copied().filter(|&w| w > 0).fold(0, |g, w| if g > 0 { gcd(w, g) } else { w });
            let mut wrr = WeightedRoundRobin::new(&dests);
            let input = from(101, 1);
            if g == 0 {
                prop_assert_eq!(wrr.schedule(&dests, &input), None);
                return Ok(());
            }
            let cycle: usize = weights.iter().map(|&w| (w / g) as usize).sum();
            for _ in 0..warmup {
                prop_assert!(wrr.schedule(&dests, &input).is_some());
            }
            let mut counts = vec![0i32; dests.len()];
            for _ in 0..cycle {
                let i = wrr.schedule(&dests, &input).expect("a destination");
                counts[i] += 1;
            }
            let want: Vec<i32> = weights.iter().map(|&w| w / g).collect();
            prop_assert_eq!(counts, want);
        }
    }
}
