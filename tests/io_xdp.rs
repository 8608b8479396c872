//! End-to-end test of `masqd --io xdp`, the AF_XDP back end: the classic LVS-NAT lab
//! (`scripts/lab.sh`) with offloads off (AF_XDP frames carry no offload metadata, so the
//! senders must finish their own checksums and send MTU-sized frames), the XDP program
//! attached to both director interfaces, rr order over 20 connections, a UDP echo through
//! the VIP, `masqadm -L -n --stats` counting the traffic, the director's kernel still
//! answering what is not a service, and the programs gone once masqd stops.
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
fn xdp_backend_balances_tcp_and_udp_through_the_vip() {
    let Some(lab) = Lab::up_with(LabOptions {
        offloads_off: true,
        masqd_args: &["--io", "xdp", "--metrics", "127.0.0.1:9101"],
        ..LabOptions::default()
    }) else {
        return;
    };
    let log = std::fs::read_to_string(lab.state_dir().join("masqd.log")).unwrap_or_default();
    assert!(
        log.contains("(Xdp I/O)"),
        "masqd did not start the xdp back end; its log:\n{log}"
    );
    // veth has native XDP: the program must run in the driver, not the generic hook.
    for side in ["ext", "int"] {
        let iface = lab.iface(side);
        assert!(
            log.contains(&format!("{iface}: XDP program attached in Native mode")),
            "{iface}: no native XDP program in masqd's log:\n{log}"
        );
        assert!(
            xdp_attached(&lab, &iface),
            "{iface} shows no XDP program:\n{}",
            link_show(&lab, &iface)
        );
    }

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
            "through xdp",
            "--count",
            "3",
        ],
    );
    assert!(out.status.success(), "udp-client:\n{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "RS1 through xdp\n".repeat(3)
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

    // The ports' counters: the traffic came through the AF_XDP sockets on both sides,
    // and the kernel dropped nothing.
    let scrape = lab.exec(
        "dir",
        &["curl", "-sf", "-m", "5", "http://127.0.0.1:9101/metrics"],
    );
    assert!(scrape.status.success(), "scrape:\n{}", describe(&scrape));
    let metrics = String::from_utf8_lossy(&scrape.stdout).into_owned();
    let counter = |labels: &str| -> u64 {
        let prefix = format!("masq_xdp_frames_total{{{labels}}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix:?} in\n{metrics}"))
    };
    for side in ["vip", "dip"] {
        for direction in ["received", "sent"] {
            let n = counter(&format!(
                "side=\"{side}\",path=\"xdp\",direction=\"{direction}\""
            ));
            assert!(n >= 20 * 4, "{side} side, {direction} through AF_XDP: {n}");
        }
    }
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("masq_xdp_kernel_dropped_frames_total{"))
    {
        assert!(line.ends_with(" 0"), "the kernel dropped frames: {line}");
    }

    // The VIP is also the director's own address: what is not a service (here TCP port
    // 81) still reaches its kernel, which refuses the connection at once (curl exit 7)
    // instead of the SYN vanishing into masqd (a timeout, exit 28).
    let out = lab.exec(
        "client",
        &["curl", "-s", "-m", "5", "http://192.168.0.10:81/"],
    );
    assert_eq!(
        out.status.code(),
        Some(7),
        "curl to VIP:81 should be refused by the director's kernel:\n{}",
        describe(&out)
    );

    // A stopped masqd leaves no program behind: closing its ports detaches them.
    let pid = std::fs::read_to_string(lab.state_dir().join("masqd.pid"))
        .expect("masqd's pid file")
        .trim()
        .to_owned();
    let out = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .output()
        .expect("running kill");
    assert!(
        out.status.success(),
        "kill -TERM {pid}:\n{}",
        describe(&out)
    );
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while proc_dir.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !proc_dir.exists(),
        "masqd did not stop within 10 s of SIGTERM"
    );
    for side in ["ext", "int"] {
        let iface = lab.iface(side);
        assert!(
            !xdp_attached(&lab, &iface),
            "{iface} still has an XDP program after masqd stopped:\n{}",
            link_show(&lab, &iface)
        );
    }
}

/// `ip -d link show IFACE` in the director's namespace.
fn link_show(lab: &Lab, iface: &str) -> String {
    let out = lab.exec("dir", &["ip", "-d", "link", "show", iface]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `iface` in the director's namespace has an XDP program attached.
fn xdp_attached(lab: &Lab, iface: &str) -> bool {
    link_show(lab, iface).contains("prog/xdp")
}
