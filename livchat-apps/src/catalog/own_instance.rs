//! The `redis` provider each dependent runs for itself: its secrets declared as the
//! dependent's own (`<provider>_<secret>`), its template rendered into the dependent's stack, and
//! the merge of that part into the stack, refusing a clash with the dependent's own services.

use std::collections::BTreeMap;

use secrecy::ExposeSecret;
use serde_json::{Map, Value as Json};

use crate::AppsError;
use crate::definition::{AppDefinition, Dependency, ProvidedKind, SecretSpec};
use crate::names;
use crate::render::{OwnInstance, RenderContext};
use crate::secrets::{AppSecrets, SecretRef};

use super::inputs::resolve_params;
use super::render::TemplateSecrets;
use super::{Catalog, CatalogEntry, origin_of};

impl Catalog {
    /// The provider of `dep` when the dependent runs its own instance of it (a `redis` provider).
    pub(super) fn own_instance_of(&self, dep: &Dependency) -> Option<&AppDefinition> {
        self.get(&dep.app).filter(|p| runs_per_dependent(p))
    }

    /// Renders `provider`'s template into `dependent`'s stack (`doc`) as the dependent's own
    /// instance: the template's `stack` is the dependent's, and its `secrets.<s>` /
    /// `docker_secrets.<s>` are the dependent's `<provider>_<s>` secrets, so the instance's
    /// password is the dependent's alone and goes away with the dependent's data.
    pub(super) fn add_own_instance(
        &self,
        dependent: &AppDefinition,
        provider: &AppDefinition,
        ctx: &RenderContext,
        own: Option<&AppSecrets>,
        doc: &mut serde_yaml::Mapping,
    ) -> Result<OwnInstance, AppsError> {
        let app = dependent.name.as_str();
        let mut values = Map::new();
        let mut docker_names = Map::new();
        let mut refs = Vec::new();
        for spec in &provider.secrets {
            let name = own_instance_secret(&provider.name, &spec.name);
            let value = own
                .and_then(|s| s.get(&name))
                .ok_or_else(|| AppsError::MissingSecret {
                    app: app.to_string(),
                    secret: name.clone(),
                })?;
            let r = SecretRef::new(app, &name);
            values.insert(
                spec.name.clone(),
                Json::String(value.expose_secret().to_string()),
            );
            docker_names.insert(spec.name.clone(), Json::String(r.docker_secret_name()));
            refs.push(r);
        }
        let params = resolve_params(provider, &BTreeMap::new())?;
        let context = self.template_context(
            provider,
            app,
            ctx,
            &params,
            TemplateSecrets {
                values,
                docker_names,
            },
            Map::new(),
        )?;
        let part = self.render_document(&provider.name, &context)?;
        let keys = |section: &str| -> Vec<String> {
            part.get(section)
                .and_then(|v| v.as_mapping())
                .map(|m| {
                    m.keys()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let instance = OwnInstance {
            provider: provider.name.clone(),
            services: keys("services"),
            volumes: keys("volumes"),
            secrets: refs,
        };
        merge_own_instance(app, &provider.name, doc, part)?;
        Ok(instance)
    }
}

/// Whether dependents run their own instance of `def` instead of sharing one (a `redis`
/// provider; see [`ProvidedKind::Redis`]).
pub(super) fn runs_per_dependent(def: &AppDefinition) -> bool {
    def.provides
        .as_ref()
        .is_some_and(|p| p.kind == ProvidedKind::Redis)
}

/// The dependent's own copy of `provider`'s secret `secret`: `redis_password`.
pub(super) fn own_instance_secret(provider: &str, secret: &str) -> String {
    format!("{}_{secret}", provider.replace('-', "_"))
}

/// Declares, in every app that depends on a `redis` provider, its own copy of each of the
/// provider's secrets (`<provider>_<secret>`, same length and alphabet). As the app's own
/// secrets they are generated, stored (`app.<app>.redis_password`), delivered as Docker
/// secrets and deleted with `--delete-data` like any other, with no special case in callers.
pub(super) fn declare_own_instance_secrets(
    entries: &mut BTreeMap<String, (CatalogEntry, String)>,
) -> Result<(), AppsError> {
    let providers: BTreeMap<String, Vec<SecretSpec>> = entries
        .iter()
        .filter(|(_, (e, _))| runs_per_dependent(&e.definition))
        .map(|(name, (e, _))| (name.clone(), e.definition.secrets.clone()))
        .collect();
    for (entry, _) in entries.values_mut() {
        let origin = origin_of(entry);
        let def = &mut entry.definition;
        let used: Vec<String> = def
            .dependencies
            .iter()
            .filter(|d| providers.contains_key(&d.app))
            .map(|d| d.app.clone())
            .collect();
        for provider in used {
            for spec in &providers[&provider] {
                let name = own_instance_secret(&provider, &spec.name);
                let bad = |message: String| AppsError::InvalidDefinition {
                    origin: origin.clone(),
                    field: format!("dependencies.{provider}"),
                    message,
                };
                names::validate_key("secret", &name)
                    .map_err(|e| bad(format!("its own instance's secret: {e}")))?;
                if def.secret(&name).is_some() {
                    return Err(bad(format!(
                        "the app runs its own `{provider}`, whose password is the app's secret {name:?}; rename the app's own {name:?}"
                    )));
                }
                def.secrets.push(SecretSpec {
                    name,
                    description: format!(
                        "This app's own `{provider}` instance: its `{}` secret.",
                        spec.name
                    ),
                    ..spec.clone()
                });
            }
        }
    }
    Ok(())
}

/// Adds the sections of an own instance's document (`part`) to the dependent's stack. A key
/// the stack already has is refused (a service or volume of the same name would be the
/// app's, not the instance's), unless both declare the very same thing: the shared external
/// network, or the same external secret under the same key.
fn merge_own_instance(
    app: &str,
    provider: &str,
    doc: &mut serde_yaml::Mapping,
    part: serde_yaml::Mapping,
) -> Result<(), AppsError> {
    use serde_yaml::Value;
    let refuse = |message: String| AppsError::InvalidStack {
        app: app.to_string(),
        errors: vec![format!("its own `{provider}`: {message}")],
    };
    for (section, items) in part {
        let name = section.as_str().unwrap_or_default().to_string();
        if name == "version" {
            continue;
        }
        if !["services", "volumes", "secrets", "networks", "configs"].contains(&name.as_str()) {
            return Err(refuse(format!(
                "top-level `{name}` cannot be added to another stack"
            )));
        }
        let Value::Mapping(items) = items else {
            return Err(refuse(format!("`{name}` is not a mapping")));
        };
        let target = doc
            .entry(section)
            .or_insert_with(|| Value::Mapping(serde_yaml::Mapping::new()));
        let Value::Mapping(target) = target else {
            return Err(refuse(format!("the stack's `{name}` is not a mapping")));
        };
        for (key, value) in items {
            match target.get(&key) {
                None => {
                    target.insert(key, value);
                }
                Some(existing)
                    if (name == "networks" || name == "secrets") && *existing == value => {}
                Some(_) => {
                    return Err(refuse(format!(
                        "`{name}.{}` is declared by the app's template too; rename the app's",
                        key.as_str().unwrap_or("?")
                    )));
                }
            }
        }
    }
    Ok(())
}
