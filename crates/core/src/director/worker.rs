//! One packet thread's view of the director: `handle_frame` and `poll_transmit`.
//!
//! The per-packet path: parse (wire) → find or schedule the connection → update its state
//! and the counters → rewrite in place (NAT, TTL, checksums, MACs) → a [`Verdict`]. Nothing
//! here allocates, logs or makes a syscall; the only locks are the dashmap shard locks of
//! single lookups and, for a connection's first packet, its service's scheduling lock.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use masq_wire::arp::{self, ArpPacket};
use masq_wire::checksum::L4Checksum;
use masq_wire::ethernet::{self, EthernetFrame, MacAddr};
use masq_wire::icmp;
use masq_wire::ipv4::{Ipv4Packet, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use masq_wire::nat::{self, Endpoint};
use masq_wire::tcp::{flags, TcpSegment};
use masq_wire::udp::UdpDatagram;

use super::Director;
use crate::conn::{Conn, FlowKey, Inserted};
use crate::frag::FragKey;
use crate::persist::TemplateKey;
use crate::proto_state::{ConnState, Direction};
use crate::sched::SchedInput;
use crate::service::{SchedState, VirtualService};
use crate::time::Timestamp;
use crate::trace::{CapturedFrame, Choice, FrameView, Stage, TraceEvent, TraceKind};
use crate::verdict::{DropReason, Side, Verdict, WorkerCounters};

/// The largest frame the director handles: a 64 KiB GSO super-frame plus its Ethernet
/// header. Queued frames are copied into buffers of this size, allocated once.
pub const MAX_FRAME: usize = 65536 + ethernet::HEADER_LEN;
/// Frames that may wait for ARP resolution per worker.
const PENDING_SLOTS: usize = 16;
/// Generated frames (ARP, ICMP) that may wait to be sent per worker.
const OUTBOX_SLOTS: usize = 32;
/// Size of a generated frame's buffer: Ethernet + IPv4 + ICMP + a quoted 60-byte header
/// and 8 bytes, rounded up.
const SMALL_FRAME: usize = 256;
/// How long a frame waits for ARP before it is dropped.
const PENDING_TIMEOUT_MS: u64 = 3000;

/// What the I/O layer knows about a frame and must get back when the frame is sent:
/// whether its L4 checksum is only partial (checksum offload), plus opaque bytes of its
/// own (e.g. the virtio-net header) carried through untouched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameMeta {
    pub partial_checksum: bool,
    /// The frame stands for several segments (GSO): the transmit path cuts it to the
    /// MTU, so it is not held to the MTU here.
    pub gso: bool,
    pub io: [u8; 16],
}

/// A frame for the I/O layer to send.
#[derive(Debug)]
pub struct Transmit<'a> {
    pub side: Side,
    pub frame: &'a [u8],
    pub meta: FrameMeta,
}

#[derive(Debug)]
struct Slot {
    side: Side,
    len: usize,
    meta: FrameMeta,
    buf: Box<[u8]>,
}

#[derive(Debug)]
struct PendingFrame {
    slot: Slot,
    next_hop: Ipv4Addr,
    since: Timestamp,
    in_use: bool,
}

/// A packet thread's handle on the director.
#[derive(Debug)]
pub struct Worker {
    director: Arc<Director>,
    counters: Arc<WorkerCounters>,
    outbox: Vec<Slot>,
    outbox_head: usize,
    outbox_len: usize,
    pending: Vec<PendingFrame>,
    /// A pending slot handed out by the last `poll_transmit`, freed on the next call.
    released: Option<usize>,
}

/// The parts of a TCP/UDP packet the connection logic needs.
#[derive(Debug, Clone, Copy)]
struct Flow {
    key: FlowKey,
    tcp_flags: u8,
    ip_len: u16,
    /// Set for the first fragment of a fragmented datagram.
    frag: Option<FragKey>,
}

impl Worker {
    pub(super) fn new(director: Arc<Director>, counters: Arc<WorkerCounters>) -> Self {
        let slot = |size: usize| Slot {
            side: Side::Vip,
            len: 0,
            meta: FrameMeta::default(),
            buf: vec![0u8; size].into_boxed_slice(),
        };
        Worker {
            director,
            counters,
            outbox: (0..OUTBOX_SLOTS).map(|_| slot(SMALL_FRAME)).collect(),
            outbox_head: 0,
            outbox_len: 0,
            pending: (0..PENDING_SLOTS)
                .map(|_| PendingFrame {
                    slot: slot(MAX_FRAME),
                    next_hop: Ipv4Addr::UNSPECIFIED,
                    since: Timestamp::ZERO,
                    in_use: false,
                })
                .collect(),
            released: None,
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
        let verdict = self.classify(now, side, frame, meta);
        self.counters.count(verdict);
        if let Verdict::Drop(reason) = verdict {
            if self.director.trace.is_active() {
                self.trace_drop(now, side, reason, frame);
            }
        }
        verdict
    }

    /// Shows one packet of a traced connection: the stage it arrived at, the scheduler's
    /// choice for a new connection, the stage it left at, and the state change. Only the
    /// first packet in each direction unless a listener asked for every packet.
    fn trace_step(&self, conn: &Conn, now: Timestamp, step: TracedStep, frame: &[u8]) {
        let hub = &self.director.trace;
        let first = conn.mark_shown(step.dir);
        let every = hub.wants_every_packet(conn.protocol(), conn.vaddr());
        let emit = |kind| {
            hub.emit(
                conn.protocol(),
                TraceEvent {
                    at: now,
                    client: conn.client(),
                    vaddr: conn.vaddr(),
                    kind,
                },
            )
        };
        let (arrived, left) = match step.dir {
            Direction::In => (Stage::ClientToVip, Stage::DirectorToServer),
            Direction::Out => (Stage::ServerToDirector, Stage::DirectorToClient),
        };
        let capture = |stage: Stage, bytes: &[u8]| {
            hub.emit_frame(
                conn.protocol(),
                CapturedFrame {
                    at: now,
                    stage,
                    client: conn.client(),
                    vaddr: conn.vaddr(),
                    bytes: bytes.to_vec(),
                },
            )
        };
        let shown = first || every;
        if shown {
            if let Some(view) = step.before {
                emit(TraceKind::Stage(arrived, view));
            }
            if let Some(bytes) = &step.arrived {
                capture(arrived, bytes);
            }
        }
        if let Some(choice) = step.choice {
            emit(TraceKind::Scheduled(choice));
        }
        if shown && matches!(step.verdict, Verdict::Forward(_) | Verdict::Queued) {
            if let Some(mut view) = frame_view(frame) {
                if step.verdict == Verdict::Queued {
                    // Sent once ARP answers: the MACs are not known yet.
                    view.dst_mac = MacAddr::ZERO;
                }
                emit(TraceKind::Stage(left, view));
            }
            if step.arrived.is_some() && matches!(step.verdict, Verdict::Forward(_)) {
                capture(left, frame);
            }
        }
        let (from, to) = step.states;
        if from != to {
            emit(TraceKind::StateChange { from, to });
        }
    }

    /// Shows a dropped frame, with the addresses it carried (when it has any).
    fn trace_drop(&self, now: Timestamp, side: Side, reason: DropReason, frame: &[u8]) {
        let (src, dst, protocol) = match frame_view(frame) {
            Some(v) => (v.src, v.dst, v.protocol),
            None => {
                let zero = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
                (zero, zero, 0)
            }
        };
        // Listeners filtering on a service see drops of packets addressed to it.
        self.director.trace.emit(
            protocol,
            TraceEvent {
                at: now,
                client: src,
                vaddr: dst,
                kind: TraceKind::Dropped { side, reason },
            },
        );
    }

    fn classify(
        &mut self,
        now: Timestamp,
        side: Side,
        frame: &mut [u8],
        meta: FrameMeta,
    ) -> Verdict {
        let Ok(eth) = EthernetFrame::new_checked(&*frame) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        match eth.ethertype() {
            ethernet::ETHERTYPE_ARP => self.handle_arp(now, side, frame),
            ethernet::ETHERTYPE_IPV4 => {
                if eth.dst_addr() != self.director.config.side(side).mac {
                    return Verdict::NotOurs;
                }
                let is_icmp = Ipv4Packet::new_checked(eth.payload())
                    .is_ok_and(|ip| ip.protocol() == PROTO_ICMP);
                match (side, is_icmp) {
                    (Side::Vip, false) => self.inbound(now, frame, meta),
                    (Side::Dip, false) => self.outbound(now, frame, meta),
                    (_, true) => self.icmp_error(now, side, frame),
                }
            }
            _ => Verdict::NotOurs,
        }
    }

    /// ARP: learn the sender, and answer requests for the VIPs of configured services (the
    /// VIP need not be an address of the host). The reply is written over the request.
    fn handle_arp(&mut self, now: Timestamp, side: Side, frame: &mut [u8]) -> Verdict {
        let Ok(packet) = ArpPacket::new_checked(&frame[ethernet::HEADER_LEN..]) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let cfg = self.director.config.side(side);
        let (sender_ip, sender_mac, target_ip) =
            (packet.sender_ip(), packet.sender_mac(), packet.target_ip());
        let is_vip = side == Side::Vip && self.director.services.load().is_vip(target_ip);
        let for_us = is_vip || cfg.addrs.iter().any(|&(a, _)| a == target_ip);
        if sender_ip != Ipv4Addr::UNSPECIFIED && !sender_mac.is_multicast() {
            self.director
                .neighbours
                .learn(sender_ip, sender_mac, now, for_us);
        }
        if packet.operation() != arp::OP_REQUEST || !is_vip {
            return Verdict::NotOurs;
        }
        let my_mac = cfg.mac;
        let mut eth = EthernetFrame::new_checked(&mut *frame).expect("checked above");
        eth.set_dst_addr(sender_mac);
        eth.set_src_addr(my_mac);
        let mut reply = ArpPacket::new_checked(eth.payload_mut()).expect("checked above");
        reply.fill(arp::OP_REPLY, (my_mac, target_ip), (sender_mac, sender_ip));
        self.counters.arp_replies.fetch_add(1, Relaxed);
        Verdict::Forward(side)
    }

    /// Client → VIP: find or schedule the connection, rewrite the destination to the real
    /// server, send it out of the DIP side.
    fn inbound(&mut self, now: Timestamp, frame: &mut [u8], meta: FrameMeta) -> Verdict {
        let table = self.director.services.load();
        let tracing = self.director.trace.is_active();
        let flow = {
            let Ok(ip) = Ipv4Packet::new_checked(&frame[ethernet::HEADER_LEN..]) else {
                return Verdict::Drop(DropReason::Malformed);
            };
            if !table.is_vip(ip.dst_addr()) {
                return Verdict::NotOurs;
            }
            match parse_flow(&ip) {
                Ok(Parsed::Flow(flow)) => flow,
                Ok(Parsed::Other) => return Verdict::NotOurs,
                Ok(Parsed::LaterFragment(key, len)) => {
                    return self
                        .forward_fragment(now, Direction::In, key, len, frame, meta)
                        .unwrap_or(Verdict::Drop(DropReason::Fragment));
                }
                Err(reason) => return Verdict::Drop(reason),
            }
        };
        let conn = match self.director.conns.lookup_inbound(&flow.key) {
            Some(conn) if reuses_closed_entry(&conn, &flow) => {
                // conn_reuse_mode=1: a new SYN on a TIME_WAIT/CLOSE entry expires it and is
                // scheduled afresh (it may go to another real server).
                self.director.conns.remove(&conn);
                None
            }
            found => found,
        };
        let before = if tracing { frame_view(frame) } else { None };
        // A capture wants the frame as it arrived; copied only while one is running.
        let arrived = (tracing
            && self
                .director
                .trace
                .wants_frames(flow.key.protocol, flow.key.dst))
        .then(|| frame.to_vec());
        let (conn, choice) = match conn {
            Some(conn) => {
                if !conn.dest.is_available() {
                    return Verdict::Drop(DropReason::DestUnavailable);
                }
                (conn, None)
            }
            None => {
                let Some(svc) = table.lookup_for_new(
                    flow.key.protocol,
                    *flow.key.dst.ip(),
                    flow.key.dst.port(),
                ) else {
                    return Verdict::NotOurs;
                };
                if flow.key.protocol == PROTO_TCP
                    && (flow.tcp_flags & flags::SYN == 0 || flow.tcp_flags & flags::RST != 0)
                {
                    return Verdict::Drop(DropReason::TcpNotSyn);
                }
                if !self.make_room() {
                    return Verdict::Drop(DropReason::TableFull);
                }
                let Some((conn, choice)) = self.new_connection(svc, &flow, now) else {
                    self.reply_port_unreachable(frame);
                    return Verdict::Drop(DropReason::NoDestination);
                };
                (conn, Some(choice))
            }
        };
        let states = conn.on_packet(
            Direction::In,
            flow.tcp_flags,
            &self.director.timeouts,
            self.director.tcp_table(),
            now,
        );
        if flow.tcp_flags & (flags::SYN | flags::ACK) == flags::SYN {
            conn.dest.health.sent_connection(now.as_millis());
        }
        self.count_packet(&conn, Direction::In, flow.ip_len);

        if let Some(drop) = self.check_mtu(frame, Side::Vip, Side::Dip, meta) {
            return drop;
        }
        let daddr = conn.daddr();
        if let Err(verdict) = rewrite(frame, Endpoint::Destination, daddr, meta) {
            if verdict == Verdict::Drop(DropReason::TtlExpired) {
                self.reply_time_exceeded(frame);
            }
            return verdict;
        }
        if self
            .director
            .config
            .dip_side
            .on_link_source(*daddr.ip())
            .is_none()
        {
            return Verdict::Drop(DropReason::NoRouteToRealServer);
        }
        let verdict = self.send_via(now, Side::Dip, *daddr.ip(), frame, meta);
        if let Some(key) = flow.frag {
            self.director.fragments.remember(key, &conn, now);
        }
        if tracing && conn.is_traced() {
            let step = TracedStep {
                dir: Direction::In,
                before,
                arrived,
                choice,
                states,
                verdict,
            };
            self.trace_step(&conn, now, step, frame);
        }
        verdict
    }

    /// Real server → client: find the connection, rewrite the source back to the VIP, send
    /// it out of the VIP side.
    fn outbound(&mut self, now: Timestamp, frame: &mut [u8], meta: FrameMeta) -> Verdict {
        let flow = {
            let Ok(ip) = Ipv4Packet::new_checked(&frame[ethernet::HEADER_LEN..]) else {
                return Verdict::Drop(DropReason::Malformed);
            };
            match parse_flow(&ip) {
                Ok(Parsed::Flow(flow)) => flow,
                Ok(Parsed::Other) => return Verdict::NotOurs,
                Ok(Parsed::LaterFragment(key, len)) => {
                    // Fragments of the host's own traffic are not ours either.
                    return self
                        .forward_fragment(now, Direction::Out, key, len, frame, meta)
                        .unwrap_or(Verdict::NotOurs);
                }
                Err(reason) => return Verdict::Drop(reason),
            }
        };
        let Some(conn) = self.director.conns.lookup_outbound(&flow.key) else {
            return Verdict::NotOurs;
        };
        let tracing = self.director.trace.is_active() && conn.is_traced();
        let before = if tracing { frame_view(frame) } else { None };
        let arrived = (tracing
            && self
                .director
                .trace
                .wants_frames(conn.protocol(), conn.vaddr()))
        .then(|| frame.to_vec());
        let states = conn.on_packet(
            Direction::Out,
            flow.tcp_flags,
            &self.director.timeouts,
            self.director.tcp_table(),
            now,
        );
        conn.dest.health.answered();
        if flow.tcp_flags & flags::RST != 0
            && matches!(
                states.0,
                ConnState::SynRecv | ConnState::SynSent | ConnState::None
            )
        {
            conn.dest.health.refused(now.as_millis());
        }
        self.count_packet(&conn, Direction::Out, flow.ip_len);

        if let Some(drop) = self.check_mtu(frame, Side::Dip, Side::Vip, meta) {
            return drop;
        }
        if let Err(verdict) = rewrite(frame, Endpoint::Source, conn.vaddr(), meta) {
            if verdict == Verdict::Drop(DropReason::TtlExpired) {
                self.reply_time_exceeded(frame);
            }
            return verdict;
        }
        let client = *conn.client().ip();
        let Some(next_hop) = self.director.config.next_hop_to_client(client) else {
            return Verdict::Drop(DropReason::NoRouteToClient);
        };
        let verdict = self.send_via(now, Side::Vip, next_hop, frame, meta);
        if let Some(key) = flow.frag {
            self.director.fragments.remember(key, &conn, now);
        }
        if tracing {
            let step = TracedStep {
                dir: Direction::Out,
                before,
                arrived,
                choice: None,
                states,
                verdict,
            };
            self.trace_step(&conn, now, step, frame);
        }
        verdict
    }

    /// Whether a new connection fits in the table, shedding half-open entries if it is
    /// full (a SYN flood fills it with those; established connections stay).
    fn make_room(&mut self) -> bool {
        let max = self.director.config.max_conns;
        let len = self.director.conns.len();
        if len >= max - max / 4 {
            self.director.under_pressure.store(true, Relaxed);
        }
        if len < max {
            return true;
        }
        let shed = self.director.conns.evict_half_open(256, 16);
        self.counters
            .evicted_half_open
            .fetch_add(shed as u64, Relaxed);
        self.director.conns.len() < max
    }

    /// Schedules a new connection for `flow` to `svc` (through its persistence template
    /// if the service is persistent) and puts it in the table. `None` when no real server
    /// is available.
    fn new_connection(
        &mut self,
        svc: &Arc<VirtualService>,
        flow: &Flow,
        now: Timestamp,
    ) -> Option<(Arc<Conn>, Choice)> {
        let (client, vaddr) = (flow.key.src, flow.key.dst);
        let mut guard = svc.lock();
        let SchedState {
            params,
            dests,
            scheduler,
        } = &mut *guard;
        let input = SchedInput {
            src: IpAddr::V4(*client.ip()),
            sport: client.port(),
            dst: IpAddr::V4(*vaddr.ip()),
            dport: vaddr.port(),
            flags: params.sched_flags,
            now,
        };
        let candidates = dests.len();
        let scheduler_name = scheduler.name();
        let mut schedule = || {
            scheduler
                .schedule(dests, &input)
                .and_then(|i| dests.get(i).cloned())
        };
        let service_port = svc.port();
        let (dest, template) = match params.persistent {
            None => (schedule()?, None),
            Some(timeout_secs) => {
                let timeout_ms = u64::from(timeout_secs) * 1000;
                let key = TemplateKey {
                    protocol: flow.key.protocol,
                    client_net: Ipv4Addr::from(u32::from(*client.ip()) & params.netmask),
                    vaddr: *vaddr.ip(),
                    vport: service_port,
                };
                let template = match self.director.templates.lookup(&key) {
                    Some(t) => t,
                    None => {
                        let dest = schedule()?;
                        let dport = if service_port == 0 { 0 } else { dest.key.port };
                        self.director.templates.insert(
                            key,
                            svc.clone(),
                            dest,
                            dport,
                            now,
                            timeout_ms,
                        )
                    }
                };
                template.control_new_conn(now, timeout_ms);
                (template.dest.clone(), Some(template))
            }
        };
        drop(guard);
        let rip = dest.ipv4()?;
        // Port-0 services and fwmark-style destinations without a port keep the port the
        // client asked for.
        let rport = if service_port == 0 || dest.key.port == 0 {
            vaddr.port()
        } else {
            dest.key.port
        };
        let conn = Conn::new(
            flow.key,
            SocketAddrV4::new(rip, rport),
            svc.clone(),
            dest,
            template,
            now,
        );
        let conn = match self.director.conns.insert(conn) {
            Inserted::New(conn) => {
                conn.service.stats.count_conn();
                conn.dest.stats.count_conn();
                self.director.totals.count_conn();
                if self.director.trace.wants(conn.protocol(), conn.vaddr()) {
                    conn.set_traced();
                }
                conn
            }
            Inserted::Existing(conn) => conn,
        };
        let choice = Choice {
            scheduler: scheduler_name,
            dest: conn.daddr(),
            weight: conn.dest.weight(),
            active: conn.dest.active_conns(),
            inactive: conn.dest.inact_conns(),
            persistent: conn.template.is_some(),
            candidates,
        };
        Some((conn, choice))
    }

    /// ICMP errors about a connection (destination unreachable — including "fragmentation
    /// needed", which path-MTU discovery depends on — source quench, time exceeded) are
    /// translated like the connection's own packets (`ip_vs_in_icmp`/`ip_vs_out_icmp`):
    /// from a client about VIP:vport they go to the real server with the quoted source
    /// rewritten to RIP:rport; from the real server's side about the client's packet they
    /// go to the client with the quoted destination rewritten to VIP:vport. Any other ICMP
    /// (echo, errors about unknown flows) is the host's.
    fn icmp_error(&mut self, now: Timestamp, side: Side, frame: &mut [u8]) -> Verdict {
        let (quoted, ip_len) = {
            let Ok(ip) = Ipv4Packet::new_checked(&frame[ethernet::HEADER_LEN..]) else {
                return Verdict::Drop(DropReason::Malformed);
            };
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
                let Some(conn) = self.director.conns.lookup_outbound(&key) else {
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
            let Ok(mut ip) = Ipv4Packet::new_checked(&mut frame[ethernet::HEADER_LEN..]) else {
                return Verdict::Drop(DropReason::Malformed);
            };
            if !nat::decrement_ttl(&mut ip) {
                // An error about an error is never sent (RFC 1122 3.2.2).
                return Verdict::Drop(DropReason::TtlExpired);
            }
            match outer {
                Endpoint::Source => ip.set_src_addr(*to.ip()),
                Endpoint::Destination => ip.set_dst_addr(*to.ip()),
            }
            if icmp::rewrite_quoted(ip.payload_mut(), quoted_end, *to.ip(), to.port()).is_err() {
                return Verdict::Drop(DropReason::Malformed);
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
        self.send_via(now, out_side, next_hop, frame, FrameMeta::default())
    }

    /// A later fragment of a datagram whose first fragment went through: rewrite the one
    /// address NAT changes and send it the same way. `None` when its first fragment was
    /// not seen.
    fn forward_fragment(
        &mut self,
        now: Timestamp,
        dir: Direction,
        key: FragKey,
        ip_len: u16,
        frame: &mut [u8],
        meta: FrameMeta,
    ) -> Option<Verdict> {
        let conn = self.director.fragments.lookup(&key, now)?;
        self.count_packet(&conn, dir, ip_len);
        let (side, next_hop) = match dir {
            Direction::In => (Side::Dip, Some(*conn.daddr().ip())),
            Direction::Out => (
                Side::Vip,
                self.director.config.next_hop_to_client(*conn.client().ip()),
            ),
        };
        {
            let mut ip = Ipv4Packet::new_checked(&mut frame[ethernet::HEADER_LEN..]).ok()?;
            if !nat::decrement_ttl(&mut ip) {
                return Some(Verdict::Drop(DropReason::TtlExpired));
            }
            match dir {
                Direction::In => ip.set_dst_addr(*conn.daddr().ip()),
                Direction::Out => ip.set_src_addr(*conn.vaddr().ip()),
            }
            ip.fill_checksum();
        }
        let Some(next_hop) = next_hop else {
            return Some(Verdict::Drop(DropReason::NoRouteToClient));
        };
        Some(self.send_via(now, side, next_hop, frame, meta))
    }

    /// Path MTU (`ip_vs_nat_xmit`'s check): a packet that is larger than the MTU of the
    /// interface it must leave by and may not be fragmented is refused with ICMP
    /// fragmentation needed, carrying that MTU, to its sender — which then sends smaller
    /// packets. GSO frames are cut to size on transmit and pass. `frame` is the packet as
    /// it arrived (the error must quote what the sender sent). Returns the drop, if any.
    fn check_mtu(
        &mut self,
        frame: &[u8],
        arrived_on: Side,
        out: Side,
        meta: FrameMeta,
    ) -> Option<Verdict> {
        let mtu = self.director.mtu(out);
        if meta.gso || mtu == 0 {
            return None;
        }
        let ip = Ipv4Packet::new_checked(&frame[ethernet::HEADER_LEN..]).ok()?;
        if u32::from(ip.total_len()) <= mtu {
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

    /// Counts one forwarded packet of `conn` in the direction it went, on the real
    /// server, its service and the director (IPVS counts the IP total length).
    fn count_packet(&self, conn: &Conn, dir: Direction, ip_len: u16) {
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
    fn send_via(
        &mut self,
        now: Timestamp,
        side: Side,
        next_hop: Ipv4Addr,
        frame: &mut [u8],
        meta: FrameMeta,
    ) -> Verdict {
        let resolution = self.director.neighbours.resolve(next_hop, now);
        if resolution.probe {
            self.queue_arp_probe(side, next_hop);
        }
        let src_mac = self.director.config.side(side).mac;
        match resolution.mac {
            Some(mac) => {
                set_macs(frame, mac, src_mac);
                Verdict::Forward(side)
            }
            None if self.director.neighbours.is_unreachable(next_hop, now) => {
                Verdict::Drop(DropReason::NeighbourUnreachable)
            }
            None => self.queue_pending(now, side, next_hop, frame, meta),
        }
    }

    fn queue_pending(
        &mut self,
        now: Timestamp,
        side: Side,
        next_hop: Ipv4Addr,
        frame: &[u8],
        meta: FrameMeta,
    ) -> Verdict {
        let Some(p) = self.pending.iter_mut().find(|p| !p.in_use) else {
            return Verdict::Drop(DropReason::NeighbourQueueFull);
        };
        if frame.len() > p.slot.buf.len() {
            return Verdict::Drop(DropReason::Malformed);
        }
        p.slot.buf[..frame.len()].copy_from_slice(frame);
        p.slot.len = frame.len();
        p.slot.side = side;
        p.slot.meta = meta;
        p.next_hop = next_hop;
        p.since = now;
        p.in_use = true;
        Verdict::Queued
    }

    /// Hands out the next frame to send: generated frames first, then queued frames whose
    /// next hop has been resolved. Queued frames that waited too long are dropped and
    /// counted here. Call it until it returns `None` after each `handle_frame`, and now and
    /// then when idle.
    pub fn poll_transmit(&mut self, now: Timestamp) -> Option<Transmit<'_>> {
        if let Some(i) = self.released.take() {
            self.pending[i].in_use = false;
        }
        if self.outbox_len > 0 {
            let i = self.outbox_head;
            self.outbox_head = (self.outbox_head + 1) % OUTBOX_SLOTS;
            self.outbox_len -= 1;
            let slot = &self.outbox[i];
            return Some(Transmit {
                side: slot.side,
                frame: &slot.buf[..slot.len],
                meta: slot.meta,
            });
        }
        let neighbours = &self.director.neighbours;
        let mut ready = None;
        for (i, p) in self
            .pending
            .iter_mut()
            .enumerate()
            .filter(|(_, p)| p.in_use)
        {
            if let Some(mac) = neighbours.peek(p.next_hop) {
                let src_mac = self.director.config.side(p.slot.side).mac;
                set_macs(&mut p.slot.buf[..p.slot.len], mac, src_mac);
                ready = Some(i);
                break;
            }
            if now.saturating_since(p.since).as_millis() >= u128::from(PENDING_TIMEOUT_MS) {
                p.in_use = false;
                self.counters.count_drop(DropReason::NeighbourUnreachable);
            }
        }
        let i = ready?;
        self.released = Some(i);
        let slot = &self.pending[i].slot;
        Some(Transmit {
            side: slot.side,
            frame: &slot.buf[..slot.len],
            meta: slot.meta,
        })
    }

    /// Number of frames waiting for ARP.
    pub fn pending_len(&self) -> usize {
        self.pending.iter().filter(|p| p.in_use).count()
    }

    fn outbox_slot(&mut self) -> Option<&mut Slot> {
        if self.outbox_len == OUTBOX_SLOTS {
            self.counters.count_drop(DropReason::OutboxFull);
            return None;
        }
        let i = (self.outbox_head + self.outbox_len) % OUTBOX_SLOTS;
        self.outbox_len += 1;
        let slot = &mut self.outbox[i];
        slot.meta = FrameMeta::default();
        Some(slot)
    }

    fn queue_arp_probe(&mut self, side: Side, target: Ipv4Addr) {
        let director = self.director.clone();
        let Some(slot) = self.outbox_slot() else {
            return;
        };
        match director.arp_probe(side, target, &mut slot.buf) {
            Some(len) => {
                slot.side = side;
                slot.len = len;
                self.counters.arp_requests.fetch_add(1, Relaxed);
            }
            None => self.outbox_len -= 1,
        }
    }

    /// ICMP port unreachable to the client when no real server is available (§6.5), sent
    /// back to the MAC the frame came from.
    fn reply_port_unreachable(&mut self, frame: &[u8]) {
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
    fn reply_time_exceeded(&mut self, frame: &[u8]) {
        let ip_dst = Ipv4Packet::new_checked(&frame[ethernet::HEADER_LEN..])
            .map(|ip| ip.dst_addr())
            .ok();
        let side = if ip_dst.is_some_and(|d| self.director.services.load().is_vip(d)) {
            Side::Vip
        } else {
            Side::Dip
        };
        self.reply_icmp(frame, side, icmp::TYPE_TIME_EXCEEDED, 0, 0);
    }

    fn reply_icmp(&mut self, frame: &[u8], side: Side, msg_type: u8, code: u8, rest: u32) {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        let Ok(offending) = Ipv4Packet::new_checked(eth.payload()) else {
            return;
        };
        let cfg = self.director.config.side(side);
        // The error comes from the address the sender was talking to when that is ours
        // (the VIP), else from our address on that side, as a router would.
        let source = if side == Side::Vip {
            offending.dst_addr()
        } else {
            match cfg.addrs.first() {
                Some(&(a, _)) => a,
                None => return,
            }
        };
        let (to_mac, my_mac) = (eth.src_addr(), cfg.mac);
        let Some(slot) = self.outbox_slot() else {
            return;
        };
        let len = icmp::write_error(
            &mut slot.buf[ethernet::HEADER_LEN..],
            source,
            &offending,
            msg_type,
            code,
            rest,
        );
        let mut out = EthernetFrame::new_checked(&mut slot.buf[..]).expect("fixed size");
        out.set_dst_addr(to_mac);
        out.set_src_addr(my_mac);
        out.set_ethertype(ethernet::ETHERTYPE_IPV4);
        slot.side = side;
        slot.len = ethernet::HEADER_LEN + len;
        self.counters.icmp_sent.fetch_add(1, Relaxed);
    }
}

/// What happened to one packet of a traced connection.
struct TracedStep {
    dir: Direction,
    before: Option<FrameView>,
    /// The frame as it arrived, when a capture wants it.
    arrived: Option<Vec<u8>>,
    choice: Option<Choice>,
    states: (ConnState, ConnState),
    verdict: Verdict,
}

/// Reads addresses, ports, MACs and flags of a TCP/UDP frame (only when tracing).
fn frame_view(frame: &[u8]) -> Option<FrameView> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let (sport, dport, tcp_flags) = match ip.protocol() {
        PROTO_TCP => {
            let t = TcpSegment::new_checked(ip.payload()).ok()?;
            (t.src_port(), t.dst_port(), t.flags())
        }
        PROTO_UDP => {
            let u = UdpDatagram::new_checked(ip.payload()).ok()?;
            (u.src_port(), u.dst_port(), 0)
        }
        _ => (0, 0, 0),
    };
    Some(FrameView {
        protocol: ip.protocol(),
        src: SocketAddrV4::new(ip.src_addr(), sport),
        dst: SocketAddrV4::new(ip.dst_addr(), dport),
        src_mac: eth.src_addr(),
        dst_mac: eth.dst_addr(),
        tcp_flags,
        ip_len: ip.total_len(),
    })
}

/// A SYN that finds its flow's old entry closed: conn_reuse_mode's case (§3).
fn reuses_closed_entry(conn: &Conn, flow: &Flow) -> bool {
    flow.key.protocol == PROTO_TCP
        && flow.tcp_flags & flags::SYN != 0
        && flow.tcp_flags & flags::RST == 0
        && matches!(conn.state(), ConnState::TimeWait | ConnState::Close)
}

/// What the connection logic makes of a TCP/UDP packet.
enum Parsed {
    /// Not TCP or UDP: the host's business.
    Other,
    /// A whole packet, or the first fragment of a datagram (which carries the ports).
    Flow(Flow),
    /// A later fragment: it follows its datagram's first fragment.
    LaterFragment(FragKey, u16),
}

/// Reads protocol, ports and flags.
fn parse_flow(ip: &Ipv4Packet<&[u8]>) -> Result<Parsed, DropReason> {
    let protocol = ip.protocol();
    if protocol != PROTO_TCP && protocol != PROTO_UDP {
        return Ok(Parsed::Other);
    }
    if !ip.verify_checksum() {
        return Err(DropReason::BadIpChecksum);
    }
    // The host's IP input would drop options that do not parse (ip_options_compile)
    // before IPVS saw the packet; masq sees frames first, so it checks them itself.
    if ip.header_len() > masq_wire::ipv4::MIN_HEADER_LEN && !ip.options_valid() {
        return Err(DropReason::Malformed);
    }
    let frag = ip.is_fragment().then(|| FragKey {
        protocol,
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        ident: ip.ident(),
    });
    if let Some(key) = frag {
        if ip.frag_offset() > 0 {
            return Ok(Parsed::LaterFragment(key, ip.total_len()));
        }
    }
    let (sport, dport, tcp_flags) = if protocol == PROTO_TCP {
        let tcp = TcpSegment::new_checked(ip.payload()).map_err(|_| DropReason::Malformed)?;
        // SYN and FIN together is never a real segment (a scan or an attack); kernel IPVS
        // would pass it and leave it to the real server, masq stops it here.
        if tcp.flags() & (flags::SYN | flags::FIN) == flags::SYN | flags::FIN {
            return Err(DropReason::TcpBadFlags);
        }
        (tcp.src_port(), tcp.dst_port(), tcp.flags())
    } else if frag.is_some() {
        // A first fragment holds the UDP header but not the whole announced length.
        let p = ip.payload();
        if p.len() < masq_wire::udp::HEADER_LEN {
            return Err(DropReason::Malformed);
        }
        (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
            0,
        )
    } else {
        let udp = UdpDatagram::new_checked(ip.payload()).map_err(|_| DropReason::Malformed)?;
        (udp.src_port(), udp.dst_port(), 0)
    };
    Ok(Parsed::Flow(Flow {
        key: FlowKey {
            protocol,
            src: SocketAddrV4::new(ip.src_addr(), sport),
            dst: SocketAddrV4::new(ip.dst_addr(), dport),
        },
        tcp_flags,
        ip_len: ip.total_len(),
        frag,
    }))
}

/// The NAT rewrite of one endpoint plus the TTL decrement and IP checksum. On error
/// nothing has been changed.
fn rewrite(
    frame: &mut [u8],
    which: Endpoint,
    to: SocketAddrV4,
    meta: FrameMeta,
) -> Result<(), Verdict> {
    let mut ip = Ipv4Packet::new_checked(&mut frame[ethernet::HEADER_LEN..])
        .map_err(|_| Verdict::Drop(DropReason::Malformed))?;
    if ip.ttl() <= 1 {
        return Err(Verdict::Drop(DropReason::TtlExpired));
    }
    let l4 = if meta.partial_checksum {
        L4Checksum::Partial
    } else {
        L4Checksum::Full
    };
    nat::rewrite(&mut ip, which, *to.ip(), to.port(), l4)
        .map_err(|_| Verdict::Drop(DropReason::Malformed))?;
    nat::decrement_ttl(&mut ip);
    ip.fill_checksum();
    Ok(())
}

fn set_macs(frame: &mut [u8], dst: MacAddr, src: MacAddr) {
    if let Ok(mut eth) = EthernetFrame::new_checked(frame) {
        eth.set_dst_addr(dst);
        eth.set_src_addr(src);
    }
}
