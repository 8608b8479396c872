//! End-to-end test of `masqd --io xdp`, the AF_XDP back end: the classic LVS-NAT lab
//! (`scripts/lab.sh`) with offloads off (AF_XDP frames carry no offload metadata, so the
//! senders must finish their own checksums and send MTU-sized frames), the XDP program
//! attached to both director interfaces, rr order over 20 connections, a UDP echo through
//! the VIP, `masqadm -L -n --stats` counting the traffic, the director's kernel still
//! answering what is not a service, and the programs gone once masqd stops.
//!
//! Root and iproute2 are needed (the test is `#[ignore]`d for that; `scripts/test.sh` runs
//! it as root), and the binaries: `cargo build --workspace --bins` first.

mod common;

use common::{describe, Lab, LabOptions};

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn xdp_backend_balances_tcp_and_udp_through_the_vip() {
    let lab = Lab::up_with(LabOptions {
        offloads_off: true,
        masqd_args: &["--io", "xdp", "--metrics", "127.0.0.1:9101"],
        ..LabOptions::default()
    });
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

    common::seed::forwards_rr_and_udp(&lab, "through xdp");

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
    let dropped: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("masq_xdp_kernel_dropped_frames_total{"))
        .collect();
    // Two sides × three reasons.
    assert_eq!(dropped.len(), 6, "drop counters:\n{metrics}");
    for line in dropped {
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
