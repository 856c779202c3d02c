//! Reading `state.json` of any known version: parse as JSON, check the version, run the
//! migrations from the file's version up to [`STATE_VERSION`], then deserialize strictly.
//!
//! A migration is a function from the JSON of version `from` to the JSON of version `from + 1`;
//! adding version 2 means bumping `STATE_VERSION` and appending one entry to [`MIGRATIONS`].

use std::path::Path;

use serde_json::Value;

use crate::error::StoreError;
use crate::settings::Settings;
use crate::state::{JobRecord, STATE_VERSION, State};

/// One step of the migration chain.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version this migration reads; it produces `from + 1`.
    pub from: u64,
    /// Rewrites the document in place; the error says what could not be migrated.
    pub apply: fn(&mut Value) -> Result<(), String>,
}

/// The migrations of the real schema.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        from: 1,
        apply: job_owner_out_of_params,
    },
    Migration {
        from: 2,
        apply: jobs_out_of_state,
    },
    Migration {
        from: 3,
        apply: settings_out_of_state,
    },
    Migration {
        from: 4,
        apply: clusters_appear,
    },
];

/// Where [`settings_out_of_state`] leaves the settings for the store to write as their file.
const MOVED_SETTINGS: &str = "_settings_moved_out";

/// Version 4: the settings are a file of their own (`<home>/settings.json`), so changing one
/// no longer rewrites a state of a thousand servers. The migration takes them out of the
/// document; the file store writes them before it writes the state without them.
fn settings_out_of_state(doc: &mut Value) -> Result<(), String> {
    let obj = doc
        .as_object_mut()
        .ok_or("the state is not a JSON object")?;
    if let Some(settings) = obj.remove("settings") {
        obj.insert(MOVED_SETTINGS.into(), settings);
    }
    Ok(())
}

/// Version 5: `clusters` (Swarm clusters of several servers) appears. A version-4 file has
/// none, so nothing changes; the version moves so an older build refuses a file that may
/// hold clusters instead of failing on an unknown field.
fn clusters_appear(_doc: &mut Value) -> Result<(), String> {
    Ok(())
}

/// Where [`jobs_out_of_state`] leaves the jobs for the store to write as files.
const MOVED_JOBS: &str = "_jobs_moved_out";

/// Version 3: jobs are files of their own (`<home>/jobs/<id>.json`), so a job's progress no
/// longer rewrites the whole state. The migration takes them out of the document; the file
/// store writes them as job files before it writes the state without them.
fn jobs_out_of_state(doc: &mut Value) -> Result<(), String> {
    let obj = doc
        .as_object_mut()
        .ok_or("the state is not a JSON object")?;
    if let Some(jobs) = obj.remove("jobs") {
        obj.insert(MOVED_JOBS.into(), jobs);
    }
    Ok(())
}

/// Version 2: who runs a job and a pending cancel request were reserved keys inside the job's
/// params (`_owner: {pid, host}`, `_cancel_requested`); they are fields of the job now, and the
/// params hold only what the user asked for.
fn job_owner_out_of_params(doc: &mut Value) -> Result<(), String> {
    let Some(jobs) = doc.get_mut("jobs").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    for (id, job) in jobs.iter_mut() {
        let Some(job) = job.as_object_mut() else {
            return Err(format!("job {id} is not an object"));
        };
        let (owner, cancel) = match job.get_mut("params").and_then(Value::as_object_mut) {
            Some(params) => (params.remove("_owner"), params.remove("_cancel_requested")),
            None => (None, None),
        };
        if let Some(owner) = owner {
            let valid = owner.get("pid").and_then(Value::as_u64).is_some()
                && owner.get("host").and_then(Value::as_str).is_some();
            if !valid {
                return Err(format!("job {id}: `_owner` is not {{pid, host}}: {owner}"));
            }
            job.insert("owner".into(), owner);
        }
        if cancel.as_ref().and_then(Value::as_bool) == Some(true) {
            job.insert("cancel_requested".into(), Value::Bool(true));
        }
    }
    Ok(())
}

/// A state file as read: the state, and the jobs an older version held inside it (which the
/// caller must write as job files before it writes the state without them).
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) state: State,
    pub(crate) moved_jobs: Vec<JobRecord>,
    /// The settings an older version held inside the state (written as `settings.json`
    /// unless that file exists already).
    pub(crate) moved_settings: Option<Settings>,
    /// The file is of an older version than this build writes.
    pub(crate) migrated: bool,
}

/// Parses and migrates the bytes of a state file with the real migration chain.
pub(crate) fn parse_state(path: &Path, bytes: &[u8]) -> Result<Parsed, StoreError> {
    parse_state_with(path, bytes, MIGRATIONS, u64::from(STATE_VERSION))
}

/// Parses `bytes`, runs `migrations` from the file's version up to `target`, deserializes
/// strictly and validates. Separated from [`parse_state`] so the chain can be tested with
/// fake older versions.
pub(crate) fn parse_state_with(
    path: &Path,
    bytes: &[u8],
    migrations: &[Migration],
    target: u64,
) -> Result<Parsed, StoreError> {
    let corrupt = |detail: String| StoreError::CorruptState {
        path: path.to_path_buf(),
        detail,
        backup: existing_backup(path),
        backup_serial: backup_serial(path),
    };
    // Read only the version first (skipping the rest without building it), so the common
    // case, a file of the current version, deserializes straight into `State` instead of
    // through an intermediate `serde_json::Value`.
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        version: Option<Value>,
    }
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| corrupt(describe_json_error(&e, bytes)))?;
    let Some(found) = probe.version.as_ref().and_then(Value::as_u64) else {
        return Err(corrupt(
            "missing or non-integer top-level field `version`".to_string(),
        ));
    };
    if found > target {
        return Err(StoreError::NewerVersion {
            path: path.to_path_buf(),
            found,
            supported: STATE_VERSION,
        });
    }
    if found == target {
        let state: State = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        state.validate().map_err(|e| corrupt(e.to_string()))?;
        return Ok(Parsed {
            state,
            moved_jobs: Vec::new(),
            moved_settings: None,
            migrated: false,
        });
    }
    let mut doc: Value = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut version = found;
    while version < target {
        let step = migrations
            .iter()
            .find(|m| m.from == version)
            .ok_or_else(|| StoreError::Migration {
                path: path.to_path_buf(),
                from: version,
                detail: format!("no migration from version {version} is known"),
            })?;
        (step.apply)(&mut doc).map_err(|detail| StoreError::Migration {
            path: path.to_path_buf(),
            from: version,
            detail,
        })?;
        version += 1;
        doc["version"] = Value::from(version);
    }
    let moved = doc
        .as_object_mut()
        .and_then(|o| o.remove(MOVED_JOBS))
        .unwrap_or(Value::Null);
    let moved_settings = match doc.as_object_mut().and_then(|o| o.remove(MOVED_SETTINGS)) {
        None => None,
        Some(v) => {
            let settings: Settings =
                serde_json::from_value(v).map_err(|e| corrupt(format!("settings: {e}")))?;
            settings.validate().map_err(|e| corrupt(e.to_string()))?;
            Some(settings)
        }
    };
    let state: State = serde_json::from_value(doc).map_err(|e| corrupt(e.to_string()))?;
    state.validate().map_err(|e| corrupt(e.to_string()))?;
    let moved_jobs = match moved {
        Value::Null => Vec::new(),
        Value::Object(jobs) => jobs
            .into_iter()
            .map(|(id, job)| {
                let job: JobRecord =
                    serde_json::from_value(job).map_err(|e| corrupt(format!("jobs.{id}: {e}")))?;
                if job.id != id {
                    return Err(corrupt(format!("jobs.{id}.id: must equal its key `{id}`")));
                }
                job.validate().map_err(|e| corrupt(e.to_string()))?;
                Ok(job)
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(corrupt("`jobs` is not an object".to_string())),
    };
    Ok(Parsed {
        state,
        moved_jobs,
        moved_settings,
        migrated: true,
    })
}

fn describe_json_error(e: &serde_json::Error, bytes: &[u8]) -> String {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return "the file is empty".to_string();
    }
    match e.classify() {
        serde_json::error::Category::Eof => format!("the file ends early (truncated?): {e}"),
        _ => format!("not valid JSON: {e}"),
    }
}

/// `state.json.bak` beside `path`, if it exists.
pub(crate) fn existing_backup(path: &Path) -> Option<std::path::PathBuf> {
    let backup = backup_path_for(path);
    backup.is_file().then_some(backup)
}

/// The serial of `state.json.bak`, read without validating the rest of it.
fn backup_serial(path: &Path) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Serial {
        serial: u64,
    }
    let bytes = std::fs::read(backup_path_for(path)).ok()?;
    serde_json::from_slice::<Serial>(&bytes)
        .ok()
        .map(|s| s.serial)
}

/// `state.json` -> `state.json.bak`.
pub(crate) fn backup_path_for(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".bak");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake version 0 in which servers were a list with `ip` instead of a map with `host`.
    fn v0_to_v1(doc: &mut Value) -> Result<(), String> {
        let servers = doc
            .as_object_mut()
            .ok_or("not an object")?
            .remove("servers")
            .unwrap_or(Value::Array(vec![]));
        let mut map = serde_json::Map::new();
        for mut server in servers.as_array().ok_or("`servers` is not a list")?.clone() {
            let obj = server.as_object_mut().ok_or("a server is not an object")?;
            let ip = obj.remove("ip").ok_or("a server has no `ip`")?;
            obj.insert("host".into(), ip);
            let name = obj
                .get("name")
                .and_then(Value::as_str)
                .ok_or("a server has no name")?
                .to_string();
            map.insert(name, server);
        }
        doc["servers"] = Value::Object(map);
        Ok(())
    }

    const FAKE_CHAIN: &[Migration] = &[Migration {
        from: 0,
        apply: v0_to_v1,
    }];

    fn v0_doc() -> String {
        serde_json::json!({
            "version": 0,
            "serial": 7,
            "lineage": "0b6f7f38-3f5a-4c39-9d7e-0f6d3e0c1a11",
            "servers": [{
                "name": "web-1", "provider": "manual", "ip": "10.0.0.5", "ssh_port": 22,
                "ssh_user": "root", "ssh_key_secret": "server.web-1.ssh_key", "status": "ready",
                "created_at": "2025-01-01T00:00:00Z"
            }]
        })
        .to_string()
    }

    #[test]
    fn older_version_is_migrated_to_the_current_schema() {
        let state = parse_state_with(Path::new("state.json"), v0_doc().as_bytes(), FAKE_CHAIN, 1)
            .unwrap()
            .state;
        assert_eq!(state.version, 1);
        assert_eq!(state.serial, 7);
        assert_eq!(state.servers["web-1"].host, "10.0.0.5");
    }

    #[test]
    fn a_missing_migration_is_an_error_naming_the_version() {
        let err =
            parse_state_with(Path::new("state.json"), v0_doc().as_bytes(), &[], 1).unwrap_err();
        assert!(
            matches!(err, StoreError::Migration { from: 0, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("version 0"), "{err}");
    }

    #[test]
    fn a_failing_migration_is_an_error_with_its_reason() {
        let doc = v0_doc().replace("\"ip\"", "\"address\"");
        let err =
            parse_state_with(Path::new("state.json"), doc.as_bytes(), FAKE_CHAIN, 1).unwrap_err();
        assert!(err.to_string().contains("a server has no `ip`"), "{err}");
    }

    /// A version-1 file as 0.1 wrote it: the job's owner and a cancel request in its params.
    fn v1_doc() -> String {
        serde_json::json!({
            "version": 1,
            "serial": 3,
            "lineage": "0b6f7f38-3f5a-4c39-9d7e-0f6d3e0c1a11",
            "jobs": {
                "job-1": {
                    "id": "job-1", "kind": "setup_server", "server": "web-1",
                    "status": "running", "progress": 40, "attempt": 1,
                    "created_at": "2026-11-01T00:00:00Z",
                    "params": {
                        "name": "web-1", "zone": "example.com",
                        "_owner": {"pid": 4242, "host": "build-1"},
                        "_cancel_requested": true
                    }
                },
                "job-2": {
                    "id": "job-2", "kind": "deploy_app", "status": "completed",
                    "progress": 100, "attempt": 2, "created_at": "2026-11-01T00:00:00Z",
                    "params": {"server": "web-1", "app": "redis", "apps": ["redis"]}
                }
            }
        })
        .to_string()
    }

    #[test]
    fn version_1_job_owner_and_cancel_request_move_out_of_the_params() {
        let parsed = parse_state(Path::new("state.json"), v1_doc().as_bytes()).unwrap();
        assert_eq!(parsed.state.version, STATE_VERSION);
        assert!(parsed.migrated);
        let job = |id: &str| parsed.moved_jobs.iter().find(|j| j.id == id).unwrap();
        let running = job("job-1");
        assert_eq!(
            running.owner,
            Some(crate::state::JobOwner {
                pid: 4242,
                host: "build-1".into()
            })
        );
        assert!(running.cancel_requested);
        assert_eq!(
            running.params,
            serde_json::json!({"name": "web-1", "zone": "example.com"}),
            "only what the user asked for is left in the params"
        );
        let done = job("job-2");
        assert_eq!(done.owner, None);
        assert!(!done.cancel_requested);
        assert_eq!(done.params["app"], "redis");
    }

    #[test]
    fn a_version_1_owner_of_the_wrong_shape_is_a_migration_error_naming_the_job() {
        let doc = v1_doc().replace("\"pid\":4242", "\"pid\":\"x\"");
        let err = parse_state(Path::new("state.json"), doc.as_bytes()).unwrap_err();
        assert!(
            matches!(err, StoreError::Migration { from: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("job-1"), "{err}");
    }

    /// A version-3 file as the release before clusters wrote it (jobs already out of it).
    #[test]
    fn version_3_file_loads_with_no_clusters() {
        let doc = serde_json::json!({
            "version": 3,
            "serial": 7,
            "lineage": "0b6f7f38-3f5a-4c39-9d7e-0f6d3e0c1a11",
            "servers": {"web-1": {
                "name": "web-1", "provider": "manual", "host": "203.0.113.10",
                "ssh_port": 22, "ssh_user": "root", "ssh_key_secret": "ssh.web-1.key",
                "status": "ready", "created_at": "2026-11-01T00:00:00Z"
            }},
            "deployments": {}
        });
        let parsed = parse_state(Path::new("state.json"), doc.to_string().as_bytes()).unwrap();
        assert!(parsed.migrated);
        assert_eq!(parsed.state.version, STATE_VERSION);
        assert!(parsed.state.clusters.is_empty());
        assert!(parsed.state.servers.contains_key("web-1"));
        assert!(parsed.state.cluster_of("web-1").is_none());
    }

    #[test]
    fn a_newer_version_is_refused() {
        let mut doc: Value = serde_json::to_value(State::new()).unwrap();
        doc["version"] = Value::from(u64::from(STATE_VERSION) + 1);
        let err = parse_state(Path::new("/h/state.json"), doc.to_string().as_bytes()).unwrap_err();
        assert!(matches!(err, StoreError::NewerVersion { .. }), "{err}");
        assert!(err.to_string().contains("upgrade livchat"), "{err}");
    }

    #[test]
    fn first_run_claims_are_optional_round_trip_and_are_forgotten_per_app() {
        // A version-3 file from before the field loads without it, and an empty map is not
        // written, so such files stay byte-for-byte what older builds read.
        let plain = serde_json::to_value(State::new()).unwrap();
        assert!(plain.get("first_run_claims").is_none(), "{plain}");
        let parsed = parse_state(Path::new("state.json"), plain.to_string().as_bytes()).unwrap();
        assert!(parsed.state.first_run_claims.is_empty());

        let mut state = State::new();
        state.record_claim("web-1", "n8n", 0);
        state.record_claim("web-1", "claimable", 1);
        let doc = serde_json::to_value(&state).unwrap();
        assert_eq!(
            doc["first_run_claims"],
            serde_json::json!({"web-1": {"claimable": [1], "n8n": [0]}})
        );
        let back = parse_state(Path::new("state.json"), doc.to_string().as_bytes()).unwrap();
        assert!(back.state.claimed("web-1", "n8n", 0));
        assert!(!back.state.claimed("web-1", "n8n", 1));
        assert!(!back.state.claimed("web-2", "n8n", 0));

        state.forget_claims("web-1", "n8n");
        assert!(!state.claimed("web-1", "n8n", 0));
        assert!(state.claimed("web-1", "claimable", 1));
        state.forget_claims("web-1", "claimable");
        assert!(
            state.first_run_claims.is_empty(),
            "no empty server entry left"
        );
    }

    #[test]
    fn an_unknown_field_is_an_error_naming_it() {
        let mut doc: Value = serde_json::to_value(State::new()).unwrap();
        doc["servers"] = serde_json::json!({});
        doc["serverz"] = serde_json::json!({});
        let err = parse_state(Path::new("/h/state.json"), doc.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("serverz"), "{err}");
    }

    /// A version-3 file: settings inside the state.
    fn v3_doc(settings: Value) -> String {
        serde_json::json!({
            "version": 3, "serial": 5, "lineage": "0b6f7f38-3f5a-4c39-9d7e-0f6d3e0c1a11",
            "servers": {}, "deployments": {}, "settings": settings
        })
        .to_string()
    }

    #[test]
    fn version_3_settings_move_out_of_the_state() {
        let doc = v3_doc(serde_json::json!({"email": "ops@example.com", "timezone": "UTC"}));
        let parsed = parse_state(Path::new("state.json"), doc.as_bytes()).unwrap();
        assert!(parsed.migrated);
        assert_eq!(parsed.state.version, STATE_VERSION);
        assert_eq!(parsed.state.serial, 5);
        let settings = parsed.moved_settings.expect("the settings are handed over");
        assert_eq!(settings.email.as_deref(), Some("ops@example.com"));
        assert_eq!(settings.timezone.as_deref(), Some("UTC"));
    }

    #[test]
    fn version_3_settings_with_an_unknown_key_or_bad_value_are_corrupt_naming_it() {
        for (settings, named) in [
            (serde_json::json!({"emial": "x@example.com"}), "emial"),
            (serde_json::json!({"email": "nope"}), "settings.email"),
        ] {
            let err =
                parse_state(Path::new("state.json"), v3_doc(settings).as_bytes()).unwrap_err();
            assert!(matches!(err, StoreError::CorruptState { .. }), "{err}");
            assert!(err.to_string().contains(named), "{err}");
        }
    }
}
