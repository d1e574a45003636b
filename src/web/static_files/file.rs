//! [`File`]: a directory served as a leaf [`Resource`] (Twisted's `static.File`), the glue
//! between [`StaticFiles`] and a [`Request`].
//!
//! The response's status and headers come from [`StaticFiles::respond`]; bodies made in
//! memory (listings, error pages) are written at once, file bodies by a pull producer
//! registered on the request, one chunk of at most 64 KiB each time the connection's buffer
//! empties (so a slow client holds at most that much per response in user space).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::unix::fs::FileExt;
use std::rc::Rc;

use super::range::ByteRange;
use super::response::{Body, StaticFiles};
use crate::transport::Producer;
use crate::web::Headers;
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
}

impl File {
    /// Serves `files` (see [`StaticFiles`] for the options).
    pub fn new(files: StaticFiles) -> File {
        File { files }
    }
}

impl Resource for File {
    fn is_leaf(&self) -> bool {
        true
    }

    fn render(&self, request: &Request) -> Render {
        let method = String::from_utf8_lossy(request.method()).into_owned();
        let mut headers = Headers::new();
        for (n, v) in request.headers() {
            let _ = headers.try_add(&String::from_utf8_lossy(n), v);
        }
        let path = String::from_utf8_lossy(request.path()).into_owned();
        let query = String::from_utf8_lossy(request.query()).into_owned();
        let query = (!query.is_empty()).then_some(query.as_str());
        let segments = request.postpath();
        let r = self
            .files
            .respond(&method, &segments, &path, query, &headers);
        request.set_response_code(r.status);
        for (n, v) in r.headers.iter() {
            request.set_header(n, v);
        }
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
