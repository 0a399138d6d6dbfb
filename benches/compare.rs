//! Cost of comparing two JSON answers: `cargo bench --bench compare`.
//!
//! Realistic documents (an order with an array of line items) of about
//! 1 KiB, 4 KiB (the size `make bench` sends through Envoy), 16 KiB and
//! 64 KiB; the dark answer differs from the primary in one field of one item
//! in the middle. Throughput is per byte of the primary
//! body (both bodies are parsed and walked).

use std::hint::black_box;

use darklaunch::compare::{try_compare, BodyMode, CompareRules, Side, Verdict};
use darklaunch::json;
use darklaunch::pointer::PointerPattern;
use divan::counter::BytesCount;
use divan::Bencher;

fn main() {
    divan::main();
}

const SIZES: [usize; 4] = [1 << 10, 4 << 10, 16 << 10, 64 << 10];

fn item(i: usize, price: f64) -> String {
    format!(
        r#"{{"id":{i},"sku":"SKU-{i:05}","name":"Item number {i}","price":{price},"qty":{},"tags":["t{}","blue"],"etag":"e{i:x}"}}"#,
        i % 7 + 1,
        i % 3
    )
}

/// An order of about `size` bytes; item `changed` (if any) has another price.
fn doc(size: usize, changed: Option<usize>) -> String {
    doc_at(size, changed, "2024-05-01T12:00:00Z")
}

/// [`doc`] with the given `meta.generated_at` (an ignored location).
fn doc_at(size: usize, changed: Option<usize>, generated_at: &str) -> String {
    let mut items = Vec::new();
    let mut len = 200;
    while len < size {
        let i = items.len();
        let price = 10.0 + i as f64 * 0.25 + if changed == Some(i) { 1.0 } else { 0.0 };
        let it = item(i, price);
        len += it.len() + 1;
        items.push(it);
    }
    format!(
        r#"{{"order_id":"ord-8f3a2c","status":"confirmed","customer":{{"id":4711,"name":"Ada Lovelace","email":"ada@example.com"}},"meta":{{"generated_at":"{generated_at}","version":2}},"items":[{}],"total":{}}}"#,
        items.join(","),
        items.len() * 10
    )
}

fn rules() -> CompareRules {
    CompareRules {
        body: BodyMode::Json,
        ignore: pats(&["/meta/generated_at", "/items/*/etag"]),
        max_body_bytes: 1 << 20,
        ..CompareRules::default()
    }
}

fn pats(list: &[&str]) -> Vec<PointerPattern> {
    let out: Vec<PointerPattern> = list
        .iter()
        .filter_map(|s| PointerPattern::parse(s).ok())
        .collect();
    assert_eq!(out.len(), list.len(), "bad pattern in {list:?}");
    out
}

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
