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
    use serde_json::json;

    #[test]
    fn put_and_at_never_panic() {
        let mut v = json!({"a": {"b": 1}});
        v.put("c", json!(2));
        assert_eq!(v.at("c"), &json!(2));
        assert_eq!(v.at("a").at("b"), &json!(1));
        assert_eq!(v.at("x").at("y"), &Value::Null);
        let mut n = json!([1]);
        n.put("k", json!(1));
        assert_eq!(n, json!([1]), "not an object: left as it is");
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
