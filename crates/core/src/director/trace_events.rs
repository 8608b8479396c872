//! What trace listeners see of the data path: the stages of a traced connection's
//! packets, the scheduler's choice, state changes, drops, and frame copies for captures.
//! Reached only while somebody listens ([`crate::trace::TraceHub::is_active`]).

use std::net::{Ipv4Addr, SocketAddrV4};

use masq_wire::ethernet::MacAddr;
use masq_wire::ipv4::{PROTO_TCP, PROTO_UDP};
use masq_wire::tcp::TcpSegment;
use masq_wire::tunnel::TunnelEnds;
use masq_wire::udp::UdpDatagram;

use super::frame::Ipv4Frame;
use super::worker::Worker;
use crate::conn::Conn;
use crate::proto_state::{ConnState, Direction};
use crate::time::Timestamp;
use crate::trace::{CapturedFrame, Choice, FrameView, Stage, TraceEvent, TraceKind};
use crate::verdict::{DropReason, Side, Verdict};

/// What happened to one packet of a traced connection.
pub(super) struct TracedStep {
    pub dir: Direction,
    pub before: Option<FrameView>,
    /// The frame as it arrived, when a capture wants it.
    pub arrived: Option<Vec<u8>>,
    pub choice: Option<Choice>,
    pub states: (ConnState, ConnState),
    pub verdict: Verdict,
    /// The outer header's ends, when the packet left inside a tunnel.
    pub tunnel: Option<TunnelEnds>,
}

impl Worker {
    /// Shows one packet of a traced connection: the stage it arrived at, the scheduler's
    /// choice for a new connection, the stage it left at, and the state change. Only the
    /// first packet in each direction unless a listener asked for every packet.
    pub(super) fn trace_step(
        &self,
        conn: &Conn,
        now: Timestamp,
        step: TracedStep,
        frame: &Ipv4Frame<'_>,
    ) {
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
        let capture = |stage: Stage, bytes: Vec<u8>| {
            hub.emit_frame(
                conn.protocol(),
                CapturedFrame {
                    at: now,
                    stage,
                    client: conn.client(),
                    vaddr: conn.vaddr(),
                    bytes,
                },
            )
        };
        let shown = first || every;
        let captured = step.arrived.is_some();
        if shown {
            if let Some(view) = step.before {
                emit(TraceKind::Stage(arrived, view));
            }
            if let Some(bytes) = step.arrived {
                capture(arrived, bytes);
            }
        }
        if let Some(choice) = step.choice {
            emit(TraceKind::Scheduled(choice));
        }
        let sent = matches!(
            step.verdict,
            Verdict::Forward(_) | Verdict::Encapsulated(_) | Verdict::Queued
        );
        if shown && sent {
            if let Some(mut view) = frame_view(frame) {
                view.tunnel = step.tunnel;
                if step.verdict == Verdict::Queued {
                    // Sent once ARP answers: the MACs are not known yet.
                    view.dst_mac = MacAddr::ZERO;
                }
                emit(TraceKind::Stage(left, view));
            }
            if captured && matches!(step.verdict, Verdict::Forward(_)) {
                capture(left, frame.bytes().to_vec());
            }
        }
        let (from, to) = step.states;
        if from != to {
            emit(TraceKind::StateChange { from, to });
        }
    }

    /// Shows a dropped frame, with the addresses it carried (when it has any).
    pub(super) fn trace_drop(
        &self,
        now: Timestamp,
        side: Side,
        reason: DropReason,
        frame: Option<&Ipv4Frame<'_>>,
    ) {
        let (src, dst, protocol) = match frame.and_then(frame_view) {
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
}

/// Reads addresses, ports, MACs and flags of a frame as it is now; `None` for TCP or UDP
/// without a whole header (a UDP first fragment announces more than it carries).
pub(super) fn frame_view(frame: &Ipv4Frame<'_>) -> Option<FrameView> {
    let (eth, ip) = (frame.eth(), frame.ip());
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
        tunnel: None,
    })
}
