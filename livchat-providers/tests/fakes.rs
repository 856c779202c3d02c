//! Behaviour of the real clients against the stateful fakes: waiting with progress,
//! idempotent steps, typed errors, record handling, and every body the fakes send checked
//! against the vendor spec.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use axum::http::Method;
use common::*;
use fixtures::fake_cloudflare::{FakeCloudflare, ZONE, ZONE_ID};
use fixtures::fake_hetzner::{FakeHetzner, HetznerOptions};
use fixtures::specs;
use livchat_providers::{
    ActionStatus, Change, CloudError, DnsClient, FirewallSpec, Provider, RecordContent,
    RecordOptions, RecordType, ServerId, ServerSpec, ServerStatus,
};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDwaH1OLWzg6PZtYyhkqbYDwlEUh7QQSwXZQonbJiWxb user@host";

fn spec(name: &str) -> ServerSpec {
    ServerSpec {
        name: name.into(),
        server_type: "cx22".into(),
        location: "nbg1".into(),
        image: "debian-12".into(),
        ssh_keys: vec![],
        labels: BTreeMap::from([("role".to_owned(), "app".to_owned())]),
    }
}

#[tokio::test]
async fn create_server_waits_for_its_actions_and_reports_progress() {
    let fake = FakeHetzner::start_with(HetznerOptions {
        action_duration: Duration::from_millis(400),
        ..HetznerOptions::default()
    })
    .await;
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    let (seen, progress) = recorder();
    let s = p.create_server(&spec("web-1"), &progress).await.unwrap();
    assert_eq!(s.status, ServerStatus::Running);
    assert_eq!(s.server_type, "cx22");
    assert_eq!(s.location, "nbg1");
    assert!(s.ipv4.is_some());
    assert_eq!(
        s.labels.get("managed-by").map(String::as_str),
        Some("livchat")
    );
    assert_eq!(s.labels.get("role").map(String::as_str), Some("app"));
    let seen = seen.lock().unwrap();
    let create: Vec<_> = seen
        .iter()
        .filter(|p| p.command == "create_server")
        .collect();
    assert!(
        create
            .iter()
            .any(|p| p.status == ActionStatus::Running && p.progress < 100),
        "{seen:?}"
    );
    let last = create.last().unwrap();
    assert_eq!((last.status, last.progress), (ActionStatus::Success, 100));
    assert!(seen.iter().any(|p| p.command == "start_server"));
    assert_bodies_match_spec(fake.faults(), specs::hetzner());
}

#[tokio::test]
async fn creating_the_same_server_again_returns_it_without_a_second_create() {
    let fake = FakeHetzner::start().await;
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    let a = p.create_server(&spec("web-1"), &quiet).await.unwrap();
    let b = p.create_server(&spec("web-1"), &quiet).await.unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(fake.server_names(), ["web-1"]);
    assert_eq!(fake.faults().hits_of(&Method::POST, "/servers").len(), 1);
}

#[tokio::test]
async fn a_same_name_server_not_made_by_livchat_is_name_taken_and_left_alone() {
    let fake = FakeHetzner::start().await;
    fake.add_foreign_server("web-1");
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    let e = p.create_server(&spec("web-1"), &quiet).await.unwrap_err();
    assert!(
        matches!(&e, CloudError::NameTaken { name, .. } if name == "web-1"),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("without the label managed-by=livchat"),
        "{e}"
    );
    assert!(p.find_server("web-1").await.unwrap().is_none());
}

#[tokio::test]
async fn unknown_catalog_names_are_errors_listing_what_exists() {
    let fake = FakeHetzner::start().await;
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    let mut s = spec("web-1");
    s.location = "mars1".into();
    let e = p.create_server(&s, &quiet).await.unwrap_err();
    assert!(
        matches!(&e, CloudError::UnknownLocation { available, .. } if available.contains(&"fsn1".to_owned())),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("unknown location \"mars1\"; available: fsn1, nbg1, hel1, ash"),
        "{e}"
    );

    let mut s = spec("web-1");
    s.server_type = "cx999".into();
    let e = p.create_server(&s, &quiet).await.unwrap_err();
    assert!(matches!(e, CloudError::UnknownServerType { .. }), "{e:?}");

    // ccx13 exists, but only in ash.
    let mut s = spec("web-1");
    s.server_type = "ccx13".into();
    let e = p.create_server(&s, &quiet).await.unwrap_err();
    assert!(e.to_string().contains("\"ccx13 in nbg1\""), "{e}");

    let mut s = spec("web-1");
    s.image = "windows-95".into();
    let e = p.create_server(&s, &quiet).await.unwrap_err();
    assert!(matches!(e, CloudError::UnknownImage { .. }), "{e:?}");
    assert!(fake.server_names().is_empty());
    assert!(fake.faults().hits_of(&Method::POST, "/servers").is_empty());
}

#[tokio::test]
async fn invalid_names_and_labels_are_refused_before_any_request() {
    let fake = FakeHetzner::start().await;
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    for bad in ["Web_1", "web;reboot", "-web", ""] {
        let e = p.create_server(&spec(bad), &quiet).await.unwrap_err();
        assert!(e.to_string().starts_with("invalid name:"), "{bad}: {e}");
    }
    let mut s = spec("web-1");
    s.labels.insert("bad key".into(), "x".into());
    let e = p.create_server(&s, &quiet).await.unwrap_err();
    assert!(e.to_string().starts_with("invalid labels:"), "{e}");
    assert!(fake.faults().hits().is_empty());
}

#[tokio::test]
async fn a_wrong_token_is_an_invalid_token_error() {
    let fake = FakeHetzner::start().await;
    let p = hetzner_at(&fake.url(), "wrong", fast_policy());
    let e = p.list_locations().await.unwrap_err();
    assert!(matches!(e, CloudError::InvalidToken { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("check the token stored in the vault"),
        "{e}"
    );
    // Not retried: a 401 will not change.
    assert_eq!(fake.faults().hits().len(), 1);

    let cf = FakeCloudflare::start().await;
    let c = cloudflare_at(&cf.url(), "wrong", fast_policy());
    let e = c.find_zone(ZONE).await.unwrap_err();
    assert!(matches!(e, CloudError::InvalidToken { .. }), "{e:?}");
    assert_bodies_match_spec(fake.faults(), specs::hetzner());
    assert_bodies_match_spec(cf.faults(), specs::cloudflare());
}

#[tokio::test]
async fn the_server_limit_is_a_limit_exceeded_error() {
    let fake = FakeHetzner::start_with(HetznerOptions {
        server_limit: 1,
        ..HetznerOptions::default()
    })
    .await;
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    p.create_server(&spec("web-1"), &quiet).await.unwrap();
    let e = p.create_server(&spec("web-2"), &quiet).await.unwrap_err();
    assert!(matches!(e, CloudError::LimitExceeded { .. }), "{e:?}");
    assert_eq!(fake.server_names(), ["web-1"]);
    assert_bodies_match_spec(fake.faults(), specs::hetzner());
}

#[tokio::test]
async fn ssh_keys_are_reused_by_fingerprint_and_names_are_not_overwritten() {
    let fake = FakeHetzner::start().await;
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    let a = p.ensure_ssh_key("livchat-web-1", KEY).await.unwrap();
    let b = p.ensure_ssh_key("another-name", KEY).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a.fingerprint,
        "9b:9f:41:a8:e5:21:fd:23:0a:9b:49:fe:29:6f:09:5f"
    );
    assert_eq!(fake.faults().hits_of(&Method::POST, "/ssh_keys").len(), 1);
    let other =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA6d8/wmpqbxXkfJGAtPWNjUCnhby8Jmsdm8ISBBjzZ7 x@y";
    let e = p.ensure_ssh_key("livchat-web-1", other).await.unwrap_err();
    assert!(matches!(e, CloudError::NameTaken { .. }), "{e:?}");
    assert_bodies_match_spec(fake.faults(), specs::hetzner());
}

#[tokio::test]
async fn server_life_cycle_create_find_and_delete() {
    let fake = FakeHetzner::start().await;
    fake.add_foreign_server("not-ours");
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    let k = p.ensure_ssh_key("livchat-web-1", KEY).await.unwrap();
    let mut s = spec("web-1");
    s.ssh_keys = vec![k.name];
    let created = p.create_server(&s, &quiet).await.unwrap();
    let found = p.find_server("web-1").await.unwrap().unwrap();
    assert_eq!(found.id, created.id);
    assert_eq!(found.status, ServerStatus::Running);
    assert!(p.find_server("not-ours").await.unwrap().is_none());

    p.delete_server(&created.id, &quiet).await.unwrap();
    assert!(p.find_server("web-1").await.unwrap().is_none());
    // Deleting again is a success: the step is idempotent.
    p.delete_server(&created.id, &quiet).await.unwrap();
    assert_eq!(fake.server_names(), ["not-ours"]);
    let e = p
        .delete_server(&ServerId("abc".into()), &quiet)
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("invalid server id"), "{e}");
    assert_bodies_match_spec(fake.faults(), specs::hetzner());
}

#[tokio::test]
async fn the_firewall_is_created_applied_and_then_left_unchanged() {
    let fake = FakeHetzner::start().await;
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    let server = p.create_server(&spec("web-1"), &quiet).await.unwrap();
    let fw_spec = FirewallSpec::ssh_and_web("livchat-web-1");
    let fw = p.ensure_firewall(&fw_spec, &server.id).await.unwrap();
    assert_eq!(fw.tcp_ports, [22, 80, 443]);
    assert_eq!(fw.applied_to, std::slice::from_ref(&server.id));
    let again = p.ensure_firewall(&fw_spec, &server.id).await.unwrap();
    assert_eq!(again, fw);
    let posts = |route: &str| fake.faults().hits_of(&Method::POST, route).len();
    assert_eq!(posts("/firewalls"), 1);
    assert_eq!(posts("/firewalls/{id}/actions/set_rules"), 0);
    assert_eq!(posts("/firewalls/{id}/actions/apply_to_resources"), 0);

    // A second server gets the same firewall applied; changed ports are set.
    let other = p.create_server(&spec("web-2"), &quiet).await.unwrap();
    let fw2 = p
        .ensure_firewall(
            &FirewallSpec {
                name: "livchat-web-1".into(),
                tcp_ports: vec![22, 443],
                peer_rules: Vec::new(),
            },
            &other.id,
        )
        .await
        .unwrap();
    assert_eq!(fw2.tcp_ports, [22, 443]);
    assert_eq!(fw2.applied_to.len(), 2);
    assert_eq!(posts("/firewalls/{id}/actions/set_rules"), 1);
    assert_eq!(posts("/firewalls/{id}/actions/apply_to_resources"), 1);
    assert_bodies_match_spec(fake.faults(), specs::hetzner());
}

/// Issue #16: a cluster node's firewall opens the Swarm ports to the other nodes only; the
/// same peers again change nothing, another set of peers is set, none removes them.
#[tokio::test]
async fn peer_rules_are_set_once_and_changed_only_when_the_peers_change() {
    use livchat_providers::{PeerProtocol, PeerRule};
    let fake = FakeHetzner::start().await;
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    let server = p.create_server(&spec("web-1"), &quiet).await.unwrap();
    let with_peers = |peers: &[&str]| {
        let mut fw = FirewallSpec::ssh_and_web("livchat-web-1");
        let sources: Vec<std::net::IpAddr> = peers.iter().map(|a| a.parse().unwrap()).collect();
        if !sources.is_empty() {
            fw.peer_rules = [(2377, PeerProtocol::Tcp), (4789, PeerProtocol::Udp)]
                .into_iter()
                .map(|(port, protocol)| PeerRule {
                    protocol,
                    port,
                    sources: sources.clone(),
                })
                .collect();
        }
        fw
    };
    let fw = p
        .ensure_firewall(&with_peers(&["10.0.0.2"]), &server.id)
        .await
        .unwrap();
    assert_eq!(
        fw.tcp_ports,
        [22, 80, 443],
        "a peer-only port is not open to the world"
    );
    let posts = |route: &str| fake.faults().hits_of(&Method::POST, route).len();
    p.ensure_firewall(&with_peers(&["10.0.0.2"]), &server.id)
        .await
        .unwrap();
    assert_eq!(posts("/firewalls/{id}/actions/set_rules"), 0);
    p.ensure_firewall(&with_peers(&["10.0.0.2", "10.0.0.3"]), &server.id)
        .await
        .unwrap();
    assert_eq!(posts("/firewalls/{id}/actions/set_rules"), 1);
    p.ensure_firewall(&with_peers(&[]), &server.id)
        .await
        .unwrap();
    assert_eq!(posts("/firewalls/{id}/actions/set_rules"), 2);
    assert_bodies_match_spec(fake.faults(), specs::hetzner());
}

#[tokio::test]
async fn a_deleted_servers_firewall_and_key_are_deleted_by_name_and_absent_ones_are_fine() {
    let fake = FakeHetzner::start().await;
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    p.ensure_ssh_key("livchat-web-1", KEY).await.unwrap();
    let server = p.create_server(&spec("web-1"), &quiet).await.unwrap();
    p.ensure_firewall(&FirewallSpec::ssh_and_web("livchat-web-1"), &server.id)
        .await
        .unwrap();
    // Still applied to the server: the provider refuses, and nothing is deleted.
    let e = p.delete_firewall("livchat-web-1").await.unwrap_err();
    assert!(e.to_string().contains("still applied"), "{e}");
    assert_eq!(fake.firewall_names(), ["livchat-web-1"]);

    p.delete_server(&server.id, &quiet).await.unwrap();
    p.delete_firewall("livchat-web-1").await.unwrap();
    p.delete_ssh_key("livchat-web-1").await.unwrap();
    assert!(fake.firewall_names().is_empty());
    assert!(fake.ssh_key_names().is_empty());
    // Gone already (a retried step): still a success, and no DELETE is sent.
    p.delete_firewall("livchat-web-1").await.unwrap();
    p.delete_ssh_key("livchat-web-1").await.unwrap();
    assert_eq!(
        fake.faults()
            .hits_of(&Method::DELETE, "/ssh_keys/{id}")
            .len(),
        1
    );
    // The same name can be registered again with another key afterwards.
    let other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC9BAWo9rxxokrp5VH0pof/87vrVi+PXhdZfSR7E+Qri other@host";
    p.ensure_ssh_key("livchat-web-1", other).await.unwrap();
    let e = p.delete_ssh_key("bad name!").await.unwrap_err();
    assert!(e.to_string().contains("name"), "{e}");
    assert_bodies_match_spec(fake.faults(), specs::hetzner());
}

#[tokio::test]
async fn a_zone_with_caa_and_https_records_lists_every_record() {
    let fake = FakeCloudflare::start().await;
    let c = cloudflare_at(&fake.url(), fake.token(), fast_policy());
    let zone = c.find_zone("Example.COM.").await.unwrap();
    assert_eq!(zone.id, ZONE_ID);
    let records = c.list_records(&zone).await.unwrap();
    let types: Vec<String> = records.iter().map(|r| r.record_type.to_string()).collect();
    for t in ["CAA", "HTTPS", "MX", "TXT", "A"] {
        assert!(types.contains(&t.to_owned()), "{t} missing from {types:?}");
    }
    let caa = records
        .iter()
        .find(|r| r.record_type == RecordType::Other("CAA".into()))
        .unwrap();
    assert_eq!(caa.content, "0 issue \"letsencrypt.org\"");
    assert_bodies_match_spec(fake.faults(), specs::cloudflare());
}

#[tokio::test]
async fn ensure_a_record_creates_then_updates_then_leaves_unchanged() {
    let fake = FakeCloudflare::start().await;
    let c = cloudflare_at(&fake.url(), fake.token(), fast_policy());
    let zone = c.find_zone(ZONE).await.unwrap();
    let opts = RecordOptions::default();
    let name = "n8n.example.com";
    let a = c
        .ensure_a_record(&zone, name, Ipv4Addr::new(203, 0, 113, 1), &opts)
        .await
        .unwrap();
    assert_eq!(a.change, Change::Created);
    assert_eq!(a.record.proxied, Some(false));
    let b = c
        .ensure_a_record(&zone, name, Ipv4Addr::new(203, 0, 113, 2), &opts)
        .await
        .unwrap();
    assert_eq!(
        (b.change, b.record.id.as_str()),
        (Change::Updated, a.record.id.as_str())
    );
    let same = c
        .ensure_a_record(&zone, name, Ipv4Addr::new(203, 0, 113, 2), &opts)
        .await
        .unwrap();
    assert_eq!(same.change, Change::Unchanged);
    let proxied = RecordOptions {
        proxied: true,
        ..opts.clone()
    };
    let p = c
        .ensure_a_record(&zone, name, Ipv4Addr::new(203, 0, 113, 2), &proxied)
        .await
        .unwrap();
    assert_eq!((p.change, p.record.proxied), (Change::Updated, Some(true)));
    let named = c.records_named(&zone, name).await.unwrap();
    assert_eq!(named.len(), 1);
    assert_eq!(named[0].content, "203.0.113.2");
    assert_bodies_match_spec(fake.faults(), specs::cloudflare());
}

#[tokio::test]
async fn an_a_record_never_clobbers_a_cname() {
    let fake = FakeCloudflare::start().await;
    let c = cloudflare_at(&fake.url(), fake.token(), fast_policy());
    let zone = c.find_zone(ZONE).await.unwrap();
    let opts = RecordOptions::default();
    // A CNAME made by hand: an A record turned into one.
    let a = c
        .ensure_a_record(
            &zone,
            "app.example.com",
            Ipv4Addr::new(203, 0, 113, 9),
            &opts,
        )
        .await
        .unwrap();
    c.update_record(
        &zone,
        &a.record.id,
        "app.example.com",
        RecordContent::Cname("www.example.com".into()),
        &opts,
    )
    .await
    .unwrap();
    let before = fake.records(ZONE_ID);
    let e = c
        .ensure_a_record(
            &zone,
            "app.example.com",
            Ipv4Addr::new(203, 0, 113, 1),
            &opts,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("it is a CNAME"), "{e}");
    assert_eq!(fake.records(ZONE_ID), before, "nothing half-changed");
}

#[tokio::test]
async fn missing_zones_names_outside_the_zone_and_missing_records() {
    let fake = FakeCloudflare::start().await;
    let c = cloudflare_at(&fake.url(), fake.token(), fast_policy());
    let e = c.find_zone("example.org").await.unwrap_err();
    assert!(
        matches!(&e, CloudError::ZoneNotFound { zone, .. } if zone == "example.org"),
        "{e:?}"
    );
    let zone = c.find_zone(ZONE).await.unwrap();
    let e = c
        .ensure_a_record(
            &zone,
            "n8n.example.org",
            Ipv4Addr::LOCALHOST,
            &RecordOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not inside the zone"), "{e}");
    let ttl = RecordOptions {
        proxied: false,
        ttl: 5,
    };
    let e = c
        .ensure_a_record(&zone, "n8n.example.com", Ipv4Addr::LOCALHOST, &ttl)
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("invalid ttl"), "{e}");
    c.delete_record(&zone, "00000000000000000000000000000bad")
        .await
        .unwrap();
    let www = c.records_named(&zone, "www.example.com").await.unwrap();
    c.delete_record(&zone, &www[0].id).await.unwrap();
    assert!(
        c.records_named(&zone, "www.example.com")
            .await
            .unwrap()
            .is_empty()
    );
    let gone = livchat_providers::Zone {
        id: "ffffffffffffffffffffffffffffffff".into(),
        name: "gone.example".into(),
        status: "active".into(),
    };
    let e = c.list_records(&gone).await.unwrap_err();
    assert!(matches!(e, CloudError::ZoneNotFound { .. }), "{e:?}");
    assert_bodies_match_spec(fake.faults(), specs::cloudflare());
}
