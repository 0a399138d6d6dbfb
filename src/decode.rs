//! Undoing `content-encoding` before bodies are compared, with a hard bound
//! on the decoded size.
//!
//! Supported codings (names case-insensitive, RFC 9110 §8.4.1):
//!
//! - `identity` and the empty value: the body as it is.
//! - `gzip`, `x-gzip`: RFC 1952. Header flags (FEXTRA, FNAME, FCOMMENT,
//!   FHCRC) are parsed and skipped; the trailer's CRC-32 and ISIZE are
//!   checked. Several concatenated members decode to their concatenation.
//! - `deflate`: the zlib format (RFC 1950, Adler-32 checked) as RFC 9110
//!   requires; a body that does not start with a valid zlib header, or does
//!   not decode as zlib, is tried as raw deflate (RFC 1951), which some
//!   servers send.
//! - `br`: brotli (RFC 7932), only when built with the `brotli` feature
//!   (`make build FEATURES=brotli`): the decoder and its 120 KiB static
//!   dictionary are a quarter of the module. Without it `br` is
//!   [`DecodeError::Unsupported`], so such bodies are compared as received.
//!
//! A list such as `gzip, br` means gzip was applied first, so the codings are
//! undone from the last to the first; empty list members are skipped.
//!
//! Any bytes after the end of the compressed data (other than a further gzip
//! member) make the body [`DecodeError::Invalid`]. An empty body is empty
//! under every coding, known or not.
//!
//! Every step's output is bounded by `max`: the decoders never produce more
//! than `max + 1` bytes, so a decompression bomb costs at most that much
//! memory (plus the decoders' own windows: 32 KiB for inflate, up to 16 MiB
//! for a brotli stream that declares the largest window) before it is cut off
//! as [`DecodeError::TooLarge`].

use std::borrow::Cow;

#[cfg(feature = "brotli")]
use brotli_decompressor::{
    BrotliDecoderParameter, BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc,
};
use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZFlush, MZStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The decoded body (or an intermediate step of a stacked coding) is
    /// longer than `max` bytes.
    TooLarge,
    /// The body is not valid data for its coding (corrupt, truncated,
    /// checksum mismatch, trailing garbage).
    Invalid,
    /// A coding this module does not know (`compress`, `zstd`, ...).
    Unsupported,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DecodeError::TooLarge => "decoded body too large",
            DecodeError::Invalid => "invalid encoded body",
            DecodeError::Unsupported => "unsupported content-encoding",
        })
    }
}

impl std::error::Error for DecodeError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Gzip,
    Deflate,
    #[cfg(feature = "brotli")]
    Brotli,
}

/// Decode `body` according to the `content-encoding` field value
/// `content_encoding` (several field lines joined with `,`). The result
/// borrows `body` when there is nothing to undo.
pub fn decode<'a>(
    content_encoding: &[u8],
    body: &'a [u8],
    max: usize,
) -> Result<Cow<'a, [u8]>, DecodeError> {
    let codings = parse_codings(content_encoding)?;
    if body.is_empty() {
        return Ok(Cow::Borrowed(body));
    }
    let mut out = Cow::Borrowed(body);
    if out.len() > max && codings.is_empty() {
        return Err(DecodeError::TooLarge);
    }
    for coding in codings.iter().rev() {
        let next = match coding {
            Coding::Gzip => gunzip(&out, max)?,
            Coding::Deflate => inflate_deflate(&out, max)?,
            #[cfg(feature = "brotli")]
            Coding::Brotli => unbrotli(&out, max)?,
        };
        out = Cow::Owned(next);
    }
    Ok(out)
}

/// True when the field value names no coding to undo (absent, empty or only
/// `identity`).
#[cfg(any(test, feature = "fuzzing"))]
pub fn is_identity(content_encoding: &[u8]) -> bool {
    matches!(parse_codings(content_encoding), Ok(c) if c.is_empty())
}

fn parse_codings(value: &[u8]) -> Result<Vec<Coding>, DecodeError> {
    let mut out = Vec::new();
    for token in value.split(|b| *b == b',') {
        let token = token.trim_ascii();
        if token.is_empty() || token.eq_ignore_ascii_case(b"identity") {
            continue;
        }
        let coding = if token.eq_ignore_ascii_case(b"gzip") || token.eq_ignore_ascii_case(b"x-gzip")
        {
            Coding::Gzip
        } else if token.eq_ignore_ascii_case(b"deflate") {
            Coding::Deflate
        } else if token.eq_ignore_ascii_case(b"br") {
            BROTLI?
        } else {
            return Err(DecodeError::Unsupported);
        };
        out.push(coding);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// deflate / zlib

const CHUNK: usize = 32 * 1024;

/// Inflate one stream from the start of `input`, appending to `out`, which
/// never grows past `max + 1` bytes. Returns the number of input bytes the
/// stream used.
fn inflate_into(
    state: &mut InflateState,
    format: DataFormat,
    input: &[u8],
    out: &mut Vec<u8>,
    max: usize,
) -> Result<usize, DecodeError> {
    state.reset(format);
    let limit = max.saturating_add(1);
    let mut consumed = 0usize;
    loop {
        let start = out.len();
        let room = limit.saturating_sub(start).min(CHUNK);
        if room == 0 {
            return Err(DecodeError::TooLarge);
        }
        out.resize(start + room, 0);
        let rest = input.get(consumed..).unwrap_or_default();
        let Some(dst) = out.get_mut(start..) else {
            return Err(DecodeError::Invalid);
        };
        let r = inflate(state, rest, dst, MZFlush::None);
        out.truncate(start + r.bytes_written);
        consumed += r.bytes_consumed;
        if out.len() > max {
            return Err(DecodeError::TooLarge);
        }
        match r.status {
            Ok(MZStatus::StreamEnd) => return Ok(consumed),
            Ok(_) if r.bytes_consumed > 0 || r.bytes_written > 0 => {}
            // No progress (truncated input) or corrupt data.
            _ => return Err(DecodeError::Invalid),
        }
    }
}

/// A zlib header per RFC 1950: deflate method, window ≤ 32 KiB, check bits,
/// no preset dictionary.
fn looks_like_zlib(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8
                && cmf >> 4 <= 7
                && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
                && flg & 0x20 == 0
        }
        _ => false,
    }
}

fn inflate_deflate(body: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    if looks_like_zlib(body) {
        match inflate_whole(DataFormat::Zlib, body, max) {
            Err(DecodeError::Invalid) => {}
            other => return other,
        }
    }
    inflate_whole(DataFormat::Raw, body, max)
}

fn inflate_whole(format: DataFormat, body: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut state = InflateState::new_boxed(format);
    let used = inflate_into(&mut state, format, body, &mut out, max)?;
    if used != body.len() {
        return Err(DecodeError::Invalid);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// gzip (RFC 1952)

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xe0;

fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut rest = body;
    // One decompressor (about 43 KiB) for all members.
    let mut state = InflateState::new_boxed(DataFormat::Raw);
    loop {
        let data = gzip_header(rest).ok_or(DecodeError::Invalid)?;
        let start = out.len();
        let used = inflate_into(&mut state, DataFormat::Raw, data, &mut out, max)?;
        let trailer = data.get(used..used + 8).ok_or(DecodeError::Invalid)?;
        let member = out.get(start..).unwrap_or_default();
        let (crc, isize) = trailer.split_at(4);
        if le32(crc) != Some(crc32(member)) || le32(isize) != Some(member.len() as u32) {
            return Err(DecodeError::Invalid);
        }
        rest = data.get(used + 8..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(out);
        }
    }
}

/// The bytes after a valid gzip member header, or None.
fn gzip_header(b: &[u8]) -> Option<&[u8]> {
    let (&[id1, id2, cm, flg], _) = b.split_first_chunk::<4>()?;
    if id1 != 0x1f || id2 != 0x8b || cm != 8 || flg & FRESERVED != 0 {
        return None;
    }
    // MTIME (4), XFL, OS.
    let mut rest = b.get(10..)?;
    if flg & FEXTRA != 0 {
        let xlen = usize::from(u16::from_le_bytes(*rest.first_chunk::<2>()?));
        rest = rest.get(2 + xlen..)?;
    }
    for flag in [FNAME, FCOMMENT] {
        if flg & flag != 0 {
            let nul = rest.iter().position(|c| *c == 0)?;
            rest = rest.get(nul + 1..)?;
        }
    }
    if flg & FHCRC != 0 {
        rest = rest.get(2..)?;
    }
    Some(rest)
}

fn le32(b: &[u8]) -> Option<u32> {
    b.first_chunk::<4>().map(|c| u32::from_le_bytes(*c))
}

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        if let Some(slot) = table.as_mut_slice().split_at_mut_checked(n) {
            if let Some(first) = slot.1.first_mut() {
                *first = c;
            }
        }
        n += 1;
    }
    table
}

/// CRC-32 as used by gzip (ISO 3309, reflected, poly 0xEDB88320).
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for b in data {
        let i = usize::from((c as u8) ^ b);
        c = CRC_TABLE.get(i).copied().unwrap_or(0) ^ (c >> 8);
    }
    !c
}

// ---------------------------------------------------------------------------
// brotli

#[cfg(feature = "brotli")]
const BROTLI: Result<Coding, DecodeError> = Ok(Coding::Brotli);
#[cfg(not(feature = "brotli"))]
const BROTLI: Result<Coding, DecodeError> = Err(DecodeError::Unsupported);

#[cfg(feature = "brotli")]
fn unbrotli(body: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    let mut state = BrotliState::new(
        StandardAlloc::default(),
        StandardAlloc::default(),
        StandardAlloc::default(),
    );
    // `br` is RFC 7932 brotli: windows up to 16 MiB, not the large-window
    // extension (up to 1 GiB).
    state.set_parameter(BrotliDecoderParameter::BROTLI_DECODER_PARAM_LARGE_WINDOW, 0);
    let limit = max.saturating_add(1);
    let mut avail_in = body.len();
    let mut in_offset = 0usize;
    let mut total_out = 0usize;
    let mut out = Vec::new();
    loop {
        let start = out.len();
        let room = limit.saturating_sub(start).min(CHUNK);
        if room == 0 {
            return Err(DecodeError::TooLarge);
        }
        out.resize(start + room, 0);
        let mut avail_out = room;
        let mut out_offset = start;
        let r = BrotliDecompressStream(
            &mut avail_in,
            &mut in_offset,
            body,
            &mut avail_out,
            &mut out_offset,
            &mut out,
            &mut total_out,
            &mut state,
        );
        out.truncate(out_offset.min(start + room));
        if out.len() > max {
            return Err(DecodeError::TooLarge);
        }
        match r {
            BrotliResult::NeedsMoreOutput => {}
            // All of the body was given: more input means truncated.
            BrotliResult::NeedsMoreInput | BrotliResult::ResultFailure => {
                return Err(DecodeError::Invalid)
            }
            BrotliResult::ResultSuccess if avail_in == 0 => return Ok(out),
            // Bytes after the end of the stream.
            BrotliResult::ResultSuccess => return Err(DecodeError::Invalid),
        }
    }
}

/// Encoders for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) mod testutil {
    /// A gzip member (no optional header fields).
    pub fn gzip(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, 6));
        out.extend_from_slice(&super::crc32(data).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    /// zlib-wrapped deflate.
    pub fn zlib(data: &[u8]) -> Vec<u8> {
        miniz_oxide::deflate::compress_to_vec_zlib(data, 6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &[u8] = br#"{"items":[{"id":1,"price":10},{"id":2,"price":20}],"total":30}"#;

    fn zlib(data: &[u8]) -> Vec<u8> {
        miniz_oxide::deflate::compress_to_vec_zlib(data, 6)
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        miniz_oxide::deflate::compress_to_vec(data, 6)
    }

    /// A gzip member with the given header flags and fields.
    fn gzip_with(data: &[u8], flg: u8, extra: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, flg, 1, 2, 3, 4, 0, 3];
        out.extend_from_slice(extra);
        out.extend_from_slice(&raw_deflate(data));
        out.extend_from_slice(&crc32(data).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        gzip_with(data, 0, &[])
    }

    /// `printf '{"items":[{"id":1,"price":10},{"id":2,"price":20}],"total":30}' | gzip -9n | xxd -i`
    /// (GNU gzip 1.12) — an independent encoder.
    const GZIP_CLI: &[u8] = &[
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xab, 0x56, 0xca, 0x2c, 0x49,
        0xcd, 0x2d, 0x56, 0xb2, 0x8a, 0xae, 0x56, 0xca, 0x4c, 0x51, 0xb2, 0x32, 0xd4, 0x51, 0x2a,
        0x28, 0xca, 0x4c, 0x4e, 0x05, 0xb2, 0x0c, 0x6a, 0x75, 0x20, 0x62, 0x46, 0x70, 0x31, 0x23,
        0x83, 0xda, 0x58, 0x1d, 0xa5, 0x92, 0xfc, 0x92, 0xc4, 0x1c, 0x25, 0x2b, 0x63, 0x83, 0x5a,
        0x00, 0xc3, 0x63, 0x98, 0x67, 0x3e, 0x00, 0x00, 0x00,
    ];

    /// `printf '{"items":[{"id":1,"price":10},{"id":2,"price":20}],"total":30}' | brotli -c | xxd -i`
    /// (brotli 1.0.9, Debian).
    const BROTLI_CLI: &[u8] = &[
        0x1f, 0x3d, 0x00, 0x00, 0x8c, 0xd3, 0x15, 0xf7, 0x23, 0xbc, 0x4c, 0x32, 0xc8, 0xc5, 0x91,
        0x3f, 0x0f, 0xd6, 0x32, 0xec, 0xb2, 0xc4, 0x2a, 0x9d, 0x3e, 0xa7, 0xdc, 0xb2, 0x2c, 0x40,
        0x0d, 0x3c, 0xea, 0xbf, 0xd8, 0x61, 0x07, 0x6c, 0xd7, 0x36, 0x90, 0x67, 0xb0, 0x18, 0xdf,
        0xa1, 0x44, 0x37, 0xce, 0x95, 0x2b, 0xcc, 0xae, 0x78, 0x61, 0xa6, 0x1d,
    ];

    #[test]
    fn identity_borrows() {
        for ce in ["", "identity", " Identity ", ",", "identity, identity"] {
            let out = decode(ce.as_bytes(), TEXT, 1000).unwrap();
            assert!(matches!(out, Cow::Borrowed(_)), "{ce}");
            assert_eq!(&*out, TEXT);
        }
        assert_eq!(decode(b"", TEXT, 10), Err(DecodeError::TooLarge));
        assert!(is_identity(b"") && is_identity(b"identity"));
        assert!(!is_identity(b"gzip") && !is_identity(b"zstd"));
    }

    #[test]
    fn gzip_roundtrip_and_aliases() {
        let gz = gzip(TEXT);
        for ce in ["gzip", "GZIP", "x-gzip", " gzip "] {
            assert_eq!(&*decode(ce.as_bytes(), &gz, 1000).unwrap(), TEXT, "{ce}");
        }
    }

    #[test]
    fn gzip_from_gnu_gzip() {
        assert_eq!(&*decode(b"gzip", GZIP_CLI, 1000).unwrap(), TEXT);
    }

    #[test]
    fn gzip_header_fields() {
        // FEXTRA with 3 bytes, FNAME, FCOMMENT, FHCRC.
        let mut extra = vec![3, 0, b'a', b'b', b'c'];
        extra.extend_from_slice(b"name.json\0");
        extra.extend_from_slice(b"a comment\0");
        extra.extend_from_slice(&[0xaa, 0xbb]);
        let gz = gzip_with(TEXT, FEXTRA | FNAME | FCOMMENT | FHCRC, &extra);
        assert_eq!(&*decode(b"gzip", &gz, 1000).unwrap(), TEXT);
        // Reserved flag bits set.
        let gz = gzip_with(TEXT, 0x20, &[]);
        assert_eq!(decode(b"gzip", &gz, 1000), Err(DecodeError::Invalid));
        // FNAME without its terminator.
        let gz = [0x1f, 0x8b, 8, FNAME, 0, 0, 0, 0, 0, 3, b'a', b'b'];
        assert_eq!(decode(b"gzip", &gz, 1000), Err(DecodeError::Invalid));
    }

    #[test]
    fn gzip_multi_member() {
        let mut gz = gzip(b"hello ");
        gz.extend_from_slice(&gzip(b"world"));
        assert_eq!(&*decode(b"gzip", &gz, 1000).unwrap(), b"hello world");
        // The limit applies to the concatenation.
        assert_eq!(decode(b"gzip", &gz, 10), Err(DecodeError::TooLarge));
        assert_eq!(&*decode(b"gzip", &gz, 11).unwrap(), b"hello world");
    }

    #[test]
    fn gzip_many_members() {
        let mut gz = Vec::new();
        for i in 0..2000u32 {
            gz.extend_from_slice(&gzip(&[b'a' + (i % 26) as u8]));
        }
        let out = decode(b"gzip", &gz, 1 << 20).unwrap();
        assert_eq!(out.len(), 2000);
        assert_eq!(&out[..3], b"abc");
        assert_eq!(decode(b"gzip", &gz, 1999), Err(DecodeError::TooLarge));
    }

    #[test]
    fn gzip_corruption_detected() {
        let gz = gzip(TEXT);
        // Truncated anywhere.
        for cut in 0..gz.len() {
            assert_eq!(
                decode(b"gzip", &gz[..cut], 1000),
                if cut == 0 {
                    Ok(Cow::Borrowed(&b""[..]))
                } else {
                    Err(DecodeError::Invalid)
                },
                "cut at {cut}"
            );
        }
        // Bad CRC, bad ISIZE, bad magic, trailing garbage.
        let n = gz.len();
        for i in [n - 8, n - 1, 0, 2] {
            let mut bad = gz.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                decode(b"gzip", &bad, 1000),
                Err(DecodeError::Invalid),
                "{i}"
            );
        }
        let mut trailing = gz.clone();
        trailing.extend_from_slice(b"xx");
        assert_eq!(decode(b"gzip", &trailing, 1000), Err(DecodeError::Invalid));
        assert_eq!(decode(b"gzip", TEXT, 1000), Err(DecodeError::Invalid));
    }

    #[test]
    fn deflate_zlib_and_raw() {
        assert_eq!(&*decode(b"deflate", &zlib(TEXT), 1000).unwrap(), TEXT);
        assert_eq!(
            &*decode(b"Deflate", &raw_deflate(TEXT), 1000).unwrap(),
            TEXT
        );
        // Adler-32 mismatch: not valid zlib, and not valid raw deflate either.
        let mut z = zlib(TEXT);
        let n = z.len();
        z[n - 1] ^= 0xff;
        assert_eq!(decode(b"deflate", &z, 1000), Err(DecodeError::Invalid));
        assert_eq!(
            decode(b"deflate", b"not deflate", 1000),
            Err(DecodeError::Invalid)
        );
        let mut trailing = zlib(TEXT);
        trailing.push(0);
        assert_eq!(
            decode(b"deflate", &trailing, 1000),
            Err(DecodeError::Invalid)
        );
    }

    #[cfg(feature = "brotli")]
    #[test]
    fn brotli() {
        assert_eq!(&*decode(b"br", BROTLI_CLI, 1000).unwrap(), TEXT);
        assert_eq!(decode(b"br", BROTLI_CLI, 10), Err(DecodeError::TooLarge));
        assert_eq!(
            decode(b"br", &BROTLI_CLI[..BROTLI_CLI.len() - 3], 1000),
            Err(DecodeError::Invalid)
        );
        assert_eq!(
            decode(b"br", b"\xff\xff\xff garbage", 1000),
            Err(DecodeError::Invalid)
        );
        let mut trailing = BROTLI_CLI.to_vec();
        trailing.extend_from_slice(b"zz");
        assert_eq!(decode(b"br", &trailing, 1000), Err(DecodeError::Invalid));
    }

    #[test]
    fn stacked_codings_undone_in_reverse() {
        // gzip applied first, then deflate.
        let body = zlib(&gzip(TEXT));
        assert_eq!(&*decode(b"gzip, deflate", &body, 1000).unwrap(), TEXT);
        assert_eq!(
            &*decode(b"gzip,,identity ,deflate", &body, 1000).unwrap(),
            TEXT
        );
        // In the wrong order it does not decode.
        assert_eq!(
            decode(b"deflate, gzip", &body, 1000),
            Err(DecodeError::Invalid)
        );
        let body = gzip(&gzip(TEXT));
        assert_eq!(&*decode(b"gzip, x-gzip", &body, 1000).unwrap(), TEXT);
    }

    #[cfg(feature = "brotli")]
    #[test]
    fn brotli_stacked_and_bounded() {
        let body = gzip(BROTLI_CLI);
        assert_eq!(&*decode(b"br, gzip", &body, 1000).unwrap(), TEXT);
        // `head -c 4194304 /dev/zero | brotli -c`: 14 bytes for 4 MiB.
        let br_bomb: &[u8] = &[
            0x9f, 0xff, 0xff, 0x3f, 0xf8, 0x27, 0x00, 0xe2, 0xb1, 0x40, 0x20, 0xf7, 0xfe, 0x07,
        ];
        assert_eq!(decode(b"br", br_bomb, 64 << 10), Err(DecodeError::TooLarge));
        assert_eq!(decode(b"br", br_bomb, 4 << 20).unwrap().len(), 4 << 20);
        assert_eq!(
            decode(b"br", br_bomb, (4 << 20) - 1),
            Err(DecodeError::TooLarge)
        );
    }

    /// The default build leaves brotli out: `br` bodies are compared as received.
    #[cfg(not(feature = "brotli"))]
    #[test]
    fn brotli_left_out() {
        assert_eq!(
            decode(b"br", BROTLI_CLI, 1000),
            Err(DecodeError::Unsupported)
        );
        assert_eq!(
            decode(b"gzip, br", BROTLI_CLI, 1000),
            Err(DecodeError::Unsupported)
        );
    }

    #[test]
    fn unsupported() {
        for ce in ["compress", "zstd", "gzip, zstd", "gzip;q=1", "\u{e9}"] {
            assert_eq!(
                decode(ce.as_bytes(), &gzip(TEXT), 1000),
                Err(DecodeError::Unsupported),
                "{ce}"
            );
        }
        assert_eq!(
            decode(&[0xff, 0xfe], b"x", 1000),
            Err(DecodeError::Unsupported)
        );
        // An empty body is empty under any coding; an unknown one is still reported.
        assert_eq!(&*decode(b"gzip", b"", 0).unwrap(), b"");
        assert_eq!(decode(b"zstd", b"", 0), Err(DecodeError::Unsupported));
    }

    #[test]
    fn bombs_are_cut_off() {
        let zeros = vec![0u8; 4 << 20];
        let gz = gzip(&zeros);
        assert!(gz.len() < 8 << 10, "{}", gz.len());
        assert_eq!(decode(b"gzip", &gz, 64 << 10), Err(DecodeError::TooLarge));
        assert_eq!(
            decode(b"deflate", &zlib(&zeros), 64 << 10),
            Err(DecodeError::TooLarge)
        );
        assert_eq!(
            decode(b"deflate", &raw_deflate(&zeros), 1000),
            Err(DecodeError::TooLarge)
        );
        // Exactly at the limit is fine, one byte over is not.
        let out = decode(b"gzip", &gz, 4 << 20).unwrap();
        assert_eq!(out.len(), 4 << 20);
        assert_eq!(
            decode(b"gzip", &gz, (4 << 20) - 1),
            Err(DecodeError::TooLarge)
        );
        // A nested bomb: each layer is bounded.
        let nested = gzip(&gz);
        assert_eq!(
            decode(b"gzip, gzip", &nested, 64 << 10),
            Err(DecodeError::TooLarge)
        );
        assert_eq!(
            decode(b"gzip", b"\x1f\x8b\x08\x00", 0),
            Err(DecodeError::Invalid)
        );
        assert_eq!(decode(b"gzip", &gzip(b"a"), 0), Err(DecodeError::TooLarge));
    }

    #[test]
    fn never_expands_past_limit() {
        // The bound is enforced inside the inflate loop, not after it.
        let zeros = vec![0u8; 1 << 20];
        let mut out = Vec::new();
        let mut state = InflateState::new_boxed(DataFormat::Raw);
        let r = inflate_into(
            &mut state,
            DataFormat::Raw,
            &raw_deflate(&zeros),
            &mut out,
            1000,
        );
        assert_eq!(r, Err(DecodeError::TooLarge));
        assert_eq!(out.len(), 1001);
        assert!(out.capacity() <= CHUNK.max(2048), "{}", out.capacity());
    }

    #[test]
    fn crc32_check_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678u32;
        for len in 0..200usize {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            for ce in ["gzip", "deflate", "br", "gzip, br, deflate"] {
                let _ = decode(ce.as_bytes(), &buf, 1 << 16);
            }
            let mut gz = vec![0x1f, 0x8b, 8, (len % 32) as u8];
            gz.extend_from_slice(&buf);
            let _ = decode(b"gzip", &gz, 1 << 16);
        }
    }
}
