//! The simulated lab end to end, without root: `masqd --simulate seed` and `masqadm`
//! (unchanged) on its control socket. The seed sequence of docs/lab.md gives the real
//! lab's picks and listings, byte for byte (the same texts as tests/lab_nat.rs, from
//! real ipvsadm); `--trace` shows the four stages; the same commands give the same
//! connection listing on every run; `--check` skips the host checks and reports what the
//! director saw; and masqd runs as an unprivileged user without ever opening a packet
//! socket.
//!
//! Needs the binaries of this target directory: `cargo build --workspace --bins` first.

mod common;

use common::seed::WRR_RULES;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const SERVICE: &str = "192.168.0.10:80";
const RS1: &str = "RS1 192.168.100.7";
const RS2: &str = "RS2 192.168.100.9";
/// The uid and gid of `nobody`, whom masqd runs as when the test runs as root.
const NOBODY: u32 = 65534;

/// The real lab's transcript of the seed sequence under kernel IPVS: the commands
/// (`# ipvsadm …`), ipvsadm's output after each, and the real servers that answered
/// (`PICKS NAME: 9 7 …`, by the last byte of their address).
const TRANSCRIPT: &str = include_str!("../crates/ctl/tests/ipvsadm/data/a.txt");

/// What real ipvsadm printed for the `nth` (from 0) `# ipvsadm COMMAND` of the transcript.
fn ipvsadm_printed(command: &str, nth: usize) -> String {
    let heading = format!("# ipvsadm {command}");
    let mut lines = TRANSCRIPT.lines();
    for _ in 0..=nth {
        lines
            .find(|l| *l == heading)
            .unwrap_or_else(|| panic!("`{heading}' {} times in a.txt", nth + 1));
    }
    lines
        .take_while(|l| !l.starts_with("# ") && !l.starts_with("conn ") && !l.starts_with("PICKS "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The answers of the connections of `PICKS name` in the transcript, as the lab's web
/// servers give them.
fn real_picks(name: &str) -> Vec<&'static str> {
    let prefix = format!("PICKS {name}: ");
    let line = TRANSCRIPT
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in a.txt"));
    line.split_whitespace()
        .map(|last| match last {
            "7" => RS1,
            "9" => RS2,
            other => panic!("a pick of .{other} in a.txt"),
        })
        .collect()
}

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A `masqd --simulate seed` of this test's own, in a directory of its own; stopped and
/// removed when dropped.
struct SimulatedLab {
    masqd: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl SimulatedLab {
    /// Starts masqd as this test's user.
    fn start() -> SimulatedLab {
        SimulatedLab::start_as(&[], None)
    }

    /// Starts masqd through `wrapper` (a command that runs the rest of its arguments),
    /// with its directory owned by `owner` if given, and waits (up to 5 s) for its
    /// control socket.
    fn start_as(wrapper: &[&str], owner: Option<u32>) -> SimulatedLab {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("masq-sim-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the socket");
        if let Some(uid) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).expect("chown");
        }
        let socket = dir.join("masqd.sock");
        let log = std::fs::File::create(dir.join("masqd.log")).expect("masqd's log");
        let masqd = common::bin_dir().join("masqd");
        let mut argv: Vec<&str> = wrapper.to_vec();
        let socket_arg = socket.to_str().expect("a UTF-8 path");
        argv.extend([
            masqd.to_str().expect("a UTF-8 path"),
            "--simulate",
            "seed",
            "--socket",
            socket_arg,
        ]);
        let child = Command::new(argv[0])
            .args(&argv[1..])
            .env("MASQ_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting masqd --simulate");
        let lab = SimulatedLab {
            masqd: child,
            dir,
            socket,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !lab.socket.exists() {
            assert!(
                Instant::now() < deadline,
                "masqd --simulate did not bind its socket within 5 s:\n{}",
                lab.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        lab
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("masqd.log")).unwrap_or_default()
    }

    fn masqadm(&self, args: &[&str]) -> (String, String, i32) {
        let out = Command::new(common::bin_dir().join("masqadm"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("running masqadm");
        (
            String::from_utf8(out.stdout).expect("UTF-8"),
            String::from_utf8(out.stderr).expect("UTF-8"),
            out.status.code().unwrap_or(-1),
        )
    }

    /// `masqadm ARGS`, which must succeed and say nothing on stderr: its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (stdout, stderr, code) = self.masqadm(args);
        assert_eq!(
            (stderr.as_str(), code),
            ("", 0),
            "masqadm {}\nmasqd's log:\n{}",
            args.join(" "),
            self.log()
        );
        stdout
    }

    /// The answers of `--sim-request --count N`, one per connection.
    fn requests(&self, count: usize) -> Vec<String> {
        self.ok(&["--sim-request", "--count", &count.to_string()])
            .lines()
            .map(String::from)
            .collect()
    }

    fn pid(&self) -> u32 {
        self.masqd.id()
    }
}

impl Drop for SimulatedLab {
    fn drop(&mut self) {
        // SIGTERM, as a service manager stops masqd; it removes its socket.
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.masqd.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.masqd.kill();
        let _ = self.masqd.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The seed: `-A -t VIP:80 -s rr`, then RS1 and RS2 with `-m`, in that order.
fn seed_rr(lab: &SimulatedLab) {
    lab.ok(&["-A", "-t", SERVICE, "-s", "rr"]);
    lab.ok(&["-a", "-t", SERVICE, "-r", "192.168.100.7", "-m"]);
    lab.ok(&["-a", "-t", SERVICE, "-r", "192.168.100.9", "-m"]);
}

/// docs/lab.md's seed sequence, checked against the real lab's answers and listings.
fn seed_sequence(lab: &SimulatedLab) {
    seed_rr(lab);
    // rr starts from the most recently added real server, RS2.
    let mut rr = lab.requests(4);
    assert_eq!(rr, [RS2, RS1, RS2, RS1], "rr picks");
    // The real lab made six connections before its listing.
    rr.extend(lab.requests(2));
    assert_eq!(rr, real_picks("a-rr"), "rr picks against the real lab's");
    assert_eq!(
        lab.ok(&["-L", "-n"]),
        ipvsadm_printed("-L -n", 0),
        "-L -n after rr"
    );

    lab.ok(&["-E", "-t", SERVICE, "-s", "wrr"]);
    lab.ok(&["-e", "-t", SERVICE, "-r", "192.168.100.7", "-m", "-w", "3"]);
    let wrr = lab.requests(8);
    assert_eq!(
        wrr,
        [RS2, RS1, RS1, RS1, RS2, RS1, RS1, RS1],
        "wrr picks with RS1 at weight 3"
    );
    assert_eq!(wrr, real_picks("a-wrr"), "wrr picks against the real lab's");
    assert_eq!(
        lab.ok(&["-L", "-n"]),
        ipvsadm_printed("-L -n", 1),
        "-L -n after wrr"
    );
    assert_eq!(lab.ok(&["-S", "-n"]), WRR_RULES, "-S -n");
}

#[test]
fn the_seed_sequence_gives_the_real_labs_picks_and_listings() {
    let lab = SimulatedLab::start();
    seed_sequence(&lab);
    // Every closed connection waits in TIME_WAIT, where -L -c shows it.
    let conns = lab.ok(&["-L", "-c", "-n"]);
    assert_eq!(
        conns.matches(" TIME_WAIT ").count(),
        14,
        "-L -c -n:\n{conns}"
    );
}

#[test]
fn the_same_commands_give_the_same_connection_listing() {
    let listing = || {
        let lab = SimulatedLab::start();
        seed_sequence(&lab);
        lab.ok(&["-L", "-c", "-n"])
    };
    let (first, second) = (listing(), listing());
    assert_eq!(first, second, "two runs of the same commands");
    assert!(first.starts_with("IPVS connection entries\n"), "{first}");
}

#[test]
fn a_request_the_lab_cannot_make_is_refused_with_a_reason() {
    let lab = SimulatedLab::start();
    seed_rr(&lab);
    let (stdout, stderr, code) = lab.masqadm(&["--sim-request", "--from", "192.168.0.7"]);
    assert_eq!(stdout, "");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no simulated client has the address 192.168.0.7"),
        "{stderr}"
    );
    let (_, stderr, code) = lab.masqadm(&["--sim-request", "--count", "0"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--count wants a number from 1 to"),
        "{stderr}"
    );
    // A service the director does not have: the VIP's port is not answered.
    let answers = lab.ok(&["--sim-request", "-t", "192.168.0.10:8080"]);
    assert_eq!(answers, "timed out after 2 s without an answer\n");
}

#[test]
fn the_trace_shows_the_four_stages_with_the_labs_addresses() {
    let lab = SimulatedLab::start();
    seed_rr(&lab);
    let mut trace = Command::new(common::bin_dir().join("masqadm"))
        .arg("--socket")
        .arg(&lab.socket)
        .args(["--trace", "-t", SERVICE, "--count", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("masqadm --trace");
    // The trace may attach after the first request: ask again until it has shown one
    // connection through its fourth stage and ended (at most 50 times).
    let mut asked = 0;
    while trace.try_wait().expect("the trace's status").is_none() {
        assert!(asked < 50, "masqadm --trace showed no whole connection");
        lab.requests(1);
        asked += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = trace.wait_with_output().expect("the trace's output");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    for stage in [
        "1 client→VIP       SIP=192.168.0.101:",
        "2 director→RS      SIP=192.168.0.101:",
        "3 RS→director      SIP=192.168.100.",
        "4 director→client  SIP=192.168.0.10:80",
    ] {
        assert!(text.contains(stage), "no `{stage}' in the trace:\n{text}");
    }
    assert!(text.contains("state NONE → SYN_RECV"), "{text}");
}

#[test]
fn the_check_skips_the_host_and_reports_what_the_director_saw() {
    let lab = SimulatedLab::start();
    seed_rr(&lab);
    lab.requests(2);
    let (stdout, stderr, code) = lab.masqadm(&["--check"]);
    assert_eq!((stderr.as_str(), code), ("", 0), "{stdout}");
    assert!(
        stdout.starts_with("ok      host checks skipped: the lab is simulated"),
        "{stdout}"
    );
    assert!(!stdout.contains("PROBLEM"), "{stdout}");
    assert!(
        stdout.ends_with("masq check: no problems found\n"),
        "{stdout}"
    );

    // A real server on a port nothing listens on refuses: the director's own finding.
    lab.ok(&["-a", "-t", SERVICE, "-r", "192.168.100.7:81", "-m"]);
    lab.requests(3);
    let (stdout, _, code) = lab.masqadm(&["--check"]);
    assert_eq!(code, 1, "{stdout}");
    let problems: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("PROBLEM "))
        .collect();
    assert_eq!(problems.len(), 1, "{stdout}");
    assert!(problems[0].contains("192.168.100.7:81"), "{stdout}");
    assert!(stdout.contains("        fix: "), "{stdout}");
    assert!(
        stdout.ends_with("masq check: 1 problem found\n"),
        "{stdout}"
    );
}

#[test]
fn a_udp_service_is_echoed_through_the_director() {
    let lab = SimulatedLab::start();
    lab.ok(&["-A", "-u", SERVICE, "-s", "rr"]);
    lab.ok(&["-a", "-u", SERVICE, "-r", "192.168.100.7", "-m"]);
    assert_eq!(
        lab.ok(&["--sim-request", "-u", SERVICE, "--count", "2"]),
        "RS1 ping\nRS1 ping\n"
    );
    let stats = lab.ok(&["-L", "-n", "--stats", "-u", SERVICE]);
    assert!(
        stats.contains("UDP  192.168.0.10:80                     2        2        2"),
        "{stats}"
    );
}

/// The inodes of every packet socket open in this network namespace.
fn packet_socket_inodes() -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/packet").expect("/proc/net/packet");
    table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().last().map(String::from))
        .collect()
}

/// The inodes of the sockets process `pid` holds.
fn socket_inodes(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("masqd's descriptors")
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            target
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .map(String::from)
        })
        .collect()
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

#[test]
fn masqd_simulates_the_lab_as_an_unprivileged_user_without_a_packet_socket() {
    // Run as root, the test runs masqd as nobody; run as anyone else, as that user.
    let as_nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ];
    let lab = if is_root() {
        SimulatedLab::start_as(&as_nobody, Some(NOBODY))
    } else {
        SimulatedLab::start()
    };
    seed_sequence(&lab);
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", lab.pid())).expect("masqd's status");
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("a Uid line");
    if is_root() {
        assert!(
            uid_line.split_whitespace().nth(1) == Some("65534"),
            "masqd should run as nobody: {uid_line}"
        );
    }
    let capabilities = status
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .expect("a CapEff line");
    assert!(
        capabilities.ends_with("0000000000000000"),
        "masqd --simulate runs without capabilities: {capabilities}"
    );
    let packet = packet_socket_inodes();
    let held: Vec<String> = socket_inodes(lab.pid())
        .into_iter()
        .filter(|inode| packet.contains(inode))
        .collect();
    assert!(
        held.is_empty(),
        "masqd --simulate holds packet sockets {held:?}"
    );
}
