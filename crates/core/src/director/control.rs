//! The director's control plane: ipvsadm's operations with the kernel's semantics
//! (`ip_vs_ctl.c`): the same checks in the same order, the same errno for each failure,
//! destinations inserted at the head of the list, scheduler hooks where the kernel calls
//! them, and deleted destinations kept in the trash while connections use them.

use std::net::IpAddr;
use std::sync::Arc;

use super::{lock, Director};
use crate::control::{
    ConnView, Control, ControlError, DaemonConfig, DaemonRequest, DestKey, DestParams, DestView,
    ServiceKey, ServiceParams, ServiceView, SyncRole, Timeouts,
};
use crate::dest::Destination;
use crate::sched::{self, Scheduler};
use crate::service::{SchedState, ServiceTable, VirtualService};
use crate::time::Timestamp;

/// The director as the control plane sees it at one moment (listings show times relative
/// to `now`; the core never reads a clock itself).
#[derive(Debug)]
pub struct DirectorControl<'a> {
    director: &'a Director,
    now: Timestamp,
}

impl<'a> DirectorControl<'a> {
    pub(super) fn new(director: &'a Director, now: Timestamp) -> Self {
        DirectorControl { director, now }
    }

    fn find(&self, key: &ServiceKey) -> Result<Arc<VirtualService>, ControlError> {
        self.director
            .services
            .load()
            .find(key)
            .cloned()
            .ok_or(ControlError::NoService)
    }

    fn replace_services(&self, services: Vec<Arc<VirtualService>>) {
        self.director
            .services
            .store(Arc::new(ServiceTable::new(services)));
    }

    /// Unlinks a service's destinations into the trash (service deleted or flushed).
    fn retire(&self, svc: &VirtualService) {
        let mut trash = lock(&self.director.trash);
        for dest in svc.lock().dests.unlink_all() {
            trash.insert((svc.key, dest.key), Arc::downgrade(&dest));
        }
        trash.retain(|_, weak| weak.strong_count() > 0);
    }
}

/// A scheduler by name, or ENOENT as the kernel answers for a module it cannot load.
fn new_scheduler(
    name: &str,
    dests: &[Arc<Destination>],
) -> Result<Box<dyn Scheduler>, ControlError> {
    sched::create(name, dests).ok_or(ControlError::NotFound)
}

/// The persistence engines the kernel has (`ip_vs_pe_sip.c`); for any other `--pe` name
/// `ip_vs_pe_getbyname` finds nothing and the kernel answers ENOENT.
const PERSISTENCE_ENGINES: &[&str] = &["sip"];

/// ENOENT for a persistence engine the kernel does not have.
fn check_pe(params: &ServiceParams) -> Result<(), ControlError> {
    match params.pe.as_deref() {
        Some(pe) if !PERSISTENCE_ENGINES.contains(&pe) => Err(ControlError::NotFound),
        _ => Ok(()),
    }
}

/// The kernel's checks on destination parameters (`ip_vs_add_dest`/`ip_vs_edit_dest`).
fn check_dest(key: &DestKey, params: &DestParams) -> Result<(), ControlError> {
    if params.weight < 0 {
        return Err(ControlError::OutOfRange);
    }
    if params.l_threshold > params.u_threshold {
        return Err(ControlError::OutOfRange);
    }
    // ip_vs_new_dest: IPv6 link-local addresses are refused with the rest, since a
    // real server must be reachable by its address alone (a link-local one needs a scope).
    let unicast = match key.addr {
        IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.is_unspecified()),
        IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified() || a.is_unicast_link_local()),
    };
    if !unicast {
        return Err(ControlError::Invalid);
    }
    Ok(())
}

impl Control for DirectorControl<'_> {
    fn add_service(&self, key: ServiceKey, params: ServiceParams) -> Result<(), ControlError> {
        let _serial = lock(&self.director.control_lock);
        // The kernel looks the service up before it looks for the scheduler: `-A` of an
        // existing service says so whatever `-s` names.
        let table = self.director.services.load();
        if table.find(&key).is_some() {
            return Err(ControlError::Exists);
        }
        let scheduler = new_scheduler(&params.scheduler, &[])?;
        check_pe(&params)?;
        let mut services = table.services.clone();
        services.push(Arc::new(VirtualService::new(key, params, scheduler)));
        self.replace_services(services);
        Ok(())
    }

    fn edit_service(&self, key: ServiceKey, params: ServiceParams) -> Result<(), ControlError> {
        let _serial = lock(&self.director.control_lock);
        let svc = self.find(&key)?;
        check_pe(&params)?;
        let mut state = svc.lock();
        if params.scheduler != state.params.scheduler {
            // A different scheduler starts from scratch (done_service + init_service); the
            // same name keeps its state.
            state.scheduler = new_scheduler(&params.scheduler, &state.dests)?;
        }
        state.params = params;
        Ok(())
    }

    fn delete_service(&self, key: ServiceKey) -> Result<(), ControlError> {
        let _serial = lock(&self.director.control_lock);
        let svc = self.find(&key)?;
        let table = self.director.services.load();
        let services = table
            .services
            .iter()
            .filter(|s| !Arc::ptr_eq(s, &svc))
            .cloned()
            .collect();
        self.replace_services(services);
        self.retire(&svc);
        Ok(())
    }

    fn flush(&self) -> Result<(), ControlError> {
        let _serial = lock(&self.director.control_lock);
        let table = self.director.services.load_full();
        self.replace_services(Vec::new());
        for svc in &table.services {
            self.retire(svc);
        }
        Ok(())
    }

    fn add_dest(
        &self,
        service: ServiceKey,
        dest: DestKey,
        params: DestParams,
    ) -> Result<(), ControlError> {
        let _serial = lock(&self.director.control_lock);
        let svc = self.find(&service)?;
        check_dest(&dest, &params)?;
        let mut state = svc.lock();
        if state.dests.position(&dest).is_some() {
            return Err(ControlError::Exists);
        }
        // Maglev needs a table slot per real server at least (ip_vs_mh.c: EINVAL).
        if state.params.scheduler == "mh" && state.dests.len() >= sched::mh::DEFAULT_TABLE_SIZE {
            return Err(ControlError::Invalid);
        }
        let resurrected = lock(&self.director.trash)
            .remove(&(service, dest))
            .and_then(|weak| weak.upgrade());
        let entry = match resurrected {
            Some(old) => {
                old.update(&params);
                old
            }
            None => Arc::new(Destination::new(dest, &params)),
        };
        let SchedState {
            dests, scheduler, ..
        } = &mut *state;
        dests.add(entry, scheduler.as_mut());
        Ok(())
    }

    fn edit_dest(
        &self,
        service: ServiceKey,
        dest: DestKey,
        params: DestParams,
    ) -> Result<(), ControlError> {
        let _serial = lock(&self.director.control_lock);
        let svc = self.find(&service)?;
        check_dest(&dest, &params)?;
        let mut state = svc.lock();
        let SchedState {
            dests, scheduler, ..
        } = &mut *state;
        let index = dests.position(&dest).ok_or(ControlError::NotFound)?;
        dests.edit(index, &params, scheduler.as_mut());
        Ok(())
    }

    fn delete_dest(&self, service: ServiceKey, dest: DestKey) -> Result<(), ControlError> {
        let _serial = lock(&self.director.control_lock);
        let svc = self.find(&service)?;
        let mut state = svc.lock();
        let SchedState {
            dests, scheduler, ..
        } = &mut *state;
        let index = dests.position(&dest).ok_or(ControlError::NotFound)?;
        let removed = dests.remove(index, scheduler.as_mut());
        lock(&self.director.trash).insert((service, dest), Arc::downgrade(&removed));
        Ok(())
    }

    fn zero(&self, service: Option<ServiceKey>) -> Result<(), ControlError> {
        let zero_service = |svc: &VirtualService| {
            svc.stats.zero();
            for d in &svc.lock().dests {
                d.stats.zero();
            }
        };
        match service {
            Some(key) => zero_service(self.find(&key)?.as_ref()),
            None => {
                for svc in &self.director.services.load().services {
                    zero_service(svc);
                }
                self.director.totals.zero();
            }
        }
        Ok(())
    }

    fn set_timeouts(&self, timeouts: Timeouts) -> Result<(), ControlError> {
        self.director.timeouts.set(timeouts);
        Ok(())
    }

    fn timeouts(&self) -> Timeouts {
        self.director.timeouts.get()
    }

    fn services(&self) -> Vec<ServiceView> {
        self.director
            .services
            .load()
            .services
            .iter()
            .map(|svc| {
                let state = svc.lock();
                ServiceView {
                    key: svc.key,
                    params: state.params.clone(),
                    stats: svc.stats.view(),
                    rate: svc.stats.rate(),
                    dests: state
                        .dests
                        .iter()
                        .map(|d| DestView {
                            key: d.key,
                            params: d.params(),
                            active_conns: d.active_conns(),
                            inact_conns: d.inact_conns(),
                            persist_conns: d.persist_conns(),
                            stats: d.stats.view(),
                            rate: d.stats.rate(),
                        })
                        .collect(),
                }
            })
            .collect()
    }

    fn connections(&self) -> Vec<ConnView> {
        let mut out = Vec::with_capacity(self.director.conns.len());
        self.director.conns.for_each(|c| {
            let remaining = c.expires().as_millis().saturating_sub(self.now.as_millis());
            out.push(ConnView {
                protocol: if c.protocol() == masq_wire::ipv4::PROTO_TCP {
                    "TCP"
                } else {
                    "UDP"
                },
                client: (IpAddr::V4(*c.client().ip()), c.client().port()),
                virtual_: (IpAddr::V4(*c.vaddr().ip()), c.vaddr().port()),
                dest: (IpAddr::V4(*c.daddr().ip()), c.daddr().port()),
                state: c.state().name(),
                expires_secs: remaining / 1000,
                template: false,
            });
        });
        self.director.templates.for_each(|t| {
            let remaining = t.expires().as_millis().saturating_sub(self.now.as_millis());
            out.push(ConnView {
                protocol: if t.key.protocol == masq_wire::ipv4::PROTO_TCP {
                    "TCP"
                } else {
                    "UDP"
                },
                client: (IpAddr::V4(t.key.client_net), 0),
                virtual_: (IpAddr::V4(t.key.vaddr), t.key.vport),
                dest: (t.dest.key.addr, t.dport),
                state: "NONE",
                expires_secs: remaining / 1000,
                template: true,
            });
        });
        out
    }

    fn start_daemon(&self, request: DaemonRequest) -> Result<(), ControlError> {
        let master = request.role == SyncRole::Master;
        self.director.sync_daemons.start(request)?;
        if master {
            self.director.sync_outbox.set_active(true);
        }
        Ok(())
    }

    fn stop_daemon(&self, role: SyncRole) -> Result<(), ControlError> {
        self.director.sync_daemons.stop(role)?;
        if role == SyncRole::Master {
            self.director.sync_outbox.set_active(false);
        }
        Ok(())
    }

    fn daemons(&self) -> Vec<DaemonConfig> {
        self.director.sync_daemons.list()
    }
}
