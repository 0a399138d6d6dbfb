//! Comparing the primary and the dark answer: status, selected headers, body.
//!
//! JSON bodies are compared semantically (key order, `1` vs `1.0`, numeric
//! tolerance, ignored and unordered locations); everything else byte for byte.

use std::collections::BTreeSet;

use serde_json::{Number, Value};

use crate::pointer::{render, PathSeg, PointerPattern};

/// At most this many differing pointers are reported in [`Verdict::paths`].
pub const MAX_PATHS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    None,
    Bytes,
    Json,
    /// JSON when both sides declare a JSON content-type, else bytes.
    Auto,
}

#[derive(Debug, Clone)]
pub struct CompareRules {
    pub status: bool,
    /// Lower-case response header names to compare.
    pub headers: Vec<String>,
    pub body: BodyMode,
    /// Differences at or below these locations do not count.
    pub ignore: Vec<PointerPattern>,
    /// Arrays exactly at these locations are compared as multisets.
    pub unordered_arrays: Vec<PointerPattern>,
    /// Relative tolerance for numbers; 0.0 = exact (but `1` still equals `1.0`).
    pub numeric_tolerance: f64,
}

/// One captured response. `headers` holds only the compared headers plus
/// content-type and content-encoding, names lower-case, values raw bytes; a
/// name may repeat.
pub struct Side<'a> {
    pub status: u16,
    pub headers: &'a [(String, Vec<u8>)],
    pub body: &'a [u8],
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Verdict {
    /// Statuses differ (and `rules.status`).
    pub status: bool,
    /// Some listed header differs.
    pub headers: bool,
    /// Body differs (outside ignored locations).
    pub body: bool,
    /// Differing JSON pointers, first [`MAX_PATHS`] in document order (object
    /// keys sorted); empty for a byte comparison.
    pub paths: Vec<String>,
}

impl Verdict {
    pub fn is_match(&self) -> bool {
        !(self.status || self.headers || self.body)
    }
}

/// Compare two responses under `rules`.
///
/// If either side has a non-identity content-encoding (gzip, br, ...) the
/// bodies are compared as raw bytes even in JSON mode: decoding is not done
/// yet, so two differently compressed but equal documents count as different.
pub fn compare(rules: &CompareRules, primary: &Side, dark: &Side) -> Verdict {
    let status = rules.status && primary.status != dark.status;
    let headers = rules
        .headers
        .iter()
        .any(|name| !header_values(primary.headers, name).eq(header_values(dark.headers, name)));
    let (body, paths) = compare_body(rules, primary, dark);
    Verdict {
        status,
        headers,
        body,
        paths,
    }
}

/// True for `application/json` and any `type/subtype+json`, ignoring
/// parameters (`; charset=utf-8`) and case.
pub fn is_json_content_type(value: &[u8]) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((ty, subtype)) = essence.split_once('/') else {
        return false;
    };
    (ty == "application" && subtype == "json")
        || (!ty.is_empty() && subtype.len() > "+json".len() && subtype.ends_with("+json"))
}

/// Values of header `name` in order, trimmed.
fn header_values<'a>(
    headers: &'a [(String, Vec<u8>)],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim_ascii())
}

fn is_json_side(side: &Side) -> bool {
    header_values(side.headers, "content-type")
        .next()
        .is_some_and(is_json_content_type)
}

fn is_encoded(side: &Side) -> bool {
    header_values(side.headers, "content-encoding")
        .any(|v| !v.is_empty() && !v.eq_ignore_ascii_case(b"identity"))
}

/// Returns (body differs, differing pointers).
fn compare_body(rules: &CompareRules, primary: &Side, dark: &Side) -> (bool, Vec<String>) {
    // Identical bytes are equal under every mode, and ignoring the root
    // ignores the whole body whatever way it would be compared.
    if rules.body == BodyMode::None
        || primary.body == dark.body
        || rules.ignore.iter().any(|p| p.covers(&[]))
    {
        return (false, Vec::new());
    }
    let as_json = match rules.body {
        BodyMode::None | BodyMode::Bytes => false,
        BodyMode::Json => true,
        BodyMode::Auto => is_json_side(primary) && is_json_side(dark),
    };
    if as_json && !is_encoded(primary) && !is_encoded(dark) {
        let parsed = (
            serde_json::from_slice::<Value>(primary.body),
            serde_json::from_slice::<Value>(dark.body),
        );
        if let (Ok(a), Ok(b)) = parsed {
            let mut walker = Walker::new(rules, Vec::new(), MAX_PATHS);
            walker.walk(Some(&a), Some(&b));
            return (walker.differs, walker.paths);
        }
    }
    // Bytes differ (checked above).
    (true, Vec::new())
}

/// Depth-first comparison of two JSON values, tracking the current location.
/// Recursion depth follows the parsed documents, which serde_json caps at 128.
struct Walker<'r> {
    rules: &'r CompareRules,
    path: Vec<PathSeg>,
    differs: bool,
    paths: Vec<String>,
    max_paths: usize,
}

impl<'r> Walker<'r> {
    fn new(rules: &'r CompareRules, path: Vec<PathSeg>, max_paths: usize) -> Self {
        Self {
            rules,
            path,
            differs: false,
            paths: Vec::new(),
            max_paths,
        }
    }

    /// Nothing more to learn: a difference is known and the path list is full.
    fn done(&self) -> bool {
        self.differs && self.paths.len() >= self.max_paths
    }

    fn record(&mut self) {
        self.differs = true;
        if self.paths.len() < self.max_paths {
            self.paths.push(render(&self.path));
        }
    }

    /// Compare the values at the current path; `None` = absent on that side.
    fn walk(&mut self, a: Option<&Value>, b: Option<&Value>) {
        if self.done() || self.rules.ignore.iter().any(|p| p.covers(&self.path)) {
            return;
        }
        match (a, b) {
            (None, None) => {}
            (Some(a), Some(b)) => self.values(a, b),
            _ => self.record(),
        }
    }

    fn values(&mut self, a: &Value, b: &Value) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    if self.done() {
                        break;
                    }
                    self.path.push(PathSeg::Key(k.clone()));
                    self.walk(x.get(k), y.get(k));
                    self.path.pop();
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                let unordered = self
                    .rules
                    .unordered_arrays
                    .iter()
                    .any(|p| p.matches_exactly(&self.path));
                if unordered {
                    if !self.same_multiset(x, y) {
                        self.record();
                    }
                    return;
                }
                for i in 0..x.len().max(y.len()) {
                    if self.done() {
                        break;
                    }
                    self.path.push(PathSeg::Index(i));
                    self.walk(x.get(i), y.get(i));
                    self.path.pop();
                }
            }
            (Value::Number(x), Value::Number(y)) => {
                if !numbers_equal(x, y, self.rules.numeric_tolerance) {
                    self.record();
                }
            }
            // Strings, booleans, null, and any change of type.
            _ => {
                if a != b {
                    self.record();
                }
            }
        }
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

    /// For probes (`max_paths == 0`): stops at the first difference.
    fn equal(&mut self, a: &Value, b: &Value) -> bool {
        self.differs = false;
        self.walk(Some(a), Some(b));
        !self.differs
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(body: BodyMode) -> CompareRules {
        CompareRules {
            status: true,
            headers: Vec::new(),
            body,
            ignore: Vec::new(),
            unordered_arrays: Vec::new(),
            numeric_tolerance: 0.0,
        }
    }

    fn pats(list: &[&str]) -> Vec<PointerPattern> {
        list.iter()
            .map(|s| PointerPattern::parse(s).unwrap())
            .collect()
    }

    fn hdrs(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn side<'a>(headers: &'a [(String, Vec<u8>)], body: &'a [u8]) -> Side<'a> {
        Side {
            status: 200,
            headers,
            body,
        }
    }

    /// Compare two JSON bodies in Json mode.
    fn json(r: &CompareRules, a: &str, b: &str) -> Verdict {
        compare(r, &side(&[], a.as_bytes()), &side(&[], b.as_bytes()))
    }

    fn json_rules() -> CompareRules {
        rules(BodyMode::Json)
    }

    #[test]
    fn status_compared_only_when_enabled() {
        let mut r = rules(BodyMode::None);
        let a = Side {
            status: 200,
            headers: &[],
            body: b"",
        };
        let b = Side {
            status: 503,
            headers: &[],
            body: b"",
        };
        let v = compare(&r, &a, &b);
        assert!(v.status && !v.is_match());
        r.status = false;
        assert!(compare(&r, &a, &b).is_match());
        assert!(compare(&rules(BodyMode::None), &a, &a).is_match());
    }

    #[test]
    fn headers_listed_only() {
        let mut r = rules(BodyMode::None);
        let a = hdrs(&[("x-a", "1"), ("x-b", "1")]);
        let b = hdrs(&[("x-a", " 1 "), ("x-b", "2")]);
        r.headers = vec!["x-a".into()];
        assert!(compare(&r, &side(&a, b""), &side(&b, b"")).is_match());
        r.headers = vec!["x-b".into()];
        let v = compare(&r, &side(&a, b""), &side(&b, b""));
        assert!(v.headers && !v.status && !v.body);
    }

    #[test]
    fn headers_name_case_and_value_case() {
        let mut r = rules(BodyMode::None);
        r.headers = vec!["x-a".into()];
        let a = hdrs(&[("X-A", "v")]);
        let b = hdrs(&[("x-a", "v")]);
        assert!(compare(&r, &side(&a, b""), &side(&b, b"")).is_match());
        // Values are bytes: case matters.
        let c = hdrs(&[("x-a", "V")]);
        assert!(compare(&r, &side(&a, b""), &side(&c, b"")).headers);
    }

    #[test]
    fn headers_absent() {
        let mut r = rules(BodyMode::None);
        r.headers = vec!["x-a".into()];
        let a = hdrs(&[("x-a", "")]);
        let none = hdrs(&[]);
        // Present (even empty) vs absent differs; absent on both is equal.
        assert!(compare(&r, &side(&a, b""), &side(&none, b"")).headers);
        assert!(compare(&r, &side(&none, b""), &side(&a, b"")).headers);
        assert!(compare(&r, &side(&none, b""), &side(&none, b"")).is_match());
    }

    #[test]
    fn headers_multi_valued_order_matters() {
        let mut r = rules(BodyMode::None);
        r.headers = vec!["set-cookie".into()];
        let a = hdrs(&[("set-cookie", "a=1"), ("x", "y"), ("set-cookie", "b=2")]);
        let same = hdrs(&[("set-cookie", "a=1"), ("set-cookie", "b=2 ")]);
        let swapped = hdrs(&[("set-cookie", "b=2"), ("set-cookie", "a=1")]);
        let fewer = hdrs(&[("set-cookie", "a=1")]);
        assert!(compare(&r, &side(&a, b""), &side(&same, b"")).is_match());
        assert!(compare(&r, &side(&a, b""), &side(&swapped, b"")).headers);
        assert!(compare(&r, &side(&a, b""), &side(&fewer, b"")).headers);
    }

    #[test]
    fn body_none_never_differs() {
        let r = rules(BodyMode::None);
        assert!(compare(&r, &side(&[], b"a"), &side(&[], b"b")).is_match());
    }

    #[test]
    fn body_bytes() {
        let r = rules(BodyMode::Bytes);
        assert!(compare(&r, &side(&[], b"abc"), &side(&[], b"abc")).is_match());
        let v = compare(
            &r,
            &side(&[], br#"{"a":1,"b":2}"#),
            &side(&[], br#"{"b":2,"a":1}"#),
        );
        assert!(v.body);
        assert!(v.paths.is_empty());
    }

    #[test]
    fn body_non_utf8_bytes() {
        let r = rules(BodyMode::Json);
        let a: &[u8] = &[0xff, 0xfe, 0x00];
        let b: &[u8] = &[0xff, 0xfe, 0x01];
        assert!(compare(&r, &side(&[], a), &side(&[], a)).is_match());
        let v = compare(&r, &side(&[], a), &side(&[], b));
        assert!(v.body && v.paths.is_empty());
    }

    #[test]
    fn json_key_order_and_whitespace() {
        let v = json(
            &json_rules(),
            r#"{"a":1,"b":[1,2]}"#,
            "{ \"b\" : [1, 2],\n \"a\": 1 }",
        );
        assert!(v.is_match(), "{v:?}");
    }

    #[test]
    fn json_int_equals_float() {
        assert!(json(&json_rules(), "[1, -2, 0]", "[1.0, -2.0, 0.0]").is_match());
        assert!(json(&json_rules(), "1e2", "100").is_match());
        let v = json(&json_rules(), r#"{"n":1}"#, r#"{"n":1.5}"#);
        assert_eq!(v.paths, vec!["/n"]);
    }

    #[test]
    fn json_tolerance() {
        let mut r = json_rules();
        assert!(json(&r, "100", "101").body);
        assert!(json(&r, "0.1", "0.1000001").body);
        r.numeric_tolerance = 0.01;
        assert!(json(&r, "100", "101").is_match());
        assert!(json(&r, "-100", "-101").is_match());
        assert!(json(&r, "0.1", "0.1000001").is_match());
        assert!(json(&r, "100", "102").body);
        assert!(json(&r, "0", "0.0").is_match());
        assert!(json(&r, "0", "1e-300").body);
        // Huge magnitudes of opposite sign: no overflow trouble.
        assert!(json(&r, "1e308", "-1e308").body);
        assert!(json(&r, "1e308", "1.001e308").is_match());
    }

    #[test]
    fn json_huge_numbers() {
        let r = json_rules();
        let max = u64::MAX.to_string();
        let max1 = (u64::MAX - 1).to_string();
        assert!(json(&r, &max, &max).is_match());
        assert!(json(&r, &format!("[{max}]"), &format!("[{max1}]")).body);
        let min = i64::MIN.to_string();
        assert!(json(&r, &format!("[{min}]"), &format!("[{max}]")).body);
        assert!(json(&r, "[1e308]", "[1e308]").is_match());
        assert!(json(&r, "[1e308]", "[1.0e308]").is_match());
        assert!(json(&r, "[1e308]", "[9e307]").body);
        // Out-of-range numbers fail to parse: byte fallback.
        assert!(json(&r, "1e400", "1e400").is_match());
        assert!(json(&r, "1e400", "1e401").body);
    }

    #[test]
    fn json_type_change() {
        let v = json(
            &json_rules(),
            r#"{"a":1,"b":"x","c":[]}"#,
            r#"{"a":"1","b":"x","c":{}}"#,
        );
        assert_eq!(v.paths, vec!["/a", "/c"]);
        assert!(json(&json_rules(), "true", "1").body);
        assert!(json(&json_rules(), "null", "false").body);
    }

    #[test]
    fn json_null_vs_missing() {
        let v = json(&json_rules(), r#"{"a":null}"#, r#"{}"#);
        assert_eq!(v.paths, vec!["/a"]);
        let v = json(&json_rules(), r#"{}"#, r#"{"b":null}"#);
        assert_eq!(v.paths, vec!["/b"]);
    }

    #[test]
    fn json_extra_array_elements() {
        let v = json(&json_rules(), "[1,2,3]", "[1,9]");
        assert_eq!(v.paths, vec!["/1", "/2"]);
        let v = json(&json_rules(), r#"{"l":[]}"#, r#"{"l":[0,0]}"#);
        assert_eq!(v.paths, vec!["/l/0", "/l/1"]);
    }

    #[test]
    fn json_paths_escaped_and_sorted() {
        let v = json(
            &json_rules(),
            r#"{"z":1,"a/b":1,"m~":{"x":1}}"#,
            r#"{"z":2,"a/b":2,"m~":{"x":2}}"#,
        );
        assert_eq!(v.paths, vec!["/a~1b", "/m~0/x", "/z"]);
    }

    #[test]
    fn json_nested_ignore_with_wildcard() {
        let mut r = json_rules();
        r.ignore = pats(&["/items/*/etag", "/meta"]);
        let a = r#"{"items":[{"id":1,"etag":"a"},{"id":2,"etag":"b"}],"meta":{"t":1}}"#;
        let b = r#"{"items":[{"id":1,"etag":"c"},{"id":2}],"meta":"other"}"#;
        assert!(json(&r, a, b).is_match());
        let c = r#"{"items":[{"id":1,"etag":"c"},{"id":3}],"meta":1}"#;
        assert_eq!(json(&r, a, c).paths, vec!["/items/1/id"]);
    }

    #[test]
    fn json_ignore_array_index() {
        let mut r = json_rules();
        r.ignore = pats(&["/1"]);
        assert!(json(&r, "[1,2,3]", "[1,5,3]").is_match());
        assert!(json(&r, "[1,2]", "[1]").is_match());
        assert_eq!(json(&r, "[1,2,3]", "[1]").paths, vec!["/2"]);
    }

    #[test]
    fn ignore_root_ignores_everything() {
        let mut r = json_rules();
        r.ignore = pats(&[""]);
        assert!(json(&r, r#"{"a":1}"#, r#"[2]"#).is_match());
        // Also for invalid JSON and byte mode.
        assert!(json(&r, "not json", "{}").is_match());
        r.body = BodyMode::Bytes;
        assert!(compare(&r, &side(&[], b"a"), &side(&[], b"b")).is_match());
    }

    #[test]
    fn invalid_json_falls_back_to_bytes() {
        let r = json_rules();
        assert!(json(&r, "{oops", "{oops").is_match());
        let v = json(&r, "{oops", r#"{"a":1}"#);
        assert!(v.body && v.paths.is_empty());
        let v = json(&r, r#"{"a":1}"#, "");
        assert!(v.body && v.paths.is_empty());
        assert!(json(&r, "", "").is_match());
    }

    #[test]
    fn auto_uses_content_type() {
        let r = rules(BodyMode::Auto);
        let pj = hdrs(&[("content-type", "application/problem+json; charset=utf-8")]);
        let aj = hdrs(&[("content-type", "Application/JSON")]);
        let text = hdrs(&[("content-type", "text/plain")]);
        let a = br#"{"a":1,"b":2}"#;
        let b = br#"{"b":2,"a":1.0}"#;
        assert!(compare(&r, &side(&pj, a), &side(&aj, b)).is_match());
        // One side not JSON: bytes.
        assert!(compare(&r, &side(&pj, a), &side(&text, b)).body);
        assert!(compare(&r, &side(&pj, a), &side(&[], b)).body);
    }

    #[test]
    fn encoded_bodies_compare_as_bytes() {
        let r = json_rules();
        let gz = hdrs(&[("content-encoding", "gzip")]);
        let id = hdrs(&[("content-encoding", "identity")]);
        let a = br#"{"a":1,"b":2}"#;
        let b = br#"{"b":2,"a":1}"#;
        assert!(compare(&r, &side(&gz, a), &side(&[], b)).body);
        assert!(compare(&r, &side(&id, a), &side(&[], b)).is_match());
    }

    #[test]
    fn json_content_types() {
        for yes in [
            "application/json",
            "APPLICATION/JSON",
            "application/json; charset=utf-8",
            " application/json ;charset=utf-8",
            "application/problem+json",
            "application/vnd.api+json;v=2",
            "text/x+json",
        ] {
            assert!(is_json_content_type(yes.as_bytes()), "{yes}");
        }
        for no in [
            "",
            "json",
            "text/json",
            "application/jsonx",
            "application/x-json",
            "application/+json",
            "/a+json",
            "text/html; profile=application/json",
        ] {
            assert!(!is_json_content_type(no.as_bytes()), "{no}");
        }
        assert!(!is_json_content_type(&[0xff, b'/', b'j']));
    }

    #[test]
    fn unordered_arrays_multiset() {
        let mut r = json_rules();
        r.unordered_arrays = pats(&["/tags", "/items/*/ids"]);
        assert!(json(&r, r#"{"tags":["a","b","c"]}"#, r#"{"tags":["c","a","b"]}"#).is_match());
        // Duplicates must pair one to one.
        assert!(json(&r, r#"{"tags":["a","a","b"]}"#, r#"{"tags":["a","b","a"]}"#).is_match());
        let v = json(&r, r#"{"tags":["a","a","b"]}"#, r#"{"tags":["a","b","b"]}"#);
        assert_eq!(v.paths, vec!["/tags"]);
        let v = json(&r, r#"{"tags":["a","b"]}"#, r#"{"tags":["a","b","a"]}"#);
        assert_eq!(v.paths, vec!["/tags"]);
        // Only exactly matching locations are unordered.
        assert!(json(&r, r#"{"other":[1,2]}"#, r#"{"other":[2,1]}"#).body);
        assert!(json(
            &r,
            r#"{"items":[{"ids":[1,2]},{"ids":[3,4]}]}"#,
            r#"{"items":[{"ids":[2,1]},{"ids":[4,3.0]}]}"#
        )
        .is_match());
        // Order of "items" itself still matters.
        let v = json(
            &r,
            r#"{"items":[{"ids":[1]},{"ids":[2]}]}"#,
            r#"{"items":[{"ids":[2]},{"ids":[1]}]}"#,
        );
        assert_eq!(v.paths, vec!["/items/0/ids", "/items/1/ids"]);
    }

    #[test]
    fn unordered_arrays_of_objects_with_ignore() {
        let mut r = json_rules();
        r.unordered_arrays = pats(&["/items"]);
        r.ignore = pats(&["/items/*/etag"]);
        let a = r#"{"items":[{"id":1,"etag":"x"},{"id":2,"etag":"y"}]}"#;
        let b = r#"{"items":[{"id":2,"etag":"q"},{"id":1}]}"#;
        assert!(json(&r, a, b).is_match());
        let c = r#"{"items":[{"id":2},{"id":3}]}"#;
        assert_eq!(json(&r, a, c).paths, vec!["/items"]);
    }

    #[test]
    fn unordered_root_array() {
        let mut r = json_rules();
        r.unordered_arrays = pats(&[""]);
        assert!(json(&r, "[3,1,2]", "[1,2,3]").is_match());
        assert_eq!(json(&r, "[3,1,2]", "[1,2,4]").paths, vec![""]);
    }

    #[test]
    fn paths_limited_to_ten() {
        let a: Vec<String> = (0..30).map(|i| format!(r#""k{i:02}":{i}"#)).collect();
        let b: Vec<String> = (0..30).map(|i| format!(r#""k{i:02}":{}"#, i + 1)).collect();
        let v = json(
            &json_rules(),
            &format!("{{{}}}", a.join(",")),
            &format!("{{{}}}", b.join(",")),
        );
        assert!(v.body);
        let want: Vec<String> = (0..10).map(|i| format!("/k{i:02}")).collect();
        assert_eq!(v.paths, want);
    }

    #[test]
    fn deep_nesting_is_fine() {
        let depth = 120;
        let a = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let b = format!("{}2{}", "[".repeat(depth), "]".repeat(depth));
        let v = json(&json_rules(), &a, &b);
        assert_eq!(v.paths, vec!["/0".repeat(depth)]);
    }
}
