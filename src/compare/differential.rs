//! The comparator against the one it replaced (`reference`: serde_json
//! values, walked with owned paths): the same verdict, diffs and their order
//! included, for many generated pairs of documents under many rules.

use super::*;
use crate::json::tests::{perturb, random_text, Rng};

/// A document before rendering: strings decoded, numbers as their text.
#[derive(Debug, Clone)]
enum T {
    Null,
    Bool(bool),
    Num(&'static str),
    Str(&'static str),
    Arr(Vec<T>),
    Obj(Vec<(&'static str, T)>),
}

/// Spellings of close or equal numbers: picking within a group gives `1`
/// vs `1.0`, u64::MAX vs its f64, integers past 64 and 128 bits that only
/// their last digit tells apart (and the f64 they all round to), values
/// within or beyond a tolerance.
const NUMBERS: &[&[&str]] = &[
    &[
        "1",
        "1.0",
        "1e0",
        "10e-1",
        "0.1e1",
        "1.00000000000000000001",
        "1.01",
    ],
    &["0", "-0", "0.0", "-0.0", "0e5", "1e-400", "-1e-400"],
    &["100", "1e2", "1E+2", "100.0", "99.99", "101", "102"],
    &[
        "18446744073709551615",
        "18446744073709551614",
        "1.8446744073709552e19",
        "18446744073709551616",
        "1.8446744073709550e19",
    ],
    &[
        "-9223372036854775808",
        "-9223372036854775809",
        "-9.223372036854776e18",
        "-9223372036854775807",
    ],
    &[
        "1e308",
        "1.001e308",
        "-1e308",
        "9e307",
        "1.7976931348623157e308",
    ],
    &["0.1", "0.1000001", "0.10", "0.30000000000000004", "0.3"],
    &[
        "123456789012345678901234567890",
        "1.2345678901234568e29",
        "123456789012345678901234567891",
        "123456789012345678901234567890.0",
        "124000000000000000000000000000",
    ],
    &[
        "-123456789012345678901234567890",
        "-123456789012345678901234567891",
        "-1.2345678901234568e29",
        "123456789012345678901234567890",
    ],
    &[
        "1234567890123456789012345678901234567890",
        "1234567890123456789012345678901234567891",
        "-1234567890123456789012345678901234567890",
        "1.2345678901234568e39",
        "1240000000000000000000000000000000000000",
    ],
    &[
        "170141183460469231731687303715884105727",
        "170141183460469231731687303715884105728",
        "-170141183460469231731687303715884105728",
        "-170141183460469231731687303715884105729",
        "1.7014118346046923e38",
        "-1.7014118346046923e38",
    ],
    &[
        "18446744073709551616",
        "18446744073709551617",
        "36893488147419103232",
        "3.6893488147419103e19",
    ],
    &["2", "3", "2.01", "1.99", "-2", "2.5"],
    &[
        "1.7e38",
        "170000000000000000000000000000000000000",
        "1.6999999999999999e38",
        "1.7000000000000001e38",
    ],
    &["9007199254740993", "9007199254740992", "9007199254740992.0"],
];

const KEYS: &[&str] = &[
    "a", "b", "c", "id", "é", "e\u{301}", "a/b", "m~", "*", "0", "1", "", "😀", "etag",
];

const STRINGS: &[&str] = &[
    "x", "y", "é", "😀", "\n", "\"", "", "a", "\u{0}", "\\", "a/b", "1",
];

fn random_tree(rng: &mut Rng, depth: usize) -> T {
    match rng.below(if depth == 0 { 4 } else { 7 }) {
        0 => [T::Null, T::Bool(true), T::Bool(false)][rng.below(3)].clone(),
        1 => {
            let group = rng.pick(NUMBERS);
            T::Num(rng.pick(group))
        }
        2 => T::Num(rng.pick(&["1", "2", "0"])),
        3 => T::Str(rng.pick(STRINGS)),
        4 | 5 => T::Arr(
            (0..rng.below(5))
                .map(|_| random_tree(rng, depth - 1))
                .collect(),
        ),
        _ => T::Obj(
            (0..rng.below(6))
                .map(|_| (rng.pick(KEYS), random_tree(rng, depth - 1)))
                .collect(),
        ),
    }
}

/// A value like `t` but often equal or close: another spelling of the same
/// number group, the same kind, or anything.
fn variant(rng: &mut Rng, t: &T) -> T {
    match t {
        T::Num(n) if rng.chance(70) => {
            let group = NUMBERS.iter().find(|g| g.contains(n));
            T::Num(group.map_or(n, |g| rng.pick(g)))
        }
        T::Str(_) if rng.chance(50) => T::Str(rng.pick(STRINGS)),
        T::Bool(b) if rng.chance(50) => T::Bool(!b),
        _ => random_tree(rng, 2),
    }
}

/// Change a few things somewhere in `t`.
fn mutate(rng: &mut Rng, t: &mut T) {
    match t {
        T::Arr(items) if !items.is_empty() && rng.chance(70) => {
            let i = rng.below(items.len());
            match rng.below(6) {
                0 => items[i] = variant(rng, &items[i]),
                1 => {
                    items.remove(i);
                }
                2 => items.push(random_tree(rng, 2)),
                3 => {
                    let j = rng.below(items.len());
                    items.swap(i, j);
                }
                _ => mutate(rng, &mut items[i]),
            }
        }
        T::Obj(members) if !members.is_empty() && rng.chance(70) => {
            let i = rng.below(members.len());
            match rng.below(7) {
                0 => members[i].1 = variant(rng, &members[i].1),
                1 => {
                    members.remove(i);
                }
                2 => members.push((rng.pick(KEYS), random_tree(rng, 2))),
                // A repeated key, with the same or another value.
                3 => {
                    let dup = members[i].clone();
                    let value = if rng.chance(50) {
                        dup.1
                    } else {
                        variant(rng, &dup.1)
                    };
                    members.push((dup.0, value));
                }
                4 => {
                    let j = rng.below(members.len());
                    members.swap(i, j);
                }
                _ => mutate(rng, &mut members[i].1),
            }
        }
        _ => *t = variant(rng, t),
    }
}

/// Render with random whitespace and escapes (the same value, other text).
fn render(rng: &mut Rng, t: &T, out: &mut String) {
    if rng.chance(10) {
        out.push_str(rng.pick(&[" ", "\n  ", "\t"]));
    }
    match t {
        T::Null => out.push_str("null"),
        T::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        T::Num(n) => out.push_str(n),
        T::Str(s) => render_str(rng, s, out),
        T::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render(rng, item, out);
            }
            out.push(']');
        }
        T::Obj(members) => {
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render_str(rng, k, out);
                out.push(':');
                render(rng, v, out);
            }
            out.push('}');
        }
    }
}

fn render_str(rng: &mut Rng, s: &str, out: &mut String) {
    use std::fmt::Write;
    out.push('"');
    let escape_all = rng.chance(15);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || escape_all || rng.chance(5) => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn random_rules(rng: &mut Rng) -> CompareRules {
    const IGNORE: &[&str] = &[
        "/a", "/*/a", "/b/*", "/*", "/0", "/1", "/a/*/b", "/é", "/a~1b", "/*/*/id", "/c/0", "/*/*",
        "/id",
    ];
    const UNORDERED: &[&str] = &["", "/a", "/*", "/b", "/*/*", "/c", "/0"];
    let pick = |rng: &mut Rng, list: &[&str], n: usize| -> Vec<PointerPattern> {
        (0..rng.below(n + 1))
            .map(|_| PointerPattern::parse(rng.pick(list)).unwrap())
            .collect()
    };
    CompareRules {
        body: BodyMode::Json,
        ignore: if rng.chance(50) {
            pick(rng, IGNORE, 2)
        } else {
            Vec::new()
        },
        unordered_arrays: if rng.chance(40) {
            pick(rng, UNORDERED, 2)
        } else {
            Vec::new()
        },
        numeric_tolerance: rng.pick(&[0.0, 0.0, 0.0, 0.01, 0.5]),
        ..CompareRules::default()
    }
}

/// The new and the old comparator agree on `a` vs `b` (and `b` vs `a`).
fn agree(rules: &CompareRules, a: &[u8], b: &[u8]) -> Verdict {
    let side = |body| Side {
        status: 200,
        headers: &[],
        body,
    };
    let new = try_compare(rules, &side(a), &side(b)).unwrap();
    let old = reference::verdict(rules, a, b);
    assert_eq!(
        new,
        old,
        "\nrules {rules:?}\na {}\nb {}",
        String::from_utf8_lossy(a),
        String::from_utf8_lossy(b)
    );
    let back = try_compare(rules, &side(b), &side(a)).unwrap();
    assert_eq!(back, reference::verdict(rules, b, a));
    // The samples' walk finds the same differences, one example each, at
    // a location its folded pointer names.
    let redact = rules.ignore.clone();
    let (with_examples, examples) =
        compare_examples(rules, &side(a), &side(b), &redact, "").unwrap();
    assert_eq!(with_examples, new);
    assert_eq!(examples.len(), new.diffs.len());
    for (e, d) in examples.iter().zip(&new.diffs) {
        assert_eq!((&e.field, e.kind), (&d.pointer, d.kind));
        assert!(crate::pointer::PointerPattern::parse(&e.field)
            .is_ok_and(|p| p.covers(&segments(&e.pointer))));
    }
    new
}

/// The segments of a concrete pointer, every all-digit token as an index.
fn segments(pointer: &str) -> Vec<crate::pointer::PathSeg<'static>> {
    use crate::pointer::PathSeg;
    pointer
        .split('/')
        .skip(1)
        .map(|t| match t.parse::<usize>() {
            Ok(i) if t == i.to_string() => PathSeg::Index(i),
            _ => PathSeg::Key(t.replace("~1", "/").replace("~0", "~").into()),
        })
        .collect()
}

#[test]
fn generated_pairs_agree_with_reference() {
    let mut rng = Rng::new(42);
    let (mut differ, mut equal, mut diffs) = (0, 0, 0);
    for _ in 0..6_000 {
        let t = random_tree(&mut rng, 4);
        let mut u = t.clone();
        for _ in 0..rng.below(3) {
            mutate(&mut rng, &mut u);
        }
        let (mut a, mut b) = (String::new(), String::new());
        render(&mut rng, &t, &mut a);
        render(&mut rng, &u, &mut b);
        let rules = random_rules(&mut rng);
        let v = agree(&rules, a.as_bytes(), b.as_bytes());
        if v.body {
            differ += 1;
            diffs += v.diffs.len();
        } else {
            equal += 1;
        }
        // Same value, other text.
        let mut c = String::new();
        render(&mut rng, &t, &mut c);
        agree(&rules, a.as_bytes(), c.as_bytes());
        // Damaged text: mostly not JSON any more, sometimes other JSON.
        agree(&rules, &perturb(&mut rng, a.as_bytes()), b.as_bytes());
    }
    assert!(
        differ > 1_000 && equal > 1_000 && diffs > 2_000,
        "{differ} {equal} {diffs}"
    );
}

#[test]
fn random_texts_agree_with_reference() {
    let mut rng = Rng::new(3);
    for _ in 0..4_000 {
        let (mut a, mut b) = (String::new(), String::new());
        random_text(&mut rng, 3, &mut a);
        random_text(&mut rng, 3, &mut b);
        let rules = random_rules(&mut rng);
        agree(&rules, a.as_bytes(), b.as_bytes());
        agree(&rules, a.as_bytes(), &perturb(&mut rng, a.as_bytes()));
    }
}

/// Objects with many members, many of them differing, repeated keys: the
/// same-keys shortcut and its fallback, `MAX_DIFFS`, `MAX_PATHS`.
#[test]
fn wide_objects_agree_with_reference() {
    let mut rng = Rng::new(11);
    for _ in 0..400 {
        let n = rng.below(120);
        let differing = rng.pick(&[0, 1, 2, 10, 15, 16, 17, 30, 70, 100]);
        let members: Vec<(String, String)> = (0..n)
            .map(|i| {
                let k = if rng.chance(10) { rng.below(n) } else { i };
                (format!("k{k:03}"), format!("{}", rng.below(3)))
            })
            .collect();
        let mut other = members.clone();
        for _ in 0..differing.min(n) {
            let i = rng.below(n);
            other[i].1 = format!("[{}]", rng.below(3));
        }
        if rng.chance(20) && n > 0 {
            // Another key spelling of the same key: not the same text.
            other[0].0 = other[0].0.replace('k', "\\u006b");
        }
        let text = |m: &[(String, String)]| {
            let body: Vec<String> = m.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", body.join(","))
        };
        let rules = random_rules(&mut rng);
        agree(&rules, text(&members).as_bytes(), text(&other).as_bytes());
    }
}

/// Nesting around the parser's limit, long and unordered arrays (greedy
/// pairing, the canonical form, and the in-order fallback past
/// `MAX_PAIRING_ELEMENTS`).
#[test]
fn deep_and_long_agree_with_reference() {
    let mut rng = Rng::new(5);
    for depth in [1, 60, 125, 126, 127, 128] {
        let a = format!("{}{{\"a\":1}}{}", "[".repeat(depth), "]".repeat(depth));
        let b = format!("{}{{\"a\":2}}{}", "[".repeat(depth), "]".repeat(depth));
        for _ in 0..5 {
            agree(&random_rules(&mut rng), a.as_bytes(), b.as_bytes());
        }
    }
    for n in [3, 50, 999, 1000, 1001, 1500] {
        let items: Vec<String> = (0..n)
            .map(|i| format!("{{\"id\":{},\"v\":[{i}]}}", i % 7))
            .collect();
        let mut shuffled = items.clone();
        for i in 0..n {
            let j = rng.below(n);
            shuffled.swap(i, j);
        }
        let mut changed = shuffled.clone();
        changed[n / 2] = "{\"id\":1.0,\"v\":[-1]}".to_string();
        let doc = |items: &[String]| format!("{{\"a\":[{}]}}", items.join(","));
        for ignore in [&[][..], &["/a/*/v"][..]] {
            for tol in [0.0, 0.01] {
                let rules = CompareRules {
                    body: BodyMode::Json,
                    unordered_arrays: vec![PointerPattern::parse("/a").unwrap()],
                    ignore: ignore
                        .iter()
                        .map(|p| PointerPattern::parse(p).unwrap())
                        .collect(),
                    numeric_tolerance: tol,
                    ..CompareRules::default()
                };
                agree(&rules, doc(&items).as_bytes(), doc(&shuffled).as_bytes());
                agree(&rules, doc(&items).as_bytes(), doc(&changed).as_bytes());
            }
        }
    }
}

/// Hand-picked corners, under every kind of rule: numbers that are equal in
/// one comparison and not another (`-0`, `1` vs `1.0`, u64::MAX vs its f64,
/// which the canonical form of unordered arrays tells apart), escapes,
/// repeated keys.
#[test]
fn corners_agree_with_reference() {
    let pairs = [
        ("[0]", "[-0]"),
        ("[0,1]", "[1,-0.0]"),
        ("[100]", "[1e2]"),
        ("[1]", "[1.0]"),
        ("[18446744073709551615]", "[1.8446744073709552e19]"),
        ("[18446744073709551615]", "[18446744073709551616]"),
        ("[-9223372036854775809]", "[-9223372036854775808]"),
        ("[1.7e38]", "[170000000000000000000000000000000000000]"),
        (
            r#"{"id":123456789012345678901234567890}"#,
            r#"{"id":123456789012345678901234567891}"#,
        ),
        (
            "[123456789012345678901234567890,123456789012345678901234567891]",
            "[123456789012345678901234567891,123456789012345678901234567890]",
        ),
        (
            "[123456789012345678901234567890,123456789012345678901234567890]",
            "[123456789012345678901234567891,123456789012345678901234567890]",
        ),
        (
            "[-1234567890123456789012345678901234567890]",
            "[-1234567890123456789012345678901234567891]",
        ),
        (
            "[1234567890123456789012345678901234567890]",
            "[-1234567890123456789012345678901234567890]",
        ),
        (
            "[123456789012345678901234567890]",
            "[1.2345678901234568e29]",
        ),
        (
            "[1234567890123456789012345678901234567890]",
            "[1.2345678901234568e39]",
        ),
        ("[18446744073709551616]", "[1.8446744073709552e19]"),
        ("[9007199254740993]", "[9007199254740992.0]"),
        ("[0,-0]", "[-0.0,0]"),
        ("[1e-400]", "[-0]"),
        (r#"["é"]"#, r#"["\u00e9"]"#),
        (r#"["a\u0000"]"#, r#"["a"]"#),
        (r#"[{"a":1,"a":2}]"#, r#"[{"a":2}]"#),
        (r#"[{"a":1,"a":2}]"#, r#"[{"a":1}]"#),
        (r#"[{"a":1,"\u0061":2}]"#, r#"[{"a":2}]"#),
        (r#"{"a":1,"a":2}"#, r#"{"a":2,"a":1}"#),
        (r#"{"a":1,"b":2,"a":3}"#, r#"{"a":1,"b":2,"a":4}"#),
        (r#"{"a":1,"b":2,"a":3}"#, r#"{"a":5,"b":2,"a":3}"#),
        (r#"{"\u0061":1,"b":2}"#, r#"{"a":1,"b":3}"#),
        (
            r#"[{"b":[1,{"c":null}],"a":"x"}]"#,
            r#"[{"a":"x","b":[1.0,{"c":null}]}]"#,
        ),
        (r#"[[1,2],[3]]"#, r#"[[3],[2,1]]"#),
        ("[true,false,null]", "[null,true,false]"),
    ];
    let mut rng = Rng::new(9);
    for (a, b) in pairs {
        for unordered in [&[][..], &[""][..], &["", "/*"][..]] {
            for tol in [0.0, 0.01] {
                let rules = CompareRules {
                    body: BodyMode::Json,
                    unordered_arrays: unordered
                        .iter()
                        .map(|p| PointerPattern::parse(p).unwrap())
                        .collect(),
                    numeric_tolerance: tol,
                    ..CompareRules::default()
                };
                agree(&rules, a.as_bytes(), b.as_bytes());
            }
        }
        for _ in 0..20 {
            agree(&random_rules(&mut rng), a.as_bytes(), b.as_bytes());
        }
    }
}
