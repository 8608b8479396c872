//! Hostile frames through a running masqd: a corpus of malformed and odd frames,
//! built with scapy and sent from the client's namespace to the director's VIP-side MAC and
//! from a real server's namespace to its DIP-side MAC, while a normal client keeps asking
//! for pages. masqd must stay up, count every frame it refuses under the right drop reason
//! (checked kind by kind on its Prometheus counters), forward nothing malformed (checked on
//! a capture of everything it sent on both sides), answer TTL 1 with ICMP time exceeded as
//! a router does, and serve the normal client without a single failure.
//!
//! A second test sends jumbo SYNs with DF that do not fit the DIP side's MTU: they are owed
//! ICMP fragmentation needed, as IPVS answers them (`ensure_mtu_is_adequate` in the
//! kernel's `ip_vs_xmit.c`).
//!
//! Root, iproute2, tcpdump, nftables and Debian's python3-scapy are needed
//! (`scripts/install-deps.sh` installs them; the tests are `#[ignore]`d for that and fail,
//! naming what is missing, when run without it), and the binaries:
//! `cargo build --workspace --bins` first. The figures are printed.
//!
//! The corpus and what masqd must do with each kind are in `corpus.rs` (`hostile.py`
//! builds the frames), the lab and its captures in `lab.rs`, the sending in `sender.rs`,
//! the checks of the captured frames in `capture.rs` and of the counters in `results.rs`.

#[path = "../common/mod.rs"]
mod common;

mod capture;
mod corpus;
mod lab;
mod results;
mod sender;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use capture::check_captures;
use common::{CLIENT_IP, RS1_IP, RS2_IP, VIP};
use corpus::{Drop, FragNeeded, DIP_BASE, DIP_CASES, PER_KIND, VIP_BASE, VIP_CASES};
use lab::{check_masqd_alive, delta, drops, mac_of, masqadm_ok, HostileLab};
use results::{check_counters, expected_out, print_table};
use sender::Sender;

/// Requests of the normal client.
const NORMAL_REQUESTS: usize = 200;

/// A real connection from the client, held open while the corpus flies (the ICMP errors
/// and the TTL 1 segment are about it); once `GO` exists it asks for a page on it.
const HELD_PY: &str = include_str!("held.py");

#[test]
#[ignore = "needs root, network namespaces and python3-scapy: scripts/test.sh runs it"]
fn hostile_frames_are_counted_and_never_forwarded_while_a_client_is_served() {
    let mut h = HostileLab::up();
    let lab = &h.lab;
    let go = lab.state_dir().join("held-go");
    let held_script = lab.state_dir().join("held.py");
    std::fs::write(&held_script, HELD_PY).expect("writing held.py");
    let mut held = lab.spawn(
        "client",
        "held",
        &[
            "/usr/bin/python3",
            &held_script.to_string_lossy(),
            &go.to_string_lossy(),
        ],
    );
    held.wait_for_output("port ", Duration::from_secs(10));
    let held_port: u16 = held
        .output()
        .lines()
        .find_map(|l| l.strip_prefix("port "))
        .and_then(|p| p.trim().parse().ok())
        .expect("the held connection's port");
    let conns = masqadm_ok(lab, &["-L", "-n", "-c"]);
    let owner = conns
        .lines()
        .find(|l| l.contains(&format!(" {CLIENT_IP}:{held_port} ")))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("the held connection is not in the table:\n{conns}"))
        .to_owned();
    let (rs_ns, rs_iface, rs_ip) = if owner.starts_with(&format!("{RS1_IP}:")) {
        ("rs1", lab.iface("r1"), RS1_IP)
    } else {
        ("rs2", lab.iface("r2"), RS2_IP)
    };
    let rs_mac = mac_of(lab, rs_ns, &rs_iface);

    let loop_script = format!(
        "i=0; while [ $i -lt {NORMAL_REQUESTS} ]; do \
         curl -s -o /dev/null --max-time 10 \
         -w '%{{http_code}} exit %{{exitcode}} in %{{time_total}} s: %{{errormsg}}\\n' http://{VIP}/ || true; \
         i=$((i+1)); sleep 0.05; done; echo normal done"
    );
    let started = Instant::now();
    let mut normal = lab.spawn("client", "normal", &["sh", "-c", &loop_script]);
    let drops_before = drops(lab);
    let vip = Sender {
        side: "vip",
        ns: "client",
        iface: &h.cli,
        src_mac: &h.cli_mac,
        dst_mac: &h.ext_mac,
        base: VIP_BASE,
        held_port,
        rs_ip,
    };
    let mut results = vip.send(lab, VIP_CASES);
    let dip = Sender {
        side: "dip",
        ns: rs_ns,
        iface: &rs_iface,
        src_mac: &rs_mac,
        dst_mac: &h.int_mac,
        base: DIP_BASE,
        held_port,
        rs_ip,
    };
    results.extend(dip.send(lab, DIP_CASES));
    let corpus_secs = started.elapsed().as_secs_f64();
    std::fs::write(&go, b"").expect("releasing the held connection");
    held.wait_for_output("answer ", Duration::from_secs(10));
    normal.wait_for_output("normal done", Duration::from_secs(120));
    let normal_secs = started.elapsed().as_secs_f64();
    check_masqd_alive(lab);

    let mut failures = Vec::new();
    let codes: Vec<String> = normal
        .output()
        .lines()
        .filter(|l| *l != "normal done")
        .map(String::from)
        .collect();
    let ok = codes
        .iter()
        .filter(|c| c.starts_with("200 exit 0 "))
        .count();
    if codes.len() != NORMAL_REQUESTS || ok != NORMAL_REQUESTS {
        let failed: Vec<(usize, &String)> = codes
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.starts_with("200 exit 0 "))
            .collect();
        failures.push(format!(
            "normal client: {ok} of {} requests answered 200 (expected {NORMAL_REQUESTS}); \
             failed (request number, curl's word): {failed:?}",
            codes.len()
        ));
    }
    let answer = held.output();
    if !answer.contains("answer RS") {
        failures.push(format!("the held connection did not survive: {answer}"));
    }
    check_counters(&results, &mut failures);
    let total = delta(&drops(lab), &drops_before);
    let expected_total = results.iter().fold(BTreeMap::new(), |mut m, r| {
        if let Drop(reason) = r.expect {
            *m.entry(reason.to_owned()).or_default() += r.sent as u64;
        }
        m
    });
    if total != expected_total {
        failures.push(format!(
            "drops over the whole run {total:?}, expected {expected_total:?}"
        ));
    }

    let (mut seen, normal_frames) = check_captures(h.stop_captures(), &results, &mut failures);
    // A real server answers a forwarded well-formed SYN (with IP options, or padded) with a
    // SYN-ACK, which masqd returns to the client: evidence the SYN arrived intact.
    for kind in ["ip_options_syn", "ip_trailing_padding"] {
        let n = seen.remove(&("vip", kind)).unwrap_or(0);
        if n < PER_KIND {
            failures.push(format!(
                "{kind}: {n} SYN-ACKs came back for {PER_KIND} SYNs forwarded"
            ));
        }
    }
    let want = expected_out(&results);
    if seen != want {
        failures.push(format!(
            "frames the director sent, by kind: {seen:?}\nexpected: {want:?}"
        ));
    }
    if normal_frames == 0 {
        failures.push("the captures saw none of the normal client's traffic".into());
    }
    let slowest = codes
        .iter()
        .filter_map(|c| {
            c.split(" in ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .fold(0.0, f64::max);
    eprintln!(
        "hostile corpus: {} kinds x {PER_KIND} frames in {corpus_secs:.1} s; normal client \
         {ok}/{} answered 200 over {normal_secs:.1} s (slowest {slowest:.3} s); \
         {normal_frames} of its frames checked",
        results.len(),
        codes.len()
    );
    print_table(&results, &seen);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// As in IPVS, a packet with DF set that is larger than the path MTU (and not GSO) gets
/// ICMP fragmentation needed with the next-hop MTU, and is dropped. Here jumbo SYNs reach
/// masqd on a 9000-byte VIP side, for a DIP side of 1500.
#[test]
#[ignore = "needs root, network namespaces and python3-scapy: scripts/test.sh runs it"]
fn a_jumbo_syn_over_the_dip_mtu_gets_fragmentation_needed() {
    let mut h = HostileLab::up();
    let lab = &h.lab;
    let vip = Sender {
        side: "vip",
        ns: "client",
        iface: &h.cli,
        src_mac: &h.cli_mac,
        dst_mac: &h.ext_mac,
        base: VIP_BASE,
        held_port: 0,
        rs_ip: RS1_IP,
    };
    let results = vip.send(lab, &[("jumbo_syn_dont_fragment", FragNeeded)]);
    check_masqd_alive(lab);
    let mut failures = Vec::new();
    check_counters(&results, &mut failures);
    // masqd reports failed sends about once a second.
    std::thread::sleep(Duration::from_millis(1500));
    let log = std::fs::read_to_string(lab.state_dir().join("masqd.log")).unwrap_or_default();
    if let Some(line) = log.lines().find(|l| l.contains("I/O errors")) {
        failures.push(format!("masqd tried to send them anyway: {line}"));
    }
    let (seen, _) = check_captures(h.stop_captures(), &results, &mut failures);
    let want = expected_out(&results);
    if seen != want {
        failures.push(format!(
            "frames the director sent, by kind: {seen:?}\nexpected: {want:?}"
        ));
    }
    print_table(&results, &seen);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
