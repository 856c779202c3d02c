//! The operation layer (`livchat_core::ops`): the registry every frontend is built from, the
//! typed requests with their validation and defaults, plans that touch nothing, the job
//! handle, and the API token.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use livchat_core::ErrorKind;
use livchat_core::ops::{self, JobOperation, Operation};
use livchat_store::{JobStatus, ServerStatus, SettingKey, Store};
use secrecy::ExposeSecret;

use super::support::*;

/// The tool names the MCP issue fixes; the registry must offer each.
const REQUIRED: &[&str] = &[
    "server_list",
    "server_show",
    "server_add",
    "server_create",
    "server_setup",
    "server_delete",
    "server_exec",
    "server_dns_update",
    "server_set_platform",
    "app_list",
    "app_show",
    "app_render",
    "app_deploy",
    "app_undeploy",
    "app_deployed",
    "job_list",
    "job_show",
    "job_logs",
    "job_wait",
    "job_cancel",
    "job_retry",
    "provider_info",
    "dns_list",
    "settings_get",
    "settings_set",
    "secret_names",
    "secret_set",
    "secret_delete",
];

#[test]
fn the_registry_names_every_operation_once_with_object_schemas() {
    let names: Vec<&str> = ops::operations().iter().map(|o| o.name).collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "duplicate names in {names:?}");
    for required in REQUIRED {
        assert!(
            unique.contains(required),
            "{required} missing from the registry"
        );
    }
    let clis: BTreeSet<&str> = ops::operations().iter().map(|o| o.cli).collect();
    assert_eq!(clis.len(), names.len(), "two operations share a CLI path");
    for op in ops::operations() {
        let input = serde_json::to_value((op.input_root)()).unwrap();
        assert_eq!(
            input["type"], "object",
            "{}: input is not an object: {input}",
            op.name
        );
        let output = serde_json::to_value((op.output_root)()).unwrap();
        assert!(output.is_object(), "{}: no output schema", op.name);
        assert!(
            !op.summary.is_empty() && !op.summary.contains('\n'),
            "{}",
            op.name
        );
    }
    let destroys: BTreeSet<&str> = ops::operations()
        .iter()
        .filter(|o| o.effect == ops::Effect::Destroy)
        .map(|o| o.name)
        .collect();
    for name in ["server_delete", "app_undeploy", "secret_delete"] {
        assert!(destroys.contains(name), "{name} must be marked destructive");
    }
}

#[test]
fn requests_refuse_unknown_fields_and_name_them() {
    let err = serde_json::from_value::<ops::ServerCreate>(serde_json::json!({
        "name": "web-1", "servertype": "cx22"
    }))
    .unwrap_err();
    assert!(err.to_string().contains("servertype"), "{err}");
}

#[tokio::test]
async fn server_create_takes_defaults_from_settings_and_names_the_missing_field() {
    let world = World::new();
    let orch = world.build(Mocks::default());
    let op = ops::ServerCreate {
        name: "web-1".into(),
        server_type: None,
        location: Some("nbg1".into()),
        image: None,
        keep_on_failure: false,
    };
    let err = op.plan(&orch).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput);
    assert_eq!(err.field(), Some("server_type"));

    world
        .store
        .update_settings("defaults", &mut |s| {
            s.set(SettingKey::DefaultServerType, "cx22")
        })
        .unwrap();
    let plan = op.plan(&orch).unwrap();
    let text = format!("{plan:?}");
    assert!(
        text.contains("cx22") && text.contains("debian-12"),
        "{text}"
    );
    assert!(world.jobs().is_empty(), "a plan records nothing");
}

#[tokio::test]
async fn server_create_refuses_a_bad_name_in_the_plan_too() {
    let world = World::new();
    let orch = world.build(Mocks::default());
    let op = ops::ServerCreate {
        name: "Web_1;rm".into(),
        server_type: Some("cx22".into()),
        location: Some("nbg1".into()),
        image: None,
        keep_on_failure: false,
    };
    let err = op.plan(&orch).unwrap_err();
    assert_eq!(
        (err.kind(), err.field()),
        (ErrorKind::BadInput, Some("name"))
    );
}

#[tokio::test]
async fn server_exec_bounds_its_timeout_and_needs_a_program() {
    let world = World::new();
    let orch = world.build(Mocks::default());
    for (timeout, argv) in [
        (Some(0), vec!["true"]),
        (Some(301), vec!["true"]),
        (None, vec![]),
    ] {
        let op = ops::ServerExec {
            server: "web-1".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            timeout_secs: timeout,
        };
        let err = op.run(&orch).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadInput, "{err}");
        let field = if argv.is_empty() {
            "argv"
        } else {
            "timeout_secs"
        };
        assert_eq!(err.field(), Some(field));
    }
}

#[tokio::test]
async fn app_deploy_params_are_a_map_checked_against_the_app() {
    let world = World::new();
    world.put_server(hetzner_server("web-1", ServerStatus::Ready, Some("lab")));
    let orch = world.build(Mocks::default());
    let op = ops::AppDeploy {
        node: None,
        node_label: None,
        server: "web-1".into(),
        app: "redis".into(),
        params: BTreeMap::from([("no_such_param".to_string(), "1".to_string())]),
        take_over_dns: false,
        force: false,
    };
    let err = op.plan(&orch).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput, "{err}");
    assert!(err.to_string().contains("no_such_param"), "{err}");
    assert!(world.jobs().is_empty());
}

#[tokio::test]
async fn app_undeploy_of_an_app_not_deployed_is_refused_before_any_job_exists() {
    let world = World::new();
    world.put_server(hetzner_server("web-1", ServerStatus::Failed, None));
    let orch = world.build(Mocks::default());
    let err = ops::AppUndeploy {
        server: "web-1".into(),
        app: "redis".into(),
        force: false,
        delete_data: false,
    }
    .run(&orch)
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(world.jobs().is_empty());
}

/// `take_over_dns` and `delete_data` are request fields, so REST and MCP callers get what the
/// CLI's `--take-over-dns` and `--delete-data` do; `delete_volumes` is still read as the old
/// name of `delete_data`.
#[tokio::test]
async fn app_deploy_take_over_dns_and_app_undeploy_delete_data_reach_the_job_from_json() {
    let world = World::new();
    world.put_server(hetzner_server("web-1", ServerStatus::Ready, Some("lab")));
    world.put_deployment("web-1", "redis", &[]);
    let orch = world.build(Mocks::default());
    let deploy: ops::AppDeploy = serde_json::from_value(serde_json::json!({
        "server": "web-1", "app": "redis", "take_over_dns": true
    }))
    .unwrap();
    let job = deploy.run(&orch).await.unwrap();
    let params = &world.jobs()[&job.id].params;
    assert_eq!(params["take_over_dns"], true, "{params}");

    for field in ["delete_data", "delete_volumes"] {
        let undeploy: ops::AppUndeploy = serde_json::from_value(serde_json::json!({
            "server": "web-1", "app": "redis", field: true
        }))
        .unwrap();
        assert!(undeploy.delete_data, "{field}");
        let plan = undeploy.plan(&orch).unwrap();
        assert!(
            plan.steps.iter().any(|s| s == "database") && plan.steps.iter().any(|s| s == "volumes"),
            "{field}: {:?}",
            plan.steps
        );
    }
    let keep: ops::AppUndeploy = serde_json::from_value(serde_json::json!({
        "server": "web-1", "app": "redis"
    }))
    .unwrap();
    let plan = keep.plan(&orch).unwrap();
    assert!(
        !plan.steps.iter().any(|s| s == "volumes" || s == "database"),
        "{:?}",
        plan.steps
    );
}

/// A bring-your-own server `byo-1` and the queued job of its deletion (which needs no mock).
async fn byo_server_delete_job() -> (World, Arc<livchat_core::Orchestrator>, ops::JobView) {
    let world = World::new();
    let mut server = hetzner_server("byo-1", ServerStatus::Running, None);
    server.provider = livchat_store::ProviderKind::Manual;
    server.provider_id = None;
    world.put_server(server);
    let orch = world.build(Mocks::default());
    let job = ops::ServerDelete {
        server: "byo-1".into(),
        force: false,
    }
    .run(&orch)
    .await
    .unwrap();
    (world, orch, job)
}

#[tokio::test]
async fn a_job_operation_records_a_queued_job_that_spawn_runs_and_join_reports() {
    let (world, orch, job) = byo_server_delete_job().await;
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.kind, "delete_server");
    let mut handle = orch.spawn_job(&job.id).unwrap();
    let mut events = handle.events();
    let ended = handle.join().await.unwrap();
    assert_eq!(ended.status, JobStatus::Completed, "{:?}", ended.error);
    let mut finished = false;
    while let Ok(event) = events.try_recv() {
        finished |= matches!(event, livchat_core::JobEvent::Finished { .. });
    }
    assert!(finished, "the first subscriber sees the job's end");
    assert!(!world.state().servers.contains_key("byo-1"));
    let err = orch.spawn_job(&job.id).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "an ended job cannot be spawned again"
    );
}

#[tokio::test]
async fn a_process_that_gives_its_jobs_a_runtime_runs_them_there() {
    let (_world, orch, job) = byo_server_delete_job().await;
    let jobs = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("test-jobs")
        .enable_all()
        .build()
        .unwrap();
    orch.run_jobs_on(jobs.handle().clone());
    let thread = orch
        .spawn_for_jobs(async { std::thread::current().name().map(str::to_owned) })
        .await
        .unwrap();
    assert_eq!(thread.as_deref(), Some("test-jobs"));
    let ended = orch.spawn_job(&job.id).unwrap().join().await.unwrap();
    assert_eq!(ended.status, JobStatus::Completed, "{:?}", ended.error);
    // Dropped outside any runtime: a runtime may not be dropped from async code.
    tokio::task::spawn_blocking(move || drop(jobs))
        .await
        .unwrap();
}

#[tokio::test]
async fn job_wait_returns_the_job_as_it_is_when_its_time_is_up() {
    let world = World::new();
    world.put_server(hetzner_server("web-1", ServerStatus::Ready, Some("lab")));
    let orch = world.build(Mocks::default());
    let job = ops::AppDeploy {
        node: None,
        node_label: None,
        server: "web-1".into(),
        app: "redis".into(),
        params: BTreeMap::new(),
        take_over_dns: false,
        force: false,
    }
    .run(&orch)
    .await
    .unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    let waited = tokio::time::timeout(
        Duration::from_secs(10),
        ops::JobWait {
            id: job.id.clone(),
            timeout_secs: Some(1),
        }
        .run(&orch),
    )
    .await
    .expect("job_wait is bounded by its timeout")
    .unwrap();
    assert_eq!(waited.status, JobStatus::Queued);
    let err = ops::JobWait {
        id: job.id,
        timeout_secs: Some(0),
    }
    .run(&orch)
    .await
    .unwrap_err();
    assert_eq!(err.field(), Some("timeout_secs"));
}

#[tokio::test]
async fn the_api_token_is_created_once_checked_in_constant_time_and_rotated() {
    let world = World::new();
    let orch = world.build(Mocks::default());
    assert!(
        !orch.check_api_token("").unwrap(),
        "no token exists yet: nothing is accepted"
    );
    let token = orch.api_token(false).unwrap().expose_secret().to_string();
    assert_eq!(token.len(), 64, "256 bits in hex");
    assert_eq!(orch.api_token(false).unwrap().expose_secret(), token);
    assert!(orch.check_api_token(&token).unwrap());
    assert!(!orch.check_api_token(&token[..63]).unwrap());
    assert!(!orch.check_api_token("").unwrap());
    let rotated = orch.api_token(true).unwrap().expose_secret().to_string();
    assert_ne!(rotated, token);
    assert!(
        !orch.check_api_token(&token).unwrap(),
        "the old token stops working at once"
    );
    assert!(orch.check_api_token(&rotated).unwrap());
}

#[tokio::test]
async fn job_logs_tail_returns_the_last_lines_with_their_indexes() {
    let world = World::new();
    world.put_server(hetzner_server("web-1", ServerStatus::Ready, Some("lab")));
    let orch = world.build(Mocks::default());
    let job = ops::AppDeploy {
        node: None,
        node_label: None,
        server: "web-1".into(),
        app: "redis".into(),
        params: BTreeMap::new(),
        take_over_dns: false,
        force: false,
    }
    .run(&orch)
    .await
    .unwrap();
    let all = ops::JobLogs {
        id: job.id.clone(),
        from: None,
        tail: None,
    }
    .run(&orch)
    .await
    .unwrap();
    let tail = ops::JobLogs {
        id: job.id,
        from: None,
        tail: Some(1),
    }
    .run(&orch)
    .await
    .unwrap();
    assert!(tail.len() <= 1);
    if let (Some(last), Some(t)) = (all.last(), tail.first()) {
        assert_eq!(last.index, t.index);
        assert_eq!(last.message, t.message);
    }
}

#[tokio::test]
async fn a_second_job_on_a_busy_server_is_refused_naming_the_job_in_the_way() {
    let mut world = World::new();
    world.put_server(hetzner_server("web-1", ServerStatus::Ready, Some("lab")));
    let orch = world.build(Mocks::default());
    let deploy = |app: &str| ops::AppDeploy {
        node: None,
        node_label: None,
        server: "web-1".into(),
        app: app.into(),
        params: BTreeMap::new(),
        take_over_dns: false,
        force: false,
    };
    let first = deploy("redis").run(&orch).await.unwrap();
    let err = deploy("postgres").run(&orch).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let message = err.to_string();
    for part in [
        first.id.as_str(),
        "deploy_app",
        "web-1",
        &std::process::id().to_string(),
    ] {
        assert!(message.contains(part), "{part} missing from: {message}");
    }
    assert_eq!(
        world.jobs().len(),
        1,
        "nothing recorded for the refused job"
    );

    // With --wait-turn the second one is queued behind the first instead.
    world.config.wait_turn = true;
    let patient = world.build(Mocks::default());
    let second = deploy("postgres").run(&patient).await.unwrap();
    assert_eq!(second.status, JobStatus::Queued);
}
