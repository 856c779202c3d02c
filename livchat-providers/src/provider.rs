//! The `Provider` trait and its vocabulary: what the core asks of a cloud provider.
//!
//! ```text
//!   livchat-core ──(Arc<dyn Provider>)──▶ HetznerProvider ──reqwest──▶ api.hetzner.cloud
//!                                        └ MockProvider (feature "mock", unit tests)
//! ```
//!
//! Ids are strings so that a provider with non-numeric ids fits the same trait; Hetzner's are
//! decimal integers.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The label every server, SSH key and firewall we create carries; only what carries it is
/// found, adopted or deleted.
pub const MANAGED_BY_LABEL: (&str, &str) = ("managed-by", "livchat");

/// A provider's id of a server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServerId(pub String);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<i64> for ServerId {
    fn from(id: i64) -> Self {
        ServerId(id.to_string())
    }
}

/// A data-center location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// The name used to create servers there (`fsn1`, `nbg1`, `hel1`, `ash`...).
    pub name: String,
    /// Human description (`Falkenstein DC Park 1`).
    pub description: String,
    /// City.
    pub city: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// The network zone (`eu-central`, `us-east`...).
    pub network_zone: String,
}

/// CPU architecture of a server type or image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// x86-64.
    X86,
    /// 64-bit ARM.
    Arm,
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Architecture::X86 => "x86",
            Architecture::Arm => "arm",
        })
    }
}

/// The price of a server type in one location. Amounts are the vendor's decimal strings
/// (e.g. `"4.5100000000000000"`), kept exact rather than rounded through a float.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// The location name.
    pub location: String,
    /// Monthly price including VAT.
    pub monthly_gross: String,
    /// Monthly price without VAT.
    pub monthly_net: String,
    /// Hourly price including VAT.
    pub hourly_gross: String,
    /// Hourly price without VAT.
    pub hourly_net: String,
}

/// A server type (size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerType {
    /// The name used to create servers (`cx22`, `cax11`...).
    pub name: String,
    /// Human description.
    pub description: String,
    /// Virtual CPUs.
    pub cores: u32,
    /// Memory in GB.
    pub memory_gb: f64,
    /// Local disk in GB.
    pub disk_gb: f64,
    /// CPU architecture (images must match).
    pub architecture: Architecture,
    /// Whether the CPU is dedicated (else shared).
    pub dedicated_cpu: bool,
    /// Whether the vendor deprecated it (still listed, soon not orderable).
    pub deprecated: bool,
    /// Prices per location; a type is orderable only where it has a price.
    pub prices: Vec<Price>,
}

/// What kind of image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    /// A distribution image (`debian-12`, `ubuntu-24.04`).
    System,
    /// A vendor app image.
    App,
    /// The user's snapshot.
    Snapshot,
    /// The user's backup.
    Backup,
}

/// An image servers can be created from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// The provider's id.
    pub id: i64,
    /// The name used to create servers (`debian-12`); snapshots have none.
    pub name: Option<String>,
    /// Human description.
    pub description: String,
    /// Kind of image.
    pub kind: ImageKind,
    /// Distribution (`debian`, `ubuntu`...).
    pub os_flavor: String,
    /// Distribution version (`12`, `24.04`).
    pub os_version: Option<String>,
    /// Architecture it runs on.
    pub architecture: Architecture,
    /// Whether the vendor deprecated it.
    pub deprecated: bool,
}

/// A public SSH key registered at the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshKey {
    /// The provider's id.
    pub id: i64,
    /// Its name at the provider.
    pub name: String,
    /// The MD5 fingerprint the provider computed (`aa:bb:...`), what Hetzner matches on.
    pub fingerprint: String,
    /// The OpenSSH public key line.
    pub public_key: String,
}

/// What to create. Names are validated before anything is sent (RFC 1123 host names, as
/// Hetzner requires), and labels against Hetzner's label syntax.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSpec {
    /// Server name, also its host name: 1-63 chars of `a-z0-9-`, not starting or ending
    /// with `-`.
    pub name: String,
    /// Server type name (`cx22`).
    pub server_type: String,
    /// Location name (`nbg1`).
    pub location: String,
    /// Image name (`debian-12`).
    pub image: String,
    /// Names of SSH keys already registered (see [`Provider::ensure_ssh_key`]).
    pub ssh_keys: Vec<String>,
    /// Extra labels; [`MANAGED_BY_LABEL`] is always added.
    pub labels: BTreeMap<String, String>,
}

/// A server's life-cycle state as the provider reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerStatus {
    /// Being created.
    Initializing,
    /// Booting.
    Starting,
    /// Up.
    Running,
    /// Shutting down.
    Stopping,
    /// Powered off.
    Off,
    /// Being deleted.
    Deleting,
    /// Moving between hosts.
    Migrating,
    /// Being rebuilt from an image.
    Rebuilding,
    /// The provider does not know.
    Unknown,
}

/// A server as the provider sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderServer {
    /// The provider's id.
    pub id: ServerId,
    /// Name (and host name).
    pub name: String,
    /// State.
    pub status: ServerStatus,
    /// Public IPv4, if it has one.
    pub ipv4: Option<Ipv4Addr>,
    /// Public IPv6 network (`2a01:4f8::/64`), if any.
    pub ipv6_network: Option<String>,
    /// First address of the IPv6 network (what a host usually answers on).
    pub ipv6: Option<Ipv6Addr>,
    /// Server type name.
    pub server_type: String,
    /// Location name.
    pub location: String,
    /// Image name it was created from, if the image has a name.
    pub image: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Creation time (RFC 3339).
    pub created: String,
}

/// Status of an asynchronous provider action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionStatus {
    /// Still going.
    Running,
    /// Done.
    Success,
    /// Failed.
    Error,
}

/// One progress report of a long provider action, for job progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionProgress {
    /// The provider's action id.
    pub action_id: i64,
    /// What it does (`create_server`, `start_server`, `delete_server`...).
    pub command: String,
    /// Percent done, 0..=100.
    pub progress: u8,
    /// Its status.
    pub status: ActionStatus,
}

/// The progress callback of long operations. Called at least once per poll, and once with
/// the final state.
pub type ProgressFn = dyn Fn(ActionProgress) + Send + Sync;

/// A provider-level firewall, which Docker cannot bypass (unlike UFW on the host).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirewallSpec {
    /// Firewall name (same rules as server names).
    pub name: String,
    /// TCP ports open to the world (IPv4 and IPv6); everything else inbound is dropped.
    pub tcp_ports: Vec<u16>,
    /// Ports open to some addresses only (the other nodes of a cluster).
    #[serde(default)]
    pub peer_rules: Vec<PeerRule>,
}

/// A port open to a few addresses only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRule {
    pub protocol: PeerProtocol,
    pub port: u16,
    pub sources: Vec<std::net::IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerProtocol {
    Tcp,
    Udp,
}

impl FirewallSpec {
    /// The firewall every managed server gets: SSH, HTTP and HTTPS.
    pub fn ssh_and_web(name: impl Into<String>) -> Self {
        FirewallSpec {
            name: name.into(),
            tcp_ports: vec![22, 80, 443],
            peer_rules: Vec::new(),
        }
    }
}

/// A firewall as the provider sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firewall {
    /// The provider's id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// TCP ports open inbound.
    pub tcp_ports: Vec<u16>,
    /// Servers it is applied to.
    pub applied_to: Vec<ServerId>,
}

/// What the core must know of a provider before it holds a client: where its token lives,
/// what to tell a user whose token it rejects, and what it can do. Each provider states its
/// own, so the core names none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderProfile {
    /// The vault key of the provider's API token.
    pub token_secret: &'static str,
    /// What a token needs, said when the provider rejects one being configured.
    pub token_hint: &'static str,
    /// Whether it keeps firewalls in front of its servers (`ensure_firewall`,
    /// `delete_firewall`); without them the server's own ufw is the only filter.
    pub firewalls: bool,
}

/// A cloud provider: sizes and places to choose from, and the life cycle of servers.
///
/// Every method is idempotent where the operation allows it (check, then apply), so a job
/// step can be retried: `ensure_*` reuse what exists, `create_server` adopts a managed server
/// of the same name instead of creating a second one, deleting a missing server is a success.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Provider: Send + Sync {
    /// Locations servers can be created in.
    async fn list_locations(&self) -> Result<Vec<Location>>;

    /// Server types with their prices and architecture.
    async fn list_server_types(&self) -> Result<Vec<ServerType>>;

    /// System images (distributions) available to create servers from.
    async fn list_images(&self) -> Result<Vec<Image>>;

    /// Registers a public key under `name`, or returns the registered key with the same
    /// fingerprint (whatever its name). Fails with `NameTaken` if `name` holds another key.
    async fn ensure_ssh_key(&self, name: &str, public_key: &str) -> Result<SshKey>;

    /// Creates a server and waits until its create action (and the start that follows) is
    /// done, reporting progress. If a server with this name and the managed-by label exists,
    /// it is returned instead, once it has finished starting (a retried step or a retried
    /// request never creates two); a same-name server without the label is `NameTaken`.
    async fn create_server(
        &self,
        spec: &ServerSpec,
        progress: &ProgressFn,
    ) -> Result<ProviderServer>;

    /// The managed server with this name, or `None`.
    async fn find_server(&self, name: &str) -> Result<Option<ProviderServer>>;

    /// Deletes a server and waits for the deletion to finish. A missing server is a success.
    async fn delete_server(&self, id: &ServerId, progress: &ProgressFn) -> Result<()>;

    /// Creates the firewall if missing, sets its rules to the spec if they differ, and
    /// applies it to the server if it is not already.
    async fn ensure_firewall(&self, spec: &FirewallSpec, server: &ServerId) -> Result<Firewall>;

    /// Deletes the firewall with this name. None with that name is a success. Fails (the
    /// provider's `resource_in_use`) while it is still applied to a server.
    async fn delete_firewall(&self, name: &str) -> Result<()>;

    /// Deletes the SSH key with this name. None with that name is a success.
    async fn delete_ssh_key(&self, name: &str) -> Result<()>;
}
