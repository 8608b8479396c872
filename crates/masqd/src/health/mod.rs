//! Health checks, as keepalived and ldirectord users expect them: every real server of
//! every service is probed from the director (a TCP connect, or an HTTP GET with an
//! expected status) every interval; after `fall` failures in a row it is quiesced (weight
//! 0: established connections carry on, new ones go elsewhere) or removed, and after `rise`
//! successes in a row it gets its weight (or its place) back. State changes are logged,
//! visible in `-L` (the weight) and in the metrics (`masq_destination_up`).
//!
//! A probe that fails for a reason of the director's own (no file descriptor, buffer or
//! port left, no route from here) says nothing about the real server: it is counted
//! ([`LocalFailures`]), logged once while such failures last, and leaves the streaks and
//! the weight alone. `--save-on-exit` saves what the operator configured, not what the
//! checker made of it ([`AsConfigured`]).
//!
//! The kernel guard and the XDP maps follow the destinations the checker changes within a
//! second (`main.rs` runs `ControlContext::follow_services` once a second).
//!
//! Probes run on the control-plane runtime, never on the packet threads, at most
//! [`PROBES_AT_ONCE`] at a time. The director's own kernel makes the connections (from
//! the DIP), so the replies never reach masq's data path.

mod configured;
mod probe;
mod state;

use std::sync::Arc;
use std::time::Duration;

pub use configured::AsConfigured;
pub use probe::{Finding, Probe};
pub use state::{Health, HealthMap, LocalFailures};

use masq_core::control::Control;
use masq_core::Director;

use crate::clock::Clock;

/// Probes in flight at once: each holds a socket, so a configuration with very many real
/// servers cannot take masqd's file descriptors by itself.
pub const PROBES_AT_ONCE: usize = 256;

/// What to do with a failed real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnFailure {
    /// Weight 0 until it recovers (existing connections continue).
    Quiesce,
    /// Deleted from its service until it recovers.
    Remove,
}

/// The health-check settings (`--health-*`).
#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    pub on_failure: OnFailure,
}

/// Runs the checks of `director`'s real servers forever, keeping `health` up to date and
/// counting in `local_failures` the probes that could not be made (the task is dropped at
/// shutdown). Both are shared with the control context, which shows them.
pub async fn run(
    config: HealthConfig,
    director: Arc<Director>,
    clock: Clock,
    health: Arc<HealthMap>,
    local_failures: Arc<LocalFailures>,
) {
    let mut tick = tokio::time::interval(config.interval);
    let slots = Arc::new(tokio::sync::Semaphore::new(PROBES_AT_ONCE));
    let mut local_trouble = false;
    loop {
        tick.tick().await;
        let targets = {
            let services = director.control(clock.now()).services();
            let mut map = health.lock().unwrap_or_else(|e| e.into_inner());
            state::targets(&services, &mut map)
        };
        let mut set = tokio::task::JoinSet::new();
        for (i, &(_, dest)) in targets.iter().enumerate() {
            let (config, slots) = (config.clone(), slots.clone());
            set.spawn(async move {
                let _slot = slots.acquire_owned().await;
                (i, probe::probe(&config, dest).await)
            });
        }
        let mut findings: Vec<_> = targets.iter().map(|&k| (k, Finding::Down)).collect();
        while let Some(joined) = set.join_next().await {
            if let Ok((i, finding)) = joined {
                findings[i].1 = finding;
            }
        }
        let round = {
            let control = director.control(clock.now());
            let mut map = health.lock().unwrap_or_else(|e| e.into_inner());
            state::apply(&control, &config, &mut map, &findings, &local_failures)
        };
        match (round.first_unknown, local_trouble) {
            (Some(reason), false) => {
                tracing::warn!(
                    "health: {} of {} probes could not be made: {} ({}); their real servers keep their weights until probes work again",
                    round.unknown,
                    findings.len(),
                    reason.meaning(),
                    reason.errno()
                );
                local_trouble = true;
            }
            (None, true) => {
                tracing::info!("health: probes work again");
                local_trouble = false;
            }
            _ => {}
        }
    }
}
