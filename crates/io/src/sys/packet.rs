//! `AF_PACKET` sockets: binding, the kernel's counters, and frames in and out with their
//! virtio-net header, one per call (`recvmsg`/`sendmsg`) or batched (`recvmmsg`/`sendmmsg`).

use std::ffi::c_int;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;

use crate::offload::VNET_HDR_LEN;

// From include/uapi/linux/if_packet.h; named here because not every libc version exports
// them for every target.
pub(crate) const PACKET_STATISTICS: c_int = 6;
pub(crate) const PACKET_COPY_THRESH: c_int = 7;
pub(crate) const PACKET_VNET_HDR: c_int = 15;
pub(crate) const PACKET_FANOUT: c_int = 18;
pub(crate) const PACKET_QDISC_BYPASS: c_int = 20;
pub(crate) const PACKET_IGNORE_OUTGOING: c_int = 23;
pub(crate) const PACKET_OUTGOING: u8 = 4;
pub(crate) const PACKET_FANOUT_HASH: u32 = 0;
pub(crate) const PACKET_FANOUT_FLAG_IGNORE_OUTGOING: u32 = 0x4000;

/// Binds an `AF_PACKET` socket to one interface and protocol (host order, e.g. `ETH_P_ALL`).
pub(crate) fn bind_packet(fd: BorrowedFd<'_>, ifindex: u32, protocol: u16) -> io::Result<()> {
    let ifindex = c_int::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index too big"))?;
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as libc::sa_family_t;
    addr.sll_protocol = protocol.to_be();
    addr.sll_ifindex = ifindex;
    // SAFETY: `addr` is a live sockaddr_ll and the length passed is exactly its size.
    syscall!(bind(
        fd.as_raw_fd(),
        ptr::from_ref(&addr).cast(),
        mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
    ))?;
    Ok(())
}

/// Kernel counters of a packet socket since the last read (reading resets them).
pub(crate) fn packet_statistics(fd: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `stats` and `len` are live and `len` is the size of `stats`; the kernel
    // writes at most `len` bytes.
    syscall!(getsockopt(
        fd.as_raw_fd(),
        libc::SOL_PACKET,
        PACKET_STATISTICS,
        ptr::from_mut(&mut stats).cast(),
        &mut len,
    ))?;
    Ok((stats.tp_packets, stats.tp_drops))
}

/// One frame as `recvmsg`/`recvmmsg` reported it, before decoding.
pub(crate) struct RawFrame {
    /// The virtio-net header the kernel wrote in front of the frame.
    pub vnet_hdr: [u8; VNET_HDR_LEN],
    /// The frame's full length (without the header), even when the buffer was shorter.
    pub wire_len: usize,
    /// The buffer was shorter than the frame.
    pub truncated: bool,
    /// `sll_pkttype`: PACKET_HOST, PACKET_OUTGOING, ...
    pub pkttype: u8,
}

/// Receives one frame without waiting: the virtio-net header into its own buffer and the
/// frame into `buf`, so the frame is never copied twice.
///
/// `MSG_TRUNC` makes the kernel return the frame's full length, which tells a truncated
/// frame apart. Returns `WouldBlock` when no frame is queued.
pub(crate) fn recv_frame(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<RawFrame> {
    let mut vnet_hdr = [0u8; VNET_HDR_LEN];
    let mut iov = [
        libc::iovec {
            iov_base: vnet_hdr.as_mut_ptr().cast(),
            iov_len: VNET_HDR_LEN,
        },
        libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        },
    ];
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
    // SAFETY: msghdr is plain old data (pointers may be null); all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = ptr::from_mut(&mut addr).cast();
    msg.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    loop {
        // SAFETY: `msg` points to `addr` and to two iovecs over `vnet_hdr` and `buf`, all
        // live and exclusively borrowed for this call, with their true lengths.
        match syscall!(recvmsg(
            fd.as_raw_fd(),
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_TRUNC
        )) {
            Ok(n) => {
                return Ok(RawFrame {
                    vnet_hdr,
                    wire_len: (n as usize).saturating_sub(VNET_HDR_LEN),
                    truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
                    pkttype: addr.sll_pkttype,
                })
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
}

/// Sends one frame preceded by its virtio-net header, with a two-element iovec so the
/// frame is not copied into a staging buffer.
pub(crate) fn send_frame(
    fd: BorrowedFd<'_>,
    vnet_hdr: &[u8; VNET_HDR_LEN],
    frame: &[u8],
) -> io::Result<()> {
    let mut iov = [
        libc::iovec {
            // The kernel only reads from a send iovec; the `*mut` is the C signature.
            iov_base: vnet_hdr.as_ptr().cast_mut().cast(),
            iov_len: VNET_HDR_LEN,
        },
        libc::iovec {
            iov_base: frame.as_ptr().cast_mut().cast(),
            iov_len: frame.len(),
        },
    ];
    // SAFETY: msghdr is plain old data (pointers may be null); all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    loop {
        // SAFETY: `msg` points to two iovecs over `vnet_hdr` and `frame`, live for this
        // call, with their true lengths; the kernel only reads them. No address: the
        // socket is bound.
        match syscall!(sendmsg(fd.as_raw_fd(), &msg, 0)) {
            Ok(n) if n as usize == VNET_HDR_LEN + frame.len() => return Ok(()),
            // AF_PACKET sends a frame whole or not at all; anything else is a kernel change
            // we must not paper over.
            Ok(_) => return Err(io::Error::new(io::ErrorKind::WriteZero, "short send")),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
}

/// The `recvmmsg` arrays, allocated once and reused by every call.
///
/// The pointers inside are rewritten at the start of every call from the buffers of that
/// call, and are never read by Rust code.
pub(crate) struct RecvScratch {
    vnet_hdrs: Box<[[u8; VNET_HDR_LEN]]>,
    addrs: Box<[libc::sockaddr_ll]>,
    iovs: Box<[[libc::iovec; 2]]>,
    msgs: Box<[libc::mmsghdr]>,
}

// SAFETY: the raw pointers in `iovs` and `msgs` are only meaningful during one call of
// `recv`, which borrows `self` exclusively; between calls they are dead values that no code
// dereferences, so moving the scratch to another thread is sound.
unsafe impl Send for RecvScratch {}

impl RecvScratch {
    pub(crate) fn new(capacity: usize) -> RecvScratch {
        let capacity = capacity.max(1);
        // SAFETY: sockaddr_ll, iovec and mmsghdr are plain old data; all-zero (null
        // pointers, zero lengths) is a valid value for each.
        let (addr, iov, msg) = unsafe {
            (
                mem::zeroed::<libc::sockaddr_ll>(),
                mem::zeroed::<libc::iovec>(),
                mem::zeroed::<libc::mmsghdr>(),
            )
        };
        RecvScratch {
            vnet_hdrs: vec![[0; VNET_HDR_LEN]; capacity].into_boxed_slice(),
            addrs: vec![addr; capacity].into_boxed_slice(),
            iovs: vec![[iov; 2]; capacity].into_boxed_slice(),
            msgs: vec![msg; capacity].into_boxed_slice(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.msgs.len()
    }

    /// Receives up to `min(capacity, bufs.len())` frames already queued, in one `recvmmsg`,
    /// without waiting. Returns how many; `WouldBlock` when none is queued.
    pub(crate) fn recv<B: AsMut<[u8]>>(
        &mut self,
        fd: BorrowedFd<'_>,
        bufs: &mut [B],
    ) -> io::Result<usize> {
        let count = self.capacity().min(bufs.len());
        for (i, buf) in bufs.iter_mut().take(count).enumerate() {
            let buf = buf.as_mut();
            self.iovs[i] = [
                libc::iovec {
                    iov_base: self.vnet_hdrs[i].as_mut_ptr().cast(),
                    iov_len: VNET_HDR_LEN,
                },
                libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: buf.len(),
                },
            ];
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = ptr::from_mut(&mut self.addrs[i]).cast();
            hdr.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            hdr.msg_iov = self.iovs[i].as_mut_ptr();
            hdr.msg_iovlen = 2;
            hdr.msg_control = ptr::null_mut();
            hdr.msg_controllen = 0;
            hdr.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
        loop {
            // SAFETY: the first `count` mmsghdrs point to sockaddr_lls, iovecs and headers
            // owned by `self` and to the caller's buffers, all exclusively borrowed for this
            // call, with their true lengths. No timeout pointer: MSG_DONTWAIT returns at once.
            match syscall!(recvmmsg(
                fd.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                count as _,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                ptr::null_mut(),
            )) {
                Ok(n) => return Ok(n as usize),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Frame `i` of the last `recv`; `i` must be below what it returned.
    pub(crate) fn frame(&self, i: usize) -> RawFrame {
        let msg = &self.msgs[i];
        RawFrame {
            vnet_hdr: self.vnet_hdrs[i],
            wire_len: (msg.msg_len as usize).saturating_sub(VNET_HDR_LEN),
            truncated: msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            pkttype: self.addrs[i].sll_pkttype,
        }
    }
}

/// The `sendmmsg` arrays, allocated once and reused by every call.
pub(crate) struct SendScratch {
    vnet_hdrs: Box<[[u8; VNET_HDR_LEN]]>,
    iovs: Box<[[libc::iovec; 2]]>,
    msgs: Box<[libc::mmsghdr]>,
}

// SAFETY: as for RecvScratch: the pointers are only meaningful within one `send_all` call,
// which borrows `self` exclusively, and are never dereferenced by Rust code.
unsafe impl Send for SendScratch {}

impl SendScratch {
    pub(crate) fn new(capacity: usize) -> SendScratch {
        let capacity = capacity.max(1);
        // SAFETY: iovec and mmsghdr are plain old data; all-zero is a valid value.
        let (iov, msg) = unsafe { (mem::zeroed::<libc::iovec>(), mem::zeroed::<libc::mmsghdr>()) };
        SendScratch {
            vnet_hdrs: vec![[0; VNET_HDR_LEN]; capacity].into_boxed_slice(),
            iovs: vec![[iov; 2]; capacity].into_boxed_slice(),
            msgs: vec![msg; capacity].into_boxed_slice(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.msgs.len()
    }

    /// Sends every frame, `capacity` per `sendmmsg`. On failure returns how many frames
    /// were sent before the one that failed, and its error.
    pub(crate) fn send_all<'a, I>(
        &mut self,
        fd: BorrowedFd<'_>,
        frames: I,
    ) -> Result<usize, (usize, io::Error)>
    where
        I: Iterator<Item = ([u8; VNET_HDR_LEN], &'a [u8])>,
    {
        let mut frames = frames.peekable();
        let mut sent = 0;
        while frames.peek().is_some() {
            let mut count = 0;
            while count < self.capacity() {
                let Some((vnet_hdr, frame)) = frames.next() else {
                    break;
                };
                self.vnet_hdrs[count] = vnet_hdr;
                self.iovs[count] = [
                    libc::iovec {
                        // The kernel only reads from a send iovec.
                        iov_base: self.vnet_hdrs[count].as_mut_ptr().cast(),
                        iov_len: VNET_HDR_LEN,
                    },
                    libc::iovec {
                        iov_base: frame.as_ptr().cast_mut().cast(),
                        iov_len: frame.len(),
                    },
                ];
                let hdr = &mut self.msgs[count].msg_hdr;
                hdr.msg_name = ptr::null_mut();
                hdr.msg_namelen = 0;
                hdr.msg_iov = self.iovs[count].as_mut_ptr();
                hdr.msg_iovlen = 2;
                hdr.msg_control = ptr::null_mut();
                hdr.msg_controllen = 0;
                hdr.msg_flags = 0;
                count += 1;
            }
            // sendmmsg may stop early (it reports how many went); resume after them.
            let mut done = 0;
            while done < count {
                // SAFETY: mmsghdrs `done..count` point to headers owned by `self` and to
                // frames borrowed for 'a, which outlives this call; lengths are true. The
                // kernel only reads them.
                match syscall!(sendmmsg(
                    fd.as_raw_fd(),
                    self.msgs[done..].as_mut_ptr(),
                    (count - done) as _,
                    0,
                )) {
                    Ok(0) => {
                        let err = io::Error::new(io::ErrorKind::WriteZero, "sendmmsg sent nothing");
                        return Err((sent + done, err));
                    }
                    Ok(n) => done += n as usize,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => return Err((sent + done, err)),
                }
            }
            sent += count;
        }
        Ok(sent)
    }
}
