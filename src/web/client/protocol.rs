//! [`HttpClientProtocol`]: one HTTP/1.1 connection sending one request at a time (Twisted's
//! `HTTP11ClientProtocol`), no pipelining.
//!
//! # States
//!
//! `Quiescent` → (`request`) `Transmitting` → (request written) `Waiting` → (response
//! complete, connection reusable) `Quiescent`, or closed. `TransmittingAfterResponse`: the
//! server answered before the body was sent (the response is delivered, the connection is
//! closed afterwards). `GenerationFailed`: the request could not be written. `Aborting`: the
//! request was cancelled. `ConnectionLost`: gone. A request in any state but `Quiescent`
//! fails with [`RequestNotSent`].
//!
//! # Which failure
//!
//! The connection ends before any response byte: [`ResponseNeverReceived`] (or
//! [`RequestTransmissionFailed`] while the request was still being written); after some
//! bytes but before the end of the head: [`ResponseFailed`]; the body producer fails or
//! writes a wrong length: [`RequestGenerationFailed`]. A body cut short ends with
//! `ResponseFailed([reason, DataLoss])`; a close-delimited body with
//! [`PotentialDataLoss`]. A cancelled request fails with `CancelledError` in the same
//! wrappers, chosen as Twisted chooses them: `RequestGenerationFailed` while the body is
//! still being written (the producer is stopped and its Deferred cancelled),
//! `ResponseFailed` once part of the head arrived, `ResponseNeverReceived` otherwise.
//!
//! # Reuse
//!
//! A connection goes back to its pool only after a complete response to a persistent request
//! whose body was fully sent, when the response keeps the connection open: HTTP/1.1 without a
//! `close` token in `Connection` (tokens compared without case, anywhere in the list: Twisted
//! honours only the exact value `close`), HTTP/1.0 with a `keep-alive` token, a body that is
//! not delimited by the close, and no stray bytes after it. The pool learns of it before the
//! body protocol gets `ResponseDone`, as in Twisted.

use std::cell::Cell;
use std::rc::Rc;

use crate::defer::CancelledError;
use crate::error::ConnectionDone;
use crate::protocol::{Context, Handle, Protocol};
use crate::transport::{Producer, Transport};
use crate::web::Headers;
use crate::web::headers::is_token;
use crate::{Deferred, Failure, Resolver};

use super::error::{
    BadRequest, DataLoss, PotentialDataLoss, ProxyTunnelError, RequestGenerationFailed,
    RequestNotSent, RequestTransmissionFailed, ResponseDone, ResponseFailed, ResponseNeverReceived,
    WrongBodyLength,
};
use super::parser::{BodyFraming, framing, parse_head};
use super::producer::{BodyConsumer, BodyProducer};
use super::response::{BodyChannel, Response};

/// The state of an [`HttpClientProtocol`] (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientState {
    /// Idle: a request may be sent.
    Quiescent,
    /// Writing the request.
    Transmitting,
    /// The request is written; reading the response.
    Waiting,
    /// The response arrived while the request body was still being written.
    TransmittingAfterResponse,
    /// The request could not be generated; the connection is being aborted.
    GenerationFailed,
    /// The request was cancelled; the connection is being aborted.
    Aborting,
    /// The connection is gone.
    ConnectionLost,
}

/// A request as the protocol writes it.
///
/// ```
/// use twistor::web::Headers;
/// use twistor::web::client::ClientRequest;
/// let mut headers = Headers::new();
/// headers.add("Host", "example.com");
/// let r = ClientRequest::new("GET", "/", headers);
/// assert!(!r.persistent);
/// ```
#[derive(Clone)]
pub struct ClientRequest {
    /// The method (a token).
    pub method: String,
    /// The request target (`/path?query`, or an absolute URI for a proxy).
    pub target: String,
    /// The headers; exactly one `Host` is required. `Content-Length`, `Transfer-Encoding`
    /// and `Connection` are set by the protocol from the body and `persistent`.
    pub headers: Headers,
    /// The body, if any.
    pub body: Option<Rc<dyn BodyProducer>>,
    /// Whether to keep the connection open afterwards (else `Connection: close` is sent).
    pub persistent: bool,
}

impl ClientRequest {
    /// A request without body, not persistent.
    pub fn new(method: &str, target: &str, headers: Headers) -> ClientRequest {
        ClientRequest {
            method: method.to_string(),
            target: target.to_string(),
            headers,
            body: None,
            persistent: false,
        }
    }

    /// Serialises the head (Twisted's `Request.writeTo`, the head part), or says why it
    /// cannot be sent.
    ///
    /// ```
    /// use twistor::web::Headers;
    /// use twistor::web::client::ClientRequest;
    /// let mut h = Headers::new();
    /// h.add("Host", "example.com");
    /// let head = ClientRequest::new("GET", "/", h).head().unwrap();
    /// assert_eq!(head, b"GET / HTTP/1.1\r\nConnection: close\r\nHost: example.com\r\n\r\n");
    /// ```
    pub fn head(&self) -> Result<Vec<u8>, BadRequest> {
        if !is_token(self.method.as_bytes()) {
            return Err(BadRequest(format!(
                "the method {:?} is not a token",
                self.method
            )));
        }
        if self.target.is_empty() || self.target.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
            return Err(BadRequest(format!(
                "the target {:?} is empty or holds a byte outside visible ASCII",
                self.target
            )));
        }
        let hosts = self.headers.get_all("host").count();
        if hosts != 1 {
            return Err(BadRequest(format!(
                "exactly one Host header is required, not {hosts}"
            )));
        }
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if !self.persistent {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        match &self.body {
            Some(b) => match b.length() {
                Some(n) => out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes()),
                None => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            },
            None => {
                if matches!(self.method.as_str(), "POST" | "PUT" | "PATCH") {
                    out.extend_from_slice(b"Content-Length: 0\r\n");
                }
            }
        }
        let mut headers = self.headers.clone();
        for framing in ["content-length", "transfer-encoding", "connection"] {
            headers.remove(framing);
        }
        headers.write_to(&mut out);
        out.extend_from_slice(b"\r\n");
        Ok(out)
    }
}

/// Flow control of the connection, as the response body sees it.
struct ConnControl {
    transport: Transport,
}

impl Producer for ConnControl {
    fn pause_producing(&self) {
        if !self.transport.disconnecting() {
            self.transport.pause_producing();
        }
    }
    fn resume_producing(&self) {
        if !self.transport.disconnecting() {
            self.transport.resume_producing();
        }
    }
    fn stop_producing(&self) {
        self.transport.abort_connection();
    }
}

/// The request body producer, registered on the connection so it follows its water marks.
struct ProducerAdapter(Rc<dyn BodyProducer>);

impl Producer for ProducerAdapter {
    fn pause_producing(&self) {
        self.0.pause_producing();
    }
    fn resume_producing(&self) {
        self.0.resume_producing();
    }
    fn stop_producing(&self) {
        self.0.stop_producing();
    }
}

struct InFlight {
    method: String,
    persistent: bool,
    response: Option<Resolver<Response>>,
    got_bytes: bool,
    framing: Option<BodyFraming>,
    body: Option<Rc<BodyChannel>>,
    keep_alive: bool,
    producer: Option<Rc<dyn BodyProducer>>,
    /// Cancels the producer's Deferred when the request is cancelled (as Twisted does).
    producing: Option<crate::defer::CancelHandle>,
    consumer: Option<BodyConsumer>,
    request_done: bool,
}

/// Limits on a response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Bytes in the status line and headers (default 64 KiB).
    pub max_size: usize,
    /// Header fields (default 100).
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_size: 64 * 1024,
            max_headers: 100,
        }
    }
}

/// An HTTP/1.1 client connection (Twisted's `HTTP11ClientProtocol`; see the module docs).
///
/// ```
/// use twistor::testing::{StringTransport, success_result_of};
/// use twistor::web::Headers;
/// use twistor::web::client::{ClientRequest, HttpClientProtocol, read_body};
///
/// let st = StringTransport::new();
/// let h = st.connect(HttpClientProtocol::new());
/// let mut headers = Headers::new();
/// headers.add("Host", "example.com");
/// let d = h.with(|p, cx| p.request(cx, ClientRequest::new("GET", "/", headers))).unwrap();
/// assert_eq!(st.value(), b"GET / HTTP/1.1\r\nConnection: close\r\nHost: example.com\r\n\r\n");
/// st.deliver(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
/// let response = success_result_of(&d);
/// assert_eq!(response.code, 200);
/// assert_eq!(success_result_of(&read_body(&response)), b"hi");
/// ```
pub struct HttpClientProtocol {
    state: Rc<Cell<ClientState>>,
    limits: HeadLimits,
    buf: Vec<u8>,
    current: Option<InFlight>,
    on_quiescent: Option<Box<dyn FnOnce()>>,
    /// Whether a byte of the current response arrived (read by a cancelled request).
    started: Rc<Cell<bool>>,
    /// Fired when the connection is gone.
    lost_waiters: Vec<Resolver<()>>,
    /// A `CONNECT` sent to a proxy, waiting for its answer (see [`Self::tunnel`]).
    tunnel: Option<Tunnel>,
}

/// A tunnel being opened: what the proxy said so far, and what to do once it agrees.
struct Tunnel {
    head: Vec<u8>,
    tls: crate::tls::ClientOptions,
    done: Resolver<()>,
}

/// The largest proxy answer to a `CONNECT` read before giving up.
const TUNNEL_HEAD_MAX: usize = 16 * 1024;

impl Default for HttpClientProtocol {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClientProtocol {
    /// A protocol with the default head limits.
    pub fn new() -> HttpClientProtocol {
        Self::with_limits(HeadLimits::default())
    }

    /// A protocol with these head limits.
    pub fn with_limits(limits: HeadLimits) -> HttpClientProtocol {
        HttpClientProtocol {
            state: Rc::new(Cell::new(ClientState::Quiescent)),
            limits,
            buf: Vec::new(),
            current: None,
            on_quiescent: None,
            started: Rc::new(Cell::new(false)),
            lost_waiters: Vec::new(),
            tunnel: None,
        }
    }

    /// Asks the proxy this connection goes to for a tunnel to `authority` (`host:port`,
    /// `CONNECT`), then starts TLS through it with `tls`, so that the requests that follow
    /// reach the origin encrypted end to end. The Deferred fires once the proxy agreed
    /// (requests sent after it wait for the TLS handshake), or fails with
    /// [`ProxyTunnelError`] when the proxy refuses or answers garbage (the connection is
    /// then closed).
    pub(crate) fn tunnel(
        &mut self,
        cx: &Context<Self>,
        authority: &str,
        tls: crate::tls::ClientOptions,
    ) -> Deferred<()> {
        let (d, done) = Deferred::new();
        cx.transport().write_owned(
            format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").into_bytes(),
        );
        self.state.set(ClientState::Waiting);
        self.tunnel = Some(Tunnel {
            head: Vec::new(),
            tls,
            done,
        });
        d
    }

    /// Reads the proxy's answer to `CONNECT`; true while the tunnel is still being opened.
    fn tunnel_data(&mut self, cx: &Context<Self>, data: &[u8]) -> bool {
        let Some(t) = self.tunnel.as_mut() else {
            return false;
        };
        t.head.extend_from_slice(data);
        // The proxy's answer is an HTTP response head like any other.
        let (head, used) = match parse_head(&t.head, TUNNEL_HEAD_MAX, self.limits.max_headers) {
            Ok(None) => return true,
            Ok(Some(parsed)) => parsed,
            Err(f) => {
                self.tunnel_failed(cx, format!("the proxy's answer to CONNECT: {f}"));
                return true;
            }
        };
        if !(200..=299).contains(&head.code) {
            let why = format!(
                "the proxy refused the tunnel: {} {}",
                head.code, head.phrase
            );
            self.tunnel_failed(cx, why);
            return true;
        }
        let Some(t) = self.tunnel.take() else {
            return false;
        };
        // Bytes the proxy sent behind its answer are the origin's first TLS bytes.
        let config = crate::tls::TlsConfig::Client(t.tls);
        match cx.transport().start_tls(config, &t.head[used..]) {
            Ok(()) => {
                self.state.set(ClientState::Quiescent);
                let _ = t.done.callback(());
            }
            Err(e) => {
                self.state.set(ClientState::Aborting);
                cx.transport().abort_connection();
                let _ = t.done.errback(Failure::new(e));
            }
        }
        true
    }

    fn tunnel_failed(&mut self, cx: &Context<Self>, why: String) {
        if let Some(t) = self.tunnel.take() {
            self.state.set(ClientState::Aborting);
            cx.transport().abort_connection();
            let _ = t.done.errback(Failure::new(ProxyTunnelError(why)));
        }
    }

    /// The current state.
    pub fn state(&self) -> ClientState {
        self.state.get()
    }

    /// A shared view of the state (the pool reads it without entering the protocol).
    pub(crate) fn state_cell(&self) -> Rc<Cell<ClientState>> {
        self.state.clone()
    }

    /// Runs `f` once, the next time the connection becomes idle and reusable (Twisted's
    /// `quiescentCallback`); dropped if it closes instead.
    pub fn set_quiescent_callback(&mut self, f: impl FnOnce() + 'static) {
        self.on_quiescent = Some(Box::new(f));
    }

    /// Sends `request`; the Deferred fires with the response once its head is parsed.
    /// Cancelling it stops and cancels the body producer, aborts the connection and fails it
    /// with `CancelledError` wrapped as Twisted does: in [`RequestGenerationFailed`] while
    /// the request is still being written, in [`ResponseFailed`] once part of the response
    /// head arrived, else in [`ResponseNeverReceived`].
    pub fn request(&mut self, cx: &Context<Self>, request: ClientRequest) -> Deferred<Response> {
        if self.state.get() != ClientState::Quiescent {
            return Deferred::fail(RequestNotSent);
        }
        let head = match request.head() {
            Ok(h) => h,
            Err(e) => {
                self.state.set(ClientState::GenerationFailed);
                cx.transport().abort_connection();
                return Deferred::fail(RequestGenerationFailed::new(Failure::new(e)));
            }
        };
        let me = cx.handle();
        let (state, started) = (self.state.clone(), self.started.clone());
        self.started.set(false);
        let (d, resolver) = Deferred::with_canceller(move |r: &Resolver<Response>| {
            // Decided from shared cells: from inside one of the protocol's own callbacks the
            // protocol cannot be entered before this Deferred must fail.
            let reason = Failure::new(CancelledError);
            let _ = if state.get() == ClientState::Transmitting {
                r.errback(RequestGenerationFailed::new(reason))
            } else if started.get() {
                r.errback(ResponseFailed::new(reason))
            } else {
                r.errback(ResponseNeverReceived::new(reason))
            };
            me.with(|p, cx| p.cancel(cx));
        });
        self.state.set(ClientState::Transmitting);
        self.buf.clear();
        let transport = cx.transport();
        transport.write_owned(head);
        let mut flight = InFlight {
            method: request.method.clone(),
            persistent: request.persistent,
            response: Some(resolver),
            got_bytes: false,
            framing: None,
            body: None,
            keep_alive: false,
            producer: None,
            producing: None,
            consumer: None,
            request_done: false,
        };
        match request.body {
            None => {
                flight.request_done = true;
                self.state.set(ClientState::Waiting);
                self.current = Some(flight);
            }
            Some(producer) => {
                let consumer = match producer.length() {
                    Some(n) => BodyConsumer::with_length(transport.clone(), n),
                    None => BodyConsumer::chunked(transport.clone()),
                };
                let me = cx.handle();
                consumer.set_on_overflow(move || {
                    let f = Failure::new(WrongBodyLength::TooMany);
                    me.with(move |p, cx| p.body_done(cx, Err(f)));
                });
                flight.producer = Some(producer.clone());
                flight.consumer = Some(consumer.clone());
                self.current = Some(flight);
                let _ =
                    transport.register_producer(Rc::new(ProducerAdapter(producer.clone())), true);
                let me = cx.handle();
                let producing = producer.start_producing(consumer);
                if let Some(flight) = self.current.as_mut() {
                    flight.producing = Some(producing.cancel_handle());
                }
                let _ = producing.add_both(move |res| {
                    me.with(move |p, cx| p.body_done(cx, res));
                    Ok(())
                });
            }
        }
        d
    }

    /// The body producer finished (or failed).
    fn body_done(&mut self, cx: &Context<Self>, res: Result<(), Failure>) {
        let state = self.state.get();
        if !matches!(
            state,
            ClientState::Transmitting | ClientState::TransmittingAfterResponse
        ) {
            return;
        }
        let Some(flight) = self.current.as_mut() else {
            return;
        };
        cx.transport().unregister_producer();
        let result = res.and_then(|()| match &flight.consumer {
            Some(c) => c.finish().map_err(Failure::new),
            None => Ok(()),
        });
        if let Some(c) = &flight.consumer {
            c.close();
        }
        match result {
            Ok(()) => {
                flight.request_done = true;
                if state == ClientState::Transmitting {
                    self.state.set(ClientState::Waiting);
                } else {
                    // The response is complete already: this connection is not reused.
                    cx.transport().lose_connection();
                }
            }
            Err(f) => {
                if let Some(p) = flight.producer.take() {
                    p.stop_producing();
                }
                self.state.set(ClientState::GenerationFailed);
                if let Some(r) = flight.response.take() {
                    let _ = r.errback(RequestGenerationFailed::new(f));
                }
                cx.transport().abort_connection();
            }
        }
    }

    fn cancel(&mut self, cx: &Context<Self>) {
        let mut producing = None;
        if let Some(flight) = self.current.as_mut() {
            flight.response = None;
            if let Some(p) = flight.producer.take() {
                p.stop_producing();
            }
            if !flight.request_done {
                producing = flight.producing.take();
            }
        }
        if self.state.get() != ClientState::ConnectionLost {
            self.state.set(ClientState::Aborting);
        }
        cx.transport().abort_connection();
        // Last: its callbacks re-enter this protocol (queued, they find it aborting).
        if let Some(h) = producing {
            h.cancel();
        }
    }

    /// A Deferred that fires once the connection is gone (at once if it is already).
    pub(crate) fn when_lost(&mut self) -> Deferred<()> {
        if self.state.get() == ClientState::ConnectionLost {
            return Deferred::succeed(());
        }
        let (d, r) = Deferred::new();
        self.lost_waiters.push(r);
        d
    }

    /// Aborts the connection (Twisted's `abort`): a pending response fails with
    /// `ConnectionAborted` in its wrapper, a body being delivered ends with
    /// `ResponseFailed([ConnectionAborted, DataLoss])`. The Deferred fires once the connection
    /// is gone, at once if it already is.
    ///
    /// ```
    /// use twistor::testing::{StringTransport, success_result_of};
    /// use twistor::web::client::HttpClientProtocol;
    ///
    /// let st = StringTransport::with_disconnection();
    /// let h = st.connect(HttpClientProtocol::new());
    /// let d = h.with(|p, cx| p.abort(cx)).unwrap();
    /// success_result_of(&d);
    /// assert!(st.lost_reason().is_some());
    /// ```
    pub fn abort(&mut self, cx: &Context<Self>) -> Deferred<()> {
        let gone = self.when_lost();
        if self.state.get() != ClientState::ConnectionLost {
            cx.transport().abort_connection();
        }
        gone
    }

    /// Aborts the connection with `reason` (the agent's response timeout): a pending response
    /// fails with it, a body being delivered ends with it.
    pub fn abort_with(&mut self, cx: &Context<Self>, reason: Failure) {
        cx.transport().abort_with(reason);
    }

    fn fail_parse(&mut self, cx: &Context<Self>, f: Failure) {
        if let Some(flight) = self.current.as_mut() {
            if let Some(r) = flight.response.take() {
                let _ = r.errback(ResponseFailed::new(f.clone()));
            }
            if let Some(b) = flight.body.take() {
                b.finish(Failure::new(ResponseFailed::new(f)));
            }
            if let Some(p) = flight.producer.take() {
                p.stop_producing();
            }
        }
        self.state.set(ClientState::Aborting);
        cx.transport().abort_connection();
    }

    /// Parses what is buffered as far as it goes.
    fn process(&mut self, cx: &Context<Self>) {
        loop {
            let Some(flight) = self.current.as_mut() else {
                return;
            };
            if flight.framing.is_none() {
                let parsed =
                    match parse_head(&self.buf, self.limits.max_size, self.limits.max_headers) {
                        Ok(p) => p,
                        Err(f) => return self.fail_parse(cx, f),
                    };
                let Some((head, used)) = parsed else { return };
                self.buf.drain(..used);
                if (100..200).contains(&head.code) {
                    log::debug!(target: "twistor::web::client", "skipping interim response {}", head.code);
                    continue;
                }
                let fr = match framing(&head, &flight.method) {
                    Ok(f) => f,
                    Err(f) => return self.fail_parse(cx, f),
                };
                let connection_ok = !head.headers.has_token("connection", "close")
                    && (head.version >= (1, 1)
                        || head.headers.has_token("connection", "keep-alive"));
                flight.keep_alive =
                    flight.persistent && connection_ok && !matches!(fr, BodyFraming::UntilClose);
                let length = match &fr {
                    BodyFraming::Empty => Some(0),
                    BodyFraming::Length(n) => Some(*n),
                    _ => None,
                };
                let empty = matches!(fr, BodyFraming::Empty);
                flight.framing = Some(fr);
                let chan = BodyChannel::new(Rc::new(ConnControl {
                    transport: cx.transport().clone(),
                }));
                flight.body = Some(chan.clone());
                let response = Response::new(
                    head.version,
                    head.code,
                    head.phrase,
                    head.headers,
                    length,
                    flight.method.clone(),
                    chan,
                );
                let resolver = flight.response.take();
                if empty {
                    self.response_complete(cx);
                } else {
                    // No body is read until someone asks for it (deliver_body resumes).
                    cx.transport().pause_producing();
                }
                if let Some(r) = resolver {
                    let _ = r.callback(response);
                }
                if empty {
                    return;
                }
                continue;
            }
            let body = flight.body.clone();
            let Some(body) = body else { return };
            let mut complete = false;
            match flight.framing.as_mut() {
                Some(BodyFraming::Length(remaining)) => {
                    let n = (*remaining).min(self.buf.len() as u64) as usize;
                    let chunk: Vec<u8> = self.buf.drain(..n).collect();
                    *remaining -= n as u64;
                    complete = *remaining == 0;
                    body.push(&chunk);
                }
                Some(BodyFraming::Chunked(dec)) => {
                    let mut out = Vec::new();
                    let res = dec.feed(&self.buf, &mut |d| out.extend_from_slice(d));
                    match res {
                        Ok(p) => {
                            self.buf.drain(..p.consumed);
                            complete = p.done;
                            body.push(&out);
                        }
                        Err(e) => {
                            body.push(&out);
                            return self.fail_parse(cx, Failure::new(e));
                        }
                    }
                }
                Some(BodyFraming::UntilClose) => {
                    let data = std::mem::take(&mut self.buf);
                    body.push(&data);
                }
                Some(BodyFraming::Empty) | None => {}
            }
            if complete {
                self.response_complete(cx);
            }
            return;
        }
    }

    /// The whole response arrived.
    fn response_complete(&mut self, cx: &Context<Self>) {
        let Some(flight) = self.current.take() else {
            return;
        };
        let body = flight.body.clone();
        let stray = !self.buf.is_empty();
        self.buf.clear();
        if !flight.request_done {
            self.state.set(ClientState::TransmittingAfterResponse);
            if let Some(p) = &flight.producer {
                p.stop_producing();
            }
            cx.transport().unregister_producer();
            cx.transport().lose_connection();
        } else if flight.keep_alive && !stray {
            self.state.set(ClientState::Quiescent);
            cx.transport().resume_producing();
            if let Some(f) = self.on_quiescent.take() {
                f();
            }
        } else {
            cx.transport().lose_connection();
        }
        if let Some(b) = body {
            b.finish(Failure::new(ResponseDone));
        }
    }
}

impl Protocol for HttpClientProtocol {
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        if self.tunnel.is_some() && self.tunnel_data(cx, data) {
            return;
        }
        let Some(flight) = self.current.as_mut() else {
            // Bytes on an idle connection answer nothing that was asked (a 408 before a
            // close, garbage): the connection cannot be trusted with the next request.
            if self.state.get() == ClientState::Quiescent {
                self.state.set(ClientState::Aborting);
                cx.transport().abort_connection();
            }
            return;
        };
        flight.got_bytes = true;
        self.started.set(true);
        self.buf.extend_from_slice(data);
        self.process(cx);
    }

    fn connection_lost(&mut self, _cx: &Context<Self>, reason: Failure) {
        let before = self.state.replace(ClientState::ConnectionLost);
        self.on_quiescent = None;
        if let Some(t) = self.tunnel.take() {
            let _ = t.done.errback(Failure::new(ProxyTunnelError(format!(
                "the proxy closed the connection before agreeing to the tunnel: {reason}"
            ))));
        }
        for w in std::mem::take(&mut self.lost_waiters) {
            let _ = w.callback(());
        }
        let Some(mut flight) = self.current.take() else {
            return;
        };
        if let Some(p) = flight.producer.take()
            && !flight.request_done
        {
            p.stop_producing();
        }
        if let Some(r) = flight.response.take() {
            let err = if !flight.got_bytes {
                if before == ClientState::Transmitting {
                    Failure::new(RequestTransmissionFailed::new(reason))
                } else {
                    Failure::new(ResponseNeverReceived::new(reason))
                }
            } else {
                Failure::new(ResponseFailed::new(reason))
            };
            let _ = r.errback(err);
            return;
        }
        if let Some(body) = flight.body.take() {
            if matches!(flight.framing, Some(BodyFraming::UntilClose))
                && reason.is::<ConnectionDone>()
            {
                body.finish(Failure::new(PotentialDataLoss));
            } else {
                body.finish(Failure::new(ResponseFailed {
                    reasons: vec![reason, Failure::new(DataLoss)],
                    response: None,
                }));
            }
        }
    }
}

/// Sends `request` on the connection behind `handle`, from anywhere (inside one of its own
/// callbacks too: then it is sent right after that callback returns). Cancelling the result
/// cancels the request.
pub(crate) fn send_on(
    handle: &Handle<HttpClientProtocol>,
    request: ClientRequest,
    on_quiescent: Option<Box<dyn FnOnce()>>,
) -> Deferred<Response> {
    if !handle.alive() {
        return Deferred::fail(RequestNotSent);
    }
    let inner: Rc<std::cell::RefCell<Option<crate::defer::CancelHandle>>> = Rc::default();
    let in_cancel = inner.clone();
    let (d, r) = Deferred::with_canceller(move |r: &Resolver<Response>| {
        let h = in_cancel.borrow_mut().take();
        match h {
            Some(h) => h.cancel(),
            None => {
                let _ = r.errback(ResponseNeverReceived::new(Failure::new(CancelledError)));
            }
        }
    });
    handle.with(move |p, cx| {
        if let Some(f) = on_quiescent {
            p.on_quiescent = Some(f);
        }
        let sent = p.request(cx, request);
        if r.called() {
            sent.cancel();
            return;
        }
        *inner.borrow_mut() = Some(sent.cancel_handle());
        let _ = sent.chain_deferred(&r);
    });
    d
}
