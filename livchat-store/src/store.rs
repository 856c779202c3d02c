//! The `Store` trait: load the state, and change it through one transactional update.
//!
//! ```text
//!   livchat-core ──(Arc<dyn Store>)──▶ Store ◀── JsonFileStore (<home>/state.json, locked, atomic)
//!                                          ◀── MemoryStore   (tests, same semantics)
//!                                          ◀── MockStore     (feature `mock`)
//! ```

use std::sync::Mutex;

use crate::error::StoreError;
use crate::state::State;

/// The closure type of [`Store::update`].
pub type UpdateFn<'a> = dyn FnMut(&mut State) -> Result<(), StoreError> + 'a;

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
}

/// Generic conveniences over [`Store`] (kept out of the trait so it stays object safe).
pub trait StoreExt: Store {
    /// Like [`Store::update`] with a `FnOnce` closure that can return a value.
    fn update_with<T>(
        &self,
        operation: &str,
        f: impl FnOnce(&mut State) -> Result<T, StoreError>,
    ) -> Result<(State, T), StoreError> {
        let mut f = Some(f);
        let mut out = None;
        let state = self.update(operation, &mut |s: &mut State| {
            let f = f.take().ok_or_else(|| {
                StoreError::Rejected(
                    "internal error: the update closure was called twice".to_string(),
                )
            })?;
            out = Some(f(s)?);
            Ok(())
        })?;
        let out = out.ok_or_else(|| {
            StoreError::Rejected("internal error: the update closure was not called".to_string())
        })?;
        Ok((state, out))
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

/// An in-memory store with the same update semantics as the file store (for tests of the
/// layers above; the conformance suite in `tests/` runs against both).
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
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
}
