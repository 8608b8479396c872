//! A worker's transmit queues: the outbox of frames the director generates (ARP requests,
//! ICMP errors), the frames it encapsulated for a tunnel, the slots of frames that wait
//! for their next hop's ARP answer, and the ARP probes housekeeping asked for.
//! [`TransmitQueues::poll`] hands them out in that order. Every frame buffer is allocated
//! once, when the worker is made; only the list of probes grows, and only in housekeeping.
//!
//! A tunnelled frame is longer than the one received, and the I/O layer lends
//! `handle_frame` exactly the received bytes: so it is copied once, behind its outer
//! header, into the tunnel buffer (one memcpy of the packet, no allocation). A GSO
//! super-frame is copied as the segments it stands for, each behind its own headers. The
//! frames are packed one after the other, so one receive batch of 64 KiB super-frames
//! fits however finely they are cut. The I/O layer takes them all at once
//! ([`TransmitQueues::take_tunnelled`]) and sends them in the same batched send as the
//! frames forwarded in place; [`TransmitQueues::poll`] hands out whatever is left to
//! callers that send one frame at a time.

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
/// Super-frames per receive batch of masqd's: the tunnel buffer holds as many, encapsulated.
const TUNNEL_BATCH: usize = 32;
/// Encapsulated frames that may wait to be sent per worker: a batch of super-frames cut
/// at an MSS of 1 KiB or more.
const TUNNEL_FRAMES: usize = TUNNEL_BATCH * 64;
/// Bytes of encapsulated frames that may wait to be sent per worker: a batch of 64 KiB
/// super-frames and the headers of each of their [`TUNNEL_FRAMES`] segments.
const TUNNEL_BYTES: usize = TUNNEL_BATCH * MAX_TUNNELLED_FRAME + TUNNEL_FRAMES * 128;
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

/// Where a frame of [`PackedFrames`] lies in its buffer.
#[derive(Debug, Clone, Copy)]
struct Packed {
    side: Side,
    start: usize,
    len: usize,
}

impl Packed {
    /// The frame in `buf`, the buffer it was packed into. Encapsulated frames leave
    /// nothing to offload.
    fn transmit(self, buf: &[u8]) -> Transmit<'_> {
        Transmit {
            side: self.side,
            frame: &buf[self.start..self.start + self.len],
            meta: FrameMeta::default(),
        }
    }
}

/// Frames packed one after the other into one buffer, handed out oldest first. The buffer
/// is reused from its start once every frame has been handed out.
#[derive(Debug)]
struct PackedFrames {
    buf: Box<[u8]>,
    frames: Vec<Packed>,
    /// Frames before this one were handed out.
    next: usize,
}

impl PackedFrames {
    fn new(frames: usize, bytes: usize) -> Self {
        PackedFrames {
            buf: vec![0u8; bytes].into_boxed_slice(),
            frames: Vec::with_capacity(frames),
            next: 0,
        }
    }

    fn used(&self) -> usize {
        self.frames.last().map_or(0, |f| f.start + f.len)
    }

    fn is_empty(&self) -> bool {
        self.next == self.frames.len()
    }

    /// Whether `count` more frames of `bytes` bytes in all fit (from the buffer's start
    /// again if every frame was handed out).
    fn has_room(&mut self, count: usize, bytes: usize) -> bool {
        if self.is_empty() {
            self.frames.clear();
            self.next = 0;
        }
        self.frames.len() + count <= self.frames.capacity() && self.used() + bytes <= self.buf.len()
    }

    /// Appends a frame of `len` bytes for `side` that `write` fills; `Err` when it does not
    /// fit, `Ok(false)` when `write` returns `None` to append nothing after all.
    fn push(
        &mut self,
        side: Side,
        len: usize,
        write: impl FnOnce(&mut [u8]) -> Option<()>,
    ) -> Result<bool, DropReason> {
        if !self.has_room(1, len) {
            return Err(DropReason::OutboxFull);
        }
        let start = self.used();
        if write(&mut self.buf[start..start + len]).is_none() {
            return Ok(false);
        }
        self.frames.push(Packed { side, start, len });
        Ok(true)
    }

    /// Takes every frame not handed out yet, oldest first; their bytes stay valid as long
    /// as the borrow.
    fn drain(&mut self) -> Drained<'_> {
        let first = self.next;
        self.next = self.frames.len();
        Drained {
            frames: &self.frames[first..],
            buf: &self.buf,
        }
    }

    /// Takes the oldest frame; its bytes stay valid until the next `push`.
    fn pop(&mut self) -> Option<Transmit<'_>> {
        let frame = self.frames.get(self.next)?;
        self.next += 1;
        Some(frame.transmit(&self.buf))
    }
}

/// Encapsulated frames taken out at once, oldest first.
#[derive(Debug, Clone, Copy)]
pub struct Drained<'a> {
    frames: &'a [Packed],
    buf: &'a [u8],
}

impl<'a> Drained<'a> {
    /// The frames, oldest first; iterate as often as needed (e.g. once per side).
    pub fn iter(&self) -> impl Iterator<Item = Transmit<'a>> + Clone + 'a {
        let buf = self.buf;
        self.frames.iter().map(move |f| f.transmit(buf))
    }
}

/// The frames one worker has to send besides those it forwards in place.
#[derive(Debug)]
pub(super) struct TransmitQueues {
    /// Generated frames (ARP, ICMP).
    outbox: SlotRing,
    /// Frames encapsulated for a tunnel, their next hop resolved.
    tunnelled: PackedFrames,
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
            tunnelled: PackedFrames::new(TUNNEL_FRAMES, TUNNEL_BYTES),
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

    /// Queues an encapsulated frame of `len` bytes for `side` whose MACs are set: `write`
    /// fills exactly that many, or returns `None` if it cannot. The verdict is the
    /// frame's: [`Verdict::Encapsulated`] or a drop.
    pub fn push_tunnelled(
        &mut self,
        side: Side,
        len: usize,
        write: impl FnOnce(&mut [u8]) -> Option<()>,
    ) -> Verdict {
        match self.tunnelled.push(side, len, write) {
            Ok(true) => Verdict::Encapsulated(side),
            // `len` was measured from the frame, so a write that fails found the frame
            // itself unusable (a partial checksum pointing outside it, say).
            Ok(false) => Verdict::Drop(DropReason::Malformed),
            Err(reason) => Verdict::Drop(reason),
        }
    }

    /// Whether `count` more encapsulated frames of `bytes` bytes in all fit: the segments
    /// of a super-frame are queued all or none.
    pub fn has_tunnel_room(&mut self, count: usize, bytes: usize) -> bool {
        self.tunnelled.has_room(count, bytes)
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
        if !self.tunnelled.is_empty() {
            return self.tunnelled.pop();
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
