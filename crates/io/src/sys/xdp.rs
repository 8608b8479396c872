//! The raw interfaces of the AF_XDP back end: the `bpf()` syscall (maps, program load,
//! XDP link) and the memory an `AF_XDP` socket shares with the kernel (UMEM and its four
//! rings).
//!
//! As in the rest of `sys`, callers pass Rust types and get `io::Result`; pointers handed
//! to the kernel come from live borrows within the same call. Shared memory (UMEM, rings)
//! is only touched through raw pointers and atomics, never through references, and every
//! index into it is bounds-checked here, so the safe code in `crate::xdp` cannot make an
//! out-of-bounds access whatever it passes.

use std::ffi::c_int;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

// `bpf()` commands, map, program and attach types (include/uapi/linux/bpf.h).
const BPF_MAP_CREATE: c_int = 0;
const BPF_MAP_UPDATE_ELEM: c_int = 2;
const BPF_MAP_DELETE_ELEM: c_int = 3;
const BPF_MAP_GET_NEXT_KEY: c_int = 4;
const BPF_PROG_LOAD: c_int = 5;
const BPF_LINK_CREATE: c_int = 28;
pub(crate) const BPF_MAP_TYPE_HASH: u32 = 1;
pub(crate) const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;

// XDP attach modes (include/uapi/linux/if_link.h).
pub(crate) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub(crate) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// `bpf(BPF_MAP_CREATE)` attributes: the head of `union bpf_attr` for that command.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// `bpf(BPF_MAP_*_ELEM)` and `BPF_MAP_GET_NEXT_KEY` attributes (`value` is `next_key`
/// for the latter).
#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `bpf(BPF_PROG_LOAD)` attributes, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `bpf(BPF_LINK_CREATE)` attributes for an XDP link.
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// Marks the `repr(C)` attribute structs above: plain old data whose pointer fields, if
/// any, the caller filled from live borrows.
trait BpfAttr {}
impl BpfAttr for MapCreateAttr {}
impl BpfAttr for MapElemAttr {}
impl BpfAttr for ProgLoadAttr {}
impl BpfAttr for LinkCreateAttr {}

/// `bpf(cmd, attr, sizeof attr)`. The kernel zero-extends a short `bpf_attr`.
fn bpf<A: BpfAttr>(cmd: c_int, attr: &mut A) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, exclusively borrowed repr(C) struct of exactly the size
    // passed; every pointer inside it was set by our caller from a borrow that outlives
    // this call (see each caller). The kernel reads and writes only within that size.
    syscall!(syscall(
        libc::SYS_bpf,
        cmd,
        ptr::from_mut(attr),
        mem::size_of::<A>() as libc::c_uint
    ))
}

/// Takes ownership of a file descriptor the kernel just returned.
fn owned_fd(raw: libc::c_long) -> io::Result<OwnedFd> {
    let raw = c_int::try_from(raw).map_err(|_| io::Error::other("fd out of range"))?;
    // SAFETY: the kernel returned `raw` as a new descriptor of ours; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn name16(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    // At most 15 bytes, so the name stays NUL-terminated.
    for (dst, src) in out.iter_mut().zip(name.bytes().take(15)) {
        *dst = src;
    }
    out
}

/// Creates a BPF map with `u32` values and keys of `key_size` bytes.
pub(crate) fn map_create(
    map_type: u32,
    key_size: u32,
    max_entries: u32,
    name: &str,
) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size,
        value_size: 4,
        max_entries,
        map_name: name16(name),
        ..MapCreateAttr::default()
    };
    owned_fd(bpf(BPF_MAP_CREATE, &mut attr)?)
}

/// A map key: plain bytes the kernel copies (`u32`, `[u8; N]`), of the size the map was
/// created with.
pub(crate) trait MapKey: Copy + Default {}
impl MapKey for u32 {}
impl MapKey for [u8; 8] {}

/// `map[key] = value` (creates or replaces; `BPF_ANY`).
pub(crate) fn map_update<K: MapKey>(map: BorrowedFd<'_>, key: K, value: u32) -> io::Result<()> {
    // `key` and `value` live on this stack frame until `bpf` returns.
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: ptr::from_ref(&key) as u64,
        value: ptr::from_ref(&value) as u64,
        ..MapElemAttr::default()
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr)?;
    Ok(())
}

/// Deletes `map[key]`; `ENOENT` when it is absent.
pub(crate) fn map_delete<K: MapKey>(map: BorrowedFd<'_>, key: K) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: ptr::from_ref(&key) as u64,
        ..MapElemAttr::default()
    };
    bpf(BPF_MAP_DELETE_ELEM, &mut attr)?;
    Ok(())
}

/// The key after `key` in the map's iteration order (the first key for `None`); `None`
/// at the end.
pub(crate) fn map_next_key<K: MapKey>(
    map: BorrowedFd<'_>,
    key: Option<K>,
) -> io::Result<Option<K>> {
    let current = key.unwrap_or_default();
    let mut next = K::default();
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        // A null key asks for the first one.
        key: if key.is_some() {
            ptr::from_ref(&current) as u64
        } else {
            0
        },
        value: ptr::from_mut(&mut next) as u64,
        ..MapElemAttr::default()
    };
    match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
        Ok(_) => Ok(Some(next)),
        Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Loads an XDP program (`insns`: 8-byte `struct bpf_insn`s as the kernel lays them out).
/// On failure the error is returned with the verifier's log in `log` (NUL-terminated).
pub(crate) fn prog_load_xdp(
    insns: &[[u8; 8]],
    name: &str,
    license: &std::ffi::CStr,
    log: &mut [u8],
) -> io::Result<OwnedFd> {
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: u32::try_from(insns.len()).map_err(|_| io::Error::other("program too long"))?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        // Level 1: the log of a failed load (the kernel wants at least 128 bytes).
        log_level: u32::from(log.len() >= 128),
        log_size: if log.len() >= 128 {
            log.len() as u32
        } else {
            0
        },
        log_buf: if log.len() >= 128 {
            log.as_mut_ptr() as u64
        } else {
            0
        },
        prog_name: name16(name),
        expected_attach_type: BPF_XDP,
        ..ProgLoadAttr::default()
    };
    // `insns`, `license` and `log` are borrowed for the whole call.
    owned_fd(bpf(BPF_PROG_LOAD, &mut attr)?)
}

/// Attaches `prog` to the interface as its XDP program through a BPF link (kernel 5.9+):
/// the program stays attached while the returned descriptor is open.
pub(crate) fn link_create_xdp(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    flags: u32,
) -> io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags,
    };
    owned_fd(bpf(BPF_LINK_CREATE, &mut attr)?)
}

// ---- AF_XDP socket ----

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
    let umem = &region.map;
    let reg = libc::xdp_umem_reg {
        addr: umem.base.as_ptr() as u64,
        len: umem.len as u64,
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

/// The most descriptors [`poll_many`] waits on.
pub(crate) const POLL_MAX: usize = 65;

/// Waits up to `timeout_ms` (-1: forever) until one of `fds` (the first [`POLL_MAX`]) has
/// `events`. Returns on timeout and on a signal too; the caller re-checks. Says whether
/// the last descriptor passed had any of `events` (the caller puts the one it wants to
/// know about last).
pub(crate) fn poll_many<'a>(
    fds: impl IntoIterator<Item = BorrowedFd<'a>>,
    events: i16,
    timeout_ms: c_int,
) -> io::Result<bool> {
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; POLL_MAX];
    let mut count = 0;
    for (pfd, fd) in pfds.iter_mut().zip(fds) {
        pfd.fd = fd.as_raw_fd();
        pfd.events = events;
        count += 1;
    }
    // SAFETY: `pfds` holds POLL_MAX live pollfds and the count passed is at most that.
    match syscall!(poll(pfds.as_mut_ptr(), count as libc::nfds_t, timeout_ms)) {
        Ok(_) => Ok(count > 0 && pfds[count - 1].revents & events != 0),
        Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(err) => Err(err),
    }
}

/// The interface's receive queues (`ETHTOOL_GCHANNELS`: rx plus combined channels).
/// `name` must be a valid interface name (checked by the caller).
pub(crate) fn rx_queue_count(fd: BorrowedFd<'_>, name: &str) -> io::Result<u32> {
    /// `struct ethtool_channels` (include/uapi/linux/ethtool.h).
    #[repr(C)]
    #[derive(Default)]
    struct EthtoolChannels {
        cmd: u32,
        max_rx: u32,
        max_tx: u32,
        max_other: u32,
        max_combined: u32,
        rx_count: u32,
        tx_count: u32,
        other_count: u32,
        combined_count: u32,
    }
    const ETHTOOL_GCHANNELS: u32 = 0x3c;
    let mut channels = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..EthtoolChannels::default()
    };
    let mut req = super::ifreq_for(name);
    req.ifr_ifru.ifru_data = ptr::from_mut(&mut channels).cast();
    // SAFETY: `req` is a live ifreq with a NUL-terminated name whose data pointer points
    // to `channels`, a live `struct ethtool_channels` (nine u32, C layout), all the
    // kernel reads and writes for ETHTOOL_GCHANNELS.
    syscall!(ioctl(
        fd.as_raw_fd(),
        libc::SIOCETHTOOL as _,
        ptr::from_mut(&mut req)
    ))?;
    Ok(channels.rx_count + channels.combined_count)
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
pub(crate) struct UmemMap {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: a plain memory mapping, only ever accessed through raw pointers by the
// `UmemRegion`s, which cover disjoint ranges.
unsafe impl Send for UmemMap {}
// SAFETY: as for Send: `&UmemMap` only exposes `base` and `len`.
unsafe impl Sync for UmemMap {}

impl UmemMap {
    /// Maps `len` bytes (a multiple of the page size) of zeroed memory and returns it as
    /// two disjoint regions, `[0, at)` and `[at, len)`: the only regions ever made of it,
    /// so no two owners share a byte.
    pub(crate) fn halves(len: usize, at: usize) -> io::Result<(UmemRegion, UmemRegion)> {
        // SAFETY: a fresh private anonymous mapping; nothing else refers to the address.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null address"))?;
        let map = Arc::new(UmemMap { base, len });
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

impl Drop for UmemMap {
    fn drop(&mut self) {
        // SAFETY: our own mapping with its length; no pointer into it outlives `self`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
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
            let src = self.map.base.as_ptr().add(addr as usize);
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
            let dst = self.map.base.as_ptr().add(addr as usize);
            ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len());
        }
        true
    }
}

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

/// Creates ring `kind` of `entries` (a power of two) on the socket.
pub(crate) fn set_ring_size(fd: BorrowedFd<'_>, kind: RingKind, entries: u32) -> io::Result<()> {
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
    map: NonNull<u8>,
    map_len: usize,
    producer: usize,
    consumer: usize,
    descs: usize,
    mask: u32,
    /// Our own index (producer for Fill/Tx, consumer for Rx/Completion), as published.
    local: u32,
    /// The kernel's index as last read.
    remote: u32,
}

// SAFETY: the mapping is accessed through raw pointers and atomics only; methods that
// move our index take `&mut self`, so one thread at a time drives the ring.
unsafe impl Send for Ring {}
// SAFETY: `&Ring` methods only load the kernel-written words atomically.
unsafe impl Sync for Ring {}

impl Ring {
    /// Maps ring `kind` (created with [`set_ring_size`] with `entries`).
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        kind: RingKind,
        off: &libc::xdp_mmap_offsets,
        entries: u32,
    ) -> io::Result<Ring> {
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
        let map_len = descs + entries as usize * kind.entry_size();
        if [producer, consumer, flags]
            .iter()
            .any(|&at| at % 4 != 0 || at + 4 > descs)
        {
            return Err(io::Error::other("unexpected XDP ring layout"));
        }
        // SAFETY: a fresh shared mapping of the socket's ring at the offset that selects
        // it; the kernel checks the length against the ring it created.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                kind.pgoff(),
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(base.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null address"))?;
        let mut ring = Ring {
            kind,
            map,
            map_len,
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
        unsafe { AtomicU32::from_ptr(self.map.as_ptr().add(at).cast()) }
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
        debug_assert!(at + self.kind.entry_size() <= self.map_len);
        // SAFETY: slot <= mask, so `at` plus one entry is within the mapping.
        unsafe { self.map.as_ptr().add(at) }
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

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: our own mapping with its length; no pointer into it outlives `self`.
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), self.map_len);
        }
    }
}
