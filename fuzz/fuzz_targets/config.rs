//! `config::parse` on arbitrary bytes, and on JSON documents generated from
//! the same bytes in the shape of the documented configuration (so validation is reached, not only
//! the JSON parser). Every configuration that parses is then checked against
//! the documented limits and run once through matching, deciding, shadow
//! headers and comparison, as the filter would.

#![no_main]

use arbitrary::{Result, Unstructured};
use darklaunch::compare::{try_compare, Side};
use darklaunch::config::{self, Config, MAX_BODY_LIMIT, MAX_LAUNCHES};
use darklaunch::decision::{decide, matches, read_flag, RequestView};
use darklaunch::shadow::shadow_headers;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut u = Unstructured::new(data);
    if let Ok(doc) = gen_config(&mut u) {
        check(doc.to_string().as_bytes());
    }
});

fn check(bytes: &[u8]) {
    match config::parse(bytes) {
        Ok(cfg) => {
            invariants(&cfg);
            exercise(&cfg);
        }
        Err(e) => {
            // The filter logs the error; rendering it must not fail.
            let _ = e.to_string();
        }
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn invariants(cfg: &Config) {
    assert!(!cfg.launches.is_empty() && cfg.launches.len() <= MAX_LAUNCHES);
    assert_ne!(cfg.flag_header, cfg.shadow_header);
    for h in [&cfg.flag_header, &cfg.shadow_header] {
        assert!(is_token(h) && *h == h.to_ascii_lowercase(), "{h:?}");
    }
    let mut names = std::collections::HashSet::new();
    for l in &cfg.launches {
        assert!(names.insert(l.name.as_str()), "duplicate {}", l.name);
        let b = l.name.as_bytes();
        assert!(!b.is_empty() && b.len() <= 64);
        assert!(b
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-'));
        assert!((0.0..=100.0).contains(&l.sample_percent));
        assert!((1..=60_000).contains(&l.timeout_ms));
        assert!(l.max_body_bytes as u64 <= MAX_BODY_LIMIT);
        assert!(l.limits.max_rps.is_finite() && l.limits.max_rps >= 0.0);
        assert!(l.limits.max_in_flight >= 1);
        assert!(l.breaker.failure_ratio > 0.0 && l.breaker.failure_ratio <= 1.0);
        assert!(l.breaker.min_calls >= 1);
        assert!((1..=3600).contains(&l.breaker.window_s));
        assert!((1..=86_400).contains(&l.breaker.open_s));
        assert!((0.0..1.0).contains(&l.compare.numeric_tolerance));
        for n in l
            .remove_headers
            .iter()
            .chain(l.set_headers.iter().map(|(n, _)| n))
            .chain(l.compare.headers.iter())
            .chain(l.headers.iter().map(|h| &h.name))
        {
            assert!(is_token(n) && *n == n.to_ascii_lowercase(), "{n:?}");
        }
        for m in &l.methods {
            assert!(!m.is_empty());
        }
        if let Some(n) = &l.noise {
            assert!((0.0..=100.0).contains(&n.percent));
        }
    }
}

/// One request, one pair of answers per launch: what the filter does with a
/// configuration it accepted.
fn exercise(cfg: &Config) {
    let headers: Vec<(String, Vec<u8>)> = [
        (":method", &b"GET"[..]),
        (":path", b"/api/orders/7?u=qa-1"),
        (":authority", b"api:8080"),
        ("x-user-id", b"qa-1"),
        ("cookie", b"session=abc; x=1"),
        ("content-type", b"application/json"),
        ("x-tenant", b"acme"),
        ("x-beta", b"1"),
        ("x-dark-launch", b"on"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_vec()))
    .collect();
    let view_headers: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let req = RequestView {
        method: "GET",
        path: "/api/orders/7?u=qa-1",
        headers: &view_headers,
    };
    let flag = read_flag(cfg, &req);
    let a = br#"{"items":[{"id":1,"etag":"x"},{"id":2}],"meta":{"generated_at":1}}"#;
    let b = br#"{"items":[{"id":2},{"id":1,"etag":"y"}],"meta":{"generated_at":2.5}}"#;
    let ct = [("content-type".to_string(), b"application/json".to_vec())];
    for l in &cfg.launches {
        let _ = matches(l, &req);
        let _ = decide(cfg, l, &req, &flag, &mut || 0x8000_0000);
        let out = shadow_headers(l, &cfg.shadow_header, &headers);
        assert_eq!(
            out.last(),
            Some(&(cfg.shadow_header.clone(), l.name.clone()))
        );
        let side = |body: &'static [u8]| Side {
            status: 200,
            headers: &ct,
            body,
        };
        // Comparable unless max_body_bytes is below the bodies' size.
        if let Ok(v) = try_compare(&l.compare, &side(a), &side(b)) {
            assert!(v.paths.len() <= darklaunch::compare::MAX_PATHS);
        }
        assert!(try_compare(&l.compare, &side(a), &side(a)).is_ok_and(|v| v.is_match()));
    }
}

// ---------------------------------------------------------------------------
// Structured generation: documents shaped like the documented configuration, each field present or
// not, values mostly plausible (valid and boundary), sometimes arbitrary.

const NAMES: &[&str] = &[
    "orders-v2",
    "a",
    "0_a",
    "-a",
    "A",
    "",
    "x y",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
];
const HEADERS: &[&str] = &[
    "x-dark-launch",
    "x-darklaunch-shadow",
    "X-Tenant",
    "x-user-id",
    "content-type",
    "authorization",
    "",
    "bad name",
    "x:y",
    "é",
    "x-env",
];
const KEYS: &[&str] = &[
    "header:x-user-id",
    "cookie:session",
    "query:u",
    "query:",
    "cookie:a b",
    "body:x",
    "header:",
    "query:a=b",
    "query:ü",
    "header:X-User",
    "nocolon",
];
const PATHS: &[&str] = &[
    "/api/orders",
    "/",
    "",
    "api",
    "/a?b",
    "/a b",
    "/users/{id}/orders",
    "/u/{id",
    "/u/x{id}",
    "/u/{id}/{id}",
    "/{a}/{b_1}/{}",
    "//",
    "/u/{é}",
];
const POINTERS: &[&str] = &[
    "",
    "/",
    "/meta/generated_at",
    "/items/*/etag",
    "/items",
    "/*",
    "/a~1b",
    "/a~2",
    "/a~",
    "x",
    "/~01",
    "/*/*/*",
];
const FLOATS: &[f64] = &[
    0.0, -0.0, 5.0, 100.0, 100.000001, -1.0, 0.5, 1.0, 0.999999, 1e-300, 1e300, 50.5,
];
const INTS: &[i64] = &[
    0,
    1,
    -1,
    10,
    20,
    30,
    3600,
    3601,
    86_400,
    86_401,
    60_000,
    60_001,
    16_777_216,
    16_777_217,
    4_294_967_295,
    4_294_967_296,
    i64::MAX,
];

fn pick_str(u: &mut Unstructured, pool: &[&str]) -> Result<Value> {
    Ok(if u.ratio(1, 8)? {
        Value::String(u.arbitrary::<String>()?)
    } else {
        Value::String((*u.choose(pool)?).to_string())
    })
}

fn float(u: &mut Unstructured) -> Result<Value> {
    Ok(match u.int_in_range(0..=3)? {
        0 => json!(*u.choose(FLOATS)?),
        1 => json!(u.arbitrary::<f64>()?),
        2 => json!(*u.choose(INTS)?),
        _ => json!(f64::from(u.int_in_range(0..=1000u32)?) / 10.0),
    })
}

fn int(u: &mut Unstructured) -> Result<Value> {
    Ok(match u.int_in_range(0..=2)? {
        0 => json!(*u.choose(INTS)?),
        1 => json!(u.arbitrary::<u64>()?),
        _ => json!(u.int_in_range(0..=100u32)?),
    })
}

/// A wrong-typed value, sometimes, in place of the right one.
fn odd(u: &mut Unstructured) -> Result<Option<Value>> {
    Ok(if u.ratio(1, 32)? {
        Some(match u.int_in_range(0..=4)? {
            0 => Value::Null,
            1 => json!("x"),
            2 => json!(1),
            3 => json!([]),
            _ => json!({}),
        })
    } else {
        None
    })
}

fn list(
    u: &mut Unstructured,
    max: u32,
    mut item: impl FnMut(&mut Unstructured) -> Result<Value>,
) -> Result<Value> {
    let n = u.int_in_range(0..=max)?;
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(item(u)?);
    }
    Ok(Value::Array(v))
}

/// Insert `key` with probability 1/2, the value made by `f` (or an odd one).
fn maybe(
    u: &mut Unstructured,
    obj: &mut Map<String, Value>,
    key: &str,
    f: impl FnOnce(&mut Unstructured) -> Result<Value>,
) -> Result<()> {
    if u.arbitrary::<bool>()? {
        let v = match odd(u)? {
            Some(v) => v,
            None => f(u)?,
        };
        obj.insert(key.to_string(), v);
    }
    Ok(())
}

fn gen_config(u: &mut Unstructured) -> Result<Value> {
    let mut top = Map::new();
    maybe(u, &mut top, "flag_header", |u| pick_str(u, HEADERS))?;
    maybe(u, &mut top, "shadow_header", |u| pick_str(u, HEADERS))?;
    maybe(u, &mut top, "mismatch_log_per_minute", int)?;
    let n = u.int_in_range(0..=34)?;
    let n = if n > 4 && u.ratio(7, 8)? { 1 } else { n };
    let mut launches = Vec::new();
    for _ in 0..n {
        launches.push(gen_launch(u)?);
    }
    top.insert("launches".into(), Value::Array(launches));
    if u.ratio(1, 64)? {
        top.insert(u.arbitrary::<String>()?, json!(1));
    }
    Ok(Value::Object(top))
}

fn gen_launch(u: &mut Unstructured) -> Result<Value> {
    let mut l = Map::new();
    // Required fields are present most of the time.
    if u.ratio(15, 16)? {
        l.insert("name".into(), pick_str(u, NAMES)?);
    }
    if u.ratio(15, 16)? {
        l.insert(
            "dark_cluster".into(),
            pick_str(u, &["orders_v2", "", " ", "c"])?,
        );
    }
    if u.ratio(15, 16)? {
        let mut s = Map::new();
        s.insert("percent".into(), float(u)?);
        maybe(u, &mut s, "sticky_key", |u| {
            list(u, 4, |u| pick_str(u, KEYS))
        })?;
        l.insert("sample".into(), Value::Object(s));
    }
    maybe(u, &mut l, "dark_authority", |u| {
        pick_str(u, &["orders-v2.internal", "", "a\nb", "h:1", "\t"])
    })?;
    maybe(u, &mut l, "match", |u| {
        let mut m = Map::new();
        for k in ["path_prefix", "path_exact", "path_template"] {
            if u.ratio(1, 3)? {
                m.insert(k.into(), pick_str(u, PATHS)?);
            }
        }
        maybe(u, &mut m, "methods", |u| {
            list(u, 3, |u| {
                pick_str(u, &["GET", "POST", "get", "", "M-S_1", "PATCH"])
            })
        })?;
        maybe(u, &mut m, "headers", |u| {
            list(u, 3, |u| {
                let mut h = Map::new();
                h.insert("name".into(), pick_str(u, HEADERS)?);
                maybe(u, &mut h, "exact", |u| pick_str(u, &["acme", "", "\u{0}"]))?;
                maybe(u, &mut h, "present", |u| Ok(json!(u.arbitrary::<bool>()?)))?;
                Ok(Value::Object(h))
            })
        })?;
        Ok(Value::Object(m))
    })?;
    maybe(u, &mut l, "users", |u| {
        let mut m = Map::new();
        if u.ratio(7, 8)? {
            m.insert("key".into(), pick_str(u, KEYS)?);
        }
        maybe(u, &mut m, "always", |u| {
            list(u, 3, |u| pick_str(u, &["qa-1", "", "vip-7"]))
        })?;
        maybe(u, &mut m, "never", |u| {
            list(u, 3, |u| pick_str(u, &["vip-7", "qa-1"]))
        })?;
        Ok(Value::Object(m))
    })?;
    maybe(u, &mut l, "unsafe_methods", |u| {
        Ok(json!(u.arbitrary::<bool>()?))
    })?;
    maybe(u, &mut l, "timeout_ms", int)?;
    maybe(u, &mut l, "max_body_bytes", int)?;
    maybe(u, &mut l, "request_headers", |u| {
        let mut m = Map::new();
        maybe(u, &mut m, "remove", |u| {
            list(u, 3, |u| pick_str(u, HEADERS))
        })?;
        maybe(u, &mut m, "set", |u| {
            let mut s = Map::new();
            for _ in 0..u.int_in_range(0..=3)? {
                let Value::String(k) = pick_str(u, HEADERS)? else {
                    continue;
                };
                let v = match odd(u)? {
                    Some(v) => v,
                    None => pick_str(u, &["dark", "", "a\nb", "\u{7f}", "tab\there"])?,
                };
                s.insert(k, v);
            }
            Ok(Value::Object(s))
        })?;
        Ok(Value::Object(m))
    })?;
    maybe(u, &mut l, "limits", |u| {
        let mut m = Map::new();
        maybe(u, &mut m, "max_rps", float)?;
        maybe(u, &mut m, "max_in_flight", int)?;
        Ok(Value::Object(m))
    })?;
    maybe(u, &mut l, "breaker", |u| {
        let mut m = Map::new();
        maybe(u, &mut m, "failure_ratio", float)?;
        for k in ["min_calls", "window_s", "open_s"] {
            maybe(u, &mut m, k, int)?;
        }
        Ok(Value::Object(m))
    })?;
    maybe(u, &mut l, "compare", |u| {
        let mut m = Map::new();
        maybe(u, &mut m, "status", |u| Ok(json!(u.arbitrary::<bool>()?)))?;
        maybe(u, &mut m, "headers", |u| {
            list(u, 3, |u| pick_str(u, HEADERS))
        })?;
        maybe(u, &mut m, "body", |u| {
            pick_str(u, &["auto", "none", "bytes", "json", "xml", "JSON"])
        })?;
        maybe(u, &mut m, "ignore", |u| {
            list(u, 4, |u| pick_str(u, POINTERS))
        })?;
        maybe(u, &mut m, "unordered_arrays", |u| {
            list(u, 3, |u| pick_str(u, POINTERS))
        })?;
        maybe(u, &mut m, "numeric_tolerance", float)?;
        Ok(Value::Object(m))
    })?;
    maybe(u, &mut l, "noise", |u| {
        let mut m = Map::new();
        m.insert("cluster".into(), pick_str(u, &["orders_v1", "", " "])?);
        m.insert("percent".into(), float(u)?);
        Ok(Value::Object(m))
    })?;
    if u.ratio(1, 64)? {
        l.insert("bogus".into(), json!(1));
    }
    Ok(Value::Object(l))
}
