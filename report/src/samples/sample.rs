//! One sample (format v1), as the filter writes it after `darklaunch
//! sample ` in its log line and in the OTLP log record's body.
//!
//! Required: `v` (1), `launch`, `kinds`, `primary.status`, `dark.status`
//! and `differences` (each with `pointer` and `kind`): without them a
//! sample cannot be grouped. Everything else defaults when absent or
//! null, and unknown fields are ignored (newer filters may add some).

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// The format version this reader understands.
pub const VERSION: u64 = 1;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Sample {
    pub v: u64,
    pub launch: String,
    #[serde(default, deserialize_with = "or_null")]
    pub time: String,
    /// `x-request-id`; empty when the request had none.
    #[serde(default, deserialize_with = "or_null")]
    pub request_id: String,
    #[serde(default, deserialize_with = "or_null")]
    pub method: String,
    #[serde(default, deserialize_with = "or_null")]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, deserialize_with = "or_null")]
    pub request_headers: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "or_null")]
    pub shape: String,
    /// `status`, `headers`, `body` (and whatever a newer filter adds).
    pub kinds: Vec<String>,
    #[serde(default, deserialize_with = "or_null")]
    pub fields: Vec<String>,
    #[serde(default, deserialize_with = "or_null")]
    pub headers: Vec<String>,
    pub primary: Side,
    pub dark: Side,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    pub differences: Vec<Difference>,
    #[serde(default, deserialize_with = "or_null")]
    pub differences_omitted: u64,
    #[serde(default, deserialize_with = "or_null")]
    pub truncated: bool,
}

/// One side's answer.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Side {
    pub status: u16,
    /// The compared response headers present on this side.
    #[serde(default, deserialize_with = "or_null")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// One difference: `primary` / `dark` are the JSON text of the value on
/// that side, `None` where it is absent (or redacted); written as `null`
/// in the `--json` output, so every example has the same keys.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Difference {
    pub pointer: String,
    /// The folded pointer (`/items/*/price`); the pointer when empty.
    #[serde(default, deserialize_with = "or_null")]
    pub field: String,
    /// `value`, `type`, `missing`, `extra`, `array_length`.
    pub kind: String,
    #[serde(default)]
    pub primary: Option<String>,
    #[serde(default)]
    pub dark: Option<String>,
    #[serde(default, deserialize_with = "or_null")]
    pub redacted: bool,
}

impl Sample {
    /// Statuses differ: grouped by status, not by field or header.
    pub fn is_status(&self) -> bool {
        self.kinds.iter().any(|k| k == "status")
    }
}

impl Difference {
    /// The group this difference belongs to.
    pub fn group(&self) -> &str {
        if self.field.is_empty() {
            &self.pointer
        } else {
            &self.field
        }
    }
}

/// An optional field that may also be `null`.
fn or_null<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// serde_json's message without its ` at line L column C`; the column.
fn split_position(e: &serde_json::Error) -> (String, usize) {
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(i) => text.get(..i).unwrap_or(&text).to_string(),
        None => text,
    };
    (message, e.column())
}

/// Parses the JSON text of one sample. `offset`: where `json` starts in
/// its line, so that columns in messages are those of the line (1-based).
pub fn parse(json: &str, offset: usize) -> Result<Sample, String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| {
        let (message, column) = split_position(&e);
        let at = offset + column;
        if e.is_eof() {
            format!("truncated sample JSON ({message} at column {at})")
        } else {
            format!("invalid sample JSON: {message} at column {at}")
        }
    })?;
    let Some(object) = value.as_object() else {
        return Err(format!(
            "not a sample: the JSON is {}, not an object",
            kind_of(&value)
        ));
    };
    match object.get("v") {
        None => return Err("not a sample: missing field `v`".into()),
        Some(v) if v.as_u64() == Some(VERSION) => {}
        Some(v) if v.is_u64() => {
            return Err(format!(
                "sample format version {v} is not supported (this darklaunch-report reads version {VERSION})"
            ))
        }
        Some(v) => {
            return Err(format!(
                "not a sample: `v` must be the number {VERSION}, not {}",
                short(&v.to_string())
            ))
        }
    }
    serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." {
            format!("not a sample: {inner}")
        } else {
            format!("not a sample: {path}: {inner}")
        }
    })
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// At most 40 characters of `s`, for messages.
fn short(s: &str) -> String {
    if s.chars().count() <= 40 {
        s.to_string()
    } else {
        s.chars().take(40).chain("…".chars()).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The example of the format's documentation.
    pub const EXAMPLE: &str = r#"{"v":1,"launch":"orders-v2","time":"2026-12-01T00:12:03.123Z","request_id":"5f0c1a2b-77aa-4c1e-9d0e-0123456789ab","method":"GET","path":"/orders/7","query":"user=REDACTED&page=2","request_headers":{"x-tenant":"acme"},"shape":"3fa91c0e","kinds":["headers","body"],"fields":["/items/*/price","/currency"],"headers":["x-version"],"primary":{"status":200,"headers":{"x-version":"v1"},"body":"{\"a\":1}"},"dark":{"status":200,"headers":{"x-version":"v2"}},"differences":[{"pointer":"/items/3/price","field":"/items/*/price","kind":"value","primary":"10.0","dark":"10.5"},{"pointer":"/currency","field":"/currency","kind":"missing","primary":"\"EUR\""},{"pointer":"/extra","field":"/extra","kind":"extra","dark":"true"},{"pointer":"/user/ssn","field":"/user/ssn","kind":"value","redacted":true}],"differences_omitted":3,"truncated":true,"added_later":{"x":1}}"#;

    #[test]
    fn the_documented_example() {
        let s = parse(EXAMPLE, 0).unwrap();
        assert_eq!(s.launch, "orders-v2");
        assert_eq!(s.kinds, ["headers", "body"]);
        assert!(!s.is_status());
        assert_eq!(s.primary.headers["x-version"], "v1");
        assert_eq!(s.dark.body, None);
        assert_eq!(s.differences.len(), 4);
        assert_eq!(s.differences[1].primary.as_deref(), Some("\"EUR\""));
        assert_eq!(s.differences[1].dark, None);
        assert!(s.differences[3].redacted);
        assert_eq!((s.differences_omitted, s.truncated), (3, true));
    }

    #[test]
    fn optional_fields_default() {
        let s = parse(
            r#"{"v":1,"launch":"l","kinds":["status"],"primary":{"status":200},"dark":{"status":500,"headers":null},"differences":[{"pointer":"/a","kind":"value","field":null}],"request_id":null}"#,
            0,
        )
        .unwrap();
        assert!(s.is_status());
        assert_eq!(s.request_id, "");
        assert!(s.fields.is_empty() && s.dark.headers.is_empty());
        assert_eq!(s.differences[0].group(), "/a");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = |json: &str| parse(json, 10).unwrap_err();
        assert_eq!(
            e(r#"{"v":1,"launch":"orders"#),
            "truncated sample JSON (EOF while parsing a string at column 33)"
        );
        assert!(e("{garbage").starts_with("invalid sample JSON: key must be a string at column 12"));
        assert!(e(r#"{"v":1} trailing"#).starts_with("invalid sample JSON: trailing characters"));
        assert_eq!(
            e("[1]"),
            "not a sample: the JSON is an array, not an object"
        );
        assert_eq!(e(r#"{"launch":"l"}"#), "not a sample: missing field `v`");
        assert_eq!(
            e(r#"{"v":2,"launch":"l"}"#),
            "sample format version 2 is not supported (this darklaunch-report reads version 1)"
        );
        assert_eq!(
            e(r#"{"v":"1"}"#),
            "not a sample: `v` must be the number 1, not \"1\""
        );
        assert_eq!(
            e(r#"{"v":1,"launch":"l","kinds":[],"primary":{"status":200},"dark":{"status":200}}"#),
            "not a sample: missing field `differences`"
        );
        assert_eq!(
            e(
                r#"{"v":1,"launch":"l","kinds":"body","primary":{"status":200},"dark":{"status":200},"differences":[]}"#
            ),
            "not a sample: kinds: invalid type: string \"body\", expected a sequence"
        );
        assert_eq!(
            e(
                r#"{"v":1,"launch":"l","kinds":[],"primary":{"status":"200"},"dark":{"status":200},"differences":[]}"#
            ),
            "not a sample: primary.status: invalid type: string \"200\", expected u16"
        );
        assert_eq!(
            e(
                r#"{"v":1,"launch":"l","kinds":[],"primary":{"status":200},"dark":{"status":200},"differences":[{"pointer":"/a","kind":7}]}"#
            ),
            "not a sample: differences[0].kind: invalid type: integer `7`, expected a string"
        );
    }
}
