//! Rendering a definition into a Swarm stack file: the context types, the result type (which
//! keeps the compose text apart from its redacted form and its Docker secrets), the deploy steps
//! resolved for the caller, and the checks every rendered stack passes (YAML shape, endpoint
//! mode, the schema `docker stack deploy` validates against).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use secrecy::{ExposeSecret, SecretString};
use serde_yaml::{Mapping, Value};

use crate::AppsError;
use crate::definition::{HealthCheck, HttpMethod};
use crate::names;
use crate::postgres::CreateDatabase;
use crate::secrets::SecretRef;

/// The schema `docker stack deploy` validates stack files against (docker/cli @ 28f75608,
/// `cli/compose/schema/data/config_schema_v3.13.json`, Apache-2.0: see
/// `schema/LICENSE.docker-cli`). Embedded because shipped binaries carry no data files.
/// livchat-remote validates stacks against this same file (the one copy in the repository).
pub const STACK_SCHEMA_V3_13: &str =
    include_str!("../schema/docker-cli-stack-config_schema_v3.13.json");

/// The default overlay network every stack joins (created by server setup, external here).
pub const DEFAULT_NETWORK: &str = "livchat_network";

/// The server an app is rendered for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub name: String,
    pub address: String,
}

impl ServerInfo {
    /// A stand-in for previews that target no real server (a documentation address, RFC 5737).
    pub fn placeholder() -> Self {
        ServerInfo {
            name: "preview".into(),
            address: "203.0.113.10".into(),
        }
    }
}

/// The server's DNS configuration: names are `<prefix>.<subdomain>.<zone>` or `<prefix>.<zone>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    pub zone: String,
    pub subdomain: Option<String>,
}

impl DnsConfig {
    /// Validates zone and subdomain as lower-case DNS names (the error names the field).
    pub fn new(zone: &str, subdomain: Option<&str>) -> Result<Self, AppsError> {
        let dns = DnsConfig {
            zone: zone.to_string(),
            subdomain: subdomain.filter(|s| !s.is_empty()).map(str::to_string),
        };
        dns.validate()?;
        Ok(dns)
    }

    pub fn validate(&self) -> Result<(), AppsError> {
        names::validate_dns_name("zone", &self.zone)?;
        if let Some(sub) = &self.subdomain {
            names::validate_dns_name("subdomain", sub)?;
        }
        Ok(())
    }

    /// The full name for a prefix.
    pub fn fqdn(&self, prefix: &str) -> String {
        match &self.subdomain {
            Some(sub) => format!("{prefix}.{sub}.{}", self.zone),
            None => format!("{prefix}.{}", self.zone),
        }
    }
}

/// How services are reached inside the overlay network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointMode {
    /// Swarm's default: a virtual IP per service and the ingress routing mesh (needs IPVS).
    #[default]
    Vip,
    /// For kernels without IPVS: `deploy.endpoint_mode: dnsrr` on every service and published
    /// ports in `mode: host` (the routing mesh is not used).
    Dnsrr,
}

/// Changes to the images a definition pins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageOverrides {
    /// A pull-through mirror: `postgres:16.10` becomes `<mirror>/library/postgres:16.10`,
    /// `n8nio/n8n:1.2.3` becomes `<mirror>/n8nio/n8n:1.2.3`.
    pub registry_mirror: Option<String>,
    /// A different pin by repository (`n8nio/n8n` -> `n8nio/n8n:1.99.0`); applied before the
    /// mirror. Must itself be pinned (no `:latest`).
    pub pins: BTreeMap<String, String>,
}

/// Rendering options that are not about the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// The external overlay network (default `livchat_network`).
    pub network: String,
    pub endpoint_mode: EndpointMode,
    pub images: ImageOverrides,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            network: DEFAULT_NETWORK.to_string(),
            endpoint_mode: EndpointMode::Vip,
            images: ImageOverrides::default(),
        }
    }
}

/// Everything about the target a render needs besides the app's own inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderContext {
    pub server: ServerInfo,
    pub dns: DnsConfig,
    /// User settings from `state.json` (`email`, `name`, `surname`, `company_name`, ...).
    pub settings: BTreeMap<String, String>,
    pub options: RenderOptions,
}

/// A secret the stack references as an external Docker secret: the caller creates it (value
/// through stdin, e.g. `docker secret create NAME -`) before deploying the stack, and keeps it
/// when it already exists.
pub struct DockerSecret {
    /// The Swarm secret name (`livchat_<app>_<secret>`).
    pub name: String,
    pub secret: SecretRef,
    pub value: SecretString,
}

impl fmt::Debug for DockerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerSecret")
            .field("name", &self.name)
            .field("secret", &self.secret)
            .field("value", &"[REDACTED]")
            .finish()
    }
}

/// A step for the caller to run, with names and references resolved.
#[derive(Debug)]
pub enum DeployStep {
    /// Run [`crate::create_database_command`] for `spec` (its `kind` picks the commands) with
    /// the `password` secret, through `exec` in `service` of `stack` (the provider).
    CreateDatabase {
        stack: String,
        service: String,
        spec: CreateDatabase,
        password: SecretRef,
    },
    /// Wait until every service of `stack` is at its desired replicas, healthchecks passing.
    WaitHealthy { stack: String, timeout_secs: u64 },
    /// Run `argv` (no shell) in a running task of `service` in `stack`.
    Exec {
        stack: String,
        service: String,
        argv: Vec<String>,
        timeout_secs: Option<u64>,
    },
    /// A first-run claim: a JSON request (which holds a secret) sent from inside a service's
    /// container while the stack's public routes are closed.
    HttpRequest(HttpRequestStep),
    /// A first-run claim: a command run in a service's container with a JSON object (which
    /// holds a secret) on its stdin, while the stack's public routes are closed.
    ExecClaim(ExecClaimStep),
}

pub struct ExecClaimStep {
    pub stack: String,
    pub service: String,
    /// The command; never holds a secret.
    pub argv: Vec<String>,
    /// The JSON object for its stdin; it holds secrets (an admin password).
    pub stdin: SecretString,
    pub timeout_secs: Option<u64>,
    /// The command that takes over an admin account a partial earlier run made (see
    /// [`crate::definition::ClaimOnExists`]); it gets the same stdin.
    pub on_exists: Option<crate::definition::ClaimOnExists>,
}

impl fmt::Debug for ExecClaimStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ExecClaimStep");
        d.field("service", &format!("{}/{}", self.stack, self.service))
            .field("argv", &self.argv)
            .field("stdin", &"[REDACTED]");
        if let Some(e) = &self.on_exists {
            d.field("on_exists", e);
        }
        d.finish()
    }
}

pub struct HttpRequestStep {
    pub method: HttpMethod,
    /// The public URL of the endpoint, for logs (the request itself goes over loopback).
    pub url: String,
    pub stack: String,
    /// The service whose container sends the request to itself.
    pub service: String,
    pub port: u16,
    pub path: String,
    /// The JSON body; it holds secrets (an admin password).
    pub body: SecretString,
    /// Statuses meaning success; empty means any 2xx.
    pub expect_status: Vec<u16>,
}

impl fmt::Debug for HttpRequestStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequestStep")
            .field("method", &self.method)
            .field("url", &self.url)
            .field(
                "service",
                &format!("{}/{}:{}", self.stack, self.service, self.port),
            )
            .field("body", &"[REDACTED]")
            .field("expect_status", &self.expect_status)
            .finish()
    }
}

/// A rendered stack. The compose text may contain secret values (for images that read secrets
/// only from environment variables), so it is a [`SecretString`]: never log it; show
/// [`RenderedStack::redacted`] instead.
pub struct RenderedStack {
    pub app: String,
    /// The Swarm stack name (the app name).
    pub stack: String,
    pub(crate) compose: SecretString,
    pub(crate) redacted: String,
    pub(crate) contains_secret_values: bool,
    /// External Docker secrets the stack references, to create before deploying.
    pub docker_secrets: Vec<DockerSecret>,
    /// Steps before the deploy (dependencies are up): create this app's database.
    pub pre_deploy: Vec<DeployStep>,
    /// Steps after the deploy: wait healthy, commands, admin initialisation.
    pub post_deploy: Vec<DeployStep>,
    /// DNS names to point at the server, main name first.
    pub dns_names: Vec<String>,
    pub health_check: HealthCheck,
    /// Providers this app runs its own instance of, inside this stack (its Redis).
    pub own_instances: Vec<OwnInstance>,
}

/// A provider's instance that runs inside an app's stack for that app alone (its own Redis:
/// see [`crate::definition::ProvidedKind::Redis`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnInstance {
    /// The catalog app it is an instance of (`redis`).
    pub provider: String,
    /// Its services in the app's stack (`redis`), reached as `<stack>_<service>`.
    pub services: Vec<String>,
    /// Its volumes in the app's stack (Swarm names them `<stack>_<volume>`).
    pub volumes: Vec<String>,
    /// The app's own secrets it uses (`redis_password`).
    pub secrets: Vec<SecretRef>,
}

impl RenderedStack {
    /// The stack file to deploy. Secret: do not log or print it.
    pub fn compose(&self) -> &SecretString {
        &self.compose
    }

    /// The stack file with every secret value replaced by `REDACTED(<app>.<secret>)`, for plans
    /// and logs.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// Whether the compose text holds any secret value (false when every secret travels as a
    /// Docker secret).
    pub fn contains_secret_values(&self) -> bool {
        self.contains_secret_values
    }
}

impl fmt::Debug for RenderedStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderedStack")
            .field("app", &self.app)
            .field("stack", &self.stack)
            .field("compose", &"[REDACTED: see redacted()]")
            .field("docker_secrets", &self.docker_secrets)
            .field("pre_deploy", &self.pre_deploy)
            .field("post_deploy", &self.post_deploy)
            .field("dns_names", &self.dns_names)
            .field("own_instances", &self.own_instances)
            .finish()
    }
}

/// One stack of an `app render` preview (`--output json`: a list of these).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PreviewStack {
    pub app: String,
    pub stack: String,
    /// The full stack text, rendered with placeholder secrets that were generated for this
    /// preview only and stored nowhere.
    pub compose: String,
}

/// The inputs of an `app render` preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewRequest {
    pub app: String,
    pub context: RenderContext,
    /// `--set key=value` pairs for `app` (validated against its `parameters`).
    pub params: BTreeMap<String, String>,
    /// Apps already deployed (skipped); usually empty for a preview.
    pub deployed: std::collections::BTreeSet<String>,
}

/// Splits one `--set key=value` argument (the key is validated later, against the app).
pub fn parse_set(arg: &str) -> Result<(String, String), AppsError> {
    match arg.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(AppsError::invalid_value(
            "--set",
            format!("{arg:?} must look like key=value"),
        )),
    }
}

/// Secret values and how to name them in the redacted output.
pub(crate) struct Redactions(pub Vec<(String, SecretRef)>);

impl Redactions {
    pub(crate) fn apply(&self, text: &str) -> (String, bool) {
        let mut out = text.to_string();
        let mut found = false;
        // Longest first so a secret that contains another is replaced whole.
        let mut items: Vec<&(String, SecretRef)> = self.0.iter().collect();
        items.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
        for (value, r) in items {
            if value.is_empty() {
                continue;
            }
            for form in [value.clone(), value.replace('$', "$$")] {
                if out.contains(&form) {
                    found = true;
                    out = out.replace(&form, &format!("REDACTED({}.{})", r.app, r.name));
                }
            }
        }
        (out, found)
    }
}

/// Parses rendered text into a stack document and checks its top-level shape.
pub(crate) fn parse_stack(app: &str, text: &str) -> Result<Mapping, AppsError> {
    let value: Value = serde_yaml::from_str(text).map_err(|e| AppsError::InvalidStack {
        app: app.to_string(),
        errors: vec![format!("not one YAML document: {e}")],
    })?;
    match value {
        Value::Mapping(m) if m.get("services").is_some_and(Value::is_mapping) => Ok(m),
        _ => Err(AppsError::InvalidStack {
            app: app.to_string(),
            errors: vec!["the document must be a mapping with a `services` mapping".into()],
        }),
    }
}

/// Applies the endpoint mode to every service.
pub(crate) fn apply_endpoint_mode(
    app: &str,
    doc: &mut Mapping,
    mode: EndpointMode,
) -> Result<(), AppsError> {
    if mode == EndpointMode::Vip {
        return Ok(());
    }
    let Some(Value::Mapping(services)) = doc.get_mut("services") else {
        return Ok(());
    };
    for (name, service) in services.iter_mut() {
        let Value::Mapping(service) = service else {
            continue;
        };
        let deploy = service
            .entry(Value::from("deploy"))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if let Value::Mapping(deploy) = deploy {
            deploy.insert(Value::from("endpoint_mode"), Value::from("dnsrr"));
        }
        if let Some(Value::Sequence(ports)) = service.get_mut("ports") {
            for port in ports.iter_mut() {
                match port {
                    Value::Mapping(p) => {
                        p.insert(Value::from("mode"), Value::from("host"));
                    }
                    _ => {
                        return Err(AppsError::InvalidStack {
                            app: app.to_string(),
                            errors: vec![format!(
                                "service {}: write ports in the long syntax (target/published) so the dnsrr endpoint mode can publish them in host mode",
                                name.as_str().unwrap_or("?")
                            )],
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

fn stack_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: serde_json::Value =
            serde_json::from_str(STACK_SCHEMA_V3_13).expect("the embedded stack schema is JSON");
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .build(&schema)
            .expect("the embedded stack schema compiles")
    })
}

/// Validates a stack document against the v3.13 schema, returning every error with its path.
pub fn validate_stack(app: &str, doc: &Mapping) -> Result<(), AppsError> {
    let json = serde_json::to_value(doc).map_err(|e| AppsError::InvalidStack {
        app: app.to_string(),
        errors: vec![format!("not representable as JSON: {e}")],
    })?;
    let errors: Vec<String> = stack_validator()
        .iter_errors(&json)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppsError::InvalidStack {
            app: app.to_string(),
            errors,
        })
    }
}

/// Validates stack text (YAML) against the v3.13 schema.
pub fn validate_stack_text(app: &str, text: &str) -> Result<(), AppsError> {
    validate_stack(app, &parse_stack(app, text)?)
}

pub(crate) fn expose(s: &SecretString) -> String {
    s.expose_secret().to_string()
}
