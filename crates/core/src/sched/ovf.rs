//! `ovf` — weighted overflow (ip_vs_ovf.c).
//!
//! Algorithm: the highest-weight destination takes new connections until its active
//! connections exceed its weight, then the next heaviest, and so on: a destination is
//! eligible while `active <= weight`, it is not overloaded and its weight is not 0. When
//! every destination is full, the connection is refused.
//!
//! As a least-load rule the load is `1 / weight`: the least load is the highest weight.
//!
//! Invariants: strict `w > highest`, so among equal weights the earliest entry (the newest
//! server) wins; inactive connections never count; no state but the shared least-load
//! index (`least/mod.rs`). A server of weight `w` takes
//! `w + 1` held connections before it overflows (c-leastconn.txt, `c-ovf-held`).

use super::least::{open_weight, Least, Load, LoadRule};
use crate::dest::Destination;

/// ovf's view of a destination: the heavier the better, until it is full.
#[derive(Debug)]
pub struct Ovf;

impl LoadRule for Ovf {
    const NAME: &'static str = "ovf";

    fn load(dest: &Destination) -> Option<Load> {
        let weight = open_weight(dest)?;
        (u64::from(dest.active_conns()) <= weight).then_some(Load {
            num: 1,
            den: weight,
        })
    }
}

/// The `ovf` scheduler.
pub type WeightedOverflow = Least<Ovf>;

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
