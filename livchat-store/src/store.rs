//! The `Store` trait: load the state and change it through one transactional update; read
//! and change job records one at a time (they live outside the state, see `job_files.rs`).
//!
//! ```text
//!   livchat-core ──(Arc<dyn Store>)──▶ Store ◀── JsonFileStore (<home>/state.json and
//!                                                <home>/jobs/<id>.json, locked, atomic)
//!                                          ◀── MemoryStore   (tests, same semantics)
//!                                          ◀── MockStore     (feature `mock`)
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::StoreError;
use crate::settings::Settings;
use crate::state::{JobRecord, ServerRecord, State};

/// The closure type of [`Store::update`].
pub type UpdateFn<'a> = dyn FnMut(&mut State) -> Result<(), StoreError> + 'a;

/// The closure type of [`Store::update_settings`].
pub type SettingsUpdateFn<'a> = dyn FnMut(&mut Settings) -> Result<(), StoreError> + 'a;

/// The closure type of [`Store::update_job`].
pub type JobUpdateFn<'a> = dyn FnMut(&mut JobRecord) -> Result<(), StoreError> + 'a;

/// Access to the state. Implementations are safe to share between threads and, for
/// [`crate::JsonFileStore`], between processes.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait Store: Send + Sync {
    /// Reads the current state (migrated to the current version, validated). Takes no lock:
    /// writes are atomic renames, so a reader sees a whole version, old or new.
    fn load(&self) -> Result<State, StoreError>;

    /// The one way to change the state: takes the exclusive lock (recording `operation` as
    /// the holder's operation), reads the current state, calls `f` once on a copy and, if `f`
    /// returns `Ok` and changed something, validates the result and writes it atomically with
    /// `serial + 1` (keeping the previous version as the backup). If `f` returns an error,
    /// nothing is written and that error is returned. If `f` changed nothing, nothing is
    /// written and the serial stays. `f` must not change `version`, `serial` or `lineage`.
    ///
    /// Returns the state as it is after the update.
    fn update<'a>(&self, operation: &str, f: &mut UpdateFn<'a>) -> Result<State, StoreError>;

    /// The servers alone, for reads that need nothing else (`server list`): the file store
    /// skips the rest of the state without building it.
    fn servers(&self) -> Result<BTreeMap<String, ServerRecord>, StoreError> {
        Ok(self.load()?.servers)
    }

    /// One server's record, for the many reads that need one: the file store takes it from
    /// its parsed copy without copying the rest of the state.
    fn server(&self, name: &str) -> Result<Option<ServerRecord>, StoreError> {
        Ok(self.load()?.servers.remove(name))
    }

    /// Checks that the home is initialised and of a version this build reads (migrating an
    /// older one), without reading more of the state than that takes.
    fn ensure_ready(&self) -> Result<(), StoreError> {
        self.load().map(|_| ())
    }

    /// A number that changes whenever the state may have changed since the last call, for
    /// a process that caches what it computes from the state (the REST service's answers);
    /// `None` when the store cannot tell cheaply, and the caller computes afresh.
    fn state_generation(&self) -> Option<u64> {
        None
    }

    /// The user settings. They are kept apart from the state, so changing one rewrites a few
    /// hundred bytes, not a state of a thousand servers.
    fn settings(&self) -> Result<Settings, StoreError>;

    /// Changes the settings under the same lock as [`Store::update`]: `f` runs on a copy and,
    /// when it returns `Ok` and changed something, the result is validated and written
    /// atomically. On error nothing is written. Returns the settings as they are after.
    fn update_settings<'a>(
        &self,
        operation: &str,
        f: &mut SettingsUpdateFn<'a>,
    ) -> Result<Settings, StoreError>;

    /// One job, or `None` when no job has that id.
    fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError>;

    /// Every job, in id order (ids begin with their creation time).
    fn jobs(&self) -> Result<Vec<JobRecord>, StoreError>;

    /// The queued and running jobs, in id order; cheap however many jobs have ended.
    fn live_jobs(&self) -> Result<Vec<JobRecord>, StoreError>;

    /// Records a new job, under the same lock as [`Store::update`]. When `exclusive` and the
    /// job has a server, a live job of a live process holding that server
    /// ([`JobRecord::occupies`]) wins: nothing is written and that job is returned.
    fn insert_job(&self, job: &JobRecord, exclusive: bool)
    -> Result<Option<JobRecord>, StoreError>;

    /// Changes one job under the lock: `f` runs on the current record and, when it returns
    /// `Ok` and changed something, the record is validated and written. `None` when no job has
    /// that id (nothing is called). `f` must not change the id.
    fn update_job<'a>(
        &self,
        id: &str,
        operation: &str,
        f: &mut JobUpdateFn<'a>,
    ) -> Result<Option<JobRecord>, StoreError>;

    /// Removes jobs (records only; their logs belong to the `JobLogStore`). Unknown ids are
    /// skipped.
    fn remove_jobs(&self, ids: &[String]) -> Result<(), StoreError>;
}

/// Generic conveniences over [`Store`] (kept out of the trait so it stays object safe).
pub trait StoreExt: Store {
    /// Like [`Store::update_job`] with a `FnOnce` closure that can return a value; a missing
    /// job is `Ok(None)`.
    fn update_job_with<T>(
        &self,
        id: &str,
        operation: &str,
        f: impl FnOnce(&mut JobRecord) -> Result<T, StoreError>,
    ) -> Result<Option<(JobRecord, T)>, StoreError> {
        let mut f = Some(f);
        let mut out = None;
        let job = self.update_job(id, operation, &mut |j: &mut JobRecord| {
            let f = f.take().ok_or_else(|| {
                StoreError::Rejected(
                    "internal error: the update closure was called twice".to_string(),
                )
            })?;
            out = Some(f(j)?);
            Ok(())
        })?;
        Ok(job.zip(out))
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// The shared core of every implementation's `update`: runs `f` on a copy of `current` and
/// returns the next version to write, or `None` when nothing changed.
pub(crate) fn apply_update(
    current: &State,
    f: &mut UpdateFn<'_>,
) -> Result<Option<State>, StoreError> {
    let mut next = current.clone();
    f(&mut next)?;
    for (field, changed) in [
        ("version", next.version != current.version),
        ("serial", next.serial != current.serial),
        ("lineage", next.lineage != current.lineage),
    ] {
        if changed {
            return Err(StoreError::invalid(
                field,
                "is managed by the store and cannot be changed by an update",
            ));
        }
    }
    if next == *current {
        return Ok(None);
    }
    next.validate()?;
    next.serial = current.serial + 1;
    Ok(Some(next))
}

/// The shared core of every implementation's `update_settings`: the settings to write, or
/// `None` when `f` changed nothing.
pub(crate) fn apply_settings_update(
    current: &Settings,
    f: &mut SettingsUpdateFn<'_>,
) -> Result<Option<Settings>, StoreError> {
    let mut next = current.clone();
    f(&mut next)?;
    if next == *current {
        return Ok(None);
    }
    next.validate()?;
    Ok(Some(next))
}

/// The shared core of every implementation's `update_job`: runs `f` on a copy of `current`
/// and returns the record to write, or `None` when nothing changed.
pub(crate) fn apply_job_update(
    current: &JobRecord,
    f: &mut JobUpdateFn<'_>,
) -> Result<Option<JobRecord>, StoreError> {
    let mut next = current.clone();
    f(&mut next)?;
    if next.id != current.id {
        return Err(StoreError::invalid(
            "job id",
            "is fixed when the job is created and cannot be changed by an update",
        ));
    }
    if next == *current {
        return Ok(None);
    }
    next.validate()?;
    Ok(Some(next))
}

/// The conflict check of [`Store::insert_job`], shared by the implementations.
pub(crate) fn insert_conflict(
    job: &JobRecord,
    exclusive: bool,
    live: impl IntoIterator<Item = JobRecord>,
) -> Result<Option<JobRecord>, StoreError> {
    job.validate()?;
    let Some(server) = job.server.as_deref().filter(|_| exclusive) else {
        return Ok(None);
    };
    Ok(live
        .into_iter()
        .find(|j| j.id != job.id && j.occupies(server)))
}

/// An in-memory store with the same update semantics as the file store (for tests of the
/// layers above; the conformance suite in `tests/` runs against both).
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    settings: Mutex<Settings>,
    jobs: Mutex<BTreeMap<String, JobRecord>>,
}

impl MemoryStore {
    /// A store holding a fresh empty state.
    pub fn new() -> Self {
        Self::with_state(State::new())
    }

    /// A store holding `state` (not validated: tests may want odd states).
    pub fn with_state(state: State) -> Self {
        MemoryStore {
            state: Mutex::new(state),
            settings: Mutex::new(Settings::default()),
            jobs: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl Store for MemoryStore {
    fn load(&self) -> Result<State, StoreError> {
        Ok(self.state.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    fn update<'a>(&self, _operation: &str, f: &mut UpdateFn<'a>) -> Result<State, StoreError> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(next) = apply_update(&guard, f)? {
            *guard = next;
        }
        Ok(guard.clone())
    }

    fn settings(&self) -> Result<Settings, StoreError> {
        Ok(self
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }

    fn update_settings<'a>(
        &self,
        _operation: &str,
        f: &mut SettingsUpdateFn<'a>,
    ) -> Result<Settings, StoreError> {
        let mut guard = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(next) = apply_settings_update(&guard, f)? {
            *guard = next;
        }
        Ok(guard.clone())
    }

    fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        crate::job_files::check_job_id(id)?;
        Ok(self.jobs_guard().get(id).cloned())
    }

    fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        Ok(self.jobs_guard().values().cloned().collect())
    }

    fn live_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        Ok(self
            .jobs_guard()
            .values()
            .filter(|j| j.is_live())
            .cloned()
            .collect())
    }

    fn insert_job(
        &self,
        job: &JobRecord,
        exclusive: bool,
    ) -> Result<Option<JobRecord>, StoreError> {
        let mut jobs = self.jobs_guard();
        let live: Vec<JobRecord> = jobs.values().filter(|j| j.is_live()).cloned().collect();
        if let Some(busy) = insert_conflict(job, exclusive, live)? {
            return Ok(Some(busy));
        }
        jobs.insert(job.id.clone(), job.clone());
        Ok(None)
    }

    fn update_job<'a>(
        &self,
        id: &str,
        _operation: &str,
        f: &mut JobUpdateFn<'a>,
    ) -> Result<Option<JobRecord>, StoreError> {
        crate::job_files::check_job_id(id)?;
        let mut jobs = self.jobs_guard();
        let Some(current) = jobs.get(id) else {
            return Ok(None);
        };
        let Some(next) = apply_job_update(current, f)? else {
            return Ok(Some(current.clone()));
        };
        jobs.insert(id.to_string(), next.clone());
        Ok(Some(next))
    }

    fn remove_jobs(&self, ids: &[String]) -> Result<(), StoreError> {
        let mut jobs = self.jobs_guard();
        for id in ids {
            jobs.remove(id);
        }
        Ok(())
    }
}

impl MemoryStore {
    fn jobs_guard(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, JobRecord>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}
