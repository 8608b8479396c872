//! Just enough HTTP/1.1 for the lab page: one request per connection, read with a size
//! bound and a deadline, answered with `Connection: close`.
//!
//! Nothing here trusts the peer: the head is at most [`MAX_HEAD`] bytes, a body at most
//! [`MAX_BODY`] (and only with a `Content-Length`; chunked uploads are refused), the whole
//! request must arrive within [`READ_TIMEOUT`], and any malformed input becomes an error
//! status, never a panic.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest request head (request line and headers) read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Largest request body read (an ipvsadm argument vector is far smaller).
pub const MAX_BODY: usize = 4 * 1024;
/// Longest a client may take to send its whole request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a reply may take to be written (a browser that stops reading is dropped).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The parts of a request head the page's server looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Head {
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    pub content_length: usize,
    pub content_type: Option<String>,
    pub host: Option<String>,
    pub origin: Option<String>,
}

/// Why a request could not be read; `status()` is what to answer, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// The peer closed, timed out or failed before a whole request came: answer nothing.
    Gone,
    /// The head is not HTTP/1.x.
    Malformed,
    /// The head or the body is larger than allowed.
    TooLarge,
    /// A request body without `Content-Length` (chunked), which this server does not take.
    LengthRequired,
}

impl ReadError {
    /// The reply status line, `None` when the peer is gone.
    pub fn status(self) -> Option<&'static str> {
        match self {
            ReadError::Gone => None,
            ReadError::Malformed => Some("400 Bad Request"),
            ReadError::TooLarge => Some("413 Content Too Large"),
            ReadError::LengthRequired => Some("411 Length Required"),
        }
    }
}

/// Parses a request head (everything before the blank line, without it).
///
/// # Errors
/// [`ReadError::Malformed`] for anything that is not an HTTP/1.x request head,
/// [`ReadError::LengthRequired`] for `Transfer-Encoding`, [`ReadError::TooLarge`] for a
/// `Content-Length` above [`MAX_BODY`].
pub fn parse_head(raw: &[u8]) -> Result<Head, ReadError> {
    let text = std::str::from_utf8(raw).map_err(|_| ReadError::Malformed)?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().ok_or(ReadError::Malformed)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Malformed);
    };
    if !version.starts_with("HTTP/1.")
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
    {
        return Err(ReadError::Malformed);
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    let mut head = Head {
        method: method.to_owned(),
        path: path.to_owned(),
        ..Head::default()
    };
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(ReadError::Malformed)?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let n: usize = value.parse().map_err(|_| ReadError::Malformed)?;
                if n > MAX_BODY {
                    return Err(ReadError::TooLarge);
                }
                head.content_length = n;
            }
            "transfer-encoding" => return Err(ReadError::LengthRequired),
            "content-type" => head.content_type = Some(value.to_owned()),
            "host" => head.host = Some(value.to_owned()),
            "origin" => head.origin = Some(value.to_owned()),
            _ => {}
        }
    }
    Ok(head)
}

/// Reads one request: its head and its body.
///
/// # Errors
/// See [`ReadError`].
pub async fn read_request(stream: &mut TcpStream) -> Result<(Head, Vec<u8>), ReadError> {
    match tokio::time::timeout(READ_TIMEOUT, read_request_untimed(stream)).await {
        Ok(r) => r,
        Err(_) => Err(ReadError::Gone),
    }
}

async fn read_request_untimed(stream: &mut TcpStream) -> Result<(Head, Vec<u8>), ReadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::TooLarge);
        }
        let n = stream.read(&mut chunk).await.map_err(|_| ReadError::Gone)?;
        if n == 0 {
            return Err(ReadError::Gone);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if head_end > MAX_HEAD {
        return Err(ReadError::TooLarge);
    }
    let head = parse_head(&buf[..head_end])?;
    let mut body = buf.split_off(head_end + 4);
    if body.len() > head.content_length {
        // Pipelined requests are not served: one request per connection.
        body.truncate(head.content_length);
    }
    while body.len() < head.content_length {
        let want = (head.content_length - body.len()).min(chunk.len());
        let n = stream
            .read(&mut chunk[..want])
            .await
            .map_err(|_| ReadError::Gone)?;
        if n == 0 {
            return Err(ReadError::Gone);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((head, body))
}

/// Reads and discards what the client is still sending (bounded in bytes and time) after
/// an error reply: closing a socket with unread data makes the kernel send a reset, which
/// can destroy the reply before the client has read it.
pub async fn drain(stream: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    let mut left = 64 * 1024usize;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Headers every reply carries: nothing is cached (the state changes every second), the
/// browser must not guess types, and no other site may frame the page (the admin form).
const COMMON_HEADERS: &str = "Cache-Control: no-store\r\n\
X-Content-Type-Options: nosniff\r\n\
X-Frame-Options: DENY\r\n\
Referrer-Policy: no-referrer\r\n\
Connection: close\r\n";

/// A whole reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: &'static str,
    pub content_type: &'static str,
    /// More header lines, each ending in `\r\n`.
    pub extra_headers: String,
    pub body: Vec<u8>,
}

impl Response {
    /// A reply with `body`.
    pub fn new(status: &'static str, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type,
            extra_headers: String::new(),
            body: body.into(),
        }
    }

    /// A JSON reply.
    pub fn json(status: &'static str, value: &serde_json::Value) -> Self {
        Response::new(status, "application/json", value.to_string())
    }

    /// A JSON `{"error": message}` reply.
    pub fn error(status: &'static str, message: &str) -> Self {
        Response::json(status, &serde_json::json!({ "error": message }))
    }

    /// Adds a header line (`name: value`, without the line end).
    pub fn with_header(mut self, line: &str) -> Self {
        self.extra_headers.push_str(line);
        self.extra_headers.push_str("\r\n");
        self
    }

    /// The status line and headers.
    pub fn head(&self) -> String {
        format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{COMMON_HEADERS}{}\r\n",
            self.status,
            self.content_type,
            self.body.len(),
            self.extra_headers
        )
    }

    /// Writes the reply and closes the write side.
    ///
    /// # Errors
    /// When the peer went away or did not read within [`WRITE_TIMEOUT`].
    pub async fn send(&self, stream: &mut TcpStream) -> std::io::Result<()> {
        let write = async {
            stream.write_all(self.head().as_bytes()).await?;
            stream.write_all(&self.body).await?;
            stream.shutdown().await
        };
        tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }
}

/// The head of a Server-Sent Events stream: no length, the body runs until either side
/// closes.
pub fn event_stream_head() -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n{COMMON_HEADERS}\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_browser_request() {
        let raw = b"POST /api/command?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
Content-Type: application/json\r\nContent-Length: 12\r\nOrigin: http://127.0.0.1:8080\r\n\
User-Agent: test";
        let head = parse_head(raw).unwrap();
        assert_eq!(head.method, "POST");
        assert_eq!(head.path, "/api/command");
        assert_eq!(head.content_length, 12);
        assert_eq!(head.content_type.as_deref(), Some("application/json"));
        assert_eq!(head.host.as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(head.origin.as_deref(), Some("http://127.0.0.1:8080"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for raw in [
            &b""[..],
            b"\xff\xfe",
            b"GET",
            b"GET / HTTP/1.1 extra",
            b"get / HTTP/1.1",
            b"GET relative HTTP/1.1",
            b"GET / SPDY/3",
            b"GET / HTTP/1.1\r\nno colon here",
            b"POST / HTTP/1.1\r\nContent-Length: -1",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999",
        ] {
            assert_eq!(parse_head(raw), Err(ReadError::Malformed), "{raw:?}");
        }
        assert_eq!(
            parse_head(b"POST / HTTP/1.1\r\nContent-Length: 5000"),
            Err(ReadError::TooLarge)
        );
        assert_eq!(
            parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked"),
            Err(ReadError::LengthRequired)
        );
    }

    #[test]
    fn a_reply_says_how_long_it_is_and_closes() {
        let r = Response::new("200 OK", "text/plain", "hello").with_header("X-A: b");
        let head = r.head();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Length: 5\r\n"), "{head}");
        assert!(head.contains("Connection: close\r\n"), "{head}");
        assert!(head.ends_with("X-A: b\r\n\r\n"), "{head}");
    }
}
