//! How ipvsadm writes an address and port (`addrport_to_anyname`): numbers with `-n`,
//! otherwise the host name from the hosts database and the port's service name for the
//! service's protocol, each falling back to the number.

use std::net::IpAddr;

use masq_core::control::Protocol;

use crate::c_parse::{ntop, truncate_bytes};
use crate::names::Names;

/// ipvsadm formats into a 60-byte buffer.
const BUF: usize = 59;

/// `addr:port` (IPv6 as `[addr]:port`). `proto` is None where ipvsadm has protocol 0 (fwmark
/// services, whose real servers therefore always show numeric ports), which finds no name.
pub fn addrport(
    addr: &IpAddr,
    port: u16,
    proto: Option<Protocol>,
    numeric: bool,
    names: &dyn Names,
) -> String {
    let (host, port) = if numeric {
        (ntop(addr), port.to_string())
    } else {
        (
            names.host_name(*addr).unwrap_or_else(|| ntop(addr)),
            proto
                .and_then(|p| names.service_name(port, p))
                .unwrap_or_else(|| port.to_string()),
        )
    };
    let mut s = if addr.is_ipv6() {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    truncate_bytes(&mut s, BUF);
    s
}
