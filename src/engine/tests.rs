//! The engine's lifecycle paths, natively, against the fake host; then the
//! property test that drives random interleavings through the simulator.

use proptest::prelude::*;

use super::fake::{Answer, Process, Worker};
use super::sim::{self, Op};
use super::{Configured, InvalidConfig};
use crate::host::{Body, Level};

const NOW: u64 = 1_700_000_000_000;

/// One launch `l` shadowing every request to cluster `dark`, plus `extra`
/// fields.
fn config(extra: &str) -> String {
    let sample = if extra.contains(r#""sample""#) {
        ""
    } else {
        r#","sample":{"percent":100}"#
    };
    format!(r#"{{"launches":[{{"name":"l","dark_cluster":"dark"{sample}{extra}}}]}}"#)
}

fn worker(extra: &str) -> (Process, Worker) {
    let p = Process::new(NOW, &["dark", "copy"]);
    let w = Worker::new(&p, 1, &config(extra));
    (p, w)
}

/// The launch's counters and gauges that are not zero.
fn stats(p: &Process) -> Vec<(String, i64)> {
    p.launch_stats("l")
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect()
}

/// The mismatch log lines so far.
fn mismatch_lines(p: &Process) -> Vec<String> {
    p.logs(Level::Info)
        .into_iter()
        .filter(|l| l.starts_with("darklaunch mismatch "))
        .collect()
}

fn expect(p: &Process, want: &[(&str, i64)]) {
    let want: Vec<(String, i64)> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(stats(p), want);
}

#[test]
fn request_no_launch_matches_costs_one_map_read_and_no_stat() {
    let p = Process::new(NOW, &["dark"]);
    let mut w = Worker::new(
        &p,
        1,
        r#"{"launches":[{"name":"l","dark_cluster":"dark","match":{"path_prefix":"/api"},"sample":{"percent":100}}]}"#,
    );
    let mut s = w.get("/other", &[]);
    w.respond_json(&mut s, 200, "{}");
    w.done(&mut s);
    w.doorbell();
    assert!(stats(&p).is_empty());
    assert_eq!(w.host.worker.borrow().rings, 0);
    assert_eq!(w.body_reads(Body::Response), 0);
}

#[test]
fn dark_answers_first_then_primary_matches() {
    let (p, mut w) = worker("");
    let mut s = w.get("/a?q=1", &[]);
    w.doorbell();
    let call = w.outstanding().remove(0);
    assert_eq!(call.cluster, "dark");
    assert_eq!(call.header(":path"), Some("/a?q=1"));
    assert_eq!(call.header(":authority"), Some("api-shadow:8080"));
    assert_eq!(call.header("x-darklaunch-shadow"), Some("l"));
    assert_eq!(call.timeout_ms, 1000);
    p.advance(7);
    w.answer(call.token, Answer::json(200, r#"{"a":1}"#));
    assert_eq!(
        p.stat("darklaunch.l.in_flight"),
        1,
        "held until both are in"
    );
    w.respond_json(&mut s, 200, r#"{"a":1.0}"#);
    w.done(&mut s);
    expect(
        &p,
        &[
            ("compared", 1),
            ("dark_response.2xx", 1),
            ("matched", 1),
            ("primary_response.2xx", 1),
            ("shadowed", 1),
        ],
    );
    assert_eq!(p.histogram("darklaunch.l.dark_ms"), vec![7]);
    assert_eq!(p.histogram("darklaunch.l.primary_ms"), vec![7]);
}

#[test]
fn primary_first_then_dark_mismatch_counts_fields_kinds_and_logs() {
    let (p, mut w) = worker(r#","compare":{"headers":["x-v"]}"#);
    let mut s = w.get("/a?secret=1", &[]);
    w.response_headers(
        &mut s,
        200,
        &[("content-type", "application/json"), ("x-v", "1")],
        false,
    );
    w.response_body(&mut s, br#"{"price":10,"#, false);
    w.response_body(&mut s, br#""n":[1,2]}"#, true);
    w.done(&mut s);
    w.doorbell();
    let call = w.outstanding().remove(0);
    let mut dark = Answer::json(200, r#"{"price":10.5,"n":[1,3]}"#);
    if let Answer::Response(_, h, _) = &mut dark {
        h.push(("x-v".into(), b"2".to_vec()));
    }
    w.answer(call.token, dark);
    expect(
        &p,
        &[
            ("compared", 1),
            ("dark_response.2xx", 1),
            ("field_mismatch./n/*", 1),
            ("field_mismatch./price", 1),
            ("header_mismatch.x-v", 1),
            ("matched", 1),
            ("mismatch", 1),
            ("mismatch_kind.body", 1),
            ("mismatch_kind.headers", 1),
            ("primary_response.2xx", 1),
            ("shadowed", 1),
        ],
    );
    let logs = mismatch_lines(&p);
    assert_eq!(logs.len(), 1);
    let line: serde_json::Value =
        serde_json::from_str(logs[0].strip_prefix("darklaunch mismatch ").unwrap()).unwrap();
    assert_eq!(line["path"], "/a", "no query string in the log");
    assert_eq!(line["request_id"], "req-1");
    assert_eq!(line["kinds"], serde_json::json!(["headers", "body"]));
    assert_eq!(line["paths"], serde_json::json!(["/n/*", "/price"]));
    assert_eq!(line["headers"], serde_json::json!(["x-v"]));
}

#[test]
fn a_status_mismatch_counts_once_and_leaves_fields_and_headers_alone() {
    let (p, mut w) = worker(r#","compare":{"headers":["content-type"]}"#);
    let mut s = w.get("/a", &[]);
    w.doorbell();
    let call = w.outstanding().remove(0);
    let error = Answer::Response(
        500,
        vec![("content-type".into(), b"text/plain".to_vec())],
        b"boom".to_vec(),
    );
    w.answer(call.token, error);
    w.respond_json(&mut s, 200, r#"{"id":1,"name":"x","tags":[]}"#);
    w.done(&mut s);
    expect(
        &p,
        &[
            ("compared", 1),
            ("dark_response.5xx", 1),
            ("matched", 1),
            ("mismatch", 1),
            ("mismatch_kind.status", 1),
            ("primary_response.2xx", 1),
            ("shadowed", 1),
        ],
    );
    let line = &mismatch_lines(&p)[0];
    assert!(line.contains(r#""kinds":["status"]"#), "{line}");
    assert!(
        line.contains(r#""paths":[]"#) && line.contains(r#""headers":[]"#),
        "{line}"
    );
}

#[test]
fn dark_timeout_and_reset_are_not_compared_and_feed_the_breaker() {
    let (p, mut w) =
        worker(r#","breaker":{"min_calls":2,"failure_ratio":1.0,"window_s":10,"open_s":30}"#);
    for answer in [Answer::timeout(), Answer::Reset] {
        let mut s = w.get("/a", &[]);
        w.doorbell();
        let call = w.outstanding().remove(0);
        w.answer(call.token, answer);
        w.respond_json(&mut s, 200, "{}");
        w.done(&mut s);
    }
    assert_eq!(p.stat("darklaunch.l.breaker_open"), 1);
    let mut s = w.get("/a", &[]);
    w.doorbell();
    w.respond_json(&mut s, 200, "{}");
    w.done(&mut s);
    expect(
        &p,
        &[
            ("breaker_open", 1),
            ("compare_skipped.dark_failed", 2),
            ("dark_response.reset", 1),
            ("dark_response.timeout", 1),
            ("matched", 3),
            ("primary_response.2xx", 2),
            ("shadowed", 2),
            ("skipped.breaker_open", 1),
        ],
    );
    // Half-open after open_s: one trial; its success closes the breaker.
    p.advance(30_000);
    let mut s = w.get("/a", &[]);
    let mut s2 = w.get("/a", &[]);
    w.doorbell();
    let calls = w.outstanding();
    assert_eq!(calls.len(), 1, "one trial at a time");
    w.answer(calls[0].token, Answer::json(200, "{}"));
    assert_eq!(p.stat("darklaunch.l.breaker_open"), 0);
    for s in [&mut s, &mut s2] {
        w.respond_json(s, 200, "{}");
        w.done(s);
    }
    assert_eq!(p.stat("darklaunch.l.skipped.breaker_open"), 2);
}

#[test]
fn a_pair_holds_its_in_flight_slot_until_it_settles() {
    let (p, mut w) = worker(r#","limits":{"max_in_flight":2}"#);
    // Slow primaries, fast dark side: the dark answers do not free slots.
    let mut streams: Vec<_> = (0..5).map(|_| w.get("/poll", &[])).collect();
    w.doorbell();
    for call in w.outstanding() {
        w.answer(call.token, Answer::json(200, &"x".repeat(1000)));
    }
    assert_eq!(w.engine.in_flight("l"), 2);
    assert_eq!(p.stat("darklaunch.l.skipped.in_flight"), 3);
    // Refused pairs copy nothing of their responses.
    for s in streams.iter_mut().skip(2) {
        w.respond_json(s, 200, "{}");
    }
    assert_eq!(w.body_reads(Body::Response), 0);
    assert_eq!(w.engine.pending_pairs(), 2);
    // A new request while both slots are held is refused too.
    let mut late = w.get("/poll", &[]);
    w.doorbell();
    assert!(w.outstanding().is_empty());
    assert_eq!(p.stat("darklaunch.l.skipped.in_flight"), 4);
    for s in streams.iter_mut().take(2) {
        w.respond_json(s, 200, "{}");
    }
    assert_eq!(w.engine.in_flight("l"), 0);
    assert_eq!(p.stat("darklaunch.l.in_flight"), 0);
    for s in streams.iter_mut().chain([&mut late]) {
        w.done(s);
    }
    assert_eq!(p.stat("darklaunch.l.compare_skipped.body_too_large"), 0);
    assert_eq!(p.stat("darklaunch.l.compared"), 2);
}

#[test]
fn upgrade_and_connect_are_skipped_and_nothing_is_buffered() {
    let (p, mut w) = worker("");
    let mut ws = w.request(
        &[
            (":method", "GET"),
            (":path", "/chat"),
            (":authority", "api"),
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
        ],
        false,
    );
    w.request_body(&mut ws, b"tunnel bytes", false);
    w.response_headers(&mut ws, 101, &[], false);
    w.response_body(&mut ws, b"more tunnel bytes", false);
    w.done(&mut ws);
    let mut tunnel = w.request(
        &[
            (":method", "CONNECT"),
            (":path", "/"),
            (":authority", "db:5432"),
        ],
        false,
    );
    w.request_body(&mut tunnel, b"bytes", false);
    w.done(&mut tunnel);
    w.doorbell();
    expect(&p, &[("matched", 2), ("skipped.upgrade", 2)]);
    assert_eq!(w.body_reads(Body::Request), 0);
    assert_eq!(w.body_reads(Body::Response), 0);
    assert!(w.sent().is_empty());
}

#[test]
fn request_body_is_copied_up_to_the_limit_and_over_it_skipped() {
    let (p, mut w) = worker(r#","unsafe_methods":true,"max_body_bytes":8"#);
    let post = [(":method", "POST"), (":path", "/o"), (":authority", "api")];
    let mut s = w.request(&post, false);
    w.request_body(&mut s, b"1234", false);
    w.request_body(&mut s, b"5678", true);
    w.doorbell();
    let call = w.outstanding().remove(0);
    assert_eq!(call.body, b"12345678");
    w.answer(call.token, Answer::json(200, "{}"));
    w.respond_json(&mut s, 200, "{}");
    w.done(&mut s);
    let mut big = w.request(&post, false);
    w.request_body(&mut big, b"12345", false);
    w.request_body(&mut big, b"6789", true);
    w.doorbell();
    assert_eq!(w.outstanding().len(), 0);
    assert_eq!(
        w.body_reads(Body::Request),
        8 + 8,
        "stops copying at the cap"
    );
    w.done(&mut big);
    assert_eq!(p.stat("darklaunch.l.skipped.body_too_large"), 1);
    assert_eq!(p.stat("darklaunch.l.compared"), 1);
}

#[test]
fn a_request_that_never_ends_counts_dispatch_failed() {
    let (p, mut w) = worker(r#","unsafe_methods":true"#);
    let mut s = w.request(
        &[(":method", "POST"), (":path", "/o"), (":authority", "a")],
        false,
    );
    w.request_body(&mut s, b"part", false);
    w.done(&mut s);
    expect(&p, &[("matched", 1), ("skipped.dispatch_failed", 1)]);
}

#[test]
fn unknown_cluster_counts_and_warns_once_a_minute() {
    let p = Process::new(NOW, &[]);
    let mut w = Worker::new(&p, 1, &config(""));
    let mut s = w.get("/a", &[]);
    w.doorbell();
    w.respond_json(&mut s, 200, "{}");
    w.done(&mut s);
    expect(&p, &[("matched", 1), ("skipped.unknown_cluster", 1)]);
    let warn = p.logs(Level::Warn);
    assert_eq!(
        warn,
        [
            "darklaunch: launch 'l': Envoy has no cluster 'dark': no shadow call can leave \
          (skipped.unknown_cluster)"
        ]
    );
    // Once a minute for the whole process, whatever the traffic.
    let mut w2 = Worker::new(&p, 2, &config(""));
    for w in [&mut w, &mut w2] {
        let mut s = w.get("/a", &[]);
        w.doorbell();
        w.done(&mut s);
    }
    assert_eq!(p.logs(Level::Warn).len(), 1);
    p.advance(60_000);
    let mut s = w2.get("/a", &[]);
    w2.doorbell();
    w2.done(&mut s);
    assert_eq!(p.logs(Level::Warn).len(), 2);
    assert_eq!(p.stat("darklaunch.l.skipped.unknown_cluster"), 4);
}

#[test]
fn primary_incomplete_when_the_stream_ends_without_a_response() {
    let (p, mut w) = worker("");
    let mut s = w.get("/a", &[]);
    w.doorbell();
    w.response_headers(&mut s, 200, &[], false);
    w.response_body(&mut s, b"part", false);
    w.done(&mut s);
    let call = w.outstanding().remove(0);
    w.answer(call.token, Answer::json(200, "{}"));
    expect(
        &p,
        &[
            ("compare_skipped.primary_incomplete", 1),
            ("dark_response.2xx", 1),
            ("matched", 1),
            ("primary_response.reset", 1),
            ("shadowed", 1),
        ],
    );
}

#[test]
fn sweep_settles_lost_calls_and_slow_primaries() {
    let (p, mut w) = worker(r#","timeout_ms":100"#);
    let mut lost = w.get("/a", &[]);
    let mut slow = w.get("/b", &[]);
    w.doorbell();
    let calls = w.outstanding();
    w.lose(calls[0].token);
    w.answer(calls[1].token, Answer::json(200, "{}"));
    w.respond_json(&mut lost, 200, "{}");
    w.done(&mut lost);
    p.advance(5_000);
    w.tick();
    assert_eq!(
        p.stat("darklaunch.l.dark_response.reset"),
        0,
        "within the grace"
    );
    p.advance(200);
    w.tick();
    assert_eq!(p.stat("darklaunch.l.dark_response.reset"), 1);
    p.advance(60_000);
    w.tick();
    assert_eq!(p.stat("darklaunch.l.compare_skipped.primary_incomplete"), 1);
    assert_eq!(w.engine.pending_pairs(), 0);
    w.done(&mut slow);
    assert_eq!(p.stat("darklaunch.l.shadowed"), 2);
    assert_eq!(p.stat("darklaunch.l.compare_skipped.dark_failed"), 1);
}

#[test]
fn a_lost_doorbell_is_made_up_by_the_tick() {
    let (p, mut w) = worker("");
    w.host.worker.borrow_mut().doorbell_broken = true;
    let mut s = w.get("/a", &[]);
    w.doorbell();
    assert!(w.outstanding().is_empty());
    assert!(p.logs(Level::Debug)[0].contains("doorbell failed"));
    w.tick();
    assert_eq!(w.outstanding().len(), 1);
    w.done(&mut s);
}

#[test]
fn the_doorbell_rings_once_per_batch() {
    let (_p, mut w) = worker("");
    let _a = w.get("/a", &[]);
    let _b = w.get("/b", &[]);
    assert_eq!(w.host.worker.borrow().rings, 1);
    w.doorbell();
    let _c = w.get("/c", &[]);
    assert_eq!(w.host.worker.borrow().rings, 2);
    assert_eq!(w.outstanding().len(), 2);
}

#[test]
fn teardown_settles_everything_pending() {
    let (p, mut w) = worker("");
    let mut answered = w.get("/a", &[]);
    let mut unanswered = w.get("/b", &[]);
    w.doorbell();
    let calls = w.outstanding();
    w.answer(calls[0].token, Answer::json(200, "{}"));
    let mut queued = w.get("/c", &[]);
    w.teardown();
    // Both primaries were still streaming: incomplete comes first.
    expect(
        &p,
        &[
            ("compare_skipped.primary_incomplete", 2),
            ("dark_response.2xx", 1),
            ("dark_response.reset", 1),
            ("matched", 3),
            ("primary_response.reset", 2),
            ("shadowed", 2),
            ("skipped.dispatch_failed", 1),
        ],
    );
    assert_eq!(w.engine.pending_pairs(), 0);
    for s in [&mut answered, &mut unanswered, &mut queued] {
        w.respond_json(s, 200, "{}");
        w.done(s);
    }
    assert_eq!(p.stat("darklaunch.l.matched"), 3, "nothing counted twice");
    assert_eq!(p.stat("darklaunch.l.compared"), 0);
}

#[test]
fn max_rps_is_shared_by_the_workers_of_a_process() {
    let p = Process::new(NOW, &["dark"]);
    let cfg = config(r#","limits":{"max_rps":2}"#);
    let mut workers = [Worker::new(&p, 1, &cfg), Worker::new(&p, 2, &cfg)];
    let mut streams = Vec::new();
    for w in workers.iter_mut() {
        for _ in 0..2 {
            streams.push(w.get("/a", &[]));
        }
        w.doorbell();
    }
    assert_eq!(p.stat("darklaunch.l.shadowed"), 2);
    assert_eq!(p.stat("darklaunch.l.skipped.rate_limited"), 2);
    // Under CAS contention the bucket still holds.
    p.advance(1_000);
    p.0.borrow_mut().cas_conflicts = 3;
    let mut s = workers[1].get("/a", &[]);
    workers[1].doorbell();
    assert_eq!(p.stat("darklaunch.l.shadowed"), 3);
    workers[1].done(&mut s);
}

#[test]
fn another_workers_trip_is_seen_within_the_breaker_cache_period() {
    let p = Process::new(NOW, &["dark"]);
    let cfg = config(r#","breaker":{"min_calls":3,"failure_ratio":0.5,"window_s":10,"open_s":30}"#);
    let mut workers = [Worker::new(&p, 1, &cfg), Worker::new(&p, 2, &cfg)];
    // Worker 2 reads the breaker closed and keeps that for the cache period.
    let mut s = workers[1].get("/a", &[]);
    workers[1].doorbell();
    let call = workers[1].outstanding().remove(0);
    workers[1].answer(call.token, Answer::json(200, "{}"));
    workers[1].respond_json(&mut s, 200, "{}");
    workers[1].done(&mut s);
    // Worker 1 trips it (2 of 3 calls failed): its own next call is held
    // off at once.
    for _ in 0..3 {
        let mut s = workers[0].get("/a", &[]);
        workers[0].doorbell();
        for call in workers[0].outstanding() {
            workers[0].answer(call.token, Answer::Reset);
        }
        workers[0].respond_json(&mut s, 200, "{}");
        workers[0].done(&mut s);
    }
    assert_eq!(p.stat("darklaunch.l.skipped.breaker_open"), 1);
    // Worker 2 still trusts its read until the period is over...
    p.advance(crate::limits::BREAKER_CACHE_MS - 1);
    let mut s = workers[1].get("/a", &[]);
    workers[1].doorbell();
    assert_eq!(workers[1].outstanding().len(), 1, "within the cache period");
    workers[1].respond_json(&mut s, 200, "{}");
    // ...and sees the trip after it.
    p.advance(1);
    let mut s2 = workers[1].get("/a", &[]);
    workers[1].doorbell();
    assert_eq!(
        workers[1].outstanding().len(),
        1,
        "no new call once the period is over"
    );
    assert_eq!(p.stat("darklaunch.l.skipped.breaker_open"), 2);
    for call in workers[1].outstanding() {
        workers[1].answer(call.token, Answer::json(200, "{}"));
    }
    workers[1].done(&mut s);
    workers[1].respond_json(&mut s2, 200, "{}");
    workers[1].done(&mut s2);
}

#[test]
fn flag_header_forces_and_users_never_skips() {
    let (p, mut w) = worker(
        r#","sample":{"percent":0},"users":{"key":"header:x-user","always":["qa"],"never":["vip"]}"#,
    );
    let _a = w.get("/a", &[("x-dark-launch", "on")]);
    let _b = w.get("/a", &[("x-user", "qa")]);
    let _c = w.get("/a", &[("x-user", "vip"), ("x-dark-launch", "on")]);
    let _d = w.get("/a", &[]);
    let _e = w.get("/a", &[("x-darklaunch-shadow", "l")]);
    w.doorbell();
    expect(
        &p,
        &[
            ("forced", 2),
            ("in_flight", 2),
            ("matched", 5),
            ("shadowed", 2),
            ("skipped.loop", 1),
            ("skipped.sampled_out", 1),
            ("skipped.user_never", 1),
        ],
    );
}

#[test]
fn aa_copies_teach_noise_and_then_cancel_it() {
    let (p, mut w) = worker(r#","noise":{"cluster":"copy","percent":100}"#);
    for i in 0..8 {
        let mut s = w.get("/a", &[]);
        w.doorbell();
        let calls = w.outstanding();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].cluster, "copy");
        w.answer(
            calls[0].token,
            Answer::json(200, &format!(r#"{{"a":1,"ts":{}}}"#, i + 100)),
        );
        w.answer(
            calls[1].token,
            Answer::json(200, &format!(r#"{{"a":1,"ts":{}}}"#, i + 200)),
        );
        w.respond_json(&mut s, 200, &format!(r#"{{"a":1,"ts":{i}}}"#));
        w.done(&mut s);
        p.advance(1_000);
    }
    let st = p.launch_stats("l");
    assert_eq!(st["shadowed"], 8, "A/A copies are not shadow calls");
    assert_eq!(st["compared"], 8);
    assert!(st["noise"] >= 2, "{st:?}");
    assert_eq!(st["noise"] + st["mismatch"], 8);
    assert!(p
        .logs(Level::Info)
        .iter()
        .any(|l| l == r#"darklaunch noise learned {"launch":"l","path":"/ts"}"#));
}

#[test]
fn mismatch_log_is_rate_limited() {
    let p = Process::new(NOW, &["dark"]);
    let cfg = r#"{"mismatch_log_per_minute":2,"launches":[{"name":"l","dark_cluster":"dark","sample":{"percent":100}}]}"#;
    let mut w = Worker::new(&p, 1, cfg);
    for _ in 0..4 {
        let mut s = w.get("/a", &[]);
        w.doorbell();
        let call = w.outstanding().remove(0);
        w.answer(call.token, Answer::json(500, "{}"));
        w.respond_json(&mut s, 200, "{}");
        w.done(&mut s);
    }
    assert_eq!(p.stat("darklaunch.l.mismatch"), 4);
    assert_eq!(mismatch_lines(&p).len(), 2);
}

#[test]
fn streams_keep_the_configuration_they_started_under() {
    let (p, mut w) = worker("");
    let mut s = w.get("/a", &[]);
    w.engine
        .configure(
            br#"{"launches":[{"name":"m","dark_cluster":"dark","sample":{"percent":100}}]}"#,
            InvalidConfig::Refuse,
            "test",
        )
        .unwrap();
    w.doorbell();
    let call = w.outstanding().remove(0);
    w.answer(call.token, Answer::json(200, "{}"));
    w.respond_json(&mut s, 200, "{}");
    w.done(&mut s);
    assert_eq!(p.stat("darklaunch.l.compared"), 1);
    let _t = w.get("/a", &[]);
    assert_eq!(p.stat("darklaunch.m.matched"), 1);
    let e = w.engine.configure(b"{}", InvalidConfig::Refuse, "test");
    assert!(e.unwrap_err().contains("launches"));
}

#[test]
fn simulator_smoke() {
    sim::run(&sim::ops_from_bytes(&[
        0, 0, 0, 7, 0, 9, 0, 3, 4, 0, 1, 2, 1, 6, 0,
    ]));
}

fn op() -> impl Strategy<Value = Op> {
    let b = any::<u8>;
    prop_oneof![
        3 => (b(), b()).prop_map(|(worker, shape)| Op::Request { worker, shape }),
        1 => (b(), b(), any::<bool>()).prop_map(|(stream, len, end)| Op::RequestBody { stream, len, end }),
        1 => b().prop_map(|stream| Op::RequestTrailers { stream }),
        3 => (b(), b(), b(), any::<bool>())
            .prop_map(|(stream, status, body, end)| Op::Response { stream, status, body, end }),
        1 => b().prop_map(|stream| Op::ResponseTrailers { stream }),
        2 => b().prop_map(|stream| Op::Done { stream }),
        3 => b().prop_map(|worker| Op::Doorbell { worker }),
        1 => (b(), any::<bool>()).prop_map(|(worker, broken)| Op::BreakDoorbell { worker, broken }),
        4 => (b(), b()).prop_map(|(call, answer)| Op::Answer { call, answer }),
        1 => b().prop_map(|call| Op::Lose { call }),
        1 => b().prop_map(|worker| Op::Tick { worker }),
        2 => prop_oneof![4 => 0u16..2_000, 1 => any::<u16>()].prop_map(|ms| Op::Advance { ms }),
        1 => (0u8..12).prop_map(|n| Op::CasConflicts { n }),
        1 => b().prop_map(|worker| Op::Teardown { worker }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Any interleaving of requests, answers in either order, lost calls,
    /// resets, timeouts, CAS conflicts, late doorbells and teardowns on two
    /// workers: no launch ever holds more than `max_in_flight` pairs per
    /// worker, every pair is counted once, and the stats add up.
    #[test]
    fn every_interleaving_counts_each_pair_once(ops in proptest::collection::vec(op(), 0..120)) {
        sim::run(&ops);
    }
}

// ---------------------------------------------------------------------------
// Configuration delivery and expiry

const GOOD: &str = r#"{"launches":[{"name":"l","dark_cluster":"dark","sample":{"percent":5}}]}"#;
const BAD: &str = r#"{"launches":[{"name":"l","dark_cluster":"dark","sample":{"percent":500}}]}"#;

fn bare_worker(p: &Process, seed: u64) -> Worker {
    let host = super::fake::FakeHost {
        process: p.clone(),
        worker: Default::default(),
    };
    let _ = seed;
    Worker {
        engine: super::Engine::new(host.clone()),
        host,
    }
}

#[test]
fn invalid_config_policy_comes_from_the_environment() {
    assert_eq!(InvalidConfig::from_env(None), Ok(InvalidConfig::Refuse));
    assert_eq!(
        InvalidConfig::from_env(Some("refuse")),
        Ok(InvalidConfig::Refuse)
    );
    assert_eq!(
        InvalidConfig::from_env(Some(" keep_last_good ")),
        Ok(InvalidConfig::KeepLastGood)
    );
    let e = InvalidConfig::from_env(Some("keep-last-good")).unwrap_err();
    assert_eq!(
        e,
        r#"DARKLAUNCH_INVALID_CONFIG="keep-last-good": must be refuse or keep_last_good"#
    );
}

#[test]
fn refuse_rejects_an_invalid_configuration_with_its_path() {
    let p = Process::new(NOW, &["dark"]);
    let mut w = bare_worker(&p, 1);
    let e = w
        .engine
        .configure(BAD.as_bytes(), InvalidConfig::Refuse, "dl")
        .unwrap_err();
    assert_eq!(
        e,
        "invalid configuration: launches[0].sample.percent: must be between 0 and 100"
    );
}

#[test]
fn keep_last_good_passes_through_until_a_valid_config_then_keeps_it() {
    let p = Process::new(NOW, &["dark"]);
    let keep = InvalidConfig::KeepLastGood;
    let mut w = bare_worker(&p, 1);
    // No valid configuration yet: pass everything through, gauge up, error logged.
    let got = w.engine.configure(BAD.as_bytes(), keep, "dl");
    assert_eq!(got, Ok(Configured::PassThrough));
    assert_eq!(p.stat("darklaunch.config_invalid"), 1);
    let mut s = w.get("/a", &[("x-dark-launch", "on")]);
    w.respond_json(&mut s, 200, "{}");
    w.done(&mut s);
    w.doorbell();
    assert!(w.sent().is_empty());
    assert_eq!(p.stat("darklaunch.l.matched"), 0);
    let errors = p.logs(Level::Error);
    assert_eq!(
        errors,
        [
            "darklaunch: invalid configuration: launches[0].sample.percent: must be between 0 \
          and 100; running no configuration: every request passes through untouched \
          (DARKLAUNCH_INVALID_CONFIG=keep_last_good)"
        ]
    );
    assert!(p.logs(Level::Info).contains(
        &"darklaunch: no valid configuration yet: every request passes through untouched"
            .to_string()
    ));
    // A valid configuration: runs, gauge down, the launches listed once.
    assert_eq!(
        w.engine.configure(GOOD.as_bytes(), keep, "dl"),
        Ok(Configured::Valid)
    );
    assert_eq!(p.stat("darklaunch.config_invalid"), 0);
    let listed = "darklaunch: configured 1 launches: l (dark cluster dark, 5%)";
    assert_eq!(p.logs(Level::Info).last().map(String::as_str), Some(listed));
    // Another worker of the process gets the same one: not listed again.
    let mut w2 = bare_worker(&p, 2);
    assert_eq!(
        w2.engine.configure(GOOD.as_bytes(), keep, "dl"),
        Ok(Configured::Valid)
    );
    assert_eq!(
        p.logs(Level::Info).iter().filter(|l| *l == listed).count(),
        1
    );
    // An invalid update: the last valid configuration keeps running.
    let mut w3 = bare_worker(&p, 3);
    assert_eq!(
        w3.engine.configure(BAD.as_bytes(), keep, "dl"),
        Ok(Configured::LastGood)
    );
    assert_eq!(p.stat("darklaunch.config_invalid"), 1);
    let mut s = w3.get("/a", &[("x-dark-launch", "on")]);
    w3.doorbell();
    assert_eq!(w3.outstanding().len(), 1);
    w3.done(&mut s);
    // The error is not repeated within the minute, whichever worker; after
    // it, on tick.
    assert_eq!(p.logs(Level::Error).len(), 1, "{:?}", p.logs(Level::Error));
    w3.tick();
    assert_eq!(p.logs(Level::Error).len(), 1);
    p.advance(60_000);
    w3.tick();
    assert_eq!(p.logs(Level::Error).len(), 2);
    assert!(p.logs(Level::Error)[1].contains("running the last valid configuration"));
    // Another plugin's last good configuration is its own.
    let mut other = bare_worker(&p, 4);
    let got = other.engine.configure(BAD.as_bytes(), keep, "other");
    assert_eq!(got, Ok(Configured::PassThrough));
}

#[test]
fn a_configuration_that_is_not_json_text_says_what_it_must_be() {
    let p = Process::new(NOW, &["dark"]);
    let mut w = bare_worker(&p, 1);
    let want = "the plugin `configuration` must be a google.protobuf.StringValue whose value is \
                the JSON configuration";
    let e = w
        .engine
        .configure(b"", InvalidConfig::Refuse, "dl")
        .unwrap_err();
    assert_eq!(
        e,
        format!("invalid configuration: the configuration is empty: {want}")
    );
    // What Envoy hands over for a google.protobuf.Struct: its serialized bytes.
    let e = w
        .engine
        .configure(
            b"\n\x1e\n\x08launches\x12\x12\x32\x10",
            InvalidConfig::Refuse,
            "dl",
        )
        .unwrap_err();
    assert_eq!(
        e,
        format!(
            "invalid configuration: the configuration is 16 bytes of binary data (a serialized \
             google.protobuf.Struct or other message?): {want}"
        )
    );
    let e = w
        .engine
        .configure(b"launches:\n  - name: x", InvalidConfig::Refuse, "dl")
        .unwrap_err();
    assert_eq!(
        e,
        format!(
            "invalid configuration: the configuration is text that is not a JSON object (it \
             starts with \"launches:\\n  - na\"): {want}"
        )
    );
}

#[test]
fn an_expired_launch_stops_shadowing_and_says_so() {
    let p = Process::new(NOW, &["dark"]);
    // NOW is 2023-11-14T22:13:20Z.
    let mut w = Worker::new(&p, 1, &config(r#","expires":"2023-11-14T22:13:21Z""#));
    assert_eq!(p.stat("darklaunch.l.expired"), 0);
    let mut s = w.get("/a", &[]);
    w.doorbell();
    assert_eq!(w.outstanding().len(), 1);
    w.done(&mut s);
    p.advance(1_000);
    let mut s = w.get("/a", &[("x-dark-launch", "on")]);
    w.doorbell();
    w.done(&mut s);
    assert_eq!(w.outstanding().len(), 1, "forcing does not revive it");
    assert_eq!(p.stat("darklaunch.l.skipped.expired"), 1);
    w.tick();
    assert_eq!(p.stat("darklaunch.l.expired"), 1);
    let warn = "darklaunch: launch 'l' expired at 2023-11-14T22:13:21Z: it no longer shadows; \
                remove it from the configuration";
    assert_eq!(p.logs(Level::Warn), [warn]);
    p.advance(3_599_000);
    w.tick();
    assert_eq!(p.logs(Level::Warn).len(), 1);
    p.advance(1_000);
    w.tick();
    assert_eq!(p.logs(Level::Warn).len(), 2, "once an hour per worker");
}
