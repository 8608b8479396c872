//! A masqd killed without a chance to clean up (SIGKILL, a panicking packet thread, a
//! SIGKILL under `--io xdp`) and the start after it, and the rules `--save-on-exit` saves
//! while health checks hold a real server out.
//!
//! A crash leaves no half-alive director, and the next start removes what the dead one
//! left: its kernel guard table, its socket, its XDP programs. A crash is no clean stop:
//! the rules file stays as the operator wrote it.
//!
//! Needs root, iproute2 and nftables (`scripts/install-deps.sh`); the panic test needs a
//! debug build of masqd (its fault injection is compiled only there), which is what
//! `cargo build --workspace --bins` makes.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::daemon::{guard_tables, signal_pid, stop_lab_masqd, Masqd};
use common::seed::{requests_succeed, restore_wrr, WRR_RULES};
use common::{Lab, LabOptions, RS1_IP, VIP};

const SIGABRT: i32 = 6;

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn the_start_after_a_sigkill_removes_what_the_killed_masqd_left() {
    let lab = Lab::up();
    restore_wrr(&lab);
    requests_succeed(&lab, 4, "the first start");
    let tables = guard_tables(&lab);
    assert_eq!(tables.len(), 1, "one guard table: {tables:?}");
    assert!(tables[0].starts_with("masq_guard_"), "{tables:?}");

    stop_lab_masqd(&lab, "-KILL");
    assert_eq!(
        guard_tables(&lab),
        tables,
        "a SIGKILLed masqd cannot remove its table"
    );
    let socket = lab.state_dir().join("masqd.sock");
    assert!(socket.exists(), "nor its socket");

    let mut second = Masqd::start(&lab, "masqd-2", &[]);
    let log = second.log();
    assert!(
        log.contains(&format!(
            "removed the kernel guard table netdev {} that a masqd which did not stop cleanly left behind",
            tables[0]
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("replaced the stale socket {}", socket.display())),
        "{log}"
    );
    restore_wrr(&lab);
    requests_succeed(&lab, 4, "the start after a SIGKILL");
    assert_eq!(
        guard_tables(&lab),
        tables,
        "the same instance, the same table"
    );

    // Killed again, and started without a guard: the killed one's rules go all the same.
    second.kill();
    let _third = Masqd::start(&lab, "masqd-3", &["--kernel-guard", "off"]);
    assert_eq!(guard_tables(&lab), Vec::<String>::new());
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_panicking_packet_thread_takes_masqd_down_and_the_next_start_serves() {
    let lab = Lab::up();
    stop_lab_masqd(&lab, "-TERM");
    let rules = lab.state_dir().join("lab.rules");
    std::fs::write(&rules, WRR_RULES).expect("the rules file");
    let rules_arg = rules.to_string_lossy();
    let args = ["--rules", &rules_arg, "--save-on-exit"];
    let mut faulty = Masqd::spawn(
        &lab,
        "masqd-faulty",
        &args,
        &[("MASQD_FAULT", "panic-packet-thread")],
    );
    // The first packet thread to receive a frame panics: the real servers' answers to
    // masqd's ARP probes at start, or the client's request.
    let _ = lab.exec(
        "client",
        &["curl", "-s", "--max-time", "2", &format!("http://{VIP}/")],
    );
    let Some(status) = faulty.exited_within(Duration::from_secs(5)) else {
        panic!(
            "masqd still runs 5 s after a packet thread panicked: it is half alive (or it was built without debug assertions, where MASQD_FAULT does not exist):\n{}",
            faulty.log()
        );
    };
    eprintln!("masqd ended with {status}");
    assert!(!status.success(), "{status}");
    assert_eq!(status.signal(), Some(SIGABRT), "it aborts: {status}");
    let log = faulty.log();
    assert!(
        log.contains("panicked") && log.contains("MASQD_FAULT=panic-packet-thread"),
        "the log says why: {log}"
    );
    // A crash is no clean stop: the rules file is as the operator wrote it.
    assert_eq!(std::fs::read_to_string(&rules).unwrap(), WRR_RULES);
    assert_eq!(
        guard_tables(&lab).len(),
        1,
        "the crashed one's table is left"
    );

    let _next = Masqd::start(&lab, "masqd-next", &["--rules", &rules_arg]);
    requests_succeed(&lab, 4, "the start after a crash");
    assert_eq!(guard_tables(&lab).len(), 1);
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_sigkilled_xdp_masqd_leaves_no_program_attached() {
    let lab = Lab::up_with(LabOptions {
        offloads_off: true,
        masqd_args: &["--io", "xdp"],
        ..LabOptions::default()
    });
    let ifaces = [lab.iface("ext"), lab.iface("int")];
    let link_show = |iface: &str| {
        let out = lab.exec("dir", &["ip", "-d", "link", "show", iface]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for iface in &ifaces {
        assert!(
            link_show(iface).contains("prog/xdp"),
            "{}",
            link_show(iface)
        );
    }
    stop_lab_masqd(&lab, "-KILL");
    // The programs hang on BPF links whose descriptors died with the process; the kernel
    // releases a link from a work queue, a moment after.
    for iface in &ifaces {
        let deadline = Instant::now() + Duration::from_secs(2);
        while link_show(iface).contains("prog/xdp") {
            assert!(
                Instant::now() < deadline,
                "{iface} keeps an XDP program 2 s after masqd was killed:\n{}",
                link_show(iface)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let next = Masqd::start(&lab, "masqd-xdp", &["--io", "xdp"]);
    for iface in &ifaces {
        assert!(
            next.log()
                .contains(&format!("{iface}: XDP program attached in Native mode")),
            "{}",
            next.log()
        );
    }
    restore_wrr(&lab);
    requests_succeed(&lab, 4, "the XDP start after a SIGKILL");
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn save_on_exit_keeps_the_configured_weight_of_a_quiesced_server() {
    let lab = Lab::up();
    stop_lab_masqd(&lab, "-TERM");
    let rules = lab.state_dir().join("lab.rules");
    std::fs::write(&rules, WRR_RULES).expect("the rules file");
    let rules_arg = rules.to_string_lossy();
    let mut masqd = Masqd::start(
        &lab,
        "masqd-health",
        &[
            "--rules",
            &rules_arg,
            "--save-on-exit",
            "--health-check",
            "tcp",
            "--health-interval",
            "0.5",
            "--health-fall",
            "2",
        ],
    );
    let rs1: u32 = std::fs::read_to_string(lab.state_dir().join("rs1-http.pid"))
        .expect("RS1's pid file")
        .trim()
        .parse()
        .expect("a pid");
    signal_pid(rs1, "-TERM");
    let quiesced = format!("-r {RS1_IP}:80 -m -w 0");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !lab.masqadm(&["-S", "-n"]).0.contains(&quiesced) {
        assert!(
            Instant::now() < deadline,
            "RS1 was not quiesced:\n{}",
            lab.masqadm(&["-L", "-n"]).0
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    masqd.signal("-TERM");
    let status = masqd
        .exited_within(Duration::from_secs(1))
        .expect("masqd stops within a second");
    assert!(status.success(), "{status}\n{}", masqd.log());
    let saved = std::fs::read_to_string(&rules).expect("the saved rules");
    assert_eq!(
        saved, WRR_RULES,
        "the weights as configured, not RS1's weight 0 from the health checks"
    );
}
