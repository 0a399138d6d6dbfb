//! `darklaunch-report replay`: send a sampled request to a primary and a
//! dark URL and compare the two answers with the filter's own comparator
//! (`darklaunch::check::Rules`) under the launch's rules, so that a
//! difference seen in production can be reproduced against a local or
//! staging pair.
//!
//! The request is what the sample kept: method, path, query (values are
//! `REDACTED` unless the launch captured them: `--query` gives real ones),
//! the allowlisted request headers and, with `capture.bodies`, the request
//! body. Without `--config` the default rules compare status, body (`auto`)
//! and the headers the sample shows.

use crate::http::parse_header;
use crate::samples::read::{self, Found, Line, Lines};
use crate::samples::sample::Sample;
use crate::validate::source::{self, Input};
use darklaunch::check::{Answer, Comparison, Rules};
use serde_json::json;
use std::collections::BTreeSet;
use std::io::{BufRead, Read};
use std::time::{Duration, Instant};

pub const EXIT_MATCH: i32 = 0;
pub const EXIT_DIFFERS: i32 = 1;
pub const EXIT_ERROR: i32 = 4;

/// Largest answer read.
const MAX_ANSWER: u64 = 16 << 20;

pub const HELP: &str = "\
darklaunch-report replay — send a sampled request to two versions and compare

USAGE
  darklaunch-report replay SAMPLE --primary URL --dark URL [OPTIONS]

SAMPLE is a file (or - for stdin) holding `darklaunch sample {json}` lines,
e.g. an Envoy log or the --save file of `darklaunch-report samples --listen`;
the first sample is replayed, or the one --request-id names. The request
(method, path, query, the sample's request headers and request body) goes to
both base URLs; the answers are compared as the filter compares them.

OPTIONS
  --primary URL        base URL of the primary version, e.g. http://127.0.0.1:8080
  --dark URL           base URL of the dark version
  --config FILE        the plugin configuration (JSON, an Envoy YAML/JSON with the
                       filter, or an Istio WasmPlugin): the sample's launch's
                       compare rules and capture.redact are used. Without it:
                       status, body (auto) and the headers the sample shows.
  --request-id ID      replay the sample of that request
  --query Q            the query string to send instead of the sample's (whose
                       values read REDACTED unless the launch set capture.query)
  --header 'N: V'      add a request header (repeatable), e.g. a staging token
  --timeout SECS       per request (default 10)
  --json               JSON (schema darklaunch-replay/v1) instead of text
  -h, --help           this help

EXIT CODES
  0 the answers match   1 they differ   4 error (arguments, the sample, the
  configuration, a request that got no answer)
";

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Options {
    pub sample: String,
    pub primary: String,
    pub dark: String,
    pub config: Option<String>,
    pub request_id: Option<String>,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub timeout: f64,
    pub json: bool,
}

/// `None`: help was asked for.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Options>, String> {
    let mut o = Options {
        timeout: 10.0,
        ..Options::default()
    };
    let mut sample: Option<String> = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = crate::cli::split_flag(&arg);
        let mut value = || -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--primary" => o.primary = value()?,
            "--dark" => o.dark = value()?,
            "--config" => o.config = Some(value()?),
            "--request-id" => o.request_id = Some(value()?),
            "--query" => o.query = Some(value()?.trim_start_matches('?').to_string()),
            "--header" => o.headers.push(parse_header(&value()?)?),
            "--timeout" => {
                let v = value()?;
                o.timeout = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|t: &f64| t.is_finite() && *t > 0.0)
                    .ok_or_else(|| format!("--timeout: {v:?} is not a positive number"))?;
            }
            "--json" => o.json = true,
            f if f.starts_with('-') && f != "-" => return Err(format!("unknown option {f}")),
            _ => {
                if sample.replace(arg).is_some() {
                    return Err("one SAMPLE file at a time".into());
                }
            }
        }
    }
    o.sample = sample.ok_or("a SAMPLE file (or -) is needed")?;
    for (flag, url) in [("--primary", &o.primary), ("--dark", &o.dark)] {
        if url.is_empty() {
            return Err(format!("{flag} URL is needed"));
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("{flag}: {url:?} is not an http:// or https:// URL"));
        }
    }
    Ok(Some(o))
}

pub fn main<I: IntoIterator<Item = String>>(args: I) -> i32 {
    match parse_args(args) {
        Ok(None) => {
            print!("{HELP}");
            EXIT_MATCH
        }
        Ok(Some(o)) => {
            let stdin = std::io::stdin();
            match run(&o, &mut stdin.lock()) {
                Ok((code, text)) => {
                    print!("{text}");
                    code
                }
                Err(e) => {
                    eprintln!("darklaunch-report replay: {e}");
                    EXIT_ERROR
                }
            }
        }
        Err(e) => {
            eprintln!("darklaunch-report replay: {e}");
            eprintln!("run `darklaunch-report replay --help` for usage");
            EXIT_ERROR
        }
    }
}

/// The samples in `SAMPLE`, then the one to replay.
fn pick(o: &Options, stdin: &mut dyn BufRead) -> Result<(Sample, usize), String> {
    let mut samples = Vec::new();
    let mut read_from = |r: &mut dyn BufRead| -> Result<(), String> {
        let mut lines = Lines::new(r, read::MAX_LINE);
        while let Some(line) = lines
            .next_line()
            .map_err(|e| format!("{}: {e}", o.sample))?
        {
            if let Line::Text(bytes) = line {
                if let Found::Sample(s, _) = read::find(&bytes) {
                    samples.push(*s);
                }
            }
        }
        Ok(())
    };
    if o.sample == "-" {
        read_from(stdin)?;
    } else {
        let f = std::fs::File::open(&o.sample).map_err(|e| format!("{}: {e}", o.sample))?;
        read_from(&mut std::io::BufReader::new(f))?;
    }
    let count = samples.len();
    let chosen = match &o.request_id {
        Some(id) => samples.into_iter().find(|s| &s.request_id == id),
        None => samples.into_iter().next(),
    };
    match (chosen, &o.request_id) {
        (Some(s), _) => Ok((s, count)),
        (None, Some(id)) => Err(format!(
            "{}: no sample of request {id:?} among {count}",
            o.sample
        )),
        (None, None) => Err(format!("{}: no sample in it", o.sample)),
    }
}

/// The rules of the sample's launch in `--config`, or the defaults.
fn rules(o: &Options, s: &Sample) -> Result<(Rules, String), String> {
    let Some(path) = &o.config else {
        let headers: BTreeSet<String> = s
            .primary
            .headers
            .keys()
            .chain(s.dark.headers.keys())
            .cloned()
            .collect();
        let headers: Vec<String> = headers.into_iter().collect();
        return Ok((
            Rules::default_with_headers(&headers),
            "default rules (no --config)".into(),
        ));
    };
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let candidates = match source::find(path, &bytes) {
        source::Found::Candidates(c) => c,
        source::Found::Syntax(line, msg) => return Err(format!("{path}:{line}: {msg}")),
    };
    let mut errors = Vec::new();
    for c in candidates {
        let Input::Bytes { bytes, .. } = c.input else {
            continue;
        };
        match Rules::of_launch(&bytes, &s.launch) {
            Ok(r) => return Ok((r, format!("the rules of launch {} in {path}", s.launch))),
            Err(e) => errors.push(e),
        }
    }
    Err(format!(
        "{path}: no usable configuration of launch {:?}{}",
        s.launch,
        errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    ))
}

/// Sends the request to `base`; the answer and how long it took.
fn send(
    agent: &ureq::Agent,
    base: &str,
    s: &Sample,
    target: &str,
    headers: &[(String, String)],
) -> Result<(Answer, Duration), String> {
    let url = format!("{}{target}", base.trim_end_matches('/'));
    let method = if s.method.is_empty() {
        "GET"
    } else {
        &s.method
    };
    let mut b = ureq::http::Request::builder().method(method).uri(&url);
    for (n, v) in headers {
        b = b.header(n.as_str(), v.as_str());
    }
    let body = s.request_body.clone().unwrap_or_default().into_bytes();
    let started = Instant::now();
    let result = if body.is_empty() {
        b.body(())
            .map_err(|e| e.to_string())
            .and_then(|r| agent.run(r).map_err(|e| e.to_string()))
    } else {
        b.body(body)
            .map_err(|e| e.to_string())
            .and_then(|r| agent.run(r).map_err(|e| e.to_string()))
    };
    let mut resp = result.map_err(|e| format!("{method} {url}: {e}"))?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    let mut body = Vec::new();
    resp.body_mut()
        .as_reader()
        .take(MAX_ANSWER)
        .read_to_end(&mut body)
        .map_err(|e| format!("{method} {url}: {e}"))?;
    Ok((
        Answer {
            status,
            headers,
            body,
        },
        started.elapsed(),
    ))
}

/// Replays; (exit code, what to print).
pub fn run(o: &Options, stdin: &mut dyn BufRead) -> Result<(i32, String), String> {
    let (s, count) = pick(o, stdin)?;
    // A gRPC sample shows its statuses with the headers; its request body
    // is JSON as the comparison read it, not the framed message to send.
    if s.primary.headers.contains_key("grpc-status") {
        return Err(format!(
            "{} {}: a gRPC call; replay sends HTTP requests and cannot replay gRPC calls",
            s.method, s.path
        ));
    }
    let (rules, rules_from) = rules(o, &s)?;
    let query = o.query.clone().or_else(|| s.query.clone());
    let target = match &query {
        Some(q) if !q.is_empty() => format!("{}?{q}", s.path),
        _ => s.path.clone(),
    };
    let mut headers: Vec<(String, String)> = s
        .request_headers
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    headers.extend(o.headers.iter().cloned());
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs_f64(o.timeout)))
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .user_agent(format!(
            "darklaunch-report/{} replay",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .new_agent();
    let (primary, primary_time) = send(&agent, &o.primary, &s, &target, &headers)?;
    let (dark, dark_time) = send(&agent, &o.dark, &s, &target, &headers)?;
    let c = rules.compare(&primary, &dark);
    let code = if c.is_match() {
        EXIT_MATCH
    } else {
        EXIT_DIFFERS
    };
    let redacted_query =
        o.query.is_none() && s.query.as_deref().is_some_and(|q| q.contains("=REDACTED"));
    let seen = reproduced(&s, &c);
    let text = if o.json {
        let diffs: Vec<_> = c
            .differences
            .iter()
            .map(|d| {
                json!({"pointer": d.pointer, "field": d.field, "kind": d.kind,
                       "primary": d.primary, "dark": d.dark, "redacted": d.redacted})
            })
            .collect();
        let doc = json!({
            "schema": "darklaunch-replay/v1",
            "sample": {"launch": s.launch, "request_id": s.request_id, "samples_in_file": count},
            "request": {"method": if s.method.is_empty() { "GET" } else { &s.method },
                        "target": target, "headers": headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
                        "query_redacted": redacted_query},
            "rules": rules_from,
            "primary": {"url": o.primary, "status": primary.status, "ms": primary_time.as_millis() as u64},
            "dark": {"url": o.dark, "status": dark.status, "ms": dark_time.as_millis() as u64},
            "match": c.is_match(),
            "too_large": c.too_large,
            "status": c.status,
            "headers": c.headers,
            "body": c.body,
            "differences": diffs,
            "reproduced": {"same": seen.same, "only_in_sample": seen.only_in_sample, "new": seen.new},
        });
        format!("{doc}\n")
    } else {
        render(
            o,
            &s,
            count,
            &target,
            &rules_from,
            redacted_query,
            (&primary, primary_time),
            (&dark, dark_time),
            &c,
            &seen,
        )
    };
    Ok((code, text))
}

/// The sample's counted differences (fields, headers, status) against the
/// replay's.
#[derive(Debug, Default, PartialEq)]
pub struct Reproduced {
    pub same: Vec<String>,
    pub only_in_sample: Vec<String>,
    pub new: Vec<String>,
}

fn reproduced(s: &Sample, c: &Comparison) -> Reproduced {
    let mut before: BTreeSet<String> = BTreeSet::new();
    if s.kinds.iter().any(|k| k == "status") {
        before.insert("status".into());
    }
    before.extend(s.headers.iter().map(|h| format!("header {h}")));
    before.extend(s.fields.iter().cloned());
    let mut now: BTreeSet<String> = BTreeSet::new();
    if c.status {
        now.insert("status".into());
    } else {
        now.extend(c.headers.iter().map(|h| format!("header {h}")));
        now.extend(c.differences.iter().map(|d| d.field.clone()));
        if c.body && c.differences.is_empty() {
            now.insert("body (bytes)".into());
        }
    }
    Reproduced {
        same: before.intersection(&now).cloned().collect(),
        only_in_sample: before.difference(&now).cloned().collect(),
        new: now.difference(&before).cloned().collect(),
    }
}

fn value(v: &Option<String>, redacted: bool) -> String {
    match (v, redacted) {
        (_, true) => "[redacted]".into(),
        (Some(v), false) => v.clone(),
        (None, false) => "(absent)".into(),
    }
}

fn header_value(a: &Answer, name: &str) -> String {
    let values: Vec<String> = a
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    if values.is_empty() {
        "(absent)".into()
    } else {
        values.join(", ")
    }
}

#[allow(clippy::too_many_arguments)]
fn render(
    o: &Options,
    s: &Sample,
    count: usize,
    target: &str,
    rules_from: &str,
    redacted_query: bool,
    primary: (&Answer, Duration),
    dark: (&Answer, Duration),
    c: &Comparison,
    seen: &Reproduced,
) -> String {
    let mut out = String::new();
    let method = if s.method.is_empty() {
        "GET"
    } else {
        &s.method
    };
    let id = if s.request_id.is_empty() {
        "(no id)"
    } else {
        &s.request_id
    };
    out.push_str(&format!(
        "replay of the sample of request {id} (launch {}, 1 of {count} in {})\n",
        s.launch, o.sample
    ));
    out.push_str(&format!("  {method} {target}\n"));
    if redacted_query {
        out.push_str("  note: the sample's query values were redacted; --query sends real ones\n");
    }
    for (name, url, (a, t)) in [("primary", &o.primary, primary), ("dark", &o.dark, dark)] {
        out.push_str(&format!(
            "  {name:<8} {url}  {}  ({} ms)\n",
            a.status,
            t.as_millis()
        ));
    }
    out.push_str(&format!("compared with {rules_from}\n"));
    if c.is_match() {
        out.push_str("the answers match\n");
    } else {
        if c.too_large {
            out.push_str("  a body is larger than max_body_bytes: not compared\n");
        }
        if c.status {
            out.push_str(&format!(
                "  status  {} → {}\n",
                primary.0.status, dark.0.status
            ));
        }
        for h in &c.headers {
            out.push_str(&format!(
                "  header {h}  {} → {}\n",
                header_value(primary.0, h),
                header_value(dark.0, h)
            ));
        }
        let width = c
            .differences
            .iter()
            .map(|d| d.pointer.chars().count())
            .max()
            .unwrap_or(0);
        for d in &c.differences {
            out.push_str(&format!(
                "  {:<width$}  {:<12} {} → {}\n",
                d.pointer,
                d.kind,
                value(&d.primary, d.redacted),
                value(&d.dark, d.redacted)
            ));
        }
        if c.body && c.differences.is_empty() {
            out.push_str("  body differs (compared as bytes)\n");
        }
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    out.push_str(&format!(
        "against the sample: reproduced {}; only in the sample {}; new {}\n",
        list(&seen.same),
        list(&seen.only_in_sample),
        list(&seen.new)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Result<Option<Options>, String> {
        parse_args(s.iter().map(|a| a.to_string()))
    }

    #[test]
    fn arguments() {
        let o = args(&[
            "s.log",
            "--primary",
            "http://a:1",
            "--dark=http://b:2",
            "--header",
            "X-T: 1",
            "--query",
            "?a=1",
            "--timeout",
            "2.5",
            "--json",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (o.sample.as_str(), o.primary.as_str(), o.dark.as_str()),
            ("s.log", "http://a:1", "http://b:2")
        );
        assert_eq!(o.headers, vec![("X-T".to_string(), "1".to_string())]);
        assert_eq!(
            (o.query.as_deref(), o.timeout, o.json),
            (Some("a=1"), 2.5, true)
        );
        assert_eq!(args(&["--help"]), Ok(None));
        for (bad, want) in [
            (
                vec!["--primary", "http://a", "--dark", "http://b"],
                "SAMPLE",
            ),
            (vec!["s", "--dark", "http://b"], "--primary URL is needed"),
            (
                vec!["s", "--primary", "a:1", "--dark", "http://b"],
                "not an http",
            ),
            (
                vec!["s", "t", "--primary", "http://a", "--dark", "http://b"],
                "one SAMPLE",
            ),
            (
                vec![
                    "s",
                    "--primary",
                    "http://a",
                    "--dark",
                    "http://b",
                    "--timeout",
                    "0",
                ],
                "positive",
            ),
            (vec!["s", "--bogus"], "unknown option --bogus"),
            (vec!["s", "--primary"], "--primary needs a value"),
        ] {
            let e = args(&bad).unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }

    fn sample(json: &str) -> Sample {
        match read::find(format!("x darklaunch sample {json}").as_bytes()) {
            Found::Sample(s, _) => *s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_the_replay_reproduced() {
        let s = sample(
            r#"{"v":1,"launch":"l","kinds":["headers","body"],"fields":["/price","/gone"],"headers":["x-v"],
                "primary":{"status":200},"dark":{"status":200},"differences":[]}"#,
        );
        let c = Comparison {
            status: false,
            headers: vec!["x-v".into()],
            body: true,
            differences: vec![
                darklaunch::check::Difference {
                    pointer: "/items/1/sku".into(),
                    field: "/items/*/sku".into(),
                    kind: "value",
                    primary: None,
                    dark: None,
                    redacted: false,
                },
                darklaunch::check::Difference {
                    pointer: "/price".into(),
                    field: "/price".into(),
                    kind: "value",
                    primary: None,
                    dark: None,
                    redacted: false,
                },
            ],
            too_large: false,
        };
        let r = reproduced(&s, &c);
        assert_eq!(r.same, ["/price", "header x-v"]);
        assert_eq!(r.only_in_sample, ["/gone"]);
        assert_eq!(r.new, ["/items/*/sku"]);
    }

    #[test]
    fn grpc_samples_are_refused() {
        let o = Options {
            sample: "-".into(),
            ..Options::default()
        };
        let line = r#"darklaunch sample {"v":1,"launch":"g","method":"POST","path":"/p.S/M","kinds":["grpc_status"],"primary":{"status":200,"headers":{"grpc-status":"0"}},"dark":{"status":200,"headers":{"grpc-status":"5"}},"differences":[]}"#;
        let mut input = std::io::Cursor::new(format!("{line}\n"));
        let err = run(&o, &mut input).unwrap_err();
        assert!(err.contains("POST /p.S/M: a gRPC call"), "{err}");
    }

    #[test]
    fn picking_a_sample() {
        let dir = std::env::temp_dir().join(format!("replay-pick-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("s.log");
        let line = |id: &str| {
            format!(
                "[info] darklaunch sample {{\"v\":1,\"launch\":\"l\",\"request_id\":\"{id}\",\"kinds\":[\"body\"],\
                 \"primary\":{{\"status\":200}},\"dark\":{{\"status\":200}},\"differences\":[]}}\n"
            )
        };
        std::fs::write(&file, format!("noise\n{}{}", line("a"), line("b"))).unwrap();
        let mut o = Options {
            sample: file.to_string_lossy().into_owned(),
            ..Options::default()
        };
        let (s, n) = pick(&o, &mut std::io::empty()).unwrap();
        assert_eq!((s.request_id.as_str(), n), ("a", 2));
        o.request_id = Some("b".into());
        assert_eq!(pick(&o, &mut std::io::empty()).unwrap().0.request_id, "b");
        o.request_id = Some("c".into());
        assert!(pick(&o, &mut std::io::empty())
            .unwrap_err()
            .contains("no sample of request \"c\" among 2"));
        // stdin
        let o = Options {
            sample: "-".into(),
            ..Options::default()
        };
        let mut input = std::io::Cursor::new(line("z"));
        assert_eq!(pick(&o, &mut input).unwrap().0.request_id, "z");
        assert!(pick(&o, &mut std::io::Cursor::new("nothing\n"))
            .unwrap_err()
            .contains("no sample"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
