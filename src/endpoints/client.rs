//! Client endpoints (Twisted's `IStreamClientEndpoint`): where to connect, kept apart from
//! what to connect, so the same code connects over TCP, UNIX or TLS.
//!
//! `connect` fires with the protocol's [`Handle`] once its `connection_made` has run, or
//! fails with why the attempt failed. Cancelling the Deferred before then stops the attempt
//! and fails it with [`ConnectingCancelledError`].

use std::any::Any;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use super::error::{ConnectingCancelledError, NoProtocol};
use crate::protocol::{ClientFactory, Context, Factory, Handle, Protocol, ProtocolDriver};
use crate::reactor::ReactorThreads;
use crate::time::ReactorTime;
use crate::transport::connector::Connector;
use crate::transport::tcp::{ConnectOptions, IntoFactory, ReactorTcp};
use crate::transport::unix::{ReactorUnix, UnixConnectOptions};
use crate::transport::{Address, Transport};
use crate::{Deferred, Failure, Resolver};

/// What endpoints connect and listen with: the [`Reactor`](crate::reactor::Reactor), or a
/// shared [`MemoryReactor`](crate::testing::MemoryReactor) (`Rc<MemoryReactor>`) in tests.
/// Cloning must be cheap: a pending attempt keeps the reactor to start the next one.
///
/// ```
/// use std::rc::Rc;
/// use twistor::endpoints::EndpointReactor;
/// use twistor::reactor::Reactor;
/// use twistor::testing::MemoryReactor;
///
/// fn takes<R: EndpointReactor>(_: &R) {}
/// takes(&Reactor::new().unwrap());
/// takes(&Rc::new(MemoryReactor::new()));
/// ```
pub trait EndpointReactor:
    ReactorTcp + ReactorUnix + ReactorTime + ReactorThreads + Clone + 'static
{
}

impl<R> EndpointReactor for R where
    R: ReactorTcp + ReactorUnix + ReactorTime + ReactorThreads + Clone + 'static
{
}

/// The protocol a client endpoint's factory builds: what its handle points to.
///
/// ```
/// use twistor::endpoints::ProtocolOf;
/// use twistor::protocol::FactoryFn;
/// use twistor::prelude::*;
///
/// struct P;
/// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// fn same<T>(_: Option<T>, _: Option<T>) {}
/// same::<ProtocolOf<FactoryFn<P>>>(None, None::<P>);
/// ```
pub type ProtocolOf<A> = <<A as IntoFactory>::Factory as Factory>::Protocol;

/// Where to connect (Twisted's `IStreamClientEndpoint`).
///
/// ```
/// use twistor::endpoints::{ClientEndpoint, Tcp4ClientEndpoint};
/// use twistor::prelude::*;
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let reactor = Reactor::new().unwrap();
/// let port = listen_tcp(&reactor, 0, for_protocol(|| Quiet)).unwrap();
/// let endpoint = Tcp4ClientEndpoint::new("127.0.0.1", port.port());
/// let d = endpoint.connect(&reactor, for_protocol(|| Quiet));
/// while !d.has_result() {
///     reactor.iterate(std::time::Duration::from_millis(10)).unwrap();
/// }
/// let handle = twistor::testing::success_result_of(&d);
/// assert!(handle.alive());
/// ```
#[doc(alias = "IStreamClientEndpoint")]
pub trait ClientEndpoint {
    /// Connects, building the protocol with `factory`; fires with its handle after its
    /// `connection_made`.
    fn connect<R, A>(&self, reactor: &R, factory: A) -> Deferred<Handle<ProtocolOf<A>>>
    where
        R: EndpointReactor,
        A: IntoFactory,
        A::Factory: Factory;
}

// ---- the wrapping factory and protocol -------------------------------------------------------

struct Attempt<P> {
    result: Resolver<Handle<P>>,
    connector: RefCell<Option<Rc<dyn Connector>>>,
}

/// The factory a client endpoint hands the reactor (Twisted's `_WrappingFactory`): it
/// builds the user's protocol, fires the endpoint's Deferred once that protocol is
/// connected, and fails it when the attempt fails. Tests holding a
/// [`MemoryReactor`](crate::testing::MemoryReactor) find it in the recorded call and play
/// the connection through it.
///
/// ```
/// use std::rc::Rc;
/// use twistor::endpoints::{ClientEndpoint, ConnectingFactory, Tcp4ClientEndpoint};
/// use twistor::prelude::*;
/// use twistor::protocol::FactoryFn;
/// use twistor::testing::{MemoryReactor, StringTransport, assert_no_result, success_result_of};
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let mr = Rc::new(MemoryReactor::new());
/// let d = Tcp4ClientEndpoint::new("10.0.0.1", 80).connect(&mr, for_protocol(|| Quiet));
/// assert_no_result(&d);
/// let call = &mr.tcp_clients()[0];
/// let factory = call.factory::<ConnectingFactory<FactoryFn<Quiet>>>().unwrap();
/// let protocol = factory.build_protocol(&Address::Memory("peer".into())).unwrap();
/// let transport = StringTransport::new();
/// transport.connect(protocol); // its `connection_made` fires `d`
/// let handle = success_result_of(&d);
/// assert!(handle.alive());
/// handle.with(|_p, cx| cx.transport().write(b"hi"));
/// assert_eq!(transport.value(), b"hi");
/// ```
pub struct ConnectingFactory<F: Factory> {
    factory: Rc<F>,
    attempt: Rc<Attempt<F::Protocol>>,
}

impl<F: Factory> ConnectingFactory<F> {
    /// Whether the endpoint's Deferred has its result (connected, failed or cancelled).
    ///
    /// ```
    /// use std::rc::Rc;
    /// use twistor::endpoints::{ClientEndpoint, ConnectingFactory, Tcp4ClientEndpoint};
    /// use twistor::prelude::*;
    /// use twistor::protocol::FactoryFn;
    /// use twistor::testing::MemoryReactor;
    ///
    /// struct Quiet;
    /// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// let mr = Rc::new(MemoryReactor::new());
    /// let d = Tcp4ClientEndpoint::new("10.0.0.1", 80).connect(&mr, for_protocol(|| Quiet));
    /// let factory = mr.tcp_clients()[0].factory::<ConnectingFactory<FactoryFn<Quiet>>>().unwrap();
    /// assert!(!factory.finished());
    /// d.cancel();
    /// assert!(factory.finished());
    /// # let _ = twistor::testing::failure_result_of(&d);
    /// ```
    pub fn finished(&self) -> bool {
        self.attempt.result.called()
    }
}

impl<F: Factory> Factory for ConnectingFactory<F> {
    type Protocol = ConnectingProtocol;

    fn build_protocol(&self, addr: &Address) -> Option<ConnectingProtocol> {
        if self.attempt.result.called() {
            return None; // cancelled meanwhile: drop the connection
        }
        let Some(protocol) = self.factory.build_protocol(addr) else {
            let _ = self.attempt.result.errback(NoProtocol);
            self.attempt.connector.borrow_mut().take();
            return None;
        };
        let attempt = self.attempt.clone();
        let factory: Rc<dyn Any> = self.factory.clone();
        Some(ConnectingProtocol {
            start: Some(Box::new(move |transport| {
                let (driver, handle) =
                    crate::protocol::attach_with_factory(protocol, transport, Some(factory));
                driver.make_connection();
                // After `connection_made`, as Twisted's endpoints fire.
                let _ = attempt.result.callback(handle);
                attempt.connector.borrow_mut().take();
                driver
            })),
            driver: None,
        })
    }
}

impl<F: Factory> ClientFactory for ConnectingFactory<F> {
    fn started_connecting(&self, connector: &Rc<dyn Connector>) {
        *self.attempt.connector.borrow_mut() = Some(connector.clone());
    }
    fn client_connection_failed(&self, _connector: &Rc<dyn Connector>, reason: Failure) {
        // Ignored once cancelled: the canceller already failed the Deferred.
        let _ = self.attempt.result.errback(reason);
        // The connector holds this factory: let go of it, or the two keep each other.
        self.attempt.connector.borrow_mut().take();
    }
    fn client_connection_lost(&self, _connector: &Rc<dyn Connector>, _reason: Failure) {
        self.attempt.connector.borrow_mut().take();
    }
}

type Start = Box<dyn FnOnce(Transport) -> Rc<dyn ProtocolDriver>>;

/// The protocol a [`ConnectingFactory`] builds: it connects the user's protocol to the
/// same transport and forwards every event to it (Twisted's `_WrappingProtocol`).
///
/// ```
/// // Built by a ConnectingFactory; see its example.
/// fn is_protocol<P: twistor::protocol::Protocol>() {}
/// is_protocol::<twistor::endpoints::ConnectingProtocol>();
/// ```
pub struct ConnectingProtocol {
    start: Option<Start>,
    driver: Option<Rc<dyn ProtocolDriver>>,
}

impl Protocol for ConnectingProtocol {
    fn connection_made(&mut self, cx: &Context<Self>) {
        if let Some(start) = self.start.take() {
            self.driver = Some(start(cx.transport().clone()));
        }
    }
    fn data_received(&mut self, _cx: &Context<Self>, data: &[u8]) {
        if let Some(d) = &self.driver {
            d.data_received(data);
        }
    }
    fn connection_lost(&mut self, _cx: &Context<Self>, reason: Failure) {
        if let Some(d) = self.driver.take() {
            d.connection_lost(reason);
        }
    }
    fn read_connection_lost(&mut self, _cx: &Context<Self>) {
        if let Some(d) = &self.driver {
            d.read_connection_lost();
        }
    }
    fn write_connection_lost(&mut self, _cx: &Context<Self>) {
        if let Some(d) = &self.driver {
            d.write_connection_lost();
        }
    }
    fn file_descriptor_received(&mut self, _cx: &Context<Self>, fd: std::os::fd::OwnedFd) {
        if let Some(d) = &self.driver {
            d.file_descriptor_received(fd);
        }
    }
}

/// Starts one attempt: `start` hands the wrapping factory to the reactor and returns its
/// connector. The Deferred's canceller fails it with [`ConnectingCancelledError`] for
/// `address`, then stops the connector.
pub(crate) fn connect_with<F, C>(
    factory: Rc<F>,
    address: Address,
    start: impl FnOnce(ConnectingFactory<F>) -> C,
) -> Deferred<Handle<F::Protocol>>
where
    F: Factory,
    C: Connector + 'static,
{
    // Weak: the Deferred holds its canceller, and the attempt holds the Deferred's resolver.
    let slot: Rc<RefCell<Weak<Attempt<F::Protocol>>>> = Rc::new(RefCell::new(Weak::new()));
    let in_canceller = slot.clone();
    let (d, result) = Deferred::with_canceller(move |r: &Resolver<Handle<F::Protocol>>| {
        let _ = r.errback(ConnectingCancelledError { address });
        let attempt = in_canceller.borrow().upgrade();
        let connector = attempt.and_then(|a| a.connector.borrow_mut().take());
        if let Some(c) = connector {
            let _ = c.stop_connecting();
        }
    });
    let attempt = Rc::new(Attempt {
        result,
        connector: RefCell::new(None),
    });
    *slot.borrow_mut() = Rc::downgrade(&attempt);
    let connector = start(ConnectingFactory {
        factory,
        attempt: attempt.clone(),
    });
    // A recorded connector (MemoryReactor) never reports `started_connecting`.
    if attempt.connector.borrow().is_none() && !attempt.result.called() {
        let c: Rc<dyn Connector> = Rc::new(connector);
        *attempt.connector.borrow_mut() = Some(c);
    }
    d
}

// ---- TCP ---------------------------------------------------------------------------------------

/// Connects over TCP to a host (an IP address, or a name resolved off the loop, its first
/// IPv4 address preferred) and port (Twisted's `TCP4ClientEndpoint`; defaults: a 30 s
/// timeout, no bind address).
///
/// ```
/// use twistor::endpoints::Tcp4ClientEndpoint;
/// use twistor::transport::tcp::ConnectOptions;
///
/// let e = Tcp4ClientEndpoint::with_options("example.com", 80, ConnectOptions::default().timeout_secs(5.0).unwrap());
/// assert_eq!(e.host(), "example.com");
/// assert_eq!(e.port(), 80);
/// ```
#[doc(alias = "TCP4ClientEndpoint")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcp4ClientEndpoint {
    host: String,
    port: u16,
    options: ConnectOptions,
}

impl Tcp4ClientEndpoint {
    /// To `host:port`, with Twisted's defaults.
    ///
    /// ```
    /// let e = twistor::endpoints::Tcp4ClientEndpoint::new("127.0.0.1", 8080);
    /// assert_eq!(e.options().timeout, Some(std::time::Duration::from_secs(30)));
    /// ```
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self::with_options(host, port, ConnectOptions::default())
    }

    /// To `host:port`, with `options` (timeout, bind address).
    ///
    /// ```
    /// use twistor::transport::tcp::ConnectOptions;
    /// let e = twistor::endpoints::Tcp4ClientEndpoint::with_options("h", 1, ConnectOptions { timeout: None, ..Default::default() });
    /// assert_eq!(e.options().timeout, None);
    /// ```
    pub fn with_options(host: impl Into<String>, port: u16, options: ConnectOptions) -> Self {
        Tcp4ClientEndpoint {
            host: host.into(),
            port,
            options,
        }
    }

    /// The host.
    ///
    /// ```
    /// assert_eq!(twistor::endpoints::Tcp4ClientEndpoint::new("h", 1).host(), "h");
    /// ```
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    ///
    /// ```
    /// assert_eq!(twistor::endpoints::Tcp4ClientEndpoint::new("h", 1).port(), 1);
    /// ```
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connect options.
    ///
    /// ```
    /// assert_eq!(twistor::endpoints::Tcp4ClientEndpoint::new("h", 1).options().bind_address, None);
    /// ```
    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    fn address(&self) -> Address {
        match self.host.parse() {
            Ok(ip) => Address::Tcp(std::net::SocketAddr::new(ip, self.port)),
            Err(_) => Address::Name {
                host: self.host.clone(),
                port: self.port,
            },
        }
    }
}

impl ClientEndpoint for Tcp4ClientEndpoint {
    fn connect<R, A>(&self, reactor: &R, factory: A) -> Deferred<Handle<ProtocolOf<A>>>
    where
        R: EndpointReactor,
        A: IntoFactory,
        A::Factory: Factory,
    {
        connect_with(factory.into_factory(), self.address(), |f| {
            reactor.connect_tcp_with(&self.host, self.port, f, self.options.clone())
        })
    }
}

// ---- UNIX --------------------------------------------------------------------------------------

/// Connects to a UNIX socket (Twisted's `UNIXClientEndpoint`; defaults: a 30 s timeout, no
/// lock check). A path starting with NUL names an abstract socket.
///
/// ```
/// use twistor::endpoints::UnixClientEndpoint;
/// let e = UnixClientEndpoint::new("/run/app.sock");
/// assert_eq!(e.path(), std::path::Path::new("/run/app.sock"));
/// ```
#[doc(alias = "UNIXClientEndpoint")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixClientEndpoint {
    path: PathBuf,
    options: UnixConnectOptions,
}

impl UnixClientEndpoint {
    /// To `path`, with Twisted's defaults.
    ///
    /// ```
    /// let path = std::env::temp_dir().join("x.sock");
    /// let e = twistor::endpoints::UnixClientEndpoint::new(&path);
    /// assert!(!e.options().check_pid);
    /// ```
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self::with_options(path, UnixConnectOptions::default())
    }

    /// To `path`, with `options` (timeout, lock check).
    ///
    /// ```
    /// use twistor::transport::unix::UnixConnectOptions;
    /// let o = UnixConnectOptions { check_pid: true, ..Default::default() };
    /// let path = std::env::temp_dir().join("x.sock");
    /// assert!(twistor::endpoints::UnixClientEndpoint::with_options(&path, o).options().check_pid);
    /// ```
    pub fn with_options(path: impl AsRef<Path>, options: UnixConnectOptions) -> Self {
        UnixClientEndpoint {
            path: path.as_ref().to_path_buf(),
            options,
        }
    }

    /// The path.
    ///
    /// ```
    /// let path = std::env::temp_dir().join("x.sock");
    /// let e = twistor::endpoints::UnixClientEndpoint::new(&path);
    /// assert_eq!(e.path(), path.as_path());
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connect options.
    ///
    /// ```
    /// let e = twistor::endpoints::UnixClientEndpoint::new("run/x.sock");
    /// assert!(e.options().timeout.is_some());
    /// ```
    pub fn options(&self) -> &UnixConnectOptions {
        &self.options
    }
}

impl ClientEndpoint for UnixClientEndpoint {
    fn connect<R, A>(&self, reactor: &R, factory: A) -> Deferred<Handle<ProtocolOf<A>>>
    where
        R: EndpointReactor,
        A: IntoFactory,
        A::Factory: Factory,
    {
        let address = Address::Unix(Some(self.path.clone()));
        connect_with(factory.into_factory(), address, |f| {
            reactor.connect_unix_with(&self.path, f, self.options.clone())
        })
    }
}

/// Connects `protocol` itself through `endpoint` (Twisted's `connectProtocol`): a one-shot
/// factory hands it out for the first connection. Fires with its handle after its
/// `connection_made`.
///
/// ```
/// use twistor::endpoints::{connect_protocol, Tcp4ClientEndpoint};
/// use twistor::prelude::*;
///
/// struct Greeter { greeted: bool }
/// impl Protocol for Greeter {
///     fn connection_made(&mut self, _cx: &Context<Self>) { self.greeted = true; }
///     fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
/// }
/// let reactor = Reactor::new().unwrap();
/// let port = listen_tcp(&reactor, 0, for_protocol(|| Greeter { greeted: false })).unwrap();
/// let endpoint = Tcp4ClientEndpoint::new("127.0.0.1", port.port());
/// let d = connect_protocol(&endpoint, &reactor, Greeter { greeted: false });
/// while !d.has_result() {
///     reactor.iterate(std::time::Duration::from_millis(10)).unwrap();
/// }
/// let handle = twistor::testing::success_result_of(&d);
/// assert_eq!(handle.with(|p, _| p.greeted), Some(true));
/// ```
#[doc(alias = "connectProtocol")]
pub fn connect_protocol<E, R, P>(endpoint: &E, reactor: &R, protocol: P) -> Deferred<Handle<P>>
where
    E: ClientEndpoint,
    R: EndpointReactor,
    P: Protocol,
{
    let once = RefCell::new(Some(protocol));
    let factory = crate::protocol::FactoryFn::new(move |_addr: &Address| once.borrow_mut().take());
    endpoint.connect(reactor, factory)
}
