//! The delete-server job: its refusals, its plan, and its steps (DNS records, the provider's
//! server, key and firewall, the vault's secrets, the record).

use super::*;

impl Orchestrator {
    /// The server a delete would remove, after its refusals.
    pub(super) fn check_delete(&self, name: &str, force: bool) -> Result<ServerRecord> {
        let server = self.server(name)?;
        let deployed = self.deployed_set(name)?;
        if !deployed.is_empty() && !force {
            return Err(CoreError::Refused(format!(
                "server {name} still runs {}; undeploy them first or pass --force",
                deployed.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        if self.store.load()?.cluster_of(name).is_some() {
            self.check_leave(&super::LeaveParams {
                server: name.to_string(),
                force,
            })?;
        }
        Ok(server)
    }

    /// A cluster node leaves its cluster (drained, removed) before it is deleted.
    fn delete_steps(&self, name: &str) -> Result<Vec<String>> {
        let mut steps = Vec::new();
        if self.store.load()?.cluster_of(name).is_some() {
            steps.extend(
                super::cluster::LEAVE_STEPS
                    .iter()
                    .map(|s| format!("cluster:{s}")),
            );
        }
        steps.extend(["dns", "provider", "state"].map(String::from));
        Ok(steps)
    }

    /// The dry run of a delete. Touches nothing.
    pub fn plan_delete_server(&self, name: &str, force: bool) -> Result<Plan> {
        let server = self.check_delete(name, force)?;
        let deployments: Vec<DeploymentRecord> = self
            .store
            .load()?
            .deployments
            .get(name)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let mut resources = Vec::new();
        if let Some(entry) = self.providers.of_server(&server)? {
            resources.push(format!("delete provider server {name} (and its disks)"));
            resources.push(format!(
                "delete provider {} {}",
                own_resources(entry),
                provider_resource_name(name)
            ));
        } else {
            resources.push(format!(
                "forget server {name} (added by hand: not destroyed)"
            ));
        }
        for d in &deployments {
            resources.push(format!("app {} goes with the server", d.app));
        }
        if let Some(c) = self.store.load()?.cluster_of(name) {
            resources.push(format!(
                "drain {name} and remove it from cluster {} first",
                c.manager
            ));
        }
        resources.push(format!("state server {name} and its deployments"));
        for key in self.server_vault_secrets(name)? {
            resources.push(format!("DELETE vault secret {key}"));
        }
        let mut dns_records: Vec<String> = deployments
            .iter()
            .flat_map(|d| d.domains.iter().map(|n| format!("remove A {n}")))
            .collect();
        if let Some(cfg) = &server.dns {
            let fqdn = Self::server_fqdn(name, &cfg.zone_name, cfg.subdomain.as_deref());
            dns_records.push(format!("remove A {fqdn} -> {}", server.host));
        }
        Ok(Plan {
            operation: format!("delete server {name}"),
            steps: self.delete_steps(name)?,
            resources,
            dns_records,
            stacks: Vec::new(),
        })
    }

    /// The vault secrets that belong to a server (`ssh.<name>.*`, its record's key).
    pub(super) fn server_vault_secrets(&self, name: &str) -> Result<Vec<String>> {
        let prefix = format!("ssh.{name}.");
        let recorded = self.server(name).ok().map(|s| s.ssh_key_secret);
        let mut keys: Vec<String> = self
            .secrets
            .names()?
            .into_iter()
            .filter(|k| k.starts_with(&prefix) || Some(k) == recorded.as_ref())
            .collect();
        keys.sort();
        Ok(keys)
    }

    pub fn start_delete_server(&self, name: &str, force: bool) -> Result<JobRecord> {
        let server = self.check_delete(name, force)?;
        if let Some(entry) = self.providers.of_server(&server)? {
            self.require_secret(entry.profile.token_secret)?;
        }
        let p = DeleteServerParams {
            name: name.to_string(),
            force,
        };
        self.create_job(
            JobKind::DeleteServer,
            Some(name),
            to_params(&p),
            self.delete_steps(name)?,
        )
    }

    pub(super) async fn delete_step(
        &self,
        ctx: &JobContext,
        job: &JobRecord,
        step: &str,
    ) -> Result<Value> {
        let p: DeleteServerParams = params(job)?;
        let server = self.server(&p.name)?;
        if let Some(leave) = step.strip_prefix("cluster:") {
            return self.leave_cluster_step(ctx, &p.name, leave).await;
        }
        match step {
            "dns" => {
                let Some(cfg) = server.dns.clone() else {
                    return Ok(Value::Null);
                };
                if cfg.mode == DnsMode::Manual {
                    ctx.warn(format!(
                        "manual DNS: delete the records of {} under {} at your DNS host",
                        p.name, cfg.zone_name
                    ));
                    return Ok(Value::Null);
                }
                let dns = self.dns()?;
                let zone = dns.find_zone(&cfg.zone_name).await.map_err(dns_err)?;
                let mut ids: Vec<String> = self
                    .store
                    .load()?
                    .deployments
                    .get(&p.name)
                    .map(|m| m.values().flat_map(|d| d.dns_record_ids.clone()).collect())
                    .unwrap_or_default();
                let fqdn = Self::server_fqdn(&p.name, &cfg.zone_name, cfg.subdomain.as_deref());
                for r in dns.records_named(&zone, &fqdn).await.map_err(dns_err)? {
                    if r.content == server.host {
                        ids.push(r.id);
                    }
                }
                delete_records(ctx, dns.as_ref(), &zone, &ids).await?;
                Ok(Value::Null)
            }
            "provider" => {
                let Some(entry) = self.providers.of_server(&server)? else {
                    ctx.info("server was added by hand: it is only forgotten, not destroyed");
                    return Ok(Value::Null);
                };
                let provider = self.provider_client(entry)?;
                let found = provider.find_server(&p.name).await.map_err(provider_err)?;
                if let Some(s) = found {
                    let progress = {
                        let ctx = ctx.clone();
                        move |a: livchat_providers::ActionProgress| {
                            ctx.info(format!("provider action {}: {}%", a.command, a.progress));
                        }
                    };
                    provider
                        .delete_server(&s.id, &progress)
                        .await
                        .map_err(provider_err)?;
                    ctx.info(format!("server {} deleted at the provider", p.name));
                }
                // The firewall and SSH key `server create` made for this server go with it: left
                // behind they clutter the project, and the key's name would refuse a new server
                // of the same name (another public key).
                let own = provider_resource_name(&p.name);
                if entry.profile.firewalls {
                    provider.delete_firewall(&own).await.map_err(provider_err)?;
                }
                provider.delete_ssh_key(&own).await.map_err(provider_err)?;
                ctx.info(format!(
                    "{} {own} deleted at the provider",
                    own_resources(entry)
                ));
                Ok(Value::Null)
            }
            "state" => {
                let keys = self.server_vault_secrets(&p.name)?;
                self.forget_connection(&p.name).await;
                self.store.update("server deleted", &mut |s| {
                    s.servers.remove(&p.name);
                    s.deployments.remove(&p.name);
                    s.first_run_claims.remove(&p.name);
                    Ok(())
                })?;
                // Every secret of this server, whoever made it: a key given to `server add`
                // is as much the server's as one `server create` generated.
                for key in &keys {
                    self.secrets.delete(key)?;
                }
                Ok(json!({ "deleted": p.name, "vault_secrets_deleted": keys }))
            }
            other => Err(CoreError::invalid("step", format!("unknown step {other}"))),
        }
    }
}

/// What `server create` made at the provider besides the server, named alike.
fn own_resources(entry: &crate::provider_registry::ProviderEntry) -> &'static str {
    if entry.profile.firewalls {
        "firewall and SSH key"
    } else {
        "SSH key"
    }
}
