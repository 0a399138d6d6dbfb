//! Cost of comparing two JSON answers: `cargo bench --bench compare`.
//!
//! Realistic documents (an order with an array of line items) of about
//! 1 KiB, 4 KiB (the size `make bench` sends through Envoy), 16 KiB and
//! 64 KiB; the dark answer differs from the primary in one field of one item
//! in the middle. Throughput is per byte of the primary
//! body (both bodies are parsed and walked).

use std::hint::black_box;

use darklaunch::compare::{try_compare, CompareRules, Side, Verdict};
use darklaunch::json;
use divan::counter::BytesCount;
use divan::Bencher;

#[path = "common/pairs.rs"]
mod pairs;
use pairs::{doc, doc_at, json_rules as rules, pats};

fn main() {
    divan::main();
}

const SIZES: [usize; 4] = [1 << 10, 4 << 10, 16 << 10, 64 << 10];

fn pair(size: usize) -> (String, String) {
    let a = doc(size, None);
    let n = a.matches("\"sku\"").count();
    (a, doc(size, Some(n / 2)))
}

/// One differing field.
#[divan::bench(args = SIZES)]
fn one_difference(bencher: Bencher, size: usize) {
    let (a, b) = pair(size);
    let r = rules();
    let v = verdict(&r, &a, &b);
    assert_eq!(v.paths, vec!["/items/*/price"]);
    bench_compare(bencher, &r, &a, &b);
}

/// Semantically equal, different bytes (whitespace): the full parse and walk
/// of a match.
#[divan::bench(args = SIZES)]
fn equal_reformatted(bencher: Bencher, size: usize) {
    let a = doc(size, None);
    let b = a.replace(",\"", ", \"");
    let r = rules();
    assert!(verdict(&r, &a, &b).is_match());
    bench_compare(bencher, &r, &a, &b);
}

/// The pair `make bench` sends through Envoy (scripts/bench.py): the same
/// order, only the ignored `meta.generated_at` differs.
#[divan::bench(args = SIZES)]
fn ignored_difference(bencher: Bencher, size: usize) {
    let a = doc(size, None);
    let b = doc_at(size, None, "2024-05-01T12:00:01Z");
    let r = rules();
    assert!(a != b);
    assert!(verdict(&r, &a, &b).is_match());
    bench_compare(bencher, &r, &a, &b);
}

/// The items array compared as a multiset, with the differing item.
#[divan::bench(args = SIZES)]
fn one_difference_unordered(bencher: Bencher, size: usize) {
    let (a, b) = pair(size);
    let mut r = rules();
    r.unordered_arrays = pats(&["/items"]);
    assert!(!verdict(&r, &a, &b).is_match());
    bench_compare(bencher, &r, &a, &b);
}

/// For reference: parsing both bodies into `serde_json::Value`, the floor of
/// any semantic comparison built on it.
#[divan::bench(args = SIZES)]
fn parse_only(bencher: Bencher, size: usize) {
    let (a, b) = pair(size);
    bencher.counter(BytesCount::new(a.len())).bench(|| {
        (
            serde_json::from_slice::<serde_json::Value>(black_box(a.as_bytes())).is_ok(),
            serde_json::from_slice::<serde_json::Value>(black_box(b.as_bytes())).is_ok(),
        )
    });
}

/// Parsing both bodies with the comparator's own parser (`json::parse`):
/// compare with `parse_only`.
#[divan::bench(args = SIZES)]
fn parse_flat(bencher: Bencher, size: usize) {
    let (a, b) = pair(size);
    bencher.counter(BytesCount::new(a.len())).bench(|| {
        (
            json::parse(black_box(a.as_bytes())).is_ok(),
            json::parse(black_box(b.as_bytes())).is_ok(),
        )
    });
}

/// Time `try_compare` on one pair; throughput counted per byte of the
/// primary.
fn bench_compare(bencher: Bencher, r: &CompareRules, a: &str, b: &str) {
    bencher.counter(BytesCount::new(a.len())).bench(|| {
        try_compare(
            black_box(r),
            &side(black_box(a.as_bytes())),
            &side(black_box(b.as_bytes())),
        )
    });
}

/// The verdict on one pair (the documents are within `max_body_bytes`).
fn verdict(r: &CompareRules, a: &str, b: &str) -> Verdict {
    let v = try_compare(r, &side(a.as_bytes()), &side(b.as_bytes()));
    assert!(v.is_ok(), "bodies over max_body_bytes");
    v.unwrap_or_default()
}

fn side(body: &[u8]) -> Side<'_> {
    Side {
        status: 200,
        headers: &[],
        body,
    }
}
