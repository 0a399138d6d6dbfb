//! A sample of a mismatching pair, as one JSON object: what the Envoy log
//! line `darklaunch sample {json}` and the OTLP log record carry.
//!
//! Everything in it has already been filtered by the capture rules (the
//! allowlisted request headers, redacted query values and JSON locations);
//! this module only assembles it and keeps it within `capture.max_bytes`:
//! the longest value is cut first, with a `…[truncated N bytes]` marker,
//! until the whole fits; then differences are dropped from the end
//! (`differences_omitted`); a sample that still does not fit is not written
//! (`sample.dropped.size`).

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::compare::{DiffKind, Example};
use crate::murmur3;

/// A value of a query parameter that `capture.query` does not let out.
pub const QUERY_REDACTED: &str = "REDACTED";
/// What a never-captured header's value reads.
pub const HEADER_REDACTED: &str = "[redacted]";
/// A string is not cut below this many bytes.
const MIN_KEPT: usize = 32;
/// At least the length of a marker, `…[truncated 65536 bytes]`.
const MARKER_ROOM: usize = 32;

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub v: u32,
    pub launch: String,
    pub time: String,
    pub request_id: String,
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(serialize_with = "as_map", skip_serializing_if = "Vec::is_empty")]
    pub request_headers: Vec<(String, String)>,
    pub shape: String,
    pub kinds: Vec<&'static str>,
    pub fields: Vec<String>,
    pub headers: Vec<String>,
    pub primary: SampleSide,
    pub dark: SampleSide,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    pub differences: Vec<SampleDiff>,
    #[serde(skip_serializing_if = "is_zero")]
    pub differences_omitted: usize,
    #[serde(skip_serializing_if = "is_false")]
    pub truncated: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SampleSide {
    pub status: u16,
    #[serde(serialize_with = "as_map")]
    pub headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SampleDiff {
    pub pointer: String,
    pub field: String,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dark: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub redacted: bool,
}

impl From<Example> for SampleDiff {
    fn from(e: Example) -> Self {
        SampleDiff {
            pointer: e.pointer,
            field: e.field,
            kind: kind_name(e.kind),
            primary: e.primary,
            dark: e.dark,
            redacted: e.redacted,
        }
    }
}

pub fn kind_name(k: DiffKind) -> &'static str {
    match k {
        DiffKind::Value => "value",
        DiffKind::Type => "type",
        DiffKind::Missing => "missing",
        DiffKind::Extra => "extra",
        DiffKind::ArrayLength => "array_length",
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Name/value pairs as a JSON object (names are unique by construction).
fn as_map<S: Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// The sample would exceed `max_bytes` even with every value cut and every
/// difference dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

/// A difference's *shape*: the kinds, fields and header names, as 8 hex
/// digits. Samples of one shape show the same kind of difference.
pub fn shape(kinds: &[&str], fields: &[String], headers: &[String]) -> u32 {
    let mut fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    fields.sort_unstable();
    let mut headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    headers.sort_unstable();
    let key = format!(
        "{}\u{0}{}\u{0}{}",
        kinds.join(","),
        fields.join("\u{1}"),
        headers.join(",")
    );
    murmur3::murmur3_stream(key.bytes(), 0x5eed)
}

/// The query string with every parameter's value replaced by
/// [`QUERY_REDACTED`] (names kept, so the request's shape shows).
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, _)) => format!("{name}={QUERY_REDACTED}"),
            None => param.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl Sample {
    /// The JSON text, at most `max_bytes` long (see the module doc).
    pub fn render(mut self, max_bytes: usize) -> Result<String, TooLarge> {
        let mut text = self.json();
        if text.len() <= max_bytes {
            return Ok(text);
        }
        self.truncated = true;
        let originals: Vec<usize> = self.strings().iter().map(|s| s.len()).collect();
        // Each turn cuts the longest string that can still be cut by the
        // excess (and the marker's length): a few turns at most.
        while text.len() > max_bytes {
            let excess = text.len() - max_bytes;
            let mut strings = self.strings();
            let Some((i, longest)) = strings
                .iter_mut()
                .enumerate()
                .filter(|(_, s)| kept_part(s).len() > MIN_KEPT)
                .max_by_key(|(_, s)| kept_part(s).len())
            else {
                break;
            };
            let before = kept_part(longest).len();
            let original = originals.get(i).copied().unwrap_or(before);
            let kept = before.saturating_sub(excess + MARKER_ROOM).max(MIN_KEPT);
            cut(longest, kept, original);
            text = self.json();
        }
        while text.len() > max_bytes && self.differences.pop().is_some() {
            self.differences_omitted += 1;
            text = self.json();
        }
        if text.len() > max_bytes {
            return Err(TooLarge);
        }
        Ok(text)
    }

    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Every string that may be cut, in a fixed order.
    fn strings(&mut self) -> Vec<&mut String> {
        let mut out: Vec<&mut String> = Vec::new();
        for d in &mut self.differences {
            out.extend(d.primary.as_mut());
            out.extend(d.dark.as_mut());
        }
        for side in [&mut self.primary, &mut self.dark] {
            out.extend(side.body.as_mut());
            out.extend(side.headers.iter_mut().map(|(_, v)| v));
        }
        out.extend(self.request_body.as_mut());
        out.extend(self.request_headers.iter_mut().map(|(_, v)| v));
        out.extend(self.query.as_mut());
        out
    }
}

/// The part of `s` before a truncation marker.
fn kept_part(s: &str) -> &str {
    match s.rfind("…[truncated ") {
        Some(at) => s.get(..at).unwrap_or(s),
        None => s,
    }
}

/// Keep at most `kept` bytes of `s` (on a character boundary) and say how
/// many of the `original` bytes were cut.
fn cut(s: &mut String, kept: usize, original: usize) {
    let mut at = kept.min(kept_part(s).len());
    while at > 0 && !s.is_char_boundary(at) {
        at -= 1;
    }
    s.truncate(at);
    s.push_str(&format!(
        "…[truncated {} bytes]",
        original.saturating_sub(at)
    ));
}

/// The OTLP/HTTP JSON body (an ExportLogsServiceRequest) carrying one
/// sample as a log record: the sample's JSON is the record's string body;
/// launch, request id and shape are attributes too, for the log stores'
/// indexes.
pub fn otlp_logs(
    sample_json: &str,
    launch: &str,
    request_id: &str,
    shape: &str,
    time_ms: u64,
) -> String {
    let nanos = u128::from(time_ms) * 1_000_000;
    let attr = |k: &str, v: &str| serde_json::json!({"key": k, "value": {"stringValue": v}});
    serde_json::json!({
        "resourceLogs": [{
            "resource": {"attributes": [attr("service.name", "darklaunch")]},
            "scopeLogs": [{
                "scope": {"name": "darklaunch", "version": env!("CARGO_PKG_VERSION")},
                "logRecords": [{
                    "timeUnixNano": nanos.to_string(),
                    "observedTimeUnixNano": nanos.to_string(),
                    "severityNumber": 9,
                    "severityText": "INFO",
                    "eventName": "darklaunch.sample",
                    "body": {"stringValue": sample_json},
                    "attributes": [
                        attr("darklaunch.launch", launch),
                        attr("darklaunch.request_id", request_id),
                        attr("darklaunch.shape", shape),
                    ],
                }],
            }],
        }],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sample {
        Sample {
            v: 1,
            launch: "l".into(),
            time: "2026-12-01T00:00:00.000Z".into(),
            request_id: "r1".into(),
            method: "GET".into(),
            path: "/p".into(),
            query: Some(redact_query("a=1&b&c=x=y")),
            request_headers: vec![("x-tenant".into(), "acme".into())],
            shape: format!("{:08x}", shape(&["body"], &["/price".into()], &[])),
            kinds: vec!["body"],
            fields: vec!["/price".into()],
            headers: vec![],
            primary: SampleSide {
                status: 200,
                headers: vec![("x-version".into(), "v1".into())],
                body: None,
            },
            dark: SampleSide {
                status: 200,
                headers: vec![],
                body: None,
            },
            request_body: None,
            differences: vec![SampleDiff {
                pointer: "/price".into(),
                field: "/price".into(),
                kind: "value",
                primary: Some("10.0".into()),
                dark: Some("10.5".into()),
                redacted: false,
            }],
            differences_omitted: 0,
            truncated: false,
        }
    }

    #[test]
    fn renders_the_documented_object() {
        let text = sample().render(8192).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["query"], "a=REDACTED&b&c=REDACTED");
        assert_eq!(v["request_headers"]["x-tenant"], "acme");
        assert_eq!(v["primary"]["headers"]["x-version"], "v1");
        assert_eq!(v["dark"]["headers"], serde_json::json!({}));
        assert_eq!(v["differences"][0]["primary"], "10.0");
        assert_eq!(v["differences"][0]["dark"], "10.5");
        assert!(v.get("truncated").is_none() && v.get("differences_omitted").is_none());
        assert!(v["differences"][0].get("redacted").is_none());
        assert_eq!(v["shape"].as_str().unwrap().len(), 8);
    }

    #[test]
    fn long_values_are_cut_with_a_marker() {
        let mut s = sample();
        let long = format!("\"{}\"", "é".repeat(5000));
        s.differences[0].primary = Some(long.clone());
        s.primary.body = Some("x".repeat(20_000));
        let text = s.render(2048).unwrap();
        assert!(text.len() <= 2048, "{}", text.len());
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["truncated"], true);
        let body = v["primary"]["body"].as_str().unwrap();
        assert!(
            body.starts_with("xxx") && body.contains("…[truncated "),
            "{body}"
        );
        let cut_bytes: usize = body
            .rsplit("…[truncated ")
            .next()
            .unwrap()
            .trim_end_matches(" bytes]")
            .parse()
            .unwrap();
        assert_eq!(cut_bytes + body.find('…').unwrap(), 20_000);
        let p = v["differences"][0]["primary"].as_str().unwrap();
        assert!(p.starts_with("\"éé") && p.contains("…[truncated "));
        // The short values are untouched.
        assert_eq!(v["differences"][0]["dark"], "10.5");
    }

    #[test]
    fn differences_are_dropped_last_and_too_large_is_said() {
        let mut s = sample();
        s.differences = (0..200)
            .map(|i| SampleDiff {
                pointer: format!("/items/{i}/a-rather-long-field-name-to-fill"),
                field: "/items/*/a-rather-long-field-name-to-fill".into(),
                kind: "value",
                primary: Some("1".into()),
                dark: Some("2".into()),
                redacted: false,
            })
            .collect();
        let text = s.clone().render(1024).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let kept = v["differences"].as_array().unwrap().len();
        assert!(kept > 0 && kept < 200);
        assert_eq!(v["differences_omitted"], 200 - kept);
        // A path longer than the bound cannot be cut.
        let mut s = sample();
        s.path = "/".repeat(2000);
        assert_eq!(s.render(1024), Err(TooLarge));
    }

    #[test]
    fn shapes() {
        let a = shape(&["body"], &["/a".into(), "/b".into()], &[]);
        assert_eq!(a, shape(&["body"], &["/b".into(), "/a".into()], &[]));
        assert_ne!(a, shape(&["body"], &["/a".into()], &[]));
        assert_ne!(
            a,
            shape(
                &["body", "headers"],
                &["/a".into(), "/b".into()],
                &["x".into()]
            )
        );
    }

    #[test]
    fn otlp_record() {
        let body = otlp_logs("{\"v\":1}", "l", "r", "0000abcd", 1_764_547_923_123);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let rec = &v["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
        assert_eq!(rec["timeUnixNano"], "1764547923123000000");
        assert_eq!(rec["body"]["stringValue"], "{\"v\":1}");
        assert_eq!(rec["attributes"][0]["value"]["stringValue"], "l");
    }
}
