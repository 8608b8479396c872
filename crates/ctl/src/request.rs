//! The control socket's message format, shared by `masqd` and `masqadm`.
//!
//! One request per connection: the client writes a JSON [`Request`] and shuts down its
//! write side; the daemon answers with a JSON [`crate::Outcome`] and closes. Streaming
//! requests (`--trace`) get [`StreamChunk`] lines first. The daemon
//! parses the argument vector itself with the same grammar `masqadm` would use, so the two
//! can never disagree about what a command means.

use std::net::{Ipv4Addr, SocketAddrV4};

use masq_core::control::Protocol;
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

/// The first argument of a simulated-lab request (masq's extension, answered only by a
/// `masqd --simulate`).
pub const SIM_REQUEST: &str = "--sim-request";

/// Most connections one `--sim-request` opens: the exchanges run one after the other on
/// the control plane, so a request is bounded in the work it asks for.
pub const MAX_SIM_CONNECTIONS: u32 = 10_000;

/// `masqadm --sim-request [-t|-u VIP:PORT] [--from CIP] [--count N]`: a simulated client
/// opens `count` connections to `service` (or sends as many datagrams), one after the
/// other, and each prints who answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimRequest {
    /// TCP or UDP.
    pub protocol: Protocol,
    pub service: SocketAddrV4,
    /// The simulated client that connects.
    pub from: Ipv4Addr,
    pub count: u32,
}

impl Default for SimRequest {
    /// The seed lab's client asking its web service once.
    fn default() -> Self {
        SimRequest {
            protocol: Protocol::Tcp,
            service: SocketAddrV4::new(Ipv4Addr::new(192, 168, 0, 10), 80),
            from: Ipv4Addr::new(192, 168, 0, 101),
            count: 1,
        }
    }
}

impl SimRequest {
    /// Whether `args` is a simulated-lab request.
    pub fn is_sim_request(args: &[String]) -> bool {
        args.first().is_some_and(|a| a == SIM_REQUEST)
    }

    /// Parses `--sim-request` and its options.
    ///
    /// # Errors
    /// A message naming the bad option or value.
    pub fn parse(args: &[String]) -> Result<SimRequest, String> {
        let mut out = SimRequest::default();
        let mut it = args.iter().skip(1);
        while let Some(arg) = it.next() {
            let mut value = || {
                it.next()
                    .ok_or_else(|| format!("{SIM_REQUEST}: {arg} needs a value"))
            };
            let bad = |wants: &str, value: &str| {
                format!("{SIM_REQUEST}: {arg} wants {wants}, not `{value}'")
            };
            match arg.as_str() {
                "-t" | "--tcp-service" | "-u" | "--udp-service" => {
                    let v = value()?;
                    out.service = v.parse().map_err(|_| bad("VIP:PORT (IPv4)", v))?;
                    out.protocol = if arg.starts_with("-t") || arg == "--tcp-service" {
                        Protocol::Tcp
                    } else {
                        Protocol::Udp
                    };
                }
                "--from" => {
                    let v = value()?;
                    out.from = v.parse().map_err(|_| bad("an IPv4 address", v))?;
                }
                "--count" | "-n" => {
                    let v = value()?;
                    out.count = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_SIM_CONNECTIONS).contains(n))
                        .ok_or_else(|| {
                            bad(&format!("a number from 1 to {MAX_SIM_CONNECTIONS}"), v)
                        })?;
                }
                other => return Err(format!("{SIM_REQUEST}: unknown option `{other}'")),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn a_sim_request_defaults_to_the_seed_client_and_service_once() {
        assert!(SimRequest::is_sim_request(&args("--sim-request")));
        assert!(!SimRequest::is_sim_request(&args("-L -n")));
        assert_eq!(
            SimRequest::parse(&args("--sim-request")),
            Ok(SimRequest::default())
        );
        let asked = SimRequest::parse(&args(
            "--sim-request -t 192.168.0.10:8080 --from 192.168.0.102 --count 4",
        ));
        assert_eq!(
            asked,
            Ok(SimRequest {
                protocol: Protocol::Tcp,
                service: "192.168.0.10:8080".parse().unwrap(),
                from: Ipv4Addr::new(192, 168, 0, 102),
                count: 4,
            })
        );
        let udp = SimRequest::parse(&args("--sim-request -u 192.168.0.10:53"));
        assert_eq!(udp.map(|r| r.protocol), Ok(Protocol::Udp));
    }

    #[test]
    fn a_bad_sim_request_option_is_named() {
        for (line, message) in [
            (
                "--sim-request --count 0",
                "--sim-request: --count wants a number from 1 to 10000, not `0'",
            ),
            (
                "--sim-request -t vip",
                "--sim-request: -t wants VIP:PORT (IPv4), not `vip'",
            ),
            (
                "--sim-request --from",
                "--sim-request: --from needs a value",
            ),
            (
                "--sim-request --packets x",
                "--sim-request: unknown option `--packets'",
            ),
        ] {
            assert_eq!(
                SimRequest::parse(&args(line)),
                Err(message.to_string()),
                "{line}"
            );
        }
    }
}
