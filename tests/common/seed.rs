//! The lab's seed: its services, the weighted round robin that tests of a start, a stop
//! or a page restore, and what every packet I/O back end must do in the classic lab,
//! checked the same way for each: the seed's rr over 20 connections, what the real
//! servers see, a UDP echo through the VIP, and `masqadm -L -n --stats` counting it all.

use std::process::Output;

use super::{describe, Lab, CLIENT_IP, DIP_IP, RS1_IP, RS2_IP, VIP};

/// The seed's TCP service.
pub const SERVICE: &str = "192.168.0.10:80";
/// The UDP echo service the checks add.
pub const UDP_SERVICE: &str = "192.168.0.10:7";
/// What the client fetches.
pub const URL: &str = "http://192.168.0.10/";
/// The seed's weighted round robin, as `masqadm -S -n` prints it: RS1 weight 3, RS2
/// weight 1.
pub const WRR_RULES: &str = "-A -t 192.168.0.10:80 -s wrr\n-a -t 192.168.0.10:80 -r 192.168.100.7:80 -m -w 3\n-a -t 192.168.0.10:80 -r 192.168.100.9:80 -m -w 1\n";

/// `masqadm -A PROTO SERVICE -s rr` with RS1 and RS2 behind it (`-m`, on the service's
/// port): `proto` is `-t` or `-u`.
pub fn rr_with_both(lab: &Lab, proto: &str, service: &str) {
    lab.masqadm_ok(&["-A", proto, service, "-s", "rr"]);
    for rs in [RS1_IP, RS2_IP] {
        lab.masqadm_ok(&["-a", proto, service, "-r", rs, "-m"]);
    }
}

/// One request to the VIP from the client (4 s at most): whether it got a 200.
pub fn answered(lab: &Lab) -> bool {
    let out = lab.exec(
        "client",
        &[
            "curl",
            "-s",
            "--max-time",
            "4",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            URL,
        ],
    );
    String::from_utf8_lossy(&out.stdout) == "200"
}

/// What [`tally`] saw: attempts that succeeded and failed, and the largest measure.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    pub ok: u32,
    pub failed: u32,
    pub most: u64,
}

/// For `duration`, makes `attempt` after attempt (e.g. [`answered`]) and takes `measure`
/// after each (e.g. a table's size), as a flood goes on.
pub fn tally(
    duration: std::time::Duration,
    mut attempt: impl FnMut() -> bool,
    mut measure: impl FnMut() -> u64,
) -> Tally {
    let start = std::time::Instant::now();
    let mut t = Tally::default();
    while start.elapsed() < duration {
        if attempt() {
            t.ok += 1;
        } else {
            t.failed += 1;
        }
        t.most = t.most.max(measure());
    }
    t
}

/// Restores [`WRR_RULES`] (`masqadm -R`), insisting that it succeeds.
pub fn restore_wrr(lab: &Lab) {
    let (_, stderr, code) = lab.masqadm_stdin(&["-R"], WRR_RULES);
    assert_eq!((code, stderr.as_str()), (0, ""), "masqadm -R");
}

/// `n` requests to the VIP from the client, all of which must succeed; `after` names
/// what they follow, for the failure message.
pub fn requests_succeed(lab: &Lab, n: usize, after: &str) {
    let mut failed = Vec::new();
    for i in 0..n {
        let out = lab.exec(
            "client",
            &["curl", "-sS", "--max-time", "3", &format!("http://{VIP}/")],
        );
        if !out.status.success() {
            failed.push(format!("request {i}: {}", describe(&out)));
        }
    }
    assert!(failed.is_empty(), "after {after}:\n{}", failed.join("\n"));
}

/// The last octet of the real server that wrote `body`, checking that the name and the
/// address it reports agree.
pub fn answered_by(body: &str) -> u8 {
    match body {
        "RS1 192.168.100.7\n" => 7,
        "RS2 192.168.100.9\n" => 9,
        other => panic!("not an answer of RS1 or RS2: {other:?}"),
    }
}

/// The counters of the `--stats` line that starts with `prefix`: Conns, InPkts, OutPkts,
/// InBytes, OutBytes.
pub fn stats_of(listing: &str, prefix: &str) -> [u64; 5] {
    let line = listing
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in\n{listing}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .skip(2)
        .map(|n| n.parse().expect("a number"))
        .collect();
    numbers
        .try_into()
        .unwrap_or_else(|_| panic!("five counters expected: {line}"))
}

/// The lines of a real server's connection log (`<ms> client=IP:PORT local=IP:PORT`),
/// checked for form.
pub fn log_lines(log: &str) -> Vec<&str> {
    log.lines()
        .inspect(|line| {
            let mut fields = line.split(' ');
            let ms = fields.next().unwrap_or_default();
            assert!(
                ms.parse::<u64>().is_ok() && fields.count() == 2,
                "malformed log line {line:?}"
            );
        })
        .collect()
}

/// Each real server logged exactly `connections` connections, all from the client's own
/// address (LVS-NAT rewrites only the destination) to the server's own. masqd's own TCP
/// health probes, from the DIP, are not the client's connections and are left out.
pub fn each_server_logged(lab: &Lab, connections: usize) {
    let probe = format!(" client={DIP_IP}:");
    for (n, rs_ip) in [(1, RS1_IP), (2, RS2_IP)] {
        let log = lab.rs_log(n);
        let lines: Vec<&str> = log_lines(&log)
            .into_iter()
            .filter(|line| !line.contains(&probe))
            .collect();
        assert_eq!(lines.len(), connections, "RS{n}'s log:\n{log}");
        for line in lines {
            assert!(
                line.contains(&format!(" client={CLIENT_IP}:"))
                    && line.ends_with(&format!(" local={rs_ip}:80")),
                "RS{n} logged {line:?}"
            );
        }
    }
}

/// On a fresh lab: `-A -t SERVICE -s rr` with RS1 then RS2; 20 connections alternate
/// RS2, RS1, … and each server logs 10, from the client's own address to its own; a UDP
/// service to RS1 echoes 3 datagrams carrying `message`; the `--stats` counters hold 20
/// TCP connections with packets and bytes both ways, and 1 UDP connection of 3 packets
/// each way.
pub fn forwards_rr_and_udp(lab: &Lab, message: &str) {
    lab.masqadm_ok(&["-A", "-t", SERVICE, "-s", "rr"]);
    lab.masqadm_ok(&["-a", "-t", SERVICE, "-r", RS1_IP, "-m"]);
    lab.masqadm_ok(&["-a", "-t", SERVICE, "-r", RS2_IP, "-m"]);
    let picks: Vec<u8> = (0..20).map(|_| answered_by(&lab.curl(URL))).collect();
    assert_eq!(picks, [9, 7].repeat(10), "rr picks of 20 connections");
    each_server_logged(lab, 10);

    lab.masqadm_ok(&["-A", "-u", UDP_SERVICE, "-s", "rr"]);
    lab.masqadm_ok(&["-a", "-u", UDP_SERVICE, "-r", RS1_IP, "-m"]);
    assert_eq!(
        udp_client(lab, message, "3"),
        format!("RS1 {message}\n").repeat(3)
    );

    let listing = lab.masqadm_ok(&["-L", "-n", "--stats", "--exact"]);
    let tcp = stats_of(&listing, &format!("TCP  {SERVICE}"));
    assert_eq!(tcp[0], 20, "TCP connections:\n{listing}");
    // Each connection is a handshake, a request, its answer and the close: several packets
    // and bytes each way.
    assert!(
        tcp[1] >= 20 * 4 && tcp[2] >= 20 * 4,
        "TCP packets:\n{listing}"
    );
    assert!(tcp[3] > 0 && tcp[4] > 0, "TCP bytes:\n{listing}");
    let udp = stats_of(&listing, &format!("UDP  {UDP_SERVICE}"));
    assert_eq!(
        udp[..3],
        [1, 3, 3],
        "UDP conns, in and out packets:\n{listing}"
    );
    assert!(udp[3] > 0 && udp[4] > 0, "UDP bytes:\n{listing}");
}

/// `masq-labsrv udp-client` in the client namespace to the UDP service: `count` datagrams
/// carrying `message` from one new source port; what it printed and said.
pub fn try_udp_client(lab: &Lab, message: &str, count: &str) -> Output {
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

/// Runs `lab.sh demo` and checks its answers: rr over the two real servers, then wrr 3:1.
/// `answered_by` reads which server (7 or 9) gave one answer. Returns what the demo
/// printed.
pub fn demo_answers_rr_then_wrr(lab: &Lab, answered_by: fn(&str) -> u8) -> String {
    let out = lab.script(&["demo"]);
    assert!(out.status.success(), "lab.sh demo:\n{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
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
    text
}
