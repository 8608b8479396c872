//! The classic lab mistakes, provoked one by one: `masqadm --check` (and the trace) must
//! name each in plain words with its fix, and a healthy lab must pass.

mod common;

use std::time::{Duration, Instant};

use common::daemon::{stop_lab_masqd, Masqd};
use common::standalone::Standalone;
use common::{Lab, RS1_IP, VIP};

fn ok(lab: &Lab, args: &[&str]) {
    let (_, stderr, code) = lab.masqadm(args);
    assert_eq!(code, 0, "masqadm {}: {stderr}", args.join(" "));
}

/// Polls `masqadm --check` until its report contains `needle` (or 10 s pass).
fn check_until(masqadm: impl Fn() -> (String, String, i32), needle: &str) -> (String, i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (stdout, _, code) = masqadm();
        if stdout.contains(needle) || Instant::now() > deadline {
            return (stdout, code);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A curl that is expected to fail; returns curl's exit code.
fn failing_curl(lab: &Lab, url: &str) -> Option<i32> {
    lab.exec("client", &["curl", "-sS", "--max-time", "1", url])
        .status
        .code()
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_healthy_lab_passes_the_check() {
    let lab = Lab::up();
    ok(&lab, &["-A", "-t", "192.168.0.10:80", "-s", "rr"]);
    ok(&lab, &["-a", "-t", "192.168.0.10:80", "-r", RS1_IP, "-m"]);
    lab.curl(&format!("http://{VIP}/"));
    let (stdout, _, code) = lab.masqadm(&["--check"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.ends_with("masq check: no problems found\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("keeps the kernel from answering it"),
        "{stdout}"
    );
}

/// masqd starts without an address on the VIP side and without `--vip-gateway`: it
/// forwards every request and must drop every reply, having no way to any client. It says
/// so at start, and `--check` says it too, with the fix, for as long as masqd runs.
#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_vip_side_without_an_address_is_named_with_its_fix() {
    let lab = Lab::up();
    stop_lab_masqd(&lab, "-TERM");
    let ext = lab.iface("ext");
    let del = lab.exec(
        "dir",
        &["ip", "addr", "del", &format!("{VIP}/24"), "dev", &ext],
    );
    assert!(del.status.success(), "{}", common::describe(&del));
    let masqd = Masqd::start(
        &lab,
        "masqd-no-vip-address",
        &["--metrics", "127.0.0.1:9101"],
    );
    let problem = format!("{ext} (--vip-iface) has no IPv4 address and no --vip-gateway is set: no client is on-link or routed, so every reply to a client is dropped (no_route_to_client)");
    let fix = format!("give {ext} an address on the clients' network (ip addr add ADDR/LEN dev {ext}) or a gateway to them (--vip-gateway ROUTER), then restart masqd");
    assert!(
        masqd.log().contains(&format!("{problem} (fix: {fix})")),
        "{}",
        masqd.log()
    );
    ok(&lab, &["-A", "-t", "192.168.0.10:80", "-s", "rr"]);
    ok(&lab, &["-a", "-t", "192.168.0.10:80", "-r", RS1_IP, "-m"]);
    assert_ne!(failing_curl(&lab, &format!("http://{VIP}/")), Some(0));
    let scrape = lab.exec(
        "dir",
        &["curl", "-sf", "-m", "5", "http://127.0.0.1:9101/metrics"],
    );
    assert!(scrape.status.success(), "{}", common::describe(&scrape));
    let metrics = String::from_utf8_lossy(&scrape.stdout);
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("masq_dropped_frames_total{reason=\"no_route_to_client\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        dropped > 0,
        "no reply dropped as no_route_to_client:\n{metrics}"
    );

    let (report, _, code) = lab.masqadm(&["--check"]);
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains(&format!("PROBLEM {problem}\n        fix: {fix}\n")),
        "{report}"
    );
    assert!(!report.contains("no problems found"), "{report}");
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_real_server_whose_gateway_is_not_the_dip_is_named() {
    let lab = Lab::up();
    let del = lab.exec("rs1", &["ip", "route", "del", "default"]);
    assert!(del.status.success(), "{}", common::describe(&del));
    ok(&lab, &["-A", "-t", "192.168.0.10:80", "-s", "rr"]);
    ok(&lab, &["-a", "-t", "192.168.0.10:80", "-r", RS1_IP, "-m"]);
    for _ in 0..3 {
        assert_ne!(failing_curl(&lab, &format!("http://{VIP}/")), Some(0));
    }
    let (report, code) = check_until(
        || lab.masqadm(&["--check"]),
        "but never answered through 192.168.100.10: is its default gateway the DIP?",
    );
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains(&format!("PROBLEM RS {RS1_IP} received ")),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "fix: on {RS1_IP}: ip route replace default via 192.168.100.10"
        )),
        "{report}"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_real_server_with_nothing_listening_is_named_in_the_check_and_the_trace() {
    let lab = Lab::up();
    ok(&lab, &["-A", "-t", "192.168.0.10:8080", "-s", "rr"]);
    ok(
        &lab,
        &[
            "-a",
            "-t",
            "192.168.0.10:8080",
            "-r",
            "192.168.100.7:8080",
            "-m",
        ],
    );
    let mut trace = lab.spawn(
        "dir",
        "trace",
        &[
            lab.bin("masqadm").to_str().unwrap(),
            "--socket",
            lab.state_dir().join("masqd.sock").to_str().unwrap(),
            "--trace",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    // Connection refused: curl's exit 7.
    assert_eq!(failing_curl(&lab, &format!("http://{VIP}:8080/")), Some(7));
    let needle = "RS 192.168.100.7:8080 answered 1 connection attempts with RST: is anything listening on port 8080 there?";
    let (report, code) = check_until(|| lab.masqadm(&["--check"]), needle);
    assert_eq!(code, 1, "{report}");
    assert!(report.contains(needle), "{report}");
    trace.wait_for_output(&format!("DIAGNOSIS {needle}"), Duration::from_secs(5));
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn two_real_servers_with_one_address_are_named() {
    let lab = Lab::up();
    // The seed's own typo: RS2 given RS1's address (as well as its own).
    let dup = lab.exec(
        "rs2",
        &[
            "ip",
            "addr",
            "add",
            "192.168.100.7/24",
            "dev",
            &lab.iface("r2"),
        ],
    );
    assert!(dup.status.success(), "{}", common::describe(&dup));
    ok(&lab, &["-A", "-t", "192.168.0.10:80", "-s", "rr"]);
    ok(&lab, &["-a", "-t", "192.168.0.10:80", "-r", RS1_IP, "-m"]);
    let (report, code) = check_until(
        || lab.masqadm(&["--check"]),
        "two hosts answer ARP for 192.168.100.7",
    );
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains("was a real server given another one's address?"),
        "{report}"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn the_kernel_answering_the_vip_forwarding_and_a_silent_server_are_named() {
    let d = Standalone::start(&["--kernel-guard", "off"]);
    assert_eq!(d.masqadm(&["-A", "-t", "192.168.0.10:80", "-s", "rr"]).2, 0);
    // Nobody is behind the DIP side: this real server never answers ARP.
    assert_eq!(
        d.masqadm(&["-a", "-t", "192.168.0.10:80", "-r", "192.168.100.50", "-m"])
            .2,
        0
    );
    let on = d.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    assert!(on.status.success());
    let (report, code) = check_until(|| d.masqadm(&["--check"]), "does not answer ARP");
    assert_eq!(code, 1, "{report}");
    for needle in [
        "PROBLEM the director's kernel also answers the VIP 192.168.0.10 (a host address; masqd runs with --kernel-guard off)",
        "PROBLEM net.ipv4.ip_forward is 1",
        "fix: sysctl -w net.ipv4.ip_forward=0",
        "PROBLEM RS 192.168.100.50 does not answer ARP on the DIP side",
    ] {
        assert!(report.contains(needle), "missing {needle:?} in\n{report}");
    }
    assert!(
        report.ends_with("masq check: 3 problems found\n"),
        "{report}"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn services_masq_cannot_forward_are_named() {
    let d = Standalone::start(&[]);
    assert_eq!(d.masqadm(&["-A", "-f", "7", "-s", "rr"]).2, 0);
    assert_eq!(d.masqadm(&["-L", "-n"]).0.lines().nth(3), Some("FWM  7 rr"));
    let (report, _, code) = d.masqadm(&["--check"]);
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains("PROBLEM FWM 7 can never match traffic: masq reads frames before netfilter and never sees firewall marks"),
        "{report}"
    );
}
