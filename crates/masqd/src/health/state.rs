//! What the health checker remembers between rounds, and how one round's findings change
//! the director.
//!
//! The map holds one entry per destination probed: every configured one, plus those the
//! checker itself removed (`--health-action remove`) from services that still exist. An
//! entry for anything else is dropped at the start of the next round, so the map never
//! holds more entries than destinations were configured. An entry taken out of service
//! remembers what the operator had configured, to bring it back as it was and to save it
//! as it was (`configured.rs`); when the operator changes that destination meanwhile
//! (edits, deletes or re-adds it), the operator's word wins and the memory goes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use masq_core::control::{Control, DestKey, DestParams, ServiceKey, ServiceView};

use super::probe::{Finding, LocalReason};
use super::{HealthConfig, OnFailure};

/// A destination of a service.
pub type Key = (ServiceKey, DestKey);

/// One real server's health, shared with the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub up: bool,
    ok_streak: u32,
    fail_streak: u32,
    /// Set while the checker keeps the real server out of service.
    taken_out: Option<TakenOut>,
}

impl Health {
    fn new() -> Health {
        Health {
            up: true,
            ok_streak: 0,
            fail_streak: 0,
            taken_out: None,
        }
    }

    /// What the operator configured, while the checker keeps the server out of service.
    pub fn configured(&self) -> Option<DestParams> {
        self.taken_out.map(|t| t.configured)
    }

    /// The operator configures `params` without giving up on the checks (a reload): what
    /// the director should hold now. `params` itself, unless the checker keeps the server
    /// out of service; then it remembers `params` to bring the server back with, and the
    /// director holds it quiesced with them, or not at all when it was removed (`None`).
    pub fn reconfigure(&mut self, params: DestParams) -> Option<DestParams> {
        let Some(taken_out) = &mut self.taken_out else {
            return Some(params);
        };
        taken_out.configured = params;
        taken_out.left = taken_out.left.map(|_| DestParams {
            weight: 0,
            ..params
        });
        taken_out.left
    }
}

/// A real server the checker took out of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TakenOut {
    /// What the operator had configured.
    configured: DestParams,
    /// What the checker left in the director: the quiesced parameters, or `None` when it
    /// removed the destination.
    left: Option<DestParams>,
}

/// Health of every checked real server, by (service, destination).
pub type HealthMap = Mutex<HashMap<Key, Health>>;

/// Probes that failed for a reason of the director's own: counted by reason since start,
/// and whether the last round had any.
#[derive(Debug, Default)]
pub struct LocalFailures {
    counts: [AtomicU64; LocalReason::ALL.len()],
    /// 1 + the index in [`LocalReason::ALL`] of the last round's first such reason; 0: none.
    ongoing: AtomicUsize,
}

impl LocalFailures {
    fn count(&self, reason: LocalReason) {
        self.counts[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    fn set_ongoing(&self, reason: Option<LocalReason>) {
        let slot = reason.map_or(0, |r| r.index() + 1);
        self.ongoing.store(slot, Ordering::Relaxed);
    }

    /// The reason the last round's probes failed for locally, if any did.
    pub fn ongoing(&self) -> Option<LocalReason> {
        let slot = self.ongoing.load(Ordering::Relaxed);
        slot.checked_sub(1).map(|i| LocalReason::ALL[i])
    }

    /// Every reason's errno name and count, for `masq_health_local_failures_total{reason}`.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        LocalReason::ALL
            .iter()
            .zip(&self.counts)
            .map(|(r, n)| (r.errno(), n.load(Ordering::Relaxed)))
    }
}

impl LocalReason {
    fn index(self) -> usize {
        LocalReason::ALL
            .iter()
            .position(|&r| r == self)
            .unwrap_or_default()
    }
}

/// The destinations to probe this round, given the services now; drops the map's entries
/// for everything else and adds fresh ones for new destinations.
pub fn targets(services: &[ServiceView], map: &mut HashMap<Key, Health>) -> Vec<Key> {
    let current: HashMap<Key, DestParams> = services
        .iter()
        .flat_map(|s| s.dests.iter().map(move |d| ((s.key, d.key), d.params)))
        .collect();
    let service_keys: HashSet<ServiceKey> = services.iter().map(|s| s.key).collect();
    map.retain(|key, health| match health.taken_out {
        // The operator changed what the checker left: theirs is the configuration now.
        Some(t) if current.get(key).copied() != t.left => {
            *health = Health::new();
            current.contains_key(key)
        }
        // Removed by the checker: kept while its service exists.
        Some(_) => service_keys.contains(&key.0),
        None => current.contains_key(key),
    });
    for key in current.keys() {
        map.entry(*key).or_insert_with(Health::new);
    }
    let mut keys: Vec<Key> = map.keys().copied().collect();
    keys.sort_unstable();
    keys
}

/// What one round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Probes that failed for a reason of the director's own, and the first such reason.
    pub unknown: usize,
    pub first_unknown: Option<LocalReason>,
}

/// Applies one round's findings: streaks, and taking real servers out or bringing them
/// back through `control`. A finding of [`Finding::Unknown`] is counted in `local` and
/// changes nothing else.
pub fn apply(
    control: &impl Control,
    config: &HealthConfig,
    map: &mut HashMap<Key, Health>,
    findings: &[(Key, Finding)],
    local: &LocalFailures,
) -> Round {
    let mut round = Round::default();
    for &(key, finding) in findings {
        let Some(h) = map.get_mut(&key) else {
            continue;
        };
        match finding {
            Finding::Up => {
                h.ok_streak += 1;
                h.fail_streak = 0;
            }
            Finding::Down => {
                h.fail_streak += 1;
                h.ok_streak = 0;
            }
            Finding::Unknown(reason) => {
                local.count(reason);
                round.unknown += 1;
                round.first_unknown.get_or_insert(reason);
                continue;
            }
        }
        if h.up && h.fail_streak >= config.fall {
            h.up = false;
            h.taken_out = take_out(control, config, key);
        } else if !h.up && h.ok_streak >= config.rise {
            h.up = true;
            if let Some(t) = h.taken_out.take() {
                bring_back(control, key, t);
            }
        }
    }
    local.set_ongoing(round.first_unknown);
    round
}

fn take_out(control: &impl Control, config: &HealthConfig, (svc, dest): Key) -> Option<TakenOut> {
    let configured = control
        .services()
        .into_iter()
        .find(|s| s.key == svc)
        .and_then(|s| s.dests.into_iter().find(|d| d.key == dest))
        .map(|d| d.params)?;
    let (result, left) = match config.on_failure {
        OnFailure::Quiesce => {
            let quiesced = DestParams {
                weight: 0,
                ..configured
            };
            (control.edit_dest(svc, dest, quiesced), Some(quiesced))
        }
        OnFailure::Remove => (control.delete_dest(svc, dest), None),
    };
    match result {
        Ok(()) => {
            tracing::warn!(
                "health: {}:{} of {svc} failed {} checks: {}",
                dest.addr,
                dest.port,
                config.fall,
                match config.on_failure {
                    OnFailure::Quiesce => "quiesced (weight 0)",
                    OnFailure::Remove => "removed",
                }
            );
            Some(TakenOut { configured, left })
        }
        Err(e) => {
            tracing::warn!(
                "health: taking {}:{} out of {svc}: {e}",
                dest.addr,
                dest.port
            );
            None
        }
    }
}

fn bring_back(control: &impl Control, (svc, dest): Key, taken_out: TakenOut) {
    let params = taken_out.configured;
    let result = match taken_out.left {
        Some(_) => control.edit_dest(svc, dest, params),
        None => control.add_dest(svc, dest, params),
    };
    match result {
        Ok(()) => tracing::info!(
            "health: {}:{} of {svc} recovered: back with weight {}",
            dest.addr,
            dest.port,
            params.weight
        ),
        // The service may have been deleted meanwhile: nothing to restore then.
        Err(e) => tracing::info!(
            "health: {}:{} of {svc} recovered but not restored: {e}",
            dest.addr,
            dest.port
        ),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::health::Probe;
    use masq_core::control::{FwdMethod, Protocol};
    use masq_core::director::{DirectorConfig, SideConfig};
    use masq_core::{Director, Timestamp};
    use masq_wire::ethernet::MacAddr;
    use std::sync::Arc;
    use std::time::Duration;

    pub fn service(port: u16) -> ServiceKey {
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: [192, 168, 0, 10].into(),
            port,
        }
    }

    pub fn dest(last: u8) -> DestKey {
        DestKey {
            addr: [192, 168, 100, last].into(),
            port: 80,
        }
    }

    fn weight(weight: i32) -> DestParams {
        DestParams {
            fwd: FwdMethod::Masq,
            weight,
            ..DestParams::default()
        }
    }

    /// RS1 (.7) fails its probes, RS2 (.9) passes.
    fn rs1_down(key: Key) -> Finding {
        if key.1 == dest(7) {
            Finding::Down
        } else {
            Finding::Up
        }
    }

    /// A director and a checker with `rise` and `fall` 2, run round by round.
    pub struct Checker {
        pub director: Arc<Director>,
        config: HealthConfig,
        pub local: LocalFailures,
        pub map: HashMap<Key, Health>,
    }

    impl Checker {
        pub fn new(on_failure: OnFailure) -> Checker {
            let side = |last: u8, addr: [u8; 4]| SideConfig {
                mac: MacAddr([2, 0, 0, 0, 0, last]),
                addrs: vec![(addr.into(), 24)],
            };
            Checker {
                director: Director::new(DirectorConfig {
                    vip_side: side(1, [192, 168, 0, 10]),
                    dip_side: side(2, [192, 168, 100, 10]),
                    vip_gateway: None,
                    max_conns: 1000,
                    max_neighbours: 64,
                }),
                config: HealthConfig {
                    probe: Probe::Tcp,
                    interval: Duration::from_secs(1),
                    timeout: Duration::from_secs(1),
                    rise: 2,
                    fall: 2,
                    on_failure,
                },
                local: LocalFailures::default(),
                map: HashMap::new(),
            }
        }

        pub fn control(&self) -> impl Control + '_ {
            self.director.control(Timestamp(0))
        }

        /// A service on `port` with real servers .7 (weight 3) and .9 (weight 1).
        pub fn configure(&self, port: u16) {
            let control = self.control();
            control
                .add_service(service(port), Default::default())
                .unwrap();
            control.add_dest(service(port), dest(7), weight(3)).unwrap();
            control.add_dest(service(port), dest(9), weight(1)).unwrap();
        }

        /// One round in which every target gets `finding_of` it.
        pub fn round(&mut self, finding_of: impl Fn(Key) -> Finding) -> Round {
            let control = self.director.control(Timestamp(0));
            let findings: Vec<(Key, Finding)> = targets(&control.services(), &mut self.map)
                .into_iter()
                .map(|k| (k, finding_of(k)))
                .collect();
            apply(
                &control,
                &self.config,
                &mut self.map,
                &findings,
                &self.local,
            )
        }

        /// The weight of real server `.last` in the service on `port`, if it is there.
        pub fn weight(&self, port: u16, last: u8) -> Option<i32> {
            self.control()
                .services()
                .into_iter()
                .find(|s| s.key == service(port))?
                .dests
                .into_iter()
                .find(|d| d.key == dest(last))
                .map(|d| d.params.weight)
        }
    }

    #[test]
    fn a_failing_server_is_quiesced_after_fall_and_restored_after_rise() {
        let mut c = Checker::new(OnFailure::Quiesce);
        c.configure(80);
        c.round(rs1_down);
        assert_eq!(c.weight(80, 7), Some(3));
        c.round(rs1_down);
        assert_eq!(c.weight(80, 7), Some(0));
        assert_eq!(c.map[&(service(80), dest(7))].configured(), Some(weight(3)));
        c.round(|_| Finding::Up);
        assert_eq!(c.weight(80, 7), Some(0));
        c.round(|_| Finding::Up);
        assert_eq!(c.weight(80, 7), Some(3));
        assert!(c.map.values().all(|h| h.up && h.configured().is_none()));
    }

    #[test]
    fn local_failures_are_counted_and_change_no_weight() {
        let mut c = Checker::new(OnFailure::Quiesce);
        c.configure(80);
        for _ in 0..10 {
            let r = c.round(|_| Finding::Unknown(LocalReason::Emfile));
            assert_eq!(
                r,
                Round {
                    unknown: 2,
                    first_unknown: Some(LocalReason::Emfile)
                }
            );
        }
        assert_eq!((c.weight(80, 7), c.weight(80, 9)), (Some(3), Some(1)));
        let counts: Vec<(&str, u64)> = c.local.counts().collect();
        assert_eq!(counts[0], ("EMFILE", 20));
        assert!(counts[1..].iter().all(|&(_, n)| n == 0), "{counts:?}");
        assert_eq!(c.local.ongoing(), Some(LocalReason::Emfile));
        // A local failure between two real ones does not break the streak either way.
        c.round(|_| Finding::Down);
        c.round(|_| Finding::Unknown(LocalReason::Enobufs));
        assert_eq!(c.weight(80, 7), Some(3));
        c.round(|_| Finding::Down);
        assert_eq!(c.weight(80, 7), Some(0));
        assert_eq!(c.local.ongoing(), None);
    }

    #[test]
    fn the_map_holds_only_configured_destinations() {
        let mut c = Checker::new(OnFailure::Quiesce);
        for port in 1..=50 {
            c.configure(port);
        }
        c.round(|_| Finding::Down);
        c.round(|_| Finding::Down);
        assert_eq!(c.map.len(), 100);
        for port in 1..=40 {
            c.control().delete_service(service(port)).unwrap();
        }
        // A quiesced server the operator deletes is forgotten, not brought back.
        c.control().delete_dest(service(41), dest(7)).unwrap();
        c.round(|_| Finding::Up);
        assert_eq!(c.map.len(), 19);
        c.round(|_| Finding::Up);
        assert_eq!((c.weight(41, 7), c.weight(41, 9)), (None, Some(1)));
        c.control().flush().unwrap();
        c.round(|_| Finding::Up);
        assert!(c.map.is_empty());
    }

    #[test]
    fn removed_servers_are_kept_while_their_service_exists() {
        let mut c = Checker::new(OnFailure::Remove);
        c.configure(80);
        c.configure(81);
        c.round(rs1_down);
        c.round(rs1_down);
        assert_eq!(c.weight(80, 7), None);
        assert_eq!(c.map.len(), 4, "the removed ones are still probed");
        c.control().delete_service(service(81)).unwrap();
        c.round(rs1_down);
        assert_eq!(c.map.len(), 2);
        c.round(|_| Finding::Up);
        c.round(|_| Finding::Up);
        assert_eq!((c.weight(80, 7), c.weight(81, 7)), (Some(3), None));
    }

    #[test]
    fn a_reconfigured_server_stays_out_until_it_recovers_and_comes_back_as_reconfigured() {
        for on_failure in [OnFailure::Quiesce, OnFailure::Remove] {
            let mut c = Checker::new(on_failure);
            c.configure(80);
            c.round(rs1_down);
            c.round(rs1_down);
            let held = c.weight(80, 7);
            let key = (service(80), dest(7));
            let now = c.map.get_mut(&key).unwrap().reconfigure(weight(5));
            assert_eq!(now.map(|p| p.weight), held, "{on_failure:?}");
            if let Some(params) = now {
                c.control().edit_dest(service(80), dest(7), params).unwrap();
            }
            c.round(rs1_down);
            assert_eq!(c.weight(80, 7), held, "{on_failure:?}: still out");
            c.round(|_| Finding::Up);
            c.round(|_| Finding::Up);
            assert_eq!(c.weight(80, 7), Some(5), "{on_failure:?}");
            let up = c.map.get_mut(&key).unwrap().reconfigure(weight(2));
            assert_eq!(up, Some(weight(2)), "a server in service takes it as it is");
        }
    }

    #[test]
    fn the_operators_change_to_a_quiesced_server_wins() {
        let mut c = Checker::new(OnFailure::Quiesce);
        c.configure(80);
        c.round(|_| Finding::Down);
        c.round(|_| Finding::Down);
        c.control()
            .edit_dest(service(80), dest(7), weight(5))
            .unwrap();
        for _ in 0..4 {
            c.round(|_| Finding::Up);
        }
        assert_eq!((c.weight(80, 7), c.weight(80, 9)), (Some(5), Some(1)));
    }
}
