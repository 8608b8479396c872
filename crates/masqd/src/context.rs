//! What every control-plane task shares: the director, the clock, the kernel guard, the
//! health map and the XDP steering, and the two things done with them whatever the request
//! came through (the control socket or the web page): running an ipvsadm request, and
//! bringing what lives outside masqd up to date with the services afterwards.

use std::sync::{Arc, Mutex};

use masq_core::Director;
use masq_ctl::request::Request;
use masq_ctl::{Env, Outcome};

use crate::clock::Clock;
use crate::guard::KernelGuard;
use crate::health::HealthMap;
use crate::steering::XdpSteering;

/// What a request handler needs.
pub struct ControlContext {
    pub director: Arc<Director>,
    pub clock: Clock,
    pub guard: Mutex<KernelGuard>,
    /// Interface names, for the host checks of `--check`.
    pub vip_iface: String,
    pub dip_iface: String,
    /// Real servers' health, when `--health-check` runs.
    pub health: Arc<HealthMap>,
    /// With `--io xdp`: the programs that must know the service addresses.
    pub steering: Option<XdpSteering>,
    /// What [`ControlContext::follow_services`] last failed with.
    pub sync_failures: Mutex<Vec<String>>,
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

    /// Runs one ipvsadm request against the director and brings the kernel guard and the
    /// XDP maps up to date.
    pub fn execute(&self, request: &Request) -> Outcome {
        let env = Env {
            program: &request.program,
            stdin: request.stdin.as_deref(),
            names: &masq_ctl::SystemNames,
        };
        let control = self.director.control(self.clock.now());
        let outcome = masq_ctl::run(&request.args, &env, &control);
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
