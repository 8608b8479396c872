//! What masqd verifies about its host before it touches a packet, so that a setup that
//! would break forwarding is refused with a message saying what to fix, and one that
//! would break part of it is a start-up finding (`startup_findings.rs`).

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use masq_io::Interface;

use crate::startup_findings::{Finding, StartupFindings};

/// The two interfaces, checked.
pub struct Host {
    pub vip: Interface,
    pub dip: Interface,
}

/// Runs every start-up check; what masqd can run with goes to `findings`.
///
/// # Errors
/// With a message naming the problem and its fix.
pub fn host(
    vip_iface: &str,
    dip_iface: &str,
    has_gateway: bool,
    findings: &mut StartupFindings,
) -> Result<Host> {
    if vip_iface == dip_iface {
        bail!("--vip-iface and --dip-iface are both {vip_iface}: masq needs two interfaces (clients on one, real servers on the other)");
    }
    if masq_io::host::ip_forward_enabled().context("reading net.ipv4.ip_forward")? {
        bail!(
            "net.ipv4.ip_forward is 1: the kernel would forward VIP traffic itself and let real servers' un-NATed replies through.\n\
             masqd forwards in userspace; turn kernel forwarding off: sysctl -w net.ipv4.ip_forward=0"
        );
    }
    let vip = interface(vip_iface, "--vip-iface")?;
    let dip = interface(dip_iface, "--dip-iface")?;
    if dip.ipv4.is_empty() {
        bail!(
            "{} (--dip-iface) has no IPv4 address: give it the DIP, the real servers' default gateway (e.g. ip addr add 192.168.100.10/24 dev {})",
            dip.name,
            dip.name
        );
    }
    findings.warn_all(no_way_to_clients(&vip, has_gateway));
    for iface in [&vip, &dip] {
        disable_lro(iface);
    }
    Ok(Host { vip, dip })
}

/// Without an address on the VIP side, no client is on-link, and without a gateway none
/// is reachable either: the director forwards every request and drops every reply
/// (`no_route_to_client`). masqd reads the side's addresses once, at start, so the fix
/// takes a restart.
fn no_way_to_clients(vip: &Interface, has_gateway: bool) -> Option<Finding> {
    if !vip.ipv4.is_empty() || has_gateway {
        return None;
    }
    let name = &vip.name;
    Some(Finding::new(
        format!("{name} (--vip-iface) has no IPv4 address and no --vip-gateway is set: no client is on-link or routed, so every reply to a client is dropped (no_route_to_client)"),
        format!("give {name} an address on the clients' network (ip addr add ADDR/LEN dev {name}) or a gateway to them (--vip-gateway ROUTER), then restart masqd"),
    ))
}

/// A `--web` page on an address other hosts reach shows them the services, the real
/// servers and every connection.
pub fn exposed_page(web: Option<SocketAddr>) -> Option<Finding> {
    let addr = web.filter(|addr| !addr.ip().is_loopback())?;
    let port = addr.port();
    Some(Finding::new(
        format!("the lab page on {addr} (--web) is reachable from other hosts: they see the services, the real servers and every connection"),
        format!("bind it to loopback (--web 127.0.0.1:{port}) and browse through ssh -L {port}:127.0.0.1:{port}, or firewall port {port} to the hosts that need it"),
    ))
}

fn interface(name: &str, flag: &str) -> Result<Interface> {
    let iface = Interface::by_name(name).with_context(|| format!("{flag} {name}"))?;
    if !iface.is_up {
        bail!("{flag} {name} is down: ip link set {name} up");
    }
    Ok(iface)
}

/// LRO merges segments without telling the receiver how to split them again; GRO is fine
/// (masqd reads its segmentation metadata from the virtio-net header and the kernel
/// re-segments on transmit), so only LRO is switched off. When that fails, the warning is
/// not kept as a start-up finding: `--check` reads LRO afresh on both interfaces
/// (`check_report.rs`), with the same fix.
fn disable_lro(iface: &Interface) {
    match masq_io::host::offload_state(&iface.name) {
        Ok(state) if state.lro => {
            match masq_io::host::set_offload(&iface.name, masq_io::host::Feature::Lro, false) {
                Ok(()) => tracing::info!(
                    "{}: turned LRO off (masqd cannot forward LRO-merged frames)",
                    iface.name
                ),
                Err(e) => {
                    tracing::warn!("{}: LRO is on and could not be turned off: {e}", iface.name)
                }
            }
        }
        Ok(_) => {}
        Err(e) => tracing::debug!("{}: could not read offloads: {e}", iface.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vip_side(ipv4: Vec<(std::net::Ipv4Addr, u8)>) -> Interface {
        Interface {
            name: "eth0".into(),
            index: 2,
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
            ipv4,
            is_up: true,
            is_running: true,
        }
    }

    #[test]
    fn a_vip_side_without_address_or_gateway_is_a_finding_with_its_fix() {
        let finding = no_way_to_clients(&vip_side(Vec::new()), false).unwrap();
        assert_eq!(
            finding.problem(),
            "eth0 (--vip-iface) has no IPv4 address and no --vip-gateway is set: no client is on-link or routed, so every reply to a client is dropped (no_route_to_client)"
        );
        assert!(
            finding.fix().starts_with("give eth0 an address on the clients' network (ip addr add ADDR/LEN dev eth0) or a gateway"),
            "{}",
            finding.fix()
        );
    }

    #[test]
    fn only_a_page_off_loopback_is_a_finding() {
        assert!(exposed_page(None).is_none());
        assert!(exposed_page(Some("127.0.0.1:8080".parse().unwrap())).is_none());
        assert!(exposed_page(Some("[::1]:8080".parse().unwrap())).is_none());
        let open = exposed_page(Some("0.0.0.0:8080".parse().unwrap())).unwrap();
        assert_eq!(
            open.problem(),
            "the lab page on 0.0.0.0:8080 (--web) is reachable from other hosts: they see the services, the real servers and every connection"
        );
        assert!(
            open.fix().starts_with("bind it to loopback (--web 127.0.0.1:8080) and browse through ssh -L 8080:127.0.0.1:8080"),
            "{}",
            open.fix()
        );
    }

    #[test]
    fn an_address_or_a_gateway_reaches_the_clients() {
        let addressed = vip_side(vec![("192.168.0.10".parse().unwrap(), 24)]);
        assert!(no_way_to_clients(&addressed, false).is_none());
        assert!(no_way_to_clients(&vip_side(Vec::new()), true).is_none());
    }
}
