//! The fake Hetzner backed by a real sshd, the way cloud-init does it on a real server: the
//! public keys registered through the API and named in the create request become the
//! server's `authorized_keys`, and the address the API reports is where that sshd listens.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::*;
use fixtures::fake_hetzner::{BackingHost, CreatedServer, FakeHetzner, HetznerOptions};
use livchat_providers::{Provider, ServerSpec};

fn ssh_runs(ssh: &Path, key: &Path, port: u16, target: &str) -> Option<String> {
    let out = Command::new(ssh)
        .args(["-i"])
        .arg(key)
        .args([
            "-p",
            &port.to_string(),
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            target,
            "echo reached",
        ])
        .output()
        .expect("run ssh");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[tokio::test]
async fn a_created_server_is_reachable_with_the_key_registered_through_the_api() {
    let Some(sshd) = fixtures::sshd::Sshd::start() else {
        return;
    };
    let Some(ssh) = fixtures::tools::require("ssh") else {
        return;
    };
    let Some(keygen) = fixtures::tools::require("ssh-keygen") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    let status = Command::new(&keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "livchat", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();

    let authorized = sshd.dir().join("authorized_keys");
    let host = sshd.host();
    let hook = Arc::new(move |c: &CreatedServer| {
        // cloud-init replaces authorized_keys with the keys named at creation.
        std::fs::write(&authorized, c.ssh_public_keys.join("\n") + "\n").unwrap();
        BackingHost {
            ipv4: host.parse().unwrap(),
        }
    });
    let fake = FakeHetzner::start_with(HetznerOptions {
        on_server_created: Some(hook),
        ..HetznerOptions::default()
    })
    .await;
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    let registered = p.ensure_ssh_key("livchat-web-1", &public).await.unwrap();
    let server = p
        .create_server(
            &ServerSpec {
                name: "web-1".into(),
                server_type: "cx22".into(),
                location: "fsn1".into(),
                image: "debian-12".into(),
                ssh_keys: vec![registered.name],
                labels: BTreeMap::new(),
            },
            &quiet,
        )
        .await
        .unwrap();
    let ip = server.ipv4.expect("the server has an address").to_string();
    let target = format!("{}@{ip}", sshd.user());
    assert_eq!(
        ssh_runs(&ssh, &key, sshd.port(), &target).as_deref(),
        Some("reached"),
        "sshd log:\n{}",
        sshd.log()
    );

    // The harness's own client key was replaced: only the API's key opens the server.
    let old = dir.path().join("old_key");
    std::fs::write(&old, sshd.client_private_key()).unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(ssh_runs(&ssh, &old, sshd.port(), &target), None);
}
