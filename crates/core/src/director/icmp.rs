//! ICMP: errors about a connection translated like the connection's own packets, and the
//! errors the director sends itself — fragmentation needed (path MTU), time exceeded, port
//! unreachable when no real server is available.

use std::net::SocketAddrV4;
use std::sync::atomic::Ordering::Relaxed;

use masq_wire::ethernet::{self, EthernetFrame, MacAddr};
use masq_wire::icmp;
use masq_wire::ipv4::Ipv4Packet;
use masq_wire::nat::{self, Endpoint};
use masq_wire::tcp_segment::Segmenter;
use masq_wire::tunnel::PROTO_IPIP;

use super::dr;
use super::frame::{FrameMeta, Ipv4Frame};
use super::worker::Worker;
use crate::conn::FlowKey;
use crate::proto_state::Direction;
use crate::time::Timestamp;
use crate::verdict::{DropReason, Side, Verdict};

impl Worker {
    /// ICMP errors about a connection (destination unreachable — including "fragmentation
    /// needed", which path-MTU discovery depends on — source quench, time exceeded) are
    /// translated like the connection's own packets (`ip_vs_in_icmp`/`ip_vs_out_icmp`):
    /// from a client about VIP:vport they go to the real server with the quoted source
    /// rewritten to RIP:rport; from the real server's side about the client's packet they
    /// go to the client with the quoted destination rewritten to VIP:vport; those of a
    /// direct-routing connection go on unchanged but for the TTL, and those from a client
    /// about a tunnelled one inside the tunnel. Errors quoting a tunnelled packet are
    /// [`Worker::tunnel_error`]'s. Any other ICMP (echo, errors about unknown flows) is
    /// the host's.
    pub(super) fn icmp_error(
        &mut self,
        now: Timestamp,
        side: Side,
        frame: &mut Ipv4Frame<'_>,
    ) -> Verdict {
        let (quoted, ip_len) = {
            let ip = frame.ip();
            if side == Side::Vip && !self.director.services.load().is_vip(ip.dst_addr()) {
                return Verdict::NotOurs;
            }
            let Ok(icmp) = icmp::IcmpPacket::new_checked(ip.payload()) else {
                return Verdict::Drop(DropReason::Malformed);
            };
            if !icmp.is_error() {
                return Verdict::NotOurs;
            }
            if !ip.verify_checksum() {
                return Verdict::Drop(DropReason::BadIpChecksum);
            }
            if ip.is_fragment() {
                return Verdict::Drop(DropReason::Fragment);
            }
            if !icmp.verify_checksum() {
                return Verdict::Drop(DropReason::BadIcmpChecksum);
            }
            match icmp::quoted_flow(ip.payload()) {
                Ok(q) if side == Side::Dip && q.protocol == PROTO_IPIP => {
                    return self.tunnel_error(ip.payload()).unwrap_or(Verdict::NotOurs);
                }
                Ok(q) => (q, ip.total_len()),
                Err(_) => return Verdict::Drop(DropReason::Malformed),
            }
        };
        // The quote is a packet the director sent on this side; its reverse is the key of
        // the connection's packets arriving here.
        let key = FlowKey {
            protocol: quoted.protocol,
            src: SocketAddrV4::new(quoted.dst, quoted.dport),
            dst: SocketAddrV4::new(quoted.src, quoted.sport),
        };
        let (conn, outer, quoted_end, to, out_side) = match side {
            Side::Vip => {
                let Some(conn) = self.director.conns.lookup_inbound(&key) else {
                    return Verdict::NotOurs;
                };
                let rip = conn.daddr();
                (
                    conn,
                    Endpoint::Destination,
                    Endpoint::Source,
                    rip,
                    Side::Dip,
                )
            }
            Side::Dip => {
                let Some(conn) =
                    (self.director.conns.lookup_outbound(&key)).or_else(|| self.routed_reply(&key))
                else {
                    return Verdict::NotOurs;
                };
                let vip = conn.vaddr();
                (
                    conn,
                    Endpoint::Source,
                    Endpoint::Destination,
                    vip,
                    Side::Vip,
                )
            }
        };
        // Errors from the client's side count with the connection's inbound traffic, as in
        // the kernel; those from the real server's side with its outbound traffic.
        let dir = match side {
            Side::Vip => Direction::In,
            Side::Dip => Direction::Out,
        };
        self.count_packet(&conn, dir, ip_len);
        {
            let mut ip = frame.ip_mut();
            if !nat::decrement_ttl(&mut ip) {
                // An error about an error is never sent (RFC 1122 3.2.2).
                return Verdict::Drop(DropReason::TtlExpired);
            }
            // Direct routing forwards an error as it forwards the connection's packets:
            // the quote already names the addresses the other end knows.
            if !dr::is_routed(&conn) {
                match outer {
                    Endpoint::Source => ip.set_src_addr(*to.ip()),
                    Endpoint::Destination => ip.set_dst_addr(*to.ip()),
                }
                if icmp::rewrite_quoted(ip.payload_mut(), quoted_end, *to.ip(), to.port()).is_err()
                {
                    return Verdict::Drop(DropReason::Malformed);
                }
            }
            ip.fill_checksum();
        }
        let next_hop = match out_side {
            Side::Dip => Some(*conn.daddr().ip()),
            Side::Vip => self.director.config.next_hop_to_client(*conn.client().ip()),
        };
        let Some(next_hop) = next_hop else {
            return Verdict::Drop(DropReason::NoRouteToClient);
        };
        match out_side {
            Side::Dip => {
                self.send_to_real_server(now, &conn, next_hop, frame, FrameMeta::default())
            }
            Side::Vip => self.send_via(now, out_side, next_hop, frame, FrameMeta::default()),
        }
    }

    /// Path MTU (`ip_vs_nat_xmit`'s check): a packet that is larger than the MTU of the
    /// interface it must leave by, less the `overhead` of a tunnel's outer header, and may
    /// not be fragmented is refused with ICMP fragmentation needed, carrying that MTU, to
    /// its sender — which then sends smaller packets. GSO frames are cut to size on
    /// transmit and pass, but for a tunnel, which cuts them itself: there the largest of
    /// its segments is held to the MTU (`ip_vs_tunnel_xmit`'s check of a GSO packet).
    /// `frame` is the packet as it arrived (the error must quote what the sender sent).
    /// Returns the drop, if any.
    pub(super) fn check_mtu(
        &mut self,
        frame: &Ipv4Frame<'_>,
        (arrived_on, out): (Side, Side),
        overhead: u32,
        meta: FrameMeta,
    ) -> Option<Verdict> {
        let link_mtu = self.director.mtu(out);
        let ip = frame.ip();
        let len = match (meta.gso, overhead) {
            _ if link_mtu == 0 => return None,
            (false, _) => usize::from(ip.total_len()),
            (true, 0) => return None,
            // What cannot be cut is refused when it is tunnelled.
            (true, _) => Segmenter::new(frame.ip().into_inner(), meta.tcp_gso_size)
                .ok()?
                .max_segment_len(),
        };
        let mtu = link_mtu.saturating_sub(overhead);
        if len as u32 <= mtu {
            return None;
        }
        if !ip.dont_frag() {
            // The kernel would fragment it; masq does not fragment (see crate::frag).
            return Some(Verdict::Drop(DropReason::TooBig));
        }
        self.reply_icmp(
            frame,
            arrived_on,
            icmp::TYPE_DEST_UNREACHABLE,
            icmp::CODE_FRAG_NEEDED,
            mtu,
        );
        Some(Verdict::Drop(DropReason::FragNeeded))
    }

    /// ICMP port unreachable to the client when no real server is available (as the
    /// kernel's `ip_vs_leave` answers), sent back to the MAC the frame came from.
    pub(super) fn reply_port_unreachable(&mut self, frame: &Ipv4Frame<'_>) {
        self.reply_icmp(
            frame,
            Side::Vip,
            icmp::TYPE_DEST_UNREACHABLE,
            icmp::CODE_PORT_UNREACHABLE,
            0,
        );
    }

    /// ICMP time exceeded to the sender of a frame whose TTL ran out. `frame` has not been
    /// rewritten (the rewrite refuses before changing anything).
    pub(super) fn reply_time_exceeded(&mut self, frame: &Ipv4Frame<'_>) {
        let side = if self.director.services.load().is_vip(frame.ip().dst_addr()) {
            Side::Vip
        } else {
            Side::Dip
        };
        self.reply_icmp(frame, side, icmp::TYPE_TIME_EXCEEDED, 0, 0);
    }

    /// Queues an ICMP error about `offending` back to the MAC it came from on `side`.
    fn reply_icmp(
        &mut self,
        offending: &Ipv4Frame<'_>,
        side: Side,
        msg_type: u8,
        code: u8,
        rest: u32,
    ) {
        let ip = offending.ip();
        let cfg = self.director.config.side(side);
        // The error comes from the address the sender was talking to when that is ours
        // (the VIP), else from our address on that side, as a router would.
        let source = if side == Side::Vip {
            ip.dst_addr()
        } else {
            match cfg.addrs.first() {
                Some(&(a, _)) => a,
                None => return,
            }
        };
        let to_mac = offending.eth().src_addr();
        self.queue_icmp_error(side, to_mac, source, &ip, (msg_type, code, rest));
    }

    /// Queues an ICMP error from `source` about `offending` (whose first bytes it quotes)
    /// out of `side` to `to_mac`.
    pub(super) fn queue_icmp_error(
        &mut self,
        side: Side,
        to_mac: MacAddr,
        source: std::net::Ipv4Addr,
        ip: &Ipv4Packet<&[u8]>,
        (msg_type, code, rest): (u8, u8, u32),
    ) {
        let my_mac = self.director.config.side(side).mac;
        let queued = self.queues.push_generated(side, &self.counters, |buf| {
            let len = icmp::write_error(
                &mut buf[ethernet::HEADER_LEN..],
                source,
                ip,
                msg_type,
                code,
                rest,
            );
            // An outbox buffer is far longer than an Ethernet header.
            let mut out = EthernetFrame::new_unchecked(&mut *buf);
            out.set_dst_addr(to_mac);
            out.set_src_addr(my_mac);
            out.set_ethertype(ethernet::ETHERTYPE_IPV4);
            Some(ethernet::HEADER_LEN + len)
        });
        if queued {
            self.counters.icmp_sent.fetch_add(1, Relaxed);
        }
    }
}
