//! Long tools: progress notifications, a cancelled call cancelling its job, and the
//! `max_wait_secs` deadline returning while the job runs.

use serde_json::json;

use super::support::{client, sdk_python, server_create_cfg, with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_tool_with_a_progress_token_reports_every_step_and_never_goes_down() {
    let Some(python) = sdk_python() else { return };
    let (_hetzner, _home, cfg) = server_create_cfg(2, 120).await;
    let report = tokio::task::spawn_blocking(move || client(&python, "progress", &cfg))
        .await
        .unwrap();
    let job = &report["result"]["result"];
    // SSH never answers: the job fails at the host-key step, after the steps before it.
    assert_eq!(job["status"], "failed", "{job}");
    let messages: Vec<&str> = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    for step in ["ssh_key", "create_server", "pin_host_key"] {
        assert!(
            messages.iter().any(|m| m.contains(step)),
            "no notification for {step}: {messages:?}"
        );
    }
    assert!(
        report["result"]["log_tail"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_long_tool_call_cancels_its_job() {
    let Some(python) = sdk_python() else { return };
    // Long enough that only the cancel can end the wait for SSH.
    let (_hetzner, home, cfg) = server_create_cfg(600, 900).await;
    let cfg = with(&cfg, "cancel_at", json!("pin_host_key"));
    // Before the cancel, `job_wait` with a progress token on the same running job: it is
    // notified, and its `timeout_secs` deadline returns the job still running.
    let cfg = with(&cfg, "wait_secs", json!(2));
    let report = tokio::task::spawn_blocking(move || client(&python, "cancel", &cfg))
        .await
        .unwrap();
    let waited = &report["waited"];
    assert_eq!(waited["result"]["status"], "running", "{waited}");
    assert_eq!(waited["result"]["current_step"], "pin_host_key", "{waited}");
    let elapsed = waited["elapsed"].as_f64().unwrap();
    assert!((2.0..30.0).contains(&elapsed), "{waited}");
    let events = waited["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["message"].as_str().unwrap_or("").contains("pin_host_key")),
        "no progress notification for job_wait: {waited}"
    );
    assert!(
        events.iter().all(|e| e["total"].as_f64() == Some(100.0)),
        "{waited}"
    );
    let jobs = report["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["status"], "cancelled", "{jobs:?}");
    // The job is in the home the CLI reads.
    let recorded = home.open().jobs().list(None).unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        recorded[0].status,
        livchat_core::model::JobStatus::Cancelled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_tool_returns_at_its_max_wait_with_the_job_still_running() {
    let Some(python) = sdk_python() else { return };
    // The job waits up to 10 minutes for SSH that never answers: only the deadline ends the call.
    let (_hetzner, home, cfg) = server_create_cfg(600, 2).await;
    let report = tokio::task::spawn_blocking(move || client(&python, "deadline", &cfg))
        .await
        .unwrap();
    let returned = &report["returned"];
    let job = &returned["result"];
    assert_eq!(job["status"], "running", "{returned:#}");
    assert!(job["progress"].is_u64(), "{returned:#}");
    let step = job["current_step"].as_str().unwrap_or_default();
    assert!(
        ["ssh_key", "create_server", "pin_host_key"].contains(&step),
        "{returned:#}"
    );
    assert!(returned["log_tail"].is_array(), "{returned:#}");
    assert!(
        !report["events"].as_array().unwrap().is_empty(),
        "notified while it waited: {report:#}"
    );
    // Cancelled afterwards through `job_cancel`: nothing is left running.
    assert_eq!(report["ended"]["id"], job["id"]);
    assert_eq!(report["ended"]["status"], "cancelled", "{report:#}");
    let recorded = home.open().jobs().list(None).unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        recorded[0].status,
        livchat_core::model::JobStatus::Cancelled
    );
}
