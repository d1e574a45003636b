//! Request bodies: the [`BodyProducer`] trait (Twisted's `IBodyProducer`), the
//! [`BodyConsumer`] the protocol hands it, and three producers: [`BytesProducer`] (known
//! length, replayable), [`FileBodyProducer`] (a file read a chunk per cooperator step) and
//! [`StreamProducer`] (bytes pushed by the caller, unknown length: sent chunked).
//!
//! The protocol registers the producer on the connection as a streaming producer: when the
//! connection's write buffer passes its high-water mark the producer is paused, and resumed
//! once it drains, so a large body never sits whole in memory.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::Read;
use std::rc::Rc;

use crate::task::{CooperativeTask, Cooperator};
use crate::transport::Transport;
use crate::web::chunked::write_chunk;
use crate::{Deferred, Failure, Resolver};

use super::error::WrongBodyLength;

/// Something that writes a request body (Twisted's `IBodyProducer`).
///
/// `length` decides the framing: `Some(n)` sends `Content-Length: n` (and writing more or
/// fewer bytes fails the request with [`WrongBodyLength`]), `None` sends the body chunked.
/// `start_producing` writes to the consumer, now or later, and fires its Deferred when the
/// body is complete (a failure ends the request without the terminating chunk, so the server
/// sees the truncation).
pub trait BodyProducer {
    /// The body's length, if known.
    fn length(&self) -> Option<u64>;
    /// Starts writing the body into `consumer`.
    fn start_producing(&self, consumer: BodyConsumer) -> Deferred<()>;
    /// The connection's buffer is full: stop writing until `resume_producing`.
    fn pause_producing(&self) {}
    /// Write again.
    fn resume_producing(&self) {}
    /// Stop for good (the request failed or was cancelled).
    fn stop_producing(&self);
    /// A fresh producer of the same body, if the body can be sent again (a retry on a new
    /// connection, a 307/308 redirect). The default: it cannot.
    fn replay(&self) -> Option<Rc<dyn BodyProducer>> {
        None
    }
}

enum Framing {
    Length { remaining: u64 },
    Chunked,
}

struct ConsumerState {
    transport: Transport,
    framing: RefCell<Framing>,
    error: RefCell<Option<WrongBodyLength>>,
    closed: Cell<bool>,
    /// Run once when the producer writes past its declared length (the protocol fails the
    /// request and stops the producer at once, not when the producer says it is done).
    on_overflow: RefCell<Option<Box<dyn FnOnce()>>>,
}

/// Where a [`BodyProducer`] writes: frames what it is given (chunks, or a length check) and
/// writes it to the connection.
///
/// ```
/// use twistor::web::client::{BodyConsumer, BodyProducer, BytesProducer};
/// use twistor::testing::{StringTransport, success_result_of};
///
/// let st = StringTransport::new();
/// let consumer = BodyConsumer::chunked(st.transport());
/// let d = BytesProducer::new("abcdef").start_producing(consumer.clone());
/// success_result_of(&d);
/// consumer.finish().unwrap();
/// assert_eq!(st.value(), b"6\r\nabcdef\r\n0\r\n\r\n");
/// ```
#[derive(Clone)]
pub struct BodyConsumer {
    st: Rc<ConsumerState>,
}

impl BodyConsumer {
    fn build(transport: Transport, framing: Framing) -> BodyConsumer {
        BodyConsumer {
            st: Rc::new(ConsumerState {
                transport,
                framing: RefCell::new(framing),
                error: RefCell::new(None),
                closed: Cell::new(false),
                on_overflow: RefCell::new(None),
            }),
        }
    }

    /// A consumer that writes chunks.
    pub fn chunked(transport: Transport) -> BodyConsumer {
        Self::build(transport, Framing::Chunked)
    }

    /// A consumer that passes exactly `length` bytes.
    pub fn with_length(transport: Transport, length: u64) -> BodyConsumer {
        Self::build(transport, Framing::Length { remaining: length })
    }

    /// Writes body bytes. After an error (too many bytes) or the end, writes are ignored.
    pub fn write(&self, data: &[u8]) {
        if self.st.closed.get() || data.is_empty() {
            return;
        }
        let overflow = {
            let mut framing = self.st.framing.borrow_mut();
            match &mut *framing {
                Framing::Chunked => {
                    let mut out = Vec::with_capacity(data.len() + 12);
                    write_chunk(&mut out, data);
                    self.st.transport.write_owned(out);
                    false
                }
                Framing::Length { remaining } if data.len() as u64 > *remaining => {
                    *self.st.error.borrow_mut() = Some(WrongBodyLength::TooMany);
                    self.st.closed.set(true);
                    true
                }
                Framing::Length { remaining } => {
                    *remaining -= data.len() as u64;
                    self.st.transport.write(data);
                    false
                }
            }
        };
        if overflow {
            let hook = self.st.on_overflow.borrow_mut().take();
            if let Some(f) = hook {
                f();
            }
        }
    }

    /// Runs `f` once if the producer writes more than the declared length.
    pub(crate) fn set_on_overflow(&self, f: impl FnOnce() + 'static) {
        *self.st.on_overflow.borrow_mut() = Some(Box::new(f));
    }

    /// Whether the producer broke the length rule (then it should stop).
    pub fn failed(&self) -> Option<WrongBodyLength> {
        *self.st.error.borrow()
    }

    /// Ends the body: the terminating chunk, or the check that the declared length was
    /// written.
    pub fn finish(&self) -> Result<(), WrongBodyLength> {
        if let Some(e) = self.failed() {
            return Err(e);
        }
        if self.st.closed.replace(true) {
            return Ok(());
        }
        match &*self.st.framing.borrow() {
            Framing::Chunked => {
                self.st.transport.write(crate::web::chunked::LAST_CHUNK);
                Ok(())
            }
            Framing::Length { remaining: 0 } => Ok(()),
            Framing::Length { .. } => Err(WrongBodyLength::TooFew),
        }
    }

    /// Ignores later writes (the request ended).
    pub(crate) fn close(&self) {
        self.st.closed.set(true);
    }
}

/// A body held in memory: known length, sent in one write, replayable.
///
/// ```
/// use twistor::web::client::{BodyProducer, BytesProducer};
/// let p = BytesProducer::new(b"hello".to_vec());
/// assert_eq!(p.length(), Some(5));
/// assert!(p.replay().is_some());
/// ```
#[derive(Debug, Clone)]
pub struct BytesProducer {
    body: Rc<[u8]>,
}

impl BytesProducer {
    /// A producer of `body`.
    pub fn new(body: impl AsRef<[u8]>) -> BytesProducer {
        BytesProducer {
            body: Rc::from(body.as_ref()),
        }
    }
}

impl BodyProducer for BytesProducer {
    fn length(&self) -> Option<u64> {
        Some(self.body.len() as u64)
    }
    fn start_producing(&self, consumer: BodyConsumer) -> Deferred<()> {
        consumer.write(&self.body);
        Deferred::succeed(())
    }
    fn stop_producing(&self) {}
    fn replay(&self) -> Option<Rc<dyn BodyProducer>> {
        Some(Rc::new(self.clone()))
    }
}

/// A body read from a file, one `read_size` chunk (64 KiB by default) per cooperator step
/// (Twisted's `FileBodyProducer`). The length is what remains of the file from its current
/// position; the file is closed at the end, on a failure and on `stop_producing`.
/// Cancelling the Deferred of `start_producing` stops the reading too.
///
/// ```
/// use std::io::Write;
/// use twistor::task::{Clock, Cooperator};
/// use twistor::testing::{StringTransport, success_result_of};
/// use twistor::web::client::{BodyConsumer, BodyProducer, FileBodyProducer};
///
/// let path = std::env::temp_dir().join(format!("twistor-fbp-doc-{}", std::process::id()));
/// std::fs::File::create(&path).unwrap().write_all(b"file body").unwrap();
/// let clock = Clock::new();
/// let p = FileBodyProducer::new(std::fs::File::open(&path).unwrap(), Cooperator::new(clock.clone()));
/// assert_eq!(p.length(), Some(9));
/// let st = StringTransport::new();
/// let d = p.start_producing(BodyConsumer::with_length(st.transport(), 9));
/// clock.advance(1.0);
/// success_result_of(&d);
/// assert_eq!(st.value(), b"file body");
/// std::fs::remove_file(&path).unwrap();
/// ```
pub struct FileBodyProducer {
    file: RefCell<Option<File>>,
    length: Option<u64>,
    cooperator: Cooperator,
    read_size: usize,
    task: RefCell<Option<CooperativeTask>>,
}

impl FileBodyProducer {
    /// A producer of the rest of `file`, stepped by `cooperator`.
    pub fn new(mut file: File, cooperator: Cooperator) -> FileBodyProducer {
        use std::io::Seek;
        let length = match (file.stream_position(), file.metadata()) {
            (Ok(pos), Ok(meta)) if meta.is_file() => Some(meta.len().saturating_sub(pos)),
            _ => None,
        };
        FileBodyProducer {
            file: RefCell::new(Some(file)),
            length,
            cooperator,
            read_size: 65536,
            task: RefCell::new(None),
        }
    }

    /// Reads `size` bytes per step (at least 1).
    pub fn read_size(mut self, size: usize) -> FileBodyProducer {
        self.read_size = size.max(1);
        self
    }
}

impl BodyProducer for FileBodyProducer {
    fn length(&self) -> Option<u64> {
        self.length
    }

    fn start_producing(&self, consumer: BodyConsumer) -> Deferred<()> {
        let Some(mut file) = self.file.borrow_mut().take() else {
            return Deferred::fail(Failure::msg("FileBodyProducer: already started or stopped"));
        };
        let mut buf = vec![0u8; self.read_size];
        let mut done = false;
        let steps = std::iter::from_fn(move || {
            if done {
                return None;
            }
            match file.read(&mut buf) {
                Ok(0) => {
                    done = true;
                    None
                }
                Ok(n) => {
                    consumer.write(&buf[..n]);
                    Some(Ok(()))
                }
                Err(e) => {
                    done = true;
                    Some(Err(Failure::new(e)))
                }
            }
        });
        let task = self.cooperator.cooperate(steps);
        // Cancelling the result stops the reading, as Twisted's does.
        let stopper = task.clone();
        let (d, r) = Deferred::with_canceller(move |r: &Resolver<()>| {
            // Failed first: stopping the task fires its own end, which is not the answer.
            let _ = r.errback(crate::defer::CancelledError);
            let _ = stopper.stop();
        });
        let _ = task.when_done().add_both(move |res| {
            let _ = r.fire(res);
            Ok(())
        });
        *self.task.borrow_mut() = Some(task);
        d
    }

    fn pause_producing(&self) {
        if let Some(t) = &*self.task.borrow() {
            let _ = t.pause();
        }
    }

    fn resume_producing(&self) {
        if let Some(t) = &*self.task.borrow() {
            let _ = t.resume();
        }
    }

    fn stop_producing(&self) {
        self.file.borrow_mut().take();
        let task = self.task.borrow_mut().take();
        if let Some(t) = task {
            let _ = t.stop();
        }
    }
}

struct StreamState {
    consumer: Option<BodyConsumer>,
    pending: Vec<Vec<u8>>,
    finished: Option<Result<(), Failure>>,
    done: Option<Resolver<()>>,
    paused: bool,
    stopped: bool,
}

/// A body of unknown length pushed by the caller through a [`StreamWriter`]: sent chunked.
/// Writes made before the request starts are kept and sent first.
///
/// ```
/// use std::rc::Rc;
/// use twistor::testing::{StringTransport, success_result_of};
/// use twistor::web::client::{BodyConsumer, BodyProducer, StreamProducer};
///
/// let (producer, writer) = StreamProducer::new();
/// assert_eq!(producer.length(), None);
/// writer.write(b"early ");
/// let st = StringTransport::new();
/// let consumer = BodyConsumer::chunked(st.transport());
/// let d = producer.start_producing(consumer);
/// writer.write(b"late");
/// writer.finish();
/// success_result_of(&d);
/// assert_eq!(st.value(), b"6\r\nearly \r\n4\r\nlate\r\n");
/// ```
pub struct StreamProducer {
    st: Rc<RefCell<StreamState>>,
}

/// The caller's side of a [`StreamProducer`].
#[derive(Clone)]
pub struct StreamWriter {
    st: Rc<RefCell<StreamState>>,
}

impl StreamProducer {
    /// A producer and the writer that feeds it.
    pub fn new() -> (Rc<StreamProducer>, StreamWriter) {
        let st = Rc::new(RefCell::new(StreamState {
            consumer: None,
            pending: Vec::new(),
            finished: None,
            done: None,
            paused: false,
            stopped: false,
        }));
        (
            Rc::new(StreamProducer { st: st.clone() }),
            StreamWriter { st },
        )
    }
}

impl StreamWriter {
    /// Sends `data` as one chunk (kept until the request starts).
    pub fn write(&self, data: &[u8]) {
        let consumer = {
            let mut st = self.st.borrow_mut();
            if st.stopped || st.finished.is_some() {
                return;
            }
            match &st.consumer {
                Some(c) => c.clone(),
                None => {
                    st.pending.push(data.to_vec());
                    return;
                }
            }
        };
        consumer.write(data);
    }

    /// Whether the connection asked the writer to wait (its buffer is full).
    pub fn paused(&self) -> bool {
        self.st.borrow().paused
    }

    /// Whether the request ended (failed or was cancelled): further writes are dropped.
    pub fn stopped(&self) -> bool {
        self.st.borrow().stopped
    }

    /// Ends the body.
    pub fn finish(&self) {
        self.end(Ok(()));
    }

    /// Ends the body with an error: the request fails and the terminating chunk is not sent.
    pub fn fail(&self, reason: Failure) {
        self.end(Err(reason));
    }

    fn end(&self, result: Result<(), Failure>) {
        let done = {
            let mut st = self.st.borrow_mut();
            if st.finished.is_some() {
                return;
            }
            match st.done.take() {
                Some(d) => Some((d, result)),
                None => {
                    st.finished = Some(result);
                    None
                }
            }
        };
        if let Some((d, r)) = done {
            self.st.borrow_mut().finished = Some(Ok(()));
            let _ = d.fire(r);
        }
    }
}

impl BodyProducer for StreamProducer {
    fn length(&self) -> Option<u64> {
        None
    }

    fn start_producing(&self, consumer: BodyConsumer) -> Deferred<()> {
        let (pending, finished) = {
            let mut st = self.st.borrow_mut();
            st.consumer = Some(consumer.clone());
            (std::mem::take(&mut st.pending), st.finished.take())
        };
        for p in pending {
            consumer.write(&p);
        }
        if let Some(r) = finished {
            self.st.borrow_mut().finished = Some(Ok(()));
            return match r {
                Ok(()) => Deferred::succeed(()),
                Err(f) => Deferred::fail(f),
            };
        }
        let (d, r) = Deferred::new();
        self.st.borrow_mut().done = Some(r);
        d
    }

    fn pause_producing(&self) {
        self.st.borrow_mut().paused = true;
    }

    fn resume_producing(&self) {
        self.st.borrow_mut().paused = false;
    }

    fn stop_producing(&self) {
        let mut st = self.st.borrow_mut();
        st.stopped = true;
        st.consumer = None;
        st.done = None;
    }
}
