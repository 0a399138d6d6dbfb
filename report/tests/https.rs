//! The client against a local HTTPS server whose certificate is signed by a
//! throwaway CA: trusted with `--ca-file`, refused without it; the headers
//! `--header`, `--bearer-token-file` and a URL's `user:password` send, as the
//! server received them.

// Test code: helpers outside `#[test]` functions fail loudly too, like the
// tests (clippy.toml allows these inside tests only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use darklaunch_report::http::{encode_component, Client, Fetch, HttpOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ENVOY_STATS: &str = include_str!("fixtures/envoy_stats.json");
const PROM_ANSWERS: &str = include_str!("fixtures/prometheus_answers.json");

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("darklaunch-report-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA (its PEM) and a server configuration with a certificate for
/// 127.0.0.1 and localhost signed by it.
fn pki() -> (String, Arc<ServerConfig>) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "darklaunch-report test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    (ca.pem(), Arc::new(config))
}

/// What the server saw: the request heads it read, and the connections
/// that ended before a request (failed handshakes).
#[derive(Default)]
struct Seen {
    heads: Mutex<Vec<String>>,
    failed: Mutex<Vec<String>>,
}

impl Seen {
    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// An HTTPS server on 127.0.0.1 answering every request with
/// `answer(target)` (200, JSON). It lives as long as the test process.
fn https_server(config: Arc<ServerConfig>, answer: fn(&str) -> String) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let record = seen.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let (config, seen) = (config.clone(), record.clone());
            std::thread::spawn(move || {
                tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let conn = ServerConnection::new(config).unwrap();
                let mut tls = StreamOwned::new(conn, tcp);
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) => return seen.failed.lock().unwrap().push("closed".into()),
                        Ok(n) => raw.extend_from_slice(&buf[..n]),
                        Err(e) => return seen.failed.lock().unwrap().push(e.to_string()),
                    }
                }
                let head = String::from_utf8_lossy(&raw).into_owned();
                let target = head.split(' ').nth(1).unwrap_or_default().to_string();
                seen.heads.lock().unwrap().push(head);
                let body = answer(&target);
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (addr, seen)
}

fn envoy_answer(_: &str) -> String {
    ENVOY_STATS.to_string()
}

/// The captured Prometheus answer to the PromQL of `target`.
fn prometheus_answer(target: &str) -> String {
    let fixture: Value = serde_json::from_str(PROM_ANSWERS).unwrap();
    let q = target.split("query=").nth(1).unwrap_or_default();
    fixture["answers"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| encode_component(k) == q)
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| r#"{"status":"error","error":"no fixture"}"#.to_string())
}

fn report(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_darklaunch-report"))
        .args(args)
        .output()
        .unwrap()
}

/// The value of header `name` (case-insensitive) in a request head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn envoy_over_https_with_ca_file_headers_and_token() {
    let scratch = Scratch::new("envoy-https");
    let (ca_pem, config) = pki();
    let ca = scratch.write("ca.pem", &ca_pem);
    let token = scratch.write("token", "  eyJhbGciOi.first\n");
    let (addr, seen) = https_server(config, envoy_answer);
    let url = format!("https://{addr}");
    let out = report(&[
        "--envoy",
        &url,
        "--ca-file",
        &ca,
        "--header",
        "X-Scope-OrgID: shop",
        "--header=X-Request-Source: ci",
        "--bearer-token-file",
        &token,
        "--min-compared",
        "1",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The fixture's orders-v2 diverges: FAIL (exit 2), a report was made.
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "FAIL");
    assert_eq!(v["source"]["endpoints"][0], url.as_str());
    let orders = v["launches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["launch"] == "orders-v2")
        .unwrap();
    assert_eq!(orders["compared"], 28);
    let heads = seen.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let head = &heads[0];
    assert!(
        head.starts_with("GET /stats?format=json&filter=") && head.contains(" HTTP/1.1\r\n"),
        "{head}"
    );
    assert_eq!(header(head, "x-scope-orgid"), Some("shop"));
    assert_eq!(header(head, "x-request-source"), Some("ci"));
    assert_eq!(
        header(head, "authorization"),
        Some("Bearer eyJhbGciOi.first")
    );
    assert_eq!(header(head, "accept"), Some("application/json"));
    assert!(header(head, "user-agent")
        .unwrap()
        .starts_with("darklaunch-report/"));
}

#[test]
fn prometheus_over_https_with_basic_auth_from_the_url() {
    let scratch = Scratch::new("prom-https");
    let (ca_pem, config) = pki();
    let ca = scratch.write("ca.pem", &ca_pem);
    let (addr, seen) = https_server(config, prometheus_answer);
    let out = report(&[
        "--prometheus",
        &format!("https://reader:s3cr%40t@{addr}/prometheus/"),
        "--ca-file",
        &ca,
        "--launch",
        "orders-v2",
        "--min-compared",
        "1",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("s3cr"), "the password leaked: {stdout}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        v["source"]["endpoints"][0],
        format!("https://{addr}/prometheus/").as_str()
    );
    // Two Envoys scraped: every counter of envoy_stats.json doubled.
    assert_eq!(v["launches"][0]["compared"], 56);
    let heads = seen.heads();
    let queries = darklaunch_report::prom::queries(&Default::default()).len();
    assert_eq!(heads.len(), queries, "one request per query");
    for head in &heads {
        assert!(
            head.starts_with("GET /prometheus/api/v1/query?query="),
            "{head}"
        );
        // base64("reader:s3cr@t")
        assert_eq!(
            header(head, "authorization"),
            Some("Basic cmVhZGVyOnMzY3JAdA==")
        );
    }
}

#[test]
fn rotated_token_is_read_at_every_request() {
    let scratch = Scratch::new("token-rotation");
    let (ca_pem, config) = pki();
    let ca = scratch.write("ca.pem", &ca_pem);
    let token = scratch.write("token", "first\n");
    let (addr, seen) = https_server(config, envoy_answer);
    let options = HttpOptions {
        bearer_token_file: Some(token.clone()),
        ca_file: Some(ca),
        ..HttpOptions::default()
    };
    let client = Client::new(&options, Duration::from_secs(30)).unwrap();
    let url = format!("https://{addr}/stats");
    assert_eq!(client.get(&url).unwrap(), ENVOY_STATS);
    scratch.write("token", "second\n");
    assert_eq!(client.get(&url).unwrap(), ENVOY_STATS);
    let tokens: Vec<_> = seen
        .heads()
        .iter()
        .map(|h| header(h, "authorization").unwrap().to_string())
        .collect();
    assert_eq!(tokens, ["Bearer first", "Bearer second"]);
}

#[test]
fn without_ca_file_the_handshake_is_refused() {
    let (_, config) = pki();
    let (addr, seen) = https_server(config, envoy_answer);
    let out = report(&["--envoy", &format!("https://{addr}"), "--timeout", "30"]);
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.trim_end();
    assert!(!line.contains('\n'), "one line: {stderr}");
    assert!(
        line.starts_with(&format!("darklaunch-report: GET https://{addr}/stats?")),
        "{line}"
    );
    assert!(
        line.contains("TLS: invalid peer certificate: UnknownIssuer"),
        "{line}"
    );
    assert!(line.contains("--ca-file"), "{line}");
    assert!(seen.heads().is_empty(), "no request went through");
    // The same server, trusted: answered.
    let scratch = Scratch::new("refused");
    let (ca_pem, config) = pki();
    let ca = scratch.write("ca.pem", &ca_pem);
    let (addr, _) = https_server(config, envoy_answer);
    let out = report(&[
        "--envoy",
        &format!("https://{addr}"),
        "--ca-file",
        &ca,
        "--min-compared",
        "1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
