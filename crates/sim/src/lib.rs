//! The simulated lab: masq's real director — `Worker::handle_frame`, its schedulers, its
//! connection table, its ARP and its trace hub — between simulated hosts on simulated
//! links, with a simulated clock. No root, no namespaces, no sockets: the lab anywhere.
//!
//! The hosts send the frames real hosts send (ARP, a TCP handshake, an HTTP request and
//! answer, the close and TIME_WAIT, UDP echo, ICMP port unreachable), with correct checksums; the real
//! servers answer as the lab's `masq-labsrv` does (`RS2 192.168.100.9`). Nothing here reads
//! a clock, starts a thread or makes a system call, and every collection iterates in a
//! fixed order: the same commands give the same frames, byte for byte.

#![forbid(unsafe_code)]

mod host;
mod http;
mod lab;
mod packet;
pub mod seed;
mod tcp;

pub use host::{HostConfig, Role, SERVICE_PORT};
pub use lab::{Lab, Protocol, Reply, SimError, Topology, CLIENT_TIMEOUT, DATAGRAM, LINK_LATENCY};

#[cfg(test)]
mod tests;
