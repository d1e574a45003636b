//! TLS (Twisted's `twisted.protocols.tls`, `listenSSL`, `connectSSL`, `startTLS`): a
//! protocol/transport pair over rustls (ring provider) that runs over any stream connection.
//!
//! * Options: [`ServerOptions`] (certificate chain and key from PEM,
//!   optional client certificates, ALPN, session resumption) and [`ClientOptions`] from
//!   [`options_for_client_tls`] (host name verification on by default; system, Mozilla or
//!   PEM trust roots; client certificate; ALPN).
//! * [`TlsProtocol`]: the wrapper (one TLS session around one protocol; its docs give the
//!   rules of buffering, closing and errors), and [`TlsFactory`], which wraps every protocol
//!   of a factory.
//! * [`listen_ssl`], [`connect_ssl`], [`connect_ssl_protocol`]: TCP with TLS.
//! * STARTTLS: any stream connection (TCP or UNIX, from a plain factory) runs in clear text
//!   until the protocol calls [`Transport::start_tls`](crate::transport::Transport::start_tls);
//!   the connection then runs the same TLS session state as [`TlsProtocol`] inside itself, so
//!   a connection that never switches pays nothing but one flag test per read and write.
//!   [`TlsFactory::start_tls_capable`] and [`TlsProtocol::plain`] (a wrapper in pass-through
//!   mode) do the same over any transport, the in-memory ones included.
//! * What the protocol sees: [`handshake_completed`](crate::protocol::Protocol::handshake_completed)
//!   once the handshake is done, [`Transport::tls`](crate::transport::Transport::tls) for the
//!   peer certificate and ALPN protocol, and a [`TlsError`] naming the cause as the
//!   `connection_lost` reason when TLS fails.
//!
//! ```
//! use twistor::prelude::*;
//! use twistor::testing::{AccumulatingProtocol, connected_server_and_client};
//! use twistor::tls::{ServerOptions, TlsProtocol, TrustRoots, options_for_client_tls};
//!
//! // A certificate for "localhost", made at run time.
//! let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
//! let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
//! let server_opts = ServerOptions::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
//! let client_opts = options_for_client_tls("localhost")
//!     .trust_roots(TrustRoots::from_pem(cert_pem.as_bytes()).unwrap());
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, cx: &Context<Self>, d: &[u8]) { cx.transport().write(d) }
//! }
//! let (server, _) = TlsProtocol::server(Echo, &server_opts).unwrap();
//! let (client, handle) = TlsProtocol::client(AccumulatingProtocol::default(), &client_opts).unwrap();
//! let (_s, _c, pump) = connected_server_and_client(server, client);
//! handle.with(|_, cx| cx.transport().write(b"hello"));
//! pump.flush();
//! assert_eq!(handle.with(|p, _| p.data.clone()), Some(b"hello".to_vec()));
//! ```

mod errors;
mod factory;
mod info;
mod options;
mod wrapper;

pub use errors::TlsError;
pub use factory::TlsFactory;
pub use info::TlsInfo;
pub use options::{
    ClientAuth, ClientOptions, Identity, ServerOptions, TlsConfig, TlsVersion, TrustRoots,
    options_for_client_tls,
};
pub(crate) use wrapper::TlsLayer;
pub use wrapper::{CLOSE_NOTIFY_TIMEOUT, PENDING_HIGH, TlsProtocol};

use crate::defer::Deferred;
use crate::error::CannotListenError;
use crate::protocol::{ClientFactory, Factory, Handle, Protocol};
use crate::reactor::Reactor;
use crate::transport::listener::ListeningPort;
use crate::transport::tcp::{
    ConnectOptions, IntoFactory, ListenOptions, TcpConnector, connect_protocol_with,
    connect_tcp_with, listen_tcp_with,
};

/// Why [`listen_ssl`] could not listen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenSslError {
    /// The TLS options are unusable (bad certificate or key...).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The port could not be opened.
    #[error(transparent)]
    Listen(#[from] CannotListenError),
}

/// Listens on `port` with TLS (Twisted's `listenSSL`): [`listen_tcp_with`] with the factory
/// wrapped in a [`TlsFactory`]. The options are checked first: a bad key fails here.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::tls::{listen_ssl, ServerOptions};
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
/// let port = listen_ssl(&reactor, 0, for_protocol(|| Echo), &opts, ListenOptions::on("127.0.0.1"))
///     .unwrap();
/// assert_ne!(port.port(), 0);
/// ```
#[doc(alias = "listenSSL")]
pub fn listen_ssl<A>(
    reactor: &Reactor,
    port: u16,
    factory: A,
    options: &ServerOptions,
    listen: ListenOptions,
) -> Result<ListeningPort, ListenSslError>
where
    A: IntoFactory,
    A::Factory: Factory,
{
    let f = TlsFactory::server(factory, options)?.with_reactor(reactor);
    Ok(listen_tcp_with(reactor, port, f, listen)?)
}

/// Connects to `host:port` with TLS (Twisted's `connectSSL` with `optionsForClientTLS`):
/// [`connect_tcp_with`] with the factory wrapped in a [`TlsFactory`]. The server is verified
/// against the options' host name (not necessarily `host`: connect to an address, verify a
/// name). A verification failure reaches the protocol's `connection_lost` as a [`TlsError`].
///
/// ```
/// use twistor::prelude::*;
/// use twistor::tls::{connect_ssl, options_for_client_tls, TrustRoots};
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let reactor = Reactor::new().unwrap();
/// let opts = options_for_client_tls("example.com").trust_roots(TrustRoots::Webpki);
/// let c = connect_ssl(&reactor, "127.0.0.1", 9, for_protocol(|| Quiet), &opts,
///                     ConnectOptions::default()).unwrap();
/// c.disconnect();
/// ```
#[doc(alias = "connectSSL")]
pub fn connect_ssl<A>(
    reactor: &Reactor,
    host: &str,
    port: u16,
    factory: A,
    options: &ClientOptions,
    connect: ConnectOptions,
) -> Result<TcpConnector, TlsError>
where
    A: IntoFactory,
    A::Factory: ClientFactory,
{
    let f = TlsFactory::client(factory, options)?.with_reactor(reactor);
    Ok(connect_tcp_with(reactor, host, port, f, connect))
}

/// Connects `protocol` to `host:port` with TLS and fires with its [`Handle`] once the
/// handshake completed (the server verified); fails with the [`TlsError`] naming the cause
/// if verification or the handshake fails, or with the connection error.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::tls::{connect_ssl_protocol, options_for_client_tls, TlsError};
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let reactor = Reactor::new().unwrap();
/// let bad = options_for_client_tls("no such name!");
/// let d = connect_ssl_protocol(&reactor, "127.0.0.1", 9, Quiet, &bad, ConnectOptions::default());
/// let f = twistor::testing::failure_result_of(&d);
/// assert!(matches!(f.downcast_ref::<TlsError>(), Some(TlsError::InvalidHostName(_))));
/// ```
pub fn connect_ssl_protocol<P: Protocol>(
    reactor: &Reactor,
    host: &str,
    port: u16,
    protocol: P,
    options: &ClientOptions,
    connect: ConnectOptions,
) -> Deferred<Handle<P>> {
    let (tls, handle) = match TlsProtocol::client(protocol, options) {
        Ok(x) => x,
        Err(e) => return Deferred::fail(e),
    };
    let (d, resolver) = Deferred::new();
    let on_fail = resolver.clone();
    let tls = tls.with_reactor(reactor).on_handshake(move |r| {
        let _ = match r {
            Ok(()) => resolver.callback(handle),
            Err(f) => resolver.errback(f),
        };
    });
    // The connection attempt's own failure (refused, timed out) fails `d` too.
    let _ = connect_protocol_with(reactor, host, port, tls, connect).add_both(move |r| {
        if let Err(f) = r {
            let _ = on_fail.errback(f);
        }
        Ok(())
    });
    d
}
