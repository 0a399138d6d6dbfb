//! schema/darklaunch.schema.json is generated from the configuration types
//! (`darklaunch-report schema`); this fails when the checked-in file is not
//! what the generator prints, so the schema cannot drift from the code.

use darklaunch_report::validate::schema_text;

const REGENERATE: &str =
    "cargo run -q -p darklaunch-report -- schema > schema/darklaunch.schema.json";

#[test]
fn checked_in_schema_is_the_generated_one() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schema/darklaunch.schema.json"
    );
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    let generated = schema_text();
    assert!(
        on_disk == generated,
        "schema/darklaunch.schema.json differs from the schema generated from src/config.rs; \
         regenerate it with\n\n    {REGENERATE}\n\nand commit it"
    );
}

#[test]
fn schema_is_draft_2020_12_and_closed() {
    let v: serde_json::Value = serde_json::from_str(&schema_text()).unwrap();
    assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(v["additionalProperties"], false);
    assert_eq!(v["required"], serde_json::json!(["launches"]));
    for (name, def) in v["$defs"].as_object().unwrap() {
        assert_eq!(def["additionalProperties"], false, "{name}");
    }
}
