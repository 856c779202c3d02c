//! SIGKILL at random moments, at least 200 times, for the state and for the vault: after every
//! kill the file parses and is the last version the child reported as committed, or the one
//! after it (committed but killed before it could report). No reported update is ever lost.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use livchat_store::{
    ExposeSecret, InitOptions, JsonFileStore, SecretString, Store, Vault, init_home, init_home_with,
};
use rand::{Rng, SeedableRng};

const KILLS: usize = 220;

/// How long a random kill may wait on this machine (debug builds under load vary by 10x):
/// the worker's start-up plus about two commits, measured by one calibration run, so kills
/// land in start-up and in every phase of a commit. The calibration run's commits
/// count like any other's; returns the wait bound and the last serial it reported.
fn calibrate(args: &[&str], envs: &[(&str, &str)]) -> (Duration, u64) {
    let started = Instant::now();
    let mut child = common::KillOnDrop(common::spawn_worker(args, envs));
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut next = || -> u64 {
        lines
            .next()
            .expect("the worker commits")
            .unwrap()
            .parse()
            .unwrap()
    };
    next();
    let first = started.elapsed();
    next();
    let third = next();
    let per_commit = (started.elapsed() - first) / 2;
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    // The worker may have committed once more after its third line: read what it left.
    let mut last = third;
    for line in lines.map_while(Result::ok) {
        last = line.parse().unwrap_or(last);
    }
    let max = first + per_commit * 2;
    eprintln!("calibration: first commit after {first:?}, then {per_commit:?} per commit");
    (max, last)
}

/// Load on a shared 2-core machine changes during the run: widen the wait bound after a run
/// that committed nothing, narrow it after one that committed many, so most runs are killed
/// around a commit rather than all in start-up or all late.
fn adapt(max: Duration, commits_this_run: u64) -> Duration {
    match commits_this_run {
        0 => max.mul_f64(1.25).min(Duration::from_secs(5)),
        3.. => max.mul_f64(0.8),
        _ => max,
    }
}

/// Starts the worker, lets it run for a random moment up to `max`, kills it with SIGKILL and
/// returns the last complete line it printed.
fn run_and_kill(
    args: &[&str],
    envs: &[(&str, &str)],
    max: Duration,
    rng: &mut impl Rng,
) -> Option<u64> {
    let mut child = common::KillOnDrop(common::spawn_worker(args, envs));
    std::thread::sleep(max.mul_f64(rng.gen_range(0.0..1.0)));
    child.0.kill().expect("SIGKILL the worker");
    let status = child.0.wait().expect("reap the worker");
    let mut out = Vec::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        !err.contains("panicked"),
        "the worker failed on its own (status {status}): {err}"
    );
    common::complete_lines(&out)
        .last()
        .map(|l| l.parse().expect("the worker prints numbers"))
}

fn seeded_rng() -> rand::rngs::StdRng {
    let seed: u64 = std::env::var("LIVCHAT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().r#gen());
    eprintln!("crash test seed: {seed} (set LIVCHAT_CRASH_SEED to replay)");
    rand::rngs::StdRng::seed_from_u64(seed)
}

#[test]
fn state_survives_sigkill_at_random_moments_without_losing_a_committed_update() {
    let dir = tempfile::tempdir().unwrap();
    init_home(dir.path()).unwrap();
    let home = dir.path().to_str().unwrap();
    let mut rng = seeded_rng();
    let (mut max, calibrated) = calibrate(&["state-loop", home], &[]);
    let mut last_reported = JsonFileStore::new(dir.path()).load().unwrap().serial;
    assert!(
        last_reported >= calibrated,
        "the calibration run lost a commit"
    );
    let mut committed_but_unreported = 0;
    for round in 0..KILLS {
        let before = last_reported;
        if let Some(n) = run_and_kill(&["state-loop", home], &[], max, &mut rng) {
            last_reported = n;
        }
        // A fresh store each time, as a new process would open it.
        let store = JsonFileStore::new(dir.path());
        let state = store
            .load()
            .unwrap_or_else(|e| panic!("round {round}: state.json unreadable after SIGKILL: {e}"));
        assert!(
            state.serial == last_reported || state.serial == last_reported + 1,
            "round {round}: on disk serial {}, last reported {last_reported}",
            state.serial
        );
        if state.serial == last_reported + 1 {
            committed_but_unreported += 1;
            last_reported = state.serial;
        }
        max = adapt(max, state.serial - before);
        if let Err(e) = common::matches_crash_loop(&state) {
            panic!("round {round}: {e}");
        }
        if store.backup_path().exists() {
            let bytes = std::fs::read(store.backup_path()).unwrap();
            let backup: livchat_store::State = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("round {round}: backup unreadable: {e}"));
            assert!(
                backup.serial + 1 == state.serial || backup.serial == state.serial,
                "round {round}: backup serial {} next to state serial {}",
                backup.serial,
                state.serial
            );
            common::matches_crash_loop(&backup).unwrap();
        }
    }
    eprintln!(
        "{KILLS} kills, final serial {last_reported}, {committed_but_unreported} kills between commit and report"
    );
    assert!(
        last_reported >= KILLS as u64 / 4,
        "the worker committed only {last_reported} updates in {KILLS} runs: the kills did not hit a working loop"
    );
}

/// Fewer rounds than the state's: a job write is the same atomic replace, plus its marker.
const JOB_KILLS: usize = 60;

#[test]
fn a_job_file_survives_sigkill_at_random_moments_and_a_live_job_always_has_its_marker() {
    let dir = tempfile::tempdir().unwrap();
    init_home(dir.path()).unwrap();
    let home = dir.path().to_str().unwrap();
    let marker = dir.path().join("jobs/live").join(common::CRASH_JOB);
    let mut rng = seeded_rng();
    let (mut max, mut last_reported) = calibrate(&["job-loop", home], &[]);
    for round in 0..JOB_KILLS {
        let before = last_reported;
        if let Some(n) = run_and_kill(&["job-loop", home], &[], max, &mut rng) {
            last_reported = n;
        }
        let store = JsonFileStore::new(dir.path());
        let job = store
            .job(common::CRASH_JOB)
            .unwrap_or_else(|e| panic!("round {round}: job unreadable after SIGKILL: {e}"))
            .expect("the job exists");
        let n = u64::from(job.attempt);
        assert!(
            n == last_reported || n == last_reported + 1,
            "round {round}: on disk attempt {n}, last reported {last_reported}"
        );
        last_reported = n;
        max = adapt(max, n - before);
        common::matches_job_loop(&job).unwrap_or_else(|e| panic!("round {round}: {e}"));
        // A crash may leave the marker of an ended job (skipped by readers), never a live
        // job without one: that job would be invisible to the one-job-per-server check.
        if job.is_live() {
            assert!(
                marker.exists(),
                "round {round}: running job without its marker"
            );
            assert_eq!(store.live_jobs().unwrap().len(), 1, "round {round}");
        } else {
            assert!(store.live_jobs().unwrap().is_empty(), "round {round}");
        }
    }
    eprintln!("{JOB_KILLS} kills, final attempt {last_reported}");
    assert!(
        last_reported >= JOB_KILLS as u64 / 4,
        "the worker committed only {last_reported} updates in {JOB_KILLS} runs"
    );
}

#[test]
fn vault_survives_sigkill_at_random_moments_without_losing_a_committed_secret() {
    let dir = tempfile::tempdir().unwrap();
    let password = "crash-test-password";
    init_home_with(
        dir.path(),
        InitOptions {
            vault_password: Some(SecretString::from(password.to_string())),
            vault_label: None,
        },
    )
    .unwrap();
    let home = dir.path().to_str().unwrap();
    let vault_path = dir.path().join("credentials.vault");
    let mut rng = seeded_rng();
    let envs = [("LIVCHAT_VAULT_PASSWORD", password)];
    let (mut max, mut last_reported) = calibrate(&["vault-loop", home], &envs);
    for round in 0..KILLS {
        let before = last_reported;
        if let Some(n) = run_and_kill(&["vault-loop", home], &envs, max, &mut rng) {
            last_reported = n;
        }
        let vault = Vault::open(&vault_path, SecretString::from(password.to_string()), None)
            .unwrap_or_else(|e| panic!("round {round}: vault unreadable after SIGKILL: {e}"));
        let names = vault.names().unwrap();
        let count = names.len() as u64;
        assert!(
            count == last_reported || count == last_reported + 1,
            "round {round}: vault holds {count} secrets, last reported {last_reported}"
        );
        last_reported = count;
        max = adapt(max, count - before);
        for n in 1..=count {
            let value = vault
                .get(&format!("k{n}"))
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: k{n} lost"));
            assert_eq!(
                value.expose_secret(),
                common::vault_value(n),
                "round {round}: k{n}"
            );
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&vault_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "round {round}");
        // No plaintext anywhere in the directory, temp files included.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
            assert!(
                !bytes.windows(6).any(|w| w == b"value "),
                "round {round}: plaintext found on disk"
            );
        }
    }
    eprintln!("{KILLS} kills, {last_reported} secrets committed");
    assert!(
        last_reported >= 50,
        "only {last_reported} secrets committed in {KILLS} runs"
    );
}
