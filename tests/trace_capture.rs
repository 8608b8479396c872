//! Watching LVS-NAT work: `masqadm --trace` shows one connection's four stages with the
//! right addresses and ports, and `masqadm --capture` writes them to a pcapng file that
//! tshark reads with the same four address pairs.

mod common;

use std::time::Duration;

use common::{Lab, CLIENT_IP, RS1_IP, VIP};

fn one_server(lab: &Lab) {
    for args in [
        &["-A", "-t", "192.168.0.10:80", "-s", "rr"][..],
        &["-a", "-t", "192.168.0.10:80", "-r", RS1_IP, "-m"][..],
    ] {
        let (_, stderr, code) = lab.masqadm(args);
        assert_eq!(code, 0, "{stderr}");
    }
    // Resolve the real server first, so the trace shows its MAC rather than a wait.
    std::thread::sleep(Duration::from_millis(1200));
}

/// The client port of the one connection, from the real server's log.
fn client_port(lab: &Lab) -> String {
    let log = lab.rs_log(1);
    let line = log
        .lines()
        .last()
        .unwrap_or_else(|| panic!("RS1 log empty"));
    let client = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("client="))
        .expect("client= in the RS log");
    client.rsplit_once(':').expect("ip:port").1.to_owned()
}

fn masqadm_cmd<'a>(lab: &'a Lab, socket: &'a str, extra: &[&'a str]) -> Vec<String> {
    let mut v = vec![
        lab.bin("masqadm").to_string_lossy().into_owned(),
        "--socket".into(),
        socket.into(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn the_trace_shows_exactly_the_four_stages() {
    let lab = Lab::up();
    one_server(&lab);
    let socket = lab
        .state_dir()
        .join("masqd.sock")
        .to_string_lossy()
        .into_owned();
    let cmd = masqadm_cmd(
        &lab,
        &socket,
        &["--trace", "-t", "192.168.0.10:80", "--count", "1"],
    );
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let mut trace = lab.spawn("dir", "trace", &args);
    std::thread::sleep(Duration::from_millis(300));
    lab.curl(&format!("http://{VIP}/"));
    trace.wait_for_output("4 director→client", Duration::from_secs(5));
    let port = client_port(&lab);
    let out = trace.output();
    let stages: Vec<(String, String, String)> = out
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| w.starts_with("SIP="))?;
            Some((
                words[1..at].join(" "),
                words[at].trim_start_matches("SIP=").to_owned(),
                words[at + 1].trim_start_matches("DIP=").to_owned(),
            ))
        })
        .collect();
    let c = format!("{CLIENT_IP}:{port}");
    let expected = vec![
        ("1 client→VIP".to_owned(), c.clone(), format!("{VIP}:80")),
        (
            "2 director→RS".to_owned(),
            c.clone(),
            format!("{RS1_IP}:80"),
        ),
        (
            "3 RS→director".to_owned(),
            format!("{RS1_IP}:80"),
            c.clone(),
        ),
        (
            "4 director→client".to_owned(),
            format!("{VIP}:80"),
            c.clone(),
        ),
    ];
    assert_eq!(stages, expected, "trace:\n{out}");
    assert!(
        out.contains("rr picked it among 1"),
        "the scheduler's choice:\n{out}"
    );
    assert!(out.contains("state NONE → SYN_RECV"), "{out}");
}

#[test]
#[ignore = "needs root, network namespaces and tshark: scripts/test.sh runs it"]
fn the_capture_opens_in_tshark_with_the_four_address_pairs() {
    common::require_root_and_iproute2();
    common::require_program("tshark", "tshark");
    let lab = Lab::up();
    one_server(&lab);
    let socket = lab
        .state_dir()
        .join("masqd.sock")
        .to_string_lossy()
        .into_owned();
    let file = lab
        .state_dir()
        .join("lab.pcapng")
        .to_string_lossy()
        .into_owned();
    let cmd = masqadm_cmd(&lab, &socket, &["--capture", &file, "--count", "1"]);
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let mut capture = lab.spawn("dir", "capture", &args);
    std::thread::sleep(Duration::from_millis(300));
    lab.curl(&format!("http://{VIP}/"));
    capture.wait_for_output("stage 4 director→client", Duration::from_secs(5));
    let status = capture.stop();
    assert!(status.is_some());
    let out = std::process::Command::new("tshark")
        .args(["-r", &file, "-T", "fields", "-E", "separator=|"])
        .args([
            "-e",
            "frame.comment",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "frame.interface_name",
        ])
        .output()
        .expect("tshark");
    assert!(out.status.success(), "{}", common::describe(&out));
    let rows: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        rows,
        vec![
            format!("stage 1 client→VIP|{CLIENT_IP}|{VIP}|vip-side (clients, VIP)"),
            format!("stage 2 director→RS|{CLIENT_IP}|{RS1_IP}|dip-side (real servers, DIP)"),
            format!("stage 3 RS→director|{RS1_IP}|{CLIENT_IP}|dip-side (real servers, DIP)"),
            format!("stage 4 director→client|{VIP}|{CLIENT_IP}|vip-side (clients, VIP)"),
        ]
    );
}
