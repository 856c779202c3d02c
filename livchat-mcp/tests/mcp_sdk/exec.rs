//! `server_exec` over a real sshd: hostile argv arrives unchanged, big output comes back cut.

use serde_json::json;

use super::support::{Home, client, sdk_python, with};

#[test]
fn server_exec_delivers_hostile_argv_unchanged_and_cuts_big_output_over_a_real_sshd() {
    let Some(python) = sdk_python() else { return };
    let Some(sshd) = fixtures::sshd::Sshd::start() else {
        return;
    };
    let home = Home::new();
    let canary = home.scratch().join("canary");
    let c = canary.display().to_string();
    let payloads: Vec<String> = vec![
        format!("; touch {c}"),
        format!("$(touch {c})"),
        format!("`touch {c}`"),
        format!("| touch {c}"),
        format!("&& touch {c}"),
        format!("> {c}"),
        format!("a\ntouch {c}"),
        "{a,b}".into(),
        "*".into(),
        "-x".into(),
        "'\"\\".into(),
        "ünïcødé ✓".into(),
        "$HOME ${PATH}".into(),
        "".into(),
    ];
    let mut argv = vec!["printf".to_string(), "%s\\n--\\n".to_string()];
    argv.extend(payloads.iter().cloned());
    let add = json!({
        "name": "web-1", "host": sshd.host(), "port": sshd.port(), "user": sshd.user(),
        "private_key": sshd.client_private_key(),
        "host_key_fingerprint": sshd.host_key_fingerprint(),
    });
    // A remote caller cannot be asked about the host key: without a fingerprint (or an
    // explicit accept-new) the server is refused and nothing is stored.
    let mut unpinned = add.clone();
    unpinned
        .as_object_mut()
        .unwrap()
        .remove("host_key_fingerprint");
    let calls = json!([
        ["server_add", unpinned, "error", ["host_key_fingerprint"]],
        ["server_show", {"server": "web-1"}, "error", ["web-1"]],
        ["server_add", add, "ok", []],
        ["server_exec", {"server": "web-1", "argv": argv, "timeout_secs": 30}, "ok", []],
        ["server_exec", {"server": "web-1", "argv": ["sh", "-c", "exit 3"]}, "ok", []],
        // About 3.4 MB on stdout, more than the 1 MiB a result keeps.
        ["server_exec", {"server": "web-1", "argv": ["seq", "1", "500000"]}, "ok", []],
    ]);
    let cfg = with(&home.stdio(&[]), "calls", calls);
    let report = client(&python, "calls", &cfg);
    let added = &report["outputs"][2]["result"];
    assert_eq!(added["host_key_fingerprint"], sshd.host_key_fingerprint());
    let exec = &report["outputs"][3]["result"];
    assert_eq!(exec["exit_code"], 0, "{exec}");
    let expected: String = payloads.iter().map(|p| format!("{p}\n--\n")).collect();
    assert_eq!(exec["stdout"], expected, "every argument arrives unchanged");
    assert!(!canary.exists(), "a payload reached a shell");
    assert_eq!(report["outputs"][4]["result"]["exit_code"], 3);
    // Output past the bound comes back cut at it, marked, and the whole result stays bounded.
    let big = &report["outputs"][5]["result"];
    let seq: String = (1..=500_000).map(|n| format!("{n}\n")).collect();
    let kept = livchat_core::ops::EXEC_MAX_OUTPUT;
    assert_eq!(big["truncated"], true);
    let stdout = big["stdout"].as_str().unwrap();
    assert_eq!(stdout.len(), kept + "\n[output truncated]".len());
    assert!(stdout.ends_with("\n[output truncated]"));
    assert!(
        stdout.starts_with(&seq[..kept]),
        "the head of the output is kept"
    );
    // The whole result: that stdout as a JSON string (each newline escaped) and a little more.
    let result_bytes = report["results"][5].as_str().unwrap().len();
    let stdout_json = serde_json::to_string(stdout).unwrap().len();
    assert!(
        result_bytes < stdout_json + 4096,
        "the tool result is {result_bytes} bytes"
    );
    // The private key went into the vault, never into a result.
    assert!(!report["results"].to_string().contains("PRIVATE KEY"));
}
