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
}
