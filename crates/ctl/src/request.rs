//! The control socket's message format, shared by `masqd` and `masqadm`.
//!
//! One request per connection: the client writes a JSON [`Request`] and shuts down its
//! write side; the daemon answers with a JSON [`crate::Outcome`] and closes. Streaming
//! requests (`--trace`) get [`StreamChunk`] lines first. The daemon
//! parses the argument vector itself with the same grammar `masqadm` would use, so the two
//! can never disagree about what a command means.

use serde::{Deserialize, Serialize};

/// Largest request the daemon reads (a `-R` of a large rules file fits comfortably).
pub const MAX_REQUEST_BYTES: usize = 8 << 20;

/// The default control socket path.
pub const DEFAULT_SOCKET: &str = "/run/masq/masqd.sock";

/// The environment variable that overrides the socket path.
pub const SOCKET_ENV: &str = "MASQ_SOCKET";

/// One ipvsadm invocation sent to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The program name to use in messages (`argv[0]`).
    pub program: String,
    /// The arguments after `argv[0]`.
    pub args: Vec<String>,
    /// Standard input, for `-R`.
    pub stdin: Option<String>,
}

/// A piece of streamed output (`--trace`): printed by `masqadm` as it arrives. The daemon
/// sends any number of these, one JSON object per line, before the final
/// [`crate::Outcome`]; an empty `out` is a keep-alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamChunk {
    pub out: String,
}

/// One captured frame, streamed for `masqadm --capture` before the final outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameChunk {
    /// Wall-clock time, microseconds since the Unix epoch.
    pub epoch_us: u64,
    /// The LVS-NAT stage, 1 to 4.
    pub stage: u8,
    /// The frame's bytes, hex-encoded.
    pub hex: String,
}

/// The line a captured frame travels in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureLine {
    pub frame: FrameChunk,
}
