//! A clone tests anywhere: nothing in the repository reaches for files beside it (the vendor
//! specs once lived in a `shared` directory next to the workspace; they are in
//! `fixtures/specs` now).

use std::path::{Path, PathBuf};

/// Ways a file could point outside the repository at the old specs directory. Built from
/// pieces so this file does not match itself.
fn forbidden() -> Vec<String> {
    let shared = "shared";
    vec![
        format!("../{shared}"),
        format!("{shared}/specs"),
        format!("LIVCHAT_{}_DIR", shared.to_uppercase()),
        format!("join(\"{shared}\")"),
    ]
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        // A symlink may point outside the tree (a worktree's own `shared` link): not content.
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            walk(&path, files);
        } else if kind.is_file() {
            files.push(path);
        }
    }
}

#[test]
fn no_file_in_the_repository_reads_the_shared_directory_beside_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    walk(&root, &mut files);
    assert!(
        files.len() > 100,
        "walked only {} files from {}",
        files.len(),
        root.display()
    );
    let patterns = forbidden();
    let mut hits = Vec::new();
    for file in &files {
        let Ok(bytes) = std::fs::read(file) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for (n, line) in text.lines().enumerate() {
            for p in &patterns {
                if line.contains(p.as_str()) {
                    let shown = file.strip_prefix(&root).unwrap_or(file);
                    hits.push(format!("{}:{}: {}", shown.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "read vendor specs from fixtures/specs (fixtures::tools::spec_path), not from outside the repository:\n{}",
        hits.join("\n")
    );
}

#[test]
fn every_vendored_spec_has_its_license_beside_it() {
    let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/specs");
    let mut vendors = 0;
    for entry in std::fs::read_dir(&specs).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        vendors += 1;
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n.starts_with("LICENSE")),
            "{} has no LICENSE file: {names:?}",
            dir.display()
        );
    }
    assert_eq!(vendors, 3, "hetzner, cloudflare and portainer");
}
