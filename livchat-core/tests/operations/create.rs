//! create_server: start (validation), plan, and the job's steps (SSH key, create, pin the host
//! key, firewall, finalize) with the clean-up of a failure after the server exists.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use livchat_core::{CoreError, CreateServerParams};
use livchat_providers::{CloudError, Firewall, ServerId, Service, SshKey};
use livchat_remote::{Connected, HostKeyPolicy, RemoteExecutor};
use livchat_store::{JobStatus, SecretStore, ServerStatus};
use mockall::Sequence;
use secrecy::ExposeSecret;

use super::support::*;

const PROVIDER_ID: &str = "4711";

fn params() -> CreateServerParams {
    CreateServerParams {
        name: "web-1".into(),
        server_type: "cx22".into(),
        location: "fsn1".into(),
        image: "debian-12".into(),
        keep_on_failure: false,
    }
}

fn steps(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The provider registers the key (recording the public key it got).
fn registers_key(mocks: &mut Mocks, times: usize) -> Arc<Mutex<Vec<String>>> {
    let keys = Arc::new(Mutex::new(Vec::new()));
    let seen = keys.clone();
    mocks
        .provider
        .expect_ensure_ssh_key()
        .withf(|name, public| name == "livchat-web-1" && public.starts_with("ssh-ed25519 "))
        .times(times)
        .returning(move |name, public| {
            seen.lock().unwrap().push(public.to_string());
            Ok(SshKey {
                id: 7,
                name: name.to_string(),
                fingerprint: "aa:bb".into(),
                public_key: public.to_string(),
            })
        });
    keys
}

fn creates_server(mocks: &mut Mocks, times: usize) {
    mocks
        .provider
        .expect_create_server()
        .withf(|spec, _| {
            spec.name == "web-1"
                && spec.server_type == "cx22"
                && spec.location == "fsn1"
                && spec.image == "debian-12"
                && spec.ssh_keys == ["livchat-web-1"]
                && spec.labels.get("managed-by").map(String::as_str) == Some("livchat")
        })
        .times(times)
        .returning(|_, _| Ok(provider_server("web-1", PROVIDER_ID, Some(IP))));
}

/// `find_server("web-1")` answers `None` before the create and the server after it.
fn finds_server(mocks: &mut Mocks, before: usize, after: usize) {
    let mut seq = Sequence::new();
    for (found, times) in [(false, before), (true, after)] {
        if times == 0 {
            continue;
        }
        mocks
            .provider
            .expect_find_server()
            .withf(|n| n == "web-1")
            .times(times)
            .in_sequence(&mut seq)
            .returning(move |_| Ok(found.then(|| provider_server("web-1", PROVIDER_ID, Some(IP)))));
    }
}

/// First contact: the host key is trusted and reported.
fn first_contact(mocks: &mut Mocks, times: usize) {
    let executor: Arc<dyn RemoteExecutor> = Arc::new(MockRemoteExecutor::new());
    mocks
        .connector
        .expect_connect()
        .withf(|t, key, policy| {
            t.name == "web-1"
                && t.host == IP
                && t.port == 22
                && t.user == "root"
                && key
                    .expose_secret()
                    .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
                && *policy == HostKeyPolicy::TrustOnFirstUse
        })
        .times(times)
        .returning(move |_, _, _| {
            Ok(Connected {
                executor: executor.clone(),
                host_key_fingerprint: FP.into(),
            })
        });
}

fn firewall_ok(mocks: &mut Mocks, times: usize) {
    mocks
        .provider
        .expect_ensure_firewall()
        .withf(|spec, server| {
            spec.name == "livchat-web-1"
                && spec.tcp_ports == [22, 80, 443]
                && *server == ServerId(PROVIDER_ID.into())
        })
        .times(times)
        .returning(|spec, server| {
            Ok(Firewall {
                id: 3,
                name: spec.name.clone(),
                tcp_ports: spec.tcp_ports.clone(),
                applied_to: vec![server.clone()],
            })
        });
}

fn deletes_server(mocks: &mut Mocks, times: usize) {
    mocks
        .provider
        .expect_delete_server()
        .withf(|id, _| *id == ServerId(PROVIDER_ID.into()))
        .times(times)
        .returning(|_, _| Ok(()));
}

#[tokio::test]
async fn create_server_registers_a_new_key_creates_pins_firewalls_and_records_the_server() {
    let world = World::new();
    let mut mocks = Mocks::default();
    let registered = registers_key(&mut mocks, 1);
    finds_server(&mut mocks, 1, 0);
    creates_server(&mut mocks, 1);
    first_contact(&mut mocks, 1);
    firewall_ok(&mut mocks, 1);
    let orch = world.build(mocks);

    let job = orch.start_create_server(params()).unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(
        job.steps_remaining,
        steps(&[
            "ssh_key",
            "create_server",
            "pin_host_key",
            "firewall",
            "finalize"
        ])
    );
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert_eq!(done.progress, 100);
    let server = &world.state().servers["web-1"];
    assert_eq!(server.status, ServerStatus::Running);
    assert_eq!(server.provider_id, Some(4711));
    assert_eq!(server.host, IP);
    assert_eq!(server.host_key_fingerprint.as_deref(), Some(FP));
    // The key registered at the provider is the public half of the one kept in the vault.
    let private = world.secrets.get("ssh.web-1.private_key").unwrap().unwrap();
    let pair = livchat_remote::parse_private_key(&private).unwrap();
    assert_eq!(*registered.lock().unwrap(), vec![pair.public_openssh]);
    assert!(!log_text(&orch, &job.id).contains("BEGIN OPENSSH PRIVATE KEY"));
    verify(orch);
}

#[tokio::test]
async fn create_server_reuses_a_server_the_provider_already_has_instead_of_creating_a_second() {
    let world = World::new();
    let mut mocks = Mocks::default();
    registers_key(&mut mocks, 1);
    finds_server(&mut mocks, 0, 1);
    creates_server(&mut mocks, 0);
    first_contact(&mut mocks, 1);
    firewall_ok(&mut mocks, 1);
    let orch = world.build(mocks);
    let job = orch.start_create_server(params()).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert!(log_text(&orch, &job.id).contains("already exists at the provider"));
    verify(orch);
}

#[tokio::test]
async fn create_server_failing_to_register_the_key_fails_before_any_server_exists() {
    let world = World::new();
    let mut mocks = Mocks::default();
    mocks
        .provider
        .expect_ensure_ssh_key()
        .times(1)
        .returning(|_, _| {
            Err(CloudError::NameTaken {
                service: Service::Hetzner,
                name: "livchat-web-1".into(),
                message: "ssh key with the same fingerprint already exists".into(),
            })
        });
    let orch = world.build(mocks);
    let job = orch.start_create_server(params()).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    let error = done.error.unwrap();
    assert!(
        error.contains("\"livchat-web-1\" is already taken"),
        "{error}"
    );
    assert!(world.state().servers.is_empty());
    assert_eq!(done.steps_remaining[0], "ssh_key");
    verify(orch);
}

#[tokio::test]
async fn create_server_refused_by_the_provider_fails_naming_the_cause_and_deletes_nothing() {
    let world = World::new();
    let mut mocks = Mocks::default();
    registers_key(&mut mocks, 1);
    finds_server(&mut mocks, 1, 0);
    mocks
        .provider
        .expect_create_server()
        .times(1)
        .returning(|_, _| {
            Err(CloudError::LimitExceeded {
                service: Service::Hetzner,
                code: "resource_limit_exceeded".into(),
                message: "server limit reached".into(),
            })
        });
    mocks.provider.expect_delete_server().never();
    let orch = world.build(mocks);
    let job = orch.start_create_server(params()).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    let error = done.error.unwrap();
    assert!(error.contains("quota or limit exceeded"), "{error}");
    assert!(error.contains("server limit reached"), "{error}");
    assert!(world.state().servers.is_empty());
    verify(orch);
}

#[tokio::test]
async fn create_server_whose_ssh_never_answers_deletes_the_server_and_rewinds_the_job() {
    let world = World::new();
    let mut mocks = Mocks::default();
    registers_key(&mut mocks, 1);
    finds_server(&mut mocks, 1, 1);
    creates_server(&mut mocks, 1);
    // `ssh_wait` is zero in these tests: one attempt, then the step fails.
    mocks
        .connector
        .expect_connect()
        .times(1)
        .returning(|t, _, _| Err(connect_refused(&t.name)));
    mocks.provider.expect_ensure_firewall().never();
    deletes_server(&mut mocks, 1);
    let orch = world.build(mocks);
    let job = orch.start_create_server(params()).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    let error = done.error.unwrap();
    assert!(
        error.contains("could not connect to web-1: connection refused"),
        "{error}"
    );
    assert!(
        world.state().servers.is_empty(),
        "no server left in the state"
    );
    // The create was undone, so a retry creates again; the key stays registered.
    assert_eq!(done.steps_completed, steps(&["ssh_key"]));
    assert_eq!(
        done.steps_remaining,
        steps(&["create_server", "pin_host_key", "firewall", "finalize"])
    );
    assert!(
        log_text(&orch, &job.id).contains("removing server web-1 (id 4711) created by this job")
    );
    verify(orch);
}

#[tokio::test]
async fn create_server_whose_firewall_fails_deletes_the_server_and_a_retry_completes() {
    let world = World::new();
    let mut mocks = Mocks::default();
    registers_key(&mut mocks, 1);
    // Attempt 1: not found, create, (firewall fails), clean-up finds it. Attempt 2: the
    // provider no longer has it, create again.
    let mut seq = Sequence::new();
    for found in [false, true, false] {
        mocks
            .provider
            .expect_find_server()
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |_| Ok(found.then(|| provider_server("web-1", PROVIDER_ID, Some(IP)))));
    }
    creates_server(&mut mocks, 2);
    first_contact(&mut mocks, 2);
    let mut fw = Sequence::new();
    mocks
        .provider
        .expect_ensure_firewall()
        .times(1)
        .in_sequence(&mut fw)
        .returning(|_, _| Err(hetzner_api_error("create firewall", 422, "rules invalid")));
    firewall_ok(&mut mocks, 1);
    deletes_server(&mut mocks, 1);
    let orch = world.build(mocks);
    let job = orch.start_create_server(params()).unwrap();
    let failed = run(&orch, &job.id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(failed.error.unwrap().contains("rules invalid"));
    assert!(world.state().servers.is_empty());

    let queued = orch.start_retry_job(&job.id).unwrap();
    assert_eq!(queued.status, JobStatus::Queued);
    assert_eq!(queued.attempt, 2);
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert_eq!(world.state().servers["web-1"].status, ServerStatus::Running);
    verify(orch);
}

#[tokio::test]
async fn create_server_with_keep_on_failure_leaves_the_server_at_the_provider_and_says_so() {
    let world = World::new();
    let mut mocks = Mocks::default();
    registers_key(&mut mocks, 1);
    finds_server(&mut mocks, 1, 0);
    creates_server(&mut mocks, 1);
    first_contact(&mut mocks, 1);
    mocks
        .provider
        .expect_ensure_firewall()
        .times(1)
        .returning(|_, _| Err(hetzner_api_error("create firewall", 422, "rules invalid")));
    mocks.provider.expect_delete_server().never();
    let orch = world.build(mocks);
    let job = orch
        .start_create_server(CreateServerParams {
            keep_on_failure: true,
            ..params()
        })
        .unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert!(log_text(&orch, &job.id).contains("keeping server web-1 at the provider as asked"));
    verify(orch);
}

#[tokio::test]
async fn create_server_cancelled_while_waiting_for_ssh_ends_cancelled_and_deletes_the_server() {
    let mut world = World::new();
    world.config.ssh_wait = Duration::from_secs(60);
    let mut mocks = Mocks::default();
    registers_key(&mut mocks, 1);
    finds_server(&mut mocks, 1, 1);
    creates_server(&mut mocks, 1);
    mocks
        .connector
        .expect_connect()
        .times(1..)
        .returning(|t, _, _| Err(connect_refused(&t.name)));
    deletes_server(&mut mocks, 1);
    let orch = world.build(mocks);
    let job = orch.start_create_server(params()).unwrap();
    let running = {
        let (orch, id) = (orch.clone(), job.id.clone());
        tokio::spawn(async move { orch.jobs().run(&id, orch.as_ref()).await })
    };
    tokio::time::timeout(Duration::from_secs(5), async {
        while !log_text(&orch, &job.id).contains("waiting for SSH") {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the job reaches the SSH wait");
    orch.cancel_job(&job.id).unwrap();
    let done = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the cancel ends the SSH wait at once")
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobStatus::Cancelled);
    assert!(world.state().servers.is_empty());
    verify(orch);
}

#[tokio::test]
async fn create_server_given_a_server_without_ipv4_fails_and_deletes_it() {
    let world = World::new();
    let mut mocks = Mocks::default();
    registers_key(&mut mocks, 1);
    finds_server(&mut mocks, 1, 0);
    mocks
        .provider
        .expect_create_server()
        .times(1)
        .returning(|_, _| Ok(provider_server("web-1", PROVIDER_ID, None)));
    deletes_server(&mut mocks, 1);
    let orch = world.build(mocks);
    let job = orch.start_create_server(params()).unwrap();
    let done = run(&orch, &job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert!(done.error.unwrap().contains("no public IPv4 address"));
    assert!(world.state().servers.is_empty());
    verify(orch);
}

#[tokio::test]
async fn start_create_server_with_bad_input_names_the_field_and_records_no_job() {
    let world = World::new();
    world.put_server(ready_server("web-2"));
    let before = world.state();
    let orch = world.build(Mocks::default());
    for (p, field) in [
        (
            CreateServerParams {
                name: "Web_1".into(),
                ..params()
            },
            "server name",
        ),
        (
            CreateServerParams {
                server_type: "cx22 --force".into(),
                ..params()
            },
            "type",
        ),
        (
            CreateServerParams {
                location: String::new(),
                ..params()
            },
            "location",
        ),
        (
            CreateServerParams {
                image: "debian;12".into(),
                ..params()
            },
            "image",
        ),
    ] {
        let err = orch.start_create_server(p).unwrap_err();
        assert!(
            matches!(&err, CoreError::Invalid { field: f, .. } if f == field),
            "{field}: {err:?}"
        );
    }
    let err = orch
        .start_create_server(CreateServerParams {
            name: "web-2".into(),
            ..params()
        })
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::Refused(m) if m.contains("web-2 already exists")),
        "{err:?}"
    );
    assert_eq!(world.state(), before, "no job, nothing changed");
    verify(orch);
}

#[tokio::test]
async fn start_create_server_without_a_hetzner_token_names_the_credential() {
    let world = World::empty();
    let orch = world.build(Mocks::default());
    let err = orch.start_create_server(params()).unwrap_err();
    assert!(
        matches!(&err, CoreError::MissingCredential { name } if name == "hetzner_token"),
        "{err:?}"
    );
    assert!(world.jobs().is_empty());
    verify(orch);
}

#[tokio::test]
async fn plan_create_server_lists_every_resource_and_touches_nothing() {
    let world = World::new();
    let before = world.state();
    let secrets_before = world.secret_names();
    let orch = world.build(Mocks::default());
    let plan = orch.plan_create_server(&params());
    assert_eq!(
        plan.steps,
        steps(&[
            "ssh_key",
            "create_server",
            "pin_host_key",
            "firewall",
            "finalize"
        ])
    );
    let resources = plan.resources.join("\n");
    for expected in [
        "vault secret ssh.web-1.private_key",
        "provider ssh key livchat-web-1",
        "provider server web-1 (cx22, fsn1, debian-12)",
        "provider firewall livchat-web-1 (tcp 22, 80, 443)",
        "state server web-1",
    ] {
        assert!(resources.contains(expected), "{expected} in {resources}");
    }
    assert_eq!(world.state(), before);
    assert_eq!(world.secret_names(), secrets_before);
    verify(orch);
}
