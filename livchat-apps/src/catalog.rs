//! The catalog: built-in definitions embedded in the binary plus the user's own from
//! `LIVCHAT_APPS_DIR`, validated together, with listing, search, dependency resolution and
//! rendering on top.
//!
//! A user definition with the same name as a built-in REPLACES it, and the catalog records that
//! (`CatalogEntry::overrides_builtin`), so `app list`/`app show` can say so. This lets a user pin
//! a different version or change a template without forking the tool. Two user definitions
//! with the same name (in different directories) are rejected as ambiguous.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value as Json, json};
use tera::Tera;

use crate::AppsError;
use crate::definition::{
    AppDefinition, BodyValue, Category, Dependency, ParameterKind, ProvidedKind, SecretSpec,
    StepSpec, TemplateSource,
};
use crate::names;
use crate::postgres::CreateDatabase;
use crate::render::{
    self, DeployStep, DockerSecret, ExecClaimStep, HttpRequestStep, OwnInstance, PreviewRequest,
    PreviewStack, Redactions, RenderContext, RenderedStack,
};
use crate::resolver;
use crate::secrets::{self, AppSecrets, SecretRef, SecretsByApp};
use crate::template_safety;

include!(concat!(env!("OUT_DIR"), "/builtin_apps.rs"));

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
    /// The same templates with [`template_safety::tainted_scalar`] as escaper: rendered only
    /// to find printed values in shell strings.
    tainted: Tera,
    tls_resolver: Option<String>,
}

struct Loaded {
    definition: AppDefinition,
    template: String,
    source: DefinitionSource,
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

    fn build(builtin: Vec<Loaded>, user: Vec<Loaded>) -> Result<Catalog, AppsError> {
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

    /// Direct requirements of `app`: its dependencies plus, for every app that is not
    /// infrastructure, the `required_by_all` apps. `None` if `app` is unknown.
    /// A dependency on a `redis` provider is not a requirement: the app runs its own instance.
    pub fn requirements_of(&self, app: &str) -> Option<Vec<String>> {
        let def = self.get(app)?;
        let mut reqs: Vec<String> = def
            .dependencies
            .iter()
            .filter(|d| self.own_instance_of(d).is_none())
            .map(|d| d.app.clone())
            .collect();
        if def.category != Category::Infrastructure {
            for r in self.required_by_all() {
                if !reqs.contains(&r) {
                    reqs.push(r);
                }
            }
        }
        Some(reqs)
    }

    /// Whether `app` counts as deployed: deployed itself, part of a deployed bundle, or a bundle
    /// whose every part is deployed.
    pub fn is_satisfied(&self, app: &str, deployed: &BTreeSet<String>) -> bool {
        if deployed.contains(app) {
            return true;
        }
        if deployed
            .iter()
            .filter_map(|d| self.get(d))
            .any(|d| d.includes.iter().any(|i| i == app))
        {
            return true;
        }
        self.get(app).is_some_and(|d| {
            !d.includes.is_empty() && d.includes.iter().all(|i| deployed.contains(i))
        })
    }

    /// The apps to deploy, in order, for `targets` on a server where `deployed` run: every
    /// dependency before its dependents, each app once, deployed ones skipped. A cycle is an
    /// error naming its members; a missing definition an error naming it.
    pub fn install_order(
        &self,
        targets: &[&str],
        deployed: &BTreeSet<String>,
    ) -> Result<Vec<String>, AppsError> {
        for t in targets {
            self.require(t)?;
        }
        resolver::install_order(
            targets,
            |a| self.requirements_of(a),
            |a| self.is_satisfied(a, deployed),
        )
    }

    /// The deployed apps that need `app` (directly or through other deployed apps), sorted: if
    /// not empty, undeploying `app` must be refused.
    pub fn dependents_of(&self, app: &str, deployed: &BTreeSet<String>) -> Vec<String> {
        resolver::dependents_of(app, deployed, |d| {
            let mut reqs = self.requirements_of(d).unwrap_or_default();
            // Needing a bundle means needing each of its parts, which may be deployed alone.
            let parts: Vec<String> = reqs
                .iter()
                .filter_map(|r| self.get(r))
                .flat_map(|r| r.includes.clone())
                .collect();
            reqs.extend(parts);
            reqs
        })
    }

    /// The provider of `dep` when the dependent runs its own instance of it (a `redis` provider).
    fn own_instance_of(&self, dep: &Dependency) -> Option<&AppDefinition> {
        self.get(&dep.app).filter(|p| runs_per_dependent(p))
    }

    /// The secrets a render of `app` needs: its own (including those of the Redis it runs,
    /// `redis_password`), and the shared ones of the providers it uses. Load these from the
    /// vault and pass them to [`Catalog::render`].
    pub fn secrets_needed(&self, app: &str) -> Result<Vec<SecretRef>, AppsError> {
        let def = self.require(app)?;
        let mut refs: Vec<SecretRef> = def
            .secrets
            .iter()
            .map(|s| SecretRef::new(app, &s.name))
            .collect();
        for dep in &def.dependencies {
            let provider = self
                .get(&dep.app)
                .ok_or_else(|| AppsError::MissingDependency {
                    app: app.to_string(),
                    dependency: dep.app.clone(),
                })?;
            if runs_per_dependent(provider) {
                continue;
            }
            if let Some(secret) = provider
                .provides
                .as_ref()
                .and_then(|p| p.password_secret.as_ref())
            {
                refs.push(SecretRef::new(&dep.app, secret));
            }
        }
        Ok(refs)
    }

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
    fn template_context(
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
    fn render_document(
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

    /// Renders `provider`'s template into `dependent`'s stack (`doc`) as the dependent's own
    /// instance: the template's `stack` is the dependent's, and its `secrets.<s>` /
    /// `docker_secrets.<s>` are the dependent's `<provider>_<s>` secrets, so the instance's
    /// password is the dependent's alone and goes away with the dependent's data.
    fn add_own_instance(
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

    fn resolve_steps(
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
                } => DeployStep::ExecClaim(ExecClaimStep {
                    stack: app.to_string(),
                    service: service.clone(),
                    argv: argv.clone(),
                    stdin: json_object(app, input, ctx, own)?,
                    timeout_secs: *timeout_secs,
                }),
            });
        }
        Ok(out)
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

fn check_no_nul(field: &str, value: &str) -> Result<(), AppsError> {
    if value.contains('\0') {
        return Err(AppsError::invalid_value(field, "must not contain NUL"));
    }
    Ok(())
}

/// Checks `--set` values against the app's parameters and fills in defaults.
fn resolve_params(
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
fn override_image(image: &str, overrides: &render::ImageOverrides) -> Result<String, AppsError> {
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

/// What a template sees of its app's secrets: values (`secrets.<name>`) and Swarm secret
/// names (`docker_secrets.<name>`).
struct TemplateSecrets {
    values: Map<String, Json>,
    docker_names: Map<String, Json>,
}

/// Whether dependents run their own instance of `def` instead of sharing one (a `redis`
/// provider; see [`ProvidedKind::Redis`]).
fn runs_per_dependent(def: &AppDefinition) -> bool {
    def.provides
        .as_ref()
        .is_some_and(|p| p.kind == ProvidedKind::Redis)
}

/// The dependent's own copy of `provider`'s secret `secret`: `redis_password`.
pub(crate) fn own_instance_secret(provider: &str, secret: &str) -> String {
    format!("{}_{secret}", provider.replace('-', "_"))
}

/// Declares, in every app that depends on a `redis` provider, its own copy of each of the
/// provider's secrets (`<provider>_<secret>`, same length and alphabet). As the app's own
/// secrets they are generated, stored (`app.<app>.redis_password`), delivered as Docker
/// secrets and deleted with `--delete-data` like any other, with no special case in callers.
fn declare_own_instance_secrets(
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

fn parse_definition(yaml: &str, origin: &str) -> Result<AppDefinition, AppsError> {
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

fn builtin_definitions() -> Result<Vec<Loaded>, AppsError> {
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

fn read_user_dir(dir: &Path) -> Result<Vec<Loaded>, AppsError> {
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
