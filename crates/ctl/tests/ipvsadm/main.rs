//! End-to-end tests of the ipvsadm language against the real director
//! (`masq_core::Director`'s control interface, sans-IO, no root): the kernel transcripts
//! replayed byte for byte, and ipvsadm's observed outputs, messages and exit codes.

mod cli;
mod listings;
mod props;
mod restore;
mod traffic;
mod transcripts;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use masq_core::control::{Control, Protocol};
use masq_core::{Director, DirectorConfig, SideConfig, Timestamp};
use masq_ctl::{run, Env, Names, Outcome};
use masq_wire::ethernet::MacAddr;

pub use traffic::{Counters, WithTraffic};

/// A director set up as the one of the lab the transcripts were taken in: the VIP side on
/// 192.168.0.10/24, the DIP side on 192.168.100.10/24, no services.
pub fn director() -> Arc<Director> {
    Director::new(DirectorConfig {
        vip_side: SideConfig {
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            addrs: vec![(Ipv4Addr::new(192, 168, 0, 10), 24)],
        },
        dip_side: SideConfig {
            mac: MacAddr([2, 0, 0, 0, 0, 2]),
            addrs: vec![(Ipv4Addr::new(192, 168, 100, 10), 24)],
        },
        vip_gateway: None,
        max_conns: masq_core::director::DEFAULT_MAX_CONNS,
        max_neighbours: masq_core::neigh::DEFAULT_CAPACITY,
    })
}

/// The moment every command runs at: listings show expiry times relative to it.
pub fn now() -> Timestamp {
    Timestamp::from_secs(1000)
}

/// A host name longer than ipvsadm's listing columns.
pub const LONG_HOST: &str = "a-very-long-host-name.example.org";

/// The name databases of the lab the transcripts were taken in (the Debian services file's
/// entries that matter, no PTR records except localhost) plus one long host name.
pub struct LabNames;

const SERVICES: &[(&str, u16, Protocol)] = &[
    ("domain", 53, Protocol::Tcp),
    ("domain", 53, Protocol::Udp),
    ("http", 80, Protocol::Tcp),
    ("www", 80, Protocol::Tcp),
    ("https", 443, Protocol::Tcp),
    ("https", 443, Protocol::Udp),
    ("mdns", 5353, Protocol::Udp),
    ("http-alt", 8080, Protocol::Tcp),
    ("webcache", 8080, Protocol::Tcp),
];

impl Names for LabNames {
    fn service_name(&self, port: u16, proto: Protocol) -> Option<String> {
        SERVICES
            .iter()
            .find(|(_, p, pr)| *p == port && *pr == proto)
            .map(|(n, ..)| n.to_string())
    }
    fn port_by_name(&self, name: &str, proto: Protocol) -> Option<u16> {
        SERVICES
            .iter()
            .find(|(n, _, pr)| *n == name && *pr == proto)
            .map(|(_, p, _)| *p)
    }
    fn host_name(&self, addr: IpAddr) -> Option<String> {
        match addr {
            IpAddr::V4(a) if a == Ipv4Addr::LOCALHOST => Some("localhost".to_string()),
            IpAddr::V4(a) if a == Ipv4Addr::new(10, 9, 9, 9) => Some(LONG_HOST.to_string()),
            _ => None,
        }
    }
    fn resolve_host(&self, name: &str) -> Option<Ipv4Addr> {
        (name == "localhost").then_some(Ipv4Addr::LOCALHOST)
    }
}

/// Run an argument vector as `ipvsadm`.
pub fn run_args(director: &dyn Control, args: &[&str]) -> Outcome {
    run_full(director, "ipvsadm", args, None)
}

/// Run a command line split on blanks, as `ipvsadm`.
pub fn sh(director: &dyn Control, line: &str) -> Outcome {
    let args: Vec<&str> = line.split_whitespace().collect();
    run_args(director, &args)
}

/// Run with a program name and restore input.
pub fn run_full(
    director: &dyn Control,
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Outcome {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env = Env {
        program,
        stdin,
        names: &LabNames,
    };
    run(&args, &env, director)
}

/// Expect a success that printed exactly `stdout`.
#[track_caller]
pub fn ok(o: &Outcome, stdout: &str) {
    assert_eq!(
        (o.stdout.as_str(), o.stderr.as_str(), o.code),
        (stdout, "", 0),
        "outcome"
    );
}

/// Expect a failure that printed exactly `stderr` (plus its newline) and exited `code`.
#[track_caller]
pub fn err(o: &Outcome, stderr: &str, code: i32) {
    assert_eq!(
        (o.stdout.as_str(), o.stderr.as_str(), o.code),
        ("", format!("{stderr}\n").as_str(), code),
        "outcome"
    );
}

/// One command of a transcript: the ipvsadm arguments, what it printed, its exit code.
pub struct Block {
    pub args: String,
    pub output: String,
    pub code: i32,
}

/// Cut a transcript into its `# ipvsadm …` commands. Lines from other commands (`# cat …`,
/// traffic notes) end the previous block and are skipped.
pub fn blocks(transcript: &str) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    let mut open = false;
    for line in transcript.lines() {
        if let Some(cmd) = line.strip_prefix("# ipvsadm") {
            out.push(Block {
                args: cmd.trim().to_string(),
                output: String::new(),
                code: 0,
            });
            open = true;
        } else if let Some(rc) = line.strip_prefix("# rc=") {
            if let Some(b) = out.last_mut() {
                b.code = rc.parse().expect("rc");
            }
            open = false;
        } else if line.starts_with("# ") || line.starts_with("conn ") || line.starts_with("PICKS ")
        {
            open = false;
        } else if open {
            if let Some(b) = out.last_mut() {
                b.output.push_str(line);
                b.output.push('\n');
            }
        }
    }
    out
}

/// Run one transcript block and compare: output on stdout for a success, on stderr for a
/// failure, and the exit code.
#[track_caller]
pub fn replay(director: &dyn Control, b: &Block) {
    let o = sh(director, &b.args);
    let (stdout, stderr) = if b.code == 0 {
        (b.output.as_str(), "")
    } else {
        ("", b.output.as_str())
    };
    assert_eq!(
        (o.stdout.as_str(), o.stderr.as_str(), o.code),
        (stdout, stderr, b.code),
        "ipvsadm {}",
        b.args
    );
}
