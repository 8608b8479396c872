//! A model director with the kernel's control-plane semantics (ip_vs_ctl.c, reference
//! ipvs-semantics.md §7): ESRCH for a missing service, EEXIST for duplicates, ENOENT for an
//! unknown scheduler / persistence engine or a missing destination, ERANGE for a negative
//! weight or l_threshold > u_threshold, EINVAL for a non-unicast real server, destinations
//! newest first, `-E`/`-e` as full replacements, deleted destinations kept in a trash and
//! revived with their counters.

use std::cell::RefCell;
use std::net::IpAddr;

use masq_core::control::{
    ConnView, Control, ControlError, DestKey, DestParams, DestView, RateView, ServiceKey,
    ServiceParams, ServiceView, StatsView, Timeouts,
};

const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
    "none",
];

#[derive(Default)]
struct State {
    /// In "hash bucket" order: here simply creation order.
    services: Vec<ServiceView>,
    trash: Vec<(ServiceKey, DestView)>,
    timeouts: Option<Timeouts>,
    conns: Vec<ConnView>,
}

/// The model. Interior mutability because `Control` takes `&self`.
#[derive(Default)]
pub struct Model {
    state: RefCell<State>,
}

fn check_params(p: &ServiceParams) -> Result<(), ControlError> {
    if !SCHEDULERS.contains(&p.scheduler.as_str()) {
        return Err(ControlError::NotFound);
    }
    if p.pe.as_deref().is_some_and(|pe| pe != "sip") {
        return Err(ControlError::NotFound);
    }
    Ok(())
}

fn check_dest(dest: &DestKey, p: &DestParams) -> Result<(), ControlError> {
    if p.weight < 0 || p.l_threshold > p.u_threshold {
        return Err(ControlError::OutOfRange);
    }
    let unicast = match dest.addr {
        IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.is_unspecified()),
        IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified()),
    };
    if !unicast {
        return Err(ControlError::Invalid);
    }
    Ok(())
}

impl Model {
    pub fn new() -> Self {
        Self::default()
    }

    /// Change a service's counters (what traffic would have done).
    pub fn service_counters(&self, key: ServiceKey, stats: StatsView, rate: RateView) {
        let mut st = self.state.borrow_mut();
        let s = st
            .services
            .iter_mut()
            .find(|s| s.key == key)
            .expect("service");
        s.stats = stats;
        s.rate = rate;
    }

    /// Change a destination's connection counts and counters.
    pub fn dest_counters(&self, key: ServiceKey, dest: DestKey, f: impl FnOnce(&mut DestView)) {
        let mut st = self.state.borrow_mut();
        let s = st
            .services
            .iter_mut()
            .find(|s| s.key == key)
            .expect("service");
        f(s.dests.iter_mut().find(|d| d.key == dest).expect("dest"));
    }

    /// Replace the connection table.
    pub fn set_connections(&self, conns: Vec<ConnView>) {
        self.state.borrow_mut().conns = conns;
    }

    fn with_service<R>(
        &self,
        key: ServiceKey,
        f: impl FnOnce(&mut ServiceView, &mut Vec<(ServiceKey, DestView)>) -> Result<R, ControlError>,
    ) -> Result<R, ControlError> {
        let mut st = self.state.borrow_mut();
        let State {
            services, trash, ..
        } = &mut *st;
        let s = services
            .iter_mut()
            .find(|s| s.key == key)
            .ok_or(ControlError::NoService)?;
        f(s, trash)
    }
}

impl Control for Model {
    fn add_service(&self, key: ServiceKey, params: ServiceParams) -> Result<(), ControlError> {
        check_params(&params)?;
        let mut st = self.state.borrow_mut();
        if st.services.iter().any(|s| s.key == key) {
            return Err(ControlError::Exists);
        }
        st.services.push(ServiceView {
            key,
            params,
            stats: StatsView::default(),
            rate: RateView::default(),
            dests: Vec::new(),
        });
        Ok(())
    }

    fn edit_service(&self, key: ServiceKey, params: ServiceParams) -> Result<(), ControlError> {
        self.with_service(key, |s, _| {
            check_params(&params)?;
            s.params = params;
            Ok(())
        })
    }

    fn delete_service(&self, key: ServiceKey) -> Result<(), ControlError> {
        let mut st = self.state.borrow_mut();
        let i = st
            .services
            .iter()
            .position(|s| s.key == key)
            .ok_or(ControlError::NoService)?;
        let s = st.services.remove(i);
        st.trash.extend(s.dests.into_iter().map(|d| (key, d)));
        Ok(())
    }

    fn flush(&self) -> Result<(), ControlError> {
        let keys: Vec<_> = self.state.borrow().services.iter().map(|s| s.key).collect();
        for k in keys {
            self.delete_service(k)?;
        }
        Ok(())
    }

    fn add_dest(
        &self,
        service: ServiceKey,
        dest: DestKey,
        params: DestParams,
    ) -> Result<(), ControlError> {
        self.with_service(service, |s, trash| {
            check_dest(&dest, &params)?;
            if s.dests.iter().any(|d| d.key == dest) {
                return Err(ControlError::Exists);
            }
            let revived = trash
                .iter()
                .position(|(k, d)| *k == service && d.key == dest)
                .map(|i| trash.remove(i).1);
            let mut view = revived.unwrap_or(DestView {
                key: dest,
                params,
                active_conns: 0,
                inact_conns: 0,
                persist_conns: 0,
                stats: StatsView::default(),
                rate: RateView::default(),
            });
            view.params = params;
            // New destinations go to the head of the list.
            s.dests.insert(0, view);
            Ok(())
        })
    }

    fn edit_dest(
        &self,
        service: ServiceKey,
        dest: DestKey,
        params: DestParams,
    ) -> Result<(), ControlError> {
        self.with_service(service, |s, _| {
            check_dest(&dest, &params)?;
            let d = s
                .dests
                .iter_mut()
                .find(|d| d.key == dest)
                .ok_or(ControlError::NotFound)?;
            d.params = params;
            Ok(())
        })
    }

    fn delete_dest(&self, service: ServiceKey, dest: DestKey) -> Result<(), ControlError> {
        self.with_service(service, |s, trash| {
            let i = s
                .dests
                .iter()
                .position(|d| d.key == dest)
                .ok_or(ControlError::NotFound)?;
            trash.push((service, s.dests.remove(i)));
            Ok(())
        })
    }

    fn zero(&self, service: Option<ServiceKey>) -> Result<(), ControlError> {
        let mut st = self.state.borrow_mut();
        let mut found = service.is_none();
        for s in st.services.iter_mut() {
            if service.is_none_or(|k| k == s.key) {
                found = true;
                s.stats = StatsView::default();
                s.rate = RateView::default();
                for d in s.dests.iter_mut() {
                    d.stats = StatsView::default();
                    d.rate = RateView::default();
                }
            }
        }
        if found {
            Ok(())
        } else {
            Err(ControlError::NoService)
        }
    }

    fn set_timeouts(&self, t: Timeouts) -> Result<(), ControlError> {
        let mut st = self.state.borrow_mut();
        let mut cur = st.timeouts.unwrap_or_default();
        // A zero leaves the value as it is.
        if t.tcp != 0 {
            cur.tcp = t.tcp;
        }
        if t.tcp_fin != 0 {
            cur.tcp_fin = t.tcp_fin;
        }
        if t.udp != 0 {
            cur.udp = t.udp;
        }
        st.timeouts = Some(cur);
        Ok(())
    }

    fn timeouts(&self) -> Timeouts {
        self.state.borrow().timeouts.unwrap_or_default()
    }

    fn services(&self) -> Vec<ServiceView> {
        self.state.borrow().services.clone()
    }

    fn connections(&self) -> Vec<ConnView> {
        self.state.borrow().conns.clone()
    }
}
