//! Reading definitions: the built-ins embedded at build time (`build.rs` writes
//! `BUILTIN_FILES`) and the `*.yaml`/`*.yml` files of the user's directories, each parsed and
//! validated on its own before the catalog puts them together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::AppsError;
use crate::definition::{AppDefinition, TemplateSource};

use super::DefinitionSource;

include!(concat!(env!("OUT_DIR"), "/builtin_apps.rs"));

/// One definition as read, with its template text, before the catalog checks it against the others.
pub(super) struct Loaded {
    pub(super) definition: AppDefinition,
    pub(super) template: String,
    pub(super) source: DefinitionSource,
}

pub(super) fn parse_definition(yaml: &str, origin: &str) -> Result<AppDefinition, AppsError> {
    let def = AppDefinition::from_yaml(yaml).map_err(|e| AppsError::Parse {
        origin: origin.to_string(),
        message: e.to_string(),
    })?;
    crate::validate::validate_definition(&def).map_err(|e| match e {
        AppsError::InvalidValue { field, message } => AppsError::InvalidDefinition {
            origin: origin.to_string(),
            field,
            message,
        },
        other => other,
    })?;
    Ok(def)
}

pub(super) fn builtin_definitions() -> Result<Vec<Loaded>, AppsError> {
    let files: BTreeMap<&str, &str> = BUILTIN_FILES.iter().copied().collect();
    let mut out = Vec::new();
    for (name, text) in &files {
        if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        let origin = format!("builtin:{name}");
        let definition = parse_definition(text, &origin)?;
        let template = match &definition.template {
            TemplateSource::Inline(t) => t.clone(),
            TemplateSource::File(f) => files
                .get(f.as_str())
                .ok_or_else(|| AppsError::InvalidDefinition {
                    origin: origin.clone(),
                    field: "template.file".into(),
                    message: format!("no built-in file {f:?}"),
                })?
                .to_string(),
        };
        out.push(Loaded {
            definition,
            template,
            source: DefinitionSource::Builtin,
        });
    }
    Ok(out)
}

pub(super) fn read_user_dir(dir: &Path) -> Result<Vec<Loaded>, AppsError> {
    let io = |path: &Path, e: std::io::Error| AppsError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| io(dir, e)))
        .collect::<Result<_, _>>()?;
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let is_def = path.extension().is_some_and(|e| e == "yaml" || e == "yml") && path.is_file();
        if !is_def {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        let origin = path.display().to_string();
        let definition = parse_definition(&text, &origin)?;
        let template = match &definition.template {
            TemplateSource::Inline(t) => t.clone(),
            TemplateSource::File(f) => {
                let tpath = dir.join(f);
                std::fs::read_to_string(&tpath).map_err(|e| io(&tpath, e))?
            }
        };
        out.push(Loaded {
            definition,
            template,
            source: DefinitionSource::User { path },
        });
    }
    Ok(out)
}
