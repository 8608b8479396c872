//! The numbers that only traffic makes, laid over the real director's listings.
//!
//! A transcript's listings show counters, rates and connection entries that its lab's
//! traffic left in the kernel: packets over minutes, the 2-second rate estimator, the
//! connection table in the kernel's hash order. [`WithTraffic`] passes every operation to
//! the director and, in `-L`, `-S` and `-c`, replaces just those numbers with the ones the
//! transcript observed. Services, real servers, their parameters and their order, the
//! timeouts and every error still come from the director.

use std::cell::RefCell;
use std::collections::HashMap;

use masq_core::control::{
    ConnView, Control, ControlError, DaemonConfig, DaemonRequest, DestKey, DestParams, RateView,
    ServiceKey, ServiceParams, ServiceView, StatsView, SyncRole, Timeouts,
};
use masq_core::director::DirectorControl;

/// What traffic left on one service or real server.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub stats: StatsView,
    pub rate: RateView,
    /// Connection counts: a real server's only (services have none).
    pub active_conns: u32,
    pub inact_conns: u32,
}

#[derive(Default)]
struct Observed {
    services: HashMap<ServiceKey, Counters>,
    dests: HashMap<(ServiceKey, DestKey), Counters>,
    conns: Vec<ConnView>,
}

/// The director, with observed traffic numbers in its listings.
pub struct WithTraffic<'a> {
    director: DirectorControl<'a>,
    observed: RefCell<Observed>,
}

impl<'a> WithTraffic<'a> {
    pub fn new(director: DirectorControl<'a>) -> Self {
        WithTraffic {
            director,
            observed: RefCell::default(),
        }
    }

    /// The counters and rates of service `key`.
    pub fn set_service(&self, key: ServiceKey, counters: Counters) {
        self.observed.borrow_mut().services.insert(key, counters);
    }

    /// The counters, rates and connection counts of real server `dest` of `service`.
    pub fn set_dest(&self, service: ServiceKey, dest: DestKey, counters: Counters) {
        self.observed
            .borrow_mut()
            .dests
            .insert((service, dest), counters);
    }

    /// The connection table, in the order `-c` lists it.
    pub fn set_connections(&self, conns: Vec<ConnView>) {
        self.observed.borrow_mut().conns = conns;
    }
}

impl Control for WithTraffic<'_> {
    fn add_service(&self, key: ServiceKey, params: ServiceParams) -> Result<(), ControlError> {
        self.director.add_service(key, params)
    }

    fn edit_service(&self, key: ServiceKey, params: ServiceParams) -> Result<(), ControlError> {
        self.director.edit_service(key, params)
    }

    fn delete_service(&self, key: ServiceKey) -> Result<(), ControlError> {
        self.director.delete_service(key)
    }

    fn flush(&self) -> Result<(), ControlError> {
        self.director.flush()
    }

    fn add_dest(
        &self,
        service: ServiceKey,
        dest: DestKey,
        params: DestParams,
    ) -> Result<(), ControlError> {
        self.director.add_dest(service, dest, params)
    }

    fn edit_dest(
        &self,
        service: ServiceKey,
        dest: DestKey,
        params: DestParams,
    ) -> Result<(), ControlError> {
        self.director.edit_dest(service, dest, params)
    }

    fn delete_dest(&self, service: ServiceKey, dest: DestKey) -> Result<(), ControlError> {
        self.director.delete_dest(service, dest)
    }

    /// The director's `-Z`, and the observed counters and rates it covers zeroed with it.
    fn zero(&self, service: Option<ServiceKey>) -> Result<(), ControlError> {
        self.director.zero(service)?;
        let covered = |key: &ServiceKey| service.is_none_or(|s| s == *key);
        let mut observed = self.observed.borrow_mut();
        let Observed {
            services, dests, ..
        } = &mut *observed;
        let zeroed = services
            .iter_mut()
            .filter(|(key, _)| covered(key))
            .map(|(_, c)| c)
            .chain(
                dests
                    .iter_mut()
                    .filter(|((key, _), _)| covered(key))
                    .map(|(_, c)| c),
            );
        for counters in zeroed {
            counters.stats = StatsView::default();
            counters.rate = RateView::default();
        }
        Ok(())
    }

    fn set_timeouts(&self, timeouts: Timeouts) -> Result<(), ControlError> {
        self.director.set_timeouts(timeouts)
    }

    fn timeouts(&self) -> Timeouts {
        self.director.timeouts()
    }

    fn services(&self) -> Vec<ServiceView> {
        let observed = self.observed.borrow();
        let mut services = self.director.services();
        for svc in &mut services {
            if let Some(c) = observed.services.get(&svc.key) {
                svc.stats = c.stats;
                svc.rate = c.rate;
            }
            for d in &mut svc.dests {
                if let Some(c) = observed.dests.get(&(svc.key, d.key)) {
                    d.stats = c.stats;
                    d.rate = c.rate;
                    d.active_conns = c.active_conns;
                    d.inact_conns = c.inact_conns;
                }
            }
        }
        services
    }

    fn connections(&self) -> Vec<ConnView> {
        self.observed.borrow().conns.clone()
    }

    fn start_daemon(&self, request: DaemonRequest) -> Result<(), ControlError> {
        self.director.start_daemon(request)
    }

    fn stop_daemon(&self, role: SyncRole) -> Result<(), ControlError> {
        self.director.stop_daemon(role)
    }

    fn daemons(&self) -> Vec<DaemonConfig> {
        self.director.daemons()
    }
}
