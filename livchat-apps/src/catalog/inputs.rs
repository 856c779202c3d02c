//! What the caller hands a render, checked before it reaches a template: `--set` parameters
//! (known keys, types, allowed values, defaults filled in), settings values, and image
//! overrides (pins and a registry mirror, still pinned afterwards).

use std::collections::BTreeMap;

use crate::AppsError;
use crate::definition::{AppDefinition, ParameterKind};
use crate::names;
use crate::render;

pub(super) fn check_no_nul(field: &str, value: &str) -> Result<(), AppsError> {
    if value.contains('\0') {
        return Err(AppsError::invalid_value(field, "must not contain NUL"));
    }
    Ok(())
}

/// Checks `--set` values against the app's parameters and fills in defaults.
pub(super) fn resolve_params(
    def: &AppDefinition,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, AppsError> {
    for key in given.keys() {
        if !def.parameters.contains_key(key) {
            return Err(AppsError::UnknownParameter {
                app: def.name.clone(),
                key: key.clone(),
                allowed: def.parameters.keys().cloned().collect(),
            });
        }
    }
    let mut out = BTreeMap::new();
    for (key, p) in &def.parameters {
        let field = format!("parameter `{key}` of `{}`", def.name);
        let value = given.get(key).or(p.default.as_ref()).ok_or_else(|| {
            AppsError::invalid_value(&field, "has no default and must be set with --set")
        })?;
        check_parameter(&field, p, value)?;
        out.insert(key.clone(), value.clone());
    }
    Ok(out)
}

fn check_parameter(
    field: &str,
    p: &crate::definition::Parameter,
    value: &str,
) -> Result<(), AppsError> {
    check_no_nul(field, value)?;
    match p.kind {
        ParameterKind::String => {}
        ParameterKind::Integer => {
            if value.is_empty() || !value.chars().all(|c| c.is_ascii_digit()) || value.len() > 18 {
                return Err(AppsError::invalid_value(
                    field,
                    "must be a non-negative integer",
                ));
            }
        }
        ParameterKind::Boolean => {
            if value != "true" && value != "false" {
                return Err(AppsError::invalid_value(field, "must be `true` or `false`"));
            }
        }
    }
    if !p.allowed.is_empty() && !p.allowed.iter().any(|a| a == value) {
        return Err(AppsError::invalid_value(
            field,
            format!("must be one of: {}", p.allowed.join(", ")),
        ));
    }
    Ok(())
}

/// Applies a pin override, then the mirror prefix, and checks the result is still pinned.
pub(super) fn override_image(
    image: &str,
    overrides: &render::ImageOverrides,
) -> Result<String, AppsError> {
    let repository = image_repository(image);
    let mut result = match overrides.pins.get(repository) {
        Some(pin) => {
            names::validate_image_ref(&format!("image override for {repository}"), pin)?;
            pin.clone()
        }
        None => image.to_string(),
    };
    if let Some(mirror) = &overrides.registry_mirror {
        names::validate_registry_prefix("registry mirror", mirror)?;
        let path = if image_repository(&result).contains('/') {
            result.clone()
        } else {
            // Official Docker Hub images live under `library/` in a pull-through mirror.
            format!("library/{result}")
        };
        result = format!("{mirror}/{path}");
    }
    names::validate_image_ref("image", &result)?;
    Ok(result)
}

/// `repo/name` of an image reference, without tag or digest.
fn image_repository(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    match without_digest.rfind(':') {
        Some(colon) if !without_digest[colon..].contains('/') => &without_digest[..colon],
        _ => without_digest,
    }
}
