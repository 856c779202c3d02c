//! The catalog: loading user definitions (override, duplicates, bad files), listing and search,
//! install order and reverse dependencies with the real definitions, secrets bookkeeping, and
//! the whole `app render` preview.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{context, set};
use livchat_apps::secrets::{complete, generate_missing, missing_secrets};
use livchat_apps::{
    AppSecrets, AppsError, Catalog, DefinitionSource, EndpointMode, PreviewRequest, SecretRef,
    parse_set, validate_stack_text,
};
use secrecy::{ExposeSecret, SecretString};

const TINY: &str = r#"
name: NAME
version: "1"
category: application
description: A test app.
images:
  app: "busybox:1.36.1"
template:
  inline: |
    services:
      app:
        image: {{ images.app }}
"#;

fn tiny(name: &str) -> String {
    TINY.replace("NAME", name)
}

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
}

#[test]
fn list_get_and_search() {
    let catalog = Catalog::builtin().unwrap();
    let names: Vec<String> = catalog.list().map(|e| e.definition.name.clone()).collect();
    assert_eq!(names, catalog.names());
    assert!(catalog.get("n8n").is_some());
    let err = catalog.require("joomla").unwrap_err().to_string();
    assert!(err.contains("`joomla`") && err.contains("n8n"), "{err}");
    let found: Vec<&str> = catalog
        .search("REDIS")
        .iter()
        .map(|e| e.definition.name.as_str())
        .collect();
    // Matches the name and every description that mentions Redis.
    assert!(
        found.contains(&"redis") && found.contains(&"n8n"),
        "{found:?}"
    );
    let dbs: Vec<&str> = catalog
        .search("database")
        .iter()
        .map(|e| e.definition.name.as_str())
        .collect();
    assert!(dbs.contains(&"postgres"), "{dbs:?}");
    assert!(
        catalog
            .list()
            .all(|e| e.source == DefinitionSource::Builtin)
    );
}

#[test]
fn a_user_definition_overrides_the_builtin_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Catalog::builtin().unwrap().get("redis").unwrap().clone();
    let mut mine = redis.clone();
    mine.images.insert("redis".into(), "redis:7.4.2".into());
    mine.template = livchat_apps::definition::TemplateSource::File("my-redis.yml.tera".into());
    write(
        dir.path(),
        "redis.yaml",
        &serde_yaml::to_string(&mine).unwrap(),
    );
    write(
        dir.path(),
        "my-redis.yml.tera",
        include_str!("../apps/redis.yml.tera"),
    );
    write(dir.path(), "extra.yaml", &tiny("extra"));
    write(dir.path(), "notes.txt", "not a definition");

    let catalog = Catalog::load(Some(&format!("::{}:", dir.path().display()))).unwrap();
    let entry = catalog.entry("redis").unwrap();
    assert!(entry.overrides_builtin);
    assert_eq!(
        entry.source,
        DefinitionSource::User {
            path: dir.path().join("redis.yaml")
        }
    );
    assert_eq!(entry.definition.images["redis"], "redis:7.4.2");
    assert!(!catalog.entry("extra").unwrap().overrides_builtin);
    let stack = common::render(&catalog, "redis", EndpointMode::Vip);
    assert!(stack.compose().expose_secret().contains("redis:7.4.2"));
}

#[test]
fn the_same_app_in_two_user_directories_is_rejected() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write(a.path(), "x.yaml", &tiny("dup"));
    write(b.path(), "y.yml", &tiny("dup"));
    let err = Catalog::with_user_dirs(&[a.path().into(), b.path().into()]).unwrap_err();
    match err {
        AppsError::DuplicateDefinition {
            name,
            first,
            second,
        } => {
            assert_eq!(name, "dup");
            assert_eq!(first, a.path().join("x.yaml"));
            assert_eq!(second, b.path().join("y.yml"));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn bad_user_definitions_are_rejected_naming_the_file_and_field() {
    let cases: &[(&str, String, &str)] = &[
        (
            "unknown key",
            tiny("a").replace("version:", "colour: red\nversion:"),
            "colour",
        ),
        (
            "latest image",
            tiny("a").replace("busybox:1.36.1", "busybox:latest"),
            "images.app",
        ),
        (
            "untagged image",
            tiny("a").replace("busybox:1.36.1", "busybox"),
            "images.app",
        ),
        ("bad name", tiny("A_b"), "name"),
        (
            "database with ports",
            tiny("a").replace("category: application", "category: database\nports:\n  - port: 5432"),
            "ports",
        ),
        (
            "concatenation printed unescaped",
            tiny("a").replace("{{ images.app }}", "{{ \"x\" ~ images.app }}"),
            "template",
        ),
        (
            "safe filter",
            tiny("a").replace("{{ images.app }}", "{{ images.app | safe }}"),
            "template",
        ),
        (
            "template outside its directory",
            tiny("a").replace("inline: |", "file: ../../etc/passwd\n  x: |"),
            "template",
        ),
        (
            "tera syntax error",
            tiny("a").replace("{{ images.app }}", "{{ images.app "),
            "template",
        ),
        (
            "short secret",
            tiny("a").replace("images:", "secrets:\n  - name: pw\n    length: 8\nimages:"),
            "secrets[0].length",
        ),
        (
            "superuser as app user",
            tiny("a").replace(
                "images:",
                "secrets: [{name: pw}]\ndependencies:\n  - app: postgres\n    database: {name: a, user: postgres, password_secret: pw}\nimages:",
            ),
            "database.user",
        ),
    ];
    for (what, text, field) in cases {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", text);
        let err = Catalog::with_user_dirs(&[dir.path().into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a.yaml") && err.contains(field),
            "{what}: {err}"
        );
    }
}

#[test]
fn a_missing_directory_is_an_error_naming_it() {
    let err = Catalog::load(Some("/nonexistent/livchat-apps"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/livchat-apps"), "{err}");
}

#[test]
fn install_order_puts_infrastructure_and_shared_dependencies_first_once() {
    let catalog = Catalog::builtin().unwrap();
    let none = set(&[]);
    assert_eq!(
        catalog.install_order(&["n8n"], &none).unwrap(),
        ["infrastructure", "postgres", "n8n"],
        "n8n runs its own Redis: the shared `redis` app is not deployed for it"
    );
    assert_eq!(
        catalog
            .install_order(&["n8n", "chatwoot", "evolution-api"], &none)
            .unwrap(),
        [
            "infrastructure",
            "postgres",
            "n8n",
            "chatwoot",
            "evolution-api"
        ]
    );
    assert_eq!(
        catalog
            .install_order(&["chatwoot"], &set(&["infrastructure", "postgres"]))
            .unwrap(),
        ["chatwoot"]
    );
    // The bundle counts as deployed when its parts were deployed one by one.
    assert_eq!(
        catalog
            .install_order(&["redis"], &set(&["traefik", "portainer"]))
            .unwrap(),
        ["redis"]
    );
    assert!(
        catalog
            .install_order(
                &["n8n"],
                &set(&["infrastructure", "postgres", "redis", "n8n"])
            )
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        catalog.install_order(&["infrastructure"], &none).unwrap(),
        ["infrastructure"]
    );
}

#[test]
fn a_missing_dependency_and_a_cycle_are_rejected_by_name() {
    let dep_on = |name: &str, dep: &str| {
        tiny(name).replace(
            "images:",
            &format!("dependencies:\n  - app: {dep}\nimages:"),
        )
    };
    let missing = dep_on("a", "ghost");
    let catalog = Catalog::from_sources(&[(&missing, "", "a.yaml")]).unwrap();
    let err = catalog.install_order(&["a"], &set(&[])).unwrap_err();
    assert!(
        matches!(err, AppsError::MissingDependency { ref app, ref dependency } if app == "a" && dependency == "ghost"),
        "{err}"
    );

    let (a, b, c) = (dep_on("a", "b"), dep_on("b", "c"), dep_on("c", "a"));
    let catalog = Catalog::from_sources(&[
        (&a, "services: {}", "a.yaml"),
        (&b, "services: {}", "b.yaml"),
        (&c, "services: {}", "c.yaml"),
    ])
    .unwrap();
    let err = catalog.install_order(&["b"], &set(&[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "dependency cycle between apps: b -> c -> a -> b"
    );
}

#[test]
fn dependents_of_guards_undeploying_a_shared_dependency() {
    let catalog = Catalog::builtin().unwrap();
    let deployed = set(&["infrastructure", "postgres", "redis", "n8n", "chatwoot"]);
    assert_eq!(
        catalog.dependents_of("postgres", &deployed),
        ["chatwoot", "n8n"]
    );
    assert_eq!(
        catalog.dependents_of("redis", &set(&["infrastructure", "redis"])),
        Vec::<String>::new()
    );
    assert!(catalog.dependents_of("n8n", &deployed).is_empty());
    assert_eq!(
        catalog.dependents_of("infrastructure", &deployed),
        ["chatwoot", "n8n", "postgres", "redis"]
    );
    // Traefik deployed on its own is still what every app needs.
    let split = set(&["traefik", "portainer", "postgres", "n8n", "redis"]);
    assert_eq!(
        catalog.dependents_of("traefik", &split),
        ["n8n", "postgres", "redis"]
    );
}

#[test]
fn secrets_needed_are_the_apps_own_plus_shared_provider_ones() {
    let catalog = Catalog::builtin().unwrap();
    assert_eq!(
        catalog.secrets_needed("n8n").unwrap(),
        [
            SecretRef::new("n8n", "db_password"),
            SecretRef::new("n8n", "encryption_key"),
            SecretRef::new("n8n", "owner_password"),
            // The password of n8n's own Redis: n8n's secret, not the `redis` app's.
            SecretRef::new("n8n", "redis_password"),
        ]
    );
    assert_eq!(
        SecretRef::new("n8n", "db_password").vault_key(),
        "app.n8n.db_password"
    );
}

#[test]
fn only_missing_secrets_are_generated_and_existing_ones_are_kept() {
    let catalog = Catalog::builtin().unwrap();
    let n8n = catalog.get("n8n").unwrap();
    let mut existing = AppSecrets::new();
    existing.insert("encryption_key".into(), SecretString::from("KEEP-ME"));
    let missing: Vec<&str> = missing_secrets(n8n, &existing)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(missing, ["db_password", "owner_password", "redis_password"]);
    let new = generate_missing(n8n, &existing);
    assert_eq!(
        new.keys().collect::<Vec<_>>(),
        ["db_password", "owner_password", "redis_password"]
    );
    assert_eq!(new["db_password"].expose_secret().len(), 32);
    let all = complete(n8n, &existing);
    assert_eq!(all["encryption_key"].expose_secret(), "KEEP-ME");
    assert!(generate_missing(n8n, &all).is_empty());
}

#[test]
fn preview_renders_the_app_and_its_dependencies_in_install_order() {
    let catalog = Catalog::builtin().unwrap();
    let request = PreviewRequest {
        app: "n8n".into(),
        context: context(EndpointMode::Vip),
        params: [parse_set("timezone=Europe/Berlin").unwrap()].into(),
        deployed: set(&[]),
    };
    let stacks = catalog.render_preview(&request).unwrap();
    let apps: Vec<&str> = stacks.iter().map(|s| s.app.as_str()).collect();
    assert_eq!(apps, ["infrastructure", "postgres", "n8n"]);
    for s in &stacks {
        validate_stack_text(&s.app, &s.compose).unwrap();
    }
    assert!(
        stacks[2]
            .compose
            .contains("GENERIC_TIMEZONE: Europe/Berlin")
    );
    let json = serde_json::to_value(&stacks).unwrap();
    assert_eq!(json[2]["app"], "n8n");
    assert_eq!(json[2]["stack"], "n8n");
    assert!(json[2]["compose"].as_str().unwrap().contains("services:"));

    // Two previews use different throwaway secrets: nothing is stored or reused.
    let again = catalog.render_preview(&request).unwrap();
    let chatwoot = PreviewRequest {
        app: "chatwoot".into(),
        ..request.clone()
    };
    let c1 = catalog.render_preview(&PreviewRequest {
        params: BTreeMap::new(),
        ..chatwoot.clone()
    });
    let c2 = catalog.render_preview(&PreviewRequest {
        params: BTreeMap::new(),
        ..chatwoot
    });
    assert_ne!(c1.unwrap()[2].compose, c2.unwrap()[2].compose);
    assert_eq!(again.len(), 3);
}

#[test]
fn preview_rejects_unknown_set_keys_before_rendering() {
    let catalog = Catalog::builtin().unwrap();
    let request = PreviewRequest {
        app: "n8n".into(),
        context: context(EndpointMode::Vip),
        params: [("replicas".to_string(), "2".to_string())].into(),
        deployed: set(&[]),
    };
    let err = catalog.render_preview(&request).unwrap_err().to_string();
    assert_eq!(
        err,
        "app `n8n` has no settable key `replicas`; settable keys: timezone, worker_replicas"
    );
    assert!(parse_set("novalue").is_err());
    assert!(parse_set("=x").is_err());
    assert_eq!(
        parse_set("k=a=b").unwrap(),
        ("k".to_string(), "a=b".to_string())
    );
}

#[test]
fn every_builtin_app_makes_its_first_admin_or_says_why_it_cannot() {
    use livchat_apps::definition::{BodyValue, FirstRunAdmin, StepSpec, TemplateSource};

    let catalog = Catalog::builtin().unwrap();
    let apps_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("apps");
    let mut undeclared = Vec::new();
    let mut open = Vec::new();
    for entry in catalog.list() {
        let def = &entry.definition;
        let Some(fr) = &def.first_run else {
            undeclared.push(def.name.clone());
            continue;
        };
        let template = match &def.template {
            TemplateSource::File(f) => std::fs::read_to_string(apps_dir.join(f)).unwrap(),
            TemplateSource::Inline(t) => t.clone(),
        };
        // The named secret must really reach the app: in its stack (environment, a Docker
        // secret) or in a claim step's body or input.
        let delivered = |secret: &str| {
            let in_template = template.contains(&format!("secrets.{secret}"));
            let in_claim = def.post_deploy.iter().any(|s| {
                let fields = match s {
                    StepSpec::InitAdminHttp { body, .. } => body,
                    StepSpec::InitAdminExec { input, .. } => input,
                    _ => return false,
                };
                fields
                    .values()
                    .any(|v| matches!(v, BodyValue::Secret(n) if n == secret))
            });
            in_template || in_claim
        };
        if let Some(secret) = &fr.secret {
            assert!(
                delivered(secret),
                "{}: first_run.secret {secret:?} reaches neither its stack nor a claim step",
                def.name
            );
        }
        match fr.admin {
            FirstRunAdmin::Claimed => claimed_on_stdin(&catalog, &def.name, fr.secret.as_deref()),
            FirstRunAdmin::Environment | FirstRunAdmin::NoAccounts => {}
            FirstRunAdmin::OpenSetupPage => open.push(def.name.as_str()),
        }
    }
    assert!(
        undeclared.is_empty(),
        "these built-in apps declare no `first_run` (how their first admin is made): {undeclared:?}"
    );
    // Twenty and Formbricks were removed for this (#19): a built-in either claims its setup
    // page or has none. A user definition may still declare one (the plan and job warn).
    assert!(
        open.is_empty(),
        "built-in apps left with an open setup page: {open:?}"
    );
}

/// The guard of issue #19: no built-in app's rendered stack opens a public router to a setup
/// page nobody has claimed. Every app with a Traefik router declares `first_run`; none of them
/// is `open_setup_page`; and a `claimed` one has a claim step in its rendered `post_deploy`
/// (which is what makes the deploy close its routes until the claim succeeds) and no router
/// left on once they are closed.
#[test]
fn no_builtin_app_routes_the_public_to_an_unclaimed_setup_page() {
    use livchat_apps::DeployStep;
    use livchat_apps::definition::FirstRunAdmin;
    use livchat_apps::first_run::{close_public_routes, has_public_routes};

    let catalog = Catalog::builtin().unwrap();
    let mut routed = 0;
    let mut claimed = 0;
    for entry in catalog.list() {
        let def = &entry.definition;
        let stack = common::render(&catalog, &def.name, EndpointMode::Vip);
        if !has_public_routes(stack.compose().expose_secret()) {
            continue;
        }
        routed += 1;
        let admin = def.first_run.as_ref().map(|f| f.admin);
        assert!(
            admin.is_some() && admin != Some(FirstRunAdmin::OpenSetupPage),
            "{}: a public router to a first-run setup page nobody claims ({admin:?})",
            def.name
        );
        let claim_steps = stack
            .post_deploy
            .iter()
            .filter(|s| matches!(s, DeployStep::HttpRequest(_) | DeployStep::ExecClaim(_)))
            .count();
        if admin == Some(FirstRunAdmin::Claimed) {
            claimed += 1;
            assert!(
                claim_steps > 0,
                "{}: claimed without a claim step",
                def.name
            );
            let closed = close_public_routes(&def.name, stack.compose()).unwrap();
            assert!(
                !has_public_routes(closed.expose_secret()),
                "{}: a router stays on while the claim waits",
                def.name
            );
        } else {
            assert_eq!(
                claim_steps, 0,
                "{}: a claim step but not `claimed`",
                def.name
            );
        }
    }
    assert!(routed >= 40, "only {routed} apps with a public router");
    // n8n, Mattermost, Open WebUI, Cal.com, Docmost, Baserow, Chatwoot, DocuSeal, Metabase,
    // Wiki.js, Umami, Odoo, Uptime Kuma, Activepieces, Flowise, Appsmith, Gitea.
    assert!(claimed >= 17, "only {claimed} claimed apps");
}

/// A `claimed` app's rendered claim steps carry its admin secret on the exec's stdin (the
/// request body or the command's input), or read it from its Docker secret file (Odoo), and
/// never in an argv (issue #19).
fn claimed_on_stdin(catalog: &Catalog, app: &str, secret: Option<&str>) {
    use livchat_apps::DeployStep;

    let secret = secret.unwrap_or_else(|| panic!("{app}: claimed without a secret"));
    let value = common::fixed_secrets(catalog)[app][secret]
        .expose_secret()
        .to_string();
    let stack = common::render(catalog, app, livchat_apps::EndpointMode::Vip);
    let mut carried = false;
    for step in &stack.post_deploy {
        let (argv, stdin) = match step {
            DeployStep::HttpRequest(h) => {
                let cmd = livchat_apps::first_run::claim_command(h);
                (cmd.argv, cmd.stdin)
            }
            DeployStep::ExecClaim(e) => (
                e.argv.clone(),
                SecretString::from(e.stdin.expose_secret().to_owned()),
            ),
            _ => continue,
        };
        assert!(
            argv.iter().all(|a| !a.contains(&value)),
            "{app}: the admin secret is in a claim's argv"
        );
        let from_secret_file = argv
            .iter()
            .any(|a| a.contains(&format!("/run/secrets/{secret}")))
            && stack.docker_secrets.iter().any(|d| d.secret.name == secret);
        carried |= stdin.expose_secret().contains(&value) || from_secret_file;
    }
    assert!(carried, "{app}: no claim step sends {secret} on stdin");
}

#[test]
fn first_run_that_contradicts_the_claim_steps_is_rejected() {
    let claim = "post_deploy:\n  - init_admin_exec:\n      service: app\n      argv: [true]\n      input:\n        password: { secret: pw }\n";
    let with = |extra: &str| {
        tiny("a").replace(
            "images:",
            &format!("secrets: [{{name: pw}}]\n{extra}images:"),
        )
    };
    let cases: &[(&str, String, &str)] = &[
        (
            "claimed without a claim step",
            with("first_run: {admin: claimed, secret: pw}\n"),
            "first_run.admin",
        ),
        (
            "a claim step but declared open",
            with(&format!(
                "{claim}first_run: {{admin: open_setup_page, note: x}}\n"
            )),
            "first_run.admin",
        ),
        (
            "claimed without its secret",
            with(&format!("{claim}first_run: {{admin: claimed}}\n")),
            "first_run.secret",
        ),
        (
            "an unknown secret",
            with("first_run: {admin: environment, secret: nope, note: x}\n"),
            "first_run.secret",
        ),
        (
            "an open page without a note",
            with("first_run: {admin: open_setup_page}\n"),
            "first_run.note",
        ),
    ];
    for (what, text, field) in cases {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", text);
        let err = Catalog::with_user_dirs(&[dir.path().into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a.yaml") && err.contains(field),
            "{what}: {err}"
        );
    }
    // The same claim with `claimed` loads.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.yaml",
        &with(&format!(
            "{claim}first_run: {{admin: claimed, secret: pw}}\n"
        )),
    );
    Catalog::with_user_dirs(&[dir.path().into()]).unwrap();
}

#[test]
fn an_on_exists_that_would_take_over_on_any_failure_is_rejected() {
    let claim = |on_exists: &str| {
        tiny("a").replace(
            "images:",
            &format!(
                "secrets: [{{name: pw}}]\npost_deploy:\n  - init_admin_exec:\n      service: app\n      argv: [true]\n      input:\n        password: {{ secret: pw }}\n{on_exists}first_run: {{admin: claimed, secret: pw}}\nimages:"
            ),
        )
    };
    for (what, extra, field) in [
        (
            "no text",
            "      on_exists: {output_contains: \" \", argv: [true]}\n",
            "on_exists.output_contains",
        ),
        (
            "no program",
            "      on_exists: {output_contains: exists, argv: []}\n",
            "on_exists.argv",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", &claim(extra));
        let err = Catalog::with_user_dirs(&[dir.path().into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{what}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.yaml",
        &claim("      on_exists: {output_contains: exists, argv: [true]}\n"),
    );
    Catalog::with_user_dirs(&[dir.path().into()]).unwrap();
}
