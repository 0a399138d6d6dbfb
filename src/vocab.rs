//! The names darklaunch publishes, in one place for the filter that defines
//! the stats and for `darklaunch-report`, which reads them back.
//!
//! Every stat of a launch `L` is `darklaunch.L.<stat>` (Envoy shows it as
//! `wasmcustom.darklaunch.L.<stat>`). A stat is a plain [`Scalar`], a
//! [`Histogram`], or a member of a labelled [`Family`] (`skipped.loop`):
//! the shipped `stats_tags` turn the launch and a family's detail into
//! Prometheus labels (`darklaunch_skipped{launch="L",reason="loop"}`).

/// The first segment of every stat name.
pub const NAMESPACE: &str = "darklaunch";

/// Process-wide gauge: 1 while the plugin runs without the configuration
/// it was last given, because that one is invalid (`keep_last_good`).
pub const CONFIG_INVALID: &str = "darklaunch.config_invalid";

/// `darklaunch.<launch>.<stat>`.
pub fn stat_name(launch: &str, stat: &str) -> String {
    format!("{NAMESPACE}.{launch}.{stat}")
}

/// What kind of Envoy stat a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// An enum whose variants are stat names or label values: `ALL` in a fixed
/// order, `NAMES` in the same order, `as_str`, and `index` into both.
macro_rules! names {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Position in [`Self::ALL`] and [`Self::NAMES`].
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

names! {
    /// Plain stats of a launch.
    Scalar {
        Matched = "matched",
        Shadowed = "shadowed",
        Forced = "forced",
        Compared = "compared",
        Mismatch = "mismatch",
        Noise = "noise",
        InFlight = "in_flight",
        BreakerOpen = "breaker_open",
        Expired = "expired",
        SampleCaptured = "sample.captured",
    }
}

impl Scalar {
    pub fn kind(self) -> MetricKind {
        match self {
            Scalar::InFlight | Scalar::BreakerOpen | Scalar::Expired => MetricKind::Gauge,
            _ => MetricKind::Counter,
        }
    }
}

names! {
    /// Latency histograms of a launch, in ms.
    Histogram {
        PrimaryMs = "primary_ms",
        DarkMs = "dark_ms",
    }
}

names! {
    /// Labelled counter families of a launch: `darklaunch.L.<family>.<detail>`.
    Family {
        Skipped = "skipped",
        DarkResponse = "dark_response",
        PrimaryResponse = "primary_response",
        MismatchKind = "mismatch_kind",
        CompareSkipped = "compare_skipped",
        FieldMismatch = "field_mismatch",
        HeaderMismatch = "header_mismatch",
        SampleDropped = "sample.dropped",
        DarkGrpc = "dark_grpc",
        PrimaryGrpc = "primary_grpc",
    }
}

impl Family {
    /// The Prometheus label the shipped `stats_tags` give the detail.
    pub fn label(self) -> &'static str {
        match self {
            Family::Skipped | Family::CompareSkipped | Family::SampleDropped => "reason",
            Family::DarkResponse | Family::PrimaryResponse => "class",
            Family::MismatchKind => "kind",
            Family::FieldMismatch => "path",
            Family::HeaderMismatch => "header",
            Family::DarkGrpc | Family::PrimaryGrpc => "code",
        }
    }

    /// Every detail the family can have; empty for `field_mismatch`, whose
    /// details are JSON pointers (and `other`), and `header_mismatch`, whose
    /// details are the launch's compared header names.
    pub fn details(self) -> &'static [&'static str] {
        match self {
            Family::Skipped => SkipReason::NAMES,
            Family::DarkResponse => DarkOutcome::NAMES,
            Family::PrimaryResponse => PrimaryOutcome::NAMES,
            Family::MismatchKind => MismatchKind::NAMES,
            Family::CompareSkipped => CompareSkip::NAMES,
            Family::SampleDropped => SampleDrop::NAMES,
            Family::DarkGrpc | Family::PrimaryGrpc => GrpcCode::NAMES,
            Family::FieldMismatch | Family::HeaderMismatch => &[],
        }
    }

    /// `<family>.<detail>`, relative to the launch.
    pub fn stat(self, detail: &str) -> String {
        format!("{}.{detail}", self.as_str())
    }
}

names! {
    /// Why a matched request was not shadowed (`skipped.R`).
    SkipReason {
        Expired = "expired",
        SampledOut = "sampled_out",
        FlagOff = "flag_off",
        UserNever = "user_never",
        Loop = "loop",
        Upgrade = "upgrade",
        UnsafeMethod = "unsafe_method",
        BodyTooLarge = "body_too_large",
        RateLimited = "rate_limited",
        InFlight = "in_flight",
        BreakerOpen = "breaker_open",
        UnknownCluster = "unknown_cluster",
        DispatchFailed = "dispatch_failed",
    }
}

/// The class of an HTTP status code; 1xx (never final here) counts with 2xx,
/// anything from 500 up with 5xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    S2xx,
    S3xx,
    S4xx,
    S5xx,
}

impl StatusClass {
    pub fn of(status: u16) -> StatusClass {
        match status {
            0..=299 => StatusClass::S2xx,
            300..=399 => StatusClass::S3xx,
            400..=499 => StatusClass::S4xx,
            _ => StatusClass::S5xx,
        }
    }
}

names! {
    /// What became of a dark call (`dark_response.C`).
    DarkOutcome {
        S2xx = "2xx",
        S3xx = "3xx",
        S4xx = "4xx",
        S5xx = "5xx",
        Timeout = "timeout",
        Reset = "reset",
    }
}

impl DarkOutcome {
    pub fn of_status(status: u16) -> DarkOutcome {
        match StatusClass::of(status) {
            StatusClass::S2xx => DarkOutcome::S2xx,
            StatusClass::S3xx => DarkOutcome::S3xx,
            StatusClass::S4xx => DarkOutcome::S4xx,
            StatusClass::S5xx => DarkOutcome::S5xx,
        }
    }

    /// A failure for the breaker and for the report's dark error rate:
    /// 5xx, timeout or reset.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            DarkOutcome::S5xx | DarkOutcome::Timeout | DarkOutcome::Reset
        )
    }
}

names! {
    /// What became of the primary of a shadowed request
    /// (`primary_response.C`); `reset` when its stream ended without a
    /// complete response.
    PrimaryOutcome {
        S2xx = "2xx",
        S3xx = "3xx",
        S4xx = "4xx",
        S5xx = "5xx",
        Reset = "reset",
    }
}

impl PrimaryOutcome {
    pub fn of_status(status: u16) -> PrimaryOutcome {
        match StatusClass::of(status) {
            StatusClass::S2xx => PrimaryOutcome::S2xx,
            StatusClass::S3xx => PrimaryOutcome::S3xx,
            StatusClass::S4xx => PrimaryOutcome::S4xx,
            StatusClass::S5xx => PrimaryOutcome::S5xx,
        }
    }

    /// An error for the report's primary error rate: 5xx or reset.
    pub fn is_failure(self) -> bool {
        matches!(self, PrimaryOutcome::S5xx | PrimaryOutcome::Reset)
    }
}

names! {
    /// What differed in a mismatching pair (`mismatch_kind.K`).
    MismatchKind {
        Status = "status",
        Headers = "headers",
        Body = "body",
        GrpcStatus = "grpc_status",
    }
}

names! {
    /// Why a shadowed pair was not compared (`compare_skipped.R`).
    CompareSkip {
        DarkFailed = "dark_failed",
        PrimaryIncomplete = "primary_incomplete",
        BodyTooLarge = "body_too_large",
    }
}

names! {
    /// Why a sample was not written (`sample.dropped.R`): the minute's
    /// budget was spent, it could not fit `capture.max_bytes`, or the OTLP
    /// collector did not take it (the log line was written).
    SampleDrop {
        Rate = "rate",
        Size = "size",
        Sink = "sink",
    }
}

names! {
    /// A gRPC status code by its canonical name (`dark_grpc.C`,
    /// `primary_grpc.C`), in code order: `ALL[n]` is code `n`.
    GrpcCode {
        Ok = "ok",
        Cancelled = "cancelled",
        Unknown = "unknown",
        InvalidArgument = "invalid_argument",
        DeadlineExceeded = "deadline_exceeded",
        NotFound = "not_found",
        AlreadyExists = "already_exists",
        PermissionDenied = "permission_denied",
        ResourceExhausted = "resource_exhausted",
        FailedPrecondition = "failed_precondition",
        Aborted = "aborted",
        OutOfRange = "out_of_range",
        Unimplemented = "unimplemented",
        Internal = "internal",
        Unavailable = "unavailable",
        DataLoss = "data_loss",
        Unauthenticated = "unauthenticated",
    }
}

impl GrpcCode {
    /// The code of a `grpc-status` value; one past 16 reads as `unknown`,
    /// as gRPC clients read it.
    pub fn of(code: u32) -> GrpcCode {
        usize::try_from(code)
            .ok()
            .and_then(|i| GrpcCode::ALL.get(i))
            .copied()
            .unwrap_or(GrpcCode::Unknown)
    }

    /// A failure for the breaker: the server is failing or overloaded.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            GrpcCode::Unknown
                | GrpcCode::DeadlineExceeded
                | GrpcCode::Internal
                | GrpcCode::Unavailable
        )
    }

    /// A server error for the report's error rates: the codes gRPC maps to
    /// HTTP 5xx (the breaker's failures, `unimplemented` and `data_loss`).
    /// `not_found`, `invalid_argument` and the like are answers.
    pub fn is_error(self) -> bool {
        self.is_failure() || matches!(self, GrpcCode::Unimplemented | GrpcCode::DataLoss)
    }
}

/// The Prometheus name of a stat relative to the launch, as the shipped
/// stats tags make it: `darklaunch_` and the stat with `.` as `_`
/// (`sample.captured` -> `darklaunch_sample_captured`).
pub fn prometheus_name(stat: &str) -> String {
    format!("{NAMESPACE}_{}", stat.replace('.', "_"))
}

/// The detail of `field_mismatch` for differing fields past the per-launch
/// bound.
pub const FIELD_OTHER: &str = "other";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_variants() {
        for (i, r) in SkipReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert_eq!(SkipReason::NAMES[i], r.as_str());
        }
        assert_eq!(SkipReason::Upgrade.as_str(), "upgrade");
        assert_eq!(DarkOutcome::of_status(503), DarkOutcome::S5xx);
        assert_eq!(DarkOutcome::of_status(101), DarkOutcome::S2xx);
        assert_eq!(PrimaryOutcome::of_status(302), PrimaryOutcome::S3xx);
        assert_eq!(PrimaryOutcome::of_status(404).as_str(), "4xx");
        assert_eq!(DarkOutcome::of_status(700), DarkOutcome::S5xx);
        assert!(DarkOutcome::Timeout.is_failure() && !DarkOutcome::S4xx.is_failure());
        assert!(PrimaryOutcome::Reset.is_failure() && !PrimaryOutcome::S4xx.is_failure());
        assert_eq!(Family::Skipped.stat("loop"), "skipped.loop");
        assert_eq!(Family::Skipped.details(), SkipReason::NAMES);
        assert_eq!(stat_name("l", "matched"), "darklaunch.l.matched");
        assert_eq!(Scalar::InFlight.kind(), MetricKind::Gauge);
        assert_eq!(GrpcCode::of(5), GrpcCode::NotFound);
        assert_eq!(GrpcCode::of(16).as_str(), "unauthenticated");
        assert_eq!(GrpcCode::of(17), GrpcCode::Unknown);
        assert!(GrpcCode::Unavailable.is_failure() && !GrpcCode::DataLoss.is_failure());
        assert!(GrpcCode::DataLoss.is_error() && !GrpcCode::NotFound.is_error());
    }
}
