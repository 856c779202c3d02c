//! What a deploy or a plan pays in this crate: loading the catalog (parse, validate, compile
//! templates), resolving an install order, rendering one stack (template, YAML, schema check,
//! redaction) and a whole `app render` preview.

use std::collections::{BTreeMap, BTreeSet};

use criterion::{Criterion, criterion_group, criterion_main};
use livchat_apps::secrets::complete;
use livchat_apps::{
    AppSecrets, Catalog, DnsConfig, PreviewRequest, RenderContext, RenderOptions, SecretsByApp,
    ServerInfo,
};

fn context() -> RenderContext {
    RenderContext {
        server: ServerInfo::placeholder(),
        dns: DnsConfig::new("example.com", Some("lab")).unwrap(),
        settings: [("email".to_string(), "ops@example.com".to_string())].into(),
        options: RenderOptions::default(),
    }
}

fn benches(c: &mut Criterion) {
    c.bench_function("catalog_builtin_load", |b| {
        b.iter(|| Catalog::builtin().unwrap())
    });
    let catalog = Catalog::builtin().unwrap();
    let none = BTreeSet::new();
    c.bench_function("install_order_n8n_chatwoot_evolution", |b| {
        b.iter(|| {
            catalog
                .install_order(&["n8n", "chatwoot", "evolution-api"], &none)
                .unwrap()
        })
    });
    let secrets: SecretsByApp = catalog
        .list()
        .map(|e| {
            let d = &e.definition;
            (d.name.clone(), complete(d, &AppSecrets::new()))
        })
        .collect();
    let ctx = context();
    let params = BTreeMap::new();
    c.bench_function("render_n8n", |b| {
        b.iter(|| catalog.render("n8n", &ctx, &params, &secrets).unwrap())
    });
    c.bench_function("render_chatwoot", |b| {
        b.iter(|| catalog.render("chatwoot", &ctx, &params, &secrets).unwrap())
    });
    let request = PreviewRequest {
        app: "n8n".into(),
        context: ctx.clone(),
        params: BTreeMap::new(),
        deployed: BTreeSet::new(),
    };
    c.bench_function("preview_n8n_with_dependencies", |b| {
        b.iter(|| catalog.render_preview(&request).unwrap())
    });
}

criterion_group!(benches_group, benches);
criterion_main!(benches_group);
