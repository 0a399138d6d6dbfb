//! proxy-wasm glue (wasm32 only): the root context owns every pending pair,
//! the HTTP contexts observe the primary stream without ever pausing it.
//!
//! Why the root owns the pairs (DESIGN fact 1): the SDK delivers a dispatched
//! call's answer to the context that was active when the call was made, and
//! drops it if that context is gone. An HTTP context is gone as soon as the
//! client has its response, usually before a slower dark side answers. So the
//! HTTP context only queues a job and rings a per-worker shared queue; the
//! root dispatches from `on_queue_ready` and receives every answer itself.
//!
//! Why a doorbell rather than entering the root at once (possible through
//! the SDK's exported `proxy_on_queue_ready`): a call dispatched inside the
//! request callback leaves before the primary does, and its cost (100–200
//! µs at p50 under light load, in alternating runs; BENCHMARKS.md) is added
//! to the primary's latency. Rung from the request callback, the doorbell runs once Envoy
//! has forwarded the primary, in the same event-loop iteration as a rule.
//!
//! Every host call but `dispatch_http_call` goes through `host`, whose
//! wrappers turn every status into an `Err`: the SDK's panic on statuses
//! they do not expect, and a panic would kill the VM.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

use crate::compare::BodyMode;
use crate::config::{self, Config, Launch};
use crate::decision::{self, Decision, RequestView, SkipReason};
use crate::fields;
use crate::headermap;
use crate::host;
use crate::limits::{Admit, BreakerState, Bucket};
use crate::noise::{Class, NoiseModel};
use crate::outcome::{self, Captured, DarkAnswer};
use crate::shadow::{self, LogLimiter, MismatchLog};
use crate::stats::{DarkClass, Kind, LaunchStats};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|id| -> Box<dyn RootContext> { Box::new(Root::new(id)) });
}}

fn log(level: LogLevel, msg: &str) {
    host::log(level, msg);
}

fn now_ms() -> u64 {
    host::now_ms()
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    match getrandom::getrandom(&mut b) {
        Ok(()) => u32::from_le_bytes(b),
        // Never expected (WASI random_get works in Envoy); sample by the clock.
        Err(_) => (now_ms() as u32).wrapping_mul(2_654_435_761),
    }
}

fn inc(id: u32, by: i64) {
    host::increment(id, by);
}

fn record(id: u32, v: u64) {
    host::record(id, v);
}

thread_local! {
    /// Metric ids by name, per VM: `define_metric` hands out a fresh id at
    /// every call, so a configuration reload must reuse the ones it has.
    static METRICS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

fn define_metric(kind: Kind, name: &str) -> Result<u32, String> {
    if let Some(id) = METRICS.with(|m| m.borrow().get(name).copied()) {
        return Ok(id);
    }
    let t = match kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Histogram => MetricType::Histogram,
    };
    let id = host::define_metric(t, name).map_err(|s| format!("define_metric({name}): {s:?}"))?;
    METRICS.with(|m| m.borrow_mut().insert(name.to_string(), id));
    Ok(id)
}

/// A launch as the filter runs it: compiled rules plus metric ids.
struct LaunchRt {
    launch: Launch,
    stats: LaunchStats,
    /// Shadow calls of this launch in flight on this worker.
    in_flight: Cell<u32>,
    /// Shared-data keys of the process-wide token bucket and breaker.
    bucket_key: String,
    breaker_key: String,
    /// Successful calls this worker has not yet added to the shared breaker,
    /// and when it last did: successes are batched (see `breaker_result`).
    breaker_successes: Cell<u32>,
    breaker_flushed_ms: Cell<u64>,
    /// The `breaker_open` value this worker last recorded.
    breaker_gauge: Cell<Option<bool>>,
    /// What A/A pairs taught this worker about nondeterministic fields.
    noise: RefCell<NoiseModel>,
    /// Per-field counter ids by folded pointer (`field_other` for those
    /// past the bound), and the shared-data key of the admitted list.
    fields: RefCell<HashMap<String, u32>>,
    fields_key: String,
    /// Pointers already announced as learned noise in the log.
    announced_noise: RefCell<HashSet<String>>,
}

impl LaunchRt {
    fn new(launch: Launch, stats: LaunchStats) -> Self {
        LaunchRt {
            bucket_key: format!("darklaunch.bucket.{}", launch.name),
            breaker_key: format!("darklaunch.breaker.{}", launch.name),
            fields_key: format!("darklaunch.fields.{}", launch.name),
            launch,
            stats,
            breaker_successes: Cell::new(0),
            breaker_flushed_ms: Cell::new(0),
            breaker_gauge: Cell::new(None),
            in_flight: Cell::new(0),
            noise: RefCell::new(NoiseModel::default()),
            fields: RefCell::new(HashMap::new()),
            announced_noise: RefCell::new(HashSet::new()),
        }
    }

    /// The counter of one differing field: its own while fewer than
    /// `fields::MAX_FIELDS` pointers have one (process-wide), else `other`.
    fn field_counter(&self, pointer: &str) -> u32 {
        if let Some(id) = self.fields.borrow().get(pointer) {
            return *id;
        }
        let other = self.stats.field_other;
        let Some(suffix) = fields::stat_suffix(pointer) else {
            return other;
        };
        let admitted = shared_update(&self.fields_key, &mut |cur| {
            let (ok, write) = fields::admit(cur, suffix);
            (write, ok)
        })
        .unwrap_or(false);
        let id = if admitted {
            let name = format!("darklaunch.{}.field_mismatch.{suffix}", self.launch.name);
            define_metric(Kind::Counter, &name).unwrap_or(other)
        } else {
            other
        };
        let mut cache = self.fields.borrow_mut();
        // Pointers under `other` are cached too, up to a bound: past it they
        // are looked up in shared data again, which stays correct.
        if id != other || cache.len() < 4 * fields::MAX_FIELDS {
            cache.insert(pointer.to_string(), id);
        }
        id
    }

    /// `limits.max_rps`: take a token from the bucket all workers share.
    /// If shared data cannot be read or updated, the call is let through:
    /// the per-worker in-flight limit still bounds it.
    fn take_token(&self, now: u64) -> bool {
        let rate = self.launch.limits.max_rps;
        if rate <= 0.0 {
            return true;
        }
        shared_update(&self.bucket_key, &mut |cur| {
            let (b, ok) = Bucket::take(cur.and_then(Bucket::decode), now, rate);
            (Some(b.encode().to_vec()), ok)
        })
        .unwrap_or(true)
    }

    /// Ask the shared breaker whether a call may leave. The common, closed
    /// case costs one read and no write.
    fn admit(&self, now: u64) -> Admit {
        if !self.breaker_is_open() {
            return Admit::Yes;
        }
        let cfg = &self.launch.breaker;
        let out = shared_update(&self.breaker_key, &mut |cur| {
            let mut st = cur.and_then(BreakerState::decode).unwrap_or_default();
            let a = st.admit(now, cfg);
            let write = (a == Admit::Trial).then(|| st.encode().to_vec());
            (write, (a, st.is_open()))
        });
        match out {
            Some((a, open)) => {
                self.record_breaker_gauge(open);
                a
            }
            None => Admit::No,
        }
    }

    /// Read-only: is the shared breaker holding the launch off?
    fn breaker_is_open(&self) -> bool {
        host::shared_get(&self.breaker_key)
            .ok()
            .and_then(|(b, _)| b)
            .and_then(|b| BreakerState::decode(&b))
            .is_some_and(|st| st.is_open())
    }

    /// Feed a finished call to the shared breaker. Successes are batched
    /// per worker and written at most every `BREAKER_FLUSH_MS` (or with the
    /// next failure, or on tick): a healthy dark side then costs no
    /// shared-data write per call. Failures and trial results are written at
    /// once, so the failure ratio is exact whenever a failure is counted.
    fn breaker_result(&self, now: u64, failed: bool, trial: bool) {
        if !failed && !trial {
            self.breaker_successes
                .set(self.breaker_successes.get().saturating_add(1));
            if now.saturating_sub(self.breaker_flushed_ms.get()) < BREAKER_FLUSH_MS {
                return;
            }
        }
        self.breaker_flush(now, u32::from(failed && !trial), trial.then_some(failed));
    }

    /// Write the batched successes, `failures` more failed calls and the
    /// result of a trial (`Some(failed)`) to the shared breaker.
    fn breaker_flush(&self, now: u64, failures: u32, trial: Option<bool>) {
        let successes = self.breaker_successes.replace(0);
        self.breaker_flushed_ms.set(now);
        if successes == 0 && failures == 0 && trial.is_none() {
            return;
        }
        let cfg = &self.launch.breaker;
        let open = shared_update(&self.breaker_key, &mut |cur| {
            let mut st = cur.and_then(BreakerState::decode).unwrap_or_default();
            st.record_calls(now, cfg, successes, failures);
            if let Some(failed) = trial {
                st.record(now, cfg, failed, true);
            }
            (Some(st.encode().to_vec()), st.is_open())
        });
        if let Some(open) = open {
            self.record_breaker_gauge(open);
        }
    }

    /// Record the `breaker_open` gauge when this worker sees it change.
    fn record_breaker_gauge(&self, open: bool) {
        if self.breaker_gauge.replace(Some(open)) != Some(open) {
            record(self.stats.breaker_open, u64::from(open));
        }
    }
}

/// Longest a worker keeps successful calls from the shared breaker.
const BREAKER_FLUSH_MS: u64 = 100;

/// What a shared-data update does: bytes to write (None: no write) and a result.
type Update<T> = (Option<Vec<u8>>, T);

/// Read-modify-write of a shared-data value with CAS, a few retries when
/// another worker wrote in between. `f` returns the bytes to write (None:
/// nothing to write) and a result. None when shared data is unusable.
fn shared_update<T>(key: &str, f: &mut dyn FnMut(Option<&[u8]>) -> Update<T>) -> Option<T> {
    for _ in 0..8 {
        let (cur, cas) = host::shared_get(key).ok()?;
        let (write, out) = f(cur.as_deref());
        let Some(bytes) = write else {
            return Some(out);
        };
        match host::shared_set(key, &bytes, cas) {
            Ok(host::SetResult::Written) => return Some(out),
            Ok(host::SetResult::CasMismatch) => continue,
            Err(_) => return None,
        }
    }
    None
}

struct Runtime {
    cfg: Config,
    launches: Vec<Rc<LaunchRt>>,
}

/// The primary side of a pair.
enum Primary {
    Pending,
    Done(Captured, u64),
    Incomplete,
}

/// One shadowed request waiting for both answers.
/// Which call a pair waits for: the dark version's, or an A/A copy sent to
/// `noise.cluster` to learn which fields differ between two primaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Dark,
    Aa,
}

struct Pair {
    launch: Rc<LaunchRt>,
    role: Role,
    forced: bool,
    method: String,
    path: String,
    request_id: String,
    created_ms: u64,
    primary: Primary,
    /// Set once the call has left: token and send time.
    call: Option<(u32, u64)>,
    /// The call is the breaker's half-open trial.
    trial: bool,
    dark: Option<(DarkAnswer, u64)>,
}

struct Job {
    pair: u64,
    headers: Vec<(String, String)>,
    body: Rc<Vec<u8>>,
}

/// Per-root (so per-worker) state shared by the root and its HTTP contexts.
#[derive(Default)]
struct Shared {
    runtime: Option<Rc<Runtime>>,
    queue_id: Option<u32>,
    /// The doorbell was rung and `on_queue_ready` has not run yet: jobs
    /// queued meanwhile need no second ring.
    doorbell_rung: bool,
    jobs: VecDeque<Job>,
    pairs: HashMap<u64, Pair>,
    calls: HashMap<u32, u64>,
    next_pair: u64,
    log_limiter: LogLimiter,
}

impl Shared {
    fn new_pair(&mut self, pair: Pair) -> u64 {
        self.next_pair += 1;
        self.pairs.insert(self.next_pair, pair);
        self.next_pair
    }

    /// The primary side finished (or failed): settle the pair if the dark
    /// side is already there.
    /// `now` (ms) is the caller's clock reading: one host call serves a
    /// whole callback.
    fn primary_finished(&mut self, id: u64, primary: Primary, now: u64) {
        if let Some(p) = self.pairs.get_mut(&id) {
            p.primary = primary;
            if p.dark.is_some() {
                self.settle(id, now);
            }
        }
    }

    fn dark_finished(&mut self, id: u64, answer: DarkAnswer, dark_ms: u64, now: u64) {
        if let Some(p) = self.pairs.get_mut(&id) {
            let l = &p.launch;
            l.in_flight.set(l.in_flight.get().saturating_sub(1));
            inc(l.stats.in_flight, -1);
            let failed = match &answer {
                DarkAnswer::Timeout | DarkAnswer::Reset => true,
                DarkAnswer::Response(c) => DarkClass::of_status(c.status) == DarkClass::C5xx,
            };
            if p.role == Role::Dark {
                l.breaker_result(now, failed, p.trial);
            }
            p.dark = Some((answer, dark_ms));
            if !matches!(p.primary, Primary::Pending) {
                self.settle(id, now);
            }
        }
    }

    fn settle(&mut self, id: u64, now: u64) {
        let Some(pair) = self.pairs.remove(&id) else {
            return;
        };
        let Some((dark, dark_ms)) = &pair.dark else {
            return;
        };
        let l = &pair.launch;
        let s = &l.stats;
        let (primary, primary_ms) = match &pair.primary {
            Primary::Done(c, ms) => (Some(c), Some(*ms)),
            _ => (None, None),
        };
        let st = outcome::settle(&l.launch.compare, primary, dark);
        if pair.role == Role::Aa {
            // An A/A pair only teaches the noise model; it is not a shadow.
            if let Ok(v) = &st.result {
                l.noise.borrow_mut().learn_aa(now, v);
            }
            return;
        }
        if let Some(id) = s.dark_response.get(st.dark as usize) {
            inc(*id, 1);
        }
        if let Some(id) = s.primary_response.get(st.primary.index()) {
            inc(*id, 1);
        }
        record(s.dark_ms, *dark_ms);
        if let Some(ms) = primary_ms {
            record(s.primary_ms, ms);
        }
        match st.result {
            Err(skip) => {
                if let Some(id) = s.compare_skipped.get(skip.index()) {
                    inc(*id, 1);
                }
            }
            Ok(v) => {
                inc(s.compared, 1);
                let class = {
                    let mut model = l.noise.borrow_mut();
                    model.learn_raw(now, &v);
                    model.classify(&v)
                };
                if class == Class::Noise {
                    inc(s.noise, 1);
                    announce_noise(l, &v);
                } else if class == Class::Mismatch {
                    inc(s.mismatch, 1);
                    let real = real_fields(l, &v);
                    for pointer in &real {
                        inc(l.field_counter(pointer), 1);
                    }
                    // A body whose every listed difference is learned noise
                    // does not make this pair a body mismatch.
                    let body = v.body
                        && (!real.is_empty()
                            || v.diffs.is_empty()
                            || v.diffs.len() >= crate::compare::MAX_DIFFS);
                    let kinds = [v.status, v.headers, body];
                    for (on, id) in kinds.iter().zip(s.mismatch_kind) {
                        if *on {
                            inc(id, 1);
                        }
                    }
                    let per_minute = self
                        .runtime
                        .as_ref()
                        .map_or(0, |r| r.cfg.mismatch_log_per_minute);
                    if self.log_limiter.allow(now, per_minute) {
                        let line = MismatchLog {
                            launch: &l.launch.name,
                            request_id: &pair.request_id,
                            method: &pair.method,
                            path: &pair.path,
                            kinds,
                            paths: real
                                .get(..real.len().min(crate::compare::MAX_PATHS))
                                .unwrap_or_default(),
                            primary_status: st.primary_status.unwrap_or(0),
                            dark_status: st.dark_status.unwrap_or(0),
                        }
                        .line();
                        log(LogLevel::Info, &line);
                    }
                }
            }
        }
    }
}

/// The differing body fields of a mismatch that are not learned noise,
/// each folded pointer once, in the comparator's order.
fn real_fields(l: &LaunchRt, v: &crate::compare::Verdict) -> Vec<String> {
    let model = l.noise.borrow();
    let mut seen = HashSet::new();
    v.diffs
        .iter()
        .filter(|d| seen.insert(d.pointer.as_str()) && !model.is_noise(&d.pointer))
        .map(|d| d.pointer.clone())
        .collect()
}

/// Log, once per worker and pointer, the fields a noise verdict cancelled.
fn announce_noise(l: &LaunchRt, v: &crate::compare::Verdict) {
    let mut announced = l.announced_noise.borrow_mut();
    for d in &v.diffs {
        if announced.len() < 256 && announced.insert(d.pointer.clone()) {
            let line = serde_json::json!({"launch": l.launch.name, "path": d.pointer});
            log(LogLevel::Info, &format!("darklaunch noise learned {line}"));
        }
    }
}

// ---------------------------------------------------------------------------
// Root context

struct Root {
    id: u32,
    shared: Rc<RefCell<Shared>>,
}

impl Root {
    fn new(id: u32) -> Self {
        Root {
            id,
            shared: Rc::new(RefCell::new(Shared::default())),
        }
    }

    fn configure(&mut self) -> Result<(), String> {
        let bytes = host::buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .map_err(|s| format!("cannot read the plugin configuration: {s:?}"))?;
        let cfg = config::parse(&bytes).map_err(|e| format!("invalid configuration: {e}"))?;
        let mut launches = Vec::with_capacity(cfg.launches.len());
        for launch in &cfg.launches {
            let stats = LaunchStats::define(&launch.name, &mut define_metric)?;
            launches.push(Rc::new(LaunchRt::new(launch.clone(), stats)));
        }
        let mut sh = self.shared.borrow_mut();
        if sh.queue_id.is_none() {
            // One queue per root context, so per worker: a queue belongs to
            // the last VM that registered its name (DESIGN fact 7).
            let name = format!("darklaunch.doorbell.{}.{:08x}", self.id, random_u32());
            let q = host::register_queue(&name)
                .map_err(|s| format!("cannot register shared queue: {s:?}"))?;
            sh.queue_id = Some(q);
        }
        sh.runtime = Some(Rc::new(Runtime { cfg, launches }));
        drop(sh);
        host::set_tick_period_ms(1000).map_err(|s| format!("cannot set tick period: {s:?}"))?;
        Ok(())
    }

    /// Send every queued shadow call. Runs with the root as the active
    /// context, so the answers come back here.
    fn dispatch_jobs(&mut self) {
        // One clock read per batch: the jobs leave within the same callback.
        let now = now_ms();
        loop {
            let Some(job) = self.shared.borrow_mut().jobs.pop_front() else {
                return;
            };
            let (launch, role) = match self.shared.borrow().pairs.get(&job.pair) {
                Some(p) => (p.launch.clone(), p.role),
                None => continue,
            };
            let l = &launch.launch;
            let s = &launch.stats;
            if role == Role::Aa {
                self.dispatch_aa(&launch, job, now);
                continue;
            }
            let admit = launch.admit(now);
            let refusal = if admit == Admit::No {
                Some(SkipReason::BreakerOpen)
            } else if launch.in_flight.get() >= l.limits.max_in_flight {
                Some(SkipReason::InFlight)
            } else if !launch.take_token(now) {
                Some(SkipReason::RateLimited)
            } else {
                None
            };
            if let Some(reason) = refusal {
                inc(s.skipped(reason), 1);
                self.shared.borrow_mut().pairs.remove(&job.pair);
                continue;
            }
            let headers: Vec<(&str, &str)> = job
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let body = (!job.body.is_empty()).then_some(job.body.as_slice());
            let sent = now;
            let res = hostcalls::dispatch_http_call(
                &l.dark_cluster,
                headers,
                body,
                vec![],
                Duration::from_millis(u64::from(l.timeout_ms)),
            );
            let mut sh = self.shared.borrow_mut();
            match res {
                Ok(token) => {
                    let forced = match sh.pairs.get_mut(&job.pair) {
                        Some(p) => {
                            p.call = Some((token, sent));
                            p.trial = admit == Admit::Trial;
                            p.forced
                        }
                        None => false,
                    };
                    sh.calls.insert(token, job.pair);
                    inc(s.shadowed, 1);
                    if forced {
                        inc(s.forced, 1);
                    }
                    launch
                        .in_flight
                        .set(launch.in_flight.get().saturating_add(1));
                    inc(s.in_flight, 1);
                }
                Err(status) => {
                    inc(s.skipped(SkipReason::DispatchFailed), 1);
                    sh.pairs.remove(&job.pair);
                    log(
                        LogLevel::Debug,
                        &format!(
                            "darklaunch: dispatch to cluster '{}' failed: {status:?}",
                            l.dark_cluster
                        ),
                    );
                }
            }
        }
    }

    /// Send an A/A copy to `noise.cluster`. It obeys the same limits and an
    /// open breaker holds it off (it never serves as the breaker's trial);
    /// a copy that cannot leave is simply dropped: it is not a shadow call.
    fn dispatch_aa(&mut self, launch: &LaunchRt, job: Job, now: u64) {
        let l = &launch.launch;
        let Some(noise) = &l.noise else {
            self.shared.borrow_mut().pairs.remove(&job.pair);
            return;
        };
        let ok = !launch.breaker_is_open()
            && launch.in_flight.get() < l.limits.max_in_flight
            && launch.take_token(now);
        let res = if ok {
            let headers: Vec<(&str, &str)> = job
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let body = (!job.body.is_empty()).then_some(job.body.as_slice());
            hostcalls::dispatch_http_call(
                &noise.cluster,
                headers,
                body,
                vec![],
                Duration::from_millis(u64::from(l.timeout_ms)),
            )
            .ok()
        } else {
            None
        };
        let mut sh = self.shared.borrow_mut();
        match res {
            Some(token) => {
                if let Some(p) = sh.pairs.get_mut(&job.pair) {
                    p.call = Some((token, now));
                }
                sh.calls.insert(token, job.pair);
                launch
                    .in_flight
                    .set(launch.in_flight.get().saturating_add(1));
                inc(launch.stats.in_flight, 1);
            }
            None => {
                sh.pairs.remove(&job.pair);
            }
        }
    }

    /// Expire pairs that can no longer complete normally, so memory stays
    /// bounded whatever the host does: a call unanswered well past its
    /// timeout counts as a reset; a primary still streaming a minute after
    /// the dark answer counts as incomplete; a job never dispatched counts
    /// as `dispatch_failed`.
    fn sweep(&mut self) {
        let now = now_ms();
        let mut sh = self.shared.borrow_mut();
        let mut lost_calls = Vec::new();
        let mut slow_primaries = Vec::new();
        let mut never_sent = Vec::new();
        for (id, p) in &sh.pairs {
            let timeout = u64::from(p.launch.launch.timeout_ms);
            match (&p.call, &p.dark) {
                (Some((token, sent)), None)
                    if now.saturating_sub(*sent) > timeout + SWEEP_GRACE_MS =>
                {
                    lost_calls.push((*id, *token));
                }
                (Some((_, sent)), Some((_, dark_ms)))
                    if matches!(p.primary, Primary::Pending)
                        && now.saturating_sub(sent + dark_ms) > PRIMARY_WAIT_MS =>
                {
                    slow_primaries.push(*id);
                }
                (None, _)
                    if now.saturating_sub(p.created_ms) > SWEEP_GRACE_MS
                        && !sh.jobs.iter().any(|j| j.pair == *id) =>
                {
                    never_sent.push(*id);
                }
                _ => {}
            }
        }
        for (id, token) in lost_calls {
            sh.calls.remove(&token);
            sh.dark_finished(id, DarkAnswer::Reset, 0, now);
        }
        for id in slow_primaries {
            sh.primary_finished(id, Primary::Incomplete, now);
        }
        for id in never_sent {
            if let Some(p) = sh.pairs.remove(&id) {
                if p.role == Role::Dark {
                    inc(p.launch.stats.skipped(SkipReason::DispatchFailed), 1);
                }
            }
        }
    }
}

/// How long past its timeout an unanswered call is kept.
const SWEEP_GRACE_MS: u64 = 5_000;
/// How long a dark answer waits for a primary response that is still streaming.
const PRIMARY_WAIT_MS: u64 = 60_000;

impl Context for Root {
    /// The plugin is being torn down (a configuration swap drained, or
    /// Envoy stops): answers still on their way will never reach us, so
    /// settle every pending pair now — unanswered calls as resets, primaries
    /// still streaming as incomplete — and keep the invariants whole.
    fn on_done(&mut self) -> bool {
        let now = now_ms();
        let mut sh = self.shared.borrow_mut();
        sh.jobs.clear();
        let ids: Vec<u64> = sh.pairs.keys().copied().collect();
        for id in ids {
            let (sent, answered, primary_pending) = match sh.pairs.get(&id) {
                Some(p) => (
                    p.call.is_some(),
                    p.dark.is_some(),
                    matches!(p.primary, Primary::Pending),
                ),
                None => continue,
            };
            if !sent {
                if let Some(p) = sh.pairs.remove(&id) {
                    if p.role == Role::Dark {
                        inc(p.launch.stats.skipped(SkipReason::DispatchFailed), 1);
                    }
                }
                continue;
            }
            if primary_pending {
                if let Some(p) = sh.pairs.get_mut(&id) {
                    p.primary = Primary::Incomplete;
                }
            }
            if !answered {
                sh.dark_finished(id, DarkAnswer::Reset, 0, now);
            } else {
                sh.settle(id, now);
            }
        }
        sh.calls.clear();
        true
    }

    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let mut sh = self.shared.borrow_mut();
        let Some(id) = sh.calls.remove(&token) else {
            return;
        };
        let Some(pair) = sh.pairs.get(&id) else {
            return;
        };
        let l = &pair.launch.launch;
        let sent = pair.call.map_or(0, |(_, t)| t);
        let captured = read_dark_response(l, num_headers, body_size);
        let answer = outcome::classify_dark(num_headers, captured);
        let now = now_ms();
        sh.dark_finished(id, answer, now.saturating_sub(sent), now);
    }
}

fn read_dark_response(l: &Launch, num_headers: usize, body_size: usize) -> Captured {
    let mut c = Captured::default();
    if num_headers == 0 {
        return c;
    }
    (c.status, c.headers) =
        status_and_headers(MapType::HttpCallResponseHeaders, |n| wanted_header(l, n));
    // The body is needed to compare it, or to tell Envoy's own 5xx local
    // replies (connect failure, no healthy upstream) from the service's.
    if l.compare.body == BodyMode::None && c.status < 500 {
        return c;
    }
    // Read a little past the limit so Envoy's short local replies can be
    // recognised even under a tiny max_body_bytes.
    let want = body_size.min(l.max_body_bytes.max(64));
    if want > 0 {
        if let Ok(b) = host::buffer(BufferType::HttpCallResponseBody, 0, want) {
            c.body = b;
        }
    }
    if body_size > l.max_body_bytes {
        c.body_overflow = true;
    }
    c
}

/// A response's `:status` and a copy of the headers `wanted` names
/// (0 and none if the map cannot be read).
fn status_and_headers(
    kind: MapType,
    wanted: impl Fn(&str) -> bool,
) -> (u16, Vec<(String, Vec<u8>)>) {
    let (mut status, mut headers) = (0, Vec::new());
    if let Ok(raw) = host::header_map_bytes(kind) {
        for (name, value) in headermap::pairs(&raw) {
            if name == ":status" {
                status = parse_status(value);
            } else if wanted(name) {
                headers.push((name.to_string(), value.to_vec()));
            }
        }
    }
    (status, headers)
}

fn parse_status(v: &[u8]) -> u16 {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Response headers the comparison looks at.
fn wanted_header(l: &Launch, name: &str) -> bool {
    name == "content-type"
        || name == "content-encoding"
        || l.compare.headers.iter().any(|h| h == name)
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        match self.configure() {
            Ok(()) => true,
            Err(e) => {
                log(LogLevel::Error, &format!("darklaunch: {e}"));
                false
            }
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        // The queue is only a doorbell (one message per ring, one callback
        // per message); the jobs live in `Shared`.
        let _ = host::dequeue(queue_id);
        self.shared.borrow_mut().doorbell_rung = false;
        self.dispatch_jobs();
    }

    fn on_tick(&mut self) {
        // Should a ring ever get lost, the next request rings again.
        self.shared.borrow_mut().doorbell_rung = false;
        self.dispatch_jobs();
        self.sweep();
        let runtime = self.shared.borrow().runtime.clone();
        if let Some(rt) = runtime {
            let now = now_ms();
            for l in &rt.launches {
                if now.saturating_sub(l.breaker_flushed_ms.get()) >= BREAKER_FLUSH_MS {
                    l.breaker_flush(now, 0, None);
                }
            }
        }
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        let runtime = self.shared.borrow().runtime.clone();
        Some(Box::new(Http {
            shared: self.shared.clone(),
            runtime,
            req: None,
            resp: None,
            pairs: Vec::new(),
            done: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

// ---------------------------------------------------------------------------
// HTTP context

struct Candidate {
    launch: Rc<LaunchRt>,
    forced: bool,
}

/// What is kept of a primary request that at least one launch will shadow.
struct RequestCopy {
    candidates: Vec<Candidate>,
    headers: Vec<(String, Vec<u8>)>,
    method: String,
    path: String,
    request_id: String,
    started_ms: u64,
    body: StreamedBody,
    finished: bool,
}

/// The primary response as it streams through.
struct ResponseCopy {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: StreamedBody,
    finished: Option<u64>,
}

/// A body copied while it streams through: at most `cap` bytes kept, `len`
/// counts them all.
struct StreamedBody {
    bytes: Vec<u8>,
    len: usize,
    cap: usize,
}

impl StreamedBody {
    fn new(cap: usize) -> Self {
        StreamedBody {
            bytes: Vec::new(),
            len: 0,
            cap,
        }
    }

    /// Take in the chunk the host holds now, copying only what fits.
    fn read(&mut self, kind: BufferType, size: usize) {
        self.len = self.len.saturating_add(size);
        let room = self.cap.saturating_sub(self.bytes.len());
        if room == 0 || size == 0 {
            return;
        }
        if let Ok(chunk) = host::buffer(kind, 0, size.min(room)) {
            self.bytes.extend_from_slice(&chunk);
        }
    }
}

struct Http {
    shared: Rc<RefCell<Shared>>,
    runtime: Option<Rc<Runtime>>,
    req: Option<RequestCopy>,
    resp: Option<ResponseCopy>,
    /// Pairs registered for this request.
    pairs: Vec<u64>,
    done: bool,
}

impl Http {
    fn start(&mut self, end_of_stream: bool) {
        let Some(rt) = self.runtime.clone() else {
            return;
        };
        // One read of the whole map: a host call that returns data costs
        // about 2 µs (the host calls back into the module to allocate), the
        // whole map 2.5 µs, so two single-header reads would cost more. Most
        // requests match no launch: that is decided on the encoded map,
        // before anything is copied out of it.
        let Ok(raw) = host::header_map_bytes(MapType::HttpRequestHeaders) else {
            return;
        };
        let line = |name: &str| {
            headermap::pairs(&raw)
                .find(|(n, _)| *n == name)
                .map(|(_, v)| String::from_utf8_lossy(v))
                .unwrap_or_default()
        };
        let (method, path) = (line(":method"), line(":path"));
        if !rt
            .launches
            .iter()
            .any(|l| decision::matches_request_line(&l.launch, &method, &path))
        {
            return;
        }
        let (method, path) = (method.into_owned(), path.into_owned());
        let headers = headermap::decode(&raw);
        let text = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let view = RequestView {
            method: &method,
            path: &path,
            headers: &headers,
        };
        let flag = decision::read_flag(&rt.cfg, &view);
        let mut candidates = Vec::new();
        for l in &rt.launches {
            if !decision::matches(&l.launch, &view) {
                continue;
            }
            inc(l.stats.matched, 1);
            match decision::decide(&rt.cfg, &l.launch, &view, &flag, &mut random_u32) {
                Decision::Skip(r) => inc(l.stats.skipped(r), 1),
                Decision::Shadow { forced } => candidates.push(Candidate {
                    launch: l.clone(),
                    forced,
                }),
            }
        }
        if candidates.is_empty() {
            return;
        }
        let body_cap = candidates
            .iter()
            .map(|c| c.launch.launch.max_body_bytes)
            .max()
            .unwrap_or(0);
        let request_id = text("x-request-id");
        self.req = Some(RequestCopy {
            candidates,
            headers,
            method,
            path,
            request_id,
            started_ms: now_ms(),
            body: StreamedBody::new(body_cap),
            finished: false,
        });
        if end_of_stream {
            self.end_request();
        }
    }

    /// The whole request has passed: queue one shadow call per candidate.
    fn end_request(&mut self) {
        let Some(req) = self.req.as_mut() else {
            return;
        };
        if req.finished {
            return;
        }
        req.finished = true;
        let Some(rt) = self.runtime.clone() else {
            return;
        };
        let body = Rc::new(std::mem::take(&mut req.body.bytes));
        let mut sh = self.shared.borrow_mut();
        let log_path = req
            .path
            .split_once('?')
            .map_or(req.path.as_str(), |(p, _)| p)
            .to_string();
        for c in &req.candidates {
            let l = &c.launch.launch;
            if req.body.len > l.max_body_bytes {
                inc(c.launch.stats.skipped(SkipReason::BodyTooLarge), 1);
                continue;
            }
            let headers = shadow::shadow_headers(l, &rt.cfg.shadow_header, &req.headers);
            let aa = l
                .noise
                .as_ref()
                .is_some_and(|n| (random_u32() as f64) < n.percent / 100.0 * 4_294_967_296.0);
            let mut jobs = vec![(Role::Dark, headers)];
            if aa {
                let copy = jobs.first().map(|(_, h)| h.clone()).unwrap_or_default();
                jobs.push((Role::Aa, copy));
            }
            for (role, headers) in jobs {
                let id = sh.new_pair(Pair {
                    launch: c.launch.clone(),
                    role,
                    forced: c.forced,
                    method: req.method.clone(),
                    path: log_path.clone(),
                    request_id: req.request_id.clone(),
                    created_ms: req.started_ms,
                    primary: Primary::Pending,
                    call: None,
                    trial: false,
                    dark: None,
                });
                sh.jobs.push_back(Job {
                    pair: id,
                    headers,
                    body: body.clone(),
                });
                self.pairs.push(id);
            }
        }
        // The request headers are no longer needed.
        req.headers = Vec::new();
        if let Some(q) = sh.queue_id {
            if !self.pairs.is_empty() && !sh.doorbell_rung {
                if host::enqueue(q, b"1").is_ok() {
                    sh.doorbell_rung = true;
                } else {
                    // The root's on_tick drains the jobs all the same.
                    log(
                        LogLevel::Debug,
                        "darklaunch: doorbell failed, dispatching on tick",
                    );
                }
            }
        }
        drop(sh);
        if let Some(fin) = self.resp.as_ref().and_then(|r| r.finished) {
            self.deliver_primary(fin);
        }
    }

    fn capture_response_headers(&mut self, end_of_stream: bool) {
        let Some(req) = self.req.as_ref() else {
            return;
        };
        let (status, headers) = status_and_headers(MapType::HttpResponseHeaders, |n| {
            req.candidates
                .iter()
                .any(|c| wanted_header(&c.launch.launch, n))
        });
        self.resp = Some(ResponseCopy {
            status,
            headers,
            body: StreamedBody::new(
                req.candidates
                    .iter()
                    .filter(|c| c.launch.launch.compare.body != BodyMode::None)
                    .map(|c| c.launch.launch.max_body_bytes)
                    .max()
                    .unwrap_or(0),
            ),
            finished: None,
        });
        if end_of_stream {
            self.end_response();
        }
    }

    fn end_response(&mut self) {
        let started = self.req.as_ref().map_or(0, |r| r.started_ms);
        let Some(resp) = self.resp.as_mut() else {
            return;
        };
        if resp.finished.is_some() {
            return;
        }
        let ms = now_ms().saturating_sub(started);
        resp.finished = Some(ms);
        if self.req.as_ref().is_some_and(|r| r.finished) {
            self.deliver_primary(ms);
        }
    }

    /// Hand the finished primary response to every pair of this request.
    fn deliver_primary(&mut self, primary_ms: u64) {
        let Some(resp) = self.resp.as_ref() else {
            return;
        };
        // When the response ended: no second clock read.
        let now = self
            .req
            .as_ref()
            .map_or(0, |r| r.started_ms)
            .saturating_add(primary_ms);
        let mut sh = self.shared.borrow_mut();
        for id in std::mem::take(&mut self.pairs) {
            let max = match sh.pairs.get(&id) {
                Some(p) => p.launch.launch.max_body_bytes,
                None => continue,
            };
            let captured = Captured {
                status: resp.status,
                headers: resp.headers.clone(),
                body: resp
                    .body
                    .bytes
                    .get(..max.min(resp.body.bytes.len()))
                    .unwrap_or_default()
                    .to_vec(),
                body_overflow: resp.body.len > max,
            };
            sh.primary_finished(id, Primary::Done(captured, primary_ms), now);
        }
    }

    /// The stream is over. A request that never finished cannot be shadowed;
    /// pairs whose primary response never finished are settled as incomplete.
    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        if let Some(req) = self.req.as_mut() {
            if !req.finished {
                req.finished = true;
                for c in &req.candidates {
                    inc(c.launch.stats.skipped(SkipReason::DispatchFailed), 1);
                }
            }
        }
        if self.pairs.is_empty() {
            return;
        }
        let now = now_ms();
        let mut sh = self.shared.borrow_mut();
        for id in std::mem::take(&mut self.pairs) {
            sh.primary_finished(id, Primary::Incomplete, now);
        }
    }
}

impl Context for Http {
    fn on_done(&mut self) -> bool {
        self.finish();
        true
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.start(end_of_stream);
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if let Some(req) = self.req.as_mut() {
            if !req.finished {
                req.body.read(BufferType::HttpRequestBody, body_size);
                if end_of_stream {
                    self.end_request();
                }
            }
        }
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        self.end_request();
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.capture_response_headers(end_of_stream);
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if let Some(resp) = self.resp.as_mut() {
            if resp.finished.is_none() {
                resp.body.read(BufferType::HttpResponseBody, body_size);
                if end_of_stream {
                    self.end_response();
                }
            }
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        self.end_response();
        Action::Continue
    }

    fn on_log(&mut self) {
        self.finish();
    }
}
