//! Where darklaunch configurations are in a file, and the exact bytes the
//! module would receive for each: a plain JSON configuration, the
//! `pluginConfig` of Istio `WasmPlugin`s (rendered as istiod renders it),
//! and the plugin `configuration` of every Envoy Wasm HTTP filter in a
//! bootstrap, LDS, ECDS or EnvoyFilter document.

use super::route::{self, VirtualHost};
use super::tree::{Kind, Node};
use base64::Engine as _;
use std::rc::Rc;

pub const WASM_HTTP: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const STRING_VALUE: &str = "type.googleapis.com/google.protobuf.StringValue";
const BYTES_VALUE: &str = "type.googleapis.com/google.protobuf.BytesValue";
const STRUCT: &str = "type.googleapis.com/google.protobuf.Struct";
const TYPED_STRUCTS: [&str; 2] = [
    "type.googleapis.com/udpa.type.v1.TypedStruct",
    "type.googleapis.com/xds.type.v3.TypedStruct",
];
const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const EXTENSION_CONFIG: &str = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";
const HCM_SUFFIX: &str = ".http_connection_manager.v3.HttpConnectionManager";
/// The module's words for a configuration that is not a StringValue.
pub const WANT_STRING_VALUE: &str = "the plugin `configuration` must be a \
     google.protobuf.StringValue whose value is the JSON configuration";

/// One darklaunch configuration found in a file.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Line in the file (0: unknown).
    pub line: u64,
    /// Which configuration: `WasmPlugin shop/darklaunch`,
    /// `listener ingress, http filter envoy.filters.http.wasm, plugin darklaunch`;
    /// empty for a file that is one configuration.
    pub location: String,
    pub input: Input,
    /// The routes of the HTTP connection manager the filter runs in, when
    /// the file has them inline (bootstrap, LDS).
    pub routes: Option<Rc<Vec<VirtualHost>>>,
}

#[derive(Debug, Clone)]
pub enum Input {
    /// The bytes the module receives. `tree`, for a configuration written
    /// as YAML (a `pluginConfig`), finds the line of an error's JSON path.
    Bytes { bytes: Vec<u8>, tree: Option<Node> },
    /// A configuration the module refuses before reading it, and why.
    Refused(String),
}

/// What a file holds.
pub enum Found {
    Candidates(Vec<Candidate>),
    /// Not YAML nor JSON: (line, message).
    Syntax(u64, String),
}

/// The darklaunch configurations in `text` (the contents of `name`).
pub fn find(name: &str, text: &[u8]) -> Found {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let first = text.iter().find(|b| !b.is_ascii_whitespace());
    let json_name = name.to_ascii_lowercase().ends_with(".json");
    if json_name || first == Some(&b'{') {
        match serde_json::from_slice::<serde_json::Value>(text) {
            Ok(v) if looks_like_envoy_or_kubernetes(&v) => {
                return Found::Candidates(in_documents(&[Node::from_json(&v)]));
            }
            Ok(_) => return Found::Candidates(vec![whole_file(text)]),
            // A .json file is a configuration: the module's parser names
            // the syntax error with its line and column.
            Err(_) if json_name => return Found::Candidates(vec![whole_file(text)]),
            Err(_) => {} // YAML in flow style, perhaps
        }
    }
    let Ok(text) = std::str::from_utf8(text) else {
        return Found::Syntax(0, "not UTF-8 text".into());
    };
    match serde_saphyr::from_multiple::<Node>(text) {
        Ok(docs) => Found::Candidates(in_documents(&docs)),
        Err(e) => {
            let line = e.location().map(|l| l.line()).unwrap_or(0);
            let msg = e.without_snippet().to_string();
            let msg = msg.lines().next().unwrap_or_default();
            let msg = msg.strip_prefix("error: ").unwrap_or(msg);
            Found::Syntax(line, format!("not valid YAML: {msg}"))
        }
    }
}

fn whole_file(text: &[u8]) -> Candidate {
    Candidate {
        line: 0,
        location: String::new(),
        input: Input::Bytes {
            bytes: text.to_vec(),
            tree: None,
        },
        routes: None,
    }
}

/// A JSON document that is not itself a plugin configuration.
fn looks_like_envoy_or_kubernetes(v: &serde_json::Value) -> bool {
    const KEYS: [&str; 10] = [
        "apiVersion",
        "kind",
        "static_resources",
        "dynamic_resources",
        "admin",
        "node",
        "resources",
        "version_info",
        "@type",
        "filter_chains",
    ];
    v.as_object()
        .is_some_and(|o| !o.contains_key("launches") && KEYS.iter().any(|k| o.contains_key(*k)))
}

fn in_documents(docs: &[Node]) -> Vec<Candidate> {
    let mut out = Vec::new();
    for doc in docs {
        in_document(doc, &mut out);
    }
    // Two filters of one file with the same description: number them.
    let mut seen: Vec<(String, usize)> = Vec::new();
    for c in &out {
        match seen.iter_mut().find(|(l, _)| *l == c.location) {
            Some((_, n)) => *n += 1,
            None => seen.push((c.location.clone(), 1)),
        }
    }
    let mut count: Vec<(String, usize)> = Vec::new();
    for c in &mut out {
        let total = seen
            .iter()
            .find(|(l, _)| *l == c.location)
            .map_or(1, |(_, n)| *n);
        if total > 1 {
            let k = match count.iter_mut().find(|(l, _)| *l == c.location) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    count.push((c.location.clone(), 1));
                    1
                }
            };
            c.location = format!("{} (#{k})", c.location);
        }
    }
    out
}

fn in_document(doc: &Node, out: &mut Vec<Candidate>) {
    if !doc.is_object() {
        return;
    }
    match doc.get_str("kind") {
        Some("WasmPlugin") => out.push(wasm_plugin(doc)),
        Some("List") => {
            for item in doc.get("items").map(Node::array).unwrap_or_default() {
                in_document(item, out);
            }
        }
        _ if doc.get("launches").is_some() => out.push(Candidate {
            line: doc.line,
            location: "plugin configuration".into(),
            input: Input::Bytes {
                bytes: doc.to_json().to_string().into_bytes(),
                tree: Some(doc.clone()),
            },
            routes: None,
        }),
        _ => walk(doc, &Context::default(), out),
    }
}

/// An Istio WasmPlugin: istiod puts `spec.pluginConfig` (a protobuf Struct)
/// into the filter's StringValue as JSON, every number a double.
fn wasm_plugin(doc: &Node) -> Candidate {
    let meta = doc.get("metadata");
    let name = meta.and_then(|m| m.get_str("name")).unwrap_or("(unnamed)");
    let location = match meta.and_then(|m| m.get_str("namespace")) {
        Some(ns) => format!("WasmPlugin {ns}/{name}"),
        None => format!("WasmPlugin {name}"),
    };
    let plugin_config = doc.get("spec").and_then(|s| s.get("pluginConfig"));
    let input = match plugin_config {
        // No pluginConfig: the filter gets no configuration.
        None
        | Some(Node {
            value: Kind::Null, ..
        }) => Input::Bytes {
            bytes: Vec::new(),
            tree: None,
        },
        Some(pc) => Input::Bytes {
            bytes: istio_json(pc).into_bytes(),
            tree: Some(pc.clone()),
        },
    };
    Candidate {
        line: plugin_config.map_or(doc.line, |p| p.line),
        location,
        input,
        routes: None,
    }
}

/// A `google.protobuf.Struct` as the JSON istiod hands the proxy: keys
/// sorted, numbers as doubles written the Go protojson way (`1000` stays
/// `1000`, `5.0` becomes `5`).
pub fn istio_json(node: &Node) -> String {
    let mut out = String::new();
    write_istio(node, &mut out);
    out
}

fn write_istio(node: &Node, out: &mut String) {
    match &node.value {
        Kind::Null => out.push_str("null"),
        Kind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Kind::Number(n) => out.push_str(&double(n.as_f64().unwrap_or(f64::NAN))),
        Kind::String(s) => out.push_str(&serde_json::Value::String(s.clone()).to_string()),
        Kind::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_istio(item, out);
            }
            out.push(']');
        }
        Kind::Object(members) => {
            let mut sorted: Vec<&(String, Node)> = members.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                write_istio(v, out);
            }
            out.push('}');
        }
    }
}

/// A double as Go's protojson writes it: without exponent from 1e-6 to
/// 1e21, the shortest digits that read back the same.
fn double(f: f64) -> String {
    let abs = f.abs();
    if !f.is_finite() {
        "null".into() // cannot come from YAML through serde_json
    } else if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        format!("{f:e}")
    } else if f.fract() == 0.0 {
        format!("{f:.0}")
    } else {
        format!("{f}")
    }
}

#[derive(Default, Clone)]
struct Context {
    labels: Vec<String>,
    routes: Option<Rc<Vec<VirtualHost>>>,
}

impl Context {
    fn with(&self, label: String) -> Context {
        let mut c = self.clone();
        c.labels.push(label);
        c
    }
}

fn is_wasm(node: &Node) -> bool {
    match node.get_str("@type") {
        Some(WASM_HTTP) => true,
        Some(t) if TYPED_STRUCTS.contains(&t) => node.get_str("type_url") == Some(WASM_HTTP),
        _ => false,
    }
}

/// Every Wasm HTTP filter below `node`, wherever it sits (static listeners,
/// LDS or ECDS resources, EnvoyFilter patches, default configs of filter
/// discovery), with the routes of its HTTP connection manager.
fn walk(node: &Node, ctx: &Context, out: &mut Vec<Candidate>) {
    match &node.value {
        Kind::Array(items) => {
            for item in items {
                walk(item, ctx, out);
            }
        }
        Kind::Object(members) => {
            let ty = node.get_str("@type");
            if is_wasm(node) {
                let config = match ty {
                    Some(WASM_HTTP) => node.get("config"),
                    _ => node.get("value").and_then(|v| v.get("config")),
                };
                out.push(wasm_filter(node, config, ctx));
                return;
            }
            let mut ctx = ctx.clone();
            let name = node.get_str("name");
            if let Some(name) = name {
                if ty == Some(LISTENER) || node.get("filter_chains").is_some() {
                    ctx = ctx.with(format!("listener {name}"));
                } else if ty == Some(EXTENSION_CONFIG) {
                    ctx = ctx.with(format!("extension config {name}"));
                } else if node.get("typed_config").is_some_and(is_wasm) {
                    ctx = ctx.with(format!("http filter {name}"));
                }
            }
            if ty.is_some_and(|t| t.ends_with(HCM_SUFFIX)) {
                ctx.routes = route::virtual_hosts(node).map(Rc::new);
            }
            for (_, v) in members {
                walk(v, &ctx, out);
            }
        }
        _ => {}
    }
}

fn wasm_filter(at: &Node, config: Option<&Node>, ctx: &Context) -> Candidate {
    let mut ctx = ctx.clone();
    if let Some(name) = config
        .and_then(|c| c.get_str("name"))
        .filter(|n| !n.is_empty())
    {
        // ECDS names the extension config and the plugin alike.
        if !ctx.labels.iter().any(|l| l.ends_with(&format!(" {name}"))) {
            ctx = ctx.with(format!("plugin {name}"));
        }
    }
    if ctx.labels.is_empty() {
        ctx = ctx.with("Wasm filter".into());
    }
    let configuration = config.and_then(|c| c.get("configuration"));
    let (line, input) = match configuration {
        None => (
            config.map_or(at.line, |c| c.line),
            Input::Bytes {
                bytes: Vec::new(),
                tree: None,
            },
        ),
        Some(c) => (c.line, any_to_bytes(c)),
    };
    Candidate {
        line,
        location: ctx.labels.join(", "),
        input,
        routes: ctx.routes,
    }
}

/// What Envoy hands the module for the `configuration` Any: the value of a
/// StringValue or BytesValue, else the serialized message (which darklaunch
/// refuses).
fn any_to_bytes(any: &Node) -> Input {
    let value = any.get("value");
    match any.get_str("@type") {
        Some(STRING_VALUE) => Input::Bytes {
            bytes: value
                .and_then(Node::as_str)
                .unwrap_or_default()
                .as_bytes()
                .to_vec(),
            tree: None,
        },
        Some(BYTES_VALUE) => {
            let text = value.and_then(Node::as_str).unwrap_or_default();
            let standard = base64::engine::general_purpose::STANDARD.decode(text);
            let url_safe = || base64::engine::general_purpose::URL_SAFE.decode(text);
            match standard.or_else(|_| url_safe()) {
                Ok(bytes) => Input::Bytes { bytes, tree: None },
                Err(_) => Input::Refused(
                    "the configuration is a google.protobuf.BytesValue whose value is not \
                     base64: Envoy refuses it"
                        .into(),
                ),
            }
        }
        Some(STRUCT) => {
            let content = match value {
                Some(v) if v.is_object() => {
                    match darklaunch::check::configuration(v.to_json().to_string().as_bytes()) {
                        Ok(_) => {
                            "; its content, as JSON in a StringValue, would be accepted".to_string()
                        }
                        Err(e) => format!("; its content, as JSON, is not valid either: {e}"),
                    }
                }
                _ => String::new(),
            };
            Input::Refused(format!(
                "the configuration is a google.protobuf.Struct, which the module refuses \
                 (it receives the serialized message, not JSON): {WANT_STRING_VALUE}{content}"
            ))
        }
        Some(other) => Input::Refused(format!(
            "the configuration is a {}, which the module refuses: {WANT_STRING_VALUE}",
            other.rsplit('/').next().unwrap_or(other)
        )),
        None => Input::Refused(format!(
            "the configuration has no \"@type\": {WANT_STRING_VALUE}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(name: &str, text: &str) -> Vec<Candidate> {
        match find(name, text.as_bytes()) {
            Found::Candidates(c) => c,
            Found::Syntax(l, m) => panic!("{l}: {m}"),
        }
    }

    fn bytes(c: &Candidate) -> String {
        match &c.input {
            Input::Bytes { bytes, .. } => String::from_utf8(bytes.clone()).unwrap(),
            Input::Refused(m) => panic!("refused: {m}"),
        }
    }

    #[test]
    fn doubles_as_go_writes_them() {
        assert_eq!(double(1000.0), "1000");
        assert_eq!(double(5.0), "5");
        assert_eq!(double(0.25), "0.25");
        assert_eq!(double(-0.0), "-0");
        assert_eq!(double(1e21), "1e21");
        assert_eq!(double(1e-7), "1e-7");
        assert_eq!(double(262144.0), "262144");
        assert_eq!(double(12345678901234567890.0), "12345678901234567168");
    }

    #[test]
    fn wasmplugin_rendered_like_istiod() {
        let c = candidates(
            "x.yaml",
            "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\n\
             metadata: {name: dl, namespace: shop}\nspec:\n  pluginConfig:\n    \
             z: 5.0\n    a: [off, 'off', 1]\n",
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].location, "WasmPlugin shop/dl");
        assert_eq!(c[0].line, 6);
        assert_eq!(bytes(&c[0]), r#"{"a":[false,"off",1],"z":5}"#);
    }

    #[test]
    fn plain_json_is_passed_as_is() {
        let text = "{\"launches\": [1.0],\n \"x\": 1}";
        let c = candidates("c.json", text);
        assert_eq!((c.len(), c[0].location.as_str()), (1, ""));
        assert_eq!(bytes(&c[0]), text);
        assert_eq!(bytes(&candidates("c.json", "{broken")[0]), "{broken");
    }

    #[test]
    fn envoy_filters_found_with_their_listener() {
        let y = r#"
static_resources:
  listeners:
    - name: ingress
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                route_config:
                  virtual_hosts:
                    - routes:
                        - match: { prefix: "/" }
                          route: { cluster: primary }
                http_filters:
                  - name: envoy.filters.http.wasm
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
                      config:
                        name: darklaunch
                        configuration:
                          "@type": type.googleapis.com/google.protobuf.StringValue
                          value: '{"launches": []}'
                  - name: second
                    typed_config:
                      "@type": type.googleapis.com/udpa.type.v1.TypedStruct
                      type_url: type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
                      value:
                        config:
                          configuration:
                            "@type": type.googleapis.com/google.protobuf.Struct
                            value: {launches: []}
"#;
        let c = candidates("e.yaml", y);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[0].location,
            "listener ingress, http filter envoy.filters.http.wasm, plugin darklaunch"
        );
        assert_eq!(bytes(&c[0]), r#"{"launches": []}"#);
        assert_eq!(c[0].line, 22); // its "@type"
        assert!(c[0].routes.is_some());
        assert_eq!(c[1].location, "listener ingress, http filter second");
        match &c[1].input {
            Input::Refused(m) => {
                assert!(
                    m.starts_with("the configuration is a google.protobuf.Struct"),
                    "{m}"
                );
                assert!(m.contains("launches: must hold 1 to 32"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ecds_bytes_value_and_missing_configuration() {
        let j = r#"{"version_info": "1", "resources": [
            {"@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
             "name": "shop.darklaunch",
             "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                              "config": {"configuration": {"@type": "type.googleapis.com/google.protobuf.BytesValue",
                                                           "value": "eyJhIjoxfQ=="}}}},
            {"@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
             "name": "other",
             "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                              "config": {}}}]}"#;
        let c = candidates("ecds.json", j);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].location, "extension config shop.darklaunch");
        assert_eq!(bytes(&c[0]), r#"{"a":1}"#);
        assert_eq!(c[1].location, "extension config other");
        assert_eq!(bytes(&c[1]), "");
    }

    #[test]
    fn yaml_syntax_errors_have_a_line() {
        match find("x.yaml", b"a: 1\nb: [\n") {
            Found::Syntax(line, msg) => {
                assert!(line >= 2, "{line}");
                assert!(msg.starts_with("not valid YAML"), "{msg}");
            }
            Found::Candidates(_) => panic!("parsed"),
        }
    }
}
