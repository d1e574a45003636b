//! Resolving a request path under a root directory (Twisted's `File.getChild` and
//! `FilePath.child`), without letting it out of the root.
//!
//! The path arrives split into segments, each already percent-decoded (so `%2F` is a `/`
//! *inside* a segment, never a separator). The rules, one per segment:
//!
//! - Not UTF-8 → not found (Twisted: 404 for `%ff`).
//! - `..`, or a segment holding `/`, `\` or NUL → not found (Twisted's `InsecurePath`, also a
//!   404; `%2e%2e` decodes to `..` and is refused the same way, `sub%2f..%2f..%2fx` holds a
//!   `/`).
//! - `.` → the directory itself, as in Twisted (`/static/./ten.txt` works).
//! - Empty: at the end (a trailing slash) it names the directory, whose first existing index
//!   file is served, or else its listing; in the middle (`//`) → not found.
//! - A segment after a file → not found (`/file.txt/x`).
//! - A name that does not exist is retried with each ignored extension (`foo` → `foo.html`
//!   when `html` is ignored; Twisted's `ignoredExts`).
//! - A directory named without a trailing slash → a redirect to the same path with one.
//!
//! Hidden files (dot-files) are served, as in Twisted.
//!
//! # Symlinks
//!
//! Twisted follows every symlink, also those that lead out of the root (its check is only
//! lexical). Here the resolved path is canonicalised (`realpath`) and must stay under the
//! canonical root unless [`ResolveOptions::follow_symlinks_out`] is set.
//!
//! This module is the portable path. What it guarantees: at the moment of the check the
//! file lies under the root, and [`open_resolved`] opens the canonical path (which has no
//! symlink in it) with `O_NOFOLLOW`, so a last component swapped for a symlink after the
//! check fails to open. What it cannot: a directory component swapped for a symlink between
//! the check and the open by someone who can write inside the root is followed. Where the
//! kernel has `openat2(2)`, [`StaticFiles`](super::response::StaticFiles) opens files with
//! [`beneath`](super::beneath) instead, which has no such window, and comes here only for
//! what that does not decide (directories, index files, ignored extensions, symlinks out
//! allowed).

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Twisted's index names, tried in order (its `index.rpy` has no meaning here).
pub const DEFAULT_INDEX_NAMES: &[&str] = &["index", "index.html", "index.htm"];

/// How a request path is resolved.
///
/// ```
/// use twistor::web::static_files::path::ResolveOptions;
/// let o = ResolveOptions { ignored_exts: vec!["html".into()], ..ResolveOptions::default() };
/// assert_eq!(o.index_names, ["index", "index.html", "index.htm"]);
/// assert!(!o.follow_symlinks_out);
/// ```
#[derive(Debug, Clone)]
pub struct ResolveOptions {
    /// Index files tried in order for a directory's trailing slash.
    pub index_names: Vec<String>,
    /// Extensions (without the dot) tried when a name does not exist; `*` takes the first
    /// entry (by name) that starts with `name.`.
    pub ignored_exts: Vec<String>,
    /// Serve files whose real path is outside the root (Twisted's behaviour).
    pub follow_symlinks_out: bool,
    /// Open files with `openat2(2)` beneath the root where the kernel has it (see
    /// [`beneath`](super::beneath)); off → always the portable path of this module.
    pub openat2: bool,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        ResolveOptions {
            index_names: DEFAULT_INDEX_NAMES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            ignored_exts: Vec::new(),
            follow_symlinks_out: false,
            openat2: true,
        }
    }
}

/// What a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A file to serve (for a trailing slash: the directory's index file).
    File(PathBuf),
    /// A directory named with a trailing slash and no index file: list it (or refuse).
    Listing(PathBuf),
    /// A directory named without a trailing slash: redirect to the path with a `/` appended
    /// (query string kept).
    AddSlash,
}

/// Why a path names nothing servable (all answered 404, as Twisted does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// Nothing there.
    #[error("file not found")]
    NotFound,
    /// A segment that is not UTF-8.
    #[error("path segment is not UTF-8")]
    NotUtf8,
    /// `..`, a separator, a backslash or NUL in a segment; an empty segment in the middle.
    #[error("insecure path segment {0:?}")]
    Insecure(String),
    /// The real path (after symlinks) is outside the root.
    #[error("path leads outside the served directory")]
    OutsideRoot,
}

/// Resolves `segments` (percent-decoded, after the mount point) under `root`.
///
/// ```
/// use twistor::web::static_files::path::{resolve, PathError, ResolveOptions, Resolved};
/// let root = std::env::temp_dir().join(format!("twistor-doc-path-{}", std::process::id()));
/// std::fs::create_dir_all(root.join("sub")).unwrap();
/// std::fs::write(root.join("sub/a.txt"), b"a").unwrap();
/// let o = ResolveOptions::default();
/// assert!(matches!(resolve(&root, &[b"sub".as_slice(), b"a.txt"], &o), Ok(Resolved::File(_))));
/// assert_eq!(resolve(&root, &[b"sub".as_slice()], &o), Ok(Resolved::AddSlash));
/// assert!(matches!(resolve(&root, &[b"sub".as_slice(), b""], &o), Ok(Resolved::Listing(_))));
/// assert!(matches!(resolve(&root, &[b"..".as_slice(), b"etc"], &o), Err(PathError::Insecure(_))));
/// std::fs::remove_dir_all(&root).unwrap();
/// ```
pub fn resolve<S: AsRef<[u8]>>(
    root: &Path,
    segments: &[S],
    opts: &ResolveOptions,
) -> Result<Resolved, PathError> {
    let mut path = root.to_path_buf();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        let seg = check_segment(seg.as_ref())?;
        // Only a directory has children.
        if !path.is_dir() {
            return Err(PathError::NotFound);
        }
        if seg.is_empty() {
            if i != last {
                return Err(PathError::Insecure(String::new()));
            }
            return index_or_listing(root, &path, opts);
        }
        if seg == "." {
            continue;
        }
        let child = path.join(seg);
        path = if child.exists() {
            child
        } else {
            with_ignored_ext(&path, seg, &opts.ignored_exts).ok_or(PathError::NotFound)?
        };
    }
    let real = contained(root, &path, opts)?;
    if real.is_dir() {
        // The root itself named without a slash (an empty path) needs one as much as a
        // subdirectory does.
        return Ok(Resolved::AddSlash);
    }
    Ok(Resolved::File(real))
}

/// A segment as text, refused when not UTF-8, `..`, or holding a separator, a backslash or
/// NUL (empty and `.` are the caller's to interpret).
pub(crate) fn check_segment(seg: &[u8]) -> Result<&str, PathError> {
    let seg = std::str::from_utf8(seg).map_err(|_| PathError::NotUtf8)?;
    if seg.contains(['/', '\\', '\0']) || seg == ".." {
        return Err(PathError::Insecure(seg.to_owned()));
    }
    Ok(seg)
}

fn index_or_listing(root: &Path, dir: &Path, opts: &ResolveOptions) -> Result<Resolved, PathError> {
    let dir = contained(root, dir, opts)?;
    for name in &opts.index_names {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(Resolved::File(contained(root, &candidate, opts)?));
        }
    }
    Ok(Resolved::Listing(dir))
}

/// `path`'s real path if it stays under the real `root` (or following out is allowed).
fn contained(root: &Path, path: &Path, opts: &ResolveOptions) -> Result<PathBuf, PathError> {
    let real = path.canonicalize().map_err(|_| PathError::NotFound)?;
    if opts.follow_symlinks_out {
        return Ok(real);
    }
    let real_root = root.canonicalize().map_err(|_| PathError::NotFound)?;
    if real.starts_with(&real_root) {
        Ok(real)
    } else {
        Err(PathError::OutsideRoot)
    }
}

fn with_ignored_ext(dir: &Path, name: &str, exts: &[String]) -> Option<PathBuf> {
    for ext in exts {
        if ext == "*" {
            let prefix = format!("{name}.");
            let mut matches: Vec<PathBuf> = std::fs::read_dir(dir)
                .ok()?
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect();
            matches.sort();
            if let Some(first) = matches.into_iter().next() {
                return Some(first);
            }
        } else {
            let candidate = dir.join(format!("{name}.{}", ext.trim_start_matches('.')));
            if candidate.exists() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Opens a file [`resolve`] returned: read-only, `O_NOFOLLOW` (the path is canonical, so a
/// symlink there now was put there after the check), close-on-exec.
///
/// ```
/// use twistor::web::static_files::path::open_resolved;
/// let f = open_resolved(&std::fs::canonicalize("Cargo.toml").unwrap()).unwrap();
/// assert!(f.metadata().unwrap().len() > 0);
/// ```
pub fn open_resolved(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}
