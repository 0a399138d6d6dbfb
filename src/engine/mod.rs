//! The life of a shadowed pair, host-agnostic.
//!
//! One [`Engine`] per worker (per proxy-wasm root context) owns every pair
//! of that worker from the moment its request has passed until it is
//! counted. The proxy-wasm glue (`filter.rs`) only translates callbacks into
//! calls of this module; native tests drive it with a fake host.
//!
//! # A pair's life
//!
//! 1. **Stream** (`stream.rs`): the request's headers decide which launches
//!    shadow it; its body is copied as it passes; at its end one pair per
//!    shadowing launch (and one per A/A copy) is created and a job queued,
//!    and the doorbell rung.
//! 2. **Dispatch** ([`Engine::doorbell`], from a root-context callback):
//!    admission — the breaker, then `max_in_flight`, then the token bucket,
//!    in that one order — and the call. Calls are sent from the root context
//!    because the host delivers an answer to the context that was active
//!    when the call left, and an HTTP context is usually gone by the time a
//!    slower dark side answers; sending them from the root context after the
//!    request callback also keeps the call's cost off the primary's path.
//! 3. **Answers**: the dark answer ([`Engine::call_response`]) and the
//!    primary's response (from the stream), in either order.
//! 4. **Settlement**, once both are in: outcome, comparison, noise, per-field
//!    counters, stats, mismatch log. A pair counts against `max_in_flight`
//!    from dispatch until here, so memory is bounded by it.
//! 5. **Sweep** ([`Engine::tick`]) settles pairs that can no longer finish
//!    normally, and **teardown** ([`Engine::teardown`]) every pair still
//!    pending, so each pair is counted exactly once.

mod configure;
mod metrics;
mod samples;
mod stream;

#[cfg(test)]
mod capture_tests;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fake;
#[cfg(test)]
mod grpc_tests;
#[cfg(any(test, feature = "fuzzing"))]
pub mod sim;
#[cfg(test)]
mod tests;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

use crate::capture::SharedCapture;
use crate::compare::BodyMode;
use crate::config::{Config, Launch};
use crate::fields::FieldCounters;
use crate::grpc;
use crate::headermap;
use crate::host::{Body, Call, Headers, Host, HostError, Level, BAD_ARGUMENT};
use crate::limits::{Admit, SharedBreaker, SharedBucket};
use crate::noise::{Class, NoiseModel};
use crate::outcome::{self, Captured, DarkAnswer};
use crate::shadow::{LogLimiter, MismatchLog};
use crate::vocab::{Histogram, Scalar, SkipReason};

#[cfg(any(test, feature = "fuzzing"))]
pub use configure::Configured;
pub use configure::InvalidConfig;
use metrics::LaunchStats;
use samples::{Answers, Export, ExportCall};
pub use stream::Stream;

/// How long past its timeout an unanswered call is kept.
const SWEEP_GRACE_MS: u64 = 5_000;
/// How long a dark answer waits for a primary response still streaming.
const PRIMARY_WAIT_MS: u64 = 60_000;
/// Learned-noise pointers announced in the log, per launch and worker.
const MAX_ANNOUNCED: usize = 256;
/// How often a worker repeats that a launch has expired.
const EXPIRED_LOG_MS: u64 = 3_600_000;
/// How often the process repeats that a dark cluster does not exist.
const UNKNOWN_CLUSTER_LOG_MS: u64 = 60_000;

type PairId = u64;

/// The configuration a worker runs.
struct Runtime {
    /// Top-level settings; its `launches` moved into `launches`.
    cfg: Config,
    launches: Vec<Rc<LaunchState>>,
}

/// A launch as one worker runs it: its configuration, stat ids and what
/// this worker knows and holds for it.
struct LaunchState {
    cfg: Launch,
    stats: LaunchStats,
    /// Pairs dispatched and not yet settled on this worker: what
    /// `limits.max_in_flight` bounds, and the `in_flight` gauge.
    pending: Cell<u32>,
    bucket: SharedBucket,
    breaker: SharedBreaker,
    /// What A/A pairs taught this worker about nondeterministic fields.
    noise: RefCell<NoiseModel>,
    fields: RefCell<FieldCounters>,
    /// Pointers already announced as learned noise in the log.
    announced_noise: RefCell<HashSet<String>>,
    /// The `expired` gauge as this worker last recorded it, and when it
    /// last said so in the log.
    expired: Cell<bool>,
    expiry_logged_ms: Cell<Option<u64>>,
    /// The process-wide sample window, when the launch captures.
    capture: Option<SharedCapture>,
}

impl LaunchState {
    fn new<H: Host>(host: &H, cfg: Launch) -> Result<LaunchState, String> {
        let stats = LaunchStats::define(
            host,
            &cfg.name,
            &cfg.compare.headers,
            !cfg.grpc_methods.is_empty(),
        )?;
        Ok(LaunchState {
            bucket: SharedBucket::new(
                format!("darklaunch.bucket.{}", cfg.name),
                cfg.limits.max_rps,
            ),
            breaker: SharedBreaker::new(
                format!("darklaunch.breaker.{}", cfg.name),
                cfg.breaker.clone(),
                stats.scalar(Scalar::BreakerOpen),
            ),
            fields: RefCell::new(FieldCounters::new(&cfg.name, stats.field_other)),
            pending: Cell::new(0),
            noise: RefCell::new(NoiseModel::default()),
            announced_noise: RefCell::new(HashSet::new()),
            expired: Cell::new(false),
            expiry_logged_ms: Cell::new(None),
            capture: cfg.capture.as_ref().map(|c| {
                SharedCapture::new(format!("darklaunch.capture.{}", cfg.name), c.per_minute)
            }),
            stats,
            cfg,
        })
    }

    /// The launch shadows gRPC calls (`match.grpc_methods`).
    fn is_grpc(&self) -> bool {
        !self.cfg.grpc_methods.is_empty()
    }

    /// Past its `expires`: the launch no longer shadows.
    fn expired(&self, now: u64) -> bool {
        self.cfg.expires_ms.is_some_and(|t| now >= t)
    }

    /// Record the `expired` gauge when it changes, and say in the log once
    /// an hour that an expired launch is still configured.
    fn check_expiry<H: Host>(&self, host: &H, now: u64) {
        let expired = self.expired(now);
        if expired != self.expired.replace(expired) {
            host.record(self.stats.scalar(Scalar::Expired), u64::from(expired));
        }
        let due = self
            .expiry_logged_ms
            .get()
            .is_none_or(|t| now.saturating_sub(t) >= EXPIRED_LOG_MS);
        if expired && due {
            self.expiry_logged_ms.set(Some(now));
            let at = configure::rfc3339(self.cfg.expires_ms.unwrap_or(0));
            host.log(
                Level::Warn,
                &format!(
                    "darklaunch: launch '{}' expired at {at}: it no longer shadows; remove it \
                     from the configuration",
                    self.cfg.name
                ),
            );
        }
    }

    /// May a call of `role` leave now? The one admission order: the
    /// breaker, `max_in_flight`, then the token bucket. Ok(true) when the
    /// call is the breaker's half-open trial.
    fn admit<H: Host>(&self, host: &H, role: Role, now: u64) -> Result<bool, SkipReason> {
        let trial = match role {
            Role::Dark => match self.breaker.admit(host, now) {
                Admit::No => return Err(SkipReason::BreakerOpen),
                Admit::Trial => true,
                Admit::Yes => false,
            },
            // An A/A copy is held off by an open breaker but is never its trial.
            Role::Aa => {
                if self.breaker.is_open(host, now) {
                    return Err(SkipReason::BreakerOpen);
                }
                false
            }
        };
        if self.pending.get() >= self.cfg.limits.max_in_flight {
            return Err(SkipReason::InFlight);
        }
        if !self.bucket.take(host, now) {
            return Err(SkipReason::RateLimited);
        }
        Ok(trial)
    }

    fn hold<H: Host>(&self, host: &H) {
        self.pending.set(self.pending.get().saturating_add(1));
        host.increment(self.stats.scalar(Scalar::InFlight), 1);
    }

    fn release<H: Host>(&self, host: &H) {
        self.pending.set(self.pending.get().saturating_sub(1));
        host.increment(self.stats.scalar(Scalar::InFlight), -1);
    }
}

/// Which call a pair waits for: the dark version's, or an A/A copy sent to
/// `noise.cluster` to learn which fields differ between two primaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Dark,
    Aa,
}

/// The primary side of a pair.
enum Primary {
    Pending,
    Done {
        response: Captured,
        ms: u64,
    },
    /// The stream ended without a complete response.
    Incomplete,
}

/// What the log and samples say about a pair's request.
struct RequestInfo {
    method: String,
    /// Without the query string.
    path: String,
    request_id: String,
    /// The query string, kept only when a shadowing launch captures.
    query: Option<String>,
    /// The request headers some capturing launch may show
    /// (`capture.request_headers`), repeated fields joined.
    headers: Vec<(String, String)>,
}

/// A call that left.
#[derive(Debug, Clone, Copy)]
struct Sent {
    token: u32,
    at_ms: u64,
    /// The breaker's half-open trial.
    trial: bool,
}

struct DarkDone {
    answer: DarkAnswer,
    ms: u64,
}

/// One shadowed request waiting for both answers.
struct Pair {
    launch: Rc<LaunchState>,
    role: Role,
    forced: bool,
    request: Rc<RequestInfo>,
    created_ms: u64,
    primary: Primary,
    sent: Option<Sent>,
    dark: Option<DarkDone>,
    /// The request body, kept for a sample when the launch captures bodies.
    request_body: Option<Rc<Vec<u8>>>,
}

/// A call waiting for the root context to send it.
struct Job {
    pair: PairId,
    headers: Vec<(String, String)>,
    body: Rc<Vec<u8>>,
}

/// One worker's pairs and the configuration they run under.
pub struct Engine<H: Host> {
    host: H,
    rt: Option<Rc<Runtime>>,
    pairs: HashMap<PairId, Pair>,
    jobs: VecDeque<Job>,
    /// Pair of each call in flight, by token.
    calls: HashMap<u32, PairId>,
    next_pair: PairId,
    log_limiter: LogLimiter,
    /// The doorbell was rung and has not been answered yet: jobs queued
    /// meanwhile need no second ring.
    doorbell_rung: bool,
    /// The plugin's name, which keys its shared configuration state.
    plugin: String,
    /// The error of the invalid configuration the plugin runs without.
    invalid: Option<String>,
    /// Samples waiting to be posted to `capture.cluster`, and those posted
    /// and not yet answered, by token.
    exports: VecDeque<Export>,
    export_calls: HashMap<u32, ExportCall>,
}

impl<H: Host> Engine<H> {
    pub fn new(host: H) -> Self {
        Engine {
            host,
            rt: None,
            pairs: HashMap::new(),
            jobs: VecDeque::new(),
            calls: HashMap::new(),
            next_pair: 0,
            log_limiter: LogLimiter::default(),
            doorbell_rung: false,
            plugin: String::new(),
            invalid: None,
            exports: VecDeque::new(),
            export_calls: HashMap::new(),
        }
    }

    pub fn host(&self) -> &H {
        &self.host
    }

    /// The state of a new HTTP stream, under the current configuration.
    pub fn stream(&self) -> Stream {
        Stream::new(self.rt.clone())
    }

    /// Pairs not yet counted.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn pending_pairs(&self) -> usize {
        self.pairs.len()
    }

    /// Pairs of `launch` holding a `max_in_flight` slot on this worker.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn in_flight(&self, launch: &str) -> u32 {
        self.rt
            .iter()
            .flat_map(|rt| &rt.launches)
            .filter(|l| l.cfg.name == launch)
            .map(|l| l.pending.get())
            .sum()
    }

    fn add_pair(
        &mut self,
        pair: Pair,
        headers: Vec<(String, String)>,
        body: Rc<Vec<u8>>,
    ) -> PairId {
        self.next_pair += 1;
        let id = self.next_pair;
        self.pairs.insert(id, pair);
        self.jobs.push_back(Job {
            pair: id,
            headers,
            body,
        });
        id
    }

    fn ring_doorbell(&mut self) {
        if self.doorbell_rung || (self.jobs.is_empty() && self.exports.is_empty()) {
            return;
        }
        if self.host.ring_doorbell().is_ok() {
            self.doorbell_rung = true;
        } else {
            // Tick sends the jobs all the same.
            self.host.log(
                Level::Debug,
                "darklaunch: doorbell failed, dispatching on tick",
            );
        }
    }

    // -----------------------------------------------------------------
    // Root-context callbacks

    /// The doorbell rang: send every queued call.
    pub fn doorbell(&mut self) {
        self.doorbell_rung = false;
        self.dispatch_jobs();
    }

    /// The periodic tick: send what a lost ring left queued, expire pairs
    /// that can no longer finish, write batched breaker results, and keep
    /// the log and gauges of expired launches and of an invalid
    /// configuration current.
    pub fn tick(&mut self) {
        self.doorbell_rung = false;
        self.dispatch_jobs();
        self.sweep();
        let now = self.host.now_ms();
        if let Some(rt) = &self.rt {
            for l in &rt.launches {
                l.breaker.flush_due(&self.host, now);
                l.check_expiry(&self.host, now);
            }
        }
        self.log_invalid(now);
    }

    /// The answer to call `token` is in (the host's call response buffers
    /// hold it during this call).
    pub fn call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        num_trailers: usize,
    ) {
        if self.export_answered(token, num_headers) {
            return;
        }
        let Some(id) = self.calls.remove(&token) else {
            return;
        };
        let Some(pair) = self.pairs.get(&id) else {
            return;
        };
        let launch = pair.launch.clone();
        let sent_at = pair.sent.map_or(0, |s| s.at_ms);
        let captured = self.read_call_response(&launch.cfg, num_headers, body_size, num_trailers);
        let answer = outcome::classify_dark(num_headers, captured);
        let now = self.host.now_ms();
        self.dark_finished(id, answer, now.saturating_sub(sent_at), now);
    }

    /// The root context is going away (a configuration swap drained, or
    /// Envoy stops): answers still on their way will never arrive, so
    /// settle every pending pair now — unanswered calls as resets,
    /// primaries still streaming as incomplete — and keep the stats whole.
    pub fn teardown(&mut self) {
        let now = self.host.now_ms();
        self.jobs.clear();
        let ids: Vec<PairId> = self.pairs.keys().copied().collect();
        for id in ids {
            let Some(p) = self.pairs.get_mut(&id) else {
                continue;
            };
            if p.sent.is_none() {
                self.never_sent(id);
                continue;
            }
            if matches!(p.primary, Primary::Pending) {
                p.primary = Primary::Incomplete;
            }
            if p.dark.is_none() {
                self.dark_finished(id, DarkAnswer::Reset, 0, now);
            } else {
                self.settle(id, now);
            }
        }
        self.calls.clear();
        self.expire_exports(now, true);
    }

    /// Send every queued call. Runs in a root-context callback, so that the
    /// answers come back to the root context.
    fn dispatch_jobs(&mut self) {
        // One clock read for the batch: the calls leave within this callback.
        let now = self.host.now_ms();
        while let Some(job) = self.jobs.pop_front() {
            let Some(pair) = self.pairs.get(&job.pair) else {
                continue;
            };
            let (launch, role, forced) = (pair.launch.clone(), pair.role, pair.forced);
            match self.send(&launch, role, &job, now) {
                Ok(sent) => {
                    if let Some(p) = self.pairs.get_mut(&job.pair) {
                        p.sent = Some(sent);
                    }
                    self.calls.insert(sent.token, job.pair);
                    launch.hold(&self.host);
                    if role == Role::Dark {
                        self.count(&launch, Scalar::Shadowed);
                        if forced {
                            self.count(&launch, Scalar::Forced);
                        }
                    }
                }
                Err(reason) => {
                    self.pairs.remove(&job.pair);
                    // A refused A/A copy is simply dropped: it is not a shadow call.
                    if role == Role::Dark {
                        self.host.increment(launch.stats.skipped(reason), 1);
                    }
                }
            }
        }
        self.dispatch_exports(now);
    }

    fn send(&self, l: &LaunchState, role: Role, job: &Job, now: u64) -> Result<Sent, SkipReason> {
        let trial = l.admit(&self.host, role, now)?;
        let cluster = match (role, &l.cfg.noise) {
            (Role::Dark, _) => &l.cfg.dark_cluster,
            (Role::Aa, Some(noise)) => &noise.cluster,
            (Role::Aa, None) => return Err(SkipReason::DispatchFailed),
        };
        let call = Call {
            cluster,
            headers: &job.headers,
            body: &job.body,
            timeout_ms: l.cfg.timeout_ms,
        };
        match self.host.dispatch(call) {
            Ok(token) => Ok(Sent {
                token,
                at_ms: now,
                trial,
            }),
            // The host's answer for a cluster it does not know.
            Err(HostError(BAD_ARGUMENT)) => {
                self.log_every(
                    &format!("cluster.{}.{cluster}", self.plugin),
                    UNKNOWN_CLUSTER_LOG_MS,
                    now,
                    Level::Warn,
                    &format!(
                        "darklaunch: launch '{}': Envoy has no cluster '{cluster}': no shadow \
                         call can leave (skipped.unknown_cluster)",
                        l.cfg.name
                    ),
                );
                Err(SkipReason::UnknownCluster)
            }
            Err(e) => {
                self.host.log(
                    Level::Debug,
                    &format!(
                        "darklaunch: dispatch to cluster '{cluster}' failed: host status {}",
                        e.0
                    ),
                );
                Err(SkipReason::DispatchFailed)
            }
        }
    }

    /// Expire pairs that can no longer complete normally, so that memory
    /// stays bounded whatever the host does: a call unanswered well past
    /// its timeout counts as a reset; a primary still streaming a minute
    /// after the dark answer counts as incomplete; a job never sent counts
    /// as `dispatch_failed`.
    fn sweep(&mut self) {
        let now = self.host.now_ms();
        let mut lost_calls = Vec::new();
        let mut slow_primaries = Vec::new();
        let mut never_sent = Vec::new();
        for (id, p) in &self.pairs {
            let timeout = u64::from(p.launch.cfg.timeout_ms);
            match (&p.sent, &p.dark) {
                (Some(s), None) if now.saturating_sub(s.at_ms) > timeout + SWEEP_GRACE_MS => {
                    lost_calls.push((*id, s.token));
                }
                (Some(s), Some(d))
                    if matches!(p.primary, Primary::Pending)
                        && now.saturating_sub(s.at_ms + d.ms) > PRIMARY_WAIT_MS =>
                {
                    slow_primaries.push(*id);
                }
                (None, _)
                    if now.saturating_sub(p.created_ms) > SWEEP_GRACE_MS
                        && !self.jobs.iter().any(|j| j.pair == *id) =>
                {
                    never_sent.push(*id);
                }
                _ => {}
            }
        }
        for (id, token) in lost_calls {
            self.calls.remove(&token);
            self.dark_finished(id, DarkAnswer::Reset, 0, now);
        }
        for id in slow_primaries {
            self.primary_finished(id, Primary::Incomplete, now);
        }
        for id in never_sent {
            self.never_sent(id);
        }
        self.expire_exports(now, false);
    }

    /// Drop a pair whose call never left.
    fn never_sent(&mut self, id: PairId) {
        if let Some(p) = self.pairs.remove(&id) {
            if p.role == Role::Dark {
                self.host
                    .increment(p.launch.stats.skipped(SkipReason::DispatchFailed), 1);
            }
        }
    }

    // -----------------------------------------------------------------
    // Settlement

    /// The primary side finished (or failed): settle the pair if the dark
    /// side is already there. `now` is the caller's clock reading.
    fn primary_finished(&mut self, id: PairId, primary: Primary, now: u64) {
        if let Some(p) = self.pairs.get_mut(&id) {
            p.primary = primary;
            if p.dark.is_some() {
                self.settle(id, now);
            }
        }
    }

    fn dark_finished(&mut self, id: PairId, answer: DarkAnswer, ms: u64, now: u64) {
        let Some(p) = self.pairs.get_mut(&id) else {
            return;
        };
        if p.role == Role::Dark {
            let trial = p.sent.is_some_and(|s| s.trial);
            let failed = answer.is_failure(p.launch.is_grpc());
            p.launch.breaker.finished(&self.host, now, failed, trial);
        }
        p.dark = Some(DarkDone { answer, ms });
        if !matches!(p.primary, Primary::Pending) {
            self.settle(id, now);
        }
    }

    /// Both sides are in: count the pair. Outcomes, then the comparison;
    /// a compared pair teaches the noise model, which judges it a match,
    /// noise or a mismatch; a mismatch counts per kind and per field and
    /// may be logged.
    fn settle(&mut self, id: PairId, now: u64) {
        let Some(pair) = self.pairs.remove(&id) else {
            return;
        };
        let Some(dark) = &pair.dark else {
            return;
        };
        let l = &pair.launch;
        l.release(&self.host);
        let primary = match &pair.primary {
            Primary::Done { response, ms } => Some((response, *ms)),
            _ => None,
        };
        let st = outcome::settle(
            &l.cfg.compare,
            primary.map(|(r, _)| r),
            &dark.answer,
            &pair.request.path,
        );
        if pair.role == Role::Aa {
            // An A/A pair only teaches the noise model; it is not a shadow.
            if let Ok(v) = &st.result {
                l.noise.borrow_mut().learn_aa(now, v);
            }
            return;
        }
        let (h, s) = (&self.host, &l.stats);
        h.increment(s.dark_response(st.dark), 1);
        h.increment(s.primary_response(st.primary), 1);
        if l.is_grpc() {
            // The codes the servers answered: none for Envoy's own replies
            // (timeouts, resets) nor for a primary that never finished.
            if let DarkAnswer::Response(c) = &dark.answer {
                h.increment(s.dark_grpc(c.grpc_code()), 1);
            }
            if let Some((c, _)) = primary {
                h.increment(s.primary_grpc(c.grpc_code()), 1);
            }
        }
        h.record(s.histogram(Histogram::DarkMs), dark.ms);
        if let Some((_, ms)) = primary {
            h.record(s.histogram(Histogram::PrimaryMs), ms);
        }
        let verdict = match st.result {
            Err(skip) => {
                h.increment(s.compare_skipped(skip), 1);
                return;
            }
            Ok(v) => v,
        };
        self.count(l, Scalar::Compared);
        let judgement = l.noise.borrow_mut().judge(now, &verdict);
        match judgement.class {
            Class::Match => {}
            Class::Noise => {
                self.count(l, Scalar::Noise);
                self.announce_noise(l, &verdict);
            }
            Class::Mismatch => {
                self.count(l, Scalar::Mismatch);
                for pointer in &judgement.real {
                    let id = l.fields.borrow_mut().counter(&self.host, pointer);
                    self.host.increment(id, 1);
                }
                for name in &judgement.headers {
                    self.host.increment(l.stats.header_mismatch(name), 1);
                }
                for kind in judgement.kinds.iter() {
                    self.host.increment(l.stats.mismatch_kind(kind), 1);
                }
                let per_minute = self
                    .rt
                    .as_ref()
                    .map_or(0, |r| r.cfg.mismatch_log_per_minute);
                if self.log_limiter.allow(now, per_minute) {
                    let line = MismatchLog {
                        launch: &l.cfg.name,
                        request_id: &pair.request.request_id,
                        method: &pair.request.method,
                        path: &pair.request.path,
                        kinds: judgement.kinds,
                        paths: &judgement.real,
                        headers: &judgement.headers,
                        primary_status: st.primary_status.unwrap_or(0),
                        dark_status: st.dark_status.unwrap_or(0),
                    }
                    .line();
                    self.host.log(Level::Info, &line);
                }
                if let (Some((primary, _)), DarkAnswer::Response(dark)) = (primary, &dark.answer) {
                    let answers = Answers { primary, dark };
                    self.capture_sample(l, &pair, answers, &judgement, now);
                }
            }
        }
    }

    fn count(&self, l: &LaunchState, s: Scalar) {
        self.host.increment(l.stats.scalar(s), 1);
    }

    /// Log, once per worker and pointer, the fields a noise verdict cancelled.
    fn announce_noise(&self, l: &LaunchState, v: &crate::compare::Verdict) {
        let mut announced = l.announced_noise.borrow_mut();
        for d in &v.diffs {
            if announced.len() < MAX_ANNOUNCED && announced.insert(d.pointer.clone()) {
                let line = serde_json::json!({"launch": l.cfg.name, "path": d.pointer});
                self.host
                    .log(Level::Info, &format!("darklaunch noise learned {line}"));
            }
        }
    }

    // -----------------------------------------------------------------
    // Reading responses

    fn read_call_response(
        &self,
        l: &Launch,
        num_headers: usize,
        body_size: usize,
        num_trailers: usize,
    ) -> Captured {
        let mut c = Captured::default();
        if num_headers == 0 {
            return c;
        }
        (c.status, c.headers) =
            self.status_and_headers(Headers::CallResponse, |n| wanted_header(l, n));
        if num_trailers > 0 {
            let (_, trailers) =
                self.status_and_headers(Headers::CallTrailers, |n| wanted_header(l, n));
            c.headers.extend(trailers);
        }
        // The body is needed to compare it, or to tell Envoy's own 5xx
        // local replies (connect failure, no healthy upstream) from the
        // service's.
        if l.compare.body == BodyMode::None && c.status < 500 {
            return c;
        }
        // Read a little past the limit so that Envoy's short local replies
        // are recognised even under a tiny max_body_bytes.
        let want = body_size.min(l.max_body_bytes.max(64));
        if want > 0 {
            if let Ok(b) = self.host.body(Body::CallResponse, want) {
                c.body = b;
            }
        }
        if body_size > l.max_body_bytes {
            c.body_overflow = true;
        }
        c
    }

    /// A response's `:status` and a copy of the headers `wanted` names (0
    /// and none when the map cannot be read).
    fn status_and_headers(
        &self,
        map: Headers,
        wanted: impl Fn(&str) -> bool,
    ) -> (u16, Vec<(String, Vec<u8>)>) {
        let (mut status, mut headers) = (0, Vec::new());
        if let Ok(raw) = self.host.header_map(map) {
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
}

fn parse_status(v: &[u8]) -> u16 {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Response headers (and trailers) the comparison looks at.
fn wanted_header(l: &Launch, name: &str) -> bool {
    name == "content-type"
        || name == "content-encoding"
        || l.compare.headers.iter().any(|h| h == name)
        || (!l.grpc_methods.is_empty() && grpc::RESPONSE_HEADERS.contains(&name))
}
