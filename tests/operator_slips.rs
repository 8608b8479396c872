//! Start and stop, as an operator having a bad day meets them: a second masqd started on
//! a running one's socket, a `--socket` naming a file that is not a socket, and a stop
//! (SIGTERM, SIGINT) while clients are attached. SIGHUP reloads (`reload.rs`).
//!
//! A refused start must change nothing: the running daemon keeps its socket, its kernel
//! guard and its traffic, and a file given as `--socket` is never replaced. A stop takes
//! at most a second whatever is attached. Crashes and the start after them are in
//! `crash_recovery.rs`; a stop while a large table is listed is in `control_load.rs`.
//!
//! Needs root, iproute2, nftables and python3 (`scripts/install-deps.sh`).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::{guard_tables, stop_lab_masqd, Masqd};
use common::seed::{requests_succeed, restore_wrr};
use common::{Lab, LabOptions, VIP};

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_second_masqd_on_the_same_socket_changes_nothing() {
    let lab = Lab::up();
    restore_wrr(&lab);
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
    restore_wrr(&lab);
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
    restore_wrr(&lab);
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
fn sigint_stops_masqd_cleanly() {
    let lab = Lab::up();
    restore_wrr(&lab);
    assert_eq!(guard_tables(&lab).len(), 1, "the kernel guard is installed");
    let took = stop_lab_masqd(&lab, "-INT");
    assert!(
        took <= Duration::from_secs(1),
        "masqd took {took:?} to stop"
    );
    let log = std::fs::read_to_string(lab.state_dir().join("masqd.log")).unwrap_or_default();
    assert!(log.contains("SIGINT: stopping"), "{log}");
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
