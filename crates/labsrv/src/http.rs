//! A tiny HTTP/1.1 server for the lab's real servers.
//!
//! Every request is answered `200 OK` with `<name> <local address>\n`, so a client behind
//! the director sees which real server answered and which address the director rewrote
//! the destination to. `GET /bytes/N` answers N bytes instead, streamed, for bulk tests.
//! Each accepted connection is logged once, with the client address the server sees.
//!
//! Framing follows RFC 9112 as far as a test server needs: persistent connections by
//! default in HTTP/1.1 and on request in HTTP/1.0, `Connection: close`, request bodies
//! delimited by `Content-Length` are read and discarded; a chunked request body is not
//! decoded, so that connection is closed after the answer.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest body `GET /bytes/N` serves.
pub const MAX_BYTES: u64 = 1 << 30;
/// An idle persistent connection is closed after this long, so threads do not pile up.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause after a failed `accept` (e.g. out of file descriptors), so the loop cannot spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Chunk size for streamed bodies and for reading.
const CHUNK: usize = 64 * 1024;

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    /// No body.
    None,
    /// `Content-Length` bytes follow the head.
    Length(u64),
    /// `Transfer-Encoding` is present: the body runs to a framing this server does not
    /// decode, so the connection cannot be reused.
    Unframed,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, as sent (methods are case-sensitive).
    pub method: String,
    /// The request target, as sent.
    pub target: String,
    /// The minor version of HTTP/1.x.
    pub minor_version: u8,
    /// Whether the client wants the connection kept open after the answer.
    pub keep_alive: bool,
    /// How the request body is delimited.
    pub body: RequestBody,
}

/// Why a request head was rejected (answered `400 Bad Request`, then closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// No end of head within [`MAX_HEAD`] bytes.
    HeadTooLarge,
    /// The request line is not `METHOD SP TARGET SP HTTP/1.x`.
    BadRequestLine,
    /// The version is not HTTP/1.0 or HTTP/1.1.
    BadVersion,
    /// A header line without a colon, or with a malformed name.
    BadHeader,
    /// A `Content-Length` that is not a number, or two that disagree.
    BadContentLength,
}

/// What to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The server's name and the local address.
    Name,
    /// N bytes of filler.
    Bytes(u64),
}

/// Where the head in `buf` ends (the index after its blank line), if it is complete.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(nl) = buf[i..].iter().position(|&b| b == b'\n') {
        let after = i + nl + 1;
        match buf.get(after..) {
            Some([b'\n', ..]) => return Some(after + 1),
            Some([b'\r', b'\n', ..]) => return Some(after + 2),
            _ => i = after,
        }
    }
    None
}

/// Parses one request head from the start of `buf`.
///
/// Returns the request and the number of bytes its head took, or `Ok(None)` when `buf`
/// does not hold a complete head yet. Empty lines before the request line are skipped
/// (RFC 9112 §2.2); lines may end in CRLF or a bare LF.
///
/// # Errors
///
/// A [`ParseError`] when the head is malformed or longer than [`MAX_HEAD`].
pub fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize)>, ParseError> {
    let skip = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let Some(end) = head_end(&buf[skip..]) else {
        return if buf.len() - skip > MAX_HEAD {
            Err(ParseError::HeadTooLarge)
        } else {
            Ok(None)
        };
    };
    if end > MAX_HEAD {
        return Err(ParseError::HeadTooLarge);
    }
    let head = &buf[skip..skip + end];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty());

    let request_line = lines.next().ok_or(ParseError::BadRequestLine)?;
    let request_line = std::str::from_utf8(request_line).map_err(|_| ParseError::BadRequestLine)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::BadRequestLine);
    };
    if method.is_empty() || target.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(ParseError::BadRequestLine);
    }
    let minor_version = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        _ => return Err(ParseError::BadVersion),
    };

    let mut close = false;
    let mut keep_alive_token = false;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    for line in lines {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(ParseError::BadHeader)?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().copied().all(is_token_byte) {
            return Err(ParseError::BadHeader);
        }
        let value = String::from_utf8_lossy(value);
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(',').map(str::trim) {
                close |= token.eq_ignore_ascii_case("close");
                keep_alive_token |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_decimal(value).ok_or(ParseError::BadContentLength)?;
            if content_length.is_some_and(|m| m != n) {
                return Err(ParseError::BadContentLength);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
        }
    }

    let body = if transfer_encoding {
        RequestBody::Unframed
    } else {
        match content_length {
            None | Some(0) => RequestBody::None,
            Some(n) => RequestBody::Length(n),
        }
    };
    let keep_alive =
        !close && (minor_version == 1 || keep_alive_token) && body != RequestBody::Unframed;
    let request = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        minor_version,
        keep_alive,
        body,
    };
    Ok(Some((request, skip + end)))
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A non-empty run of ASCII digits, without sign or overflow.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Picks the answer for a request target.
///
/// `/bytes/N` (N up to [`MAX_BYTES`]) asks for N bytes; everything else gets the name.
/// A query string is ignored, and an absolute-form target (`http://host/path`) is reduced
/// to its path.
///
/// # Errors
///
/// A message for the `400` answer when N is not a number or is too large.
pub fn route(target: &str) -> Result<Route, String> {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let path = match path.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => path,
    };
    let Some(n) = path.strip_prefix("/bytes/") else {
        return Ok(Route::Name);
    };
    match parse_decimal(n) {
        Some(n) if n <= MAX_BYTES => Ok(Route::Bytes(n)),
        Some(_) => Err(format!("at most {MAX_BYTES} bytes\n")),
        None => Err("expected /bytes/N with N a number of bytes\n".to_owned()),
    }
}

/// Writes a response head.
fn write_head(
    out: &mut impl Write,
    status: &str,
    content_length: u64,
    req: Option<&Request>,
    keep_alive: bool,
) -> io::Result<()> {
    let connection = match (keep_alive, req.map(|r| r.minor_version)) {
        (false, _) => "Connection: close\r\n",
        (true, Some(0)) => "Connection: keep-alive\r\n",
        (true, _) => "",
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nServer: masq-labsrv\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {content_length}\r\n{connection}\r\n"
    );
    out.write_all(head.as_bytes())
}

/// Writes a complete response with a small body.
fn write_small(
    out: &mut impl Write,
    status: &str,
    body: &str,
    req: Option<&Request>,
    keep_alive: bool,
) -> io::Result<()> {
    let with_body = req.is_none_or(|r| r.method != "HEAD");
    let mut bytes = Vec::with_capacity(200 + body.len());
    write_head(&mut bytes, status, body.len() as u64, req, keep_alive)?;
    if with_body {
        bytes.extend_from_slice(body.as_bytes());
    }
    out.write_all(&bytes)
}

/// Streams `n` bytes of filler: repeated lines of printable text, so a student can look
/// at them.
fn write_filler(out: &mut impl Write, mut n: u64) -> io::Result<()> {
    const LINE: &[u8] = b"masq-labsrv filler: 0123456789abcdefghijklmnopqrstuvwxyzABCDEF\n";
    let chunk: Vec<u8> = LINE.iter().copied().cycle().take(CHUNK).collect();
    while n > 0 {
        let len = n.min(CHUNK as u64) as usize;
        out.write_all(&chunk[..len])?;
        n -= len as u64;
    }
    Ok(())
}

/// Reads and discards `n` bytes, first from `buf` (bytes already read), then from `input`.
fn discard_body(input: &mut impl Read, buf: &mut Vec<u8>, n: u64) -> io::Result<()> {
    let from_buf = n.min(buf.len() as u64) as usize;
    buf.drain(..from_buf);
    let rest = n - from_buf as u64;
    let copied = io::copy(&mut input.take(rest), &mut io::sink())?;
    if copied < rest {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Serves the requests of one connection until the client closes it, asks to, or sends
/// something unparsable. `answer` is the body of the name answer.
///
/// # Errors
///
/// The I/O error that ended the connection early (a client going away mid-answer is one).
pub fn serve_connection<S: Read + Write>(stream: &mut S, answer: &str) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let (req, used) = match parse_head(&buf) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
                continue;
            }
            Err(e) => {
                let body = format!("bad request: {e:?}\n");
                return write_small(stream, "400 Bad Request", &body, None, false);
            }
        };
        buf.drain(..used);
        if let RequestBody::Length(n) = req.body {
            discard_body(stream, &mut buf, n)?;
        }
        let keep_alive = req.keep_alive;
        match route(&req.target) {
            Ok(Route::Name) => write_small(stream, "200 OK", answer, Some(&req), keep_alive)?,
            Ok(Route::Bytes(n)) => {
                write_head(stream, "200 OK", n, Some(&req), keep_alive)?;
                if req.method != "HEAD" {
                    write_filler(stream, n)?;
                }
            }
            Err(msg) => write_small(stream, "400 Bad Request", &msg, Some(&req), keep_alive)?,
        }
        stream.flush()?;
        if !keep_alive {
            return Ok(());
        }
    }
}

/// The per-connection log: stdout, and a file if one was given.
struct ConnLog {
    file: Option<Mutex<File>>,
}

impl ConnLog {
    fn open(path: Option<&Path>) -> Result<ConnLog> {
        let file = match path {
            Some(path) => Some(Mutex::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening the log file {}", path.display()))?,
            )),
            None => None,
        };
        Ok(ConnLog { file })
    }

    /// Logs `<unix-time-ms> client=<ip>:<port> local=<ip>:<port>`.
    fn record(&self, client: SocketAddr, local: SocketAddr) {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let line = format!("{ms} client={client} local={local}\n");
        if let Some(file) = &self.file {
            // One write of the whole line: O_APPEND keeps lines whole across threads too.
            let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Err(e) = file.write_all(line.as_bytes()) {
                eprintln!("masq-labsrv: writing the log file: {e}");
            }
        }
        // Whoever reads stdout may be gone; the file is what matters then.
        let _ = io::stdout().lock().write_all(line.as_bytes());
    }
}

/// Runs the HTTP server until the process is killed.
///
/// # Errors
///
/// When the log file cannot be opened or the listening socket cannot be bound.
pub fn serve(name: &str, listen: SocketAddr, log: Option<&Path>) -> Result<()> {
    let log = Arc::new(ConnLog::open(log)?);
    let listener = TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
    eprintln!("masq-labsrv: {name} serving HTTP on {listen}");
    let name: Arc<str> = Arc::from(name);
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let (name, log) = (Arc::clone(&name), Arc::clone(&log));
                let spawned = std::thread::Builder::new()
                    .name("conn".to_owned())
                    .spawn(move || handle(stream, &name, &log));
                if let Err(e) = spawned {
                    eprintln!("masq-labsrv: cannot start a connection thread: {e}");
                    std::thread::sleep(ACCEPT_BACKOFF);
                }
            }
            Err(e) => {
                eprintln!("masq-labsrv: accept: {e}");
                std::thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
    Ok(())
}

/// One connection: log it, then serve it.
fn handle(mut stream: TcpStream, name: &str, log: &ConnLog) {
    let (Ok(client), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    log.record(client, local);
    let answer = format!("{name} {}\n", local.ip());
    let setup = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(IDLE_TIMEOUT)));
    if let Err(e) = setup.and_then(|()| serve_connection(&mut stream, &answer)) {
        match e.kind() {
            io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => {}
            _ => eprintln!("masq-labsrv: connection from {client}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Request {
        let (req, used) = parse_head(text.as_bytes()).unwrap().unwrap();
        assert_eq!(used, text.len(), "the whole head is consumed");
        req
    }

    #[test]
    fn http11_get_keeps_alive_by_default() {
        let req = parse("GET / HTTP/1.1\r\nHost: 192.168.0.10\r\nUser-Agent: curl/8\r\n\r\n");
        assert_eq!(
            req,
            Request {
                method: "GET".into(),
                target: "/".into(),
                minor_version: 1,
                keep_alive: true,
                body: RequestBody::None,
            }
        );
    }

    #[test]
    fn connection_close_ends_the_connection() {
        assert!(!parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!parse("GET / HTTP/1.1\r\nconnection:Upgrade, CLOSE\r\n\r\n").keep_alive);
    }

    #[test]
    fn http10_closes_unless_asked_to_keep_alive() {
        assert!(!parse("GET / HTTP/1.0\r\n\r\n").keep_alive);
        let req = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(req.keep_alive);
        assert_eq!(req.minor_version, 0);
    }

    #[test]
    fn incomplete_head_asks_for_more() {
        assert_eq!(parse_head(b""), Ok(None));
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r"), Ok(None));
    }

    #[test]
    fn pipelined_requests_parse_one_at_a_time() {
        let two = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\n";
        let (first, used) = parse_head(two).unwrap().unwrap();
        assert_eq!(first.target, "/a");
        assert_eq!(used, 19);
        let (second, used2) = parse_head(&two[used..]).unwrap().unwrap();
        assert_eq!(second.target, "/b");
        assert!(!second.keep_alive);
        assert_eq!(used + used2, two.len());
    }

    #[test]
    fn bare_lf_and_leading_empty_lines_are_tolerated() {
        let text = "\r\n\nPOST /x HTTP/1.1\nContent-Length: 5\n\n";
        let (req, used) = parse_head(text.as_bytes()).unwrap().unwrap();
        assert_eq!(used, text.len());
        assert_eq!(req.method, "POST");
        assert_eq!(req.body, RequestBody::Length(5));
    }

    #[test]
    fn content_length_is_checked() {
        let req = parse("POST / HTTP/1.1\r\ncontent-length:  12 \r\n\r\n");
        assert_eq!(req.body, RequestBody::Length(12));
        assert_eq!(
            parse("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").body,
            RequestBody::None
        );
        for bad in [
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        ] {
            assert_eq!(
                parse_head(bad.as_bytes()),
                Err(ParseError::BadContentLength),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn transfer_encoding_body_closes_the_connection() {
        let req = parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(req.body, RequestBody::Unframed);
        assert!(!req.keep_alive);
    }

    #[test]
    fn malformed_heads_are_rejected() {
        let cases: [(&str, ParseError); 7] = [
            ("GET /\r\n\r\n", ParseError::BadRequestLine),
            ("GET  / HTTP/1.1\r\n\r\n", ParseError::BadRequestLine),
            ("GET / HTTP/1.1 x\r\n\r\n", ParseError::BadRequestLine),
            ("G(T / HTTP/1.1\r\n\r\n", ParseError::BadRequestLine),
            ("GET / HTTP/2.0\r\n\r\n", ParseError::BadVersion),
            (
                "GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
                ParseError::BadHeader,
            ),
            (
                "GET / HTTP/1.1\r\nBad name: x\r\n\r\n",
                ParseError::BadHeader,
            ),
        ];
        for (text, err) in cases {
            assert_eq!(parse_head(text.as_bytes()), Err(err), "{text:?}");
        }
    }

    #[test]
    fn oversized_head_is_rejected() {
        let mut text = b"GET / HTTP/1.1\r\n".to_vec();
        while text.len() <= MAX_HEAD {
            text.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
        }
        assert_eq!(parse_head(&text), Err(ParseError::HeadTooLarge));
        text.extend_from_slice(b"\r\n");
        assert_eq!(parse_head(&text), Err(ParseError::HeadTooLarge));
    }

    #[test]
    fn routes() {
        assert_eq!(route("/"), Ok(Route::Name));
        assert_eq!(route("/index.html?x=1"), Ok(Route::Name));
        assert_eq!(route("/bytes"), Ok(Route::Name));
        assert_eq!(route("/bytes/0"), Ok(Route::Bytes(0)));
        assert_eq!(route("/bytes/1048576?nocache"), Ok(Route::Bytes(1 << 20)));
        assert_eq!(route("/bytes/1073741824"), Ok(Route::Bytes(MAX_BYTES)));
        assert_eq!(route("http://192.168.0.10/bytes/7"), Ok(Route::Bytes(7)));
        assert!(route("/bytes/1073741825").is_err());
        assert!(route("/bytes/").is_err());
        assert!(route("/bytes/ten").is_err());
    }

    /// A connection in memory: reads from `input`, writes to `output`.
    struct Duplex {
        input: io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Duplex {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            // Dribble the request in a few bytes at a time, as a slow client would.
            let n = buf.len().min(7);
            self.input.read(&mut buf[..n])
        }
    }

    impl Write for Duplex {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn converse(requests: &str) -> String {
        let mut conn = Duplex {
            input: io::Cursor::new(requests.as_bytes().to_vec()),
            output: Vec::new(),
        };
        serve_connection(&mut conn, "RS1 192.168.100.7\n").unwrap();
        String::from_utf8(conn.output).unwrap()
    }

    const NAME_ANSWER: &str = "HTTP/1.1 200 OK\r\nServer: masq-labsrv\r\n\
        Content-Type: text/plain; charset=utf-8\r\nContent-Length: 18\r\n\r\nRS1 192.168.100.7\n";

    #[test]
    fn keep_alive_serves_every_pipelined_request_until_close() {
        let out = converse(
            "GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nbodyGET / HTTP/1.1\r\n\
             Connection: close\r\n\r\nGET /never HTTP/1.1\r\n\r\n",
        );
        let closing = NAME_ANSWER.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
        assert_eq!(out, format!("{NAME_ANSWER}{NAME_ANSWER}{closing}"));
    }

    #[test]
    fn client_eof_ends_the_connection_quietly() {
        assert_eq!(converse("GET / HTTP/1.1\r\n\r\n"), NAME_ANSWER);
        assert_eq!(converse(""), "");
    }

    #[test]
    fn bytes_route_streams_exactly_n_bytes() {
        let n = 3 * CHUNK + 5;
        let out = converse(&format!("GET /bytes/{n} HTTP/1.0\r\n\r\n"));
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("\r\nContent-Length: {n}\r\n")),
            "{head}"
        );
        assert!(head.ends_with("\r\nConnection: close"), "{head}");
        assert_eq!(body.len(), n);
        assert!(body.starts_with("masq-labsrv filler: "));
    }

    #[test]
    fn head_request_gets_no_body() {
        let out = converse("HEAD /bytes/1000 HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(out.ends_with("Content-Length: 1000\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn bad_request_gets_400_and_close() {
        let out = converse("BOGUS\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
        assert!(out.contains("\r\nConnection: close\r\n"));
        assert_eq!(out.matches("HTTP/1.1").count(), 1);
    }
}
