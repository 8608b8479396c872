//! Reloads without drops: SIGHUP re-reads `--rules` and applies only the difference while
//! clients keep working. Under a keep-alive client on each of two services and a long
//! download, the file turns rr into wrr 3:1 with a server added (new connections follow
//! 3:1), is reloaded unchanged (nothing changes, the log says so), gets a bad line
//! (nothing changes, the log names the line), then loses a real server and a whole
//! service (both quiesced, established connections carry on, deleted once those end).
//! No connection breaks; the figures (requests served, broken connections, time from
//! SIGHUP to applied) are printed.
//!
//! Needs root, iproute2, curl and python3 (`scripts/install-deps.sh`).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::daemon::{lab_masqd_pid, running, signal_pid, stop_lab_masqd};
use common::seed::{requests_succeed, restore_wrr};
use common::{describe, Lab, LabOptions, RS1_IP, RS2_IP, VIP};

/// The load's clients, run by Debian's python3 in the client namespace.
///
/// `keepalive HOST PORT SECS OUT`: one keep-alive connection, requests back to back for
/// SECS; a request that fails counts as a broken connection (and the client reconnects).
/// Prints `started` after the first answer and `done` at the end, and writes to OUT the
/// requests served, the broken ones, how many connections it took, who answered, and
/// when each request completed (Unix seconds).
///
/// `picks HOST PORT N`: N new connections, one request each; prints who answered and how
/// many failed, as JSON.
const CLIENTS: &str = r#"
import http.client, json, sys, time

def keepalive(host, port, secs, out):
    deadline = time.time() + float(secs)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    served, broken, ports, servers, times = 0, 0, set(), {}, []
    while time.time() < deadline:
        try:
            conn.request('GET', '/')
            ports.add(conn.sock.getsockname()[1])
            resp = conn.getresponse()
            body = resp.read().decode()
            if resp.status != 200:
                raise RuntimeError('status %d' % resp.status)
        except Exception as e:
            broken += 1
            print('broken:', repr(e), flush=True)
            conn.close()
            time.sleep(0.1)
            continue
        served += 1
        times.append(time.time())
        name = body.split()[0]
        servers[name] = servers.get(name, 0) + 1
        if served == 1:
            print('started', flush=True)
        time.sleep(0.002)
    conn.close()
    with open(out, 'w') as f:
        json.dump({'served': served, 'broken': broken, 'connections': len(ports),
                   'servers': servers, 'times': times}, f)
    print('done', flush=True)

def picks(host, port, n):
    servers, failed = {}, 0
    for _ in range(int(n)):
        conn = http.client.HTTPConnection(host, int(port), timeout=3)
        try:
            conn.request('GET', '/', headers={'Connection': 'close'})
            name = conn.getresponse().read().decode().split()[0]
            servers[name] = servers.get(name, 0) + 1
        except Exception:
            failed += 1
        finally:
            conn.close()
    print(json.dumps({'servers': servers, 'failed': failed}))

{'keepalive': keepalive, 'picks': picks}[sys.argv[1]](*sys.argv[2:])
"#;

/// The first rules: rr to RS1 alone on :80, and :8080 to RS2.
const START: &str = "-A -t 192.168.0.10:80 -s rr\n\
                     -a -t 192.168.0.10:80 -r 192.168.100.7:80 -m -w 1\n\
                     -A -t 192.168.0.10:8080 -s rr\n\
                     -a -t 192.168.0.10:8080 -r 192.168.100.9:80 -m -w 1\n";
/// wrr 3:1 on :80 with RS2 added.
const WEIGHTED: &str = "# the lab's web service, weighted\n\
                        -A -t 192.168.0.10:80 -s wrr\n\
                        -a -t 192.168.0.10:80 -r 192.168.100.7:80 -m -w 3\n\
                        -a -t 192.168.0.10:80 -r 192.168.100.9:80 -m -w 1\n\
                        -A -t 192.168.0.10:8080 -s rr\n\
                        -a -t 192.168.0.10:8080 -r 192.168.100.9:80 -m -w 1\n";
/// [`WEIGHTED`] with RS1's weight edited and, on line 5, a weight that is not a number.
const BAD_LINE: &str = "# the lab's web service, weighted\n\
                        -A -t 192.168.0.10:80 -s wrr\n\
                        -a -t 192.168.0.10:80 -r 192.168.100.7:80 -m -w 5\n\
                        -a -t 192.168.0.10:80 -r 192.168.100.9:80 -m -w 1\n\
                        -a -t 192.168.0.10:80 -r 192.168.100.8:80 -m -w many\n";
/// RS1 gone from :80, and :8080 gone.
const SHRUNK: &str = "-A -t 192.168.0.10:80 -s wrr\n\
                      -a -t 192.168.0.10:80 -r 192.168.100.9:80 -m -w 1\n";

/// How long each keep-alive client runs.
const LOAD_SECS: &str = "20";
/// The download: 24 MB at 1.5 MB/s, some 16 s.
const DOWNLOAD: &str = "http://192.168.0.10/bytes/24000000";

/// A rules file of a test's own, removed when it drops.
struct RulesFile {
    path: PathBuf,
}

impl RulesFile {
    fn new(name: &str, text: &str) -> RulesFile {
        let path =
            std::env::temp_dir().join(format!("masq-reload-{}-{name}.rules", std::process::id()));
        let file = RulesFile { path };
        file.write(text);
        file
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.path, text).expect("writing the rules file");
    }

    fn read(&self) -> String {
        std::fs::read_to_string(&self.path).expect("reading the rules file")
    }

    /// `--rules PATH` and `more`, for [`LabOptions::masqd_args`] (which lives as long as
    /// the test process).
    fn masqd_args(&self, more: &[&'static str]) -> &'static [&'static str] {
        let path: &'static str = Box::leak(self.path.display().to_string().into_boxed_str());
        let mut args = vec!["--rules", path];
        args.extend_from_slice(more);
        Box::leak(args.into_boxed_slice())
    }
}

impl Drop for RulesFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn masqd_log(lab: &Lab) -> String {
    std::fs::read_to_string(lab.state_dir().join("masqd.log")).unwrap_or_default()
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs_f64()
}

/// One reload as the test saw it.
struct Reload {
    /// When SIGHUP was sent (Unix seconds) and when its outcome was in the log.
    sent: f64,
    seen: f64,
    /// The outcome line, and the lines logged from the SIGHUP to it.
    outcome: String,
    lines: String,
}

impl Reload {
    /// The time masqd logged from the SIGHUP to the reload applied, in ms.
    fn logged_ms(&self) -> Option<f64> {
        let (_, rest) = self
            .outcome
            .split_once(" applied in ")
            .or_else(|| self.outcome.split_once("nothing to do ("))?;
        rest.split_once(" ms")?.0.parse().ok()
    }
}

/// Sends SIGHUP to the lab's masqd and waits (up to 10 s) for the reload's outcome in
/// its log.
fn reload(lab: &Lab) -> Reload {
    let before = masqd_log(lab).len();
    let sent = now_unix();
    let asked = Instant::now();
    signal_pid(lab_masqd_pid(lab), "-HUP");
    loop {
        let log = masqd_log(lab);
        let lines = &log[before..];
        let outcome = lines.lines().find(|l| {
            l.contains("reload: ")
                && (l.contains(" applied in ")
                    || l.contains(" unchanged: ")
                    || l.contains("; nothing changed"))
        });
        if let Some(outcome) = outcome {
            return Reload {
                sent,
                seen: now_unix(),
                outcome: outcome.to_string(),
                lines: lines.to_string(),
            };
        }
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "no reload outcome logged within 10 s of SIGHUP:\n{lines}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn python(args: &[&str]) -> Vec<String> {
    let mut all = vec!["/usr/bin/python3", "-c", CLIENTS];
    all.extend_from_slice(args);
    all.into_iter().map(String::from).collect()
}

/// `n` new connections to VIP:`port`: (answers of RS1, of RS2, failures).
fn picks(lab: &Lab, port: &str, n: usize) -> (u64, u64, u64) {
    let n = n.to_string();
    let args = python(&["picks", VIP, port, &n]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = lab.exec("client", &args);
    assert!(out.status.success(), "picks: {}", describe(&out));
    let found: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    let of = |name: &str| found["servers"][name].as_u64().unwrap_or(0);
    (of("RS1"), of("RS2"), found["failed"].as_u64().unwrap_or(0))
}

/// What a keep-alive client wrote at its end.
struct KeepAlive {
    served: u64,
    broken: u64,
    connections: u64,
    times: Vec<f64>,
}

impl KeepAlive {
    fn read(path: &Path) -> KeepAlive {
        let text = std::fs::read_to_string(path).expect("the keep-alive client's results");
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        KeepAlive {
            served: v["served"].as_u64().expect("served"),
            broken: v["broken"].as_u64().expect("broken"),
            connections: v["connections"].as_u64().expect("connections"),
            times: v["times"]
                .as_array()
                .expect("times")
                .iter()
                .filter_map(serde_json::Value::as_f64)
                .collect(),
        }
    }

    /// Requests completed between `from` and `to` (Unix seconds).
    fn served_between(&self, from: f64, to: f64) -> usize {
        self.times.iter().filter(|&&t| t >= from && t <= to).count()
    }
}

/// The `-S -n` rules of the lab's masqd.
fn saved(lab: &Lab) -> String {
    lab.masqadm_ok(&["-S", "-n"])
}

/// The `-L -n` line of real server `rs` under the service `service`, if listed.
fn server_line(lab: &Lab, service: &str, rs: &str) -> Option<String> {
    let listing = lab.masqadm_ok(&["-L", "-n"]);
    let mut lines = listing
        .lines()
        .skip_while(|l| !l.starts_with(&format!("TCP  {service}")));
    lines.next()?;
    lines
        .take_while(|l| l.starts_with("  ->"))
        .find(|l| l.contains(&format!("{rs}:80")))
        .map(String::from)
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn reloads_under_load_break_no_connection() {
    let rules = RulesFile::new("under-load", START);
    let lab = Lab::up_with(LabOptions {
        masqd_args: rules.masqd_args(&[]),
        ..LabOptions::default()
    });
    assert_eq!(
        saved(&lab),
        "-A -t 192.168.0.10:80 -s rr\n-a -t 192.168.0.10:80 -r 192.168.100.7:80 -m -w 1\n\
         -A -t 192.168.0.10:8080 -s rr\n-a -t 192.168.0.10:8080 -r 192.168.100.9:80 -m -w 1\n"
    );

    // The load: a keep-alive client on each service, a long download on :80 (RS1's).
    let results = |port: &str| lab.state_dir().join(format!("keepalive-{port}.json"));
    let mut clients = Vec::new();
    for port in ["80", "8080"] {
        let out = results(port).display().to_string();
        let args = python(&["keepalive", VIP, port, LOAD_SECS, &out]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        clients.push(lab.spawn("client", &format!("keepalive-{port}"), &args));
    }
    let download = lab.spawn(
        "client",
        "download",
        &[
            "curl",
            "-sS",
            "--max-time",
            "90",
            "--limit-rate",
            "1500k",
            "-o",
            "/dev/null",
            "-w",
            "downloaded %{size_download} bytes, status %{http_code}\n",
            DOWNLOAD,
        ],
    );
    for client in &mut clients {
        client.wait_for_output("started", Duration::from_secs(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut reloads = Vec::new();

    // rr -> wrr 3:1, RS2 added: new connections follow 3:1 (four whole rounds).
    rules.write(WEIGHTED);
    let weighted = reload(&lab);
    assert!(
        weighted.outcome.contains("applied in"),
        "{}",
        weighted.lines
    );
    for change in [
        "service TCP 192.168.0.10:80: scheduler rr -> wrr",
        "real server 192.168.100.7:80 of TCP 192.168.0.10:80: weight 1 -> 3",
        "real server 192.168.100.9:80 added to TCP 192.168.0.10:80 (weight 1)",
    ] {
        assert!(
            weighted.lines.contains(change),
            "{change}:\n{}",
            weighted.lines
        );
    }
    assert_eq!(
        picks(&lab, "80", 40),
        (30, 10, 0),
        "wrr 3:1 after the reload"
    );
    reloads.push(("rr -> wrr 3:1, RS2 added", weighted));

    // The same file again: nothing changes, and the log says so.
    let before = saved(&lab);
    let unchanged = reload(&lab);
    assert!(
        unchanged.outcome.contains("unchanged: nothing to do"),
        "{}",
        unchanged.lines
    );
    assert_eq!(saved(&lab), before);
    reloads.push(("unchanged file", unchanged));

    // A bad line: nothing changes (not even the line before it), the log names it.
    rules.write(BAD_LINE);
    let bad = reload(&lab);
    let path = rules.path.display();
    assert!(
        bad.outcome.contains(&format!(
            "{path}:5: `-a -t 192.168.0.10:80 -r 192.168.100.8:80 -m -w many`"
        )) && bad.outcome.contains("nothing changed"),
        "{}",
        bad.lines
    );
    assert_eq!(saved(&lab), before, "a bad file changes nothing");
    reloads.push(("bad line", bad));

    // RS1 and :8080 leave the file: quiesced while their connections run.
    rules.write(SHRUNK);
    let shrunk = reload(&lab);
    assert!(shrunk.outcome.contains("applied in"), "{}", shrunk.lines);
    assert!(
        shrunk.outcome.contains("2 still leaving"),
        "{}",
        shrunk.lines
    );
    let rs1 = server_line(&lab, "192.168.0.10:80", RS1_IP).expect("RS1 still listed on :80");
    assert_eq!(
        rs1.split_whitespace().nth(3),
        Some("0"),
        "RS1 quiesced: {rs1}"
    );
    assert!(
        server_line(&lab, "192.168.0.10:8080", RS2_IP).is_some(),
        ":8080 still listed while its connection lasts"
    );
    assert_eq!(picks(&lab, "80", 8), (0, 8, 0), "new connections go to RS2");
    assert_eq!(
        picks(&lab, "8080", 1),
        (0, 0, 1),
        "a service that left takes no new connection"
    );
    reloads.push(("RS1 and :8080 removed", shrunk));

    // The load ends: nothing broke.
    let mut download = download;
    download.wait_for_output("downloaded", Duration::from_secs(60));
    let downloaded = download.output();
    assert!(
        downloaded.contains("downloaded 24000000 bytes, status 200"),
        "{downloaded}"
    );
    for client in &mut clients {
        client.wait_for_output("done", Duration::from_secs(30));
    }
    let served: Vec<KeepAlive> = ["80", "8080"]
        .map(|port| KeepAlive::read(&results(port)))
        .into();
    for (client, port) in served.iter().zip(["80", "8080"]) {
        assert_eq!(client.broken, 0, ":{port}: {} broken", client.broken);
        assert_eq!(client.connections, 1, ":{port}: one connection throughout");
        assert!(client.served > 0);
    }

    // Their connections over, RS1 and :8080 are deleted.
    let ended = Instant::now();
    while server_line(&lab, "192.168.0.10:80", RS1_IP).is_some() || saved(&lab).contains(":8080") {
        assert!(
            ended.elapsed() < Duration::from_secs(10),
            "RS1 and :8080 still there 10 s after their connections ended:\n{}",
            lab.masqadm_ok(&["-L", "-n"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let gone_after = ended.elapsed();
    assert_eq!(
        saved(&lab),
        "-A -t 192.168.0.10:80 -s wrr\n-a -t 192.168.0.10:80 -r 192.168.100.9:80 -m -w 1\n"
    );
    let log = masqd_log(&lab);
    for deleted in [
        "reload: real server 192.168.100.7:80 of TCP 192.168.0.10:80 deleted",
        "reload: service TCP 192.168.0.10:8080 deleted",
    ] {
        assert!(log.contains(deleted), "{deleted}:\n{log}");
    }

    let total: u64 = served.iter().map(|c| c.served).sum();
    let broken: u64 = served.iter().map(|c| c.broken).sum();
    let span = |c: &KeepAlive| match (c.times.first(), c.times.last()) {
        (Some(first), Some(last)) if last > first => c.served as f64 / (last - first),
        _ => 0.0,
    };
    let rate: f64 = served.iter().map(span).sum();
    eprintln!(
        "reload figures (keep-alive clients on :80 and :8080, {rate:.0} requests/s together \
         on average, and a 24 MB download capped at 1.5 MB/s):"
    );
    for (what, r) in &reloads {
        let during: usize = served
            .iter()
            .map(|c| c.served_between(r.sent, r.seen))
            .sum();
        let second_after: usize = served
            .iter()
            .map(|c| c.served_between(r.sent, r.sent + 1.0))
            .sum();
        eprintln!(
            "  {what}: SIGHUP to applied {} (logged by masqd), {:.1} ms seen by the test; \
             {during} requests served meanwhile, {second_after} in the second from the SIGHUP",
            r.logged_ms()
                .map_or("-".to_string(), |ms| format!("{ms:.1} ms")),
            (r.seen - r.sent) * 1e3
        );
    }
    eprintln!(
        "  keep-alive requests served: {total}, broken: {broken}; download complete; \
         removed server and service deleted {gone_after:?} after their connections ended"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn save_on_exit_writes_the_reloaded_rules_without_what_was_leaving() {
    let rules = RulesFile::new(
        "save-on-exit",
        "-A -t 192.168.0.10:80 -s rr\n-a -t 192.168.0.10:80 -r 192.168.100.7:80 -m -w 1\n\
         -a -t 192.168.0.10:80 -r 192.168.100.9:80 -m -w 1\n",
    );
    let lab = Lab::up_with(LabOptions {
        masqd_args: rules.masqd_args(&["--save-on-exit"]),
        ..LabOptions::default()
    });
    // A connection held open on one real server keeps it leaving after the reload.
    let mut held = lab.spawn(
        "client",
        "held",
        &[
            "/usr/bin/python3",
            "-c",
            "import http.client, time\n\
             c = http.client.HTTPConnection('192.168.0.10', 80, timeout=5)\n\
             c.request('GET', '/')\n\
             print('held by', c.getresponse().read().decode(), flush=True)\n\
             time.sleep(30)\n",
        ],
    );
    held.wait_for_output("held by", Duration::from_secs(10));
    let (held_on, kept) = if held.output().contains("RS1") {
        (RS1_IP, RS2_IP)
    } else {
        (RS2_IP, RS1_IP)
    };
    rules.write(&format!(
        "-A -t 192.168.0.10:80 -s wlc\n-a -t 192.168.0.10:80 -r {kept}:80 -m -w 2\n"
    ));
    let r = reload(&lab);
    assert!(r.outcome.contains("1 still leaving"), "{}", r.lines);
    let line = server_line(&lab, "192.168.0.10:80", held_on).expect("still listed");
    assert_eq!(line.split_whitespace().nth(3), Some("0"), "{line}");

    stop_lab_masqd(&lab, "-TERM");
    assert_eq!(
        rules.read(),
        format!("-A -t 192.168.0.10:80 -s wlc\n-a -t 192.168.0.10:80 -r {kept}:80 -m -w 2\n"),
        "the file as reloaded, without the server that was leaving"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn sighup_without_rules_changes_nothing_and_masqd_carries_on() {
    let lab = Lab::up();
    restore_wrr(&lab);
    let before = saved(&lab);
    let pid = lab_masqd_pid(&lab);
    signal_pid(pid, "-HUP");
    let asked = Instant::now();
    while !masqd_log(&lab).contains("SIGHUP: masqd runs without --rules: nothing to reload") {
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{}",
            masqd_log(&lab)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(running(pid), "masqd carries on");
    assert_eq!(saved(&lab), before);
    requests_succeed(&lab, 4, "a SIGHUP without --rules");
}
