//! Cloud providers and DNS: `Provider` (Hetzner Cloud, on the `hcloud` crate), `DnsClient`
//! (Cloudflare, on the `cloudflare` crate) and `NameResolver` (a minimal DNS client asking one
//! configured server whether names resolve, for records the user creates by hand).
//!
//! Owns: the provider and DNS vocabularies, the real clients, their retry policy (connection
//! errors, 429 and 5xx except 501, `Retry-After`, capped exponential backoff, bounded attempts)
//! and typed errors, and the endpoint overrides `LIVCHAT_HETZNER_ENDPOINT` and
//! `LIVCHAT_CLOUDFLARE_ENDPOINT`.
//!
//! Must not touch: SSH, the local store or vault (tokens are handed in as secrets), app
//! definitions, or any other internal crate.
//!
//! ```text
//!  livchat-core ── Arc<dyn Provider> ──▶ HetznerProvider ─┐   hcloud models (wire format)
//!              └─ Arc<dyn DnsClient> ─▶ CloudflareDns ───┤   cloudflare endpoint specs
//!                                                        ▼
//!                                  http::Transport: bearer token (SecretString), timeouts,
//!                                  RetryPolicy (Retry-After, RateLimit-*, backoff)
//! ```
//!
//! Architecture invariant: requests leave through `http::Transport` only. The SDKs define
//! what is sent and how answers decode, but their own senders drop response headers
//! (`hcloud::apis::Error::ResponseError` keeps status and body only, cloudflare's
//! `ApiFailure::Error` likewise), so they could not honour `Retry-After`.
//!
//! Entry points for the core: [`HetznerProvider::from_env`] and [`CloudflareDns::from_env`]
//! (endpoint overrides from the environment), or `new` with an explicit config.

pub mod cloudflare;
pub mod dns;
pub mod error;
pub mod hetzner;
mod http;
/// The workspace's one set of name rules, compiled here by path (a leaf depends on no other
/// internal crate): see its module docs.
#[allow(
    dead_code,
    reason = "each leaf uses only the rules of the names it checks"
)]
#[path = "../../livchat-store/src/names.rs"]
mod names;
pub mod provider;
pub mod resolve;
pub mod retry;
pub mod validate;

pub use cloudflare::{CloudflareConfig, CloudflareDns, RecordContent};
pub use dns::{Change, DnsClient, DnsRecord, Ensured, RecordOptions, RecordType, Zone};
pub use error::{CloudError, Result, Service};
pub use hetzner::{HETZNER_TOKEN, HetznerConfig, HetznerProvider};
pub use provider::{
    ActionProgress, ActionStatus, Architecture, Firewall, FirewallSpec, Image, ImageKind, Location,
    MANAGED_BY_LABEL, PeerProtocol, PeerRule, Price, ProgressFn, Provider, ProviderProfile,
    ProviderServer, ServerId, ServerSpec, ServerStatus, ServerType, SshKey,
};
pub use resolve::{NameResolver, ResolveError, UdpResolver};
pub use retry::RetryPolicy;

#[cfg(feature = "mock")]
pub use resolve::MockNameResolver;

#[cfg(feature = "mock")]
pub use dns::MockDnsClient;
#[cfg(feature = "mock")]
pub use provider::MockProvider;
