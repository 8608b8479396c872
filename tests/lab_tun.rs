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

use common::at_vip::{
    demo_walks_through_the_seed, download, forwards_rr_and_udp_to_the_vip, rr_by,
    trace_one_request, upload,
};
use common::seed::{try_udp_client, udp_client, SERVICE, UDP_SERVICE};
use common::{describe, Lab, LabOptions, Method, DIP_IP, VIP};

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
    // The client's packet came out of the tunnel as it went in: from the client, to the VIP.
    forwards_rr_and_udp_to_the_vip(&tun_lab(), "-i", "Tunnel");
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_bulk_download_and_the_trace_of_a_tunnelled_connection() {
    let lab = tun_lab();
    rr_by(&lab, "-t", SERVICE, "-i");
    let secs = download(&lab, 100 << 20);
    eprintln!("100 MiB through the tunnel in {secs} s");
    // The other way every segment goes through the tunnel, 20 bytes of each MTU lost: the
    // client learns 1480 from fragmentation needed and the upload goes on at that size.
    // The client sends with TSO, so masqd gets super-frames and cuts them itself.
    let offloads = lab.exec("client", &["ethtool", "-k", &lab.iface("cli")]);
    let offloads = String::from_utf8_lossy(&offloads.stdout);
    for feature in [
        "tcp-segmentation-offload: on",
        "generic-segmentation-offload: on",
    ] {
        assert!(
            offloads.contains(feature),
            "{feature} at the client:\n{offloads}"
        );
    }
    let secs = upload(&lab, 20 << 20);
    eprintln!("20 MiB up through the tunnel, TSO on at the client, in {secs} s");

    let (out, to_rs) = trace_one_request(&lab);
    // Stage 2 is the client's packet inside an outer header from the DIP.
    let outer = format!("outer SIP={DIP_IP} DIP=");
    assert!(
        to_rs.contains(&outer) && to_rs.contains("IPIP"),
        "{outer:?} in stage 2:\n{out}"
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
    demo_walks_through_the_seed(
        &tun_lab(),
        "-i",
        "-a -t 192.168.0.10:80 -r 192.168.100.7:80 -i -w 3 --tun-type ipip",
        "Tunnel",
    );
}
