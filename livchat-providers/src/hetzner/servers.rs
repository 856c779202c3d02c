//! Servers: created from a checked spec (a create whose answer was lost is adopted, not
//! repeated), found by id or name (only those with our label), listed, powered on and off,
//! and deleted. A server of the requested name without our label is never touched.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use hcloud::models;
use reqwest::{Method, StatusCode};

use crate::error::{CloudError, Result, Service};
use crate::http::{Failure, Retrier};
use crate::provider::{
    MANAGED_BY_LABEL, ProgressFn, Provider, ProviderServer, ServerId, ServerSpec, ServerStatus,
};
use crate::validate;

use super::HetznerProvider;
use super::client::{is_managed, json, managed_labels};
use super::errors::api_error;

pub(super) fn parse_id(id: &ServerId) -> Result<i64> {
    id.0.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| CloudError::InvalidInput {
            field: "server id",
            reason: format!("{:?} is not a Hetzner server id (a positive integer)", id.0),
        })
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

impl HetznerProvider {
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
}

pub(super) async fn create(
    hetzner: &HetznerProvider,
    spec: &ServerSpec,
    progress: &ProgressFn,
) -> Result<ProviderServer> {
    validate::host_name("name", &spec.name)?;
    validate::labels(&spec.labels)?;
    if let Some(s) = hetzner.adoptable(&spec.name).await? {
        return Ok(to_server(hetzner.wait_server_settled(s.id).await?));
    }
    hetzner.check_spec(spec).await?;
    let id = match hetzner.post_create(spec).await? {
        Ok(created) => {
            let id = created.server.id;
            hetzner.wait_action(*created.action, progress).await?;
            hetzner.wait_actions(created.next_actions, progress).await?;
            id
        }
        Err(adopted) => return Ok(to_server(hetzner.wait_server_settled(adopted.id).await?)),
    };
    hetzner
        .get_server_raw(id)
        .await?
        .map(to_server)
        .ok_or_else(|| CloudError::NotFound {
            service: Service::Hetzner,
            what: format!("server {id} right after creating it"),
        })
}

pub(super) async fn find(hetzner: &HetznerProvider, name: &str) -> Result<Option<ProviderServer>> {
    validate::host_name("name", name)?;
    Ok(hetzner
        .find_server_raw(name)
        .await?
        .filter(|s| is_managed(&s.labels))
        .map(to_server))
}

pub(super) async fn delete(
    hetzner: &HetznerProvider,
    id: &ServerId,
    progress: &ProgressFn,
) -> Result<()> {
    let n = parse_id(id)?;
    let operation = format!("delete server {n}");
    let reply = hetzner
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
    let got: models::DeleteServerResponse = hetzner.http.decode(&operation, &reply)?;
    match got.action {
        Some(a) => hetzner.wait_action(*a, progress).await,
        None => Ok(()),
    }
}
