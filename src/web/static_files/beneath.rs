//! Opening a request path beneath the served directory in one system call, the kernel
//! guarding the walk (Linux `openat2(2)` with `RESOLVE_BENEATH`).
//!
//! The root directory is opened once (`O_PATH | O_DIRECTORY`) and kept; each request's
//! path, checked segment by segment as in [`path`](super::path), is opened relative to it
//! with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`. The kernel fails the open (`EXDEV`)
//! when any step of the walk would leave the root: a `..`, a symlink whose target is
//! absolute, or one that climbs above the root. It does so atomically, during the one walk
//! that also opens the file, so nobody writing inside the root can swap a directory for a
//! symlink between a check and an open: there is no separate check. One `statx` on the
//! opened descriptor then gives type, size, mtime and inode.
//!
//! A request costs `openat2` + `statx` + `close` besides what sends the response; the
//! portable path (`realpath` of the root and of the file, a `stat` per segment) costs about
//! a dozen more.
//!
//! What the kernel's rule changes: a symlink inside the root is followed only if it is
//! relative and stays beneath the root at every step; an absolute symlink, or one that
//! climbs above the root and back in (`up -> ..` then `up/www/x`), is refused even when the
//! file lies inside the root (the portable path, which compares real paths, serves it). Everything the fast
//! path does not decide goes to the portable path, whose answers are unchanged: a trailing
//! slash (index files, listings), the root itself, a directory (the slash redirect), a
//! missing name when ignored extensions are set, a file that is not a regular file,
//! [`follow_symlinks_out`](super::path::ResolveOptions::follow_symlinks_out) (then nothing
//! is refused for leaving the root, so a plain open is right), and kernels without
//! `openat2` (`ENOSYS`, remembered for the process).

use std::ffi::CString;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use super::path::{PathError, ResolveOptions, check_segment};

/// Set once a kernel answered `ENOSYS`: later requests go straight to the portable path.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// The served directory: its path and, once it could be opened, a descriptor on it.
///
/// The descriptor pins the directory that was there at the first request: a root renamed
/// or replaced afterwards keeps being served from the directory first opened, as a
/// `chroot` would.
///
/// ```
/// use twistor::web::static_files::beneath::RootDir;
/// let root = RootDir::new(std::env::temp_dir());
/// assert_eq!(root.path(), std::env::temp_dir());
/// ```
#[derive(Debug, Clone)]
pub struct RootDir {
    path: PathBuf,
    fd: OnceLock<Arc<OwnedFd>>,
}

impl RootDir {
    /// The directory at `path`, opened on first use (so it may be created later).
    pub fn new(path: impl Into<PathBuf>) -> RootDir {
        RootDir {
            path: path.into(),
            fd: OnceLock::new(),
        }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor, opened now if it was not; `None` while the directory cannot be
    /// opened (it is retried on the next request).
    fn fd(&self) -> Option<&OwnedFd> {
        if let Some(fd) = self.fd.get() {
            return Some(fd);
        }
        let c = CString::new(self.path.as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: `c` is a valid NUL-terminated string; the result is checked.
        let raw = unsafe { libc::open(c.as_ptr(), ROOT_FLAGS) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a descriptor just opened and owned by nobody else.
        let fd = Arc::new(unsafe { OwnedFd::from_raw_fd(raw) });
        Some(self.fd.get_or_init(|| fd))
    }
}

/// What the fast path made of a request path.
#[derive(Debug)]
pub enum Beneath {
    /// A regular file beneath the root, opened, with its metadata.
    Opened(File, Metadata),
    /// Refused or missing: answered 404.
    Refused(PathError),
    /// The open failed in a way the response reports itself (`EACCES` → 403).
    Failed(io::Error),
    /// Not decided here: resolve with the portable path.
    Portable,
}

/// Opens `segments` (percent-decoded, after the mount point) beneath `root`, or says why
/// not.
///
/// ```
/// use twistor::web::static_files::beneath::{open, Beneath, RootDir};
/// use twistor::web::static_files::path::{PathError, ResolveOptions};
/// let dir = std::env::temp_dir().join(format!("twistor-doc-beneath-{}", std::process::id()));
/// std::fs::create_dir_all(dir.join("www")).unwrap();
/// std::fs::write(dir.join("www/a.txt"), b"abc").unwrap();
/// std::fs::write(dir.join("secret"), b"s").unwrap();
/// std::os::unix::fs::symlink("../secret", dir.join("www/out")).unwrap();
/// let root = RootDir::new(dir.join("www"));
/// let o = ResolveOptions::default();
/// match open(&root, &[b"a.txt".as_slice()], &o) {
///     Beneath::Opened(_, meta) => assert_eq!(meta.len(), 3),
///     Beneath::Portable => {} // a kernel without openat2
///     other => panic!("{other:?}"),
/// }
/// assert!(matches!(
///     open(&root, &[b"out".as_slice()], &o),
///     Beneath::Refused(PathError::OutsideRoot) | Beneath::Portable
/// ));
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn open<S: AsRef<[u8]>>(root: &RootDir, segments: &[S], opts: &ResolveOptions) -> Beneath {
    if !opts.openat2 || opts.follow_symlinks_out || NO_OPENAT2.load(Ordering::Relaxed) {
        return Beneath::Portable;
    }
    let last = segments.len().saturating_sub(1);
    let mut rel: Vec<u8> = Vec::with_capacity(64);
    for (i, seg) in segments.iter().enumerate() {
        let seg = match check_segment(seg.as_ref()) {
            Ok(s) => s,
            Err(e) => return Beneath::Refused(e),
        };
        if seg.is_empty() {
            if i != last {
                return Beneath::Refused(PathError::Insecure(String::new()));
            }
            // A trailing slash: index files or a listing.
            return Beneath::Portable;
        }
        if seg == "." {
            continue;
        }
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(seg.as_bytes());
    }
    if rel.is_empty() {
        // The root itself: redirected to its slash.
        return Beneath::Portable;
    }
    let Some(dir) = root.fd() else {
        return Beneath::Portable;
    };
    // NUL was refused per segment.
    let Ok(rel) = CString::new(rel) else {
        return Beneath::Refused(PathError::NotFound);
    };
    // The rename retry: the kernel answers EAGAIN when a rename raced the walk.
    let mut tries = 0;
    let file = loop {
        match openat2_beneath(dir, &rel) {
            Ok(f) => break f,
            Err(e) => match e.raw_os_error() {
                Some(libc::EAGAIN) if tries < 2 => tries += 1,
                Some(libc::ENOSYS) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    return Beneath::Portable;
                }
                Some(libc::EXDEV) => return Beneath::Refused(PathError::OutsideRoot),
                Some(libc::ENOENT) if opts.ignored_exts.is_empty() => {
                    return Beneath::Refused(PathError::NotFound);
                }
                // A segment after a file; a magic link (`/proc/self/fd/N`).
                Some(libc::ENOTDIR | libc::ELOOP) => {
                    return Beneath::Refused(PathError::NotFound);
                }
                Some(libc::EACCES) => return Beneath::Failed(e),
                // Ignored extensions, seccomp filters (EPERM), anything unusual: the
                // portable path knows the answer.
                _ => return Beneath::Portable,
            },
        }
    };
    match file.metadata() {
        Ok(meta) if meta.is_file() => Beneath::Opened(file, meta),
        // Directories (redirect), devices, FIFOs, or a failed stat.
        _ => Beneath::Portable,
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const ROOT_FLAGS: i32 = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const ROOT_FLAGS: i32 = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;

/// Without `openat2` every request takes the portable path.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn openat2_beneath(_dir: &OwnedFd, _rel: &CString) -> io::Result<File> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// `openat2(dir, rel, O_RDONLY, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`.
///
/// `O_NONBLOCK` keeps a FIFO in the tree from blocking the reactor in `open`; it changes
/// nothing for regular files, whose reads never block in the kernel's sense.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn openat2_beneath(dir: &OwnedFd, rel: &CString) -> io::Result<File> {
    // SAFETY: `open_how` is plain data; all-zero is its "no options" value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid descriptor, NUL-terminated path, `how` lives across the call and its
    // size is passed; the result is checked.
    let raw = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            rel.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nobody else owns.
    Ok(unsafe { File::from_raw_fd(raw as i32) })
}
