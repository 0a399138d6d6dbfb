//! The stat ids of one launch, defined once per configuration from the
//! names in `vocab` (each family in the order of its `ALL`).

use crate::host::Host;
use crate::vocab::{
    stat_name, CompareSkip, DarkOutcome, Family, GrpcCode, Histogram, MetricKind, MismatchKind,
    PrimaryOutcome, SampleDrop, Scalar, SkipReason, FIELD_OTHER,
};

#[derive(Debug)]
pub(super) struct LaunchStats {
    scalars: Vec<u32>,
    histograms: Vec<u32>,
    skipped: Vec<u32>,
    dark_response: Vec<u32>,
    primary_response: Vec<u32>,
    mismatch_kind: Vec<u32>,
    compare_skipped: Vec<u32>,
    sample_dropped: Vec<u32>,
    /// `dark_grpc.<code>` and `primary_grpc.<code>`, for gRPC launches only.
    dark_grpc: Vec<u32>,
    primary_grpc: Vec<u32>,
    /// `header_mismatch.<name>` for each compared header.
    header_mismatch: Vec<(String, u32)>,
    /// `field_mismatch.other`; the other fields' ids are found as they come.
    pub field_other: u32,
}

impl LaunchStats {
    /// `headers`: the launch's `compare.headers`; `grpc`: whether it
    /// shadows gRPC calls (the `*_grpc` families are defined only then).
    pub fn define<H: Host>(
        host: &H,
        launch: &str,
        headers: &[String],
        grpc: bool,
    ) -> Result<LaunchStats, String> {
        let def = |kind: MetricKind, stat: &str| {
            let name = stat_name(launch, stat);
            host.define_metric(kind, &name)
                .map_err(|e| format!("cannot define stat {name}: host status {}", e.0))
        };
        let family = |f: Family| -> Result<Vec<u32>, String> {
            f.details()
                .iter()
                .map(|d| def(MetricKind::Counter, &f.stat(d)))
                .collect()
        };
        Ok(LaunchStats {
            scalars: Scalar::ALL
                .iter()
                .map(|s| def(s.kind(), s.as_str()))
                .collect::<Result<_, _>>()?,
            histograms: Histogram::ALL
                .iter()
                .map(|h| def(MetricKind::Histogram, h.as_str()))
                .collect::<Result<_, _>>()?,
            skipped: family(Family::Skipped)?,
            dark_response: family(Family::DarkResponse)?,
            primary_response: family(Family::PrimaryResponse)?,
            mismatch_kind: family(Family::MismatchKind)?,
            compare_skipped: family(Family::CompareSkipped)?,
            sample_dropped: family(Family::SampleDropped)?,
            dark_grpc: if grpc {
                family(Family::DarkGrpc)?
            } else {
                Vec::new()
            },
            primary_grpc: if grpc {
                family(Family::PrimaryGrpc)?
            } else {
                Vec::new()
            },
            header_mismatch: headers
                .iter()
                .map(|h| {
                    let id = def(MetricKind::Counter, &Family::HeaderMismatch.stat(h))?;
                    Ok((h.clone(), id))
                })
                .collect::<Result<_, String>>()?,
            field_other: def(
                MetricKind::Counter,
                &Family::FieldMismatch.stat(FIELD_OTHER),
            )?,
        })
    }

    pub fn scalar(&self, s: Scalar) -> u32 {
        id(&self.scalars, s.index())
    }

    pub fn histogram(&self, h: Histogram) -> u32 {
        id(&self.histograms, h.index())
    }

    pub fn skipped(&self, r: SkipReason) -> u32 {
        id(&self.skipped, r.index())
    }

    pub fn dark_response(&self, o: DarkOutcome) -> u32 {
        id(&self.dark_response, o.index())
    }

    pub fn primary_response(&self, o: PrimaryOutcome) -> u32 {
        id(&self.primary_response, o.index())
    }

    pub fn mismatch_kind(&self, k: MismatchKind) -> u32 {
        id(&self.mismatch_kind, k.index())
    }

    /// The counter of a compared header (one of the launch's
    /// `compare.headers`, as the comparator names them).
    pub fn header_mismatch(&self, name: &str) -> u32 {
        self.header_mismatch
            .iter()
            .find(|(h, _)| h == name)
            .map_or(0, |(_, id)| *id)
    }

    pub fn compare_skipped(&self, r: CompareSkip) -> u32 {
        id(&self.compare_skipped, r.index())
    }

    pub fn sample_dropped(&self, r: SampleDrop) -> u32 {
        id(&self.sample_dropped, r.index())
    }

    /// Only for a gRPC launch's stats.
    pub fn dark_grpc(&self, c: GrpcCode) -> u32 {
        id(&self.dark_grpc, c.index())
    }

    /// Only for a gRPC launch's stats.
    pub fn primary_grpc(&self, c: GrpcCode) -> u32 {
        id(&self.primary_grpc, c.index())
    }
}

/// Entry `i` of a list built from the matching `ALL`, so always present.
fn id(ids: &[u32], i: usize) -> u32 {
    ids.get(i).copied().unwrap_or_default()
}
