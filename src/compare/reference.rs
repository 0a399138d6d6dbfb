//! The comparator as it was before [`crate::json`]: both bodies parsed into
//! `serde_json::Value`, then walked with owned paths. Test-only: the
//! differential tests (`compare::differential`) and the `compare` fuzz
//! target (which compiles this file in) check that the current comparator
//! gives the same verdicts. Only `super::` (the compare module's public
//! items) and `crate::pointer` may be named here.

use std::borrow::Cow;

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
        headers: false,
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
    let parsed = (
        serde_json::from_slice::<Value>(a),
        serde_json::from_slice::<Value>(b),
    );
    if let (Ok(a), Ok(b)) = parsed {
        let mut walker = Walker::new(rules, Vec::new(), MAX_DIFFS);
        walker.walk(Some(&a), Some(&b));
        return (walker.differs, walker.diffs);
    }
    (true, Vec::new())
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
    fn walk(&mut self, a: Option<&Value>, b: Option<&Value>) {
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

    fn values(&mut self, a: &Value, b: &Value) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
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
            (Value::Array(x), Value::Array(y)) => self.arrays(x, y),
            (Value::Number(x), Value::Number(y)) => {
                if !numbers_equal(x, y, self.rules.numeric_tolerance) {
                    self.record(DiffKind::Value);
                }
            }
            (Value::Null, Value::Null) => {}
            (Value::Bool(x), Value::Bool(y)) => {
                if x != y {
                    self.record(DiffKind::Value);
                }
            }
            (Value::String(x), Value::String(y)) => {
                if x != y {
                    self.record(DiffKind::Value);
                }
            }
            _ => self.record(DiffKind::Type),
        }
    }

    fn arrays(&mut self, x: &[Value], y: &[Value]) {
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
    fn same_multiset(&self, x: &[Value], y: &[Value]) -> bool {
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
    fn equal(&mut self, a: &Value, b: &Value) -> bool {
        self.differs = false;
        self.walk(Some(a), Some(b));
        !self.differs
    }
}

/// Elements of an unordered array compared by greedy pairing at most; past
/// that, in order (see `same_multiset`).
const MAX_PAIRING_ELEMENTS: usize = 1000;

/// The canonical forms of an array's elements, sorted.
fn sorted_canonical(items: &[Value]) -> Vec<String> {
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

/// A text form in which two values are equal exactly when the comparator
/// (without tolerance) calls them equal: object keys sorted (serde_json's
/// map is ordered), numbers written so that `1` and `1.0` agree.
fn canonical(v: &Value, out: &mut String) {
    use std::fmt::Write;
    match v {
        Value::Null => out.push('n'),
        Value::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        Value::Number(n) => {
            let _ = match (as_i128(n), n.as_f64()) {
                (Some(i), _) => write!(out, "#{i}"),
                // An integral float equals the integer of the same value.
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1.7e38 => {
                    write!(out, "#{}", f as i128)
                }
                (None, Some(f)) => write!(out, "#{f:?}"),
                (None, None) => write!(out, "#?{n}"),
            };
        }
        Value::String(s) => {
            let _ = write!(out, "{s:?}");
        }
        Value::Array(a) => {
            out.push('[');
            for item in a {
                canonical(item, out);
                out.push(',');
            }
            out.push(']');
        }
        Value::Object(m) => {
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

/// Integers (i64/u64) compare exactly, anything else as f64; with a positive
/// tolerance, equal when |a−b| ≤ tol × max(|a|,|b|).
fn numbers_equal(a: &Number, b: &Number, tol: f64) -> bool {
    if let (Some(x), Some(y)) = (as_i128(a), as_i128(b)) {
        // Exact difference: as f64, u64::MAX and u64::MAX-1 would be equal.
        return x == y
            || (tol > 0.0
                && x.abs_diff(y) as f64 <= tol * x.unsigned_abs().max(y.unsigned_abs()) as f64);
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y || (tol > 0.0 && (x - y).abs() <= tol * x.abs().max(y.abs())),
        _ => false,
    }
}

fn as_i128(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}
