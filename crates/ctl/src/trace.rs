//! `masqadm --trace`: its options, and how trace events are printed — as the textbook draws
//! the four stages of an LVS-NAT connection, or as JSON lines for tools.
//!
//! ```text
//! masqadm --trace [-t|-u VIP:PORT] [--count N] [--packets] [--json]
//! ```

use std::fmt::Write;
use std::net::{Ipv4Addr, SocketAddrV4};

use masq_core::trace::{Stage, TraceEvent, TraceFilter, TraceKind};
use masq_wire::tcp::flags;

/// A parsed `--trace` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceArgs {
    pub filter: TraceFilter,
    /// Stop after this many connections were shown through stage 4.
    pub count: Option<u64>,
    pub json: bool,
}

/// Whether `args` is a trace request (masq's extension of the ipvsadm language).
pub fn is_trace(args: &[String]) -> bool {
    args.first().is_some_and(|a| a == "--trace")
}

/// Whether `args` is a capture request (`--capture`, the file name already taken off by
/// masqadm). It takes the same options as `--trace`.
pub fn is_capture(args: &[String]) -> bool {
    args.first().is_some_and(|a| a == "--capture")
}

/// Parses `--trace` (or `--capture`) and its options.
///
/// # Errors
/// A message naming the bad option or value.
pub fn parse(args: &[String]) -> Result<TraceArgs, String> {
    let mut out = TraceArgs::default();
    let mut it = args.iter().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{}: {name} needs a value", args[0]))
        };
        match arg.as_str() {
            "-t" | "--tcp-service" | "-u" | "--udp-service" => {
                let protocol = if arg.starts_with("-t") || arg == "--tcp-service" {
                    6
                } else {
                    17
                };
                let v = value(arg)?;
                let addr: SocketAddrV4 = v
                    .parse()
                    .map_err(|_| format!("--trace: {arg} wants VIP:PORT (IPv4), not `{v}'"))?;
                out.filter.service = Some((protocol, addr));
            }
            "--count" | "-n" => {
                let v = value(arg)?;
                out.count = Some(v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    format!("--trace: --count wants a positive number, not `{v}'")
                })?);
            }
            "--packets" => out.filter.every_packet = true,
            "--json" => out.json = true,
            other => return Err(format!("--trace: unknown option `{other}'")),
        }
    }
    Ok(out)
}

/// The textbook label of a stage.
pub fn stage_label(stage: Stage) -> &'static str {
    match stage {
        Stage::ClientToVip => "1 client→VIP",
        Stage::DirectorToServer => "2 director→RS",
        Stage::ServerToDirector => "3 RS→director",
        Stage::DirectorToClient => "4 director→client",
    }
}

fn flag_names(protocol: u8, f: u8) -> String {
    if protocol != 6 {
        return if protocol == 17 {
            "UDP".into()
        } else {
            String::new()
        };
    }
    let mut s = String::new();
    for (bit, name) in [
        (flags::SYN, "SYN"),
        (flags::FIN, "FIN"),
        (flags::RST, "RST"),
        (flags::PSH, "PSH"),
        (flags::ACK, "ACK"),
    ] {
        if f & bit != 0 {
            if !s.is_empty() {
                s.push('+');
            }
            s.push_str(name);
        }
    }
    s
}

fn secs(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// One event as a line of text (without the newline).
pub fn text(e: &TraceEvent) -> String {
    let mut s = format!("{:>10} ", secs(e.at.as_millis()));
    match e.kind {
        TraceKind::Stage(stage, v) => {
            let side = match stage {
                Stage::ClientToVip | Stage::DirectorToClient => "vip side",
                _ => "dip side",
            };
            let dst_mac = if v.dst_mac == masq_wire::ethernet::MacAddr::ZERO {
                "(waiting for ARP)".to_string()
            } else {
                v.dst_mac.to_string()
            };
            // Direct routing shows in the addresses: the packet to the real server still
            // goes to the VIP, and the real server answers as the VIP itself.
            let tunnelled;
            let (label, routed) = match (stage, v.tunnel) {
                (Stage::DirectorToServer, Some(ends)) => {
                    tunnelled = format!(
                        "  (tunnelled: outer SIP={} DIP={} IPIP around the client's packet)",
                        ends.src, ends.dst
                    );
                    (stage_label(stage), tunnelled.as_str())
                }
                (Stage::DirectorToServer, None) if v.dst == e.vaddr => (
                    stage_label(stage),
                    "  (direct routing: only the MACs changed)",
                ),
                (Stage::ServerToDirector, _) if v.src == e.vaddr => (
                    "3 RS→client",
                    "  (direct routing or tunnel: the RS answers as the VIP, via its gateway)",
                ),
                _ => (stage_label(stage), ""),
            };
            let _ = write!(
                s,
                "{label:<18} SIP={:<21} DIP={:<21} {:<8} {side}  {} → {dst_mac}  len {}{routed}",
                v.src,
                v.dst,
                flag_names(v.protocol, v.tcp_flags),
                v.src_mac,
                v.ip_len
            );
        }
        TraceKind::Scheduled(c) => {
            let how = if c.persistent {
                "persistence template".to_string()
            } else {
                format!("{} picked it among {}", c.scheduler, c.candidates)
            };
            let _ = write!(
                s,
                "  → real server {} ({how}: weight {}, {} active, {} inactive before this one)",
                c.dest, c.weight, c.active, c.inactive
            );
        }
        TraceKind::StateChange { from, to } => {
            let _ = write!(
                s,
                "  state {} → {}  ({} ↔ {})",
                from.name(),
                to.name(),
                e.client,
                e.vaddr
            );
        }
        TraceKind::Dropped { side, reason } => {
            let route = if e.client.ip() == &Ipv4Addr::UNSPECIFIED {
                String::new()
            } else {
                format!(" {} → {}", e.client, e.vaddr)
            };
            let _ = write!(
                s,
                "  DROP {} on the {} side{route}: {}",
                reason.name(),
                side.name(),
                reason.describe()
            );
        }
    }
    s
}

/// One event as a JSON object (one line).
pub fn json(e: &TraceEvent) -> String {
    use serde_json::json;
    let base = |kind: &str| {
        json!({
            "t_ms": e.at.as_millis(),
            "event": kind,
            "client": e.client.to_string(),
            "virtual": e.vaddr.to_string(),
        })
    };
    let v = match e.kind {
        TraceKind::Stage(stage, f) => {
            let mut v = base("stage");
            v["stage"] = json!(stage as u8);
            v["label"] = json!(stage_label(stage));
            v["sip"] = json!(f.src.to_string());
            v["dip"] = json!(f.dst.to_string());
            v["src_mac"] = json!(f.src_mac.to_string());
            v["dst_mac"] = json!(f.dst_mac.to_string());
            v["flags"] = json!(flag_names(f.protocol, f.tcp_flags));
            v["ip_len"] = json!(f.ip_len);
            if let Some(ends) = f.tunnel {
                v["outer_sip"] = json!(ends.src.to_string());
                v["outer_dip"] = json!(ends.dst.to_string());
            }
            v
        }
        TraceKind::Scheduled(c) => {
            let mut v = base("scheduled");
            v["scheduler"] = json!(c.scheduler);
            v["dest"] = json!(c.dest.to_string());
            v["weight"] = json!(c.weight);
            v["active"] = json!(c.active);
            v["inactive"] = json!(c.inactive);
            v["persistent"] = json!(c.persistent);
            v["candidates"] = json!(c.candidates);
            v
        }
        TraceKind::StateChange { from, to } => {
            let mut v = base("state");
            v["from"] = json!(from.name());
            v["to"] = json!(to.name());
            v
        }
        TraceKind::Dropped { side, reason } => {
            let mut v = base("drop");
            v["side"] = json!(side.name());
            v["reason"] = json!(reason.name());
            v
        }
    };
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use masq_core::trace::FrameView;
    use masq_core::Timestamp;
    use masq_wire::ethernet::MacAddr;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_options_and_rejects_bad_ones() {
        let a = parse(&args("--trace -t 192.168.0.10:80 --count 3 --json")).unwrap();
        assert_eq!(
            a.filter.service,
            Some((6, "192.168.0.10:80".parse().unwrap()))
        );
        assert_eq!(a.count, Some(3));
        assert!(a.json);
        assert!(
            parse(&args("--trace --packets"))
                .unwrap()
                .filter
                .every_packet
        );
        assert_eq!(
            parse(&args("--trace -t nowhere")).unwrap_err(),
            "--trace: -t wants VIP:PORT (IPv4), not `nowhere'"
        );
        assert!(parse(&args("--trace --count 0")).is_err());
        assert!(parse(&args("--trace --bogus")).is_err());
        assert!(parse(&args("--trace --count")).is_err());
    }

    #[test]
    fn a_stage_reads_like_the_textbook() {
        let e = TraceEvent {
            at: Timestamp(12_345),
            client: "192.168.0.101:40000".parse().unwrap(),
            vaddr: "192.168.0.10:80".parse().unwrap(),
            kind: TraceKind::Stage(
                Stage::DirectorToServer,
                FrameView {
                    protocol: 6,
                    src: "192.168.0.101:40000".parse().unwrap(),
                    dst: "192.168.100.7:80".parse().unwrap(),
                    src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
                    dst_mac: MacAddr([2, 0, 0, 0, 0, 7]),
                    tcp_flags: flags::SYN,
                    tunnel: None,
                    ip_len: 60,
                },
            ),
        };
        let line = text(&e);
        assert!(line.contains("2 director→RS"), "{line}");
        assert!(line.contains("SIP=192.168.0.101:40000"), "{line}");
        assert!(line.contains("DIP=192.168.100.7:80"), "{line}");
        assert!(line.contains("SYN"), "{line}");
        assert!(line.starts_with("    12.345"), "{line}");
        let j: serde_json::Value = serde_json::from_str(&json(&e)).unwrap();
        assert_eq!(j["stage"], 2);
        assert_eq!(j["dip"], "192.168.100.7:80");
    }

    /// A stage of connection 192.168.0.101:40000 → 192.168.0.10:80 with these addresses.
    fn stage_event(
        stage: Stage,
        (src, dst): (&str, &str),
        tunnel: Option<masq_wire::tunnel::TunnelEnds>,
    ) -> TraceEvent {
        TraceEvent {
            at: Timestamp(12_345),
            client: "192.168.0.101:40000".parse().unwrap(),
            vaddr: "192.168.0.10:80".parse().unwrap(),
            kind: TraceKind::Stage(
                stage,
                FrameView {
                    protocol: 6,
                    src: src.parse().unwrap(),
                    dst: dst.parse().unwrap(),
                    src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
                    dst_mac: MacAddr([2, 0, 0, 0, 0, 7]),
                    tcp_flags: flags::SYN,
                    tunnel,
                    ip_len: 60,
                },
            ),
        }
    }

    #[test]
    fn direct_routing_stages_read_like_the_textbook() {
        let stage = |stage, src, dst| stage_event(stage, (src, dst), None);
        let to_rs = text(&stage(
            Stage::DirectorToServer,
            "192.168.0.101:40000",
            "192.168.0.10:80",
        ));
        assert!(to_rs.contains("2 director→RS"), "{to_rs}");
        assert!(to_rs.contains("DIP=192.168.0.10:80"), "{to_rs}");
        assert!(to_rs.ends_with("only the MACs changed)"), "{to_rs}");
        let answer = text(&stage(
            Stage::ServerToDirector,
            "192.168.0.10:80",
            "192.168.0.101:40000",
        ));
        assert!(answer.contains("3 RS→client "), "{answer}");
        assert!(answer.contains("SIP=192.168.0.10:80"), "{answer}");
        let nat = text(&stage(
            Stage::ServerToDirector,
            "192.168.100.7:80",
            "192.168.0.101:40000",
        ));
        assert!(nat.contains("3 RS→director "), "{nat}");
        assert!(!nat.contains("direct routing"), "{nat}");
    }

    #[test]
    fn a_tunnelled_stage_shows_the_outer_and_the_inner_header() {
        let ends = masq_wire::tunnel::TunnelEnds {
            src: Ipv4Addr::new(192, 168, 100, 10),
            dst: Ipv4Addr::new(192, 168, 100, 7),
        };
        let e = stage_event(
            Stage::DirectorToServer,
            ("192.168.0.101:40000", "192.168.0.10:80"),
            Some(ends),
        );
        let line = text(&e);
        assert!(line.contains("DIP=192.168.0.10:80"), "{line}");
        assert!(
            line.ends_with("(tunnelled: outer SIP=192.168.100.10 DIP=192.168.100.7 IPIP around the client's packet)"),
            "{line}"
        );
        let j: serde_json::Value = serde_json::from_str(&json(&e)).unwrap();
        assert_eq!(j["outer_dip"], "192.168.100.7");
    }
}
