//! [`PortainerPlatform`]: a [`ContainerPlatform`] whose stacks Portainer owns (created,
//! updated and deleted through its API), everything else through the SSH runtime of the same
//! server; and [`PortainerPlatform::connect_over_ssh`], which reaches Portainer from the
//! server itself through an SSH tunnel ([`crate::tunnel`]) rather than over the internet.

use std::sync::Arc;
use std::time::Duration;

use crate::command::{NameKind, validate_name};
use crate::executor::RemoteExecutor;
use crate::platform::{ContainerPlatform, PlatformError, StackSpec};
use crate::portainer::{PortainerAuth, PortainerClient, PortainerError};
use crate::tunnel::LocalForward;

/// Where Portainer answers, as the server sees it: the tunnel opens to `host:port` from the
/// server, and the client speaks plain HTTP to Portainer itself or HTTPS to the proxy in front
/// of it (`tls_name` then is the name its certificate is checked against, also the routed
/// `Host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortainerAddress {
    pub host: String,
    pub port: u16,
    pub tls_name: Option<String>,
}

impl PortainerAddress {
    /// Portainer behind the server's Traefik: `https://NAME` through the server's own port 443.
    pub fn behind_proxy(name: &str) -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 443,
            tls_name: Some(name.to_string()),
        }
    }

    /// Portainer's own plain HTTP port at `host:port` on the server.
    pub fn direct(host: &str, port: u16) -> Self {
        Self {
            host: host.to_string(),
            port,
            tls_name: None,
        }
    }
}

impl std::fmt::Display for PortainerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tls_name {
            Some(name) => write!(f, "https://{name} via {}:{}", self.host, self.port),
            None => write!(f, "http://{}:{}", self.host, self.port),
        }
    }
}

/// Stacks owned by Portainer on one endpoint; the rest through `runtime` (see the module docs).
pub struct PortainerPlatform {
    client: Arc<PortainerClient>,
    endpoint_id: i64,
    swarm_id: String,
    runtime: Arc<dyn ContainerPlatform>,
    /// The tunnel the client's requests go through, when reached over SSH; closed on drop.
    forward: Option<LocalForward>,
}

impl std::fmt::Debug for PortainerPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortainerPlatform")
            .field("endpoint_id", &self.endpoint_id)
            .field("swarm_id", &self.swarm_id)
            .field("tunnel", &self.forward.as_ref().map(LocalForward::addr))
            .finish_non_exhaustive()
    }
}

impl PortainerPlatform {
    /// Logs in (so a wrong password fails here, before anything changes), then discovers the
    /// Docker endpoint and its Swarm id.
    pub async fn connect(
        client: Arc<PortainerClient>,
        runtime: Arc<dyn ContainerPlatform>,
    ) -> Result<Self, PortainerError> {
        client.login().await?;
        let endpoint = client.docker_endpoint().await?;
        let swarm_id = client.swarm_id(endpoint.id).await?;
        Ok(Self {
            client,
            endpoint_id: endpoint.id,
            swarm_id,
            runtime,
            forward: None,
        })
    }

    /// [`PortainerPlatform::connect`] to Portainer at `address` on the server of `executor`,
    /// every request through an SSH tunnel of that connection: Portainer's API needs no port
    /// open to the world for this.
    pub async fn connect_over_ssh(
        executor: Arc<dyn RemoteExecutor>,
        address: &PortainerAddress,
        auth: PortainerAuth,
        runtime: Arc<dyn ContainerPlatform>,
    ) -> Result<Self, PortainerError> {
        let transport = |reason: String| PortainerError::Transport {
            url: address.to_string(),
            reason,
        };
        let forward = LocalForward::start(executor, &address.host, address.port)
            .await
            .map_err(|e| transport(e.to_string()))?;
        let local = forward.addr();
        let builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(10))
            // A proxy from the environment would take the request away from the tunnel.
            .no_proxy();
        let (base, builder) = match &address.tls_name {
            // The name resolves to the tunnel whatever DNS says; TLS still checks it.
            Some(name) => (
                format!("https://{name}:{}", local.port()),
                builder.resolve(name, local),
            ),
            None => (format!("http://{local}"), builder),
        };
        let http = builder.build().map_err(|e| transport(e.to_string()))?;
        let client = Arc::new(PortainerClient::with_http(&base, auth, http)?);
        // The local end's port means nothing to the user: a transport error names the address.
        let mut platform = Self::connect(client, runtime).await.map_err(|e| match e {
            PortainerError::Transport { reason, .. } => transport(reason),
            other => other,
        })?;
        platform.forward = Some(forward);
        Ok(platform)
    }

    /// The client this platform speaks through (for reading Portainer's own records).
    pub fn client(&self) -> &Arc<PortainerClient> {
        &self.client
    }

    pub fn endpoint_id(&self) -> i64 {
        self.endpoint_id
    }

    pub fn swarm_id(&self) -> &str {
        &self.swarm_id
    }
}

// Stacks through Portainer's API; everything else through the SSH runtime, which reads and
// changes the same swarm: Portainer has no call for a stack's volumes (its data), keeps the
// stack file it was given last while the swarm's rollback restores the services (the next
// deploy through Portainer replaces both), and its log endpoint is the engine's.
crate::forward_platform! {
    impl for PortainerPlatform => runtime;
    forward ensure_network, ensure_secrets, remove_stack_volumes, remove_secrets, stack_status,
        wait_healthy, rollback_stack, exec_in_service, service_logs, follow_service_logs;

    async fn deploy_stack(&self, stack: &StackSpec) -> Result<(), PlatformError> {
        let name = validate_name(NameKind::Stack, &stack.name)?;
        crate::compose::validate_stack(&stack.compose_yaml)?;
        self.runtime.ensure_secrets(&stack.secrets).await?;
        match self
            .client
            .stack_by_name(name.as_str(), &self.swarm_id)
            .await?
        {
            Some(existing) => {
                self.client
                    .update_stack(existing.id, self.endpoint_id, &stack.compose_yaml)
                    .await?;
            }
            None => {
                self.client
                    .create_swarm_stack(
                        self.endpoint_id,
                        &self.swarm_id,
                        name.as_str(),
                        &stack.compose_yaml,
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn remove_stack(&self, name: &str) -> Result<(), PlatformError> {
        let name = validate_name(NameKind::Stack, name)?;
        if let Some(existing) = self
            .client
            .stack_by_name(name.as_str(), &self.swarm_id)
            .await?
        {
            self.client
                .delete_stack(existing.id, self.endpoint_id)
                .await?;
        }
        // Portainer returns once `docker stack rm` did; the swarm removes services and
        // networks after that. The runtime's removal is idempotent and waits for them.
        self.runtime.remove_stack(name.as_str()).await
    }
}
