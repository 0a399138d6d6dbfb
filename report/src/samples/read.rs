//! Finding samples in text: bounded lines, the `darklaunch sample ` marker
//! or a bare JSON object, and what was read (samples, bad lines, counts).

use super::sample::{self, Sample};
use serde::Serialize;
use std::io::{BufRead, Write};

/// What precedes a sample's JSON in an Envoy log line.
pub const MARKER: &[u8] = b"darklaunch sample ";
/// Longest line read, newline excluded: a longer one is skipped without
/// being held in memory.
pub const MAX_LINE: usize = 1 << 20;

/// One line of input.
#[derive(Debug, PartialEq)]
pub enum Line {
    /// Without its `\n` (and `\r`).
    Text(Vec<u8>),
    /// Longer than the bound: skipped up to its newline.
    TooLong,
}

/// Reads lines of at most `max` bytes from `r`.
pub struct Lines<R> {
    r: R,
    max: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    pub fn new(r: R, max: usize) -> Lines<R> {
        Lines {
            r,
            max,
            buf: Vec::new(),
        }
    }

    /// The next line; `None` at the end of the input.
    pub fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        self.buf.clear();
        let mut started = false;
        let mut too_long = false;
        loop {
            let chunk = match self.r.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                // End of input: a last line without a newline still counts.
                return Ok(started.then(|| self.finish(too_long)));
            }
            started = true;
            let newline = chunk.iter().position(|b| *b == b'\n');
            let part = chunk.get(..newline.unwrap_or(chunk.len())).unwrap_or(chunk);
            // One byte of slack for a `\r` before the newline.
            if !too_long && self.buf.len() + part.len() > self.max + 1 {
                too_long = true;
                self.buf = Vec::new();
            }
            if !too_long {
                self.buf.extend_from_slice(part);
            }
            let used = newline.map_or(chunk.len(), |i| i + 1);
            self.r.consume(used);
            if newline.is_some() {
                return Ok(Some(self.finish(too_long)));
            }
        }
    }

    fn finish(&mut self, too_long: bool) -> Line {
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if too_long || self.buf.len() > self.max {
            self.buf = Vec::new();
            Line::TooLong
        } else {
            Line::Text(std::mem::take(&mut self.buf))
        }
    }
}

/// Where the sample's JSON starts in `line`, if the line holds one: after
/// the first marker (`true`), or the line itself when it starts with `{`
/// after whitespace (`false`: a bare object).
pub fn json_start(line: &[u8]) -> Option<(usize, bool)> {
    if let Some(i) = line.windows(MARKER.len()).position(|w| w == MARKER) {
        return Some((i + MARKER.len(), true));
    }
    let first = line.iter().position(|b| !b.is_ascii_whitespace())?;
    (line.get(first) == Some(&b'{')).then_some((first, false))
}

/// Keys of which a bare JSON object needs one to be taken for a sample:
/// other JSON lines (Envoy's JSON access logs, an application's JSON log)
/// are lines without a sample, not bad lines.
const SAMPLE_KEYS: [&str; 4] = ["v", "launch", "kinds", "differences"];

/// False for a JSON object with none of [`SAMPLE_KEYS`]; true for one
/// with any, and for text that is not JSON (it may be a cut sample).
fn sample_like(text: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(m)) => SAMPLE_KEYS.iter().any(|k| m.contains_key(*k)),
        Ok(_) | Err(_) => true,
    }
}

/// What one line (or log record) held.
#[derive(Debug, PartialEq)]
pub enum Found {
    Nothing,
    /// The sample and its JSON text.
    Sample(Box<Sample>, String),
    Bad(String),
}

/// Looks for a sample in one line.
pub fn find(line: &[u8]) -> Found {
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let Some((start, marked)) = json_start(line) else {
        return Found::Nothing;
    };
    let json = line.get(start..).unwrap_or_default();
    let json = json.trim_ascii_end();
    let text = match std::str::from_utf8(json) {
        Ok(t) => t,
        Err(_) if !marked && !sample_like(&String::from_utf8_lossy(json)) => return Found::Nothing,
        Err(e) => {
            return Found::Bad(format!(
                "invalid UTF-8 at byte {} of the line",
                start + e.valid_up_to() + 1
            ))
        }
    };
    if !marked && !sample_like(text) {
        return Found::Nothing;
    }
    match sample::parse(text, start) {
        Ok(s) => Found::Sample(Box::new(s), text.to_string()),
        Err(e) => Found::Bad(e),
    }
}

/// A line (or record) that held no readable sample, or an input that
/// could not be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadLine {
    /// The file (`-`: stdin), or the request of `--listen`.
    pub source: String,
    /// 1-based; `None` when the whole source is at fault.
    pub line: Option<u64>,
    pub message: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(n) => write!(f, "{}:{n}: {}", self.source, self.message),
            None => write!(f, "{}: {}", self.source, self.message),
        }
    }
}

/// Everything read so far.
#[derive(Debug, Default)]
pub struct Collection {
    pub samples: Vec<Sample>,
    pub bad: Vec<BadLine>,
    /// Files read, `-` for stdin, or the `--listen` URL.
    pub sources: Vec<String>,
    /// Lines (or log records) read.
    pub lines: u64,
    pub without_sample: u64,
    /// Sources that could not be read (to the end).
    pub unreadable: usize,
}

impl Collection {
    /// Takes one line (or log record); a bad one is also written to `err`.
    /// Returns the sample's JSON text when there was one.
    pub fn add(
        &mut self,
        source: &str,
        line: Option<u64>,
        bytes: &[u8],
        err: &mut dyn Write,
    ) -> Option<String> {
        self.lines += 1;
        match find(bytes) {
            Found::Nothing => {
                self.without_sample += 1;
                None
            }
            Found::Sample(s, json) => {
                self.samples.push(*s);
                Some(json)
            }
            Found::Bad(message) => {
                self.bad_line(source, line, message, err);
                None
            }
        }
    }

    pub fn bad_line(
        &mut self,
        source: &str,
        line: Option<u64>,
        message: String,
        err: &mut dyn Write,
    ) {
        let bad = BadLine {
            source: source.to_string(),
            line,
            message,
        };
        let _ = writeln!(err, "{bad}");
        self.bad.push(bad);
    }

    /// Reads every line of `r`, named `name` in messages. An error reading
    /// is recorded (and written to `err`); what came before it is kept.
    pub fn read(&mut self, name: &str, r: &mut dyn BufRead, err: &mut dyn Write) {
        self.sources.push(name.to_string());
        let mut lines = Lines::new(r, MAX_LINE);
        let mut n = 0u64;
        loop {
            match lines.next_line() {
                Ok(None) => return,
                Ok(Some(Line::Text(bytes))) => {
                    n += 1;
                    self.add(name, Some(n), &bytes, err);
                }
                Ok(Some(Line::TooLong)) => {
                    n += 1;
                    self.lines += 1;
                    let message = format!("line longer than {MAX_LINE} bytes, skipped");
                    self.bad_line(name, Some(n), message, err);
                }
                Err(e) => {
                    self.unreadable(name, Some(n + 1), &e, err);
                    return;
                }
            }
        }
    }

    /// A source that could not be opened (`line` `None`) or read.
    pub fn unreadable(
        &mut self,
        name: &str,
        line: Option<u64>,
        e: &std::io::Error,
        err: &mut dyn Write,
    ) {
        self.unreadable += 1;
        let message = if line.is_some() {
            format!("read error: {e}")
        } else {
            format!("cannot read: {e}")
        };
        self.bad_line(name, line, message, err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::sample::tests::EXAMPLE;

    fn lines(input: &[u8], max: usize) -> Vec<Line> {
        // A small buffer, so lines span several fill_buf calls.
        let mut l = Lines::new(std::io::BufReader::with_capacity(7, input), max);
        let mut out = Vec::new();
        while let Some(line) = l.next_line().unwrap() {
            out.push(line);
        }
        out
    }

    fn text(s: &str) -> Line {
        Line::Text(s.as_bytes().to_vec())
    }

    #[test]
    fn bounded_lines() {
        assert_eq!(lines(b"", 10), []);
        assert_eq!(lines(b"\n", 10), [text("")]);
        assert_eq!(
            lines(b"a\r\nbb\n\nccc", 10),
            [text("a"), text("bb"), text(""), text("ccc")]
        );
        // Exactly the bound passes, with or without \r; one more does not,
        // and reading goes on at the next line.
        assert_eq!(
            lines(b"0123456789\r\n01234567890\nok\n0123456789A", 10),
            [text("0123456789"), Line::TooLong, text("ok"), Line::TooLong]
        );
        assert_eq!(lines(&[b'x'; 100], 10), [Line::TooLong]);
        assert_eq!(lines(b"0123456789\r", 10), [text("0123456789")]);
    }

    #[test]
    fn markers_and_bare_objects() {
        assert_eq!(json_start(b"x darklaunch sample {}"), Some((20, true)));
        assert_eq!(json_start(b"  {\"v\":1}"), Some((2, false)));
        // The first marker wins, even when the line starts with `{`.
        assert_eq!(
            json_start(b"{darklaunch sample darklaunch sample {"),
            Some((19, true))
        );
        assert_eq!(json_start(b"darklaunch mismatch {}"), None);
        assert_eq!(json_start(b"[info] {"), None);
        assert_eq!(json_start(b""), None);
        let envoy = format!(
            "[2026-12-01 00:12:03.123][41][info][wasm] [source/extensions/common/wasm/context.cc:1192] wasm log darklaunch darklaunch: darklaunch sample {EXAMPLE}\r"
        );
        assert!(
            matches!(find(envoy.as_bytes()), Found::Sample(s, json) if s.launch == "orders-v2" && json == EXAMPLE)
        );
        let bom = format!("\u{feff}{EXAMPLE}");
        assert!(matches!(find(bom.as_bytes()), Found::Sample(..)));
        assert_eq!(find(b"[info] starting workers"), Found::Nothing);
        // Other JSON lines are not samples; a sample's key makes one.
        let access = br#"{"start_time":"2026-12-01T00:12:03.123Z","method":"GET","path":"/orders/7","response_code":200}"#;
        assert_eq!(find(access), Found::Nothing);
        assert_eq!(find(b"{\"msg\":\"\xff\"}"), Found::Nothing);
        assert!(
            matches!(find(br#"{"launch":"l"}"#), Found::Bad(m) if m == "not a sample: missing field `v`")
        );
        assert!(
            matches!(find(b"{\"v\":1,\"launch\":\"\xff\"}"), Found::Bad(m) if m.starts_with("invalid UTF-8"))
        );
        assert!(matches!(find(br#"{"v":1,"launch"#), Found::Bad(m) if m.starts_with("truncated")));
        // After the marker, anything that is not a sample is bad.
        assert!(matches!(
            find(br#"darklaunch sample {"msg":"x"}"#),
            Found::Bad(_)
        ));
    }

    #[test]
    fn bad_lines() {
        let bad = |line: &[u8]| match find(line) {
            Found::Bad(m) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            bad(b"pfx darklaunch sample {\"v\":1,\"la"),
            "truncated sample JSON (EOF while parsing a string at column 32)"
        );
        assert!(bad(b"darklaunch sample garbage")
            .starts_with("invalid sample JSON: expected value at column 19"));
        assert_eq!(
            bad(b"darklaunch sample "),
            "truncated sample JSON (EOF while parsing a value at column 18)"
        );
        let mut utf8 = b"darklaunch sample {\"v\":1,\"launch\":\"".to_vec();
        utf8.extend_from_slice(b"\xff\xfe\"}");
        assert_eq!(bad(&utf8), "invalid UTF-8 at byte 36 of the line");
        // Deep nesting is refused by the parser, not by the stack.
        let deep = format!("darklaunch sample {{\"v\":{}", "[".repeat(100_000));
        assert!(bad(deep.as_bytes()).starts_with("invalid sample JSON: recursion limit exceeded"));
        let deep = format!("{{\"v\":{}", "{\"a\":".repeat(100_000));
        assert!(bad(deep.as_bytes()).contains("recursion limit exceeded"));
    }

    #[test]
    fn collection_counts_and_reports() {
        let mut input =
            format!("[info] up\n{EXAMPLE}\r\ndarklaunch sample {{\"v\":2}}\n").into_bytes();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 1));
        input.extend_from_slice(b"\nlast darklaunch sample ");
        input.extend_from_slice(EXAMPLE.as_bytes());
        let mut c = Collection::default();
        let mut err = Vec::new();
        c.read("f.log", &mut &input[..], &mut err);
        assert_eq!((c.lines, c.without_sample, c.samples.len()), (5, 1, 2));
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "f.log:3: sample format version 2 is not supported (this darklaunch-report reads version 1)\n\
             f.log:4: line longer than 1048576 bytes, skipped\n"
        );
        assert_eq!(c.bad.len(), 2);
        assert_eq!(c.unreadable, 0);
    }
}
