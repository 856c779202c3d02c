//! The real clients against Prism serving the vendors' own OpenAPI documents.
//!
//! Prism validates every request (path, query, headers, body) against the spec and answers
//! 4xx when one is wrong, so each call below succeeding (or failing only with what the spec's
//! static examples dictate) shows the product's requests are what the vendor accepts, and the
//! `hcloud` models and our tolerant Cloudflare types decode the spec's responses.
//!
//! Prism's static examples fix some outcomes: every Hetzner action example ends in
//! `status: "error"` with code `action_failed`, so operations that wait for an action end in
//! `ActionFailed { code: "action_failed" }` after all their requests were accepted. Any other
//! error (a 4xx from Prism's validation, a decode error) fails the test.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use common::*;
use livchat_providers::{
    CloudError, DnsClient, FirewallSpec, Provider, RecordOptions, RetryPolicy, ServerId,
    ServerSpec, Zone,
};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDwaH1OLWzg6PZtYyhkqbYDwlEUh7QQSwXZQonbJiWxb user@host";

fn policy() -> RetryPolicy {
    // Prism never answers 429/5xx on its own; one attempt makes a rejection surface at once.
    RetryPolicy {
        max_attempts: 1,
        ..fast_policy()
    }
}

/// Ok, or the action failure Prism's examples encode; anything else is a rejected call.
fn accepted<T: std::fmt::Debug>(what: &str, r: Result<T, CloudError>) {
    match r {
        Ok(_) => {}
        Err(CloudError::ActionFailed { code, .. }) if code == "action_failed" => {}
        Err(e) => panic!("{what}: Prism rejected or we misread the call: {e}"),
    }
}

macro_rules! hetzner {
    () => {{
        let Some(prism) = prism_hetzner() else { return };
        hetzner_at(&prism.url, "prism-token", policy())
    }};
}

macro_rules! cloudflare {
    () => {{
        let Some(prism) = prism_cloudflare() else {
            return;
        };
        cloudflare_at(&prism.url, "prism-token", policy())
    }};
}

#[tokio::test]
async fn hetzner_catalog_calls_are_accepted_and_decode() {
    let p = hetzner!();
    let locations = p.list_locations().await.expect("list locations");
    assert!(locations.iter().any(|l| l.name == "fsn1"), "{locations:?}");
    let types = p.list_server_types().await.expect("list server types");
    let t = types
        .iter()
        .find(|t| t.name == "cpx22")
        .expect("example type");
    assert!(!t.prices.is_empty() && !t.prices[0].monthly_gross.is_empty());
    let images = p.list_images().await.expect("list images");
    assert!(!images.is_empty());
    prism_hetzner().unwrap().assert_received_valid(&[
        ("get", "/locations"),
        ("get", "/server_types"),
        ("get", "/images"),
    ]);
}

#[tokio::test]
async fn hetzner_ssh_key_registration_is_accepted() {
    let p = hetzner!();
    // Prism's example key has another fingerprint, so this lists then creates.
    let k = p
        .ensure_ssh_key("livchat-web-1", KEY)
        .await
        .expect("ensure ssh key");
    assert!(k.id > 0);
    prism_hetzner()
        .unwrap()
        .assert_received_valid(&[("get", "/ssh_keys"), ("post", "/ssh_keys")]);
}

#[tokio::test]
async fn hetzner_server_life_cycle_calls_are_accepted() {
    let p = hetzner!();
    let spec = ServerSpec {
        name: "web-1".into(),
        // The only type, location and image the spec's examples offer.
        server_type: "cpx22".into(),
        location: "fsn1".into(),
        image: "ubuntu-24.04".into(),
        ssh_keys: vec!["livchat-web-1".into()],
        labels: BTreeMap::from([("role".to_owned(), "app".to_owned())]),
    };
    accepted("create server", p.create_server(&spec, &quiet).await);
    let id = ServerId::from(42);
    assert!(p.find_server("web-1").await.expect("find server").is_none());
    accepted("delete server", p.delete_server(&id, &quiet).await);
    prism_hetzner().unwrap().assert_received_valid(&[
        ("get", "/servers"),
        ("get", "/locations"),
        ("get", "/server_types"),
        ("get", "/images"),
        ("post", "/servers"),
        ("get", "/actions/"),
        ("delete", "/servers/42"),
    ]);
}

#[tokio::test]
async fn hetzner_firewall_calls_are_accepted() {
    let p = hetzner!();
    // A new name: find, then create.
    accepted(
        "create firewall",
        p.ensure_firewall(
            &FirewallSpec::ssh_and_web("livchat-web-1"),
            &ServerId::from(42),
        )
        .await,
    );
    // Prism's example firewall is named `new-name` and its labels (the spec's example) lack
    // `managed-by=livchat`: LivChat did not create it, so its rules are not changed (issue
    // #19) and it is not deleted. Updating and deleting LivChat's own firewalls is checked
    // against the stateful fake (`fakes.rs`), which keeps the labels it was given.
    let err = p
        .ensure_firewall(&FirewallSpec::ssh_and_web("new-name"), &ServerId::from(43))
        .await
        .expect_err("a firewall without the label is not taken over");
    assert!(
        matches!(&err, CloudError::NameTaken { name, .. } if name == "new-name"),
        "{err}"
    );
    accepted("delete firewall", p.delete_firewall("new-name").await);
    // Prism's example key has another name: found by name, nothing to delete.
    accepted("delete ssh key", p.delete_ssh_key("livchat-web-1").await);
    prism_hetzner().unwrap().assert_received_valid(&[
        ("get", "/firewalls"),
        ("post", "/firewalls"),
        ("get", "/ssh_keys"),
    ]);
}

#[tokio::test]
async fn cloudflare_zone_and_record_calls_are_accepted() {
    let c = cloudflare!();
    let zone: Zone = c.find_zone("example.com").await.expect("find zone");
    assert_eq!(zone.id, "023e105f4ecef8ad9ca31a8372d0c353");
    let all = c.list_records(&zone).await.expect("list records");
    assert!(!all.is_empty());
    c.records_named(&zone, "n8n.example.com")
        .await
        .expect("records named");
    // Prism's list example holds an A record for example.com, so ensuring another address
    // there updates it (PUT) and a new name creates (POST).
    let opts = RecordOptions::default();
    let updated = c
        .ensure_a_record(&zone, "example.com", Ipv4Addr::new(203, 0, 113, 9), &opts)
        .await;
    // Prism's list example has no record id (its own spec violation), so the PUT is refused
    // locally by id validation; the list call itself was accepted.
    assert!(
        matches!(
            &updated,
            Ok(_)
                | Err(CloudError::InvalidInput {
                    field: "record id",
                    ..
                })
        ),
        "{updated:?}"
    );
    let created = c
        .ensure_a_record(
            &zone,
            "n8n.example.com",
            Ipv4Addr::new(203, 0, 113, 9),
            &opts,
        )
        .await
        .expect("create A record");
    assert_eq!(created.change, livchat_providers::Change::Created);
    c.update_record(
        &zone,
        "023e105f4ecef8ad9ca31a8372d0c353",
        "n8n.example.com",
        livchat_providers::RecordContent::A(Ipv4Addr::new(203, 0, 113, 10)),
        &opts,
    )
    .await
    .expect("update record");
    c.delete_record(&zone, "023e105f4ecef8ad9ca31a8372d0c353")
        .await
        .expect("delete record");
    prism_cloudflare().unwrap().assert_received_valid(&[
        ("get", "/zones"),
        ("get", "/zones/023e105f4ecef8ad9ca31a8372d0c353/dns_records"),
        (
            "post",
            "/zones/023e105f4ecef8ad9ca31a8372d0c353/dns_records",
        ),
        (
            "put",
            "/zones/023e105f4ecef8ad9ca31a8372d0c353/dns_records/",
        ),
        (
            "delete",
            "/zones/023e105f4ecef8ad9ca31a8372d0c353/dns_records/",
        ),
    ]);
}
