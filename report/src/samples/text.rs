//! The text view: one block per kind of group, columns aligned.
//!
//! Values come from production traffic: control characters are shown
//! escaped (a value cannot move the cursor or recolour the terminal), and
//! long values are shortened.

use super::group::{status_name, View};
use super::sample::Difference;
use std::fmt::Write;

/// Longest value shown, in characters.
const VALUE: usize = 32;
/// Longest field or pointer shown.
const NAME: usize = 60;

/// `s` without control characters, at most `max` characters.
pub fn clean(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n >= max {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// A request id as `(req 5f0c1a2b…)`, with the launch when several are shown.
fn req(id: &str, launch: &str, launches: bool) -> String {
    let id = if id.is_empty() {
        "-".to_string()
    } else {
        clean(id, 8)
    };
    if launches {
        format!("(req {id}, {})", clean(launch, NAME))
    } else {
        format!("(req {id})")
    }
}

fn side(v: Option<&str>, redacted: bool) -> String {
    match (v, redacted) {
        (_, true) => "[redacted]".to_string(),
        (Some(v), false) => clean(v, VALUE),
        (None, false) => "(absent)".to_string(),
    }
}

/// `10.0 → 10.5`, `"EUR" → (absent)`, `[redacted] → [redacted]`.
pub fn change(d: &Difference) -> String {
    format!(
        "{} → {}",
        side(d.primary.as_deref(), d.redacted),
        side(d.dark.as_deref(), d.redacted)
    )
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Rows of cells, each column padded to its widest cell (the last one is
/// not padded), indented by two spaces.
fn columns(out: &mut String, rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let w = cell.chars().count();
            match widths.get_mut(i) {
                Some(old) => *old = (*old).max(w),
                None => widths.push(w),
            }
        }
    }
    for row in rows {
        let mut line = String::from(" ");
        for (i, cell) in row.iter().enumerate() {
            line.push(' ');
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths
                    .get(i)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(cell.chars().count());
                line.push_str(&" ".repeat(pad + 1));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

pub fn render(v: &View) -> String {
    let mut out = String::new();
    let many = v.summary.launches.len() > 1 && v.summary.launch_filter.len() != 1;
    let count = |n: usize| plural(n, "sample", "samples");
    let _ = writeln!(out, "darklaunch samples — {}", v.summary.sources.join(", "));
    if !v.fields.is_empty() {
        let _ = writeln!(out, "\nby field (samples whose statuses matched)");
        let mut rows = Vec::new();
        for g in &v.fields {
            let mut head = vec![clean(&g.field, NAME), count(g.samples), g.kinds.join(", ")];
            if g.examples.is_empty() {
                rows.push(std::mem::take(&mut head));
            }
            for e in &g.examples {
                let mut row = std::mem::take(&mut head);
                row.resize(3, String::new());
                row.push(clean(&e.difference.pointer, NAME));
                row.push(change(&e.difference));
                row.push(req(&e.origin.request_id, &e.origin.launch, many));
                rows.push(row);
            }
        }
        columns(&mut out, &rows);
    }
    if !v.headers.is_empty() {
        let _ = writeln!(out, "\nheaders (samples whose statuses matched)");
        let mut rows = Vec::new();
        for g in &v.headers {
            let mut head = vec![clean(&g.header, NAME), count(g.samples)];
            if g.examples.is_empty() {
                rows.push(std::mem::take(&mut head));
            }
            for e in &g.examples {
                let mut row = std::mem::take(&mut head);
                row.resize(2, String::new());
                row.push(format!(
                    "{} → {}",
                    side(e.primary.as_deref(), false),
                    side(e.dark.as_deref(), false)
                ));
                row.push(req(&e.origin.request_id, &e.origin.launch, many));
                rows.push(row);
            }
        }
        columns(&mut out, &rows);
    }
    if !v.statuses.is_empty() {
        let _ = writeln!(out, "\nstatus");
        let mut rows = Vec::new();
        for g in &v.statuses {
            let mut head = vec![status_name(g.primary, g.dark), count(g.samples)];
            if g.examples.is_empty() {
                rows.push(std::mem::take(&mut head));
            }
            for e in &g.examples {
                let mut row = std::mem::take(&mut head);
                row.resize(2, String::new());
                let o = &e.origin;
                row.push(format!("{} {}", clean(&o.method, 16), clean(&o.path, NAME)));
                row.push(req(&o.request_id, &o.launch, many));
                rows.push(row);
                for d in &e.differences {
                    rows.push(vec![
                        String::new(),
                        String::new(),
                        format!("  {}  {}", clean(&d.pointer, NAME), change(d)),
                    ]);
                }
            }
        }
        columns(&mut out, &rows);
    }
    if !v.shapes.is_empty() {
        let _ = writeln!(out, "\nby shape");
        let list = |l: &[String]| {
            if l.is_empty() {
                "-".to_string()
            } else {
                l.iter()
                    .map(|s| clean(s, NAME))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let rows: Vec<Vec<String>> = v
            .shapes
            .iter()
            .map(|g| {
                vec![
                    if g.shape.is_empty() {
                        "(none)".to_string()
                    } else {
                        clean(&g.shape, 16)
                    },
                    count(g.samples),
                    list(&g.kinds),
                    format!("fields {}", list(&g.fields)),
                    format!("headers {}", list(&g.headers)),
                    format!("first {}", req(&g.first_request_id, "", false)),
                ]
            })
            .collect();
        columns(&mut out, &rows);
    }
    if v.summary.samples == 0 {
        let _ = writeln!(out, "\nno samples");
    }
    let _ = writeln!(out, "\n{}", summary_line(v));
    out
}

/// `12 samples read (orders-v2 10, search-v3 2); 40 lines without a
/// sample; 1 bad line (on stderr)`.
pub fn summary_line(v: &View) -> String {
    let s = &v.summary;
    let mut line = plural(s.samples_read, "sample", "samples") + " read";
    if !s.launches.is_empty() {
        let per: Vec<String> = s
            .launches
            .iter()
            .map(|(l, n)| format!("{} {n}", clean(l, NAME)))
            .collect();
        let _ = write!(line, " ({})", per.join(", "));
    }
    if !s.launch_filter.is_empty() {
        let _ = write!(
            line,
            ", {} shown (--launch {})",
            s.samples,
            s.launch_filter.join(", ")
        );
    }
    let _ = write!(
        line,
        "; {} without a sample",
        plural(s.lines_without_sample as usize, "line", "lines")
    );
    let _ = write!(line, "; {}", plural(s.bad_lines, "bad line", "bad lines"));
    if s.bad_lines > 0 {
        line.push_str(" (listed on stderr)");
    }
    if s.unreadable > 0 {
        let _ = write!(
            line,
            "; {} could not be read",
            plural(s.unreadable, "source", "sources")
        );
    }
    if s.truncated > 0 {
        let _ = write!(
            line,
            "; {} cut by the filter to fit capture.max_bytes",
            plural(s.truncated, "sample", "samples")
        );
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::group::{build, tests::fixture};

    #[test]
    fn cleaned() {
        assert_eq!(clean("a\nb\x1b[31m\u{7f}", 40), "a\\nb\\u{1b}[31m\\u{7f}");
        assert_eq!(clean("0123456789", 4), "0123…");
        assert_eq!(clean("é€", 2), "é€");
    }

    #[test]
    fn the_view() {
        let text = render(&build(&fixture(), &[], 2));
        let expected = "\
darklaunch samples — t

by field (samples whose statuses matched)
  /items/*/price  3 samples  value, type  /items/3/price  10.0 → 10.5              (req r1, orders-v2)
                                          /items/0/price  3 → 3.5                  (req r2, orders-v2)
  /currency       1 sample   missing      /currency       \"EUR\" → (absent)         (req r2, orders-v2)
  /user/ssn       1 sample   value        /user/ssn       [redacted] → [redacted]  (req r5, orders-v2)

headers (samples whose statuses matched)
  x-cache    1 sample  (absent) → HIT  (req r5, orders-v2)
  x-version  1 sample  v1 → v2         (req r2, orders-v2)

status
  200 → 500  2 samples  GET /r/r4                    (req r4, search-v3)
                          /error  (absent) → \"boom\"
                        GET /r/r7                    (req r7, search-v3)
  404 → 200  1 sample   GET /r/r6                    (req r6, search-v3)

by shape
  00000010  3 samples  status         fields -                          headers -          first (req r4)
  00000011  2 samples  body           fields /items/*/price             headers -          first (req r1)
  00000021  1 sample   headers, body  fields /user/ssn                  headers x-cache    first (req r5)
  00000022  1 sample   headers, body  fields /currency, /items/*/price  headers x-version  first (req r2)

7 samples read (orders-v2 4, search-v3 3); 0 lines without a sample; 0 bad lines
";
        assert_eq!(text, expected, "\n{text}");
    }
}
