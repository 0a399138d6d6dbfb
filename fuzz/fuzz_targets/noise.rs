//! `noise::NoiseModel`: A/A noise learning and classification driven by an
//! arbitrary sequence of observations (pointers from a small pool plus
//! arbitrary ones, a clock that jumps either way, odd configurations).
//! The input is decoded with `arbitrary`.

#![no_main]

use arbitrary::Arbitrary;
use darklaunch::compare::{DiffKind, Difference, Verdict};
use darklaunch::noise::{Class, NoiseConfig, NoiseModel};
use libfuzzer_sys::fuzz_target;

const POOL: [&str; 8] = [
    "",
    "/meta/generated_at",
    "/items/*/etag",
    "/items",
    "/a~1b",
    "/*",
    "/id",
    "/items/*/price",
];

const KINDS: [DiffKind; 5] = [
    DiffKind::Value,
    DiffKind::Type,
    DiffKind::Missing,
    DiffKind::Extra,
    DiffKind::ArrayLength,
];

#[derive(Arbitrary, Debug)]
enum Op {
    Aa { dt: i32, diffs: Vec<(u8, u8)> },
    Raw { dt: i32, diffs: Vec<(u8, u8)> },
    LearnAa { dt: i32, verdict: V },
    LearnRaw { dt: i32, verdict: V },
    Classify(V),
}

#[derive(Arbitrary, Debug)]
struct V {
    status: bool,
    headers: bool,
    body: bool,
    diffs: Vec<(u8, u8)>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    half_life_ms: u64,
    min_aa: f64,
    slack: f64,
    max_paths: u8,
    extra: Vec<String>,
    start_ms: u64,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let cfg = NoiseConfig {
        half_life_ms: input.half_life_ms,
        min_aa_observations: input.min_aa,
        slack: input.slack,
        max_paths: usize::from(input.max_paths),
    };
    let mut model = NoiseModel::new(cfg.clone());
    let pointer = |i: u8| -> String {
        let i = usize::from(i);
        match input.extra.get(i.wrapping_sub(POOL.len())) {
            Some(s) if i >= POOL.len() => s.clone(),
            _ => POOL[i % POOL.len()].to_string(),
        }
    };
    let diffs = |list: &[(u8, u8)]| -> Vec<Difference> {
        list.iter()
            .take(80)
            .map(|&(p, k)| Difference {
                pointer: pointer(p),
                kind: KINDS[usize::from(k) % KINDS.len()],
            })
            .collect()
    };
    let verdict = |v: &V| Verdict {
        status: v.status,
        headers: if v.headers {
            vec!["x-version".to_string()]
        } else {
            Vec::new()
        },
        body: v.body || !v.diffs.is_empty(),
        diffs: diffs(&v.diffs),
        ..Verdict::default()
    };
    let step = |now: u64, dt: i32| -> u64 {
        if dt >= 0 {
            now.saturating_add(u64::from(dt.unsigned_abs()))
        } else {
            now.saturating_sub(u64::from(dt.unsigned_abs()))
        }
    };
    let mut now = input.start_ms;
    for op in input.ops.iter().take(200) {
        match op {
            Op::Aa { dt, diffs: d } => {
                now = step(now, *dt);
                model.observe_aa(now, &diffs(d));
            }
            Op::Raw { dt, diffs: d } => {
                now = step(now, *dt);
                model.observe_raw(now, &diffs(d));
            }
            Op::LearnAa { dt, verdict: v } => {
                now = step(now, *dt);
                let _ = model.learn_aa(now, &verdict(v));
            }
            Op::LearnRaw { dt, verdict: v } => {
                now = step(now, *dt);
                let _ = model.learn_raw(now, &verdict(v));
            }
            Op::Classify(v) => {
                let v = verdict(v);
                let class = model.classify(&v);
                if v.is_match() {
                    assert_eq!(class, Class::Match);
                } else {
                    assert_ne!(class, Class::Match);
                }
                if v.status || !v.headers.is_empty() {
                    assert_eq!(class, Class::Mismatch);
                }
            }
        }
        assert!(model.tracked() <= cfg.max_paths);
        for i in 0..POOL.len() as u8 {
            let p = pointer(i);
            if let Some(r) = model.noise_rate(&p) {
                assert!(!r.is_sign_negative() || r == 0.0, "rate {r}");
            }
            let _ = model.is_noise(&p);
        }
    }
});
