//! Reloads without drops: on SIGHUP (`systemctl reload`) masqd re-reads `--rules` and
//! applies only the difference.
//!
//! The file is first loaded whole into a scratch director built like the live one, with
//! the same code as at start (`rules.rs`): a line that fails stops the reload before the
//! live director is touched, and the log names the line. What the file asks for is then
//! compared with the rules as configured (what health checks took out counted as
//! configured), and the difference applied through the control interface (`plan.rs`,
//! `apply.rs`): services and real servers added, parameters edited in place, what the file
//! no longer has quiesced and deleted once it holds no open connection (`drain.rs`, swept
//! once a second). Established connections are never touched. An unchanged file changes
//! nothing and says so. After a reload the director's rules are the file's: a change
//! made with `masqadm` since the start or the last reload that the file does not have is
//! undone the same way.

mod apply;
mod drain;
mod plan;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use masq_core::control::Control;
use masq_core::Director;
use tokio::signal::unix::{signal, Signal, SignalKind};

use self::drain::{OpenConnections, Step};
use self::plan::{server_name, Leaving, Rules};
use crate::context::ControlContext;
use crate::health::{self, HealthMap};
use crate::rules;

/// How often rules that left the file are checked for connections still open.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// SIGHUP, and what it does.
pub struct Reloads {
    hangups: Signal,
    reloader: Arc<Reloader>,
}

impl Reloads {
    /// Installs the SIGHUP handler (within a tokio runtime), for the rules file `rules`.
    /// A SIGHUP that arrives before [`Reloads::serve`] runs is kept for it: masqd reloads
    /// once it is up.
    ///
    /// # Errors
    /// When the handler cannot be installed.
    pub fn install(rules: Option<PathBuf>) -> Result<Reloads> {
        Ok(Reloads {
            hangups: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
            reloader: Arc::new(Reloader {
                rules,
                leaving: Mutex::default(),
            }),
        })
    }

    /// The reloader, for the stop (see [`Reloader::delete_leaving`]).
    pub fn reloader(&self) -> Arc<Reloader> {
        self.reloader.clone()
    }

    /// Reloads on every SIGHUP and, while rules are leaving, deletes those that hold no
    /// open connection any more; runs until the task is dropped.
    pub async fn serve(mut self, ctx: Arc<ControlContext>) {
        let mut sweeps = tokio::time::interval(SWEEP_EVERY);
        sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let reloader = self.reloader.clone();
            tokio::select! {
                _ = self.hangups.recv() => {
                    let asked = Instant::now();
                    let _ = ctx.off_runtime(move |ctx| reloader.reload(ctx, asked)).await;
                }
                _ = sweeps.tick() => {
                    if reloader.is_draining() {
                        let _ = ctx.off_runtime(move |ctx| reloader.sweep(ctx)).await;
                    }
                }
            }
        }
    }
}

/// The rules file and what its last reload left leaving.
pub struct Reloader {
    rules: Option<PathBuf>,
    /// Held while a plan is applied or a sweep runs, so neither sees the other half done.
    leaving: Mutex<Vec<Leaving>>,
}

impl Reloader {
    fn leaving(&self) -> MutexGuard<'_, Vec<Leaving>> {
        self.leaving.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_draining(&self) -> bool {
        !self.leaving().is_empty()
    }

    /// Re-reads the rules file and applies the difference, logging what changed and how
    /// long it took from `asked` (when the SIGHUP arrived).
    fn reload(&self, ctx: &ControlContext, asked: Instant) {
        let Some(path) = &self.rules else {
            tracing::info!("SIGHUP: masqd runs without --rules: nothing to reload");
            return;
        };
        tracing::info!("SIGHUP: reloading {}", path.display());
        let desired = match read(path, ctx) {
            Ok(desired) => desired,
            Err(e) => {
                tracing::error!("reload: {e:#}; nothing changed");
                return;
            }
        };
        let mut leaving = self.leaving();
        let control = ctx.director.control(ctx.clock.now());
        let current = Rules::of(&health::AsConfigured::new(&control, &ctx.health));
        let plan = plan::plan(&current, &desired);
        let applied = apply::apply(&plan, &control, &ctx.health);
        let changed = !plan.is_empty();
        *leaving = plan.leaving;
        let deleted = sweep(&mut leaving, &control, &ctx.health);
        if changed || deleted > 0 {
            ctx.follow_services();
        }
        let took = Took(asked.elapsed());
        let still = still_leaving(&leaving);
        if !changed && deleted == 0 {
            tracing::info!(
                "reload: {} unchanged: nothing to do{still} ({took})",
                path.display()
            );
        } else {
            let refused = match applied.failed {
                0 => String::new(),
                n => format!(", {n} refused"),
            };
            tracing::info!(
                "reload: {} applied in {took}: {} changes{refused}, {deleted} deleted{still}",
                path.display(),
                applied.done
            );
        }
    }

    /// Deletes the leaving rules that no longer hold an open connection.
    fn sweep(&self, ctx: &ControlContext) {
        let mut leaving = self.leaving();
        let control = ctx.director.control(ctx.clock.now());
        if sweep(&mut leaving, &control, &ctx.health) > 0 {
            ctx.follow_services();
        }
    }

    /// At a stop (the packet threads gone, no connection left to keep), deletes at once
    /// what is still leaving, so `--save-on-exit` writes the rules the file and the
    /// operator asked for, without the quiesced leftovers.
    pub fn delete_leaving(&self, control: &dyn Control) {
        for item in self.leaving().drain(..) {
            if let Err(e) = item.delete(control) {
                tracing::debug!("deleting {item} at the stop: {e}");
            }
        }
    }
}

/// The rules `path` asks for: loaded into a scratch director built like the live one, so
/// each line gets the live director's own checks without touching it.
fn read(path: &Path, ctx: &ControlContext) -> Result<Rules> {
    let scratch = Director::new(ctx.director.config().clone());
    let control = scratch.control(ctx.clock.now());
    rules::load(path, &control)?;
    Ok(Rules::of(&control))
}

/// Deletes the rules of `leaving` that hold no open connection, and forgets those gone
/// otherwise or given a weight again; returns how many it deleted.
fn sweep(leaving: &mut Vec<Leaving>, control: &dyn Control, health: &HealthMap) -> usize {
    if leaving.is_empty() {
        return 0;
    }
    let services = control.services();
    let list = || control.connections();
    let open = OpenConnections::new(&list);
    let mut deleted = 0;
    let mut gone = Vec::new();
    leaving.retain(|&item| match drain::step(item, &services, &open) {
        Step::Wait => true,
        Step::Delete => {
            match item.delete(control) {
                Ok(()) => {
                    deleted += 1;
                    tracing::info!("reload: {item} deleted: its connections have ended");
                }
                Err(e) => tracing::warn!("reload: deleting {item}: {e}"),
            }
            false
        }
        Step::Gone => {
            gone.push(item);
            false
        }
        Step::Kept => {
            tracing::info!("reload: {item} was given a weight again since the reload: kept");
            false
        }
    });
    // A health check that removed a leaving server must not bring it back.
    let mut checked = health.lock().unwrap_or_else(|e| e.into_inner());
    for item in gone {
        if let Leaving::Server(service, server) = item {
            checked.remove(&(service, server));
        }
    }
    deleted
}

impl Leaving {
    fn delete(self, control: &dyn Control) -> Result<(), masq_core::control::ControlError> {
        match self {
            Leaving::Service(service) => control.delete_service(service),
            Leaving::Server(service, server) => control.delete_dest(service, server),
        }
    }
}

/// `, N still leaving …` for a log line, or nothing.
fn still_leaving(leaving: &[Leaving]) -> String {
    match leaving.len() {
        0 => String::new(),
        n => format!(", {n} still leaving until their connections end"),
    }
}

impl fmt::Display for Leaving {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Leaving::Service(service) => write!(f, "service {service}"),
            Leaving::Server(service, server) => {
                write!(f, "real server {} of {service}", server_name(server))
            }
        }
    }
}

/// A duration in milliseconds, for the log.
struct Took(Duration);

impl fmt::Display for Took {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} ms", self.0.as_secs_f64() * 1e3)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use masq_core::control::{DestKey, Protocol, ServiceKey};
    use masq_core::director::{DirectorConfig, SideConfig};
    use masq_core::Timestamp;
    use masq_wire::ethernet::MacAddr;

    /// A director on the lab's addresses, with no rules.
    pub fn director() -> Arc<Director> {
        let side = |last: u8, addr: [u8; 4]| SideConfig {
            mac: MacAddr([2, 0, 0, 0, 0, last]),
            addrs: vec![(addr.into(), 24)],
        };
        Director::new(DirectorConfig {
            vip_side: side(1, [192, 168, 0, 10]),
            dip_side: side(2, [192, 168, 100, 10]),
            vip_gateway: None,
            max_conns: 1000,
            max_neighbours: 64,
        })
    }

    /// The rules `text` loads into an empty director.
    pub fn rules(text: &str) -> Rules {
        let scratch = director();
        let control = scratch.control(Timestamp(0));
        rules::apply_text(text, "test", &control).unwrap();
        Rules::of(&control)
    }

    /// The lab's TCP service on the VIP and `port`.
    pub fn service(port: u16) -> ServiceKey {
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: [192, 168, 0, 10].into(),
            port,
        }
    }

    /// The lab's real server 192.168.100.`last`:80.
    pub fn rs(last: u8) -> DestKey {
        DestKey {
            addr: [192, 168, 100, last].into(),
            port: 80,
        }
    }

    #[test]
    fn a_sweep_deletes_what_holds_no_connection_and_forgets_the_rest() {
        let live = director();
        let control = live.control(Timestamp(0));
        rules::apply_text(
            "-A -t 192.168.0.10:80 -s rr\n-a -t 192.168.0.10:80 -r 192.168.100.7 -m -w 0\n\
             -a -t 192.168.0.10:80 -r 192.168.100.9 -m -w 2\n\
             -A -t 192.168.0.10:81 -s rr\n-a -t 192.168.0.10:81 -r 192.168.100.7:80 -m -w 0\n",
            "test",
            &control,
        )
        .unwrap();
        let mut leaving = vec![
            Leaving::Server(service(80), rs(7)),
            Leaving::Server(service(80), rs(9)),
            Leaving::Service(service(81)),
            Leaving::Service(service(82)),
        ];
        assert_eq!(sweep(&mut leaving, &control, &HealthMap::default()), 2);
        assert!(leaving.is_empty(), "{leaving:?}");
        let now = control.services();
        assert_eq!(now.len(), 1, "{now:?}");
        let servers: Vec<DestKey> = now[0].dests.iter().map(|d| d.key).collect();
        assert_eq!(servers, [rs(9)], "the server given a weight stays");
    }

    #[test]
    fn delete_leaving_empties_the_list() {
        let live = director();
        let control = live.control(Timestamp(0));
        rules::apply_text("-A -t 192.168.0.10:80 -s rr\n", "test", &control).unwrap();
        let reloader = Reloader {
            rules: None,
            leaving: Mutex::new(vec![Leaving::Service(control.services()[0].key)]),
        };
        reloader.delete_leaving(&control);
        assert!(control.services().is_empty());
        assert!(!reloader.is_draining());
    }
}
