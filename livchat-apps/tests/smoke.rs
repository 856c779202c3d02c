mod common;

use livchat_apps::{Catalog, EndpointMode};
use secrecy::ExposeSecret;

#[test]
fn every_builtin_app_renders_in_both_endpoint_modes() {
    let catalog = Catalog::builtin().unwrap();
    for entry in catalog.list() {
        for mode in [EndpointMode::Vip, EndpointMode::Dnsrr] {
            let s = common::render(&catalog, &entry.definition.name, mode);
            println!("==== {} {:?}\n{}", s.app, mode, s.compose().expose_secret());
        }
    }
}
