//! [`RingSocket`]: an `AF_PACKET` socket on one interface that receives through a
//! memory-mapped ring, optionally as one member of a `PACKET_FANOUT` group, and sends with
//! `sendmmsg`. Two ring formats ([`RingFormat`]):
//!
//! - TPACKET_V2, one frame per fixed-size slot: each frame is ours as soon as the kernel
//!   wrote it, and `poll` wakes for it, so a lone request waits for nothing; slots are
//!   MTU-sized and a bigger frame (GSO super-frame) comes whole through the socket's queue
//!   (`PACKET_COPY_THRESH`), flagged in its slot, so order is kept;
//! - TPACKET_V3, frames packed into blocks: dense (thousands of small frames per block)
//!   but the kernel hands a block over only when it is full or its retire timer fires, so
//!   under light load every frame waits up to that timer (at least 1 ms) — measured as
//!   twice the keep-alive latency of the plain socket back end (docs/benchmarks.md).
//!
//! Invariants:
//! - like [`crate::PacketSocket`], every frame carries a virtio-net header
//!   (`PACKET_VNET_HDR`, which the kernel writes into the ring just before the Ethernet
//!   header), so GSO super-frames and partial checksums travel whole: a block holds the
//!   largest super-frame (64 KiB);
//! - frames this host transmits are never returned: `PACKET_IGNORE_OUTGOING`, plus
//!   `PACKET_FANOUT_FLAG_IGNORE_OUTGOING` in a fanout group (where the first stops
//!   applying), plus a check of `sll_pkttype` on every frame;
//! - the ring memory is only touched by the `sys` module, through raw pointers, and each
//!   frame is copied out of its block into the caller's buffer (so the core can rewrite it
//!   as a plain `&mut [u8]`); a block goes back to the kernel as soon as its last frame is
//!   copied;
//! - receiving and sending allocate nothing and make no syscall while the ring holds
//!   frames; a `poll` only when it is empty, one `sendmmsg` per batch.

use std::iter;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use socket2::Socket;

use crate::af_packet::{open_bound, PacketSetup};
use crate::error::IoError;
use crate::iface::Interface;
use crate::offload::{Offload, VNET_HDR_LEN};
use crate::socket::{recv_one, PacketType, Received, RecvBatch, SendBatch};
use crate::sys::packet::{self, recv_frame, PACKET_OUTGOING};
use crate::sys::tpacket::{BlockRing, RingFrame, RingGeometry, RingSetupError, SlotRing};
use crate::wait::wait_readable;
use crate::FrameIo;

/// How the kernel lays frames out in the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingFormat {
    /// TPACKET_V2: one frame per block-sized slot, handed over frame by frame.
    V2,
    /// TPACKET_V3: frames packed into blocks, handed over block by block.
    V3,
}

/// The V2 slot size for MTU frames: a 1514-byte frame plus the slot header,
/// `sockaddr_ll`, virtio-net header and alignment (about 90 bytes) fits in 2 KiB. A frame
/// that does not fit (a GSO super-frame, a jumbo frame) is not lost: the kernel leaves its
/// head in the slot, marked, and queues the whole frame on the socket
/// (`PACKET_COPY_THRESH`), where the reader takes it with one `recvmsg`.
pub const V2_SLOT: u32 = 2048;

/// Receive buffer for the frames too big for a V2 slot: room for dozens of 64 KiB
/// super-frames (the kernel counts each at its truesize).
const V2_OVERFLOW_BUFFER: usize = 8 << 20;

/// Options for [`RingSocket::open`].
#[derive(Clone, Debug)]
pub struct RingOptions {
    /// TPACKET_V2 slots or TPACKET_V3 blocks.
    pub format: RingFormat,
    /// Bytes per block (V3) or per slot (V2). V3: a multiple of the page size, at least
    /// 128 KiB so that a 64 KiB GSO super-frame with its headers fits. V2: a multiple of
    /// 16 that divides the page size or is a multiple of it, e.g. [`V2_SLOT`]; larger
    /// frames take the socket's queue.
    pub block_size: u32,
    /// Blocks (V3) or slots (V2) in the ring.
    pub block_count: u32,
    /// V3 only: milliseconds after which the kernel hands over a block that is not full:
    /// the longest a lone frame waits in the ring (at least 1).
    pub retire_ms: u32,
    /// Join the `PACKET_FANOUT` group with this id (per network namespace; every socket
    /// of the group must be on the same interface): flows are spread by hash over the
    /// members, both directions of a flow to the same member.
    pub fanout_group: Option<u16>,
    /// Send straight to the driver, skipping the queueing discipline
    /// (`PACKET_QDISC_BYPASS`); see [`crate::SocketOptions::qdisc_bypass`].
    pub qdisc_bypass: bool,
    /// How long a receiver keeps checking an empty ring (no syscall: one atomic load per
    /// check) before it sleeps in `poll`. Zero: sleep at once. A spin trades CPU for the
    /// wake-up (a context switch, a few microseconds) when the next frame comes soon —
    /// e.g. the answer to a request just forwarded.
    pub busy_poll: Duration,
}

impl Default for RingOptions {
    /// TPACKET_V3, 64 blocks of 256 KiB (16 MiB: 64 super-frames, or thousands of MTU
    /// frames, can wait), blocks retired after 1 ms, no fanout.
    fn default() -> RingOptions {
        RingOptions {
            format: RingFormat::V3,
            block_size: 256 << 10,
            block_count: 64,
            retire_ms: 1,
            fanout_group: None,
            qdisc_bypass: false,
            busy_poll: Duration::ZERO,
        }
    }
}

/// Counters of frames the ring socket dropped on its own (summed since it was opened).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Frames this host sent that reached the ring anyway and were skipped.
    pub outgoing_skipped: u64,
    /// Frames whose ring descriptor pointed outside its block, skipped with the rest of
    /// the block.
    pub malformed: u64,
}

/// The mapped ring; each knows where its reader is.
enum Rx {
    Blocks(BlockRing),
    Slots(SlotRing),
}

/// An `AF_PACKET` socket with a TPACKET_V2 or V3 receive ring. See the module
/// documentation.
///
/// `Send + Sync`: one thread at a time receives (others wait for it), any number may send.
pub struct RingSocket {
    socket: Socket,
    /// One receiver at a time; masqd has one per socket, so the lock is never contended.
    rx: Mutex<Rx>,
    /// Blocks or slots, for `Debug`.
    depth: usize,
    iface: String,
    outgoing_skipped: AtomicU64,
    malformed: AtomicU64,
    busy_poll: Duration,
}

impl std::fmt::Debug for RingSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingSocket")
            .field("iface", &self.iface)
            .field("depth", &self.depth)
            .finish_non_exhaustive()
    }
}

impl RingSocket {
    /// Opens a ring socket on `iface` that receives every protocol (`ETH_P_ALL`).
    ///
    /// # Errors
    ///
    /// [`IoError::Socket`] without `CAP_NET_RAW`; [`IoError::SetSockOpt`] when an option
    /// is refused (`PACKET_VNET_HDR`, `PACKET_VERSION`, `PACKET_RX_RING` — e.g. a block
    /// size that is not a multiple of the page size —, `PACKET_IGNORE_OUTGOING`,
    /// `PACKET_QDISC_BYPASS`, `PACKET_FANOUT` — e.g. a group id used with other
    /// settings); [`IoError::Mmap`] when the ring cannot be mapped; [`IoError::Bind`]
    /// when the interface is gone.
    pub fn open(iface: &Interface, options: &RingOptions) -> Result<RingSocket, IoError> {
        let depth = options.block_count.max(1);
        let setup = PacketSetup {
            ignore_outgoing: true,
            qdisc_bypass: options.qdisc_bypass,
            recv_buffer: None,
            fanout_group: options.fanout_group,
        };
        let ring_error = |err| match err {
            RingSetupError::SetSockOpt { option, source } => IoError::SetSockOpt {
                option,
                iface: iface.name.clone(),
                source,
            },
            RingSetupError::Mmap(source) => IoError::Mmap {
                iface: iface.name.clone(),
                source,
            },
        };
        let (socket, rx) = open_bound(iface, &setup, |unbound| match options.format {
            RingFormat::V2 => {
                // Frames bigger than a slot go whole to the socket's queue.
                unbound.set("PACKET_COPY_THRESH", packet::PACKET_COPY_THRESH, 1)?;
                unbound.set_recv_buffer(V2_OVERFLOW_BUFFER)?;
                let ring = SlotRing::create(unbound.fd(), options.block_size, depth)
                    .map_err(ring_error)?;
                Ok(Rx::Slots(ring))
            }
            RingFormat::V3 => {
                let geometry = RingGeometry {
                    block_size: options.block_size,
                    block_nr: depth,
                    retire_ms: options.retire_ms.max(1),
                };
                let ring = BlockRing::create(unbound.fd(), geometry).map_err(ring_error)?;
                Ok(Rx::Blocks(ring))
            }
        })?;
        let depth = match &rx {
            Rx::Slots(ring) => ring.slots(),
            Rx::Blocks(_) => depth as usize,
        };
        Ok(RingSocket {
            socket,
            rx: Mutex::new(rx),
            depth,
            iface: iface.name.clone(),
            outgoing_skipped: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            busy_poll: options.busy_poll,
        })
    }

    /// The name of the interface the socket is bound to.
    pub fn interface(&self) -> &str {
        &self.iface
    }

    /// The frames this socket dropped on its own.
    pub fn stats(&self) -> RingStats {
        RingStats {
            outgoing_skipped: self.outgoing_skipped.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
        }
    }

    /// Copies frames the kernel handed over into `bufs[count..]`, from where the reader
    /// is, until the buffers are full or the next frame is still the kernel's. Returns the
    /// new count.
    fn drain<B: AsMut<[u8]>>(
        &self,
        rx: &mut Rx,
        batch: &mut RecvBatch,
        bufs: &mut [B],
        limit: usize,
    ) -> usize {
        match rx {
            Rx::Blocks(ring) => self.drain_blocks(ring, batch, bufs, limit),
            Rx::Slots(ring) => self.drain_slots(ring, batch, bufs, limit),
        }
    }

    /// [`Self::drain`] over a V2 ring: each slot goes back to the kernel as soon as its
    /// frame is copied.
    fn drain_slots<B: AsMut<[u8]>>(
        &self,
        ring: &mut SlotRing,
        batch: &mut RecvBatch,
        bufs: &mut [B],
        limit: usize,
    ) -> usize {
        let mut count = batch.received().len();
        while count < limit {
            let Some(slot) = ring.owned_slot() else {
                break;
            };
            match slot.frame() {
                Err(malformed) => {
                    self.malformed
                        .fetch_add(u64::from(malformed.skipped), Ordering::Relaxed);
                }
                Ok(_) if slot.on_queue() => {
                    // The whole frame is the next one on the socket's queue (the kernel
                    // queued it as it filled this slot, in slot order).
                    let buf = bufs[count].as_mut();
                    match recv_frame(self.socket.as_fd(), buf) {
                        Ok(raw) if raw.pkttype == PACKET_OUTGOING => {
                            self.outgoing_skipped.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(raw) => {
                            batch.push(Received {
                                len: raw.wire_len.min(buf.len()),
                                truncated: raw.truncated,
                                offload: Offload::decode(&raw.vnet_hdr),
                                pkttype: PacketType::from_raw(raw.pkttype),
                            });
                            count += 1;
                        }
                        Err(_) => {
                            self.malformed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Ok(frame) => {
                    if self.accept(&frame, batch, bufs[count].as_mut()) {
                        count += 1;
                    }
                }
            }
            slot.release();
        }
        count
    }

    /// [`Self::drain`] over a V3 ring: a block goes back to the kernel as soon as its
    /// last frame is copied.
    fn drain_blocks<B: AsMut<[u8]>>(
        &self,
        ring: &mut BlockRing,
        batch: &mut RecvBatch,
        bufs: &mut [B],
        limit: usize,
    ) -> usize {
        let mut count = batch.received().len();
        while count < limit {
            let Some(mut block) = ring.owned_block() else {
                break;
            };
            while count < limit {
                match block.next_frame() {
                    None => break,
                    Some(Err(malformed)) => {
                        self.malformed
                            .fetch_add(u64::from(malformed.skipped), Ordering::Relaxed);
                    }
                    Some(Ok(frame)) => {
                        if self.accept(&frame, batch, bufs[count].as_mut()) {
                            count += 1;
                        }
                    }
                }
            }
            if block.is_done() {
                block.release();
            }
        }
        count
    }

    /// Copies `frame` into `buf` and describes it in `batch`, unless this host sent it
    /// (counted and skipped). Returns whether it was taken.
    fn accept(&self, frame: &RingFrame<'_>, batch: &mut RecvBatch, buf: &mut [u8]) -> bool {
        if frame.pkttype == PACKET_OUTGOING {
            self.outgoing_skipped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let mut vnet_hdr = [0u8; VNET_HDR_LEN];
        let len = frame.copy_out(&mut vnet_hdr, buf);
        batch.push(Received {
            len,
            truncated: len < frame.wire_len,
            offload: Offload::decode(&vnet_hdr),
            pkttype: PacketType::from_raw(frame.pkttype),
        });
        true
    }
}

impl FrameIo for RingSocket {
    /// One frame through [`FrameIo::recv_batch`]. Allocates a one-slot batch per call:
    /// for tests and slow paths; the packet threads use `recv_batch`.
    fn recv(&self, buf: &mut [u8], timeout: Duration) -> Result<Option<Received>, IoError> {
        recv_one(self, buf, timeout)
    }

    fn send(&self, offload: &Offload, frame: &[u8]) -> Result<(), IoError> {
        crate::socket::send_frame(self.socket.as_fd(), &self.iface, offload, frame)
    }

    /// Copies every frame already in handed-over blocks (up to the capacity), after a
    /// `poll` only when there is none. Frames this host sent are skipped.
    fn recv_batch<B: AsMut<[u8]>>(
        &self,
        batch: &mut RecvBatch,
        bufs: &mut [B],
        timeout: Duration,
    ) -> Result<usize, IoError> {
        let limit = batch.start(bufs.len());
        if limit == 0 {
            return Ok(0);
        }
        let mut rx = self.rx.lock().unwrap_or_else(|e| e.into_inner());
        let count = self.drain(&mut rx, batch, bufs, limit);
        if count > 0 {
            return Ok(count);
        }
        let start = Instant::now();
        let deadline = start.checked_add(timeout);
        if !self.busy_poll.is_zero() {
            let spin_until = start + self.busy_poll.min(timeout);
            while Instant::now() < spin_until {
                std::hint::spin_loop();
                let count = self.drain(&mut rx, batch, bufs, limit);
                if count > 0 {
                    return Ok(count);
                }
            }
        }
        loop {
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Ok(0);
            }
            wait_readable(iter::once(self.socket.as_fd()), &self.iface, deadline)?;
            let count = self.drain(&mut rx, batch, bufs, limit);
            if count > 0 {
                return Ok(count);
            }
        }
    }

    /// `sendmmsg`, `batch.capacity()` frames per call.
    fn send_batch<'a, I>(&self, batch: &mut SendBatch, frames: I) -> Result<usize, IoError>
    where
        I: IntoIterator<Item = (Offload, &'a [u8])>,
    {
        batch.send_all(self.socket.as_fd(), &self.iface, frames)
    }
}

impl AsFd for RingSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_socket_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RingSocket>();
    }

    #[test]
    fn default_blocks_hold_a_gso_super_frame() {
        let options = RingOptions::default();
        assert!(options.block_size >= 128 << 10);
        assert_eq!(options.block_size % 4096, 0);
    }

    #[test]
    fn v2_slot_holds_an_mtu_frame() {
        // 1514 bytes of frame after at most 128 of headers; whole slots per page.
        assert!(V2_SLOT as usize >= 1514 + 128);
        assert_eq!(4096 % V2_SLOT, 0);
    }
}
