//! A simulated Envoy process for property tests and fuzzing: a sequence of
//! [`Op`]s (client requests, responses, host answers, lost answers, clock
//! jumps, CAS conflicts, teardown) played against several workers of one
//! process, then drained; [`run`] checks after every step that no launch
//! holds more than `max_in_flight` pairs per worker, and at the end that
//! every pair was counted exactly once and the stats invariants hold.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use super::fake::{Answer, Process, Worker};
use super::Stream;

/// Workers in the simulated process.
pub const WORKERS: usize = 2;

/// The configuration every worker runs: launches `a` (everything, small
/// limits, a fast breaker, A/A copies, small bodies), `b` (`/b`, 50%
/// random sampling, JSON compared, 3 samples a minute posted to `otel`),
/// `c` (GET only, to a cluster that does not exist), `g` (the gRPC
/// service `pkg.Svc`, a fast breaker).
pub const CONFIG: &str = r#"{"launches":[
  {"name":"a","dark_cluster":"dark","sample":{"percent":100},"unsafe_methods":true,
   "max_body_bytes":64,"limits":{"max_in_flight":2,"max_rps":3},
   "breaker":{"failure_ratio":0.5,"min_calls":4,"window_s":10,"open_s":5},
   "compare":{"headers":["x-v"],"ignore":["/t"]},
   "noise":{"cluster":"copy","percent":50}},
  {"name":"b","dark_cluster":"dark","match":{"path_prefix":"/b"},
   "sample":{"percent":50},"timeout_ms":200,
   "capture":{"per_minute":3,"cluster":"otel","bodies":true,"redact":["/t"]}},
  {"name":"c","dark_cluster":"missing","match":{"methods":["GET"]},"sample":{"percent":100}},
  {"name":"g","dark_cluster":"dark","match":{"grpc_methods":["pkg.Svc/*"]},
   "sample":{"percent":100},"breaker":{"failure_ratio":0.5,"min_calls":4,"window_s":10,"open_s":5}}
]}"#;

/// Launch names and their `max_in_flight`.
const LAUNCHES: [(&str, i64); 4] = [("a", 2), ("b", 100), ("c", 100), ("g", 100)];

/// One step. Indices pick among open streams or outstanding calls modulo
/// their number (nothing happens when there are none).
#[derive(Debug, Clone)]
pub enum Op {
    /// A client request arrives on a worker: one of the request shapes.
    Request {
        worker: u8,
        shape: u8,
    },
    /// A request body chunk (`len` bytes), maybe the last.
    RequestBody {
        stream: u8,
        len: u8,
        end: bool,
    },
    /// Request trailers: the request ends.
    RequestTrailers {
        stream: u8,
    },
    /// The primary's response headers: a status and one of the body
    /// shapes; with `end` the whole body follows at once.
    Response {
        stream: u8,
        status: u8,
        body: u8,
        end: bool,
    },
    /// Response trailers: the response ends.
    ResponseTrailers {
        stream: u8,
    },
    /// The stream ends, complete or not (`on_log` / `on_done`).
    Done {
        stream: u8,
    },
    /// The worker's doorbell callback runs.
    Doorbell {
        worker: u8,
    },
    /// The worker's doorbell stops or starts working.
    BreakDoorbell {
        worker: u8,
        broken: bool,
    },
    /// The host answers an outstanding call.
    Answer {
        call: u8,
        answer: u8,
    },
    /// The host forgets an outstanding call.
    Lose {
        call: u8,
    },
    Tick {
        worker: u8,
    },
    Advance {
        ms: u16,
    },
    /// The next `n` shared-data writes lose their CAS race.
    CasConflicts {
        n: u8,
    },
    /// The worker's root context is torn down (it keeps serving after).
    Teardown {
        worker: u8,
    },
}

/// Decode a byte string into steps (for the fuzzer): one byte picks the
/// step, the next ones its fields.
pub fn ops_from_bytes(data: &[u8]) -> Vec<Op> {
    let mut it = data.iter().copied();
    let mut next = || it.next();
    let mut ops = Vec::new();
    while let Some(tag) = next() {
        let mut b = || next().unwrap_or(0);
        let op = match tag % 14 {
            0 | 1 => Op::Request {
                worker: b(),
                shape: b(),
            },
            2 => Op::RequestBody {
                stream: b(),
                len: b(),
                end: b() % 2 == 0,
            },
            3 => Op::RequestTrailers { stream: b() },
            4 => Op::Response {
                stream: b(),
                status: b(),
                body: b(),
                end: b() % 4 != 0,
            },
            5 => Op::ResponseTrailers { stream: b() },
            6 => Op::Done { stream: b() },
            7 => Op::Doorbell { worker: b() },
            8 => Op::BreakDoorbell {
                worker: b(),
                broken: b() % 4 == 0,
            },
            9 => Op::Answer {
                call: b(),
                answer: b(),
            },
            10 => Op::Lose { call: b() },
            11 => Op::Tick { worker: b() },
            12 => Op::Advance {
                ms: u16::from_le_bytes([b(), b()]),
            },
            _ => match b() % 3 {
                0 => Op::CasConflicts { n: b() % 12 },
                _ => Op::Teardown { worker: b() },
            },
        };
        ops.push(op);
    }
    ops
}

type Headers = &'static [(&'static str, &'static str)];

/// Request shapes: (headers, ends with its headers).
const REQUESTS: [(Headers, bool); 9] = [
    (&[(":method", "GET"), (":path", "/a?x=1")], true),
    (&[(":method", "GET"), (":path", "/b/1")], true),
    (&[(":method", "POST"), (":path", "/b/2")], false),
    (
        &[
            (":method", "GET"),
            (":path", "/ws"),
            ("upgrade", "websocket"),
        ],
        false,
    ),
    (
        &[
            (":method", "GET"),
            (":path", "/b"),
            ("x-darklaunch-shadow", "a"),
        ],
        true,
    ),
    (
        &[
            (":method", "GET"),
            (":path", "/b"),
            ("x-dark-launch", "off"),
        ],
        true,
    ),
    (
        &[
            (":method", "PUT"),
            (":path", "/b"),
            ("content-length", "100"),
        ],
        false,
    ),
    (&[(":method", "CONNECT"), (":path", "/")], false),
    (
        &[
            (":method", "POST"),
            (":path", "/pkg.Svc/Get"),
            ("content-type", "application/grpc"),
        ],
        false,
    ),
];

/// Response (and dark answer) bodies: JSON, JSON differing at `/id` and at
/// the ignored `/t`, JSON past the 64-byte limit of launch `a`, not JSON.
const BODIES: [&str; 4] = [
    r#"{"id":1,"t":1}"#,
    r#"{"id":2,"t":2}"#,
    r#"{"id":1,"pad":"0123456789012345678901234567890123456789012345678901234567890123"}"#,
    "plain",
];

const STATUSES: [u16; 4] = [200, 200, 404, 500];

struct Open {
    worker: usize,
    stream: Stream,
}

/// Play `ops`, drain, and check. Panics when a check fails.
pub fn run(ops: &[Op]) {
    let process = Process::new(1_700_000_000_000, &["dark", "copy", "otel"]);
    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|i| Worker::new(&process, i as u64 + 1, CONFIG))
        .collect();
    let mut streams: Vec<Open> = Vec::new();
    for op in ops {
        step(&process, &mut workers, &mut streams, op);
        check_bounds(&process, &workers);
    }
    // Drain: send what is queued, end every stream, answer every call,
    // let the sweep and the teardown settle whatever is left.
    for w in workers.iter_mut() {
        w.doorbell();
        w.tick();
    }
    for mut open in streams.drain(..) {
        let w = &mut workers[open.worker];
        w.done(&mut open.stream);
    }
    // Answers can queue sample exports, sent on the next doorbell (or
    // tick, when the doorbell is broken).
    for _ in 0..100 {
        let mut any = false;
        for w in workers.iter_mut() {
            w.doorbell();
            w.tick();
            for call in w.outstanding() {
                any = true;
                w.answer(call.token, Answer::json(200, BODIES[0]));
            }
        }
        if !any {
            break;
        }
    }
    process.advance(120_000);
    for w in workers.iter_mut() {
        w.tick();
        w.teardown();
        assert_eq!(w.engine.pending_pairs(), 0, "pairs left after teardown");
        assert!(w.outstanding().is_empty());
    }
    check_counts(&process, &workers);
}

/// (worker, token) of every call not answered yet.
fn outstanding(workers: &[Worker]) -> Vec<(usize, u32)> {
    workers
        .iter()
        .enumerate()
        .flat_map(|(i, w)| w.outstanding().into_iter().map(move |c| (i, c.token)))
        .collect()
}

fn pick<T>(items: &[T], i: u8) -> Option<usize> {
    (!items.is_empty()).then(|| usize::from(i) % items.len())
}

fn step(process: &Process, workers: &mut [Worker], streams: &mut Vec<Open>, op: &Op) {
    let worker = |w: u8| usize::from(w) % WORKERS;
    match *op {
        Op::Request { worker: w, shape } => {
            let (headers, end) = REQUESTS[usize::from(shape) % REQUESTS.len()];
            let mut h = vec![(":authority", "api:8080"), ("x-request-id", "r")];
            h.extend_from_slice(headers);
            let w = worker(w);
            let stream = workers[w].request(&h, end);
            streams.push(Open { worker: w, stream });
        }
        Op::RequestBody { stream, len, end } => {
            if let Some(i) = pick(streams, stream) {
                let o = &mut streams[i];
                let chunk = vec![b'x'; usize::from(len)];
                workers[o.worker].request_body(&mut o.stream, &chunk, end);
            }
        }
        Op::RequestTrailers { stream } => {
            if let Some(i) = pick(streams, stream) {
                let o = &mut streams[i];
                workers[o.worker].request_trailers(&mut o.stream);
            }
        }
        Op::Response {
            stream,
            status,
            body,
            end,
        } => {
            if let Some(i) = pick(streams, stream) {
                let o = &mut streams[i];
                let w = &mut workers[o.worker];
                let status = STATUSES[usize::from(status) % STATUSES.len()];
                let body = BODIES[usize::from(body) % BODIES.len()];
                let headers = [("content-type", "application/json"), ("x-v", "1")];
                w.response_headers(&mut o.stream, status, &headers, false);
                w.response_body(&mut o.stream, body.as_bytes(), end);
            }
        }
        Op::ResponseTrailers { stream } => {
            if let Some(i) = pick(streams, stream) {
                let o = &mut streams[i];
                workers[o.worker].response_trailers_with(&mut o.stream, &[("grpc-status", "0")]);
            }
        }
        Op::Done { stream } => {
            if let Some(i) = pick(streams, stream) {
                let mut o = streams.swap_remove(i);
                workers[o.worker].done(&mut o.stream);
            }
        }
        Op::Doorbell { worker: w } => workers[worker(w)].doorbell(),
        Op::BreakDoorbell { worker: w, broken } => {
            workers[worker(w)].host.worker.borrow_mut().doorbell_broken = broken;
        }
        Op::Answer { call, answer } => {
            let calls = outstanding(workers);
            if let Some(i) = pick(&calls, call) {
                let (w, token) = calls[i];
                let a = usize::from(answer);
                let grpc = |status: &str| {
                    vec![
                        ("content-type".to_string(), b"application/grpc".to_vec()),
                        ("grpc-status".to_string(), status.as_bytes().to_vec()),
                        (
                            "grpc-message".to_string(),
                            b"upstream request timeout".to_vec(),
                        ),
                    ]
                };
                let answer = match a % 8 {
                    0 => Answer::Reset,
                    1 => Answer::timeout(),
                    2 => Answer::json(500, BODIES[0]),
                    // A gRPC answer, its status in the trailers (OK or
                    // INTERNAL), and Envoy's own timeout reply to a gRPC call.
                    3 => Answer::WithTrailers(
                        200,
                        vec![("content-type".into(), b"application/grpc".to_vec())],
                        b"\0\0\0\0\x02\x08\x01".to_vec(),
                        grpc(if a % 3 == 0 { "0" } else { "13" }),
                    ),
                    4 => Answer::Response(200, grpc("14"), Vec::new()),
                    _ => {
                        let mut r = Answer::json(200, BODIES[(a / 6) % BODIES.len()]);
                        if let Answer::Response(_, h, _) = &mut r {
                            h.push(("x-v".into(), if a % 5 == 0 { b"2" } else { b"1" }.to_vec()));
                        }
                        r
                    }
                };
                workers[w].answer(token, answer);
            }
        }
        Op::Lose { call } => {
            let calls = outstanding(workers);
            if let Some(i) = pick(&calls, call) {
                let (w, token) = calls[i];
                workers[w].lose(token);
            }
        }
        Op::Tick { worker: w } => workers[worker(w)].tick(),
        Op::Advance { ms } => process.advance(u64::from(ms)),
        Op::CasConflicts { n } => process.0.borrow_mut().cas_conflicts = u32::from(n),
        Op::Teardown { worker: w } => workers[worker(w)].teardown(),
    }
}

/// Per worker and launch, the pairs holding a slot never exceed
/// `max_in_flight`, and the process-wide gauge is their sum.
fn check_bounds(process: &Process, workers: &[Worker]) {
    for (launch, max) in LAUNCHES {
        let mut total = 0;
        for w in workers {
            let held = i64::from(w.engine.in_flight(launch));
            assert!(
                held <= max,
                "{launch}: {held} pairs held, max_in_flight {max}"
            );
            total += held;
        }
        let gauge = process.stat(&format!("darklaunch.{launch}.in_flight"));
        assert_eq!(gauge, total, "{launch}: in_flight gauge");
    }
}

/// Every pair counted exactly once, and the invariants of the stats.
fn check_counts(process: &Process, workers: &[Worker]) {
    for (launch, _) in LAUNCHES {
        let s = process.launch_stats(launch);
        let get = |k: &str| s.get(k).copied().unwrap_or(0);
        let sum = |prefix: &str| -> i64 {
            s.iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| *v)
                .sum()
        };
        let what = format!("{launch}: {s:?}");
        assert_eq!(get("matched"), get("shadowed") + sum("skipped."), "{what}");
        assert_eq!(
            get("shadowed"),
            get("compared") + sum("compare_skipped."),
            "{what}"
        );
        assert!(get("compared") >= get("mismatch") + get("noise"), "{what}");
        assert_eq!(sum("dark_response."), get("shadowed"), "{what}");
        assert_eq!(sum("primary_response."), get("shadowed"), "{what}");
        assert!(get("forced") <= get("shadowed"), "{what}");
        assert_eq!(get("in_flight"), 0, "{what}");
        // What the host saw leave for the dark cluster is what was counted.
        let dark_calls: i64 = workers
            .iter()
            .flat_map(|w| w.sent())
            .filter(|c| c.header("x-darklaunch-shadow") == Some(launch) && c.cluster != "copy")
            .count() as i64;
        assert_eq!(dark_calls, get("shadowed"), "{what}");
    }
    // Samples: every mismatch of `b` sampled or dropped for the rate or the
    // size; one log line per sample; no more posts than samples.
    let s = process.launch_stats("b");
    let get = |k: &str| s.get(k).copied().unwrap_or(0);
    assert_eq!(
        get("mismatch"),
        get("sample.captured") + get("sample.dropped.rate") + get("sample.dropped.size"),
        "b: {s:?}"
    );
    let lines = process
        .logs(crate::host::Level::Info)
        .iter()
        .filter(|l| l.starts_with("darklaunch sample "))
        .count() as i64;
    assert_eq!(lines, get("sample.captured"));
    let posts = workers
        .iter()
        .flat_map(|w| w.sent())
        .filter(|c| c.cluster == "otel")
        .count() as i64;
    assert!(
        posts <= get("sample.captured") && get("sample.dropped.sink") <= get("sample.captured")
    );
    for (launch, _) in [("a", 0), ("c", 0)] {
        assert_eq!(
            process.stat(&format!("darklaunch.{launch}.sample.captured")),
            0
        );
    }
    // Histograms: one dark latency per shadowed pair.
    for (launch, _) in LAUNCHES {
        let n = process
            .histogram(&format!("darklaunch.{launch}.dark_ms"))
            .len() as i64;
        assert_eq!(n, process.stat(&format!("darklaunch.{launch}.shadowed")));
    }
}
