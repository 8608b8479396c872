//! Start, stop, crash, as an operator having a bad day meets them: a second masqd started
//! on a running one's socket, a `--socket` naming a file that is not a socket, a stop
//! (SIGTERM, SIGHUP) while clients are attached or a large table is being listed, a masqd
//! killed without a chance to clean up (SIGKILL, a panicking packet thread) and the start
//! after it, the rules saved while health checks hold a real server out, and a trace
//! client too many.
//!
//! A refused start must change nothing: the running daemon keeps its socket, its kernel
//! guard and its traffic, and a file given as `--socket` is never replaced. A stop takes
//! at most a second whatever is attached. A crash leaves no half-alive director, and the
//! next start removes what the dead one left.
//!
//! Needs root, iproute2, nftables and hping3 (`scripts/install-deps.sh`); the panic test
//! needs a debug build of masqd (its fault injection is compiled only there), which is
//! what `cargo build --workspace --bins` makes.

mod common;

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{describe, Lab, LabOptions, RS1_IP, RS2_IP, VIP};

const SIGABRT: i32 = 6;

/// The rules the tests start from (as `masqadm -S -n` prints them).
const SEED: &str = "-A -t 192.168.0.10:80 -s wrr\n-a -t 192.168.0.10:80 -r 192.168.100.7:80 -m -w 3\n-a -t 192.168.0.10:80 -r 192.168.100.9:80 -m -w 1\n";

fn seed(lab: &Lab) {
    let (_, stderr, code) = lab.masqadm_stdin(&["-R"], SEED);
    assert_eq!((code, stderr.as_str()), (0, ""), "masqadm -R");
}

/// `n` requests to the VIP, all of which must succeed.
fn requests_succeed(lab: &Lab, n: usize, after: &str) {
    let mut failed = Vec::new();
    for i in 0..n {
        let out = lab.exec(
            "client",
            &["curl", "-sS", "--max-time", "3", &format!("http://{VIP}/")],
        );
        if !out.status.success() {
            failed.push(format!("request {i}: {}", describe(&out)));
        }
    }
    assert!(failed.is_empty(), "after {after}:\n{}", failed.join("\n"));
}

/// A masqd this test starts in the lab's director namespace, on the lab's interfaces (the
/// lab's own one stopped, or still running for a refused start). Stopped with SIGTERM,
/// then SIGKILL, when it drops.
struct Masqd {
    child: Child,
    log: PathBuf,
}

impl Masqd {
    /// Starts masqd on the lab's socket with `extra` arguments, logging to
    /// `STATE/<label>.log`, and waits until it answers there.
    ///
    /// # Panics
    ///
    /// When it exits or does not answer within 20 s.
    fn start(lab: &Lab, label: &str, extra: &[&str]) -> Masqd {
        let mut masqd = Masqd::spawn(lab, label, extra, &[]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while lab.masqadm(&["-L", "-n"]).2 != 0 {
            if let Ok(Some(status)) = masqd.child.try_wait() {
                panic!("masqd exited ({status}) at start:\n{}", masqd.log());
            }
            assert!(
                Instant::now() < deadline,
                "masqd did not answer within 20 s:\n{}",
                masqd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        masqd
    }

    /// Starts masqd on the lab's socket with `extra` arguments and `env`.
    fn spawn(lab: &Lab, label: &str, extra: &[&str], env: &[(&str, &str)]) -> Masqd {
        Masqd::spawn_on(lab, label, &lab.state_dir().join("masqd.sock"), extra, env)
    }

    /// Starts masqd on `socket` with `extra` arguments and `env`, logging to
    /// `STATE/<label>.log`.
    fn spawn_on(
        lab: &Lab,
        label: &str,
        socket: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Masqd {
        let log = lab.state_dir().join(format!("{label}.log"));
        let out = File::create(&log).expect("masqd's log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &format!("{}-dir", lab.prefix())])
            .arg(lab.bin("masqd"))
            .args([
                "--vip-iface",
                &lab.iface("ext"),
                "--dip-iface",
                &lab.iface("int"),
            ])
            .arg("--socket")
            .arg(socket)
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("a log file handle"))
            .stderr(out)
            .spawn()
            .expect("starting masqd");
        Masqd { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        signal_pid(self.child.id(), signal);
    }

    /// Waits up to `within` for it to exit.
    fn exited_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, and waits for it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Masqd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {}\n{}", self.log.display(), self.log());
        }
        if self.child.try_wait().is_ok_and(|s| s.is_none()) {
            self.signal("-TERM");
            if self.exited_within(Duration::from_secs(5)).is_none() {
                self.kill();
            }
        }
    }
}

fn signal_pid(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill {signal} {pid}");
}

fn lab_masqd_pid(lab: &Lab) -> u32 {
    std::fs::read_to_string(lab.state_dir().join("masqd.pid"))
        .expect("masqd's pid file")
        .trim()
        .parse()
        .expect("a pid")
}

/// Whether any thread of process `pid` still runs (its leader may be a zombie while the
/// others still release what they held: sockets, the instance lock).
fn running(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            stat.rsplit(") ")
                .next()
                .is_some_and(|s| !s.starts_with('Z') && !s.starts_with('X'))
        })
    })
}

/// Sends `signal` to the masqd `lab.sh` started and waits (up to 5 s) until it is gone;
/// how long that took.
fn stop_lab_masqd(lab: &Lab, signal: &str) -> Duration {
    let pid = lab_masqd_pid(lab);
    let asked = Instant::now();
    signal_pid(pid, signal);
    while running(pid) {
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "masqd survived kill {signal} for 5 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    asked.elapsed()
}

/// The kernel guard tables in the director's namespace.
fn guard_tables(lab: &Lab) -> Vec<String> {
    let out = lab.exec("dir", &["nft", "list", "tables", "netdev"]);
    assert!(out.status.success(), "nft list tables: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("table netdev "))
        .filter(|t| t.starts_with("masq_guard"))
        .map(String::from)
        .collect()
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_second_masqd_on_the_same_socket_changes_nothing() {
    let lab = Lab::up();
    seed(&lab);
    requests_succeed(&lab, 4, "the first start");
    let socket = lab.state_dir().join("masqd.sock");
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let socket_inode = inode(&socket);
    let tables_before = lab.exec("dir", &["nft", "list", "tables"]);

    let started = Instant::now();
    let mut second = Masqd::spawn(&lab, "masqd-second", &[], &[]);
    let status = second
        .exited_within(Duration::from_secs(20))
        .expect("the second masqd ends");
    let log = second.log();
    eprintln!(
        "the second masqd ended after {:?} ({status}): {log}",
        started.elapsed()
    );
    assert!(!status.success(), "the second masqd must refuse to start");
    assert!(
        log.contains("already"),
        "it says another masqd runs there: {log}"
    );

    assert!(socket.exists(), "the first masqd's socket is still there");
    assert_eq!(inode(&socket), socket_inode, "and it is the same socket");
    lab.masqadm_ok(&["-L", "-n"]);
    let tables_after = lab.exec("dir", &["nft", "list", "tables"]);
    assert_eq!(
        String::from_utf8_lossy(&tables_after.stdout),
        String::from_utf8_lossy(&tables_before.stdout),
        "the kernel guard is untouched"
    );
    requests_succeed(&lab, 4, "a refused second start");
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn sigterm_stops_masqd_within_a_second_with_clients_attached() {
    let lab = Lab::up_with(LabOptions {
        masqd_args: &["--web", "127.0.0.1:8090", "--metrics", "127.0.0.1:9106"],
        ..LabOptions::default()
    });
    seed(&lab);
    let socket = lab.state_dir().join("masqd.sock");
    let socket = socket.to_string_lossy();
    let masqadm = lab.bin("masqadm");
    let masqadm = masqadm.to_string_lossy();
    let mut trace = lab.spawn("dir", "trace", &[&masqadm, "--socket", &socket, "--trace"]);
    let capture_file = lab.state_dir().join("slip.pcapng");
    let _capture = lab.spawn(
        "dir",
        "capture",
        &[
            &masqadm,
            "--socket",
            &socket,
            "--capture",
            &capture_file.to_string_lossy(),
        ],
    );
    // Idle connections to the page and the metrics, as a browser tab or a stuck scraper.
    let _idle = lab.spawn(
        "dir",
        "idle",
        &[
            "/usr/bin/python3",
            "-c",
            "import socket, time\n\
             held = [socket.create_connection(('127.0.0.1', p)) for p in (8090, 8090, 9106, 9106)]\n\
             print('holding', flush=True)\n\
             time.sleep(30)\n",
        ],
    );
    lab.curl(&format!("http://{VIP}/"));
    trace.wait_for_output("client→VIP", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));

    let took = stop_lab_masqd(&lab, "-TERM");
    eprintln!("masqd stopped {took:?} after SIGTERM with a trace, a capture and idle HTTP clients attached");
    assert!(
        took <= Duration::from_secs(1),
        "masqd took {took:?} to stop"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_socket_path_that_is_not_a_socket_is_refused_and_left_alone() {
    let lab = Lab::up();
    seed(&lab);
    let precious = lab.state_dir().join("precious.conf");
    std::fs::write(&precious, "an operator's file\n").expect("a file");
    let tables_before = lab.exec("dir", &["nft", "list", "tables"]);
    let mut masqd = Masqd::spawn_on(&lab, "masqd-on-a-file", &precious, &[], &[]);
    let status = masqd
        .exited_within(Duration::from_secs(20))
        .expect("masqd ends");
    let log = masqd.log();
    assert_eq!(status.code(), Some(1), "{status}: {log}");
    assert!(
        log.contains(&format!(
            "--socket {} is a regular file, not a socket",
            precious.display()
        )),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(&precious).expect("the file is still there"),
        "an operator's file\n"
    );
    let lock = lab.state_dir().join("precious.conf.lock");
    assert!(!lock.exists(), "nothing was created beside it");
    let tables_after = lab.exec("dir", &["nft", "list", "tables"]);
    assert_eq!(tables_after.stdout, tables_before.stdout);
    requests_succeed(&lab, 4, "a refused start on a file");
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn sighup_stops_masqd_cleanly() {
    let lab = Lab::up();
    seed(&lab);
    assert_eq!(guard_tables(&lab).len(), 1, "the kernel guard is installed");
    let took = stop_lab_masqd(&lab, "-HUP");
    assert!(
        took <= Duration::from_secs(1),
        "masqd took {took:?} to stop"
    );
    let log = std::fs::read_to_string(lab.state_dir().join("masqd.log")).unwrap_or_default();
    assert!(
        log.contains("SIGHUP: stopping (masqd does not reload on SIGHUP yet)"),
        "{log}"
    );
    assert_eq!(
        guard_tables(&lab),
        Vec::<String>::new(),
        "its guard table went with it"
    );
    assert!(
        !lab.state_dir().join("masqd.sock").exists(),
        "and its socket"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn the_start_after_a_sigkill_removes_what_the_killed_masqd_left() {
    let lab = Lab::up();
    seed(&lab);
    requests_succeed(&lab, 4, "the first start");
    let tables = guard_tables(&lab);
    assert_eq!(tables.len(), 1, "one guard table: {tables:?}");
    assert!(tables[0].starts_with("masq_guard_"), "{tables:?}");

    stop_lab_masqd(&lab, "-KILL");
    assert_eq!(
        guard_tables(&lab),
        tables,
        "a SIGKILLed masqd cannot remove its table"
    );
    let socket = lab.state_dir().join("masqd.sock");
    assert!(socket.exists(), "nor its socket");

    let mut second = Masqd::start(&lab, "masqd-2", &[]);
    let log = second.log();
    assert!(
        log.contains(&format!(
            "removed the kernel guard table netdev {} that a masqd which did not stop cleanly left behind",
            tables[0]
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("replaced the stale socket {}", socket.display())),
        "{log}"
    );
    seed(&lab);
    requests_succeed(&lab, 4, "the start after a SIGKILL");
    assert_eq!(
        guard_tables(&lab),
        tables,
        "the same instance, the same table"
    );

    // Killed again, and started without a guard: the killed one's rules go all the same.
    second.kill();
    let _third = Masqd::start(&lab, "masqd-3", &["--kernel-guard", "off"]);
    assert_eq!(guard_tables(&lab), Vec::<String>::new());
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_panicking_packet_thread_takes_masqd_down_and_the_next_start_serves() {
    let lab = Lab::up();
    stop_lab_masqd(&lab, "-TERM");
    let rules = lab.state_dir().join("lab.rules");
    std::fs::write(&rules, SEED).expect("the rules file");
    let rules_arg = rules.to_string_lossy();
    let args = ["--rules", &rules_arg, "--save-on-exit"];
    let mut faulty = Masqd::spawn(
        &lab,
        "masqd-faulty",
        &args,
        &[("MASQD_FAULT", "panic-packet-thread")],
    );
    // The first packet thread to receive a frame panics: the real servers' answers to
    // masqd's ARP probes at start, or the client's request.
    let _ = lab.exec(
        "client",
        &["curl", "-s", "--max-time", "2", &format!("http://{VIP}/")],
    );
    let Some(status) = faulty.exited_within(Duration::from_secs(5)) else {
        panic!(
            "masqd still runs 5 s after a packet thread panicked: it is half alive (or it was built without debug assertions, where MASQD_FAULT does not exist):\n{}",
            faulty.log()
        );
    };
    eprintln!("masqd ended with {status}");
    assert!(!status.success(), "{status}");
    assert_eq!(status.signal(), Some(SIGABRT), "it aborts: {status}");
    let log = faulty.log();
    assert!(
        log.contains("panicked") && log.contains("MASQD_FAULT=panic-packet-thread"),
        "the log says why: {log}"
    );
    // A crash is no clean stop: the rules file is as the operator wrote it.
    assert_eq!(std::fs::read_to_string(&rules).unwrap(), SEED);
    assert_eq!(
        guard_tables(&lab).len(),
        1,
        "the crashed one's table is left"
    );

    let _next = Masqd::start(&lab, "masqd-next", &["--rules", &rules_arg]);
    requests_succeed(&lab, 4, "the start after a crash");
    assert_eq!(guard_tables(&lab).len(), 1);
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_sigkilled_xdp_masqd_leaves_no_program_attached() {
    let lab = Lab::up_with(LabOptions {
        offloads_off: true,
        masqd_args: &["--io", "xdp"],
        ..LabOptions::default()
    });
    let ifaces = [lab.iface("ext"), lab.iface("int")];
    let link_show = |iface: &str| {
        let out = lab.exec("dir", &["ip", "-d", "link", "show", iface]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for iface in &ifaces {
        assert!(
            link_show(iface).contains("prog/xdp"),
            "{}",
            link_show(iface)
        );
    }
    stop_lab_masqd(&lab, "-KILL");
    // The programs hang on BPF links whose descriptors died with the process; the kernel
    // releases a link from a work queue, a moment after.
    for iface in &ifaces {
        let deadline = Instant::now() + Duration::from_secs(2);
        while link_show(iface).contains("prog/xdp") {
            assert!(
                Instant::now() < deadline,
                "{iface} keeps an XDP program 2 s after masqd was killed:\n{}",
                link_show(iface)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let next = Masqd::start(&lab, "masqd-xdp", &["--io", "xdp"]);
    for iface in &ifaces {
        assert!(
            next.log()
                .contains(&format!("{iface}: XDP program attached in Native mode")),
            "{}",
            next.log()
        );
    }
    seed(&lab);
    requests_succeed(&lab, 4, "the XDP start after a SIGKILL");
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn save_on_exit_keeps_the_configured_weight_of_a_quiesced_server() {
    let lab = Lab::up();
    stop_lab_masqd(&lab, "-TERM");
    let rules = lab.state_dir().join("lab.rules");
    std::fs::write(&rules, SEED).expect("the rules file");
    let rules_arg = rules.to_string_lossy();
    let mut masqd = Masqd::start(
        &lab,
        "masqd-health",
        &[
            "--rules",
            &rules_arg,
            "--save-on-exit",
            "--health-check",
            "tcp",
            "--health-interval",
            "0.5",
            "--health-fall",
            "2",
        ],
    );
    let rs1: u32 = std::fs::read_to_string(lab.state_dir().join("rs1-http.pid"))
        .expect("RS1's pid file")
        .trim()
        .parse()
        .expect("a pid");
    signal_pid(rs1, "-TERM");
    let quiesced = format!("-r {RS1_IP}:80 -m -w 0");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !lab.masqadm(&["-S", "-n"]).0.contains(&quiesced) {
        assert!(
            Instant::now() < deadline,
            "RS1 was not quiesced:\n{}",
            lab.masqadm(&["-L", "-n"]).0
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    masqd.signal("-TERM");
    let status = masqd
        .exited_within(Duration::from_secs(1))
        .expect("masqd stops within a second");
    assert!(status.success(), "{status}\n{}", masqd.log());
    let saved = std::fs::read_to_string(&rules).expect("the saved rules");
    assert_eq!(
        saved, SEED,
        "the weights as configured, not RS1's weight 0 from the health checks"
    );
}

/// A UDP flood at the VIP's port 7 from random spoofed sources, for `secs` at most.
fn udp_flood(lab: &Lab, label: &str, secs: u32) -> common::Background {
    let secs = secs.to_string();
    lab.spawn(
        "client",
        label,
        &[
            "timeout",
            "-s",
            "INT",
            &secs,
            "hping3",
            "--flood",
            "--udp",
            "--rand-source",
            "-p",
            "7",
            "-d",
            "10",
            VIP,
        ],
    )
}

/// Sum of the InActConn column of `masqadm -L -n` (UDP entries count there), and how long
/// the listing took.
fn udp_entries(lab: &Lab) -> (u64, Duration) {
    let asked = Instant::now();
    let (listing, stderr, code) = lab.masqadm(&["-L", "-n"]);
    let took = asked.elapsed();
    assert_eq!(code, 0, "masqadm -L -n: {stderr}");
    let entries = listing
        .lines()
        .filter(|l| l.contains("->") && l.contains("192.168.100."))
        .filter_map(|l| l.split_whitespace().nth(5)?.parse::<u64>().ok())
        .sum();
    (entries, took)
}

#[test]
#[ignore = "needs root, network namespaces and hping3: scripts/test.sh runs it"]
fn entries_expire_on_time_and_masqadm_answers_while_a_large_table_is_listed() {
    common::require_program("hping3", "hping3");
    const UDP_TIMEOUT_SECS: u64 = 8;
    const ENTRIES: u64 = 100_000;
    let lab = Lab::up_with(LabOptions {
        masqd_args: &["--max-conns", "400000"],
        exclusive: true,
        ..LabOptions::default()
    });
    for args in [
        &["--set", "0", "0", "8"][..],
        &["-A", "-u", "192.168.0.10:7", "-s", "rr"][..],
        &["-a", "-u", "192.168.0.10:7", "-r", RS1_IP, "-m"][..],
        &["-a", "-u", "192.168.0.10:7", "-r", RS2_IP, "-m"][..],
    ] {
        lab.masqadm_ok(args);
    }
    // A UDP entry per spoofed source, until there are ENTRIES of them (at most 20 s).
    let flood = udp_flood(&lab, "udp-flood", 20);
    let started = Instant::now();
    let mut entries = 0;
    while entries < ENTRIES && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(250));
        entries = udp_entries(&lab).0;
    }
    drop(flood);
    eprintln!(
        "{entries} UDP entries after a {:?} flood",
        started.elapsed()
    );
    assert!(entries >= ENTRIES, "the flood made only {entries} entries");

    // Full listings of the table, back to back, while the expiry must keep time.
    let masqadm = lab.bin("masqadm");
    let socket = lab.state_dir().join("masqd.sock");
    let lister = lab.spawn(
        "dir",
        "lister",
        &[
            "timeout",
            "60",
            "bash",
            "-c",
            &format!(
                "while :; do {} --socket {} -L -c -n | wc -l; done",
                masqadm.display(),
                socket.display()
            ),
        ],
    );
    // masqd may still be working through frames the flood queued: an entry is made at
    // the latest when the count last grew, and gone UDP_TIMEOUT_SECS later, give or take
    // the housekeeping's second and a sample's 200 ms.
    let allowed = Duration::from_secs(UDP_TIMEOUT_SECS) + Duration::from_millis(2500);
    let (mut last_growth, mut most) = (Instant::now(), entries);
    let (mut left, mut slowest) = (entries, Duration::ZERO);
    while left > 0 && last_growth.elapsed() < allowed {
        std::thread::sleep(Duration::from_millis(200));
        let (n, took) = udp_entries(&lab);
        if n > left {
            last_growth = Instant::now();
            most = most.max(n);
        }
        (left, slowest) = (n, slowest.max(took));
    }
    let gone_after = last_growth.elapsed();
    let listings = lister.output().lines().count();
    eprintln!(
        "{most} entries with a {UDP_TIMEOUT_SECS} s timeout: {left} left {gone_after:?} after the last one was made; {listings} full listings meanwhile, the slowest masqadm -L -n took {slowest:?}"
    );
    assert!(listings >= 1, "no full listing finished");
    assert_eq!(
        left, 0,
        "entries still there {gone_after:?} after the last one was made, with a {UDP_TIMEOUT_SECS} s timeout"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "masqadm -L -n took {slowest:?} while the table was listed"
    );

    // A stop while the table is being listed again: within a second all the same.
    let flood = udp_flood(&lab, "udp-flood-2", 2);
    std::thread::sleep(Duration::from_secs(3));
    drop(flood);
    let (entries, _) = udp_entries(&lab);
    let took = stop_lab_masqd(&lab, "-TERM");
    drop(lister);
    eprintln!("masqd stopped {took:?} after SIGTERM while {entries} entries were listed");
    assert!(
        took <= Duration::from_secs(1),
        "masqd took {took:?} to stop"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_trace_client_beyond_the_bound_is_refused() {
    let lab = Lab::up();
    seed(&lab);
    let socket = lab.state_dir().join("masqd.sock");
    let (socket, masqadm) = (socket.to_string_lossy(), lab.bin("masqadm"));
    let masqadm = masqadm.to_string_lossy();
    let mut traces: Vec<_> = (0..8)
        .map(|i| {
            lab.spawn(
                "dir",
                &format!("trace-{i}"),
                &[&masqadm, "--socket", &socket, "--trace"],
            )
        })
        .collect();
    // All eight attached: each shows the request.
    lab.curl(&format!("http://{VIP}/"));
    for trace in &mut traces {
        trace.wait_for_output("client→VIP", Duration::from_secs(10));
    }
    // Bounded, so that a masqd that serves it anyway fails the test instead of hanging it.
    let ninth = lab.exec(
        "dir",
        &["timeout", "5", &masqadm, "--socket", &socket, "--trace"],
    );
    let stderr = String::from_utf8_lossy(&ninth.stderr);
    assert_eq!(
        ninth.status.code(),
        Some(1),
        "a ninth trace is refused: {}",
        describe(&ninth)
    );
    assert!(
        stderr.contains("masqd already serves 8 traces and captures"),
        "{stderr}"
    );
    // One ends: the next one is served, once masqd's stream has found its reader gone
    // (at its next write: a keep-alive comes every second).
    drop(traces.pop());
    std::thread::sleep(Duration::from_millis(1500));
    let mut ninth = lab.spawn(
        "dir",
        "trace-9",
        &[&masqadm, "--socket", &socket, "--trace"],
    );
    lab.curl(&format!("http://{VIP}/"));
    ninth.wait_for_output("client→VIP", Duration::from_secs(10));
}
