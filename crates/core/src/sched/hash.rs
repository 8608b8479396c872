//! The kernel's hash functions, bit for bit, so that `sh`, `dh`, `mh` and the `lblc` tables
//! put a flow where a kernel director would.
//!
//! * `hash_32` is include/linux/hash.h: multiply by `GOLDEN_RATIO_32` (0x61C88647) and keep
//!   the top `bits` bits.
//! * `hsiphash` is lib/siphash.c on a 64-bit kernel, where "HalfSipHash-1-3" is really
//!   SipHash-1-3 with 64-bit lanes truncated to 32 bits (32-bit kernels run the real
//!   HalfSipHash and hash differently; 64-bit is what directors run). Checked against the
//!   kernel's own KUnit vectors below.
//! * `fold_addr` is how every IPVS hashing scheduler turns an address into a host-order
//!   `u32`: an IPv4 address as is, an IPv6 address as the XOR of its four 32-bit words.

use std::net::IpAddr;

/// The kernel's `GOLDEN_RATIO_32`.
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// include/linux/hash.h `hash_32(val, bits)`, for `1 <= bits <= 32`.
pub(crate) fn hash_32(val: u32, bits: u32) -> u32 {
    debug_assert!((1..=32).contains(&bits));
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// An address as the IPVS schedulers hash it (`ntohl(addr_fold)`).
pub(crate) fn fold_addr(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            // XOR of the big-endian words then ntohl equals XOR of the host-order words,
            // because byte swapping distributes over XOR.
            let o = a.octets();
            (0..4).fold(0, |acc, i| {
                acc ^ u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
            })
        }
    }
}

/// An `hsiphash_key_t` on a 64-bit kernel: two 64-bit words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HsiphashKey(pub u64, pub u64);

/// lib/siphash.c `hsiphash()` as a 64-bit kernel computes it (SipHash-1-3, low 32 bits).
pub(crate) fn hsiphash(data: &[u8], key: HsiphashKey) -> u32 {
    let mut v = [
        0x736f_6d65_7073_6575 ^ key.0,
        0x646f_7261_6e64_6f6d ^ key.1,
        0x6c79_6765_6e65_7261 ^ key.0,
        0x7465_6462_7974_6573 ^ key.1,
    ];
    let mut b = (data.len() as u64) << 56;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let m = u64::from_le_bytes(word);
        v[3] ^= m;
        sipround(&mut v);
        v[0] ^= m;
    }
    for (i, byte) in chunks.remainder().iter().enumerate() {
        b |= u64::from(*byte) << (8 * i);
    }
    v[3] ^= b;
    sipround(&mut v);
    v[0] ^= b;
    v[2] ^= 0xff;
    sipround(&mut v);
    sipround(&mut v);
    sipround(&mut v);
    ((v[0] ^ v[1]) ^ (v[2] ^ v[3])) as u32
}

fn sipround(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// lib/siphash_kunit.c, `BITS_PER_LONG == 64`: vector `i` hashes the bytes `0..i`.
    const KUNIT_KEY: HsiphashKey = HsiphashKey(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
    const KUNIT_VECTORS: [u32; 64] = [
        0x050fc4dc, 0x7d57ca93, 0x4dc7d44d, 0xe7ddf7fb, 0x88d38328, 0x49533b67, 0xc59f22a7,
        0x9bb11140, 0x8d299a8e, 0x6c063de4, 0x92ff097f, 0xf94dc352, 0x57b4d9a2, 0x1229ffa7,
        0xc0f95d34, 0x2a519956, 0x7d908b66, 0x63dbd80c, 0xb473e63e, 0x8d297d1c, 0xa6cce040,
        0x2b45f844, 0xa320872e, 0xdae6c123, 0x67349c8c, 0x705b0979, 0xca9913a5, 0x4ade3b35,
        0xef6cd00d, 0x4ab1e1f4, 0x43c5e663, 0x8c21d1bc, 0x16a7b60d, 0x7a8ff9bf, 0x1f2a753e,
        0xbf186b91, 0xada26206, 0xa3c33057, 0xae3a36a1, 0x7b108392, 0x99e41531, 0x3f1ad944,
        0xc8138825, 0xc28949a6, 0xfaf8876b, 0x9f042196, 0x68b1d623, 0x8b5114fd, 0xdf074c46,
        0x12cc86b3, 0x0a52098f, 0x9d292f9a, 0xa2f41f12, 0x43a71ed0, 0x73f0bce6, 0x70a7e980,
        0x243c6d75, 0xfdb71513, 0xa67d8a08, 0xb7e8f148, 0xf7a644ee, 0x0f1837f2, 0x4b6694e0,
        0xb7bbb3a8,
    ];

    #[test]
    fn sched_hsiphash_matches_the_kernel_kunit_vectors() {
        let input: Vec<u8> = (0..64).collect();
        for (len, want) in KUNIT_VECTORS.iter().enumerate() {
            assert_eq!(hsiphash(&input[..len], KUNIT_KEY), *want, "length {len}");
        }
    }

    #[test]
    fn sched_hash_32_is_the_golden_ratio_multiply() {
        assert_eq!(hash_32(0, 8), 0);
        assert_eq!(hash_32(1, 32), 0x61C8_8647);
        // 192.168.0.10, the VIP of the kernel transcripts: bucket 48 of 256, which is why
        // `dh` sends everything to the newest of three servers there (48 % 3 == 0).
        assert_eq!(hash_32(0xC0A8_000A, 8), 0x30);
        assert_eq!(hash_32(0xFFFF_FFFF, 8), 0x9E);
    }

    #[test]
    fn sched_fold_addr_xors_ipv6_words() {
        assert_eq!(
            fold_addr(IpAddr::V4(Ipv4Addr::new(192, 168, 0, 101))),
            0xC0A8_0065
        );
        let v6: Ipv6Addr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        // 0x20010db8 ^ 0x00010002 ^ 0x00030004 ^ 0x00050006
        assert_eq!(fold_addr(IpAddr::V6(v6)), 0x2006_0db8);
    }
}
