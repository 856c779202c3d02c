//! The crate graph is the architecture (ARCHITECTURE.md): this test reads `cargo metadata`
//! and fails on a forbidden edge.

use std::collections::BTreeMap;
use std::process::Command;

const LEAVES: &[&str] = &[
    "livchat-providers",
    "livchat-apps",
    "livchat-remote",
    "livchat-store",
];
const CORE: &str = "livchat-core";
const FRONTENDS: &[&str] = &["livchat-cli", "livchat-api", "livchat-mcp"];
const FIXTURES: &str = "fixtures";
/// Std-only debootstrap recipes, shared by the fixtures and xtask (which prebuilds them).
const ROOTFS: &str = "rootfs-cache";

/// An internal edge: (from, to, kind) where kind is "normal", "dev" or "build".
type Edge = (String, String, String);

fn internal_edges() -> (Vec<String>, Vec<Edge>) {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let members: Vec<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let mut edges = Vec::new();
    for p in meta["packages"].as_array().unwrap() {
        let from = p["name"].as_str().unwrap();
        for d in p["dependencies"].as_array().unwrap() {
            let to = d["name"].as_str().unwrap();
            if members.iter().any(|m| m == to) {
                let kind = d["kind"].as_str().unwrap_or("normal").to_string();
                edges.push((from.to_string(), to.to_string(), kind));
            }
        }
    }
    (members, edges)
}

/// Returns the forbidden edges among `edges`, each with the rule it breaks.
fn violations(edges: &[Edge]) -> Vec<String> {
    let mut bad = Vec::new();
    for (from, to, kind) in edges {
        let from = from.as_str();
        let to = to.as_str();
        let is_dev = kind == "dev";
        if to == FIXTURES && !is_dev && from != "xtask" {
            bad.push(format!(
                "{from} -> fixtures ({kind}): fixtures is a dev-dependency only"
            ));
        }
        if to == "xtask" {
            bad.push(format!("{from} -> xtask: nothing depends on xtask"));
        }
        if LEAVES.contains(&from) && to != FIXTURES {
            bad.push(format!(
                "{from} -> {to}: a leaf depends on no other internal crate"
            ));
        }
        if FRONTENDS.contains(&from) && to != CORE && !(is_dev && to == FIXTURES) {
            bad.push(format!(
                "{from} -> {to}: a frontend depends on livchat-core only"
            ));
        }
        if from == FIXTURES && to != ROOTFS {
            bad.push(format!(
                "fixtures -> {to}: fixtures depends on no internal crate but rootfs-cache"
            ));
        }
        if to == ROOTFS && from != FIXTURES && from != "xtask" {
            bad.push(format!(
                "{from} -> rootfs-cache: only fixtures and xtask build root filesystems"
            ));
        }
        if from == ROOTFS {
            bad.push(format!(
                "rootfs-cache -> {to}: rootfs-cache depends on std alone"
            ));
        }
        if from == CORE && (FRONTENDS.contains(&to) || to == CORE) {
            bad.push(format!(
                "livchat-core -> {to}: core never depends on a frontend"
            ));
        }
    }
    bad
}

#[test]
fn workspace_has_exactly_the_crates_of_the_architecture() {
    let (mut members, _) = internal_edges();
    members.sort();
    let mut expected: Vec<String> = LEAVES
        .iter()
        .chain(FRONTENDS)
        .chain(&[CORE, FIXTURES, ROOTFS, "xtask"])
        .map(|s| s.to_string())
        .collect();
    expected.sort();
    assert_eq!(members, expected);
}

#[test]
fn crate_graph_has_no_forbidden_edge() {
    let (_, edges) = internal_edges();
    let bad = violations(&edges);
    assert!(bad.is_empty(), "forbidden edges:\n{}", bad.join("\n"));
}

#[test]
fn checker_catches_each_kind_of_forbidden_edge() {
    let e = |a: &str, b: &str, k: &str| (a.to_string(), b.to_string(), k.to_string());
    let cases = [
        e("livchat-remote", "livchat-store", "normal"),
        e("livchat-cli", "livchat-store", "normal"),
        e("livchat-api", "livchat-apps", "dev"),
        e("livchat-core", "fixtures", "normal"),
        e("livchat-store", "fixtures", "build"),
        e("fixtures", "livchat-apps", "normal"),
        e("livchat-core", "rootfs-cache", "dev"),
        e("rootfs-cache", "livchat-apps", "normal"),
    ];
    for case in cases {
        assert_eq!(violations(std::slice::from_ref(&case)).len(), 1, "{case:?}");
    }
    let allowed = [
        e("livchat-core", "livchat-store", "normal"),
        e("livchat-cli", "livchat-core", "normal"),
        e("livchat-store", "fixtures", "dev"),
        e("xtask", "fixtures", "normal"),
        e("fixtures", "rootfs-cache", "normal"),
        e("xtask", "rootfs-cache", "normal"),
    ];
    assert!(violations(&allowed).is_empty());
}

#[test]
fn every_crate_root_starts_with_its_ownership_docs() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let roots: BTreeMap<&str, &str> = [
        ("livchat-core", "src/lib.rs"),
        ("livchat-providers", "src/lib.rs"),
        ("livchat-apps", "src/lib.rs"),
        ("livchat-remote", "src/lib.rs"),
        ("livchat-store", "src/lib.rs"),
        ("livchat-cli", "src/main.rs"),
        ("livchat-api", "src/main.rs"),
        ("livchat-mcp", "src/main.rs"),
        ("fixtures", "src/lib.rs"),
        ("fixtures/rootfs", "src/lib.rs"),
        ("xtask", "src/main.rs"),
    ]
    .into_iter()
    .collect();
    for (krate, file) in roots {
        let text = std::fs::read_to_string(format!("{root}/{krate}/{file}")).unwrap();
        assert!(
            text.starts_with("//!"),
            "{krate}/{file} must start with //! docs"
        );
        assert!(
            text.contains("Must not touch"),
            "{krate}/{file} must say what it must not touch"
        );
    }
}

/// The top-level modules of a crate that a file refers to as `crate::<module>` (a module's
/// files are `src/<module>.rs` or `src/<module>/...`; `lib.rs` wires them and is left out).
/// Doc links count: a module that documents another by path is read against it.
fn module_edges(krate: &str) -> BTreeMap<String, std::collections::BTreeSet<String>> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("src");
    let src = src.as_path();
    let mut edges: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path.strip_prefix(src).unwrap();
            let first = relative.iter().next().unwrap().to_string_lossy();
            let module = first.trim_end_matches(".rs").to_owned();
            if module == "lib" || path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let targets = edges.entry(module.clone()).or_default();
            for (at, _) in text.match_indices("crate::") {
                let name: String = text[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    targets.insert(name);
                }
            }
        }
    }
    edges
}

/// A cycle in `edges`, as the modules along it, if there is one.
fn find_cycle(edges: &BTreeMap<String, std::collections::BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    edges
        .keys()
        .find_map(|start| visit(start, edges, &mut Vec::new(), &mut done))
}

#[test]
fn core_modules_import_each_other_without_a_circle() {
    let edges = module_edges("livchat-core");
    assert!(edges.contains_key("flows") && edges.contains_key("orchestrator"));
    assert_eq!(find_cycle(&edges), None, "{edges:#?}");
}

#[test]
fn remote_modules_import_each_other_without_a_circle() {
    let edges = module_edges("livchat-remote");
    assert!(edges["swarm"].contains("platform") && edges["setup"].contains("step"));
    assert_eq!(find_cycle(&edges), None, "{edges:#?}");
}

#[test]
fn the_circle_finder_finds_a_circle() {
    let edges: BTreeMap<String, std::collections::BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        find_cycle(&edges),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

/// The rule files of names: the one set of name rules, compiled by path into each leaf.
const NAME_RULES: &str = "livchat-store/src/names.rs";

/// The bodies of the `.all(…)` calls in `text` (whitespace removed), where byte and char
/// allowlists are written.
fn all_closures(text: &str) -> Vec<String> {
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut bodies = Vec::new();
    for (at, _) in text.match_indices(".all(") {
        let mut depth = 1;
        let mut body = String::new();
        for c in text[at + ".all(".len()..].chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                break;
            }
            body.push(c);
        }
        bodies.push(body);
    }
    bodies
}

/// Whether an allowlist body is the DNS label's alphabet: lower-case letters, digits and `-`,
/// nothing else.
fn is_dns_label_alphabet(body: &str) -> bool {
    let lower = ["is_ascii_lowercase", "lower_alnum", "lower_digit"]
        .iter()
        .any(|p| body.contains(p));
    let digit = ["is_ascii_digit", "lower_alnum", "lower_digit"]
        .iter()
        .any(|p| body.contains(p));
    let quoted: Vec<&str> = body
        .match_indices('\'')
        .filter_map(|(i, _)| body.get(i..i + 3))
        .filter(|q| q.ends_with('\''))
        .collect();
    let hyphen = quoted.contains(&"'-'");
    let other = body.contains("is_ascii_alphanumeric")
        || body.contains("is_ascii_uppercase")
        || quoted.iter().any(|q| *q != "'-'");
    lower && digit && hyphen && !other
}

/// The functions in `text` named like a rule of [`NAME_RULES`] (`dns_label`,
/// `validate_unix_user`, `is_valid_host`, ...) whose body does not call the rules.
fn name_rule_copies(text: &str) -> Vec<String> {
    const RULES: &[&str] = &[
        "dns_label",
        "dns_name",
        "host_name",
        "host",
        "server_name",
        "unix_user",
    ];
    const PREFIXES: &[&str] = &["validate_", "valid_", "is_valid_", "check_"];
    let mut copies = Vec::new();
    for (at, _) in text.match_indices("fn ") {
        let name: String = text[at + 3..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let rule = PREFIXES
            .iter()
            .find_map(|p| name.strip_prefix(p))
            .unwrap_or(&name);
        let prefixed = rule.len() < name.len();
        if !RULES.contains(&rule) || (!prefixed && matches!(rule, "host" | "host_name")) {
            continue;
        }
        let rest = &text[at + 3..];
        let end = [
            rest.find("\nfn "),
            rest.find("\npub fn "),
            rest.find("\n}\n"),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(rest.len());
        let body = &rest[..end];
        if !["names::", "name_rules::", "livchat_store::validate_"]
            .iter()
            .any(|call| body.contains(call))
        {
            copies.push(name);
        }
    }
    copies
}

/// Allowlists with a DNS label's alphabet that are not DNS labels, with why.
const NOT_DNS_LABELS: &[(&str, &str)] = &[(
    "livchat-store/src/settings.rs",
    "a Hetzner location or server type (`nbg1`, `cx22`): '-' anywhere, 32 bytes",
)];

fn rust_sources(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            rust_sources(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn dns_labels_and_unix_users_have_one_rule() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in LEAVES.iter().chain(FRONTENDS).chain(&[CORE]) {
        rust_sources(&root.join(krate).join("src"), &mut files);
    }
    assert!(files.len() > 50, "walked only {} files", files.len());
    let mut bad = Vec::new();
    for file in &files {
        let shown = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if shown == NAME_RULES {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for body in all_closures(&text) {
            if is_dns_label_alphabet(&body) && !NOT_DNS_LABELS.iter().any(|(f, _)| *f == shown) {
                bad.push(format!("{shown}: a DNS-label allowlist `.all({body})`"));
            }
        }
        for name in name_rule_copies(&text) {
            bad.push(format!(
                "{shown}: fn {name} does not call the rules in {NAME_RULES}"
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "name rules belong in {NAME_RULES} (each leaf compiles it by path); found:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_name_rule_finder_finds_copies() {
    let dns =
        "ok && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')";
    assert_eq!(all_closures(dns).len(), 1);
    assert!(is_dns_label_alphabet(&all_closures(dns)[0]));
    let stack = "b.iter().all(|&c| is_lower_alnum(c) || c == b'_' || c == b'-')";
    assert!(!is_dns_label_alphabet(&all_closures(stack)[0]));
    let host = "l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')";
    assert!(!is_dns_label_alphabet(&all_closures(host)[0]));
    let copy = "pub fn validate_unix_user(u: &str) -> bool {\n    u.len() < 33\n}\n";
    assert_eq!(name_rule_copies(copy), ["validate_unix_user"]);
    let delegating =
        "pub fn validate_unix_user(u: &str) -> bool {\n    crate::names::unix_user(u).is_ok()\n}\n";
    assert!(name_rule_copies(delegating).is_empty());
}

/// The one file of core that names a cloud provider: it registers the built-in ones.
const PROVIDER_WIRING: &str = "livchat-core/src/builtin_providers.rs";
/// The providers core must not know by name elsewhere.
const PROVIDER_NAMES: &[&str] = &["hetzner"];

/// The lines of `text` (1-based) naming one of [`PROVIDER_NAMES`], in any case.
fn provider_mentions(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.to_ascii_lowercase();
            PROVIDER_NAMES.iter().any(|name| line.contains(name))
        })
        .map(|(i, _)| i + 1)
        .collect()
}

#[test]
fn core_names_a_cloud_provider_only_where_it_registers_it() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_sources(&root.join(CORE).join("src"), &mut files);
    assert!(files.len() > 20, "walked only {} files", files.len());
    let mut bad = Vec::new();
    for file in &files {
        let shown = file.strip_prefix(&root).unwrap().to_string_lossy();
        if shown == PROVIDER_WIRING {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        bad.extend(
            provider_mentions(&text)
                .iter()
                .map(|l| format!("{shown}:{l}")),
        );
    }
    assert!(
        bad.is_empty(),
        "a provider's knowledge belongs behind `Provider` and its profile, registered in \
         {PROVIDER_WIRING}; named at:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_provider_finder_finds_a_name_in_any_case() {
    let text = "let t = self.require_secret(HETZNER_TOKEN)?;\n// no provider here\n\
                if kind == ProviderKind::Hetzner {}\n";
    assert_eq!(provider_mentions(text), [1, 3]);
}
