//! Checks of one definition on its own (the catalog adds the checks across definitions).
//! Errors are `InvalidValue` with the field path; the catalog adds the file they came from.

use std::collections::BTreeSet;

use crate::AppsError;
use crate::definition::{
    AppDefinition, BodyValue, Category, FirstRunAdmin, StepSpec, TemplateSource,
};
use crate::names::*;

fn bad(field: impl Into<String>, message: impl Into<String>) -> AppsError {
    AppsError::invalid_value(field, message)
}

fn unique<'a>(field: &str, items: impl Iterator<Item = &'a str>) -> Result<(), AppsError> {
    let mut seen = BTreeSet::new();
    for item in items {
        if !seen.insert(item) {
            return Err(bad(field, format!("{item:?} appears twice")));
        }
    }
    Ok(())
}

pub(crate) fn validate_definition(def: &AppDefinition) -> Result<(), AppsError> {
    validate_app_name("name", &def.name)?;
    if def.version.trim().is_empty() {
        return Err(bad("version", "must not be empty"));
    }
    if let Some(title) = &def.title
        && (title.trim().is_empty() || title.chars().any(char::is_control))
    {
        return Err(bad("title", "must be non-empty text on one line"));
    }
    if def.description.trim().is_empty() {
        return Err(bad("description", "must not be empty"));
    }

    for (i, dep) in def.dependencies.iter().enumerate() {
        let field = format!("dependencies[{i}]");
        validate_app_name(&format!("{field}.app"), &dep.app)?;
        if dep.app == def.name {
            return Err(bad(&field, "an app cannot depend on itself"));
        }
        if dep.database.is_some() && dep.redis_db.is_some() {
            return Err(bad(&field, "set `database` or `redis_db`, not both"));
        }
        if let Some(db) = &dep.database {
            validate_sql_identifier(&format!("{field}.database.name"), &db.name)?;
            validate_sql_identifier(&format!("{field}.database.user"), &db.user)?;
            if db.user == "postgres" {
                return Err(bad(
                    format!("{field}.database.user"),
                    "must not be the superuser `postgres`: each app gets its own least-privilege role",
                ));
            }
            for ext in &db.extensions {
                validate_sql_identifier(&format!("{field}.database.extensions"), ext)?;
            }
            if def.secret(&db.password_secret).is_none() {
                return Err(bad(
                    format!("{field}.database.password_secret"),
                    format!(
                        "{:?} is not one of this app's `secrets`",
                        db.password_secret
                    ),
                ));
            }
        }
        if let Some(index) = dep.redis_db
            && index > 15
        {
            return Err(bad(format!("{field}.redis_db"), "must be 0 to 15"));
        }
    }
    unique(
        "dependencies",
        def.dependencies.iter().map(|d| d.app.as_str()),
    )?;

    if let Some(prefix) = &def.dns_prefix {
        validate_dns_name("dns_prefix", prefix)?;
    }
    for (i, extra) in def.additional_dns.iter().enumerate() {
        validate_key(&format!("additional_dns[{i}].key"), &extra.key)?;
        validate_dns_name(&format!("additional_dns[{i}].prefix"), &extra.prefix)?;
    }
    unique(
        "additional_dns",
        def.additional_dns.iter().map(|d| d.key.as_str()),
    )?;

    if def.images.is_empty() {
        return Err(bad("images", "must name at least one image"));
    }
    for (key, image) in &def.images {
        validate_key("images key", key)?;
        validate_image_ref(&format!("images.{key}"), image)?;
    }
    for key in def.environment.keys() {
        validate_env_key("environment key", key)?;
    }
    for (i, s) in def.secrets.iter().enumerate() {
        validate_key(&format!("secrets[{i}].name"), &s.name)?;
        if !(16..=256).contains(&s.length) {
            return Err(bad(
                format!("secrets[{i}].length"),
                "must be 16 to 256 (short secrets would also be unsafe to redact)",
            ));
        }
    }
    unique("secrets", def.secrets.iter().map(|s| s.name.as_str()))?;
    for (key, p) in &def.parameters {
        validate_key("parameters key", key)?;
        if let Some(default) = &p.default
            && !p.allowed.is_empty()
            && !p.allowed.contains(default)
        {
            return Err(bad(
                format!("parameters.{key}.default"),
                "must be one of `allowed`",
            ));
        }
    }
    for s in &def.required_settings {
        validate_key("required_settings", s)?;
    }

    if let TemplateSource::File(f) = &def.template {
        let ok = !f.is_empty()
            && !f.starts_with('.')
            && !f.contains('/')
            && !f.contains('\\')
            && !f.contains('\0');
        if !ok {
            return Err(bad(
                "template.file",
                format!("{f:?} must be a plain file name next to the definition"),
            ));
        }
    }

    for (list, steps) in [
        ("pre_deploy", &def.pre_deploy),
        ("post_deploy", &def.post_deploy),
    ] {
        for (i, step) in steps.iter().enumerate() {
            let field = format!("{list}[{i}]");
            match step {
                StepSpec::CreateDatabase { dependency } => {
                    if def
                        .dependency(dependency)
                        .and_then(|d| d.database.as_ref())
                        .is_none()
                    {
                        return Err(bad(
                            format!("{field}.create_database.dependency"),
                            format!(
                                "{dependency:?} is not a dependency of this app with `database`"
                            ),
                        ));
                    }
                }
                StepSpec::WaitHealthy { .. } => {}
                StepSpec::Exec { service, argv, .. } => {
                    validate_service_name(&format!("{field}.exec.service"), service)?;
                    if argv.first().is_none_or(|a| a.is_empty()) {
                        return Err(bad(format!("{field}.exec.argv"), "needs a program"));
                    }
                    if argv.iter().any(|a| a.contains('\0')) {
                        return Err(bad(format!("{field}.exec.argv"), "must not contain NUL"));
                    }
                }
                StepSpec::InitAdminHttp {
                    service,
                    port,
                    path,
                    domain,
                    body,
                    ..
                } => {
                    validate_service_name(&format!("{field}.init_admin_http.service"), service)?;
                    if *port == 0 {
                        return Err(bad(
                            format!("{field}.init_admin_http.port"),
                            "must be a port from 1 to 65535",
                        ));
                    }
                    let path_ok = path.starts_with('/')
                        && path
                            .chars()
                            .all(|c| c.is_ascii_graphic() && c != '#' && c != '\\');
                    if !path_ok {
                        return Err(bad(
                            format!("{field}.init_admin_http.path"),
                            "must start with '/' and hold only visible ASCII",
                        ));
                    }
                    let has_domain = match domain {
                        None => def.dns_prefix.is_some(),
                        Some(k) => def.additional_dns.iter().any(|d| &d.key == k),
                    };
                    if !has_domain {
                        return Err(bad(
                            format!("{field}.init_admin_http.domain"),
                            "the app has no such domain (set dns_prefix or an additional_dns key)",
                        ));
                    }
                    validate_claim_fields(def, &format!("{field}.init_admin_http.body"), body)?;
                }
                StepSpec::InitAdminExec {
                    service,
                    argv,
                    input,
                    on_exists,
                    ..
                } => {
                    validate_service_name(&format!("{field}.init_admin_exec.service"), service)?;
                    let field = format!("{field}.init_admin_exec");
                    validate_claim_argv(&format!("{field}.argv"), argv)?;
                    validate_claim_fields(def, &format!("{field}.input"), input)?;
                    if let Some(e) = on_exists {
                        let field = format!("{field}.on_exists");
                        if e.output_contains.trim().is_empty() {
                            return Err(bad(
                                format!("{field}.output_contains"),
                                "must not be empty (any failure would take over an account)",
                            ));
                        }
                        validate_claim_argv(&format!("{field}.argv"), &e.argv)?;
                    }
                }
            }
        }
    }

    validate_first_run(def)?;
    if def.category == Category::Database && !def.ports.is_empty() {
        return Err(bad(
            "ports",
            "a database publishes no port (Docker bypasses the host firewall); dependents reach it over the overlay network",
        ));
    }
    if def.required_by_all && def.category != Category::Infrastructure {
        return Err(bad(
            "required_by_all",
            "only an infrastructure app can be required by all",
        ));
    }
    for (i, inc) in def.includes.iter().enumerate() {
        validate_app_name(&format!("includes[{i}]"), inc)?;
    }
    if let Some(p) = &def.provides {
        validate_service_name("provides.service", &p.service)?;
        if let Some(s) = &p.password_secret
            && def.secret(s).is_none()
        {
            return Err(bad(
                "provides.password_secret",
                format!("{s:?} is not one of this app's `secrets`"),
            ));
        }
    }
    if let Some(r) = &def.tls_resolver {
        validate_key("tls_resolver", r)?;
    }
    Ok(())
}

/// A claim command: a program, no NUL.
fn validate_claim_argv(field: &str, argv: &[String]) -> Result<(), AppsError> {
    if argv.first().is_none_or(|a| a.is_empty()) {
        return Err(bad(field, "needs a program"));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(bad(field, "must not contain NUL"));
    }
    Ok(())
}

/// `first_run` agrees with the steps: `claimed` exactly when a claim step exists (a definition
/// that says its admin is claimed but sends nothing would leave the setup page open), and each
/// kind carries what a person needs to find the admin (its secret) or to act (the note).
fn validate_first_run(def: &AppDefinition) -> Result<(), AppsError> {
    let claims = def.pre_deploy.iter().chain(&def.post_deploy).any(|s| {
        matches!(
            s,
            StepSpec::InitAdminHttp { .. } | StepSpec::InitAdminExec { .. }
        )
    });
    let Some(fr) = &def.first_run else {
        return Ok(());
    };
    match (fr.admin, claims) {
        (FirstRunAdmin::Claimed, false) => {
            return Err(bad(
                "first_run.admin",
                "`claimed` needs an `init_admin_http` or `init_admin_exec` step in post_deploy",
            ));
        }
        (other, true) if other != FirstRunAdmin::Claimed => {
            return Err(bad(
                "first_run.admin",
                "the app has a first-run claim step, so its admin is `claimed`",
            ));
        }
        _ => {}
    }
    if let Some(s) = &fr.secret
        && def.secret(s).is_none()
    {
        return Err(bad(
            "first_run.secret",
            format!("{s:?} is not one of this app's `secrets`"),
        ));
    }
    // An `environment` admin may have no password at all (Typebot signs in by e-mail link).
    if fr.admin == FirstRunAdmin::Claimed && fr.secret.is_none() {
        return Err(bad(
            "first_run.secret",
            "name the secret that holds the admin's password or token",
        ));
    }
    if fr.admin != FirstRunAdmin::Claimed && fr.note.trim().is_empty() {
        return Err(bad(
            "first_run.note",
            "say who the admin is, why there is nothing to claim, or what the user must do",
        ));
    }
    Ok(())
}

/// The fields of a first-run claim name only this app's secrets and well-formed settings.
fn validate_claim_fields(
    def: &AppDefinition,
    field: &str,
    fields: &std::collections::BTreeMap<String, BodyValue>,
) -> Result<(), AppsError> {
    for (key, value) in fields {
        match value {
            BodyValue::Secret(s) if def.secret(s).is_none() => {
                return Err(bad(
                    format!("{field}.{key}"),
                    format!("{s:?} is not one of this app's `secrets`"),
                ));
            }
            BodyValue::Setting { name, .. } => validate_key(&format!("{field}.{key}"), name)?,
            _ => {}
        }
    }
    Ok(())
}
