//! [`Agent`]: `request(method, uri, headers, body) → Deferred<Response>` (Twisted's
//! `client.Agent`), and the [`HttpAgent`] trait the wrapping agents share.
//!
//! Order of work: the method must be a token and the URI absolute `http`/`https` (else the
//! Deferred fails with [`BadRequest`], [`InvalidUri`](super::error::InvalidUri) or [`SchemeNotSupported`]); a copy of
//! the headers gets `Host` unless the caller set one; a connection comes from the pool or a
//! new one is made through an [`EndpointFactory`] (by default a `HostnameEndpoint`, wrapped in
//! TLS for `https` with hostname verification through an [`HttpsPolicy`]); the request is
//! sent, and retried once on a new connection by the pool's rule.
//!
//! # Timeouts
//!
//! `connect_timeout` bounds each TCP connection attempt. `response_timeout` (which Twisted
//! lacks) bounds the whole exchange, from the call until the last body byte: when it expires
//! the connection is aborted and the request fails with
//! `ResponseNeverReceived([ResponseTimeout])`, or the body ends with
//! `ResponseFailed([ResponseTimeout, DataLoss])` if the head had arrived. A body that is never
//! asked for does not hold the connection past it either.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::endpoints::{
    EndpointReactor, HostnameEndpoint, HostnameOptions, connect_protocol, wrap_client_tls,
};
use crate::protocol::Handle;
use crate::time::{DelayedCall, ReactorTime};
use crate::tls::{ClientOptions, TrustRoots, options_for_client_tls};
use crate::web::Headers;
use crate::web::headers::is_token;
use crate::{Deferred, Failure};

use super::error::{
    BadRequest, BodyAlreadyDelivered, InvalidUri, RequestNotSent, RequestTransmissionFailed,
    ResponseNeverReceived, ResponseTimeout, SchemeNotSupported,
};
use super::pool::{Connection, HttpConnectionPool, PoolKey};
use super::producer::BodyProducer;
use super::protocol::{ClientRequest, HeadLimits, HttpClientProtocol, send_on};
use super::response::{BodySink, BodySource, Response};
use super::uri::Uri;

/// Something that makes HTTP requests: [`Agent`] and the agents that wrap one.
pub trait HttpAgent {
    /// Sends a request; see [`Agent`].
    fn request(
        &self,
        method: &str,
        uri: &str,
        headers: Option<Headers>,
        body: Option<Rc<dyn BodyProducer>>,
    ) -> Deferred<Response>;
}

impl<A: HttpAgent + ?Sized> HttpAgent for Rc<A> {
    fn request(
        &self,
        method: &str,
        uri: &str,
        headers: Option<Headers>,
        body: Option<Rc<dyn BodyProducer>>,
    ) -> Deferred<Response> {
        (**self).request(method, uri, headers, body)
    }
}

/// How `https` connections are verified (Twisted's `BrowserLikePolicyForHTTPS`): the server
/// must present a certificate for the URI's host that chains to the trust roots. There is no
/// way to turn verification off; to trust a private CA, name its roots.
///
/// ```
/// use twistor::tls::TrustRoots;
/// use twistor::web::client::HttpsPolicy;
/// let p = HttpsPolicy::with_trust_roots(TrustRoots::Webpki);
/// assert_eq!(p.creator_for_netloc("example.com", 443).hostname(), "example.com");
/// ```
#[derive(Debug, Clone, Default)]
pub struct HttpsPolicy {
    roots: TrustRoots,
}

impl HttpsPolicy {
    /// The system's trust roots (the default).
    pub fn browser_like() -> HttpsPolicy {
        HttpsPolicy::default()
    }

    /// Trusts exactly these roots.
    pub fn with_trust_roots(roots: TrustRoots) -> HttpsPolicy {
        HttpsPolicy { roots }
    }

    /// The TLS options for a connection to `host`.
    #[doc(alias = "creatorForNetloc")]
    pub fn creator_for_netloc(&self, host: &str, _port: u16) -> ClientOptions {
        options_for_client_tls(host)
            .trust_roots(self.roots.clone())
            .alpn(["http/1.1"])
    }
}

/// The [`Agent`]'s options.
///
/// ```
/// use std::time::Duration;
/// use twistor::web::client::AgentOptions;
/// let o = AgentOptions { response_timeout: Some(Duration::from_secs(10)), ..Default::default() };
/// assert_eq!(o.connect_timeout, Some(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Each TCP connection attempt gives up after this (default 30 s).
    pub connect_timeout: Option<Duration>,
    /// The whole exchange gives up after this (default: none; see the module docs).
    pub response_timeout: Option<Duration>,
    /// Bind outgoing connections to this local address.
    pub bind_address: Option<IpAddr>,
    /// How `https` servers are verified.
    pub https_policy: HttpsPolicy,
    /// Limits on response heads.
    pub head_limits: HeadLimits,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            connect_timeout: Some(Duration::from_secs(30)),
            response_timeout: None,
            bind_address: None,
            https_policy: HttpsPolicy::default(),
            head_limits: HeadLimits::default(),
        }
    }
}

/// Makes connections for an agent (Twisted's `IAgentEndpointFactory`): connects `protocol`
/// to where `uri` points.
pub trait EndpointFactory {
    /// Connects `protocol` to the URI's server.
    fn connect(
        &self,
        uri: &Uri,
        protocol: HttpClientProtocol,
    ) -> Deferred<Handle<HttpClientProtocol>>;
}

struct StandardEndpoints<R> {
    reactor: R,
    options: HostnameOptions,
    policy: HttpsPolicy,
}

impl<R: EndpointReactor> EndpointFactory for StandardEndpoints<R> {
    fn connect(
        &self,
        uri: &Uri,
        protocol: HttpClientProtocol,
    ) -> Deferred<Handle<HttpClientProtocol>> {
        let tcp = HostnameEndpoint::with_options(uri.host(), uri.port(), self.options.clone());
        if uri.scheme() == "https" {
            let tls = wrap_client_tls(self.policy.creator_for_netloc(uri.host(), uri.port()), tcp);
            connect_protocol(&tls, &self.reactor, protocol)
        } else {
            connect_protocol(&tcp, &self.reactor, protocol)
        }
    }
}

struct AgentInner {
    endpoints: Rc<dyn EndpointFactory>,
    pool: Rc<HttpConnectionPool>,
    time: Rc<dyn ReactorTime>,
    response_timeout: Option<f64>,
    limits: HeadLimits,
    /// Every request goes to this HTTP proxy (see [`Agent::via_proxy`]).
    proxy: Option<Uri>,
    /// The TLS options of origins reached through a proxy's tunnel.
    https_policy: HttpsPolicy,
}

/// The HTTP client (see the module docs).
///
/// ```no_run
/// use twistor::prelude::*;
/// use twistor::web::client::{Agent, HttpAgent, read_body};
///
/// let reactor = Reactor::new().unwrap();
/// let agent = Agent::new(&reactor);
/// let d = agent.request("GET", "http://127.0.0.1:8080/", None, None)
///     .add_callback_deferred(|response| read_body(&response));
/// while !d.has_result() {
///     reactor.iterate(std::time::Duration::from_millis(10)).unwrap();
/// }
/// ```
#[derive(Clone)]
pub struct Agent {
    inner: Rc<AgentInner>,
}

const IDEMPOTENT: [&str; 5] = ["GET", "HEAD", "OPTIONS", "DELETE", "TRACE"];

fn retryable(f: &Failure) -> bool {
    let reasons = if let Some(e) = f.downcast_ref::<ResponseNeverReceived>() {
        &e.reasons
    } else if let Some(e) = f.downcast_ref::<RequestTransmissionFailed>() {
        &e.reasons
    } else {
        return f.is::<RequestNotSent>();
    };
    !reasons
        .iter()
        .any(|r| r.is::<crate::defer::CancelledError>() || r.is::<ResponseTimeout>())
}

impl Agent {
    /// An agent with the default options and a non-persistent pool (`Connection: close`, a
    /// new connection per request), as Twisted's.
    pub fn new<R: EndpointReactor>(reactor: &R) -> Agent {
        Self::with_options(reactor, AgentOptions::default(), None)
    }

    /// An agent with these options and pool (`None`: a non-persistent one).
    pub fn with_options<R: EndpointReactor>(
        reactor: &R,
        options: AgentOptions,
        pool: Option<Rc<HttpConnectionPool>>,
    ) -> Agent {
        let time: Rc<dyn ReactorTime> = Rc::new(reactor.clone());
        let endpoints = Rc::new(StandardEndpoints {
            reactor: reactor.clone(),
            options: HostnameOptions {
                timeout: options.connect_timeout,
                bind_address: options.bind_address,
                ..HostnameOptions::default()
            },
            policy: options.https_policy.clone(),
        });
        Self::using_endpoint_factory(time, endpoints, pool, options)
    }

    /// An agent whose connections come from `endpoints` (Twisted's `usingEndpointFactory`);
    /// `time` runs the pool's idle timers and the response timeout.
    pub fn using_endpoint_factory(
        time: Rc<dyn ReactorTime>,
        endpoints: Rc<dyn EndpointFactory>,
        pool: Option<Rc<HttpConnectionPool>>,
        options: AgentOptions,
    ) -> Agent {
        let pool = pool.unwrap_or_else(|| HttpConnectionPool::non_persistent(time.clone()));
        Agent {
            inner: Rc::new(AgentInner {
                endpoints,
                pool,
                time,
                response_timeout: options.response_timeout.map(|d| d.as_secs_f64()),
                limits: options.head_limits,
                proxy: None,
                https_policy: options.https_policy,
            }),
        }
    }

    /// This agent, sending every request to the HTTP proxy at `proxy` (`http://host:port`,
    /// or `https://` for a proxy reached over TLS) instead of the URI's server (Twisted's
    /// `ProxyAgent`): the request line carries the absolute URI
    /// (`GET http://example.com/a HTTP/1.1`), `Host` still names the origin, and the pool
    /// keeps the proxy's connections for requests to any origin. An `https` URI goes
    /// through a tunnel instead (`CONNECT host:port`, then TLS with the origin, verified
    /// as without a proxy), so the proxy sees neither the request nor the response
    /// (Twisted's `ProxyAgent` sends it to the proxy in the clear); a proxy that refuses
    /// the tunnel fails the request with
    /// [`ProxyTunnelError`](super::error::ProxyTunnelError). A `Proxy-Authorization`
    /// header is sent with plain requests as the caller gives it (not with `CONNECT`).
    ///
    /// ```no_run
    /// use twistor::prelude::*;
    /// use twistor::web::client::{Agent, HttpAgent};
    ///
    /// let reactor = Reactor::new().unwrap();
    /// let agent = Agent::new(&reactor).via_proxy("http://127.0.0.1:3128").unwrap();
    /// let d = agent.request("GET", "http://example.com/", None, None);
    /// # drop(d);
    /// ```
    #[doc(alias = "ProxyAgent")]
    pub fn via_proxy(self, proxy: &str) -> Result<Agent, InvalidUri> {
        let proxy = Uri::parse(proxy)?;
        if proxy.scheme() != "http" && proxy.scheme() != "https" {
            return Err(InvalidUri {
                uri: proxy.to_string(),
                why: "a proxy is reached over http or https".into(),
            });
        }
        let i = &self.inner;
        Ok(Agent {
            inner: Rc::new(AgentInner {
                endpoints: i.endpoints.clone(),
                pool: i.pool.clone(),
                time: i.time.clone(),
                response_timeout: i.response_timeout,
                limits: i.limits,
                proxy: Some(proxy),
                https_policy: i.https_policy.clone(),
            }),
        })
    }

    /// The agent's pool.
    pub fn pool(&self) -> &Rc<HttpConnectionPool> {
        &self.inner.pool
    }
}

/// The connection a request is on, for its timeout.
#[derive(Default)]
struct Watch {
    conn: RefCell<Option<Connection>>,
    timed_out: Cell<bool>,
    timer: RefCell<Option<DelayedCall>>,
}

impl Watch {
    fn disarm(&self) {
        if let Some(t) = self.timer.borrow_mut().take() {
            let _ = t.cancel();
        }
    }
}

/// A body whose end disarms the response timeout.
struct TimedBody {
    inner: Rc<dyn BodySource>,
    watch: Rc<Watch>,
}

struct DisarmSink {
    out: Box<dyn BodySink>,
    watch: Rc<Watch>,
}

impl BodySink for DisarmSink {
    fn data(&mut self, data: &[u8]) {
        self.out.data(data);
    }
    fn end(&mut self, reason: Failure) {
        self.watch.disarm();
        self.out.end(reason);
    }
}

impl BodySource for TimedBody {
    fn deliver(&self, sink: Box<dyn BodySink>) -> Result<(), BodyAlreadyDelivered> {
        self.inner.deliver(Box::new(DisarmSink {
            out: sink,
            watch: self.watch.clone(),
        }))
    }
    fn control(&self) -> Rc<dyn crate::transport::Producer> {
        self.inner.control()
    }
}

impl AgentInner {
    /// A new connection to `uri`'s server: directly, to the proxy (which `uri` then is),
    /// or through a tunnel the proxy opens to an `https` origin.
    fn connect(self: &Rc<Self>, uri: &Uri) -> Deferred<Connection> {
        let protocol = HttpClientProtocol::with_limits(self.limits);
        let state = protocol.state_cell();
        let Some(proxy) = self.proxy.as_ref().filter(|_| uri.scheme() == "https") else {
            return self
                .endpoints
                .connect(uri, protocol)
                .add_callback(move |h| Connection::new(h, state));
        };
        let host = if uri.host().contains(':') {
            format!("[{}]", uri.host())
        } else {
            uri.host().to_string()
        };
        let authority = format!("{host}:{}", uri.port());
        let tls = self.https_policy.creator_for_netloc(uri.host(), uri.port());
        self.endpoints
            .connect(proxy, protocol)
            .add_callback_deferred(move |h| {
                if !h.alive() {
                    return Deferred::fail(RequestNotSent);
                }
                // From inside one of the protocol's callbacks (a connection made at once)
                // the tunnel is asked for right after it: the result comes through `r`.
                let (opened, r) = Deferred::new();
                h.with(move |p, cx| {
                    let _ = p.tunnel(cx, &authority, tls).chain_deferred(&r);
                });
                opened.add_callback(move |()| Connection::new(h, state))
            })
    }

    fn attempt(
        self: &Rc<Self>,
        key: PoolKey,
        uri: Uri,
        request: ClientRequest,
        watch: Rc<Watch>,
        may_retry: bool,
    ) -> Deferred<Response> {
        let (conn_d, reused) = match self.pool.take_idle(&key) {
            Some(c) => (Deferred::succeed(c), true),
            None => (self.connect(&uri), false),
        };
        let me = self.clone();
        let req = request.clone();
        let w = watch.clone();
        let k = key.clone();
        let sent = conn_d.add_callback_deferred(move |conn| {
            *w.conn.borrow_mut() = Some(conn.clone());
            let pool = me.pool.clone();
            let back = conn.clone();
            let w2 = w.clone();
            let on_quiescent = Box::new(move || {
                w2.disarm();
                pool.put(k, back);
            });
            send_on(&conn.handle, req, Some(on_quiescent))
        });
        let me = self.clone();
        sent.add_errback_deferred(move |f| {
            let method_ok = IDEMPOTENT.contains(&request.method.as_str());
            let body_ok = request.body.as_ref().is_none_or(|b| b.replay().is_some());
            if reused
                && may_retry
                && me.pool.retry_automatically()
                && method_ok
                && body_ok
                && !watch.timed_out.get()
                && retryable(&f)
            {
                let mut again = request;
                again.body = again.body.as_ref().and_then(|b| b.replay());
                log::debug!(target: "twistor::web::client", "retrying {} {uri} on a new connection: {f}", again.method);
                // A new connection: the retry must not pick another stale idle one.
                let fresh = me.connect(&uri);
                let w = watch.clone();
                let pool = me.pool.clone();
                return fresh.add_callback_deferred(move |conn| {
                    *w.conn.borrow_mut() = Some(conn.clone());
                    let back = conn.clone();
                    let w2 = w.clone();
                    send_on(
                        &conn.handle,
                        again,
                        Some(Box::new(move || {
                            w2.disarm();
                            pool.put(key, back);
                        })),
                    )
                });
            }
            Deferred::fail(f)
        })
    }
}

impl HttpAgent for Agent {
    fn request(
        &self,
        method: &str,
        uri: &str,
        headers: Option<Headers>,
        body: Option<Rc<dyn BodyProducer>>,
    ) -> Deferred<Response> {
        if !is_token(method.as_bytes()) {
            return Deferred::fail(BadRequest(format!("the method {method:?} is not a token")));
        }
        let parsed = match Uri::parse(uri) {
            Ok(u) => u,
            Err(e) => return Deferred::fail(e),
        };
        if parsed.scheme() != "http" && parsed.scheme() != "https" {
            return Deferred::fail(SchemeNotSupported(parsed.scheme().to_string()));
        }
        let mut headers = headers.unwrap_or_default();
        if !headers.contains("host") {
            headers.add("Host", parsed.host_header());
        }
        // A caller's `Connection: close` makes the request non-persistent.
        let persistent = self.inner.pool.persistent() && !headers.has_token("connection", "close");
        let (target, key, server) = match &self.inner.proxy {
            None => (
                parsed.origin_form(),
                (
                    parsed.scheme().to_string(),
                    parsed.host().to_string(),
                    parsed.port(),
                ),
                parsed.clone(),
            ),
            // Through a tunnel the request is the origin's own, encrypted end to end; the
            // tunnel belongs to one origin, so does its pool key.
            Some(proxy) if parsed.scheme() == "https" => (
                parsed.origin_form(),
                (
                    format!("https-via-{}:{}", proxy.host(), proxy.port()),
                    parsed.host().to_string(),
                    parsed.port(),
                ),
                parsed.clone(),
            ),
            Some(proxy) => (
                parsed.absolute_form(),
                (
                    format!("{}-proxy", proxy.scheme()),
                    proxy.host().to_string(),
                    proxy.port(),
                ),
                proxy.clone(),
            ),
        };
        let request = ClientRequest {
            method: method.to_string(),
            target,
            headers,
            body,
            persistent,
        };
        let watch = Rc::new(Watch::default());
        let d = self
            .inner
            .attempt(key, server, request, watch.clone(), true);
        if let Some(t) = self.inner.response_timeout {
            let w = watch.clone();
            let cancel = d.cancel_handle();
            let timer = self.inner.time.call_later_boxed(
                t,
                Box::new(move || {
                    w.timed_out.set(true);
                    let conn = w.conn.borrow().clone();
                    match conn {
                        Some(c) if c.handle.alive() => {
                            c.handle.with(move |p, cx| {
                                p.abort_with(cx, Failure::new(ResponseTimeout(t)))
                            });
                        }
                        _ => cancel.cancel(),
                    }
                }),
            );
            *watch.timer.borrow_mut() = Some(timer);
        }
        let w = watch;
        let limit = self.inner.response_timeout.unwrap_or(0.0);
        d.add_both(move |res| match res {
            Ok(mut r) => {
                r.request_uri = Some(parsed);
                if w.timer.borrow().is_some() {
                    // The timeout covers the body too: it is disarmed when the body ends.
                    let inner = r.body.clone();
                    r.body = Rc::new(TimedBody { inner, watch: w });
                }
                Ok(r)
            }
            Err(f) => {
                w.disarm();
                if w.timed_out.get() && !f.is::<ResponseNeverReceived>() {
                    Err(Failure::new(ResponseNeverReceived::new(Failure::new(
                        ResponseTimeout(limit),
                    ))))
                } else {
                    Err(f)
                }
            }
        })
    }
}
