//! A worker's transmit queues: the outbox of frames the director generates (ARP requests,
//! ICMP errors), the slots of frames that wait for their next hop's ARP answer, and the
//! ARP probes housekeeping asked for. [`TransmitQueues::poll`] hands them out in that
//! order. Every frame buffer is allocated once, when the worker is made; only the list of
//! probes grows, and only in housekeeping.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use masq_wire::ethernet::{self, EthernetFrame};

use super::frame::FrameMeta;
use super::Director;
use crate::time::Timestamp;
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
}

/// The frames one worker has to send besides those it forwards in place.
#[derive(Debug)]
pub(super) struct TransmitQueues {
    /// A ring of `outbox_len` generated frames from `outbox_head` on.
    outbox: Vec<Slot>,
    outbox_head: usize,
    outbox_len: usize,
    pending: Vec<PendingFrame>,
    /// A pending slot handed out by the last `poll`, freed on the next call.
    released: Option<usize>,
    /// Neighbours housekeeping probes, in order. Each probe is written into the outbox
    /// only when it is handed out, so any number of real servers fits.
    probes: VecDeque<(Side, Ipv4Addr)>,
}

impl TransmitQueues {
    pub fn new() -> Self {
        TransmitQueues {
            outbox: (0..OUTBOX_SLOTS).map(|_| Slot::new(SMALL_FRAME)).collect(),
            outbox_head: 0,
            outbox_len: 0,
            pending: (0..PENDING_SLOTS)
                .map(|_| PendingFrame {
                    slot: Slot::new(MAX_FRAME),
                    next_hop: Ipv4Addr::UNSPECIFIED,
                    since: Timestamp::ZERO,
                    in_use: false,
                })
                .collect(),
            released: None,
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
        if self.outbox_len == OUTBOX_SLOTS {
            counters.count_drop(DropReason::OutboxFull);
            return false;
        }
        let slot = &mut self.outbox[(self.outbox_head + self.outbox_len) % OUTBOX_SLOTS];
        let Some(len) = write(&mut slot.buf) else {
            return false;
        };
        slot.side = side;
        slot.len = len;
        slot.meta = FrameMeta::default();
        self.outbox_len += 1;
        true
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

    /// Queues an ARP probe for `target` out of `side`, written when it is handed out.
    pub fn queue_probe(&mut self, side: Side, target: Ipv4Addr) {
        self.probes.push_back((side, target));
    }

    /// The next frame to send: generated frames first, then housekeeping's probes, then
    /// queued frames whose next hop has been resolved. Queued frames that waited too long
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
        if self.outbox_len > 0 {
            let i = self.outbox_head;
            self.outbox_head = (self.outbox_head + 1) % OUTBOX_SLOTS;
            self.outbox_len -= 1;
            return Some(self.outbox[i].transmit());
        }
        // The outbox is empty: its head slot is free for a probe until the next call.
        while let Some((side, target)) = self.probes.pop_front() {
            let slot = &mut self.outbox[self.outbox_head];
            if let Some(len) = director.arp_probe(side, target, &mut slot.buf) {
                slot.side = side;
                slot.len = len;
                slot.meta = FrameMeta::default();
                return Some(self.outbox[self.outbox_head].transmit());
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
        Some(self.pending[i].slot.transmit())
    }

    /// Number of frames waiting for ARP.
    pub fn pending_len(&self) -> usize {
        self.pending.iter().filter(|p| p.in_use).count()
    }
}
