//! Load and one-field update (with fsync of file and directory) on a large state:
//! 1,000 servers and 10,000 deployments (10 apps per server). Plus the vault's costs, which
//! are dominated by PBKDF2 (10,000 iterations, fixed by the Ansible Vault format).

use std::collections::BTreeMap;

use criterion::{Criterion, criterion_group, criterion_main};
use livchat_store::{
    DeploymentRecord, DeploymentStatus, DnsConfig, InitOptions, JsonFileStore, ProviderKind,
    SecretString, ServerRecord, ServerStatus, SettingKey, SetupRecord, State, Store, Vault,
    init_home_with,
};

fn server(i: usize) -> ServerRecord {
    let name = format!("server-{i:04}");
    ServerRecord {
        ssh_key_secret: format!("server.{name}.ssh_key"),
        ssh_agent_key: None,
        name,
        provider: ProviderKind::Hetzner,
        provider_id: Some(40_000_000 + i as u64),
        host: format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
        ssh_port: 22,
        ssh_user: "root".into(),
        host_key_fingerprint: Some("SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s".into()),
        dns: Some(DnsConfig {
            zone_name: "example.com".into(),
            subdomain: Some(format!("c{i}")),
            mode: Default::default(),
        }),
        server_type: Some("cx22".into()),
        location: Some("fsn1".into()),
        image: Some("debian-12".into()),
        labels: BTreeMap::from([("client".into(), format!("client-{}", i % 37))]),
        status: ServerStatus::Ready,
        setup: SetupRecord {
            completed_steps: [
                "wait_ssh", "packages", "timezone", "docker", "swarm", "firewall",
            ]
            .map(String::from)
            .to_vec(),
            completed_at: Some(chrono::Utc::now()),
            resources: None,
        },
        platform: Default::default(),
        created_at: chrono::Utc::now(),
    }
}

fn deployment(server: usize, app: usize) -> DeploymentRecord {
    let name = format!("app{app}");
    DeploymentRecord {
        stack_name: name.clone(),
        domains: vec![format!("{name}.c{server}.example.com")],
        dns_record_ids: vec![format!("{:032x}", server * 100 + app)],
        dependencies: vec!["postgres".into(), "redis".into()],
        app: name,
        version: "1.2.3".into(),
        status: DeploymentStatus::Running,
        via: Default::default(),
        deployed_at: chrono::Utc::now(),
    }
}

fn big_home() -> (tempfile::TempDir, JsonFileStore) {
    let dir = tempfile::tempdir().unwrap();
    init_home_with(
        dir.path(),
        InitOptions {
            vault_password: Some(SecretString::from("bench".to_string())),
            vault_label: None,
        },
    )
    .unwrap();
    let store = JsonFileStore::new(dir.path());
    store
        .update("fill", &mut |s: &mut State| {
            for i in 0..1_000 {
                let srv = server(i);
                let apps = (0..10)
                    .map(|a| (format!("app{a}"), deployment(i, a)))
                    .collect();
                s.deployments.insert(srv.name.clone(), apps);
                s.servers.insert(srv.name.clone(), srv);
            }
            Ok(())
        })
        .unwrap();
    (dir, store)
}

fn bench_state(c: &mut Criterion) {
    let (_dir, store) = big_home();
    let size = std::fs::metadata(store.path()).unwrap().len();
    eprintln!("state.json with 1,000 servers and 10,000 deployments: {size} bytes");
    let mut group = c.benchmark_group("state_1000_servers_10000_deployments");
    group.sample_size(20);
    group.bench_function("load", |b| b.iter(|| store.load().unwrap()));
    let mut flip = 0u64;
    group.bench_function("update_one_field_with_fsync", |b| {
        b.iter(|| {
            flip += 1;
            store
                .update("bench", &mut |s: &mut State| {
                    let server = s.servers.get_mut("server-0000").expect("in the big home");
                    server.labels.insert("flip".into(), flip.to_string());
                    Ok(())
                })
                .unwrap()
        })
    });
    group.bench_function("settings_update_with_fsync", |b| {
        b.iter(|| {
            flip += 1;
            store
                .update_settings("bench", &mut |s| {
                    s.set(SettingKey::CompanyName, &format!("company {flip}"))
                })
                .unwrap()
        })
    });
    group.bench_function("no_op_update", |b| {
        b.iter(|| store.update("bench", &mut |_s: &mut State| Ok(())).unwrap())
    });
    group.finish();
}

fn bench_vault(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials.vault");
    let pw = || SecretString::from("bench".to_string());
    let (vault, _) = Vault::create_if_missing(&path, pw(), None).unwrap();
    for i in 0..50 {
        vault
            .set(&format!("secret-{i}"), SecretString::from("x".repeat(64)))
            .unwrap();
    }
    let mut group = c.benchmark_group("vault_50_secrets");
    group.sample_size(20);
    group.bench_function("open_and_decrypt", |b| {
        b.iter(|| Vault::open(&path, pw(), None).unwrap())
    });
    let mut n = 0u64;
    group.bench_function("set_with_fsync", |b| {
        b.iter(|| {
            n += 1;
            vault
                .set("rotating", SecretString::from(format!("value {n}")))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_state, bench_vault);
criterion_main!(benches);
