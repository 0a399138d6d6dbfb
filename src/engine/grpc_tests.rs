//! gRPC pairs through the engine: the shadow call's framing, statuses read
//! from trailers or trailers-only headers, Envoy's own replies, and the
//! `*_grpc` counters.

use super::fake::{Answer, Process, Worker};
use crate::host::Level;

const NOW: u64 = 1_700_000_000_000;

fn worker(compare: &str) -> (Process, Worker) {
    let p = Process::new(NOW, &["dark"]);
    let config = format!(
        r#"{{"launches":[{{"name":"g","dark_cluster":"dark","sample":{{"percent":100}},
            "timeout_ms":300,"match":{{"grpc_methods":["pkg.Svc/Get"]}}{compare}}}]}}"#
    );
    let w = Worker::new(&p, 1, &config);
    (p, w)
}

fn stats(p: &Process) -> Vec<(String, i64)> {
    p.launch_stats("g")
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect()
}

fn expect(p: &Process, want: &[(&str, i64)]) {
    let want: Vec<(String, i64)> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(stats(p), want);
}

/// One framed message (uncompressed).
fn frame(msg: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

fn h(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

const MSG: &[u8] = b"\x08\x01\x12\x03abc";

/// A unary call to `path` whose request body arrives in two chunks, the
/// second one empty (as some clients end the stream).
fn call(w: &mut Worker, path: &str) -> super::Stream {
    let mut s = w.request(
        &[
            (":method", "POST"),
            (":path", path),
            (":authority", "api:50051"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("grpc-timeout", "5S"),
            ("x-user", "u1"),
        ],
        false,
    );
    w.request_body(&mut s, &frame(b"\x08\x07"), false);
    w.request_body(&mut s, b"", true);
    s
}

/// The primary answers OK with `MSG`, its status in the trailers.
fn primary_ok(w: &mut Worker, s: &mut super::Stream) {
    w.response_headers(s, 200, &[("content-type", "application/grpc")], false);
    w.response_body(s, &frame(MSG), false);
    w.response_trailers_with(s, &[("grpc-status", "0")]);
    w.done(s);
}

fn dark(status: &str, body: &[u8], in_trailers: bool) -> Answer {
    let mut headers = h(&[
        ("content-type", "application/grpc"),
        ("x-envoy-upstream-service-time", "2"),
    ]);
    let status = h(&[("grpc-status", status)]);
    if in_trailers {
        Answer::WithTrailers(200, headers, body.to_vec(), status)
    } else {
        headers.extend(status);
        Answer::Response(200, headers, body.to_vec())
    }
}

#[test]
fn the_shadow_keeps_the_framing_and_matching_answers_match() {
    let (p, mut w) = worker("");
    let mut s = call(&mut w, "/pkg.Svc/Get");
    w.doorbell();
    let c = w.outstanding().remove(0);
    assert_eq!(c.header(":method"), Some("POST"));
    assert_eq!(c.header(":path"), Some("/pkg.Svc/Get"));
    assert_eq!(c.header("content-type"), Some("application/grpc"));
    assert_eq!(c.header("te"), Some("trailers"));
    assert_eq!(c.header("grpc-timeout"), Some("410m"));
    assert_eq!(c.header("x-user"), Some("u1"));
    assert_eq!(c.body, frame(b"\x08\x07"));
    w.answer(c.token, dark("0", &frame(MSG), true));
    primary_ok(&mut w, &mut s);
    expect(
        &p,
        &[
            ("compared", 1),
            ("dark_grpc.ok", 1),
            ("dark_response.2xx", 1),
            ("matched", 1),
            ("primary_grpc.ok", 1),
            ("primary_response.2xx", 1),
            ("shadowed", 1),
        ],
    );
}

#[test]
fn a_trailers_only_error_is_a_grpc_status_mismatch() {
    let (p, mut w) = worker("");
    let mut s = call(&mut w, "/pkg.Svc/Get");
    w.doorbell();
    let c = w.outstanding().remove(0);
    w.answer(c.token, dark("5", b"", false));
    primary_ok(&mut w, &mut s);
    expect(
        &p,
        &[
            ("compared", 1),
            ("dark_grpc.not_found", 1),
            ("dark_response.2xx", 1),
            ("matched", 1),
            ("mismatch", 1),
            ("mismatch_kind.grpc_status", 1),
            ("primary_grpc.ok", 1),
            ("primary_response.2xx", 1),
            ("shadowed", 1),
        ],
    );
    let line = p
        .logs(Level::Info)
        .into_iter()
        .find(|l| l.starts_with("darklaunch mismatch "))
        .unwrap_or_default();
    assert!(line.contains(r#""kinds":["grpc_status"]"#), "{line}");
}

#[test]
fn same_message_with_data_loss_in_the_trailers_mismatches() {
    let (p, mut w) = worker("");
    let mut s = call(&mut w, "/pkg.Svc/Get");
    w.doorbell();
    let c = w.outstanding().remove(0);
    w.answer(c.token, dark("15", &frame(MSG), true));
    primary_ok(&mut w, &mut s);
    assert_eq!(p.stat("darklaunch.g.mismatch_kind.grpc_status"), 1);
    assert_eq!(p.stat("darklaunch.g.dark_grpc.data_loss"), 1);
    assert_eq!(p.stat("darklaunch.g.mismatch_kind.body"), 0);
}

#[test]
fn messages_compare_only_when_asked() {
    let with = |compare: &str, message: &str| {
        let (p, mut w) = worker(compare);
        let mut s = call(&mut w, "/pkg.Svc/Get");
        w.doorbell();
        let c = w.outstanding().remove(0);
        let mut trailers = h(&[("grpc-status", "5")]);
        trailers.extend(h(&[("grpc-message", message)]));
        let headers = h(&[
            ("content-type", "application/grpc"),
            ("x-envoy-upstream-service-time", "1"),
        ]);
        w.answer(
            c.token,
            Answer::WithTrailers(200, headers, Vec::new(), trailers),
        );
        w.response_headers(
            &mut s,
            200,
            &[
                ("content-type", "application/grpc"),
                ("grpc-status", "5"),
                ("grpc-message", "no such item"),
            ],
            true,
        );
        w.done(&mut s);
        (
            p.stat("darklaunch.g.compared"),
            p.stat("darklaunch.g.mismatch"),
        )
    };
    // A trailers-only primary: its status is in the headers.
    assert_eq!(with("", "gone"), (1, 0));
    assert_eq!(with(r#","compare":{"grpc_message":true}"#, "gone"), (1, 1));
    assert_eq!(
        with(r#","compare":{"grpc_message":true}"#, "no such item"),
        (1, 0)
    );
    assert_eq!(with(r#","compare":{"grpc_status":false}"#, "x"), (1, 0));
}

#[test]
fn envoy_replies_are_timeouts_and_resets_and_trip_the_breaker() {
    let reply = |message: &str| {
        Answer::Response(
            200,
            h(&[
                ("content-type", "application/grpc"),
                ("grpc-status", "14"),
                ("grpc-message", message),
            ]),
            Vec::new(),
        )
    };
    let (p, mut w) =
        worker(r#","breaker":{"min_calls":3,"failure_ratio":0.5,"window_s":10,"open_s":30}"#);
    for message in [
        "upstream request timeout",
        "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
        "no healthy upstream",
    ] {
        let mut s = call(&mut w, "/pkg.Svc/Get");
        w.doorbell();
        let c = w.outstanding().remove(0);
        w.answer(c.token, reply(message));
        primary_ok(&mut w, &mut s);
    }
    w.tick();
    assert_eq!(p.stat("darklaunch.g.dark_response.timeout"), 1);
    assert_eq!(p.stat("darklaunch.g.dark_response.reset"), 2);
    assert_eq!(p.stat("darklaunch.g.dark_response.2xx"), 0);
    assert_eq!(p.stat("darklaunch.g.compare_skipped.dark_failed"), 3);
    assert_eq!(p.stat("darklaunch.g.dark_grpc.unavailable"), 0);
    assert_eq!(p.stat("darklaunch.g.primary_grpc.ok"), 3);
    assert_eq!(p.stat("darklaunch.g.breaker_open"), 1);
}

#[test]
fn failing_codes_trip_the_breaker() {
    let (p, mut w) =
        worker(r#","breaker":{"min_calls":2,"failure_ratio":0.5,"window_s":10,"open_s":30}"#);
    for code in ["13", "2"] {
        let mut s = call(&mut w, "/pkg.Svc/Get");
        w.doorbell();
        let c = w.outstanding().remove(0);
        w.answer(c.token, dark(code, b"", true));
        primary_ok(&mut w, &mut s);
    }
    w.tick();
    assert_eq!(p.stat("darklaunch.g.dark_grpc.internal"), 1);
    assert_eq!(p.stat("darklaunch.g.dark_grpc.unknown"), 1);
    assert_eq!(p.stat("darklaunch.g.breaker_open"), 1);
}

#[test]
fn unnamed_methods_and_http_launches_leave_grpc_alone() {
    let (p, mut w) = worker("");
    let mut s = call(&mut w, "/pkg.Svc/Put");
    w.doorbell();
    primary_ok(&mut w, &mut s);
    assert!(w.sent().is_empty());
    assert!(stats(&p).is_empty());

    let p = Process::new(NOW, &["dark"]);
    let mut w = Worker::new(
        &p,
        1,
        r#"{"launches":[{"name":"g","dark_cluster":"dark","sample":{"percent":100},"unsafe_methods":true}]}"#,
    );
    let mut s = call(&mut w, "/pkg.Svc/Get");
    w.doorbell();
    primary_ok(&mut w, &mut s);
    assert!(w.sent().is_empty());
    assert!(stats(&p).is_empty());
    // HTTP launches define no gRPC counters.
    assert!(!p
        .launch_stats("g")
        .iter()
        .any(|(n, _)| n.contains("_grpc.")));
}

#[test]
fn a_sample_of_a_grpc_status_mismatch_shows_both_statuses() {
    let (p, mut w) = worker(r#","capture":{"per_minute":10}"#);
    let mut s = call(&mut w, "/pkg.Svc/Get");
    w.doorbell();
    let c = w.outstanding().remove(0);
    let mut trailers = h(&[("grpc-status", "15")]);
    trailers.extend(h(&[("grpc-message", "lost it")]));
    let headers = h(&[
        ("content-type", "application/grpc"),
        ("x-envoy-upstream-service-time", "1"),
    ]);
    w.answer(
        c.token,
        Answer::WithTrailers(200, headers, frame(MSG), trailers),
    );
    primary_ok(&mut w, &mut s);
    let line = p
        .logs(Level::Info)
        .into_iter()
        .find(|l| l.starts_with("darklaunch sample "))
        .unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(line.trim_start_matches("darklaunch sample ")).unwrap_or_default();
    assert_eq!(v["kinds"], serde_json::json!(["grpc_status"]), "{line}");
    assert_eq!(v["primary"]["headers"]["grpc-status"], "0", "{line}");
    assert_eq!(v["dark"]["headers"]["grpc-status"], "15", "{line}");
    assert_eq!(v["dark"]["headers"]["grpc-message"], "lost it", "{line}");
}
