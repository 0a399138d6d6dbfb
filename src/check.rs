//! Checking a plugin configuration outside Envoy, with the filter's own
//! parser and rules: [`configuration`] runs exactly what `on_configure` runs
//! (`config::parse`), so a configuration it accepts is one the module
//! accepts, and its error names the same JSON path with the same words.
//!
//! This is the library's public face for tools (`darklaunch-report
//! validate`); the filter does not call it, and nothing here is exported
//! from the Wasm module. With the `schema` feature (never enabled by the
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
