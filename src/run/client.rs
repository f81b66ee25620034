//! The Incus REST API over the local unix socket: JSON in and out, the response
//! envelope turned into a typed error, asynchronous operations awaited through
//! `/1.0/operations/<id>/wait`, and a log of every request (the tests count the
//! mutating ones).

use super::http;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long one `/wait` long-poll asks the server to hold the request.
const WAIT_POLL: Duration = Duration::from_secs(30);
/// Extra socket time beyond the server-side wait before a poll counts as hung.
const WAIT_SLACK: Duration = Duration::from_secs(15);

/// Where the Incus socket is, as the incus client looks for it: `$INCUS_SOCKET`, then
/// `$INCUS_DIR/unix.socket`, then `/run/incus/unix.socket` if it exists, else
/// `/var/lib/incus/unix.socket`.
pub fn default_socket() -> PathBuf {
    if let Some(socket) = std::env::var_os("INCUS_SOCKET").filter(|s| !s.is_empty()) {
        return PathBuf::from(socket);
    }
    if let Some(dir) = std::env::var_os("INCUS_DIR").filter(|s| !s.is_empty()) {
        return Path::new(&dir).join("unix.socket");
    }
    let run = Path::new("/run/incus/unix.socket");
    if run.exists() { run.to_path_buf() } else { PathBuf::from("/var/lib/incus/unix.socket") }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The socket could not be reached, or the exchange broke off.
    Transport { request: String, message: String },
    /// Incus answered with an error envelope (its `error_code` and `error`).
    Api { request: String, status: u16, message: String },
    /// An asynchronous operation ended in failure or was cancelled.
    Operation { request: String, message: String },
    /// An operation was still running at its deadline.
    Timeout { request: String, after: Duration },
    /// The answer was not the JSON envelope Incus sends.
    Protocol { request: String, message: String },
}

impl Error {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// What Incus (or the transport) said, without the request.
    pub fn message(&self) -> String {
        match self {
            Error::Transport { message, .. } | Error::Operation { message, .. } | Error::Protocol { message, .. } => {
                message.clone()
            }
            Error::Api { status, message, .. } => format!("{message} (HTTP {status})"),
            Error::Timeout { after, .. } => format!("still running after {} s", after.as_secs()),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let request = match self {
            Error::Transport { request, .. }
            | Error::Api { request, .. }
            | Error::Operation { request, .. }
            | Error::Timeout { request, .. }
            | Error::Protocol { request, .. } => request,
        };
        write!(f, "{request}: {}", self.message())
    }
}

impl std::error::Error for Error {}

/// What a request is, for the counts: reads change nothing, probes (`exec` of `true`)
/// change nothing either, mutations change Incus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Read,
    Probe,
    Mutating,
}

pub fn classify(method: &str, path: &str) -> Class {
    let path = path.split('?').next().unwrap_or_default();
    match method {
        "GET" | "HEAD" => Class::Read,
        "POST" if path.starts_with("/1.0/instances/") && path.ends_with("/exec") => Class::Probe,
        _ => Class::Mutating,
    }
}

/// One request sent, as the log keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub method: String,
    pub path: String,
    pub class: Class,
    /// The HTTP status, or 0 when no answer came.
    pub status: u16,
}

/// A synchronous answer's metadata, or the path of the operation an asynchronous one
/// started.
#[derive(Debug)]
pub enum Reply {
    Sync(Value),
    Async(String),
}

pub struct Client {
    socket: PathBuf,
    /// Socket read/write timeout of an ordinary request.
    timeout: Duration,
    log: Mutex<Vec<Record>>,
    mutating: AtomicUsize,
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
            timeout: Duration::from_secs(60),
            log: Mutex::new(Vec::new()),
            mutating: AtomicUsize::new(0),
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Every request sent so far, in the order they were sent.
    pub fn records(&self) -> Vec<Record> {
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }

    pub fn mutating_requests(&self) -> usize {
        self.mutating.load(Ordering::SeqCst)
    }

    /// Send one request; turn the envelope into metadata, an operation, or an error.
    pub fn send(&self, method: &str, path: &str, body: Option<&Value>, timeout: Duration) -> Result<Reply, Error> {
        let request = format!("{method} {path}");
        let class = classify(method, path);
        if class == Class::Mutating {
            self.mutating.fetch_add(1, Ordering::SeqCst);
        }
        let bytes = body.map(|body| serde_json::to_vec(body).unwrap_or_default());
        let result = http::request(&self.socket, method, path, bytes.as_deref(), timeout);
        let status = result.as_ref().map_or(0, |response| response.status);
        if let Ok(mut log) = self.log.lock() {
            log.push(Record { method: method.to_string(), path: path.to_string(), class, status });
        }
        let response = result.map_err(|error| Error::Transport {
            request: request.clone(),
            message: if error.kind() == std::io::ErrorKind::WouldBlock || error.kind() == std::io::ErrorKind::TimedOut {
                format!("no answer within {} s", timeout.as_secs())
            } else {
                format!("{error} (socket {})", self.socket.display())
            },
        })?;
        let envelope: Value = serde_json::from_slice(&response.body).map_err(|error| Error::Protocol {
            request: request.clone(),
            message: format!(
                "HTTP {}: the body is not JSON ({error}): {}",
                response.status,
                String::from_utf8_lossy(&response.body[..response.body.len().min(200)])
            ),
        })?;
        let kind = envelope["type"].as_str().unwrap_or_default();
        if kind == "error" || response.status >= 400 {
            let status = envelope["error_code"].as_u64().map_or(response.status, |code| code as u16);
            let message = envelope["error"].as_str().unwrap_or("(no message)").to_string();
            return Err(Error::Api { request, status, message });
        }
        if kind == "async" || response.status == 202 {
            let operation =
                envelope["operation"].as_str().or_else(|| response.header("Location")).ok_or_else(|| {
                    Error::Protocol { request, message: "an asynchronous answer names no operation".into() }
                })?;
            return Ok(Reply::Async(operation.to_string()));
        }
        Ok(Reply::Sync(envelope.get("metadata").cloned().unwrap_or(Value::Null)))
    }

    /// GET `path` and return its metadata.
    pub fn get(&self, path: &str) -> Result<Value, Error> {
        match self.send("GET", path, None, self.timeout)? {
            Reply::Sync(metadata) => Ok(metadata),
            Reply::Async(operation) => Err(Error::Protocol {
                request: format!("GET {path}"),
                message: format!("unexpected asynchronous answer ({operation})"),
            }),
        }
    }

    /// Send a request and, when it starts an operation, wait for the operation to end
    /// (at most `deadline`). Returns the sync metadata or the finished operation.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>, deadline: Duration) -> Result<Value, Error> {
        match self.send(method, path, body, self.timeout)? {
            Reply::Sync(metadata) => Ok(metadata),
            Reply::Async(operation) => self.wait(&format!("{method} {path}"), &operation, deadline),
        }
    }

    /// Poll `operation`'s `/wait` until it reaches a final status: 200 (success), 400
    /// (failure) or 401 (cancelled). Returns the operation object on success.
    pub fn wait(&self, request: &str, operation: &str, deadline: Duration) -> Result<Value, Error> {
        let started = Instant::now();
        let base = operation.split('?').next().unwrap_or(operation);
        loop {
            let left = deadline.saturating_sub(started.elapsed());
            let poll = WAIT_POLL.min(left).max(Duration::from_secs(1));
            let path = format!("{base}/wait?timeout={}", poll.as_secs());
            let op = match self.send("GET", &path, None, poll + WAIT_SLACK) {
                Ok(Reply::Sync(op)) => op,
                Ok(Reply::Async(_)) => {
                    return Err(Error::Protocol {
                        request: request.to_string(),
                        message: "waiting on an operation answered with another operation".into(),
                    });
                }
                Err(Error::Api { status: 404, .. }) => {
                    return Err(Error::Protocol {
                        request: request.to_string(),
                        message: format!(
                            "the operation {base} vanished before its result was read (Incus keeps finished operations 5 s)"
                        ),
                    });
                }
                Err(error) => return Err(error),
            };
            match op["status_code"].as_u64() {
                Some(200) => return Ok(op),
                Some(400) => {
                    let message = op["err"].as_str().filter(|e| !e.is_empty()).unwrap_or("the operation failed");
                    return Err(Error::Operation { request: request.to_string(), message: message.to_string() });
                }
                Some(401) => {
                    return Err(Error::Operation {
                        request: request.to_string(),
                        message: "the operation was cancelled".to_string(),
                    });
                }
                _ => {}
            }
            if started.elapsed() >= deadline {
                return Err(Error::Timeout { request: request.to_string(), after: started.elapsed() });
            }
        }
    }
}

/// Percent-encode one path segment or query value (image aliases may hold `/`).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify("GET", "/1.0/instances?recursion=1"), Class::Read);
        assert_eq!(classify("POST", "/1.0/instances/web/exec?project=p"), Class::Probe);
        assert_eq!(classify("POST", "/1.0/instances?project=p"), Class::Mutating);
        assert_eq!(classify("PUT", "/1.0/instances/web/state"), Class::Mutating);
    }

    #[test]
    fn encoding() {
        assert_eq!(encode("debian/13"), "debian%2F13");
        assert_eq!(encode("web-1_a.b"), "web-1_a.b");
    }
}
