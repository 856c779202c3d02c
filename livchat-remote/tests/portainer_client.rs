//! The Portainer client against the fake Portainer (real HTTP on 127.0.0.1, answering as the
//! vendor spec says); stacks are only recorded here (no engine), see `portainer_e2e.rs` for
//! stacks applied to a real Swarm.

use fixtures::fake_portainer::{FakePortainer, FakePortainerOptions};
use livchat_remote::{PortainerAuth, PortainerClient, PortainerError};
use secrecy::SecretString;

const ADMIN_PASSWORD: &str = "correct-horse-battery";

fn fake_with_admin() -> FakePortainer {
    FakePortainer::start(FakePortainerOptions {
        admin: Some(("admin".into(), ADMIN_PASSWORD.into())),
        api_keys: vec!["ptr_test_key".into()],
        ..FakePortainerOptions::default()
    })
    .unwrap()
}

fn password_client(url: &str, password: &str) -> PortainerClient {
    PortainerClient::new(
        url,
        PortainerAuth::Password {
            username: "admin".into(),
            password: SecretString::from(password.to_string()),
        },
    )
    .unwrap()
}

#[tokio::test]
async fn fresh_install_gets_its_admin_once_and_short_passwords_are_refused() {
    let fake = FakePortainer::start(FakePortainerOptions::default()).unwrap();
    let client = password_client(&fake.url(), ADMIN_PASSWORD);
    assert!(!client.admin_initialized().await.unwrap());

    let err = client
        .init_admin("admin", &SecretString::from("short".to_string()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PortainerError::Api { status: 400, message } if message.contains("minimum length")),
        "{err}"
    );

    client
        .init_admin("admin", &SecretString::from(ADMIN_PASSWORD.to_string()))
        .await
        .unwrap();
    assert!(client.admin_initialized().await.unwrap());
    let err = client
        .init_admin("admin", &SecretString::from(ADMIN_PASSWORD.to_string()))
        .await
        .unwrap_err();
    assert!(matches!(err, PortainerError::Conflict { .. }), "{err}");
    client.login().await.unwrap();
}

#[tokio::test]
async fn wrong_password_is_unauthorized_and_never_echoed() {
    let fake = fake_with_admin();
    let client = password_client(&fake.url(), "not-the-password-123");
    let err = client.login().await.unwrap_err();
    assert!(matches!(err, PortainerError::Unauthorized { .. }), "{err}");
    let err = client.endpoints().await.unwrap_err();
    assert!(matches!(err, PortainerError::Unauthorized { .. }), "{err}");
    for text in [err.to_string(), format!("{err:?}"), format!("{client:?}")] {
        assert!(!text.contains("not-the-password-123"), "{text}");
    }
}

#[tokio::test]
async fn swarm_stack_lifecycle_with_jwt() {
    let fake = fake_with_admin();
    let client = password_client(&fake.url(), ADMIN_PASSWORD);
    let endpoint = client.docker_endpoint().await.unwrap();
    assert_eq!(endpoint.id, 1);
    assert_eq!(endpoint.snapshot_swarm_id(), Some(fake.swarm_id()));
    let swarm_id = client.swarm_id(endpoint.id).await.unwrap();
    assert_eq!(swarm_id, fake.swarm_id());

    let v1 = "services:\n  web:\n    image: livchat-test/busybox:1\n";
    let created = client
        .create_swarm_stack(endpoint.id, &swarm_id, "web", v1)
        .await
        .unwrap();
    assert_eq!((created.name.as_str(), created.kind), ("web", 1));
    assert_eq!(created.swarm_id, swarm_id);

    let err = client
        .create_swarm_stack(endpoint.id, &swarm_id, "web", v1)
        .await
        .unwrap_err();
    assert!(matches!(err, PortainerError::Conflict { .. }), "{err}");

    let found = client
        .stack_by_name("web", &swarm_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, created.id);
    assert_eq!(client.stack_file(created.id).await.unwrap(), v1);

    let v2 =
        "services:\n  web:\n    image: livchat-test/busybox:1\n    command: [\"sleep\", \"60\"]\n";
    client
        .update_stack(created.id, endpoint.id, v2)
        .await
        .unwrap();
    assert_eq!(client.stack_file(created.id).await.unwrap(), v2);

    client.delete_stack(created.id, endpoint.id).await.unwrap();
    let err = client.stack(created.id).await.unwrap_err();
    assert!(matches!(err, PortainerError::NotFound { .. }), "{err}");
    let err = client
        .delete_stack(created.id, endpoint.id)
        .await
        .unwrap_err();
    assert!(matches!(err, PortainerError::NotFound { .. }), "{err}");
    assert!(client.stacks().await.unwrap().is_empty());

    // Logged in once; every later call reused the JWT.
    let logins = fake
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST /api/auth"))
        .count();
    assert_eq!(logins, 1, "{:#?}", fake.requests());
    // The spec requires endpointId on update and delete; the client always sends it.
    assert!(
        fake.requests()
            .iter()
            .filter(|r| r.starts_with("DELETE ") || r.starts_with("PUT "))
            .all(|r| r.contains("endpointId=1")),
        "{:#?}",
        fake.requests()
    );
}

#[tokio::test]
async fn api_key_authenticates_without_login_and_a_bad_key_is_unauthorized() {
    let fake = fake_with_admin();
    let good = PortainerClient::new(
        &fake.url(),
        PortainerAuth::ApiKey(SecretString::from("ptr_test_key".to_string())),
    )
    .unwrap();
    assert_eq!(good.endpoints().await.unwrap().len(), 1);
    assert!(
        !fake
            .requests()
            .iter()
            .any(|r| r.starts_with("POST /api/auth"))
    );

    let bad = PortainerClient::new(
        &fake.url(),
        PortainerAuth::ApiKey(SecretString::from("ptr_wrong".to_string())),
    )
    .unwrap();
    let err = bad.stacks().await.unwrap_err();
    assert!(matches!(err, PortainerError::Unauthorized { .. }), "{err}");
    assert!(!format!("{bad:?}{err}").contains("ptr_wrong"));
}

#[tokio::test]
async fn server_errors_carry_portainers_message_and_details() {
    let fake = fake_with_admin();
    let client = password_client(&fake.url(), ADMIN_PASSWORD);
    client.login().await.unwrap();
    fake.fail_next(500, "Unable to retrieve stacks from the database");
    match client.stacks().await.unwrap_err() {
        PortainerError::Api { status, message } => {
            assert_eq!(status, 500);
            assert_eq!(
                message,
                "Unable to retrieve stacks from the database: injected by the test"
            );
        }
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn status_is_public_and_bad_urls_are_refused() {
    let fake = FakePortainer::start(FakePortainerOptions::default()).unwrap();
    let client = password_client(&fake.url(), ADMIN_PASSWORD);
    assert_eq!(client.status().await.unwrap().version, "2.23.0");
    let err = PortainerClient::new(
        "ftp://example.com",
        PortainerAuth::ApiKey(SecretString::from("k".to_string())),
    )
    .unwrap_err();
    assert!(err.to_string().contains("portainer url"), "{err}");
}
