//! What masqd verifies about its host before it touches a packet, so that a setup that
//! would break forwarding is refused with a message saying what to fix.

use anyhow::{bail, Context, Result};
use masq_io::Interface;

/// The two interfaces, checked.
pub struct Host {
    pub vip: Interface,
    pub dip: Interface,
}

/// Runs every start-up check.
///
/// # Errors
/// With a message naming the problem and its fix.
pub fn host(vip_iface: &str, dip_iface: &str, has_gateway: bool) -> Result<Host> {
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
    if vip.ipv4.is_empty() && !has_gateway {
        tracing::warn!(
            "{} (--vip-iface) has no IPv4 address and no --vip-gateway is set: replies can only reach clients on-link, and none are",
            vip.name
        );
    }
    for iface in [&vip, &dip] {
        disable_lro(iface);
    }
    Ok(Host { vip, dip })
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
/// re-segments on transmit), so only LRO is switched off.
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
