//! The parser against serde_json: same documents accepted, same values.

use super::*;

/// What serde_json makes of `input`.
fn serde(input: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(input).ok()
}

/// A parsed value as a serde_json value: objects through serde_json's map
/// (inserting in text order, so the last of repeated keys wins).
fn to_serde(v: Value<'_>) -> serde_json::Value {
    use serde_json::Value as V;
    match v.kind() {
        Kind::Null => V::Null,
        Kind::Bool => V::Bool(v.as_bool().unwrap()),
        Kind::Number => match v.number().unwrap() {
            Number::U64(u) => V::from(u),
            Number::I64(i) => {
                assert!(i < 0, "non-negative integers are U64: {v:?}");
                V::from(i)
            }
            Number::F64(f) => V::Number(serde_json::Number::from_f64(f).unwrap()),
        },
        Kind::String => V::String(v.str().unwrap().into_owned()),
        Kind::Array => {
            assert_eq!(v.elements().count(), v.len());
            V::Array(v.elements().map(to_serde).collect())
        }
        Kind::Object => {
            assert_eq!(v.members().count(), v.len());
            let mut map = serde_json::Map::new();
            for (k, x) in v.members() {
                map.insert(k.str().unwrap().into_owned(), to_serde(x));
            }
            // `sorted_keys` visits what serde_json's map iterates, in order:
            // the same keys, each with its last value.
            let mut last = std::collections::BTreeMap::new();
            for (k, x) in v.members() {
                last.insert(k.str().unwrap().into_owned(), x.id());
            }
            let mut keys = vec![7];
            sorted_keys(&v, &mut keys);
            assert_eq!(keys[0], 7, "appends");
            let ours: Vec<(String, u32)> = keys[1..]
                .iter()
                .map(|&id| {
                    let (k, x) = v.doc().member(id).unwrap();
                    (k.str().unwrap().into_owned(), x.id())
                })
                .collect();
            let theirs: Vec<(String, u32)> = last.into_iter().collect();
            assert_eq!(ours, theirs);
            assert!(map.keys().eq(ours.iter().map(|(k, _)| k)));
            V::Object(map)
        }
    }
}

/// Equal, with numbers of the same representation and floats bit for bit.
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (a, b) {
        (V::Number(x), V::Number(y)) => {
            x.as_u64() == y.as_u64()
                && x.as_i64() == y.as_i64()
                && x.is_f64() == y.is_f64()
                && x.as_f64().map(f64::to_bits) == y.as_f64().map(f64::to_bits)
        }
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (V::Object(x), V::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, x), (ky, y))| kx == ky && same(x, y))
        }
        _ => a == b,
    }
}

/// Parse `input` both ways; they must agree on acceptance and on the value.
/// Returns whether it was accepted.
fn check(input: &[u8]) -> bool {
    let theirs = serde(input);
    let ours = parse(input);
    match (&ours, &theirs) {
        (Ok(doc), Some(v)) => {
            let mine = to_serde(doc.root().unwrap());
            assert!(
                same(&mine, v),
                "{:?}: ours {mine:?}, serde_json {v:?}",
                String::from_utf8_lossy(input)
            );
            // Accepted means UTF-8, though only strings are checked for it.
            assert!(std::str::from_utf8(input).is_ok());
            // Every node's text is the value's text: it parses alone to the same value.
            let root = doc.root().unwrap();
            assert_eq!(root.raw(), input.trim_ascii());
            true
        }
        (Err(_), None) => false,
        _ => panic!(
            "{:?}: ours {:?}, serde_json {:?}",
            String::from_utf8_lossy(input),
            ours.map(|d| d.root().map(to_serde)),
            theirs
        ),
    }
}

#[test]
fn accepts() {
    for ok in [
        "null",
        "true",
        "false",
        " \t\r\n1 \t\r\n",
        "0",
        "-0",
        "-0.0",
        "0e0",
        "0E+0",
        "1e-0",
        "123",
        "-123",
        "1.5",
        "1.50",
        "1e2",
        "1E2",
        "1e+2",
        "1e-2",
        "1.5e300",
        "1e308",
        "1.7976931348623157e308",
        "1e-400",
        "-1e-400",
        "0e999999999999999999",
        "0.0e99999",
        "1e-99999999999999999999",
        "4.9e-324",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "-18446744073709551616",
        "123456789012345678901234567890",
        "1234567890123456789012345678901234567890.123456789e-10",
        "18446744073709551615.5",
        "1844674407370955161.55",
        "0.000000000000000000000000000000000000001",
        "9007199254740993",
        "0.30000000000000004",
        r#""""#,
        r#""a""#,
        r#""\"\\\/\b\f\n\r\t""#,
        r#""\u0000""#,
        r#""\u00e9\u00E9""#,
        r#""\ud83d\ude00""#,
        r#""\uD83D\uDE00x""#,
        r#""\uffff\ufffe""#,
        "\"é😀\u{7f}\"",
        "[]",
        "[ ]",
        "[1,2,3]",
        "[[],[[]],{}]",
        "{}",
        "{ }",
        r#"{"a":1}"#,
        r#"{"a":1,"a":2}"#,
        r#"{"a":1,"\u0061":2}"#,
        r#"{"b":1,"a":{"a":[1,{"a":null}]},"a":3}"#,
        r#"{"é":1,"\u00e9":2,"e\u0301":3}"#,
        r#"{"":0,"\u0000":1}"#,
        " { \"a\" : [ 1 , 2 ] , \"b\" : { } } ",
    ] {
        assert!(check(ok.as_bytes()), "should accept {ok:?}");
    }
}

#[test]
fn rejects() {
    for bad in [
        "",
        " ",
        "nul",
        "nulll",
        "True",
        "NaN",
        "Infinity",
        "-Infinity",
        "+1",
        "01",
        "-01",
        "00",
        ".5",
        "1.",
        "1.e5",
        "-",
        "-.5",
        "1e",
        "1e+",
        "1e-",
        "1ee5",
        "0x10",
        "1e400",
        "-1e400",
        "1.7976931348623159e308",
        "1e99999999999999999999",
        "[1e309]",
        &"9".repeat(400),
        "1 2",
        "1,",
        "[1,]",
        "[,1]",
        "[1 2]",
        "[",
        "]",
        "[1",
        "{",
        "{]",
        "{,}",
        r#"{"a"}"#,
        r#"{"a":}"#,
        r#"{"a" 1}"#,
        r#"{"a":1,}"#,
        r#"{"a":1 "b":2}"#,
        r#"{a:1}"#,
        r#"{1:1}"#,
        "{'a':1}",
        r#"""#,
        r#""abc"#,
        r#""\""#,
        r#""\x""#,
        r#""\'""#,
        r#""\u12""#,
        r#""\u12g4""#,
        r#""\ud83d""#,
        r#""\ud83dx""#,
        r#""\ud83d\n""#,
        r#""\ud83d\u0041""#,
        r#""\ud83d\ud83d""#,
        r#""\ude00""#,
        r#""\ude00\ud83d""#,
        "\"\u{1}\"",
        "\"a\nb\"",
        "\"\t\"",
        "{}{}",
        "[] []",
        "1 x",
        "\u{feff}1",
        "/* c */ 1",
        "1 // c",
        "\u{a0}1",
        "\u{0}",
        "[1]\u{0}",
    ] {
        assert!(!check(bad.as_bytes()), "should reject {bad:?}");
    }
    // Invalid UTF-8: in a string, in a key, outside strings.
    for bad in [
        &b"\"\xff\""[..],
        b"{\"\xc3\":1}",
        b"\"\xc3\"",
        b"\"\xed\xa0\x80\"",
        b"[\xff]",
        b"1\xff",
    ] {
        assert!(!check(bad), "should reject {bad:?}");
    }
}

/// UTF-8 is checked inside strings only, eight bytes at a time: valid and
/// invalid sequences at every offset within a chunk, next to escapes and
/// quotes, in keys and values, and non-ASCII bytes outside strings.
#[test]
fn utf8_is_checked_inside_strings_at_every_offset() {
    let (mut good, mut bad) = (0, 0);
    for pad in 0..17 {
        let p = "a".repeat(pad);
        for piece in ["é", "😀", "\\n", "\\u00e9", "€\\t€", "\u{7f}"] {
            for doc in [
                format!("\"{p}{piece}{p}\""),
                format!("{{\"{p}{piece}\":\"{piece}{p}\"}}"),
                format!("[\"{p}\",\"{piece}\",{pad}]"),
            ] {
                assert!(check(doc.as_bytes()), "should accept {doc:?}");
                good += 1;
            }
        }
        let p = p.as_bytes();
        for piece in [
            &b"\xff"[..],
            b"\xc3",
            b"\xc3(",
            b"\xe2\x82",
            b"\xed\xa0\x80",
            b"\xc3\\n",
            b"\\n\xa9",
        ] {
            let cat = |parts: &[&[u8]]| parts.concat();
            for doc in [
                cat(&[b"\"", p, piece, p, b"\""]),
                cat(&[b"{\"", p, piece, b"\":1}"]),
                cat(&[b"[\"", p, b"\",\"", piece, b"\"]"]),
                cat(&[b"[\"", p, b"\"", piece, b"]"]),
                cat(&[b"[1", p, piece, b"]"]),
            ] {
                assert!(!check(&doc), "should reject {doc:?}");
                bad += 1;
            }
        }
    }
    assert_eq!((good, bad), (17 * 6 * 3, 17 * 7 * 5));
    // Where the first invalid byte of a string is.
    let e = parse(b"[\"abcdefghij\xff\"]").unwrap_err();
    assert_eq!((e.offset, e.reason), (12, "invalid UTF-8"));
}

#[test]
fn depth_limit_matches_serde_json() {
    for depth in [1, 126, 127, 128, 129, 1000] {
        for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
            for inner in ["1", "[]", "{}"] {
                let doc = format!("{}{inner}{}", open.repeat(depth), close.repeat(depth));
                let accepted = check(doc.as_bytes());
                let containers = depth + usize::from(inner != "1");
                assert_eq!(accepted, containers <= MAX_DEPTH, "{depth} {open} {inner}");
            }
        }
    }
    // Long but shallow is fine.
    let wide = format!("[{}1]", "[],".repeat(10_000));
    assert!(check(wide.as_bytes()));
}

#[test]
fn values_and_spans() {
    let doc = parse(br#" {"b": [1, "x\n", true], "a": {"k": null}, "b": -0} "#).unwrap();
    let root = doc.root().unwrap();
    assert_eq!(root.kind(), Kind::Object);
    assert_eq!(root.len(), 3);
    let members: Vec<(String, &str)> = root
        .members()
        .map(|(k, v)| (k.str().unwrap().into_owned(), v.text()))
        .collect();
    assert_eq!(
        members,
        [
            ("b".to_string(), r#"[1, "x\n", true]"#),
            ("a".to_string(), r#"{"k": null}"#),
            ("b".to_string(), "-0"),
        ]
    );
    let (_, first) = root.members().next().unwrap();
    let items: Vec<Value<'_>> = first.elements().collect();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].number(), Some(Number::U64(1)));
    assert_eq!(items[0].integer(), Some(Integer::Small(1)));
    assert_eq!(items[1].text(), r#""x\n""#);
    assert_eq!(items[1].str_raw(), r"x\n");
    assert!(items[1].has_escapes());
    assert_eq!(items[1].str().unwrap(), "x\n");
    assert_eq!(items[2].as_bool(), Some(true));
    // Scalars have no children; strings are not numbers.
    assert_eq!(items[0].elements().count(), 0);
    assert_eq!(items[1].number(), None);
    assert_eq!(items[1].integer(), None);
    assert_eq!(items[0].str(), None);
    // Sorted, last of repeated keys.
    let mut keys = Vec::new();
    sorted_keys(&root, &mut keys);
    let sorted: Vec<(String, String)> = keys
        .iter()
        .map(|&id| {
            let (k, v) = doc.member(id).unwrap();
            (k.str().unwrap().into_owned(), v.text().to_string())
        })
        .collect();
    assert_eq!(
        sorted,
        [
            ("a".to_string(), r#"{"k": null}"#.to_string()),
            ("b".to_string(), "-0".to_string())
        ]
    );
    assert!(doc.member(0).is_none());
}

#[test]
fn string_order_is_decoded_utf8_order() {
    let doc =
        parse(r#"["a","\u0061","b","é","\u00e9","\ud83d\ude00","\uffff","","a\u0000"]"#.as_bytes())
            .unwrap();
    let items: Vec<Value<'_>> = doc.root().unwrap().elements().collect();
    for x in &items {
        for y in &items {
            let (sx, sy) = (x.str().unwrap(), y.str().unwrap());
            assert_eq!(x.str_cmp(y), sx.cmp(&sy), "{sx:?} {sy:?}");
        }
    }
}

#[test]
fn errors_say_where() {
    let e = parse(b"[1,]").unwrap_err();
    assert_eq!(e.offset, 3);
    assert!(e.to_string().contains("at byte 3"), "{e}");
    assert_eq!(parse(b"\"\xff\"").unwrap_err().reason, "invalid UTF-8");
    assert_eq!(parse(b"1e400").unwrap_err().reason, "number out of range");
}

/// A tiny deterministic generator (xorshift64*), enough for test inputs.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub(crate) fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// A random number text (mostly grammatical, sometimes not).
fn random_number(rng: &mut Rng) -> String {
    let mut s = String::new();
    if rng.chance(30) {
        s.push('-');
    }
    let digits = |rng: &mut Rng, s: &mut String, n: usize| {
        for _ in 0..n {
            s.push(char::from(b'0' + rng.below(10) as u8));
        }
    };
    let int_len = rng.pick(&[
        1, 1, 2, 5, 15, 17, 18, 19, 19, 20, 20, 21, 25, 38, 39, 39, 40, 310, 330,
    ]);
    if rng.chance(15) {
        s.push('0');
    } else {
        s.push(char::from(b'1' + rng.below(9) as u8));
        digits(rng, &mut s, int_len - 1);
    }
    if rng.chance(50) {
        s.push('.');
        let n = rng.pick(&[1, 2, 5, 16, 17, 20, 25, 40, 350]);
        digits(rng, &mut s, n);
    }
    if rng.chance(50) {
        s.push(rng.pick(&['e', 'E']));
        if rng.chance(60) {
            s.push(rng.pick(&['+', '-']));
        }
        let n = rng.pick(&[1, 2, 3, 3, 4, 10, 11]);
        digits(rng, &mut s, n);
    }
    // Sometimes edge values near the u64/i64 and f64 limits.
    if rng.chance(10) {
        s = rng
            .pick(&[
                "18446744073709551615",
                "18446744073709551616",
                "18446744073709551614",
                "9223372036854775807",
                "9223372036854775808",
                "-9223372036854775808",
                "-9223372036854775807",
                "-9223372036854775809",
                "1.7976931348623157e308",
                "1.7976931348623158e308",
                "1.7976931348623159e308",
                "179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
                "2.2250738585072014e-308",
                "4.9406564584124654e-324",
                "2.4703282292062327e-324",
                "1e-324",
                "0.1e-2147483648",
                "1e2147483647",
                "1e2147483648",
                "0e2147483648",
                "1e-2147483648",
                "1e-2147483649",
                "123456789012345678901234567890e-2147483600",
                "170141183460469231731687303715884105727",
                "170141183460469231731687303715884105728",
                "-170141183460469231731687303715884105728",
                "-170141183460469231731687303715884105729",
                "340282366920938463463374607431768211455",
                "340282366920938463463374607431768211456",
            ])
            .to_string();
    }
    s
}

#[test]
fn numbers_match_serde_json() {
    let mut rng = Rng::new(1);
    for _ in 0..20_000 {
        let n = random_number(&mut rng);
        check(n.as_bytes());
        let theirs = serde(n.as_bytes());
        let ours = eval_number(n.as_bytes());
        match (ours, theirs) {
            (Some(x), Some(serde_json::Value::Number(y))) => {
                let same = match x {
                    Number::U64(u) => y.as_u64() == Some(u) && !y.is_f64(),
                    Number::I64(i) => y.as_i64() == Some(i) && !y.is_f64() && i < 0,
                    Number::F64(f) => {
                        y.is_f64() && y.as_f64().map(f64::to_bits) == Some(f.to_bits())
                    }
                };
                assert!(same, "{n}: ours {x:?}, serde_json {y:?}");
            }
            (None, None) => {}
            (x, y) => panic!("{n}: ours {x:?}, serde_json {y:?}"),
        }
    }
}

/// A number written as an integer has its exact value, whatever its size:
/// what Rust's own i128 parser says, or else the text.
#[test]
fn integers_are_exact() {
    let mut rng = Rng::new(7);
    let mut seen = [0; 3];
    for _ in 0..20_000 {
        let n = random_number(&mut rng);
        let Ok(doc) = parse(n.as_bytes()) else {
            continue;
        };
        let got = doc.root().unwrap().integer();
        assert_eq!(got, eval_integer(n.as_bytes()), "{n}");
        let want = if n.contains(['.', 'e', 'E']) {
            None
        } else if let Ok(i) = n.parse::<i128>() {
            Some(Integer::Small(i))
        } else {
            let digits = n.trim_start_matches('-').as_bytes();
            assert!(digits.len() >= 39 && digits[0] != b'0', "{n}");
            Some(Integer::Big {
                negative: n.starts_with('-'),
                digits,
            })
        };
        assert_eq!(got, want, "{n}");
        seen[match got {
            None => 0,
            Some(Integer::Small(_)) => 1,
            Some(Integer::Big { .. }) => 2,
        }] += 1;
    }
    assert!(seen.iter().all(|&k| k > 500), "{seen:?}");
    let int = |s: &'static str| {
        let doc = parse(s.as_bytes()).unwrap();
        let v = doc.root().unwrap().integer();
        assert_eq!(v, eval_integer(s.as_bytes()));
        eval_integer(s.as_bytes())
    };
    // `-0` is 0; i128's limits are small, one past them big.
    assert_eq!(int("-0"), Some(Integer::Small(0)));
    assert_eq!(int("-0"), int("0"));
    let max = "170141183460469231731687303715884105727";
    let min = "-170141183460469231731687303715884105728";
    assert_eq!(int(max), Some(Integer::Small(i128::MAX)));
    assert_eq!(int(min), Some(Integer::Small(i128::MIN)));
    let big = |s: &'static str| Integer::Big {
        negative: s.starts_with('-'),
        digits: s.trim_start_matches('-').as_bytes(),
    };
    assert_eq!(
        int("170141183460469231731687303715884105728"),
        Some(big("170141183460469231731687303715884105728"))
    );
    assert_eq!(
        int("-170141183460469231731687303715884105729"),
        Some(big("-170141183460469231731687303715884105729"))
    );
    // Equality is numeric: sign and every digit.
    let n = "1234567890123456789012345678901234567890";
    assert_eq!(int(n), int(n));
    assert_ne!(int(n), int("1234567890123456789012345678901234567891"));
    assert_ne!(int(n), int("-1234567890123456789012345678901234567890"));
    assert_ne!(int(n), int("123456789012345678901234567890123456789"));
    // A fraction or an exponent: not an integer, whatever the value.
    for s in [
        "1.0",
        "1e2",
        "-0.0",
        "0e0",
        "1E+2",
        "123456789012345678901234567890.0",
    ] {
        assert_eq!(int(s), None, "{s}");
    }
    assert_eq!(int(r#""1""#), None);
    assert_eq!(int("[1]"), None);
    // Text outside the integer grammar.
    for s in [
        "", "-", "01", "-01", "+1", "1a", "--1", " 1", "1.", "\u{0661}",
    ] {
        assert_eq!(eval_integer(s.as_bytes()), None, "{s:?}");
    }
}

/// Random JSON-ish text: valid most of the time, with the tricky parts
/// (escapes, surrogates, repeated keys, odd numbers, nesting).
pub(crate) fn random_text(rng: &mut Rng, depth: usize, out: &mut String) {
    let ws = |rng: &mut Rng, out: &mut String| {
        if rng.chance(20) {
            out.push_str(rng.pick(&[" ", "\n", "\t", "\r\n ", "  "]));
        }
    };
    ws(rng, out);
    match rng.below(if depth == 0 { 5 } else { 8 }) {
        0 => out.push_str(rng.pick(&["null", "true", "false"])),
        1 | 2 => out.push_str(&random_number(rng)),
        3 | 4 => random_string(rng, out),
        5 | 6 => {
            out.push('[');
            let n = rng.below(5);
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                }
                random_text(rng, depth - 1, out);
            }
            ws(rng, out);
            out.push(']');
        }
        _ => {
            out.push('{');
            let n = rng.below(5);
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                }
                ws(rng, out);
                random_string(rng, out);
                ws(rng, out);
                out.push(':');
                random_text(rng, depth - 1, out);
            }
            ws(rng, out);
            out.push('}');
        }
    }
    ws(rng, out);
}

/// A string literal from a few short pieces, raw or escaped.
pub(crate) fn random_string(rng: &mut Rng, out: &mut String) {
    out.push('"');
    for _ in 0..rng.below(3) {
        out.push_str(rng.pick(&[
            "a",
            "b",
            "\\u0061",
            "\\u0062",
            "é",
            "\\u00e9",
            "\\u00E9",
            "e\\u0301",
            "😀",
            "\\ud83d\\ude00",
            "\\uD83D\\uDE00",
            "\\n",
            "\\\"",
            "\\\\",
            "\\/",
            "/",
            "~",
            "*",
            "0",
            "\\u0000",
            "\\u001f",
            "\u{7f}",
            "\\t",
            "\\b\\f\\r",
        ]));
    }
    out.push('"');
}

/// Byte-level damage: the parser must still agree with serde_json.
pub(crate) fn perturb(rng: &mut Rng, text: &[u8]) -> Vec<u8> {
    let mut out = text.to_vec();
    for _ in 0..=rng.below(2) {
        let at = rng.below(out.len() + 1);
        let byte = rng.pick(&[
            b'"', b'\\', b',', b':', b'[', b']', b'{', b'}', b'0', b'1', b'-', b'.', b'e', b'+',
            b' ', b'u', b'd', b'8', b'n', 0x01, 0x80, 0xc3, 0xff,
        ]);
        match rng.below(3) {
            0 => out.insert(at, byte),
            1 if at < out.len() => {
                out.remove(at);
            }
            _ if at < out.len() => out[at] = byte,
            _ => out.push(byte),
        }
    }
    out
}

#[test]
fn random_documents_match_serde_json() {
    let mut rng = Rng::new(7);
    let (mut accepted, mut damaged_accepted) = (0, 0);
    for _ in 0..20_000 {
        let mut text = String::new();
        random_text(&mut rng, 4, &mut text);
        accepted += usize::from(check(text.as_bytes()));
        let damaged = perturb(&mut rng, text.as_bytes());
        damaged_accepted += usize::from(check(&damaged));
    }
    // Both kinds of input were exercised.
    assert!(
        accepted > 5_000 && damaged_accepted > 1_000,
        "{accepted} {damaged_accepted}"
    );
}

/// `parse_like(b, a)` must be `parse(b)`, nodes and errors alike, whatever
/// `a` is: here `b` is `a` damaged (mostly the same text), deeply nested
/// documents near the limit, and unrelated documents.
#[test]
fn parse_like_is_parse() {
    fn same(b: &[u8], a: &[u8]) {
        let Ok(like) = parse(a) else {
            return;
        };
        match (parse(b), parse_like(b, &like)) {
            (Ok(x), Ok(y)) => assert_eq!(x.slots, y.slots, "{:?} like {:?}", lossy(b), lossy(a)),
            (Err(x), Err(y)) => assert_eq!(x, y, "{:?} like {:?}", lossy(b), lossy(a)),
            (x, y) => panic!("{:?} like {:?}: {x:?} vs {y:?}", lossy(b), lossy(a)),
        }
    }
    fn lossy(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }
    let mut rng = Rng::new(11);
    let mut copied = 0;
    for _ in 0..20_000 {
        let mut a = String::new();
        random_text(&mut rng, 4, &mut a);
        let b = perturb(&mut rng, a.as_bytes());
        same(&b, a.as_bytes());
        same(a.as_bytes(), &b);
        let mut c = String::new();
        random_text(&mut rng, 4, &mut c);
        same(c.as_bytes(), a.as_bytes());
        if let (Ok(x), Ok(y)) = (parse(a.as_bytes()), parse(&b)) {
            copied += usize::from(x.slots.len() > 3 && x.slots.len() == y.slots.len());
        }
    }
    // Both parse, with the same shape: the case where most is copied.
    assert!(copied > 300, "{copied}");
    // Numbers that continue, and nesting at the limit.
    same(b"[12,1]", b"[12,1]");
    same(b"[123,1]", b"[12,1]");
    same(b"[12.5,1]", b"[12,1]");
    same(b"[12e3,1]", b"[12,1]");
    same(b"[truex]", b"[true]");
    let deep = |n: usize, inner: &str| format!("{}{inner}{}", "[".repeat(n), "]".repeat(n));
    for n in [MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1] {
        for m in [1, 2, 3] {
            same(
                deep(n, &deep(m, "1")).as_bytes(),
                deep(1, &deep(m, "1")).as_bytes(),
            );
            same(
                format!("[{},{}]", deep(n, "1"), deep(m, "1")).as_bytes(),
                format!("[{},{}]", deep(m, "1"), deep(m, "1")).as_bytes(),
            );
        }
    }
}
