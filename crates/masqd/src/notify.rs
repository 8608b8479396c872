//! Telling the service manager how masqd is doing: systemd's notification protocol
//! (sd_notify(3)) for `Type=notify` units, without libsystemd.
//!
//! systemd names a datagram socket in `NOTIFY_SOCKET`: a path, or an abstract name written
//! with a leading `@`. masqd sends `READY=1` once it serves (control socket bound and
//! answering, kernel guard installed, packet threads and housekeeping running) — so a unit
//! ordered after masqd, or a boot script's `masqadm -R`, never races the socket —,
//! `STOPPING=1` when a stop begins, and `WATCHDOG=1` from the housekeeping thread at half
//! the unit's `WatchdogSec=` (`WATCHDOG_USEC`), so that a stuck housekeeping (expiry, ARP)
//! gets masqd restarted. Without `NOTIFY_SOCKET` (started by hand, by the lab) nothing is
//! sent. A message that cannot be sent is logged and changes nothing else: the service
//! manager's view is not worth stopping a director for.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// The variable systemd names its notification socket in.
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
/// The watchdog's timeout in microseconds, set when the unit has `WatchdogSec=`.
const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
/// The process the watchdog is meant for (another process's watchdog is none of masqd's).
const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// Where masqd's notifications go; sends nothing when the service manager asked for none.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` asks for. A value masqd cannot use is logged, and
    /// masqd runs on without notifying.
    pub fn from_env() -> Notifier {
        let Some(value) = std::env::var_os(NOTIFY_SOCKET).filter(|v| !v.is_empty()) else {
            return Notifier { target: None };
        };
        match Target::new(&value) {
            Ok(target) => Notifier {
                target: Some(target),
            },
            Err(e) => {
                tracing::warn!(
                    "{NOTIFY_SOCKET}={}: {e}; masqd will not tell the service manager it is ready",
                    value.to_string_lossy()
                );
                Notifier { target: None }
            }
        }
    }

    /// `READY=1`: masqd serves. `status` is what `systemctl status` shows.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// `STOPPING=1`: a stop has begun.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    /// The watchdog the unit configured (`WATCHDOG_USEC`, for this process), if any,
    /// sending on a socket of its own for the housekeeping thread.
    pub fn watchdog(&self) -> Option<Watchdog> {
        let target = self.target.as_ref()?;
        let timeout = watchdog_timeout(
            std::env::var(WATCHDOG_USEC).ok().as_deref(),
            std::env::var(WATCHDOG_PID).ok().as_deref(),
            std::process::id(),
        )?;
        match target.try_clone() {
            Ok(target) => Some(Watchdog::new(
                Notifier {
                    target: Some(target),
                },
                timeout,
            )),
            Err(e) => {
                tracing::warn!("the watchdog's notification socket: {e}; masqd will not pet the service manager's watchdog");
                None
            }
        }
    }

    fn send(&self, message: &str) {
        if let Some(target) = &self.target {
            if let Err(e) = target.send(message) {
                let first = message.lines().next().unwrap_or_default();
                tracing::warn!("telling the service manager {first}: {e}");
            }
        }
    }
}

impl Target {
    /// A socket of masqd's own that sends to the address in `NOTIFY_SOCKET`.
    fn new(value: &OsStr) -> io::Result<Target> {
        let addr = notify_address(value)?;
        Ok(Target {
            socket: UnixDatagram::unbound()?,
            addr,
        })
    }

    fn try_clone(&self) -> io::Result<Target> {
        Ok(Target {
            socket: self.socket.try_clone()?,
            addr: self.addr.clone(),
        })
    }

    fn send(&self, message: &str) -> io::Result<()> {
        self.socket
            .send_to_addr(message.as_bytes(), &self.addr)
            .map(drop)
    }
}

/// The address a `NOTIFY_SOCKET` value names: `@name` is the abstract name `name`,
/// anything else a path.
///
/// # Errors
/// `InvalidInput` for a value that is neither (a relative path, a name too long).
fn notify_address(value: &OsStr) -> io::Result<SocketAddr> {
    let bytes = value.as_bytes();
    match bytes.split_first() {
        Some((b'@', name)) => SocketAddr::from_abstract_name(name),
        Some((b'/', _)) => SocketAddr::from_pathname(value),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "neither an absolute path nor an abstract name (@NAME)",
        )),
    }
}

/// The watchdog's timeout from `WATCHDOG_USEC` and `WATCHDOG_PID`: None when there is no
/// watchdog, when it is another process's, or when the value is not a positive number.
fn watchdog_timeout(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if pid.is_some_and(|pid| pid.parse() != Ok(me)) {
        return None;
    }
    let usec: u64 = usec?.parse().ok().filter(|&usec| usec > 0)?;
    Some(Duration::from_micros(usec))
}

/// The service manager's watchdog, petted at half its timeout by whoever calls
/// [`Watchdog::pet_if_due`] often enough.
#[derive(Debug)]
pub struct Watchdog {
    notifier: Notifier,
    interval: Duration,
    due: Instant,
}

impl Watchdog {
    fn new(notifier: Notifier, timeout: Duration) -> Watchdog {
        Watchdog {
            notifier,
            interval: timeout / 2,
            due: Instant::now(),
        }
    }

    /// When the next `WATCHDOG=1` is due.
    pub fn due(&self) -> Instant {
        self.due
    }

    /// Sends `WATCHDOG=1` if it is due at `now`.
    pub fn pet_if_due(&mut self, now: Instant) {
        if now >= self.due {
            self.notifier.send("WATCHDOG=1");
            self.due = now + self.interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket bound where a service manager's would be, and a notifier sending to it.
    fn manager(addr: &OsStr) -> (UnixDatagram, Notifier) {
        let target = Target::new(addr).unwrap();
        let socket = UnixDatagram::bind_addr(&target.addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (
            socket,
            Notifier {
                target: Some(target),
            },
        )
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn messages_reach_a_socket_named_by_its_path() {
        let dir = std::env::temp_dir().join(format!("masqd-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let (socket, notifier) = manager(path.as_os_str());
        notifier.ready("serving 2 services");
        assert_eq!(receive(&socket), "READY=1\nSTATUS=serving 2 services");
        notifier.stopping();
        assert_eq!(receive(&socket), "STOPPING=1\nSTATUS=stopping");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn messages_reach_an_abstract_socket() {
        let name = format!("@masqd-notify-test-{}", std::process::id());
        let (socket, notifier) = manager(OsStr::new(&name));
        notifier.ready("up");
        assert_eq!(receive(&socket), "READY=1\nSTATUS=up");
    }

    #[test]
    fn the_watchdog_is_petted_at_half_its_timeout() {
        let name = format!("@masqd-watchdog-test-{}", std::process::id());
        let (socket, notifier) = manager(OsStr::new(&name));
        let mut watchdog = Watchdog::new(notifier, Duration::from_secs(10));
        let start = watchdog.due();
        watchdog.pet_if_due(start);
        assert_eq!(receive(&socket), "WATCHDOG=1");
        assert_eq!(watchdog.due(), start + Duration::from_secs(5));
        // Not due yet: nothing is sent.
        watchdog.pet_if_due(start + Duration::from_secs(4));
        assert_eq!(watchdog.due(), start + Duration::from_secs(5));
        watchdog.pet_if_due(start + Duration::from_secs(6));
        assert_eq!(receive(&socket), "WATCHDOG=1");
        assert_eq!(watchdog.due(), start + Duration::from_secs(11));
        socket.set_nonblocking(true).unwrap();
        assert!(socket.recv(&mut [0u8; 16]).is_err(), "one message per pet");
    }

    #[test]
    fn the_watchdog_is_this_process_s_only() {
        let me = 4242;
        let ten = Some(Duration::from_secs(10));
        assert_eq!(watchdog_timeout(Some("10000000"), None, me), ten);
        assert_eq!(watchdog_timeout(Some("10000000"), Some("4242"), me), ten);
        assert_eq!(watchdog_timeout(Some("10000000"), Some("1"), me), None);
        assert_eq!(watchdog_timeout(None, None, me), None);
        assert_eq!(watchdog_timeout(Some("0"), None, me), None);
        assert_eq!(watchdog_timeout(Some("soon"), None, me), None);
    }

    #[test]
    fn unusable_addresses_are_refused() {
        assert!(notify_address(OsStr::new("relative/notify")).is_err());
        assert!(notify_address(OsStr::new(&format!("/{}", "x".repeat(200)))).is_err());
    }
}
