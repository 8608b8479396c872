//! End-to-end tests of the tunnelling lab (`scripts/lab.sh up --method tun`): masqd sends
//! the client's packets, unchanged but one hop older, inside an IPIP header from the DIP
//! to the real server; the real server's tunnel end (the kernel's tunl0, or `masq-labsrv
//! tunnel-end` where the kernel has no ipip module) takes them out, and the real server
//! answers from the VIP through its gateway, the director. What a student checks: who
//! answered, in which order, that the real servers saw the client's own address arrive at
//! the VIP, a bulk download and upload, UDP, the listing's `Tunnel`, the counters both ways, the
//! fragmentation-needed error for a datagram the tunnel's header makes too big, and the
//! trace's outer header.
//!
//! Root and iproute2 are needed (the tests are `#[ignore]`d for that; `scripts/test.sh`
//! runs them as root), and the binaries: `cargo build --workspace --bins` first.

mod common;

use common::at_vip::{answered_by, rr_by, stage, trace_one_request, try_udp_client, udp_client};
use common::seed::{log_lines, stats_of, SERVICE, UDP_SERVICE, URL};
use common::{describe, Lab, LabOptions, Method, CLIENT_IP, DIP_IP, RS1_IP, RS2_IP, VIP};

/// The tunnelling lab.
fn tun_lab() -> Lab {
    Lab::up_with(LabOptions {
        method: Method::Tunnelling,
        ..LabOptions::default()
    })
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn rr_over_tunnelled_real_servers_that_see_the_client_arrive_at_the_vip() {
    let lab = tun_lab();
    rr_by(&lab, "-t", SERVICE, "-i");
    let picks: Vec<u8> = (0..20).map(|_| answered_by(&lab.curl(URL))).collect();
    assert_eq!(picks, [9, 7].repeat(10), "rr picks of 20 connections");
    // The client's packet came out of the tunnel as it went in: from the client, to the VIP.
    for n in [1, 2] {
        let log = lab.rs_log(n);
        let lines = log_lines(&log);
        assert_eq!(lines.len(), 10, "RS{n}'s log:\n{log}");
        for line in lines {
            assert!(
                line.contains(&format!(" client={CLIENT_IP}:"))
                    && line.ends_with(&format!(" local={VIP}:80")),
                "RS{n} logged {line:?}"
            );
        }
    }

    // UDP both ways: new source ports alternate, one source port stays.
    rr_by(&lab, "-u", UDP_SERVICE, "-i");
    assert_eq!(udp_client(&lab, "hello", "1"), "RS2 hello\n");
    assert_eq!(udp_client(&lab, "hello", "1"), "RS1 hello\n");
    assert_eq!(udp_client(&lab, "again", "3"), "RS2 again\n".repeat(3));

    let listing = lab.masqadm_ok(&["-L", "-n"]);
    for rs in [RS1_IP, RS2_IP] {
        let line = format!("  -> {:<28} Tunnel  1      ", format!("{rs}:80"));
        assert!(listing.contains(&line), "{line:?} in:\n{listing}");
    }
    // The answers came back through the director: counted out as the requests were in.
    let stats = lab.masqadm_ok(&["-L", "-n", "--stats", "--exact"]);
    let tcp = stats_of(&stats, &format!("TCP  {SERVICE}"));
    assert_eq!(tcp[0], 20, "TCP connections:\n{stats}");
    assert!(
        tcp[1] >= 20 * 4 && tcp[2] >= 20 * 4,
        "TCP packets:\n{stats}"
    );
    assert!(tcp[3] > 0 && tcp[4] > 0, "TCP bytes:\n{stats}");
    let udp = stats_of(&stats, &format!("UDP  {UDP_SERVICE}"));
    assert_eq!(
        udp[..3],
        [3, 5, 5],
        "UDP conns, in and out packets:\n{stats}"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_bulk_download_and_the_trace_of_a_tunnelled_connection() {
    let lab = tun_lab();
    rr_by(&lab, "-t", SERVICE, "-i");
    let size = 100 << 20;
    let url = format!("http://{VIP}/bytes/{size}");
    let out = lab.curl_with(
        "client",
        &[
            "-o",
            "/dev/null",
            "--max-time",
            "30",
            "-w",
            "%{size_download} %{time_total}",
        ],
        &url,
    );
    let (bytes, secs) = out.split_once(' ').expect("size and time");
    assert_eq!(
        bytes,
        size.to_string(),
        "bytes downloaded through the tunnel"
    );
    eprintln!("100 MiB through the tunnel in {secs} s");
    // The other way every segment goes through the tunnel, 20 bytes of each MTU lost: the
    // client learns 1480 from fragmentation needed and the upload goes on at that size.
    let upload = lab.state_dir().join("upload");
    let up_size = 20 << 20;
    std::fs::write(&upload, vec![0u8; up_size]).expect("writing the upload");
    let data = format!("@{}", upload.display());
    let out = lab.curl_with(
        "client",
        &[
            "-o",
            "/dev/null",
            "--max-time",
            "30",
            "-H",
            "Expect:",
            "--data-binary",
            &data,
            "-w",
            "%{size_upload} %{time_total}",
        ],
        URL,
    );
    let (bytes, secs) = out.split_once(' ').expect("size and time");
    assert_eq!(
        bytes,
        up_size.to_string(),
        "bytes uploaded through the tunnel"
    );
    eprintln!("20 MiB up through the tunnel in {secs} s");

    let out = trace_one_request(&lab);
    let stage = |label: &str| stage(&out, label);
    assert!(
        stage("1 client→VIP").contains(&format!("DIP={VIP}:80")),
        "{out}"
    );
    // Stage 2 is the client's packet to the VIP, inside an outer header from the DIP.
    let to_rs = stage("2 director→RS");
    assert!(
        to_rs.contains(&format!("SIP={CLIENT_IP}:")) && to_rs.contains(&format!("DIP={VIP}:80")),
        "{out}"
    );
    let outer = format!("outer SIP={DIP_IP} DIP=");
    assert!(
        to_rs.contains(&outer) && to_rs.contains("IPIP"),
        "{outer:?} in stage 2:\n{out}"
    );
    // Stage 3 is the real server answering as the VIP.
    let answer = stage("3 RS→client");
    assert!(answer.contains(&format!("SIP={VIP}:80")), "{out}");
    assert!(
        stage("4 director→client").contains(&format!("SIP={VIP}:80")),
        "{out}"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_datagram_the_outer_header_makes_too_big_gets_fragmentation_needed() {
    let lab = tun_lab();
    rr_by(&lab, "-u", UDP_SERVICE, "-i");
    assert_eq!(udp_client(&lab, "small", "1"), "RS2 small\n");
    // 1472 bytes of payload make a 1500-byte packet: the client's MTU, so the kernel sends
    // it with DF; 20 more for the outer header do not fit the director's 1500.
    let big = "x".repeat(1472);
    let out = try_udp_client(&lab, &big, "1");
    assert!(
        !out.status.success(),
        "a reply to a datagram too big:\n{}",
        describe(&out)
    );
    // The client's kernel took the director's ICMP: the path to the VIP is now 1480 bytes,
    // and its connected socket was told so.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Message too long"),
        "udp-client should see EMSGSIZE:\n{}",
        describe(&out)
    );
    let route = lab.exec("client", &["ip", "route", "get", VIP]);
    let route = String::from_utf8_lossy(&route.stdout);
    assert!(
        route.contains("mtu 1480"),
        "the client's route to the VIP:\n{route}"
    );
    // What fits the tunnel still goes through (the third new source port: RS2 again).
    let fits = "y".repeat(1452);
    assert_eq!(
        udp_client(&lab, &fits, "1"),
        format!("RS2 {fits}\n"),
        "a datagram of 1480 bytes"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn demo_walks_through_the_seed_by_tunnelling() {
    let lab = tun_lab();
    let out = lab.script(&["demo"]);
    assert!(out.status.success(), "lab.sh demo:\n{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let answers: Vec<u8> = text
        .lines()
        .filter(|l| l.starts_with("RS1 ") || l.starts_with("RS2 "))
        .map(|l| answered_by(&format!("{l}\n")))
        .collect();
    assert_eq!(
        answers,
        [9, 7, 9, 7, 9, 7, 9, 7, 7, 7, 9, 7, 7, 7],
        "the demo's answers (rr, then wrr 3:1):\n{text}"
    );
    for shown in [
        "[director]# masqadm -a -t 192.168.0.10:80 -r 192.168.100.7 -i\n",
        "-a -t 192.168.0.10:80 -r 192.168.100.7:80 -i -w 3 --tun-type ipip\n",
        "  -> 192.168.100.7:80             Tunnel  3      0          9         \n",
        &format!(" client={CLIENT_IP}:"),
        &format!(" local={VIP}:80"),
    ] {
        assert!(
            text.contains(shown),
            "the demo should show {shown:?}:\n{text}"
        );
    }
}
