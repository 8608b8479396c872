//! A tournament tree over slots: every inner node holds the better of its two children, so
//! the root is the best contender, and changing one slot replays only the matches on its
//! path to the root — at most `log2(capacity)` comparisons.
//!
//! "Better" is the least-load rule's: the smaller [`Load`], and between equal loads the
//! newer destination (the larger `seq`), which is the earlier one in the kernel's
//! newest-first list. The order does not depend on where a slot sits in the tree, so slots
//! can be reused freely.

use super::Load;

/// A destination as the tree compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Contender {
    pub load: Load,
    /// Insertion order: a larger `seq` was added later, so it is earlier in the list.
    pub seq: u64,
    pub slot: u32,
}

impl Contender {
    /// No contender: an empty slot, or a destination that cannot take a connection. Its
    /// load `1 / 0` is infinite under cross-multiplication, so every real load beats it
    /// and the matches need no special case.
    const NONE: Contender = Contender {
        load: Load { num: 1, den: 0 },
        seq: 0,
        slot: u32::MAX,
    };

    fn is_none(&self) -> bool {
        self.load.den == 0
    }

    /// Whether `self` wins against `other`: a smaller load, or an equal one and newer.
    /// Never true both ways (`seq` differs between destinations), so a match does not
    /// depend on which side is which.
    fn beats(&self, other: &Contender) -> bool {
        let lhs = u128::from(self.load.num) * u128::from(other.load.den);
        let rhs = u128::from(other.load.num) * u128::from(self.load.den);
        lhs < rhs || (lhs == rhs && self.seq > other.seq)
    }
}

/// The tree in heap order — node 1 is the root, node `capacity + slot` the slot's leaf,
/// node `k`'s children are `2k` and `2k + 1` — stored so that both sides of a match share
/// one cache line: `matches[k]` holds nodes `2k` and `2k + 1`. A replay then reads one line
/// per level; on thousands of destinations the lower levels are not in cache.
#[derive(Debug)]
pub(crate) struct Tournament {
    matches: Vec<Match>,
}

/// The two contenders of one match.
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct Match([Contender; 2]);

impl Tournament {
    /// An empty tree for slots `0..capacity` (a power of two).
    pub fn with_capacity(capacity: usize) -> Self {
        debug_assert!(capacity.is_power_of_two());
        Tournament {
            matches: vec![Match([Contender::NONE; 2]); capacity],
        }
    }

    /// How many slots the tree has.
    pub fn capacity(&self) -> usize {
        self.matches.len()
    }

    fn node(&mut self, k: usize) -> &mut Contender {
        &mut self.matches[k / 2].0[k % 2]
    }

    /// Slot `slot` now holds `contender` (`None`: it takes no connection).
    ///
    /// The replay stops at the first match whose winner is what it was: nothing above it
    /// can change. A destination far from winning — most of them — costs a match or two.
    pub fn set(&mut self, slot: u32, contender: Option<Contender>) {
        let mut k = self.capacity() + slot as usize;
        let mut winner = contender.unwrap_or(Contender::NONE);
        if *self.node(k) == winner {
            return;
        }
        *self.node(k) = winner;
        while k > 1 {
            // The node just written is carried in `winner`, not read back: only its
            // sibling comes from memory.
            let sibling = *self.node(k ^ 1);
            if sibling.beats(&winner) {
                winner = sibling;
            }
            k /= 2;
            let node = self.node(k);
            if *node == winner {
                return;
            }
            *node = winner;
        }
    }

    /// The slot of the best contender, if any slot holds one.
    pub fn winner(&self) -> Option<u32> {
        let root = self.matches[0].0[1];
        (!root.is_none()).then_some(root.slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(num: u64, den: u64, seq: u64, slot: u32) -> Option<Contender> {
        Some(Contender {
            load: Load { num, den },
            seq,
            slot,
        })
    }

    #[test]
    fn least_load_wins_and_ties_go_to_the_newest() {
        let mut tree = Tournament::with_capacity(8);
        assert_eq!(tree.winner(), None);
        tree.set(5, at(3, 2, 1, 5));
        tree.set(2, at(6, 4, 2, 2));
        assert_eq!(tree.winner(), Some(2), "3/2 == 6/4: the newer one");
        tree.set(7, at(1, 1, 0, 7));
        assert_eq!(tree.winner(), Some(7));
        tree.set(7, None);
        tree.set(2, None);
        assert_eq!(tree.winner(), Some(5));
        tree.set(5, None);
        assert_eq!(tree.winner(), None);
    }
}
