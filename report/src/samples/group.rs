//! Samples grouped by field, header, status and shape: the view every
//! output (text, JSON, HTML) shows. Groups are ordered by their number of
//! samples, largest first, then by name, so the output is deterministic.

use super::read::{BadLine, Collection};
use super::sample::{Difference, Sample};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The `--json` document's schema (fields are only ever added).
pub const SCHEMA: &str = "darklaunch-samples/v1";

#[derive(Debug, Serialize)]
pub struct View {
    pub schema: &'static str,
    pub summary: Summary,
    /// Samples whose statuses matched, by folded pointer.
    pub fields: Vec<FieldGroup>,
    /// Samples whose statuses matched, by differing response header.
    pub headers: Vec<HeaderGroup>,
    /// Samples whose statuses differed, by (primary, dark) status.
    pub statuses: Vec<StatusGroup>,
    pub shapes: Vec<ShapeGroup>,
    pub errors: Vec<BadLine>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub sources: Vec<String>,
    /// Lines read (log records with `--listen`).
    pub lines: u64,
    pub lines_without_sample: u64,
    pub bad_lines: usize,
    /// Sources that could not be opened or read to the end.
    pub unreadable: usize,
    /// Samples read, before `--launch`.
    pub samples_read: usize,
    /// Samples shown (those of the `--launch` launches).
    pub samples: usize,
    /// `--launch`; empty: every launch.
    pub launch_filter: Vec<String>,
    /// Samples read per launch, before `--launch`.
    pub launches: BTreeMap<String, usize>,
    /// Shown samples the filter cut to fit `capture.max_bytes`.
    pub truncated: usize,
}

/// Where an example comes from.
#[derive(Debug, Clone, Serialize)]
pub struct Origin {
    pub launch: String,
    pub request_id: String,
    pub method: String,
    pub path: String,
}

impl Origin {
    fn of(s: &Sample) -> Origin {
        Origin {
            launch: s.launch.clone(),
            request_id: s.request_id.clone(),
            method: s.method.clone(),
            path: s.path.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FieldGroup {
    pub field: String,
    /// Samples with this field.
    pub samples: usize,
    /// Their differences in this field (a sample may list several).
    pub differences: usize,
    pub kinds: Vec<String>,
    pub launches: Vec<String>,
    pub examples: Vec<FieldExample>,
    /// Indexes of the samples in [`Collection::samples`].
    #[serde(skip)]
    pub members: Vec<usize>,
}

#[derive(Debug, Serialize)]
pub struct FieldExample {
    #[serde(flatten)]
    pub origin: Origin,
    #[serde(flatten)]
    pub difference: Difference,
}

#[derive(Debug, Serialize)]
pub struct HeaderGroup {
    pub header: String,
    pub samples: usize,
    pub launches: Vec<String>,
    pub examples: Vec<HeaderExample>,
    #[serde(skip)]
    pub members: Vec<usize>,
}

#[derive(Debug, Serialize)]
pub struct HeaderExample {
    #[serde(flatten)]
    pub origin: Origin,
    /// The value on each side; `null` where the header is absent.
    pub primary: Option<String>,
    pub dark: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StatusGroup {
    pub primary: u16,
    pub dark: u16,
    pub samples: usize,
    pub launches: Vec<String>,
    pub examples: Vec<StatusExample>,
    #[serde(skip)]
    pub members: Vec<usize>,
}

#[derive(Debug, Serialize)]
pub struct StatusExample {
    #[serde(flatten)]
    pub origin: Origin,
    /// The body differences that explain the answers, if any.
    pub differences: Vec<Difference>,
}

#[derive(Debug, Serialize)]
pub struct ShapeGroup {
    pub shape: String,
    pub samples: usize,
    /// Of the first sample of this shape (the shape hashes them).
    pub kinds: Vec<String>,
    pub fields: Vec<String>,
    pub headers: Vec<String>,
    pub statuses: Vec<String>,
    pub launches: Vec<String>,
    pub first_request_id: String,
    #[serde(skip)]
    pub members: Vec<usize>,
}

/// `200 → 500`.
pub fn status_name(primary: u16, dark: u16) -> String {
    format!("{primary} → {dark}")
}

/// Adds `launch` to a sorted, de-duplicated list.
fn add_launch(launches: &mut Vec<String>, launch: &str) {
    if let Err(i) = launches.binary_search_by(|l| l.as_str().cmp(launch)) {
        launches.insert(i, launch.to_string());
    }
}

/// Groups the samples of `c` (those of `launches`; empty: all), with up to
/// `examples` examples per group.
pub fn build(c: &Collection, launches: &[String], examples: usize) -> View {
    let shown: Vec<usize> = c
        .samples
        .iter()
        .enumerate()
        .filter(|(_, s)| launches.is_empty() || launches.contains(&s.launch))
        .map(|(i, _)| i)
        .collect();
    let mut fields: BTreeMap<String, FieldGroup> = BTreeMap::new();
    let mut headers: BTreeMap<String, HeaderGroup> = BTreeMap::new();
    let mut statuses: BTreeMap<(u16, u16), StatusGroup> = BTreeMap::new();
    let mut shapes: BTreeMap<String, ShapeGroup> = BTreeMap::new();
    let mut truncated = 0;
    for &i in &shown {
        let Some(s) = c.samples.get(i) else { continue };
        truncated += usize::from(s.truncated);
        let shape = shapes.entry(s.shape.clone()).or_insert_with(|| ShapeGroup {
            shape: s.shape.clone(),
            samples: 0,
            kinds: s.kinds.clone(),
            fields: s.fields.clone(),
            headers: s.headers.clone(),
            statuses: Vec::new(),
            launches: Vec::new(),
            first_request_id: s.request_id.clone(),
            members: Vec::new(),
        });
        shape.samples += 1;
        shape.members.push(i);
        add_launch(&mut shape.launches, &s.launch);
        let status = status_name(s.primary.status, s.dark.status);
        if !shape.statuses.contains(&status) {
            shape.statuses.push(status);
        }
        if s.is_status() {
            let g = statuses
                .entry((s.primary.status, s.dark.status))
                .or_insert_with(|| StatusGroup {
                    primary: s.primary.status,
                    dark: s.dark.status,
                    samples: 0,
                    launches: Vec::new(),
                    examples: Vec::new(),
                    members: Vec::new(),
                });
            g.samples += 1;
            g.members.push(i);
            add_launch(&mut g.launches, &s.launch);
            if g.examples.len() < examples {
                g.examples.push(StatusExample {
                    origin: Origin::of(s),
                    differences: s.differences.clone(),
                });
            }
            continue;
        }
        // The fields counted for this pair, and those of its differences
        // (the same, unless some were omitted to fit max_bytes).
        let mut names: BTreeSet<&str> = s.fields.iter().map(String::as_str).collect();
        names.extend(s.differences.iter().map(Difference::group));
        for name in names {
            let g = fields
                .entry(name.to_string())
                .or_insert_with(|| FieldGroup {
                    field: name.to_string(),
                    samples: 0,
                    differences: 0,
                    kinds: Vec::new(),
                    launches: Vec::new(),
                    examples: Vec::new(),
                    members: Vec::new(),
                });
            g.samples += 1;
            g.members.push(i);
            add_launch(&mut g.launches, &s.launch);
            let mut first = true;
            for d in s.differences.iter().filter(|d| d.group() == name) {
                g.differences += 1;
                if !g.kinds.contains(&d.kind) {
                    g.kinds.push(d.kind.clone());
                }
                if first && g.examples.len() < examples {
                    g.examples.push(FieldExample {
                        origin: Origin::of(s),
                        difference: d.clone(),
                    });
                }
                first = false;
            }
        }
        let names: BTreeSet<&String> = s.headers.iter().collect();
        for name in names {
            let g = headers.entry(name.clone()).or_insert_with(|| HeaderGroup {
                header: name.clone(),
                samples: 0,
                launches: Vec::new(),
                examples: Vec::new(),
                members: Vec::new(),
            });
            g.samples += 1;
            g.members.push(i);
            add_launch(&mut g.launches, &s.launch);
            if g.examples.len() < examples {
                g.examples.push(HeaderExample {
                    origin: Origin::of(s),
                    primary: s.primary.headers.get(name).cloned(),
                    dark: s.dark.headers.get(name).cloned(),
                });
            }
        }
    }
    let mut per_launch: BTreeMap<String, usize> = BTreeMap::new();
    for s in &c.samples {
        *per_launch.entry(s.launch.clone()).or_default() += 1;
    }
    // Largest first; the maps' order (by name) breaks ties: sort is stable.
    let mut fields: Vec<FieldGroup> = fields.into_values().collect();
    fields.sort_by_key(|g| std::cmp::Reverse(g.samples));
    let mut headers: Vec<HeaderGroup> = headers.into_values().collect();
    headers.sort_by_key(|g| std::cmp::Reverse(g.samples));
    let mut statuses: Vec<StatusGroup> = statuses.into_values().collect();
    statuses.sort_by_key(|g| std::cmp::Reverse(g.samples));
    let mut shapes: Vec<ShapeGroup> = shapes.into_values().collect();
    shapes.sort_by_key(|g| std::cmp::Reverse(g.samples));
    View {
        schema: SCHEMA,
        summary: Summary {
            sources: c.sources.clone(),
            lines: c.lines,
            lines_without_sample: c.without_sample,
            bad_lines: c.bad.len() - c.unreadable.min(c.bad.len()),
            unreadable: c.unreadable,
            samples_read: c.samples.len(),
            samples: shown.len(),
            launch_filter: launches.to_vec(),
            launches: per_launch,
            truncated,
        },
        fields,
        headers,
        statuses,
        shapes,
        errors: c.bad.clone(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::samples::sample;

    /// `(pointer, field, kind, primary, dark)`.
    pub type Diff<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>);
    /// `(name, primary value, dark value)`.
    pub type Header<'a> = (&'a str, Option<&'a str>, Option<&'a str>);

    /// A sample of `launch` with these differences and header values.
    pub fn sample(
        launch: &str,
        id: &str,
        statuses: (u16, u16),
        diffs: &[Diff],
        headers: &[Header],
    ) -> String {
        let status = statuses.0 != statuses.1;
        let mut kinds = Vec::new();
        if status {
            kinds.push("status");
        } else {
            if !headers.is_empty() {
                kinds.push("headers");
            }
            if !diffs.is_empty() {
                kinds.push("body");
            }
        }
        let fields: BTreeSet<&str> = if status {
            BTreeSet::new()
        } else {
            diffs.iter().map(|d| d.1).collect()
        };
        let side = |st: u16, pick: fn(&Header) -> Option<String>| {
            let h: serde_json::Map<String, serde_json::Value> = headers
                .iter()
                .filter_map(|h| pick(h).map(|v| (h.0.to_string(), v.into())))
                .collect();
            serde_json::json!({"status": st, "headers": h})
        };
        let differences: Vec<serde_json::Value> = diffs
            .iter()
            .map(|(p, f, k, a, b)| {
                let mut d = serde_json::json!({"pointer": p, "field": f, "kind": k});
                if let Some(a) = a {
                    d["primary"] = (*a).into();
                }
                if let Some(b) = b {
                    d["dark"] = (*b).into();
                }
                if a.is_none() && b.is_none() {
                    d["redacted"] = true.into();
                }
                d
            })
            .collect();
        serde_json::json!({
            "v": 1, "launch": launch, "request_id": id, "method": "GET", "path": format!("/r/{id}"),
            "shape": format!("{:08x}", kinds.len() * 16 + fields.len()),
            "kinds": kinds, "fields": fields,
            "headers": if status { vec![] } else { headers.iter().map(|h| h.0).collect::<Vec<_>>() },
            "primary": side(statuses.0, |h| h.1.map(String::from)),
            "dark": side(statuses.1, |h| h.2.map(String::from)),
            "differences": differences,
        })
        .to_string()
    }

    pub fn collection(jsons: &[String]) -> Collection {
        let mut c = Collection::default();
        c.sources.push("t".into());
        for j in jsons {
            c.lines += 1;
            c.samples.push(sample::parse(j, 0).unwrap());
        }
        c
    }

    pub fn fixture() -> Collection {
        let price = |id: &str, p: &str, a: &str, b: &str| {
            sample(
                "orders-v2",
                id,
                (200, 200),
                &[(p, "/items/*/price", "value", Some(a), Some(b))],
                &[],
            )
        };
        collection(&[
            price("r1", "/items/3/price", "10.0", "10.5"),
            sample(
                "orders-v2",
                "r2",
                (200, 200),
                &[
                    ("/currency", "/currency", "missing", Some("\"EUR\""), None),
                    (
                        "/items/0/price",
                        "/items/*/price",
                        "value",
                        Some("3"),
                        Some("3.5"),
                    ),
                    (
                        "/items/1/price",
                        "/items/*/price",
                        "type",
                        Some("4"),
                        Some("\"4\""),
                    ),
                ],
                &[("x-version", Some("v1"), Some("v2"))],
            ),
            price("r3", "/items/0/price", "1", "2"),
            sample(
                "search-v3",
                "r4",
                (200, 500),
                &[("/error", "/error", "extra", None, Some("\"boom\""))],
                &[],
            ),
            sample(
                "orders-v2",
                "r5",
                (200, 200),
                &[("/user/ssn", "/user/ssn", "value", None, None)],
                &[("x-cache", None, Some("HIT"))],
            ),
            sample("search-v3", "r6", (404, 200), &[], &[]),
            sample("search-v3", "r7", (200, 500), &[], &[]),
        ])
    }

    #[test]
    fn groups_and_order() {
        let v = build(&fixture(), &[], 2);
        let f: Vec<(&str, usize, usize)> = v
            .fields
            .iter()
            .map(|g| (g.field.as_str(), g.samples, g.differences))
            .collect();
        assert_eq!(
            f,
            [
                ("/items/*/price", 3, 4),
                ("/currency", 1, 1),
                ("/user/ssn", 1, 1)
            ]
        );
        let price = &v.fields[0];
        assert_eq!(price.kinds, ["value", "type"]);
        assert_eq!(price.members, [0, 1, 2]);
        // Two examples, one per sample: its first difference in the field.
        let ex: Vec<(&str, &str)> = price
            .examples
            .iter()
            .map(|e| (e.origin.request_id.as_str(), e.difference.pointer.as_str()))
            .collect();
        assert_eq!(ex, [("r1", "/items/3/price"), ("r2", "/items/0/price")]);
        let h: Vec<(&str, usize)> = v
            .headers
            .iter()
            .map(|g| (g.header.as_str(), g.samples))
            .collect();
        assert_eq!(h, [("x-cache", 1), ("x-version", 1)]);
        assert_eq!(v.headers[0].examples[0].primary, None);
        assert_eq!(v.headers[0].examples[0].dark.as_deref(), Some("HIT"));
        let st: Vec<(u16, u16, usize)> = v
            .statuses
            .iter()
            .map(|g| (g.primary, g.dark, g.samples))
            .collect();
        assert_eq!(st, [(200, 500, 2), (404, 200, 1)]);
        assert_eq!(v.statuses[0].examples[0].differences[0].pointer, "/error");
        assert_eq!(v.statuses[0].launches, ["search-v3"]);
        // Status samples never count per field.
        assert!(v.fields.iter().all(|g| g.field != "/error"));
        let shapes: Vec<(usize, &str)> = v
            .shapes
            .iter()
            .map(|g| (g.samples, g.first_request_id.as_str()))
            .collect();
        assert_eq!(shapes[0], (3, "r4"));
        assert_eq!(v.summary.samples, 7);
        assert_eq!(v.summary.launches["orders-v2"], 4);
    }

    #[test]
    fn launch_filter() {
        let v = build(&fixture(), &["search-v3".to_string()], 3);
        assert_eq!((v.summary.samples_read, v.summary.samples), (7, 3));
        assert!(v.fields.is_empty() && v.headers.is_empty());
        assert_eq!(v.statuses.len(), 2);
        let none = build(&fixture(), &["nope".to_string()], 3);
        assert_eq!(none.summary.samples, 0);
        assert!(none.shapes.is_empty());
    }
}
