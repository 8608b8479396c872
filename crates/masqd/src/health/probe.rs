//! One probe of one real server, and what its failure means: a real server that did not
//! answer as it should ([`Finding::Down`]), or a director that could not even ask
//! ([`Finding::Unknown`]: out of file descriptors, buffers or ports, or no route from
//! here), which says nothing about the real server.

use std::io;
use std::net::SocketAddr;

use masq_core::control::DestKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::HealthConfig;

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A TCP connection that opens.
    Tcp,
    /// `GET path` answered with `status`.
    Http { path: String, status: u16 },
}

impl std::str::FromStr for Probe {
    type Err = String;

    /// `tcp`, `http`, `http:/path` or `http:/path:200`.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "tcp" {
            return Ok(Probe::Tcp);
        }
        let rest = s
            .strip_prefix("http")
            .ok_or_else(|| format!("`{s}': use tcp, http, http:/PATH or http:/PATH:STATUS"))?;
        let rest = rest.strip_prefix(':').unwrap_or(rest);
        if rest.is_empty() {
            return Ok(Probe::Http {
                path: "/".into(),
                status: 200,
            });
        }
        if !rest.starts_with('/') {
            return Err(format!("`{s}': the HTTP path must start with /"));
        }
        let (path, status) = match rest.rsplit_once(':') {
            Some((p, st)) => (
                p.to_string(),
                st.parse()
                    .map_err(|_| format!("`{s}': `{st}' is not an HTTP status"))?,
            ),
            None => (rest.to_string(), 200),
        };
        Ok(Probe::Http { path, status })
    }
}

/// What one probe found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// The real server answered as it should.
    Up,
    /// It refused, did not answer in time, or answered wrong.
    Down,
    /// The director could not probe it, for a reason of its own.
    Unknown(LocalReason),
}

/// A reason of the director's own for a probe to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalReason {
    /// EMFILE: masqd has no file descriptor left.
    Emfile,
    /// ENFILE: the host has no file left.
    Enfile,
    /// ENOBUFS: no buffer space in the director's kernel.
    Enobufs,
    /// ENOMEM.
    Enomem,
    /// EADDRNOTAVAIL: no local port or source address left.
    Eaddrnotavail,
    /// ENETUNREACH: no route from the director.
    Enetunreach,
}

impl LocalReason {
    /// Every reason, in the order the counters are kept.
    pub const ALL: [LocalReason; 6] = [
        LocalReason::Emfile,
        LocalReason::Enfile,
        LocalReason::Enobufs,
        LocalReason::Enomem,
        LocalReason::Eaddrnotavail,
        LocalReason::Enetunreach,
    ];

    /// The reason of an OS error, when it is one of the director's own. EHOSTUNREACH is
    /// not: on a real server's own network it means that its ARP went unanswered.
    pub fn of(error: &io::Error) -> Option<LocalReason> {
        Some(match error.raw_os_error()? {
            libc::EMFILE => LocalReason::Emfile,
            libc::ENFILE => LocalReason::Enfile,
            libc::ENOBUFS => LocalReason::Enobufs,
            libc::ENOMEM => LocalReason::Enomem,
            libc::EADDRNOTAVAIL => LocalReason::Eaddrnotavail,
            libc::ENETUNREACH => LocalReason::Enetunreach,
            _ => return None,
        })
    }

    /// The errno's name: the metric label and what the log shows.
    pub fn errno(self) -> &'static str {
        match self {
            LocalReason::Emfile => "EMFILE",
            LocalReason::Enfile => "ENFILE",
            LocalReason::Enobufs => "ENOBUFS",
            LocalReason::Enomem => "ENOMEM",
            LocalReason::Eaddrnotavail => "EADDRNOTAVAIL",
            LocalReason::Enetunreach => "ENETUNREACH",
        }
    }

    /// What it means, for the log.
    pub fn meaning(self) -> &'static str {
        match self {
            LocalReason::Emfile => "masqd has too many open files",
            LocalReason::Enfile => "the host has too many open files",
            LocalReason::Enobufs => "no buffer space in the director's kernel",
            LocalReason::Enomem => "out of memory",
            LocalReason::Eaddrnotavail => "no local port or address left",
            LocalReason::Enetunreach => "no route from the director",
        }
    }

    /// What to do about it, for `masqadm --check`.
    pub fn fix(self) -> &'static str {
        match self {
            LocalReason::Emfile => "raise masqd's limit on open files (LimitNOFILE= in its unit, or ulimit -Hn before it starts); masqd raises its soft limit to the hard one",
            LocalReason::Enfile => "raise fs.file-max, or find what holds the host's open files",
            LocalReason::Enobufs | LocalReason::Enomem => "free memory on the director",
            LocalReason::Eaddrnotavail => "widen net.ipv4.ip_local_port_range, or find what holds the local ports",
            LocalReason::Enetunreach => "add a route from the director to the real servers (ip route)",
        }
    }
}

/// One probe of `dest`, bounded by the configured timeout.
pub async fn probe(config: &HealthConfig, dest: DestKey) -> Finding {
    let addr = SocketAddr::new(dest.addr, dest.port);
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await?;
        match &config.probe {
            Probe::Tcp => Ok(true),
            Probe::Http { path, status } => {
                let request = format!(
                    "GET {path} HTTP/1.0\r\nHost: {}\r\nUser-Agent: masqd-health\r\nConnection: close\r\n\r\n",
                    dest.addr
                );
                stream.write_all(request.as_bytes()).await?;
                let mut head = [0u8; 64];
                let n = stream.read(&mut head).await?;
                Ok(status_of(&head[..n]) == Some(*status))
            }
        }
    };
    match tokio::time::timeout(config.timeout, attempt).await {
        Ok(Ok(true)) => Finding::Up,
        Ok(Ok(false)) | Err(_) => Finding::Down,
        Ok(Err(e)) => LocalReason::of(&e).map_or(Finding::Down, Finding::Unknown),
    }
}

/// The status code of an HTTP response's first line (`HTTP/1.x NNN ...`).
fn status_of(head: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(head).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn probe_specs_parse() {
        assert_eq!("tcp".parse::<Probe>(), Ok(Probe::Tcp));
        assert_eq!(
            "http".parse::<Probe>(),
            Ok(Probe::Http {
                path: "/".into(),
                status: 200
            })
        );
        assert_eq!(
            "http:/healthz:204".parse::<Probe>(),
            Ok(Probe::Http {
                path: "/healthz".into(),
                status: 204
            })
        );
        assert_eq!(
            "http:/x".parse::<Probe>(),
            Ok(Probe::Http {
                path: "/x".into(),
                status: 200
            })
        );
        assert!("http:x".parse::<Probe>().is_err());
        assert!("http:/x:abc".parse::<Probe>().is_err());
        assert!("icmp".parse::<Probe>().is_err());
    }

    #[test]
    fn local_reasons_are_the_directors_own_errors_only() {
        let of = |errno| LocalReason::of(&io::Error::from_raw_os_error(errno));
        assert_eq!(of(libc::EMFILE), Some(LocalReason::Emfile));
        assert_eq!(of(libc::ENFILE), Some(LocalReason::Enfile));
        assert_eq!(of(libc::ENOBUFS), Some(LocalReason::Enobufs));
        assert_eq!(of(libc::ENOMEM), Some(LocalReason::Enomem));
        assert_eq!(of(libc::EADDRNOTAVAIL), Some(LocalReason::Eaddrnotavail));
        assert_eq!(of(libc::ENETUNREACH), Some(LocalReason::Enetunreach));
        // What a dead or unreachable real server causes.
        for errno in [
            libc::ECONNREFUSED,
            libc::ECONNRESET,
            libc::ETIMEDOUT,
            libc::EHOSTUNREACH,
            libc::EPIPE,
        ] {
            assert_eq!(of(errno), None, "errno {errno}");
        }
        assert_eq!(LocalReason::of(&io::Error::other("not an OS error")), None);
        for reason in LocalReason::ALL {
            let errno = match reason {
                LocalReason::Emfile => libc::EMFILE,
                LocalReason::Enfile => libc::ENFILE,
                LocalReason::Enobufs => libc::ENOBUFS,
                LocalReason::Enomem => libc::ENOMEM,
                LocalReason::Eaddrnotavail => libc::EADDRNOTAVAIL,
                LocalReason::Enetunreach => libc::ENETUNREACH,
            };
            assert_eq!(of(errno), Some(reason));
            // The name is the one strerror's list uses, e.g. "EMFILE".
            assert!(reason.errno().starts_with('E'), "{reason:?}");
        }
    }

    #[test]
    fn http_status_lines_parse() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_of(b"HTTP/1.0 503"), Some(503));
        assert_eq!(status_of(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(status_of(b""), None);
    }

    fn config() -> HealthConfig {
        HealthConfig {
            probe: Probe::Tcp,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            rise: 1,
            fall: 1,
            on_failure: super::super::OnFailure::Quiesce,
        }
    }

    #[tokio::test]
    async fn a_listening_port_is_up_and_a_closed_one_down() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let dest = |port| DestKey {
            addr: "127.0.0.1".parse().unwrap(),
            port,
        };
        assert_eq!(probe(&config(), dest(port)).await, Finding::Up);
        drop(listener);
        assert_eq!(probe(&config(), dest(port)).await, Finding::Down);
    }
}
