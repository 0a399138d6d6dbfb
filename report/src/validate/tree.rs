//! A parsed YAML or JSON document that remembers the line of every value,
//! so that a finding can point at the line it is about.

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};
use std::fmt;

/// A value and the line it starts on (1-based; 0 when unknown, as for
/// JSON files).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: u64,
    pub value: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Node>),
    /// In document order.
    Object(Vec<(String, Node)>),
}

impl Node {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Kind::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Kind::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Node::as_str)
    }

    pub fn is_object(&self) -> bool {
        matches!(self.value, Kind::Object(_))
    }

    pub fn array(&self) -> &[Node] {
        match &self.value {
            Kind::Array(items) => items,
            _ => &[],
        }
    }

    /// `self` as a serde_json value (duplicate keys cannot occur: both
    /// parsers refuse them).
    pub fn to_json(&self) -> Value {
        match &self.value {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Number(n) => Value::Number(n.clone()),
            Kind::String(s) => Value::String(s.clone()),
            Kind::Array(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// A serde_json value as a tree without lines.
    pub fn from_json(v: &Value) -> Node {
        let value = match v {
            Value::Null => Kind::Null,
            Value::Bool(b) => Kind::Bool(*b),
            Value::Number(n) => Kind::Number(n.clone()),
            Value::String(s) => Kind::String(s.clone()),
            Value::Array(items) => Kind::Array(items.iter().map(Node::from_json).collect()),
            Value::Object(members) => Kind::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), Node::from_json(v)))
                    .collect(),
            ),
        };
        Node { line: 0, value }
    }

    /// The line of the deepest value on `path` (a darklaunch error path such
    /// as `launches[1].sample.percent`), or of `self` when nothing of it is
    /// there.
    pub fn line_of(&self, path: &str) -> u64 {
        let mut node = self;
        for seg in path_segments(path) {
            let next = match seg {
                Seg::Key(k) => node.get(k),
                Seg::Index(i) => node.array().get(i),
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.line
    }
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// `a.b[2].c` -> a, b, 2, c. Best effort: a key holding `.` or `[` (a header
/// name in `request_headers.set` cannot) stops the walk early.
fn path_segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            let (key, idx) = rest.split_at(open);
            if !key.is_empty() {
                out.push(Seg::Key(key));
            }
            rest = idx;
            while let Some(tail) = rest.strip_prefix('[') {
                let Some((num, after)) = tail.split_once(']') else {
                    return out;
                };
                match num.parse() {
                    Ok(i) => out.push(Seg::Index(i)),
                    Err(_) => return out,
                }
                rest = after;
            }
        } else {
            out.push(Seg::Key(rest));
        }
    }
    out
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        let spanned = serde_saphyr::Spanned::<Kind>::deserialize(d)?;
        Ok(Node {
            line: spanned.referenced.line(),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_none<E>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        Kind::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Kind, E> {
        Ok(Kind::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Kind, E> {
        Ok(Kind::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Kind, E> {
        Ok(Kind::Number(n.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Kind, E> {
        Number::from_f64(n)
            .map(Kind::Number)
            .ok_or_else(|| E::custom(format!("{n} has no JSON form")))
    }
    fn visit_str<E>(self, s: &str) -> Result<Kind, E> {
        Ok(Kind::String(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Kind, E> {
        Ok(Kind::String(s))
    }
    fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<Kind, E> {
        String::from_utf8(b.to_vec())
            .map(Kind::String)
            .map_err(|_| E::custom("binary data is not text"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Kind::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut members: Vec<(String, Node)> = Vec::new();
        while let Some(key) = map.next_key::<KeyText>()? {
            let value = map.next_value::<Node>()?;
            if members.iter().any(|(k, _)| *k == key.0) {
                return Err(A::Error::custom(format!("duplicate key {:?}", key.0)));
            }
            members.push((key.0, value));
        }
        Ok(Kind::Object(members))
    }
}

/// A mapping key as text. YAML allows any scalar as a key; Kubernetes and
/// Envoy turn them into JSON object keys, i.e. strings (`1` -> "1",
/// `true` -> "true").
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyText, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E>(self, s: &str) -> Result<KeyText, E> {
                Ok(KeyText(s.to_string()))
            }
            fn visit_bool<E>(self, b: bool) -> Result<KeyText, E> {
                Ok(KeyText(b.to_string()))
            }
            fn visit_i64<E>(self, n: i64) -> Result<KeyText, E> {
                Ok(KeyText(n.to_string()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<KeyText, E> {
                Ok(KeyText(n.to_string()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<KeyText, E> {
                Ok(KeyText(n.to_string()))
            }
            fn visit_unit<E>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".into()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(text: &str) -> Vec<Node> {
        serde_saphyr::from_multiple(text).unwrap()
    }

    #[test]
    fn lines_of_documents_and_values() {
        let d = docs("# c\na: 1\n---\nb:\n  c: off\n  d:\n    - x: 1\n    - 5\n");
        assert_eq!((d[0].line, d[1].line), (2, 4));
        let b = d[1].get("b").unwrap();
        assert_eq!(b.get("c").unwrap().value, Kind::Bool(false));
        assert_eq!(d[1].line_of("b.c"), 5);
        assert_eq!(d[1].line_of("b.d[1]"), 8);
        assert_eq!(d[1].line_of("b.d[0].x"), 7);
        assert_eq!(d[1].line_of("b.d[0].nope"), 7);
        assert_eq!(d[1].line_of("b.d[9].x"), 7);
        assert_eq!(d[1].line_of(""), 4);
    }

    #[test]
    fn json_round_trip() {
        let v: Value = serde_json::from_str(r#"{"a":[1,2.5,"x",null,true],"b":{}}"#).unwrap();
        assert_eq!(Node::from_json(&v).to_json(), v);
        let d = docs("a: [1, 2.5, x, ~, yes]\nb: {}\n");
        assert_eq!(d[0].to_json(), v);
    }

    #[test]
    fn scalar_keys_become_text() {
        let d = docs("1: a\ntrue: b\n");
        assert_eq!(d[0].get_str("1"), Some("a"));
        assert_eq!(d[0].get_str("true"), Some("b"));
    }
}
