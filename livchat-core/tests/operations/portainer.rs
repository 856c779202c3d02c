//! The path of an app's stack (#18) against the mocks: which path plans announce for each
//! setting and state, `server set-platform`, and a Portainer that cannot be reached failing a
//! deploy before anything changes (no secret generated, no DNS record, no stack, no network).

use livchat_core::ErrorKind;
use livchat_core::ops::{Operation, ServerSetPlatform};
use livchat_remote::RemoteError;
use livchat_store::{DeployedVia, JobStatus, PlatformChoice, Store};

use super::support::*;

const ADMIN_KEY: &str = "app.infrastructure.admin_password";

/// web-1, set up, with the infrastructure bundle and the databases n8n needs running.
fn world_with_bundle(password_in_vault: bool) -> World {
    let world = World::new();
    world.put_server(ready_server("web-1"));
    for app in ["infrastructure", "postgres", "redis"] {
        world.put_deployment("web-1", app, &[]);
    }
    if password_in_vault {
        world.set_secret(ADMIN_KEY, "portainer-admin-password-0123");
    }
    world
}

fn set_platform(world: &World, platform: PlatformChoice) {
    world
        .store
        .update("test platform", &mut |s| {
            s.servers.get_mut("web-1").unwrap().platform = platform;
            Ok(())
        })
        .unwrap();
}

/// The plan line of n8n's stack.
fn n8n_path(world: &World) -> String {
    let orch = world.build(Mocks::default());
    let plan = orch.plan_deploy_app("web-1", "n8n", &[]).unwrap();
    let line = plan
        .resources
        .iter()
        .find(|r| r.starts_with("stack n8n on web-1"))
        .cloned()
        .unwrap_or_else(|| panic!("no line for n8n's stack in {:?}", plan.resources));
    verify(orch);
    line
}

#[tokio::test]
async fn plans_say_which_path_each_stack_takes_for_each_setting() {
    let world = world_with_bundle(false);
    let line = n8n_path(&world);
    assert!(
        line.contains("over SSH (docker stack deploy): Portainer's admin password is not in the vault (app.infrastructure.admin_password)"),
        "{line}"
    );
    world.set_secret(ADMIN_KEY, "portainer-admin-password-0123");
    let line = n8n_path(&world);
    assert!(
        line.contains("through Portainer's API (tunnel over SSH), owned by Portainer: Portainer (infrastructure) runs on the server"),
        "{line}"
    );
    set_platform(&world, PlatformChoice::Ssh);
    assert!(
        n8n_path(&world)
            .contains("over SSH (docker stack deploy): the server is set to --platform ssh")
    );

    // n8n deployed over SSH before: its redeploy stays there, so its stack is not deployed a
    // second time by Portainer (issue #18's "nothing deployed twice").
    set_platform(&world, PlatformChoice::Portainer);
    world.put_deployment("web-1", "n8n", &[]);
    let line = n8n_path(&world);
    assert!(
        line.contains("over SSH (docker stack deploy): already deployed through SSH (docker stack deploy): its redeploys and removal go the same way"),
        "{line}"
    );

    // Set to Portainer on a server without the bundle: this job deploys it first.
    let bare = World::new();
    bare.put_server(ready_server("web-1"));
    set_platform(&bare, PlatformChoice::Portainer);
    bare.put_deployment("web-1", "postgres", &[]);
    bare.put_deployment("web-1", "redis", &[]);
    let orch = bare.build(Mocks::default());
    let plan = orch.plan_deploy_app("web-1", "n8n", &[]).unwrap();
    let text = plan.resources.join("\n");
    // The bundle comes first in this job: its own stack goes over SSH, n8n's to Portainer.
    assert!(
        text.contains("stack infrastructure on web-1 over SSH (docker stack deploy): the infrastructure bundle always goes over SSH"),
        "{text}"
    );
    assert!(
        text.contains("stack n8n on web-1 through Portainer's API (tunnel over SSH), owned by Portainer: Portainer (infrastructure) is deployed first by this job"),
        "{text}"
    );
    assert!(bare.jobs().is_empty());
    verify(orch);
}

#[tokio::test]
async fn set_platform_records_the_setting_and_reports_who_owns_each_deployed_stack() {
    let world = world_with_bundle(true);
    let orch = world.build(Mocks::default());
    let view = ServerSetPlatform {
        server: "web-1".into(),
        platform: PlatformChoice::Ssh,
    }
    .run(&orch)
    .await
    .unwrap();
    assert_eq!(view.platform, PlatformChoice::Ssh);
    assert_eq!(world.state().servers["web-1"].platform, PlatformChoice::Ssh);
    assert_eq!(view.deployed_via.len(), 3);
    assert!(view.deployed_via.values().all(|v| *v == DeployedVia::Ssh));
    let err = ServerSetPlatform {
        server: "nope".into(),
        platform: PlatformChoice::Auto,
    }
    .run(&orch)
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    verify(orch);
}

#[tokio::test]
async fn a_deploy_whose_portainer_cannot_be_reached_fails_before_anything_changes() {
    let mut world = world_with_bundle(true);
    world.config.portainer_address =
        Some(livchat_remote::PortainerAddress::direct("127.0.0.1", 9000));
    let mut mocks = Mocks::default();
    let mut executor = MockRemoteExecutor::new();
    // sshd refuses the tunnel (AllowTcpForwarding no): the client sees a closed connection.
    executor
        .expect_open_tunnel()
        .withf(|host, port| host == "127.0.0.1" && *port == 9000)
        .times(1..)
        .returning(|_, _| Err(RemoteError::Ssh("administratively prohibited".into())));
    connects_pinned(&mut mocks.connector, executor, 1);
    // No expectation on the platform or DNS mocks: any network, stack or record call panics.
    let orch = world.build(mocks);
    let secrets_before = world.secret_names();
    let job = orch.start_deploy_app("web-1", "n8n", &[]).unwrap();
    let job = run(&orch, &job.id).await;
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.error.clone().unwrap_or_default();
    assert!(
        error.contains("could not use Portainer on web-1 (http://127.0.0.1:9000)")
            && error.contains("Nothing was changed")
            && error.contains("set-platform web-1 ssh"),
        "{error}"
    );
    assert!(job.steps_completed.is_empty(), "{:?}", job.steps_completed);
    assert_eq!(
        world.secret_names(),
        secrets_before,
        "a secret was generated"
    );
    assert!(!world.deployed_apps("web-1").contains(&"n8n".to_string()));
    verify(orch);
}
