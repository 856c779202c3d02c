//! The one conformance suite every `Store` implementation must pass (after terraform's
//! `statemgr/testing.go`). It takes a store holding an empty, freshly initialised state.

use std::sync::Arc;

use livchat_store::{SettingKey, Settings, State, Store, StoreError};

use super::server;

/// Runs every conformance check against `store`, which must start empty.
pub fn check_store(store: Arc<dyn Store>) {
    let initial = store.load().expect("load an initialised store");
    assert_eq!(initial.version, livchat_store::STATE_VERSION);
    assert!(initial.servers.is_empty(), "the suite needs an empty store");
    let lineage = initial.lineage;
    let s0 = initial.serial;

    // A real change raises the serial by one and is visible to load.
    let after = store
        .update("add web-1", &mut |s: &mut State| {
            s.servers.insert("web-1".into(), server("web-1"));
            Ok(())
        })
        .expect("update");
    assert_eq!(after.serial, s0 + 1);
    assert_eq!(after.lineage, lineage);
    assert_eq!(store.load().unwrap(), after);

    // A no-op update keeps the serial.
    let same = store
        .update("no-op", &mut |s: &mut State| {
            s.servers.insert("web-1".into(), server("web-1"));
            Ok(())
        })
        .unwrap();
    assert_eq!(
        same.serial,
        s0 + 1,
        "a no-op update must not raise the serial"
    );
    assert_eq!(store.load().unwrap(), after);

    // An error from the closure aborts the whole update, even after partial changes.
    let err = store
        .update("half done", &mut |s: &mut State| {
            s.servers.insert("web-2".into(), server("web-2"));
            Err(StoreError::Rejected("server quota reached".into()))
        })
        .unwrap_err();
    assert_eq!(err.to_string(), "server quota reached");
    assert_eq!(store.load().unwrap(), after, "nothing may be half-changed");

    // An invalid result is refused naming the field; nothing changes.
    let err = store
        .update("bad name", &mut |s: &mut State| {
            let mut bad = server("web-3");
            bad.name = "Web 3".into();
            s.servers.insert("web-3".into(), bad);
            Ok(())
        })
        .unwrap_err();
    assert!(err.to_string().contains("servers.web-3.name"), "{err}");
    assert_eq!(store.load().unwrap(), after);

    let err = store
        .update("bad user", &mut |s: &mut State| {
            s.servers.get_mut("web-1").unwrap().ssh_user = "root; rm -rf /".into();
            Ok(())
        })
        .unwrap_err();
    assert!(err.to_string().contains("servers.web-1.ssh_user"), "{err}");
    assert_eq!(store.load().unwrap(), after);

    // Deployments must belong to a known server.
    let err = store
        .update("orphan deployment", &mut |s: &mut State| {
            s.deployments.entry("ghost".into()).or_default();
            Ok(())
        })
        .unwrap_err();
    assert!(err.to_string().contains("deployments.ghost"), "{err}");

    // The store manages version, serial and lineage.
    for field in ["serial", "lineage", "version"] {
        let err = store
            .update("tamper", &mut |s: &mut State| {
                match field {
                    "serial" => s.serial += 10,
                    "lineage" => s.lineage = uuid_like(),
                    _ => s.version += 1,
                }
                Ok(())
            })
            .unwrap_err();
        assert!(
            err.to_string().starts_with(&format!("invalid {field}")),
            "{err}"
        );
    }
    assert_eq!(store.load().unwrap(), after);

    // An update hands back the state it wrote.
    let state = store
        .update("relabel", &mut |s: &mut State| {
            let server = s.servers.get_mut("web-1").expect("added above");
            server.labels.insert("tier".into(), "web".into());
            Ok(())
        })
        .unwrap();
    assert_eq!(state.servers["web-1"].labels["tier"], "web");
    assert_eq!(state.serial, s0 + 2);

    // Settings are kept apart: they go through their validation, a failed change writes
    // nothing, and a settings update leaves the state (and its serial) alone.
    assert_eq!(store.settings().unwrap(), Settings::default());
    let settings = store
        .update_settings("set email", &mut |s| {
            s.set(SettingKey::Email, "ops@example.com")
        })
        .unwrap();
    assert_eq!(settings.email.as_deref(), Some("ops@example.com"));
    assert_eq!(store.settings().unwrap(), settings);
    let err = store
        .update_settings("bad email", &mut |s| {
            s.set(SettingKey::Timezone, "UTC")?;
            s.set(SettingKey::Email, "nope")
        })
        .unwrap_err();
    assert!(err.to_string().contains("settings.email"), "{err}");
    assert_eq!(store.settings().unwrap(), settings, "nothing half-changed");
    assert_eq!(store.load().unwrap(), state);

    // Concurrent writers from several threads: every update lands, each raises the serial once.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..10 {
                    let name = format!("t{t}-{i}");
                    store
                        .update("thread", &mut |s: &mut State| {
                            s.servers.insert(name.clone(), server(&name));
                            Ok(())
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let end = store.load().unwrap();
    assert_eq!(end.servers.len(), 1 + 40);
    assert_eq!(end.serial, s0 + 2 + 40);
    assert_eq!(end.lineage, lineage);

    // The servers-only read agrees with the whole state.
    assert_eq!(store.servers().unwrap(), end.servers);
}

fn uuid_like() -> uuid::Uuid {
    uuid::Uuid::new_v4()
}
