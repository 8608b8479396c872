//! What the director decided about a frame, why it dropped one, and the per-worker counters
//! that make every decision visible.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One of the director's two interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The external interface, where clients reach the VIPs.
    Vip,
    /// The internal interface, where the real servers are (its address is the DIP).
    Dip,
}

impl Side {
    /// Lower-case name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Side::Vip => "vip",
            Side::Dip => "dip",
        }
    }
}

/// The fate of one received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The frame was rewritten in place; send it out of this side.
    Forward(Side),
    /// The frame waits for the next hop's MAC; it comes out of `poll_transmit` later.
    Queued,
    /// A copy of the frame with a tunnel header in front waits to go out of this side
    /// (the frame itself cannot grow in place); it comes out of `poll_transmit`.
    Encapsulated(Side),
    /// The frame is dropped, for this reason.
    Drop(DropReason),
    /// Not the director's business (the host's own traffic); the host's kernel has its own
    /// copy of the frame and deals with it.
    NotOurs,
}

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// Why a frame was dropped. Every drop has one, and each is counted.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $(#[doc = $doc] $variant,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];

            /// The snake_case name used in stats, metrics and traces.
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }

            /// A sentence for people.
            pub fn describe(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $doc,)*
                }
            }
        }
    };
}

drop_reasons! {
    Malformed => "malformed", "a header is truncated or its length fields lie";
    BadIpChecksum => "bad_ip_checksum", "the IPv4 header checksum is wrong";
    Fragment => "fragment", "an IP fragment whose first fragment was not seen (masq forwards fragments in order, it does not reassemble)";
    FragmentLimit => "fragment_limit", "a fragmented datagram of a client that already has 64 in flight through the director";
    TtlExpired => "ttl_expired", "the TTL ran out; ICMP time exceeded was sent back";
    TcpBadFlags => "tcp_bad_flags", "a TCP segment with SYN and FIN together";
    TcpNotSyn => "tcp_not_syn", "a TCP segment for no known connection that is not a SYN";
    NoDestination => "no_destination", "the scheduler found no available real server; ICMP port unreachable was sent";
    DestUnavailable => "dest_unavailable", "the connection's real server was deleted (expire_nodest_conn=0)";
    NoRouteToRealServer => "no_route_to_real_server", "the real server is not on the DIP interface's networks";
    NoRouteToClient => "no_route_to_client", "the client is not on-link and no --vip-gateway is set";
    NeighbourQueueFull => "neighbour_queue_full", "too many frames already wait for ARP resolution";
    NeighbourUnreachable => "neighbour_unreachable", "the next hop never answered ARP";
    NeighbourTableFull => "neighbour_table_full", "the outgoing side's neighbour table is full (--max-neighbours) of entries it may not shed";
    OutboxFull => "outbox_full", "no room to queue a frame the director generated or encapsulated for a tunnel";
    Oversize => "oversize", "the frame did not fit the receive buffer";
    BadIcmpChecksum => "bad_icmp_checksum", "an ICMP error about a connection has a wrong checksum";
    FragNeeded => "frag_needed", "larger than the outgoing link's MTU with DF set; ICMP fragmentation needed was sent";
    TooBig => "too_big", "larger than the outgoing link's MTU without DF (masq does not fragment)";
    TableFull => "table_full", "the connection table is full (--max-conns) and holds nothing it may shed (half-open TCP, lone UDP datagrams, idle templates)";
    TunnelGso => "tunnel_gso", "a GSO super-frame for a tunnelled real server that masq cannot cut into segments itself (not TCP over IPv4, e.g. UDP GSO), or one whose real server has not answered ARP yet";
    TunnelIcmp => "tunnel_icmp", "an ICMP error about a tunnelled packet (it quotes the outer header): the director sent its own error about the inner packet to the client instead, where the client needs one";
}

/// Counters of one worker. Each worker owns one and bumps it without contention; readers
/// sum all workers'.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    pub forwarded_in: AtomicU64,
    pub forwarded_out: AtomicU64,
    pub arp_replies: AtomicU64,
    pub arp_requests: AtomicU64,
    pub icmp_sent: AtomicU64,
    pub queued: AtomicU64,
    pub not_ours: AtomicU64,
    /// Entries shed to make room in a full table: half-open TCP connections (SYN flood
    /// defence) and UDP entries of a lone datagram.
    pub evicted_half_open: AtomicU64,
    /// Persistence templates that controlled no connection, shed to make room.
    pub evicted_templates: AtomicU64,
    drops: [AtomicU64; 24],
}

impl WorkerCounters {
    /// Counts one verdict.
    pub fn count(&self, verdict: Verdict) {
        let counter = match verdict {
            Verdict::Forward(Side::Dip) | Verdict::Encapsulated(Side::Dip) => &self.forwarded_in,
            Verdict::Forward(Side::Vip) | Verdict::Encapsulated(Side::Vip) => &self.forwarded_out,
            Verdict::Queued => &self.queued,
            Verdict::NotOurs => &self.not_ours,
            Verdict::Drop(reason) => &self.drops[reason as usize],
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Counts a drop that happened outside `handle_frame` (e.g. a queued frame whose next
    /// hop never answered).
    pub fn count_drop(&self, reason: DropReason) {
        self.drops[reason as usize].fetch_add(1, Relaxed);
    }

    /// Drops for `reason` so far.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].load(Relaxed)
    }
}

/// The sum of all workers' counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterTotals {
    pub forwarded_in: u64,
    pub forwarded_out: u64,
    pub arp_replies: u64,
    pub arp_requests: u64,
    pub icmp_sent: u64,
    pub queued: u64,
    pub not_ours: u64,
    pub evicted_half_open: u64,
    pub evicted_templates: u64,
    /// Per reason, in [`DropReason::ALL`] order.
    pub drops: Vec<(DropReason, u64)>,
}

impl CounterTotals {
    /// Sums `workers`.
    pub fn sum<'a>(workers: impl IntoIterator<Item = &'a WorkerCounters>) -> Self {
        let mut t = CounterTotals {
            drops: DropReason::ALL.iter().map(|r| (*r, 0)).collect(),
            ..Default::default()
        };
        for w in workers {
            t.forwarded_in += w.forwarded_in.load(Relaxed);
            t.forwarded_out += w.forwarded_out.load(Relaxed);
            t.arp_replies += w.arp_replies.load(Relaxed);
            t.arp_requests += w.arp_requests.load(Relaxed);
            t.icmp_sent += w.icmp_sent.load(Relaxed);
            t.queued += w.queued.load(Relaxed);
            t.not_ours += w.not_ours.load(Relaxed);
            t.evicted_half_open += w.evicted_half_open.load(Relaxed);
            t.evicted_templates += w.evicted_templates.load(Relaxed);
            for (reason, n) in &mut t.drops {
                *n += w.drops(*reason);
            }
        }
        t
    }

    /// Drops for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_counter_slot_and_a_unique_name() {
        assert!(DropReason::ALL.len() <= 24);
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::ALL.len());
    }

    #[test]
    fn totals_sum_workers() {
        let a = WorkerCounters::default();
        let b = WorkerCounters::default();
        a.count(Verdict::Forward(Side::Dip));
        b.count(Verdict::Forward(Side::Dip));
        b.count(Verdict::Drop(DropReason::Fragment));
        let t = CounterTotals::sum([&a, &b]);
        assert_eq!(t.forwarded_in, 2);
        assert_eq!(t.drops(DropReason::Fragment), 1);
        assert_eq!(t.drops(DropReason::Malformed), 0);
    }
}
