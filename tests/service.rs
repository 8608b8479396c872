//! masqd as a service runs it: as its own user with only the capabilities
//! packaging/masqd.service grants (CAP_NET_RAW, CAP_NET_ADMIN, CAP_BPF, ambient), serving
//! that user's masqadm and nobody else's; and telling the service manager over
//! `NOTIFY_SOCKET` when it is ready, that it lives, and when it stops.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::standalone::Standalone;
use common::{require_program, seed, Lab, LabOptions, RS1_IP, RS2_IP, VIP};

/// The unprivileged users: masqd's own, and another one.
const MASQD_UID: u32 = 65534;
const OTHER_UID: u32 = 65533;
/// CAP_NET_ADMIN (12), CAP_NET_RAW (13) and CAP_BPF (39), as /proc shows capability sets.
const UNIT_CAPS: u64 = (1 << 12) | (1 << 13) | (1 << 39);

/// `masqadm ARGS…` as `uid`, on `socket`: (stdout, stderr, exit code).
fn masqadm_as(
    uid: u32,
    masqadm: &std::path::Path,
    socket: &std::path::Path,
    args: &[&str],
) -> (String, String, i32) {
    let out = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg(masqadm)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running setpriv masqadm");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// A line of /proc/PID/status, e.g. `Uid` or `CapEff`.
fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

fn capability_set(pid: u32, field: &str) -> u64 {
    u64::from_str_radix(&status_field(pid, field), 16).unwrap()
}

/// Checks that masqd's own user is served and another user is not.
fn only_masqds_user_is_served(masqadm: &std::path::Path, socket: &std::path::Path) {
    let (stdout, stderr, code) = masqadm_as(MASQD_UID, masqadm, socket, &["-L", "-n"]);
    assert_eq!(
        (code, stderr.as_str()),
        (0, ""),
        "masqadm as masqd's own user (uid {MASQD_UID}) is refused:\n{stdout}"
    );
    assert!(stdout.starts_with("IP Virtual Server version"), "{stdout}");
    let (_, stderr, code) = masqadm_as(OTHER_UID, masqadm, socket, &["-L", "-n"]);
    assert_ne!(code, 0, "masqadm as uid {OTHER_UID} was served");
    assert!(stderr.contains("Permission denied"), "{stderr}");
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn masqd_serves_as_its_own_user_with_the_units_ambient_capabilities() {
    require_program("setpriv", "util-linux");
    let lab = Lab::up_with(LabOptions {
        masqd_user: Some(MASQD_UID),
        ..LabOptions::default()
    });
    let pid: u32 = std::fs::read_to_string(lab.state_dir().join("masqd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let uid = MASQD_UID.to_string();
    let uids = status_field(pid, "Uid");
    assert_eq!(
        uids.split_whitespace().collect::<Vec<_>>(),
        [uid.as_str(); 4],
        "masqd runs as uid {MASQD_UID}"
    );
    for set in ["CapEff", "CapPrm", "CapAmb", "CapBnd"] {
        assert_eq!(capability_set(pid, set), UNIT_CAPS, "masqd's {set}");
    }

    seed::restore_wrr(&lab);
    // The kernel guard is installed: a table of masqd's own with the service's rule.
    let tables = lab.exec("dir", &["nft", "list", "tables"]);
    let tables = String::from_utf8_lossy(&tables.stdout).into_owned();
    let guard = tables
        .lines()
        .find_map(|l| l.strip_prefix("table netdev "))
        .filter(|t| t.starts_with("masq_guard_"))
        .unwrap_or_else(|| panic!("no guard table among:\n{tables}"));
    let rules = lab.exec("dir", &["nft", "list", "table", "netdev", guard]);
    let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
    assert!(
        rules.contains(&format!("ip daddr {VIP} tcp dport 80 drop")),
        "{rules}"
    );

    // It forwards the seed's weighted round robin, 3:1.
    let mut answers = [0usize; 2];
    for _ in 0..8 {
        match seed::answered_by(&lab.curl(seed::URL)) {
            7 => answers[0] += 1,
            _ => answers[1] += 1,
        }
    }
    assert_eq!(answers, [6, 2], "answers of {RS1_IP} and {RS2_IP}");

    only_masqds_user_is_served(&lab.bin("masqadm"), &lab.state_dir().join("masqd.sock"));
}

/// A masqd started by the test, stopped (SIGKILL) when it drops.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The notifications masqd sent so far, waiting up to `within` for `until` to be among
/// them.
fn notifications_until(socket: &UnixDatagram, until: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while !seen.iter().any(|m: &String| m.lines().any(|l| l == until)) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no {until} within {within:?}; got {seen:?}"
        );
        socket.set_read_timeout(Some(left)).unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => seen.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("receiving notifications: {e}"),
        }
    }
    seen
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn masqd_notifies_ready_once_it_answers_pets_the_watchdog_and_notifies_stopping() {
    let mut d = Standalone::start(&[]);
    d.stop();
    let path = d.path("notify");
    let manager = UnixDatagram::bind(&path).unwrap();
    let log = std::fs::File::create(d.path("masqd.log")).unwrap();
    let mut daemon = Daemon(
        d.masqd_command(&[])
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "400000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let before_ready = notifications_until(&manager, "READY=1", Duration::from_secs(20));
    // READY=1 comes only once the control socket answers: at once, without a retry.
    let (stdout, stderr, code) = d.masqadm(&["-L", "-n"]);
    assert_eq!(
        (code, stderr.as_str()),
        (0, ""),
        "READY=1 before the socket answers:\n{stdout}"
    );
    assert!(
        before_ready
            .iter()
            .all(|m| m == "WATCHDOG=1" || m.starts_with("READY=1\n")),
        "{before_ready:?}"
    );
    let ready = before_ready.last().unwrap();
    assert!(
        ready.contains("\nSTATUS=serving; control socket "),
        "{ready}"
    );

    // The watchdog, at half of WATCHDOG_USEC: about five in a second.
    let start = Instant::now();
    let mut pets = 0;
    while start.elapsed() < Duration::from_secs(1) {
        let seen = notifications_until(&manager, "WATCHDOG=1", Duration::from_secs(2));
        pets += seen.iter().filter(|m| *m == "WATCHDOG=1").count();
    }
    assert!((3..=8).contains(&pets), "{pets} WATCHDOG=1 in a second");

    let kill = Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    notifications_until(&manager, "STOPPING=1", Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "masqd did not stop:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", d.log());
}
