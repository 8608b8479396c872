//! The NAT path: a client's packet to a VIP is scheduled to a real server (or follows its
//! connection) and leaves with the real server as its destination; the real server's
//! answer leaves with the VIP as its source. Later fragments follow their first fragment.
//! Direct-routing connections take the same path and skip the rewrite ([`super::dr`]);
//! tunnelled ones skip it too and leave inside an outer header ([`super::tunnel`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use masq_wire::checksum::L4Checksum;
use masq_wire::ipv4::PROTO_TCP;
use masq_wire::nat::{self, Endpoint};
use masq_wire::tcp::flags;

use super::dr;
use super::frame::{parse_flow, Flow, FrameMeta, Ipv4Frame, Parsed};
use super::trace_events::{frame_view, TracedStep};
use super::tunnel::{self, TunnelEnds};
use super::worker::Worker;
use crate::conn::{Conn, Inserted};
use crate::control::FwdMethod;
use crate::frag::{FragKey, FragPiece};
use crate::persist::TemplateKey;
use crate::proto_state::{ConnState, Direction};
use crate::sched::SchedInput;
use crate::service::{SchedState, VirtualService};
use crate::time::Timestamp;
use crate::trace::Choice;
use crate::verdict::{DropReason, Side, Verdict};

impl Worker {
    /// Client → VIP: find or schedule the connection, rewrite the destination to the real
    /// server, send it out of the DIP side.
    pub(super) fn inbound(
        &mut self,
        now: Timestamp,
        frame: &mut Ipv4Frame<'_>,
        meta: FrameMeta,
    ) -> Verdict {
        let table = self.director.services.load();
        let tracing = self.director.trace.is_active();
        let flow = {
            let ip = frame.ip();
            if !table.is_vip(ip.dst_addr()) {
                return Verdict::NotOurs;
            }
            match parse_flow(&ip) {
                Ok(Parsed::Flow(flow)) => flow,
                Ok(Parsed::Other) => return Verdict::NotOurs,
                Ok(Parsed::LaterFragment(key, piece, len)) => {
                    return self
                        .forward_fragment(now, Direction::In, (key, piece), len, frame, meta)
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
        .then(|| frame.bytes().to_vec());
        let (conn, choice) = match conn {
            Some(conn) => {
                if !conn.dest.is_available() {
                    return Verdict::Drop(DropReason::DestUnavailable);
                }
                conn.mark_repeated();
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
                if !self.make_room(svc) {
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
        self.queue_for_sync(&conn, states, now);
        self.count_packet(&conn, Direction::In, flow.ip_len);

        let overhead = tunnel::overhead(&conn);
        if let Some(drop) = self.check_mtu(frame, (Side::Vip, Side::Dip), overhead, meta) {
            return drop;
        }
        let daddr = conn.daddr();
        let rewritten = if dr::is_routed(&conn) {
            dr::route(frame)
        } else {
            rewrite(frame, Endpoint::Destination, daddr, meta)
        };
        if let Err(verdict) = rewritten {
            if verdict == Verdict::Drop(DropReason::TtlExpired) {
                self.reply_time_exceeded(frame);
            }
            return verdict;
        }
        let Some(dip) = self.director.config.dip_side.on_link_source(*daddr.ip()) else {
            return Verdict::Drop(DropReason::NoRouteToRealServer);
        };
        let tunnel = tunnel::is_tunnelled(&conn).then_some(TunnelEnds {
            src: dip,
            dst: *daddr.ip(),
        });
        let verdict = self.send_flow(
            now,
            (Side::Dip, *daddr.ip(), tunnel),
            frame,
            meta,
            &flow,
            &conn,
        );
        if tracing && conn.is_traced() {
            let step = TracedStep {
                dir: Direction::In,
                before,
                arrived,
                choice,
                states,
                verdict,
                tunnel,
            };
            self.trace_step(&conn, now, step, frame);
        }
        verdict
    }

    /// Real server → client: find the connection, rewrite the source back to the VIP, send
    /// it out of the VIP side.
    pub(super) fn outbound(
        &mut self,
        now: Timestamp,
        frame: &mut Ipv4Frame<'_>,
        meta: FrameMeta,
    ) -> Verdict {
        let flow = match parse_flow(&frame.ip()) {
            Ok(Parsed::Flow(flow)) => flow,
            Ok(Parsed::Other) => return Verdict::NotOurs,
            Ok(Parsed::LaterFragment(key, piece, len)) => {
                // Fragments of the host's own traffic are not ours either.
                return self
                    .forward_fragment(now, Direction::Out, (key, piece), len, frame, meta)
                    .unwrap_or(Verdict::NotOurs);
            }
            Err(reason) => return Verdict::Drop(reason),
        };
        let Some(conn) = (self.director.conns.lookup_outbound(&flow.key))
            .or_else(|| self.routed_reply(&flow.key))
        else {
            return Verdict::NotOurs;
        };
        let tracing = self.director.trace.is_active() && conn.is_traced();
        let before = if tracing { frame_view(frame) } else { None };
        let arrived = (tracing
            && self
                .director
                .trace
                .wants_frames(conn.protocol(), conn.vaddr()))
        .then(|| frame.bytes().to_vec());
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

        if let Some(drop) = self.check_mtu(frame, (Side::Dip, Side::Vip), 0, meta) {
            return drop;
        }
        let rewritten = if dr::is_routed(&conn) {
            dr::route(frame)
        } else {
            rewrite(frame, Endpoint::Source, conn.vaddr(), meta)
        };
        if let Err(verdict) = rewritten {
            if verdict == Verdict::Drop(DropReason::TtlExpired) {
                self.reply_time_exceeded(frame);
            }
            return verdict;
        }
        let client = *conn.client().ip();
        let Some(next_hop) = self.director.config.next_hop_to_client(client) else {
            return Verdict::Drop(DropReason::NoRouteToClient);
        };
        let verdict = self.send_flow(now, (Side::Vip, next_hop, None), frame, meta, &flow, &conn);
        if verdict == Verdict::Forward(Side::Vip) {
            conn.mark_answered();
        }
        if tracing {
            let step = TracedStep {
                dir: Direction::Out,
                before,
                arrived,
                choice: None,
                states,
                verdict,
                tunnel: None,
            };
            self.trace_step(&conn, now, step, frame);
        }
        verdict
    }

    /// Sends a rewritten TCP/UDP packet of `conn` out of a side towards a next hop, inside
    /// a tunnel when it has the tunnel's ends. A
    /// datagram's first fragment goes only if the fragment table takes it (its client may
    /// be at its share): the real server or the client then never gets a first fragment
    /// whose later fragments masq would drop, which its kernel would hold, incomplete,
    /// for ipfrag_time.
    fn send_flow(
        &mut self,
        now: Timestamp,
        (side, next_hop, tunnel): (Side, Ipv4Addr, Option<TunnelEnds>),
        frame: &mut Ipv4Frame<'_>,
        meta: FrameMeta,
        flow: &Flow,
        conn: &Arc<Conn>,
    ) -> Verdict {
        if let Some(key) = flow.frag {
            let first_len = frame.ip().payload().len() as u32;
            if !self.director.fragments.remember(key, conn, first_len, now) {
                return Verdict::Drop(DropReason::FragmentLimit);
            }
        }
        let verdict = match tunnel {
            Some(ends) => self.send_tunnelled(now, ends, frame, meta),
            None => self.send_via(now, side, next_hop, frame, meta),
        };
        if let (Some(key), Verdict::Drop(_)) = (flow.frag, verdict) {
            // Went nowhere: its later fragments have nothing to follow.
            self.director.fragments.forget(&key);
        }
        verdict
    }

    /// Whether a new connection (and, for a persistent service, its template) fits in
    /// the table, shedding if it is full as the kernel's drop_entry does: templates that
    /// control no connection first, then half-open connections (a SYN flood fills the
    /// table with those), then the templates those left idle. An established connection,
    /// and a template one depends on, are never shed.
    fn make_room(&mut self, svc: &VirtualService) -> bool {
        let director = &self.director;
        let max = director.config.max_conns;
        let entries = director.entry_count();
        if entries >= max - max / 4 {
            director.under_pressure.store(true, Relaxed);
        }
        // Room for a connection and its template is room enough.
        if entries + 2 <= max {
            return true;
        }
        // Near the bound it matters whether a template may be needed too (looked up under
        // the scheduling lock only then).
        let needed = if svc.lock().params.persistent.is_some() {
            2
        } else {
            1
        };
        let fits = || director.entry_count() + needed <= max;
        if fits() {
            return true;
        }
        let mut templates = director.templates.evict_idle(256, 16);
        if !fits() {
            let shed = director.conns.evict_half_open(256, 16);
            self.counters
                .evicted_half_open
                .fetch_add(shed as u64, Relaxed);
            templates += director.templates.evict_idle(256, 16);
        }
        self.counters
            .evicted_templates
            .fetch_add(templates as u64, Relaxed);
        fits()
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
        // client asked for; so do direct routing and tunnelling, which never rewrite a port.
        let keeps_port = matches!(dest.forwarding(), FwdMethod::Route | FwdMethod::Tunnel);
        let rport = if service_port == 0 || dest.key.port == 0 || keeps_port {
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

    /// A later fragment of a datagram whose first fragment went through: rewrite the one
    /// address NAT changes (none for direct routing and tunnelling) and send it the same
    /// way. `None` when its first fragment was not seen.
    fn forward_fragment(
        &mut self,
        now: Timestamp,
        dir: Direction,
        (key, piece): (FragKey, FragPiece),
        ip_len: u16,
        frame: &mut Ipv4Frame<'_>,
        meta: FrameMeta,
    ) -> Option<Verdict> {
        let conn = self.director.fragments.follow(&key, piece, now)?;
        self.count_packet(&conn, dir, ip_len);
        let (side, next_hop) = match dir {
            Direction::In => (Side::Dip, Some(*conn.daddr().ip())),
            Direction::Out => (
                Side::Vip,
                self.director.config.next_hop_to_client(*conn.client().ip()),
            ),
        };
        {
            let mut ip = frame.ip_mut();
            if !nat::decrement_ttl(&mut ip) {
                return Some(Verdict::Drop(DropReason::TtlExpired));
            }
            match dir {
                _ if dr::is_routed(&conn) => {}
                Direction::In => ip.set_dst_addr(*conn.daddr().ip()),
                Direction::Out => ip.set_src_addr(*conn.vaddr().ip()),
            }
            ip.fill_checksum();
        }
        let Some(next_hop) = next_hop else {
            return Some(Verdict::Drop(DropReason::NoRouteToClient));
        };
        Some(match side {
            Side::Dip => self.send_to_real_server(now, &conn, next_hop, frame, meta),
            Side::Vip => self.send_via(now, side, next_hop, frame, meta),
        })
    }
}

/// A SYN that finds its flow's old entry closed: the case of IPVS's conn_reuse_mode
/// (`ip_vs_in`), where the new connection must not inherit the old one's real server.
fn reuses_closed_entry(conn: &Conn, flow: &Flow) -> bool {
    flow.key.protocol == PROTO_TCP
        && flow.tcp_flags & flags::SYN != 0
        && flow.tcp_flags & flags::RST == 0
        && matches!(conn.state(), ConnState::TimeWait | ConnState::Close)
}

/// The NAT rewrite of one endpoint plus the TTL decrement and IP checksum. On error
/// nothing has been changed.
fn rewrite(
    frame: &mut Ipv4Frame<'_>,
    which: Endpoint,
    to: SocketAddrV4,
    meta: FrameMeta,
) -> Result<(), Verdict> {
    let mut ip = frame.ip_mut();
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
