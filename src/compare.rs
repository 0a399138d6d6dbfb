//! Comparing the primary and the dark answer: status, selected headers, body.
//!
//! Bodies are first decoded per their `content-encoding` ([`crate::decode`]).
//! When either side cannot be decoded (unknown coding, invalid data), the
//! two bodies are compared byte for byte as they arrived, in every mode: an
//! undecodable body has no meaning to compare, two identical ones still
//! match, and one never equals a decodable one. JSON bodies are then compared
//! semantically (key order, `1` vs `1.0`, numeric tolerance, ignored and
//! unordered locations) and every difference is reported as a typed
//! [`Difference`] at a pointer with array indices folded to `*`; everything
//! else is compared byte for byte.
//!
//! # Differences
//!
//! The walk is depth first, object keys in sorted order, array elements by
//! index. At each location:
//!
//! - present in primary, absent in dark: [`DiffKind::Missing`]; absent in
//!   primary, present in dark: [`DiffKind::Extra`] (`null` counts as present);
//! - both present, different JSON types (null, boolean, number, string, array,
//!   object): [`DiffKind::Type`], and nothing below it is reported;
//! - same scalar type, different values: [`DiffKind::Value`];
//! - both arrays of different lengths: [`DiffKind::ArrayLength`] at the array,
//!   then the elements both have are compared pairwise. Elements past the
//!   shorter length are *not* reported one by one as missing or extra: the
//!   length difference says it once, where a folded `/items/*` would add
//!   nothing. If every such surplus index is ignored (`compare.ignore`), the
//!   length difference is ignored too.
//! - an unordered array (`compare.unordered_arrays`) whose elements cannot be
//!   paired one to one: [`DiffKind::Value`] at the array itself, or
//!   [`DiffKind::ArrayLength`] when the lengths differ.
//!
//! Differences are deduplicated on (folded pointer, kind), kept in the order
//! first met, and at most [`MAX_DIFFS`] are kept; the walk stops there.
//!
//! # Numbers
//!
//! Numbers compare as numbers, never as text:
//!
//! - two numbers written as integers (no fraction, no exponent) compare
//!   exactly, whatever their size: `123456789012345678901234567890` differs
//!   from `...891`, `-0` equals `0`. With a positive `numeric_tolerance` two
//!   different ones are equal when |a−b| ≤ tolerance × max(|a|,|b|): computed
//!   exactly up to 128 bits, as f64 beyond;
//! - otherwise (a fraction or an exponent on either side) both are 64-bit
//!   floats, as serde_json reads them, so `1` equals `1.0` and `1e2`, and
//!   with a tolerance the same relative rule applies.
//!
//! In an unordered array without tolerance, elements pair by a canonical
//! form ([`NumberKey`]): a pair it accepts is always equal by the rules
//! above. An integer beyond 2^53 that is not exactly a 64-bit float pairs
//! only with the same integer, though it equals the float it rounds to
//! (equality mixing integers and floats is not transitive there).
//!
//! # Objects
//!
//! An object may repeat a key: the last one counts (as in `JSON.parse` and
//! serde_json), the earlier ones are not compared.

use std::borrow::Cow;
use std::cmp::Ordering;

use std::sync::Arc;

use crate::decision::path_only;
use crate::decode;
use crate::grpc;
use crate::json::{self, Doc, Integer, Kind, Value};
use crate::memeq::same_bytes;
use crate::pointer::{render, render_folded, PathSeg, PointerPattern};
use crate::protobuf;
use crate::redact;

/// At most this many differing pointers are reported in [`Verdict::paths`].
pub const MAX_PATHS: usize = 10;
/// At most this many distinct differences are reported in [`Verdict::diffs`].
pub const MAX_DIFFS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    None,
    Bytes,
    Json,
    /// gRPC messages, field by field (see [`crate::protobuf`]).
    Protobuf,
    /// JSON when both sides declare a JSON content-type, protobuf when both
    /// are gRPC, else bytes.
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
    /// The launch's `max_body_bytes`: the most a body may decode to.
    pub max_body_bytes: usize,
    /// gRPC answers: compare their codes, their messages.
    pub grpc_status: bool,
    pub grpc_message: bool,
    /// `compare.proto_descriptor`: names the fields of gRPC answers.
    pub schema: Option<Arc<protobuf::Schema>>,
}

impl Default for CompareRules {
    /// The configuration defaults: status compared, no headers, `auto` body,
    /// nothing ignored, exact numbers, 64 KiB bodies.
    fn default() -> Self {
        CompareRules {
            status: true,
            headers: Vec::new(),
            body: BodyMode::Auto,
            ignore: Vec::new(),
            unordered_arrays: Vec::new(),
            numeric_tolerance: 0.0,
            max_body_bytes: 65_536,
            grpc_status: true,
            grpc_message: false,
            schema: None,
        }
    }
}

/// One captured response. `headers` holds only the compared headers plus
/// content-type and content-encoding, names lower-case, values raw bytes; a
/// name may repeat.
pub struct Side<'a> {
    pub status: u16,
    pub headers: &'a [(String, Vec<u8>)],
    pub body: &'a [u8],
}

/// What kind of JSON difference was found at a location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DiffKind {
    /// Same JSON type, different value.
    Value,
    /// Different JSON types.
    Type,
    /// Present in primary, absent in dark.
    Missing,
    /// Absent in primary, present in dark.
    Extra,
    /// Both arrays, different lengths (reported at the array).
    ArrayLength,
}

/// One JSON difference. `pointer` is an RFC 6901 pointer with array indices
/// folded to `*` (`/items/*/price`); `""` is the document root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Difference {
    pub pointer: String,
    pub kind: DiffKind,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Verdict {
    /// Statuses differ (and `rules.status`).
    pub status: bool,
    /// gRPC answers whose codes (`rules.grpc_status`) or messages
    /// (`rules.grpc_message`) differ. Their bodies are compared only when
    /// both are OK.
    pub grpc_status: bool,
    /// The listed headers that differ (`rules.headers` names, in that order).
    pub headers: Vec<String>,
    /// Body differs (outside ignored locations).
    pub body: bool,
    /// The first [`MAX_PATHS`] distinct pointers of `diffs`, in that order.
    pub paths: Vec<String>,
    /// Typed JSON differences, at most [`MAX_DIFFS`] (see the module doc);
    /// empty when the body was compared as bytes. `body` with empty `diffs`
    /// therefore means "the bytes differ".
    pub diffs: Vec<Difference>,
}

impl Verdict {
    pub fn is_match(&self) -> bool {
        !(self.status || self.grpc_status || !self.headers.is_empty() || self.body)
    }
}

/// A body decodes to more than `rules.max_body_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTooLarge;

/// Compare two responses under `rules`.
///
/// A body that decodes to more than `rules.max_body_bytes` (including one
/// that arrived unencoded and longer) makes the pair incomparable. Not
/// checked when bodies are not compared (`BodyMode::None`, root ignored) or
/// when both sides carry identical bytes under identical `content-encoding`:
/// those are equal without decoding.
#[cfg(any(test, feature = "fuzzing"))]
pub fn try_compare(
    rules: &CompareRules,
    primary: &Side,
    dark: &Side,
) -> Result<Verdict, BodyTooLarge> {
    try_compare_call(rules, primary, dark, "")
}

/// [`try_compare`] for the answers to a request of `path`: a gRPC call's
/// path names its method, hence the answer's message type under
/// `rules.schema`.
pub fn try_compare_call(
    rules: &CompareRules,
    primary: &Side,
    dark: &Side,
    path: &str,
) -> Result<Verdict, BodyTooLarge> {
    compare(rules, primary, dark, None, path).map(|(verdict, _)| verdict)
}

/// [`try_compare`], with an [`Example`] for each of the verdict's
/// differences (the same walk: `examples[i]` is `diffs[i]`), values
/// blanked at the `redact` locations. For samples: it copies values, which
/// counting does not need.
pub fn compare_examples(
    rules: &CompareRules,
    primary: &Side,
    dark: &Side,
    redact: &[PointerPattern],
    path: &str,
) -> Result<(Verdict, Vec<Example>), BodyTooLarge> {
    compare(rules, primary, dark, Some(redact), path)
}

/// One difference as a sample shows it: where exactly, and both values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// RFC 6901 pointer with the real array indices (`/items/3/price`).
    pub pointer: String,
    /// The folded pointer, [`Difference::pointer`] (`/items/*/price`).
    pub field: String,
    pub kind: DiffKind,
    /// The JSON text of the value on each side; `None` where the side has
    /// none, and on both sides when the location is redacted.
    pub primary: Option<String>,
    pub dark: Option<String>,
    /// The location is covered by a redact pattern: no value is kept.
    pub redacted: bool,
}

impl Example {
    fn at(
        path: &[PathSeg],
        field: &str,
        kind: DiffKind,
        a: Option<Value>,
        b: Option<Value>,
        redact: &[PointerPattern],
    ) -> Example {
        let redacted = redact::covered(redact, path);
        let text = |v: Option<Value>| {
            v.filter(|_| !redacted)
                .map(|v| redact::text(v, path, redact))
        };
        Example {
            pointer: render(path),
            field: field.to_string(),
            kind,
            primary: text(a),
            dark: text(b),
            redacted,
        }
    }
}

/// The body of `side` decoded per its `content-encoding`; `None` when it
/// cannot be decoded or decodes to more than `max` bytes.
pub fn decoded_body<'a>(side: &Side<'a>, max: usize) -> Option<Cow<'a, [u8]>> {
    let coding = content_encoding(side);
    decoded(side, &coding, max).ok().flatten()
}

fn compare(
    rules: &CompareRules,
    primary: &Side,
    dark: &Side,
    redact: Option<&[PointerPattern]>,
    path: &str,
) -> Result<(Verdict, Vec<Example>), BodyTooLarge> {
    let status = rules.status && primary.status != dark.status;
    // gRPC answers: the codes and messages; bodies only when both are OK.
    let (grpc_status, bodies) = if is_grpc_side(primary) || is_grpc_side(dark) {
        let (a, b) = (
            grpc::status(primary.headers, primary.status),
            grpc::status(dark.headers, dark.status),
        );
        (
            (rules.grpc_status && a.code != b.code)
                || (rules.grpc_message && a.message != b.message),
            a.code == 0 && b.code == 0,
        )
    } else {
        (false, true)
    };
    let headers = rules
        .headers
        .iter()
        .filter(|name| !header_values(primary.headers, name).eq(header_values(dark.headers, name)))
        .cloned()
        .collect();
    let (body, diffs, examples) = if bodies {
        compare_body(rules, primary, dark, redact, path)?
    } else {
        (false, Vec::new(), Vec::new())
    };
    let mut paths: Vec<String> = Vec::new();
    for d in &diffs {
        if paths.len() >= MAX_PATHS {
            break;
        }
        if !paths.contains(&d.pointer) {
            paths.push(d.pointer.clone());
        }
    }
    let verdict = Verdict {
        status,
        grpc_status,
        headers,
        body,
        paths,
        diffs,
    };
    Ok((verdict, examples))
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

/// A gRPC answer: a gRPC content type, or a `grpc-status` (Envoy's own
/// replies to a gRPC call carry one).
fn is_grpc_side(side: &Side) -> bool {
    header_values(side.headers, "content-type")
        .next()
        .is_some_and(grpc::is_grpc)
        || header_values(side.headers, "grpc-status").next().is_some()
}

/// The `content-encoding` field value; several field lines are one list.
fn content_encoding<'a>(side: &Side<'a>) -> Cow<'a, [u8]> {
    let mut values = header_values(side.headers, "content-encoding");
    let Some(first) = values.next() else {
        return Cow::Borrowed(&[]);
    };
    let mut rest = values.peekable();
    if rest.peek().is_none() {
        return Cow::Borrowed(first);
    }
    let mut joined = first.to_vec();
    for v in rest {
        joined.push(b',');
        joined.extend_from_slice(v);
    }
    Cow::Owned(joined)
}

/// The decoded body, or `None` when it cannot be decoded (unknown coding,
/// invalid data).
fn decoded<'a>(
    side: &Side<'a>,
    coding: &[u8],
    max: usize,
) -> Result<Option<Cow<'a, [u8]>>, BodyTooLarge> {
    match decode::decode(coding, side.body, max) {
        Ok(body) => Ok(Some(body)),
        Err(decode::DecodeError::TooLarge) => Err(BodyTooLarge),
        Err(_) => Ok(None),
    }
}

/// (body differs, differences, their examples when `redact` is given).
type BodyResult = (bool, Vec<Difference>, Vec<Example>);

fn compare_body(
    rules: &CompareRules,
    primary: &Side,
    dark: &Side,
    redact: Option<&[PointerPattern]>,
    path: &str,
) -> Result<BodyResult, BodyTooLarge> {
    let same = Ok((false, Vec::new(), Vec::new()));
    // Ignoring the root ignores the whole body whatever way it would be
    // compared.
    if rules.body == BodyMode::None || rules.ignore.iter().any(|p| p.covers(&[])) {
        return same;
    }
    let (coding_a, coding_b) = (content_encoding(primary), content_encoding(dark));
    // Identical bytes under the identical coding are equal under every mode.
    if same_bytes(primary.body, dark.body) && coding_a == coding_b {
        return same;
    }
    let as_protobuf = match rules.body {
        BodyMode::Protobuf => true,
        BodyMode::Auto => is_grpc_side(primary) && is_grpc_side(dark),
        _ => false,
    };
    if as_protobuf {
        return compare_protobuf(rules, primary, dark, redact, path);
    }
    let a = decoded(primary, &coding_a, rules.max_body_bytes)?;
    let b = decoded(dark, &coding_b, rules.max_body_bytes)?;
    let (Some(a), Some(b)) = (a, b) else {
        // Something could not be decoded: the bytes as received, as bytes.
        return Ok((!same_bytes(primary.body, dark.body), Vec::new(), Vec::new()));
    };
    if same_bytes(&a, &b) {
        return same;
    }
    let as_json = match rules.body {
        BodyMode::None | BodyMode::Bytes | BodyMode::Protobuf => false,
        BodyMode::Json => true,
        BodyMode::Auto => is_json_side(primary) && is_json_side(dark),
    };
    if as_json {
        if let Some(result) = compare_json(rules, &a, &b, redact) {
            return Ok(result);
        }
    }
    // Bytes differ (checked above).
    Ok((true, Vec::new(), Vec::new()))
}

/// gRPC bodies: their messages (5-byte frames, each decompressed per
/// `grpc-encoding`) rendered as JSON documents together
/// ([`protobuf::render_pair`]) and compared as JSON, so that every JSON
/// rule applies to field pointers. Bodies that are not gRPC messages
/// compare as bytes.
fn compare_protobuf(
    rules: &CompareRules,
    primary: &Side,
    dark: &Side,
    redact: Option<&[PointerPattern]>,
    path: &str,
) -> Result<BodyResult, BodyTooLarge> {
    let rendered = render_grpc(rules, primary, dark, Some(path))?;
    match rendered.and_then(|(a, b)| compare_json(rules, a.as_bytes(), b.as_bytes(), redact)) {
        Some(result) => Ok(result),
        None => Ok((!same_bytes(primary.body, dark.body), Vec::new(), Vec::new())),
    }
}

/// Two gRPC bodies as the comparison sees them: their messages rendered
/// together as JSON texts (schema-less for a request, whose `path` is
/// `None`); `None` when they are not gRPC messages.
pub fn grpc_json(
    rules: &CompareRules,
    primary: &Side,
    dark: &Side,
    path: Option<&str>,
) -> Option<(String, String)> {
    render_grpc(rules, primary, dark, path).ok().flatten()
}

/// [`grpc_json`], telling a body whose messages decompress to more than
/// `max_body_bytes` apart.
fn render_grpc(
    rules: &CompareRules,
    primary: &Side,
    dark: &Side,
    path: Option<&str>,
) -> Result<Option<(String, String)>, BodyTooLarge> {
    let (a, b) = match (grpc_frames(rules, primary), grpc_frames(rules, dark)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(protobuf::FrameError::TooLarge), _) | (_, Err(protobuf::FrameError::TooLarge)) => {
            return Err(BodyTooLarge)
        }
        _ => return Ok(None),
    };
    let schema = path.and_then(|p| {
        let s = rules.schema.as_deref()?;
        Some((s, s.output_of(path_only(p))?))
    });
    Ok(protobuf::render_pair(&a, &b, schema))
}

/// The messages of a gRPC body.
fn grpc_frames<'a>(
    rules: &CompareRules,
    side: &Side<'a>,
) -> Result<Vec<Cow<'a, [u8]>>, protobuf::FrameError> {
    let encoding = header_values(side.headers, "grpc-encoding")
        .next()
        .unwrap_or_default();
    protobuf::split_frames(side.body, encoding, rules.max_body_bytes)
}

/// (differs, differences, examples) of two JSON documents; `None` when
/// either is not JSON (see [`json`] for what is: exactly what serde_json
/// accepts).
fn compare_json(
    rules: &CompareRules,
    a: &[u8],
    b: &[u8],
    redact: Option<&[PointerPattern]>,
) -> Option<BodyResult> {
    let a = json::parse(a).ok()?;
    // The dark answer mostly repeats the primary's text: copy those parts.
    let b = json::parse_like(b, &a).ok()?;
    let mut walker = Walker::new(rules);
    walker.examples_redact = redact;
    walker.walk(Some(a.root()?), Some(b.root()?));
    Some((walker.differs, walker.diffs, walker.examples))
}

/// Depth-first comparison of two JSON values, tracking the current location.
/// Recursion depth follows the parsed documents, which [`json::parse`] caps
/// at [`json::MAX_DEPTH`].
///
/// Subtrees whose text is byte for byte the same are equal whatever the
/// rules (identical text, identical values, and the walk only ever reports
/// differences), so they are skipped without a look inside: in practice
/// most of two similar answers.
struct Walker<'r, 'a> {
    rules: &'r CompareRules,
    path: Vec<PathSeg<'a>>,
    /// The patterns (ignore and unordered) whose first segments match the
    /// current path, one [`Frame`] per depth: matching one segment at each
    /// step instead of every pattern against the whole path at every node.
    /// Pattern ids: `rules.ignore` first, then `rules.unordered_arrays`.
    live: Vec<u32>,
    frames: Vec<Frame>,
    differs: bool,
    diffs: Vec<Difference>,
    max_diffs: usize,
    /// Set for [`compare_examples`]: one [`Example`] per difference, values
    /// redacted at these locations.
    examples_redact: Option<&'r [PointerPattern]>,
    examples: Vec<Example>,
    /// A stack of the sorted keys (node ids) of the objects being compared.
    keys: Vec<u32>,
    /// A stack of the differing members (key, value in a, value in b: node
    /// ids) of same-keys objects being compared.
    members: Vec<[u32; 3]>,
    /// Per node of the primary document: 0 not known yet, 1 an object
    /// without repeated keys, 2 one with (filled when first asked, so that
    /// unordered pairing, which compares the same elements many times, asks
    /// once).
    repeats: Vec<u8>,
}

/// The patterns matching the path up to one depth: `live[start..]` (up to the
/// next frame), and what they say about that location.
#[derive(Debug, Clone, Copy, Default)]
struct Frame {
    start: usize,
    /// An ignore pattern covers it (`PointerPattern::covers`).
    ignored: bool,
    /// An unordered pattern matches it exactly.
    unordered: bool,
    /// Some pattern reaches below it (`PointerPattern::reaches_below`).
    below: bool,
}

impl Frame {
    /// Account for `pattern`, whose first segments match a path of `depth`.
    fn note(&mut self, pattern: &PointerPattern, ignore: bool, depth: usize) {
        let len = pattern.depth();
        self.ignored |= ignore && len <= depth;
        self.unordered |= !ignore && len == depth;
        self.below |= len > depth;
    }
}

/// Pattern `id` of `rules` (see [`Walker::live`]) and whether it is an ignore
/// pattern.
fn pattern(rules: &CompareRules, id: u32) -> Option<(&PointerPattern, bool)> {
    let id = id as usize;
    match rules.ignore.get(id) {
        Some(p) => Some((p, true)),
        None => rules
            .unordered_arrays
            .get(id - rules.ignore.len())
            .map(|p| (p, false)),
    }
}

impl<'r, 'a> Walker<'r, 'a> {
    fn new(rules: &'r CompareRules) -> Self {
        let count = rules.ignore.len() + rules.unordered_arrays.len();
        let live: Vec<u32> = (0..count as u32).collect();
        let mut root = Frame::default();
        for &id in &live {
            if let Some((p, ignore)) = pattern(rules, id) {
                root.note(p, ignore, 0);
            }
        }
        Self {
            rules,
            path: Vec::new(),
            live,
            frames: vec![root],
            differs: false,
            diffs: Vec::new(),
            max_diffs: MAX_DIFFS,
            examples_redact: None,
            examples: Vec::new(),
            keys: Vec::new(),
            members: Vec::new(),
            repeats: Vec::new(),
        }
    }

    fn frame(&self) -> Frame {
        self.frames.last().copied().unwrap_or_default()
    }

    /// Step down into `seg`.
    fn push(&mut self, seg: PathSeg<'a>) {
        let depth = self.path.len();
        let (start, end) = (self.frame().start, self.live.len());
        let mut frame = Frame {
            start: end,
            ..Frame::default()
        };
        for k in start..end {
            let Some(&id) = self.live.get(k) else {
                break;
            };
            let Some((p, ignore)) = pattern(self.rules, id) else {
                continue;
            };
            // A pattern already complete covers everything below.
            if p.depth() <= depth || p.matches_segment(depth, &seg) {
                self.live.push(id);
                frame.note(p, ignore, depth + 1);
            }
        }
        self.frames.push(frame);
        self.path.push(seg);
    }

    fn pop(&mut self) {
        self.path.pop();
        // The root frame is never popped: pushes and pops pair up.
        if self.frames.len() > 1 {
            if let Some(f) = self.frames.pop() {
                self.live.truncate(f.start);
            }
        }
    }

    /// Nothing more to learn: a difference is known and the list is full.
    fn done(&self) -> bool {
        self.differs && self.diffs.len() >= self.max_diffs
    }

    /// A difference of `kind` here; `a` and `b` the values on each side.
    fn record(&mut self, kind: DiffKind, a: Option<Value<'a>>, b: Option<Value<'a>>) {
        self.differs = true;
        if self.diffs.len() < self.max_diffs {
            let pointer = render_folded(&self.path);
            if !self
                .diffs
                .iter()
                .any(|d| d.kind == kind && d.pointer == pointer)
            {
                if let Some(redact) = self.examples_redact {
                    self.examples
                        .push(Example::at(&self.path, &pointer, kind, a, b, redact));
                }
                self.diffs.push(Difference { pointer, kind });
            }
        }
    }

    fn ignored(&self) -> bool {
        self.frame().ignored
    }

    /// Compare the values at the current path; `None` = absent on that side.
    fn walk(&mut self, a: Option<Value<'a>>, b: Option<Value<'a>>) {
        if self.done() || self.ignored() {
            return;
        }
        match (a, b) {
            (None, None) => {}
            (Some(a), Some(b)) => self.values(a, b),
            (Some(a), None) => self.record(DiffKind::Missing, Some(a), None),
            (None, Some(b)) => self.record(DiffKind::Extra, None, Some(b)),
        }
    }

    fn values(&mut self, a: Value<'a>, b: Value<'a>) {
        if a.same_text(&b) {
            return;
        }
        match (a.kind(), b.kind()) {
            (Kind::Object, Kind::Object) => self.objects(a, b),
            (Kind::Array, Kind::Array) => self.arrays(a, b),
            (Kind::Number, Kind::Number) => {
                if !numbers_equal(a, b, self.rules.numeric_tolerance) {
                    self.record(DiffKind::Value, Some(a), Some(b));
                }
            }
            (Kind::Null, Kind::Null) => {}
            (Kind::Bool, Kind::Bool) => {
                if a.as_bool() != b.as_bool() {
                    self.record(DiffKind::Value, Some(a), Some(b));
                }
            }
            (Kind::String, Kind::String) => {
                if a.str_cmp(&b) != Ordering::Equal {
                    self.record(DiffKind::Value, Some(a), Some(b));
                }
            }
            _ => self.record(DiffKind::Type, Some(a), Some(b)),
        }
    }

    /// Keys in sorted order (the last of repeated keys counts), as a merge of
    /// both sides' sorted keys.
    fn objects(&mut self, a: Value<'a>, b: Value<'a>) {
        if !self.same_keys_objects(a, b) {
            self.merged_objects(a, b);
        }
    }

    /// The common case of two objects with the same key text in the same
    /// order: only the few members whose values differ need sorting (by key)
    /// and walking. Returns false, having done nothing, for anything else
    /// (other keys, or more than [`FEW_MEMBERS`] differing values).
    fn same_keys_objects(&mut self, a: Value<'a>, b: Value<'a>) -> bool {
        if a.len() != b.len() {
            return false;
        }
        let base = self.members.len();
        for ((ka, va), (kb, vb)) in a.members().zip(b.members()) {
            if !ka.same_text(&kb) || self.members.len() - base > FEW_MEMBERS {
                self.members.truncate(base);
                return false;
            }
            if !va.same_text(&vb) {
                self.members.push([ka.id(), va.id(), vb.id()]);
            }
        }
        if self.members.len() - base > FEW_MEMBERS {
            self.members.truncate(base);
            return false;
        }
        let (doc_a, doc_b) = (a.doc(), b.doc());
        // In key order, as the merge would visit them; a probe only needs
        // to know whether any differs.
        if self.max_diffs > 0 {
            if let Some(differing) = self.members.get_mut(base..) {
                differing.sort_unstable_by(|x, y| match (doc_a.value(x[0]), doc_a.value(y[0])) {
                    (Some(x), Some(y)) => x.str_cmp(&y),
                    _ => Ordering::Equal,
                });
            }
        }
        // Positions are the same on both sides. A member whose key repeats
        // later does not count (the later one does, on both sides). Probes
        // compare the same elements many times: they ask once per object
        // whether it repeats keys at all.
        let repeats = self.max_diffs > 0 || self.repeated_keys(a);
        for at in base..self.members.len() {
            if self.done() {
                break;
            }
            let Some(&[k, x, y]) = self.members.get(at) else {
                break;
            };
            let (Some(key), va, vb) = (doc_a.value(k), doc_a.value(x), doc_b.value(y)) else {
                continue;
            };
            let shadowed = repeats
                && a.members()
                    .skip_while(|(k, _)| k.id() != key.id())
                    .skip(1)
                    .any(|(later, _)| later.str_eq(&key));
            if shadowed {
                continue;
            }
            self.push(PathSeg::Key(key.str().unwrap_or_default()));
            self.walk(va, vb);
            self.pop();
        }
        self.members.truncate(base);
        true
    }

    /// Whether object `a` repeats a key, remembered per node (`a` is always
    /// of the primary document: the walk's left side).
    fn repeated_keys(&mut self, a: Value<'a>) -> bool {
        if a.len() < 2 {
            return false;
        }
        let id = a.id() as usize;
        if let Some(&known @ 1..) = self.repeats.get(id) {
            return known == 2;
        }
        let base = self.keys.len();
        json::sorted_keys(&a, &mut self.keys);
        let repeated = self.keys.len() - base < a.len();
        self.keys.truncate(base);
        if self.repeats.len() <= id {
            self.repeats.resize(id + 1, 0);
        }
        if let Some(slot) = self.repeats.get_mut(id) {
            *slot = if repeated { 2 } else { 1 };
        }
        repeated
    }

    /// The general case: a merge of both sides' sorted keys.
    fn merged_objects(&mut self, a: Value<'a>, b: Value<'a>) {
        let base = self.keys.len();
        json::sorted_keys(&a, &mut self.keys);
        let mid = self.keys.len();
        json::sorted_keys(&b, &mut self.keys);
        let end = self.keys.len();
        let member = |doc: &'a Doc<'a>, at: Option<&u32>| at.and_then(|&id| doc.member(id));
        let (mut i, mut j) = (base, mid);
        while !self.done() {
            let x = if i < mid {
                member(a.doc(), self.keys.get(i))
            } else {
                None
            };
            let y = if j < end {
                member(b.doc(), self.keys.get(j))
            } else {
                None
            };
            let (key, va, vb) = match (x, y) {
                (None, None) => break,
                (Some((k, v)), None) => {
                    i += 1;
                    (k, Some(v), None)
                }
                (None, Some((k, v))) => {
                    j += 1;
                    (k, None, Some(v))
                }
                (Some((kx, vx)), Some((ky, vy))) => match kx.str_cmp(&ky) {
                    Ordering::Less => {
                        i += 1;
                        (kx, Some(vx), None)
                    }
                    Ordering::Greater => {
                        j += 1;
                        (ky, None, Some(vy))
                    }
                    Ordering::Equal => {
                        i += 1;
                        j += 1;
                        (kx, Some(vx), Some(vy))
                    }
                },
            };
            if let (Some(va), Some(vb)) = (va, vb) {
                if va.same_text(&vb) {
                    continue;
                }
            }
            self.push(PathSeg::Key(key.str().unwrap_or_default()));
            self.walk(va, vb);
            self.pop();
        }
        self.keys.truncate(base);
    }

    fn arrays(&mut self, a: Value<'a>, b: Value<'a>) {
        let (len_a, len_b) = (a.len(), b.len());
        let common = len_a.min(len_b);
        let length_differs = len_a != len_b && !self.surplus_ignored(common, len_a.max(len_b));
        let unordered = self.frame().unordered;
        if length_differs {
            self.record(DiffKind::ArrayLength, Some(a), Some(b));
        }
        if unordered {
            // A length difference already says the multisets differ.
            if !length_differs && !self.same_multiset(a, b, common) {
                self.record(DiffKind::Value, Some(a), Some(b));
            }
            return;
        }
        for (i, (x, y)) in a.elements().zip(b.elements()).enumerate() {
            if self.done() {
                break;
            }
            if x.same_text(&y) {
                continue;
            }
            self.push(PathSeg::Index(i));
            self.walk(Some(x), Some(y));
            self.pop();
        }
    }

    /// True when every index in `from..to` below the current path is ignored.
    fn surplus_ignored(&mut self, from: usize, to: usize) -> bool {
        if self.rules.ignore.is_empty() {
            return false;
        }
        (from..to).all(|i| {
            self.push(PathSeg::Index(i));
            let ignored = self.ignored();
            self.pop();
            ignored
        })
    }

    /// True when the first `n` elements of both arrays can be paired one to
    /// one, each pair equal under the same rules. Ignore patterns below the
    /// array are evaluated with the primary element's index. Greedy pairing:
    /// exact when equality is transitive (no tolerance, no index-specific
    /// ignores), otherwise it may miss a valid pairing and report a
    /// difference.
    fn same_multiset(&mut self, a: Value<'a>, b: Value<'a>, n: usize) -> bool {
        if self.plain_below() {
            let x = Canonical::sorted(a.elements().take(n), &mut self.keys);
            let y = Canonical::sorted(b.elements().take(n), &mut self.keys);
            return x.same_as(&y);
        }
        if n > MAX_PAIRING_ELEMENTS {
            // Greedy pairing is quadratic; past this size (with rules that
            // need it) the array is compared in order rather than block the
            // worker.
            return a
                .elements()
                .zip(b.elements())
                .take(n)
                .enumerate()
                .all(|(i, (x, y))| {
                    self.push(PathSeg::Index(i));
                    let equal = self.equal(x, y);
                    self.pop();
                    equal
                });
        }
        let ys: Vec<Value<'a>> = b.elements().take(n).collect();
        let mut used = vec![false; ys.len()];
        for (i, x) in a.elements().take(n).enumerate() {
            self.push(PathSeg::Index(i));
            // Same position first: already-ordered arrays cost O(n).
            let found = std::iter::once(i)
                .chain((0..ys.len()).filter(|&j| j != i))
                .find(|&j| {
                    used.get(j) == Some(&false) && ys.get(j).is_some_and(|&y| self.equal(x, y))
                });
            self.pop();
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
        self.rules.numeric_tolerance <= 0.0 && !self.frame().below
    }

    /// Whether `a` and `b` are equal at the current path under the rules: a
    /// probe that records nothing and stops at the first difference.
    fn equal(&mut self, a: Value<'a>, b: Value<'a>) -> bool {
        let saved = (self.differs, self.max_diffs);
        self.differs = false;
        self.max_diffs = 0;
        self.walk(Some(a), Some(b));
        let equal = !self.differs;
        (self.differs, self.max_diffs) = saved;
        equal
    }
}

/// At most this many differing members take the same-keys shortcut of
/// `Walker::objects` (which is O(differing × members)).
const FEW_MEMBERS: usize = 16;

/// Elements of an unordered array compared by greedy pairing at most; past
/// that, in order (see `same_multiset`).
const MAX_PAIRING_ELEMENTS: usize = 1000;

/// The canonical forms of an array's elements, sorted: a byte string per
/// element, equal only when the comparator (without tolerance, ignores or
/// nested unordered arrays) calls the elements equal, and then always except
/// for the integers of [`NumberKey`].
struct Canonical {
    bytes: Vec<u8>,
    items: Vec<(usize, usize)>,
}

impl Canonical {
    fn sorted<'a>(elements: impl Iterator<Item = Value<'a>>, keys: &mut Vec<u32>) -> Self {
        let mut bytes = Vec::new();
        let mut items = Vec::new();
        for v in elements {
            let start = bytes.len();
            canonical(v, keys, &mut bytes);
            items.push((start, bytes.len()));
        }
        let mut out = Canonical { bytes, items };
        let mut items = std::mem::take(&mut out.items);
        items.sort_unstable_by(|x, y| out.item(*x).cmp(out.item(*y)));
        out.items = items;
        out
    }

    fn item(&self, (start, end): (usize, usize)) -> &[u8] {
        self.bytes.get(start..end).unwrap_or_default()
    }

    fn same_as(&self, other: &Canonical) -> bool {
        self.items.len() == other.items.len()
            && self
                .items
                .iter()
                .zip(&other.items)
                .all(|(x, y)| same_bytes(self.item(*x), other.item(*y)))
    }
}

/// Append the canonical form of `v`: a type tag, then the value, every part
/// self-delimiting. Object members sorted by key, the last of repeated keys
/// counting; strings decoded; numbers as [`NumberKey`], so that `1` and `1.0`
/// agree and integers keep every digit.
fn canonical(v: Value<'_>, keys: &mut Vec<u32>, out: &mut Vec<u8>) {
    match v.kind() {
        Kind::Null => out.push(b'n'),
        Kind::Bool => out.push(if v.as_bool() == Some(true) {
            b't'
        } else {
            b'f'
        }),
        Kind::Number => match NumberKey::of(v) {
            Some(NumberKey::Float(bits)) => {
                out.push(b'f');
                out.extend_from_slice(&bits.to_le_bytes());
            }
            Some(NumberKey::Int(i)) => {
                out.push(b'i');
                out.extend_from_slice(&i.to_le_bytes());
            }
            Some(NumberKey::Big { negative, digits }) => {
                out.push(if negative { b'-' } else { b'+' });
                out.extend_from_slice(&(digits.len() as u64).to_le_bytes());
                out.extend_from_slice(digits);
            }
            // Not reached: the parser checked every number.
            None => out.push(b'?'),
        },
        Kind::String => canonical_str(v, out),
        Kind::Array => {
            out.push(b'[');
            for item in v.elements() {
                canonical(item, keys, out);
            }
            out.push(b']');
        }
        Kind::Object => {
            out.push(b'{');
            let base = keys.len();
            json::sorted_keys(&v, keys);
            for at in base..keys.len() {
                let Some((key, item)) = keys.get(at).and_then(|&id| v.doc().member(id)) else {
                    break;
                };
                canonical_str(key, out);
                canonical(item, keys, out);
            }
            keys.truncate(base);
            out.push(b'}');
        }
    }
}

/// `"`, the decoded length (8 bytes), the decoded bytes.
fn canonical_str(v: Value<'_>, out: &mut Vec<u8>) {
    out.push(b'"');
    let at = out.len();
    out.extend_from_slice(&[0; 8]);
    out.extend(v.str_bytes());
    let len = (out.len() - at - 8) as u64;
    if let Some(slot) = out.get_mut(at..at + 8) {
        slot.copy_from_slice(&len.to_le_bytes());
    }
}

/// A number for equality without tolerance, consistent with
/// [`numbers_equal`]: two keys are equal only when the numbers are.
///
/// A float, and an integer that is exactly the f64 serde_json reads it as
/// (every integer up to 2^53, larger ones when the f64 holds them), are
/// `Float`: by f64 value, so `1` and `1.0` agree (and `-0` equals `0`).
/// Other integers are `Int` (up to 128 bits) or `Big`, by exact value, so
/// two of them that round to the same f64 stay apart. Such an integer and
/// the float it rounds to are equal to the comparator (compared as f64) but
/// not here: that equality is not transitive (`9007199254740993` equals
/// `9007199254740992.0`, which equals `9007199254740992`, but the two
/// integers differ), so no canonical form can follow it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum NumberKey<'a> {
    /// The bits of the f64, zero unsigned.
    Float(u64),
    Int(i128),
    Big {
        negative: bool,
        digits: &'a [u8],
    },
}

impl<'a> NumberKey<'a> {
    /// `None` for non-numbers.
    fn of(v: Value<'a>) -> Option<Self> {
        let key = match v.integer() {
            // Every integer up to 2^53 is an f64, and serde_json's value.
            Some(Integer::Small(i)) if i.unsigned_abs() <= 1 << 53 => float_key(i as f64),
            Some(Integer::Small(i)) => {
                let f = v.number()?.as_f64();
                if exact_f64(i) == Some(f) {
                    float_key(f)
                } else {
                    NumberKey::Int(i)
                }
            }
            // Beyond i128 (|i| > 1.7e38): pairs with the same integer only.
            Some(Integer::Big { negative, digits }) => NumberKey::Big { negative, digits },
            None => float_key(v.number()?.as_f64()),
        };
        Some(key)
    }
}

fn float_key(f: f64) -> NumberKey<'static> {
    NumberKey::Float(if f == 0.0 { 0 } else { f.to_bits() })
}

/// `i` as an f64 when the f64 holds it exactly.
fn exact_f64(i: i128) -> Option<f64> {
    // 2^127 (i128::MAX rounds up to it): `as i128` saturates from there.
    const TWO_POW_127: f64 = i128::MAX as f64;
    let f = i as f64;
    (f < TWO_POW_127 && f as i128 == i).then_some(f)
}

/// Whether two numbers are equal, with relative tolerance `tol` (0 = exact):
/// two integers (as written: no fraction, no exponent) exactly, whatever
/// their size; anything else as f64 (serde_json's values). With `tol > 0`,
/// equal when |a−b| ≤ tol × max(|a|,|b|), computed exactly for integers up
/// to 128 bits and as f64 otherwise. `false` for non-numbers.
fn numbers_equal(a: Value<'_>, b: Value<'_>, tol: f64) -> bool {
    if let (Some(x), Some(y)) = (a.integer(), b.integer()) {
        if x == y {
            return true;
        }
        if tol <= 0.0 {
            return false;
        }
        if let (Integer::Small(x), Integer::Small(y)) = (x, y) {
            // Exact difference: as f64, u64::MAX and u64::MAX-1 would be equal.
            return x.abs_diff(y) as f64 <= tol * x.unsigned_abs().max(y.unsigned_abs()) as f64;
        }
        // Beyond 128 bits: as f64, below.
    }
    let (Some(x), Some(y)) = (a.number(), b.number()) else {
        // Not reached: the parser checked every number.
        return false;
    };
    let (x, y) = (x.as_f64(), y.as_f64());
    x == y || (tol > 0.0 && (x - y).abs() <= tol * x.abs().max(y.abs()))
}

#[cfg(test)]
mod differential;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests {
    use super::*;

    fn rules(body: BodyMode) -> CompareRules {
        CompareRules {
            body,
            ..CompareRules::default()
        }
    }

    fn d(pointer: &str, kind: DiffKind) -> Difference {
        Difference {
            pointer: pointer.to_string(),
            kind,
        }
    }

    use DiffKind::{ArrayLength, Extra, Missing, Type};

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

    #[test]
    fn examples_unfold_pointers_and_keep_value_text() {
        let json = hdrs(&[("content-type", "application/json")]);
        let a = br#"{"items":[{"price":10.0,"sku":"a"},{"price":7,"sku":"b"}],"currency":"EUR","user":{"ssn":"1-2","n":1},"meta":{"ssn":"9"}}"#;
        let b = br#"{"items":[{"price":10.0,"sku":"a"},{"price":7.5,"sku":"b"}],"user":{"ssn":"3-4","n":2},"extra":true,"meta":[1]}"#;
        let rules = CompareRules::default();
        let redact = pats(&["/user/ssn", "/meta/ssn"]);
        let (v, ex) =
            compare_examples(&rules, &side(&json, a), &side(&json, b), &redact, "").unwrap();
        // The same walk as the counting one.
        assert_eq!(v, verdict(&rules, &side(&json, a), &side(&json, b)));
        assert_eq!(ex.len(), v.diffs.len());
        for (e, d) in ex.iter().zip(&v.diffs) {
            assert_eq!((&e.field, e.kind), (&d.pointer, d.kind));
        }
        let by = |p: &str| ex.iter().find(|e| e.pointer == p).unwrap().clone();
        let price = by("/items/1/price");
        assert_eq!(price.field, "/items/*/price");
        assert_eq!(
            (price.primary.as_deref(), price.dark.as_deref()),
            (Some("7"), Some("7.5"))
        );
        let cur = by("/currency");
        assert_eq!(
            (cur.kind, cur.primary.as_deref(), cur.dark),
            (Missing, Some("\"EUR\""), None)
        );
        let extra = by("/extra");
        assert_eq!(
            (extra.kind, extra.primary, extra.dark.as_deref()),
            (Extra, None, Some("true"))
        );
        // Redacted: the pointer and kind, no value.
        let ssn = by("/user/ssn");
        assert!(ssn.redacted && ssn.primary.is_none() && ssn.dark.is_none());
        // A container holding a redacted location shows it blanked.
        let meta = by("/meta");
        assert_eq!(meta.kind, Type);
        assert_eq!(meta.primary.as_deref(), Some(r#"{"ssn":"[redacted]"}"#));
        assert_eq!(meta.dark.as_deref(), Some("[1]"));
        for e in &ex {
            for v in [&e.primary, &e.dark].into_iter().flatten() {
                assert!(
                    !v.contains("1-2") && !v.contains("3-4") && !v.contains("\"9\""),
                    "{v}"
                );
            }
        }
        // Bytes-compared bodies have no examples.
        let (v, ex) =
            compare_examples(&rules, &side(&[], b"x"), &side(&[], b"y"), &redact, "").unwrap();
        assert!(v.body && ex.is_empty());
    }

    /// [`try_compare`] on bodies within `max_body_bytes`.
    fn verdict(r: &CompareRules, a: &Side, b: &Side) -> Verdict {
        try_compare(r, a, b).expect("bodies within max_body_bytes")
    }

    /// Compare two JSON bodies in Json mode.
    fn json(r: &CompareRules, a: &str, b: &str) -> Verdict {
        verdict(r, &side(&[], a.as_bytes()), &side(&[], b.as_bytes()))
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
        let v = verdict(&r, &a, &b);
        assert!(v.status && !v.is_match());
        r.status = false;
        assert!(verdict(&r, &a, &b).is_match());
        assert!(verdict(&rules(BodyMode::None), &a, &a).is_match());
    }

    #[test]
    fn headers_listed_only() {
        let mut r = rules(BodyMode::None);
        let a = hdrs(&[("x-a", "1"), ("x-b", "1")]);
        let b = hdrs(&[("x-a", " 1 "), ("x-b", "2")]);
        r.headers = vec!["x-a".into()];
        assert!(verdict(&r, &side(&a, b""), &side(&b, b"")).is_match());
        r.headers = vec!["x-b".into()];
        let v = verdict(&r, &side(&a, b""), &side(&b, b""));
        assert!(!v.status && !v.body);
        assert_eq!(v.headers, ["x-b"]);
        r.headers = vec!["x-b".into(), "x-c".into(), "x-a".into()];
        let c = hdrs(&[("x-a", "1"), ("x-c", "3")]);
        let v = verdict(&r, &side(&a, b""), &side(&c, b""));
        assert_eq!(
            v.headers,
            ["x-b", "x-c"],
            "the differing ones, in the listed order"
        );
    }

    #[test]
    fn headers_name_case_and_value_case() {
        let mut r = rules(BodyMode::None);
        r.headers = vec!["x-a".into()];
        let a = hdrs(&[("X-A", "v")]);
        let b = hdrs(&[("x-a", "v")]);
        assert!(verdict(&r, &side(&a, b""), &side(&b, b"")).is_match());
        // Values are bytes: case matters.
        let c = hdrs(&[("x-a", "V")]);
        assert!(!verdict(&r, &side(&a, b""), &side(&c, b""))
            .headers
            .is_empty());
    }

    #[test]
    fn headers_absent() {
        let mut r = rules(BodyMode::None);
        r.headers = vec!["x-a".into()];
        let a = hdrs(&[("x-a", "")]);
        let none = hdrs(&[]);
        // Present (even empty) vs absent differs; absent on both is equal.
        assert!(!verdict(&r, &side(&a, b""), &side(&none, b""))
            .headers
            .is_empty());
        assert!(!verdict(&r, &side(&none, b""), &side(&a, b""))
            .headers
            .is_empty());
        assert!(verdict(&r, &side(&none, b""), &side(&none, b"")).is_match());
    }

    #[test]
    fn headers_multi_valued_order_matters() {
        let mut r = rules(BodyMode::None);
        r.headers = vec!["set-cookie".into()];
        let a = hdrs(&[("set-cookie", "a=1"), ("x", "y"), ("set-cookie", "b=2")]);
        let same = hdrs(&[("set-cookie", "a=1"), ("set-cookie", "b=2 ")]);
        let swapped = hdrs(&[("set-cookie", "b=2"), ("set-cookie", "a=1")]);
        let fewer = hdrs(&[("set-cookie", "a=1")]);
        assert!(verdict(&r, &side(&a, b""), &side(&same, b"")).is_match());
        assert!(!verdict(&r, &side(&a, b""), &side(&swapped, b""))
            .headers
            .is_empty());
        assert!(!verdict(&r, &side(&a, b""), &side(&fewer, b""))
            .headers
            .is_empty());
    }

    #[test]
    fn body_none_never_differs() {
        let r = rules(BodyMode::None);
        assert!(verdict(&r, &side(&[], b"a"), &side(&[], b"b")).is_match());
    }

    #[test]
    fn body_bytes() {
        let r = rules(BodyMode::Bytes);
        assert!(verdict(&r, &side(&[], b"abc"), &side(&[], b"abc")).is_match());
        let v = verdict(
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
        assert!(verdict(&r, &side(&[], a), &side(&[], a)).is_match());
        let v = verdict(&r, &side(&[], a), &side(&[], b));
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
        // The length difference is reported once at the array; common
        // elements are still compared; surplus elements are not listed.
        let v = json(&json_rules(), "[1,2,3]", "[1,9]");
        assert_eq!(v.diffs, vec![d("", ArrayLength), d("/*", DiffKind::Value)]);
        assert_eq!(v.paths, vec!["", "/*"]);
        let v = json(&json_rules(), r#"{"l":[]}"#, r#"{"l":[0,0]}"#);
        assert_eq!(v.diffs, vec![d("/l", ArrayLength)]);
        assert_eq!(v.paths, vec!["/l"]);
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
        assert_eq!(json(&r, a, c).paths, vec!["/items/*/id"]);
    }

    #[test]
    fn json_ignore_array_index() {
        let mut r = json_rules();
        r.ignore = pats(&["/1"]);
        assert!(json(&r, "[1,2,3]", "[1,5,3]").is_match());
        assert!(json(&r, "[1,2]", "[1]").is_match());
        assert!(json(&r, "[1]", "[1,2]").is_match());
        // Index 2 is not ignored: the length difference counts.
        assert_eq!(json(&r, "[1,2,3]", "[1]").diffs, vec![d("", ArrayLength)]);
        r.ignore = pats(&["/*"]);
        assert!(json(&r, "[1,2,3]", "[4]").is_match());
    }

    #[test]
    fn ignore_root_ignores_everything() {
        let mut r = json_rules();
        r.ignore = pats(&[""]);
        assert!(json(&r, r#"{"a":1}"#, r#"[2]"#).is_match());
        // Also for invalid JSON and byte mode.
        assert!(json(&r, "not json", "{}").is_match());
        r.body = BodyMode::Bytes;
        assert!(verdict(&r, &side(&[], b"a"), &side(&[], b"b")).is_match());
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
        assert!(verdict(&r, &side(&pj, a), &side(&aj, b)).is_match());
        // One side not JSON: bytes.
        assert!(verdict(&r, &side(&pj, a), &side(&text, b)).body);
        assert!(verdict(&r, &side(&pj, a), &side(&[], b)).body);
    }

    #[test]
    fn undecodable_bodies_compare_as_bytes() {
        let r = json_rules();
        let gz = hdrs(&[("content-encoding", "gzip")]);
        let zstd = hdrs(&[("content-encoding", "zstd")]);
        let id = hdrs(&[("content-encoding", "identity")]);
        let a = br#"{"a":1,"b":2}"#;
        let b = br#"{"b":2,"a":1}"#;
        // Not gzip data: raw bytes, byte for byte.
        let v = verdict(&r, &side(&gz, a), &side(&[], b));
        assert!(v.body && v.diffs.is_empty());
        assert!(verdict(&r, &side(&gz, a), &side(&gz, a)).is_match());
        // Byte for byte the same: equal (compare `content-encoding` itself
        // through `compare.headers` to catch a coding label change).
        assert!(verdict(&r, &side(&gz, a), &side(&[], a)).is_match());
        // Unknown coding on both: bytes.
        assert!(verdict(&r, &side(&zstd, a), &side(&zstd, b)).body);
        assert!(verdict(&r, &side(&zstd, a), &side(&zstd, a)).is_match());
        assert!(verdict(&r, &side(&id, a), &side(&[], b)).is_match());
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
        assert_eq!(v.diffs, vec![d("/tags", DiffKind::Value)]);
        let v = json(&r, r#"{"tags":["a","b"]}"#, r#"{"tags":["a","b","a"]}"#);
        assert_eq!(v.diffs, vec![d("/tags", ArrayLength)]);
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
        assert_eq!(v.diffs, vec![d("/items/*/ids", DiffKind::Value)]);
        assert_eq!(v.paths, vec!["/items/*/ids"]);
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
    fn large_unordered_arrays_stay_cheap() {
        // 16,000 elements, halves swapped: quadratic pairing took seconds.
        let n = 16_000;
        let a: Vec<u8> = (0..n).map(|i| u8::from(i >= n / 2)).collect();
        let b: Vec<u8> = (0..n).map(|i| u8::from(i < n / 2)).collect();
        let (x, y) = (
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap(),
        );
        let mut r = rules(BodyMode::Json);
        r.unordered_arrays = pats(&[""]);
        assert!(json(&r, &x, &y).is_match());
        let mut c = b.clone();
        c[0] = 2;
        let z = serde_json::to_string(&c).unwrap();
        assert!(json(&r, &x, &z).body);
        // 1 and 1.0, key order: still equal through the canonical form.
        assert!(json(&r, r#"[{"a":1,"b":[2.0]},3]"#, r#"[3,{"b":[2],"a":1.0}]"#).is_match());
        // With a tolerance, past the pairing bound the array is compared in order.
        r.numeric_tolerance = 0.1;
        assert!(!json(&r, &x, &y).is_match());
        assert!(json(&r, &x, &x).is_match());
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
        assert_eq!(v.paths, vec!["/*".repeat(depth)]);
    }

    #[test]
    fn diff_kinds() {
        let r = json_rules();
        let v = json(
            &r,
            r#"{"a":1,"b":"x","c":[],"n":null,"m":1,"s":"p","t":true,"gone":0}"#,
            r#"{"a":"1","b":"x","c":{},"n":0,"m":null,"s":"q","t":false,"new":0}"#,
        );
        assert_eq!(
            v.diffs,
            vec![
                d("/a", Type),
                d("/c", Type),
                d("/gone", Missing),
                d("/m", Type),
                d("/n", Type),
                d("/new", Extra),
                d("/s", DiffKind::Value),
                d("/t", DiffKind::Value),
            ]
        );
        assert_eq!(
            v.paths,
            vec!["/a", "/c", "/gone", "/m", "/n", "/new", "/s", "/t"]
        );
        // A type change reports nothing below it.
        let v = json(&r, r#"{"o":{"x":1,"y":2}}"#, r#"{"o":[1,2]}"#);
        assert_eq!(v.diffs, vec![d("/o", Type)]);
        // Root.
        assert_eq!(json(&r, "1", "2").diffs, vec![d("", DiffKind::Value)]);
        assert_eq!(json(&r, "[]", "{}").diffs, vec![d("", Type)]);
        assert_eq!(json(&r, "true", "1").diffs, vec![d("", Type)]);
        assert_eq!(json(&r, "null", "false").diffs, vec![d("", Type)]);
        assert_eq!(json(&r, "1", "1.5").diffs, vec![d("", DiffKind::Value)]);
    }

    #[test]
    fn nulls_and_empty_vs_missing() {
        let r = json_rules();
        assert_eq!(
            json(&r, r#"{"a":null}"#, "{}").diffs,
            vec![d("/a", Missing)]
        );
        assert_eq!(json(&r, "{}", r#"{"a":null}"#).diffs, vec![d("/a", Extra)]);
        assert!(json(&r, r#"{"a":null}"#, r#"{"a":null}"#).is_match());
        for empty in [r#""""#, "[]", "{}", "0", "false"] {
            let with = format!(r#"{{"a":{empty}}}"#);
            assert_eq!(
                json(&r, &with, "{}").diffs,
                vec![d("/a", Missing)],
                "{empty}"
            );
            assert_eq!(json(&r, "{}", &with).diffs, vec![d("/a", Extra)], "{empty}");
            assert_eq!(
                json(&r, &with, r#"{"a":null}"#).diffs,
                vec![d("/a", Type)],
                "{empty}"
            );
        }
        assert_eq!(
            json(&r, r#"{"a":[]}"#, r#"{"a":{}}"#).diffs,
            vec![d("/a", Type)]
        );
        assert_eq!(
            json(&r, r#"{"a":""}"#, r#"{"a":" "}"#).diffs,
            vec![d("/a", DiffKind::Value)]
        );
        // Ignored null-vs-missing.
        let mut r = json_rules();
        r.ignore = pats(&["/a"]);
        assert!(json(&r, r#"{"a":null}"#, "{}").is_match());
    }

    #[test]
    fn diffs_folded_and_deduplicated() {
        let r = json_rules();
        let a = r#"{"items":[{"id":1,"price":10},{"id":2,"price":20},{"id":3,"price":30}]}"#;
        let b = r#"{"items":[{"id":1,"price":11},{"id":2,"price":"20"},{"id":3,"price":31}]}"#;
        let v = json(&r, a, b);
        // Same folded pointer, two kinds: two differences, one path.
        assert_eq!(
            v.diffs,
            vec![
                d("/items/*/price", DiffKind::Value),
                d("/items/*/price", Type)
            ]
        );
        assert_eq!(v.paths, vec!["/items/*/price"]);
        // Nested arrays fold every index.
        let v = json(&r, "[[1,2],[3,[4]]]", "[[1,2],[3,[5]]]");
        assert_eq!(v.diffs, vec![d("/*/*/*", DiffKind::Value)]);
    }

    #[test]
    fn diffs_bounded_in_order() {
        let n = 100;
        let a: Vec<String> = (0..n).map(|i| format!(r#""k{i:03}":{i}"#)).collect();
        let b: Vec<String> = (0..n).map(|i| format!(r#""k{i:03}":{}"#, i + 1)).collect();
        let v = json(
            &json_rules(),
            &format!("{{{}}}", a.join(",")),
            &format!("{{{}}}", b.join(",")),
        );
        assert!(v.body);
        assert_eq!(v.diffs.len(), MAX_DIFFS);
        let want: Vec<Difference> = (0..MAX_DIFFS)
            .map(|i| d(&format!("/k{i:03}"), DiffKind::Value))
            .collect();
        assert_eq!(v.diffs, want);
        assert_eq!(v.paths.len(), MAX_PATHS);
        // Same input, same output.
        let again = json(
            &json_rules(),
            &format!("{{{}}}", a.join(",")),
            &format!("{{{}}}", b.join(",")),
        );
        assert_eq!(again, v);
    }

    #[test]
    fn paths_distinct_pointers_of_diffs() {
        // 12 keys differing in value, each in an array element as well as a
        // type change: paths are distinct pointers, at most 10.
        let a: Vec<String> = (0..12).map(|i| format!(r#""k{i:02}":[1,1]"#)).collect();
        let b: Vec<String> = (0..12).map(|i| format!(r#""k{i:02}":[2,"x"]"#)).collect();
        let v = json(
            &json_rules(),
            &format!("{{{}}}", a.join(",")),
            &format!("{{{}}}", b.join(",")),
        );
        assert_eq!(v.diffs.len(), 24);
        assert_eq!(v.diffs[0], d("/k00/*", DiffKind::Value));
        assert_eq!(v.diffs[1], d("/k00/*", Type));
        let want: Vec<String> = (0..10).map(|i| format!("/k{i:02}/*")).collect();
        assert_eq!(v.paths, want);
    }

    #[test]
    fn unordered_array_kinds() {
        let mut r = json_rules();
        r.unordered_arrays = pats(&["/tags"]);
        let v = json(&r, r#"{"tags":[1,2]}"#, r#"{"tags":[2,3]}"#);
        assert_eq!(v.diffs, vec![d("/tags", DiffKind::Value)]);
        let v = json(&r, r#"{"tags":[1,2]}"#, r#"{"tags":[2]}"#);
        assert_eq!(v.diffs, vec![d("/tags", ArrayLength)]);
        // Nothing is reported inside an unordered array.
        let v = json(&r, r#"{"tags":[{"a":1}]}"#, r#"{"tags":[{"a":2}]}"#);
        assert_eq!(v.paths, vec!["/tags"]);
    }

    #[test]
    fn ignore_inside_unordered_array() {
        let mut r = json_rules();
        r.unordered_arrays = pats(&["/items", "/items/*/tags"]);
        r.ignore = pats(&["/items/*/etag", "/items/*/tags/*/at"]);
        let a = r#"{"items":[
            {"id":1,"etag":"a","tags":[{"t":"x","at":1},{"t":"y","at":2}]},
            {"id":2,"etag":"b","tags":[]}
        ]}"#;
        let b = r#"{"items":[
            {"id":2,"etag":"z","tags":[]},
            {"id":1,"tags":[{"t":"y","at":9},{"t":"x"}]}
        ]}"#;
        assert!(json(&r, a, b).is_match());
        let c = r#"{"items":[
            {"id":2,"etag":"z","tags":[]},
            {"id":1,"tags":[{"t":"y","at":9},{"t":"z"}]}
        ]}"#;
        assert_eq!(json(&r, a, c).diffs, vec![d("/items", DiffKind::Value)]);
        // Every element ignored: only the length could differ, and the
        // surplus is ignored too.
        let mut r = json_rules();
        r.unordered_arrays = pats(&["/l"]);
        r.ignore = pats(&["/l/*"]);
        assert!(json(&r, r#"{"l":[1,2,3]}"#, r#"{"l":[4]}"#).is_match());
    }

    #[test]
    fn tolerance_inside_nested_arrays() {
        let mut r = json_rules();
        r.numeric_tolerance = 0.01;
        let a = r#"{"m":[[1.0,2.0],[3.0,[400.0]]],"o":[{"p":[10,20]}]}"#;
        let b = r#"{"m":[[1.005,1.99],[3.02,[403.9]]],"o":[{"p":[10.09,19.9]}]}"#;
        assert!(json(&r, a, b).is_match(), "{:?}", json(&r, a, b));
        let c = r#"{"m":[[1.005,1.99],[3.02,[405]]],"o":[{"p":[10.2,19.9]}]}"#;
        let v = json(&r, a, c);
        assert_eq!(
            v.diffs,
            vec![
                d("/m/*/*/*", DiffKind::Value),
                d("/o/*/p/*", DiffKind::Value)
            ]
        );
        // Inside an unordered array too.
        r.unordered_arrays = pats(&["/u"]);
        assert!(json(&r, r#"{"u":[100,200]}"#, r#"{"u":[199,101]}"#).is_match());
        assert!(json(&r, r#"{"u":[100,200]}"#, r#"{"u":[199,103]}"#).body);
    }

    #[test]
    fn huge_numbers_kinds() {
        let r = json_rules();
        let max = u64::MAX.to_string();
        let v = json(
            &r,
            &format!(r#"{{"n":{max}}}"#),
            &format!(r#"{{"n":"{max}"}}"#),
        );
        assert_eq!(v.diffs, vec![d("/n", Type)]);
        let v = json(
            &r,
            &format!(r#"{{"n":{max}}}"#),
            r#"{"n":1.8446744073709552e19}"#,
        );
        // u64::MAX vs its nearest f64: compared as f64, equal.
        assert!(v.is_match(), "{v:?}");
        // An integer beyond 64 bits vs a float: as f64, equal.
        let v = json(
            &r,
            r#"{"n":123456789012345678901234567890}"#,
            r#"{"n":1.2345678901234568e29}"#,
        );
        assert!(v.is_match(), "{v:?}");
    }

    const BIG: &str = "123456789012345678901234567890";
    const BIG1: &str = "123456789012345678901234567891";
    /// Beyond i128.
    const HUGE: &str = "1234567890123456789012345678901234567890";
    const HUGE1: &str = "1234567890123456789012345678901234567891";

    #[test]
    fn big_integers_compare_exactly() {
        let r = json_rules();
        let doc = |id: &str| format!(r#"{{"id":{id},"name":"x"}}"#);
        assert!(json(&r, &doc(BIG), &doc(BIG)).is_match());
        assert_eq!(
            json(&r, &doc(BIG), &doc(BIG1)).diffs,
            vec![d("/id", DiffKind::Value)]
        );
        assert!(json(&r, &doc(HUGE), &doc(HUGE)).is_match());
        assert!(json(&r, &doc(HUGE), &doc(HUGE1)).body);
        // Negative, and of other lengths.
        let neg = |s: &str| format!("-{s}");
        assert!(json(&r, &doc(&neg(BIG)), &doc(&neg(BIG1))).body);
        assert!(json(&r, &doc(&neg(HUGE)), &doc(&neg(HUGE1))).body);
        assert!(json(&r, &doc(BIG), &doc(&neg(BIG))).body);
        assert!(json(&r, &doc(HUGE), &doc(&neg(HUGE))).body);
        assert!(json(&r, &doc(HUGE), &doc(&HUGE[1..])).body);
        assert!(json(&r, &doc(BIG), &doc(HUGE)).body);
        // Just past u64 (as f64, all three were equal) and around i128's ends.
        for (a, b) in [
            ("18446744073709551616", "18446744073709551617"),
            ("18446744073709551615", "18446744073709551616"),
            ("-9223372036854775809", "-9223372036854775808"),
            (
                "170141183460469231731687303715884105727",
                "170141183460469231731687303715884105728",
            ),
            (
                "-170141183460469231731687303715884105728",
                "-170141183460469231731687303715884105729",
            ),
        ] {
            assert!(json(&r, &doc(a), &doc(b)).body, "{a} {b}");
            assert!(json(&r, &doc(b), &doc(a)).body, "{a} {b}");
            assert!(json(&r, &format!("[{a},{b}]"), &format!("[{a} ,{b}]")).is_match());
        }
        // -0 is 0, as an integer and as a float.
        assert!(json(&r, "[0,-0,0]", "[-0,0,-0.0]").is_match());
    }

    #[test]
    fn big_integers_vs_floats() {
        let r = json_rules();
        // A fraction or exponent on either side: both as f64 (serde_json's
        // value), where the last digits are gone.
        for float in ["1.2345678901234568e29", "123456789012345678901234567890.0"] {
            assert!(json(&r, BIG, float).is_match(), "{float}");
            assert!(json(&r, BIG1, float).is_match(), "{float}");
            assert!(json(&r, &format!("-{BIG}"), float).body, "{float}");
        }
        assert!(json(&r, HUGE, "1.2345678901234568e39").is_match());
        assert!(json(&r, HUGE1, &format!("{HUGE}.0")).is_match());
        assert!(json(&r, HUGE, "1.23456789012346e39").body);
    }

    #[test]
    fn big_integers_with_tolerance() {
        let mut r = json_rules();
        r.numeric_tolerance = 0.01;
        assert!(json(&r, BIG, BIG1).is_match());
        assert!(json(&r, HUGE, HUGE1).is_match());
        assert!(json(&r, &format!("-{HUGE}"), &format!("-{HUGE1}")).is_match());
        assert!(json(&r, BIG, "124000000000000000000000000000").is_match());
        assert!(json(&r, BIG, "125000000000000000000000000000").body);
        assert!(json(&r, HUGE, "1240000000000000000000000000000000000000").is_match());
        assert!(json(&r, HUGE, "1250000000000000000000000000000000000000").body);
        assert!(json(&r, HUGE, &format!("-{HUGE}")).body);
        // One side within i128, the other beyond: as f64.
        assert!(json(
            &r,
            "170141183460469231731687303715884105727",
            "171000000000000000000000000000000000000"
        )
        .is_match());
        // Within i128 the difference is exact (as f64 all three are equal):
        // here up to 1.23.
        r.numeric_tolerance = 1e-29;
        assert!(json(&r, BIG, BIG1).is_match());
        assert!(json(&r, BIG, "123456789012345678901234567889").is_match());
        assert!(json(&r, BIG, "123456789012345678901234567892").body);
    }

    #[test]
    fn big_integers_in_unordered_arrays() {
        let mut r = json_rules();
        r.unordered_arrays = pats(&["/ids", "/objs"]);
        let ids = |list: &[&str]| format!(r#"{{"ids":[{}]}}"#, list.join(","));
        // The canonical form keeps every digit.
        assert!(json(&r, &ids(&[BIG, BIG1]), &ids(&[BIG1, BIG])).is_match());
        assert_eq!(
            json(&r, &ids(&[BIG, BIG]), &ids(&[BIG, BIG1])).diffs,
            vec![d("/ids", DiffKind::Value)]
        );
        assert!(json(&r, &ids(&[HUGE, HUGE1, "1"]), &ids(&["1.0", HUGE1, HUGE])).is_match());
        assert!(json(&r, &ids(&[HUGE, HUGE]), &ids(&[HUGE1, HUGE])).body);
        let neg = format!("-{HUGE}");
        assert!(json(&r, &ids(&[HUGE, &neg]), &ids(&[&neg, HUGE])).is_match());
        assert!(json(&r, &ids(&[HUGE, HUGE]), &ids(&[&neg, HUGE])).body);
        assert!(json(&r, &ids(&["0", "-0"]), &ids(&["-0.0", "0"])).is_match());
        let objs = |a: &str, b: &str| format!(r#"{{"objs":[{{"id":{a}}},{{"id":{b}}}]}}"#);
        assert!(json(&r, &objs(BIG, BIG1), &objs(BIG1, BIG)).is_match());
        assert!(json(&r, &objs(BIG, BIG), &objs(BIG1, BIG)).body);
        // An integer that is exactly an f64 pairs with that float; one that
        // is not pairs only with itself (equal, in order, to the float it
        // rounds to: that equality is not transitive).
        assert!(json(
            &r,
            &ids(&["18446744073709551616"]),
            &ids(&["1.8446744073709552e19"])
        )
        .is_match());
        assert!(json(
            &r,
            &ids(&["9007199254740992"]),
            &ids(&["9007199254740992.0"])
        )
        .is_match());
        assert!(
            json(
                &r,
                &ids(&["9007199254740993"]),
                &ids(&["9007199254740992.0"])
            )
            .body
        );
        assert!(json(&r, &ids(&[BIG]), &ids(&["1.2345678901234568e29"])).body);
        let mut ordered = json_rules();
        ordered.unordered_arrays.clear();
        assert!(json(&ordered, &ids(&[BIG]), &ids(&["1.2345678901234568e29"])).is_match());
        // With a tolerance (greedy pairing by the comparator itself).
        r.numeric_tolerance = 0.01;
        assert!(json(&r, &ids(&[BIG, HUGE]), &ids(&[HUGE1, BIG1])).is_match());
        assert!(json(&r, &ids(&[BIG, HUGE]), &ids(&[HUGE1, "2"])).body);
        r.numeric_tolerance = 1e-35;
        assert!(json(&r, &ids(&[BIG, HUGE]), &ids(&[HUGE, BIG])).is_match());
        assert!(json(&r, &ids(&[BIG, "1"]), &ids(&["1", BIG1])).body);
    }

    #[test]
    fn non_utf8_inside_json() {
        let r = json_rules();
        // Invalid UTF-8 inside a JSON string: not JSON, compared as bytes.
        let a: &[u8] = b"{\"a\":\"\xff\"}";
        let b: &[u8] = b"{ \"a\":\"\xff\"}";
        assert!(verdict(&r, &side(&[], a), &side(&[], a)).is_match());
        let v = verdict(&r, &side(&[], a), &side(&[], b));
        assert!(v.body && v.diffs.is_empty() && v.paths.is_empty());
        // Escaped non-ASCII is fine and compares by value.
        assert!(json(&r, r#"{"a":"\u00e9"}"#, r#"{"a":"é"}"#).is_match());
    }

    #[test]
    fn invalid_json_on_one_side() {
        let r = json_rules();
        for bad in ["{", "[1,]", "{\"a\":1}{}", "nul", "\u{0}"] {
            let v = json(&r, r#"{"a":1}"#, bad);
            assert!(v.body && v.diffs.is_empty(), "{bad}");
            let v = json(&r, bad, r#"{"a":1}"#);
            assert!(v.body && v.diffs.is_empty(), "{bad}");
        }
        // Trailing whitespace is still JSON.
        assert!(json(&r, "{\"a\":1}\n", r#"{"a":1.0}"#).is_match());
    }

    #[test]
    fn headers_non_utf8_and_multi_absent() {
        let mut r = rules(BodyMode::None);
        r.headers = vec!["x-b".into()];
        let bin = |v: &[u8]| vec![("x-b".to_string(), v.to_vec())];
        assert!(verdict(
            &r,
            &side(&bin(b"\xff\x00"), b""),
            &side(&bin(b"\xff\x00"), b"")
        )
        .is_match());
        assert!(!verdict(
            &r,
            &side(&bin(b"\xff\x00"), b""),
            &side(&bin(b"\xff\x01"), b"")
        )
        .headers
        .is_empty());
        // Two values on one side, absent on the other.
        let two = hdrs(&[("x-b", "1"), ("x-b", "2")]);
        assert!(!verdict(&r, &side(&two, b""), &side(&[], b""))
            .headers
            .is_empty());
        assert!(!verdict(&r, &side(&[], b""), &side(&two, b""))
            .headers
            .is_empty());
        // A comma-joined line is not the same as two lines.
        let joined = hdrs(&[("x-b", "1, 2")]);
        assert!(!verdict(&r, &side(&two, b""), &side(&joined, b""))
            .headers
            .is_empty());
        // Headers and body differences are independent.
        let v = verdict(&r, &side(&two, b"a"), &side(&two, b"b"));
        assert!(v.is_match());
    }

    fn ce(v: &str) -> Vec<(String, Vec<u8>)> {
        hdrs(&[
            ("content-type", "application/json"),
            ("content-encoding", v),
        ])
    }

    #[test]
    fn decoded_before_comparing() {
        use crate::decode::testutil::{gzip, zlib};
        let r = rules(BodyMode::Auto);
        let plain = hdrs(&[("content-type", "application/json")]);
        let a = br#"{"a":1,"b":[1,2]}"#;
        let b = br#"{"b":[1,2.0],"a":1}"#;
        let c = br#"{"b":[1,3],"a":1}"#;
        // gzip vs identity, gzip vs deflate, gzip vs stacked.
        assert!(verdict(&r, &side(&ce("gzip"), &gzip(a)), &side(&plain, b)).is_match());
        assert!(verdict(
            &r,
            &side(&ce("gzip"), &gzip(a)),
            &side(&ce("deflate"), &zlib(b))
        )
        .is_match());
        let stacked = zlib(&gzip(b));
        assert!(verdict(&r, &side(&ce("gzip, deflate"), &stacked), &side(&plain, a)).is_match());
        // Several content-encoding lines are one list.
        let lines = hdrs(&[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
            ("content-encoding", "deflate"),
        ]);
        assert!(verdict(&r, &side(&lines, &stacked), &side(&plain, a)).is_match());
        // Differences are found in decoded bodies.
        let v = verdict(
            &r,
            &side(&ce("gzip"), &gzip(a)),
            &side(&ce("x-gzip"), &gzip(c)),
        );
        assert_eq!(v.diffs, vec![d("/b/*", DiffKind::Value)]);
        // Bytes mode compares decoded bytes too.
        let r = rules(BodyMode::Bytes);
        assert!(verdict(&r, &side(&ce("gzip"), &gzip(a)), &side(&plain, a)).is_match());
        assert!(verdict(&r, &side(&ce("gzip"), &gzip(a)), &side(&plain, b)).body);
    }

    #[test]
    fn oversized_decoded_bodies() {
        use crate::decode::testutil::gzip;
        let mut r = rules(BodyMode::Auto);
        r.max_body_bytes = 100;
        let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(200));
        let other = format!(r#"{{"a":"{}"}}"#, "y".repeat(200));
        let (gbig, gother) = (gzip(big.as_bytes()), gzip(other.as_bytes()));
        assert!(gbig.len() < 100);
        let g = ce("gzip");
        assert_eq!(
            try_compare(&r, &side(&g, &gbig), &side(&g, &gother)),
            Err(BodyTooLarge)
        );
        // Only one side too large is enough.
        assert_eq!(
            try_compare(&r, &side(&g, &gbig), &side(&g, &gzip(b"{}"))),
            Err(BodyTooLarge)
        );
        // Identical bytes under the same coding: equal without decoding.
        assert!(try_compare(&r, &side(&g, &gbig), &side(&g, &gbig))
            .unwrap()
            .is_match());
        // Bodies not compared: nothing to decode.
        r.body = BodyMode::None;
        assert!(try_compare(&r, &side(&g, &gbig), &side(&g, &gother))
            .unwrap()
            .is_match());
        r.body = BodyMode::Auto;
        r.ignore = pats(&[""]);
        assert!(try_compare(&r, &side(&g, &gbig), &side(&g, &gother)).is_ok());
        r.ignore.clear();
        r.max_body_bytes = 1000;
        let v = try_compare(&r, &side(&g, &gbig), &side(&g, &gother)).unwrap();
        assert_eq!(v.diffs, vec![d("/a", DiffKind::Value)]);
    }
}
