//! The app definition format: one YAML document per app, deserialized strictly
//! (`deny_unknown_fields`) so a typo is an error rather than a silently ignored key.
//! Enums with data are written as one-key maps (`template: {file: x}`, `- exec: {...}`), as
//! the JSON Schema describes them, not as YAML tags.
//!
//! The JSON Schema checked in at `schema/app-definition.schema.json` is generated from these
//! types (see [`definition_json_schema`]); a test keeps the two in sync.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One app of the catalog, as written in its YAML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppDefinition {
    /// Unique name, also the Swarm stack name: `[a-z][a-z0-9-]{0,31}`.
    pub name: String,
    /// Display name (`Uptime Kuma`), searched like the name; the name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Version of the app this definition deploys (informational; images carry the real pins).
    pub version: String,
    pub category: Category,
    pub description: String,
    /// Apps that must run before this one, each with the configuration this app needs from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    /// First label of the app's public name: `<prefix>.<subdomain>.<zone>` or `<prefix>.<zone>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_prefix: Option<String>,
    /// More public names, each reachable in the template as `domains.<key>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_dns: Vec<AdditionalDns>,
    #[serde(default)]
    pub requirements: Requirements,
    /// Images by key (used in the template as `images.<key>`), each pinned to an exact tag or
    /// digest; `:latest` and untagged references are rejected when the catalog loads.
    pub images: BTreeMap<String, String>,
    /// Plain, non-secret environment values, available to the template as `env`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// Secrets generated once (by the caller, stored in its vault) and reused on every redeploy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretSpec>,
    /// Keys a user may set (`--set key=value`), available to the template as `params.<key>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, Parameter>,
    /// Settings (from `state.json`: `email`, `name`, ...) the app cannot render without.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_settings: Vec<String>,
    /// The tera template of the stack file.
    #[serde(with = "serde_yaml::with::singleton_map")]
    #[schemars(with = "TemplateSource")]
    pub template: TemplateSource,
    #[serde(default)]
    pub health_check: HealthCheck,
    /// Steps run after the dependencies are healthy and before this stack is deployed
    /// (creating this app's database).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "serde_yaml::with::singleton_map_recursive"
    )]
    #[schemars(with = "Vec<StepSpec>")]
    pub pre_deploy: Vec<StepSpec>,
    /// Steps run after this stack is deployed (wait healthy, run a command, initialise an admin).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "serde_yaml::with::singleton_map_recursive"
    )]
    #[schemars(with = "Vec<StepSpec>")]
    pub post_deploy: Vec<StepSpec>,
    /// How a fresh instance gets its first admin, so that no visitor can claim it: the
    /// catalog refuses a definition whose claim steps contradict it, and a test requires it of
    /// every built-in app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_run: Option<FirstRun>,
    /// Ports published on the server. Databases publish none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ExposedPort>,
    /// Every non-infrastructure app needs this one (the reverse proxy bundle).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required_by_all: bool,
    /// Other catalog apps this bundle deploys in its one stack (`infrastructure` includes
    /// `traefik` and `portainer`); a deployed bundle satisfies a dependency on any of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub includes: Vec<String>,
    /// What dependents get from this app (host, port, credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provides: Option<Provides>,
    /// The name of the ACME certificate resolver this reverse proxy declares; every app's
    /// Traefik router labels must use it (`tls_resolver` in templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_resolver: Option<String>,
}

/// What an app is for: `app list --category` filters on it, the README table groups by it.
/// Declaration order is the table's order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Infrastructure,
    Database,
    Ai,
    Analytics,
    Automation,
    Business,
    Content,
    Development,
    Messaging,
    Monitoring,
    Productivity,
    Security,
    Storage,
    /// Anything that fits none of the above.
    Application,
}

impl Category {
    pub const ALL: [Category; 14] = [
        Category::Infrastructure,
        Category::Database,
        Category::Ai,
        Category::Analytics,
        Category::Automation,
        Category::Business,
        Category::Content,
        Category::Development,
        Category::Messaging,
        Category::Monitoring,
        Category::Productivity,
        Category::Security,
        Category::Storage,
        Category::Application,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Infrastructure => "infrastructure",
            Category::Database => "database",
            Category::Ai => "ai",
            Category::Analytics => "analytics",
            Category::Automation => "automation",
            Category::Business => "business",
            Category::Content => "content",
            Category::Development => "development",
            Category::Messaging => "messaging",
            Category::Monitoring => "monitoring",
            Category::Productivity => "productivity",
            Category::Security => "security",
            Category::Storage => "storage",
            Category::Application => "application",
        }
    }

    /// A category by name (case-insensitive); the error names the allowed ones.
    pub fn parse(text: &str) -> Result<Category, crate::AppsError> {
        let wanted = text.trim().to_lowercase();
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == wanted)
            .ok_or_else(|| {
                let allowed: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
                crate::AppsError::invalid_value(
                    "category",
                    format!(
                        "{text:?} is not a category; expected one of: {}",
                        allowed.join(", ")
                    ),
                )
            })
    }
}

/// A dependency and the configuration this app needs from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    /// The app depended on.
    pub app: String,
    /// For a `postgres`, `mariadb`, `rabbitmq`, `mongodb`, `minio` or `clickhouse` provider: this
    /// app's own database (vhost, bucket) and least-privilege user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseConfig>,
    /// For a `redis` provider: the logical database index (0-15) in this app's own instance
    /// (`deps.<app>.db_index`, 0 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_db: Option<u8>,
}

/// A database owned by a dedicated user, created in the provider by a `create_database` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Database name: `[a-z_][a-z0-9_]{0,62}`.
    pub name: String,
    /// Role name: `[a-z_][a-z0-9_]{0,62}`; it owns the database and nothing else.
    pub user: String,
    /// Which of THIS app's `secrets` is the role's password.
    pub password_secret: String,
    /// Extensions the superuser creates in the database (the user may not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdditionalDns {
    /// Template key: `domains.<key>`.
    pub key: String,
    /// First label(s) of the name, like `dns_prefix`.
    pub prefix: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    #[serde(default)]
    pub min_ram_mb: u32,
    #[serde(default)]
    pub min_cpu_cores: u32,
}

/// A secret the caller generates once and keeps (core stores it in the vault).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// `[a-z][a-z0-9_]{0,63}`.
    pub name: String,
    /// Number of characters, 16 to 256.
    #[serde(default = "default_secret_length")]
    pub length: u16,
    #[serde(default)]
    pub alphabet: Alphabet,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

fn default_secret_length() -> u16 {
    32
}

/// Alphabets are all URL-, shell- and YAML-safe so a secret can sit in a connection URI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Alphabet {
    /// `[A-Za-z0-9]`, with at least one upper-case letter, one lower-case letter and one digit
    /// (apps such as n8n enforce that password policy).
    #[default]
    Alphanumeric,
    /// `[0-9a-f]`.
    Hex,
    /// `[A-Za-z0-9]` and `-!@%*`, with at least one of each class (apps such as Chatwoot
    /// want a special character in a password; Flowise accepts only `@$!%*?&-`). `@` and `%`
    /// need quoting in a URL's userinfo, so never put such a secret in a URL.
    Symbols,
}

/// A user-settable key (`--set key=value`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The value used when the user sets none; a parameter without default must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default)]
    pub kind: ParameterKind,
    /// If present, the only values accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParameterKind {
    /// Any text (escaped for YAML when rendered).
    #[default]
    String,
    /// A non-negative integer.
    Integer,
    /// `true` or `false`.
    Boolean,
}

/// Where the stack template comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TemplateSource {
    /// A file name in the same directory as the definition (no path separators).
    File(String),
    /// The template text itself.
    Inline(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// How long the caller waits for every service to be healthy.
    #[serde(default = "default_health_timeout")]
    pub timeout_secs: u64,
    /// A path answered over HTTPS on the app's domain once it is up (checked by the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_path: Option<String>,
}

fn default_health_timeout() -> u64 {
    300
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            timeout_secs: default_health_timeout(),
            http_path: None,
        }
    }
}

/// A deploy step as written in a definition; resolved into a [`crate::DeployStep`] at render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StepSpec {
    /// Create this app's database and user (from the dependency's `database` config) inside the
    /// provider's service; the caller runs [`crate::create_database_command`].
    CreateDatabase {
        /// The dependency (a `postgres` provider) holding the database.
        dependency: String,
    },
    /// Wait until every service of this stack runs its desired replicas, healthchecks passing.
    WaitHealthy {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_secs: Option<u64>,
    },
    /// Run a command (argv, no shell) in a running task of one of this stack's services.
    Exec {
        /// Service name inside the stack.
        service: String,
        argv: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_secs: Option<u64>,
    },
    /// Claim the app's first-run page (its first admin) through its HTTP API, with a JSON
    /// request sent from inside `service`'s container to `port` on loopback, while the stack's
    /// public routes are still closed (see `first_run`).
    InitAdminHttp {
        /// The stack's service that serves the setup page.
        service: String,
        /// The port that service listens on inside its container.
        port: u16,
        /// Path of the setup endpoint, e.g. `/rest/owner/setup`.
        path: String,
        #[serde(default)]
        method: HttpMethod,
        /// Which domain: `None` for the main one, or an `additional_dns` key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        domain: Option<String>,
        /// JSON body fields.
        body: BTreeMap<String, BodyValue>,
        /// Statuses meaning success (default: any 2xx).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        expect_status: Vec<u16>,
    },
    /// Claim the app's first-run page (its first admin) with a command run inside `service`'s
    /// container, `input` as a JSON object on its stdin (it holds the admin password; argv
    /// never does), while the stack's public routes are still closed (see `first_run`). Exit
    /// status 0 means claimed; anything else fails the deploy with the routes still closed.
    InitAdminExec {
        /// The stack's service to run the command in.
        service: String,
        /// The command (argv, no shell).
        argv: Vec<String>,
        /// Fields of the JSON object written to the command's stdin.
        input: BTreeMap<String, BodyValue>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_secs: Option<u64>,
        /// What to do when the command fails because the admin account exists already.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_exists: Option<ClaimOnExists>,
    },
}

/// A claim command's way past its own earlier, partial run: the run made the admin account
/// and then failed, so the command now fails saying the account exists. When its output holds
/// `output_contains` and the state records no claim of this app's data, `argv` runs in the
/// same container with the same input on stdin (never a secret in argv) to bring that account
/// to the vault's password. The claim runs before any public route exists, so an account of
/// that name was made by livchat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimOnExists {
    /// Text in the failed command's stdout or stderr that means "the account exists".
    pub output_contains: String,
    /// The command (argv, no shell) that gives the existing account the vault's password.
    pub argv: Vec<String>,
}

/// How a fresh instance of the app gets its first admin (see `first_run` in the README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirstRun {
    pub admin: FirstRunAdmin,
    /// The app's secret holding the admin's password or token (vault `app.<app>.<secret>`);
    /// required for `claimed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// For people: the admin's login, or why there is nothing to claim, or (for
    /// `open_setup_page`) what the user must do at once. Required except for `claimed`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FirstRunAdmin {
    /// The image creates the admin at its first start from a generated secret (an environment
    /// variable, a `*_FILE` Docker secret or a command-line flag).
    Environment,
    /// A `post_deploy` step (`init_admin_http` or `init_admin_exec`) claims the setup page or
    /// replaces a default login while the stack's public routes are still closed.
    Claimed,
    /// Nothing to claim: no user accounts (a database, an API behind a generated key, an app
    /// reachable only on the overlay network).
    NoAccounts,
    /// The app's setup page is open to whoever reaches it first and livchat cannot claim it;
    /// the deploy plan and job say so, with `note` telling the user what to do at once.
    OpenSetupPage,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Post,
    Put,
}

/// A JSON body field: a literal, a setting, or one of this app's secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BodyValue {
    Value(String),
    Setting {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default: Option<String>,
    },
    Secret(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExposedPort {
    pub port: u16,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

/// What an app offers its dependents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Provides {
    pub kind: ProvidedKind,
    /// The service (inside this app's stack) dependents connect to.
    pub service: String,
    pub port: u16,
    /// The secret dependents authenticate with (Redis's `requirepass`). For a `redis`
    /// provider each dependent has its own copy of it (see [`ProvidedKind::Redis`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProvidedKind {
    /// Dependents get their own database and user (`database` in the dependency).
    Postgres,
    /// Not deployed for its dependents: each dependent runs its own instance of this app inside
    /// its own stack (the provider's template rendered into the dependent's stack file: service
    /// `<service>` reached as `<dependent>_<service>`, its own volumes), with its own copy of
    /// each of the provider's secrets, declared as the dependent's secret
    /// `<provider>_<secret>` (`redis_password`). So no app can read another app's keys: a
    /// shared Redis cannot isolate apps that use no key prefix (Chatwoot, Sidekiq), and ACL key
    /// patterns need one. `redis_db` picks a database index in that instance.
    Redis,
    /// MariaDB or MySQL: dependents get their own database and a user with grants on it alone
    /// (`database` in the dependency).
    Mariadb,
    /// RabbitMQ: dependents get their own vhost (`database.name`) and a user with permissions
    /// on it alone.
    Rabbitmq,
    /// MongoDB: dependents get a user with `readWrite` on their own database alone.
    Mongodb,
    /// MinIO: dependents get their own bucket (`database.name`) and a user (access key
    /// `database.user`, secret key `database.password_secret`) whose policy covers it alone.
    Minio,
    /// ClickHouse: dependents get their own database and a user with grants on it alone.
    Clickhouse,
}

impl ProvidedKind {
    /// Whether each dependent gets its own credentials in this provider (a `database` in the
    /// dependency and a `create_database` step), made by [`crate::create_database_command`].
    pub fn per_app_credentials(self) -> bool {
        !matches!(self, ProvidedKind::Redis)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProvidedKind::Postgres => "postgres",
            ProvidedKind::Redis => "redis",
            ProvidedKind::Mariadb => "mariadb",
            ProvidedKind::Rabbitmq => "rabbitmq",
            ProvidedKind::Mongodb => "mongodb",
            ProvidedKind::Minio => "minio",
            ProvidedKind::Clickhouse => "clickhouse",
        }
    }
}

impl AppDefinition {
    /// Parses one YAML definition (strict: unknown keys are errors). Validation against the
    /// rest of the catalog happens when the catalog is built.
    pub fn from_yaml(text: &str) -> Result<AppDefinition, serde_yaml::Error> {
        serde_yaml::from_str(text)
    }

    /// The public names this app needs DNS records for, main name first.
    pub fn dns_names(&self, dns: &crate::DnsConfig) -> Vec<String> {
        let mut names = Vec::new();
        if let Some(prefix) = &self.dns_prefix {
            names.push(dns.fqdn(prefix));
        }
        names.extend(self.additional_dns.iter().map(|d| dns.fqdn(&d.prefix)));
        names
    }

    pub fn secret(&self, name: &str) -> Option<&SecretSpec> {
        self.secrets.iter().find(|s| s.name == name)
    }

    pub fn dependency(&self, app: &str) -> Option<&Dependency> {
        self.dependencies.iter().find(|d| d.app == app)
    }
}

/// The JSON Schema of the definition format, generated from the types above.
pub fn definition_json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(AppDefinition);
    serde_json::to_value(schema).expect("a schemars schema serializes to JSON")
}
