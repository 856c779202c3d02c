//! An invalid stack is rejected before anything reaches the server: the executor is a mock
//! with no expectations, so any command or upload would fail the test.
#![cfg(feature = "mock")]

use std::sync::Arc;

use livchat_remote::executor::MockRemoteExecutor;
use livchat_remote::{ContainerPlatform, PlatformError, StackSpec, SwarmOverSsh};

#[tokio::test]
async fn invalid_stack_is_rejected_before_upload_with_the_schema_message() {
    let platform = SwarmOverSsh::new(Arc::new(MockRemoteExecutor::new()));
    let err = platform
        .deploy_stack(&StackSpec {
            name: "app".into(),
            compose_yaml:
                "version: \"3.8\"\nservices:\n  web:\n    image: nginx:1.27\n    deploy:\n      replicas: \"two\"\n"
                    .into(),
            secrets: Vec::new(),
        })
        .await
        .unwrap_err();
    match err {
        PlatformError::InvalidStack { path, message } => {
            assert_eq!(path, "/services/web/deploy/replicas");
            assert!(message.contains("is not of type \"integer\""), "{message}");
        }
        other => panic!("expected InvalidStack, got {other}"),
    }
}

#[tokio::test]
async fn hostile_stack_name_is_rejected_before_any_command() {
    let platform = SwarmOverSsh::new(Arc::new(MockRemoteExecutor::new()));
    for name in [
        "app; rm -rf /",
        "-x",
        "../etc",
        "App",
        "a b",
        "a\nb",
        "$(id)",
    ] {
        let err = platform
            .deploy_stack(&StackSpec {
                name: name.into(),
                compose_yaml: "version: \"3.8\"\nservices:\n  web:\n    image: nginx:1.27\n".into(),
                secrets: Vec::new(),
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("stack name"), "{name:?}: {err}");
        let err = platform.remove_stack(name).await.unwrap_err();
        assert!(err.to_string().contains("stack name"), "{name:?}: {err}");
    }
}
