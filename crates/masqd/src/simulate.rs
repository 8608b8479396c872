//! `masqd --simulate seed`: the director runs in front of the simulated lab (`masq-sim`)
//! instead of interfaces. Everything that needs root is left out — the packet sockets,
//! the kernel guard, the host checks, the sync thread — and the control socket, the web
//! page and the metrics work as usual, so `masqadm` lists, adds and edits as against the
//! real lab. `masqadm --sim-request` makes the lab's clients open connections.
//!
//! The lab's clock is the director's: the control plane reads the simulated time, which
//! moves only while the lab works through a request. Between two commands no time passes,
//! so the same commands give the same listings, byte for byte.

mod listing;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};
use masq_core::Director;
use masq_ctl::request::SimRequest;
use masq_ctl::Outcome;
use masq_sim::Lab;

use crate::clock::Clock;
use crate::context::ControlContext;
use crate::guard::{GuardMode, KernelGuard};
use crate::instance::Instance;
use crate::socket_reply::error_outcome;
use crate::startup_findings::StartupFindings;
use crate::stop::Stop;
use crate::Args;

pub use listing::OrderedListing;

/// The simulated time in milliseconds, as the lab last left it: what [`Clock::simulated`]
/// reads. One masqd runs one lab.
static SIMULATED_MILLIS: AtomicU64 = AtomicU64::new(0);

/// The names the lab's two links go by in messages (they are no interfaces of the host).
const VIP_LINK: &str = "sim-vip";
const DIP_LINK: &str = "sim-dip";

/// The simulated lab a masqd runs.
pub struct Simulation {
    lab: Mutex<Lab>,
}

impl Simulation {
    /// The lab `--simulate` names: only `seed` for now.
    ///
    /// # Errors
    /// For any other name.
    fn new(name: &str) -> Result<Simulation> {
        if name != "seed" {
            bail!("--simulate {name}: the only simulated lab is `seed' (topology files are not supported yet)");
        }
        let lab = Lab::seed();
        SIMULATED_MILLIS.store(lab.now().as_millis(), Relaxed);
        Ok(Simulation {
            lab: Mutex::new(lab),
        })
    }

    fn director(&self) -> Arc<Director> {
        self.lock().director().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lab> {
        self.lab.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `--sim-request`: one line per connection (or datagram), the answer of the
    /// real server that served it.
    fn request(&self, program: &str, asked: &SimRequest) -> Outcome {
        let protocol = match asked.protocol {
            masq_core::control::Protocol::Tcp => masq_sim::Protocol::Tcp,
            masq_core::control::Protocol::Udp => masq_sim::Protocol::Udp,
            masq_core::control::Protocol::Sctp => {
                return error_outcome(&format!("{program}: the simulated lab has no SCTP"), 2)
            }
        };
        let mut lab = self.lock();
        let count = asked.count as usize;
        let replies = lab.request(protocol, asked.service, asked.from, count);
        SIMULATED_MILLIS.store(lab.now().as_millis(), Relaxed);
        match replies {
            Ok(replies) => Outcome {
                stdout: replies.iter().map(|r| format!("{r}\n")).collect(),
                ..Outcome::default()
            },
            Err(e) => error_outcome(&format!("{program}: --sim-request: {e}"), 1),
        }
    }
}

/// Answers `--sim-request` (`args`) for a masqd running the simulated lab, and refuses
/// it with a clear message for one directing real interfaces.
pub fn answer(ctx: &ControlContext, program: &str, args: &[String]) -> Outcome {
    let Some(simulation) = &ctx.simulation else {
        return error_outcome(
            &format!("{program}: --sim-request asks the simulated lab, but this masqd directs real interfaces (start masqd --simulate seed)"),
            2,
        );
    };
    match SimRequest::parse(args) {
        Ok(asked) => simulation.request(program, &asked),
        Err(message) => error_outcome(&format!("{program}: {message}"), 2),
    }
}

/// Runs masqd in front of the simulated lab `name` until a stop signal.
///
/// # Errors
/// When the lab is unknown, or when the instance, the control socket or the rules
/// cannot be set up.
pub fn run(args: &Args, name: &str) -> Result<()> {
    let simulation = Arc::new(Simulation::new(name)?);
    let instance = Instance::claim(&args.socket)?;
    let (runtime, signals, reloads) = crate::control_runtime(args)?;
    let director = simulation.director();
    let clock = Clock::simulated(&SIMULATED_MILLIS);
    // Nothing on this host answers for the lab's VIPs: no guard is needed.
    let guard = KernelGuard::new(GuardMode::Off, &instance.guard_table(), VIP_LINK)?;
    let (listener, socket_file) = crate::control_server::bind(&instance.socket)?;
    crate::load_rules(args, &director, clock)?;
    let mut findings = StartupFindings::default();
    findings.warn_all(crate::startup_checks::exposed_page(args.web));
    tracing::info!(
        "masqd up on the simulated lab `{name}' (no interfaces, no root: clients and real servers simulated), control socket {}",
        instance.socket.display()
    );
    let stop = Arc::new(Stop::default());
    let ctx = Arc::new(ControlContext {
        director,
        clock,
        guard: Mutex::new(guard),
        vip_iface: VIP_LINK.into(),
        dip_iface: DIP_LINK.into(),
        health: Default::default(),
        health_local_failures: Default::default(),
        steering: None,
        sync_failures: Mutex::default(),
        stop: stop.clone(),
        startup_findings: findings,
        streams: Default::default(),
        blocking: tokio::sync::Semaphore::new(crate::context::BLOCKING_OPERATIONS),
        simulation: Some(simulation),
    });
    let notifier = crate::notify::Notifier::from_env();
    let reloader = reloads.reloader();
    let served = runtime.block_on(crate::control_plane(
        args,
        ctx.clone(),
        listener,
        signals,
        reloads,
        &notifier,
    ));
    stop.request();
    runtime.shutdown_timeout(crate::SHUTDOWN_WAIT);
    crate::finish(args, &ctx, &reloader, socket_file, served)
}
