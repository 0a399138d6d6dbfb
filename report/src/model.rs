//! The raw numbers of each launch, as read from Envoy or Prometheus, and how
//! the numbers of several Envoys combine.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

pub use darklaunch::vocab::{DarkOutcome, Family, Histogram, PrimaryOutcome, Scalar};

/// p50 / p95 / p99 of a latency histogram, in ms; `None` without samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Quantiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl Quantiles {
    /// Combines the quantiles of two sources by taking the larger of each.
    ///
    /// For a mixture of distributions, the q-quantile lies between the
    /// smallest and the largest q-quantile of the parts, so the maximum is an
    /// upper bound of the true merged quantile (exact when one source has
    /// all the samples), never an underestimate.
    pub fn merge_max(&mut self, other: &Quantiles) {
        fn mx(a: Option<f64>, b: Option<f64>) -> Option<f64> {
            match (a, b) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, None) => x,
                (None, y) => y,
            }
        }
        self.p50 = mx(self.p50, other.p50);
        self.p95 = mx(self.p95, other.p95);
        self.p99 = mx(self.p99, other.p99);
    }

    pub fn set(&mut self, q: f64, value: Option<f64>) {
        let value = value.filter(|v| v.is_finite());
        if q == 50.0 {
            self.p50 = value;
        } else if q == 95.0 {
            self.p95 = value;
        } else if q == 99.0 {
            self.p99 = value;
        }
    }
}

/// Everything known about one launch, summed over the sources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaunchCounters {
    pub matched: u64,
    pub shadowed: u64,
    pub forced: u64,
    pub compared: u64,
    pub mismatch: u64,
    pub noise: u64,
    pub in_flight: u64,
    pub breaker_open: u64,
    /// Envoys reporting the launch past its `expires`.
    pub expired: u64,
    pub skipped: BTreeMap<String, u64>,
    pub dark_response: BTreeMap<String, u64>,
    pub primary_response: BTreeMap<String, u64>,
    pub mismatch_kind: BTreeMap<String, u64>,
    pub compare_skipped: BTreeMap<String, u64>,
    /// `field_mismatch.<pointer>` (and `other`).
    pub field_mismatch: BTreeMap<String, u64>,
    /// `header_mismatch.<name>`.
    pub header_mismatch: BTreeMap<String, u64>,
    /// `sample.captured`: samples written to the log.
    pub sample_captured: u64,
    /// `sample.dropped.<reason>`.
    pub sample_dropped: BTreeMap<String, u64>,
    /// `dark_grpc.<code>` and `primary_grpc.<code>`: gRPC launches only.
    pub dark_grpc: BTreeMap<String, u64>,
    pub primary_grpc: BTreeMap<String, u64>,
    pub primary_ms: Quantiles,
    pub dark_ms: Quantiles,
}

impl LaunchCounters {
    pub fn scalar(&self, s: Scalar) -> u64 {
        match s {
            Scalar::Matched => self.matched,
            Scalar::Shadowed => self.shadowed,
            Scalar::Forced => self.forced,
            Scalar::Compared => self.compared,
            Scalar::Mismatch => self.mismatch,
            Scalar::Noise => self.noise,
            Scalar::InFlight => self.in_flight,
            Scalar::BreakerOpen => self.breaker_open,
            Scalar::Expired => self.expired,
            Scalar::SampleCaptured => self.sample_captured,
        }
    }

    pub fn quantiles_mut(&mut self, h: Histogram) -> &mut Quantiles {
        match h {
            Histogram::PrimaryMs => &mut self.primary_ms,
            Histogram::DarkMs => &mut self.dark_ms,
        }
    }

    pub fn family(&self, f: Family) -> &BTreeMap<String, u64> {
        match f {
            Family::Skipped => &self.skipped,
            Family::DarkResponse => &self.dark_response,
            Family::PrimaryResponse => &self.primary_response,
            Family::MismatchKind => &self.mismatch_kind,
            Family::CompareSkipped => &self.compare_skipped,
            Family::FieldMismatch => &self.field_mismatch,
            Family::HeaderMismatch => &self.header_mismatch,
            Family::SampleDropped => &self.sample_dropped,
            Family::DarkGrpc => &self.dark_grpc,
            Family::PrimaryGrpc => &self.primary_grpc,
        }
    }

    pub fn scalar_mut(&mut self, s: Scalar) -> &mut u64 {
        match s {
            Scalar::Matched => &mut self.matched,
            Scalar::Shadowed => &mut self.shadowed,
            Scalar::Forced => &mut self.forced,
            Scalar::Compared => &mut self.compared,
            Scalar::Mismatch => &mut self.mismatch,
            Scalar::Noise => &mut self.noise,
            Scalar::InFlight => &mut self.in_flight,
            Scalar::BreakerOpen => &mut self.breaker_open,
            Scalar::Expired => &mut self.expired,
            Scalar::SampleCaptured => &mut self.sample_captured,
        }
    }

    pub fn family_mut(&mut self, f: Family) -> &mut BTreeMap<String, u64> {
        match f {
            Family::Skipped => &mut self.skipped,
            Family::DarkResponse => &mut self.dark_response,
            Family::PrimaryResponse => &mut self.primary_response,
            Family::MismatchKind => &mut self.mismatch_kind,
            Family::CompareSkipped => &mut self.compare_skipped,
            Family::FieldMismatch => &mut self.field_mismatch,
            Family::HeaderMismatch => &mut self.header_mismatch,
            Family::SampleDropped => &mut self.sample_dropped,
            Family::DarkGrpc => &mut self.dark_grpc,
            Family::PrimaryGrpc => &mut self.primary_grpc,
        }
    }

    /// Records `value` under a stat name relative to the launch
    /// (`compared`, `skipped.loop`, `field_mismatch./items/*/price`).
    /// Returns false for names this tool does not know (ignored, so that a
    /// newer filter with more stats still reads).
    pub fn add_stat(&mut self, stat: &str, value: u64) -> bool {
        for &s in Scalar::ALL {
            if stat == s.as_str() {
                *self.scalar_mut(s) += value;
                return true;
            }
        }
        for &f in Family::ALL {
            if let Some(detail) = stat
                .strip_prefix(f.as_str())
                .and_then(|r| r.strip_prefix('.'))
            {
                if detail.is_empty() {
                    return false;
                }
                *self.family_mut(f).entry(detail.to_string()).or_insert(0) += value;
                return true;
            }
        }
        false
    }

    /// Adds another source's numbers: counters and gauges are summed,
    /// latency quantiles combined with [`Quantiles::merge_max`].
    pub fn merge(&mut self, other: &LaunchCounters) {
        for &s in Scalar::ALL {
            *self.scalar_mut(s) += other.scalar(s);
        }
        for &f in Family::ALL {
            let mine = self.family_mut(f);
            for (k, v) in other.family(f) {
                *mine.entry(k.clone()).or_insert(0) += v;
            }
        }
        self.primary_ms.merge_max(&other.primary_ms);
        self.dark_ms.merge_max(&other.dark_ms);
    }

    pub fn sum<'a>(map: &BTreeMap<String, u64>, keys: impl IntoIterator<Item = &'a str>) -> u64 {
        keys.into_iter()
            .map(|k| map.get(k).copied().unwrap_or(0))
            .sum()
    }
}

/// The launches seen in one or several sources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub launches: BTreeMap<String, LaunchCounters>,
    /// Prometheus only: darklaunch series without a `launch` label.
    pub untagged: BTreeSet<String>,
}

impl Snapshot {
    pub fn launch_mut(&mut self, name: &str) -> &mut LaunchCounters {
        self.launches.entry(name.to_string()).or_default()
    }

    pub fn merge(&mut self, other: &Snapshot) {
        for (name, counters) in &other.launches {
            self.launch_mut(name).merge(counters);
        }
        self.untagged.extend(other.untagged.iter().cloned());
    }

    /// Keeps only the named launches; a named launch that is absent is added
    /// with zero counts (so a typo reports INCONCLUSIVE instead of passing).
    /// An empty filter keeps everything.
    pub fn filter(&mut self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        self.launches.retain(|k, _| names.iter().any(|n| n == k));
        for n in names {
            self.launch_mut(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_stat_and_merge() {
        let mut a = LaunchCounters::default();
        assert!(a.add_stat("compared", 10));
        assert!(a.add_stat("skipped.sampled_out", 3));
        assert!(a.add_stat("field_mismatch./items/*/price", 2));
        assert!(a.add_stat("field_mismatch.a.b", 1)); // dots in a pointer
        assert!(!a.add_stat("field_mismatch.", 1));
        assert!(!a.add_stat("something_new", 1));
        assert!(!a.add_stat("primary_ms", 1));
        a.primary_ms.set(95.0, Some(4.0));
        let mut b = a.clone();
        b.primary_ms.set(95.0, Some(9.0));
        b.dark_ms.set(50.0, Some(1.0));
        a.merge(&b);
        assert_eq!(a.compared, 20);
        assert_eq!(a.skipped["sampled_out"], 6);
        assert_eq!(a.field_mismatch["/items/*/price"], 4);
        assert_eq!(a.field_mismatch["a.b"], 2);
        assert_eq!(a.primary_ms.p95, Some(9.0));
        assert_eq!(a.dark_ms.p50, Some(1.0));
        assert_eq!(a.dark_ms.p95, None);
    }

    #[test]
    fn filter_adds_missing_launches() {
        let mut s = Snapshot::default();
        s.launch_mut("a").compared = 1;
        s.launch_mut("b").compared = 2;
        s.filter(&["b".to_string(), "typo".to_string()]);
        assert_eq!(s.launches.keys().collect::<Vec<_>>(), ["b", "typo"]);
        assert_eq!(s.launches["typo"], LaunchCounters::default());
    }

    #[test]
    fn quantile_set_ignores_nan_and_other_quantiles() {
        let mut q = Quantiles::default();
        q.set(95.0, Some(f64::NAN));
        q.set(90.0, Some(1.0));
        assert_eq!(q, Quantiles::default());
    }
}
