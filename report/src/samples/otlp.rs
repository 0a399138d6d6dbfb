//! `--listen ADDR`: an OTLP/HTTP receiver for the samples the filter posts
//! (`capture.cluster`): `POST /v1/logs` with an ExportLogsServiceRequest
//! in the OTLP JSON encoding. Each log record's `body.stringValue` is read
//! like a line of a log file (the `darklaunch sample ` marker, or a bare
//! JSON object); other records are ignored.
//!
//! Runs on [`crate::serve`]'s server until `--count` samples or
//! `--duration` seconds; `--save FILE` appends each sample to FILE as a
//! `darklaunch sample {json}` line as it arrives, so an interrupted run
//! loses nothing (`samples FILE` reads it back).

use super::read::{Collection, MARKER};
use crate::serve::{self, Answer, Body, Request};
use serde::Deserialize;
use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Largest request body taken (413 past it).
pub const MAX_BODY: usize = 4 << 20;
pub const PATH: &str = "/v1/logs";

// The part of an ExportLogsServiceRequest read here. OTLP JSON names are
// lowerCamelCase; the protobuf names are accepted too.
#[derive(Deserialize)]
struct Export {
    #[serde(default, rename = "resourceLogs", alias = "resource_logs")]
    resource_logs: Option<Vec<ResourceLogs>>,
}

#[derive(Deserialize)]
struct ResourceLogs {
    #[serde(default, rename = "scopeLogs", alias = "scope_logs")]
    scope_logs: Option<Vec<ScopeLogs>>,
}

#[derive(Deserialize)]
struct ScopeLogs {
    #[serde(default, rename = "logRecords", alias = "log_records")]
    log_records: Option<Vec<LogRecord>>,
}

#[derive(Deserialize)]
struct LogRecord {
    #[serde(default)]
    body: Option<AnyValue>,
}

#[derive(Deserialize)]
struct AnyValue {
    #[serde(default, rename = "stringValue", alias = "string_value")]
    string_value: Option<String>,
}

/// The record bodies of an ExportLogsServiceRequest (`None` for a record
/// without a string body).
pub fn record_bodies(json: &[u8]) -> Result<Vec<Option<String>>, String> {
    let export: Export = serde_json::from_slice(json)
        .map_err(|e| format!("not an OTLP JSON ExportLogsServiceRequest: {e}"))?;
    Ok(export
        .resource_logs
        .unwrap_or_default()
        .into_iter()
        .flat_map(|r| r.scope_logs.unwrap_or_default())
        .flat_map(|s| s.log_records.unwrap_or_default())
        .map(|r| r.body.and_then(|b| b.string_value))
        .collect())
}

/// The log line `--save` writes for one sample: its JSON on one line.
pub fn save_line(json: &str) -> String {
    let one_line = if json.contains(['\n', '\r']) {
        serde_json::from_str::<serde_json::Value>(json)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| json.replace(['\n', '\r'], " "))
    } else {
        json.to_string()
    };
    format!("{}{one_line}\n", String::from_utf8_lossy(MARKER))
}

/// The receiver's state, shared by the connection threads.
pub struct Receiver {
    pub collection: Mutex<Collection>,
    save: Option<Mutex<File>>,
    /// `--count`.
    count: Option<u64>,
    received: AtomicU64,
    requests: AtomicU64,
    /// A write to `--save` failed.
    pub save_failed: AtomicBool,
}

/// The media type of a content-type, lower-case, without parameters.
fn media_type(v: &str) -> String {
    v.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn text(status: u16, message: &str) -> Answer {
    (status, "text/plain; charset=utf-8", format!("{message}\n"))
}

impl Receiver {
    pub fn new(source: String, save: Option<File>, count: Option<u64>) -> Receiver {
        let mut c = Collection::default();
        c.sources.push(source);
        Receiver {
            collection: Mutex::new(c),
            save: save.map(Mutex::new),
            count,
            received: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            save_failed: AtomicBool::new(false),
        }
    }

    /// `--count` samples have arrived.
    pub fn done(&self) -> bool {
        self.count
            .is_some_and(|n| self.received.load(Ordering::Acquire) >= n)
    }

    /// Answers one request; bad records are reported on `err`.
    pub fn answer(&self, req: &Request, err: &mut dyn Write) -> Answer {
        let path = req.target.split('?').next().unwrap_or_default();
        if path != PATH {
            return text(404, "not found: OTLP/HTTP logs go to POST /v1/logs");
        }
        if req.method != "POST" {
            return text(405, "method not allowed: POST /v1/logs");
        }
        let ctype = media_type(req.header("content-type").unwrap_or_default());
        if ctype == "application/x-protobuf" || ctype == "application/protobuf" {
            return text(
                415,
                "only OTLP/HTTP JSON is accepted (content-type: application/json), not protobuf: \
                 set the exporter's protocol to http/json",
            );
        }
        if ctype != "application/json" {
            return text(
                415,
                "only OTLP/HTTP JSON is accepted: the content-type must be application/json",
            );
        }
        if let Some(enc) = req.header("content-encoding") {
            if !enc.eq_ignore_ascii_case("identity") {
                return text(
                    415,
                    &format!("content-encoding {enc} is not accepted: send the body uncompressed"),
                );
            }
        }
        let bytes = match &req.body {
            Body::Read(b) => b,
            Body::TooLarge(n) => {
                return text(
                    413,
                    &format!("request body of {n} bytes is over the limit of {MAX_BODY} bytes"),
                )
            }
            Body::Chunked => {
                return text(
                    411,
                    "a content-length is required (chunked bodies are not read)",
                )
            }
        };
        let bodies = match record_bodies(bytes) {
            Ok(b) => b,
            Err(e) => return text(400, &e),
        };
        let n = self.requests.fetch_add(1, Ordering::AcqRel) + 1;
        let Ok(mut c) = self.collection.lock() else {
            return text(500, "receiver state lost");
        };
        for (i, body) in bodies.iter().enumerate() {
            let record = i as u64 + 1;
            let Some(body) = body else {
                c.lines += 1;
                c.without_sample += 1;
                continue;
            };
            let source = format!("request {n} record {record}");
            if let Some(json) = c.add(&source, None, body.as_bytes(), err) {
                self.save(&json, err);
                self.received.fetch_add(1, Ordering::AcqRel);
            }
        }
        (200, "application/json", "{}".to_string())
    }

    fn save(&self, json: &str, err: &mut dyn Write) {
        let Some(file) = &self.save else { return };
        let line = save_line(json);
        let result = match file.lock() {
            Ok(mut f) => f.write_all(line.as_bytes()),
            Err(_) => Err(std::io::Error::other("lock poisoned")),
        };
        if let Err(e) = result {
            if !self.save_failed.swap(true, Ordering::AcqRel) {
                let _ = writeln!(err, "darklaunch-report samples: --save: {e}");
            }
        }
    }
}

/// Serves `listener` until `receiver` has its count or `duration` passes.
pub fn receive(listener: &TcpListener, receiver: &Receiver, duration: Option<Duration>) {
    let start = Instant::now();
    let limits = serve::Limits {
        max_body: MAX_BODY,
        ..serve::Limits::default()
    };
    let answer = |req: &Request| receiver.answer(req, &mut std::io::stderr());
    let stop = || receiver.done() || duration.is_some_and(|d| start.elapsed() >= d);
    serve::run_until(listener, &limits, &answer, &stop);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::sample::tests::EXAMPLE;

    fn export(bodies: &[Option<&str>]) -> String {
        let records: Vec<serde_json::Value> = bodies
            .iter()
            .map(|b| match b {
                Some(b) => serde_json::json!({"severityNumber": 9, "eventName": "darklaunch.sample", "body": {"stringValue": b}}),
                None => serde_json::json!({"body": {"kvlistValue": {"values": []}}}),
            })
            .collect();
        serde_json::json!({"resourceLogs": [{"resource": {}, "scopeLogs": [{"scope": {"name": "darklaunch"}, "logRecords": records}]}]}).to_string()
    }

    fn post(ctype: &str, body: &str) -> Request {
        Request {
            method: "POST".into(),
            target: "/v1/logs".into(),
            headers: vec![("content-type".into(), ctype.into())],
            body: Body::Read(body.as_bytes().to_vec()),
        }
    }

    #[test]
    fn records() {
        let r = Receiver::new("otlp".into(), None, Some(2));
        let mut err = Vec::new();
        let body = export(&[Some(EXAMPLE), None, Some("plain text"), Some(r#"{"v":2}"#)]);
        let a = r.answer(&post("application/json; charset=utf-8", &body), &mut err);
        assert_eq!(a, (200, "application/json", "{}".to_string()));
        assert!(!r.done());
        let a = r.answer(
            &post(
                "application/json",
                &export(&[Some(&format!("x darklaunch sample {EXAMPLE}"))]),
            ),
            &mut err,
        );
        assert_eq!(a.0, 200);
        assert!(r.done());
        let c = r.collection.lock().unwrap();
        assert_eq!(
            (c.samples.len(), c.lines, c.without_sample, c.bad.len()),
            (2, 5, 2, 1)
        );
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "request 1 record 4: sample format version 2 is not supported (this darklaunch-report reads version 1)\n"
        );
    }

    #[test]
    fn refusals() {
        let r = Receiver::new("otlp".into(), None, None);
        let mut err = Vec::new();
        let mut answer = |req: Request| r.answer(&req, &mut err);
        let a = answer(post("application/x-protobuf", ""));
        assert_eq!(a.0, 415);
        assert!(a.2.contains("only OTLP/HTTP JSON is accepted"), "{}", a.2);
        assert_eq!(answer(post("text/plain", "{}")).0, 415);
        assert_eq!(answer(post("application/json", "{not json")).0, 400);
        assert_eq!(
            answer(Request {
                target: "/v1/traces".into(),
                ..post("application/json", "{}")
            })
            .0,
            404
        );
        assert_eq!(
            answer(Request {
                method: "GET".into(),
                ..post("application/json", "")
            })
            .0,
            405
        );
        assert_eq!(
            answer(Request {
                body: Body::TooLarge(5 << 20),
                ..post("application/json", "")
            })
            .0,
            413
        );
        assert_eq!(
            answer(Request {
                body: Body::Chunked,
                ..post("application/json", "")
            })
            .0,
            411
        );
        let mut gz = post("application/json", "{}");
        gz.headers.push(("content-encoding".into(), "gzip".into()));
        assert_eq!(answer(gz).0, 415);
        // An empty export is fine.
        assert_eq!(answer(post("application/json", "{}")).0, 200);
        // Deep nesting, in a known field or an ignored one, is a 400.
        for deep in [
            format!("{{\"resourceLogs\":{}", "[".repeat(200_000)),
            format!("{{\"other\":{}", "[".repeat(200_000)),
        ] {
            assert_eq!(answer(post("application/json", &deep)).0, 400);
        }
    }

    #[test]
    fn saved_lines() {
        assert_eq!(save_line(r#"{"v":1}"#), "darklaunch sample {\"v\":1}\n");
        assert_eq!(
            save_line("{\n \"v\": 1\n}"),
            "darklaunch sample {\"v\":1}\n"
        );
    }
}
