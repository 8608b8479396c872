//! Connection sync end to end: the lab's masqd as the master, a second masqd on the real
//! servers' switch as the backup (a namespace of this test's own, standing by: it answers
//! no ARP for the VIP), the same rules in both. Held client connections through the master
//! show up in the backup's `-L -c -n` with the state and real server the master has, and a
//! message cut short or lying about its size, sent to the backup's group and port, is
//! refused and counted in its metrics.
//!
//! Root, iproute2 and python3 are needed (`#[ignore]`d for that; `scripts/test.sh` runs
//! it), and the binaries: `cargo build --workspace --bins` first.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{describe, sample, Background, Lab, LabOptions, CLIENT_IP, RS1_IP, RS2_IP};

const SERVICE: &str = "192.168.0.10:80";
const SYNCID: &str = "9";
/// The backup's address on the real servers' segment, and on its own VIP-side link.
const BACKUP_DIP: &str = "192.168.100.11/24";
const BACKUP_VIP_SIDE: &str = "192.168.0.11/24";
const METRICS: &str = "127.0.0.1:9101";
/// Connections the client holds open through the master.
const HELD: usize = 20;

/// Opens `n` HTTP/1.1 connections to the VIP, one request each (kept alive by the
/// server), says so, and holds them.
const HOLDER: &str = r#"
import socket, sys, time
n = int(sys.argv[1])
held = []
for i in range(n):
    s = socket.create_connection(("192.168.0.10", 80), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("closed by the server")
        answer += chunk
    held.append(s)
print("held", n, flush=True)
time.sleep(60)
"#;

/// Sends each argument (hex) as one datagram to the default sync group and port.
const INJECT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
for payload in sys.argv[1:]:
    s.sendto(bytes.fromhex(payload), ("224.0.0.81", 8848))
"#;

/// The backup director: namespace `PREFIX-bak`, linked to the lab's switch, and its
/// masqd. Dropping it stops masqd and removes the namespace (the switch's end of its
/// link goes with the lab).
struct BackupDirector<'a> {
    lab: &'a Lab,
    masqd: Option<Background>,
    socket: PathBuf,
}

impl<'a> BackupDirector<'a> {
    fn up(lab: &'a Lab) -> BackupDirector<'a> {
        let ns = format!("{}-bak", lab.prefix());
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("ip");
            assert!(out.status.success(), "ip {args:?}:\n{}", describe(&out));
        };
        ip(&["netns", "add", &ns]);
        // From here on, whatever fails, the namespace goes when this value drops.
        let backup = BackupDirector {
            lab,
            masqd: None,
            socket: lab.state_dir().join("backup.sock"),
        };
        let (dip, switch_port) = (lab.iface("bi"), lab.iface("bs"));
        let (vip_side, vip_peer) = (lab.iface("bx"), lab.iface("by"));
        let sw = format!("{}-sw", lab.prefix());
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &ns,
            "link",
            "add",
            &dip,
            "type",
            "veth",
            "peer",
            "name",
            &switch_port,
            "netns",
            &sw,
        ]);
        ip(&[
            "-n",
            &sw,
            "link",
            "set",
            &switch_port,
            "master",
            &lab.iface("br"),
        ]);
        ip(&["-n", &sw, "link", "set", &switch_port, "up"]);
        // Its VIP side leads nowhere: the clients reach the master only.
        ip(&[
            "-n", &ns, "link", "add", &vip_side, "type", "veth", "peer", "name", &vip_peer,
        ]);
        for link in [&dip, &vip_side, &vip_peer] {
            ip(&["-n", &ns, "link", "set", link, "up"]);
        }
        ip(&["-n", &ns, "addr", "add", BACKUP_DIP, "dev", &dip]);
        ip(&["-n", &ns, "addr", "add", BACKUP_VIP_SIDE, "dev", &vip_side]);
        let masqd = lab.bin("masqd");
        let socket = backup.socket.to_string_lossy().into_owned();
        let mut backup = backup;
        backup.masqd = Some(lab.spawn(
            "bak",
            "backup-masqd",
            &[
                masqd.to_str().expect("a UTF-8 path"),
                "--vip-iface",
                &vip_side,
                "--dip-iface",
                &dip,
                "--socket",
                &socket,
                "--metrics",
                METRICS,
            ],
        ));
        let deadline = Instant::now() + Duration::from_secs(20);
        while backup.masqadm(&["-L", "-n"]).status.code() != Some(0) {
            assert!(
                Instant::now() < deadline,
                "the backup's masqd did not answer within 20 s:\n{}",
                backup
                    .masqd
                    .as_ref()
                    .map(Background::output)
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        backup
    }

    fn masqadm(&self, args: &[&str]) -> Output {
        Command::new(self.lab.bin("masqadm"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("masqadm")
    }

    fn masqadm_ok(&self, args: &[&str]) -> String {
        let out = self.masqadm(args);
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "backup: masqadm {args:?}:\n{}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The first sample of the backup's metrics whose line starts with `line_start`.
    fn metric(&self, line_start: &str) -> u64 {
        let out = self.lab.exec(
            "bak",
            &["curl", "-sf", &format!("http://{METRICS}/metrics")],
        );
        sample(&String::from_utf8_lossy(&out.stdout), line_start)
    }
}

impl Drop for BackupDirector<'_> {
    fn drop(&mut self) {
        if let Some(masqd) = self.masqd.take() {
            if std::thread::panicking() {
                eprintln!("--- the backup's masqd\n{}", masqd.output());
            }
            masqd.stop();
        }
        let ns = format!("{}-bak", self.lab.prefix());
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    }
}

fn load_rules(masqadm_ok: impl Fn(&[&str]) -> String) {
    masqadm_ok(&["-A", "-t", SERVICE, "-s", "rr"]);
    masqadm_ok(&["-a", "-t", SERVICE, "-r", RS1_IP, "-m"]);
    masqadm_ok(&["-a", "-t", SERVICE, "-r", RS2_IP, "-m"]);
}

/// (state, client, virtual, real server) of the client's connections in a `-L -c -n`.
fn client_conns(listing: &str) -> BTreeSet<(String, String, String, String)> {
    listing
        .lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 6 && f[3].starts_with(CLIENT_IP)).then(|| {
                (
                    f[2].to_string(),
                    f[3].to_string(),
                    f[4].to_string(),
                    f[5].to_string(),
                )
            })
        })
        .collect()
}

#[test]
#[ignore = "needs root, network namespaces and python3: scripts/test.sh runs it"]
fn a_backup_lists_the_masters_held_connections_and_refuses_bad_messages() {
    common::require_program("python3", "python3");
    let lab = Lab::up_with(LabOptions {
        masqd_args: &["--metrics", METRICS],
        ..LabOptions::default()
    });
    let backup = BackupDirector::up(&lab);
    load_rules(|args| lab.masqadm_ok(args));
    load_rules(|args| backup.masqadm_ok(args));
    let (master_if, backup_if) = (lab.iface("int"), lab.iface("bi"));
    backup.masqadm_ok(&[
        "--start-daemon",
        "backup",
        "--mcast-interface",
        &backup_if,
        "--syncid",
        SYNCID,
    ]);
    lab.masqadm_ok(&[
        "--start-daemon",
        "master",
        "--mcast-interface",
        &master_if,
        "--syncid",
        SYNCID,
    ]);
    assert!(backup
        .masqadm_ok(&["-L", "--daemon"])
        .starts_with(&format!("backup sync daemon (mcast={backup_if}, syncid=9,")));

    let mut holder = lab.spawn(
        "client",
        "holder",
        &["/usr/bin/python3", "-c", HOLDER, &HELD.to_string()],
    );
    holder.wait_for_output(&format!("held {HELD}"), Duration::from_secs(20));
    let held_at = Instant::now();
    let on_master = client_conns(&lab.masqadm_ok(&["-L", "-c", "-n"]));
    assert_eq!(on_master.len(), HELD, "{on_master:?}");
    assert!(
        on_master.iter().all(|c| c.0 == "ESTABLISHED"),
        "{on_master:?}"
    );
    // Synced at each connection's third client packet, flushed within a second.
    let mut on_backup = BTreeSet::new();
    while on_backup != on_master {
        assert!(
            held_at.elapsed() < Duration::from_secs(10),
            "after 10 s the backup lists {on_backup:?}, the master {on_master:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
        on_backup = client_conns(&backup.masqadm_ok(&["-L", "-c", "-n"]));
    }
    let listed_after = held_at.elapsed();
    let created = backup.metric("masq_sync_connections_total{role=\"backup\",outcome=\"created\"}");
    let sent_conns = lab.metric(
        METRICS,
        "masq_sync_connections_total{role=\"master\",outcome=\"sent\"}",
    );
    let sent_messages = lab.metric(
        METRICS,
        "masq_sync_messages_total{role=\"master\",outcome=\"sent\"}",
    );
    let applied = backup.metric("masq_sync_messages_total{role=\"backup\",outcome=\"applied\"}");
    eprintln!(
        "sync: {HELD} held connections listed on the backup {listed_after:?} after the last \
         was open; master sent {sent_conns} connections in {sent_messages} messages; backup \
         applied {applied} messages, created {created} connections"
    );
    assert_eq!(created, HELD as u64);
    assert!(sent_messages >= 1 && applied == sent_messages);
    let dropped = lab.metric(
        METRICS,
        "masq_sync_connections_total{role=\"master\",outcome=\"queue_full\"}",
    );
    assert_eq!(dropped, 0);

    // A message cut inside its header, and one whose size field says 100 bytes of 8.
    let out = lab.exec(
        "rs1",
        &[
            "/usr/bin/python3",
            "-c",
            INJECT,
            "000900",
            "0009006401010000",
        ],
    );
    assert!(out.status.success(), "injecting:\n{}", describe(&out));
    let refused = |reason: &str| {
        backup.metric(&format!(
            "masq_sync_refused_messages_total{{reason=\"{reason}\"}}"
        ))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while refused("truncated") + refused("size_mismatch") < 2 {
        assert!(
            Instant::now() < deadline,
            "the injected messages were not counted within 5 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!((refused("truncated"), refused("size_mismatch")), (1, 1));
    // Nothing else changed on the backup.
    assert_eq!(
        client_conns(&backup.masqadm_ok(&["-L", "-c", "-n"])),
        on_master
    );
    drop(holder);
}
