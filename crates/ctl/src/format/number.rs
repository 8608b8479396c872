//! ipvsadm's `print_largenum`: the 9-character number columns of `--stats` and `--rate`.

/// One number column. Without `--exact`, values are scaled to fit 8 digits plus a unit
/// (K = 10^3, M = 10^6, G = 10^9, T = 10^12), always truncating; with `--exact` the full
/// number is right-aligned in 9 characters, or as wide as it needs with one leading space.
pub fn largenum(value: u64, exact: bool) -> String {
    if exact {
        let digits = value.to_string();
        let width = if digits.len() <= 8 {
            9
        } else {
            digits.len() + 1
        };
        return format!("{digits:>width$}");
    }
    if value < 100_000_000 {
        format!("{value:>9}")
    } else if value < 1_000_000_000 {
        format!("{:>8}K", value / 1_000)
    } else if value < 100_000_000_000 {
        format!("{:>8}M", value / 1_000_000)
    } else if value < 100_000_000_000_000 {
        format!("{:>8}G", value / 1_000_000_000)
    } else {
        format!("{:>8}T", value / 1_000_000_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::largenum;

    #[test]
    fn boundaries_as_ipvsadm_prints_them() {
        // Values observed from ipvsadm 1.31.
        assert_eq!(largenum(99_999_999, false), " 99999999");
        assert_eq!(largenum(100_000_000, false), "  100000K");
        assert_eq!(largenum(999_999_999, false), "  999999K");
        assert_eq!(largenum(1_000_000_000, false), "    1000M");
        assert_eq!(largenum(99_999_999_999, false), "   99999M");
        assert_eq!(largenum(100_000_000_000, false), "     100G");
        assert_eq!(largenum(99_999_999_999_999, false), "   99999G");
        assert_eq!(largenum(100_000_000_000_000, false), "     100T");
        assert_eq!(largenum(u64::MAX, false), "18446744T");
        assert_eq!(largenum(0, false), "        0");
    }

    #[test]
    fn exact_widths() {
        assert_eq!(largenum(12_345_678, true), " 12345678");
        assert_eq!(largenum(123_456_789, true), " 123456789");
        assert_eq!(largenum(5_000_000_000, true), " 5000000000");
        assert_eq!(largenum(7, true), "        7");
    }
}
