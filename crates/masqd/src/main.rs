//! masqd: masq's LVS-NAT director daemon.
//!
//! Wires the pieces together: the instance lock, host checks, the core director, the
//! packet threads (masq-io sockets, rings or pnet channels; see `datapath`), the
//! housekeeping thread (expiry, ARP, the rate estimator), and — on a tokio runtime, for
//! the control plane only — the control socket, health checks, the HTTP endpoints and
//! signal handling.
//!
//! Start, stop, crash: nothing is created before the instance lock is held
//! (`instance.rs`); what a killed predecessor left behind is removed first; SIGTERM and
//! SIGINT stop masqd within a second whatever clients are attached, removing its guard
//! table and its socket; SIGHUP reloads `--rules` (`reload/`); a panic in any thread
//! aborts the process. Under a service manager it says when it is ready and when it
//! stops (`notify`).
#![deny(unsafe_code)]

mod check_report;
mod cli_docs;
mod clock;
mod context;
mod control_server;
mod datapath;
#[cfg(debug_assertions)]
mod fault;
mod guard;
mod health;
mod housekeeping;
mod http_server;
mod instance;
mod metrics;
mod neighbour_log;
mod notify;
mod reload;
mod rules;
mod simulate;
mod socket_reply;
mod startup_checks;
mod startup_findings;
mod steering;
mod stop;
mod stream_slots;
mod sync;
mod trace_stream;
mod web;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use masq_core::director::{DirectorConfig, SideConfig};
use masq_core::{Director, Side};
use masq_ctl::request::{DEFAULT_SOCKET, SOCKET_ENV};
use masq_wire::ethernet::MacAddr;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::clock::Clock;
use crate::context::ControlContext;
use crate::datapath::{IoBackend, IoErrors};
use crate::guard::{GuardMode, KernelGuard};
use crate::instance::Instance;
use crate::startup_findings::{Finding, StartupFindings};
use crate::stop::Stop;

/// masq's LVS director: forwards client connections to a VIP to real servers in
/// userspace, rewriting addresses (ipvsadm's masquerading mode) or only the MACs (direct
/// routing), without ip_vs.
#[derive(Debug, Parser)]
#[command(name = "masqd", version)]
struct Args {
    /// Interface facing the clients, where the VIPs are served.
    #[arg(long, value_name = "IF", required_unless_present = "simulate")]
    vip_iface: Option<String>,
    /// Interface facing the real servers; its address (the DIP) is their default gateway.
    #[arg(long, value_name = "IF", required_unless_present = "simulate")]
    dip_iface: Option<String>,
    /// Direct the simulated lab LAB instead of interfaces: `seed` is docs/lab.md's (a
    /// client, RS1 and RS2 with web servers that name themselves). Needs no root;
    /// `masqadm --sim-request` makes the lab's client open connections.
    #[arg(
        long,
        value_name = "LAB",
        conflicts_with_all = ["vip_iface", "dip_iface", "vip_gateway", "health_check", "io", "workers"]
    )]
    simulate: Option<String>,
    /// Next hop for clients that are not on the VIP interface's networks.
    #[arg(long, value_name = "ADDR")]
    vip_gateway: Option<Ipv4Addr>,
    /// Most entries tracked at once, connections and persistence templates together; a
    /// full table sheds templates that control no connection and half-open connections
    /// (SYN flood defence) before it refuses new ones.
    #[arg(long, value_name = "N", default_value_t = masq_core::director::DEFAULT_MAX_CONNS)]
    max_conns: usize,
    /// Most entries each side's neighbour (ARP) table holds; a full table sheds hosts that
    /// only asked for a VIP and addresses that never answered before it refuses one.
    #[arg(long, value_name = "N", default_value_t = masq_core::neigh::DEFAULT_CAPACITY)]
    max_neighbours: usize,
    /// Rules to load at start, in `ipvsadm -S` format (as `masqadm -R < FILE`); SIGHUP
    /// re-reads them and applies only the difference.
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

/// How long the stop waits for the control plane's blocking threads (trace streams end
/// within 100 ms of the stop; a long listing is left to finish on its own).
const SHUTDOWN_WAIT: Duration = Duration::from_millis(300);

fn main() -> ExitCode {
    if let Some(code) = cli_docs::print_if_requested() {
        return code;
    }
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    abort_on_panic();
    let outcome = match &args.simulate {
        Some(lab) => simulate::run(&args, lab),
        None => run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("masqd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A panic in any thread takes the whole process down at once, with one line in the log:
/// a director with a dead packet thread must not carry on half alive, and a service
/// manager restarts a process that exited.
fn abort_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            "thread {} panicked{at}: {}; aborting",
            thread.name().unwrap_or("(unnamed)"),
            panic_message(info.payload())
        );
        std::process::abort();
    }));
}

/// A panic's message: `panic!` makes a `&str` or a `String`.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

fn side_config(iface: &masq_io::Interface) -> SideConfig {
    SideConfig {
        mac: MacAddr(iface.mac),
        addrs: iface.ipv4.clone(),
    }
}

fn raise_open_files_limit(findings: &mut StartupFindings) {
    match masq_io::host::raise_open_files_limit() {
        Ok((before, after)) if before != after => {
            tracing::debug!(
                "open files: soft limit raised from {before} to {after} (the hard limit)"
            )
        }
        Ok((_, limit)) => tracing::debug!("open files: soft limit {limit} (the hard limit)"),
        Err(e) => findings.warn(Finding::new(
            format!("setrlimit(RLIMIT_NOFILE): {e}; masqd keeps its soft limit on open files, which health probes and HTTP clients may run out of"),
            "start masqd with a higher limit on open files (LimitNOFILE= in its unit, ulimit -n in a shell)",
        )),
    }
}

fn run(args: Args) -> Result<()> {
    // Every warning of the start is also a `masqadm --check` finding.
    let mut findings = StartupFindings::default();
    raise_open_files_limit(&mut findings);
    // Before anything is created: a refused second start must change nothing.
    let instance = Instance::claim(&args.socket)?;
    tracing::debug!("holding {}", instance.lock_path().display());
    let (runtime, signals, reloads) = control_runtime(&args)?;
    let (Some(vip_iface), Some(dip_iface)) = (&args.vip_iface, &args.dip_iface) else {
        anyhow::bail!("--vip-iface and --dip-iface are needed (or --simulate LAB)");
    };
    let host = startup_checks::host(
        vip_iface,
        dip_iface,
        args.vip_gateway.is_some(),
        &mut findings,
    )?;
    let director = Director::new(DirectorConfig {
        vip_side: side_config(&host.vip),
        dip_side: side_config(&host.dip),
        vip_gateway: args.vip_gateway,
        max_conns: args.max_conns,
        max_neighbours: args.max_neighbours,
    });
    director
        .sync_daemons
        .look_up_interfaces_with(Box::new(sync::interface_mtu));
    // Larger packets that may not be fragmented get ICMP fragmentation needed.
    director.set_mtu(Side::Vip, host.vip.mtu);
    director.set_mtu(Side::Dip, host.dip.mtu);
    let clock = Clock::start();
    let mut guard = KernelGuard::new(args.kernel_guard, &instance.guard_table(), &host.vip.name)?
        .with_dip_side(&host.dip.name);
    if guard.remove_leftover() {
        tracing::info!(
            "removed the kernel guard table {} that a masqd which did not stop cleanly left behind",
            guard.table()
        );
    }
    if guard.is_unavailable() {
        findings.warn(Finding::new(
            "nft is not installed: if a VIP is also an address of this host, its kernel will answer service traffic with RST/ICMP",
            "install nftables (apt-get install nftables), then restart masqd",
        ));
    }
    let (listener, socket_file) = control_server::bind(&instance.socket)?;
    load_rules(&args, &director, clock)?;
    guard.sync(&director.services())?;

    if args.workers.is_some() && args.io != IoBackend::Ring {
        findings.warn(Finding::new(
            "--workers only applies to --io ring; --io socket, xdp and pnet run one packet thread per interface",
            "drop --workers, or use --io ring",
        ));
    }
    let workers = match args.workers {
        Some(n) => usize::from(n),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let stop = Arc::new(Stop::default());
    let errors = Arc::new(IoErrors::default());
    let tuning = datapath::Tuning {
        workers,
        ring_layout: args.ring_format,
        busy_poll: std::time::Duration::from_micros(u64::from(args.busy_poll_us)),
        qdisc_bypass: args.qdisc_bypass,
    };
    findings.warn_all(datapath::caveats(args.io, &host.vip, &host.dip));
    findings.warn_all(startup_checks::exposed_page(args.web));
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
        instance.socket.display()
    );

    let ctx = Arc::new(ControlContext {
        director: director.clone(),
        clock,
        guard: Mutex::new(guard),
        vip_iface: host.vip.name.clone(),
        dip_iface: host.dip.name.clone(),
        health: Default::default(),
        health_local_failures: Default::default(),
        steering,
        sync_failures: Mutex::default(),
        stop: stop.clone(),
        startup_findings: findings,
        streams: Default::default(),
        blocking: tokio::sync::Semaphore::new(context::BLOCKING_OPERATIONS),
        simulation: None,
    });
    let notifier = notify::Notifier::from_env();
    let housekeeping = housekeeping::start(ctx.clone(), ports, errors, notifier.watchdog())?;
    let syncing = sync::start(director.clone(), clock, stop.clone())?;
    let reloader = reloads.reloader();
    let served = runtime.block_on(control_plane(
        &args,
        ctx.clone(),
        listener,
        signals,
        reloads,
        &notifier,
    ));

    // Every thread of masqd's own sees the stop at once; the runtime drops its tasks (and
    // with them every client connection) and waits a bounded time for its blocking
    // threads.
    stop.request();
    runtime.shutdown_timeout(SHUTDOWN_WAIT);
    for t in threads {
        let _ = t.join();
    }
    let _ = housekeeping.join();
    let _ = syncing.join();
    finish(&args, &ctx, &reloader, socket_file, served)
}

/// The control-plane runtime, with SIGTERM and SIGINT stopping masqd cleanly from here
/// on, even during the start, and a SIGHUP meanwhile reloading once masqd is up.
fn control_runtime(args: &Args) -> Result<(tokio::runtime::Runtime, StopSignals, reload::Reloads)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control-plane runtime")?;
    let (signals, reloads) = {
        let _entered = runtime.enter();
        (
            StopSignals::install()?,
            reload::Reloads::install(args.rules.clone())?,
        )
    };
    Ok((runtime, signals, reloads))
}

/// Loads `--rules` at start.
fn load_rules(args: &Args, director: &Director, clock: Clock) -> Result<()> {
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
    Ok(())
}

/// The end of a stop, once the control plane is down: `--save-on-exit`, the kernel
/// guard removed, the control socket removed; `served` is how the control plane ended.
fn finish(
    args: &Args,
    ctx: &ControlContext,
    reloader: &reload::Reloader,
    socket_file: control_server::SocketFile,
    served: Result<()>,
) -> Result<()> {
    let saved = match (&args.rules, args.save_on_exit) {
        (Some(path), true) => {
            reloader.delete_leaving(&ctx.director.control(ctx.clock.now()));
            save_rules(path, ctx)
        }
        _ => Ok(()),
    };
    ctx.guard.lock().unwrap_or_else(|e| e.into_inner()).remove();
    drop(socket_file);
    served.and(saved)
}

/// `--save-on-exit`: the rules as configured, with what health checks changed undone.
fn save_rules(path: &std::path::Path, ctx: &ControlContext) -> Result<()> {
    let control = ctx.director.control(ctx.clock.now());
    rules::save(path, &health::AsConfigured::new(&control, &ctx.health))?;
    tracing::info!("saved rules to {}", path.display());
    Ok(())
}

/// The signals that stop masqd cleanly.
struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    /// Installs the handlers (within a tokio runtime). A signal that arrives before
    /// [`StopSignals::wait`] is kept for it.
    fn install() -> Result<StopSignals> {
        let install = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("installing the {name} handler"))
        };
        Ok(StopSignals {
            term: install(SignalKind::terminate(), "SIGTERM")?,
            int: install(SignalKind::interrupt(), "SIGINT")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = self.int.recv() => tracing::info!("SIGINT: stopping"),
        }
    }
}

/// Runs the control socket, the health checks, the HTTP endpoints and the reloads until a
/// stop signal.
async fn control_plane(
    args: &Args,
    ctx: Arc<ControlContext>,
    listener: std::os::unix::net::UnixListener,
    mut signals: StopSignals,
    reloads: reload::Reloads,
    notifier: &notify::Notifier,
) -> Result<()> {
    let listener =
        tokio::net::UnixListener::from_std(listener).context("serving the control socket")?;
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
                config,
                ctx.director.clone(),
                ctx.clock,
                ctx.health.clone(),
                ctx.health_local_failures.clone(),
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
    let reloading = tokio::spawn(reloads.serve(ctx.clone()));
    let following = tokio::spawn(follow_services(ctx));
    notifier.ready(&format!(
        "serving; control socket {}",
        args.socket.display()
    ));
    signals.wait().await;
    notifier.stopping();
    server.abort();
    reloading.abort();
    following.abort();
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

/// Once a second, brings the kernel guard and the XDP maps up to date with the services
/// (health checks change destinations without a control request) and retries what
/// failed; off the runtime, as `nft` may take its time.
async fn follow_services(ctx: Arc<ControlContext>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let _ = ctx.off_runtime(ControlContext::follow_services).await;
    }
}

/// A positive number of seconds from the command line.
fn secs(value: f64, flag: &str) -> Result<Duration> {
    if !(value.is_finite() && value > 0.0) {
        anyhow::bail!("{flag} wants a positive number of seconds, not {value}");
    }
    Ok(Duration::from_secs_f64(value))
}
