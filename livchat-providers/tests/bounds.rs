//! What a broken or hostile endpoint cannot do to a long-running client: make it read an
//! endless body, panic it with an absurd `Retry-After`, or make it delete or rewrite a
//! firewall or SSH key that LivChat did not create.

mod common;

use std::time::Duration;

use axum::http::Method;
use common::*;
use fixtures::fake_hetzner::{FakeHetzner, Fault};
use livchat_providers::{CloudError, FirewallSpec, Provider};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An HTTP server on loopback that answers every request with 200 and `total` bytes of body,
/// with a `Content-Length` or chunked (no length known up front). Returns its base URL.
async fn endless_body(total: usize, chunked: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = if chunked {
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_string()
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {total}\r\n\r\n"
                    )
                };
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let piece = vec![b'['; 1 << 20];
                let mut sent = 0;
                while sent < total {
                    let n = piece.len().min(total - sent);
                    let ok = if chunked {
                        let mut framed = format!("{n:x}\r\n").into_bytes();
                        framed.extend_from_slice(&piece[..n]);
                        framed.extend_from_slice(b"\r\n");
                        sock.write_all(&framed).await
                    } else {
                        sock.write_all(&piece[..n]).await
                    };
                    // The client hangs up once it has read enough: that is the point.
                    if ok.is_err() {
                        return;
                    }
                    sent += n;
                }
                if chunked {
                    let _ = sock.write_all(b"0\r\n\r\n").await;
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn a_body_longer_than_the_limit_is_cut_with_a_clear_error_whether_or_not_its_length_is_announced()
 {
    for chunked in [false, true] {
        let url = endless_body(40 << 20, chunked).await;
        let p = hetzner_at(&url, "token", fast_policy());
        let e = p.list_locations().await.unwrap_err();
        assert!(
            matches!(e, CloudError::Decode { .. }) && e.to_string().contains("longer than 16 MiB"),
            "chunked={chunked}: {e}"
        );
    }
    // A body just under the limit is read whole (and fails only as the JSON it is not).
    let url = endless_body(1 << 20, true).await;
    let e = hetzner_at(&url, "token", fast_policy())
        .list_locations()
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("longer than"), "{e}");
}

#[tokio::test]
async fn a_retry_after_beyond_any_duration_ends_as_rate_limited_without_a_panic() {
    let fake = FakeHetzner::start().await;
    for huge in ["99999999999999999999", "1e300"] {
        let f = Fault::Status {
            status: 429,
            retry_after: Some(huge.into()),
        };
        fake.faults().always(Method::GET, "/locations", f);
        let p = hetzner_at(&fake.url(), fake.token(), fast_policy());
        let e = p.list_locations().await.unwrap_err();
        assert!(
            matches!(e, CloudError::RateLimited { attempts: 1, retry_after: Some(d), .. } if d == Duration::MAX),
            "{huge}: {e:?}"
        );
    }
}

/// Creates a firewall and an SSH key at the fake without LivChat's label, as another tool
/// or a person in the console would.
async fn foreign_firewall_and_key(fake: &FakeHetzner, name: &str) {
    let http = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{}{path}", fake.url()))
            .bearer_auth(fake.token())
            .json(&body)
            .send()
    };
    let r = post("/firewalls", serde_json::json!({ "name": name }))
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDwaH1OLWzg6PZtYyhkqbYDwlEUh7QQSwXZQonbJiWxb user@host";
    let r = post(
        "/ssh_keys",
        serde_json::json!({ "name": name, "public_key": key }),
    )
    .await
    .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
}

#[tokio::test]
async fn a_firewall_or_key_without_our_label_is_neither_deleted_nor_adopted() {
    let fake = FakeHetzner::start().await;
    foreign_firewall_and_key(&fake, "livchat-web-1").await;
    let p = hetzner_at(&fake.url(), fake.token(), fast_policy());

    p.delete_firewall("livchat-web-1").await.unwrap();
    p.delete_ssh_key("livchat-web-1").await.unwrap();
    assert_eq!(fake.firewall_names(), ["livchat-web-1"]);
    assert_eq!(fake.ssh_key_names(), ["livchat-web-1"]);
    assert!(
        fake.faults()
            .hits_of(&Method::DELETE, "/firewalls/{id}")
            .is_empty()
    );
    assert!(
        fake.faults()
            .hits_of(&Method::DELETE, "/ssh_keys/{id}")
            .is_empty()
    );

    let server = p
        .create_server(&server_spec("web-1"), &quiet)
        .await
        .unwrap();
    let e = p
        .ensure_firewall(&FirewallSpec::ssh_and_web("livchat-web-1"), &server.id)
        .await
        .unwrap_err();
    assert!(
        matches!(e, CloudError::NameTaken { .. }) && e.to_string().contains("managed-by=livchat"),
        "{e}"
    );
    assert!(
        fake.faults()
            .hits_of(&Method::POST, "/firewalls/{id}/actions/set_rules")
            .is_empty()
    );
}

fn server_spec(name: &str) -> livchat_providers::ServerSpec {
    livchat_providers::ServerSpec {
        name: name.into(),
        server_type: "cx22".into(),
        location: "nbg1".into(),
        image: "debian-12".into(),
        ssh_keys: vec![],
        labels: Default::default(),
    }
}
