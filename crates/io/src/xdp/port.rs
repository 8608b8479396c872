//! [`XdpPort`] itself: opening it, filling its maps, and its receive and send paths over
//! the queues of `queue`.

use std::io;
use std::iter;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use socket2::Socket;

use super::attach::{attach, load_insns};
use super::maps::{Maps, MAX_QUEUES};
use super::queue::{open_queue, RxPath, TxPath};
use super::steering_prog::steal_program;
use super::{XdpMode, XdpOptions, XdpStats};
use crate::error::IoError;
use crate::iface::Interface;
use crate::offload::Offload;
use crate::socket::{recv_one, Received, RecvBatch, SendBatch};
use crate::sys::{ifreq, xsk};
use crate::wait::wait_readable;
use crate::{FrameIo, PacketSocket, SocketOptions};

/// How many full XDP batches in a row before a slot is kept for the kernel path, so ARP
/// replies are not starved under load.
const FAIRNESS_STREAK: u32 = 8;

/// The most batches between two reads of the packet socket while the thread, busy with
/// XDP frames, does not `poll` (which would say when the socket has frames).
const KERNEL_CHECK_EVERY: u32 = 8;
/// The headroom the kernel keeps in front of a frame it copies into the UMEM.
const XDP_PACKET_HEADROOM: u32 = 256;

/// Everything the receiving thread uses.
struct Receiver {
    paths: Vec<RxPath>,
    /// Scratch for reading the packet socket.
    kernel_batch: RecvBatch,
    full_streak: u32,
    /// The queue read first by the next call (round robin).
    next: usize,
    /// Whether the packet socket may hold frames: the last `poll` said so, or the last
    /// read of it filled all the room it had. Saves a `recvmmsg` that would find nothing
    /// on every batch, twice per wake-up under request/response traffic.
    kernel_ready: bool,
    /// Batches since the packet socket was last read; it is read at least every
    /// [`KERNEL_CHECK_EVERY`] batches while the XDP path keeps the thread from polling.
    batches_since_kernel: u32,
}

/// An AF_XDP receive/transmit port on one interface. See the module documentation.
///
/// `Send + Sync`: one thread at a time receives (from every queue); senders take the
/// first transmit queue no other sender holds.
pub struct XdpPort {
    // Field order is drop order: the link first, so the program is detached before the
    // sockets it redirects to are closed.
    link: OwnedFd,
    sockets: Vec<Socket>,
    /// Per queue, the transmit socket sharing the receive socket's UMEM.
    tx_sockets: Vec<Socket>,
    rx: Mutex<Receiver>,
    tx: Vec<Mutex<TxPath>>,
    kernel: PacketSocket,
    maps: Maps,
    _prog: OwnedFd,
    /// One writer of the maps at a time.
    control: Mutex<()>,
    iface: String,
    mac: [u8; 6],
    mode: XdpMode,
    max_tx_len: usize,
    rx_xdp: AtomicU64,
    rx_kernel: AtomicU64,
    tx_xdp: AtomicU64,
    tx_kernel: AtomicU64,
    malformed: AtomicU64,
}

impl std::fmt::Debug for XdpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpPort")
            .field("iface", &self.iface)
            .field("queues", &self.sockets.len())
            .field("mode", &self.mode)
            .field("link", &self.link.as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl XdpPort {
    /// Loads the XDP program, creates an AF_XDP socket per receive queue, attaches the
    /// program to `iface` (native mode, else generic) and opens the packet socket for the
    /// frames the program passes. The `addrs` map starts empty: nothing is stolen until
    /// [`XdpPort::set_addresses`].
    ///
    /// # Errors
    ///
    /// [`IoError::XdpOption`] for a bad frame count or size or queue count;
    /// [`IoError::Bpf`] when a map cannot be created (no `CAP_BPF`/`CAP_NET_ADMIN`);
    /// [`IoError::BpfProgLoad`] with the verifier's log; [`IoError::Xsk`] when an AF_XDP
    /// socket cannot be set up (no AF_XDP in the kernel, the queue does not exist,
    /// another socket holds it, not enough locked memory); [`IoError::XdpAttach`] when
    /// neither mode attaches (another XDP program is there, the MTU is too large for
    /// XDP); and the [`PacketSocket::open`] errors.
    pub fn open(iface: &Interface, options: &XdpOptions) -> Result<XdpPort, IoError> {
        let frame_count = options.frame_count;
        if !frame_count.is_power_of_two() || !(64..=65536).contains(&frame_count) {
            return Err(IoError::XdpOption(
                "frame_count must be a power of two from 64 to 65536",
            ));
        }
        if !matches!(options.frame_size, 2048 | 4096) {
            return Err(IoError::XdpOption("frame_size must be 2048 or 4096"));
        }
        if options.queues.is_some_and(|n| n == 0 || n > MAX_QUEUES) {
            return Err(IoError::XdpOption("queues must be from 1 to 64"));
        }
        let name = &iface.name;
        let kernel = PacketSocket::open(iface, &SocketOptions::default())?;
        let queues = options.queues.unwrap_or_else(|| {
            // A driver without ETHTOOL_GCHANNELS has one queue as far as we can tell;
            // frames on any other would still reach us, through the kernel.
            ifreq::rx_queue_count(kernel.as_fd(), name)
                .unwrap_or(1)
                .clamp(1, MAX_QUEUES)
        });
        let maps = Maps::create(name)?;
        let prog = load_insns(name, &steal_program(options.side, maps.for_program()))?;

        let mut sockets = Vec::new();
        let mut tx_sockets = Vec::new();
        let mut rx_paths = Vec::new();
        let mut tx_paths = Vec::new();
        for queue in 0..queues {
            let (socket, tx_socket, rx, tx) = open_queue(iface, queue, options, maps.xsks())?;
            sockets.push(socket);
            tx_sockets.push(tx_socket);
            rx_paths.push(rx);
            tx_paths.push(Mutex::new(tx));
        }
        let (link, mode) = attach(iface, prog.as_fd(), options.force_generic)?;

        let max_tx_len =
            (iface.mtu as usize + 14).min((options.frame_size - XDP_PACKET_HEADROOM) as usize);
        Ok(XdpPort {
            link,
            sockets,
            tx_sockets,
            rx: Mutex::new(Receiver {
                paths: rx_paths,
                kernel_batch: RecvBatch::new(64),
                full_streak: 0,
                next: 0,
                kernel_ready: true,
                batches_since_kernel: 0,
            }),
            tx: tx_paths,
            kernel,
            maps,
            _prog: prog,
            control: Mutex::new(()),
            iface: name.clone(),
            mac: iface.mac,
            mode,
            max_tx_len,
            rx_xdp: AtomicU64::new(0),
            rx_kernel: AtomicU64::new(0),
            tx_xdp: AtomicU64::new(0),
            tx_kernel: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
        })
    }

    /// How the program is attached.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// How many queues have an AF_XDP socket (queues `0..n`).
    pub fn queues(&self) -> usize {
        self.sockets.len()
    }

    /// Replaces the addresses the program steals traffic for: `vips` get the VIP flag,
    /// `rips` RIP, `locals` LOCAL (an address may be in several lists). New entries are
    /// written before stale ones are removed, so an address in both the old and the new
    /// set is never missing. Up to 4096 addresses, counting old and new together while
    /// the swap runs. Control path: allocates, one `bpf()` call per address.
    ///
    /// # Errors
    ///
    /// [`IoError::Bpf`] when the map refuses an update (`E2BIG`: more than 4096
    /// addresses) or a deletion.
    pub fn set_addresses(
        &self,
        vips: &[Ipv4Addr],
        rips: &[Ipv4Addr],
        locals: &[Ipv4Addr],
    ) -> Result<(), IoError> {
        let _one_writer = self.control.lock().unwrap_or_else(|e| e.into_inner());
        self.maps.set_addresses(&self.iface, vips, rips, locals)
    }

    /// Replaces the services the VIP side steals for a VIP that is also one of the host's
    /// own addresses (in `locals` of [`XdpPort::set_addresses`]): `(VIP, IP protocol,
    /// port)`, port 0 for a service on every port. To such a VIP only these TCP/UDP
    /// ports, ICMP errors and non-first fragments go to the port; anything else (ssh to the
    /// VIP, a ping, a closed port) stays with the kernel, which answers it as before. A VIP
    /// that is not the host's own has all its traffic stolen. Same swap order and limits
    /// as [`XdpPort::set_addresses`].
    ///
    /// # Errors
    ///
    /// [`IoError::Bpf`] when the map refuses an update (`E2BIG`: more than 4096
    /// services) or a deletion.
    pub fn set_service_ports(&self, services: &[(Ipv4Addr, u8, u16)]) -> Result<(), IoError> {
        let _one_writer = self.control.lock().unwrap_or_else(|e| e.into_inner());
        self.maps.set_service_ports(&self.iface, services)
    }

    /// The port's counters, with the kernel's for the AF_XDP sockets.
    ///
    /// # Errors
    ///
    /// [`IoError::GetSockOpt`] if `getsockopt(XDP_STATISTICS)` fails.
    pub fn stats(&self) -> Result<XdpStats, IoError> {
        let mut stats = XdpStats {
            rx_xdp: self.rx_xdp.load(Ordering::Relaxed),
            rx_kernel: self.rx_kernel.load(Ordering::Relaxed),
            tx_xdp: self.tx_xdp.load(Ordering::Relaxed),
            tx_kernel: self.tx_kernel.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            ..XdpStats::default()
        };
        for socket in self.sockets.iter().chain(&self.tx_sockets) {
            let kernel =
                xsk::xdp_statistics(socket.as_fd()).map_err(|source| IoError::GetSockOpt {
                    option: "XDP_STATISTICS",
                    iface: self.iface.clone(),
                    source,
                })?;
            stats.rx_dropped +=
                kernel.rx_dropped + kernel.rx_ring_full + kernel.rx_fill_ring_empty_descs;
            stats.tx_invalid += kernel.tx_invalid_descs;
        }
        Ok(stats)
    }

    fn tx_socket(&self, tx: &TxPath) -> BorrowedFd<'_> {
        self.tx_sockets[tx.queue].as_fd()
    }

    /// A transmit queue no other sender holds, else queue 0 (waiting for it).
    fn lock_tx(&self) -> MutexGuard<'_, TxPath> {
        for path in &self.tx {
            match path.try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.tx[0].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies what the RX rings hold (up to `limit`, queues in turn) into `bufs`, then
    /// reads the packet socket into the rest without waiting. Returns the count.
    fn take<B: AsMut<[u8]>>(
        &self,
        receiver: &mut Receiver,
        batch: &mut RecvBatch,
        bufs: &mut [B],
        limit: usize,
    ) -> Result<usize, IoError> {
        let xdp_limit = if receiver.full_streak >= FAIRNESS_STREAK && limit > 1 {
            limit - 1
        } else {
            limit
        };
        let queues = receiver.paths.len();
        let mut count = 0;
        for turn in 0..queues {
            let path = &mut receiver.paths[(receiver.next + turn) % queues];
            let (taken, malformed) = path.take(&self.mac, batch, bufs, count, xdp_limit);
            if taken > count {
                self.rx_xdp
                    .fetch_add((taken - count) as u64, Ordering::Relaxed);
            }
            if malformed > 0 {
                self.malformed.fetch_add(malformed, Ordering::Relaxed);
            }
            count = taken;
        }
        receiver.next = (receiver.next + 1) % queues;
        if count == limit {
            receiver.full_streak += 1;
            return Ok(count);
        }
        receiver.full_streak = 0;
        if !receiver.kernel_ready && receiver.batches_since_kernel < KERNEL_CHECK_EVERY {
            receiver.batches_since_kernel += 1;
            return Ok(count);
        }
        receiver.batches_since_kernel = 0;
        let kernel_batch = &mut receiver.kernel_batch;
        let room = limit - count;
        let got = self
            .kernel
            .recv_batch(kernel_batch, &mut bufs[count..limit], Duration::ZERO)?;
        receiver.kernel_ready = got == room.min(kernel_batch.capacity());
        for received in &kernel_batch.received()[..got] {
            batch.push(*received);
        }
        self.rx_kernel.fetch_add(got as u64, Ordering::Relaxed);
        Ok(count + got)
    }

    /// The send path behind both `send` and `send_batch`.
    fn send_frames<'a, I>(&self, frames: I) -> Result<usize, IoError>
    where
        I: IntoIterator<Item = (Offload, &'a [u8])>,
    {
        let mut tx = self.lock_tx();
        let socket = self.tx_socket(&tx);
        let mut written = 0u32;
        let mut sent = 0usize;
        // Counted once per call: both packet threads send on every port, and a shared
        // counter touched per frame would bounce its cache line between them.
        let (mut via_xdp, mut via_kernel) = (0u64, 0u64);
        let fail = |sent: usize, call: &'static str, source: io::Error| IoError::BatchSend {
            sent,
            source: Box::new(IoError::Send {
                call,
                iface: self.iface.clone(),
                source,
            }),
        };
        let mut result = Ok(());
        for (offload, frame) in frames {
            if offload.needs_csum || offload.is_gso() {
                // Work left for the kernel: the packet socket's virtio-net header carries
                // it. What is queued on the ring goes first, to keep the order.
                if let Err(e) = tx.flush(socket, &mut written) {
                    result = Err(fail(sent, "sendto(AF_XDP)", e));
                    break;
                }
                if let Err(e) = self.kernel.send(&offload, frame) {
                    result = Err(IoError::BatchSend {
                        sent,
                        source: Box::new(e),
                    });
                    break;
                }
                via_kernel += 1;
                sent += 1;
                continue;
            }
            if frame.len() > self.max_tx_len || frame.is_empty() {
                result = Err(fail(
                    sent,
                    "AF_XDP send",
                    io::Error::from_raw_os_error(libc::EMSGSIZE),
                ));
                break;
            }
            let addr = match tx.free_frame(socket, &mut written) {
                Ok(addr) => addr,
                Err(e) => {
                    result = Err(fail(sent, "sendto(AF_XDP)", e));
                    break;
                }
            };
            tx.write(written, addr, frame);
            written += 1;
            sent += 1;
            via_xdp += 1;
        }
        self.tx_xdp.fetch_add(via_xdp, Ordering::Relaxed);
        self.tx_kernel.fetch_add(via_kernel, Ordering::Relaxed);
        // Frames accepted before a failure still go out.
        if let Err(e) = tx.flush(socket, &mut written) {
            if result.is_ok() {
                result = Err(fail(sent, "sendto(AF_XDP)", e));
            }
        }
        result.map(|()| sent)
    }
}

impl FrameIo for XdpPort {
    /// One frame through [`FrameIo::recv_batch`]. Allocates a one-slot batch per call:
    /// for tests and slow paths; the packet threads use `recv_batch`.
    fn recv(&self, buf: &mut [u8], timeout: Duration) -> Result<Option<Received>, IoError> {
        recv_one(self, buf, timeout)
    }

    /// Through an AF_XDP socket, or the packet socket when `offload` asks for work.
    fn send(&self, offload: &Offload, frame: &[u8]) -> Result<(), IoError> {
        match self.send_frames([(*offload, frame)]) {
            Ok(_) => Ok(()),
            Err(IoError::BatchSend { source, .. }) => Err(*source),
            Err(e) => Err(e),
        }
    }

    /// The XDP RX rings first, then (without waiting) the packet socket for the rest of
    /// the batch; one `poll` on all of them when all are empty. Received XDP frames carry
    /// [`Offload::NONE`] and a packet type derived from their destination MAC.
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
        let mut receiver = self.rx.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let count = self.take(&mut receiver, batch, bufs, limit)?;
            if count > 0 {
                return Ok(count);
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Ok(0);
            }
            let fds = self
                .sockets
                .iter()
                .map(AsFd::as_fd)
                .chain(iter::once(self.kernel.as_fd()));
            // The packet socket goes last, so the wait says whether it has frames.
            receiver.kernel_ready = wait_readable(fds, &self.iface, deadline)?;
        }
    }

    /// Copies the frames into transmit frames of the UMEM and kicks the kernel once per
    /// 32; frames that need GSO or a checksum go through the packet socket, in order.
    /// The `SendBatch` scratch is not needed.
    fn send_batch<'a, I>(&self, _batch: &mut SendBatch, frames: I) -> Result<usize, IoError>
    where
        I: IntoIterator<Item = (Offload, &'a [u8])>,
    {
        self.send_frames(frames)
    }
}

impl AsFd for XdpPort {
    /// The AF_XDP socket of queue 0 (readable when its RX ring holds frames).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sockets[0].as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<XdpPort>();
    }
}
