//! `compare::try_compare` on two arbitrary answers under rules taken from
//! the input, in every body mode; `PointerPattern::parse` and
//! `is_json_content_type` on arbitrary strings. Differential: `json::parse`
//! accepts exactly what serde_json accepts, and in JSON mode the verdict is
//! the one of the comparator it replaced (serde_json values, plus exact
//! integers, kept in src/compare/reference.rs and compiled in here).
//!
//! Input layout (so seeds are easy to write by hand):
//!
//! ```text
//! byte 0      bit 0 = compare status; bits 1..8 pick max_body_bytes
//! byte 1      numeric tolerance: 0 = exact, else n/256
//! bytes 2..6  primary status, dark status (u16 big-endian each)
//! then five sections separated by NUL bytes:
//!   rules      lines: "i<pointer>" ignore, "u<pointer>" unordered array,
//!              "h<name>" compared header
//!   headers A  lines "name:value" (value raw bytes)
//!   headers B  likewise
//!   body A     raw
//!   body B     raw (the rest of the input, NULs included)
//! ```

#![no_main]

use darklaunch::compare::{
    compare_examples, is_json_content_type, try_compare, BodyMode, CompareRules, DiffKind, Difference, Side, Verdict,
    MAX_DIFFS, MAX_PATHS,
};
use darklaunch::json;
use darklaunch::pointer;
use darklaunch::redact;
use darklaunch::pointer::{render, PathSeg, PointerPattern, Segment};
use libfuzzer_sys::fuzz_target;

/// The old comparator, from the library's test-only source file (which
/// names its neighbours `super::`, here the imports above, and
/// `crate::pointer`).
#[path = "../../src/compare/reference.rs"]
mod reference;

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<6>() else {
        return;
    };
    let mut sections = rest.splitn(5, |b| *b == 0);
    let rules_text = sections.next().unwrap_or_default();
    let headers_a = headers(sections.next().unwrap_or_default());
    let headers_b = headers(sections.next().unwrap_or_default());
    let body_a = sections.next().unwrap_or_default();
    let body_b = sections.next().unwrap_or_default();

    // Built on the configuration defaults, so that fields added later keep
    // their default value here.
    let mut rules = CompareRules {
        status: head[0] & 1 == 1,
        numeric_tolerance: f64::from(head[1]) / 256.0,
        max_body_bytes: MAX_BODY[usize::from(head[0] >> 1) % MAX_BODY.len()],
        ..CompareRules::default()
    };
    for line in rules_text.split(|b| *b == b'\n') {
        let Some((&kind, arg)) = line.split_first() else {
            continue;
        };
        let arg = String::from_utf8_lossy(arg);
        match kind {
            b'i' | b'u' => {
                if let Ok(p) = PointerPattern::parse(&arg) {
                    check_pattern(&p);
                    if kind == b'i' {
                        rules.ignore.push(p);
                    } else {
                        rules.unordered_arrays.push(p);
                    }
                }
            }
            b'h' => rules.headers.push(arg.to_ascii_lowercase()),
            _ => {}
        }
    }
    for (_, v) in headers_a.iter().chain(&headers_b) {
        let _ = is_json_content_type(v);
    }

    let a = Side {
        status: u16::from_be_bytes([head[2], head[3]]),
        headers: &headers_a,
        body: body_a,
    };
    let b = Side {
        status: u16::from_be_bytes([head[4], head[5]]),
        headers: &headers_b,
        body: body_b,
    };
    for mode in [
        BodyMode::None,
        BodyMode::Bytes,
        BodyMode::Json,
        BodyMode::Auto,
    ] {
        rules.body = mode;
        // An answer always equals itself (identical bytes are not decoded).
        assert!(try_compare(&rules, &a, &a).is_ok_and(|v| v.is_match()));
        assert!(try_compare(&rules, &b, &b).is_ok_and(|v| v.is_match()));
        // A body decoding to more than max_body_bytes makes the pair
        // incomparable, whichever side it is on.
        let Ok(ab) = try_compare(&rules, &a, &b) else {
            assert!(mode != BodyMode::None, "nothing to decode");
            assert!(try_compare(&rules, &b, &a).is_err());
            continue;
        };
        well_formed(&ab);
        if mode == BodyMode::None {
            assert!(!ab.body);
        }
        // Without unordered arrays (greedy pairing, evaluated with the
        // primary's indexes) the comparison is symmetric: the same locations,
        // with missing and extra swapped.
        if rules.unordered_arrays.is_empty() {
            let mut ba = try_compare(&rules, &b, &a).expect("comparable both ways");
            for d in &mut ba.diffs {
                d.kind = match d.kind {
                    DiffKind::Missing => DiffKind::Extra,
                    DiffKind::Extra => DiffKind::Missing,
                    k => k,
                };
            }
            assert_eq!(ab, ba, "not symmetric");
        }
    }
    // Documents that serde_json parses to equal values are equal in JSON mode
    // (unless they hold integers serde_json rounds to f64: those compare
    // exactly).
    rules.body = BodyMode::Json;
    let plain = Side {
        status: a.status,
        headers: &[],
        body: body_a,
    };
    let plain_b = Side {
        status: a.status,
        headers: &[],
        body: body_b,
    };
    let parsed = (
        serde_json::from_slice::<serde_json::Value>(body_a),
        serde_json::from_slice::<serde_json::Value>(body_b),
    );
    assert_eq!(
        json::parse(body_a).is_ok(),
        parsed.0.is_ok(),
        "parsers disagree"
    );
    assert_eq!(
        json::parse(body_b).is_ok(),
        parsed.1.is_ok(),
        "parsers disagree"
    );
    // Bodies over the limit are not compared (nor modelled by the old
    // comparator).
    let Ok(v) = try_compare(&rules, &plain, &plain_b) else {
        return;
    };
    if let (Ok(x), Ok(y)) = parsed {
        if x == y && !rounded_integers(body_a) && !rounded_integers(body_b) {
            assert!(v.is_match(), "equal JSON compared unequal: {v:?}");
        }
    }
    assert_eq!(
        v,
        reference::verdict(&rules, body_a, body_b),
        "not the old verdict"
    );
    // Samples: the value-keeping walk (the ignore patterns reused as
    // redact patterns) finds the same verdict, one example per difference,
    // each value valid JSON, none at a redacted location; a redacted body
    // is still JSON.
    let redact = rules.ignore.clone();
    let (ve, examples) =
        compare_examples(&rules, &plain, &plain_b, &redact, "").expect("compared above");
    assert_eq!(ve, v);
    assert_eq!(examples.len(), v.diffs.len());
    for (e, d) in examples.iter().zip(&v.diffs) {
        assert_eq!((&e.field, e.kind), (&d.pointer, d.kind));
        if e.redacted {
            assert!(e.primary.is_none() && e.dark.is_none());
        }
        for text in [&e.primary, &e.dark].into_iter().flatten() {
            assert!(
                serde_json::from_str::<serde_json::Value>(text).is_ok(),
                "not JSON: {text}"
            );
        }
    }
    if let Some(text) = redact::body(body_a, &redact) {
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok(), "not JSON: {text}");
    }
});

/// Whether a JSON document holds an integer (as written) that serde_json's
/// value rounds to an f64: beyond u64 and i64.
fn rounded_integers(body: &[u8]) -> bool {
    fn walk(v: json::Value<'_>) -> bool {
        match v.kind() {
            json::Kind::Number => {
                matches!(v.number(), Some(json::Number::F64(_)))
                    && v.integer().is_some_and(|i| i != json::Integer::Small(0))
            }
            json::Kind::Array => v.elements().any(walk),
            json::Kind::Object => v.members().any(|(_, m)| walk(m)),
            _ => false,
        }
    }
    json::parse(body)
        .ok()
        .is_some_and(|doc| doc.root().is_some_and(walk))
}

/// `max_body_bytes` choices: the default, tiny ones (decoded bodies over the
/// limit) and the configuration maximum.
const MAX_BODY: [usize; 7] = [65_536, 0, 1, 16, 100, 1024, 16 * 1024 * 1024];

fn headers(text: &[u8]) -> Vec<(String, Vec<u8>)> {
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (n, v) = match line.iter().position(|b| *b == b':') {
                Some(i) => (&line[..i], &line[i + 1..]),
                None => (line, &b""[..]),
            };
            (String::from_utf8_lossy(n).into_owned(), v.to_vec())
        })
        .collect()
}

fn well_formed(v: &Verdict) {
    assert!(v.paths.len() <= MAX_PATHS);
    assert!(v.diffs.len() <= MAX_DIFFS);
    if !v.body {
        assert!(v.paths.is_empty() && v.diffs.is_empty());
    }
    for (i, d) in v.diffs.iter().enumerate() {
        assert!(!v.diffs[..i].contains(d), "duplicate difference {d:?}");
        assert!(
            PointerPattern::parse(&d.pointer).is_ok(),
            "bad pointer {d:?}"
        );
    }
    for p in &v.paths {
        assert!(v.diffs.iter().any(|d| d.pointer == *p));
        // Every reported location is itself a valid pointer.
        assert!(PointerPattern::parse(p).is_ok(), "bad path {p:?}");
    }
}

/// A pattern of literal keys names exactly the location it renders to, and
/// rendering that location parses back to the same pattern.
fn check_pattern(p: &PointerPattern) {
    let path: Vec<PathSeg> = p
        .segments()
        .iter()
        .map(|s| match s {
            Segment::Any => PathSeg::Key("*".into()),
            Segment::Key(k) => PathSeg::Key(k.as_str().into()),
        })
        .collect();
    assert!(p.matches_exactly(&path));
    assert!(p.covers(&path));
    let again = PointerPattern::parse(&render(&path)).expect("rendered pointer parses");
    // A literal key "*" renders as "/*", which is the wildcard: compare modulo that.
    let norm = |q: &PointerPattern| -> Vec<Option<String>> {
        q.segments()
            .iter()
            .map(|s| match s {
                Segment::Any => None,
                Segment::Key(k) if k == "*" => None,
                Segment::Key(k) => Some(k.clone()),
            })
            .collect()
    };
    assert_eq!(norm(p), norm(&again));
}
