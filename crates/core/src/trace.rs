//! Tracing: the four rewrite stages of each new connection, the scheduler's choice, TCP
//! state changes and drops, streamed to whoever is listening (`masqadm --trace`, the lab
//! page, captures).
//!
//! It costs one relaxed atomic load per frame when nobody listens. Listeners get events
//! through bounded queues that are never waited on: a slow or vanished reader loses events
//! (counted in its [`TraceTap::lost`]) and never stalls forwarding. Events are plain `Copy`
//! data, so sending one allocates nothing; frame bytes are copied only for taps that asked
//! for them (captures).

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use masq_wire::ethernet::MacAddr;
use masq_wire::tunnel::TunnelEnds;

use crate::proto_state::ConnState;
use crate::time::Timestamp;
use crate::verdict::{DropReason, Side};

/// Which of the textbook's four stages a frame is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// 1: client → VIP, as received on the VIP side.
    ClientToVip = 1,
    /// 2: director → real server, after the rewrite, sent on the DIP side.
    DirectorToServer = 2,
    /// 3: real server → director (client), as received on the DIP side.
    ServerToDirector = 3,
    /// 4: director → client, after the rewrite, sent on the VIP side.
    DirectorToClient = 4,
}

/// One frame as seen at a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameView {
    pub protocol: u8,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    /// TCP flags (0 for UDP).
    pub tcp_flags: u8,
    /// IP total length.
    pub ip_len: u16,
    /// The outer header's ends when the frame left inside a tunnel (stage 2 of `-i`); the
    /// rest of the view is the packet it carries.
    pub tunnel: Option<TunnelEnds>,
}

/// Why the scheduler's pick went where it did, with the numbers it looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub scheduler: &'static str,
    pub dest: SocketAddrV4,
    pub weight: i32,
    pub active: u32,
    pub inactive: u32,
    /// Sent by a persistence template rather than by the scheduler.
    pub persistent: bool,
    /// Number of destinations the scheduler chose from.
    pub candidates: usize,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceKind {
    Stage(Stage, FrameView),
    Scheduled(Choice),
    StateChange { from: ConnState, to: ConnState },
    Dropped { side: Side, reason: DropReason },
}

/// One trace event. `client` and `vaddr` identify the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceEvent {
    pub at: Timestamp,
    pub client: SocketAddrV4,
    pub vaddr: SocketAddrV4,
    pub kind: TraceKind,
}

/// A copy of a traced frame at one stage, for captures. Copied only for listeners that
/// asked for frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedFrame {
    pub at: Timestamp,
    pub stage: Stage,
    pub client: SocketAddrV4,
    pub vaddr: SocketAddrV4,
    pub bytes: Vec<u8>,
}

/// Frame copies that may wait for one listener (at most 4 MiB of MTU-sized frames, or
/// 16 MiB of 64 KiB GSO frames); more are lost and counted.
pub const MAX_QUEUED_FRAMES: usize = 256;

/// What a listener wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceFilter {
    /// Only connections to this VIP:port and protocol (None: all).
    pub service: Option<(u8, SocketAddrV4)>,
    /// Every packet of a traced connection, not only the first in each direction.
    pub every_packet: bool,
}

impl TraceFilter {
    /// Whether a connection to `vaddr` over `protocol` is wanted.
    pub fn wants(&self, protocol: u8, vaddr: SocketAddrV4) -> bool {
        self.service.is_none_or(|s| s == (protocol, vaddr))
    }
}

/// One listener's end: its filter, its queue and how many events it lost.
#[derive(Debug)]
pub struct TraceTap {
    pub filter: TraceFilter,
    tx: SyncSender<TraceEvent>,
    frames: Option<SyncSender<CapturedFrame>>,
    lost: AtomicU64,
}

impl TraceTap {
    /// Events dropped because the listener's queue was full.
    pub fn lost(&self) -> u64 {
        self.lost.load(Relaxed)
    }

    fn offer_frame(&self, frame: CapturedFrame) {
        if let Some(tx) = &self.frames {
            if let Err(TrySendError::Full(_)) = tx.try_send(frame) {
                self.lost.fetch_add(1, Relaxed);
            }
        }
    }

    fn offer(&self, event: TraceEvent) {
        match self.tx.try_send(event) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.lost.fetch_add(1, Relaxed);
            }
        }
    }
}

/// The director's set of listeners.
#[derive(Debug, Default)]
pub struct TraceHub {
    /// Fast check for the hot path: is anybody listening?
    active: AtomicBool,
    taps: ArcSwap<Vec<Arc<TraceTap>>>,
    /// Serialises subscribe/unsubscribe.
    edit: Mutex<()>,
}

/// A subscription; dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<TraceHub>,
    pub tap: Arc<TraceTap>,
    pub events: Receiver<TraceEvent>,
    /// Frame copies, for a subscription made with [`TraceHub::subscribe_with_frames`].
    pub frames: Option<Receiver<CapturedFrame>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(&self.tap);
    }
}

impl TraceHub {
    /// Whether anybody listens (one relaxed load).
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// Adds a listener with a queue of `capacity` events.
    pub fn subscribe(self: &Arc<Self>, filter: TraceFilter, capacity: usize) -> Subscription {
        self.add(filter, capacity, false)
    }

    /// Adds a listener that also gets a copy of every traced frame at each stage.
    pub fn subscribe_with_frames(
        self: &Arc<Self>,
        filter: TraceFilter,
        capacity: usize,
    ) -> Subscription {
        self.add(filter, capacity, true)
    }

    fn add(self: &Arc<Self>, filter: TraceFilter, capacity: usize, frames: bool) -> Subscription {
        let (tx, events) = sync_channel(capacity);
        let (frames_tx, frames_rx) = if frames {
            // A copy may be a 64 KiB GSO frame: this many at most wait per listener.
            let (t, r) = sync_channel(capacity.min(MAX_QUEUED_FRAMES));
            (Some(t), Some(r))
        } else {
            (None, None)
        };
        let tap = Arc::new(TraceTap {
            filter,
            tx,
            frames: frames_tx,
            lost: AtomicU64::new(0),
        });
        let _edit = self.edit.lock().unwrap_or_else(|e| e.into_inner());
        let mut taps = (**self.taps.load()).clone();
        taps.push(tap.clone());
        self.taps.store(Arc::new(taps));
        self.active.store(true, Relaxed);
        Subscription {
            hub: self.clone(),
            tap,
            events,
            frames: frames_rx,
        }
    }

    fn remove(&self, tap: &Arc<TraceTap>) {
        let _edit = self.edit.lock().unwrap_or_else(|e| e.into_inner());
        let taps: Vec<_> = self
            .taps
            .load()
            .iter()
            .filter(|t| !Arc::ptr_eq(t, tap))
            .cloned()
            .collect();
        self.active.store(!taps.is_empty(), Relaxed);
        self.taps.store(Arc::new(taps));
    }

    /// Whether some listener wants connections to `vaddr`.
    pub fn wants(&self, protocol: u8, vaddr: SocketAddrV4) -> bool {
        self.is_active()
            && self
                .taps
                .load()
                .iter()
                .any(|t| t.filter.wants(protocol, vaddr))
    }

    /// Whether some listener wants every packet of connections to `vaddr`.
    pub fn wants_every_packet(&self, protocol: u8, vaddr: SocketAddrV4) -> bool {
        self.is_active()
            && self
                .taps
                .load()
                .iter()
                .any(|t| t.filter.every_packet && t.filter.wants(protocol, vaddr))
    }

    /// Whether some listener wants frame copies of connections to `vaddr`.
    pub fn wants_frames(&self, protocol: u8, vaddr: SocketAddrV4) -> bool {
        self.is_active()
            && self
                .taps
                .load()
                .iter()
                .any(|t| t.frames.is_some() && t.filter.wants(protocol, vaddr))
    }

    /// Offers a frame copy to every listener that wants frames of its connection.
    pub fn emit_frame(&self, protocol: u8, frame: CapturedFrame) {
        for tap in self.taps.load().iter() {
            if tap.frames.is_some() && tap.filter.wants(protocol, frame.vaddr) {
                tap.offer_frame(frame.clone());
            }
        }
    }

    /// Offers `event` about a connection over `protocol` to every listener that wants it.
    pub fn emit(&self, protocol: u8, event: TraceEvent) {
        for tap in self.taps.load().iter() {
            if tap.filter.wants(protocol, event.vaddr) {
                tap.offer(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn event(vport: u16) -> TraceEvent {
        let a = SocketAddrV4::new(Ipv4Addr::new(192, 168, 0, 101), 40000);
        TraceEvent {
            at: Timestamp::ZERO,
            client: a,
            vaddr: SocketAddrV4::new(Ipv4Addr::new(192, 168, 0, 10), vport),
            kind: TraceKind::StateChange {
                from: ConnState::SynRecv,
                to: ConnState::Established,
            },
        }
    }

    #[test]
    fn nobody_listening_means_inactive_and_a_full_queue_loses_not_blocks() {
        let hub = Arc::new(TraceHub::default());
        assert!(!hub.is_active());
        let sub = hub.subscribe(TraceFilter::default(), 2);
        assert!(hub.is_active());
        for _ in 0..5 {
            hub.emit(6, event(80));
        }
        assert_eq!(sub.events.try_iter().count(), 2);
        assert_eq!(sub.tap.lost(), 3);
        drop(sub);
        assert!(!hub.is_active());
    }

    #[test]
    fn filters_by_service() {
        let hub = Arc::new(TraceHub::default());
        let vip80 = SocketAddrV4::new(Ipv4Addr::new(192, 168, 0, 10), 80);
        let sub = hub.subscribe(
            TraceFilter {
                service: Some((6, vip80)),
                every_packet: false,
            },
            8,
        );
        hub.emit(6, event(80));
        hub.emit(6, event(443));
        hub.emit(17, event(80));
        assert_eq!(sub.events.try_iter().count(), 1);
        assert!(hub.wants(6, vip80));
        assert!(!hub.wants_every_packet(6, vip80));
    }
}
