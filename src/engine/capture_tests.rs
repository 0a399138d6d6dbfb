//! Samples (`capture`) through the engine, against the fake host: what a
//! sample holds and never holds, the minute's budget and its room for new
//! shapes, the size bound, and the OTLP export.

use serde_json::Value;

use super::fake::{Answer, Process, Worker};
use crate::host::Level;

const NOW: u64 = 1_700_000_000_000;

fn worker(capture: &str, extra: &str) -> (Process, Worker) {
    let p = Process::new(NOW, &["dark", "otel"]);
    let cfg = format!(
        r#"{{"launches":[{{"name":"l","dark_cluster":"dark","sample":{{"percent":100}},"capture":{capture}{extra}}}]}}"#
    );
    let w = Worker::new(&p, 1, &cfg);
    (p, w)
}

/// One pair: the primary answers `primary`, the dark side `dark` (JSON,
/// status 200 unless given), with the request's `extra` headers.
fn pair(
    w: &mut Worker,
    path: &str,
    extra: &[(&str, &str)],
    primary: (u16, &str),
    dark: (u16, &str),
) {
    let mut s = w.get(path, extra);
    w.response_headers(
        &mut s,
        primary.0,
        &[
            ("content-type", "application/json"),
            ("x-v", "1"),
            ("set-cookie", "sid=SECRET-SC"),
        ],
        false,
    );
    w.response_body(&mut s, primary.1.as_bytes(), true);
    w.done(&mut s);
    w.doorbell();
    let call = w
        .outstanding()
        .into_iter()
        .find(|c| c.cluster == "dark")
        .unwrap();
    let mut answer = Answer::json(dark.0, dark.1);
    if let Answer::Response(_, h, _) = &mut answer {
        h.push(("x-v".into(), b"2".to_vec()));
        h.push(("set-cookie".into(), b"sid=SECRET-SC2".to_vec()));
    }
    w.answer(call.token, answer);
}

fn samples(p: &Process) -> Vec<Value> {
    p.logs(Level::Info)
        .iter()
        .filter_map(|l| l.strip_prefix("darklaunch sample "))
        .map(|j| serde_json::from_str(j).unwrap())
        .collect()
}

#[test]
fn a_sample_shows_what_differs_and_nothing_secret() {
    let (p, mut w) = worker(
        r#"{"per_minute":10,"redact":["/ssn","/user/card"],"request_headers":["x-tenant"]}"#,
        r#","compare":{"headers":["x-v","set-cookie"]}"#,
    );
    pair(
        &mut w,
        "/orders/7?user=SECRET-Q&page=2",
        &[
            ("authorization", "Bearer SECRET-A"),
            ("cookie", "sid=SECRET-C"),
            ("x-tenant", "acme"),
            ("x-other", "SECRET-H"),
        ],
        (
            200,
            r#"{"price":10.0,"ssn":"SECRET-1","items":[{"a":1},{"a":2}],"user":{"card":"SECRET-2","n":1}}"#,
        ),
        (
            200,
            r#"{"price":10.5,"ssn":"SECRET-3","items":[{"a":1},{"a":3}],"user":{"card":"SECRET-4"}}"#,
        ),
    );
    assert_eq!(p.stat("darklaunch.l.sample.captured"), 1);
    let all = samples(&p);
    assert_eq!(all.len(), 1);
    let s = &all[0];
    assert_eq!(s["v"], 1);
    assert_eq!(
        (s["launch"].as_str(), s["method"].as_str()),
        (Some("l"), Some("GET"))
    );
    assert_eq!(s["time"], "2023-11-14T22:13:20.000Z");
    assert_eq!(s["request_id"], "req-1");
    assert_eq!(s["path"], "/orders/7");
    assert_eq!(s["query"], "user=REDACTED&page=REDACTED");
    assert_eq!(
        s["request_headers"],
        serde_json::json!({"x-tenant": "acme"})
    );
    assert_eq!(s["kinds"], serde_json::json!(["headers", "body"]));
    assert_eq!(s["headers"], serde_json::json!(["x-v", "set-cookie"]));
    assert_eq!(s["primary"]["headers"]["x-v"], "1");
    assert_eq!(s["dark"]["headers"]["x-v"], "2");
    assert_eq!(s["dark"]["headers"]["set-cookie"], "[redacted]");
    assert!(
        s["primary"].get("body").is_none(),
        "bodies are off by default"
    );
    let diffs = s["differences"].as_array().unwrap();
    let by = |p: &str| diffs.iter().find(|d| d["pointer"] == p).unwrap().clone();
    assert_eq!(by("/price")["primary"], "10.0");
    assert_eq!(by("/price")["dark"], "10.5");
    assert_eq!(by("/items/1/a")["field"], "/items/*/a");
    assert_eq!(by("/ssn")["redacted"], true);
    assert!(by("/ssn").get("primary").is_none());
    assert_eq!(by("/user/card")["redacted"], true);
    assert_eq!(by("/user/n")["kind"], "missing");
    let mut fields: Vec<&str> = s["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["/items/*/a", "/price", "/ssn", "/user/card", "/user/n"]
    );
    assert_eq!(s["shape"].as_str().unwrap().len(), 8);
    // No secret anywhere in the log.
    for line in p.logs(Level::Info).iter().chain(&p.logs(Level::Debug)) {
        assert!(!line.contains("SECRET"), "{line}");
    }
}

#[test]
fn bodies_redacted_and_query_values_when_asked() {
    let (p, mut w) = worker(
        r#"{"per_minute":10,"bodies":true,"query":true,"redact":["/user/*/ssn"]}"#,
        "",
    );
    pair(
        &mut w,
        "/a?x=1",
        &[],
        (200, r#"{"user":[{"ssn":"SECRET-1","id":1}],"v":1}"#),
        (200, r#"{"user":[{"ssn":"SECRET-2","id":1}],"v":2}"#),
    );
    let s = &samples(&p)[0];
    assert_eq!(s["query"], "x=1");
    assert_eq!(
        s["primary"]["body"],
        r#"{"user":[{"ssn":"[redacted]","id":1}],"v":1}"#
    );
    assert_eq!(
        s["dark"]["body"],
        r#"{"user":[{"ssn":"[redacted]","id":1}],"v":2}"#
    );
    assert!(!p.logs(Level::Info).iter().any(|l| l.contains("SECRET")));
}

#[test]
fn a_status_mismatch_counts_no_field_but_its_sample_shows_the_bodies_differences() {
    let (p, mut w) = worker(r#"{"per_minute":10}"#, "");
    pair(
        &mut w,
        "/a",
        &[],
        (200, r#"{"id":1,"name":"x"}"#),
        (500, r#"{"error":"boom"}"#),
    );
    let s = &samples(&p)[0];
    assert_eq!(s["kinds"], serde_json::json!(["status"]));
    assert_eq!(s["fields"], serde_json::json!([]));
    assert_eq!(
        (
            s["primary"]["status"].as_u64(),
            s["dark"]["status"].as_u64()
        ),
        (Some(200), Some(500))
    );
    let diffs = s["differences"].as_array().unwrap();
    assert!(diffs
        .iter()
        .any(|d| d["pointer"] == "/error" && d["dark"] == "\"boom\""));
}

#[test]
fn the_budget_keeps_room_for_a_rare_shape() {
    // 4 a minute: a frequent difference takes 2, then only new shapes.
    let (p, mut w) = worker(r#"{"per_minute":4}"#, "");
    for _ in 0..10 {
        pair(
            &mut w,
            "/a",
            &[],
            (200, r#"{"price":1}"#),
            (200, r#"{"price":2}"#),
        );
    }
    pair(
        &mut w,
        "/a",
        &[],
        (200, r#"{"rare":1}"#),
        (200, r#"{"rare":2}"#),
    );
    pair(
        &mut w,
        "/a",
        &[],
        (200, r#"{"price":1}"#),
        (200, r#"{"price":2}"#),
    );
    assert_eq!(p.stat("darklaunch.l.sample.captured"), 3);
    assert_eq!(p.stat("darklaunch.l.sample.dropped.rate"), 9);
    let fields: Vec<String> = samples(&p)
        .iter()
        .map(|s| s["fields"][0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(fields, ["/price", "/price", "/rare"]);
    // A new minute: a new budget.
    p.advance(60_000);
    pair(
        &mut w,
        "/a",
        &[],
        (200, r#"{"price":1}"#),
        (200, r#"{"price":2}"#),
    );
    assert_eq!(p.stat("darklaunch.l.sample.captured"), 4);
}

#[test]
fn the_budget_is_shared_by_the_workers() {
    let p = Process::new(NOW, &["dark"]);
    let cfg = r#"{"launches":[{"name":"l","dark_cluster":"dark","sample":{"percent":100},"capture":{"per_minute":2}}]}"#;
    let mut a = Worker::new(&p, 1, cfg);
    let mut b = Worker::new(&p, 2, cfg);
    pair(&mut a, "/a", &[], (200, r#"{"x":1}"#), (200, r#"{"x":2}"#));
    pair(&mut b, "/a", &[], (200, r#"{"y":1}"#), (200, r#"{"y":2}"#));
    pair(&mut a, "/a", &[], (200, r#"{"z":1}"#), (200, r#"{"z":2}"#));
    assert_eq!(p.stat("darklaunch.l.sample.captured"), 2);
    assert_eq!(p.stat("darklaunch.l.sample.dropped.rate"), 1);
}

#[test]
fn long_values_are_truncated_and_an_unfittable_sample_is_dropped() {
    let (p, mut w) = worker(r#"{"per_minute":10,"max_bytes":1024}"#, "");
    let long = "y".repeat(5000);
    pair(
        &mut w,
        "/a",
        &[],
        (200, r#"{"s":"short"}"#),
        (200, &format!(r#"{{"s":"{long}"}}"#)),
    );
    let line = p
        .logs(Level::Info)
        .into_iter()
        .find(|l| l.starts_with("darklaunch sample "))
        .unwrap();
    assert!(line.len() - "darklaunch sample ".len() <= 1024);
    let s = &samples(&p)[0];
    assert_eq!(s["truncated"], true);
    let dark = s["differences"][0]["dark"].as_str().unwrap();
    assert!(
        dark.starts_with("\"yyy") && dark.contains("…[truncated "),
        "{dark}"
    );
    // A path no cut can fit.
    let path = format!("/{}", "p".repeat(2000));
    pair(&mut w, &path, &[], (200, r#"{"s":1}"#), (200, r#"{"s":2}"#));
    assert_eq!(p.stat("darklaunch.l.sample.dropped.size"), 1);
    assert_eq!(p.stat("darklaunch.l.sample.captured"), 1);
}

#[test]
fn samples_are_posted_to_the_collector_from_the_root() {
    let (p, mut w) = worker(r#"{"per_minute":10,"cluster":"otel"}"#, "");
    pair(&mut w, "/a", &[], (200, r#"{"x":1}"#), (200, r#"{"x":2}"#));
    // Settled in the root (the dark answer came last): the export is queued
    // and the doorbell sends it.
    w.doorbell();
    let post = w
        .outstanding()
        .into_iter()
        .find(|c| c.cluster == "otel")
        .unwrap();
    assert_eq!(post.header(":method"), Some("POST"));
    assert_eq!(post.header(":path"), Some("/v1/logs"));
    assert_eq!(post.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&post.body).unwrap();
    let rec = &body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    let sample: Value = serde_json::from_str(rec["body"]["stringValue"].as_str().unwrap()).unwrap();
    assert_eq!(sample, samples(&p)[0]);
    w.answer(post.token, Answer::json(200, "{}"));
    assert_eq!(p.stat("darklaunch.l.sample.dropped.sink"), 0);

    // A refusing collector, and one that never answers.
    pair(&mut w, "/a", &[], (200, r#"{"y":1}"#), (200, r#"{"y":2}"#));
    w.doorbell();
    let post = w
        .outstanding()
        .into_iter()
        .find(|c| c.cluster == "otel")
        .unwrap();
    w.answer(post.token, Answer::json(503, "{}"));
    assert_eq!(p.stat("darklaunch.l.sample.dropped.sink"), 1);
    pair(&mut w, "/a", &[], (200, r#"{"z":1}"#), (200, r#"{"z":2}"#));
    w.doorbell();
    let post = w
        .outstanding()
        .into_iter()
        .find(|c| c.cluster == "otel")
        .unwrap();
    w.lose(post.token);
    p.advance(11_000);
    w.tick();
    assert_eq!(p.stat("darklaunch.l.sample.dropped.sink"), 2);
    assert_eq!(p.stat("darklaunch.l.sample.captured"), 3);
    // Never a retry.
    assert_eq!(w.sent().iter().filter(|c| c.cluster == "otel").count(), 3);
}

#[test]
fn an_unknown_collector_cluster_drops_at_the_sink_and_says_so() {
    let (p, mut w) = worker(r#"{"per_minute":10,"cluster":"nope"}"#, "");
    pair(&mut w, "/a", &[], (200, r#"{"x":1}"#), (200, r#"{"x":2}"#));
    w.doorbell();
    assert_eq!(p.stat("darklaunch.l.sample.dropped.sink"), 1);
    assert_eq!(p.stat("darklaunch.l.sample.captured"), 1);
    assert!(p
        .logs(Level::Warn)
        .iter()
        .any(|l| l.contains("no cluster 'nope'")));
}

#[test]
fn the_export_queue_and_slots_are_bounded() {
    let (p, mut w) = worker(r#"{"per_minute":600,"cluster":"otel"}"#, "");
    for i in 0..100 {
        pair(
            &mut w,
            "/a",
            &[],
            (200, &format!(r#"{{"k{i}":1}}"#)),
            (200, &format!(r#"{{"k{i}":2}}"#)),
        );
    }
    w.doorbell();
    let in_flight = w
        .outstanding()
        .iter()
        .filter(|c| c.cluster == "otel")
        .count();
    assert_eq!(in_flight, super::samples::EXPORTS_IN_FLIGHT);
    let dropped = p.stat("darklaunch.l.sample.dropped.sink");
    assert!(dropped > 0, "the queue is bounded");
    // Teardown counts what never left.
    w.teardown();
    assert_eq!(p.stat("darklaunch.l.sample.dropped.sink"), 100);
}

#[test]
fn capture_off_writes_nothing() {
    let (p, mut w) = worker(r#"{"per_minute":0}"#, "");
    pair(&mut w, "/a", &[], (200, r#"{"x":1}"#), (200, r#"{"x":2}"#));
    assert!(samples(&p).is_empty());
    assert_eq!(p.stat("darklaunch.l.sample.captured"), 0);
    assert_eq!(p.stat("darklaunch.l.sample.dropped.rate"), 0);
}
