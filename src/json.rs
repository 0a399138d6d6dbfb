//! A strict RFC 8259 JSON parser into a flat tree that borrows the input.
//!
//! Built for the body comparator ([`crate::compare`]): one pass, one `Vec`
//! of fixed-size nodes, no allocation per string, key or number. Each node
//! remembers its exact text, so two subtrees with identical text can be
//! called equal without looking inside. Strings keep their escapes and are
//! decoded only when compared ([`Value::str_bytes`]); numbers are kept as
//! text and converted when asked ([`Value::number`], and for those written
//! as integers [`Value::integer`]).
//!
//! It accepts exactly what `serde_json::from_slice::<serde_json::Value>`
//! (serde_json 1.x, default features) accepts, and its numbers, strings and
//! objects mean what they mean there (checked against serde_json by the
//! tests):
//!
//! - whitespace is space, tab, CR and LF; anything but whitespace after the
//!   value is an error; so is empty input;
//! - at most [`MAX_DEPTH`] arrays and objects nested (serde_json's recursion
//!   limit);
//! - the whole input must be UTF-8 (checked inside strings: outside them
//!   only ASCII is valid JSON anyway); control characters (below U+0020)
//!   inside strings, unknown escapes and `\u` escapes naming an unpaired
//!   surrogate are errors;
//! - numbers follow the JSON grammar (no `+`, no leading zero, no `.5`, no
//!   `1.`); one that serde_json cannot hold (`1e400`, beyond f64) is an
//!   error. Integers that fit u64 (or, negative, i64) are integers, anything
//!   else an f64 computed with serde_json's own (not always correctly
//!   rounded) algorithm, so that both see the same value; `-0` is the float
//!   `-0.0`, as there ([`Value::number`]). Beyond that, a number written as
//!   an integer (no fraction, no exponent) also has its exact value, whatever
//!   its size ([`Value::integer`]), which serde_json (without
//!   `arbitrary_precision`) loses past 64 bits;
//! - an object may repeat a key: the last value counts (serde_json's map
//!   keeps the last insertion). [`Value::members`] yields every member in
//!   text order, duplicates included; [`sorted_keys`] gives the members that
//!   count, sorted by decoded key (the order of serde_json's `BTreeMap`).
//!
//! Inputs longer than `u32::MAX` bytes are refused (node offsets are `u32`);
//! bodies are far smaller (`max_body_bytes` is at most 16 MiB).

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::memeq::same_bytes;

/// Arrays and objects nested deeper than this are an error, as in
/// serde_json (whose recursion limit of 128 admits 127 levels).
pub const MAX_DEPTH: usize = 127;

/// The JSON type of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

/// Why a document was refused, and where (byte offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    pub offset: usize,
    pub reason: &'static str,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

impl std::error::Error for Error {}

/// One node of the flat tree, in document (pre-)order. A container's
/// children follow it: an array's elements one after the other, an object's
/// members as key node then value subtree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    kind: Kind,
    /// Bool: the value; String: contains a backslash escape; Number:
    /// written as an integer (no fraction, no exponent).
    flag: bool,
    /// The value's text, `start..end` (strings with their quotes).
    start: u32,
    end: u32,
    /// Index of the first node after this subtree (the next sibling).
    next: u32,
    /// Arrays: elements; objects: members (duplicates included).
    len: u32,
}

/// A parsed document: the input and its nodes. The root is node 0.
#[derive(Debug)]
pub struct Doc<'a> {
    /// Valid UTF-8 once parsed: strings are checked, and everything
    /// outside them is ASCII or a syntax error.
    text: &'a [u8],
    slots: Vec<Slot>,
    /// At least the deepest nesting of arrays and objects (0 for a
    /// scalar): [`parse_like`] may count a copied value as deep as its source.
    depth: usize,
}

/// Parse one JSON document (see the module doc for what is accepted).
pub fn parse(input: &[u8]) -> Result<Doc<'_>, Error> {
    parse_with(input, None)
}

/// [`parse`] `input`, taking from `like` (another document, typically the
/// other answer of a pair) every value whose text `input` repeats at the
/// same node: such a value is copied, nodes and all, instead of parsed.
/// The result is exactly [`parse`]'s, error included (a copied value is a
/// valid one, and the parser reads the same text the same way whatever
/// came before), but two similar answers cost about one parse instead of
/// two: a pair usually differs in a few fields.
pub fn parse_like<'a>(input: &'a [u8], like: &Doc<'_>) -> Result<Doc<'a>, Error> {
    parse_with(input, Some(like))
}

fn parse_with<'a>(input: &'a [u8], like: Option<&Doc<'_>>) -> Result<Doc<'a>, Error> {
    if u32::try_from(input.len()).is_err() {
        return Err(Error {
            offset: 0,
            reason: "document too large",
        });
    }
    // A rough guess: most values take several bytes.
    let mut slots = Vec::with_capacity(input.len() / 6 + 1);
    let depth = document(input, &mut slots, like)?;
    Ok(Doc {
        text: input,
        slots,
        depth,
    })
}

impl<'a> Doc<'a> {
    /// The root value.
    pub fn root(&self) -> Option<Value<'_>> {
        self.value(0)
    }

    /// The member whose key is node `key` (as given by [`sorted_keys`]):
    /// (key, value).
    pub fn member(&self, key: u32) -> Option<(Value<'_>, Value<'_>)> {
        let k = self.value(key)?;
        let v = self.value(key.checked_add(1)?)?;
        (k.kind() == Kind::String).then_some((k, v))
    }

    /// The value at node `id` (as given by [`Value::id`]).
    pub fn value(&self, id: u32) -> Option<Value<'_>> {
        let slot = *self.slots.get(id as usize)?;
        Some(Value {
            doc: self,
            id,
            slot,
        })
    }
}

/// A value inside a [`Doc`]: a cheap copyable handle.
#[derive(Clone, Copy)]
pub struct Value<'a> {
    doc: &'a Doc<'a>,
    id: u32,
    slot: Slot,
}

impl std::fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}@{}: {}", self.slot.kind, self.id, self.text())
    }
}

impl<'a> Value<'a> {
    pub fn kind(&self) -> Kind {
        self.slot.kind
    }

    /// The document this value belongs to.
    pub fn doc(&self) -> &'a Doc<'a> {
        self.doc
    }

    /// The node index, for [`Doc::value`].
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The value's exact text in the document (strings with their quotes).
    /// Equal text means equal values.
    #[inline]
    pub fn raw(&self) -> &'a [u8] {
        self.doc
            .text
            .get(self.slot.start as usize..self.slot.end as usize)
            .unwrap_or_default()
    }

    /// Whether two values (of any documents) have the same exact text, so
    /// the same value: [`same_bytes`] on their [`raw`](Self::raw) texts.
    #[inline]
    pub fn same_text(&self, other: &Value<'_>) -> bool {
        same_bytes(self.raw(), other.raw())
    }

    /// The value's exact text as a string (checked again: the document is
    /// UTF-8, but only the parser knows it).
    pub fn text(&self) -> &'a str {
        std::str::from_utf8(self.raw()).unwrap_or_default()
    }

    pub fn as_bool(&self) -> Option<bool> {
        (self.slot.kind == Kind::Bool).then_some(self.slot.flag)
    }

    /// Elements of an array or members of an object (duplicates included);
    /// 0 for anything else.
    pub fn len(&self) -> usize {
        self.slot.len as usize
    }

    #[cfg(any(test, feature = "fuzzing"))]
    pub fn is_empty(&self) -> bool {
        self.slot.len == 0
    }

    /// The elements of an array (nothing for other kinds).
    pub fn elements(&self) -> Elements<'a> {
        Elements {
            doc: self.doc,
            next: self.id.saturating_add(1),
            remaining: if self.slot.kind == Kind::Array {
                self.slot.len
            } else {
                0
            },
        }
    }

    /// The members of an object as (key, value), in text order, duplicate
    /// keys included (nothing for other kinds).
    pub fn members(&self) -> Members<'a> {
        Members {
            doc: self.doc,
            next: self.id.saturating_add(1),
            remaining: if self.slot.kind == Kind::Object {
                self.slot.len
            } else {
                0
            },
        }
    }

    /// True for a string containing a backslash escape.
    pub fn has_escapes(&self) -> bool {
        self.slot.kind == Kind::String && self.slot.flag
    }

    /// A string's text between the quotes, escapes not decoded (empty for
    /// other kinds).
    pub fn str_raw(&self) -> &'a str {
        std::str::from_utf8(self.str_raw_bytes()).unwrap_or_default()
    }

    /// [`str_raw`](Self::str_raw) as bytes, not checked again.
    fn str_raw_bytes(&self) -> &'a [u8] {
        if self.slot.kind != Kind::String {
            return b"";
        }
        let (start, end) = (self.slot.start as usize, self.slot.end as usize);
        self.doc
            .text
            .get(start.saturating_add(1)..end.saturating_sub(1))
            .unwrap_or_default()
    }

    /// A string's decoded UTF-8 bytes (nothing for other kinds).
    pub fn str_bytes(&self) -> Unescape<'a> {
        Unescape {
            rest: self.str_raw_bytes(),
            buf: [0; 4],
            buf_pos: 0,
            buf_len: 0,
        }
    }

    /// A string's decoded value: borrowed unless it has escapes.
    pub fn str(&self) -> Option<Cow<'a, str>> {
        if self.slot.kind != Kind::String {
            return None;
        }
        if !self.slot.flag {
            return Some(Cow::Borrowed(self.str_raw()));
        }
        let bytes: Vec<u8> = self.str_bytes().collect();
        Some(Cow::Owned(match String::from_utf8(bytes) {
            Ok(s) => s,
            // Not reachable: escapes decode to UTF-8 and the input is UTF-8.
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }))
    }

    /// Compare two strings (of any documents) by decoded value, in the
    /// order of Rust's `str` (bytes of UTF-8). Non-strings are empty.
    #[inline]
    pub fn str_cmp(&self, other: &Value<'_>) -> Ordering {
        if !self.has_escapes() && !other.has_escapes() {
            return self.str_raw_bytes().cmp(other.str_raw_bytes());
        }
        self.str_bytes().cmp(other.str_bytes())
    }

    /// Whether two strings (of any documents) have the same decoded value.
    #[inline]
    pub fn str_eq(&self, other: &Value<'_>) -> bool {
        if !self.has_escapes() && !other.has_escapes() {
            return self.same_text(other);
        }
        self.str_bytes().eq(other.str_bytes())
    }

    /// A number's value as serde_json sees it; `None` for other kinds.
    pub fn number(&self) -> Option<Number> {
        if self.slot.kind != Kind::Number {
            return None;
        }
        eval_number(self.raw())
    }

    /// The exact value of a number written as an integer (no fraction, no
    /// exponent), whatever its size; `None` for other numbers and kinds.
    #[inline]
    pub fn integer(&self) -> Option<Integer<'a>> {
        if self.slot.kind != Kind::Number || !self.slot.flag {
            return None;
        }
        eval_integer(self.raw())
    }
}

/// Iterator over the elements of an array.
#[derive(Clone)]
pub struct Elements<'a> {
    doc: &'a Doc<'a>,
    next: u32,
    remaining: u32,
}

impl<'a> Iterator for Elements<'a> {
    type Item = Value<'a>;

    #[inline]
    fn next(&mut self) -> Option<Value<'a>> {
        if self.remaining == 0 {
            return None;
        }
        let v = self.doc.value(self.next)?;
        self.remaining -= 1;
        self.next = v.slot.next;
        Some(v)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}

/// Iterator over the members of an object: (key, value).
#[derive(Clone)]
pub struct Members<'a> {
    doc: &'a Doc<'a>,
    next: u32,
    remaining: u32,
}

impl<'a> Iterator for Members<'a> {
    type Item = (Value<'a>, Value<'a>);

    #[inline]
    fn next(&mut self) -> Option<(Value<'a>, Value<'a>)> {
        if self.remaining == 0 {
            return None;
        }
        let key = self.doc.value(self.next)?;
        let value = self.doc.value(key.slot.next)?;
        self.remaining -= 1;
        self.next = value.slot.next;
        Some((key, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}

/// Append to `out` the node ids of the keys of `object` that count (the last
/// of each repeated key), sorted by decoded key: serde_json's map, in its
/// iteration order. The value of key `k` is node `k + 1`. Objects are
/// usually small; already sorted keys (a common serializer choice) are not
/// sorted again.
pub fn sorted_keys(object: &Value<'_>, out: &mut Vec<u32>) {
    let base = out.len();
    let mut sorted = true;
    let mut prev: Option<Value<'_>> = None;
    for (key, _) in object.members() {
        if let Some(p) = prev {
            sorted &= p.str_cmp(&key) == Ordering::Less;
        }
        out.push(key.id);
        prev = Some(key);
    }
    if sorted {
        return;
    }
    let doc = object.doc;
    let Some(keys) = out.get_mut(base..) else {
        return;
    };
    let cmp = |x: &u32, y: &u32| -> Ordering {
        match (doc.value(*x), doc.value(*y)) {
            (Some(a), Some(b)) => a.str_cmp(&b),
            _ => Ordering::Equal,
        }
    };
    // Ties (repeated keys) in text order, so the last one of a run counts.
    keys.sort_unstable_by(|x, y| cmp(x, y).then(x.cmp(y)));
    // Keep the last of each run of equal keys.
    let mut kept = 0;
    for i in 0..keys.len() {
        let (Some(&cur), next) = (keys.get(i), keys.get(i + 1)) else {
            break;
        };
        if next.is_some_and(|n| cmp(&cur, n) == Ordering::Equal) {
            continue;
        }
        if let Some(slot) = keys.get_mut(kept) {
            *slot = cur;
        }
        kept += 1;
    }
    out.truncate(base + kept);
}

/// The decoded bytes of a JSON string's contents (see [`Value::str_bytes`]).
#[derive(Clone)]
pub struct Unescape<'a> {
    rest: &'a [u8],
    buf: [u8; 4],
    buf_pos: u8,
    buf_len: u8,
}

impl Iterator for Unescape<'_> {
    type Item = u8;

    #[inline]
    fn next(&mut self) -> Option<u8> {
        if self.buf_pos < self.buf_len {
            let b = self.buf.get(usize::from(self.buf_pos)).copied();
            self.buf_pos += 1;
            return b;
        }
        let (&b, rest) = self.rest.split_first()?;
        if b != b'\\' {
            self.rest = rest;
            return Some(b);
        }
        self.escape()
    }
}

impl Unescape<'_> {
    /// Decode the escape at the start of `rest` (the parser validated it;
    /// anything unexpected ends the iteration).
    #[cold]
    fn escape(&mut self) -> Option<u8> {
        let (&c, rest) = self.rest.get(1..)?.split_first()?;
        self.rest = rest;
        let simple = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => return self.unicode(),
            _ => {
                self.rest = &[];
                return None;
            }
        };
        Some(simple)
    }

    fn unicode(&mut self) -> Option<u8> {
        let n = hex4(self.rest)?;
        self.rest = self.rest.get(4..)?;
        let code = if (0xD800..=0xDBFF).contains(&n) {
            // A leading surrogate: the parser checked that `\u` and a
            // trailing surrogate follow.
            let n2 = hex4(self.rest.get(2..)?)?;
            self.rest = self.rest.get(6..)?;
            ((u32::from(n) - 0xD800) << 10 | (u32::from(n2) - 0xDC00)) + 0x1_0000
        } else {
            u32::from(n)
        };
        let Some(ch) = char::from_u32(code) else {
            self.rest = &[];
            return None;
        };
        let len = ch.encode_utf8(&mut self.buf).len();
        self.buf_len = len as u8;
        self.buf_pos = 1;
        self.buf.first().copied()
    }
}

/// The value of four hex digits at the start of `s`.
#[inline]
fn hex4(s: &[u8]) -> Option<u16> {
    let digits = s.get(..4)?;
    let mut n: u16 = 0;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return None,
        };
        n = n << 4 | u16::from(v);
    }
    Some(n)
}

/// A container being parsed.
#[derive(Clone, Copy)]
struct Open {
    slot: u32,
    count: u32,
    object: bool,
}

fn error(offset: usize, reason: &'static str) -> Error {
    Error { offset, reason }
}

/// The first index at or after `pos` that is not whitespace.
#[inline(always)]
fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = bytes.get(pos) {
        pos += 1;
    }
    pos
}

/// A leaf node for `start..end`. Offsets fit u32: `parse` refuses longer
/// inputs.
#[inline(always)]
fn leaf(slots: &mut Vec<Slot>, kind: Kind, flag: bool, start: usize, end: usize) {
    let next = slots.len() as u32 + 1;
    slots.push(Slot {
        kind,
        flag,
        start: start as u32,
        end: end as u32,
        next,
        len: 0,
    });
}

/// Parse the whole input into `slots`: one value, then only whitespace.
/// Iterative: the open containers are a stack (`cur` the innermost, the
/// enclosing ones in `open`), at most [`MAX_DEPTH`] deep.
fn document(bytes: &[u8], slots: &mut Vec<Slot>, like: Option<&Doc<'_>>) -> Result<usize, Error> {
    let mut open: Vec<Open> = Vec::new();
    let mut deepest = 0;
    // `cur` is meaningful when `depth > 0`.
    let mut cur = Open {
        slot: 0,
        count: 0,
        object: false,
    };
    let mut depth = 0;
    let mut pos = 0;
    'value: loop {
        pos = skip_ws(bytes, pos);
        let start = pos;
        let Some(&b) = bytes.get(pos) else {
            return Err(error(pos, "EOF while parsing a value"));
        };
        let copied = like.and_then(|d| Some((copy_same(d, bytes, pos, depth, slots)?, d.depth)));
        if let Some((end, inner)) = copied {
            pos = end;
            deepest = deepest.max(depth + inner);
        } else {
            match b {
                b'"' => {
                    let (end, escaped) = string(bytes, pos)?;
                    pos = end;
                    leaf(slots, Kind::String, escaped, start, pos);
                }
                b'-' | b'0'..=b'9' => {
                    let integer;
                    (pos, integer) = number(bytes, pos)?;
                    leaf(slots, Kind::Number, integer, start, pos);
                }
                b'{' | b'[' => {
                    if depth >= MAX_DEPTH {
                        return Err(error(pos, "recursion limit exceeded"));
                    }
                    let object = b == b'{';
                    let slot = slots.len() as u32;
                    slots.push(Slot {
                        kind: if object { Kind::Object } else { Kind::Array },
                        flag: false,
                        start: start as u32,
                        end: start as u32,
                        next: slot,
                        len: 0,
                    });
                    pos = skip_ws(bytes, pos + 1);
                    let close = if object { b'}' } else { b']' };
                    if bytes.get(pos) == Some(&close) {
                        pos += 1;
                        finish(slots, slot, 0, pos);
                    } else {
                        if depth > 0 {
                            open.push(cur);
                        }
                        depth += 1;
                        deepest = deepest.max(depth);
                        cur = Open {
                            slot,
                            count: 0,
                            object,
                        };
                        if object {
                            pos = key(bytes, pos, slots)?;
                        }
                        continue 'value;
                    }
                }
                b't' => pos = literal(bytes, pos, b"true", slots, Kind::Bool, true)?,
                b'f' => pos = literal(bytes, pos, b"false", slots, Kind::Bool, false)?,
                b'n' => pos = literal(bytes, pos, b"null", slots, Kind::Null, false)?,
                _ => return Err(error(pos, "expected value")),
            }
        }
        // A value is complete: the next member, or the end of containers.
        while depth > 0 {
            let c = &mut cur;
            c.count += 1;
            pos = skip_ws(bytes, pos);
            match bytes.get(pos) {
                Some(b',') => {
                    pos += 1;
                    if c.object {
                        pos = key(bytes, skip_ws(bytes, pos), slots)?;
                    }
                    continue 'value;
                }
                Some(b']') if !c.object => {}
                Some(b'}') if c.object => {}
                Some(_) => return Err(error(pos, "expected ',' or end of container")),
                None => return Err(error(pos, "EOF while parsing a container")),
            }
            pos += 1;
            finish(slots, c.slot, c.count, pos);
            depth -= 1;
            if let Some(outer) = open.pop() {
                cur = outer;
            }
        }
        break;
    }
    pos = skip_ws(bytes, pos);
    if pos != bytes.len() {
        return Err(error(pos, "trailing characters"));
    }
    Ok(deepest)
}

/// When `bytes` at `pos` repeats the text of `like`'s node with the index
/// the next node of `slots` will have, copy that node's subtree into
/// `slots` (offsets moved to `pos`) and return the position after it.
///
/// Sound because a value's text decides its parse: a string, array or
/// object ends at its own closing character, so the same bytes parse the
/// same way; a number must not continue in `bytes` (`12` is not `123`);
/// `true`, `false` and `null` followed by anything else are an error either
/// way, at the same place. The nesting limit is kept: `like` nests at most
/// `like.depth` inside any of its values.
#[inline]
fn copy_same(
    like: &Doc<'_>,
    bytes: &[u8],
    pos: usize,
    depth: usize,
    slots: &mut Vec<Slot>,
) -> Option<usize> {
    let first = slots.len();
    let node = *like.slots.get(first)?;
    let text = like.text.get(node.start as usize..node.end as usize)?;
    let end = pos.checked_add(text.len())?;
    if !same_bytes(bytes.get(pos..end)?, text) || depth + like.depth > MAX_DEPTH {
        return None;
    }
    if node.kind == Kind::Number
        && matches!(
            bytes.get(end),
            Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
        )
    {
        return None;
    }
    let subtree = like.slots.get(first..node.next as usize)?;
    // Same index, so `next` (an index) stays; offsets move by pos - start.
    let (from, to) = (node.start, pos as u32);
    slots.extend(subtree.iter().map(|s| Slot {
        start: s.start - from + to,
        end: s.end - from + to,
        ..*s
    }));
    Some(end)
}

/// The container at `slot` ends at `end` (after its closing bracket).
fn finish(slots: &mut [Slot], slot: u32, count: u32, end: usize) {
    let next = slots.len() as u32;
    if let Some(s) = slots.get_mut(slot as usize) {
        s.end = end as u32;
        s.next = next;
        s.len = count;
    }
}

/// An object key at `pos` and its colon; returns the position after them.
#[inline(always)]
fn key(bytes: &[u8], pos: usize, slots: &mut Vec<Slot>) -> Result<usize, Error> {
    if bytes.get(pos) != Some(&b'"') {
        return Err(error(pos, "key must be a string"));
    }
    let (end, escaped) = string(bytes, pos)?;
    leaf(slots, Kind::String, escaped, pos, end);
    let colon = skip_ws(bytes, end);
    if bytes.get(colon) != Some(&b':') {
        return Err(error(colon, "expected ':'"));
    }
    Ok(colon + 1)
}

fn literal(
    bytes: &[u8],
    pos: usize,
    word: &[u8],
    slots: &mut Vec<Slot>,
    kind: Kind,
    flag: bool,
) -> Result<usize, Error> {
    let end = pos + word.len();
    if bytes.get(pos..end) != Some(word) {
        return Err(error(pos, "expected value"));
    }
    leaf(slots, kind, flag, pos, end);
    Ok(end)
}

/// A string whose opening quote is at `pos`: the position after its closing
/// quote, and whether it has escapes. Its text must be UTF-8, checked only
/// when a byte of it is not ASCII (escapes are ASCII).
#[inline(always)]
fn string(bytes: &[u8], pos: usize) -> Result<(usize, bool), Error> {
    let start = pos + 1;
    let mut pos = start;
    let mut escaped = false;
    let mut seen = 0;
    loop {
        pos = skip_plain(bytes, pos, &mut seen);
        match bytes.get(pos) {
            Some(b'"') => {
                if seen & HIGH_BITS != 0 {
                    utf8(bytes, start, pos)?;
                }
                return Ok((pos + 1, escaped));
            }
            Some(b'\\') => {
                escaped = true;
                pos = escape(bytes, pos)?;
            }
            Some(_) => return Err(error(pos, "control character in string")),
            None => return Err(error(pos, "EOF while parsing a string")),
        }
    }
}

/// `bytes[start..end]` (a string's text) must be UTF-8.
#[cold]
fn utf8(bytes: &[u8], start: usize, end: usize) -> Result<(), Error> {
    match std::str::from_utf8(bytes.get(start..end).unwrap_or_default()) {
        Ok(_) => Ok(()),
        Err(e) => Err(error(start + e.valid_up_to(), "invalid UTF-8")),
    }
}

/// The backslash escape at `pos`, validated as serde_json does for strings:
/// surrogates must come as a leading-trailing `\u` pair. Returns the
/// position after it.
fn escape(bytes: &[u8], pos: usize) -> Result<usize, Error> {
    let hex_at = |at: usize| {
        bytes
            .get(at..)
            .and_then(hex4)
            .ok_or_else(|| error(at, "invalid \\u escape"))
    };
    match bytes.get(pos + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(pos + 2),
        Some(b'u') => {
            let n = hex_at(pos + 2)?;
            let pos = pos + 6;
            match n {
                0xDC00..=0xDFFF => Err(error(pos, "lone surrogate in \\u escape")),
                0xD800..=0xDBFF => {
                    if bytes.get(pos..pos + 2) != Some(b"\\u") {
                        return Err(error(pos, "unpaired surrogate in \\u escape"));
                    }
                    let n2 = hex_at(pos + 2)?;
                    if !(0xDC00..=0xDFFF).contains(&n2) {
                        return Err(error(pos, "unpaired surrogate in \\u escape"));
                    }
                    Ok(pos + 6)
                }
                _ => Ok(pos),
            }
        }
        Some(_) => Err(error(pos, "invalid escape")),
        None => Err(error(pos, "EOF while parsing a string")),
    }
}

/// The first index at or after `pos` that is not an ASCII digit.
#[inline(always)]
fn digits(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(b'0'..=b'9') = bytes.get(pos) {
        pos += 1;
    }
    pos
}

/// A number per the JSON grammar at `pos`; returns the position after it
/// and whether it is written as an integer (no fraction, no exponent). Only
/// a number with an exponent or more than 19 integer digits can be out of
/// serde_json's range; those are evaluated now, the others when compared.
fn number(bytes: &[u8], start: usize) -> Result<(usize, bool), Error> {
    let invalid = |at| Err(error(at, "invalid number"));
    let mut pos = start;
    if bytes.get(pos) == Some(&b'-') {
        pos += 1;
    }
    let int_start = pos;
    match bytes.get(pos) {
        Some(b'0') => {
            pos += 1;
            if let Some(b'0'..=b'9') = bytes.get(pos) {
                return invalid(pos);
            }
        }
        Some(b'1'..=b'9') => pos = digits(bytes, pos + 1),
        _ => return invalid(pos),
    }
    let int_digits = pos - int_start;
    let mut fraction = false;
    if bytes.get(pos) == Some(&b'.') {
        fraction = true;
        pos += 1;
        if !matches!(bytes.get(pos), Some(b'0'..=b'9')) {
            return invalid(pos);
        }
        pos = digits(bytes, pos);
    }
    let mut exponent = false;
    if let Some(b'e' | b'E') = bytes.get(pos) {
        exponent = true;
        pos += 1;
        if let Some(b'+' | b'-') = bytes.get(pos) {
            pos += 1;
        }
        if !matches!(bytes.get(pos), Some(b'0'..=b'9')) {
            return invalid(pos);
        }
        pos = digits(bytes, pos);
    }
    if exponent || int_digits > 19 {
        let text = bytes.get(start..pos).unwrap_or_default();
        if eval_number(text).is_none() {
            return Err(error(start, "number out of range"));
        }
    }
    Ok((pos, !fraction && !exponent))
}

/// Each byte's high bit: set in a word where some byte is not ASCII.
const HIGH_BITS: u64 = (u64::MAX / 255) << 7;

/// The first index at or after `pos` holding `"`, `\` or a control
/// character (or the end), eight bytes at a time. Every byte read is or-ed
/// into `seen` (a few past the stop too), so that `seen & HIGH_BITS == 0`
/// says the skipped text is ASCII.
#[inline(always)]
fn skip_plain(bytes: &[u8], mut pos: usize, seen: &mut u64) -> usize {
    const ONES: u64 = u64::MAX / 255;
    while let Some((chunk, _)) = bytes.get(pos..).and_then(<[u8]>::split_first_chunk::<8>) {
        let w = u64::from_le_bytes(*chunk);
        *seen |= w;
        let ctrl = w.wrapping_sub(ONES * 0x20) & !w;
        let q = w ^ (ONES * u64::from(b'"'));
        let quote = q.wrapping_sub(ONES) & !q;
        let bs = w ^ (ONES * u64::from(b'\\'));
        let backslash = bs.wrapping_sub(ONES) & !bs;
        let hit = (ctrl | quote | backslash) & HIGH_BITS;
        if hit != 0 {
            return pos + (hit.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    while let Some(&b) = bytes.get(pos) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        *seen |= u64::from(b);
        pos += 1;
    }
    pos
}

/// A JSON number as serde_json (1.x, default features, so without
/// `arbitrary_precision`) holds it in a `serde_json::Number`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// A non-negative integer that fits u64.
    U64(u64),
    /// A negative integer that fits i64.
    I64(i64),
    /// Anything else (fraction, exponent, too large an integer, `-0`).
    F64(f64),
}

impl Number {
    /// Like `serde_json::Number::as_f64`.
    pub fn as_f64(self) -> f64 {
        match self {
            Number::U64(u) => u as f64,
            Number::I64(i) => i as f64,
            Number::F64(f) => f,
        }
    }
}

/// The exact value of a number written as an integer (no fraction, no
/// exponent), whatever its size. `==` is numeric equality: `-0` is
/// `Small(0)`, and since JSON allows no leading zeros and a `Big` is never
/// zero, a `Big`'s sign and digits are its normalised decimal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integer<'a> {
    /// Fits i128 (every integer of up to 38 digits, some of 39).
    Small(i128),
    /// Beyond i128 (so never equal to a `Small`): the sign, and the digits
    /// as written.
    Big { negative: bool, digits: &'a [u8] },
}

/// The exact value of an integer's text (`-`? then digits, without leading
/// zeros, as the JSON grammar has it); `None` for any other text (a
/// fraction, an exponent, not a number).
pub fn eval_integer(text: &[u8]) -> Option<Integer<'_>> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    match digits {
        [b'0'] => return Some(Integer::Small(0)),
        [b'1'..=b'9', rest @ ..] if rest.iter().all(u8::is_ascii_digit) => {}
        _ => return None,
    }
    let magnitude = if digits.len() <= 19 {
        // The common case, in u64: 19 digits are below 10^19 < 2^64.
        let mut m: u64 = 0;
        for &d in digits {
            m = m * 10 + u64::from(d - b'0');
        }
        Some(u128::from(m))
    } else if digits.len() <= 39 {
        digits.iter().try_fold(0u128, |m, &d| {
            m.checked_mul(10)?.checked_add(u128::from(d - b'0'))
        })
    } else {
        None
    };
    let small = magnitude.and_then(|m| {
        if negative {
            0i128.checked_sub_unsigned(m)
        } else {
            i128::try_from(m).ok()
        }
    });
    Some(match small {
        Some(i) => Integer::Small(i),
        None => Integer::Big { negative, digits },
    })
}

/// The value of a number's text (which follows the JSON grammar), computed
/// exactly as serde_json's `Deserializer::parse_integer` and its helpers do
/// without the `float_roundtrip` feature: the significand accumulates in a
/// u64, digits past its capacity only shift the exponent, and the result is
/// `significand × 10^exponent` in f64 arithmetic (one multiplication or
/// division, so not always the nearest f64). `None` where serde_json reports
/// "number out of range" (or for text that is not a number). Ported from
/// serde_json 1.0.154 (`src/de.rs`, MIT OR Apache-2.0), state for state.
pub fn eval_number(text: &[u8]) -> Option<Number> {
    let mut r = NumberReader { s: text, pos: 0 };
    let positive = if r.peek() == Some(b'-') {
        r.pos += 1;
        false
    } else {
        true
    };
    match r.peek()? {
        b'0' => {
            r.pos += 1;
            if let Some(b'0'..=b'9') = r.peek() {
                return None;
            }
            r.after_integer(positive, 0)
        }
        c @ b'1'..=b'9' => {
            r.pos += 1;
            let mut significand = u64::from(c - b'0');
            loop {
                match r.peek() {
                    Some(c @ b'0'..=b'9') => {
                        let digit = u64::from(c - b'0');
                        if overflows_u64(significand, digit) {
                            return r.long_integer(positive, significand).map(Number::F64);
                        }
                        r.pos += 1;
                        significand = significand * 10 + digit;
                    }
                    _ => return r.after_integer(positive, significand),
                }
            }
        }
        _ => None,
    }
}

/// `a * 10 + b` would exceed u64::MAX (serde_json's `overflow!`).
#[inline]
fn overflows_u64(a: u64, b: u64) -> bool {
    a >= u64::MAX / 10 && (a > u64::MAX / 10 || b > u64::MAX % 10)
}

fn overflows_i32(a: i32, b: i32) -> bool {
    a >= i32::MAX / 10 && (a > i32::MAX / 10 || b > i32::MAX % 10)
}

struct NumberReader<'a> {
    s: &'a [u8],
    pos: usize,
}

impl NumberReader<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    /// serde_json's `parse_number`.
    fn after_integer(&mut self, positive: bool, significand: u64) -> Option<Number> {
        Some(match self.peek() {
            Some(b'.') => Number::F64(self.decimal(positive, significand, 0)?),
            Some(b'e' | b'E') => Number::F64(self.exponent(positive, significand, 0)?),
            _ if positive => Number::U64(significand),
            _ => {
                let neg = (significand as i64).wrapping_neg();
                // A float on i64 underflow, and for `-0`.
                if neg >= 0 {
                    Number::F64(-(significand as f64))
                } else {
                    Number::I64(neg)
                }
            }
        })
    }

    /// serde_json's `parse_decimal` (at the `.`).
    fn decimal(&mut self, positive: bool, mut significand: u64, before: i32) -> Option<f64> {
        self.pos += 1;
        let mut after: i32 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            let digit = u64::from(c - b'0');
            if overflows_u64(significand, digit) {
                return self.decimal_overflow(positive, significand, before.saturating_add(after));
            }
            self.pos += 1;
            significand = significand * 10 + digit;
            after = after.saturating_sub(1);
        }
        if after == 0 {
            return None;
        }
        let exponent = before.saturating_add(after);
        match self.peek() {
            Some(b'e' | b'E') => self.exponent(positive, significand, exponent),
            _ => f64_from_parts(positive, significand, exponent),
        }
    }

    /// serde_json's `parse_exponent` (at the `e`).
    fn exponent(&mut self, positive: bool, significand: u64, starting: i32) -> Option<f64> {
        self.pos += 1;
        let positive_exp = match self.peek() {
            Some(b'+') => {
                self.pos += 1;
                true
            }
            Some(b'-') => {
                self.pos += 1;
                false
            }
            _ => true,
        };
        let mut exp = match self.peek() {
            Some(c @ b'0'..=b'9') => i32::from(c - b'0'),
            _ => return None,
        };
        self.pos += 1;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            self.pos += 1;
            let digit = i32::from(c - b'0');
            if overflows_i32(exp, digit) {
                // serde_json's `parse_exponent_overflow`: an error instead
                // of infinity, zero for a tiny number.
                if significand != 0 && positive_exp {
                    return None;
                }
                self.skip_digits();
                return Some(if positive { 0.0 } else { -0.0 });
            }
            exp = exp * 10 + digit;
        }
        let exponent = if positive_exp {
            starting.saturating_add(exp)
        } else {
            starting.saturating_sub(exp)
        };
        f64_from_parts(positive, significand, exponent)
    }

    /// serde_json's `parse_long_integer`: more integer digits than a u64
    /// holds; each further digit multiplies by ten.
    fn long_integer(&mut self, positive: bool, significand: u64) -> Option<f64> {
        let mut exponent: i32 = 0;
        loop {
            match self.peek() {
                Some(b'0'..=b'9') => {
                    self.pos += 1;
                    exponent = exponent.saturating_add(1);
                }
                Some(b'.') => return self.decimal(positive, significand, exponent),
                Some(b'e' | b'E') => return self.exponent(positive, significand, exponent),
                _ => return f64_from_parts(positive, significand, exponent),
            }
        }
    }

    /// serde_json's `parse_decimal_overflow`: further fraction digits are
    /// ignored.
    fn decimal_overflow(&mut self, positive: bool, significand: u64, exponent: i32) -> Option<f64> {
        self.skip_digits();
        match self.peek() {
            Some(b'e' | b'E') => self.exponent(positive, significand, exponent),
            _ => f64_from_parts(positive, significand, exponent),
        }
    }
}

/// serde_json's `f64_from_parts` (without `float_roundtrip`).
fn f64_from_parts(positive: bool, significand: u64, mut exponent: i32) -> Option<f64> {
    let mut f = significand as f64;
    loop {
        match POW10.get(exponent.wrapping_abs() as usize) {
            Some(&pow) => {
                if exponent >= 0 {
                    f *= pow;
                    if f.is_infinite() {
                        return None;
                    }
                } else {
                    f /= pow;
                }
                break;
            }
            None => {
                if f == 0.0 {
                    break;
                }
                if exponent >= 0 {
                    return None;
                }
                f /= 1e308;
                exponent += 308;
            }
        }
    }
    Some(if positive { f } else { -f })
}

/// Powers of ten as f64 literals (correctly rounded), as in serde_json.
static POW10: [f64; 309] = [
    1e000, 1e001, 1e002, 1e003, 1e004, 1e005, 1e006, 1e007, 1e008, 1e009, //
    1e010, 1e011, 1e012, 1e013, 1e014, 1e015, 1e016, 1e017, 1e018, 1e019, //
    1e020, 1e021, 1e022, 1e023, 1e024, 1e025, 1e026, 1e027, 1e028, 1e029, //
    1e030, 1e031, 1e032, 1e033, 1e034, 1e035, 1e036, 1e037, 1e038, 1e039, //
    1e040, 1e041, 1e042, 1e043, 1e044, 1e045, 1e046, 1e047, 1e048, 1e049, //
    1e050, 1e051, 1e052, 1e053, 1e054, 1e055, 1e056, 1e057, 1e058, 1e059, //
    1e060, 1e061, 1e062, 1e063, 1e064, 1e065, 1e066, 1e067, 1e068, 1e069, //
    1e070, 1e071, 1e072, 1e073, 1e074, 1e075, 1e076, 1e077, 1e078, 1e079, //
    1e080, 1e081, 1e082, 1e083, 1e084, 1e085, 1e086, 1e087, 1e088, 1e089, //
    1e090, 1e091, 1e092, 1e093, 1e094, 1e095, 1e096, 1e097, 1e098, 1e099, //
    1e100, 1e101, 1e102, 1e103, 1e104, 1e105, 1e106, 1e107, 1e108, 1e109, //
    1e110, 1e111, 1e112, 1e113, 1e114, 1e115, 1e116, 1e117, 1e118, 1e119, //
    1e120, 1e121, 1e122, 1e123, 1e124, 1e125, 1e126, 1e127, 1e128, 1e129, //
    1e130, 1e131, 1e132, 1e133, 1e134, 1e135, 1e136, 1e137, 1e138, 1e139, //
    1e140, 1e141, 1e142, 1e143, 1e144, 1e145, 1e146, 1e147, 1e148, 1e149, //
    1e150, 1e151, 1e152, 1e153, 1e154, 1e155, 1e156, 1e157, 1e158, 1e159, //
    1e160, 1e161, 1e162, 1e163, 1e164, 1e165, 1e166, 1e167, 1e168, 1e169, //
    1e170, 1e171, 1e172, 1e173, 1e174, 1e175, 1e176, 1e177, 1e178, 1e179, //
    1e180, 1e181, 1e182, 1e183, 1e184, 1e185, 1e186, 1e187, 1e188, 1e189, //
    1e190, 1e191, 1e192, 1e193, 1e194, 1e195, 1e196, 1e197, 1e198, 1e199, //
    1e200, 1e201, 1e202, 1e203, 1e204, 1e205, 1e206, 1e207, 1e208, 1e209, //
    1e210, 1e211, 1e212, 1e213, 1e214, 1e215, 1e216, 1e217, 1e218, 1e219, //
    1e220, 1e221, 1e222, 1e223, 1e224, 1e225, 1e226, 1e227, 1e228, 1e229, //
    1e230, 1e231, 1e232, 1e233, 1e234, 1e235, 1e236, 1e237, 1e238, 1e239, //
    1e240, 1e241, 1e242, 1e243, 1e244, 1e245, 1e246, 1e247, 1e248, 1e249, //
    1e250, 1e251, 1e252, 1e253, 1e254, 1e255, 1e256, 1e257, 1e258, 1e259, //
    1e260, 1e261, 1e262, 1e263, 1e264, 1e265, 1e266, 1e267, 1e268, 1e269, //
    1e270, 1e271, 1e272, 1e273, 1e274, 1e275, 1e276, 1e277, 1e278, 1e279, //
    1e280, 1e281, 1e282, 1e283, 1e284, 1e285, 1e286, 1e287, 1e288, 1e289, //
    1e290, 1e291, 1e292, 1e293, 1e294, 1e295, 1e296, 1e297, 1e298, 1e299, //
    1e300, 1e301, 1e302, 1e303, 1e304, 1e305, 1e306, 1e307, 1e308,
];

#[cfg(test)]
pub(crate) mod tests;
