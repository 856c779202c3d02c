//! The real `livchat-api` binary on loopback, driven with a real HTTP client: auth on every
//! operation of the document it serves, bad input refused naming the field with nothing
//! changed on disk, secrets kept out of answers and the log, token rotation without a restart,
//! the loopback rule, a kept answer that follows every change of the state file, and a job
//! left running by SIGTERM found interrupted after a restart.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Service, client, fill, init_home, operations, token};

async fn openapi(service: &Service, token: &str) -> Value {
    let r = client()
        .get(format!("{}/openapi.json", service.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

fn assert_error_shape(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_of_the_served_document_refuses_requests_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let home = init_home(dir.path());
    let token = token(&home, false);
    let service = Service::start(&home, &[], &[]);
    let doc = openapi(&service, &token).await;
    let ops = operations(&doc);
    assert!(ops.len() >= livchat_core::ops::operations().len());
    let http = client();
    for (method, path, op) in &ops {
        let url = format!("{}{}", service.url, fill(path, "web-1"));
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        if op["security"] == json!([]) {
            assert_eq!(path, "/health", "only /health is public");
            continue;
        }
        for presented in [None, Some("wrong"), Some(&token[..token.len() - 1])] {
            let mut request = http.request(method.clone(), &url).json(&json!({}));
            if let Some(t) = presented {
                request = request.bearer_auth(t);
            }
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
            assert!(
                r.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{method} {path}"
            );
            assert_error_shape(&r.json().await.unwrap(), "unauthorized");
        }
    }
    // The document itself, and routes that do not exist, need the token too.
    for path in ["/openapi.json", "/api/nothing-here"] {
        let r = http
            .get(format!("{}{path}", service.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let r = http
        .get(format!("{}/health", service.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The document declares the scheme it enforces.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"], json!([{ "bearer": [] }]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field_and_nothing_on_disk_changes() {
    let dir = tempfile::tempdir().unwrap();
    let home = init_home(dir.path());
    let token = token(&home, false);
    let service = Service::start(&home, &["--body-limit", "4096"], &[]);
    let state_before = fixtures::cli::state_and_jobs(&home);
    let vault_before = std::fs::read(home.join("credentials.vault")).unwrap();
    let http = client();
    let cases: Vec<(&str, &str, Option<Value>, &str)> = vec![
        ("POST", "/api/servers", Some(json!({})), "name"),
        (
            "POST",
            "/api/servers",
            Some(json!({"name": "web-1"})),
            "server_type",
        ),
        (
            "POST",
            "/api/servers",
            Some(json!({"name": "web 1; rm -rf /", "server_type": "cx22", "location": "nbg1"})),
            "name",
        ),
        (
            "POST",
            "/api/servers",
            Some(json!({"name": "web-1", "colour": "red"})),
            "colour",
        ),
        ("POST", "/api/servers", Some(json!({"name": 7})), "name"),
        (
            "POST",
            "/api/servers?plan=maybe",
            Some(json!({"name": "web-1"})),
            "plan",
        ),
        (
            "POST",
            "/api/servers/add",
            Some(json!({"name": "web-1", "host": "", "port": 70000})),
            "port",
        ),
        (
            "POST",
            "/api/servers/web-1/setup",
            Some(json!({"server": "other", "zone": "example.com"})),
            "server",
        ),
        (
            "POST",
            "/api/servers/web-1/exec",
            Some(json!({"argv": []})),
            "argv",
        ),
        (
            "PUT",
            "/api/settings",
            Some(json!({"key": "no_such_setting", "value": "x"})),
            "key",
        ),
        (
            "PUT",
            "/api/secrets/bad%20name!",
            Some(json!({"value": "v"})),
            "name",
        ),
        ("GET", "/api/jobs?status=sleeping", None, "status"),
        ("GET", "/api/jobs/abc/logs?tail=lots", None, "tail"),
        ("GET", "/api/servers?verbose=true", None, "verbose"),
        ("GET", "/api/provider/prices", None, "kind"),
        ("DELETE", "/api/servers/web-1?force=perhaps", None, "force"),
        (
            "GET",
            "/api/servers/web-1/apps/n8n/logs?tail=0",
            None,
            "tail",
        ),
        (
            "GET",
            "/api/servers/web-1/apps/n8n/logs?tail=10001",
            None,
            "tail",
        ),
        (
            "GET",
            "/api/servers/web-1/apps/n8n/logs?service=db%3Brm%20-rf%20%2F",
            None,
            "service",
        ),
        (
            "GET",
            "/api/servers/web-1/apps/n8n/logs?follow=true",
            None,
            "follow",
        ),
    ];
    for (method, path, body, field) in &cases {
        let mut request = http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", service.url),
            )
            .bearer_auth(&token);
        if let Some(b) = body {
            request = request.json(b);
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {body}");
        assert_error_shape(&body, "bad_input");
        assert_eq!(body["error"]["field"], *field, "{method} {path}: {body}");
    }
    // Bodies that are not JSON objects, and one over the limit.
    for (raw, code, status) in [
        ("{not json", "bad_input", StatusCode::BAD_REQUEST),
        ("[1, 2]", "bad_input", StatusCode::BAD_REQUEST),
        (
            &*"x".repeat(10_000),
            "payload_too_large",
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        let r = http
            .post(format!("{}/api/servers", service.url))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(raw.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status);
        assert_error_shape(&r.json().await.unwrap(), code);
    }
    assert_eq!(fixtures::cli::state_and_jobs(&home), state_before);
    assert_eq!(
        std::fs::read(home.join("credentials.vault")).unwrap(),
        vault_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_value_never_appears_in_any_answer_or_the_service_log() {
    const CANARY: &str = "canary-3f9a1c7e5b2d4f60a8e1";
    let dir = tempfile::tempdir().unwrap();
    let home = init_home(dir.path());
    let token = token(&home, false);
    let service = Service::start(&home, &[], &[]);
    let http = client();
    let r = http
        .put(format!("{}/api/secrets/canary_secret", service.url))
        .bearer_auth(&token)
        .header("x-request-id", "canary-put")
        .json(&json!({ "value": CANARY }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(!text.contains(CANARY));
    // Refused inputs around secrets do not echo the value either.
    for body in [
        json!({ "value": CANARY, "extra": 1 }),
        json!({ "name": "x", "value": CANARY }),
    ] {
        let r = http
            .put(format!("{}/api/secrets/other", service.url))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(!r.text().await.unwrap().contains(CANARY));
    }
    let doc = openapi(&service, &token).await;
    let mut read = 0;
    for (method, path, _) in operations(&doc) {
        if method != "GET" || path.ends_with("/events") || path.ends_with("/wait") {
            continue;
        }
        for filler in ["canary_secret", "web-1", "locations"] {
            let r = http
                .get(format!("{}{}", service.url, fill(&path, filler)))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let body = r.text().await.unwrap();
            assert!(!body.contains(CANARY), "GET {path} leaked the secret");
            read += 1;
        }
    }
    assert!(read > 10);
    let names: Value = http
        .get(format!("{}/api/secrets", service.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        names.as_array().unwrap().contains(&json!("canary_secret")),
        "{names}"
    );
    let log = service.log_text();
    assert!(
        log.contains("canary-put"),
        "the request id is in the log line"
    );
    assert!(!log.contains(CANARY), "the log holds the secret");
    assert!(!log.contains(&token), "the log holds the token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_replaces_the_old_one_in_the_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let home = init_home(dir.path());
    let old = token(&home, false);
    let service = Service::start(&home, &[], &[]);
    let http = client();
    let servers = format!("{}/api/servers", service.url);
    let r = http.get(&servers).bearer_auth(&old).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let new = token(&home, true);
    assert_ne!(old, new);
    let r = http.get(&servers).bearer_auth(&old).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http.get(&servers).bearer_auth(&new).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The request id is echoed, and generated when absent.
    let r = http
        .get(&servers)
        .bearer_auth(&new)
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = http.get(&servers).bearer_auth(&new).send().await.unwrap();
    assert!(!r.headers()["x-request-id"].is_empty());
}

/// A server record as another tool would put it into the state file.
fn record(name: &str) -> Value {
    let record: livchat_core::model::ServerRecord =
        fixtures::records::ManualServer::new(name).record();
    serde_json::to_value(record).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_server_list_changes_at_once_when_another_process_writes_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let home = init_home(dir.path());
    let token = token(&home, false);
    let service = Service::start(&home, &[], &[]);
    let http = client();
    let servers = format!("{}/api/servers", service.url);
    let get = |tag: Option<&str>| {
        let mut r = http.get(&servers).bearer_auth(&token);
        if let Some(tag) = tag {
            r = r.header("if-none-match", tag);
        }
        r.send()
    };
    let r = get(None).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let first = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]));
    let r = get(Some(&first)).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    // Another tool replaces the file (write, rename), as `livchat` does.
    let path = home.join("state.json");
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    doc["servers"]["web-1"] = record("web-1");
    let tmp = home.join("state.json.edit");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let r = get(Some(&first)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the old tag still matched");
    let second = r.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(second, first);
    let names = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(r.json().await.unwrap()), ["web-1"]);

    // Then edits it in place, same length: no rename, no new inode.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("web-1", "web-2");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .unwrap();
    let r = get(Some(&second)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(names(r.json().await.unwrap()), ["web-2"]);
    let one = format!("{servers}/web-2");
    let r = http.get(&one).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "web-2");
}

#[test]
fn a_non_loopback_address_is_refused_without_tls_or_the_explicit_flag() {
    let dir = tempfile::tempdir().unwrap();
    let home = init_home(dir.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_livchat-api"))
        .args(["--listen", "0.0.0.0:0"])
        .env("LIVCHAT_HOME", &home)
        .env_remove("LIVCHAT_VAULT_PASSWORD")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on 0.0.0.0"), "{err}");
    assert!(!err.contains("listening on"), "{err}");
    // Given explicitly, the operator takes the responsibility (a TLS proxy in front).
    let service = Service::try_start(&home, &["--listen", "0.0.0.0:0", "--insecure-http"], &[]);
    assert!(service.is_ok(), "{:?}", service.err());
}

/// A TCP listener that accepts connections and never answers: a cloud API that hangs, so a
/// job calling it stays running for as long as the test needs.
fn hanging_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(64) {
            held.push(stream);
        }
    });
    url
}

async fn job(http: &reqwest::Client, service: &Service, token: &str, id: &str) -> Value {
    http.get(format!("{}/api/jobs/{id}", service.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_a_running_job_that_the_next_start_shows_interrupted_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let home = init_home(dir.path());
    let token = token(&home, false);
    let endpoint = hanging_endpoint();
    let env = [("LIVCHAT_HETZNER_ENDPOINT", endpoint.as_str())];
    let service = Service::start(&home, &["--shutdown-grace-secs", "2"], &env);
    let http = client();
    let r = http
        .put(format!(
            "{}/api/secrets/{}",
            service.url,
            livchat_core::HETZNER_TOKEN
        ))
        .bearer_auth(&token)
        .json(&json!({ "value": "fake-token" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

    // The plan changes nothing.
    let jobs_before: Value = http
        .get(format!("{}/api/jobs", service.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = http
        .post(format!("{}/api/servers?plan=true", service.url))
        .bearer_auth(&token)
        .json(&json!({ "name": "web-1", "server_type": "cx22", "location": "nbg1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let jobs_after: Value = http
        .get(format!("{}/api/jobs", service.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jobs_before, jobs_after);

    let r = http
        .post(format!("{}/api/servers", service.url))
        .bearer_auth(&token)
        .json(&json!({ "name": "web-1", "server_type": "cx22", "location": "nbg1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/api/jobs/{id}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let j = job(&http, &service, &token, &id).await;
        if j["status"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "job never ran: {j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = service.terminate();
    assert!(status.success(), "SIGTERM is a clean stop: {status}");

    let service = Service::start(&home, &[], &env);
    let j = job(&http, &service, &token, &id).await;
    assert_eq!(j["status"], "interrupted", "{j}");
    // Its event stream replays the log, then ends with the job (it ended: the stream closes).
    let events = |last: Option<String>| {
        let mut r = http
            .get(format!("{}/api/jobs/{id}/events", service.url))
            .bearer_auth(&token);
        if let Some(last) = last {
            r = r.header("last-event-id", last);
        }
        r.send()
    };
    let r = events(None).await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let all = r.text().await.unwrap();
    assert!(all.contains("event: end"), "{all}");
    assert!(all.contains("\"interrupted\""), "{all}");
    let ids: Vec<&str> = all.lines().filter_map(|l| l.strip_prefix("id: ")).collect();
    let first = ids.first().copied().unwrap_or("0");
    let resumed = events(Some(first.to_string()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let resumed_ids: Vec<&str> = resumed
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    let expected: Vec<&str> = ids.iter().skip(1).copied().collect();
    assert_eq!(
        resumed_ids, expected,
        "Last-Event-ID resumes after that line"
    );
    assert!(resumed.contains("event: end"), "{resumed}");
    let r = events(Some("not-a-number".into())).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = http
        .post(format!("{}/api/jobs/{id}/retry", service.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::ACCEPTED,
        "{}",
        r.text().await.unwrap()
    );
    let j = job(&http, &service, &token, &id).await;
    assert!(
        matches!(j["status"].as_str(), Some("queued" | "running")),
        "{j}"
    );
    assert_eq!(j["attempt"], 2, "{j}");
    // Stop it rather than wait for the hanging endpoint.
    let r = http
        .post(format!("{}/api/jobs/{id}/cancel", service.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_on_a_non_loopback_address_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let home = init_home(dir.path());
    let token = token(&home, false);
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        // A server certificate, not a CA's: rustls refuses a CA certificate as the server's
        // own (`openssl req -x509` makes a CA by default).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    let Ok(out) = out else {
        assert!(
            !fixtures::tools::real_tests_required(),
            "openssl is missing"
        );
        eprintln!("skipped: openssl is not installed");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 0.0.0.0 is accepted because TLS is configured; the test connects over loopback.
    let service = Service::start(
        &home,
        &[
            "--listen",
            "0.0.0.0:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    let port = service.url.rsplit(':').next().unwrap().to_string();
    assert!(service.url.starts_with("https://"), "{}", service.url);
    let pem = std::fs::read(&cert).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let r = https
        .get(format!("https://127.0.0.1:{port}/api/system/info"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["tls"], true);
    // Plain HTTP on the TLS port gets no answer.
    let plain = client()
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_of_a_job_ends_interrupted_when_the_process_running_it_is_gone() {
    // Issue #19: the stream re-read the job until its status ended, and a job whose process
    // is gone stays `running` in the store, so a second service followed it forever.
    let dir = tempfile::tempdir().unwrap();
    let home = init_home(dir.path());
    let token = token(&home, false);
    let endpoint = hanging_endpoint();
    let env = [("LIVCHAT_HETZNER_ENDPOINT", endpoint.as_str())];
    let runner = Service::start(&home, &["--shutdown-grace-secs", "1"], &env);
    let http = client();
    let r = http
        .put(format!(
            "{}/api/secrets/{}",
            runner.url,
            livchat_core::HETZNER_TOKEN
        ))
        .bearer_auth(&token)
        .json(&json!({ "value": "fake-token" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = http
        .post(format!("{}/api/servers", runner.url))
        .bearer_auth(&token)
        .json(&json!({ "name": "web-1", "server_type": "cx22", "location": "nbg1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while job(&http, &runner, &token, &id).await["status"] != "running" {
        assert!(Instant::now() < deadline, "job never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Another service on the home follows the job; then the one running it stops.
    let follower = Service::start(&home, &[], &env);
    let mut stream = http
        .get(format!("{}/api/jobs/{id}/events", follower.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    // Streaming: its progress event shows the job running.
    let mut seen = String::new();
    while !seen.contains("\"running\"") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("the stream started")
            .unwrap()
            .expect("the stream is open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(runner.terminate().success());
    let rest = tokio::time::timeout(Duration::from_secs(20), stream.text())
        .await
        .expect("the stream of a job whose process is gone ended")
        .unwrap();
    assert!(
        rest.contains("event: end") && rest.contains("\"interrupted\""),
        "{rest}"
    );
    assert_eq!(
        job(&http, &follower, &token, &id).await["status"],
        "interrupted"
    );
}
