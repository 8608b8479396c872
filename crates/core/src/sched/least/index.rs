//! The least-load index of one service: a [`Tournament`] over the destinations' current
//! loads, kept in step with the counters through a [`ChangeFeed`].
//!
//! Each destination gets a stable slot (reused after `-d`) and a `seq` in insertion order.
//! The index mirrors the service's list (`list` maps list index → slot, `position` the
//! reverse), so a pick can answer with a list index; the mirror is rebuilt on `-a`/`-d`,
//! O(n) on the control plane — as the list's own head insertion is.
//!
//! Costs: a pick drains the feed and replays the tree path of each destination that
//! changed since the last pick (O(log n) each; in steady state one connection opens and
//! about one closes per pick), then reads the root. A counter change on a packet thread
//! costs one `Watch` load and at most two atomic read-modify-writes.

use std::sync::Arc;

use super::feed::{ChangeFeed, Watch};
use super::tournament::{Contender, Tournament};
use super::LoadRule;
use crate::dest::Destination;

/// Slots a new index starts with; it doubles when full.
const INITIAL_CAPACITY: usize = 64;

#[derive(Debug)]
pub(crate) struct LoadIndex<R> {
    feed: Arc<ChangeFeed>,
    tree: Tournament,
    slots: Slots,
    /// List index → slot, newest first, as the service's list.
    list: Vec<u32>,
    /// Slot → list index.
    position: Vec<u32>,
    free: Vec<u32>,
    next_seq: u64,
    rule: std::marker::PhantomData<R>,
}

impl<R: LoadRule> LoadIndex<R> {
    /// An index over `dests` (newest first), watching each of them.
    pub fn build(dests: &[Arc<Destination>]) -> Self {
        let capacity = dests.len().next_power_of_two().max(INITIAL_CAPACITY);
        let mut index = LoadIndex {
            feed: Arc::new(ChangeFeed::with_capacity(capacity)),
            tree: Tournament::with_capacity(capacity),
            slots: Slots {
                dests: vec![None; capacity],
                seqs: vec![0; capacity],
            },
            list: Vec::with_capacity(capacity),
            position: vec![u32::MAX; capacity],
            free: Vec::new(),
            next_seq: 0,
            rule: std::marker::PhantomData,
        };
        // Oldest first, so the newest gets the largest seq; slot k holds list index k.
        for (slot, dest) in dests.iter().enumerate().rev() {
            index.slots.seqs[slot] = index.next_seq;
            index.next_seq += 1;
            index.slots.dests[slot] = Some(Arc::clone(dest));
        }
        index.list = (0..dests.len() as u32).collect();
        index.free = (dests.len() as u32..capacity as u32).rev().collect();
        index.reposition();
        index.watch_all();
        index
    }

    /// `-a`: `dest` was inserted at the head of the list.
    pub fn added(&mut self, dest: &Arc<Destination>) {
        if self.free.is_empty() {
            self.grow();
        }
        let slot = self.free.pop().expect("a free slot after growing");
        self.slots.dests[slot as usize] = Some(Arc::clone(dest));
        self.slots.seqs[slot as usize] = self.next_seq;
        self.next_seq += 1;
        self.list.insert(0, slot);
        self.reposition();
        dest.watch(Arc::new(Watch {
            feed: Arc::clone(&self.feed),
            slot,
        }));
        self.refresh(slot);
    }

    /// `-e`: the destination at list index `index` was edited.
    pub fn edited(&mut self, index: usize) {
        self.refresh(self.list[index]);
    }

    /// `-d`: the destination at list index `index` was unlinked.
    pub fn removed(&mut self, index: usize) {
        let slot = self.list.remove(index);
        if let Some(dest) = self.slots.dests[slot as usize].take() {
            dest.unwatch(&self.feed);
        }
        self.position[slot as usize] = u32::MAX;
        self.tree.set(slot, None);
        self.free.push(slot);
        self.reposition();
    }

    /// The list index of the least loaded destination, after taking in every change the
    /// feed reports.
    pub fn pick(&mut self) -> Option<usize> {
        let (tree, slots) = (&mut self.tree, &self.slots);
        self.feed
            .drain(|slot| tree.set(slot, slots.contender::<R>(slot)));
        let slot = self.tree.winner()?;
        Some(self.position[slot as usize] as usize)
    }

    /// Re-reads the destination in `slot` into the tree.
    fn refresh(&mut self, slot: u32) {
        self.tree.set(slot, self.slots.contender::<R>(slot));
    }

    fn reposition(&mut self) {
        for (index, &slot) in self.list.iter().enumerate() {
            self.position[slot as usize] = index as u32;
        }
    }

    /// Every destination reports to the current feed, and the tree reads them all after
    /// that, so no change made before the switch is missed (see the feed's module doc).
    fn watch_all(&mut self) {
        for (slot, dest) in self.slots.dests.iter().enumerate() {
            if let Some(dest) = dest {
                dest.watch(Arc::new(Watch {
                    feed: Arc::clone(&self.feed),
                    slot: slot as u32,
                }));
            }
        }
        for slot in 0..self.slots.dests.len() as u32 {
            self.refresh(slot);
        }
    }

    /// Doubles the slots: a new feed and tree, the same slots.
    fn grow(&mut self) {
        let old = self.tree.capacity();
        let capacity = 2 * old;
        self.feed = Arc::new(ChangeFeed::with_capacity(capacity));
        self.tree = Tournament::with_capacity(capacity);
        self.slots.dests.resize(capacity, None);
        self.slots.seqs.resize(capacity, 0);
        self.position.resize(capacity, u32::MAX);
        self.free.extend((old as u32..capacity as u32).rev());
        self.watch_all();
    }
}

impl<R> Drop for LoadIndex<R> {
    /// The index goes with its scheduler (`-E` to another, `-D`, or too few destinations):
    /// its destinations stop reporting to it, unless a newer index already took them.
    fn drop(&mut self) {
        for dest in self.slots.dests.iter().flatten() {
            dest.unwatch(&self.feed);
        }
    }
}

/// The destinations by slot.
#[derive(Debug)]
struct Slots {
    dests: Vec<Option<Arc<Destination>>>,
    /// Insertion order of each slot's destination (ties go to the larger).
    seqs: Vec<u64>,
}

impl Slots {
    /// How the tree should see `slot` now: `None` when it is empty or its destination
    /// cannot take a connection. A slot freed by `-d` may still be marked by a change
    /// racing with the removal; it reads as empty.
    fn contender<R: LoadRule>(&self, slot: u32) -> Option<Contender> {
        let dest = self.dests[slot as usize].as_ref()?;
        R::load(dest).map(|load| Contender {
            load,
            seq: self.seqs[slot as usize],
            slot,
        })
    }
}
