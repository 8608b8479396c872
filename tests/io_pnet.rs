//! End-to-end test of `masqd --io pnet`, the pnet_datalink back end kept for comparison:
//! the classic LVS-NAT lab (`scripts/lab.sh`) with offloads off, as that back end needs
//! MTU-sized frames, and what a student checks — rr order over 20 connections, a UDP echo
//! through the VIP, and `masqadm -L -n --stats` counting the traffic.
//!
//! Root and iproute2 are needed (the test is `#[ignore]`d for that; `scripts/test.sh` runs
//! it as root), and the binaries: `cargo build --workspace --bins` first.

mod common;

use common::{Lab, LabOptions};

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn pnet_backend_balances_tcp_and_udp_through_the_vip() {
    let lab = Lab::up_with(LabOptions {
        offloads_off: true,
        masqd_args: &["--io", "pnet"],
        ..LabOptions::default()
    });
    let log = std::fs::read_to_string(lab.state_dir().join("masqd.log")).unwrap_or_default();
    assert!(
        log.contains("(Pnet I/O)"),
        "masqd did not start the pnet back end; its log:\n{log}"
    );
    assert!(
        !log.contains("--io pnet cannot forward"),
        "the lab turned GRO off, yet masqd warns about it:\n{log}"
    );

    common::seed::forwards_rr_and_udp(&lab, "through pnet");
}
