//! `--serve` answers other clients while one holds a connection open
//! without sending anything (the binary, end to end).

// Test code: helpers outside `#[test]` functions fail loudly too, like the
// tests (clippy.toml allows these inside tests only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::Value;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The server process, killed on drop (also when an assertion fails).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `darklaunch-report ARGS --serve 127.0.0.1:0`; returns it and the
/// address it printed.
fn serve(args: &[&str]) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_darklaunch-report"))
        .args(args)
        .args(["--serve", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let server = Server(child);
    let addr = line
        .split("serving on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (server, addr)
}

/// (status, body) of one request.
fn request(addr: &str, method: &str, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "{method} {target} HTTP/1.1\r\nHost: report\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// True while the server keeps `s` open without answering it.
fn still_open(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let open = matches!((&*s).read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    open
}

#[test]
fn a_silent_client_does_not_block_the_others() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/envoy_stats.json"
    );
    let (_server, addr) = serve(&["--envoy-json", fixture, "--min-compared", "1"]);
    // Connects and sends nothing; another sends half a request head.
    let silent = TcpStream::connect(&addr).unwrap();
    let half = TcpStream::connect(&addr).unwrap();
    (&half)
        .write_all(b"GET /report HTTP/1.1\r\nHost: re")
        .unwrap();

    // The same answers as ever, to one client after the other.
    let (status, body) = request(&addr, "GET", "/report");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["verdict"], "FAIL");
    assert_eq!(request(&addr, "POST", "/gate").0, 503);
    let (status, body) = request(&addr, "GET", "/gate?launch=search_v3");
    assert_eq!(status, 503);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["verdict"], "INCONCLUSIVE");
    assert_eq!(request(&addr, "HEAD", "/report"), (200, String::new()));
    assert_eq!(request(&addr, "GET", "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(request(&addr, "GET", "/nope").0, 404);

    // All of that while the first two were still waited for: a server
    // taking one connection at a time would only have answered after
    // giving up on them (closing them).
    assert!(still_open(&silent), "the silent client was closed first");
    assert!(still_open(&half), "the half-sent request was closed first");
}
