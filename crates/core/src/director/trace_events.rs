//! What trace listeners see of the data path: the stages of a traced connection's
//! packets, the scheduler's choice, state changes, drops, and frame copies for captures.
//! Reached only while somebody listens ([`crate::trace::TraceHub::is_active`]).
//!
//! A traced frame that waits for its next hop's ARP answer is shown when it leaves, from
//! [`super::transmit`], with the MACs it really carries: [`LeavingLater`] keeps what that
//! needs in the frame's waiting slot.

use std::net::{Ipv4Addr, SocketAddrV4};

use masq_wire::ethernet::EthernetFrame;
use masq_wire::ipv4::{PROTO_TCP, PROTO_UDP};
use masq_wire::tcp::TcpSegment;
use masq_wire::tunnel::TunnelEnds;
use masq_wire::udp::UdpDatagram;

use super::frame::Ipv4Frame;
use super::worker::Worker;
use crate::conn::Conn;
use crate::proto_state::{ConnState, Direction};
use crate::time::Timestamp;
use crate::trace::{CapturedFrame, Choice, FrameView, Stage, TraceEvent, TraceHub, TraceKind};
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

/// The stage a traced frame that waits for ARP is shown at once it leaves.
#[derive(Debug, Clone, Copy)]
pub(super) struct LeavingLater {
    protocol: u8,
    client: SocketAddrV4,
    vaddr: SocketAddrV4,
    stage: Stage,
    /// The frame as rewritten, its MACs not yet known.
    view: FrameView,
    /// Whether a capture wants the frame's bytes.
    capture: bool,
}

impl LeavingLater {
    /// Shows the frame leaving at `now`: `frame` is its bytes, the MACs filled in.
    pub(super) fn left(&self, hub: &TraceHub, now: Timestamp, frame: &[u8]) {
        // A queued frame is a copy of a checked frame: its Ethernet header is whole.
        let eth = EthernetFrame::new_unchecked(frame);
        let view = FrameView {
            src_mac: eth.src_addr(),
            dst_mac: eth.dst_addr(),
            ..self.view
        };
        hub.emit(
            self.protocol,
            TraceEvent {
                at: now,
                client: self.client,
                vaddr: self.vaddr,
                kind: TraceKind::Stage(self.stage, view),
            },
        );
        if self.capture {
            hub.emit_frame(
                self.protocol,
                CapturedFrame {
                    at: now,
                    stage: self.stage,
                    client: self.client,
                    vaddr: self.vaddr,
                    bytes: frame.to_vec(),
                },
            );
        }
    }
}

impl Worker {
    /// Shows one packet of a traced connection: the stage it arrived at, the scheduler's
    /// choice for a new connection, the stage it left at, and the state change. Only the
    /// first packet in each direction unless a listener asked for every packet. A packet
    /// that waits for ARP is shown leaving when it leaves ([`LeavingLater`]).
    pub(super) fn trace_step(
        &mut self,
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
                    self.queues.show_when_sent(LeavingLater {
                        protocol: conn.protocol(),
                        client: conn.client(),
                        vaddr: conn.vaddr(),
                        stage: left,
                        view,
                        // As for a frame forwarded at once, a tunnelled one is not copied.
                        capture: captured && step.tunnel.is_none(),
                    });
                } else {
                    emit(TraceKind::Stage(left, view));
                }
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
