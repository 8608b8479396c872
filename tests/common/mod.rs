//! The lab for end-to-end tests: `scripts/lab.sh` in network namespaces, owned by a value.
//!
//! [`Lab::up`] builds the classic LVS-NAT lab under a prefix of its own (so several labs
//! can exist at once) with masqd and the real servers running, and dropping the [`Lab`]
//! tears it down — also when the test panics, after printing masqd's log. Tests drive it
//! as a student would: curl and friends in the client namespace, `masqadm` on masqd's
//! socket, the real servers' connection logs.
//!
//! The tests need root and iproute2, so each is `#[ignore]`d with the reason, and
//! `scripts/test.sh` runs them as root with `--include-ignored`. Run without root or
//! without a tool they need, they fail and name what is missing: a test never passes
//! without having run. They run the binaries of the target directory they were built in,
//! so build those first: `cargo build --workspace --bins`.

// Every test file includes this module and uses a different part of it.
#![allow(dead_code)]

pub mod at_vip;
pub mod browser;
pub mod daemon;
pub mod seed;
pub mod standalone;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// The virtual IP of the lab's services.
pub const VIP: &str = "192.168.0.10";
/// The on-link client's address.
pub const CLIENT_IP: &str = "192.168.0.101";
/// The routed client's address (with [`LabOptions::routed`]).
pub const RCLIENT_IP: &str = "10.0.0.2";
/// The director's address on the real servers' segment (their gateway).
pub const DIP_IP: &str = "192.168.100.10";
/// Real server 1's address.
pub const RS1_IP: &str = "192.168.100.7";
/// Real server 2's address.
pub const RS2_IP: &str = "192.168.100.9";

/// The binaries the lab runs.
const BINARIES: [&str; 3] = ["masqd", "masqadm", "masq-labsrv"];
/// Longest a command in a namespace may run before it is killed.
const EXEC_TIMEOUT_SECS: &str = "120";

/// Labs that measure (throughput, retransmissions) take the machine for themselves; the
/// others share it.
static MACHINE: RwLock<()> = RwLock::new(());
static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// How to build the lab.
#[derive(Debug, Default, Clone, Copy)]
pub struct LabOptions {
    /// Add the router and the routed client (`MASQ_LAB_ROUTED=1`); masqd gets
    /// `--vip-gateway 192.168.0.1`.
    pub routed: bool,
    /// Turn tso/gso/gro/tx checksumming off on every lab interface (`MASQ_LAB_OFFLOADS=off`).
    pub offloads_off: bool,
    /// Run with no other lab test at the same time (for measurements).
    pub exclusive: bool,
    /// More arguments for masqd (`MASQ_LAB_MASQD_ARGS`), e.g. `["--web", "127.0.0.1:8080"]`;
    /// none may contain a space.
    pub masqd_args: &'static [&'static str],
    /// Add a rogue host on the real servers' segment (`MASQ_LAB_ROGUE=1`): namespace
    /// `rogue`, 192.168.100.66 on interface `PREFIX-rg`.
    pub rogue: bool,
    /// Start the lab's daemons with this soft limit on open files (the hard limit stays),
    /// as a service manager's default of 1 024 would.
    pub open_files_soft_limit: Option<u32>,
    /// Run masqd as this uid (and gid) with only the unit's ambient capabilities
    /// (`MASQ_LAB_MASQD_USER`), as packaging/masqd.service runs it.
    pub masqd_user: Option<u32>,
    /// How the director reaches the real servers: the lab's `up --method`.
    pub method: Method,
}

/// The lab's forwarding method (`scripts/lab.sh up --method`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// LVS-NAT (`nat`): the real servers' own addresses, the director rewrites.
    #[default]
    Nat,
    /// Direct routing (`dr`): each real server holds the VIP on `lo` with arp_ignore=1 and
    /// arp_announce=2, its UDP echo bound to the VIP.
    DirectRouting,
    /// Tunnelling (`tun`): as direct routing, the VIP on the real server's tunnel end
    /// (the kernel's tunl0, or `lo` behind `masq-labsrv tunnel-end`), rp_filter off.
    Tunnelling,
}

impl Method {
    /// The word `scripts/lab.sh up --method` takes.
    fn arg(self) -> &'static str {
        match self {
            Method::Nat => "nat",
            Method::DirectRouting => "dr",
            Method::Tunnelling => "tun",
        }
    }
}

/// A running lab; dropping it runs `scripts/lab.sh down`.
pub struct Lab {
    prefix: String,
    state: PathBuf,
    bin_dir: PathBuf,
    options: LabOptions,
    // Held for the lab's life and released after `down` has run (fields drop after
    // `Drop::drop`): one of the two is set.
    _shared: Option<RwLockReadGuard<'static, ()>>,
    _exclusive: Option<RwLockWriteGuard<'static, ()>>,
}

/// Fails the test, naming what is missing, unless it runs as root with iproute2 installed.
///
/// # Panics
///
/// When not root or `ip` is not installed.
pub fn require_root_and_iproute2() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("unknown");
    assert!(
        euid == "0",
        "not root (effective uid {euid}): this test builds network namespaces; run it as root (sudo scripts/test.sh)"
    );
    require_program("ip", "iproute2");
}

/// Fails the test unless `program` is on the PATH, naming the Debian `package` that has it.
///
/// # Panics
///
/// When `program` is not installed.
pub fn require_program(program: &str, package: &str) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    assert!(
        std::env::split_paths(&path).any(|dir| dir.join(program).is_file()),
        "`{program}` is not installed: this test needs {package} (scripts/install-deps.sh installs it)"
    );
}

/// Fails the test unless Debian's `/usr/bin/python3` (the one the tests run, whatever
/// python3 comes first on the PATH) can import `module`, naming the `package` that has it.
///
/// # Panics
///
/// When the module cannot be imported.
pub fn require_python_module(module: &str, package: &str) {
    let found = Command::new("/usr/bin/python3")
        .args(["-c", &format!("import {module}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "/usr/bin/python3 cannot import {module}: this test needs {package} (scripts/install-deps.sh installs it)"
    );
}

/// `target/<profile>/`, where cargo put the binaries next to this test executable.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test>-<hash>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps")
        .to_path_buf();
    let missing: Vec<&str> = BINARIES
        .into_iter()
        .filter(|b| !dir.join(b).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "{} missing from {}: run `cargo build --workspace --bins` first (with the same profile and target directory as the tests)",
        missing.join(", "),
        dir.display()
    );
    dir
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab.sh")
}

/// A prefix no existing namespace uses: `mq`, four hex digits of the pid, a counter.
fn unique_prefix() -> String {
    let pid = std::process::id() & 0xffff;
    loop {
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        assert!(n < 256, "no free lab prefix left for this process");
        let prefix = format!("mq{pid:04x}{n:02x}");
        let taken = std::fs::read_dir("/run/netns")
            .map(|dir| {
                dir.flatten().any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{prefix}-"))
                })
            })
            .unwrap_or(false);
        if !taken {
            return prefix;
        }
    }
}

/// Shows a command's result in assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Lab {
    /// The classic lab.
    ///
    /// # Panics
    ///
    /// When not root, when iproute2 or the binaries are missing, or when the lab does not
    /// come up.
    pub fn up() -> Lab {
        Lab::up_with(LabOptions::default())
    }

    /// A lab built with `options`; see [`Lab::up`].
    ///
    /// # Panics
    ///
    /// As [`Lab::up`].
    pub fn up_with(options: LabOptions) -> Lab {
        require_root_and_iproute2();
        let bin_dir = bin_dir();
        let (shared, exclusive) = if options.exclusive {
            (
                None,
                Some(MACHINE.write().unwrap_or_else(|e| e.into_inner())),
            )
        } else {
            (
                Some(MACHINE.read().unwrap_or_else(|e| e.into_inner())),
                None,
            )
        };
        let prefix = unique_prefix();
        let state = std::env::temp_dir().join(format!("masq-lab-{prefix}"));
        // Built before `up` runs, so that whatever happens the lab is torn down.
        let lab = Lab {
            prefix,
            state,
            bin_dir,
            options,
            _shared: shared,
            _exclusive: exclusive,
        };
        let out = lab.script(&["up", "--method", options.method.arg()]);
        assert!(
            out.status.success(),
            "scripts/lab.sh up failed:\n{}",
            describe(&out)
        );
        lab
    }

    /// Runs `scripts/lab.sh ARGS…` for this lab.
    pub fn script(&self, args: &[&str]) -> Output {
        let mut command = match self.options.open_files_soft_limit {
            Some(soft) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={soft}:")).arg("bash");
                c
            }
            None => Command::new("bash"),
        };
        command
            .arg(script())
            .args(args)
            .env("MASQ_LAB_PREFIX", &self.prefix)
            .env("MASQ_LAB_STATE", &self.state)
            .env("MASQ_BIN_DIR", &self.bin_dir)
            .env(
                "MASQ_LAB_ROUTED",
                if self.options.routed { "1" } else { "0" },
            )
            .env("MASQ_LAB_MASQD_ARGS", self.options.masqd_args.join(" "))
            .env("MASQ_LAB_ROGUE", if self.options.rogue { "1" } else { "0" })
            .env(
                "MASQ_LAB_MASQD_USER",
                self.options
                    .masqd_user
                    .map(|uid| uid.to_string())
                    .unwrap_or_default(),
            )
            .env(
                "MASQ_LAB_OFFLOADS",
                if self.options.offloads_off {
                    "off"
                } else {
                    "on"
                },
            )
            .stdin(Stdio::null())
            .output()
            .expect("running scripts/lab.sh")
    }

    /// The lab's prefix: namespaces are `PREFIX-client`, `PREFIX-dir`, ….
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A lab interface's name, e.g. `iface("ext")` for the director's VIP side.
    pub fn iface(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    /// The lab's state directory (logs, pid files, masqd's socket).
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// One of the lab's binaries.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    fn ns(&self, ns: &str) -> String {
        format!("{}-{ns}", self.prefix)
    }

    /// Runs a command in a lab namespace (`client`, `dir`, `rs1`, `rs2`, `sw`; routed:
    /// `lan`, `router`, `rclient`), killed if it runs longer than two minutes.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["-k", "5", EXEC_TIMEOUT_SECS, "ip", "netns", "exec"])
            .arg(self.ns(ns))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {args:?} in {}: {e}", self.ns(ns)))
    }

    /// Starts a command in a lab namespace in the background; its output (stdout and
    /// stderr) goes to `STATE/<label>.out`. It is stopped when the returned value drops.
    pub fn spawn(&self, ns: &str, label: &str, args: &[&str]) -> Background {
        let out = self.state.join(format!("{label}.out"));
        let file =
            std::fs::File::create(&out).expect("creating a background command's output file");
        let child = Command::new("ip")
            .args(["netns", "exec"])
            .arg(self.ns(ns))
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("duplicating a file handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {args:?} in {}: {e}", self.ns(ns)));
        Background { child, out }
    }

    /// `curl` from the client namespace; the body.
    ///
    /// # Panics
    ///
    /// When curl fails (no answer within 5 s, connection refused or reset, …).
    pub fn curl(&self, url: &str) -> String {
        self.curl_with("client", &[], url)
    }

    /// `curl -sS --max-time 5 EXTRA… URL` from namespace `ns`; its stdout.
    ///
    /// # Panics
    ///
    /// When curl fails.
    pub fn curl_with(&self, ns: &str, extra: &[&str], url: &str) -> String {
        let mut args = vec!["curl", "-sS", "--max-time", "5"];
        args.extend_from_slice(extra);
        args.push(url);
        let out = self.exec(ns, &args);
        assert!(
            out.status.success(),
            "{} failed in {}:\n{}",
            args.join(" "),
            self.ns(ns),
            describe(&out)
        );
        String::from_utf8(out.stdout).expect("curl's output is UTF-8")
    }

    /// `masqadm ARGS…`, insisting that it succeeds with nothing on stderr; its stdout.
    pub fn masqadm_ok(&self, args: &[&str]) -> String {
        let (stdout, stderr, code) = self.masqadm(args);
        assert!(
            code == 0 && stderr.is_empty(),
            "masqadm {} failed: exit {code}\nstdout: {stdout}\nstderr: {stderr}",
            args.join(" ")
        );
        stdout
    }

    /// `masqadm ARGS…` against this lab's masqd: (stdout, stderr, exit code).
    pub fn masqadm(&self, args: &[&str]) -> (String, String, i32) {
        self.masqadm_stdin(args, "")
    }

    /// `masqadm ARGS… < stdin` (for `-R`): (stdout, stderr, exit code).
    pub fn masqadm_stdin(&self, args: &[&str], stdin: &str) -> (String, String, i32) {
        let mut child = Command::new(self.bin("masqadm"))
            .arg("--socket")
            .arg(self.state.join("masqd.sock"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting masqadm");
        let mut input = child.stdin.take().expect("masqadm's stdin");
        // masqadm reads its standard input only for -R; a closed pipe is fine otherwise.
        let _ = input.write_all(stdin.as_bytes());
        drop(input);
        let out = child.wait_with_output().expect("waiting for masqadm");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    /// Entries `masqadm -L -n -c` lists: connections and persistence templates.
    pub fn listed_entries(&self) -> u64 {
        let (out, _, code) = self.masqadm(&["-L", "-n", "-c"]);
        assert_eq!(code, 0, "masqadm -L -n -c");
        out.lines().skip(2).count() as u64
    }

    /// The value of the first sample of masqd's `/metrics` at `addr` (as masqd was started
    /// with `--metrics ADDR`) whose line starts with `line_start`: see [`sample`]. A scrape
    /// that fails fails the test, so a broken endpoint never reads as a count of 0.
    pub fn metric(&self, addr: &str, line_start: &str) -> u64 {
        let out = self.exec("dir", &["curl", "-sf", &format!("http://{addr}/metrics")]);
        assert!(out.status.success(), "scraping {addr}: {}", describe(&out));
        sample(&String::from_utf8_lossy(&out.stdout), line_start)
    }

    /// Real server `n`'s connection log (`<ms> client=IP:PORT local=IP:PORT` lines).
    pub fn rs_log(&self, n: u8) -> String {
        std::fs::read_to_string(self.state.join(format!("rs{n}.log"))).unwrap_or_default()
    }

    /// The pids of the lab's daemons, from their pid files.
    pub fn daemon_pids(&self) -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir(&self.state) else {
            return Vec::new();
        };
        dir.flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|s| s.trim().parse().ok())
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.state.join("masqd.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- lab {}: the end of masqd.log\n{}",
                self.prefix,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
            eprintln!(
                "--- lab {}: status\n{}",
                self.prefix,
                describe(&self.script(&["status"]))
            );
        }
        let out = self.script(&["down"]);
        if !out.status.success() {
            eprintln!(
                "scripts/lab.sh down failed for lab {}:\n{}",
                self.prefix,
                describe(&out)
            );
        }
    }
}

/// A command running in the background in a lab namespace.
pub struct Background {
    child: Child,
    out: PathBuf,
}

impl Background {
    /// What it has printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits (up to `within`) until its output contains `text`.
    ///
    /// # Panics
    ///
    /// When it exits or `within` passes first.
    pub fn wait_for_output(&mut self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.output().contains(text) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "exited ({status}) before printing {text:?}:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{text:?} not printed within {within:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it (SIGTERM, then SIGKILL after 5 s) and returns how it ended.
    pub fn stop(mut self) -> Option<ExitStatus> {
        self.terminate()
    }

    fn terminate(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        // `ip netns exec` execs the command, so this pid is the command itself.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The value of the first sample in a Prometheus exposition whose line starts with
/// `line_start`; 0 when there is none (a labelled counter appears once it first counts).
pub fn sample(exposition: &str, line_start: &str) -> u64 {
    exposition
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
