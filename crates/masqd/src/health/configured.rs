//! The services as the operator configured them: what `--save-on-exit` writes. The
//! director's own view shows what the health checks made of them (weight 0, or the
//! destination gone); this one puts back what the checker took out, as it was configured.

use masq_core::control::{
    ConnView, Control, ControlError, DaemonConfig, DaemonRequest, DestKey, DestParams, DestView,
    ServiceKey, ServiceParams, ServiceView, SyncRole, Timeouts,
};

use super::state::Key;
use super::HealthMap;

/// A read-only [`Control`] over `control` whose services carry the configured
/// destinations; every change is refused.
pub struct AsConfigured<'a> {
    control: &'a dyn Control,
    taken_out: Vec<(Key, DestParams)>,
}

impl<'a> AsConfigured<'a> {
    /// `control`'s services with what the checker recorded in `health` undone.
    pub fn new(control: &'a dyn Control, health: &HealthMap) -> AsConfigured<'a> {
        let map = health.lock().unwrap_or_else(|e| e.into_inner());
        let mut taken_out: Vec<(Key, DestParams)> = map
            .iter()
            .filter_map(|(key, h)| h.configured().map(|params| (*key, params)))
            .collect();
        taken_out.sort_unstable_by_key(|(key, _)| *key);
        AsConfigured { control, taken_out }
    }
}

fn read_only() -> Result<(), ControlError> {
    Err(ControlError::Unsupported(
        "the configured services are read-only".to_string(),
    ))
}

impl Control for AsConfigured<'_> {
    fn add_service(&self, _: ServiceKey, _: ServiceParams) -> Result<(), ControlError> {
        read_only()
    }
    fn edit_service(&self, _: ServiceKey, _: ServiceParams) -> Result<(), ControlError> {
        read_only()
    }
    fn delete_service(&self, _: ServiceKey) -> Result<(), ControlError> {
        read_only()
    }
    fn flush(&self) -> Result<(), ControlError> {
        read_only()
    }
    fn add_dest(&self, _: ServiceKey, _: DestKey, _: DestParams) -> Result<(), ControlError> {
        read_only()
    }
    fn edit_dest(&self, _: ServiceKey, _: DestKey, _: DestParams) -> Result<(), ControlError> {
        read_only()
    }
    fn delete_dest(&self, _: ServiceKey, _: DestKey) -> Result<(), ControlError> {
        read_only()
    }
    fn zero(&self, _: Option<ServiceKey>) -> Result<(), ControlError> {
        read_only()
    }
    fn set_timeouts(&self, _: Timeouts) -> Result<(), ControlError> {
        read_only()
    }
    fn timeouts(&self) -> Timeouts {
        self.control.timeouts()
    }
    fn services(&self) -> Vec<ServiceView> {
        let mut services = self.control.services();
        for svc in &mut services {
            for &((key, dest), params) in &self.taken_out {
                if key != svc.key {
                    continue;
                }
                match svc.dests.iter_mut().find(|d| d.key == dest) {
                    Some(quiesced) => quiesced.params = params,
                    None => svc.dests.push(DestView {
                        key: dest,
                        params,
                        active_conns: 0,
                        inact_conns: 0,
                        persist_conns: 0,
                        stats: Default::default(),
                        rate: Default::default(),
                    }),
                }
            }
        }
        services
    }
    fn connections(&self) -> Vec<ConnView> {
        self.control.connections()
    }
    fn start_daemon(&self, _: DaemonRequest) -> Result<(), ControlError> {
        read_only()
    }
    fn stop_daemon(&self, _: SyncRole) -> Result<(), ControlError> {
        read_only()
    }
    fn daemons(&self) -> Vec<DaemonConfig> {
        self.control.daemons()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::state::tests::Checker;
    use crate::health::{Finding, OnFailure};
    use masq_ctl::{Env, NumericOnly};
    use std::sync::Mutex;

    fn saved(control: &dyn Control) -> String {
        let env = Env {
            program: "masqd",
            stdin: None,
            names: &NumericOnly,
        };
        masq_ctl::run(&["-S".to_string(), "-n".to_string()], &env, control).stdout
    }

    fn sorted_lines(text: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        lines
    }

    #[test]
    fn what_the_checker_took_out_is_saved_as_configured() {
        for on_failure in [OnFailure::Quiesce, OnFailure::Remove] {
            let mut c = Checker::new(on_failure);
            c.configure(80);
            let before = saved(&c.control());
            assert!(before.contains("-r 192.168.100.7:80 -m -w 3"), "{before}");
            c.round(|_| Finding::Down);
            c.round(|_| Finding::Down);
            let control = c.control();
            assert_ne!(
                saved(&control),
                before,
                "{on_failure:?}: the checker changed them"
            );
            let health: HealthMap = Mutex::new(c.map.clone());
            let as_configured = AsConfigured::new(&control, &health);
            let now = saved(&as_configured);
            assert_eq!(sorted_lines(&now), sorted_lines(&before), "{on_failure:?}");
            assert!(as_configured.flush().is_err());
        }
    }
}
