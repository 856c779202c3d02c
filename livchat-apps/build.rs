//! Embeds every file of `apps/` (definitions and their templates) into the binary, so adding a
//! built-in app is a YAML file and a template, with no Rust change.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("apps");
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("livchat-apps/apps exists")
        .map(|e| e.expect("readable apps/ entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut out = String::from(
        "/// (file name, contents) of every built-in app file.\npub(crate) static BUILTIN_FILES: &[(&str, &str)] = &[\n",
    );
    for path in files {
        println!("cargo::rerun-if-changed={}", path.display());
        let name = path
            .file_name()
            .unwrap()
            .to_str()
            .expect("UTF-8 file names");
        writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("builtin_apps.rs");
    std::fs::write(dest, out).expect("write builtin_apps.rs");
}
