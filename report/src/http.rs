//! The HTTP client that reads Envoy admin endpoints and Prometheus.
//!
//! [`Client`] is `ureq` (blocking, HTTP/1.1, no async runtime) over rustls
//! with the Mozilla roots: `http://` and `https://`, extra trusted roots
//! from `--ca-file`, headers from `--header`, `Authorization: Bearer` from a
//! token file re-read at every request (`--bearer-token-file`), basic auth
//! from `user:password@` in a URL. No proxies (`HTTP_PROXY` and friends are
//! ignored), no redirects (a 3xx is an error that names the Location), no
//! compression. Tests substitute canned answers through [`Fetch`].

use base64::Engine;
use std::fmt;
use std::io::Read;
use std::time::Duration;
use ureq::http::{HeaderName, HeaderValue};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// Largest response body read (the darklaunch stats of 32 launches are a
/// few hundred KiB of JSON).
pub const MAX_BODY: usize = 64 << 20;

/// Characters of an error answer's body quoted in the error message.
const SNIPPET: usize = 200;

/// Something that answers GET requests with a body, or an error message.
/// The CLI uses [`Client`]; tests substitute canned answers. `Sync` so that
/// `--serve` can answer several clients at once.
pub trait Fetch: Sync {
    fn get(&self, url: &str) -> Result<String, String>;
}

/// `user:password@` taken out of a base URL, for the requests to its origin.
#[derive(Clone, PartialEq)]
pub struct BasicAuth {
    /// `scheme://host[:port]`, lowercase, without the userinfo.
    pub origin: String,
    pub user: String,
    pub password: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("origin", &self.origin)
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}

/// How requests are made, from the command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpOptions {
    /// `--header 'Name: value'`, in order, already validated.
    pub headers: Vec<(String, String)>,
    /// `--bearer-token-file PATH`, read at every request.
    pub bearer_token_file: Option<String>,
    /// `--ca-file PEM`: roots trusted besides the Mozilla ones.
    pub ca_file: Option<String>,
    /// Credentials found in the `--envoy` / `--prometheus` URLs.
    pub basic_auth: Vec<BasicAuth>,
}

/// A base URL as given on the command line, split.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseUrl {
    /// The URL without its userinfo (what is requested, shown and reported).
    pub url: String,
    /// `scheme://host[:port]`, lowercase.
    pub origin: String,
    /// Percent-decoded `user` and `password` of `user:password@`.
    pub credentials: Option<(String, String)>,
}

/// `url` with any `user:password@` replaced by `***@`, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{tail}"),
        None => url.to_string(),
    }
}

/// Splits and checks `http[s]://[user[:password]@]host[:port][/path]`
/// (`host` may be `[v6addr]`). Messages never show the password.
pub fn parse_base_url(url: &str) -> Result<BaseUrl, String> {
    let shown = redact(url);
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{shown}: not a URL (expected http://… or https://…)"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "{shown}: only http:// and https:// URLs are supported"
        ));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, tail) = v6
            .split_once(']')
            .ok_or_else(|| format!("{shown}: unterminated [IPv6 address]"))?;
        let port = match tail.strip_prefix(':') {
            Some(p) => Some(p),
            None if tail.is_empty() => None,
            None => return Err(format!("{shown}: bad authority")),
        };
        (h, port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{shown}: no host"));
    }
    if let Some(port) = port {
        port.parse::<u16>()
            .map_err(|_| format!("{shown}: bad port {port:?}"))?;
    }
    let clean = format!("{scheme}://{hostport}{tail}");
    ureq::http::Uri::try_from(clean.as_str()).map_err(|e| format!("{shown}: {e}"))?;
    let credentials = match userinfo {
        None => None,
        Some(u) => {
            let (user, password) = u.split_once(':').unwrap_or((u, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| format!("{shown}: the user or password is not UTF-8"))
            };
            Some((decode(user)?, decode(password)?))
        }
    };
    Ok(BaseUrl {
        url: clean,
        origin: format!("{scheme}://{}", hostport.to_ascii_lowercase()),
        credentials,
    })
}

/// Headers darklaunch-report sets itself or that would break the framing.
const RESERVED: [&str; 5] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
];

/// Parses `--header 'Name: value'` (value trimmed, may be empty).
pub fn parse_header(h: &str) -> Result<(String, String), String> {
    let (name, value) = h
        .split_once(':')
        .ok_or_else(|| format!("--header {h:?}: expected 'Name: value'"))?;
    let (name, value) = (name.trim(), value.trim());
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("--header {h:?}: {name:?} is not a valid header name"))?;
    HeaderValue::from_str(value).map_err(|_| {
        format!("--header {name}: the value has characters not allowed in a header")
    })?;
    if RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
        return Err(format!(
            "--header {name}: set by darklaunch-report itself, cannot be given"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

/// Reads the bearer token (trimmed) from `path`.
pub fn read_token(path: &str) -> Result<String, String> {
    let raw =
        std::fs::read_to_string(path).map_err(|e| format!("--bearer-token-file {path}: {e}"))?;
    let token = raw.trim();
    if token.is_empty() {
        return Err(format!("--bearer-token-file {path}: the file is empty"));
    }
    HeaderValue::from_str(token).map_err(|_| {
        format!("--bearer-token-file {path}: the token has characters not allowed in a header")
    })?;
    Ok(token.to_string())
}

/// The headers sent with a GET of `url`, besides `Accept` and `User-Agent`:
/// every `--header`, then `Authorization` from the token file (read now) or
/// from the credentials of `url`'s origin.
pub fn request_headers(o: &HttpOptions, url: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = o.headers.clone();
    if let Some(path) = &o.bearer_token_file {
        out.push((
            "Authorization".into(),
            format!("Bearer {}", read_token(path)?),
        ));
    } else if !o.basic_auth.is_empty() {
        let origin = parse_base_url(url)?.origin;
        if let Some(b) = o.basic_auth.iter().find(|b| b.origin == origin) {
            let pair = format!("{}:{}", b.user, b.password);
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            out.push(("Authorization".into(), format!("Basic {encoded}")));
        }
    }
    Ok(out)
}

/// The Mozilla roots plus every certificate of the PEM file at `path`.
fn roots_with(path: &str) -> Result<RootCerts, String> {
    let pem = std::fs::read(path).map_err(|e| format!("--ca-file {path}: {e}"))?;
    let mut extra = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let PemItem::Certificate(c) = item.map_err(|e| format!("--ca-file {path}: {e}"))? {
            extra.push(c);
        }
    }
    if extra.is_empty() {
        return Err(format!("--ca-file {path}: no PEM certificate in it"));
    }
    let mozilla = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned());
    Ok(RootCerts::from(mozilla.chain(extra)))
}

/// One line, at most [`SNIPPET`] characters.
fn snippet(body: &str) -> String {
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s: String = one_line.chars().take(SNIPPET).collect();
    if s.len() < one_line.len() {
        s.push('…');
    }
    s
}

/// GETs with ureq; one agent (and its connection pool) for every request.
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
    options: HttpOptions,
    timeout: Duration,
    /// Largest body accepted ([`MAX_BODY`]).
    pub max_body: usize,
}

impl Client {
    /// Fails when `--ca-file` cannot be read or holds no certificate.
    pub fn new(options: &HttpOptions, timeout: Duration) -> Result<Client, String> {
        let mut tls = TlsConfig::builder();
        if let Some(path) = &options.ca_file {
            tls = tls.root_certs(roots_with(path)?);
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .user_agent(format!("darklaunch-report/{}", env!("CARGO_PKG_VERSION")))
            .accept("application/json")
            .tls_config(tls.build())
            .build()
            .new_agent();
        Ok(Client {
            agent,
            options: options.clone(),
            timeout,
            max_body: MAX_BODY,
        })
    }

    fn describe(&self, url: &str, e: ureq::Error) -> String {
        use std::io::ErrorKind::*;
        let tls = |msg: String| {
            let hint = if msg.contains("UnknownIssuer") {
                " (is the server's CA in --ca-file?)"
            } else {
                ""
            };
            format!("GET {url}: TLS: {msg}{hint}")
        };
        match e {
            ureq::Error::Io(io)
                if matches!(
                    io.kind(),
                    ConnectionRefused | AddrNotAvailable | NetworkUnreachable | HostUnreachable
                ) =>
            {
                format!("GET {url}: connect: {io}")
            }
            // rustls reports handshake failures as I/O errors.
            ureq::Error::Io(io) if io.to_string().contains("certificate") => tls(io.to_string()),
            ureq::Error::Io(io) => format!("GET {url}: {io}"),
            ureq::Error::Tls(msg) => tls(msg.to_string()),
            ureq::Error::Rustls(r) => tls(r.to_string()),
            ureq::Error::Timeout(what) => {
                format!("GET {url}: timed out after {:?} ({what})", self.timeout)
            }
            ureq::Error::HostNotFound => format!("GET {url}: cannot resolve the host"),
            ureq::Error::BodyExceedsLimit(_) => {
                format!("GET {url}: answer larger than {} bytes", self.max_body)
            }
            other => format!("GET {url}: {other}"),
        }
    }
}

impl Fetch for Client {
    fn get(&self, url: &str) -> Result<String, String> {
        let mut req = self.agent.get(url);
        for (name, value) in request_headers(&self.options, url)? {
            req = req.header(name, value);
        }
        let mut resp = req.call().map_err(|e| self.describe(url, e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let location = resp
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .map(|l| format!(" (redirects are not followed; Location: {})", redact(l)))
                .unwrap_or_default();
            let mut head = Vec::new();
            // Best effort: the status is the error, the body only explains it.
            let _ = resp
                .body_mut()
                .as_reader()
                .take(4096)
                .read_to_end(&mut head);
            let body = snippet(&String::from_utf8_lossy(&head));
            let sep = if body.is_empty() { "" } else { ": " };
            return Err(format!("GET {url}: HTTP {status}{location}{sep}{body}"));
        }
        resp.body_mut()
            .with_config()
            .limit(self.max_body as u64)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(|e| self.describe(url, e))
    }
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
    use std::io::Write;
    use std::net::TcpListener;

    #[test]
    fn base_urls() {
        let b = parse_base_url("http://127.0.0.1:9901").unwrap();
        assert_eq!(b.url, "http://127.0.0.1:9901");
        assert_eq!(b.origin, "http://127.0.0.1:9901");
        assert_eq!(b.credentials, None);
        let b = parse_base_url("https://Prom.example/prometheus/").unwrap();
        assert_eq!(b.url, "https://Prom.example/prometheus/");
        assert_eq!(b.origin, "https://prom.example");
        let b = parse_base_url("http://[::1]:9090/").unwrap();
        assert_eq!(b.origin, "http://[::1]:9090");
        let b = parse_base_url("https://user:p%40ss:w@prom:9090/x").unwrap();
        assert_eq!(b.url, "https://prom:9090/x");
        assert_eq!(b.origin, "https://prom:9090");
        assert_eq!(b.credentials, Some(("user".into(), "p@ss:w".into())));
        let b = parse_base_url("https://token@prom").unwrap();
        assert_eq!(b.credentials, Some(("token".into(), "".into())));
        for bad in [
            "ftp://x",
            "127.0.0.1:9901",
            "http://x:notaport",
            "http://x:99999",
            "http://",
            "http://:80",
            "http://u:p@",
            "http://[::1",
            "http://x y",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad} should be refused");
        }
        let e = parse_base_url("ftp://u:secret@x").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        assert_eq!(
            redact("https://u:secret@h:1/p?q=a@b"),
            "https://***@h:1/p?q=a@b"
        );
        assert_eq!(redact("http://h/p@q"), "http://h/p@q");
    }

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("X-Scope-OrgID:  shop ").unwrap(),
            ("X-Scope-OrgID".into(), "shop".into())
        );
        assert_eq!(
            parse_header("X-Empty:").unwrap(),
            ("X-Empty".into(), "".into())
        );
        assert_eq!(
            parse_header("Authorization: Bearer a:b").unwrap(),
            ("Authorization".into(), "Bearer a:b".into())
        );
        for bad in [
            "NoColon",
            ": v",
            "Bad Name: v",
            "X: a\nb",
            "Host: h",
            "content-length: 1",
        ] {
            assert!(parse_header(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn header_assembly() {
        let dir = std::env::temp_dir().join(format!("dlr-hdr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "  first-token\n").unwrap();
        let mut o = HttpOptions {
            headers: vec![("X-A".into(), "1".into()), ("X-B".into(), "2".into())],
            bearer_token_file: Some(token.to_string_lossy().into_owned()),
            ..HttpOptions::default()
        };
        let h = request_headers(&o, "https://prom:9090/api").unwrap();
        assert_eq!(
            h,
            [
                ("X-A".to_string(), "1".to_string()),
                ("X-B".into(), "2".into()),
                ("Authorization".into(), "Bearer first-token".into()),
            ]
        );
        // Rotated: the next request reads the new token.
        std::fs::write(&token, "second-token").unwrap();
        let h = request_headers(&o, "https://prom:9090/api").unwrap();
        assert_eq!(h.last().unwrap().1, "Bearer second-token");
        std::fs::write(&token, "\n").unwrap();
        assert!(request_headers(&o, "https://prom:9090/api")
            .unwrap_err()
            .contains("empty"));
        std::fs::remove_file(&token).unwrap();
        assert!(request_headers(&o, "https://prom:9090/api")
            .unwrap_err()
            .starts_with("--bearer-token-file"));
        // Basic auth for the origin it came with, and only for it.
        o.bearer_token_file = None;
        o.headers.clear();
        o.basic_auth = vec![BasicAuth {
            origin: "https://prom:9090".into(),
            user: "user".into(),
            password: "p@ss".into(),
        }];
        assert_eq!(
            request_headers(&o, "https://PROM:9090/api/v1/query?query=x").unwrap(),
            [(
                "Authorization".to_string(),
                "Basic dXNlcjpwQHNz".to_string()
            )]
        );
        assert!(request_headers(&o, "https://other:9090/")
            .unwrap()
            .is_empty());
        assert!(request_headers(&o, "http://prom:9090/").unwrap().is_empty());
        assert!(!format!("{o:?}").contains("p@ss"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn encoding() {
        assert_eq!(
            encode_component("sum by (launch) (x{a=\"b\"})"),
            "sum%20by%20%28launch%29%20%28x%7Ba%3D%22b%22%7D%29"
        );
    }

    /// A server that answers each connection with the next canned answer
    /// and hands back each request head it read.
    fn canned(answers: Vec<Vec<u8>>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut heads = Vec::new();
            for answer in answers {
                let (mut s, _) = listener.accept().unwrap();
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0, "client closed before its request");
                    raw.extend_from_slice(&buf[..n]);
                }
                heads.push(String::from_utf8_lossy(&raw).into_owned());
                s.write_all(&answer).unwrap();
            }
            heads
        });
        (format!("http://{addr}"), server)
    }

    #[test]
    fn client_over_loopback() {
        let big = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\nConnection: close\r\n\r\n{}",
            "x".repeat(2000)
        );
        let (base, server) = canned(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".to_vec(),
            b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\nConnection: close\r\n\r\n\
              6;x=y\r\nno\nway\r\n4\r\n out\r\n0\r\n\r\n"
                .to_vec(),
            b"HTTP/1.1 302 Found\r\nLocation: https://u:pw@sso/login\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec(),
            big.into_bytes(),
        ]);
        let options = HttpOptions {
            headers: vec![("X-Scope-OrgID".into(), "shop".into())],
            ..HttpOptions::default()
        };
        let mut client = Client::new(&options, Duration::from_secs(10)).unwrap();
        assert_eq!(client.get(&format!("{base}/a/b?c=d")).unwrap(), "hello");
        let e = client.get(&format!("{base}/gate")).unwrap_err();
        assert_eq!(e, format!("GET {base}/gate: HTTP 503: no way out"));
        let e = client.get(&format!("{base}/moved")).unwrap_err();
        assert!(
            e.contains("HTTP 302") && e.contains("Location: https://***@sso/login"),
            "{e}"
        );
        client.max_body = 1000;
        let e = client.get(&format!("{base}/big")).unwrap_err();
        assert!(e.contains("larger than 1000 bytes"), "{e}");
        let heads = server.join().unwrap();
        let first = heads[0].to_ascii_lowercase();
        assert!(first.starts_with("get /a/b?c=d http/1.1\r\n"), "{first}");
        assert!(first.contains("\r\nx-scope-orgid: shop\r\n"), "{first}");
        assert!(
            first.contains("\r\naccept: application/json\r\n"),
            "{first}"
        );
        assert!(
            first.contains("\r\nuser-agent: darklaunch-report/"),
            "{first}"
        );
        // Nothing listening: an error that says so, not a hang.
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let e = client
            .get(&format!("http://127.0.0.1:{port}/"))
            .unwrap_err();
        assert!(e.contains("connect"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn client_timeout() {
        // Connections complete in the backlog, nothing ever answers.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = Client::new(&HttpOptions::default(), Duration::from_secs(1)).unwrap();
        let e = client.get(&format!("http://{addr}/")).unwrap_err();
        assert!(
            e.starts_with(&format!("GET http://{addr}/: timed out after 1s")),
            "{e}"
        );
        drop(listener);
    }

    #[test]
    fn ca_file_errors() {
        let o = HttpOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..HttpOptions::default()
        };
        let e = Client::new(&o, Duration::from_secs(1)).unwrap_err();
        assert!(e.starts_with("--ca-file /nonexistent/ca.pem: "), "{e}");
        let path = std::env::temp_dir().join(format!("dlr-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        let o = HttpOptions {
            ca_file: Some(path.to_string_lossy().into_owned()),
            ..HttpOptions::default()
        };
        let e = Client::new(&o, Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        std::fs::remove_file(&path).unwrap();
    }
}
