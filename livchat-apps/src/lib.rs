//! The app catalog: YAML definitions, dependency resolution and stack rendering.
//!
//! Owns: the definition format (and its generated JSON Schema), the built-in definitions
//! embedded in the binary plus the user's from `LIVCHAT_APPS_DIR`, the resolver (install order,
//! reverse dependencies), and rendering a definition into a Swarm stack file with tera,
//! validated against the schema `docker stack deploy` uses.
//!
//! Must not touch: the network, disk writes, SSH, clouds, the vault, or any other internal
//! crate. It is pure: given definitions and a context, it returns text. (It reads the user's
//! definition directories when asked to load them, and nothing else.)
//!
//! ## How core uses it
//!
//! ```text
//! let catalog = Catalog::from_env()?;                       // built-ins + LIVCHAT_APPS_DIR
//! let order = catalog.install_order(&["n8n"], &deployed)?;  // ["infrastructure", "postgres", "n8n"] (n8n runs its own Redis)
//! for app in order {
//!     // secrets: generate only the missing ones, store them, then load what the render needs
//!     let new = secrets::generate_missing(catalog.require(&app)?, &existing_of_app);
//!     let needed = catalog.secrets_needed(&app)?;           // own (its Redis's too) + providers' shared ones
//!     let stack = catalog.render(&app, &ctx, &params, &secrets_by_app)?;
//!     // create stack.docker_secrets (stdin), run stack.pre_deploy, deploy
//!     // stack.compose() (never log it: log stack.redacted()), run stack.post_deploy
//! }
//! catalog.dependents_of("postgres", &deployed);             // refuse undeploy if not empty
//! ```
//!
//! There is no trait to mock here: the catalog is pure data, so core tests use the real
//! [`Catalog::builtin`] or [`Catalog::from_sources`].

mod catalog;
pub mod credentials;
pub mod definition;
mod error;
pub mod escape;
pub mod first_run;
/// The workspace's one set of name rules, compiled here by path (a leaf depends on no other
/// internal crate): see its module docs.
#[allow(
    dead_code,
    reason = "each leaf uses only the rules of the names it checks"
)]
#[path = "../../livchat-store/src/names.rs"]
mod name_rules;
pub mod names;
mod placement;
pub mod postgres;
pub mod probe;
pub mod query;
pub mod render;
pub mod resolver;
pub mod secrets;
mod template_safety;
mod validate;

pub use catalog::{APPS_DIR_ENV, Catalog, CatalogEntry, DefinitionSource};
pub use credentials::{
    CreateDatabase, ServiceCommand, create_database_command, drop_database_command,
};
pub use definition::{AppDefinition, Category, definition_json_schema};
pub use error::AppsError;
pub use postgres::PsqlCommand;
pub use query::{AppQuery, catalog_markdown_table};
pub use render::{
    DEFAULT_NETWORK, DeployStep, DnsConfig, DockerSecret, EndpointMode, ExecClaimStep,
    HttpRequestStep, ImageOverrides, OwnInstance, PreviewRequest, PreviewStack, RenderContext,
    RenderOptions, RenderedStack, ServerInfo, parse_set, validate_stack_text,
};
pub use secrets::{AppSecrets, SecretRef, SecretsByApp};
