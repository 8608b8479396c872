//! Host checks the daemon makes at start: is the kernel forwarding, and which offloads
//! does an interface use; the one process limit it raises (open files); and which user
//! it acts as.
//!
//! Why they matter (README.md, "Running masqd on a real host"): with
//! `net.ipv4.ip_forward=1` the kernel forwards the VIP traffic itself and races the
//! director; with GRO/LRO on, the director receives merged super-frames that it must send
//! back with their virtio-net header (`netns_tests::packet_socket` receives them on a veth
//! link).

use std::fs;
use std::os::fd::AsFd;
use std::path::Path;

use crate::error::IoError;
use crate::iface::{check_name, ioctl_socket};
use crate::sys::{self, ifreq, rlimit};

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Whether the kernel forwards IPv4 packets (`net.ipv4.ip_forward`) in the calling
/// thread's network namespace.
///
/// # Errors
///
/// [`IoError::ReadFile`] if the sysctl cannot be read, [`IoError::UnexpectedContent`] if
/// it holds something other than `0` or `1`.
pub fn ip_forward_enabled() -> Result<bool, IoError> {
    read_flag(Path::new(IP_FORWARD))
}

fn read_flag(path: &Path) -> Result<bool, IoError> {
    let content = fs::read_to_string(path).map_err(|source| IoError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    match content.trim() {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(IoError::UnexpectedContent {
            path: path.to_owned(),
            content,
        }),
    }
}

/// An offload feature of a network interface, as `ethtool -k` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Feature {
    /// `generic-receive-offload`: the kernel merges received segments.
    Gro,
    /// `large-receive-offload`: the NIC merges received segments.
    Lro,
    /// `tcp-segmentation-offload`: TCP super-frames are segmented by the device.
    Tso,
    /// `generic-segmentation-offload`: super-frames are segmented late, in software.
    Gso,
    /// `rx-checksumming`: the device verifies received checksums.
    RxCsum,
    /// `tx-checksumming`: the device completes transmitted checksums.
    TxCsum,
}

impl Feature {
    /// The legacy ethtool get and set commands, and their names for error messages.
    fn commands(self) -> (u32, &'static str, u32, &'static str) {
        match self {
            Feature::Gro => (
                ifreq::ETHTOOL_GGRO,
                "SIOCETHTOOL, ETHTOOL_GGRO",
                ifreq::ETHTOOL_SGRO,
                "SIOCETHTOOL, ETHTOOL_SGRO",
            ),
            Feature::Lro => (
                ifreq::ETHTOOL_GFLAGS,
                "SIOCETHTOOL, ETHTOOL_GFLAGS",
                ifreq::ETHTOOL_SFLAGS,
                "SIOCETHTOOL, ETHTOOL_SFLAGS",
            ),
            Feature::Tso => (
                ifreq::ETHTOOL_GTSO,
                "SIOCETHTOOL, ETHTOOL_GTSO",
                ifreq::ETHTOOL_STSO,
                "SIOCETHTOOL, ETHTOOL_STSO",
            ),
            Feature::Gso => (
                ifreq::ETHTOOL_GGSO,
                "SIOCETHTOOL, ETHTOOL_GGSO",
                ifreq::ETHTOOL_SGSO,
                "SIOCETHTOOL, ETHTOOL_SGSO",
            ),
            Feature::RxCsum => (
                ifreq::ETHTOOL_GRXCSUM,
                "SIOCETHTOOL, ETHTOOL_GRXCSUM",
                ifreq::ETHTOOL_SRXCSUM,
                "SIOCETHTOOL, ETHTOOL_SRXCSUM",
            ),
            Feature::TxCsum => (
                ifreq::ETHTOOL_GTXCSUM,
                "SIOCETHTOOL, ETHTOOL_GTXCSUM",
                ifreq::ETHTOOL_STXCSUM,
                "SIOCETHTOOL, ETHTOOL_STXCSUM",
            ),
        }
    }
}

/// Which offloads an interface has on (`ethtool -k`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offloads {
    /// Generic receive offload.
    pub gro: bool,
    /// Large receive offload.
    pub lro: bool,
    /// TCP segmentation offload (any of TSO, TSO6, ...).
    pub tso: bool,
    /// Generic segmentation offload.
    pub gso: bool,
    /// Receive checksum offload.
    pub rx_csum: bool,
    /// Transmit checksum offload (any of the checksum features).
    pub tx_csum: bool,
}

impl Offloads {
    /// Whether frames larger than the MTU can reach a packet socket on this interface
    /// (from the merging offloads on receive, or from local senders with TSO/GSO).
    pub fn delivers_super_frames(&self) -> bool {
        self.gro || self.lro || self.tso || self.gso
    }
}

/// Reads the offload state of `ifname` with `SIOCETHTOOL`.
///
/// # Errors
///
/// [`IoError::InvalidInterfaceName`], [`IoError::Socket`], or [`IoError::Ioctl`] naming the
/// ethtool command that failed (`ENODEV` when the interface does not exist).
pub fn offload_state(ifname: &str) -> Result<Offloads, IoError> {
    check_name(ifname)?;
    let socket = ioctl_socket(ifname)?;
    let get = |feature: Feature| -> Result<bool, IoError> {
        let (cmd, request, _, _) = feature.commands();
        let value = ifreq::ethtool_value(socket.as_fd(), ifname, cmd, 0)
            .map_err(|source| ioctl_error(request, ifname, source))?;
        Ok(match feature {
            Feature::Lro => value & ifreq::ETH_FLAG_LRO != 0,
            _ => value != 0,
        })
    };
    Ok(Offloads {
        gro: get(Feature::Gro)?,
        lro: get(Feature::Lro)?,
        tso: get(Feature::Tso)?,
        gso: get(Feature::Gso)?,
        rx_csum: get(Feature::RxCsum)?,
        tx_csum: get(Feature::TxCsum)?,
    })
}

/// Turns one offload of `ifname` on or off (`ethtool -K`). Needs `CAP_NET_ADMIN`.
///
/// The kernel may change dependent features too: turning `TxCsum` off also turns TSO off.
///
/// # Errors
///
/// [`IoError::InvalidInterfaceName`], [`IoError::Socket`], or [`IoError::Ioctl`] naming
/// the ethtool command: `EOPNOTSUPP` when the device cannot change that feature, `EPERM`
/// without the capability.
pub fn set_offload(ifname: &str, feature: Feature, enabled: bool) -> Result<(), IoError> {
    check_name(ifname)?;
    let socket = ioctl_socket(ifname)?;
    let fd = socket.as_fd();
    let (get_cmd, get_request, set_cmd, set_request) = feature.commands();
    let value = match feature {
        // LRO is one bit among the other ETHTOOL_GFLAGS flags, which must be kept.
        Feature::Lro => {
            let flags = ifreq::ethtool_value(fd, ifname, get_cmd, 0)
                .map_err(|source| ioctl_error(get_request, ifname, source))?;
            if enabled {
                flags | ifreq::ETH_FLAG_LRO
            } else {
                flags & !ifreq::ETH_FLAG_LRO
            }
        }
        _ => u32::from(enabled),
    };
    ifreq::ethtool_value(fd, ifname, set_cmd, value)
        .map_err(|source| ioctl_error(set_request, ifname, source))?;
    Ok(())
}

fn ioctl_error(request: &'static str, ifname: &str, source: std::io::Error) -> IoError {
    IoError::Ioctl {
        request,
        iface: ifname.to_owned(),
        source,
    }
}

/// Raises this process's soft limit on open files to its hard limit, so that a service
/// manager's soft default (often 1 024) does not cap the daemon's sockets and connections
/// while more is allowed. Returns the soft limit before and after (equal when it already
/// was the hard limit).
///
/// # Errors
///
/// The `getrlimit(RLIMIT_NOFILE)` or `setrlimit(RLIMIT_NOFILE)` error.
pub fn raise_open_files_limit() -> std::io::Result<(u64, u64)> {
    rlimit::raise_nofile_soft_limit()
}

/// The effective user id this process acts as: the user whose own requests masqd's control
/// socket accepts. Asked of the kernel rather than read off `/proc/self`, which does not
/// resolve where no procfs of the process's own pid namespace is mounted.
pub fn effective_uid() -> u32 {
    sys::effective_uid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flag_files() {
        let dir = std::env::temp_dir().join(format!("mqio-flag-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("flag");
        for (content, expected) in [("0\n", Some(false)), ("1\n", Some(true)), ("2\n", None)] {
            fs::write(&file, content).unwrap();
            match (read_flag(&file), expected) {
                (Ok(value), Some(expected)) => assert_eq!(value, expected),
                (Err(IoError::UnexpectedContent { content: got, .. }), None) => {
                    assert_eq!(got, content)
                }
                (other, _) => panic!("{content:?}: unexpected {other:?}"),
            }
        }
        fs::remove_dir_all(&dir).unwrap();
        let err = read_flag(&file).unwrap_err();
        assert!(err.to_string().starts_with("read /"), "{err}");
    }

    #[test]
    fn ip_forward_is_readable() {
        // The host's value is whatever it is; the check is that it parses.
        ip_forward_enabled().unwrap();
    }

    #[test]
    fn the_open_files_limit_rises_to_the_hard_limit() {
        let (before, after) = raise_open_files_limit().unwrap();
        assert!(after >= before);
        // A second call finds nothing left to raise.
        assert_eq!(raise_open_files_limit().unwrap(), (after, after));
    }

    #[test]
    fn the_effective_uid_is_the_one_the_kernel_reports() {
        let status = fs::read_to_string("/proc/self/status").unwrap();
        let euid: u32 = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .and_then(|id| id.parse().ok())
            .unwrap();
        assert_eq!(effective_uid(), euid);
    }

    #[test]
    fn offload_errors_name_the_command() {
        let err = offload_state("mqio-none0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "ioctl(SIOCETHTOOL, ETHTOOL_GGRO) on mqio-none0: No such device (os error 19)"
        );
    }
}
