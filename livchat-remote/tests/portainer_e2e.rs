//! The same deploy, wait and remove as over SSH, but with the stack owned by Portainer: the
//! fake Portainer applies it to the real Swarm of the dockerd harness (`docker stack deploy`),
//! and health, logs and secrets go through Swarm over real SSH.

mod swarm_support;

use std::sync::Arc;
use std::time::Duration;

use fixtures::fake_portainer::{FakePortainer, FakePortainerOptions};
use livchat_remote::{
    ContainerPlatform, PlatformError, PortainerAddress, PortainerAuth, PortainerClient,
    PortainerPlatform, SecretDelivery, StackSecret, StackSpec,
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

/// The fake Portainer on the rig's engine, a client logged in as its admin, and the platform
/// with the rig's Swarm over SSH as its runtime.
async fn portainer_on(
    rig: &swarm_support::Rig,
) -> (FakePortainer, Arc<PortainerClient>, PortainerPlatform) {
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
    (fake, client, platform)
}

/// `PortainerPlatform` (over the fake Portainer, which applies stacks to the harness's swarm)
/// passes the `ContainerPlatform` conformance suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portainer_platform_passes_the_platform_conformance_suite() {
    let Some(rig) = rig().await else { return };
    let Some(busybox) = image(rig.engine, fixtures::images::busybox).await else {
        return;
    };
    let (fake, _client, platform) = portainer_on(&rig).await;
    swarm_support::conformance::check_platform(&platform, busybox, "pt").await;
    assert!(fake.stack_names().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_deployed_through_portainer_runs_on_the_swarm_and_is_removed() {
    let Some(rig) = rig().await else { return };
    let Some(busybox) = image(rig.engine, fixtures::images::busybox).await else {
        return;
    };
    let (fake, client, platform) = portainer_on(&rig).await;
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

/// #18: Portainer reached from the server itself, every request through an SSH `direct-tcpip`
/// channel of the real sshd's connection (the fake listens on the server's loopback only); a
/// wrong admin password is refused at login, before any stack call, and a port where nothing
/// listens is a transport error naming the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portainer_is_reached_through_an_ssh_tunnel_and_refuses_a_wrong_password_at_login() {
    let Some(rig) = rig().await else { return };
    let fake = FakePortainer::start(FakePortainerOptions {
        admin: Some(("admin".into(), "correct-horse-battery".into())),
        docker_host: Some(rig.engine.host()),
        docker_binary: fixtures::tools::find("docker"),
        ..FakePortainerOptions::default()
    })
    .unwrap();
    let port: u16 = fake.url().rsplit(':').next().unwrap().parse().unwrap();
    let address = PortainerAddress::direct("127.0.0.1", port);
    let auth = |password: &str| PortainerAuth::Password {
        username: "admin".into(),
        password: SecretString::from(password.to_string()),
    };
    let ssh: Arc<dyn ContainerPlatform> = Arc::new(rig.platform());

    let platform = PortainerPlatform::connect_over_ssh(
        rig.executor.clone(),
        &address,
        auth("correct-horse-battery"),
        ssh.clone(),
    )
    .await
    .unwrap();
    assert_eq!(platform.swarm_id(), fake.swarm_id());
    assert!(platform.client().stacks().await.unwrap().is_empty());
    let tunnels = rig
        .commands()
        .iter()
        .filter(|c| *c == &format!("tunnel 127.0.0.1:{port}"))
        .count();
    assert!(
        tunnels >= 1,
        "no request went through the tunnel: {:?}",
        rig.commands()
    );

    let asked = fake.requests().len();
    let err = PortainerPlatform::connect_over_ssh(
        rig.executor.clone(),
        &address,
        auth("wrong-password-123"),
        ssh.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, livchat_remote::PortainerError::Unauthorized { .. }),
        "{err}"
    );
    assert_eq!(fake.requests()[asked..], ["POST /api/auth".to_string()]);

    let closed = fixtures::net::free_port();
    let err = PortainerPlatform::connect_over_ssh(
        rig.executor.clone(),
        &PortainerAddress::direct("127.0.0.1", closed),
        auth("correct-horse-battery"),
        ssh,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, livchat_remote::PortainerError::Transport { url, .. } if url == &format!("http://127.0.0.1:{closed}")),
        "{err}"
    );
}
