//! Shared inputs: a fixed context and fixed (obviously fake) secrets so snapshots are stable.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use livchat_apps::{
    AppSecrets, Catalog, DnsConfig, EndpointMode, RenderContext, RenderOptions, RenderedStack,
    SecretsByApp, ServerInfo,
};
use secrecy::SecretString;

pub mod swarm;

pub fn context(endpoint_mode: EndpointMode) -> RenderContext {
    RenderContext {
        server: ServerInfo {
            name: "lab-1".into(),
            address: "203.0.113.7".into(),
        },
        dns: DnsConfig::new("example.com", Some("lab")).unwrap(),
        settings: [
            ("email", "ops@example.com"),
            ("name", "Ana"),
            ("surname", "Silva"),
            ("company_name", "Example Ltda"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        options: RenderOptions {
            endpoint_mode,
            ..RenderOptions::default()
        },
    }
}

/// Deterministic fake secrets: `FIXED<app><secret>` padded, for every app of the catalog.
pub fn fixed_secrets(catalog: &Catalog) -> SecretsByApp {
    let mut all = SecretsByApp::new();
    for entry in catalog.list() {
        let d = &entry.definition;
        let mut mine = AppSecrets::new();
        for s in &d.secrets {
            let value = format!(
                "FIXED{}{}",
                d.name.replace('-', ""),
                s.name.replace('_', "")
            );
            mine.insert(s.name.clone(), SecretString::from(value));
        }
        all.insert(d.name.clone(), mine);
    }
    all
}

pub fn render(catalog: &Catalog, app: &str, mode: EndpointMode) -> RenderedStack {
    render_with(catalog, app, &context(mode), &BTreeMap::new())
}

pub fn render_with(
    catalog: &Catalog,
    app: &str,
    ctx: &RenderContext,
    params: &BTreeMap<String, String>,
) -> RenderedStack {
    catalog
        .render(app, ctx, params, &fixed_secrets(catalog))
        .unwrap_or_else(|e| panic!("{app}: {e}"))
}

pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

pub fn yaml(stack: &RenderedStack) -> serde_yaml::Value {
    use secrecy::ExposeSecret;
    serde_yaml::from_str(stack.compose().expose_secret()).unwrap()
}
