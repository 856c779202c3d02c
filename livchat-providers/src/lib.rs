//! Cloud providers and DNS: `Provider` (Hetzner Cloud, on the `hcloud` crate) and `DnsClient`
//! (Cloudflare, on the `cloudflare` crate).
//!
//! Owns: the provider and DNS vocabularies, the real clients, their retry policy (connection
//! errors, 429 and 5xx except 501, `Retry-After`, capped exponential backoff, bounded attempts)
//! and typed errors, and the endpoint overrides `LIVCHAT_HETZNER_ENDPOINT` and
//! `LIVCHAT_CLOUDFLARE_ENDPOINT`.
//!
//! Must not touch: SSH, the local store or vault (tokens are handed in as secrets), app
//! definitions, or any other internal crate.
