//! gRPC answers for the JSON comparator: gRPC framing, and protobuf
//! messages rendered as JSON text, both sides together, schema-less or by a
//! descriptor set.
//!
//! ```text
//! split_frames(body, grpc_encoding, max) -> Result<Vec<Cow<[u8]>>, FrameError>
//! Schema::from_base64(text) / Schema::parse(bytes) -> Result<Schema, String>
//! Schema::output_of("/pkg.Svc/Method") -> Option<MessageRef>
//! Schema::message("pkg.Msg") -> Option<MessageRef>
//! render_pair(primary, dark, Option<(&Schema, MessageRef)>) -> Option<(String, String)>
//! ```
//!
//! Rather than a second comparator, both sides' messages are rendered as
//! JSON and compared by [`crate::compare`]'s JSON walk, with its `ignore`
//! and `unordered_arrays` pointers, tolerance, folded per-field counters
//! and examples. Several readings of the wire format are choices (is this
//! LEN a message or a string? one value or a list?), so both sides are
//! rendered *together*: a choice is made once, for both, and per location
//! in the tree (all the messages at `/items/*` on both sides), never per
//! message.
//!
//! # Framing
//!
//! A gRPC body is a sequence of messages, each prefixed by 5 bytes: a
//! compressed flag (0 or 1) and the length (4 bytes, big-endian). A message
//! flagged 1 is decompressed per the `grpc-encoding` header: `gzip` or
//! `deflate` (through [`crate::decode`]); under `identity`, no header, or
//! any other encoding it is [`FrameError::Malformed`] (an unflagged message
//! needs no encoding, whatever the header says). A truncated prefix or
//! message, a flag above 1 or invalid compressed data is `Malformed`; the
//! messages (decompressed) totalling more than `max` bytes is
//! [`FrameError::TooLarge`]. An empty body is no message.
//!
//! # Rendering rules (schema-less)
//!
//! - A message is a JSON object keyed by field number in decimal: `/4/1`
//!   is field 1 of the message in field 4. Occurrences of a number are
//!   grouped wherever they are on the wire; keys come in numeric order.
//! - Repeated: a field occurring more than once in any message at that
//!   location, on either side, is a JSON array in all of them (so `/3/*`
//!   addresses its elements, and 1 against 2 occurrences is an array length
//!   difference); a field occurring at most once everywhere is a single
//!   value. Without a schema a repeated field holding one element cannot be
//!   told from a singular one: it is a single value while no message there
//!   has two.
//! - Packed equals unpacked: when a field appears both length-delimited
//!   (LEN) and as one scalar wire type (varint, fixed64 or fixed32), each
//!   LEN occurrence is read as packed values of that type; when all read,
//!   the field is the list of all the values (an array). Otherwise each
//!   occurrence renders by its own wire type.
//! - Absent equals zero (proto3 leaves defaults out): a field absent from
//!   some message at that location, and at most once in each, is left out
//!   where its value is zero (varint 0, fixed 0, empty LEN). For one message
//!   on each side: absent on one side and zero on the other is no
//!   difference.
//! - Varint: an integer (unsigned 64 bits, exact: the comparator compares
//!   integers exactly). fixed64: a double when, in every message at that
//!   location, each non-zero fixed64 value of the field has exponent bits
//!   neither all 0 nor all 1 (a normal, finite double), else all are
//!   unsigned integers; fixed32 likewise as a float. Floats are written as
//!   the shortest decimal that reads back as the same double or float
//!   (`2.5`, `1.0`, `1e+300`; an f32 `10.5` or `0.1`, not the digits of its
//!   widened double). Deciding per location, not per value, keeps two
//!   different bit patterns from rendering as equal numbers (1 and 1.0).
//! - LEN, decided over all occurrences of the field at that location on both
//!   sides: a string when every non-empty occurrence is UTF-8 made only of
//!   printable characters (no control characters) — text is not mistaken
//!   for a message, at the price of reading as text a small message whose
//!   bytes all happen to be printable; else a message when every occurrence
//!   parses as one (rendered by the same rules, one level down, its
//!   location being all those occurrences); else a string when all are
//!   UTF-8; else bytes, as a base64 JSON string. An empty LEN follows the
//!   others (an empty message, string or bytes); all empty is `""`.
//! - Maps reordered are equal: a repeated field of messages holding only
//!   fields 1 (key) and 2 (value), each at most once, with no key twice in
//!   one message, is taken for a map: its elements are sorted by key (a
//!   number's value, a LEN's bytes). A repeated message field that merely
//!   looks like that loses its order.
//! - A message does not parse (groups, wire types 3, 4, 6, 7, field number 0
//!   or above 2^29 − 1, a truncated varint, length or value): as a field
//!   value it is not a message; at the top level [`render_pair`] returns
//!   `None` (the caller compares bytes).
//! - Messages nested deeper than `render::MAX_NESTING` (60) are not looked into (their
//!   bytes render as a string or bytes), which keeps the JSON within the
//!   parser's depth.
//! - Streams: one message on each side renders as that message's object.
//!   Otherwise each side is a JSON array of its messages (`/0/4/1`, folded
//!   `/*/4/1`; a different count is an array length difference at the root);
//!   no message on either side is `[]`.
//!
//! # With a schema
//!
//! Messages of a type the descriptor set declares render by it: keys are
//! field names (fields it does not declare still by number, by the rules
//! above, as is a field whose data does not fit its declaration: another
//! wire type, a string not UTF-8, a message that does not parse or is too
//! deep, a type missing from the set); values are typed: double and float
//! (NaN and infinities as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`),
//! int32/int64 (two's complement, signed), uint32/uint64, sint32/sint64
//! (zigzag), fixed and sfixed, bool (`true`/`false`), enum (the value's
//! name when declared, else its number), string, bytes (base64), message.
//! Repeated fields are always arrays, packed and unpacked alike. A map is
//! an object keyed by the key as a string (`"7"`, `"true"`, the string
//! itself), entries in the order of their keys (numbers by value, strings
//! by bytes), so entry order never matters; of a repeated key the last
//! entry counts; an entry's missing key or value is its type's default
//! (`null` where no entry at that location has one). A singular field
//! other than a message holding its zero value (0, false, the first enum
//! value, "", empty bytes) is left out on both sides, so absent equals
//! zero: explicit presence (proto2, proto3 `optional`) is not told apart.
//! A singular field given several times counts by its last occurrence
//! (messages are not merged).
//!
//! Output: valid JSON for [`crate::json::parse`], the same for the same
//! input, and linear in the input's size (base64, escapes and numbers cost a
//! bounded number of characters per byte).

// Not called by the filter yet: the comparator's gRPC mode will. Remove
// when it does, so that the wasm32 lint checks this module's dead code.

mod render;
mod schema;
#[cfg(test)]
mod tests;
mod wire;

use std::borrow::Cow;

use crate::decode::{self, DecodeError};
use crate::memeq::same_bytes;

#[cfg(test)]
use render::MAX_NESTING;
pub use schema::{MessageRef, Schema};

/// Why a gRPC body could not be split into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Not a sequence of gRPC messages (see the module doc).
    Malformed,
    /// The messages total more than `max` bytes.
    TooLarge,
}

/// The messages of a gRPC body, decompressed per `grpc_encoding` (the
/// `grpc-encoding` header's value), at most `max` bytes in total.
pub fn split_frames<'a>(
    body: &'a [u8],
    grpc_encoding: &[u8],
    max: usize,
) -> Result<Vec<Cow<'a, [u8]>>, FrameError> {
    let encoding = grpc_encoding.trim_ascii();
    let coding_known =
        encoding.eq_ignore_ascii_case(b"gzip") || encoding.eq_ignore_ascii_case(b"deflate");
    let mut rest = body;
    let mut messages = Vec::new();
    let mut total = 0usize;
    while let Some((prefix, after)) = rest.split_first_chunk::<5>() {
        let [flag, len @ ..] = *prefix;
        let len = u32::from_be_bytes(len) as usize;
        if after.len() < len {
            return Err(FrameError::Malformed);
        }
        let (data, next) = after.split_at(len);
        rest = next;
        let message = match flag {
            0 => Cow::Borrowed(data),
            1 if coding_known => match decode::decode(encoding, data, max.saturating_sub(total)) {
                Ok(m) => m,
                Err(DecodeError::TooLarge) => return Err(FrameError::TooLarge),
                Err(_) => return Err(FrameError::Malformed),
            },
            _ => return Err(FrameError::Malformed),
        };
        total += message.len();
        if total > max {
            return Err(FrameError::TooLarge);
        }
        messages.push(message);
    }
    if rest.is_empty() {
        Ok(messages)
    } else {
        Err(FrameError::Malformed)
    }
}

/// Both sides' messages as two JSON texts, rendered together (see the
/// module doc); messages of type `schema.1` when a schema is given. `None`
/// when a message of either side is not protobuf wire format.
pub fn render_pair(
    primary: &[Cow<[u8]>],
    dark: &[Cow<[u8]>],
    schema: Option<(&Schema, MessageRef)>,
) -> Option<(String, String)> {
    let mut pool = Vec::with_capacity(primary.len() + dark.len());
    for m in primary.iter().chain(dark) {
        pool.push(wire::parse(m)?);
    }
    // The pool of the plan: a dark message with the same bytes as the
    // primary one at its position is left out (render::Children).
    let mut all = Vec::new();
    let mut pool_len = 0;
    for (i, m) in pool.iter().enumerate() {
        let j = i.wrapping_sub(primary.len());
        if i >= primary.len()
            && primary
                .get(j)
                .zip(dark.get(j))
                .is_some_and(|(p, d)| same_bytes(p, d))
        {
            continue;
        }
        pool_len += 1;
        all.extend(m.iter().map(|&(n, v)| (n, i as u32, v)));
    }
    let schema_only = schema.map(|s| s.0);
    let split = primary.len() as u32;
    let mut plan = render::plan(schema_only, all, pool_len, split, 1, schema.map(|s| s.1 .0));
    let mut locations = 0;
    render::index_locations(&mut plan, &mut locations);
    let single = primary.len() == 1 && dark.len() == 1;
    let (a, b) = pool.split_at(primary.len().min(pool.len()));
    // What each side's text about takes: fewer reallocations.
    let size = |m: &[Cow<[u8]>]| m.iter().map(|m| m.len() + m.len() / 2).sum::<usize>() + 16;
    let mut w = render::Writer::new(size(primary), schema_only, locations);
    side(&mut w, primary, a, single, &plan);
    let mut w = w.second(size(dark));
    side(&mut w, dark, b, single, &plan);
    Some(w.texts())
}

/// One side's messages (their bytes, their fields): the message, or an
/// array of them.
fn side<'a>(
    w: &mut render::Writer<'a, '_>,
    bytes: &'a [Cow<[u8]>],
    messages: &[Vec<wire::Field<'a>>],
    single: bool,
    plan: &render::Plan,
) {
    if !single {
        w.out.push('[');
    }
    for (i, (m, bytes)) in messages.iter().zip(bytes).enumerate() {
        if i > 0 {
            w.out.push(',');
        }
        if !w.copy(plan.id(), bytes) {
            let start = w.out.len();
            render::message(w, m, plan);
            w.remember(plan.id(), bytes, start);
        }
    }
    if !single {
        w.out.push(']');
    }
}
