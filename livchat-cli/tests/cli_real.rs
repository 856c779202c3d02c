//! `livchat` against real parts: `server add` and `server exec` over a real OpenSSH sshd
//! (host key pinned on first contact, hostile arguments arriving byte for byte, a changed host
//! key refused), and `provider info` / `dns list` against the fake Hetzner and Cloudflare
//! servers that are held to the vendors' specs.

use fixtures::cli::Livchat;

fn livchat() -> Livchat {
    Livchat::temp(env!("CARGO_BIN_EXE_livchat"))
}

/// `secrets set` with the value on stdin (the command line never carries it).
fn secret_set(cli: &Livchat, key: &str, value: &str) {
    let args = ["secrets", "set", key];
    let out = cli.output(&args, Some(value)).unwrap();
    assert!(
        out.status.success(),
        "`livchat secrets set {key}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn server_add_pins_the_host_key_and_exec_delivers_hostile_arguments_unchanged() {
    let Some(mut sshd) = fixtures::sshd::Sshd::start() else {
        return;
    };
    let cli = livchat();
    let home = cli.home();
    cli.ok(&["init"]);
    let key = cli.scratch().join("id_ed25519");
    std::fs::write(&key, sshd.client_private_key()).unwrap();
    let port = sshd.port().to_string();
    let host = sshd.host();
    let add = |extra: &[&str]| {
        let mut args = vec![
            "server",
            "add",
            "web-1",
            "--host",
            &host,
            "--port",
            &port,
            "--user",
            sshd.user(),
            "--key",
            key.to_str().unwrap(),
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        cli.output(&args, None).unwrap()
    };
    // Issue #19: no terminal to ask and no fingerprint given: refused, nothing stored.
    let out = add(&[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--host-key-fingerprint") && err.contains("--accept-new-host-key"),
        "{err}"
    );
    // A fingerprint the server does not present: refused, nothing stored.
    let wrong = "SHA256:AAAAztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
    let out = add(&["--host-key-fingerprint", wrong]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(wrong) && err.contains(sshd.host_key_fingerprint()),
        "{err}"
    );
    let state = std::fs::read_to_string(home.join("state.json")).unwrap();
    assert!(!state.contains("web-1"), "{state}");
    let secrets = cli.ok(&["secrets", "list"]);
    assert!(!secrets.contains("ssh.web-1"), "{secrets}");

    let out = add(&["--host-key-fingerprint", sshd.host_key_fingerprint()]);
    assert!(out.status.success(), "{}", cli.transcript(&out));
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["host_key_fingerprint"], sshd.host_key_fingerprint());
    // The key went into the vault, never into state.json.
    let state = std::fs::read_to_string(home.join("state.json")).unwrap();
    assert!(state.contains(sshd.host_key_fingerprint()));
    assert!(!state.contains("PRIVATE KEY"));

    let canary = cli.scratch().join("canary");
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
        "--help".into(),
        "'\"\\".into(),
        "\u{a0}nbsp".into(),
        "ünïcødé ✓".into(),
        "$HOME ${PATH}".into(),
        "".into(),
    ];
    let mut args = vec!["server", "exec", "web-1", "--", "printf", "%s\\0"];
    // printf's format is its first argument: `%s\0` must reach it as those 4 bytes.
    args.pop();
    args.push(r"%s\0");
    args.extend(payloads.iter().map(String::as_str));
    let out = cli.output(&args, None).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<u8> = payloads
        .iter()
        .flat_map(|p| p.bytes().chain(std::iter::once(0)))
        .collect();
    assert_eq!(out.stdout, expected, "every argument arrives unchanged");
    assert!(!canary.exists(), "a payload reached a shell");

    // The remote exit status becomes the command's failure.
    let out = cli
        .output(
            &["server", "exec", "web-1", "--", "sh", "-c", "exit 3"],
            None,
        )
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("status 3"));

    // A changed host key is refused, naming the server, both fingerprints and the command
    // that replaces the pin.
    let pinned = sshd.host_key_fingerprint().to_string();
    sshd.restart_with_new_host_key();
    let presented = sshd.host_key_fingerprint().to_string();
    let out = cli
        .output(&["server", "exec", "web-1", "--", "true"], None)
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("host key changed for web-1"), "{err}");
    assert!(err.contains(&pinned) && err.contains(&presented), "{err}");
    assert!(err.contains("livchat server repin-host-key web-1"), "{err}");
    let pin = || {
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(home.join("state.json")).unwrap())
                .unwrap();
        state["servers"]["web-1"]["host_key_fingerprint"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // Issue #19: re-pinning never accepts a key silently. Without a terminal it needs the
    // fingerprint, and only the one the server presents now.
    let out = cli
        .output(&["server", "repin-host-key", "web-1"], None)
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--fingerprint"));
    assert_eq!(pin(), pinned);
    let out = cli
        .output(
            &[
                "server",
                "repin-host-key",
                "web-1",
                "--fingerprint",
                &pinned,
            ],
            None,
        )
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(pin(), pinned);
    cli.ok(&[
        "server",
        "repin-host-key",
        "web-1",
        "--fingerprint",
        &presented,
    ]);
    assert_eq!(pin(), presented);
    cli.ok(&["server", "exec", "web-1", "--", "true"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_info_and_dns_list_read_the_vendor_apis() {
    let hetzner = fixtures::fake_hetzner::FakeHetzner::start().await;
    let cloudflare = fixtures::fake_cloudflare::FakeCloudflare::start().await;
    let cli = livchat()
        .env("LIVCHAT_HETZNER_ENDPOINT", hetzner.url())
        .env("LIVCHAT_CLOUDFLARE_ENDPOINT", cloudflare.url());
    let (ht, ct) = (hetzner.token().to_string(), cloudflare.token().to_string());
    let outputs = tokio::task::spawn_blocking(move || {
        cli.ok(&["init"]);
        secret_set(&cli, "hetzner_token", &ht);
        secret_set(&cli, "cloudflare_api_token", &ct);
        let locations = cli.json(&["provider", "info", "locations"]);
        let types = cli.json(&["provider", "info", "server-types"]);
        let images = cli.ok(&["provider", "info", "images"]);
        let records = cli.json(&["dns", "list", "example.com"]);
        let missing = cli.output(&["dns", "list", "nope.example"], None).unwrap();
        (locations, types, images, records, missing)
    })
    .await
    .unwrap();
    let (locations, types, images, records, missing) = outputs;
    assert!(!locations.as_array().unwrap().is_empty());
    assert!(locations[0]["name"].is_string());
    assert!(
        types
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["prices"].is_array())
    );
    assert!(images.contains("debian"), "{images}");
    // The zone holds record types the cloudflare crate cannot model (CAA): listing still works.
    let kinds: Vec<&str> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let t = &r["record_type"];
            t.as_str()
                .or_else(|| t["Other"].as_str())
                .unwrap_or_default()
        })
        .collect();
    assert!(kinds.contains(&"CAA"), "{kinds:?}");
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("nope.example"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
