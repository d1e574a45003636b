//! [`File`]: a directory served as a leaf [`Resource`] (Twisted's `static.File`), the glue
//! between [`StaticFiles`] and a [`Request`].
//!
//! The response's status and headers come from [`StaticFiles::respond`]; bodies made in
//! memory (listings, error pages) are written at once. File bodies go with
//! [`Request::send_file`], range after range, each once the one before it was handed over:
//! on a plain TCP or UNIX connection that is `sendfile(2)`, no copy through user space;
//! elsewhere (TLS, the test transports) the transport reads 64 KiB chunks as its buffer
//! empties. A response whose body cannot go as it is (gzip-encoded by a wrapper, so chunked)
//! is written by a pull producer registered on the request, one chunk of at most 64 KiB
//! each time the connection's buffer empties. Either way a slow client holds at most a
//! chunk per response in user space.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::unix::fs::FileExt;
use std::rc::Rc;

use super::range::ByteRange;
use super::response::{Body, StaticFiles};
use crate::transport::Producer;
use crate::web::Request;
use crate::web::resource::{Render, Resource};

/// Bytes read per chunk.
const CHUNK: u64 = 64 * 1024;

/// A directory served as static files; mount it with `put_child` (it is a leaf: every path
/// below the mount point is its own).
///
/// ```
/// use std::rc::Rc;
/// use twistor::web::static_files::file::File;
/// use twistor::web::static_files::response::StaticFiles;
///
/// let mut files = StaticFiles::new(std::env::temp_dir());
/// files.listings = false;
/// let resource = Rc::new(File::new(files));
/// # drop(resource);
/// ```
pub struct File {
    files: StaticFiles,
    /// Extensions (lower case, without the dot) whose files are answered by a resource
    /// made from their path instead of their bytes.
    processors: Vec<(String, Processor)>,
}

/// Makes the resource answering for one file (Twisted's `File.processors` values).
type Processor = Rc<dyn Fn(&std::path::Path) -> Rc<dyn Resource>>;

impl File {
    /// Serves `files` (see [`StaticFiles`] for the options).
    pub fn new(files: StaticFiles) -> File {
        File {
            files,
            processors: Vec::new(),
        }
    }

    /// Files ending in `.ext` (any case; `ext` with or without its dot) are answered by the
    /// resource `make` returns for their path, not sent as they are (Twisted's
    /// `File.processors`). Index files count; the path is resolved under the root as for
    /// any file.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use twistor::testing::{MemoryReactor, StringTransport};
    /// use twistor::web::resource::{Render, Resource};
    /// use twistor::web::static_files::file::File;
    /// use twistor::web::static_files::response::StaticFiles;
    /// use twistor::web::{Request, Site};
    ///
    /// struct Size(u64);
    /// impl Resource for Size {
    ///     fn is_leaf(&self) -> bool { true }
    ///     fn render_get(&self, _r: &Request) -> Option<Render> {
    ///         Some(format!("{} bytes", self.0).into())
    ///     }
    /// }
    /// let dir = std::env::temp_dir().join(format!("twistor-doc-processors-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// std::fs::write(dir.join("page.size"), b"12345").unwrap();
    /// let file = File::new(StaticFiles::new(&dir)).with_processor(".size", |path| {
    ///     Rc::new(Size(std::fs::metadata(path).map_or(0, |m| m.len())))
    /// });
    /// let site = Site::new(Rc::new(file), Rc::new(MemoryReactor::new()));
    /// let st = StringTransport::new();
    /// st.connect(site.channel());
    /// st.deliver(b"GET /page.size HTTP/1.1\r\nHost: x\r\n\r\n");
    /// assert!(String::from_utf8(st.value()).unwrap().ends_with("\r\n\r\n5 bytes"));
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    #[doc(alias = "processors")]
    pub fn with_processor(
        mut self,
        ext: &str,
        make: impl Fn(&std::path::Path) -> Rc<dyn Resource> + 'static,
    ) -> File {
        let ext = ext.trim_start_matches('.').to_ascii_lowercase();
        self.processors.push((ext, Rc::new(make)));
        self
    }

    /// The resource of a processor for the file the request names, if one applies.
    fn processed(&self, request: &Request) -> Option<Rc<dyn Resource>> {
        let resolved = request.with_postpath(|segments| {
            super::path::resolve(self.files.root(), segments, &self.files.resolve)
        });
        let Ok(super::path::Resolved::File(path)) = resolved else {
            return None;
        };
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        let (_, make) = self.processors.iter().find(|(e, _)| *e == ext)?;
        Some(make(&path))
    }
}

impl Resource for File {
    fn is_leaf(&self) -> bool {
        true
    }

    fn render(&self, request: &Request) -> Render {
        if !self.processors.is_empty()
            && let Some(resource) = self.processed(request)
        {
            return resource.render(request);
        }
        // Everything is read from the request in place: its headers where they were
        // parsed, its path and query borrowed when they are UTF-8 (they are ASCII on the
        // wire), the postpath without a copy. A method that is not UTF-8 is no method
        // served here: the empty one gets the 405.
        let method = std::str::from_utf8(request.method()).unwrap_or("");
        let path = String::from_utf8_lossy(request.path());
        let query = String::from_utf8_lossy(request.query());
        let query = (!query.is_empty()).then_some(&*query);
        let r = request
            .with_postpath(|segments| self.files.respond(method, segments, &path, query, request));
        request.set_response_code(r.status);
        request.set_headers(r.headers);
        let mut items = VecDeque::new();
        let file = match r.body {
            Body::Empty => {
                request.finish();
                return Render::NotDoneYet;
            }
            Body::Bytes(b) => {
                request.write(&b);
                request.finish();
                return Render::NotDoneYet;
            }
            Body::File(file, range) => {
                items.push_back(Item::Range(range));
                file
            }
            Body::Multipart(file, m) => {
                for (head, range) in m.parts() {
                    items.push_back(Item::Bytes(head.clone()));
                    items.push_back(Item::Range(*range));
                }
                items.push_back(Item::Bytes(m.tail().to_vec()));
                file
            }
        };
        let Some((file, items)) = send_direct(request.clone(), file, items) else {
            return Render::NotDoneYet;
        };
        let producer = Rc::new(BodyProducer {
            request: request.clone(),
            file,
            items: RefCell::new(items),
        });
        if request.register_producer(producer, false).is_err() {
            request.abort();
        }
        Render::NotDoneYet
    }
}

/// Sends the items in order, each range with [`Request::send_file`] (`sendfile(2)` on a
/// plain connection) once the one before it went out, and finishes the request after the
/// last, or aborts it if one fails. Returns the file and the items left when the response
/// cannot carry the file as it is (gzip, chunked): the framing is decided by the first
/// write, so that happens at the first range or never.
///
/// The last range takes the file itself when nothing else holds it (the common single
/// range): duplicating the descriptor would cost an `fcntl` and a `close` per request.
fn send_direct(
    request: Request,
    file: Rc<std::fs::File>,
    mut items: VecDeque<Item>,
) -> Option<(Rc<std::fs::File>, VecDeque<Item>)> {
    while let Some(item) = items.pop_front() {
        match item {
            Item::Bytes(b) => request.write(&b),
            Item::Range(r) => {
                let last = !items.iter().any(|i| matches!(i, Item::Range(_)));
                let (copy, file) = if last {
                    match Rc::try_unwrap(file) {
                        Ok(f) => (f, None),
                        Err(shared) => match shared.try_clone() {
                            Ok(c) => (c, Some(shared)),
                            Err(_) => {
                                items.push_front(Item::Range(r));
                                return Some((shared, items));
                            }
                        },
                    }
                } else {
                    match file.try_clone() {
                        Ok(c) => (c, Some(file)),
                        Err(_) => {
                            items.push_front(Item::Range(r));
                            return Some((file, items));
                        }
                    }
                };
                match request.send_file(copy, r.start, r.len()) {
                    Ok(done) => {
                        let failed = request.clone();
                        done.add_callbacks(
                            move |()| {
                                let r = request.clone();
                                let rest = match file {
                                    Some(file) => send_direct(request, file, items).is_some(),
                                    // The last range: only byte items can follow.
                                    None => finish_bytes(&request, items),
                                };
                                if rest {
                                    r.abort();
                                }
                                Ok(())
                            },
                            move |f| {
                                log::warn!(target: "twistor::web", "static: {f}");
                                failed.abort();
                                Ok(())
                            },
                        );
                        return None;
                    }
                    Err(back) => {
                        items.push_front(Item::Range(r));
                        let file = match file {
                            Some(shared) => shared,
                            None => Rc::new(back),
                        };
                        return Some((file, items));
                    }
                }
            }
        }
    }
    request.finish();
    None
}

/// Writes the byte items left after the last range and finishes the request; `true` if a
/// range was left after all (it cannot be, by construction), which aborts the response.
fn finish_bytes(request: &Request, items: VecDeque<Item>) -> bool {
    for item in items {
        match item {
            Item::Bytes(b) => request.write(&b),
            Item::Range(_) => return true,
        }
    }
    request.finish();
    false
}

enum Item {
    Bytes(Vec<u8>),
    Range(ByteRange),
}

/// Writes the body's items in order, one chunk per call.
struct BodyProducer {
    request: Request,
    file: Rc<std::fs::File>,
    items: RefCell<VecDeque<Item>>,
}

impl Producer for BodyProducer {
    fn pause_producing(&self) {}

    fn resume_producing(&self) {
        let next = self.items.borrow_mut().pop_front();
        match next {
            None => {
                self.request.unregister_producer();
                self.request.finish();
            }
            Some(Item::Bytes(b)) => self.request.write(&b),
            Some(Item::Range(r)) => {
                let want = r.len().min(CHUNK);
                let mut buf = vec![0; want as usize];
                match self.file.read_at(&mut buf, r.start) {
                    Ok(n) if n > 0 => {
                        buf.truncate(n);
                        self.request.write(&buf);
                        let start = r.start + n as u64;
                        if start <= r.end {
                            self.items
                                .borrow_mut()
                                .push_front(Item::Range(ByteRange { start, end: r.end }));
                        }
                    }
                    // The file shrank or cannot be read: the promised length cannot be met.
                    _ => {
                        log::warn!(target: "twistor::web", "static: file ended early or failed");
                        self.request.unregister_producer();
                        self.request.abort();
                    }
                }
            }
        }
    }

    fn stop_producing(&self) {
        self.items.borrow_mut().clear();
    }
}
