//! The comparator as it was before [`crate::json`]: both bodies parsed by
//! serde_json, then walked with owned paths. Test-only: the differential
//! tests (`compare::differential`) and the `compare` fuzz target (which
//! compiles this file in) check that the current comparator gives the same
//! verdicts. Only `super::` (the compare module's public items),
//! `crate::pointer` and `serde_json` may be named here.
//!
//! serde_json (without `arbitrary_precision`, which would change every
//! other use of it) holds an integer beyond u64/i64 as an f64, losing its
//! last digits. So a document serde_json accepts is read once more here
//! into [`Json`], serde_json's value model (the same numbers, sorted maps,
//! the last of repeated keys counting) plus every number's text, checked to
//! be the very value serde_json built; integers are then compared by that
//! text when serde_json has no exact value for them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Number, Value};

use super::{CompareRules, DiffKind, Difference, Verdict, MAX_DIFFS, MAX_PATHS};
use crate::pointer::{render_folded, PathSeg};

/// The verdict of the old `compare` for two unencoded bodies in
/// `BodyMode::Json` (same status, no headers compared).
pub fn verdict(rules: &CompareRules, a: &[u8], b: &[u8]) -> Verdict {
    let (body, diffs) = body(rules, a, b);
    let mut paths: Vec<String> = Vec::new();
    for d in &diffs {
        if paths.len() >= MAX_PATHS {
            break;
        }
        if !paths.contains(&d.pointer) {
            paths.push(d.pointer.clone());
        }
    }
    Verdict {
        status: false,
        grpc_status: false,
        headers: Vec::new(),
        body,
        paths,
        diffs,
    }
}

/// The old `compare_body` for two unencoded JSON-mode bodies.
fn body(rules: &CompareRules, a: &[u8], b: &[u8]) -> (bool, Vec<Difference>) {
    if rules.ignore.iter().any(|p| p.covers(&[])) || a == b {
        return (false, Vec::new());
    }
    if let (Some(a), Some(b)) = (parse(a), parse(b)) {
        let mut walker = Walker::new(rules, Vec::new(), MAX_DIFFS);
        walker.walk(Some(&a), Some(&b));
        return (walker.differs, walker.diffs);
    }
    (true, Vec::new())
}

/// A JSON value as serde_json holds it, numbers with their text.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(Num),
    String(String),
    Array(Vec<Json>),
    Object(BTreeMap<String, Json>),
}

#[derive(Debug, Clone, PartialEq)]
struct Num {
    /// serde_json's value.
    n: Number,
    /// The number as written.
    text: String,
}

/// An integer's exact value.
#[derive(Debug, Clone, PartialEq)]
enum Int {
    Fits(i128),
    /// Beyond i128: its text (JSON has no leading zeros, and this is not 0).
    Wide(String),
}

impl Num {
    fn f64(&self) -> f64 {
        self.n.as_f64().unwrap_or(f64::NAN)
    }

    /// The exact value of a number written as an integer (no fraction, no
    /// exponent): serde_json's when it has one, else from the text.
    fn int(&self) -> Option<Int> {
        if self.text.contains(['.', 'e', 'E']) {
            return None;
        }
        if let Some(i) = as_i128(&self.n) {
            return Some(Int::Fits(i));
        }
        Some(match self.text.parse::<i128>() {
            Ok(i) => Int::Fits(i),
            Err(_) => Int::Wide(self.text.clone()),
        })
    }
}

/// A document as serde_json reads it (`None` where it refuses it).
fn parse(text: &[u8]) -> Option<Json> {
    let value = serde_json::from_slice::<Value>(text).ok()?;
    // serde_json accepted it: the input is UTF-8 and well-formed JSON.
    let mut reader = Reader {
        text: std::str::from_utf8(text).ok()?,
        pos: 0,
    };
    let json = reader.value()?;
    assert_eq!(to_value(&json), value, "the reader is not serde_json");
    Some(json)
}

fn to_value(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Number(n.n.clone()),
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        Json::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), to_value(v))).collect()),
    }
}

/// Reads a document serde_json has accepted (so it is well-formed): each
/// string and number token is handed to serde_json on its own.
struct Reader<'t> {
    text: &'t str,
    pos: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Skip whitespace, then `b` if it is next.
    fn eat(&mut self, b: u8) -> bool {
        self.skip_ws();
        let found = self.peek() == Some(b);
        if found {
            self.pos += 1;
        }
        found
    }

    fn value(&mut self) -> Option<Json> {
        self.skip_ws();
        let start = self.pos;
        Some(match self.peek()? {
            b'{' => {
                self.pos += 1;
                let mut members = BTreeMap::new();
                if !self.eat(b'}') {
                    loop {
                        self.skip_ws();
                        let key = self.string()?;
                        self.eat(b':');
                        // The last of repeated keys counts.
                        members.insert(key, self.value()?);
                        if !self.eat(b',') {
                            break;
                        }
                    }
                    self.eat(b'}');
                }
                Json::Object(members)
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                if !self.eat(b']') {
                    loop {
                        items.push(self.value()?);
                        if !self.eat(b',') {
                            break;
                        }
                    }
                    self.eat(b']');
                }
                Json::Array(items)
            }
            b'"' => Json::String(self.string()?),
            b't' => self.word("true", Json::Bool(true)),
            b'f' => self.word("false", Json::Bool(false)),
            b'n' => self.word("null", Json::Null),
            _ => {
                while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.peek() {
                    self.pos += 1;
                }
                let text = self.text.get(start..self.pos)?;
                Json::Number(Num {
                    n: serde_json::from_str::<Number>(text).ok()?,
                    text: text.to_string(),
                })
            }
        })
    }

    fn word(&mut self, word: &str, value: Json) -> Json {
        self.pos += word.len();
        value
    }

    /// The string at `pos` (at its opening quote), decoded by serde_json.
    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        self.pos += 1;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => self.pos += 2,
                _ => self.pos += 1,
            }
        }
        self.pos += 1;
        serde_json::from_str::<String>(self.text.get(start..self.pos)?).ok()
    }
}

/// Depth-first comparison of two JSON values, tracking the current location.
/// Recursion depth follows the parsed documents, which serde_json caps at 128.
struct Walker<'r> {
    rules: &'r CompareRules,
    path: Vec<PathSeg<'static>>,
    differs: bool,
    diffs: Vec<Difference>,
    max_diffs: usize,
}

impl<'r> Walker<'r> {
    fn new(rules: &'r CompareRules, path: Vec<PathSeg<'static>>, max_diffs: usize) -> Self {
        Self {
            rules,
            path,
            differs: false,
            diffs: Vec::new(),
            max_diffs,
        }
    }

    /// Nothing more to learn: a difference is known and the list is full.
    fn done(&self) -> bool {
        self.differs && self.diffs.len() >= self.max_diffs
    }

    fn record(&mut self, kind: DiffKind) {
        self.differs = true;
        if self.diffs.len() < self.max_diffs {
            let pointer = render_folded(&self.path);
            if !self
                .diffs
                .iter()
                .any(|d| d.kind == kind && d.pointer == pointer)
            {
                self.diffs.push(Difference { pointer, kind });
            }
        }
    }

    fn ignored(&self) -> bool {
        self.rules.ignore.iter().any(|p| p.covers(&self.path))
    }

    /// Compare the values at the current path; `None` = absent on that side.
    fn walk(&mut self, a: Option<&Json>, b: Option<&Json>) {
        if self.done() || self.ignored() {
            return;
        }
        match (a, b) {
            (None, None) => {}
            (Some(a), Some(b)) => self.values(a, b),
            (Some(_), None) => self.record(DiffKind::Missing),
            (None, Some(_)) => self.record(DiffKind::Extra),
        }
    }

    fn values(&mut self, a: &Json, b: &Json) {
        match (a, b) {
            (Json::Object(x), Json::Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort_unstable();
                keys.dedup();
                for k in keys {
                    if self.done() {
                        break;
                    }
                    self.path.push(PathSeg::Key(Cow::Owned(k.clone())));
                    self.walk(x.get(k), y.get(k));
                    self.path.pop();
                }
            }
            (Json::Array(x), Json::Array(y)) => self.arrays(x, y),
            (Json::Number(x), Json::Number(y)) => {
                if !numbers_equal(x, y, self.rules.numeric_tolerance) {
                    self.record(DiffKind::Value);
                }
            }
            (Json::Null, Json::Null) => {}
            (Json::Bool(x), Json::Bool(y)) => {
                if x != y {
                    self.record(DiffKind::Value);
                }
            }
            (Json::String(x), Json::String(y)) => {
                if x != y {
                    self.record(DiffKind::Value);
                }
            }
            _ => self.record(DiffKind::Type),
        }
    }

    fn arrays(&mut self, x: &[Json], y: &[Json]) {
        let common = x.len().min(y.len());
        let length_differs =
            x.len() != y.len() && !self.surplus_ignored(common, x.len().max(y.len()));
        let unordered = self
            .rules
            .unordered_arrays
            .iter()
            .any(|p| p.matches_exactly(&self.path));
        if length_differs {
            self.record(DiffKind::ArrayLength);
        }
        let (Some(x), Some(y)) = (x.get(..common), y.get(..common)) else {
            return;
        };
        if unordered {
            // A length difference already says the multisets differ.
            if !length_differs && !self.same_multiset(x, y) {
                self.record(DiffKind::Value);
            }
            return;
        }
        for (i, (a, b)) in x.iter().zip(y).enumerate() {
            if self.done() {
                break;
            }
            self.path.push(PathSeg::Index(i));
            self.walk(Some(a), Some(b));
            self.path.pop();
        }
    }

    /// True when every index in `from..to` below the current path is ignored.
    fn surplus_ignored(&mut self, from: usize, to: usize) -> bool {
        if self.rules.ignore.is_empty() {
            return false;
        }
        (from..to).all(|i| {
            self.path.push(PathSeg::Index(i));
            let ignored = self.ignored();
            self.path.pop();
            ignored
        })
    }

    /// True when the elements can be paired one to one, each pair equal under
    /// the same rules. Ignore patterns below the array are evaluated with the
    /// primary element's index. Greedy pairing: exact when equality is
    /// transitive (no tolerance, no index-specific ignores), otherwise it may
    /// miss a valid pairing and report a difference.
    fn same_multiset(&self, x: &[Json], y: &[Json]) -> bool {
        if x.len() != y.len() {
            return false;
        }
        if self.plain_below() {
            return sorted_canonical(x) == sorted_canonical(y);
        }
        if x.len() > MAX_PAIRING_ELEMENTS {
            // Greedy pairing is quadratic; past this size (with rules that
            // need it) the array is compared in order rather than block the
            // worker.
            let mut probe = Walker::new(self.rules, self.path.clone(), 0);
            return x.iter().zip(y).enumerate().all(|(i, (a, b))| {
                probe.path.truncate(self.path.len());
                probe.path.push(PathSeg::Index(i));
                probe.equal(a, b)
            });
        }
        let mut used = vec![false; y.len()];
        for (i, a) in x.iter().enumerate() {
            let mut path = self.path.clone();
            path.push(PathSeg::Index(i));
            let mut probe = Walker::new(self.rules, path, 0);
            // Same position first: already-ordered arrays cost O(n).
            let found = std::iter::once(i)
                .chain((0..y.len()).filter(|&j| j != i))
                .find(|&j| {
                    used.get(j) == Some(&false) && y.get(j).is_some_and(|b| probe.equal(a, b))
                });
            match found.and_then(|j| used.get_mut(j)) {
                Some(slot) => *slot = true,
                None => return false,
            }
        }
        true
    }

    /// No tolerance and no ignore or unordered pattern reaching below the
    /// current array: element equality is plain JSON equality, so multisets
    /// can be compared by sorting canonical forms, in O(n log n).
    fn plain_below(&self) -> bool {
        self.rules.numeric_tolerance <= 0.0
            && !self
                .rules
                .ignore
                .iter()
                .any(|p| p.reaches_below(&self.path))
            && !self
                .rules
                .unordered_arrays
                .iter()
                .any(|p| p.reaches_below(&self.path))
    }

    /// For probes (`max_diffs == 0`): stops at the first difference.
    fn equal(&mut self, a: &Json, b: &Json) -> bool {
        self.differs = false;
        self.walk(Some(a), Some(b));
        !self.differs
    }
}

/// Elements of an unordered array compared by greedy pairing at most; past
/// that, in order (see `same_multiset`).
const MAX_PAIRING_ELEMENTS: usize = 1000;

/// The canonical forms of an array's elements, sorted.
fn sorted_canonical(items: &[Json]) -> Vec<String> {
    let mut out: Vec<String> = items
        .iter()
        .map(|v| {
            let mut s = String::new();
            canonical(v, &mut s);
            s
        })
        .collect();
    out.sort_unstable();
    out
}

/// A text form in which two values are equal only when the comparator
/// (without tolerance) calls them equal: object keys sorted (serde_json's
/// map is ordered), numbers written so that `1` and `1.0` agree. A number
/// is written as its f64 (`1`, `1.0`, `-0`: the same) when that is its exact
/// value; an integer that no f64 holds is written with all its digits, so
/// that two such integers equal only when they are the same (and never
/// paired with a float, which they equal only as rounded).
fn canonical(v: &Json, out: &mut String) {
    use std::fmt::Write;
    match v {
        Json::Null => out.push('n'),
        Json::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        Json::Number(n) => {
            // `+ 0.0` makes -0.0 0.0.
            let f = n.f64() + 0.0;
            let _ = match n.int() {
                Some(Int::Fits(i)) if format!("{f:.0}") != i.to_string() => write!(out, "#i{i}"),
                Some(Int::Wide(text)) => write!(out, "#w{text}"),
                // Debug prints the shortest text that reads back as `f`.
                _ => write!(out, "#f{f:?}"),
            };
        }
        Json::String(s) => {
            let _ = write!(out, "{s:?}");
        }
        Json::Array(a) => {
            out.push('[');
            for item in a {
                canonical(item, out);
                out.push(',');
            }
            out.push(']');
        }
        Json::Object(m) => {
            out.push('{');
            for (k, item) in m {
                let _ = write!(out, "{k:?}:");
                canonical(item, out);
                out.push(',');
            }
            out.push('}');
        }
    }
}

/// Two integers (as written) compare exactly, whatever their size; anything
/// else as f64. With a positive tolerance, equal when |a−b| ≤ tol ×
/// max(|a|,|b|): exactly for integers that fit i128, as f64 otherwise.
fn numbers_equal(a: &Num, b: &Num, tol: f64) -> bool {
    if let (Some(x), Some(y)) = (a.int(), b.int()) {
        if x == y {
            return true;
        }
        if tol <= 0.0 {
            return false;
        }
        if let (Int::Fits(x), Int::Fits(y)) = (x, y) {
            // Exact difference: as f64, u64::MAX and u64::MAX-1 would be equal.
            return x.abs_diff(y) as f64 <= tol * x.unsigned_abs().max(y.unsigned_abs()) as f64;
        }
    }
    let (x, y) = (a.f64(), b.f64());
    x == y || (tol > 0.0 && (x - y).abs() <= tol * x.abs().max(y.abs()))
}

fn as_i128(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}
