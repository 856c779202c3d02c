//! The pre- and post-deploy steps of a definition resolved for one render: databases to
//! create, waits, commands, and first-run claims with their JSON bodies (which hold secrets).

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value as Json};

use crate::AppsError;
use crate::definition::{AppDefinition, BodyValue, StepSpec};
use crate::postgres::CreateDatabase;
use crate::render::{DeployStep, ExecClaimStep, HttpRequestStep, RenderContext};
use crate::secrets::{AppSecrets, SecretRef};

use super::Catalog;

impl Catalog {
    pub(super) fn resolve_steps(
        &self,
        def: &AppDefinition,
        steps: &[StepSpec],
        ctx: &RenderContext,
        own: Option<&AppSecrets>,
    ) -> Result<Vec<DeployStep>, AppsError> {
        let app = def.name.as_str();
        let mut out = Vec::new();
        for step in steps {
            out.push(match step {
                StepSpec::CreateDatabase { dependency } => {
                    let dep = def.dependency(dependency).and_then(|d| d.database.as_ref());
                    let provider = self.get(dependency).and_then(|p| p.provides.as_ref());
                    let (Some(db), Some(provider)) = (dep, provider) else {
                        return Err(AppsError::InvalidDefinition {
                            origin: app.to_string(),
                            field: "create_database.dependency".into(),
                            message: format!(
                                "`{dependency}` is not a dependency of this app with `database`"
                            ),
                        });
                    };
                    DeployStep::CreateDatabase {
                        stack: dependency.clone(),
                        service: provider.service.clone(),
                        spec: CreateDatabase {
                            kind: provider.kind,
                            database: db.name.clone(),
                            user: db.user.clone(),
                            extensions: db.extensions.clone(),
                        },
                        password: SecretRef::new(app, &db.password_secret),
                    }
                }
                StepSpec::WaitHealthy { timeout_secs } => DeployStep::WaitHealthy {
                    stack: app.to_string(),
                    timeout_secs: timeout_secs.unwrap_or(def.health_check.timeout_secs),
                },
                StepSpec::Exec {
                    service,
                    argv,
                    timeout_secs,
                } => DeployStep::Exec {
                    stack: app.to_string(),
                    service: service.clone(),
                    argv: argv.clone(),
                    timeout_secs: *timeout_secs,
                },
                StepSpec::InitAdminHttp {
                    service,
                    port,
                    path,
                    method,
                    domain,
                    body,
                    expect_status,
                } => {
                    let host = match domain {
                        None => def.dns_prefix.as_ref().map(|p| ctx.dns.fqdn(p)),
                        Some(key) => def
                            .additional_dns
                            .iter()
                            .find(|d| &d.key == key)
                            .map(|d| ctx.dns.fqdn(&d.prefix)),
                    }
                    .ok_or_else(|| AppsError::InvalidDefinition {
                        origin: app.to_string(),
                        field: "init_admin_http.domain".into(),
                        message: "the app has no such domain".into(),
                    })?;
                    let json_body = json_object(app, body, ctx, own)?;
                    DeployStep::HttpRequest(HttpRequestStep {
                        method: *method,
                        url: format!("https://{host}{path}"),
                        stack: app.to_string(),
                        service: service.clone(),
                        port: *port,
                        path: path.clone(),
                        body: json_body,
                        expect_status: expect_status.clone(),
                    })
                }
                StepSpec::InitAdminExec {
                    service,
                    argv,
                    input,
                    timeout_secs,
                    on_exists,
                } => DeployStep::ExecClaim(ExecClaimStep {
                    stack: app.to_string(),
                    service: service.clone(),
                    argv: argv.clone(),
                    stdin: json_object(app, input, ctx, own)?,
                    timeout_secs: *timeout_secs,
                    on_exists: on_exists.clone(),
                }),
            });
        }
        Ok(out)
    }
}

/// A first-run claim's JSON object: literals, settings (or their defaults) and this app's own
/// secrets. It holds secrets, so it is a [`SecretString`].
fn json_object(
    app: &str,
    fields: &BTreeMap<String, BodyValue>,
    ctx: &RenderContext,
    own: Option<&AppSecrets>,
) -> Result<SecretString, AppsError> {
    let mut object = Map::new();
    for (key, value) in fields {
        let v = match value {
            BodyValue::Value(v) => v.clone(),
            BodyValue::Setting { name, default } => ctx
                .settings
                .get(name)
                .cloned()
                .or_else(|| default.clone())
                .ok_or_else(|| AppsError::MissingSetting {
                    app: app.to_string(),
                    setting: name.clone(),
                })?,
            BodyValue::Secret(name) => own
                .and_then(|s| s.get(name))
                .ok_or_else(|| AppsError::MissingSecret {
                    app: app.to_string(),
                    secret: name.clone(),
                })?
                .expose_secret()
                .to_string(),
        };
        object.insert(key.clone(), Json::String(v));
    }
    Ok(SecretString::from(Json::Object(object).to_string()))
}
