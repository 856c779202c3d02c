//! The fleet re-run bench's stand-in hosts (`fixtures::standin_host`) seen through the real SSH
//! connector: they must answer a setup re-run's two commands as a set-up Debian 12 host does,
//! and refuse anything else, so the bench measures a re-run and nothing less.

use std::net::IpAddr;
use std::time::Duration;

use fixtures::standin_host::StandInHosts;
use livchat_remote::command::Command;
use livchat_remote::setup::{DockerSource, SetupConfig, plan};
use livchat_remote::{
    ExecOptions, HostKeyPolicy, RemoteExecutor, SshConnector, SshTarget, generate_ed25519,
};
use tokio_util::sync::CancellationToken;

async fn connect(hosts: &StandInHosts, i: usize) -> std::sync::Arc<livchat_remote::SshExecutor> {
    let addr = hosts.addrs()[i];
    let target = SshTarget {
        name: format!("standin-{i}"),
        host: addr.ip().to_string(),
        port: addr.port(),
        user: "root".into(),
    };
    let key = generate_ed25519("test").unwrap();
    let pinned = HostKeyPolicy::Pinned(hosts.host_key_fingerprint().to_owned());
    let (exec, fingerprint) = SshConnector::default()
        .connect_ssh(&target, &key.private_openssh, &pinned)
        .await
        .unwrap();
    assert_eq!(fingerprint, hosts.host_key_fingerprint());
    exec
}

#[tokio::test]
async fn a_standin_answers_a_setup_rerun_as_a_set_up_debian_12_host() {
    let hosts = StandInHosts::start(2).await.unwrap();
    assert_ne!(hosts.addrs()[0].ip(), hosts.addrs()[1].ip());
    let exec = connect(&hosts, 1).await;

    let os = livchat_remote::detect_os(exec.as_ref()).await.unwrap();
    assert_eq!((os.id(), os.version_id.as_str()), ("debian", "12"));
    let addr: IpAddr = hosts.addrs()[1].ip();
    let mut config = SetupConfig::new("standin-1", addr).unwrap();
    config.docker = DockerSource::Distribution;
    let steps = plan(&config, &os).unwrap();
    let done = livchat_remote::check_steps(
        exec.as_ref(),
        &steps,
        Duration::from_secs(30),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        done,
        vec![true; steps.len()],
        "every check of the plan passes"
    );
    assert!(steps.len() >= 10, "the Debian 12 plan has its steps");
    assert_eq!(
        hosts
            .counters()
            .answered
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[tokio::test]
async fn a_standin_refuses_any_other_command_with_status_127() {
    let hosts = StandInHosts::start(1).await.unwrap();
    let exec = connect(&hosts, 0).await;
    let out = exec
        .exec(&Command::new("docker").arg("info"), ExecOptions::default())
        .await
        .unwrap();
    assert_eq!(out.exit_status, 127);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only a setup re-run's commands"),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        hosts
            .counters()
            .refused
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
