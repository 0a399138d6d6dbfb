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
use darklaunch::protobuf::{render_pair, split_frames};
use divan::counter::BytesCount;
use divan::Bencher;

#[path = "common/pairs.rs"]
mod pairs;
use pairs::{grpc_frame, grpc_headers, grpc_items as items, grpc_rules as rules};

fn main() {
    divan::main();
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
