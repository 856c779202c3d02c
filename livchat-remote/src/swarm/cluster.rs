//! Swarm clusters of several servers, as data: the commands that join a server to another's
//! swarm, label, drain and remove nodes, and open the Swarm ports between nodes only.
//!
//! The join token is a secret: `docker swarm join` takes it only as an argument, so the join
//! goes to the Docker API instead (`curl` on the engine's socket, the JSON body with the token
//! on the channel's stdin, see [`join_request`]); it is in no command line, here or on the
//! server. Nothing here runs anything.

use std::net::IpAddr;

use secrecy::{ExposeSecret, SecretBox, SecretString};

use crate::command::Command;

/// The ports Swarm nodes talk on: cluster management, node gossip, the overlay's VXLAN.
pub const SWARM_PORTS: &[(u16, &str)] =
    &[(2377, "tcp"), (7946, "tcp"), (7946, "udp"), (4789, "udp")];

/// The role a node joins with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRole {
    Worker,
    Manager,
}

impl JoinRole {
    fn as_str(self) -> &'static str {
        match self {
            JoinRole::Worker => "worker",
            JoinRole::Manager => "manager",
        }
    }
}

fn docker() -> Command {
    Command::new("docker")
}

/// On a manager: the join token of `role`, alone on stdout (a secret: callers hide it).
pub fn join_token(role: JoinRole) -> Command {
    docker().args(["swarm", "join-token", "-q", role.as_str()])
}

/// On the joining server: `POST /swarm/join` to its own engine, the body read from stdin
/// (`--data-binary @-`), so the token never appears in an argument.
pub fn join_from_stdin() -> Command {
    Command::new("curl").args([
        "--silent",
        "--show-error",
        "--fail-with-body",
        "--unix-socket",
        "/var/run/docker.sock",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        "@-",
        "http://localhost/swarm/join",
    ])
}

/// The body [`join_from_stdin`] reads: the joining node advertises `advertise`, and reaches
/// the manager at `manager:2377`.
pub fn join_request(advertise: IpAddr, manager: IpAddr, token: &SecretString) -> SecretBox<[u8]> {
    let body = serde_json::json!({
        "ListenAddr": "0.0.0.0:2377",
        "AdvertiseAddr": advertise.to_string(),
        "RemoteAddrs": [std::net::SocketAddr::new(manager, 2377).to_string()],
        "JoinToken": token.expose_secret(),
    });
    SecretBox::new(body.to_string().into_bytes().into_boxed_slice())
}

/// This node's swarm state and id: one line `<state> <node id>` (`active x4f...`).
pub fn node_self() -> Command {
    docker().args([
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.NodeID}}",
    ])
}

/// On a manager: every node, one JSON object per line (`ID`, `Hostname`, `ManagerStatus`).
pub fn node_ls() -> Command {
    docker().args(["node", "ls", "--format", "{{json .}}"])
}

/// On a manager: set a node label (key and value checked by the caller's allowlist).
pub fn node_label_add(node_id: &str, key: &str, value: &str) -> Command {
    docker().args([
        "node".to_string(),
        "update".into(),
        "--label-add".into(),
        format!("{key}={value}"),
        "--".into(),
        node_id.into(),
    ])
}

/// On a manager: stop scheduling on a node and move its tasks away.
pub fn node_drain(node_id: &str) -> Command {
    docker().args(["node", "update", "--availability", "drain", "--", node_id])
}

/// On a manager: a manager node becomes a worker (before it leaves, so quorum is kept).
pub fn node_demote(node_id: &str) -> Command {
    docker().args(["node", "demote", "--", node_id])
}

/// On a manager: forget a node that left (`--force`: it may still show as `ready` for a while).
pub fn node_rm(node_id: &str) -> Command {
    docker().args(["node", "rm", "--force", "--", node_id])
}

/// On the node itself: leave the swarm (a demoted manager leaves as a worker).
pub fn swarm_leave() -> Command {
    docker().args(["swarm", "leave"])
}

/// ufw rules admitting `peer` to the Swarm ports, one command per port and protocol.
pub fn ufw_allow_from(peer: IpAddr) -> Vec<Command> {
    SWARM_PORTS
        .iter()
        .map(|(port, proto)| ufw_rule(None, peer, *port, proto))
        .collect()
}

/// The rules of [`ufw_allow_from`], deleted (a missing rule is not an error to ufw).
pub fn ufw_delete_from(peer: IpAddr) -> Vec<Command> {
    SWARM_PORTS
        .iter()
        .map(|(port, proto)| ufw_rule(Some("delete"), peer, *port, proto))
        .collect()
}

fn ufw_rule(verb: Option<&str>, peer: IpAddr, port: u16, proto: &str) -> Command {
    let cmd = Command::new("ufw");
    let cmd = match verb {
        Some(v) => cmd.arg(v),
        None => cmd,
    };
    cmd.args([
        "allow".to_string(),
        "proto".into(),
        proto.into(),
        "from".into(),
        peer.to_string(),
        "to".into(),
        "any".into(),
        "port".into(),
        port.to_string(),
    ])
}

/// `ufw status` lines that admit `peer` on a Swarm port, from `ufw status` output (for checks
/// and tests: the rules a node really has).
pub fn swarm_rules_in_status(status: &str) -> Vec<String> {
    status
        .lines()
        .filter(|l| {
            SWARM_PORTS
                .iter()
                .any(|(port, proto)| l.trim_start().starts_with(&format!("{port}/{proto}")))
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// One line of `docker node ls --format '{{json .}}'`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeLine {
    #[serde(rename = "ID")]
    pub id: String,
    pub hostname: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub availability: String,
    /// `Leader`, `Reachable`, `Unreachable`, or empty for a worker.
    #[serde(default)]
    pub manager_status: String,
}

/// Parses [`node_ls`] output; a line that is not a node is an error naming it.
pub fn parse_node_ls(stdout: &str) -> Result<Vec<NodeLine>, String> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("node ls line `{l}`: {e}")))
        .collect()
}

/// Parses [`node_self`] output: `Some(id)` on an active node, `None` when not in a swarm.
pub fn parse_node_self(stdout: &str) -> Option<String> {
    let mut parts = stdout.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("active"), Some(id)) if !id.is_empty() => Some(id.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::quote_command;

    fn line(c: &Command) -> String {
        quote_command(c).unwrap()
    }

    #[test]
    fn join_carries_no_token_in_its_command_line_only_in_its_body() {
        let token = SecretString::from("SWMTKN-1-secret-token");
        let body = join_request(
            "10.0.0.2".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
            &token,
        );
        let cmd = join_from_stdin();
        assert!(!line(&cmd).contains("SWMTKN"));
        assert_eq!(
            line(&cmd),
            "curl --silent --show-error --fail-with-body --unix-socket /var/run/docker.sock -H 'Content-Type: application/json' --data-binary @- http://localhost/swarm/join"
        );
        let json: serde_json::Value = serde_json::from_slice(body.expose_secret()).unwrap();
        assert_eq!(json["JoinToken"], "SWMTKN-1-secret-token");
        assert_eq!(json["RemoteAddrs"][0], "10.0.0.1:2377");
        assert_eq!(json["AdvertiseAddr"], "10.0.0.2");
    }

    #[test]
    fn ufw_rules_admit_only_the_peer_on_each_swarm_port() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let lines: Vec<String> = ufw_allow_from(peer).iter().map(line).collect();
        assert_eq!(
            lines,
            [
                "ufw allow proto tcp from 10.0.0.9 to any port 2377",
                "ufw allow proto tcp from 10.0.0.9 to any port 7946",
                "ufw allow proto udp from 10.0.0.9 to any port 7946",
                "ufw allow proto udp from 10.0.0.9 to any port 4789",
            ]
        );
        assert!(
            line(&ufw_delete_from(peer)[0]).starts_with("ufw delete allow proto tcp from 10.0.0.9")
        );
    }

    #[test]
    fn node_commands_end_options_before_the_node_id() {
        assert_eq!(
            line(&node_label_add("abc", "livchat.server", "w-1")),
            "docker node update --label-add 'livchat.server=w-1' -- abc"
        );
        assert_eq!(
            line(&node_drain("abc")),
            "docker node update --availability drain -- abc"
        );
        assert_eq!(line(&node_rm("abc")), "docker node rm --force -- abc");
        assert_eq!(
            line(&join_token(JoinRole::Manager)),
            "docker swarm join-token -q manager"
        );
    }

    #[test]
    fn node_listings_parse_and_a_bad_line_is_named() {
        let out = r#"{"Availability":"Active","EngineVersion":"20.10.24","Hostname":"mgr","ID":"aa","ManagerStatus":"Leader","Self":true,"Status":"Ready","TLSStatus":"Ready"}
{"Availability":"Drain","Hostname":"w1","ID":"bb","ManagerStatus":"","Status":"Down"}"#;
        let nodes = parse_node_ls(out).unwrap();
        assert_eq!(nodes[0].manager_status, "Leader");
        assert_eq!(nodes[1].availability, "Drain");
        assert!(parse_node_ls("oops").unwrap_err().contains("oops"));
        assert_eq!(parse_node_self("active x4f\n"), Some("x4f".into()));
        assert_eq!(parse_node_self("inactive \n"), None);
    }

    #[test]
    fn swarm_rules_are_read_from_ufw_status() {
        let status = "Status: active\n\nTo                         Action      From\n--                         ------      ----\n22/tcp                     ALLOW       Anywhere\n2377/tcp                   ALLOW       10.0.0.9\n4789/udp                   ALLOW       10.0.0.9\n";
        assert_eq!(
            swarm_rules_in_status(status),
            ["2377/tcp ALLOW 10.0.0.9", "4789/udp ALLOW 10.0.0.9"]
        );
    }
}
