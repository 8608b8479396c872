//! masq-labsrv: the real server of masq's LVS-NAT lab.
//!
//! Four small tools in one binary, so the lab needs nothing but what it builds:
//! - `http`: an HTTP/1.1 server whose every answer names the server and the address the
//!   connection arrived on, and which logs the client address of every connection — the
//!   two things a student checks behind a NAT director;
//! - `udp-echo`: answers each datagram with its name and the payload;
//! - `udp-client`: sends datagrams and prints the replies (netcat variants differ too much
//!   to script against);
//! - `tunnel-end`: the real server's end of an IPIP tunnel where the kernel has none.
//!
//! Plain std threads and blocking sockets: every wait is a blocking call or a timeout, so
//! nothing spins, and SIGTERM's default action stops the process.
#![deny(unsafe_code)]

mod http;
mod tunnel_end;
mod udp;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// The real server of masq's LVS-NAT lab.
#[derive(Debug, Parser)]
#[command(name = "masq-labsrv", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP/1.1: every request gets `200 OK` with "<name> <local address>";
    /// `GET /bytes/N` gets N bytes (up to 1 GiB). Logs one line per connection.
    Http {
        /// The name the server answers with, e.g. RS1.
        #[arg(long)]
        name: String,
        /// Address and port to listen on.
        #[arg(long, default_value = "0.0.0.0:80")]
        listen: SocketAddr,
        /// Append the per-connection log lines to this file too (they always go to stdout).
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
    },
    /// Answer each datagram with "<name> " followed by its payload.
    UdpEcho {
        /// Address and port to listen on.
        #[arg(long, default_value = "0.0.0.0:7")]
        listen: SocketAddr,
        /// The name the replies start with.
        #[arg(long, default_value = "labsrv")]
        name: String,
    },
    /// Send a datagram (or several, from one source port) and print each reply.
    UdpClient {
        /// Where to send, e.g. 192.168.0.10:7.
        #[arg(long, value_name = "ADDR:PORT")]
        to: SocketAddr,
        /// The payload.
        #[arg(long)]
        message: String,
        /// How long to wait for each reply.
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
        timeout_ms: u64,
        /// How many datagrams to send, one after the other reply.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        count: u32,
    },
    /// Take the client's packets out of the IPIP packets this host receives and hand them
    /// to this host's own input, as tunl0 would; for kernels without the ipip module.
    TunnelEnd {
        /// A VIP this host holds (on lo); repeat for several. Packets for other addresses
        /// are refused.
        #[arg(long = "vip", required = true)]
        vips: Vec<Ipv4Addr>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Http { name, listen, log } => http::serve(&name, listen, log.as_deref()),
        Command::UdpEcho { listen, name } => udp::echo(listen, &name),
        Command::UdpClient {
            to,
            message,
            timeout_ms,
            count,
        } => udp::client(to, &message, Duration::from_millis(timeout_ms), count),
        Command::TunnelEnd { vips } => tunnel_end::run(&vips),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("masq-labsrv: {e:#}");
            ExitCode::FAILURE
        }
    }
}
