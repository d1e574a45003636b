//! Sending part of a file on a transport ([`Transport::send_file`]), with no copy through
//! user space where the transport is a plain socket.
//!
//! # Two paths, one contract
//!
//! The bytes `offset..offset + len` of the file go out after everything written before the
//! call and before everything written after it; the returned Deferred fires once the last of
//! them was handed to the kernel (or fails, see below).
//!
//! - **Plain stream sockets** (TCP, UNIX, not switched to TLS): the file joins the
//!   connection's send queue. While anything is queued the connection is *diverted*: writes
//!   (and further files) are appended to the queue instead of the write buffer, so they keep
//!   their order. When the write buffer is empty the queue's front is sent: bytes move into
//!   the write buffer; a file goes out with `sendfile(2)` on the non-blocking socket until
//!   the kernel's send buffer is full, and resumes on the next writable edge, so the reactor
//!   never blocks and no file byte is buffered in user space. The kernel's send buffer is the
//!   only buffer for the file: memory stays bounded whatever its size.
//! - **Everything else** (TLS, which must encrypt in user space; the in-memory test
//!   transports): a pull producer ([`FileProducer`]) reads 64 KiB at a time into the normal
//!   write path, one chunk each time the transport's buffer empties, so the water marks bound
//!   it as any producer. It holds the transport's producer slot while it runs (so it fails
//!   with `AlreadyRegistered` if another producer holds it); write the next thing (the next
//!   pipelined response) when the Deferred fires, as with any producer. A protocol that keeps
//!   its own producer registered drives [`FileProducer::unregistered`] from it instead.
//!
//! The cost for connections that never send a file is one flag test per write (the diverted
//! flag), next to the TLS flag test that is already there.
//!
//! # Segments
//!
//! The bytes written just before a file (an HTTP response head) are sent with `MSG_MORE`
//! on TCP, so the kernel puts them in the file's first segment instead of a segment of
//! their own: one packet fewer per response, less work for both ends (a 64 KiB static
//! file over loopback: server CPU per request down from ~13 to ~11.7 µs in the kernel).
//! The file's last `sendfile` pushes everything out; a file that fails before sending
//! anything pushes the held bytes explicitly (clearing `TCP_CORK`), or the kernel would
//! hold them for 200 ms.
//!
//! # Failures
//!
//! A file that ends early (it shrank), or a read error (`EIO`), fails the Deferred with the
//! I/O error and drops the rest of that file; the connection stays open, because only the
//! caller knows what the peer was promised: an HTTP server that sent `Content-Length` must
//! then close it. A connection that closes first fails every queued file with
//! `ConnectionLost`, on a later turn (never inside the call that closed it). Nothing here
//! panics on what a file or a peer does.
//!
//! # Producers while a file is queued
//!
//! A pull producer is not asked for more while the connection is diverted, and a paused
//! streaming producer is resumed only once the queue is empty; writes made while diverted
//! (by a streaming producer that was not paused) are held in memory until the file is sent.
//!
//! [`Transport::send_file`]: super::Transport::send_file

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::rc::Rc;

use super::{Producer, Transport};
use crate::defer::{Deferred, Resolver};
use crate::error::ConnectionLost;
use crate::failure::Failure;

/// Bytes read per chunk on the fallback path.
pub(crate) const FALLBACK_CHUNK: usize = 64 * 1024;

/// `sendfile(2)` takes at most this much per call on Linux.
const SENDFILE_MAX: u64 = 0x7fff_f000;

/// A part of a file waiting to be sent, and the Deferred to fire once it is: what
/// [`TransportImpl::send_file`](super::TransportImpl::send_file) is handed. A transport
/// without a zero-copy path hands it back.
pub struct QueuedFile {
    file: File,
    offset: u64,
    remaining: u64,
    done: Resolver<()>,
}

impl QueuedFile {
    /// The part `offset..offset + len` of `file`, and the Deferred that fires when it is sent.
    pub(crate) fn new(file: File, offset: u64, len: u64) -> (QueuedFile, Deferred<()>) {
        let (d, done) = Deferred::new();
        (
            QueuedFile {
                file,
                offset,
                remaining: len,
                done,
            },
            d,
        )
    }
}

impl QueuedFile {
    /// The resolver, for a file that will not be sent.
    pub(crate) fn into_done(self) -> Resolver<()> {
        self.done
    }
}

enum Queued {
    Bytes(Vec<u8>),
    File(QueuedFile),
}

/// What one step of the queue did.
pub(crate) enum Step {
    /// The queue is empty.
    Empty,
    /// Bytes to append to the write buffer (they were at the front).
    Bytes(Vec<u8>),
    /// Some of the front file went out; the socket may take more.
    Sent,
    /// The kernel's send buffer is full: wait for writability.
    WouldBlock,
    /// The front file is sent (or failed): fire this with that result.
    Finished(Resolver<()>, Result<(), io::Error>),
    /// The socket failed.
    SocketError(io::Error),
}

/// The ordered queue of a diverted connection: bytes and files.
#[derive(Default)]
pub(crate) struct SendQueue {
    items: RefCell<VecDeque<Queued>>,
    /// Bytes of the queued byte chunks (for `buffered`).
    bytes: Cell<usize>,
}

impl SendQueue {
    pub(crate) fn push_file(&self, f: QueuedFile) {
        self.items.borrow_mut().push_back(Queued::File(f));
    }

    pub(crate) fn push_bytes(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.bytes.set(self.bytes.get() + data.len());
        let mut items = self.items.borrow_mut();
        if let Some(Queued::Bytes(tail)) = items.back_mut() {
            tail.extend_from_slice(data);
        } else {
            items.push_back(Queued::Bytes(data.to_vec()));
        }
    }

    pub(crate) fn push_owned(&self, data: Vec<u8>) {
        if data.is_empty() {
            return;
        }
        self.bytes.set(self.bytes.get() + data.len());
        let mut items = self.items.borrow_mut();
        if let Some(Queued::Bytes(tail)) = items.back_mut() {
            tail.extend_from_slice(&data);
        } else {
            items.push_back(Queued::Bytes(data));
        }
    }

    /// Bytes held in memory behind the files (file bytes are not in memory: not counted).
    pub(crate) fn len(&self) -> usize {
        self.bytes.get()
    }

    /// Advances the front of the queue once, sending file bytes on `socket`. Holds no borrow
    /// when it returns: the caller may fire a Deferred, which may write or queue again.
    /// Whether a file is at the front: the write buffer then holds what goes right before
    /// it (an HTTP head), which may wait in the kernel to share segments with the file.
    pub(crate) fn file_is_next(&self) -> bool {
        matches!(self.items.borrow().front(), Some(Queued::File(f)) if f.remaining > 0)
    }

    pub(crate) fn step(&self, socket: BorrowedFd<'_>) -> Step {
        let mut items = self.items.borrow_mut();
        let front = match items.front_mut() {
            None => return Step::Empty,
            Some(Queued::Bytes(_)) => {
                let Some(Queued::Bytes(b)) = items.pop_front() else {
                    return Step::Empty;
                };
                self.bytes.set(self.bytes.get() - b.len());
                return Step::Bytes(b);
            }
            Some(Queued::File(f)) => f,
        };
        if front.remaining == 0 {
            return finish(&mut items, Ok(()));
        }
        let Ok(mut off) = libc::off_t::try_from(front.offset) else {
            return finish(
                &mut items,
                Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "file offset too large",
                )),
            );
        };
        let count = front.remaining.min(SENDFILE_MAX) as usize;
        // SAFETY: both descriptors are open for the duration of the call (the socket is
        // borrowed, the file is owned by the queue) and `off` is a valid `off_t`.
        let n =
            unsafe { libc::sendfile(socket.as_raw_fd(), front.file.as_raw_fd(), &mut off, count) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Step::WouldBlock,
                io::ErrorKind::Interrupted => Step::Sent,
                // `sendfile` cannot tell the file's errors from the socket's by kind; these
                // are the file's (a socket never reports them).
                _ if matches!(
                    e.raw_os_error(),
                    Some(libc::EIO | libc::EINVAL | libc::EOVERFLOW | libc::ESPIPE)
                ) =>
                {
                    finish(&mut items, Err(e))
                }
                _ => Step::SocketError(e),
            };
        }
        if n == 0 {
            // End of file before `remaining` bytes: it shrank.
            let left = front.remaining;
            return finish(
                &mut items,
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("file ended {left} bytes early"),
                )),
            );
        }
        let n = n as u64;
        front.offset += n;
        front.remaining -= n;
        if front.remaining == 0 {
            return finish(&mut items, Ok(()));
        }
        Step::Sent
    }

    /// Takes every queued file's resolver out (the connection closed).
    pub(crate) fn drain_resolvers(&self) -> Vec<Resolver<()>> {
        self.bytes.set(0);
        std::mem::take(&mut *self.items.borrow_mut())
            .into_iter()
            .filter_map(|i| match i {
                Queued::File(f) => Some(f.done),
                Queued::Bytes(_) => None,
            })
            .collect()
    }
}

fn finish(items: &mut VecDeque<Queued>, result: Result<(), io::Error>) -> Step {
    match items.pop_front() {
        Some(Queued::File(f)) => Step::Finished(f.done, result),
        _ => Step::Empty,
    }
}

/// Fires `done` with `result` (an I/O error becomes a failure).
pub(crate) fn fire(done: &Resolver<()>, result: Result<(), io::Error>) {
    let _ = match result {
        Ok(()) => done.callback(()),
        Err(e) => done.errback(Failure::new(e)),
    };
}

/// Fails `done`: the connection closed before the file was sent.
pub(crate) fn fail_closed(done: &Resolver<()>) {
    let _ = done.errback(Failure::new(ConnectionLost::because(
        "connection closed before the file was sent",
    )));
}

/// The fallback path: a pull producer that writes the file through the transport's normal
/// write path, one 64 KiB chunk each time the transport's buffer empties. Used by
/// [`Transport::send_file`] when the transport has no zero-copy path.
///
/// ```
/// use std::io::Write;
/// use twistor::testing::StringTransport;
///
/// let path = std::env::temp_dir().join(format!("twistor-doc-fp-{}", std::process::id()));
/// std::fs::File::create(&path).unwrap().write_all(b"hello, file").unwrap();
/// let st = StringTransport::new();
/// let t = st.transport();
/// t.write(b"head:");
/// let d = t.send_file(std::fs::File::open(&path).unwrap(), 7, 4);
/// // The test transport records a producer without driving it: pull as a consumer would.
/// while let Some((p, _)) = st.producer() {
///     p.resume_producing();
/// }
/// assert_eq!(st.value(), b"head:file");
/// assert!(d.called());
/// std::fs::remove_file(&path).unwrap();
/// ```
pub struct FileProducer {
    transport: Transport,
    file: File,
    offset: Cell<u64>,
    remaining: Cell<u64>,
    done: RefCell<Option<Resolver<()>>>,
    /// Registered on the transport by `start` (and so unregistered when done).
    registered: bool,
}

impl FileProducer {
    /// Registers a producer sending `file` on `transport`; its Deferred fires when it is all
    /// written (or fails: a short file, a read error, a connection that closed, a producer
    /// already registered).
    pub(crate) fn start(transport: &Transport, file: QueuedFile) {
        let QueuedFile {
            file,
            offset,
            remaining,
            done,
        } = file;
        if remaining == 0 {
            let _ = done.callback(());
            return;
        }
        let p = Rc::new(FileProducer::make(
            transport, file, offset, remaining, done, true,
        ));
        if let Err(e) = transport.register_producer(p.clone(), false)
            && let Some(done) = p.done.borrow_mut().take()
        {
            let _ = done.errback(Failure::new(e));
        }
    }

    /// A producer of `offset..offset + len` of `file` for `transport` that is **not**
    /// registered: for a protocol that keeps its own producer registered on the transport
    /// (an HTTP channel does) and calls this one's `resume_producing` each time it is asked
    /// for more. Each call writes one chunk of at most 64 KiB; the Deferred fires after the
    /// last.
    ///
    /// ```
    /// use std::io::Write;
    /// use twistor::testing::StringTransport;
    /// use twistor::transport::Producer;
    /// use twistor::transport::sendfile::FileProducer;
    ///
    /// let path = std::env::temp_dir().join(format!("twistor-doc-fpu-{}", std::process::id()));
    /// std::fs::File::create(&path).unwrap().write_all(&[7u8; 100_000]).unwrap();
    /// let st = StringTransport::new();
    /// let (p, d) = FileProducer::unregistered(&st.transport(), std::fs::File::open(&path).unwrap(), 0, 100_000);
    /// p.resume_producing();
    /// assert_eq!(st.value().len(), 65_536);
    /// p.resume_producing();
    /// assert!(d.called());
    /// assert_eq!(st.value().len(), 100_000);
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn unregistered(
        transport: &Transport,
        file: File,
        offset: u64,
        len: u64,
    ) -> (Rc<FileProducer>, Deferred<()>) {
        let (d, done) = Deferred::new();
        let p = Rc::new(FileProducer::make(
            transport, file, offset, len, done, false,
        ));
        if len == 0 {
            p.end(Ok(()));
        }
        (p, d)
    }

    fn make(
        transport: &Transport,
        file: File,
        offset: u64,
        len: u64,
        done: Resolver<()>,
        registered: bool,
    ) -> FileProducer {
        FileProducer {
            transport: transport.clone(),
            file,
            offset: Cell::new(offset),
            remaining: Cell::new(len),
            done: RefCell::new(Some(done)),
            registered,
        }
    }

    fn end(&self, result: Result<(), io::Error>) {
        let done = self.done.borrow_mut().take();
        if let Some(done) = done {
            if self.registered {
                self.transport.unregister_producer();
            }
            fire(&done, result);
        }
    }
}

impl Producer for FileProducer {
    fn pause_producing(&self) {}

    fn resume_producing(&self) {
        if self.done.borrow().is_none() {
            return;
        }
        let want = self.remaining.get().min(FALLBACK_CHUNK as u64) as usize;
        let mut buf = vec![0; want];
        let n = loop {
            match self.file.read_at(&mut buf, self.offset.get()) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.end(Err(e)),
            }
        };
        if n == 0 {
            let left = self.remaining.get();
            return self.end(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file ended {left} bytes early"),
            )));
        }
        buf.truncate(n);
        self.offset.set(self.offset.get() + n as u64);
        self.remaining.set(self.remaining.get() - n as u64);
        self.transport.write_owned(buf);
        if self.remaining.get() == 0 {
            self.end(Ok(()));
        }
    }

    fn stop_producing(&self) {
        let done = self.done.borrow_mut().take();
        if let Some(done) = done {
            fail_closed(&done);
        }
    }
}
