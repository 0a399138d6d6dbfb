//! `darklaunch-report validate FILE...`: checks darklaunch plugin
//! configurations with the filter's own parser (`darklaunch::check`), in
//! every shape they are deployed in, and warns about valid settings that are
//! probably mistakes. `darklaunch-report schema` prints the configuration's
//! JSON Schema.

pub mod route;
pub mod source;
pub mod tree;

use darklaunch::check::{self, Summary};
use source::{Candidate, Found, Input};
use std::io::{Read, Write};

/// Every configuration passed (warnings allowed).
pub const EXIT_OK: i32 = 0;
/// A configuration is refused, a file is not YAML/JSON, no configuration
/// was found at all, or (with `--deny-warnings`) a warning.
pub const EXIT_INVALID: i32 = 1;
/// Bad arguments, or a file that cannot be read.
pub const EXIT_USAGE: i32 = 2;

pub const HELP: &str = "\
darklaunch-report validate — check darklaunch plugin configurations

USAGE
  darklaunch-report validate [--deny-warnings] [--quiet] FILE... (`-` reads stdin)
  darklaunch-report schema     print the JSON Schema of the plugin configuration

Each configuration is parsed and validated by the filter's own code, as
Envoy's on_configure would, without Envoy. A FILE may be:
  - a JSON plugin configuration (its bytes are checked as they are);
  - YAML or JSON, one or more documents (---), holding
      Istio WasmPlugins: spec.pluginConfig, rendered as istiod hands it to
        the proxy (keys sorted, numbers as doubles; YAML 1.1 booleans, so an
        unquoted `off` is false, as kubectl reads it);
      Envoy bootstraps, LDS or ECDS resources, EnvoyFilters: every
        envoy.filters.http.wasm filter's config.configuration, which must be
        a google.protobuf.StringValue (or BytesValue) holding the JSON;
      a plugin configuration written as YAML (a document with `launches`).
  Files without any of these are noted and skipped.

OUTPUT (stdout), one line per finding:
  FILE[:LINE]: [WHERE: ]error: JSON.PATH: MESSAGE
  FILE[:LINE]: [WHERE: ]warning: JSON.PATH: MESSAGE
  FILE[:LINE]: [WHERE: ]ok (N launches)
  FILE: no darklaunch configuration
  WHERE names the configuration (`WasmPlugin shop/darklaunch`, `listener
  ingress, http filter envoy.filters.http.wasm, plugin darklaunch`); LINE is
  the line of the field at fault in a YAML pluginConfig, else of the
  configuration. A last line counts configurations, errors and warnings.

WARNINGS (valid, but probably not what you want)
  - sample.percent 100 without limits.max_rps: the dark side takes the
    launch's whole live load;
  - dark_cluster is the cluster the primary route of the same HTTP
    connection manager sends these requests to (Envoy files with inline
    routes): the launch would compare the primary with itself;
  - unsafe_methods true without request_headers.set: nothing but the shadow
    header tells copied POST/PUT/PATCH/DELETE requests from live ones.

OPTIONS
  --deny-warnings  a warning fails the run (exit 1)
  -q, --quiet      no `ok` and `no darklaunch configuration` lines
  -h, --help       this text

EXIT CODES
  0 every configuration valid   1 an error (or no configuration found, or a
  warning with --deny-warnings)   2 bad arguments or an unreadable file
";

#[derive(Debug, Default, PartialEq)]
pub struct Options {
    pub files: Vec<String>,
    pub deny_warnings: bool,
    pub quiet: bool,
}

/// `None`: help was asked for.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Options>, String> {
    let mut o = Options::default();
    let mut only_files = false;
    for a in args {
        if only_files || a == "-" || !a.starts_with('-') {
            o.files.push(a);
            continue;
        }
        match a.as_str() {
            "--" => only_files = true,
            "-h" | "--help" => return Ok(None),
            "--deny-warnings" => o.deny_warnings = true,
            "-q" | "--quiet" => o.quiet = true,
            other => return Err(format!("validate: unknown option {other:?}")),
        }
    }
    if o.files.is_empty() {
        return Err("validate: give at least one FILE (- for stdin)".into());
    }
    Ok(Some(o))
}

/// The `validate` subcommand, from the arguments after `validate`.
pub fn main<I: IntoIterator<Item = String>>(args: I) -> i32 {
    match parse_args(args) {
        Ok(None) => {
            print!("{HELP}");
            EXIT_OK
        }
        Ok(Some(o)) => {
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            run(&o, &mut stdout.lock(), &mut stderr.lock(), read_file)
        }
        Err(e) => {
            eprintln!("darklaunch-report {e}");
            eprintln!("run `darklaunch-report validate --help` for usage");
            EXIT_USAGE
        }
    }
}

/// The `schema` subcommand.
pub fn schema_main<I: IntoIterator<Item = String>>(args: I) -> i32 {
    let args: Vec<String> = args.into_iter().collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("darklaunch-report schema — print the JSON Schema (draft 2020-12) of the plugin configuration");
        return EXIT_OK;
    }
    if let Some(a) = args.first() {
        eprintln!("darklaunch-report schema: unexpected argument {a:?}");
        return EXIT_USAGE;
    }
    print!("{}", schema_text());
    EXIT_OK
}

/// schema/darklaunch.schema.json as it must read: the generated schema,
/// two-space indented, with a final newline.
pub fn schema_text() -> String {
    let value = check::json_schema();
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

fn read_file(name: &str) -> std::io::Result<Vec<u8>> {
    if name == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(name)
    }
}

/// One problem (or remark) about a configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// 0: unknown.
    pub line: u64,
    /// JSON path in the configuration; empty for the whole configuration.
    pub path: String,
    pub message: String,
}

/// The verdict on one configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub error: Option<Finding>,
    pub warnings: Vec<Finding>,
    pub launches: usize,
}

/// Checks one configuration found in a file.
pub fn check(c: &Candidate) -> Verdict {
    let (bytes, tree) = match &c.input {
        Input::Refused(message) => {
            return Verdict {
                error: Some(Finding {
                    line: c.line,
                    path: String::new(),
                    message: message.clone(),
                }),
                warnings: Vec::new(),
                launches: 0,
            }
        }
        Input::Bytes { bytes, tree } => (bytes, tree),
    };
    let line_of = |path: &str| match tree {
        Some(t) if !path.is_empty() => t.line_of(path),
        _ => c.line,
    };
    match check::configuration(bytes) {
        Err(e) => Verdict {
            error: Some(Finding {
                line: line_of(&e.path),
                // serde's position is in the JSON rendered from the YAML,
                // which the user never sees: the line above replaces it.
                message: match tree {
                    Some(_) => without_json_position(&e.message).to_string(),
                    None => e.message,
                },
                path: e.path,
            }),
            warnings: Vec::new(),
            launches: 0,
        },
        Ok(summary) => Verdict {
            error: None,
            warnings: warnings(&summary, c.routes.as_deref().map(Vec::as_slice))
                .into_iter()
                .map(|(path, message)| Finding {
                    line: line_of(&path),
                    path,
                    message,
                })
                .collect(),
            launches: summary.launches.len(),
        },
    }
}

/// `message` without serde_json's trailing ` at line L column C`.
fn without_json_position(message: &str) -> &str {
    if let Some(i) = message.rfind(" at line ") {
        let tail = message.get(i + " at line ".len()..).unwrap_or_default();
        if let Some((l, c)) = tail.split_once(" column ") {
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if digits(l) && digits(c) {
                return message.get(..i).unwrap_or(message);
            }
        }
    }
    message
}

const SAFE_METHODS: [&str; 4] = ["GET", "HEAD", "OPTIONS", "TRACE"];

/// Settings the filter accepts that are probably mistakes: (JSON path,
/// message). `routes`: the primary routes of the HTTP connection manager
/// the filter runs in, when known.
pub fn warnings(s: &Summary, routes: Option<&[route::VirtualHost]>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, l) in s.launches.iter().enumerate() {
        let at = format!("launches[{i}]");
        if l.sample_percent >= 100.0 && l.max_rps == 0.0 {
            out.push((
                format!("{at}.sample.percent"),
                "100% of the matching requests are shadowed and limits.max_rps is not set: \
                 the dark side receives the launch's whole live load; set limits.max_rps to \
                 cap the shadow calls"
                    .to_string(),
            ));
        }
        if let Some(hosts) = routes {
            let carrying = route::carrying(hosts, &l.path);
            if let Some(r) = carrying
                .iter()
                .find(|r| r.clusters.contains(&l.dark_cluster))
            {
                out.push((
                    format!("{at}.dark_cluster"),
                    format!(
                        "{:?} is also the cluster the primary route sends these requests to \
                         ({} of this HTTP connection manager): the shadow copies would go to \
                         the primary version, and the launch would compare it with itself",
                        l.dark_cluster,
                        r.path.describe()
                    ),
                ));
            }
        }
        let unsafe_possible = l.methods.is_empty()
            || l.methods
                .iter()
                .any(|m| !SAFE_METHODS.contains(&m.as_str()));
        if l.unsafe_methods && unsafe_possible && l.set_headers.is_empty() {
            out.push((
                format!("{at}.unsafe_methods"),
                format!(
                    "true, and request_headers.set marks nothing on the shadow requests: \
                     copied POST, PUT, PATCH and DELETE requests differ from live ones only by \
                     the `{}` header, so unless the dark side honours it (or has dark \
                     dependencies) their side effects happen twice; set a header it acts on, \
                     e.g. request_headers.set {{\"x-env\": \"dark\"}}",
                    s.shadow_header
                ),
            ));
        }
    }
    out
}

/// Counts of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Totals {
    pub files: usize,
    pub configurations: usize,
    pub invalid: usize,
    pub warnings: usize,
    /// Files that are not YAML nor JSON.
    pub unparsable: usize,
    /// Files that could not be read.
    pub unreadable: usize,
}

impl Totals {
    pub fn exit_code(&self, deny_warnings: bool) -> i32 {
        if self.unreadable > 0 {
            EXIT_USAGE
        } else if self.invalid > 0
            || self.unparsable > 0
            || self.configurations == 0
            || (deny_warnings && self.warnings > 0)
        {
            EXIT_INVALID
        } else {
            EXIT_OK
        }
    }
}

fn prefix(file: &str, line: u64, location: &str) -> String {
    let mut p = file.to_string();
    if line > 0 {
        p.push_str(&format!(":{line}"));
    }
    p.push_str(": ");
    if !location.is_empty() {
        p.push_str(location);
        p.push_str(": ");
    }
    p
}

fn finding_line(file: &str, location: &str, level: &str, f: &Finding) -> String {
    let what = if f.path.is_empty() {
        f.message.clone()
    } else {
        format!("{}: {}", f.path, f.message)
    };
    format!("{}{level}: {what}", prefix(file, f.line, location))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Checks every file; findings on `out`, read errors on `err`.
pub fn run(
    o: &Options,
    out: &mut dyn Write,
    err: &mut dyn Write,
    read: fn(&str) -> std::io::Result<Vec<u8>>,
) -> i32 {
    let mut t = Totals::default();
    let mut lines: Vec<String> = Vec::new();
    for file in &o.files {
        t.files += 1;
        let name = if file == "-" {
            "<stdin>"
        } else {
            file.as_str()
        };
        let text = match read(file) {
            Ok(text) => text,
            Err(e) => {
                t.unreadable += 1;
                let _ = writeln!(err, "darklaunch-report validate: {name}: {e}");
                continue;
            }
        };
        let candidates = match source::find(name, &text) {
            Found::Syntax(line, message) => {
                t.unparsable += 1;
                lines.push(format!("{}error: {message}", prefix(name, line, "")));
                continue;
            }
            Found::Candidates(c) => c,
        };
        if candidates.is_empty() && !o.quiet {
            lines.push(format!("{name}: no darklaunch configuration"));
        }
        for c in &candidates {
            t.configurations += 1;
            let v = check(c);
            if let Some(e) = &v.error {
                t.invalid += 1;
                lines.push(finding_line(name, &c.location, "error", e));
            }
            for w in &v.warnings {
                t.warnings += 1;
                lines.push(finding_line(name, &c.location, "warning", w));
            }
            if v.error.is_none() && !o.quiet {
                lines.push(format!(
                    "{}ok ({})",
                    prefix(name, c.line, &c.location),
                    plural(v.launches, "launch", "launches")
                ));
            }
        }
    }
    for l in &lines {
        let _ = writeln!(out, "{l}");
    }
    if t.configurations == 0 && t.unreadable == 0 && t.unparsable == 0 {
        let _ = writeln!(
            out,
            "no darklaunch configuration found (no plugin configuration, WasmPlugin or Envoy Wasm filter)"
        );
    }
    let _ = writeln!(
        out,
        "{} in {}: {} invalid, {}",
        plural(t.configurations, "configuration", "configurations"),
        plural(t.files, "file", "files"),
        t.invalid + t.unparsable,
        plural(t.warnings, "warning", "warnings"),
    );
    t.exit_code(o.deny_warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_on(files: &[(&str, &str)], extra: &[&str]) -> (i32, String) {
        let dir = std::env::temp_dir().join(format!(
            "darklaunch-validate-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        for (name, text) in files {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            args.push(p.to_string_lossy().into_owned());
        }
        let o = parse_args(args).unwrap().unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&o, &mut out, &mut err, read_file);
        std::fs::remove_dir_all(&dir).unwrap();
        let text = String::from_utf8(out).unwrap() + &String::from_utf8(err).unwrap();
        (code, text.replace(&format!("{}/", dir.display()), ""))
    }

    const GOOD: &str = r#"{"launches":[{"name":"a","dark_cluster":"c","sample":{"percent":5}}]}"#;

    #[test]
    fn json_positions_dropped() {
        assert_eq!(
            without_json_position("unknown field `x` at line 1 column 34"),
            "unknown field `x`"
        );
        assert_eq!(without_json_position("at line 2"), "at line 2");
        assert_eq!(
            without_json_position("x at line 1 column y"),
            "x at line 1 column y"
        );
    }

    #[test]
    fn arguments() {
        assert_eq!(parse_args(["-h".to_string()]), Ok(None));
        assert!(parse_args(Vec::<String>::new()).is_err());
        assert!(parse_args(["--bogus".to_string()]).is_err());
        let o = parse_args(["--deny-warnings", "-q", "--", "-x.json", "-"].map(String::from))
            .unwrap()
            .unwrap();
        assert!(o.deny_warnings && o.quiet);
        assert_eq!(o.files, ["-x.json", "-"]);
    }

    #[test]
    fn json_file_ok_and_bad() {
        let (code, out) = run_on(&[("good.json", GOOD)], &[]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("good.json: ok (1 launch)\n"), "{out}");
        assert!(
            out.ends_with("1 configuration in 1 file: 0 invalid, 0 warnings\n"),
            "{out}"
        );
        let bad = GOOD.replace("5}", "150}");
        let (code, out) = run_on(&[("good.json", GOOD), ("bad.json", &bad)], &[]);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains(
                "bad.json: error: launches[0].sample.percent: must be between 0 and 100\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn unreadable_file_is_a_usage_error() {
        let o = parse_args(["/nonexistent/x.json".to_string()])
            .unwrap()
            .unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run(&o, &mut out, &mut err, read_file), EXIT_USAGE);
        assert!(String::from_utf8(err)
            .unwrap()
            .contains("/nonexistent/x.json"));
    }

    #[test]
    fn nothing_found_fails() {
        let (code, out) = run_on(&[("cm.yaml", "kind: ConfigMap\ndata: {}\n")], &[]);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("cm.yaml: no darklaunch configuration\n"),
            "{out}"
        );
        let (code, out) = run_on(
            &[("cm.yaml", "kind: ConfigMap\n"), ("g.json", GOOD)],
            &["-q"],
        );
        assert_eq!(code, 0, "{out}");
        assert!(
            !out.contains("no darklaunch") && !out.contains("ok ("),
            "{out}"
        );
    }

    #[test]
    fn wasmplugin_errors_point_at_the_line() {
        let y = "\
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: dl, namespace: shop}
spec:
  pluginConfig:
    launches:
      - name: a
        dark_cluster: c
        sample:
          percent: 150
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: dl2, namespace: shop}
spec:
  pluginConfig:
    launches:
      - name: a
        dark_cluster: c
        sample: {percent: 5}
        request_headers:
          set:
            x-env: off
";
        let (code, out) = run_on(&[("wp.yaml", y)], &[]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(
            "wp.yaml:10: WasmPlugin shop/dl: error: launches[0].sample.percent: must be between 0 and 100\n"
        ), "{out}");
        assert!(out.contains(
            "wp.yaml:23: WasmPlugin shop/dl2: error: launches[0].request_headers.set.x-env: must be a string\n"
        ), "{out}");
        assert!(
            out.ends_with("2 configurations in 1 file: 2 invalid, 0 warnings\n"),
            "{out}"
        );
    }

    fn summary(cfg: &str) -> Summary {
        check::configuration(cfg.as_bytes()).unwrap()
    }

    #[test]
    fn the_three_warnings() {
        let w = |cfg: &str| warnings(&summary(cfg), None);
        assert!(w(GOOD).is_empty());
        let full = GOOD.replace("\"percent\":5", "\"percent\":100");
        let got = w(&full);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "launches[0].sample.percent");
        assert!(
            got[0].1.starts_with("100% of the matching requests"),
            "{}",
            got[0].1
        );
        assert!(w(&full.replace("}}]}", "},\"limits\":{\"max_rps\":50}}]}")).is_empty());

        let unsafe_cfg = GOOD.replace("}}]}", "},\"unsafe_methods\":true}]}");
        let got = w(&unsafe_cfg);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "launches[0].unsafe_methods");
        assert!(
            got[0].1.contains("`x-darklaunch-shadow` header"),
            "{}",
            got[0].1
        );
        let marked = unsafe_cfg.replace(
            "true}",
            "true,\"request_headers\":{\"set\":{\"x-env\":\"dark\"}}}",
        );
        assert!(w(&marked).is_empty(), "{marked}");
        let safe_only = unsafe_cfg.replace("true}", "true,\"match\":{\"methods\":[\"GET\"]}}");
        assert!(w(&safe_only).is_empty());

        let hosts = [route::VirtualHost {
            routes: vec![route::Route {
                path: route::RoutePath::Prefix("/".into()),
                path_only: true,
                clusters: vec!["c".into()],
            }],
        }];
        let got = warnings(&summary(GOOD), Some(&hosts));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "launches[0].dark_cluster");
        assert!(got[0]
            .1
            .starts_with("\"c\" is also the cluster the primary route sends"));
        assert!(got[0]
            .1
            .contains("(prefix \"/\" of this HTTP connection manager)"));
        assert!(warnings(&summary(&GOOD.replace("\"c\"", "\"d\"")), Some(&hosts)).is_empty());
    }

    #[test]
    fn deny_warnings() {
        let full = GOOD.replace("\"percent\":5", "\"percent\":100");
        let (code, out) = run_on(&[("w.json", &full)], &[]);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("w.json: warning: launches[0].sample.percent: 100%"),
            "{out}"
        );
        assert!(out.contains("w.json: ok (1 launch)"), "{out}");
        let (code, _) = run_on(&[("w.json", &full)], &["--deny-warnings"]);
        assert_eq!(code, 1);
    }
}
