//! A reverse proxy (Twisted's `twisted.web.proxy.ReverseProxyResource`).
//!
//! [`ReverseProxyResource`] forwards every request under it to one backend `host:port`,
//! with the path prefix rewritten: the resource mounted at `/app` with path `/backend`
//! sends `/app/x/y?q=1` as `/backend/x/y?q=1`. As in Twisted, each traversed segment makes a
//! new resource whose path has `/` and the segment (re-quoted) appended, and `Host` is set to
//! the backend (`host`, or `host:port` when the port is not 80).
//!
//! Where it departs from Twisted (which opens a new HTTP/1.0 connection per request, drops
//! all but the last value of each header, forwards hop-by-hop headers, adds no
//! `X-Forwarded-For` and answers 501 when the backend is down):
//!
//! * requests go through an [`Agent`] with a persistent pool: idle backend connections are
//!   kept and reused;
//! * every header value is forwarded except the hop-by-hop ones (RFC 9110 section 7.6.1):
//!   `Connection`, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`,
//!   and every header named in `Connection`; `Expect` is dropped too, since this server
//!   already answered it. The same rule applies to the backend's response headers; the
//!   backend's `Server` is dropped (the response carries this server's);
//! * `X-Forwarded-For` gets the client's address appended;
//! * the backend's body is streamed, not buffered: its bytes are written to the client as
//!   they come, and the client connection's back-pressure pauses reading from the backend;
//! * a backend that refuses the connection or fails before its response head answers
//!   `502 Bad Gateway` with a short page; a backend failing in the middle of the body cuts
//!   the client's response (so it is not mistaken for a complete one);
//! * a client that goes away cancels the backend request, or aborts the backend connection
//!   if the body was flowing (it cannot be reused for the next request).
//!
//! The request body is streamed to the backend as it arrives, with its `Content-Length` or
//! chunked (Twisted reads it whole first): the resource asks for it as a stream
//! ([`BodyMode::Stream`]), so the proxy renders as soon as the head is in, and the backend
//! connection's back-pressure pauses reading from the client. A streamed body cannot be
//! sent twice, so such a request is not retried on a new backend connection. There is no timeout
//! on the backend's answer beyond the agent's connect timeout: a slow backend holds its
//! client as long as the client waits (pass an agent with a `response_timeout` to bound it).

use std::cell::Cell;
use std::rc::Rc;

use crate::endpoints::EndpointReactor;
use crate::protocol::{Context, Protocol};
use crate::protocols::portforward::ReadingOf;
use crate::web::client::error::{PotentialDataLoss, ResponseDone};
use crate::web::client::{
    Agent, AgentOptions, BodyConsumer, BodyProducer, BytesProducer, HttpAgent, HttpConnectionPool,
    Response,
};
use crate::web::resource::{ErrorPage, Render, Resource};
use crate::web::{BodyMode, BodyReceiver, Headers, Request, status};
use crate::{Deferred, Failure, Resolver};

/// How many idle connections to the backend are kept (the pool's default of 2 would make a
/// proxy under concurrent load reconnect for most requests).
const IDLE_BACKEND_CONNECTIONS: usize = 32;

/// Hop-by-hop headers: they describe one connection and are never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` must not cross the proxy, given the message's `Connection` tokens.
fn is_hop_by_hop(name: &[u8], connection_tokens: &[Vec<u8>]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
        || name.len() >= 6 && name[..6].eq_ignore_ascii_case(b"proxy-")
        || connection_tokens
            .iter()
            .any(|t| name.eq_ignore_ascii_case(t))
}

/// The header names listed in the `Connection` values.
fn connection_tokens<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<Vec<u8>> {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|t| t.trim_ascii().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Percent-encodes a path segment as Python's `quote(s, safe="")` does: everything but
/// `A-Z a-z 0-9 _ . - ~` becomes `%XX`, `/` included.
///
/// ```
/// use twistor::web::proxy::quote_segment;
/// assert_eq!(quote_segment(b"a b/c~"), b"a%20b%2Fc~");
/// ```
pub fn quote_segment(segment: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(segment.len());
    for &b in segment {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

/// Forwards requests to a backend server (see the module docs).
///
/// ```
/// use std::rc::Rc;
/// use twistor::prelude::*;
/// use twistor::web::proxy::ReverseProxyResource;
/// use twistor::web::resource::{Resource, Tree};
/// use twistor::web::Site;
///
/// let reactor = Reactor::new().unwrap();
/// let root = Tree::new();
/// // `/app/...` is answered by the server on 127.0.0.1:8080 as `/...`.
/// root.put_child(b"app", Rc::new(ReverseProxyResource::new("127.0.0.1", 8080, b"", &reactor)));
/// let site = Site::new(Rc::new(root), Rc::new(reactor.clone()));
/// let port = listen_tcp(&reactor, 0, Rc::new(site)).unwrap();
/// assert!(port.port() > 0);
/// ```
#[derive(Clone)]
pub struct ReverseProxyResource {
    host: String,
    port: u16,
    path: Vec<u8>,
    agent: Rc<dyn HttpAgent>,
}

impl ReverseProxyResource {
    /// A proxy to `host:port`, requests going to `path` followed by the rest of their
    /// path. Its agent keeps persistent connections to the backend.
    pub fn new<R: EndpointReactor>(
        host: &str,
        port: u16,
        path: &[u8],
        reactor: &R,
    ) -> ReverseProxyResource {
        let pool = HttpConnectionPool::new(Rc::new(reactor.clone()));
        pool.set_max_persistent_per_host(IDLE_BACKEND_CONNECTIONS);
        let agent = Agent::with_options(reactor, AgentOptions::default(), Some(pool));
        ReverseProxyResource::with_agent(host, port, path, Rc::new(agent))
    }

    /// A proxy sending its requests through `agent` (timeouts, TLS options or a test double
    /// of one's own).
    ///
    /// ```
    /// use std::rc::Rc;
    /// use twistor::prelude::*;
    /// use twistor::web::client::Agent;
    /// use twistor::web::proxy::ReverseProxyResource;
    /// let reactor = Reactor::new().unwrap();
    /// let p = ReverseProxyResource::with_agent("backend", 80, b"/x", Rc::new(Agent::new(&reactor)));
    /// assert_eq!(p.path(), b"/x");
    /// assert_eq!(p.host_header(), "backend");
    /// ```
    pub fn with_agent(
        host: &str,
        port: u16,
        path: &[u8],
        agent: Rc<dyn HttpAgent>,
    ) -> ReverseProxyResource {
        ReverseProxyResource {
            host: host.to_string(),
            port,
            path: path.to_vec(),
            agent,
        }
    }

    /// The backend path this resource forwards to (already percent-encoded).
    pub fn path(&self) -> &[u8] {
        &self.path
    }

    /// The `Host` header sent to the backend: `host`, or `host:port` unless the port is 80.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The URL of the backend request for `request`.
    fn backend_url(&self, request: &Request) -> String {
        let mut url = format!("http://{}", self.host_header());
        let path = String::from_utf8_lossy(&self.path);
        if !path.starts_with('/') {
            url.push('/');
        }
        url.push_str(&path);
        let query = request.query();
        if !query.is_empty() {
            url.push('?');
            url.push_str(&String::from_utf8_lossy(query));
        }
        url
    }

    /// The headers sent to the backend.
    fn backend_headers(&self, request: &Request) -> Headers {
        let tokens = connection_tokens(
            request
                .headers()
                .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
                .map(|(_, v)| v),
        );
        let mut out = Headers::new();
        out.add("Host", self.host_header());
        let mut forwarded_for: Vec<u8> = Vec::new();
        for (name, value) in request.headers() {
            if is_hop_by_hop(name, &tokens)
                || name.eq_ignore_ascii_case(b"host")
                || name.eq_ignore_ascii_case(b"expect")
                || name.eq_ignore_ascii_case(b"content-length")
            {
                continue;
            }
            if name.eq_ignore_ascii_case(b"x-forwarded-for") {
                if !forwarded_for.is_empty() {
                    forwarded_for.extend_from_slice(b", ");
                }
                forwarded_for.extend_from_slice(value);
                continue;
            }
            // Names came through the server's parser: they are tokens, hence UTF-8.
            if let Ok(n) = std::str::from_utf8(name) {
                let _ = out.try_add(n, value);
            }
        }
        // A client without an IP (a UNIX socket) adds nothing.
        let ip = request.client_ip();
        if ip != "-" {
            if !forwarded_for.is_empty() {
                forwarded_for.extend_from_slice(b", ");
            }
            forwarded_for.extend_from_slice(ip.as_bytes());
        }
        if !forwarded_for.is_empty() {
            out.add("X-Forwarded-For", forwarded_for);
        }
        out
    }
}

impl Resource for ReverseProxyResource {
    /// A proxy for the extended path: `path` + `/` + the quoted segment (Twisted's rule).
    fn get_child(&self, name: &[u8], _request: &Request) -> Rc<dyn Resource> {
        let mut path = self.path.clone();
        path.push(b'/');
        path.extend_from_slice(&quote_segment(name));
        Rc::new(ReverseProxyResource {
            host: self.host.clone(),
            port: self.port,
            path,
            agent: self.agent.clone(),
        })
    }

    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    }

    /// Request bodies are streamed to the backend as they arrive (see the module docs).
    fn body_mode(&self, _request: &Request) -> BodyMode {
        BodyMode::Stream { max: None }
    }

    /// Forwards the request, whatever its method.
    fn render(&self, request: &Request) -> Render {
        let method = String::from_utf8_lossy(request.method()).into_owned();
        let url = self.backend_url(request);
        let headers = self.backend_headers(request);
        let body: Option<Rc<dyn BodyProducer>> = match request.has_body_framing() {
            false => None,
            true if request.body_is_streamed() => Some(Rc::new(StreamedBody::new(request))),
            true => Some(Rc::new(BytesProducer::new(request.body()))),
        };
        let d = self.agent.request(&method, &url, Some(headers), body);
        let cancel = d.cancel_handle();
        // A client gone before the backend answered: give up on the backend request.
        let _ = request.notify_finish().add_errback(move |_| {
            cancel.cancel();
            Ok(())
        });
        let (ok, err) = (request.clone(), request.clone());
        let _: Deferred<()> = d.add_callbacks(
            move |response| {
                relay(&ok, &response);
                Ok(())
            },
            move |f| {
                bad_gateway(&err, &f);
                Ok(())
            },
        );
        Render::NotDoneYet
    }
}

/// The client's request body on its way to the backend: each piece the server reads is
/// written to the backend connection; the backend connection's back-pressure pauses
/// reading from the client (`pause_body`), so a large upload holds at most a buffer's
/// worth in the proxy. Sent with the client's `Content-Length` when it gave one, chunked
/// otherwise; it cannot be replayed (the pool does not retry it).
struct StreamedBody {
    request: Request,
    length: Option<u64>,
    stopped: Rc<Cell<bool>>,
}

impl StreamedBody {
    fn new(request: &Request) -> StreamedBody {
        StreamedBody {
            request: request.clone(),
            length: request.declared_length(),
            stopped: Rc::default(),
        }
    }
}

/// Writes what the client sends to the backend connection.
struct ToBackend {
    consumer: BodyConsumer,
    done: Option<Resolver<()>>,
    stopped: Rc<Cell<bool>>,
}

impl BodyReceiver for ToBackend {
    fn data_received(&mut self, data: &[u8]) {
        if !self.stopped.get() {
            self.consumer.write(data);
        }
    }

    fn body_done(&mut self, result: Result<(), Failure>) {
        if let Some(done) = self.done.take() {
            let _ = match result {
                Ok(()) => done.callback(()),
                Err(f) => done.errback(f),
            };
        }
    }
}

impl BodyProducer for StreamedBody {
    fn length(&self) -> Option<u64> {
        self.length
    }

    fn start_producing(&self, consumer: BodyConsumer) -> Deferred<()> {
        let (d, done) = Deferred::new();
        let receiver = ToBackend {
            consumer,
            done: Some(done),
            stopped: self.stopped.clone(),
        };
        match self.request.deliver_body(receiver) {
            Ok(()) => d,
            Err(e) => Deferred::fail(e),
        }
    }

    fn pause_producing(&self) {
        self.request.pause_body();
    }

    fn resume_producing(&self) {
        self.request.resume_body();
    }

    fn stop_producing(&self) {
        // The backend request failed: what the client still sends is dropped (the server
        // reads and discards it once the 502 is out).
        self.stopped.set(true);
        self.request.resume_body();
    }
}

/// Answers 502 for a backend that could not be reached or failed before its head.
fn bad_gateway(request: &Request, f: &Failure) {
    if request.lost() || request.finished() {
        return;
    }
    log::warn!(target: "twistor::web::proxy", "{request:?}: the backend failed: {f}");
    if request.started_writing() {
        request.abort();
        return;
    }
    let page = ErrorPage::new(
        status::BAD_GATEWAY,
        "Bad Gateway",
        "The server behind this one could not be reached or failed to answer.",
    );
    request.set_response_code(status::BAD_GATEWAY);
    request.set_header("Content-Type", "text/html; charset=utf-8");
    request.write_and_finish(page.body().as_bytes());
}

/// Copies the backend's status and headers and streams its body to the client.
fn relay(request: &Request, response: &Response) {
    if request.lost() {
        // The body is not wanted: stop it (the backend connection is aborted).
        let _ = response.deliver_body(Discard);
        return;
    }
    request.set_response_code_with_message(response.code, &response.phrase);
    let tokens = connection_tokens(response.headers.get_all("connection"));
    for (name, value) in response.headers.iter() {
        if is_hop_by_hop(name.as_bytes(), &tokens) || name.eq_ignore_ascii_case("server") {
            continue;
        }
        request.add_header(name, value);
    }
    if response
        .deliver_body(BodyRelay {
            request: request.clone(),
        })
        .is_err()
    {
        bad_gateway(
            request,
            &Failure::msg("the backend's body was already taken"),
        );
    }
}

/// Stops a body nobody will read.
struct Discard;

impl Protocol for Discard {
    fn connection_made(&mut self, cx: &Context<Self>) {
        cx.transport().stop_producing();
    }
    fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
}

/// Writes the backend's body to the client as it arrives.
struct BodyRelay {
    request: Request,
}

impl Protocol for BodyRelay {
    fn connection_made(&mut self, cx: &Context<Self>) {
        // The client's transport pauses this producer while its write buffer is full, and
        // stops it if the client goes away (which aborts the backend connection).
        let flow = Rc::new(ReadingOf(cx.transport().clone()));
        if let Err(e) = self.request.register_producer(flow, true) {
            log::warn!(target: "twistor::web::proxy", "{:?}: no back-pressure on the backend body: {e}", self.request);
        }
    }

    fn data_received(&mut self, _cx: &Context<Self>, data: &[u8]) {
        self.request.write(data);
    }

    fn connection_lost(&mut self, _cx: &Context<Self>, reason: Failure) {
        if self.request.lost() || self.request.finished() {
            return;
        }
        self.request.unregister_producer();
        if reason.is::<ResponseDone>() || reason.is::<PotentialDataLoss>() {
            self.request.finish();
        } else {
            log::warn!(target: "twistor::web::proxy", "{:?}: the backend's body failed: {reason}", self.request);
            self.request.abort();
        }
    }
}
