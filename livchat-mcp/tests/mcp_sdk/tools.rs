//! Over stdio: the tool list, bad input, secrets kept out of results, read tools' output
//! schemas and destructive tools that only plan without `confirm: true`.

use serde_json::json;

use super::support::{Home, client, sdk_python, with};

#[test]
fn tools_list_has_every_tool_with_valid_schemas_and_annotations_and_stays_bounded() {
    let Some(python) = sdk_python() else { return };
    let home = Home::new();
    let report = client(&python, "tools", &home.stdio(&[]));
    assert_eq!(report["tools"], 32);
    let bytes = report["tools_list_bytes"].as_u64().unwrap();
    eprintln!("tools/list: {bytes} bytes");
    // Issue #15: under 40 KB. Measured 62,192 bytes on 2026-12-02 with full output schemas
    // (JobView and Plan repeated per job tool, AppDefinition); output schemas now keep only
    // the top level of each result, with each field's JSON type. 39,411 bytes on 2026-12-03,
    // then 35,431 without each request type's doc comment repeating the tool's description,
    // `default: null` and a second copy of each title, and with shorter field descriptions.
    assert!(
        bytes < 40_000,
        "tools/list is {bytes} bytes; [input, output] schema bytes per tool: {}",
        report["schema_bytes"]
    );
}

#[test]
fn bad_input_is_a_tool_error_naming_the_field_and_changes_nothing() {
    let Some(python) = sdk_python() else { return };
    let home = Home::new();
    let before = home.snapshot();
    let calls = json!([
        ["server_show", {}, "error", ["server"]],
        ["server_show", {"server": 7}, "error", ["server"]],
        ["server_show", {"server": "web-1", "extra": true}, "error", ["extra"]],
        ["server_add", {"name": "../etc", "host": "127.0.0.1"}, "error", ["name"]],
        ["server_exec", {"server": "web-1", "argv": "rm -rf /"}, "error", ["argv"]],
        ["server_exec", {"server": "web-1", "argv": []}, "error", ["argv"]],
        ["server_exec", {"server": "web-1", "argv": ["true"], "timeout_secs": 301}, "error", ["timeout_secs"]],
        ["settings_set", {"key": "no_such_setting", "value": "x"}, "error", ["no_such_setting"]],
        ["secret_set", {"name": "bad name!", "value": "x"}, "error", ["name"]],
        ["provider_info", {"kind": "planets"}, "error", ["kind"]],
        ["app_deploy", {"server": "web-1", "app": "n8n", "plan": "yes"}, "error", ["plan"]],
        ["server_delete", {"server": "web-1", "confirm": 1}, "error", ["confirm"]],
        ["job_show", {"id": "no-such-job"}, "error", ["no-such-job"]],
        ["app_show", {"app": "no-such-app"}, "error", ["no-such-app"]],
        ["app_logs", {"server": "web-1", "app": "n8n", "tail": 0}, "error", ["tail"]],
        ["app_logs", {"server": "web-1", "app": "n8n", "service": "a;b"}, "error", ["service"]],
        ["app_logs", {"server": "web-1", "app": "n8n", "follow": true}, "error", ["follow"]],
        ["app_status", {"server": "no-such-server"}, "error", ["no-such-server"]],
    ]);
    let cfg = with(&home.stdio(&[]), "calls", calls);
    client(&python, "calls", &cfg);
    assert!(home.snapshot() == before, "state.json or the vault changed");
}

#[test]
fn no_tool_result_contains_a_secret_value() {
    let Some(python) = sdk_python() else { return };
    let home = Home::new();
    let canary = "canary-secret-7f3c9a1e5b";
    let calls = json!([
        ["secret_set", {"name": "my_canary", "value": canary}, "ok", []],
        ["secret_set", {"name": "my_canary", "value": canary, "plan": true}, "ok", []],
        ["secret_names", {}, "ok", []],
        ["settings_set", {"key": "email", "value": "ops@example.com"}, "ok", []],
        ["settings_get", {}, "ok", []],
        ["app_render", {"app": "n8n", "zone": "example.com"}, "ok", []],
        ["secret_delete", {"name": "my_canary"}, "ok", []],
        ["secret_names", {}, "ok", []],
    ]);
    let cfg = with(&home.stdio(&[]), "calls", calls);
    let report = client(&python, "calls", &cfg);
    let results = report["results"].to_string();
    assert!(results.contains("my_canary"), "the calls ran: {results}");
    assert!(!results.contains(canary), "a result holds the secret value");
    // Without confirm the delete only planned: the secret is still there.
    assert!(
        home.open()
            .secret_names()
            .unwrap()
            .contains(&"my_canary".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_tools_return_structured_content_matching_their_output_schema() {
    let Some(python) = sdk_python() else { return };
    let hetzner = fixtures::fake_hetzner::FakeHetzner::start().await;
    let cloudflare = fixtures::fake_cloudflare::FakeCloudflare::start().await;
    let home = Home::new();
    let orch = home.open();
    orch.setting_set("email", "ops@example.com").unwrap();
    orch.secret_set(
        livchat_core::HETZNER_TOKEN,
        hetzner.token().to_string().into(),
    )
    .unwrap();
    orch.secret_set(
        livchat_core::CLOUDFLARE_TOKEN,
        cloudflare.token().to_string().into(),
    )
    .unwrap();
    drop(orch);
    let env = [
        ("LIVCHAT_HETZNER_ENDPOINT", hetzner.url()),
        ("LIVCHAT_CLOUDFLARE_ENDPOINT", cloudflare.url()),
        ("LIVCHAT_SSH_WAIT_SECS", "1".to_string()),
    ];
    // A job to read: a create whose server never answers SSH (it fails in about a second).
    let start = json!([["server_create", {"name": "web-1", "server_type": "cx22", "location": "nbg1", "image": "debian-12"}, "ok", []]]);
    let cfg = with(&home.stdio(&env), "calls", start);
    let started = {
        let python = python.clone();
        tokio::task::spawn_blocking(move || client(&python, "calls", &cfg))
            .await
            .unwrap()
    };
    let job = started["outputs"][0]["result"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A server added by hand with n8n deployed on it (records written as `server add` and a
    // finished deploy leave them: cheaper than doing both), and vault secrets of each, which
    // the destructive plans below must name.
    let orch = home.open();
    let created = orch.jobs().get(&job).unwrap();
    assert!(livchat_core::jobs::is_ended(created.status), "{created:?}");
    for (name, value) in [
        ("ssh.byo-1.private_key", "not-a-real-key"),
        ("app.n8n.encryption_key", "n8n-key-value"),
    ] {
        orch.secret_set(name, value.to_string().into()).unwrap();
    }
    drop(orch);
    home.put_server_with_deployment("byo-1", "n8n");
    let reads = json!([
        ["server_list", {}],
        ["server_show", {"server": "byo-1"}],
        ["app_deployed", {"server": "byo-1"}],
        ["app_list", {}],
        ["app_list", {"category": "application"}],
        ["app_show", {"app": "n8n"}],
        ["app_render", {"app": "n8n", "zone": "example.com", "subdomain": "lab"}],
        ["job_list", {}],
        ["job_show", {"id": job}],
        ["job_wait", {"id": job, "timeout_secs": 60}],
        ["job_logs", {"id": job}],
        ["job_logs", {"id": job, "tail": 2}],
        ["provider_info", {"kind": "locations"}],
        ["provider_info", {"kind": "server_types"}],
        ["provider_info", {"kind": "images"}],
        ["dns_list", {"zone": "example.com"}],
        ["settings_get", {}],
        ["secret_names", {}],
    ]);
    let cfg = with(&home.stdio(&env), "reads", reads);
    let report = {
        let python = python.clone();
        tokio::task::spawn_blocking(move || client(&python, "reads", &cfg))
            .await
            .unwrap()
    };
    assert_eq!(report["called"].as_array().unwrap().len(), 18);
    let results = report["results"].to_string();
    assert!(!results.contains(hetzner.token()) && !results.contains(cloudflare.token()));
    assert!(
        results.contains("n8n"),
        "app_deployed lists the deployment: {results}"
    );

    // Destructive tools without `confirm: true` return their plan and change nothing.
    let before = home.snapshot();
    let calls = json!([
        ["server_delete", {"server": "byo-1", "force": true}, "ok", []],
        ["app_undeploy", {"server": "byo-1", "app": "n8n", "delete_data": true}, "ok", []],
    ]);
    let cfg = with(&home.stdio(&env), "calls", calls);
    let report = tokio::task::spawn_blocking(move || client(&python, "calls", &cfg))
        .await
        .unwrap();
    for (i, deleted) in [(0, "ssh.byo-1.private_key"), (1, "app.n8n.encryption_key")] {
        let out = &report["outputs"][i];
        assert_eq!(out["confirm_required"], true, "{out}");
        let resources = out["plan"]["resources"].to_string();
        assert!(
            resources.contains(&format!("DELETE vault secret {deleted}")),
            "the plan names what would be lost: {out}"
        );
    }
    assert!(home.snapshot() == before, "state.json or the vault changed");
    assert_eq!(
        home.open().jobs().list(None).unwrap().len(),
        1,
        "no new job"
    );
}
