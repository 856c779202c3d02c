//! Job records outside `state.json`: `<home>/jobs/<id>.json`, one file per job beside its log
//! (`<id>.jsonl`), each replaced atomically like the state. A job's progress then rewrites a
//! file of a few hundred bytes instead of a state of a thousand servers, and reading one job
//! reads one file.
//!
//! Queued and running jobs also have an empty marker `<home>/jobs/live/<id>`, so the checks
//! that only care about live jobs (one job per server, recovery at start-up) read a handful of
//! files, not every job ever run. The marker is created before a record turns live and removed
//! after it ended, so a crash between the two leaves at most a marker of an ended job, which
//! readers skip and the next write of that job removes.
//!
//! Creating a job holds the state's lock (`state.json.lock`), which keeps "check the server is
//! free, then insert the job" one transaction. Changing a job holds the lock of its stripe
//! (`jobs/.lock-NN`, one of [`LOCK_STRIPES`] by a hash of its id), so jobs record their
//! progress in parallel instead of queueing behind each other's fsyncs; a change that makes a
//! job live again or gives a live job a new owner (retry, adopt) also takes the state's lock,
//! after its stripe's, as an insert's check would see it. Clean-up takes the stripes of what it
//! removes, then the state's lock: every path takes stripes before the state's lock, never after.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::StoreError;
use crate::fsutil;
use crate::state::JobRecord;

/// How hard a job write insists on reaching the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Creation, a change of status, a migration: the record and its rename are on disk
    /// before the write returns.
    Durable,
    /// A running job's progress (its current step, the steps done, its result so far): whole
    /// on disk, but after a power loss the record may show the write before. The next write
    /// supersedes it anyway, and a resumed job checks each step again before applying it.
    Progress,
}

impl Durability {
    /// Progress when a live job stays in its status; anything a reader acts on (a new status,
    /// the end, a new owner with its status) is durable.
    pub(crate) fn of_update(current: &JobRecord, next: &JobRecord) -> Self {
        if next.is_live() && next.status == current.status && next.owner == current.owner {
            Self::Progress
        } else {
            Self::Durable
        }
    }
}

/// Checks a job id before it becomes part of a file name.
pub(crate) fn check_job_id(job_id: &str) -> Result<(), StoreError> {
    let ok = !job_id.is_empty()
        && job_id.len() <= 64
        && job_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "job id",
            format!(
                "`{}` is not a job id (letters, digits, '-' and '_', at most 64)",
                job_id.escape_debug()
            ),
        ))
    }
}

/// How many locks job records are spread over (see the module docs).
pub(crate) const LOCK_STRIPES: u32 = 16;

/// The job files of one home. Cheap; holds nothing open.
#[derive(Debug, Clone)]
pub(crate) struct JobFiles {
    dir: PathBuf,
    /// The directories were made (or found) once: every write and update needs them, and
    /// making sure costs syscalls a job's write would otherwise repeat each time.
    dirs_made: Arc<AtomicBool>,
}

impl JobFiles {
    /// `<dir of the state file>/jobs`.
    pub(crate) fn beside(state_file: &Path) -> Self {
        JobFiles {
            dir: fsutil::parent_dir(state_file).join("jobs"),
            dirs_made: Arc::default(),
        }
    }

    fn path(&self, id: &str) -> Result<PathBuf, StoreError> {
        check_job_id(id)?;
        Ok(self.dir.join(format!("{id}.json")))
    }

    fn live_dir(&self) -> PathBuf {
        self.dir.join("live")
    }

    /// The lock of the stripe of job `id`. FNV-1a, not std's hasher: every process and build
    /// sharing the home must pick the same stripe for a job.
    pub(crate) fn lock_path(&self, id: &str) -> PathBuf {
        let hash = id.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        self.dir.join(format!(".lock-{:02}", hash % LOCK_STRIPES))
    }

    pub(crate) fn ensure_dirs(&self) -> Result<(), StoreError> {
        if self.dirs_made.load(Ordering::Relaxed) {
            return Ok(());
        }
        let live = self.live_dir();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&live)
            .map_err(|e| StoreError::io(&live, "create the jobs directory", e))?;
        self.dirs_made.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// One job, or `None` when it has no file.
    pub(crate) fn read(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let path = self.path(id)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(&path, "read the job", e)),
        };
        let job: JobRecord =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::CorruptJob {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        if job.id != id {
            return Err(StoreError::CorruptJob {
                path,
                detail: format!("holds job `{}`, not `{id}`", job.id),
            });
        }
        Ok(Some(job))
    }

    /// Writes a job (the caller holds the state lock), keeping its live marker in step. The
    /// write is durable (directory fsynced too) unless it is [`Durability::Progress`].
    pub(crate) fn write(&self, job: &JobRecord, durability: Durability) -> Result<(), StoreError> {
        job.validate()?;
        self.ensure_dirs()?;
        let path = self.path(&job.id)?;
        let mut bytes = serde_json::to_vec_pretty(job).expect("a job serializes to JSON");
        bytes.push(b'\n');
        let replace = |path: &Path| match durability {
            Durability::Durable => fsutil::atomic_replace(path, &bytes, None),
            Durability::Progress => fsutil::replace_whole(path, &bytes, None),
        };
        if job.is_live() {
            self.mark_live(&job.id)?;
            replace(&path)
        } else {
            replace(&path)?;
            self.unmark_live(&job.id)
        }
    }

    /// Removes a job's record and marker (the caller holds the state lock).
    pub(crate) fn remove(&self, id: &str) -> Result<(), StoreError> {
        let path = self.path(id)?;
        remove_if_present(&path)?;
        self.unmark_live(id)
    }

    fn mark_live(&self, id: &str) -> Result<(), StoreError> {
        let marker = self.live_dir().join(id);
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&marker)
            .map(drop)
            .map_err(|e| StoreError::io(&marker, "mark the job live", e))
    }

    fn unmark_live(&self, id: &str) -> Result<(), StoreError> {
        remove_if_present(&self.live_dir().join(id))
    }

    /// Every job, in id order (ids start with their creation time).
    pub(crate) fn all(&self) -> Result<Vec<JobRecord>, StoreError> {
        let mut ids: Vec<String> = self
            .names(&self.dir)?
            .into_iter()
            .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
            .filter(|id| check_job_id(id).is_ok())
            .collect();
        ids.sort();
        self.read_each(&ids)
    }

    /// The queued and running jobs, in id order.
    pub(crate) fn live(&self) -> Result<Vec<JobRecord>, StoreError> {
        let mut ids: Vec<String> = self
            .names(&self.live_dir())?
            .into_iter()
            .filter(|id| check_job_id(id).is_ok())
            .collect();
        ids.sort();
        Ok(self
            .read_each(&ids)?
            .into_iter()
            .filter(JobRecord::is_live)
            .collect())
    }

    /// Reads the listed jobs, skipping any removed since the directory was listed.
    fn read_each(&self, ids: &[String]) -> Result<Vec<JobRecord>, StoreError> {
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(job) = self.read(id)? {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    /// Names of the visible entries of `dir` (none when it does not exist yet).
    fn names(&self, dir: &Path) -> Result<Vec<String>, StoreError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(dir, "list the jobs", e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io(dir, "list the jobs", e))?;
            if let Some(name) = entry.file_name().to_str()
                && !name.starts_with('.')
            {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(path, "remove", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{JobOwner, JobStatus};

    fn job(status: JobStatus) -> JobRecord {
        JobRecord {
            id: "job-20261204000000-0000abcd".into(),
            kind: "setup_server".into(),
            server: Some("demo-1".into()),
            status,
            progress: 0,
            current_step: None,
            steps_completed: Vec::new(),
            steps_remaining: vec!["connect".into(), "finalize".into()],
            params: serde_json::Value::Null,
            result: None,
            error: None,
            created_at: chrono::Utc::now(),
            started_at: None,
            finished_at: None,
            attempt: 1,
            owner: Some(JobOwner {
                pid: 1,
                host: "here".into(),
            }),
            cancel_requested: false,
        }
    }

    #[test]
    fn a_running_jobs_step_is_progress_and_every_change_a_reader_acts_on_is_durable() {
        let running = job(JobStatus::Running);
        let mut stepped = running.clone();
        stepped
            .steps_completed
            .push(stepped.steps_remaining.remove(0));
        stepped.current_step = Some("finalize".into());
        assert_eq!(
            Durability::of_update(&running, &stepped),
            Durability::Progress
        );

        let queued = job(JobStatus::Queued);
        assert_eq!(
            Durability::of_update(&queued, &running),
            Durability::Durable,
            "start"
        );
        for end in [
            JobStatus::Completed,
            JobStatus::Failed,
            JobStatus::Cancelled,
        ] {
            let mut ended = running.clone();
            ended.status = end;
            assert_eq!(Durability::of_update(&running, &ended), Durability::Durable);
        }
        let mut taken_over = running.clone();
        taken_over.owner = Some(JobOwner {
            pid: 2,
            host: "here".into(),
        });
        assert_eq!(
            Durability::of_update(&running, &taken_over),
            Durability::Durable,
            "a new owner"
        );
    }
}
