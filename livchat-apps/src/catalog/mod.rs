//! The catalog: built-in definitions embedded in the binary plus the user's own from
//! `LIVCHAT_APPS_DIR`, validated together, with listing, search, dependency resolution and
//! rendering on top.
//!
//! A user definition with the same name as a built-in REPLACES it, and the catalog records that
//! (`CatalogEntry::overrides_builtin`), so `app list`/`app show` can say so. This lets a user pin
//! a different version or change a template without forking the tool. Two user definitions
//! with the same name (in different directories) are rejected as ambiguous.
//!
//! This file holds the catalog's types, how one is made and the lookups; the rest lives by
//! subject: `load.rs` reads and parses definitions, `assemble.rs` puts them together (overrides,
//! templates compiled and linted, cross-references checked), `dependencies.rs` answers what an
//! app needs and what needs it, `render.rs` turns a definition into a checked stack, `inputs.rs`
//! checks what the caller passes to a render, `steps.rs` resolves the pre- and post-deploy
//! steps, and `own_instance.rs` handles the `redis` provider each dependent runs for itself.

mod assemble;
mod dependencies;
mod inputs;
mod load;
mod own_instance;
mod render;
mod steps;

use std::collections::BTreeMap;
use std::path::PathBuf;

use tera::Tera;

use crate::AppsError;
use crate::definition::AppDefinition;
use load::{Loaded, builtin_definitions, parse_definition, read_user_dir};

/// The environment variable holding the user's definition directories (colon-separated).
pub const APPS_DIR_ENV: &str = "LIVCHAT_APPS_DIR";

/// Where a definition came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefinitionSource {
    Builtin,
    User { path: PathBuf },
}

/// A definition in the catalog.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub definition: AppDefinition,
    pub source: DefinitionSource,
    /// A user definition that replaced the built-in of the same name.
    pub overrides_builtin: bool,
}

/// All definitions, validated, with their templates compiled.
#[derive(Debug, Clone)]
pub struct Catalog {
    entries: BTreeMap<String, CatalogEntry>,
    tera: Tera,
    /// The same templates with [`crate::template_safety::tainted_scalar`] as escaper: rendered
    /// only to find printed values in shell strings.
    tainted: Tera,
    tls_resolver: Option<String>,
}

impl Catalog {
    /// The built-in definitions only.
    pub fn builtin() -> Result<Catalog, AppsError> {
        Catalog::build(builtin_definitions()?, Vec::new())
    }

    /// Built-ins plus the definitions in `apps_dirs`, a `LIVCHAT_APPS_DIR`-style value
    /// (colon-separated directories; empty parts ignored). `None` means built-ins only.
    pub fn load(apps_dirs: Option<&str>) -> Result<Catalog, AppsError> {
        let dirs: Vec<PathBuf> = apps_dirs
            .unwrap_or("")
            .split(':')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        Catalog::with_user_dirs(&dirs)
    }

    /// [`Catalog::load`] with the value of `LIVCHAT_APPS_DIR`.
    pub fn from_env() -> Result<Catalog, AppsError> {
        Catalog::load(std::env::var(APPS_DIR_ENV).ok().as_deref())
    }

    /// Built-ins plus every `*.yaml`/`*.yml` definition in each directory (in that order).
    pub fn with_user_dirs(dirs: &[PathBuf]) -> Result<Catalog, AppsError> {
        let mut user = Vec::new();
        for dir in dirs {
            user.extend(read_user_dir(dir)?);
        }
        Catalog::build(builtin_definitions()?, user)
    }

    /// A catalog of the given definitions and templates only (no built-ins): for tests and
    /// tools. Each item is (definition YAML, template text, origin used in errors).
    pub fn from_sources(items: &[(&str, &str, &str)]) -> Result<Catalog, AppsError> {
        let mut loaded = Vec::new();
        for (yaml, template, origin) in items {
            let definition = parse_definition(yaml, origin)?;
            loaded.push(Loaded {
                definition,
                template: template.to_string(),
                source: DefinitionSource::User {
                    path: PathBuf::from(origin),
                },
            });
        }
        Catalog::build(Vec::new(), loaded)
    }

    /// Every entry, sorted by name.
    pub fn list(&self) -> impl Iterator<Item = &CatalogEntry> {
        self.entries.values()
    }

    /// App names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    pub fn get(&self, name: &str) -> Option<&AppDefinition> {
        self.entries.get(name).map(|e| &e.definition)
    }

    pub fn entry(&self, name: &str) -> Option<&CatalogEntry> {
        self.entries.get(name)
    }

    /// Like [`Catalog::get`], with an error naming the app and listing the known ones.
    pub fn require(&self, name: &str) -> Result<&AppDefinition, AppsError> {
        self.get(name).ok_or_else(|| AppsError::UnknownApp {
            name: name.to_string(),
            known: self.names(),
        })
    }

    /// Entries whose name, description or category contains `query` (case-insensitive).
    pub fn search(&self, query: &str) -> Vec<&CatalogEntry> {
        let q = query.to_lowercase();
        self.entries
            .values()
            .filter(|e| {
                let d = &e.definition;
                d.name.to_lowercase().contains(&q)
                    || d.description.to_lowercase().contains(&q)
                    || d.category.as_str().contains(&q)
            })
            .collect()
    }

    /// The certificate resolver name the reverse proxy declares (all Traefik router labels
    /// must use it).
    pub fn tls_resolver(&self) -> Option<&str> {
        self.tls_resolver.as_deref()
    }

    /// The apps everything else needs (`required_by_all`), sorted.
    pub fn required_by_all(&self) -> Vec<String> {
        self.entries
            .values()
            .filter(|e| e.definition.required_by_all)
            .map(|e| e.definition.name.clone())
            .collect()
    }
}

fn template_name(app: &str) -> String {
    format!("{app}.yml")
}

fn origin_of(entry: &CatalogEntry) -> String {
    match &entry.source {
        DefinitionSource::Builtin => format!("builtin:{}", entry.definition.name),
        DefinitionSource::User { path } => path.display().to_string(),
    }
}

/// Tera errors keep the useful part in their source chain.
fn tera_message(e: &tera::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
