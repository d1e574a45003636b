//! Twisted's `lockfile.FilesystemLock`, as `listen_unix`'s `want_pid` and `connect_unix`'s
//! `check_pid` use it: the lock `<path>.lock` is a symbolic link whose target is the pid of
//! the holder. A link naming a live process is held; one naming a dead process is stale and
//! may be taken over. A symbolic link is created atomically, and its target is read without
//! opening anything, which is why Twisted uses one rather than a file.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// `<path>.lock`.
pub(crate) fn lock_path(path: &Path) -> PathBuf {
    let mut p = OsString::from(path.as_os_str());
    p.push(".lock");
    PathBuf::from(p)
}

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub(crate) struct FilesystemLock {
    path: PathBuf,
    /// False when a stale lock was taken over (its holder died without cleaning up).
    pub(crate) clean: bool,
}

impl Drop for FilesystemLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether `pid` names a live process (one we may not signal counts as live).
fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// The pid a lock names, `None` if there is no lock; a target that is not a pid is an error.
fn holder(path: &Path) -> io::Result<Option<i32>> {
    match std::fs::read_link(path) {
        Ok(target) => {
            let text = String::from_utf8(target.into_os_string().into_vec()).unwrap_or_default();
            text.parse::<i32>().map(Some).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not a pid lock", path.display()),
                )
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Takes the lock at `path` for this process: `Ok(None)` if a live process holds it.
pub(crate) fn lock(path: &Path) -> io::Result<Option<FilesystemLock>> {
    let me = std::process::id().to_string();
    let mut clean = true;
    // Two rounds: a stale lock is removed once, then taken like a missing one (another
    // process racing for it may win the second round, and then it is held).
    for _ in 0..2 {
        match std::os::unix::fs::symlink(&me, path) {
            Ok(()) => {
                return Ok(Some(FilesystemLock {
                    path: path.to_path_buf(),
                    clean,
                }));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        match holder(path)? {
            Some(pid) if alive(pid) => return Ok(None),
            // Gone between the two calls, or stale: remove it and try again.
            _ => {
                clean = false;
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(None)
}

/// Whether a live process holds the lock at `path` (Twisted's `lockfile.isLocked`).
pub(crate) fn is_locked(path: &Path) -> bool {
    matches!(holder(path), Ok(Some(pid)) if alive(pid))
}
