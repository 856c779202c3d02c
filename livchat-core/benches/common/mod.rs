//! What the fleet benches share: their knobs from the environment, percentiles, a setup job,
//! and the Cloudflare client pointed at the fake.
#![allow(
    dead_code,
    reason = "each bench is a crate of its own and uses part of this module"
)]

use std::sync::Arc;
use std::time::Duration;

/// A number from the environment, or `default` when unset; a value that is not a number
/// stops the bench rather than measuring something else.
pub fn env_usize(var: &str, default: usize) -> usize {
    match std::env::var(var) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// Nearest-rank percentile.
pub fn percentile(values: &[Duration], p: usize) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut v = values.to_vec();
    v.sort();
    let rank = (p * v.len()).div_ceil(100).max(1);
    v[rank - 1]
}

/// Records and runs one setup job in the fake Cloudflare's zone (the first setup and the
/// re-run are the same request).
pub async fn setup_job(
    orch: &Arc<livchat_core::Orchestrator>,
    name: String,
) -> livchat_core::Result<livchat_store::JobRecord> {
    let job = orch.start_setup_server(livchat_core::SetupServerParams {
        dns: Default::default(),
        name,
        zone: fixtures::fake_cloudflare::ZONE.into(),
        subdomain: None,
    })?;
    orch.run_job(&job.id).await
}

/// The orchestrator's DNS factory, reaching the fake Cloudflare at `endpoint`.
pub fn cloudflare_at(endpoint: String) -> livchat_core::orchestrator::DnsFactory {
    Arc::new(move |token| {
        let config = livchat_providers::CloudflareConfig::from_lookup(|k| {
            (k == "LIVCHAT_CLOUDFLARE_ENDPOINT").then(|| endpoint.clone())
        });
        Ok(
            Arc::new(livchat_providers::CloudflareDns::new(token, config).unwrap())
                as Arc<dyn livchat_providers::DnsClient>,
        )
    })
}
