//! Issue #17 on a real Swarm: MariaDB as a shared provider, two apps each given their own
//! database and user by `create_database_command` (run with `docker exec -i` in the provider's
//! container, script on stdin, as core's deploy step runs it). From inside its own container
//! each app works in its own database and is refused on the other's, and sees no other
//! database; a rerun is harmless; a hostile password logs in exactly; the drop removes both.
//!
//! The server is Debian's mariadb-server 10.11 (`fixtures::images::MARIADB`, built locally),
//! started like the official image starts it (root with a password read from its Docker secret,
//! no test database), so the commands meant for `mariadb:11.4` run unchanged. Needs root,
//! `docker.io` and `debootstrap` (skipped with a message when missing, failing under
//! `LIVCHAT_REAL_TESTS=1`).

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

/// The built-in `mariadb`'s interface (provides, root secret at the same target) on the
/// local image.
const MARIADB_YAML: &str = r#"
name: mariadb
version: "10.11-test"
category: database
description: MariaDB from the locally built Debian image.
images:
  mariadb: "livchat-test/mariadb:10.11"
secrets:
  - name: root_password
    length: 32
provides:
  kind: mariadb
  service: mariadb
  port: 3306
template:
  inline: "unused"
"#;

/// What the official image's entrypoint does, with Debian's binaries: a fresh data directory
/// without the test database, root authenticated by password only, set from the secret.
const MARIADB_TEMPLATE: &str = r#"version: "3.8"
services:
  mariadb:
    image: {{ images.mariadb }}
    command:
      - "sh"
      - "-c"
      - 'set -e; install -d -o mysql -g mysql /run/mysqld; if [ ! -d /srv/mariadb/mysql ]; then mariadb-install-db --user=mysql --datadir=/srv/mariadb --auth-root-authentication-method=normal --skip-test-db >/dev/null; fi; printf "ALTER USER root@localhost IDENTIFIED BY ''%s'';\n" "$$(cat /run/secrets/root_password)" >/run/mysqld/init.sql; chown mysql /run/mysqld/init.sql; exec mariadbd --user=mysql --datadir=/srv/mariadb --bind-address=0.0.0.0 --init-file=/run/mysqld/init.sql'
    secrets:
      - source: root_password
        target: root_password
    networks:
      - {{ network }}
secrets:
  root_password:
    external: true
    name: {{ docker_secrets.root_password }}
networks:
  {{ network }}:
    external: true
"#;

fn client_yaml(name: &str, db: &str) -> String {
    format!(
        r#"
name: {name}
version: "1"
category: application
description: A MariaDB client.
dependencies:
  - app: mariadb
    database:
      name: {db}
      user: {db}
      password_secret: db_password
images:
  app: "livchat-test/mariadb:10.11"
secrets:
  - name: db_password
    length: 32
template:
  inline: "unused"
pre_deploy:
  - create_database:
      dependency: mariadb
"#
    )
}

/// The client learns its host, database and user from `deps.mariadb.*` and its password from
/// its Docker secret, like `wordpress` does.
const CLIENT_TEMPLATE: &str = r#"version: "3.8"
services:
  app:
    image: {{ images.app }}
    command: ["sleep", "3600"]
    environment:
      DB_HOST: {{ deps.mariadb.host }}
      DB_PORT: "{{ deps.mariadb.port }}"
      DB_NAME: {{ deps.mariadb.database }}
      DB_USER: {{ deps.mariadb.user }}
    secrets:
      - source: db_password
        target: db_password
    networks:
      - {{ network }}
secrets:
  db_password:
    external: true
    name: {{ docker_secrets.db_password }}
networks:
  {{ network }}:
    external: true
"#;

const NETWORK: &str = "lc_mariadb_isolation";

fn catalog() -> Catalog {
    Catalog::from_sources(&[
        (MARIADB_YAML, MARIADB_TEMPLATE, "mariadb.yaml"),
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

/// The stack's create-database step and the password it uses, as core resolves them.
fn step(
    stack: &RenderedStack,
    secrets: &livchat_apps::SecretsByApp,
) -> (CreateDatabase, SecretString) {
    let Some(DeployStep::CreateDatabase { spec, password, .. }) = stack.pre_deploy.first() else {
        panic!("{}: no create_database step", stack.stack);
    };
    assert_eq!(spec.kind, ProvidedKind::Mariadb);
    let pw = secrets[&password.app][&password.name]
        .expose_secret()
        .to_string();
    (spec.clone(), SecretString::from(pw))
}

/// The client's `mariadb` over the overlay network, as the app's user with its own password
/// (read from its Docker secret inside the container), on database `db`.
fn query(engine: &Dockerd, client: &str, db: &str, sql: &str) -> (bool, String) {
    sh(
        engine,
        client,
        &format!(
            "MYSQL_PWD=\"$(cat /run/secrets/db_password)\" mariadb --batch --skip-column-names \
             -h \"$DB_HOST\" -P \"$DB_PORT\" -u \"$DB_USER\" {db} -e '{sql}'"
        ),
    )
}

#[test]
fn each_app_reaches_its_own_mariadb_database_and_is_refused_on_the_others_on_a_real_swarm() {
    let Some(engine) = Dockerd::shared() else {
        return;
    };
    let Some(_image) = fixtures::images::debian(engine, &fixtures::images::MARIADB)
        .expect("building the mariadb image")
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
    deploy(engine, &render(&catalog, "mariadb", &secrets), dir.path());
    let deadline = Instant::now() + Duration::from_secs(180);
    let server = container(engine, "mariadb_mariadb", deadline);
    wait_until(deadline, "mariadb never accepted root's password", || {
        let out = exec(
            engine,
            &server,
            &["sh", "-c", livchat_apps::credentials::mariadb::ROOT_CLIENT].map(String::from),
            "SELECT 1;",
            &[],
        );
        (out.status.success(), text(&out))
    });

    let (a, b) = (
        render(&catalog, "app-a", &secrets),
        render(&catalog, "app-b", &secrets),
    );
    for stack in [&a, &b] {
        let (spec, pw) = step(stack, &secrets);
        // Twice: a redeploy reruns the step.
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
    wait_until(deadline, "app-a never reached its database", || {
        query(engine, &a_client, "app_a", "SELECT 1")
    });

    // Each app works in its own database...
    for (client, db, value) in [(&a_client, "app_a", "a-row"), (&b_client, "app_b", "b-row")] {
        let (ok, out) = query(
            engine,
            client,
            db,
            &format!(
                "CREATE TABLE t (v varchar(16)); INSERT INTO t VALUES (\"{value}\"); SELECT v FROM t"
            ),
        );
        assert!(ok && out.trim() == value, "{db}: {out}");
        // ...sees no other database (no test database, no other app's)...
        let (ok, out) = query(engine, client, db, "SHOW DATABASES");
        let mut seen: Vec<&str> = out.lines().collect();
        seen.sort();
        let mut expected = vec!["information_schema", db];
        expected.sort();
        assert!(ok && seen == expected, "{db}: {out}");
    }
    // ...and is refused on the other's, reachable as it is on the same server.
    for (client, user, other) in [(&a_client, "app_a", "app_b"), (&b_client, "app_b", "app_a")] {
        let (ok, out) = query(engine, client, other, "SELECT v FROM t");
        assert!(!ok, "{user} read {other}: {out}");
        assert!(
            out.contains(&format!(
                "Access denied for user '{user}'@'%' to database '{other}'"
            )),
            "{out}"
        );
        let (ok, out) = query(engine, client, user, &format!("SELECT v FROM {other}.t"));
        assert!(
            !ok && out.contains("command denied"),
            "{user} -> {other}.t: {out}"
        );
    }
    // Nor can an app create another database whose name its own matches with `_` as a
    // wildcard (`app_a` would match `appxa` in an unescaped grant).
    let (ok, out) = query(engine, &a_client, "app_a", "CREATE DATABASE appxa");
    assert!(!ok && out.contains("Access denied"), "{out}");

    // A hostile password (quotes, backslashes, a line break, SQL) logs in exactly as given.
    let hostile = "p'a\"ss\\w\\'or`d\n; DROP DATABASE app_a; -- $x";
    let spec = CreateDatabase {
        kind: ProvidedKind::Mariadb,
        database: "hostile_db".into(),
        user: "hostile".into(),
        extensions: vec![],
    };
    let cmd = create_database_command(&spec, &SecretString::from(hostile)).unwrap();
    let out = exec(engine, &server, &cmd.argv, cmd.stdin.expose_secret(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let login = |pw: &str| {
        exec(
            engine,
            &server,
            &[
                "mariadb",
                "--batch",
                "--skip-column-names",
                "-h",
                "127.0.0.1",
                "-u",
                "hostile",
                "hostile_db",
                "-e",
                "SELECT CURRENT_USER()",
            ]
            .map(String::from),
            "",
            &[("MYSQL_PWD", pw)],
        )
    };
    let ok = login(hostile);
    assert!(
        ok.status.success() && text(&ok).trim() == "hostile@%",
        "{}",
        text(&ok)
    );
    assert!(!login("p'a\"ss").status.success());
    let (ok, out) = query(engine, &a_client, "app_a", "SELECT v FROM t");
    assert!(ok && out.trim() == "a-row", "app_a survived: {out}");

    // The drop removes the database and the user, and can run again.
    for round in 0..2 {
        let drop = drop_database_command(&spec).unwrap();
        let out = exec(engine, &server, &drop.argv, drop.stdin.expose_secret(), &[]);
        assert!(out.status.success(), "drop round {round}: {}", text(&out));
    }
    assert!(!login(hostile).status.success());

    for stack in ["app-a", "app-b", "mariadb"] {
        let _ = engine.docker_ok(&["stack", "rm", stack]);
    }
    eprintln!("mariadb isolation checked in {:?}", started.elapsed());
}
