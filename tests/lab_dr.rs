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

use common::at_vip::{
    demo_walks_through_the_seed, download, forwards_rr_and_udp_to_the_vip, rr_by, trace_one_request,
};
use common::seed::SERVICE;
use common::{Lab, LabOptions, Method};

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
    // Only the MAC changed on the way: the real server got the client's packet to the VIP.
    forwards_rr_and_udp_to_the_vip(&dr_lab(), "-g", "Route");
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_bulk_download_and_the_trace_of_a_routed_connection() {
    let lab = dr_lab();
    rr_by(&lab, "-t", SERVICE, "-g");
    download(&lab, 100 << 20);

    let (out, to_rs) = trace_one_request(&lab);
    // Only the MACs changed on the way to the real server.
    assert!(to_rs.contains("only the MACs changed"), "{out}");
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn demo_walks_through_the_seed_by_direct_routing() {
    demo_walks_through_the_seed(
        &dr_lab(),
        "-g",
        "-a -t 192.168.0.10:80 -r 192.168.100.7:80 -g -w 3",
        "Route",
    );
}
