//! `darklaunch-report samples` (the binary, end to end): the fixture
//! report/tests/fixtures/samples.log (see samples_log.py) as text, JSON and
//! HTML; every kind of bad input; the OTLP/HTTP receiver over loopback.

// Test code: helpers outside `#[test]` functions fail loudly too, like the
// tests (clippy.toml allows these inside tests only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/samples.log");
const BIN: &str = env!("CARGO_BIN_EXE_darklaunch-report");

/// A fresh directory for one test, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let p =
            std::env::temp_dir().join(format!("darklaunch-samples-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_string_lossy().into_owned()
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `samples ARGS` with `stdin`; (exit code, stdout, stderr).
fn samples(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .arg("samples")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        status.code().unwrap(),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

fn json(args: &[&str], stdin: &[u8]) -> (i32, Value, String) {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let (code, out, err) = samples(&a, stdin);
    (
        code,
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")),
        err,
    )
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|g| g[key].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_fixture_as_text() {
    let (code, out, err) = samples(&[FIXTURE], b"");
    assert_eq!((code, err.as_str()), (0, ""));
    // Sections in this order, groups largest first, ties by name.
    let at = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in\n{out}"))
    };
    assert!(
        at("by field") < at("headers (")
            && at("headers (") < at("\nstatus")
            && at("\nstatus") < at("by shape")
    );
    assert!(at("  /items/*/price    7 samples  value, type") < at("  /results/*/score  2 samples"));
    assert!(at("  /currency ") < at("  /description ") && at("  /description ") < at("  /extra "));
    assert!(out.contains("/items/3/price    10.0 → 10.5"), "{out}");
    assert!(out.contains("\"EUR\" → (absent)"));
    assert!(out.contains("(absent) → true"));
    assert!(out.contains("[redacted] → [redacted]"));
    assert!(out.contains("(req 5f0c1a2b…, orders-v2)"));
    assert!(out.contains("  x-cache     2 samples  MISS → HIT"));
    assert!(out.contains("  x-version   1 sample   v1 → v2"));
    assert!(out.contains("  200 → 500  2 samples  POST /orders"));
    assert!(out.contains("/error  (absent) → \"upstream timeout\""));
    assert!(at("200 → 500") < at("200 → 404"));
    assert!(out.contains("  1b7e44d2  4 samples  body"));
    // Three examples by default: the fourth price sample is not shown.
    assert_eq!(out.matches("/items/0/price").count(), 1);
    assert!(out.ends_with(
        "16 samples read (orders-v2 13, search-v3 3); 10 lines without a sample; 0 bad lines; \
         1 sample cut by the filter to fit capture.max_bytes\n"
    ));
    // Deterministic.
    assert_eq!(samples(&[FIXTURE], b"").1, out);
}

#[test]
fn the_fixture_as_json() {
    let (code, v, _) = json(&[FIXTURE, "--examples", "1"], b"");
    assert_eq!(code, 0);
    assert_eq!(v["schema"], "darklaunch-samples/v1");
    let s = &v["summary"];
    assert_eq!(s["samples"], 16);
    assert_eq!(s["samples_read"], 16);
    assert_eq!(s["lines"], 26);
    assert_eq!(s["lines_without_sample"], 10);
    assert_eq!(s["bad_lines"], 0);
    assert_eq!(s["truncated"], 1);
    assert_eq!(
        s["launches"],
        serde_json::json!({"orders-v2": 13, "search-v3": 3})
    );
    assert_eq!(
        names(&v["fields"], "field"),
        [
            "/items/*/price",
            "/results/*/score",
            "/currency",
            "/description",
            "/extra",
            "/note",
            "/results",
            "/user/ssn"
        ]
    );
    let price = &v["fields"][0];
    assert_eq!(
        (price["samples"].as_u64(), price["differences"].as_u64()),
        (Some(7), Some(8))
    );
    assert_eq!(price["kinds"], serde_json::json!(["value", "type"]));
    assert_eq!(price["launches"], serde_json::json!(["orders-v2"]));
    assert_eq!(
        price["examples"],
        serde_json::json!([{
            "launch": "orders-v2", "request_id": "5f0c1a2b-77aa-4c1e-9d0e-0123456789ab",
            "method": "GET", "path": "/orders/7",
            "pointer": "/items/3/price", "field": "/items/*/price", "kind": "value",
            "primary": "10.0", "dark": "10.5", "redacted": false
        }])
    );
    let currency = v["fields"][2]["examples"][0].as_object().unwrap();
    assert_eq!(
        currency["dark"],
        Value::Null,
        "an absent side is null, not left out"
    );
    assert_eq!(currency["primary"], "\"EUR\"");
    let error = &v["statuses"][0]["examples"][0]["differences"][0];
    assert_eq!(
        (&error["primary"], &error["dark"]),
        (&Value::Null, &Value::from("\"upstream timeout\""))
    );
    assert_eq!(
        names(&v["headers"], "header"),
        ["x-cache", "set-cookie", "x-version"]
    );
    assert_eq!(v["headers"][0]["examples"][0]["primary"], "MISS");
    let st: Vec<(u64, u64, u64)> = v["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["primary"].as_u64().unwrap(),
                g["dark"].as_u64().unwrap(),
                g["samples"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(st, [(200, 500, 2), (200, 404, 1)]);
    assert_eq!(
        v["statuses"][0]["examples"][0]["differences"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(v["shapes"][0]["shape"], "1b7e44d2");
    assert_eq!(v["shapes"][0]["samples"], 4);
    assert_eq!(v["errors"], serde_json::json!([]));

    // --launch narrows the groups, not what was read.
    let (_, s3, _) = json(&[FIXTURE, "--launch", "search-v3"], b"");
    assert_eq!(
        (
            s3["summary"]["samples"].as_u64(),
            s3["summary"]["samples_read"].as_u64()
        ),
        (Some(3), Some(16))
    );
    assert_eq!(
        names(&s3["fields"], "field"),
        ["/results/*/score", "/results"]
    );
    assert_eq!(s3["statuses"], serde_json::json!([]));
}

#[test]
fn stdin_and_crlf_read_the_same() {
    let text = std::fs::read(FIXTURE).unwrap();
    let (_, from_file, _) = json(&[FIXTURE], b"");
    let crlf = String::from_utf8(text.clone())
        .unwrap()
        .replace('\n', "\r\n");
    for (args, input) in [(&[][..], text.clone()), (&["-"][..], crlf.into_bytes())] {
        let (code, v, err) = json(args, &input);
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(v["summary"]["sources"], serde_json::json!(["-"]));
        assert_eq!(v["fields"], from_file["fields"]);
        assert_eq!(v["statuses"], from_file["statuses"]);
        assert_eq!(v["summary"]["samples"], 16);
    }
}

/// A sample line with `json` after Envoy's prefix.
fn line(json: &str) -> String {
    format!("[2026-12-01 00:12:03.123][41][info][wasm] [source/extensions/common/wasm/context.cc:1192] wasm log darklaunch darklaunch: darklaunch sample {json}\n")
}

const GOOD: &str = r#"{"v":1,"launch":"l","request_id":"r","kinds":["body"],"fields":["/a"],"primary":{"status":200},"dark":{"status":200},"differences":[{"pointer":"/a","field":"/a","kind":"value","primary":"1","dark":"2"}]}"#;

#[test]
fn bad_lines_are_reported_and_reading_goes_on() {
    let dir = Dir::new("bad");
    let mut input = Vec::new();
    input.extend(line(GOOD).bytes()); // 1
    input.extend(line(&GOOD[..60]).bytes()); // 2 truncated
    input.extend(line("garbage]]").bytes()); // 3
    input.extend(line(&GOOD.replace("\"kinds\":[\"body\"]", "\"kinds\":\"body\"")).bytes()); // 4
    input.extend(line(&GOOD.replace("\"v\":1", "\"v\":2")).bytes()); // 5
    input.extend(line(&GOOD.replace(",\"differences\":[{\"pointer\":\"/a\",\"field\":\"/a\",\"kind\":\"value\",\"primary\":\"1\",\"dark\":\"2\"}]", "")).bytes()); // 6
    input.extend(b"darklaunch sample {\"v\":1,\"launch\":\"\xff\xfe\"}\n"); // 7
    input.extend(b"an Envoy line with \xff bytes, not a sample\n"); // 8
    input.extend(b"darklaunch sample "); // 9: over 1 MiB, never held whole
    input.extend(std::iter::repeat_n(b'x', 2 << 20));
    input.push(b'\n');
    input.extend(format!("{GOOD}\r\n").bytes()); // 10
    input.extend(b"   \n"); // 11
    input.extend(line(&format!("{GOOD} trailing")).bytes()); // 12
    input.extend(b"{\"v\":1,\"launch\":\"l\",\"kinds\":[],\"primary\":{\"status\":\"200\"}"); // 13, no newline
    let file = dir.file("bad.log", &input);

    let expected = [
        "2: truncated sample JSON (EOF while parsing a string at column 200)".to_string(),
        "3: invalid sample JSON: expected value at column 141".into(),
        "4: not a sample: kinds: invalid type: string \"body\", expected a sequence".into(),
        "5: sample format version 2 is not supported (this darklaunch-report reads version 1)"
            .into(),
        "6: not a sample: missing field `differences`".into(),
        "7: invalid UTF-8 at byte 36 of the line".into(),
        "9: line longer than 1048576 bytes, skipped".into(),
        "12: invalid sample JSON: trailing characters at column 345".into(),
        "13: truncated sample JSON (EOF while parsing an object at column 57)".into(),
    ];
    let (code, v, err) = json(&[&file], b"");
    assert_eq!(code, 0, "bad lines alone do not fail the run");
    let lines: Vec<&str> = err.lines().collect();
    let want: Vec<String> = expected.iter().map(|e| format!("{file}:{e}")).collect();
    assert_eq!(lines, want);
    assert_eq!(v["summary"]["samples"], 2);
    assert_eq!(v["summary"]["bad_lines"], 9);
    assert_eq!(v["summary"]["lines"], 13);
    assert_eq!(v["summary"]["lines_without_sample"], 2);
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 9);
    assert_eq!(errors[0]["source"], file.as_str());
    assert_eq!(errors[0]["line"], 2);
    assert_eq!(
        errors[6]["message"],
        "line longer than 1048576 bytes, skipped"
    );

    let (code, text, _) = samples(&[&file], b"");
    assert_eq!(code, 0);
    assert!(
        text.ends_with(
            "2 samples read (l 2); 2 lines without a sample; 9 bad lines (listed on stderr)\n"
        ),
        "{text}"
    );
    assert_eq!(samples(&["--strict", &file], b"").0, 1);
    assert_eq!(samples(&["--strict", FIXTURE], b"").0, 0);
    // stdin is `-` in messages.
    let (_, _, err) = samples(&[], b"darklaunch sample {\n");
    assert_eq!(
        err,
        "-:1: truncated sample JSON (EOF while parsing an object at column 19)\n"
    );
}

#[test]
fn empty_missing_and_unreadable_inputs() {
    let dir = Dir::new("inputs");
    let empty = dir.file("empty.log", b"");
    let (code, out, err) = samples(&[&empty], b"");
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(out.contains("\nno samples\n"), "{out}");
    assert!(
        out.ends_with("0 samples read; 0 lines without a sample; 0 bad lines\n"),
        "{out}"
    );

    // A missing file or a directory: exit 4, the other files still shown.
    let missing = dir.path("missing.log");
    let (code, v, err) = json(&[&missing, FIXTURE, &dir.0.to_string_lossy()], b"");
    assert_eq!(code, 4);
    assert_eq!(v["summary"]["samples"], 16);
    assert_eq!(v["summary"]["unreadable"], 2);
    assert_eq!(v["summary"]["bad_lines"], 0);
    assert!(
        err.starts_with(&format!(
            "{missing}: cannot read: No such file or directory"
        )),
        "{err}"
    );
    assert!(err.contains(":1: read error: Is a directory"), "{err}");
    assert_eq!(v["errors"][0]["line"], Value::Null);

    assert_eq!(samples(&["--frobnicate"], b"").0, 4);
    assert_eq!(samples(&["--count", "1"], b"").0, 4);
    let (code, out, _) = samples(&["--help"], b"");
    assert_eq!(code, 0);
    assert!(out.contains("EXIT CODES") && out.contains("--listen ADDR"));
}

#[test]
fn html_page() {
    let dir = Dir::new("html");
    let page = dir.path("out.html");
    let (code, out, err) = samples(&[FIXTURE, "--html", &page], b"");
    assert_eq!(code, 0);
    assert!(
        out.starts_with("darklaunch samples"),
        "the text view still goes to stdout"
    );
    assert!(err.contains(&format!("wrote {page}")));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("data-field=\"/items/*/price\""));
    assert!(html.contains("data-status=\"200 → 500\""));
    assert!(html.contains("&lt;script&gt;alert(\\&quot;xss\\&quot;)&lt;/script&gt;"));
    // Two script elements (the data and the filter), nothing else opens one.
    assert_eq!(html.matches("<script").count(), 2);
    assert!(!html.contains("<!--"));
    for attr in ["src=", "href=", "url(", "@import"] {
        assert!(!html.contains(attr), "{attr} in the page");
    }
    // An unwritable page is an error, after the view.
    let (code, out, err) = samples(&[FIXTURE, "--html", &dir.path("no/such/dir/x.html")], b"");
    assert_eq!(code, 4);
    assert!(out.contains("16 samples read"));
    assert!(err.contains("--html"), "{err}");
}

// ---------------------------------------------------------------------------
// --listen
// ---------------------------------------------------------------------------

/// The receiver process, killed on drop (also when an assertion fails).
struct Receiver {
    child: Option<Child>,
    addr: String,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Receiver {
    fn start(args: &[&str]) -> Receiver {
        let mut child = Command::new(BIN)
            .args(["samples", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        stderr.read_line(&mut line).unwrap();
        let addr = line
            .split("listening on http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        assert!(!addr.ends_with(":0"), "{line}");
        // Keep stderr drained; it is read back at the end.
        let mut rest = String::new();
        let reader = std::thread::spawn(move || {
            let _ = stderr.read_to_string(&mut rest);
            rest
        });
        child.stderr = None;
        STDERR.with(|s| *s.borrow_mut() = Some(reader));
        Receiver {
            child: Some(child),
            addr,
        }
    }

    /// Waits for the receiver to stop by itself: (code, stdout, stderr).
    fn finish(mut self) -> (i32, String, String) {
        let mut child = self.child.take().unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let code = child.wait().unwrap().code().unwrap();
        let err = STDERR.with(|s| s.borrow_mut().take().unwrap().join().unwrap());
        (code, out, err)
    }
}

thread_local! {
    static STDERR: std::cell::RefCell<Option<std::thread::JoinHandle<String>>> = const { std::cell::RefCell::new(None) };
}

/// (status, body) of one request.
fn request(addr: &str, method: &str, target: &str, ctype: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: collector\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_string(),
    )
}

/// An ExportLogsServiceRequest with one record per body, as the filter
/// posts them (one per request), or several.
fn export(bodies: &[&str]) -> String {
    let records: Vec<Value> = bodies
        .iter()
        .map(|b| {
            serde_json::json!({
                "timeUnixNano": "1764547923123000000", "observedTimeUnixNano": "1764547923123000000",
                "severityNumber": 9, "severityText": "INFO", "eventName": "darklaunch.sample",
                "body": {"stringValue": b},
                "attributes": [{"key": "darklaunch.launch", "value": {"stringValue": "l"}}]
            })
        })
        .collect();
    serde_json::json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "darklaunch"}}]},
        "scopeLogs": [{"scope": {"name": "darklaunch", "version": "0.1.0"}, "logRecords": records}]
    }]})
    .to_string()
}

/// The fixture's sample JSON texts.
fn fixture_samples() -> Vec<String> {
    std::fs::read_to_string(FIXTURE)
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split_once("darklaunch sample ")
                .map(|(_, j)| j.to_string())
        })
        .collect()
}

#[test]
fn otlp_receiver() {
    let dir = Dir::new("listen");
    let saved = dir.path("saved.log");
    let all = fixture_samples();
    let r = Receiver::start(&[
        "--count",
        "3",
        "--save",
        &saved,
        "--json",
        "--examples",
        "5",
    ]);
    let json = "application/json";
    // Refused: nothing taken.
    let (status, body) = request(
        &r.addr,
        "POST",
        "/v1/logs",
        "application/x-protobuf",
        b"\x0a\x00",
    );
    assert_eq!(status, 415);
    assert!(body.contains("only OTLP/HTTP JSON is accepted"), "{body}");
    assert_eq!(request(&r.addr, "POST", "/v1/traces", json, b"{}").0, 404);
    assert_eq!(request(&r.addr, "GET", "/v1/logs", json, b"").0, 405);
    assert_eq!(
        request(&r.addr, "POST", "/v1/logs", json, b"{\"resourceLogs\":").0,
        400
    );
    let big = export(&[&"x".repeat(5 << 20)]);
    let (status, body) = request(&r.addr, "POST", "/v1/logs", json, big.as_bytes());
    assert_eq!(status, 413, "{body}");
    // Taken: a record that is not a sample is ignored, a bad one reported.
    let (status, body) = request(
        &r.addr,
        "POST",
        "/v1/logs",
        json,
        export(&[&all[0], "hello", r#"{"v":2}"#]).as_bytes(),
    );
    assert_eq!((status, body.as_str()), (200, "{}"));
    // One saved line per sample, as it arrives.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&saved)
        .unwrap_or_default()
        .lines()
        .count()
        < 1
    {
        assert!(std::time::Instant::now() < deadline, "nothing saved");
        std::thread::sleep(Duration::from_millis(20));
    }
    let two = export(&[&all[1], &format!("x darklaunch sample {}", all[2])]);
    assert_eq!(
        request(
            &r.addr,
            "POST",
            "/v1/logs",
            "application/json; charset=utf-8",
            two.as_bytes()
        )
        .0,
        200
    );

    // Three samples: it stops by itself and prints the view.
    let (code, out, err) = r.finish();
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["summary"]["samples"], 3);
    assert_eq!(v["summary"]["bad_lines"], 1);
    assert_eq!(v["summary"]["lines"], 5);
    assert_eq!(v["summary"]["lines_without_sample"], 1);
    assert_eq!(v["fields"][0]["field"], "/items/*/price");
    assert_eq!(v["fields"][0]["samples"], 3);
    assert!(v["summary"]["sources"][0]
        .as_str()
        .unwrap()
        .ends_with("/v1/logs"));
    assert_eq!(
        err.trim(),
        "request 1 record 3: sample format version 2 is not supported (this darklaunch-report reads version 1)"
    );
    let saved_text = std::fs::read_to_string(&saved).unwrap();
    let lines: Vec<&str> = saved_text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], format!("darklaunch sample {}", all[0]));
    // Read back: the same view.
    let (code, back, _) = samples(&["--json", "--examples", "5", &saved], b"");
    assert_eq!(code, 0);
    let back: Value = serde_json::from_str(&back).unwrap();
    assert_eq!(back["fields"], v["fields"]);
    assert_eq!(back["shapes"], v["shapes"]);
}

#[test]
fn receiver_duration_and_errors() {
    let r = Receiver::start(&["--duration", "0.3"]);
    let started = std::time::Instant::now();
    let (code, out, _) = r.finish();
    assert_eq!(code, 0);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(out.contains("no samples"), "{out}");
    // Listening needs a stop condition; an address in use is an error.
    assert_eq!(samples(&["--listen", "127.0.0.1:0"], b"").0, 4);
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (code, _, err) = samples(&["--listen", &addr, "--count", "1"], b"");
    assert_eq!(code, 4);
    assert!(err.contains(&format!("--listen {addr}")), "{err}");
    let dir = Dir::new("save-error");
    let (code, _, err) = samples(
        &[
            "--listen",
            "127.0.0.1:0",
            "--count",
            "1",
            "--save",
            &dir.path("no/dir/s.log"),
        ],
        b"",
    );
    assert_eq!(code, 4);
    assert!(err.contains("--save"), "{err}");
    assert!(Path::new(FIXTURE).exists());
}
