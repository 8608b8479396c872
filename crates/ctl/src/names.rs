//! Port and host name lookup, the part of ipvsadm that asks libc (`getservbyport`,
//! `getservbyname`, `gethostbyaddr`, `gethostbyname`). Behind a trait so the daemon, the CLI
//! and the tests can each choose: [`SystemNames`] reads `/etc/services` and `/etc/hosts` the
//! way glibc's `files` backend does (never DNS, so a listing can never hang on a resolver);
//! [`NumericOnly`] knows no names at all.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use masq_core::control::Protocol;

/// Name lookups ipvsadm performs. Every method answers `None` when it knows no name; the
/// caller then falls back to numbers exactly like ipvsadm.
pub trait Names {
    /// `getservbyport(port, proto)`: `80/tcp` → `http`.
    fn service_name(&self, port: u16, proto: Protocol) -> Option<String>;
    /// `getservbyname(name, proto)`: `http/tcp` → 80.
    fn port_by_name(&self, name: &str, proto: Protocol) -> Option<u16>;
    /// `gethostbyaddr(addr)`: `127.0.0.1` → `localhost`.
    fn host_name(&self, addr: IpAddr) -> Option<String>;
    /// `gethostbyname(name)`, IPv4 only as in ipvsadm.
    fn resolve_host(&self, name: &str) -> Option<Ipv4Addr>;
}

/// Knows no names: every address and port prints as a number, and only numeric input parses.
#[derive(Debug, Clone, Copy, Default)]
pub struct NumericOnly;

impl Names for NumericOnly {
    fn service_name(&self, _port: u16, _proto: Protocol) -> Option<String> {
        None
    }
    fn port_by_name(&self, _name: &str, _proto: Protocol) -> Option<u16> {
        None
    }
    fn host_name(&self, _addr: IpAddr) -> Option<String> {
        None
    }
    fn resolve_host(&self, _name: &str) -> Option<Ipv4Addr> {
        None
    }
}

/// Reads `/etc/services` and `/etc/hosts` on every lookup (like libc, so edits are seen at
/// once); [`crate::run`] memoises lookups within one invocation. A missing file knows no names.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemNames;

const SERVICES_FILE: &str = "/etc/services";
const HOSTS_FILE: &str = "/etc/hosts";

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Names for SystemNames {
    fn service_name(&self, port: u16, proto: Protocol) -> Option<String> {
        services_by_port(&read(SERVICES_FILE), port, proto)
    }
    fn port_by_name(&self, name: &str, proto: Protocol) -> Option<u16> {
        services_by_name(&read(SERVICES_FILE), name, proto)
    }
    fn host_name(&self, addr: IpAddr) -> Option<String> {
        hosts_by_addr(&read(HOSTS_FILE), addr)
    }
    fn resolve_host(&self, name: &str) -> Option<Ipv4Addr> {
        hosts_by_name(&read(HOSTS_FILE), name)
    }
}

/// The protocol name used in `/etc/services`.
fn proto_name(proto: Protocol) -> &'static str {
    match proto {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// Fields of a database line, comments (`#` to end of line) removed.
fn fields(line: &str) -> impl Iterator<Item = &str> {
    line.split('#')
        .next()
        .unwrap_or("")
        .split_ascii_whitespace()
}

/// `/etc/services` entries as (name, port, proto, aliases), in file order.
fn service_entries(text: &str) -> impl Iterator<Item = (&str, u16, &str, Vec<&str>)> {
    text.lines().filter_map(|line| {
        let mut f = fields(line);
        let name = f.next()?;
        let (port, proto) = f.next()?.split_once('/')?;
        let port = port.parse::<u16>().ok()?;
        Some((name, port, proto, f.collect()))
    })
}

/// glibc's files backend: the first entry with that port and protocol.
pub(crate) fn services_by_port(text: &str, port: u16, proto: Protocol) -> Option<String> {
    let want = proto_name(proto);
    service_entries(text)
        .find(|(_, p, pr, _)| *p == port && *pr == want)
        .map(|(name, ..)| name.to_string())
}

/// glibc's files backend: the first entry whose name or alias matches (case-sensitively).
pub(crate) fn services_by_name(text: &str, name: &str, proto: Protocol) -> Option<u16> {
    let want = proto_name(proto);
    service_entries(text)
        .find(|(n, _, pr, aliases)| *pr == want && (*n == name || aliases.contains(&name)))
        .map(|(_, port, ..)| port)
}

/// `/etc/hosts` entries as (address, canonical name, aliases), in file order.
fn host_entries(text: &str) -> impl Iterator<Item = (IpAddr, &str, Vec<&str>)> {
    text.lines().filter_map(|line| {
        let mut f = fields(line);
        let addr = f.next()?.parse::<IpAddr>().ok()?;
        let name = f.next()?;
        Some((addr, name, f.collect()))
    })
}

/// gethostbyaddr over `/etc/hosts`: the canonical name of the first line with that address.
pub(crate) fn hosts_by_addr(text: &str, addr: IpAddr) -> Option<String> {
    host_entries(text)
        .find(|(a, ..)| *a == addr)
        .map(|(_, name, _)| name.to_string())
}

/// gethostbyname over `/etc/hosts`: the first IPv4 line naming it (host names compare
/// case-insensitively, as glibc does).
pub(crate) fn hosts_by_name(text: &str, name: &str) -> Option<Ipv4Addr> {
    host_entries(text).find_map(|(a, n, aliases)| match a {
        IpAddr::V4(v4)
            if n.eq_ignore_ascii_case(name)
                || aliases.iter().any(|x| x.eq_ignore_ascii_case(name)) =>
        {
            Some(v4)
        }
        _ => None,
    })
}

/// Remembers every answer for the length of one invocation, so a listing of many entries
/// reads the system databases once per distinct question, and the answers within one
/// listing are consistent.
pub(crate) struct Memo<'a> {
    inner: &'a dyn Names,
    services: RefCell<HashMap<(u16, Protocol), Option<String>>>,
    ports: RefCell<HashMap<(String, Protocol), Option<u16>>>,
    hosts: RefCell<HashMap<IpAddr, Option<String>>>,
    resolved: RefCell<HashMap<String, Option<Ipv4Addr>>>,
}

impl<'a> Memo<'a> {
    pub(crate) fn new(inner: &'a dyn Names) -> Self {
        Memo {
            inner,
            services: RefCell::default(),
            ports: RefCell::default(),
            hosts: RefCell::default(),
            resolved: RefCell::default(),
        }
    }
}

/// Look `key` up in `cache`, asking `ask` on a miss. The cache is never borrowed while `ask`
/// runs, so a re-entrant lookup cannot trip the RefCell.
fn cached<K, V>(cache: &RefCell<HashMap<K, V>>, key: K, ask: impl FnOnce() -> V) -> V
where
    K: std::hash::Hash + Eq,
    V: Clone,
{
    if let Some(v) = cache.borrow().get(&key) {
        return v.clone();
    }
    let v = ask();
    cache.borrow_mut().insert(key, v.clone());
    v
}

impl Names for Memo<'_> {
    fn service_name(&self, port: u16, proto: Protocol) -> Option<String> {
        cached(&self.services, (port, proto), || {
            self.inner.service_name(port, proto)
        })
    }
    fn port_by_name(&self, name: &str, proto: Protocol) -> Option<u16> {
        cached(&self.ports, (name.to_string(), proto), || {
            self.inner.port_by_name(name, proto)
        })
    }
    fn host_name(&self, addr: IpAddr) -> Option<String> {
        cached(&self.hosts, addr, || self.inner.host_name(addr))
    }
    fn resolve_host(&self, name: &str) -> Option<Ipv4Addr> {
        cached(&self.resolved, name.to_string(), || {
            self.inner.resolve_host(name)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES: &str = "\
# comment
domain\t\t53/tcp\t\t\t\t# Domain Name Server
domain\t\t53/udp
http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP
https\t\t443/tcp
mdns\t\t5353/udp\t\t\t# Multicast DNS
http-alt\t8080/tcp\twebcache\t# WWW caching service
";

    const HOSTS: &str = "\
127.0.0.1 localhost
127.0.0.1 runsc
::1 localhost ip6-localhost
10.0.0.5 Web1.example web1 # the first
";

    #[test]
    fn services_lookups() {
        assert_eq!(
            services_by_port(SERVICES, 80, Protocol::Tcp).as_deref(),
            Some("http")
        );
        assert_eq!(services_by_port(SERVICES, 80, Protocol::Udp), None);
        assert_eq!(
            services_by_port(SERVICES, 53, Protocol::Udp).as_deref(),
            Some("domain")
        );
        assert_eq!(services_by_name(SERVICES, "www", Protocol::Tcp), Some(80));
        assert_eq!(
            services_by_name(SERVICES, "webcache", Protocol::Tcp),
            Some(8080)
        );
        assert_eq!(services_by_name(SERVICES, "HTTP", Protocol::Tcp), None);
        assert_eq!(services_by_name(SERVICES, "mdns", Protocol::Tcp), None);
    }

    #[test]
    fn hosts_lookups() {
        assert_eq!(
            hosts_by_addr(HOSTS, "127.0.0.1".parse().unwrap()).as_deref(),
            Some("localhost")
        );
        assert_eq!(
            hosts_by_addr(HOSTS, "::1".parse().unwrap()).as_deref(),
            Some("localhost")
        );
        assert_eq!(hosts_by_addr(HOSTS, "10.9.9.9".parse().unwrap()), None);
        assert_eq!(
            hosts_by_name(HOSTS, "WEB1"),
            Some(Ipv4Addr::new(10, 0, 0, 5))
        );
        assert_eq!(hosts_by_name(HOSTS, "ip6-localhost"), None);
        assert_eq!(hosts_by_name(HOSTS, "#"), None);
    }

    #[test]
    fn memo_asks_once() {
        struct Counting(std::cell::Cell<u32>);
        impl Names for Counting {
            fn service_name(&self, _: u16, _: Protocol) -> Option<String> {
                self.0.set(self.0.get() + 1);
                Some("x".into())
            }
            fn port_by_name(&self, _: &str, _: Protocol) -> Option<u16> {
                None
            }
            fn host_name(&self, _: IpAddr) -> Option<String> {
                None
            }
            fn resolve_host(&self, _: &str) -> Option<Ipv4Addr> {
                None
            }
        }
        let c = Counting(std::cell::Cell::new(0));
        let m = Memo::new(&c);
        assert_eq!(m.service_name(80, Protocol::Tcp).as_deref(), Some("x"));
        assert_eq!(m.service_name(80, Protocol::Tcp).as_deref(), Some("x"));
        assert_eq!(c.0.get(), 1);
    }
}
