//! `--html FILE`: one self-contained page (inline CSS and script, nothing
//! fetched) with each sample's differences side by side, grouped like the
//! text view, and a filter box.
//!
//! Every value comes from production traffic and is HTML-escaped; the
//! grouped view is also embedded as JSON in a `<script
//! type="application/json">` block, where `<`, `>` and `&` are written as
//! `\u003c`, `\u003e`, `\u0026` so that no value can close the block.
//!
//! Stable hooks for tests and scripts: groups are `section.group` (or
//! `tr.group` for shapes) with `data-group` (`field`, `header`, `status`,
//! `shape`) and `data-field` / `data-header` / `data-status` /
//! `data-shape`; each sample is an `article.sample` with `data-launch` and
//! `data-request-id`, holding a `table.diff` whose cells are `td.primary`
//! and `td.dark`.

use super::group::{status_name, View};
use super::sample::{Difference, Sample};
use std::fmt::Write;

/// Samples shown per group; the rest are counted.
pub const MAX_PER_GROUP: usize = 200;

/// `s` escaped for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON text made safe inside `<script>`: no `<`, `>` or `&` at all.
pub fn script_json(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

const STYLE: &str = r#"
:root { --primary: #fdecea; --dark: #e8f5e9; --line: #d0d7de; --muted: #57606a; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1f2328; background: #fff; }
header.page { position: sticky; top: 0; background: #f6f8fa; border-bottom: 1px solid var(--line); padding: 12px 20px; z-index: 1; }
header.page h1 { font-size: 18px; margin: 0 0 4px; }
#filter { width: 28em; max-width: 100%; padding: 5px 8px; font: inherit; border: 1px solid var(--line); border-radius: 6px; }
#shown, .summary { color: var(--muted); margin-left: 8px; }
main { padding: 8px 20px 40px; }
h2 { font-size: 16px; border-bottom: 1px solid var(--line); padding-bottom: 4px; margin-top: 28px; }
section.group { margin: 14px 0 22px; }
section.group > h3 { font-size: 15px; margin: 0 0 6px; }
.count, .kinds, .launches { color: var(--muted); font-weight: normal; margin-left: 8px; }
article.sample { border: 1px solid var(--line); border-radius: 6px; margin: 8px 0; padding: 8px 10px; }
.sample-head { color: var(--muted); margin-bottom: 6px; }
.sample-head .method, .sample-head .path { color: #1f2328; font-family: ui-monospace, monospace; }
.flag { background: #fff8c5; border-radius: 4px; padding: 0 4px; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th, td { border: 1px solid var(--line); padding: 3px 6px; vertical-align: top; text-align: left; }
table.diff th.where { width: 28%; font-weight: normal; }
table.diff td.kind { width: 9em; color: var(--muted); }
td.primary, div.primary { background: var(--primary); }
td.dark, div.dark { background: var(--dark); }
tr.same td.primary, tr.same td.dark { background: none; }
tr.difference:not(.focus) { opacity: .6; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; white-space: pre-wrap; word-break: break-all; margin: 0; }
.absent, .redacted { color: var(--muted); font-style: italic; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; margin-top: 6px; }
.pair > div { padding: 6px; border-radius: 4px; overflow: auto; max-height: 30em; }
.pair h5 { margin: 0 0 4px; font-size: 12px; color: var(--muted); }
details { margin-top: 6px; }
.more, .omitted { color: var(--muted); font-style: italic; }
table.shapes td, table.shapes th { font-size: 13px; }
ul.errors { font-family: ui-monospace, monospace; font-size: 12.5px; }
"#;

const SCRIPT: &str = r#"
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("darklaunch-samples").textContent);
  var input = document.getElementById("filter");
  var shown = document.getElementById("shown");
  var groups = Array.prototype.slice.call(document.querySelectorAll(".group"));
  function has(el, q) {
    return (el.getAttribute("data-search") || "").toLowerCase().indexOf(q) >= 0;
  }
  function apply() {
    var q = input.value.trim().toLowerCase();
    var visible = 0;
    groups.forEach(function (g) {
      var own = has(g, q);
      var any = false;
      Array.prototype.forEach.call(g.querySelectorAll(".sample"), function (s) {
        var hit = own || has(s, q);
        s.hidden = !hit;
        if (hit) { any = true; }
      });
      g.hidden = !(own || any);
      if (!g.hidden) { visible += 1; }
    });
    // A kind of group with nothing left to show hides its heading too.
    Array.prototype.forEach.call(document.querySelectorAll("section.groups"), function (sec) {
      sec.hidden = sec.querySelector(".group:not([hidden])") === null;
    });
    shown.textContent = visible + " of " + groups.length + " groups shown · " +
      data.summary.samples + " samples";
    document.body.setAttribute("data-filter", q);
  }
  input.addEventListener("input", apply);
  var m = /[#&]q=([^&]*)/.exec(window.location.hash);
  if (m) { input.value = decodeURIComponent(m[1]); }
  apply();
  document.body.setAttribute("data-ready", "true");
})();
"#;

/// A value cell: the JSON text, `(absent)` or `[redacted]`.
fn value(v: Option<&str>, redacted: bool) -> String {
    match (v, redacted) {
        (_, true) => "<span class=\"redacted\">[redacted]</span>".to_string(),
        (Some(v), false) => format!("<code>{}</code>", escape(v)),
        (None, false) => "<span class=\"absent\">(absent)</span>".to_string(),
    }
}

/// A body, pretty-printed when it is JSON.
fn body(b: &str) -> String {
    let pretty = serde_json::from_str::<serde_json::Value>(b)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok());
    escape(pretty.as_deref().unwrap_or(b))
}

fn difference_row(out: &mut String, d: &Difference, focus: Option<&str>) {
    let class = if focus.is_none_or(|f| f == d.group()) {
        "difference focus"
    } else {
        "difference"
    };
    let _ = writeln!(
        out,
        "<tr class=\"{class}\" data-field=\"{}\" data-pointer=\"{}\"><th class=\"where\"><code>{}</code></th><td class=\"kind\">{}</td><td class=\"primary\">{}</td><td class=\"dark\">{}</td></tr>",
        escape(d.group()),
        escape(&d.pointer),
        escape(&d.pointer),
        escape(&d.kind),
        value(d.primary.as_deref(), d.redacted),
        value(d.dark.as_deref(), d.redacted),
    );
}

/// One sample, its differences side by side; `focus`: the field of the
/// group it is shown in (its other differences are dimmed).
fn sample(out: &mut String, s: &Sample, focus: Option<&str>) {
    let mut search = vec![
        s.launch.as_str(),
        s.request_id.as_str(),
        s.method.as_str(),
        s.path.as_str(),
    ];
    search.extend(s.fields.iter().map(String::as_str));
    search.extend(s.headers.iter().map(String::as_str));
    search.extend(s.differences.iter().map(Difference::group));
    let _ = writeln!(
        out,
        "<article class=\"sample\" data-launch=\"{}\" data-request-id=\"{}\" data-shape=\"{}\" data-search=\"{}\">",
        escape(&s.launch),
        escape(&s.request_id),
        escape(&s.shape),
        escape(&search.join(" "))
    );
    let _ = write!(
        out,
        "<div class=\"sample-head\"><span class=\"method\">{}</span> <span class=\"path\">{}</span>",
        escape(&s.method),
        escape(&s.path)
    );
    if let Some(q) = &s.query {
        let _ = write!(out, "<span class=\"query\">?{}</span>", escape(q));
    }
    let _ = write!(
        out,
        " · launch <span class=\"launch\">{}</span> · req <span class=\"request-id\">{}</span>",
        escape(&s.launch),
        escape(if s.request_id.is_empty() {
            "-"
        } else {
            &s.request_id
        })
    );
    if !s.time.is_empty() {
        let _ = write!(out, " · <span class=\"time\">{}</span>", escape(&s.time));
    }
    if !s.shape.is_empty() {
        let _ = write!(
            out,
            " · shape <span class=\"shape\">{}</span>",
            escape(&s.shape)
        );
    }
    if s.truncated {
        out.push_str(" <span class=\"flag\">truncated</span>");
    }
    out.push_str("</div>\n");
    out.push_str("<table class=\"diff\"><thead><tr><th class=\"where\">where</th><th class=\"kind\">kind</th><th>primary</th><th>dark</th></tr></thead><tbody>\n");
    let status_class = if s.primary.status == s.dark.status {
        "status same"
    } else {
        "status differs"
    };
    let _ = writeln!(
        out,
        "<tr class=\"{status_class}\"><th class=\"where\">status</th><td class=\"kind\"></td><td class=\"primary\"><code>{}</code></td><td class=\"dark\"><code>{}</code></td></tr>",
        s.primary.status, s.dark.status
    );
    let mut names: Vec<&String> = s
        .primary
        .headers
        .keys()
        .chain(s.dark.headers.keys())
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let (a, b) = (s.primary.headers.get(name), s.dark.headers.get(name));
        let class = if s.headers.contains(name) || a != b {
            "header differs"
        } else {
            "header same"
        };
        let _ = writeln!(
            out,
            "<tr class=\"{class}\" data-header=\"{}\"><th class=\"where\"><code>{}</code></th><td class=\"kind\">header</td><td class=\"primary\">{}</td><td class=\"dark\">{}</td></tr>",
            escape(name),
            escape(name),
            value(a.map(String::as_str), false),
            value(b.map(String::as_str), false),
        );
    }
    for d in &s.differences {
        difference_row(out, d, focus);
    }
    out.push_str("</tbody></table>\n");
    if s.differences_omitted > 0 {
        let _ = writeln!(
            out,
            "<p class=\"omitted\">{} more differences left out by the filter to fit capture.max_bytes</p>",
            s.differences_omitted
        );
    }
    if s.primary.body.is_some() || s.dark.body.is_some() {
        out.push_str(
            "<details class=\"bodies\" open><summary>response bodies <span class=\"count\">(JSON re-indented, keys sorted)</span></summary><div class=\"pair\">",
        );
        for (class, b) in [("primary", &s.primary.body), ("dark", &s.dark.body)] {
            let _ = write!(out, "<div class=\"{class}\"><h5>{class}</h5>");
            match b {
                Some(b) => {
                    let _ = write!(out, "<pre>{}</pre>", body(b));
                }
                None => out.push_str("<span class=\"absent\">(not captured)</span>"),
            }
            out.push_str("</div>");
        }
        out.push_str("</div></details>\n");
    }
    if !s.request_headers.is_empty() || s.request_body.is_some() {
        out.push_str("<details class=\"request\"><summary>request</summary>");
        if !s.request_headers.is_empty() {
            out.push_str("<table class=\"request-headers\"><tbody>");
            for (n, v) in &s.request_headers {
                let _ = write!(
                    out,
                    "<tr><th><code>{}</code></th><td><code>{}</code></td></tr>",
                    escape(n),
                    escape(v)
                );
            }
            out.push_str("</tbody></table>");
        }
        if let Some(b) = &s.request_body {
            let _ = write!(out, "<pre class=\"request-body\">{}</pre>", body(b));
        }
        out.push_str("</details>\n");
    }
    out.push_str("</article>\n");
}

/// The samples of one group (up to [`MAX_PER_GROUP`]).
fn members(out: &mut String, all: &[Sample], members: &[usize], focus: Option<&str>) {
    for s in members
        .iter()
        .take(MAX_PER_GROUP)
        .filter_map(|&i| all.get(i))
    {
        sample(out, s, focus);
    }
    if members.len() > MAX_PER_GROUP {
        let _ = writeln!(
            out,
            "<p class=\"more\">{} more samples not shown</p>",
            members.len() - MAX_PER_GROUP
        );
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The whole page.
pub fn page(v: &View, all: &[Sample]) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<title>darklaunch samples</title>\n<style>");
    out.push_str(STYLE);
    out.push_str("</style></head>\n<body>\n<header class=\"page\"><h1>darklaunch samples</h1>\n");
    out.push_str("<input type=\"search\" id=\"filter\" placeholder=\"filter by field, header, status or launch\" autocomplete=\"off\" aria-label=\"filter\">");
    out.push_str("<span id=\"shown\"></span>\n");
    let _ = writeln!(
        out,
        "<p class=\"summary\" id=\"summary\">{}</p></header>\n<main>",
        escape(&super::text::summary_line(v))
    );
    let count = |n: usize| plural(n, "sample", "samples");
    if !v.fields.is_empty() {
        out.push_str("<section class=\"groups\" id=\"by-field\"><h2>By field <span class=\"count\">samples whose statuses matched</span></h2>\n");
    }
    for g in &v.fields {
        let search = format!("{} {}", g.field, g.launches.join(" "));
        let _ = writeln!(
            out,
            "<section class=\"group field-group\" data-group=\"field\" data-field=\"{}\" data-launches=\"{}\" data-search=\"{}\"><h3><code>{}</code><span class=\"count\">{}</span><span class=\"kinds\">{}</span><span class=\"launches\">{}</span></h3>",
            escape(&g.field),
            escape(&g.launches.join(" ")),
            escape(&search),
            escape(&g.field),
            count(g.samples),
            escape(&g.kinds.join(", ")),
            escape(&g.launches.join(", ")),
        );
        members(&mut out, all, &g.members, Some(&g.field));
        out.push_str("</section>\n");
    }
    if !v.fields.is_empty() {
        out.push_str("</section>\n");
    }
    if !v.headers.is_empty() {
        out.push_str("<section class=\"groups\" id=\"by-header\"><h2>Headers <span class=\"count\">samples whose statuses matched</span></h2>\n");
    }
    for g in &v.headers {
        let search = format!("{} {}", g.header, g.launches.join(" "));
        let _ = writeln!(
            out,
            "<section class=\"group header-group\" data-group=\"header\" data-header=\"{}\" data-launches=\"{}\" data-search=\"{}\"><h3><code>{}</code><span class=\"count\">{}</span><span class=\"launches\">{}</span></h3>",
            escape(&g.header),
            escape(&g.launches.join(" ")),
            escape(&search),
            escape(&g.header),
            count(g.samples),
            escape(&g.launches.join(", ")),
        );
        members(&mut out, all, &g.members, Some(""));
        out.push_str("</section>\n");
    }
    if !v.headers.is_empty() {
        out.push_str("</section>\n");
    }
    if !v.statuses.is_empty() {
        out.push_str("<section class=\"groups\" id=\"by-status\"><h2>Status</h2>\n");
    }
    for g in &v.statuses {
        let name = status_name(g.primary, g.dark);
        let search = format!(
            "status {name} {} {} {}",
            g.primary,
            g.dark,
            g.launches.join(" ")
        );
        let _ = writeln!(
            out,
            "<section class=\"group status-group\" data-group=\"status\" data-status=\"{}\" data-primary-status=\"{}\" data-dark-status=\"{}\" data-launches=\"{}\" data-search=\"{}\"><h3>{}<span class=\"count\">{}</span><span class=\"launches\">{}</span></h3>",
            escape(&name),
            g.primary,
            g.dark,
            escape(&g.launches.join(" ")),
            escape(&search),
            escape(&name),
            count(g.samples),
            escape(&g.launches.join(", ")),
        );
        members(&mut out, all, &g.members, None);
        out.push_str("</section>\n");
    }
    if !v.statuses.is_empty() {
        out.push_str("</section>\n");
    }
    if !v.shapes.is_empty() {
        out.push_str("<section class=\"groups\" id=\"by-shape\"><h2>By shape</h2>\n<table class=\"shapes\"><thead><tr><th>shape</th><th>samples</th><th>kinds</th><th>fields</th><th>headers</th><th>statuses</th><th>launches</th><th>first request</th></tr></thead><tbody>\n");
        for g in &v.shapes {
            let search = [
                g.shape.as_str(),
                &g.kinds.join(" "),
                &g.fields.join(" "),
                &g.headers.join(" "),
                &g.statuses.join(" "),
                &g.launches.join(" "),
            ]
            .join(" ");
            let _ = writeln!(
                out,
                "<tr class=\"group shape-group\" data-group=\"shape\" data-shape=\"{}\" data-search=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                escape(&g.shape),
                escape(&search),
                escape(&g.shape),
                g.samples,
                escape(&g.kinds.join(", ")),
                escape(&g.fields.join(", ")),
                escape(&g.headers.join(", ")),
                escape(&g.statuses.join(", ")),
                escape(&g.launches.join(", ")),
                escape(&g.first_request_id),
            );
        }
        out.push_str("</tbody></table></section>\n");
    }
    if v.summary.samples == 0 {
        out.push_str("<p id=\"no-samples\">No samples.</p>\n");
    }
    if !v.errors.is_empty() {
        out.push_str("<h2 id=\"errors\">Bad lines</h2>\n<ul class=\"errors\">\n");
        for e in &v.errors {
            let _ = writeln!(out, "<li class=\"error\">{}</li>", escape(&e.to_string()));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</main>\n<script type=\"application/json\" id=\"darklaunch-samples\">");
    let json = serde_json::to_string(v).unwrap_or_else(|_| "{}".to_string());
    out.push_str(&script_json(&json));
    out.push_str("</script>\n<script>");
    out.push_str(SCRIPT);
    out.push_str("</script>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::group::{
        build,
        tests::{collection, fixture, sample as make},
    };

    #[test]
    fn escaping() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        let j = script_json(r#"{"a":"</script><!-- & >"}"#);
        assert_eq!(j, r#"{"a":"\u003c/script\u003e\u003c!-- \u0026 \u003e"}"#);
        let back: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(back["a"], "</script><!-- & >");
    }

    #[test]
    fn hostile_values_are_text() {
        let evil = "<script>alert(1)</script>";
        let c = collection(&[make(
            "l<b>",
            "<img src=x onerror=alert(2)>",
            (200, 200),
            &[(
                "/a",
                "/a\"><script>",
                "value",
                Some(evil),
                Some("\"</script><!--\""),
            )],
            &[("x-h", Some(evil), Some("v2"))],
        )]);
        let v = build(&c, &[], 3);
        let html = page(&v, &c.samples);
        assert_eq!(html.matches("<script").count(), 2, "{html}");
        assert_eq!(html.matches("</script>").count(), 2);
        assert!(!html.contains("<!--"));
        assert!(!html.contains("<img"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("data-field=\"/a&quot;&gt;&lt;script&gt;\""));
        assert!(html.contains("data-launch=\"l&lt;b&gt;\""));
        for needle in [
            "src=\"http",
            "href=\"http",
            "src='http",
            "href='http",
            "@import",
            "url(",
        ] {
            assert!(!html.contains(needle), "{needle}");
        }
        // The embedded view reads back.
        let start =
            html.find("id=\"darklaunch-samples\">").unwrap() + "id=\"darklaunch-samples\">".len();
        let end = start + html[start..].find("</script>").unwrap();
        let back: serde_json::Value = serde_json::from_str(&html[start..end]).unwrap();
        assert_eq!(back["fields"][0]["examples"][0]["primary"], evil);
    }

    #[test]
    fn groups_and_samples() {
        let c = fixture();
        let html = page(&build(&c, &[], 3), &c.samples);
        assert!(html.contains("data-group=\"field\" data-field=\"/items/*/price\""));
        assert!(html.contains("data-group=\"header\" data-header=\"x-version\""));
        assert!(html.contains("data-group=\"status\" data-status=\"200 → 500\""));
        assert!(html.contains("data-group=\"shape\" data-shape=\"00000010\""));
        // 3 + 1 + 1 samples by field, 2 by header, 3 by status.
        assert_eq!(html.matches("<article class=\"sample\"").count(), 10);
        assert!(html.contains(
            "<td class=\"primary\"><code>10.0</code></td><td class=\"dark\"><code>10.5</code></td>"
        ));
        assert!(html.contains("<td class=\"primary\"><code>&quot;EUR&quot;</code></td><td class=\"dark\"><span class=\"absent\">(absent)</span></td>"));
        assert!(html.contains("<span class=\"redacted\">[redacted]</span>"));
        assert!(html.contains("id=\"filter\""));
    }
}
