//! The retry policy against the fakes with injected faults: `Retry-After` honoured (both
//! forms), Hetzner's rate-limit headers, bounded attempts, connection drops and timeouts, no
//! duplicate resources from retried creates, and a clear error after the last attempt.
//!
//! Gaps between attempts are measured at the fake (arrival times). The "within 10%" checks
//! are correctness checks of honouring the header with a 1-2 s value, not benchmarks.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use axum::http::Method;
use common::*;
use fixtures::fake_cloudflare::{FakeCloudflare, ZONE};
use fixtures::fake_hetzner::{FakeHetzner, Fault};
use fixtures::specs;
use livchat_providers::{CloudError, DnsClient, Provider, RecordOptions, RetryPolicy, ServerSpec};

fn spec(name: &str) -> ServerSpec {
    ServerSpec {
        name: name.into(),
        server_type: "cx22".into(),
        location: "nbg1".into(),
        image: "debian-12".into(),
        ssh_keys: vec![],
        labels: BTreeMap::new(),
    }
}

fn gap(fake_hits: &[fixtures::fake_hetzner::Hit], i: usize) -> Duration {
    fake_hits[i + 1].at.duration_since(fake_hits[i].at)
}

fn assert_within_ten_percent(gap: Duration, asked: Duration) {
    assert!(
        gap >= asked,
        "retried after {gap:?}, before the {asked:?} asked for"
    );
    assert!(
        gap <= asked.mul_f64(1.10),
        "retried after {gap:?}, more than 10% over the {asked:?} asked for"
    );
}

#[tokio::test]
async fn retry_after_in_seconds_is_honoured_within_ten_percent() {
    let fake = FakeHetzner::start().await;
    let status = Fault::Status {
        status: 429,
        retry_after: Some("2".into()),
    };
    fake.faults()
        .fail_times(Method::GET, "/locations", 1, status);
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    p.list_locations().await.expect("succeeds after the wait");
    let hits = fake.faults().hits_of(&Method::GET, "/locations");
    assert_eq!(hits.len(), 2);
    assert_within_ten_percent(gap(&hits, 0), Duration::from_secs(2));
    assert_bodies_match_spec(fake.faults(), specs::hetzner());
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let fake = FakeCloudflare::start().await;
    // A whole second in the future (HTTP dates have one-second resolution).
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    let status = Fault::Status {
        status: 503,
        retry_after: Some(httpdate::fmt_http_date(when)),
    };
    fake.faults().fail_times(Method::GET, "/zones", 1, status);
    let c = cloudflare_at(&fake.url(), fake.token(), fast_policy());
    c.find_zone(ZONE).await.expect("succeeds after the wait");
    let hits = fake.faults().hits_of(&Method::GET, "/zones");
    assert_eq!(hits.len(), 2);
    let late = hits[1]
        .wall
        .duration_since(when)
        .expect("the retry came after the date asked for");
    // The wait was at most 2 s; 10% of it is the allowed slack.
    assert!(
        late <= Duration::from_millis(200),
        "retried {late:?} after the date"
    );
    assert_bodies_match_spec(fake.faults(), specs::cloudflare());
}

#[tokio::test]
async fn hetzner_rate_limit_headers_pace_the_retry_without_retry_after() {
    let fake = FakeHetzner::start().await;
    let f = Fault::RateLimitHeaders {
        limit: 1800,
        reset_in: 3600,
    };
    fake.faults().fail_times(Method::GET, "/server_types", 1, f);
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    p.list_server_types()
        .await
        .expect("succeeds after one refill");
    let hits = fake.faults().hits_of(&Method::GET, "/server_types");
    assert_eq!(hits.len(), 2);
    // One request refills every 2 s: (3600 s to full) / (1800 - 0 remaining).
    assert_within_ten_percent(gap(&hits, 0), Duration::from_secs(2));
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let fake = FakeHetzner::start().await;
    let f = Fault::Status {
        status: 502,
        retry_after: None,
    };
    fake.faults().fail_times(Method::GET, "/images", 2, f);
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    assert!(
        !p.list_images()
            .await
            .expect("third attempt answers")
            .is_empty()
    );
    let hits = fake.faults().hits_of(&Method::GET, "/images");
    assert_eq!(hits.len(), 3);
    // Exponential backoff: the second wait is longer than the first's lower bound doubled.
    assert!(gap(&hits, 0) >= Duration::from_millis(10));
    assert!(gap(&hits, 1) >= Duration::from_millis(20));
    assert_bodies_match_spec(fake.faults(), specs::hetzner());
}

#[tokio::test]
async fn attempts_are_bounded_and_the_last_error_is_clear() {
    let fake = FakeHetzner::start().await;
    let f = Fault::Status {
        status: 503,
        retry_after: None,
    };
    fake.faults().always(Method::GET, "/locations", f);
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    let e = p.list_locations().await.unwrap_err();
    assert_eq!(fake.faults().hits_of(&Method::GET, "/locations").len(), 4);
    match &e {
        CloudError::Api {
            status: 503, code, ..
        } => assert_eq!(code, "unavailable"),
        other => panic!("expected the vendor's 503, got {other:?}"),
    }
    assert!(
        e.to_string()
            .contains("list locations failed with HTTP 503"),
        "{e}"
    );
    assert_bodies_match_spec(fake.faults(), specs::hetzner());
}

#[tokio::test]
async fn not_implemented_is_not_retried() {
    let fake = FakeCloudflare::start().await;
    let f = Fault::Status {
        status: 501,
        retry_after: None,
    };
    fake.faults().always(Method::GET, "/zones", f);
    let c = cloudflare_at(&fake.url(), fake.token(), fast_policy());
    let e = c.find_zone(ZONE).await.unwrap_err();
    assert!(matches!(e, CloudError::Api { status: 501, .. }), "{e:?}");
    assert_eq!(fake.faults().hits_of(&Method::GET, "/zones").len(), 1);
}

#[tokio::test]
async fn persistent_429_ends_as_rate_limited_after_the_last_attempt() {
    let fake = FakeCloudflare::start().await;
    let f = Fault::Status {
        status: 429,
        retry_after: Some("0".into()),
    };
    fake.faults().always(Method::GET, "/zones", f);
    let c = cloudflare_at(&fake.url(), fake.token(), fast_policy());
    let e = c.find_zone(ZONE).await.unwrap_err();
    assert!(
        matches!(e, CloudError::RateLimited { attempts: 4, .. }),
        "{e:?}"
    );
    assert_eq!(fake.faults().hits_of(&Method::GET, "/zones").len(), 4);
    assert_bodies_match_spec(fake.faults(), specs::cloudflare());
}

#[tokio::test]
async fn a_retry_after_longer_than_the_policy_allows_fails_at_once_naming_the_wait() {
    let fake = FakeHetzner::start().await;
    let f = Fault::Status {
        status: 429,
        retry_after: Some("3600".into()),
    };
    fake.faults().always(Method::GET, "/locations", f);
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    let e = p.list_locations().await.unwrap_err();
    assert!(
        matches!(e, CloudError::RateLimited { attempts: 1, retry_after: Some(d), .. } if d == Duration::from_secs(3600)),
        "{e:?}"
    );
    assert!(e.to_string().contains("asked to wait 3600 s"), "{e}");
}

#[tokio::test]
async fn dropped_connections_are_retried() {
    let fake = FakeHetzner::start().await;
    fake.faults()
        .fail_times(Method::GET, "/locations", 2, Fault::Drop);
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    p.list_locations().await.expect("third attempt answers");
    assert_eq!(fake.faults().hits_of(&Method::GET, "/locations").len(), 3);
}

#[tokio::test]
async fn slow_answers_time_out_and_are_retried() {
    let fake = FakeCloudflare::start().await;
    let f = Fault::Latency(Duration::from_secs(2));
    fake.faults().fail_times(Method::GET, "/zones", 1, f);
    let policy = RetryPolicy {
        request_timeout: Duration::from_millis(300),
        ..fast_policy()
    };
    let c = cloudflare_at(&fake.url(), fake.token(), policy);
    c.find_zone(ZONE).await.expect("second attempt answers");
    assert_eq!(fake.faults().hits_of(&Method::GET, "/zones").len(), 2);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_clear_error_after_the_last_attempt() {
    // A port that was free a moment ago: connection refused.
    let port = fixtures::net::free_port();
    let p = hetzner_at(&format!("http://127.0.0.1:{port}"), "t", fast_policy());
    let e = p.list_locations().await.unwrap_err();
    assert!(
        matches!(e, CloudError::Unreachable { attempts: 4, .. }),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("no answer after 4 attempt(s)"),
        "{e}"
    );
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_makes_exactly_one_server() {
    let fake = FakeHetzner::start().await;
    fake.faults()
        .fail_times(Method::POST, "/servers", 1, Fault::DropAfterHandling);
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
    let s = p
        .create_server(&spec("web-1"), &quiet)
        .await
        .expect("adopted");
    assert_eq!(s.name, "web-1");
    assert_eq!(fake.server_names(), ["web-1"]);
    // The lookup found it: no second POST was needed.
    assert_eq!(fake.faults().hits_of(&Method::POST, "/servers").len(), 1);
    assert_bodies_match_spec(fake.faults(), specs::hetzner());
}

#[tokio::test]
async fn a_create_that_timed_out_after_the_server_was_made_makes_exactly_one_server() {
    let fake = FakeHetzner::start().await;
    let f = Fault::LatencyAfterHandling(Duration::from_secs(2));
    fake.faults().fail_times(Method::POST, "/servers", 1, f);
    let policy = RetryPolicy {
        request_timeout: Duration::from_millis(500),
        ..fast_policy()
    };
    let p = hetzner_at(&fake.url(), fake.token(), policy);
    let s = p
        .create_server(&spec("web-2"), &quiet)
        .await
        .expect("adopted");
    assert_eq!(s.status, livchat_providers::ServerStatus::Running);
    assert_eq!(fake.server_names(), ["web-2"]);
}

#[tokio::test]
async fn a_dns_create_whose_answer_was_lost_makes_exactly_one_record() {
    let fake = FakeCloudflare::start().await;
    let route = "/zones/{zone_id}/dns_records";
    fake.faults()
        .fail_times(Method::POST, route, 1, Fault::DropAfterHandling);
    let c = cloudflare_at(&fake.url(), fake.token(), fast_policy());
    let zone = c.find_zone(ZONE).await.unwrap();
    let ip = Ipv4Addr::new(203, 0, 113, 7);
    let r = c
        .ensure_a_record(&zone, "n8n.example.com", ip, &RecordOptions::default())
        .await
        .expect("adopted");
    assert_eq!(r.record.content, "203.0.113.7");
    let same: Vec<_> = fake
        .records(&zone.id)
        .into_iter()
        .filter(|(_, n, _)| n == "n8n.example.com")
        .collect();
    assert_eq!(same.len(), 1, "{same:?}");
    assert_eq!(fake.faults().hits_of(&Method::POST, route).len(), 1);
    assert_bodies_match_spec(fake.faults(), specs::cloudflare());
}
