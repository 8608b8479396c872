//! `twos` — power of two choices (ip_vs_twos.c, Linux 6.2+).
//!
//! Algorithm (Mitzenmacher): draw two destinations at random, each with probability
//! proportional to its weight, and give the connection to the less loaded of the two
//! (`overhead / weight`, compared as `w2 * o1 > w1 * o2` in 64-bit; the first draw wins
//! ties).
//!
//! Kernel details kept: only destinations that are not overloaded and have weight > 0
//! take part; `total` is their weight sum **plus one**, each draw is `rand32 % total`, and
//! the walk subtracts weights in list order until the draw is `<= 0` — so the first
//! eligible destination has one extra chance in `total`.
//!
//! Randomness: the kernel uses `get_random_u32()`; masq uses a small PRNG of its own
//! (SplitMix64), seeded once per scheduler from the process's random hash keys, or with a
//! fixed seed for tests, so `schedule()` never makes a syscall. Picks are not
//! reproducible against a kernel and are not meant to be.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Destination;

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough to spread load.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

/// The `twos` scheduler.
#[derive(Debug)]
pub struct PowerOfTwoChoices {
    rng: SplitMix64,
}

impl PowerOfTwoChoices {
    /// init_service, seeded from the process's randomness (the keys std draws for its hash
    /// maps), so two services or two directors do not draw in lockstep.
    pub fn new(_dests: &[Arc<Destination>]) -> Self {
        Self::with_seed(RandomState::new().build_hasher().finish())
    }

    /// A scheduler whose draws are fixed by `seed` (for tests and reproducible runs).
    pub fn with_seed(seed: u64) -> Self {
        PowerOfTwoChoices {
            rng: SplitMix64(seed),
        }
    }
}

fn eligible(dest: &Destination) -> bool {
    !dest.is_overloaded() && dest.weight() > 0
}

impl Scheduler for PowerOfTwoChoices {
    fn name(&self) -> &'static str {
        "twos"
    }

    fn dests_changed(&mut self, _dests: &[Arc<Destination>], _change: DestChange) {}

    fn schedule(&mut self, dests: &[Arc<Destination>], _input: &SchedInput) -> Option<usize> {
        let total: i64 = dests
            .iter()
            .filter(|d| eligible(d))
            .map(|d| i64::from(d.weight()))
            .sum();
        if total == 0 {
            return None;
        }
        let total = total + 1;
        let mut r1 = i64::from(self.rng.next_u32()) % total;
        let mut r2 = i64::from(self.rng.next_u32()) % total;
        let mut choice1: Option<usize> = None;
        let mut choice2: Option<usize> = None;
        for (i, dest) in dests.iter().enumerate() {
            if !eligible(dest) {
                continue;
            }
            let w = i64::from(dest.weight());
            r1 -= w;
            r2 -= w;
            if r1 <= 0 && choice1.is_none() {
                choice1 = Some(i);
            }
            if r2 <= 0 && choice2.is_none() {
                choice2 = Some(i);
            }
            if choice1.is_some() && choice2.is_some() {
                break;
            }
        }
        // `total` exceeds every draw by at most the weight sum, so both walks end on an
        // eligible destination.
        let (c1, c2) = (choice1?, choice2?);
        let (d1, d2) = (&dests[c1], &dests[c2]);
        let w1 = i64::from(d1.weight());
        let w2 = i64::from(d2.weight());
        if w2 * d1.overhead() > w1 * d2.overhead() {
            Some(c2)
        } else {
            Some(c1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{from, Conn, Lab};
    use std::net::Ipv4Addr;

    fn dests(weights: &[i32]) -> Vec<Arc<Destination>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                Arc::new(Destination::for_test(
                    Ipv4Addr::new(10, 0, 0, i as u8 + 1),
                    80,
                    w,
                ))
            })
            .collect()
    }

    #[test]
    fn sched_twos_same_seed_same_picks_and_seeds_differ() {
        let d = dests(&[1, 2, 3, 4]);
        let input = from(101, 1);
        let run = |twos: &mut PowerOfTwoChoices| -> Vec<Option<usize>> {
            (0..64).map(|_| twos.schedule(&d, &input)).collect()
        };
        let a = run(&mut PowerOfTwoChoices::with_seed(42));
        assert_eq!(a, run(&mut PowerOfTwoChoices::with_seed(42)));
        assert_ne!(a, run(&mut PowerOfTwoChoices::with_seed(43)));
        assert_ne!(a, run(&mut PowerOfTwoChoices::new(&d)));
    }

    #[test]
    fn sched_twos_idle_picks_follow_weights() {
        // All idle: the first draw always wins (0 > 0 is false), so picks are weighted
        // random: weights 1:3 over a total of 5 give the first entry 2/5 and the second 3/5.
        let d = dests(&[1, 3]);
        let mut twos = PowerOfTwoChoices::with_seed(7);
        let input = from(101, 1);
        let n = 20_000;
        let first = (0..n)
            .filter(|_| twos.schedule(&d, &input) == Some(0))
            .count();
        assert!((7_600..8_400).contains(&first), "{first}");
    }

    #[test]
    fn sched_twos_prefers_the_less_loaded_of_two() {
        // Weights 1:1:1 give draws over 0..=3: the first entry 2/4, the others 1/4 each.
        // The loaded last entry only wins when both draws land on it: 1/16 of the time
        // (one draw alone would give it 1/4).
        let d = dests(&[1, 1, 1]);
        d[2].set_conns_for_test(1000, 0);
        let mut twos = PowerOfTwoChoices::with_seed(11);
        let input = from(101, 1);
        let n = 16_000;
        let loaded = (0..n)
            .filter(|_| twos.schedule(&d, &input) == Some(2))
            .count();
        assert!((850..1_150).contains(&loaded), "{loaded}");
    }

    #[test]
    fn sched_twos_skips_quiesced_and_overloaded() {
        let mut lab = Lab::new("twos");
        lab.sched = Box::new(PowerOfTwoChoices::with_seed(3));
        assert_eq!(lab.picks(1, Conn::Untracked), "-");
        lab.add(7, 1).add(9, 5).add(11, 1);
        lab.edit(9, 0);
        lab.dest(11).set_overloaded_for_test(true);
        assert_eq!(lab.picks(50, Conn::Held), ["7"; 50].join(" "));
        lab.dest(7).set_overloaded_for_test(true);
        assert_eq!(lab.picks(1, Conn::Untracked), "-");
    }
}
