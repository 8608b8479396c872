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
    use masq_core::control::Protocol;
    use masq_core::director::{DirectorConfig, SideConfig};
    use masq_core::{Director, Timestamp};
    use masq_wire::ethernet::MacAddr;
    use std::sync::Arc;
    use std::time::Duration;

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
        })
    }

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

    pub fn weight(weight: i32) -> DestParams {
        DestParams {
            fwd: masq_core::control::FwdMethod::Masq,
            weight,
            ..DestParams::default()
        }
    }

    /// A service on `port` with real servers .7 (weight 3) and .9 (weight 1).
    pub fn configure(director: &Director, port: u16) {
        let control = director.control(Timestamp(0));
        control
            .add_service(service(port), Default::default())
            .unwrap();
        control.add_dest(service(port), dest(7), weight(3)).unwrap();
        control.add_dest(service(port), dest(9), weight(1)).unwrap();
    }

    pub fn config(on_failure: OnFailure) -> HealthConfig {
        HealthConfig {
            probe: Probe::Tcp,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 2,
            on_failure,
        }
    }

    pub fn weight_of(director: &Director, svc: ServiceKey, d: DestKey) -> Option<i32> {
        director
            .control(Timestamp(0))
            .services()
            .into_iter()
            .find(|s| s.key == svc)?
            .dests
            .into_iter()
            .find(|x| x.key == d)
            .map(|x| x.params.weight)
    }

    /// Runs one round in which every target gets `finding_of` it.
    pub fn round(
        director: &Director,
        config: &HealthConfig,
        map: &mut HashMap<Key, Health>,
        local: &LocalFailures,
        finding_of: impl Fn(Key) -> Finding,
    ) -> Round {
        let control = director.control(Timestamp(0));
        let findings: Vec<(Key, Finding)> = targets(&control.services(), map)
            .into_iter()
            .map(|k| (k, finding_of(k)))
            .collect();
        apply(&control, config, map, &findings, local)
    }

    #[test]
    fn a_failing_server_is_quiesced_after_fall_and_restored_after_rise() {
        let d = director();
        configure(&d, 80);
        let (config, local) = (config(OnFailure::Quiesce), LocalFailures::default());
        let mut map = HashMap::new();
        let rs1_down = |k: Key| {
            if k.1 == dest(7) {
                Finding::Down
            } else {
                Finding::Up
            }
        };
        round(&d, &config, &mut map, &local, rs1_down);
        assert_eq!(weight_of(&d, service(80), dest(7)), Some(3));
        round(&d, &config, &mut map, &local, rs1_down);
        assert_eq!(weight_of(&d, service(80), dest(7)), Some(0));
        assert_eq!(map[&(service(80), dest(7))].configured(), Some(weight(3)));
        round(&d, &config, &mut map, &local, |_| Finding::Up);
        assert_eq!(weight_of(&d, service(80), dest(7)), Some(0));
        round(&d, &config, &mut map, &local, |_| Finding::Up);
        assert_eq!(weight_of(&d, service(80), dest(7)), Some(3));
        assert!(map.values().all(|h| h.up && h.configured().is_none()));
    }

    #[test]
    fn local_failures_are_counted_and_change_no_weight() {
        let d = director();
        configure(&d, 80);
        let (config, local) = (config(OnFailure::Quiesce), LocalFailures::default());
        let mut map = HashMap::new();
        for _ in 0..10 {
            let r = round(&d, &config, &mut map, &local, |_| {
                Finding::Unknown(LocalReason::Emfile)
            });
            assert_eq!(
                r,
                Round {
                    unknown: 2,
                    first_unknown: Some(LocalReason::Emfile)
                }
            );
        }
        assert_eq!(weight_of(&d, service(80), dest(7)), Some(3));
        assert_eq!(weight_of(&d, service(80), dest(9)), Some(1));
        let counts: Vec<(&str, u64)> = local.counts().collect();
        assert_eq!(counts[0], ("EMFILE", 20));
        assert!(counts[1..].iter().all(|&(_, n)| n == 0), "{counts:?}");
        assert_eq!(local.ongoing(), Some(LocalReason::Emfile));
        // A local failure between two real ones does not break the streak either way.
        round(&d, &config, &mut map, &local, |_| Finding::Down);
        round(&d, &config, &mut map, &local, |_| {
            Finding::Unknown(LocalReason::Enobufs)
        });
        assert_eq!(weight_of(&d, service(80), dest(7)), Some(3));
        round(&d, &config, &mut map, &local, |_| Finding::Down);
        assert_eq!(weight_of(&d, service(80), dest(7)), Some(0));
        assert_eq!(local.ongoing(), None);
    }

    #[test]
    fn the_map_holds_only_configured_destinations() {
        let d = director();
        let (config, local) = (config(OnFailure::Quiesce), LocalFailures::default());
        let mut map = HashMap::new();
        for port in 1..=50 {
            configure(&d, port);
        }
        round(&d, &config, &mut map, &local, |_| Finding::Down);
        round(&d, &config, &mut map, &local, |_| Finding::Down);
        assert_eq!(map.len(), 100);
        let control = d.control(Timestamp(0));
        for port in 1..=40 {
            control.delete_service(service(port)).unwrap();
        }
        // A quiesced server the operator deletes is forgotten, not brought back.
        control.delete_dest(service(41), dest(7)).unwrap();
        round(&d, &config, &mut map, &local, |_| Finding::Up);
        assert_eq!(map.len(), 19);
        round(&d, &config, &mut map, &local, |_| Finding::Up);
        assert_eq!(weight_of(&d, service(41), dest(7)), None);
        assert_eq!(weight_of(&d, service(41), dest(9)), Some(1));
        control.flush().unwrap();
        round(&d, &config, &mut map, &local, |_| Finding::Up);
        assert!(map.is_empty());
    }

    #[test]
    fn removed_servers_are_kept_while_their_service_exists() {
        let d = director();
        configure(&d, 80);
        configure(&d, 81);
        let (config, local) = (config(OnFailure::Remove), LocalFailures::default());
        let mut map = HashMap::new();
        let rs1_down = |k: Key| {
            if k.1 == dest(7) {
                Finding::Down
            } else {
                Finding::Up
            }
        };
        round(&d, &config, &mut map, &local, rs1_down);
        round(&d, &config, &mut map, &local, rs1_down);
        assert_eq!(weight_of(&d, service(80), dest(7)), None);
        assert_eq!(map.len(), 4, "the removed ones are still probed");
        d.control(Timestamp(0)).delete_service(service(81)).unwrap();
        round(&d, &config, &mut map, &local, rs1_down);
        assert_eq!(map.len(), 2);
        round(&d, &config, &mut map, &local, |_| Finding::Up);
        round(&d, &config, &mut map, &local, |_| Finding::Up);
        assert_eq!(weight_of(&d, service(80), dest(7)), Some(3));
        assert_eq!(weight_of(&d, service(81), dest(7)), None);
    }

    #[test]
    fn the_operators_change_to_a_quiesced_server_wins() {
        let d = director();
        configure(&d, 80);
        let (config, local) = (config(OnFailure::Quiesce), LocalFailures::default());
        let mut map = HashMap::new();
        round(&d, &config, &mut map, &local, |_| Finding::Down);
        round(&d, &config, &mut map, &local, |_| Finding::Down);
        let control = d.control(Timestamp(0));
        control.edit_dest(service(80), dest(7), weight(5)).unwrap();
        for _ in 0..4 {
            round(&d, &config, &mut map, &local, |_| Finding::Up);
        }
        assert_eq!(weight_of(&d, service(80), dest(7)), Some(5));
        assert_eq!(weight_of(&d, service(80), dest(9)), Some(1));
    }
}
