//! Parsers for option values, each a port of the ipvsadm helper of the same name, so that the
//! same strings are accepted (`10.1:http`, `[2001:db8::1]:80`, `web1:www`) and the same
//! ones rejected.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use masq_core::control::Protocol;

use crate::c_parse::{inet_aton, string_to_number};
use crate::names::Names;

/// `MAX_TIMEOUT`: 31 days.
pub(crate) const MAX_TIMEOUT: i64 = 86400 * 31;

/// An address with the port if one was written (`SERVICE_ADDR` vs `SERVICE_ADDR|SERVICE_PORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HostPort {
    pub addr: IpAddr,
    pub port: Option<u16>,
}

/// ipvsadm's `str_is_digit`: true for an all-digit (or empty) string.
fn str_is_digit(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// The protocol a port name is looked up for; 0 (no service given yet) finds nothing.
pub(crate) fn protocol_of(number: u8) -> Option<Protocol> {
    match number {
        6 => Some(Protocol::Tcp),
        17 => Some(Protocol::Udp),
        132 => Some(Protocol::Sctp),
        _ => None,
    }
}

/// `parse_service`: `host[:port]`, `[v6]:port` or a bare IPv6 address. `proto` is the
/// protocol number the service has at this point of the command line (port names are looked
/// up for it). None is ipvsadm's `SERVICE_NONE`.
pub(crate) fn parse_service(buf: &str, proto: u8, names: &dyn Names) -> Option<HostPort> {
    if str_is_digit(buf) {
        return None;
    }
    let mut host = buf;
    let mut port_str: Option<&str> = None;
    if let Some(inner) = buf.strip_prefix('[') {
        let close = inner.find(']')?;
        // A bracketed address must be followed by ":port".
        let after = inner[close + 1..].strip_prefix(':')?;
        port_str = Some(after);
        host = &inner[..close];
    }
    let addr = if let Ok(v6) = host.parse::<Ipv6Addr>() {
        IpAddr::V6(v6)
    } else {
        // ipvsadm re-searches for the last ':' here, so "[1.2.3.4]:80" loses its port.
        port_str = None;
        if let Some(i) = host.rfind(':') {
            port_str = Some(&host[i + 1..]);
            host = &host[..i];
        }
        let v4 = match inet_aton(host) {
            Some(a) => Ipv4Addr::from(a),
            None => names.resolve_host(host)?,
        };
        IpAddr::V4(v4)
    };
    let port = match port_str {
        None => None,
        Some(p) => Some(match string_to_number(p, 0, 65535) {
            Some(n) => n as u16,
            None => names.port_by_name(p, protocol_of(proto)?)?,
        }),
    };
    Some(HostPort { addr, port })
}

/// `parse_netmask` for IPv4 services: a dotted mask (inet_aton) or a resolvable host name.
/// Returns the mask in host byte order.
pub(crate) fn parse_netmask(buf: &str, names: &dyn Names) -> Option<u32> {
    inet_aton(buf).or_else(|| names.resolve_host(buf).map(u32::from))
}

/// `parse_timeout(buf, min, max)`; `None` input is the `-p` default of 360 seconds.
pub(crate) fn parse_timeout(buf: Option<&str>, min: i64) -> Result<u32, String> {
    let Some(buf) = buf else {
        return Ok(360);
    };
    string_to_number(buf, min, MAX_TIMEOUT)
        .map(|n| n as u32)
        .ok_or_else(|| format!("invalid timeout value `{buf}' specified"))
}

/// `parse_fwmark`: 1..=UINT_MAX.
pub(crate) fn parse_fwmark(buf: &str) -> Result<u32, String> {
    string_to_number(buf, 1, i64::from(u32::MAX))
        .map(|n| n as u32)
        .ok_or_else(|| format!("invalid fwmark value `{buf}' specified"))
}

/// `parse_sched_flags`: a comma list checked against the scheduler (as typed, or the default
/// wlc). Returns the SCHED1..3 bits.
pub(crate) fn parse_sched_flags(sched: &str, list: &str) -> Result<u8, String> {
    let sched = if sched.is_empty() { "wlc" } else { sched };
    let mut flags = 0u8;
    // strtok: empty items between commas vanish. ipvsadm crashes on a list with no item at
    // all (strcmp on NULL); we report it as an invalid flag instead.
    let mut items = list.split(',').filter(|s| !s.is_empty()).peekable();
    if items.peek().is_none() {
        return Err("invalid scheduler flag `'".to_string());
    }
    for flag in items {
        let (bit, needs) = match flag {
            "flag-1" => (1, None),
            "flag-2" => (2, None),
            "flag-3" => (4, None),
            "sh-fallback" => (1, Some("sh")),
            "sh-port" => (2, Some("sh")),
            "mh-fallback" => (1, Some("mh")),
            "mh-port" => (2, Some("mh")),
            _ => return Err(format!("invalid scheduler flag `{flag}'")),
        };
        if needs.is_some_and(|s| s != sched) {
            return Err(format!("incompatible scheduler flag `{flag}'"));
        }
        flags |= bit;
    }
    Ok(flags)
}

/// `--mcast-group`: an IPv6 multicast address if it contains ':', else an IPv4 one.
pub(crate) fn parse_mcast_group(buf: &str) -> Result<IpAddr, String> {
    if buf.contains(':') {
        match buf.parse::<Ipv6Addr>() {
            Ok(a) if a.is_multicast() => Ok(IpAddr::V6(a)),
            _ => Err(format!("invalid IPv6 mcast-group `{buf}'")),
        }
    } else {
        match buf.parse::<Ipv4Addr>() {
            Ok(a) if a.is_multicast() => Ok(IpAddr::V4(a)),
            _ => Err(format!("invalid IPv4 mcast-group `{buf}'")),
        }
    }
}

/// Copy at most `max` bytes, like the `strncpy` into a fixed kernel-sized buffer (whose last
/// byte the kernel needs for the terminator).
pub(crate) fn bounded(s: &str, max: usize) -> String {
    let mut out = s.to_string();
    crate::c_parse::truncate_bytes(&mut out, max);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::NumericOnly;

    struct Few;
    impl Names for Few {
        fn service_name(&self, _: u16, _: Protocol) -> Option<String> {
            None
        }
        fn port_by_name(&self, name: &str, proto: Protocol) -> Option<u16> {
            match (name, proto) {
                ("http", Protocol::Tcp) => Some(80),
                ("domain", Protocol::Udp) => Some(53),
                _ => None,
            }
        }
        fn host_name(&self, _: IpAddr) -> Option<String> {
            None
        }
        fn resolve_host(&self, name: &str) -> Option<Ipv4Addr> {
            (name == "web1").then_some(Ipv4Addr::new(10, 0, 0, 5))
        }
    }

    fn hp(a: &str, p: Option<u16>) -> Option<HostPort> {
        Some(HostPort {
            addr: a.parse().unwrap(),
            port: p,
        })
    }

    #[test]
    fn service_addresses() {
        let n = &Few;
        assert_eq!(
            parse_service("192.168.0.10:80", 6, n),
            hp("192.168.0.10", Some(80))
        );
        assert_eq!(
            parse_service("192.168.0.10", 6, n),
            hp("192.168.0.10", None)
        );
        assert_eq!(parse_service("10.1:http", 6, n), hp("10.0.0.1", Some(80)));
        assert_eq!(parse_service("10.1:http", 17, n), None);
        assert_eq!(
            parse_service("10.1:domain", 17, n),
            hp("10.0.0.1", Some(53))
        );
        assert_eq!(parse_service("10.1:http", 0, n), None);
        assert_eq!(
            parse_service("web1:+8080", 6, n),
            hp("10.0.0.5", Some(8080))
        );
        assert_eq!(parse_service("web2:80", 6, n), None);
        assert_eq!(parse_service("8080", 6, n), None);
        assert_eq!(parse_service("", 6, n), None);
        assert_eq!(parse_service("1.2.3.4:65536", 6, n), None);
        assert_eq!(parse_service("1.2.3.4:", 6, n), None);
        assert_eq!(
            parse_service("[2001:db8::1]:443", 6, n),
            hp("2001:db8::1", Some(443))
        );
        assert_eq!(parse_service("2001:db8::9", 6, n), hp("2001:db8::9", None));
        assert_eq!(parse_service("[2001:db8::9]", 6, n), None);
        assert_eq!(parse_service("[2001:db8::9]:", 6, n), None);
        assert_eq!(parse_service("[1.2.3.4]:80", 6, n), hp("1.2.3.4", None));
        assert_eq!(parse_service("[1.2.3.4", 6, n), None);
    }

    #[test]
    fn timeouts_marks_flags() {
        assert_eq!(parse_timeout(None, 1), Ok(360));
        assert_eq!(parse_timeout(Some("2678400"), 1), Ok(2_678_400));
        assert_eq!(
            parse_timeout(Some("2678401"), 1),
            Err("invalid timeout value `2678401' specified".into())
        );
        assert!(parse_timeout(Some("0"), 1).is_err());
        assert_eq!(parse_timeout(Some("0"), 0), Ok(0));
        assert_eq!(parse_fwmark("4294967295"), Ok(u32::MAX));
        assert_eq!(
            parse_fwmark("0"),
            Err("invalid fwmark value `0' specified".into())
        );
        assert_eq!(parse_sched_flags("", "flag-1,flag-3"), Ok(5));
        assert_eq!(parse_sched_flags("sh", "sh-port,,sh-fallback,"), Ok(3));
        assert_eq!(
            parse_sched_flags("", "sh-port"),
            Err("incompatible scheduler flag `sh-port'".into())
        );
        assert_eq!(
            parse_sched_flags("sh", "bogus"),
            Err("invalid scheduler flag `bogus'".into())
        );
        assert_eq!(
            parse_netmask("255.255.255.0", &NumericOnly),
            Some(0xffff_ff00)
        );
        assert_eq!(parse_netmask("web1", &Few), Some(0x0a00_0005));
        assert_eq!(parse_netmask("nope", &Few), None);
        assert!(parse_mcast_group("224.0.0.81").is_ok());
        assert_eq!(
            parse_mcast_group("10.0.0.1"),
            Err("invalid IPv4 mcast-group `10.0.0.1'".into())
        );
        assert_eq!(
            parse_mcast_group("2001:db8::1"),
            Err("invalid IPv6 mcast-group `2001:db8::1'".into())
        );
        assert_eq!(bounded("abcdefghijklmnopqrs", 15), "abcdefghijklmno");
    }
}
