//! One service and its real servers, in every `-L` variant and as `-S` rules
//! (`print_title` and `print_service_entry` of ipvsadm.c, as they print what netlink
//! delivers).

use std::net::{IpAddr, Ipv4Addr};

use masq_core::control::{
    DestView, Family, FwdMethod, Protocol, SchedFlags, ServiceKey, ServiceView, TunnelCsum,
    TunnelKind,
};

use super::name::addrport;
use super::number::largenum;
use super::sort::sort_dests;
use super::ListFormat;
use crate::c_parse::{ljust, truncate_bytes};
use crate::names::Names;

/// The title lines; the first matching format wins (stats, rate, thresholds,
/// persistent-conn, tun-info, default).
pub(crate) fn title(f: &ListFormat) -> String {
    let head = "Prot LocalAddress:Port";
    if f.stats {
        format!(
            "{head:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        )
    } else if f.rate {
        format!(
            "{head:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )
    } else if f.thresholds {
        format!(
            "{head:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if f.persistent_conn {
        format!(
            "{head:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else if f.tun_info {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n".to_string()
    } else {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n".to_string()
    }
}

/// On the netlink path these counters and every rate reach ipvsadm through 32-bit
/// getters, so only their low 32 bits show.
fn low32(v: u64) -> u64 {
    v & 0xffff_ffff
}

/// The protocol a service's ports are named for; none for fwmark services.
fn protocol(key: &ServiceKey) -> Option<Protocol> {
    match key {
        ServiceKey::Addr { protocol, .. } => Some(*protocol),
        ServiceKey::Fwmark { .. } => None,
    }
}

fn family(key: &ServiceKey) -> Family {
    key.family()
}

/// `print_sched_flags`: the set flags by their scheduler-specific names.
fn sched_flag_list(sched: &str, flags: SchedFlags) -> String {
    let names = match sched {
        "sh" => ["sh-fallback", "sh-port", "flag-3"],
        "mh" => ["mh-fallback", "mh-port", "flag-3"],
        _ => ["flag-1", "flag-2", "flag-3"],
    };
    names
        .iter()
        .enumerate()
        .filter(|(i, _)| flags.0 & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

fn has_sched_flags(flags: SchedFlags) -> bool {
    flags.0 & (SchedFlags::FLAG1 | SchedFlags::FLAG2 | SchedFlags::FLAG3) != 0
}

/// The service name in listings: `TCP  addr:port` (IPv4 cut at 33 bytes) or `FWM  mark`.
/// Fwmarks print through `%d`, so marks of 2^31 and above are negative.
fn list_name(key: &ServiceKey, numeric: bool, names: &dyn Names) -> String {
    match key {
        ServiceKey::Fwmark { mark, family } => match family {
            Family::Inet => format!("FWM  {}", *mark as i32),
            Family::Inet6 => format!("FWM  {} IPv6", *mark as i32),
        },
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => {
            let vname = addrport(addr, *port, Some(*protocol), numeric, names);
            let mut s = format!("{} {}", ljust(protocol.name(), 4), vname);
            if addr.is_ipv4() {
                truncate_bytes(&mut s, 33);
            }
            s
        }
    }
}

/// The service as `-S` names it: `-t addr:port`, `-u …`, `--sctp-service …`, `-f mark [-6]`.
fn rule_name(key: &ServiceKey, numeric: bool, names: &dyn Names) -> String {
    match key {
        ServiceKey::Fwmark { mark, family } => match family {
            Family::Inet => format!("-f {}", *mark as i32),
            Family::Inet6 => format!("-f {} -6", *mark as i32),
        },
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => {
            let switch = match protocol {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
                Protocol::Sctp => "--sctp-service",
            };
            format!(
                "{switch} {}",
                addrport(addr, *port, Some(*protocol), numeric, names)
            )
        }
    }
}

/// The persistence mask as printed: dotted for IPv4 unless /32, a prefix for IPv6 unless 128.
fn mask_text(key: &ServiceKey, netmask: u32) -> Option<String> {
    match family(key) {
        Family::Inet if netmask != u32::MAX => Some(Ipv4Addr::from(netmask).to_string()),
        Family::Inet6 if netmask != 128 => Some(netmask.to_string()),
        _ => None,
    }
}

fn pe_name(svc: &ServiceView) -> Option<&str> {
    svc.params.pe.as_deref().filter(|p| !p.is_empty())
}

/// A real server's name: cut at 28 bytes for IPv4 in listings.
fn dest_name(
    svc: &ServiceView,
    d: &DestView,
    numeric: bool,
    cut: bool,
    names: &dyn Names,
) -> String {
    let mut s = addrport(&d.key.addr, d.key.port, protocol(&svc.key), numeric, names);
    if cut && matches!(d.key.addr, IpAddr::V4(_)) {
        truncate_bytes(&mut s, 28);
    }
    s
}

fn csum_flag(c: TunnelCsum) -> &'static str {
    match c {
        TunnelCsum::NoCsum => "-c",
        TunnelCsum::Csum => "+c",
        TunnelCsum::RemCsum => "r+c",
    }
}

fn csum_option(c: TunnelCsum) -> &'static str {
    match c {
        TunnelCsum::NoCsum => "--tun-nocsum",
        TunnelCsum::Csum => "--tun-csum",
        TunnelCsum::RemCsum => "--tun-remcsum",
    }
}

/// The TunnelInfo column: `ipip`, `gue:port:flag`, `gre:flag`, or `n/a`.
fn tunnel_info(d: &DestView) -> String {
    if d.params.fwd != FwdMethod::Tunnel {
        return "n/a".to_string();
    }
    match d.params.tunnel {
        TunnelKind::Ipip => "ipip".to_string(),
        TunnelKind::Gue { port, csum } => format!("gue:{port}:{}", csum_flag(csum)),
        TunnelKind::Gre { csum } => format!("gre:{}", csum_flag(csum)),
    }
}

/// One service line and its real-server lines, for `-L` in format `f`.
pub(crate) fn list_entry(out: &mut String, svc: &ServiceView, f: &ListFormat, names: &dyn Names) {
    let name = list_name(&svc.key, f.numeric, names);
    if f.stats {
        let s = &svc.stats;
        out.push_str(&ljust(&name, 33));
        for v in [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes] {
            out.push_str(&largenum(v, f.exact));
        }
    } else if f.rate {
        let r = &svc.rate;
        out.push_str(&ljust(&name, 33));
        for v in [r.cps, r.inpps, r.outpps, r.inbps, r.outbps] {
            out.push_str(&largenum(low32(v), f.exact));
        }
    } else {
        let p = &svc.params;
        out.push_str(&format!("{name} {}", p.scheduler));
        if has_sched_flags(p.sched_flags) {
            out.push_str(&format!(
                " ({})",
                sched_flag_list(&p.scheduler, p.sched_flags)
            ));
        }
        if let Some(timeout) = p.persistent {
            out.push_str(&format!(" persistent {timeout}"));
            if let Some(mask) = mask_text(&svc.key, p.netmask) {
                out.push_str(&format!(" mask {mask}"));
            }
            if let Some(pe) = pe_name(svc) {
                out.push_str(&format!(" pe {pe}"));
            }
        }
        if p.one_packet {
            out.push_str(" ops");
        }
    }
    out.push('\n');

    let dests = if f.nosort {
        svc.dests.clone()
    } else {
        sort_dests(svc.dests.clone())
    };
    for d in &dests {
        let dname = ljust(&dest_name(svc, d, f.numeric, true, names), 28);
        let line = if f.stats {
            let s = &d.stats;
            let mut l = format!("  -> {dname}");
            for v in [
                low32(s.conns),
                low32(s.inpkts),
                low32(s.outpkts),
                s.inbytes,
                s.outbytes,
            ] {
                l.push_str(&largenum(v, f.exact));
            }
            l
        } else if f.rate {
            let r = &d.rate;
            format!(
                "  -> {dname} {:>8} {:>8} {:>8}{}{}",
                low32(r.cps),
                low32(r.inpps),
                low32(r.outpps),
                largenum(low32(r.inbps), f.exact),
                largenum(low32(r.outbps), f.exact)
            )
        } else if f.thresholds {
            format!(
                "  -> {dname} {:<10} {:<10} {:<10} {:<10}",
                d.params.u_threshold, d.params.l_threshold, d.active_conns, d.inact_conns
            )
        } else if f.persistent_conn {
            format!(
                "  -> {dname} {:<9} {:<11} {:<10} {:<10}",
                d.params.weight as u32, d.persist_conns, d.active_conns, d.inact_conns
            )
        } else if f.tun_info {
            format!(
                "  -> {dname} {:<7} {} {:<6} {:<10} {:<10}",
                d.params.fwd.name(),
                ljust(&tunnel_info(d), 13),
                d.params.weight,
                d.active_conns,
                d.inact_conns
            )
        } else {
            format!(
                "  -> {dname} {:<7} {:<6} {:<10} {:<10}",
                d.params.fwd.name(),
                d.params.weight,
                d.active_conns,
                d.inact_conns
            )
        };
        out.push_str(&line);
        out.push('\n');
    }
}

/// One service and its real servers as `-S` rules.
pub(crate) fn rule_entry(out: &mut String, svc: &ServiceView, numeric: bool, names: &dyn Names) {
    let name = rule_name(&svc.key, numeric, names);
    let p = &svc.params;
    out.push_str(&format!("-A {name} -s {}", p.scheduler));
    if let Some(timeout) = p.persistent {
        out.push_str(&format!(" -p {timeout}"));
        if let Some(mask) = mask_text(&svc.key, p.netmask) {
            out.push_str(&format!(" -M {mask}"));
        }
    }
    if let Some(pe) = pe_name(svc) {
        out.push_str(&format!(" --pe {pe}"));
    }
    if p.one_packet {
        out.push_str(" -o");
    }
    if has_sched_flags(p.sched_flags) {
        out.push_str(&format!(
            " -b {}",
            sched_flag_list(&p.scheduler, p.sched_flags)
        ));
    }
    out.push('\n');
    for d in &sort_dests(svc.dests.clone()) {
        let dname = dest_name(svc, d, numeric, false, names);
        let switch = match d.params.fwd {
            FwdMethod::Masq => "-m",
            FwdMethod::Tunnel => "-i",
            FwdMethod::Local | FwdMethod::Route => "-g",
        };
        out.push_str(&format!(
            "-a {name} -r {dname} {switch} -w {}",
            d.params.weight
        ));
        if d.params.fwd == FwdMethod::Tunnel {
            match d.params.tunnel {
                TunnelKind::Ipip => out.push_str(" --tun-type ipip"),
                TunnelKind::Gue { port, csum } => out.push_str(&format!(
                    " --tun-type gue --tun-port {port} {}",
                    csum_option(csum)
                )),
                TunnelKind::Gre { csum } => {
                    out.push_str(&format!(" --tun-type gre {}", csum_option(csum)))
                }
            }
        }
        out.push('\n');
    }
}
