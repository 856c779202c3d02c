//! The mocks the core uses in its unit tests: they stand in for the traits behind `Arc<dyn _>`.

#![cfg(feature = "mock")]

use std::sync::Arc;

use livchat_providers::{CloudError, DnsClient, Location, MockDnsClient, MockProvider, Provider};

#[tokio::test]
async fn mocks_stand_in_for_the_traits_behind_arc_dyn() {
    let mut p = MockProvider::new();
    p.expect_list_locations().returning(|| {
        Ok(vec![Location {
            name: "nbg1".into(),
            description: "Nuremberg DC Park 1".into(),
            city: "Nuremberg".into(),
            country: "DE".into(),
            network_zone: "eu-central".into(),
        }])
    });
    let p: Arc<dyn Provider> = Arc::new(p);
    assert_eq!(p.list_locations().await.unwrap()[0].name, "nbg1");

    let mut d = MockDnsClient::new();
    d.expect_find_zone()
        .withf(|z| z == "example.org")
        .returning(|z| {
            Err(CloudError::ZoneNotFound {
                service: livchat_providers::Service::Cloudflare,
                zone: z.to_owned(),
            })
        });
    let d: Arc<dyn DnsClient> = Arc::new(d);
    let e: CloudError = d.find_zone("example.org").await.unwrap_err();
    assert!(matches!(e, CloudError::ZoneNotFound { .. }));
}
