//! What the labs whose real servers hold the VIP share (direct routing and tunnelling):
//! the answers name the VIP as the address the server was reached at, and the UDP echo
//! answers from it.

use std::time::Duration;

use super::seed::{UDP_SERVICE, URL};
use super::{describe, Lab, RS1_IP, RS2_IP, VIP};

/// Which real server answered (7 or 9, the last octet of its address): a real server that
/// holds the VIP answers `RS<n> <the address it was reached at>`, which is the VIP.
pub fn answered_by(body: &str) -> u8 {
    match body.strip_suffix(&format!(" {VIP}\n")) {
        Some("RS1") => 7,
        Some("RS2") => 9,
        _ => panic!("not an answer of RS1 or RS2 reached at the VIP: {body:?}"),
    }
}

/// `-A PROTO SERVICE -s rr` with RS1 then RS2 forwarded by `method` (`-g` or `-i`).
pub fn rr_by(lab: &Lab, proto: &str, service: &str, method: &str) {
    lab.masqadm_ok(&["-A", proto, service, "-s", "rr"]);
    for rs in [RS1_IP, RS2_IP] {
        lab.masqadm_ok(&["-a", proto, service, "-r", rs, method]);
    }
}

/// `masq-labsrv udp-client` in the client namespace to the UDP service: `count` datagrams
/// carrying `message` from one new source port, then whatever it printed and said.
pub fn try_udp_client(lab: &Lab, message: &str, count: &str) -> std::process::Output {
    let labsrv = lab.bin("masq-labsrv");
    lab.exec(
        "client",
        &[
            labsrv.to_str().expect("a UTF-8 path"),
            "udp-client",
            "--to",
            UDP_SERVICE,
            "--message",
            message,
            "--count",
            count,
        ],
    )
}

/// As [`try_udp_client`], which must succeed: the replies.
pub fn udp_client(lab: &Lab, message: &str, count: &str) -> String {
    let out = try_udp_client(lab, message, count);
    assert!(out.status.success(), "udp-client:\n{}", describe(&out));
    String::from_utf8(out.stdout).expect("UTF-8 replies")
}

/// `masqadm --trace --count 1` on the director while the client fetches the seed's URL
/// once: the trace's text, its four stages written.
pub fn trace_one_request(lab: &Lab) -> String {
    let masqadm = lab.bin("masqadm");
    let socket = lab.state_dir().join("masqd.sock");
    let trace_args = [
        masqadm.to_str().expect("a UTF-8 path"),
        "--socket",
        socket.to_str().expect("a UTF-8 path"),
        "--trace",
        "--count",
        "1",
    ];
    let mut trace = lab.spawn("dir", "trace", &trace_args);
    std::thread::sleep(Duration::from_millis(300));
    lab.curl(URL);
    trace.wait_for_output("4 director→client", Duration::from_secs(5));
    trace.output()
}

/// The line of `trace` that shows the stage `label`, e.g. `2 director→RS`.
pub fn stage(trace: &str, label: &str) -> String {
    trace
        .lines()
        .find(|l| l.contains(label))
        .unwrap_or_else(|| panic!("no stage {label:?} in the trace:\n{trace}"))
        .to_string()
}
