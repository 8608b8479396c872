//! The order `ipvsadm -L` and `-S` print in: libipvs's comparators run through glibc's
//! `qsort`, including their flaw.
//!
//! The comparators subtract 32-bit unsigned values and read the difference as a signed int
//! (`ntohl(a) - ntohl(b)`), so two addresses 2^31 or more apart compare backwards
//! (200.0.0.1 sorts before 10.0.0.1), and fwmarks of 2^31 and above sort before address
//! services. Such a comparison is not a total order, so the result also depends on the sort
//! algorithm: glibc 2.36 (Debian 12, where the transcripts come from) sorts with a top-down
//! merge sort, reproduced here step for step instead of using `slice::sort_by`.

use std::net::IpAddr;

use masq_core::control::{DestView, Family, ServiceKey, ServiceView};

/// glibc `msort_with_tmp` on indices: split at n/2, sort both halves, merge taking from the
/// left while `cmp(left, right) <= 0`.
fn msort(b: &mut [usize], tmp: &mut [usize], cmp: &dyn Fn(usize, usize) -> i32) {
    let n = b.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    {
        let (left, right) = b.split_at_mut(n1);
        msort(left, tmp, cmp);
        msort(right, tmp, cmp);
    }
    let (mut i, mut j, mut k) = (0, n1, 0);
    while i < n1 && j < n {
        if cmp(b[i], b[j]) <= 0 {
            tmp[k] = b[i];
            i += 1;
        } else {
            tmp[k] = b[j];
            j += 1;
        }
        k += 1;
    }
    while i < n1 {
        tmp[k] = b[i];
        i += 1;
        k += 1;
    }
    // Whatever is left of the right half is already in place.
    b[..k].copy_from_slice(&tmp[..k]);
}

/// Sort `items` as glibc's qsort would with the C comparator `cmp`.
pub fn qsort_like<T>(items: Vec<T>, cmp: impl Fn(&T, &T) -> i32) -> Vec<T> {
    let n = items.len();
    let mut order: Vec<usize> = (0..n).collect();
    let mut tmp = vec![0; n];
    msort(&mut order, &mut tmp, &|a, b| cmp(&items[a], &items[b]));
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect()
}

/// An address as the four host-order words of `union nf_inet_addr` (IPv4 in the first).
fn words(addr: &IpAddr) -> [u32; 4] {
    match addr {
        IpAddr::V4(a) => [u32::from(*a), 0, 0, 0],
        IpAddr::V6(a) => {
            let o = a.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            [w(0), w(4), w(8), w(12)]
        }
    }
}

/// The C `int` of an unsigned 32-bit difference.
fn diff32(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// Address part of libipvs's comparators: one word for IPv4, word by word for IPv6.
fn cmp_addr(v6: bool, a: &IpAddr, b: &IpAddr) -> i32 {
    let (wa, wb) = (words(a), words(b));
    if !v6 {
        return diff32(wa[0], wb[0]);
    }
    wa.iter()
        .zip(wb.iter())
        .map(|(x, y)| diff32(*x, *y))
        .find(|r| *r != 0)
        .unwrap_or(0)
}

const AF_INET: i32 = 2;
const AF_INET6: i32 = 10;

/// The fields `ipvs_service_entry_t` holds for the comparator: fwmark services carry no
/// protocol, address or port (the netlink answer has none).
fn service_fields(key: &ServiceKey) -> (u32, i32, i32, IpAddr, i32) {
    let unspecified = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    match key {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => {
            let af = if addr.is_ipv6() { AF_INET6 } else { AF_INET };
            (0, af, i32::from(protocol.number()), *addr, i32::from(*port))
        }
        ServiceKey::Fwmark { mark, family } => {
            let af = match family {
                Family::Inet => AF_INET,
                Family::Inet6 => AF_INET6,
            };
            (*mark, af, 0, unspecified, 0)
        }
    }
}

/// libipvs `ipvs_cmp_services`: fwmark, family, protocol, address, port.
pub fn cmp_services(a: &ServiceKey, b: &ServiceKey) -> i32 {
    let (fa, afa, pa, aa, porta) = service_fields(a);
    let (fb, afb, pb, ab, portb) = service_fields(b);
    let r = diff32(fa, fb);
    if r != 0 {
        return r;
    }
    if afa != afb {
        return afa - afb;
    }
    if pa != pb {
        return pa - pb;
    }
    let r = cmp_addr(afa == AF_INET6, &aa, &ab);
    if r != 0 {
        return r;
    }
    porta - portb
}

/// libipvs `ipvs_cmp_dests`: address (by the first one's family), then port.
pub fn cmp_dests(a: &DestView, b: &DestView) -> i32 {
    let r = cmp_addr(a.key.addr.is_ipv6(), &a.key.addr, &b.key.addr);
    if r != 0 {
        return r;
    }
    i32::from(a.key.port) - i32::from(b.key.port)
}

/// Services in ipvsadm's listing order.
pub fn sort_services(services: Vec<ServiceView>) -> Vec<ServiceView> {
    qsort_like(services, |a, b| cmp_services(&a.key, &b.key))
}

/// Destinations in ipvsadm's listing order.
pub fn sort_dests(dests: Vec<DestView>) -> Vec<DestView> {
    qsort_like(dests, cmp_dests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use masq_core::control::Protocol;

    fn tcp(a: &str, port: u16) -> ServiceKey {
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: a.parse().unwrap(),
            port,
        }
    }

    fn order(keys: Vec<ServiceKey>) -> Vec<ServiceKey> {
        qsort_like(keys, cmp_services)
    }

    #[test]
    fn wraparound_quirk_of_libipvs() {
        // As ipvsadm 1.31 lists them: 1.0.0.1, 10.0.0.1, 192.168.0.1, 200.0.0.1 come out as
        // 192, 200, 1, 10.
        let want = vec![
            tcp("192.168.0.1", 80),
            tcp("200.0.0.1", 80),
            tcp("1.0.0.1", 80),
            tcp("10.0.0.1", 80),
        ];
        let inputs = [
            vec![0, 1, 2, 3],
            vec![3, 2, 1, 0],
            vec![2, 0, 3, 1],
            vec![1, 3, 0, 2],
        ];
        for input in inputs {
            let keys: Vec<_> = input.iter().map(|&i| want[(i + 2) % 4]).collect();
            assert_eq!(order(keys), want);
        }
        assert!(
            cmp_addr(
                false,
                &"200.1.1.1".parse().unwrap(),
                &"10.1.1.1".parse().unwrap()
            ) < 0
        );
    }

    #[test]
    fn service_key_order() {
        let fw = |m| ServiceKey::Fwmark {
            mark: m,
            family: Family::Inet,
        };
        let udp = ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr: "10.0.0.3".parse().unwrap(),
            port: 53,
        };
        let got = order(vec![
            fw(7),
            udp,
            tcp("10.0.0.2", 443),
            tcp("10.0.0.1", 443),
            fw(u32::MAX),
            tcp("10.0.0.1", 80),
        ]);
        assert_eq!(
            got,
            vec![
                fw(u32::MAX),
                tcp("10.0.0.1", 80),
                tcp("10.0.0.1", 443),
                tcp("10.0.0.2", 443),
                udp,
                fw(7)
            ]
        );
    }

    #[test]
    fn merge_sort_is_glibcs_on_a_non_transitive_comparator() {
        // With a < b < c < a (rock-paper-scissors) the result depends on the algorithm; this
        // pins glibc's top-down merge (split 3 as 1 + 2); insertion sort would give [1, 2, 0].
        let beats = |x: &u8, y: &u8| -> i32 {
            match (x, y) {
                (a, b) if a == b => 0,
                (0, 1) | (1, 2) | (2, 0) => -1,
                _ => 1,
            }
        };
        assert_eq!(qsort_like(vec![2, 1, 0], beats), vec![2, 0, 1]);
        assert_eq!(qsort_like(vec![0, 1, 2], beats), vec![0, 1, 2]);
    }
}
