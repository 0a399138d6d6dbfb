//! Reading the darklaunch stats from Envoy admin endpoints
//! (`/stats?format=json`).
//!
//! Counters and gauges come as `{"name": "wasmcustom.darklaunch.L.stat",
//! "value": N}`. Histograms come in one entry
//! `{"histograms": {"supported_quantiles": [0, 25, 50, …, 95, 99, …],
//! "computed_quantiles": [{"name": …, "values": [{"cumulative": x,
//! "interval": y}, …]}]}}`, one value per supported quantile: `cumulative`
//! covers every sample since Envoy started (like the counters), `interval`
//! only the last stats flush interval. The report uses `cumulative`, so
//! latency and counts describe the same traffic. Both are `null` without
//! samples; Envoy computes them at each stats flush (`stats_flush_interval`,
//! 5 s by default), so fresh samples show up after the next flush.

use crate::http::{encode_component, Fetch};
use crate::model::Snapshot;
use darklaunch::vocab::Histogram;
use serde_json::Value;

/// Prefix of every darklaunch stat in `/stats`.
pub const PREFIX: &str = "wasmcustom.darklaunch.";

/// The admin URL that returns the darklaunch stats of an Envoy whose admin
/// base URL is `base` (`http://127.0.0.1:9901`).
pub fn stats_url(base: &str) -> String {
    let filter = encode_component(r"^wasmcustom\.darklaunch\.");
    format!(
        "{}/stats?format=json&filter={filter}",
        base.trim_end_matches('/')
    )
}

/// Splits `wasmcustom.darklaunch.L.rest` into (L, rest). Launch names
/// cannot contain dots (`^[a-z0-9][a-z0-9_-]{0,63}$`), so the first dot
/// after the prefix ends the launch.
fn split_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(PREFIX)?;
    let (launch, stat) = rest.split_once('.')?;
    if launch.is_empty() || stat.is_empty() {
        return None;
    }
    Some((launch, stat))
}

/// Parses one `/stats?format=json` document. Stats that are not darklaunch's
/// (an unfiltered dump) and stats this tool does not know are ignored.
pub fn parse(body: &str) -> Result<Snapshot, String> {
    let doc: Value =
        serde_json::from_str(body).map_err(|e| format!("Envoy stats are not JSON: {e}"))?;
    let stats = doc
        .get("stats")
        .and_then(Value::as_array)
        .ok_or("Envoy stats JSON has no \"stats\" array")?;
    let mut snap = Snapshot::default();
    for entry in stats {
        if let (Some(name), Some(value)) = (
            entry.get("name").and_then(Value::as_str),
            entry.get("value"),
        ) {
            let Some((launch, stat)) = split_name(name) else {
                continue;
            };
            let value = value
                .as_u64()
                .or_else(|| {
                    value
                        .as_f64()
                        .filter(|v| *v >= 0.0)
                        .map(|v| v.round() as u64)
                })
                .unwrap_or(0);
            // Create the launch even for a stat we skip, so it is listed.
            snap.launch_mut(launch).add_stat(stat, value);
        } else if let Some(hist) = entry.get("histograms") {
            parse_histograms(hist, &mut snap)?;
        }
    }
    Ok(snap)
}

fn parse_histograms(hist: &Value, snap: &mut Snapshot) -> Result<(), String> {
    let quantiles: Vec<f64> = hist
        .get("supported_quantiles")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let Some(computed) = hist.get("computed_quantiles").and_then(Value::as_array) else {
        return Ok(());
    };
    for h in computed {
        let Some((launch, stat)) = h.get("name").and_then(Value::as_str).and_then(split_name)
        else {
            continue;
        };
        let values = h.get("values").and_then(Value::as_array);
        let counters = snap.launch_mut(launch);
        let Some(&hist) = Histogram::ALL.iter().find(|h| h.as_str() == stat) else {
            continue;
        };
        let target = counters.quantiles_mut(hist);
        for (q, v) in quantiles.iter().zip(values.into_iter().flatten()) {
            target.set(*q, v.get("cumulative").and_then(Value::as_f64));
        }
    }
    Ok(())
}

/// Reads and sums the stats of several Envoys (counters and gauges summed,
/// quantiles combined by maximum, see `Quantiles::merge_max`).
pub fn snapshot(fetch: &dyn Fetch, bases: &[String]) -> Result<Snapshot, String> {
    let mut total = Snapshot::default();
    for base in bases {
        let url = stats_url(base);
        let body = fetch.get(&url)?;
        let one = parse(&body).map_err(|e| format!("{url}: {e}"))?;
        total.merge(&one);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Captured from Envoy 1.40 running the filter (tests/e2e harness):
    /// launch `orders-v2` at 100% with 20 identical answers, 4 with another
    /// /price, 2 with another /items/*/sku and /price, 2 dark 503s and 1 dark
    /// reset; launch `search_v3` at 0% with 3 requests.
    const FIXTURE: &str = include_str!("../tests/fixtures/envoy_stats.json");

    #[test]
    fn parses_captured_envoy_stats() {
        let snap = parse(FIXTURE).unwrap();
        assert_eq!(
            snap.launches.keys().collect::<Vec<_>>(),
            ["orders-v2", "search_v3"]
        );
        let l = &snap.launches["orders-v2"];
        assert_eq!((l.matched, l.shadowed, l.forced), (29, 29, 0));
        assert_eq!((l.compared, l.mismatch, l.noise), (28, 8, 0));
        assert_eq!((l.in_flight, l.breaker_open), (0, 0));
        assert_eq!(l.mismatch_kind["status"], 2);
        assert_eq!(l.mismatch_kind["body"], 6);
        assert_eq!(l.mismatch_kind["headers"], 0);
        assert_eq!(l.dark_response["2xx"], 26);
        assert_eq!(l.dark_response["5xx"], 2);
        assert_eq!(l.dark_response["reset"], 1);
        assert_eq!(l.primary_response["2xx"], 29);
        assert_eq!(l.compare_skipped["dark_failed"], 1);
        let fields: BTreeMap<_, _> = l.field_mismatch.iter().filter(|(_, v)| **v > 0).collect();
        assert_eq!(fields.len(), 2);
        assert_eq!(l.field_mismatch["/price"], 6);
        assert_eq!(l.field_mismatch["/items/*/sku"], 2);
        assert_eq!(l.field_mismatch["other"], 0);
        assert_eq!(l.skipped.len(), 10);
        // Quantiles: the `cumulative` value at 50, 95 and 99.
        assert_eq!(l.dark_ms.p50, Some(1.0333333333333334));
        assert_eq!(l.dark_ms.p95, Some(3.05));
        assert_eq!(l.dark_ms.p99, Some(7.05));
        assert_eq!(l.primary_ms.p50, Some(0.0));
        assert_eq!(l.primary_ms.p95, Some(2.05));
        assert_eq!(l.primary_ms.p99, Some(3.05));
        let s = &snap.launches["search_v3"];
        assert_eq!((s.matched, s.shadowed), (3, 0));
        assert_eq!(s.skipped["sampled_out"], 3);
        // No samples: null quantiles.
        assert_eq!(s.dark_ms.p95, None);
        assert_eq!(s.primary_ms.p50, None);
    }

    #[test]
    fn ignores_foreign_stats_and_rejects_garbage() {
        let doc = r#"{"stats":[{"name":"cluster.x.upstream_rq","value":3},
            {"name":"wasmcustom.darklaunch.a.compared","value":4},
            {"name":"wasmcustom.darklaunch.a.future_stat","value":4},
            {"name":"wasmcustom.darklaunch.nodot","value":1},
            {"histograms":{"supported_quantiles":[50],"computed_quantiles":[
              {"name":"cluster.x.upstream_rq_time","values":[{"cumulative":3,"interval":null}]},
              {"name":"wasmcustom.darklaunch.a.dark_ms","values":[{"cumulative":7.5,"interval":1}]}]}}]}"#;
        let snap = parse(doc).unwrap();
        assert_eq!(snap.launches.len(), 1);
        assert_eq!(snap.launches["a"].compared, 4);
        assert_eq!(snap.launches["a"].dark_ms.p50, Some(7.5));
        assert!(parse("not json").is_err());
        assert!(parse("{}").is_err());
    }

    struct Canned(Vec<(String, String)>);
    impl Fetch for Canned {
        fn get(&self, url: &str) -> Result<String, String> {
            self.0
                .iter()
                .find(|(u, _)| u == url)
                .map(|(_, b)| b.clone())
                .ok_or_else(|| format!("unexpected {url}"))
        }
    }

    #[test]
    fn several_envoys_sum() {
        let a = "http://127.0.0.1:1";
        let b = "http://127.0.0.1:2/";
        let second = FIXTURE.replace("\"cumulative\": 7.05", "\"cumulative\": 9.5");
        let fetch = Canned(vec![
            (stats_url(a), FIXTURE.to_string()),
            (stats_url(b), second),
        ]);
        assert_eq!(
            stats_url(b),
            "http://127.0.0.1:2/stats?format=json&filter=%5Ewasmcustom%5C.darklaunch%5C."
        );
        let snap = snapshot(&fetch, &[a.to_string(), b.to_string()]).unwrap();
        let l = &snap.launches["orders-v2"];
        assert_eq!((l.shadowed, l.compared, l.mismatch), (58, 56, 16));
        assert_eq!(l.field_mismatch["/price"], 12);
        assert_eq!(l.dark_response["5xx"], 4);
        assert_eq!(l.dark_ms.p99, Some(9.5)); // max of 7.05 and 9.5
        assert_eq!(l.dark_ms.p50, Some(1.0333333333333334));
        assert_eq!(l.primary_ms.p99, Some(3.05));
        assert!(snapshot(&fetch, &["http://127.0.0.1:3".to_string()]).is_err());
    }
}
