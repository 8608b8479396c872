//! The simulated network: two links (the VIP side's and the DIP side's), the hosts on
//! them, masq's real director between them, and a simulated clock.
//!
//! A frame sent on a link arrives [`LINK_LATENCY`] later at every station the link's
//! switch delivers it to: the one owning its destination MAC, or all but the sender for
//! a broadcast. Frames in flight are delivered in time order, and in the order they were
//! sent within one millisecond, so the same commands give the same frames on every run.
//! The director is driven as masqd's packet threads drive it — `handle_frame`, then
//! `poll_transmit` until it is empty — and its housekeeping runs once a simulated second.
//! Time moves only while the lab works through an exchange ([`Lab::request`]).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use masq_core::director::DirectorConfig;
use masq_core::{Director, FrameMeta, Side, Timestamp, Verdict, Worker};
use masq_wire::ethernet::MacAddr;

use crate::host::{Host, HostConfig, Outcome, Role};

/// How long a frame takes across a link.
pub const LINK_LATENCY: Duration = Duration::from_millis(1);
/// How long a client waits for a connection to complete before it gives up (curl's
/// `--max-time 2`, as the lab's tests use it).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the director's housekeeping runs (as masqd runs it).
const HOUSEKEEPING_TICK: Duration = Duration::from_secs(1);
/// How often the rate estimator runs (IPVS's 2-second estimator).
const ESTIMATOR_TICK: Duration = Duration::from_secs(2);
/// Where the simulated clock starts: far enough from zero that nothing the director
/// computes backwards from `now` saturates.
const START: Timestamp = Timestamp(1_000_000);

/// What a client's datagram says; a real server echoes it after its name.
pub const DATAGRAM: &[u8] = b"ping\n";

/// The transport of a client's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// What a lab is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub director: DirectorConfig,
    /// The hosts on the VIP side's link (clients, a gateway).
    pub vip_side: Vec<HostConfig>,
    /// The hosts on the DIP side's link (real servers).
    pub dip_side: Vec<HostConfig>,
}

/// A station on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Station {
    Director,
    Host(usize),
}

/// A frame on its way to one station.
#[derive(Debug)]
struct InFlight {
    at: Timestamp,
    /// Send order, which breaks ties between frames arriving at the same time.
    seq: u64,
    link: Side,
    to: Station,
    frame: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for InFlight {}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InFlight {
    /// Reversed, so that the max-heap hands out the earliest frame first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// What one client connection got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The body of the real server's answer.
    Answered(String),
    /// The connection was reset, or the datagram answered with ICMP port unreachable:
    /// nothing listens there.
    Refused,
    /// Nothing answered within [`CLIENT_TIMEOUT`].
    TimedOut,
}

impl std::fmt::Display for Reply {
    /// As a student reads it: the real server's answer without its newline, or what went
    /// wrong in curl's words.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Answered(body) => f.write_str(body.trim_end_matches('\n')),
            Reply::Refused => f.write_str("refused: nothing listens on that port"),
            Reply::TimedOut => write!(
                f,
                "timed out after {} s without an answer",
                CLIENT_TIMEOUT.as_secs()
            ),
        }
    }
}

/// Why the lab could not do what it was asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SimError {
    #[error("no simulated client has the address {0} (the seed lab's client is 192.168.0.101)")]
    NoSuchClient(Ipv4Addr),
}

/// The simulated lab.
#[derive(Debug)]
pub struct Lab {
    director: Arc<Director>,
    worker: Worker,
    /// Every host; `links[i]` is the link host `i` is on.
    hosts: Vec<Host>,
    links: Vec<Side>,
    now: Timestamp,
    in_flight: BinaryHeap<InFlight>,
    sent: u64,
    next_housekeeping: Timestamp,
    next_estimate: Timestamp,
}

impl Lab {
    /// The lab `topology`, with a director that has no services yet.
    pub fn new(topology: Topology) -> Lab {
        let director = Director::new(topology.director);
        let worker = director.worker();
        let (mut hosts, mut links) = (Vec::new(), Vec::new());
        for (link, configs) in [
            (Side::Vip, topology.vip_side),
            (Side::Dip, topology.dip_side),
        ] {
            for config in configs {
                hosts.push(Host::new(config));
                links.push(link);
            }
        }
        Lab {
            director,
            worker,
            hosts,
            links,
            now: START,
            in_flight: BinaryHeap::new(),
            sent: 0,
            next_housekeeping: START + HOUSEKEEPING_TICK,
            next_estimate: START + ESTIMATOR_TICK,
        }
    }

    /// The seed lab.
    pub fn seed() -> Lab {
        Lab::new(crate::seed::topology())
    }

    /// The director, for its control plane.
    pub fn director(&self) -> &Arc<Director> {
        &self.director
    }

    /// The simulated time now.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Makes `count` requests one after the other from the client `from` to `service`:
    /// over TCP, a connection that fetches `/`; over UDP, a datagram ([`DATAGRAM`]) the
    /// real server echoes. Returns what each got. The clock moves on as far as each
    /// exchange needs: to the client's close or the echo, or to its timeout.
    ///
    /// # Errors
    /// When no client has the address `from`.
    pub fn request(
        &mut self,
        protocol: Protocol,
        service: SocketAddrV4,
        from: Ipv4Addr,
        count: usize,
    ) -> Result<Vec<Reply>, SimError> {
        let client = (0..self.hosts.len())
            .find(|&i| {
                let config = &self.hosts[i].config;
                config.addr == from && config.role == Role::Client
            })
            .ok_or(SimError::NoSuchClient(from))?;
        Ok((0..count)
            .map(|_| self.one_request(client, protocol, service))
            .collect())
    }

    fn one_request(&mut self, client: usize, protocol: Protocol, service: SocketAddrV4) -> Reply {
        let mut out = Vec::new();
        let host = &mut self.hosts[client];
        let port = match protocol {
            Protocol::Tcp => host.open(service, &mut out),
            Protocol::Udp => host.send_datagram(service, DATAGRAM, &mut out),
        };
        self.send_from_host(client, out);
        let deadline = self.now + CLIENT_TIMEOUT;
        let reply = loop {
            let host = &self.hosts[client];
            let outcome = match protocol {
                Protocol::Tcp => host.outcome(port),
                Protocol::Udp => host.datagram_outcome(port),
            };
            match outcome {
                Some(Outcome::Answered(body)) => {
                    break Reply::Answered(String::from_utf8_lossy(&body).into_owned())
                }
                Some(Outcome::Reset) => break Reply::Refused,
                None => {}
            }
            match self.in_flight.peek().map(|f| f.at) {
                Some(at) if at <= deadline => {
                    self.advance_to(at);
                    self.deliver_next();
                }
                _ => {
                    self.advance_to(deadline);
                    break Reply::TimedOut;
                }
            }
        };
        let host = &mut self.hosts[client];
        match protocol {
            Protocol::Udp => host.forget_datagram(port),
            Protocol::Tcp if reply == Reply::TimedOut => host.abandon(port),
            Protocol::Tcp => {}
        }
        reply
    }

    /// Moves the clock to `t`, running the director's housekeeping and the hosts'
    /// expiry at each tick passed on the way.
    fn advance_to(&mut self, t: Timestamp) {
        while self.next_housekeeping <= t {
            self.now = self.next_housekeeping;
            self.next_housekeeping = self.now + HOUSEKEEPING_TICK;
            self.worker.housekeeping(self.now);
            self.drain_director();
            for host in &mut self.hosts {
                host.expire(self.now);
            }
            if self.next_estimate <= self.now {
                self.next_estimate = self.now + ESTIMATOR_TICK;
                self.director.estimate();
            }
        }
        self.now = self.now.max(t);
    }

    fn deliver_next(&mut self) {
        let Some(InFlight {
            link,
            to,
            mut frame,
            ..
        }) = self.in_flight.pop()
        else {
            return;
        };
        match to {
            Station::Director => {
                let verdict =
                    self.worker
                        .handle_frame(self.now, link, &mut frame, FrameMeta::default());
                if let Verdict::Forward(side) = verdict {
                    self.send(Station::Director, side, frame);
                }
                self.drain_director();
            }
            Station::Host(i) => {
                let mut out = Vec::new();
                self.hosts[i].receive(self.now, &frame, &mut out);
                self.send_from_host(i, out);
            }
        }
    }

    /// Sends every frame the director generated or released.
    fn drain_director(&mut self) {
        let mut frames = Vec::new();
        while let Some(t) = self.worker.poll_transmit(self.now) {
            frames.push((t.side, t.frame.to_vec()));
        }
        for (side, frame) in frames {
            self.send(Station::Director, side, frame);
        }
    }

    /// Sends what host `i` had to send, on its link.
    fn send_from_host(&mut self, i: usize, frames: Vec<Vec<u8>>) {
        for frame in frames {
            self.send(Station::Host(i), self.links[i], frame);
        }
    }

    /// Puts `frame` on `link`: the switch delivers it to the owner of its destination
    /// MAC, or to every other station for a broadcast.
    fn send(&mut self, from: Station, link: Side, frame: Vec<u8>) {
        let Some(dst) = frame
            .get(..6)
            .map(|m| MacAddr(m.try_into().expect("six bytes")))
        else {
            return;
        };
        let broadcast = dst == MacAddr::BROADCAST;
        let director_mac = self.director.config().side(link).mac;
        let mut to: Vec<Station> = Vec::new();
        if from != Station::Director && (broadcast || dst == director_mac) {
            to.push(Station::Director);
        }
        to.extend(
            (0..self.hosts.len())
                .filter(|&i| self.links[i] == link && from != Station::Host(i))
                .filter(|&i| broadcast || self.hosts[i].config.mac == dst)
                .map(Station::Host),
        );
        let at = self.now + LINK_LATENCY;
        for station in to {
            self.sent += 1;
            self.in_flight.push(InFlight {
                at,
                seq: self.sent,
                link,
                to: station,
                frame: frame.clone(),
            });
        }
    }
}
