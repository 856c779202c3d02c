//! What one listing costs end to end (request over loopback, the fake's handler, JSON decode
//! into the hcloud models / tolerant Cloudflare types, conversion to our vocabulary).
//! `cargo bench -p livchat-providers --all-features`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fixtures::fake_cloudflare::{FakeCloudflare, ZONE};
use fixtures::fake_hetzner::{FakeHetzner, HetznerOptions};
use livchat_providers::{
    CloudflareConfig, CloudflareDns, DnsClient, HetznerConfig, HetznerProvider, Provider,
    RecordOptions, ServerSpec,
};
use secrecy::SecretString;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let (fake_h, hetzner) = rt.block_on(async {
        let fake = FakeHetzner::start_with(HetznerOptions {
            action_duration: Duration::ZERO,
            server_limit: 100,
            ..HetznerOptions::default()
        })
        .await;
        let p = HetznerProvider::new(
            SecretString::from(fake.token().to_owned()),
            HetznerConfig {
                endpoint: fake.url(),
                action_poll_interval: Duration::from_millis(1),
                ..HetznerConfig::default()
            },
        )
        .unwrap();
        for i in 0..50 {
            let spec = ServerSpec {
                name: format!("web-{i}"),
                server_type: "cx22".into(),
                location: "nbg1".into(),
                image: "debian-12".into(),
                ssh_keys: vec![],
                labels: BTreeMap::new(),
            };
            p.create_server(&spec, &|_| {}).await.unwrap();
        }
        (fake, p)
    });
    c.bench_function("hetzner find_server among 50 servers (fake)", |b| {
        b.iter(|| {
            let s = rt.block_on(hetzner.find_server("web-49")).unwrap();
            assert!(s.is_some());
        })
    });
    c.bench_function("hetzner list_server_types (fake)", |b| {
        b.iter(|| rt.block_on(hetzner.list_server_types()).unwrap())
    });

    let (fake_c, dns, zone) = rt.block_on(async {
        let fake = FakeCloudflare::start().await;
        let d = CloudflareDns::new(
            SecretString::from(fake.token().to_owned()),
            CloudflareConfig {
                endpoint: fake.url(),
                ..CloudflareConfig::default()
            },
        )
        .unwrap();
        let zone = d.find_zone(ZONE).await.unwrap();
        for i in 0..100u8 {
            d.ensure_a_record(
                &zone,
                &format!("app{i}.example.com"),
                Ipv4Addr::new(203, 0, 113, i),
                &RecordOptions::default(),
            )
            .await
            .unwrap();
        }
        (fake, d, zone)
    });
    c.bench_function(
        "cloudflare list_records, 105 records incl. CAA (fake)",
        |b| {
            b.iter(|| {
                let r = rt.block_on(dns.list_records(&zone)).unwrap();
                assert_eq!(r.len(), 105);
            })
        },
    );
    c.bench_function("cloudflare ensure_a_record, unchanged (fake)", |b| {
        b.iter(|| {
            rt.block_on(dns.ensure_a_record(
                &zone,
                "app7.example.com",
                Ipv4Addr::new(203, 0, 113, 7),
                &RecordOptions::default(),
            ))
            .unwrap()
        })
    });
    drop((fake_h, fake_c));
}

criterion_group!(benches, bench);
criterion_main!(benches);
