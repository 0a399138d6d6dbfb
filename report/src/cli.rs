//! Command line: arguments, one-shot, `--watch` and `--serve`.

use crate::http::{self, BasicAuth, Client, Fetch, HttpOptions};
use crate::model::Snapshot;
use crate::prom;
use crate::report::{build, table, Report, Source};
use crate::serve;
use crate::verdict::{Thresholds, Verdict};
use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Exit code when no report could be produced (bad arguments, unreachable
/// or unparsable source).
pub const EXIT_ERROR: i32 = 4;

pub const HELP: &str = "\
darklaunch-report — verdict of darklaunch dark launches from Envoy stats

USAGE
  darklaunch-report --envoy URL [--envoy URL ...] [OPTIONS]
  darklaunch-report --prometheus URL [--window 1h] [--selector 'k=\"v\"'] [OPTIONS]
  darklaunch-report --envoy-json FILE [--envoy-json FILE ...] [OPTIONS]
  darklaunch-report validate FILE...   check plugin configurations (see
                                       `darklaunch-report validate --help`)
  darklaunch-report schema             print the configuration's JSON Schema
  darklaunch-report samples [FILE...]  group the mismatch samples the filter
                                       logs, or receive them over OTLP (see
                                       `darklaunch-report samples --help`)
  darklaunch-report replay SAMPLE --primary URL --dark URL
                                       send a sampled request to both and
                                       compare the answers (see
                                       `darklaunch-report replay --help`)

SOURCES (exactly one kind)
  --envoy URL          Envoy admin base URL, e.g. http://127.0.0.1:9901; repeat
                       for several Envoys. Reads /stats?format=json. Counters
                       and gauges are summed over the Envoys; each latency
                       quantile is the largest of the Envoys' (an upper bound
                       of the merged quantile). Quantiles are Envoy's
                       `cumulative` values (all samples since start, like the
                       counters), computed at each stats flush.
  --prometheus URL     Prometheus base URL, e.g. http://127.0.0.1:9090; uses
                       /api/v1/query with `sum by (launch) (darklaunch_compared)`,
                       `sum by (launch, reason) (darklaunch_skipped)`, ... and
                       `histogram_quantile(0.95, sum by (launch, le)
                       (darklaunch_dark_ms_bucket))`, summed over every
                       scraped Envoy.
  --window RANGE       Prometheus only: judge the last RANGE (PromQL duration,
                       e.g. 30m): counters as increase(...[RANGE]), quantiles
                       from rate(..._bucket[RANGE]). Default: totals.
  --selector MATCHERS  Prometheus only: label matchers added to every series,
                       e.g. 'namespace=\"shop\",job=\"envoy\"'.
  --envoy-json FILE    a saved /stats?format=json document (repeatable).

HTTP (--envoy and --prometheus)
  URLs are http:// or https:// (TLS: rustls, Mozilla's roots). No proxies,
  no redirects.
  --timeout SECS       per HTTP request, body included (default 10).
  --header 'N: V'      send header N with value V with every request
                       (repeatable), e.g. 'X-Scope-OrgID: shop'.
  --bearer-token-file PATH
                       send `Authorization: Bearer <token>`, the token being
                       the file's contents, trimmed; read at every request,
                       so a rotated Kubernetes service-account token
                       (/var/run/secrets/kubernetes.io/serviceaccount/token)
                       keeps working.
  --ca-file PEM        trust the certificates in PEM (a private CA) besides
                       Mozilla's roots.
  https://user:password@host/ in a URL sends basic auth to that host
  (percent-encode `@`, `:` and `%` in them). One source of Authorization
  at a time: --bearer-token-file, an Authorization --header, or a URL's
  user:password.

WHAT TO REPORT
  --launch L           only launch L (repeatable). A named launch without
                       stats is reported (INCONCLUSIVE), so a typo cannot pass.
  --top N              field counters shown per launch in the table (default 5).
  --json               JSON (schema darklaunch-report/v1, see report/README.md)
                       instead of the table.

THRESHOLDS
  --max-divergence F   largest acceptable mismatch/compared (default 0.01)
  --max-error-delta F  largest acceptable dark error rate minus primary error
                       rate, as a fraction (default 0.005 = 0.5 pp)
  --max-p95-ratio F    dark p95 may be at most F × primary p95 (default 1.10);
                       `inf` turns the latency check off
  --p95-slack-ms MS    ... plus MS milliseconds (default 1: Envoy records whole
                       milliseconds, so sub-ms services would flap otherwise)
  --min-compared N     fewer compared pairs than N: INCONCLUSIVE (default 100)

VERDICT (per launch)
  divergence = mismatch / compared, with its 95% Wilson score interval [low, high]
  dark error rate    = (dark 5xx + timeout + reset) / all dark outcomes
  primary error rate = (primary 5xx + reset) / all primary outcomes
  error delta = dark error rate - primary error rate
  1. INCONCLUSIVE  if compared < min-compared
  2. FAIL          if low > max-divergence,
                   or error delta > max-error-delta,
                   or dark p95 > primary p95 × max-p95-ratio + p95-slack-ms
  3. INCONCLUSIVE  if a number needed above is missing (no dark or primary
                   outcomes, no latency samples yet)
  4. MARGINAL      if high > max-divergence (the interval contains the
                   threshold: more traffic decides)
  5. PASS          otherwise
  A value equal to its threshold passes. With several launches the overall
  verdict is the worst: PASS < MARGINAL < INCONCLUSIVE < FAIL; no launch at
  all is INCONCLUSIVE.

EXIT CODES
  0 PASS   1 MARGINAL   2 FAIL   3 INCONCLUSIVE   4 error (bad arguments,
  source unreachable or unreadable; the message is on stderr)

MODES
  --watch [SECS]       refresh the table every SECS seconds (default 5),
                       clearing the screen; Ctrl-C stops. With --json, one
                       JSON document per line instead. Exits with the code of
                       the last refresh.
  --watch-count N      stop after N refreshes (implies --watch).
  --serve ADDR         HTTP server for rollout tools, e.g. 0.0.0.0:8080 (port
                       0 picks one; the address is printed on stderr). Every
                       request reads the source afresh:
                         /report  200 + the JSON report (Argo Rollouts web
                                  metric: jsonPath {$.verdict})
                         /gate    200 when the verdict is accepted, else 503
                                  (Flagger webhooks), body = the JSON report
                         /healthz 200
                       `?launch=L` (repeatable) narrows /report and /gate.
                       Any method; a request body is ignored.
  --gate-accept LIST   verdicts /gate answers 200 for (default PASS), e.g.
                       PASS,MARGINAL.
  -h, --help           this text     -V, --version   the version
";

#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    pub envoys: Vec<String>,
    pub envoy_files: Vec<String>,
    pub prometheus: Option<String>,
    pub prom: prom::Options,
    pub launches: Vec<String>,
    pub thresholds: Thresholds,
    pub top: usize,
    pub json: bool,
    /// Seconds between refreshes.
    pub watch: Option<f64>,
    pub watch_count: Option<u64>,
    pub serve: Option<String>,
    pub gate_accept: Vec<Verdict>,
    pub timeout: f64,
    /// Headers, credentials and trusted roots of HTTP requests.
    pub http: HttpOptions,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            envoys: Vec::new(),
            envoy_files: Vec::new(),
            prometheus: None,
            prom: prom::Options::default(),
            launches: Vec::new(),
            thresholds: Thresholds::default(),
            top: 5,
            json: false,
            watch: None,
            watch_count: None,
            serve: None,
            gate_accept: vec![Verdict::Pass],
            timeout: 10.0,
            http: HttpOptions::default(),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    Run(Box<Args>),
    Help,
    Version,
}

pub(crate) fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{flag}: {v:?} is not a valid number"))
}

/// `--flag=value` as the flag and its inline value; anything else as is.
pub(crate) fn split_flag(raw: &str) -> (String, Option<String>) {
    match raw.split_once('=') {
        Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
        _ => (raw.to_string(), None),
    }
}

/// The value of `flag`: its inline one, else the next argument; empty for
/// a flag that takes none (an inline value is then an error).
pub(crate) fn flag_value(
    flag: &str,
    inline: Option<String>,
    takes_value: bool,
    rest: &mut impl Iterator<Item = String>,
) -> Result<String, String> {
    if takes_value {
        return match inline {
            Some(v) => Ok(v),
            None => rest.next().ok_or_else(|| format!("{flag} needs a value")),
        };
    }
    if inline.is_some() {
        return Err(format!("{flag} takes no value"));
    }
    Ok(String::new())
}

fn fraction(flag: &str, v: &str) -> Result<f64, String> {
    let x: f64 = number(flag, v)?;
    if !(0.0..=1.0).contains(&x) {
        return Err(format!("{flag}: {v} must be between 0 and 1"));
    }
    Ok(x)
}

pub fn parse_args<I: IntoIterator<Item = String>>(argv: I) -> Result<Command, String> {
    let mut a = Args::default();
    let mut it = argv.into_iter().peekable();
    while let Some(raw) = it.next() {
        let (flag, inline) = split_flag(&raw);
        // `--watch` takes an optional value.
        if flag == "--watch" {
            let secs = match inline {
                Some(v) => Some(v),
                None => match it.peek() {
                    Some(next) if next.parse::<f64>().is_ok() => it.next(),
                    _ => None,
                },
            };
            let secs: f64 = match secs {
                Some(v) => number("--watch", &v)?,
                None => 5.0,
            };
            if !(secs.is_finite() && secs > 0.0) {
                return Err("--watch: the interval must be a positive number of seconds".into());
            }
            a.watch = Some(secs);
            continue;
        }
        let takes_value = !matches!(
            flag.as_str(),
            "--json" | "-h" | "--help" | "-V" | "--version"
        );
        let value = flag_value(&flag, inline, takes_value, &mut it)?;
        let v = value.as_str();
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--json" => a.json = true,
            "--envoy" => a.envoys.push(v.to_string()),
            "--envoy-json" => a.envoy_files.push(v.to_string()),
            "--prometheus" => {
                if a.prometheus.replace(v.to_string()).is_some() {
                    return Err("--prometheus can be given once".into());
                }
            }
            "--window" => a.prom.window = Some(v.to_string()),
            "--selector" => a.prom.selector = Some(v.to_string()),
            "--launch" => a.launches.push(v.to_string()),
            "--top" => a.top = number(&flag, v)?,
            "--timeout" => {
                a.timeout = number(&flag, v)?;
                if !(a.timeout.is_finite() && a.timeout > 0.0) {
                    return Err("--timeout must be a positive number of seconds".into());
                }
            }
            "--max-divergence" => a.thresholds.max_divergence = fraction(&flag, v)?,
            "--max-error-delta" => a.thresholds.max_error_delta = fraction(&flag, v)?,
            "--max-p95-ratio" => {
                let x: f64 = number(&flag, v)?;
                if x.is_nan() || x <= 0.0 {
                    return Err(format!("{flag}: {v} must be positive (or inf)"));
                }
                a.thresholds.max_p95_ratio = x;
            }
            "--p95-slack-ms" => {
                let x: f64 = number(&flag, v)?;
                if !(x.is_finite() && x >= 0.0) {
                    return Err(format!("{flag}: {v} must be a non-negative number"));
                }
                a.thresholds.p95_slack_ms = x;
            }
            "--min-compared" => a.thresholds.min_compared = number(&flag, v)?,
            "--watch-count" => {
                let n: u64 = number(&flag, v)?;
                if n == 0 {
                    return Err("--watch-count must be at least 1".into());
                }
                a.watch_count = Some(n);
            }
            "--serve" => a.serve = Some(v.to_string()),
            "--header" => a.http.headers.push(http::parse_header(v)?),
            "--bearer-token-file" => {
                if a.http.bearer_token_file.replace(v.to_string()).is_some() {
                    return Err("--bearer-token-file can be given once".into());
                }
            }
            "--ca-file" => {
                if a.http.ca_file.replace(v.to_string()).is_some() {
                    return Err("--ca-file can be given once (put every CA in one PEM file)".into());
                }
            }
            "--gate-accept" => {
                a.gate_accept = v
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| {
                        Verdict::parse(s)
                            .ok_or_else(|| format!("--gate-accept: unknown verdict {s:?}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    let kinds = [
        !a.envoys.is_empty(),
        a.prometheus.is_some(),
        !a.envoy_files.is_empty(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if kinds == 0 {
        return Err("no source: give --envoy URL, --prometheus URL or --envoy-json FILE".into());
    }
    if kinds > 1 {
        return Err("give one kind of source: --envoy, --prometheus or --envoy-json".into());
    }
    if a.prometheus.is_none() && (a.prom.window.is_some() || a.prom.selector.is_some()) {
        return Err("--window and --selector apply to --prometheus only".into());
    }
    let h = &a.http;
    if !a.envoy_files.is_empty()
        && (!h.headers.is_empty() || h.bearer_token_file.is_some() || h.ca_file.is_some())
    {
        return Err(
            "--header, --bearer-token-file and --ca-file apply to --envoy and --prometheus".into(),
        );
    }
    // URLs lose their user:password here: they are shown and reported.
    for url in a.envoys.iter_mut().chain(a.prometheus.iter_mut()) {
        let base = http::parse_base_url(url)?;
        if let Some((user, password)) = base.credentials {
            let auth = BasicAuth {
                origin: base.origin,
                user,
                password,
            };
            match a.http.basic_auth.iter().find(|b| b.origin == auth.origin) {
                Some(known) if *known != auth => {
                    return Err(format!(
                        "{}: two different user:password for one host",
                        auth.origin
                    ));
                }
                Some(_) => {}
                None => a.http.basic_auth.push(auth),
            }
        }
        *url = base.url;
    }
    let header_auth = a
        .http
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("authorization"));
    let auth_sources = [
        a.http.bearer_token_file.is_some(),
        header_auth,
        !a.http.basic_auth.is_empty(),
    ];
    if auth_sources.iter().filter(|b| **b).count() > 1 {
        return Err("give one source of Authorization: --bearer-token-file, an \
             Authorization --header, or user:password@ in the URL"
            .into());
    }
    if a.watch_count.is_some() && a.watch.is_none() {
        a.watch = Some(5.0);
    }
    if a.serve.is_some() && a.watch.is_some() {
        return Err("--serve and --watch do not go together".into());
    }
    Ok(Command::Run(Box::new(a)))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads the source and builds the report for `launches` (empty: all).
pub fn collect(a: &Args, fetch: &dyn Fetch, launches: &[String]) -> Result<Report, String> {
    let (mut snap, source) = if let Some(base) = &a.prometheus {
        (
            prom::snapshot(fetch, base, &a.prom)?,
            Source {
                kind: "prometheus",
                endpoints: vec![base.clone()],
                window: a.prom.window.clone(),
                selector: a.prom.selector.clone(),
            },
        )
    } else if !a.envoy_files.is_empty() {
        let mut snap = Snapshot::default();
        for f in &a.envoy_files {
            let body = std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"))?;
            snap.merge(&crate::envoy::parse(&body).map_err(|e| format!("{f}: {e}"))?);
        }
        (
            snap,
            Source {
                kind: "file",
                endpoints: a.envoy_files.clone(),
                window: None,
                selector: None,
            },
        )
    } else {
        (
            crate::envoy::snapshot(fetch, &a.envoys)?,
            Source {
                kind: "envoy",
                endpoints: a.envoys.clone(),
                window: None,
                selector: None,
            },
        )
    };
    snap.filter(launches);
    Ok(build(&snap, &a.thresholds, source, now()))
}

fn render(a: &Args, r: &Report) -> String {
    if a.json {
        // Serializing plain data cannot fail; fall back to an error object.
        let mut s = serde_json::to_string(r)
            .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()));
        s.push('\n');
        s
    } else {
        table(r, a.top)
    }
}

/// Runs a parsed command line; returns the exit code.
pub fn run(a: &Args) -> i32 {
    let fetch = match Client::new(&a.http, Duration::from_secs_f64(a.timeout)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("darklaunch-report: {e}");
            return EXIT_ERROR;
        }
    };
    if let Some(addr) = &a.serve {
        return serve(a, &fetch, addr);
    }
    let Some(interval) = a.watch else {
        return match collect(a, &fetch, &a.launches) {
            Ok(r) => {
                print!("{}", render(a, &r));
                let _ = std::io::stdout().flush();
                r.exit_code
            }
            Err(e) => {
                eprintln!("darklaunch-report: {e}");
                EXIT_ERROR
            }
        };
    };
    let mut n = 0u64;
    loop {
        n += 1;
        let mut out = String::new();
        if !a.json {
            // Cursor home, clear screen and scrollback.
            out.push_str("\x1b[H\x1b[2J\x1b[3J");
        }
        let code = match collect(a, &fetch, &a.launches) {
            Ok(r) => {
                out.push_str(&render(a, &r));
                r.exit_code
            }
            Err(e) => {
                if a.json {
                    let err = serde_json::json!({ "error": e, "exit_code": EXIT_ERROR });
                    out.push_str(&format!("{err}\n"));
                } else {
                    out.push_str(&format!("darklaunch-report: {e}\n"));
                }
                EXIT_ERROR
            }
        };
        let last = a.watch_count.is_some_and(|max| n >= max);
        if !a.json {
            out.push_str(&format!(
                "\nrefresh #{n}, every {interval}s{}\n",
                if last { "" } else { " — Ctrl-C to stop" }
            ));
        }
        print!("{out}");
        let _ = std::io::stdout().flush();
        if last {
            return code;
        }
        std::thread::sleep(Duration::from_secs_f64(interval));
    }
}

/// (path, `launch` query values). The query is
/// `application/x-www-form-urlencoded`: `+` is a space, `%XX` is decoded
/// only when both X are hex digits (else kept as is), then lossy UTF-8.
fn split_target(target: &str) -> (String, Vec<String>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let launches = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "launch")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
        .collect();
    (path.to_string(), launches)
}

/// (status, content type, body) for one `--serve` request.
pub fn answer(a: &Args, fetch: &dyn Fetch, target: &str) -> (u16, &'static str, String) {
    let (path, mut launches) = split_target(target);
    if launches.is_empty() {
        launches = a.launches.clone();
    }
    let json = "application/json";
    match path.as_str() {
        "/healthz" => (200, "text/plain", "ok\n".to_string()),
        "/" | "/report" | "/gate" => match collect(a, fetch, &launches) {
            Ok(r) => {
                let body = serde_json::to_string(&r)
                    .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()));
                let status = if path == "/gate" && !a.gate_accept.contains(&r.verdict) {
                    503
                } else {
                    200
                };
                (status, json, body)
            }
            Err(e) => {
                let body = serde_json::json!({ "error": e, "exit_code": EXIT_ERROR });
                let status = if path == "/gate" { 503 } else { 502 };
                (status, json, body.to_string())
            }
        },
        _ => (
            404,
            "text/plain",
            "not found: try /report, /gate or /healthz\n".to_string(),
        ),
    }
}

fn serve(a: &Args, fetch: &dyn Fetch, addr: &str) -> i32 {
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("darklaunch-report: --serve {addr}: {e}");
            return EXIT_ERROR;
        }
    };
    let local = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    eprintln!("darklaunch-report: serving on http://{local} (/report, /gate, /healthz)");
    serve::run(
        &listener,
        &serve::Limits::default(),
        &|req: &serve::Request| answer(a, fetch, &req.target),
    );
    EXIT_ERROR
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Result<Command, String> {
        parse_args(s.iter().map(|x| x.to_string()))
    }

    fn run_args(s: &[&str]) -> Args {
        match args(s).unwrap() {
            Command::Run(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parsing() {
        let a = run_args(&[
            "--envoy",
            "http://127.0.0.1:9901",
            "--envoy=http://127.0.0.1:9902",
            "--launch",
            "orders-v2",
            "--max-divergence",
            "0.02",
            "--max-error-delta=0.001",
            "--max-p95-ratio",
            "inf",
            "--min-compared",
            "50",
            "--json",
            "--watch",
            "--watch-count",
            "3",
        ]);
        assert_eq!(a.envoys.len(), 2);
        assert_eq!(a.launches, ["orders-v2"]);
        assert_eq!(a.thresholds.max_divergence, 0.02);
        assert_eq!(a.thresholds.max_error_delta, 0.001);
        assert!(a.thresholds.max_p95_ratio.is_infinite());
        assert_eq!(a.thresholds.min_compared, 50);
        assert!(a.json);
        assert_eq!((a.watch, a.watch_count), (Some(5.0), Some(3)));
        let w = run_args(&["--envoy-json", "f", "--watch", "0.5"]);
        assert_eq!(w.watch, Some(0.5));
        let c = run_args(&["--envoy-json", "f", "--watch-count", "2"]);
        assert_eq!(c.watch, Some(5.0));
        let p = run_args(&[
            "--prometheus",
            "http://p:9090",
            "--window",
            "1h",
            "--selector",
            "job=\"envoy\"",
            "--gate-accept",
            "pass,marginal",
        ]);
        assert_eq!(p.prom.window.as_deref(), Some("1h"));
        assert_eq!(p.gate_accept, [Verdict::Pass, Verdict::Marginal]);
        assert_eq!(args(&["--help"]), Ok(Command::Help));
        assert_eq!(args(&["--envoy", "http://x", "-V"]), Ok(Command::Version));
    }

    #[test]
    fn bad_arguments() {
        for bad in [
            &[][..],
            &["--envoy"],
            &["--envoy", "ftp://x"],
            &["--envoy", "http://x", "--prometheus", "http://y"],
            &["--envoy", "http://x", "--window", "1h"],
            &["--envoy", "http://x", "--max-divergence", "2"],
            &["--envoy", "http://x", "--max-divergence", "abc"],
            &["--envoy", "http://x", "--max-p95-ratio", "0"],
            &["--envoy", "http://x", "--p95-slack-ms", "-1"],
            &["--envoy", "http://x", "--min-compared", "-1"],
            &["--envoy", "http://x", "--watch", "0"],
            &["--envoy", "http://x", "--watch-count", "0"],
            &["--envoy", "http://x", "--serve", ":0", "--watch"],
            &["--envoy", "http://x", "--gate-accept", "ok"],
            &["--envoy", "http://x", "--json=1"],
            &["--envoy", "http://x", "--frobnicate"],
            &["--envoy", "http://x", "--header", "NoColon"],
            &["--envoy", "http://x", "--header", "Bad Name: v"],
            &["--envoy", "http://x", "--header", "Host: other"],
            &["--envoy", "http://x", "--header"],
            &[
                "--envoy",
                "http://x",
                "--bearer-token-file",
                "a",
                "--bearer-token-file",
                "b",
            ],
            &["--envoy", "http://x", "--ca-file", "a", "--ca-file", "b"],
            &["--envoy-json", "f", "--header", "X-A: 1"],
            &["--envoy-json", "f", "--ca-file", "ca.pem"],
            &["--envoy-json", "f", "--bearer-token-file", "t"],
            &[
                "--envoy",
                "http://x",
                "--bearer-token-file",
                "t",
                "--header",
                "authorization: Basic eDp5",
            ],
            &["--envoy", "https://u:p@x", "--bearer-token-file", "t"],
            &[
                "--envoy",
                "https://u:p@x",
                "--header",
                "Authorization: Bearer t",
            ],
            &["--envoy", "https://u:p@x", "--envoy", "https://u:q@x/"],
            &["--envoy", "https://u:p@x:notaport"],
        ] {
            assert!(args(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn http_flags() {
        let a = run_args(&[
            "--prometheus",
            "https://prom.monitoring:9090/",
            "--header",
            "X-Scope-OrgID: shop",
            "--header=X-B: a=b",
            "--bearer-token-file",
            "/var/run/secrets/kubernetes.io/serviceaccount/token",
            "--ca-file=/etc/ca.pem",
            "--timeout",
            "3",
        ]);
        assert_eq!(
            a.prometheus.as_deref(),
            Some("https://prom.monitoring:9090/")
        );
        assert_eq!(
            a.http.headers,
            [
                ("X-Scope-OrgID".to_string(), "shop".to_string()),
                ("X-B".into(), "a=b".into())
            ]
        );
        assert_eq!(
            a.http.bearer_token_file.as_deref(),
            Some("/var/run/secrets/kubernetes.io/serviceaccount/token")
        );
        assert_eq!(a.http.ca_file.as_deref(), Some("/etc/ca.pem"));
        assert!(a.http.basic_auth.is_empty());
        assert_eq!(a.timeout, 3.0);
        // user:password leaves the URLs (shown in messages and the report)
        // for basic auth of that origin; the same pair may be repeated.
        let b = run_args(&[
            "--envoy",
            "https://admin:p%40ss@Envoy-A:9901/",
            "--envoy",
            "https://admin:p%40ss@envoy-a:9901",
            "--envoy",
            "http://envoy-b:9901",
        ]);
        assert_eq!(
            b.envoys,
            [
                "https://Envoy-A:9901/",
                "https://envoy-a:9901",
                "http://envoy-b:9901"
            ]
        );
        assert_eq!(
            b.http.basic_auth,
            [BasicAuth {
                origin: "https://envoy-a:9901".into(),
                user: "admin".into(),
                password: "p@ss".into(),
            }]
        );
        let e = args(&["--envoy", "ftp://admin:secret@x"]).unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        let c = run_args(&["--envoy", "http://x", "--header", "Authorization: Bearer t"]);
        assert_eq!(c.http.headers.len(), 1);
    }

    #[test]
    fn query_strings() {
        let t = |target: &str| split_target(target);
        assert_eq!(t("/gate"), ("/gate".to_string(), vec![]));
        assert_eq!(
            t("/gate?launch=a+b&launch=c%5Fd&x=1&launch=&launch&launch=%FF"),
            (
                "/gate".to_string(),
                vec!["a b".to_string(), "c_d".into(), "\u{FFFD}".into()]
            )
        );
        // `%` not followed by two hex digits is kept as it is: `%+5` is not
        // byte 5 (u8::from_str_radix would take "+5"); the `+` is a space.
        assert_eq!(t("/r?launch=a%+5").1, ["a% 5"]);
        assert_eq!(t("/r?launch=a%-5").1, ["a%-5"]);
        assert_eq!(t("/r?launch=a%5").1, ["a%5"]);
        assert_eq!(t("/r?launch=%zz%").1, ["%zz%"]);
        assert_eq!(t("/r?launch=%C3%A9").1, ["é"]);
    }

    struct Fixture;
    impl Fetch for Fixture {
        fn get(&self, url: &str) -> Result<String, String> {
            if url.starts_with("http://envoy") {
                Ok(include_str!("../tests/fixtures/envoy_stats.json").to_string())
            } else {
                Err(format!("{url}: connection refused"))
            }
        }
    }

    #[test]
    fn serve_answers() {
        let mut a = run_args(&["--envoy", "http://envoy:9901", "--min-compared", "1"]);
        let (status, _, body) = answer(&a, &Fixture, "/report");
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["verdict"], "FAIL");
        assert_eq!(answer(&a, &Fixture, "/gate").0, 503);
        // search_v3: no compared pairs → INCONCLUSIVE; accept it for /gate.
        let (_, _, body) = answer(&a, &Fixture, "/gate?launch=search_v3");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["verdict"], "INCONCLUSIVE");
        assert_eq!(v["launches"].as_array().unwrap().len(), 1);
        a.gate_accept = vec![Verdict::Pass, Verdict::Inconclusive];
        assert_eq!(answer(&a, &Fixture, "/gate?launch=search%5Fv3").0, 200);
        assert_eq!(answer(&a, &Fixture, "/healthz").0, 200);
        assert_eq!(answer(&a, &Fixture, "/nope").0, 404);
        a.envoys = vec!["http://down:1".into()];
        assert_eq!(answer(&a, &Fixture, "/report").0, 502);
        assert_eq!(answer(&a, &Fixture, "/gate").0, 503);
    }
}
