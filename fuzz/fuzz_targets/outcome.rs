//! `outcome::classify_dark` and `outcome::settle` on arbitrary captured
//! answers (bodies biased towards Envoy's local replies and small JSON
//! documents), plus the mismatch-log rate limiter on arbitrary clocks.
//! The input is decoded with `arbitrary`.

#![no_main]

use arbitrary::Arbitrary;
use darklaunch::compare::{self, BodyMode, CompareRules, Side};
use darklaunch::outcome::{classify_dark, settle, Captured, DarkAnswer};
use darklaunch::pointer::PointerPattern;
use darklaunch::shadow::LogLimiter;
use darklaunch::vocab::{CompareSkip, DarkOutcome, PrimaryOutcome};
use libfuzzer_sys::fuzz_target;
use miniz_oxide::deflate::{compress_to_vec, compress_to_vec_zlib};

#[derive(Arbitrary, Debug)]
enum Name {
    ContentType,
    ContentEncoding,
    Etag,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Body {
    Timeout,
    ConnectReset(Vec<u8>),
    NoHealthy(Vec<u8>),
    Json(JsonDoc),
    Raw(Vec<u8>),
    /// A JSON document, compressed; the coding is added to the headers.
    Encoded(Coding, JsonDoc),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Coding {
    Gzip,
    Deflate,
    RawDeflate,
}

/// A small JSON document, written out by hand so that odd numbers (big
/// integers, exponents, `-0`) and duplicate keys appear.
#[derive(Arbitrary, Debug)]
enum JsonDoc {
    Null,
    Bool(bool),
    Int(i64),
    Big(u64),
    Float(f64),
    Exp(i8, i16),
    Str(String),
    Arr(Vec<JsonDoc>),
    Obj(Vec<(u8, JsonDoc)>),
}

impl JsonDoc {
    fn write(&self, out: &mut String, depth: u32) {
        if depth > 20 {
            out.push_str("null");
            return;
        }
        match self {
            JsonDoc::Null => out.push_str("null"),
            JsonDoc::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            JsonDoc::Int(i) => out.push_str(&i.to_string()),
            JsonDoc::Big(u) => out.push_str(&u.to_string()),
            JsonDoc::Float(f) if f.is_finite() => out.push_str(&format!("{f:?}")),
            JsonDoc::Float(_) => out.push_str("-0"),
            JsonDoc::Exp(m, e) => out.push_str(&format!("{m}e{e}")),
            JsonDoc::Str(s) => out.push_str(&serde_json::Value::from(s.as_str()).to_string()),
            JsonDoc::Arr(v) => {
                out.push('[');
                for (i, d) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    d.write(out, depth + 1);
                }
                out.push(']');
            }
            JsonDoc::Obj(v) => {
                out.push('{');
                for (i, (k, d)) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    // Few distinct keys, so both sides share some.
                    out.push_str(&format!(
                        "\"{}\":",
                        ["a", "b", "t", "etag", "items", "~/"][usize::from(*k) % 6]
                    ));
                    d.write(out, depth + 1);
                }
                out.push('}');
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Cap {
    status: u16,
    headers: Vec<(Name, Vec<u8>)>,
    body: Body,
    body_overflow: bool,
}

impl Cap {
    fn captured(&self) -> Captured {
        let mut headers: Vec<(String, Vec<u8>)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                let n = match n {
                    Name::ContentType => "content-type".to_string(),
                    Name::ContentEncoding => "content-encoding".to_string(),
                    Name::Etag => "etag".to_string(),
                    Name::Other(s) => s.clone(),
                };
                (n, v.clone())
            })
            .collect();
        let body = match &self.body {
            Body::Timeout => b"upstream request timeout".to_vec(),
            Body::ConnectReset(tail) => {
                let mut b = b"upstream connect error or disconnect/reset before headers".to_vec();
                b.extend_from_slice(tail);
                b
            }
            Body::NoHealthy(tail) => {
                let mut b = b"no healthy upstream".to_vec();
                b.extend_from_slice(tail);
                b
            }
            Body::Json(d) => {
                let mut s = String::new();
                d.write(&mut s, 0);
                s.into_bytes()
            }
            Body::Raw(b) => b.clone(),
            Body::Encoded(c, d) => {
                let mut s = String::new();
                d.write(&mut s, 0);
                let (name, bytes) = match c {
                    Coding::Gzip => ("gzip", gzip(s.as_bytes())),
                    Coding::Deflate => ("deflate", compress_to_vec_zlib(s.as_bytes(), 6)),
                    Coding::RawDeflate => ("deflate", compress_to_vec(s.as_bytes(), 1)),
                };
                headers.push(("content-encoding".to_string(), name.as_bytes().to_vec()));
                bytes
            }
        };
        Captured {
            status: self.status,
            headers,
            body,
            body_overflow: self.body_overflow,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    num_headers: u8,
    primary: Option<Cap>,
    dark: Cap,
    mode: u8,
    status: bool,
    tolerance: u8,
    max_body: u8,
    compared: Vec<String>,
    ignore: Vec<String>,
    unordered: Vec<String>,
    log: Vec<(u16, u32)>,
    per_minute: u8,
}

fuzz_target!(|input: Input| {
    let rules = CompareRules {
        status: input.status,
        max_body_bytes: [65_536, 0, 8, 64, 1024][usize::from(input.max_body) % 5],
        headers: input
            .compared
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        body: [
            BodyMode::None,
            BodyMode::Bytes,
            BodyMode::Json,
            BodyMode::Auto,
        ][usize::from(input.mode) % 4],
        ignore: input
            .ignore
            .iter()
            .filter_map(|p| PointerPattern::parse(p).ok())
            .collect(),
        unordered_arrays: input
            .unordered
            .iter()
            .filter_map(|p| PointerPattern::parse(p).ok())
            .collect(),
        numeric_tolerance: f64::from(input.tolerance) / 256.0,
        ..CompareRules::default()
    };
    let primary = input.primary.as_ref().map(Cap::captured);
    let dark = input.dark.captured();
    let num = usize::from(input.num_headers);

    let answer = classify_dark(num, dark.clone());
    match &answer {
        // Envoy's own local replies (5xx with its connect-failure or
        // protocol-error body) mean the dark side never answered.
        DarkAnswer::Reset => assert!(
            num == 0
                || dark.status == 0
                || ((500..=599).contains(&dark.status)
                    && (dark.body.starts_with(
                        b"upstream connect error or disconnect/reset before headers"
                    ) || dark.body.starts_with(b"no healthy upstream")))
        ),
        DarkAnswer::Timeout => assert!(dark.status == 504 && num > 0),
        DarkAnswer::Response(c) => {
            assert!(num > 0 && c.status != 0);
            assert_eq!(c.body, dark.body);
        }
    }

    for d in [answer, DarkAnswer::Timeout, DarkAnswer::Reset] {
        let s = settle(&rules, primary.as_ref(), &d, "");
        assert!(s.primary.index() < PrimaryOutcome::NAMES.len());
        match (&primary, &d) {
            (None, _) => {
                assert_eq!(s.result, Err(CompareSkip::PrimaryIncomplete));
                assert_eq!(s.primary, PrimaryOutcome::Reset);
            }
            (Some(_), DarkAnswer::Timeout | DarkAnswer::Reset) => {
                assert_eq!(s.result, Err(CompareSkip::DarkFailed));
            }
            (Some(p), DarkAnswer::Response(c)) => {
                assert_eq!(s.dark, DarkOutcome::of_status(c.status));
                if rules.body != BodyMode::None && (p.body_overflow || c.body_overflow) {
                    assert_eq!(s.result, Err(CompareSkip::BodyTooLarge));
                } else {
                    let v = compare::try_compare(&rules, &side(p), &side(c));
                    assert_eq!(s.result, v.map_err(|_| CompareSkip::BodyTooLarge));
                }
            }
        }
        match d {
            DarkAnswer::Timeout => assert_eq!(s.dark, DarkOutcome::Timeout),
            DarkAnswer::Reset => assert_eq!(s.dark, DarkOutcome::Reset),
            DarkAnswer::Response(_) => {}
        }
    }

    // At most `per_minute` lines in any fixed one-minute window.
    let mut limiter = LogLimiter::default();
    let per_minute = u32::from(input.per_minute % 8);
    let mut now = 0u64;
    let mut window = 0u64;
    let mut used = 0u32;
    for (step, jump) in &input.log {
        now = now.saturating_add(u64::from(*step) * u64::from(*jump % 4));
        if now.saturating_sub(window) >= 60_000 {
            window = now;
            used = 0;
        }
        if limiter.allow(now, per_minute) {
            used += 1;
            assert!(used <= per_minute);
        }
    }
});

fn side(x: &Captured) -> Side<'_> {
    Side {
        status: x.status,
        headers: &x.headers,
        body: &x.body,
    }
}

/// A one-member gzip file (RFC 1952), written here independently of the
/// decoder under test.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    out.extend(compress_to_vec(data, 6));
    out.extend(crc32(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}
