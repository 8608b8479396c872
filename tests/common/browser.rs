//! Chromium, headless, driven over the DevTools protocol through a pipe
//! (`--remote-debugging-pipe`: fd 3 in, fd 4 out, NUL-separated JSON, handed to it as two
//! FIFOs), inside a lab namespace: a page is opened, evaluated, waited on and shot as a
//! user's browser would show it, and what the browser complained about is collected.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{describe, Background, Lab};

/// The browser's binary.
///
/// # Panics
///
/// When Chromium is not installed.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
        .expect("Chromium is not installed: this test needs chromium (scripts/install-deps.sh installs it)")
}

/// Chromium, headless, driven over the DevTools protocol.
pub struct Browser {
    /// Commands to the browser (its fd 3).
    to: File,
    /// Messages from the browser (its fd 4), read by a thread.
    from: Receiver<Value>,
    /// The attached page's session.
    session: String,
    next_id: u64,
    /// Every event received so far.
    events: Vec<Value>,
    /// The browser process; stopped when this drops.
    process: Background,
}

impl Browser {
    /// Starts Chromium in the director namespace with a blank page attached.
    pub fn start(lab: &Lab, binary: &Path) -> Browser {
        let state = lab.state_dir();
        let (fifo_in, fifo_out) = (state.join("cdp.in"), state.join("cdp.out"));
        for fifo in [&fifo_in, &fifo_out] {
            let out = std::process::Command::new("mkfifo")
                .arg(fifo)
                .output()
                .expect("running mkfifo");
            assert!(out.status.success(), "mkfifo: {}", describe(&out));
        }
        let profile = state.join("chromium-profile");
        let command = format!(
            "exec '{}' --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
             --disable-background-networking --disable-component-update --disable-sync \
             --disable-extensions --hide-scrollbars --window-size=1280,900 \
             --enable-logging=stderr --v=0 --user-data-dir='{}' \
             --remote-debugging-pipe about:blank 3<'{}' 4>'{}'",
            binary.display(),
            profile.display(),
            fifo_in.display(),
            fifo_out.display()
        );
        let process = lab.spawn("dir", "chromium", &["bash", "-c", &command]);
        // Opening a FIFO blocks until the other end opens it: do it on a thread, so that a
        // browser that never starts fails the test instead of hanging it.
        let (opened_tx, opened) = channel();
        let (fi, fo) = (fifo_in.clone(), fifo_out.clone());
        std::thread::spawn(move || {
            let to = File::options().write(true).open(&fi);
            let from = File::open(&fo);
            let _ = opened_tx.send((to, from));
        });
        let (to, from) = match opened.recv_timeout(Duration::from_secs(30)) {
            Ok((Ok(to), Ok(from))) => (to, from),
            Ok((to, from)) => panic!("opening the DevTools pipes: {to:?} {from:?}"),
            Err(_) => panic!(
                "Chromium did not open its DevTools pipe within 30 s:\n{}",
                process.output()
            ),
        };
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(from);
            let mut buf = Vec::new();
            while matches!(reader.read_until(0, &mut buf), Ok(n) if n > 0) {
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
                buf.clear();
            }
        });
        let mut browser = Browser {
            to,
            from: rx,
            session: String::new(),
            next_id: 0,
            events: Vec::new(),
            process,
        };
        let target = browser.call("Target.createTarget", json!({ "url": "about:blank" }));
        let attached = browser.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            browser.call(domain, json!({}));
        }
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
        );
        browser
    }

    /// Sends a command (to the page's session once attached) and waits for its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(0);
        self.to
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("sending {method} to Chromium: {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.from.recv_timeout(left) {
                Ok(v) if v["id"] == json!(id) => {
                    assert!(v.get("error").is_none(), "{method} failed: {}", v["error"]);
                    return v["result"].clone();
                }
                Ok(v) => {
                    if v.get("method").is_some() {
                        self.events.push(v);
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("Chromium did not answer {method}"),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "Chromium went away during {method}:\n{}",
                    self.process.output()
                ),
            }
        }
    }

    /// Evaluates `expression` in the page; its value (promises are awaited).
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(
            r.get("exceptionDetails").is_none(),
            "evaluating {expression}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Waits (up to `within`) until `expression` is true in the page; panics with `what`
    /// and the last value of `show` otherwise. While the page is still loading the
    /// expression may throw (no body yet): that counts as not yet.
    pub fn wait_until(&mut self, expression: &str, within: Duration, what: &str, show: &str) {
        let deadline = Instant::now() + within;
        let guarded = format!("(() => {{ try {{ return ({expression}) === true; }} catch (e) {{ return false; }} }})()");
        while self.eval(&guarded) != json!(true) {
            if Instant::now() >= deadline {
                let seen = self.eval(show);
                panic!("{what} (within {within:?}); the page shows: {seen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the browser complained about: exceptions, console calls (the page makes none)
    /// and error log entries (failed loads, security-policy violations).
    pub fn complaints(&mut self) -> Vec<String> {
        // A round trip, so that events sent before now have arrived.
        self.eval("1");
        let mut found = Vec::new();
        for e in &self.events {
            let p = &e["params"];
            match e["method"].as_str() {
                Some("Runtime.exceptionThrown") => {
                    found.push(format!("exception: {}", p["exceptionDetails"]));
                }
                Some("Runtime.consoleAPICalled") => {
                    found.push(format!("console.{}: {}", p["type"], p["args"]));
                }
                Some("Log.entryAdded") if p["entry"]["level"] == "error" => {
                    found.push(format!("log: {}", p["entry"]));
                }
                _ => {}
            }
        }
        let stderr = self.process.output();
        found.extend(
            stderr
                .lines()
                .filter(|l| l.contains(":CONSOLE"))
                .map(|l| format!("stderr: {l}")),
        );
        found
    }

    /// A PNG of the page as it looks now.
    pub fn screenshot(&mut self) -> Vec<u8> {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        base64_decode(r["data"].as_str().expect("screenshot data"))
    }

    pub fn close(mut self) {
        // Best effort: the process is stopped when it drops anyway.
        self.next_id += 1;
        let msg = json!({ "id": self.next_id, "method": "Browser.close" }).to_string();
        let _ = self.to.write_all(format!("{msg}\0").as_bytes());
        let _ = self.process.stop();
    }
}

/// Decodes base64 (the DevTools protocol's encoding of screenshots).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
    {
        acc = (acc << 6) | value(c);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
