//! JSON Schemas for `berth.yaml` and the `x-berth` Compose extension,
//! generated from the raw types the loader fills, so what editors suggest
//! and what berth accepts cannot drift apart. The checked-in copies under
//! `schemas/` are kept current by the `schemas_are_current` test.

use super::deploy::RawXBerth;
use super::inventory::RawInventory;

/// JSON Schema (draft 2020-12) of `berth.yaml`.
pub fn inventory_schema() -> serde_json::Value {
    schemars::schema_for!(RawInventory).to_value()
}

/// JSON Schema (draft 2020-12) of a Compose service's `x-berth` value.
pub fn x_berth_schema() -> serde_json::Value {
    schemars::schema_for!(RawXBerth).to_value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{deploy, inventory};
    use std::path::Path;

    /// Compares each generated schema with its checked-in file, or rewrites
    /// the files when `BERTH_UPDATE_SCHEMAS` is set.
    #[test]
    fn schemas_are_current() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let update = std::env::var_os("BERTH_UPDATE_SCHEMAS").is_some();
        for (file, schema) in [
            ("berth.schema.json", inventory_schema()),
            ("x-berth.schema.json", x_berth_schema()),
            ("plan.schema.json", crate::plan::plan_schema()),
        ] {
            let path = dir.join(file);
            let wanted = serde_json::to_string_pretty(&schema).unwrap() + "\n";
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &wanted).unwrap();
                continue;
            }
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                current == wanted,
                "`schemas/{file}` is out of date: run `BERTH_UPDATE_SCHEMAS=1 cargo test schemas_are_current`"
            );
        }
    }

    fn keys(schema: &serde_json::Value, pointer: &str) -> Vec<String> {
        let mut keys: Vec<String> = schema
            .pointer(pointer)
            .and_then(|p| p.as_object())
            .unwrap_or_else(|| panic!("no {pointer} in schema"))
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    fn sorted(list: &[&str]) -> Vec<String> {
        let mut list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        list.sort();
        list
    }

    /// The loader checks keys against its own lists; they must be the schema's.
    #[test]
    fn loader_keys_match_the_schemas() {
        let schema = inventory_schema();
        assert_eq!(keys(&schema, "/properties"), sorted(inventory::TOP_KEYS));
        assert_eq!(
            keys(&schema, "/$defs/Host/properties"),
            sorted(inventory::HOST_KEYS)
        );
        assert_eq!(
            keys(&schema, "/$defs/HostDefaults/properties"),
            sorted(inventory::DEFAULTS_KEYS)
        );
        assert_eq!(
            keys(&schema, "/$defs/Settings/properties"),
            sorted(inventory::SETTINGS_KEYS)
        );
        let schema = x_berth_schema();
        assert_eq!(keys(&schema, "/properties"), sorted(deploy::X_BERTH_KEYS));
        assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    }
}
