//! Which `Host` a request to masqd's HTTP endpoints may name.
//!
//! DNS rebinding works by pointing a name the attacker owns at the victim's address: the
//! browser then treats masqd's answers as that name's, readable by the attacker's page. The
//! browser still sends the attacker's name in `Host`, so answering only to names masqd
//! knows as its own defeats it. Allowed, with the listener's port:
//!
//! - `localhost`, `127.0.0.1` and `[::1]`;
//! - the address of this host the connection came in on: the listener's own when it is
//!   bound to one, the interface address the client reached when it is bound to a
//!   wildcard (an address of this host in any case, and never stale, unlike a list of
//!   interfaces taken at start);
//! - each `--http-allow-host NAME[:PORT]` (any port given, else the listener's), for a
//!   name that resolves to this host or a tunnel that arrives on another port.
//!
//! A `Host` without a port means port 80, as in a URL. Requests naming anything else are
//! refused with 421 Misdirected Request; a request with no `Host` (or two, or one that is
//! not a host and port) with 400.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hyper::http::uri::Authority;
use hyper::{header, Request};

/// An `--http-allow-host` value: a name or address, and the port if one was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostName {
    name: Name,
    port: Option<u16>,
}

impl FromStr for HostName {
    type Err = String;

    fn from_str(s: &str) -> Result<HostName, String> {
        let (name, port) = split(s)
            .ok_or_else(|| format!("{s:?} is not NAME, NAME:PORT, ADDRESS or [IPV6]:PORT"))?;
        Ok(HostName { name, port })
    }
}

/// A host name compared as DNS compares names (ASCII case-insensitively), or an address
/// compared as an address (`[::1]` is `[0:0::1]`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Name {
    Addr(IpAddr),
    Dns(String),
}

impl Name {
    fn new(host: &str) -> Name {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match bare.parse::<IpAddr>() {
            Ok(addr) => Name::Addr(addr.to_canonical()),
            Err(_) => Name::Dns(host.to_ascii_lowercase()),
        }
    }
}

/// Splits `host[:port]` as `Host` carries it; `None` when it is not that.
fn split(s: &str) -> Option<(Name, Option<u16>)> {
    // Authority also takes `user@host`, which is no host.
    let authority: Authority = s.parse().ok().filter(|_| !s.contains('@'))?;
    let host = authority.host();
    // Without user info the host comes first, then `:PORT`, `:` (no port) or nothing.
    let port = match authority.as_str()[host.len()..].strip_prefix(':') {
        None | Some("") => None,
        Some(port) => Some(port.parse().ok()?),
    };
    (!host.is_empty()).then(|| (Name::new(host), port))
}

/// Why a request's `Host` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRefusal {
    /// No `Host`, more than one, or one that is not `host[:port]`: 400.
    Malformed,
    /// A name this server does not answer to: 421.
    Foreign,
}

/// The names one listener answers to.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    port: u16,
    extra: Vec<HostName>,
}

impl AllowedHosts {
    /// For a listener on `port`, with the operator's `--http-allow-host` names.
    pub fn new(port: u16, extra: &[HostName]) -> AllowedHosts {
        AllowedHosts {
            port,
            extra: extra.to_vec(),
        }
    }

    /// Checks the host a request names (the authority of an absolute-form target, else
    /// its one `Host` header) for a connection that came in on `local`.
    ///
    /// # Errors
    /// See [`HostRefusal`].
    pub fn check<B>(&self, request: &Request<B>, local: IpAddr) -> Result<(), HostRefusal> {
        let named = match request.uri().authority() {
            Some(authority) => authority.as_str().to_owned(),
            None => {
                let mut hosts = request.headers().get_all(header::HOST).iter();
                let (Some(host), None) = (hosts.next(), hosts.next()) else {
                    return Err(HostRefusal::Malformed);
                };
                host.to_str()
                    .map_err(|_| HostRefusal::Malformed)?
                    .to_owned()
            }
        };
        let (name, port) = split(&named).ok_or(HostRefusal::Malformed)?;
        if self.allows(&name, port.unwrap_or(80), local) {
            Ok(())
        } else {
            Err(HostRefusal::Foreign)
        }
    }

    fn allows(&self, name: &Name, port: u16, local: IpAddr) -> bool {
        let own = port == self.port
            && match name {
                Name::Addr(addr) => [
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                    local.to_canonical(),
                ]
                .contains(addr),
                Name::Dns(dns) => dns == "localhost",
            };
        own || self
            .extra
            .iter()
            .any(|e| e.name == *name && e.port.unwrap_or(self.port) == port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const DIRECTOR: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 0, 10));

    fn request(host: Option<&str>) -> Request<()> {
        let mut r = Request::get("/api/state");
        if let Some(h) = host {
            r = r.header(header::HOST, h);
        }
        r.body(()).unwrap()
    }

    fn check(hosts: &AllowedHosts, host: &str, local: IpAddr) -> Result<(), HostRefusal> {
        hosts.check(&request(Some(host)), local)
    }

    #[test]
    fn loopback_names_and_the_address_connected_to_are_allowed_with_the_port() {
        let hosts = AllowedHosts::new(8080, &[]);
        for host in [
            "localhost:8080",
            "LocalHost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "[0:0::1]:8080",
        ] {
            assert_eq!(check(&hosts, host, LOOPBACK), Ok(()), "{host}");
        }
        // The director's address when the client connected to it (wildcard listener).
        assert_eq!(check(&hosts, "192.168.0.10:8080", DIRECTOR), Ok(()));
        // An IPv4 client on a dual-stack listener arrives on a mapped address.
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 168, 0, 10).to_ipv6_mapped());
        assert_eq!(check(&hosts, "192.168.0.10:8080", mapped), Ok(()));
    }

    #[test]
    fn other_names_ports_and_addresses_are_misdirected() {
        let hosts = AllowedHosts::new(8080, &[]);
        for host in [
            // DNS rebinding: the attacker's name pointing at us.
            "evil.example:8080",
            "evil.example",
            "localhost.:8080",
            "localhost.evil.example:8080",
            // The right name on another port (a tunnel masqd was not told about).
            "localhost:9000",
            "127.0.0.1",
            // Another address of ours than the one connected to, or someone else's.
            "192.168.0.10:8080",
            "127.0.0.2:8080",
            "10.1.2.3:8080",
        ] {
            assert_eq!(
                check(&hosts, host, LOOPBACK),
                Err(HostRefusal::Foreign),
                "{host}"
            );
        }
    }

    #[test]
    fn a_missing_duplicated_or_garbled_host_is_malformed() {
        let hosts = AllowedHosts::new(8080, &[]);
        assert_eq!(
            hosts.check(&request(None), LOOPBACK),
            Err(HostRefusal::Malformed)
        );
        let two = Request::get("/")
            .header(header::HOST, "localhost:8080")
            .header(header::HOST, "localhost:8080")
            .body(())
            .unwrap();
        assert_eq!(hosts.check(&two, LOOPBACK), Err(HostRefusal::Malformed));
        for host in ["", "user@localhost:8080", "localhost:99999", "a b", "[::1"] {
            assert_eq!(
                check(&hosts, host, LOOPBACK),
                Err(HostRefusal::Malformed),
                "{host:?}"
            );
        }
    }

    #[test]
    fn an_absolute_target_names_the_host_instead_of_the_header() {
        let hosts = AllowedHosts::new(8080, &[]);
        let r = Request::get("http://evil.example:8080/api/state")
            .header(header::HOST, "localhost:8080")
            .body(())
            .unwrap();
        assert_eq!(hosts.check(&r, LOOPBACK), Err(HostRefusal::Foreign));
        let r = Request::get("http://localhost:8080/metrics")
            .body(())
            .unwrap();
        assert_eq!(hosts.check(&r, LOOPBACK), Ok(()));
    }

    #[test]
    fn allow_host_adds_names_on_the_listeners_port_or_their_own() {
        let extra: Vec<HostName> = [
            "director.lab",
            "localhost:9000",
            "[2001:db8::1]",
            "10.1.2.3:80",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let hosts = AllowedHosts::new(8080, &extra);
        for host in [
            "director.lab:8080",
            "DIRECTOR.LAB:8080",
            "localhost:9000",
            "[2001:db8::1]:8080",
            "10.1.2.3",
        ] {
            assert_eq!(check(&hosts, host, LOOPBACK), Ok(()), "{host}");
        }
        for host in ["director.lab:9000", "director.lab", "10.1.2.3:8080"] {
            assert_eq!(
                check(&hosts, host, LOOPBACK),
                Err(HostRefusal::Foreign),
                "{host}"
            );
        }
    }

    #[test]
    fn allow_host_values_are_names_with_an_optional_port() {
        assert!("director.lab".parse::<HostName>().is_ok());
        assert!("[::1]:8080".parse::<HostName>().is_ok());
        for bad in ["", "a b", "x:port", "user@host", "http://x/"] {
            assert!(bad.parse::<HostName>().is_err(), "{bad:?}");
        }
    }
}
