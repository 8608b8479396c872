//! An `AF_XDP` socket and its UMEM: registering the UMEM, binding to a queue, kicking the
//! transmit ring, reading the kernel's counters. The four rings are in `xsk_ring`.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;
use std::sync::Arc;

use super::mmap::Mapping;

/// `struct xdp_desc`: one RX or TX descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct XdpDesc {
    /// Offset of the frame in the UMEM.
    pub addr: u64,
    /// Its length.
    pub len: u32,
}

/// Registers the whole UMEM that `region` is part of as the socket's packet memory, cut
/// into `chunk_size` frames.
pub(crate) fn umem_register(
    fd: BorrowedFd<'_>,
    region: &UmemRegion,
    chunk_size: u32,
) -> io::Result<()> {
    let umem = &region.map.0;
    let reg = libc::xdp_umem_reg {
        addr: umem.base() as u64,
        len: umem.len() as u64,
        chunk_size,
        headroom: 0,
        flags: 0,
        tx_metadata_len: 0,
    };
    // SAFETY: `reg` is a live xdp_umem_reg of the size passed. The area it names is our
    // own mapping, which `region` keeps alive; the kernel pins its pages, so they stay
    // valid for the socket even after the process unmaps them.
    syscall!(setsockopt(
        fd.as_raw_fd(),
        libc::SOL_XDP,
        libc::XDP_UMEM_REG,
        ptr::from_ref(&reg).cast(),
        mem::size_of::<libc::xdp_umem_reg>() as libc::socklen_t,
    ))?;
    Ok(())
}

/// Where the kernel placed the producer, consumer, flags and descriptors of each ring.
pub(crate) fn mmap_offsets(fd: BorrowedFd<'_>) -> io::Result<libc::xdp_mmap_offsets> {
    // SAFETY: xdp_mmap_offsets is plain old data (u64s); all-zero is a valid value.
    let mut off: libc::xdp_mmap_offsets = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
    // SAFETY: `off` and `len` are live and `len` is the size of `off`; the kernel writes
    // at most `len` bytes.
    syscall!(getsockopt(
        fd.as_raw_fd(),
        libc::SOL_XDP,
        libc::XDP_MMAP_OFFSETS,
        ptr::from_mut(&mut off).cast(),
        &mut len,
    ))?;
    if len as usize != mem::size_of::<libc::xdp_mmap_offsets>() {
        // A pre-5.4 kernel without the flags word (and so without need_wakeup).
        return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
    }
    Ok(off)
}

/// Binds the socket to one queue of an interface; with `shared_umem`, to the UMEM of that
/// socket (already bound to the same queue), and `flags` must then be `XDP_SHARED_UMEM`.
pub(crate) fn bind_xdp(
    fd: BorrowedFd<'_>,
    ifindex: u32,
    queue: u32,
    flags: u16,
    shared_umem: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let addr = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: flags,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: shared_umem.map_or(0, |owner| owner.as_raw_fd() as u32),
    };
    // SAFETY: `addr` is a live sockaddr_xdp and the length passed is its size.
    syscall!(bind(
        fd.as_raw_fd(),
        ptr::from_ref(&addr).cast(),
        mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
    ))?;
    Ok(())
}

/// Asks the kernel to transmit what the TX ring holds (`sendto` with no data). In copy
/// mode the frames go out inside this call, at most 32 per call: `EAGAIN` then means
/// "call again", as does `EBUSY`.
pub(crate) fn kick_tx(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: no buffer and no address: the kernel reads nothing from us.
    syscall!(sendto(
        fd.as_raw_fd(),
        ptr::null(),
        0,
        libc::MSG_DONTWAIT,
        ptr::null(),
        0
    ))?;
    Ok(())
}

/// The socket's drop counters (`XDP_STATISTICS`).
pub(crate) fn xdp_statistics(fd: BorrowedFd<'_>) -> io::Result<libc::xdp_statistics> {
    // SAFETY: xdp_statistics is plain old data (u64s); all-zero is a valid value.
    let mut stats: libc::xdp_statistics = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
    // SAFETY: `stats` and `len` are live and `len` is the size of `stats`.
    syscall!(getsockopt(
        fd.as_raw_fd(),
        libc::SOL_XDP,
        libc::XDP_STATISTICS,
        ptr::from_mut(&mut stats).cast(),
        &mut len,
    ))?;
    Ok(stats)
}

/// The UMEM: an anonymous, page-aligned mapping the kernel copies frames into and out of.
/// Freed when the last [`UmemRegion`] (and the socket, which pins it) is gone.
pub(crate) struct UmemMap(Mapping);

// SAFETY: the UmemMap is shared (through an Arc) by exactly the two UmemRegions that
// `halves` makes, which cover disjoint ranges and touch only their own, through raw
// pointers and `&mut self`; `&UmemMap` itself reads nothing. So the two regions may live
// on different threads (the receiving and a sending one) without any byte being accessed
// from both.
unsafe impl Sync for UmemMap {}

impl UmemMap {
    /// Maps `len` bytes (a multiple of the page size) of zeroed memory and returns it as
    /// two disjoint regions, `[0, at)` and `[at, len)`: the only regions ever made of it,
    /// so no two owners share a byte.
    pub(crate) fn halves(len: usize, at: usize) -> io::Result<(UmemRegion, UmemRegion)> {
        let map = Arc::new(UmemMap(Mapping::anonymous(len)?));
        let at = at.min(len);
        Ok((
            UmemRegion {
                map: Arc::clone(&map),
                start: 0,
                end: at,
            },
            UmemRegion {
                map,
                start: at,
                end: len,
            },
        ))
    }
}

/// A range of the UMEM owned by one side (receive or transmit). Frames are copied in and
/// out through `&mut self`, so within the process only the owner touches its range; the
/// kernel touches a frame only while it owns it through the rings.
pub(crate) struct UmemRegion {
    map: Arc<UmemMap>,
    start: usize,
    end: usize,
}

impl UmemRegion {
    /// Whether `[addr, addr + len)` lies inside this region.
    pub(crate) fn contains(&self, addr: u64, len: usize) -> bool {
        usize::try_from(addr).is_ok_and(|addr| {
            addr >= self.start && addr.checked_add(len).is_some_and(|end| end <= self.end)
        })
    }

    /// Copies `[addr, addr + dst.len())` into `dst`; `false` (nothing copied) when the
    /// range is outside this region.
    pub(crate) fn copy_out(&mut self, addr: u64, dst: &mut [u8]) -> bool {
        if !self.contains(addr, dst.len()) {
            return false;
        }
        // SAFETY: the range is inside this region of the live mapping (checked above);
        // `dst` is an exclusive borrow of its length and cannot overlap the mapping's
        // memory, which no Rust reference points into.
        unsafe {
            let src = self.map.0.base().add(addr as usize);
            ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len());
        }
        true
    }

    /// Copies `src` to `[addr, addr + src.len())`; `false` (nothing copied) when the range
    /// is outside this region.
    pub(crate) fn copy_in(&mut self, addr: u64, src: &[u8]) -> bool {
        if !self.contains(addr, src.len()) {
            return false;
        }
        // SAFETY: as in `copy_out`, with the roles swapped.
        unsafe {
            let dst = self.map.0.base().add(addr as usize);
            ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len());
        }
        true
    }
}
