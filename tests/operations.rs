//! What docs/operations.md tells an operator, checked against a running masqd in the lab:
//! the Grafana dashboard (`docs/grafana/masq-dashboard.json`) and the guide's alert rules
//! ask only for metrics masqd exports, with labels those metrics carry; and an upgrade
//! (save, stop, start, restore) leaves the VIP dark for a short, measured time, whose
//! figures the test prints (`--nocapture`) for the guide.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::{stop_lab_masqd, Masqd};
use common::{describe, Lab, LabOptions, RS1_IP, RS2_IP, VIP};

/// What a scrape of `/metrics` says masqd exports.
#[derive(Debug, Default)]
struct Exported {
    /// Every name a query may use: each sample's, and each family's as PromQL sees it
    /// (counters with `_total`), also for families with no sample yet.
    names: BTreeSet<String>,
    /// The label names seen on each name's samples.
    labels: BTreeMap<String, BTreeSet<String>>,
}

impl Exported {
    fn parse(exposition: &str) -> Exported {
        let mut exported = Exported::default();
        for line in exposition.lines() {
            if let Some(family) = line.strip_prefix("# TYPE ") {
                let mut words = family.split_whitespace();
                let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                    continue;
                };
                exported.names.insert(match kind {
                    "counter" => format!("{name}_total"),
                    _ => name.to_string(),
                });
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = &line[..name_end];
            exported.names.insert(name.to_string());
            let labels = exported.labels.entry(name.to_string()).or_default();
            if line[name_end..].starts_with('{') {
                let set = &line[name_end + 1..line.rfind('}').unwrap_or(line.len())];
                labels.extend(
                    split_outside_quotes(set, ',')
                        .iter()
                        .filter_map(|pair| pair.split_once('='))
                        .map(|(k, _)| k.trim().to_string()),
                );
            }
        }
        exported
    }
}

/// `text` split at each `sep` that is not inside double quotes.
fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// The masq metrics a PromQL query selects, each with the label names it matches on.
fn selectors(query: &str) -> Vec<(String, Vec<String>)> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut found = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("masq_") {
        let preceded_by_ident = rest[..at].chars().next_back().is_some_and(ident);
        let tail = &rest[at..];
        let end = tail.find(|c: char| !ident(c)).unwrap_or(tail.len());
        let name = &tail[..end];
        let after = tail[end..].trim_start();
        let mut labels = Vec::new();
        if let Some(matchers) = after.strip_prefix('{') {
            let close = matchers.find('}').unwrap_or(matchers.len());
            labels = split_outside_quotes(&matchers[..close], ',')
                .iter()
                .map(|m| {
                    let name_end = m.find(['=', '!']).unwrap_or(m.len());
                    m[..name_end].trim().to_string()
                })
                .collect();
        }
        if !preceded_by_ident {
            found.push((name.to_string(), labels));
        }
        rest = &tail[end..];
    }
    found
}

#[test]
fn queries_name_their_metrics_and_labels() {
    assert_eq!(
        selectors(
            r#"sum by (reason) (rate(masq_dropped_frames_total{instance=~"$instance", vip!="a,b"}[5m])) / masq_table_bound"#
        ),
        [
            (
                "masq_dropped_frames_total".to_string(),
                vec!["instance".to_string(), "vip".to_string()]
            ),
            ("masq_table_bound".to_string(), vec![]),
        ]
    );
    let exported = Exported::parse(
        "# TYPE masq_frames counter\nmasq_frames_total{outcome=\"arp_reply\"} 3\n# TYPE masq_health_local_failures counter\n# EOF\n",
    );
    assert!(exported.names.contains("masq_frames_total"));
    assert!(exported.names.contains("masq_health_local_failures_total"));
    assert_eq!(
        exported.labels["masq_frames_total"],
        BTreeSet::from(["outcome".to_string()])
    );
}

/// Every PromQL query of the dashboard: its panels' targets and its variables' queries.
fn dashboard_queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "query" | "definition", serde_json::Value::String(q)) => {
                        out.push(q.clone())
                    }
                    _ => dashboard_queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                dashboard_queries(v, out);
            }
        }
        _ => {}
    }
}

/// The `expr:` of each alert rule in docs/operations.md's yaml blocks.
fn guide_alert_queries(guide: &str) -> Vec<String> {
    let mut in_yaml = false;
    let mut queries = Vec::new();
    for line in guide.lines() {
        if let Some(lang) = line.trim_start().strip_prefix("```") {
            in_yaml = !in_yaml && lang.trim() == "yaml";
            continue;
        }
        if let Some(expr) = line.trim_start().strip_prefix("expr:").filter(|_| in_yaml) {
            queries.push(expr.trim().trim_matches('\'').to_string());
        }
    }
    queries
}

/// A scrape of the lab masqd's `/metrics` on 127.0.0.1:9101.
fn scrape(lab: &Lab) -> String {
    let out = lab.exec(
        "dir",
        &["curl", "-sf", "-m", "5", "http://127.0.0.1:9101/metrics"],
    );
    assert!(out.status.success(), "scrape: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn the_dashboard_and_the_alerts_ask_only_for_exported_metrics() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo.join("docs/grafana/masq-dashboard.json"))
            .expect("reading the dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    let guide = std::fs::read_to_string(repo.join("docs/operations.md")).expect("the guide");
    let alerts = guide_alert_queries(&guide);
    assert!(alerts.len() >= 5, "the guide's alert rules: {alerts:?}");
    queries.extend(alerts);
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] != "row" {
            let targets = panel["targets"].as_array().map_or(0, Vec::len);
            assert!(targets > 0, "a panel without a query: {}", panel["title"]);
        }
    }

    // Every family masqd has: XDP ports, both HTTP endpoints, health checks, a service
    // with two real servers that has carried traffic.
    let lab = Lab::up_with(LabOptions {
        offloads_off: true,
        masqd_args: &[
            "--io",
            "xdp",
            "--metrics",
            "127.0.0.1:9101",
            "--web",
            "127.0.0.1:8080",
            "--health-check",
            "tcp",
            "--health-interval",
            "0.5",
        ],
        ..LabOptions::default()
    });
    common::seed::forwards_rr_and_udp(&lab, "before the scrape");
    let deadline = Instant::now() + Duration::from_secs(10);
    let exposition = loop {
        let exposition = scrape(&lab);
        if exposition.contains("masq_destination_up{") || Instant::now() > deadline {
            break exposition;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let exported = Exported::parse(&exposition);

    let mut wrong = Vec::new();
    for query in &queries {
        let found = selectors(query);
        if found.is_empty() && query.contains("masq") {
            wrong.push(format!("{query}: names no masq metric"));
        }
        for (name, labels) in found {
            if !exported.names.contains(&name) {
                wrong.push(format!("{query}: masqd exports no {name}"));
                continue;
            }
            // Prometheus adds these to every series it scrapes.
            let scraped = ["instance", "job"];
            let Some(known) = exported.labels.get(&name) else {
                continue;
            };
            for label in labels
                .iter()
                .filter(|l| !scraped.contains(&l.as_str()) && !known.contains(*l))
            {
                wrong.push(format!("{query}: {name} has no label {label}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "queries that ask for what masqd does not export:\n{}\n--- exported:\n{:#?}",
        wrong.join("\n"),
        exported.labels
    );
}

/// In the client's namespace, for `argv[3]` seconds, as a client that waits as long as
/// its kernel retransmits (a 5 s timeout):
/// - `new`: one new connection with one request at a time, 10 ms apart
///   (`new START END 1`, or `new START END STEP:ERROR` for one that failed);
/// - `kept`: one kept-alive connection, a request every 20 ms (`kept ID OK`: a failed
///   request means that connection broke; the next opens another).
///
/// `done` at the end.
const POLLER: &str = r#"
import socket, sys, time
mode, vip, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
request = b"GET / HTTP/1.1\r\nHost: " + vip.encode() + b"\r\n\r\n"

def ask(sock):
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        body += chunk

kept, kept_id = None, 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    start = time.monotonic()
    if mode == "new":
        step = "connect"
        try:
            with socket.create_connection((vip, 80), timeout=5) as s:
                step = "request"
                ask(s)
            ok = ""
        except OSError as e:
            ok = f"{step}:{type(e).__name__}"
        print(f"new {start:.6f} {time.monotonic():.6f} {ok or 1}", flush=True)
        time.sleep(0.01)
    else:
        try:
            if kept is None:
                kept_id += 1
                kept = socket.create_connection((vip, 80), timeout=5)
            ask(kept)
            ok = 1
        except OSError:
            ok = 0
            if kept is not None:
                kept.close()
            kept = None
        print(f"kept {kept_id} {ok}", flush=True)
        time.sleep(0.02)
print("done", flush=True)
"#;

/// What the clients saw during one upgrade.
#[derive(Debug)]
struct Outage {
    /// The longest a new connection that was answered took, from its `connect` to its
    /// answer: one whose SYN fell in the gap waits for its retransmission.
    slowest: Duration,
    /// New connections that failed, by step and error (`connect:ConnectionRefusedError`,
    /// `request:TimeoutError`, …).
    failed: BTreeMap<String, usize>,
    /// New connections in all.
    requests: usize,
    /// Kept-alive connections that broke.
    kept_broken: usize,
}

impl Outage {
    /// From the output of a `new` and a `kept` poller.
    fn parse(output: &str) -> Outage {
        let mut slowest = 0.0f64;
        let (mut failed, mut requests, mut kept_broken) = (BTreeMap::new(), 0, 0);
        for line in output.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["new", start, end, ok] => {
                    requests += 1;
                    if *ok == "1" {
                        let took = end.parse::<f64>().expect("a time")
                            - start.parse::<f64>().expect("a time");
                        slowest = slowest.max(took);
                    } else {
                        *failed.entry(ok.to_string()).or_default() += 1;
                    }
                }
                ["kept", _, "0"] => kept_broken += 1,
                _ => {}
            }
        }
        Outage {
            slowest: Duration::from_secs_f64(slowest),
            failed,
            requests,
            kept_broken,
        }
    }
}

#[test]
fn an_outage_is_the_slowest_answer_and_the_failures() {
    let outage = Outage::parse(
        "new 0.0 1.0 1\nnew 1.0 1.1 connect:ConnectionRefusedError\nnew 1.1 2.2 1\nnew 2.2 2.3 1\nnew 2.3 3.0 connect:ConnectionRefusedError\nnew 3.0 5.8 request:TimeoutError\ndone\nkept 1 1\nkept 1 0\nkept 2 0\nkept 3 1\ndone\n",
    );
    assert!((outage.slowest.as_secs_f64() - 1.1).abs() < 1e-9);
    assert_eq!(outage.requests, 6);
    assert_eq!(
        outage.failed,
        BTreeMap::from([
            ("connect:ConnectionRefusedError".to_string(), 2),
            ("request:TimeoutError".to_string(), 1)
        ])
    );
    assert_eq!(outage.kept_broken, 2);
}

/// How busy the machine is before the lab measures anything: CPUs busy over a second
/// (from /proc/stat) and the load average.
fn machine_noise() -> String {
    fn busy_and_total() -> (u64, u64) {
        let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
        let times: Vec<u64> = stat
            .lines()
            .next()
            .expect("the cpu line")
            .split_whitespace()
            .skip(1)
            .filter_map(|n| n.parse().ok())
            .collect();
        let total: u64 = times.iter().take(8).sum();
        let idle = times[3] + times[4];
        (total - idle, total)
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (busy0, total0) = busy_and_total();
    std::thread::sleep(Duration::from_secs(1));
    let (busy1, total1) = busy_and_total();
    let busy = (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64 * cpus as f64;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{busy:.2} of {cpus} CPUs busy before the measurement, load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// Upgrades measured per way of restarting masqd.
const ROUNDS: usize = 5;

/// How masqd is restarted.
#[derive(Debug, Clone, Copy)]
enum Upgrade {
    /// `masqadm -S -n > rules`, stop, start, `masqadm -R < rules`.
    SaveStopStartRestore,
    /// `--rules FILE --save-on-exit`: the stop saves, the start loads.
    RulesFile,
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn an_upgrade_leaves_the_vip_dark_for_a_short_measured_time() {
    common::require_python_module("socket", "python3");
    let noise = machine_noise();
    let lab = Lab::up_with(LabOptions {
        exclusive: true,
        ..LabOptions::default()
    });
    let service = format!("{VIP}:80");
    lab.masqadm_ok(&["-A", "-t", &service, "-s", "wrr"]);
    lab.masqadm_ok(&["-a", "-t", &service, "-r", RS1_IP, "-m", "-w", "3"]);
    lab.masqadm_ok(&["-a", "-t", &service, "-r", RS2_IP, "-m", "-w", "1"]);
    let rules = lab.masqadm_ok(&["-S", "-n"]);
    let rules_file = lab.state_dir().join("upgrade.rules");
    std::fs::write(&rules_file, &rules).expect("writing the rules file");
    let rules_arg = rules_file.to_str().expect("a UTF-8 path").to_string();
    stop_lab_masqd(&lab, "-TERM");

    let mut report = vec![format!("machine: {noise}")];
    let mut running: Option<Masqd> = None;
    let mut round = 0;
    for upgrade in [Upgrade::SaveStopStartRestore, Upgrade::RulesFile] {
        let args: Vec<&str> = match upgrade {
            Upgrade::SaveStopStartRestore => Vec::new(),
            Upgrade::RulesFile => vec!["--rules", &rules_arg, "--save-on-exit"],
        };
        // The masqd to be upgraded, not measured.
        drop(running.take());
        round += 1;
        let first = Masqd::start(&lab, &format!("masqd-{round}"), &args);
        if matches!(upgrade, Upgrade::SaveStopStartRestore) {
            let (_, stderr, code) = lab.masqadm_stdin(&["-R"], &rules);
            assert_eq!(code, 0, "{stderr}");
        }
        running = Some(first);
        for _ in 0..ROUNDS {
            let pollers = ["new", "kept"].map(|mode| {
                lab.spawn(
                    "client",
                    &format!("poller-{mode}-{round}"),
                    &["/usr/bin/python3", "-c", POLLER, mode, VIP, "8"],
                )
            });
            std::thread::sleep(Duration::from_millis(1500));
            let began = Instant::now();
            let saved = match upgrade {
                Upgrade::SaveStopStartRestore => Some(lab.masqadm_ok(&["-S", "-n"])),
                Upgrade::RulesFile => None,
            };
            let mut old = running.take().expect("a running masqd");
            old.signal("-TERM");
            assert!(
                old.exited_within(Duration::from_secs(5)).is_some(),
                "masqd did not stop within 5 s"
            );
            let stopped = began.elapsed();
            round += 1;
            let new = Masqd::start(&lab, &format!("masqd-{round}"), &args);
            let answering = began.elapsed();
            if let Some(saved) = &saved {
                let (_, stderr, code) = lab.masqadm_stdin(&["-R"], saved);
                assert_eq!(code, 0, "masqadm -R: {stderr}");
            }
            let restored = began.elapsed();
            running = Some(new);
            let mut output = String::new();
            for mut poller in pollers {
                poller.wait_for_output("done\n", Duration::from_secs(20));
                output.push_str(&poller.output());
            }
            let outage = Outage::parse(&output);
            assert_eq!(
                lab.masqadm_ok(&["-S", "-n"]),
                rules,
                "the rules after the upgrade"
            );
            report.push(format!(
                "{upgrade:?}: slowest answer {:.0} ms ({} new connections, failed: {:?}), kept-alive connections broken: {}; old masqd gone after {:.0} ms, new one answering after {:.0} ms, rules back after {:.0} ms",
                outage.slowest.as_secs_f64() * 1e3,
                outage.requests,
                outage.failed,
                outage.kept_broken,
                stopped.as_secs_f64() * 1e3,
                answering.as_secs_f64() * 1e3,
                restored.as_secs_f64() * 1e3,
            ));
            // A SYN that falls in the gap is answered after its first retransmission,
            // 1 s later; one more (3 s) would mean masqd took seconds to come back.
            assert!(
                outage.slowest < Duration::from_secs(2),
                "a new connection took {:?}: {report:#?}",
                outage.slowest
            );
            // Connections refused while no guard stood, or established ones caught
            // mid-request (which break), but never more than the gap holds.
            let failed: usize = outage.failed.values().sum();
            assert!(failed <= 20, "{failed} new connections failed: {report:#?}");
        }
    }
    eprintln!("{}", report.join("\n"));
}
