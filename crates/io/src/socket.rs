//! [`PacketSocket`]: an `AF_PACKET` raw socket on one interface, with virtio-net headers.
//!
//! Invariants:
//! - every frame read or written is preceded on the socket by a `struct virtio_net_hdr`
//!   (`PACKET_VNET_HDR`), exposed as [`Offload`]; GSO super-frames and frames with partial
//!   checksums pass whole and the kernel finishes them on transmit;
//! - frames this host transmits on the interface (`PACKET_OUTGOING`) are never returned:
//!   `PACKET_IGNORE_OUTGOING` asks the kernel not to queue them, and the receive path drops
//!   any that still arrive, because the option stops applying in some setups (a socket in
//!   a `PACKET_FANOUT` group);
//! - `recv*` and `send*` allocate nothing; the batched forms make one syscall per batch.

use std::io;
use std::iter;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use socket2::Socket;

use crate::af_packet::{open_bound, PacketSetup};
use crate::error::IoError;
use crate::iface::Interface;
use crate::offload::Offload;
use crate::sys::packet::{self, RawFrame, RecvScratch, SendScratch};
use crate::wait::wait_readable;
use crate::FrameIo;

/// How a received frame reached the interface (`sll_pkttype`, `linux/if_packet.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// Addressed to this host's MAC.
    Host,
    /// Sent to the broadcast address.
    Broadcast,
    /// Sent to a multicast address.
    Multicast,
    /// Addressed to another host (the interface is promiscuous).
    OtherHost,
    /// Sent by this host (never returned by [`PacketSocket`] or [`crate::RingSocket`]).
    Outgoing,
    /// Any other value.
    Other(u8),
}

impl PacketType {
    pub(crate) fn from_raw(raw: u8) -> PacketType {
        match raw {
            0 => PacketType::Host,
            1 => PacketType::Broadcast,
            2 => PacketType::Multicast,
            3 => PacketType::OtherHost,
            packet::PACKET_OUTGOING => PacketType::Outgoing,
            other => PacketType::Other(other),
        }
    }

    /// The type the kernel would have reported for `frame` on an interface whose MAC is
    /// `own`, from its destination MAC: for the back ends that are not told (pnet, XDP).
    pub(crate) fn from_destination(frame: &[u8], own: &[u8; 6]) -> PacketType {
        match frame.get(..6) {
            Some(dst) if dst == [0xff; 6] => PacketType::Broadcast,
            Some(dst) if dst[0] & 1 == 1 => PacketType::Multicast,
            Some(dst) if dst == own => PacketType::Host,
            _ => PacketType::OtherHost,
        }
    }
}

/// What [`FrameIo::recv`] delivered: the frame is `buf[..len]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes of the frame in the buffer.
    pub len: usize,
    /// The frame was longer than the buffer and only `len` bytes of it were kept: it must
    /// not be forwarded.
    pub truncated: bool,
    /// Checksum and segmentation work left on the frame.
    pub offload: Offload,
    /// How the frame reached the interface.
    pub pkttype: PacketType,
}

/// Options for [`PacketSocket::open`].
#[derive(Clone, Debug, Default)]
pub struct SocketOptions {
    /// Send straight to the driver, skipping the queueing discipline
    /// (`PACKET_QDISC_BYPASS`): faster, but frames are then dropped instead of queued when
    /// the device is busy, and other packet sockets (tcpdump) no longer see them.
    pub qdisc_bypass: bool,
    /// Receive buffer size in bytes. Set with `SO_RCVBUFFORCE` so that
    /// `net.core.rmem_max` does not cap it, falling back to `SO_RCVBUF` without
    /// `CAP_NET_ADMIN`. `None` keeps the system default.
    pub recv_buffer: Option<usize>,
}

/// Counters of frames the socket dropped on its own (summed since it was opened).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Frames this host sent that reached the receive queue anyway and were skipped.
    pub outgoing_skipped: u64,
    /// Frames the kernel could not describe with a virtio-net header (a GSO type it has no
    /// virtio code for) and dropped while delivering (`recvmsg` failed with `EINVAL`).
    pub vnet_hdr_dropped: u64,
}

/// The kernel's own counters for the socket (`PACKET_STATISTICS`), since the previous read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Frames queued to the socket (including dropped ones).
    pub packets: u32,
    /// Frames dropped because the receive buffer was full.
    pub drops: u32,
}

/// Scratch space for [`FrameIo::recv_batch`]: the `recvmmsg` arrays and the results.
///
/// Owned by the receiving thread and reused for every call, so a call allocates nothing.
pub struct RecvBatch {
    raw: RecvScratch,
    received: Vec<Received>,
}

impl RecvBatch {
    /// Scratch for up to `capacity` frames per call (at least one).
    pub fn new(capacity: usize) -> RecvBatch {
        let raw = RecvScratch::new(capacity);
        let received = Vec::with_capacity(raw.capacity());
        RecvBatch { raw, received }
    }

    /// The most frames one call can return.
    pub fn capacity(&self) -> usize {
        self.raw.capacity()
    }

    /// What the last call received: entry `i` describes the frame in buffer `i`.
    pub fn received(&self) -> &[Received] {
        &self.received
    }

    pub(crate) fn clear(&mut self) {
        self.received.clear();
    }

    /// Empties the batch for a new receive into `buffers` buffers; returns how many
    /// frames it can take (the smaller of its capacity and the buffers).
    pub(crate) fn start(&mut self, buffers: usize) -> usize {
        self.clear();
        self.capacity().min(buffers)
    }

    /// Appends a result; never beyond `capacity`, so it never reallocates.
    pub(crate) fn push(&mut self, received: Received) {
        debug_assert!(self.received.len() < self.capacity());
        self.received.push(received);
    }
}

/// [`FrameIo::recv`] of a back end whose receive path is its `recv_batch`: one frame
/// through a one-slot batch, allocated per call, so for tests and slow paths only (the
/// packet threads use `recv_batch`).
pub(crate) fn recv_one(
    device: &impl FrameIo,
    buf: &mut [u8],
    timeout: Duration,
) -> Result<Option<Received>, IoError> {
    let mut batch = RecvBatch::new(1);
    let mut bufs = [buf];
    Ok(match device.recv_batch(&mut batch, &mut bufs, timeout)? {
        0 => None,
        _ => Some(batch.received()[0]),
    })
}

/// Scratch space for [`FrameIo::send_batch`]: the `sendmmsg` arrays.
///
/// Owned by the sending thread and reused for every call, so a call allocates nothing.
pub struct SendBatch {
    raw: SendScratch,
}

impl SendBatch {
    /// Scratch for up to `capacity` frames per `sendmmsg` (at least one); longer batches
    /// take several calls.
    pub fn new(capacity: usize) -> SendBatch {
        SendBatch {
            raw: SendScratch::new(capacity),
        }
    }

    /// Frames per `sendmmsg`.
    pub fn capacity(&self) -> usize {
        self.raw.capacity()
    }

    /// Sends every frame on `fd` (a `PACKET_VNET_HDR` socket bound to `iface`), each after
    /// its virtio-net header, with `sendmmsg`: shared by [`PacketSocket`] and
    /// [`crate::RingSocket`].
    pub(crate) fn send_all<'a, I>(
        &mut self,
        fd: BorrowedFd<'_>,
        iface: &str,
        frames: I,
    ) -> Result<usize, IoError>
    where
        I: IntoIterator<Item = (Offload, &'a [u8])>,
    {
        let frames = frames
            .into_iter()
            .map(|(offload, frame)| (offload.encode(), frame));
        self.raw
            .send_all(fd, frames)
            .map_err(|(sent, source)| IoError::BatchSend {
                sent,
                source: Box::new(IoError::Send {
                    call: "sendmmsg",
                    iface: iface.to_owned(),
                    source,
                }),
            })
    }
}

/// An `AF_PACKET` raw socket bound to one interface. See the module documentation.
///
/// `Send + Sync`: one thread receives, any number may send at the same time.
#[derive(Debug)]
pub struct PacketSocket {
    socket: Socket,
    iface: String,
    outgoing_skipped: AtomicU64,
    vnet_hdr_dropped: AtomicU64,
}

impl PacketSocket {
    /// Opens a socket on `iface` that receives every protocol (`ETH_P_ALL`).
    ///
    /// # Errors
    ///
    /// [`IoError::Socket`] without `CAP_NET_RAW`; [`IoError::SetSockOpt`] when an option
    /// is refused (`PACKET_VNET_HDR`, `PACKET_IGNORE_OUTGOING`, `PACKET_QDISC_BYPASS`,
    /// `SO_RCVBUF`); [`IoError::Bind`] when the interface is gone.
    pub fn open(iface: &Interface, options: &SocketOptions) -> Result<PacketSocket, IoError> {
        PacketSocket::open_with(iface, options, true)
    }

    /// The defensive outgoing filter can only be tested on a socket without
    /// `PACKET_IGNORE_OUTGOING`; nothing else opens one.
    pub(crate) fn open_with(
        iface: &Interface,
        options: &SocketOptions,
        ignore_outgoing: bool,
    ) -> Result<PacketSocket, IoError> {
        let setup = PacketSetup {
            ignore_outgoing,
            qdisc_bypass: options.qdisc_bypass,
            recv_buffer: options.recv_buffer,
            fanout_group: None,
        };
        let (socket, ()) = open_bound(iface, &setup, |_| Ok(()))?;
        Ok(PacketSocket {
            socket,
            iface: iface.name.clone(),
            outgoing_skipped: AtomicU64::new(0),
            vnet_hdr_dropped: AtomicU64::new(0),
        })
    }

    /// The name of the interface the socket is bound to.
    pub fn interface(&self) -> &str {
        &self.iface
    }

    /// The frames this socket dropped on its own.
    pub fn stats(&self) -> SocketStats {
        SocketStats {
            outgoing_skipped: self.outgoing_skipped.load(Ordering::Relaxed),
            vnet_hdr_dropped: self.vnet_hdr_dropped.load(Ordering::Relaxed),
        }
    }

    /// The kernel's counters since the previous call (the kernel resets them on read).
    ///
    /// # Errors
    ///
    /// [`IoError::GetSockOpt`] if `getsockopt(PACKET_STATISTICS)` fails.
    pub fn kernel_stats(&self) -> Result<KernelStats, IoError> {
        let (packets, drops) =
            packet::packet_statistics(self.socket.as_fd()).map_err(|source| {
                IoError::GetSockOpt {
                    option: "PACKET_STATISTICS",
                    iface: self.iface.clone(),
                    source,
                }
            })?;
        Ok(KernelStats { packets, drops })
    }

    /// Sorts one raw frame: `None` for one to skip (counted), else its description.
    fn accept(&self, raw: &RawFrame, buf_len: usize) -> Option<Received> {
        if raw.pkttype == packet::PACKET_OUTGOING {
            self.outgoing_skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Received {
            len: raw.wire_len.min(buf_len),
            truncated: raw.truncated || raw.wire_len > buf_len,
            offload: Offload::decode(&raw.vnet_hdr),
            pkttype: PacketType::from_raw(raw.pkttype),
        })
    }

    /// Sorts a receive error: `Ok(true)` to read again at once, `Ok(false)` to wait.
    fn recv_error(&self, call: &'static str, source: io::Error) -> Result<bool, IoError> {
        match source.raw_os_error() {
            // Nothing queued.
            Some(libc::EAGAIN) => Ok(false),
            // The kernel dequeued a frame it could not describe in a virtio-net header and
            // dropped it (virtio_net_hdr_from_skb failed); the socket is fine.
            Some(libc::EINVAL) => {
                self.vnet_hdr_dropped.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            _ => Err(IoError::Recv {
                call,
                iface: self.iface.clone(),
                source,
            }),
        }
    }
}

impl FrameIo for PacketSocket {
    /// Waits up to `timeout` (`Duration::MAX`: without limit) for one frame.
    ///
    /// Reads first and waits (`poll`) only when nothing is queued, so under load a frame
    /// costs one syscall.
    fn recv(&self, buf: &mut [u8], timeout: Duration) -> Result<Option<Received>, IoError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            match packet::recv_frame(self.socket.as_fd(), buf) {
                Ok(raw) => {
                    if let Some(received) = self.accept(&raw, buf.len()) {
                        return Ok(Some(received));
                    }
                    continue;
                }
                Err(source) => {
                    if self.recv_error("recvmsg", source)? {
                        continue;
                    }
                }
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Ok(None);
            }
            wait_readable(iter::once(self.socket.as_fd()), &self.iface, deadline)?;
        }
    }

    fn send(&self, offload: &Offload, frame: &[u8]) -> Result<(), IoError> {
        send_frame(self.socket.as_fd(), &self.iface, offload, frame)
    }

    /// One `recvmmsg` for everything queued (up to the capacity), after a `poll` only when
    /// nothing was. Frames this host sent are dropped and the remaining buffers swapped
    /// forward.
    fn recv_batch<B: AsMut<[u8]>>(
        &self,
        batch: &mut RecvBatch,
        bufs: &mut [B],
        timeout: Duration,
    ) -> Result<usize, IoError> {
        batch.clear();
        if bufs.is_empty() {
            return Ok(0);
        }
        let deadline = Instant::now().checked_add(timeout);
        loop {
            // As in `recv`: read first, wait only when nothing is queued.
            match batch.raw.recv(self.socket.as_fd(), bufs) {
                Ok(count) => {
                    for i in 0..count {
                        let raw = batch.raw.frame(i);
                        let kept = batch.received.len();
                        if let Some(received) = self.accept(&raw, bufs[i].as_mut().len()) {
                            // Keep the result contiguous: move buffer i to the first free
                            // slot (a handle swap for Vec or slice buffers).
                            bufs.swap(kept, i);
                            batch.push(received);
                        }
                    }
                    if !batch.received.is_empty() {
                        return Ok(batch.received.len());
                    }
                    // Only frames of our own: read again at once.
                    continue;
                }
                Err(source) => {
                    if self.recv_error("recvmmsg", source)? {
                        continue;
                    }
                }
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Ok(0);
            }
            wait_readable(iter::once(self.socket.as_fd()), &self.iface, deadline)?;
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

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// One `sendmsg` of `frame` behind its virtio-net header (shared by [`PacketSocket`] and
/// [`crate::RingSocket`]).
pub(crate) fn send_frame(
    fd: BorrowedFd<'_>,
    iface: &str,
    offload: &Offload,
    frame: &[u8],
) -> Result<(), IoError> {
    packet::send_frame(fd, &offload.encode(), frame).map_err(|source| IoError::Send {
        call: "sendmsg",
        iface: iface.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_types() {
        assert_eq!(PacketType::from_raw(0), PacketType::Host);
        assert_eq!(PacketType::from_raw(1), PacketType::Broadcast);
        assert_eq!(PacketType::from_raw(3), PacketType::OtherHost);
        assert_eq!(PacketType::from_raw(4), PacketType::Outgoing);
        assert_eq!(PacketType::from_raw(7), PacketType::Other(7));
    }

    #[test]
    fn packet_type_follows_the_destination() {
        const OWN: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
        let frame = |dst: [u8; 6]| {
            let mut frame = dst.to_vec();
            frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x88, 0xb5, 1, 2, 3, 4]);
            frame
        };
        let of = |dst| PacketType::from_destination(&frame(dst), &OWN);
        assert_eq!(of(OWN), PacketType::Host);
        assert_eq!(of([0xff; 6]), PacketType::Broadcast);
        assert_eq!(of([0x01, 0, 0x5e, 0, 0, 1]), PacketType::Multicast);
        assert_eq!(of([0x02, 0, 0, 0, 0, 9]), PacketType::OtherHost);
        assert_eq!(
            PacketType::from_destination(&[0x02], &OWN),
            PacketType::OtherHost
        );
    }

    #[test]
    fn socket_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        fn assert_send<T: Send>() {}
        assert_send_sync::<PacketSocket>();
        assert_send::<RecvBatch>();
        assert_send::<SendBatch>();
    }
}
