//! Escaping of values for stack templates.
//!
//! Every string a template prints with `{{ ... }}` goes through [`yaml_scalar`] (tera's
//! autoescape with this function as the escaper), so a value always becomes ONE double-quoted
//! YAML scalar: it cannot end the scalar, start a new key, a new document or a flow collection.
//! `$` is doubled because `docker stack deploy` interpolates `${VAR}` in the whole file.

/// Quotes `value` as a YAML double-quoted scalar whose content, after Compose interpolation,
/// is `value` again.
pub fn yaml_scalar(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' => out.push_str("$$"),
            // Line and paragraph separators, NEL and BOM are line breaks or invisible to some
            // YAML readers; C0/C1 controls are not allowed raw. Write them all as escapes.
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let code = u32::from(c);
                if code <= 0xFFFF {
                    out.push_str(&format!("\\u{code:04x}"));
                } else {
                    out.push_str(&format!("\\U{code:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_round_trip_as_one_scalar() {
        let hostile = [
            "plain",
            "quote\" and 'single'",
            "new\nline: injected\nservices:\n  evil: {}",
            "${HOME} and $$ and $",
            "{{ secrets.password }}",
            "}}: x",
            "---\n...\n",
            "back\\slash",
            "tab\tand\u{0}nul",
            "unicode: \u{2028}\u{2029}\u{85}\u{feff} ção 🚀",
            "- item",
            "&anchor *alias !tag %directive @at `tick` #comment",
        ];
        for value in hostile {
            let doc = format!("key: {}\n", yaml_scalar(value));
            let parsed: serde_yaml::Mapping = serde_yaml::from_str(&doc).unwrap();
            assert_eq!(parsed.len(), 1, "{value:?}");
            let got = parsed
                .get("key")
                .and_then(|v| v.as_str())
                .expect("one string");
            // Compose turns `$$` back into `$`.
            assert_eq!(got.replace("$$", "$"), value, "{value:?}");
        }
    }
}
