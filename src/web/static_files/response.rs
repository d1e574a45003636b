//! The response to a request for a static file, planned without a server: [`StaticFiles`]
//! applies [`path`](super::path), [`conditional`](super::conditional),
//! [`range`](super::range), [`content_type`](super::content_type) and
//! [`listing`](super::listing) in that order (Twisted's `File.getChild` then
//! `File.render_GET`) and returns a [`StaticResponse`]: status, headers (`Content-Length`
//! always set) and a [`Body`] that [`Body::send`] writes on a transport with
//! [`Transport::send_file`].
//!
//! What each outcome gets (Twisted's answer where it differs):
//!
//! | request | status |
//! |---|---|
//! | method other than GET or HEAD | 405 with `Allow: GET, HEAD` |
//! | traversal, missing file, non-UTF-8 segment, symlink out of the root | 404 |
//! | directory without a trailing slash | 302 to the slashed path, query kept |
//! | directory with one, no index file | 200 listing, or 403 when listings are off (Twisted: always listed) |
//! | unreadable file | 403 |
//! | failed `If-Match` / `If-Unmodified-Since` | 412 (Twisted: ignored) |
//! | `If-None-Match` / `If-Modified-Since` says fresh | 304 with the validators, no body |
//! | HEAD | 200 with the full `Content-Length`, no body (ranges ignored, as in Twisted) |
//! | `Range` | 206, 206 multipart, or 416 (see [`range`](super::range)) |
//!
//! Every file response carries `Accept-Ranges: bytes`, `Last-Modified` and `ETag`.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;

use super::beneath::{self, Beneath, RootDir};
use super::conditional::{Precondition, Validators, evaluate, if_range_matches};
use super::content_type::ContentTypes;
use super::listing::{read_entries, render};
use super::path::{ResolveOptions, Resolved, open_resolved, resolve};
use super::range::{ByteRange, DEFAULT_MAX_RANGES, Multipart, RangePlan, plan, random_boundary};
use crate::Deferred;
use crate::Failure;
use crate::transport::Transport;
use crate::web::Headers;
use crate::web::headers::HeaderLookup;
use crate::web::request::decimal;

/// A directory served as static files, with its options.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    root: RootDir,
    /// How request paths are resolved (index names, ignored extensions, symlinks).
    pub resolve: ResolveOptions,
    /// Names to types and encodings.
    pub types: ContentTypes,
    /// List directories that have no index file (Twisted always does); off → 403.
    pub listings: bool,
    /// Ranges allowed after merging before `Range` is ignored.
    pub max_ranges: usize,
}

/// What a request for a static file is answered with.
#[derive(Debug)]
pub struct StaticResponse {
    /// The status code.
    pub status: u16,
    /// The headers, `Content-Length` included.
    pub headers: Headers,
    /// What follows the head.
    pub body: Body,
}

/// The body of a [`StaticResponse`].
#[derive(Debug)]
pub enum Body {
    /// Nothing (HEAD, 304, 416).
    Empty,
    /// Bytes made in memory (a listing, an error page, a redirect).
    Bytes(Vec<u8>),
    /// A range of a file (the whole file for a 200).
    File(Rc<File>, ByteRange),
    /// Several ranges of a file, framed as `multipart/byteranges`.
    Multipart(Rc<File>, Multipart),
}

impl Body {
    /// Writes the body on `transport` after what was written before (the head), files with
    /// [`Transport::send_file`]; the Deferred fires once all of it was handed over.
    ///
    /// ```
    /// use twistor::testing::StringTransport;
    /// use twistor::web::static_files::response::Body;
    /// let st = StringTransport::new();
    /// let d = Body::Bytes(b"<p>hi</p>".to_vec()).send(&st.transport());
    /// assert!(d.called());
    /// assert_eq!(st.value(), b"<p>hi</p>");
    /// ```
    pub fn send(self, transport: &Transport) -> Deferred<()> {
        match self {
            Body::Empty => Deferred::succeed(()),
            Body::Bytes(b) => {
                transport.write_owned(b);
                Deferred::succeed(())
            }
            Body::File(file, r) => send_range(transport, &file, r),
            Body::Multipart(file, m) => {
                let parts: VecDeque<(Vec<u8>, ByteRange)> = m.parts().iter().cloned().collect();
                send_parts(transport.clone(), file, parts, m.tail().to_vec())
            }
        }
    }
}

fn send_range(transport: &Transport, file: &File, r: ByteRange) -> Deferred<()> {
    match file.try_clone() {
        Ok(f) => transport.send_file(f, r.start, r.len()),
        Err(e) => Deferred::fail(Failure::new(e)),
    }
}

/// One part after the other: the fallback path holds the producer slot for one file at a
/// time, so the next part is queued when the previous one is sent.
fn send_parts(
    transport: Transport,
    file: Rc<File>,
    mut parts: VecDeque<(Vec<u8>, ByteRange)>,
    tail: Vec<u8>,
) -> Deferred<()> {
    let Some((head, r)) = parts.pop_front() else {
        transport.write_owned(tail);
        return Deferred::succeed(());
    };
    transport.write_owned(head);
    let t = transport.clone();
    send_range(&transport, &file, r)
        .add_callback_deferred(move |()| send_parts(t, file, parts, tail))
}

impl StaticFiles {
    /// Serves `root` with Twisted's defaults: index names `index`, `index.html`,
    /// `index.htm`; default type `text/html`; listings on; no symlinks out of the root; at
    /// most 16 ranges.
    ///
    /// ```
    /// use twistor::web::static_files::response::StaticFiles;
    /// let mut files = StaticFiles::new("/srv/www");
    /// files.listings = false;
    /// files.resolve.follow_symlinks_out = true;
    /// assert_eq!(files.root(), std::path::Path::new("/srv/www"));
    /// ```
    pub fn new(root: impl Into<PathBuf>) -> StaticFiles {
        StaticFiles {
            root: RootDir::new(root),
            resolve: ResolveOptions::default(),
            types: ContentTypes::new(),
            listings: true,
            max_ranges: DEFAULT_MAX_RANGES,
        }
    }

    /// The served directory.
    pub fn root(&self) -> &std::path::Path {
        self.root.path()
    }

    /// Plans the response to `method` on the path whose segments after the mount point are
    /// `segments` (percent-decoded); `request_path` is the path as requested
    /// (percent-encoded, for the redirect and the listing's title) and `query` its query
    /// string, if any.
    ///
    /// ```
    /// use twistor::web::Headers;
    /// use twistor::web::static_files::response::{Body, StaticFiles};
    ///
    /// let root = std::env::temp_dir().join(format!("twistor-doc-resp-{}", std::process::id()));
    /// std::fs::create_dir_all(&root).unwrap();
    /// std::fs::write(root.join("ten.txt"), b"0123456789").unwrap();
    /// let files = StaticFiles::new(&root);
    /// let mut h = Headers::new();
    /// h.set("Range", "bytes=-3");
    /// let r = files.respond("GET", &[b"ten.txt".as_slice()], "/ten.txt", None, &h);
    /// assert_eq!(r.status, 206);
    /// assert_eq!(r.headers.get_str("Content-Range"), Some("bytes 7-9/10"));
    /// assert_eq!(r.headers.get_str("Content-Length"), Some("3"));
    /// assert!(matches!(r.body, Body::File(..)));
    /// std::fs::remove_dir_all(&root).unwrap();
    /// ```
    pub fn respond<S: AsRef<[u8]>, H: HeaderLookup + ?Sized>(
        &self,
        method: &str,
        segments: &[S],
        request_path: &str,
        query: Option<&str>,
        headers: &H,
    ) -> StaticResponse {
        let mut r = self.respond_get(method, segments, request_path, query, headers);
        // HEAD: the head GET would have, no body.
        if method == "HEAD" {
            r.body = Body::Empty;
        }
        r
    }

    fn respond_get<S: AsRef<[u8]>, H: HeaderLookup + ?Sized>(
        &self,
        method: &str,
        segments: &[S],
        request_path: &str,
        query: Option<&str>,
        headers: &H,
    ) -> StaticResponse {
        let get = method == "GET";
        if !get && method != "HEAD" {
            let mut r = page(405, "Method Not Allowed", "Only GET and HEAD are allowed.");
            r.headers.set("Allow", "GET, HEAD");
            return r;
        }
        let (file, meta, name) = match beneath::open(&self.root, segments, &self.resolve) {
            Beneath::Opened(file, meta) => {
                let name = segments.last().map(AsRef::as_ref).unwrap_or_default();
                (file, meta, String::from_utf8_lossy(name).into_owned())
            }
            Beneath::Refused(e) => {
                log::debug!(target: "twistor::web", "static: {request_path}: {e}");
                return not_found();
            }
            Beneath::Failed(e) => return open_failed(&e),
            Beneath::Portable => match self.resolve_portable(segments, request_path, query, get) {
                Ok(opened) => opened,
                Err(r) => return *r,
            },
        };
        self.respond_file(file, &meta, &name, headers, get)
    }

    /// The portable path: resolved by [`resolve`] (redirects, listings, index files), then
    /// opened by its canonical path.
    fn resolve_portable<S: AsRef<[u8]>>(
        &self,
        segments: &[S],
        request_path: &str,
        query: Option<&str>,
        get: bool,
    ) -> Result<(File, std::fs::Metadata, String), Box<StaticResponse>> {
        let resolved = match resolve(self.root.path(), segments, &self.resolve) {
            Ok(r) => r,
            Err(e) => {
                log::debug!(target: "twistor::web", "static: {request_path}: {e}");
                return Err(Box::new(not_found()));
            }
        };
        let path = match resolved {
            Resolved::AddSlash => {
                let location = match query {
                    Some(q) => format!("{request_path}/?{q}"),
                    None => format!("{request_path}/"),
                };
                let mut r = page(302, "Found", "The document has moved.");
                r.headers.set("Location", location.as_bytes());
                return Err(Box::new(r));
            }
            Resolved::Listing(dir) => return Err(Box::new(self.listing(&dir, request_path, get))),
            Resolved::File(path) => path,
        };
        let file = open_resolved(&path).map_err(|e| Box::new(open_failed(&e)))?;
        let meta = file.metadata().map_err(|e| Box::new(open_failed(&e)))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok((file, meta, name))
    }

    /// The response for an opened regular file called `name`.
    fn respond_file<H: HeaderLookup + ?Sized>(
        &self,
        file: File,
        meta: &std::fs::Metadata,
        name: &str,
        headers: &H,
        get: bool,
    ) -> StaticResponse {
        let v = Validators::from_metadata(meta);
        let len = meta.len();
        let (content_type, encoding) = self.types.type_and_encoding_ref(name);

        // Built with `push_trusted`: every name is static and every value made here (a
        // date, a tag in hex, a number, a type from the map), nothing from the request.
        let mut h = Headers::with_capacity(8);
        h.push_trusted("Accept-Ranges", b"bytes");
        h.push_trusted("Last-Modified", &v.last_modified_value());
        h.push_trusted("ETag", v.etag.as_bytes());
        match evaluate(headers, &v, true) {
            Precondition::Proceed => {}
            Precondition::NotModified => {
                return StaticResponse {
                    status: 304,
                    headers: h,
                    body: Body::Empty,
                };
            }
            Precondition::Failed => {
                h.set("Content-Length", "0");
                return StaticResponse {
                    status: 412,
                    headers: h,
                    body: Body::Empty,
                };
            }
        }
        let range = if get && if_range_matches(headers, &v) {
            headers.first_value("Range")
        } else {
            None
        };
        let file = Rc::new(file);
        let full = |mut h: Headers| {
            // The map's types and encodings hold no line break (it replaces them).
            h.push_trusted("Content-Type", content_type.as_bytes());
            if let Some(enc) = encoding {
                h.push_trusted("Content-Encoding", enc.as_bytes());
            }
            h.push_trusted("Content-Length", decimal(len, &mut [0; 20]));
            h
        };
        match plan(range, len, self.max_ranges) {
            RangePlan::Full => StaticResponse {
                status: 200,
                headers: full(h),
                body: if get && len > 0 {
                    Body::File(
                        file.clone(),
                        ByteRange {
                            start: 0,
                            end: len - 1,
                        },
                    )
                } else {
                    Body::Empty
                },
            },
            RangePlan::Single(r) => {
                let mut h = full(h);
                h.set("Content-Length", r.len().to_string().as_bytes());
                h.set("Content-Range", r.content_range(len).as_bytes());
                StaticResponse {
                    status: 206,
                    headers: h,
                    body: Body::File(file, r),
                }
            }
            RangePlan::Multiple(ranges) => {
                let m = Multipart::new(&ranges, len, content_type, &random_boundary());
                h.set("Content-Type", m.content_type().as_bytes());
                h.set("Content-Length", m.content_length().to_string().as_bytes());
                StaticResponse {
                    status: 206,
                    headers: h,
                    body: Body::Multipart(file, m),
                }
            }
            RangePlan::Unsatisfiable => {
                h.set("Content-Type", content_type.as_bytes());
                h.set("Content-Range", format!("bytes */{len}").as_bytes());
                h.set("Content-Length", "0");
                StaticResponse {
                    status: 416,
                    headers: h,
                    body: Body::Empty,
                }
            }
        }
    }

    fn listing(&self, dir: &std::path::Path, request_path: &str, get: bool) -> StaticResponse {
        if !self.listings {
            return page(403, "Forbidden", "Directory listing is not allowed.");
        }
        let entries = match read_entries(dir, &self.types) {
            Ok(e) => e,
            Err(e) => return open_failed(&e),
        };
        let html = render(request_path, &entries).into_bytes();
        let mut h = Headers::new();
        h.set("Content-Type", "text/html; charset=utf-8");
        h.set("Content-Length", html.len().to_string().as_bytes());
        StaticResponse {
            status: 200,
            headers: h,
            body: if get { Body::Bytes(html) } else { Body::Empty },
        }
    }
}

fn open_failed(e: &io::Error) -> StaticResponse {
    match e.kind() {
        io::ErrorKind::PermissionDenied => page(403, "Forbidden", "Access denied."),
        io::ErrorKind::NotFound => not_found(),
        // A symlink swapped in after the check (`O_NOFOLLOW` refused it).
        _ if e.raw_os_error() == Some(libc::ELOOP) => not_found(),
        _ => {
            log::warn!(target: "twistor::web", "static: cannot open a file: {e}");
            page(500, "Internal Server Error", "The file could not be read.")
        }
    }
}

fn not_found() -> StaticResponse {
    page(404, "No Such Resource", "File not found.")
}

/// A small HTML page in the style of Twisted's error resources.
fn page(status: u16, title: &str, detail: &str) -> StaticResponse {
    let body = format!(
        "\n<html>\n  <head><title>{status} - {title}</title></head>\n  <body>\n    \
         <h1>{title}</h1>\n    <p>{detail}</p>\n  </body>\n</html>\n"
    )
    .into_bytes();
    let mut h = Headers::new();
    h.set("Content-Type", "text/html");
    h.set("Content-Length", body.len().to_string().as_bytes());
    StaticResponse {
        status,
        headers: h,
        body: Body::Bytes(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_and_missing_opens_get_their_statuses() {
        let refused = open_failed(&io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(refused.status, 403);
        assert!(
            matches!(refused.body, Body::Bytes(ref b) if String::from_utf8_lossy(b).contains("Forbidden"))
        );
        assert_eq!(
            open_failed(&io::Error::from(io::ErrorKind::NotFound)).status,
            404
        );
        assert_eq!(
            open_failed(&io::Error::from_raw_os_error(libc::ELOOP)).status,
            404
        );
        assert_eq!(
            open_failed(&io::Error::from_raw_os_error(libc::EIO)).status,
            500
        );
    }
}
