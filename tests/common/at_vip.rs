//! What the labs whose real servers hold the VIP share (direct routing and tunnelling):
//! the answers name the VIP as the address the server was reached at, the UDP echo answers
//! from it, the answers come back through the director (the real servers' gateway), and
//! the same checks hold whichever way the requests travelled.

use std::time::Duration;

use super::seed::{log_lines, stats_of, udp_client, SERVICE, UDP_SERVICE, URL};
use super::{Lab, CLIENT_IP, RS1_IP, RS2_IP, VIP};

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

/// On a fresh lab, with both real servers added by `method` (`-g` or `-i`): 20 connections
/// alternate RS2, RS1, … and each server logs 10 from the client's own address to the VIP;
/// UDP goes both ways (new source ports alternate, one source port stays); `-L -n` shows
/// `forward` (`Route`, `Tunnel`); and the `--stats` counters move both ways, the answers
/// counted out as the requests were in.
pub fn forwards_rr_and_udp_to_the_vip(lab: &Lab, method: &str, forward: &str) {
    rr_by(lab, "-t", SERVICE, method);
    let picks: Vec<u8> = (0..20).map(|_| answered_by(&lab.curl(URL))).collect();
    assert_eq!(picks, [9, 7].repeat(10), "rr picks of 20 connections");
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

    rr_by(lab, "-u", UDP_SERVICE, method);
    assert_eq!(udp_client(lab, "hello", "1"), "RS2 hello\n");
    assert_eq!(udp_client(lab, "hello", "1"), "RS1 hello\n");
    assert_eq!(udp_client(lab, "again", "3"), "RS2 again\n".repeat(3));

    let listing = lab.masqadm_ok(&["-L", "-n"]);
    for rs in [RS1_IP, RS2_IP] {
        let line = format!("  -> {:<28} {forward:<7} 1      ", format!("{rs}:80"));
        assert!(listing.contains(&line), "{line:?} in:\n{listing}");
    }
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

/// Downloads `size` bytes from the VIP and checks they all came: the seconds it took, as
/// curl says.
pub fn download(lab: &Lab, size: usize) -> String {
    let url = format!("http://{VIP}/bytes/{size}");
    transfer(lab, &[], &url, "%{size_download}", size)
}

/// Uploads `size` bytes to the VIP (a POST the real server reads and discards) and checks
/// they all went: the seconds it took, as curl says.
pub fn upload(lab: &Lab, size: usize) -> String {
    let file = lab.state_dir().join("upload");
    std::fs::write(&file, vec![0u8; size]).expect("writing the upload");
    let data = format!("@{}", file.display());
    let post = ["-H", "Expect:", "--data-binary", data.as_str()];
    transfer(lab, &post, URL, "%{size_upload}", size)
}

/// One curl from the client to `url` (30 s at most) with `extra` options, which must move
/// `size` bytes as `counted` (a curl `-w` variable) says: the seconds it took.
fn transfer(lab: &Lab, extra: &[&str], url: &str, counted: &str, size: usize) -> String {
    let write_out = format!("{counted} %{{time_total}}");
    let mut args = vec!["-o", "/dev/null", "--max-time", "30", "-w", &write_out];
    args.extend_from_slice(extra);
    let out = lab.curl_with("client", &args, url);
    let (bytes, secs) = out.split_once(' ').expect("size and time");
    assert_eq!(bytes, size.to_string(), "{counted} of {url}");
    secs.to_string()
}

/// `masqadm --trace --count 1` on the director while the client fetches the seed's URL
/// once; checks the stages every VIP-answering method shares (1: the client to the VIP; 3:
/// the real server answering as the VIP; 4: that answer on to the client) and returns the
/// trace and its stage 2, the one that differs.
pub fn trace_one_request(lab: &Lab) -> (String, String) {
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
    let out = trace.output();
    let stage = |label: &str| {
        out.lines()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("no stage {label:?} in the trace:\n{out}"))
            .to_string()
    };
    assert!(
        stage("1 client→VIP").contains(&format!("DIP={VIP}:80")),
        "{out}"
    );
    assert!(
        stage("3 RS→client").contains(&format!("SIP={VIP}:80")),
        "{out}"
    );
    assert!(
        stage("4 director→client").contains(&format!("SIP={VIP}:80")),
        "{out}"
    );
    let to_rs = stage("2 director→RS");
    // Stage 2 still goes to the VIP, from the client, whatever else the method adds.
    assert!(
        to_rs.contains(&format!("SIP={CLIENT_IP}:")) && to_rs.contains(&format!("DIP={VIP}:80")),
        "{out}"
    );
    (out, to_rs)
}

/// `scripts/lab.sh demo` on a lab built for `method` (`-g`, `-i`): rr then wrr 3:1 answer
/// from the VIP in the kernel's order, the commands show `method`, the saved rules
/// `saved_rs1` (RS1's line), the listing `forward`, the logs the client at the VIP.
pub fn demo_walks_through_the_seed(lab: &Lab, method: &str, saved_rs1: &str, forward: &str) {
    let text = super::seed::demo_answers_rr_then_wrr(lab, answered_by);
    for shown in [
        &format!("[director]# masqadm -a -t 192.168.0.10:80 -r 192.168.100.7 {method}\n"),
        &format!("{saved_rs1}\n"),
        &format!("  -> 192.168.100.7:80             {forward:<7} 3      0          9         \n"),
        &format!(" client={CLIENT_IP}:"),
        &format!(" local={VIP}:80"),
    ] {
        assert!(
            text.contains(shown.as_str()),
            "the demo should show {shown:?}:\n{text}"
        );
    }
}
