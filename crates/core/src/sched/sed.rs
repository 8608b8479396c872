//! `sed` — shortest expected delay (ip_vs_sed.c).
//!
//! Algorithm: wlc's selection with the overhead `active + 1` — the expected delay of a new
//! connection on a server is `(active + 1) / weight`. Inactive connections do not count,
//! so with connections that close at once the heaviest server takes everything
//! (c-leastconn.txt, `c-sed-closed`).
//!
//! Invariants: as wlc — the first candidate is the first entry neither overloaded nor
//! quiesced, `loh * w(d) > doh * w(least)` in 64-bit, ties keep the earlier (newer) entry.
//! No state.

use std::sync::Arc;

use super::wlc::least_loaded;
use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Destination;

/// The `sed` scheduler.
#[derive(Debug, Default)]
pub struct ShortestExpectedDelay;

impl ShortestExpectedDelay {
    /// init_service: nothing to build.
    pub fn new(_dests: &[Arc<Destination>]) -> Self {
        ShortestExpectedDelay
    }
}

/// `ip_vs_sed_dest_overhead`: the connection count once this one is added.
fn expected_delay(dest: &Destination) -> i64 {
    i64::from(dest.active_conns()) + 1
}

impl Scheduler for ShortestExpectedDelay {
    fn name(&self) -> &'static str {
        "sed"
    }

    fn dests_changed(&mut self, _dests: &[Arc<Destination>], _change: DestChange) {}

    fn schedule(&mut self, dests: &[Arc<Destination>], _input: &SchedInput) -> Option<usize> {
        least_loaded(dests, expected_delay)
    }
}

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
