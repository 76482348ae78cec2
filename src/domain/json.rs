//! Small helpers for building and reading JSON without indexing that can panic:
//! `serde_json::Value`'s `v["k"] = x` panics when `v` is not an object.

use serde_json::Value;

/// Set and read keys of JSON objects safely.
pub trait Obj {
    /// Set `key` when this is an object (anything else is left as it is).
    fn put(&mut self, key: &str, value: Value);
    /// The value at `key`, or `null` (absent, or not an object).
    fn at(&self, key: &str) -> &Value;
}

static NULL: Value = Value::Null;

impl Obj for Value {
    fn put(&mut self, key: &str, value: Value) {
        if let Some(o) = self.as_object_mut() {
            o.insert(key.to_string(), value);
        }
    }
    fn at(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }
}

/// `serde_json::json!` with the same syntax (keys are string literals or
/// variables) and the
/// same value, in less machine code: `json!` makes each key a `String` at the
/// call site, inserts members one call at a time and unwraps every leaf with a
/// panic location of its own; this lays the members out in an array and builds
/// the map in one function. A leaf that cannot be JSON (a map with keys that
/// are not strings) is `null` here where `json!` panics.
macro_rules! json {
    (null) => { ::serde_json::Value::Null };
    ([ $($tt:tt)* ]) => { $crate::domain::json::json!(@array [] $($tt)*) };
    ({ $($tt:tt)* }) => { $crate::domain::json::json!(@object [] $($tt)*) };
    (@array [$($done:expr,)*]) => { ::serde_json::Value::Array(::std::vec![$($done,)*]) };
    (@array [$($done:expr,)*] null $(, $($rest:tt)*)?) => {
        $crate::domain::json::json!(@array [$($done,)* ::serde_json::Value::Null,] $($($rest)*)?)
    };
    (@array [$($done:expr,)*] [$($a:tt)*] $(, $($rest:tt)*)?) => {
        $crate::domain::json::json!(@array [$($done,)* $crate::domain::json::json!([$($a)*]),] $($($rest)*)?)
    };
    (@array [$($done:expr,)*] {$($o:tt)*} $(, $($rest:tt)*)?) => {
        $crate::domain::json::json!(@array [$($done,)* $crate::domain::json::json!({$($o)*}),] $($($rest)*)?)
    };
    (@array [$($done:expr,)*] $e:expr $(, $($rest:tt)*)?) => {
        $crate::domain::json::json!(@array [$($done,)* $crate::domain::json::leaf(&$e),] $($($rest)*)?)
    };
    (@object [$($done:tt)*]) => {{
        let mut members: [(&str, ::serde_json::Value); _] = [$($done)*];
        $crate::domain::json::object(&mut members)
    }};
    (@object [$($done:tt)*] $k:tt : null $(, $($rest:tt)*)?) => {
        $crate::domain::json::json!(@object [$($done)* ($crate::domain::json::json!(@key $k), ::serde_json::Value::Null),] $($($rest)*)?)
    };
    (@object [$($done:tt)*] $k:tt : [$($a:tt)*] $(, $($rest:tt)*)?) => {
        $crate::domain::json::json!(@object [$($done)* ($crate::domain::json::json!(@key $k), $crate::domain::json::json!([$($a)*])),] $($($rest)*)?)
    };
    (@object [$($done:tt)*] $k:tt : {$($o:tt)*} $(, $($rest:tt)*)?) => {
        $crate::domain::json::json!(@object [$($done)* ($crate::domain::json::json!(@key $k), $crate::domain::json::json!({$($o)*})),] $($($rest)*)?)
    };
    (@object [$($done:tt)*] $k:tt : $v:expr $(, $($rest:tt)*)?) => {
        $crate::domain::json::json!(@object [$($done)* ($crate::domain::json::json!(@key $k), $crate::domain::json::leaf(&$v)),] $($($rest)*)?)
    };
    (@key $k:literal) => { $k };
    (@key $k:ident) => { $crate::domain::json::key(&$k) };
    ($other:expr) => { $crate::domain::json::leaf(&$other) };
}
pub(crate) use json;

/// A leaf of `json!`: the value as JSON (`null` if it cannot be).
pub fn leaf<T: serde::Serialize + ?Sized>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// A key of `json!` held in a variable.
pub fn key<K: AsRef<str> + ?Sized>(k: &K) -> &str {
    k.as_ref()
}

/// An object of `json!`: the members moved out of `members` (a later key wins).
pub fn object(members: &mut [(&str, Value)]) -> Value {
    let mut map = serde_json::Map::new();
    for (k, v) in members.iter_mut() {
        map.insert((*k).to_string(), std::mem::take(v));
    }
    Value::Object(map)
}

/// JSON text laid out one member per line (two spaces a level) with
/// everything else as it was written: the keys in their order, numbers and
/// strings spelled as the service sent them. `text` is valid JSON (a
/// `RawValue`'s); anything else comes out re-spaced, not checked.
pub fn indent(text: &str) -> String {
    fn newline(out: &mut String, depth: usize) {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    }
    let mut out = String::with_capacity(text.len() + text.len() / 2);
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                match chars.peek() {
                    // An empty object or list stays on its line.
                    Some(&close @ ('}' | ']')) => {
                        chars.next();
                        out.push(close);
                    }
                    _ => {
                        depth += 1;
                        newline(&mut out, depth);
                    }
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compact `json!` builds what `serde_json::json!` builds.
    #[test]
    fn the_compact_macro_builds_the_same_values() {
        let name = String::from("web-1");
        let ids = vec!["a", "b"];
        let n: Option<u64> = None;
        let key = "k";
        assert_eq!(super::json!({key: 1, "a": {key: [key]}}), serde_json::json!({key: 1, "a": {key: [key]}}));
        let made = super::json!({
            "name": name, "ids": ids, "none": n, "null": null, "nested": {"x": [1, "two", null, {"y": 2.5}], "e": {}},
            "len": name.len() as u64 + 1, "neg": -3, "flag": !ids.is_empty(), "list": [], "dup": 1, "dup": 2,
        });
        let want = serde_json::json!({
            "name": name, "ids": ids, "none": n, "null": null, "nested": {"x": [1, "two", null, {"y": 2.5}], "e": {}},
            "len": name.len() as u64 + 1, "neg": -3, "flag": !ids.is_empty(), "list": [], "dup": 1, "dup": 2,
        });
        assert_eq!(made, want);
        assert_eq!(super::json!(null), serde_json::json!(null));
        assert_eq!(super::json!([name, [1, 2], {}]), serde_json::json!([name, [1, 2], {}]));
        assert_eq!(super::json!(name), serde_json::json!(name));
        assert_eq!(super::json!({}), serde_json::json!({}));
    }

    #[test]
    fn put_and_at_never_panic() {
        let mut v = serde_json::json!({"a": {"b": 1}});
        v.put("c", serde_json::json!(2));
        assert_eq!(v.at("c"), &serde_json::json!(2));
        assert_eq!(v.at("a").at("b"), &serde_json::json!(1));
        assert_eq!(v.at("x").at("y"), &Value::Null);
        let mut n = serde_json::json!([1]);
        n.put("k", serde_json::json!(1));
        assert_eq!(n, serde_json::json!([1]), "not an object: left as it is");
    }

    #[test]
    fn indent_keeps_the_order_and_spelling_of_what_was_sent() {
        let sent = r#"{"z":1,"a":{"k":[1.50,"x, \"y\": {z}",{}],"e":[]},"n":null,"u":"\u00e9"}"#;
        let out = indent(sent);
        assert_eq!(
            out,
            "{\n  \"z\": 1,\n  \"a\": {\n    \"k\": [\n      1.50,\n      \"x, \\\"y\\\": {z}\",\n      {}\n    ],\n    \"e\": []\n  },\n  \"n\": null,\n  \"u\": \"\\u00e9\"\n}"
        );
        let back: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(sent).unwrap());
        assert_eq!(indent("{ \"a\" : [ ] }"), "{\n  \"a\": []\n}");
    }
}
