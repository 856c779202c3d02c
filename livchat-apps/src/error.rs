//! One error type for the crate. Messages name the field or app at fault and what is allowed;
//! they never carry a secret value.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AppsError {
    #[error("unknown app `{name}`; the catalog has: {}", known.join(", "))]
    UnknownApp { name: String, known: Vec<String> },

    #[error("app `{app}` depends on `{dependency}`, which has no definition in the catalog")]
    MissingDependency { app: String, dependency: String },

    #[error("dependency cycle between apps: {}", members.join(" -> "))]
    Cycle { members: Vec<String> },

    #[error("definition `{origin}` is invalid: {field}: {message}")]
    InvalidDefinition {
        origin: String,
        field: String,
        message: String,
    },

    #[error("cannot parse definition `{origin}`: {message}")]
    Parse { origin: String, message: String },

    #[error("app `{name}` is defined twice by the user: {} and {}", first.display(), second.display())]
    DuplicateDefinition {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },

    #[error("cannot read `{}`: {message}", path.display())]
    Io { path: PathBuf, message: String },

    #[error("invalid {field}: {message}")]
    InvalidValue { field: String, message: String },

    #[error("app `{app}` has no settable key `{key}`; settable keys: {}", if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") })]
    UnknownParameter {
        app: String,
        key: String,
        allowed: Vec<String>,
    },

    #[error(
        "app `{app}` needs the setting `{setting}` (set it first, e.g. `livchat settings set {setting} ...`)"
    )]
    MissingSetting { app: String, setting: String },

    #[error("app `{app}` needs its secret `{secret}`, which was not provided")]
    MissingSecret { app: String, secret: String },

    #[error("template of app `{app}` failed to render: {message}")]
    Template { app: String, message: String },

    #[error("rendered stack of app `{app}` is not a valid stack file: {}", errors.join("; "))]
    InvalidStack { app: String, errors: Vec<String> },
}

impl AppsError {
    pub(crate) fn invalid_value(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppsError::InvalidValue {
            field: field.into(),
            message: message.into(),
        }
    }
}
