//! `protobuf::split_frames` and `protobuf::render_pair` (schema-less and with
//! the descriptor set of src/protobuf/testdata), `Schema::parse` on arbitrary
//! bytes. Both renderings must be JSON for `json::parse`, rendering is
//! symmetric (swapping the sides swaps the texts) and a side against itself
//! renders the same text twice. Messages framed here (plain, gzip, deflate)
//! must split back exactly.
//!
//! Input layout:
//!
//! ```text
//! byte 0    bits 0-1: side A's body, bits 2-3: side B's body
//!             0  the bytes are a gRPC body, split under grpc-encoding ENCODINGS[byte 1 % 4]
//!             1  the bytes are one message, framed here uncompressed
//!             2  the bytes are one message, framed here gzip-compressed
//!             3  the bytes split at 0xff into messages, each framed here
//!           bits 4-6: 0-3 schema-less, 4.. the fixture schema, message type
//!             TYPES[bits % 4]
//! byte 1    grpc-encoding (mode 0), max: MAX[byte 1 / 4 % 4]
//! byte 2-3  length of side A (big-endian, capped at what is left)
//! then side A, then side B
//! ```

#![no_main]

use std::borrow::Cow;

use darklaunch::json;
use darklaunch::protobuf::{render_pair, split_frames, FrameError, MessageRef, Schema};
use libfuzzer_sys::fuzz_target;

const ENCODINGS: [&[u8]; 4] = [b"", b"gzip", b"deflate", b"identity"];
const MAX: [usize; 4] = [65_536, 0, 40, 1 << 20];
const TYPES: [&str; 4] = [
    "darklaunch.test.Reply",
    "darklaunch.test.Item",
    "darklaunch.test.Reply.Inner",
    "darklaunch.test.Request",
];
const SHOP_PB: &[u8] = include_bytes!("../../src/protobuf/testdata/shop.pb");

fuzz_target!(|data: &[u8]| {
    let _ = Schema::parse(data);
    let Some((&[flags, sel, hi, lo], rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let n = usize::from(u16::from_be_bytes([hi, lo])).min(rest.len());
    let (a, b) = rest.split_at(n);
    let max = MAX[usize::from(sel / 4) % MAX.len()];
    let encoding = ENCODINGS[usize::from(sel) % ENCODINGS.len()];
    let a = messages(a, flags & 3, encoding, max);
    let b = messages(b, (flags >> 2) & 3, encoding, max);

    let schema = Schema::parse(SHOP_PB).expect("the fixture parses");
    let ty = (flags >> 4) & 7;
    let typed = (ty >= 4).then(|| {
        let m = schema.message(TYPES[usize::from(ty) % 4]).expect("fixture type");
        (&schema, m)
    });
    check(&a, &b, typed);
    check(&a, &a, typed);
});

/// A side's messages; a body that does not split is one message.
fn messages(bytes: &[u8], mode: u8, encoding: &[u8], max: usize) -> Vec<Vec<u8>> {
    match mode {
        0 => match split_frames(bytes, encoding, max) {
            Ok(messages) => {
                assert!(messages.iter().map(|m| m.len()).sum::<usize>() <= max);
                messages.into_iter().map(Cow::into_owned).collect()
            }
            Err(_) => vec![bytes.to_vec()],
        },
        1 => {
            // An unflagged message needs no known encoding.
            round_trip(split_frames(&frame(0, bytes), b"snappy", max), &[bytes], max);
            vec![bytes.to_vec()]
        }
        2 => {
            let body = frame(1, &gzip(bytes));
            round_trip(split_frames(&body, b"gzip", max), &[bytes], max);
            vec![bytes.to_vec()]
        }
        _ => {
            let parts: Vec<&[u8]> = bytes.split(|b| *b == 0xff).collect();
            let body: Vec<u8> = parts.iter().flat_map(|p| frame(0, p)).collect();
            round_trip(split_frames(&body, b"", max), &parts, max);
            parts.iter().map(|p| p.to_vec()).collect()
        }
    }
}

/// Messages framed here split back exactly, unless they total more than max.
fn round_trip(got: Result<Vec<Cow<[u8]>>, FrameError>, want: &[&[u8]], max: usize) {
    if want.iter().map(|m| m.len()).sum::<usize>() > max {
        assert_eq!(got, Err(FrameError::TooLarge));
    } else {
        let got = got.expect("framed here");
        assert!(got.iter().map(|m| &m[..]).eq(want.iter().copied()));
    }
}

fn check(a: &[Vec<u8>], b: &[Vec<u8>], schema: Option<(&Schema, MessageRef)>) {
    let ca: Vec<Cow<[u8]>> = a.iter().map(|m| Cow::Borrowed(&m[..])).collect();
    let cb: Vec<Cow<[u8]>> = b.iter().map(|m| Cow::Borrowed(&m[..])).collect();
    let Some((x, y)) = render_pair(&ca, &cb, schema) else {
        return;
    };
    for text in [&x, &y] {
        if let Err(e) = json::parse(text.as_bytes()) {
            panic!("not JSON ({e}): {text}");
        }
    }
    let (y2, x2) = render_pair(&cb, &ca, schema).expect("rendered one way, renders the other");
    assert_eq!((x2, y2), (x.clone(), y.clone()), "not symmetric");
    if a == b {
        assert_eq!(x, y, "a side against itself");
    }
}

fn frame(flag: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// A gzip member (no optional header fields), compressed independently of
/// the decoder.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, 6));
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
