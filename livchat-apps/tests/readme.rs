//! The catalog table in the workspace README is generated from the definitions; this test fails
//! when it is stale. Regenerate with `LIVCHAT_UPDATE_README=1 cargo test -p livchat-apps --test readme`.

use std::path::PathBuf;

use livchat_apps::Catalog;
use livchat_apps::query::{TABLE_BEGIN, TABLE_END, with_catalog_table};

fn readme() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md")
}

#[test]
fn the_readme_catalog_table_matches_the_definitions() {
    let catalog = Catalog::builtin().unwrap();
    let on_disk = std::fs::read_to_string(readme()).unwrap();
    let generated = with_catalog_table(&on_disk, &catalog).unwrap_or_else(|| {
        panic!(
            "README.md must hold the lines\n{TABLE_BEGIN}\n{TABLE_END}\naround the catalog table"
        )
    });
    if std::env::var("LIVCHAT_UPDATE_README").is_ok_and(|v| v == "1") {
        std::fs::write(readme(), &generated).unwrap();
        return;
    }
    assert!(
        on_disk == generated,
        "the catalog table in README.md is stale; regenerate it with\n  LIVCHAT_UPDATE_README=1 cargo test -p livchat-apps --test readme"
    );
    let section =
        &generated[generated.find(TABLE_BEGIN).unwrap()..generated.find(TABLE_END).unwrap()];
    let rows = section.lines().filter(|l| l.starts_with("| `")).count();
    assert_eq!(rows, catalog.names().len());
}
