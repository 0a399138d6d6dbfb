//! `limits`: the token bucket and the circuit breaker as the filter keeps
//! them in Envoy's shared data. Their state is decoded from arbitrary bytes
//! (another worker or an older module version may have written anything),
//! then driven by a sequence of calls with a clock that may jump either way.
//! The input is decoded with `arbitrary`.

#![no_main]

use arbitrary::Arbitrary;
use darklaunch::config::Breaker;
use darklaunch::limits::{Admit, BreakerState, Bucket, Phase};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Take { dt: i32 },
    Admit { dt: i32 },
    Record { dt: i32, failed: bool, trial: bool },
}

#[derive(Arbitrary, Debug)]
struct Input {
    bucket: Vec<u8>,
    breaker: Vec<u8>,
    start_ms: u64,
    rate: u8,
    rate_raw: f64,
    failure_ratio: u8,
    min_calls: u16,
    window_s: u16,
    open_s: u32,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    // What configuration validation lets through.
    let rate = match input.rate % 6 {
        0 => 0.5,
        1 => 1.0,
        2 => 200.0,
        3 => 1e12,
        4 => f64::from(input.rate) / 7.0,
        _ if input.rate_raw.is_finite() && input.rate_raw > 0.0 => input.rate_raw,
        _ => 3.0,
    };
    let cfg = Breaker {
        failure_ratio: (f64::from(input.failure_ratio) + 1.0) / 256.0,
        min_calls: u32::from(input.min_calls).max(1),
        window_s: u32::from(input.window_s) % 3600 + 1,
        open_s: input.open_s % 86_400 + 1,
    };

    let mut bucket = Bucket::decode(&input.bucket);
    if let Some(b) = bucket {
        assert!(b.tokens.is_finite());
        assert_eq!(Bucket::decode(&b.encode()), Some(b));
    }
    let mut breaker = BreakerState::decode(&input.breaker).unwrap_or_default();
    assert_eq!(BreakerState::decode(&breaker.encode()), Some(breaker));

    let mut now = input.start_ms;
    let step = |now: u64, dt: i32| -> u64 {
        if dt >= 0 {
            now.saturating_add(u64::from(dt.unsigned_abs()))
        } else {
            now.saturating_sub(u64::from(dt.unsigned_abs()))
        }
    };
    for op in input.ops.iter().take(256) {
        match *op {
            Op::Take { dt } => {
                now = step(now, dt);
                let (b, _) = Bucket::take(bucket, now, rate);
                assert!(
                    b.tokens.is_finite() && b.tokens >= 0.0 && b.tokens <= rate.max(1.0),
                    "{b:?} at rate {rate}"
                );
                assert_eq!(Bucket::decode(&b.encode()), Some(b));
                bucket = Some(b);
            }
            Op::Admit { dt } => {
                now = step(now, dt);
                let before = breaker;
                match breaker.admit(now, &cfg) {
                    Admit::Yes => assert_eq!(before.phase, Phase::Closed),
                    Admit::No => assert!(before.is_open()),
                    Admit::Trial => {
                        assert_eq!(breaker.phase, Phase::HalfOpen { since_ms: now })
                    }
                }
            }
            Op::Record { dt, failed, trial } => {
                now = step(now, dt);
                breaker.record(now, &cfg, failed, trial);
            }
        }
        assert_eq!(BreakerState::decode(&breaker.encode()), Some(breaker));
    }
});
