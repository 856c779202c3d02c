//! Atomic file replacement: temp file in the same directory, fsync, rename, fsync the directory
//! (the last one skipped for progress records, see [`replace_whole`]).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::StoreError;

/// `dir/.name.tmp`: hidden, in the same directory so the rename cannot cross file systems.
pub(crate) fn temp_path_for(target: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(target.file_name().unwrap_or_default());
    name.push(".tmp");
    target.with_file_name(name)
}

pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes the directory entry changes (rename, link) durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, "fsync the directory", e))
}

/// Writes `bytes` to a new temp file created with mode 0600 (never widened, never chmod-ed
/// afterwards) and fsyncs it. A temp file left by a killed writer is removed first, so the
/// `O_EXCL` create guarantees the mode and that no symlink is followed.
pub(crate) fn write_temp(target: &Path, bytes: &[u8]) -> Result<PathBuf, StoreError> {
    let tmp = temp_path_for(target);
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io(&tmp, "remove a stale temp file", e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| StoreError::io(&tmp, "create the temp file", e))?;
    file.write_all(bytes)
        .map_err(|e| StoreError::io(&tmp, "write the temp file", e))?;
    file.sync_all()
        .map_err(|e| StoreError::io(&tmp, "fsync the temp file", e))?;
    Ok(tmp)
}

/// Replaces `target` atomically with `bytes`. When `backup` is given and `target` exists, the
/// current `target` becomes `backup` first (by hard link, so no copy and no window without
/// either file). A crash at any point leaves `target` either the old or the new version.
pub(crate) fn atomic_replace(
    target: &Path,
    bytes: &[u8],
    backup: Option<&Path>,
) -> Result<(), StoreError> {
    replace_whole(target, bytes, backup)?;
    fsync_dir(parent_dir(target))
}

/// [`atomic_replace`] without making the rename durable: a crash, even a power loss, still
/// leaves `target` whole, the old or the new version (the new one's data is on disk before
/// the rename), but after a power loss it may be the old one. For records that a later write
/// supersedes anyway and whose loss costs only a repeated check (a running job's progress).
pub(crate) fn replace_whole(
    target: &Path,
    bytes: &[u8],
    backup: Option<&Path>,
) -> Result<(), StoreError> {
    let tmp = write_temp(target, bytes)?;
    if let Some(backup) = backup {
        let backup_tmp = temp_path_for(backup);
        let _ = std::fs::remove_file(&backup_tmp);
        match std::fs::hard_link(target, &backup_tmp) {
            Ok(()) => std::fs::rename(&backup_tmp, backup)
                .map_err(|e| StoreError::io(backup, "rename the backup into place", e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(&backup_tmp, "link the backup", e)),
        }
    }
    std::fs::rename(&tmp, target)
        .map_err(|e| StoreError::io(target, "rename the new version into place", e))
}
