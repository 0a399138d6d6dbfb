//! Plugin configuration: parsed with serde, validated, compiled.
//!
//! Parsing happens in two steps so that every error names the JSON path of
//! the offending field: serde (through `serde_path_to_error`) rejects unknown
//! fields and wrong types with their path; `validate` then checks every rule
//! and compiles the raw structs into the [`Config`] the filter runs with.
//! Nothing here is re-done per request.

use std::collections::HashSet;

use serde::Deserialize;

use crate::compare::{BodyMode, CompareRules};
use crate::pointer::PointerPattern;

/// A rejected configuration: the JSON path of the field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}

pub const MAX_LAUNCHES: usize = 32;
pub const MAX_BODY_LIMIT: u64 = 16 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Raw shape, exactly as users write it.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    launches: Vec<RawLaunch>,
    flag_header: Option<String>,
    shadow_header: Option<String>,
    mismatch_log_per_minute: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLaunch {
    name: String,
    dark_cluster: String,
    dark_authority: Option<String>,
    #[serde(rename = "match")]
    matcher: Option<RawMatch>,
    sample: RawSample,
    users: Option<RawUsers>,
    unsafe_methods: Option<bool>,
    timeout_ms: Option<u64>,
    max_body_bytes: Option<u64>,
    request_headers: Option<RawRequestHeaders>,
    limits: Option<RawLimits>,
    breaker: Option<RawBreaker>,
    compare: Option<RawCompare>,
    noise: Option<RawNoise>,
    expires: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    path_prefix: Option<String>,
    path_exact: Option<String>,
    path_template: Option<String>,
    methods: Option<Vec<String>>,
    headers: Option<Vec<RawHeaderMatch>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaderMatch {
    name: String,
    exact: Option<String>,
    present: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSample {
    percent: f64,
    sticky_key: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsers {
    key: String,
    always: Option<Vec<String>>,
    never: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequestHeaders {
    remove: Option<Vec<String>>,
    set: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_rps: Option<f64>,
    max_in_flight: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBreaker {
    failure_ratio: Option<f64>,
    min_calls: Option<u32>,
    window_s: Option<u32>,
    open_s: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompare {
    status: Option<bool>,
    headers: Option<Vec<String>>,
    body: Option<String>,
    ignore: Option<Vec<String>>,
    unordered_arrays: Option<Vec<String>>,
    numeric_tolerance: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNoise {
    cluster: String,
    percent: f64,
}

// ---------------------------------------------------------------------------
// Compiled shape, what the filter runs with.

#[derive(Debug, Clone)]
pub struct Config {
    /// Lower-case header name.
    pub flag_header: String,
    /// Lower-case header name.
    pub shadow_header: String,
    pub mismatch_log_per_minute: u32,
    pub launches: Vec<Launch>,
}

#[derive(Debug, Clone)]
pub struct Launch {
    pub name: String,
    pub dark_cluster: String,
    pub dark_authority: Option<String>,
    pub path: PathMatch,
    /// Upper-case method names; empty = any.
    pub methods: Vec<String>,
    pub headers: Vec<HeaderMatch>,
    pub sample_percent: f64,
    pub sticky_key: Vec<KeySource>,
    pub users: Option<Users>,
    pub unsafe_methods: bool,
    pub timeout_ms: u32,
    pub max_body_bytes: usize,
    /// Lower-case names removed from the shadow request.
    pub remove_headers: Vec<String>,
    /// Lower-case names and values set on the shadow request.
    pub set_headers: Vec<(String, String)>,
    pub limits: Limits,
    pub breaker: Breaker,
    pub compare: CompareRules,
    pub noise: Option<Noise>,
    /// When the launch stops shadowing: ms since the Unix epoch.
    pub expires_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PathMatch {
    Any,
    Prefix(String),
    Exact(String),
    /// One entry per segment after the leading `/`; `None` is a `{name}` placeholder.
    Template(Vec<Option<String>>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeaderMatch {
    /// Lower-case.
    pub name: String,
    pub rule: HeaderRule,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HeaderRule {
    Exact(String),
    Present(bool),
}

/// Where a sticky key or a user id is read from.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    /// Lower-case header name.
    Header(String),
    Cookie(String),
    Query(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Users {
    pub key: KeySource,
    pub always: HashSet<String>,
    pub never: HashSet<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Shadow calls per second across the process; 0 = unlimited.
    pub max_rps: f64,
    /// Shadow calls in flight per worker.
    pub max_in_flight: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Breaker {
    pub failure_ratio: f64,
    pub min_calls: u32,
    pub window_s: u32,
    pub open_s: u32,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            failure_ratio: 0.5,
            min_calls: 20,
            window_s: 10,
            open_s: 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Noise {
    pub cluster: String,
    pub percent: f64,
}

// ---------------------------------------------------------------------------

/// Parse, validate and compile a plugin configuration.
pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
    not_json_text(bytes)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let raw: RawConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        err(path, inner.to_string())
    })?;
    de.end().map_err(|e| err("", e.to_string()))?;
    validate(raw)
}

/// What Envoy hands over when the plugin `configuration` is not a
/// `google.protobuf.StringValue` holding JSON: nothing (no configuration),
/// or the serialized bytes of another message (a `google.protobuf.Struct`,
/// the natural move when porting an Istio `pluginConfig`). Say so instead
/// of a JSON syntax error at "line 2 column 1".
fn not_json_text(bytes: &[u8]) -> Result<(), ConfigError> {
    const WANT: &str = "the plugin `configuration` must be a google.protobuf.StringValue \
                        whose value is the JSON configuration";
    let json_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let start = bytes.iter().position(|b| !json_space(b));
    let Some(first) = start.and_then(|i| bytes.get(i)) else {
        return Err(err("", format!("the configuration is empty: {WANT}")));
    };
    if *first == b'{' {
        return Ok(());
    }
    let binary = std::str::from_utf8(bytes).is_err()
        || bytes.iter().any(|b| b.is_ascii_control() && !json_space(b));
    let what = if binary {
        format!(
            "{} bytes of binary data (a serialized google.protobuf.Struct or other message?)",
            bytes.len()
        )
    } else {
        let rest = bytes.get(start.unwrap_or(0)..).unwrap_or_default();
        let head: String = String::from_utf8_lossy(rest)
            .chars()
            .take(16)
            .collect();
        format!("text that is not a JSON object (it starts with {head:?})")
    };
    Err(err("", format!("the configuration is {what}: {WANT}")))
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let flag_header = header_name(raw.flag_header.as_deref(), "x-dark-launch", "flag_header")?;
    let shadow_header = header_name(
        raw.shadow_header.as_deref(),
        "x-darklaunch-shadow",
        "shadow_header",
    )?;
    if flag_header == shadow_header {
        return Err(err("shadow_header", "must differ from flag_header"));
    }
    if raw.launches.is_empty() || raw.launches.len() > MAX_LAUNCHES {
        return Err(err(
            "launches",
            format!("must hold 1 to {MAX_LAUNCHES} launches"),
        ));
    }
    let mut names = HashSet::new();
    let mut launches = Vec::with_capacity(raw.launches.len());
    for (i, rl) in raw.launches.into_iter().enumerate() {
        let at = format!("launches[{i}]");
        let launch = validate_launch(rl, &at)?;
        if !names.insert(launch.name.clone()) {
            return Err(err(
                format!("{at}.name"),
                format!("duplicate launch name '{}'", launch.name),
            ));
        }
        launches.push(launch);
    }
    Ok(Config {
        flag_header,
        shadow_header,
        mismatch_log_per_minute: raw.mismatch_log_per_minute.unwrap_or(60),
        launches,
    })
}

fn validate_launch(rl: RawLaunch, at: &str) -> Result<Launch, ConfigError> {
    if !is_launch_name(&rl.name) {
        return Err(err(
            format!("{at}.name"),
            "must match ^[a-z0-9][a-z0-9_-]{0,63}$",
        ));
    }
    if rl.dark_cluster.trim().is_empty() {
        return Err(err(format!("{at}.dark_cluster"), "must not be empty"));
    }
    if let Some(a) = &rl.dark_authority {
        if a.is_empty() || !is_header_value(a) {
            return Err(err(
                format!("{at}.dark_authority"),
                "must be a non-empty authority without control characters",
            ));
        }
    }

    let (path, methods, headers) = match rl.matcher {
        None => (PathMatch::Any, Vec::new(), Vec::new()),
        Some(m) => validate_match(m, &format!("{at}.match"))?,
    };

    let sample_at = format!("{at}.sample");
    let p = rl.sample.percent;
    if !(0.0..=100.0).contains(&p) {
        return Err(err(
            format!("{sample_at}.percent"),
            "must be between 0 and 100",
        ));
    }
    let mut sticky_key = Vec::new();
    for (i, s) in rl.sample.sticky_key.unwrap_or_default().iter().enumerate() {
        sticky_key.push(key_source(s, &format!("{sample_at}.sticky_key[{i}]"))?);
    }

    let users = match rl.users {
        None => None,
        Some(u) => Some(Users {
            key: key_source(&u.key, &format!("{at}.users.key"))?,
            always: u.always.unwrap_or_default().into_iter().collect(),
            never: u.never.unwrap_or_default().into_iter().collect(),
        }),
    };

    let timeout_ms = rl.timeout_ms.unwrap_or(1000);
    if !(1..=60_000).contains(&timeout_ms) {
        return Err(err(
            format!("{at}.timeout_ms"),
            "must be between 1 and 60000",
        ));
    }
    let max_body_bytes = rl.max_body_bytes.unwrap_or(65_536);
    if max_body_bytes > MAX_BODY_LIMIT {
        return Err(err(
            format!("{at}.max_body_bytes"),
            format!("must be at most {MAX_BODY_LIMIT} (16 MiB)"),
        ));
    }

    let (remove_headers, set_headers) = match rl.request_headers {
        None => (Vec::new(), Vec::new()),
        Some(rh) => validate_request_headers(rh, &format!("{at}.request_headers"))?,
    };

    let limits = match rl.limits {
        None => Limits {
            max_rps: 0.0,
            max_in_flight: 100,
        },
        Some(l) => {
            let max_rps = l.max_rps.unwrap_or(0.0);
            if !max_rps.is_finite() || max_rps < 0.0 {
                return Err(err(
                    format!("{at}.limits.max_rps"),
                    "must be 0 (no limit) or positive",
                ));
            }
            let max_in_flight = l.max_in_flight.unwrap_or(100);
            if max_in_flight == 0 {
                return Err(err(
                    format!("{at}.limits.max_in_flight"),
                    "must be at least 1",
                ));
            }
            Limits {
                max_rps,
                max_in_flight,
            }
        }
    };

    let breaker = match rl.breaker {
        None => Breaker::default(),
        Some(b) => {
            let d = Breaker::default();
            let out = Breaker {
                failure_ratio: b.failure_ratio.unwrap_or(d.failure_ratio),
                min_calls: b.min_calls.unwrap_or(d.min_calls),
                window_s: b.window_s.unwrap_or(d.window_s),
                open_s: b.open_s.unwrap_or(d.open_s),
            };
            let bat = format!("{at}.breaker");
            if !(out.failure_ratio > 0.0 && out.failure_ratio <= 1.0) {
                return Err(err(
                    format!("{bat}.failure_ratio"),
                    "must be greater than 0 and at most 1",
                ));
            }
            if out.min_calls == 0 {
                return Err(err(format!("{bat}.min_calls"), "must be at least 1"));
            }
            if !(1..=3600).contains(&out.window_s) {
                return Err(err(format!("{bat}.window_s"), "must be between 1 and 3600"));
            }
            if !(1..=86_400).contains(&out.open_s) {
                return Err(err(format!("{bat}.open_s"), "must be between 1 and 86400"));
            }
            out
        }
    };

    let compare = validate_compare(
        rl.compare,
        max_body_bytes as usize,
        &format!("{at}.compare"),
    )?;

    let noise = match rl.noise {
        None => None,
        Some(n) => {
            if n.cluster.trim().is_empty() {
                return Err(err(format!("{at}.noise.cluster"), "must not be empty"));
            }
            if !(0.0..=100.0).contains(&n.percent) {
                return Err(err(
                    format!("{at}.noise.percent"),
                    "must be between 0 and 100",
                ));
            }
            Some(Noise {
                cluster: n.cluster,
                percent: n.percent,
            })
        }
    };

    let expires_ms = match &rl.expires {
        None => None,
        Some(t) => Some(parse_utc(t).ok_or_else(|| {
            err(
                format!("{at}.expires"),
                "must be an RFC 3339 UTC time such as 2026-12-31T23:59:59Z",
            )
        })?),
    };

    Ok(Launch {
        name: rl.name,
        dark_cluster: rl.dark_cluster,
        dark_authority: rl.dark_authority,
        path,
        methods,
        headers,
        sample_percent: p,
        sticky_key,
        users,
        unsafe_methods: rl.unsafe_methods.unwrap_or(false),
        timeout_ms: timeout_ms as u32,
        max_body_bytes: max_body_bytes as usize,
        remove_headers,
        set_headers,
        limits,
        breaker,
        compare,
        noise,
        expires_ms,
    })
}

/// An RFC 3339 time in UTC (`Z`), in ms since the Unix epoch.
fn parse_utc(t: &str) -> Option<u64> {
    let at = humantime::parse_rfc3339(t).ok()?;
    let since = at.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}

type MatchParts = (PathMatch, Vec<String>, Vec<HeaderMatch>);

fn validate_match(m: RawMatch, at: &str) -> Result<MatchParts, ConfigError> {
    let given = [&m.path_prefix, &m.path_exact, &m.path_template]
        .iter()
        .filter(|p| p.is_some())
        .count();
    if given > 1 {
        return Err(err(
            at,
            "at most one of path_prefix, path_exact and path_template",
        ));
    }
    let path = if let Some(p) = m.path_prefix {
        check_path(&p, &format!("{at}.path_prefix"))?;
        PathMatch::Prefix(p)
    } else if let Some(p) = m.path_exact {
        check_path(&p, &format!("{at}.path_exact"))?;
        PathMatch::Exact(p)
    } else if let Some(t) = m.path_template {
        PathMatch::Template(parse_template(&t, &format!("{at}.path_template"))?)
    } else {
        PathMatch::Any
    };

    let mut methods = Vec::new();
    for (i, meth) in m.methods.unwrap_or_default().into_iter().enumerate() {
        if meth.is_empty()
            || !meth
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
        {
            return Err(err(
                format!("{at}.methods[{i}]"),
                "must be an upper-case method name such as GET",
            ));
        }
        methods.push(meth);
    }

    let mut headers = Vec::new();
    for (i, h) in m.headers.unwrap_or_default().into_iter().enumerate() {
        let hat = format!("{at}.headers[{i}]");
        let name = header_name(Some(&h.name), "", &format!("{hat}.name"))?;
        let rule = match (h.exact, h.present) {
            (Some(v), None) => HeaderRule::Exact(v),
            (None, Some(p)) => HeaderRule::Present(p),
            _ => return Err(err(hat, "needs exactly one of 'exact' and 'present'")),
        };
        headers.push(HeaderMatch { name, rule });
    }
    Ok((path, methods, headers))
}

fn check_path(p: &str, at: &str) -> Result<(), ConfigError> {
    if !p.starts_with('/') {
        return Err(err(at, "must start with '/'"));
    }
    if p.contains('?') || p.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(err(
            at,
            "must be a path without query string, spaces or control characters",
        ));
    }
    Ok(())
}

fn parse_template(t: &str, at: &str) -> Result<Vec<Option<String>>, ConfigError> {
    check_path(t, at)?;
    let mut seen = HashSet::new();
    let mut segs = Vec::new();
    for seg in t.split('/').skip(1) {
        if let Some(inner) = seg.strip_prefix('{') {
            let Some(var) = inner.strip_suffix('}') else {
                return Err(err(
                    at,
                    format!("segment '{seg}': a placeholder must be a whole segment like {{id}}"),
                ));
            };
            if var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(err(
                    at,
                    format!("segment '{seg}': placeholder names use letters, digits and '_'"),
                ));
            }
            if !seen.insert(var.to_string()) {
                return Err(err(at, format!("placeholder '{{{var}}}' appears twice")));
            }
            segs.push(None);
        } else if seg.contains('{') || seg.contains('}') {
            return Err(err(
                at,
                format!("segment '{seg}': a placeholder must be a whole segment like {{id}}"),
            ));
        } else {
            segs.push(Some(seg.to_string()));
        }
    }
    Ok(segs)
}

/// Names to remove and (name, value) pairs to set on the shadow request.
type HeaderEdits = (Vec<String>, Vec<(String, String)>);

fn validate_request_headers(rh: RawRequestHeaders, at: &str) -> Result<HeaderEdits, ConfigError> {
    let mut remove = Vec::new();
    for (i, n) in rh.remove.unwrap_or_default().iter().enumerate() {
        remove.push(header_name(Some(n), "", &format!("{at}.remove[{i}]"))?);
    }
    let mut set = Vec::new();
    for (k, v) in rh.set.unwrap_or_default() {
        let kat = format!("{at}.set.{k}");
        let name = header_name(Some(&k), "", &kat)?;
        let Some(value) = v.as_str() else {
            return Err(err(kat, "must be a string"));
        };
        if !is_header_value(value) {
            return Err(err(kat, "must not contain control characters"));
        }
        set.push((name, value.to_string()));
    }
    Ok((remove, set))
}

fn validate_compare(
    rc: Option<RawCompare>,
    max_body_bytes: usize,
    at: &str,
) -> Result<CompareRules, ConfigError> {
    let Some(rc) = rc else {
        return Ok(CompareRules {
            max_body_bytes,
            ..CompareRules::default()
        });
    };
    let mut headers = Vec::new();
    for (i, h) in rc.headers.unwrap_or_default().iter().enumerate() {
        headers.push(header_name(Some(h), "", &format!("{at}.headers[{i}]"))?);
    }
    let body = match rc.body.as_deref() {
        None | Some("auto") => BodyMode::Auto,
        Some("none") => BodyMode::None,
        Some("bytes") => BodyMode::Bytes,
        Some("json") => BodyMode::Json,
        Some(other) => {
            return Err(err(
                format!("{at}.body"),
                format!("'{other}' is not one of none, bytes, json, auto"),
            ))
        }
    };
    let ignore = pointers(rc.ignore, &format!("{at}.ignore"))?;
    let unordered_arrays = pointers(rc.unordered_arrays, &format!("{at}.unordered_arrays"))?;
    let numeric_tolerance = rc.numeric_tolerance.unwrap_or(0.0);
    if !(0.0..1.0).contains(&numeric_tolerance) {
        return Err(err(
            format!("{at}.numeric_tolerance"),
            "must be at least 0 and below 1",
        ));
    }
    Ok(CompareRules {
        status: rc.status.unwrap_or(true),
        headers,
        body,
        ignore,
        unordered_arrays,
        numeric_tolerance,
        max_body_bytes,
    })
}

fn pointers(list: Option<Vec<String>>, at: &str) -> Result<Vec<PointerPattern>, ConfigError> {
    let mut out = Vec::new();
    for (i, p) in list.unwrap_or_default().iter().enumerate() {
        out.push(PointerPattern::parse(p).map_err(|m| err(format!("{at}[{i}]"), m))?);
    }
    Ok(out)
}

/// `header:NAME`, `cookie:NAME` or `query:NAME`.
fn key_source(s: &str, at: &str) -> Result<KeySource, ConfigError> {
    let bad = || err(at, "must be header:NAME, cookie:NAME or query:NAME");
    let (kind, name) = s.split_once(':').ok_or_else(bad)?;
    if name.is_empty() {
        return Err(bad());
    }
    match kind {
        "header" => Ok(KeySource::Header(header_name(Some(name), "", at)?)),
        "cookie" if is_token(name) => Ok(KeySource::Cookie(name.to_string())),
        "query"
            if !name
                .bytes()
                .any(|b| b.is_ascii_control() || b == b'&' || b == b'=') =>
        {
            Ok(KeySource::Query(name.to_string()))
        }
        _ => Err(bad()),
    }
}

/// A header name as Envoy stores it: an RFC 7230 token, lower-cased.
fn header_name(v: Option<&str>, default: &str, at: &str) -> Result<String, ConfigError> {
    let v = v.unwrap_or(default);
    if !is_token(v) {
        return Err(err(at, format!("'{v}' is not a valid header name")));
    }
    Ok(v.to_ascii_lowercase())
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_header_value(s: &str) -> bool {
    !s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

fn is_launch_name(s: &str) -> bool {
    let b = s.as_bytes();
    match b.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_lowercase() || first.is_ascii_digit())
                && rest.len() <= 63
                && rest.iter().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-'
                })
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Config, ConfigError> {
        parse(s.as_bytes())
    }

    fn error_of(s: &str) -> String {
        parse_str(s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    const MINIMAL: &str =
        r#"{"launches":[{"name":"a","dark_cluster":"c","sample":{"percent":5}}]}"#;

    #[test]
    fn minimal_gets_defaults() {
        let c = parse_str(MINIMAL).unwrap();
        assert_eq!(c.flag_header, "x-dark-launch");
        assert_eq!(c.shadow_header, "x-darklaunch-shadow");
        assert_eq!(c.mismatch_log_per_minute, 60);
        let l = &c.launches[0];
        assert_eq!(l.path, PathMatch::Any);
        assert!(!l.unsafe_methods);
        assert_eq!(l.timeout_ms, 1000);
        assert_eq!(l.max_body_bytes, 65536);
        assert_eq!(l.limits.max_in_flight, 100);
        assert_eq!(l.limits.max_rps, 0.0);
        assert_eq!(l.breaker, Breaker::default());
        assert!(l.compare.status);
        assert_eq!(l.compare.body, BodyMode::Auto);
        assert_eq!(l.compare.max_body_bytes, 65536);
        assert!(l.noise.is_none());
    }

    #[test]
    fn compare_rules_carry_max_body_bytes() {
        for compare in ["", r#","compare":{"body":"json"}"#] {
            let text = format!(
                r#"{{"launches":[{{"name":"a","dark_cluster":"c","sample":{{"percent":5}},"max_body_bytes":1000{compare}}}]}}"#
            );
            let c = parse(text.as_bytes()).unwrap();
            assert_eq!(c.launches[0].compare.max_body_bytes, 1000, "{compare}");
        }
    }

    #[test]
    fn spec_example_parses() {
        let spec = r#"{
          "flag_header": "x-dark-launch",
          "shadow_header": "x-darklaunch-shadow",
          "mismatch_log_per_minute": 60,
          "launches": [
            {
              "name": "orders-v2",
              "dark_cluster": "orders_v2",
              "dark_authority": "orders-v2.internal",
              "match": {
                "path_prefix": "/api/orders",
                "methods": ["GET", "POST"],
                "headers": [{"name": "x-tenant", "exact": "acme"}, {"name": "x-beta", "present": true}]
              },
              "sample": { "percent": 5.0, "sticky_key": ["header:x-user-id", "cookie:session"] },
              "users": { "key": "header:x-user-id", "always": ["qa-1"], "never": ["vip-7"] },
              "unsafe_methods": false,
              "timeout_ms": 1000,
              "max_body_bytes": 65536,
              "request_headers": { "remove": ["authorization"], "set": { "x-env": "dark" } },
              "limits": { "max_rps": 200, "max_in_flight": 64 },
              "breaker": { "failure_ratio": 0.5, "min_calls": 20, "window_s": 10, "open_s": 30 },
              "compare": {
                "status": true,
                "headers": ["content-type"],
                "body": "auto",
                "ignore": ["/meta/generated_at", "/items/*/etag"],
                "unordered_arrays": ["/items"],
                "numeric_tolerance": 0.0
              },
              "noise": { "cluster": "orders_v1", "percent": 10.0 }
            }
          ]
        }"#;
        let c = parse_str(spec).unwrap();
        let l = &c.launches[0];
        assert_eq!(l.path, PathMatch::Prefix("/api/orders".into()));
        assert_eq!(l.methods, vec!["GET", "POST"]);
        assert_eq!(l.headers.len(), 2);
        assert_eq!(
            l.sticky_key,
            vec![
                KeySource::Header("x-user-id".into()),
                KeySource::Cookie("session".into())
            ]
        );
        let u = l.users.as_ref().unwrap();
        assert!(u.always.contains("qa-1") && u.never.contains("vip-7"));
        assert_eq!(l.remove_headers, vec!["authorization"]);
        assert_eq!(
            l.set_headers,
            vec![("x-env".to_string(), "dark".to_string())]
        );
        assert_eq!(l.limits.max_in_flight, 64);
        assert_eq!(l.compare.ignore.len(), 2);
        assert_eq!(l.noise.as_ref().unwrap().cluster, "orders_v1");
    }

    #[test]
    fn errors_name_the_json_path() {
        let two = |second: &str| {
            format!(
                r#"{{"launches":[{{"name":"a","dark_cluster":"c","sample":{{"percent":5}}}},{second}]}}"#
            )
        };
        assert_eq!(
            error_of(&two(
                r#"{"name":"b","dark_cluster":"c","sample":{"percent":101}}"#
            )),
            "launches[1].sample.percent: must be between 0 and 100"
        );
        let unknown = error_of(&two(
            r#"{"name":"b","dark_cluster":"c","sample":{"percent":5},"bogus":1}"#,
        ));
        assert!(
            unknown.starts_with("launches[1].bogus: unknown field `bogus`"),
            "{unknown}"
        );
        assert!(error_of(&two(
            r#"{"name":"b","dark_cluster":"c","sample":{"percent":"x"}}"#
        ))
        .starts_with("launches[1].sample.percent: invalid type"));
        assert!(error_of(&two(
            r#"{"name":"a","dark_cluster":"c","sample":{"percent":5}}"#
        ))
        .starts_with("launches[1].name: duplicate"));
        assert!(error_of(&two(
            r#"{"name":"B","dark_cluster":"c","sample":{"percent":5}}"#
        ))
        .starts_with("launches[1].name: must match"));
        assert!(error_of(&two(r#"{"name":"b","sample":{"percent":5}}"#))
            .contains("missing field `dark_cluster`"));
    }

    #[test]
    fn expires_is_an_rfc3339_utc_time() {
        let c = parse(
            br#"{"launches":[{"name":"a","dark_cluster":"c","sample":{"percent":5},"expires":"2026-12-31T23:59:59.5Z"}]}"#,
        )
        .unwrap();
        assert_eq!(c.launches[0].expires_ms, Some(1_798_761_599_500));
    }

    #[test]
    fn every_rule_is_checked() {
        let with = |extra: &str| {
            error_of(&format!(
                r#"{{"launches":[{{"name":"a","dark_cluster":"c","sample":{{"percent":5}},{extra}}}]}}"#
            ))
        };
        let cases = [
            (
                r#""match":{"path_prefix":"/a","path_exact":"/b"}"#,
                "launches[0].match:",
            ),
            (
                r#""match":{"path_prefix":"a"}"#,
                "launches[0].match.path_prefix:",
            ),
            (
                r#""match":{"path_template":"/u/{id"}"#,
                "launches[0].match.path_template:",
            ),
            (
                r#""match":{"path_template":"/u/x{id}"}"#,
                "launches[0].match.path_template:",
            ),
            (
                r#""match":{"path_template":"/u/{id}/{id}"}"#,
                "launches[0].match.path_template:",
            ),
            (
                r#""match":{"methods":["get"]}"#,
                "launches[0].match.methods[0]:",
            ),
            (
                r#""match":{"headers":[{"name":"x"}]}"#,
                "launches[0].match.headers[0]:",
            ),
            (
                r#""match":{"headers":[{"name":"x","exact":"1","present":true}]}"#,
                "launches[0].match.headers[0]:",
            ),
            (
                r#""match":{"headers":[{"name":"bad name","exact":"1"}]}"#,
                "launches[0].match.headers[0].name:",
            ),
            (r#""users":{"key":"body:x"}"#, "launches[0].users.key:"),
            (r#""expires":"2026-12-31""#, "launches[0].expires: must be an RFC 3339 UTC"),
            (
                r#""expires":"2026-12-31T23:59:59+01:00""#,
                "launches[0].expires: must be an RFC 3339 UTC",
            ),
            (r#""timeout_ms":0"#, "launches[0].timeout_ms:"),
            (r#""timeout_ms":60001"#, "launches[0].timeout_ms:"),
            (
                r#""max_body_bytes":16777217"#,
                "launches[0].max_body_bytes:",
            ),
            (
                r#""request_headers":{"set":{"x-a":1}}"#,
                "launches[0].request_headers.set.x-a:",
            ),
            (
                r#""request_headers":{"set":{"x-a":"a\nb"}}"#,
                "launches[0].request_headers.set.x-a:",
            ),
            (
                r#""request_headers":{"remove":[""]}"#,
                "launches[0].request_headers.remove[0]:",
            ),
            (
                r#""limits":{"max_in_flight":0}"#,
                "launches[0].limits.max_in_flight:",
            ),
            (r#""limits":{"max_rps":-1}"#, "launches[0].limits.max_rps:"),
            (
                r#""breaker":{"failure_ratio":0}"#,
                "launches[0].breaker.failure_ratio:",
            ),
            (
                r#""breaker":{"min_calls":0}"#,
                "launches[0].breaker.min_calls:",
            ),
            (
                r#""breaker":{"window_s":0}"#,
                "launches[0].breaker.window_s:",
            ),
            (r#""breaker":{"open_s":0}"#, "launches[0].breaker.open_s:"),
            (r#""compare":{"body":"xml"}"#, "launches[0].compare.body:"),
            (
                r#""compare":{"ignore":["a/b"]}"#,
                "launches[0].compare.ignore[0]:",
            ),
            (
                r#""compare":{"unordered_arrays":["x"]}"#,
                "launches[0].compare.unordered_arrays[0]:",
            ),
            (
                r#""compare":{"numeric_tolerance":-0.1}"#,
                "launches[0].compare.numeric_tolerance:",
            ),
            (
                r#""compare":{"headers":["a b"]}"#,
                "launches[0].compare.headers[0]:",
            ),
            (
                r#""noise":{"cluster":"","percent":5}"#,
                "launches[0].noise.cluster:",
            ),
            (
                r#""noise":{"cluster":"x","percent":500}"#,
                "launches[0].noise.percent:",
            ),
            (r#""dark_authority":"""#, "launches[0].dark_authority:"),
        ];
        for (extra, want) in cases {
            let got = with(extra);
            assert!(
                got.starts_with(want),
                "{extra}: got '{got}', want prefix '{want}'"
            );
        }
        assert!(error_of(r#"{"launches":[]}"#).starts_with("launches: must hold"));
        assert!(error_of(r#"{"launches":[],"x":1}"#).contains("unknown field `x`"));
        assert!(error_of("not json").contains("not a JSON object"));
        assert!(error_of("{not json").contains("at line 1 column 2"));
        assert!(error_of(
            &MINIMAL.replace("{\"launches\"", "{\"flag_header\":\"x y\",\"launches\"")
        )
        .starts_with("flag_header:"));
    }

    #[test]
    fn too_many_launches() {
        let one = r#"{"name":"aNN","dark_cluster":"c","sample":{"percent":5}}"#;
        let list: Vec<String> = (0..33).map(|i| one.replace("NN", &i.to_string())).collect();
        let cfg = format!(r#"{{"launches":[{}]}}"#, list.join(","));
        assert!(error_of(&cfg).starts_with("launches: must hold 1 to 32"));
    }

    #[test]
    fn template_compiles() {
        let cfg = MINIMAL.replace(
            "\"sample\"",
            "\"match\":{\"path_template\":\"/users/{id}/orders\"},\"sample\"",
        );
        let c = parse_str(&cfg).unwrap();
        assert_eq!(
            c.launches[0].path,
            PathMatch::Template(vec![Some("users".into()), None, Some("orders".into())])
        );
    }

    #[test]
    fn launch_names() {
        assert!(is_launch_name("orders-v2"));
        assert!(is_launch_name("0_a"));
        assert!(!is_launch_name("-a"));
        assert!(!is_launch_name("A"));
        assert!(!is_launch_name(""));
        assert!(is_launch_name(&"a".repeat(64)));
        assert!(!is_launch_name(&"a".repeat(65)));
    }
}
