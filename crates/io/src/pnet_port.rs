//! [`PnetPort`]: frames received and sent through a `pnet_datalink` channel on one
//! interface — the simple, portable path the fast back ends are measured against
//! (`masqd --io pnet`).
//!
//! It is deliberately plain: pnet polls before every read and every write, so each frame
//! costs at least one syscall (two: `poll` then `recvfrom` or `sendto`) and nothing is
//! batched in the kernel. Comparing it with [`crate::PacketSocket`] and
//! [`crate::RingSocket`] shows what batching and rings buy.
//!
//! Invariants and limits:
//! - pnet has no virtio-net header, so every received frame's [`Offload`] is
//!   [`Offload::NONE`] and a frame that still needs segmentation or a checksum completed
//!   cannot be sent ([`IoError::Unsupported`]). The back end therefore needs MTU-sized,
//!   fully checksummed frames: GRO and LRO off on the director's interfaces, TSO, GSO and
//!   transmit checksum offload off on the senders (the lab's `MASQ_LAB_OFFLOADS=off`). A
//!   super-frame that arrives anyway is handed over whole (up to 128 KiB; longer ones are
//!   reported `truncated`) and the caller has to drop it;
//! - pnet's channel cannot tell frames this host sends from frames it receives (it drops
//!   `sll_pkttype`), and the kernel hands a packet socket every frame sent on its
//!   interface but those the socket sent itself: the host's own IP stack (ARP, health
//!   checks) and other sockets' frames come back. Frames whose source MAC is the
//!   interface's own are skipped and counted ([`PnetStats::outgoing_skipped`]); the
//!   packet type of the rest is derived from their destination MAC;
//! - no `unsafe`: the socket is created with `socket2` and handed to pnet by descriptor,
//!   and a duplicate of that descriptor is what `recv` waits on.

use std::io;
use std::iter;
use std::os::fd::{AsFd, IntoRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pnet_datalink::{Channel, ChannelType, DataLinkReceiver, DataLinkSender};
use socket2::Socket;

use crate::af_packet::UnboundSocket;
use crate::error::IoError;
use crate::iface::Interface;
use crate::offload::Offload;
use crate::socket::{PacketType, Received};
use crate::sys::packet::PACKET_QDISC_BYPASS;
use crate::wait::wait_readable;
use crate::FrameIo;

/// pnet's read and write buffers. A frame is read whole into the read buffer before it is
/// copied out, and pnet's `recvfrom` cuts a longer one silently, so the buffer holds the
/// largest classic GSO super-frame (64 KiB of IP and its Ethernet header) with room to
/// spare; a frame that fills it completely is reported `truncated`.
pub const PNET_BUFFER: usize = 128 << 10;

/// Options for [`PnetPort::open`].
#[derive(Clone, Debug, Default)]
pub struct PnetOptions {
    /// Receive buffer size in bytes, as [`crate::SocketOptions::recv_buffer`]. `None`
    /// keeps the system default.
    pub recv_buffer: Option<usize>,
    /// Skip the queueing discipline on transmit, as
    /// [`crate::SocketOptions::qdisc_bypass`].
    pub qdisc_bypass: bool,
}

/// Counters of frames the port dropped on its own (summed since it was opened).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PnetStats {
    /// Frames with the interface's own source MAC (sent by this host) that were skipped.
    pub outgoing_skipped: u64,
}

/// A `pnet_datalink` channel on one interface. See the module documentation.
///
/// `Send + Sync`: one thread receives, any number may send at the same time.
pub struct PnetPort {
    // pnet's halves take `&mut self`; `FrameIo` takes `&self`. Only the port's one packet
    // thread receives, so the receiver's lock is never contended; the sender's is shared
    // with the other side's packet thread and the housekeeping loop.
    receiver: Mutex<Box<dyn DataLinkReceiver>>,
    sender: Mutex<Box<dyn DataLinkSender>>,
    /// A duplicate of the channel's descriptor, to wait on for the caller's timeout: pnet
    /// waits only for the fixed `read_timeout` it was opened with, here zero.
    waker: Socket,
    iface: String,
    mac: [u8; 6],
    outgoing_skipped: AtomicU64,
}

impl std::fmt::Debug for PnetPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PnetPort")
            .field("iface", &self.iface)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl PnetPort {
    /// Opens a pnet channel on `iface` (looked up among pnet's interfaces by index, in the
    /// calling thread's network namespace) that receives every protocol.
    ///
    /// # Errors
    ///
    /// [`IoError::InterfaceNotFound`] when pnet does not list the interface;
    /// [`IoError::Socket`] without `CAP_NET_RAW`; [`IoError::SetSockOpt`] when the
    /// receive buffer size or `PACKET_QDISC_BYPASS` is refused; [`IoError::Pnet`] when
    /// duplicating the descriptor or `pnet_datalink::channel` (which binds the socket)
    /// fails.
    pub fn open(iface: &Interface, options: &PnetOptions) -> Result<PnetPort, IoError> {
        let name = &iface.name;
        let found = pnet_datalink::interfaces()
            .into_iter()
            .find(|candidate| candidate.index == iface.index)
            .ok_or_else(|| IoError::InterfaceNotFound(name.clone()))?;
        // Ours rather than one pnet opens itself, which would queue frames of every
        // interface until its bind() names this one (see UnboundSocket::new).
        let unbound = UnboundSocket::new(iface)?;
        if let Some(bytes) = options.recv_buffer {
            unbound.set_recv_buffer(bytes)?;
        }
        if options.qdisc_bypass {
            unbound.set("PACKET_QDISC_BYPASS", PACKET_QDISC_BYPASS, 1)?;
        }
        let socket = unbound.into_socket();
        let pnet_error = |call: &'static str| {
            let iface = name.clone();
            move |source: io::Error| IoError::Pnet {
                call,
                iface,
                source,
            }
        };
        let waker = socket.try_clone().map_err(pnet_error("dup"))?;
        let config = pnet_datalink::Config {
            read_buffer_size: PNET_BUFFER,
            write_buffer_size: PNET_BUFFER,
            // Zero: pnet only checks whether a frame is queued; `recv` does the waiting.
            read_timeout: Some(Duration::ZERO),
            channel_type: ChannelType::Layer2,
            // Like the other back ends: the frames the interface accepts, no more.
            promiscuous: false,
            // pnet owns the descriptor from here on and closes it (also on failure).
            socket_fd: Some(socket.into_raw_fd()),
            ..pnet_datalink::Config::default()
        };
        let (sender, receiver) = match pnet_datalink::channel(&found, config)
            .map_err(pnet_error("pnet_datalink::channel"))?
        {
            Channel::Ethernet(sender, receiver) => (sender, receiver),
            // The enum is non-exhaustive; Linux only ever makes Ethernet channels.
            _ => {
                return Err(pnet_error("pnet_datalink::channel")(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "not an Ethernet channel",
                )))
            }
        };
        Ok(PnetPort {
            receiver: Mutex::new(receiver),
            sender: Mutex::new(sender),
            waker,
            iface: name.clone(),
            mac: iface.mac,
            outgoing_skipped: AtomicU64::new(0),
        })
    }

    /// The name of the interface the port is on.
    pub fn interface(&self) -> &str {
        &self.iface
    }

    /// The frames this port dropped on its own.
    pub fn stats(&self) -> PnetStats {
        PnetStats {
            outgoing_skipped: self.outgoing_skipped.load(Ordering::Relaxed),
        }
    }

    /// Describes `frame` and copies it into `buf`, or `None` for a frame of our own.
    fn accept(&self, frame: &[u8], buf: &mut [u8]) -> Option<Received> {
        if frame.get(6..12) == Some(&self.mac[..]) {
            self.outgoing_skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let len = frame.len().min(buf.len());
        buf[..len].copy_from_slice(&frame[..len]);
        Some(Received {
            len,
            // pnet's recvfrom cut anything longer than its buffer without saying so.
            truncated: frame.len() > buf.len() || frame.len() >= PNET_BUFFER,
            offload: Offload::NONE,
            pkttype: PacketType::from_destination(frame, &self.mac),
        })
    }
}

impl FrameIo for PnetPort {
    /// Waits up to `timeout` (`Duration::MAX`: without limit) for one frame.
    ///
    /// Reads first and waits (`poll`) only when nothing is queued.
    fn recv(&self, buf: &mut [u8], timeout: Duration) -> Result<Option<Received>, IoError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut receiver = lock(&self.receiver);
        loop {
            match receiver.next() {
                Ok(frame) => {
                    if let Some(received) = self.accept(frame, buf) {
                        return Ok(Some(received));
                    }
                    continue;
                }
                // What pnet says when nothing is queued (its read timeout is zero).
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    ) => {}
                Err(source) => {
                    return Err(IoError::Recv {
                        call: "pnet next (poll, recvfrom)",
                        iface: self.iface.clone(),
                        source,
                    })
                }
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Ok(None);
            }
            wait_readable(iter::once(self.waker.as_fd()), &self.iface, deadline)?;
        }
    }

    /// Sends one complete frame.
    ///
    /// # Errors
    ///
    /// [`IoError::Unsupported`] for a frame that asks for GSO or a partial checksum to be
    /// completed (pnet cannot pass that on); [`IoError::Send`] when pnet's `poll` or
    /// `sendto` fails, e.g. `EMSGSIZE` for a frame over the MTU.
    fn send(&self, offload: &Offload, frame: &[u8]) -> Result<(), IoError> {
        let unsupported = |reason| IoError::Unsupported {
            call: "pnet send_to",
            iface: self.iface.clone(),
            reason,
        };
        if offload.is_gso() {
            return Err(unsupported(
                "the frame is a GSO super-frame and pnet has no virtio-net header to have it segmented (turn GRO/LRO off on the director, TSO/GSO off on the senders)",
            ));
        }
        if offload.needs_csum {
            return Err(unsupported(
                "the frame's checksum is partial and pnet has no virtio-net header to have it completed (turn transmit checksum offload off on the senders)",
            ));
        }
        let result = lock(&self.sender)
            .send_to(frame, None)
            .unwrap_or_else(|| Err(io::Error::other("pnet did not send the frame")));
        result.map_err(|source| IoError::Send {
            call: "pnet send_to (poll, sendto)",
            iface: self.iface.clone(),
            source,
        })
    }
}

/// A poisoned lock only means another thread panicked while sending or receiving; pnet's
/// halves hold no state that could be left half-changed.
fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PnetPort>();
    }
}
