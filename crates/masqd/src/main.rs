//! masqd: masq's LVS-NAT director daemon.
//!
//! Wires the pieces together: host checks, the core director, the packet threads (masq-io
//! sockets, rings or pnet channels; see `datapath`), and — on a tokio runtime, for the
//! control plane only — the control socket, the once-a-second housekeeping, the 2-second
//! rate estimator and signal handling.
#![deny(unsafe_code)]

mod check_report;
mod clock;
mod context;
mod control_server;
mod datapath;
mod guard;
mod health;
mod http_server;
mod metrics;
mod rules;
mod socket_reply;
mod startup_checks;
mod steering;
mod trace_stream;
mod web;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use masq_core::director::{DirectorConfig, SideConfig};
use masq_core::{Director, Side};
use masq_ctl::request::{DEFAULT_SOCKET, SOCKET_ENV};
use masq_io::{FrameIo, Offload};
use masq_wire::arp;
use masq_wire::ethernet::MacAddr;

use crate::clock::Clock;
use crate::context::ControlContext;
use crate::datapath::{IoBackend, IoErrors, Ports};
use crate::guard::{GuardMode, KernelGuard};

/// masq's LVS-NAT director: forwards client connections to a VIP to real servers,
/// rewriting addresses in userspace (ipvsadm's masquerading mode, without ip_vs).
#[derive(Debug, Parser)]
#[command(name = "masqd", version)]
struct Args {
    /// Interface facing the clients, where the VIPs are served.
    #[arg(long, value_name = "IF")]
    vip_iface: String,
    /// Interface facing the real servers; its address (the DIP) is their default gateway.
    #[arg(long, value_name = "IF")]
    dip_iface: String,
    /// Next hop for clients that are not on the VIP interface's networks.
    #[arg(long, value_name = "ADDR")]
    vip_gateway: Option<Ipv4Addr>,
    /// Most connections tracked at once; a full table sheds half-open connections (SYN
    /// flood defence) before it refuses new ones.
    #[arg(long, value_name = "N", default_value_t = masq_core::director::DEFAULT_MAX_CONNS)]
    max_conns: usize,
    /// Rules to load at start, in `ipvsadm -S` format (as `masqadm -R < FILE`).
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// On a clean stop, write the rules back to --rules atomically.
    #[arg(long, requires = "rules")]
    save_on_exit: bool,
    /// Control socket path.
    #[arg(long, value_name = "PATH", env = SOCKET_ENV, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// How to stop the host's kernel from answering service traffic itself.
    #[arg(long, value_enum, default_value = "auto")]
    kernel_guard: GuardMode,
    /// Probe every real server and take failed ones out of service: tcp, http,
    /// http:/PATH or http:/PATH:STATUS (default status 200).
    #[arg(long, value_name = "PROBE")]
    health_check: Option<health::Probe>,
    /// Seconds between two probes of a real server.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    health_interval: f64,
    /// Seconds a probe may take.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    health_timeout: f64,
    /// Successful probes in a row that bring a failed real server back.
    #[arg(long, value_name = "N", default_value_t = 2)]
    health_rise: u32,
    /// Failed probes in a row that take a real server out of service.
    #[arg(long, value_name = "N", default_value_t = 3)]
    health_fall: u32,
    /// What a failed real server gets: quiesced (weight 0) or removed.
    #[arg(long, value_enum, default_value = "quiesce")]
    health_action: health::OnFailure,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9101).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Serve the live lab page at http://ADDR/ (e.g. 127.0.0.1:8080; loopback unless told otherwise).
    #[arg(long, value_name = "ADDR")]
    web: Option<std::net::SocketAddr>,
    /// Allow changing schedulers and weights from the page. Each change needs the token
    /// masqd writes, at each start, to SOCKET.web-token (mode 0600); the page asks for it.
    #[arg(long, requires = "web")]
    web_admin: bool,
    /// Another name (or address) the --web and --metrics endpoints answer to, with the
    /// endpoint's port unless one is given; repeatable. They answer only to localhost,
    /// 127.0.0.1, [::1] and the address they were reached on (a DNS-rebinding page names
    /// something else): add the names you browse them by, and NAME:PORT for a tunnel that
    /// arrives on another port (ssh -L 9000:127.0.0.1:8080: localhost:9000).
    #[arg(long, value_name = "NAME[:PORT]")]
    http_allow_host: Vec<http_server::HostName>,
    /// Packet I/O: `ring` (TPACKET_V2/V3 rings, --workers threads per interface in a
    /// PACKET_FANOUT group), `socket` (recvmmsg, one thread per interface), `xdp` (AF_XDP
    /// sockets fed by an XDP program that takes only service traffic from the kernel;
    /// MTU-sized frames, senders' checksum offload off)
    /// or `pnet` (pnet_datalink, a syscall per frame, MTU-sized frames only: for comparison).
    #[arg(long, value_enum, default_value = "socket")]
    io: IoBackend,
    /// Packet threads per interface with --io ring (default: the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,
    /// Ring layout with --io ring: `v2` (one frame per slot, handed over at once: lowest
    /// latency) or `v3` (frames packed in blocks handed over when full or after 1 ms:
    /// densest, but a lone frame waits for the block).
    #[arg(long, value_enum, default_value = "v2")]
    ring_format: datapath::RingLayout,
    /// With --io ring: microseconds a packet thread keeps checking its empty ring before
    /// it sleeps (0: sleep at once). Trades CPU for fewer wake-ups under request/response
    /// load; leave 0 when the director shares its CPUs.
    #[arg(long, value_name = "US", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    busy_poll_us: u32,
    /// Send straight to the interfaces' drivers, skipping their queueing disciplines
    /// (PACKET_QDISC_BYPASS): cheaper per frame, but tc shaping on the director's
    /// interfaces no longer applies to forwarded frames.
    #[arg(long)]
    qdisc_bypass: bool,
    /// Log filter (tracing syntax), e.g. info, debug, masqd=debug.
    #[arg(long, env = "MASQ_LOG", default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("masqd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn side_config(iface: &masq_io::Interface) -> SideConfig {
    SideConfig {
        mac: MacAddr(iface.mac),
        addrs: iface.ipv4.clone(),
    }
}

fn run(args: Args) -> Result<()> {
    let host = startup_checks::host(&args.vip_iface, &args.dip_iface, args.vip_gateway.is_some())?;
    let director = Director::new(DirectorConfig {
        vip_side: side_config(&host.vip),
        dip_side: side_config(&host.dip),
        vip_gateway: args.vip_gateway,
        max_conns: args.max_conns,
        max_neighbours: masq_core::neigh::DEFAULT_CAPACITY,
    });
    // Larger packets that may not be fragmented get ICMP fragmentation needed.
    director.set_mtu(Side::Vip, host.vip.mtu);
    director.set_mtu(Side::Dip, host.dip.mtu);
    let clock = Clock::start();
    let mut guard =
        KernelGuard::new(args.kernel_guard, &host.vip.name)?.with_dip_side(&host.dip.name);
    if guard.is_unavailable() {
        tracing::warn!("nft is not installed: if a VIP is also an address of this host, its kernel will answer service traffic with RST/ICMP (install nftables)");
    }
    if let Some(path) = &args.rules {
        if path.exists() {
            rules::load(path, &director.control(clock.now()))?;
            tracing::info!("loaded rules from {}", path.display());
        } else if args.save_on_exit {
            tracing::info!(
                "{} does not exist yet; it will be written on exit",
                path.display()
            );
        } else {
            anyhow::bail!("rules file {} not found", path.display());
        }
    }
    guard.sync(&director.services())?;

    if args.workers.is_some() && args.io != IoBackend::Ring {
        tracing::warn!(
            "--workers only applies to --io ring; --io socket, xdp and pnet run one packet thread per interface"
        );
    }
    let workers = match args.workers {
        Some(n) => usize::from(n),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(IoErrors::default());
    let tuning = datapath::Tuning {
        workers,
        ring_layout: args.ring_format,
        busy_poll: std::time::Duration::from_micros(u64::from(args.busy_poll_us)),
        qdisc_bypass: args.qdisc_bypass,
    };
    let datapath = datapath::start(
        args.io, &tuning, &host.vip, &host.dip, &director, clock, &stop, &errors,
    )?;
    let (threads, ports) = (datapath.threads, datapath.control);
    let steering = datapath.xdp.map(|xdp| {
        let locals = host
            .vip
            .ipv4
            .iter()
            .chain(&host.dip.ipv4)
            .map(|&(addr, _)| addr)
            .collect();
        steering::XdpSteering::new(xdp.vip, xdp.dip, locals)
    });
    if let Some(steering) = &steering {
        steering.sync(&director.services())?;
    }
    tracing::info!(
        "masqd up: VIP side {} ({}), DIP side {} ({}), {} packet threads ({:?} I/O), control socket {}",
        host.vip.name,
        MacAddr(host.vip.mac),
        host.dip.name,
        MacAddr(host.dip.mac),
        threads.len(),
        args.io,
        args.socket.display()
    );

    let ctx = Arc::new(ControlContext {
        director: director.clone(),
        clock,
        guard: Mutex::new(guard),
        vip_iface: host.vip.name.clone(),
        dip_iface: host.dip.name.clone(),
        health: Default::default(),
        steering,
        sync_failures: Mutex::default(),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control-plane runtime")?;
    let served = runtime.block_on(control_plane(&args, ctx.clone(), ports.clone(), errors));

    stop.store(true, Relaxed);
    for t in threads {
        let _ = t.join();
    }
    if args.save_on_exit {
        if let Some(path) = &args.rules {
            rules::save(path, &director.control(clock.now()))?;
            tracing::info!("saved rules to {}", path.display());
        }
    }
    ctx.guard.lock().unwrap_or_else(|e| e.into_inner()).remove();
    let _ = std::fs::remove_file(&args.socket);
    served
}

/// Runs the control socket and the timers until SIGTERM or SIGINT.
async fn control_plane(
    args: &Args,
    ctx: Arc<ControlContext>,
    ports: Arc<Ports<dyn FrameIo>>,
    errors: Arc<IoErrors>,
) -> Result<()> {
    let listener = control_server::bind(&args.socket).await?;
    let server = tokio::spawn(control_server::serve(
        listener,
        ctx.clone(),
        args.socket.clone(),
    ));
    let checks = match &args.health_check {
        Some(probe) => {
            let config = health::HealthConfig {
                probe: probe.clone(),
                interval: secs(args.health_interval, "--health-interval")?,
                timeout: secs(args.health_timeout, "--health-timeout")?,
                rise: args.health_rise.max(1),
                fall: args.health_fall.max(1),
                on_failure: args.health_action,
            };
            tracing::info!("health checks: {config:?}");
            Some(tokio::spawn(health::run(
                ctx.director.clone(),
                ctx.clock,
                ctx.health.clone(),
                config,
            )))
        }
        None => None,
    };
    let page = match args.web {
        Some(addr) => {
            let admin = args.web_admin.then_some(args.socket.as_path());
            Some(web::Page::bind(addr, &args.http_allow_host, admin).await?)
        }
        None => None,
    };
    let metrics = match args.metrics {
        Some(addr) => {
            let endpoint = metrics::Endpoint::bind(addr, &args.http_allow_host).await?;
            let others = page.iter().map(web::Page::counters).collect();
            Some(tokio::spawn(endpoint.serve(ctx.clone(), others)))
        }
        None => None,
    };
    let web = page.map(|page| tokio::spawn(page.serve(ctx.clone())));
    let timers = tokio::spawn(timers(ctx, ports, errors));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
    }
    server.abort();
    timers.abort();
    if let Some(c) = checks {
        c.abort();
    }
    if let Some(m) = metrics {
        m.abort();
    }
    if let Some(w) = web {
        w.abort();
    }
    Ok(())
}

/// Housekeeping every second (expiry, ARP probes, gratuitous ARP for new VIPs, error
/// reports) and the rate estimator every two seconds.
async fn timers(ctx: Arc<ControlContext>, ports: Arc<Ports<dyn FrameIo>>, errors: Arc<IoErrors>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut announced: Vec<Ipv4Addr> = Vec::new();
    let mut reported = (0, 0);
    let mut diagnosed: Vec<String> = Vec::new();
    let mut odd = false;
    // Housekeeping's ARP probes leave through this worker's outbox.
    let mut housekeeper = ctx.director.worker();
    loop {
        tick.tick().await;
        let now = ctx.clock.now();
        let send = |side: Side, frame: &[u8]| {
            let port: &dyn FrameIo = match side {
                Side::Vip => ports.vip.as_ref(),
                Side::Dip => ports.dip.as_ref(),
            };
            if let Err(e) = port.send(&Offload::NONE, frame) {
                tracing::warn!("sending on the {} side: {e}", side.name());
            }
        };
        housekeeper.housekeeping(now);
        while let Some(probe) = housekeeper.poll_transmit(now) {
            send(probe.side, probe.frame);
        }
        // Health checks change destinations outside control requests.
        ctx.follow_services();
        announce_new_vips(&ctx.director, &mut announced, &send);
        odd = !odd;
        if !odd {
            ctx.director.estimate();
            // An interface's MTU may change while masqd runs (ip link set … mtu …).
            for (side, name) in [(Side::Vip, &ctx.vip_iface), (Side::Dip, &ctx.dip_iface)] {
                if let Ok(iface) = masq_io::Interface::by_name(name) {
                    ctx.director.set_mtu(side, iface.mtu);
                }
            }
        }
        // Say each problem the data path notices once, when it appears.
        let findings = ctx.director.diagnose(now);
        let problems: Vec<String> = findings.iter().map(|f| f.problem()).collect();
        for (f, p) in findings.iter().zip(&problems) {
            if !diagnosed.contains(p) {
                tracing::warn!("{p} (fix: {})", f.fix());
            }
        }
        diagnosed = problems;
        let now_errors = (errors.recv.load(Relaxed), errors.send.load(Relaxed));
        if now_errors != reported {
            tracing::warn!(
                "packet I/O errors so far: {} receive, {} send",
                now_errors.0,
                now_errors.1
            );
            reported = now_errors;
        }
    }
}

/// Sends a gratuitous ARP for every VIP not announced yet, so that clients and routers
/// that cached another MAC for it learn masqd's at once.
fn announce_new_vips(
    director: &Director,
    announced: &mut Vec<Ipv4Addr>,
    send: &dyn Fn(Side, &[u8]),
) {
    let table = director.services();
    let mac = director.config().vip_side.mac;
    let mut frame = [0u8; arp::FRAME_LEN];
    for &vip in table.vips() {
        if !announced.contains(&vip) {
            let len = arp::write_frame(
                &mut frame,
                arp::OP_REQUEST,
                (mac, vip),
                (MacAddr::ZERO, vip),
            );
            send(Side::Vip, &frame[..len]);
            announced.push(vip);
        }
    }
    announced.retain(|v| table.vips().contains(v));
}

/// A positive number of seconds from the command line.
fn secs(value: f64, flag: &str) -> Result<Duration> {
    if !(value.is_finite() && value > 0.0) {
        anyhow::bail!("{flag} wants a positive number of seconds, not {value}");
    }
    Ok(Duration::from_secs_f64(value))
}
