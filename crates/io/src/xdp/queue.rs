//! One receive queue of an [`super::XdpPort`]: its two AF_XDP sockets, and the receive
//! and transmit halves of its UMEM with their rings ([`RxPath`], [`TxPath`]).
//!
//! Receive frames circulate fill ring → RX ring → fill ring, transmit frames free list →
//! TX ring → completion ring → free list. Each half is driven by one thread at a time
//! (the port keeps it under a lock), so the halves never mix.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use super::XdpOptions;
use crate::error::IoError;
use crate::iface::Interface;
use crate::offload::Offload;
use crate::socket::{PacketType, Received, RecvBatch};
use crate::sys::bpf;
use crate::sys::xsk::{self, UmemMap, UmemRegion, XdpDesc};
use crate::sys::xsk_ring::{self, Ring, RingKind};

/// Longest wait for a free transmit frame before a send fails.
const TX_STALL: Duration = Duration::from_secs(1);

/// The receive half of one queue: RX and fill rings and the receive frames.
pub(super) struct RxPath {
    rx: Ring,
    fill: Ring,
    umem: UmemRegion,
    /// Bytes per UMEM frame.
    frame_size: u64,
    /// Frames copied out and not yet back on the fill ring (never above the half's size).
    returned: Vec<u64>,
}

/// The transmit half of one queue: TX and completion rings, the free transmit frames.
pub(super) struct TxPath {
    /// The queue, whose transmit socket kicks the TX ring.
    pub queue: usize,
    tx: Ring,
    completion: Ring,
    umem: UmemRegion,
    /// Bytes per UMEM frame.
    frame_size: u64,
    /// Transmit frames owned by us (never above the half's size).
    free: Vec<u64>,
}

/// How long [`bind_when_free`] waits for a queue an earlier socket still holds.
const BIND_BUSY_WAIT: Duration = Duration::from_secs(2);

/// Binds the socket to `queue` in copy mode. A socket closed a moment ago (a port just
/// dropped, masqd restarted) lets go of its queue in deferred kernel work, and until then
/// `bind` answers `EBUSY`; so `EBUSY` is retried for a bounded time before it is reported.
///
/// Without `XDP_USE_NEED_WAKEUP`: copy mode needs a `sendto` kick for every transmit
/// anyway, and never a wake-up for the fill ring.
fn bind_when_free(fd: BorrowedFd<'_>, ifindex: u32, queue: u32) -> io::Result<()> {
    let deadline = Instant::now() + BIND_BUSY_WAIT;
    loop {
        match xsk::bind_xdp(fd, ifindex, queue, libc::XDP_COPY, None) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// One queue's receive and transmit sockets and its two halves, as [`open_queue`] builds
/// them.
pub(super) type QueueParts = (Socket, Socket, RxPath, TxPath);

/// Creates, maps and binds the AF_XDP sockets of queue `queue` and registers the receive
/// one in the XSKMAP. The receive socket owns the queue's UMEM (whose receive half is all
/// on the fill ring) and has RX, fill and completion rings but no TX ring; a second
/// socket shares the UMEM and has only the TX ring.
///
/// Why two: in copy mode every `poll` of a socket with a TX ring also transmits what that
/// ring holds, under the socket's mutex. With one socket per queue, the thread waiting
/// for frames on one side ended up sending the other side's thread's frames out of its
/// interface, while that thread spun on the mutex to kick them itself (10–11 % of masqd's
/// samples in `mutex_spin_on_owner` under an iperf3 load). A socket without a TX ring
/// makes `poll` only wait.
pub(super) fn open_queue(
    iface: &Interface,
    queue: u32,
    options: &XdpOptions,
    xsks: BorrowedFd<'_>,
) -> Result<QueueParts, IoError> {
    let xsk_err = |call: &'static str| {
        let iface = iface.name.clone();
        move |source| IoError::Xsk {
            call,
            iface,
            queue,
            source,
        }
    };
    let xsk = Socket::new(Domain::from(libc::AF_XDP), Type::RAW, None)
        .map_err(xsk_err("socket(AF_XDP, SOCK_RAW)"))?;
    let fd = xsk.as_fd();
    let frame_count = options.frame_count;
    let frame_size = options.frame_size as usize;
    let half = frame_count / 2;
    // Receive frames are the first half of the UMEM, transmit frames the second.
    let (rx_umem, tx_umem) = UmemMap::halves(
        frame_count as usize * frame_size,
        half as usize * frame_size,
    )
    .map_err(xsk_err("mmap(UMEM)"))?;
    xsk::umem_register(fd, &rx_umem, options.frame_size)
        .map_err(xsk_err("setsockopt(XDP_UMEM_REG)"))?;
    let rings = [
        (RingKind::Fill, "setsockopt(XDP_UMEM_FILL_RING)"),
        (RingKind::Completion, "setsockopt(XDP_UMEM_COMPLETION_RING)"),
        (RingKind::Rx, "setsockopt(XDP_RX_RING)"),
    ];
    for (kind, call) in rings {
        xsk_ring::set_ring_size(fd, kind, half).map_err(xsk_err(call))?;
    }
    let offsets = xsk::mmap_offsets(fd).map_err(xsk_err("getsockopt(XDP_MMAP_OFFSETS)"))?;
    let map = |kind, call| Ring::map(fd, kind, &offsets, half).map_err(xsk_err(call));
    let mut fill = map(RingKind::Fill, "mmap(XDP_UMEM_PGOFF_FILL_RING)")?;
    let completion = map(RingKind::Completion, "mmap(XDP_UMEM_PGOFF_COMPLETION_RING)")?;
    let rx = map(RingKind::Rx, "mmap(XDP_PGOFF_RX_RING)")?;

    let tx_xsk = Socket::new(Domain::from(libc::AF_XDP), Type::RAW, None)
        .map_err(xsk_err("socket(AF_XDP, SOCK_RAW) for transmit"))?;
    let tx_fd = tx_xsk.as_fd();
    xsk_ring::set_ring_size(tx_fd, RingKind::Tx, half)
        .map_err(xsk_err("setsockopt(XDP_TX_RING)"))?;
    let tx_offsets = xsk::mmap_offsets(tx_fd).map_err(xsk_err("getsockopt(XDP_MMAP_OFFSETS)"))?;
    let tx = Ring::map(tx_fd, RingKind::Tx, &tx_offsets, half)
        .map_err(xsk_err("mmap(XDP_PGOFF_TX_RING)"))?;

    // The receive frames all go to the kernel now; the transmit frames are all free.
    let frame_addr = |i: u32| u64::from(i) * frame_size as u64;
    debug_assert_eq!(fill.free(), half);
    for i in 0..half {
        fill.write_addr(i, frame_addr(i));
    }
    fill.submit(half);
    let free = (half..frame_count).map(frame_addr).collect();

    bind_when_free(fd, iface.index, queue).map_err(xsk_err("bind(AF_XDP)"))?;
    xsk::bind_xdp(tx_fd, iface.index, queue, libc::XDP_SHARED_UMEM, Some(fd)).map_err(xsk_err(
        "bind(AF_XDP, XDP_SHARED_UMEM) of the transmit socket",
    ))?;
    bpf::map_update(xsks, queue, fd.as_raw_fd() as u32).map_err(|source| IoError::Bpf {
        call: "bpf(BPF_MAP_UPDATE_ELEM, XSKMAP)",
        iface: iface.name.clone(),
        source,
    })?;
    let index = queue as usize;
    Ok((
        xsk,
        tx_xsk,
        RxPath {
            rx,
            fill,
            umem: rx_umem,
            frame_size: u64::from(options.frame_size),
            returned: Vec::with_capacity(half as usize),
        },
        TxPath {
            queue: index,
            tx,
            completion,
            umem: tx_umem,
            frame_size: u64::from(options.frame_size),
            free,
        },
    ))
}

impl RxPath {
    /// Copies what the RX ring holds into `bufs[count..limit]`, describing each frame in
    /// `batch` (packet type from its destination MAC against `own_mac`, XDP does not say),
    /// then gives the ring's slots and the frames back to the kernel. Returns the new
    /// count and how many descriptors pointed outside the receive half (never seen).
    pub(super) fn take<B: AsMut<[u8]>>(
        &mut self,
        own_mac: &[u8; 6],
        batch: &mut RecvBatch,
        bufs: &mut [B],
        mut count: usize,
        limit: usize,
    ) -> (usize, u64) {
        let ready = self.rx.available().min((limit - count) as u32);
        let mut malformed = 0;
        if ready == 0 {
            return (count, malformed);
        }
        for i in 0..ready {
            let desc = self.rx.read_desc(i);
            let buf = bufs[count].as_mut();
            let len = desc.len as usize;
            let kept = len.min(buf.len());
            if self.umem.copy_out(desc.addr, &mut buf[..kept]) {
                batch.push(Received {
                    len: kept,
                    truncated: kept < len,
                    offload: Offload::NONE,
                    pkttype: PacketType::from_destination(&buf[..kept], own_mac),
                });
                count += 1;
            } else {
                malformed += 1;
            }
            // The chunk's start: the kernel put the frame after its headroom.
            let chunk = desc.addr - desc.addr % self.frame_size;
            if self.umem.contains(chunk, 1) && self.returned.len() < self.returned.capacity() {
                self.returned.push(chunk);
            }
        }
        self.rx.release(ready);
        self.refill();
        (count, malformed)
    }

    /// Puts copied-out receive frames back on the fill ring.
    fn refill(&mut self) {
        let room = (self.fill.free() as usize).min(self.returned.len());
        let keep = self.returned.len() - room;
        for (slot, &addr) in self.returned[keep..].iter().enumerate() {
            self.fill.write_addr(slot as u32, addr);
        }
        self.returned.truncate(keep);
        self.fill.submit(room as u32);
    }
}

impl TxPath {
    /// Copies `frame` into the free transmit frame `addr` and writes its descriptor
    /// `written` entries past the TX ring's index (published by the next [`Self::flush`]).
    pub(super) fn write(&mut self, written: u32, addr: u64, frame: &[u8]) {
        let copied = self.umem.copy_in(addr, frame);
        debug_assert!(copied, "transmit frames hold max_tx_len bytes");
        self.tx.write_desc(
            written,
            XdpDesc {
                addr,
                len: frame.len() as u32,
            },
        );
    }

    /// Moves finished transmit frames from the completion ring to the free list.
    fn reap(&mut self) {
        let done = self.completion.available();
        for i in 0..done {
            let addr = self.completion.read_addr(i);
            let chunk = addr - addr % self.frame_size;
            if self.umem.contains(chunk, 1) && self.free.len() < self.free.capacity() {
                self.free.push(chunk);
            }
        }
        self.completion.release(done);
    }

    /// Publishes `written` descriptors and kicks the kernel through `socket` (the queue's
    /// transmit socket) until it took everything or refuses to take more for now (the
    /// rest goes with the next kick).
    pub(super) fn flush(&mut self, socket: BorrowedFd<'_>, written: &mut u32) -> io::Result<()> {
        if *written > 0 {
            self.tx.submit(*written);
            *written = 0;
        }
        // Copy mode sends only inside a kick, at most 32 frames per kick; allow a few
        // refusals beyond that.
        let mut kicks = self.tx.pending() / 32 + 8;
        while self.tx.pending() > 0 && kicks > 0 {
            kicks -= 1;
            match xsk::kick_tx(socket) {
                Ok(()) => {}
                // EAGAIN: more to send, or the completion ring is full; EBUSY: the
                // device dropped a frame (counted by the device); ENOBUFS: no memory for
                // a socket buffer right now.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS)
                    ) => {}
                Err(e) => return Err(e),
            }
            self.reap();
        }
        self.reap();
        Ok(())
    }

    /// A free transmit frame, flushing and waiting (up to [`TX_STALL`]) when there is none.
    pub(super) fn free_frame(
        &mut self,
        socket: BorrowedFd<'_>,
        written: &mut u32,
    ) -> io::Result<u64> {
        let mut deadline = None;
        loop {
            if self.free.is_empty() {
                self.reap();
            }
            if !self.free.is_empty() && self.tx.free() > *written {
                if let Some(addr) = self.free.pop() {
                    return Ok(addr);
                }
            }
            self.flush(socket, written)?;
            // (The TX ring has as many slots as there are transmit frames, so a free
            // frame means a free slot; both are checked all the same.)
            if !self.free.is_empty() && self.tx.free() > 0 {
                continue;
            }
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + TX_STALL);
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no transmit frame came back from the kernel",
                ));
            }
            crate::sys::poll(std::iter::once(socket), libc::POLLOUT, 1)?;
        }
    }
}
