//! How masqd's own threads learn that it is stopping.
//!
//! One [`Stop`] is shared by every thread masqd starts outside tokio: the packet threads
//! read it once per receive batch (their receive waits are short, so they see it within
//! one wait), the trace streams once per wait on their queue, and the housekeeping thread
//! sleeps on it, so a stop wakes it at once instead of after its tick.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// A stop request, set once and never cleared.
#[derive(Debug, Default)]
pub struct Stop {
    requested: AtomicBool,
    /// Wakes the threads sleeping in [`Stop::sleep_until`]; the flag it guards mirrors
    /// `requested`.
    sleepers: (Mutex<bool>, Condvar),
}

impl Stop {
    /// Asks every thread to stop, and wakes those asleep.
    pub fn request(&self) {
        self.requested.store(true, Ordering::Relaxed);
        let (lock, wake) = &self.sleepers;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
    }

    /// Whether a stop was asked for; cheap enough for a packet loop.
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }

    /// Sleeps until `deadline` or a stop request, whichever comes first. Returns `true`
    /// when stopping.
    pub fn sleep_until(&self, deadline: Instant) -> bool {
        let (lock, wake) = &self.sleepers;
        let mut stopping = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if *stopping {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left == Duration::ZERO {
                return false;
            }
            stopping = wake
                .wait_timeout(stopping, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_sleeper_wakes_at_its_deadline_without_a_request() {
        let stop = Stop::default();
        let start = Instant::now();
        assert!(!stop.sleep_until(start + Duration::from_millis(30)));
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert!(!stop.requested());
    }

    #[test]
    fn a_request_wakes_a_sleeper_at_once() {
        let stop = Arc::new(Stop::default());
        let sleeper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let stopping = stop.sleep_until(start + Duration::from_secs(30));
                (stopping, start.elapsed())
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        stop.request();
        let (stopping, slept) = sleeper.join().unwrap();
        assert!(stopping);
        assert!(slept < Duration::from_secs(5), "slept {slept:?}");
        assert!(stop.requested());
        // Later sleeps return at once.
        assert!(stop.sleep_until(Instant::now() + Duration::from_secs(30)));
    }
}
