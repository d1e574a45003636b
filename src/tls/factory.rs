//! [`TlsFactory`]: wraps every protocol a factory builds in a [`TlsProtocol`] (Twisted's
//! `TLSMemoryBIOFactory`), so TLS runs over whatever the factory is given to: `listen_tcp`,
//! `connect_tcp`, UNIX sockets, the in-memory test transports.
//!
//! The wrapped factory stays what the protocols see as their factory
//! ([`Context::factory`](crate::protocol::Context::factory)), and a client factory's hooks
//! (`client_connection_failed`, ...) reach it unchanged.

use std::any::Any;
use std::rc::Rc;

use super::errors::TlsError;
use super::options::{ClientOptions, ServerOptions, TlsConfig};
use super::wrapper::TlsProtocol;
use crate::Failure;
use crate::protocol::{ClientFactory, Factory};
use crate::reactor::{Reactor, WeakReactor};
use crate::transport::Address;
use crate::transport::connector::Connector;
use crate::transport::tcp::IntoFactory;

/// A factory whose connections run TLS (or can start it: [`TlsFactory::start_tls_capable`]).
///
/// ```
/// use twistor::protocol::{for_protocol, Context, Protocol};
/// use twistor::tls::{TlsFactory, TrustRoots, options_for_client_tls};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, cx: &Context<Self>, d: &[u8]) { cx.transport().write(d) }
/// }
/// let opts = options_for_client_tls("example.com").trust_roots(TrustRoots::Webpki);
/// let _f = TlsFactory::client(for_protocol(|| Echo), &opts).unwrap();
/// ```
pub struct TlsFactory<F: Factory> {
    factory: Rc<F>,
    config: Option<TlsConfig>,
    reactor: Option<WeakReactor>,
}

impl<F: Factory> TlsFactory<F> {
    /// Serves TLS with `options`: the configuration is built now, so a bad key fails here.
    ///
    /// ```no_run
    /// # use twistor::protocol::{for_protocol, Context, Protocol};
    /// # struct Echo;
    /// # impl Protocol for Echo { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// use twistor::tls::{ServerOptions, TlsFactory};
    /// let opts = ServerOptions::from_pem_files("cert.pem", "key.pem")?;
    /// let _f = TlsFactory::server(for_protocol(|| Echo), &opts)?;
    /// # Ok::<(), twistor::tls::TlsError>(())
    /// ```
    pub fn server<A: IntoFactory<Factory = F>>(
        factory: A,
        options: &ServerOptions,
    ) -> Result<Self, TlsError> {
        options.config()?;
        Ok(TlsFactory {
            factory: factory.into_factory(),
            config: Some(TlsConfig::Server(options.clone())),
            reactor: None,
        })
    }

    /// Connects with TLS as a client with `options` (configuration built now).
    ///
    /// ```
    /// # use twistor::protocol::{for_protocol, Context, Protocol};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// use twistor::tls::{TlsFactory, options_for_client_tls};
    /// let bad = options_for_client_tls("bad name!");
    /// assert!(TlsFactory::client(for_protocol(|| P), &bad).is_err());
    /// ```
    pub fn client<A: IntoFactory<Factory = F>>(
        factory: A,
        options: &ClientOptions,
    ) -> Result<Self, TlsError> {
        options.config()?;
        options.server_name()?;
        Ok(TlsFactory {
            factory: factory.into_factory(),
            config: Some(TlsConfig::Client(options.clone())),
            reactor: None,
        })
    }

    /// Connections start in clear text and may switch with
    /// [`Transport::start_tls`](crate::transport::Transport::start_tls) (STARTTLS), over any
    /// transport, the in-memory test transports included. Stream connections from a plain
    /// factory can switch too; this wrapper differs in that
    /// [`Transport::tls`](crate::transport::Transport::tls) says `active: false` before the
    /// switch instead of `None`.
    ///
    /// ```
    /// # use twistor::protocol::{for_protocol, Context, Protocol};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// let _f = twistor::tls::TlsFactory::start_tls_capable(for_protocol(|| P));
    /// ```
    #[doc(alias = "startTLS")]
    pub fn start_tls_capable<A: IntoFactory<Factory = F>>(factory: A) -> Self {
        TlsFactory {
            factory: factory.into_factory(),
            config: None,
            reactor: None,
        }
    }

    /// Its connections merge writes made outside their callbacks per phase of `reactor`
    /// (see [`TlsProtocol::with_reactor`]); `listen_ssl` and `connect_ssl` set it.
    ///
    /// ```
    /// # use twistor::protocol::{for_protocol, Context, Protocol};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// let reactor = twistor::reactor::Reactor::new().unwrap();
    /// let _f = twistor::tls::TlsFactory::start_tls_capable(for_protocol(|| P)).with_reactor(&reactor);
    /// ```
    pub fn with_reactor(mut self, reactor: &Reactor) -> Self {
        self.reactor = Some(reactor.downgrade());
        self
    }

    /// The wrapped factory.
    ///
    /// ```
    /// # use twistor::protocol::{for_protocol, Context, Protocol};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// let f = twistor::tls::TlsFactory::start_tls_capable(for_protocol(|| P));
    /// let _inner = f.wrapped_factory();
    /// ```
    #[doc(alias = "wrappedFactory")]
    pub fn wrapped_factory(&self) -> &Rc<F> {
        &self.factory
    }
}

impl<F: Factory> Factory for TlsFactory<F> {
    type Protocol = TlsProtocol;

    fn build_protocol(&self, addr: &Address) -> Option<TlsProtocol> {
        let inner = self.factory.build_protocol(addr)?;
        let factory: Rc<dyn Any> = self.factory.clone();
        let protocol = match &self.config {
            None => TlsProtocol::plain_with_factory(inner, Some(factory)),
            Some(config) => match TlsProtocol::with_config(inner, config, Some(factory)) {
                Ok((p, _)) => p,
                Err(e) => {
                    crate::report_error!(
                        target: "twistor::tls",
                        "cannot start TLS for a connection with {addr}: {e}"
                    );
                    return None;
                }
            },
        };
        protocol.set_reactor(self.reactor.clone());
        Some(protocol)
    }

    fn start_factory(&self) {
        self.factory.start_factory()
    }

    fn stop_factory(&self) {
        self.factory.stop_factory()
    }
}

impl<F: ClientFactory> ClientFactory for TlsFactory<F> {
    fn started_connecting(&self, connector: &Rc<dyn Connector>) {
        self.factory.started_connecting(connector)
    }
    fn client_connection_failed(&self, connector: &Rc<dyn Connector>, reason: Failure) {
        self.factory.client_connection_failed(connector, reason)
    }
    fn client_connection_lost(&self, connector: &Rc<dyn Connector>, reason: Failure) {
        self.factory.client_connection_lost(connector, reason)
    }
}
