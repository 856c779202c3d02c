//! The checked-in schemas stay true: the definition schema is what the types generate, every
//! built-in definition validates against it, and the embedded stack schema is the vendor's.
//! Regenerate the definition schema with `LIVCHAT_UPDATE_SCHEMA=1 cargo test -p livchat-apps --test schema`.

use std::path::PathBuf;

use livchat_apps::definition_json_schema;
use livchat_apps::render::STACK_SCHEMA_V3_13;

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema/app-definition.schema.json")
}

#[test]
fn the_checked_in_definition_schema_matches_the_types() {
    let generated = serde_json::to_string_pretty(&definition_json_schema()).unwrap() + "\n";
    if std::env::var("LIVCHAT_UPDATE_SCHEMA").is_ok_and(|v| v == "1") {
        std::fs::write(checked_in(), &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(checked_in()).unwrap_or_default();
    assert!(
        on_disk == generated,
        "schema/app-definition.schema.json is stale; run LIVCHAT_UPDATE_SCHEMA=1 cargo test -p livchat-apps --test schema"
    );
}

#[test]
fn every_builtin_definition_validates_against_the_definition_schema() {
    let schema = definition_json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("apps");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let doc: serde_json::Value =
                serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 8);
    // And the schema is strict: an unknown key fails, as the deserializer does.
    let mut doc: serde_json::Value =
        serde_yaml::from_str(include_str!("../apps/redis.yaml")).unwrap();
    doc["colour"] = "red".into();
    assert!(!validator.is_valid(&doc));
}

#[test]
fn the_embedded_stack_schema_is_the_vendor_copy() {
    let shared = fixtures::tools::spec_path("compose/docker-cli-stack-config_schema_v3.13.json");
    match std::fs::read_to_string(&shared) {
        Ok(vendor) => assert_eq!(STACK_SCHEMA_V3_13, vendor),
        Err(e) if !fixtures::tools::real_tests_required() => {
            eprintln!("skipped: {} not readable: {e}", shared.display())
        }
        Err(e) => panic!("{}: {e}", shared.display()),
    }
    let license = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema/LICENSE.docker-cli");
    assert!(
        std::fs::read_to_string(license)
            .unwrap()
            .contains("Apache License")
    );
}
