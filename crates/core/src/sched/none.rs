//! `none` — no scheduler (`ipvsadm -A -s none`).
//!
//! The kernel accepts a service without a scheduler: it never assigns a new connection
//! and every new flow gets "no destination available". Useful for a service whose
//! connections should only ever come from persistence templates or be refused while it is
//! being set up. Invariant: `schedule()` always returns `None`.

use std::sync::Arc;

use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Destination;

/// The `none` scheduler.
#[derive(Debug, Default)]
pub struct NoScheduler;

impl NoScheduler {
    /// init_service: nothing to build.
    pub fn new(_dests: &[Arc<Destination>]) -> Self {
        NoScheduler
    }
}

impl Scheduler for NoScheduler {
    fn name(&self) -> &'static str {
        "none"
    }

    fn dests_changed(&mut self, _dests: &[Arc<Destination>], _change: DestChange) {}

    fn schedule(&mut self, _dests: &[Arc<Destination>], _input: &SchedInput) -> Option<usize> {
        None
    }
}

#[cfg(test)]
mod tests {
    use crate::sched::testutil::{Conn, Lab};

    #[test]
    fn sched_none_never_schedules() {
        let mut lab = Lab::new("none");
        lab.add(7, 1).add(9, 3);
        assert_eq!(lab.picks(3, Conn::Untracked), "- - -");
    }
}
