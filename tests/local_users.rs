//! A local user who can reach masqd's HTTP endpoints (`--metrics`, `--web`) must not
//! take the director down, nor the real servers out, nor read or change anything through
//! a DNS-rebinding page.
//!
//! masqd runs with a service manager's usual soft limit of 1 024 open files and health
//! checks on, and a local program floods an endpoint with up to 1 100 connections, opened
//! as fast as they are taken, that send nothing, or a request head one byte a second
//! (slowloris). masqd serves at most 64 connections per endpoint and closes each that
//! has sent no whole head within 5 s; the others wait in the kernel's backlog.
//! Throughout, the data path, `masqadm`, the real servers' weights and the other endpoint
//! keep working, masqd's descriptors stay bounded, and the endpoint answers again once
//! the flood stops. The figures are printed: connections held, requests served during the
//! flood, masqd's descriptors and memory, how long a flood connection lived, how long the
//! endpoint took to come back. Out of descriptors, the accept loop backs off instead of
//! spinning.
//!
//! Then: requests naming another host (as a DNS-rebinding page sends) are refused on
//! every route of both endpoints, and an admin change needs the per-start token.
//!
//! Needs root, iproute2, nftables, curl and python3 (`scripts/install-deps.sh`).

mod common;

use std::time::{Duration, Instant};

use common::daemon::{lab_masqd_pid, running, signal_pid, Usage};
use common::{Background, Lab, LabOptions, RS2_IP, VIP};
use serde_json::Value;

const METRICS_PORT: u16 = 9105;
const WEB_PORT: u16 = 8085;
/// masqd's header timeout: a connection must send a whole request head within it.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections masqd serves at once on one endpoint.
const MAX_CONNECTIONS: usize = 64;

/// Opens up to `count` connections to 127.0.0.1:PORT, as fast as they are taken (at most
/// 150 connecting at a time: those masqd does not accept yet wait in its backlog or in
/// SYN retries), and keeps them for SECS seconds. Mode `idle` sends nothing; `slowloris`
/// sends a request head that never ends, one byte a second on each connection. Prints
/// "flooding" once all are open or after a second, and at the end one JSON line:
/// connections attempted and established, the most open at once, and how long those
/// that masqd closed lived.
const FLOOD: &str = r#"
import json, resource, selectors, socket, sys, time
port, count, secs, mode = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 100), hard))
head = ('GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Slow: ' % port).encode()
sel = selectors.DefaultSelector()
opened, sent = {}, {}
attempted = connecting = established = failed = peak = 0
lifetimes = []
def connect_more():
    global attempted, connecting
    while attempted < count and connecting < 150:
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(('127.0.0.1', port))
        opened[s], sent[s] = None, 0
        sel.register(s, selectors.EVENT_WRITE)
        attempted += 1
        connecting += 1
start = time.monotonic()
next_byte = start + 1
announced = False
connect_more()
while time.monotonic() < start + secs:
    for key, _ in sel.select(timeout=0.1):
        s = key.fileobj
        if opened[s] is None:
            sel.unregister(s)
            connecting -= 1
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                failed += 1
                s.close()
                del opened[s]
                continue
            opened[s] = time.monotonic()
            established += 1
            sel.register(s, selectors.EVENT_READ)
            continue
        try:
            data = s.recv(4096)
        except OSError:
            data = b''
        if not data:
            lifetimes.append(time.monotonic() - opened[s])
            sel.unregister(s)
            s.close()
            del opened[s]
    connect_more()
    now = time.monotonic()
    peak = max(peak, sum(1 for t in opened.values() if t is not None))
    if not announced and (established == count or now >= start + 1):
        print('flooding: %d open' % established, flush=True)
        announced = True
    if mode == 'slowloris' and now >= next_byte:
        next_byte += 1
        for s, t in opened.items():
            if t is not None:
                try:
                    sent[s] += s.send(head[sent[s]:sent[s] + 1] or b'a')
                except OSError:
                    pass
lifetimes.sort()
print(json.dumps({
    'attempted': attempted, 'established': established, 'failed': failed,
    'peak_open': peak, 'closed_by_masqd': len(lifetimes),
    'lifetime_min': lifetimes[0] if lifetimes else None,
    'lifetime_median': lifetimes[len(lifetimes) // 2] if lifetimes else None,
    'lifetime_max': lifetimes[-1] if lifetimes else None,
}), flush=True)
"#;

/// Both endpoints, health checks that take a real server out after two failed probes a
/// second, and a service manager's soft limit of 1 024 open files.
fn under_service_manager() -> LabOptions {
    LabOptions {
        masqd_args: &[
            "--metrics",
            "127.0.0.1:9105",
            "--web",
            "127.0.0.1:8085",
            "--health-check",
            "tcp",
            "--health-interval",
            "0.5",
            "--health-fall",
            "2",
        ],
        open_files_soft_limit: Some(1024),
        ..LabOptions::default()
    }
}

/// One idle connection and one slowloris to each port given, at once; prints a JSON
/// object with how long each lived before masqd closed it (null: still open after 15 s).
const PROBES: &str = r#"
import json, selectors, socket, sys, time
sel = selectors.DefaultSelector()
probes = {}
for port in map(int, sys.argv[1:]):
    for mode in ('idle', 'slowloris'):
        s = socket.create_connection(('127.0.0.1', port))
        s.setblocking(False)
        probes[s] = ['%s %d' % (mode, port), time.monotonic(), None, 0]
        sel.register(s, selectors.EVENT_READ)
head = b'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: '
start = time.monotonic()
while time.monotonic() < start + 15 and any(p[2] is None for p in probes.values()):
    for key, _ in sel.select(timeout=1.0):
        s = key.fileobj
        try:
            data = s.recv(4096)
        except OSError:
            data = b''
        if not data:
            p = probes[s]
            p[2] = time.monotonic() - p[1]
            sel.unregister(s)
    for s, p in probes.items():
        if p[0].startswith('slowloris') and p[2] is None and time.monotonic() >= p[1] + p[3]:
            try:
                s.send(head[p[3]:p[3] + 1] or b'a')
            except OSError:
                pass
            p[3] += 1
print(json.dumps({p[0]: p[2] for p in probes.values()}), flush=True)
"#;

/// rr over both real servers.
const RULES: &str = "-A -t 192.168.0.10:80 -s rr
-a -t 192.168.0.10:80 -r 192.168.100.7:80 -m -w 1
-a -t 192.168.0.10:80 -r 192.168.100.9:80 -m -w 1
";

fn seed(lab: &Lab) {
    let (_, stderr, code) = lab.masqadm_stdin(&["-R"], RULES);
    assert!(
        code == 0 && stderr.is_empty(),
        "masqadm -R: exit {code}: {stderr}"
    );
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

/// `curl` in the director's namespace: the HTTP status (0 when nothing came within
/// `max_time` seconds) and the body.
fn http(lab: &Lab, extra: &[&str], url: &str, max_time: &str) -> (u16, String) {
    let mut args = vec![
        "curl",
        "-s",
        "--max-time",
        max_time,
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
    ];
    args.extend_from_slice(extra);
    args.push(url);
    let out = lab.exec("dir", &args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn metrics_url(path: &str) -> String {
    format!("http://127.0.0.1:{METRICS_PORT}{path}")
}

fn web_url(path: &str) -> String {
    format!("http://127.0.0.1:{WEB_PORT}{path}")
}

/// Starts a flood of `count` connections to `port` for `secs` seconds in the director's
/// namespace.
fn flood(lab: &Lab, label: &str, port: u16, count: usize, secs: u64, mode: &str) -> Background {
    let (port, count, secs) = (port.to_string(), count.to_string(), secs.to_string());
    let mut flood = lab.spawn(
        "dir",
        label,
        &["/usr/bin/python3", "-c", FLOOD, &port, &count, &secs, mode],
    );
    flood.wait_for_output("flooding", Duration::from_secs(30));
    flood
}

/// Waits for the flood's JSON report.
fn report(flood: &mut Background, within: Duration) -> Value {
    flood.wait_for_output("\"attempted\"", within);
    let out = flood.output();
    let line = out
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("the flood's report");
    serde_json::from_str(line).expect("the report is JSON")
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn idle_connections_to_metrics_take_no_real_server_out() {
    let lab = Lab::up_with(under_service_manager());
    seed(&lab);
    let healthy = weights(&lab);
    assert_eq!(healthy.len(), 2, "{healthy:?}");
    let mut holder = flood(&lab, "holder", METRICS_PORT, 1100, 12, "idle");
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
    eprintln!("{}", report(&mut holder, Duration::from_secs(30)));
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn idle_and_slowloris_floods_leave_the_director_working_and_end_when_they_stop() {
    common::require_program("curl", "curl");
    let lab = Lab::up_with(under_service_manager());
    seed(&lab);
    let healthy = weights(&lab);
    let before = Usage::of_masqd(&lab);
    eprintln!("masqd before the floods: {before:?}");
    let endpoints = [
        (
            "--metrics",
            METRICS_PORT,
            metrics_url("/metrics"),
            web_url("/api/state"),
        ),
        (
            "--web",
            WEB_PORT,
            web_url("/api/state"),
            metrics_url("/metrics"),
        ),
    ];
    for (name, port, url, other) in &endpoints {
        for mode in ["idle", "slowloris"] {
            let label = format!("flood-{port}-{mode}");
            let mut flooding = flood(&lab, &label, *port, 1100, 10, mode);
            let (mut served, mut asked, mut vip, mut listings) = (0, 0, 0, 0);
            let mut peak = Usage::default();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(8) {
                // The data path, masqadm, the weights and the other endpoint carry on.
                lab.curl(&format!("http://{VIP}/"));
                vip += 1;
                assert_eq!(weights(&lab), healthy, "{mode} flood of {name}: weights");
                listings += 1;
                let (code, body) = http(&lab, &[], other, "5");
                assert_eq!(code, 200, "{mode} flood of {name}: {other} answered {body}");
                // The flooded endpoint may make a request wait its turn.
                asked += 1;
                if http(&lab, &[], url, "1").0 == 200 {
                    served += 1;
                }
                let now = Usage::of_masqd(&lab);
                peak = peak.max(now);
                // Each endpoint's cap, whatever the flood (the previous flood's last
                // connections may still be closing on the other endpoint).
                assert!(
                    now.fds <= before.fds + 2 * MAX_CONNECTIONS + 8,
                    "{mode} flood of {name}: masqd holds {} descriptors (before: {})",
                    now.fds,
                    before.fds
                );
                std::thread::sleep(Duration::from_millis(300));
            }
            let figures = report(&mut flooding, Duration::from_secs(30));
            drop(flooding);
            let stopped = Instant::now();
            while http(&lab, &[], url, "1").0 != 200 {
                assert!(
                    stopped.elapsed() < Duration::from_secs(10),
                    "{name} does not answer 10 s after a {mode} flood stopped"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            let back = stopped.elapsed();
            eprintln!(
                "{mode} flood of {name} (up to 1 100 connections): {figures}; during it \
                 {vip} requests to the VIP and {listings} masqadm listings all served, \
                 {served} of {asked} requests to {name} served within 1 s; masqd at most \
                 {} descriptors and {} KiB resident (before: {} and {} KiB); {name} \
                 answered again {back:?} after the flood stopped",
                peak.fds, peak.rss_kib, before.fds, before.rss_kib
            );
            // The connections masqd took at once lived the header timeout; those it took
            // later waited in the backlog first.
            let shortest = figures["lifetime_min"].as_f64().expect("masqd closed some");
            assert!(
                (HEADER_TIMEOUT.as_secs_f64() - 0.5..HEADER_TIMEOUT.as_secs_f64() + 1.5)
                    .contains(&shortest),
                "{mode} flood of {name}: the shortest-lived connection lived {shortest} s: {figures}"
            );
            assert!(
                figures["closed_by_masqd"].as_u64() >= Some(MAX_CONNECTIONS as u64),
                "{figures}"
            );
        }
    }
    let after = Usage::of_masqd(&lab);
    eprintln!("masqd after the floods: {after:?}");
    assert!(after.fds <= before.fds + 2, "{after:?} vs {before:?}");
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn an_idle_connection_and_a_slowloris_are_closed_within_the_header_timeout() {
    let lab = Lab::up_with(LabOptions {
        masqd_args: &["--metrics", "127.0.0.1:9105", "--web", "127.0.0.1:8085"],
        ..LabOptions::default()
    });
    let out = lab.exec(
        "dir",
        &[
            "/usr/bin/python3",
            "-c",
            PROBES,
            &METRICS_PORT.to_string(),
            &WEB_PORT.to_string(),
        ],
    );
    let lived: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", common::describe(&out)));
    eprintln!("lifetimes in seconds: {lived}");
    let lived = lived.as_object().expect("a JSON object");
    assert_eq!(lived.len(), 4, "{lived:?}");
    for (probe, secs) in lived {
        let secs = secs
            .as_f64()
            .unwrap_or_else(|| panic!("{probe} was never closed"));
        assert!(
            (HEADER_TIMEOUT.as_secs_f64() - 0.5..HEADER_TIMEOUT.as_secs_f64() + 1.0)
                .contains(&secs),
            "{probe} lived {secs} s; the header timeout is {HEADER_TIMEOUT:?}"
        );
    }
}

/// The value of a sample in a `/metrics` scrape, by its name and labels as printed.
fn sample(scrape: &str, name_and_labels: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        let (head, value) = l.rsplit_once(' ')?;
        (head == name_and_labels).then(|| value.parse().ok())?
    })
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn requests_naming_another_host_are_refused_on_every_route() {
    common::require_program("curl", "curl");
    let lab = Lab::up_with(LabOptions {
        masqd_args: &[
            "--metrics",
            "127.0.0.1:9105",
            "--web",
            "127.0.0.1:8085",
            "--http-allow-host",
            "director.lab",
        ],
        ..LabOptions::default()
    });
    seed(&lab);
    let routes = [
        web_url("/"),
        web_url("/api/state"),
        web_url("/api/events"),
        metrics_url("/metrics"),
    ];
    for url in &routes {
        let (host, port) = (
            "127.0.0.1",
            url.rsplit_once(':').unwrap().1.split('/').next().unwrap(),
        );
        // DNS rebinding: the attacker's name, resolving to this host.
        let rebound = url.replace(host, "evil.example");
        let resolve = format!("evil.example:{port}:127.0.0.1");
        let (code, body) = http(&lab, &["--resolve", &resolve], &rebound, "2");
        assert_eq!(code, 421, "{rebound}: {body}");
        assert!(!body.contains("192.168.100"), "{rebound} leaked: {body}");
        // No Host at all.
        assert_eq!(
            http(&lab, &["-H", "Host:"], url, "2").0,
            400,
            "{url} without Host"
        );
        // Its own names are answered (the trace stream stays open: curl's time runs out
        // after the status came).
        assert_eq!(http(&lab, &[], url, "1").0, 200, "{url}");
        let named = format!("localhost:{port}");
        assert_eq!(
            http(&lab, &["-H", &format!("Host: {named}")], url, "1").0,
            200,
            "{named}"
        );
        let allowed = format!("Host: director.lab:{port}");
        assert_eq!(http(&lab, &["-H", &allowed], url, "1").0, 200, "{allowed}");
    }
    // Each refusal is counted.
    let (code, scrape) = http(&lab, &[], &metrics_url("/metrics"), "5");
    assert_eq!(code, 200);
    for (labels, want) in [
        ("endpoint=\"web\",reason=\"foreign_host\"", 3.0),
        ("endpoint=\"web\",reason=\"malformed_host\"", 3.0),
        ("endpoint=\"metrics\",reason=\"foreign_host\"", 1.0),
        ("endpoint=\"metrics\",reason=\"malformed_host\"", 1.0),
    ] {
        let name = format!("masq_http_refused_requests_total{{{labels}}}");
        assert_eq!(sample(&scrape, &name), Some(want), "{name}:\n{scrape}");
    }
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn an_admin_change_needs_the_token_from_the_file_beside_the_socket() {
    common::require_program("curl", "curl");
    let lab = Lab::up_with(LabOptions {
        masqd_args: &[
            "--web",
            "127.0.0.1:8085",
            "--web-admin",
            "--metrics",
            "127.0.0.1:9105",
        ],
        ..LabOptions::default()
    });
    seed(&lab);
    let file = lab.state_dir().join("masqd.sock.web-token");
    let meta = std::fs::symlink_metadata(&file).expect("the token file");
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        assert!(meta.file_type().is_file());
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "{:o}",
            meta.permissions().mode()
        );
        assert_eq!(meta.uid(), 0);
    }
    let token = std::fs::read_to_string(&file).expect("reading the token");
    let token = token.trim();
    assert!(
        token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{token:?}"
    );
    let log = std::fs::read_to_string(lab.state_dir().join("masqd.log")).unwrap();
    assert!(
        log.contains(&*file.to_string_lossy()),
        "masqd says where the token is:\n{log}"
    );

    let weight_2 = r#"["-e","-t","192.168.0.10:80","-r","192.168.100.9","-m","-w","2"]"#;
    let post = |extra: &[&str]| {
        let mut args = vec![
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            weight_2,
        ];
        args.extend_from_slice(extra);
        http(&lab, &args, &web_url("/api/command"), "5")
    };
    let wrong = format!("X-Masq-Token: {}", "0".repeat(64));
    let short = format!("X-Masq-Token: {}", &token[..32]);
    for (what, extra) in [
        ("no token", &[][..]),
        ("a wrong token", &["-H", &wrong][..]),
        ("half the token", &["-H", &short][..]),
    ] {
        let (code, body) = post(extra);
        assert_eq!(code, 403, "a change with {what}: {body}");
        assert!(body.contains("token"), "{body}");
        assert!(
            weights(&lab).contains(&format!("{RS2_IP}:80 w1")),
            "{what} changed a weight"
        );
    }
    let right = format!("X-Masq-Token: {token}");
    let (code, body) = post(&["-H", &right]);
    assert_eq!(code, 200, "{body}");
    assert!(
        weights(&lab).contains(&format!("{RS2_IP}:80 w2")),
        "{:?}",
        weights(&lab)
    );
    // The same-origin, JSON and allowed-command checks still apply with the token.
    let (code, _) = http(
        &lab,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-H",
            &right,
            "--data",
            r#"["-C"]"#,
        ],
        &web_url("/api/command"),
        "5",
    );
    assert_eq!(code, 403);
    assert_eq!(weights(&lab).len(), 2);

    let (_, scrape) = http(&lab, &[], &metrics_url("/metrics"), "5");
    let refused = "masq_http_refused_requests_total{endpoint=\"web\",reason=\"bad_token\"}";
    assert_eq!(sample(&scrape, refused), Some(3.0), "{scrape}");
    let log = std::fs::read_to_string(lab.state_dir().join("masqd.log")).unwrap();
    assert!(!log.contains(token), "masqd logged the token");

    // The file goes with masqd.
    let pid = lab_masqd_pid(&lab);
    signal_pid(pid, "-TERM");
    let asked = Instant::now();
    while running(pid) {
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "masqd did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!file.exists(), "{} left behind", file.display());
}

/// CPU time masqd has used (all its threads), in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("masqd runs");
    // After the command name: state, ppid, … utime (14th field) and stime (15th).
    let fields: Vec<&str> = stat.rsplit(") ").next().unwrap().split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn out_of_descriptors_the_accept_loop_backs_off_instead_of_spinning() {
    common::require_program("prlimit", "util-linux");
    let lab = Lab::up_with(LabOptions {
        masqd_args: &["--metrics", "127.0.0.1:9105"],
        ..LabOptions::default()
    });
    seed(&lab);
    let pid = lab_masqd_pid(&lab).to_string();
    let pid = pid.as_str();
    // Room for a few connections only, below the endpoint's own cap.
    let limit = Usage::of_masqd(&lab).fds + 8;
    let set_limit = |soft: &str| {
        let out = std::process::Command::new("prlimit")
            .args(["--pid", pid, &format!("--nofile={soft}:")])
            .output()
            .expect("prlimit");
        assert!(out.status.success(), "{}", common::describe(&out));
    };
    set_limit(&limit.to_string());
    let mut flooding = flood(&lab, "flood-emfile", METRICS_PORT, 200, 8, "idle");
    std::thread::sleep(Duration::from_secs(1));
    let (ticks, measured) = (cpu_ticks(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let used = (cpu_ticks(pid) - ticks) as f64 / 100.0 / measured.elapsed().as_secs_f64();
    // The packet threads do not need descriptors: the data path carries on.
    for _ in 0..4 {
        lab.curl(&format!("http://{VIP}/"));
    }
    let figures = report(&mut flooding, Duration::from_secs(30));
    drop(flooding);
    set_limit("1024");
    let log = std::fs::read_to_string(lab.state_dir().join("masqd.log")).unwrap();
    eprintln!(
        "out of descriptors (limit {limit}): masqd used {:.1} % of a CPU; flood: {figures}",
        used * 100.0
    );
    assert!(used < 0.2, "masqd spun at {:.0} % of a CPU", used * 100.0);
    let asked = Instant::now();
    while http(&lab, &[], &metrics_url("/metrics"), "1").0 != 200 {
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "--metrics does not answer again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Said once per episode, not per failed accept: an episode ends when an accept
    // succeeds, which here happens each time the header timeout frees a connection.
    let (_, scrape) = http(&lab, &[], &metrics_url("/metrics"), "5");
    let failed = sample(
        &scrape,
        "masq_http_accept_errors_total{endpoint=\"metrics\"}",
    )
    .expect("the accept errors are counted");
    let warnings = log.matches("metrics endpoint: accept failed").count();
    eprintln!("{failed} failed accepts, {warnings} warnings");
    assert!(failed >= 4.0, "{failed} failed accepts");
    assert!(
        (1..=3).contains(&warnings),
        "{warnings} warnings for {failed} failed accepts:\n{log}"
    );
    let log = std::fs::read_to_string(lab.state_dir().join("masqd.log")).unwrap();
    assert!(
        log.contains("metrics endpoint: accepting again after"),
        "{log}"
    );
}
