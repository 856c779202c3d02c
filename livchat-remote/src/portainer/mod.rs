//! Portainer's HTTP API (CE 2.23, `fixtures/specs/portainer`): first-run admin initialisation,
//! authentication (JWT from `POST /auth`, or an API key in `X-API-Key`), endpoint and Swarm
//! discovery, and Swarm stacks from a string (create, list, inspect, update, delete, file).
//!
//! [`PortainerPlatform`] is a [`ContainerPlatform`] whose stacks are owned by Portainer (so they
//! are editable in its UI, not "external" stacks): stack create/update/delete go through the
//! API; everything Portainer's documented API does not cover (secrets, networks, task health,
//! `docker exec`, logs) goes to a runtime platform, in practice [`crate::SwarmOverSsh`] on the
//! same server.
//!
//! The Swarm id is read from Portainer's Docker proxy (`GET /endpoints/{id}/docker/swarm`, the
//! Docker Engine API's `SwarmInspect`; Portainer's documented way, though not in the swag spec)
//! and, failing that, from the endpoint's snapshot (`Snapshots[0].DockerSnapshotRaw.Info.Swarm
//! .Cluster.ID`, which the spec does describe).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// Errors of the Portainer API. Never carries a password, API key or JWT.
#[derive(Debug, thiserror::Error)]
pub enum PortainerError {
    /// 401/403, or 422 on login (Portainer's "Invalid Credentials").
    #[error("portainer refused the credentials: {message}")]
    Unauthorized { message: String },
    #[error("portainer has no {what}")]
    NotFound { what: String },
    /// 409: for example the admin user is already initialised, or a stack name is taken.
    #[error("portainer conflict: {message}")]
    Conflict { message: String },
    /// Any other error status, with Portainer's `message` (and `details`).
    #[error("portainer answered {status}: {message}")]
    Api { status: u16, message: String },
    #[error("could not reach portainer at {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("unexpected answer from portainer: {0}")]
    Decode(String),
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
}

/// How the client authenticates.
pub enum PortainerAuth {
    /// An access token created in Portainer's UI, sent as `X-API-Key`.
    ApiKey(SecretString),
    /// Username and password, exchanged for a JWT at `POST /auth` (again when it expires).
    Password {
        username: String,
        password: SecretString,
    },
}

impl std::fmt::Debug for PortainerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ApiKey(_) => f.write_str("ApiKey([REDACTED])"),
            Self::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &"[REDACTED]")
                .finish(),
        }
    }
}

/// `portainer.Endpoint` (the fields used here).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Endpoint {
    pub id: i64,
    pub name: String,
    /// 1 Docker, 2 agent on Docker, 3 Azure, 4 edge agent, 5/6/7 Kubernetes.
    #[serde(rename = "Type")]
    pub kind: i64,
    #[serde(rename = "URL", default)]
    pub url: String,
    /// 1 up, 2 down.
    #[serde(default)]
    pub status: i64,
    #[serde(default)]
    pub snapshots: Vec<serde_json::Value>,
}

impl Endpoint {
    /// The Swarm cluster id recorded in the latest snapshot, if the endpoint is a manager.
    pub fn snapshot_swarm_id(&self) -> Option<String> {
        self.snapshots.iter().find_map(|s| {
            s.pointer("/DockerSnapshotRaw/Info/Swarm/Cluster/ID")
                .and_then(|v| v.as_str())
                .filter(|id| !id.is_empty())
                .map(str::to_string)
        })
    }
}

/// `portainer.Stack` (the fields used here).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Stack {
    pub id: i64,
    pub name: String,
    /// 1 Swarm, 2 Compose, 3 Kubernetes.
    #[serde(rename = "Type", default)]
    pub kind: i64,
    #[serde(default)]
    pub endpoint_id: i64,
    #[serde(default)]
    pub swarm_id: String,
    /// 1 active, 2 inactive.
    #[serde(default)]
    pub status: i64,
}

/// `system.status`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct SystemStatus {
    pub version: String,
    #[serde(rename = "InstanceID", default)]
    pub instance_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Credentials<'a> {
    username: &'a str,
    password: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateSwarmStack<'a> {
    name: &'a str,
    #[serde(rename = "SwarmID")]
    swarm_id: &'a str,
    stack_file_content: &'a str,
    env: Vec<Pair>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateSwarmStack<'a> {
    stack_file_content: &'a str,
    env: Vec<Pair>,
    prune: bool,
    pull_image: bool,
}

#[derive(Serialize)]
struct Pair {
    name: String,
    value: String,
}

#[derive(Deserialize)]
struct Jwt {
    jwt: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StackFile {
    stack_file_content: String,
}

#[derive(Deserialize, Default)]
struct ApiError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: String,
}

/// A client of one Portainer instance.
pub struct PortainerClient {
    api: String,
    http: reqwest::Client,
    auth: PortainerAuth,
    jwt: Mutex<Option<SecretString>>,
}

impl std::fmt::Debug for PortainerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortainerClient")
            .field("api", &self.api)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl PortainerClient {
    /// `base_url` is where Portainer answers (`https://portainer.example.com`,
    /// `http://127.0.0.1:9000`); the API is under `/api`.
    pub fn new(base_url: &str, auth: PortainerAuth) -> Result<Self, PortainerError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| PortainerError::Invalid {
                field: "http client".into(),
                reason: e.to_string(),
            })?;
        Self::with_http(base_url, auth, http)
    }

    pub fn with_http(
        base_url: &str,
        auth: PortainerAuth,
        http: reqwest::Client,
    ) -> Result<Self, PortainerError> {
        let base = base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(PortainerError::Invalid {
                field: "portainer url".into(),
                reason: format!("{base_url:?} must start with http:// or https://"),
            });
        }
        let api = if base.ends_with("/api") {
            base.to_string()
        } else {
            format!("{base}/api")
        };
        Ok(Self {
            api,
            http,
            auth,
            jwt: Mutex::new(None),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
        authenticated: bool,
    ) -> Result<reqwest::Response, PortainerError> {
        let mut retried = false;
        loop {
            let mut req = self.http.request(method.clone(), self.url(path));
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            if authenticated {
                req = match &self.auth {
                    PortainerAuth::ApiKey(key) => req.header("X-API-Key", key.expose_secret()),
                    PortainerAuth::Password { .. } => {
                        let token = self.token().await?;
                        req.bearer_auth(token.expose_secret())
                    }
                };
            }
            let response = req.send().await.map_err(|e| PortainerError::Transport {
                url: self.url(path),
                reason: e.without_url().to_string(),
            })?;
            let expired = response.status() == StatusCode::UNAUTHORIZED
                && authenticated
                && matches!(self.auth, PortainerAuth::Password { .. });
            if expired && !retried {
                // The JWT expired (Portainer's default lifetime is 8 hours): log in again once.
                retried = true;
                *self.jwt.lock().await = None;
                continue;
            }
            return Ok(response);
        }
    }

    async fn token(&self) -> Result<SecretString, PortainerError> {
        let mut jwt = self.jwt.lock().await;
        if let Some(token) = jwt.as_ref() {
            return Ok(token.clone());
        }
        let token = self.authenticate().await?;
        *jwt = Some(token.clone());
        Ok(token)
    }

    async fn authenticate(&self) -> Result<SecretString, PortainerError> {
        let PortainerAuth::Password { username, password } = &self.auth else {
            return Err(PortainerError::Invalid {
                field: "auth".into(),
                reason: "an API key needs no login".into(),
            });
        };
        let body = serde_json::to_value(Credentials {
            username,
            password: password.expose_secret(),
        })
        .map_err(|e| PortainerError::Decode(e.to_string()))?;
        // Not through `send`, which calls this to get a token.
        let response = self
            .http
            .post(self.url("/auth"))
            .json(&body)
            .send()
            .await
            .map_err(|e| PortainerError::Transport {
                url: self.url("/auth"),
                reason: e.without_url().to_string(),
            })?;
        let jwt: Jwt = decode(response, "/auth").await?;
        Ok(SecretString::from(jwt.jwt))
    }

    /// Logs in now (with a password) so that bad credentials fail early; a no-op with an API
    /// key, whose validity shows on the first call.
    pub async fn login(&self) -> Result<(), PortainerError> {
        if matches!(self.auth, PortainerAuth::Password { .. }) {
            let token = self.authenticate().await?;
            *self.jwt.lock().await = Some(token);
        }
        Ok(())
    }

    /// `GET /system/status` (public).
    pub async fn status(&self) -> Result<SystemStatus, PortainerError> {
        let r = self
            .send(Method::GET, "/system/status", &[], None, false)
            .await?;
        decode(r, "/system/status").await
    }

    /// `GET /users/admin/check` (public): whether the admin user exists.
    pub async fn admin_initialized(&self) -> Result<bool, PortainerError> {
        let r = self
            .send(Method::GET, "/users/admin/check", &[], None, false)
            .await?;
        match r.status() {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(error_of(r, "/users/admin/check").await),
        }
    }

    /// `POST /users/admin/init` (public, once per fresh install): creates the admin user.
    /// [`PortainerError::Conflict`] when it already exists. Portainer requires a password of
    /// at least 12 characters.
    pub async fn init_admin(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<(), PortainerError> {
        let body = serde_json::to_value(Credentials {
            username,
            password: password.expose_secret(),
        })
        .map_err(|e| PortainerError::Decode(e.to_string()))?;
        let r = self
            .send(Method::POST, "/users/admin/init", &[], Some(&body), false)
            .await?;
        let _: serde_json::Value = decode(r, "/users/admin/init").await?;
        Ok(())
    }

    /// `GET /endpoints`.
    pub async fn endpoints(&self) -> Result<Vec<Endpoint>, PortainerError> {
        let r = self
            .send(Method::GET, "/endpoints", &[], None, true)
            .await?;
        decode(r, "/endpoints").await
    }

    /// `GET /endpoints/{id}`.
    pub async fn endpoint(&self, id: i64) -> Result<Endpoint, PortainerError> {
        let path = format!("/endpoints/{id}");
        let r = self.send(Method::GET, &path, &[], None, true).await?;
        decode(r, &format!("endpoint {id}")).await
    }

    /// The first Docker endpoint (type 1 or 2) that is up: on a server LivChat set up, the
    /// local Swarm manager Portainer was deployed on.
    pub async fn docker_endpoint(&self) -> Result<Endpoint, PortainerError> {
        self.endpoints()
            .await?
            .into_iter()
            .find(|e| matches!(e.kind, 1 | 2) && e.status != 2)
            .ok_or_else(|| PortainerError::NotFound {
                what: "Docker environment (endpoint) that is up".into(),
            })
    }

    /// The Swarm cluster id of an endpoint (needed to create a Swarm stack).
    pub async fn swarm_id(&self, endpoint_id: i64) -> Result<String, PortainerError> {
        let path = format!("/endpoints/{endpoint_id}/docker/swarm");
        let r = self.send(Method::GET, &path, &[], None, true).await?;
        if r.status().is_success() {
            let swarm: serde_json::Value = decode(r, &path).await?;
            if let Some(id) = swarm.get("ID").and_then(|v| v.as_str()) {
                return Ok(id.to_string());
            }
        }
        self.endpoint(endpoint_id)
            .await?
            .snapshot_swarm_id()
            .ok_or_else(|| PortainerError::NotFound {
                what: format!("Swarm on endpoint {endpoint_id}"),
            })
    }

    /// `GET /stacks`.
    pub async fn stacks(&self) -> Result<Vec<Stack>, PortainerError> {
        let r = self.send(Method::GET, "/stacks", &[], None, true).await?;
        if r.status() == StatusCode::NO_CONTENT {
            return Ok(Vec::new());
        }
        decode(r, "/stacks").await
    }

    /// The stack of that name on that Swarm, if Portainer manages one.
    pub async fn stack_by_name(
        &self,
        name: &str,
        swarm_id: &str,
    ) -> Result<Option<Stack>, PortainerError> {
        Ok(self
            .stacks()
            .await?
            .into_iter()
            .find(|s| s.name == name && (s.swarm_id.is_empty() || s.swarm_id == swarm_id)))
    }

    /// `GET /stacks/{id}`.
    pub async fn stack(&self, id: i64) -> Result<Stack, PortainerError> {
        let path = format!("/stacks/{id}");
        let r = self.send(Method::GET, &path, &[], None, true).await?;
        decode(r, &format!("stack {id}")).await
    }

    /// `GET /stacks/{id}/file`.
    pub async fn stack_file(&self, id: i64) -> Result<String, PortainerError> {
        let path = format!("/stacks/{id}/file");
        let r = self.send(Method::GET, &path, &[], None, true).await?;
        let file: StackFile = decode(r, &format!("stack {id}")).await?;
        Ok(file.stack_file_content)
    }

    /// `POST /stacks/create/swarm/string?endpointId=`.
    pub async fn create_swarm_stack(
        &self,
        endpoint_id: i64,
        swarm_id: &str,
        name: &str,
        content: &str,
    ) -> Result<Stack, PortainerError> {
        let body = serde_json::to_value(CreateSwarmStack {
            name,
            swarm_id,
            stack_file_content: content,
            env: Vec::new(),
        })
        .map_err(|e| PortainerError::Decode(e.to_string()))?;
        let r = self
            .send(
                Method::POST,
                "/stacks/create/swarm/string",
                &[("endpointId", endpoint_id.to_string())],
                Some(&body),
                true,
            )
            .await?;
        decode(r, &format!("stack {name}")).await
    }

    /// `PUT /stacks/{id}?endpointId=`: new content, services no longer in it removed.
    pub async fn update_stack(
        &self,
        id: i64,
        endpoint_id: i64,
        content: &str,
    ) -> Result<Stack, PortainerError> {
        let body = serde_json::to_value(UpdateSwarmStack {
            stack_file_content: content,
            env: Vec::new(),
            prune: true,
            pull_image: false,
        })
        .map_err(|e| PortainerError::Decode(e.to_string()))?;
        let path = format!("/stacks/{id}");
        let r = self
            .send(
                Method::PUT,
                &path,
                &[("endpointId", endpoint_id.to_string())],
                Some(&body),
                true,
            )
            .await?;
        decode(r, &format!("stack {id}")).await
    }

    /// `DELETE /stacks/{id}?endpointId=`.
    pub async fn delete_stack(&self, id: i64, endpoint_id: i64) -> Result<(), PortainerError> {
        let path = format!("/stacks/{id}");
        let r = self
            .send(
                Method::DELETE,
                &path,
                &[("endpointId", endpoint_id.to_string())],
                None,
                true,
            )
            .await?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(error_of(r, &format!("stack {id}")).await)
        }
    }
}

async fn decode<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T, PortainerError> {
    if !response.status().is_success() {
        return Err(error_of(response, what).await);
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| PortainerError::Decode(e.without_url().to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| PortainerError::Decode(format!("{what}: {e}")))
}

/// Maps an error status and Portainer's `{"message","details"}` body to a typed error.
async fn error_of(response: reqwest::Response, what: &str) -> PortainerError {
    let status = response.status();
    let body: ApiError = response
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let message = match (body.message.is_empty(), body.details.is_empty()) {
        (true, true) => status.canonical_reason().unwrap_or("error").to_string(),
        (false, true) => body.message,
        (true, false) => body.details,
        (false, false) => format!("{}: {}", body.message, body.details),
    };
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::UNPROCESSABLE_ENTITY => {
            PortainerError::Unauthorized { message }
        }
        StatusCode::NOT_FOUND => PortainerError::NotFound {
            what: what.to_string(),
        },
        StatusCode::CONFLICT => PortainerError::Conflict { message },
        _ => PortainerError::Api {
            status: status.as_u16(),
            message,
        },
    }
}
