//! masqd's control plane without traffic: masqadm against a real masqd, checked against a
//! real kernel's transcript; rules surviving restarts; the Prometheus endpoint read by a
//! real Prometheus parser; the control socket under bad input; the host checks at start.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;

use common::standalone::Standalone;

/// One command of a kernel transcript and what it printed.
struct Step {
    args: Vec<String>,
    output: String,
    rc: i32,
}

/// Reads `# ipvsadm …` / output / `# rc=N` blocks.
fn transcript(text: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for line in text.lines() {
        if let Some(cmd) = line.strip_prefix("# ipvsadm") {
            steps.push(Step {
                args: cmd.split_whitespace().map(String::from).collect(),
                output: String::new(),
                rc: 0,
            });
        } else if let Some(rc) = line.strip_prefix("# rc=") {
            steps.last_mut().expect("rc after a command").rc = rc.parse().expect("rc");
        } else if let Some(step) = steps.last_mut() {
            step.output.push_str(line);
            step.output.push('\n');
        }
    }
    steps
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn the_kernels_error_transcript_is_reproduced_byte_for_byte() {
    let d = Standalone::start(&[]);
    let steps = transcript(include_str!("data/kernel-g-errors.txt"));
    assert!(steps.len() > 25, "transcript parsed: {} steps", steps.len());
    let mut checked = 0;
    for step in &steps {
        // The kernel's `-S -n` there also lists services that other transcripts made
        // (ports 8031-8063); everything else is this sequence's own doing.
        if step.args == ["-S", "-n"] {
            continue;
        }
        let args: Vec<&str> = step.args.iter().map(String::as_str).collect();
        let (stdout, stderr, rc) = d.masqadm(&args);
        assert_eq!(
            format!("{stdout}{stderr}"),
            step.output,
            "output of `masqadm {}`",
            args.join(" ")
        );
        assert_eq!(rc, step.rc, "exit code of `masqadm {}`", args.join(" "));
        checked += 1;
    }
    assert!(checked >= 25);
}

const SEED: &str = "-A -t 192.168.0.10:80 -s wrr
-a -t 192.168.0.10:80 -r 192.168.100.7:80 -m -w 3
-a -t 192.168.0.10:80 -r 192.168.100.9:80 -m -w 1
";

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn rules_survive_a_restart_and_a_crash_never_truncates_them() {
    let mut d = Standalone::start(&[]);
    d.stop();
    let rules = d.path("rules");
    let rules_arg = rules.to_str().expect("utf-8 path").to_owned();
    let args = ["--rules", rules_arg.as_str(), "--save-on-exit"];
    d.launch(&args);
    assert_eq!(d.masqadm_stdin(&["-R"], SEED).2, 0);
    let saved = d.masqadm(&["-S", "-n"]).0;
    assert_eq!(saved, SEED);
    assert_eq!(d.stop(), Some(0), "clean stop:\n{}", d.log());
    assert_eq!(std::fs::read_to_string(&rules).expect("saved rules"), SEED);

    d.launch(&args);
    assert_eq!(
        d.masqadm(&["-S", "-n"]).0,
        SEED,
        "restart came back with the rules"
    );
    // A change followed by a crash: the file keeps the last complete save.
    assert_eq!(d.masqadm(&["-D", "-t", "192.168.0.10:80"]).2, 0);
    d.kill();
    assert_eq!(std::fs::read_to_string(&rules).expect("rules"), SEED);
    let leftovers: Vec<_> = std::fs::read_dir(&d.dir)
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    d.launch(&args);
    assert_eq!(d.masqadm(&["-S", "-n"]).0, SEED);
}

#[test]
#[ignore = "needs root, network namespaces and python3-prometheus-client: scripts/test.sh runs it"]
fn the_metrics_endpoint_parses_with_a_real_prometheus_parser() {
    let d = Standalone::start(&["--metrics", "127.0.0.1:9101"]);
    assert_eq!(d.masqadm_stdin(&["-R"], SEED).2, 0);
    // A request naming another host is refused, and counted.
    let refused = d.exec(&[
        "curl",
        "-s",
        "-m",
        "5",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Host: evil.example:9101",
        "http://127.0.0.1:9101/metrics",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&refused.stdout),
        "421",
        "{}",
        common::describe(&refused)
    );
    let scrape = d.exec(&["curl", "-sf", "-m", "5", "http://127.0.0.1:9101/metrics"]);
    assert!(scrape.status.success(), "{}", common::describe(&scrape));
    let body = String::from_utf8_lossy(&scrape.stdout).into_owned();
    // Debian's python3-prometheus-client (installed by scripts/install-deps.sh).
    let parser = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{family.type} {s.name} {labels} {s.value}")
"#;
    let mut py = Command::new("/usr/bin/python3")
        .args(["-c", parser])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with prometheus_client (apt python3-prometheus-client)");
    py.stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("feed the parser");
    let out = py.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "the parser rejected the exposition:\n{body}\n{}",
        common::describe(&out)
    );
    let samples = String::from_utf8_lossy(&out.stdout);
    // "type name labels value" -> value
    let value = |kind_name_labels: &str| -> Option<f64> {
        samples.lines().find_map(|l| {
            let (head, v) = l.rsplit_once(' ')?;
            (head == kind_name_labels).then(|| v.parse().ok())?
        })
    };
    assert_eq!(
        value("gauge masq_destination_weight port=80,protocol=tcp,server=192.168.100.7:80,vip=192.168.0.10"),
        Some(3.0),
        "{samples}"
    );
    assert_eq!(
        value("counter masq_dropped_frames_total reason=tcp_not_syn"),
        Some(0.0),
        "{samples}"
    );
    assert_eq!(
        value("gauge masq_connection_entries "),
        Some(0.0),
        "{samples}"
    );
    // The endpoint's own connections: the refused request's and this scrape's.
    assert_eq!(
        value("counter masq_http_connections_total endpoint=metrics"),
        Some(2.0),
        "{samples}"
    );
    assert_eq!(
        value("gauge masq_http_open_connections endpoint=metrics"),
        Some(1.0),
        "{samples}"
    );
    assert_eq!(
        value("counter masq_http_refused_requests_total endpoint=metrics,reason=foreign_host"),
        Some(1.0),
        "{samples}"
    );
}

fn raw_request(d: &Standalone, body: &[u8]) -> serde_json::Value {
    let mut s = UnixStream::connect(d.socket()).expect("connect");
    // A huge request may be cut off by the daemon before we finish writing it.
    let _ = s.write_all(body);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("reply");
    serde_json::from_str(&reply).expect("the reply is JSON")
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn the_control_socket_survives_garbage_and_admits_only_root() {
    let d = Standalone::start(&[]);
    let garbage = raw_request(&d, b"\x00\xffnot json at all");
    assert_eq!(garbage["code"], 2);
    assert!(garbage["stderr"]
        .as_str()
        .unwrap()
        .contains("malformed request"));
    let truncated = raw_request(&d, br#"{"program":"masqadm","args":["-L""#);
    assert_eq!(truncated["code"], 2);
    let huge = vec![b'x'; 9 << 20];
    let oversized = raw_request(&d, &huge);
    assert!(oversized["stderr"].as_str().unwrap().contains("too large"));
    assert_eq!(d.masqadm(&["-L", "-n"]).2, 0, "masqd still serves");
    assert!(
        d.log().contains("malformed request"),
        "logged:\n{}",
        d.log()
    );

    let meta = std::fs::metadata(d.socket()).expect("socket");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let nobody = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(d.bin("masqadm"))
        .arg("--socket")
        .arg(d.socket())
        .args(["-L", "-n"])
        .output()
        .expect("setpriv");
    assert_eq!(
        nobody.status.code(),
        Some(2),
        "{}",
        common::describe(&nobody)
    );
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("Permission denied"));
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn masqd_refuses_to_start_when_the_kernel_forwards() {
    let mut d = Standalone::start(&[]);
    d.stop();
    let on = d.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    assert!(on.status.success(), "{}", common::describe(&on));
    let out = d.masqd_command(&[]).output().expect("masqd");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("net.ipv4.ip_forward is 1"), "{stderr}");
    assert!(
        stderr.contains("sysctl -w net.ipv4.ip_forward=0"),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_trace_of_an_unknown_service_is_a_clear_error() {
    let d = Standalone::start(&[]);
    let (_, stderr, rc) = d.masqadm(&["--trace", "-t", "192.168.0.10:81"]);
    assert_eq!(rc, 1);
    assert_eq!(
        stderr,
        "masqadm: --trace: no such service TCP 192.168.0.10:81\n"
    );
    let (_, stderr, rc) = d.masqadm(&["--trace", "--count", "zero"]);
    assert_eq!(rc, 2);
    assert!(
        stderr.contains("--count wants a positive number"),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn after_sigkill_masqd_restarts_from_its_rules_within_a_second() {
    let mut d = Standalone::start(&[]);
    d.stop();
    let rules = d.path("rules");
    std::fs::write(&rules, SEED).expect("rules file");
    let rules_arg = rules.to_str().expect("utf-8 path").to_owned();
    let args = ["--rules", rules_arg.as_str()];
    d.launch(&args);
    d.kill();
    let restart = std::time::Instant::now();
    // `launch` returns once masqd answers on its socket; its packet threads start before
    // the control socket opens, so by then it forwards again.
    d.launch(&args);
    let took = restart.elapsed();
    assert_eq!(d.masqadm(&["-S", "-n"]).0, SEED);
    eprintln!("masqd served again {took:?} after a SIGKILL");
    assert!(
        took < std::time::Duration::from_secs(1),
        "restart took {took:?}"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_bad_line_in_the_rules_file_is_named_and_stops_the_start() {
    let mut d = Standalone::start(&[]);
    d.stop();
    let rules = d.path("rules");
    std::fs::write(
        &rules,
        "# the lab\n-A -t 192.168.0.10:80 -s wrr\n-a -t 192.168.0.10:80 -r 192.168.100.7:80 -m -w -3\n",
    )
    .expect("rules");
    let out = d
        .masqd_command(&["--rules", rules.to_str().unwrap()])
        .output()
        .expect("masqd");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:3: `-a -t 192.168.0.10:80 -r 192.168.100.7:80 -m -w -3`: illegal weight specified",
            rules.display()
        )),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_failed_restore_line_prints_like_ipvsadm_and_is_named_in_the_log() {
    let d = Standalone::start(&[]);
    let input = "-A -t 192.168.0.10:80 -s rr\n-a -t 192.168.0.10:81 -r 192.168.100.7 -m\n-a -t 192.168.0.10:80 -r 192.168.100.7 -m\n";
    let (stdout, stderr, code) = d.masqadm_stdin(&["-R"], input);
    // ipvsadm: a director error prints its message and the restore goes on; the status is
    // the last line's.
    assert_eq!(
        (stdout.as_str(), stderr.as_str(), code),
        ("", "Service not defined\n", 0)
    );
    assert_eq!(
        d.masqadm(&["-S", "-n"]).0,
        "-A -t 192.168.0.10:80 -s rr\n-a -t 192.168.0.10:80 -r 192.168.100.7:80 -m -w 1\n"
    );
    let log = d.log();
    assert!(
        log.contains("masqadm -R: line 2: `-a -t 192.168.0.10:81 -r 192.168.100.7 -m` (exit 255): Service not defined"),
        "{log}"
    );
}
