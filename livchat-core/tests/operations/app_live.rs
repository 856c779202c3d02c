//! `app_status` and `app_logs` against the container platform's mock: what the swarm says wins
//! over the state, every vault secret is redacted from what the server sends back, bad input
//! is refused naming the field before any connection, and a follow stops when cancelled.

use std::sync::{Arc, Mutex};

use livchat_core::ErrorKind;
use livchat_core::model::CancellationToken;
use livchat_core::ops::{AppLogLine, AppLogs, AppStatus, LiveState, Operation};
use livchat_remote::platform::{UpdateState, UpdateStatus};
use livchat_remote::{
    LogSink, PlatformError, RemoteError, ServiceMode, ServiceStatus, StackStatus,
};

use super::support::*;

const SECRET: &str = "n8n-db-password-0123456789";

fn service(name: &str, running: u64, desired: u64) -> ServiceStatus {
    ServiceStatus {
        nodes: Vec::new(),
        name: name.into(),
        full_name: format!("n8n_{name}"),
        image: format!("local/{name}:1"),
        mode: ServiceMode::Replicated,
        desired_replicas: desired,
        running_replicas: running,
        failed_tasks: 0,
        last_error: None,
        update: None,
    }
}

/// n8n's stack as the swarm reports it: `web` updated and running, `worker` crash-looping with
/// an error that quotes the database password.
fn n8n_stack() -> StackStatus {
    let mut web = service("web", 1, 1);
    web.update = Some(UpdateStatus {
        state: UpdateState::Completed,
        message: "update completed".into(),
    });
    let mut worker = service("worker", 0, 1);
    worker.failed_tasks = 3;
    worker.last_error = Some(format!("task: non-zero exit (1): bad password {SECRET}"));
    StackStatus {
        name: "n8n".into(),
        services: vec![web, worker],
    }
}

/// A server with n8n (and redis) recorded as running, the password in the vault.
fn world() -> World {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    world.put_deployment("web-1", "n8n", &[]);
    world.set_secret("app.n8n.db_password", SECRET);
    world
}

fn connected(mocks: &mut Mocks) {
    connects_pinned(&mut mocks.connector, MockRemoteExecutor::new(), 1);
}

#[tokio::test]
async fn status_of_an_app_is_the_swarms_word_not_the_state_and_hides_secrets() {
    let world = world();
    let mut mocks = Mocks::default();
    connected(&mut mocks);
    mocks
        .platform
        .expect_stack_status()
        .withf(|name| name == "n8n")
        .times(1)
        .returning(|_| Ok(n8n_stack()));
    let orch = world.build(mocks);
    let views = AppStatus {
        server: "web-1".into(),
        app: Some("n8n".into()),
    }
    .run(&orch)
    .await
    .unwrap();
    assert_eq!(views.len(), 1);
    let n8n = &views[0];
    // The state says running; the swarm says a service is down.
    assert_eq!(n8n.state, LiveState::Degraded);
    let web = &n8n.services[0];
    assert_eq!((web.name.as_str(), web.running, web.desired), ("web", 1, 1));
    assert_eq!(web.update_state.as_deref(), Some("completed"));
    let worker = &n8n.services[1];
    assert_eq!(
        (worker.running, worker.desired, worker.failed_tasks),
        (0, 1, 3)
    );
    assert_eq!(
        worker.last_error.as_deref(),
        Some("task: non-zero exit (1): bad password [REDACTED]")
    );
    verify(orch);
}

#[tokio::test]
async fn status_of_a_server_lists_every_deployed_app_and_marks_a_stack_gone_from_the_swarm() {
    let world = world();
    world.put_deployment("web-1", "redis", &[]);
    let mut mocks = Mocks::default();
    connected(&mut mocks);
    mocks
        .platform
        .expect_stack_status()
        .times(2)
        .returning(|name| match name {
            "n8n" => {
                let mut stack = n8n_stack();
                stack.services.truncate(1);
                Ok(stack)
            }
            other => Err(PlatformError::NotFound {
                what: format!("stack {other}"),
            }),
        });
    let orch = world.build(mocks);
    let views = AppStatus {
        server: "web-1".into(),
        app: None,
    }
    .run(&orch)
    .await
    .unwrap();
    let states: Vec<(&str, LiveState)> = views.iter().map(|v| (v.app.as_str(), v.state)).collect();
    assert_eq!(
        states,
        [("n8n", LiveState::Running), ("redis", LiveState::Missing)]
    );
    verify(orch);
}

#[tokio::test]
async fn status_and_logs_of_what_is_not_there_are_not_found_without_connecting() {
    // No connector expectation: any connection attempt panics.
    let world = world();
    let orch = world.build(Mocks::default());
    let err = AppStatus {
        server: "ghost".into(),
        app: None,
    }
    .run(&orch)
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("server `ghost`"), "{err}");
    for run in [
        AppStatus {
            server: "web-1".into(),
            app: Some("chatwoot".into()),
        }
        .run(&orch)
        .await
        .map(|_| ()),
        logs("chatwoot", None, None).run(&orch).await.map(|_| ()),
    ] {
        let err = run.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let text = err.to_string();
        assert!(
            text.contains("app `chatwoot` not found on server web-1"),
            "{text}"
        );
    }
    verify(orch);
}

fn logs(app: &str, service: Option<&str>, tail: Option<usize>) -> AppLogs {
    AppLogs {
        server: "web-1".into(),
        app: app.into(),
        service: service.map(String::from),
        tail,
    }
}

#[tokio::test]
async fn logs_bad_input_names_the_field_before_anything_is_reached() {
    let world = world();
    let orch = world.build(Mocks::default());
    let cases = [
        (logs("n8n", None, Some(0)), "tail"),
        (logs("n8n", None, Some(10_001)), "tail"),
        (logs("n8n", Some("web;rm -rf /"), None), "service"),
        (logs("n8n", Some("-x"), None), "service"),
    ];
    for (request, field) in cases {
        let err = request.clone().run(&orch).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadInput, "{request:?}: {err}");
        assert_eq!(err.field(), Some(field), "{request:?}: {err}");
        let err = request
            .follow(&orch, CancellationToken::new(), |_| {})
            .await
            .unwrap_err();
        assert_eq!(err.field(), Some(field));
    }
    verify(orch);
}

#[tokio::test]
async fn logs_of_every_service_come_grouped_by_service_with_vault_secrets_redacted() {
    let world = world();
    let mut mocks = Mocks::default();
    connected(&mut mocks);
    mocks
        .platform
        .expect_stack_status()
        .times(1)
        .returning(|_| Ok(n8n_stack()));
    mocks
        .platform
        .expect_service_logs()
        .withf(|stack, _, tail| stack == "n8n" && *tail == 20)
        .times(2)
        .returning(|_, service, _| {
            Ok(vec![
                format!("{service} started"),
                format!("{service} connects with password={SECRET}"),
            ])
        });
    let orch = world.build(mocks);
    let view = logs("n8n", None, Some(20)).run(&orch).await.unwrap();
    assert_eq!(view.stack, "n8n");
    assert!(!view.truncated);
    let lines: Vec<(String, String)> = view
        .lines
        .into_iter()
        .map(|l| (l.service, l.line))
        .collect();
    let expected = ["web", "worker"].into_iter().flat_map(|s| {
        [
            (s.to_string(), format!("{s} started")),
            (
                s.to_string(),
                format!("{s} connects with password=[REDACTED]"),
            ),
        ]
    });
    assert_eq!(lines, expected.collect::<Vec<_>>());
    verify(orch);
}

#[tokio::test]
async fn logs_of_a_service_the_stack_lacks_name_the_services_it_has() {
    let world = world();
    let mut mocks = Mocks::default();
    connected(&mut mocks);
    mocks
        .platform
        .expect_stack_status()
        .times(1)
        .returning(|_| Ok(n8n_stack()));
    let orch = world.build(mocks);
    let err = logs("n8n", Some("db"), None).run(&orch).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string()
            .contains("service `db` not found in app n8n; its services: web, worker"),
        "{err}"
    );
    verify(orch);
}

#[tokio::test]
async fn a_follow_streams_redacted_lines_and_one_failing_service_stops_the_others() {
    let world = world();
    let mut mocks = Mocks::default();
    connected(&mut mocks);
    mocks
        .platform
        .expect_stack_status()
        .times(1)
        .returning(|_| Ok(n8n_stack()));
    let web_token: Arc<Mutex<Option<CancellationToken>>> = Arc::default();
    let seen = web_token.clone();
    mocks
        .platform
        .expect_follow_service_logs()
        .times(2)
        .returning(move |_, service, tail, sink: LogSink, cancel| {
            assert_eq!(tail, 5);
            if service == "web" {
                sink(format!("hello {SECRET}"));
                *seen.lock().unwrap() = Some(cancel);
                Ok(())
            } else {
                Err(PlatformError::Remote(RemoteError::Disconnected {
                    server: "web-1".into(),
                    reason: "reset".into(),
                }))
            }
        });
    let orch = world.build(mocks);
    let got: Arc<Mutex<Vec<AppLogLine>>> = Arc::default();
    let sink = got.clone();
    let caller = CancellationToken::new();
    let err = logs("n8n", None, Some(5))
        .follow(&orch, caller.clone(), move |l| sink.lock().unwrap().push(l))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("connection to web-1 lost"),
        "{err}"
    );
    assert_eq!(
        *got.lock().unwrap(),
        vec![AppLogLine {
            service: "web".into(),
            line: "hello [REDACTED]".into(),
        }]
    );
    let web = web_token.lock().unwrap().take().unwrap();
    assert!(web.is_cancelled(), "the failure stops the other follows");
    assert!(!caller.is_cancelled(), "but not the caller's token");
    verify(orch);
}

#[tokio::test]
async fn a_follow_hands_the_callers_cancel_to_the_platform() {
    let world = world();
    let mut mocks = Mocks::default();
    connected(&mut mocks);
    mocks
        .platform
        .expect_stack_status()
        .times(1)
        .returning(|_| Ok(n8n_stack()));
    mocks
        .platform
        .expect_follow_service_logs()
        .withf(|_, service, _, _, cancel| service == "worker" && cancel.is_cancelled())
        .times(1)
        .returning(|_, _, _, _, _| Ok(()));
    let orch = world.build(mocks);
    let caller = CancellationToken::new();
    caller.cancel();
    logs("n8n", Some("worker"), None)
        .follow(&orch, caller, |_| {})
        .await
        .unwrap();
    verify(orch);
}
