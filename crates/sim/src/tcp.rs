//! One end of a simulated TCP connection: the handshake, data in order, the close from
//! either side and TIME_WAIT (RFC 9293's state machine, without what a loss-free, in-order
//! simulated link never needs: retransmission, reordering, windows, options).
//!
//! The socket decides what to send for the segments it receives; the application on top
//! of it (a client or a web server, in `host`) sends data and closes. Segments leave as
//! [`TcpHeader`]s with a payload; the host puts them in frames.

use std::net::SocketAddrV4;

use masq_core::Timestamp;
use masq_wire::tcp::flags::{ACK, FIN, PSH, RST, SYN};

use crate::packet::TcpHeader;

/// A TCP state (RFC 9293 §3.3.2); `Closing` is folded into `TimeWait`, which a
/// simultaneous close reaches one ACK later anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    LastAck,
    TimeWait,
    Closed,
}

/// A segment to send: its header and payload.
pub type Segment = (TcpHeader, Vec<u8>);

/// One end of a connection.
#[derive(Debug, Clone)]
pub struct TcpSocket {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub state: State,
    /// The next sequence number this end sends.
    snd_nxt: u32,
    /// The next sequence number expected from the peer.
    rcv_nxt: u32,
    /// Everything received in order.
    pub received: Vec<u8>,
    /// Whether the peer reset the connection.
    pub reset: bool,
    /// When TIME_WAIT began.
    pub time_wait_since: Option<Timestamp>,
}

impl TcpSocket {
    /// An active open: the socket and its SYN.
    pub fn connect(local: SocketAddrV4, remote: SocketAddrV4, isn: u32) -> (Self, Segment) {
        let mut socket = TcpSocket::new(local, remote, State::SynSent, isn);
        let syn = socket.segment(SYN, Vec::new());
        socket.snd_nxt = isn.wrapping_add(1);
        (socket, syn)
    }

    /// A passive open on the SYN `syn`: the socket and its SYN+ACK.
    pub fn accept(syn: &TcpHeader, isn: u32) -> (Self, Segment) {
        let mut socket = TcpSocket::new(syn.dst, syn.src, State::SynReceived, isn);
        socket.rcv_nxt = syn.seq.wrapping_add(1);
        let syn_ack = socket.segment(SYN | ACK, Vec::new());
        socket.snd_nxt = isn.wrapping_add(1);
        (socket, syn_ack)
    }

    fn new(local: SocketAddrV4, remote: SocketAddrV4, state: State, isn: u32) -> Self {
        TcpSocket {
            local,
            remote,
            state,
            snd_nxt: isn,
            rcv_nxt: 0,
            received: Vec::new(),
            reset: false,
            time_wait_since: None,
        }
    }

    fn segment(&self, flags: u8, payload: Vec<u8>) -> Segment {
        let header = TcpHeader {
            src: self.local,
            dst: self.remote,
            seq: self.snd_nxt,
            ack: if flags & ACK != 0 { self.rcv_nxt } else { 0 },
            flags,
        };
        (header, payload)
    }

    /// Whether the application may still send.
    pub fn may_send(&self) -> bool {
        matches!(self.state, State::Established | State::CloseWait)
    }

    /// Data from the application, in one segment.
    pub fn send(&mut self, data: &[u8]) -> Segment {
        let segment = self.segment(PSH | ACK, data.to_vec());
        self.snd_nxt = self.snd_nxt.wrapping_add(data.len() as u32);
        segment
    }

    /// The application closes: a FIN, or nothing if this end already sent one.
    pub fn close(&mut self) -> Option<Segment> {
        let next = match self.state {
            State::Established => State::FinWait1,
            State::CloseWait => State::LastAck,
            _ => return None,
        };
        let fin = self.segment(FIN | ACK, Vec::new());
        self.snd_nxt = self.snd_nxt.wrapping_add(1);
        self.state = next;
        Some(fin)
    }

    /// A pure ACK of everything received.
    pub fn ack(&self) -> Segment {
        self.segment(ACK, Vec::new())
    }

    /// Takes in one segment of this connection; returns whether it must be acknowledged
    /// (the caller sends [`TcpSocket::ack`] unless the application's answer carries it).
    pub fn receive(&mut self, now: Timestamp, h: &TcpHeader, payload: &[u8]) -> bool {
        if h.flags & RST != 0 {
            self.state = State::Closed;
            self.reset = true;
            return false;
        }
        match self.state {
            State::SynSent => {
                if h.flags & (SYN | ACK) == SYN | ACK && h.ack == self.snd_nxt {
                    self.rcv_nxt = h.seq.wrapping_add(1);
                    self.state = State::Established;
                    return true;
                }
                return false;
            }
            State::SynReceived if h.flags & ACK != 0 && h.ack == self.snd_nxt => {
                self.state = State::Established;
            }
            State::Closed => return false,
            _ => {}
        }
        let has_data = !payload.is_empty() || h.flags & FIN != 0;
        if has_data && h.seq != self.rcv_nxt {
            // Not the next byte: tell the peer what is expected.
            return true;
        }
        let fin_acked = h.flags & ACK != 0 && h.ack == self.snd_nxt;
        match self.state {
            State::FinWait1 if fin_acked => self.state = State::FinWait2,
            State::LastAck if fin_acked => self.state = State::Closed,
            _ => {}
        }
        self.received.extend_from_slice(payload);
        self.rcv_nxt = self.rcv_nxt.wrapping_add(payload.len() as u32);
        if h.flags & FIN != 0 {
            self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            self.state = match self.state {
                State::Established => State::CloseWait,
                State::FinWait1 | State::FinWait2 => {
                    self.time_wait_since = Some(now);
                    State::TimeWait
                }
                other => other,
            };
        }
        has_data
    }
}

/// The RST a host answers a segment with that no socket of its own takes (RFC 9293
/// §3.10.7.1): the segment's ACK number as sequence, or an ACK of all it occupied.
pub fn reset_for(h: &TcpHeader, payload_len: usize) -> Segment {
    let header = if h.flags & ACK != 0 {
        TcpHeader {
            src: h.dst,
            dst: h.src,
            seq: h.ack,
            ack: 0,
            flags: RST,
        }
    } else {
        let occupied =
            payload_len as u32 + u32::from(h.flags & SYN != 0) + u32::from(h.flags & FIN != 0);
        TcpHeader {
            src: h.dst,
            dst: h.src,
            seq: 0,
            ack: h.seq.wrapping_add(occupied),
            flags: RST | ACK,
        }
    };
    (header, Vec::new())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn addr(last: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), port)
    }

    /// Carries segments between two sockets until neither has anything to say.
    fn deliver(to: &mut TcpSocket, (h, payload): &Segment) -> Option<Segment> {
        to.receive(Timestamp::ZERO, h, payload).then(|| to.ack())
    }

    #[test]
    fn handshake_data_and_a_close_from_the_client_end_in_time_wait_on_the_client() {
        let (mut client, syn) = TcpSocket::connect(addr(1, 40000), addr(2, 80), 100);
        let (mut server, syn_ack) = TcpSocket::accept(&syn.0, 5000);
        let ack = deliver(&mut client, &syn_ack).expect("the handshake's ACK");
        assert_eq!(client.state, State::Established);
        assert_eq!(deliver(&mut server, &ack), None);
        assert_eq!(server.state, State::Established);

        let request = client.send(b"GET");
        let ack = deliver(&mut server, &request).expect("the data is acknowledged");
        assert_eq!(server.received, b"GET");
        assert_eq!(deliver(&mut client, &ack), None);

        let fin = client.close().expect("a FIN");
        assert!(server.receive(Timestamp::ZERO, &fin.0, &fin.1));
        assert_eq!(server.state, State::CloseWait);
        let server_fin = server.close().expect("the server's FIN");
        let last_ack = deliver(&mut client, &server_fin).expect("the last ACK");
        assert_eq!(client.state, State::TimeWait);
        assert_eq!(deliver(&mut server, &last_ack), None);
        assert_eq!(server.state, State::Closed);
    }

    #[test]
    fn a_reset_answers_a_syn_with_an_ack_of_it() {
        let (_, syn) = TcpSocket::connect(addr(1, 40000), addr(2, 81), 100);
        let (rst, _) = reset_for(&syn.0, 0);
        assert_eq!((rst.flags, rst.seq, rst.ack), (RST | ACK, 0, 101));
        assert_eq!((rst.src, rst.dst), (addr(2, 81), addr(1, 40000)));
    }
}
