//! The HTTP of the simulated lab: what a client sends (curl's request for `/`) and what a
//! real server answers, byte for byte as `masq-labsrv` answers it (crates/labsrv/src/http.rs):
//! `200 OK` with `<name> <local address>\n`, on a connection kept open for the client to
//! close.

use std::net::Ipv4Addr;

/// The request a client sends for `http://host/`.
pub fn request(host: Ipv4Addr) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: masq-sim\r\nAccept: */*\r\n\r\n")
        .into_bytes()
}

/// Whether `received` holds a whole request head.
pub fn request_complete(received: &[u8]) -> bool {
    received.windows(4).any(|w| w == b"\r\n\r\n")
}

/// A real server's answer: `name` and the address the request reached it on.
pub fn answer(name: &str, local: Ipv4Addr) -> Vec<u8> {
    let body = format!("{name} {local}\n");
    format!(
        "HTTP/1.1 200 OK\r\nServer: masq-labsrv\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The body of a whole response in `received`, once all of it (by its Content-Length)
/// has arrived.
pub fn response_body(received: &[u8]) -> Option<&[u8]> {
    let end = received.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&received[..end]).ok()?;
    let length: usize = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })?;
    received.get(end..end + length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_labsrvs_and_its_body_is_found_once_whole() {
        let text = answer("RS1", Ipv4Addr::new(192, 168, 100, 7));
        assert_eq!(
            text,
            b"HTTP/1.1 200 OK\r\nServer: masq-labsrv\r\nContent-Type: text/plain; charset=utf-8\r\n\
              Content-Length: 18\r\n\r\nRS1 192.168.100.7\n"
        );
        assert_eq!(response_body(&text), Some(&b"RS1 192.168.100.7\n"[..]));
        assert_eq!(response_body(&text[..text.len() - 1]), None);
        assert!(request_complete(&request(Ipv4Addr::new(192, 168, 0, 10))));
    }
}
