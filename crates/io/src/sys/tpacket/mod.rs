//! The memory-mapped receive rings of an `AF_PACKET` socket, in the two formats masq uses:
//! [`BlockRing`] (TPACKET_V3, frames packed into blocks) and [`SlotRing`] (TPACKET_V2, one
//! frame per slot).
//!
//! Ownership of each block or slot passes between the kernel and us through its status
//! word, read with Acquire (the kernel publishes after `smp_wmb`) and written with Release
//! (we give it back after our last read). The types make that protocol the only way in:
//! a block or slot is read through a guard (`v3::Block`, `v2::Slot`) that exists only
//! while the status word says it is ours, one guard at a time per ring (it borrows the
//! ring mutably), and releasing consumes the guard, so nothing of a block can be read once
//! it is the kernel's again. The frames a guard hands out ([`RingFrame`]) borrow it in
//! turn.
//!
//! Each ring is created whole, `setsockopt(PACKET_VERSION)`, `setsockopt(PACKET_RX_RING)`
//! and `mmap` in one call, so the geometry the reader uses is the one the kernel was given.

mod v2;
mod v3;

use std::ffi::c_int;
use std::io;
use std::marker::PhantomData;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;

pub(crate) use v2::SlotRing;
pub(crate) use v3::{BlockRing, RingGeometry};

use crate::offload::VNET_HDR_LEN;

// From include/uapi/linux/if_packet.h.
const PACKET_RX_RING: c_int = 5;
const PACKET_VERSION: c_int = 10;
const TPACKET_V2: c_int = 1;
const TPACKET_V3: c_int = 2;
/// A block's or slot's status word: the kernel owns it.
const TP_STATUS_KERNEL: u32 = 0;
/// A block's or slot's status bit: the kernel handed it over to us.
const TP_STATUS_USER: u32 = 1;

/// Which step of setting a ring up failed.
#[derive(Debug)]
pub(crate) enum RingSetupError {
    /// A socket option was refused, e.g. `PACKET_RX_RING` for a block size that is not a
    /// multiple of the page size.
    SetSockOpt {
        /// `PACKET_VERSION` or `PACKET_RX_RING`.
        option: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Mapping the ring failed (`ENOMEM`).
    Mmap(io::Error),
}

/// Frames whose ring descriptor pointed outside their block or slot (never seen; they
/// are skipped rather than read past the ring).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Malformed {
    /// How many frames were skipped because of it.
    pub skipped: u32,
}

/// One frame in a block or slot that a guard holds, as the kernel described it.
#[derive(Debug)]
pub(crate) struct RingFrame<'g> {
    /// The Ethernet header; the virtio-net header is the `VNET_HDR_LEN` bytes before it.
    data: *const u8,
    /// Bytes of the frame kept in the ring.
    pub snaplen: usize,
    /// The frame's length on the wire.
    pub wire_len: usize,
    /// `sll_pkttype`: PACKET_HOST, PACKET_OUTGOING, ...
    pub pkttype: u8,
    /// The guard that owns the memory behind `data`.
    _guard: PhantomData<&'g ()>,
}

impl RingFrame<'_> {
    /// # Safety
    ///
    /// `[data - VNET_HDR_LEN, data + snaplen)` lies inside a block or slot that is ours
    /// (its status word said so) and stays ours and mapped for `'g`.
    unsafe fn new(data: *const u8, snaplen: usize, wire_len: usize, pkttype: u8) -> Self {
        RingFrame {
            data,
            snaplen,
            wire_len,
            pkttype,
            _guard: PhantomData,
        }
    }

    /// Copies the virtio-net header in front of the frame (with `PACKET_VNET_HDR` the
    /// kernel writes it just before the Ethernet header) and as much of the frame as fits
    /// into `buf`; returns the bytes copied into `buf`.
    pub(crate) fn copy_out(&self, vnet_hdr: &mut [u8; VNET_HDR_LEN], buf: &mut [u8]) -> usize {
        let len = self.snaplen.min(buf.len());
        // SAFETY: both source ranges lie inside memory that is ours for the frame's
        // lifetime (the constructor's contract); the destinations are exclusive borrows at
        // least as long as the counts; ring memory and Rust buffers never overlap.
        unsafe {
            ptr::copy_nonoverlapping(
                self.data.sub(VNET_HDR_LEN),
                vnet_hdr.as_mut_ptr(),
                VNET_HDR_LEN,
            );
            ptr::copy_nonoverlapping(self.data, buf.as_mut_ptr(), len);
        }
        len
    }
}

/// Marks the ring requests, `struct tpacket_req` and `struct tpacket_req3`: plain C-layout
/// integers, which is all `setsockopt(PACKET_RX_RING)` reads.
trait RingRequest {}

/// `setsockopt(PACKET_VERSION)` then `setsockopt(PACKET_RX_RING)` with `req`, the request
/// of that version.
fn request_ring<R: RingRequest>(
    fd: BorrowedFd<'_>,
    version: c_int,
    req: &R,
) -> Result<(), RingSetupError> {
    super::setsockopt_int(fd, libc::SOL_PACKET, PACKET_VERSION, version).map_err(|source| {
        RingSetupError::SetSockOpt {
            option: "PACKET_VERSION",
            source,
        }
    })?;
    // SAFETY: `req` is a live, C-layout ring request and the length passed is its size.
    syscall!(setsockopt(
        fd.as_raw_fd(),
        libc::SOL_PACKET,
        PACKET_RX_RING,
        ptr::from_ref(req).cast(),
        mem::size_of::<R>() as libc::socklen_t,
    ))
    .map_err(|source| RingSetupError::SetSockOpt {
        option: "PACKET_RX_RING",
        source,
    })?;
    Ok(())
}

/// The length of a ring of `count` blocks or slots of `size` bytes each, after checking
/// that there is at least one and that each holds its `header` (the reader's bounds rest
/// on both); the kernel checks the rest of the geometry.
fn check_ring(size: usize, header: usize, count: usize) -> Result<usize, RingSetupError> {
    let invalid = |reason| RingSetupError::SetSockOpt {
        option: "PACKET_RX_RING",
        source: io::Error::new(io::ErrorKind::InvalidInput, reason),
    };
    if count == 0 {
        return Err(invalid("a ring needs at least one block"));
    }
    if size < header {
        return Err(invalid("a block or slot smaller than its header"));
    }
    size.checked_mul(count)
        .ok_or_else(|| invalid("a ring larger than the address space"))
}
