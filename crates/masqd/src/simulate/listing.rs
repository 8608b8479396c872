//! The director's control with a stable `-L -c` order, for the simulated lab.
//!
//! The real director lists its connections in its hash table's order, which changes from
//! one run to the next (as the kernel's does: its table is hashed with a random seed).
//! The simulated lab promises the same listing for the same commands, so there the
//! connections are listed by client, then virtual service and real server; everything
//! else goes to the director unchanged.

use masq_core::control::{
    ConnView, Control, ControlError, DaemonConfig, DaemonRequest, DestKey, DestParams, ServiceKey,
    ServiceParams, ServiceView, SyncRole, Timeouts,
};
use masq_core::director::DirectorControl;

/// [`DirectorControl`], its connections listed in a stable order.
pub struct OrderedListing<'a>(pub DirectorControl<'a>);

impl Control for OrderedListing<'_> {
    fn connections(&self) -> Vec<ConnView> {
        let mut conns = self.0.connections();
        conns.sort_by(|a, b| {
            (a.client, a.virtual_, a.dest, a.protocol, a.template)
                .cmp(&(b.client, b.virtual_, b.dest, b.protocol, b.template))
        });
        conns
    }

    fn add_service(&self, key: ServiceKey, params: ServiceParams) -> Result<(), ControlError> {
        self.0.add_service(key, params)
    }

    fn edit_service(&self, key: ServiceKey, params: ServiceParams) -> Result<(), ControlError> {
        self.0.edit_service(key, params)
    }

    fn delete_service(&self, key: ServiceKey) -> Result<(), ControlError> {
        self.0.delete_service(key)
    }

    fn flush(&self) -> Result<(), ControlError> {
        self.0.flush()
    }

    fn add_dest(
        &self,
        service: ServiceKey,
        dest: DestKey,
        params: DestParams,
    ) -> Result<(), ControlError> {
        self.0.add_dest(service, dest, params)
    }

    fn edit_dest(
        &self,
        service: ServiceKey,
        dest: DestKey,
        params: DestParams,
    ) -> Result<(), ControlError> {
        self.0.edit_dest(service, dest, params)
    }

    fn delete_dest(&self, service: ServiceKey, dest: DestKey) -> Result<(), ControlError> {
        self.0.delete_dest(service, dest)
    }

    fn zero(&self, service: Option<ServiceKey>) -> Result<(), ControlError> {
        self.0.zero(service)
    }

    fn set_timeouts(&self, timeouts: Timeouts) -> Result<(), ControlError> {
        self.0.set_timeouts(timeouts)
    }

    fn timeouts(&self) -> Timeouts {
        self.0.timeouts()
    }

    fn services(&self) -> Vec<ServiceView> {
        self.0.services()
    }

    fn start_daemon(&self, request: DaemonRequest) -> Result<(), ControlError> {
        self.0.start_daemon(request)
    }

    fn stop_daemon(&self, role: SyncRole) -> Result<(), ControlError> {
        self.0.stop_daemon(role)
    }

    fn daemons(&self) -> Vec<DaemonConfig> {
        self.0.daemons()
    }
}
