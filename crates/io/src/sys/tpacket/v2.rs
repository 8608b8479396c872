//! [`SlotRing`]: a TPACKET_V2 receive ring, one frame per fixed-size slot, each handed over
//! as soon as the kernel wrote it (unlike a V3 block, which waits until full or retired).

use std::mem;
use std::os::fd::BorrowedFd;
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{
    check_ring, request_ring, Malformed, RingFrame, RingRequest, RingSetupError, TPACKET_V2,
    TP_STATUS_KERNEL, TP_STATUS_USER,
};
use crate::sys::mmap::Mapping;
use crate::sys::page_size;

/// The frame did not fit its slot; the slot holds its head and the whole frame waits on
/// the socket's receive queue (with `PACKET_COPY_THRESH` set).
const TP_STATUS_COPY: u32 = 2;

// Offsets in `struct tpacket2_hdr` (status, len, snaplen, mac, net, …: 32 bytes) and of
// the `sockaddr_ll` after it (at TPACKET_ALIGN(32) = 32).
const SLOT_LEN_AT: usize = 4;
const SLOT_SNAPLEN_AT: usize = 8;
const SLOT_MAC_AT: usize = 12;
const SLOT_SLL_PKTTYPE_AT: usize = 32 + 10;
/// The slot header plus its `sockaddr_ll`: a frame's MAC offset is never below this.
const SLOT_HDR_LEN: usize = 32 + mem::size_of::<libc::sockaddr_ll>();

/// `struct tpacket_req`.
#[repr(C)]
struct TpacketReq {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
}

impl RingRequest for TpacketReq {}

/// A TPACKET_V2 receive ring mapped into this process: slots of `slot_size` bytes, each
/// holding one frame and owned by the kernel or by us according to its own `tp_status`
/// word, read in order through [`SlotRing::owned_slot`]. See the module documentation of
/// `tpacket` for the ownership protocol.
pub(crate) struct SlotRing {
    map: Mapping,
    slot_size: usize,
    slots: usize,
    /// The next slot to read.
    next: usize,
}

impl SlotRing {
    /// Makes the socket TPACKET_V2 and gives it a receive ring of at least `slots` slots
    /// of `slot_size` bytes, mapped: the count is rounded up to whole kernel blocks (a
    /// page, or one slot when slots are larger), so that slot `i` starts at
    /// `i * slot_size`. `slot_size` must be a multiple of 16 that divides the page size
    /// or is a multiple of it. The socket must have no ring yet.
    pub(crate) fn create(
        fd: BorrowedFd<'_>,
        slot_size: u32,
        slots: u32,
    ) -> Result<SlotRing, RingSetupError> {
        check_ring(slot_size as usize, SLOT_HDR_LEN, slots as usize)?;
        let block_size = slot_size.max(u32::try_from(page_size()).unwrap_or(u32::MAX));
        if block_size % slot_size != 0 {
            // The kernel would accept it and leave a gap at the end of each block, where
            // the reader's `i * slot_size` would find no slot.
            return Err(RingSetupError::SetSockOpt {
                option: "PACKET_RX_RING",
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a slot size that neither divides the page size nor is a multiple of it",
                ),
            });
        }
        let per_block = block_size / slot_size;
        let slots = slots.div_ceil(per_block).saturating_mul(per_block);
        let len = check_ring(slot_size as usize, SLOT_HDR_LEN, slots as usize)?;
        let req = TpacketReq {
            tp_block_size: block_size,
            tp_block_nr: slots / per_block,
            tp_frame_size: slot_size,
            tp_frame_nr: slots,
        };
        request_ring(fd, TPACKET_V2, &req)?;
        // No MAP_POPULATE: the kernel's pages exist already; ours map in as frames touch
        // them, so a slot sized for a super-frame costs address space, not page tables,
        // while only MTU frames arrive.
        let map = Mapping::socket(fd, len, 0, false).map_err(RingSetupError::Mmap)?;
        Ok(SlotRing {
            map,
            slot_size: slot_size as usize,
            slots: slots as usize,
            next: 0,
        })
    }

    /// Slots in the ring (after rounding up to whole blocks).
    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    /// Start of the next slot.
    fn slot_ptr(&self) -> *mut u8 {
        // SAFETY: next < slots (it starts at 0 and wraps at slots, which `check_ring` made
        // nonzero), so the offset stays inside the mapping.
        unsafe { self.map.base().add(self.next * self.slot_size) }
    }

    fn status(&self) -> &AtomicU32 {
        // SAFETY: tp_status is the aligned u32 at the start of a slot (slot_size is a
        // multiple of 16 the kernel accepted) inside the mapping, which lives as long as
        // `self`; the kernel reads and writes it with barriers
        // (__packet_set_status/__packet_get_status), so an AtomicU32 view of this one word
        // is sound. Frame data is never viewed this way.
        unsafe { AtomicU32::from_ptr(self.slot_ptr().cast()) }
    }

    /// The next slot if the kernel handed it over, else `None`. A guard dropped without
    /// [`Slot::release`] keeps the slot ours, and the next call returns it again.
    pub(crate) fn owned_slot(&mut self) -> Option<Slot<'_>> {
        let status = self.status().load(Ordering::Acquire);
        if status & TP_STATUS_USER == 0 {
            return None;
        }
        Some(Slot { ring: self, status })
    }
}

/// A slot the kernel handed over: the only way to read its frame or give it back.
pub(crate) struct Slot<'r> {
    ring: &'r mut SlotRing,
    /// Its `tp_status` when it was handed over.
    status: u32,
}

impl Slot<'_> {
    /// The frame did not fit: the slot holds its head, and the whole frame is the next
    /// one on the socket's receive queue.
    pub(crate) fn on_queue(&self) -> bool {
        self.status & TP_STATUS_COPY != 0
    }

    fn read_u32(&self, at: usize) -> u32 {
        debug_assert!(at + 4 <= SLOT_HDR_LEN);
        // SAFETY: inside the header of a slot we own (at + 4 <= SLOT_HDR_LEN <= slot_size,
        // checked at ring creation); the kernel's header need not be aligned for us.
        unsafe { ptr::read_unaligned(self.ring.slot_ptr().add(at).cast::<u32>()) }
    }

    /// The frame in the slot; `Err` when its header points outside the slot (never seen;
    /// refused rather than read past it).
    pub(crate) fn frame(&self) -> Result<RingFrame<'_>, Malformed> {
        let mac = (self.read_u32(SLOT_MAC_AT) & 0xffff) as usize;
        let snaplen = self.read_u32(SLOT_SNAPLEN_AT) as usize;
        if mac < SLOT_HDR_LEN || mac.saturating_add(snaplen) > self.ring.slot_size {
            return Err(Malformed { skipped: 1 });
        }
        let slot = self.ring.slot_ptr();
        // SAFETY: inside the header of a slot we own (SLOT_HDR_LEN <= slot_size).
        let pkttype = unsafe { ptr::read(slot.add(SLOT_SLL_PKTTYPE_AT)) };
        // SAFETY: mac + snaplen <= slot_size and mac >= SLOT_HDR_LEN > VNET_HDR_LEN
        // (checked above), so the frame and the virtio-net header before it lie inside the
        // slot, which is ours while `self` (which the frame borrows) lives.
        Ok(unsafe {
            RingFrame::new(
                slot.add(mac),
                snaplen,
                self.read_u32(SLOT_LEN_AT) as usize,
                pkttype,
            )
        })
    }

    /// Gives the slot back to the kernel and moves to the next one.
    pub(crate) fn release(self) {
        let ring = self.ring;
        ring.status().store(TP_STATUS_KERNEL, Ordering::Release);
        ring.next = (ring.next + 1) % ring.slots;
    }
}
