//! End-to-end test of `masqd --io pnet`, the pnet_datalink back end kept for comparison:
//! the classic LVS-NAT lab (`scripts/lab.sh`) with offloads off, as that back end needs
//! MTU-sized frames, and what a student checks — rr order over 20 connections, a UDP echo
//! through the VIP, and `masqadm -L -n --stats` counting the traffic.
//!
//! Root and iproute2 are needed (the test skips without them), and the binaries:
//! `cargo build --workspace --bins` first.

mod common;

use common::{describe, Lab, LabOptions, CLIENT_IP, RS1_IP, RS2_IP};

const SERVICE: &str = "192.168.0.10:80";
const UDP_SERVICE: &str = "192.168.0.10:7";
const URL: &str = "http://192.168.0.10/";

/// Runs `masqadm ARGS` and insists it succeeds silently but for stdout.
fn masqadm_ok(lab: &Lab, args: &[&str]) -> String {
    let (stdout, stderr, code) = lab.masqadm(args);
    assert!(
        code == 0 && stderr.is_empty(),
        "masqadm {} failed: exit {code}\nstdout: {stdout}\nstderr: {stderr}",
        args.join(" ")
    );
    stdout
}

/// The last octet of the real server that wrote `body`.
fn answered_by(body: &str) -> u8 {
    match body {
        "RS1 192.168.100.7\n" => 7,
        "RS2 192.168.100.9\n" => 9,
        other => panic!("not an answer of RS1 or RS2: {other:?}"),
    }
}

/// The counters of the `--stats` line that starts with `prefix`: Conns, InPkts, OutPkts,
/// InBytes, OutBytes.
fn stats_of(listing: &str, prefix: &str) -> Vec<u64> {
    let line = listing
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in\n{listing}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .skip(2)
        .map(|n| n.parse().expect("a number"))
        .collect();
    assert_eq!(numbers.len(), 5, "five counters expected: {line}");
    numbers
}

#[test]
fn pnet_backend_balances_tcp_and_udp_through_the_vip() {
    let Some(lab) = Lab::up_with(LabOptions {
        offloads_off: true,
        masqd_args: &["--io", "pnet"],
        ..LabOptions::default()
    }) else {
        return;
    };
    let log = std::fs::read_to_string(lab.state_dir().join("masqd.log")).unwrap_or_default();
    assert!(
        log.contains("(Pnet I/O)"),
        "masqd did not start the pnet back end; its log:\n{log}"
    );
    assert!(
        !log.contains("--io pnet cannot forward"),
        "the lab turned GRO off, yet masqd warns about it:\n{log}"
    );

    masqadm_ok(&lab, &["-A", "-t", SERVICE, "-s", "rr"]);
    masqadm_ok(&lab, &["-a", "-t", SERVICE, "-r", RS1_IP, "-m"]);
    masqadm_ok(&lab, &["-a", "-t", SERVICE, "-r", RS2_IP, "-m"]);
    let picks: Vec<u8> = (0..20).map(|_| answered_by(&lab.curl(URL))).collect();
    assert_eq!(picks, [9, 7].repeat(10), "rr picks of 20 connections");
    for (n, rs_ip) in [(1, RS1_IP), (2, RS2_IP)] {
        let log = lab.rs_log(n);
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 10, "RS{n}'s log:\n{log}");
        for line in lines {
            assert!(
                line.contains(&format!(" client={CLIENT_IP}:"))
                    && line.ends_with(&format!(" local={rs_ip}:80")),
                "RS{n} logged {line:?}"
            );
        }
    }

    masqadm_ok(&lab, &["-A", "-u", UDP_SERVICE, "-s", "rr"]);
    masqadm_ok(&lab, &["-a", "-u", UDP_SERVICE, "-r", RS1_IP, "-m"]);
    let labsrv = lab.bin("masq-labsrv");
    let out = lab.exec(
        "client",
        &[
            labsrv.to_str().expect("a UTF-8 path"),
            "udp-client",
            "--to",
            UDP_SERVICE,
            "--message",
            "through pnet",
            "--count",
            "3",
        ],
    );
    assert!(out.status.success(), "udp-client:\n{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "RS1 through pnet\n".repeat(3)
    );

    let listing = masqadm_ok(&lab, &["-L", "-n", "--stats", "--exact"]);
    let tcp = stats_of(&listing, &format!("TCP  {SERVICE}"));
    assert_eq!(tcp[0], 20, "TCP connections:\n{listing}");
    // Each connection is a handshake, a request, its answer and the close: several packets
    // and bytes each way.
    assert!(
        tcp[1] >= 20 * 4 && tcp[2] >= 20 * 4,
        "TCP packets:\n{listing}"
    );
    assert!(tcp[3] > 0 && tcp[4] > 0, "TCP bytes:\n{listing}");
    let udp = stats_of(&listing, &format!("UDP  {UDP_SERVICE}"));
    assert_eq!(
        &udp[..3],
        [1, 3, 3],
        "UDP conns, in and out packets:\n{listing}"
    );
    assert!(udp[3] > 0 && udp[4] > 0, "UDP bytes:\n{listing}");
}
