//! Load shaping for the dark side: a process-wide token bucket
//! (`limits.max_rps`) and a circuit breaker (`breaker`).
//!
//! Both are small state machines with a fixed byte encoding ([`Bucket`],
//! [`BreakerState`]), kept in the host's shared data (one copy for all
//! workers) and updated with CAS ([`cas_update`]). [`SharedBucket`] and
//! [`SharedBreaker`] are one worker's handles on them: they own the
//! shared-data keys, the CAS loop and the breaker's per-worker batching.

use std::cell::Cell;

use crate::config::Breaker as BreakerConfig;
use crate::host::{Host, SetResult};

/// What a shared-data update does: the bytes to write (None: no write) and
/// a result.
pub type Update<T> = (Option<Vec<u8>>, T);

/// Read-modify-write of a shared-data value with CAS, retried a few times
/// when another worker wrote in between. `f` sees the current bytes (None
/// when absent) and returns what to write and a result. None when shared
/// data is unusable or stays contended.
pub fn cas_update<H: Host, T>(
    host: &H,
    key: &str,
    f: &mut dyn FnMut(Option<&[u8]>) -> Update<T>,
) -> Option<T> {
    for _ in 0..8 {
        let (cur, cas) = host.shared_get(key).ok()?;
        let (write, out) = f(cur.as_deref());
        let Some(bytes) = write else {
            return Some(out);
        };
        match host.shared_set(key, &bytes, cas) {
            Ok(SetResult::Written) => return Some(out),
            Ok(SetResult::CasMismatch) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// One worker's handle on a launch's process-wide token bucket.
#[derive(Debug)]
pub struct SharedBucket {
    key: String,
    /// Tokens per second; 0 or less: no limit.
    rate: f64,
}

impl SharedBucket {
    pub fn new(key: String, rate: f64) -> Self {
        SharedBucket { key, rate }
    }

    /// Take a token. When shared data cannot be read or updated the call is
    /// let through: the per-worker in-flight limit still bounds it.
    pub fn take<H: Host>(&self, host: &H, now_ms: u64) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        cas_update(host, &self.key, &mut |cur| {
            let (b, ok) = Bucket::take(cur.and_then(Bucket::decode), now_ms, self.rate);
            (Some(b.encode().to_vec()), ok)
        })
        .unwrap_or(true)
    }
}

/// Longest a worker keeps successful calls from the shared breaker.
pub const BREAKER_FLUSH_MS: u64 = 100;

/// Longest a worker trusts a shared breaker it read closed: another
/// worker's trip is seen at most this late.
pub const BREAKER_CACHE_MS: u64 = 100;

/// One worker's handle on a launch's process-wide breaker.
///
/// The common, closed case costs one shared-data read per
/// [`BREAKER_CACHE_MS`] and no write: a worker that read the breaker closed
/// admits calls without reading it again for that long (its own trips are
/// seen at once), and successes are batched per worker and written at most
/// every [`BREAKER_FLUSH_MS`] (or with the next failure, or by
/// [`Self::flush_due`] on tick). Failures and trial results are written at
/// once, so the failure ratio is exact whenever a failure is counted. The
/// `breaker_open` gauge is recorded when this worker sees the state change.
#[derive(Debug)]
pub struct SharedBreaker {
    key: String,
    cfg: BreakerConfig,
    gauge: u32,
    successes: Cell<u32>,
    flushed_ms: Cell<u64>,
    recorded: Cell<Option<bool>>,
    /// Until when (ms) the last read that found the breaker closed holds.
    closed_until_ms: Cell<u64>,
}

impl SharedBreaker {
    /// `gauge`: the id of the launch's `breaker_open` gauge.
    pub fn new(key: String, cfg: BreakerConfig, gauge: u32) -> Self {
        SharedBreaker {
            key,
            cfg,
            gauge,
            successes: Cell::new(0),
            flushed_ms: Cell::new(0),
            recorded: Cell::new(None),
            closed_until_ms: Cell::new(0),
        }
    }

    /// Read-only: is the breaker holding the launch off? A closed breaker
    /// read less than [`BREAKER_CACHE_MS`] ago is not read again.
    pub fn is_open<H: Host>(&self, host: &H, now_ms: u64) -> bool {
        if now_ms < self.closed_until_ms.get() {
            return false;
        }
        let open = host
            .shared_get(&self.key)
            .ok()
            .and_then(|(b, _)| b)
            .and_then(|b| BreakerState::decode(&b))
            .is_some_and(|st| st.is_open());
        self.closed_until_ms.set(if open {
            0
        } else {
            now_ms.saturating_add(BREAKER_CACHE_MS)
        });
        open
    }

    /// May a call leave now? While closed, one read per
    /// [`BREAKER_CACHE_MS`] ([`Self::is_open`]); while open, moves to
    /// half-open and grants the one trial when `open_s` has passed. When
    /// shared data is unusable, no.
    pub fn admit<H: Host>(&self, host: &H, now_ms: u64) -> Admit {
        if !self.is_open(host, now_ms) {
            return Admit::Yes;
        }
        let out = cas_update(host, &self.key, &mut |cur| {
            let mut st = cur.and_then(BreakerState::decode).unwrap_or_default();
            let a = st.admit(now_ms, &self.cfg);
            let write = (a == Admit::Trial).then(|| st.encode().to_vec());
            (write, (a, st.is_open()))
        });
        match out {
            Some((a, open)) => {
                self.record_gauge(host, open);
                a
            }
            None => Admit::No,
        }
    }

    /// A call admitted by [`Self::admit`] finished.
    pub fn finished<H: Host>(&self, host: &H, now_ms: u64, failed: bool, trial: bool) {
        if !failed && !trial {
            self.successes.set(self.successes.get().saturating_add(1));
            if now_ms.saturating_sub(self.flushed_ms.get()) < BREAKER_FLUSH_MS {
                return;
            }
        }
        self.flush(
            host,
            now_ms,
            u32::from(failed && !trial),
            trial.then_some(failed),
        );
    }

    /// Write batched successes that have waited [`BREAKER_FLUSH_MS`].
    pub fn flush_due<H: Host>(&self, host: &H, now_ms: u64) {
        if now_ms.saturating_sub(self.flushed_ms.get()) >= BREAKER_FLUSH_MS {
            self.flush(host, now_ms, 0, None);
        }
    }

    /// Write the batched successes, `failures` more failed calls and the
    /// result of a trial (`Some(failed)`).
    fn flush<H: Host>(&self, host: &H, now_ms: u64, failures: u32, trial: Option<bool>) {
        let successes = self.successes.replace(0);
        self.flushed_ms.set(now_ms);
        if successes == 0 && failures == 0 && trial.is_none() {
            return;
        }
        let open = cas_update(host, &self.key, &mut |cur| {
            let mut st = cur.and_then(BreakerState::decode).unwrap_or_default();
            st.record_calls(now_ms, &self.cfg, successes, failures);
            if let Some(failed) = trial {
                st.record(now_ms, &self.cfg, failed, true);
            }
            (Some(st.encode().to_vec()), st.is_open())
        });
        if let Some(open) = open {
            if open {
                self.closed_until_ms.set(0);
            }
            self.record_gauge(host, open);
        }
    }

    fn record_gauge<H: Host>(&self, host: &H, open: bool) {
        if self.recorded.replace(Some(open)) != Some(open) {
            host.record(self.gauge, u64::from(open));
        }
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    #[default]
    Closed,
    /// Holding the launch off until `until_ms`.
    Open { until_ms: u64 },
    /// A trial call left at `since_ms`.
    HalfOpen { since_ms: u64 },
}

/// Slots of the breaker's rolling window: the window is `window_s` split in
/// `SLOTS - 1` slots, plus the slot in progress.
const SLOTS: usize = 11;

/// Circuit breaker over a rolling window of `window_s`, kept as a ring of
/// slots of `window_s / 10` each. Every call that finished within the last
/// `window_s` is counted (and calls at most one slot older), so
/// `min_calls` failures within `window_s` always trip it; two fixed windows
/// with the older one weighted would not.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BreakerState {
    pub phase: Phase,
    /// Per slot: its epoch (`now_ms / slot_ms`), calls and failures.
    slots: [Slot; SLOTS],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Slot {
    epoch: u64,
    calls: u32,
    failures: u32,
}

impl BreakerState {
    pub const LEN: usize = 9 + SLOTS * 16;

    pub fn encode(&self) -> [u8; Self::LEN] {
        let (tag, t) = match self.phase {
            Phase::Closed => (0u8, 0u64),
            Phase::Open { until_ms } => (1, until_ms),
            Phase::HalfOpen { since_ms } => (2, since_ms),
        };
        let mut out = [0u8; Self::LEN];
        let mut w = Writer {
            out: &mut out,
            at: 0,
        };
        w.put(&[tag]);
        w.put(&t.to_le_bytes());
        for slot in &self.slots {
            w.put(&slot.epoch.to_le_bytes());
            w.put(&slot.calls.to_le_bytes());
            w.put(&slot.failures.to_le_bytes());
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
        let mut slots = [Slot::default(); SLOTS];
        for (i, slot) in slots.iter_mut().enumerate() {
            let at = 9 + i * 16;
            *slot = Slot {
                epoch: u64_at(b, at)?,
                calls: u32_at(at + 8)?,
                failures: u32_at(at + 12)?,
            };
        }
        Some(BreakerState { phase, slots })
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

    /// Record `successes` and `failures` finished (non-trial) calls at once.
    pub fn record_calls(
        &mut self,
        now_ms: u64,
        cfg: &BreakerConfig,
        successes: u32,
        failures: u32,
    ) {
        if self.phase != Phase::Closed || successes.saturating_add(failures) == 0 {
            return;
        }
        self.count(now_ms, cfg, successes.saturating_add(failures), failures);
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
                    *self = BreakerState::default();
                }
            }
            (Phase::Closed, _) => self.count(now_ms, cfg, 1, u32::from(failed)),
            _ => {}
        }
    }

    /// Add finished calls to the current slot (the breaker is closed); open
    /// it when the window now trips.
    fn count(&mut self, now_ms: u64, cfg: &BreakerConfig, calls: u32, failures: u32) {
        let epoch = now_ms / slot_ms(cfg);
        let index = (epoch % SLOTS as u64) as usize;
        if let Some(slot) = self.slots.get_mut(index) {
            if slot.epoch != epoch {
                *slot = Slot {
                    epoch,
                    ..Slot::default()
                };
            }
            slot.calls = slot.calls.saturating_add(calls);
            slot.failures = slot.failures.saturating_add(failures);
        }
        if self.tripped(epoch, cfg) {
            *self = BreakerState {
                phase: Phase::Open {
                    until_ms: now_ms.saturating_add(u64::from(cfg.open_s) * 1000),
                },
                ..BreakerState::default()
            };
        }
    }

    /// Calls and failures within the window ending in slot `epoch`.
    pub fn counts(&self, epoch: u64) -> (u32, u32) {
        self.slots
            .iter()
            .filter(|s| s.epoch <= epoch && s.epoch.saturating_add(SLOTS as u64) > epoch)
            .fold((0u32, 0u32), |(c, f), s| {
                (c.saturating_add(s.calls), f.saturating_add(s.failures))
            })
    }

    fn tripped(&self, epoch: u64, cfg: &BreakerConfig) -> bool {
        let (calls, failures) = self.counts(epoch);
        calls >= cfg.min_calls.max(1) && f64::from(failures) / f64::from(calls) >= cfg.failure_ratio
    }
}

/// One slot of the rolling window: a tenth of `window_s`, at least 1 ms.
fn slot_ms(cfg: &BreakerConfig) -> u64 {
    (u64::from(cfg.window_s) * 1000 / (SLOTS as u64 - 1)).max(1)
}

/// Appends fixed-size fields to an encoding buffer.
struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.out.get_mut(self.at..self.at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        self.at += bytes.len();
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
        assert_eq!(s.counts(60_700 / 1000), (0, 0));
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
        // Old failures leave the window slot by slot (slots of 1 s here).
        let mut s = BreakerState::default();
        for t in [0, 100, 200] {
            s.record(t, &c, true, false);
        }
        s.record(10_999, &c, false, false);
        assert!(s.is_open(), "all four within the window (plus a slot)");
        let mut s = BreakerState::default();
        for t in [0, 100, 200] {
            s.record(t, &c, true, false);
        }
        s.record(11_000, &c, true, false);
        assert!(!s.is_open(), "the first slot has left the window");
        assert_eq!(s.counts(11), (1, 1));
        // A slot is reused once its epoch has passed.
        s.record(22_050, &c, false, false);
        assert_eq!(s.counts(22), (1, 0));
    }

    /// `min_calls` failures within `window_s` always trip it, wherever the
    /// slot boundaries fall (two weighted fixed windows would need more).
    #[test]
    fn min_calls_within_window_always_trip() {
        let c = BreakerConfig {
            failure_ratio: 1.0,
            min_calls: 3,
            window_s: 10,
            open_s: 60,
        };
        for start in (0..30_000).step_by(137) {
            let mut s = BreakerState::default();
            for k in 0..3 {
                assert!(!s.is_open());
                s.record(start + k * 4_000, &c, true, false);
            }
            assert!(s.is_open(), "start {start}");
        }
    }

    #[test]
    fn batched_calls_count_like_single_ones() {
        let c = cfg();
        let mut s = BreakerState::default();
        s.record_calls(1_000, &c, 3, 0);
        assert!(!s.is_open());
        assert_eq!(s.counts(1), (3, 0));
        s.record_calls(1_200, &c, 0, 2);
        assert!(!s.is_open(), "2 of 5 failed < 0.5");
        s.record_calls(1_300, &c, 0, 1);
        assert!(s.is_open(), "3 of 6 failed");
        // While open, batched results of earlier calls do not count.
        s.record_calls(1_400, &c, 10, 0);
        assert_eq!(s.counts(1), (0, 0));
        s.record_calls(1_500, &c, 0, 0);
        assert!(s.is_open());
    }

    #[test]
    fn clock_going_back_never_panics() {
        let c = cfg();
        let mut s = BreakerState::default();
        s.record(50_000, &c, true, false);
        s.record(1_000, &c, true, false);
        s.record(u64::MAX, &c, true, false);
        let _ = s.counts(0);
        let tiny = BreakerConfig { window_s: 0, ..c };
        s.record(u64::MAX, &tiny, true, false);
        let _ = s.counts(u64::MAX);
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
        let c = cfg();
        for phase in [
            Phase::Closed,
            Phase::Open { until_ms: 7 },
            Phase::HalfOpen { since_ms: 9 },
        ] {
            let mut s = BreakerState::default();
            for t in [100, 1_500, 2_700, 9_999] {
                s.record(t, &c, t % 2 == 0, false);
            }
            s.phase = phase;
            assert_eq!(BreakerState::decode(&s.encode()), Some(s));
        }
        assert_eq!(BreakerState::decode(&[9; BreakerState::LEN]), None);
        assert_eq!(BreakerState::decode(&[0; 33]), None);
        assert_eq!(BreakerState::decode(&[]), None);
    }
}
