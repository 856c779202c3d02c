//! The one HTTP path of both clients: bearer auth from a `SecretString`, timeouts, and the
//! retry loop of [`RetryPolicy`].
//!
//! Why our own transport instead of the SDKs' senders: hcloud 0.26's
//! `Error::ResponseError(ResponseContent)` keeps the status and body but drops the headers,
//! and cloudflare 0.14's `ApiFailure::Error(StatusCode, ApiErrors)` does the same, so neither
//! lets us see `Retry-After` or Hetzner's `RateLimit-*`. The SDKs still define the wire
//! format: requests and responses are the hcloud models, and Cloudflare requests are built
//! from the cloudflare crate's endpoint specs (see `hetzner.rs` and `cloudflare.rs`).

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::error::{CloudError, Result, Service};
use crate::retry::{RetryPolicy, is_retryable_status, server_requested_delay};

/// An answer that is final for the retry loop: any 2xx, and every status not worth retrying.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
    /// The body was longer than [`MAX_BODY`] and `body` holds only its start.
    pub truncated: bool,
}

/// The most of one response body this client reads: the largest real answer (a page of 50
/// servers) is far below it, so anything longer is a broken or hostile endpoint, and reading
/// on would only grow memory.
pub(crate) const MAX_BODY: usize = 16 << 20;

impl Reply {
    /// A short printable excerpt of the body for error messages.
    pub(crate) fn excerpt(&self) -> String {
        let s = String::from_utf8_lossy(&self.body);
        let mut out: String = s.chars().take(300).collect();
        if s.chars().count() > 300 {
            out.push('…');
        }
        if self.truncated {
            out.push_str(&format!(" [body cut: longer than {} MiB]", MAX_BODY >> 20));
        }
        out
    }
}

/// Reads a body up to `limit` bytes; the flag says whether more was cut off (then the rest is
/// not read: the connection is dropped with the response).
async fn read_body(mut resp: reqwest::Response, limit: usize) -> reqwest::Result<(Vec<u8>, bool)> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Ok((Vec::new(), true));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// Why one attempt did not give a final answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No answer: connect error, timeout, connection dropped mid-response.
    Transport(String),
    /// A retryable status (429, 5xx but 501), with the wait the server asked for.
    Status {
        status: StatusCode,
        requested: Option<Duration>,
        reply: Reply,
    },
}

/// Counts attempts of one logical request and decides the wait before the next one.
pub(crate) struct Retrier<'a> {
    policy: &'a RetryPolicy,
    service: Service,
    operation: &'a str,
    attempts: u32,
}

impl<'a> Retrier<'a> {
    pub(crate) fn new(policy: &'a RetryPolicy, service: Service, operation: &'a str) -> Self {
        Retrier {
            policy,
            service,
            operation,
            attempts: 0,
        }
    }

    /// Records one attempt.
    pub(crate) fn attempted(&mut self) {
        self.attempts += 1;
    }

    /// After a failed attempt: the delay before the next one, or the final error when the
    /// attempts are used up or the server asks for a longer wait than the policy allows.
    pub(crate) fn after(
        &self,
        failure: Failure,
        decode_error: impl Fn(Reply) -> CloudError,
    ) -> Result<Duration> {
        let last = self.attempts >= self.policy.max_attempts.max(1);
        match failure {
            Failure::Transport(message) => {
                if last {
                    return Err(CloudError::Unreachable {
                        service: self.service,
                        operation: self.operation.to_owned(),
                        attempts: self.attempts,
                        message,
                    });
                }
                tracing::warn!(service = %self.service, operation = self.operation, attempt = self.attempts, %message, "no answer; retrying");
                Ok(self.policy.backoff(self.attempts))
            }
            Failure::Status {
                status,
                requested,
                reply,
            } => {
                let too_long = requested.is_some_and(|d| d > self.policy.max_retry_after);
                if last || too_long {
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        return Err(CloudError::RateLimited {
                            service: self.service,
                            operation: self.operation.to_owned(),
                            attempts: self.attempts,
                            retry_after: requested,
                        });
                    }
                    return Err(decode_error(reply));
                }
                tracing::warn!(service = %self.service, operation = self.operation, attempt = self.attempts, status = status.as_u16(), ?requested, "retryable status; retrying");
                Ok(requested.unwrap_or_else(|| self.policy.backoff(self.attempts)))
            }
        }
    }
}

/// A JSON-over-HTTPS client of one vendor.
pub(crate) struct Transport {
    service: Service,
    client: reqwest::Client,
    base: String,
    auth: HeaderValue,
    pub(crate) policy: RetryPolicy,
    /// Hetzner: when the bucket was reported empty, the earliest time to send again.
    not_before: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("service", &self.service)
            .field("base", &self.base)
            .field("auth", &"<redacted>")
            .field("policy", &self.policy)
            .finish()
    }
}

impl Transport {
    pub(crate) fn new(
        service: Service,
        base: &str,
        token: &SecretString,
        policy: RetryPolicy,
    ) -> Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base)
            .map_err(|e| CloudError::Config(format!("{service} endpoint {base:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(CloudError::Config(format!(
                "{service} endpoint {base:?}: only http and https URLs are allowed"
            )));
        }
        if token.expose_secret().trim().is_empty() {
            return Err(CloudError::InvalidInput {
                field: "token",
                reason: format!("the {service} API token is empty"),
            });
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret().trim()))
            .map_err(|_| CloudError::InvalidInput {
            field: "token",
            reason: format!(
                "the {service} API token contains characters not allowed in an HTTP header"
            ),
        })?;
        // Keeps the token out of reqwest's and hyper's debug output.
        auth.set_sensitive(true);
        let client = reqwest::Client::builder()
            .timeout(policy.request_timeout)
            .connect_timeout(policy.connect_timeout)
            .user_agent(concat!("livchat-setup/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CloudError::Config(format!("HTTP client: {e}")))?;
        Ok(Transport {
            service,
            client,
            base,
            auth,
            policy,
            not_before: Mutex::new(None),
        })
    }

    /// The full URL of a path relative to the base (`/servers`).
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// One attempt, no retry.
    pub(crate) async fn attempt(
        &self,
        method: &Method,
        url: &str,
        query: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> std::result::Result<Reply, Failure> {
        self.wait_for_bucket().await;
        let mut req = self
            .client
            .request(method.clone(), url)
            .header(AUTHORIZATION, self.auth.clone());
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Err(Failure::Transport(describe(&e))),
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        self.note_bucket(&headers);
        let (body, truncated) = match read_body(resp, MAX_BODY).await {
            Ok(b) => b,
            // A connection dropped mid-body is as good as no answer.
            Err(e) => return Err(Failure::Transport(describe(&e))),
        };
        let reply = Reply {
            status,
            body,
            truncated,
        };
        if is_retryable_status(status) {
            let requested = server_requested_delay(status, &headers, SystemTime::now());
            return Err(Failure::Status {
                status,
                requested,
                reply,
            });
        }
        Ok(reply)
    }

    /// A request with the retry policy applied. Returns the final reply, whatever its status;
    /// `api_error` turns a retryable status into an error once retries are exhausted.
    pub(crate) async fn request(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&[u8]>,
        api_error: &(dyn Fn(&str, Reply) -> CloudError + Sync),
    ) -> Result<Reply> {
        let url = self.url(path);
        let mut retrier = Retrier::new(&self.policy, self.service, operation);
        loop {
            retrier.attempted();
            match self.attempt(&method, &url, query, body).await {
                Ok(reply) => return Ok(reply),
                Err(failure) => {
                    let delay = retrier.after(failure, |r| api_error(operation, r))?;
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Decodes a JSON success body.
    pub(crate) fn decode<T: DeserializeOwned>(&self, operation: &str, reply: &Reply) -> Result<T> {
        if reply.truncated {
            return Err(CloudError::Decode {
                service: self.service,
                operation: operation.to_owned(),
                message: format!(
                    "the response body is longer than {} MiB, the most this client reads",
                    MAX_BODY >> 20
                ),
            });
        }
        serde_json::from_slice(&reply.body).map_err(|e| CloudError::Decode {
            service: self.service,
            operation: operation.to_owned(),
            message: format!("{e} in {}", reply.excerpt()),
        })
    }

    async fn wait_for_bucket(&self) {
        let until = *self.not_before.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = until {
            let now = Instant::now();
            if until > now {
                tokio::time::sleep(until - now).await;
            }
        }
    }

    /// When Hetzner reports an empty bucket on a success, pace the next request instead of
    /// earning a 429.
    fn note_bucket(&self, headers: &HeaderMap) {
        let delay = crate::retry::rate_limit_refill_delay(headers, SystemTime::now())
            .map(|d| d.min(self.policy.max_delay));
        *self.not_before.lock().unwrap_or_else(|p| p.into_inner()) =
            delay.map(|d| Instant::now() + d);
    }
}

/// A transport error's chain as one line, without the URL's query (no secrets are in URLs,
/// but label selectors make them long).
fn describe(e: &reqwest::Error) -> String {
    let mut parts = vec![];
    if e.is_timeout() {
        parts.push("timed out".to_owned());
    } else if e.is_connect() {
        parts.push("could not connect".to_owned());
    }
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p == &text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
