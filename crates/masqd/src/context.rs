//! What every control-plane task shares: the director, the clock, the kernel guard, the
//! health map and the XDP steering, and the two things done with them whatever the request
//! came through (the control socket or the web page): running an ipvsadm request, and
//! bringing what lives outside masqd up to date with the services afterwards — and the
//! one way to run either without holding up the control-plane runtime.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use masq_core::Director;
use masq_ctl::request::Request;
use masq_ctl::{Env, Outcome};

use crate::clock::Clock;
use crate::guard::KernelGuard;
use crate::health::{HealthMap, LocalFailures};
use crate::simulate::{OrderedListing, Simulation};
use crate::startup_findings::StartupFindings;
use crate::steering::XdpSteering;
use crate::stop::Stop;
use crate::stream_slots::StreamSlots;

/// Control operations that may run at once on the blocking pool: enough for a listing, a
/// restore and the once-a-second follow-up of the services side by side, few enough that
/// a burst of requests cannot take every thread.
pub const BLOCKING_OPERATIONS: usize = 4;

/// What a request handler needs.
pub struct ControlContext {
    pub director: Arc<Director>,
    pub clock: Clock,
    pub guard: Mutex<KernelGuard>,
    /// Interface names, for the host checks of `--check`.
    pub vip_iface: String,
    pub dip_iface: String,
    /// Real servers' health, when `--health-check` runs (shared with its task).
    pub health: Arc<HealthMap>,
    /// Probes that failed for a reason of the director's own, by reason.
    pub health_local_failures: Arc<LocalFailures>,
    /// With `--io xdp`: the programs that must know the service addresses.
    pub steering: Option<XdpSteering>,
    /// What [`ControlContext::follow_services`] last failed with.
    pub sync_failures: Mutex<Vec<String>>,
    /// Set when masqd stops; the trace streams end on it.
    pub stop: Arc<Stop>,
    /// What masqd warned about at start, for `--check`.
    pub startup_findings: StartupFindings,
    /// The `--trace` and `--capture` clients attached.
    pub streams: StreamSlots,
    /// Permits for [`ControlContext::off_runtime`], [`BLOCKING_OPERATIONS`] of them.
    pub blocking: tokio::sync::Semaphore,
    /// Under `--simulate`: the lab the director runs in front of.
    pub simulation: Option<Arc<Simulation>>,
}

impl ControlContext {
    /// Brings what lives outside masqd up to date with the services: the kernel guard's
    /// nftables rules and, with `--io xdp`, the XDP programs' maps. Cheap when nothing
    /// changed; called after every control request and once a second (health checks
    /// change destinations without one). Failures are logged; the next call retries.
    pub fn follow_services(&self) {
        let table = self.director.services();
        let mut guard = self.guard.lock().unwrap_or_else(|e| e.into_inner());
        let guarded = guard.sync(&table);
        drop(guard);
        let steered = match &self.steering {
            Some(steering) => steering.sync(&table),
            None => Ok(()),
        };
        // A failure that persists is said once, not every second.
        let failures: Vec<String> = [guarded, steered]
            .into_iter()
            .filter_map(|r| r.err().map(|e| format!("{e:#}")))
            .collect();
        let mut said = self.sync_failures.lock().unwrap_or_else(|e| e.into_inner());
        for failure in failures.iter().filter(|f| !said.contains(f)) {
            tracing::error!("{failure}");
        }
        *said = failures;
    }

    /// Runs `operation` on tokio's blocking pool, at most [`BLOCKING_OPERATIONS`] at once
    /// (later ones wait for a permit), and waits for it without holding up the runtime.
    ///
    /// # Errors
    /// When the operation panicked or the runtime is shutting down.
    pub async fn off_runtime<T, F>(self: &Arc<Self>, operation: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&ControlContext) -> T + Send + 'static,
    {
        let _permit = self
            .blocking
            .acquire()
            .await
            .context("the control plane is stopping")?;
        let ctx = self.clone();
        tokio::task::spawn_blocking(move || operation(&ctx))
            .await
            .context("a control operation thread")
    }

    /// Runs one ipvsadm request against the director and brings the kernel guard and the
    /// XDP maps up to date.
    pub fn execute(&self, request: &Request) -> Outcome {
        let env = Env {
            program: &request.program,
            stdin: request.stdin.as_deref(),
            names: &masq_ctl::SystemNames,
        };
        let control = self.director.control(self.clock.now());
        let outcome = match self.simulation {
            Some(_) => masq_ctl::run(&request.args, &env, &OrderedListing(control)),
            None => masq_ctl::run(&request.args, &env, &control),
        };
        self.follow_services();
        for failure in &outcome.restore_failures {
            tracing::warn!(
                "{} -R: {failure}: {}",
                request.program,
                outcome.stderr.trim()
            );
        }
        tracing::debug!(args = ?request.args, code = outcome.code, "control request");
        outcome
    }
}
