//! Thresholds, the per-launch checks and the verdict rule.
//!
//! For a launch with `compared` pairs, `mismatch` of them differing:
//!
//! 1. Three checks, each `pass`, `marginal`, `fail` or `unknown`:
//!    * **divergence**: the 95% Wilson score interval `[low, high]` of
//!      `mismatch / compared`. `fail` when `low > max_divergence` (the
//!      divergence is above the threshold with 95% confidence); `pass` when
//!      `high ≤ max_divergence` (below it with 95% confidence); `marginal`
//!      otherwise (the interval contains the threshold — whichever side the
//!      point estimate is on).
//!    * **errors**: dark error rate = (dark `5xx` + `timeout` + `reset`) / all
//!      dark outcomes (`dark_response.*`); primary error rate = (primary
//!      `5xx` + `reset`) / all primary outcomes (`primary_response.*`); delta
//!      = dark − primary (a fraction: 0.005 = 0.5 percentage points). `fail`
//!      when `delta > max_error_delta`, `pass` otherwise (a dark side with
//!      fewer errors passes); `unknown` without dark or primary outcomes.
//!    * **latency**: `fail` when `dark p95 > primary p95 × max_p95_ratio +
//!      p95_slack_ms`, `pass` otherwise; `unknown` when either p95 is missing
//!      (no samples yet — Envoy computes quantiles at each stats flush);
//!      `skipped` when `max_p95_ratio` is infinite (`--max-p95-ratio inf`).
//! 2. The verdict: **FAIL** if any check fails, else **INCONCLUSIVE** if any
//!    is unknown, else **MARGINAL** if divergence is marginal, else **PASS**.
//! 3. `min_compared` only withholds a PASS: with fewer pairs a would-be PASS
//!    is **INCONCLUSIVE**. Every other verdict stands at any sample size — a
//!    divergence whose 95% lower bound already exceeds the maximum is a FAIL
//!    with 10 pairs as with 10,000.
//!
//! "Exceeds" is strict: a value equal to its threshold passes. Comparisons
//! allow a relative 1e-9 for floating-point rounding, so 1/100 against 0.01
//! is "equal".
//!
//! Several launches: the overall verdict is the worst, in the order PASS <
//! MARGINAL < INCONCLUSIVE < FAIL; no launch at all is INCONCLUSIVE.

use crate::model::{DarkOutcome, LaunchCounters, PrimaryOutcome};
use crate::wilson::Proportion;
use darklaunch::vocab::GrpcCode;
use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    // Declared in severity order (derive(Ord) follows it).
    Pass,
    Marginal,
    Inconclusive,
    Fail,
}

impl Verdict {
    /// The process exit code: 0 PASS, 1 MARGINAL, 2 FAIL, 3 INCONCLUSIVE.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Pass => 0,
            Verdict::Marginal => 1,
            Verdict::Fail => 2,
            Verdict::Inconclusive => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Marginal => "MARGINAL",
            Verdict::Fail => "FAIL",
            Verdict::Inconclusive => "INCONCLUSIVE",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PASS" => Some(Verdict::Pass),
            "MARGINAL" => Some(Verdict::Marginal),
            "FAIL" => Some(Verdict::Fail),
            "INCONCLUSIVE" => Some(Verdict::Inconclusive),
            _ => None,
        }
    }

    /// The worst of several verdicts; INCONCLUSIVE for none.
    pub fn worst(all: impl IntoIterator<Item = Verdict>) -> Verdict {
        all.into_iter().max().unwrap_or(Verdict::Inconclusive)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    Pass,
    Marginal,
    Fail,
    /// Not enough data to evaluate.
    Unknown,
    /// Disabled by its threshold.
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub max_divergence: f64,
    pub max_error_delta: f64,
    pub max_p95_ratio: f64,
    pub p95_slack_ms: f64,
    pub min_compared: u64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            max_divergence: 0.01,
            max_error_delta: 0.005,
            max_p95_ratio: 1.10,
            p95_slack_ms: 1.0,
            min_compared: 100,
        }
    }
}

/// Infinite ratios serialize as null (JSON has no infinity).
fn finite_or_null<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else {
        s.serialize_none()
    }
}

impl Serialize for Thresholds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct T {
            max_divergence: f64,
            max_error_delta: f64,
            #[serde(serialize_with = "finite_or_null")]
            max_p95_ratio: f64,
            p95_slack_ms: f64,
            min_compared: u64,
        }
        T {
            max_divergence: self.max_divergence,
            max_error_delta: self.max_error_delta,
            max_p95_ratio: self.max_p95_ratio,
            p95_slack_ms: self.p95_slack_ms,
            min_compared: self.min_compared,
        }
        .serialize(s)
    }
}

/// `value > limit`, allowing a relative 1e-9 for rounding.
pub fn exceeds(value: f64, limit: f64) -> bool {
    value > limit + 1e-9 * limit.abs().max(1e-300)
}

/// The three checks and the verdict of one launch.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub verdict: Verdict,
    pub divergence: Proportion,
    pub divergence_check: Check,
    pub dark_errors: Proportion,
    pub primary_errors: Proportion,
    /// dark error rate − primary error rate.
    pub error_delta: Option<f64>,
    pub error_check: Check,
    /// dark p95 / primary p95 (None when either is missing or primary is 0).
    pub p95_ratio: Option<f64>,
    pub latency_check: Check,
    /// Why the verdict is not PASS, one sentence per failing, marginal or
    /// unknown check.
    pub reasons: Vec<String>,
}

pub fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

pub fn evaluate(c: &LaunchCounters, t: &Thresholds) -> Evaluation {
    let divergence = Proportion::new(c.mismatch, c.compared);
    let dark = |keep: fn(DarkOutcome) -> bool| {
        let names = DarkOutcome::ALL
            .iter()
            .filter(|o| keep(**o))
            .map(|o| o.as_str());
        LaunchCounters::sum(&c.dark_response, names)
    };
    let primary = |keep: fn(PrimaryOutcome) -> bool| {
        let names = PrimaryOutcome::ALL
            .iter()
            .filter(|o| keep(**o))
            .map(|o| o.as_str());
        LaunchCounters::sum(&c.primary_response, names)
    };
    // Errors as the breaker counts failures: 5xx, timeouts and resets. A
    // gRPC launch's answers are HTTP 200s: their errors are the server-error
    // codes (`GrpcCode::is_error`), plus timeouts and resets.
    let (dark_failed, primary_failed) = if c.dark_grpc.is_empty() && c.primary_grpc.is_empty() {
        (
            dark(DarkOutcome::is_failure),
            primary(PrimaryOutcome::is_failure),
        )
    } else {
        let errors = |codes| {
            let names = GrpcCode::ALL
                .iter()
                .filter(|c| c.is_error())
                .map(|c| c.as_str());
            LaunchCounters::sum(codes, names)
        };
        (
            dark(|o| matches!(o, DarkOutcome::Timeout | DarkOutcome::Reset)) + errors(&c.dark_grpc),
            primary(|o| o == PrimaryOutcome::Reset) + errors(&c.primary_grpc),
        )
    };
    let dark_errors = Proportion::new(dark_failed, dark(|_| true));
    let primary_errors = Proportion::new(primary_failed, primary(|_| true));
    // (check, sentence) for every check that is not a plain pass.
    let mut notes: Vec<(Check, String)> = Vec::new();

    let divergence_check = match (divergence.low, divergence.high) {
        (Some(low), Some(high)) => {
            if exceeds(low, t.max_divergence) {
                notes.push((
                    Check::Fail,
                    format!(
                        "divergence {} (95% CI {}–{}): even the lower bound exceeds max {}",
                        pct(divergence.rate.unwrap_or(0.0)),
                        pct(low),
                        pct(high),
                        pct(t.max_divergence)
                    ),
                ));
                Check::Fail
            } else if exceeds(high, t.max_divergence) {
                notes.push((Check::Marginal, format!(
                    "divergence {} (95% CI {}–{}): the interval contains max {}; more traffic decides",
                    pct(divergence.rate.unwrap_or(0.0)),
                    pct(low),
                    pct(high),
                    pct(t.max_divergence)
                )));
                Check::Marginal
            } else {
                Check::Pass
            }
        }
        _ => {
            notes.push((Check::Unknown, "no compared pairs".to_string()));
            Check::Unknown
        }
    };

    let error_delta = match (dark_errors.rate, primary_errors.rate) {
        (Some(d), Some(p)) => Some(d - p),
        _ => None,
    };
    let error_check = match error_delta {
        Some(delta) if exceeds(delta, t.max_error_delta) => {
            notes.push((
                Check::Fail,
                format!(
                    "dark error rate {} vs primary {}: {:+.2} pp exceeds max {:.2} pp",
                    pct(dark_errors.rate.unwrap_or(0.0)),
                    pct(primary_errors.rate.unwrap_or(0.0)),
                    delta * 100.0,
                    t.max_error_delta * 100.0
                ),
            ));
            Check::Fail
        }
        Some(_) => Check::Pass,
        None => {
            notes.push((
                Check::Unknown,
                "no dark or no primary outcomes counted".to_string(),
            ));
            Check::Unknown
        }
    };

    let (dp95, pp95) = (c.dark_ms.p95, c.primary_ms.p95);
    let p95_ratio = match (dp95, pp95) {
        (Some(d), Some(p)) if p > 0.0 => Some(d / p),
        _ => None,
    };
    let latency_check = if !t.max_p95_ratio.is_finite() {
        Check::Skipped
    } else {
        match (dp95, pp95) {
            (Some(d), Some(p)) => {
                let limit = p * t.max_p95_ratio + t.p95_slack_ms;
                if exceeds(d, limit) {
                    notes.push((Check::Fail, format!(
                        "dark p95 {d:.2} ms exceeds primary p95 {p:.2} ms × {} + {} ms = {limit:.2} ms",
                        t.max_p95_ratio, t.p95_slack_ms
                    )));
                    Check::Fail
                } else {
                    Check::Pass
                }
            }
            _ => {
                notes.push((
                    Check::Unknown,
                    "no latency quantiles yet (histograms without samples, or not flushed yet)"
                        .to_string(),
                ));
                Check::Unknown
            }
        }
    };

    let checks = [divergence_check, error_check, latency_check];
    let (verdict, shown): (Verdict, &[Check]) = if checks.contains(&Check::Fail) {
        (Verdict::Fail, &[Check::Fail])
    } else if checks.contains(&Check::Unknown) {
        (Verdict::Inconclusive, &[Check::Unknown, Check::Marginal])
    } else if checks.contains(&Check::Marginal) {
        (Verdict::Marginal, &[Check::Marginal])
    } else if c.compared < t.min_compared {
        // Too few pairs to call it a pass.
        (Verdict::Inconclusive, &[])
    } else {
        (Verdict::Pass, &[])
    };
    // Causes that explain few pairs come first.
    let mut reasons: Vec<String> = Vec::new();
    let unknown = c.skipped.get("unknown_cluster").copied().unwrap_or(0);
    if unknown > 0 {
        reasons.push(format!(
            "{unknown} matched requests were not shadowed because Envoy has no cluster by the \
             launch's dark_cluster name (skipped.unknown_cluster): fix dark_cluster or define \
             the cluster"
        ));
    }
    if c.expired > 0 {
        reasons.push(
            "the launch is past its expires time and no longer shadows (remove it, or move \
             expires)"
                .to_string(),
        );
    }
    reasons.extend(
        notes
            .into_iter()
            .filter(|(check, _)| shown.contains(check))
            .map(|(_, text)| text),
    );
    if c.compared < t.min_compared && verdict == Verdict::Inconclusive {
        reasons.push(format!(
            "{} compared pairs, fewer than min-compared {}",
            c.compared, t.min_compared
        ));
    }
    Evaluation {
        verdict,
        divergence,
        divergence_check,
        dark_errors,
        primary_errors,
        error_delta,
        error_check,
        p95_ratio,
        latency_check,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Quantiles;

    /// A launch with `compared` pairs, `mismatch` differing; `dark_err` of
    /// `compared` dark outcomes were 5xx, `primary_err` primary ones 5xx;
    /// p95 latencies as given.
    fn launch(
        compared: u64,
        mismatch: u64,
        dark_err: u64,
        primary_err: u64,
        dark_p95: Option<f64>,
        primary_p95: Option<f64>,
    ) -> LaunchCounters {
        let mut c = LaunchCounters {
            shadowed: compared,
            compared,
            mismatch,
            ..Default::default()
        };
        c.dark_response.insert("2xx".into(), compared - dark_err);
        c.dark_response.insert("5xx".into(), dark_err);
        c.primary_response
            .insert("2xx".into(), compared - primary_err);
        c.primary_response.insert("5xx".into(), primary_err);
        c.dark_ms = Quantiles {
            p50: dark_p95,
            p95: dark_p95,
            p99: dark_p95,
        };
        c.primary_ms = Quantiles {
            p50: primary_p95,
            p95: primary_p95,
            p99: primary_p95,
        };
        c
    }

    fn clean(compared: u64, mismatch: u64) -> LaunchCounters {
        launch(compared, mismatch, 0, 0, Some(10.0), Some(10.0))
    }

    fn verdict(c: &LaunchCounters, t: &Thresholds) -> Verdict {
        evaluate(c, t).verdict
    }

    #[test]
    fn grpc_errors_are_server_error_codes() {
        // 200 answers all: 30 dark calls answered, 5 of them `unavailable`,
        // 10 `not_found` (an answer, not an error), and 2 timeouts.
        let mut c = clean(32, 0);
        c.dark_response.insert("2xx".into(), 30);
        c.dark_response.insert("timeout".into(), 2);
        c.dark_grpc.insert("ok".into(), 15);
        c.dark_grpc.insert("not_found".into(), 10);
        c.dark_grpc.insert("unavailable".into(), 5);
        c.primary_grpc.insert("ok".into(), 31);
        c.primary_grpc.insert("data_loss".into(), 1);
        let e = evaluate(&c, &Thresholds::default());
        assert_eq!((e.dark_errors.count, e.dark_errors.total), (7, 32));
        assert_eq!((e.primary_errors.count, e.primary_errors.total), (1, 32));
    }

    #[test]
    fn exit_codes_and_order() {
        assert_eq!(Verdict::Pass.exit_code(), 0);
        assert_eq!(Verdict::Marginal.exit_code(), 1);
        assert_eq!(Verdict::Fail.exit_code(), 2);
        assert_eq!(Verdict::Inconclusive.exit_code(), 3);
        assert_eq!(
            Verdict::worst([Verdict::Pass, Verdict::Marginal]),
            Verdict::Marginal
        );
        assert_eq!(
            Verdict::worst([Verdict::Marginal, Verdict::Inconclusive]),
            Verdict::Inconclusive
        );
        assert_eq!(
            Verdict::worst([Verdict::Inconclusive, Verdict::Fail]),
            Verdict::Fail
        );
        assert_eq!(Verdict::worst([]), Verdict::Inconclusive);
        assert_eq!(Verdict::parse("marginal"), Some(Verdict::Marginal));
        assert_eq!(
            serde_json::to_string(&Verdict::Inconclusive).unwrap(),
            "\"INCONCLUSIVE\""
        );
    }

    #[test]
    fn min_compared_boundary() {
        let t = Thresholds {
            max_divergence: 0.05,
            ..Default::default()
        };
        // 0/99 < min 100: a would-be PASS is withheld.
        assert_eq!(verdict(&clean(99, 0), &t), Verdict::Inconclusive);
        // 99/99: the lower bound already exceeds 5%: FAIL at any size.
        assert_eq!(verdict(&clean(99, 99), &t), Verdict::Fail);
        // 69 of 69 compared: 95% CI 94.7–100% → FAIL, whatever min-compared.
        let e = evaluate(&clean(69, 69), &Thresholds::default());
        assert_eq!(e.verdict, Verdict::Fail);
        assert!(
            e.reasons[0].starts_with("divergence 100.00% (95% CI 94.73%–100.00%)"),
            "{:?}",
            e.reasons
        );
        assert!(!e.reasons.iter().any(|r| r.contains("min-compared")));
        // A MARGINAL interval stands too: more traffic decides either way.
        assert_eq!(verdict(&clean(20, 1), &t), Verdict::Marginal);
        // Exactly min: judged. 0/100 → Wilson high 3.70% ≤ 5%: PASS.
        assert_eq!(verdict(&clean(100, 0), &t), Verdict::Pass);
        // min 0 and nothing compared: the divergence is unknown.
        let t0 = Thresholds {
            min_compared: 0,
            ..t
        };
        let e = evaluate(&clean(0, 0), &t0);
        assert_eq!(
            (e.verdict, e.divergence_check),
            (Verdict::Inconclusive, Check::Unknown)
        );
    }

    #[test]
    fn divergence_interval_against_the_threshold() {
        let t = Thresholds::default(); // max 1%
                                       // 0/381: high 0.9982% ≤ 1% → PASS; 0/380: high 1.0008% → MARGINAL.
        assert_eq!(verdict(&clean(381, 0), &t), Verdict::Pass);
        assert_eq!(verdict(&clean(380, 0), &t), Verdict::Marginal);
        // 0/100: point estimate 0 passes, high 3.7% straddles: MARGINAL.
        let e = evaluate(&clean(100, 0), &t);
        assert_eq!(
            (e.verdict, e.divergence_check),
            (Verdict::Marginal, Check::Marginal)
        );
        assert!(
            e.reasons[0].contains("interval contains"),
            "{:?}",
            e.reasons
        );
        // 2/100: point 2% > 1% but low 0.55% < 1%: MARGINAL, not FAIL.
        assert_eq!(verdict(&clean(100, 2), &t), Verdict::Marginal);
        // 5/100: low 2.15% > 1%: FAIL.
        let e = evaluate(&clean(100, 5), &t);
        assert_eq!(
            (e.verdict, e.divergence_check),
            (Verdict::Fail, Check::Fail)
        );
        assert!(e.reasons[0].contains("lower bound"), "{:?}", e.reasons);
        // 1/1000: [0.0177%, 0.5643%] inside 1%: PASS.
        assert_eq!(verdict(&clean(1000, 1), &t), Verdict::Pass);
    }

    #[test]
    fn divergence_exactly_at_the_threshold() {
        // The bound equal to the threshold passes ("exceeds" is strict).
        let (low, high) = crate::wilson::wilson(5, 100, crate::wilson::Z95).unwrap();
        let at_high = Thresholds {
            max_divergence: high,
            ..Default::default()
        };
        assert_eq!(
            evaluate(&clean(100, 5), &at_high).divergence_check,
            Check::Pass
        );
        let at_low = Thresholds {
            max_divergence: low,
            ..Default::default()
        };
        // low == max: not above it, and high > max: MARGINAL.
        assert_eq!(
            evaluate(&clean(100, 5), &at_low).divergence_check,
            Check::Marginal
        );
        let below_low = Thresholds {
            max_divergence: low * 0.999,
            ..Default::default()
        };
        assert_eq!(
            evaluate(&clean(100, 5), &below_low).divergence_check,
            Check::Fail
        );
        // Threshold 1 (100%): nothing can fail or straddle.
        let one = Thresholds {
            max_divergence: 1.0,
            ..Default::default()
        };
        assert_eq!(verdict(&clean(100, 100), &one), Verdict::Pass);
        // Threshold 0: any mismatch fails, none is MARGINAL? No: 0/n has
        // low = 0 = max and high > 0: MARGINAL; 1/n has low > 0: FAIL.
        let zero = Thresholds {
            max_divergence: 0.0,
            ..Default::default()
        };
        assert_eq!(verdict(&clean(100, 0), &zero), Verdict::Marginal);
        assert_eq!(verdict(&clean(100, 1), &zero), Verdict::Fail);
    }

    #[test]
    fn error_delta_boundaries() {
        // Divergence threshold 1 so only the errors decide.
        let t = Thresholds {
            max_divergence: 1.0,
            max_error_delta: 0.01,
            ..Default::default()
        };
        // dark 1/100 vs primary 0/100: delta exactly 0.01 = max → PASS.
        let at = launch(100, 0, 1, 0, Some(1.0), Some(1.0));
        let e = evaluate(&at, &t);
        assert_eq!(e.error_delta, Some(0.01));
        assert_eq!((e.verdict, e.error_check), (Verdict::Pass, Check::Pass));
        // dark 2/100: 0.02 > 0.01 → FAIL.
        let e = evaluate(&launch(100, 0, 2, 0, Some(1.0), Some(1.0)), &t);
        assert_eq!((e.verdict, e.error_check), (Verdict::Fail, Check::Fail));
        assert!(e.reasons[0].contains("+2.00 pp"), "{:?}", e.reasons);
        // Equal error rates: delta 0.
        assert_eq!(
            verdict(&launch(100, 0, 7, 7, Some(1.0), Some(1.0)), &t),
            Verdict::Pass
        );
        // A dark side with fewer errors than the primary passes.
        assert_eq!(
            verdict(&launch(100, 0, 0, 9, Some(1.0), Some(1.0)), &t),
            Verdict::Pass
        );
        // Default 0.5 pp: 3/300 − 1/300 = 0.667 pp → FAIL; 3/300 − 2/300 = 0.333 pp → PASS.
        let d = Thresholds {
            max_divergence: 1.0,
            ..Default::default()
        };
        assert_eq!(
            verdict(&launch(300, 0, 3, 1, Some(1.0), Some(1.0)), &d),
            Verdict::Fail
        );
        assert_eq!(
            verdict(&launch(300, 0, 3, 2, Some(1.0), Some(1.0)), &d),
            Verdict::Pass
        );
        // Timeouts and resets count as dark errors; primary resets as primary errors.
        let mut c = launch(100, 0, 0, 0, Some(1.0), Some(1.0));
        c.dark_response.insert("timeout".into(), 1);
        c.dark_response.insert("reset".into(), 1);
        c.dark_response.insert("4xx".into(), 5); // not errors
        c.primary_response.insert("reset".into(), 1);
        let e = evaluate(&c, &d);
        assert_eq!((e.dark_errors.count, e.dark_errors.total), (2, 107));
        assert_eq!((e.primary_errors.count, e.primary_errors.total), (1, 101));
        // No outcomes at all: unknown → INCONCLUSIVE.
        let mut none = clean(100, 0);
        none.dark_response.clear();
        let e = evaluate(&none, &d);
        assert_eq!(
            (e.verdict, e.error_check),
            (Verdict::Inconclusive, Check::Unknown)
        );
    }

    #[test]
    fn latency_boundaries() {
        let t = Thresholds {
            max_divergence: 1.0,
            max_p95_ratio: 1.10,
            p95_slack_ms: 0.0,
            ..Default::default()
        };
        // 110 vs 100 × 1.10: exactly at the limit → PASS.
        let e = evaluate(&launch(100, 0, 0, 0, Some(110.0), Some(100.0)), &t);
        assert_eq!((e.verdict, e.latency_check), (Verdict::Pass, Check::Pass));
        assert!((e.p95_ratio.unwrap() - 1.1).abs() < 1e-12);
        // 110.1 > 110 → FAIL.
        let e = evaluate(&launch(100, 0, 0, 0, Some(110.1), Some(100.0)), &t);
        assert_eq!((e.verdict, e.latency_check), (Verdict::Fail, Check::Fail));
        // The default 1 ms slack absorbs Envoy's whole-millisecond latencies.
        let d = Thresholds {
            max_divergence: 1.0,
            ..Default::default()
        };
        assert_eq!(
            verdict(&launch(100, 0, 0, 0, Some(2.1), Some(1.0)), &d),
            Verdict::Pass
        );
        assert_eq!(
            verdict(&launch(100, 0, 0, 0, Some(2.2), Some(1.0)), &d),
            Verdict::Fail
        );
        // Primary p95 of 0 ms: no ratio, the slack still decides.
        let e = evaluate(&launch(100, 0, 0, 0, Some(0.5), Some(0.0)), &d);
        assert_eq!((e.p95_ratio, e.latency_check), (None, Check::Pass));
        // Missing quantiles: unknown → INCONCLUSIVE, unless disabled.
        let e = evaluate(&launch(100, 0, 0, 0, None, Some(1.0)), &d);
        assert_eq!(
            (e.verdict, e.latency_check),
            (Verdict::Inconclusive, Check::Unknown)
        );
        let off = Thresholds {
            max_p95_ratio: f64::INFINITY,
            ..d
        };
        let e = evaluate(&launch(100, 0, 0, 0, None, None), &off);
        assert_eq!(
            (e.verdict, e.latency_check),
            (Verdict::Pass, Check::Skipped)
        );
    }

    #[test]
    fn fail_beats_unknown_and_marginal() {
        let t = Thresholds::default();
        // Diverging (FAIL) with no latency yet (unknown): FAIL.
        let e = evaluate(&launch(100, 50, 0, 0, None, None), &t);
        assert_eq!(e.verdict, Verdict::Fail);
        assert_eq!(e.reasons.len(), 1, "{:?}", e.reasons);
        // Marginal divergence with unknown latency: INCONCLUSIVE.
        assert_eq!(
            verdict(&launch(100, 0, 0, 0, None, None), &t),
            Verdict::Inconclusive
        );
        // Marginal divergence with failing errors: FAIL.
        assert_eq!(
            verdict(&launch(100, 0, 5, 0, Some(1.0), Some(1.0)), &t),
            Verdict::Fail
        );
    }

    #[test]
    fn thresholds_serialize_infinity_as_null() {
        let t = Thresholds {
            max_p95_ratio: f64::INFINITY,
            ..Default::default()
        };
        let v = serde_json::to_value(t).unwrap();
        assert!(v["max_p95_ratio"].is_null());
        assert_eq!(v["min_compared"], 100);
    }
}
