//! Binding and the service's life: the loopback rule (another address needs TLS or an explicit
//! `--insecure-http`), plain HTTP or rustls, and the shutdown on SIGTERM/SIGINT that stops
//! accepting, lets requests in flight finish within a grace period, and leaves jobs still
//! running recorded as running by this process, so the next start finds them `interrupted`
//! and `POST /api/jobs/{id}/retry` resumes them.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use livchat_core::Orchestrator;

use crate::service::{Options, app};

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct Listen {
    pub address: String,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub insecure_http: bool,
    pub shutdown_grace: Duration,
}

/// Resolves the address and refuses a non-loopback one without TLS or `--insecure-http`.
pub fn resolve(listen: &Listen) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = listen
        .address
        .to_socket_addrs()
        .with_context(|| {
            format!(
                "invalid --listen `{}`: use HOST:PORT, e.g. 127.0.0.1:8420",
                listen.address
            )
        })?
        .collect();
    let Some(first) = addrs.first().copied() else {
        bail!(
            "invalid --listen `{}`: it resolves to no address",
            listen.address
        );
    };
    let loopback = addrs.iter().all(|a| a.ip().is_loopback());
    if !loopback && listen.tls.is_none() && !listen.insecure_http {
        bail!(
            "refusing to listen on {first} without TLS: the bearer token would cross the network \
             in clear text; give --tls-cert and --tls-key, put a TLS proxy in front and pass \
             --insecure-http, or listen on 127.0.0.1"
        );
    }
    Ok(first)
}

/// Runs the service until SIGTERM or SIGINT.
pub async fn run(orch: Arc<Orchestrator>, listen: Listen, options: Options) -> Result<()> {
    let addr = resolve(&listen)?;
    let tls = match &listen.tls {
        Some((cert, key)) => {
            // One provider for the process: the ring one rustls is built with here.
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(
                RustlsConfig::from_pem_file(cert, key)
                    .await
                    .with_context(|| {
                        format!(
                            "could not load --tls-cert {} / --tls-key {}",
                            cert.display(),
                            key.display()
                        )
                    })?,
            )
        }
        None => None,
    };
    let listener =
        TcpListener::bind(addr).with_context(|| format!("could not listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Tests and scripts read the real port (with `:0`) from this line.
    tracing::info!("listening on {scheme}://{bound}");
    eprintln!("livchat-api: listening on {scheme}://{bound}");

    let make_service = app(orch.clone(), &options).into_make_service();
    let grace = listen.shutdown_grace;
    match tls {
        Some(config) => {
            let handle = Handle::new();
            tokio::spawn(stop_on_signal(handle.clone(), grace));
            axum_server::from_tcp_rustls(listener, config)?
                .handle(handle)
                .serve(make_service)
                .await?;
        }
        None => {
            let handle = Handle::new();
            tokio::spawn(stop_on_signal(handle.clone(), grace));
            axum_server::from_tcp(listener)?
                .handle(handle)
                .serve(make_service)
                .await?;
        }
    }
    let running: Vec<String> = orch
        .jobs()
        .list(Some(livchat_core::model::JobStatus::Running))
        .unwrap_or_default()
        .into_iter()
        .map(|j| j.id)
        .collect();
    tracing::info!(
        ?running,
        "stopped; jobs still running are left recorded and show as interrupted at the next start"
    );
    Ok(())
}

async fn stop_on_signal<A: axum_server::Address>(handle: Handle<A>, grace: Duration) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("could not install signal handlers; stop the service with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!(
        grace_secs = grace.as_secs(),
        "stopping: no new connections, requests in flight may finish"
    );
    handle.graceful_shutdown(Some(grace));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(address: &str, tls: bool, insecure: bool) -> Listen {
        Listen {
            address: address.into(),
            tls: tls.then(|| ("c".into(), "k".into())),
            insecure_http: insecure,
            shutdown_grace: Duration::from_secs(1),
        }
    }

    #[test]
    fn loopback_is_allowed_and_other_addresses_need_tls_or_the_explicit_flag() {
        assert!(resolve(&listen("127.0.0.1:8420", false, false)).is_ok());
        assert!(resolve(&listen("[::1]:8420", false, false)).is_ok());
        let e = resolve(&listen("0.0.0.0:8420", false, false)).unwrap_err();
        assert!(e.to_string().contains("without TLS"), "{e}");
        assert!(resolve(&listen("0.0.0.0:8420", true, false)).is_ok());
        assert!(resolve(&listen("0.0.0.0:8420", false, true)).is_ok());
        assert!(resolve(&listen("nonsense", false, false)).is_err());
    }
}
