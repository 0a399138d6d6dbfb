//! Cost of comparing two gRPC answers: `cargo bench --features fuzzing
//! --bench protobuf`.
//!
//! The message of `make bench` (scripts/bench.py `grpc_item()`, ported
//! below): an Item of about 2.6 KiB, 40 nested Variant messages, repeated
//! tags, a nested meta message and a ~500-byte description; the dark copy
//! differs only in field 7.1 (meta.generated_at), which the rules ignore.
//! For reference, `json_reference` compares the JSON texts the pair renders
//! to under JSON rules: what the protobuf comparison costs beyond it is the
//! framing and the rendering.

use std::borrow::Cow;
use std::hint::black_box;

use darklaunch::compare::{try_compare_call, BodyMode, CompareRules, Side};
use darklaunch::pointer::PointerPattern;
use darklaunch::protobuf::{render_pair, split_frames};
use divan::counter::BytesCount;
use divan::Bencher;

fn main() {
    divan::main();
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn pb_uint(out: &mut Vec<u8>, number: u64, v: u64) {
    varint(out, number << 3);
    varint(out, v);
}

fn pb_double(out: &mut Vec<u8>, number: u64, x: f64) {
    varint(out, number << 3 | 1);
    out.extend_from_slice(&x.to_le_bytes());
}

fn pb_len(out: &mut Vec<u8>, number: u64, data: &[u8]) {
    varint(out, number << 3 | 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// scripts/bench.py `grpc_item(generated_at_ms)`, byte for byte.
fn grpc_item(generated_at_ms: u64) -> Vec<u8> {
    let colors = [
        "red", "blue", "green", "black", "white", "sand", "navy", "olive",
    ];
    let sizes = ["XS", "S", "M", "L", "XL", "XXL"];
    let mut variants = Vec::new();
    for i in 0..40u64 {
        let mut v = Vec::new();
        pb_len(&mut v, 1, format!("SKU-00042-{i:02}").as_bytes());
        let pick =
            |list: &[&'static str], n: usize| list.get(i as usize % n).copied().unwrap_or_default();
        pb_len(&mut v, 2, pick(&colors, 8).as_bytes());
        pb_len(&mut v, 3, pick(&sizes, 6).as_bytes());
        pb_double(&mut v, 4, 129.95 + i as f64 * 0.25);
        pb_uint(&mut v, 5, 3 + i * 7 % 40);
        pb_len(&mut v, 6, format!("eu-west-{}b", 1 + i % 3).as_bytes());
        pb_len(&mut variants, 5, &v);
    }
    let mut tags = Vec::new();
    for t in [
        "outdoor",
        "waterproof",
        "hiking",
        "unisex",
        "sale",
        "new-season",
        "breathable",
        "recycled",
    ] {
        pb_len(&mut tags, 6, t.as_bytes());
    }
    let mut meta = Vec::new();
    pb_uint(&mut meta, 1, generated_at_ms);
    pb_uint(&mut meta, 2, 2);
    pb_len(&mut meta, 3, b"catalog-service");
    let description = concat!(
        "A lightweight three-layer shell for hiking and everyday wear: taped seams, ",
        "an adjustable hood, two zipped hand pockets and a chest pocket, pit zips ",
        "for ventilation and a dropped back hem. The face fabric is made from ",
        "recycled polyester with a PFC-free durable water repellent finish; the ",
        "membrane is rated 20,000 mm hydrostatic head and 15,000 g/m2/24h ",
        "breathability. Packs into its own chest pocket. Machine washable at 30 ",
        "degrees; tumble dry low to reactivate the finish."
    );
    let mut out = Vec::new();
    pb_uint(&mut out, 1, 42);
    pb_len(&mut out, 2, b"SKU-00042");
    pb_len(&mut out, 3, b"Trailhead 3L Shell Jacket");
    pb_double(&mut out, 4, 129.95);
    out.extend_from_slice(&variants);
    out.extend_from_slice(&tags);
    pb_len(&mut out, 7, &meta);
    pb_len(&mut out, 8, description.as_bytes());
    out
}

/// One uncompressed gRPC message.
fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The primary and dark messages of scripts/bench.py.
fn items() -> (Vec<u8>, Vec<u8>) {
    (grpc_item(1_714_564_800_000), grpc_item(1_714_564_801_000))
}

fn rules(body: BodyMode) -> CompareRules {
    CompareRules {
        body,
        ignore: PointerPattern::parse("/7/1").into_iter().collect(),
        max_body_bytes: 1 << 20,
        ..CompareRules::default()
    }
}

/// An OK answer's headers and trailers (bodies are compared only when both
/// calls succeeded).
fn grpc_headers() -> Vec<(String, Vec<u8>)> {
    vec![
        ("content-type".to_string(), b"application/grpc".to_vec()),
        ("grpc-status".to_string(), b"0".to_vec()),
    ]
}

/// Both messages rendered together as JSON texts.
#[divan::bench]
fn render(bencher: Bencher) {
    let (a, b) = items();
    let (ca, cb) = ([Cow::Borrowed(&a[..])], [Cow::Borrowed(&b[..])]);
    bencher
        .counter(BytesCount::new(a.len()))
        .bench(|| render_pair(black_box(&ca), black_box(&cb), None));
}

/// Both bodies split into messages.
#[divan::bench]
fn split(bencher: Bencher) {
    let (a, b) = items();
    let (fa, fb) = (grpc_frame(&a), grpc_frame(&b));
    bencher.counter(BytesCount::new(a.len())).bench(|| {
        (
            split_frames(black_box(&fa), b"", 1 << 20).is_ok(),
            split_frames(black_box(&fb), b"", 1 << 20).is_ok(),
        )
    });
}

/// The whole comparison of the two gRPC answers (framing, rendering, the
/// JSON walk), `compare.body: protobuf`, `/7/1` ignored: a match.
#[divan::bench]
fn compare(bencher: Bencher) {
    let (a, b) = items();
    let (fa, fb) = (grpc_frame(&a), grpc_frame(&b));
    let headers = grpc_headers();
    let r = rules(BodyMode::Protobuf);
    assert_eq!(r.ignore.len(), 1);
    let side = |body| Side {
        status: 200,
        headers: &headers,
        body,
    };
    let v = try_compare_call(&r, &side(&fa), &side(&fb), "/shop.Catalog/GetItem");
    assert!(v.is_ok_and(|v| v.is_match()));
    // Not ignored, field 7.1 is the one difference.
    let strict = CompareRules {
        ignore: Vec::new(),
        ..r.clone()
    };
    let v = try_compare_call(&strict, &side(&fa), &side(&fb), "/shop.Catalog/GetItem");
    assert_eq!(v.map(|v| v.paths), Ok(vec!["/7/1".to_string()]));
    bencher.counter(BytesCount::new(a.len())).bench(|| {
        try_compare_call(
            black_box(&r),
            &side(black_box(&fa)),
            &side(black_box(&fb)),
            "/shop.Catalog/GetItem",
        )
    });
}

/// For reference: the JSON texts the pair renders to (about 3.3 KiB each),
/// compared as JSON bodies under the same rules.
#[divan::bench]
fn json_reference(bencher: Bencher) {
    let (a, b) = items();
    let (ja, jb) =
        render_pair(&[Cow::Borrowed(&a[..])], &[Cow::Borrowed(&b[..])], None).unwrap_or_default();
    assert!(ja.starts_with('{') && jb.starts_with('{'));
    let r = rules(BodyMode::Json);
    let side = |body| Side {
        status: 200,
        headers: &[],
        body,
    };
    let v = try_compare_call(&r, &side(ja.as_bytes()), &side(jb.as_bytes()), "");
    assert!(v.is_ok_and(|v| v.is_match()));
    bencher.counter(BytesCount::new(ja.len())).bench(|| {
        try_compare_call(
            black_box(&r),
            &side(black_box(ja.as_bytes())),
            &side(black_box(jb.as_bytes())),
            "",
        )
    });
}
