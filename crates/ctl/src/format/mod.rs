//! ipvsadm's output formats, byte for byte: the `-L` listing in all its variants, `-S` rules,
//! `-L -c`, `-L --timeout`, the `--stats`/`--rate` number columns, and the listing order.
//!
//! Inputs are the director's views ([`ServiceView`] in its own order, destinations newest
//! first); sorting happens here, as it does in ipvsadm, unless `--nosort`.

mod conn;
mod name;
mod number;
mod service;
pub mod sort;

use masq_core::control::{DaemonConfig, ServiceView, Timeouts};

use crate::names::Names;

pub use conn::connections;
pub use name::addrport;
pub use number::largenum;

/// The first line of `-L`: the kernel's IPVS version and connection-table size, which for
/// masq are always the values a stock kernel reports.
pub const BANNER: &str = "IP Virtual Server version 1.2.1 (size=4096)\n";

/// The listing options of `-L` (ipvsadm's `FMT_*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListFormat {
    /// `-n`: numbers instead of host and service names.
    pub numeric: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--thresholds`.
    pub thresholds: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--tun-info`.
    pub tun_info: bool,
    /// `--nosort`: the director's order, destinations newest first.
    pub nosort: bool,
    /// `--exact` / `-X`: full numbers in `--stats` and `--rate`.
    pub exact: bool,
}

/// `-L` without a service: banner, titles, every service with its real servers.
pub fn list_all(services: &[ServiceView], f: &ListFormat, names: &dyn Names) -> String {
    let mut out = String::from(BANNER);
    out.push_str(&service::title(f));
    let services = if f.nosort {
        services.to_vec()
    } else {
        sort::sort_services(services.to_vec())
    };
    for svc in &services {
        service::list_entry(&mut out, svc, f, names);
    }
    out
}

/// `-L -t|-u|-f …`: titles and the one service, no banner.
pub fn list_service(svc: &ServiceView, f: &ListFormat, names: &dyn Names) -> String {
    let mut out = service::title(f);
    service::list_entry(&mut out, svc, f, names);
    out
}

/// `-S` (`numeric` for `-S -n`): one `-A` line per service followed by its `-a` lines, in
/// listing order. Thresholds are not saved, as in ipvsadm.
pub fn save(services: &[ServiceView], numeric: bool, names: &dyn Names) -> String {
    let mut out = String::new();
    for svc in &sort::sort_services(services.to_vec()) {
        service::rule_entry(&mut out, svc, numeric, names);
    }
    out
}

/// `-L --timeout`.
/// `-L --daemon`: one line per running daemon, master first, nothing when none runs.
pub fn daemons(daemons: &[DaemonConfig]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for d in daemons {
        let _ = write!(
            out,
            "{} sync daemon (mcast={}, syncid={}",
            d.role.name(),
            d.mcast_interface,
            d.syncid
        );
        // ipvsadm leaves out the fields the kernel reports as 0.
        if d.sync_maxlen != 0 {
            let _ = write!(out, ", maxlen={}", d.sync_maxlen);
        }
        let _ = write!(out, ", group={}, port={}", d.mcast_group, d.mcast_port);
        if d.mcast_ttl != 0 {
            let _ = write!(out, ", ttl={}", d.mcast_ttl);
        }
        out.push_str(")\n");
    }
    out
}

/// `-L --timeout`.
pub fn timeouts(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcp_fin, t.udp
    )
}
