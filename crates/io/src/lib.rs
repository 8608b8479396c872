//! masq's packet I/O: the only crate that talks to the operating system for packets.
//!
//! - [`PacketSocket`]: an `AF_PACKET` socket bound to one interface, with `PACKET_VNET_HDR`
//!   so GSO super-frames and frames with partial checksums travel whole, described by an
//!   [`Offload`]; single and batched (`recvmmsg`/`sendmmsg`) receive and transmit.
//! - [`RingSocket`]: the same on a TPACKET_V2 or V3 receive ring, optionally one of several
//!   members of a `PACKET_FANOUT` group (one per worker thread); `sendmmsg` to transmit.
//! - [`PnetPort`]: a `pnet_datalink` channel, one `poll` and `recvfrom`/`sendto` per
//!   frame and no offload metadata (MTU-sized frames only): the simple, portable back end
//!   the fast ones are compared against.
//! - [`Interface`]: index, MAC, MTU and IPv4 addresses of a network interface.
//! - [`host`]: the host checks the daemon makes at start (forwarding, NIC offloads).
//! - [`FrameIo`]: the small device trait the worker loop runs over; implemented by
//!   [`PacketSocket`], [`RingSocket`], [`PnetPort`], [`XdpPort`], and by the in-memory
//!   [`MemoryPort`] for tests.
//! - [`XdpPort`]: an `AF_XDP` back end (copy mode) with a small XDP program, assembled in
//!   Rust, that steals only the service traffic and passes the rest (ARP, the host's own
//!   traffic) to the kernel, where the port's [`PacketSocket`] still reads it.
//!
//! Invariants: all `unsafe` code lives in the private `sys` module; the receive and send
//! paths allocate nothing and, but for [`PnetPort`] (there to be compared), make one
//! syscall per batch, not per frame, when batched.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod af_packet;
mod bpf;
mod error;
pub mod host;
mod iface;
mod memory;
mod offload;
mod pnet_port;
mod ring;
mod socket;
#[allow(unsafe_code)]
mod sys;
mod wait;
mod xdp;

#[cfg(test)]
mod netns_lab;
#[cfg(test)]
mod netns_tests;
#[cfg(test)]
mod pnet_netns_tests;
#[cfg(test)]
mod xdp_netns_tests;

use std::time::Duration;

pub use error::IoError;
pub use iface::Interface;
pub use memory::{MemoryLink, MemoryPort};
pub use offload::{GsoType, Offload, VNET_HDR_LEN};
pub use pnet_port::{PnetOptions, PnetPort, PnetStats, PNET_BUFFER};
pub use ring::{RingFormat, RingOptions, RingSocket, RingStats, V2_SLOT};
pub use socket::{
    KernelStats, PacketSocket, PacketType, Received, RecvBatch, SendBatch, SocketOptions,
    SocketStats,
};
pub use xdp::{XdpMode, XdpOptions, XdpPort, XdpSide, XdpStats};

/// A device that receives and sends whole Ethernet frames, each with its [`Offload`]
/// description. The worker loop is written against this trait so it runs unchanged over
/// every back end and over an in-memory [`MemoryPort`].
///
/// Methods take `&self`: one device is shared by the worker threads (one receives, all may
/// send).
pub trait FrameIo: Send + Sync {
    /// Waits up to `timeout` for one frame and copies it to `buf[..len]`.
    ///
    /// Returns `Ok(None)` when no frame arrived in time.
    ///
    /// # Errors
    ///
    /// The device failed (for a socket: the `poll`/`recvmsg` error).
    fn recv(&self, buf: &mut [u8], timeout: Duration) -> Result<Option<Received>, IoError>;

    /// Sends one frame; `offload` tells the device which checksum and segmentation work is
    /// still to be done on it.
    ///
    /// # Errors
    ///
    /// The device refused the frame (for a socket: the `sendmsg` error).
    fn send(&self, offload: &Offload, frame: &[u8]) -> Result<(), IoError>;

    /// Waits up to `timeout` for at least one frame, then takes every frame already waiting,
    /// up to `batch.capacity()` and `bufs.len()`. Returns how many: frame `i` is at
    /// `bufs[i]`, described by `batch.received()[i]`. `Ok(0)` means the timeout passed.
    ///
    /// Buffers may be reordered (swapped) within `bufs` to keep the result contiguous, so
    /// `B` should be a cheap handle such as `Vec<u8>` or `&mut [u8]`.
    ///
    /// The default implementation calls [`FrameIo::recv`] once per frame.
    ///
    /// # Errors
    ///
    /// As [`FrameIo::recv`].
    fn recv_batch<B: AsMut<[u8]>>(
        &self,
        batch: &mut RecvBatch,
        bufs: &mut [B],
        timeout: Duration,
    ) -> Result<usize, IoError>
    where
        Self: Sized,
    {
        let limit = batch.start(bufs.len());
        let mut wait = timeout;
        while batch.received().len() < limit {
            let slot = batch.received().len();
            match self.recv(bufs[slot].as_mut(), wait)? {
                Some(received) => batch.push(received),
                None => break,
            }
            // Only the first frame is waited for; the rest are what is already queued.
            wait = Duration::ZERO;
        }
        Ok(batch.received().len())
    }

    /// Sends every frame of `frames`, in order. Returns how many were sent (all of them).
    ///
    /// The default implementation calls [`FrameIo::send`] once per frame.
    ///
    /// # Errors
    ///
    /// [`IoError::BatchSend`] when a frame fails: it carries how many frames were sent
    /// before it and the frame's own error. The failed frame and those after it were not
    /// sent; a caller may skip the failed one and send the rest again.
    fn send_batch<'a, I>(&self, batch: &mut SendBatch, frames: I) -> Result<usize, IoError>
    where
        Self: Sized,
        I: IntoIterator<Item = (Offload, &'a [u8])>,
    {
        // The scratch space is only needed by backends that batch in the kernel.
        let _ = batch;
        let mut sent = 0;
        for (offload, frame) in frames {
            self.send(&offload, frame)
                .map_err(|source| IoError::BatchSend {
                    sent,
                    source: Box::new(source),
                })?;
            sent += 1;
        }
        Ok(sent)
    }
}
