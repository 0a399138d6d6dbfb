//! Load shaping for the dark side: a process-wide token bucket
//! (`limits.max_rps`) and a circuit breaker (`breaker`). Pure state machines
//! with a fixed byte encoding, so that the filter can keep them in Envoy's
//! shared data (one copy for all workers) and update them with CAS.

use crate::config::Breaker as BreakerConfig;

fn f64_at(b: &[u8], i: usize) -> Option<f64> {
    Some(f64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?))
}

fn u64_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?))
}

/// A token bucket refilled at `rate` tokens per second, holding at most one
/// second's worth (and at least one token).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    pub last_ms: u64,
}

impl Bucket {
    pub const LEN: usize = 16;

    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let (a, b) = out.split_at_mut(8);
        a.copy_from_slice(&self.tokens.to_le_bytes());
        b.copy_from_slice(&self.last_ms.to_le_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Option<Bucket> {
        if b.len() != Self::LEN {
            return None;
        }
        let tokens = f64_at(b, 0)?;
        tokens.is_finite().then_some(Bucket {
            tokens,
            last_ms: u64_at(b, 8)?,
        })
    }

    /// Refill up to `now_ms` and try to take one token. A missing or
    /// unreadable state starts full.
    pub fn take(state: Option<Bucket>, now_ms: u64, rate: f64) -> (Bucket, bool) {
        let burst = rate.max(1.0);
        let mut b = state.unwrap_or(Bucket {
            tokens: burst,
            last_ms: now_ms,
        });
        let elapsed = now_ms.saturating_sub(b.last_ms) as f64 / 1000.0;
        b.tokens = (b.tokens + elapsed * rate).clamp(0.0, burst);
        b.last_ms = b.last_ms.max(now_ms);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            (b, true)
        } else {
            (b, false)
        }
    }
}

/// What the breaker says about a new shadow call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    No,
    /// Half-open: this one call is the trial that decides.
    Trial,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Closed,
    /// Holding the launch off until `until_ms`.
    Open {
        until_ms: u64,
    },
    /// A trial call left at `since_ms`.
    HalfOpen {
        since_ms: u64,
    },
}

/// Circuit breaker over a sliding window (two fixed windows, the previous
/// one weighted by how much of it still overlaps the sliding window).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerState {
    pub phase: Phase,
    pub window_start_ms: u64,
    pub calls: u32,
    pub failures: u32,
    pub prev_calls: u32,
    pub prev_failures: u32,
}

impl Default for BreakerState {
    fn default() -> Self {
        BreakerState {
            phase: Phase::Closed,
            window_start_ms: 0,
            calls: 0,
            failures: 0,
            prev_calls: 0,
            prev_failures: 0,
        }
    }
}

impl BreakerState {
    pub const LEN: usize = 33;

    pub fn encode(&self) -> [u8; Self::LEN] {
        let (tag, t) = match self.phase {
            Phase::Closed => (0u8, 0u64),
            Phase::Open { until_ms } => (1, until_ms),
            Phase::HalfOpen { since_ms } => (2, since_ms),
        };
        let mut out = [0u8; Self::LEN];
        let parts: [&[u8]; 7] = [
            &[tag],
            &t.to_le_bytes(),
            &self.window_start_ms.to_le_bytes(),
            &self.calls.to_le_bytes(),
            &self.failures.to_le_bytes(),
            &self.prev_calls.to_le_bytes(),
            &self.prev_failures.to_le_bytes(),
        ];
        let mut at = 0;
        for p in parts {
            if let Some(dst) = out.get_mut(at..at + p.len()) {
                dst.copy_from_slice(p);
            }
            at += p.len();
        }
        out
    }

    pub fn decode(b: &[u8]) -> Option<BreakerState> {
        if b.len() != Self::LEN {
            return None;
        }
        let u32_at = |i: usize| -> Option<u32> {
            Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
        };
        let t = u64_at(b, 1)?;
        let phase = match b.first()? {
            0 => Phase::Closed,
            1 => Phase::Open { until_ms: t },
            2 => Phase::HalfOpen { since_ms: t },
            _ => return None,
        };
        Some(BreakerState {
            phase,
            window_start_ms: u64_at(b, 9)?,
            calls: u32_at(17)?,
            failures: u32_at(21)?,
            prev_calls: u32_at(25)?,
            prev_failures: u32_at(29)?,
        })
    }

    pub fn is_open(&self) -> bool {
        !matches!(self.phase, Phase::Closed)
    }

    /// May a call leave now? Moves Open to HalfOpen once `open_s` has passed
    /// and grants exactly one trial; a trial whose result never came back is
    /// replaced after another `open_s`.
    pub fn admit(&mut self, now_ms: u64, cfg: &BreakerConfig) -> Admit {
        let open_ms = u64::from(cfg.open_s) * 1000;
        match self.phase {
            Phase::Closed => Admit::Yes,
            Phase::Open { until_ms } if now_ms < until_ms => Admit::No,
            Phase::HalfOpen { since_ms } if now_ms < since_ms.saturating_add(open_ms) => Admit::No,
            _ => {
                self.phase = Phase::HalfOpen { since_ms: now_ms };
                Admit::Trial
            }
        }
    }

    /// Record a finished call. Calls that left before the breaker opened and
    /// finish while it is open do not count.
    pub fn record(&mut self, now_ms: u64, cfg: &BreakerConfig, failed: bool, trial: bool) {
        let open_ms = u64::from(cfg.open_s) * 1000;
        match (self.phase, trial) {
            (Phase::HalfOpen { .. }, true) => {
                if failed {
                    self.phase = Phase::Open {
                        until_ms: now_ms.saturating_add(open_ms),
                    };
                } else {
                    *self = BreakerState {
                        window_start_ms: now_ms,
                        ..BreakerState::default()
                    };
                }
            }
            (Phase::Closed, _) => {
                self.roll(now_ms, cfg);
                self.calls = self.calls.saturating_add(1);
                if failed {
                    self.failures = self.failures.saturating_add(1);
                }
                if self.tripped(now_ms, cfg) {
                    *self = BreakerState {
                        phase: Phase::Open {
                            until_ms: now_ms.saturating_add(open_ms),
                        },
                        window_start_ms: now_ms,
                        ..BreakerState::default()
                    };
                }
            }
            _ => {}
        }
    }

    fn roll(&mut self, now_ms: u64, cfg: &BreakerConfig) {
        let w = u64::from(cfg.window_s).max(1) * 1000;
        let age = now_ms.saturating_sub(self.window_start_ms);
        if age < w {
            return;
        }
        if age < 2 * w {
            self.prev_calls = self.calls;
            self.prev_failures = self.failures;
        } else {
            self.prev_calls = 0;
            self.prev_failures = 0;
        }
        self.calls = 0;
        self.failures = 0;
        self.window_start_ms = now_ms - age % w;
    }

    fn tripped(&self, now_ms: u64, cfg: &BreakerConfig) -> bool {
        let w = u64::from(cfg.window_s).max(1) * 1000;
        let age = now_ms.saturating_sub(self.window_start_ms).min(w) as f64;
        let weight = 1.0 - age / w as f64;
        let calls = f64::from(self.calls) + weight * f64::from(self.prev_calls);
        let failures = f64::from(self.failures) + weight * f64::from(self.prev_failures);
        calls >= f64::from(cfg.min_calls) && calls > 0.0 && failures / calls >= cfg.failure_ratio
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            failure_ratio: 0.5,
            min_calls: 4,
            window_s: 10,
            open_s: 30,
        }
    }

    #[test]
    fn bucket_refills_at_rate_and_caps_at_one_second() {
        let (mut b, mut ok) = Bucket::take(None, 1000, 3.0);
        assert!(ok);
        let mut taken = 1;
        for _ in 0..10 {
            (b, ok) = Bucket::take(Some(b), 1000, 3.0);
            taken += ok as u32;
        }
        assert_eq!(taken, 3, "burst is one second's worth");
        (b, ok) = Bucket::take(Some(b), 1300, 3.0);
        assert!(!ok, "0.9 tokens after 300 ms");
        (b, ok) = Bucket::take(Some(b), 1400, 3.0);
        assert!(ok, "1.2 tokens after 400 ms");
        // A long pause refills only up to the burst.
        let mut taken = 0;
        for _ in 0..10 {
            (b, ok) = Bucket::take(Some(b), 100_000, 3.0);
            taken += ok as u32;
        }
        assert_eq!(taken, 3);
        assert_eq!(Bucket::decode(&b.encode()), Some(b));
        assert_eq!(Bucket::decode(&[1, 2, 3]), None);
    }

    #[test]
    fn fractional_rate_and_clock_going_back() {
        let (b, ok) = Bucket::take(None, 5000, 0.5);
        assert!(ok);
        let (b, ok) = Bucket::take(Some(b), 4000, 0.5);
        assert!(!ok);
        assert_eq!(b.last_ms, 5000);
        let (_, ok) = Bucket::take(Some(b), 7000, 0.5);
        assert!(ok);
    }

    #[test]
    fn breaker_opens_half_opens_and_closes() {
        let c = cfg();
        let mut s = BreakerState::default();
        assert_eq!(s.admit(0, &c), Admit::Yes);
        s.record(100, &c, true, false);
        s.record(200, &c, false, false);
        s.record(300, &c, true, false);
        assert!(!s.is_open(), "3 calls < min_calls");
        s.record(400, &c, false, false);
        assert!(s.is_open(), "2 of 4 failed: ratio 0.5 reached");
        assert_eq!(s.admit(29_000, &c), Admit::No);
        s.record(29_100, &c, false, false);
        assert!(s.is_open(), "late results of earlier calls do not count");
        assert_eq!(s.admit(30_400, &c), Admit::Trial);
        assert_eq!(s.admit(30_500, &c), Admit::No, "one trial at a time");
        s.record(30_600, &c, true, true);
        assert_eq!(s.phase, Phase::Open { until_ms: 60_600 });
        assert_eq!(s.admit(60_600, &c), Admit::Trial);
        s.record(60_700, &c, false, true);
        assert_eq!(s.phase, Phase::Closed);
        assert_eq!((s.calls, s.failures), (0, 0));
        assert_eq!(s.admit(60_800, &c), Admit::Yes);
    }

    #[test]
    fn lost_trial_is_replaced_after_open_s() {
        let c = cfg();
        let mut s = BreakerState {
            phase: Phase::Open { until_ms: 1000 },
            ..Default::default()
        };
        assert_eq!(s.admit(1000, &c), Admit::Trial);
        assert_eq!(s.admit(30_999, &c), Admit::No);
        assert_eq!(s.admit(31_000, &c), Admit::Trial);
    }

    #[test]
    fn window_slides() {
        let c = cfg();
        let mut s = BreakerState::default();
        for t in [0, 100, 200] {
            s.record(t, &c, true, false);
        }
        // 3 failures in the previous window, weighted by the overlap.
        s.record(19_000, &c, false, false);
        assert!(!s.is_open(), "weight 0.1: 1.3 calls < 4");
        let mut s2 = BreakerState::default();
        for t in [0, 100, 200] {
            s2.record(t, &c, true, false);
        }
        s2.record(10_500, &c, false, false);
        assert!(!s2.is_open(), "weight 0.95: 3.85 calls < 4");
        s2.record(10_600, &c, false, false);
        assert!(s2.is_open(), "weight 0.94: 4.82 calls, 2.82 failures");
        let mut s3 = BreakerState::default();
        for t in [0, 100, 200] {
            s3.record(t, &c, true, false);
        }
        s3.record(25_000, &c, true, false);
        assert!(!s3.is_open(), "the old window has gone");
        assert_eq!((s3.prev_calls, s3.calls), (0, 1));
    }

    #[test]
    fn successes_keep_it_closed() {
        let c = cfg();
        let mut s = BreakerState::default();
        for i in 0..100 {
            s.record(i * 10, &c, i % 3 == 1, false);
        }
        assert!(!s.is_open(), "a third failing is under 0.5");
    }

    #[test]
    fn encoding_round_trips() {
        for phase in [
            Phase::Closed,
            Phase::Open { until_ms: 7 },
            Phase::HalfOpen { since_ms: 9 },
        ] {
            let s = BreakerState {
                phase,
                window_start_ms: 123,
                calls: 4,
                failures: 3,
                prev_calls: 2,
                prev_failures: 1,
            };
            assert_eq!(BreakerState::decode(&s.encode()), Some(s));
        }
        assert_eq!(BreakerState::decode(&[9; 33]), None);
        assert_eq!(BreakerState::decode(&[]), None);
    }
}
