//! Putting loaded definitions together into a [`Catalog`]: user definitions replace built-ins of
//! the same name, own-instance secrets are declared, templates are linted and compiled (twice:
//! once with the tainting escaper), and references between definitions are checked, so a bad
//! definition fails at load rather than at the first deploy.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value as Json;
use tera::Tera;

use crate::AppsError;
use crate::definition::ProvidedKind;
use crate::postgres::CreateDatabase;
use crate::template_safety;

use super::load::Loaded;
use super::own_instance::{declare_own_instance_secrets, runs_per_dependent};
use super::{Catalog, CatalogEntry, DefinitionSource, origin_of, template_name, tera_message};

impl Catalog {
    pub(super) fn build(builtin: Vec<Loaded>, user: Vec<Loaded>) -> Result<Catalog, AppsError> {
        let mut entries: BTreeMap<String, (CatalogEntry, String)> = BTreeMap::new();
        for l in builtin {
            entries.insert(
                l.definition.name.clone(),
                (
                    CatalogEntry {
                        definition: l.definition,
                        source: l.source,
                        overrides_builtin: false,
                    },
                    l.template,
                ),
            );
        }
        let mut user_paths: BTreeMap<String, PathBuf> = BTreeMap::new();
        for l in user {
            let name = l.definition.name.clone();
            let path = match &l.source {
                DefinitionSource::User { path } => path.clone(),
                DefinitionSource::Builtin => PathBuf::new(),
            };
            if let Some(first) = user_paths.insert(name.clone(), path.clone()) {
                return Err(AppsError::DuplicateDefinition {
                    name,
                    first,
                    second: path,
                });
            }
            let overrides_builtin = entries
                .get(&name)
                .is_some_and(|(e, _)| e.source == DefinitionSource::Builtin);
            entries.insert(
                name,
                (
                    CatalogEntry {
                        definition: l.definition,
                        source: l.source,
                        overrides_builtin,
                    },
                    l.template,
                ),
            );
        }

        declare_own_instance_secrets(&mut entries)?;

        let mut tera = Tera::default();
        tera.autoescape_on(vec![".yml"]);
        tera.set_escape_fn(crate::escape::yaml_scalar);
        // The lint refuses templates that name it; this stops any path the lint missed.
        tera.register_function(
            "get_env",
            |_: &std::collections::HashMap<String, Json>| -> tera::Result<Json> {
                Err(tera::Error::msg("get_env is disabled in stack templates"))
            },
        );
        let mut tls: Option<(String, String)> = None;
        for (name, (entry, template)) in &entries {
            let origin = origin_of(entry);
            lint_template(template).map_err(|message| AppsError::InvalidDefinition {
                origin: origin.clone(),
                field: "template".into(),
                message,
            })?;
            tera.add_raw_template(&template_name(name), template)
                .map_err(|e| AppsError::InvalidDefinition {
                    origin: origin.clone(),
                    field: "template".into(),
                    message: tera_message(&e),
                })?;
            if let Some(resolver) = &entry.definition.tls_resolver {
                match &tls {
                    Some((other_app, other)) if other != resolver => {
                        return Err(AppsError::InvalidDefinition {
                            origin,
                            field: "tls_resolver".into(),
                            message: format!(
                                "{resolver:?} differs from {other:?} declared by `{other_app}`; one reverse proxy, one resolver name"
                            ),
                        });
                    }
                    _ => tls = Some((name.clone(), resolver.clone())),
                }
            }
        }
        let mut tainted = tera.clone();
        tainted.set_escape_fn(template_safety::tainted_scalar);
        let catalog = Catalog {
            entries: entries.into_iter().map(|(k, (e, _))| (k, e)).collect(),
            tera,
            tainted,
            tls_resolver: tls.map(|(_, r)| r),
        };
        catalog.validate_cross_references()?;
        Ok(catalog)
    }

    fn validate_cross_references(&self) -> Result<(), AppsError> {
        for entry in self.entries.values() {
            let def = &entry.definition;
            if runs_per_dependent(def) && !def.dependencies.is_empty() {
                // Its instances live in their dependents' stacks, where nothing would deploy
                // what it needs.
                return Err(AppsError::InvalidDefinition {
                    origin: origin_of(entry),
                    field: "dependencies".into(),
                    message: "a `redis` provider runs inside each dependent's stack, so it can have no dependencies".into(),
                });
            }
            for dep in &def.dependencies {
                // A dependency without a definition is reported by the resolver, naming it,
                // when someone installs this app.
                let Some(provider) = self.get(&dep.app) else {
                    continue;
                };
                let bad = |message: String| AppsError::InvalidDefinition {
                    origin: origin_of(entry),
                    field: format!("dependencies.{}", dep.app),
                    message,
                };
                match provider.provides.as_ref().map(|p| p.kind) {
                    Some(kind) if kind.per_app_credentials() && dep.database.is_none() => {
                        return Err(bad(format!(
                            "a {} dependency needs `database` (name, user, password_secret)",
                            kind.as_str()
                        )));
                    }
                    Some(ProvidedKind::Redis) if dep.database.is_some() => {
                        return Err(bad(
                            "a redis dependency takes `redis_db`, not `database`".into()
                        ));
                    }
                    Some(kind) if kind.per_app_credentials() && dep.redis_db.is_some() => {
                        return Err(bad(format!(
                            "a {} dependency takes `database`, not `redis_db`",
                            kind.as_str()
                        )));
                    }
                    Some(kind) if kind.per_app_credentials() => {
                        let db = dep.database.as_ref().expect("checked above");
                        let spec = CreateDatabase {
                            kind,
                            database: db.name.clone(),
                            user: db.user.clone(),
                            extensions: db.extensions.clone(),
                        };
                        // The kind's own rules (bucket names, name lengths, extensions only
                        // for postgres), checked at load rather than at the first deploy.
                        crate::credentials::drop_database_command(&spec).map_err(|e| {
                            bad(format!("`database` for a {} provider: {e}", kind.as_str()))
                        })?;
                        if crate::credentials::is_server_account(kind, &db.user) {
                            return Err(bad(format!(
                                "`database.user` {:?} is an account of the {} server itself; each app gets its own least-privilege user",
                                db.user,
                                kind.as_str()
                            )));
                        }
                    }
                    None if dep.database.is_some() || dep.redis_db.is_some() => {
                        return Err(bad(format!(
                            "`{}` provides no connection (`provides`), so it takes no configuration",
                            dep.app
                        )));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// Tera autoescapes (with [`crate::escape::yaml_scalar`]) what `{{ }}` prints from a variable,
/// a literal, a filter or a function, but it does NOT escape a `~` concatenation, and it
/// escapes each element of an array literal (so `[a, b] | join` comes out garbled). A composite
/// string is therefore built with `{% set joined = "https://" ~ domain %}` (a `set` is evaluated
/// unescaped) and printed with `{{ joined }}` (escaped once, as one YAML scalar). Anything that
/// would let a value reach the stack file unescaped is rejected here.
fn lint_template(text: &str) -> Result<(), String> {
    template_safety::lint_forbidden_names(text)?;
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "an unclosed `{{`".to_string())?;
        let expr = &after[..end];
        if expr.contains('~') || expr.contains('[') {
            return Err(format!(
                "`{{{{{expr}}}}}` prints a concatenation or an array, which tera does not escape as one value; use `{{% set joined = a ~ b %}}{{{{ joined }}}}`"
            ));
        }
        for word in ["safe", "escape"] {
            let piped = expr
                .split('|')
                .skip(1)
                .any(|f| f.trim_start().starts_with(word));
            if piped {
                return Err(format!(
                    "`{{{{{expr}}}}}` uses the `{word}` filter, which bypasses YAML escaping"
                ));
            }
        }
        // tera escapes only strings: a filter that ends in a list prints its items raw.
        let last_filter = expr.split('|').skip(1).last().map(|f| {
            f.trim_start()
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap_or_default()
        });
        if let Some(filter) = last_filter
            && template_safety::LIST_FILTERS.contains(&filter)
        {
            return Err(format!(
                "`{{{{{expr}}}}}` ends with the `{filter}` filter, whose list tera prints unescaped; end with `join` or `first`"
            ));
        }
        rest = &after[end + 2..];
    }
    for tag in ["{% filter", "{%- filter", "{% autoescape", "{%- autoescape"] {
        if text.contains(tag) {
            return Err(format!(
                "`{tag}` blocks are not allowed: they bypass YAML escaping"
            ));
        }
    }
    Ok(())
}
