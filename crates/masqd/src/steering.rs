//! `--io xdp`: keeps the address maps of the two XDP programs in step with the services.
//!
//! The program on each interface steals frames by address (see [`XdpPort`]): on the VIP
//! side frames to a VIP (only its services' ports, ICMP errors and later fragments when
//! the VIP is also one of the host's addresses, so the host keeps its own traffic to it),
//! on the DIP side frames from a real server that are not for one of the host's own
//! addresses. So the maps must hold every VIP, every service, every real server and the
//! host's addresses. They follow the services after each control request and once a
//! second (health checks and the web page change destinations too); nothing is written
//! when the addresses did not change, so the once-a-second pass costs a comparison.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use masq_core::service::ServiceTable;
use masq_io::{IoError, XdpPort, XdpStats};

/// The addresses the programs were last given.
#[derive(Debug, Default, PartialEq, Eq)]
struct Addresses {
    vips: Vec<Ipv4Addr>,
    /// (VIP, IP protocol, port) of every TCP and UDP service.
    services: Vec<(Ipv4Addr, u8, u16)>,
    real_servers: Vec<Ipv4Addr>,
}

/// Both sides' XDP ports and what their maps hold.
pub struct XdpSteering {
    ports: [Arc<XdpPort>; 2],
    /// The host's own IPv4 addresses on both interfaces: replies to its own traffic (health
    /// checks, ssh) from a real server's address stay with the kernel.
    locals: Vec<Ipv4Addr>,
    installed: Mutex<Option<Addresses>>,
}

impl XdpSteering {
    /// Steering for the ports of both sides, with the host's own addresses `locals`.
    pub fn new(vip: Arc<XdpPort>, dip: Arc<XdpPort>, locals: Vec<Ipv4Addr>) -> XdpSteering {
        XdpSteering {
            ports: [vip, dip],
            locals,
            installed: Mutex::new(None),
        }
    }

    /// Brings both maps up to date with `table`.
    ///
    /// # Errors
    ///
    /// A map refused an update (more than 4096 addresses); the maps then hold a mix of
    /// the old and the new addresses, and the next call tries again.
    pub fn sync(&self, table: &ServiceTable) -> Result<()> {
        let wanted = Addresses {
            vips: sorted(table.vips().to_vec()),
            services: table
                .forwarded_services()
                .into_iter()
                .map(|(protocol, vip, port)| (vip, protocol.number(), port))
                .collect(),
            real_servers: table.real_server_addrs(),
        };
        let mut installed = self.installed.lock().unwrap_or_else(|e| e.into_inner());
        if installed.as_ref() == Some(&wanted) {
            return Ok(());
        }
        *installed = None;
        for port in &self.ports {
            port.set_addresses(&wanted.vips, &wanted.real_servers, &self.locals)
                .context("steering service traffic to masqd (XDP address map)")?;
            port.set_service_ports(&wanted.services)
                .context("steering service traffic to masqd (XDP service map)")?;
        }
        *installed = Some(wanted);
        Ok(())
    }

    /// Each side's port counters, by side name (`vip`, `dip`).
    pub fn stats(&self) -> [(&'static str, Result<XdpStats, IoError>); 2] {
        let [vip, dip] = &self.ports;
        [("vip", vip.stats()), ("dip", dip.stats())]
    }
}

fn sorted(mut addrs: Vec<Ipv4Addr>) -> Vec<Ipv4Addr> {
    addrs.sort_unstable();
    addrs.dedup();
    addrs
}
