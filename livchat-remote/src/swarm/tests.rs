//! Unit tests of the command builders and the parsers.

use super::*;

fn argv(cmd: &Command) -> String {
    std::iter::once(cmd.program.as_str())
        .chain(cmd.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn commands_are_exact_argv() {
    let cases = [
        (
            commands::stack_deploy("/opt/livchat/stacks/app.yml", "app"),
            "docker stack deploy --prune -c /opt/livchat/stacks/app.yml app",
        ),
        (
            commands::secret_create("app_db_password"),
            "docker secret create app_db_password -",
        ),
        (
            commands::network_create("livchat", true),
            "docker network create --driver overlay --attachable livchat",
        ),
        (
            commands::stack_ps("app"),
            "docker stack ps --no-trunc --format {{json .}} app",
        ),
        (
            commands::labelled("network", "app"),
            "docker network ls --quiet --filter label=com.docker.stack.namespace=app",
        ),
        (
            commands::exec(
                "abc123",
                Some("postgres"),
                true,
                "00ff",
                &["psql".into(), "-v".into(), "ON_ERROR_STOP=1".into()],
            ),
            "docker exec -i --user postgres --env LIVCHAT_EXEC=00ff abc123 psql -v ON_ERROR_STOP=1",
        ),
        (
            commands::service_logs("app_db", 50),
            "docker service logs --raw --timestamps --tail 50 app_db",
        ),
        (
            commands::make_private_dir("/opt/livchat/stacks"),
            "mkdir -p -m 0700 -- /opt/livchat/stacks",
        ),
    ];
    for (cmd, expected) in cases {
        assert_eq!(argv(&cmd), expected);
    }
}

#[test]
fn a_stack_without_tasks_yet_is_recognised_in_both_cli_wordings() {
    let out = |stderr: &str| ExecOutput {
        exit_status: 1,
        stdout: Vec::new(),
        stderr: stderr.as_bytes().to_vec(),
    };
    // Docker 20.10, and the newer CLI this failed on in CI right after a deploy.
    assert!(is_nothing_found(&out("Nothing found in stack: pg\n")));
    assert!(is_nothing_found(&out("nothing found in stack: pg\n")));
    assert!(!is_nothing_found(&out(
        "error during connect: permission denied\n"
    )));
}

fn svc(name: &str, replicas: &str) -> ServiceLine {
    ServiceLine {
        name: name.into(),
        image: "img".into(),
        mode: "replicated".into(),
        replicas: replicas.into(),
    }
}

fn task(name: &str, state: &str, error: &str) -> TaskLine {
    TaskLine {
        id: format!("{name}-{state}"),
        name: name.into(),
        desired_state: if state.starts_with("Running") {
            "Running".into()
        } else {
            "Shutdown".into()
        },
        current_state: state.into(),
        error: error.into(),
        node: "node-1".into(),
    }
}

fn template(image: &str) -> serde_json::Value {
    serde_json::json!({"ContainerSpec": {"Image": image}, "ForceUpdate": 0})
}

fn inspected(name: &str, image: &str, update: Option<(&str, &str)>) -> ServiceInspect {
    ServiceInspect {
        spec: ServiceSpecJson {
            name: name.into(),
            task_template: template(image),
        },
        previous_spec: None,
        update_status: update.map(|(state, message)| UpdateStatusJson {
            state: state.into(),
            message: message.into(),
        }),
    }
}

fn spec_of(task: &TaskLine, image: &str) -> TaskInspect {
    let mut spec = template(image);
    spec["Placement"] = serde_json::json!({"Constraints": ["node.role==manager"]});
    TaskInspect {
        id: task.id.clone(),
        spec,
    }
}

#[test]
fn a_task_matches_its_template_as_the_engine_renders_them() {
    // Docker 20.10's `service inspect` and `inspect --type task` of one task's service.
    let template = serde_json::json!({"ContainerSpec":{"Image":"b:1","Args":["sh"],
        "Env":["VERSION=1"],"Privileges":{"CredentialSpec":null,"SELinuxContext":null,
        "NoNewPrivileges":false},"StopGracePeriod":1000000000,"DNSConfig":{},
        "Isolation":"default"},"Resources":{},"RestartPolicy":{"Condition":"any",
        "Delay":1000000000,"MaxAttempts":0},"Placement":{},"Networks":[{"Target":"kw",
        "Aliases":["app"]}],"ForceUpdate":0,"Runtime":"container"});
    let task = serde_json::json!({"ContainerSpec":{"Image":"b:1","Args":["sh"],
        "Env":["VERSION=1"],"Privileges":{"CredentialSpec":null,"SELinuxContext":null,
        "NoNewPrivileges":false},"StopGracePeriod":1000000000,"Isolation":"default"},
        "Resources":{},"RestartPolicy":{"Condition":"any","Delay":1000000000,
        "MaxAttempts":0},"Placement":{},"Networks":[{"Target":"kw","Aliases":["app"]}],
        "ForceUpdate":0});
    assert!(same_spec(&task, &template));
    let mut newer = template.clone();
    newer["ContainerSpec"]["Env"] = serde_json::json!(["VERSION=2"]);
    assert!(!same_spec(&task, &newer));
    // Defaults only the template shows (the user gave no restart policy or grace period).
    let mut bare = task.clone();
    bare.as_object_mut().unwrap().remove("RestartPolicy");
    bare["ContainerSpec"]
        .as_object_mut()
        .unwrap()
        .remove("StopGracePeriod");
    assert!(same_spec(&bare, &template));
    // A value the task has and the template lacks: another spec.
    let mut older = task.clone();
    older["ContainerSpec"]["User"] = serde_json::json!("postgres");
    assert!(!same_spec(&older, &template));
}

#[test]
fn only_tasks_of_the_current_spec_count_and_the_update_state_is_read() {
    // web was updated from v1 to v2: the v1 task still runs (the update has not reached
    // it), and the v1 failures before it are history.
    let services = [svc("app_web", "1/1")];
    let old_running = task("app_web.1", "Running 9 seconds ago", "");
    let old_failed = task(
        "app_web.1",
        "Failed 30 seconds ago",
        "\"non-zero exit (3)\"",
    );
    let tasks = [old_running, old_failed];
    let specs: Vec<TaskInspect> = tasks.iter().map(|t| spec_of(t, "img:1")).collect();
    let inspect = [inspected(
        "app_web",
        "img:2",
        Some(("updating", "update in progress")),
    )];
    let status = build_status("app", &services, &tasks, &inspect, &specs).unwrap();
    let web = status.service("web").unwrap();
    assert_eq!(
        web.running_replicas, 0,
        "a task of the old spec is not the new version"
    );
    assert_eq!(
        web.failed_tasks, 0,
        "failures of an older spec do not count"
    );
    assert_eq!(web.last_error, None);
    assert_eq!(web.update.as_ref().unwrap().state, UpdateState::Updating);
    assert!(!status.is_healthy());

    // Once the update completed, the v2 task (placement aside, same spec) is running.
    let new_running = task("app_web.1", "Running 2 seconds ago", "");
    let mut specs = specs;
    specs.push(spec_of(&new_running, "img:2"));
    let tasks = [new_running, task("app_web.1", "Shutdown 9 seconds ago", "")];
    let specs: Vec<TaskInspect> = specs
        .into_iter()
        .filter(|s| tasks.iter().any(|t| t.id == s.id))
        .collect();
    let inspect = [inspected(
        "app_web",
        "img:2",
        Some(("completed", "update completed")),
    )];
    let status = build_status("app", &services, &tasks, &inspect, &specs).unwrap();
    assert_eq!(status.service("web").unwrap().running_replicas, 1);
    assert!(status.is_healthy());
}

#[test]
fn status_counts_the_current_failure_streak_and_unquotes_the_task_error() {
    let services = [svc("app_db", "1/1"), svc("app_web", "0/1")];
    let tasks = [
        task("app_db.1", "Running 5 seconds ago", ""),
        task(
            "app_db.1",
            "Failed 20 seconds ago",
            "\"task: non-zero exit (1)\"",
        ),
        task("app_web.1", "Ready 1 second ago", ""),
        task(
            "app_web.1",
            "Rejected 3 seconds ago",
            "\"No such image: nope:1\"",
        ),
        task(
            "app_web.1",
            "Rejected 8 seconds ago",
            "\"No such image: nope:1\"",
        ),
    ];
    let status = build_status("app", &services, &tasks, &[], &[]).unwrap();
    let db = status.service("db").unwrap();
    assert_eq!((db.running_replicas, db.desired_replicas), (1, 1));
    assert_eq!(db.failed_tasks, 0, "an old failure before a running task");
    let web = status.service("web").unwrap();
    assert_eq!(web.failed_tasks, 2);
    assert_eq!(web.last_error.as_deref(), Some("No such image: nope:1"));
    assert_eq!(web.full_name, "app_web");
}

#[test]
fn replicas_with_annotations_are_parsed() {
    assert_eq!(parse_replicas("0/1 (max 1 per node)"), Some((0, 1)));
    assert_eq!(parse_replicas("3/3"), Some((3, 3)));
    assert_eq!(parse_replicas("n/a"), None);
    let err = build_status("app", &[svc("app_x", "??")], &[], &[], &[]).unwrap_err();
    assert!(err.to_string().contains("app_x"), "{err}");
}

#[test]
fn logs_of_both_streams_are_merged_in_time_order_and_tailed() {
    let stdout = b"2025-01-01T00:00:01.000000000Z one\n2025-01-01T00:00:03.000000000Z three\n";
    let stderr = b"2025-01-01T00:00:02.000000000Z two\n";
    assert_eq!(merge_logs(stdout, stderr, 2), vec!["two", "three"]);
    assert_eq!(merge_logs(stdout, stderr, 10).len(), 3);
}

#[test]
fn secret_names_and_paths_are_allowlisted() {
    let secret = |name: &str, delivery| StackSecret {
        name: name.into(),
        value: "v".into(),
        delivery,
    };
    assert!(validate_secret(&secret("n8n_db-password.v2", SecretDelivery::DockerSecret)).is_ok());
    for bad in ["", "-rm", "a b", "a;b", "$(x)", "ä"] {
        let err = validate_secret(&secret(bad, SecretDelivery::DockerSecret)).unwrap_err();
        assert!(err.to_string().contains("secret name"), "{bad}: {err}");
    }
    for bad in ["relative", "/a/../etc/shadow", "/a b", "/", "/dir/"] {
        let delivery = SecretDelivery::File { path: bad.into() };
        let err = validate_secret(&secret("ok", delivery)).unwrap_err();
        assert!(err.to_string().contains("secret file path"), "{bad}: {err}");
    }
}
