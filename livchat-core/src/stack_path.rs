//! Which way an app's stack reaches a server's swarm: `docker stack deploy` over SSH, or
//! Portainer's stack API (so the stack is Portainer's own, editable in its UI).
//!
//! ```text
//!   server.platform (auto | ssh | portainer)      state: is Portainer running there?
//!   the app (infrastructure or not)               vault: is its admin password there?
//!   the app's deployment record (who owns it)
//!                         \            |            /
//!                          choose() -> Choice { via, why }
//!                                      |
//!        DeployedVia::Ssh: SwarmOverSsh   DeployedVia::Portainer: PortainerPlatform
//!                                          (tunnel over the same SSH connection)
//! ```
//!
//! Only sending and removing a stack differ; secrets, networks, health waits, `docker exec`,
//! volumes and logs go over SSH on both paths (Portainer's platform delegates them).
//! `choose` is pure; the orchestrator gathers its inputs from the state and the vault.

use std::sync::Arc;

use livchat_apps::Category;
use livchat_remote::{ContainerPlatform, PortainerAddress, PortainerAuth, PortainerPlatform};
use livchat_store::{DeployedVia, DeploymentStatus, PlatformChoice};
use secrecy::SecretString;

use crate::error::{CoreError, Result};
use crate::orchestrator::Orchestrator;

/// The user Portainer's `--admin-password-file` creates.
pub const PORTAINER_ADMIN: &str = "admin";

/// What runs Portainer on a server, as the state and the vault say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortainerState {
    /// Deployed and healthy (a deployment is recorded running only after its health wait).
    Running {
        app: String,
        domain: Option<String>,
        password_in_vault: bool,
    },
    /// Deployed by the same job, before the app (its password generated then).
    ComingFirst { app: String },
    /// Not deployed.
    Absent,
}

/// The path a stack takes, and why, in words for plans and job logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub via: DeployedVia,
    pub why: String,
}

/// The vault key of the admin password of the app that runs Portainer.
pub fn admin_password_key(app: &str) -> String {
    format!("app.{app}.admin_password")
}

/// Chooses the path of one app's stack; an error when the server is set to Portainer and
/// Portainer cannot be used.
///
/// An app already deployed keeps the path that deployed it, whatever the setting: the other
/// path would deploy its stack a second time (Portainer checks a new stack's name against the
/// stacks the swarm runs, and an SSH deploy of a Portainer stack leaves Portainer's copy of the
/// file stale).
pub fn choose(
    setting: PlatformChoice,
    is_infrastructure: bool,
    deployed_via: Option<DeployedVia>,
    portainer: &PortainerState,
) -> std::result::Result<Choice, String> {
    let ssh = |why: String| {
        Ok(Choice {
            via: DeployedVia::Ssh,
            why,
        })
    };
    if is_infrastructure {
        return ssh(
            "the infrastructure bundle always goes over SSH (Portainer cannot deploy itself)"
                .into(),
        );
    }
    if let Some(via) = deployed_via {
        return Ok(Choice {
            via,
            why: format!(
                "already deployed through {}: its redeploys and removal go the same way",
                words(via)
            ),
        });
    }
    let usable = match portainer {
        PortainerState::Running {
            app,
            password_in_vault: true,
            ..
        } => Ok(format!("Portainer ({app}) runs on the server")),
        PortainerState::Running { app, .. } => Err(format!(
            "Portainer's admin password is not in the vault ({})",
            admin_password_key(app)
        )),
        PortainerState::ComingFirst { app } => {
            Ok(format!("Portainer ({app}) is deployed first by this job"))
        }
        PortainerState::Absent => {
            Err("the infrastructure bundle (Portainer) is not deployed on the server".into())
        }
    };
    match (setting, usable) {
        (PlatformChoice::Ssh, _) => ssh("the server is set to --platform ssh".into()),
        (_, Ok(why)) => Ok(Choice {
            via: DeployedVia::Portainer,
            why,
        }),
        (PlatformChoice::Auto, Err(why)) => ssh(why),
        (PlatformChoice::Portainer, Err(why)) => Err(format!(
            "the server is set to --platform portainer, but {why}; deploy the infrastructure bundle first, or `livchat server set-platform SERVER ssh`"
        )),
    }
}

fn words(via: DeployedVia) -> &'static str {
    match via {
        DeployedVia::Ssh => "SSH (docker stack deploy)",
        DeployedVia::Portainer => "Portainer's API",
    }
}

/// A plan or log line: `stack X on S through ...: why`.
pub fn describe(stack: &str, server: &str, choice: &Choice) -> String {
    let how = match choice.via {
        DeployedVia::Ssh => "over SSH (docker stack deploy)",
        DeployedVia::Portainer => "through Portainer's API (tunnel over SSH), owned by Portainer",
    };
    format!("stack {stack} on {server} {how}: {}", choice.why)
}

impl Orchestrator {
    /// Whether the app belongs to the infrastructure bundle (Traefik, Portainer, the bundle).
    fn is_infrastructure(&self, app: &str) -> Result<bool> {
        Ok(self
            .catalog()?
            .get(app)
            .is_some_and(|d| d.category == Category::Infrastructure))
    }

    /// What runs Portainer on `server`; `coming` are the apps a job deploys before the one
    /// being decided (for plans).
    pub(crate) fn portainer_state(
        &self,
        server: &str,
        coming: &[String],
    ) -> Result<PortainerState> {
        let catalog = self.catalog()?;
        let carries = |app: &str| {
            app == "portainer"
                || catalog
                    .get(app)
                    .is_some_and(|d| d.includes.iter().any(|i| i == "portainer"))
        };
        let state = self.store.load()?;
        let running = state.deployments.get(server).and_then(|m| {
            m.values()
                .find(|d| d.status == DeploymentStatus::Running && carries(&d.app))
        });
        if let Some(d) = running {
            return Ok(PortainerState::Running {
                app: d.app.clone(),
                domain: d.domains.first().cloned(),
                password_in_vault: self.secrets.get(&admin_password_key(&d.app))?.is_some(),
            });
        }
        Ok(match coming.iter().find(|a| carries(a)) {
            Some(app) => PortainerState::ComingFirst { app: app.clone() },
            None => PortainerState::Absent,
        })
    }

    /// The path of `app`'s stack on `server` (see [`choose`]).
    pub(crate) fn stack_choice(
        &self,
        server: &str,
        app: &str,
        coming: &[String],
    ) -> Result<Choice> {
        let record = self.server(server)?;
        let deployed_via = self
            .store
            .load()?
            .deployments
            .get(server)
            .and_then(|m| m.get(app))
            .map(|d| d.via);
        let portainer = self.portainer_state(server, coming)?;
        choose(
            record.platform,
            self.is_infrastructure(app)?,
            deployed_via,
            &portainer,
        )
        .map_err(|why| CoreError::Refused(format!("{app} on {server}: {why}")))
    }

    /// The platform that sends and removes `app`'s stack on `server`, and which it is.
    pub(crate) async fn stack_platform(
        &self,
        server: &str,
        app: &str,
    ) -> Result<(Arc<dyn ContainerPlatform>, Choice)> {
        let choice = self.stack_choice(server, app, &[])?;
        let ssh = self.platform(server).await?;
        if choice.via == DeployedVia::Ssh {
            return Ok((ssh, choice));
        }
        let platform = self.portainer_platform(server, ssh).await?;
        Ok((platform, choice))
    }

    /// Portainer on `server`, logged in with the admin password from the vault, reached
    /// through a tunnel of the server's SSH connection. A refused password is an error that
    /// says nothing was changed: this runs before a deploy changes anything.
    pub(crate) async fn portainer_platform(
        &self,
        server: &str,
        runtime: Arc<dyn ContainerPlatform>,
    ) -> Result<Arc<dyn ContainerPlatform>> {
        let PortainerState::Running { app, domain, .. } = self.portainer_state(server, &[])? else {
            return Err(CoreError::Refused(format!(
                "Portainer is not running on {server}; deploy the infrastructure bundle first, or `livchat server set-platform {server} ssh`"
            )));
        };
        let key = admin_password_key(&app);
        let password: SecretString = self.require_secret(&key)?;
        let address = match (&self.config.portainer_address, domain) {
            (Some(address), _) => address.clone(),
            (None, Some(domain)) => PortainerAddress::behind_proxy(&domain),
            (None, None) => {
                return Err(CoreError::Refused(format!(
                    "{app} on {server} has no domain to reach Portainer at; set LIVCHAT_PORTAINER_ADDRESS, or `livchat server set-platform {server} ssh`"
                )));
            }
        };
        let executor = self.executor(server).await?;
        let auth = PortainerAuth::Password {
            username: PORTAINER_ADMIN.into(),
            password,
        };
        match PortainerPlatform::connect_over_ssh(executor, &address, auth, runtime).await {
            Ok(p) => Ok(Arc::new(p)),
            Err(livchat_remote::PortainerError::Unauthorized { message }) => {
                Err(CoreError::Refused(format!(
                    "Portainer on {server} ({address}) refused the admin password in the vault ({key}): {message}. Nothing was changed. Store the right one with `livchat secrets set {key} --stdin`, or send stacks over SSH with `livchat server set-platform {server} ssh`"
                )))
            }
            Err(e) => Err(CoreError::Platform(format!(
                "could not use Portainer on {server} ({address}): {e}. Nothing was changed; `livchat server set-platform {server} ssh` sends stacks over SSH"
            ))),
        }
    }

    /// `server set-platform`: how the server's app stacks are sent from now on. Apps deployed
    /// already keep the path that deployed them (see [`choose`]).
    pub fn set_server_platform(&self, server: &str, platform: PlatformChoice) -> Result<()> {
        self.server(server)?;
        self.store.update("server set-platform", &mut |s| {
            if let Some(sv) = s.servers.get_mut(server) {
                sv.platform = platform;
            }
            Ok(())
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(password_in_vault: bool) -> PortainerState {
        PortainerState::Running {
            app: "infrastructure".into(),
            domain: Some("portainer.lab.example.com".into()),
            password_in_vault,
        }
    }

    #[test]
    fn auto_uses_portainer_only_once_it_runs_with_its_password_in_the_vault() {
        let auto = PlatformChoice::Auto;
        assert_eq!(
            choose(auto, false, None, &running(true)).unwrap().via,
            DeployedVia::Portainer
        );
        for (state, why) in [
            (
                running(false),
                "not in the vault (app.infrastructure.admin_password)",
            ),
            (PortainerState::Absent, "is not deployed"),
        ] {
            let c = choose(auto, false, None, &state).unwrap();
            assert_eq!(c.via, DeployedVia::Ssh, "{state:?}");
            assert!(c.why.contains(why), "{}", c.why);
        }
        let coming = PortainerState::ComingFirst {
            app: "infrastructure".into(),
        };
        assert_eq!(
            choose(auto, false, None, &coming).unwrap().via,
            DeployedVia::Portainer
        );
    }

    #[test]
    fn the_infrastructure_bundle_always_goes_over_ssh() {
        for setting in [
            PlatformChoice::Auto,
            PlatformChoice::Ssh,
            PlatformChoice::Portainer,
        ] {
            let c = choose(setting, true, None, &running(true)).unwrap();
            assert_eq!(c.via, DeployedVia::Ssh, "{setting:?}");
        }
    }

    #[test]
    fn ssh_setting_wins_over_a_running_portainer() {
        let c = choose(PlatformChoice::Ssh, false, None, &running(true)).unwrap();
        assert_eq!(c.via, DeployedVia::Ssh);
        assert!(c.why.contains("--platform ssh"));
    }

    #[test]
    fn portainer_setting_without_portainer_is_refused_with_the_way_out() {
        let err = choose(
            PlatformChoice::Portainer,
            false,
            None,
            &PortainerState::Absent,
        )
        .unwrap_err();
        assert!(err.contains("set to --platform portainer"), "{err}");
        assert!(err.contains("set-platform SERVER ssh"), "{err}");
        let err = choose(PlatformChoice::Portainer, false, None, &running(false)).unwrap_err();
        assert!(err.contains("admin password is not in the vault"), "{err}");
    }

    #[test]
    fn a_deployed_app_keeps_the_path_that_deployed_it() {
        // Deployed over SSH before Portainer ran: moving it would deploy its stack twice.
        let c = choose(
            PlatformChoice::Auto,
            false,
            Some(DeployedVia::Ssh),
            &running(true),
        )
        .unwrap();
        assert_eq!(c.via, DeployedVia::Ssh);
        assert!(c.why.contains("already deployed through SSH"), "{}", c.why);
        let c = choose(
            PlatformChoice::Ssh,
            false,
            Some(DeployedVia::Portainer),
            &PortainerState::Absent,
        )
        .unwrap();
        assert_eq!(c.via, DeployedVia::Portainer);
    }
}
