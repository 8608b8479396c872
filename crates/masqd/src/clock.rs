//! The daemon's clock: milliseconds since masqd started, on the monotonic clock — or,
//! under `--simulate`, the simulated lab's clock, which moves only while the lab works
//! through an exchange. The core is sans-IO and takes `now` from here.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use masq_core::Timestamp;

/// Where the time comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    Monotonic(Instant),
    /// Milliseconds of simulated time, set by the simulation.
    Simulated(&'static AtomicU64),
}

/// A clock that starts at masqd's start.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    source: Source,
    /// Wall-clock time at start, in microseconds since the Unix epoch (for captures).
    start_epoch_us: u64,
}

impl Clock {
    /// Starts the monotonic clock.
    pub fn start() -> Self {
        Clock::with_source(Source::Monotonic(Instant::now()))
    }

    /// A clock that reads the simulated time in `millis`.
    pub fn simulated(millis: &'static AtomicU64) -> Self {
        Clock::with_source(Source::Simulated(millis))
    }

    fn with_source(source: Source) -> Self {
        Clock {
            source,
            start_epoch_us: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
        }
    }

    /// A core timestamp as wall-clock microseconds since the Unix epoch.
    pub fn epoch_micros(&self, at: Timestamp) -> u64 {
        self.start_epoch_us + at.as_millis() * 1000
    }

    /// Now, for the core.
    pub fn now(&self) -> Timestamp {
        match self.source {
            Source::Monotonic(start) => Timestamp(start.elapsed().as_millis() as u64),
            Source::Simulated(millis) => Timestamp(millis.load(Relaxed)),
        }
    }
}
