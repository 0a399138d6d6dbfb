//! Which mismatches become samples: at most `capture.per_minute` per
//! launch per minute across the Envoy process, with room kept for rare
//! differences.
//!
//! A sample is written when its pair settles, so the choice is made online,
//! without knowing what the rest of the minute brings. The rule: the first
//! sample of a *shape* (kinds, fields and header names) in a minute is
//! taken while the minute's budget lasts; a further sample of a shape
//! already sampled that minute only while less than half of the budget
//! (rounded up) is spent. The other half is kept for shapes not seen yet,
//! so one frequent difference cannot crowd a rare one out of the samples.
//!
//! The state of the minute ([`Window`]) lives in the host's shared data,
//! one copy for all workers, updated with CAS like the token bucket.

use std::cell::{Cell, RefCell};

use crate::host::Host;
use crate::limits::cas_update;

const MINUTE_MS: u64 = 60_000;

/// The minute's samples of one launch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    /// Minutes since the Unix epoch.
    pub minute: u64,
    pub count: u32,
    /// The shapes sampled this minute (at most `per_minute` of them).
    pub shapes: Vec<u32>,
}

/// Why a mismatch was not sampled, or that it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// The minute's budget is spent.
    Full,
    /// The shape was sampled this minute and only new shapes may still be.
    Repeat,
}

impl Window {
    /// Decide on a sample of `shape` at `now_ms`; the window as it is after.
    pub fn admit(mut self, now_ms: u64, shape: u32, per_minute: u32) -> (Window, Admit) {
        let minute = now_ms / MINUTE_MS;
        if self.minute != minute {
            self = Window {
                minute,
                ..Window::default()
            };
        }
        if self.count >= per_minute {
            return (self, Admit::Full);
        }
        let seen = self.shapes.contains(&shape);
        if seen && self.count >= per_minute.div_ceil(2) {
            return (self, Admit::Repeat);
        }
        self.count += 1;
        if !seen {
            self.shapes.push(shape);
        }
        (self, Admit::Yes)
    }

    /// Minute (8 bytes), count (4), then the shapes (4 each), little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + 4 * self.shapes.len());
        out.extend_from_slice(&self.minute.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        for s in &self.shapes {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    pub fn decode(b: &[u8]) -> Option<Window> {
        let minute = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
        let count = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?);
        let rest = b.get(12..)?;
        if rest.len() % 4 != 0 {
            return None;
        }
        let shapes = rest
            .chunks_exact(4)
            .filter_map(|c| c.try_into().ok().map(u32::from_le_bytes))
            .collect();
        Some(Window {
            minute,
            count,
            shapes,
        })
    }
}

/// One worker's handle on a launch's process-wide sample window.
#[derive(Debug)]
pub struct SharedCapture {
    key: String,
    per_minute: u32,
    /// The minute this worker saw the budget spent: no shared-data call
    /// for the rest of it.
    full_minute: Cell<Option<u64>>,
    /// The shapes this worker saw refused as repeats, and in which minute:
    /// within it they stay refused (the count only grows), so a frequent
    /// difference costs no shared-data call once its share is spent.
    repeats: RefCell<(u64, Vec<u32>)>,
}

impl SharedCapture {
    pub fn new(key: String, per_minute: u32) -> Self {
        SharedCapture {
            key,
            per_minute,
            full_minute: Cell::new(None),
            repeats: RefCell::new((0, Vec::new())),
        }
    }

    /// May a sample of `shape` be taken now? When shared data cannot be
    /// used, no: samples are a debugging aid, never worth extra load.
    pub fn admit<H: Host>(&self, host: &H, now_ms: u64, shape: u32) -> Admit {
        let minute = now_ms / MINUTE_MS;
        if self.full_minute.get() == Some(minute) {
            return Admit::Full;
        }
        {
            let repeats = self.repeats.borrow();
            if repeats.0 == minute && repeats.1.contains(&shape) {
                return Admit::Repeat;
            }
        }
        let out = cas_update(host, &self.key, &mut |cur| {
            let w = cur.and_then(Window::decode).unwrap_or_default();
            let (w, a) = w.admit(now_ms, shape, self.per_minute);
            let write = (a == Admit::Yes || cur.is_none()).then(|| w.encode());
            (write, a)
        })
        .unwrap_or(Admit::Full);
        match out {
            Admit::Full => self.full_minute.set(Some(minute)),
            Admit::Repeat => {
                let mut repeats = self.repeats.borrow_mut();
                if repeats.0 != minute {
                    *repeats = (minute, Vec::new());
                }
                repeats.1.push(shape);
            }
            Admit::Yes => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(per_minute: u32, shapes: &[u32]) -> Vec<Admit> {
        let mut w = Window::default();
        shapes
            .iter()
            .map(|&s| {
                let (next, a) = w.clone().admit(5 * MINUTE_MS + 1, s, per_minute);
                w = next;
                a
            })
            .collect()
    }

    #[test]
    fn a_rare_shape_gets_in_while_a_frequent_one_saturates() {
        use Admit::*;
        // 10 per minute: shape 1 takes 5, then only new shapes.
        let mut seq = vec![1; 50];
        seq.push(2);
        seq.extend([1; 10]);
        seq.push(3);
        let got = run(10, &seq);
        assert_eq!(got.iter().filter(|a| **a == Yes).count(), 7);
        assert_eq!(&got[..6], &[Yes, Yes, Yes, Yes, Yes, Repeat]);
        assert_eq!(got[50], Yes, "the rare shape 2");
        assert_eq!(got[61], Yes, "the rare shape 3");
    }

    #[test]
    fn the_budget_bounds_everything() {
        let got = run(3, &[1, 2, 3, 4, 5]);
        assert_eq!(
            got,
            [Admit::Yes, Admit::Yes, Admit::Yes, Admit::Full, Admit::Full]
        );
        // One per minute: the first of the minute, whatever its shape.
        assert_eq!(run(1, &[7, 7, 8]), [Admit::Yes, Admit::Full, Admit::Full]);
        assert_eq!(run(2, &[7, 7, 8]), [Admit::Yes, Admit::Repeat, Admit::Yes]);
    }

    #[test]
    fn a_new_minute_starts_afresh() {
        let (w, _) = Window::default().admit(0, 1, 1);
        let (w, a) = w.admit(59_999, 2, 1);
        assert_eq!(a, Admit::Full);
        let (w, a) = w.admit(60_000, 1, 1);
        assert_eq!((a, w.count, w.minute), (Admit::Yes, 1, 1));
    }

    proptest! {
        #[test]
        fn encoding_round_trips(minute in any::<u64>(), count in any::<u32>(),
                                shapes in proptest::collection::vec(any::<u32>(), 0..20)) {
            let w = Window { minute, count, shapes };
            prop_assert_eq!(Window::decode(&w.encode()), Some(w));
        }

        #[test]
        fn never_more_than_per_minute(per_minute in 1u32..50,
                                      shapes in proptest::collection::vec(0u32..8, 0..200)) {
            let got = run(per_minute, &shapes);
            let yes = got.iter().filter(|a| **a == Admit::Yes).count();
            prop_assert!(yes <= per_minute as usize);
            // Every shape that came got a sample, while the budget allowed
            // new shapes at all.
            let distinct: std::collections::HashSet<_> = shapes.iter().collect();
            if distinct.len() <= (per_minute / 2) as usize {
                for s in distinct {
                    let first = shapes.iter().position(|x| x == s).unwrap();
                    prop_assert_eq!(got[first], Admit::Yes);
                }
            }
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Window::decode(&bytes);
        }
    }
}
