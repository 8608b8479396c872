//! UDP echo server and client for the lab.
//!
//! The server answers from the socket the datagram arrived on; bound to the wildcard
//! address on a real server with one address (the lab's case) the reply's source is that
//! address, which is what the director must rewrite back to the VIP.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Largest UDP payload over IPv4.
const MAX_PAYLOAD: usize = 65_507;

/// The reply to `payload`: `<name> ` followed by the payload, cut to what fits a datagram.
pub fn echo_reply(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut reply = Vec::with_capacity(name.len() + 1 + payload.len());
    reply.extend_from_slice(name.as_bytes());
    reply.push(b' ');
    reply.extend_from_slice(payload);
    reply.truncate(MAX_PAYLOAD);
    reply
}

/// Runs the echo server until the process is killed.
///
/// # Errors
///
/// When the socket cannot be bound, or receiving fails for a reason other than an ICMP
/// error left over from an earlier reply.
pub fn echo(listen: SocketAddr, name: &str) -> Result<()> {
    let socket = UdpSocket::bind(listen).with_context(|| format!("binding UDP {listen}"))?;
    eprintln!("masq-labsrv: {name} echoing UDP on {listen}");
    let mut buf = vec![0u8; MAX_PAYLOAD];
    loop {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            // An ICMP error for an earlier reply surfaces here on Linux; it is not ours to fix.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(e).context("receiving a datagram"),
        };
        if let Err(e) = socket.send_to(&echo_reply(name, &buf[..n]), from) {
            eprintln!("masq-labsrv: replying to {from}: {e}");
        }
    }
}

/// Sends `message` `count` times from one socket (one source port), printing each reply on
/// its own line.
///
/// # Errors
///
/// When a reply does not arrive within `timeout`, or the destination refuses (an ICMP port
/// unreachable came back).
pub fn client(to: SocketAddr, message: &str, timeout: Duration, count: u32) -> Result<()> {
    let any: SocketAddr = match to {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any).context("binding a UDP socket")?;
    // Connected: only datagrams from `to` are received, so a reply that comes back from a
    // wrong address (a director that forgot to rewrite it) counts as no reply at all.
    socket
        .connect(to)
        .with_context(|| format!("connecting to {to}"))?;
    socket
        .set_read_timeout(Some(timeout))
        .context("setting the receive timeout")?;
    let mut buf = vec![0u8; MAX_PAYLOAD];
    for _ in 0..count {
        socket
            .send(message.as_bytes())
            .with_context(|| format!("sending to {to}"))?;
        match socket.recv(&mut buf) {
            Ok(n) => println!("{}", String::from_utf8_lossy(&buf[..n])),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                bail!("no reply from {to} within {} ms", timeout.as_millis())
            }
            Err(e) => return Err(e).with_context(|| format!("receiving from {to}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_is_name_space_payload() {
        assert_eq!(echo_reply("RS1", b"hello"), b"RS1 hello");
        assert_eq!(echo_reply("RS2", b""), b"RS2 ");
    }

    #[test]
    fn reply_fits_a_datagram() {
        let reply = echo_reply("RS1", &vec![b'x'; MAX_PAYLOAD]);
        assert_eq!(reply.len(), MAX_PAYLOAD);
        assert!(reply.starts_with(b"RS1 xxx"));
    }
}
