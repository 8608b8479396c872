//! The daemon's clock: milliseconds since masqd started, on the monotonic clock. The core
//! is sans-IO and takes `now` from here.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use masq_core::Timestamp;

/// A monotonic clock that starts at masqd's start.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    /// Wall-clock time at start, in microseconds since the Unix epoch (for captures).
    start_epoch_us: u64,
}

impl Clock {
    /// Starts the clock.
    pub fn start() -> Self {
        Clock {
            start: Instant::now(),
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
        Timestamp(self.start.elapsed().as_millis() as u64)
    }
}
