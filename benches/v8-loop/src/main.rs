//! `v8-loop MODE ROUNDS ITERATIONS`: runs one comparison ITERATIONS times
//! per round and prints each round's µs per iteration, one line per round.
//! MODE: `json` (E's 4 KiB pair: only an ignored timestamp differs),
//! `json-diff` (one price differs), `json-parse` (parsing the primary
//! only), `grpc` (GD's protobuf pair, an ignored field differs); and one
//! request's whole life through the engine with a host that does nothing
//! ([`quiet::QuietHost`]): `engine-c` (no launch matches), `engine-f` (a
//! launch matches, the request is sampled out), `engine-d` (shadowed, status
//! and a header compared), `engine-e` (shadowed, E's JSON pair compared):
//! the module's own share of `make bench`'s C, F, D and E.
use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use darklaunch::compare::{try_compare_call, BodyMode, CompareRules, Side};
use darklaunch::json;

#[path = "../../common/pairs.rs"]
mod pairs;
mod quiet;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(rounds), Some(iterations)) = (
        args.first(),
        args.get(1).and_then(|s| s.parse::<u32>().ok()),
        args.get(2).and_then(|s| s.parse::<u32>().ok()),
    ) else {
        eprintln!("usage: v8-loop MODE ROUNDS ITERATIONS");
        return ExitCode::FAILURE;
    };
    if let Some(kind) = mode.strip_prefix("engine-") {
        return quiet::run(kind, rounds, iterations);
    }
    let json_pair = || {
        let a = pairs::doc(4096, None);
        (a.clone(), pairs::doc_at(4096, None, "2024-05-01T12:00:01Z"))
    };
    let (a, b, rules, path, headers) = match mode.as_str() {
        "json" | "json-parse" => {
            let (a, b) = json_pair();
            (
                a.into_bytes(),
                b.into_bytes(),
                pairs::json_rules(),
                "",
                Vec::new(),
            )
        }
        "json-diff" => {
            let a = pairs::doc(4096, None);
            let n = a.matches("\"sku\"").count();
            let b = pairs::doc(4096, Some(n / 2));
            (
                a.into_bytes(),
                b.into_bytes(),
                pairs::json_rules(),
                "",
                Vec::new(),
            )
        }
        "grpc" => {
            let (a, b) = pairs::grpc_items();
            (
                pairs::grpc_frame(&a),
                pairs::grpc_frame(&b),
                pairs::grpc_rules(BodyMode::Protobuf),
                "/shop.Catalog/GetItem",
                pairs::grpc_headers(),
            )
        }
        _ => {
            eprintln!("unknown mode {mode}");
            return ExitCode::FAILURE;
        }
    };
    let side = |body| Side {
        status: 200,
        headers: &headers,
        body,
    };
    let (sa, sb) = (side(&a[..]), side(&b[..]));
    // The pair is what the mode says: a match, or one difference.
    let want_match = mode != "json-diff";
    match try_compare_call(&rules, &sa, &sb, path) {
        Ok(v) if v.is_match() == want_match => {}
        other => {
            eprintln!("{mode}: unexpected verdict {other:?}");
            return ExitCode::FAILURE;
        }
    }
    let parse_only = mode == "json-parse";
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..iterations {
            if parse_only {
                black_box(json::parse(black_box(&a)).is_ok());
            } else {
                black_box(run(black_box(&rules), &sa, &sb, path));
            }
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(iterations.max(1));
        println!("{us:.3}");
    }
    ExitCode::SUCCESS
}

fn run(rules: &CompareRules, a: &Side, b: &Side, path: &str) -> bool {
    try_compare_call(rules, a, b, path).is_ok_and(|v| v.is_match())
}
