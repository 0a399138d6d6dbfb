//! `darklaunch-report samples [FILE...]`: reads the mismatch samples the
//! filter logs (`darklaunch sample {json}` lines of an Envoy log, or bare
//! JSON lines), or receives them over OTLP/HTTP (`--listen`), and shows
//! them grouped by field, header, status and shape, as text, JSON or one
//! HTML page.

pub mod group;
pub mod html;
pub mod otlp;
pub mod read;
pub mod sample;
pub mod text;

use crate::cli::{flag_value, number, split_flag};
use read::Collection;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

/// The input was read; bad lines (if any) are listed and counted.
pub const EXIT_OK: i32 = 0;
/// `--strict` and a bad line.
pub const EXIT_BAD_LINES: i32 = 1;
/// Bad arguments; a FILE that cannot be opened or read; the `--html` or
/// `--save` file cannot be written; the `--listen` address cannot be bound.
pub const EXIT_ERROR: i32 = crate::cli::EXIT_ERROR;

pub const HELP: &str = "\
darklaunch-report samples — group the mismatch samples darklaunch logs

USAGE
  darklaunch-report samples [OPTIONS] [FILE...]     (no FILE, or `-`: stdin)
  darklaunch-report samples --listen ADDR (--count N | --duration SECS) [--save FILE] [OPTIONS]

INPUT
  An Envoy log, `kubectl logs` output, or JSON lines. A line holding
  `darklaunch sample ` is a sample: the JSON after the first such marker.
  A line starting with `{` is a sample too (a bare JSON object), unless it
  is a JSON object with none of the keys v, launch, kinds, differences
  (another JSON log, e.g. an access log). Other lines are counted as lines
  without a sample. A sample line that cannot be read (truncated or
  invalid JSON, a field missing or of the wrong type, a format version
  other than 1, invalid UTF-8) or any line over 1048576 bytes is a bad
  line: `FILE:LINE: reason` on stderr (stdin is `-`), and reading goes on
  with the next line.

OUTPUT (stdout)
  by field   samples whose statuses matched, per folded pointer: count,
             kinds, examples `/items/3/price  10.0 → 10.5  (req 5f0c…)`
  headers    per differing response header: `x-version  v1 → v2`
  status     samples whose statuses differed, per `200 → 500`, with the
             body differences of the examples
  by shape   per shape: count, kinds, fields, headers, first request id
  and a summary: samples read per launch, lines without a sample, bad
  lines. Groups are ordered by count, largest first, then by name.

OPTIONS
  --launch L       only samples of launch L (repeatable)
  --examples N     examples per group in the text and JSON (default 3)
  --json           one JSON document (schema darklaunch-samples/v1, see
                   report/README.md) instead of the text
  --html FILE      also write one self-contained HTML page to FILE: each
                   sample's differences side by side, grouped, with a filter
  --strict         exit 1 when a line was bad
  -h, --help       this text

RECEIVING (OTLP/HTTP JSON, the filter's capture.cluster)
  --listen ADDR    receive instead of reading files, e.g. 127.0.0.1:4318
                   (port 0 picks one); `listening on http://ADDR` on stderr.
                   POST /v1/logs, content-type application/json, an
                   ExportLogsServiceRequest: each log record whose
                   body.stringValue is a sample is taken; answers 200 `{}`.
                   415 for protobuf (only JSON is accepted) or a compressed
                   body, 413 past 4 MiB, 411 for a chunked body (a
                   content-length is needed), 400 for a body that is not
                   an export, 404 other paths, 405 other methods.
  --count N        stop after N samples (all records of the last request
                   are kept)
  --duration SECS  stop after SECS seconds
                   (--listen needs at least one of the two; then the view
                   is printed as for files)
  --save FILE      append each sample as it arrives to FILE, as a
                   `darklaunch sample {json}` line: an interrupted run
                   loses nothing, and `samples FILE` reads it back

EXIT CODES
  0 the input was read (bad lines are listed on stderr and counted in the
    summary)   1 with --strict, a bad line   4 bad arguments, a FILE that
    cannot be opened or read (the others are still shown), an --html or
    --save file that cannot be written, an address that cannot be bound
";

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub files: Vec<String>,
    pub launches: Vec<String>,
    pub examples: usize,
    pub json: bool,
    pub html: Option<String>,
    pub strict: bool,
    pub listen: Option<String>,
    pub count: Option<u64>,
    pub duration: Option<f64>,
    pub save: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            files: Vec::new(),
            launches: Vec::new(),
            examples: 3,
            json: false,
            html: None,
            strict: false,
            listen: None,
            count: None,
            duration: None,
            save: None,
        }
    }
}

fn once(slot: &mut Option<String>, flag: &str, v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err(format!("{flag} needs a value"));
    }
    if slot.replace(v.to_string()).is_some() {
        return Err(format!("{flag} can be given once"));
    }
    Ok(())
}

/// `None`: help was asked for.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Options>, String> {
    let mut o = Options::default();
    let mut only_files = false;
    let mut it = args.into_iter();
    while let Some(raw) = it.next() {
        if only_files || raw == "-" || !raw.starts_with('-') {
            o.files.push(raw);
            continue;
        }
        let (flag, inline) = split_flag(&raw);
        let takes_value = matches!(
            flag.as_str(),
            "--launch" | "--examples" | "--html" | "--listen" | "--count" | "--duration" | "--save"
        );
        let value = flag_value(&flag, inline, takes_value, &mut it)?;
        let v = value.as_str();
        match flag.as_str() {
            "--" => only_files = true,
            "-h" | "--help" => return Ok(None),
            "--json" => o.json = true,
            "--strict" => o.strict = true,
            "--launch" => {
                if v.is_empty() {
                    return Err("--launch needs a launch name".into());
                }
                o.launches.push(v.to_string());
            }
            "--examples" => o.examples = number(&flag, v)?,
            "--html" => once(&mut o.html, &flag, v)?,
            "--listen" => once(&mut o.listen, &flag, v)?,
            "--save" => once(&mut o.save, &flag, v)?,
            "--count" => {
                let n: u64 = number(&flag, v)?;
                if n == 0 {
                    return Err("--count must be at least 1".into());
                }
                o.count = Some(n);
            }
            "--duration" => {
                let secs: f64 = number(&flag, v)?;
                if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
                    return Err("--duration must be a positive number of seconds".into());
                }
                o.duration = Some(secs);
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if o.listen.is_some() {
        if !o.files.is_empty() {
            return Err("--listen receives samples: give no FILE".into());
        }
        if o.count.is_none() && o.duration.is_none() {
            return Err("--listen needs --count N or --duration SECS (or both)".into());
        }
    } else {
        for (set, flag) in [
            (o.count.is_some(), "--count"),
            (o.duration.is_some(), "--duration"),
            (o.save.is_some(), "--save"),
        ] {
            if set {
                return Err(format!("{flag} goes with --listen"));
            }
        }
    }
    Ok(Some(o))
}

/// The `samples` subcommand, from the arguments after `samples`.
pub fn main<I: IntoIterator<Item = String>>(args: I) -> i32 {
    match parse_args(args) {
        Ok(None) => {
            print!("{HELP}");
            EXIT_OK
        }
        Ok(Some(o)) => {
            let stdout = std::io::stdout();
            let stdin = std::io::stdin();
            // stderr is not locked here: --listen's connection threads
            // write bad records to it while this thread waits.
            run(
                &o,
                &mut stdout.lock(),
                &mut std::io::stderr(),
                &mut stdin.lock(),
            )
        }
        Err(e) => {
            eprintln!("darklaunch-report samples: {e}");
            eprintln!("run `darklaunch-report samples --help` for usage");
            EXIT_ERROR
        }
    }
}

/// Reads the inputs (files, `-` for `stdin`), prints the view on `out`,
/// bad lines on `err`; returns the exit code.
pub fn run(o: &Options, out: &mut dyn Write, err: &mut dyn Write, stdin: &mut dyn BufRead) -> i32 {
    let mut failed = false;
    let c = if let Some(addr) = &o.listen {
        match listen(o, addr, err) {
            Ok((c, ok)) => {
                failed |= !ok;
                c
            }
            Err(e) => {
                let _ = writeln!(err, "darklaunch-report samples: {e}");
                return EXIT_ERROR;
            }
        }
    } else {
        read_files(o, err, stdin)
    };
    failed |= c.unreadable > 0;
    let view = group::build(&c, &o.launches, o.examples);
    if let Some(path) = &o.html {
        match std::fs::write(path, html::page(&view, &c.samples)) {
            Ok(()) => {
                let _ = writeln!(err, "darklaunch-report samples: wrote {path}");
            }
            Err(e) => {
                let _ = writeln!(err, "darklaunch-report samples: --html {path}: {e}");
                failed = true;
            }
        }
    }
    let rendered = if o.json {
        let mut s = serde_json::to_string_pretty(&view)
            .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()));
        s.push('\n');
        s
    } else {
        text::render(&view)
    };
    let _ = out.write_all(rendered.as_bytes());
    let _ = out.flush();
    if failed {
        EXIT_ERROR
    } else if o.strict && view.summary.bad_lines > 0 {
        EXIT_BAD_LINES
    } else {
        EXIT_OK
    }
}

fn read_files(o: &Options, err: &mut dyn Write, stdin: &mut dyn BufRead) -> Collection {
    let mut c = Collection::default();
    let stdin_only = ["-".to_string()];
    let files = if o.files.is_empty() {
        &stdin_only[..]
    } else {
        &o.files[..]
    };
    for name in files {
        if name == "-" {
            c.read("-", stdin, err);
            continue;
        }
        match std::fs::File::open(name) {
            Ok(f) => c.read(name, &mut BufReader::with_capacity(64 << 10, f), err),
            Err(e) => {
                c.sources.push(name.clone());
                c.unreadable(name, None, &e, err);
            }
        }
    }
    c
}

/// Runs the receiver; the samples, and false if `--save` failed.
fn listen(o: &Options, addr: &str, err: &mut dyn Write) -> Result<(Collection, bool), String> {
    let save = match &o.save {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("--save {path}: {e}"))?,
        ),
        None => None,
    };
    let listener = TcpListener::bind(addr).map_err(|e| format!("--listen {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    let url = format!("http://{local}{}", otlp::PATH);
    let _ = writeln!(
        err,
        "darklaunch-report samples: listening on http://{local} (POST {}, OTLP/HTTP JSON)",
        otlp::PATH
    );
    let _ = err.flush();
    let receiver = otlp::Receiver::new(url, save, o.count);
    otlp::receive(
        &listener,
        &receiver,
        o.duration.map(Duration::from_secs_f64),
    );
    let ok = !receiver
        .save_failed
        .load(std::sync::atomic::Ordering::Acquire);
    let c = receiver
        .collection
        .into_inner()
        .map_err(|_| "the receiver's state was lost".to_string())?;
    Ok((c, ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Result<Option<Options>, String> {
        parse_args(s.iter().map(|x| x.to_string()))
    }

    #[test]
    fn arguments() {
        assert_eq!(args(&["--help"]), Ok(None));
        let o = args(&[
            "a.log",
            "-",
            "--launch",
            "x",
            "--launch=y",
            "--examples",
            "0",
            "--json",
            "--html",
            "o.html",
            "--strict",
            "--",
            "--odd",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(o.files, ["a.log", "-", "--odd"]);
        assert_eq!(o.launches, ["x", "y"]);
        assert_eq!((o.examples, o.json, o.strict), (0, true, true));
        assert_eq!(o.html.as_deref(), Some("o.html"));
        let l = args(&[
            "--listen",
            "127.0.0.1:0",
            "--count",
            "3",
            "--duration=2.5",
            "--save",
            "s.log",
        ])
        .unwrap()
        .unwrap();
        assert_eq!((l.count, l.duration), (Some(3), Some(2.5)));
        assert_eq!(args(&[]).unwrap().unwrap().files, Vec::<String>::new());
        for bad in [
            &["--bogus"][..],
            &["--examples", "-1"],
            &["--examples"],
            &["--json=1"],
            &["--launch", ""],
            &["--html", "a", "--html", "b"],
            &["--listen", ":0"],
            &["--listen", ":0", "--count", "0"],
            &["--listen", ":0", "--duration", "0"],
            &["--listen", ":0", "--duration", "nan"],
            &["--listen", ":0", "--count", "1", "f.log"],
            &["--count", "1"],
            &["--duration", "1"],
            &["--save", "s.log"],
        ] {
            assert!(args(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
