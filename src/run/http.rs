//! A minimal HTTP/1.1 client over a unix socket: one connection per request
//! (`Connection: close`), bodies framed by `Content-Length`, `Transfer-Encoding: chunked`
//! or the end of the stream, and read/write timeouts on the socket.
//!
//! That is all the Incus API needs locally: no TLS, no keep-alive, no redirects. A fresh
//! connection per request costs tens of microseconds on a unix socket and makes every
//! request independent (a timed-out request cannot poison the next one).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Headers larger than this are a protocol error (Incus sends a few hundred bytes).
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Bodies larger than this are refused (the largest Incus answer we read is a
/// recursive instance list: a few kilobytes per instance).
const MAX_BODY_BYTES: usize = 512 * 1024 * 1024;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// Send one request and read its whole response. `timeout` bounds every read and write
/// on the socket (not the whole exchange: a long-poll answers within its own timeout).
pub fn request(
    socket: &Path,
    method: &str,
    target: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> io::Result<Response> {
    let stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: unix.socket\r\nUser-Agent: anklumec/{}\r\nAccept: application/json\r\nConnection: close\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(body) = body {
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    } else if matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    let mut writer = &stream;
    let mut message = head.into_bytes();
    if let Some(body) = body {
        message.extend_from_slice(body);
    }
    writer.write_all(&message)?;
    writer.flush()?;
    read_response(BufReader::new(&stream), method == "HEAD")
}

fn protocol(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Read one line ending in CRLF (or LF), without it; counts against `budget`.
fn read_line(reader: &mut impl BufRead, budget: &mut usize) -> io::Result<String> {
    let mut line = Vec::new();
    let read = reader.take(*budget as u64 + 1).read_until(b'\n', &mut line)?;
    if read == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before the response ended"));
    }
    if read > *budget {
        return Err(protocol("response header too large"));
    }
    *budget -= read;
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside a header line"));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| protocol("header line is not UTF-8"))
}

/// Parse a response: status line, headers, body. Interim `1xx` responses are skipped.
pub fn read_response(mut reader: impl BufRead, head_only: bool) -> io::Result<Response> {
    let mut budget = MAX_HEADER_BYTES;
    loop {
        let status_line = read_line(&mut reader, &mut budget)?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(protocol(format!("not an HTTP/1.x response: {status_line:?}")));
        }
        let status: u16 = parts
            .next()
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| protocol(format!("bad status line: {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = read_line(&mut reader, &mut budget)?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').ok_or_else(|| protocol(format!("bad header line: {line:?}")))?;
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        if (100..200).contains(&status) {
            continue;
        }
        let mut response = Response { status, headers, body: Vec::new() };
        if head_only || status == 204 || status == 304 {
            return Ok(response);
        }
        let chunked = response
            .header("Transfer-Encoding")
            .is_some_and(|value| value.split(',').any(|coding| coding.trim().eq_ignore_ascii_case("chunked")));
        if chunked {
            response.body = read_chunked(&mut reader)?;
        } else if let Some(length) = response.header("Content-Length") {
            let length: usize = length.parse().map_err(|_| protocol(format!("bad Content-Length: {length:?}")))?;
            if length > MAX_BODY_BYTES {
                return Err(protocol(format!("response body too large ({length} bytes)")));
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            response.body = body;
        } else {
            // Connection: close framing: the body runs to the end of the stream.
            let mut body = Vec::new();
            reader.take(MAX_BODY_BYTES as u64 + 1).read_to_end(&mut body)?;
            if body.len() > MAX_BODY_BYTES {
                return Err(protocol("response body too large"));
            }
            response.body = body;
        }
        return Ok(response);
    }
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut budget = MAX_HEADER_BYTES;
        let line = read_line(reader, &mut budget)?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| protocol(format!("bad chunk size: {line:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let trailer = read_line(reader, &mut budget)?;
                if trailer.is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err(protocol("response body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(protocol("chunk not followed by CRLF"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> io::Result<Response> {
        read_response(BufReader::new(text.as_bytes()), false)
    }

    #[test]
    fn content_length_body() {
        let response = parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloextra").expect("parses");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"hello");
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let text =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\nT: v\r\n\r\n";
        let response = parse(text).expect("parses");
        assert_eq!(response.body, b"Wikipedia");
    }

    #[test]
    fn body_to_end_of_stream_and_interim_responses() {
        let response =
            parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 202 Accepted\r\nLocation: /x\r\n\r\n{}").expect("parses");
        assert_eq!(response.status, 202);
        assert_eq!(response.header("location"), Some("/x"));
        assert_eq!(response.body, b"{}");
    }

    #[test]
    fn truncated_and_malformed_responses_are_errors() {
        assert!(parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort").is_err());
        assert!(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
        assert!(parse("SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse("").is_err());
        assert!(parse("HTTP/1.1 200 OK\r\nno colon\r\n\r\n").is_err());
    }
}
