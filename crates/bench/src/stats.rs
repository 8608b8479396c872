//! The few statistics the report needs: spread across servers at one instant, averaged over
//! time, and percentiles of response times.

/// Mean, maximum and coefficient of variation of a set of values (one per server).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub mean: f64,
    pub max: f64,
    /// Population standard deviation over the mean; 0 when the mean is 0.
    pub cv: f64,
}

/// The spread of `values`, `None` when there are none.
pub fn spread(values: &[f64]) -> Option<Spread> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let cv = if mean > 0.0 { var.sqrt() / mean } else { 0.0 };
    Some(Spread { mean, max, cv })
}

/// A running average of per-sample values.
#[derive(Debug, Default, Clone, Copy)]
pub struct Average {
    sum: f64,
    count: u64,
}

impl Average {
    pub fn add(&mut self, value: f64) {
        self.sum += value;
        self.count += 1;
    }

    /// The average, `None` before the first value.
    pub fn get(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

/// The `p`-th percentile (0..=100) of `values` by the nearest-rank method; sorts `values`.
/// `None` when empty.
pub fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

/// Rounds to `digits` significant digits, so the JSON stays readable and its numbers do not
/// pretend to a precision the simulation does not have.
pub fn sig(value: f64, digits: i32) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    let magnitude = value.abs().log10().floor() as i32;
    let exponent = digits - 1 - magnitude;
    // Scale by an exact power of ten in the direction that keeps it exact (10^-k is not).
    if exponent >= 0 {
        let factor = 10f64.powi(exponent);
        (value * factor).round() / factor
    } else {
        let factor = 10f64.powi(-exponent);
        (value / factor).round() * factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_spread_of_known_values() {
        let s = spread(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.mean, 5.0);
        assert_eq!(s.max, 9.0);
        // Population standard deviation 2.
        assert!((s.cv - 0.4).abs() < 1e-12, "{}", s.cv);
        let even = spread(&[3.0, 3.0, 3.0]).unwrap();
        assert_eq!((even.cv, even.max / even.mean), (0.0, 1.0));
        assert_eq!(spread(&[0.0, 0.0]).unwrap().cv, 0.0);
        assert_eq!(spread(&[]), None);
    }

    #[test]
    fn stats_average_and_percentiles() {
        let mut a = Average::default();
        assert_eq!(a.get(), None);
        a.add(1.0);
        a.add(2.0);
        assert_eq!(a.get(), Some(1.5));
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50.0), Some(50.0));
        assert_eq!(percentile(&mut v, 99.0), Some(99.0));
        assert_eq!(percentile(&mut v, 100.0), Some(100.0));
        assert_eq!(percentile(&mut v, 0.0), Some(1.0));
        assert_eq!(percentile(&mut [], 50.0), None);
    }

    #[test]
    fn stats_significant_digits() {
        assert_eq!(sig(0.123456, 3), 0.123);
        assert_eq!(sig(123456.0, 3), 123000.0);
        assert_eq!(sig(66_512_345.0, 3).to_string(), "66500000");
        assert_eq!(sig(-0.0004567, 2), -0.00046);
        assert_eq!(sig(0.0, 3), 0.0);
    }
}
