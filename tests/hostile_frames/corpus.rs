//! The corpus: the kinds of frames sent to each side, in order, what masqd must do with
//! every frame of each, and how the frames of a kind are marked so that a capture tells
//! them apart. `hostile.py` builds them with scapy.

/// Frames of each kind sent.
pub const PER_KIND: usize = 20;
/// The first marker of the VIP-side and the DIP-side corpus: kind `i` of a side uses
/// markers `base + 100 i ..` (as client port, IP identification or ICMP rest-of-header).
pub const VIP_BASE: u32 = 20000;
pub const DIP_BASE: u32 = 25000;
/// The normal client's ports (its namespace's ephemeral range), apart from the markers.
pub const EPHEMERAL: (u16, u16) = (50000, 60999);

/// What masqd must do with every frame of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Dropped and counted under this reason.
    Drop(&'static str),
    /// Well formed: forwarded, correctly translated, every checksum right.
    Forward,
    /// Forwarded as it came, its defect kept: kernel IPVS does the same (it updates L4
    /// checksums incrementally, never verifying them: that would cost a pass over every
    /// payload), and the real server's stack discards it. The capture checks the defect is
    /// still there.
    PassThrough(Defect),
    /// Not the director's business (no connection of its): left to the host's kernel.
    NotOurs,
    /// Too big for the far side with DF set: dropped (counted, under whatever reason) and
    /// answered with ICMP fragmentation needed carrying the far side's MTU.
    FragNeeded,
}

/// What a pass-through kind carries through the director.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// A wrong TCP/UDP checksum (an incremental update keeps it wrong).
    BadL4Checksum,
}

pub use Expect::{Drop, Forward, FragNeeded, NotOurs, PassThrough};

/// The corpus sent to the VIP side, in order; `hostile.py` builds each kind.
pub const VIP_CASES: &[(&str, Expect)] = &[
    ("eth_header_only_ipv4", Drop("malformed")),
    ("eth_header_only_arp", Drop("malformed")),
    ("arp_truncated", Drop("malformed")),
    ("arp_other_hardware", Drop("malformed")),
    ("ip_truncated", Drop("malformed")),
    ("ip_ihl_below_5", Drop("malformed")),
    ("ip_ihl_beyond_length", Drop("malformed")),
    ("ip_total_length_beyond_frame", Drop("malformed")),
    ("ip_total_length_cuts_tcp", Drop("malformed")),
    ("ip_trailing_padding", Forward),
    ("ip_bad_checksum", Drop("bad_ip_checksum")),
    ("ip_options_syn", Forward),
    ("tcp_truncated", Drop("malformed")),
    ("tcp_data_offset_below_5", Drop("malformed")),
    ("tcp_data_offset_beyond_segment", Drop("malformed")),
    ("tcp_bad_checksum_syn", PassThrough(Defect::BadL4Checksum)),
    ("tcp_no_flags", Drop("tcp_not_syn")),
    ("tcp_syn_fin", Drop("tcp_bad_flags")),
    ("udp_truncated", Drop("malformed")),
    ("udp_length_beyond_datagram", Drop("malformed")),
    ("udp_length_below_8", Drop("malformed")),
    ("udp_bad_checksum", PassThrough(Defect::BadL4Checksum)),
    ("ttl_1_syn", Drop("ttl_expired")),
    ("ttl_0_syn", Drop("ttl_expired")),
    ("fragment_orphan", Drop("fragment")),
    ("fragment_tiny_first", Drop("malformed")),
    ("fragment_of_icmp_error", Drop("fragment")),
    ("icmp_error_about_connection", Forward),
    ("icmp_error_bad_checksum", Drop("bad_icmp_checksum")),
    ("icmp_error_bad_ip_checksum", Drop("bad_ip_checksum")),
    ("icmp_error_quoting_garbage", Drop("malformed")),
    ("icmp_error_quoting_not_ipv4", Drop("malformed")),
    ("icmp_error_quoting_unknown_flow", NotOurs),
    ("jumbo_tcp_ack_no_connection", Drop("tcp_not_syn")),
    ("jumbo_total_length_beyond_frame", Drop("malformed")),
];

/// The corpus a real server sends to the DIP side, in order.
pub const DIP_CASES: &[(&str, Expect)] = &[
    ("dip_eth_header_only_ipv4", Drop("malformed")),
    ("dip_ip_truncated", Drop("malformed")),
    ("dip_ip_ihl_below_5", Drop("malformed")),
    ("dip_ip_bad_checksum", Drop("bad_ip_checksum")),
    ("dip_tcp_truncated", Drop("malformed")),
    ("dip_udp_length_beyond_datagram", Drop("malformed")),
    ("dip_ttl_1_on_connection", Drop("ttl_expired")),
    ("dip_fragment_orphan", NotOurs),
    ("dip_icmp_error_about_connection", Forward),
    ("dip_icmp_error_bad_checksum", Drop("bad_icmp_checksum")),
    ("dip_icmp_error_quoting_garbage", Drop("malformed")),
];

/// Builds and sends the corpus with scapy. argv[1] is a JSON object: iface, src_mac,
/// dst_mac, count, base, kinds (in order), held_port, rs_ip, ack_dir. After each kind it
/// prints `sent KIND BASE COUNT` and waits for the file ACK_DIR/ack-KIND, so that the test
/// can read masqd's counters kind by kind.
pub const HOSTILE_PY: &str = include_str!("hostile.py");
