//! Test support for the namespace tests (`netns_tests`, `pnet_netns_tests`,
//! `xdp_netns_tests`): network namespaces of a test's own, joined by veth pairs, so no
//! frame leaves this machine.
//!
//! A [`Namespaces`] guard deletes what it created when it drops, also when the test fails;
//! deleting a namespace deletes its veth ends, and with them their peers. Sockets are
//! opened by a thread that entered a namespace ([`in_ns`]); a socket stays in the
//! namespace it was created in, so the test thread then uses it directly.
//!
//! The tests that use it are `#[ignore]`d, as they need root: `scripts/test.sh` runs them
//! (`--include-ignored`, as root). Run without root, or without a tool they need, they fail
//! and say what is missing; they never pass without having run.

use std::env;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use crate::{sys, FrameIo, Interface, Received};

/// How long an interface may take to get its carrier.
const CARRIER_WAIT: Duration = Duration::from_secs(3);

/// Namespaces named `PREFIX-PID-TAG-SHORT`, deleted on drop.
pub(crate) struct Namespaces {
    prefix: String,
    created: Vec<String>,
}

impl Namespaces {
    /// A guard for the namespaces of test `tag`.
    ///
    /// # Panics
    ///
    /// Without root or without `ip` (iproute2), saying which.
    pub(crate) fn new(prefix: &str, tag: &str) -> Namespaces {
        require_root("a network namespace test");
        require_tool("ip", "iproute2");
        Namespaces {
            prefix: format!("{prefix}-{}-{tag}", std::process::id()),
            created: Vec::new(),
        }
    }

    /// The full name of namespace `short`.
    pub(crate) fn name(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    /// Creates namespace `short` with IPv6 off (no DAD or router solicitations on its
    /// links: every frame a test sees is one it caused); returns its full name.
    pub(crate) fn add(&mut self, short: &str) -> String {
        let ns = self.name(short);
        run("ip", &["netns", "add", &ns]);
        self.created.push(ns.clone());
        in_ns(&ns, || {
            for conf in ["all", "default"] {
                // Absent when IPv6 is off in the kernel.
                let path = format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6");
                let _ = std::fs::write(path, "1");
            }
        });
        ns
    }

    /// A veth pair `if1` (in `ns1`) — `if2` (in `ns2`), each given its address (CIDR) if
    /// any, both up.
    pub(crate) fn veth(
        &self,
        (ns1, if1, addr1): (&str, &str, Option<&str>),
        (ns2, if2, addr2): (&str, &str, Option<&str>),
    ) {
        let (n1, n2) = (self.name(ns1), self.name(ns2));
        run(
            "ip",
            &[
                "link", "add", if1, "netns", &n1, "type", "veth", "peer", "name", if2, "netns", &n2,
            ],
        );
        for (ns, ifname, addr) in [(&n1, if1, addr1), (&n2, if2, addr2)] {
            if let Some(addr) = addr {
                run("ip", &["-n", ns, "addr", "add", addr, "dev", ifname]);
            }
            run("ip", &["-n", ns, "link", "set", ifname, "up"]);
        }
    }

    /// Interface `ifname` of namespace `short`, once it has a carrier.
    pub(crate) fn running(&self, short: &str, ifname: &str) -> Interface {
        let ns = self.name(short);
        let deadline = Instant::now() + CARRIER_WAIT;
        loop {
            let iface = in_ns(&ns, || Interface::by_name(ifname)).unwrap();
            if iface.is_running || Instant::now() > deadline {
                assert!(iface.is_up && iface.is_running, "{iface:?}");
                return iface;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.created {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Fails the test, saying so, unless it runs as root (`what` names what needs it).
pub(crate) fn require_root(what: &str) {
    let uid = sys::effective_uid();
    assert!(
        uid == 0,
        "{what} needs root, and this runs as uid {uid}: run it as root, as scripts/test.sh does"
    );
}

/// Fails the test, naming the tool and its package, unless `tool` is on the `PATH`.
pub(crate) fn require_tool(tool: &str, package: &str) {
    let found = env::var_os("PATH")
        .is_some_and(|path| env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
    assert!(
        found,
        "this test needs `{tool}` (package {package}), which is not on the PATH"
    );
}

/// Runs a command and returns what it printed; fails the test when it cannot start.
pub(crate) fn output(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} {args:?} could not run ({e}): is {cmd} installed?"))
}

/// Runs a command, insisting that it succeeds.
pub(crate) fn run(cmd: &str, args: &[&str]) {
    let out = output(cmd, args);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `f` on a thread that has entered the namespace `ns` (a full name).
pub(crate) fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|scope| {
        scope
            .spawn(|| {
                sys::enter_netns(ns).unwrap();
                f()
            })
            .join()
            .unwrap()
    })
}

/// Receives into `buf` until `want` accepts a frame or `window` passes; other frames are
/// skipped.
pub(crate) fn recv_until(
    port: &impl FrameIo,
    buf: &mut [u8],
    window: Duration,
    mut want: impl FnMut(&[u8]) -> bool,
) -> Option<Received> {
    let deadline = Instant::now() + window;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Some(got) = port.recv(buf, left).unwrap() {
            if want(&buf[..got.len]) {
                return Some(got);
            }
        }
    }
    None
}
