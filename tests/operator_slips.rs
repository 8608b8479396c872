//! An operator having a bad day: a second masqd started on a running one's socket, a
//! `--socket` naming a file that is not a socket, and a stop (SIGTERM, SIGHUP) while
//! clients are attached.
//!
//! A refused second start must change nothing: the first daemon keeps its socket, its
//! kernel guard and its traffic. A file given as `--socket` is never replaced. SIGTERM
//! stops masqd within a second whatever is attached (a trace, a capture, idle connections
//! to the web page and the metrics); SIGHUP stops it as cleanly.
//!
//! Needs root, iproute2 and nftables (`scripts/install-deps.sh`).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{describe, Lab, LabOptions, RS1_IP, RS2_IP, VIP};

fn seed(lab: &Lab) {
    for args in [
        &["-A", "-t", "192.168.0.10:80", "-s", "rr"][..],
        &["-a", "-t", "192.168.0.10:80", "-r", RS1_IP, "-m"][..],
        &["-a", "-t", "192.168.0.10:80", "-r", RS2_IP, "-m"][..],
    ] {
        lab.masqadm_ok(args);
    }
}

fn masqd_pid(lab: &Lab) -> u32 {
    std::fs::read_to_string(lab.state_dir().join("masqd.pid"))
        .expect("masqd's pid file")
        .trim()
        .parse()
        .expect("a pid")
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(") ")
            .next()
            .is_some_and(|s| !s.starts_with('Z'))
    })
}

/// The requests that must get through: 4 of 4.
fn four_requests_succeed(lab: &Lab, after: &str) {
    let mut failed = Vec::new();
    for i in 0..4 {
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

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_second_masqd_on_the_same_socket_changes_nothing() {
    let lab = Lab::up();
    seed(&lab);
    four_requests_succeed(&lab, "the first start");
    let socket = lab.state_dir().join("masqd.sock");
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let socket_inode = inode(&socket);
    let tables_before = lab.exec("dir", &["nft", "list", "tables"]);

    let started = Instant::now();
    let second = Command::new("timeout")
        .args([
            "20",
            "ip",
            "netns",
            "exec",
            &format!("{}-dir", lab.prefix()),
        ])
        .arg(lab.bin("masqd"))
        .args([
            "--vip-iface",
            &lab.iface("ext"),
            "--dip-iface",
            &lab.iface("int"),
        ])
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .output()
        .expect("starting a second masqd");
    eprintln!(
        "the second masqd ended after {:?}: {}",
        started.elapsed(),
        describe(&second)
    );
    assert!(
        !second.status.success(),
        "the second masqd must refuse to start"
    );
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already"),
        "it says another masqd runs there: {}",
        describe(&second)
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
    four_requests_succeed(&lab, "a refused second start");
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

    let pid = masqd_pid(&lab);
    let asked = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    while alive(pid) && asked.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = asked.elapsed();
    eprintln!("masqd stopped {took:?} after SIGTERM with a trace, a capture and idle HTTP clients attached");
    assert!(
        took <= Duration::from_secs(1),
        "masqd took {took:?} to stop (still alive: {})",
        alive(pid)
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
    let out = Command::new("timeout")
        .args([
            "20",
            "ip",
            "netns",
            "exec",
            &format!("{}-dir", lab.prefix()),
        ])
        .arg(lab.bin("masqd"))
        .args([
            "--vip-iface",
            &lab.iface("ext"),
            "--dip-iface",
            &lab.iface("int"),
        ])
        .arg("--socket")
        .arg(&precious)
        .stdin(Stdio::null())
        .output()
        .expect("starting masqd");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "--socket {} is a regular file, not a socket",
            precious.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&precious).expect("the file is still there"),
        "an operator's file\n"
    );
    let lock = lab.state_dir().join("precious.conf.lock");
    assert!(!lock.exists(), "nothing was created beside it");
    let tables_after = lab.exec("dir", &["nft", "list", "tables"]);
    assert_eq!(tables_after.stdout, tables_before.stdout);
    four_requests_succeed(&lab, "a refused start on a file");
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn sighup_stops_masqd_cleanly() {
    let lab = Lab::up();
    seed(&lab);
    let guard = || {
        let out = lab.exec("dir", &["nft", "list", "tables", "netdev"]);
        String::from_utf8_lossy(&out.stdout).contains("masq_guard")
    };
    assert!(guard(), "the kernel guard is installed");
    let pid = masqd_pid(&lab);
    let asked = Instant::now();
    assert!(Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill")
        .success());
    while alive(pid) && asked.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = asked.elapsed();
    assert!(
        took <= Duration::from_secs(1),
        "masqd took {took:?} to stop"
    );
    let log = std::fs::read_to_string(lab.state_dir().join("masqd.log")).unwrap_or_default();
    assert!(
        log.contains("SIGHUP: stopping (masqd does not reload on SIGHUP yet)"),
        "{log}"
    );
    assert!(!guard(), "its guard table went with it");
    assert!(
        !lab.state_dir().join("masqd.sock").exists(),
        "and its socket"
    );
}
