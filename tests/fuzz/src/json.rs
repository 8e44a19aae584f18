//! JSON-level mutators: every field of a document (found by [`paths`]) set
//! to values of every wrong type ([`WRONG_VALUES`]) or removed, keys
//! duplicated, deep nesting (built as text: a deep `serde_json::Value`
//! would itself overflow the stack when dropped), non-UTF-8 bytes inside
//! strings, and huge documents.
//!
//! Values are raw JSON text, so that numbers no `serde_json::Value` holds
//! (`18446744073709551616`, `1e400`, `-0`) can be written too.

use crate::Rng;
use serde_json::Value;

/// Raw JSON values of every type and on every numeric boundary, each with a
/// short label for case names.
pub const WRONG_VALUES: [(&str, &str); 24] = [
    ("null", "null"),
    ("true", "true"),
    ("false", "false"),
    ("zero", "0"),
    ("neg-zero", "-0"),
    ("minus-one", "-1"),
    ("one", "1"),
    ("half", "1.5"),
    ("1e12", "1e12"),
    ("1e12-int", "1000000000000"),
    ("2^31", "2147483648"),
    ("2^32", "4294967296"),
    ("2^62", "4611686018427387904"),
    ("u64-max", "18446744073709551615"),
    ("2^64", "18446744073709551616"),
    ("1e400", "1e400"),
    ("neg-big", "-9223372036854775809"),
    ("str-12", "\"12\""),
    ("str-empty", "\"\""),
    ("str-surrogate", "\"\\ud800\""),
    ("arr-empty", "[]"),
    ("arr", "[1, 2, 3]"),
    ("obj-empty", "{}"),
    ("obj", "{\"a\": 1}"),
];

/// One step of a path into a JSON document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    /// An object's key.
    Key(String),
    /// An array's index.
    Index(usize),
}

/// A path as text, for case names: `text_config.hidden_size`, `shape.0`.
pub fn path_name(path: &[Seg]) -> String {
    let parts: Vec<String> = path
        .iter()
        .map(|s| match s {
            Seg::Key(k) => k.clone(),
            Seg::Index(i) => i.to_string(),
        })
        .collect();
    parts.join(".")
}

/// The path of every value inside `doc` (not the root), parents before
/// children. Of an array or object with more than `max_children` entries,
/// only the first `max_children` are entered.
pub fn paths(doc: &Value, max_children: usize) -> Vec<Vec<Seg>> {
    let mut out = Vec::new();
    let mut stack: Vec<(Vec<Seg>, &Value)> = vec![(Vec::new(), doc)];
    while let Some((path, value)) = stack.pop() {
        if !path.is_empty() {
            out.push(path.clone());
        }
        let children: Vec<(Seg, &Value)> = match value {
            Value::Object(m) => m.iter().take(max_children).map(|(k, v)| (Seg::Key(k.clone()), v)).collect(),
            Value::Array(a) => a.iter().take(max_children).enumerate().map(|(i, v)| (Seg::Index(i), v)).collect(),
            _ => Vec::new(),
        };
        for (seg, child) in children.into_iter().rev() {
            let mut p = path.clone();
            p.push(seg);
            stack.push((p, child));
        }
    }
    out
}

/// The value at `path`, mutably.
fn at_mut<'a>(doc: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    path.iter().try_fold(doc, |v, seg| match (seg, v) {
        (Seg::Key(k), Value::Object(m)) => m.get_mut(k),
        (Seg::Index(i), Value::Array(a)) => a.get_mut(*i),
        _ => None,
    })
}

/// The value at `path`.
pub fn at<'a>(doc: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |v, seg| match (seg, v) {
        (Seg::Key(k), Value::Object(m)) => m.get(k),
        (Seg::Index(i), Value::Array(a)) => a.get(*i),
        _ => None,
    })
}

/// Marks the spot a raw value goes (serialised as `"\u0001fuzz\u0001"`).
const PLACEHOLDER: &str = "\u{1}fuzz\u{1}";
const PLACEHOLDER_JSON: &str = "\"\\u0001fuzz\\u0001\"";

/// `doc` serialised with the value at `path` replaced by the raw JSON
/// `raw` (set as a new key when the parent object lacks it).
pub fn replace(doc: &Value, path: &[Seg], raw: &str) -> String {
    let mut doc = doc.clone();
    let placed = match path.split_last() {
        None => return raw.to_string(),
        Some((Seg::Key(k), parent)) => match at_mut(&mut doc, parent) {
            Some(Value::Object(m)) => {
                m.insert(k.clone(), Value::String(PLACEHOLDER.into()));
                true
            }
            _ => false,
        },
        Some((Seg::Index(_), _)) => match at_mut(&mut doc, path) {
            Some(v) => {
                *v = Value::String(PLACEHOLDER.into());
                true
            }
            None => false,
        },
    };
    let text = doc.to_string();
    if placed {
        text.replacen(PLACEHOLDER_JSON, raw, 1)
    } else {
        text
    }
}

/// `doc` serialised without the value at `path` (an array entry or an
/// object key).
pub fn remove(doc: &Value, path: &[Seg]) -> String {
    let mut doc = doc.clone();
    if let Some((last, parent)) = path.split_last() {
        match (last, at_mut(&mut doc, parent)) {
            (Seg::Key(k), Some(Value::Object(m))) => {
                m.remove(k);
            }
            (Seg::Index(i), Some(Value::Array(a))) if *i < a.len() => {
                a.remove(*i);
            }
            _ => {}
        }
    }
    doc.to_string()
}

/// `depth` nested arrays: `[[[...]]]`.
pub fn nested_arrays(depth: usize) -> String {
    let mut s = "[".repeat(depth);
    s += &"]".repeat(depth);
    s
}

/// `depth` nested objects: `{"a":{"a":...1}}`.
pub fn nested_objects(depth: usize) -> String {
    let mut s = "{\"a\":".repeat(depth);
    s.push('1');
    s += &"}".repeat(depth);
    s
}

/// `text` with a second `"key": raw` entry put before the first occurrence
/// of `"key":` (a duplicate key in whichever object holds it), or `None`
/// when the text has no such key.
pub fn duplicate_key(text: &str, key: &str, raw: &str) -> Option<String> {
    let needle = format!("{}:", Value::String(key.into()));
    let at = text.find(&needle)?;
    Some(format!("{}{needle}{raw},{}", &text[..at], &text[at..]))
}

/// `text` with one byte inside a string literal replaced by a byte that is
/// not valid UTF-8 there (0xff, 0xc3 without its continuation, 0x80, or a
/// UTF-8-encoded surrogate); `None` when the text has no string content.
pub fn non_utf8(text: &str, rng: &mut Rng) -> Option<(String, Vec<u8>)> {
    let bytes = text.as_bytes();
    // Positions of bytes inside string literals (after an opening quote).
    let mut inside = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            } else {
                inside.push(i);
            }
        } else if b == b'"' {
            in_string = true;
        }
    }
    if inside.is_empty() {
        return None;
    }
    let i = *rng.pick(&inside);
    const BAD: [&[u8]; 4] = [&[0xff], &[0xc3], &[0x80], &[0xed, 0xa0, 0x80]];
    let bad = BAD[rng.below(BAD.len())];
    let mut out = bytes[..i].to_vec();
    out.extend_from_slice(bad);
    out.extend_from_slice(&bytes[i + 1..]);
    Some((format!("non-utf8@{i}={:02x?}", bad), out))
}

/// The documents every JSON loader gets whatever its target: empty, not an
/// object, truncated syntax, deep nesting, a byte-order mark, trailing
/// garbage. (label, bytes).
pub fn malformed_documents() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = [
        ("empty", ""),
        ("space", " "),
        ("null", "null"),
        ("number", "12"),
        ("string", "\"{}\""),
        ("array", "[]"),
        ("open", "{"),
        ("close", "}"),
        ("unterminated-key", "{\"a"),
        ("trailing-comma", "{\"a\": 1,}"),
        ("trailing-garbage", "{} x"),
        ("two-objects", "{}{}"),
        ("nan", "{\"a\": NaN}"),
        ("comment", "{/* c */}"),
        ("single-quotes", "{'a': 1}"),
        ("nul", "{\"a\u{0}\": 1}"),
    ]
    .iter()
    .map(|(l, t)| (l.to_string(), t.as_bytes().to_vec()))
    .collect();
    out.push(("bom".into(), b"\xef\xbb\xbf{}".to_vec()));
    out.push(("latin1".into(), b"{\"caf\xe9\": 1}".to_vec()));
    for depth in [128, 129, 10_000] {
        out.push((format!("nested-arrays-{depth}"), nested_arrays(depth).into_bytes()));
        out.push((format!("nested-objects-{depth}"), nested_objects(depth).into_bytes()));
    }
    out.push(("nested-in-field".into(), format!("{{\"a\": {}}}", nested_arrays(10_000)).into_bytes()));
    out
}

/// A huge object of `n` keys `k0..`, each mapped to `value`.
pub fn huge_object(n: usize, value: &str) -> String {
    let mut s = String::with_capacity(n * (value.len() + 12));
    s.push('{');
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s += &format!("\"k{i}\":{value}");
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_replace_and_remove() {
        let doc: Value = serde_json::from_str(r#"{"a": {"b": [1, 2]}, "c": "x"}"#).unwrap();
        let p = paths(&doc, 8);
        let names: Vec<String> = p.iter().map(|p| path_name(p)).collect();
        assert_eq!(names, vec!["a", "a.b", "a.b.0", "a.b.1", "c"]);
        assert_eq!(replace(&doc, &p[2], "1e400"), r#"{"a":{"b":[1e400,2]},"c":"x"}"#);
        assert_eq!(replace(&doc, &[Seg::Key("new".into())], "-0"), r#"{"a":{"b":[1,2]},"c":"x","new":-0}"#);
        assert_eq!(remove(&doc, &p[1]), r#"{"a":{},"c":"x"}"#);
        assert_eq!(at(&doc, &p[3]), Some(&Value::from(2)));
        assert_eq!(paths(&doc, 1).len(), 3);
    }

    #[test]
    fn text_mutators() {
        assert_eq!(nested_arrays(2), "[[]]");
        assert_eq!(nested_objects(1), "{\"a\":1}");
        assert_eq!(duplicate_key(r#"{"x":{"k":1}}"#, "k", "2").unwrap(), r#"{"x":{"k":2,"k":1}}"#);
        assert!(duplicate_key("{}", "k", "2").is_none());
        let (_, bytes) = non_utf8(r#"{"key": 1}"#, &mut Rng::new(3)).unwrap();
        assert!(std::str::from_utf8(&bytes).is_err());
        assert!(non_utf8("[1, 2]", &mut Rng::new(3)).is_none());
        assert_eq!(huge_object(2, "0"), r#"{"k0":0,"k1":0}"#);
        for (label, bytes) in malformed_documents() {
            let parsed = std::str::from_utf8(&bytes).ok().and_then(|t| serde_json::from_str::<Value>(t).ok());
            assert!(
                !matches!(parsed, Some(Value::Object(_))) || label == "two-objects" || label.starts_with("nested-objects-128"),
                "{label}"
            );
        }
    }
}
