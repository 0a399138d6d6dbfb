//! The report: per-launch numbers, checks and verdicts, as JSON (schema
//! `darklaunch-report/v1`, see report/README.md) or as a table.

use crate::model::{Family, LaunchCounters, Quantiles, Snapshot};
use crate::verdict::{evaluate, pct, Check, Thresholds, Verdict};
use crate::wilson::Proportion;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const SCHEMA: &str = "darklaunch-report/v1";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    /// `envoy` (admin endpoints), `prometheus`, or `file` (saved admin JSON).
    pub kind: &'static str,
    /// The admin base URLs, the Prometheus URL, or the file paths.
    pub endpoints: Vec<String>,
    /// Prometheus only: the `--window` range, null for totals.
    pub window: Option<String>,
    /// Prometheus only: the `--selector` label matchers.
    pub selector: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub verdict: Verdict,
    pub exit_code: i32,
    /// Unix time (seconds) the stats were read.
    pub generated_at: u64,
    pub source: Source,
    pub thresholds: Thresholds,
    /// Problems with the source itself (e.g. stats without their labels).
    pub warnings: Vec<String>,
    pub launches: Vec<LaunchReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    /// mismatch / compared; null when nothing was compared.
    pub rate: Option<f64>,
    /// 95% Wilson score interval.
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub mismatch: u64,
    pub compared: u64,
    pub check: Check,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    /// Folded JSON pointer (`/items/*/price`), `(root)`, or `other`.
    pub path: String,
    pub count: u64,
    /// count / mismatch (one mismatching pair can count under several fields).
    pub share: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Errors {
    /// (5xx + timeout + reset) / all dark outcomes.
    pub dark: Proportion,
    /// (5xx + reset) / all primary outcomes.
    pub primary: Proportion,
    /// dark.rate − primary.rate (0.005 = 0.5 percentage points).
    pub delta: Option<f64>,
    pub check: Check,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    pub primary: Quantiles,
    pub dark: Quantiles,
    /// dark p95 / primary p95.
    pub p95_ratio: Option<f64>,
    pub check: Check,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LaunchReport {
    pub launch: String,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    pub matched: u64,
    pub shadowed: u64,
    pub forced: u64,
    pub compared: u64,
    pub mismatch: u64,
    pub noise: u64,
    /// noise / compared.
    pub noise_rate: Option<f64>,
    pub in_flight: u64,
    pub breaker_open: u64,
    /// Envoys reporting the launch past its `expires`.
    pub expired: u64,
    pub divergence: Divergence,
    pub mismatch_kinds: BTreeMap<String, u64>,
    /// Every non-zero field counter, largest first (ties by path).
    pub fields: Vec<Field>,
    /// Mismatching pairs per compared header that differed (non-zero only).
    pub headers: BTreeMap<String, u64>,
    pub errors: Errors,
    pub latency_ms: Latency,
    pub skipped: BTreeMap<String, u64>,
    pub compare_skipped: BTreeMap<String, u64>,
    pub dark_response: BTreeMap<String, u64>,
    pub primary_response: BTreeMap<String, u64>,
    /// gRPC codes of the answers (gRPC launches; non-zero only).
    pub dark_grpc: BTreeMap<String, u64>,
    pub primary_grpc: BTreeMap<String, u64>,
    pub samples: Samples,
}

/// Mismatch samples the filter wrote (`capture`), and those it dropped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Samples {
    pub captured: u64,
    /// `rate`, `size`, `sink`.
    pub dropped: BTreeMap<String, u64>,
}

/// The known keys with 0 where absent, plus any other key the source had.
fn complete(map: &BTreeMap<String, u64>, known: &[&str]) -> BTreeMap<String, u64> {
    let mut out = map.clone();
    for k in known {
        out.entry((*k).to_string()).or_insert(0);
    }
    out
}

fn nonzero_map(map: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    map.iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (k.clone(), *n))
        .collect()
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

pub fn launch_report(name: &str, c: &LaunchCounters, t: &Thresholds) -> LaunchReport {
    let e = evaluate(c, t);
    let mut fields: Vec<Field> = c
        .field_mismatch
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(path, n)| Field {
            path: path.clone(),
            count: *n,
            share: ratio(*n, c.mismatch),
        })
        .collect();
    fields.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.path.cmp(&b.path)));
    LaunchReport {
        launch: name.to_string(),
        verdict: e.verdict,
        reasons: e.reasons,
        matched: c.matched,
        shadowed: c.shadowed,
        forced: c.forced,
        compared: c.compared,
        mismatch: c.mismatch,
        noise: c.noise,
        noise_rate: ratio(c.noise, c.compared),
        in_flight: c.in_flight,
        breaker_open: c.breaker_open,
        expired: c.expired,
        divergence: Divergence {
            rate: e.divergence.rate,
            low: e.divergence.low,
            high: e.divergence.high,
            mismatch: c.mismatch,
            compared: c.compared,
            check: e.divergence_check,
        },
        mismatch_kinds: complete(&c.mismatch_kind, Family::MismatchKind.details()),
        fields,
        headers: nonzero_map(&c.header_mismatch),
        errors: Errors {
            dark: e.dark_errors,
            primary: e.primary_errors,
            delta: e.error_delta,
            check: e.error_check,
        },
        latency_ms: Latency {
            primary: c.primary_ms,
            dark: c.dark_ms,
            p95_ratio: e.p95_ratio,
            check: e.latency_check,
        },
        skipped: complete(&c.skipped, Family::Skipped.details()),
        compare_skipped: complete(&c.compare_skipped, Family::CompareSkipped.details()),
        dark_response: complete(&c.dark_response, Family::DarkResponse.details()),
        primary_response: complete(&c.primary_response, Family::PrimaryResponse.details()),
        dark_grpc: nonzero_map(&c.dark_grpc),
        primary_grpc: nonzero_map(&c.primary_grpc),
        samples: Samples {
            captured: c.sample_captured,
            dropped: complete(&c.sample_dropped, Family::SampleDropped.details()),
        },
    }
}

pub fn build(snap: &Snapshot, t: &Thresholds, source: Source, generated_at: u64) -> Report {
    let launches: Vec<LaunchReport> = snap
        .launches
        .iter()
        .map(|(name, c)| launch_report(name, c, t))
        .collect();
    let verdict = Verdict::worst(launches.iter().map(|l| l.verdict));
    let mut warnings = Vec::new();
    if !snap.untagged.is_empty() {
        let names: Vec<&str> = snap.untagged.iter().take(3).map(String::as_str).collect();
        warnings.push(format!(
            "Prometheus has darklaunch series without a launch label ({}{}): those Envoys \
             lack darklaunch's stats tags, so their launches cannot be read. Add the \
             stats_config of envoy/stats_config.yaml to their bootstrap (Istio: the bootstrap \
             override in examples/istio/telemetry.yaml).",
            names.join(", "),
            if snap.untagged.len() > names.len() {
                ", …"
            } else {
                ""
            }
        ));
    }
    Report {
        schema: SCHEMA,
        verdict,
        exit_code: verdict.exit_code(),
        generated_at,
        source,
        thresholds: *t,
        warnings,
        launches,
    }
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.2}"))
}

fn opt_pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), pct)
}

fn check_str(c: Check) -> &'static str {
    match c {
        Check::Pass => "ok",
        Check::Marginal => "MARGINAL",
        Check::Fail => "FAIL",
        Check::Unknown => "unknown",
        Check::Skipped => "off",
    }
}

/// `k1 n1   k2 n2` for the non-zero entries, or `none`.
fn nonzero(map: &BTreeMap<String, u64>) -> String {
    let items: Vec<String> = map
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join("   ")
    }
}

const COL: usize = 78;

fn row(out: &mut String, label: &str, text: &str, check: Option<Check>) {
    let line = format!("  {label:<13}{text}");
    match check {
        Some(c) => {
            let pad = COL.saturating_sub(line.chars().count()).max(2);
            let _ = writeln!(out, "{line}{}{}", " ".repeat(pad), check_str(c));
        }
        None => {
            let _ = writeln!(out, "{line}");
        }
    }
}

/// The human-readable table; `top` field counters per launch.
pub fn table(r: &Report, top: usize) -> String {
    let t = &r.thresholds;
    let mut out = String::new();
    let src = match r.source.kind {
        "prometheus" => format!(
            "Prometheus {}{}{}",
            r.source.endpoints.join(", "),
            r.source
                .window
                .as_ref()
                .map_or_else(|| " (totals)".to_string(), |w| format!(" (last {w})")),
            r.source
                .selector
                .as_ref()
                .map_or_else(String::new, |s| format!(" {{{s}}}"))
        ),
        kind => {
            let n = r.source.endpoints.len();
            let what = if kind == "file" { "file" } else { "Envoy" };
            format!(
                "{n} {what}{} ({})",
                if n == 1 { "" } else { "s" },
                r.source.endpoints.join(", ")
            )
        }
    };
    let latency_rule = if t.max_p95_ratio.is_finite() {
        format!(
            "dark p95 ≤ primary p95 × {} + {} ms",
            t.max_p95_ratio, t.p95_slack_ms
        )
    } else {
        "latency not checked".to_string()
    };
    let _ = writeln!(out, "darklaunch report — {src}");
    let _ = writeln!(
        out,
        "thresholds: divergence ≤ {} (95% Wilson), error delta ≤ {:.2} pp, {latency_rule}, min compared {}",
        pct(t.max_divergence),
        t.max_error_delta * 100.0,
        t.min_compared
    );
    for w in &r.warnings {
        let _ = writeln!(out, "WARNING: {w}");
    }
    if r.launches.is_empty() {
        let _ = writeln!(out, "\nno darklaunch stats found");
    }
    for l in &r.launches {
        let _ = writeln!(out);
        let head = format!("launch {} ", l.launch);
        let fill = COL.saturating_sub(head.chars().count() + 1);
        let _ = writeln!(out, "{head}{} {}", "─".repeat(fill), l.verdict.as_str());
        row(
            &mut out,
            "traffic",
            &format!(
                "matched {}   shadowed {}   compared {}   forced {}   in flight {}{}",
                l.matched,
                l.shadowed,
                l.compared,
                l.forced,
                l.in_flight,
                match (l.breaker_open > 0, l.expired > 0) {
                    (_, true) => "   EXPIRED",
                    (true, false) => "   BREAKER OPEN",
                    (false, false) => "",
                }
            ),
            None,
        );
        let d = &l.divergence;
        row(
            &mut out,
            "divergence",
            &format!(
                "{} ({} of {})   95% CI {} – {}",
                opt_pct(d.rate),
                d.mismatch,
                d.compared,
                opt_pct(d.low),
                opt_pct(d.high)
            ),
            Some(d.check),
        );
        row(&mut out, "mismatch", &nonzero(&l.mismatch_kinds), None);
        if !l.headers.is_empty() {
            row(&mut out, "headers", &nonzero(&l.headers), None);
        }
        let dropped: u64 = l.samples.dropped.values().sum();
        if l.samples.captured + dropped > 0 {
            let detail = if dropped > 0 {
                format!("   dropped: {}", nonzero(&l.samples.dropped))
            } else {
                String::new()
            };
            row(
                &mut out,
                "samples",
                &format!("{} captured{detail}", l.samples.captured),
                None,
            );
        }
        if l.fields.is_empty() {
            row(&mut out, "top fields", "none", None);
        }
        let width = l
            .fields
            .iter()
            .take(top)
            .map(|f| f.path.chars().count())
            .max()
            .unwrap_or(0);
        for (i, f) in l.fields.iter().take(top).enumerate() {
            let share = f
                .share
                .map_or_else(String::new, |s| format!("   {:>6} of mismatches", pct(s)));
            row(
                &mut out,
                if i == 0 { "top fields" } else { "" },
                &format!("{:<width$}  {:>6}{share}", f.path, f.count),
                None,
            );
        }
        if l.fields.len() > top {
            row(
                &mut out,
                "",
                &format!("… {} more (--top N, or --json)", l.fields.len() - top),
                None,
            );
        }
        row(
            &mut out,
            "noise",
            &format!(
                "{} pairs cancelled as A/A noise ({} of compared)",
                l.noise,
                opt_pct(l.noise_rate)
            ),
            None,
        );
        let e = &l.errors;
        row(
            &mut out,
            "errors",
            &format!(
                "dark {} ({}/{})   primary {} ({}/{})   delta {}",
                opt_pct(e.dark.rate),
                e.dark.count,
                e.dark.total,
                opt_pct(e.primary.rate),
                e.primary.count,
                e.primary.total,
                e.delta
                    .map_or_else(|| "-".to_string(), |x| format!("{:+.2} pp", x * 100.0))
            ),
            Some(e.check),
        );
        let lat = &l.latency_ms;
        row(
            &mut out,
            "latency ms",
            &format!("{:>8} {:>8} {:>8}", "p50", "p95", "p99"),
            None,
        );
        for (name, q) in [("primary", &lat.primary), ("dark", &lat.dark)] {
            let text = format!(
                "{:>8} {:>8} {:>8}",
                opt_ms(q.p50),
                opt_ms(q.p95),
                opt_ms(q.p99)
            );
            if name == "dark" {
                let ratio = lat
                    .p95_ratio
                    .map_or_else(|| "-".to_string(), |x| format!("{x:.2}"));
                row(
                    &mut out,
                    "  dark",
                    &format!("{text}   p95 ratio {ratio}"),
                    Some(lat.check),
                );
            } else {
                row(&mut out, "  primary", &text, None);
            }
        }
        if !l.dark_grpc.is_empty() || !l.primary_grpc.is_empty() {
            row(&mut out, "grpc codes", "", None);
            row(&mut out, "  primary", &nonzero(&l.primary_grpc), None);
            row(&mut out, "  dark", &nonzero(&l.dark_grpc), None);
        }
        row(&mut out, "skipped", &nonzero(&l.skipped), None);
        row(&mut out, "not compared", &nonzero(&l.compare_skipped), None);
        for (i, reason) in l.reasons.iter().enumerate() {
            row(&mut out, if i == 0 { "why" } else { "" }, reason, None);
        }
    }
    let _ = writeln!(out);
    let counts = [
        Verdict::Pass,
        Verdict::Marginal,
        Verdict::Fail,
        Verdict::Inconclusive,
    ]
    .iter()
    .filter_map(|v| {
        let n = r.launches.iter().filter(|l| l.verdict == *v).count();
        (n > 0).then(|| format!("{n} {}", v.as_str()))
    })
    .collect::<Vec<_>>()
    .join(", ");
    let _ = writeln!(
        out,
        "verdict {} (exit {}){}",
        r.verdict.as_str(),
        r.exit_code,
        if counts.is_empty() {
            String::new()
        } else {
            format!(": {counts}")
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Source {
        Source {
            kind: "file",
            endpoints: vec!["fixture".into()],
            window: None,
            selector: None,
        }
    }

    #[test]
    fn report_from_the_envoy_fixture() {
        let snap = crate::envoy::parse(include_str!("../tests/fixtures/envoy_stats.json")).unwrap();
        let t = Thresholds {
            min_compared: 10,
            ..Default::default()
        };
        let r = build(&snap, &t, source(), 0);
        assert_eq!(r.launches.len(), 2);
        let l = &r.launches[0];
        assert_eq!(l.launch, "orders-v2");
        // 8/28 mismatches: Wilson low 15.25% > 1%.
        assert_eq!(l.verdict, Verdict::Fail);
        assert_eq!(l.divergence.check, Check::Fail);
        assert!((l.divergence.rate.unwrap() - 8.0 / 28.0).abs() < 1e-12);
        // Dark 3 errors (2 × 5xx + 1 reset) of 29, primary 0 of 29.
        assert_eq!((l.errors.dark.count, l.errors.dark.total), (3, 29));
        assert_eq!((l.errors.primary.count, l.errors.primary.total), (0, 29));
        assert_eq!(l.errors.check, Check::Fail);
        // dark p95 3.05 ≤ 2.05 × 1.1 + 1.
        assert_eq!(l.latency_ms.check, Check::Pass);
        assert_eq!(
            l.fields,
            vec![
                Field {
                    path: "/price".into(),
                    count: 6,
                    share: Some(0.75)
                },
                Field {
                    path: "/items/*/sku".into(),
                    count: 2,
                    share: Some(0.25)
                },
            ]
        );
        assert_eq!(l.mismatch_kinds["headers"], 0);
        assert_eq!(l.dark_response.len(), 6);
        let s = &r.launches[1];
        assert_eq!(
            (s.launch.as_str(), s.verdict),
            ("search_v3", Verdict::Inconclusive)
        );
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(r.exit_code, 2);

        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["schema"], SCHEMA);
        assert_eq!(json["verdict"], "FAIL");
        assert_eq!(json["launches"][0]["divergence"]["check"], "fail");
        assert!(json["launches"][0]["divergence"]["low"].as_f64().unwrap() > 0.15);
        assert!(json["launches"][1]["divergence"]["rate"].is_null());
        assert!(json["launches"][1]["latency_ms"]["dark"]["p95"].is_null());
        assert_eq!(json["launches"][0]["latency_ms"]["primary"]["p99"], 3.05);

        let text = table(&r, 1);
        assert!(text.contains("launch orders-v2"), "{text}");
        assert!(text.contains("/price"), "{text}");
        assert!(!text.contains("/items/*/sku"), "top 1 only: {text}");
        assert!(text.contains("… 1 more"), "{text}");
        assert!(
            text.contains("verdict FAIL (exit 2): 1 FAIL, 1 INCONCLUSIVE"),
            "{text}"
        );
    }

    #[test]
    fn the_causes_of_no_traffic_are_named() {
        let mut snap = Snapshot::default();
        let l = snap.launch_mut("orders-v2");
        l.matched = 40;
        l.skipped.insert("unknown_cluster".into(), 40);
        let l = snap.launch_mut("old-v1");
        l.matched = 7;
        l.expired = 2;
        l.skipped.insert("expired".into(), 7);
        snap.untagged.insert("darklaunch_search_v3_compared".into());
        snap.untagged.insert("darklaunch_search_v3_matched".into());
        let r = build(&snap, &Thresholds::default(), source(), 0);
        let by_name = |n: &str| r.launches.iter().find(|l| l.launch == n).unwrap();
        let orders = by_name("orders-v2");
        assert_eq!(orders.verdict, Verdict::Inconclusive);
        assert!(
            orders.reasons[0].starts_with(
                "40 matched requests were not shadowed because Envoy has no cluster by the \
                 launch's dark_cluster name (skipped.unknown_cluster)"
            ),
            "{:?}",
            orders.reasons
        );
        let old = by_name("old-v1");
        assert_eq!(old.expired, 2);
        assert!(old.reasons[0].starts_with("the launch is past its expires time"));
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].starts_with(
            "Prometheus has darklaunch series without a launch label \
             (darklaunch_search_v3_compared, darklaunch_search_v3_matched)"
        ));
        assert!(r.warnings[0].contains("envoy/stats_config.yaml"));
        let text = table(&r, 5);
        assert!(
            text.contains("WARNING: Prometheus has darklaunch series"),
            "{text}"
        );
        assert!(text.contains("EXPIRED"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["warnings"][0], r.warnings[0].as_str());
        assert_eq!(json["launches"][0]["expired"], 2);
    }

    #[test]
    fn empty_snapshot_is_inconclusive() {
        let r = build(&Snapshot::default(), &Thresholds::default(), source(), 0);
        assert_eq!((r.verdict, r.exit_code), (Verdict::Inconclusive, 3));
        assert!(table(&r, 5).contains("no darklaunch stats found"));
    }
}
