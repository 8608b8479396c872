//! Control work under load: with 100 000 UDP entries from a spoofed flood, entries still
//! expire on time and `masqadm -L -n` answers within a second while full listings of the
//! table run back to back, and a stop meanwhile takes at most a second; and a trace
//! client past the bound of 8 is refused, and served once another has ended.
//!
//! Needs root, iproute2, nftables and hping3 (`scripts/install-deps.sh`).

mod common;

use std::time::{Duration, Instant};

use common::daemon::stop_lab_masqd;
use common::seed::restore_wrr;
use common::{describe, Lab, LabOptions, RS1_IP, RS2_IP, VIP};

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
    restore_wrr(&lab);
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
