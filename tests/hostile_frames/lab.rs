//! The lab the hostile frames fly through: the seed services, jumbo frames on the client's
//! cable, captures of everything the director sends, and masqd's drop counters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{
    describe, require_python_module, require_root_and_iproute2, Background, Lab, LabOptions,
    RS1_IP, RS2_IP, VIP,
};
use crate::corpus::{DIP_BASE, EPHEMERAL, VIP_BASE};

/// masqd's metrics endpoint, where its drop counters are read.
const METRICS: &str = "127.0.0.1:9104";
/// MTU of the client's cable, for the jumbo frames.
const JUMBO_MTU: &str = "9000";

/// `masqadm ARGS…`, insisting that it exits 0; its stdout.
pub fn masqadm_ok(lab: &Lab, args: &[&str]) -> String {
    let (stdout, stderr, code) = lab.masqadm(args);
    assert!(
        code == 0,
        "masqadm {} failed: exit {code}\n{stdout}{stderr}",
        args.join(" ")
    );
    stdout
}

/// A command in a lab namespace, insisting that it succeeds; its stdout.
pub fn exec_ok(lab: &Lab, ns: &str, args: &[&str]) -> String {
    let out = lab.exec(ns, args);
    assert!(
        out.status.success(),
        "{} in {ns}:\n{}",
        args.join(" "),
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The MAC address of `iface` in namespace `ns`.
pub fn mac_of(lab: &Lab, ns: &str, iface: &str) -> String {
    exec_ok(
        lab,
        ns,
        &["cat", &format!("/sys/class/net/{iface}/address")],
    )
    .trim()
    .to_owned()
}

/// Drop counters by reason, from masqd's Prometheus endpoint.
pub fn drops(lab: &Lab) -> BTreeMap<String, u64> {
    let text = exec_ok(
        lab,
        "dir",
        &[
            "curl",
            "-sf",
            "-m",
            "5",
            &format!("http://{METRICS}/metrics"),
        ],
    );
    text.lines()
        .filter_map(|l| l.strip_prefix("masq_dropped_frames_total{reason=\""))
        .filter_map(|l| {
            let (reason, rest) = l.split_once("\"}")?;
            Some((reason.to_owned(), rest.trim().parse().ok()?))
        })
        .collect()
}

/// How much each counter moved from `before` to `after`, for those that moved.
pub fn delta(
    after: &BTreeMap<String, u64>,
    before: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(r, n)| (r.clone(), n - before.get(r).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// A lab with the seed services (TCP and UDP), jumbo frames possible on the client's
/// cable, and captures of everything the director sends on either side.
pub struct HostileLab {
    pub lab: Lab,
    pub cli: String,
    pub cli_mac: String,
    pub ext_mac: String,
    pub int_mac: String,
    int_pcap: PathBuf,
    cli_pcap: PathBuf,
    captures: Vec<Background>,
}

impl HostileLab {
    /// # Panics
    ///
    /// When not root, when python3-scapy is missing, or when the lab does not come up.
    pub fn up() -> HostileLab {
        require_root_and_iproute2();
        require_python_module("scapy", "python3-scapy");
        let lab = Lab::up_with(LabOptions {
            offloads_off: true,
            masqd_args: &["--metrics", METRICS],
            ..LabOptions::default()
        });
        for args in [
            &["-A", "-t", "192.168.0.10:80", "-s", "rr"][..],
            &["-a", "-t", "192.168.0.10:80", "-r", RS1_IP, "-m"][..],
            &["-a", "-t", "192.168.0.10:80", "-r", RS2_IP, "-m"][..],
            &["-A", "-u", "192.168.0.10:7", "-s", "rr"][..],
            &["-a", "-u", "192.168.0.10:7", "-r", RS1_IP, "-m"][..],
            &["-a", "-u", "192.168.0.10:7", "-r", RS2_IP, "-m"][..],
        ] {
            masqadm_ok(&lab, args);
        }
        let (cli, ext, int) = (lab.iface("cli"), lab.iface("ext"), lab.iface("int"));
        // The real servers' switch must not judge IP headers: with br_netfilter loaded on
        // the host, a bridge drops bad ones before they reach the director.
        exec_ok(
            &lab,
            "sw",
            &[
                "sh",
                "-c",
                "[ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || \
                 sysctl -qw net.bridge.bridge-nf-call-iptables=0",
            ],
        );
        // Jumbo frames get as far as masqd; the DIP side keeps 1500.
        exec_ok(
            &lab,
            "client",
            &["ip", "link", "set", &cli, "mtu", JUMBO_MTU],
        );
        exec_ok(&lab, "dir", &["ip", "link", "set", &ext, "mtu", JUMBO_MTU]);
        // The normal client's ports stay clear of the corpus markers, and the client's
        // kernel does not answer the real servers' SYN-ACKs to corpus SYNs with RSTs.
        let range = format!("{} {}", EPHEMERAL.0, EPHEMERAL.1);
        exec_ok(
            &lab,
            "client",
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv4.ip_local_port_range={range}"),
            ],
        );
        exec_ok(
            &lab,
            "client",
            &[
                "nft",
                &format!(
                    "add table inet hostile; \
                     add chain inet hostile out {{ type filter hook output priority 0; }}; \
                     add rule inet hostile out tcp sport {VIP_BASE}-{} tcp flags rst drop",
                    DIP_BASE + 9999
                ),
            ],
        );
        let (cli_mac, ext_mac, int_mac) = (
            mac_of(&lab, "client", &cli),
            mac_of(&lab, "dir", &ext),
            mac_of(&lab, "dir", &int),
        );
        let int_pcap = lab.state_dir().join("int.pcap");
        let cli_pcap = lab.state_dir().join("cli.pcap");
        let mut captures = Vec::new();
        for (ns, iface, pcap, mac) in [
            ("dir", &int, &int_pcap, &int_mac),
            ("client", &cli, &cli_pcap, &ext_mac),
        ] {
            let mut capture = lab.spawn(
                ns,
                &format!("tcpdump-{iface}"),
                &[
                    "tcpdump",
                    "-i",
                    iface,
                    "-U",
                    "-s",
                    "0",
                    "-nn",
                    "-w",
                    &pcap.to_string_lossy(),
                    "ether",
                    "src",
                    mac,
                ],
            );
            capture.wait_for_output("listening on", Duration::from_secs(10));
            captures.push(capture);
        }
        lab.curl(&format!("http://{VIP}/"));
        HostileLab {
            lab,
            cli,
            cli_mac,
            ext_mac,
            int_mac,
            int_pcap,
            cli_pcap,
            captures,
        }
    }

    /// Stops the captures, once what the director sent last has been written: the capture
    /// file of each side.
    pub fn stop_captures(&mut self) -> [(&'static str, &Path); 2] {
        std::thread::sleep(Duration::from_millis(500));
        for capture in self.captures.drain(..) {
            capture.stop();
        }
        [("dip", &self.int_pcap), ("vip", &self.cli_pcap)]
    }
}

/// masqd is up, answers masqadm and never panicked.
pub fn check_masqd_alive(lab: &Lab) {
    let listing = masqadm_ok(lab, &["-L", "-n"]);
    assert!(listing.contains("TCP  192.168.0.10:80 rr"), "{listing}");
    let log = std::fs::read_to_string(lab.state_dir().join("masqd.log")).unwrap_or_default();
    assert!(!log.contains("panicked"), "masqd panicked:\n{log}");
}
