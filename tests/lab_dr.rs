//! End-to-end tests of the direct-routing lab (`scripts/lab.sh up --method dr`): each real
//! server holds the VIP on `lo` (arp_ignore=1, arp_announce=2) and keeps the DIP as its
//! gateway; masqd forwards the client's packets with only the MACs (and TTL) changed and
//! the real servers' answers, sent from the VIP, back to the client. What a student
//! checks: who answered, in which order, that the real servers saw the client's own
//! address arrive at the VIP, a bulk download, UDP, the listing's `Route`, the counters
//! both ways, and the trace's stages.
//!
//! Root and iproute2 are needed (the tests are `#[ignore]`d for that; `scripts/test.sh`
//! runs them as root), and the binaries: `cargo build --workspace --bins` first.

mod common;

use common::at_vip::{answered_by, rr_by, stage, trace_one_request, udp_client};
use common::seed::{log_lines, stats_of, SERVICE, UDP_SERVICE, URL};
use common::{describe, Lab, LabOptions, Method, CLIENT_IP, RS1_IP, RS2_IP, VIP};

/// The direct-routing lab.
fn dr_lab() -> Lab {
    Lab::up_with(LabOptions {
        method: Method::DirectRouting,
        ..LabOptions::default()
    })
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn rr_over_routed_real_servers_that_see_the_client_arrive_at_the_vip() {
    let lab = dr_lab();
    rr_by(&lab, "-t", SERVICE, "-g");
    let picks: Vec<u8> = (0..20).map(|_| answered_by(&lab.curl(URL))).collect();
    assert_eq!(picks, [9, 7].repeat(10), "rr picks of 20 connections");
    // Only the MAC changed on the way: the real server got the client's packet to the VIP.
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
    rr_by(&lab, "-u", UDP_SERVICE, "-g");
    assert_eq!(udp_client(&lab, "hello", "1"), "RS2 hello\n");
    assert_eq!(udp_client(&lab, "hello", "1"), "RS1 hello\n");
    assert_eq!(udp_client(&lab, "again", "3"), "RS2 again\n".repeat(3));

    let listing = lab.masqadm_ok(&["-L", "-n"]);
    for rs in [RS1_IP, RS2_IP] {
        let line = format!("  -> {:<28} Route   1      ", format!("{rs}:80"));
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
fn a_bulk_download_and_the_trace_of_a_routed_connection() {
    let lab = dr_lab();
    rr_by(&lab, "-t", SERVICE, "-g");
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
            "%{size_download}",
        ],
        &url,
    );
    assert_eq!(out, size.to_string(), "bytes downloaded by direct routing");

    let out = trace_one_request(&lab);
    let stage = |label: &str| stage(&out, label);
    assert!(
        stage("1 client→VIP").contains(&format!("DIP={VIP}:80")),
        "{out}"
    );
    // Stage 2 still goes to the VIP: only the MACs changed.
    let to_rs = stage("2 director→RS");
    assert!(
        to_rs.contains(&format!("SIP={CLIENT_IP}:")) && to_rs.contains(&format!("DIP={VIP}:80")),
        "{out}"
    );
    assert!(to_rs.contains("only the MACs changed"), "{out}");
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
fn demo_walks_through_the_seed_by_direct_routing() {
    let lab = dr_lab();
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
        "[director]# masqadm -a -t 192.168.0.10:80 -r 192.168.100.7 -g\n",
        "-a -t 192.168.0.10:80 -r 192.168.100.7:80 -g -w 3\n",
        "  -> 192.168.100.7:80             Route   3      0          9         \n",
        &format!(" client={CLIENT_IP}:"),
        &format!(" local={VIP}:80"),
    ] {
        assert!(
            text.contains(shown),
            "the demo should show {shown:?}:\n{text}"
        );
    }
}
