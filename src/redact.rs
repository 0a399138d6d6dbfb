//! JSON text for samples with the `capture.redact` locations blanked.
//!
//! A value leaves the proxy as its exact text (`10.0` stays `10.0`, big
//! integers keep every digit), except where a redact pattern reaches: a
//! covered location reads `"[redacted]"`, and a container with a redacted
//! location somewhere below it is rewritten member by member so that only
//! that location is blanked. Nothing is re-serialized that needs not be.

use std::borrow::Cow;

use crate::json::{Kind, Value};
use crate::pointer::{PathSeg, PointerPattern};

/// The JSON text a redacted value is replaced with.
pub const REDACTED: &str = "\"[redacted]\"";

/// Is the location itself (or one above it) redacted?
pub fn covered(patterns: &[PointerPattern], path: &[PathSeg]) -> bool {
    patterns.iter().any(|p| p.covers(path))
}

/// The text of `value`, found at `path`, with every location a pattern
/// covers replaced by [`REDACTED`].
pub fn text(value: Value<'_>, path: &[PathSeg], patterns: &[PointerPattern]) -> String {
    let mut out = String::new();
    let mut path: Vec<PathSeg> = path.to_vec();
    write(value, &mut path, patterns, &mut out);
    out
}

fn write<'a>(
    value: Value<'a>,
    path: &mut Vec<PathSeg<'a>>,
    patterns: &[PointerPattern],
    out: &mut String,
) {
    if covered(patterns, path) {
        out.push_str(REDACTED);
        return;
    }
    if !patterns.iter().any(|p| p.reaches_below(path)) {
        out.push_str(value.text());
        return;
    }
    match value.kind() {
        Kind::Object => {
            out.push('{');
            for (i, (key, member)) in value.members().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(key.text());
                out.push(':');
                path.push(PathSeg::Key(key.str().unwrap_or(Cow::Borrowed(""))));
                write(member, path, patterns, out);
                path.pop();
            }
            out.push('}');
        }
        Kind::Array => {
            out.push('[');
            for (i, element) in value.elements().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                path.push(PathSeg::Index(i));
                write(element, path, patterns, out);
                path.pop();
            }
            out.push(']');
        }
        _ => out.push_str(value.text()),
    }
}

/// A whole JSON body with its redacted locations blanked, or `None` when
/// it is not JSON.
pub fn body(bytes: &[u8], patterns: &[PointerPattern]) -> Option<String> {
    let doc = crate::json::parse(bytes).ok()?;
    let root = doc.root()?;
    Some(text(root, &[], patterns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(list: &[&str]) -> Vec<PointerPattern> {
        list.iter()
            .map(|p| PointerPattern::parse(p).unwrap())
            .collect()
    }

    fn redact(json: &str, list: &[&str]) -> String {
        body(json.as_bytes(), &pats(list)).unwrap()
    }

    #[test]
    fn untouched_text_is_kept_exactly() {
        let doc = r#"{ "price" : 10.0, "big": 123456789012345678901234567890 }"#;
        assert_eq!(redact(doc, &[]), doc);
        // A pattern that could reach inside: the containers on its way are
        // rewritten (without their whitespace), the values kept exactly.
        assert_eq!(
            redact(doc, &["/other/x"]),
            r#"{"price":10.0,"big":123456789012345678901234567890}"#
        );
    }

    #[test]
    fn covered_locations_are_blanked() {
        let doc = r#"{"user":{"ssn":"123-45-6789","name":"Ann"},"cards":[{"pan":"4111","exp":"12/30"},{"pan":"5500"}]}"#;
        let out = redact(doc, &["/user/ssn", "/cards/*/pan"]);
        assert_eq!(
            out,
            r#"{"user":{"ssn":"[redacted]","name":"Ann"},"cards":[{"pan":"[redacted]","exp":"12/30"},{"pan":"[redacted]"}]}"#
        );
        assert!(!out.contains("4111") && !out.contains("123-45"));
        // The root covered: everything.
        assert_eq!(redact(doc, &[""]), REDACTED);
        // Whole subtrees.
        assert_eq!(
            redact(r#"{"a":{"b":1},"c":2}"#, &["/a"]),
            r#"{"a":"[redacted]","c":2}"#
        );
    }

    #[test]
    fn repeated_and_escaped_keys() {
        // Every occurrence of a repeated key; keys compared decoded.
        let out = redact(r#"{"s":1,"s":2,"t\u0000":3,"a\/b":4}"#, &["/s", "/a~1b"]);
        assert_eq!(
            out,
            r#"{"s":"[redacted]","s":"[redacted]","t\u0000":3,"a\/b":"[redacted]"}"#
        );
    }

    #[test]
    fn values_below_a_path() {
        let doc = crate::json::parse(br#"{"user":{"ssn":"1","name":"x"}}"#).unwrap();
        let user = doc.root().unwrap().members().next().unwrap().1;
        let at = [PathSeg::Key("user".into())];
        assert_eq!(
            text(user, &at, &pats(&["/user/ssn"])),
            r#"{"ssn":"[redacted]","name":"x"}"#
        );
        assert!(covered(&pats(&["/user"]), &at));
        assert!(!covered(&pats(&["/user/ssn"]), &at));
    }

    #[test]
    fn not_json() {
        assert_eq!(body(b"<html>", &[]), None);
    }
}
