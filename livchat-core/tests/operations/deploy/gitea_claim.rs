//! Issue #19, Gitea's partial claim: `gitea admin user create` made the admin, a later part of
//! the claim failed, so the claim was not recorded, and every retry's create fails with "user
//! already exists". The claim runs while no public route exists, so that admin is livchat's:
//! the definition's `on_exists` command gives it the vault's password, the input again on
//! stdin and never in an argv. With a recorded claim, the refusal is ours and nothing runs.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

const ADMIN_PASSWORD: &str = "gitea-admin-password-SENTINEL-0123456789";
const EXISTS: &str = "Command error: CreateUser: user already exists [name: gitadmin]";

/// Gitea's first deploy up to its claim, answered by mocks: its database, one DNS record, the
/// stack sent `deploys` times, healthy, /api/healthz answering. Returns what was deployed.
fn gitea_deploy(mocks: &mut Mocks, deploys: usize) -> Arc<Mutex<Vec<Deployed>>> {
    connects(mocks);
    dns_records(
        mocks,
        &[("gitea.lab.example.com", "rec-gitea", Change::Created)],
    );
    mocks
        .platform
        .expect_exec_in_service()
        .withf(|e| e.stack == "postgres")
        .times(1)
        .returning(|_| Ok(output(0, "", "")));
    let deployed = deploys_stack_times(&mut mocks.platform, "gitea", deploys);
    mocks
        .platform
        .expect_wait_healthy()
        .returning(|name, _| Ok(healthy(name)));
    mocks
        .platform
        .expect_exec_in_service()
        .withf(|e| e.argv.get(3).is_some_and(|a| a == "livchat-probe"))
        .returning(|_| Ok(output(0, "200", "")));
    deployed
}

fn script(e: &livchat_remote::ServiceExec) -> &str {
    e.argv.get(2).map_or("", String::as_str)
}

/// A claim exec in gitea/gitea: the password only on stdin, in no argument.
fn claim_exec(e: &livchat_remote::ServiceExec) -> bool {
    e.stack == "gitea"
        && e.service == "gitea"
        && e.argv.iter().all(|a| !a.contains(ADMIN_PASSWORD))
        && e.stdin
            .as_ref()
            .is_some_and(|s| String::from_utf8_lossy(s.expose_secret()).contains(ADMIN_PASSWORD))
}

#[tokio::test(start_paused = true)]
async fn an_admin_left_by_a_partial_claim_gets_the_vault_password_through_on_exists() {
    let world = world_with_databases();
    world.set_secret("app.gitea.admin_password", ADMIN_PASSWORD);
    let mut mocks = Mocks::default();
    let deployed = gitea_deploy(&mut mocks, 2);
    let order = Arc::new(Mutex::new(Vec::new()));
    let seen = order.clone();
    mocks
        .platform
        .expect_exec_in_service()
        .withf(|e| claim_exec(e) && script(e).contains("gitea admin user create"))
        .times(1)
        .returning(move |_| {
            seen.lock().unwrap().push("create");
            Ok(output(1, "", EXISTS))
        });
    let seen = order.clone();
    mocks
        .platform
        .expect_exec_in_service()
        .withf(|e| {
            claim_exec(e)
                && script(e).contains("generate-access-token")
                && script(e).contains("gitea admin user list --admin")
                && !script(e).contains("gitea admin user create")
        })
        .times(1)
        .returning(move |_| {
            seen.lock().unwrap().push("reset");
            Ok(output(0, "", ""))
        });
    let orch = world.build(mocks);
    let job = orch.start_deploy_app("web-1", "gitea", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert_eq!(*order.lock().unwrap(), ["create", "reset"]);
    assert!(world.state().claimed("web-1", "gitea", 0));
    let log = log_text(&orch, &job.id);
    assert!(
        log.contains(
            "the admin account exists already (\"user already exists\") though no claim is recorded"
        ),
        "{log}"
    );
    assert!(
        log.contains("the existing admin has the vault's password"),
        "{log}"
    );
    assert!(!log.contains(ADMIN_PASSWORD));
    let open: Vec<bool> = deployed
        .lock()
        .unwrap()
        .iter()
        .map(|d| livchat_apps::first_run::has_public_routes(&d.compose_yaml))
        .collect();
    assert_eq!(open, [false, true], "routes opened only after the claim");
    verify(orch);
}

#[tokio::test(start_paused = true)]
async fn a_failing_password_reset_fails_the_deploy_with_the_routes_closed() {
    let world = world_with_databases();
    world.set_secret("app.gitea.admin_password", ADMIN_PASSWORD);
    let mut mocks = Mocks::default();
    let deployed = gitea_deploy(&mut mocks, 1);
    mocks
        .platform
        .expect_remove_stack()
        .withf(|name| name == "gitea")
        .times(1)
        .returning(|_| Ok(()));
    mocks
        .dns
        .expect_delete_record()
        .times(1)
        .returning(|_, _| Ok(()));
    mocks
        .platform
        .expect_exec_in_service()
        .withf(|e| claim_exec(e) && script(e).contains("gitea admin user create"))
        .times(1)
        .returning(|_| Ok(output(1, "", EXISTS)));
    mocks
        .platform
        .expect_exec_in_service()
        .withf(|e| claim_exec(e) && script(e).contains("generate-access-token"))
        .times(1)
        .returning(|_| {
            Ok(output(
                1,
                "",
                "livchat: the user gitadmin exists but is not an admin: not taken over",
            ))
        });
    let orch = world.build(mocks);
    let job = orch.start_deploy_app("web-1", "gitea", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    let error = done.error.unwrap();
    assert!(error.contains("not an admin: not taken over"), "{error}");
    assert!(error.contains("the public routes stay closed"), "{error}");
    assert!(!world.state().claimed("web-1", "gitea", 0));
    assert_routes_stayed_closed(&deployed);
    verify(orch);
}

#[tokio::test(start_paused = true)]
async fn with_a_recorded_claim_the_existing_admin_is_left_alone() {
    // The claim of this data succeeded before: "already exists" is that claim, and the admin's
    // password (which its owner may have changed since) is not reset.
    let world = world_with_databases();
    world.set_secret("app.gitea.admin_password", ADMIN_PASSWORD);
    world
        .store
        .update("gitea claimed before", &mut |s| {
            s.record_claim("web-1", "gitea", 0);
            Ok(())
        })
        .unwrap();
    let mut mocks = Mocks::default();
    gitea_deploy(&mut mocks, 2);
    let calls = Arc::new(AtomicUsize::new(0));
    let count = calls.clone();
    mocks
        .platform
        .expect_exec_in_service()
        .withf(claim_exec)
        .times(1)
        .returning(move |e| {
            assert!(script(&e).contains("gitea admin user create"));
            count.fetch_add(1, Ordering::SeqCst);
            Ok(output(1, "", EXISTS))
        });
    let orch = world.build(mocks);
    let job = orch.start_deploy_app("web-1", "gitea", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(log_text(&orch, &job.id).contains("an earlier deploy claimed this app's data"));
    verify(orch);
}
