//! The HTTP/1.1 server of `--serve` and of `samples --listen`: a thread per
//! connection on `std::net`, one request per connection (`connection:
//! close`). A request body is read when it has a `content-length` (up to
//! [`Limits::max_body`]); chunked bodies are not read.
//!
//! A client that connects and sends nothing holds one thread until
//! [`Limits::head_timeout`], never the others. At most
//! [`Limits::max_connections`] are handled at once; past that a connection
//! is answered `503` at once and closed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Bounds of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections handled at once.
    pub max_connections: usize,
    /// Time a client has to send its whole request head (and any body).
    pub head_timeout: Duration,
    /// Time a client has to take the answer.
    pub write_timeout: Duration,
    /// Largest request body read; a longer one is [`Body::TooLarge`].
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 64,
            head_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_body: 1 << 20,
        }
    }
}

/// A request: method, target (path with its query), headers and body.
#[derive(Debug, PartialEq)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// Names lower-case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// The body of a request, as far as it was read.
#[derive(Debug, PartialEq)]
pub enum Body {
    /// The whole body (empty without `content-length`).
    Read(Vec<u8>),
    /// `content-length` over [`Limits::max_body`]: not read.
    TooLarge(u64),
    /// `transfer-encoding` (chunked): not read.
    Chunked,
}

impl Request {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: status, content type, body.
pub type Answer = (u16, &'static str, String);

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads from `stream` with whatever is left until `deadline`.
fn read_until(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Option<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return None;
    }
    stream.set_read_timeout(Some(left)).ok()?;
    loop {
        match stream.read(buf) {
            Ok(n) => return Some(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
}

/// Reads one request head and its body (see [`Body`]), all before
/// `deadline`. Answers `expect: 100-continue` before reading a body it
/// will take. `None` on garbage, end of stream (also inside the body) or
/// time out.
pub fn read_request(stream: &mut TcpStream, deadline: Instant, max_body: usize) -> Option<Request> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(end) = find(&raw, b"\r\n\r\n") {
            break end;
        }
        if raw.len() > 16384 {
            return None;
        }
        let n = read_until(stream, &mut buf, deadline)?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(buf.get(..n)?);
    };
    let head = String::from_utf8_lossy(raw.get(..end)?).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut req = Request {
        method,
        target,
        headers,
        body: Body::Read(Vec::new()),
    };
    if req.header("transfer-encoding").is_some() {
        req.body = Body::Chunked;
        return Some(req);
    }
    let length: u64 = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let Ok(want) = usize::try_from(length) else {
        req.body = Body::TooLarge(length);
        return Some(req);
    };
    if want > max_body {
        req.body = Body::TooLarge(length);
        return Some(req);
    }
    let mut body = raw.get(end + 4..)?.to_vec();
    if body.len() < want
        && req
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    while body.len() < want {
        match read_until(stream, &mut buf, deadline) {
            None | Some(0) => return None,
            Some(n) => body.extend_from_slice(buf.get(..n)?),
        }
    }
    body.truncate(want);
    req.body = Body::Read(body);
    Some(req)
}

/// Writes a complete answer and closes.
pub fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) {
    write_answer(stream, status, content_type, "", body);
}

fn write_answer(stream: &mut TcpStream, status: u16, ctype: &str, extra: &str, body: &[u8]) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\n{extra}connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

/// Gives back a connection slot when dropped.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn handle<F>(mut stream: TcpStream, limits: &Limits, answer: &F)
where
    F: Fn(&Request) -> Answer + Sync,
{
    let deadline = Instant::now() + limits.head_timeout;
    let Some(req) = read_request(&mut stream, deadline, limits.max_body) else {
        return;
    };
    let (status, ctype, body) = answer(&req);
    let body = if req.method == "HEAD" {
        String::new()
    } else {
        body
    };
    let _ = stream.set_write_timeout(Some(limits.write_timeout));
    respond(&mut stream, status, ctype, body.as_bytes());
    if !matches!(req.body, Body::Read(_)) {
        // The client may still be sending the body it was not asked for:
        // take it (until the deadline) so that closing does not reset the
        // connection before the client has read the answer.
        let _ = stream.shutdown(std::net::Shutdown::Write);
        drain(&mut stream, deadline, 64 << 20);
    }
}

/// Reads and drops up to `max` bytes until end of stream or `deadline`.
fn drain(stream: &mut TcpStream, deadline: Instant, max: usize) {
    let mut buf = [0u8; 16384];
    let mut drained = 0;
    while drained < max {
        match read_until(stream, &mut buf, deadline) {
            None | Some(0) => break,
            Some(n) => drained += n,
        }
    }
}

/// Answers connections over the cap: `503`, then reads what the client
/// sent (briefly) so that closing does not reset the connection before the
/// client has read the answer.
fn reject(mut stream: TcpStream, max_connections: usize) {
    let body = format!("busy: {max_connections} connections open, try again\n");
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    write_answer(
        &mut stream,
        503,
        "text/plain",
        "retry-after: 1\r\n",
        body.as_bytes(),
    );
    let _ = stream.shutdown(std::net::Shutdown::Write);
    drain(
        &mut stream,
        Instant::now() + Duration::from_millis(500),
        65536,
    );
}

/// Accepts connections on `listener` for ever, each handled on its own
/// thread by `answer`. Returns only if the listener stops.
pub fn run<F>(listener: &TcpListener, limits: &Limits, answer: &F)
where
    F: Fn(&Request) -> Answer + Sync,
{
    accept_loop(listener, limits, answer, None);
}

/// As [`run`], until `stop()` is true (checked every [`STOP_POLL`]); then
/// stops accepting and returns once the connections being handled are
/// answered.
pub fn run_until<F>(
    listener: &TcpListener,
    limits: &Limits,
    answer: &F,
    stop: &(dyn Fn() -> bool + Sync),
) where
    F: Fn(&Request) -> Answer + Sync,
{
    accept_loop(listener, limits, answer, Some(stop));
}

/// How often [`run_until`] looks at its stop condition.
pub const STOP_POLL: Duration = Duration::from_millis(20);

fn accept_loop<F>(
    listener: &TcpListener,
    limits: &Limits,
    answer: &F,
    stop: Option<&(dyn Fn() -> bool + Sync)>,
) where
    F: Fn(&Request) -> Answer + Sync,
{
    // With a stop condition the listener is polled, so that a quiet
    // listener still notices it.
    if stop.is_some() && listener.set_nonblocking(true).is_err() {
        return;
    }
    let active = AtomicUsize::new(0);
    // Connections over the cap wait here for the one rejecting thread; when
    // it is behind too, they are closed at once.
    let (busy, rejected) = std::sync::mpsc::sync_channel::<TcpStream>(limits.max_connections);
    std::thread::scope(|scope| {
        let max = limits.max_connections;
        let _ = std::thread::Builder::new()
            .name("serve-busy".into())
            .spawn_scoped(scope, move || {
                for stream in rejected {
                    reject(stream, max);
                }
            });
        loop {
            if stop.is_some_and(|stop| stop()) {
                break;
            }
            let stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(STOP_POLL);
                    continue;
                }
                Err(_) => {
                    // Out of file descriptors and the like: do not spin.
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            if stop.is_some() && stream.set_nonblocking(false).is_err() {
                continue;
            }
            if active.load(Ordering::Acquire) >= limits.max_connections {
                let _ = busy.try_send(stream);
                continue;
            }
            active.fetch_add(1, Ordering::AcqRel);
            let slot = Slot(&active);
            // On failure the closure, its slot and the stream are dropped:
            // the connection is closed and the slot given back.
            let _ = std::thread::Builder::new()
                .name("serve-conn".into())
                .spawn_scoped(scope, move || {
                    let _slot = slot;
                    handle(stream, limits, answer);
                });
        }
        drop(busy);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    fn start(limits: Limits) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            run(&listener, &limits, &|r: &Request| {
                (200, "text/plain", format!("{} {}", r.method, r.target))
            });
        });
        addr
    }

    fn get(addr: std::net::SocketAddr, target: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// True while the server keeps `s` open without answering.
    fn still_open(s: &TcpStream) -> bool {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let open = matches!((&*s).read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock);
        s.set_nonblocking(false).unwrap();
        open
    }

    #[test]
    fn silent_client_blocks_no_one() {
        let addr = start(Limits {
            head_timeout: Duration::from_secs(60),
            ..Limits::default()
        });
        let silent = TcpStream::connect(addr).unwrap();
        let half = TcpStream::connect(addr).unwrap();
        (&half).write_all(b"GET /slow HTTP/1.1\r\n").unwrap();
        for i in 0..3 {
            let answer = get(addr, &format!("/report?n={i}"));
            assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
            assert!(answer.ends_with(&format!("GET /report?n={i}")), "{answer}");
        }
        // Answered while the other two were still being waited for.
        assert!(still_open(&silent) && still_open(&half));
    }

    #[test]
    fn connection_cap() {
        let addr = start(Limits {
            max_connections: 2,
            head_timeout: Duration::from_secs(60),
            ..Limits::default()
        });
        let a = TcpStream::connect(addr).unwrap();
        let b = TcpStream::connect(addr).unwrap();
        // The accept loop takes connections in order: a and b hold both slots.
        let busy = get(addr, "/report");
        assert!(busy.starts_with("HTTP/1.1 503 "), "{busy}");
        assert!(busy.contains("retry-after: 1\r\n"), "{busy}");
        assert!(still_open(&a) && still_open(&b));
        drop(a);
        drop(b);
        // Their threads see the end of stream and give the slots back.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = get(addr, "/report");
            if answer.starts_with("HTTP/1.1 200 ") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "slots never given back: {answer}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A server answering `method target length-of-body|too large|chunked`.
    fn start_echo(limits: Limits) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            run(&listener, &limits, &|r: &Request| {
                let body = match &r.body {
                    Body::Read(b) => String::from_utf8_lossy(b).into_owned(),
                    Body::TooLarge(n) => format!("too large {n}"),
                    Body::Chunked => "chunked".into(),
                };
                let ctype = r.header("content-type").unwrap_or("-").to_string();
                (
                    200,
                    "text/plain",
                    format!("{} {} {ctype} [{body}]", r.method, r.target),
                )
            });
        });
        addr
    }

    fn exchange(addr: std::net::SocketAddr, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(raw).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn request_bodies() {
        let addr = start_echo(Limits {
            max_body: 16,
            ..Limits::default()
        });
        let a = exchange(
            addr,
            b"POST /v1/logs HTTP/1.1\r\nContent-Type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}",
        );
        assert!(
            a.ends_with("POST /v1/logs application/json [{\"a\":1}]"),
            "{a}"
        );
        // Only content-length bytes are the body.
        let a = exchange(addr, b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\nabcd");
        assert!(a.ends_with("[ab]"), "{a}");
        let a = exchange(
            addr,
            b"POST / HTTP/1.1\r\ncontent-length: 17\r\n\r\n01234567890123456",
        );
        assert!(a.ends_with("[too large 17]"), "{a}");
        let a = exchange(
            addr,
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
        );
        assert!(a.ends_with("[chunked]"), "{a}");
    }

    #[test]
    fn expect_continue() {
        let addr = start_echo(Limits::default());
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"POST /x HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\n")
            .unwrap();
        let mut interim = [0u8; 25];
        s.read_exact(&mut interim).unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        s.write_all(b"abc").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(
            out.starts_with("HTTP/1.1 200 OK") && out.ends_with("[abc]"),
            "{out}"
        );
    }

    #[test]
    fn a_client_sending_a_refused_body_still_reads_the_answer() {
        let addr = start_echo(Limits {
            max_body: 1024,
            ..Limits::default()
        });
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let body = vec![b'x'; 4 << 20];
        write!(
            s,
            "POST / HTTP/1.1\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        // The whole body goes through (the server takes it after answering)…
        s.write_all(&body).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        // … and the answer is there, not a reset.
        assert!(out.ends_with("[too large 4194304]"), "{out}");
    }

    #[test]
    fn run_until_stops() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let answered = AtomicUsize::new(0);
        let stop = || answered.load(Ordering::Acquire) >= 2;
        std::thread::scope(|scope| {
            let server = scope.spawn(|| {
                run_until(
                    &listener,
                    &Limits::default(),
                    &|_: &Request| {
                        answered.fetch_add(1, Ordering::AcqRel);
                        (200, "text/plain", "ok".to_string())
                    },
                    &stop,
                )
            });
            assert!(get(addr, "/1").ends_with("ok"));
            assert!(get(addr, "/2").ends_with("ok"));
            // Returns without another connection to wake it.
            server.join().unwrap();
        });
        assert_eq!(answered.load(Ordering::Acquire), 2);
    }

    #[test]
    fn head_timeout_closes() {
        let addr = start(Limits {
            head_timeout: Duration::from_millis(200),
            ..Limits::default()
        });
        let mut silent = TcpStream::connect(addr).unwrap();
        silent
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut out = Vec::new();
        // Closed without an answer once the head timeout is over.
        assert_eq!(silent.read_to_end(&mut out).unwrap(), 0);
    }
}
