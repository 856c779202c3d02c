//! Issue #19 on a real Swarm: two apps that use Redis, rendered by the catalog and deployed
//! with `docker stack deploy` on a real engine (the dockerd harness), each get their own Redis.
//! From inside app B's container, B's password cannot read app A's keys (WRONGPASS, then
//! NOAUTH) and no password cannot either, while each app reads and writes its own.
//!
//! The Redis and client images are the locally built Debian image with redis-server
//! (`fixtures::images::pgredis`, cached under `target/fixtures-cache`); services use the
//! `dnsrr` endpoint mode because the build machines have no IPVS. Needs root, `docker.io` and
//! `debootstrap` (skipped with a message when missing, failing under `LIVCHAT_REAL_TESTS=1`).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fixtures::dockerd::Dockerd;
use livchat_apps::{Catalog, EndpointMode, RenderedStack};
use secrecy::ExposeSecret;

use common::swarm::{self, container, deploy};

/// Same interface as the built-in `redis` (provides, secret, service, port) on the local image.
const REDIS_YAML: &str = r#"
name: redis
version: "7-test"
category: database
description: Redis from the locally built Debian image.
images:
  redis: "livchat-test/pgredis:15"
secrets:
  - name: password
    length: 32
provides:
  kind: redis
  service: redis
  port: 6379
  password_secret: password
template:
  inline: "unused"
"#;

/// The built-in template's command on Debian's redis-server (which wants `--dir` and, as it
/// listens on every interface, `--protected-mode no`; the password still guards it).
const REDIS_TEMPLATE: &str = r#"version: "3.8"
services:
  redis:
    image: {{ images.redis }}
    command:
      - "sh"
      - "-c"
      - 'exec redis-server --dir /data --appendonly yes --protected-mode no --requirepass "$$(cat /run/secrets/password)"'
    secrets:
      - source: password
        target: password
    volumes:
      - "redis_data:/data"
    networks:
      - {{ network }}
volumes:
  redis_data: {}
secrets:
  password:
    external: true
    name: {{ docker_secrets.password }}
networks:
  {{ network }}:
    external: true
"#;

/// A user-written app using `deps.redis.*` as before: host, port and the password's Docker
/// secret. Its container only idles; the test runs redis-cli in it.
fn client_yaml(name: &str) -> String {
    format!(
        r#"
name: {name}
version: "1"
category: application
description: A Redis client.
dependencies:
  - app: redis
images:
  app: "livchat-test/pgredis:15"
template:
  inline: "unused"
"#
    )
}

const CLIENT_TEMPLATE: &str = r#"version: "3.8"
services:
  app:
    image: {{ images.app }}
    command: ["sleep", "3600"]
    environment:
      REDIS_HOST: {{ deps.redis.host }}
      REDIS_PORT: "{{ deps.redis.port }}"
    secrets:
      - source: redis_password
        target: redis_password
    networks:
      - {{ network }}
secrets:
  redis_password:
    external: true
    name: {{ deps.redis.password_docker_secret }}
networks:
  {{ network }}:
    external: true
"#;

const NETWORK: &str = "lc_redis_isolation";

fn catalog() -> Catalog {
    // `from_sources` takes each template's text beside its definition.
    Catalog::from_sources(&[
        (REDIS_YAML, REDIS_TEMPLATE, "redis.yaml"),
        (&client_yaml("app-a"), CLIENT_TEMPLATE, "app-a.yaml"),
        (&client_yaml("app-b"), CLIENT_TEMPLATE, "app-b.yaml"),
    ])
    .unwrap()
}

fn render(catalog: &Catalog, app: &str) -> RenderedStack {
    let mut ctx = common::context(EndpointMode::Dnsrr);
    ctx.options.network = NETWORK.into();
    // Real random passwords, as core would generate and keep in its vault.
    let mut secrets = livchat_apps::SecretsByApp::new();
    for entry in catalog.list() {
        let d = &entry.definition;
        secrets.insert(
            d.name.clone(),
            livchat_apps::secrets::complete(d, &Default::default()),
        );
    }
    catalog
        .render(app, &ctx, &BTreeMap::new(), &secrets)
        .unwrap_or_else(|e| panic!("{app}: {e}"))
}

/// redis-cli from the client container against `host`, authenticated with the client's own
/// password (its Docker secret) unless `auth` is false.
fn cli(engine: &Dockerd, client: &str, host: &str, auth: bool, args: &str) -> String {
    let password = if auth {
        "REDISCLI_AUTH=\"$(cat /run/secrets/redis_password)\" "
    } else {
        ""
    };
    // No secret in argv: the script reads the client's `/run/secrets/redis_password`.
    swarm::sh(
        engine,
        client,
        &format!("{password}redis-cli --no-auth-warning -h {host} -p 6379 {args}"),
    )
    .1
}

#[test]
fn one_apps_redis_password_cannot_read_another_apps_keys_on_a_real_swarm() {
    let Some(engine) = Dockerd::shared() else {
        return;
    };
    let Some(_image) = fixtures::images::pgredis(engine).expect("building the pgredis image")
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
    let (a, b) = (render(&catalog, "app-a"), render(&catalog, "app-b"));
    let password = |s: &RenderedStack| {
        s.docker_secrets
            .iter()
            .find(|d| d.name.ends_with("_redis_password"))
            .map(|d| d.value.expose_secret().to_string())
            .unwrap()
    };
    assert_ne!(password(&a), password(&b), "each app has its own password");
    let dir = tempfile::tempdir().unwrap();
    deploy(engine, &a, dir.path());
    deploy(engine, &b, dir.path());

    let deadline = Instant::now() + Duration::from_secs(90);
    let a_client = container(engine, "app-a_app", deadline);
    let b_client = container(engine, "app-b_app", deadline);
    // Both Redis instances answer their own app over the overlay network, by stack name.
    for (client, host) in [(&a_client, "app-a_redis"), (&b_client, "app-b_redis")] {
        loop {
            let pong = cli(engine, client, host, true, "PING");
            if pong.trim() == "PONG" {
                break;
            }
            assert!(Instant::now() < deadline, "{host} never answered: {pong}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    // Each app reads and writes its own keys.
    assert_eq!(
        cli(engine, &a_client, "app-a_redis", true, "SET k a-secret").trim(),
        "OK"
    );
    assert_eq!(
        cli(engine, &a_client, "app-a_redis", true, "GET k").trim(),
        "a-secret"
    );
    assert_eq!(
        cli(engine, &b_client, "app-b_redis", true, "SET k b-own").trim(),
        "OK"
    );
    assert_eq!(
        cli(engine, &b_client, "app-b_redis", true, "GET k").trim(),
        "b-own",
        "B's Redis is another instance, not A's with another index"
    );

    // B, from its own container, reaches A's Redis on the network but cannot authenticate.
    let with_b_password = cli(engine, &b_client, "app-a_redis", true, "GET k");
    assert!(
        with_b_password.contains("WRONGPASS") && with_b_password.contains("NOAUTH"),
        "{with_b_password}"
    );
    assert!(!with_b_password.contains("a-secret"), "{with_b_password}");
    let without = cli(engine, &b_client, "app-a_redis", false, "GET k");
    assert!(without.contains("NOAUTH"), "{without}");
    assert!(!without.contains("a-secret"), "{without}");
    // Nor does B's stack hold A's password: its only Redis secret is its own.
    let b_secrets = swarm::sh(engine, &b_client, "ls /run/secrets").1;
    assert_eq!(b_secrets.trim(), "redis_password", "{b_secrets}");

    for stack in ["app-a", "app-b"] {
        let _ = engine.docker_ok(&["stack", "rm", stack]);
    }
    eprintln!("isolation checked in {:?}", started.elapsed());
}
