//! Request bodies as bytes or as a stream: [`BodyMode`], [`BodyReceiver`] and the errors a
//! streamed body ends with.
//!
//! By default a request's body is read whole into memory before the resource renders
//! ([`BodyMode::Buffered`], [`Request::body`]). A resource that takes uploads of any size
//! answers [`BodyMode::Stream`] from [`Resource::body_mode`]: it then renders as soon as the
//! head is in, and the body's bytes flow to the receiver given to
//! [`Request::deliver_body`] as they arrive, with back-pressure.
//!
//! # Invariants of a streamed body
//!
//! * **Who owns the bytes when.** The channel decodes the body (`Content-Length` or
//!   chunked) and hands each piece on at once. Until a receiver is attached, and while the
//!   application paused the body ([`Request::pause_body`]), pieces wait in the request's
//!   pending buffer; when more than [`PENDING_BOUND`] bytes wait, the connection stops
//!   reading, so the pending buffer holds at most that plus one read. Attaching the
//!   receiver (or resuming) hands the waiting bytes over first, in order, then reading
//!   resumes. The receiver sees every byte once, then exactly one `body_done`.
//! * **When the body timeout runs.** The site's `body_timeout` runs from the last byte read,
//!   as for a buffered body, except while the body is held by the application (paused, or
//!   waiting for a receiver with the pending buffer full): a slow consumer is not the
//!   client's fault. Resuming starts a full timeout again.
//! * **How a body ends.** `body_done(Ok(()))` once `Content-Length` bytes or the last chunk
//!   arrived. `body_done(Err(_))` with [`RequestBodyError`] (too large, timed out, malformed
//!   chunked coding, or discarded because the response finished first) or the connection's
//!   own failure (`ConnectionDone`/`ConnectionLost`) when the client went away. A body that
//!   fails while its response's head is not out yet is answered (413, 408 or 400) and the
//!   connection closes; [`Request::notify_finish`] then fails too.
//! * **What happens to an unread body.** When the response finishes before the body ended,
//!   the receiver (if any) gets `body_done(Err(RequestBodyError::Discarded))`, the waiting
//!   bytes are dropped, and the channel reads and discards the rest of the body (still under
//!   the body timeout and the resource's maximum; over it the connection closes) before it
//!   parses the next pipelined request on the same connection.
//! * **Who holds the receiver.** The request does, until `body_done` returns; then it is
//!   dropped. So a receiver may keep a clone of its request (to answer from `body_done`)
//!   without a reference cycle outliving the body. A receiver may call any method of the
//!   request, pausing or resuming included, from inside its own calls.
//!
//! [`Request::body`]: crate::web::Request::body
//! [`Request::deliver_body`]: crate::web::Request::deliver_body
//! [`Request::pause_body`]: crate::web::Request::pause_body
//! [`Request::notify_finish`]: crate::web::Request::notify_finish
//! [`Resource::body_mode`]: crate::web::resource::Resource::body_mode

use std::cell::{Cell, RefCell};

use crate::Failure;

/// Bytes of a streamed body kept for a receiver that is not attached or paused before the
/// connection stops reading.
///
/// ```
/// assert_eq!(twistor::web::request_body::PENDING_BOUND, 64 * 1024);
/// ```
pub const PENDING_BOUND: usize = 64 * 1024;

/// How a resource takes a request's body, chosen by
/// [`Resource::body_mode`](crate::web::resource::Resource::body_mode) once the resource is
/// found and before the body is read.
///
/// ```
/// use twistor::web::BodyMode;
/// assert_eq!(BodyMode::default(), BodyMode::Buffered);
/// let upload = BodyMode::Stream { max: Some(1 << 30) };
/// assert_ne!(upload, BodyMode::Buffered);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyMode {
    /// Read whole into memory (up to the site's `HttpLimits::max_body`, 413 beyond), then
    /// render; the resource reads [`Request::body`](crate::web::Request::body).
    #[default]
    Buffered,
    /// Render as soon as the head is in; the body flows to
    /// [`Request::deliver_body`](crate::web::Request::deliver_body) as it arrives.
    Stream {
        /// The largest body this resource takes, in bytes (`None`: no limit); a larger one
        /// ends with [`RequestBodyError::TooLarge`], a 413 and a closed connection.
        max: Option<u64>,
    },
}

/// Where a streamed request body goes (the server-side counterpart of the protocol a client
/// response's body is delivered to): its bytes in order, then one `body_done`.
///
/// ```
/// use twistor::Failure;
/// use twistor::web::BodyReceiver;
///
/// struct Count(u64);
/// impl BodyReceiver for Count {
///     fn data_received(&mut self, data: &[u8]) { self.0 += data.len() as u64 }
///     fn body_done(&mut self, result: Result<(), Failure>) { assert!(result.is_ok()) }
/// }
/// let mut c = Count(0);
/// c.data_received(b"abc");
/// c.body_done(Ok(()));
/// assert_eq!(c.0, 3);
/// ```
pub trait BodyReceiver: 'static {
    /// The next bytes of the body.
    fn data_received(&mut self, data: &[u8]);
    /// The body ended: `Ok` when it was complete, else why not (see the module docs).
    fn body_done(&mut self, result: Result<(), Failure>);
}

/// Why a streamed request body did not end well.
///
/// ```
/// use twistor::web::request_body::RequestBodyError;
/// assert!(RequestBodyError::TooLarge(10).to_string().contains("10"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestBodyError {
    /// The body is larger than the resource's maximum (in bytes).
    #[error("the request body is larger than {0} bytes")]
    TooLarge(u64),
    /// No byte of the body arrived within the body timeout.
    #[error("the request body timed out")]
    Timeout,
    /// The chunked coding of the body is malformed.
    #[error("malformed chunked request body")]
    Malformed,
    /// The response finished before the body was read: the rest is discarded.
    #[error("the response finished before the request body was read; the rest is discarded")]
    Discarded,
    /// `deliver_body` was called a second time on a streamed body.
    #[error("a streamed request body can be delivered only once")]
    AlreadyDelivered,
}

/// The state of one streamed body, shared by the channel (which pushes bytes in) and the
/// request (which attaches the receiver and pauses). No borrow is held across a call to the
/// receiver: it may call back into the request.
#[derive(Default)]
pub(crate) struct BodyStream {
    state: RefCell<State>,
    /// Paused by the application.
    paused: Cell<bool>,
    /// A receiver call is on the stack: a nested pump leaves the work to it.
    delivering: Cell<bool>,
    /// The most bytes that ever waited at once (for tests and diagnostics).
    high_water: Cell<usize>,
}

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    receiver: Option<Box<dyn BodyReceiver>>,
    attached: bool,
    end: Option<Result<(), Failure>>,
    /// `body_done` was called (or is being called): nothing more goes to the receiver.
    closed: bool,
}

impl BodyStream {
    /// Attaches the receiver and hands it what waits; once only.
    pub(crate) fn attach(&self, receiver: Box<dyn BodyReceiver>) -> Result<(), RequestBodyError> {
        {
            let mut s = self.state.borrow_mut();
            if s.attached {
                return Err(RequestBodyError::AlreadyDelivered);
            }
            s.attached = true;
            s.receiver = Some(receiver);
        }
        self.pump();
        Ok(())
    }

    /// The channel's next decoded bytes.
    pub(crate) fn push(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let direct = {
            let mut s = self.state.borrow_mut();
            if s.closed {
                return;
            }
            if s.pending.is_empty() && !self.paused.get() && !self.delivering.get() {
                s.receiver.take()
            } else {
                None
            }
        };
        match direct {
            // The usual case: no copy.
            Some(mut r) => {
                self.delivering.set(true);
                r.data_received(data);
                self.delivering.set(false);
                self.put_back(r);
                // The receiver may have resumed a pause it made inside the call.
                self.pump();
            }
            None => {
                let mut s = self.state.borrow_mut();
                s.pending.extend_from_slice(data);
                self.high_water
                    .set(self.high_water.get().max(s.pending.len()));
            }
        }
    }

    /// The body ended (`Ok`) or failed; a second end is ignored.
    pub(crate) fn end(&self, result: Result<(), Failure>) {
        {
            let mut s = self.state.borrow_mut();
            if s.end.is_some() || s.closed {
                return;
            }
            if result.is_err() {
                // A failed body is reported at once, pause or not: what waits is dropped.
                s.pending = Vec::new();
            }
            s.end = Some(result);
        }
        self.pump();
    }

    /// The response finished first: the waiting bytes are dropped, the receiver (if any) is
    /// told at once, and no more bytes go anywhere.
    pub(crate) fn discard(&self, why: Failure) {
        self.end(Err(why));
    }

    pub(crate) fn pause(&self) {
        self.paused.set(true);
    }

    pub(crate) fn resume(&self) {
        self.paused.set(false);
        self.pump();
    }

    /// Whether the connection should stop reading for this body: the application paused
    /// it, or too much waits for a receiver.
    pub(crate) fn holds(&self) -> bool {
        let s = self.state.borrow();
        !s.closed && s.end.is_none() && (self.paused.get() || s.pending.len() >= PENDING_BOUND)
    }

    pub(crate) fn high_water(&self) -> usize {
        self.high_water.get()
    }

    fn put_back(&self, r: Box<dyn BodyReceiver>) {
        let mut s = self.state.borrow_mut();
        if !s.closed {
            s.receiver = Some(r);
        }
    }

    /// Hands waiting bytes, then the end, to the receiver while it is attached and not
    /// paused.
    fn pump(&self) {
        if self.delivering.get() {
            return;
        }
        loop {
            // A failed body's end is not held back by a pause.
            if self.paused.get() && !matches!(self.state.borrow().end, Some(Err(_))) {
                return;
            }
            let (mut r, data, end) = {
                let mut s = self.state.borrow_mut();
                if s.closed {
                    return;
                }
                let Some(r) = s.receiver.take() else {
                    return;
                };
                if !s.pending.is_empty() {
                    (r, std::mem::take(&mut s.pending), None)
                } else if let Some(end) = s.end.take() {
                    s.closed = true;
                    (r, Vec::new(), Some(end))
                } else {
                    s.receiver = Some(r);
                    return;
                }
            };
            self.delivering.set(true);
            match end {
                Some(end) => {
                    r.body_done(end);
                    self.delivering.set(false);
                    return;
                }
                None => r.data_received(&data),
            }
            self.delivering.set(false);
            self.put_back(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[derive(Default)]
    struct Log {
        data: Vec<u8>,
        calls: usize,
        done: Option<Result<(), String>>,
    }
    struct Rx(Rc<RefCell<Log>>);
    impl BodyReceiver for Rx {
        fn data_received(&mut self, d: &[u8]) {
            let mut l = self.0.borrow_mut();
            l.data.extend_from_slice(d);
            l.calls += 1;
        }
        fn body_done(&mut self, r: Result<(), Failure>) {
            assert!(self.0.borrow().done.is_none(), "one body_done");
            self.0.borrow_mut().done = Some(r.map_err(|f| f.to_string()));
        }
    }

    fn rx() -> (Rc<RefCell<Log>>, Box<dyn BodyReceiver>) {
        let log = Rc::new(RefCell::new(Log::default()));
        (log.clone(), Box::new(Rx(log)))
    }

    #[test]
    fn bytes_before_attach_are_handed_over_in_order_then_the_end() {
        let s = BodyStream::default();
        s.push(b"ab");
        s.push(b"cd");
        s.end(Ok(()));
        let (log, r) = rx();
        s.attach(r).unwrap();
        let l = log.borrow();
        assert_eq!(l.data, b"abcd");
        assert_eq!(l.calls, 1, "waiting bytes go in one call");
        assert_eq!(l.done, Some(Ok(())));
    }

    #[test]
    fn a_paused_stream_keeps_bytes_and_its_end_until_resumed() {
        let s = BodyStream::default();
        let (log, r) = rx();
        s.attach(r).unwrap();
        s.push(b"1");
        s.pause();
        s.push(b"2");
        s.end(Ok(()));
        assert_eq!(log.borrow().data, b"1");
        assert!(log.borrow().done.is_none());
        s.resume();
        assert_eq!(log.borrow().data, b"12");
        assert_eq!(log.borrow().done, Some(Ok(())));
    }

    #[test]
    fn the_pending_bound_holds_reading_until_attach() {
        let s = BodyStream::default();
        s.push(&vec![0; PENDING_BOUND - 1]);
        assert!(!s.holds());
        s.push(b"x");
        assert!(s.holds());
        let (log, r) = rx();
        s.attach(r).unwrap();
        assert!(!s.holds());
        assert_eq!(log.borrow().data.len(), PENDING_BOUND);
        assert_eq!(s.high_water(), PENDING_BOUND);
    }

    #[test]
    fn discard_drops_waiting_bytes_and_fails_the_receiver_even_when_paused() {
        let s = BodyStream::default();
        let (log, r) = rx();
        s.attach(r).unwrap();
        s.pause();
        s.push(b"lost");
        s.discard(Failure::new(RequestBodyError::Discarded));
        let l = log.borrow();
        assert!(l.data.is_empty());
        assert!(l.done.as_ref().is_some_and(|d| d.is_err()));
        drop(l);
        s.push(b"more");
        s.end(Ok(()));
        assert!(log.borrow().data.is_empty());
    }

    #[test]
    fn the_receiver_is_dropped_once_told_the_end() {
        struct Flag(Rc<Cell<bool>>);
        impl BodyReceiver for Flag {
            fn data_received(&mut self, _: &[u8]) {}
            fn body_done(&mut self, _: Result<(), Failure>) {}
        }
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        for end in [Ok(()), Err(Failure::new(RequestBodyError::Timeout))] {
            let dropped = Rc::new(Cell::new(false));
            let s = BodyStream::default();
            s.attach(Box::new(Flag(dropped.clone()))).unwrap();
            s.push(b"x");
            assert!(!dropped.get());
            s.end(end);
            assert!(dropped.get());
        }
    }

    #[test]
    fn a_second_attach_is_refused() {
        let s = BodyStream::default();
        s.attach(rx().1).unwrap();
        assert_eq!(s.attach(rx().1), Err(RequestBodyError::AlreadyDelivered));
    }
}
