//! The four single-producer single-consumer rings of an `AF_XDP` socket (fill,
//! completion, RX, TX), mapped from the socket and shared with the kernel.

use std::ffi::c_int;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

use super::mmap::Mapping;
use super::xsk::XdpDesc;

/// The most entries a ring may have: the kernel takes the count as a positive `int` and
/// wants a power of two (`xsk_init_queue`), so 2^30.
const MAX_ENTRIES: u32 = 1 << 30;

/// Which of the four rings, with the mmap offset that selects it and its entry size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RingKind {
    /// Frames the kernel may fill (u64 addresses, we produce).
    Fill,
    /// Frames the kernel finished sending (u64 addresses, we consume).
    Completion,
    /// Received frames (`xdp_desc`, we consume).
    Rx,
    /// Frames to send (`xdp_desc`, we produce).
    Tx,
}

impl RingKind {
    fn sockopt(self) -> c_int {
        match self {
            RingKind::Fill => libc::XDP_UMEM_FILL_RING,
            RingKind::Completion => libc::XDP_UMEM_COMPLETION_RING,
            RingKind::Rx => libc::XDP_RX_RING,
            RingKind::Tx => libc::XDP_TX_RING,
        }
    }

    fn pgoff(self) -> libc::off_t {
        match self {
            RingKind::Fill => libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t,
            RingKind::Completion => libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t,
            RingKind::Rx => libc::XDP_PGOFF_RX_RING,
            RingKind::Tx => libc::XDP_PGOFF_TX_RING,
        }
    }

    fn entry_size(self) -> usize {
        match self {
            RingKind::Fill | RingKind::Completion => mem::size_of::<u64>(),
            RingKind::Rx | RingKind::Tx => mem::size_of::<libc::xdp_desc>(),
        }
    }

    fn offsets(self, off: &libc::xdp_mmap_offsets) -> &libc::xdp_ring_offset {
        match self {
            RingKind::Fill => &off.fr,
            RingKind::Completion => &off.cr,
            RingKind::Rx => &off.rx,
            RingKind::Tx => &off.tx,
        }
    }
}

/// `InvalidInput` unless `entries` is a ring size the kernel accepts: a power of two (so
/// not 0) up to [`MAX_ENTRIES`].
fn check_entries(entries: u32) -> io::Result<()> {
    if entries.is_power_of_two() && entries <= MAX_ENTRIES {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an XDP ring needs a power of two of entries, up to 2^30",
        ))
    }
}

/// Creates ring `kind` of `entries` (a power of two up to 2^30) on the socket.
pub(crate) fn set_ring_size(fd: BorrowedFd<'_>, kind: RingKind, entries: u32) -> io::Result<()> {
    check_entries(entries)?;
    let value = entries as c_int;
    // SAFETY: `value` is a live c_int and the length passed is its size.
    syscall!(setsockopt(
        fd.as_raw_fd(),
        libc::SOL_XDP,
        kind.sockopt(),
        ptr::from_ref(&value).cast(),
        mem::size_of::<c_int>() as libc::socklen_t,
    ))?;
    Ok(())
}

/// One single-producer single-consumer ring shared with the kernel. We are the producer
/// of the fill and TX rings and the consumer of the completion and RX rings.
///
/// The indices are free-running u32 counters; entry `i` is at `i & mask`. We publish
/// with a Release store of our index after writing (or reading) entries, and read the
/// kernel's index with Acquire before reading (or overwriting) entries, as the kernel's
/// `xsk_queue.h` pairs them. Entries are touched only through raw pointers.
pub(crate) struct Ring {
    kind: RingKind,
    map: Mapping,
    producer: usize,
    consumer: usize,
    descs: usize,
    mask: u32,
    /// Our own index (producer for Fill/Tx, consumer for Rx/Completion), as published.
    local: u32,
    /// The kernel's index as last read.
    remote: u32,
}

impl Ring {
    /// Maps ring `kind`, created with [`set_ring_size`] with `entries`. Checks `entries`
    /// itself (a power of two up to 2^30, as the kernel accepts) and the kernel's layout
    /// (`off`), since every later access is computed from them: with a power of two,
    /// `index & mask` is always an entry of the mapping. The kernel refuses a mapping
    /// longer than the ring it created.
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        kind: RingKind,
        off: &libc::xdp_mmap_offsets,
        entries: u32,
    ) -> io::Result<Ring> {
        check_entries(entries)?;
        let ring_off = kind.offsets(off);
        let field = |value: u64| usize::try_from(value).map_err(io::Error::other);
        // The flags word is only read with XDP_USE_NEED_WAKEUP, which the port does not
        // use; it is still checked to lie inside the header like the indices.
        let (producer, consumer, flags, descs) = (
            field(ring_off.producer)?,
            field(ring_off.consumer)?,
            field(ring_off.flags)?,
            field(ring_off.desc)?,
        );
        let layout = || io::Error::other("unexpected XDP ring layout");
        // Entries are read and written as whole u64s and xdp_descs: 8-byte aligned.
        if descs % mem::align_of::<libc::xdp_desc>() != 0
            || [producer, consumer, flags]
                .iter()
                .any(|&at| at % 4 != 0 || at.checked_add(4).is_none_or(|end| end > descs))
        {
            return Err(layout());
        }
        let map_len = (entries as usize)
            .checked_mul(kind.entry_size())
            .and_then(|len| len.checked_add(descs))
            .ok_or_else(layout)?;
        let mut ring = Ring {
            kind,
            map: Mapping::socket(fd, map_len, kind.pgoff(), true)?,
            producer,
            consumer,
            descs,
            mask: entries - 1,
            local: 0,
            remote: 0,
        };
        let (ours, theirs) = ring.indices();
        let (local, remote) = (ours.load(Ordering::Relaxed), theirs.load(Ordering::Acquire));
        ring.local = local;
        ring.remote = remote;
        Ok(ring)
    }

    fn word(&self, at: usize) -> &AtomicU32 {
        // SAFETY: `at` is one of the producer/consumer/flags offsets, checked at `map` to
        // be 4-aligned and inside the mapping (which is page-aligned and lives as long as
        // `self`). The kernel accesses these words only atomically (smp_load_acquire /
        // smp_store_release / READ_ONCE), so an AtomicU32 view is sound.
        unsafe { AtomicU32::from_ptr(self.map.base().add(at).cast()) }
    }

    /// (our index, the kernel's index).
    fn indices(&self) -> (&AtomicU32, &AtomicU32) {
        match self.kind {
            RingKind::Fill | RingKind::Tx => (self.word(self.producer), self.word(self.consumer)),
            RingKind::Rx | RingKind::Completion => {
                (self.word(self.consumer), self.word(self.producer))
            }
        }
    }

    /// Number of entries.
    pub(crate) fn entries(&self) -> u32 {
        self.mask + 1
    }

    /// Producer side: free slots (re-reading the kernel's index).
    pub(crate) fn free(&mut self) -> u32 {
        debug_assert!(matches!(self.kind, RingKind::Fill | RingKind::Tx));
        self.remote = self.indices().1.load(Ordering::Acquire);
        self.entries() - self.local.wrapping_sub(self.remote)
    }

    /// Producer side: entries published and not yet taken by the kernel.
    pub(crate) fn pending(&mut self) -> u32 {
        self.entries() - self.free()
    }

    /// Consumer side: entries ready to read (re-reading the kernel's index).
    pub(crate) fn available(&mut self) -> u32 {
        debug_assert!(matches!(self.kind, RingKind::Rx | RingKind::Completion));
        self.remote = self.indices().1.load(Ordering::Acquire);
        self.remote.wrapping_sub(self.local)
    }

    fn entry_ptr(&self, offset: u32) -> *mut u8 {
        let slot = self.local.wrapping_add(offset) & self.mask;
        let at = self.descs + slot as usize * self.kind.entry_size();
        debug_assert!(at + self.kind.entry_size() <= self.map.len());
        // SAFETY: slot <= mask = entries - 1, so `at` plus one entry is within the
        // mapping, whose length `map` computed from `entries`.
        unsafe { self.map.base().add(at) }
    }

    /// Consumer side (Completion): the address `offset` entries past our index; `offset`
    /// must be below what [`Ring::available`] returned.
    pub(crate) fn read_addr(&self, offset: u32) -> u64 {
        assert!(self.kind == RingKind::Completion && offset < self.remote.wrapping_sub(self.local));
        // SAFETY: an 8-byte entry inside the mapping (entry_ptr), which the kernel
        // published before its producer index (read with Acquire) and will not rewrite
        // until we release it.
        unsafe { ptr::read_volatile(self.entry_ptr(offset).cast::<u64>()) }
    }

    /// Consumer side (Rx): the descriptor `offset` entries past our index.
    pub(crate) fn read_desc(&self, offset: u32) -> XdpDesc {
        assert!(self.kind == RingKind::Rx && offset < self.remote.wrapping_sub(self.local));
        // SAFETY: a 16-byte xdp_desc entry inside the mapping, published as above.
        let desc = unsafe { ptr::read_volatile(self.entry_ptr(offset).cast::<libc::xdp_desc>()) };
        XdpDesc {
            addr: desc.addr,
            len: desc.len,
        }
    }

    /// Consumer side: gives `count` read entries back to the kernel.
    pub(crate) fn release(&mut self, count: u32) {
        debug_assert!(count <= self.remote.wrapping_sub(self.local));
        self.local = self.local.wrapping_add(count);
        self.indices().0.store(self.local, Ordering::Release);
    }

    /// Producer side (Fill): writes `addr` `offset` entries past our index; `offset` must
    /// be below what [`Ring::free`] returned.
    pub(crate) fn write_addr(&mut self, offset: u32, addr: u64) {
        assert!(
            self.kind == RingKind::Fill
                && offset < self.entries() - self.local.wrapping_sub(self.remote)
        );
        // SAFETY: an 8-byte entry inside the mapping that the kernel consumed already
        // (its index, read with Acquire, is past it) and will not read until we publish.
        unsafe { ptr::write_volatile(self.entry_ptr(offset).cast::<u64>(), addr) }
    }

    /// Producer side (Tx): writes a descriptor `offset` entries past our index.
    pub(crate) fn write_desc(&mut self, offset: u32, desc: XdpDesc) {
        assert!(
            self.kind == RingKind::Tx
                && offset < self.entries() - self.local.wrapping_sub(self.remote)
        );
        let raw = libc::xdp_desc {
            addr: desc.addr,
            len: desc.len,
            options: 0,
        };
        // SAFETY: a 16-byte entry inside the mapping, free as in `write_addr`.
        unsafe { ptr::write_volatile(self.entry_ptr(offset).cast::<libc::xdp_desc>(), raw) }
    }

    /// Producer side: publishes `count` written entries.
    pub(crate) fn submit(&mut self, count: u32) {
        self.local = self.local.wrapping_add(count);
        self.indices().0.store(self.local, Ordering::Release);
    }
}
