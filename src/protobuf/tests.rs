//! The rendering rules one by one (schema-less, then with the descriptor
//! set of `testdata/shop.proto`), framing, properties over random messages,
//! and prost as an independent encoder (oracle).

use std::borrow::Cow;

use proptest::prelude::*;

use super::wire::{self, I32, I64, LEN, VARINT};
use super::*;
use crate::compare::{try_compare, BodyMode, CompareRules, DiffKind, Side};
use crate::decode::testutil::{gzip, zlib};
use crate::json;

// ---------------------------------------------------------------- encoding

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(n: u32, wire: u8) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, u64::from(n) << 3 | u64::from(wire));
    out
}

/// Field `n` as a varint.
fn v(n: u32, value: u64) -> Vec<u8> {
    let mut out = tag(n, VARINT);
    put_varint(&mut out, value);
    out
}

/// Field `n` as fixed64.
fn f64b(n: u32, bits: u64) -> Vec<u8> {
    let mut out = tag(n, I64);
    out.extend_from_slice(&bits.to_le_bytes());
    out
}

/// Field `n` as fixed32.
fn f32b(n: u32, bits: u32) -> Vec<u8> {
    let mut out = tag(n, I32);
    out.extend_from_slice(&bits.to_le_bytes());
    out
}

/// Field `n` length-delimited.
fn l(n: u32, data: &[u8]) -> Vec<u8> {
    let mut out = tag(n, LEN);
    put_varint(&mut out, data.len() as u64);
    out.extend_from_slice(data);
    out
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// Varints packed.
fn packed(values: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    for &x in values {
        put_varint(&mut out, x);
    }
    out
}

/// A gRPC frame.
fn frame(flag: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

// ---------------------------------------------------------------- helpers

fn cows(messages: &[&[u8]]) -> Vec<Cow<'static, [u8]>> {
    messages.iter().map(|m| Cow::Owned(m.to_vec())).collect()
}

/// Render streams, checking the invariants every rendering must keep: both
/// texts parse as JSON, and each side renders alone against itself the same
/// way as it does against itself twice (determinism).
fn render_streams(
    a: &[&[u8]],
    b: &[&[u8]],
    schema: Option<(&Schema, MessageRef)>,
) -> Option<(String, String)> {
    let out = render_pair(&cows(a), &cows(b), schema);
    if let Some((x, y)) = &out {
        json::parse(x.as_bytes()).unwrap_or_else(|e| panic!("{e}: {x}"));
        json::parse(y.as_bytes()).unwrap_or_else(|e| panic!("{e}: {y}"));
        // Symmetric: swapping the sides swaps the texts. (The second side
        // copies the first side's text of the messages they share: its
        // text is also the one it has written first.)
        let swapped = render_pair(&cows(b), &cows(a), schema).unwrap();
        assert_eq!((&swapped.1, &swapped.0), (x, y), "not symmetric");
    }
    out
}

fn pair(a: &[u8], b: &[u8]) -> (String, String) {
    render_streams(&[a], &[b], None).expect("both parse")
}

/// One message rendered against itself.
fn one(a: &[u8]) -> String {
    let (x, y) = pair(a, a);
    assert_eq!(x, y);
    x
}

/// The comparator's differences between two JSON texts (JSON mode, default
/// rules): (folded pointer, kind).
fn diffs(a: &str, b: &str) -> Vec<(String, DiffKind)> {
    let rules = CompareRules {
        body: BodyMode::Json,
        ..CompareRules::default()
    };
    let side = |body: &'static [u8]| Side {
        status: 200,
        headers: &[],
        body,
    };
    let (a, b): (&'static str, &'static str) = (a.to_string().leak(), b.to_string().leak());
    let v = try_compare(&rules, &side(a.as_bytes()), &side(b.as_bytes())).unwrap();
    v.diffs.into_iter().map(|d| (d.pointer, d.kind)).collect()
}

fn d(pointer: &str, kind: DiffKind) -> (String, DiffKind) {
    (pointer.to_string(), kind)
}

// ---------------------------------------------------------------- framing

#[test]
fn frames_split() {
    assert_eq!(split_frames(b"", b"", 100), Ok(vec![]));
    let body = cat(&[frame(0, b"ab"), frame(0, b""), frame(0, b"xyz")]);
    assert_eq!(
        split_frames(&body, b"", 100).unwrap(),
        vec![&b"ab"[..], b"", b"xyz"]
    );
    // An unflagged message needs no known encoding.
    assert!(split_frames(&body, b"snappy", 100).is_ok());
}

#[test]
fn frames_malformed() {
    let ok = frame(0, b"abc");
    for bad in [
        &ok[..3],                            // truncated prefix
        &ok[..7],                            // truncated message
        &cat(&[ok.clone(), vec![0, 0]])[..], // trailing bytes
        &frame(2, b"abc")[..],               // flag 2
        &frame(0x80, b"")[..],               // flag 128
    ] {
        assert_eq!(
            split_frames(bad, b"gzip", 100),
            Err(FrameError::Malformed),
            "{bad:?}"
        );
    }
    // Flag 1 needs gzip or deflate.
    let z = frame(1, &gzip(b"hello"));
    for encoding in [&b""[..], b"identity", b"snappy", b"gzip, br", b"br"] {
        assert_eq!(split_frames(&z, encoding, 100), Err(FrameError::Malformed));
    }
    // Invalid compressed data.
    assert_eq!(
        split_frames(&frame(1, b"not gzip"), b"gzip", 100),
        Err(FrameError::Malformed)
    );
}

#[test]
fn frames_compressed() {
    let body = cat(&[frame(1, &gzip(b"hello")), frame(0, b"plain")]);
    assert_eq!(
        split_frames(&body, b" GZIP ", 100).unwrap(),
        vec![&b"hello"[..], b"plain"]
    );
    let body = frame(1, &zlib(b"deflated"));
    assert_eq!(
        split_frames(&body, b"deflate", 100).unwrap(),
        vec![&b"deflated"[..]]
    );
}

#[test]
fn frames_too_large() {
    let big = vec![7u8; 1000];
    // One compressed message beyond max.
    assert_eq!(
        split_frames(&frame(1, &gzip(&big)), b"gzip", 999),
        Err(FrameError::TooLarge)
    );
    assert!(split_frames(&frame(1, &gzip(&big)), b"gzip", 1000).is_ok());
    // The total counts, uncompressed messages included.
    let body = cat(&[frame(0, &big[..600]), frame(1, &gzip(&big[..600]))]);
    assert_eq!(
        split_frames(&body, b"gzip", 1199),
        Err(FrameError::TooLarge)
    );
    assert_eq!(split_frames(&body, b"gzip", 1200).unwrap().len(), 2);
    let body = cat(&[frame(0, &big[..600]), frame(0, &big[..600])]);
    assert_eq!(split_frames(&body, b"", 1199), Err(FrameError::TooLarge));
}

// ---------------------------------------------------------------- schema-less

#[test]
fn keys_are_numbers_in_order() {
    let m = cat(&[l(4, &v(1, 5)), l(2, b"x"), v(1, 7)]);
    assert_eq!(one(&m), r#"{"1":7,"2":"x","4":{"1":5}}"#);
    // Grouped wherever they are on the wire.
    let a = cat(&[v(1, 1), l(2, b"a"), v(1, 2)]);
    let b = cat(&[l(2, b"a"), v(1, 1), v(1, 2)]);
    let (x, y) = pair(&a, &b);
    assert_eq!(x, r#"{"1":[1,2],"2":"a"}"#);
    assert_eq!(x, y);
    // The order within one number counts.
    let c = cat(&[v(1, 2), l(2, b"a"), v(1, 1)]);
    assert_eq!(
        diffs(&pair(&a, &c).0, &pair(&a, &c).1),
        [d("/1/*", DiffKind::Value)]
    );
}

#[test]
fn keys_in_order_across_messages() {
    // A location's occurrences are grouped by a counting sort over small
    // numbers, by a merge sort when a number is far beyond their count.
    for big in [9, 70_000, (1 << 29) - 1] {
        let a = cat(&[v(big, 1), v(3, 2), v(1, 3), v(3, 4)]);
        let b = cat(&[v(3, 5), v(big, 6), v(1, 7)]);
        let (x, y) = render_streams(&[&a, &b], &[&b], None).unwrap();
        let want = format!(r#"[{{"1":3,"3":[2,4],"{big}":1}},{{"1":7,"3":[5],"{big}":6}}]"#);
        assert_eq!(x, want);
        assert_eq!(y, format!(r#"[{{"1":7,"3":[5],"{big}":6}}]"#));
        // Nested: the same at a location one level down.
        let (x, _) = pair(&cat(&[l(2, &a), l(2, &b)]), &l(2, &b));
        assert_eq!(
            x,
            format!(r#"{{"2":[{{"1":3,"3":[2,4],"{big}":1}},{{"1":7,"3":[5],"{big}":6}}]}}"#)
        );
    }
}

#[test]
fn repeated_on_either_side_is_an_array_on_both() {
    let a = l(3, b"x");
    let b = cat(&[l(3, b"x"), l(3, b"y")]);
    let (x, y) = pair(&a, &b);
    assert_eq!(
        (x.as_str(), y.as_str()),
        (r#"{"3":["x"]}"#, r#"{"3":["x","y"]}"#)
    );
    assert_eq!(diffs(&x, &y), [d("/3", DiffKind::ArrayLength)]);
    // Once on both sides: a single value.
    let (x, y) = pair(&a, &l(3, b"z"));
    assert_eq!((x.as_str(), y.as_str()), (r#"{"3":"x"}"#, r#"{"3":"z"}"#));
    assert_eq!(diffs(&x, &y), [d("/3", DiffKind::Value)]);
}

#[test]
fn packed_equals_unpacked() {
    let unpacked = cat(&[v(5, 1), v(5, 300), v(1, 9), v(5, 2)]);
    let one_chunk = cat(&[v(1, 9), l(5, &packed(&[1, 300, 2]))]);
    let two_chunks = cat(&[l(5, &packed(&[1])), v(1, 9), l(5, &packed(&[300, 2]))]);
    let mixed = cat(&[l(5, &packed(&[1, 300])), v(5, 2), v(1, 9)]);
    for other in [&one_chunk, &two_chunks, &mixed] {
        let (x, y) = pair(&unpacked, other);
        assert_eq!(x, r#"{"1":9,"5":[1,300,2]}"#);
        assert_eq!(x, y);
    }
    // Within one side, against anything.
    let (x, _) = pair(&mixed, &v(1, 9));
    assert_eq!(x, r#"{"1":9,"5":[1,300,2]}"#);
    // One element, packed against unpacked.
    assert_eq!(
        pair(&l(5, &packed(&[7])), &v(5, 7)),
        (r#"{"5":[7]}"#.into(), r#"{"5":[7]}"#.into())
    );
    // Fixed-width.
    let bits = [2.5f64.to_bits(), 0, (-1.0f64).to_bits()];
    let unpacked: Vec<u8> = cat(&bits.map(|b| f64b(2, b)));
    let packed64: Vec<u8> = l(
        2,
        &bits
            .iter()
            .flat_map(|b| b.to_le_bytes())
            .collect::<Vec<_>>(),
    );
    assert_eq!(pair(&unpacked, &packed64).1, r#"{"2":[2.5,0,-1.0]}"#);
    let bits = [10.5f32.to_bits(), 1];
    let unpacked: Vec<u8> = cat(&bits.map(|b| f32b(2, b)));
    let packed32: Vec<u8> = l(
        2,
        &bits
            .iter()
            .flat_map(|b| b.to_le_bytes())
            .collect::<Vec<_>>(),
    );
    // 1 is not a normal float: the field is integers.
    assert_eq!(
        pair(&unpacked, &packed32).1,
        format!(r#"{{"2":[{},1]}}"#, bits[0])
    );
}

#[test]
fn not_packed_renders_by_wire_type() {
    // 3 bytes are no whole number of fixed32 values.
    let (x, y) = pair(&l(5, b"abc"), &f32b(5, 7));
    assert_eq!((x.as_str(), y.as_str()), (r#"{"5":"abc"}"#, r#"{"5":7}"#));
    assert_eq!(diffs(&x, &y), [d("/5", DiffKind::Type)]);
    // Two scalar wire types: no packing either.
    let (x, _) = pair(&cat(&[v(5, 1), l(5, &packed(&[2]))]), &f32b(5, 7));
    assert_eq!(x, r#"{"5":[1,"\u0002"]}"#);
}

#[test]
fn absent_equals_zero() {
    for zero in [v(1, 0), f64b(1, 0), f32b(1, 0), l(1, b"")] {
        let with = cat(&[zero.clone(), v(2, 5)]);
        assert_eq!(
            pair(&with, &v(2, 5)),
            (r#"{"2":5}"#.into(), r#"{"2":5}"#.into())
        );
        // Present on both sides: kept, equal.
        let (x, y) = pair(&with, &with);
        assert!(x.starts_with(r#"{"1":"#), "{x}");
        assert_eq!(x, y);
    }
    // Zero against a value is a difference.
    let (x, y) = pair(&v(1, 0), &v(1, 3));
    assert_eq!(diffs(&x, &y), [d("/1", DiffKind::Value)]);
    // Not when repeated.
    let (x, y) = pair(&cat(&[v(1, 0), v(1, 0)]), &v(2, 1));
    assert_eq!((x.as_str(), y.as_str()), (r#"{"1":[0,0]}"#, r#"{"2":1}"#));
    // Nested: the rule holds one level down, in the message rendered together.
    let (x, y) = pair(&l(4, &cat(&[v(1, 0), v(2, 1)])), &l(4, &v(2, 1)));
    assert_eq!(
        (x.as_str(), y.as_str()),
        (r#"{"4":{"2":1}}"#, r#"{"4":{"2":1}}"#)
    );
}

#[test]
fn varints_are_exact() {
    assert_eq!(one(&v(1, u64::MAX)), r#"{"1":18446744073709551615}"#);
    let (x, y) = pair(&v(1, u64::MAX), &v(1, u64::MAX - 1));
    assert_eq!(diffs(&x, &y), [d("/1", DiffKind::Value)]);
}

#[test]
fn fixed64_as_double_or_integer() {
    assert_eq!(one(&f64b(1, 2.5f64.to_bits())), r#"{"1":2.5}"#);
    assert_eq!(one(&f64b(1, (-0.125f64).to_bits())), r#"{"1":-0.125}"#);
    assert_eq!(one(&f64b(1, 1e300f64.to_bits())), r#"{"1":1e+300}"#);
    assert_eq!(one(&f64b(1, 1.5e-7f64.to_bits())), r#"{"1":1.5e-7}"#);
    assert_eq!(one(&f64b(1, 12345.678f64.to_bits())), r#"{"1":12345.678}"#);
    // Exponent bits all 0 (small integers, subnormals, -0) or all 1 (NaN,
    // infinities): integers.
    for bits in [
        1,
        42,
        1u64 << 63,
        f64::NAN.to_bits(),
        f64::INFINITY.to_bits(),
    ] {
        assert_eq!(one(&f64b(1, bits)), format!(r#"{{"1":{bits}}}"#));
    }
    // Per location: 1.0 on one side and the integer 1 on the other are two
    // integers, not equal numbers.
    let (x, y) = pair(&f64b(1, 1.0f64.to_bits()), &f64b(1, 1));
    assert_eq!(
        (x.as_str(), y.as_str()),
        (r#"{"1":4607182418800017408}"#, r#"{"1":1}"#)
    );
    assert_eq!(diffs(&x, &y), [d("/1", DiffKind::Value)]);
}

#[test]
fn fixed32_as_float_or_integer() {
    assert_eq!(one(&f32b(1, 10.5f32.to_bits())), r#"{"1":10.5}"#);
    assert_eq!(one(&f32b(1, 0.1f32.to_bits())), r#"{"1":0.1}"#);
    assert_eq!(one(&f32b(1, 3.4e38f32.to_bits())), r#"{"1":3.4e+38}"#);
    assert_eq!(one(&f32b(1, 7)), r#"{"1":7}"#);
    assert_eq!(
        one(&f32b(1, f32::NAN.to_bits())),
        format!(r#"{{"1":{}}}"#, f32::NAN.to_bits())
    );
    // Close floats stay different.
    let (x, y) = pair(&f32b(1, 0.1f32.to_bits()), &f32b(1, 0.1f32.to_bits() + 1));
    assert_eq!(diffs(&x, &y), [d("/1", DiffKind::Value)]);
}

#[test]
fn len_message_string_or_bytes() {
    // A message.
    assert_eq!(
        one(&l(1, &cat(&[v(1, 1), l(2, b"hi")]))),
        r#"{"1":{"1":1,"2":"hi"}}"#
    );
    // Text that is not a message.
    assert_eq!(one(&l(1, b"hello")), r#"{"1":"hello"}"#);
    // Printable text that parses as a message (field 4 = 65) stays text.
    assert_eq!(one(&l(1, b" A")), r#"{"1":" A"}"#);
    // Not a message, not UTF-8: base64.
    assert_eq!(one(&l(1, &[0xff, 0xfe, 0x80])), r#"{"1":"//6A"}"#);
    // UTF-8 with control characters, not a message: a string, escaped.
    assert_eq!(one(&l(1, b"\x07\"\\")), r#"{"1":"\u0007\"\\"}"#);
    // Jointly: a message on one side, text on the other: both strings.
    let (x, y) = pair(&l(1, &v(1, 1)), &l(1, b"hello"));
    assert_eq!(
        (x.as_str(), y.as_str()),
        (r#"{"1":"\u0008\u0001"}"#, r#"{"1":"hello"}"#)
    );
    // A message on one side, non-UTF-8 on the other: both bytes.
    let (x, y) = pair(&l(1, &v(1, 1)), &l(1, &[0xff]));
    assert_eq!(
        (x.as_str(), y.as_str()),
        (r#"{"1":"CAE="}"#, r#"{"1":"/w=="}"#)
    );
    // Messages nested in messages are rendered together too.
    let a = l(1, &l(2, &cat(&[v(1, 1), v(1, 2)])));
    let b = l(1, &l(2, &v(1, 1)));
    let (x, y) = pair(&a, &b);
    assert_eq!(
        (x.as_str(), y.as_str()),
        (r#"{"1":{"2":{"1":[1,2]}}}"#, r#"{"1":{"2":{"1":[1]}}}"#)
    );
    assert_eq!(diffs(&x, &y), [d("/1/2/1", DiffKind::ArrayLength)]);
}

#[test]
fn empty_len_follows_the_others() {
    let (x, y) = pair(&l(3, b""), &l(3, &v(1, 1)));
    assert_eq!(
        (x.as_str(), y.as_str()),
        (r#"{"3":{}}"#, r#"{"3":{"1":1}}"#)
    );
    let (x, y) = pair(&l(3, b""), &l(3, b"hello"));
    assert_eq!(
        (x.as_str(), y.as_str()),
        (r#"{"3":""}"#, r#"{"3":"hello"}"#)
    );
    let (x, y) = pair(&l(3, b""), &l(3, &[0xff]));
    assert_eq!((x.as_str(), y.as_str()), (r#"{"3":""}"#, r#"{"3":"/w=="}"#));
    assert_eq!(one(&l(3, b"")), r#"{"3":""}"#);
}

fn entry(key: &[u8], value: u64) -> Vec<u8> {
    cat(&[l(1, key), v(2, value)])
}

#[test]
fn maps_reordered_are_equal() {
    let a = cat(&[
        l(7, &entry(b"b", 2)),
        l(7, &entry(b"a", 1)),
        l(7, &entry(b"c", 3)),
    ]);
    let b = cat(&[
        l(7, &entry(b"c", 3)),
        l(7, &entry(b"a", 1)),
        l(7, &entry(b"b", 2)),
    ]);
    let (x, y) = pair(&a, &b);
    assert_eq!(
        x,
        r#"{"7":[{"1":"a","2":1},{"1":"b","2":2},{"1":"c","2":3}]}"#
    );
    assert_eq!(x, y);
    // Integer keys; an entry without its key has key 0.
    let int_entry = |k: u64, val: u64| cat(&[v(1, k), v(2, val)]);
    let a = cat(&[
        l(7, &int_entry(300, 1)),
        l(7, &v(2, 5)),
        l(7, &int_entry(2, 1)),
    ]);
    let b = cat(&[
        l(7, &int_entry(2, 1)),
        l(7, &int_entry(300, 1)),
        l(7, &v(2, 5)),
    ]);
    let (x, y) = pair(&a, &b);
    assert_eq!(x, y);
    // A different value is found at the entry's value.
    let a = cat(&[
        l(7, &entry(b"b", 2)),
        l(7, &entry(b"a", 1)),
        l(7, &entry(b"c", 3)),
    ]);
    let c = cat(&[
        l(7, &entry(b"a", 1)),
        l(7, &entry(b"b", 9)),
        l(7, &entry(b"c", 3)),
    ]);
    let (x, y) = pair(&a, &c);
    assert_eq!(diffs(&x, &y), [d("/7/*/2", DiffKind::Value)]);
}

#[test]
fn not_maps_keep_their_order() {
    // A key twice.
    let a = cat(&[
        l(7, &entry(b"b", 2)),
        l(7, &entry(b"a", 1)),
        l(7, &entry(b"a", 3)),
    ]);
    assert_eq!(
        one(&a),
        r#"{"7":[{"1":"b","2":2},{"1":"a","2":1},{"1":"a","2":3}]}"#
    );
    // A third field.
    let a = cat(&[
        l(7, &cat(&[entry(b"b", 2), v(3, 1)])),
        l(7, &entry(b"a", 1)),
    ]);
    assert_eq!(one(&a), r#"{"7":[{"1":"b","2":2,"3":1},{"1":"a","2":1}]}"#);
    // A key twice on the second side only, in entries the same as the first
    // side's (which the plan takes for both): not a map, wire order.
    let a = cat(&[l(7, &entry(b"b", 2)), l(7, &entry(b"a", 1))]);
    let twice = [
        (
            cat(&[l(7, &entry(b"b", 2)), l(7, &entry(b"b", 2))]),
            r#"[{"1":"b","2":2},{"1":"b","2":2}]"#,
        ),
        (
            cat(&[l(7, &entry(b"b", 2)), l(7, &entry(b"b", 5))]),
            r#"[{"1":"b","2":2},{"1":"b","2":5}]"#,
        ),
        (
            cat(&[
                l(7, &entry(b"b", 2)),
                l(7, &entry(b"a", 1)),
                l(7, &entry(b"a", 1)),
            ]),
            r#"[{"1":"b","2":2},{"1":"a","2":1},{"1":"a","2":1}]"#,
        ),
    ];
    let a_wire = r#"[{"1":"b","2":2},{"1":"a","2":1}]"#;
    for (b, b_wire) in twice {
        assert_eq!(
            pair(&a, &b),
            (
                format!(r#"{{"7":{a_wire}}}"#),
                format!(r#"{{"7":{b_wire}}}"#)
            )
        );
        let (x, y) = render_streams(&[&a, &a], &[&a, &b], None).unwrap();
        assert_eq!(x, format!(r#"[{{"7":{a_wire}}},{{"7":{a_wire}}}]"#));
        assert_eq!(y, format!(r#"[{{"7":{a_wire}}},{{"7":{b_wire}}}]"#));
        let (x, y) = pair(&l(3, &a), &l(3, &b));
        assert_eq!(
            (x, y),
            (
                format!(r#"{{"3":{{"7":{a_wire}}}}}"#),
                format!(r#"{{"3":{{"7":{b_wire}}}}}"#)
            )
        );
    }
    // The same entries on both sides, a message reordered: a map.
    let b = cat(&[l(7, &entry(b"a", 1)), l(7, &entry(b"b", 2))]);
    let (x, y) = render_streams(&[&a, &a], &[&a, &b], None).unwrap();
    let sorted = r#"{"7":[{"1":"a","2":1},{"1":"b","2":2}]}"#;
    assert_eq!((x.clone(), y), (format!("[{sorted},{sorted}]"), x));
}

#[test]
fn invalid_messages() {
    let too_big = cat(&[tag(1 << 29, VARINT), vec![1]]);
    let bad: [&[u8]; 8] = [
        &[0x0b, 0x0c],       // group start/end (field 1)
        &[0x0e, 0],          // wire type 6
        &[0x00, 0x01],       // field 0
        &[0x08],             // missing varint
        &[0x08, 0x80],       // truncated varint
        &[0x0a, 0x05, b'a'], // truncated length
        &too_big[..],        // field number 2^29
        &[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        ], // varint beyond 64 bits
    ];
    for m in bad {
        assert_eq!(render_streams(&[m], &[b""], None), None, "{m:?}");
        assert_eq!(render_streams(&[b""], &[m], None), None, "{m:?}");
        // As a field value it is not a message.
        let wrapped = l(1, m);
        assert!(one(&wrapped).starts_with(r#"{"1":""#), "{}", one(&wrapped));
    }
    // The largest field number and a 10-byte varint are fine.
    assert_eq!(
        one(&v((1 << 29) - 1, u64::MAX)),
        r#"{"536870911":18446744073709551615}"#
    );
    // An empty message is an empty object.
    assert_eq!(one(b""), "{}");
}

#[test]
fn streams() {
    let m1 = v(1, 1);
    let m2 = v(1, 2);
    // One on each side: the object.
    assert_eq!(
        render_streams(&[&m1], &[&m2], None).unwrap().0,
        r#"{"1":1}"#
    );
    // Otherwise arrays of messages.
    let (x, y) = render_streams(&[&m1, &m2], &[&m1], None).unwrap();
    assert_eq!(
        (x.as_str(), y.as_str()),
        (r#"[{"1":1},{"1":2}]"#, r#"[{"1":1}]"#)
    );
    assert_eq!(diffs(&x, &y), [d("", DiffKind::ArrayLength)]);
    let (x, y) = render_streams(&[&m1, &m2], &[&m1, &l(4, &v(1, 3))], None).unwrap();
    assert_eq!(
        diffs(&x, &y),
        [d("/*/1", DiffKind::Missing), d("/*/4", DiffKind::Extra)]
    );
    // The message index comes first in pointers.
    let (x, y) = render_streams(&[&l(4, &v(1, 1)), b""], &[&l(4, &v(1, 2)), b""], None).unwrap();
    assert_eq!(diffs(&x, &y), [d("/*/4/1", DiffKind::Value)]);
    assert_eq!(
        render_streams(&[], &[], None),
        Some(("[]".into(), "[]".into()))
    );
    assert_eq!(
        render_streams(&[], &[&m1], None),
        Some(("[]".into(), r#"[{"1":1}]"#.into()))
    );
    // Shapes are decided over all messages of the stream: repeated in one
    // makes it an array in all.
    let (x, _) = render_streams(&[&m1, &cat(&[m1.clone(), m2.clone()])], &[], None).unwrap();
    assert_eq!(x, r#"[{"1":[1]},{"1":[1,2]}]"#);
}

/// `levels` messages, each in field 1 of the next, each also holding field
/// 2 twice (so that every level is an array and an object: the deepest
/// JSON).
fn deep(levels: usize) -> Vec<u8> {
    let mut m = v(2, 1);
    for _ in 0..levels {
        m = cat(&[l(1, &m), l(1, &v(3, 1)), v(2, 1)]);
    }
    m
}

#[test]
fn nesting_is_capped() {
    let m = deep(200);
    let text = one(&m);
    // Messages down to MAX_NESTING, bytes below.
    assert_eq!(text.matches(r#""2":1"#).count(), MAX_NESTING);
    assert!(text.contains(r#"[""#), "bytes at the bottom");
    let shallow = one(&deep(MAX_NESTING - 1));
    assert!(!shallow.contains(r#"[""#), "{shallow}");
    // Streams add a level: still JSON.
    render_streams(&[&m, &m], &[&m], None).unwrap();
}

#[test]
fn output_is_linear() {
    // Many one-byte varints: numbers of a few characters each.
    let m = l(1, &vec![0x7f; 100_000]);
    let (x, _) = pair(&m, &v(1, 1));
    assert!(x.len() < 5 * m.len(), "{}", x.len());
    // Control characters as \u escapes: 6 per byte.
    let m = l(1, &vec![0x01; 100_000]);
    assert!(one(&m).len() <= 6 * m.len() + 10);
}

// ---------------------------------------------------------------- schema

const SHOP_PB: &[u8] = include_bytes!("testdata/shop.pb");
/// `testdata/reply.txtpb` encoded by protoc (see `testdata/shop.proto`).
const REPLY_BIN: &[u8] = include_bytes!("testdata/reply.bin");

fn shop() -> Schema {
    Schema::parse(SHOP_PB).unwrap()
}

fn reply(schema: &Schema) -> (&Schema, MessageRef) {
    (schema, schema.message("darklaunch.test.Reply").unwrap())
}

fn typed(a: &[u8], b: &[u8]) -> (String, String) {
    let s = shop();
    render_streams(&[a], &[b], Some(reply(&s))).unwrap()
}

fn typed_one(a: &[u8]) -> String {
    let (x, y) = typed(a, a);
    assert_eq!(x, y);
    x
}

#[test]
fn schema_from_base64() {
    let mut text = String::new();
    wire::json_base64(&mut text, SHOP_PB);
    let text = text.trim_matches('"');
    let schema = Schema::from_base64(text).unwrap();
    assert!(schema.message("darklaunch.test.Reply").is_some());
    // Wrapped lines, no padding, the URL-safe alphabet.
    let wrapped: String = text
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap().to_string() + "\n")
        .collect();
    assert!(Schema::from_base64(&wrapped).is_ok());
    assert_eq!(
        Schema::from_base64("not base64!").unwrap_err(),
        "not base64"
    );
    assert_eq!(Schema::from_base64("A").unwrap_err(), "not base64");
    let err = Schema::from_base64("aGVsbG8gd29ybGQ=").unwrap_err();
    assert!(err.starts_with("not a FileDescriptorSet: "), "{err}");
    assert_eq!(
        Schema::parse(b"").unwrap_err(),
        "not a FileDescriptorSet: no file"
    );
    // A FileDescriptorProto is not a set.
    let file = wire::parse(SHOP_PB).unwrap();
    let Some((_, wire::Val::Len(file))) = file.first() else {
        panic!()
    };
    assert!(Schema::parse(file).is_err());
}

#[test]
fn schema_methods_and_names() {
    let s = shop();
    let reply = s.message("darklaunch.test.Reply").unwrap();
    assert_eq!(s.output_of("/darklaunch.test.Shop/Get"), Some(reply));
    assert_eq!(s.message(".darklaunch.test.Reply"), Some(reply));
    assert_eq!(
        s.output_of("/darklaunch.test.Shop/List"),
        s.message("darklaunch.test.Item")
    );
    assert!(s.message("darklaunch.test.Reply.Inner").is_some());
    assert_eq!(s.output_of("/darklaunch.test.Shop/Nope"), None);
    assert_eq!(s.output_of("darklaunch.test.Shop/Get"), None);
    assert_eq!(s.message("Reply"), None);
}

#[test]
fn schema_every_type() {
    let expected = concat!(
        r#"{"d":2.5,"f":10.5,"i32":-7,"i64":-9000000000,"u32":4000000000,"#,
        r#""u64":18446744073709551615,"s32":-3,"s64":-4000000000,"fx32":7,"fx64":8,"#,
        r#""sfx32":-9,"sfx64":-10,"b":true,"s":"héllo \"q\"\u000a","by":"AP9hYg==","#,
        r#""status":"FAILED","item":{"name":"pen","price":3,"tags":["a"]},"#,
        r#""items":[{"name":"a"},{"name":"b"}],"nums":[1,-1,300],"unpacked":[4,5],"#,
        r#""counts":{"x":1,"y":2},"by_id":{"7":{"name":"seven"},"-1":{}},"#,
        r#""inner":{"delta":-1,"next":{"delta":2}},"statuses":["OK","UNKNOWN",5]}"#
    );
    assert_eq!(typed_one(REPLY_BIN), expected);
}

#[test]
fn schema_repeated_always_arrays() {
    let item = l(1, b"pen");
    assert_eq!(typed_one(&l(18, &item)), r#"{"items":[{"name":"pen"}]}"#);
    assert_eq!(typed_one(&v(19, 5)), r#"{"nums":[5]}"#);
    // A singular field given twice: the last counts.
    assert_eq!(typed_one(&cat(&[v(3, 1), v(3, 2)])), r#"{"i32":2}"#);
}

#[test]
fn schema_packed_equals_unpacked() {
    let unpacked = cat(&[v(19, 1), v(19, 2), v(20, 3), v(20, 4)]);
    let packed_ = cat(&[l(19, &packed(&[1, 2])), l(20, &packed(&[3, 4]))]);
    let (x, y) = typed(&unpacked, &packed_);
    assert_eq!(x, r#"{"nums":[1,2],"unpacked":[3,4]}"#);
    assert_eq!(x, y);
}

#[test]
fn schema_maps_are_objects() {
    let e = |k: &[u8], val: u64| l(21, &cat(&[l(1, k), v(2, val)]));
    let a = cat(&[e(b"b", 2), e(b"a", 1)]);
    let b = cat(&[e(b"a", 1), e(b"b", 2)]);
    let (x, y) = typed(&a, &b);
    assert_eq!(x, r#"{"counts":{"a":1,"b":2}}"#);
    assert_eq!(x, y);
    // The last of a repeated key counts; a missing key or value is the default.
    let c = cat(&[e(b"a", 1), e(b"a", 5), l(21, &l(1, b"z")), l(21, &v(2, 4))]);
    assert_eq!(typed_one(&c), r#"{"counts":{"":4,"a":5,"z":0}}"#);
    // A different value is found under its key.
    let (x, y) = typed(&a, &cat(&[e(b"a", 1), e(b"b", 3)]));
    assert_eq!(diffs(&x, &y), [d("/counts/b", DiffKind::Value)]);
    // Message values, integer keys.
    let by_id = |k: u64, name: &[u8]| l(22, &cat(&[v(1, k), l(2, &l(1, name))]));
    let a = cat(&[by_id(2, b"two"), by_id(10, b"ten")]);
    assert_eq!(
        typed_one(&a),
        r#"{"by_id":{"2":{"name":"two"},"10":{"name":"ten"}}}"#
    );
    // A missing value is the default where other entries have one, null
    // where none has.
    let a = cat(&[l(22, &v(1, 3)), by_id(2, b"two")]);
    assert_eq!(typed_one(&a), r#"{"by_id":{"2":{"name":"two"},"3":{}}}"#);
    assert_eq!(typed_one(&l(22, &v(1, 3))), r#"{"by_id":{"3":null}}"#);
    let (x, y) = typed(&l(22, &v(1, 3)), &l(22, &cat(&[v(1, 3), l(2, b"")])));
    assert_eq!(
        (x.as_str(), y.as_str()),
        (r#"{"by_id":{"3":{}}}"#, r#"{"by_id":{"3":{}}}"#)
    );
}

#[test]
fn schema_zero_defaults_left_out() {
    let zeros = cat(&[v(3, 0), l(14, b""), v(13, 0), v(16, 0), f64b(1, 0), v(5, 0)]);
    let (x, y) = typed(&cat(&[zeros, v(6, 1)]), &v(6, 1));
    assert_eq!((x.as_str(), y.as_str()), (r#"{"u64":1}"#, r#"{"u64":1}"#));
    // An empty message is kept (presence).
    assert_eq!(typed_one(&l(17, b"")), r#"{"item":{}}"#);
    // Zero elements of a repeated field are kept.
    assert_eq!(typed_one(&v(19, 0)), r#"{"nums":[0]}"#);
    // -0.0 is not all bits zero.
    assert_eq!(typed_one(&f64b(1, (-0.0f64).to_bits())), r#"{"d":-0.0}"#);
}

#[test]
fn schema_scalars() {
    assert_eq!(typed_one(&v(16, 7)), r#"{"status":7}"#);
    assert_eq!(typed_one(&v(3, u64::MAX)), r#"{"i32":-1}"#);
    assert_eq!(typed_one(&v(5, u64::MAX)), r#"{"u32":4294967295}"#);
    assert_eq!(typed_one(&v(7, 3)), r#"{"s32":-2}"#);
    assert_eq!(typed_one(&v(8, 4)), r#"{"s64":2}"#);
    assert_eq!(typed_one(&v(13, 2)), r#"{"b":true}"#);
    assert_eq!(typed_one(&f64b(1, f64::NAN.to_bits())), r#"{"d":"NaN"}"#);
    assert_eq!(
        typed_one(&f64b(1, f64::NEG_INFINITY.to_bits())),
        r#"{"d":"-Infinity"}"#
    );
    assert_eq!(
        typed_one(&f32b(2, f32::INFINITY.to_bits())),
        r#"{"f":"Infinity"}"#
    );
    assert_eq!(typed_one(&f64b(1, 1)), r#"{"d":5e-324}"#);
    assert_eq!(typed_one(&f32b(2, 0.1f32.to_bits())), r#"{"f":0.1}"#);
}

#[test]
fn schema_nested_types() {
    // .darklaunch.test.Reply.Inner, recursively.
    let inner = l(23, &cat(&[v(1, 1), l(2, &cat(&[v(1, 4), l(2, &v(1, 5))]))]));
    assert_eq!(
        typed_one(&inner),
        r#"{"inner":{"delta":-1,"next":{"delta":2,"next":{"delta":-3}}}}"#
    );
}

#[test]
fn schema_unknown_and_misfit_fields_by_number() {
    // Not declared: schema-less, by number.
    let (x, y) = typed(
        &cat(&[v(6, 1), v(99, 5)]),
        &cat(&[v(6, 1), v(99, 5), v(99, 6)]),
    );
    assert_eq!(
        (x.as_str(), y.as_str()),
        (r#"{"u64":1,"99":[5]}"#, r#"{"u64":1,"99":[5,6]}"#)
    );
    // Declared double, sent as a varint.
    assert_eq!(typed_one(&v(1, 5)), r#"{"1":5}"#);
    // Declared string, not UTF-8.
    assert_eq!(typed_one(&l(14, &[0xff])), r#"{"14":"/w=="}"#);
    // Declared message, not one.
    assert_eq!(typed_one(&l(17, b"\xff\xff")), r#"{"17":"//8="}"#);
    // Unknown fields inside known messages, rendered together.
    let (x, y) = typed(&l(17, &cat(&[l(1, b"a"), v(50, 0)])), &l(17, &l(1, b"a")));
    assert_eq!(x, y);
}

#[test]
fn schema_streams() {
    let s = shop();
    let item = s.output_of("/darklaunch.test.Shop/List").unwrap();
    let (x, y) = render_streams(
        &[&l(1, b"a"), &l(1, b"b")],
        &[&l(1, b"a")],
        Some((&s, item)),
    )
    .unwrap();
    assert_eq!(
        (x.as_str(), y.as_str()),
        (r#"[{"name":"a"},{"name":"b"}]"#, r#"[{"name":"a"}]"#)
    );
}

// ---------------------------------------------------------------- properties

/// A message tree for the properties. Field numbers fix the kind (as a
/// schema would): 1 varint, 2 message, 3 bytes, 4 fixed64, 5 fixed32, 6
/// varint. Every nested message holds field 1, whose tag byte (8) is a
/// control character: no message reads as printable text, whatever the
/// order of its fields.
#[derive(Debug, Clone)]
enum Node {
    Varint(u64),
    Msg(Vec<(u32, Node)>),
    Bytes(Vec<u8>),
    Fixed64(u64),
    Fixed32(u32),
}

fn leaf() -> impl Strategy<Value = (u32, Node)> {
    prop_oneof![
        any::<u64>().prop_map(|x| (1, Node::Varint(x))),
        (0u64..3).prop_map(|x| (6, Node::Varint(x))),
        proptest::collection::vec(any::<u8>(), 0..6).prop_map(|b| (3, Node::Bytes(b))),
        prop_oneof![any::<u64>(), any::<f64>().prop_map(f64::to_bits)]
            .prop_map(|x| (4, Node::Fixed64(x))),
        prop_oneof![any::<u32>(), any::<f32>().prop_map(f32::to_bits)]
            .prop_map(|x| (5, Node::Fixed32(x))),
    ]
}

/// One field: a leaf, or a message of fields.
fn field() -> impl Strategy<Value = (u32, Node)> {
    leaf().prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            3 => leaf(),
            1 => (any::<u64>(), proptest::collection::vec(inner, 0..6)).prop_map(|(k, mut f)| {
                f.insert(0, (1, Node::Varint(k)));
                (2, Node::Msg(f))
            }),
        ]
    })
}

fn fields() -> impl Strategy<Value = Vec<(u32, Node)>> {
    proptest::collection::vec(field(), 0..10)
}

/// Encode `fields`; with `order`, each message's fields are interleaved
/// differently (the occurrences of one number keep their order), the same
/// seeds reused down the tree.
fn encode(fields: &[(u32, Node)], order: Option<&[usize]>) -> Vec<u8> {
    let mut idx: Vec<usize> = (0..fields.len()).collect();
    if let Some(seeds) = order {
        // Permute positions by the seeds, then give each number's
        // positions back to its occurrences in their original order.
        idx.sort_by_key(|&i| {
            seeds
                .get(i % seeds.len().max(1))
                .copied()
                .unwrap_or(0)
                .wrapping_mul(i + 1)
                % 97
        });
        let mut by_number: Vec<(u32, Vec<usize>)> = Vec::new();
        for (i, (n, _)) in fields.iter().enumerate() {
            match by_number.iter_mut().find(|(m, _)| m == n) {
                Some((_, list)) => list.push(i),
                None => by_number.push((*n, vec![i])),
            }
        }
        let mut next: Vec<usize> = vec![0; by_number.len()];
        for slot in idx.iter_mut() {
            let n = fields[*slot].0;
            let k = by_number.iter().position(|(m, _)| *m == n).unwrap();
            *slot = by_number[k].1[next[k]];
            next[k] += 1;
        }
    }
    let mut out = Vec::new();
    for i in idx {
        let (n, node) = &fields[i];
        out.extend(match node {
            Node::Varint(x) => v(*n, *x),
            Node::Msg(f) => l(*n, &encode(f, order)),
            Node::Bytes(b) => l(*n, b),
            Node::Fixed64(x) => f64b(*n, *x),
            Node::Fixed32(x) => f32b(*n, *x),
        });
    }
    out
}

/// Significant digits of a number's text.
fn significant(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1)
}

/// Bytes that are mostly text: printable ASCII with quotes, backslashes,
/// C0 and C1 controls, DEL, other characters and invalid UTF-8 mixed in at
/// any position (the scans go 8 bytes at a time).
fn text_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        8 => (0x20u8..0x7f).prop_map(|c| vec![c]),
        1 => prop_oneof![Just(b'"'), Just(b'\\'), Just(0x7f), 0u8..0x20].prop_map(|c| vec![c]),
        1 => prop_oneof![
            Just("\u{85}"), Just("\u{9f}"), Just("\u{a0}"), Just("\u{e9}"), Just("\u{2028}"), Just("\u{1F600}")
        ].prop_map(|s| s.as_bytes().to_vec()),
        1 => any::<u8>().prop_map(|c| vec![c]),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|p| p.concat())
}

#[test]
fn merge_sort_is_stable() {
    let keys = [3, 1, 2, 1, 3, 0, 2];
    let order = wire::order(keys.len(), &|i, j| keys[i] <= keys[j]);
    assert_eq!(order, [5, 1, 3, 2, 6, 0, 4]);
    assert!(wire::order(0, &|_, _| true).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn merge_sort_sorts(keys in proptest::collection::vec(0u8..8, 0..300)) {
        let order = wire::order(keys.len(), &|i, j| keys[i] <= keys[j]);
        let mut want: Vec<usize> = (0..keys.len()).collect();
        want.sort_by_key(|&i| keys[i]);
        prop_assert_eq!(order, want);
    }

    #[test]
    fn printable_is_utf8_without_controls(b in text_like()) {
        let want = std::str::from_utf8(&b).is_ok_and(|s| !s.chars().any(char::is_control));
        prop_assert_eq!(wire::printable(&b), want, "{:?}", b);
    }

    #[test]
    fn json_string_escapes(b in text_like()) {
        let s = String::from_utf8_lossy(&b);
        let mut text = String::new();
        wire::json_string(&mut text, &s);
        // The same text as escaping byte by byte.
        let mut want = String::from("\"");
        for c in s.chars() {
            match c {
                '"' | '\\' => { want.push('\\'); want.push(c); }
                c if (c as u32) < 0x20 => want.push_str(&format!("\\u{:04x}", c as u32)),
                c => want.push(c),
            }
        }
        want.push('"');
        prop_assert_eq!(&text, &want);
        prop_assert_eq!(serde_json::from_str::<String>(&text).unwrap(), s.into_owned());
    }

    #[test]
    fn integers_as_text(v in prop_oneof![any::<u64>(), 0u64..1000, Just(u64::MAX), Just(0)]) {
        let mut text = String::new();
        wire::json_u64(&mut text, v);
        prop_assert_eq!(text, v.to_string());
        let mut text = String::new();
        wire::json_i64(&mut text, v as i64);
        prop_assert_eq!(text, (v as i64).to_string());
    }

    #[test]
    fn floats_as_serde_json_writes_them(bits in any::<u64>(), bits32 in any::<u32>()) {
        let v = f64::from_bits(bits);
        let mut text = String::new();
        wire::json_f64(&mut text, v);
        let want = serde_json::Number::from_f64(v).map(|n| n.to_string()).unwrap_or_default();
        prop_assert_eq!(text, want);
        let v = f32::from_bits(bits32);
        let mut text = String::new();
        wire::json_f32(&mut text, v);
        prop_assert_eq!(text, serde_json::to_string(&v).unwrap());
    }

    #[test]
    fn f32_shortest(bits in any::<u32>()) {
        let v = f32::from_bits(bits);
        prop_assume!(v.is_normal());
        let mut text = String::new();
        wire::json_f32(&mut text, v);
        prop_assert!(json::parse(text.as_bytes()).is_ok(), "{}", text);
        prop_assert_eq!(text.parse::<f32>().unwrap(), v, "{}", text);
        // As short as the shortest (Rust's Display for f32).
        prop_assert!(significant(&text) <= significant(&v.to_string()), "{} vs {}", text, v);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        a in proptest::collection::vec(any::<u8>(), 0..64),
        b in proptest::collection::vec(any::<u8>(), 0..64),
        max in 0usize..100,
    ) {
        for encoding in [&b""[..], b"gzip", b"deflate", b"br"] {
            let _ = split_frames(&a, encoding, max);
        }
        let _ = Schema::parse(&a);
        let _ = Schema::from_base64(&String::from_utf8_lossy(&a));
        let _ = render_streams(&[&a], &[&b], None);
        let _ = render_streams(&[&a, &b], &[&b], None);
        let s = shop();
        let _ = render_streams(&[&a], &[&b], Some(reply(&s)));
        if let Some((x, y)) = render_streams(&[&a], &[&a], None) {
            prop_assert_eq!(x, y);
        }
    }

    #[test]
    fn damaged_descriptor_sets_never_panic(at in 0usize..SHOP_PB.len(), byte in any::<u8>(), cut in 0usize..SHOP_PB.len()) {
        let mut pb = SHOP_PB.to_vec();
        pb[at] = byte;
        if let Ok(s) = Schema::parse(&pb) {
            if let Some(m) = s.message("darklaunch.test.Reply") {
                let _ = render_streams(&[REPLY_BIN], &[REPLY_BIN], Some((&s, m)));
            }
        }
        let _ = Schema::parse(&pb[..cut]);
    }

    #[test]
    fn second_side_copies_what_it_would_write(
        f in fields(),
        g in fields(),
        k in 0usize..3,
        schema in any::<bool>(),
    ) {
        // Streams sharing messages, one of them replaced on the second side,
        // nested in a message that differs.
        let (m, n) = (encode(&f, None), encode(&g, None));
        let a = [m.clone(), n.clone(), m.clone()];
        let mut b = a.clone();
        b[k] = n.clone();
        let wrap = |list: &[Vec<u8>], x: u64| {
            let mut out: Vec<u8> = list.iter().flat_map(|e| l(2, e)).collect();
            out.extend(v(1, x));
            out
        };
        let shop = shop();
        let schema = schema.then(|| reply(&shop));
        let streams = |a: &[Vec<u8>], b: &[Vec<u8>]| {
            let (a, b): (Vec<&[u8]>, Vec<&[u8]>) = (a.iter().map(|m| &m[..]).collect(), b.iter().map(|m| &m[..]).collect());
            render_streams(&a, &b, schema)
        };
        // render_streams checks that each side renders the same first and second.
        streams(&a, &b).unwrap();
        streams(&[wrap(&a, 1)], &[wrap(&b, 2)]).unwrap();
        streams(&[wrap(&a, 1), wrap(&b, 1)], &[wrap(&b, 2), wrap(&a, 1)]).unwrap();
    }

    #[test]
    fn field_order_does_not_matter(f in fields(), seeds in proptest::collection::vec(any::<usize>(), 1..8)) {
        let a = encode(&f, None);
        let b = encode(&f, Some(&seeds));
        let (x, y) = pair(&a, &b);
        prop_assert_eq!(&x, &y);
        // The same as the message against itself.
        prop_assert_eq!(one(&a), x);
        // And with the schema (field 2 is Reply.f, a float: a misfit).
        let (x, y) = typed(&a, &b);
        prop_assert_eq!(x, y);
    }

    #[test]
    fn packed_equals_unpacked_always(
        values in proptest::collection::vec(any::<u64>(), 1..20),
        cut in any::<usize>(),
        other in any::<u64>(),
        wire_type in prop_oneof![Just(VARINT), Just(I64), Just(I32)],
    ) {
        let one_value = |x: u64| match wire_type {
            VARINT => v(5, x),
            I64 => f64b(5, x),
            _ => f32b(5, x as u32),
        };
        let pack = |xs: &[u64]| -> Vec<u8> {
            xs.iter().flat_map(|&x| match wire_type {
                VARINT => packed(&[x]),
                I64 => x.to_le_bytes().to_vec(),
                _ => (x as u32).to_le_bytes().to_vec(),
            }).collect()
        };
        let unpacked = cat(&[v(1, other), cat(&values.iter().map(|&x| one_value(x)).collect::<Vec<_>>())]);
        let (head, tail) = values.split_at(cut % values.len());
        let mut packed_ = l(5, &pack(head));
        if head.is_empty() {
            packed_.clear();
        }
        packed_.extend(l(5, &pack(tail)));
        packed_.extend(v(1, other));
        let (x, y) = pair(&unpacked, &packed_);
        prop_assert_eq!(&x, &y);
        prop_assert!(x.contains(r#""5":["#), "{}", x);
    }
}

// ---------------------------------------------------------------- prost oracle

#[derive(Clone, PartialEq, prost::Message)]
struct Inner {
    #[prost(uint32, tag = "1")]
    a: u32,
    #[prost(string, tag = "2")]
    b: String,
}

/// The oracle's message (packed ints, a hash map).
#[derive(Clone, PartialEq, prost::Message)]
struct Oracle {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(double, tag = "3")]
    score: f64,
    #[prost(message, optional, tag = "4")]
    inner: Option<Inner>,
    #[prost(int64, repeated, tag = "5")]
    nums: Vec<i64>,
    #[prost(map = "string, string", tag = "6")]
    labels: std::collections::HashMap<String, String>,
}

/// The same message encoded differently: ints unpacked, map in key order.
#[derive(Clone, PartialEq, prost::Message)]
struct OracleUnpacked {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(double, tag = "3")]
    score: f64,
    #[prost(message, optional, tag = "4")]
    inner: Option<Inner>,
    #[prost(int64, repeated, packed = "false", tag = "5")]
    nums: Vec<i64>,
    #[prost(btree_map = "string, string", tag = "6")]
    labels: std::collections::BTreeMap<String, String>,
}

fn member<'a>(v: json::Value<'a>, key: &str) -> Option<json::Value<'a>> {
    v.members()
        .filter(|(k, _)| k.str().as_deref() == Some(key))
        .map(|(_, v)| v)
        .last()
}

fn text(v: json::Value<'_>) -> String {
    v.str().unwrap().into_owned()
}

/// Elements of an array, or the value itself.
fn elements(v: json::Value<'_>) -> Vec<json::Value<'_>> {
    if v.kind() == json::Kind::Array {
        v.elements().collect()
    } else {
        vec![v]
    }
}

fn oracle() -> impl Strategy<Value = Oracle> {
    let word = "[a-zA-Z0-9 ._-]{0,12}";
    (
        any::<u64>(),
        word,
        prop_oneof![Just(0.0), proptest::num::f64::NORMAL],
        proptest::option::of((any::<u32>(), word).prop_map(|(a, b)| Inner { a, b })),
        proptest::collection::vec(any::<i64>(), 0..8),
        proptest::collection::hash_map(word, word, 0..6),
    )
        .prop_map(|(id, name, score, inner, nums, labels)| Oracle {
            id,
            name,
            score,
            inner,
            nums,
            labels,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn prost_oracle(o in oracle()) {
        use prost::Message as _;
        let a = o.encode_to_vec();
        let b = OracleUnpacked {
            id: o.id,
            name: o.name.clone(),
            score: o.score,
            inner: o.inner.clone(),
            nums: o.nums.clone(),
            labels: o.labels.clone().into_iter().collect(),
        }
        .encode_to_vec();
        let (x, y) = pair(&a, &b);
        prop_assert_eq!(&x, &y);
        let doc = json::parse(x.as_bytes()).unwrap();
        let root = doc.root().unwrap();
        // Field 1: the u64, exact; absent when 0 (proto3 leaves it out).
        match member(root, "1") {
            Some(id) => prop_assert_eq!(id.text(), o.id.to_string()),
            None => prop_assert_eq!(o.id, 0),
        }
        match member(root, "2") {
            Some(name) => prop_assert_eq!(text(name), o.name.clone()),
            None => prop_assert!(o.name.is_empty()),
        }
        // The double, read back exactly.
        match member(root, "3") {
            Some(score) => prop_assert_eq!(score.text().parse::<f64>().unwrap(), o.score),
            None => prop_assert_eq!(o.score, 0.0),
        }
        match (member(root, "4"), &o.inner) {
            (None, None) => {}
            // An empty message alone at its location is "".
            (Some(inner), Some(i)) if *i == Inner::default() => prop_assert_eq!(inner.text(), r#""""#),
            (Some(inner), Some(i)) => {
                match member(inner, "1") {
                    Some(a) => prop_assert_eq!(a.text(), i.a.to_string()),
                    None => prop_assert_eq!(i.a, 0),
                }
                match member(inner, "2") {
                    Some(b) => prop_assert_eq!(text(b), i.b.clone()),
                    None => prop_assert!(i.b.is_empty()),
                }
            }
            (got, want) => prop_assert!(false, "inner {:?} vs {:?}", got, want),
        }
        // Packed against unpacked: the list, as two's complement u64.
        let nums: Vec<String> = member(root, "5").map(|n| n.elements().map(|e| e.text().to_string()).collect()).unwrap_or_default();
        let want: Vec<String> = o.nums.iter().map(|&n| (n as u64).to_string()).collect();
        prop_assert_eq!(nums, want);
        // The map: entries in key order (absent key or value: "").
        let mut labels = std::collections::HashMap::new();
        let mut keys = Vec::new();
        if let Some(map) = member(root, "6") {
            for entry in elements(map) {
                // An entry with both default is an empty LEN, alone a "".
                let (k, val) = if entry.kind() == json::Kind::String {
                    (String::new(), String::new())
                } else {
                    (member(entry, "1").map(text).unwrap_or_default(), member(entry, "2").map(text).unwrap_or_default())
                };
                keys.push(k.clone());
                labels.insert(k, val);
            }
        }
        prop_assert_eq!(&labels, &o.labels);
        let mut sorted = keys.clone();
        sorted.sort();
        prop_assert_eq!(keys, sorted);
    }
}
