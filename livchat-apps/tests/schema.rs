//! The checked-in schemas stay true: the definition schema is what the types generate, every
//! built-in definition validates against it, and the embedded stack schema is the vendor's.
//! Regenerate the definition schema with `LIVCHAT_UPDATE_SCHEMA=1 cargo test -p livchat-apps --test schema`.

use std::path::PathBuf;

use livchat_apps::definition_json_schema;
use livchat_apps::render::STACK_SCHEMA_V3_13;
use sha2::{Digest, Sha256};

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

/// SHA-256 of docker/cli @ 28f75608 `cli/compose/schema/data/config_schema_v3.13.json`, taken
/// when the file was copied (recorded in `fixtures/specs/README.md` too).
const VENDOR_STACK_SCHEMA_SHA256: &str =
    "674eeb1377fd3e58a2ecbe2e1feb6317bda3b044c11b0d50c97f32cc84d0e7d2";

#[test]
fn the_embedded_stack_schema_is_the_unmodified_vendor_copy() {
    // The repository's one copy, which livchat-remote embeds too: a local edit would make
    // the two validators disagree with `docker stack deploy`.
    let digest = hex::encode(Sha256::digest(STACK_SCHEMA_V3_13.as_bytes()));
    assert_eq!(
        digest, VENDOR_STACK_SCHEMA_SHA256,
        "schema/docker-cli-stack-config_schema_v3.13.json differs from docker/cli's file"
    );
    let license = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema/LICENSE.docker-cli");
    assert!(
        std::fs::read_to_string(license)
            .unwrap()
            .contains("Apache License")
    );
}
