//! `JsonFileStore`: the state in `<home>/state.json`, changed only under an exclusive lock
//! (`state.json.lock`) and written atomically (temp file, fsync, rename, fsync directory),
//! with the previous version kept as `state.json.bak`; jobs in `<home>/jobs/<id>.json`
//! (`job_files.rs`), written under the same lock.
//!
//! The settings are `<home>/settings.json`, changed under the same lock: a settings update
//! rewrites a few hundred bytes, not the state. A missing file means no setting is set.
//!
//! A state file of version 3 or older still holds its jobs or settings: the first access
//! migrates it on disk, under the lock: job files and the settings file first (one that
//! already exists is newer and is kept), then the state without them, so a crash in between
//! migrates again on the next access.
//!
//! Reads are served from the last parsed version while the file holds the same bytes: a
//! long-lived process (the REST service, the MCP server) answers each request without
//! re-parsing a state of a thousand servers (reading and comparing the bytes costs a small
//! fraction of parsing them), and sees at once what another process wrote. The bytes, not
//! the file's inode and mtime, are the key: a coarse mtime and a reused inode could make two
//! versions written within one clock tick look alike. A long-lived process can skip even
//! the read: [`JsonFileStore::watching_changes`] serves the parsed version while the kernel
//! reports no change to the file since it was read (`watch.rs`).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use uuid::Uuid;

use crate::error::StoreError;
use crate::fsutil;
use crate::job_files::{Durability, JobFiles, check_job_id};
use crate::lock::{self, LockConfig};
use crate::migrate::{self, Parsed, backup_path_for};
use crate::settings::Settings;
use crate::state::{JobRecord, STATE_VERSION, ServerRecord, State, validate_servers};
use crate::store::{
    JobUpdateFn, SettingsUpdateFn, Store, UpdateFn, apply_job_update, apply_settings_update,
    apply_update, insert_conflict,
};
use crate::watch::Watch;

/// File name of the state inside the home directory.
pub const STATE_FILE: &str = "state.json";

/// File name of the settings inside the home directory, beside the state.
pub const SETTINGS_FILE: &str = "settings.json";

/// Servers by name, as a servers-only read returns them.
type Servers = BTreeMap<String, ServerRecord>;

/// The state file store. Cheap to create; holds no file open between calls.
#[derive(Debug)]
pub struct JsonFileStore {
    path: PathBuf,
    lock: LockConfig,
    /// The lineage this instance has seen; a different one on disk later means the file was
    /// replaced by another home's state, and this instance refuses to touch it.
    seen_lineage: Mutex<Option<Uuid>>,
    /// The last version read or written, with the bytes it was parsed from.
    cached: Mutex<Option<Cached<State>>>,
    /// The last servers-only read, with the bytes it was parsed from.
    cached_servers: Mutex<Option<Cached<Servers>>>,
    /// Change notices for the state file, when this instance watches it.
    watch: Option<Watch>,
    jobs: JobFiles,
    /// Set once this instance has seen a state file of the current version, so job calls
    /// need not read the state again to know its jobs were moved out.
    current_version_seen: AtomicBool,
}

/// A parsed version and the bytes it came from.
#[derive(Debug)]
struct Cached<T> {
    bytes: Vec<u8>,
    value: T,
    /// The watch's generation taken before `bytes` were read; `None` when unknown (not
    /// watching, or written by this instance, whose own notice is still to come).
    generation: Option<u64>,
}

impl<T> Cached<T> {
    fn new(bytes: Vec<u8>, value: T, generation: Option<u64>) -> Option<Self> {
        Some(Cached {
            bytes,
            value,
            generation,
        })
    }

    /// The value when the file still holds these bytes, noting that it did at `generation`.
    fn of_bytes(&mut self, bytes: &[u8], generation: Option<u64>) -> Option<&T> {
        (self.bytes == bytes).then(|| {
            self.generation = generation;
            &self.value
        })
    }

    /// The value when no change was reported since it was read.
    fn of_generation(&self, generation: Option<u64>) -> Option<&T> {
        (generation.is_some() && self.generation == generation).then_some(&self.value)
    }
}

/// Identity of a file version, to notice a writer that ignored the lock.
#[derive(Debug, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}

impl JsonFileStore {
    /// The store of the home directory `home` (`<home>/state.json`).
    pub fn new(home: impl AsRef<Path>) -> Self {
        Self::at_path(home.as_ref().join(STATE_FILE))
    }

    /// A store on an explicit state file path.
    pub fn at_path(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        JsonFileStore {
            jobs: JobFiles::beside(&path),
            path,
            lock: LockConfig::default(),
            seen_lineage: Mutex::new(None),
            cached: Mutex::new(None),
            cached_servers: Mutex::new(None),
            watch: None,
            current_version_seen: AtomicBool::new(false),
        }
    }

    /// Sets how long `update` waits for a busy lock.
    pub fn with_lock_config(mut self, lock: LockConfig) -> Self {
        self.lock = lock;
        self
    }

    /// Watches the state file for changes (inotify), for a process that serves many reads:
    /// a read while no change was reported costs no file read. Without inotify, reads keep
    /// comparing the file's bytes. A change made on another machine through a network file
    /// system is not reported; do not share a home that way with a long-lived process.
    pub fn watching_changes(mut self) -> Self {
        self.watch = Watch::new(&self.path);
        self
    }

    /// A number that changes whenever the state file may have changed since the last call;
    /// `None` when this instance does not watch the file.
    pub fn generation(&self) -> Option<u64> {
        self.watch.as_ref().and_then(Watch::generation)
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The backup of the previous version (`state.json.bak`).
    pub fn backup_path(&self) -> PathBuf {
        backup_path_for(&self.path)
    }

    /// The lock file (`state.json.lock`).
    pub fn lock_path(&self) -> PathBuf {
        lock::lock_path_for(&self.path)
    }

    /// Creates the state file with a fresh lineage if it does not exist; otherwise loads and
    /// checks the existing one (never overwrites it). Returns the state and whether it was
    /// created.
    pub fn initialize(&self) -> Result<(State, bool), StoreError> {
        let _guard = lock::acquire(&self.lock_path(), "init", &self.lock)?;
        match self.read(true) {
            Ok((state, _)) => Ok((state, false)),
            Err(StoreError::NotInitialized { .. }) => {
                let state = State::new();
                fsutil::atomic_replace(&self.path, &to_bytes(&state), None)?;
                self.check_lineage(&state)?;
                Ok((state, true))
            }
            Err(e) => Err(e),
        }
    }

    /// Reads the state; `locked` says whether the caller holds the lock, which migrating an
    /// older file on disk needs (it is taken here otherwise).
    fn read(&self, locked: bool) -> Result<(State, FileStamp), StoreError> {
        let generation = self.generation();
        let bytes = self.read_bytes()?;
        self.read_from(bytes, generation, locked)
    }

    /// [`JsonFileStore::read`] of `bytes` already read, with the watch's `generation` taken
    /// before they were.
    fn read_from(
        &self,
        bytes: Vec<u8>,
        generation: Option<u64>,
        locked: bool,
    ) -> Result<(State, FileStamp), StoreError> {
        let stamp = self.stamp()?;
        if let Some(state) = self
            .cache()
            .as_mut()
            .and_then(|c| c.of_bytes(&bytes, generation))
        {
            return Ok((state.clone(), stamp));
        }
        let parsed = migrate::parse_state(&self.path, &bytes)?;
        if parsed.migrated {
            if !locked {
                let _guard = lock::acquire(&self.lock_path(), "state migration", &self.lock)?;
                return self.read(true);
            }
            return self.finish_migration(parsed);
        }
        self.current_version_seen.store(true, Ordering::Relaxed);
        *self.cache() = Cached::new(bytes, parsed.state.clone(), generation);
        Ok((parsed.state, stamp))
    }

    /// Writes what a migration produced (the caller holds the lock): the jobs first, then the
    /// state without them.
    fn finish_migration(&self, parsed: Parsed) -> Result<(State, FileStamp), StoreError> {
        for job in &parsed.moved_jobs {
            if self.jobs.read(&job.id)?.is_none() {
                self.jobs.write(job, Durability::Durable)?;
            }
        }
        if let Some(settings) = &parsed.moved_settings
            && self.read_settings()?.is_none()
        {
            self.write_settings(settings)?;
        }
        let bytes = to_bytes(&parsed.state);
        fsutil::atomic_replace(&self.path, &bytes, Some(&self.backup_path()))?;
        self.current_version_seen.store(true, Ordering::Relaxed);
        *self.cache() = Cached::new(bytes, parsed.state.clone(), None);
        Ok((parsed.state, self.stamp()?))
    }

    /// Makes sure an older state file has given its jobs to the job files (the caller holds
    /// the lock when `locked`).
    fn ensure_jobs_moved_out(&self, locked: bool) -> Result<(), StoreError> {
        match self.ensure_current(locked) {
            Ok(()) | Err(StoreError::NotInitialized { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Makes sure the state file exists and is of the current version, migrating an older
    /// one (the caller holds the lock when `locked`). The file's first lines usually tell,
    /// so a command that needs only the settings or a job never parses the servers.
    fn ensure_current(&self, locked: bool) -> Result<(), StoreError> {
        if self.current_version_seen.load(Ordering::Relaxed) {
            return Ok(());
        }
        if let Some(header) = crate::state_header::peek(&self.path)?
            && header.version == u64::from(STATE_VERSION)
        {
            self.check_lineage_id(header.lineage)?;
            self.current_version_seen.store(true, Ordering::Relaxed);
            return Ok(());
        }
        self.read(locked).map(|_| ())
    }

    fn settings_path(&self) -> PathBuf {
        self.path.with_file_name(SETTINGS_FILE)
    }

    /// The settings file's content; `None` when there is no such file.
    fn read_settings(&self) -> Result<Option<Settings>, StoreError> {
        let path = self.settings_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(&path, "read", e)),
        };
        let corrupt = |detail: String| StoreError::CorruptState {
            path: path.clone(),
            detail,
            backup: None,
            backup_serial: None,
        };
        let settings: Settings =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        settings.validate().map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(settings))
    }

    fn write_settings(&self, settings: &Settings) -> Result<(), StoreError> {
        let mut bytes = serde_json::to_vec_pretty(settings).expect("settings serialize to JSON");
        bytes.push(b'\n');
        fsutil::atomic_replace(&self.settings_path(), &bytes, None)
    }

    fn read_bytes(&self) -> Result<Vec<u8>, StoreError> {
        match std::fs::read(&self.path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotInitialized {
                path: self.path.clone(),
            }),
            Err(e) => Err(StoreError::io(&self.path, "read", e)),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Option<Cached<State>>> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stamp(&self) -> Result<FileStamp, StoreError> {
        std::fs::metadata(&self.path)
            .map(|m| FileStamp::of(&m))
            .map_err(|e| StoreError::io(&self.path, "stat", e))
    }

    fn check_lineage(&self, state: &State) -> Result<(), StoreError> {
        self.check_lineage_id(state.lineage)
    }

    fn check_lineage_id(&self, lineage: Uuid) -> Result<(), StoreError> {
        let mut seen = self.seen_lineage.lock().unwrap_or_else(|p| p.into_inner());
        match *seen {
            Some(expected) if expected != lineage => Err(StoreError::ForeignLineage {
                path: self.path.clone(),
                on_disk: lineage.to_string(),
                expected: expected.to_string(),
            }),
            _ => {
                *seen = Some(lineage);
                Ok(())
            }
        }
    }

    /// Refuses to write when the file changed since it was read (a writer ignoring the lock).
    fn check_unchanged(&self, read: &State, stamp: &FileStamp) -> Result<(), StoreError> {
        if self.stamp()? == *stamp {
            return Ok(());
        }
        let (on_disk, _) = self.read(true)?;
        if on_disk.lineage != read.lineage {
            return Err(StoreError::ForeignLineage {
                path: self.path.clone(),
                on_disk: on_disk.lineage.to_string(),
                expected: read.lineage.to_string(),
            });
        }
        if on_disk != *read {
            return Err(StoreError::NewerSerial {
                path: self.path.clone(),
                on_disk: on_disk.serial,
                read: read.serial,
            });
        }
        Ok(())
    }
}

/// Whether an update makes a job hold its server anew: live again (a retry) or live with a new
/// owner (a queued job taken over). Such a write also takes the state's lock (see `job_files`).
fn claims_server(current: &JobRecord, next: &JobRecord) -> bool {
    next.is_live() && (!current.is_live() || next.owner != current.owner)
}

fn to_bytes(state: &State) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(state).expect("the state serializes to JSON");
    bytes.push(b'\n');
    bytes
}

impl Store for JsonFileStore {
    fn load(&self) -> Result<State, StoreError> {
        let generation = self.generation();
        let unchanged = self
            .cache()
            .as_ref()
            .and_then(|c| c.of_generation(generation).cloned());
        if let Some(state) = unchanged {
            return Ok(state);
        }
        let (state, _) = self.read(false)?;
        self.check_lineage(&state)?;
        Ok(state)
    }

    fn update<'a>(&self, operation: &str, f: &mut UpdateFn<'a>) -> Result<State, StoreError> {
        let _guard = lock::acquire(&self.lock_path(), operation, &self.lock)?;
        let (current, stamp) = self.read(true)?;
        self.check_lineage(&current)?;
        let Some(next) = apply_update(&current, f)? else {
            return Ok(current);
        };
        self.check_unchanged(&current, &stamp)?;
        let bytes = to_bytes(&next);
        fsutil::atomic_replace(&self.path, &bytes, Some(&self.backup_path()))?;
        *self.cache() = Cached::new(bytes, next.clone(), None);
        Ok(next)
    }

    fn servers(&self) -> Result<BTreeMap<String, ServerRecord>, StoreError> {
        /// The top level of a state file with everything but the servers skipped unbuilt.
        #[derive(serde::Deserialize)]
        struct ServersOnly {
            version: u64,
            lineage: Uuid,
            #[serde(default)]
            servers: BTreeMap<String, ServerRecord>,
        }
        let generation = self.generation();
        let mut cached = self
            .cached_servers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(servers) = cached.as_ref().and_then(|c| c.of_generation(generation)) {
            return Ok(servers.clone());
        }
        let bytes = self.read_bytes()?;
        if let Some(state) = self
            .cache()
            .as_mut()
            .and_then(|c| c.of_bytes(&bytes, generation))
        {
            return Ok(state.servers.clone());
        }
        if let Some(servers) = cached.as_mut().and_then(|c| c.of_bytes(&bytes, generation)) {
            return Ok(servers.clone());
        }
        // Anything unusual (another version, a file that does not parse) takes the full read,
        // which migrates, reports corruption with its backup, and fills the cache.
        match serde_json::from_slice::<ServersOnly>(&bytes) {
            Ok(view)
                if view.version == u64::from(STATE_VERSION)
                    && validate_servers(&view.servers).is_ok() =>
            {
                self.check_lineage_id(view.lineage)?;
                self.current_version_seen.store(true, Ordering::Relaxed);
                *cached = Cached::new(bytes, view.servers.clone(), generation);
                Ok(view.servers)
            }
            _ => self.load().map(|s| s.servers),
        }
    }

    fn server(&self, name: &str) -> Result<Option<ServerRecord>, StoreError> {
        let generation = self.generation();
        if let Some(found) = self
            .cache()
            .as_ref()
            .and_then(|c| c.of_generation(generation))
            .map(|s| s.servers.get(name).cloned())
        {
            return Ok(found);
        }
        let bytes = self.read_bytes()?;
        if let Some(found) = self
            .cache()
            .as_mut()
            .and_then(|c| c.of_bytes(&bytes, generation))
            .map(|s| s.servers.get(name).cloned())
        {
            return Ok(found);
        }
        let (mut state, _) = self.read_from(bytes, generation, false)?;
        self.check_lineage(&state)?;
        Ok(state.servers.remove(name))
    }

    fn state_generation(&self) -> Option<u64> {
        self.generation()
    }

    fn ensure_ready(&self) -> Result<(), StoreError> {
        self.ensure_current(false)
    }

    fn settings(&self) -> Result<Settings, StoreError> {
        self.ensure_current(false)?;
        Ok(self.read_settings()?.unwrap_or_default())
    }

    fn update_settings<'a>(
        &self,
        operation: &str,
        f: &mut SettingsUpdateFn<'a>,
    ) -> Result<Settings, StoreError> {
        let _guard = lock::acquire(&self.lock_path(), operation, &self.lock)?;
        self.ensure_current(true)?;
        let current = self.read_settings()?.unwrap_or_default();
        match apply_settings_update(&current, f)? {
            Some(next) => {
                self.write_settings(&next)?;
                Ok(next)
            }
            None => Ok(current),
        }
    }

    fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.ensure_jobs_moved_out(false)?;
        self.jobs.read(id)
    }

    fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.ensure_jobs_moved_out(false)?;
        self.jobs.all()
    }

    fn live_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.ensure_jobs_moved_out(false)?;
        self.jobs.live()
    }

    fn insert_job(
        &self,
        job: &JobRecord,
        exclusive: bool,
    ) -> Result<Option<JobRecord>, StoreError> {
        let _guard = lock::acquire(&self.lock_path(), "job create", &self.lock)?;
        self.ensure_jobs_moved_out(true)?;
        let live = if exclusive {
            self.jobs.live()?
        } else {
            Vec::new()
        };
        if let Some(busy) = insert_conflict(job, exclusive, live)? {
            return Ok(Some(busy));
        }
        self.jobs.write(job, Durability::Durable)?;
        Ok(None)
    }

    fn update_job<'a>(
        &self,
        id: &str,
        operation: &str,
        f: &mut JobUpdateFn<'a>,
    ) -> Result<Option<JobRecord>, StoreError> {
        self.ensure_jobs_moved_out(false)?;
        check_job_id(id)?;
        self.jobs.ensure_dirs()?;
        let _stripe = lock::acquire(&self.jobs.lock_path(id), operation, &self.lock)?;
        let Some(current) = self.jobs.read(id)? else {
            return Ok(None);
        };
        let Some(next) = apply_job_update(&current, f)? else {
            return Ok(Some(current));
        };
        let _home = if claims_server(&current, &next) {
            Some(lock::acquire(&self.lock_path(), operation, &self.lock)?)
        } else {
            None
        };
        self.jobs
            .write(&next, Durability::of_update(&current, &next))?;
        Ok(Some(next))
    }

    fn remove_jobs(&self, ids: &[String]) -> Result<(), StoreError> {
        for id in ids {
            check_job_id(id)?;
        }
        self.jobs.ensure_dirs()?;
        let mut stripes: Vec<PathBuf> = ids.iter().map(|id| self.jobs.lock_path(id)).collect();
        stripes.sort();
        stripes.dedup();
        let _stripes = stripes
            .iter()
            .map(|path| lock::acquire(path, "job cleanup", &self.lock))
            .collect::<Result<Vec<_>, _>>()?;
        let _home = lock::acquire(&self.lock_path(), "job cleanup", &self.lock)?;
        for id in ids {
            self.jobs.remove(id)?;
        }
        Ok(())
    }
}
