//! The answer pairs the benchmarks compare, shared by `benches/compare.rs`,
//! `benches/protobuf.rs` (natively, with divan) and `benches/v8-loop` (the
//! module's code under V8): the JSON order of `make bench`'s E and the gRPC
//! Item of its GD, byte for byte as scripts/bench.py sends them.
#![allow(dead_code)]

use darklaunch::compare::{BodyMode, CompareRules};
use darklaunch::pointer::PointerPattern;

pub fn item(i: usize, price: f64) -> String {
    format!(
        r#"{{"id":{i},"sku":"SKU-{i:05}","name":"Item number {i}","price":{price},"qty":{},"tags":["t{}","blue"],"etag":"e{i:x}"}}"#,
        i % 7 + 1,
        i % 3
    )
}

/// An order of about `size` bytes; item `changed` (if any) has another price.
pub fn doc(size: usize, changed: Option<usize>) -> String {
    doc_at(size, changed, "2024-05-01T12:00:00Z")
}

/// [`doc`] with the given `meta.generated_at` (an ignored location).
pub fn doc_at(size: usize, changed: Option<usize>, generated_at: &str) -> String {
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
pub fn grpc_item(generated_at_ms: u64) -> Vec<u8> {
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
pub fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The primary and dark messages of scripts/bench.py.
pub fn grpc_items() -> (Vec<u8>, Vec<u8>) {
    (grpc_item(1_714_564_800_000), grpc_item(1_714_564_801_000))
}

/// An OK answer's headers and trailers (bodies are compared only when both
/// calls succeeded).
pub fn grpc_headers() -> Vec<(String, Vec<u8>)> {
    vec![
        ("content-type".to_string(), b"application/grpc".to_vec()),
        ("grpc-status".to_string(), b"0".to_vec()),
    ]
}

/// The JSON pair's rules: `make bench`'s E ignores these two locations.
pub fn json_rules() -> CompareRules {
    CompareRules {
        body: BodyMode::Json,
        ignore: pats(&["/meta/generated_at", "/items/*/etag"]),
        max_body_bytes: 1 << 20,
        ..CompareRules::default()
    }
}

pub fn pats(list: &[&str]) -> Vec<PointerPattern> {
    let out: Vec<PointerPattern> = list
        .iter()
        .filter_map(|s| PointerPattern::parse(s).ok())
        .collect();
    assert_eq!(out.len(), list.len(), "bad pattern in {list:?}");
    out
}

/// The gRPC pair's rules (`body` protobuf, or json for the rendered texts).
pub fn grpc_rules(body: BodyMode) -> CompareRules {
    CompareRules {
        body,
        ignore: PointerPattern::parse("/7/1").into_iter().collect(),
        max_body_bytes: 1 << 20,
        ..CompareRules::default()
    }
}
