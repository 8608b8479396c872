//! [`BlockRing`]: a TPACKET_V3 receive ring, frames packed into blocks that the kernel
//! hands over whole, when full or when their retire timer fires.

use std::mem;
use std::os::fd::BorrowedFd;
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{
    check_ring, request_ring, Malformed, RingFrame, RingRequest, RingSetupError, TPACKET_V3,
    TP_STATUS_KERNEL, TP_STATUS_USER,
};
use crate::sys::mmap::Mapping;

// Offsets in `struct tpacket_block_desc` (version, offset_to_priv, then the
// `tpacket_hdr_v1` at 8) and in `struct tpacket3_hdr` followed by its `sockaddr_ll`
// (at TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) = 48).
const BLOCK_STATUS_AT: usize = 8;
const BLOCK_NUM_PKTS_AT: usize = 12;
const BLOCK_FIRST_PKT_AT: usize = 16;
/// The block header ends with the fields above.
const BLOCK_HDR_LEN: usize = 20;
const PKT_NEXT_OFFSET_AT: usize = 0;
const PKT_SNAPLEN_AT: usize = 12;
const PKT_LEN_AT: usize = 16;
const PKT_MAC_AT: usize = 24;
const PKT_SLL_PKTTYPE_AT: usize = 48 + 10;
/// The frame header plus its `sockaddr_ll`: a frame's MAC offset is never below this.
const PKT_HDR_LEN: usize = 48 + mem::size_of::<libc::sockaddr_ll>();

/// `struct tpacket_req3`.
#[repr(C)]
struct TpacketReq3 {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
    tp_retire_blk_tov: u32,
    tp_sizeof_priv: u32,
    tp_feature_req_word: u32,
}

impl RingRequest for TpacketReq3 {}

/// Size and count of the blocks of a TPACKET_V3 receive ring.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RingGeometry {
    /// Bytes per block: a multiple of the page size, big enough for the largest frame.
    pub block_size: u32,
    /// Blocks in the ring.
    pub block_nr: u32,
    /// Milliseconds after which the kernel hands over a block that is not full.
    pub retire_ms: u32,
}

/// Where the reader is in the block at the read position, once its header was read.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    /// Frames of the block not read yet.
    left: u32,
    /// Offset of the next frame's header from the start of the block.
    at: usize,
}

/// A TPACKET_V3 receive ring mapped into this process, read block after block through
/// [`BlockRing::owned_block`]. See the module documentation of `tpacket` for the
/// ownership protocol.
pub(crate) struct BlockRing {
    map: Mapping,
    block_size: usize,
    block_nr: usize,
    /// The block being read, or the next one to wait for.
    current: usize,
    /// How far `current` was read; `None` until its header is read.
    cursor: Option<Cursor>,
}

impl BlockRing {
    /// Makes the socket TPACKET_V3 and gives it a receive ring of `geometry`, mapped. The
    /// socket must have no ring yet (and `PACKET_VNET_HDR`, if wanted, already set: the
    /// kernel refuses it once a ring exists).
    pub(crate) fn create(
        fd: BorrowedFd<'_>,
        geometry: RingGeometry,
    ) -> Result<BlockRing, RingSetupError> {
        // The frame size only sets how many frame slots the kernel counts; V3 packs frames
        // of any length into a block. It must be TPACKET_ALIGNMENT-aligned and divide the
        // block.
        const FRAME_SIZE: u32 = 2048;
        let (block_size, block_nr) = (geometry.block_size as usize, geometry.block_nr as usize);
        let len = check_ring(block_size, BLOCK_HDR_LEN, block_nr)?;
        let req = TpacketReq3 {
            tp_block_size: geometry.block_size,
            tp_block_nr: geometry.block_nr,
            tp_frame_size: FRAME_SIZE,
            tp_frame_nr: geometry.block_size / FRAME_SIZE * geometry.block_nr,
            tp_retire_blk_tov: geometry.retire_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        request_ring(fd, TPACKET_V3, &req)?;
        let map = Mapping::socket(fd, len, 0, true).map_err(RingSetupError::Mmap)?;
        Ok(BlockRing {
            map,
            block_size,
            block_nr,
            current: 0,
            cursor: None,
        })
    }

    /// Start of the block at the read position.
    fn block_ptr(&self) -> *mut u8 {
        // SAFETY: current < block_nr (it starts at 0 and wraps at block_nr, which
        // `check_ring` made nonzero), so the offset stays inside the mapping.
        unsafe { self.map.base().add(self.current * self.block_size) }
    }

    fn status(&self) -> &AtomicU32 {
        // SAFETY: block_status is an aligned u32 (blocks are page-aligned, the field is at
        // offset 8) inside the mapping, which lives as long as `self`; the kernel also
        // accesses it only atomically (smp_load/store with barriers), so an AtomicU32
        // view of it is sound. This is the one shared word, never a view of frame data.
        unsafe { AtomicU32::from_ptr(self.block_ptr().add(BLOCK_STATUS_AT).cast()) }
    }

    /// The block at the read position if the kernel handed it over, else `None`. A guard
    /// dropped without [`Block::release`] keeps the block ours: the next call returns it
    /// again, resuming after the frames already read.
    pub(crate) fn owned_block(&mut self) -> Option<Block<'_>> {
        if self.status().load(Ordering::Acquire) & TP_STATUS_USER == 0 {
            return None;
        }
        let block = Block { ring: self };
        if block.ring.cursor.is_none() {
            block.ring.cursor = Some(Cursor {
                left: block.read_u32(BLOCK_NUM_PKTS_AT),
                at: block.read_u32(BLOCK_FIRST_PKT_AT) as usize,
            });
        }
        Some(block)
    }
}

/// A frame `frame_at` found inside the block, before it is handed out as a [`RingFrame`].
struct FrameAt {
    data: *const u8,
    snaplen: usize,
    wire_len: usize,
    pkttype: u8,
    /// From this frame's header to the next one's.
    next_offset: usize,
}

/// A block the kernel handed over: the only way to read its frames or give it back.
pub(crate) struct Block<'r> {
    ring: &'r mut BlockRing,
}

impl Block<'_> {
    /// The u32 at `at` in the block.
    fn read_u32(&self, at: usize) -> u32 {
        assert!(at
            .checked_add(4)
            .is_some_and(|end| end <= self.ring.block_size));
        // SAFETY: in bounds (checked above) of the block, which is ours while the guard
        // lives; the mapping is page-aligned but the kernel's offsets need not be, hence
        // unaligned.
        unsafe { ptr::read_unaligned(self.ring.block_ptr().add(at).cast::<u32>()) }
    }

    /// Whether every frame of the block was read (or skipped).
    pub(crate) fn is_done(&self) -> bool {
        self.ring.cursor.is_none_or(|cursor| cursor.left == 0)
    }

    /// The next frame not read yet, `None` when all were. `Err` when its header points
    /// outside the block: nothing after it can be trusted either, so it and the frames
    /// left are skipped.
    pub(crate) fn next_frame(&mut self) -> Option<Result<RingFrame<'_>, Malformed>> {
        let cursor = self.ring.cursor?;
        if cursor.left == 0 {
            return None;
        }
        let Some(found) = self.frame_at(cursor.at) else {
            self.ring.cursor = Some(Cursor { left: 0, ..cursor });
            return Some(Err(Malformed {
                skipped: cursor.left,
            }));
        };
        self.ring.cursor = Some(Cursor {
            left: cursor.left - 1,
            at: cursor.at.saturating_add(found.next_offset),
        });
        // SAFETY: `frame_at` checked that the frame and the virtio-net header before it
        // lie inside the block, which is ours while `self` (which the frame borrows) lives.
        Some(Ok(unsafe {
            RingFrame::new(found.data, found.snaplen, found.wire_len, found.pkttype)
        }))
    }

    /// The frame whose header is at `at`; `None` when the kernel's offsets point outside
    /// the block (never seen; refused rather than read past it).
    fn frame_at(&self, at: usize) -> Option<FrameAt> {
        let ring = &*self.ring;
        if at.checked_add(PKT_HDR_LEN)? > ring.block_size {
            return None;
        }
        let word = |off: usize| self.read_u32(at + off) as usize;
        let mac = word(PKT_MAC_AT) & 0xffff;
        let snaplen = word(PKT_SNAPLEN_AT);
        // mac >= PKT_HDR_LEN > VNET_HDR_LEN puts the virtio-net header inside too.
        if mac < PKT_HDR_LEN || at.checked_add(mac)?.checked_add(snaplen)? > ring.block_size {
            return None;
        }
        // SAFETY: at + PKT_HDR_LEN <= block_size (checked above), in a block we own.
        let pkttype = unsafe { ptr::read(ring.block_ptr().add(at + PKT_SLL_PKTTYPE_AT)) };
        Some(FrameAt {
            // SAFETY: at + mac <= block_size (checked above): inside the block.
            data: unsafe { ring.block_ptr().add(at + mac) },
            snaplen,
            wire_len: word(PKT_LEN_AT),
            pkttype,
            next_offset: word(PKT_NEXT_OFFSET_AT),
        })
    }

    /// Gives the block back to the kernel and moves the read position to the next block.
    pub(crate) fn release(self) {
        let ring = self.ring;
        ring.status().store(TP_STATUS_KERNEL, Ordering::Release);
        ring.current = (ring.current + 1) % ring.block_nr;
        ring.cursor = None;
    }
}
