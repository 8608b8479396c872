//! End-to-end acceptance tests of the LVS-NAT lab (`scripts/lab.sh`): real clients (curl,
//! a UDP client, iperf3, tcpdump) in network namespaces, masqd directing them to the real
//! servers, and what a student checks — who answered, in which order, what the real
//! server saw, what the wire showed, and `masqadm`'s text against real ipvsadm's (the
//! transcripts in `crates/ctl/tests/ipvsadm/data/` and `tests/data/kernel-g-errors.txt`).
//!
//! Root and iproute2 are needed (the tests are `#[ignore]`d for that; `scripts/test.sh`
//! runs them as root), and the binaries: `cargo build --workspace --bins` first.

mod common;

use std::time::{Duration, Instant};

use common::seed::{answered_by, demo_answers_rr_then_wrr, each_server_logged, log_lines};
use common::{describe, Lab, LabOptions, CLIENT_IP, RCLIENT_IP, RS1_IP, RS2_IP, VIP};

const SERVICE: &str = "192.168.0.10:80";
const URL: &str = "http://192.168.0.10/";

/// `ipvsadm -L -n` with no services.
const EMPTY_LISTING: &str = "IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port Scheduler Flags\n  \
-> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";

/// a.txt: `ipvsadm -L -n` after the six rr connections, all closed.
const RR_LISTING: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=4096)\n",
    "Prot LocalAddress:Port Scheduler Flags\n",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    "TCP  192.168.0.10:80 rr\n",
    "  -> 192.168.100.7:80             Masq    1      0          3         \n",
    "  -> 192.168.100.9:80             Masq    1      0          3         \n",
);

/// a.txt and e1-listings.txt: `ipvsadm -L -n` after the eight wrr connections more.
const WRR_LISTING: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=4096)\n",
    "Prot LocalAddress:Port Scheduler Flags\n",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    "TCP  192.168.0.10:80 wrr\n",
    "  -> 192.168.100.7:80             Masq    3      0          9         \n",
    "  -> 192.168.100.9:80             Masq    1      0          5         \n",
);

/// e1-listings.txt: `ipvsadm -S -n` of the same table.
const WRR_RULES: &str = concat!(
    "-A -t 192.168.0.10:80 -s wrr\n",
    "-a -t 192.168.0.10:80 -r 192.168.100.7:80 -m -w 3\n",
    "-a -t 192.168.0.10:80 -r 192.168.100.9:80 -m -w 1\n",
);

/// The seed: `-A -t VIP:80 -s rr`, then RS1 and RS2 with `-m`, in that order.
fn seed_rr(lab: &Lab) {
    lab.masqadm_ok(&["-A", "-t", SERVICE, "-s", "rr"]);
    lab.masqadm_ok(&["-a", "-t", SERVICE, "-r", RS1_IP, "-m"]);
    lab.masqadm_ok(&["-a", "-t", SERVICE, "-r", RS2_IP, "-m"]);
}

/// `n` new connections from the client (one curl each): who answered them, in order.
fn picks(lab: &Lab, n: usize) -> Vec<u8> {
    (0..n).map(|_| answered_by(&lab.curl(URL))).collect()
}

/// Waits (up to 3 s) until `masqadm ARGS` prints `expected`: a connection the client just
/// closed may take a moment to reach TIME_WAIT at the director.
fn assert_listing_becomes(lab: &Lab, args: &[&str], expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let listing = lab.masqadm_ok(args);
        if listing == expected {
            return;
        }
        if Instant::now() >= deadline {
            assert_eq!(
                listing,
                expected,
                "masqadm {} differs from ipvsadm's",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (up to 10 s) until something listens on `proto` (`t`/`u`) `port` in `ns`.
fn wait_listening(lab: &Lab, ns: &str, proto: char, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let filter = format!("sport = :{port}");
    let flags = format!("-Hln{proto}");
    loop {
        let out = lab.exec(ns, &["ss", &flags, &filter]);
        if out.status.success() && !out.stdout.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on {proto} {port} in {ns}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn rr_alternates_from_the_most_recently_added_server() {
    let lab = Lab::up();
    seed_rr(&lab);

    let expected: Vec<u8> = [9, 7].repeat(10);
    assert_eq!(picks(&lab, 20), expected, "rr picks of 20 connections");

    // Ten connections each, all from the client's own address, to the server's.
    each_server_logged(&lab, 10);
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn seed_sequence_matches_the_kernel_and_survives_save_flush_restore() {
    let lab = Lab::up();
    seed_rr(&lab);
    assert_eq!(picks(&lab, 6), [9, 7, 9, 7, 9, 7], "a.txt: PICKS a-rr");
    assert_listing_becomes(&lab, &["-L", "-n"], RR_LISTING);

    lab.masqadm_ok(&["-E", "-t", SERVICE, "-s", "wrr"]);
    lab.masqadm_ok(&["-e", "-t", SERVICE, "-r", RS1_IP, "-m", "-w", "3"]);
    assert_eq!(
        picks(&lab, 8),
        [9, 7, 7, 7, 9, 7, 7, 7],
        "a.txt: PICKS a-wrr"
    );
    assert_listing_becomes(&lab, &["-L", "-n"], WRR_LISTING);

    let rules = lab.masqadm_ok(&["-S", "-n"]);
    assert_eq!(rules, WRR_RULES, "masqadm -S -n differs from ipvsadm's");

    lab.masqadm_ok(&["-C"]);
    assert_eq!(lab.masqadm_ok(&["-L", "-n"]), EMPTY_LISTING);
    let out = lab.exec("client", &["curl", "-sS", "--max-time", "2", URL]);
    assert!(
        !out.status.success(),
        "with no service, the VIP must not answer:\n{}",
        describe(&out)
    );

    let (stdout, stderr, code) = lab.masqadm_stdin(&["-R"], &rules);
    assert_eq!(
        (stdout.as_str(), stderr.as_str(), code),
        ("", "", 0),
        "masqadm -R"
    );
    assert_eq!(lab.masqadm_ok(&["-S", "-n"]), WRR_RULES, "restored rules");
    let listing = lab.masqadm_ok(&["-L", "-n"]);
    assert!(
        listing.contains("TCP  192.168.0.10:80 wrr\n")
            && listing.contains("  -> 192.168.100.7:80             Masq    3      ")
            && listing.contains("  -> 192.168.100.9:80             Masq    1      "),
        "after -R:\n{listing}"
    );
    // And the restored service forwards again.
    answered_by(&lab.curl(URL));
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn client_talks_to_the_vip_and_the_real_server_sees_the_client() {
    let lab = Lab::up();
    seed_rr(&lab);
    let out = lab.curl_with(
        "client",
        &[
            "-w",
            "%{remote_ip}:%{remote_port} %{local_ip}:%{local_port}\n",
        ],
        URL,
    );
    let (body, addrs) = out.split_at(out.find('\n').map_or(0, |i| i + 1));
    assert_eq!(answered_by(body), 9, "the first connection goes to RS2");
    let (remote, local) = addrs
        .trim_end()
        .split_once(' ')
        .unwrap_or_else(|| panic!("curl -w printed {addrs:?}"));
    assert_eq!(remote, "192.168.0.10:80", "the client saw its peer as");
    let client_port = local
        .strip_prefix(&format!("{CLIENT_IP}:"))
        .unwrap_or_else(|| panic!("the client's address is {local}"));

    let log = lab.rs_log(2);
    let want = format!(" client={CLIENT_IP}:{client_port} local={RS2_IP}:80");
    assert!(
        log_lines(&log).iter().any(|line| line.ends_with(&want)),
        "RS2 should log{want}; its log:\n{log}"
    );
    assert_eq!(lab.rs_log(1), "", "RS1 had no connection");
}

#[test]
#[ignore = "needs root, network namespaces and tcpdump: scripts/test.sh runs it"]
fn tcpdump_on_the_director_shows_the_four_stages() {
    common::require_root_and_iproute2();
    common::require_program("tcpdump", "tcpdump");
    let lab = Lab::up();
    seed_rr(&lab);
    let (ext, int) = (lab.iface("ext"), lab.iface("int"));
    let mut captures = Vec::new();
    for iface in [&ext, &int] {
        let file = lab.state_dir().join(format!("{iface}.pcap"));
        let file = file.to_str().expect("a UTF-8 path").to_owned();
        // --immediate-mode: hand every packet over at once (the default batching would
        // leave the last ones in the ring when the capture is stopped); -Z root: the file
        // is in root's state directory.
        let mut capture = lab.spawn(
            "dir",
            &format!("tcpdump-{iface}"),
            &[
                "tcpdump",
                "-i",
                iface,
                "-n",
                "-U",
                "--immediate-mode",
                "-Z",
                "root",
                "-w",
                &file,
                "-c",
                "200",
                "tcp or udp",
            ],
        );
        capture.wait_for_output("listening on", Duration::from_secs(10));
        captures.push((capture, file));
    }

    let port = "40001";
    let body = lab.curl_with("client", &["--local-port", port], URL);
    assert_eq!(answered_by(&body), 9);
    // Let the closing segments pass too before stopping the captures.
    std::thread::sleep(Duration::from_millis(300));

    let mut read_back = Vec::new();
    for (capture, file) in captures {
        capture.stop();
        let out = lab.exec("dir", &["tcpdump", "-n", "-r", &file]);
        assert!(
            out.status.success(),
            "tcpdump -r {file}:\n{}",
            describe(&out)
        );
        read_back.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let (ext_text, int_text) = (&read_back[0], &read_back[1]);

    let client = format!("{CLIENT_IP}.{port}");
    let rs = format!("{RS2_IP}.80");
    for (side, text, stages) in [
        (
            &ext,
            ext_text,
            [
                format!(" {client} > 192.168.0.10.80: "),
                format!(" 192.168.0.10.80 > {client}: "),
            ],
        ),
        (
            &int,
            int_text,
            [format!(" {client} > {rs}: "), format!(" {rs} > {client}: ")],
        ),
    ] {
        for stage in stages {
            assert!(
                text.contains(&stage),
                "no{stage}on {side}; the capture:\n{text}"
            );
        }
    }
    // NAT hides the real servers from the client side and the VIP from the server side.
    assert!(
        !ext_text.contains(" 192.168.100."),
        "a real server's address leaked to the client side:\n{ext_text}"
    );
    assert!(
        !int_text.contains(" 192.168.0.10."),
        "the VIP appeared on the server side:\n{int_text}"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn udp_echo_round_trips_through_the_director() {
    let lab = Lab::up();
    let udp_service = "192.168.0.10:7";
    lab.masqadm_ok(&["-A", "-u", udp_service, "-s", "rr"]);
    lab.masqadm_ok(&["-a", "-u", udp_service, "-r", RS1_IP, "-m"]);
    lab.masqadm_ok(&["-a", "-u", udp_service, "-r", RS2_IP, "-m"]);
    let labsrv = lab.bin("masq-labsrv");
    let labsrv = labsrv.to_str().expect("a UTF-8 path");
    let udp_client = |message: &str, count: &str| {
        let out = lab.exec(
            "client",
            &[
                labsrv,
                "udp-client",
                "--to",
                udp_service,
                "--message",
                message,
                "--count",
                count,
            ],
        );
        assert!(out.status.success(), "udp-client:\n{}", describe(&out));
        String::from_utf8(out.stdout).expect("UTF-8 replies")
    };
    // Each run is a new source port, so a new connection: rr alternates, RS2 first.
    assert_eq!(udp_client("hello", "1"), "RS2 hello\n");
    assert_eq!(udp_client("hello", "1"), "RS1 hello\n");
    // Datagrams from one source port stay with their real server.
    assert_eq!(udp_client("again", "3"), "RS2 again\n".repeat(3));
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn routed_client_is_answered_through_the_vip_gateway() {
    let lab = Lab::up_with(LabOptions {
        routed: true,
        ..LabOptions::default()
    });
    seed_rr(&lab);
    let out = lab.curl_with("rclient", &["-w", "%{remote_ip}:%{remote_port}"], URL);
    assert_eq!(out, "RS2 192.168.100.9\n192.168.0.10:80");
    let log = lab.rs_log(2);
    assert!(
        log.contains(&format!(" client={RCLIENT_IP}:")),
        "RS2 should see the routed client's address; its log:\n{log}"
    );
    // The on-link client shares the segment with the router and still gets its answers.
    assert_eq!(answered_by(&lab.curl(URL)), 7);
}

/// A 3-second iperf3 upload through the director: it completes, moves data at a useful
/// rate, and retransmits little (lost or corrupted segments show up as retransmissions).
fn iperf3_through_the_director(offloads_off: bool) {
    common::require_root_and_iproute2();
    common::require_program("iperf3", "iperf3");
    let lab = Lab::up_with(LabOptions {
        offloads_off,
        exclusive: true,
        ..LabOptions::default()
    });
    let service = "192.168.0.10:5201";
    lab.masqadm_ok(&["-A", "-t", service, "-s", "rr"]);
    lab.masqadm_ok(&["-a", "-t", service, "-r", "192.168.100.7:5201", "-m"]);
    let _server = lab.spawn(
        "rs1",
        "iperf3-server",
        &["iperf3", "-s", "--one-off", "-p", "5201"],
    );
    wait_listening(&lab, "rs1", 't', 5201);

    let out = lab.exec(
        "client",
        &[
            "iperf3",
            "-c",
            VIP,
            "-p",
            "5201",
            "-t",
            "3",
            "-J",
            "--connect-timeout",
            "3000",
        ],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("iperf3 -J printed no JSON ({e}):\n{}", describe(&out)));
    assert!(
        out.status.success() && report.get("error").is_none(),
        "iperf3 failed: {}\n{}",
        report["error"],
        describe(&out)
    );
    let sent = &report["end"]["sum_sent"];
    let bytes = sent["bytes"].as_u64().expect("end.sum_sent.bytes");
    let retransmits = sent["retransmits"]
        .as_u64()
        .expect("end.sum_sent.retransmits");
    let received_bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .expect("end.sum_received.bits_per_second");
    assert!(
        received_bps > 50e6,
        "only {:.1} Mbit/s through the director",
        received_bps / 1e6
    );
    // At most 1% of the segments (100 at least: a GSO super-frame lost counts as ~45).
    let bound = (bytes / 1448 / 100).max(100);
    assert!(
        retransmits <= bound,
        "{retransmits} retransmissions for {bytes} bytes (bound {bound})"
    );
}

#[test]
#[ignore = "needs root, network namespaces and iperf3: scripts/test.sh runs it"]
fn iperf3_bulk_transfer_with_veth_offloads() {
    iperf3_through_the_director(false);
}

#[test]
#[ignore = "needs root, network namespaces and iperf3: scripts/test.sh runs it"]
fn iperf3_bulk_transfer_with_offloads_off() {
    iperf3_through_the_director(true);
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn bulk_http_download_completes() {
    let lab = Lab::up();
    seed_rr(&lab);
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
    assert_eq!(
        out,
        size.to_string(),
        "bytes downloaded through the director"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn adding_a_destination_twice_is_refused_like_ipvsadm() {
    let lab = Lab::up();
    lab.masqadm_ok(&["-A", "-t", SERVICE, "-s", "rr"]);
    lab.masqadm_ok(&["-a", "-t", SERVICE, "-r", RS1_IP, "-m"]);
    let (stdout, stderr, code) = lab.masqadm(&["-a", "-t", SERVICE, "-r", RS1_IP, "-m"]);
    assert_eq!(
        (stdout.as_str(), stderr.as_str(), code),
        ("", "Destination already exists\n", 255),
        "as in tests/data/kernel-g-errors.txt"
    );
    assert_eq!(
        lab.masqadm_ok(&["-S", "-n"]),
        "-A -t 192.168.0.10:80 -s rr\n-a -t 192.168.0.10:80 -r 192.168.100.7:80 -m -w 1\n",
        "the table is unchanged"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn demo_walks_through_the_seed() {
    let lab = Lab::up();
    let text = demo_answers_rr_then_wrr(&lab, answered_by);
    for shown in [
        "[director]# masqadm -A -t 192.168.0.10:80 -s rr\n",
        "[director]# masqadm -e -t 192.168.0.10:80 -r 192.168.100.7 -m -w 3\n",
        "[client]# curl -s http://192.168.0.10/\n",
        WRR_LISTING,
        "[director]# masqadm -S -n > rules\n",
        WRR_RULES,
        "[director]# masqadm -R < rules\n",
        " client=192.168.0.101:",
    ] {
        assert!(
            text.contains(shown),
            "the demo should show {shown:?}:\n{text}"
        );
    }
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn down_leaves_no_namespace_process_or_state_behind() {
    let lab = Lab::up();
    let prefix = lab.prefix().to_owned();
    let state = lab.state_dir().to_owned();
    let pids = lab.daemon_pids();
    assert_eq!(pids.len(), 5, "masqd and four real-server daemons");
    drop(lab);

    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(&format!("{prefix}-")))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    assert!(!state.exists(), "{} left behind", state.display());
    for pid in pids {
        assert!(!runs(pid), "daemon {pid} still runs");
    }
}

/// Whether a process runs; a zombie does not (it only waits to be reaped).
fn runs(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        !matches!(state, Some(Some('Z' | 'X')))
    })
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_vip_that_is_not_a_host_address_is_answered_by_masqd_alone() {
    let lab = Lab::up();
    // 192.168.0.20 is no address of the director's kernel: only masqd answers ARP for it.
    let vip2 = "192.168.0.20";
    lab.masqadm_ok(&["-A", "-t", &format!("{vip2}:80"), "-s", "rr"]);
    lab.masqadm_ok(&["-a", "-t", &format!("{vip2}:80"), "-r", RS2_IP, "-m"]);
    let body = lab.curl(&format!("http://{vip2}/"));
    assert_eq!(answered_by(&body), 9);
    let neigh = lab.exec("client", &["ip", "neigh", "show", vip2]);
    let dir_mac = lab.exec(
        "dir",
        &[
            "cat",
            &format!("/sys/class/net/{}/address", lab.iface("ext")),
        ],
    );
    let mac = String::from_utf8_lossy(&dir_mac.stdout).trim().to_owned();
    assert!(
        String::from_utf8_lossy(&neigh.stdout).contains(&mac),
        "the client resolved {vip2} to the director's MAC {mac}: {}",
        common::describe(&neigh)
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_fragmented_udp_datagram_crosses_the_director_both_ways() {
    let lab = Lab::up();
    let udp_service = "192.168.0.10:7";
    lab.masqadm_ok(&["-A", "-u", udp_service, "-s", "rr"]);
    lab.masqadm_ok(&["-a", "-u", udp_service, "-r", RS1_IP, "-m"]);
    // 4000 bytes over a 1500-byte MTU: the client's IP layer sends three fragments, and
    // the real server's echo comes back in three as well.
    let message = "x".repeat(4000);
    let labsrv = lab.bin("masq-labsrv");
    let out = lab.exec(
        "client",
        &[
            labsrv.to_str().unwrap(),
            "udp-client",
            "--to",
            udp_service,
            "--message",
            &message,
        ],
    );
    assert!(out.status.success(), "udp-client:\n{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("RS1 {message}\n")
    );
    let stats = lab.masqadm_ok(&["-L", "-n", "--stats", "-u", udp_service]);
    let line = stats
        .lines()
        .find(|l| l.starts_with("UDP  "))
        .unwrap_or_else(|| panic!("{stats}"));
    let n: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        (n[2], n[3], n[4]),
        ("1", "3", "3"),
        "one connection, three fragments each way:\n{stats}"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn path_mtu_discovery_works_through_the_director() {
    let lab = Lab::up_with(LabOptions {
        offloads_off: true,
        ..LabOptions::default()
    });
    // The link between the director and the switch carries 1400 bytes; the client and
    // the real server both think 1500. Without "fragmentation needed" from the director
    // the client's full-size segments would vanish and the upload would stall.
    for (ns, iface) in [("dir", "int"), ("sw", "sd")] {
        let out = lab.exec(ns, &["ip", "link", "set", &lab.iface(iface), "mtu", "1400"]);
        assert!(out.status.success(), "{}", describe(&out));
    }
    lab.masqadm_ok(&["-A", "-t", "192.168.0.10:5201", "-s", "rr"]);
    lab.masqadm_ok(&["-a", "-t", "192.168.0.10:5201", "-r", RS1_IP, "-m"]);
    // masqd rereads its interfaces' MTU every two seconds.
    std::thread::sleep(Duration::from_millis(2500));
    let server = lab.spawn(
        "rs1",
        "iperf3-pmtu",
        &["iperf3", "-s", "--one-off", "-p", "5201"],
    );
    std::thread::sleep(Duration::from_millis(500));
    let out = lab.exec(
        "client",
        &[
            "iperf3",
            "-c",
            VIP,
            "-p",
            "5201",
            "-t",
            "3",
            "-J",
            "--connect-timeout",
            "3000",
        ],
    );
    drop(server);
    assert!(
        out.status.success(),
        "iperf3 through a 1400-byte link:\n{}",
        describe(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    let received = report["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    assert!(received > 10_000_000, "only {received} bytes got through");
    let route = lab.exec("client", &["ip", "route", "get", VIP]);
    assert!(
        String::from_utf8_lossy(&route.stdout).contains("mtu 1400"),
        "the client learnt the path MTU: {}",
        describe(&route)
    );
}
