//! A worker's transmit queues: the outbox of frames the director generates (ARP requests,
//! ICMP errors), the frames it encapsulated for a tunnel, the slots of frames that wait
//! for their next hop's ARP answer, and the ARP probes housekeeping asked for.
//! [`TransmitQueues::poll`] hands them out in that order. Every frame buffer is allocated
//! once, when the worker is made; only the list of probes grows, and only in housekeeping.
//!
//! A tunnelled frame is longer than the one received, and the I/O layer lends
//! `handle_frame` exactly the received bytes: so it is copied once, behind its outer
//! header, into a tunnel slot (one memcpy of the packet, no allocation). The I/O layer
//! takes the whole ring at once ([`TransmitQueues::take_tunnelled`]) and sends it in the
//! same batched send as the frames forwarded in place; [`TransmitQueues::poll`] hands out
//! whatever is left to callers that send one frame at a time.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use masq_wire::ethernet::{self, EthernetFrame};
use masq_wire::tunnel::IPIP_OVERHEAD;

use super::frame::FrameMeta;
use super::trace_events::LeavingLater;
use super::Director;
use crate::time::Timestamp;
use crate::verdict::{DropReason, Side, Verdict, WorkerCounters};

/// The largest frame the director handles: a 64 KiB GSO super-frame plus its Ethernet
/// header. Queued frames are copied into buffers of this size, allocated once.
pub const MAX_FRAME: usize = 65536 + ethernet::HEADER_LEN;
/// The largest frame that may leave: a [`MAX_FRAME`] with a tunnel's outer header.
const MAX_TUNNELLED_FRAME: usize = MAX_FRAME + IPIP_OVERHEAD;
/// Frames that may wait for ARP resolution per worker.
const PENDING_SLOTS: usize = 16;
/// Encapsulated frames that may wait to be sent per worker: one receive batch of masqd's.
const TUNNEL_SLOTS: usize = 32;
/// Generated frames (ARP, ICMP) that may wait to be sent per worker.
const OUTBOX_SLOTS: usize = 32;
/// Size of a generated frame's buffer: Ethernet + IPv4 + ICMP + a quoted 60-byte header
/// and 8 bytes, rounded up.
const SMALL_FRAME: usize = 256;
/// How long a frame waits for ARP before it is dropped.
const PENDING_TIMEOUT_MS: u64 = 3000;

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

impl Slot {
    fn new(size: usize) -> Self {
        Slot {
            side: Side::Vip,
            len: 0,
            meta: FrameMeta::default(),
            buf: vec![0u8; size].into_boxed_slice(),
        }
    }

    fn transmit(&self) -> Transmit<'_> {
        Transmit {
            side: self.side,
            frame: &self.buf[..self.len],
            meta: self.meta,
        }
    }
}

#[derive(Debug)]
struct PendingFrame {
    slot: Slot,
    next_hop: Ipv4Addr,
    since: Timestamp,
    in_use: bool,
    /// Set for a traced frame: it is shown to trace listeners when it leaves.
    trace: Option<LeavingLater>,
}

/// A fixed ring of frame buffers: `len` frames from `head` on.
#[derive(Debug)]
struct SlotRing {
    slots: Vec<Slot>,
    head: usize,
    len: usize,
}

impl SlotRing {
    fn new(count: usize, size: usize) -> Self {
        SlotRing {
            slots: (0..count).map(|_| Slot::new(size)).collect(),
            head: 0,
            len: 0,
        }
    }

    /// Appends a frame for `side` that `write` puts into the next free buffer, returning
    /// its length or `None` to append nothing after all. `Err` when the ring is full.
    fn push(
        &mut self,
        side: Side,
        meta: FrameMeta,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> Result<bool, DropReason> {
        if self.len == self.slots.len() {
            return Err(DropReason::OutboxFull);
        }
        let n = self.slots.len();
        let slot = &mut self.slots[(self.head + self.len) % n];
        let Some(len) = write(&mut slot.buf) else {
            return Ok(false);
        };
        slot.side = side;
        slot.len = len;
        slot.meta = meta;
        self.len += 1;
        Ok(true)
    }

    /// Takes every frame, oldest first; their buffers stay valid as long as the borrow.
    fn drain(&mut self) -> Drained<'_> {
        let n = self.slots.len();
        let end = self.head + self.len;
        let (wrapped, first) = (end.saturating_sub(n), end.min(n));
        let head = self.head;
        self.head = end % n;
        self.len = 0;
        Drained {
            first: &self.slots[head..first],
            wrapped: &self.slots[..wrapped],
        }
    }

    /// Takes the oldest frame; its buffer stays valid until the next `push`.
    fn pop(&mut self) -> Option<&Slot> {
        if self.len == 0 {
            return None;
        }
        let i = self.head;
        self.head = (self.head + 1) % self.slots.len();
        self.len -= 1;
        Some(&self.slots[i])
    }
}

/// Frames taken out of a [`SlotRing`] at once, oldest first: the ring's two contiguous runs.
#[derive(Debug, Clone, Copy)]
pub struct Drained<'a> {
    first: &'a [Slot],
    wrapped: &'a [Slot],
}

impl<'a> Drained<'a> {
    /// The frames, oldest first; iterate as often as needed (e.g. once per side).
    pub fn iter(&self) -> impl Iterator<Item = Transmit<'a>> + Clone + 'a {
        self.first.iter().chain(self.wrapped).map(Slot::transmit)
    }
}

/// The frames one worker has to send besides those it forwards in place.
#[derive(Debug)]
pub(super) struct TransmitQueues {
    /// Generated frames (ARP, ICMP).
    outbox: SlotRing,
    /// Frames encapsulated for a tunnel, their next hop resolved.
    tunnelled: SlotRing,
    pending: Vec<PendingFrame>,
    /// A pending slot handed out by the last `poll`, freed on the next call.
    released: Option<usize>,
    /// The pending slot filled last.
    last_pending: usize,
    /// Neighbours housekeeping probes, in order. Each probe is written into the outbox
    /// only when it is handed out, so any number of real servers fits.
    probes: VecDeque<(Side, Ipv4Addr)>,
}

impl TransmitQueues {
    pub fn new() -> Self {
        TransmitQueues {
            outbox: SlotRing::new(OUTBOX_SLOTS, SMALL_FRAME),
            tunnelled: SlotRing::new(TUNNEL_SLOTS, MAX_TUNNELLED_FRAME),
            pending: (0..PENDING_SLOTS)
                .map(|_| PendingFrame {
                    slot: Slot::new(MAX_TUNNELLED_FRAME),
                    next_hop: Ipv4Addr::UNSPECIFIED,
                    since: Timestamp::ZERO,
                    in_use: false,
                    trace: None,
                })
                .collect(),
            released: None,
            last_pending: 0,
            probes: VecDeque::new(),
        }
    }

    /// Queues a generated frame for `side`: `write` fills a buffer of [`SMALL_FRAME`]
    /// bytes and returns the frame's length, or `None` to queue nothing after all. A full
    /// outbox drops the frame, counted as [`DropReason::OutboxFull`]. Returns whether a
    /// frame was queued.
    pub fn push_generated(
        &mut self,
        side: Side,
        counters: &WorkerCounters,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> bool {
        match self.outbox.push(side, FrameMeta::default(), write) {
            Ok(queued) => queued,
            Err(reason) => {
                counters.count_drop(reason);
                false
            }
        }
    }

    /// Queues an encapsulated frame for `side` whose MACs are set: `write` fills a buffer
    /// of [`MAX_TUNNELLED_FRAME`] bytes and returns the frame's length, or `None` if it
    /// does not fit. The verdict is the frame's: [`Verdict::Encapsulated`] or a drop.
    pub fn push_tunnelled(
        &mut self,
        side: Side,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> Verdict {
        match self.tunnelled.push(side, FrameMeta::default(), write) {
            Ok(true) => Verdict::Encapsulated(side),
            Ok(false) => Verdict::Drop(DropReason::TooBig),
            Err(reason) => Verdict::Drop(reason),
        }
    }

    /// Takes every encapsulated frame at once, so that they leave in one batched send.
    pub fn take_tunnelled(&mut self) -> Drained<'_> {
        self.tunnelled.drain()
    }

    /// Keeps a copy of `frame` until `next_hop` is resolved.
    pub fn queue_pending(
        &mut self,
        now: Timestamp,
        side: Side,
        next_hop: Ipv4Addr,
        frame: &[u8],
        meta: FrameMeta,
    ) -> Verdict {
        self.queue_pending_with(now, (side, next_hop), meta, |buf| {
            let dst = buf.get_mut(..frame.len())?;
            dst.copy_from_slice(frame);
            Some(frame.len())
        })
    }

    /// Keeps a frame that `write` puts into a buffer of [`MAX_TUNNELLED_FRAME`] bytes
    /// (returning its length, or `None` if it does not fit) until `next_hop` is resolved.
    pub fn queue_pending_with(
        &mut self,
        now: Timestamp,
        (side, next_hop): (Side, Ipv4Addr),
        meta: FrameMeta,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> Verdict {
        let Some((i, p)) = self.pending.iter_mut().enumerate().find(|(_, p)| !p.in_use) else {
            return Verdict::Drop(DropReason::NeighbourQueueFull);
        };
        let Some(len) = write(&mut p.slot.buf) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        p.slot.len = len;
        p.slot.side = side;
        p.slot.meta = meta;
        p.next_hop = next_hop;
        p.since = now;
        p.in_use = true;
        p.trace = None;
        self.last_pending = i;
        Verdict::Queued
    }

    /// Shows the frame queued last to trace listeners when it leaves.
    pub fn show_when_sent(&mut self, trace: LeavingLater) {
        self.pending[self.last_pending].trace = Some(trace);
    }

    /// Queues an ARP probe for `target` out of `side`, written when it is handed out.
    pub fn queue_probe(&mut self, side: Side, target: Ipv4Addr) {
        self.probes.push_back((side, target));
    }

    /// The next frame to send: generated frames first, then encapsulated ones, then
    /// housekeeping's probes, then queued frames whose next hop has been resolved. Queued frames that waited too long
    /// are dropped and counted here.
    pub fn poll(
        &mut self,
        now: Timestamp,
        director: &Director,
        counters: &WorkerCounters,
    ) -> Option<Transmit<'_>> {
        if let Some(i) = self.released.take() {
            self.pending[i].in_use = false;
        }
        if self.outbox.len > 0 {
            return self.outbox.pop().map(Slot::transmit);
        }
        if self.tunnelled.len > 0 {
            return self.tunnelled.pop().map(Slot::transmit);
        }
        // The outbox is empty: its head slot is free for a probe until the next call.
        while let Some((side, target)) = self.probes.pop_front() {
            let slot = &mut self.outbox.slots[self.outbox.head];
            if let Some(len) = director.arp_probe(side, target, &mut slot.buf) {
                slot.side = side;
                slot.len = len;
                slot.meta = FrameMeta::default();
                return Some(self.outbox.slots[self.outbox.head].transmit());
            }
        }
        let mut ready = None;
        for (i, p) in self
            .pending
            .iter_mut()
            .enumerate()
            .filter(|(_, p)| p.in_use)
        {
            if let Some(mac) = director.neighbour_table(p.slot.side).peek(p.next_hop) {
                // A queued frame is a copy of a checked frame: its Ethernet header is whole.
                let mut eth = EthernetFrame::new_unchecked(&mut p.slot.buf[..p.slot.len]);
                eth.set_dst_addr(mac);
                eth.set_src_addr(director.config.side(p.slot.side).mac);
                ready = Some(i);
                break;
            }
            if now.saturating_since(p.since).as_millis() >= u128::from(PENDING_TIMEOUT_MS) {
                p.in_use = false;
                counters.count_drop(DropReason::NeighbourUnreachable);
            }
        }
        let i = ready?;
        self.released = Some(i);
        let p = &mut self.pending[i];
        if let Some(trace) = p.trace.take() {
            trace.left(&director.trace, now, &p.slot.buf[..p.slot.len]);
        }
        Some(self.pending[i].slot.transmit())
    }

    /// Number of frames waiting for ARP.
    pub fn pending_len(&self) -> usize {
        self.pending.iter().filter(|p| p.in_use).count()
    }
}
