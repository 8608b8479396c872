//! How much one endpoint lets its clients take ([`Limits`]); the doc of `http_server`
//! says what happens at each limit.

use std::time::Duration;

/// How much one endpoint lets its clients take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// From the accept, or the end of the previous response, to the end of a request head.
    pub header_timeout: Duration,
    /// From the end of a head to its response being ready, and from then to its last
    /// byte written; for a stream, the longest the client may leave it unread.
    pub response_timeout: Duration,
    /// Largest request head (request line and headers).
    pub max_head_bytes: usize,
    /// Largest request body (a command for the admin page is far smaller).
    pub max_body_bytes: u64,
}

impl Limits {
    /// What `--metrics` and `--web` use.
    pub const DEFAULT: Limits = Limits {
        max_connections: 64,
        header_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(10),
        max_head_bytes: 8 * 1024,
        max_body_bytes: 4 * 1024,
    };
}

/// hyper's read buffer for a connection (at least 8 KiB, hyper's minimum): room for the
/// largest head and what follows it.
pub(super) const READ_BUFFER: usize = 16 * 1024;
