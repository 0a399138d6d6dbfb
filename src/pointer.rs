//! JSON pointer patterns (RFC 6901) with a `*` wildcard segment.
//!
//! A pattern such as `/items/*/etag` names a set of locations inside a JSON
//! document; `*` matches any single object key or array index. Concrete
//! locations are [`PathSeg`] slices built while walking a document.

use std::borrow::Cow;
use std::fmt::Write as _;

/// One segment of a [`PointerPattern`].
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// `*`: any object key or array index. RFC 6901 has no way to escape `*`,
    /// so a key literally named `*` is matched by the wildcard too.
    Any,
    /// A literal token, already unescaped (`~1` -> `/`, `~0` -> `~`).
    Key(String),
}

/// A compiled pointer pattern; the empty pattern is the document root.
#[derive(Debug, Clone, PartialEq)]
pub struct PointerPattern {
    segments: Vec<Segment>,
}

/// One step of a concrete location inside a JSON document. Keys are
/// usually borrowed from the document being walked (no allocation per key).
#[derive(Debug, Clone, PartialEq)]
pub enum PathSeg<'a> {
    Key(Cow<'a, str>),
    Index(usize),
}

impl PointerPattern {
    /// Parse `""` (root) or `"/a/b/*/c"`. Errors are short human strings.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Ok(Self {
                segments: Vec::new(),
            });
        }
        let Some(rest) = s.strip_prefix('/') else {
            return Err("must be empty or start with '/'".to_string());
        };
        let segments = rest
            .split('/')
            .map(|token| {
                if token == "*" {
                    Ok(Segment::Any)
                } else {
                    unescape(token).map(Segment::Key)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { segments })
    }

    /// The parsed segments, root first.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// True when this pattern equals `path` or is a prefix of it, segment by
    /// segment, `*` matching any single segment.
    pub fn covers(&self, path: &[PathSeg]) -> bool {
        self.segments.len() <= path.len()
            && self
                .segments
                .iter()
                .zip(path)
                .all(|(pat, seg)| segment_matches(pat, seg))
    }

    /// True when the pattern could match something strictly below `path`:
    /// it is longer and its first segments match `path`. (The reference
    /// comparator's rule, and redaction's.)
    pub fn reaches_below(&self, path: &[PathSeg]) -> bool {
        self.segments.len() > path.len()
            && self
                .segments
                .iter()
                .zip(path)
                .all(|(pat, seg)| segment_matches(pat, seg))
    }

    /// True when the pattern matches exactly this path (same length).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn matches_exactly(&self, path: &[PathSeg]) -> bool {
        self.segments.len() == path.len() && self.covers(path)
    }

    /// The number of segments (0 for the root).
    pub fn depth(&self) -> usize {
        self.segments.len()
    }

    /// True when segment `i` of the pattern exists and matches `seg`: the
    /// step-by-step form of [`covers`](Self::covers), for callers that
    /// extend a path one segment at a time.
    pub fn matches_segment(&self, i: usize, seg: &PathSeg) -> bool {
        self.segments
            .get(i)
            .is_some_and(|pat| segment_matches(pat, seg))
    }
}

fn segment_matches(pat: &Segment, seg: &PathSeg) -> bool {
    match (pat, seg) {
        (Segment::Any, _) => true,
        (Segment::Key(k), PathSeg::Key(s)) => k.as_str() == s.as_ref(),
        // A pointer addresses array elements by their decimal index; comparing
        // against the rendered index rejects forms like "01" or "+1".
        (Segment::Key(k), PathSeg::Index(i)) => is_index(k, *i),
    }
}

/// `k` is exactly the decimal rendering of `i` (no sign, no leading zero),
/// without allocating.
fn is_index(k: &str, i: usize) -> bool {
    let canonical = k.bytes().all(|b| b.is_ascii_digit()) && (k == "0" || !k.starts_with('0'));
    canonical && k.parse::<usize>() == Ok(i)
}

fn unescape(token: &str) -> Result<String, String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('~'),
            Some('1') => out.push('/'),
            Some(other) => return Err(format!("invalid escape '~{other}'")),
            None => return Err("invalid escape '~' at end of segment".to_string()),
        }
    }
    Ok(out)
}

/// Render as an RFC 6901 pointer string, escaping `~` and `/`; `""` for the root.
pub fn render(path: &[PathSeg]) -> String {
    render_with(path, false)
}

/// Like [`render`], with every array index folded to `*`
/// (`/items/3/price` -> `/items/*/price`), so that the same field of every
/// element of an array has one name. The result is a valid pattern for
/// [`PointerPattern::parse`] that covers the location. A key literally named
/// `*` renders the same way (RFC 6901 cannot escape it).
pub fn render_folded(path: &[PathSeg]) -> String {
    render_with(path, true)
}

fn render_with(path: &[PathSeg], fold: bool) -> String {
    let mut out = String::new();
    for seg in path {
        out.push('/');
        match seg {
            PathSeg::Key(k) => {
                for c in k.chars() {
                    match c {
                        '~' => out.push_str("~0"),
                        '/' => out.push_str("~1"),
                        c => out.push(c),
                    }
                }
            }
            PathSeg::Index(_) if fold => out.push('*'),
            PathSeg::Index(i) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "{i}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> PathSeg<'_> {
        PathSeg::Key(s.into())
    }

    fn p(s: &str) -> PointerPattern {
        PointerPattern::parse(s).unwrap()
    }

    #[test]
    fn parse_root() {
        assert_eq!(p("").segments(), &[] as &[Segment]);
    }

    #[test]
    fn parse_segments_and_wildcard() {
        assert_eq!(
            p("/a/*/0").segments(),
            &[
                Segment::Key("a".into()),
                Segment::Any,
                Segment::Key("0".into())
            ]
        );
    }

    #[test]
    fn parse_empty_tokens() {
        // "/" is the key "" at the root; "//" is "" then "".
        assert_eq!(p("/").segments(), &[Segment::Key(String::new())]);
        assert_eq!(
            p("/a//").segments(),
            &[
                Segment::Key("a".into()),
                Segment::Key(String::new()),
                Segment::Key(String::new())
            ]
        );
    }

    #[test]
    fn parse_escapes() {
        assert_eq!(p("/a~1b").segments(), &[Segment::Key("a/b".into())]);
        assert_eq!(p("/m~0n").segments(), &[Segment::Key("m~n".into())]);
        // ~01 is "~1" literally, not "/".
        assert_eq!(p("/~01").segments(), &[Segment::Key("~1".into())]);
        // Only a bare "*" is the wildcard.
        assert_eq!(p("/a*").segments(), &[Segment::Key("a*".into())]);
        assert_eq!(p("/é/ü").segments().len(), 2);
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            PointerPattern::parse("a/b").unwrap_err(),
            "must be empty or start with '/'"
        );
        assert_eq!(
            PointerPattern::parse("/a~2").unwrap_err(),
            "invalid escape '~2'"
        );
        assert!(PointerPattern::parse("/a~").unwrap_err().contains("'~'"));
        assert!(PointerPattern::parse("/~é").is_err());
        assert!(PointerPattern::parse("*").is_err());
    }

    #[test]
    fn covers_prefix_and_wildcard() {
        let path = [key("items"), PathSeg::Index(3), key("etag")];
        assert!(p("").covers(&path));
        assert!(p("/items").covers(&path));
        assert!(p("/items/*").covers(&path));
        assert!(p("/items/3").covers(&path));
        assert!(p("/items/*/etag").covers(&path));
        assert!(p("/*/*/*").covers(&path));
        assert!(!p("/items/*/etag/x").covers(&path));
        assert!(!p("/items/03").covers(&path));
        assert!(!p("/items/4").covers(&path));
        assert!(!p("/other").covers(&path));
        assert!(!p("/items/*/id").covers(&path));
        assert!(p("").covers(&[]));
        assert!(!p("/a").covers(&[]));
    }

    #[test]
    fn index_segments_are_canonical_decimals() {
        for (k, i, want) in [
            ("0", 0, true),
            ("12", 12, true),
            ("012", 12, false),
            ("00", 0, false),
            ("+1", 1, false),
            ("-0", 0, false),
            ("", 0, false),
            (" 1", 1, false),
            ("1 ", 1, false),
            ("99999999999999999999999", 0, false),
            ("18446744073709551615", usize::MAX, true),
        ] {
            assert_eq!(
                p(&format!("/{k}")).covers(&[PathSeg::Index(i)]),
                want,
                "{k:?}"
            );
        }
    }

    #[test]
    fn covers_escaped_key() {
        assert!(p("/a~1b").covers(&[key("a/b")]));
        assert!(!p("/a~1b").covers(&[key("a"), key("b")]));
        assert!(p("/*").covers(&[key("*")]));
    }

    #[test]
    fn matches_exactly_requires_same_length() {
        let path = [key("items"), PathSeg::Index(0)];
        assert!(p("/items/*").matches_exactly(&path));
        assert!(p("/items/0").matches_exactly(&path));
        assert!(!p("/items").matches_exactly(&path));
        assert!(!p("/items/*/x").matches_exactly(&path));
        assert!(p("").matches_exactly(&[]));
    }

    #[test]
    fn render_paths() {
        assert_eq!(render(&[]), "");
        assert_eq!(render(&[key("a"), PathSeg::Index(12), key("b")]), "/a/12/b");
        assert_eq!(render(&[key("a/b~c")]), "/a~1b~0c");
        assert_eq!(render(&[key("")]), "/");
    }

    #[test]
    fn render_folded_paths() {
        assert_eq!(render_folded(&[]), "");
        assert_eq!(
            render_folded(&[key("items"), PathSeg::Index(12), key("a/b")]),
            "/items/*/a~1b"
        );
        assert_eq!(
            render_folded(&[PathSeg::Index(0), PathSeg::Index(1)]),
            "/*/*"
        );
        // "0" as a key stays a key.
        assert_eq!(render_folded(&[key("0")]), "/0");
        let path = [key("items"), PathSeg::Index(3), key("price")];
        assert!(p(&render_folded(&path)).matches_exactly(&path));
    }

    #[test]
    fn matches_segment_steps_like_covers() {
        let path = [key("items"), PathSeg::Index(3), key("etag")];
        for pat in [
            "",
            "/items",
            "/items/*",
            "/items/3/etag",
            "/*/*/*/x",
            "/x",
            "/items/03",
        ] {
            let q = p(pat);
            // covers == every segment of the pattern matches, step by step.
            let stepwise =
                q.depth() <= path.len() && (0..q.depth()).all(|i| q.matches_segment(i, &path[i]));
            assert_eq!(stepwise, q.covers(&path), "{pat}");
        }
        assert!(!p("/a").matches_segment(1, &key("a")));
        assert_eq!(p("/a/*").depth(), 2);
        assert!(p("/a~1b").matches_segment(0, &PathSeg::Key(String::from("a/b").into())));
    }

    #[test]
    fn render_parse_round_trip() {
        let path = [key("x/~y"), key("*z"), PathSeg::Index(7)];
        assert!(p(&render(&path)).matches_exactly(&path));
    }
}
