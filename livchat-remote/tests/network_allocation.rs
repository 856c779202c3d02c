//! A swarm network just created reports an empty driver until the manager allocates it; the
//! platform asks again instead of refusing it (a CI run failed on that window).
#![cfg(feature = "mock")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use livchat_remote::executor::{ExecOutput, MockRemoteExecutor};
use livchat_remote::{ContainerPlatform, NetworkSpec, PlatformError, SwarmOverSsh};

fn inspect_output(driver: &str, scope: &str) -> ExecOutput {
    ExecOutput {
        exit_status: 0,
        stdout: format!(r#"{{"Name":"lc_net","Driver":"{driver}","Scope":"{scope}"}}"#)
            .into_bytes(),
        stderr: Vec::new(),
    }
}

fn platform_answering(
    answers: Vec<(&'static str, &'static str)>,
) -> (SwarmOverSsh, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let mut executor = MockRemoteExecutor::new();
    executor.expect_exec().returning(move |cmd, _| {
        assert_eq!(
            cmd.args[..2],
            ["network".to_string(), "inspect".to_string()]
        );
        let n = seen.fetch_add(1, Ordering::SeqCst);
        let (driver, scope) = answers[n.min(answers.len() - 1)];
        Ok(inspect_output(driver, scope))
    });
    (SwarmOverSsh::new(Arc::new(executor)), calls)
}

#[tokio::test]
async fn a_network_still_being_allocated_is_asked_again_and_accepted_once_it_is_overlay() {
    let (platform, calls) =
        platform_answering(vec![("", "swarm"), ("", "swarm"), ("overlay", "swarm")]);
    platform
        .ensure_network(&NetworkSpec::overlay("lc_net"))
        .await
        .expect("an overlay network being allocated is accepted once allocated");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_network_of_another_driver_is_still_refused_by_name() {
    let (platform, calls) = platform_answering(vec![("bridge", "local")]);
    let err = platform
        .ensure_network(&NetworkSpec::overlay("lc_net"))
        .await
        .unwrap_err();
    assert!(matches!(err, PlatformError::Invalid { .. }), "{err}");
    assert!(
        err.to_string().contains("lc_net exists with driver bridge"),
        "{err}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a settled answer is not asked again"
    );
}
