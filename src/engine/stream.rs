//! One primary request and its response as they stream through an HTTP
//! context: which launches shadow it, the copies the pairs need, and the
//! moment each side is complete. Nothing here pauses or changes the stream.

use std::rc::Rc;

use super::{Engine, LaunchState, Pair, PairId, Primary, RequestInfo, Role, Runtime};
use crate::compare::BodyMode;
use crate::decision::{self, Decision, RequestView};
use crate::headermap;
use crate::host::{Body, Headers, Host};
use crate::murmur3;
use crate::outcome::Captured;
use crate::shadow;
use crate::vocab::{Scalar, SkipReason};

/// The engine's state for one HTTP stream; the HTTP context holds it and
/// hands it to the engine with each callback.
pub struct Stream {
    /// The configuration the stream started under.
    rt: Option<Rc<Runtime>>,
    req: Option<RequestCopy>,
    resp: Option<ResponseCopy>,
    /// Pairs created for this request, until the primary is delivered.
    pairs: Vec<PairId>,
    done: bool,
}

/// A launch that decided to shadow the request.
struct Candidate {
    launch: Rc<LaunchState>,
    forced: bool,
}

/// What is kept of a primary request that at least one launch shadows.
struct RequestCopy {
    candidates: Vec<Candidate>,
    headers: Vec<(String, Vec<u8>)>,
    info: Rc<RequestInfo>,
    started_ms: u64,
    body: StreamedBody,
    finished: bool,
}

/// The primary response as it streams through.
struct ResponseCopy {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: StreamedBody,
    /// Request start to end of response, once it ended.
    finished_ms: Option<u64>,
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
    fn read<H: Host>(&mut self, host: &H, buffer: Body, size: usize) {
        self.len = self.len.saturating_add(size);
        let room = self.cap.saturating_sub(self.bytes.len());
        if room == 0 || size == 0 {
            return;
        }
        if let Ok(chunk) = host.body(buffer, size.min(room)) {
            // Most bodies come in one chunk: keep the host's copy.
            if self.bytes.is_empty() {
                self.bytes = chunk;
            } else {
                self.bytes.extend_from_slice(&chunk);
            }
        }
    }
}

impl Stream {
    pub(super) fn new(rt: Option<Rc<Runtime>>) -> Self {
        Stream {
            rt,
            req: None,
            resp: None,
            pairs: Vec::new(),
            done: false,
        }
    }
}

impl<H: Host> Engine<H> {
    /// The request headers are in. Most requests match no launch: that is
    /// decided on the encoded map, before anything is copied out of it.
    pub fn request_headers(&mut self, s: &mut Stream, end_of_stream: bool) {
        let Some(rt) = s.rt.clone() else {
            return;
        };
        // One read of the whole map: a host call that returns data costs
        // about as much as the whole map, so single-header reads cost more.
        let Ok(raw) = self.host.header_map(Headers::Request) else {
            return;
        };
        // One pass for the request line; the other headers only matter,
        // and are only listed, once some launch matches it.
        let (mut method, mut path) = (None, None);
        for (name, value) in headermap::pairs(&raw) {
            match name {
                ":method" if method.is_none() => method = Some(String::from_utf8_lossy(value)),
                ":path" if path.is_none() => path = Some(String::from_utf8_lossy(value)),
                _ => {}
            }
        }
        let (method, path) = (method.unwrap_or_default(), path.unwrap_or_default());
        if !rt
            .launches
            .iter()
            .any(|l| decision::matches_request_line(&l.cfg, &method, &path))
        {
            return;
        }
        let pairs: Vec<(&str, &[u8])> = headermap::pairs(&raw).collect();
        let view = RequestView {
            method: &method,
            path: &path,
            headers: &pairs,
        };
        let flag = decision::read_flag(&rt.cfg, &view);
        // The clock only for launches that expire, and for a shadowed
        // request's start: a sampled-out request reads no clock.
        let mut clock = None;
        let mut now = || *clock.get_or_insert_with(|| self.host.now_ms());
        let mut candidates = Vec::new();
        for l in &rt.launches {
            if !decision::matches(&l.cfg, &view) {
                continue;
            }
            self.count(l, Scalar::Matched);
            if l.cfg.expires_ms.is_some() && l.expired(now()) {
                self.host.increment(l.stats.skipped(SkipReason::Expired), 1);
                continue;
            }
            let random = &mut || self.host.random_u32();
            match decision::decide(&rt.cfg, &l.cfg, &view, &flag, random) {
                Decision::Skip(r) => self.host.increment(l.stats.skipped(r), 1),
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
            .map(|c| c.launch.cfg.max_body_bytes)
            .max()
            .unwrap_or(0);
        let request_id = view
            .header("x-request-id")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        let (query, captured_headers) = capture_parts(&candidates, &path, &pairs);
        let info = Rc::new(RequestInfo {
            path: decision::path_only(&path).to_string(),
            method: method.into_owned(),
            request_id,
            query,
            headers: captured_headers,
        });
        s.req = Some(RequestCopy {
            candidates,
            // Owned now: the shadow copies are made once the request ends.
            headers: headermap::decode(&raw),
            info,
            started_ms: now(),
            body: StreamedBody::new(body_cap),
            finished: false,
        });
        if end_of_stream {
            self.end_request(s);
        }
    }

    pub fn request_body(&mut self, s: &mut Stream, size: usize, end_of_stream: bool) {
        let Some(req) = s.req.as_mut().filter(|r| !r.finished) else {
            return;
        };
        req.body.read(&self.host, Body::Request, size);
        if end_of_stream {
            self.end_request(s);
        }
    }

    pub fn request_trailers(&mut self, s: &mut Stream) {
        self.end_request(s);
    }

    /// The whole request has passed: one pair and call per shadowing launch
    /// (two with an A/A copy), then the doorbell.
    fn end_request(&mut self, s: &mut Stream) {
        let Some(rt) = s.rt.clone() else {
            return;
        };
        let Some(req) = s.req.as_mut().filter(|r| !r.finished) else {
            return;
        };
        req.finished = true;
        let body = Rc::new(std::mem::take(&mut req.body.bytes));
        for c in &req.candidates {
            let l = &c.launch;
            if req.body.len > l.cfg.max_body_bytes {
                self.host
                    .increment(l.stats.skipped(SkipReason::BodyTooLarge), 1);
                continue;
            }
            let headers = shadow::shadow_headers(&l.cfg, &rt.cfg.shadow_header, &req.headers);
            let aa = l
                .cfg
                .noise
                .as_ref()
                .is_some_and(|n| murmur3::in_percent(self.host.random_u32(), n.percent));
            let aa_headers = aa.then(|| headers.clone());
            for (role, headers) in [(Role::Dark, Some(headers)), (Role::Aa, aa_headers)] {
                let Some(headers) = headers else {
                    continue;
                };
                let pair = Pair {
                    launch: l.clone(),
                    role,
                    forced: c.forced,
                    request: req.info.clone(),
                    created_ms: req.started_ms,
                    primary: Primary::Pending,
                    sent: None,
                    dark: None,
                    request_body: l
                        .cfg
                        .capture
                        .as_ref()
                        .filter(|c| c.bodies)
                        .map(|_| body.clone()),
                };
                let id = self.add_pair(pair, headers, body.clone());
                s.pairs.push(id);
            }
        }
        // The request headers are no longer needed.
        req.headers = Vec::new();
        self.ring_doorbell();
        if let Some(ms) = s.resp.as_ref().and_then(|r| r.finished_ms) {
            self.deliver_primary(s, ms);
        }
    }

    /// The response headers are in: copy what the pairs still waiting for
    /// this response compare (none when every call was refused).
    pub fn response_headers(&mut self, s: &mut Stream, end_of_stream: bool) {
        let live = self.live_launches(s);
        if live.is_empty() {
            return;
        }
        let (status, headers) = self.status_and_headers(Headers::Response, |n| {
            live.iter().any(|l| super::wanted_header(&l.cfg, n))
        });
        let cap = live
            .iter()
            .filter(|l| l.cfg.compare.body != BodyMode::None)
            .map(|l| l.cfg.max_body_bytes)
            .max()
            .unwrap_or(0);
        s.resp = Some(ResponseCopy {
            status,
            headers,
            body: StreamedBody::new(cap),
            finished_ms: None,
        });
        if end_of_stream {
            self.end_response(s);
        }
    }

    pub fn response_body(&mut self, s: &mut Stream, size: usize, end_of_stream: bool) {
        let Some(resp) = s.resp.as_mut().filter(|r| r.finished_ms.is_none()) else {
            return;
        };
        resp.body.read(&self.host, Body::Response, size);
        if end_of_stream {
            self.end_response(s);
        }
    }

    /// The trailers end the response; a gRPC answer's status is in them.
    pub fn response_trailers(&mut self, s: &mut Stream) {
        if s.resp.as_ref().is_some_and(|r| r.finished_ms.is_none()) {
            let live = self.live_launches(s);
            let (_, trailers) = self.status_and_headers(Headers::ResponseTrailers, |n| {
                live.iter().any(|l| super::wanted_header(&l.cfg, n))
            });
            if let Some(resp) = s.resp.as_mut() {
                resp.headers.extend(trailers);
            }
        }
        self.end_response(s);
    }

    /// The launches still waiting for this stream's response: its pairs
    /// once the request has ended, its candidates before.
    fn live_launches(&self, s: &Stream) -> Vec<Rc<LaunchState>> {
        let Some(req) = s.req.as_ref() else {
            return Vec::new();
        };
        if req.finished {
            s.pairs
                .iter()
                .filter_map(|id| self.pairs.get(id))
                .map(|p| p.launch.clone())
                .collect()
        } else {
            req.candidates.iter().map(|c| c.launch.clone()).collect()
        }
    }

    fn end_response(&mut self, s: &mut Stream) {
        let started = s.req.as_ref().map_or(0, |r| r.started_ms);
        let Some(resp) = s.resp.as_mut().filter(|r| r.finished_ms.is_none()) else {
            return;
        };
        let ms = self.host.now_ms().saturating_sub(started);
        resp.finished_ms = Some(ms);
        if s.req.as_ref().is_some_and(|r| r.finished) {
            self.deliver_primary(s, ms);
        }
    }

    /// Hand the finished primary response to every pair of this request.
    fn deliver_primary(&mut self, s: &mut Stream, primary_ms: u64) {
        let Some(resp) = s.resp.as_ref() else {
            return;
        };
        // When the response ended: no second clock read.
        let now = s
            .req
            .as_ref()
            .map_or(0, |r| r.started_ms)
            .saturating_add(primary_ms);
        for id in std::mem::take(&mut s.pairs) {
            let Some(max) = self.pairs.get(&id).map(|p| p.launch.cfg.max_body_bytes) else {
                continue;
            };
            let response = Captured {
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
            self.primary_finished(
                id,
                Primary::Done {
                    response,
                    ms: primary_ms,
                },
                now,
            );
        }
    }

    /// The stream is over. A request that never finished cannot be
    /// shadowed; pairs whose primary response never finished are settled as
    /// incomplete.
    pub fn stream_done(&mut self, s: &mut Stream) {
        if s.done {
            return;
        }
        s.done = true;
        if let Some(req) = s.req.as_mut().filter(|r| !r.finished) {
            req.finished = true;
            for c in &req.candidates {
                self.host
                    .increment(c.launch.stats.skipped(SkipReason::DispatchFailed), 1);
            }
        }
        if s.pairs.is_empty() {
            return;
        }
        let now = self.host.now_ms();
        for id in std::mem::take(&mut s.pairs) {
            self.primary_finished(id, Primary::Incomplete, now);
        }
    }
}

/// What samples may need of the request, kept only when a shadowing launch
/// captures: the query string, and the request headers some launch's
/// `capture.request_headers` names (repeated fields joined with ", ").
fn capture_parts(
    candidates: &[Candidate],
    path: &str,
    headers: &[(&str, &[u8])],
) -> (Option<String>, Vec<(String, String)>) {
    let capturing: Vec<&crate::config::Capture> = candidates
        .iter()
        .filter_map(|c| c.launch.cfg.capture.as_ref())
        .collect();
    if capturing.is_empty() {
        return (None, Vec::new());
    }
    let query = path
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or_default().to_string())
        .filter(|q| !q.is_empty());
    let mut kept: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        if !capturing
            .iter()
            .any(|c| c.request_headers.iter().any(|h| h == name))
        {
            continue;
        }
        let value = String::from_utf8_lossy(value);
        match kept.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => {
                v.push_str(", ");
                v.push_str(&value);
            }
            None => kept.push((name.to_string(), value.into_owned())),
        }
    }
    (query, kept)
}
