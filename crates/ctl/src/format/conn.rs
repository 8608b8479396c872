//! `ipvsadm -L -c`: the connection table (`list_conn` / `print_conn`).

use masq_core::control::{ConnView, Protocol};

use super::name::addrport;
use crate::c_parse::ljust;
use crate::names::Names;

/// The `-c` listing. With `--persistent-conn` the header gains the `pe name` and `pe_data`
/// columns; masq has no persistence engines, so no row ever carries them.
pub fn connections(
    conns: &[ConnView],
    numeric: bool,
    persistent_conn: bool,
    names: &dyn Names,
) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if persistent_conn {
        out.push_str(&format!(
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} {}\n",
            "state", "source", "virtual", "destination", "pe name", "pe_data"
        ));
    } else {
        out.push_str(&format!(
            "pro expire {:<11} {:<18} {:<18} {}\n",
            "state", "source", "virtual", "destination"
        ));
    }
    for c in conns {
        // Port names are looked up for TCP, UDP and SCTP only (a fwmark template is "IP").
        let proto = match c.protocol {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        };
        let name =
            |(addr, port): (std::net::IpAddr, u16)| addrport(&addr, port, proto, numeric, names);
        let expire = format!("{:02}:{:02}", c.expires_secs / 60, c.expires_secs % 60);
        out.push_str(&format!(
            "{} {} {} {} {} {}\n",
            ljust(c.protocol, 3),
            ljust(&expire, 6),
            ljust(c.state, 11),
            ljust(&name(c.client), 18),
            ljust(&name(c.virtual_), 18),
            name(c.dest)
        ));
    }
    out
}
