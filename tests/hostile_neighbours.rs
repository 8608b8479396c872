//! Forged ARP on both of the director's segments must not move anybody.
//!
//! masqd resolves the real servers and the clients itself, so its neighbour tables are what
//! an ARP spoofer attacks. From the client's segment, the client forges requests, replies
//! and gratuitous ARP claiming to be RS1 (and RS2); from the real servers' segment a rogue
//! host (`MASQ_LAB_ROGUE=1`, 192.168.100.66) claims RS1's and the client's addresses. After
//! each forgery, 20 requests through the VIP must all be answered, by both real servers in
//! turn. The tables are per side, so the client side can never say where a real server is;
//! on either segment the entry confirmed first stays and the conflict is logged once (a
//! real server's also listed by `masqadm --check`). A flood of on-link strangers fills the
//! VIP side's table only to `--max-neighbours`.
//!
//! Needs root, iproute2, nftables and Debian's python3-scapy (`scripts/install-deps.sh`).

mod common;

use std::process::Output;

use common::seed::answered_by;
use common::{describe, seed, Lab, LabOptions, CLIENT_IP, RS1_IP, RS2_IP, VIP};

const BROADCAST: &str = "ff:ff:ff:ff:ff:ff";

/// One forged ARP frame: Ethernet source and destination, then the ARP fields.
struct Forgery {
    what: &'static str,
    op: u8,
    eth_dst: String,
    sender_ip: &'static str,
    target_ip: &'static str,
    target_mac: String,
}

fn mac_of(lab: &Lab, ns: &str, iface: &str) -> String {
    let out = lab.exec(ns, &["cat", &format!("/sys/class/net/{iface}/address")]);
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Sends `forgery` three times out of `iface` in namespace `ns`, with that interface's MAC
/// as the Ethernet source and the ARP sender's hardware address.
fn forge(lab: &Lab, ns: &str, iface: &str, forgery: &Forgery) {
    let my_mac = mac_of(lab, ns, iface);
    let script = format!(
        "from scapy.all import ARP, Ether, sendp\n\
         f = Ether(src='{my_mac}', dst='{eth_dst}') / ARP(op={op}, hwsrc='{my_mac}', psrc='{sender}', hwdst='{tmac}', pdst='{target}')\n\
         sendp([f] * 3, iface='{iface}', verbose=False)\n",
        eth_dst = forgery.eth_dst,
        op = forgery.op,
        sender = forgery.sender_ip,
        tmac = forgery.target_mac,
        target = forgery.target_ip,
    );
    let out: Output = lab.exec(ns, &["/usr/bin/python3", "-c", &script]);
    assert!(
        out.status.success(),
        "sending {} from {ns}: {}",
        forgery.what,
        describe(&out)
    );
}

/// 20 requests through the VIP: every one answered, by both real servers alternately.
fn twenty_requests_succeed(lab: &Lab, after: &str) {
    let mut answers = Vec::new();
    for _ in 0..20 {
        let out = lab.exec(
            "client",
            &["curl", "-sS", "--max-time", "3", &format!("http://{VIP}/")],
        );
        answers.push(if out.status.success() {
            match answered_by(&String::from_utf8_lossy(&out.stdout)) {
                7 => "RS1".to_owned(),
                _ => "RS2".to_owned(),
            }
        } else {
            "FAIL".to_owned()
        });
    }
    let failed = answers.iter().filter(|a| *a == "FAIL").count();
    assert_eq!(
        failed,
        0,
        "after {after}: {failed} of 20 requests failed: {}",
        answers.join(" ")
    );
    for rs in ["RS1", "RS2"] {
        assert_eq!(
            answers.iter().filter(|a| *a == rs).count(),
            10,
            "after {after}: rr must alternate: {}",
            answers.join(" ")
        );
    }
}

#[test]
#[ignore = "needs root, network namespaces and python3-scapy: scripts/test.sh runs it"]
fn forged_arp_from_either_segment_moves_nobody() {
    common::require_python_module("scapy", "python3-scapy");
    let lab = Lab::up_with(LabOptions {
        rogue: true,
        ..LabOptions::default()
    });
    seed::rr_with_both(&lab, "-t", seed::SERVICE);
    twenty_requests_succeed(&lab, "nothing forged yet");

    let ext_mac = mac_of(&lab, "dir", &lab.iface("ext"));
    let int_mac = mac_of(&lab, "dir", &lab.iface("int"));
    let zero = "00:00:00:00:00:00".to_owned();
    let cli = lab.iface("cli");
    let rogue = lab.iface("rg");

    // The client claims to be a real server, every way ARP allows.
    for rs in [RS1_IP, RS2_IP] {
        let forgeries = [
            Forgery {
                what:
                    "an ARP request for the VIP from the client's MAC with a real server's address",
                op: 1,
                eth_dst: BROADCAST.to_owned(),
                sender_ip: rs,
                target_ip: VIP,
                target_mac: zero.clone(),
            },
            Forgery {
                what: "an unsolicited ARP reply to the director with a real server's address",
                op: 2,
                eth_dst: ext_mac.clone(),
                sender_ip: rs,
                target_ip: VIP,
                target_mac: ext_mac.clone(),
            },
            Forgery {
                what: "a gratuitous ARP for a real server's address from the client",
                op: 1,
                eth_dst: BROADCAST.to_owned(),
                sender_ip: rs,
                target_ip: rs,
                target_mac: zero.clone(),
            },
        ];
        for f in &forgeries {
            forge(&lab, "client", &cli, f);
            twenty_requests_succeed(&lab, &format!("{} ({rs})", f.what));
        }
    }

    // A rogue host on the real servers' segment claims RS1, then the client.
    for victim in [RS1_IP, CLIENT_IP] {
        let forgeries = [
            Forgery {
                what: "an ARP request for the DIP from the rogue host",
                op: 1,
                eth_dst: BROADCAST.to_owned(),
                sender_ip: victim,
                target_ip: "192.168.100.10",
                target_mac: zero.clone(),
            },
            Forgery {
                what: "an unsolicited ARP reply to the director from the rogue host",
                op: 2,
                eth_dst: int_mac.clone(),
                sender_ip: victim,
                target_ip: "192.168.100.10",
                target_mac: int_mac.clone(),
            },
            Forgery {
                what: "a gratuitous ARP reply from the rogue host",
                op: 2,
                eth_dst: BROADCAST.to_owned(),
                sender_ip: victim,
                target_ip: victim,
                target_mac: BROADCAST.to_owned(),
            },
        ];
        for f in &forgeries {
            forge(&lab, "rogue", &rogue, f);
            twenty_requests_succeed(&lab, &format!("{} claiming {victim}", f.what));
        }
    }

    // Another MAC on the client's segment claims the client's own address, three times
    // over: the client keeps it.
    let script = format!(
        "from scapy.all import ARP, Ether, sendp\n\
         f = Ether(src='02:66:00:00:00:65', dst='ff:ff:ff:ff:ff:ff') / ARP(op=2, hwsrc='02:66:00:00:00:65', psrc='{CLIENT_IP}', hwdst='ff:ff:ff:ff:ff:ff', pdst='{CLIENT_IP}')\n\
         sendp([f] * 3, iface='{cli}', verbose=False)\n"
    );
    let out = lab.exec("client", &["/usr/bin/python3", "-c", &script]);
    assert!(out.status.success(), "{}", describe(&out));
    twenty_requests_succeed(&lab, "another MAC claiming the client's address");
    // Each conflict is said once: RS1's by the diagnosis (and --check), the client's by
    // the neighbour log.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let log = std::fs::read_to_string(lab.state_dir().join("masqd.log")).unwrap_or_default();
    let client_said = log
        .lines()
        .filter(|l| l.contains("ARP conflict on the vip side: 192.168.0.101"))
        .count();
    assert_eq!(
        client_said, 1,
        "the conflict about the client is logged once:\n{log}"
    );
    let said = log
        .lines()
        .filter(|l| l.contains("192.168.100.7") && l.contains("two hosts"))
        .count();
    assert_eq!(said, 1, "the conflict about RS1 is logged once:\n{log}");
    let (check, _, _) = lab.masqadm(&["--check"]);
    assert!(
        check.contains("192.168.100.7"),
        "--check names the conflict about RS1:\n{check}"
    );
}

#[test]
#[ignore = "needs root, network namespaces and python3-scapy: scripts/test.sh runs it"]
fn a_flood_of_on_link_strangers_fills_the_vip_sides_neighbour_table_only_to_its_bound() {
    common::require_python_module("scapy", "python3-scapy");
    let lab = Lab::up_with(LabOptions {
        masqd_args: &["--max-neighbours", "32", "--metrics", "127.0.0.1:9108"],
        ..LabOptions::default()
    });
    seed::rr_with_both(&lab, "-t", seed::SERVICE);
    twenty_requests_succeed(&lab, "nothing sent yet");
    // 240 on-link addresses that are not there: each asks for the VIP (a requester entry)
    // and sends a SYN, whose answer masqd must resolve the address for (an entry that never
    // answers). Five rounds.
    let cli = lab.iface("cli");
    let script = format!(
        "from scapy.all import ARP, IP, TCP, Ether, sendp\n\
         frames = []\n\
         for i in range(10, 250):\n\
         \x20   mac = '02:aa:00:00:00:%02x' % i\n\
         \x20   ip = '192.168.0.%d' % i\n\
         \x20   frames.append(Ether(src=mac, dst='ff:ff:ff:ff:ff:ff') / ARP(op=1, hwsrc=mac, psrc=ip, pdst='{VIP}'))\n\
         \x20   frames.append(Ether(src=mac, dst='{dst}') / IP(src=ip, dst='{VIP}') / TCP(sport=1000 + i, dport=80, flags='S'))\n\
         sendp(frames * 5, iface='{cli}', verbose=False)\n",
        dst = mac_of(&lab, "dir", &lab.iface("ext")),
    );
    let out = lab.exec("client", &["/usr/bin/python3", "-c", &script]);
    assert!(out.status.success(), "{}", describe(&out));
    let entries = lab.metric(
        "127.0.0.1:9108",
        "masq_table_entries{table=\"neighbours\",side=\"vip\"}",
    );
    let shed = lab.metric(
        "127.0.0.1:9108",
        "masq_table_shed_total{table=\"neighbours\",side=\"vip\",reason=\"shed\"}",
    );
    let refused = lab.metric(
        "127.0.0.1:9108",
        "masq_table_shed_total{table=\"neighbours\",side=\"vip\",reason=\"refused\"}",
    );
    eprintln!(
        "240 strangers × 5: VIP-side neighbour entries {entries} (bound 32), shed {shed}, refused {refused}"
    );
    assert!(
        entries <= 32,
        "{entries} VIP-side neighbour entries for a bound of 32"
    );
    assert!(shed + refused > 0, "the bound was met");
    // The real client, resolved and answering, is served as before, and so is a client
    // masqd never saw (its answers need a neighbour entry: a stranger's makes room). Its
    // address is outside the strangers' .10–.249: one a stranger claimed stays the
    // stranger's while that entry is fresh (docs/security.md).
    twenty_requests_succeed(&lab, "a flood of on-link strangers");
    let add = lab.exec(
        "client",
        &["ip", "addr", "add", "192.168.0.252/24", "dev", &cli],
    );
    assert!(add.status.success(), "{}", describe(&add));
    for _ in 0..4 {
        let out = lab.exec(
            "client",
            &[
                "curl",
                "-sS",
                "--max-time",
                "3",
                "--interface",
                "192.168.0.252",
                &format!("http://{VIP}/"),
            ],
        );
        assert!(
            out.status.success(),
            "a new client after the flood: {}",
            describe(&out)
        );
    }
}
