//! The few C library parsers whose exact acceptance rules ipvsadm's behaviour depends on:
//! `strtol` (via ipvsadm's `string_to_number`), `atoi`, `inet_aton` and glibc's `inet_ntop`
//! for IPv6. Re-implemented byte for byte so that `-t 10.1:80`, `-w +5`, `-M 64junk` or
//! `-p ' 60'` are accepted or rejected exactly as ipvsadm does.

use std::net::{IpAddr, Ipv6Addr};

/// C `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// `strtol(s, &end, 10)` where the whole string must be consumed (`*end == '\0' && end != s`)
/// and no ERANGE occurred. Leading C whitespace and one sign are accepted, as strtol does.
pub(crate) fn strtol_full(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && is_c_space(b[i]) {
        i += 1;
    }
    let negative = match b.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let start = i;
    let mut value: i64 = 0;
    let mut overflow = false;
    while i < b.len() && b[i].is_ascii_digit() {
        let d = i64::from(b[i] - b'0');
        // Accumulate negatively so that LONG_MIN is representable, like glibc.
        match value.checked_mul(10).and_then(|v| v.checked_sub(d)) {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start || i != b.len() || overflow {
        return None;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

/// ipvsadm's `string_to_number(s, min, max)`: a whole-string decimal in `min..=max`.
pub(crate) fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    strtol_full(s).filter(|n| (min..=max).contains(n))
}

/// C `atoi`: leading whitespace, optional sign, then as many digits as there are; anything
/// after is ignored; no digits gives 0. glibc computes `(int) strtol(...)`, so values beyond
/// `long` saturate and are then truncated to 32 bits.
pub(crate) fn atoi(s: &str) -> i32 {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && is_c_space(b[i]) {
        i += 1;
    }
    let negative = match b.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut value: i64 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        let d = i64::from(b[i] - b'0');
        value = if negative {
            value.saturating_mul(10).saturating_sub(d)
        } else {
            value.saturating_mul(10).saturating_add(d)
        };
        i += 1;
    }
    // Truncation to int is exactly what the C cast does.
    value as i32
}

/// `strtoul(s, &end, 0)` on a string that starts with a digit: returns the value (None on
/// overflow beyond 32 bits, which inet_aton rejects anyway) and the number of bytes used.
fn strtoul_base0(b: &[u8]) -> Option<(u64, usize)> {
    let (radix, mut i) = if b.len() >= 2 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') {
        // "0x" followed by no hex digit parses as just "0", leaving the 'x' unconsumed.
        if b.get(2).is_some_and(|c| c.is_ascii_hexdigit()) {
            (16, 2)
        } else {
            return Some((0, 1));
        }
    } else if b.first() == Some(&b'0') {
        (8, 1)
    } else {
        (10, 0)
    };
    let mut value: u64 = 0;
    while let Some(d) = b.get(i).and_then(|c| (*c as char).to_digit(radix)) {
        value = value
            .saturating_mul(u64::from(radix))
            .saturating_add(u64::from(d));
        i += 1;
    }
    Some((value, i))
}

/// glibc `inet_aton`: 1 to 4 dot-separated parts, each decimal, octal (`0…`) or hex (`0x…`);
/// the last part fills the remaining bytes (`10.1` is 10.0.0.1). Trailing characters are
/// allowed after a C whitespace only. Returns the address in host byte order.
pub(crate) fn inet_aton(s: &str) -> Option<u32> {
    const MAX: [u64; 4] = [0xffff_ffff, 0x00ff_ffff, 0xffff, 0xff];
    let b = s.as_bytes();
    let mut parts: Vec<u8> = Vec::with_capacity(3);
    let mut i = 0;
    let val;
    loop {
        if !b.get(i).is_some_and(|c| c.is_ascii_digit()) {
            return None;
        }
        let (v, used) = strtoul_base0(&b[i..])?;
        if v > 0xffff_ffff {
            return None;
        }
        i += used;
        if b.get(i) == Some(&b'.') {
            if parts.len() > 2 || v > 0xff {
                return None;
            }
            parts.push(v as u8);
            i += 1;
        } else {
            val = v;
            break;
        }
    }
    if let Some(&c) = b.get(i) {
        if !c.is_ascii() || !is_c_space(c) {
            return None;
        }
    }
    if val > MAX[parts.len()] {
        return None;
    }
    let mut word: u32 = 0;
    for (k, p) in parts.iter().enumerate() {
        word |= u32::from(*p) << (24 - 8 * k);
    }
    Some(word | val as u32)
}

/// glibc `inet_ntop(AF_INET6, …)`: the longest run (first one on ties) of two or more zero
/// groups becomes `::`; IPv4-mapped and IPv4-compatible addresses end in dotted quad.
pub(crate) fn inet_ntop6(a: &Ipv6Addr) -> String {
    let w = a.segments();
    let (mut best_base, mut best_len) = (None::<usize>, 0usize);
    let mut cur: Option<(usize, usize)> = None;
    for (i, &g) in w.iter().enumerate() {
        if g == 0 {
            cur = Some(match cur {
                Some((b, l)) => (b, l + 1),
                None => (i, 1),
            });
        } else {
            cur = None;
        }
        if let Some((b, l)) = cur {
            if l > best_len {
                best_base = Some(b);
                best_len = l;
            }
        }
    }
    if best_len < 2 {
        best_base = None;
    }
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if let Some(b) = best_base {
            if i >= b && i < b + best_len {
                if i == b {
                    out.push(':');
                }
                i += 1;
                continue;
            }
        }
        if i != 0 {
            out.push(':');
        }
        let embedded_v4 =
            i == 6 && best_base == Some(0) && (best_len == 6 || (best_len == 5 && w[5] == 0xffff));
        if embedded_v4 {
            let o = a.octets();
            out.push_str(&format!("{}.{}.{}.{}", o[12], o[13], o[14], o[15]));
            break;
        }
        out.push_str(&format!("{:x}", w[i]));
        i += 1;
    }
    if best_base.is_some_and(|b| b + best_len == 8) {
        out.push(':');
    }
    out
}

/// An address as `inet_ntop` prints it.
pub(crate) fn ntop(addr: &IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => inet_ntop6(a),
    }
}

/// Cut a string to at most `max` bytes, as a C buffer or a `'\0'` store does; never splits a
/// UTF-8 character (names come from ASCII files in practice).
pub(crate) fn truncate_bytes(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// Left-justify in a field of `width` bytes, as printf's `%-Ns` does.
pub(crate) fn ljust(s: &str, width: usize) -> String {
    let mut out = String::with_capacity(width.max(s.len()));
    out.push_str(s);
    while out.len() < width {
        out.push(' ');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtol_accepts_what_c_accepts() {
        assert_eq!(strtol_full("80"), Some(80));
        assert_eq!(strtol_full(" +80"), Some(80));
        assert_eq!(strtol_full("-1"), Some(-1));
        assert_eq!(strtol_full("\t7"), Some(7));
        assert_eq!(strtol_full("80 "), None);
        assert_eq!(strtol_full(""), None);
        assert_eq!(strtol_full("-"), None);
        assert_eq!(strtol_full("0x10"), None);
        assert_eq!(strtol_full("9223372036854775807"), Some(i64::MAX));
        assert_eq!(strtol_full("9223372036854775808"), None);
        assert_eq!(strtol_full("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(string_to_number("65535", 0, 65535), Some(65535));
        assert_eq!(string_to_number("65536", 0, 65535), None);
    }

    #[test]
    fn atoi_stops_at_junk() {
        assert_eq!(atoi("64abc"), 64);
        assert_eq!(atoi("abc"), 0);
        assert_eq!(atoi(" -3"), -3);
        assert_eq!(atoi("4294967360"), 64);
    }

    #[test]
    fn inet_aton_forms() {
        assert_eq!(inet_aton("192.168.0.10"), Some(0xc0a8_000a));
        assert_eq!(inet_aton("10.1"), Some(0x0a00_0001));
        assert_eq!(inet_aton("10.1.2"), Some(0x0a01_0002));
        assert_eq!(inet_aton("0x0a000001"), Some(0x0a00_0001));
        assert_eq!(inet_aton("012.0.0.1"), Some(0x0a00_0001));
        assert_eq!(inet_aton("64"), Some(64));
        assert_eq!(inet_aton("1.2.3.4 junk"), Some(0x0102_0304));
        assert_eq!(inet_aton("1.2.3.4junk"), None);
        assert_eq!(inet_aton("256.0.0.1"), None);
        assert_eq!(inet_aton("1.2.3.256"), None);
        assert_eq!(inet_aton("1.2.3.4.5"), None);
        assert_eq!(inet_aton("09"), None);
        assert_eq!(inet_aton("0x"), None);
        assert_eq!(inet_aton(""), None);
        assert_eq!(inet_aton("a.b.c.d"), None);
        assert_eq!(inet_aton("1..2"), None);
    }

    #[test]
    fn ntop6_like_glibc() {
        let p = |s: &str| inet_ntop6(&s.parse().unwrap());
        assert_eq!(p("2001:db8::9"), "2001:db8::9");
        assert_eq!(p("::1"), "::1");
        assert_eq!(p("::"), "::");
        assert_eq!(p("::2"), "::2");
        assert_eq!(p("1::"), "1::");
        assert_eq!(p("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
        assert_eq!(p("::1.2.3.4"), "::1.2.3.4");
        assert_eq!(p("1:0:0:2:0:0:0:3"), "1:0:0:2::3");
        assert_eq!(p("1:0:0:2:0:0:3:4"), "1::2:0:0:3:4");
        assert_eq!(p("1:0:2:3:4:5:6:7"), "1:0:2:3:4:5:6:7");
    }

    #[test]
    fn byte_helpers() {
        let mut s = "abcdef".to_string();
        truncate_bytes(&mut s, 3);
        assert_eq!(s, "abc");
        assert_eq!(ljust("ab", 4), "ab  ");
        assert_eq!(ljust("abcdef", 4), "abcdef");
    }
}
