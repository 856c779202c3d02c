//! Where an orchestrator finds its home and how it reaches the outside world. Frontends build a
//! [`Config`] from their flags and the environment; the core reads no environment of its own
//! beyond what the leaf crates document (their API endpoint overrides).

use std::path::PathBuf;
use std::time::Duration;

/// How stacks reach each other inside the overlay network.
pub use livchat_apps::EndpointMode;
/// Where Docker Engine comes from during setup.
pub use livchat_remote::DockerSource;

/// The configuration of an [`crate::Orchestrator`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The home directory (`$LIVCHAT_HOME`, default `~/.livchat`).
    pub home: PathBuf,
    /// `--vault-password-file`, when given.
    pub vault_password_file: Option<PathBuf>,
    /// `LIVCHAT_APPS_DIR`: extra app definition directories, colon-separated.
    pub apps_dirs: Option<String>,
    /// `vip` (default) or `dnsrr` for kernels without IPVS (`LIVCHAT_ENDPOINT_MODE`).
    pub endpoint_mode: EndpointMode,
    /// Docker from Docker's repository (default) or the distribution (`LIVCHAT_DOCKER_SOURCE`).
    pub docker_source: DockerSource,
    /// How long waiting for a new server's SSH may take.
    pub ssh_wait: Duration,
    /// How long one app may take to become healthy.
    pub health_timeout: Duration,
    /// A job on a server busy with another job waits for its turn (`--wait-turn`) instead of
    /// being refused.
    pub wait_turn: bool,
    /// The user's ssh-agent (`SSH_AUTH_SOCK`), for servers added with `--ssh-agent`.
    pub ssh_agent_socket: Option<PathBuf>,
    /// The DNS server that checks names of servers with manual DNS
    /// (`LIVCHAT_DNS_RESOLVER=IP:PORT`; default: the first nameserver of /etc/resolv.conf).
    pub dns_resolver: Option<std::net::SocketAddr>,
    /// Where the server reaches Portainer for app stacks, instead of its Traefik route
    /// (`https://<portainer domain>` through the server's port 443):
    /// `LIVCHAT_PORTAINER_ADDRESS=IP:PORT`, Portainer's plain HTTP port as the server sees it
    /// (a Portainer published on the server's loopback; the tests' fake Portainer).
    pub portainer_address: Option<livchat_remote::PortainerAddress>,
    /// The process serves many requests over a long life (the REST service, the MCP server):
    /// the store watches the state file, so reading an unchanged state costs no file read.
    pub long_lived: bool,
}

impl Config {
    /// A configuration for `home` with the defaults.
    pub fn new(home: impl Into<PathBuf>) -> Self {
        Self {
            home: home.into(),
            vault_password_file: None,
            apps_dirs: None,
            endpoint_mode: EndpointMode::Vip,
            docker_source: DockerSource::Official,
            ssh_wait: Duration::from_secs(300),
            health_timeout: Duration::from_secs(600),
            wait_turn: false,
            ssh_agent_socket: None,
            dns_resolver: None,
            portainer_address: None,
            long_lived: false,
        }
    }

    /// Applies the documented environment variables (`SSH_AUTH_SOCK`, `LIVCHAT_DNS_RESOLVER`,
    /// `LIVCHAT_APPS_DIR`,
    /// `LIVCHAT_ENDPOINT_MODE=dnsrr|vip`, `LIVCHAT_DOCKER_SOURCE=official|distribution`,
    /// `LIVCHAT_HEALTH_TIMEOUT_SECS`, `LIVCHAT_SSH_WAIT_SECS`, `LIVCHAT_PORTAINER_ADDRESS`)
    /// through `lookup`.
    pub fn with_env(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::CoreError> {
        if let Some(sock) = lookup("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) {
            self.ssh_agent_socket = Some(PathBuf::from(sock));
        }
        if let Some(addr) = lookup("LIVCHAT_DNS_RESOLVER") {
            self.dns_resolver = Some(addr.parse().map_err(|_| {
                crate::CoreError::invalid(
                    "LIVCHAT_DNS_RESOLVER",
                    format!("`{addr}` is not IP:PORT (e.g. 127.0.0.1:53)"),
                )
            })?);
        }
        if let Some(addr) = lookup("LIVCHAT_PORTAINER_ADDRESS") {
            let parsed = addr
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
                .filter(|(host, port)| *port != 0 && host.parse::<std::net::IpAddr>().is_ok());
            let (host, port) = parsed.ok_or_else(|| {
                crate::CoreError::invalid(
                    "LIVCHAT_PORTAINER_ADDRESS",
                    format!("`{addr}` is not IP:PORT (e.g. 127.0.0.1:9000)"),
                )
            })?;
            self.portainer_address = Some(livchat_remote::PortainerAddress::direct(host, port));
        }
        if let Some(dirs) = lookup("LIVCHAT_APPS_DIR") {
            self.apps_dirs = Some(dirs);
        }
        if let Some(mode) = lookup("LIVCHAT_ENDPOINT_MODE") {
            self.endpoint_mode = match mode.as_str() {
                "vip" => EndpointMode::Vip,
                "dnsrr" => EndpointMode::Dnsrr,
                other => {
                    return Err(crate::CoreError::invalid(
                        "LIVCHAT_ENDPOINT_MODE",
                        format!("`{other}` is not allowed; use vip or dnsrr"),
                    ));
                }
            };
        }
        if let Some(source) = lookup("LIVCHAT_DOCKER_SOURCE") {
            self.docker_source = match source.as_str() {
                "official" => DockerSource::Official,
                "distribution" => DockerSource::Distribution,
                other => {
                    return Err(crate::CoreError::invalid(
                        "LIVCHAT_DOCKER_SOURCE",
                        format!("`{other}` is not allowed; use official or distribution"),
                    ));
                }
            };
        }
        for (var, slot) in [
            ("LIVCHAT_HEALTH_TIMEOUT_SECS", &mut self.health_timeout),
            ("LIVCHAT_SSH_WAIT_SECS", &mut self.ssh_wait),
        ] {
            if let Some(v) = lookup(var) {
                let secs: u64 = v.parse().map_err(|_| {
                    crate::CoreError::invalid(var, format!("`{v}` is not a number of seconds"))
                })?;
                *slot = Duration::from_secs(secs);
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(var: &str, value: &str) -> Result<Config, crate::CoreError> {
        Config::new("/home").with_env(|k| (k == var).then(|| value.to_string()))
    }

    #[test]
    fn portainer_address_is_an_ip_and_a_port_as_the_server_sees_them() {
        let config = with("LIVCHAT_PORTAINER_ADDRESS", "127.0.0.1:9000").unwrap();
        assert_eq!(
            config.portainer_address,
            Some(livchat_remote::PortainerAddress::direct("127.0.0.1", 9000))
        );
        for bad in [
            "portainer:9000",
            "127.0.0.1",
            "127.0.0.1:0",
            "127.0.0.1:x",
            ";rm:1",
        ] {
            let err = with("LIVCHAT_PORTAINER_ADDRESS", bad).unwrap_err();
            assert!(
                err.to_string().contains("LIVCHAT_PORTAINER_ADDRESS"),
                "{bad}: {err}"
            );
        }
        assert_eq!(Config::new("/home").portainer_address, None);
    }
}
