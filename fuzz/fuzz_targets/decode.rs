//! `decode::decode`: response bodies under `content-encoding` (gzip, deflate,
//! br, lists of them), bounded by `max`. Arbitrary (mostly corrupt) encoded
//! bodies must fail cleanly; bodies compressed here (independently of the
//! decoder) must decode back exactly, or be reported as too large.
//!
//! Input layout:
//!
//! ```text
//! byte 0   max: one of MAX (index modulo its length)
//! byte 1   mode (modulo 6):
//!            0, 1  rest = "<content-encoding>\n<body>", decoded as is
//!            2     rest gzip-compressed here, decoded as "gzip"
//!            3     rest zlib-compressed, decoded as "deflate"
//!            4     rest raw-deflate-compressed, decoded as "deflate"
//!            5     rest split in two gzip members, then zlib: "gzip, deflate"
//! byte 2   compression level (modulo 11) and split point for mode 5
//! ```

#![no_main]

use darklaunch::decode::{decode, is_identity, DecodeError};
use libfuzzer_sys::fuzz_target;
use miniz_oxide::deflate::{compress_to_vec, compress_to_vec_zlib};

const MAX: [usize; 7] = [0, 1, 64, 1000, 65_536, 1 << 20, 16 * 1024 * 1024];

fuzz_target!(|data: &[u8]| {
    let Some((&[max_sel, mode, level], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let max = MAX[usize::from(max_sel) % MAX.len()];
    let level = level % 11;
    match mode % 6 {
        0 | 1 => {
            let (coding, body) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (&rest[..0], rest),
            };
            let got = decode(coding, body, max);
            if let Ok(out) = &got {
                assert!(out.len() <= max, "{} bytes over max {max}", out.len());
                // A larger bound changes nothing for a body that fitted.
                let again = decode(coding, body, 16 * 1024 * 1024);
                assert_eq!(again.as_deref(), Ok(&out[..]));
            }
            if is_identity(coding) {
                if body.len() <= max {
                    assert_eq!(got.as_deref(), Ok(body));
                } else {
                    assert_eq!(got, Err(DecodeError::TooLarge));
                }
            }
            if body.is_empty() && got.is_ok() {
                assert!(got.as_deref() == Ok(&[][..]));
            }
        }
        2 => round_trip(b"gzip", &gzip(rest, level), rest, max, 0),
        3 => round_trip(b"deflate", &compress_to_vec_zlib(rest, level), rest, max, 0),
        4 => round_trip(b"deflate", &compress_to_vec(rest, level), rest, max, 0),
        _ => {
            let split = usize::from(level).min(rest.len());
            let mut gz = gzip(&rest[..split], level);
            gz.extend(gzip(&rest[split..], 10 - level));
            let body = compress_to_vec_zlib(&gz, level);
            round_trip(b"gzip, deflate", &body, rest, max, gz.len());
        }
    }
});

/// `encoded` must decode to `plain` when everything fits in `max`
/// (`intermediate` is the size of a stacked coding's middle step), and be
/// reported as too large when `plain` itself does not fit.
fn round_trip(coding: &[u8], encoded: &[u8], plain: &[u8], max: usize, intermediate: usize) {
    let got = decode(coding, encoded, max);
    if plain.len() <= max && intermediate <= max {
        assert_eq!(got.as_deref(), Ok(plain), "round trip through {coding:?}");
    } else if plain.len() > max {
        assert_eq!(got, Err(DecodeError::TooLarge));
    } else {
        assert!(matches!(got, Ok(_) | Err(DecodeError::TooLarge)));
    }
}

/// A gzip member (RFC 1952) with the FNAME flag set, built here
/// independently of the decoder under test.
fn gzip(data: &[u8], level: u8) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0x08, 0, 0, 0, 0, 0, 255];
    out.extend_from_slice(b"name.json\0");
    out.extend(compress_to_vec(data, level));
    out.extend(crc32(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}
