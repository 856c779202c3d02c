//! Firewalls: ensured with exactly the spec's TCP ports open and applied to the server (a
//! retried create or apply is recognised, not repeated), and deleted by name. A firewall of
//! that name without our label is someone else's and is never changed.

use std::collections::BTreeMap;

use hcloud::models;
use reqwest::Method;

use crate::error::{CloudError, Result, Service};
use crate::provider::{
    Firewall, FirewallSpec, MANAGED_BY_LABEL, PeerProtocol, PeerRule, ProgressFn, ServerId,
};
use crate::validate;

use super::HetznerProvider;
use super::client::{is_managed, json, managed_labels};
use super::errors::{api_error, parse_failure};
use super::servers::parse_id;

fn to_firewall(f: models::Firewall) -> Firewall {
    Firewall {
        id: f.id,
        name: f.name,
        tcp_ports: open_tcp_ports(&f.rules),
        applied_to: f
            .applied_to
            .iter()
            .filter_map(|r| r.server.as_ref().map(|s| ServerId::from(s.id)))
            .collect(),
    }
}

/// TCP ports open to the world (a port open to a few peers only is not).
fn open_tcp_ports(rules: &[models::RuleResponse]) -> Vec<u16> {
    let mut ports: Vec<u16> = rules
        .iter()
        .filter(|r| {
            r.direction == models::rule_response::Direction::In
                && r.protocol == models::rule_response::Protocol::Tcp
                && r.source_ips.iter().any(|s| s == "0.0.0.0/0")
        })
        .filter_map(|r| r.port.as_deref()?.parse().ok())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Rules of a firewall spec: each TCP port open inbound from everywhere, IPv4 and IPv6.
pub(super) fn rules_for(spec: &FirewallSpec) -> Vec<models::Rule> {
    let mut ports = spec.tcp_ports.clone();
    ports.sort_unstable();
    ports.dedup();
    ports
        .into_iter()
        .map(|port| models::Rule {
            description: Some(Some(format!("livchat: tcp {port}"))),
            destination_ips: None,
            direction: models::rule::Direction::In,
            port: Some(Some(port.to_string())),
            protocol: models::rule::Protocol::Tcp,
            source_ips: Some(vec!["0.0.0.0/0".to_owned(), "::/0".to_owned()]),
        })
        .chain(spec.peer_rules.iter().map(|r| {
            let (protocol, name) = match r.protocol {
                PeerProtocol::Tcp => (models::rule::Protocol::Tcp, "tcp"),
                PeerProtocol::Udp => (models::rule::Protocol::Udp, "udp"),
            };
            models::Rule {
                description: Some(Some(format!("livchat: {name} {} from peers", r.port))),
                destination_ips: None,
                direction: models::rule::Direction::In,
                port: Some(Some(r.port.to_string())),
                protocol,
                source_ips: Some(peer_sources(r)),
            }
        }))
        .collect()
}

/// A peer's address as a one-address network (`10.0.0.2/32`), sorted.
fn peer_sources(r: &PeerRule) -> Vec<String> {
    let mut sources: Vec<String> = r
        .sources
        .iter()
        .map(|ip| match ip {
            std::net::IpAddr::V4(_) => format!("{ip}/32"),
            std::net::IpAddr::V6(_) => format!("{ip}/128"),
        })
        .collect();
    sources.sort();
    sources
}

/// The peer rules of a firewall as (protocol, port, sources), sorted, to compare with a spec.
fn peer_rules_of(rules: &[models::RuleResponse]) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<_> = rules
        .iter()
        .filter(|r| !r.source_ips.iter().any(|s| s == "0.0.0.0/0"))
        .map(|r| {
            let mut sources = r.source_ips.clone();
            sources.sort();
            (
                format!("{:?}", r.protocol).to_lowercase(),
                r.port.clone().unwrap_or_default(),
                sources,
            )
        })
        .collect();
    out.sort();
    out
}

fn wanted_peer_rules(spec: &FirewallSpec) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<_> = spec
        .peer_rules
        .iter()
        .map(|r| {
            let proto = match r.protocol {
                PeerProtocol::Tcp => "tcp",
                PeerProtocol::Udp => "udp",
            };
            (proto.to_string(), r.port.to_string(), peer_sources(r))
        })
        .collect();
    out.sort();
    out
}

pub(super) async fn ensure(
    hetzner: &HetznerProvider,
    spec: &FirewallSpec,
    server: &ServerId,
) -> Result<Firewall> {
    validate::host_name("firewall name", &spec.name)?;
    if spec.tcp_ports.is_empty() || spec.tcp_ports.contains(&0) {
        return Err(CloudError::InvalidInput {
            field: "tcp_ports",
            reason: "at least one port, each 1-65535".into(),
        });
    }
    let server_id = parse_id(server)?;
    let quiet: &ProgressFn = &|_| {};
    let rules = rules_for(spec);
    let apply_to = vec![models::FirewallResource {
        label_selector: None,
        server: Some(Box::new(models::ResourceId { id: server_id })),
        r#type: models::firewall_resource::Type::Server,
    }];
    let find = || async {
        let fws: Vec<models::Firewall> = hetzner
            .list_all(
                "find firewall",
                "/firewalls",
                "firewalls",
                &[("name", spec.name.clone())],
            )
            .await?;
        match fws.into_iter().find(|f| f.name == spec.name) {
            // Changing the rules of someone else's firewall would open or close their ports.
            Some(f) if !f.labels.as_ref().is_some_and(is_managed) => Err(CloudError::NameTaken {
                service: Service::Hetzner,
                name: spec.name.clone(),
                message: format!(
                    "a firewall named {:?} exists without the label {}={}; it was not \
                     created by LivChat, so it is left alone",
                    spec.name, MANAGED_BY_LABEL.0, MANAGED_BY_LABEL.1
                ),
            }),
            found => Ok::<_, CloudError>(found),
        }
    };
    let existing = match find().await? {
        Some(f) => f,
        None => {
            let request = models::CreateFirewallRequest {
                apply_to: Some(apply_to.clone()),
                labels: Some(managed_labels(&BTreeMap::new())),
                name: spec.name.clone(),
                rules: Some(rules.clone()),
            };
            let operation = "create firewall";
            let reply = hetzner
                .call(
                    operation,
                    Method::POST,
                    "/firewalls",
                    &[],
                    Some(&json(&request)),
                )
                .await?;
            let found = if reply.status.is_success() {
                let got: models::CreateFirewallResponse = hetzner.http.decode(operation, &reply)?;
                hetzner
                    .wait_actions(got.actions.unwrap_or_default(), quiet)
                    .await?;
                match got.firewall {
                    // Created with our rules and applied to the server.
                    Some(f) => return Ok(to_firewall(*f)),
                    None => find().await?,
                }
            } else {
                match api_error(operation, reply, Some(&spec.name)) {
                    // A retried POST that had succeeded: carry on with what exists.
                    CloudError::NameTaken { .. } => find().await?,
                    other => return Err(other),
                }
            };
            found.ok_or_else(|| CloudError::NotFound {
                service: Service::Hetzner,
                what: format!("firewall {:?} right after creating it", spec.name),
            })?
        }
    };
    let id = existing.id;
    let mut want_ports = spec.tcp_ports.clone();
    want_ports.sort_unstable();
    want_ports.dedup();
    let rules_match = open_tcp_ports(&existing.rules) == want_ports
        && peer_rules_of(&existing.rules) == wanted_peer_rules(spec)
        && existing.rules.len() == want_ports.len() + spec.peer_rules.len();
    if !rules_match {
        let operation = format!("set rules of firewall {id}");
        let got: models::SetRulesResponse = hetzner
            .call_json(
                &operation,
                Method::POST,
                &format!("/firewalls/{id}/actions/set_rules"),
                &[],
                Some(&json(&models::SetRulesRequest { rules })),
            )
            .await?;
        hetzner.wait_actions(got.actions, quiet).await?;
    }
    let applied = existing
        .applied_to
        .iter()
        .any(|r| r.server.as_ref().is_some_and(|s| s.id == server_id));
    if !applied {
        let operation = format!("apply firewall {id}");
        let reply = hetzner
            .call(
                &operation,
                Method::POST,
                &format!("/firewalls/{id}/actions/apply_to_resources"),
                &[],
                Some(&json(&models::ApplyToResourcesRequest { apply_to })),
            )
            .await?;
        if reply.status.is_success() {
            let got: models::ApplyToResourcesResponse = hetzner.http.decode(&operation, &reply)?;
            hetzner.wait_actions(got.actions, quiet).await?;
        } else {
            let f = parse_failure(&reply);
            // Already applied (a retried POST): nothing to do.
            if f.code != "firewall_already_applied" {
                return Err(api_error(&operation, reply, None));
            }
        }
    }
    let got: models::GetFirewallResponse = hetzner
        .call_json(
            "get firewall",
            Method::GET,
            &format!("/firewalls/{id}"),
            &[],
            None,
        )
        .await?;
    Ok(to_firewall(*got.firewall))
}

pub(super) async fn delete(hetzner: &HetznerProvider, name: &str) -> Result<()> {
    validate::host_name("firewall name", name)?;
    hetzner
        .delete_named::<models::Firewall>("firewall", "firewalls", name, |f| {
            (f.id, &f.name, f.labels.as_ref().is_some_and(is_managed))
        })
        .await
}
