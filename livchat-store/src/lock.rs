//! An exclusive, cross-process lock on a `<file>.lock` beside the protected file.
//!
//! The exclusion itself is the operating system's advisory lock (`flock` through std's
//! `File::try_lock`), which the kernel releases when the holder dies, even by SIGKILL. The lock
//! file's *content* is only information for humans and for the error of a waiting writer: who
//! holds it (pid, host, operation, since). The file is never deleted (deleting a lock file
//! races with a waiter that has it open); the holder empties it on release, so content found
//! by a writer that has just acquired the OS lock was left by a holder that died: it is
//! reported (tracing warning) and overwritten.
//!
//! Threads of one process first queue at a gate per lock file (tickets served in order) and
//! only then try the file lock: a release wakes the next thread of the same process at once,
//! where polling the file lock with backoff would sleep through the short gaps between the
//! writes of a running job (a REST request creating a job waited tens of milliseconds that
//! way). Other processes still poll.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Who holds a lock, as written into the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Process id of the holder.
    pub pid: u32,
    /// Host name of the machine the holder runs on.
    pub host: String,
    /// The operation the holder is performing (`deploy n8n`, `vault set`, ...).
    pub operation: String,
    /// When the holder acquired the lock.
    pub since: DateTime<Utc>,
}

impl fmt::Display for LockInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} on host {} (operation `{}`, since {})",
            self.pid,
            self.host,
            self.operation,
            self.since
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }
}

/// How long a writer waits for a busy lock, and how it backs off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockConfig {
    /// Give up (with an error naming the holder) after waiting this long.
    pub timeout: Duration,
    /// First pause between attempts; doubled after each attempt (with jitter).
    pub initial_backoff: Duration,
    /// Longest pause between attempts.
    pub max_backoff: Duration,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            timeout: Duration::from_secs(30),
            // Updates hold the lock for milliseconds; polling at most every 50 ms keeps a
            // waiter's latency low at negligible cost.
            initial_backoff: Duration::from_millis(2),
            max_backoff: Duration::from_millis(50),
        }
    }
}

/// A held lock; released (content emptied, OS lock dropped) when this guard is dropped.
#[derive(Debug)]
pub(crate) struct LockGuard {
    file: File,
    /// Dropped after the file lock is released (fields drop after `Drop::drop`).
    _pass: Pass,
}

/// The in-process queue in front of one lock file: tickets served in the order they were
/// drawn, so a thread that releases and at once asks again (a job writing its progress) goes
/// behind the threads already waiting instead of taking the lock back before they wake.
#[derive(Debug, Default)]
struct Gate {
    queue: Mutex<Queue>,
    turn: Condvar,
}

#[derive(Debug, Default)]
struct Queue {
    next: u64,
    serving: u64,
    /// Tickets whose threads stopped waiting (timed out); skipped when their turn comes.
    abandoned: BTreeSet<u64>,
}

/// This thread's turn at a gate, given back on drop.
#[derive(Debug)]
struct Pass(Arc<Gate>);

impl Drop for Pass {
    fn drop(&mut self) {
        let mut queue = self.0.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.serving += 1;
        let Queue {
            serving, abandoned, ..
        } = &mut *queue;
        while abandoned.remove(serving) {
            *serving += 1;
        }
        drop(queue);
        self.0.turn.notify_all();
    }
}

fn gate_of(lock_path: &Path) -> Arc<Gate> {
    static GATES: OnceLock<Mutex<HashMap<PathBuf, Arc<Gate>>>> = OnceLock::new();
    let mut gates = GATES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    Arc::clone(gates.entry(lock_path.to_path_buf()).or_default())
}

/// Waits for this process's turn at the lock file until `deadline`; `None` when it passed.
fn pass(lock_path: &Path, deadline: Instant) -> Option<Pass> {
    let gate = gate_of(lock_path);
    let mut queue = gate.queue.lock().unwrap_or_else(|p| p.into_inner());
    let ticket = queue.next;
    queue.next += 1;
    while queue.serving != ticket {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            queue.abandoned.insert(ticket);
            return None;
        };
        queue = gate
            .turn
            .wait_timeout(queue, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    drop(queue);
    Some(Pass(gate))
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Emptying the info marks a clean release; if this fails the next holder merely
        // reports a stale lock. The OS lock is released when `file` is closed right after.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// The host name, for lock info. Read from procfs: no unsafe `gethostname` call needed.
pub(crate) fn host_name() -> String {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown-host".to_string())
    })
    .clone()
}

/// The path of the lock file protecting `target` (`state.json` -> `state.json.lock`).
pub(crate) fn lock_path_for(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    target.with_file_name(name)
}

/// Reads the holder information from a lock file; `None` if empty, missing or unparsable.
pub fn read_lock_info(lock_path: &Path) -> Option<LockInfo> {
    let text = std::fs::read_to_string(lock_path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Acquires the lock at `lock_path`, waiting with exponential backoff up to `config.timeout`.
pub(crate) fn acquire(
    lock_path: &Path,
    operation: &str,
    config: &LockConfig,
) -> Result<LockGuard, StoreError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_path)
        .map_err(|e| StoreError::io(lock_path, "open the lock file", e))?;
    let started = Instant::now();
    let Some(pass) = pass(lock_path, started + config.timeout) else {
        return Err(StoreError::Locked {
            path: lock_path.to_path_buf(),
            holder: read_lock_info(lock_path),
            waited: started.elapsed(),
        });
    };
    let mut backoff = config.initial_backoff;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                let waited = started.elapsed();
                if waited >= config.timeout {
                    return Err(StoreError::Locked {
                        path: lock_path.to_path_buf(),
                        holder: read_lock_info(lock_path),
                        waited,
                    });
                }
                let jitter = rand::thread_rng().gen_range(0.5..1.5);
                let pause = backoff
                    .mul_f64(jitter)
                    .min(config.timeout.saturating_sub(waited))
                    .max(Duration::from_millis(1));
                std::thread::sleep(pause);
                backoff = (backoff * 2).min(config.max_backoff);
            }
            Err(TryLockError::Error(e)) => {
                return Err(StoreError::io(lock_path, "lock the lock file", e));
            }
        }
    }

    let mut previous = String::new();
    let _ = file.read_to_string(&mut previous);
    if !previous.trim().is_empty() {
        match serde_json::from_str::<LockInfo>(&previous) {
            Ok(stale) => tracing::warn!(
                lock = %lock_path.display(),
                "taking over a lock left by {stale}, which ended without releasing it"
            ),
            Err(_) => tracing::warn!(
                lock = %lock_path.display(),
                "taking over a lock whose holder ended without releasing it"
            ),
        }
    }

    let info = LockInfo {
        pid: std::process::id(),
        host: host_name(),
        operation: operation.to_string(),
        since: Utc::now(),
    };
    let text = serde_json::to_string(&info).expect("LockInfo serializes");
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(text.as_bytes()))
        .map_err(|e| StoreError::io(lock_path, "write the lock info", e))?;
    Ok(LockGuard { file, _pass: pass })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drawn(path: &Path) -> u64 {
        gate_of(path).queue.lock().unwrap().next
    }

    #[test]
    fn a_thread_that_asks_again_goes_behind_the_one_already_waiting() {
        let path = PathBuf::from(format!("/gate-test/{}/order", std::process::id()));
        let far = || Instant::now() + Duration::from_secs(60);
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = pass(&path, far()).unwrap();
        let waiter = {
            let (path, order) = (path.clone(), Arc::clone(&order));
            std::thread::spawn(move || {
                let _turn = pass(&path, far()).unwrap();
                order.lock().unwrap().push("waiter");
            })
        };
        // Bounded: the waiter draws its ticket at once; give up after 10 s.
        let until = Instant::now() + Duration::from_secs(10);
        while drawn(&path) < 2 && Instant::now() < until {
            std::thread::yield_now();
        }
        assert_eq!(drawn(&path), 2, "the waiter never queued");
        drop(first);
        let again = pass(&path, far()).unwrap();
        order.lock().unwrap().push("again");
        drop(again);
        waiter.join().unwrap();
        assert_eq!(*order.lock().unwrap(), ["waiter", "again"]);
    }

    #[test]
    fn a_ticket_given_up_is_skipped_when_its_turn_comes() {
        let path = PathBuf::from(format!("/gate-test/{}/skip", std::process::id()));
        let held = pass(&path, Instant::now()).unwrap();
        assert!(pass(&path, Instant::now()).is_none(), "the gate was taken");
        drop(held);
        assert!(
            pass(&path, Instant::now()).is_some(),
            "the given-up ticket blocked the next one"
        );
    }
}
