//! The one conformance suite every [`ContainerPlatform`] must pass (as the store's
//! `tests/common/conformance.rs` is for `Store`): what core relies on from any platform,
//! checked on a real swarm. Run on `SwarmOverSsh` (`swarm_e2e.rs`) and on `PortainerPlatform`
//! over the spec-following fake Portainer that applies stacks to the same engine
//! (`portainer_e2e.rs`).
//!
//! It needs a platform on a swarm with an image that has `sh` and `sleep` (busybox), and
//! names its network, stack and secret with `prefix` so it can share a swarm with other tests.

use std::time::Duration;

use livchat_remote::{
    ContainerPlatform, NetworkSpec, PlatformError, RemoteError, SecretDelivery, ServiceExec,
    StackSecret, StackSpec, WaitOptions,
};
use secrecy::{SecretBox, SecretString};
use tokio_util::sync::CancellationToken;

/// Patient for a slow CI machine, but polling often and settling briefly: the stack only
/// sleeps, and the suite waits for it twice.
fn brisk() -> WaitOptions {
    WaitOptions {
        timeout: Duration::from_secs(120),
        poll_interval: Duration::from_millis(300),
        settle: Duration::from_secs(1),
        ..WaitOptions::default()
    }
}

fn stack_yaml(image: &str, network: &str, secret: &str) -> String {
    format!(
        r#"version: "3.8"
services:
  app:
    image: {image}
    command: ["sh", "-c", "test -s /run/secrets/{secret} && exec sleep 3600"]
    secrets: [{secret}]
    deploy:
      endpoint_mode: dnsrr
    networks: [shared]
networks:
  shared:
    external: true
    name: {network}
secrets:
  {secret}:
    external: true
"#
    )
}

fn exec(stack: &str, service: &str, argv: &[&str], stdin: Option<&str>) -> ServiceExec {
    ServiceExec {
        stack: stack.into(),
        service: service.into(),
        argv: argv.iter().map(|a| a.to_string()).collect(),
        stdin: stdin.map(|s| SecretBox::new(s.as_bytes().to_vec().into_boxed_slice())),
        user: None,
        timeout: Duration::from_secs(60),
        cancel: CancellationToken::new(),
    }
}

/// A name refused by its allowlist, before anything was sent.
fn is_invalid<T: std::fmt::Debug>(result: &Result<T, PlatformError>) -> bool {
    matches!(
        result,
        Err(PlatformError::Invalid { .. } | PlatformError::Remote(RemoteError::Invalid { .. }))
    )
}

fn is_not_found<T: std::fmt::Debug>(result: &Result<T, PlatformError>) -> bool {
    matches!(result, Err(PlatformError::NotFound { .. }))
}

/// Runs every check against `platform`; leaves only its network behind.
pub async fn check_platform(platform: &dyn ContainerPlatform, image: &str, prefix: &str) {
    let stack = format!("{prefix}conf");
    let network = NetworkSpec::overlay(format!("{prefix}conf_net"));
    let secret = format!("{prefix}conf_token");
    let spec_named = |name: &str, compose_yaml: String| StackSpec {
        name: name.into(),
        compose_yaml,
        secrets: vec![StackSecret {
            name: secret.clone(),
            value: SecretString::from("conformance-token".to_string()),
            delivery: SecretDelivery::DockerSecret,
        }],
    };
    let spec = spec_named(&stack, stack_yaml(image, &network.name, &secret));

    // Names are checked before anything is sent.
    for bad in ["-x", "a;b", ""] {
        let r = platform.stack_status(bad).await;
        assert!(is_invalid(&r), "{bad:?}: {r:?}");
    }
    let hostile = spec_named("$(reboot)", spec.compose_yaml.clone());
    let r = platform.deploy_stack(&hostile).await;
    assert!(is_invalid(&r), "{r:?}");
    // A stack file the schema refuses is refused before anything changes.
    let r = platform
        .deploy_stack(&spec_named(&stack, "services: 42\n".into()))
        .await;
    assert!(
        matches!(r, Err(PlatformError::InvalidStack { .. })),
        "{r:?}"
    );

    // What is absent is the typed not-found error; removing it succeeds.
    assert!(is_not_found(&platform.stack_status(&stack).await));
    assert!(is_not_found(
        &platform
            .exec_in_service(exec(&stack, "app", &["true"], None))
            .await
    ));
    platform
        .remove_stack(&stack)
        .await
        .expect("removing an absent stack");
    assert_eq!(
        platform.remove_stack_volumes(&stack).await.unwrap(),
        Vec::<String>::new()
    );

    // Ensuring a network is idempotent.
    platform.ensure_network(&network).await.unwrap();
    platform.ensure_network(&network).await.unwrap();

    // Deploy, then the stack is listed by name with its service and becomes healthy.
    platform.deploy_stack(&spec).await.unwrap();
    let healthy = platform
        .wait_healthy(&stack, brisk())
        .await
        .unwrap_or_else(|e| panic!("the conformance stack did not become healthy: {e}"));
    assert_eq!(healthy.name, stack);
    assert!(healthy.is_healthy());
    let status = platform.stack_status(&stack).await.unwrap();
    assert_eq!(status.name, stack);
    let app = status.service("app").expect("the stack's service");
    assert_eq!(app.full_name, format!("{stack}_app"));
    assert_eq!(app.desired_replicas, 1);

    // A redeploy of the same spec succeeds and leaves the same stack, healthy.
    platform.deploy_stack(&spec).await.unwrap();
    let again = platform.wait_healthy(&stack, brisk()).await.unwrap();
    let names = |s: &livchat_remote::StackStatus| {
        s.services
            .iter()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&again), names(&status));

    // exec: the program's output and exit status whatever it is, stdin delivered.
    let out = platform
        .exec_in_service(exec(
            &stack,
            "app",
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            None,
        ))
        .await
        .unwrap();
    assert_eq!(out.exit_status, 3);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "out");
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "err");
    let out = platform
        .exec_in_service(exec(&stack, "app", &["cat"], Some("from stdin")))
        .await
        .unwrap();
    assert_eq!(
        (out.exit_status, out.stdout.as_slice()),
        (0, &b"from stdin"[..])
    );
    assert!(is_not_found(
        &platform
            .exec_in_service(exec(&stack, "nope", &["true"], None))
            .await
    ));

    // Remove removes, and a second removal changes nothing.
    platform.remove_stack(&stack).await.unwrap();
    assert!(is_not_found(&platform.stack_status(&stack).await));
    platform.remove_stack(&stack).await.unwrap();
    // The secret it used can go now; an absent one counts as removed.
    let removed = platform
        .remove_secrets(&[secret.clone(), format!("{prefix}conf_absent")])
        .await
        .unwrap();
    assert_eq!(removed, [secret.clone(), format!("{prefix}conf_absent")]);
}
