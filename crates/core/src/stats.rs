//! Traffic counters and the kernel's 2-second rate estimator (`ip_vs_est.c`).
//!
//! Counters are monotonic atomics bumped by the workers; `-Z` does not reset them but stores
//! a zero point, as the kernel does, so that a listing racing a zero never sees a negative
//! value. The estimator is an EWMA with weight 1/4 per 2-second sample, in the kernel's
//! fixed point: packets and connections scaled by 2^10, bytes by 2^5.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::control::{RateView, StatsView};

/// Period of the rate estimator, as in the kernel.
pub const ESTIMATOR_PERIOD_MS: u64 = 2000;

/// Counters of a service, a destination or the whole director.
#[derive(Debug, Default)]
pub struct Stats {
    conns: AtomicU64,
    inpkts: AtomicU64,
    outpkts: AtomicU64,
    inbytes: AtomicU64,
    outbytes: AtomicU64,
    /// Zero point and estimator state; only the control plane and the 2 s tick touch it.
    slow: Mutex<SlowState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct SlowState {
    at_zero: StatsView,
    last: StatsView,
    est: Estimates,
}

/// Estimator state in kernel fixed point.
#[derive(Debug, Default, Clone, Copy)]
struct Estimates {
    cps: i64,
    inpps: i64,
    outpps: i64,
    inbps: i64,
    outbps: i64,
}

impl Stats {
    /// A connection was scheduled to this object.
    pub fn count_conn(&self) {
        self.conns.fetch_add(1, Relaxed);
    }

    /// A client-to-server packet of `bytes` (IP total length) was forwarded.
    pub fn count_in(&self, bytes: u64) {
        self.inpkts.fetch_add(1, Relaxed);
        self.inbytes.fetch_add(bytes, Relaxed);
    }

    /// A server-to-client packet of `bytes` (IP total length) was forwarded.
    pub fn count_out(&self, bytes: u64) {
        self.outpkts.fetch_add(1, Relaxed);
        self.outbytes.fetch_add(bytes, Relaxed);
    }

    fn raw(&self) -> StatsView {
        StatsView {
            conns: self.conns.load(Relaxed),
            inpkts: self.inpkts.load(Relaxed),
            outpkts: self.outpkts.load(Relaxed),
            inbytes: self.inbytes.load(Relaxed),
            outbytes: self.outbytes.load(Relaxed),
        }
    }

    fn slow(&self) -> std::sync::MutexGuard<'_, SlowState> {
        self.slow.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counters since the last zero (`--stats`).
    pub fn view(&self) -> StatsView {
        let raw = self.raw();
        let zero = self.slow().at_zero;
        StatsView {
            conns: raw.conns.wrapping_sub(zero.conns),
            inpkts: raw.inpkts.wrapping_sub(zero.inpkts),
            outpkts: raw.outpkts.wrapping_sub(zero.outpkts),
            inbytes: raw.inbytes.wrapping_sub(zero.inbytes),
            outbytes: raw.outbytes.wrapping_sub(zero.outbytes),
        }
    }

    /// Rates as `--rate` prints them.
    pub fn rate(&self) -> RateView {
        let est = self.slow().est;
        let pkts = |e: i64| ((e.max(0) as u64) + 0x1FF) >> 10;
        let bytes = |e: i64| ((e.max(0) as u64) + 0xF) >> 5;
        RateView {
            cps: pkts(est.cps),
            inpps: pkts(est.inpps),
            outpps: pkts(est.outpps),
            inbps: bytes(est.inbps),
            outbps: bytes(est.outbps),
        }
    }

    /// `-Z`: remembers the current counters as the new zero and resets the rates.
    pub fn zero(&self) {
        let raw = self.raw();
        let mut slow = self.slow();
        slow.at_zero = raw;
        slow.last = raw;
        slow.est = Estimates::default();
    }

    /// One estimator tick; the caller runs it every [`ESTIMATOR_PERIOD_MS`].
    pub fn estimate(&self) {
        let now = self.raw();
        let mut slow = self.slow();
        let last = slow.last;
        slow.last = now;
        let step = |est: &mut i64, delta: u64, shift: u32| {
            let rate = (delta as i64) << shift;
            *est += (rate - *est) >> 2;
        };
        step(&mut slow.est.cps, now.conns.wrapping_sub(last.conns), 9);
        step(&mut slow.est.inpps, now.inpkts.wrapping_sub(last.inpkts), 9);
        step(
            &mut slow.est.outpps,
            now.outpkts.wrapping_sub(last.outpkts),
            9,
        );
        step(
            &mut slow.est.inbps,
            now.inbytes.wrapping_sub(last.inbytes),
            4,
        );
        step(
            &mut slow.est.outbps,
            now.outbytes.wrapping_sub(last.outbytes),
            4,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_100_cps_converges_like_the_kernel() {
        // The kernel's estimator: 100 conn/s gives cps 25, 44, 58, ... towards 100.
        let stats = Stats::default();
        let mut seen = Vec::new();
        for _ in 0..3 {
            for _ in 0..200 {
                stats.count_conn();
            }
            stats.estimate();
            seen.push(stats.rate().cps);
        }
        assert_eq!(seen, vec![25, 44, 58]);
        for _ in 0..40 {
            for _ in 0..200 {
                stats.count_conn();
            }
            stats.estimate();
        }
        assert_eq!(stats.rate().cps, 100);
    }

    #[test]
    fn zero_keeps_counting_from_the_zero_point() {
        let stats = Stats::default();
        stats.count_in(60);
        stats.count_out(40);
        stats.estimate();
        stats.zero();
        assert_eq!(stats.view(), StatsView::default());
        assert_eq!(stats.rate(), RateView::default());
        stats.count_in(100);
        assert_eq!(stats.view().inpkts, 1);
        assert_eq!(stats.view().inbytes, 100);
    }
}
