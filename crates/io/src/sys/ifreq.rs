//! Interface ioctls on any socket of the interface's namespace: the MTU (`SIOCGIFMTU`) and
//! the ethtool commands (`SIOCETHTOOL`) for offloads and receive queues.
//!
//! Every function takes a name the caller checked is a valid interface name (1 to 15
//! bytes, no NUL), so it fits `ifr_name` with its NUL.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;

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
    let mut req = ifreq_for(name);
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
