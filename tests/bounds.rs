//! Every table a packet can grow has a bound, and a flood meets it.
//!
//! A SYN flood from random spoofed sources at a persistent service makes one persistence
//! template per source as well as one connection: templates count against `--max-conns`
//! and are shed as the kernel's drop_entry sheds them (those without connections first).
//! The figures — entries, masqd's memory, requests served during the flood — are printed.
//!
//! Needs root, iproute2, nftables and hping3 (`scripts/install-deps.sh`).

mod common;

use std::time::{Duration, Instant};

use common::{Lab, LabOptions, RS1_IP, RS2_IP, VIP};

const MAX_CONNS: usize = 2000;

fn rss_kib(lab: &Lab) -> u64 {
    let pid = std::fs::read_to_string(lab.state_dir().join("masqd.pid")).expect("masqd pid");
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).expect("masqd status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Entries `masqadm -L -c -n` lists: connections and persistence templates.
fn entries(lab: &Lab) -> usize {
    let (out, _, code) = lab.masqadm(&["-L", "-n", "-c"]);
    assert_eq!(code, 0);
    out.lines().skip(2).count()
}

fn curl_ok(lab: &Lab) -> bool {
    let out = lab.exec(
        "client",
        &[
            "curl",
            "-s",
            "--max-time",
            "4",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{VIP}/"),
        ],
    );
    String::from_utf8_lossy(&out.stdout) == "200"
}

#[test]
#[ignore = "needs root, network namespaces and hping3: scripts/test.sh runs it"]
fn a_spoofed_flood_at_a_persistent_service_stays_within_max_conns() {
    common::require_program("hping3", "hping3");
    let lab = Lab::up_with(LabOptions {
        masqd_args: &["--max-conns", "2000"],
        exclusive: true,
        ..LabOptions::default()
    });
    for args in [
        &["-A", "-t", "192.168.0.10:80", "-s", "rr", "-p", "300"][..],
        &["-a", "-t", "192.168.0.10:80", "-r", RS1_IP, "-m"][..],
        &["-a", "-t", "192.168.0.10:80", "-r", RS2_IP, "-m"][..],
    ] {
        lab.masqadm_ok(args);
    }
    assert!(curl_ok(&lab), "the service answers before the flood");
    let rss_before = rss_kib(&lab);
    let flood = lab.spawn(
        "client",
        "flood",
        &[
            "timeout",
            "-s",
            "INT",
            "5",
            "hping3",
            "--flood",
            "-S",
            "--rand-source",
            "-p",
            "80",
            VIP,
        ],
    );
    let start = Instant::now();
    let (mut ok, mut failed, mut most) = (0u32, 0u32, 0usize);
    while start.elapsed() < Duration::from_secs(5) {
        if curl_ok(&lab) {
            ok += 1;
        } else {
            failed += 1;
        }
        most = most.max(entries(&lab));
    }
    let mut flood = flood;
    flood.wait_for_output("hping statistic", Duration::from_secs(10));
    most = most.max(entries(&lab));
    let rss_after = rss_kib(&lab);
    let sent = flood
        .output()
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("")
        .to_owned();
    eprintln!(
        "persistent flood: {sent}; most entries listed {most} (bound {MAX_CONNS}); requests during the flood: {ok} ok, {failed} failed; masqd RSS {rss_before} -> {rss_after} KiB"
    );
    assert!(
        most <= MAX_CONNS,
        "-L -c lists {most} entries, more than --max-conns {MAX_CONNS}"
    );
    assert!(
        ok >= 1,
        "requests got through during the flood: {ok} ok, {failed} failed"
    );
    assert!(
        rss_after < rss_before + 32 * 1024,
        "memory grew from {rss_before} to {rss_after} KiB"
    );
    // After the flood the service serves everyone again.
    for _ in 0..4 {
        assert!(curl_ok(&lab), "the service answers after the flood");
    }
}
