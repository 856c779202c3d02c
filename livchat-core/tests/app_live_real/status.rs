//! `app_status` and `app_logs` of a stack deployed with the platform directly and recorded as
//! an app: replicas and update state from the swarm, the lines the container prints, the vault
//! secret it prints redacted, a follow that stops on cancel.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use livchat_core::ErrorKind;
use livchat_core::model::CancellationToken;
use livchat_core::ops::{AppLogs, AppStatus, LiveState, Operation};
use livchat_remote::{ContainerPlatform, SecretDelivery, StackSecret, StackSpec};
use secrecy::SecretString;

use super::rig::{SERVER, busybox, quick_wait, record_app, rig};

fn random_token() -> String {
    use rand::Rng;
    let n: u128 = rand::thread_rng().r#gen();
    format!("tok-{n:032x}")
}

/// A service that prints its version and the token it reads from a Docker secret, then idles.
/// `stop_grace_period` keeps the update short: `sleep` as PID 1 ignores SIGTERM.
fn probe_stack(image: &str, version: u32) -> String {
    format!(
        r#"version: "3.8"
services:
  web:
    image: {image}
    command: ["sh", "-c", "echo probe-started version=$$VERSION; echo token=$$(cat /run/secrets/probe_token); exec sleep 3600"]
    environment:
      VERSION: "{version}"
    secrets: [probe_token]
    stop_grace_period: 1s
    deploy:
      endpoint_mode: dnsrr
secrets:
  probe_token:
    external: true
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_logs_of_a_deployed_app_come_live_from_the_swarm_with_its_secret_redacted() {
    let Some(rig) = rig().await else { return };
    let Some(image) = busybox().await else { return };
    let (platform, orch) = (&rig.platform, &rig.orch);
    let token = random_token();
    orch.secret_set("app.probe.token", SecretString::from(token.clone()))
        .unwrap();
    let deploy = |version| StackSpec {
        name: "probe".into(),
        compose_yaml: probe_stack(image, version),
        secrets: vec![StackSecret {
            name: "probe_token".into(),
            value: SecretString::from(token.clone()),
            delivery: SecretDelivery::DockerSecret,
        }],
    };
    platform.deploy_stack(&deploy(1)).await.unwrap();
    platform.wait_healthy("probe", quick_wait()).await.unwrap();
    // An update, so the swarm has an UpdateStatus to report.
    platform.deploy_stack(&deploy(2)).await.unwrap();
    platform.wait_healthy("probe", quick_wait()).await.unwrap();
    record_app(&rig.store, "probe");
    // Recorded, but its stack is not on the swarm.
    record_app(&rig.store, "gone");

    let status = AppStatus {
        server: SERVER.into(),
        app: None,
    }
    .run(orch)
    .await
    .unwrap();
    let states: Vec<_> = status.iter().map(|v| (v.app.as_str(), v.state)).collect();
    assert_eq!(
        states,
        [("gone", LiveState::Missing), ("probe", LiveState::Running)]
    );
    let web = &status[1].services[0];
    assert_eq!((web.name.as_str(), web.running, web.desired), ("web", 1, 1));
    assert_eq!(web.update_state.as_deref(), Some("completed"), "{web:?}");
    assert_eq!(web.image, image);

    // The lines the container printed, the token among them redacted. Docker hands logs over
    // a moment after the container wrote them: poll briefly.
    let request = AppLogs {
        server: SERVER.into(),
        app: "probe".into(),
        service: Some("web".into()),
        tail: Some(50),
    };
    let mut lines = Vec::new();
    for _ in 0..30 {
        lines = request.clone().run(orch).await.unwrap().lines;
        if lines.iter().any(|l| l.line == "probe-started version=2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let text: Vec<&str> = lines.iter().map(|l| l.line.as_str()).collect();
    assert!(text.contains(&"probe-started version=2"), "{text:#?}");
    assert!(text.contains(&"token=[REDACTED]"), "{text:#?}");
    assert!(
        text.iter().all(|l| !l.contains(&token)),
        "the token reached the output: {text:#?}"
    );

    // A service the stack lacks is named with the ones it has.
    let err = AppLogs {
        service: Some("db".into()),
        ..request.clone()
    }
    .run(orch)
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("its services: web"), "{err}");

    // Follow: lines stream (redacted) and the follow ends when cancelled.
    let cancel = CancellationToken::new();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let (sink, stop) = (seen.clone(), cancel.clone());
    let follow = AppLogs {
        tail: Some(10),
        ..request
    }
    .follow(orch, cancel, move |l| {
        let done = l.line.starts_with("token=");
        sink.lock().unwrap().push(l.line);
        if done {
            stop.cancel();
        }
    });
    tokio::time::timeout(Duration::from_secs(60), follow)
        .await
        .expect("the follow ended once cancelled")
        .unwrap();
    let followed = seen.lock().unwrap().clone();
    assert!(
        followed.contains(&"token=[REDACTED]".to_string()),
        "{followed:#?}"
    );
    assert!(
        followed.iter().all(|l| !l.contains(&token)),
        "{followed:#?}"
    );

    platform.remove_stack("probe").await.unwrap();
    platform
        .remove_secrets(&["probe_token".to_string()])
        .await
        .unwrap();
    let err = AppLogs {
        server: SERVER.into(),
        app: "probe".into(),
        service: None,
        tail: None,
    }
    .run(orch)
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}
