//! Which destinations changed since the least-load index last looked: a two-level bitmap
//! that packet threads mark and the scheduler drains.
//!
//! A destination watched by an index holds a [`Watch`] (the index's feed and its slot in
//! it). Every change to what a least-load rule reads — ActiveConn, InActConn, the weight,
//! the OVERLOAD flag — ends with [`ChangeFeed::mark`]; the scheduler, under its service's
//! lock, calls [`ChangeFeed::drain`] before each pick and re-reads only the destinations it
//! is handed.
//!
//! Consistency. The counters, the weight and the flag are written with `SeqCst` and every
//! operation here is `SeqCst`, so they all sit in one total order. A mark skips the
//! read-modify-write when its bit is already set (so threads that hit a marked line only
//! read it); that is safe because a set bit is only cleared by a drain's swap, and that
//! swap comes after the skipped mark in the total order, so the drain's re-read follows the
//! change that was being marked. Hence: **a change whose mark finished before a drain began
//! is reflected by that drain's pick; a change racing with a pick is reflected by that pick
//! or the next**. That is the kernel's own guarantee: its schedulers read the counters as
//! plain atomics under RCU while other CPUs change them.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

/// Bits per bitmap word.
const BITS: usize = 64;

/// The dirty bitmap of one least-load index: a bit per slot, and a bit per word of those
/// in `groups` so a drain reads one word per 4096 slots.
#[derive(Debug)]
pub(crate) struct ChangeFeed {
    groups: Box<[AtomicU64]>,
    words: Box<[AtomicU64]>,
}

/// Where a destination reports its changes: its index's feed and its slot there.
#[derive(Debug)]
pub(crate) struct Watch {
    pub feed: Arc<ChangeFeed>,
    pub slot: u32,
}

impl ChangeFeed {
    /// A feed for slots `0..capacity` (rounded up to a whole word), all clear.
    pub fn with_capacity(capacity: usize) -> Self {
        let words = capacity.div_ceil(BITS).max(1);
        let groups = words.div_ceil(BITS);
        ChangeFeed {
            groups: (0..groups).map(|_| AtomicU64::new(0)).collect(),
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Slot `slot` changed. Lock-free; at most two read-modify-writes, none when the slot
    /// is already marked.
    pub fn mark(&self, slot: u32) {
        let slot = slot as usize;
        set_bit(&self.words[slot / BITS], slot % BITS);
        let word = slot / BITS;
        set_bit(&self.groups[word / BITS], word % BITS);
    }

    /// Clears every mark and calls `changed` once for each slot that was marked.
    pub fn drain(&self, mut changed: impl FnMut(u32)) {
        for (g, group) in self.groups.iter().enumerate() {
            if group.load(SeqCst) == 0 {
                continue;
            }
            for word in bits(group.swap(0, SeqCst)) {
                let w = g * BITS + word;
                for bit in bits(self.words[w].swap(0, SeqCst)) {
                    changed((w * BITS + bit) as u32);
                }
            }
        }
    }
}

fn set_bit(word: &AtomicU64, bit: usize) {
    let mask = 1 << bit;
    if word.load(SeqCst) & mask == 0 {
        word.fetch_or(mask, SeqCst);
    }
}

/// The positions of the set bits of `word`, lowest first.
fn bits(mut word: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (word != 0).then(|| {
            let bit = word.trailing_zeros() as usize;
            word &= word - 1;
            bit
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drained(feed: &ChangeFeed) -> Vec<u32> {
        let mut slots = Vec::new();
        feed.drain(|s| slots.push(s));
        slots
    }

    #[test]
    fn each_marked_slot_is_drained_once() {
        let feed = ChangeFeed::with_capacity(10_000);
        for slot in [9_999, 0, 63, 64, 4_095, 4_096, 63] {
            feed.mark(slot);
        }
        assert_eq!(drained(&feed), [0, 63, 64, 4_095, 4_096, 9_999]);
        assert!(drained(&feed).is_empty());
        feed.mark(5);
        assert_eq!(drained(&feed), [5]);
    }

    #[test]
    fn marks_from_other_threads_are_all_seen() {
        let feed = Arc::new(ChangeFeed::with_capacity(256));
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let feed = Arc::clone(&feed);
                std::thread::spawn(move || {
                    for slot in (t..256).step_by(4) {
                        feed.mark(slot);
                    }
                })
            })
            .collect();
        let mut seen = vec![false; 256];
        for t in threads {
            feed.drain(|s| seen[s as usize] = true);
            t.join().expect("marking thread");
        }
        feed.drain(|s| seen[s as usize] = true);
        assert!(seen.iter().all(|&s| s));
    }
}
