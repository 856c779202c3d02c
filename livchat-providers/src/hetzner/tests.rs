//! Unit tests of the Hetzner client that need no server: configuration, token handling,
//! key fingerprints and firewall rules. Behaviour against an API is tested in `tests/`.

use super::firewalls::rules_for;
use super::*;

#[test]
fn endpoint_comes_from_the_given_environment_only() {
    let c = HetznerConfig::from_lookup(|k| {
        (k == HETZNER_ENDPOINT_ENV).then(|| "http://127.0.0.1:9/v1".to_owned())
    });
    assert_eq!(c.endpoint, "http://127.0.0.1:9/v1");
    let c = HetznerConfig::from_lookup(|_| None);
    assert_eq!(c.endpoint, HETZNER_DEFAULT_ENDPOINT);
}

#[test]
fn the_token_never_shows_in_debug_output() {
    let p = HetznerProvider::new(
        SecretString::from("hcloud-secret-token-123".to_owned()),
        HetznerConfig::default(),
    )
    .unwrap();
    let dbg = format!("{p:?}");
    assert!(!dbg.contains("hcloud-secret-token-123"), "{dbg}");
    assert!(dbg.contains("<redacted>"), "{dbg}");
}

#[test]
fn an_empty_token_or_a_bad_endpoint_is_refused() {
    let e = HetznerProvider::new(SecretString::from(" ".to_owned()), HetznerConfig::default())
        .unwrap_err();
    assert!(e.to_string().starts_with("invalid token"), "{e}");
    let config = HetznerConfig {
        endpoint: "ftp://example.com".into(),
        ..HetznerConfig::default()
    };
    let e = HetznerProvider::new(SecretString::from("t".to_owned()), config).unwrap_err();
    assert!(e.to_string().contains("only http and https"), "{e}");
}

#[test]
fn fingerprint_matches_ssh_keygen_md5() {
    // Expected value printed by `ssh-keygen -l -E md5 -f` for this key.
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDwaH1OLWzg6PZtYyhkqbYDwlEUh7QQSwXZQonbJiWxb user@host";
    assert_eq!(
        ssh_fingerprint(key).unwrap(),
        "9b:9f:41:a8:e5:21:fd:23:0a:9b:49:fe:29:6f:09:5f"
    );
}

#[test]
fn malformed_public_keys_are_rejected_naming_the_field() {
    for bad in [
        "",
        "ssh-dss AAAA",
        "ssh-ed25519",
        "ssh-ed25519 not-base64!",
        // A valid blob under the wrong type name.
        "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIDwaH1OLWzg6PZtYyhkqbYDwlEUh7QQSwXZQonbJiWxb",
    ] {
        let e = ssh_fingerprint(bad).unwrap_err().to_string();
        assert!(e.starts_with("invalid public_key"), "{bad}: {e}");
    }
}

#[test]
fn peer_rules_open_a_port_to_the_peers_addresses_only() {
    let r = rules_for(&FirewallSpec {
        name: "fw".into(),
        tcp_ports: vec![22],
        peer_rules: vec![crate::PeerRule {
            protocol: crate::PeerProtocol::Udp,
            port: 4789,
            sources: vec!["10.0.0.2".parse().unwrap()],
        }],
    });
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].protocol, hcloud::models::rule::Protocol::Udp);
    assert_eq!(r[1].port, Some(Some("4789".into())));
    assert_eq!(r[1].source_ips, Some(vec!["10.0.0.2/32".to_string()]));
}

#[test]
fn firewall_rules_open_each_port_once_for_both_families() {
    let r = rules_for(&FirewallSpec {
        name: "fw".into(),
        tcp_ports: vec![443, 22, 80, 22],
        peer_rules: Vec::new(),
    });
    let ports: Vec<_> = r
        .iter()
        .map(|r| r.port.clone().flatten().unwrap())
        .collect();
    assert_eq!(ports, ["22", "80", "443"]);
    assert!(r.iter().all(|r| r.source_ips.as_ref().unwrap().len() == 2));
}
