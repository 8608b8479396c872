//! The only module with `unsafe` code: thin wrappers over the libc calls masq needs.
//!
//! Every function takes Rust types (borrowed file descriptors, slices) and returns
//! `io::Result`; the callers add which interface and operation failed. Pointers handed to
//! the kernel are built from live borrows within the same call, and nothing here keeps a
//! reference to caller memory after returning.

use std::ffi::c_int;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::offload::VNET_HDR_LEN;

/// Calls a libc function and turns the C convention (-1 and `errno`) into `io::Error`.
///
/// The call itself is `unsafe`: every use carries a `// SAFETY:` comment stating why its
/// arguments are valid.
macro_rules! syscall {
    ($fn: ident ( $($arg: expr),* $(,)* ) ) => {{
        // SAFETY: upheld by the caller, see the comment at each use.
        let res = unsafe { libc::$fn($($arg, )*) };
        if res == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

// From include/uapi/linux/if_packet.h; named here because not every libc version exports
// them for every target.
pub(crate) const PACKET_STATISTICS: c_int = 6;
pub(crate) const PACKET_VNET_HDR: c_int = 15;
pub(crate) const PACKET_QDISC_BYPASS: c_int = 20;
pub(crate) const PACKET_IGNORE_OUTGOING: c_int = 23;
pub(crate) const PACKET_OUTGOING: u8 = 4;

// From include/uapi/linux/ethtool.h: the legacy one-value get/set commands.
pub(crate) const ETHTOOL_GRXCSUM: u32 = 0x14;
pub(crate) const ETHTOOL_SRXCSUM: u32 = 0x15;
pub(crate) const ETHTOOL_GTXCSUM: u32 = 0x16;
pub(crate) const ETHTOOL_STXCSUM: u32 = 0x17;
pub(crate) const ETHTOOL_GTSO: u32 = 0x1e;
pub(crate) const ETHTOOL_STSO: u32 = 0x1f;
pub(crate) const ETHTOOL_GGSO: u32 = 0x23;
pub(crate) const ETHTOOL_SGSO: u32 = 0x24;
pub(crate) const ETHTOOL_GFLAGS: u32 = 0x25;
pub(crate) const ETHTOOL_SFLAGS: u32 = 0x26;
pub(crate) const ETHTOOL_GGRO: u32 = 0x2b;
pub(crate) const ETHTOOL_SGRO: u32 = 0x2c;
/// LRO is not a command of its own but a bit of ETHTOOL_GFLAGS/SFLAGS.
pub(crate) const ETH_FLAG_LRO: u32 = 1 << 15;

/// Sets an `int`-valued socket option.
pub(crate) fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: c_int,
    name: c_int,
    value: c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and the length passed is exactly its size.
    syscall!(setsockopt(
        fd.as_raw_fd(),
        level,
        name,
        ptr::from_ref(&value).cast(),
        mem::size_of::<c_int>() as libc::socklen_t,
    ))?;
    Ok(())
}

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

/// Waits up to `timeout_ms` (-1: forever) until `fd` is readable (or has an error pending).
///
/// Returns on timeout and when a signal interrupted the wait too; the caller reads and
/// re-checks its deadline either way.
pub(crate) fn poll_readable(fd: BorrowedFd<'_>, timeout_ms: c_int) -> io::Result<()> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one live pollfd and the count passed is 1.
    match syscall!(poll(&mut pfd, 1, timeout_ms)) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(()),
        Err(err) => Err(err),
    }
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

/// Reads an interface's MTU with `SIOCGIFMTU`. `name` must be a valid interface name
/// (checked by the caller: 1 to 15 bytes, no NUL).
pub(crate) fn interface_mtu(fd: BorrowedFd<'_>, name: &str) -> io::Result<u32> {
    let mut req = ifreq_for(name);
    // SAFETY: `req` is a live ifreq with a NUL-terminated name; SIOCGIFMTU writes only
    // `ifru_mtu` inside it.
    syscall!(ioctl(
        fd.as_raw_fd(),
        libc::SIOCGIFMTU as _,
        ptr::from_mut(&mut req)
    ))?;
    // SAFETY: SIOCGIFMTU succeeded, so the kernel stored the MTU in `ifru_mtu`.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "negative MTU"))
}

/// Runs one legacy `SIOCETHTOOL` command that carries a single `u32` (`struct
/// ethtool_value`), and returns the value the kernel left in it.
pub(crate) fn ethtool_value(
    fd: BorrowedFd<'_>,
    name: &str,
    cmd: u32,
    data: u32,
) -> io::Result<u32> {
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    let mut value = EthtoolValue { cmd, data };
    let mut req = ifreq_for(name);
    req.ifr_ifru.ifru_data = ptr::from_mut(&mut value).cast();
    // SAFETY: `req` is a live ifreq with a NUL-terminated name whose data pointer points to
    // `value`, a live `struct ethtool_value` (two u32, C layout); the kernel reads and
    // writes only those 8 bytes for the one-value commands.
    syscall!(ioctl(
        fd.as_raw_fd(),
        libc::SIOCETHTOOL as _,
        ptr::from_mut(&mut req)
    ))?;
    Ok(value.data)
}

fn ifreq_for(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data (a name and a union of integers and pointers);
    // all-zero is a valid value, and it leaves the name NUL-terminated.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    // The caller checked the name fits with its NUL (at most IFNAMSIZ - 1 bytes).
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    req
}

/// Moves the calling thread into the network namespace `/run/netns/<name>` (as made by
/// `ip netns add`). Sockets the thread creates afterwards belong to that namespace.
#[cfg(test)]
pub(crate) fn enter_netns(name: &str) -> io::Result<()> {
    let file = std::fs::File::open(format!("/run/netns/{name}"))?;
    // SAFETY: `file` is an open namespace file; setns only changes this thread's namespace.
    syscall!(setns(file.as_raw_fd(), libc::CLONE_NEWNET))?;
    Ok(())
}

/// Whether the process runs as root (the namespace tests need it).
#[cfg(test)]
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

// ---- TPACKET_V2 and TPACKET_V3 receive rings ----

// From include/uapi/linux/if_packet.h.
pub(crate) const PACKET_RX_RING: c_int = 5;
pub(crate) const PACKET_VERSION: c_int = 10;
pub(crate) const PACKET_FANOUT: c_int = 18;
pub(crate) const TPACKET_V2: c_int = 1;
pub(crate) const PACKET_COPY_THRESH: c_int = 7;
pub(crate) const TPACKET_V3: c_int = 2;
pub(crate) const PACKET_FANOUT_HASH: u32 = 0;
pub(crate) const PACKET_FANOUT_FLAG_IGNORE_OUTGOING: u32 = 0x4000;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
/// V2: the frame did not fit its slot; the slot holds its head and the whole frame waits
/// on the socket's receive queue (with `PACKET_COPY_THRESH` set).
const TP_STATUS_COPY: u32 = 2;

// Offsets in `struct tpacket_block_desc` (version, offset_to_priv, then the
// `tpacket_hdr_v1` at 8) and in `struct tpacket3_hdr` followed by its `sockaddr_ll`
// (at TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) = 48).
const BLOCK_STATUS_AT: usize = 8;
const BLOCK_NUM_PKTS_AT: usize = 12;
const BLOCK_FIRST_PKT_AT: usize = 16;
const PKT_NEXT_OFFSET_AT: usize = 0;
const PKT_SNAPLEN_AT: usize = 12;
const PKT_LEN_AT: usize = 16;
const PKT_MAC_AT: usize = 24;
const PKT_SLL_PKTTYPE_AT: usize = 48 + 10;
/// The frame header plus its `sockaddr_ll`: a frame's MAC offset is never below this.
const PKT_HDR_LEN: usize = 48 + mem::size_of::<libc::sockaddr_ll>();

/// `struct tpacket_req3`.
#[repr(C)]
struct TpacketReq3 {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
    tp_retire_blk_tov: u32,
    tp_sizeof_priv: u32,
    tp_feature_req_word: u32,
}

/// Size and count of the blocks of a TPACKET_V3 receive ring.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RingGeometry {
    /// Bytes per block: a multiple of the page size, big enough for the largest frame.
    pub block_size: u32,
    /// Blocks in the ring.
    pub block_nr: u32,
    /// Milliseconds after which the kernel hands over a block that is not full.
    pub retire_ms: u32,
}

/// `setsockopt(PACKET_RX_RING)` with a `tpacket_req3` (the socket must be TPACKET_V3).
pub(crate) fn set_rx_ring_v3(fd: BorrowedFd<'_>, geometry: RingGeometry) -> io::Result<()> {
    // The frame size only sets how many frame slots the kernel counts; V3 packs frames of
    // any length into a block. It must be TPACKET_ALIGNMENT-aligned and divide the block.
    const FRAME_SIZE: u32 = 2048;
    let req = TpacketReq3 {
        tp_block_size: geometry.block_size,
        tp_block_nr: geometry.block_nr,
        tp_frame_size: FRAME_SIZE,
        tp_frame_nr: geometry.block_size / FRAME_SIZE * geometry.block_nr,
        tp_retire_blk_tov: geometry.retire_ms,
        tp_sizeof_priv: 0,
        tp_feature_req_word: 0,
    };
    // SAFETY: `req` is a live tpacket_req3 (C layout) and the length passed is its size.
    syscall!(setsockopt(
        fd.as_raw_fd(),
        libc::SOL_PACKET,
        PACKET_RX_RING,
        ptr::from_ref(&req).cast(),
        mem::size_of::<TpacketReq3>() as libc::socklen_t,
    ))?;
    Ok(())
}

/// One frame of a retired block, as the kernel described it in its `tpacket3_hdr`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RingFrame {
    /// Offset of this frame's header from the start of its block.
    at: usize,
    /// `tp_next_offset`: from this frame's header to the next one's.
    pub next_offset: usize,
    /// Bytes of the frame kept in the ring.
    pub snaplen: usize,
    /// The frame's length on the wire.
    pub wire_len: usize,
    /// `tp_mac`: from this frame's header to its Ethernet header.
    mac: usize,
    /// `sll_pkttype`.
    pub pkttype: u8,
}

/// What the kernel wrote at the head of a block it handed over.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RingBlock {
    /// Frames in the block.
    pub num_pkts: u32,
    /// Offset of the first frame's header from the start of the block.
    pub first: usize,
}

/// A TPACKET_V3 receive ring mapped into this process.
///
/// The memory is shared with the kernel, so Rust code never holds a reference into it: it
/// is read and written through raw pointers, and ownership of each block passes between
/// the kernel and us through its `block_status` word, read with Acquire (the kernel
/// publishes a block after `smp_wmb`) and written with Release (we give it back after our
/// last read). A block is only read between those two points.
pub(crate) struct RxRing {
    base: ptr::NonNull<u8>,
    block_size: usize,
    block_nr: usize,
}

// SAFETY: the ring is a plain memory mapping; every access goes through raw pointers and
// the block-status protocol above, whichever thread makes it. The callers (RingSocket)
// let only one thread at a time read blocks and release them.
unsafe impl Send for RxRing {}
// SAFETY: as for Send; shared access only reads `base`, `block_size` and `block_nr`.
unsafe impl Sync for RxRing {}

impl RxRing {
    /// Maps the ring that `set_rx_ring_v3(fd, geometry)` created.
    pub(crate) fn map(fd: BorrowedFd<'_>, geometry: RingGeometry) -> io::Result<RxRing> {
        let block_size = geometry.block_size as usize;
        let block_nr = geometry.block_nr as usize;
        let len = block_size * block_nr;
        // SAFETY: a fresh shared mapping of the socket's ring; the kernel checks the length
        // against the ring it set up, and nothing else refers to the address returned.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = ptr::NonNull::new(base.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null address"))?;
        Ok(RxRing {
            base,
            block_size,
            block_nr,
        })
    }

    /// Blocks in the ring.
    pub(crate) fn block_nr(&self) -> usize {
        self.block_nr
    }

    /// Start of block `block` (`block < block_nr`).
    fn block_ptr(&self, block: usize) -> *mut u8 {
        debug_assert!(block < self.block_nr);
        // SAFETY: block < block_nr, so the offset stays inside the mapping.
        unsafe { self.base.as_ptr().add(block * self.block_size) }
    }

    fn read_u32(&self, block: usize, at: usize) -> u32 {
        assert!(at + 4 <= self.block_size);
        // SAFETY: in bounds (checked above) of a block this thread owns; the mapping is
        // page-aligned but the kernel's offsets need not be, hence unaligned.
        unsafe { ptr::read_unaligned(self.block_ptr(block).add(at).cast::<u32>()) }
    }

    fn status(&self, block: usize) -> &AtomicU32 {
        // SAFETY: block_status is an aligned u32 (blocks are page-aligned, the field is at
        // offset 8) inside the mapping, which lives as long as `self`; the kernel also
        // accesses it only atomically (smp_load/store with barriers), so an AtomicU32
        // view of it is sound. This is the one shared word, never a view of frame data.
        unsafe { AtomicU32::from_ptr(self.block_ptr(block).add(BLOCK_STATUS_AT).cast()) }
    }

    /// The block's header if the kernel handed it to us, else `None`.
    pub(crate) fn ready(&self, block: usize) -> Option<RingBlock> {
        if self.status(block).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
            return None;
        }
        Some(RingBlock {
            num_pkts: self.read_u32(block, BLOCK_NUM_PKTS_AT),
            first: self.read_u32(block, BLOCK_FIRST_PKT_AT) as usize,
        })
    }

    /// Gives a block back to the kernel; nothing of it may be read afterwards.
    pub(crate) fn release(&self, block: usize) {
        self.status(block)
            .store(TP_STATUS_KERNEL, Ordering::Release);
    }

    /// The frame whose header is at `at` in a block handed to us; `None` when the kernel's
    /// offsets point outside the block (never seen; refuses rather than read past it).
    pub(crate) fn frame(&self, block: usize, at: usize) -> Option<RingFrame> {
        if at.checked_add(PKT_HDR_LEN)? > self.block_size {
            return None;
        }
        let word = |off: usize| self.read_u32(block, at + off) as usize;
        let mac = word(PKT_MAC_AT) & 0xffff;
        let snaplen = word(PKT_SNAPLEN_AT);
        if mac < PKT_HDR_LEN || at + mac + snaplen > self.block_size {
            return None;
        }
        // SAFETY: at + PKT_HDR_LEN <= block_size (checked above), in a block we own.
        let pkttype = unsafe { ptr::read(self.block_ptr(block).add(at + PKT_SLL_PKTTYPE_AT)) };
        Some(RingFrame {
            at,
            next_offset: word(PKT_NEXT_OFFSET_AT),
            snaplen,
            wire_len: word(PKT_LEN_AT),
            mac,
            pkttype,
        })
    }

    /// Copies the virtio-net header in front of `frame` (when the socket has
    /// `PACKET_VNET_HDR` the kernel writes it just before the Ethernet header) and as much
    /// of the frame as fits into `buf`; returns the bytes copied into `buf`.
    pub(crate) fn copy_out(
        &self,
        block: usize,
        frame: &RingFrame,
        vnet_hdr: &mut [u8; VNET_HDR_LEN],
        buf: &mut [u8],
    ) -> usize {
        let len = frame.snaplen.min(buf.len());
        // mac >= PKT_HDR_LEN > VNET_HDR_LEN and at + mac + snaplen <= block_size were
        // checked in `frame`.
        let start = frame.at + frame.mac;
        // SAFETY: both source ranges lie inside a block we own (see above); the
        // destinations are exclusive borrows at least as long as the counts; ring memory
        // and Rust buffers never overlap.
        unsafe {
            let src = self.block_ptr(block).add(start);
            ptr::copy_nonoverlapping(src.sub(VNET_HDR_LEN), vnet_hdr.as_mut_ptr(), VNET_HDR_LEN);
            ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), len);
        }
        len
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: `base` and the length are those of our own mapping, and no pointer
        // into it outlives `self`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.block_size * self.block_nr);
        }
    }
}

// ---- TPACKET_V2: one frame per slot ----

// Offsets in `struct tpacket2_hdr` (status, len, snaplen, mac, net, …: 32 bytes) and of
// the `sockaddr_ll` after it (at TPACKET_ALIGN(32) = 32).
const SLOT_LEN_AT: usize = 4;
const SLOT_SNAPLEN_AT: usize = 8;
const SLOT_MAC_AT: usize = 12;
const SLOT_SLL_PKTTYPE_AT: usize = 32 + 10;
/// The slot header plus its `sockaddr_ll`: a frame's MAC offset is never below this.
const SLOT_HDR_LEN: usize = 32 + mem::size_of::<libc::sockaddr_ll>();

/// `struct tpacket_req`.
#[repr(C)]
struct TpacketReq {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
}

/// The kernel block that holds whole `slot_size` slots: a page, or the slot itself when
/// it is larger (`slot_size` divides the page size or is a multiple of it).
pub(crate) fn v2_block_size(slot_size: u32) -> u32 {
    slot_size.max(page_size())
}

fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(size).unwrap_or(4096)
}

/// `setsockopt(PACKET_RX_RING)` with a `tpacket_req` for a TPACKET_V2 ring of `slots`
/// slots of `slot_size` bytes in blocks of [`v2_block_size`], so that slot `i` starts at
/// `i * slot_size` in the mapping (the socket must be TPACKET_V2; `slots` a multiple of
/// the slots per block).
pub(crate) fn set_rx_ring_v2(fd: BorrowedFd<'_>, slot_size: u32, slots: u32) -> io::Result<()> {
    let block_size = v2_block_size(slot_size);
    let req = TpacketReq {
        tp_block_size: block_size,
        tp_block_nr: slots / (block_size / slot_size),
        tp_frame_size: slot_size,
        tp_frame_nr: slots,
    };
    // SAFETY: `req` is a live tpacket_req (C layout) and the length passed is its size.
    syscall!(setsockopt(
        fd.as_raw_fd(),
        libc::SOL_PACKET,
        PACKET_RX_RING,
        ptr::from_ref(&req).cast(),
        mem::size_of::<TpacketReq>() as libc::socklen_t,
    ))?;
    Ok(())
}

/// One frame in a slot handed to us, as its `tpacket2_hdr` describes it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlotFrame {
    /// Bytes of the frame kept in the slot.
    pub snaplen: usize,
    /// The frame's length on the wire.
    pub wire_len: usize,
    /// `tp_mac`: from the slot's start to the Ethernet header.
    mac: usize,
    /// `sll_pkttype`.
    pub pkttype: u8,
    /// The frame did not fit: the slot holds its head, and the whole frame is the next
    /// one on the socket's receive queue.
    pub on_queue: bool,
}

/// A TPACKET_V2 receive ring mapped into this process: `slots` slots of `slot_size`
/// bytes, each holding one frame and owned by the kernel or by us according to its own
/// `tp_status` word (read with Acquire, given back with Release), so every frame is ours
/// as soon as the kernel wrote it, unlike a V3 block that waits until full or retired.
/// Same rules as [`RxRing`]: no Rust reference into the mapping, raw pointers only.
pub(crate) struct SlotRing {
    base: ptr::NonNull<u8>,
    slot_size: usize,
    slots: usize,
}

// SAFETY: as for RxRing: a plain mapping accessed through raw pointers under the
// per-slot status protocol; RingSocket lets one thread at a time read and release slots.
unsafe impl Send for SlotRing {}
// SAFETY: as for Send; shared access only reads `base`, `slot_size` and `slots`.
unsafe impl Sync for SlotRing {}

impl SlotRing {
    /// Maps the ring that `set_rx_ring_v2(fd, slot_size, slots)` created.
    pub(crate) fn map(fd: BorrowedFd<'_>, slot_size: u32, slots: u32) -> io::Result<SlotRing> {
        let (slot_size, slots) = (slot_size as usize, slots as usize);
        // SAFETY: a fresh shared mapping of the socket's ring; the kernel checks the length
        // against the ring it set up, and nothing else refers to the address returned.
        // No MAP_POPULATE: the kernel's pages exist already; ours map in as frames touch
        // them, so a slot sized for a super-frame costs address space, not page tables,
        // while only MTU frames arrive.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                slot_size * slots,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = ptr::NonNull::new(base.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null address"))?;
        Ok(SlotRing {
            base,
            slot_size,
            slots,
        })
    }

    /// Slots in the ring.
    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    /// Start of slot `slot` (`slot < slots`).
    fn slot_ptr(&self, slot: usize) -> *mut u8 {
        assert!(slot < self.slots);
        // SAFETY: slot < slots, so the offset stays inside the mapping.
        unsafe { self.base.as_ptr().add(slot * self.slot_size) }
    }

    fn status(&self, slot: usize) -> &AtomicU32 {
        // SAFETY: tp_status is the aligned u32 at the start of a page-aligned slot inside
        // the mapping, which lives as long as `self`; the kernel reads and writes it with
        // barriers (__packet_set_status/__packet_get_status), so an AtomicU32 view of this
        // one word is sound. Frame data is never viewed this way.
        unsafe { AtomicU32::from_ptr(self.slot_ptr(slot).cast()) }
    }

    fn read_u32(&self, slot: usize, at: usize) -> u32 {
        debug_assert!(at + 4 <= SLOT_HDR_LEN);
        // SAFETY: inside the header of a slot this thread owns (at + 4 <= SLOT_HDR_LEN <=
        // slot_size, checked at ring creation); slots are page-aligned.
        unsafe { ptr::read_unaligned(self.slot_ptr(slot).add(at).cast::<u32>()) }
    }

    /// The frame in `slot` if the kernel handed it to us (`Some(Err(()))` when its header
    /// points outside the slot: never seen; refused rather than read past), else `None`.
    pub(crate) fn ready(&self, slot: usize) -> Option<Result<SlotFrame, ()>> {
        let status = self.status(slot).load(Ordering::Acquire);
        if status & TP_STATUS_USER == 0 {
            return None;
        }
        let mac = (self.read_u32(slot, SLOT_MAC_AT) & 0xffff) as usize;
        let snaplen = self.read_u32(slot, SLOT_SNAPLEN_AT) as usize;
        if mac < SLOT_HDR_LEN || mac + snaplen > self.slot_size {
            return Some(Err(()));
        }
        // SAFETY: inside the header of a slot we own (SLOT_HDR_LEN <= slot_size).
        let pkttype = unsafe { ptr::read(self.slot_ptr(slot).add(SLOT_SLL_PKTTYPE_AT)) };
        Some(Ok(SlotFrame {
            snaplen,
            wire_len: self.read_u32(slot, SLOT_LEN_AT) as usize,
            mac,
            pkttype,
            on_queue: status & TP_STATUS_COPY != 0,
        }))
    }

    /// Copies the virtio-net header in front of `frame` and as much of the frame as fits
    /// into `buf`; returns the bytes copied into `buf`.
    pub(crate) fn copy_out(
        &self,
        slot: usize,
        frame: &SlotFrame,
        vnet_hdr: &mut [u8; VNET_HDR_LEN],
        buf: &mut [u8],
    ) -> usize {
        let len = frame.snaplen.min(buf.len());
        // SAFETY: mac >= SLOT_HDR_LEN > VNET_HDR_LEN and mac + snaplen <= slot_size were
        // checked in `ready`, so both source ranges lie inside a slot we own; the
        // destinations are exclusive borrows at least as long as the counts.
        unsafe {
            let src = self.slot_ptr(slot).add(frame.mac);
            ptr::copy_nonoverlapping(src.sub(VNET_HDR_LEN), vnet_hdr.as_mut_ptr(), VNET_HDR_LEN);
            ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), len);
        }
        len
    }

    /// Gives a slot back to the kernel; nothing of it may be read afterwards.
    pub(crate) fn release(&self, slot: usize) {
        self.status(slot).store(TP_STATUS_KERNEL, Ordering::Release);
    }
}

impl Drop for SlotRing {
    fn drop(&mut self) {
        // SAFETY: `base` and the length are those of our own mapping, and no pointer
        // into it outlives `self`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.slot_size * self.slots);
        }
    }
}
pub(crate) mod xdp;
