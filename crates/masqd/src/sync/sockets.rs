//! The sync daemons' UDP multicast sockets, set up as the kernel's: a master's sends to
//! the group from the mcast interface with the TTL given and without looping back; a
//! backup's is bound to the group's port on that interface and joins the group there.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use masq_core::sync::DaemonConfig;
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};

/// How long a backup's receive waits, so that its thread sees a stop or a change soon.
pub const RECEIVE_WAIT: Duration = Duration::from_millis(50);

/// The group, which must be IPv4: masq's table holds IPv4 connections only.
fn ipv4_group(config: &DaemonConfig) -> Result<Ipv4Addr> {
    match config.mcast_group {
        IpAddr::V4(group) => Ok(group),
        IpAddr::V6(group) => bail!("sync group {group}: IPv6 groups are not supported"),
    }
}

fn udp_socket(config: &DaemonConfig) -> Result<(Socket, masq_io::Interface)> {
    let iface = masq_io::Interface::by_name(&config.mcast_interface)
        .with_context(|| format!("sync interface {}", config.mcast_interface))?;
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .context("socket(AF_INET, SOCK_DGRAM)")?;
    socket
        .bind_device(Some(iface.name.as_bytes()))
        .with_context(|| format!("setsockopt(SO_BINDTODEVICE, {})", iface.name))?;
    Ok((socket, iface))
}

/// A master's socket and where its messages go.
pub fn open_master(config: &DaemonConfig) -> Result<(UdpSocket, SocketAddr)> {
    let group = ipv4_group(config)?;
    let (socket, iface) = udp_socket(config)?;
    // The bound device already takes the group's datagrams out of the interface; its
    // address, when it has one, is also their source.
    if let Some(&(addr, _)) = iface.ipv4.first() {
        socket
            .set_multicast_if_v4(&addr)
            .with_context(|| format!("setsockopt(IP_MULTICAST_IF, {addr})"))?;
    }
    socket
        .set_multicast_ttl_v4(u32::from(config.mcast_ttl))
        .context("setsockopt(IP_MULTICAST_TTL)")?;
    socket
        .set_multicast_loop_v4(false)
        .context("setsockopt(IP_MULTICAST_LOOP)")?;
    let to = SocketAddr::V4(SocketAddrV4::new(group, config.mcast_port));
    Ok((socket.into(), to))
}

/// A backup's socket, receiving the group's messages on the mcast interface.
pub fn open_backup(config: &DaemonConfig) -> Result<UdpSocket> {
    let group = ipv4_group(config)?;
    let (socket, iface) = udp_socket(config)?;
    socket
        .set_reuse_address(true)
        .context("setsockopt(SO_REUSEADDR)")?;
    // Bound to the group's address: no other datagram to that port reaches it.
    let at = SocketAddrV4::new(group, config.mcast_port);
    socket
        .bind(&at.into())
        .with_context(|| format!("bind({at})"))?;
    socket
        .join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(iface.index))
        .with_context(|| format!("setsockopt(IP_ADD_MEMBERSHIP, {group}, {})", iface.name))?;
    socket
        .set_read_timeout(Some(RECEIVE_WAIT))
        .context("setsockopt(SO_RCVTIMEO)")?;
    Ok(socket.into())
}
