//! [`Response`] (Twisted's `IResponse`) and body delivery: [`Response::deliver_body`] to a
//! [`Protocol`], [`read_body`] to bytes.
//!
//! # Body delivery
//!
//! The response's Deferred fires once the head is parsed. The connection then stops reading
//! until the body is asked for, so an unread body is not buffered without bound; bytes that
//! arrived with the head are kept and handed over first. The body protocol sees a transport
//! whose `pause_producing`/`resume_producing` pause and resume reading from the connection
//! (back-pressure from the consumer up to the socket) and whose `stop_producing` or
//! `lose_connection` aborts the connection; once the body ended they do nothing (the
//! connection may be back in its pool, serving another response). Reading resumes before the
//! protocol's `connection_made`, so a pause made there holds. Its `connection_lost` gets
//! [`ResponseDone`], [`PotentialDataLoss`] (a body delimited by the connection close), or
//! [`ResponseFailed`].
//!
//! [`ResponseFailed`]: super::error::ResponseFailed

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::protocol::{Handle, Protocol, ProtocolDriver};
use crate::transport::{Address, Producer, ProducerError, Transport, TransportImpl};
use crate::web::Headers;
use crate::{Deferred, Failure};

use super::error::{
    BodyAlreadyDelivered, BodyTooLarge, PartialDownloadError, PotentialDataLoss, ResponseDone,
};
use super::uri::Uri;

/// Where a body's bytes go.
pub(crate) trait BodySink {
    fn data(&mut self, data: &[u8]);
    fn end(&mut self, reason: Failure);
}

/// Where a body comes from: the connection, or a decoder over another source.
pub(crate) trait BodySource {
    /// Hands the body (buffered bytes first) to `sink`; once only.
    fn deliver(&self, sink: Box<dyn BodySink>) -> Result<(), BodyAlreadyDelivered>;
    /// Pauses, resumes or stops the body's flow.
    fn control(&self) -> Rc<dyn Producer>;
}

#[derive(Default)]
struct ChanState {
    buffered: Vec<u8>,
    end: Option<Failure>,
    delivered: bool,
    ended: bool,
}

/// Flow control that does nothing once the body ended: by then the connection may be back
/// in its pool, carrying another response, which a late pause or stop must not touch.
struct Guarded {
    ended: Rc<Cell<bool>>,
    inner: Rc<dyn Producer>,
}

impl Producer for Guarded {
    fn pause_producing(&self) {
        if !self.ended.get() {
            self.inner.pause_producing();
        }
    }
    fn resume_producing(&self) {
        if !self.ended.get() {
            self.inner.resume_producing();
        }
    }
    fn stop_producing(&self) {
        if !self.ended.get() {
            self.inner.stop_producing();
        }
    }
}

/// A body coming from a connection: buffered until delivered, then passed through.
pub(crate) struct BodyChannel {
    st: RefCell<ChanState>,
    ended: Rc<Cell<bool>>,
    sink: RefCell<Option<Box<dyn BodySink>>>,
    control: Rc<dyn Producer>,
}

impl BodyChannel {
    pub(crate) fn new(control: Rc<dyn Producer>) -> Rc<BodyChannel> {
        let ended = Rc::new(Cell::new(false));
        Rc::new(BodyChannel {
            st: RefCell::new(ChanState::default()),
            control: Rc::new(Guarded {
                ended: ended.clone(),
                inner: control,
            }),
            ended,
            sink: RefCell::new(None),
        })
    }

    /// Body bytes from the connection.
    pub(crate) fn push(&self, data: &[u8]) {
        if data.is_empty() || self.st.borrow().ended {
            return;
        }
        let sink = self.sink.borrow_mut().take();
        match sink {
            Some(mut s) => {
                s.data(data);
                let mut slot = self.sink.borrow_mut();
                if slot.is_none() && !self.st.borrow().ended {
                    *slot = Some(s);
                }
            }
            None => self.st.borrow_mut().buffered.extend_from_slice(data),
        }
    }

    /// The body ended, for `reason`.
    pub(crate) fn finish(&self, reason: Failure) {
        {
            let mut st = self.st.borrow_mut();
            if st.ended {
                return;
            }
            st.ended = true;
            self.ended.set(true);
            if !st.delivered {
                st.end = Some(reason);
                return;
            }
        }
        let sink = self.sink.borrow_mut().take();
        if let Some(mut s) = sink {
            s.end(reason);
        }
    }
}

impl BodySource for BodyChannel {
    fn deliver(&self, mut sink: Box<dyn BodySink>) -> Result<(), BodyAlreadyDelivered> {
        let (buffered, end) = {
            let mut st = self.st.borrow_mut();
            if st.delivered {
                return Err(BodyAlreadyDelivered);
            }
            st.delivered = true;
            (std::mem::take(&mut st.buffered), st.end.take())
        };
        if !buffered.is_empty() {
            sink.data(&buffered);
        }
        match end {
            Some(reason) => sink.end(reason),
            None => *self.sink.borrow_mut() = Some(sink),
        }
        Ok(())
    }

    fn control(&self) -> Rc<dyn Producer> {
        self.control.clone()
    }
}

/// An HTTP response (Twisted's `IResponse`): status, headers and a body to deliver once.
///
/// Unlike Twisted, `headers` holds every header the server sent, `Content-Length`,
/// `Connection` and `Transfer-Encoding` included.
///
/// ```
/// use twistor::web::client::Response;
/// let r = Response::from_bytes(200, "OK", b"hello".to_vec());
/// assert_eq!(r.length, Some(5));
/// let d = twistor::web::client::read_body(&r);
/// assert_eq!(twistor::testing::success_result_of(&d), b"hello");
/// ```
#[derive(Clone)]
pub struct Response {
    /// The HTTP version, `(1, 1)` or `(1, 0)`.
    pub version: (u8, u8),
    /// The status code.
    pub code: u16,
    /// The reason phrase (may be empty).
    pub phrase: String,
    /// The response headers, as sent.
    pub headers: Headers,
    /// The body's length if the framing declares one (`None`: chunked, close-delimited, or
    /// decoded).
    pub length: Option<u64>,
    /// The method of the request this answers.
    pub request_method: String,
    /// The URI of the request this answers (set by the agent).
    pub request_uri: Option<Uri>,
    pub(crate) previous: Option<Box<Response>>,
    pub(crate) body: Rc<dyn BodySource>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("version", &self.version)
            .field("code", &self.code)
            .field("phrase", &self.phrase)
            .field("headers", &self.headers)
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

struct NoControl;
impl Producer for NoControl {
    fn pause_producing(&self) {}
    fn resume_producing(&self) {}
    fn stop_producing(&self) {}
}

impl Response {
    pub(crate) fn new(
        version: (u8, u8),
        code: u16,
        phrase: String,
        headers: Headers,
        length: Option<u64>,
        request_method: String,
        body: Rc<dyn BodySource>,
    ) -> Response {
        Response {
            version,
            code,
            phrase,
            headers,
            length,
            request_method,
            request_uri: None,
            previous: None,
            body,
        }
    }

    /// A complete response with an in-memory body (tests, canned answers).
    pub fn from_bytes(code: u16, phrase: &str, body: Vec<u8>) -> Response {
        let chan = BodyChannel::new(Rc::new(NoControl));
        let len = body.len() as u64;
        chan.push(&body);
        chan.finish(Failure::new(ResponseDone));
        Response::new(
            (1, 1),
            code,
            phrase.to_string(),
            Headers::new(),
            Some(len),
            "GET".into(),
            chan,
        )
    }

    /// The response this one followed (set by the redirect agents).
    ///
    /// ```
    /// use twistor::web::client::Response;
    /// let r = Response::from_bytes(200, "OK", vec![]);
    /// assert!(r.previous_response().is_none());
    /// ```
    pub fn previous_response(&self) -> Option<&Response> {
        self.previous.as_deref()
    }

    /// Delivers the body to `protocol` (Twisted's `deliverBody`): `connection_made`, buffered
    /// bytes, then `data_received` as the body arrives and `connection_lost` with the end
    /// reason (see the module docs). A second call fails with [`BodyAlreadyDelivered`].
    ///
    /// ```
    /// use std::cell::{Cell, RefCell};
    /// use std::rc::Rc;
    /// use twistor::prelude::*;
    /// use twistor::web::client::Response;
    /// use twistor::web::client::error::ResponseDone;
    ///
    /// // The body protocol is dropped when its body ends: it reports through a shared cell.
    /// struct Collect(Rc<RefCell<(Vec<u8>, bool)>>);
    /// impl Protocol for Collect {
    ///     fn data_received(&mut self, _cx: &Context<Self>, d: &[u8]) { self.0.borrow_mut().0.extend_from_slice(d) }
    ///     fn connection_lost(&mut self, _cx: &Context<Self>, why: Failure) { self.0.borrow_mut().1 = why.is::<ResponseDone>() }
    /// }
    /// let r = Response::from_bytes(200, "OK", b"abc".to_vec());
    /// let seen = Rc::new(RefCell::new((Vec::new(), false)));
    /// r.deliver_body(Collect(seen.clone())).unwrap();
    /// assert_eq!(*seen.borrow(), (b"abc".to_vec(), true));
    /// assert!(r.deliver_body(Collect(seen.clone())).is_err());
    /// ```
    #[doc(alias = "deliverBody")]
    pub fn deliver_body<P: Protocol>(
        &self,
        protocol: P,
    ) -> Result<Handle<P>, BodyAlreadyDelivered> {
        let control = self.body.control();
        // Reading resumes before the protocol sees its transport, so a pause it makes in
        // `connection_made` holds.
        control.resume_producing();
        let transport = Transport::new(Rc::new(BodyTransport { control }));
        let (driver, handle) = crate::protocol::attach(protocol, transport);
        driver.make_connection();
        // The sink holds the driver: it keeps the protocol alive until the body ends.
        self.body.deliver(Box::new(ProtocolSink { driver }))?;
        Ok(handle)
    }

    /// The same response with another body (decoders).
    pub(crate) fn with_body(&self, body: Rc<dyn BodySource>, length: Option<u64>) -> Response {
        let mut r = self.clone();
        r.body = body;
        r.length = length;
        r
    }
}

struct ProtocolSink {
    driver: Rc<dyn ProtocolDriver>,
}

impl BodySink for ProtocolSink {
    fn data(&mut self, data: &[u8]) {
        self.driver.data_received(data);
    }
    fn end(&mut self, reason: Failure) {
        self.driver.connection_lost(reason);
    }
}

/// The transport a body protocol sees: flow control of the connection, no writing.
struct BodyTransport {
    control: Rc<dyn Producer>,
}

impl TransportImpl for BodyTransport {
    fn write(&self, _data: &[u8]) {}
    fn lose_connection(&self) {
        self.control.stop_producing();
    }
    fn abort_connection(&self) {
        self.control.stop_producing();
    }
    fn lose_write_connection(&self) {}
    fn get_host(&self) -> Address {
        Address::Memory("http-response-body".into())
    }
    fn get_peer(&self) -> Address {
        Address::Memory("http-response-body".into())
    }
    fn disconnecting(&self) -> bool {
        false
    }
    fn pause_producing(&self) {
        self.control.pause_producing();
    }
    fn resume_producing(&self) {
        self.control.resume_producing();
    }
    fn stop_producing(&self) {
        self.control.stop_producing();
    }
    fn register_producer(
        &self,
        _producer: Rc<dyn Producer>,
        _streaming: bool,
    ) -> Result<(), ProducerError> {
        Ok(())
    }
    fn unregister_producer(&self) {}
}

type Finish = Box<dyn FnOnce(Result<Vec<u8>, Failure>)>;

struct Collector {
    body: Vec<u8>,
    limit: Option<u64>,
    strict: bool,
    code: u16,
    control: Rc<dyn Producer>,
    done: Option<Finish>,
}

impl BodySink for Collector {
    fn data(&mut self, data: &[u8]) {
        if self.done.is_none() {
            return;
        }
        if let Some(limit) = self.limit
            && (self.body.len() + data.len()) as u64 > limit
        {
            if let Some(done) = self.done.take() {
                done(Err(Failure::new(BodyTooLarge(limit))));
            }
            self.control.stop_producing();
            return;
        }
        self.body.extend_from_slice(data);
    }
    fn end(&mut self, reason: Failure) {
        let Some(done) = self.done.take() else { return };
        let body = std::mem::take(&mut self.body);
        if reason.is::<ResponseDone>() {
            done(Ok(body));
        } else if reason.is::<PotentialDataLoss>() {
            if self.strict {
                done(Err(Failure::new(PartialDownloadError {
                    code: self.code,
                    body,
                })));
            } else {
                done(Ok(body));
            }
        } else {
            done(Err(reason));
        }
    }
}

fn collect(response: &Response, limit: Option<u64>, strict: bool) -> Deferred<Vec<u8>> {
    let control = response.body.control();
    control.resume_producing();
    let stop = control.clone();
    let (d, r) = Deferred::with_canceller(move |r: &crate::Resolver<Vec<u8>>| {
        // Failed first: aborting ends the body at once, and that end is not the answer.
        let _ = r.errback(crate::defer::CancelledError);
        stop.stop_producing();
    });
    let sink = Collector {
        body: Vec::new(),
        limit,
        strict,
        code: response.code,
        control,
        done: Some(Box::new(move |res| {
            let _ = r.fire(res);
        })),
    };
    if let Err(e) = response.body.deliver(Box::new(sink)) {
        return Deferred::fail(e);
    }
    d
}

/// The whole body as bytes (Twisted's `readBody`). A body delimited by the connection close
/// counts as complete (Twisted fails it with `PartialDownloadError`; every HTTP/1.0 server
/// ends bodies this way); [`read_body_strict`] keeps Twisted's rule. Any other end fails with
/// its reason. Cancelling the Deferred fails it with `CancelledError` and aborts the
/// connection.
///
/// ```
/// use twistor::web::client::{Response, read_body};
/// let d = read_body(&Response::from_bytes(200, "OK", b"hi".to_vec()));
/// assert_eq!(twistor::testing::success_result_of(&d), b"hi");
/// ```
#[doc(alias = "readBody")]
pub fn read_body(response: &Response) -> Deferred<Vec<u8>> {
    collect(response, None, false)
}

/// [`read_body`] that fails a close-delimited body with [`PartialDownloadError`] (carrying
/// the bytes), as Twisted's `readBody` does.
///
/// ```
/// use twistor::web::client::{Response, read_body_strict};
/// let d = read_body_strict(&Response::from_bytes(200, "OK", b"hi".to_vec()));
/// assert_eq!(twistor::testing::success_result_of(&d), b"hi");
/// ```
pub fn read_body_strict(response: &Response) -> Deferred<Vec<u8>> {
    collect(response, None, true)
}

/// [`read_body`] that gives up with [`BodyTooLarge`] (and aborts the connection) once the
/// body passes `limit` bytes.
///
/// ```
/// use twistor::web::client::{Response, read_body_limited};
/// use twistor::web::client::error::BodyTooLarge;
/// let d = read_body_limited(&Response::from_bytes(200, "OK", vec![0; 10]), 4);
/// assert!(twistor::testing::failure_result_of(&d).is::<BodyTooLarge>());
/// ```
pub fn read_body_limited(response: &Response, limit: u64) -> Deferred<Vec<u8>> {
    collect(response, Some(limit), false)
}
