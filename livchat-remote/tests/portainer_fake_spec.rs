//! The fake Portainer is held to the vendor's spec (CE 2.23 swag annotations): every response
//! it gives validates against the operation's response schema, strictly (no property the spec
//! does not name), errors use statuses the operation declares and `{"message","details"}`,
//! and the bodies our client sends validate against the request schemas.

use fixtures::fake_portainer::{FakePortainer, FakePortainerOptions};
use fixtures::specs_portainer::{
    check, definition_schema, load, portainer_full_path, portainer_subset_path, response_schema,
    validator,
};
use livchat_remote::{PortainerAuth, PortainerClient};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

const PASSWORD: &str = "correct-horse-battery";

struct Call {
    method: Method,
    path: String,
    body: Option<Value>,
    /// The spec's path template.
    operation: &'static str,
}

fn call(method: Method, path: &str, body: Option<Value>, operation: &'static str) -> Call {
    Call {
        method,
        path: path.to_string(),
        body,
        operation,
    }
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    jwt: Option<&str>,
    c: &Call,
) -> (u16, Option<Value>) {
    let mut req = http.request(c.method.clone(), format!("{base}/api{}", c.path));
    if let Some(jwt) = jwt {
        req = req.bearer_auth(jwt);
    }
    if let Some(body) = &c.body {
        req = req.json(body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).ok())
}

#[tokio::test]
async fn fake_portainer_answers_as_the_spec_says() {
    let subset = load(&portainer_subset_path()).unwrap();
    let full = load(&portainer_full_path()).unwrap();
    let fake = FakePortainer::start(FakePortainerOptions::default()).unwrap();
    let base = fake.url();
    let http = reqwest::Client::new();

    // Public operations, before and after the admin exists.
    let init = call(
        Method::POST,
        "/users/admin/init",
        Some(json!({"Username": "admin", "Password": PASSWORD})),
        "/users/admin/init",
    );
    let (status, body) = send(&http, &base, None, &init).await;
    assert_eq!(status, 200);
    let schema = response_schema(&full, "/users/admin/init", "post", "200").unwrap();
    check(&validator(&full, &schema, true).unwrap(), &body.unwrap()).unwrap();

    // Request bodies are decoded case-insensitively, as Go's encoding/json does.
    let login = call(
        Method::POST,
        "/auth",
        Some(json!({"username": "admin", "password": PASSWORD})),
        "/auth",
    );
    let (status, body) = send(&http, &base, None, &login).await;
    assert_eq!(status, 200);
    let body = body.unwrap();
    let schema = response_schema(&subset, "/auth", "post", "200").unwrap();
    check(&validator(&subset, &schema, true).unwrap(), &body).unwrap();
    let jwt = body["jwt"].as_str().unwrap().to_string();
    let swarm_id = fake.swarm_id();

    let ok_calls = [
        call(Method::GET, "/system/status", None, "/system/status"),
        call(Method::GET, "/endpoints", None, "/endpoints"),
        call(Method::GET, "/endpoints/1", None, "/endpoints/{id}"),
        call(
            Method::POST,
            "/stacks/create/swarm/string?endpointId=1",
            Some(
                json!({"Name": "web", "SwarmID": swarm_id, "StackFileContent": "services: {}\n",
                        "Env": [{"name": "A", "value": "1"}]}),
            ),
            "/stacks/create/swarm/string",
        ),
        call(Method::GET, "/stacks", None, "/stacks"),
        call(Method::GET, "/stacks/1", None, "/stacks/{id}"),
        call(Method::GET, "/stacks/1/file", None, "/stacks/{id}/file"),
        call(
            Method::PUT,
            "/stacks/1?endpointId=1",
            Some(json!({"StackFileContent": "services: {}\n", "Prune": true})),
            "/stacks/{id}",
        ),
    ];
    for c in &ok_calls {
        let (status, body) = send(&http, &base, Some(&jwt), c).await;
        assert_eq!(status, 200, "{} {}", c.method, c.path);
        let schema = response_schema(&subset, c.operation, c.method.as_str(), "200").unwrap();
        check(&validator(&subset, &schema, true).unwrap(), &body.unwrap())
            .unwrap_or_else(|e| panic!("{} {} does not match the spec:\n{e}", c.method, c.path));
    }

    // Errors: a status the operation declares, and Portainer's error body.
    let error_body = validator(
        &subset,
        &json!({
            "type": "object",
            "properties": {"message": {"type": "string"}, "details": {"type": "string"}},
            "required": ["message", "details"],
            "additionalProperties": false
        }),
        false,
    )
    .unwrap();
    let error_calls = [
        (
            call(
                Method::POST,
                "/auth",
                Some(json!({"Username": "admin", "Password": "wrong-password-1"})),
                "/auth",
            ),
            None,
            422,
        ),
        (
            call(Method::GET, "/stacks/99", None, "/stacks/{id}"),
            Some(&jwt),
            404,
        ),
        (
            call(Method::DELETE, "/stacks/1", None, "/stacks/{id}"),
            Some(&jwt),
            400,
        ),
        (
            call(
                Method::POST,
                "/stacks/create/swarm/string?endpointId=1",
                Some(json!({"Name": "web", "SwarmID": swarm_id, "StackFileContent": "x: 1\n"})),
                "/stacks/create/swarm/string",
            ),
            Some(&jwt),
            409,
        ),
        (
            call(Method::GET, "/endpoints/7", None, "/endpoints/{id}"),
            Some(&jwt),
            404,
        ),
    ];
    for (c, jwt, expected) in &error_calls {
        let (status, body) = send(&http, &base, jwt.map(String::as_str), c).await;
        assert_eq!(status, *expected, "{} {}", c.method, c.path);
        let declared = subset
            .pointer(&format!(
                "/paths/{}/{}/responses",
                c.operation.replace('/', "~1"),
                c.method.as_str().to_lowercase()
            ))
            .and_then(Value::as_object)
            .unwrap();
        // 409 on create is Portainer's behaviour, though its swag annotations omit it.
        if *expected != 409 {
            assert!(
                declared.contains_key(&expected.to_string()),
                "{} {} answered {expected}, which the spec does not declare",
                c.method,
                c.path
            );
        }
        check(&error_body, &body.unwrap()).unwrap();
    }

    let (status, _) = send(
        &http,
        &base,
        Some(&jwt),
        &call(
            Method::DELETE,
            "/stacks/1?endpointId=1",
            None,
            "/stacks/{id}",
        ),
    )
    .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn client_requests_match_the_spec_payloads() {
    let subset = load(&portainer_subset_path()).unwrap();
    let full = load(&portainer_full_path()).unwrap();
    let fake = FakePortainer::start(FakePortainerOptions::default()).unwrap();
    let client = PortainerClient::new(
        &fake.url(),
        PortainerAuth::Password {
            username: "admin".into(),
            password: SecretString::from(PASSWORD.to_string()),
        },
    )
    .unwrap();
    client
        .init_admin("admin", &SecretString::from(PASSWORD.to_string()))
        .await
        .unwrap();
    let swarm_id = client.swarm_id(1).await.unwrap();
    let stack = client
        .create_swarm_stack(1, &swarm_id, "web", "services: {}\n")
        .await
        .unwrap();
    client
        .update_stack(stack.id, 1, "services: {}\n")
        .await
        .unwrap();

    let payloads = [
        (
            "POST /api/users/admin/init",
            &full,
            "users.adminInitPayload",
        ),
        ("POST /api/auth", &subset, "auth.authenticatePayload"),
        (
            "POST /api/stacks/create/swarm/string",
            &subset,
            "stacks.swarmStackFromFileContentPayload",
        ),
        (
            "PUT /api/stacks/",
            &subset,
            "stacks.updateSwarmStackPayload",
        ),
    ];
    let bodies = fake.request_bodies();
    for (prefix, spec, definition) in payloads {
        let (line, body) = bodies
            .iter()
            .find(|(line, _)| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("the client sent no {prefix}: {bodies:#?}"));
        let v = validator(spec, &definition_schema(definition), true).unwrap();
        check(&v, body).unwrap_or_else(|e| panic!("{line} does not match {definition}:\n{e}"));
    }
}
