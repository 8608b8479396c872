//! `GET /api/state`: one read of the director as JSON — services with their real servers,
//! the connection table (capped), the director's two sides, counters with every drop
//! reason, and the neighbour cache.
//!
//! Everything is read from snapshots the control plane already has (`control(now)`,
//! `counters()`, `neighbours(now)`); building it touches no packet path. Addresses and names
//! are sent as plain strings: the page shows them with `textContent`, never as markup.

use std::net::IpAddr;
use std::path::PathBuf;

use masq_core::control::{Control, DestView, RateView, ServiceKey, ServiceView, StatsView};
use masq_core::director::SideConfig;
use serde_json::{json, Value};

use crate::context::ControlContext;

/// Most connection entries sent; `connections.total` says how many there are.
pub const MAX_CONN_ROWS: usize = 200;

/// `addr:port`, with brackets for IPv6, as ipvsadm prints numeric addresses.
pub fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn stats(s: &StatsView) -> Value {
    json!({
        "conns": s.conns,
        "inpkts": s.inpkts,
        "outpkts": s.outpkts,
        "inbytes": s.inbytes,
        "outbytes": s.outbytes,
    })
}

fn rate(r: &RateView) -> Value {
    json!({
        "cps": r.cps,
        "inpps": r.inpps,
        "outpps": r.outpps,
        "inbps": r.inbps,
        "outbps": r.outbps,
    })
}

/// The service key as the page needs it: ipvsadm's option and value to name it in a
/// command (`-t 192.168.0.10:80`), and its parts.
fn service_key(key: &ServiceKey) -> Value {
    match key {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => {
            let option = match protocol {
                masq_core::control::Protocol::Tcp => "-t",
                masq_core::control::Protocol::Udp => "-u",
                masq_core::control::Protocol::Sctp => "--sctp-service",
            };
            json!({
                "name": key.to_string(),
                "protocol": protocol.name(),
                "addr": addr.to_string(),
                "port": port,
                "vip": endpoint(*addr, *port),
                "option": option,
                "value": endpoint(*addr, *port),
            })
        }
        ServiceKey::Fwmark { mark, family } => {
            let mut v = json!({
                "name": key.to_string(),
                "protocol": "FWM",
                "fwmark": mark,
                "option": "-f",
                "value": mark.to_string(),
            });
            if *family == masq_core::control::Family::Inet6 {
                v["ipv6"] = json!(true);
            }
            v
        }
    }
}

fn dest(d: &DestView) -> Value {
    json!({
        "server": endpoint(d.key.addr, d.key.port),
        "addr": d.key.addr.to_string(),
        "port": d.key.port,
        "forward": d.params.fwd.name(),
        "weight": d.params.weight,
        "u_threshold": d.params.u_threshold,
        "l_threshold": d.params.l_threshold,
        "active": d.active_conns,
        "inactive": d.inact_conns,
        "persist": d.persist_conns,
        "stats": stats(&d.stats),
        "rate": rate(&d.rate),
    })
}

fn service(s: &ServiceView) -> Value {
    json!({
        "key": service_key(&s.key),
        "scheduler": s.params.scheduler,
        "sched_flags": s.params.sched_flags.0,
        "persistent": s.params.persistent,
        "netmask": s.params.netmask,
        "one_packet": s.params.one_packet,
        "pe": s.params.pe,
        "stats": stats(&s.stats),
        "rate": rate(&s.rate),
        "dests": s.dests.iter().map(dest).collect::<Vec<_>>(),
    })
}

fn side(s: &SideConfig) -> Value {
    json!({
        "mac": s.mac.to_string(),
        "addrs": s.addrs.iter().map(|(a, p)| format!("{a}/{p}")).collect::<Vec<_>>(),
    })
}

/// The whole state, as `GET /api/state` returns it; `token_file` with `--web-admin`, where
/// the admin token is (the page names it when it asks for the token).
pub fn snapshot(ctx: &ControlContext, token_file: Option<PathBuf>) -> Value {
    let now = ctx.clock.now();
    let director = &ctx.director;
    let control = director.control(now);
    let services: Vec<Value> = control.services().iter().map(service).collect();
    let conns = control.connections();
    let rows: Vec<Value> = conns
        .iter()
        .take(MAX_CONN_ROWS)
        .map(|c| {
            json!({
                "protocol": c.protocol,
                "client": endpoint(c.client.0, c.client.1),
                "virtual": endpoint(c.virtual_.0, c.virtual_.1),
                "dest": endpoint(c.dest.0, c.dest.1),
                "state": c.state,
                "expires_secs": c.expires_secs,
                "template": c.template,
            })
        })
        .collect();
    let counters = director.counters();
    let config = director.config();
    let neighbours: Vec<Value> = director
        .neighbours(now)
        .iter()
        .map(|n| {
            json!({
                "addr": n.addr.to_string(),
                "mac": n.mac.map(|m| m.to_string()),
                "age_ms": n.age_ms,
            })
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "admin": token_file.is_some(),
        "admin_token_file": token_file.map(|f| f.display().to_string()),
        "uptime_ms": now.as_millis(),
        "schedulers": masq_core::sched::SCHEDULER_NAMES,
        "director": {
            "vip_side": side(&config.vip_side),
            "dip_side": side(&config.dip_side),
            "vip_gateway": config.vip_gateway.map(|g| g.to_string()),
        },
        "services": services,
        "connections": {
            "total": conns.len(),
            "rows": rows,
        },
        "counters": {
            "forwarded_to_server": counters.forwarded_in,
            "forwarded_to_client": counters.forwarded_out,
            "arp_replies": counters.arp_replies,
            "arp_requests": counters.arp_requests,
            "icmp_sent": counters.icmp_sent,
            "queued_for_arp": counters.queued,
            "not_ours": counters.not_ours,
            "drops": counters.drops.iter().map(|(reason, n)| json!({
                "reason": reason.name(),
                "describe": reason.describe(),
                "count": n,
            })).collect::<Vec<_>>(),
        },
        "neighbours": neighbours,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn endpoints_are_printed_as_ipvsadm_does() {
        assert_eq!(
            endpoint(IpAddr::V4(Ipv4Addr::new(192, 168, 100, 7)), 80),
            "192.168.100.7:80"
        );
        assert_eq!(endpoint(IpAddr::V6(Ipv6Addr::LOCALHOST), 443), "[::1]:443");
    }

    #[test]
    fn a_service_key_names_the_option_that_edits_it() {
        let key = ServiceKey::Addr {
            protocol: masq_core::control::Protocol::Udp,
            addr: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 10)),
            port: 53,
        };
        let v = service_key(&key);
        assert_eq!(v["option"], "-u");
        assert_eq!(v["value"], "192.168.0.10:53");
        assert_eq!(v["name"], "UDP 192.168.0.10:53");
        let mark = service_key(&ServiceKey::Fwmark {
            mark: 7,
            family: masq_core::control::Family::Inet,
        });
        assert_eq!(mark["option"], "-f");
        assert_eq!(mark["value"], "7");
    }
}
