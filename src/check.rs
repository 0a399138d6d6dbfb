//! Checking a plugin configuration outside Envoy, with the filter's own
//! parser and rules: [`configuration`] runs exactly what `on_configure` runs
//! (`config::parse`), so a configuration it accepts is one the module
//! accepts, and its error names the same JSON path with the same words.
//!
//! [`Rules`] compares two answers with the filter's own comparator under a
//! launch's `compare` rules (`darklaunch-report replay`).
//!
//! This is the library's public face for tools (`darklaunch-report
//! validate`, `replay`); the filter does not call it, and nothing here is
//! exported from the Wasm module. With the `schema` feature (never enabled by the
//! module build), [`json_schema`] gives the JSON Schema of the
//! configuration, derived from the same types.

/// Why a configuration is refused: `path` is the JSON path of the field
/// (`launches[1].sample.percent`; empty for the document as a whole) and
/// `message` the reason. `Display` writes `path: message`.
pub use crate::config::ConfigError as Error;

use crate::config::{self, PathMatch};

/// What an accepted configuration holds, for the checks a validator adds on
/// top (settings that are valid but probably wrong). Defaults are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Lower-case.
    pub flag_header: String,
    /// Lower-case; set on every shadow request.
    pub shadow_header: String,
    /// In the order of `launches`.
    pub launches: Vec<LaunchSummary>,
}

/// One launch of an accepted configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchSummary {
    pub name: String,
    pub dark_cluster: String,
    pub path: Path,
    /// Upper-case; empty = any method.
    pub methods: Vec<String>,
    pub sample_percent: f64,
    /// Shadow calls per second across the process; 0 = no limit.
    pub max_rps: f64,
    pub unsafe_methods: bool,
    /// Lower-case names of the headers `request_headers.set` puts on the
    /// shadow request.
    pub set_headers: Vec<String>,
}

/// The launch's path matcher.
#[derive(Debug, Clone, PartialEq)]
pub enum Path {
    Any,
    Prefix(String),
    Exact(String),
    /// The segments after the leading `/`; `None` is a `{name}` placeholder.
    Template(Vec<Option<String>>),
}

/// Parses, validates and compiles `bytes` as the filter does, then
/// summarizes the result.
pub fn configuration(bytes: &[u8]) -> Result<Summary, Error> {
    let c = config::parse(bytes)?;
    Ok(Summary {
        flag_header: c.flag_header,
        shadow_header: c.shadow_header,
        launches: c
            .launches
            .into_iter()
            .map(|l| LaunchSummary {
                name: l.name,
                dark_cluster: l.dark_cluster,
                path: match l.path {
                    PathMatch::Any => Path::Any,
                    PathMatch::Prefix(p) => Path::Prefix(p),
                    PathMatch::Exact(p) => Path::Exact(p),
                    PathMatch::Template(t) => Path::Template(t),
                },
                methods: l.methods,
                sample_percent: l.sample_percent,
                max_rps: l.limits.max_rps,
                unsafe_methods: l.unsafe_methods,
                set_headers: l.set_headers.into_iter().map(|(n, _)| n).collect(),
            })
            .collect(),
    })
}

/// A launch's comparison rules (its `compare`, `max_body_bytes` and
/// `capture.redact`), to compare two answers as the filter does.
#[derive(Debug, Clone)]
pub struct Rules {
    compare: crate::compare::CompareRules,
    redact: Vec<crate::pointer::PointerPattern>,
}

/// One answer: status, response headers (any case, every one; the rules
/// pick the compared ones, `content-type` and `content-encoding`) and body.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// What the comparator found.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub status: bool,
    /// Compared headers that differ.
    pub headers: Vec<String>,
    pub body: bool,
    /// Each body difference with its real pointer and both values
    /// (redacted at `capture.redact`); empty when the bodies differ only
    /// as bytes.
    pub differences: Vec<Difference>,
    /// A body decodes to more than `max_body_bytes`: the filter would not
    /// have compared the pair.
    pub too_large: bool,
}

/// One body difference.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// With real indices (`/items/3/price`).
    pub pointer: String,
    /// Folded (`/items/*/price`), as `field_mismatch` names it.
    pub field: String,
    /// `value`, `type`, `missing`, `extra`, `array_length`.
    pub kind: &'static str,
    /// JSON text of each side's value; `None` where absent or redacted.
    pub primary: Option<String>,
    pub dark: Option<String>,
    pub redacted: bool,
}

impl Comparison {
    pub fn is_match(&self) -> bool {
        !self.too_large && !self.status && self.headers.is_empty() && !self.body
    }
}

impl Rules {
    /// The rules of launch `name` in a configuration (checked as
    /// [`configuration`] checks it).
    pub fn of_launch(config: &[u8], name: &str) -> Result<Rules, String> {
        let c = config::parse(config).map_err(|e| e.to_string())?;
        let names: Vec<String> = c.launches.iter().map(|l| l.name.clone()).collect();
        let l = c
            .launches
            .into_iter()
            .find(|l| l.name == name)
            .ok_or_else(|| format!("no launch '{name}' (it has {})", names.join(", ")))?;
        Ok(Rules {
            compare: l.compare,
            redact: l.capture.map(|c| c.redact).unwrap_or_default(),
        })
    }

    /// The default rules (status, `auto` body, 64 KiB) comparing `headers`
    /// too.
    pub fn default_with_headers(headers: &[String]) -> Rules {
        Rules {
            compare: crate::compare::CompareRules {
                headers: headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
                ..Default::default()
            },
            redact: Vec::new(),
        }
    }

    /// The launch's compared headers.
    pub fn headers(&self) -> &[String] {
        &self.compare.headers
    }

    pub fn compare(&self, primary: &Answer, dark: &Answer) -> Comparison {
        let lower = |a: &Answer| -> Vec<(String, Vec<u8>)> {
            a.headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                .collect()
        };
        let (ph, dh) = (lower(primary), lower(dark));
        let p = crate::compare::Side {
            status: primary.status,
            headers: &ph,
            body: &primary.body,
        };
        let d = crate::compare::Side {
            status: dark.status,
            headers: &dh,
            body: &dark.body,
        };
        match crate::compare::compare_examples(&self.compare, &p, &d, &self.redact, "") {
            Ok((v, examples)) => Comparison {
                status: v.status,
                headers: v.headers,
                body: v.body,
                differences: examples
                    .into_iter()
                    .map(|e| Difference {
                        pointer: e.pointer,
                        field: e.field,
                        kind: crate::sample::kind_name(e.kind),
                        primary: e.primary,
                        dark: e.dark,
                        redacted: e.redacted,
                    })
                    .collect(),
                too_large: false,
            },
            Err(_) => Comparison {
                status: primary.status != dark.status,
                headers: Vec::new(),
                body: false,
                differences: Vec::new(),
                too_large: true,
            },
        }
    }
}

/// The JSON Schema (draft 2020-12) of the plugin configuration, generated
/// from the types the filter deserializes: the text of
/// schema/darklaunch.schema.json. It states the rules JSON Schema can
/// express; [`configuration`] remains the authority.
#[cfg(feature = "schema")]
pub fn json_schema() -> serde_json::Value {
    config::json_schema()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_applies_defaults_and_keeps_order() {
        let s = configuration(
            br#"{"shadow_header":"X-Shadow","launches":[
                {"name":"a","dark_cluster":"c","sample":{"percent":100},
                 "match":{"path_template":"/u/{id}","methods":["POST"]},
                 "unsafe_methods":true,"request_headers":{"set":{"X-Env":"dark"}}},
                {"name":"b","dark_cluster":"d","sample":{"percent":5},"limits":{"max_rps":10}}]}"#,
        )
        .unwrap();
        assert_eq!(s.flag_header, "x-dark-launch");
        assert_eq!(s.shadow_header, "x-shadow");
        let (a, b) = (&s.launches[0], &s.launches[1]);
        assert_eq!(a.name, "a");
        assert_eq!(a.path, Path::Template(vec![Some("u".into()), None]));
        assert_eq!(a.methods, vec!["POST"]);
        assert_eq!(a.sample_percent, 100.0);
        assert_eq!(a.max_rps, 0.0);
        assert!(a.unsafe_methods);
        assert_eq!(a.set_headers, vec!["x-env"]);
        assert_eq!((b.name.as_str(), b.dark_cluster.as_str()), ("b", "d"));
        assert_eq!((b.path.clone(), b.max_rps), (Path::Any, 10.0));
        assert!(!b.unsafe_methods && b.set_headers.is_empty());
    }

    #[test]
    fn rules_compare_as_the_filter() {
        let cfg = br#"{"launches":[{"name":"a","dark_cluster":"c","sample":{"percent":1},
            "compare":{"headers":["X-V"],"ignore":["/t"]},"capture":{"per_minute":1,"redact":["/s"]}}]}"#;
        let rules = Rules::of_launch(cfg, "a").unwrap();
        assert_eq!(rules.headers(), ["x-v"]);
        let answer = |v: &str, body: &str| Answer {
            status: 200,
            headers: vec![
                ("Content-Type".into(), b"application/json".to_vec()),
                ("X-V".into(), v.as_bytes().to_vec()),
            ],
            body: body.as_bytes().to_vec(),
        };
        let c = rules.compare(
            &answer("1", r#"{"p":[1,2],"t":1,"s":"x"}"#),
            &answer("2", r#"{"p":[1,3],"t":2,"s":"y"}"#),
        );
        assert_eq!(c.headers, ["x-v"]);
        assert!(c.body && !c.status && !c.is_match());
        assert_eq!(c.differences.len(), 2, "{c:?}");
        assert_eq!(c.differences[0].pointer, "/p/1");
        assert_eq!(c.differences[0].field, "/p/*");
        assert_eq!(c.differences[0].primary.as_deref(), Some("2"));
        assert!(c.differences[1].redacted && c.differences[1].dark.is_none());
        assert!(rules
            .compare(&answer("1", "{}"), &answer("1", "{ }"))
            .is_match());
        assert!(Rules::of_launch(cfg, "b")
            .unwrap_err()
            .contains("no launch 'b' (it has a)"));
    }

    #[test]
    fn errors_are_the_filters() {
        let e = configuration(
            br#"{"launches":[{"name":"a","dark_cluster":"c","sample":{"percent":150}}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.path, "launches[0].sample.percent");
        assert_eq!(
            e.to_string(),
            "launches[0].sample.percent: must be between 0 and 100"
        );
        assert!(configuration(b"")
            .unwrap_err()
            .message
            .contains("must be a google.protobuf.StringValue"));
    }
}
