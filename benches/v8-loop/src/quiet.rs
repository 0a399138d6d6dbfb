//! The engine driven through one request's life per iteration, with a host
//! that answers every call at once and keeps nothing: the time is the
//! engine's own (decision, pair bookkeeping, settlement, comparison), not
//! Envoy's side of the host calls, which `make bench --profile` shows.
use std::cell::Cell;
use std::process::ExitCode;
use std::time::Instant;

use darklaunch::engine::{Engine, InvalidConfig};
use darklaunch::headermap;
use darklaunch::host::{Body, Call, Headers, Host, HostError, Level, SetResult};
use darklaunch::vocab::MetricKind;

use crate::pairs;

/// The host calls, in the order [`QuietHost::calls`] counts them.
const CALLS: [&str; 12] = [
    "now_ms",
    "random_u32",
    "log",
    "define_metric",
    "increment",
    "record",
    "shared_get",
    "shared_set",
    "header_map",
    "body",
    "dispatch",
    "ring_doorbell",
];

/// Answers like Envoy would for one GET whose primary and dark answers are
/// `make bench`'s JSON pair; remembers only the last token and the
/// doorbell, and counts the calls of each kind (in Envoy each is a crossing
/// out of the VM and back).
pub struct QuietHost {
    calls: [Cell<u64>; 12],
    request: Vec<u8>,
    response: Vec<u8>,
    trailers: Vec<u8>,
    primary: Vec<u8>,
    dark: Vec<u8>,
    now: Cell<u64>,
    rng: Cell<u32>,
    token: Cell<u32>,
    rung: Cell<bool>,
    metrics: Cell<u32>,
}

impl QuietHost {
    fn new() -> QuietHost {
        let request = headermap::encode(&[
            (":method", b"GET"),
            (":path", b"/items/1"),
            (":authority", b"api:8080"),
            (":scheme", b"http"),
            ("user-agent", b"wrk"),
            ("x-request-id", b"7b0c7d2e-51b2-4cf5-9d0a-0d3c2b1e4f55"),
            ("x-user-id", b"user-4711"),
        ]);
        let response = headermap::encode(&[
            (":status", b"200"),
            ("content-type", b"application/json"),
            ("content-length", b"4096"),
            ("date", b"Tue, 01 Dec 2026 07:00:00 GMT"),
        ]);
        QuietHost {
            calls: Default::default(),
            request,
            response,
            trailers: headermap::encode(&[]),
            primary: pairs::doc(4096, None).into_bytes(),
            dark: pairs::doc_at(4096, None, "2024-05-01T12:00:01Z").into_bytes(),
            now: Cell::new(1_764_572_400_000),
            rng: Cell::new(0x9E37_79B9),
            token: Cell::new(0),
            rung: Cell::new(false),
            metrics: Cell::new(0),
        }
    }
}

impl QuietHost {
    fn count(&self, call: usize) {
        if let Some(c) = self.calls.get(call) {
            c.set(c.get() + 1);
        }
    }
}

impl Host for QuietHost {
    fn now_ms(&self) -> u64 {
        self.count(0);
        self.now.set(self.now.get() + 1);
        self.now.get()
    }
    fn random_u32(&self) -> u32 {
        self.count(1);
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng.set(x);
        x
    }
    fn log(&self, _: Level, _: &str) {
        self.count(2);
    }
    fn define_metric(&self, _: MetricKind, _: &str) -> Result<u32, HostError> {
        self.count(3);
        self.metrics.set(self.metrics.get() + 1);
        Ok(self.metrics.get())
    }
    fn increment(&self, _: u32, _: i64) {
        self.count(4);
    }
    fn record(&self, _: u32, _: u64) {
        self.count(5);
    }
    fn shared_get(&self, _: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
        self.count(6);
        Ok((None, None))
    }
    fn shared_set(&self, _: &str, _: &[u8], _: Option<u32>) -> Result<SetResult, HostError> {
        self.count(7);
        Ok(SetResult::Written)
    }
    fn header_map(&self, which: Headers) -> Result<Vec<u8>, HostError> {
        self.count(8);
        Ok(match which {
            Headers::Request => self.request.clone(),
            Headers::Response | Headers::CallResponse => self.response.clone(),
            _ => self.trailers.clone(),
        })
    }
    fn body(&self, which: Body, max: usize) -> Result<Vec<u8>, HostError> {
        self.count(9);
        let body = match which {
            Body::Response => &self.primary,
            Body::CallResponse => &self.dark,
            _ => return Ok(Vec::new()),
        };
        Ok(body.get(..max.min(body.len())).unwrap_or_default().to_vec())
    }
    fn dispatch(&self, _: Call<'_>) -> Result<u32, HostError> {
        self.count(10);
        self.token.set(self.token.get() + 1);
        Ok(self.token.get())
    }
    fn ring_doorbell(&self) -> Result<(), HostError> {
        self.count(11);
        self.rung.set(true);
        Ok(())
    }
}

/// `make bench`'s launch for configuration C, F, D or E (scripts/bench.py
/// `launches_for`).
fn config(kind: &str) -> Option<String> {
    let json = r#"{"headers":["content-type"],"body":"json","ignore":["/meta/generated_at","/items/*/etag"]}"#;
    let (matcher, sample, compare) = match kind {
        "c" => (
            r#","match":{"path_prefix":"/nomatch"}"#,
            r#"{"percent":100}"#,
            json,
        ),
        // Sampled out: the user's bucket is above 0.01%.
        "f" => (
            "",
            r#"{"percent":0.01,"sticky_key":["header:x-user-id"]}"#,
            json,
        ),
        "d" => (
            "",
            r#"{"percent":100}"#,
            r#"{"headers":["content-type"],"body":"none"}"#,
        ),
        "e" => ("", r#"{"percent":100}"#, json),
        _ => return None,
    };
    Some(format!(
        r#"{{"launches":[{{"name":"bench","dark_cluster":"dark","timeout_ms":1000,"sample":{sample},"compare":{compare}{matcher}}}]}}"#
    ))
}

pub fn run(kind: &str, rounds: u32, iterations: u32) -> ExitCode {
    let Some(cfg) = config(kind) else {
        eprintln!("unknown mode engine-{kind}");
        return ExitCode::FAILURE;
    };
    let mut engine = Engine::new(QuietHost::new());
    if let Err(e) = engine.configure(cfg.as_bytes(), InvalidConfig::Refuse, "v8-loop") {
        eprintln!("configuration refused: {e}");
        return ExitCode::FAILURE;
    }
    let (primary_len, dark_len) = (engine.host().primary.len(), engine.host().dark.len());
    // Configuring defined the stats: count what the requests call.
    for c in &engine.host().calls {
        c.set(0);
    }
    let mut shadowed = 0u64;
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..iterations {
            let mut s = engine.stream();
            engine.request_headers(&mut s, true);
            engine.response_headers(&mut s, false);
            engine.response_body(&mut s, primary_len, true);
            engine.stream_done(&mut s);
            if engine.host().rung.replace(false) {
                let before = engine.host().token.get();
                engine.doorbell();
                let token = engine.host().token.get();
                if token != before {
                    shadowed += 1;
                    engine.call_response(token, 4, dark_len, 0);
                }
            }
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(iterations.max(1));
        println!("{us:.3}");
    }
    // The mode did what it says: every request shadowed, or none.
    let want = u64::from(rounds) * u64::from(iterations);
    let ok = match kind {
        "d" | "e" => shadowed == want && engine.pending_pairs() == 0,
        _ => shadowed == 0,
    };
    // Host calls per request, by kind, for the script.
    let calls: Vec<String> = CALLS
        .iter()
        .zip(&engine.host().calls)
        .filter(|(_, c)| c.get() > 0)
        .map(|(name, c)| format!("{name}={:.2}", c.get() as f64 / want.max(1) as f64))
        .collect();
    println!("calls {}", calls.join(" "));
    if !ok {
        eprintln!(
            "engine-{kind}: {shadowed} of {want} requests shadowed, {} pending",
            engine.pending_pairs()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
