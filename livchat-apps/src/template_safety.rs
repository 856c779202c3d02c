//! What a template may not do beyond what YAML escaping already prevents: read the process
//! environment or dump the whole context (checked when a catalog loads), and put a value it
//! prints into a string a shell inside the container will parse (checked on every render).
//!
//! Why a render-time check: whether a printed value lands in a shell string depends on the YAML
//! the template produces, which a text scan of the template cannot see reliably (`{% set %}`,
//! macros, loops, anchors). So a second render with [`tainted_scalar`] as the escaper marks
//! every printed value, and [`values_in_shell_strings`] looks for the marks where a shell reads.

use serde_yaml::{Mapping, Value};

/// Names that must not appear in a template: `get_env` reads the environment of the process
/// (the vault password may be there), `__tera_context` prints every value, secrets included,
/// without escaping.
const FORBIDDEN_NAMES: [(&str, &str); 2] = [
    (
        "get_env",
        "reads the environment of the livchat process, which may hold credentials",
    ),
    (
        "__tera_context",
        "prints the whole render context, secrets included, without YAML escaping",
    ),
];

/// tera filters that return a list (or a map): tera prints those without the escaper.
pub(crate) const LIST_FILTERS: [&str; 9] = [
    "split", "concat", "slice", "sort", "unique", "filter", "map", "group_by", "reverse",
];

/// Start and end of a printed value in the tainted render (Unicode private-use characters;
/// values' own are replaced, so only the escaper writes these).
const MARK_START: char = '\u{E000}';
const MARK_END: char = '\u{E001}';

/// Shells whose `-c` argument is a script.
const SHELLS: [&str; 10] = [
    "sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh",
];

/// Refuses a template that names a forbidden function or variable anywhere (tags, comments and
/// text alike: a stack file has no reason to contain these words).
pub(crate) fn lint_forbidden_names(text: &str) -> Result<(), String> {
    for (name, why) in FORBIDDEN_NAMES {
        let found = text.match_indices(name).any(|(at, _)| {
            let before = text[..at].chars().next_back();
            let after = text[at + name.len()..].chars().next();
            !before.is_some_and(is_ident_char) && !after.is_some_and(is_ident_char)
        });
        if found {
            return Err(format!("`{name}` is not allowed in a template: it {why}"));
        }
    }
    if text.contains([MARK_START, MARK_END]) {
        return Err("the characters U+E000 and U+E001 are reserved".into());
    }
    Ok(())
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The escaper of the tainted render: the value, escaped as usual, between marks. The value's
/// own marks are replaced so a mark always means "printed by the template".
pub(crate) fn tainted_scalar(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| match c {
            MARK_START | MARK_END => '\u{FFFD}',
            c => c,
        })
        .collect();
    let escaped = crate::escape::yaml_scalar(&cleaned);
    let inner = &escaped[1..escaped.len() - 1];
    format!("\"{MARK_START}{inner}{MARK_END}\"")
}

/// One string a shell in a container parses: where it is and its text.
struct ShellString<'a> {
    at: String,
    text: &'a str,
    why: &'static str,
}

/// Whether any service of the stack has a string a shell parses (only then is the tainted
/// render needed).
pub(crate) fn has_shell_strings(doc: &Mapping) -> bool {
    !shell_strings(doc).is_empty()
}

/// The shell strings of the tainted stack that contain a printed value, as one message each.
pub(crate) fn values_in_shell_strings(tainted: &Mapping) -> Vec<String> {
    shell_strings(tainted)
        .into_iter()
        .filter(|s| s.text.contains(MARK_START))
        .map(|s| {
            format!(
                "{}: a template value reaches {}; pass it through `environment:` and use it \
                 double-quoted (\"$$NAME\") in the script, or as a separate argument",
                s.at, s.why
            )
        })
        .collect()
}

fn shell_strings(doc: &Mapping) -> Vec<ShellString<'_>> {
    let mut found = Vec::new();
    let Some(Value::Mapping(services)) = doc.get("services") else {
        return found;
    };
    for (name, service) in services {
        let (Some(name), Value::Mapping(service)) = (name.as_str(), service) else {
            continue;
        };
        let mut argv: Vec<(String, &str)> = Vec::new();
        for key in ["entrypoint", "command"] {
            let at = format!("services.{name}.{key}");
            match service.get(key) {
                Some(Value::String(text)) => found.push(ShellString {
                    at,
                    text,
                    why: "a string `command`/`entrypoint`, which Docker splits into words like a shell (write it as a list)",
                }),
                Some(Value::Sequence(items)) => {
                    argv.extend(
                        items
                            .iter()
                            .enumerate()
                            .filter_map(|(i, v)| Some((format!("{at}[{i}]"), v.as_str()?))),
                    );
                }
                _ => {}
            }
        }
        shell_scripts(&argv, &mut found);

        let test_at = format!("services.{name}.healthcheck.test");
        match service.get("healthcheck").and_then(|h| h.get("test")) {
            Some(Value::String(text)) => found.push(ShellString {
                at: test_at,
                text,
                why: "a string healthcheck test, which runs in a shell",
            }),
            Some(Value::Sequence(items)) => {
                let words: Vec<(String, &str)> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| Some((format!("{test_at}[{i}]"), v.as_str()?)))
                    .collect();
                match words.first().map(|(_, w)| *w) {
                    Some("CMD-SHELL") => {
                        found.extend(words[1..].iter().map(|(at, text)| ShellString {
                            at: at.clone(),
                            text,
                            why: "a CMD-SHELL healthcheck, which runs in a shell",
                        }))
                    }
                    Some("CMD") => shell_scripts(&words[1..], &mut found),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    found
}

/// In an argv, the script of every shell started with `-c` (`sh -c SCRIPT`, `bash -ec SCRIPT`,
/// `env X=1 sh -c SCRIPT`). Arguments after the script are positional parameters: safe.
fn shell_scripts<'a>(argv: &[(String, &'a str)], found: &mut Vec<ShellString<'a>>) {
    let mut i = 0;
    while i < argv.len() {
        let program = argv[i].1.rsplit('/').next().unwrap_or_default();
        if SHELLS.contains(&program) {
            let rest = &argv[i + 1..];
            let c_flag = rest.iter().position(|(_, w)| {
                w.len() > 1
                    && w.starts_with('-')
                    && !w.starts_with("--")
                    && w[1..].chars().all(|c| c.is_ascii_alphabetic())
                    && w.contains('c')
            });
            if let Some(flag) = c_flag
                && let Some((at, text)) = rest.get(flag + 1)
            {
                found.push(ShellString {
                    at: at.clone(),
                    text,
                    why: "the script of a shell (`-c`)",
                });
                i += flag + 3;
                continue;
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(yaml: &str) -> Mapping {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn marked(v: &str) -> String {
        tainted_scalar(v)
    }

    #[test]
    fn forbidden_names_are_found_as_whole_identifiers_only() {
        assert!(lint_forbidden_names("a: {{ get_env(name=\"HOME\") }}").is_err());
        assert!(lint_forbidden_names("a: {{get_env (name=\"HOME\")}}").is_err());
        assert!(lint_forbidden_names("a: {{- __tera_context -}}").is_err());
        assert!(lint_forbidden_names("{% set x = __tera_context %}").is_err());
        assert!(lint_forbidden_names("a: {{ my_get_env_value }}").is_ok());
        assert!(lint_forbidden_names("a: {{ get_environment }}").is_ok());
        assert!(lint_forbidden_names("a: \"\u{E000}\"").is_err());
    }

    #[test]
    fn a_value_in_a_cmd_shell_healthcheck_is_found() {
        let d = doc(&format!(
            "services:\n  s:\n    healthcheck:\n      test: [\"CMD-SHELL\", {}]\n",
            marked("x; rm -rf /")
        ));
        let found = values_in_shell_strings(&d);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("services.s.healthcheck.test[1]"));
    }

    #[test]
    fn a_value_in_a_sh_c_script_is_found_but_not_in_its_positional_arguments() {
        let script = doc(&format!(
            "services:\n  s:\n    command: [\"/bin/sh\", \"-ec\", {}]\n",
            marked("echo hi")
        ));
        assert_eq!(values_in_shell_strings(&script).len(), 1);
        let positional = doc(&format!(
            "services:\n  s:\n    entrypoint: [\"sh\", \"-c\"]\n    command: ['echo \"$$1\"', \"--\", {}]\n",
            marked("x; reboot")
        ));
        assert!(has_shell_strings(&positional));
        assert!(values_in_shell_strings(&positional).is_empty());
    }

    #[test]
    fn string_commands_and_string_healthchecks_count_as_shell_strings() {
        let d = doc(&format!(
            "services:\n  s:\n    command: {}\n    healthcheck:\n      test: {}\n",
            marked("redis-server --x"),
            marked("true")
        ));
        assert_eq!(values_in_shell_strings(&d).len(), 2);
    }

    #[test]
    fn values_as_plain_arguments_are_not_shell_strings() {
        let d = doc(&format!(
            "services:\n  s:\n    command: [\"--network\", {}]\n    healthcheck:\n      test: [\"CMD\", \"pg_isready\", {}]\n",
            marked("net"),
            marked("-U x")
        ));
        assert!(!has_shell_strings(&d));
    }

    #[test]
    fn a_value_that_holds_marks_itself_cannot_fake_or_hide_one() {
        let t = tainted_scalar("a\u{E001}b\u{E000}");
        let v: String = serde_yaml::from_str(&t).unwrap();
        assert_eq!(v.matches(MARK_START).count(), 1);
        assert!(v.starts_with(MARK_START) && v.ends_with(MARK_END));
    }
}
