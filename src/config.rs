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
/// `capture.per_minute` at most: ten samples a second.
pub const MAX_SAMPLES_PER_MINUTE: u32 = 600;
/// `capture.max_bytes` bounds: room for a sample's fixed fields, and an
/// Envoy log line of reasonable length.
pub const MIN_SAMPLE_BYTES: u64 = 512;
pub const MAX_SAMPLE_BYTES: u64 = 65_536;

// ---------------------------------------------------------------------------
// Raw shape, exactly as users write it.
//
// With the `schema` feature (darklaunch-report only, never the module) these
// types also derive the JSON Schema of schema/darklaunch.schema.json: the doc
// comments become its descriptions, `deny_unknown_fields` its
// `additionalProperties: false`, and the `schemars(...)` attributes the
// bounds and patterns of the rules in `validate` below that JSON Schema can
// state. The patterns live in `schema` at the end of this file, next to the
// checks they mirror.

/// A darklaunch plugin configuration: the JSON the filter receives as its
/// plugin `configuration` (a google.protobuf.StringValue in Envoy, the
/// `pluginConfig` of an Istio WasmPlugin).
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(title = "darklaunch plugin configuration")
)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// One entry per dark launch, 1 to 32, with unique names. A request can
    /// match several launches; each gets its own shadow call.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = MAX_LAUNCHES)))]
    launches: Vec<RawLaunch>,
    /// Client header (default `x-dark-launch`): `off` suppresses every
    /// launch, `on` forces every matching launch, a launch name forces that
    /// launch (case-insensitive). Must differ from `shadow_header`.
    #[cfg_attr(feature = "schema", schemars(regex(pattern = schema::TOKEN)))]
    flag_header: Option<String>,
    /// Header set on every shadow request, valued with the launch name
    /// (default `x-darklaunch-shadow`); a request carrying it is never
    /// shadowed (loop prevention).
    #[cfg_attr(feature = "schema", schemars(regex(pattern = schema::TOKEN)))]
    shadow_header: Option<String>,
    /// Mismatch log lines per minute per worker (default 60); 0 disables them.
    mismatch_log_per_minute: Option<u32>,
}

/// One dark launch: which requests are copied to which cluster, and how the
/// answers are compared.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Launch"))]
#[serde(deny_unknown_fields)]
struct RawLaunch {
    /// Unique name of the launch, `^[a-z0-9][a-z0-9_-]{0,63}$`; appears in
    /// stats and logs.
    #[cfg_attr(feature = "schema", schemars(regex(pattern = schema::LAUNCH_NAME)))]
    name: String,
    /// Envoy cluster receiving the shadow calls (not blank).
    #[cfg_attr(feature = "schema", schemars(regex(pattern = schema::NOT_BLANK)))]
    dark_cluster: String,
    /// `:authority` of the shadow request. Default: the primary's host with
    /// `-shadow` appended (`api:8080` becomes `api-shadow:8080`).
    #[cfg_attr(feature = "schema", schemars(regex(pattern = schema::AUTHORITY)))]
    dark_authority: Option<String>,
    /// Which requests the launch applies to; absent, every request.
    #[serde(rename = "match")]
    matcher: Option<RawMatch>,
    /// Which share of the matching requests is shadowed.
    sample: RawSample,
    /// Users always or never shadowed, identified by a key source.
    users: Option<RawUsers>,
    /// When false (the default) only GET, HEAD, OPTIONS and TRACE are
    /// shadowed. Set true only when the dark side has dark dependencies or
    /// treats shadow requests (they carry `shadow_header`) as rehearsals.
    unsafe_methods: Option<bool>,
    /// Shadow call timeout in milliseconds, 1 to 60000 (default 1000).
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 60_000)))]
    timeout_ms: Option<u64>,
    /// At most 16 MiB (default 65536): a larger request body is not
    /// shadowed, a larger response body is not compared.
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = MAX_BODY_LIMIT)))]
    max_body_bytes: Option<u64>,
    /// Header edits applied to the shadow copy (hop-by-hop headers are always
    /// dropped).
    request_headers: Option<RawRequestHeaders>,
    /// Bounds on the shadow calls of the launch.
    limits: Option<RawLimits>,
    /// Circuit breaker on dark failures (timeouts, resets, 5xx), one per
    /// launch for the whole Envoy process.
    breaker: Option<RawBreaker>,
    /// What is compared between the primary and the dark answers.
    compare: Option<RawCompare>,
    /// A/A noise cancellation: a share of the shadowed requests also goes to
    /// a second instance of the primary version, to learn which fields
    /// differ between any two answers.
    noise: Option<RawNoise>,
    /// When the launch stops shadowing: an RFC 3339 UTC time such as
    /// `2026-12-31T23:59:59Z`.
    #[cfg_attr(feature = "schema", schemars(regex(pattern = schema::UTC_TIME)))]
    expires: Option<String>,
    /// Samples of mismatching pairs: what differs, value by value, redacted
    /// and bounded, written to the Envoy log (and to an OpenTelemetry
    /// collector with `cluster`). Off unless `per_minute` is above 0.
    capture: Option<RawCapture>,
}

/// Samples of mismatching pairs.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Capture"))]
#[serde(deny_unknown_fields)]
struct RawCapture {
    /// At most this many samples per minute for the launch across the Envoy
    /// process, 0 to 600 (default 0: off). Half of a minute's samples are
    /// kept for differences of a shape not yet sampled that minute.
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = MAX_SAMPLES_PER_MINUTE)))]
    per_minute: Option<u32>,
    /// Size bound of one sample in bytes, 512 to 65536 (default 8192): long
    /// values are cut with a `…[truncated N bytes]` marker.
    #[cfg_attr(
        feature = "schema",
        schemars(range(min = MIN_SAMPLE_BYTES, max = MAX_SAMPLE_BYTES))
    )]
    max_bytes: Option<u64>,
    /// Include both decoded response bodies (and the request body), redacted,
    /// not only the differing values (default false).
    bodies: Option<bool>,
    /// JSON pointers (`*` matches any key or index) whose values never leave
    /// the proxy: a difference there keeps its pointer and kind, never a
    /// value, and values and bodies containing them show `[redacted]`.
    #[cfg_attr(feature = "schema", schemars(inner(regex(pattern = schema::POINTER))))]
    redact: Option<Vec<String>>,
    /// Request headers a sample may include (default none). `authorization`,
    /// `cookie`, `proxy-authorization` and `set-cookie` are never included
    /// (naming them is an error).
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<Vec<schema::CapturedHeader>>")
    )]
    request_headers: Option<Vec<String>>,
    /// Include query parameter values (default false: each value reads
    /// `REDACTED`).
    query: Option<bool>,
    /// Envoy cluster of an OpenTelemetry collector: each sample is also
    /// posted there as an OTLP/HTTP JSON log record (`POST /v1/logs`).
    #[cfg_attr(feature = "schema", schemars(regex(pattern = schema::NOT_BLANK)))]
    cluster: Option<String>,
}

/// Request matching; every given rule must hold. At most one of
/// `path_prefix`, `path_exact` and `path_template`.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(rename = "Match", transform = schema::at_most_one_path)
)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    /// Path prefix, starting with `/`; the query string is ignored.
    #[cfg_attr(feature = "schema", schemars(regex(pattern = schema::PATH)))]
    path_prefix: Option<String>,
    /// Exact path, starting with `/`; the query string is ignored.
    #[cfg_attr(feature = "schema", schemars(regex(pattern = schema::PATH)))]
    path_exact: Option<String>,
    /// Path template such as `/users/{id}/orders`: each `{name}` (letters,
    /// digits, `_`; each name once) is one whole segment.
    #[cfg_attr(feature = "schema", schemars(regex(pattern = schema::PATH_TEMPLATE)))]
    path_template: Option<String>,
    /// Upper-case method names such as `GET`; absent, any method.
    #[cfg_attr(feature = "schema", schemars(inner(regex(pattern = schema::METHOD))))]
    methods: Option<Vec<String>>,
    /// Request headers that must all match.
    headers: Option<Vec<RawHeaderMatch>>,
    /// gRPC methods, `package.Service/Method` or `package.Service/*`. Naming
    /// one is the opt-in to shadowing those calls (POSTs); a launch without
    /// it never shadows a gRPC call. Not with a path matcher or `methods`.
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1), inner(regex(pattern = schema::GRPC_METHOD)))
    )]
    grpc_methods: Option<Vec<String>>,
}

/// A request header rule: exactly one of `exact` and `present`.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(rename = "HeaderMatch", transform = schema::exact_or_present)
)]
#[serde(deny_unknown_fields)]
struct RawHeaderMatch {
    /// Header name (case-insensitive).
    #[cfg_attr(feature = "schema", schemars(regex(pattern = schema::TOKEN)))]
    name: String,
    /// The header's value must be exactly this.
    exact: Option<String>,
    /// true: the header must be present; false: it must be absent.
    present: Option<bool>,
}

/// Sampling of the matching requests.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Sample"))]
#[serde(deny_unknown_fields)]
struct RawSample {
    /// Share of the matching requests shadowed, 0 to 100 (fractions allowed).
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 100)))]
    percent: f64,
    /// Key sources (`header:NAME`, `cookie:NAME`, `query:NAME`); the first
    /// present decides, so that the same user always gets the same decision
    /// (murmur3, as flagd's `fractional`). None present: random.
    #[cfg_attr(feature = "schema", schemars(inner(regex(pattern = schema::KEY_SOURCE))))]
    sticky_key: Option<Vec<String>>,
}

/// Users always or never shadowed.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Users"))]
#[serde(deny_unknown_fields)]
struct RawUsers {
    /// Where the user id is read: `header:NAME`, `cookie:NAME` or `query:NAME`.
    #[cfg_attr(feature = "schema", schemars(regex(pattern = schema::KEY_SOURCE)))]
    key: String,
    /// User ids shadowed whenever the request matches (still subject to
    /// method safety, body size and limits).
    always: Option<Vec<String>>,
    /// User ids never shadowed.
    never: Option<Vec<String>>,
}

/// Header edits on the shadow request.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "RequestHeaders"))]
#[serde(deny_unknown_fields)]
struct RawRequestHeaders {
    /// Header names removed from the shadow request (e.g. credentials).
    #[cfg_attr(feature = "schema", schemars(inner(regex(pattern = schema::TOKEN))))]
    remove: Option<Vec<String>>,
    /// Headers set on the shadow request: name to value (a string without
    /// control characters), e.g. `{"x-env": "dark"}`.
    #[cfg_attr(feature = "schema", schemars(with = "Option<schema::SetHeaders>"))]
    set: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Bounds on the shadow calls of a launch.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Limits"))]
#[serde(deny_unknown_fields)]
struct RawLimits {
    /// Shadow calls per second for the launch across the whole Envoy
    /// process (burst: one second's worth); 0, the default, is no limit.
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    max_rps: Option<f64>,
    /// Shadowed pairs of the launch pending at once, per worker (default 100).
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    max_in_flight: Option<u32>,
}

/// The launch's circuit breaker: when within `window_s` at least
/// `min_calls` dark calls finished and the failure ratio reached
/// `failure_ratio`, the launch stops shadowing for `open_s`, then one trial
/// call decides.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Breaker"))]
#[serde(deny_unknown_fields)]
struct RawBreaker {
    /// Greater than 0 and at most 1 (default 0.5).
    #[cfg_attr(
        feature = "schema",
        schemars(range(max = 1), extend("exclusiveMinimum" = 0))
    )]
    failure_ratio: Option<f64>,
    /// At least 1 (default 20).
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    min_calls: Option<u32>,
    /// Seconds, 1 to 3600 (default 10).
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 3600)))]
    window_s: Option<u32>,
    /// Seconds, 1 to 86400 (default 30).
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 86_400)))]
    open_s: Option<u32>,
}

/// What is compared between the primary and the dark answers.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Compare"))]
#[serde(deny_unknown_fields)]
struct RawCompare {
    /// Compare status codes (default true).
    status: Option<bool>,
    /// Response headers compared (case-insensitive names).
    #[cfg_attr(feature = "schema", schemars(inner(regex(pattern = schema::TOKEN))))]
    headers: Option<Vec<String>>,
    /// `none`, `bytes`, `json`, `protobuf`, or `auto` (the default: json
    /// when both sides are `application/json` or `*+json`, protobuf when
    /// both are `application/grpc`, else bytes).
    #[cfg_attr(
        feature = "schema",
        schemars(extend("enum" = ["none", "bytes", "json", "protobuf", "auto", null]))
    )]
    body: Option<String>,
    /// gRPC: compare the `grpc-status` codes (default true).
    grpc_status: Option<bool>,
    /// gRPC: compare the `grpc-message` texts, absent equal to empty
    /// (default false).
    grpc_message: Option<bool>,
    /// gRPC: a base64 `FileDescriptorSet` (`protoc --include_imports
    /// --descriptor_set_out`) naming the fields of the answers, so that
    /// pointers read `/items/*/price` instead of `/4/*/3`.
    proto_descriptor: Option<String>,
    /// RFC 6901 JSON pointers (`*` matches any key or index); differences at
    /// or below them do not count.
    #[cfg_attr(feature = "schema", schemars(inner(regex(pattern = schema::POINTER))))]
    ignore: Option<Vec<String>>,
    /// Pointers (with `*`) of arrays compared as multisets.
    #[cfg_attr(feature = "schema", schemars(inner(regex(pattern = schema::POINTER))))]
    unordered_arrays: Option<Vec<String>>,
    /// Relative tolerance for numbers, at least 0 and below 1 (default 0).
    #[cfg_attr(
        feature = "schema",
        schemars(range(min = 0), extend("exclusiveMaximum" = 1))
    )]
    numeric_tolerance: Option<f64>,
}

/// A/A noise cancellation.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Noise"))]
#[serde(deny_unknown_fields)]
struct RawNoise {
    /// Envoy cluster of a second instance of the primary version (not blank).
    #[cfg_attr(feature = "schema", schemars(regex(pattern = schema::NOT_BLANK)))]
    cluster: String,
    /// Share of the shadowed requests also sent there, 0 to 100.
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 100)))]
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
    /// `match.grpc_methods`; empty for a launch that never shadows gRPC.
    pub grpc_methods: Vec<GrpcMethod>,
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
    /// Samples of mismatches; `None` when off (`per_minute` 0).
    pub capture: Option<Capture>,
}

/// Samples of mismatching pairs, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    /// At least 1.
    pub per_minute: u32,
    pub max_bytes: usize,
    pub bodies: bool,
    pub redact: Vec<PointerPattern>,
    /// Lower-case names, none of [`NEVER_CAPTURED`].
    pub request_headers: Vec<String>,
    pub query: bool,
    pub cluster: Option<String>,
}

/// Headers no sample ever shows: credentials and sessions.
pub const NEVER_CAPTURED: [&str; 4] = [
    "authorization",
    "cookie",
    "proxy-authorization",
    "set-cookie",
];

#[derive(Debug, Clone, PartialEq)]
pub enum PathMatch {
    Any,
    Prefix(String),
    Exact(String),
    /// One entry per segment after the leading `/`; `None` is a `{name}` placeholder.
    Template(Vec<Option<String>>),
}

/// A `match.grpc_methods` entry: `service` is `package.Service`; `method`
/// `None` stands for `*`.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpcMethod {
    pub service: String,
    pub method: Option<String>,
}

impl GrpcMethod {
    /// Does a gRPC call's `:path` (`/package.Service/Method`) name it?
    pub fn matches(&self, path: &str) -> bool {
        let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
            return false;
        };
        service == self.service
            && self.method.as_deref().is_none_or(|m| m == method)
            && !method.is_empty()
    }
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
        let head: String = String::from_utf8_lossy(rest).chars().take(16).collect();
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

    let (path, methods, headers, grpc_methods) = match rl.matcher {
        None => (PathMatch::Any, Vec::new(), Vec::new(), Vec::new()),
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

    let capture = match rl.capture {
        None => None,
        Some(c) => validate_capture(c, &format!("{at}.capture"))?,
    };

    Ok(Launch {
        name: rl.name,
        dark_cluster: rl.dark_cluster,
        dark_authority: rl.dark_authority,
        path,
        methods,
        grpc_methods,
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
        capture,
    })
}

/// `None` when `per_minute` is 0: capture is off.
fn validate_capture(c: RawCapture, at: &str) -> Result<Option<Capture>, ConfigError> {
    let per_minute = c.per_minute.unwrap_or(0);
    if per_minute > MAX_SAMPLES_PER_MINUTE {
        return Err(err(
            format!("{at}.per_minute"),
            format!("must be between 0 and {MAX_SAMPLES_PER_MINUTE}"),
        ));
    }
    let max_bytes = c.max_bytes.unwrap_or(8192);
    if !(MIN_SAMPLE_BYTES..=MAX_SAMPLE_BYTES).contains(&max_bytes) {
        return Err(err(
            format!("{at}.max_bytes"),
            format!("must be between {MIN_SAMPLE_BYTES} and {MAX_SAMPLE_BYTES}"),
        ));
    }
    let redact = pointers(c.redact, &format!("{at}.redact"))?;
    let mut request_headers = Vec::new();
    for (i, h) in c.request_headers.unwrap_or_default().iter().enumerate() {
        let hat = format!("{at}.request_headers[{i}]");
        let name = header_name(Some(h), "", &hat)?;
        if NEVER_CAPTURED.contains(&name.as_str()) {
            return Err(err(
                hat,
                format!("'{name}' is never captured (credentials and sessions stay in the proxy)"),
            ));
        }
        request_headers.push(name);
    }
    if let Some(cluster) = &c.cluster {
        if cluster.trim().is_empty() {
            return Err(err(format!("{at}.cluster"), "must not be empty"));
        }
    }
    if per_minute == 0 {
        return Ok(None);
    }
    Ok(Some(Capture {
        per_minute,
        max_bytes: max_bytes as usize,
        bodies: c.bodies.unwrap_or(false),
        redact,
        request_headers,
        query: c.query.unwrap_or(false),
        cluster: c.cluster,
    }))
}

/// An RFC 3339 time in UTC (`Z`), in ms since the Unix epoch.
fn parse_utc(t: &str) -> Option<u64> {
    crate::utc::parse(t)
}

type MatchParts = (PathMatch, Vec<String>, Vec<HeaderMatch>, Vec<GrpcMethod>);

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

    let mut grpc = Vec::new();
    if let Some(list) = m.grpc_methods {
        let gat = format!("{at}.grpc_methods");
        if path != PathMatch::Any {
            return Err(err(
                gat,
                "cannot be combined with path_prefix, path_exact or path_template: a gRPC \
                 method is its path",
            ));
        }
        if !methods.is_empty() {
            return Err(err(
                gat,
                "cannot be combined with methods: gRPC calls are POSTs",
            ));
        }
        if list.is_empty() {
            return Err(err(gat, "must name at least one method"));
        }
        for (i, entry) in list.iter().enumerate() {
            grpc.push(grpc_method(entry).ok_or_else(|| {
                err(
                    format!("{gat}[{i}]"),
                    "must be package.Service/Method or package.Service/*",
                )
            })?);
        }
    }
    Ok((path, methods, headers, grpc))
}

/// `package.Service/Method` or `package.Service/*`: protobuf identifiers
/// (letters, digits, `_`, not starting with a digit), dot-separated.
fn grpc_method(entry: &str) -> Option<GrpcMethod> {
    fn ident(s: &str) -> bool {
        s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }
    let (service, method) = entry.split_once('/')?;
    if !service.split('.').all(ident) {
        return None;
    }
    let method = match method {
        "*" => None,
        m if ident(m) => Some(m.to_string()),
        _ => return None,
    };
    Some(GrpcMethod {
        service: service.to_string(),
        method,
    })
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
        Some("protobuf") => BodyMode::Protobuf,
        Some(other) => {
            return Err(err(
                format!("{at}.body"),
                format!("'{other}' is not one of none, bytes, json, protobuf, auto"),
            ))
        }
    };
    let schema = match &rc.proto_descriptor {
        None => None,
        Some(text) => Some(std::sync::Arc::new(
            crate::protobuf::Schema::from_base64(text)
                .map_err(|m| err(format!("{at}.proto_descriptor"), m))?,
        )),
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
        grpc_status: rc.grpc_status.unwrap_or(true),
        grpc_message: rc.grpc_message.unwrap_or(false),
        schema,
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

/// The JSON Schema of a plugin configuration, derived from the raw types:
/// what `darklaunch-report schema` prints and schema/darklaunch.schema.json
/// holds. Object keys are sorted, so the text does not depend on serde_json's
/// `preserve_order` feature.
#[cfg(feature = "schema")]
pub fn json_schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let mut root = generator.into_root_schema_for::<RawConfig>();
    root.insert(
        "$comment".into(),
        "Generated from the darklaunch configuration types (src/config.rs) by \
         `darklaunch-report schema`; do not edit."
            .into(),
    );
    schema::finish(root.to_value())
}

/// The JSON Schema side of the rules in `validate`: patterns written from
/// the checks above (`is_token`, `is_launch_name`, `check_path`,
/// `parse_template`, `key_source`, `is_header_value`, `PointerPattern::parse`,
/// `parse_utc`) and the combinations of fields the derive cannot state.
/// tests/e2e/test_schema.py holds them against the module on a corpus.
#[cfg(feature = "schema")]
mod schema {
    use schemars::{json_schema, Schema, SchemaGenerator};
    use serde_json::{json, Value};

    macro_rules! token_char {
        () => {
            "[!#$%&'*+.^_`|~0-9A-Za-z-]"
        };
    }

    /// `is_token`: an RFC 7230 token (header and cookie names).
    pub const TOKEN: &str = concat!("^", token_char!(), "+$");
    /// `is_launch_name`.
    pub const LAUNCH_NAME: &str = "^[a-z0-9][a-z0-9_-]{0,63}$";
    /// Not empty once trimmed (`dark_cluster`, `noise.cluster`).
    pub const NOT_BLANK: &str = r"\S";
    /// `is_header_value` and not empty: no control character but tab.
    pub const AUTHORITY: &str = r"^[^\u0000-\u0008\u000A-\u001F\u007F]+$";
    /// `is_header_value`.
    pub const HEADER_VALUE: &str = r"^[^\u0000-\u0008\u000A-\u001F\u007F]*$";
    /// `check_path`: starts with `/`; no `?`, space or control character.
    pub const PATH: &str = r"^/[^?\u0000-\u0020\u007F]*$";
    /// `check_path`, then `parse_template`'s segments: a whole-segment
    /// `{name}` or no brace at all. (Each name once: not expressed.)
    pub const PATH_TEMPLATE: &str = r"^(/(\{[A-Za-z0-9_]+\}|[^/{}?\u0000-\u0020\u007F]*))+$";
    /// `validate_match`'s methods.
    pub const METHOD: &str = "^[A-Z_-]+$";
    /// `grpc_method`.
    pub const GRPC_METHOD: &str =
        r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/([A-Za-z_][A-Za-z0-9_]*|\*)$";
    /// `key_source`.
    pub const KEY_SOURCE: &str = concat!(
        "^(header:",
        token_char!(),
        "+|cookie:",
        token_char!(),
        r"+|query:[^\u0000-\u001F\u007F&=]+)$"
    );
    /// `PointerPattern::parse`: empty, or `/`-separated tokens whose `~` is
    /// followed by `0` or `1`.
    pub const POINTER: &str = "^(/([^~]|~[01])*)?$";
    /// `parse_utc` (RFC 3339, UTC only). Days past the end of
    /// the month (`2026-02-30`): not expressed.
    pub const UTC_TIME: &str = concat!(
        r"^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])",
        r"T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]*)?(Z|\+00:00)$"
    );

    /// Both given (`null` is absent to serde) and strings.
    fn both(a: &str, b: &str) -> Value {
        json!({
            "required": [a, b],
            "properties": { a: { "type": "string" }, b: { "type": "string" } }
        })
    }

    /// `grpc_methods` (a list) and `other` both given.
    fn grpc_and(other: &str, ty: &str) -> Value {
        json!({
            "required": ["grpc_methods", other],
            "properties": { "grpc_methods": { "type": "array" }, other: { "type": ty } }
        })
    }

    /// `validate_match`: at most one of the three path matchers, and none
    /// of them nor `methods` with `grpc_methods`.
    pub fn at_most_one_path(schema: &mut Schema) {
        schema.insert(
            "not".into(),
            json!({ "anyOf": [
                both("path_prefix", "path_exact"),
                both("path_prefix", "path_template"),
                both("path_exact", "path_template"),
                grpc_and("path_prefix", "string"),
                grpc_and("path_exact", "string"),
                grpc_and("path_template", "string"),
                grpc_and("methods", "array"),
            ]}),
        );
    }

    /// `validate_match`'s headers: exactly one of `exact` and `present`.
    pub fn exact_or_present(schema: &mut Schema) {
        schema.insert(
            "oneOf".into(),
            json!([
                { "required": ["exact"], "properties": { "exact": { "type": "string" } } },
                { "required": ["present"], "properties": { "present": { "type": "boolean" } } },
            ]),
        );
    }

    /// `validate_request_headers`'s `set`: token names, string values
    /// without control characters.
    pub struct SetHeaders;

    impl schemars::JsonSchema for SetHeaders {
        fn inline_schema() -> bool {
            true
        }

        fn schema_name() -> std::borrow::Cow<'static, str> {
            "SetHeaders".into()
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "type": "object",
                "propertyNames": { "pattern": TOKEN },
                "additionalProperties": { "type": "string", "pattern": HEADER_VALUE },
            })
        }
    }

    /// A `capture.request_headers` name: a token, none of `NEVER_CAPTURED`
    /// in any case.
    pub struct CapturedHeader;

    impl schemars::JsonSchema for CapturedHeader {
        fn inline_schema() -> bool {
            true
        }

        fn schema_name() -> std::borrow::Cow<'static, str> {
            "CapturedHeader".into()
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            let any_case = |name: &str| -> String {
                name.chars()
                    .map(|c| {
                        if c.is_ascii_alphabetic() {
                            format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                        } else {
                            c.to_string()
                        }
                    })
                    .collect()
            };
            let never: Vec<String> = super::NEVER_CAPTURED.iter().map(|n| any_case(n)).collect();
            json_schema!({
                "type": "string",
                "pattern": TOKEN,
                "not": { "pattern": format!("^({})$", never.join("|")) },
            })
        }
    }

    /// The generated schema made stable and readable: every object's keys
    /// sorted, doc-comment line breaks joined (paragraphs kept), and the
    /// upper bound of the unsigned integers serde enforces.
    pub fn finish(value: Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(String, Value)> = map.into_iter().collect();
                let max = match entries.iter().find(|(k, _)| k == "format").map(|(_, v)| v) {
                    Some(Value::String(f)) if f == "uint32" => Some(json!(u32::MAX)),
                    Some(Value::String(f)) if f == "uint64" => Some(json!(u64::MAX)),
                    _ => None,
                };
                if let Some(max) = max {
                    if !entries.iter().any(|(k, _)| k == "maximum") {
                        entries.push(("maximum".into(), max));
                    }
                }
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| {
                            let v = match v {
                                Value::String(text) if k == "description" => {
                                    Value::String(unwrap_lines(&text))
                                }
                                other => finish(other),
                            };
                            (k, v)
                        })
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.into_iter().map(finish).collect()),
            other => other,
        }
    }

    /// Doc-comment text as one line per paragraph.
    fn unwrap_lines(text: &str) -> String {
        text.split("\n\n")
            .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n\n")
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
        assert!(l.capture.is_none());
    }

    #[test]
    fn capture_compiles() {
        let with = |capture: &str| {
            let cfg = MINIMAL.replace("\"sample\"", &format!("\"capture\":{capture},\"sample\""));
            parse_str(&cfg).unwrap().launches[0].capture.clone()
        };
        // Off unless per_minute is above 0.
        assert_eq!(with(r#"{"per_minute":0,"bodies":true}"#), None);
        let c = with(r#"{"per_minute":60}"#).unwrap();
        assert_eq!(
            (c.per_minute, c.max_bytes, c.bodies, c.query),
            (60, 8192, false, false)
        );
        assert!(c.redact.is_empty() && c.request_headers.is_empty() && c.cluster.is_none());
        let c = with(
            r#"{"per_minute":1,"max_bytes":512,"bodies":true,"redact":["/user/*/ssn"],
                "request_headers":["X-Tenant"],"query":true,"cluster":"otel"}"#,
        )
        .unwrap();
        assert_eq!(c.request_headers, ["x-tenant"]);
        assert_eq!(c.redact, [PointerPattern::parse("/user/*/ssn").unwrap()]);
        assert_eq!(c.cluster.as_deref(), Some("otel"));
        assert!(c.bodies && c.query && c.max_bytes == 512);
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
                r#""match":{"path_prefix":"/a","grpc_methods":["p.S/M"]}"#,
                "launches[0].match.grpc_methods: cannot be combined with path_prefix",
            ),
            (
                r#""match":{"methods":["POST"],"grpc_methods":["p.S/M"]}"#,
                "launches[0].match.grpc_methods: cannot be combined with methods",
            ),
            (
                r#""match":{"grpc_methods":[]}"#,
                "launches[0].match.grpc_methods: must name",
            ),
            (
                r#""match":{"grpc_methods":["p.S/M","/p.S/M"]}"#,
                "launches[0].match.grpc_methods[1]:",
            ),
            (
                r#""match":{"grpc_methods":["p.S"]}"#,
                "launches[0].match.grpc_methods[0]:",
            ),
            (
                r#""match":{"grpc_methods":["p..S/M"]}"#,
                "launches[0].match.grpc_methods[0]:",
            ),
            (
                r#""compare":{"body":"proto"}"#,
                "launches[0].compare.body: 'proto' is not one of none, bytes, json, protobuf, auto",
            ),
            (
                r#""compare":{"proto_descriptor":"%%%"}"#,
                "launches[0].compare.proto_descriptor:",
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
            (
                r#""expires":"2026-12-31""#,
                "launches[0].expires: must be an RFC 3339 UTC",
            ),
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
            (
                r#""capture":{"per_minute":601}"#,
                "launches[0].capture.per_minute:",
            ),
            (
                r#""capture":{"per_minute":1,"max_bytes":100}"#,
                "launches[0].capture.max_bytes:",
            ),
            (
                r#""capture":{"per_minute":1,"redact":["x"]}"#,
                "launches[0].capture.redact[0]:",
            ),
            (
                r#""capture":{"request_headers":["x-a","Authorization"]}"#,
                "launches[0].capture.request_headers[1]: 'authorization' is never captured",
            ),
            (
                r#""capture":{"request_headers":["a b"]}"#,
                "launches[0].capture.request_headers[0]:",
            ),
            (
                r#""capture":{"per_minute":1,"cluster":" "}"#,
                "launches[0].capture.cluster:",
            ),
            (
                r#""capture":{"per_minute":1,"bodie":true}"#,
                "launches[0].capture.bodie: unknown field",
            ),
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
    fn grpc_launch_compiles() {
        let c = parse(
            br#"{"launches":[{"name":"g","dark_cluster":"c","sample":{"percent":5},
                "match":{"grpc_methods":["pkg.v1.Svc/Get","Svc/*"]},
                "compare":{"body":"protobuf","grpc_message":true}}]}"#,
        )
        .unwrap();
        let l = &c.launches[0];
        assert_eq!(
            l.grpc_methods,
            vec![
                GrpcMethod {
                    service: "pkg.v1.Svc".into(),
                    method: Some("Get".into())
                },
                GrpcMethod {
                    service: "Svc".into(),
                    method: None
                },
            ]
        );
        assert!(l.grpc_methods[0].matches("/pkg.v1.Svc/Get"));
        assert!(!l.grpc_methods[0].matches("/pkg.v1.Svc/Got"));
        assert!(l.grpc_methods[1].matches("/Svc/X"));
        assert!(!l.grpc_methods[1].matches("/Svc/"));
        assert!(!l.grpc_methods[1].matches("/pkg.Svc/X"));
        assert_eq!(l.compare.body, BodyMode::Protobuf);
        assert!(l.compare.grpc_status && l.compare.grpc_message);
        let d = parse(MINIMAL.as_bytes()).unwrap();
        assert!(d.launches[0].compare.grpc_status && !d.launches[0].compare.grpc_message);
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
