//! TLS endpoints (Twisted's `wrapClientTLS`, `wrapServerTLS`, `SSL4ServerEndpoint`,
//! `SSL4ClientEndpoint`): TLS on top of any other endpoint, so TLS runs over TCP, a host
//! name race or a UNIX socket alike.
//!
//! - [`TlsServerEndpoint`] listens on its inner endpoint with the factory wrapped in a
//!   [`TlsFactory`]; the options are checked when `listen` is called, so a bad key gives a
//!   failed Deferred, not a port that fails every connection.
//! - [`TlsClientEndpoint`] (made by [`wrap_client_tls`]) connects its inner endpoint with
//!   every protocol wrapped in a [`TlsProtocol`], and fires with the handle of the user's
//!   protocol (not the wrapper's), as the other endpoints do.
//!
//! When the client's Deferred fires differs from Twisted on purpose: Twisted's
//! `wrapClientTLS` fires as soon as the underlying connection is made, before the
//! handshake, so a server that fails verification still looks connected and the failure
//! only shows up later as `connectionLost`. Here the Deferred fires once the handshake has
//! completed (the server verified), and fails with the [`TlsError`] naming the cause (wrong
//! host, unknown issuer, expired...) otherwise. The protocol's own callbacks are the same as
//! with any TLS connection: `connection_made` before the handshake (what it writes waits
//! for it), `handshake_completed`, and `connection_lost` with the same `TlsError` when TLS
//! fails. Cancelling before the inner endpoint connected cancels its attempt; cancelling
//! during the handshake aborts the connection; both fail the Deferred with
//! [`ConnectingCancelledError`].
//!
//! Every client endpoint hands at most one connection per `connect` to the factory (a host
//! name race cancels its losers before they build a protocol), so one `connect` builds one
//! TLS session, and its handshake alone decides the Deferred.

use std::any::Any;
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use super::client::{ClientEndpoint, EndpointReactor, ProtocolOf};
use super::error::ConnectingCancelledError;
use super::server::ServerEndpoint;
use crate::defer::CancelHandle;
use crate::protocol::{Factory, Handle};
use crate::reactor::{Reactor, WeakReactor};
use crate::tls::{
    ClientOptions, Identity, ServerOptions, TlsConfig, TlsError, TlsFactory, TlsProtocol,
    TrustRoots,
};
use crate::transport::Address;
use crate::transport::listener::ListeningPort;
use crate::transport::tcp::IntoFactory;
use crate::{Deferred, Resolver};

/// Listens with TLS on another server endpoint (Twisted's `wrapServerTLS`; over a TCP
/// endpoint, its `SSL4ServerEndpoint`).
///
/// ```
/// use twistor::endpoints::{ServerEndpoint, Tcp4ServerEndpoint, TlsServerEndpoint};
/// use twistor::prelude::*;
/// use twistor::tls::ServerOptions;
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, cx: &Context<Self>, d: &[u8]) { cx.transport().write(d) }
/// }
/// let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// let opts = ServerOptions::from_pem(
///     cert.cert.pem().as_bytes(),
///     cert.signing_key.serialize_pem().as_bytes(),
/// ).unwrap();
/// let reactor = Reactor::new().unwrap();
/// let tcp = Tcp4ServerEndpoint::with_options(0, ListenOptions::on("127.0.0.1"));
/// let endpoint = TlsServerEndpoint::new(opts, tcp);
/// let port = twistor::testing::success_result_of(&endpoint.listen(&reactor, for_protocol(|| Echo)));
/// assert_ne!(port.port(), 0);
/// ```
#[doc(alias = "wrapServerTLS")]
#[doc(alias = "SSL4ServerEndpoint")]
#[derive(Debug, Clone)]
pub struct TlsServerEndpoint<E> {
    options: ServerOptions,
    inner: E,
}

impl<E> TlsServerEndpoint<E> {
    /// Serves TLS with `options` wherever `inner` listens.
    ///
    /// ```
    /// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    /// # let opts = twistor::tls::ServerOptions::from_pem(cert.cert.pem().as_bytes(),
    /// #     cert.signing_key.serialize_pem().as_bytes()).unwrap();
    /// use twistor::endpoints::{TlsServerEndpoint, UnixServerEndpoint};
    /// let e = TlsServerEndpoint::new(opts, UnixServerEndpoint::new("run/tls.sock"));
    /// assert_eq!(e.inner().path(), std::path::Path::new("run/tls.sock"));
    /// ```
    pub fn new(options: ServerOptions, inner: E) -> Self {
        TlsServerEndpoint { options, inner }
    }

    /// The TLS options.
    ///
    /// ```
    /// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    /// # let opts = twistor::tls::ServerOptions::from_pem(cert.cert.pem().as_bytes(),
    /// #     cert.signing_key.serialize_pem().as_bytes()).unwrap();
    /// let e = twistor::endpoints::TlsServerEndpoint::new(opts, twistor::endpoints::Tcp4ServerEndpoint::new(0));
    /// assert!(e.options().config().is_ok());
    /// ```
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// The endpoint listened on.
    ///
    /// ```
    /// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    /// # let opts = twistor::tls::ServerOptions::from_pem(cert.cert.pem().as_bytes(),
    /// #     cert.signing_key.serialize_pem().as_bytes()).unwrap();
    /// let e = twistor::endpoints::TlsServerEndpoint::new(opts, twistor::endpoints::Tcp4ServerEndpoint::new(443));
    /// assert_eq!(e.inner().port(), 443);
    /// ```
    pub fn inner(&self) -> &E {
        &self.inner
    }
}

impl<E: ServerEndpoint> ServerEndpoint for TlsServerEndpoint<E> {
    fn listen<A>(&self, reactor: &Reactor, factory: A) -> Deferred<ListeningPort>
    where
        A: IntoFactory,
        A::Factory: Factory,
    {
        match TlsFactory::server(factory, &self.options) {
            Ok(f) => self
                .inner
                .listen(reactor, Erased::new(Rc::new(f.with_reactor(reactor)))),
            Err(e) => Deferred::fail(e),
        }
    }
}

/// Connects with TLS over another client endpoint; made by [`wrap_client_tls`]. See the
/// module docs for when its Deferred fires.
///
/// ```
/// use twistor::endpoints::{wrap_client_tls, TlsClientEndpoint, UnixClientEndpoint};
/// use twistor::tls::options_for_client_tls;
///
/// let e: TlsClientEndpoint<UnixClientEndpoint> =
///     wrap_client_tls(options_for_client_tls("localhost"), UnixClientEndpoint::new("/run/app.sock"));
/// assert_eq!(e.options().hostname(), "localhost");
/// ```
#[derive(Debug, Clone)]
pub struct TlsClientEndpoint<E> {
    options: ClientOptions,
    inner: E,
}

/// TLS with `options` over `inner` (Twisted's `wrapClientTLS`): the server is verified
/// against the options' host name, whatever `inner` connects to. `connect` fires with the
/// user's protocol's handle once the handshake completed, or fails with the [`TlsError`]
/// naming why it did not.
///
/// ```
/// use twistor::endpoints::{wrap_client_tls, ClientEndpoint, Tcp4ClientEndpoint};
/// use twistor::prelude::*;
/// use twistor::tls::{listen_ssl, options_for_client_tls, ServerOptions, TrustRoots};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, cx: &Context<Self>, d: &[u8]) { cx.transport().write(d) }
/// }
/// let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
/// let server = ServerOptions::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
/// let reactor = Reactor::new().unwrap();
/// let port = listen_ssl(&reactor, 0, for_protocol(|| Echo), &server, ListenOptions::on("127.0.0.1"))
///     .unwrap();
///
/// let client = options_for_client_tls("localhost")
///     .trust_roots(TrustRoots::from_pem(cert_pem.as_bytes()).unwrap());
/// let endpoint = wrap_client_tls(client, Tcp4ClientEndpoint::new("127.0.0.1", port.port()));
/// let d = endpoint.connect(&reactor, for_protocol(|| Echo));
/// while !d.has_result() {
///     reactor.iterate(std::time::Duration::from_millis(10)).unwrap();
/// }
/// let handle = twistor::testing::success_result_of(&d);
/// assert!(handle.with(|_, cx| cx.transport().tls().unwrap().active).unwrap());
/// ```
#[doc(alias = "wrapClientTLS")]
pub fn wrap_client_tls<E: ClientEndpoint>(
    options: ClientOptions,
    inner: E,
) -> TlsClientEndpoint<E> {
    TlsClientEndpoint { options, inner }
}

impl<E> TlsClientEndpoint<E> {
    /// The TLS options.
    ///
    /// ```
    /// use twistor::endpoints::{wrap_client_tls, Tcp4ClientEndpoint};
    /// let e = wrap_client_tls(twistor::tls::options_for_client_tls("a.example"), Tcp4ClientEndpoint::new("10.0.0.1", 443));
    /// assert_eq!(e.options().hostname(), "a.example");
    /// ```
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The endpoint connected through.
    ///
    /// ```
    /// use twistor::endpoints::{wrap_client_tls, Tcp4ClientEndpoint};
    /// let e = wrap_client_tls(twistor::tls::options_for_client_tls("a.example"), Tcp4ClientEndpoint::new("10.0.0.1", 443));
    /// assert_eq!(e.inner().host(), "10.0.0.1");
    /// ```
    pub fn inner(&self) -> &E {
        &self.inner
    }
}

/// What the canceller needs: the inner attempt while it runs, then the connection.
#[derive(Default)]
struct Pending {
    attempt: Option<CancelHandle>,
    connection: Option<Handle<TlsProtocol>>,
}

impl<E: ClientEndpoint> ClientEndpoint for TlsClientEndpoint<E> {
    fn connect<R, A>(&self, reactor: &R, factory: A) -> Deferred<Handle<ProtocolOf<A>>>
    where
        R: EndpointReactor,
        A: IntoFactory,
        A::Factory: Factory,
    {
        // Options that cannot make a session (a bad name, no roots) fail now, not per
        // connection.
        if let Err(e) = self
            .options
            .config()
            .and_then(|_| self.options.server_name())
        {
            return Deferred::fail(e);
        }
        // The canceller holds `pending` (a Deferred drops its canceller once fired, so this
        // lasts only while connecting); `pending` holds the attempt only until it fires, and
        // the connection weakly.
        let pending = Rc::new(RefCell::new(Pending::default()));
        let in_canceller = pending.clone();
        let (d, result) = Deferred::with_canceller(move |r: &Resolver<Handle<ProtocolOf<A>>>| {
            let (attempt, connection) = {
                let mut p = in_canceller.borrow_mut();
                (p.attempt.take(), p.connection.take())
            };
            if let Some(c) = connection {
                if let Some(peer) = c.with(|_, cx| cx.transport().get_peer()) {
                    let _ = r.errback(ConnectingCancelledError { address: peer });
                    c.with(|_, cx| cx.transport().abort_connection());
                }
            } else if let Some(a) = attempt {
                // The inner endpoint fails its attempt with its own
                // ConnectingCancelledError, which reaches `r` below.
                a.cancel();
            }
        });
        let wrapping = HandshakeFactory {
            factory: factory.into_factory(),
            config: TlsConfig::Client(self.options.clone()),
            reactor: (reactor as &dyn Any)
                .downcast_ref::<Reactor>()
                .map(Reactor::downgrade),
            result: result.clone(),
        };
        let attempt = self.inner.connect(reactor, Erased::new(Rc::new(wrapping)));
        let handle = attempt.cancel_handle();
        let on_connect = pending.clone();
        let _ = attempt.add_both(move |r| {
            match r {
                Ok(connection) => {
                    let mut p = on_connect.borrow_mut();
                    p.attempt = None;
                    if !result.called() {
                        p.connection = Some(connection);
                    }
                }
                Err(f) => {
                    on_connect.borrow_mut().attempt = None;
                    let _ = result.errback(f);
                }
            }
            Ok(())
        });
        let mut p = pending.borrow_mut();
        if p.connection.is_none() && !d.has_result() {
            p.attempt = Some(handle);
        }
        drop(p);
        d
    }
}

/// Wraps the user's protocol in a TLS session and fires the endpoint's Deferred with the
/// user's handle when the handshake ends.
struct HandshakeFactory<F: Factory> {
    factory: Rc<F>,
    config: TlsConfig,
    reactor: Option<WeakReactor>,
    result: Resolver<Handle<F::Protocol>>,
}

impl<F: Factory> Factory for HandshakeFactory<F> {
    type Protocol = TlsProtocol;

    fn build_protocol(&self, addr: &Address) -> Option<TlsProtocol> {
        let inner = self.factory.build_protocol(addr)?;
        let factory: Rc<dyn Any> = self.factory.clone();
        let (tls, handle) = match TlsProtocol::with_config(inner, &self.config, Some(factory)) {
            Ok(x) => x,
            Err(e) => {
                let _ = self.result.errback(e);
                return None;
            }
        };
        tls.set_reactor(self.reactor.clone());
        let result = self.result.clone();
        Some(tls.on_handshake(move |r| {
            let _ = match r {
                Ok(()) => result.callback(handle),
                Err(f) => result.errback(f),
            };
        }))
    }

    fn start_factory(&self) {
        self.factory.start_factory()
    }

    fn stop_factory(&self) {
        self.factory.stop_factory()
    }
}

/// A TLS factory with the user's factory type erased. A TLS endpoint over an
/// [`AnyServerEndpoint`](super::AnyServerEndpoint) or
/// [`AnyClientEndpoint`](super::AnyClientEndpoint) (which may itself be TLS) hands its inner
/// endpoint this one type whatever it was given, so the generic `listen` / `connect` are
/// instantiated a bounded number of times instead of once per level of wrapping, for ever.
struct Erased {
    inner: Rc<dyn ErasedTls>,
}

trait ErasedTls {
    fn build(&self, addr: &Address) -> Option<TlsProtocol>;
    fn start(&self);
    fn stop(&self);
}

impl<F: Factory<Protocol = TlsProtocol>> ErasedTls for F {
    fn build(&self, addr: &Address) -> Option<TlsProtocol> {
        self.build_protocol(addr)
    }
    fn start(&self) {
        self.start_factory()
    }
    fn stop(&self) {
        self.stop_factory()
    }
}

impl Erased {
    fn new<F: Factory<Protocol = TlsProtocol>>(factory: Rc<F>) -> Erased {
        Erased { inner: factory }
    }
}

impl Factory for Erased {
    type Protocol = TlsProtocol;

    fn build_protocol(&self, addr: &Address) -> Option<TlsProtocol> {
        self.inner.build(addr)
    }
    fn start_factory(&self) {
        self.inner.start()
    }
    fn stop_factory(&self) {
        self.inner.stop()
    }
}

// ---- PEM files named by endpoint strings ------------------------------------------------------

/// A PEM file named by a description's keyword that cannot be used: the keyword, the path
/// and why.
#[derive(Debug)]
pub(crate) struct BadFile {
    pub keyword: &'static str,
    pub path: String,
    pub reason: String,
}

fn bad(keyword: &'static str, path: &Path, e: impl std::fmt::Display) -> BadFile {
    BadFile {
        keyword,
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn read(keyword: &'static str, path: &Path) -> Result<Vec<u8>, BadFile> {
    std::fs::read(path).map_err(|e| bad(keyword, path, format!("cannot be read ({e})")))
}

/// The certificates of a PEM file (other blocks skipped; none is not an error here).
fn certificates_in(
    keyword: &'static str,
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, BadFile> {
    match TrustRoots::from_pem(&read(keyword, path)?) {
        Ok(TrustRoots::Certificates(c)) => Ok(c),
        Ok(_) | Err(TlsError::NoCertificate(_)) => Ok(Vec::new()),
        Err(e) => Err(bad(keyword, path, format!("is not usable: {e}"))),
    }
}

/// The certificates of a PEM file; none is an error.
fn certificates(
    keyword: &'static str,
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, BadFile> {
    let certs = certificates_in(keyword, path)?;
    if certs.is_empty() {
        return Err(bad(keyword, path, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// An identity from a certificate file (leaf first; `extra` appended after it) and a key
/// file (which may be the same file).
pub(crate) fn identity_from_files(
    cert_keyword: &'static str,
    cert: &Path,
    key_keyword: &'static str,
    key: &Path,
    extra: Option<(&'static str, &Path)>,
) -> Result<Identity, BadFile> {
    let mut chain_pem = read(cert_keyword, cert)?;
    certificates(cert_keyword, cert)?;
    if let Some((keyword, path)) = extra {
        certificates(keyword, path)?;
        chain_pem.push(b'\n');
        chain_pem.extend(read(keyword, path)?);
    }
    let key_pem = read(key_keyword, key)?;
    Identity::from_pem(&chain_pem, &key_pem).map_err(|e| match e {
        TlsError::NoPrivateKey(_) => bad(key_keyword, key, "holds no PEM private key"),
        e => bad(key_keyword, key, format!("is not usable: {e}")),
    })
}

/// Trust roots from a PEM file, or from every `*.pem` file (any case) directly in a
/// directory. In a directory, files holding no certificate (keys, say) are skipped; an
/// unreadable file, or a directory with no certificate at all, is an error.
pub(crate) fn trust_roots_from(keyword: &'static str, path: &Path) -> Result<TrustRoots, BadFile> {
    if !path.is_dir() {
        return Ok(TrustRoots::Certificates(certificates(keyword, path)?));
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| bad(keyword, path, format!("cannot be listed ({e})")))?;
    let mut files: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("pem"))
        })
        .collect();
    files.sort();
    let mut roots = Vec::new();
    for f in files {
        roots.extend(certificates_in(keyword, &f)?);
    }
    if roots.is_empty() {
        return Err(bad(
            keyword,
            path,
            "is a directory with no certificate in its .pem files",
        ));
    }
    Ok(TrustRoots::Certificates(roots))
}
