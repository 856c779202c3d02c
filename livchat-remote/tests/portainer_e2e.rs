//! The same deploy, wait and remove as over SSH, but with the stack owned by Portainer: the
//! fake Portainer applies it to the real Swarm of the dockerd harness (`docker stack deploy`),
//! and health, logs and secrets go through Swarm over real SSH.

mod swarm_support;

use std::sync::Arc;
use std::time::Duration;

use fixtures::fake_portainer::{FakePortainer, FakePortainerOptions};
use livchat_remote::{
    ContainerPlatform, PlatformError, PortainerAuth, PortainerClient, PortainerPlatform,
    SecretDelivery, StackSecret, StackSpec,
};
use secrecy::SecretString;
use swarm_support::{image, patient, rig};

fn web_stack(busybox: &str, greeting: &str) -> String {
    format!(
        r#"version: "3.8"
services:
  server:
    image: {busybox}
    command: ["sh", "-c", "while true; do echo {greeting} | nc -l -p 8080; done"]
    deploy:
      endpoint_mode: dnsrr
  client:
    image: {busybox}
    command: ["sh", "-c", "cat /run/secrets/pweb_token >/dev/null; while true; do nc server 8080 </dev/null; sleep 1; done"]
    secrets: [pweb_token]
    deploy:
      endpoint_mode: dnsrr
secrets:
  pweb_token:
    external: true
"#
    )
}

async fn logs_contain(platform: &dyn ContainerPlatform, needle: &str) -> bool {
    for _ in 0..40 {
        let logs = platform.service_logs("pweb", "client", 5).await.unwrap();
        if logs.iter().any(|l| l.trim() == needle) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_deployed_through_portainer_runs_on_the_swarm_and_is_removed() {
    let Some(rig) = rig().await else { return };
    let Some(busybox) = image(rig.engine, fixtures::images::busybox).await else {
        return;
    };
    let fake = FakePortainer::start(FakePortainerOptions {
        admin: Some(("admin".into(), "correct-horse-battery".into())),
        docker_host: Some(rig.engine.host()),
        docker_binary: fixtures::tools::find("docker"),
        ..FakePortainerOptions::default()
    })
    .unwrap();
    let client = Arc::new(
        PortainerClient::new(
            &fake.url(),
            PortainerAuth::Password {
                username: "admin".into(),
                password: SecretString::from("correct-horse-battery".to_string()),
            },
        )
        .unwrap(),
    );
    let ssh: Arc<dyn ContainerPlatform> = Arc::new(rig.platform());
    let platform = PortainerPlatform::connect(client.clone(), ssh)
        .await
        .unwrap();
    assert_eq!(platform.swarm_id(), fake.swarm_id());

    let spec = |greeting: &str| StackSpec {
        name: "pweb".into(),
        compose_yaml: web_stack(busybox, greeting),
        secrets: vec![StackSecret {
            name: "pweb_token".into(),
            value: SecretString::from("s3cret-token".to_string()),
            delivery: SecretDelivery::DockerSecret,
        }],
    };
    platform.deploy_stack(&spec("hello")).await.unwrap();
    platform
        .wait_healthy("pweb", patient(Duration::from_secs(90)))
        .await
        .unwrap();
    assert_eq!(fake.stack_names(), vec!["pweb".to_string()]);
    assert!(
        logs_contain(&platform, "hello").await,
        "no greeting over the overlay"
    );

    // A second deploy of the same name is an update of Portainer's stack, not a new one.
    platform.deploy_stack(&spec("bonjour")).await.unwrap();
    platform
        .wait_healthy("pweb", patient(Duration::from_secs(90)))
        .await
        .unwrap();
    assert!(
        logs_contain(&platform, "bonjour").await,
        "the update did not apply"
    );
    let stack = client
        .stack_by_name("pweb", platform.swarm_id())
        .await
        .unwrap()
        .unwrap();
    assert!(
        client
            .stack_file(stack.id)
            .await
            .unwrap()
            .contains("bonjour")
    );
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.starts_with("PUT /api/stacks/"))
    );

    platform.remove_stack("pweb").await.unwrap();
    assert!(fake.stack_names().is_empty());
    assert!(matches!(
        platform.stack_status("pweb").await,
        Err(PlatformError::NotFound { .. })
    ));
}
