//! Properties every built-in app's rendered stack must have: schema-valid in both endpoint
//! modes, no database port published, pinned images, the declared certificate resolver on every
//! router, Redis with a password, secrets as Docker secrets where the image allows, and user
//! values that cannot change the document's structure.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{context, fixed_secrets, render, render_with, set, yaml};
use livchat_apps::definition::Category;
use livchat_apps::names::validate_image_ref;
use livchat_apps::{
    AppsError, Catalog, DeployStep, EndpointMode, ImageOverrides, RenderOptions, SecretRef,
    create_database_command, validate_stack_text,
};
use secrecy::ExposeSecret;
use serde_yaml::Value;

fn catalog() -> Catalog {
    Catalog::builtin().unwrap()
}

fn services(doc: &Value) -> Vec<(String, &Value)> {
    doc["services"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_catalog_ships_the_promised_apps() {
    let catalog = catalog();
    let names = catalog.names();
    // The issue's list of what SetupOrion's users use most, as far as the catalog covers it.
    for app in [
        "infrastructure",
        "traefik",
        "portainer",
        "postgres",
        "redis",
        "n8n",
        "chatwoot",
        "evolution-api",
        "typebot",
        "flowise",
        "baserow",
        "nocodb",
        "uptime-kuma",
        "metabase",
        "directus",
        "minio",
        "appsmith",
        "rabbitmq",
        "qdrant",
        "pgadmin",
        "grafana",
        "vaultwarden",
        "nextcloud",
        "odoo",
        "mattermost",
        "langflow",
        "open-webui",
        "calcom",
        "listmonk",
        "umami",
        "gitea",
        "keycloak",
        "docuseal",
        "stirling-pdf",
        "mariadb",
        "mongodb",
        "clickhouse",
        "wordpress",
    ] {
        assert!(names.contains(&app.to_string()), "{app} missing: {names:?}");
    }
    assert!(names.len() >= 50, "{} apps", names.len());
    for entry in catalog.list() {
        let d = &entry.definition;
        assert!(
            d.title.is_some(),
            "{}: a title for search and the README",
            d.name
        );
        if d.category != Category::Infrastructure && d.category != Category::Database {
            assert!(
                d.requirements.min_ram_mb > 0 && d.requirements.min_cpu_cores > 0,
                "{}: minimum resources",
                d.name
            );
            assert!(
                d.post_deploy
                    .iter()
                    .any(|s| matches!(s, livchat_apps::definition::StepSpec::WaitHealthy { .. })),
                "{}: a health wait after deploy",
                d.name
            );
        }
    }
}

#[test]
fn every_postgres_app_gets_its_own_database_and_role_created_before_deploy() {
    let catalog = catalog();
    let mut databases = BTreeSet::new();
    for entry in catalog.list() {
        let d = &entry.definition;
        for dep in &d.dependencies {
            if let Some(db) = &dep.database {
                assert!(
                    databases.insert(db.name.clone()),
                    "{}: database {} reused",
                    d.name,
                    db.name
                );
                let stack = render(&catalog, &d.name, EndpointMode::Vip);
                assert!(
                    stack.pre_deploy.iter().any(|s| matches!(
                        s,
                        DeployStep::CreateDatabase { spec, .. } if spec.database == db.name && spec.user == db.user
                    )),
                    "{}: no create_database step",
                    d.name
                );
            }
        }
    }
    assert!(databases.len() >= 25, "{databases:?}");
}

#[test]
fn every_dependency_kind_is_a_catalog_app_giving_each_dependent_its_own_credentials() {
    use livchat_apps::definition::ProvidedKind;
    let catalog = catalog();
    for kind in [
        ProvidedKind::Postgres,
        ProvidedKind::Redis,
        ProvidedKind::Mariadb,
        ProvidedKind::Rabbitmq,
        ProvidedKind::Mongodb,
        ProvidedKind::Minio,
        ProvidedKind::Clickhouse,
    ] {
        let provider = catalog
            .list()
            .map(|e| &e.definition)
            .find(|d| d.provides.as_ref().is_some_and(|p| p.kind == kind))
            .unwrap_or_else(|| panic!("no built-in app provides {kind:?}"));
        assert!(
            provider.ports.is_empty(),
            "{} publishes a port",
            provider.name
        );
        if kind.per_app_credentials() {
            assert!(
                provider
                    .provides
                    .as_ref()
                    .unwrap()
                    .password_secret
                    .is_none(),
                "{}: dependents get their own password, not the provider's",
                provider.name
            );
        }
    }
    // An app on MariaDB gets its own database and user, created before its stack goes out.
    let stack = render(&catalog, "wordpress", EndpointMode::Vip);
    assert!(matches!(
        stack.pre_deploy.as_slice(),
        [DeployStep::CreateDatabase { stack, service, spec, .. }]
            if stack == "mariadb" && service == "mariadb" && spec.kind == ProvidedKind::Mariadb
                && spec.database == "wordpress" && spec.user == "wordpress"
    ));
}

#[test]
fn a_dependency_on_a_credentials_backend_without_database_or_with_a_bad_bucket_is_refused() {
    let provider = r#"
name: store
version: "1"
category: storage
description: x
images: { s: "minio/minio:RELEASE.2025-01-01T00-00-00Z" }
provides: { kind: minio, service: s, port: 9000 }
template: { inline: "unused" }
"#;
    let user = |dep: &str| {
        format!(
            "name: user1\nversion: \"1\"\ncategory: application\ndescription: x\nimages: {{ a: \"busybox:1.36\" }}\nsecrets: [{{ name: key }}]\ndependencies:\n  - {dep}\ntemplate: {{ inline: \"unused\" }}\n"
        )
    };
    for (dep, field) in [
        ("app: store", "needs `database`"),
        (
            "{ app: store, database: { name: my_bucket, user: user1, password_secret: key } }",
            "bucket",
        ),
        (
            "{ app: store, database: { name: bucket, user: minioadmin, password_secret: key } }",
            "minioadmin",
        ),
    ] {
        let err = Catalog::from_sources(&[
            (provider, "unused", "store.yaml"),
            (&user(dep), "unused", "user1.yaml"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("dependencies.store") && err.contains(field),
            "{dep}: {err}"
        );
    }
}

#[test]
fn every_render_validates_against_the_stack_schema_in_both_endpoint_modes() {
    let catalog = catalog();
    for entry in catalog.list() {
        for mode in [EndpointMode::Vip, EndpointMode::Dnsrr] {
            let stack = render(&catalog, &entry.definition.name, mode);
            validate_stack_text(&stack.app, stack.compose().expose_secret())
                .unwrap_or_else(|e| panic!("{} {mode:?}: {e}", stack.app));
            // The redacted form is what plans show; it must stay a valid stack too.
            validate_stack_text(&stack.app, stack.redacted())
                .unwrap_or_else(|e| panic!("{} redacted {mode:?}: {e}", stack.app));
        }
    }
}

#[test]
fn the_schema_check_rejects_what_docker_stack_deploy_would() {
    let bad = "version: '3.8'\nservices:\n  a:\n    image: x:1\n    privileged_mode: true\n";
    let err = validate_stack_text("t", bad).unwrap_err().to_string();
    assert!(err.contains("privileged_mode"), "{err}");
    let bad_type = "services:\n  a:\n    image: x:1\n    deploy:\n      replicas: two\n";
    assert!(validate_stack_text("t", bad_type).is_err());
}

#[test]
fn no_database_or_redis_service_publishes_a_port() {
    let catalog = catalog();
    for entry in catalog.list() {
        let d = &entry.definition;
        for mode in [EndpointMode::Vip, EndpointMode::Dnsrr] {
            let doc = yaml(&render(&catalog, &d.name, mode));
            let mut published = BTreeSet::new();
            for (name, svc) in services(&doc) {
                for p in svc["ports"].as_sequence().into_iter().flatten() {
                    published.insert(
                        p["published"].as_u64().unwrap_or_else(|| {
                            panic!("{}/{name}: ports must be long syntax", d.name)
                        }),
                    );
                }
            }
            if d.category == Category::Database || d.name == "redis" || d.name == "postgres" {
                assert!(published.is_empty(), "{} publishes {published:?}", d.name);
            }
            // Whatever is published must be declared, so `app show` tells the truth.
            let declared: BTreeSet<u64> = d.ports.iter().map(|p| u64::from(p.port)).collect();
            assert!(published.is_subset(&declared), "{}: {published:?}", d.name);
        }
    }
}

#[test]
fn no_image_is_latest_or_untagged() {
    let catalog = catalog();
    for entry in catalog.list() {
        let d = &entry.definition;
        for image in d.images.values() {
            validate_image_ref("image", image).unwrap();
        }
        let doc = yaml(&render(&catalog, &d.name, EndpointMode::Vip));
        for (name, svc) in services(&doc) {
            let image = svc["image"].as_str().unwrap();
            assert!(
                validate_image_ref("image", image).is_ok() && !image.ends_with(":latest"),
                "{}/{name}: {image}",
                d.name
            );
        }
    }
}

#[test]
fn every_traefik_router_uses_the_declared_resolver_on_https() {
    let catalog = catalog();
    let resolver = catalog.tls_resolver().expect("traefik declares a resolver");
    assert_eq!(resolver, "letsencryptresolver");
    let mut routers_seen = 0;
    for entry in catalog.list() {
        let doc = yaml(&render(&catalog, &entry.definition.name, EndpointMode::Vip));
        for (name, svc) in services(&doc) {
            // In Swarm mode Traefik reads service labels (deploy.labels), not container labels.
            assert!(
                svc.get("labels").is_none(),
                "{}/{name}: traefik labels belong under deploy.labels",
                entry.definition.name
            );
            let labels = strings(&svc["deploy"]["labels"]);
            let get = |key: &str| {
                labels
                    .iter()
                    .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
            };
            for label in &labels {
                if let Some(rest) = label.strip_prefix("traefik.http.routers.")
                    && let Some((router, _)) = rest.split_once(".rule=")
                {
                    routers_seen += 1;
                    let base = format!("traefik.http.routers.{router}");
                    assert_eq!(
                        get(&format!("{base}.tls.certresolver")).as_deref(),
                        Some(resolver),
                        "{}/{name} router {router}",
                        entry.definition.name
                    );
                    assert_eq!(
                        get(&format!("{base}.entrypoints")).as_deref(),
                        Some("websecure")
                    );
                    assert_eq!(get("traefik.enable").as_deref(), Some("true"));
                }
                if label.contains(".tls.certresolver=") {
                    assert!(label.ends_with(&format!("={resolver}")), "{label}");
                }
            }
        }
    }
    assert!(routers_seen >= 5, "only {routers_seen} routers checked");
}

#[test]
fn traefik_is_set_up_for_acme_http01_and_https_redirect() {
    let catalog = catalog();
    for app in ["traefik", "infrastructure"] {
        let doc = yaml(&render(&catalog, app, EndpointMode::Vip));
        let cmd = strings(&doc["services"]["traefik"]["command"]);
        for expected in [
            "--providers.swarm=true",
            "--entrypoints.web.http.redirections.entrypoint.to=websecure",
            "--entrypoints.web.http.redirections.entrypoint.scheme=https",
            "--certificatesresolvers.letsencryptresolver.acme.httpchallenge=true",
            "--certificatesresolvers.letsencryptresolver.acme.httpchallenge.entrypoint=web",
            "--certificatesresolvers.letsencryptresolver.acme.email=ops@example.com",
            "--providers.swarm.network=livchat_network",
        ] {
            assert!(cmd.contains(&expected.to_string()), "{app}: {expected}");
        }
    }
}

#[test]
fn redis_requires_a_password_read_from_its_docker_secret() {
    let catalog = catalog();
    let stack = render(&catalog, "redis", EndpointMode::Vip);
    let doc = yaml(&stack);
    let cmd = strings(&doc["services"]["redis"]["command"]).join(" ");
    assert!(cmd.contains("--requirepass"), "{cmd}");
    assert!(cmd.contains("--appendonly yes"), "{cmd}");
    // `$$` in the file is one `$` after Compose interpolation: the shell reads the secret file.
    assert!(cmd.contains("\"$$(cat /run/secrets/password)\""), "{cmd}");
    assert_eq!(stack.docker_secrets.len(), 1);
    assert_eq!(stack.docker_secrets[0].name, "livchat_redis_password");
    assert!(!stack.contains_secret_values());
    let health = strings(&doc["services"]["redis"]["healthcheck"]["test"]).join(" ");
    assert!(health.contains("REDISCLI_AUTH"), "{health}");
}

#[test]
fn n8n_runs_in_queue_mode_with_every_secret_as_a_docker_secret() {
    let catalog = catalog();
    let stack = render(&catalog, "n8n", EndpointMode::Vip);
    let doc = yaml(&stack);
    let names: Vec<String> = services(&doc).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["editor", "webhook", "worker", "redis"]);
    for (name, svc) in services(&doc).into_iter().filter(|(n, _)| n != "redis") {
        assert_eq!(
            svc["environment"]["EXECUTIONS_MODE"].as_str(),
            Some("queue"),
            "{name}"
        );
        assert_eq!(
            svc["environment"]["DB_POSTGRESDB_USER"].as_str(),
            Some("n8n"),
            "never the superuser"
        );
    }
    assert!(!stack.contains_secret_values(), "{}", stack.redacted());
    let mut names: Vec<&str> = stack
        .docker_secrets
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "livchat_n8n_db_password",
            "livchat_n8n_encryption_key",
            "livchat_n8n_redis_password"
        ]
    );
    let redis = stack
        .docker_secrets
        .iter()
        .find(|s| s.name == "livchat_n8n_redis_password")
        .unwrap();
    assert_eq!(redis.secret, SecretRef::new("n8n", "redis_password"));
    assert_eq!(redis.value.expose_secret(), "FIXEDn8nredispassword");
    // n8n's own Redis, reached by its stack-qualified name, never the bare `redis`.
    assert_eq!(
        doc["services"]["worker"]["environment"]["QUEUE_BULL_REDIS_HOST"].as_str(),
        Some("n8n_redis")
    );
}

#[test]
fn env_only_secrets_are_in_the_compose_but_not_in_its_redacted_form() {
    let catalog = catalog();
    for app in ["chatwoot", "evolution-api"] {
        let stack = render(&catalog, app, EndpointMode::Vip);
        assert!(stack.contains_secret_values(), "{app}");
        let compose = stack.compose().expose_secret();
        let redacted = stack.redacted();
        for (owner, secrets) in fixed_secrets(&catalog) {
            if owner != app {
                continue;
            }
            for value in secrets.values() {
                assert!(!redacted.contains(value.expose_secret()), "{app}: {owner}");
            }
        }
        // The app's own Redis password, not a shared one.
        let own = format!("FIXED{}redispassword", app.replace('-', ""));
        assert!(compose.contains(&own), "{app}");
        assert!(!compose.contains("FIXEDredispassword"), "{app}");
        assert!(
            redacted.contains(&format!("REDACTED({app}.redis_password)")),
            "{app}"
        );
        assert!(
            !format!("{stack:?}").contains("FIXED"),
            "Debug leaks a secret"
        );
    }
}

#[test]
fn chatwoot_prepares_its_database_after_deploy_and_gets_pgvector() {
    let catalog = catalog();
    let stack = render(&catalog, "chatwoot", EndpointMode::Vip);
    match &stack.post_deploy[0] {
        DeployStep::Exec {
            stack,
            service,
            argv,
            ..
        } => {
            assert_eq!((stack.as_str(), service.as_str()), ("chatwoot", "rails"));
            assert_eq!(argv, &["bundle", "exec", "rails", "db:chatwoot_prepare"]);
        }
        other => panic!("{other:?}"),
    }
    match &stack.pre_deploy[0] {
        DeployStep::CreateDatabase { spec, .. } => {
            assert!(spec.extensions.contains(&"vector".to_string()))
        }
        other => panic!("{other:?}"),
    }
    let doc = yaml(&stack);
    let names: Vec<String> = services(&doc).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["rails", "sidekiq", "redis"]);
}

#[test]
fn n8n_gets_its_own_database_created_before_deploy_with_the_password_on_stdin() {
    let catalog = catalog();
    let stack = render(&catalog, "n8n", EndpointMode::Vip);
    let DeployStep::CreateDatabase {
        stack: pg_stack,
        service,
        spec,
        password,
    } = &stack.pre_deploy[0]
    else {
        panic!("{:?}", stack.pre_deploy)
    };
    assert_eq!(
        (pg_stack.as_str(), service.as_str()),
        ("postgres", "postgres")
    );
    assert_eq!((spec.database.as_str(), spec.user.as_str()), ("n8n", "n8n"));
    assert_eq!(password, &SecretRef::new("n8n", "db_password"));
    let secrets = fixed_secrets(&catalog);
    let cmd = create_database_command(spec, &secrets["n8n"]["db_password"]).unwrap();
    assert!(cmd.argv.iter().all(|a| !a.contains("FIXED")));
    assert!(cmd.stdin.expose_secret().contains("'FIXEDn8ndbpassword'"));
}

#[test]
fn n8n_owner_is_claimed_over_https_with_a_secret_body() {
    let catalog = catalog();
    let stack = render(&catalog, "n8n", EndpointMode::Vip);
    let http = stack
        .post_deploy
        .iter()
        .find_map(|s| match s {
            DeployStep::HttpRequest(h) => Some(h),
            _ => None,
        })
        .expect("an owner setup step");
    assert_eq!(http.url, "https://n8n.lab.example.com/rest/owner/setup");
    let body: serde_json::Value = serde_json::from_str(http.body.expose_secret()).unwrap();
    assert_eq!(body["email"], "ops@example.com");
    assert_eq!(body["firstName"], "Ana");
    assert_eq!(body["password"], "FIXEDn8nownerpassword");
    assert!(!format!("{http:?}").contains("FIXED"));
}

#[test]
fn dnsrr_mode_marks_every_service_and_publishes_in_host_mode() {
    let catalog = catalog();
    for entry in catalog.list() {
        let doc = yaml(&render(
            &catalog,
            &entry.definition.name,
            EndpointMode::Dnsrr,
        ));
        for (name, svc) in services(&doc) {
            assert_eq!(
                svc["deploy"]["endpoint_mode"].as_str(),
                Some("dnsrr"),
                "{name}"
            );
            for p in svc["ports"].as_sequence().into_iter().flatten() {
                assert_eq!(p["mode"].as_str(), Some("host"), "{name}");
            }
        }
        let vip = yaml(&render(&catalog, &entry.definition.name, EndpointMode::Vip));
        for (name, svc) in services(&vip) {
            assert!(svc["deploy"].get("endpoint_mode").is_none(), "{name}");
        }
    }
}

#[test]
fn every_stack_joins_only_the_external_network() {
    let catalog = catalog();
    let mut ctx = context(EndpointMode::Vip);
    ctx.options.network = "custom_net".into();
    for entry in catalog.list() {
        let doc = yaml(&render_with(
            &catalog,
            &entry.definition.name,
            &ctx,
            &BTreeMap::new(),
        ));
        let nets = doc["networks"].as_mapping().unwrap();
        assert_eq!(nets.len(), 1);
        assert_eq!(
            doc["networks"]["custom_net"]["external"].as_bool(),
            Some(true)
        );
        for (name, svc) in services(&doc) {
            assert_eq!(strings(&svc["networks"]), ["custom_net"], "{name}");
        }
    }
}

#[test]
fn infrastructure_bundle_has_the_services_of_traefik_and_portainer() {
    let catalog = catalog();
    let norm = |stack: &livchat_apps::RenderedStack| {
        stack
            .compose()
            .expose_secret()
            .replace(&format!("tasks.{}_agent", stack.stack), "tasks.STACK_agent")
    };
    let bundle = yaml(&render(&catalog, "infrastructure", EndpointMode::Vip));
    let bundle_text = norm(&render(&catalog, "infrastructure", EndpointMode::Vip));
    let bundle_norm: Value = serde_yaml::from_str(&bundle_text).unwrap();
    let mut parts = serde_yaml::Mapping::new();
    for app in ["traefik", "portainer"] {
        let doc: Value =
            serde_yaml::from_str(&norm(&render(&catalog, app, EndpointMode::Vip))).unwrap();
        for (k, v) in doc["services"].as_mapping().unwrap() {
            parts.insert(k.clone(), v.clone());
        }
    }
    assert_eq!(bundle_norm["services"], Value::Mapping(parts));
    assert_eq!(bundle["services"].as_mapping().unwrap().len(), 3);
}

#[test]
fn image_overrides_apply_a_mirror_and_pins_but_never_latest() {
    let catalog = catalog();
    let mut ctx = context(EndpointMode::Vip);
    ctx.options = RenderOptions {
        images: ImageOverrides {
            registry_mirror: Some("mirror.example.com:5000".into()),
            pins: [("n8nio/n8n".to_string(), "n8nio/n8n:1.99.0".to_string())].into(),
        },
        ..RenderOptions::default()
    };
    let doc = yaml(&render_with(&catalog, "n8n", &ctx, &BTreeMap::new()));
    assert_eq!(
        doc["services"]["editor"]["image"].as_str(),
        Some("mirror.example.com:5000/n8nio/n8n:1.99.0")
    );
    let doc = yaml(&render_with(&catalog, "redis", &ctx, &BTreeMap::new()));
    assert_eq!(
        doc["services"]["redis"]["image"].as_str(),
        Some("mirror.example.com:5000/library/redis:7.4.5")
    );
    ctx.options.images.pins = [("redis".to_string(), "redis:latest".to_string())].into();
    let err = catalog
        .render("redis", &ctx, &BTreeMap::new(), &fixed_secrets(&catalog))
        .unwrap_err()
        .to_string();
    assert!(err.contains("latest") && err.contains("redis"), "{err}");
}

/// Every key path of a YAML document, with sequence lengths, to compare structures.
fn shape(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                let key = format!("{prefix}/{}", k.as_str().expect("string keys"));
                out.insert(key.clone());
                shape(v, &key, out);
            }
        }
        Value::Sequence(s) => {
            out.insert(format!("{prefix}[{}]", s.len()));
            for (i, v) in s.iter().enumerate() {
                shape(v, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn all_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Mapping(m) => m.values().for_each(|v| all_strings(v, out)),
        Value::Sequence(s) => s.iter().for_each(|v| all_strings(v, out)),
        _ => {}
    }
}

const HOSTILE: &[&str] = &[
    "x\ninjected: true",
    "x\nservices:\n  evil:\n    image: evil:1",
    "\"; evil: 1; \"",
    "' OR '1'='1",
    "${HOME}",
    "$(id) `id` $$",
    "{{ secrets.password }}",
    "}}: x",
    "{% raw %}",
    "---\nservices: {}\n...",
    "...",
    "- item",
    "[a, b]",
    "{a: b}",
    "key: value # comment",
    "&anchor *alias !!binary",
    "back\\slash\\",
    "tab\there\r\nCRLF",
    "ção 日本 🚀 \u{2028}\u{2029}\u{85}\u{feff}\u{a0}",
    "  leading and trailing  ",
    "@at %percent |pipe >gt",
];

#[test]
fn hostile_user_values_cannot_add_keys_or_services() {
    let catalog = catalog();
    // (app, where the value goes): settings and `--set` parameters are the user's inputs.
    // Every user input a template can print: each free-text `--set` parameter of every app,
    // and the settings (`email`, `name`) of the apps that read them.
    let mut owned: Vec<(String, &str, String)> = Vec::new();
    for entry in catalog.list() {
        let d = &entry.definition;
        for (key, p) in &d.parameters {
            if p.kind == livchat_apps::definition::ParameterKind::String && p.allowed.is_empty() {
                owned.push((d.name.clone(), "param", key.clone()));
            }
        }
        for setting in &d.required_settings {
            owned.push((d.name.clone(), "setting", setting.clone()));
        }
    }
    let cases: Vec<(&str, &str, &str)> = owned
        .iter()
        .map(|(a, k, s)| (a.as_str(), *k, s.as_str()))
        .collect();
    assert!(cases.len() >= 15, "{cases:?}");
    for &(app, kind, key) in &cases {
        // The baseline has a benign value in the same place (an empty value may drop a key).
        let mut base_ctx = context(EndpointMode::Vip);
        let mut base_params = BTreeMap::new();
        if kind == "setting" {
            base_ctx.settings.insert(key.into(), "benign".into());
        } else {
            base_params.insert(key.to_string(), "benign".to_string());
        }
        let base = yaml(&render_with(&catalog, app, &base_ctx, &base_params));
        let mut base_shape = BTreeSet::new();
        shape(&base, "", &mut base_shape);
        // Some inputs only feed a post-deploy request body, not the stack file.
        let mut base_values = Vec::new();
        all_strings(&base, &mut base_values);
        let printed = base_values.iter().any(|v| v.contains("benign"));
        for hostile in HOSTILE {
            let mut ctx = base_ctx.clone();
            let mut params = BTreeMap::new();
            if kind == "setting" {
                ctx.settings.insert(key.into(), hostile.to_string());
            } else {
                params.insert(key.to_string(), hostile.to_string());
            }
            let stack = catalog
                .render(app, &ctx, &params, &fixed_secrets(&catalog))
                .unwrap_or_else(|e| panic!("{app} {key} {hostile:?}: {e}"));
            let doc = yaml(&stack);
            let mut got = BTreeSet::new();
            shape(&doc, "", &mut got);
            assert_eq!(
                got, base_shape,
                "{app} {key} {hostile:?} changed the structure"
            );
            // The value arrives whole (Compose turns `$$` back into `$`).
            if !printed {
                continue;
            }
            let mut values = Vec::new();
            all_strings(&doc, &mut values);
            assert!(
                values
                    .iter()
                    .any(|v| v.replace("$$", "$").contains(hostile)),
                "{app} {key} {hostile:?} not found intact"
            );
        }
    }
}

#[test]
fn hostile_dns_and_network_names_are_rejected_naming_the_field() {
    let bad_zone = livchat_apps::DnsConfig::new("example.com\nservices:", None).unwrap_err();
    assert!(bad_zone.to_string().contains("zone"), "{bad_zone}");
    let bad_sub = livchat_apps::DnsConfig::new("example.com", Some("a b")).unwrap_err();
    assert!(bad_sub.to_string().contains("subdomain"), "{bad_sub}");
    let catalog = catalog();
    let mut ctx = context(EndpointMode::Vip);
    ctx.options.network = "net: {}".into();
    let err = catalog
        .render("redis", &ctx, &BTreeMap::new(), &fixed_secrets(&catalog))
        .unwrap_err()
        .to_string();
    assert!(err.contains("network"), "{err}");
    let mut ctx = context(EndpointMode::Vip);
    ctx.settings.insert("email".into(), "a\0b".into());
    let err = catalog
        .render("traefik", &ctx, &BTreeMap::new(), &fixed_secrets(&catalog))
        .unwrap_err()
        .to_string();
    assert!(err.contains("settings.email"), "{err}");
}

#[test]
fn a_missing_setting_or_secret_is_an_error_naming_it() {
    let catalog = catalog();
    let mut ctx = context(EndpointMode::Vip);
    ctx.settings.remove("email");
    let err = catalog
        .render("traefik", &ctx, &BTreeMap::new(), &fixed_secrets(&catalog))
        .unwrap_err();
    assert!(matches!(err, AppsError::MissingSetting { ref setting, .. } if setting == "email"));
    let mut secrets = fixed_secrets(&catalog);
    secrets.get_mut("n8n").unwrap().remove("redis_password");
    let err = catalog
        .render(
            "n8n",
            &context(EndpointMode::Vip),
            &BTreeMap::new(),
            &secrets,
        )
        .unwrap_err();
    assert!(
        matches!(err, AppsError::MissingSecret { ref app, ref secret } if app == "n8n" && secret == "redis_password"),
        "{err}"
    );
}

#[test]
fn settable_keys_are_validated_against_the_app_parameters() {
    let catalog = catalog();
    let ctx = context(EndpointMode::Vip);
    let secrets = fixed_secrets(&catalog);
    let params = [("nope".to_string(), "1".to_string())].into();
    let err = catalog
        .render("n8n", &ctx, &params, &secrets)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`nope`") && err.contains("timezone, worker_replicas"),
        "{err}"
    );
    let params = [("worker_replicas".to_string(), "two".to_string())].into();
    let err = catalog
        .render("n8n", &ctx, &params, &secrets)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("worker_replicas") && err.contains("integer"),
        "{err}"
    );
    let params = [("worker_replicas".to_string(), "3".to_string())].into();
    let doc = yaml(&catalog.render("n8n", &ctx, &params, &secrets).unwrap());
    assert_eq!(
        doc["services"]["worker"]["deploy"]["replicas"].as_u64(),
        Some(3)
    );
    let err = catalog
        .render(
            "redis",
            &ctx,
            &[("x".to_string(), "y".to_string())].into(),
            &secrets,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("settable keys: none"), "{err}");
}

#[test]
fn dns_names_follow_prefix_subdomain_zone() {
    let catalog = catalog();
    let stack = render(&catalog, "n8n", EndpointMode::Vip);
    assert_eq!(
        stack.dns_names,
        ["n8n.lab.example.com", "webhook-n8n.lab.example.com"]
    );
    let mut ctx = context(EndpointMode::Vip);
    ctx.dns = livchat_apps::DnsConfig::new("example.com", None).unwrap();
    let stack = render_with(&catalog, "chatwoot", &ctx, &BTreeMap::new());
    assert_eq!(stack.dns_names, ["chatwoot.example.com"]);
    assert!(
        render(&catalog, "postgres", EndpointMode::Vip)
            .dns_names
            .is_empty()
    );
}

/// Issue #19: one app must not reach another app's Redis data. Every app that uses Redis runs
/// its own, in its own stack, with its own password and volume; none shares the `redis` app.
#[test]
fn every_redis_app_runs_its_own_redis_with_its_own_host_password_and_volume() {
    let catalog = catalog();
    let mut hosts = BTreeMap::new();
    let mut passwords = BTreeMap::new();
    let mut users = Vec::new();
    for entry in catalog.list() {
        let d = &entry.definition;
        if !d.dependencies.iter().any(|dep| dep.app == "redis") {
            continue;
        }
        users.push(d.name.clone());
        let stack = render(&catalog, &d.name, EndpointMode::Vip);
        let doc = yaml(&stack);
        let compose = stack.compose().expose_secret();
        let own = format!("{}_redis", d.name);
        assert!(compose.contains(&own), "{}: never names {own}", d.name);
        assert!(
            doc["services"]["redis"]["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("redis:")),
            "{}: no redis service in its stack",
            d.name
        );
        assert!(
            doc["volumes"]["redis_data"].is_mapping(),
            "{}: its Redis has no volume of its own",
            d.name
        );
        // The Redis password is the app's own secret, delivered as the app's Docker secret.
        let password = stack
            .docker_secrets
            .iter()
            .find(|s| s.secret == SecretRef::new(&d.name, "redis_password"))
            .unwrap_or_else(|| panic!("{}: no redis_password Docker secret", d.name));
        assert_eq!(password.name, format!("livchat_{}_redis_password", d.name));
        assert!(
            stack.docker_secrets.iter().all(|s| s.secret.app == d.name),
            "{}: uses another app's secret: {:?}",
            d.name,
            stack.docker_secrets
        );
        assert!(
            !compose.contains("FIXEDredispassword"),
            "{}: the shared redis password is in its stack",
            d.name
        );
        hosts.insert(own, d.name.clone());
        if let Some(other) =
            passwords.insert(password.value.expose_secret().to_string(), d.name.clone())
        {
            panic!("{} and {other} share a Redis password", d.name);
        }
        assert_eq!(
            stack.own_instances.len(),
            1,
            "{}: {:?}",
            d.name,
            stack.own_instances
        );
        // Nothing to deploy first, and undeploying a standalone `redis` concerns no app.
        let order = catalog
            .install_order(&[d.name.as_str()], &set(&[]))
            .unwrap();
        assert!(
            !order.contains(&"redis".to_string()),
            "{}: {order:?}",
            d.name
        );
        let deployed = set(&["infrastructure", "postgres", "redis", &d.name]);
        assert!(catalog.dependents_of("redis", &deployed).is_empty());
    }
    assert!(users.len() >= 8, "{users:?}");
    assert_eq!(hosts.len(), users.len());
}

/// Traefik terminates TLS and sends Appsmith plain HTTP on port 80. Appsmith's Caddy serves
/// port 80 as is only without `APPSMITH_CUSTOM_DOMAIN` (with it, `http://<domain>` redirects to
/// HTTPS: a redirect loop behind Traefik), so the stack must not set it; the claim script's
/// Origin comes from a variable of its own.
#[test]
fn appsmith_is_reached_over_http_on_port_80_without_a_custom_domain() {
    let catalog = catalog();
    for mode in [EndpointMode::Vip, EndpointMode::Dnsrr] {
        let stack = render(&catalog, "appsmith", mode);
        let compose = stack.compose().expose_secret();
        let doc = yaml(&stack);
        let service = &doc["services"]["appsmith"];
        let env = service["environment"].as_mapping().unwrap();
        assert!(
            env.keys()
                .all(|k| k.as_str() != Some("APPSMITH_CUSTOM_DOMAIN")),
            "{compose}"
        );
        assert_eq!(
            service["environment"]["LIVCHAT_APPSMITH_ORIGIN"].as_str(),
            Some("https://appsmith.lab.example.com")
        );
        let labels = strings(&service["deploy"]["labels"]);
        assert!(
            labels.contains(&"traefik.http.services.appsmith.loadbalancer.server.port=80".into()),
            "{labels:?}"
        );
        assert!(
            !labels
                .iter()
                .any(|l| l.contains("loadbalancer.server.scheme")),
            "{labels:?}"
        );
    }
}
