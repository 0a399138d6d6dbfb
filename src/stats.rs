//! Stat names of SPEC §5 and their ids, defined once per launch per VM.
//!
//! Names are `darklaunch.<launch>.<stat>[.<label>]`; Envoy shows them as
//! `wasmcustom.darklaunch...` and the shipped `stats_tags` turn the launch and
//! the trailing label into Prometheus labels.

use crate::decision::SkipReason;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Dark outcome classes (`dark_response.C`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DarkClass {
    C2xx,
    C3xx,
    C4xx,
    C5xx,
    Timeout,
    Reset,
}

impl DarkClass {
    pub const ALL: [DarkClass; 6] = [
        DarkClass::C2xx,
        DarkClass::C3xx,
        DarkClass::C4xx,
        DarkClass::C5xx,
        DarkClass::Timeout,
        DarkClass::Reset,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            DarkClass::C2xx => "2xx",
            DarkClass::C3xx => "3xx",
            DarkClass::C4xx => "4xx",
            DarkClass::C5xx => "5xx",
            DarkClass::Timeout => "timeout",
            DarkClass::Reset => "reset",
        }
    }
    /// Class of a status code; 1xx (never final here) counts with 2xx.
    pub fn of_status(status: u16) -> DarkClass {
        match status {
            0..=299 => DarkClass::C2xx,
            300..=399 => DarkClass::C3xx,
            400..=499 => DarkClass::C4xx,
            _ => DarkClass::C5xx,
        }
    }
}

/// Primary outcome classes (`primary_response.C`): the status classes, or
/// `reset` when the primary stream ended without a complete response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrimaryClass {
    Status(DarkClass),
    Reset,
}

impl PrimaryClass {
    pub const NAMES: [&'static str; 5] = ["2xx", "3xx", "4xx", "5xx", "reset"];
    pub fn index(self) -> usize {
        match self {
            PrimaryClass::Status(c) => (c as usize).min(3),
            PrimaryClass::Reset => 4,
        }
    }
}

/// `mismatch_kind.K`.
pub const MISMATCH_KINDS: [&str; 3] = ["status", "headers", "body"];

/// Why a shadowed pair was not compared (`compare_skipped.R`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareSkip {
    DarkFailed,
    PrimaryIncomplete,
    BodyTooLarge,
}

impl CompareSkip {
    pub const NAMES: [&'static str; 3] = ["dark_failed", "primary_incomplete", "body_too_large"];
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Metric ids of one launch.
#[derive(Debug, Clone, Default)]
pub struct LaunchStats {
    pub matched: u32,
    pub shadowed: u32,
    pub forced: u32,
    pub skipped: [u32; 10],
    pub dark_response: [u32; 6],
    pub primary_response: [u32; 5],
    pub compared: u32,
    pub mismatch: u32,
    pub mismatch_kind: [u32; 3],
    pub noise: u32,
    pub compare_skipped: [u32; 3],
    pub primary_ms: u32,
    pub dark_ms: u32,
    pub in_flight: u32,
    pub breaker_open: u32,
    /// `field_mismatch.other`: differing fields past the per-launch bound.
    pub field_other: u32,
}

impl LaunchStats {
    /// Every stat name of a launch with its kind, in a fixed order.
    pub fn names(launch: &str) -> Vec<(Kind, String)> {
        let n = |s: &str| format!("darklaunch.{launch}.{s}");
        let mut v = vec![
            (Kind::Counter, n("matched")),
            (Kind::Counter, n("shadowed")),
            (Kind::Counter, n("forced")),
        ];
        v.extend(
            SkipReason::ALL
                .iter()
                .map(|r| (Kind::Counter, n(&format!("skipped.{}", r.as_str())))),
        );
        v.extend(
            DarkClass::ALL
                .iter()
                .map(|c| (Kind::Counter, n(&format!("dark_response.{}", c.as_str())))),
        );
        v.extend(
            PrimaryClass::NAMES
                .iter()
                .map(|c| (Kind::Counter, n(&format!("primary_response.{c}")))),
        );
        v.push((Kind::Counter, n("compared")));
        v.push((Kind::Counter, n("mismatch")));
        v.extend(
            MISMATCH_KINDS
                .iter()
                .map(|k| (Kind::Counter, n(&format!("mismatch_kind.{k}")))),
        );
        v.push((Kind::Counter, n("noise")));
        v.extend(
            CompareSkip::NAMES
                .iter()
                .map(|r| (Kind::Counter, n(&format!("compare_skipped.{r}")))),
        );
        v.push((Kind::Histogram, n("primary_ms")));
        v.push((Kind::Histogram, n("dark_ms")));
        v.push((Kind::Gauge, n("in_flight")));
        v.push((Kind::Gauge, n("breaker_open")));
        v.push((Kind::Counter, n("field_mismatch.other")));
        v
    }

    /// Define every stat of `launch` through `define` (which returns the id).
    pub fn define<E>(
        launch: &str,
        define: &mut dyn FnMut(Kind, &str) -> Result<u32, E>,
    ) -> Result<LaunchStats, E> {
        let mut ids = Vec::new();
        for (kind, name) in Self::names(launch) {
            ids.push(define(kind, &name)?);
        }
        let mut it = ids.into_iter();
        let mut next = || it.next().unwrap_or_default();
        let mut s = LaunchStats {
            matched: next(),
            shadowed: next(),
            forced: next(),
            ..Default::default()
        };
        s.skipped.iter_mut().for_each(|x| *x = next());
        s.dark_response.iter_mut().for_each(|x| *x = next());
        s.primary_response.iter_mut().for_each(|x| *x = next());
        s.compared = next();
        s.mismatch = next();
        s.mismatch_kind.iter_mut().for_each(|x| *x = next());
        s.noise = next();
        s.compare_skipped.iter_mut().for_each(|x| *x = next());
        s.primary_ms = next();
        s.dark_ms = next();
        s.in_flight = next();
        s.breaker_open = next();
        s.field_other = next();
        Ok(s)
    }

    pub fn skipped(&self, r: SkipReason) -> u32 {
        self.skipped.get(r.index()).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_names() {
        let mut n = 0u32;
        let mut seen = Vec::new();
        let s = LaunchStats::define::<()>("l", &mut |k, name| {
            n += 1;
            seen.push((k, name.to_string(), n));
            Ok(n)
        })
        .unwrap();
        let id = |name: &str| seen.iter().find(|(_, s, _)| s == name).unwrap().2;
        assert_eq!(s.matched, id("darklaunch.l.matched"));
        assert_eq!(s.skipped(SkipReason::Loop), id("darklaunch.l.skipped.loop"));
        assert_eq!(
            s.skipped(SkipReason::DispatchFailed),
            id("darklaunch.l.skipped.dispatch_failed")
        );
        assert_eq!(
            s.dark_response[DarkClass::Timeout as usize],
            id("darklaunch.l.dark_response.timeout")
        );
        assert_eq!(
            s.primary_response[PrimaryClass::Reset.index()],
            id("darklaunch.l.primary_response.reset")
        );
        assert_eq!(
            s.compare_skipped[CompareSkip::BodyTooLarge.index()],
            id("darklaunch.l.compare_skipped.body_too_large")
        );
        assert_eq!(s.breaker_open, id("darklaunch.l.breaker_open"));
        assert_eq!(seen.len(), 38);
        assert_eq!(
            seen.iter()
                .filter(|(k, _, _)| *k == Kind::Histogram)
                .count(),
            2
        );
    }

    #[test]
    fn status_classes() {
        assert_eq!(DarkClass::of_status(204), DarkClass::C2xx);
        assert_eq!(DarkClass::of_status(302), DarkClass::C3xx);
        assert_eq!(DarkClass::of_status(404), DarkClass::C4xx);
        assert_eq!(DarkClass::of_status(503), DarkClass::C5xx);
        assert_eq!(PrimaryClass::Status(DarkClass::C5xx).index(), 3);
    }
}
