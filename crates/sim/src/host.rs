//! A simulated host: one interface with one address, a neighbour cache filled by ARP, a
//! default gateway, TCP sockets, and its application — a client that fetches `/`, or a
//! real server running the lab's web server on port 80 and its UDP echo.
//!
//! A host takes in the frames its link delivers and hands back the frames it sends. It
//! answers as a Linux host does: ARP requests for its address; a TCP segment no socket
//! takes with a RST, a datagram to a closed port with ICMP port unreachable; a packet
//! whose next hop is not resolved yet waits for the ARP answer.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use masq_core::Timestamp;
use masq_wire::arp::{self, ArpPacket};
use masq_wire::ethernet::{self, EthernetFrame, MacAddr};
use masq_wire::icmp;
use masq_wire::ipv4::{Ipv4Packet, PROTO_UDP};

use crate::http;
use crate::packet::{self, TcpHeader, Transport};
use crate::tcp::{self, Segment, State, TcpSocket};

/// The port of the real servers' web server and UDP echo.
pub const SERVICE_PORT: u16 = 80;
/// How long a closed connection stays in TIME_WAIT on a host (Linux's 60 s).
const TIME_WAIT: Duration = Duration::from_secs(60);
/// Most frames that wait for ARP answers on a host, as Linux's `unres_qlen` bounds them;
/// beyond it the oldest is dropped.
const UNRESOLVED_QUEUE: usize = 100;
/// The first local port a client uses; each connection takes the next one.
const FIRST_CLIENT_PORT: u16 = 40000;

/// What runs on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opens connections when told to.
    Client,
    /// Answers HTTP on port 80 with its name and the address reached, and echoes UDP
    /// datagrams to port 80 prefixed with its name, as masq-labsrv does.
    RealServer,
}

/// How a host is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// The name its web server answers with (`RS1`), or the client's name.
    pub name: String,
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub mac: MacAddr,
    pub gateway: Option<Ipv4Addr>,
    pub role: Role,
}

/// How a client's connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The whole answer arrived: its body.
    Answered(Vec<u8>),
    /// The connection was reset before a whole answer arrived.
    Reset,
}

/// A simulated host.
#[derive(Debug)]
pub struct Host {
    pub config: HostConfig,
    neighbours: BTreeMap<Ipv4Addr, MacAddr>,
    /// Frames waiting for their next hop's MAC, with that next hop.
    waiting: Vec<(Ipv4Addr, Vec<u8>)>,
    sockets: Vec<TcpSocket>,
    /// The local ports of the client's connections that sent their request.
    requested: Vec<u16>,
    /// The client's datagrams by local port, with their answer once it came.
    datagrams: Vec<(u16, Option<Outcome>)>,
    next_ident: u16,
    next_isn: u32,
    next_port: u16,
}

impl Host {
    pub fn new(config: HostConfig) -> Self {
        // Initial sequence numbers differ per host, and are the same on every run.
        let next_isn = u32::from(config.addr).wrapping_mul(2_654_435_761);
        Host {
            config,
            neighbours: BTreeMap::new(),
            waiting: Vec::new(),
            sockets: Vec::new(),
            requested: Vec::new(),
            datagrams: Vec::new(),
            next_ident: 1,
            next_isn,
            next_port: FIRST_CLIENT_PORT,
        }
    }

    /// Opens a connection to `remote` and sends `GET /` once it is up; returns its local
    /// port. The frames to send are appended to `out`.
    pub fn open(&mut self, remote: SocketAddrV4, out: &mut Vec<Vec<u8>>) -> u16 {
        let port = self.local_port();
        let local = SocketAddrV4::new(self.config.addr, port);
        let isn = self.isn();
        let (socket, syn) = TcpSocket::connect(local, remote, isn);
        self.sockets.retain(|s| s.local != local);
        self.requested.retain(|&p| p != port);
        self.sockets.push(socket);
        self.send_segment(syn, out);
        port
    }

    /// Gives up the connection from local `port` (a client that timed out), as a
    /// process that closes a socket still connecting: nothing is sent.
    pub fn abandon(&mut self, port: u16) {
        self.sockets.retain(|s| s.local.port() != port);
    }

    /// Sends `payload` to `remote` from a port of its own; returns that port.
    pub fn send_datagram(
        &mut self,
        remote: SocketAddrV4,
        payload: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> u16 {
        let port = self.local_port();
        let local = SocketAddrV4::new(self.config.addr, port);
        self.datagrams.retain(|(p, _)| *p != port);
        self.datagrams.push((port, None));
        self.send_ip(*remote.ip(), out, |macs, ident| {
            packet::udp_frame(macs, ident, local, remote, payload)
        });
        port
    }

    /// What answered the datagram sent from local `port`, once something has: the echo,
    /// or ICMP port unreachable (as [`Outcome::Reset`]).
    pub fn datagram_outcome(&self, port: u16) -> Option<Outcome> {
        self.datagrams
            .iter()
            .find(|(p, _)| *p == port)
            .and_then(|(_, answer)| answer.clone())
    }

    /// Stops waiting for an answer to the datagram sent from local `port`.
    pub fn forget_datagram(&mut self, port: u16) {
        self.datagrams.retain(|(p, _)| *p != port);
    }

    /// The next local port, as Linux hands out ephemeral ports (here in order, so that
    /// runs repeat).
    fn local_port(&mut self) -> u16 {
        let port = self.next_port;
        self.next_port = self.next_port.checked_add(1).unwrap_or(FIRST_CLIENT_PORT);
        port
    }

    /// How the connection from local `port` ended, once it has.
    pub fn outcome(&self, port: u16) -> Option<Outcome> {
        let socket = self.sockets.iter().find(|s| s.local.port() == port)?;
        if socket.reset {
            return Some(Outcome::Reset);
        }
        match socket.state {
            State::TimeWait | State::Closed => Some(
                http::response_body(&socket.received)
                    .map_or(Outcome::Reset, |body| Outcome::Answered(body.to_vec())),
            ),
            _ => None,
        }
    }

    /// Forgets closed connections and those whose TIME_WAIT is over (the lab reads a
    /// client's outcome as soon as its connection closes, before the next expiry).
    pub fn expire(&mut self, now: Timestamp) {
        self.sockets.retain(|s| {
            s.state != State::Closed
                && s.time_wait_since
                    .is_none_or(|since| now.saturating_since(since) < TIME_WAIT)
        });
        let sockets = &self.sockets;
        self.requested
            .retain(|&port| sockets.iter().any(|s| s.local.port() == port));
    }

    /// Takes in one frame from the link; the frames it makes the host send are appended
    /// to `out`.
    pub fn receive(&mut self, now: Timestamp, frame: &[u8], out: &mut Vec<Vec<u8>>) {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        let to = eth.dst_addr();
        if to != self.config.mac && to != MacAddr::BROADCAST {
            return;
        }
        match eth.ethertype() {
            ethernet::ETHERTYPE_ARP => self.receive_arp(eth.payload(), out),
            ethernet::ETHERTYPE_IPV4 => {
                // A packet a host's stack would discard reads as nothing.
                let ip = eth.payload();
                if let Some(transport) = packet::read_ipv4(ip) {
                    self.receive_ipv4(now, ip, transport, out);
                }
            }
            _ => {}
        }
    }

    fn receive_arp(&mut self, body: &[u8], out: &mut Vec<Vec<u8>>) {
        let Ok(packet) = ArpPacket::new_checked(body) else {
            return;
        };
        if packet.target_ip() != self.config.addr {
            return;
        }
        let sender = (packet.sender_mac(), packet.sender_ip());
        self.neighbours.insert(sender.1, sender.0);
        if packet.operation() == arp::OP_REQUEST {
            let mut reply = vec![0u8; arp::FRAME_LEN];
            arp::write_frame(
                &mut reply,
                arp::OP_REPLY,
                (self.config.mac, self.config.addr),
                sender,
            );
            out.push(reply);
        }
        let (ready, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(hop, _)| *hop == sender.1);
        self.waiting = still;
        for (_, mut frame) in ready {
            EthernetFrame::new_unchecked(&mut frame[..]).set_dst_addr(sender.0);
            out.push(frame);
        }
    }

    /// An IPv4 packet `ip` for this host, read as `transport`.
    fn receive_ipv4(
        &mut self,
        now: Timestamp,
        ip: &[u8],
        transport: Transport,
        out: &mut Vec<Vec<u8>>,
    ) {
        let me = self.config.addr;
        match transport {
            Transport::Tcp(h, payload) if *h.dst.ip() == me => {
                self.receive_tcp(now, &h, &payload, out)
            }
            Transport::Udp { src, dst, payload } if *dst.ip() == me => {
                self.receive_udp(ip, src, dst, payload, out)
            }
            Transport::Icmp { dst, message } if dst == me => {
                // Port unreachable about a datagram this client sent: refused.
                let Ok(flow) = icmp::quoted_flow(&message) else {
                    return;
                };
                let unreachable = message[0] == icmp::TYPE_DEST_UNREACHABLE
                    && message[1] == icmp::CODE_PORT_UNREACHABLE;
                if unreachable && flow.protocol == PROTO_UDP && flow.src == me {
                    self.datagram_answered(flow.sport, Outcome::Reset);
                }
            }
            _ => {}
        }
    }

    /// A datagram: a real server echoes those to its port 80 prefixed with its name, and
    /// answers any other port with ICMP port unreachable; a client takes the answer to a
    /// datagram it sent.
    fn receive_udp(
        &mut self,
        ip: &[u8],
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: Vec<u8>,
        out: &mut Vec<Vec<u8>>,
    ) {
        match self.config.role {
            Role::RealServer if dst.port() == SERVICE_PORT => {
                let mut reply = self.config.name.clone().into_bytes();
                reply.push(b' ');
                reply.extend_from_slice(&payload);
                self.send_ip(*src.ip(), out, |macs, ident| {
                    packet::udp_frame(macs, ident, dst, src, &reply)
                });
            }
            Role::RealServer => {
                let me = self.config.addr;
                // The ICMP error quotes the datagram it is about.
                let Ok(offending) = Ipv4Packet::new_checked(ip) else {
                    return;
                };
                self.send_ip(*src.ip(), out, |macs, _| {
                    packet::icmp_error_frame(
                        macs,
                        me,
                        &offending,
                        icmp::TYPE_DEST_UNREACHABLE,
                        icmp::CODE_PORT_UNREACHABLE,
                    )
                });
            }
            Role::Client => self.datagram_answered(dst.port(), Outcome::Answered(payload)),
        }
    }

    fn datagram_answered(&mut self, port: u16, outcome: Outcome) {
        if let Some((_, answer)) = self.datagrams.iter_mut().find(|(p, _)| *p == port) {
            answer.get_or_insert(outcome);
        }
    }

    fn receive_tcp(
        &mut self,
        now: Timestamp,
        h: &TcpHeader,
        payload: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) {
        let found = self
            .sockets
            .iter()
            .position(|s| s.local == h.dst && s.remote == h.src);
        let index = match found {
            Some(i) => i,
            None if h.flags == masq_wire::tcp::flags::SYN
                && h.dst.port() == SERVICE_PORT
                && self.config.role == Role::RealServer =>
            {
                let isn = self.isn();
                let (socket, syn_ack) = TcpSocket::accept(h, isn);
                self.sockets.push(socket);
                self.send_segment(syn_ack, out);
                return;
            }
            None if h.flags & masq_wire::tcp::flags::RST != 0 => return,
            None => {
                let rst = tcp::reset_for(h, payload.len());
                self.send_segment(rst, out);
                return;
            }
        };
        let ack_due = self.sockets[index].receive(now, h, payload);
        let replies = self.application(index);
        if replies.is_empty() && ack_due {
            let ack = self.sockets[index].ack();
            self.send_segment(ack, out);
        }
        for segment in replies {
            self.send_segment(segment, out);
        }
    }

    /// What the application does after its socket at `index` took a segment: a client
    /// sends its request once connected and closes once answered; a web server answers a
    /// whole request and closes when the client has.
    fn application(&mut self, index: usize) -> Vec<Segment> {
        let role = self.config.role;
        let name = self.config.name.clone();
        let socket = &mut self.sockets[index];
        let port = socket.local.port();
        let mut segments = Vec::new();
        match role {
            Role::Client => {
                if socket.state == State::Established && !self.requested.contains(&port) {
                    self.requested.push(port);
                    segments.push(socket.send(&http::request(*socket.remote.ip())));
                } else if http::response_body(&socket.received).is_some() {
                    segments.extend(socket.close());
                }
            }
            Role::RealServer => {
                if socket.may_send() && http::request_complete(&socket.received) {
                    let answer = http::answer(&name, *socket.local.ip());
                    socket.received.clear();
                    segments.push(socket.send(&answer));
                }
                if socket.state == State::CloseWait {
                    segments.extend(socket.close());
                }
            }
        }
        segments
    }

    fn isn(&mut self) -> u32 {
        let isn = self.next_isn;
        self.next_isn = self.next_isn.wrapping_add(64_000);
        isn
    }

    fn send_segment(&mut self, (h, payload): Segment, out: &mut Vec<Vec<u8>>) {
        self.send_ip(*h.dst.ip(), out, |macs, ident| {
            packet::tcp_frame(macs, ident, &h, &payload)
        });
    }

    /// Sends a packet to `dst` through its next hop: on-link hosts directly, the rest
    /// through the gateway (a host without a route drops it, as Linux answers
    /// "Network is unreachable"). `build` makes the frame for (source, destination) MACs
    /// and an IP identification.
    fn send_ip(
        &mut self,
        dst: Ipv4Addr,
        out: &mut Vec<Vec<u8>>,
        build: impl FnOnce((MacAddr, MacAddr), u16) -> Vec<u8>,
    ) {
        let Some(hop) = self.next_hop(dst) else {
            return;
        };
        let ident = self.next_ident;
        self.next_ident = self.next_ident.wrapping_add(1);
        match self.neighbours.get(&hop) {
            Some(&mac) => out.push(build((self.config.mac, mac), ident)),
            None => {
                if self.waiting.len() == UNRESOLVED_QUEUE {
                    self.waiting.remove(0);
                }
                self.waiting
                    .push((hop, build((self.config.mac, MacAddr::ZERO), ident)));
                // Asked again for each packet: a host that did not answer may have come
                // up since (Linux retries too, once a second).
                let mut request = vec![0u8; arp::FRAME_LEN];
                arp::write_frame(
                    &mut request,
                    arp::OP_REQUEST,
                    (self.config.mac, self.config.addr),
                    (MacAddr::ZERO, hop),
                );
                out.push(request);
            }
        }
    }

    fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        let prefix = u32::from(self.config.prefix.min(32));
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        if u32::from(dst) & mask == u32::from(self.config.addr) & mask {
            Some(dst)
        } else {
            self.config.gateway
        }
    }
}
