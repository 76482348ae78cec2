//! JSON Schema of policy files (`stackpilot policy schema`), for editors that
//! validate TOML against a schema (taplo, even-better-toml).

use serde_json::{json, Value};

fn duration() -> Value {
    json!({"oneOf": [{"type": "string", "pattern": "^([0-9]+(ms|s|m|h|d|w))+$"}, {"type": "integer", "minimum": 0}], "description": "a duration: 30s, 10m, 1h, or seconds"})
}

fn file() -> Value {
    json!({"type": "object", "additionalProperties": false, "required": ["path", "content"], "properties": {
        "path": {"type": "string"}, "content": {"type": "string"}, "mode": {"type": "string", "pattern": "^[0-7]{4}$"}, "owner": {"type": "string"}}})
}

fn amount() -> Value {
    json!({"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]{1,3}%$"}], "description": "a count, or a percentage of desired (\"25%\")"})
}

fn rate_policy() -> Value {
    json!({"type": "object", "additionalProperties": false, "required": ["type", "value", "period"], "properties": {
        "type": {"enum": ["percent", "count"]}, "value": {"type": "integer", "minimum": 1}, "period": duration()}})
}

fn direction() -> Value {
    json!({"type": "object", "additionalProperties": false, "required": ["stabilization", "policies"], "properties": {
        "stabilization": duration(), "select": {"enum": ["max", "min", "disabled"]}, "policies": {"type": "array", "items": rate_policy()}}})
}

fn step_rule() -> Value {
    json!({"type": "object", "additionalProperties": false, "required": ["adjust"], "properties": {
        "lower": {"type": "number"}, "upper": {"type": "number"}, "adjust": {"type": "integer"}}})
}

/// `[backup]` (ENGINE-SPEC 7).
pub fn backup() -> Value {
    json!({"type": "object", "additionalProperties": false, "required": ["select"], "properties": {
        "select": {"type": "object", "additionalProperties": false, "properties": {
            "volumes": {"type": "array", "items": {"type": "string"}},
            "volume_metadata": {"type": "object", "additionalProperties": {"type": "string"}},
            "attached": {"type": "boolean"}}},
        "cron": {"type": "string", "description": "five-field cron, in tz"},
        "tz": {"type": "string", "description": "IANA name, UTC or +02:00"},
        "start_window": duration(), "incremental": {"type": "boolean"},
        "full_every": {"type": "integer", "minimum": 1}, "full_interval": duration(),
        "in_use": {"enum": ["force", "snapshot_then_backup"]},
        "per_policy": {"type": "integer", "minimum": 1}, "per_backend": {"type": "integer", "minimum": 1},
        "retention": {"type": "object", "additionalProperties": false, "properties": {
            "keep_last_chains": {"type": "integer", "minimum": 0}, "daily": {"type": "integer", "minimum": 0},
            "weekly": {"type": "integer", "minimum": 0}, "monthly": {"type": "integer", "minimum": 0}}},
        "rpo": duration(), "create_timeout": duration(), "delete_timeout": duration(), "restore_timeout": duration(),
        "restore_test": {"enum": ["off", "monthly"]}}})
}

/// The schema of a policy file.
pub fn schema() -> Value {
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "stackpilot application policy",
        "type": "object",
        "additionalProperties": false,
        "required": ["app", "deploy"],
        "properties": {
            "app": {"type": "object", "additionalProperties": false, "required": ["name", "cloud"], "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9-]{0,39}$"},
                "cloud": {"type": "string", "description": "a cloud of clouds.yaml"},
                "mode": {"enum": ["auto", "dry-run", "paused"], "description": "auto (default): converge; dry-run: plan, act when approved; paused: do nothing"}}},
            "deploy": {"type": "object", "additionalProperties": false, "required": ["image", "flavor", "networks", "capacity"], "properties": {
                "image": {"type": "string", "description": "image name or id (pinned by id in each revision)"},
                "flavor": {"type": "string", "description": "flavor name or id"},
                "networks": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "key_name": {"type": "string"},
                "security_groups": {"type": "array", "items": {"type": "string"}},
                "user_data": {"type": "string", "description": "cloud-init; {app}, {revision}, {slot} and {cloud} are filled in"},
                "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                "availability_zones": {"type": "array", "items": {"type": "string"}},
                "capacity": {"type": "object", "additionalProperties": false, "required": ["min", "max", "desired"], "properties": {
                    "min": {"type": "integer", "minimum": 0}, "max": {"type": "integer", "minimum": 0, "maximum": 1000}, "desired": {"type": "integer", "minimum": 0}}}}},
            "readiness": {"type": "object", "additionalProperties": false, "properties": {
                "cloud_init_marker": {"type": "string"},
                "http": {"type": "object", "additionalProperties": false, "required": ["url"], "properties": {
                    "url": {"type": "string"}, "expect_status": {"type": "array", "items": {"type": "integer"}}, "timeout": duration()}},
                "min_ready_seconds": {"type": "integer", "minimum": 0},
                "startup_grace": duration()}},
            "rollout": {"type": "object", "additionalProperties": false, "properties": {
                "max_surge": amount(), "max_unavailable": amount(),
                "batch_size": {"type": "integer", "minimum": 0},
                "progress_deadline": duration(), "failure_threshold": {"type": "integer", "minimum": 1},
                "on_failure": {"enum": ["rollback", "pause"]},
                "checkpoints": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 99}},
                "checkpoint_delay": duration(), "skip_matching": {"type": "boolean"}}},
            "recovery": {"type": "object", "additionalProperties": false, "properties": {
                "enabled": {"type": "boolean"}, "health_interval": duration(),
                "unhealthy_threshold": {"type": "integer", "minimum": 1},
                "steps": {"type": "array", "items": {"enum": ["start", "reboot-soft", "reboot-hard", "rebuild", "recreate"]}},
                "verify_timeout": duration(), "rebuild_verify_timeout": duration(),
                "max_attempts": {"type": "integer", "minimum": 1}, "attempt_window": duration(),
                "backoff": duration(), "max_backoff": duration(),
                "max_concurrent": amount(), "max_unhealthy": amount(),
                "keep_quarantined": duration(), "masakari_defer": duration()}},
            "backup": backup(),
            "placement": {"type": "object", "additionalProperties": false, "required": ["locations"], "properties": {
                "locations": {"type": "array", "minItems": 1, "items": {"type": "object", "additionalProperties": false, "required": ["cloud"], "properties": {
                    "cloud": {"type": "string", "description": "a cloud of clouds.yaml; [app] cloud must be one of them"},
                    "weight": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "its part of what the counts leave"},
                    "count": {"type": "integer", "minimum": 0, "description": "a fixed number of members here"}}}},
                "failover": {"type": "boolean", "description": "move a failed location's share to the healthy ones"},
                "grace": duration()}},
            "alerts": {"type": "object", "additionalProperties": false, "properties": {
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "mute": {"type": "array", "items": {"type": "string"}},
                "severity": {"type": "object", "additionalProperties": {"enum": ["info", "warning", "critical"]}}}},
            "environment": {"type": "object", "additionalProperties": false, "properties": {
                "repositories": {"type": "array", "items": {"type": "object", "additionalProperties": false, "required": ["name", "source"], "properties": {
                    "name": {"type": "string"}, "source": {"type": "string"}, "key": {"type": "string"}, "keyid": {"type": "string"}}}},
                "packages": {"type": "array", "items": {"type": "string"}},
                "runtime": {"type": "string", "description": "the runtime's package"},
                "variables": {"type": "object", "additionalProperties": {"type": "string"}},
                "files": {"type": "array", "items": file()},
                "sysctl": {"type": "object", "additionalProperties": {"type": "string"}},
                "users": {"type": "array", "items": {"type": "object", "additionalProperties": false, "required": ["name"], "properties": {
                    "name": {"type": "string"}, "groups": {"type": "array", "items": {"type": "string"}}, "shell": {"type": "string"}, "system": {"type": "boolean"}}}},
                "commands": {"type": "array", "items": {"type": "string"}}}},
            "application": {"type": "object", "additionalProperties": false, "properties": {
                "artifact": {"type": "object", "additionalProperties": false, "required": ["url", "sha256"], "properties": {
                    "url": {"type": "string"}, "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}, "unpack_to": {"type": "string"}}},
                "config": {"type": "array", "items": file()},
                "start": {"type": "string"}, "unit": {"type": "string"}, "user": {"type": "string"},
                "health": {"type": "string", "description": "http://{ip}:PORT/PATH: the readiness probe by default"}}},
            "scaling": {"type": "object", "additionalProperties": false, "required": ["metrics"], "properties": {
                "mode": {"enum": ["target_tracking", "step"]},
                "evaluation_interval": duration(),
                "warmup": duration(),
                "tolerance": {"type": "object", "additionalProperties": false, "properties": {"up": {"type": "number"}, "down": {"type": "number"}}},
                "min_fresh_share": {"type": "number", "minimum": 0, "maximum": 1},
                "metrics": {"type": "array", "minItems": 1, "items": {"type": "object", "additionalProperties": false, "required": ["name", "target"], "properties": {
                    "name": {"enum": ["cpu", "memory", "network_in", "network_out"]},
                    "source": {"enum": ["gnocchi", "prometheus"]},
                    "target": {"type": "number", "exclusiveMinimum": 0},
                    "query": {"type": "string"}, "prometheus_url": {"type": "string"}, "max_staleness": duration()}}},
                "behavior": {"type": "object", "additionalProperties": false, "properties": {"scale_up": direction(), "scale_down": direction()}},
                "schedules": {"type": "array", "items": {"type": "object", "additionalProperties": false, "required": ["cron", "until_cron"], "properties": {
                    "cron": {"type": "string"}, "until_cron": {"type": "string"}, "tz": {"type": "string"},
                    "min": {"type": "integer", "minimum": 0}, "max": {"type": "integer", "minimum": 0}}}},
                "step": {"type": "object", "additionalProperties": false, "required": ["out_threshold", "out_steps", "in_threshold", "in_steps"], "properties": {
                    "adjustment_type": {"enum": ["change_in_capacity", "exact_capacity", "percent_change_in_capacity"]},
                    "min_adjustment_step": {"type": "integer", "minimum": 1},
                    "out_threshold": {"type": "number"}, "out_steps": {"type": "array", "items": step_rule()},
                    "in_threshold": {"type": "number"}, "in_steps": {"type": "array", "items": step_rule()},
                    "datapoints": {"type": "object", "additionalProperties": false, "required": ["m", "n"], "properties": {"m": {"type": "integer", "minimum": 1}, "n": {"type": "integer", "minimum": 1}}},
                    "cooldown": {"type": "object", "additionalProperties": false, "required": ["out", "in"], "properties": {"out": duration(), "in": duration()}}}}}}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
