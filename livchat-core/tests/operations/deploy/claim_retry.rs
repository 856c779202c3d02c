//! Issue #19, the claim-retry dead end: a first deploy whose first-run claim succeeded and
//! whose later step failed is cleaned up, but the app's data (and the admin in it) stays, so
//! the app refuses the retry's claim. The state records the first claim; the refusal is then
//! the first claim's doing and the retry completes. Without that record a refusal still fails.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::*;

/// n8n's first deploy, answered by mocks over both runs of the job: /healthz answers 404 until
/// `answering` is set, and the owner claim answers `claims` in turn. Returns the stacks sent
/// and how many claims were made.
fn n8n_twice(
    mocks: &mut Mocks,
    answering: Arc<AtomicBool>,
    claims: &'static [&'static str],
    deploys: usize,
) -> (Arc<Mutex<Vec<Deployed>>>, Arc<AtomicUsize>) {
    connects(mocks);
    mocks.dns.expect_find_zone().returning(|_| Ok(zone()));
    mocks
        .dns
        .expect_records_named()
        .returning(|_, _| Ok(Vec::new()));
    // Each run creates both records: the clean-up deleted the first run's.
    mocks.dns.expect_ensure_a_record().returning(|_, n, ip, _| {
        Ok(Ensured {
            record: a_record(&format!("rec-{n}"), n, &ip.to_string()),
            change: Change::Created,
        })
    });
    mocks
        .dns
        .expect_delete_record()
        .times(2)
        .returning(|_, _| Ok(()));
    mocks
        .platform
        .expect_exec_in_service()
        .withf(|e| e.stack == "postgres")
        .returning(|_| Ok(output(0, "", "")));
    mocks.platform.expect_ensure_network().returning(|_| Ok(()));
    let deployed = Arc::new(Mutex::new(Vec::new()));
    let seen = deployed.clone();
    mocks
        .platform
        .expect_deploy_stack()
        .withf(|s| s.name == "n8n")
        .times(deploys)
        .returning(move |s| {
            seen.lock().unwrap().push(Deployed {
                compose_yaml: s.compose_yaml.clone(),
                secret_values: Vec::new(),
            });
            Ok(())
        });
    mocks
        .platform
        .expect_wait_healthy()
        .returning(|name, _| Ok(healthy(name)));
    mocks
        .platform
        .expect_exec_in_service()
        .withf(|e| e.argv.get(3).is_some_and(|a| a == "livchat-probe"))
        .returning(move |_| {
            let status = if answering.load(Ordering::SeqCst) {
                "200"
            } else {
                "404"
            };
            Ok(output(0, status, ""))
        });
    let made = Arc::new(AtomicUsize::new(0));
    let count = made.clone();
    mocks
        .platform
        .expect_exec_in_service()
        .withf(|e| {
            e.stack == "n8n"
                && e.service == "editor"
                && e.argv.iter().all(|a| !a.contains(OWNER_PASSWORD))
                && e.stdin.as_ref().is_some_and(|s| {
                    String::from_utf8_lossy(s.expose_secret()).contains(OWNER_PASSWORD)
                })
        })
        .times(claims.len())
        .returning(move |_| {
            let n = count.fetch_add(1, Ordering::SeqCst);
            Ok(output(0, claims[n], ""))
        });
    (deployed, made)
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_a_claim_that_succeeded_completes_though_the_app_refuses_a_second_claim() {
    let world = world_with_databases();
    world.set_secret("app.n8n.owner_password", OWNER_PASSWORD);
    let mut mocks = Mocks::default();
    let healthy = Arc::new(AtomicBool::new(false));
    mocks
        .platform
        .expect_remove_stack()
        .withf(|name| name == "n8n")
        .times(1)
        .returning(|_| Ok(()));
    // Run 1: closed, claimed (200), /healthz fails. Run 2: closed, refused (400), opened.
    let (deployed, claims) = n8n_twice(&mut mocks, healthy.clone(), &["200", "400"], 3);
    let orch = world.build(mocks);

    let job = orch.start_deploy_app("web-1", "n8n", &[]).unwrap();
    let failed = run(&orch, &job.id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(failed.error.unwrap().contains("/healthz"));
    // Cleaned up (stack and records gone), but the claim on the data that stays is recorded.
    assert!(!world.state().deployments["web-1"].contains_key("n8n"));
    assert!(world.state().claimed("web-1", "n8n", 0));

    healthy.store(true, Ordering::SeqCst);
    orch.start_retry_job(&job.id).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert_eq!(claims.load(Ordering::SeqCst), 2);
    let log = log_text(&orch, &job.id);
    assert!(
        log.contains(
            "first-run claim of n8n refused (HTTP 400): an earlier deploy claimed this app's data"
        ),
        "{log}"
    );
    assert!(!log.contains(OWNER_PASSWORD));
    assert_eq!(
        world.secret("app.n8n.owner_password").as_deref(),
        Some(OWNER_PASSWORD),
        "the password the first claim set stays the vault's"
    );
    let sent = deployed.lock().unwrap();
    let open: Vec<bool> = sent
        .iter()
        .map(|d| livchat_apps::first_run::has_public_routes(&d.compose_yaml))
        .collect();
    assert_eq!(open, [false, false, true], "routes opened only at the end");
    drop(sent);
    assert_eq!(
        world.state().deployments["web-1"]["n8n"].status,
        DeploymentStatus::Running
    );
    verify(orch);
}

#[tokio::test(start_paused = true)]
async fn a_refused_claim_of_an_app_never_claimed_by_livchat_still_fails_routes_closed() {
    // The same refusal without a recorded claim: someone else may own the instance.
    let world = world_with_databases();
    world.set_secret("app.n8n.owner_password", OWNER_PASSWORD);
    world
        .store
        .update("another app's claim", &mut |s| {
            s.record_claim("web-1", "chatwoot", 0);
            Ok(())
        })
        .unwrap();
    let mut mocks = Mocks::default();
    mocks
        .platform
        .expect_remove_stack()
        .times(1)
        .returning(|_| Ok(()));
    let (deployed, _) = n8n_twice(&mut mocks, Arc::new(AtomicBool::new(true)), &["400"], 1);
    let orch = world.build(mocks);
    let job = orch.start_deploy_app("web-1", "n8n", &[]).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert!(done.error.unwrap().contains("HTTP 400"));
    assert!(!world.state().claimed("web-1", "n8n", 0));
    assert_routes_stayed_closed(&deployed);
    verify(orch);
}
