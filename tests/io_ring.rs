//! The classic lab through masqd's ring back end (`--io ring`), in both ring layouts and
//! with two packet threads per interface in a `PACKET_FANOUT` group: scheduling order,
//! what the real servers see, UDP, and a bulk TCP transfer whose GSO super-frames must
//! cross the rings whole (offloads left on).
//!
//! Root and iproute2 are needed (the tests are `#[ignore]`d for that; `scripts/test.sh` runs
//! them as root), and the binaries: `cargo build --workspace --bins` first.

mod common;

use common::seed::SERVICE;
use common::{Lab, LabOptions};

const V2: &[&str] = &["--io", "ring", "--workers", "2", "--ring-format", "v2"];
const V3: &[&str] = &["--io", "ring", "--workers", "2", "--ring-format", "v3"];

fn lab_with(masqd_args: &'static [&'static str], exclusive: bool) -> Lab {
    Lab::up_with(LabOptions {
        masqd_args,
        exclusive,
        ..LabOptions::default()
    })
}

/// The seed's rr, what the real servers see, a UDP echo and the counters
/// ([`common::seed::forwards_rr_and_udp`]) through `masqd_args`.
fn seed_through(masqd_args: &'static [&'static str]) {
    let lab = lab_with(masqd_args, false);
    common::seed::forwards_rr_and_udp(&lab, "ring");
}

/// A 20 MiB download with the veth offloads on: the real server's TSO hands the director
/// 64 KiB super-frames, which must come through the ring whole and be segmented on
/// transmit; curl checks the length.
fn bulk_through(masqd_args: &'static [&'static str]) {
    let lab = lab_with(masqd_args, true);
    lab.masqadm_ok(&["-A", "-t", SERVICE, "-s", "rr"]);
    lab.masqadm_ok(&["-a", "-t", SERVICE, "-r", "192.168.100.7", "-m"]);
    let size = 20 << 20;
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
        &format!("http://192.168.0.10/bytes/{size}"),
    );
    assert_eq!(
        out,
        size.to_string(),
        "bytes downloaded through {masqd_args:?}"
    );
    let stats = lab.masqadm_ok(&["-L", "-n", "--stats", "--exact"]);
    let out_packets: u64 = stats
        .lines()
        .find(|l| l.contains("192.168.100.7:80"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no OutPkts for RS1 in:\n{stats}"));
    // 20 MiB in MTU segments would be ~14 500 packets; far fewer means super-frames.
    assert!(
        out_packets < 14_000,
        "{out_packets} packets out: the ring did not carry super-frames\n{stats}"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn seed_through_v2_rings() {
    seed_through(V2);
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn seed_through_v3_rings() {
    seed_through(V3);
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn super_frames_through_v2_rings() {
    bulk_through(V2);
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn super_frames_through_v3_rings() {
    bulk_through(V3);
}
