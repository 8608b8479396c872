//! Health checks: a real server killed mid-test stops getting new connections within the
//! check interval while the other carries on, and comes back when it recovers.

mod common;

use std::time::{Duration, Instant};

use common::{seed, Lab, LabOptions, RS1_IP, VIP};

const INTERVAL: &str = "0.5";

fn weight_of(lab: &Lab, rs: &str) -> Option<String> {
    let (listing, _, _) = lab.masqadm(&["-L", "-n"]);
    listing
        .lines()
        .find(|l| l.contains(&format!("{rs}:80")))
        .and_then(|l| l.split_whitespace().nth(3).map(String::from))
}

fn wait_for_weight(lab: &Lab, rs: &str, weight: &str, within: Duration) -> Duration {
    let start = Instant::now();
    while weight_of(lab, rs).as_deref() != Some(weight) {
        assert!(
            start.elapsed() < within,
            "{rs} did not reach weight {weight} within {within:?}:\n{}",
            lab.masqadm(&["-L", "-n"]).0
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_killed_real_server_is_quiesced_and_restored() {
    let lab = Lab::up_with(LabOptions {
        masqd_args: &[
            "--health-check",
            "http:/:200",
            "--health-interval",
            INTERVAL,
            "--health-fall",
            "2",
            "--health-rise",
            "2",
            "--metrics",
            "127.0.0.1:9102",
        ],
        ..LabOptions::default()
    });
    seed::rr_with_both(&lab, "-t", seed::SERVICE);
    lab.curl(&format!("http://{VIP}/"));
    // Kill RS1's web server.
    let pid = std::fs::read_to_string(lab.state_dir().join("rs1-http.pid")).expect("RS1 pid");
    let killed = Instant::now();
    let kill = std::process::Command::new("kill")
        .arg(pid.trim())
        .status()
        .expect("kill");
    assert!(kill.success());
    let quiesced = wait_for_weight(&lab, RS1_IP, "0", Duration::from_secs(5));
    let took = killed.elapsed();
    eprintln!("RS1 quiesced {took:?} after it was killed ({quiesced:?} of polling)");
    // Two failed checks half a second apart, each bounded by the 1 s timeout.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // New connections all go to RS2 now, without a single failure.
    for _ in 0..6 {
        assert_eq!(lab.curl(&format!("http://{VIP}/")), "RS2 192.168.100.9\n");
    }
    let metrics = lab.exec("dir", &["curl", "-sf", "http://127.0.0.1:9102/metrics"]);
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        text.contains(&format!(
            "masq_destination_up{{protocol=\"tcp\",vip=\"192.168.0.10\",port=\"80\",server=\"{RS1_IP}:80\"}} 0"
        )),
        "{text}"
    );
    // Bring RS1 back: after two good checks it has its weight again.
    let rs1 = lab.spawn(
        "rs1",
        "rs1-http-again",
        &[
            lab.bin("masq-labsrv").to_str().unwrap(),
            "http",
            "--name",
            "RS1",
            "--listen",
            "0.0.0.0:80",
        ],
    );
    wait_for_weight(&lab, RS1_IP, "1", Duration::from_secs(5));
    let answers: Vec<String> = (0..4)
        .map(|_| lab.curl(&format!("http://{VIP}/")))
        .collect();
    assert!(answers.iter().any(|a| a.starts_with("RS1")), "{answers:?}");
    drop(rs1);
}
