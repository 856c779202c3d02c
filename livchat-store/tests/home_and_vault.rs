//! `init_home` and the `Vault` API on real files.

use std::os::unix::fs::PermissionsExt;

use livchat_store::{
    ExposeSecret, HomePaths, InitOptions, JsonFileStore, SecretString, Store, StoreError, Vault,
    init_home, init_home_with, read_password_file,
};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_creates_a_private_home_and_is_idempotent() {
    let parent = tempfile::tempdir().unwrap();
    let home = parent.path().join("livchat");
    let first = init_home(&home).unwrap();
    assert!(
        first.created_home
            && first.created_password_file
            && first.created_vault
            && first.created_state
    );
    let paths = HomePaths::new(&home);
    assert_eq!(mode(&home), 0o700);
    for f in [&paths.password_file, &paths.vault, &paths.state] {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    // >= 32 random bytes as printable text.
    let password = read_password_file(&paths.password_file).unwrap();
    assert_eq!(password.expose_secret().len(), 64);
    assert!(
        password
            .expose_secret()
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
    );

    let vault = Vault::open(&paths.vault, password.clone(), None).unwrap();
    vault
        .set("hetzner_token", SecretString::from("tok".to_string()))
        .unwrap();
    let store = JsonFileStore::new(&home);
    let lineage = store.load().unwrap().lineage;

    let password_bytes = std::fs::read(&paths.password_file).unwrap();
    let vault_bytes = std::fs::read(&paths.vault).unwrap();
    let state_bytes = std::fs::read(&paths.state).unwrap();
    let again = init_home(&home).unwrap();
    assert!(
        !again.created_home
            && !again.created_password_file
            && !again.created_vault
            && !again.created_state
    );
    assert_eq!(std::fs::read(&paths.password_file).unwrap(), password_bytes);
    assert_eq!(std::fs::read(&paths.vault).unwrap(), vault_bytes);
    assert_eq!(std::fs::read(&paths.state).unwrap(), state_bytes);
    assert_eq!(JsonFileStore::new(&home).load().unwrap().lineage, lineage);

    // Two homes get different passwords and lineages.
    let other = init_home(&parent.path().join("other")).unwrap();
    assert_ne!(
        read_password_file(&other.paths.password_file)
            .unwrap()
            .expose_secret(),
        password.expose_secret()
    );
}

#[test]
fn init_refuses_a_vault_that_the_password_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    init_home(dir.path()).unwrap();
    let paths = HomePaths::new(dir.path());
    std::fs::write(&paths.password_file, "a different password\n").unwrap();
    let before = std::fs::read(&paths.vault).unwrap();
    let err = init_home(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::VaultHmac { .. }), "{err}");
    assert!(err.to_string().contains("credentials.vault"), "{err}");
    assert_eq!(std::fs::read(&paths.vault).unwrap(), before);
}

#[test]
fn init_with_a_given_password_and_label_writes_no_password_file_and_a_labelled_vault() {
    let dir = tempfile::tempdir().unwrap();
    let report = init_home_with(
        dir.path(),
        InitOptions {
            vault_password: Some(SecretString::from("from env".to_string())),
            vault_label: Some("livchat".into()),
        },
    )
    .unwrap();
    assert!(!report.created_password_file);
    assert!(!report.paths.password_file.exists());
    let text = std::fs::read_to_string(&report.paths.vault).unwrap();
    assert!(
        text.starts_with("$ANSIBLE_VAULT;1.2;AES256;livchat\n"),
        "{text}"
    );
}

#[test]
fn vault_set_get_delete_names_round_trip_and_nothing_is_plaintext_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials.vault");
    let pw = || SecretString::from("pw".to_string());
    let (vault, created) = Vault::create_if_missing(&path, pw(), None).unwrap();
    assert!(created);
    assert_eq!(mode(&path), 0o600);
    assert!(vault.names().unwrap().is_empty());

    let marker = "PLAINTEXT-MARKER-42";
    vault
        .set(
            "cloudflare_api_token",
            SecretString::from(format!("{marker} cf")),
        )
        .unwrap();
    vault
        .set(
            "app.n8n.db_password",
            SecretString::from("p\"w'\n2".to_string()),
        )
        .unwrap();
    assert_eq!(
        vault.names().unwrap(),
        vec!["app.n8n.db_password", "cloudflare_api_token"]
    );

    // Another handle (another process would do the same) sees the writes.
    let other = Vault::open(&path, pw(), None).unwrap();
    assert_eq!(
        other
            .get("app.n8n.db_password")
            .unwrap()
            .unwrap()
            .expose_secret(),
        "p\"w'\n2"
    );
    other
        .set("hetzner_token", SecretString::from("h".to_string()))
        .unwrap();
    assert!(
        vault.contains("hetzner_token").unwrap(),
        "a stale cache hid another writer's change"
    );

    assert!(vault.delete("hetzner_token").unwrap());
    assert!(!vault.delete("hetzner_token").unwrap());
    assert_eq!(
        vault
            .get("hetzner_token")
            .unwrap()
            .map(|s| s.expose_secret().to_string()),
        None
    );
    assert_eq!(mode(&path), 0o600);

    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_bytes()));
    }
    // Debug output of the vault never shows a secret or the password.
    let debug = format!("{vault:?}");
    assert!(
        !debug.contains(marker) && !debug.contains("\"pw\""),
        "{debug}"
    );
}

#[test]
fn bad_secret_names_are_rejected_naming_the_field_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials.vault");
    let (vault, _) =
        Vault::create_if_missing(&path, SecretString::from("pw".to_string()), None).unwrap();
    let before = std::fs::read(&path).unwrap();
    for bad in [
        "",
        "UPPER",
        "has space",
        "semi;colon",
        "../escape",
        "new\nline",
        &"n".repeat(129),
    ] {
        let err = vault
            .set(bad, SecretString::from("v".to_string()))
            .unwrap_err();
        assert!(err.to_string().starts_with("invalid secret name"), "{err}");
        assert!(err.to_string().contains("a-z, 0-9"), "{err}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_vault_label_outside_the_allowlist_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = Vault::create_if_missing(
        dir.path().join("v"),
        SecretString::from("pw".to_string()),
        Some("bad;label".into()),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("invalid vault-id label"),
        "{err}"
    );
    assert!(!dir.path().join("v").exists());
}

#[test]
fn a_garbage_vault_is_a_format_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials.vault");
    std::fs::write(&path, "hetzner_token: plain\n").unwrap();
    let err = Vault::open(&path, SecretString::from("pw".to_string()), None).unwrap_err();
    assert!(matches!(err, StoreError::VaultFormat { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(!err.to_string().contains("plain"), "{err}");
}
