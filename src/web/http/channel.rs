//! The server side of one HTTP/1.1 connection (Twisted's `HTTPChannel`).

use crate::Failure;
use crate::protocol::{Context, Protocol};
use crate::time::DelayedCall;
use crate::web::chunked::ChunkedDecoder;
use std::rc::Rc;

use crate::web::request::{Connection, Request};
use crate::web::request_body::{BodyStream, RequestBodyError};
use crate::web::resource::Resource;
use crate::web::site::Site;
use crate::web::{BodyMode, status};

use super::parse::{Framing, Head, Parsed, Reject, parse_head};

/// Where the channel is in the life of the current request.
enum Phase {
    /// Between requests: the idle timeout runs.
    Idle,
    /// Some bytes of a head arrived: the head deadline runs.
    Head,
    /// The head is in and its resource found; its body is being read whole.
    Body(Box<Pending>),
    /// The body of a rendered request is streaming to it, or (once its response finished)
    /// being read and dropped.
    Stream(Box<Streaming>),
    /// A request is being answered: later bytes are only buffered.
    Dispatched,
    /// The connection is closing: input is ignored.
    Closing,
}

/// A request whose body is being read into memory before it renders.
struct Pending {
    request: Request,
    resource: Rc<dyn Resource>,
    body: Vec<u8>,
    reader: BodyReader,
    /// When the body started (its head was in): the minimum rate counts from here.
    started: f64,
}

/// A request whose body streams to it.
struct Streaming {
    request: Request,
    stream: Rc<BodyStream>,
    reader: BodyReader,
    /// The response finished (keep-alive or not): the rest of the body is dropped.
    done: Option<bool>,
}

/// Why a body cannot be read further.
enum BodyFault {
    TooLarge(u64),
    Malformed,
}

/// The framing of a body being read: how much is left, and the most it may carry.
struct BodyReader {
    remaining: u64,
    chunked: Option<ChunkedDecoder>,
    received: u64,
    max: Option<u64>,
}

impl BodyReader {
    fn new(framing: Framing, max: Option<u64>) -> BodyReader {
        let (remaining, chunked) = match framing {
            Framing::Length(n) => (n, None),
            Framing::Chunked => (0, Some(ChunkedDecoder::new())),
            Framing::None => (0, None),
        };
        BodyReader {
            remaining,
            chunked,
            received: 0,
            max,
        }
    }

    /// Decodes what `input` holds of the body, handing each piece to `sink`: how many input
    /// bytes were used and whether the body ended.
    fn feed(
        &mut self,
        input: &[u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(usize, bool), BodyFault> {
        let Some(dec) = &mut self.chunked else {
            // A `Content-Length` was checked against the maximum with the head.
            let n = usize::try_from(self.remaining)
                .unwrap_or(usize::MAX)
                .min(input.len());
            sink(&input[..n]);
            self.remaining -= n as u64;
            self.received += n as u64;
            return Ok((n, self.remaining == 0));
        };
        let (max, received) = (self.max, &mut self.received);
        let mut over = None;
        let r = dec.feed(input, &mut |d| {
            if over.is_some() {
                return;
            }
            match max {
                Some(m) if *received + d.len() as u64 > m => over = Some(m),
                _ => {
                    *received += d.len() as u64;
                    sink(d);
                }
            }
        });
        if let Some(m) = over {
            return Err(BodyFault::TooLarge(m));
        }
        match r {
            Ok(p) => Ok((p.consumed, p.done)),
            Err(_) => Err(BodyFault::Malformed),
        }
    }
}

impl BodyFault {
    fn reject(&self) -> Reject {
        match self {
            BodyFault::TooLarge(_) => Reject {
                code: status::CONTENT_TOO_LARGE,
                why: "request body too large",
            },
            BodyFault::Malformed => Reject {
                code: status::BAD_REQUEST,
                why: "malformed chunked body",
            },
        }
    }
    fn error(&self) -> RequestBodyError {
        match self {
            BodyFault::TooLarge(m) => RequestBodyError::TooLarge(*m),
            BodyFault::Malformed => RequestBodyError::Malformed,
        }
    }
}

/// The HTTP/1.1 server protocol: parses requests, hands them to its [`Site`] one at a time,
/// in order, and enforces the site's [`HttpLimits`](super::HttpLimits).
///
/// Built by [`Site`] (a [`Factory`](crate::protocol::Factory)); tests connect one to a
/// [`StringTransport`](crate::testing::StringTransport) with [`Site::channel`].
///
/// ```
/// use std::rc::Rc;
/// use twistor::testing::{MemoryReactor, StringTransport};
/// use twistor::web::resource::{Render, Resource};
/// use twistor::web::{Request, Site};
///
/// struct Hello;
/// impl Resource for Hello {
///     fn is_leaf(&self) -> bool { true }
///     fn render_get(&self, _r: &Request) -> Option<Render> { Some(Render::Static(b"hi")) }
/// }
/// let site = Site::new(Rc::new(Hello), Rc::new(MemoryReactor::new()));
/// let st = StringTransport::new();
/// st.connect(site.channel());
/// st.deliver(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
/// let out = String::from_utf8(st.value()).unwrap();
/// assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(out.ends_with("Content-Length: 2\r\n\r\nhi"));
/// ```
pub struct HttpChannel {
    site: Site,
    buf: Vec<u8>,
    scanned: usize,
    phase: Phase,
    deadline: f64,
    timer: Option<DelayedCall>,
    paused: bool,
    current: Option<Request>,
    /// Made at the first request (a TLS transport says so by then).
    conn: Option<Rc<Connection>>,
    /// The peer this connection is counted against (`max_connections_per_peer`).
    peer: Option<std::net::IpAddr>,
}

impl HttpChannel {
    pub(crate) fn new(site: Site) -> HttpChannel {
        HttpChannel {
            site,
            buf: Vec::new(),
            scanned: 0,
            phase: Phase::Idle,
            deadline: f64::INFINITY,
            timer: None,
            paused: false,
            current: None,
            conn: None,
            peer: None,
        }
    }

    fn now(&self) -> f64 {
        self.site.time().seconds()
    }

    /// Sets the deadline of the current phase, (re)arming the connection's one timer only
    /// when it would fire too late: moving a deadline later costs nothing, the timer
    /// re-arms itself when it fires early.
    fn set_deadline(&mut self, cx: &Context<Self>, secs: Option<f64>) {
        self.deadline = secs.map_or(f64::INFINITY, |s| self.now() + s);
        if !self.deadline.is_finite() {
            return;
        }
        if let Some(t) = &self.timer
            && t.active()
        {
            if t.get_time() <= self.deadline {
                return;
            }
            let _ = t.cancel();
        }
        self.arm(cx);
    }

    fn arm(&mut self, cx: &Context<Self>) {
        let me = cx.handle();
        let delay = (self.deadline - self.now()).max(0.0);
        self.timer = Some(self.site.time().call_later_boxed(
            delay,
            Box::new(move || {
                me.with(|ch, cx| ch.timer_fired(cx));
            }),
        ));
    }

    fn timer_fired(&mut self, cx: &Context<Self>) {
        self.timer = None;
        if !self.deadline.is_finite() {
            return;
        }
        if self.now() + 1e-9 < self.deadline {
            self.arm(cx);
            return;
        }
        match self.phase {
            Phase::Idle => {
                log::info!(target: "twistor::web", "closing idle connection from {}", cx.transport().get_peer());
                self.close_bounded(cx);
            }
            Phase::Stream(_) => {
                log::info!(target: "twistor::web", "request body from {} timed out", cx.transport().get_peer());
                self.stream_failed(
                    cx,
                    Reject {
                        code: status::REQUEST_TIMEOUT,
                        why: "request timed out",
                    },
                    RequestBodyError::Timeout,
                );
            }
            Phase::Head | Phase::Body(_) => {
                log::info!(target: "twistor::web", "request from {} timed out", cx.transport().get_peer());
                self.reject(
                    cx,
                    Reject {
                        code: status::REQUEST_TIMEOUT,
                        why: "request timed out",
                    },
                );
            }
            Phase::Closing => {
                log::info!(target: "twistor::web", "forcibly closing the connection from {}: its queued bytes were not taken", cx.transport().get_peer());
                cx.transport().abort_connection();
            }
            Phase::Dispatched => {}
        }
    }

    fn close(&mut self, cx: &Context<Self>) {
        self.phase = Phase::Closing;
        self.buf = Vec::new();
        self.deadline = f64::INFINITY;
        if let Some(t) = self.timer.take() {
            let _ = t.cancel();
        }
        cx.transport().lose_connection();
    }

    /// [`close`](Self::close) for a client the server gave up on (a timeout, a refused
    /// request): the polite close waits for queued bytes to be taken, which a client that
    /// stopped reading never does, so the connection is aborted after `abort_timeout`. A
    /// close after a normal response sets no timer: the request path reads no clock for it.
    fn close_bounded(&mut self, cx: &Context<Self>) {
        self.close(cx);
        self.set_deadline(cx, self.site.limits().abort_timeout);
    }

    /// Answers a request that cannot be served with `code` and closes. Only ever called when
    /// no response is outstanding (earlier pipelined responses are already out), or when the
    /// outstanding one has not started and its request is failed with it (a streamed body).
    fn reject(&mut self, cx: &Context<Self>, r: Reject) {
        log::info!(
            target: "twistor::web",
            "refusing a request from {}: {} ({})",
            cx.transport().get_peer(),
            r.code,
            r.why
        );
        let reason = status::reason_phrase(r.code);
        let body = format!("{} {}: {}\n", r.code, reason, r.why);
        let mut out = Vec::with_capacity(160 + body.len());
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {} {}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n",
                r.code,
                reason,
                body.len()
            )
            .as_bytes(),
        );
        self.site.write_date_header(&mut out);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body.as_bytes());
        cx.transport().write_owned(out);
        self.close_bounded(cx);
    }

    /// Parses what is buffered, as far as it goes.
    fn process(&mut self, cx: &Context<Self>) {
        loop {
            match &mut self.phase {
                Phase::Closing | Phase::Dispatched => return,
                Phase::Idle | Phase::Head => {
                    if self.buf.is_empty() {
                        return;
                    }
                    let site = &self.site;
                    let parsed = parse_head(&self.buf, &mut self.scanned, site.limits(), || {
                        site.head_buffer()
                    });
                    match parsed {
                        Err(r) => return self.reject(cx, r),
                        Ok(Parsed::Incomplete) => {
                            // The head deadline runs from the first byte, which arrived in
                            // this call: set only now, so a head that arrives whole (the
                            // common case) reads no clock for it.
                            if matches!(self.phase, Phase::Idle) {
                                self.phase = Phase::Head;
                                self.set_deadline(cx, self.site.limits().head_timeout);
                            }
                            return;
                        }
                        Ok(Parsed::Done(head, used)) => {
                            self.buf.drain(..used);
                            self.head_received(cx, head);
                        }
                    }
                }
                Phase::Body(p) => {
                    let body = &mut p.body;
                    let r = p.reader.feed(&self.buf, &mut |d| body.extend_from_slice(d));
                    let (used, done) = match r {
                        Ok(r) => r,
                        Err(fault) => return self.reject(cx, fault.reject()),
                    };
                    self.buf.drain(..used);
                    if !done {
                        return;
                    }
                    let Phase::Body(p) = std::mem::replace(&mut self.phase, Phase::Dispatched)
                    else {
                        return;
                    };
                    let Pending {
                        request,
                        resource,
                        body,
                        ..
                    } = *p;
                    request.set_body(body);
                    self.render(cx, request, resource);
                }
                Phase::Stream(s) => {
                    let stream = &s.stream;
                    let deliver = s.done.is_none();
                    // The receiver runs inside: whatever it asks of the channel is queued.
                    let r = s.reader.feed(&self.buf, &mut |d| {
                        if deliver {
                            stream.push(d);
                        }
                    });
                    let (used, done) = match r {
                        Ok(r) => r,
                        Err(fault) => return self.stream_failed(cx, fault.reject(), fault.error()),
                    };
                    self.buf.drain(..used);
                    if !done {
                        self.stream_flow(cx);
                        return;
                    }
                    if !self.stream_ended(cx) {
                        return;
                    }
                }
            }
        }
    }

    fn head_received(&mut self, cx: &Context<Self>, head: Head) {
        let framing = head.framing;
        if matches!(framing, Framing::None | Framing::Length(0)) {
            return self.dispatch(cx, head);
        }
        let continue_wanted = head.expect_continue && head.http11;
        let (conn, request) = self.new_request(cx, head);
        // The resource decides how it takes the body, so it is found before the body is
        // read (and only once).
        let located = {
            let _dispatching = Dispatching::new(&conn);
            self.site.locate(&request).and_then(|resource| {
                let mode = self.site.body_mode(&request, &*resource)?;
                Some((resource, mode))
            })
        };
        let limits = self.site.limits();
        let Some((resource, mode)) = located else {
            // Answered already (a 500, `OPTIONS *`): the body is read and dropped.
            let keep = conn.done.take().unwrap_or(false);
            // A client that waits for `100 Continue` may never send the body it was not
            // asked for: the connection could not tell its next request from that body.
            if !keep
                || continue_wanted
                || matches!(framing, Framing::Length(n) if n > limits.max_body)
            {
                return self.close(cx);
            }
            self.phase = Phase::Stream(Box::new(Streaming {
                request,
                stream: Rc::new(BodyStream::default()),
                reader: BodyReader::new(framing, Some(limits.max_body)),
                done: Some(keep),
            }));
            return self.set_deadline(cx, limits.body_timeout);
        };
        let max = match mode {
            BodyMode::Buffered => Some(limits.max_body),
            BodyMode::Stream { max } => max,
        };
        if let (Framing::Length(n), Some(m)) = (framing, max)
            && n > m
        {
            return self.reject(
                cx,
                Reject {
                    code: status::CONTENT_TOO_LARGE,
                    why: "request body too large",
                },
            );
        }
        if continue_wanted {
            // The body is about to be read (nothing else is outstanding on this connection),
            // so the client may send it now.
            cx.transport().write(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let reader = BodyReader::new(framing, max);
        match mode {
            BodyMode::Buffered => {
                let cap = reader.remaining.min(64 * 1024) as usize;
                let (timeout, rated) = (limits.body_timeout, limits.min_body_rate.is_some());
                self.set_deadline(cx, timeout);
                // The start is what the deadline was computed from: no second clock read.
                let started = match timeout {
                    Some(t) if rated => self.deadline - t,
                    _ if rated => self.now(),
                    _ => 0.0,
                };
                self.phase = Phase::Body(Box::new(Pending {
                    request,
                    resource,
                    body: Vec::with_capacity(cap),
                    reader,
                    started,
                }));
            }
            BodyMode::Stream { .. } => {
                let stream = Rc::new(BodyStream::default());
                request.set_stream(stream.clone());
                self.phase = Phase::Stream(Box::new(Streaming {
                    request: request.clone(),
                    stream,
                    reader,
                    done: None,
                }));
                self.set_deadline(cx, limits.body_timeout);
                self.current = Some(request.clone());
                let keep = {
                    let _dispatching = Dispatching::new(&conn);
                    self.site.render_located(request, resource);
                    conn.done.take()
                };
                if let Some(keep) = keep {
                    self.response_done(cx, keep);
                }
                // The caller's loop goes on with the body bytes already buffered.
            }
        }
    }

    fn connection(&mut self, cx: &Context<Self>) -> Rc<Connection> {
        self.conn
            .get_or_insert_with(|| Rc::new(Connection::of(cx.transport())))
            .clone()
    }

    /// The request of `head` on this connection.
    fn new_request(&mut self, cx: &Context<Self>, head: Head) -> (Rc<Connection>, Request) {
        let conn = self.connection(cx);
        let request = Request::new(
            head,
            cx.transport().clone(),
            cx.handle(),
            self.site.clone(),
            conn.clone(),
        );
        (conn, request)
    }

    /// A request without a body: made and answered at once.
    fn dispatch(&mut self, cx: &Context<Self>, head: Head) {
        let (conn, request) = self.new_request(cx, head);
        self.answer(cx, conn, request, None);
    }

    /// Renders a request whose buffered body is read.
    fn render(&mut self, cx: &Context<Self>, request: Request, resource: Rc<dyn Resource>) {
        let conn = self.connection(cx);
        self.answer(cx, conn, request, Some(resource));
    }

    /// Hands `request` to the site (found already: `resource`) and picks up a response
    /// finished meanwhile.
    fn answer(
        &mut self,
        cx: &Context<Self>,
        conn: Rc<Connection>,
        request: Request,
        resource: Option<Rc<dyn Resource>>,
    ) {
        self.phase = Phase::Dispatched;
        // No timeout while the application answers (a long poll is legitimate).
        self.deadline = f64::INFINITY;
        self.current = Some(request.clone());
        self.check_pipelined(cx);
        // A response finished inside `handle` (the usual case) is picked up here rather
        // than through a call queued behind this callback: no allocation, and `process`
        // goes on with the next buffered request in its own loop (no recursion).
        let keep = {
            let _dispatching = Dispatching::new(&conn);
            match resource {
                None => self.site.handle(request),
                Some(r) => self.site.render_located(request, r),
            }
            conn.done.take()
        };
        if let Some(keep) = keep {
            self.response_done(cx, keep);
        }
    }

    /// Pauses or resumes reading (and the body timeout) as a streamed body needs: held
    /// while the application paused it or too much waits for its receiver, the timeout
    /// suspended meanwhile; otherwise the timeout runs from now.
    fn stream_flow(&mut self, cx: &Context<Self>) {
        let hold = match &self.phase {
            Phase::Stream(s) => s.done.is_none() && s.stream.holds(),
            _ => return,
        };
        self.set_reading(cx, hold);
        if hold {
            self.deadline = f64::INFINITY;
        } else {
            self.set_deadline(cx, self.site.limits().body_timeout);
        }
    }

    /// The application attached, paused or resumed the body of the current request.
    pub(crate) fn body_flow_changed(&mut self, cx: &Context<Self>) {
        self.stream_flow(cx);
    }

    /// A streamed body ended; true when the connection waits for another request (the
    /// response is out too).
    fn stream_ended(&mut self, cx: &Context<Self>) -> bool {
        let Phase::Stream(s) = std::mem::replace(&mut self.phase, Phase::Dispatched) else {
            return false;
        };
        match s.done {
            Some(keep) => self.response_done(cx, keep),
            None => {
                self.deadline = f64::INFINITY;
                let pipelined = self.buf.len() > self.site.limits().max_pipelined;
                self.set_reading(cx, pipelined);
                // Last: the receiver may answer from `body_done`, which queues the
                // response's end behind this callback.
                s.stream.end(Ok(()));
                false
            }
        }
    }

    /// A streamed body cannot be read further: the request fails (its receiver and
    /// `notify_finish` with `error`), answered with `reject` when its head is not out yet,
    /// and the connection closes.
    fn stream_failed(&mut self, cx: &Context<Self>, reject: Reject, error: RequestBodyError) {
        let Phase::Stream(s) = std::mem::replace(&mut self.phase, Phase::Closing) else {
            return;
        };
        if s.done.is_some() {
            // The response is out; only the rest of the body was being dropped.
            return self.close(cx);
        }
        self.current = None;
        if s.request.started_writing() {
            self.close(cx);
        } else {
            self.reject(cx, reject);
        }
        s.request.connection_lost(Failure::new(error));
    }

    /// A body read whole must average `min_body_rate` after `body_grace`: the deadline is
    /// moved earlier to when the bytes received so far stop covering the rate, so a client
    /// trickling a byte just before each `body_timeout` cannot hold a connection for ever.
    fn check_body_rate(&mut self, cx: &Context<Self>) {
        let limits = self.site.limits();
        let (Some(rate), Phase::Body(p)) = (limits.min_body_rate, &self.phase) else {
            return;
        };
        let due = p.started + limits.body_grace + p.reader.received as f64 / rate.max(1e-9);
        if due < self.deadline {
            self.deadline = due;
            if let Some(t) = &self.timer
                && t.active()
            {
                if t.get_time() <= due {
                    return;
                }
                let _ = t.cancel();
            }
            self.arm(cx);
        }
    }

    /// While a request is answered, later input is only buffered, up to a bound.
    fn check_pipelined(&mut self, cx: &Context<Self>) {
        if !self.paused && self.buf.len() > self.site.limits().max_pipelined {
            self.set_reading(cx, true);
        }
    }

    /// Pauses (`true`) or resumes the transport's reading, if not so already.
    fn set_reading(&mut self, cx: &Context<Self>, pause: bool) {
        if pause != self.paused {
            self.paused = pause;
            if pause {
                cx.transport().pause_producing();
            } else {
                cx.transport().resume_producing();
            }
        }
    }

    /// The current request's response is complete; `keep` says whether the connection can
    /// carry another one.
    pub(crate) fn request_done(&mut self, cx: &Context<Self>, keep: bool) {
        if self.response_done(cx, keep) {
            self.process(cx);
        }
    }

    /// The bookkeeping of [`request_done`](Self::request_done), without parsing what is
    /// buffered; true when the connection waits for another request.
    fn response_done(&mut self, cx: &Context<Self>, keep: bool) -> bool {
        self.current = None;
        if matches!(self.phase, Phase::Closing) {
            return false;
        }
        if !keep {
            self.close(cx);
            return false;
        }
        if let Phase::Stream(s) = &mut self.phase {
            // Answered before its body ended: the rest is read and dropped, then the
            // connection goes on.
            s.done = Some(keep);
            let stream = s.stream.clone();
            self.set_reading(cx, false);
            self.set_deadline(cx, self.site.limits().body_timeout);
            stream.discard(Failure::new(RequestBodyError::Discarded));
            return true;
        }
        self.phase = Phase::Idle;
        self.set_reading(cx, false);
        self.set_deadline(cx, self.site.limits().idle_timeout);
        true
    }
}

/// Marks the connection as dispatching while it lives (cleared even if `handle` unwinds).
struct Dispatching<'a>(&'a Connection);

impl<'a> Dispatching<'a> {
    fn new(conn: &'a Connection) -> Self {
        conn.dispatching.set(true);
        Dispatching(conn)
    }
}

impl Drop for Dispatching<'_> {
    fn drop(&mut self) {
        self.0.dispatching.set(false);
    }
}

impl Protocol for HttpChannel {
    fn connection_made(&mut self, cx: &Context<Self>) {
        if let Some(tcp) = cx.transport().tcp() {
            // Responses are written whole; Nagle would only delay the last segment.
            let _ = tcp.set_nodelay(true);
        }
        if let Some(max) = self.site.limits().max_connections_per_peer
            && let Some(ip) = cx.transport().get_peer().socket_addr().map(|a| a.ip())
        {
            if !self.site.peer_connected(ip, max) {
                log::info!(target: "twistor::web", "refusing a connection from {ip}: it has {max} already");
                return self.reject(
                    cx,
                    Reject {
                        code: status::SERVICE_UNAVAILABLE,
                        why: "too many connections from this address",
                    },
                );
            }
            self.peer = Some(ip);
        }
        self.set_deadline(cx, self.site.limits().idle_timeout);
    }

    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        match &self.phase {
            Phase::Closing => {}
            Phase::Dispatched => {
                self.buf.extend_from_slice(data);
                self.check_pipelined(cx);
            }
            Phase::Body(_) => {
                self.buf.extend_from_slice(data);
                self.set_deadline(cx, self.site.limits().body_timeout);
                self.process(cx);
                self.check_body_rate(cx);
            }
            Phase::Stream(_) => {
                // The timeout is set after the bytes are handed on (the receiver may pause).
                self.buf.extend_from_slice(data);
                self.process(cx);
            }
            Phase::Idle | Phase::Head => {
                self.buf.extend_from_slice(data);
                self.process(cx);
            }
        }
    }

    fn connection_lost(&mut self, _cx: &Context<Self>, reason: Failure) {
        if let Some(ip) = self.peer.take() {
            self.site.peer_disconnected(ip);
        }
        self.phase = Phase::Closing;
        self.buf = Vec::new();
        if let Some(t) = self.timer.take() {
            let _ = t.cancel();
        }
        if let Some(r) = self.current.take() {
            r.connection_lost(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use crate::testing::{MemoryReactor, StringTransport};
    use crate::web::resource::{Render, Resource};
    use crate::web::site::AccessLog;
    use crate::web::{HttpLimits, Request, Site};

    /// Answers at once, except `/keep`, which is kept to be answered later.
    #[derive(Default)]
    struct App {
        kept: RefCell<Vec<Request>>,
    }
    impl Resource for App {
        fn is_leaf(&self) -> bool {
            true
        }
        fn render_get(&self, r: &Request) -> Option<Render> {
            if r.path() == b"/keep" {
                self.kept.borrow_mut().push(r.clone());
                return Some(Render::NotDoneYet);
            }
            Some(Render::Body(r.uri().to_vec()))
        }
    }

    fn server() -> (Rc<MemoryReactor>, Rc<App>, Site) {
        let reactor = Rc::new(MemoryReactor::new());
        let app = Rc::new(App::default());
        let site = Site::with_options(
            app.clone(),
            reactor.clone(),
            HttpLimits::default(),
            AccessLog::Off,
        );
        (reactor, app, site)
    }

    fn connect(site: &Site) -> StringTransport {
        let st = StringTransport::new();
        st.connect(site.channel());
        st
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn the_idle_timeout_runs_from_the_last_of_many_keep_alive_responses() {
        let (reactor, _, site) = server();
        let st = connect(&site);
        for _ in 0..10 {
            st.deliver(GET);
            reactor.clock().advance(30.0);
        }
        assert_eq!(site.served(), 10);
        reactor.clock().advance(29.0);
        assert!(!st.disconnecting());
        reactor.clock().advance(1.0);
        assert!(st.disconnecting());
    }

    #[test]
    fn a_head_arriving_whole_after_a_long_idle_is_answered_and_idles_again() {
        let (reactor, _, site) = server();
        let st = connect(&site);
        reactor.clock().advance(50.0);
        st.deliver(GET);
        assert_eq!(site.served(), 1);
        // The first idle deadline (60) passes: the connection idles since the response.
        reactor.clock().advance(59.0);
        assert!(!st.disconnecting());
        reactor.clock().advance(1.0);
        assert!(st.disconnecting());
    }

    #[test]
    fn a_split_head_gets_its_deadline_from_its_first_byte() {
        let (reactor, _, site) = server();
        let st = connect(&site);
        reactor.clock().advance(50.0);
        st.deliver(b"GET / HTTP/1.1\r\n");
        reactor.clock().advance(19.5);
        assert!(!st.disconnecting(), "the idle deadline no longer applies");
        st.deliver(b"X-More: 1\r\n");
        reactor.clock().advance(0.5);
        assert!(
            st.disconnecting(),
            "more bytes do not extend a head's deadline"
        );
        let out = String::from_utf8_lossy(&st.value()).into_owned();
        assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
    }

    #[test]
    fn many_pipelined_requests_in_one_read_are_answered_in_order() {
        let (_, app, site) = server();
        let st = connect(&site);
        let mut input = Vec::new();
        for i in 0..2000 {
            input.extend_from_slice(format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        }
        // One answered later in the middle: the rest wait for it, then go on.
        input.extend_from_slice(b"GET /keep HTTP/1.1\r\nHost: x\r\n\r\n");
        input.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
        st.deliver(&input);
        assert_eq!(site.served(), 2000);
        let out = String::from_utf8_lossy(&st.value()).into_owned();
        let bodies: Vec<&str> = out
            .split("HTTP/1.1 200 OK\r\n")
            .skip(1)
            .map(|r| r.rsplit("\r\n\r\n").next().unwrap_or(""))
            .collect();
        assert_eq!(bodies.len(), 2000);
        assert!(
            bodies
                .iter()
                .enumerate()
                .all(|(i, b)| *b == format!("/{i}"))
        );
        st.clear();
        let kept = app.kept.borrow_mut().pop().expect("the kept request");
        kept.write_and_finish(b"late");
        let out = String::from_utf8_lossy(&st.value()).into_owned();
        assert!(out.contains("late") && out.ends_with("/after"), "{out}");
        assert_eq!(site.served(), 2002);
    }

    #[test]
    fn a_kept_request_keeps_its_head_while_others_reuse_head_storage() {
        let (_, app, site) = server();
        let slow = connect(&site);
        slow.deliver(b"GET /keep?first=1 HTTP/1.1\r\nHost: kept\r\n\r\n");
        let fast = connect(&site);
        for i in 0..20 {
            let req = format!("GET /n{i}?aaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: other{i}\r\n\r\n");
            fast.deliver(req.as_bytes());
        }
        let out = String::from_utf8_lossy(&fast.value()).into_owned();
        assert!(out.ends_with("/n19?aaaaaaaaaaaaaaaa"), "{out}");
        let kept = app.kept.borrow_mut().pop().expect("the kept request");
        assert_eq!(kept.uri(), b"/keep?first=1");
        assert_eq!(kept.get_header("host"), Some(&b"kept"[..]));
        kept.write_and_finish(b"done");
        assert!(slow.value().ends_with(b"done"));
    }

    #[test]
    fn a_request_answered_while_located_has_its_body_dropped_and_the_next_served() {
        let (_, _, site) = server();
        let st = connect(&site);
        st.deliver(b"OPTIONS * HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel");
        st.deliver(b"loGET /next HTTP/1.1\r\nHost: x\r\n\r\n");
        let out = String::from_utf8_lossy(&st.value()).into_owned();
        assert_eq!(out.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{out}");
        assert!(out.ends_with("\r\n\r\n/next"), "{out}");
        assert!(!st.disconnecting());
    }

    #[test]
    fn a_request_answered_while_located_that_waits_for_100_continue_is_closed() {
        let (_, _, site) = server();
        let st = connect(&site);
        st.deliver(
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        );
        let out = String::from_utf8_lossy(&st.value()).into_owned();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(!out.contains("100 Continue"));
        assert!(st.disconnecting());
    }

    struct PanickyMode;
    impl Resource for PanickyMode {
        fn is_leaf(&self) -> bool {
            true
        }
        fn body_mode(&self, _r: &Request) -> crate::web::BodyMode {
            panic!("body_mode failed")
        }
        fn render_post(&self, _r: &Request) -> Option<Render> {
            Some(Render::Static(b"never"))
        }
        fn render_get(&self, r: &Request) -> Option<Render> {
            Some(Render::Body(r.uri().to_vec()))
        }
    }

    #[test]
    fn a_panicking_body_mode_is_a_500_and_the_body_is_dropped() {
        let site = Site::with_options(
            Rc::new(PanickyMode),
            Rc::new(MemoryReactor::new()),
            HttpLimits::default(),
            AccessLog::Off,
        );
        let st = connect(&site);
        let chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        st.deliver(chunked);
        st.deliver(b"3\r\nabc\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n");
        let out = String::from_utf8_lossy(&st.value()).into_owned();
        assert!(out.starts_with("HTTP/1.1 500 "), "{out}");
        assert!(!out.contains("never"));
        assert!(out.ends_with("\r\n\r\n/after"), "{out}");
    }

    #[test]
    fn a_stream_without_a_receiver_holds_reading_until_one_is_attached() {
        use crate::testing::ReadState;
        use crate::web::BodyMode;
        #[derive(Default)]
        struct Keep(RefCell<Option<Request>>);
        impl Resource for Keep {
            fn is_leaf(&self) -> bool {
                true
            }
            fn body_mode(&self, _r: &Request) -> BodyMode {
                BodyMode::Stream { max: None }
            }
            fn render_put(&self, r: &Request) -> Option<Render> {
                *self.0.borrow_mut() = Some(r.clone());
                Some(Render::NotDoneYet)
            }
        }
        let keep = Rc::new(Keep::default());
        let site = Site::with_options(
            keep.clone(),
            Rc::new(MemoryReactor::new()),
            HttpLimits::default(),
            AccessLog::Off,
        );
        let st = connect(&site);
        let n = crate::web::request_body::PENDING_BOUND;
        let head = format!(
            "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            2 * n
        );
        st.deliver(head.as_bytes());
        st.deliver(&vec![b'a'; n]);
        assert_eq!(
            st.read_state(),
            ReadState::Paused,
            "a full pending buffer holds reading"
        );
        let r = keep.0.borrow_mut().take().expect("rendered");
        let body = r.read_body();
        assert_eq!(
            st.read_state(),
            ReadState::Producing,
            "attached: reading resumes"
        );
        st.deliver(&vec![b'b'; n]);
        assert_eq!(crate::testing::success_result_of(&body).len(), 2 * n);
        assert_eq!(r.body_pending_high_water(), n);
    }

    /// A transport that tells a polite close from an abort and never takes its queued
    /// bytes (a client that stopped reading).
    #[derive(Default)]
    struct Stuck {
        written: RefCell<Vec<u8>>,
        lose: std::cell::Cell<u32>,
        abort: std::cell::Cell<u32>,
        /// The peer's address (127.0.0.1:5000 when not set).
        peer: Option<crate::transport::Address>,
    }
    impl crate::transport::TransportImpl for Stuck {
        fn write(&self, data: &[u8]) {
            self.written.borrow_mut().extend_from_slice(data);
        }
        fn lose_connection(&self) {
            self.lose.set(self.lose.get() + 1);
        }
        fn abort_connection(&self) {
            self.abort.set(self.abort.get() + 1);
        }
        fn lose_write_connection(&self) {}
        fn get_host(&self) -> crate::transport::Address {
            crate::transport::Address::Tcp(([127, 0, 0, 1], 80).into())
        }
        fn get_peer(&self) -> crate::transport::Address {
            self.peer
                .clone()
                .unwrap_or_else(|| crate::transport::Address::Tcp(([127, 0, 0, 1], 5000).into()))
        }
        fn disconnecting(&self) -> bool {
            self.lose.get() + self.abort.get() > 0
        }
        fn pause_producing(&self) {}
        fn resume_producing(&self) {}
        fn stop_producing(&self) {}
        fn register_producer(
            &self,
            _p: Rc<dyn crate::transport::Producer>,
            _streaming: bool,
        ) -> Result<(), crate::transport::ProducerError> {
            Ok(())
        }
        fn unregister_producer(&self) {}
    }

    fn stuck(site: &Site) -> (Rc<Stuck>, Rc<dyn crate::protocol::ProtocolDriver>) {
        stuck_from(site, None)
    }

    fn stuck_from(
        site: &Site,
        peer: Option<crate::transport::Address>,
    ) -> (Rc<Stuck>, Rc<dyn crate::protocol::ProtocolDriver>) {
        let t = Rc::new(Stuck {
            peer,
            ..Stuck::default()
        });
        let (driver, _) =
            crate::protocol::attach(site.channel(), crate::transport::Transport::new(t.clone()));
        driver.make_connection();
        (t, driver)
    }

    #[test]
    fn a_connection_closed_for_a_timeout_is_aborted_15_seconds_later() {
        let (reactor, _, site) = server();
        let (t, _driver) = stuck(&site);
        reactor.clock().advance(60.0);
        assert_eq!((t.lose.get(), t.abort.get()), (1, 0), "polite close first");
        reactor.clock().advance(14.0);
        assert_eq!(t.abort.get(), 0);
        reactor.clock().advance(1.0);
        assert_eq!(t.abort.get(), 1, "then aborted");

        // The same after a 408 and after a refused request.
        let (t, driver) = stuck(&site);
        driver.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na");
        reactor.clock().advance(30.0);
        assert!(t.written.borrow().starts_with(b"HTTP/1.1 408 "));
        reactor.clock().advance(15.0);
        assert_eq!((t.lose.get(), t.abort.get()), (1, 1));
        let (t, driver) = stuck(&site);
        driver.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n");
        reactor.clock().advance(15.0);
        assert_eq!((t.lose.get(), t.abort.get()), (1, 1));
    }

    #[test]
    fn no_abort_once_the_connection_is_gone_or_without_an_abort_timeout() {
        let (reactor, _, site) = server();
        let (t, driver) = stuck(&site);
        reactor.clock().advance(60.0);
        driver.connection_lost(crate::Failure::new(crate::error::ConnectionDone));
        reactor.clock().advance(100.0);
        assert_eq!((t.lose.get(), t.abort.get()), (1, 0));

        let reactor = Rc::new(MemoryReactor::new());
        let site = Site::with_options(
            Rc::new(App::default()),
            reactor.clone(),
            HttpLimits {
                abort_timeout: None,
                ..HttpLimits::default()
            },
            AccessLog::Off,
        );
        let (t, _driver) = stuck(&site);
        reactor.clock().advance(1000.0);
        assert_eq!((t.lose.get(), t.abort.get()), (1, 0));
    }

    #[test]
    fn a_close_after_a_normal_response_sets_no_abort_timer() {
        let (reactor, _, site) = server();
        let (t, driver) = stuck(&site);
        driver.data_received(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(t.lose.get(), 1);
        reactor.clock().advance(1000.0);
        assert_eq!(t.abort.get(), 0);
    }

    #[test]
    fn the_access_log_names_an_ipv6_peer_bare_and_an_addressless_one_dash() {
        #[derive(Clone, Default)]
        struct Sink(Rc<RefCell<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let site = Site::with_options(
            Rc::new(App::default()),
            Rc::new(MemoryReactor::new()),
            HttpLimits::default(),
            AccessLog::Writer(Box::new(sink.clone())),
        );
        for peer in [
            crate::transport::Address::Tcp("[::1]:5000".parse().unwrap()),
            crate::transport::Address::Memory("pipe".into()),
        ] {
            let (_t, driver) = stuck_from(&site, Some(peer));
            driver.data_received(GET);
        }
        site.flush_log();
        let log = String::from_utf8(sink.0.borrow().clone()).unwrap();
        let ips: Vec<&str> = log
            .lines()
            .map(|l| &l[..l.find(" - - ").unwrap()])
            .collect();
        assert_eq!(ips, ["\"::1\"", "\"-\""]);
    }
}
