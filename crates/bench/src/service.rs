//! The simulated virtual service: its destination list — the director's own
//! [`DestList`], so `-a`, `-e` and `-d` reach the scheduler exactly as in the director —
//! and its scheduler, with the scheduler's heap use tracked around every call into it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use masq_core::control::{DestParams, FwdMethod};
use masq_core::dest::Destination;
use masq_core::dest_list::DestList;
use masq_core::sched::{self, twos::PowerOfTwoChoices, DestChange, SchedInput, Scheduler};

use crate::alloc;

/// Tracks the scheduler's heap use around each call into it.
#[derive(Debug, Default)]
struct MemTrack {
    current: isize,
    peak: isize,
    measured: bool,
}

impl MemTrack {
    fn around<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let before = alloc::live_bytes();
        let r = f();
        if let (Some(b), Some(a)) = (before, alloc::live_bytes()) {
            self.measured = true;
            self.current += a as isize - b as isize;
            self.peak = self.peak.max(self.current);
        }
        r
    }
}

/// The scheduler with its heap use tracked around each call into it.
#[derive(Debug)]
struct Tracked<'a> {
    sched: &'a mut dyn Scheduler,
    mem: &'a mut MemTrack,
}

impl Scheduler for Tracked<'_> {
    fn name(&self) -> &'static str {
        self.sched.name()
    }

    fn dests_changed(&mut self, dests: &[Arc<Destination>], change: DestChange) {
        let Tracked { sched, mem } = self;
        mem.around(|| sched.dests_changed(dests, change));
    }

    fn schedule(&mut self, dests: &[Arc<Destination>], input: &SchedInput) -> Option<usize> {
        let Tracked { sched, mem } = self;
        mem.around(|| sched.schedule(dests, input))
    }
}

/// The service: its destination list (newest first) and scheduler, driven like the
/// director's control plane drives them.
pub struct Service {
    dests: DestList,
    /// Server index of each list entry.
    list: Vec<usize>,
    sched: Box<dyn Scheduler>,
    mem: MemTrack,
}

impl Service {
    /// A service with no destinations under the scheduler `name` (`twos` seeded with
    /// `seed`); `None` for an unknown name.
    pub fn new(name: &str, seed: u64) -> Option<Service> {
        let mut mem = MemTrack::default();
        let sched = mem.around(|| create_scheduler(name, seed))?;
        Some(Service {
            dests: DestList::new(),
            list: Vec::new(),
            sched,
            mem,
        })
    }

    /// Schedules one connection; the time the scheduler took is added to `time`.
    pub fn schedule(&mut self, input: &SchedInput, time: &mut Duration) -> Option<usize> {
        let Service {
            dests, sched, mem, ..
        } = self;
        mem.around(|| {
            let t0 = Instant::now();
            let pick = sched.schedule(dests, input);
            *time += t0.elapsed();
            pick
        })
    }

    /// The server index of list entry `index`.
    pub fn server_at(&self, index: usize) -> usize {
        self.list[index]
    }

    /// The most heap the scheduler held, if the allocator could tell.
    pub fn sched_mem_peak(&self) -> Option<usize> {
        self.mem.measured.then_some(self.mem.peak.max(0) as usize)
    }

    /// The scheduler, its memory tracked.
    fn tracked(&mut self) -> (&mut DestList, Tracked<'_>) {
        let Service {
            dests, sched, mem, ..
        } = self;
        let tracked = Tracked {
            sched: sched.as_mut(),
            mem,
        };
        (dests, tracked)
    }

    /// `-a` of `dest`, the destination of server `server`.
    pub fn add(&mut self, dest: Arc<Destination>, server: usize) {
        self.list.insert(0, server);
        let (dests, mut sched) = self.tracked();
        dests.add(dest, &mut sched);
    }

    fn position(&self, server: usize) -> usize {
        self.list
            .iter()
            .position(|&s| s == server)
            .expect("validated: the server is in the list")
    }

    /// `-e -w 0` of server `server`, thresholds kept.
    pub fn quiesce(&mut self, server: usize) {
        let index = self.position(server);
        let (u_threshold, l_threshold) = self.dests[index].thresholds();
        let quiesced = DestParams {
            fwd: FwdMethod::Masq,
            weight: 0,
            u_threshold,
            l_threshold,
            ..DestParams::default()
        };
        let (dests, mut sched) = self.tracked();
        dests.edit(index, &quiesced, &mut sched);
    }

    /// `-d` of server `server`.
    pub fn remove(&mut self, server: usize) {
        let index = self.position(server);
        self.list.remove(index);
        let (dests, mut sched) = self.tracked();
        dests.remove(index, &mut sched);
    }
}

/// The scheduler `name` as `ipvsadm -A -s name` creates it, except `twos`, which draws
/// from a generator seeded by the run's seed instead of the OS, so runs are reproducible.
fn create_scheduler(name: &str, seed: u64) -> Option<Box<dyn Scheduler>> {
    if name == "twos" {
        return Some(Box::new(PowerOfTwoChoices::with_seed(seed)));
    }
    sched::create(name, &[])
}
