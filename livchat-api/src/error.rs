//! The one error shape of the service, `{"error": {"code", "message", "field"?, "retry_after"?}}`,
//! and the mapping of core errors and axum's rejections onto it. Internal errors answer 500
//! with the request id only: the details go to the service log, never to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use livchat_core::CoreError;
use livchat_core::error::ErrorKind;
use schemars::JsonSchema;
use serde::Serialize;

/// The body of every error answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, for people (`message`) and programs (`code`, `field`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// Stable: `bad_input`, `unauthorized`, `not_found`, `conflict`, `missing_credential`,
    /// `rate_limited`, `payload_too_large`, `method_not_allowed`, `timeout`, `upstream`,
    /// `internal`.
    pub code: String,
    pub message: String,
    /// The input field a `bad_input` error is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait before trying again (also sent as `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        Self {
            field: (!field.is_empty()).then_some(field),
            ..Self::new(StatusCode::BAD_REQUEST, "bad_input", message)
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; try again in {retry_after} s"),
            )
        }
    }

    /// A failure whose details stay in the log: the client sees where to look, not what.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the service log has the details under this request's X-Request-Id",
        )
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let (status, code) = match e.kind() {
            ErrorKind::BadInput => (StatusCode::BAD_REQUEST, "bad_input"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorKind::Conflict | ErrorKind::Cancelled => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::MissingCredential => (StatusCode::PRECONDITION_FAILED, "missing_credential"),
            ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            ErrorKind::Upstream => (StatusCode::BAD_GATEWAY, "upstream"),
            ErrorKind::Internal => return Self::internal(&e),
        };
        Self {
            status,
            code,
            message: e.to_string(),
            field: e.field().map(str::to_string),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_client_error() {
            tracing::info!(code = self.code, field = ?self.field, "refused: {}", self.message);
        }
        let retry_after = self.retry_after;
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                field: self.field,
                retry_after,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if unauthorized {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"livchat\""),
            );
        }
        response
    }
}

/// Turns a deserialization failure of a request into a bad-input error naming the field.
/// serde names the missing or unknown field inside its message; type errors carry the path.
pub fn from_serde(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.inner().to_string();
    // serde_json appends " at line N column M": meaningless for a merged request.
    let message = inner
        .split(" at line ")
        .next()
        .unwrap_or(&inner)
        .to_string();
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|rest| rest.split('`').next())
        .map(str::to_string);
    let field = match (named, path.as_str()) {
        (Some(f), "." | "") => f,
        (Some(f), p) if p == f || p.ends_with(&format!(".{f}")) => p.to_string(),
        (Some(f), p) => format!("{p}.{f}"),
        (None, p) if p != "." => p.to_string(),
        (None, _) => String::new(),
    };
    ApiError::bad_input(field, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Req {
        name: String,
        port: Option<u16>,
    }

    fn parse(v: serde_json::Value) -> ApiError {
        serde_path_to_error::deserialize::<_, Req>(v)
            .map_err(from_serde)
            .unwrap_err()
    }

    #[test]
    fn serde_failures_name_the_field() {
        let e = parse(serde_json::json!({}));
        assert_eq!(e.field.as_deref(), Some("name"));
        assert_eq!(e.message, "missing field `name`");
        let e = parse(serde_json::json!({"name": "a", "colour": 1}));
        assert_eq!(e.field.as_deref(), Some("colour"));
        let e = parse(serde_json::json!({"name": "a", "port": "x"}));
        assert_eq!(e.field.as_deref(), Some("port"));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
