//! The live lab page (`masqd --web ADDR [--web-admin]`) in a real headless browser.
//!
//! Chromium runs inside the lab's director namespace, where the page is served on
//! 127.0.0.1:8080, and is driven over the DevTools protocol (`common/browser.rs`). A
//! one-shot `--dump-dom` cannot be used: the page's trace stream (Server-Sent Events) is
//! a request that never finishes, and headless virtual time waits for it forever. Driving
//! the page live is also what a class does: open it, then make traffic, and watch it
//! arrive.
//!
//! Asserted as a student would see it: the topology is drawn, after 8 connections under
//! wrr 3:1 the real servers show 6 and 2, the four stages of the connections appear with
//! their addresses, markup in the data stays text, and the browser reports no console
//! message, exception or failed load. The screenshot goes to
//! `target/test-artifacts/web-page.png` (and the final DOM next to it).
//!
//! Needs root (network namespaces) and Chromium (`scripts/install-deps.sh` installs it).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::browser::{chromium, Browser};
use common::seed::restore_wrr;
use common::{describe, Lab, LabOptions};
use serde_json::{json, Value};

const PAGE: &str = "http://127.0.0.1:8080/";
const RS1: &str = "192.168.100.7:80";
const RS2: &str = "192.168.100.9:80";

/// `target/test-artifacts`, next to the binaries the lab runs.
fn artifacts(lab: &Lab) -> PathBuf {
    let masqd = lab.bin("masqd");
    let target = masqd
        .parent()
        .and_then(Path::parent)
        .expect("the binaries live in target/<profile>");
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("creating target/test-artifacts");
    dir
}

/// `curl` in the director namespace against the page's server: (HTTP status, body).
fn http(lab: &Lab, extra: &[&str], path: &str) -> (u16, String) {
    let url = format!("http://127.0.0.1:8080{path}");
    let mut args = vec![
        "curl",
        "-sS",
        "--max-time",
        "5",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    let out = lab.exec("dir", &args);
    assert!(out.status.success(), "curl {url}:\n{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("curl printed the status");
    (
        code.trim().parse().expect("an HTTP status"),
        body.to_owned(),
    )
}

/// Sends `request` as raw bytes to the page's server (in the director namespace); what
/// came back.
fn raw(lab: &Lab, request: &str) -> String {
    let script = "exec 3<>/dev/tcp/127.0.0.1/8080 && printf '%s' \"$1\" >&3 && timeout 8 cat <&3";
    let out = lab.exec("dir", &["bash", "-c", script, "raw", request]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of `.rs-row[data-rs=SERVER] .CLASS`, as a JavaScript expression.
fn cell(server: &str, class: &str) -> String {
    format!(
        "(document.querySelector('.rs-row[data-rs=\"{server}\"] .{class}') || {{}}).textContent"
    )
}

/// Everything a failed wait shows about the page.
const SUMMARY: &str = "JSON.stringify({ \
    status: document.getElementById('status').textContent, \
    trace: document.getElementById('trace-status').textContent, \
    rows: [...document.querySelectorAll('.rs-row')].map(r => r.textContent), \
    stages: [...document.querySelectorAll('#stages .stage')].map(r => r.textContent), \
    labels: [...document.querySelectorAll('#stage-labels text')].map(t => t.textContent), \
    errors: document.getElementById('js-errors').textContent })";

#[test]
#[ignore = "needs root, network namespaces and Chromium: scripts/test.sh runs it"]
fn the_page_shows_the_lab_and_wrr_3_to_1_in_a_browser() {
    common::require_root_and_iproute2();
    let binary = chromium();
    let lab = Lab::up_with(LabOptions {
        masqd_args: &["--web", "127.0.0.1:8080"],
        ..LabOptions::default()
    });
    // The page is opened on an empty table, as in class, and follows the rules as they
    // are typed.
    let mut b = Browser::start(&lab, &binary);
    b.call("Page.navigate", json!({ "url": PAGE }));
    b.wait_until(
        "document.body.dataset.ready === '1' && \
         document.getElementById('trace-status').textContent === 'trace: live'",
        Duration::from_secs(15),
        "the page did not load its state and the trace",
        SUMMARY,
    );
    restore_wrr(&lab);
    b.wait_until(
        "document.querySelectorAll('#topology .rs').length === 2",
        Duration::from_secs(10),
        "the real servers did not appear",
        SUMMARY,
    );
    // The topology: the client, the director with the VIP and DIP sides, both real servers.
    let topology = b.eval(
        "JSON.stringify({ \
           rs: [...document.querySelectorAll('#topology .rs')].map(g => g.dataset.rs), \
           director: document.querySelector('#topology #director').textContent, \
           client: document.querySelector('#topology #client').textContent })",
    );
    let topology: Value = serde_json::from_str(topology.as_str().unwrap()).unwrap();
    assert_eq!(topology["rs"], json!([RS1, RS2]), "{topology}");
    let director = topology["director"].as_str().unwrap();
    for text in [
        "VIP side",
        "DIP side",
        "192.168.0.10/24",
        "192.168.100.10/24",
        "TCP 192.168.0.10:80 wrr",
    ] {
        assert!(
            director.contains(text),
            "the director box lacks {text:?}: {director}"
        );
    }

    // Eight connections from the client, while the page watches.
    let mut answers = Vec::new();
    for _ in 0..8 {
        answers.push(lab.curl("http://192.168.0.10/"));
    }
    let rs1 = answers.iter().filter(|a| a.starts_with("RS1 ")).count();
    assert_eq!(rs1, 6, "the real servers' answers: {answers:?}");

    b.wait_until(
        &format!(
            "{} === '6' && {} === '2'",
            cell(RS1, "conns"),
            cell(RS2, "conns")
        ),
        Duration::from_secs(10),
        "the page does not show 6 and 2 connections",
        SUMMARY,
    );
    assert_eq!(b.eval(&cell(RS1, "weight")), json!("3"));
    assert_eq!(b.eval(&cell(RS2, "weight")), json!("1"));
    assert_eq!(
        b.eval("document.querySelectorAll('#conns tbody tr.conn-row').length"),
        json!(8),
        "the connection table lists the 8 connections"
    );
    // The chart's legend has the same numbers.
    let legend = b.eval("document.getElementById('chart-legend').textContent");
    assert!(
        legend
            .as_str()
            .unwrap()
            .contains("192.168.100.7:80 · 6 conns (75%)"),
        "{legend}"
    );

    // The trace reached the page: the latest connection's four stages with their
    // addresses, and the labels on the links.
    b.wait_until(
        "[...document.querySelectorAll('#stages .conn-trace')].some(t => \
           [1, 2, 3, 4].every(s => !t.querySelector('.stage[data-stage=\"' + s + '\"] .sip').textContent.includes('…'))) \
         && document.querySelector('#label-s4').textContent.includes('SIP=192.168.0.10:80')",
        Duration::from_secs(15),
        "the four stages did not reach the page",
        SUMMARY,
    );
    let stages = b.eval(
        "[...document.querySelector('#stages .conn-trace').querySelectorAll('.stage')].map(s => s.textContent)",
    );
    let stages: Vec<&str> = stages
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        stages[0].starts_with("1 client→VIP SIP=192.168.0.101:")
            && stages[0].contains("DIP=192.168.0.10:80"),
        "{stages:?}"
    );
    assert!(
        stages[1].starts_with("2 director→RS SIP=192.168.0.101:")
            && stages[1].contains("DIP=192.168.100."),
        "{stages:?}"
    );
    assert!(
        stages[2].starts_with("3 RS→director SIP=192.168.100.")
            && stages[2].contains("DIP=192.168.0.101:"),
        "{stages:?}"
    );
    assert!(
        stages[3].starts_with("4 director→client SIP=192.168.0.10:80 DIP=192.168.0.101:"),
        "{stages:?}"
    );

    let dir = artifacts(&lab);
    let png = b.screenshot();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "not a screenshot ({} bytes)",
        png.len()
    );
    let shot = dir.join("web-page.png");
    std::fs::write(&shot, &png).expect("writing the screenshot");
    eprintln!("screenshot: {}", shot.display());
    let dom = b.eval("document.documentElement.outerHTML");
    std::fs::write(dir.join("web-page.html"), dom.as_str().unwrap_or_default())
        .expect("writing the DOM");

    let complaints = b.complaints();
    assert!(
        complaints.is_empty(),
        "the browser complained:\n{}",
        complaints.join("\n")
    );

    // Bad input: markup anywhere in the data is shown as text, and runs nothing.
    let escaped = b.eval(
        "(async () => { \
           const evil = '<img src=x onerror=\"window.pwned=1\"><b>bold</b>'; \
           const s = JSON.parse(JSON.stringify(page.last), (k, v) => typeof v === 'string' ? v + evil : v); \
           render(s); page.tokens = 8; \
           onTraceEvent({ event: 'stage', stage: 1, label: '1 client→VIP' + evil, client: '10.9.9.9:1' + evil, \
                          virtual: s.services[0].key.vip, sip: evil, dip: evil, flags: evil }); \
           onTraceEvent({ event: 'drop', side: evil, reason: evil, client: evil, virtual: evil }); \
           await new Promise(r => setTimeout(r, 300)); \
           return JSON.stringify({ imgs: document.querySelectorAll('img, b').length, \
                                   pwned: !!window.pwned, \
                                   shown: document.body.textContent.includes('<img src=x onerror=') }); \
         })()",
    );
    assert_eq!(
        serde_json::from_str::<Value>(escaped.as_str().unwrap()).unwrap(),
        json!({ "imgs": 0, "pwned": false, "shown": true }),
        "markup in the data was not kept as text"
    );
    let complaints = b.complaints();
    assert!(
        complaints.is_empty(),
        "the browser complained after bad input:\n{}",
        complaints.join("\n")
    );
    b.close();

    // The API, read-only.
    let (code, body) = http(&lab, &[], "/api/state");
    assert_eq!(code, 200, "{body}");
    let state: Value = serde_json::from_str(&body).expect("/api/state is JSON");
    assert_eq!(state["admin"], json!(false));
    assert_eq!(state["services"][0]["scheduler"], "wrr");
    assert_eq!(state["connections"]["total"], json!(8));
    let (code, body) = http(
        &lab,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            "[\"-C\"]",
        ],
        "/api/command",
    );
    assert_eq!(code, 403, "{body}");
    let (code, _) = http(&lab, &[], "/nowhere");
    assert_eq!(code, 404);
    let (code, _) = http(&lab, &["-X", "DELETE"], "/api/state");
    assert_eq!(code, 405);
    // Garbage gets an error status, a huge head is refused, and the server carries on.
    for (request, status) in [
        ("garbage\r\n\r\n", "HTTP/1.1 400 "),
        (
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nno colon\r\n\r\n",
            "HTTP/1.1 400 ",
        ),
        ("\u{1}\u{7f}\u{ff} HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "),
        (
            "POST /api/command HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 99999999\r\n\r\n",
            "HTTP/1.1 413 ",
        ),
        (
            "POST /api/command HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 411 ",
        ),
    ] {
        let reply = raw(&lab, request);
        assert!(reply.starts_with(status), "{request:?} got {reply:?}");
    }
    // 431 Request Header Fields Too Large.
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let reply = raw(&lab, &huge);
    assert!(reply.starts_with("HTTP/1.1 431 "), "{reply:?}");
    assert_eq!(http(&lab, &[], "/api/state").0, 200);
    // Nothing changed.
    assert!(lab
        .masqadm_ok(&["-L", "-n"])
        .contains("TCP  192.168.0.10:80 wrr"));
}

#[test]
#[ignore = "needs root, network namespaces and Chromium: scripts/test.sh runs it"]
fn with_web_admin_the_page_changes_weights_and_nothing_else() {
    common::require_root_and_iproute2();
    let binary = chromium();
    let lab = Lab::up_with(LabOptions {
        masqd_args: &["--web", "127.0.0.1:8080", "--web-admin"],
        ..LabOptions::default()
    });
    restore_wrr(&lab);
    // masqd wrote the token beside its socket, for root only.
    let token_file = lab.state_dir().join("masqd.sock.web-token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap_or_else(|e| panic!("reading {}: {e}", token_file.display()));
    let token = token.trim();
    assert_eq!(token.len(), 64, "{token:?}");

    // The page asks for the token, naming the file; it is typed in once.
    let mut b = Browser::start(&lab, &binary);
    b.call("Page.navigate", json!({ "url": PAGE }));
    b.wait_until(
        "document.body.dataset.ready === '1' && !document.getElementById('admin').hidden \
         && !document.getElementById('admin-token').hidden",
        Duration::from_secs(15),
        "the admin form and its token field did not appear",
        SUMMARY,
    );
    let hint = b.eval("document.getElementById('admin-token-hint').textContent");
    assert!(
        hint.as_str()
            .is_some_and(|h| h.contains(&*token_file.to_string_lossy())),
        "the token field does not name {}: {hint}",
        token_file.display()
    );
    b.eval(&format!(
        "(() => {{ document.getElementById('admin-token-value').value = '{token}'; \
           document.querySelector('#admin-token button').click(); }})()"
    ));
    assert_eq!(
        b.eval(
            "JSON.stringify([sessionStorage.getItem('masq-admin-token'), \
               document.getElementById('admin-token').hidden])"
        ),
        json!(format!("[\"{token}\",true]")),
        "the page keeps the token for the tab and stops asking"
    );

    // From the page's form: RS2's weight to 2.
    b.eval(&format!(
        "(() => {{ const sel = document.getElementById('admin-dest'); \
           sel.value = [...sel.options].find(o => o.textContent.endsWith('{RS2}')).value; \
           sel.dispatchEvent(new Event('change')); \
           document.getElementById('admin-weight-value').value = '2'; \
           document.querySelector('#admin-weight button').click(); }})()"
    ));
    b.wait_until(
        &format!("{} === '2'", cell(RS2, "weight")),
        Duration::from_secs(10),
        "the weight set from the page did not show",
        "document.getElementById('admin-result').textContent",
    );
    let png = b.screenshot();
    std::fs::write(artifacts(&lab).join("web-page-admin.png"), &png)
        .expect("writing the screenshot");
    let complaints = b.complaints();
    assert!(
        complaints.is_empty(),
        "the browser complained:\n{}",
        complaints.join("\n")
    );
    b.close();
    let listing = lab.masqadm_ok(&["-L", "-n"]);
    assert!(
        listing.contains("  -> 192.168.100.9:80             Masq    2"),
        "{listing}"
    );

    let token_header = format!("X-Masq-Token: {token}");
    let json_body = ["-H", "Content-Type: application/json", "-H", &token_header];
    let post = |body: &str, extra: &[&str]| {
        let mut args = vec!["-X", "POST", "--data", body];
        args.extend_from_slice(extra);
        http(&lab, &args, "/api/command")
    };
    // The scheduler, with ipvsadm's own answer.
    let (code, body) = post(r#"["-E","-t","192.168.0.10:80","-s","rr"]"#, &json_body);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["code"],
        json!(0),
        "{body}"
    );
    // ipvsadm's message for a wrong edit.
    let (code, body) = post(
        r#"["-e","-t","192.168.0.10:80","-r","192.168.100.99","-m"]"#,
        &json_body,
    );
    assert_eq!(code, 200, "{body}");
    let outcome: Value = serde_json::from_str(&body).unwrap();
    assert_ne!(outcome["code"], json!(0), "{body}");
    // Anything but -E/-e, garbage, another origin, a form post: refused.
    for (body, extra, want) in [
        (r#"["-C"]"#, &json_body[..], 403),
        (r#"["-D","-t","192.168.0.10:80"]"#, &json_body[..], 403),
        (r#"["-R"]"#, &json_body[..], 403),
        (r#"{"args":1}"#, &json_body[..], 400),
        ("not json", &json_body[..], 400),
        (
            r#"["-E","-t","192.168.0.10:80","-s","wrr"]"#,
            &["-H", "Content-Type: text/plain", "-H", &token_header][..],
            403,
        ),
        (
            r#"["-E","-t","192.168.0.10:80","-s","wrr"]"#,
            &[
                "-H",
                "Content-Type: application/json",
                "-H",
                "Origin: http://evil.example",
                "-H",
                &token_header,
            ][..],
            403,
        ),
    ] {
        let (code, reply) = post(body, extra);
        assert_eq!(code, want, "{body} {extra:?}: {reply}");
    }
    let listing = lab.masqadm_ok(&["-L", "-n"]);
    assert!(listing.contains("TCP  192.168.0.10:80 rr"), "{listing}");
    assert_eq!(listing.matches("Masq").count(), 2, "{listing}");
}
