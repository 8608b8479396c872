//! One packet thread's view of the director: `handle_frame`, `poll_transmit` and
//! `housekeeping`.
//!
//! The per-packet path: check the headers once ([`super::frame`]) → find or schedule the
//! connection → update its state and the counters → rewrite in place (NAT, TTL, checksums,
//! MACs) → a [`Verdict`]. The NAT path is in [`super::nat`], ICMP in [`super::icmp`], the
//! queues of frames to send in [`super::transmit`], traces in [`super::trace_events`].
//!
//! Nothing on that path logs or makes a syscall. It allocates only for a new connection
//! (its entries in the connection and template tables) and for the copy of a frame that a
//! capture asked for, made only while a listener wants frame copies of that connection.
//! The only locks are the dashmap shard locks of single lookups and, for a connection's
//! first packet, its service's scheduling lock.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use masq_wire::arp::{self, ArpPacket};
use masq_wire::ethernet::{self, EthernetFrame, MacAddr};
use masq_wire::ipv4::PROTO_ICMP;

use super::frame::{FrameMeta, Ipv4Frame};
use super::transmit::{Drained, Transmit, TransmitQueues};
use super::Director;
use crate::conn::Conn;
use crate::proto_state::Direction;
use crate::time::Timestamp;
use crate::verdict::{DropReason, Side, Verdict, WorkerCounters};

/// A packet thread's handle on the director.
#[derive(Debug)]
pub struct Worker {
    pub(super) director: Arc<Director>,
    pub(super) counters: Arc<WorkerCounters>,
    pub(super) queues: TransmitQueues,
    /// Where this worker queues a sync master's entries.
    pub(super) sync_shard: usize,
    /// The identification of the last outer header this worker wrote for a packet that
    /// may be fragmented ([`super::tunnel`]).
    pub(super) tunnel_ident: u16,
}

impl Worker {
    pub(super) fn new(
        director: Arc<Director>,
        counters: Arc<WorkerCounters>,
        sync_shard: usize,
    ) -> Self {
        Worker {
            director,
            counters,
            queues: TransmitQueues::new(),
            sync_shard,
            tunnel_ident: 0,
        }
    }

    /// This worker's counters.
    pub fn counters(&self) -> &Arc<WorkerCounters> {
        &self.counters
    }

    /// Decides the fate of one frame received on `side`, rewriting it in place when it is
    /// to be forwarded. Generated frames (ARP requests, ICMP errors) are left for
    /// [`Worker::poll_transmit`].
    pub fn handle_frame(
        &mut self,
        now: Timestamp,
        side: Side,
        frame: &mut [u8],
        meta: FrameMeta,
    ) -> Verdict {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return self.decided(now, side, Verdict::Drop(DropReason::Malformed), None);
        };
        let verdict = match eth.ethertype() {
            ethernet::ETHERTYPE_ARP => self.handle_arp(now, side, eth),
            ethernet::ETHERTYPE_IPV4 if eth.dst_addr() != self.director.config.side(side).mac => {
                Verdict::NotOurs
            }
            ethernet::ETHERTYPE_IPV4 => match Ipv4Frame::new(eth) {
                Ok(mut frame) => {
                    let verdict = self.handle_ipv4(now, side, &mut frame, meta);
                    return self.decided(now, side, verdict, Some(&frame));
                }
                Err(_) => Verdict::Drop(DropReason::Malformed),
            },
            _ => Verdict::NotOurs,
        };
        self.decided(now, side, verdict, None)
    }

    /// Counts `verdict` and shows a drop to trace listeners.
    fn decided(
        &self,
        now: Timestamp,
        side: Side,
        verdict: Verdict,
        frame: Option<&Ipv4Frame<'_>>,
    ) -> Verdict {
        self.counters.count(verdict);
        if let Verdict::Drop(reason) = verdict {
            if self.director.trace.is_active() {
                self.trace_drop(now, side, reason, frame);
            }
        }
        verdict
    }

    /// An IPv4 frame for our MAC: ICMP goes to the error translation, the rest to the NAT
    /// path of the side it arrived on.
    fn handle_ipv4(
        &mut self,
        now: Timestamp,
        side: Side,
        frame: &mut Ipv4Frame<'_>,
        meta: FrameMeta,
    ) -> Verdict {
        match (side, frame.ip().protocol() == PROTO_ICMP) {
            (Side::Vip, false) => self.inbound(now, frame, meta),
            (Side::Dip, false) => self.outbound(now, frame, meta),
            (_, true) => self.icmp_error(now, side, frame),
        }
    }

    /// ARP: learn the sender into this side's table, and answer requests for the VIPs of
    /// configured services (the VIP need not be an address of the host). The reply is
    /// written over the request.
    fn handle_arp(&mut self, now: Timestamp, side: Side, eth: EthernetFrame<&mut [u8]>) -> Verdict {
        let (header, body) = eth.into_inner().split_at_mut(ethernet::HEADER_LEN);
        let Ok(mut packet) = ArpPacket::new_checked(body) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let cfg = self.director.config.side(side);
        let (sender_ip, sender_mac, target_ip) =
            (packet.sender_ip(), packet.sender_mac(), packet.target_ip());
        let services = self.director.services.load();
        if side == Side::Dip && services.is_vip(sender_ip) {
            self.director.vip_claim.record(sender_ip, sender_mac, now);
        }
        let is_vip = side == Side::Vip && services.is_vip(target_ip);
        let for_us = is_vip || cfg.addrs.iter().any(|&(a, _)| a == target_ip);
        if self.may_learn(side, sender_ip, sender_mac, &services) {
            self.director
                .neighbour_table(side)
                .learn(sender_ip, sender_mac, now, for_us);
        }
        if packet.operation() != arp::OP_REQUEST
            || !is_vip
            || self.director.sync_daemons.standing_by()
        {
            return Verdict::NotOurs;
        }
        let my_mac = cfg.mac;
        let mut eth = EthernetFrame::new_unchecked(header);
        eth.set_dst_addr(sender_mac);
        eth.set_src_addr(my_mac);
        packet.fill(arp::OP_REPLY, (my_mac, target_ip), (sender_mac, sender_ip));
        self.counters.arp_replies.fetch_add(1, Relaxed);
        Verdict::Forward(side)
    }

    /// Whether an ARP packet on `side` may teach that side's table where `sender` is: only
    /// a host on that side's own networks (real servers, the gateway, on-link clients and
    /// every host the director resolves are), never one claiming an address of the
    /// director's (its interfaces' or a VIP), and only with a unicast MAC. A client that
    /// claims a real server's address is not on the real servers' network as seen from
    /// its own side, so it teaches nothing.
    fn may_learn(
        &self,
        side: Side,
        sender: Ipv4Addr,
        mac: MacAddr,
        services: &crate::service::ServiceTable,
    ) -> bool {
        let config = &self.director.config;
        let ours = |a: Ipv4Addr| {
            [&config.vip_side, &config.dip_side]
                .iter()
                .any(|s| s.addrs.iter().any(|&(mine, _)| mine == a))
        };
        sender != Ipv4Addr::UNSPECIFIED
            && !mac.is_multicast()
            && mac != MacAddr::ZERO
            && config.side(side).on_link_source(sender).is_some()
            && !ours(sender)
            && !services.is_vip(sender)
    }

    /// Counts one forwarded packet of `conn` in the direction it went, on the real
    /// server, its service and the director (IPVS counts the IP total length).
    pub(super) fn count_packet(&self, conn: &Conn, dir: Direction, ip_len: u16) {
        let bytes = u64::from(ip_len);
        let stats = [&conn.service.stats, &conn.dest.stats, &self.director.totals];
        for s in stats {
            match dir {
                Direction::In => s.count_in(bytes),
                Direction::Out => s.count_out(bytes),
            }
        }
    }

    /// Addresses the frame to `next_hop` on `side`, or queues it until ARP answers.
    pub(super) fn send_via(
        &mut self,
        now: Timestamp,
        side: Side,
        next_hop: Ipv4Addr,
        frame: &mut Ipv4Frame<'_>,
        meta: FrameMeta,
    ) -> Verdict {
        let Some(resolution) = self.director.neighbour_table(side).resolve(next_hop, now) else {
            return Verdict::Drop(DropReason::NeighbourTableFull);
        };
        if resolution.probe {
            self.queue_arp_probe(side, next_hop);
        }
        let src_mac = self.director.config.side(side).mac;
        match resolution.mac {
            Some(mac) => {
                frame.set_macs(mac, src_mac);
                Verdict::Forward(side)
            }
            None if self
                .director
                .neighbour_table(side)
                .is_unreachable(next_hop, now) =>
            {
                Verdict::Drop(DropReason::NeighbourUnreachable)
            }
            None => self
                .queues
                .queue_pending(now, side, next_hop, frame.bytes(), meta),
        }
    }

    /// An ARP request for a next hop a frame is waiting for.
    pub(super) fn queue_arp_probe(&mut self, side: Side, target: Ipv4Addr) {
        let director = &self.director;
        let queued = self.queues.push_generated(side, &self.counters, |buf| {
            director.arp_probe(side, target, buf)
        });
        if queued {
            self.counters.arp_requests.fetch_add(1, Relaxed);
        }
    }

    /// Hands out the next frame to send: generated frames first (ARP, ICMP, then the
    /// probes of the last [`Worker::housekeeping`]), then queued frames whose next hop has
    /// been resolved. Queued frames that waited too long are dropped and counted here.
    /// Call it until it returns `None` after each `handle_frame` and each `housekeeping`,
    /// and now and then when idle.
    pub fn poll_transmit(&mut self, now: Timestamp) -> Option<Transmit<'_>> {
        self.queues.poll(now, &self.director, &self.counters)
    }

    /// Takes every frame encapsulated for a tunnel since the last call (or the last
    /// [`Worker::poll_transmit`]), so that a batched sender sends them with the frames it
    /// forwards in place: call it after each receive batch, before `poll_transmit`.
    pub fn take_encapsulated(&mut self) -> Drained<'_> {
        self.queues.take_tunnelled()
    }

    /// Number of frames waiting for ARP.
    pub fn pending_len(&self) -> usize {
        self.queues.pending_len()
    }

    /// Periodic work, to be called about once a second on one worker: expires
    /// connections, templates, fragments and neighbour entries, and queues ARP probes so
    /// that real servers and the gateway are resolved before traffic needs them; the
    /// probes come out of [`Worker::poll_transmit`]. Returns the number of connections
    /// expired.
    pub fn housekeeping(&mut self, now: Timestamp) -> usize {
        let expired = self.director.expire(now);
        let queues = &mut self.queues;
        self.director
            .probes_due(now, &mut |side, target| queues.queue_probe(side, target));
        expired
    }
}
