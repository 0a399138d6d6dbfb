//! Samples of mismatching pairs (`capture`): the choice (`capture.rs`), the
//! second, value-keeping walk of the two answers, the sample itself
//! (`sample.rs`), the log line, and the OTLP export to `capture.cluster`.
//!
//! Exports are calls like the shadow calls: queued wherever the pair
//! settles, sent from a root-context callback, at most
//! [`EXPORTS_IN_FLIGHT`] at a time per worker and [`EXPORT_QUEUE`] waiting;
//! never retried. A sample the collector does not take (queue full, call
//! refused, non-2xx, timeout) counts as `sample.dropped.sink`; its log line
//! was written all the same.

use std::rc::Rc;

use super::{Engine, LaunchState, Pair, UNKNOWN_CLUSTER_LOG_MS};
use crate::capture::Admit;
use crate::compare;
use crate::config::{Capture, NEVER_CAPTURED};
use crate::headermap;
use crate::host::{Call, Headers, Host, HostError, Level, BAD_ARGUMENT};
use crate::noise::Judgement;
use crate::outcome::{self, Captured};
use crate::redact;
use crate::sample::{self, Sample, SampleDiff, SampleSide, HEADER_REDACTED};
use crate::vocab::{SampleDrop, Scalar};

/// OTLP calls in flight per worker.
pub(super) const EXPORTS_IN_FLIGHT: usize = 8;
/// Samples waiting for a slot per worker; past that they are dropped.
pub(super) const EXPORT_QUEUE: usize = 64;
/// Timeout of an OTLP call.
pub(super) const EXPORT_TIMEOUT_MS: u32 = 5_000;

/// A sample waiting to be posted.
pub(super) struct Export {
    pub launch: Rc<LaunchState>,
    pub body: Vec<u8>,
}

/// An OTLP call that left.
pub(super) struct ExportCall {
    pub launch: Rc<LaunchState>,
    pub at_ms: u64,
}

/// The two answers of a mismatching pair.
pub(super) struct Answers<'a> {
    pub primary: &'a Captured,
    pub dark: &'a Captured,
}

impl<H: Host> Engine<H> {
    /// A pair was counted as a mismatch: write a sample if the launch
    /// captures and the minute's budget lets this one in.
    pub(super) fn capture_sample(
        &mut self,
        l: &Rc<LaunchState>,
        pair: &Pair,
        answers: Answers,
        judgement: &Judgement,
        now: u64,
    ) {
        let (Some(cap), Some(window)) = (&l.cfg.capture, &l.capture) else {
            return;
        };
        let kinds: Vec<&'static str> = judgement.kinds.iter().map(|k| k.as_str()).collect();
        let shape = sample::shape(&kinds, &judgement.real, &judgement.headers);
        if window.admit(&self.host, now, shape) != Admit::Yes {
            self.host
                .increment(l.stats.sample_dropped(SampleDrop::Rate), 1);
            return;
        }
        let built = build(l, cap, pair, &answers, judgement, kinds, shape, now);
        let shape = built.shape.clone();
        let json = match built.render(cap.max_bytes) {
            Ok(json) => json,
            Err(sample::TooLarge) => {
                self.host
                    .increment(l.stats.sample_dropped(SampleDrop::Size), 1);
                return;
            }
        };
        self.host
            .log(Level::Info, &format!("darklaunch sample {json}"));
        self.host
            .increment(l.stats.scalar(Scalar::SampleCaptured), 1);
        if cap.cluster.is_some() {
            if self.exports.len() >= EXPORT_QUEUE {
                self.host
                    .increment(l.stats.sample_dropped(SampleDrop::Sink), 1);
                return;
            }
            let body = sample::otlp_logs(&json, &l.cfg.name, &pair.request.request_id, &shape, now);
            self.exports.push_back(Export {
                launch: l.clone(),
                body: body.into_bytes(),
            });
            self.ring_doorbell();
        }
    }

    /// Send queued samples while slots are free (root context only).
    pub(super) fn dispatch_exports(&mut self, now: u64) {
        while self.export_calls.len() < EXPORTS_IN_FLIGHT {
            let Some(export) = self.exports.pop_front() else {
                break;
            };
            let l = export.launch;
            let Some(cluster) = l.cfg.capture.as_ref().and_then(|c| c.cluster.as_deref()) else {
                continue;
            };
            let headers = [
                (":method".to_string(), "POST".to_string()),
                (":path".to_string(), "/v1/logs".to_string()),
                (":authority".to_string(), cluster.to_string()),
                ("content-type".to_string(), "application/json".to_string()),
            ];
            let call = Call {
                cluster,
                headers: &headers,
                body: &export.body,
                timeout_ms: EXPORT_TIMEOUT_MS,
            };
            match self.host.dispatch(call) {
                Ok(token) => {
                    self.export_calls.insert(
                        token,
                        ExportCall {
                            launch: l,
                            at_ms: now,
                        },
                    );
                }
                Err(e) => {
                    if e == HostError(BAD_ARGUMENT) {
                        self.log_every(
                            &format!("cluster.{}.{cluster}", self.plugin),
                            UNKNOWN_CLUSTER_LOG_MS,
                            now,
                            Level::Warn,
                            &format!(
                                "darklaunch: launch '{}': Envoy has no cluster '{cluster}' \
                                 (capture.cluster): samples reach the log only \
                                 (sample.dropped.sink)",
                                l.cfg.name
                            ),
                        );
                    }
                    self.host
                        .increment(l.stats.sample_dropped(SampleDrop::Sink), 1);
                }
            }
        }
    }

    /// The collector answered export `token` (true when it was one).
    pub(super) fn export_answered(&mut self, token: u32, num_headers: usize) -> bool {
        let Some(call) = self.export_calls.remove(&token) else {
            return false;
        };
        let status = if num_headers == 0 {
            0
        } else {
            self.host
                .header_map(Headers::CallResponse)
                .ok()
                .and_then(|raw| {
                    headermap::pairs(&raw)
                        .find(|(n, _)| *n == ":status")
                        .map(|(_, v)| super::parse_status(v))
                })
                .unwrap_or(0)
        };
        if !(200..300).contains(&status) {
            self.host
                .increment(call.launch.stats.sample_dropped(SampleDrop::Sink), 1);
        }
        let now = self.host.now_ms();
        self.dispatch_exports(now);
        true
    }

    /// Forget export calls unanswered well past their timeout, and (at
    /// teardown, `all`) every queued or unanswered one: dropped at the sink.
    pub(super) fn expire_exports(&mut self, now: u64, all: bool) {
        let limit = u64::from(EXPORT_TIMEOUT_MS) + super::SWEEP_GRACE_MS;
        let lost: Vec<u32> = self
            .export_calls
            .iter()
            .filter(|(_, c)| all || now.saturating_sub(c.at_ms) > limit)
            .map(|(t, _)| *t)
            .collect();
        for token in lost {
            if let Some(c) = self.export_calls.remove(&token) {
                self.host
                    .increment(c.launch.stats.sample_dropped(SampleDrop::Sink), 1);
            }
        }
        if all {
            for e in std::mem::take(&mut self.exports) {
                self.host
                    .increment(e.launch.stats.sample_dropped(SampleDrop::Sink), 1);
            }
        }
    }
}

/// The sample of a pair, before it is fitted to `max_bytes`.
#[allow(clippy::too_many_arguments)]
fn build(
    l: &LaunchState,
    cap: &Capture,
    pair: &Pair,
    answers: &Answers,
    judgement: &Judgement,
    kinds: Vec<&'static str>,
    shape: u32,
    now: u64,
) -> Sample {
    let rules = &l.cfg.compare;
    let (p, d) = (outcome::side(answers.primary), outcome::side(answers.dark));
    let examples = compare::compare_examples(rules, &p, &d, &cap.redact, &pair.request.path)
        .map(|(_, e)| e)
        .unwrap_or_default();
    // The counted fields; every difference when the statuses differ (none
    // is counted then, but they explain the answers).
    let differences: Vec<SampleDiff> = examples
        .into_iter()
        .filter(|e| {
            judgement.kinds.status
                || judgement.kinds.grpc_status
                || judgement.real.contains(&e.field)
        })
        .map(SampleDiff::from)
        .collect();
    let request = &pair.request;
    let grpc = l.is_grpc();
    // gRPC bodies are shown as the comparison reads them: JSON.
    let grpc_bodies = (cap.bodies && grpc)
        .then(|| compare::grpc_json(rules, &p, &d, Some(&request.path)))
        .flatten();
    let body = |c: &Captured, rendered: Option<&String>| {
        cap.bodies.then(|| {
            if grpc {
                return match rendered {
                    Some(json) => body_text(json.as_bytes(), cap),
                    None => "[withheld: not gRPC protobuf messages]".to_string(),
                };
            }
            match compare::decoded_body(&outcome::side(c), rules.max_body_bytes) {
                Some(bytes) => body_text(&bytes, cap),
                None => "[withheld: the body could not be decoded]".to_string(),
            }
        })
    };
    // A gRPC answer's status is in its trailers: show it with the headers.
    let mut shown: Vec<String> = rules.headers.clone();
    if grpc {
        shown.extend(["grpc-status", "grpc-message"].map(String::from));
    }
    let request_body = pair
        .request_body
        .as_ref()
        .filter(|b| cap.bodies && !b.is_empty())
        .map(|b| {
            if !grpc {
                return body_text(b, cap);
            }
            let side = compare::Side {
                status: 0,
                headers: &[],
                body: b,
            };
            match compare::grpc_json(rules, &side, &side, None) {
                Some((json, _)) => body_text(json.as_bytes(), cap),
                None => "[withheld: not gRPC protobuf messages]".to_string(),
            }
        });
    Sample {
        v: 1,
        launch: l.cfg.name.clone(),
        time: super::configure::rfc3339_millis(now),
        request_id: request.request_id.clone(),
        method: request.method.clone(),
        path: request.path.clone(),
        query: request.query.as_deref().map(|q| {
            if cap.query {
                q.to_string()
            } else {
                sample::redact_query(q)
            }
        }),
        request_headers: request
            .headers
            .iter()
            .filter(|(n, _)| cap.request_headers.contains(n))
            .cloned()
            .collect(),
        shape: format!("{shape:08x}"),
        kinds,
        fields: judgement.real.clone(),
        headers: judgement.headers.clone(),
        primary: SampleSide {
            status: answers.primary.status,
            headers: response_headers(&shown, answers.primary),
            body: body(answers.primary, grpc_bodies.as_ref().map(|(a, _)| a)),
        },
        dark: SampleSide {
            status: answers.dark.status,
            headers: response_headers(&shown, answers.dark),
            body: body(answers.dark, grpc_bodies.as_ref().map(|(_, b)| b)),
        },
        request_body,
        differences,
        differences_omitted: 0,
        truncated: false,
    }
}

/// A body as a sample shows it: JSON with its redacted locations blanked;
/// anything else as text, unless locations are to be redacted, which only
/// JSON allows.
fn body_text(bytes: &[u8], cap: &Capture) -> String {
    match redact::body(bytes, &cap.redact) {
        Some(text) => text,
        None if cap.redact.is_empty() => String::from_utf8_lossy(bytes).into_owned(),
        None => "[withheld: not JSON, so capture.redact cannot apply]".to_string(),
    }
}

/// The compared headers present on a side, repeated fields joined; the
/// never-captured ones blanked.
fn response_headers(names: &[String], c: &Captured) -> Vec<(String, String)> {
    names
        .iter()
        .filter_map(|name| {
            let values: Vec<String> = c
                .headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .collect();
            if values.is_empty() {
                return None;
            }
            let value = if NEVER_CAPTURED.contains(&name.as_str()) {
                HEADER_REDACTED.to_string()
            } else {
                values.join(", ")
            };
            Some((name.clone(), value))
        })
        .collect()
}
