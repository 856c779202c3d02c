//! A definition rendered into a checked stack: the template context (images, domains,
//! parameters, settings, secrets, what each dependency offers), the tera render, the refusal of
//! printed values in shell strings, the endpoint mode and schema checks, the Docker secrets the
//! stack declares, and the whole-chain preview of `livchat app render`.

use std::collections::{BTreeMap, BTreeSet};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value as Json, json};

use crate::AppsError;
use crate::definition::{AppDefinition, Dependency};
use crate::names;
use crate::render::{
    self, DockerSecret, PreviewRequest, PreviewStack, Redactions, RenderContext, RenderedStack,
};
use crate::secrets::{self, AppSecrets, SecretRef, SecretsByApp};
use crate::template_safety;

use super::inputs::{check_no_nul, override_image, resolve_params};
use super::own_instance::{own_instance_secret, runs_per_dependent};
use super::{Catalog, origin_of, template_name, tera_message};

impl Catalog {
    /// Renders `app` into a validated stack. `params` are the user's `--set` values (checked
    /// against the app's `parameters`); `secrets` must hold every [`Catalog::secrets_needed`].
    pub fn render(
        &self,
        app: &str,
        ctx: &RenderContext,
        params: &BTreeMap<String, String>,
        secrets: &SecretsByApp,
    ) -> Result<RenderedStack, AppsError> {
        let def = self.require(app)?;
        ctx.dns.validate()?;
        names::validate_network_name("network", &ctx.options.network)?;
        for (key, value) in &ctx.settings {
            names::validate_key("settings key", key)?;
            check_no_nul(&format!("settings.{key}"), value)?;
        }
        for setting in &def.required_settings {
            if ctx
                .settings
                .get(setting)
                .is_none_or(|v| v.trim().is_empty())
            {
                return Err(AppsError::MissingSetting {
                    app: app.to_string(),
                    setting: setting.clone(),
                });
            }
        }
        let params = resolve_params(def, params)?;
        let own = secrets.get(app);
        let mut redactions = Vec::new();
        let mut secret_values = Map::new();
        let mut docker_names: BTreeMap<String, (SecretRef, SecretString)> = BTreeMap::new();
        let mut docker_by_key = Map::new();
        for spec in &def.secrets {
            let value =
                own.and_then(|s| s.get(&spec.name))
                    .ok_or_else(|| AppsError::MissingSecret {
                        app: app.to_string(),
                        secret: spec.name.clone(),
                    })?;
            let r = SecretRef::new(app, &spec.name);
            let v = value.expose_secret().to_string();
            secret_values.insert(spec.name.clone(), Json::String(v.clone()));
            docker_by_key.insert(spec.name.clone(), Json::String(r.docker_secret_name()));
            docker_names.insert(r.docker_secret_name(), (r.clone(), value.clone()));
            redactions.push((v, r));
        }

        let mut deps = Map::new();
        for dep in &def.dependencies {
            let (out, extra) = self.dependency_output(app, dep, own, secrets)?;
            deps.insert(dep.app.clone(), out);
            for (r, value) in extra {
                redactions.push((value.expose_secret().to_string(), r.clone()));
                docker_names.insert(r.docker_secret_name(), (r, value));
            }
        }

        let context = self.template_context(
            def,
            app,
            ctx,
            &params,
            TemplateSecrets {
                values: secret_values,
                docker_names: docker_by_key,
            },
            deps,
        )?;
        let mut doc = self.render_document(app, &context)?;

        let mut own_instances = Vec::new();
        for dep in &def.dependencies {
            if let Some(provider) = self.own_instance_of(dep) {
                own_instances.push(self.add_own_instance(def, provider, ctx, own, &mut doc)?);
            }
        }

        render::apply_endpoint_mode(app, &mut doc, ctx.options.endpoint_mode)?;
        render::validate_stack(app, &doc)?;
        let docker_secrets = collect_docker_secrets(app, &doc, &docker_names)?;
        let compose = serde_yaml::to_string(&doc).map_err(|e| AppsError::InvalidStack {
            app: app.to_string(),
            errors: vec![e.to_string()],
        })?;
        let (redacted, contains_secret_values) = Redactions(redactions).apply(&compose);

        let pre_deploy = self.resolve_steps(def, &def.pre_deploy, ctx, own)?;
        let post_deploy = self.resolve_steps(def, &def.post_deploy, ctx, own)?;
        Ok(RenderedStack {
            app: app.to_string(),
            stack: app.to_string(),
            compose: SecretString::from(compose),
            redacted,
            contains_secret_values,
            docker_secrets,
            pre_deploy,
            post_deploy,
            dns_names: def.dns_names(&ctx.dns),
            health_check: def.health_check.clone(),
            own_instances,
        })
    }

    /// The tera context of `def`'s template, rendered into stack `stack`.
    pub(super) fn template_context(
        &self,
        def: &AppDefinition,
        stack: &str,
        ctx: &RenderContext,
        params: &BTreeMap<String, String>,
        secrets: TemplateSecrets,
        deps: Map<String, Json>,
    ) -> Result<tera::Context, AppsError> {
        let mut images = Map::new();
        for (key, image) in &def.images {
            images.insert(
                key.clone(),
                Json::String(override_image(image, &ctx.options.images)?),
            );
        }
        let mut domains = Map::new();
        for extra in &def.additional_dns {
            domains.insert(extra.key.clone(), Json::String(ctx.dns.fqdn(&extra.prefix)));
        }
        let mut context = json!({
            "app": def.name,
            "stack": stack,
            "version": def.version,
            "server": { "name": ctx.server.name, "address": ctx.server.address },
            "zone": ctx.dns.zone,
            "domains": domains,
            "network": ctx.options.network,
            "images": images,
            "env": def.environment,
            "params": params,
            "settings": ctx.settings,
            "secrets": secrets.values,
            "docker_secrets": secrets.docker_names,
            "deps": deps,
        });
        if let Some(prefix) = &def.dns_prefix {
            context["domain"] = Json::String(ctx.dns.fqdn(prefix));
        }
        if let Some(r) = &self.tls_resolver {
            context["tls_resolver"] = Json::String(r.clone());
        }
        tera::Context::from_value(context).map_err(|e| AppsError::Template {
            app: def.name.clone(),
            message: tera_message(&e),
        })
    }

    /// Renders `template_app`'s template with `context` into a checked stack document.
    pub(super) fn render_document(
        &self,
        template_app: &str,
        context: &tera::Context,
    ) -> Result<serde_yaml::Mapping, AppsError> {
        let text = self
            .tera
            .render(&template_name(template_app), context)
            .map_err(|e| AppsError::Template {
                app: template_app.to_string(),
                message: tera_message(&e),
            })?;
        let doc = render::parse_stack(template_app, &text)?;
        self.refuse_values_in_shell_strings(template_app, &doc, context)?;
        Ok(doc)
    }

    /// Refuses a render that puts a printed value into a string a shell in the container parses
    /// (a `--set` value in a `CMD-SHELL` healthcheck would run as code). The tainted render has
    /// the same control flow as the real one; only the escaper differs.
    fn refuse_values_in_shell_strings(
        &self,
        app: &str,
        doc: &serde_yaml::Mapping,
        tera_ctx: &tera::Context,
    ) -> Result<(), AppsError> {
        if !template_safety::has_shell_strings(doc) {
            return Ok(());
        }
        let text = self
            .tainted
            .render(&template_name(app), tera_ctx)
            .map_err(|e| AppsError::Template {
                app: app.to_string(),
                message: tera_message(&e),
            })?;
        let problems = template_safety::values_in_shell_strings(&render::parse_stack(app, &text)?);
        if problems.is_empty() {
            return Ok(());
        }
        let origin = self
            .entry(app)
            .map(origin_of)
            .unwrap_or_else(|| app.to_string());
        Err(AppsError::InvalidDefinition {
            origin,
            field: "template".into(),
            message: problems.join("; "),
        })
    }

    /// What `app` gets from one dependency, and the provider secrets that come with it.
    fn dependency_output(
        &self,
        app: &str,
        dep: &Dependency,
        own: Option<&AppSecrets>,
        secrets: &SecretsByApp,
    ) -> Result<(Json, Vec<(SecretRef, SecretString)>), AppsError> {
        let provider = self
            .get(&dep.app)
            .ok_or_else(|| AppsError::MissingDependency {
                app: app.to_string(),
                dependency: dep.app.clone(),
            })?;
        let mut out = Map::new();
        let mut extra = Vec::new();
        // The app's own instance of a `redis` provider lives in the app's stack, with the app's
        // own copy of the password; other providers run in their own stack.
        let per_dependent = runs_per_dependent(provider);
        let stack = if per_dependent { app } else { dep.app.as_str() };
        out.insert("stack".into(), Json::String(stack.to_string()));
        if let Some(p) = &provider.provides {
            out.insert("service".into(), Json::String(p.service.clone()));
            // Swarm resolves `<stack>_<service>` on every network the service joins. Never the
            // bare service name: every stack shares one overlay network, where `redis` would
            // resolve to several apps' instances.
            out.insert(
                "host".into(),
                Json::String(format!("{stack}_{}", p.service)),
            );
            out.insert("port".into(), Json::from(p.port));
            if let Some(secret) = &p.password_secret {
                let (r, value) = if per_dependent {
                    let name = own_instance_secret(&dep.app, secret);
                    let value =
                        own.and_then(|s| s.get(&name))
                            .ok_or_else(|| AppsError::MissingSecret {
                                app: app.to_string(),
                                secret: name.clone(),
                            })?;
                    (SecretRef::new(app, &name), value)
                } else {
                    let value = secrets
                        .get(&dep.app)
                        .and_then(|s| s.get(secret))
                        .ok_or_else(|| AppsError::MissingSecret {
                            app: dep.app.clone(),
                            secret: secret.clone(),
                        })?;
                    (SecretRef::new(&dep.app, secret), value)
                };
                out.insert(
                    "password".into(),
                    Json::String(value.expose_secret().to_string()),
                );
                out.insert(
                    "password_docker_secret".into(),
                    Json::String(r.docker_secret_name()),
                );
                // The app's own secrets are redacted and delivered with the others already.
                if !per_dependent {
                    extra.push((r, value.clone()));
                }
            }
        }
        if let Some(db) = &dep.database {
            let value = own
                .and_then(|s| s.get(&db.password_secret))
                .ok_or_else(|| AppsError::MissingSecret {
                    app: app.to_string(),
                    secret: db.password_secret.clone(),
                })?;
            let r = SecretRef::new(app, &db.password_secret);
            out.insert("database".into(), Json::String(db.name.clone()));
            out.insert("user".into(), Json::String(db.user.clone()));
            out.insert(
                "password".into(),
                Json::String(value.expose_secret().to_string()),
            );
            out.insert(
                "password_docker_secret".into(),
                Json::String(r.docker_secret_name()),
            );
        }
        if let Some(index) = dep.redis_db.or(per_dependent.then_some(0)) {
            out.insert("db_index".into(), Json::from(index));
        }
        Ok((Json::Object(out), extra))
    }

    /// The whole `livchat app render APP`: resolve the install order, generate throwaway
    /// secrets (stored nowhere), and render the app and each dependency, in install order.
    pub fn render_preview(&self, request: &PreviewRequest) -> Result<Vec<PreviewStack>, AppsError> {
        let def = self.require(&request.app)?;
        // Check `--set` keys before anything else, so the error is about them.
        resolve_params(def, &request.params)?;
        let order = self.install_order(&[request.app.as_str()], &request.deployed)?;
        let mut secrets = SecretsByApp::new();
        let mut needed: BTreeSet<String> = order.iter().cloned().collect();
        needed.insert(request.app.clone());
        for app in &order {
            if let Some(d) = self.get(app) {
                needed.extend(d.dependencies.iter().map(|x| x.app.clone()));
            }
        }
        for app in &needed {
            let d = self.require(app)?;
            secrets.insert(app.clone(), secrets::complete(d, &AppSecrets::new()));
        }
        let empty = BTreeMap::new();
        let mut out = Vec::new();
        for app in &order {
            let params = if *app == request.app {
                &request.params
            } else {
                &empty
            };
            let stack = self.render(app, &request.context, params, &secrets)?;
            out.push(PreviewStack {
                app: stack.app.clone(),
                stack: stack.stack.clone(),
                compose: render::expose(stack.compose()),
            });
        }
        Ok(out)
    }
}

/// What a template sees of its app's secrets: values (`secrets.<name>`) and Swarm secret
/// names (`docker_secrets.<name>`).
pub(super) struct TemplateSecrets {
    pub(super) values: Map<String, Json>,
    pub(super) docker_names: Map<String, Json>,
}

/// The external secrets the stack declares, matched with the values the render knows.
fn collect_docker_secrets(
    app: &str,
    doc: &serde_yaml::Mapping,
    known: &BTreeMap<String, (SecretRef, SecretString)>,
) -> Result<Vec<DockerSecret>, AppsError> {
    let mut out = Vec::new();
    let Some(serde_yaml::Value::Mapping(declared)) = doc.get("secrets") else {
        return Ok(out);
    };
    let mut seen = BTreeSet::new();
    for (key, spec) in declared {
        let key = key.as_str().unwrap_or("?");
        let name = spec.get("name").and_then(|v| v.as_str());
        let external = spec.get("external").and_then(|v| v.as_bool()) == Some(true);
        let Some((r, value)) = name.filter(|_| external).and_then(|n| known.get(n)) else {
            return Err(AppsError::InvalidStack {
                app: app.to_string(),
                errors: vec![format!(
                    "secret `{key}` must be `external: true` with `name` set to one of the app's docker_secrets"
                )],
            });
        };
        // Two keys may name one Docker secret (the app's and its own Redis's key for the
        // Redis password): it is created once.
        if !seen.insert(r.docker_secret_name()) {
            continue;
        }
        out.push(DockerSecret {
            name: r.docker_secret_name(),
            secret: r.clone(),
            value: value.clone(),
        });
    }
    Ok(out)
}
