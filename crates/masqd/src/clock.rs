//! The daemon's clock: milliseconds since masqd started, on the monotonic clock. The core
//! is sans-IO and takes `now` from here.

use std::time::Instant;

use masq_core::Timestamp;

/// A monotonic clock that starts at masqd's start.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// Starts the clock.
    pub fn start() -> Self {
        Clock {
            start: Instant::now(),
        }
    }

    /// Now, for the core.
    pub fn now(&self) -> Timestamp {
        Timestamp(self.start.elapsed().as_millis() as u64)
    }
}
