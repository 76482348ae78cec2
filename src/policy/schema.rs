//! JSON Schema of policy files (`stackpilot policy schema`), for editors that
//! validate TOML against a schema (taplo, even-better-toml).
//!
//! The document is checked-in text (`schema.json`, in the form
//! `serde_json::to_string_pretty` gives, keys sorted) rather than a value built
//! at run time: built with `json!`, it was some 110 KB of machine code.

use serde_json::Value;

/// The schema as `stackpilot policy schema` prints it (ends with a newline).
pub const TEXT: &str = include_str!("schema.json");

/// The schema of a policy file (`Null` if `TEXT` were not JSON, which the tests rule out).
pub fn schema() -> Value {
    serde_json::from_slice(TEXT.as_bytes()).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The text is JSON in the printed form: pretty, keys sorted, one newline at the end.
    #[test]
    fn the_text_is_the_pretty_printed_document() {
        let v: Value = serde_json::from_str(TEXT).unwrap();
        assert_eq!(format!("{}\n", serde_json::to_string_pretty(&v).unwrap()), TEXT);
        assert_eq!(v["$schema"], json!("http://json-schema.org/draft-07/schema#"));
        assert_eq!(v.pointer("/properties/backup/required"), Some(&json!(["select"])));
        assert_eq!(
            v.pointer(
                "/properties/scaling/properties/behavior/properties/scale_down/properties/stabilization/description"
            ),
            Some(&json!("a duration: 30s, 10m, 1h, or seconds"))
        );
    }

    /// Every key of a shipped policy is described by the schema (and nothing the
    /// loader rejects is allowed by it).
    #[test]
    fn shipped_policies_only_use_keys_of_the_schema() {
        fn walk(v: &toml::Value, schema: &Value, path: &str) {
            if let toml::Value::Table(t) = v {
                // A free-form map (metadata) takes any key.
                if schema.get("properties").is_none()
                    && schema.get("additionalProperties").is_some_and(|a| a != &json!(false))
                {
                    return;
                }
                for (k, val) in t {
                    let sub = schema
                        .pointer(&format!("/properties/{k}"))
                        .unwrap_or_else(|| panic!("{path}.{k} is not in the schema"));
                    let sub = if sub.get("type") == Some(&json!("array")) {
                        sub.get("items").cloned().unwrap_or(Value::Null)
                    } else {
                        sub.clone()
                    };
                    match val {
                        toml::Value::Array(a) => a.iter().for_each(|x| walk(x, &sub, &format!("{path}.{k}[]"))),
                        other => walk(other, &sub, &format!("{path}.{k}")),
                    }
                }
            }
        }
        let s = schema();
        for text in [
            include_str!("../../assets/demo/policies/web.toml"),
            include_str!("../../assets/demo/policies/worker.toml"),
            include_str!("../../config/policies/example.toml"),
        ] {
            let v: toml::Value = toml::from_str(text).unwrap();
            walk(&v, &s, "");
        }
    }
}
