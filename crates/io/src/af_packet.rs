//! Opening the `AF_PACKET` sockets of the back ends: [`open_bound`] is the one sequence
//! by which [`crate::PacketSocket`] and [`crate::RingSocket`] open theirs, and
//! [`UnboundSocket`] the steps it is made of (the pnet back end takes the first ones and
//! lets pnet bind).

use std::os::fd::{AsFd, BorrowedFd};

use socket2::{Domain, Socket, Type};

use crate::error::IoError;
use crate::iface::Interface;
use crate::sys::{self, packet};

/// The options every back end's packet socket may set besides its ring.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PacketSetup {
    /// `PACKET_IGNORE_OUTGOING`: the kernel does not queue the frames this host sends.
    pub ignore_outgoing: bool,
    /// `PACKET_QDISC_BYPASS`, see [`crate::SocketOptions::qdisc_bypass`].
    pub qdisc_bypass: bool,
    /// See [`crate::SocketOptions::recv_buffer`].
    pub recv_buffer: Option<usize>,
    /// See [`crate::RingOptions::fanout_group`]; joined once bound.
    pub fanout_group: Option<u16>,
}

/// An `AF_PACKET` socket not bound yet, for the interface it will be bound to: every
/// option set on it reports that interface when refused.
pub(crate) struct UnboundSocket<'a> {
    socket: Socket,
    iface: &'a Interface,
}

impl<'a> UnboundSocket<'a> {
    /// `socket(AF_PACKET, SOCK_RAW, 0)`. Protocol 0 receives nothing until bind() names
    /// the protocol and the interface; creating it with ETH_P_ALL would queue frames from
    /// every interface meanwhile.
    pub(crate) fn new(iface: &'a Interface) -> Result<UnboundSocket<'a>, IoError> {
        let socket =
            Socket::new(Domain::PACKET, Type::RAW, None).map_err(|source| IoError::Socket {
                kind: "AF_PACKET, SOCK_RAW",
                iface: iface.name.clone(),
                source,
            })?;
        Ok(UnboundSocket { socket, iface })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Sets the `SOL_PACKET` option `name` (called `option` in errors) to `value`.
    pub(crate) fn set(
        &self,
        option: &'static str,
        name: libc::c_int,
        value: libc::c_int,
    ) -> Result<(), IoError> {
        sys::setsockopt_int(self.fd(), libc::SOL_PACKET, name, value)
            .map_err(|source| self.refused(option, source))
    }

    /// `SO_RCVBUFFORCE`, so that `net.core.rmem_max` does not cap it, or `SO_RCVBUF`
    /// without `CAP_NET_ADMIN`.
    pub(crate) fn set_recv_buffer(&self, bytes: usize) -> Result<(), IoError> {
        // The kernel doubles the value for its bookkeeping; int is its type.
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        let set = |name| sys::setsockopt_int(self.fd(), libc::SOL_SOCKET, name, value);
        match set(libc::SO_RCVBUFFORCE) {
            Ok(()) => Ok(()),
            Err(err) if err.raw_os_error() == Some(libc::EPERM) => {
                set(libc::SO_RCVBUF).map_err(|source| self.refused("SO_RCVBUF", source))
            }
            Err(source) => Err(self.refused("SO_RCVBUFFORCE", source)),
        }
    }

    /// Sets what `setup` asks for before the socket is bound.
    fn apply(&self, setup: &PacketSetup) -> Result<(), IoError> {
        if setup.ignore_outgoing {
            self.set("PACKET_IGNORE_OUTGOING", packet::PACKET_IGNORE_OUTGOING, 1)?;
        }
        if setup.qdisc_bypass {
            self.set("PACKET_QDISC_BYPASS", packet::PACKET_QDISC_BYPASS, 1)?;
        }
        if let Some(bytes) = setup.recv_buffer {
            self.set_recv_buffer(bytes)?;
        }
        Ok(())
    }

    /// The socket, for a caller that binds it another way (pnet does).
    pub(crate) fn into_socket(self) -> Socket {
        self.socket
    }

    /// Binds to the interface, every protocol (`ETH_P_ALL`).
    fn bind(&self) -> Result<(), IoError> {
        let iface = self.iface;
        packet::bind_packet(self.fd(), iface.index, libc::ETH_P_ALL as u16).map_err(|source| {
            IoError::Bind {
                iface: iface.name.clone(),
                index: iface.index,
                source,
            }
        })
    }

    /// Joins the `PACKET_FANOUT` group `group` (flows spread by hash). Once in a group,
    /// `PACKET_IGNORE_OUTGOING` no longer applies (the fanout demux runs first): the group
    /// needs its own flag, or every member reads back what the director transmits.
    fn join_fanout(&self, group: u16) -> Result<(), IoError> {
        let mode = packet::PACKET_FANOUT_HASH | packet::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
        let value = (mode << 16 | u32::from(group)) as libc::c_int;
        self.set("PACKET_FANOUT", packet::PACKET_FANOUT, value)
    }

    fn refused(&self, option: &'static str, source: std::io::Error) -> IoError {
        IoError::SetSockOpt {
            option,
            iface: self.iface.name.clone(),
            source,
        }
    }
}

/// Opens an `AF_PACKET` socket bound to `iface` that receives every protocol, each frame
/// behind a virtio-net header: `PACKET_VNET_HDR` first (the kernel refuses it once a ring
/// exists), then `before_bind` (where a ring socket sets up its ring), then `setup`, bind,
/// and the fanout group (which needs a bound socket). Returns the socket and what
/// `before_bind` made.
///
/// # Errors
///
/// [`IoError::Socket`] without `CAP_NET_RAW`; [`IoError::SetSockOpt`] naming the option
/// refused; [`IoError::Bind`] when the interface is gone; and those of `before_bind`.
pub(crate) fn open_bound<R>(
    iface: &Interface,
    setup: &PacketSetup,
    before_bind: impl FnOnce(&UnboundSocket<'_>) -> Result<R, IoError>,
) -> Result<(Socket, R), IoError> {
    let unbound = UnboundSocket::new(iface)?;
    unbound.set("PACKET_VNET_HDR", packet::PACKET_VNET_HDR, 1)?;
    let made = before_bind(&unbound)?;
    unbound.apply(setup)?;
    unbound.bind()?;
    if let Some(group) = setup.fanout_group {
        unbound.join_fanout(group)?;
    }
    Ok((unbound.socket, made))
}
