//! Bringing your own server: `server add` (every field checked, one connection, the host key
//! trusted only as the caller says, then the key stored and the host key pinned) and
//! `server repin-host-key`. Nothing is recorded when any of it fails.

use std::collections::BTreeMap;
use std::net::IpAddr;

use livchat_remote::{HostKeyPolicy, SshTarget};
use livchat_store::{ProviderKind, ServerRecord, ServerStatus};

use crate::error::{CoreError, Result};
use crate::host_key::{HostKeyOffer, HostKeyTrust, Repinned};
use crate::orchestrator::{
    AddServer, AddedServer, Orchestrator, ssh_key_passphrase_secret, ssh_key_secret, validate_host,
};

impl Orchestrator {
    /// Adds an existing server: checks every field, connects once, has the host key trusted
    /// as `req.host_key` says (never silently), then stores the key in the vault and pins the
    /// host key. Nothing is recorded or stored if any of it fails or the key is declined.
    pub async fn server_add(&self, req: AddServer) -> Result<AddedServer> {
        let AddServer {
            name,
            host,
            port,
            user,
            private_key,
            key_passphrase,
            ssh_agent,
            host_key,
        } = req;
        let name = name.as_str();
        livchat_store::validate_server_name(name)
            .map_err(|r| CoreError::invalid("server name", r))?;
        // The state's own rule, so whatever is accepted here can be stored and read back.
        livchat_store::validate_unix_user(&user).map_err(|r| CoreError::invalid("user", r))?;
        validate_host(&host)?;
        // Swarm advertises an IP address and the A records point at one: a DNS name would be
        // resolved by each step on its own, and could change between them.
        if host.parse::<IpAddr>().is_err() {
            return Err(CoreError::invalid(
                "host",
                format!(
                    "`{host}` is a DNS name; give the server's IP address (`getent ahostsv4 {host}` shows it): Swarm advertises an IP and the DNS records point at it"
                ),
            ));
        }
        if port == 0 {
            return Err(CoreError::invalid("port", "must be 1-65535"));
        }
        let host_key = match host_key {
            Some(HostKeyTrust::Expect(fp)) => HostKeyTrust::Expect(
                crate::host_key::validate_fingerprint("host_key_fingerprint", &fp)?,
            ),
            Some(other) => other,
            None => {
                return Err(CoreError::invalid(
                    "host_key_fingerprint",
                    "the host key cannot be confirmed without a terminal; give its fingerprint, SHA256:... (`--host-key-fingerprint`, or `host_key_fingerprint` over REST and MCP; `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server prints it) or, to trust the key presented on first contact, `--accept-new-host-key` (`accept_new_host_key: true`)",
                ));
            }
        };
        let state = self.store.load()?;
        if state.servers.contains_key(name) {
            return Err(CoreError::Refused(format!(
                "server {name} already exists; delete it first or choose another name"
            )));
        }
        let mut notes = Vec::new();
        for other in state.servers.values().filter(|s| s.host == host) {
            notes.push(format!(
                "server {} already points at {host}: both records manage the same machine, and setting up one renames its host and Swarm node for the other",
                other.name
            ));
        }
        if user != "root" {
            notes.push(format!(
                "{user} is not root: `server exec` works as {user}, but `server setup` needs root (apt, Docker, ufw) and refuses this server; add it with --user root to set it up"
            ));
        }
        let secret_name = ssh_key_secret(name);
        let passphrase_name = ssh_key_passphrase_secret(name);
        let key = match (private_key, ssh_agent) {
            (Some(_), true) => {
                return Err(CoreError::invalid(
                    "--ssh-agent",
                    "give either --key FILE or --ssh-agent, not both",
                ));
            }
            (None, true) => None,
            (Some(k), false) => Some(k),
            (None, false) => Some(self.secrets.get(&secret_name)?.ok_or_else(|| {
                CoreError::invalid(
                    "key",
                    "give --key FILE (an OpenSSH or PEM private key: Ed25519, ECDSA or RSA, with or without a passphrase) or --ssh-agent",
                )
            })?),
        };
        // The key as the connection uses it (decrypted in memory), and the passphrase to keep.
        let (usable_key, passphrase) = match &key {
            Some(k) if livchat_remote::private_key_is_encrypted(k) => {
                let Some(p) = key_passphrase else {
                    return Err(CoreError::invalid(
                        "--key-passphrase-file",
                        "the key is protected by a passphrase; give it on the terminal prompt or with --key-passphrase-file FILE",
                    ));
                };
                let opened = livchat_remote::decrypt_private_key(k, Some(&p))?;
                (Some(opened.private_openssh), Some(p))
            }
            Some(k) => {
                livchat_remote::parse_private_key(k)?;
                (Some(k.clone()), None)
            }
            None => (None, None),
        };
        let target = SshTarget {
            name: name.to_string(),
            host: host.clone(),
            port,
            user: user.clone(),
        };
        let policy = match &host_key {
            HostKeyTrust::Expect(fp) => HostKeyPolicy::Pinned(fp.clone()),
            HostKeyTrust::AcceptNew | HostKeyTrust::Ask(_) => HostKeyPolicy::TrustOnFirstUse,
        };
        let opened = match &usable_key {
            Some(k) => self
                .connector
                .connect(&target, k, &policy)
                .await
                .map(|c| (c, None)),
            None => {
                let socket = self.agent_socket()?;
                self.connector
                    .connect_agent(&target, &socket, None, &policy)
                    .await
                    .map(|(c, fp)| (c, Some(fp)))
            }
        };
        let (connected, agent_key) = match opened {
            Err(livchat_remote::RemoteError::HostKeyChanged {
                pinned, offered, ..
            }) => {
                return Err(CoreError::Refused(format!(
                    "{host} presents host key {offered}, not the expected {pinned}; nothing was added. \
                     Check the fingerprint on the server's console"
                )));
            }
            other => other?,
        };
        let fingerprint = connected.host_key_fingerprint.clone();
        if let HostKeyTrust::Ask(question) = &host_key {
            let offer = HostKeyOffer {
                server: name.to_string(),
                host: host.clone(),
                port,
                pinned: None,
                presented: fingerprint.clone(),
            };
            if !question(&offer) {
                return Err(CoreError::Refused(format!(
                    "host key {fingerprint} of {host} not accepted; nothing was added"
                )));
            }
        }
        if let Some(key) = key {
            self.secrets.set(&secret_name, key)?;
            match passphrase {
                Some(p) => self.secrets.set(&passphrase_name, p)?,
                // A passphrase left from an earlier server of this name must not be applied
                // to this key.
                None => {
                    self.secrets.delete(&passphrase_name)?;
                }
            }
        }
        let record = ServerRecord {
            name: name.to_string(),
            provider: ProviderKind::Manual,
            provider_id: None,
            host: host.clone(),
            ssh_port: port,
            ssh_user: user.clone(),
            ssh_key_secret: secret_name,
            ssh_agent_key: agent_key,
            host_key_fingerprint: Some(fingerprint),
            dns: None,
            server_type: None,
            location: None,
            image: None,
            labels: BTreeMap::new(),
            status: ServerStatus::Running,
            setup: Default::default(),
            platform: Default::default(),
            created_at: chrono::Utc::now(),
        };
        let stored = record.clone();
        self.store.update("server add", &mut |s| {
            if s.servers.contains_key(name) {
                return Err(livchat_store::StoreError::InvalidInput {
                    field: "server name".into(),
                    reason: format!("server {name} already exists"),
                });
            }
            s.servers.insert(name.to_string(), stored.clone());
            Ok(())
        })?;
        self.connections
            .lock()
            .await
            .insert(name.to_string(), connected.executor);
        Ok(AddedServer { record, notes })
    }

    /// Replaces a server's pinned host key with the one it presents now, the explicit user
    /// action after a reinstall: only a key whose fingerprint the user gave (`Expect`) or
    /// confirmed after seeing the old and the new one (`Ask`). `AcceptNew` is refused.
    pub async fn repin_host_key(&self, name: &str, trust: HostKeyTrust) -> Result<Repinned> {
        let server = self.server(name)?;
        let trust = match trust {
            HostKeyTrust::Expect(fp) => {
                HostKeyTrust::Expect(crate::host_key::validate_fingerprint("--fingerprint", &fp)?)
            }
            HostKeyTrust::AcceptNew => {
                return Err(CoreError::invalid(
                    "--fingerprint",
                    "a changed host key is never accepted unchecked; give --fingerprint SHA256:... as `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints it on the server's console, or run on a terminal to compare and confirm",
                ));
            }
            ask @ HostKeyTrust::Ask(_) => ask,
        };
        let policy = match &trust {
            HostKeyTrust::Expect(fp) => HostKeyPolicy::Pinned(fp.clone()),
            _ => HostKeyPolicy::TrustOnFirstUse,
        };
        let connected = match self.connect_server(&server, &policy).await {
            Err(CoreError::Remote(livchat_remote::RemoteError::HostKeyChanged {
                pinned,
                offered,
                ..
            })) => {
                return Err(CoreError::Refused(format!(
                    "server {name} presents host key {offered}, not the given {pinned}; the pin was not changed"
                )));
            }
            other => other?,
        };
        let new = connected.host_key_fingerprint.clone();
        let old = server.host_key_fingerprint.clone();
        let changed = old.as_deref() != Some(new.as_str());
        if let HostKeyTrust::Ask(question) = &trust
            && changed
        {
            let offer = HostKeyOffer {
                server: name.to_string(),
                host: server.host.clone(),
                port: server.ssh_port,
                pinned: old.clone(),
                presented: new.clone(),
            };
            if !question(&offer) {
                return Err(CoreError::Refused(format!(
                    "host key {new} of {name} not accepted; the pin was not changed"
                )));
            }
        }
        if changed {
            self.store.update("server repin", &mut |s| {
                if let Some(sv) = s.servers.get_mut(name) {
                    sv.host_key_fingerprint = Some(new.clone());
                }
                Ok(())
            })?;
        }
        self.connections
            .lock()
            .await
            .insert(name.to_string(), connected.executor);
        Ok(Repinned {
            server: name.to_string(),
            old,
            new,
            changed,
        })
    }
}
