//! Tunnelling (`-i`, `--tun-type ipip`): the client's packet goes to the real server as
//! direct routing sends it — one hop older, addresses and ports unchanged — inside an
//! outer IPv4 header from the director's DIP-side address to the real server, written as
//! the kernel's `ip_vs_tunnel_xmit` writes it ([`masq_wire::tunnel`]). The real server
//! takes the outer header off, holds the VIP and answers the client from it; where the
//! director is its gateway those answers come back through it and are handled as direct
//! routing's ([`super::dr`]).
//!
//! The outer header costs [`IPIP_OVERHEAD`] bytes of the DIP side's MTU: a DF packet that
//! no longer fits is refused with fragmentation needed carrying the MTU less the overhead,
//! as the kernel does. An ICMP error from the real servers' side quotes the outer header of
//! what the director sent; it goes on to the client as the director's own error about the
//! inner packet (`ip_vs_in_icmp`'s tunnel case).
//!
//! The frame cannot grow in place, so it is copied once behind its outer header into the
//! transmit queues ([`super::transmit`]). A checksum left to offload is finished in
//! software first. The offload header describes the bare packet, not an encapsulated one,
//! so nothing is left to offload: a TCP GSO super-frame (merged by GRO on the VIP side, or
//! sent with TSO on this host) is cut into its segments in software
//! ([`masq_wire::tcp_segment`]), each encapsulated on its own, and any other super-frame
//! is refused ([`DropReason::TunnelGso`]).

use std::net::{Ipv4Addr, SocketAddrV4};

use masq_wire::ethernet::{self, MacAddr};
use masq_wire::icmp;
use masq_wire::ipv4::Ipv4Packet;
use masq_wire::tcp_segment::Segmenter;
pub(super) use masq_wire::tunnel::TunnelEnds;
use masq_wire::tunnel::{self, IPIP_OVERHEAD};

use super::frame::{FrameMeta, Ipv4Frame};
use super::worker::Worker;
use crate::conn::{Conn, FlowKey};
use crate::control::FwdMethod;
use crate::time::Timestamp;
use crate::verdict::{DropReason, Side, Verdict};

/// Whether `conn`'s packets go to its real server inside a tunnel.
pub(super) fn is_tunnelled(conn: &Conn) -> bool {
    conn.fwd() == FwdMethod::Tunnel
}

/// The bytes of the DIP side's MTU that `conn`'s packets to the real server lose to
/// encapsulation.
pub(super) fn overhead(conn: &Conn) -> u32 {
    if is_tunnelled(conn) {
        IPIP_OVERHEAD as u32
    } else {
        0
    }
}

impl Worker {
    /// Sends `frame` out of the DIP side to `rip`, the real server of `conn`: inside an
    /// IPIP header from the director's address on that link when `conn` is tunnelled, as
    /// it is otherwise.
    pub(super) fn send_to_real_server(
        &mut self,
        now: Timestamp,
        conn: &Conn,
        rip: Ipv4Addr,
        frame: &mut Ipv4Frame<'_>,
        meta: FrameMeta,
    ) -> Verdict {
        if !is_tunnelled(conn) {
            return self.send_via(now, Side::Dip, rip, frame, meta);
        }
        let Some(src) = self.director.config.dip_side.on_link_source(rip) else {
            return Verdict::Drop(DropReason::NoRouteToRealServer);
        };
        self.send_tunnelled(now, TunnelEnds { src, dst: rip }, frame, meta)
    }

    /// Sends `frame` (its TTL already decremented) to `ends.dst` inside an IPIP header, or
    /// queues it until ARP answers. `frame` itself is addressed as its encapsulated copy
    /// is, so that traces show where it went.
    pub(super) fn send_tunnelled(
        &mut self,
        now: Timestamp,
        ends: TunnelEnds,
        frame: &mut Ipv4Frame<'_>,
        meta: FrameMeta,
    ) -> Verdict {
        let Some(resolution) = self
            .director
            .neighbour_table(Side::Dip)
            .resolve(ends.dst, now)
        else {
            return Verdict::Drop(DropReason::NeighbourTableFull);
        };
        if resolution.probe {
            self.queue_arp_probe(Side::Dip, ends.dst);
        }
        // Read only for packets that may be fragmented: DF packets carry ID 0 outside.
        self.tunnel_ident = self.tunnel_ident.wrapping_add(1);
        let packet = Encapsulation {
            ends,
            ident: self.tunnel_ident,
            partial_checksum: meta.partial_checksum,
        };
        let src_mac = self.director.config.side(Side::Dip).mac;
        frame.set_macs(resolution.mac.unwrap_or(MacAddr::ZERO), src_mac);
        let frame = &*frame;
        let segments = match meta.gso {
            false => None,
            true => match Segmenter::new(frame.ip().into_inner(), meta.tcp_gso_size) {
                Ok(segments) => Some(segments),
                Err(_) => return Verdict::Drop(DropReason::TunnelGso),
            },
        };
        match (resolution.mac, segments) {
            (Some(_), Some(segments)) => self.push_segments(&packet, frame, &segments),
            (Some(_), None) => {
                let len =
                    ethernet::HEADER_LEN + IPIP_OVERHEAD + usize::from(frame.ip().total_len());
                self.queues
                    .push_tunnelled(Side::Dip, len, |buf| packet.write(buf, frame).map(drop))
            }
            // The pending queue holds frames, not batches of segments; TCP sends again.
            (None, Some(_)) => Verdict::Drop(DropReason::TunnelGso),
            (None, None)
                if self
                    .director
                    .neighbour_table(Side::Dip)
                    .is_unreachable(ends.dst, now) =>
            {
                Verdict::Drop(DropReason::NeighbourUnreachable)
            }
            (None, None) => self.queues.queue_pending_with(
                now,
                (Side::Dip, ends.dst),
                FrameMeta::default(),
                |buf| packet.write(buf, frame),
            ),
        }
    }

    /// Queues every segment of a super-frame `frame`, each in its own outer header, or
    /// none if they do not all fit.
    fn push_segments(
        &mut self,
        packet: &Encapsulation,
        frame: &Ipv4Frame<'_>,
        segments: &Segmenter<'_>,
    ) -> Verdict {
        let count = segments.count();
        let outer_len = ethernet::HEADER_LEN + IPIP_OVERHEAD;
        if !self
            .queues
            .has_tunnel_room(count, outer_len * count + segments.total_len())
        {
            return Verdict::Drop(DropReason::OutboxFull);
        }
        let mut verdict = Verdict::Encapsulated(Side::Dip);
        for index in 0..count {
            let len = outer_len + segments.segment_len(index);
            verdict = self.queues.push_tunnelled(Side::Dip, len, |buf| {
                packet.write_segment(buf, frame, segments, index)
            });
        }
        verdict
    }

    /// An ICMP error from the DIP side whose quote is an IPIP packet from the director
    /// (`icmp_msg`, checked and of a valid checksum): for a tunnelled connection, the same
    /// error goes to the client from the VIP about the inner packet — with the MTU less
    /// the overhead for fragmentation needed, where the client does path-MTU discovery —
    /// and the real server's error itself is dropped, as the kernel does. `None` when it is
    /// not about one of masq's tunnels.
    pub(super) fn tunnel_error(&mut self, icmp_msg: &[u8]) -> Option<Verdict> {
        let quoted = tunnel::quoted_tunnel(icmp_msg).ok()?;
        let dip_side = &self.director.config.dip_side;
        if !dip_side.addrs.iter().any(|&(a, _)| a == quoted.outer_src) {
            return None;
        }
        // The inner packet is the client's, as it arrived: its key is the inbound one.
        let key = FlowKey {
            protocol: quoted.flow.protocol,
            src: SocketAddrV4::new(quoted.flow.src, quoted.flow.sport),
            dst: SocketAddrV4::new(quoted.flow.dst, quoted.flow.dport),
        };
        let conn = self.director.conns.lookup_inbound(&key)?;
        if !is_tunnelled(&conn) {
            return None;
        }
        let (msg_type, code) = (icmp_msg[0], icmp_msg[1]);
        let mut rest = u32::from_be_bytes([icmp_msg[4], icmp_msg[5], icmp_msg[6], icmp_msg[7]]);
        let inner_ip = Ipv4Packet::new_unchecked(quoted.inner);
        if msg_type == icmp::TYPE_DEST_UNREACHABLE && code == icmp::CODE_FRAG_NEEDED {
            if !inner_ip.dont_frag() {
                // The client does not do path-MTU discovery; nothing to tell it.
                return Some(Verdict::Drop(DropReason::TunnelIcmp));
            }
            let mtu = rest & 0xffff;
            rest = if mtu > 68 + IPIP_OVERHEAD as u32 {
                mtu - IPIP_OVERHEAD as u32
            } else {
                mtu
            };
        }
        let client = *conn.client().ip();
        let mac = self
            .director
            .config
            .next_hop_to_client(client)
            .and_then(|hop| self.director.neighbour_table(Side::Vip).peek(hop));
        let Some(to_mac) = mac else {
            return Some(Verdict::Drop(DropReason::NoRouteToClient));
        };
        let vip = *conn.vaddr().ip();
        self.queue_icmp_error(Side::Vip, to_mac, vip, &inner_ip, (msg_type, code, rest));
        Some(Verdict::Drop(DropReason::TunnelIcmp))
    }
}

/// How one frame is encapsulated.
struct Encapsulation {
    ends: TunnelEnds,
    ident: u16,
    partial_checksum: bool,
}

impl Encapsulation {
    /// Writes `frame`'s Ethernet header, the outer IPIP header and `frame`'s IP packet
    /// (without Ethernet padding) into `buf`; returns the length, `None` if it does not
    /// fit.
    fn write(&self, buf: &mut [u8], frame: &Ipv4Frame<'_>) -> Option<usize> {
        let ip = frame.ip();
        let inner_at = ethernet::HEADER_LEN + IPIP_OVERHEAD;
        let ip_len = usize::from(ip.total_len());
        let out = buf.get_mut(..inner_at + ip_len)?;
        out[inner_at..].copy_from_slice(&frame.ip().into_inner()[..ip_len]);
        if self.partial_checksum {
            tunnel::complete_partial_checksum(&mut out[inner_at..]).ok()?;
        }
        tunnel::write_ipip_header(&mut out[ethernet::HEADER_LEN..], self.ends, &ip, self.ident)
            .ok()?;
        out[..ethernet::HEADER_LEN].copy_from_slice(&frame.bytes()[..ethernet::HEADER_LEN]);
        Some(inner_at + ip_len)
    }

    /// Writes segment `index` of the super-frame `frame` behind `frame`'s Ethernet header
    /// and an outer IPIP header of its own into `buf`, exactly as long as the three.
    fn write_segment(
        &self,
        buf: &mut [u8],
        frame: &Ipv4Frame<'_>,
        segments: &Segmenter<'_>,
        index: usize,
    ) -> Option<()> {
        let (outer, inner) = buf.split_at_mut(ethernet::HEADER_LEN + IPIP_OVERHEAD);
        segments.write(index, inner)?;
        // The identifier of a DF packet's outer header is 0, so segments may share it.
        tunnel::write_ipip_header(
            &mut outer[ethernet::HEADER_LEN..],
            self.ends,
            &Ipv4Packet::new_unchecked(&*inner),
            self.ident,
        )
        .ok()?;
        outer[..ethernet::HEADER_LEN].copy_from_slice(&frame.bytes()[..ethernet::HEADER_LEN]);
        Some(())
    }
}
