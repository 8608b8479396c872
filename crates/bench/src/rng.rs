//! A small seeded pseudo-random generator, so that a run is reproducible from its seed
//! alone, on any machine, with no dependency: SplitMix64 (Steele, Lea, Flood, "Fast
//! splittable pseudorandom number generators", OOPSLA 2014), which passes BigCrush and is
//! more than enough to draw arrivals and durations.
//!
//! Each part of a workload draws from its own stream ([`Rng::stream`]), so that adding a
//! draw to one part (say, a new field of an arrival) does not shift every other number.

/// SplitMix64.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// An independent generator for the part of the workload named `stream`, derived from
    /// `seed`.
    pub fn stream(seed: u64, stream: &str) -> Self {
        // FNV-1a of the name, mixed into the seed by one SplitMix64 step.
        let name = stream.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        let mut mixer = Rng(seed ^ name);
        Rng(mixer.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1]: safe to take the logarithm of.
    pub fn next_f64_nonzero(&mut self) -> f64 {
        1.0 - self.next_f64()
    }

    /// Uniform integer in `0..n` (Lemire's multiply-shift with rejection: no modulo bias).
    ///
    /// # Panics
    /// If `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            let low = m as u64;
            if low >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// Exponentially distributed with the given `rate` (mean `1 / rate`): the gap between
    /// two arrivals of a Poisson process.
    pub fn exponential(&mut self, rate: f64) -> f64 {
        -self.next_f64_nonzero().ln() / rate
    }

    /// Pareto distributed with minimum `scale` and tail index `alpha` (heavy-tailed for
    /// `alpha` < 2: infinite variance).
    pub fn pareto(&mut self, scale: f64, alpha: f64) -> f64 {
        scale / self.next_f64_nonzero().powf(1.0 / alpha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_same_seed_same_sequence() {
        let a: Vec<u64> = {
            let mut r = Rng::new(42);
            (0..100).map(|_| r.next_u64()).collect()
        };
        let mut r = Rng::new(42);
        let b: Vec<u64> = (0..100).map(|_| r.next_u64()).collect();
        assert_eq!(a, b);
        let mut r = Rng::new(43);
        let c: Vec<u64> = (0..100).map(|_| r.next_u64()).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn rng_known_first_values() {
        // SplitMix64 reference outputs for seed 0 (from the published C implementation).
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn rng_streams_are_independent_and_reproducible() {
        let mut a = Rng::stream(7, "arrivals");
        let mut b = Rng::stream(7, "clients");
        let mut a2 = Rng::stream(7, "arrivals");
        let x: Vec<u64> = (0..10).map(|_| a.next_u64()).collect();
        let y: Vec<u64> = (0..10).map(|_| b.next_u64()).collect();
        let z: Vec<u64> = (0..10).map(|_| a2.next_u64()).collect();
        assert_ne!(x, y);
        assert_eq!(x, z);
    }

    #[test]
    fn rng_below_stays_in_range_and_covers_it() {
        let mut r = Rng::new(1);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            let v = r.below(7);
            seen[v as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (850..1150).contains(&c)), "{seen:?}");
    }

    #[test]
    fn rng_distributions_have_their_means() {
        let mut r = Rng::new(3);
        let n = 200_000;
        let unit: f64 = (0..n).map(|_| r.next_f64()).sum::<f64>() / n as f64;
        assert!((unit - 0.5).abs() < 0.005, "{unit}");
        let exp: f64 = (0..n).map(|_| r.exponential(4.0)).sum::<f64>() / n as f64;
        assert!((exp - 0.25).abs() < 0.005, "{exp}");
        // Pareto(alpha = 3): mean = alpha * scale / (alpha - 1) = 1.5 * scale.
        let par: f64 = (0..n).map(|_| r.pareto(2.0, 3.0)).sum::<f64>() / n as f64;
        assert!((par - 3.0).abs() < 0.05, "{par}");
        assert!((0..1000).all(|_| r.pareto(2.0, 1.5) >= 2.0));
    }
}
