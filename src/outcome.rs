//! What a finished pair (primary answer + dark answer) amounts to: the
//! outcome classes of both sides and either a comparison verdict or the
//! reason it could not be compared. Pure; the engine turns it into stats.

use crate::compare::{self, BodyMode, CompareRules, Side, Verdict};
use crate::grpc;
use crate::vocab::{CompareSkip, DarkOutcome, GrpcCode, PrimaryOutcome};

/// A response captured while it streamed through (or read from a dark answer).
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub status: u16,
    /// Lower-case names; only the headers the comparison needs.
    pub headers: Vec<(String, Vec<u8>)>,
    /// At most `max_body_bytes`; `body_overflow` says the real body was longer.
    pub body: Vec<u8>,
    pub body_overflow: bool,
}

#[derive(Debug, Clone)]
pub enum DarkAnswer {
    Response(Captured),
    Timeout,
    Reset,
}

impl DarkAnswer {
    pub fn outcome(&self) -> DarkOutcome {
        match self {
            DarkAnswer::Response(c) => DarkOutcome::of_status(c.status),
            DarkAnswer::Timeout => DarkOutcome::Timeout,
            DarkAnswer::Reset => DarkOutcome::Reset,
        }
    }

    /// A failure for the breaker: a 5xx, a timeout or a reset, and for a
    /// gRPC launch an answer whose code says the server is failing.
    pub fn is_failure(&self, grpc: bool) -> bool {
        self.outcome().is_failure()
            || matches!(self, DarkAnswer::Response(c) if grpc && c.grpc_code().is_failure())
    }
}

impl Captured {
    /// The gRPC code of the answer (see [`grpc::status`]).
    pub fn grpc_code(&self) -> GrpcCode {
        grpc::status(&self.headers, self.status).name()
    }
}

/// Envoy's local-reply bodies for a dispatched call that never reached or
/// never heard back from the dark upstream. A timed-out call comes back as
/// a 504 with the timeout body, a reset one with no headers at all.
const TIMEOUT_BODY: &[u8] = b"upstream request timeout";
const RESET_PREFIXES: [&[u8]; 2] = [
    b"upstream connect error or disconnect/reset before headers",
    b"no healthy upstream",
];

/// Classify what `dispatch_http_call` brought back. Zero headers is a reset;
/// a 504 with Envoy's timeout body is a timeout; a 5xx with Envoy's
/// connect-failure or protocol-error body is a reset (the dark service never
/// answered).
///
/// Envoy's replies to a gRPC call are HTTP 200 with a `grpc-status`
/// ([`grpc::local_reply`]): a timeout or a reset as well.
pub fn classify_dark(num_headers: usize, captured: Captured) -> DarkAnswer {
    if num_headers == 0 || captured.status == 0 {
        return DarkAnswer::Reset;
    }
    match grpc::local_reply(&captured.headers) {
        Some(grpc::LocalReply::Timeout) => return DarkAnswer::Timeout,
        Some(grpc::LocalReply::Reset) => return DarkAnswer::Reset,
        None => {}
    }
    if captured.status == 504 && captured.body == TIMEOUT_BODY {
        return DarkAnswer::Timeout;
    }
    // 503 for a failed connect or no host, 502 for a protocol error
    // (unparseable status line, too many headers): the dark side never
    // produced an answer of its own.
    if (500..=599).contains(&captured.status)
        && RESET_PREFIXES.iter().any(|p| captured.body.starts_with(p))
    {
        return DarkAnswer::Reset;
    }
    DarkAnswer::Response(captured)
}

pub fn side(c: &Captured) -> Side<'_> {
    Side {
        status: c.status,
        headers: &c.headers,
        body: &c.body,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    pub dark: DarkOutcome,
    pub primary: PrimaryOutcome,
    pub result: Result<Verdict, CompareSkip>,
    pub primary_status: Option<u16>,
    pub dark_status: Option<u16>,
}

/// Settle a pair. `primary` is `None` when the primary stream ended without
/// a complete response. A body that was cut at capture (`body_overflow`) or
/// that decodes (`content-encoding`) to more than `rules.max_body_bytes`
/// makes the pair `BodyTooLarge`, unless bodies are not compared.
///
/// `path` is the request's: for a gRPC call it names the method, hence the
/// message type of the answers under `rules.schema`.
pub fn settle(
    rules: &CompareRules,
    primary: Option<&Captured>,
    dark: &DarkAnswer,
    path: &str,
) -> Settlement {
    let dark_resp = match dark {
        DarkAnswer::Response(c) => Some(c),
        _ => None,
    };
    let primary_class = match primary {
        Some(p) => PrimaryOutcome::of_status(p.status),
        None => PrimaryOutcome::Reset,
    };
    let result = match (primary, dark_resp) {
        (None, _) => Err(CompareSkip::PrimaryIncomplete),
        (_, None) => Err(CompareSkip::DarkFailed),
        (Some(p), Some(d)) => {
            if rules.body != BodyMode::None && (p.body_overflow || d.body_overflow) {
                Err(CompareSkip::BodyTooLarge)
            } else {
                compare::try_compare_call(rules, &side(p), &side(d), path)
                    .map_err(|_| CompareSkip::BodyTooLarge)
            }
        }
    };
    Settlement {
        dark: dark.outcome(),
        primary: primary_class,
        result,
        primary_status: primary.map(|p| p.status),
        dark_status: dark_resp.map(|d| d.status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pointer::PointerPattern;

    fn rules() -> CompareRules {
        CompareRules {
            ignore: vec![PointerPattern::parse("/t").unwrap()],
            max_body_bytes: 1000,
            ..CompareRules::default()
        }
    }

    fn resp(status: u16, body: &str) -> Captured {
        Captured {
            status,
            headers: vec![("content-type".into(), b"application/json".to_vec())],
            body: body.as_bytes().to_vec(),
            body_overflow: false,
        }
    }

    #[test]
    fn classifies_envoy_local_replies() {
        assert!(matches!(
            classify_dark(0, Captured::default()),
            DarkAnswer::Reset
        ));
        assert!(matches!(
            classify_dark(3, resp(504, "upstream request timeout")),
            DarkAnswer::Timeout
        ));
        assert!(matches!(
            classify_dark(3, resp(503, "upstream connect error or disconnect/reset before headers. reset reason: connection failure")),
            DarkAnswer::Reset
        ));
        assert!(matches!(
            classify_dark(3, resp(504, "{}")),
            DarkAnswer::Response(_)
        ));
        assert!(matches!(
            classify_dark(
                3,
                resp(502, "upstream connect error or disconnect/reset before headers. reset reason: protocol error")
            ),
            DarkAnswer::Reset
        ));
        assert!(matches!(
            classify_dark(3, resp(503, "busy")),
            DarkAnswer::Response(_)
        ));
    }

    #[test]
    fn compares_when_both_answered() {
        let p = resp(200, r#"{"a":1,"t":1}"#);
        let d = DarkAnswer::Response(resp(200, r#"{"a":1.0,"t":2}"#));
        let s = settle(&rules(), Some(&p), &d, "");
        assert_eq!(s.dark, DarkOutcome::S2xx);
        assert!(s.result.unwrap().is_match());

        let d = DarkAnswer::Response(resp(500, r#"{"a":2}"#));
        let v = settle(&rules(), Some(&p), &d, "").result.unwrap();
        assert!(v.status && v.body && v.headers.is_empty());
    }

    #[test]
    fn skips() {
        let p = resp(200, "{}");
        assert_eq!(
            settle(&rules(), Some(&p), &DarkAnswer::Timeout, "").result,
            Err(CompareSkip::DarkFailed)
        );
        let s = settle(&rules(), None, &DarkAnswer::Reset, "");
        assert_eq!(s.result, Err(CompareSkip::PrimaryIncomplete));
        assert_eq!(s.primary, PrimaryOutcome::Reset);
        assert_eq!(s.dark, DarkOutcome::Reset);
        let mut big = resp(200, "{}");
        big.body_overflow = true;
        let d = DarkAnswer::Response(resp(200, "{}"));
        assert_eq!(
            settle(&rules(), Some(&big), &d, "").result,
            Err(CompareSkip::BodyTooLarge)
        );
        let mut r = rules();
        r.body = BodyMode::None;
        assert!(settle(&r, Some(&big), &d, "").result.is_ok());
    }

    #[test]
    fn decoded_body_over_max_is_too_large() {
        let gzip = crate::decode::testutil::gzip;
        let enc = |status: u16, body: &[u8]| Captured {
            status,
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("content-encoding".into(), b"gzip".to_vec()),
            ],
            body: gzip(body),
            body_overflow: false,
        };
        // rules().max_body_bytes is 1000: a 40-byte gzip of 2 KB is too large.
        let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(2000));
        let p = enc(200, big.as_bytes());
        assert!(p.body.len() < 100);
        let d = DarkAnswer::Response(enc(200, br#"{"a":"y"}"#));
        let s = settle(&rules(), Some(&p), &d, "");
        assert_eq!(s.result, Err(CompareSkip::BodyTooLarge));
        assert_eq!(s.dark_status, Some(200));
        // Within the limit: decoded and compared as JSON.
        let p = enc(200, br#"{"a":1,"t":1}"#);
        let d = DarkAnswer::Response(resp(200, r#"{"a":1.0}"#));
        let v = settle(&rules(), Some(&p), &d, "").result.unwrap();
        assert!(v.is_match(), "{v:?}");
        let d = DarkAnswer::Response(resp(200, r#"{"a":2}"#));
        let v = settle(&rules(), Some(&p), &d, "").result.unwrap();
        assert_eq!(v.paths, vec!["/a"]);
        // Invalid gzip: raw bytes.
        let mut bad = enc(200, b"{}");
        bad.body = b"{}".to_vec();
        let d = DarkAnswer::Response(resp(200, "{}"));
        assert!(settle(&rules(), Some(&bad), &d, "")
            .result
            .unwrap()
            .is_match());
    }
}
