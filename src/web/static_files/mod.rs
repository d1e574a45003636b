//! Static files (Twisted's `twisted.web.static`): the pieces a file resource is made of, each
//! on its own and tested alone.
//!
//! - [`path`]: a request path resolved under a root directory, refusing traversal (`..`,
//!   encoded separators, NUL, backslashes) and, unless allowed, symlinks out of the root;
//!   index files; the redirect of a directory to its trailing slash.
//! - [`beneath`]: the same resolution done by the kernel in one `openat2(2)` relative to a
//!   descriptor on the root (`RESOLVE_BENEATH`), for the common case of a regular file.
//! - [`content_type`]: a file's `Content-Type` and `Content-Encoding` from its name.
//! - [`conditional`]: `Last-Modified`, `ETag`, and the preconditions (`If-Match`,
//!   `If-Unmodified-Since`, `If-None-Match`, `If-Modified-Since`, `If-Range`) → 304, 412 or
//!   proceed.
//! - [`range`]: `Range` requests → a plan (full, one range, several, unsatisfiable) with
//!   overlapping ranges merged and their number bounded; the `multipart/byteranges` framing
//!   with its exact length.
//! - [`listing`]: a directory's HTML listing, every name escaped.
//! - [`response`]: [`StaticFiles`](response::StaticFiles), the pieces applied in order to
//!   one request: status, headers and a body that is sent with `send_file`.
//!
//! A response applies them in this order: resolve the path (404, redirect, listing); stat and
//! open the file; preconditions (304/412, evaluated before `Range` as in Twisted); `If-Range`
//! then the range plan (200/206/416); then the body goes out with
//! [`Transport::send_file`](crate::transport::Transport::send_file), which uses `sendfile(2)` on
//! plain sockets.
//!
//! ```
//! use twistor::web::static_files::range::{plan, RangePlan, DEFAULT_MAX_RANGES};
//! // 100 overlapping ranges of a 1 MiB file cost what one does.
//! let header = vec!["0-"; 100].join(",");
//! let p = plan(Some(format!("bytes={header}").as_bytes()), 1 << 20, DEFAULT_MAX_RANGES);
//! assert!(matches!(p, RangePlan::Single(r) if r.len() == 1 << 20));
//! ```

pub mod beneath;
pub mod conditional;
pub mod content_type;
pub mod file;
pub mod listing;
pub mod path;
pub mod range;
pub mod response;
