//! Change notices for the state file, for a process that serves many reads (the REST service,
//! the MCP server): an inotify watch on the home directory, drained without blocking at the
//! start of each read.
//!
//! The kernel queues the notice of a write, in place or by rename, before the writer's call
//! returns, so a read that starts after another process wrote sees the notice: a cached
//! version is served only while no notice has arrived since it was read, never after one.
//! Anything the watch cannot vouch for (a lost watch, an overflowed queue, a state file that
//! is a symbolic link) falls back to reading the file.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::Mutex;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// A watch on the directory holding one file.
#[derive(Debug)]
pub(crate) struct Watch {
    file_name: OsString,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None` once the watch can no longer vouch for the file.
    inotify: Option<Inotify>,
    generation: u64,
}

impl Watch {
    /// Watches `file` through its directory (a rename replaces the file's inode, so a watch on
    /// the file itself would go quiet). `None` when inotify is not available (the limit of
    /// instances is reached, another kernel) or the file is a symbolic link, whose target's
    /// changes the directory does not report.
    pub(crate) fn new(file: &Path) -> Option<Watch> {
        let dir = file.parent()?;
        let file_name = file.file_name()?.to_os_string();
        if std::fs::symlink_metadata(file).is_ok_and(|m| m.file_type().is_symlink()) {
            return None;
        }
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        let flags = AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_ONLYDIR;
        inotify.add_watch(dir, flags).ok()?;
        Some(Watch {
            file_name,
            inner: Mutex::new(Inner {
                inotify: Some(inotify),
                generation: 0,
            }),
        })
    }

    /// A number that stays the same while no notice about the file arrived, and changes with
    /// every one. `None` once the watch is lost: the caller reads the file instead.
    pub(crate) fn generation(&self) -> Option<u64> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Inner {
            inotify,
            generation,
        } = &mut *inner;
        loop {
            let events = match inotify.as_ref()?.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => return Some(*generation),
                Err(Errno::EINTR) => continue,
                Err(_) => {
                    *inotify = None;
                    return None;
                }
            };
            for event in events {
                let lost = AddWatchFlags::IN_IGNORED
                    | AddWatchFlags::IN_DELETE_SELF
                    | AddWatchFlags::IN_MOVE_SELF
                    | AddWatchFlags::IN_UNMOUNT;
                if event.mask.intersects(lost) {
                    *inotify = None;
                    return None;
                }
                // An overflowed queue lost notices: any of them could have been ours.
                let ours = event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW)
                    || event.name.as_deref() == Some(OsStr::new(&self.file_name));
                if ours {
                    *generation = generation.wrapping_add(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched() -> (tempfile::TempDir, std::path::PathBuf, Watch) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        std::fs::write(&file, "{}").unwrap();
        let watch = Watch::new(&file).expect("inotify on a temp dir");
        (dir, file, watch)
    }

    #[test]
    fn the_generation_holds_while_nothing_happens_to_the_file() {
        let (dir, _file, watch) = watched();
        let first = watch.generation().unwrap();
        std::fs::write(dir.path().join("other.json"), "{}").unwrap();
        assert_eq!(watch.generation(), Some(first));
    }

    #[test]
    fn a_rename_over_the_file_changes_the_generation_before_the_next_read() {
        let (dir, file, watch) = watched();
        let first = watch.generation().unwrap();
        let tmp = dir.path().join(".state.json.tmp");
        std::fs::write(&tmp, "{\"a\":1}").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        let second = watch.generation().unwrap();
        assert_ne!(second, first);
        assert_eq!(watch.generation(), Some(second));
    }

    #[test]
    fn an_in_place_write_changes_the_generation() {
        let (_dir, file, watch) = watched();
        let first = watch.generation().unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"[]"))
            .unwrap();
        assert_ne!(watch.generation(), Some(first));
    }

    #[test]
    fn a_moved_home_loses_the_watch() {
        let (dir, _file, watch) = watched();
        watch.generation().unwrap();
        let moved = dir.path().with_extension("moved");
        std::fs::rename(dir.path(), &moved).unwrap();
        assert_eq!(watch.generation(), None);
        std::fs::rename(&moved, dir.path()).unwrap();
        assert_eq!(watch.generation(), None, "a lost watch stays lost");
    }

    #[test]
    fn a_symlinked_state_file_is_not_watched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real.json"), "{}").unwrap();
        let link = dir.path().join("state.json");
        std::os::unix::fs::symlink(dir.path().join("real.json"), &link).unwrap();
        assert!(Watch::new(&link).is_none());
    }
}
