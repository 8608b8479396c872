//! `masqadm --check`: the host and the lab, checked now, with a fix for every problem.
//!
//! Host: kernel forwarding, interfaces up and cabled, LRO, whether the host's kernel also
//! answers a VIP. Start: every warning masqd logged while it started that still holds
//! (`startup_findings.rs`). Lab: what the data path noticed about the real servers
//! ([`masq_core::diagnose`]). Exits 1 when anything is wrong.
//!
//! Under `masqd --simulate` the lab's links are no interfaces of this host and nothing of
//! the host carries its traffic: the host checks are skipped, and said to be.

use std::net::IpAddr;

use masq_core::control::ServiceKey;
use masq_ctl::Outcome;
use masq_io::Interface;

use crate::context::ControlContext;

/// One line of the report.
struct Item {
    ok: bool,
    what: String,
    fix: Option<String>,
}

fn ok(what: impl Into<String>) -> Item {
    Item {
        ok: true,
        what: what.into(),
        fix: None,
    }
}

fn problem(what: impl Into<String>, fix: impl Into<String>) -> Item {
    Item {
        ok: false,
        what: what.into(),
        fix: Some(fix.into()),
    }
}

/// masqd's effective capabilities, from /proc/self/status (CapEff).
fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

fn host_checks(ctx: &ControlContext) -> Vec<Item> {
    let mut items = Vec::new();
    const CAP_NET_ADMIN: u64 = 1 << 12;
    const CAP_NET_RAW: u64 = 1 << 13;
    match effective_capabilities() {
        Some(caps) if caps & CAP_NET_RAW != 0 && caps & CAP_NET_ADMIN != 0 => {
            items.push(ok("masqd has CAP_NET_RAW (packet sockets) and CAP_NET_ADMIN (offloads, nftables, socket buffers)"));
        }
        Some(caps) => {
            let missing: Vec<&str> = [
                (CAP_NET_RAW, "CAP_NET_RAW"),
                (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
            ]
            .iter()
            .filter(|(bit, _)| caps & bit == 0)
            .map(|(_, name)| *name)
            .collect();
            items.push(problem(
                format!("masqd lacks {}", missing.join(" and ")),
                "run masqd as root, or grant it: setcap cap_net_raw,cap_net_admin+ep $(command -v masqd)",
            ));
        }
        None => items.push(problem(
            "cannot read masqd's capabilities",
            "check /proc/self/status",
        )),
    }
    match masq_io::host::ip_forward_enabled() {
        Ok(false) => items.push(ok("net.ipv4.ip_forward is 0: only masqd forwards")),
        Ok(true) => items.push(problem(
            "net.ipv4.ip_forward is 1: the kernel forwards VIP traffic itself and leaks real servers' un-NATed replies",
            "sysctl -w net.ipv4.ip_forward=0",
        )),
        Err(e) => items.push(problem(format!("cannot read net.ipv4.ip_forward: {e}"), "check /proc/sys/net/ipv4/ip_forward")),
    }
    let mut vip_addrs = Vec::new();
    for (flag, name) in [
        ("--vip-iface", &ctx.vip_iface),
        ("--dip-iface", &ctx.dip_iface),
    ] {
        match Interface::by_name(name) {
            Ok(iface) => {
                if !iface.is_up {
                    items.push(problem(
                        format!("{name} ({flag}) is down"),
                        format!("ip link set {name} up"),
                    ));
                } else if !iface.is_running {
                    items.push(problem(
                        format!("{name} ({flag}) has no carrier: nothing is plugged in at the other end"),
                        format!("check the cable or the veth peer of {name}"),
                    ));
                } else {
                    items.push(ok(format!("{name} ({flag}) is up")));
                }
                if flag == "--vip-iface" {
                    vip_addrs = iface.ipv4.iter().map(|(a, _)| *a).collect();
                }
                if let Ok(offloads) = masq_io::host::offload_state(name) {
                    if offloads.lro {
                        items.push(problem(
                            format!("{name}: LRO is on; masqd cannot forward LRO-merged frames"),
                            format!("ethtool -K {name} lro off"),
                        ));
                    }
                }
            }
            Err(e) => items.push(problem(
                format!("{flag} {name}: {e}"),
                "check the interface name (ip -br link)",
            )),
        }
    }
    let guard = ctx.guard.lock().unwrap_or_else(|e| e.into_inner());
    let table = ctx.director.services();
    for vip in table.vips() {
        if !vip_addrs.contains(vip) {
            continue;
        }
        if guard.protects(*vip) {
            items.push(ok(format!(
                "{vip} is also a host address; the kernel guard (nft table {}) keeps the kernel from answering it",
                guard.table()
            )));
        } else {
            let why = guard
                .why_inactive()
                .unwrap_or("its rules are not installed");
            items.push(problem(
                format!("the director's kernel also answers the VIP {vip} (a host address; {why}): it resets connections to the services"),
                format!("install nftables and run masqd with --kernel-guard auto, or remove the VIP from the host: ip addr del {vip}/32 dev {}", ctx.vip_iface),
            ));
        }
    }
    items
}

fn service_name(key: &ServiceKey) -> String {
    key.to_string()
}

/// Whether health probes fail for a reason of the director's own right now.
fn health_checks(ctx: &ControlContext) -> Option<Item> {
    let reason = ctx.health_local_failures.ongoing()?;
    let total: u64 = ctx.health_local_failures.counts().map(|(_, n)| n).sum();
    Some(problem(
        format!(
            "health probes cannot be made: {} ({}); {total} probes failed for reasons of the director's own since start, and the real servers keep their weights meanwhile",
            reason.meaning(),
            reason.errno()
        ),
        reason.fix(),
    ))
}

/// Runs every check and formats the report.
pub fn run(ctx: &ControlContext) -> Outcome {
    let mut items = if ctx.simulation.is_some() {
        vec![ok(format!(
            "host checks skipped: the lab is simulated ({} and {} are no interfaces of this host)",
            ctx.vip_iface, ctx.dip_iface
        ))]
    } else {
        host_checks(ctx)
    };
    for f in ctx.startup_findings.current() {
        items.push(problem(f.problem(), f.fix()));
    }
    items.extend(health_checks(ctx));
    let findings = ctx.director.diagnose(ctx.clock.now());
    for f in &findings {
        items.push(problem(f.problem(), f.fix()));
    }
    let table = ctx.director.services();
    if table.services.is_empty() {
        items.push(ok("no virtual services yet (masqadm -A ...)"));
    }
    for svc in &table.services {
        if let Some(why) = never_matches(&svc.key) {
            items.push(problem(
                format!("{} can never match traffic: {why}", service_name(&svc.key)),
                "define the service by address instead: masqadm -A -t VIP:PORT (or -u)",
            ));
            continue;
        }
        let dests = svc.lock().dests.len();
        if dests == 0 {
            items.push(problem(
                format!(
                    "{} has no real servers: clients get ICMP port unreachable",
                    service_name(&svc.key)
                ),
                format!("add one: masqadm -a {} -r RIP -m", svc_flag(&svc.key)),
            ));
        }
    }
    let problems = items.iter().filter(|i| !i.ok).count();
    let mut out = String::new();
    for i in &items {
        out.push_str(if i.ok { "ok      " } else { "PROBLEM " });
        out.push_str(&i.what);
        out.push('\n');
        if let Some(fix) = &i.fix {
            out.push_str("        fix: ");
            out.push_str(fix);
            out.push('\n');
        }
    }
    out.push_str(&match problems {
        0 => "masq check: no problems found\n".to_string(),
        1 => "masq check: 1 problem found\n".to_string(),
        n => format!("masq check: {n} problems found\n"),
    });
    Outcome {
        stdout: out,
        stderr: String::new(),
        code: i32::from(problems > 0),
        ..Default::default()
    }
}

/// Why masq's data path never forwards traffic for a service that ipvsadm accepts, if so.
/// Such services are accepted and listed so that existing rule files load unchanged.
fn never_matches(key: &ServiceKey) -> Option<&'static str> {
    match key {
        ServiceKey::Fwmark { .. } => {
            Some("masq reads frames before netfilter and never sees firewall marks")
        }
        ServiceKey::Addr {
            addr: IpAddr::V6(_),
            ..
        } => Some("masq forwards IPv4 only"),
        ServiceKey::Addr {
            protocol: masq_core::control::Protocol::Sctp,
            ..
        } => Some("masq forwards TCP and UDP only"),
        ServiceKey::Addr { .. } => None,
    }
}

fn svc_flag(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr {
            protocol,
            addr: IpAddr::V4(a),
            port,
        } => format!(
            "{} {a}:{port}",
            if *protocol == masq_core::control::Protocol::Udp {
                "-u"
            } else {
                "-t"
            }
        ),
        ServiceKey::Addr { addr, port, .. } => format!("-t [{addr}]:{port}"),
        ServiceKey::Fwmark { mark, .. } => format!("-f {mark}"),
    }
}
