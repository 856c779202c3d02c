//! [`Provider`] for Hetzner Cloud.
//!
//! Requests and responses are the `hcloud` crate's generated models (strict: a response
//! missing a required or nullable field fails to decode, which is what keeps the fakes honest).
//! The requests themselves go through [`crate::http::Transport`], not through hcloud's
//! `apis::*` functions: those build their own request from `Configuration` and return
//! `Error::ResponseError(ResponseContent { status, content, entity })`, which drops the
//! response headers, so `Retry-After` and `RateLimit-Reset` could not be honoured. (Passing a
//! custom `reqwest::Client` with timeouts would work: `Configuration::client` is a public
//! field; the headers are the blocker.)

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use hcloud::models;
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{CloudError, Result, Service};
use crate::http::{Failure, Reply, Retrier, Transport};
use crate::provider::{
    ActionProgress, ActionStatus, Architecture, Firewall, FirewallSpec, Image, ImageKind, Location,
    MANAGED_BY_LABEL, Price, ProgressFn, Provider, ProviderServer, ServerId, ServerSpec,
    ServerStatus, ServerType, SshKey,
};
use crate::retry::RetryPolicy;
use crate::validate;

/// Environment variable overriding the API base URL (for fakes, Prism, proxies).
pub const HETZNER_ENDPOINT_ENV: &str = "LIVCHAT_HETZNER_ENDPOINT";
/// The production API base URL.
pub const HETZNER_DEFAULT_ENDPOINT: &str = "https://api.hetzner.cloud/v1";

/// Largest page Hetzner serves.
const PER_PAGE: u32 = 50;
/// A bound on pages, so a server that always answers "there is a next page" cannot loop us.
const MAX_PAGES: u32 = 200;

/// Settings of [`HetznerProvider`].
#[derive(Debug, Clone, PartialEq)]
pub struct HetznerConfig {
    /// API base URL, `https://api.hetzner.cloud/v1` unless overridden.
    pub endpoint: String,
    /// Timeouts and retries of each request.
    pub retry: RetryPolicy,
    /// How often a running action is polled.
    pub action_poll_interval: Duration,
    /// How long to wait for one action before giving up.
    pub action_timeout: Duration,
}

impl Default for HetznerConfig {
    fn default() -> Self {
        HetznerConfig {
            endpoint: HETZNER_DEFAULT_ENDPOINT.to_owned(),
            retry: RetryPolicy::default(),
            action_poll_interval: Duration::from_secs(1),
            action_timeout: Duration::from_secs(600),
        }
    }
}

impl HetznerConfig {
    /// Defaults, with the endpoint from `LIVCHAT_HETZNER_ENDPOINT` when set.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`HetznerConfig::from_env`] with the environment given as a function, so tests
    /// need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut c = HetznerConfig::default();
        if let Some(e) = lookup(HETZNER_ENDPOINT_ENV).filter(|e| !e.trim().is_empty()) {
            c.endpoint = e.trim().to_owned();
        }
        c
    }
}

/// Hetzner Cloud through its public API, authenticated with a project API token.
#[derive(Debug)]
pub struct HetznerProvider {
    http: Transport,
    config: HetznerConfig,
}

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
struct ApiFailure {
    status: StatusCode,
    code: String,
    message: String,
}

fn parse_failure(reply: &Reply) -> ApiFailure {
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
fn api_error(operation: &str, reply: Reply, name: Option<&str>) -> CloudError {
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

fn parse_id(id: &ServerId) -> Result<i64> {
    id.0.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| CloudError::InvalidInput {
            field: "server id",
            reason: format!("{:?} is not a Hetzner server id (a positive integer)", id.0),
        })
}

fn managed_labels(extra: &BTreeMap<String, String>) -> HashMap<String, String> {
    let mut l: HashMap<String, String> = extra.clone().into_iter().collect();
    l.insert(MANAGED_BY_LABEL.0.to_owned(), MANAGED_BY_LABEL.1.to_owned());
    l
}

fn is_managed(labels: &HashMap<String, String>) -> bool {
    labels.get(MANAGED_BY_LABEL.0).map(String::as_str) == Some(MANAGED_BY_LABEL.1)
}

/// The MD5 fingerprint Hetzner computes for a public key (`aa:bb:...`), after checking the
/// key's shape: `<type> <base64 blob> [comment]` with an allowed type whose name matches the
/// one inside the blob.
pub fn ssh_fingerprint(public_key: &str) -> Result<String> {
    const TYPES: [&str; 6] = [
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
    ];
    let bad = |why: &str| CloudError::InvalidInput {
        field: "public_key",
        reason: format!(
            "{why}; expected one OpenSSH public key line such as 'ssh-ed25519 AAAA... comment'"
        ),
    };
    if public_key.trim().contains(['\n', '\r', '\0']) {
        return Err(bad("more than one line"));
    }
    let mut parts = public_key.split_whitespace();
    let kind = parts.next().ok_or_else(|| bad("empty key"))?;
    if !TYPES.contains(&kind) {
        return Err(bad(&format!(
            "key type {kind:?} is not one of {}",
            TYPES.join(", ")
        )));
    }
    let blob = parts.next().ok_or_else(|| bad("no key data"))?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|_| bad("the key data is not base64"))?;
    // The blob starts with the type as an SSH string (u32 length, bytes).
    let inner = blob
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|n| blob.get(4..4 + n));
    if inner != Some(kind.as_bytes()) {
        return Err(bad("the key data does not match its type"));
    }
    let digest = md5::compute(&blob);
    Ok(digest
        .0
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

fn arch(a: models::Architecture) -> Architecture {
    match a {
        models::Architecture::Arm => Architecture::Arm,
        models::Architecture::X86 => Architecture::X86,
    }
}

fn server_status(s: models::server::Status) -> ServerStatus {
    use models::server::Status as S;
    match s {
        S::Deleting => ServerStatus::Deleting,
        S::Initializing => ServerStatus::Initializing,
        S::Migrating => ServerStatus::Migrating,
        S::Off => ServerStatus::Off,
        S::Rebuilding => ServerStatus::Rebuilding,
        S::Running => ServerStatus::Running,
        S::Starting => ServerStatus::Starting,
        S::Stopping => ServerStatus::Stopping,
        S::Unknown => ServerStatus::Unknown,
    }
}

fn to_server(s: models::Server) -> ProviderServer {
    let ipv4 = s
        .public_net
        .ipv4
        .as_ref()
        .and_then(|v| v.ip.parse::<Ipv4Addr>().ok());
    let ipv6_network = s.public_net.ipv6.as_ref().map(|v| v.ip.clone());
    let ipv6 = ipv6_network.as_deref().and_then(|net| {
        let addr = net.split('/').next()?.parse::<Ipv6Addr>().ok()?;
        // Hetzner hands out a /64; the host answers on ::1 of it.
        Some(Ipv6Addr::from(u128::from(addr) | 1))
    });
    ProviderServer {
        id: ServerId::from(s.id),
        name: s.name,
        status: server_status(s.status),
        ipv4,
        ipv6_network,
        ipv6,
        server_type: s.server_type.name,
        location: s.location.name,
        image: s.image.and_then(|i| i.name),
        labels: s.labels.into_iter().collect(),
        created: s.created,
    }
}

fn to_location(l: models::Location) -> Location {
    Location {
        name: l.name,
        description: l.description,
        city: l.city,
        country: l.country,
        network_zone: l.network_zone,
    }
}

fn to_server_type(t: models::ServerType) -> ServerType {
    ServerType {
        deprecated: t.deprecated.unwrap_or(false) || matches!(t.deprecation, Some(Some(_))),
        name: t.name,
        description: t.description,
        cores: u32::try_from(t.cores).unwrap_or(0),
        memory_gb: t.memory,
        disk_gb: t.disk,
        architecture: arch(t.architecture),
        dedicated_cpu: t.cpu_type == models::server_type::CpuType::Dedicated,
        prices: t
            .prices
            .into_iter()
            .map(|p| Price {
                location: p.location,
                monthly_gross: p.price_monthly.gross,
                monthly_net: p.price_monthly.net,
                hourly_gross: p.price_hourly.gross,
                hourly_net: p.price_hourly.net,
            })
            .collect(),
    }
}

fn to_image(i: models::Image) -> Image {
    use models::image::{OsFlavor as F, Type as T};
    Image {
        id: i.id,
        name: i.name,
        description: i.description,
        kind: match i.r#type {
            T::System => ImageKind::System,
            T::App => ImageKind::App,
            T::Snapshot => ImageKind::Snapshot,
            T::Backup => ImageKind::Backup,
        },
        os_flavor: match i.os_flavor {
            F::Alma => "alma",
            F::Centos => "centos",
            F::Debian => "debian",
            F::Fedora => "fedora",
            F::Opensuse => "opensuse",
            F::Rocky => "rocky",
            F::Ubuntu => "ubuntu",
            F::Unknown => "unknown",
        }
        .to_owned(),
        os_version: i.os_version,
        architecture: arch(i.architecture),
        deprecated: i.deprecated.is_some(),
    }
}

fn to_ssh_key(k: models::SshKey) -> SshKey {
    SshKey {
        id: k.id,
        name: k.name,
        fingerprint: k.fingerprint,
        public_key: k.public_key,
    }
}

fn to_firewall(f: models::Firewall) -> Firewall {
    Firewall {
        id: f.id,
        name: f.name,
        tcp_ports: open_tcp_ports(&f.rules),
        applied_to: f
            .applied_to
            .iter()
            .filter_map(|r| r.server.as_ref().map(|s| ServerId::from(s.id)))
            .collect(),
    }
}

fn open_tcp_ports(rules: &[models::RuleResponse]) -> Vec<u16> {
    let mut ports: Vec<u16> = rules
        .iter()
        .filter(|r| {
            r.direction == models::rule_response::Direction::In
                && r.protocol == models::rule_response::Protocol::Tcp
        })
        .filter_map(|r| r.port.as_deref()?.parse().ok())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Rules of a firewall spec: each TCP port open inbound from everywhere, IPv4 and IPv6.
fn rules_for(spec: &FirewallSpec) -> Vec<models::Rule> {
    let mut ports = spec.tcp_ports.clone();
    ports.sort_unstable();
    ports.dedup();
    ports
        .into_iter()
        .map(|port| models::Rule {
            description: Some(Some(format!("livchat: tcp {port}"))),
            destination_ips: None,
            direction: models::rule::Direction::In,
            port: Some(Some(port.to_string())),
            protocol: models::rule::Protocol::Tcp,
            source_ips: Some(vec!["0.0.0.0/0".to_owned(), "::/0".to_owned()]),
        })
        .collect()
}

fn json<T: serde::Serialize>(body: &T) -> Vec<u8> {
    // Serialising our own request models cannot fail (no maps with non-string keys).
    serde_json::to_vec(body).unwrap_or_default()
}

impl HetznerProvider {
    /// A client with this token and configuration.
    pub fn new(token: SecretString, config: HetznerConfig) -> Result<Self> {
        let http = Transport::new(
            Service::Hetzner,
            &config.endpoint,
            &token,
            config.retry.clone(),
        )?;
        Ok(HetznerProvider { http, config })
    }

    /// A client with the default configuration and the endpoint from
    /// `LIVCHAT_HETZNER_ENDPOINT`, when set.
    pub fn from_env(token: SecretString) -> Result<Self> {
        Self::new(token, HetznerConfig::from_env())
    }

    /// The configuration in use.
    pub fn config(&self) -> &HetznerConfig {
        &self.config
    }

    async fn call(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Reply> {
        self.http
            .request(operation, method, path, query, body, &|op, r| {
                api_error(op, r, None)
            })
            .await
    }

    /// A request whose success body decodes to `T`; any other status is an error.
    async fn call_json<T: DeserializeOwned>(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<T> {
        let reply = self.call(operation, method, path, query, body).await?;
        if !reply.status.is_success() {
            return Err(api_error(operation, reply, None));
        }
        self.http.decode(operation, &reply)
    }

    /// All pages of a list endpoint; `field` is the array's key (`servers`).
    /// Deletes every item of `/{collection}` named `name` (found with the API's `name`
    /// filter) that carries our `managed-by` label; none, or one gone meanwhile (404), is a
    /// success. An item of that name without the label is not ours and is left alone. `key`
    /// gives an item's id, name and whether it carries the label.
    async fn delete_named<T: DeserializeOwned>(
        &self,
        kind: &str,
        collection: &str,
        name: &str,
        key: fn(&T) -> (i64, &String, bool),
    ) -> Result<()> {
        let found: Vec<T> = self
            .list_all(
                &format!("find {kind}"),
                &format!("/{collection}"),
                collection,
                &[("name", name.to_owned())],
            )
            .await?;
        let operation = format!("delete {kind} {name}");
        for item in &found {
            let (id, item_name, managed) = key(item);
            if item_name != name {
                continue;
            }
            if !managed {
                tracing::warn!(%kind, %name, id, "not deleted: it lacks the managed-by label, so LivChat did not create it");
                continue;
            }
            let reply = self
                .call(
                    &operation,
                    Method::DELETE,
                    &format!("/{collection}/{id}"),
                    &[],
                    None,
                )
                .await?;
            if !reply.status.is_success() && reply.status != StatusCode::NOT_FOUND {
                return Err(api_error(&operation, reply, Some(name)));
            }
        }
        Ok(())
    }

    async fn list_all<T: DeserializeOwned>(
        &self,
        operation: &str,
        path: &str,
        field: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut page = 1u32;
        for _ in 0..MAX_PAGES {
            let mut q = query.to_vec();
            q.push(("page", page.to_string()));
            q.push(("per_page", PER_PAGE.to_string()));
            let mut v: serde_json::Value = self
                .call_json(operation, Method::GET, path, &q, None)
                .await?;
            let items = v
                .get_mut(field)
                .map(serde_json::Value::take)
                .ok_or_else(|| CloudError::Decode {
                    service: Service::Hetzner,
                    operation: operation.to_owned(),
                    message: format!("no {field:?} array in the answer"),
                })?;
            let items: Vec<T> = serde_json::from_value(items).map_err(|e| CloudError::Decode {
                service: Service::Hetzner,
                operation: operation.to_owned(),
                message: e.to_string(),
            })?;
            let meta: models::Meta = serde_json::from_value(
                v.get_mut("meta")
                    .map(serde_json::Value::take)
                    .unwrap_or_default(),
            )
            .map_err(|e| CloudError::Decode {
                service: Service::Hetzner,
                operation: operation.to_owned(),
                message: format!("meta: {e}"),
            })?;
            let empty = items.is_empty();
            out.extend(items);
            // Stop unless the server paged as asked and points forward: a server (or a
            // mock) that ignores `page` would otherwise loop or repeat items.
            let paged_as_asked = meta.pagination.page == i64::from(page);
            match meta.pagination.next_page {
                Some(next) if !empty && paged_as_asked && next > i64::from(page) => {
                    page = u32::try_from(next).unwrap_or(u32::MAX);
                }
                _ => return Ok(out),
            }
        }
        Ok(out)
    }

    async fn find_server_raw(&self, name: &str) -> Result<Option<models::Server>> {
        let servers: Vec<models::Server> = self
            .list_all(
                "find server",
                "/servers",
                "servers",
                &[("name", name.to_owned())],
            )
            .await?;
        Ok(servers.into_iter().find(|s| s.name == name))
    }

    /// The managed server of this name, or `NameTaken` if the name belongs to a server
    /// we did not create.
    async fn adoptable(&self, name: &str) -> Result<Option<models::Server>> {
        match self.find_server_raw(name).await? {
            Some(s) if is_managed(&s.labels) => Ok(Some(s)),
            Some(_) => Err(CloudError::NameTaken {
                service: Service::Hetzner,
                name: name.to_owned(),
                message: format!(
                    "a server named {name:?} exists without the label {}={}; it was not created \
                     by LivChat, so it is left alone",
                    MANAGED_BY_LABEL.0, MANAGED_BY_LABEL.1
                ),
            }),
            None => Ok(None),
        }
    }

    /// Polls an action until it ends, reporting progress at every poll.
    async fn wait_action(&self, action: models::Action, progress: &ProgressFn) -> Result<()> {
        let started = Instant::now();
        let mut action = action;
        loop {
            let status = match action.status {
                models::action::Status::Running => ActionStatus::Running,
                models::action::Status::Success => ActionStatus::Success,
                models::action::Status::Error => ActionStatus::Error,
            };
            progress(ActionProgress {
                action_id: action.id,
                command: action.command.clone(),
                progress: u8::try_from(action.progress.clamp(0, 100)).unwrap_or(0),
                status,
            });
            match status {
                ActionStatus::Success => return Ok(()),
                ActionStatus::Error => {
                    let (code, message) = action
                        .error
                        .map(|e| (e.code, e.message))
                        .unwrap_or_else(|| ("unknown".into(), "no error details".into()));
                    return Err(CloudError::ActionFailed {
                        service: Service::Hetzner,
                        id: action.id,
                        command: action.command,
                        code,
                        message,
                    });
                }
                ActionStatus::Running => {}
            }
            if started.elapsed() >= self.config.action_timeout {
                return Err(CloudError::WaitTimeout {
                    service: Service::Hetzner,
                    what: format!("action {} ({})", action.command, action.id),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(self.config.action_poll_interval).await;
            let got: models::GetActionResponse = self
                .call_json(
                    "get action",
                    Method::GET,
                    &format!("/actions/{}", action.id),
                    &[],
                    None,
                )
                .await?;
            action = *got.action;
        }
    }

    /// Waits until an adopted server has left the transitional states its creation started
    /// (`initializing`, `starting`). Polls the server itself rather than its action list, so
    /// the product uses one endpoint less.
    async fn wait_server_settled(&self, id: i64) -> Result<models::Server> {
        let started = Instant::now();
        loop {
            let s = self
                .get_server_raw(id)
                .await?
                .ok_or_else(|| CloudError::NotFound {
                    service: Service::Hetzner,
                    what: format!("server {id}"),
                })?;
            use models::server::Status as S;
            if !matches!(s.status, S::Initializing | S::Starting) {
                return Ok(s);
            }
            if started.elapsed() >= self.config.action_timeout {
                return Err(CloudError::WaitTimeout {
                    service: Service::Hetzner,
                    what: format!("server {id} to finish starting"),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(self.config.action_poll_interval).await;
        }
    }

    async fn get_server_raw(&self, id: i64) -> Result<Option<models::Server>> {
        let reply = self
            .call(
                "get server",
                Method::GET,
                &format!("/servers/{id}"),
                &[],
                None,
            )
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !reply.status.is_success() {
            return Err(api_error("get server", reply, None));
        }
        let got: models::GetServerResponse = self.http.decode("get server", &reply)?;
        Ok(got.server.map(|s| *s))
    }

    /// Checks type, location and image before creating, so a typo is a clear error naming
    /// what exists rather than the vendor's generic `invalid_input`.
    async fn check_spec(&self, spec: &ServerSpec) -> Result<()> {
        validate::host_name("name", &spec.name)?;
        validate::catalog_name("server_type", &spec.server_type)?;
        validate::catalog_name("location", &spec.location)?;
        validate::catalog_name("image", &spec.image)?;
        for k in &spec.ssh_keys {
            validate::catalog_name("ssh_keys", k)?;
        }
        validate::labels(&spec.labels)?;

        let locations = self.list_locations().await?;
        if !locations.iter().any(|l| l.name == spec.location) {
            return Err(CloudError::UnknownLocation {
                name: spec.location.clone(),
                available: locations.into_iter().map(|l| l.name).collect(),
            });
        }
        let types = self.list_server_types().await?;
        let Some(t) = types.iter().find(|t| t.name == spec.server_type) else {
            return Err(CloudError::UnknownServerType {
                name: spec.server_type.clone(),
                available: types.into_iter().map(|t| t.name).collect(),
            });
        };
        if !t.prices.iter().any(|p| p.location == spec.location) {
            return Err(CloudError::UnknownServerType {
                name: format!("{} in {}", spec.server_type, spec.location),
                available: types
                    .iter()
                    .filter(|t| t.prices.iter().any(|p| p.location == spec.location))
                    .map(|t| t.name.clone())
                    .collect(),
            });
        }
        let images: Vec<models::Image> = self
            .list_all(
                "find image",
                "/images",
                "images",
                &[
                    ("name", spec.image.clone()),
                    ("architecture", t.architecture.to_string()),
                ],
            )
            .await?;
        if !images
            .iter()
            .any(|i| i.name.as_deref() == Some(spec.image.as_str()))
        {
            return Err(CloudError::UnknownImage {
                name: format!("{} ({})", spec.image, t.architecture),
            });
        }
        Ok(())
    }

    /// POSTs the create, retrying per policy; before each retry, looks the server up by name
    /// so that a create whose answer was lost is adopted, not repeated.
    async fn post_create(
        &self,
        spec: &ServerSpec,
    ) -> Result<std::result::Result<models::CreateServerResponse, models::Server>> {
        let operation = "create server";
        let mut request = models::CreateServerRequest::new(
            spec.image.clone(),
            spec.name.clone(),
            spec.server_type.clone(),
        );
        request.location = Some(spec.location.clone());
        request.labels = Some(managed_labels(&spec.labels));
        request.ssh_keys = (!spec.ssh_keys.is_empty()).then(|| spec.ssh_keys.clone());
        request.start_after_create = Some(true);
        let body = json(&request);
        let url = self.http.url("/servers");
        let mut retrier = Retrier::new(&self.http.policy, Service::Hetzner, operation);
        loop {
            retrier.attempted();
            let failure: Failure = match self
                .http
                .attempt(&Method::POST, &url, &[], Some(&body))
                .await
            {
                Ok(reply) if reply.status.is_success() => {
                    return Ok(Ok(self.http.decode(operation, &reply)?));
                }
                Ok(reply) => {
                    let err = api_error(operation, reply, Some(&spec.name));
                    if let CloudError::NameTaken { .. } = err {
                        // Ours from an earlier attempt whose answer was lost: adopt it.
                        if let Some(s) = self.adoptable(&spec.name).await? {
                            return Ok(Err(s));
                        }
                    }
                    return Err(err);
                }
                Err(f) => f,
            };
            let delay = retrier.after(failure, |r| api_error(operation, r, Some(&spec.name)))?;
            tokio::time::sleep(delay).await;
            if let Some(s) = self.adoptable(&spec.name).await? {
                tracing::info!(name = %spec.name, id = s.id, "create was answered late; adopting the server it made");
                return Ok(Err(s));
            }
        }
    }

    async fn server_action(
        &self,
        id: &ServerId,
        action: &str,
        progress: &ProgressFn,
    ) -> Result<()> {
        let n = parse_id(id)?;
        let operation = format!("{action} server {n}");
        let reply = self
            .call(
                &operation,
                Method::POST,
                &format!("/servers/{n}/actions/{action}"),
                &[],
                None,
            )
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(CloudError::NotFound {
                service: Service::Hetzner,
                what: format!("server {n}"),
            });
        }
        if !reply.status.is_success() {
            return Err(api_error(&operation, reply, None));
        }
        let got: models::PowerOnServerResponse = self.http.decode(&operation, &reply)?;
        self.wait_action(*got.action, progress).await
    }

    async fn wait_actions(
        &self,
        actions: Vec<models::Action>,
        progress: &ProgressFn,
    ) -> Result<()> {
        for a in actions {
            self.wait_action(a, progress).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for HetznerProvider {
    fn name(&self) -> &'static str {
        "hetzner"
    }

    async fn list_locations(&self) -> Result<Vec<Location>> {
        let l: Vec<models::Location> = self
            .list_all("list locations", "/locations", "locations", &[])
            .await?;
        Ok(l.into_iter().map(to_location).collect())
    }

    async fn list_server_types(&self) -> Result<Vec<ServerType>> {
        let t: Vec<models::ServerType> = self
            .list_all("list server types", "/server_types", "server_types", &[])
            .await?;
        Ok(t.into_iter().map(to_server_type).collect())
    }

    async fn list_images(&self) -> Result<Vec<Image>> {
        let i: Vec<models::Image> = self
            .list_all(
                "list images",
                "/images",
                "images",
                &[
                    ("type", "system".to_owned()),
                    ("status", "available".to_owned()),
                ],
            )
            .await?;
        Ok(i.into_iter().map(to_image).collect())
    }

    async fn ensure_ssh_key(&self, name: &str, public_key: &str) -> Result<SshKey> {
        validate::catalog_name("name", name)?;
        let fingerprint = ssh_fingerprint(public_key)?;
        let public_key = public_key.trim();
        let by_fingerprint = || async {
            let keys: Vec<models::SshKey> = self
                .list_all(
                    "find ssh key",
                    "/ssh_keys",
                    "ssh_keys",
                    &[("fingerprint", fingerprint.clone())],
                )
                .await?;
            Ok::<_, CloudError>(keys.into_iter().find(|k| k.fingerprint == fingerprint))
        };
        if let Some(k) = by_fingerprint().await? {
            return Ok(to_ssh_key(k));
        }
        let mut request = models::CreateSshKeyRequest::new(name.to_owned(), public_key.to_owned());
        request.labels = Some(managed_labels(&BTreeMap::new()));
        let operation = "create ssh key";
        let reply = self
            .call(
                operation,
                Method::POST,
                "/ssh_keys",
                &[],
                Some(&json(&request)),
            )
            .await?;
        if reply.status.is_success() {
            let got: models::CreateSshKeyResponse = self.http.decode(operation, &reply)?;
            return Ok(to_ssh_key(*got.ssh_key));
        }
        match api_error(operation, reply, Some(name)) {
            // Either a retried POST that had succeeded, or the name holds another key.
            CloudError::NameTaken { message, .. } => match by_fingerprint().await? {
                Some(k) => Ok(to_ssh_key(k)),
                None => Err(CloudError::NameTaken {
                    service: Service::Hetzner,
                    name: name.to_owned(),
                    message: format!(
                        "an SSH key named {name:?} exists with another public key ({message})"
                    ),
                }),
            },
            other => Err(other),
        }
    }

    async fn create_server(
        &self,
        spec: &ServerSpec,
        progress: &ProgressFn,
    ) -> Result<ProviderServer> {
        validate::host_name("name", &spec.name)?;
        validate::labels(&spec.labels)?;
        if let Some(s) = self.adoptable(&spec.name).await? {
            return Ok(to_server(self.wait_server_settled(s.id).await?));
        }
        self.check_spec(spec).await?;
        let id = match self.post_create(spec).await? {
            Ok(created) => {
                let id = created.server.id;
                self.wait_action(*created.action, progress).await?;
                self.wait_actions(created.next_actions, progress).await?;
                id
            }
            Err(adopted) => return Ok(to_server(self.wait_server_settled(adopted.id).await?)),
        };
        self.get_server_raw(id)
            .await?
            .map(to_server)
            .ok_or_else(|| CloudError::NotFound {
                service: Service::Hetzner,
                what: format!("server {id} right after creating it"),
            })
    }

    async fn get_server(&self, id: &ServerId) -> Result<Option<ProviderServer>> {
        Ok(self.get_server_raw(parse_id(id)?).await?.map(to_server))
    }

    async fn find_server(&self, name: &str) -> Result<Option<ProviderServer>> {
        validate::host_name("name", name)?;
        Ok(self
            .find_server_raw(name)
            .await?
            .filter(|s| is_managed(&s.labels))
            .map(to_server))
    }

    async fn list_servers(&self) -> Result<Vec<ProviderServer>> {
        let s: Vec<models::Server> = self
            .list_all(
                "list servers",
                "/servers",
                "servers",
                &[(
                    "label_selector",
                    format!("{}={}", MANAGED_BY_LABEL.0, MANAGED_BY_LABEL.1),
                )],
            )
            .await?;
        let mut seen = HashSet::new();
        Ok(s.into_iter()
            .filter(|s| seen.insert(s.id))
            .map(to_server)
            .collect())
    }

    async fn delete_server(&self, id: &ServerId, progress: &ProgressFn) -> Result<()> {
        let n = parse_id(id)?;
        let operation = format!("delete server {n}");
        let reply = self
            .call(
                &operation,
                Method::DELETE,
                &format!("/servers/{n}"),
                &[],
                None,
            )
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        if !reply.status.is_success() {
            return Err(api_error(&operation, reply, None));
        }
        let got: models::DeleteServerResponse = self.http.decode(&operation, &reply)?;
        match got.action {
            Some(a) => self.wait_action(*a, progress).await,
            None => Ok(()),
        }
    }

    async fn power_on(&self, id: &ServerId, progress: &ProgressFn) -> Result<()> {
        self.server_action(id, "poweron", progress).await
    }

    async fn power_off(&self, id: &ServerId, progress: &ProgressFn) -> Result<()> {
        self.server_action(id, "poweroff", progress).await
    }

    async fn delete_firewall(&self, name: &str) -> Result<()> {
        validate::host_name("firewall name", name)?;
        self.delete_named::<models::Firewall>("firewall", "firewalls", name, |f| {
            (f.id, &f.name, f.labels.as_ref().is_some_and(is_managed))
        })
        .await
    }

    async fn delete_ssh_key(&self, name: &str) -> Result<()> {
        validate::catalog_name("name", name)?;
        self.delete_named::<models::SshKey>("ssh key", "ssh_keys", name, |k| {
            (k.id, &k.name, is_managed(&k.labels))
        })
        .await
    }

    async fn ensure_firewall(&self, spec: &FirewallSpec, server: &ServerId) -> Result<Firewall> {
        validate::host_name("firewall name", &spec.name)?;
        if spec.tcp_ports.is_empty() || spec.tcp_ports.contains(&0) {
            return Err(CloudError::InvalidInput {
                field: "tcp_ports",
                reason: "at least one port, each 1-65535".into(),
            });
        }
        let server_id = parse_id(server)?;
        let quiet: &ProgressFn = &|_| {};
        let rules = rules_for(spec);
        let apply_to = vec![models::FirewallResource {
            label_selector: None,
            server: Some(Box::new(models::ResourceId { id: server_id })),
            r#type: models::firewall_resource::Type::Server,
        }];
        let find = || async {
            let fws: Vec<models::Firewall> = self
                .list_all(
                    "find firewall",
                    "/firewalls",
                    "firewalls",
                    &[("name", spec.name.clone())],
                )
                .await?;
            match fws.into_iter().find(|f| f.name == spec.name) {
                // Changing the rules of someone else's firewall would open or close their ports.
                Some(f) if !f.labels.as_ref().is_some_and(is_managed) => {
                    Err(CloudError::NameTaken {
                        service: Service::Hetzner,
                        name: spec.name.clone(),
                        message: format!(
                            "a firewall named {:?} exists without the label {}={}; it was not \
                         created by LivChat, so it is left alone",
                            spec.name, MANAGED_BY_LABEL.0, MANAGED_BY_LABEL.1
                        ),
                    })
                }
                found => Ok::<_, CloudError>(found),
            }
        };
        let existing = match find().await? {
            Some(f) => f,
            None => {
                let request = models::CreateFirewallRequest {
                    apply_to: Some(apply_to.clone()),
                    labels: Some(managed_labels(&BTreeMap::new())),
                    name: spec.name.clone(),
                    rules: Some(rules.clone()),
                };
                let operation = "create firewall";
                let reply = self
                    .call(
                        operation,
                        Method::POST,
                        "/firewalls",
                        &[],
                        Some(&json(&request)),
                    )
                    .await?;
                let found = if reply.status.is_success() {
                    let got: models::CreateFirewallResponse =
                        self.http.decode(operation, &reply)?;
                    self.wait_actions(got.actions.unwrap_or_default(), quiet)
                        .await?;
                    match got.firewall {
                        // Created with our rules and applied to the server.
                        Some(f) => return Ok(to_firewall(*f)),
                        None => find().await?,
                    }
                } else {
                    match api_error(operation, reply, Some(&spec.name)) {
                        // A retried POST that had succeeded: carry on with what exists.
                        CloudError::NameTaken { .. } => find().await?,
                        other => return Err(other),
                    }
                };
                found.ok_or_else(|| CloudError::NotFound {
                    service: Service::Hetzner,
                    what: format!("firewall {:?} right after creating it", spec.name),
                })?
            }
        };
        let id = existing.id;
        let mut want_ports = spec.tcp_ports.clone();
        want_ports.sort_unstable();
        want_ports.dedup();
        let rules_match = open_tcp_ports(&existing.rules) == want_ports
            && existing.rules.len() == want_ports.len();
        if !rules_match {
            let operation = format!("set rules of firewall {id}");
            let got: models::SetRulesResponse = self
                .call_json(
                    &operation,
                    Method::POST,
                    &format!("/firewalls/{id}/actions/set_rules"),
                    &[],
                    Some(&json(&models::SetRulesRequest { rules })),
                )
                .await?;
            self.wait_actions(got.actions, quiet).await?;
        }
        let applied = existing
            .applied_to
            .iter()
            .any(|r| r.server.as_ref().is_some_and(|s| s.id == server_id));
        if !applied {
            let operation = format!("apply firewall {id}");
            let reply = self
                .call(
                    &operation,
                    Method::POST,
                    &format!("/firewalls/{id}/actions/apply_to_resources"),
                    &[],
                    Some(&json(&models::ApplyToResourcesRequest { apply_to })),
                )
                .await?;
            if reply.status.is_success() {
                let got: models::ApplyToResourcesResponse = self.http.decode(&operation, &reply)?;
                self.wait_actions(got.actions, quiet).await?;
            } else {
                let f = parse_failure(&reply);
                // Already applied (a retried POST): nothing to do.
                if f.code != "firewall_already_applied" {
                    return Err(api_error(&operation, reply, None));
                }
            }
        }
        let got: models::GetFirewallResponse = self
            .call_json(
                "get firewall",
                Method::GET,
                &format!("/firewalls/{id}"),
                &[],
                None,
            )
            .await?;
        Ok(to_firewall(*got.firewall))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_comes_from_the_given_environment_only() {
        let c = HetznerConfig::from_lookup(|k| {
            (k == HETZNER_ENDPOINT_ENV).then(|| "http://127.0.0.1:9/v1".to_owned())
        });
        assert_eq!(c.endpoint, "http://127.0.0.1:9/v1");
        let c = HetznerConfig::from_lookup(|_| None);
        assert_eq!(c.endpoint, HETZNER_DEFAULT_ENDPOINT);
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let p = HetznerProvider::new(
            SecretString::from("hcloud-secret-token-123".to_owned()),
            HetznerConfig::default(),
        )
        .unwrap();
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("hcloud-secret-token-123"), "{dbg}");
        assert!(dbg.contains("<redacted>"), "{dbg}");
    }

    #[test]
    fn an_empty_token_or_a_bad_endpoint_is_refused() {
        let e = HetznerProvider::new(SecretString::from(" ".to_owned()), HetznerConfig::default())
            .unwrap_err();
        assert!(e.to_string().starts_with("invalid token"), "{e}");
        let config = HetznerConfig {
            endpoint: "ftp://example.com".into(),
            ..HetznerConfig::default()
        };
        let e = HetznerProvider::new(SecretString::from("t".to_owned()), config).unwrap_err();
        assert!(e.to_string().contains("only http and https"), "{e}");
    }

    #[test]
    fn fingerprint_matches_ssh_keygen_md5() {
        // Expected value printed by `ssh-keygen -l -E md5 -f` for this key.
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDwaH1OLWzg6PZtYyhkqbYDwlEUh7QQSwXZQonbJiWxb user@host";
        assert_eq!(
            ssh_fingerprint(key).unwrap(),
            "9b:9f:41:a8:e5:21:fd:23:0a:9b:49:fe:29:6f:09:5f"
        );
    }

    #[test]
    fn malformed_public_keys_are_rejected_naming_the_field() {
        for bad in [
            "",
            "ssh-dss AAAA",
            "ssh-ed25519",
            "ssh-ed25519 not-base64!",
            // A valid blob under the wrong type name.
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIDwaH1OLWzg6PZtYyhkqbYDwlEUh7QQSwXZQonbJiWxb",
        ] {
            let e = ssh_fingerprint(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid public_key"), "{bad}: {e}");
        }
    }

    #[test]
    fn firewall_rules_open_each_port_once_for_both_families() {
        let r = rules_for(&FirewallSpec {
            name: "fw".into(),
            tcp_ports: vec![443, 22, 80, 22],
        });
        let ports: Vec<_> = r
            .iter()
            .map(|r| r.port.clone().flatten().unwrap())
            .collect();
        assert_eq!(ports, ["22", "80", "443"]);
        assert!(r.iter().all(|r| r.source_ips.as_ref().unwrap().len() == 2));
    }
}
