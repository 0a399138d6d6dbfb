//! A minimal HTTP/1.1 client (GET only) on `std::net`.
//!
//! Plain `http://` only — no TLS, no proxies, no redirects, no compression.
//! Envoy's admin listener is plain HTTP and normally bound to loopback;
//! Prometheus is plain HTTP inside a cluster. Reach a TLS-only endpoint
//! through `kubectl port-forward` or a sidecar.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Largest response body read (the darklaunch stats of 32 launches are a
/// few hundred KiB of JSON).
pub const MAX_BODY: usize = 64 << 20;

/// Something that answers GET requests with a body, or an error message.
/// The CLI uses [`Http`]; tests substitute canned answers. `Sync` so that
/// `--serve` can answer several clients at once.
pub trait Fetch: Sync {
    fn get(&self, url: &str) -> Result<String, String>;
}

/// GET over a fresh TCP connection per request.
#[derive(Debug, Clone, Copy)]
pub struct Http {
    pub timeout: Duration,
}

impl Fetch for Http {
    fn get(&self, url: &str) -> Result<String, String> {
        let (status, body) = get(url, self.timeout)?;
        let text = String::from_utf8_lossy(&body).into_owned();
        if status != 200 {
            let snippet: String = text.chars().take(300).collect();
            return Err(format!("GET {url}: HTTP {status}: {}", snippet.trim()));
        }
        Ok(text)
    }
}

/// `http://host[:port][/path]` split into (host, port, base path without a
/// trailing slash). `host` may be `[v6addr]`.
pub fn parse_base_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported (no TLS)"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("{url}: no host"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6
            .find(']')
            .ok_or_else(|| format!("{url}: unterminated [IPv6 address]"))?;
        let (h, tail) = v6.split_at(end);
        let port = match tail.strip_prefix("]:") {
            Some(p) => p,
            None if tail == "]" => "80",
            None => return Err(format!("{url}: bad authority")),
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (authority.to_string(), "80"),
        }
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{url}: bad port {port:?}"))?;
    Ok((host, port, path.trim_end_matches('/').to_string()))
}

/// One GET: (status, body). Follows no redirects.
pub fn get(url: &str, timeout: Duration) -> Result<(u16, Vec<u8>), String> {
    let (host, port, path) = parse_base_url(url)?;
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    let addrs: Vec<_> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("{url}: cannot resolve {host}: {e}"))?
        .collect();
    let mut last = format!("{url}: {host} has no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("{url}: connect {addr}: {e}"),
        }
    }
    let mut stream = stream.ok_or(last)?;
    let deadline = Instant::now() + timeout;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nAccept: application/json\r\n\
         User-Agent: darklaunch-report/{}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{url}: send: {e}"))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("{url}: timed out after {timeout:?}"));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(buf.get(..n).unwrap_or_default());
                if raw.len() > MAX_BODY {
                    return Err(format!("{url}: answer larger than {MAX_BODY} bytes"));
                }
                // Connection: close is honoured by Envoy and Prometheus, but
                // stop as soon as a complete answer is in.
                if let Ok(Some(done)) = parse_response(&raw) {
                    return Ok(done);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("{url}: receive: {e}")),
        }
    }
    match parse_response(&raw) {
        Ok(Some(done)) => Ok(done),
        Ok(None) => {
            // No length and no chunking: the body runs to the end of stream.
            let (status, head_len, _) = parse_head(&raw)
                .map_err(|e| format!("{url}: {e}"))?
                .ok_or_else(|| format!("{url}: connection closed before the answer's headers"))?;
            Ok((status, raw.get(head_len..).unwrap_or_default().to_vec()))
        }
        Err(e) => Err(format!("{url}: {e}")),
    }
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// (status, header length, framing) once the head is complete.
fn parse_head(raw: &[u8]) -> Result<Option<(u16, usize, Framing)>, String> {
    let Some(end) = find(raw, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(raw.get(..end).unwrap_or_default()).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x answer: {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut framing = Framing::UntilClose;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            framing = Framing::Chunked;
        } else if name.eq_ignore_ascii_case("content-length")
            && !matches!(framing, Framing::Chunked)
        {
            let n = value
                .parse()
                .map_err(|_| format!("bad content-length {value:?}"))?;
            framing = Framing::Length(n);
        }
    }
    Ok(Some((status, end + 4, framing)))
}

/// A complete (status, body), `Ok(None)` when more bytes are needed (or the
/// body runs to the end of the stream).
fn parse_response(raw: &[u8]) -> Result<Option<(u16, Vec<u8>)>, String> {
    let Some((status, head_len, framing)) = parse_head(raw)? else {
        return Ok(None);
    };
    let body = raw.get(head_len..).unwrap_or_default();
    match framing {
        Framing::Length(n) => Ok(body.get(..n).map(|b| (status, b.to_vec()))),
        Framing::Chunked => Ok(dechunk(body)?.map(|b| (status, b))),
        Framing::UntilClose => Ok(None),
    }
}

/// Decodes a chunked body; `Ok(None)` until the last chunk is in.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(data, b"\r\n") else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(data.get(..eol).unwrap_or_default()).into_owned();
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_hex:?}"))?;
        let rest = data.get(eol + 2..).unwrap_or_default();
        if size == 0 {
            // Trailers (if any) end with an empty line; the body is complete.
            return Ok(Some(out));
        }
        let Some(chunk) = rest.get(..size) else {
            return Ok(None);
        };
        out.extend_from_slice(chunk);
        if out.len() > MAX_BODY {
            return Err(format!("answer larger than {MAX_BODY} bytes"));
        }
        let Some(after) = rest.get(size..) else {
            return Ok(None);
        };
        if after.len() < 2 {
            return Ok(None);
        }
        data = after.get(2..).unwrap_or_default();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Percent-encodes a query-string component (RFC 3986 unreserved kept).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            parse_base_url("http://127.0.0.1:9901").unwrap(),
            ("127.0.0.1".into(), 9901, "".into())
        );
        assert_eq!(
            parse_base_url("http://prom.example/prometheus/").unwrap(),
            ("prom.example".into(), 80, "/prometheus".into())
        );
        assert_eq!(
            parse_base_url("http://[::1]:9090/").unwrap(),
            ("::1".into(), 9090, "".into())
        );
        assert!(parse_base_url("https://x").is_err());
        assert!(parse_base_url("http://x:notaport").is_err());
        assert!(parse_base_url("http://").is_err());
    }

    #[test]
    fn framing() {
        let fixed = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(
            parse_response(fixed).unwrap(),
            Some((200, b"hello".to_vec()))
        );
        assert_eq!(parse_response(&fixed[..fixed.len() - 1]).unwrap(), None);
        let chunked =
            b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).unwrap(),
            Some((503, b"abcde".to_vec()))
        );
        assert_eq!(parse_response(&chunked[..60]).unwrap(), None);
        let open = b"HTTP/1.0 200 OK\r\n\r\nbody";
        assert_eq!(parse_response(open).unwrap(), None);
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
    }

    #[test]
    fn encoding() {
        assert_eq!(
            encode_component("sum by (launch) (x{a=\"b\"})"),
            "sum%20by%20%28launch%29%20%28x%7Ba%3D%22b%22%7D%29"
        );
    }

    #[test]
    fn round_trip_over_loopback() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            use crate::serve::{read_request, respond};
            let (mut s, _) = listener.accept().unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            let req = read_request(&mut s, deadline).unwrap();
            respond(&mut s, 200, "text/plain", req.target.as_bytes());
        });
        let (status, body) =
            get(&format!("http://{addr}/a/b?c=d"), Duration::from_secs(5)).unwrap();
        server.join().unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, b"/a/b?c=d");
        // Nothing listening: an error, not a hang.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        assert!(get(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(2)).is_err());
    }
}
