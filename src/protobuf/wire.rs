//! The protobuf wire format, read without a schema, and the small text
//! helpers rendering needs (JSON strings, base64).

/// Wire types.
pub const VARINT: u8 = 0;
pub const I64: u8 = 1;
pub const LEN: u8 = 2;
pub const I32: u8 = 5;

/// The largest field number (2^29 - 1).
const MAX_FIELD: u64 = (1 << 29) - 1;

/// One field value as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Val<'a> {
    Varint(u64),
    I64(u64),
    Len(&'a [u8]),
    I32(u32),
}

impl Val<'_> {
    pub fn wire(self) -> u8 {
        match self {
            Val::Varint(_) => VARINT,
            Val::I64(_) => I64,
            Val::Len(_) => LEN,
            Val::I32(_) => I32,
        }
    }

    /// The zero value of its wire type: 0, all bits 0, empty.
    pub fn is_zero(self) -> bool {
        match self {
            Val::Varint(v) | Val::I64(v) => v == 0,
            Val::I32(v) => v == 0,
            Val::Len(b) => b.is_empty(),
        }
    }
}

/// A field: its number and value.
pub type Field<'a> = (u32, Val<'a>);

/// Read a varint (at most 10 bytes, no bits beyond 64) from the front of `buf`.
#[inline(always)]
pub fn varint(buf: &mut &[u8]) -> Option<u64> {
    // Most varints (tags, lengths, small numbers) are one byte.
    if let Some((&b, rest)) = buf.split_first() {
        if b < 0x80 {
            *buf = rest;
            return Some(b.into());
        }
    }
    let mut value = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        if i == 9 && b > 1 {
            return None;
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some(value);
        }
    }
    None
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Some(head)
}

/// One value of wire type `wire` from the front of `buf` (not a group).
#[inline(always)]
fn value<'a>(buf: &mut &'a [u8], wire: u8) -> Option<Val<'a>> {
    Some(match wire {
        VARINT => Val::Varint(varint(buf)?),
        I64 => Val::I64(u64::from_le_bytes(take(buf, 8)?.try_into().ok()?)),
        I32 => Val::I32(u32::from_le_bytes(take(buf, 4)?.try_into().ok()?)),
        LEN => {
            let n = usize::try_from(varint(buf)?).ok()?;
            Val::Len(take(buf, n)?)
        }
        _ => return None,
    })
}

/// The field at the front of `buf` (see [`parse`]).
#[inline(always)]
pub fn field<'a>(buf: &mut &'a [u8]) -> Option<Field<'a>> {
    let tag = varint(buf)?;
    let number = tag >> 3;
    if number == 0 || number > MAX_FIELD {
        return None;
    }
    Some((number as u32, value(buf, (tag & 7) as u8)?))
}

/// The fields of a message, stably sorted by number (occurrences of one
/// number keep their wire order); `None` when `buf` is not a message: a
/// truncated value, a group (wire types 3 and 4) or an unknown wire type,
/// field number 0 or beyond 2^29 - 1.
pub fn parse(buf: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut fields = Vec::with_capacity(room(buf.len()));
    parse_into(buf, &mut fields).then_some(fields)
}

/// Room for the fields of `bytes` bytes of messages, reserved up front: a
/// field takes a few bytes; bounded, as bytes that turn out not to be
/// messages (large text, binary) need none.
pub fn room(bytes: usize) -> usize {
    (bytes / 8 + 1).min(1024)
}

/// [`parse`] into `fields` (emptied first, reused by the caller); false
/// when `buf` is not a message.
pub fn parse_into<'a>(mut buf: &'a [u8], fields: &mut Vec<Field<'a>>) -> bool {
    fields.clear();
    while !buf.is_empty() {
        match field(&mut buf) {
            Some(f) => fields.push(f),
            None => return false,
        }
    }
    if fields.windows(2).any(|w| matches!(w, [a, b] if a.0 > b.0)) {
        let order = order(fields.len(), &|i, j| number(fields, i) <= number(fields, j));
        *fields = gather(fields, &order);
    }
    true
}

fn number(fields: &[Field], i: usize) -> u32 {
    fields.get(i).map_or(0, |f| f.0)
}

/// The indices `0..n` in stable order by `le` (i sorts before j, or with
/// it): a bottom-up merge sort through a `dyn` comparator. The module has
/// this one sort, not a standard sort instantiated per element type and
/// comparison (kilobytes each).
pub fn order(n: usize, le: &dyn Fn(usize, usize) -> bool) -> Vec<usize> {
    let mut a: Vec<usize> = (0..n).collect();
    let mut b = a.clone();
    let mut width = 1;
    while width < n {
        for (out, run) in b.chunks_mut(2 * width).zip(a.chunks(2 * width)) {
            let (left, right) = run.split_at(width.min(run.len()));
            let (mut l, mut r) = (left.iter().peekable(), right.iter().peekable());
            for slot in out.iter_mut() {
                *slot = match (l.peek(), r.peek()) {
                    (Some(&&x), Some(&&y)) if !le(x, y) => {
                        r.next();
                        y
                    }
                    (Some(&&x), _) => {
                        l.next();
                        x
                    }
                    (None, Some(&&y)) => {
                        r.next();
                        y
                    }
                    (None, None) => 0,
                };
            }
        }
        std::mem::swap(&mut a, &mut b);
        width = width.saturating_mul(2);
    }
    a
}

/// `items` in `order`.
pub fn gather<T: Copy>(items: &[T], order: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    for &i in order {
        if let Some(&item) = items.get(i) {
            out.push(item);
        }
    }
    out
}

/// Call `each` with the values packed in `data`, each of wire type `wire`
/// (varint or fixed); false when `data` is not a whole number of them.
pub fn packed<'a>(mut data: &'a [u8], wire: u8, each: &mut dyn FnMut(Val<'a>)) -> bool {
    if wire == LEN {
        return false;
    }
    while !data.is_empty() {
        match value(&mut data, wire) {
            Some(v) => each(v),
            None => return false,
        }
    }
    true
}

/// UTF-8 made only of printable characters: no control character (Unicode
/// category Cc, as `char::is_control`: U+0000 to U+001F, U+007F to U+009F).
pub fn printable(b: &[u8]) -> bool {
    // Printable ASCII, the common case, is all of it; the first control
    // byte ends the scan (a message's first tag byte mostly is one).
    let mut at = words_while(b, |x| {
        (x.wrapping_sub(ONES * 0x20) | x.wrapping_add(ONES) | x) & HIGH == 0
    });
    while let Some(&c) = b.get(at) {
        match c {
            0x20..=0x7e => at += 1,
            0x80.. => {
                return std::str::from_utf8(b).is_ok_and(|s| !s.chars().any(char::is_control))
            }
            _ => return false,
        }
    }
    true
}

/// 0x01 and 0x80 in every byte of a word.
const ONES: u64 = u64::from_le_bytes([1; 8]);
const HIGH: u64 = ONES * 0x80;

/// The length of the prefix of `b` made of 8-byte words (little-endian)
/// that pass `ok`: text is scanned a word at a time, then byte by byte from
/// the first word that may not pass. In the tests below a byte's high bit
/// is set where it is out of range (exact for "some byte is").
#[inline(always)]
fn words_while(b: &[u8], ok: impl Fn(u64) -> bool) -> usize {
    let mut at = 0;
    for word in b.chunks_exact(8) {
        match <[u8; 8]>::try_from(word) {
            Ok(word) if ok(u64::from_le_bytes(word)) => at += 8,
            _ => break,
        }
    }
    at
}

/// Append `s` as a JSON string.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    // Most text needs no escape: skipped a word at a time (no byte below
    // 0x20, none equal to '"' or '\\'), copied at once.
    let zero = |y: u64| y.wrapping_sub(ONES) & !y;
    let mut i = words_while(bytes, |x| {
        ((x.wrapping_sub(ONES * 0x20) & !x) | zero(x ^ (ONES * 0x22)) | zero(x ^ (ONES * 0x5c)))
            & HIGH
            == 0
    });
    let mut start = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            out.push_str(s.get(start..i).unwrap_or_default());
            out.push('\\');
            if b < 0x20 {
                out.push_str("u00");
                out.push(char::from(b'0' + (b >> 4)));
                out.push(char::from(
                    HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0'),
                ));
            } else {
                out.push(char::from(b));
            }
            start = i + 1;
        }
        i += 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Append an integer.
pub fn json_u64(out: &mut String, mut v: u64) {
    // Digits from the last; a u64 has at most 20.
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    for slot in digits.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        at -= 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &d in digits.get(at..).unwrap_or_default() {
        out.push(char::from(d));
    }
}

pub fn json_i64(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    json_u64(out, v.unsigned_abs());
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Append `data` as a JSON string holding its base64 (standard alphabet,
/// padded).
pub fn json_base64(out: &mut String, data: &[u8]) {
    out.push('"');
    let sym = |v: u32| char::from(B64.get((v & 63) as usize).copied().unwrap_or(b'A'));
    for chunk in data.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = b(0) << 16 | b(1) << 8 | b(2);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        out.push(if chunk.len() > 1 { sym(n >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { sym(n) } else { '=' });
    }
    out.push('"');
}

/// Decode base64 (standard or URL-safe alphabet, padding optional, ASCII
/// whitespace ignored).
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    let mut padding = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => {
                padding += 1;
                continue;
            }
            c if c.is_ascii_whitespace() => continue,
            _ => return None,
        };
        if padding > 0 {
            return None;
        }
        acc = (acc << 6 | u32::from(v)) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // Leftover bits must be padding bits, never a lone symbol's 6.
    (bits < 6 && padding <= 2).then_some(out)
}

/// Append `v` as a JSON number: the shortest decimal that reads back as
/// `v` (`2.5`, `1.0`, `1e300`, `1.5e-7`: never a huge integer text). `v`
/// must be finite.
pub fn json_f64(out: &mut String, v: f64) {
    // serde_json's shortest float formatting (zmij), already in the module
    // (core's `Display` for floats would add kilobytes), called directly.
    if v.is_finite() {
        out.push_str(zmij::Buffer::new().format_finite(v));
    }
}

/// [`json_f64`] for an `f32`: the shortest decimal that reads back as the
/// `f32` (10.5, 0.1), not the digits of its widened `f64`.
pub fn json_f32(out: &mut String, v: f32) {
    if v.is_finite() {
        out.push_str(zmij::Buffer::new().format_finite(v));
    } else {
        out.push_str("null");
    }
}
