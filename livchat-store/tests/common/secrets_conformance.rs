//! The conformance suite every `SecretStore` must pass: the real vault and `MemorySecrets`,
//! which the core's unit tests run on, behave the same. Takes an empty store.

use std::sync::Arc;

use livchat_store::{ExposeSecret, SecretStore, SecretString, StoreError};

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

fn value(store: &dyn SecretStore, name: &str) -> Option<String> {
    store
        .get(name)
        .unwrap_or_else(|e| panic!("get {name}: {e}"))
        .map(|s| s.expose_secret().to_owned())
}

fn assert_invalid_name(result: Result<impl std::fmt::Debug, StoreError>, name: &str) {
    match result {
        Err(StoreError::InvalidInput { field, reason }) => {
            assert_eq!(field, "secret name", "{name:?}");
            assert!(reason.contains("a-z"), "says what is allowed: {reason}");
        }
        other => panic!("{name:?} must be refused as a secret name, got {other:?}"),
    }
}

/// Runs every check against `store`, which must hold no secrets.
pub fn check_secret_store(store: Arc<dyn SecretStore>) {
    assert_eq!(store.names().unwrap(), Vec::<String>::new(), "starts empty");
    assert_eq!(value(&*store, "hetzner_token"), None);

    // A value comes back byte for byte, whatever it holds.
    let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
    let odd = "  spaces around, ünïcødé ✓, quotes '\" and $HOME  ";
    store.set("server.web-1.ssh_key", secret(key)).unwrap();
    store.set("app.n8n.password", secret(odd)).unwrap();
    assert_eq!(value(&*store, "server.web-1.ssh_key").as_deref(), Some(key));
    assert_eq!(value(&*store, "app.n8n.password").as_deref(), Some(odd));

    // Setting again replaces; names are sorted and never repeated.
    store.set("app.n8n.password", secret("second")).unwrap();
    assert_eq!(
        value(&*store, "app.n8n.password").as_deref(),
        Some("second")
    );
    store.set("cloudflare_api_token", secret("cf")).unwrap();
    assert_eq!(
        store.names().unwrap(),
        [
            "app.n8n.password",
            "cloudflare_api_token",
            "server.web-1.ssh_key"
        ]
    );

    // Delete says whether the secret was there.
    assert!(store.delete("cloudflare_api_token").unwrap());
    assert_eq!(value(&*store, "cloudflare_api_token"), None);
    assert!(!store.delete("cloudflare_api_token").unwrap());
    assert!(!store.delete("never-set").unwrap());

    // The name allowlist holds for every operation, and a refused call changes nothing.
    let before = store.names().unwrap();
    let longest = "a".repeat(128);
    store.set(&longest, secret("x")).unwrap();
    assert_eq!(value(&*store, &longest).as_deref(), Some("x"));
    assert!(store.delete(&longest).unwrap());
    for bad in [
        "",
        "Hetzner",
        "bad name",
        "a/b",
        "../vault",
        "x;rm",
        &"a".repeat(129),
    ] {
        assert_invalid_name(store.set(bad, secret("v")), bad);
        assert_invalid_name(store.get(bad).map(|s| s.is_some()), bad);
        assert_invalid_name(store.delete(bad), bad);
    }
    assert_eq!(
        store.names().unwrap(),
        before,
        "refused calls changed nothing"
    );
    assert_eq!(
        value(&*store, "app.n8n.password").as_deref(),
        Some("second")
    );

    // Writers on several threads: every set lands.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..5 {
                    store
                        .set(&format!("t{t}.s{i}"), secret(&format!("{t}-{i}")))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let names = store.names().unwrap();
    assert_eq!(names.len(), before.len() + 20, "{names:?}");
    assert_eq!(value(&*store, "t3.s4").as_deref(), Some("3-4"));
}
