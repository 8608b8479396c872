//! The HTTP/1.1 server under `--metrics` and `--web`: hyper on masqd's control-plane
//! runtime, with the limits a port that local users (and other hosts, if it is bound so)
//! can reach needs. HTTP clients must never cost masqd its descriptors, tasks or memory,
//! and a client that sends nothing, or too little, must not keep a connection.
//!
//! Each limit is a field of [`Limits`]; at the limit:
//!
//! - **connections**: a permit is taken *before* `accept`, so past `max_connections` the
//!   next connections wait, unaccepted, in the kernel's listen backlog: no descriptor, no
//!   task, and they are served in turn as others close.
//! - **accept errors** (EMFILE, ENFILE, ENOBUFS…): the loop sleeps 10 ms, doubling up to
//!   1 s while they last, and logs once per episode; it never spins.
//! - **request body**: announced by `Content-Length` (else 411: no chunked uploads) and
//!   at most `max_body_bytes` (else 413), checked before any handler runs.
//! - **request head**: at most `max_head_bytes` (else 431 and close), and complete within
//!   `header_timeout` of the accept or of the end of the previous response, else the
//!   connection is closed. This is hyper's `header_read_timeout`, whose timer (hyper 1.13)
//!   starts when hyper starts waiting for a head, not at the first byte: it closes a
//!   connection that never sends a byte, a slowloris, and an idle keep-alive connection.
//! - **response**: from the end of the head, the response (the request body read and the
//!   work done) must be ready within `response_timeout`, and once ready, written out
//!   within `response_timeout` again (a client that does not read is dropped); else the
//!   connection is closed.
//! - **streams** (a response marked [`Streaming`]): no response deadline, but hyper must
//!   ask the stream for more at least every `response_timeout` — it stops asking when the
//!   client stops reading and the buffers are full — and data left unacknowledged that
//!   long (a client that vanished without a FIN) ends the connection (`TCP_USER_TIMEOUT`).
//!   A client that closes is seen at once: hyper reads the end of file.
//! - **Host**: every request must name this server (see
//!   [`AllowedHosts`](hosts::AllowedHosts)): 421 or 400.
//! - **closing after a refusal**: FIN first, then what the client still sends is read
//!   and dropped (at most 64 KiB, 1 s), so that the refusal arrives instead of a reset.
//!
//! Every refusal and every connection closed at a deadline is counted ([`Counters`]).

mod connection;
mod counters;
mod deadline;
mod hosts;
mod limits;
mod refusal;
mod response;
mod server;
#[cfg(test)]
mod tests;

pub use counters::Counters;
pub use hosts::HostName;
pub use limits::Limits;
pub use response::{full, text, Body, PolledFrame, Streaming};
pub use server::Server;
