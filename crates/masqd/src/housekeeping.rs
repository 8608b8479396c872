//! The once-a-second housekeeping: connection expiry and ARP probes, a gratuitous ARP for
//! every new VIP, the 2-second rate estimator, the interfaces' MTUs, and saying once what
//! the data path finds wrong or how many packet I/O errors it met; and, under a service
//! manager with a watchdog, telling it that all this still runs.
//!
//! It has an OS thread of its own rather than a task on the control-plane runtime, so that
//! nothing a control request does there (listing a million connections, waiting for `nft`)
//! can delay an expiry or an ARP probe. It sends its frames on the control ports of the
//! data path, as the packet threads do on theirs, and sleeps on the stop signal, so a stop
//! ends it at once.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use masq_core::{Director, Side, Timestamp, Worker};
use masq_io::{FrameIo, Offload};
use masq_wire::arp;
use masq_wire::ethernet::MacAddr;

use crate::context::ControlContext;
use crate::datapath::{IoErrors, Ports};
use crate::neighbour_log::NeighbourLog;
use crate::notify::Watchdog;

/// How often the housekeeping runs.
const TICK: Duration = Duration::from_secs(1);

/// Starts the housekeeping thread; it runs its first round at once and ends when
/// `ctx.stop` is requested.
///
/// # Errors
/// When the thread cannot be started.
pub fn start(
    ctx: Arc<ControlContext>,
    ports: Arc<Ports<dyn FrameIo>>,
    errors: Arc<IoErrors>,
    mut watchdog: Option<Watchdog>,
) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("masq-housekeeping".into())
        .spawn(move || {
            let mut keeper = Keeper::new(ctx.director.worker());
            let mut next = Instant::now();
            // The service manager's watchdog is petted from here, between rounds: a
            // housekeeping stuck in a round gets masqd restarted.
            let wake = |next: Instant, watchdog: &Option<Watchdog>| {
                watchdog.as_ref().map_or(next, |w| w.due().min(next))
            };
            while !ctx.stop.sleep_until(wake(next, &watchdog)) {
                let now = Instant::now();
                if let Some(w) = watchdog.as_mut() {
                    w.pet_if_due(now);
                }
                if now < next {
                    continue;
                }
                keeper.round(&ctx, &ports, &errors);
                next += TICK;
                // After a long pause (a suspended host), go on from now instead of
                // running the missed rounds back to back.
                next = next.max(Instant::now());
            }
        })
        .context("starting the housekeeping thread")
}

/// What the housekeeping remembers from one round to the next.
struct Keeper {
    /// Expires entries and queues the ARP probes, which leave through its outbox.
    worker: Worker,
    rounds: u64,
    /// The VIPs a gratuitous ARP went out for.
    announced: Vec<Ipv4Addr>,
    /// The problems said, so each is said once, when it appears.
    diagnosed: Vec<String>,
    /// Packet I/O errors (receive, send) last reported.
    reported: (u64, u64),
    neighbours: NeighbourLog,
}

impl Keeper {
    fn new(worker: Worker) -> Self {
        Keeper {
            worker,
            rounds: 0,
            announced: Vec::new(),
            diagnosed: Vec::new(),
            reported: (0, 0),
            neighbours: NeighbourLog::default(),
        }
    }

    fn round(&mut self, ctx: &ControlContext, ports: &Ports<dyn FrameIo>, errors: &IoErrors) {
        let now = ctx.clock.now();
        expire_and_probe(&mut self.worker, now, ports);
        announce_new_vips(&ctx.director, &mut self.announced, ports);
        self.rounds += 1;
        if self.rounds.is_multiple_of(2) {
            ctx.director.estimate();
            // An interface's MTU may change while masqd runs (ip link set … mtu …).
            for (side, name) in [(Side::Vip, &ctx.vip_iface), (Side::Dip, &ctx.dip_iface)] {
                if let Ok(iface) = masq_io::Interface::by_name(name) {
                    ctx.director.set_mtu(side, iface.mtu);
                }
            }
        }
        let findings = ctx.director.diagnose(now);
        let problems: Vec<String> = findings.iter().map(|f| f.problem()).collect();
        for (f, p) in findings.iter().zip(&problems) {
            if !self.diagnosed.contains(p) {
                tracing::warn!("{p} (fix: {})", f.fix());
            }
        }
        self.diagnosed = problems;
        self.neighbours.round(&ctx.director, now);
        let now_errors = (errors.recv.load(Relaxed), errors.send.load(Relaxed));
        if now_errors != self.reported {
            tracing::warn!(
                "packet I/O errors so far: {} receive, {} send",
                now_errors.0,
                now_errors.1
            );
            self.reported = now_errors;
        }
    }
}

/// Connection expiry and the ARP probes of neighbours due for one.
fn expire_and_probe(worker: &mut Worker, now: Timestamp, ports: &Ports<dyn FrameIo>) {
    worker.housekeeping(now);
    while let Some(probe) = worker.poll_transmit(now) {
        send(ports, probe.side, probe.frame);
    }
}

fn send(ports: &Ports<dyn FrameIo>, side: Side, frame: &[u8]) {
    if let Err(e) = ports.get(side).send(&Offload::NONE, frame) {
        tracing::warn!("sending on the {} side: {e}", side.name());
    }
}

/// Sends a gratuitous ARP for every VIP not announced yet, so that clients and routers
/// that cached another MAC for it learn masqd's at once.
fn announce_new_vips(
    director: &Director,
    announced: &mut Vec<Ipv4Addr>,
    ports: &Ports<dyn FrameIo>,
) {
    if director.sync_daemons.standing_by() {
        // Announced when it takes the VIPs over.
        announced.clear();
        return;
    }
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
            send(ports, Side::Vip, &frame[..len]);
            announced.push(vip);
        }
    }
    announced.retain(|v| table.vips().contains(v));
}
