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
//! Served by `http_server` (its limits, and the `Host` rule that keeps a DNS-rebinding
//! page from reading any of it). The page is read-only unless masqd runs with
//! `--web-admin`; even then a change needs the per-start admin token (`token`) in an
//! `X-Masq-Token` header, only `-E` (scheduler) and `-e` (weight) are accepted, checked
//! with the same grammar masqadm uses, and only in a same-origin JSON request (a
//! cross-site form cannot send one). It only reads snapshots of the director; the packet
//! path does not know it is there, except that trace events are produced while a page
//! watches.

mod events;
mod state;
mod token;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use anyhow::Result;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use masq_ctl::grammar::Command;
use masq_ctl::request::Request as CtlRequest;

use crate::context::ControlContext;
use crate::http_server::{full, Body, Counters, HostName, Limits, Server};
use token::{AdminToken, TokenFile};

/// The page, with its styles and script inline.
const PAGE: &str = include_str!("page.html");

/// The header a change carries the admin token in.
const TOKEN_HEADER: &str = "x-masq-token";
/// Longest argument vector accepted from the admin form, and longest argument.
const MAX_ARGS: usize = 32;
const MAX_ARG_LEN: usize = 256;
/// `argv[0]` in the messages of commands sent from the page.
const PROGRAM: &str = "masqadm";

/// The page may load nothing from elsewhere; its own inline script and styles, requests to
/// masqd itself and an empty `data:` favicon are all it needs.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// The lab page's endpoint, bound and ready to serve.
pub struct Page {
    server: Server,
    admin: Option<(AdminToken, TokenFile)>,
}

impl Page {
    /// Binds the page's listener on `addr`, answering to the `Host` names `allowed` adds;
    /// with `admin_socket` (`--web-admin`), writes the admin token beside that control
    /// socket.
    ///
    /// # Errors
    /// When the address cannot be bound or the token cannot be written.
    pub async fn bind(
        addr: SocketAddr,
        allowed: &[HostName],
        admin_socket: Option<&Path>,
    ) -> Result<Page> {
        let server = Server::bind(addr, "web", "lab page", Limits::DEFAULT, allowed).await?;
        let admin = admin_socket.map(AdminToken::create).transpose()?;
        match &admin {
            Some((token, _)) => tracing::info!(
                "lab page at http://{addr}/ (admin: changes need the token in {})",
                token.file().display()
            ),
            None => tracing::info!("lab page at http://{addr}/ (read-only)"),
        }
        Ok(Page { server, admin })
    }

    /// The endpoint's counters, for `/metrics`.
    pub fn counters(&self) -> Arc<Counters> {
        self.server.counters()
    }

    /// Serves the page until the task is cancelled; the token file goes with it.
    pub async fn serve(self, ctx: Arc<ControlContext>) {
        let (token, _file) = self.admin.unzip();
        let site = Arc::new(Site {
            counters: self.server.counters(),
            ctx,
            token,
            streams: Arc::new(AtomicUsize::new(0)),
        });
        self.server
            .serve(move |request| site.clone().respond(request))
            .await;
    }
}

/// What every request to the page needs.
struct Site {
    ctx: Arc<ControlContext>,
    /// With `--web-admin`.
    token: Option<AdminToken>,
    /// Open trace streams.
    streams: Arc<AtomicUsize>,
    counters: Arc<Counters>,
}

impl Site {
    async fn respond(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/" | "/index.html") => {
                let mut page = full(StatusCode::OK, "text/html; charset=utf-8", PAGE);
                page.headers_mut().insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CSP),
                );
                page
            }
            (&Method::GET, "/api/state") => {
                // Listing a large connection table takes a while: keep it off the
                // runtime's only thread, where the timers and the control socket run.
                let ctx = self.ctx.clone();
                let token_file = self.token.as_ref().map(|t| t.file().to_path_buf());
                match tokio::task::spawn_blocking(move || state::snapshot(&ctx, token_file)).await {
                    Ok(state) => json(StatusCode::OK, &state),
                    Err(_) => error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "reading the state failed",
                    ),
                }
            }
            (&Method::GET, "/api/events") => events::respond(&self.ctx.director, &self.streams),
            (&Method::POST, "/api/command") => self.command(request).await,
            (_, "/" | "/index.html" | "/api/state" | "/api/events") => {
                not_allowed("use GET", "GET")
            }
            (_, "/api/command") => not_allowed("use POST", "POST"),
            _ => error(StatusCode::NOT_FOUND, "no such page; try /"),
        }
    }

    async fn command(&self, request: Request<Incoming>) -> Response<Body> {
        let Some(token) = &self.token else {
            return error(
                StatusCode::FORBIDDEN,
                "the page is read-only: start masqd with --web-admin to change schedulers and weights",
            );
        };
        let offered = request
            .headers()
            .get(TOKEN_HEADER)
            .map(HeaderValue::as_bytes);
        if !token.accepts(offered) {
            self.counters.bad_token.fetch_add(1, Relaxed);
            let what = if offered.is_some() {
                "wrong"
            } else {
                "missing"
            };
            let message = format!(
                "{what} admin token: a change needs the contents of {} in an X-Masq-Token header",
                token.file().display()
            );
            return json(
                StatusCode::FORBIDDEN,
                &serde_json::json!({ "error": message, "token": what }),
            );
        }
        if !same_origin(request.headers()) {
            return error(
                StatusCode::FORBIDDEN,
                "commands are accepted only from the page itself: a JSON request from its own origin",
            );
        }
        let body = match read_body(request).await {
            Ok(body) => body,
            Err(refused) => return refused,
        };
        let Ok(args) = serde_json::from_slice::<Vec<String>>(&body) else {
            return error(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON array of strings",
            );
        };
        if args.len() > MAX_ARGS || args.iter().any(|a| a.len() > MAX_ARG_LEN) {
            return error(StatusCode::BAD_REQUEST, "too many or too long arguments");
        }
        if !allowed(&args) {
            return error(
                StatusCode::FORBIDDEN,
                "only -E (scheduler) and -e (weight) may be run from the page",
            );
        }
        tracing::info!(?args, "lab page command");
        let request = CtlRequest {
            program: PROGRAM.to_owned(),
            args,
            stdin: None,
        };
        let ctx = self.ctx.clone();
        // execute() may run nft to follow the services; keep that off the runtime's thread.
        match tokio::task::spawn_blocking(move || ctx.execute(&request)).await {
            Ok(outcome) => match serde_json::to_value(&outcome) {
                Ok(v) => json(StatusCode::OK, &v),
                Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "encoding the outcome"),
            },
            Err(_) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the command failed to run",
            ),
        }
    }
}

/// A command's body; the server has checked that its length is announced and small.
async fn read_body(request: Request<Incoming>) -> Result<hyper::body::Bytes, Response<Body>> {
    use http_body_util::BodyExt;
    match request.into_body().collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(_) => Err(error(StatusCode::BAD_REQUEST, "the body did not arrive")),
    }
}

/// Whether a state-changing request comes from the page itself: a JSON body (a cross-site
/// form cannot send one without a CORS preflight, which is never granted) and an
/// `Origin`, when the browser sends one, naming the host the request was sent to (which
/// the server has already checked is this one).
fn same_origin(headers: &HeaderMap) -> bool {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_ok = match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => host.is_some_and(|h| origin.as_bytes() == format!("http://{h}").as_bytes()),
    };
    json && origin_ok
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    full(status, "application/json", value.to_string())
}

/// A JSON `{"error": message}` response.
fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message }))
}

fn not_allowed(message: &str, allow: &'static str) -> Response<Body> {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, message);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn headers(host: Option<&str>, origin: Option<&str>, ctype: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in [
            (header::HOST, host),
            (header::ORIGIN, origin),
            (header::CONTENT_TYPE, ctype),
        ] {
            if let Some(v) = value {
                h.insert(name, HeaderValue::from_str(v).unwrap());
            }
        }
        h
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
        assert!(same_origin(&headers(Some("127.0.0.1:8080"), None, json)));
        assert!(same_origin(&headers(
            Some("127.0.0.1:8080"),
            Some("http://127.0.0.1:8080"),
            Some("application/json; charset=utf-8")
        )));
        assert!(same_origin(&headers(Some("[::1]:8080"), None, json)));
        assert!(same_origin(&headers(Some("localhost:8080"), None, json)));
        // A cross-site form: text/plain, another origin.
        assert!(!same_origin(&headers(
            Some("127.0.0.1:8080"),
            Some("http://evil.example"),
            json
        )));
        assert!(!same_origin(&headers(
            Some("127.0.0.1:8080"),
            None,
            Some("text/plain")
        )));
        assert!(!same_origin(&headers(Some("127.0.0.1:8080"), None, None)));
        assert!(!same_origin(&headers(
            None,
            Some("http://127.0.0.1:8080"),
            json
        )));
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
