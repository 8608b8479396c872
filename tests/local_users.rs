//! A local user holding connections to masqd's HTTP endpoints open must not take the
//! director down, nor the real servers out.
//!
//! masqd runs with a service manager's usual soft limit of 1 024 open files, health
//! checks on, and a local program opens 1 100 idle connections to `--metrics`. The real
//! servers must keep their weights (a probe that fails for a local reason is not a
//! real-server failure), and the data path and `masqadm` keep working.
//!
//! Needs root, iproute2, nftables and python3 (`scripts/install-deps.sh`).

mod common;

use std::time::{Duration, Instant};

use common::{Lab, LabOptions, RS1_IP, RS2_IP, VIP};

const METRICS_PORT: u16 = 9105;

/// Holds `count` idle TCP connections to 127.0.0.1:`port` for `secs` seconds, printing
/// "holding N" once they are open.
fn holder_script(port: u16, count: usize, secs: u64) -> String {
    format!(
        "import resource, socket, sys, time\n\
         soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n\
         resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, {count} + 100), hard))\n\
         held = []\n\
         for _ in range({count}):\n\
         \x20   s = socket.socket()\n\
         \x20   s.settimeout(2)\n\
         \x20   try:\n\
         \x20       s.connect(('127.0.0.1', {port}))\n\
         \x20   except OSError:\n\
         \x20       s.close()\n\
         \x20       continue\n\
         \x20   held.append(s)\n\
         print('holding', len(held), flush=True)\n\
         time.sleep({secs})\n"
    )
}

fn weights(lab: &Lab) -> Vec<String> {
    let (listing, _, _) = lab.masqadm(&["-L", "-n"]);
    listing
        .lines()
        .filter(|l| l.contains("->") && l.contains("192.168.100."))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} w{}", f[1], f[3])
        })
        .collect()
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn idle_connections_to_metrics_take_no_real_server_out() {
    let lab = Lab::up_with(LabOptions {
        masqd_args: &[
            "--metrics",
            "127.0.0.1:9105",
            "--health-check",
            "tcp",
            "--health-interval",
            "0.5",
            "--health-fall",
            "2",
        ],
        open_files_soft_limit: Some(1024),
        ..LabOptions::default()
    });
    for args in [
        &["-A", "-t", "192.168.0.10:80", "-s", "rr"][..],
        &["-a", "-t", "192.168.0.10:80", "-r", RS1_IP, "-m"][..],
        &["-a", "-t", "192.168.0.10:80", "-r", RS2_IP, "-m"][..],
    ] {
        lab.masqadm_ok(args);
    }
    let healthy = weights(&lab);
    assert_eq!(healthy.len(), 2, "{healthy:?}");
    let mut holder = lab.spawn(
        "dir",
        "holder",
        &[
            "/usr/bin/python3",
            "-c",
            &holder_script(METRICS_PORT, 1100, 12),
        ],
    );
    holder.wait_for_output("holding", Duration::from_secs(30));
    eprintln!("{}", holder.output().trim());
    // Well past --health-fall 2 × --health-interval 0.5 s.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(500));
        let now = weights(&lab);
        assert_eq!(
            now, healthy,
            "real servers' weights changed while a local user held connections to --metrics"
        );
    }
    for _ in 0..4 {
        lab.curl(&format!("http://{VIP}/"));
    }
    drop(holder);
}
