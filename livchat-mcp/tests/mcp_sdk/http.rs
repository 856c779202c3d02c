//! Streamable HTTP: the bearer token and the Host allowlist in front of the same tools.

use std::process::{Command, Stdio};

use serde_json::json;

use fixtures::net::free_port;

use super::support::{BIN, Home, client, sdk_python, wait_listening, with};

#[test]
fn streamable_http_answers_401_without_the_token_403_to_a_foreign_host_and_serves_the_tools() {
    let Some(python) = sdk_python() else { return };
    let home = Home::new();
    let token = home.open().api_token(false).unwrap();
    let port = free_port();
    let mut server = Command::new(BIN)
        .args(["--http", &format!("127.0.0.1:{port}")])
        .env("LIVCHAT_HOME", &home.path)
        .env_remove("LIVCHAT_VAULT_PASSWORD")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(port);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let base = json!({
        "url": url,
        "token": livchat_core::model::ExposeSecret::expose_secret(&token),
    });
    let hosts = [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
    ];
    let probed = with(&base, "host_probes", json!(hosts));
    let tools = std::panic::catch_unwind(|| client(&python, "tools", &probed));
    let calls = json!([
        ["settings_get", {}, "ok", []],
        ["server_show", {"server": "nope"}, "error", ["nope"]],
    ]);
    let calls = std::panic::catch_unwind(|| client(&python, "calls", &with(&base, "calls", calls)));
    server.kill().unwrap();
    server.wait().unwrap();
    let tools = tools.unwrap();
    assert_eq!(tools["tools"], 32);
    assert_eq!(tools["unauthorized_status"]["none"], 401);
    assert_eq!(tools["unauthorized_status"]["wrong"], 401);
    // The right token from a page whose name rebinds to loopback (DNS rebinding) is refused by
    // the Host allowlist; the loopback names the server was reached by work.
    let host_status = &tools["host_status"];
    assert_eq!(host_status["evil.example"], 403, "{host_status}");
    assert_eq!(host_status[&hosts[1]], 403, "{host_status}");
    assert_eq!(host_status[&hosts[2]], 200, "{host_status}");
    assert_eq!(host_status[&hosts[3]], 200, "{host_status}");
    calls.unwrap();
}
