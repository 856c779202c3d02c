//! Hetzner's error answers (`{"error": {"code", "message"}}`) mapped to typed [`CloudError`]s,
//! so callers match on what went wrong (a bad token, a limit, a name taken) rather than on
//! vendor codes.

use reqwest::StatusCode;
use serde::Deserialize;

use crate::error::{CloudError, Service};
use crate::http::Reply;

/// Hetzner's error body: `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    error: ErrorInner,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorInner {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// A vendor error, parsed.
pub(super) struct ApiFailure {
    status: StatusCode,
    pub(super) code: String,
    message: String,
}

pub(super) fn parse_failure(reply: &Reply) -> ApiFailure {
    let body: ErrorBody = serde_json::from_slice(&reply.body).unwrap_or_default();
    ApiFailure {
        status: reply.status,
        code: body.error.code,
        message: if body.error.message.is_empty() {
            reply.excerpt()
        } else {
            body.error.message
        },
    }
}

/// Maps a non-success reply to a typed error. `name` is the name being created, for
/// `uniqueness_error`.
pub(super) fn api_error(operation: &str, reply: Reply, name: Option<&str>) -> CloudError {
    let f = parse_failure(&reply);
    let service = Service::Hetzner;
    match (f.status.as_u16(), f.code.as_str()) {
        (_, "unauthorized" | "token_readonly" | "forbidden") | (401, _) => {
            CloudError::InvalidToken {
                service,
                code: if f.code.is_empty() {
                    f.status.to_string()
                } else {
                    f.code
                },
                message: f.message,
            }
        }
        (_, "resource_limit_exceeded" | "limit_exceeded") => CloudError::LimitExceeded {
            service,
            code: f.code,
            message: f.message,
        },
        (_, "uniqueness_error") => CloudError::NameTaken {
            service,
            name: name.unwrap_or_default().to_owned(),
            message: f.message,
        },
        (_, "rate_limit_exceeded") => CloudError::RateLimited {
            service,
            operation: operation.to_owned(),
            attempts: 0,
            retry_after: None,
        },
        _ => CloudError::Api {
            service,
            operation: operation.to_owned(),
            status: f.status.as_u16(),
            code: f.code,
            message: f.message,
        },
    }
}
