//! `sed` — shortest expected delay (ip_vs_sed.c).
//!
//! Algorithm: wlc's selection with the overhead `active + 1` — the expected delay of a new
//! connection on a server is `(active + 1) / weight`. Inactive connections do not count,
//! so with connections that close at once the heaviest server takes everything
//! (c-leastconn.txt, `c-sed-closed`).
//!
//! Invariants: as wlc — the first candidate is the first entry neither overloaded nor
//! quiesced, `loh * w(d) > doh * w(least)` in 64-bit, ties keep the earlier (newer) entry.
//! No state but the shared least-load index (`least/mod.rs`), which gives the same pick.

use super::least::{open_weight, Least, Load, LoadRule};
use crate::dest::Destination;

/// sed's view of a destination: `ip_vs_sed_dest_overhead`, the active connections once
/// this one is added, per unit of weight.
#[derive(Debug)]
pub struct Sed;

impl LoadRule for Sed {
    const NAME: &'static str = "sed";

    fn load(dest: &Destination) -> Option<Load> {
        Some(Load {
            num: u64::from(dest.active_conns()) + 1,
            den: open_weight(dest)?,
        })
    }
}

/// The `sed` scheduler.
pub type ShortestExpectedDelay = Least<Sed>;

#[cfg(test)]
mod tests {
    use crate::sched::testutil::{Conn, Lab};

    fn lab() -> Lab {
        let mut lab = Lab::new("sed");
        lab.add(7, 3).add(9, 1).add(11, 2);
        lab
    }

    #[test]
    fn sched_sed_c_sed_held() {
        assert_eq!(lab().picks(9, Conn::Held), "7 11 7 11 9 7 7 11 7");
    }

    #[test]
    fn sched_sed_c_sed_closed() {
        assert_eq!(lab().picks(9, Conn::Closed), "7 7 7 7 7 7 7 7 7");
    }

    #[test]
    fn sched_sed_skips_overloaded_and_quiesced() {
        let mut lab = lab();
        lab.dest(7).set_overloaded_for_test(true);
        assert_eq!(lab.picks(3, Conn::Held), "11 11 9");
        lab.edit(11, 0);
        assert_eq!(lab.picks(2, Conn::Held), "9 9");
    }
}
