//! [`Interface`]: what masq needs to know about a network interface.
//!
//! Index, MAC, flags and addresses come from `pnet_datalink::interfaces()` (netlink via
//! `getifaddrs`), the MTU from `SIOCGIFMTU`. Both ask the kernel through a socket of the
//! calling thread's network namespace; `/sys/class/net` is not used because it shows the
//! interfaces of the namespace that mounted `/sys`, which is not always the caller's.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;

use socket2::{Domain, Socket, Type};

use crate::error::IoError;
use crate::sys::ifreq;

/// A network interface of the current network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Its name, e.g. `eth0`.
    pub name: String,
    /// Its index, what an `AF_PACKET` socket binds to.
    pub index: u32,
    /// Its Ethernet address.
    pub mac: [u8; 6],
    /// Its MTU: the largest L3 packet it sends without GSO.
    pub mtu: u32,
    /// Its IPv4 addresses with their prefix lengths.
    pub ipv4: Vec<(Ipv4Addr, u8)>,
    /// Administratively up (`IFF_UP`, `ip link set NAME up`).
    pub is_up: bool,
    /// Operationally up (`IFF_RUNNING`: the link has a carrier, e.g. the veth peer is up).
    pub is_running: bool,
}

impl Interface {
    /// Looks up the interface called `name`.
    ///
    /// # Errors
    ///
    /// [`IoError::InvalidInterfaceName`] for a name that cannot exist,
    /// [`IoError::InterfaceNotFound`] when no interface has that name,
    /// [`IoError::NoMacAddress`] when it has no Ethernet address (loopback, tunnels), and
    /// [`IoError::Socket`] / [`IoError::Ioctl`] when the MTU cannot be read.
    pub fn by_name(name: &str) -> Result<Interface, IoError> {
        check_name(name)?;
        let found = pnet_datalink::interfaces()
            .into_iter()
            .find(|candidate| candidate.name == name)
            .ok_or_else(|| IoError::InterfaceNotFound(name.to_owned()))?;
        let mac = found
            .mac
            .map(|mac| mac.octets())
            .filter(|mac| *mac != [0; 6])
            .ok_or_else(|| IoError::NoMacAddress(name.to_owned()))?;
        let ipv4 = found
            .ips
            .iter()
            .filter_map(|net| match net.ip() {
                IpAddr::V4(addr) => Some((addr, net.prefix())),
                IpAddr::V6(_) => None,
            })
            .collect();
        let flags = found.flags;
        Ok(Interface {
            name: found.name,
            index: found.index,
            mac,
            mtu: interface_mtu(name)?,
            ipv4,
            is_up: flags & libc::IFF_UP as u32 != 0,
            is_running: flags & libc::IFF_RUNNING as u32 != 0,
        })
    }
}

/// The kernel's rule (`dev_valid_name`): 1 to 15 bytes, no NUL, `/` or whitespace.
pub(crate) fn check_name(name: &str) -> Result<(), IoError> {
    let valid = !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == 0 || b == b'/' || b == b':' || b.is_ascii_whitespace());
    if valid {
        Ok(())
    } else {
        Err(IoError::InvalidInterfaceName(name.to_owned()))
    }
}

/// A datagram socket to address interface ioctls to; any socket family would do.
pub(crate) fn ioctl_socket(iface: &str) -> Result<Socket, IoError> {
    Socket::new(Domain::IPV4, Type::DGRAM, None).map_err(|source| IoError::Socket {
        kind: "AF_INET, SOCK_DGRAM",
        iface: iface.to_owned(),
        source,
    })
}

fn interface_mtu(name: &str) -> Result<u32, IoError> {
    let socket = ioctl_socket(name)?;
    ifreq::interface_mtu(socket.as_fd(), name).map_err(|source| IoError::Ioctl {
        request: "SIOCGIFMTU",
        iface: name.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_impossible_names() {
        for bad in ["", "a-name-that-is-too-long", "a/b", "a b", "a\0b", ".."] {
            assert!(
                matches!(
                    Interface::by_name(bad),
                    Err(IoError::InvalidInterfaceName(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn missing_interface_is_named_in_the_error() {
        let err = Interface::by_name("mqio-none0").unwrap_err();
        assert!(matches!(err, IoError::InterfaceNotFound(_)));
        assert_eq!(err.to_string(), "interface mqio-none0 not found");
    }

    #[test]
    fn loopback_has_no_mac() {
        match Interface::by_name("lo") {
            Err(IoError::NoMacAddress(name)) => assert_eq!(name, "lo"),
            // A sandbox without a loopback interface has nothing to check.
            Err(IoError::InterfaceNotFound(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}
