//! Reading the darklaunch families from Prometheus (HTTP API
//! `/api/v1/query`, instant queries).
//!
//! With the project's `stats_tags`, Envoy's `/stats/prometheus` exposes
//! `darklaunch_compared{launch}`, `darklaunch_skipped{launch,reason}`,
//! `darklaunch_dark_response{launch,class}`, …,
//! `darklaunch_field_mismatch{launch,path}` and the histograms
//! `darklaunch_primary_ms_bucket{launch,le}` / `darklaunch_dark_ms_bucket`.
//! Every series is summed over the labels that are not the launch's or the
//! family's own (so over `instance`, `pod`, …: all the Envoys Prometheus
//! scrapes).
//!
//! Without a window, counters are their current totals (`sum by (launch)
//! (darklaunch_compared)`, like reading the Envoys directly) and quantiles
//! come from the cumulative buckets. With `--window 1h`, counters are
//! `increase(…[1h])` (rounded to integers) and quantiles come from
//! `rate(…_bucket[1h])`. Gauges (`in_flight`, `breaker_open`) are always
//! current values. Quantiles are `histogram_quantile` over Envoy's default
//! buckets (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, … ms), linearly
//! interpolated within a bucket: coarser than the admin's computed quantiles.

use crate::http::{encode_component, Fetch};
use crate::model::{Family, Scalar, Snapshot};
use darklaunch::vocab::{prometheus_name, Histogram, MetricKind};
use serde_json::Value;
use std::collections::BTreeMap;

/// How to query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// Extra label matchers put in every selector, e.g. `namespace="shop"`.
    pub selector: Option<String>,
    /// A PromQL range (`5m`, `1h`): counters as `increase` over it,
    /// quantiles from `rate` over it. `None`: totals.
    pub window: Option<String>,
}

impl Options {
    fn series(&self, metric: &str) -> String {
        match &self.selector {
            Some(sel) if !sel.trim().is_empty() => format!("{metric}{{{}}}", sel.trim()),
            _ => metric.to_string(),
        }
    }

    fn counted(&self, metric: &str, gauge: bool) -> String {
        let series = self.series(metric);
        match (&self.window, gauge) {
            (Some(w), false) => format!("increase({series}[{w}])"),
            _ => series,
        }
    }
}

/// What a query's result fills in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    Scalar(Scalar),
    Family(Family),
    /// (histogram, quantile in percent)
    Quantile(Histogram, f64),
    /// darklaunch series without a `launch` label: the Envoys lack the
    /// stats tags.
    Untagged,
}

/// The one darklaunch stat that has no launch.
const PROCESS_WIDE: &str = "darklaunch_config_invalid";

/// Every query the report makes, in order.
pub fn queries(opts: &Options) -> Vec<(Target, String)> {
    let mut out = Vec::new();
    for &s in Scalar::ALL {
        let gauge = s.kind() == MetricKind::Gauge;
        let q = format!(
            "sum by (launch) ({})",
            opts.counted(&prometheus_name(s.as_str()), gauge)
        );
        out.push((Target::Scalar(s), q));
    }
    for &f in Family::ALL {
        let q = format!(
            "sum by (launch, {}) ({})",
            f.label(),
            opts.counted(&prometheus_name(f.as_str()), false)
        );
        out.push((Target::Family(f), q));
    }
    for &hist in Histogram::ALL {
        for q in [50.0, 95.0, 99.0] {
            let buckets = opts.series(&format!("darklaunch_{}_bucket", hist.as_str()));
            let inner = match &opts.window {
                Some(w) => format!("rate({buckets}[{w}])"),
                None => buckets,
            };
            let promql = format!(
                "histogram_quantile({}, sum by (launch, le) ({inner}))",
                q / 100.0
            );
            out.push((Target::Quantile(hist, q), promql));
        }
    }
    let extra = match &opts.selector {
        Some(sel) if !sel.trim().is_empty() => format!(",{}", sel.trim()),
        _ => String::new(),
    };
    out.push((
        Target::Untagged,
        format!(
            "count by (__name__) ({{__name__=~\"darklaunch_.+\",__name__!=\"{PROCESS_WIDE}\",launch=\"\"{extra}}})"
        ),
    ));
    out
}

/// One sample of an instant vector: its labels and value.
pub type Sample = (BTreeMap<String, String>, f64);

/// Parses an `/api/v1/query` answer whose result is an instant vector.
pub fn parse_vector(body: &str) -> Result<Vec<Sample>, String> {
    let doc: Value =
        serde_json::from_str(body).map_err(|e| format!("Prometheus answer is not JSON: {e}"))?;
    let status = doc.get("status").and_then(Value::as_str).unwrap_or("");
    if status != "success" {
        let err = doc
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error message");
        return Err(format!("Prometheus query failed ({status}): {err}"));
    }
    let data = doc.get("data").ok_or("Prometheus answer has no data")?;
    let kind = data.get("resultType").and_then(Value::as_str).unwrap_or("");
    if kind != "vector" {
        return Err(format!("Prometheus answered a {kind:?}, not a vector"));
    }
    let result = data
        .get("result")
        .and_then(Value::as_array)
        .ok_or("Prometheus answer has no result array")?;
    let mut out = Vec::new();
    for r in result {
        let labels = r
            .get("metric")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let value = r
            .get("value")
            .and_then(Value::as_array)
            .and_then(|a| a.get(1))
            .and_then(Value::as_str)
            .ok_or("Prometheus sample without a [time, \"value\"] pair")?;
        let value: f64 = value
            .parse()
            .map_err(|_| format!("Prometheus sample value {value:?} is not a number"))?;
        out.push((labels, value));
    }
    Ok(out)
}

fn count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

/// Applies one query's samples to the snapshot.
pub fn apply(snap: &mut Snapshot, target: Target, samples: &[Sample]) {
    if target == Target::Untagged {
        snap.untagged.extend(
            samples
                .iter()
                .filter_map(|(l, _)| l.get("__name__").cloned()),
        );
        return;
    }
    for (labels, value) in samples {
        let Some(launch) = labels.get("launch") else {
            continue;
        };
        let l = snap.launch_mut(launch);
        match target {
            Target::Scalar(s) => *l.scalar_mut(s) += count(*value),
            Target::Family(f) => {
                if let Some(detail) = labels.get(f.label()) {
                    *l.family_mut(f).entry(detail.clone()).or_insert(0) += count(*value);
                }
            }
            Target::Quantile(hist, q) => {
                let v = Some(*value).filter(|v| v.is_finite());
                l.quantiles_mut(hist).set(q, v);
            }
            Target::Untagged => {}
        }
    }
}

/// `base/api/v1/query?query=…`.
pub fn query_url(base: &str, promql: &str) -> String {
    format!(
        "{}/api/v1/query?query={}",
        base.trim_end_matches('/'),
        encode_component(promql)
    )
}

/// Runs every query against the Prometheus at `base`.
pub fn snapshot(fetch: &dyn Fetch, base: &str, opts: &Options) -> Result<Snapshot, String> {
    let mut snap = Snapshot::default();
    for (target, promql) in queries(opts) {
        let body = fetch.get(&query_url(base, &promql))?;
        let samples = parse_vector(&body).map_err(|e| format!("{promql}: {e}"))?;
        apply(&mut snap, target, &samples);
    }
    Ok(snap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts_have_untagged(q: &[(Target, String)]) -> bool {
        q.iter().any(|(t, text)| {
            *t == Target::Untagged
                && text
                    == "count by (__name__) ({__name__=~\"darklaunch_.+\",__name__!=\"darklaunch_config_invalid\",launch=\"\"})"
        })
    }

    #[test]
    fn untagged_series_are_collected() {
        let mut snap = Snapshot::default();
        let samples = vec![(
            BTreeMap::from([("__name__".to_string(), "darklaunch_x_compared".to_string())]),
            3.0,
        )];
        apply(&mut snap, Target::Untagged, &samples);
        assert!(snap.untagged.contains("darklaunch_x_compared"));
        assert!(snap.launches.is_empty());
    }

    #[test]
    fn query_text() {
        let q = queries(&Options::default());
        assert_eq!(q.len(), 10 + 10 + 6 + 1);
        assert!(texts_have_untagged(&q));
        let texts: Vec<&str> = q.iter().map(|(_, t)| t.as_str()).collect();
        assert!(texts.contains(&"sum by (launch) (darklaunch_compared)"));
        assert!(texts.contains(&"sum by (launch, reason) (darklaunch_skipped)"));
        assert!(texts.contains(&"sum by (launch, path) (darklaunch_field_mismatch)"));
        assert!(texts.contains(&"sum by (launch) (darklaunch_sample_captured)"));
        assert!(texts.contains(&"sum by (launch, reason) (darklaunch_sample_dropped)"));
        assert!(texts.contains(
            &"histogram_quantile(0.95, sum by (launch, le) (darklaunch_dark_ms_bucket))"
        ));
        let w = queries(&Options {
            selector: Some("namespace=\"shop\"".into()),
            window: Some("5m".into()),
        });
        let texts: Vec<&str> = w.iter().map(|(_, t)| t.as_str()).collect();
        assert!(texts
            .contains(&"sum by (launch) (increase(darklaunch_compared{namespace=\"shop\"}[5m]))"));
        assert!(texts.contains(&"sum by (launch) (darklaunch_in_flight{namespace=\"shop\"})"));
        assert!(texts.contains(
            &"histogram_quantile(0.95, sum by (launch, le) (rate(darklaunch_dark_ms_bucket{namespace=\"shop\"}[5m])))"
        ));
    }

    #[test]
    fn vectors_and_errors() {
        let ok = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"launch":"a","class":"5xx"},"value":[1700000000.123,"2"]},
            {"metric":{"launch":"b"},"value":[1700000000.123,"NaN"]},
            {"metric":{},"value":[1700000000.123,"+Inf"]}]}}"#;
        let v = parse_vector(ok).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].1, 2.0);
        assert!(v[1].1.is_nan());
        assert!(v[2].1.is_infinite());
        let err = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert!(parse_vector(err).unwrap_err().contains("parse error"));
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse_vector(matrix).is_err());
        assert!(parse_vector("<html>").is_err());
    }

    /// Canned answers captured from Prometheus 2 scraping Envoy 1.40 with
    /// the filter (see tests/fixtures/README.md), keyed by PromQL.
    struct Fixture(Value);
    impl Fetch for Fixture {
        fn get(&self, url: &str) -> Result<String, String> {
            let q = url.split("query=").nth(1).ok_or("no query")?;
            self.0
                .get("answers")
                .and_then(Value::as_object)
                .and_then(|m| m.iter().find(|(k, _)| encode_component(k) == q))
                .map(|(_, v)| v.to_string())
                .ok_or_else(|| format!("no fixture for {url}"))
        }
    }

    #[test]
    fn snapshot_from_captured_prometheus_answers() {
        let fixture: Value =
            serde_json::from_str(include_str!("../tests/fixtures/prometheus_answers.json"))
                .unwrap();
        let base = "http://127.0.0.1:9090";
        let snap = snapshot(&Fixture(fixture), base, &Options::default()).unwrap();
        // The same traffic as envoy_stats.json, scraped from two Envoys that
        // each received it once: every counter doubled.
        let l = &snap.launches["orders-v2"];
        assert_eq!(
            (l.matched, l.shadowed, l.compared, l.mismatch),
            (58, 58, 56, 16)
        );
        assert_eq!(l.mismatch_kind["status"], 4);
        assert_eq!(l.mismatch_kind["body"], 12);
        assert_eq!(l.dark_response["2xx"], 52);
        assert_eq!(l.dark_response["5xx"], 4);
        assert_eq!(l.dark_response["reset"], 2);
        assert_eq!(l.primary_response["2xx"], 58);
        assert_eq!(l.compare_skipped["dark_failed"], 2);
        assert_eq!(l.field_mismatch["/price"], 12);
        assert_eq!(l.field_mismatch["/items/*/sku"], 4);
        // histogram_quantile over Envoy's buckets (0.5, 1, 5, 10, … ms), interpolated.
        assert_eq!(l.dark_ms.p95, Some(4.85));
        assert!(l.dark_ms.p50.is_some() && l.dark_ms.p99.is_some());
        assert!(l.primary_ms.p95.is_some());
        let s = &snap.launches["search_v3"];
        assert_eq!((s.matched, s.shadowed), (6, 0));
        assert_eq!(s.skipped["sampled_out"], 6);
        assert_eq!(s.dark_ms.p95, None); // histogram_quantile over no samples: NaN
        assert_eq!(
            query_url(base, "sum by (launch) (darklaunch_compared)"),
            "http://127.0.0.1:9090/api/v1/query?query=sum%20by%20%28launch%29%20%28darklaunch_compared%29"
        );
    }
}
