//! Snapshots of every built-in app's rendered stack, with fixed fake secrets, in both endpoint
//! modes, plus what the caller must do around the deploy (Docker secrets, DNS names, steps).
//! Review changes with `cargo insta review` (or `INSTA_UPDATE=always` and `git diff`).

mod common;

use livchat_apps::{Catalog, EndpointMode};
use secrecy::ExposeSecret;

#[test]
fn every_app_renders_as_snapshotted() {
    let catalog = Catalog::builtin().unwrap();
    for entry in catalog.list() {
        let app = &entry.definition.name;
        for (mode, suffix) in [(EndpointMode::Vip, "vip"), (EndpointMode::Dnsrr, "dnsrr")] {
            let stack = common::render(&catalog, app, mode);
            insta::assert_snapshot!(format!("{app}_{suffix}"), stack.compose().expose_secret());
            if mode == EndpointMode::Vip {
                let secrets: Vec<String> = stack
                    .docker_secrets
                    .iter()
                    .map(|s| format!("{} <- {}.{}", s.name, s.secret.app, s.secret.name))
                    .collect();
                let plan = format!(
                    "docker secrets: {secrets:#?}\ndns names: {:#?}\ncompose holds secret values: {}\npre_deploy: {:#?}\npost_deploy: {:#?}\n",
                    stack.dns_names,
                    stack.contains_secret_values(),
                    stack.pre_deploy,
                    stack.post_deploy
                );
                insta::assert_snapshot!(format!("{app}_plan"), plan);
            }
        }
    }
}
