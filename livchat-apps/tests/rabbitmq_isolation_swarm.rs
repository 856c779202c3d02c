//! Issue #17 on a real Swarm: RabbitMQ as a shared provider, two apps each given their own
//! vhost and user by `create_database_command` (run with `docker exec -i` in the provider's
//! container, password on stdin, as core's deploy step runs it). From inside its own container
//! each app declares and uses a queue in its own vhost and is refused on the other's; a rerun
//! with a new password keeps the vhost and switches the password; the drop removes both.
//!
//! The broker is Debian's rabbitmq-server 3.10 and the client `amqp-tools`
//! (`fixtures::images::RABBITMQ`, built locally); `rabbitmqctl` runs as root in the container,
//! as `docker exec` runs it in the official image. Needs root, `docker.io` and `debootstrap`
//! (skipped with a message when missing, failing under `LIVCHAT_REAL_TESTS=1`).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::swarm::{container, deploy, exec, sh, text, wait_until};
use fixtures::dockerd::Dockerd;
use livchat_apps::definition::ProvidedKind;
use livchat_apps::{
    Catalog, CreateDatabase, DeployStep, EndpointMode, RenderedStack, create_database_command,
    drop_database_command,
};
use secrecy::{ExposeSecret, SecretString};

/// The built-in `rabbitmq`'s interface (provides) on the local image.
const RABBITMQ_YAML: &str = r#"
name: rabbitmq
version: "3.10-test"
category: messaging
description: RabbitMQ from the locally built Debian image.
images:
  rabbitmq: "livchat-test/rabbitmq:3.10"
provides:
  kind: rabbitmq
  service: rabbitmq
  port: 5672
template:
  inline: "unused"
"#;

/// A fixed hostname, as the built-in template has, so the node name resolves.
const RABBITMQ_TEMPLATE: &str = r#"version: "3.8"
services:
  rabbitmq:
    image: {{ images.rabbitmq }}
    hostname: "rabbitmq"
    command: ["rabbitmq-server"]
    networks:
      - {{ network }}
networks:
  {{ network }}:
    external: true
"#;

fn client_yaml(name: &str, vhost: &str) -> String {
    format!(
        r#"
name: {name}
version: "1"
category: application
description: An AMQP client.
dependencies:
  - app: rabbitmq
    database:
      name: {vhost}
      user: {vhost}
      password_secret: amqp_password
images:
  app: "livchat-test/rabbitmq:3.10"
secrets:
  - name: amqp_password
    length: 32
template:
  inline: "unused"
pre_deploy:
  - create_database:
      dependency: rabbitmq
"#
    )
}

const CLIENT_TEMPLATE: &str = r#"version: "3.8"
services:
  app:
    image: {{ images.app }}
    command: ["sleep", "3600"]
    environment:
      AMQP_HOST: {{ deps.rabbitmq.host }}
      AMQP_PORT: "{{ deps.rabbitmq.port }}"
      AMQP_VHOST: {{ deps.rabbitmq.database }}
      AMQP_USER: {{ deps.rabbitmq.user }}
    secrets:
      - source: amqp_password
        target: amqp_password
    networks:
      - {{ network }}
secrets:
  amqp_password:
    external: true
    name: {{ docker_secrets.amqp_password }}
networks:
  {{ network }}:
    external: true
"#;

const NETWORK: &str = "lc_rabbitmq_isolation";

fn catalog() -> Catalog {
    Catalog::from_sources(&[
        (RABBITMQ_YAML, RABBITMQ_TEMPLATE, "rabbitmq.yaml"),
        (
            &client_yaml("app-a", "app_a"),
            CLIENT_TEMPLATE,
            "app-a.yaml",
        ),
        (
            &client_yaml("app-b", "app_b"),
            CLIENT_TEMPLATE,
            "app-b.yaml",
        ),
    ])
    .unwrap()
}

fn render(catalog: &Catalog, app: &str, secrets: &livchat_apps::SecretsByApp) -> RenderedStack {
    let mut ctx = common::context(EndpointMode::Dnsrr);
    ctx.options.network = NETWORK.into();
    catalog
        .render(app, &ctx, &BTreeMap::new(), secrets)
        .unwrap_or_else(|e| panic!("{app}: {e}"))
}

fn step(
    stack: &RenderedStack,
    secrets: &livchat_apps::SecretsByApp,
) -> (CreateDatabase, SecretString) {
    let Some(DeployStep::CreateDatabase { spec, password, .. }) = stack.pre_deploy.first() else {
        panic!("{}: no create_database step", stack.stack);
    };
    assert_eq!(spec.kind, ProvidedKind::Rabbitmq);
    (
        spec.clone(),
        SecretString::from(
            secrets[&password.app][&password.name]
                .expose_secret()
                .to_string(),
        ),
    )
}

/// Declares queue `queue` in `vhost` from the client container over the overlay network, as
/// the app's user with `password` (its own, from its Docker secret, unless given).
fn declare(
    engine: &Dockerd,
    client: &str,
    vhost: &str,
    queue: &str,
    password: Option<&str>,
) -> (bool, String) {
    let pw = match password {
        Some(p) => p.to_string(),
        None => "$(cat /run/secrets/amqp_password)".to_string(),
    };
    sh(
        engine,
        client,
        &format!(
            "amqp-declare-queue --url=\"amqp://$AMQP_USER:{pw}@$AMQP_HOST:$AMQP_PORT/{vhost}\" -d -q {queue}"
        ),
    )
}

#[test]
fn each_app_reaches_its_own_rabbitmq_vhost_and_is_refused_on_the_others_on_a_real_swarm() {
    let Some(engine) = Dockerd::shared() else {
        return;
    };
    let Some(_image) = fixtures::images::debian(engine, &fixtures::images::RABBITMQ)
        .expect("building the rabbitmq image")
    else {
        return;
    };
    let started = Instant::now();
    engine
        .docker_ok(&[
            "network",
            "create",
            "--driver",
            "overlay",
            "--attachable",
            NETWORK,
        ])
        .unwrap();
    let catalog = catalog();
    let mut secrets = livchat_apps::SecretsByApp::new();
    for entry in catalog.list() {
        let d = &entry.definition;
        secrets.insert(
            d.name.clone(),
            livchat_apps::secrets::complete(d, &Default::default()),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    deploy(engine, &render(&catalog, "rabbitmq", &secrets), dir.path());
    let deadline = Instant::now() + Duration::from_secs(240);
    let server = container(engine, "rabbitmq_rabbitmq", deadline);
    wait_until(deadline, "rabbitmq never started", || {
        sh(engine, &server, "rabbitmqctl --quiet await_startup")
    });

    let (a, b) = (
        render(&catalog, "app-a", &secrets),
        render(&catalog, "app-b", &secrets),
    );
    for stack in [&a, &b] {
        let (spec, pw) = step(stack, &secrets);
        for round in 0..2 {
            let cmd = create_database_command(&spec, &pw).unwrap();
            assert!(cmd.argv.iter().all(|x| !x.contains(pw.expose_secret())));
            let out = exec(engine, &server, &cmd.argv, cmd.stdin.expose_secret(), &[]);
            assert!(
                out.status.success(),
                "{} round {round}: {}",
                spec.user,
                text(&out)
            );
        }
        deploy(engine, stack, dir.path());
    }
    let a_client = container(engine, "app-a_app", deadline);
    let b_client = container(engine, "app-b_app", deadline);
    wait_until(deadline, "app-a never reached its vhost", || {
        declare(engine, &a_client, "app_a", "jobs", None)
    });

    // Each app uses its own vhost: a message published there is consumed there.
    for (client, vhost) in [(&a_client, "app_a"), (&b_client, "app_b")] {
        let (ok, out) = declare(engine, client, vhost, "jobs", None);
        assert!(ok && out.trim() == "jobs", "{vhost}: {out}");
        let url = format!(
            "amqp://$AMQP_USER:$(cat /run/secrets/amqp_password)@$AMQP_HOST:$AMQP_PORT/{vhost}"
        );
        let (ok, out) = sh(
            engine,
            client,
            &format!(
                "amqp-publish --url=\"{url}\" -r jobs -b hello-{vhost} && amqp-get --url=\"{url}\" -q jobs"
            ),
        );
        assert!(
            ok && out.trim() == format!("hello-{vhost}"),
            "{vhost}: {out}"
        );
    }
    // Each is refused on the other's vhost, and its management tags are none.
    for (client, user, other) in [(&a_client, "app_a", "app_b"), (&b_client, "app_b", "app_a")] {
        let (ok, out) = declare(engine, client, other, "jobs", None);
        assert!(!ok, "{user} used {other}: {out}");
        assert!(
            out.contains("access to vhost")
                || out.contains("ACCESS_REFUSED")
                || out.contains("NOT_ALLOWED"),
            "{user} -> {other}: {out}"
        );
    }
    let (_, users) = sh(
        engine,
        &server,
        "rabbitmqctl --quiet list_users --no-table-headers",
    );
    assert!(
        users
            .lines()
            .any(|l| l.split('\t').collect::<Vec<_>>() == ["app_a", "[]"]),
        "{users}"
    );
    let (_, perms) = sh(
        engine,
        &server,
        "rabbitmqctl --quiet list_user_permissions --no-table-headers app_a",
    );
    assert_eq!(perms.trim(), "app_a\t.*\t.*\t.*", "{perms}");

    // A rerun with a new password switches it and keeps the vhost's queue.
    let (spec, _) = step(&a, &secrets);
    let new_pw = "new-pw with spaces'\"$x";
    let cmd = create_database_command(&spec, &SecretString::from(new_pw)).unwrap();
    let out = exec(engine, &server, &cmd.argv, cmd.stdin.expose_secret(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let (ok, out) = declare(engine, &a_client, "app_a", "jobs", None);
    assert!(!ok, "the old password still works: {out}");
    let (ok, out) = sh(
        engine,
        &a_client,
        "amqp-declare-queue --url=\"amqp://app_a:new-pw%20with%20spaces'%22%24x@$AMQP_HOST:$AMQP_PORT/app_a\" -d -q jobs",
    );
    assert!(ok && out.trim() == "jobs", "{out}");

    // The drop removes the vhost and the user, and can run again.
    for round in 0..2 {
        let drop = drop_database_command(&spec).unwrap();
        let out = exec(engine, &server, &drop.argv, drop.stdin.expose_secret(), &[]);
        assert!(out.status.success(), "drop round {round}: {}", text(&out));
    }
    let (_, vhosts) = sh(
        engine,
        &server,
        "rabbitmqctl --quiet list_vhosts --no-table-headers name",
    );
    assert!(
        !vhosts.lines().any(|l| l == "app_a") && vhosts.lines().any(|l| l == "app_b"),
        "{vhosts}"
    );

    for stack in ["app-a", "app-b", "rabbitmq"] {
        let _ = engine.docker_ok(&["stack", "rm", stack]);
    }
    eprintln!("rabbitmq isolation checked in {:?}", started.elapsed());
}
