//! What one endpoint's server counts, for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// What one endpoint's server has seen, for `/metrics`.
#[derive(Debug)]
pub struct Counters {
    /// The endpoint, as `/metrics` labels it: `metrics` or `web`.
    pub endpoint: &'static str,
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Failed accepts (descriptors or buffers exhausted, …).
    pub accept_errors: AtomicU64,
    /// Connections closed at a deadline: head, response or stream.
    pub timed_out: AtomicU64,
    /// Requests refused for their `Host`: none or a malformed one.
    pub malformed_host: AtomicU64,
    /// Requests refused for their `Host`: a name this server does not answer to.
    pub foreign_host: AtomicU64,
    /// Changes refused for a missing or wrong admin token (`--web-admin`).
    pub bad_token: AtomicU64,
}

impl Counters {
    pub(super) fn new(endpoint: &'static str) -> Counters {
        Counters {
            endpoint,
            accepted: AtomicU64::new(0),
            open: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            malformed_host: AtomicU64::new(0),
            foreign_host: AtomicU64::new(0),
            bad_token: AtomicU64::new(0),
        }
    }
}

/// Counts a connection as open while it lives.
pub(super) struct OpenConnection(Arc<Counters>);

impl OpenConnection {
    pub(super) fn new(counters: &Arc<Counters>) -> OpenConnection {
        counters.open.fetch_add(1, Relaxed);
        OpenConnection(counters.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}
