//! A host for native tests and fuzzing: plays Envoy for one or several
//! workers of one process, and records every call the engine makes.
//!
//! [`Process`] is what workers share (clock, shared data, stats, log);
//! [`Worker`] is one worker's engine with its [`FakeHost`], and runs the
//! callbacks the way Envoy does: stream callbacks with the stream's maps
//! and buffers in place, root callbacks (doorbell, tick, call answers) with
//! the root context active. Like the SDK, it refuses (panics on) a call
//! sent outside a root callback and an answer to a token it never issued.
//! Test support: a failed check panics.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use super::{Engine, InvalidConfig, Stream};
use crate::headermap;
use crate::host::{Body, Call, Headers, Host, HostError, Level, SetResult, BAD_ARGUMENT};
use crate::vocab::MetricKind;

/// A status the fake answers with (proxy-wasm numbering).
const NOT_FOUND: u32 = 1;

/// What all workers of one process share.
#[derive(Default)]
pub struct ProcessState {
    pub now_ms: u64,
    shared: HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
    /// The next this many CAS writes fail as if another worker wrote first.
    pub cas_conflicts: u32,
    /// Counters and gauges by name.
    pub stats: BTreeMap<String, i64>,
    pub histograms: BTreeMap<String, Vec<u64>>,
    pub logs: Vec<(Level, String)>,
    /// Clusters that exist; a call to another one is refused.
    pub clusters: HashSet<String>,
}

#[derive(Clone, Default)]
pub struct Process(pub Rc<RefCell<ProcessState>>);

impl Process {
    pub fn new(now_ms: u64, clusters: &[&str]) -> Process {
        let p = Process::default();
        {
            let mut st = p.0.borrow_mut();
            st.now_ms = now_ms;
            st.clusters = clusters.iter().map(|c| c.to_string()).collect();
        }
        p
    }

    pub fn advance(&self, ms: u64) {
        let mut st = self.0.borrow_mut();
        st.now_ms = st.now_ms.saturating_add(ms);
    }

    pub fn now(&self) -> u64 {
        self.0.borrow().now_ms
    }

    /// A counter or gauge by its full name (`darklaunch.l.matched`).
    pub fn stat(&self, name: &str) -> i64 {
        self.0.borrow().stats.get(name).copied().unwrap_or(0)
    }

    /// Every counter and gauge of a launch, by the name after
    /// `darklaunch.<launch>.`.
    pub fn launch_stats(&self, launch: &str) -> BTreeMap<String, i64> {
        let prefix = format!("darklaunch.{launch}.");
        self.0
            .borrow()
            .stats
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_string(), *v)))
            .collect()
    }

    pub fn histogram(&self, name: &str) -> Vec<u64> {
        self.0
            .borrow()
            .histograms
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    pub fn logs(&self, level: Level) -> Vec<String> {
        self.0
            .borrow()
            .logs
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, m)| m.clone())
            .collect()
    }
}

/// A call the engine sent and the host has not answered yet.
#[derive(Debug, Clone)]
pub struct SentCall {
    pub token: u32,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u32,
}

impl SentCall {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One worker's side of the host.
#[derive(Default)]
pub struct WorkerState {
    /// Metric names by id (ids are per VM in Envoy).
    metrics: Vec<(MetricKind, String)>,
    rng: u64,
    /// The maps and buffers of the callback being run.
    maps: HashMap<&'static str, Vec<u8>>,
    buffers: HashMap<&'static str, Vec<u8>>,
    /// A root-context callback is running.
    in_root: bool,
    next_token: u32,
    /// Calls sent and not answered, in the order they left.
    pub outstanding: Vec<SentCall>,
    /// Every call ever sent.
    pub sent: Vec<SentCall>,
    /// The doorbell was rung and its callback has not run yet.
    pub doorbell: bool,
    pub rings: u32,
    pub doorbell_broken: bool,
    /// Body bytes read from the host, per buffer.
    pub body_reads: HashMap<&'static str, usize>,
}

#[derive(Clone)]
pub struct FakeHost {
    pub process: Process,
    pub worker: Rc<RefCell<WorkerState>>,
}

fn map_key(map: Headers) -> &'static str {
    match map {
        Headers::Request => "request",
        Headers::Response => "response",
        Headers::ResponseTrailers => "response_trailers",
        Headers::CallResponse => "call",
        Headers::CallTrailers => "call_trailers",
    }
}

fn buffer_key(buffer: Body) -> &'static str {
    match buffer {
        Body::Request => "request",
        Body::Response => "response",
        Body::CallResponse => "call",
    }
}

impl Host for FakeHost {
    fn now_ms(&self) -> u64 {
        self.process.now()
    }

    fn random_u32(&self) -> u32 {
        // xorshift64*: deterministic per worker.
        let mut w = self.worker.borrow_mut();
        let mut x = w.rng | 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        w.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    fn log(&self, level: Level, msg: &str) {
        self.process
            .0
            .borrow_mut()
            .logs
            .push((level, msg.to_string()));
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        let mut w = self.worker.borrow_mut();
        if let Some(i) = w.metrics.iter().position(|(_, n)| n == name) {
            return Ok(i as u32);
        }
        w.metrics.push((kind, name.to_string()));
        if kind != MetricKind::Histogram {
            self.process
                .0
                .borrow_mut()
                .stats
                .entry(name.to_string())
                .or_insert(0);
        }
        Ok(w.metrics.len() as u32 - 1)
    }

    fn increment(&self, id: u32, by: i64) {
        let (kind, name) = self.worker.borrow().metrics[id as usize].clone();
        assert!(
            kind == MetricKind::Gauge || by > 0,
            "counter {name} incremented by {by}"
        );
        assert_ne!(kind, MetricKind::Histogram, "increment of histogram {name}");
        *self.process.0.borrow_mut().stats.entry(name).or_insert(0) += by;
    }

    fn record(&self, id: u32, value: u64) {
        let (kind, name) = self.worker.borrow().metrics[id as usize].clone();
        let mut p = self.process.0.borrow_mut();
        match kind {
            MetricKind::Histogram => p.histograms.entry(name).or_default().push(value),
            MetricKind::Gauge => {
                p.stats.insert(name, value as i64);
            }
            MetricKind::Counter => *p.stats.entry(name).or_insert(0) += value as i64,
        }
    }

    fn shared_get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
        Ok(match self.process.0.borrow().shared.get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, None),
        })
    }

    fn shared_set(
        &self,
        key: &str,
        value: &[u8],
        cas: Option<u32>,
    ) -> Result<SetResult, HostError> {
        let mut p = self.process.0.borrow_mut();
        if p.cas_conflicts > 0 {
            p.cas_conflicts -= 1;
            return Ok(SetResult::CasMismatch);
        }
        let current = p.shared.get(key).map(|(_, c)| *c);
        if cas.is_some() && cas != current {
            return Ok(SetResult::CasMismatch);
        }
        p.next_cas += 1;
        let next = p.next_cas;
        p.shared.insert(key.to_string(), (value.to_vec(), next));
        Ok(SetResult::Written)
    }

    fn header_map(&self, which: Headers) -> Result<Vec<u8>, HostError> {
        self.worker
            .borrow()
            .maps
            .get(map_key(which))
            .cloned()
            .ok_or(HostError(NOT_FOUND))
    }

    fn body(&self, which: Body, max: usize) -> Result<Vec<u8>, HostError> {
        let mut w = self.worker.borrow_mut();
        let key = buffer_key(which);
        let bytes = w.buffers.get(key).cloned().unwrap_or_default();
        let out = bytes
            .get(..max.min(bytes.len()))
            .unwrap_or_default()
            .to_vec();
        *w.body_reads.entry(key).or_insert(0) += out.len();
        Ok(out)
    }

    fn dispatch(&self, call: Call<'_>) -> Result<u32, HostError> {
        let mut w = self.worker.borrow_mut();
        assert!(
            w.in_root,
            "a call sent outside a root-context callback: its answer would be lost"
        );
        for pseudo in [":method", ":path", ":authority"] {
            if !call.headers.iter().any(|(k, _)| k == pseudo) {
                return Err(HostError(BAD_ARGUMENT));
            }
        }
        if !self.process.0.borrow().clusters.contains(call.cluster) {
            return Err(HostError(BAD_ARGUMENT));
        }
        w.next_token += 1;
        let sent = SentCall {
            token: w.next_token,
            cluster: call.cluster.to_string(),
            headers: call.headers.to_vec(),
            body: call.body.to_vec(),
            timeout_ms: call.timeout_ms,
        };
        w.outstanding.push(sent.clone());
        w.sent.push(sent);
        Ok(w.next_token)
    }

    fn ring_doorbell(&self) -> Result<(), HostError> {
        let mut w = self.worker.borrow_mut();
        if w.doorbell_broken {
            return Err(HostError(BAD_ARGUMENT));
        }
        w.rings += 1;
        w.doorbell = true;
        Ok(())
    }
}

/// What an answered call brings back.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Status, headers (names lower-case) and body.
    Response(u16, Vec<(String, Vec<u8>)>, Vec<u8>),
    /// No headers at all: the host's way of saying the call was reset.
    Reset,
    /// Status, headers, body and trailers (a gRPC answer).
    WithTrailers(u16, Vec<(String, Vec<u8>)>, Vec<u8>, Vec<(String, Vec<u8>)>),
}

impl Answer {
    pub fn json(status: u16, body: &str) -> Answer {
        Answer::Response(
            status,
            vec![("content-type".into(), b"application/json".to_vec())],
            body.as_bytes().to_vec(),
        )
    }

    /// Envoy's own reply to a call that timed out.
    pub fn timeout() -> Answer {
        Answer::Response(504, Vec::new(), b"upstream request timeout".to_vec())
    }
}

/// One worker: its engine and its host, driven callback by callback.
pub struct Worker {
    pub engine: Engine<FakeHost>,
    pub host: FakeHost,
}

impl Worker {
    /// A worker of `process` running `config` (which must be valid).
    pub fn new(process: &Process, seed: u64, config: &str) -> Worker {
        let host = FakeHost {
            process: process.clone(),
            worker: Rc::new(RefCell::new(WorkerState {
                rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
                ..WorkerState::default()
            })),
        };
        let mut engine = Engine::new(host.clone());
        if let Err(e) = engine.configure(config.as_bytes(), InvalidConfig::Refuse, "test") {
            panic!("test configuration refused: {e}");
        }
        Worker { engine, host }
    }

    fn set_map(&self, map: Headers, pairs: &[(String, Vec<u8>)]) {
        let refs: Vec<(&str, &[u8])> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        self.host
            .worker
            .borrow_mut()
            .maps
            .insert(map_key(map), headermap::encode(&refs));
    }

    fn set_buffer(&self, buffer: Body, bytes: &[u8]) {
        self.host
            .worker
            .borrow_mut()
            .buffers
            .insert(buffer_key(buffer), bytes.to_vec());
    }

    /// Leave a callback: its maps and buffers are gone.
    fn clear(&self) {
        let mut w = self.host.worker.borrow_mut();
        w.maps.clear();
        w.buffers.clear();
    }

    /// A new stream whose request headers arrive (`end`: with no body).
    pub fn request(&mut self, headers: &[(&str, &str)], end: bool) -> Stream {
        let mut s = self.engine.stream();
        let pairs: Vec<(String, Vec<u8>)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        self.set_map(Headers::Request, &pairs);
        self.engine.request_headers(&mut s, end);
        self.clear();
        s
    }

    /// A GET of `path` with `extra` headers, ending with its headers.
    pub fn get(&mut self, path: &str, extra: &[(&str, &str)]) -> Stream {
        let mut h = vec![
            (":method", "GET"),
            (":path", path),
            (":authority", "api:8080"),
            ("x-request-id", "req-1"),
        ];
        h.extend_from_slice(extra);
        self.request(&h, true)
    }

    pub fn request_body(&mut self, s: &mut Stream, chunk: &[u8], end: bool) {
        self.set_buffer(Body::Request, chunk);
        self.engine.request_body(s, chunk.len(), end);
        self.clear();
    }

    pub fn request_trailers(&mut self, s: &mut Stream) {
        self.engine.request_trailers(s);
    }

    /// The primary's response headers (`end`: with no body).
    pub fn response_headers(
        &mut self,
        s: &mut Stream,
        status: u16,
        headers: &[(&str, &str)],
        end: bool,
    ) {
        let mut pairs = vec![(":status".to_string(), status.to_string().into_bytes())];
        pairs.extend(
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())),
        );
        self.set_map(Headers::Response, &pairs);
        self.engine.response_headers(s, end);
        self.clear();
    }

    pub fn response_body(&mut self, s: &mut Stream, chunk: &[u8], end: bool) {
        self.set_buffer(Body::Response, chunk);
        self.engine.response_body(s, chunk.len(), end);
        self.clear();
    }

    pub fn response_trailers(&mut self, s: &mut Stream) {
        self.engine.response_trailers(s);
    }

    /// The primary's response ends with these trailers.
    pub fn response_trailers_with(&mut self, s: &mut Stream, trailers: &[(&str, &str)]) {
        let pairs: Vec<(String, Vec<u8>)> = trailers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        self.set_map(Headers::ResponseTrailers, &pairs);
        self.engine.response_trailers(s);
        self.clear();
    }

    /// A whole JSON response: headers, then the body ending the stream.
    pub fn respond_json(&mut self, s: &mut Stream, status: u16, body: &str) {
        self.response_headers(s, status, &[("content-type", "application/json")], false);
        self.response_body(s, body.as_bytes(), true);
    }

    /// The stream ends (Envoy's `on_log` and `on_done`).
    pub fn done(&mut self, s: &mut Stream) {
        self.engine.stream_done(s);
    }

    fn in_root<T>(&mut self, f: impl FnOnce(&mut Engine<FakeHost>) -> T) -> T {
        self.host.worker.borrow_mut().in_root = true;
        let out = f(&mut self.engine);
        self.host.worker.borrow_mut().in_root = false;
        out
    }

    /// The doorbell's callback runs, if it was rung.
    pub fn doorbell(&mut self) {
        let rung = std::mem::take(&mut self.host.worker.borrow_mut().doorbell);
        if rung {
            self.in_root(|e| e.doorbell());
        }
    }

    pub fn tick(&mut self) {
        self.in_root(|e| e.tick());
    }

    pub fn teardown(&mut self) {
        self.in_root(|e| e.teardown());
    }

    /// Calls sent and not answered yet.
    pub fn outstanding(&self) -> Vec<SentCall> {
        self.host.worker.borrow().outstanding.clone()
    }

    /// Every call sent so far.
    pub fn sent(&self) -> Vec<SentCall> {
        self.host.worker.borrow().sent.clone()
    }

    /// The host answers call `token`.
    pub fn answer(&mut self, token: u32, answer: Answer) {
        let known = {
            let mut w = self.host.worker.borrow_mut();
            let at = w.outstanding.iter().position(|c| c.token == token);
            at.map(|i| w.outstanding.remove(i))
        };
        assert!(known.is_some(), "the host answered unknown token {token}");
        let (headers, body_size, trailers) = match &answer {
            Answer::Reset => (0, 0, 0),
            Answer::Response(status, headers, body) => {
                let mut pairs = vec![(":status".to_string(), status.to_string().into_bytes())];
                pairs.extend(headers.iter().cloned());
                self.set_map(Headers::CallResponse, &pairs);
                self.set_buffer(Body::CallResponse, body);
                (pairs.len(), body.len(), 0)
            }
            Answer::WithTrailers(status, headers, body, trailers) => {
                let mut pairs = vec![(":status".to_string(), status.to_string().into_bytes())];
                pairs.extend(headers.iter().cloned());
                self.set_map(Headers::CallResponse, &pairs);
                self.set_map(Headers::CallTrailers, trailers);
                self.set_buffer(Body::CallResponse, body);
                (pairs.len(), body.len(), trailers.len())
            }
        };
        self.in_root(|e| e.call_response(token, headers, body_size, trailers));
        self.clear();
    }

    /// The host forgets call `token`: no answer will ever come.
    pub fn lose(&mut self, token: u32) {
        self.host
            .worker
            .borrow_mut()
            .outstanding
            .retain(|c| c.token != token);
    }

    /// Body bytes the engine read of `buffer` so far.
    pub fn body_reads(&self, buffer: Body) -> usize {
        self.host
            .worker
            .borrow()
            .body_reads
            .get(buffer_key(buffer))
            .copied()
            .unwrap_or(0)
    }
}
