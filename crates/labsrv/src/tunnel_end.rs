//! The real server's end of an IPIP tunnel, in userspace, for kernels without the `ipip`
//! module (where `ip link add t0 type ipip` fails and there is no tunl0).
//!
//! Such a kernel still hands every protocol-4 packet addressed to this host to a raw
//! IPPROTO_IPIP socket, and, because a raw socket took it, sends no "protocol
//! unreachable" back. This takes the client's packet out of the outer header and writes it,
//! unchanged, into a raw IPPROTO_RAW socket (the header included): addressed to the VIP,
//! which this host holds on `lo`, it loops back into the host's own input as if tunl0 had
//! decapsulated it, and the host answers the client from the VIP through its default
//! gateway. Only packets for one of `--vip` are let through, so that the host never relays
//! a tunnelled packet elsewhere.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{Context, Result};
use masq_wire::ipv4::Ipv4Packet;
use masq_wire::tunnel::PROTO_IPIP;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Largest IPv4 packet.
const MAX_PACKET: usize = 65_535;
/// IPPROTO_RAW: a raw socket whose packets carry their own IP header.
const PROTO_RAW: i32 = 255;

/// Why a received packet was not passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The outer or the inner header does not parse as IPv4.
    Malformed,
    /// The outer protocol is not IPIP.
    NotIpip,
    /// The inner packet is for an address that is not one of the VIPs.
    NotForVip(Ipv4Addr),
}

/// The client's packet inside the IPIP packet `outer`, and its destination, if that is one
/// of `vips`.
///
/// # Errors
///
/// [`Refused`] says why the packet is not to be passed on.
pub fn decapsulate<'a>(
    packet: &'a [u8],
    vips: &[Ipv4Addr],
) -> Result<(&'a [u8], Ipv4Addr), Refused> {
    let outer = Ipv4Packet::new_checked(packet).map_err(|_| Refused::Malformed)?;
    if outer.protocol() != PROTO_IPIP {
        return Err(Refused::NotIpip);
    }
    // Sliced from `packet`, not `outer.payload()`, which borrows the view.
    let payload = &packet[outer.header_len()..usize::from(outer.total_len())];
    let inner = Ipv4Packet::new_checked(payload).map_err(|_| Refused::Malformed)?;
    let dst = inner.dst_addr();
    if !vips.contains(&dst) {
        return Err(Refused::NotForVip(dst));
    }
    Ok((&payload[..usize::from(inner.total_len())], dst))
}

/// Decapsulates every IPIP packet this host receives for one of `vips` until the process is
/// killed. Refused packets are counted and the count printed now and then, never per packet.
///
/// # Errors
///
/// When a raw socket cannot be opened (not root), or receiving fails.
pub fn run(vips: &[Ipv4Addr]) -> Result<()> {
    let ipip = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(PROTO_IPIP))),
    )
    .context("socket(AF_INET, SOCK_RAW, IPPROTO_IPIP)")?;
    let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(PROTO_RAW)))
        .context("socket(AF_INET, SOCK_RAW, IPPROTO_RAW)")?;
    eprintln!("masq-labsrv: decapsulating IPIP for {vips:?}");
    let mut buf = vec![0u8; MAX_PACKET];
    let (mut passed, mut refused) = (0u64, 0u64);
    loop {
        let n = (&ipip).read(&mut buf).context("recv(IPPROTO_IPIP)")?;
        match decapsulate(&buf[..n], vips) {
            Ok((inner, dst)) => {
                let to = SockAddr::from(SocketAddrV4::new(dst, 0));
                match raw.send_to(inner, &to) {
                    Ok(_) => passed += 1,
                    Err(_) => refused += 1,
                }
            }
            Err(_) => refused += 1,
        }
        if (passed + refused).is_power_of_two() {
            eprintln!("masq-labsrv: tunnel end: {passed} packets passed on, {refused} refused");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 10);

    /// A SYN from 192.168.0.100:40000 to the VIP:80 inside an IPIP header from the DIP
    /// 10.0.0.1 to the RS 10.0.0.2, as the director sends it, with 2 bytes of padding.
    fn tunnelled_syn() -> Vec<u8> {
        let inner: [u8; 40] = [
            0x45, 0x00, 0x00, 0x28, 0x00, 0x01, 0x40, 0x00, 0x3f, 0x06, 0x00, 0x00, 192, 168, 0,
            100, 192, 168, 0, 10, 0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff,
            0xff, 0, 0, 0, 0,
        ];
        let mut outer = vec![
            0x45, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x40, 0x00, 0x3f, 0x04, 0x00, 0x00, 10, 0, 0, 1,
            10, 0, 0, 2,
        ];
        outer.extend_from_slice(&inner);
        outer.extend_from_slice(&[0, 0]);
        outer
    }

    #[test]
    fn the_clients_packet_comes_out_unchanged() {
        let outer = tunnelled_syn();
        assert_eq!(decapsulate(&outer, &[VIP]), Ok((&outer[20..60], VIP)));
    }

    #[test]
    fn packets_for_other_addresses_are_not_relayed() {
        let outer = tunnelled_syn();
        let other = Ipv4Addr::new(192, 168, 0, 11);
        assert_eq!(decapsulate(&outer, &[other]), Err(Refused::NotForVip(VIP)));
    }

    #[test]
    fn what_is_not_ipip_or_is_cut_short_is_refused() {
        let mut outer = tunnelled_syn();
        outer[9] = 6;
        assert_eq!(decapsulate(&outer, &[VIP]), Err(Refused::NotIpip));
        let outer = tunnelled_syn();
        assert_eq!(decapsulate(&outer[..50], &[VIP]), Err(Refused::Malformed));
        let mut outer = tunnelled_syn();
        outer[20] = 0x65;
        assert_eq!(decapsulate(&outer, &[VIP]), Err(Refused::Malformed));
    }
}
