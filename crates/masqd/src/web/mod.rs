//! `masqd --web ADDR [--web-admin]`: the live lab page.
//!
//! One self-contained page (HTML, CSS and JavaScript in `page.html`, compiled into the
//! binary: no CDN, nothing fetched from elsewhere) and three endpoints it uses:
//!
//! | request | what |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /api/state` | services, real servers, connections, counters, the director's sides (JSON) |
//! | `GET /api/events` | the trace as Server-Sent Events, one JSON object per event |
//! | `POST /api/command` | with `--web-admin` only: an ipvsadm `-E` or `-e` argument vector |
//!
//! The page is read-only unless masqd runs with `--web-admin`; even then only `-E`
//! (scheduler) and `-e` (weight) are accepted, checked with the same grammar masqadm uses,
//! and only from a same-origin JSON request (a cross-site form or a DNS-rebound name cannot
//! send one). It only reads snapshots of the director; the packet path does not know it is
//! there, except that trace events are produced while a page watches.

mod events;
mod http;
mod state;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use anyhow::{Context, Result};
use masq_ctl::grammar::Command;
use masq_ctl::request::Request;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::context::ControlContext;
use http::{Head, Response};

/// The page, with its styles and script inline.
const PAGE: &str = include_str!("page.html");

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
/// Longest argument vector accepted from the admin form, and longest argument.
const MAX_ARGS: usize = 32;
const MAX_ARG_LEN: usize = 256;
/// `argv[0]` in the messages of commands sent from the page.
const PROGRAM: &str = "masqadm";

/// The page may load nothing from elsewhere; its own inline script and styles, requests to
/// masqd itself and an empty `data:` favicon are all it needs.
const CSP: &str = "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; \
style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// Binds the page's listener.
///
/// # Errors
/// When the address cannot be bound.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the lab page {addr}"))
}

/// Serves the page on `listener` until the task is cancelled.
pub async fn serve(listener: TcpListener, ctx: Arc<ControlContext>, admin: bool) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let streams = Arc::new(AtomicUsize::new(0));
    loop {
        // Waiting for a slot before accepting keeps a flood of connections in the kernel's
        // backlog instead of in tasks.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("lab page: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        let streams = streams.clone();
        tokio::spawn(async move {
            let _permit = permit;
            handle(stream, peer, ctx, admin, &streams).await;
        });
    }
}

async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<ControlContext>,
    admin: bool,
    streams: &Arc<AtomicUsize>,
) {
    let (head, body) = match http::read_request(&mut stream).await {
        Ok(request) => request,
        Err(e) => {
            if let Some(status) = e.status() {
                let _ = Response::error(status, "bad request")
                    .send(&mut stream)
                    .await;
                http::drain(&mut stream).await;
            }
            tracing::debug!("lab page: unreadable request from {peer}: {e:?}");
            return;
        }
    };
    let response = match (head.method.as_str(), head.path.as_str()) {
        ("GET", "/" | "/index.html") => {
            Response::new("200 OK", "text/html; charset=utf-8", PAGE).with_header(CSP)
        }
        ("GET", "/api/state") => {
            // Listing a large connection table takes a while: keep it off the runtime's
            // only thread, where the timers and the control socket run.
            let ctx = ctx.clone();
            match tokio::task::spawn_blocking(move || state::snapshot(&ctx, admin)).await {
                Ok(state) => Response::json("200 OK", &state),
                Err(_) => Response::error("500 Internal Server Error", "reading the state failed"),
            }
        }
        ("GET", "/api/events") => {
            let slot = events::StreamSlot::take(streams);
            return events::serve(stream, ctx.director.clone(), slot).await;
        }
        ("POST", "/api/command") => command(&ctx, admin, &head, body).await,
        (_, "/" | "/index.html" | "/api/state" | "/api/events") => {
            Response::error("405 Method Not Allowed", "use GET").with_header("Allow: GET")
        }
        (_, "/api/command") => {
            Response::error("405 Method Not Allowed", "use POST").with_header("Allow: POST")
        }
        _ => Response::error("404 Not Found", "no such page; try /"),
    };
    if let Err(e) = response.send(&mut stream).await {
        tracing::debug!("lab page: reply to {peer}: {e}");
    }
}

/// Whether a state-changing request comes from the page itself: a JSON body (a cross-site
/// form cannot send one without a CORS preflight, which is never granted), a `Host` that
/// is an address or `localhost` (a DNS-rebound name is neither), and an `Origin`, when the
/// browser sends one, naming that same host.
fn same_origin(head: &Head) -> bool {
    let json = head
        .content_type
        .as_deref()
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    let Some(host) = head.host.as_deref() else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let literal = name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok();
    let origin_ok = head
        .origin
        .as_deref()
        .is_none_or(|o| o == format!("http://{host}"));
    json && literal && origin_ok
}

/// Whether `args` may be run from the page: `-E` or `-e` only, as the grammar reads it.
/// An edit whose options are wrong is let through so that the user sees ipvsadm's own
/// message for it; the grammar decides the command from the first option, so such an
/// argument vector can never run anything but a failed edit.
fn allowed(args: &[String]) -> bool {
    let first_is_edit = args
        .first()
        .is_some_and(|a| matches!(a.as_str(), "-E" | "--edit-service" | "-e" | "--edit-server"));
    first_is_edit
        && match masq_ctl::grammar::parse(PROGRAM, args, &masq_ctl::NumericOnly) {
            Ok(cmd) => matches!(cmd, Command::EditService { .. } | Command::EditDest { .. }),
            Err(_) => true,
        }
}

async fn command(ctx: &Arc<ControlContext>, admin: bool, head: &Head, body: Vec<u8>) -> Response {
    if !admin {
        return Response::error(
            "403 Forbidden",
            "the page is read-only: start masqd with --web-admin to change schedulers and weights",
        );
    }
    if !same_origin(head) {
        return Response::error(
            "403 Forbidden",
            "commands are accepted only from the page itself, opened by address or localhost (not by a host name)",
        );
    }
    let args: Vec<String> = match serde_json::from_slice(&body) {
        Ok(args) => args,
        Err(_) => {
            return Response::error(
                "400 Bad Request",
                "the body must be a JSON array of strings",
            )
        }
    };
    if args.len() > MAX_ARGS || args.iter().any(|a| a.len() > MAX_ARG_LEN) {
        return Response::error("400 Bad Request", "too many or too long arguments");
    }
    if !allowed(&args) {
        return Response::error(
            "403 Forbidden",
            "only -E (scheduler) and -e (weight) may be run from the page",
        );
    }
    tracing::info!(?args, "lab page command");
    let request = Request {
        program: PROGRAM.to_owned(),
        args,
        stdin: None,
    };
    let ctx = ctx.clone();
    // execute() may run nft to follow the services; keep that off the runtime's thread.
    match tokio::task::spawn_blocking(move || ctx.execute(&request)).await {
        Ok(outcome) => match serde_json::to_value(&outcome) {
            Ok(v) => Response::json("200 OK", &v),
            Err(_) => Response::error("500 Internal Server Error", "encoding the outcome"),
        },
        Err(_) => Response::error("500 Internal Server Error", "the command failed to run"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn head(host: Option<&str>, origin: Option<&str>, ctype: Option<&str>) -> Head {
        Head {
            method: "POST".into(),
            path: "/api/command".into(),
            host: host.map(String::from),
            origin: origin.map(String::from),
            content_type: ctype.map(String::from),
            ..Head::default()
        }
    }

    #[test]
    fn only_edits_of_schedulers_and_weights_are_allowed() {
        assert!(allowed(&args("-E -t 192.168.0.10:80 -s wrr")));
        assert!(allowed(&args(
            "-e -t 192.168.0.10:80 -r 192.168.100.7 -m -w 3"
        )));
        assert!(allowed(&args(
            "--edit-server -t 192.168.0.10:80 -r 192.168.100.7 -m -w 3"
        )));
        // A wrong edit goes through to get ipvsadm's message; it cannot change anything.
        assert!(allowed(&args("-E -t 192.168.0.10:80 -s")));
        for bad in [
            "",
            "-C",
            "-A -t 192.168.0.10:80 -s rr",
            "-D -t 192.168.0.10:80",
            "-d -t 192.168.0.10:80 -r 192.168.100.7",
            "-R",
            "--set 1 1 1",
            "-t 192.168.0.10:80 -E -s rr",
            "--trace",
            "-L -n",
        ] {
            assert!(!allowed(&args(bad)), "{bad}");
        }
    }

    #[test]
    fn commands_must_come_from_the_page_itself() {
        let json = Some("application/json");
        assert!(same_origin(&head(Some("127.0.0.1:8080"), None, json)));
        assert!(same_origin(&head(
            Some("127.0.0.1:8080"),
            Some("http://127.0.0.1:8080"),
            Some("application/json; charset=utf-8")
        )));
        assert!(same_origin(&head(Some("[::1]:8080"), None, json)));
        assert!(same_origin(&head(Some("localhost:8080"), None, json)));
        // A cross-site form: text/plain, another origin.
        assert!(!same_origin(&head(
            Some("127.0.0.1:8080"),
            Some("http://evil.example"),
            json
        )));
        assert!(!same_origin(&head(
            Some("127.0.0.1:8080"),
            None,
            Some("text/plain")
        )));
        // DNS rebinding: the browser thinks it talks to evil.example.
        assert!(!same_origin(&head(
            Some("evil.example:8080"),
            Some("http://evil.example:8080"),
            json
        )));
        assert!(!same_origin(&head(None, None, json)));
    }

    #[test]
    fn the_page_is_self_contained() {
        // No asset from elsewhere (the SVG namespace is a name, not a download).
        let page = PAGE.replace("http://www.w3.org/2000/svg", "");
        for marker in ["http://", "https://", "//cdn", " src=", "@import", "url("] {
            assert!(!page.contains(marker), "the page refers to {marker}");
        }
        // Data goes into the DOM as text only.
        assert!(!PAGE.contains("innerHTML"), "the page uses innerHTML");
        assert!(!PAGE.contains("outerHTML"), "the page uses outerHTML");
        assert!(!PAGE.contains("insertAdjacentHTML"));
        assert!(!PAGE.contains("document.write"));
    }
}
