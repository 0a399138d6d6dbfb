//! The `--serve` loop: a thread per connection on `std::net`, one request
//! per connection (`connection: close`).
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
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 64,
            head_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// A request: method and target (path with its query).
#[derive(Debug, PartialEq)]
pub struct Request {
    pub method: String,
    pub target: String,
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

/// Reads one request head (and discards a declared body, up to 1 MiB, so
/// that closing the socket does not reset the peer), all before `deadline`.
/// `None` on garbage, end of stream or time out.
pub fn read_request(stream: &mut TcpStream, deadline: Instant) -> Option<Request> {
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
    let mut length = 0usize;
    for line in lines {
        if let Some((n, v)) = line.split_once(':') {
            if n.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut have = raw.len().saturating_sub(end + 4);
    let want = length.min(1 << 20);
    while have < want {
        match read_until(stream, &mut buf, deadline) {
            None | Some(0) => break,
            Some(n) => have += n,
        }
    }
    Some(Request { method, target })
}

/// Writes a complete answer and closes.
pub fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) {
    write_answer(stream, status, content_type, "", body);
}

fn write_answer(stream: &mut TcpStream, status: u16, ctype: &str, extra: &str, body: &[u8]) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
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
    let Some(req) = read_request(&mut stream, deadline) else {
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
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut buf = [0u8; 4096];
    let mut drained = 0;
    while drained < 65536 {
        match read_until(&mut stream, &mut buf, deadline) {
            None | Some(0) => break,
            Some(n) => drained += n,
        }
    }
}

/// Accepts connections on `listener` for ever, each handled on its own
/// thread by `answer`. Returns only if the listener stops.
pub fn run<F>(listener: &TcpListener, limits: &Limits, answer: &F)
where
    F: Fn(&Request) -> Answer + Sync,
{
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
        for stream in listener.incoming() {
            let stream = match stream {
                Ok(s) => s,
                Err(_) => {
                    // Out of file descriptors and the like: do not spin.
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
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
