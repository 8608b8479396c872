//! ipvsadm's counters, rates, connection listing and persistence after real traffic
//! through the lab, checked against what the client itself counted.

mod common;

use common::seed::stats_of;
use common::{Lab, CLIENT_IP, RS1_IP, RS2_IP, VIP};

const SERVICE: &str = "192.168.0.10:80";

fn ok(lab: &Lab, args: &[&str]) -> String {
    let (stdout, stderr, code) = lab.masqadm(args);
    assert_eq!(code, 0, "masqadm {}: {stderr}", args.join(" "));
    stdout
}

fn two_servers(lab: &Lab, extra: &[&str]) {
    let mut add = vec!["-A", "-t", SERVICE, "-s", "rr"];
    add.extend_from_slice(extra);
    ok(lab, &add);
    ok(lab, &["-a", "-t", SERVICE, "-r", RS1_IP, "-m"]);
    ok(lab, &["-a", "-t", SERVICE, "-r", RS2_IP, "-m"]);
}

/// The client's own count of IP packets and bytes to and from the VIP (nftables counters
/// in the client namespace: bytes are IP total lengths, as IPVS counts them).
fn client_counters(lab: &Lab) -> (u64, u64, u64, u64) {
    let out = lab.exec("client", &["nft", "-j", "list", "table", "ip", "masqtest"]);
    assert!(out.status.success(), "{}", common::describe(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("nft json");
    let mut counters = Vec::new();
    for item in v["nftables"].as_array().expect("nftables") {
        if let Some(rule) = item.get("rule") {
            for e in rule["expr"].as_array().expect("expr") {
                if let Some(c) = e.get("counter") {
                    counters.push((
                        rule["chain"].as_str().unwrap().to_owned(),
                        c["packets"].as_u64().unwrap(),
                        c["bytes"].as_u64().unwrap(),
                    ));
                }
            }
        }
    }
    let get = |chain: &str| {
        let c = counters.iter().find(|c| c.0 == chain).expect("counter");
        (c.1, c.2)
    };
    let ((out_p, out_b), (in_p, in_b)) = (get("out"), get("in"));
    (out_p, out_b, in_p, in_b)
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn stats_agree_with_what_the_client_sent_and_received() {
    let lab = Lab::up();
    two_servers(&lab, &[]);
    let rules = format!(
        "table ip masqtest {{
  chain out {{
    type filter hook output priority 0;
    ip daddr {VIP} counter
  }}
  chain in {{
    type filter hook input priority 0;
    ip saddr {VIP} counter
  }}
}}"
    );
    let nft = lab.exec("client", &["nft", &rules]);
    assert!(nft.status.success(), "{}", common::describe(&nft));
    // Warm up (ARP on both sides), let that connection finish, then start from zero.
    lab.curl(&format!("http://{VIP}/"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    ok(&lab, &["-Z"]);
    let before = client_counters(&lab);
    for _ in 0..10 {
        lab.curl(&format!("http://{VIP}/bytes/5000"));
    }
    // Each connection's last ACK leaves the client right after its FIN exchange.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let after = client_counters(&lab);
    let listing = ok(&lab, &["-L", "-n", "--stats", "--exact"]);
    let [conns, inpkts, outpkts, inbytes, outbytes] =
        stats_of(&listing, &format!("TCP  {SERVICE}"));
    assert_eq!(conns, 10, "{listing}");
    assert_eq!(
        inpkts,
        after.0 - before.0,
        "InPkts vs packets the client sent\n{listing}"
    );
    assert_eq!(
        inbytes,
        after.1 - before.1,
        "InBytes vs bytes the client sent\n{listing}"
    );
    assert_eq!(
        outpkts,
        after.2 - before.2,
        "OutPkts vs packets the client got\n{listing}"
    );
    assert_eq!(
        outbytes,
        after.3 - before.3,
        "OutBytes vs bytes the client got\n{listing}"
    );
    assert!(
        outbytes > 50_000,
        "five kB per connection came back: {listing}"
    );
    // The two real servers' lines add up to the service's.
    let dest_conns: u64 = listing
        .lines()
        .filter(|l| l.starts_with("  -> 192.168.100."))
        .map(|l| l.split_whitespace().nth(2).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(dest_conns, 10);
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn rates_follow_sustained_traffic() {
    let lab = Lab::up();
    two_servers(&lab, &[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut n = 0;
    while std::time::Instant::now() < deadline {
        lab.curl(&format!("http://{VIP}/"));
        n += 1;
    }
    let listing = ok(&lab, &["-L", "-n", "--rate"]);
    let service_line = listing
        .lines()
        .find(|l| l.starts_with(&format!("TCP  {SERVICE}")))
        .unwrap_or_else(|| panic!("{listing}"));
    let rates: Vec<u64> = service_line
        .split_whitespace()
        .skip(2)
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(rates.len(), 5, "{listing}");
    assert!(
        rates.iter().all(|r| *r > 0),
        "all rates non-zero after {n} connections in 5 s:\n{listing}"
    );
    // The estimator converges from below: never more than the real connection rate.
    assert!(
        rates[0] <= n as u64,
        "CPS {} for {n} connections in 5 s",
        rates[0]
    );
}

fn rs_name(body: &str) -> String {
    body.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn persistence_keeps_a_client_on_one_server() {
    let lab = Lab::up();
    two_servers(&lab, &["-p", "60"]);
    let first = rs_name(&lab.curl(&format!("http://{VIP}/")));
    for _ in 1..20 {
        assert_eq!(rs_name(&lab.curl(&format!("http://{VIP}/"))), first);
    }
    // A second client (with the default /32 mask) gets its own template; under rr it goes
    // to the other server.
    let add = lab.exec(
        "client",
        &[
            "ip",
            "addr",
            "add",
            "192.168.0.102/24",
            "dev",
            &lab.iface("cli"),
        ],
    );
    assert!(add.status.success(), "{}", common::describe(&add));
    let second = rs_name(&lab.curl_with(
        "client",
        &["--interface", "192.168.0.102"],
        &format!("http://{VIP}/"),
    ));
    assert_ne!(second, first, "two clients, two templates");
    let listing = ok(&lab, &["-L", "-n"]);
    assert!(
        listing.contains(&format!("TCP  {SERVICE} rr persistent 60\n")),
        "{listing}"
    );
    let persist = ok(&lab, &["-L", "-n", "--persistent-conn"]);
    for rs in [RS1_IP, RS2_IP] {
        let line = persist
            .lines()
            .find(|l| l.contains(&format!("{rs}:80")))
            .unwrap_or_else(|| panic!("{persist}"));
        assert_eq!(
            line.split_whitespace().nth(3),
            Some("1"),
            "one template per server\n{persist}"
        );
    }
    let conns = ok(&lab, &["-L", "-n", "-c"]);
    assert!(
        conns.lines().any(|l| l.starts_with("TCP ")
            && l.contains(" NONE ")
            && l.contains(&format!("{CLIENT_IP}:0 "))),
        "the template is listed:\n{conns}"
    );
}
