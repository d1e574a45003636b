//! TCP (Twisted's `IReactorTCP`, `tcp.py`): binding and name resolution, the TCP connector,
//! the TCP socket options, and `listen_tcp` / `connect_tcp` / `connect_protocol`.
//!
//! The connection itself is the shared `stream` core over a TCP socket, and
//! the accept loop the shared [`listener`](super::listener) core; this module only adds what
//! is TCP's own. Every call has a short form with Twisted's defaults and a `_with` form taking
//! an options struct (`..Default::default()` for the rest):
//!
//! ```
//! use twistor::prelude::*;
//! use twistor::transport::tcp::{listen_tcp_with, ListenOptions};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) { cx.transport().write(data) }
//! }
//! let reactor = Reactor::new().unwrap();
//! let options = ListenOptions { interface: "localhost".into(), backlog: 128, ..Default::default() };
//! let port = listen_tcp_with(&reactor, 0, for_protocol(|| Echo), options).unwrap();
//! assert!(port.get_host().socket_addr().unwrap().ip().is_loopback());
//! ```

use std::io::{self, IoSlice, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, ToSocketAddrs};
use std::rc::{Rc, Weak};
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};

use super::Address;
use super::base_connector::{
    BaseConnector, ClientOps, Dial, FactoryOps, connect_one, connector_newtype,
};
use super::connector::Connector;
use super::factory::{AnyClientFactory, AnyFactory, counted};
use super::listener::{Listener, Port};
use super::stream::{StreamConnection, StreamSocket};
use crate::error::{CannotListenError, DnsLookupError, InvalidTimeoutError, connect_error_from_io};
use crate::protocol::{ClientFactory, Factory, Handle, Protocol};
use crate::reactor::{Reactor, WeakReactor};
use crate::{Deferred, Failure};

pub use super::buffer::{DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER};
pub use super::listener::ListeningPort;
use super::tcp_ext::SocketAccess;
pub use super::tcp_ext::TcpExt;

// ---- the socket ------------------------------------------------------------------------------

impl StreamSocket for TcpStream {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        Read::read(&mut &*self, buf)
    }
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // One buffer (the common case: small writes are coalesced) takes a plain `send`.
        match bufs {
            [one] => Write::write(&mut &*self, one),
            _ => Write::write_vectored(&mut &*self, bufs),
        }
    }
    fn write_vectored_more(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        socket2::SockRef::from(self)
            .send_vectored_with_flags(bufs, libc::MSG_MORE | libc::MSG_NOSIGNAL)
    }
    fn push_held(&self) {
        // Clearing TCP_CORK (set or not) pushes what the socket holds back.
        let _ = socket2::SockRef::from(self).set_tcp_cork(false);
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
    fn reset_on_close(&self) {
        // SO_LINGER 0: the close sends a reset.
        let _ = socket2::SockRef::from(self).set_linger(Some(Duration::ZERO));
    }
    fn tcp_ext(conn: &Weak<StreamConnection<Self>>) -> Option<TcpExt> {
        let conn: Weak<dyn SocketAccess> = conn.clone();
        Some(TcpExt::new(conn))
    }
}

// ---- listening -------------------------------------------------------------------------------

impl Listener for TcpListener {
    type Stream = TcpStream;
    fn accept(&self) -> io::Result<(TcpStream, Address)> {
        TcpListener::accept(self).map(|(s, a)| (s, Address::Tcp(a)))
    }
    fn connection_host(&self, stream: &TcpStream, listening: &Address) -> Address {
        // The listener's address is the connection's, unless it listens on all interfaces:
        // only then is a `getsockname` call needed.
        match listening {
            Address::Tcp(a) if a.ip().is_unspecified() => {
                Address::Tcp(stream.local_addr().unwrap_or(*a))
            }
            other => other.clone(),
        }
    }
}

/// How to listen: [`listen_tcp_with`]'s options (Twisted's `listenTCP` arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenOptions {
    /// The queue of connections not yet accepted (Twisted's default: 50).
    pub backlog: u32,
    /// The interface: an IP address, a host name (resolved at once; its first address), or
    /// `""` for every IPv4 interface (Twisted's default).
    pub interface: String,
    /// `SO_REUSEPORT`, so that several sockets can listen on the same port (one per thread).
    pub reuse_port: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 50,
            interface: String::new(),
            reuse_port: false,
        }
    }
}

impl ListenOptions {
    /// The defaults, on `interface` (an IP address or a host name).
    ///
    /// ```
    /// use twistor::transport::tcp::ListenOptions;
    /// let o = ListenOptions { backlog: 128, ..ListenOptions::on("localhost") };
    /// assert_eq!(o.interface, "localhost");
    /// ```
    pub fn on(interface: impl Into<String>) -> Self {
        ListenOptions {
            interface: interface.into(),
            ..Default::default()
        }
    }
}

/// A factory argument: the factory itself or an `Rc` of it (keep the `Rc` to share one
/// factory, and its start/stop count, between several ports or connectors).
///
/// ```
/// use std::rc::Rc;
/// use twistor::prelude::*;
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let reactor = Reactor::new().unwrap();
/// // By value: the port owns it.
/// listen_tcp(&reactor, 0, for_protocol(|| Quiet)).unwrap();
/// // By `Rc`: two ports share one factory, started once.
/// let shared = Rc::new(for_protocol(|| Quiet));
/// listen_tcp(&reactor, 0, shared.clone()).unwrap();
/// listen_tcp(&reactor, 0, shared).unwrap();
/// ```
pub trait IntoFactory {
    /// The factory type.
    type Factory: 'static;
    /// The shared factory.
    fn into_factory(self) -> Rc<Self::Factory>;
}

impl<F: Factory> IntoFactory for F {
    type Factory = F;
    fn into_factory(self) -> Rc<F> {
        Rc::new(self)
    }
}

impl<F: Factory> IntoFactory for Rc<F> {
    type Factory = F;
    fn into_factory(self) -> Rc<F> {
        self
    }
}

/// Listens on `port` of every IPv4 interface (port 0: any free port), serving each connection
/// with a protocol from `factory` (Twisted's `listenTCP` with its defaults; see
/// [`listen_tcp_with`] for the options).
///
/// ```
/// use twistor::prelude::*;
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) { cx.transport().write(data) }
/// }
/// let reactor = Reactor::new().unwrap();
/// let port = listen_tcp(&reactor, 0, for_protocol(|| Echo)).unwrap();
/// assert_ne!(port.port(), 0);
/// ```
#[doc(alias = "listenTCP")]
pub fn listen_tcp<A>(
    reactor: &Reactor,
    port: u16,
    factory: A,
) -> Result<ListeningPort, CannotListenError>
where
    A: IntoFactory,
    A::Factory: Factory,
{
    listen_tcp_with(reactor, port, factory, ListenOptions::default())
}

/// [`listen_tcp`] with options (backlog, interface, ...).
///
/// ```
/// use twistor::prelude::*;
/// use twistor::transport::tcp::{listen_tcp_with, ListenOptions};
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let reactor = Reactor::new().unwrap();
/// let opts = ListenOptions { interface: "127.0.0.1".into(), ..Default::default() };
/// let port = listen_tcp_with(&reactor, 0, for_protocol(|| Quiet), opts).unwrap();
/// assert_eq!(port.get_host().socket_addr().unwrap().ip().to_string(), "127.0.0.1");
/// ```
#[doc(alias = "listenTCP")]
pub fn listen_tcp_with<A>(
    reactor: &Reactor,
    port: u16,
    factory: A,
    options: ListenOptions,
) -> Result<ListeningPort, CannotListenError>
where
    A: IntoFactory,
    A::Factory: Factory,
{
    let listener = bind_listener(port, &options)?;
    listen_on(reactor, listener, counted(factory.into_factory())).map_err(|source| {
        CannotListenError {
            interface: options.interface.clone(),
            port,
            source,
        }
    })
}

/// The address to bind for `interface`: an IP address, a name (resolved now), or all IPv4
/// interfaces.
fn interface_ip(interface: &str) -> io::Result<IpAddr> {
    if interface.is_empty() {
        return Ok(IpAddr::from([0, 0, 0, 0]));
    }
    if let Ok(ip) = interface.parse() {
        return Ok(ip);
    }
    let addrs: Vec<SocketAddr> = (interface, 0).to_socket_addrs()?.collect();
    // Twisted's default family is IPv4: prefer it.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(|a| a.ip())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{interface:?} has no address"),
            )
        })
}

/// Binds a non-blocking listening socket (`SO_REUSEADDR`, and `SO_REUSEPORT` if asked).
pub(crate) fn bind_listener(
    port: u16,
    options: &ListenOptions,
) -> Result<std::net::TcpListener, CannotListenError> {
    let cannot = |source: io::Error| CannotListenError {
        interface: options.interface.clone(),
        port,
        source,
    };
    let addr = SocketAddr::new(interface_ip(&options.interface).map_err(cannot)?, port);
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
        .map_err(cannot)?;
    socket.set_reuse_address(true).map_err(cannot)?;
    if options.reuse_port {
        socket.set_reuse_port(true).map_err(cannot)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(cannot)?;
    }
    socket.set_nonblocking(true).map_err(cannot)?;
    socket.bind(&addr.into()).map_err(cannot)?;
    socket
        .listen(options.backlog.min(i32::MAX as u32) as i32)
        .map_err(cannot)?;
    Ok(socket.into())
}

/// Serves connections accepted on an already bound, non-blocking `listener`.
pub(crate) fn listen_on(
    reactor: &Reactor,
    listener: std::net::TcpListener,
    factory: Rc<dyn AnyFactory>,
) -> io::Result<ListeningPort> {
    let host = Address::Tcp(listener.local_addr()?);
    Port::start(reactor, TcpListener::from_std(listener), host, factory)
}

// ---- connecting ------------------------------------------------------------------------------

/// How to connect: [`connect_tcp_with`]'s and [`connect_protocol_with`]'s options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Give up after this long (Twisted's default: 30 s); `None` waits for the kernel's own
    /// timeout. From seconds: [`ConnectOptions::timeout_secs`].
    pub timeout: Option<Duration>,
    /// Bind the local end to this address first.
    pub bind_address: Option<SocketAddr>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            timeout: Some(Duration::from_secs(30)),
            bind_address: None,
        }
    }
}

impl ConnectOptions {
    /// These options with a timeout of `secs` seconds; NaN, negative and infinite values are
    /// refused with a clear error rather than taken to mean "no timeout".
    ///
    /// ```
    /// use twistor::transport::tcp::ConnectOptions;
    /// assert!(ConnectOptions::default().timeout_secs(2.5).is_ok());
    /// let e = ConnectOptions::default().timeout_secs(f64::NAN).unwrap_err();
    /// assert!(e.to_string().contains("NaN"));
    /// assert!(ConnectOptions::default().timeout_secs(-1.0).is_err());
    /// ```
    pub fn timeout_secs(mut self, secs: f64) -> Result<Self, InvalidTimeoutError> {
        self.timeout = Some(timeout_from_secs(secs)?);
        Ok(self)
    }
}

/// Seconds to a [`Duration`], refusing NaN, negatives and infinity.
pub(crate) fn timeout_from_secs(secs: f64) -> Result<Duration, InvalidTimeoutError> {
    if secs.is_nan() || secs.is_infinite() || secs < 0.0 {
        return Err(InvalidTimeoutError(secs));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| InvalidTimeoutError(secs))
}

/// How a TCP connector dials: the host as given (a name is resolved on a pool thread, off
/// the loop; Twisted's `connectTCP` takes its first IPv4 address), the port, a local address
/// to bind.
pub(crate) struct TcpDial {
    host: String,
    port: u16,
    bind: Option<SocketAddr>,
}

impl TcpDial {
    fn connect_to(
        &self,
        connector: &BaseConnector<TcpDial>,
        reactor: &Reactor,
        id: u64,
        addr: SocketAddr,
    ) {
        if !connector.is_current(id) {
            return;
        }
        let stream = (|| -> io::Result<TcpStream> {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            socket.set_nonblocking(true)?;
            if let Some(b) = self.bind {
                socket.bind(&b.into())?;
            }
            match socket.connect(&addr.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => return Err(e),
            }
            Ok(TcpStream::from_std(socket.into()))
        })();
        match stream {
            Ok(s) => connector.attempt_started(reactor, id, s),
            Err(e) => connector.fail_attempt(id, connect_error_from_io(e)),
        }
    }
}

impl Dial for TcpDial {
    type Socket = TcpStream;

    fn dial(&self, connector: &BaseConnector<Self>, reactor: &Reactor, id: u64) {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return self.connect_to(connector, reactor, id, SocketAddr::new(ip, self.port));
        }
        let name = format!("{}:{}", self.host, self.port);
        let me = connector.clone();
        let r = reactor.clone();
        let _ = reactor
            .defer_to_thread_try(move || {
                let addrs: Vec<SocketAddr> = name.to_socket_addrs()?.collect();
                addrs
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or(addrs.first())
                    .copied()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
            })
            .add_both(move |resolved| {
                match resolved {
                    Ok(addr) => me.dial().connect_to(&me, &r, id, addr),
                    Err(f) => me.fail_attempt(
                        id,
                        Failure::new(DnsLookupError(format!(
                            "{}: {}",
                            me.dial().host,
                            f.error_message()
                        ))),
                    ),
                }
                Ok(())
            });
    }

    fn check(s: &TcpStream) -> io::Result<bool> {
        match s.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match s.peer_addr() {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
                Err(e) => Err(e),
            },
        }
    }

    fn addresses(s: &TcpStream) -> io::Result<(Address, Address)> {
        Ok((Address::Tcp(s.local_addr()?), Address::Tcp(s.peer_addr()?)))
    }

    fn destination(&self) -> Address {
        match self.host.parse::<IpAddr>() {
            Ok(ip) => Address::Tcp(SocketAddr::new(ip, self.port)),
            Err(_) => Address::Name {
                host: self.host.clone(),
                port: self.port,
            },
        }
    }
}

/// A TCP connection attempt and its result (Twisted's `tcp.Connector`); the
/// [`Connector`] trait has its methods. Cheap to clone.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::transport::connector::ConnectorState;
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let reactor = Reactor::new().unwrap();
/// let c = connect_tcp(&reactor, "127.0.0.1", 9, for_protocol(|| Quiet));
/// c.disconnect(); // stops the attempt, if it has not failed already
/// assert_eq!(c.state(), ConnectorState::Disconnected);
/// assert_eq!(c.destination(), ("127.0.0.1".to_string(), 9));
/// ```
#[derive(Clone)]
pub struct TcpConnector(BaseConnector<TcpDial>);

connector_newtype!(TcpConnector);

impl TcpConnector {
    fn unstarted(
        reactor: WeakReactor,
        host: &str,
        port: u16,
        ops: Box<dyn ClientOps>,
        options: ConnectOptions,
    ) -> TcpConnector {
        let dial = TcpDial {
            host: host.to_string(),
            port,
            bind: options.bind_address,
        };
        TcpConnector(BaseConnector::new(reactor, dial, options.timeout, ops))
    }

    /// A connector that is recorded, not run (`MemoryReactor`): it never connects.
    pub(crate) fn recorded(
        host: &str,
        port: u16,
        factory: Rc<dyn AnyClientFactory>,
        options: ConnectOptions,
    ) -> TcpConnector {
        TcpConnector::unstarted(
            WeakReactor::none(),
            host,
            port,
            Box::new(FactoryOps(factory)),
            options,
        )
    }

    /// This connector as the trait object factories get.
    pub fn as_dyn(&self) -> Rc<dyn Connector> {
        Rc::new(self.0.clone())
    }

    /// Where it connects to: the host as given and the port.
    pub fn destination(&self) -> (String, u16) {
        let d = self.0.dial();
        (d.host.clone(), d.port)
    }
}

/// Connects to `host:port` (a name is resolved on a pool thread, off the loop), building the
/// protocol with `factory` (Twisted's `connectTCP` with its defaults: a 30 s timeout; see
/// [`connect_tcp_with`] for the options).
///
/// ```
/// use twistor::prelude::*;
///
/// struct Hello;
/// impl Protocol for Hello {
///     fn connection_made(&mut self, cx: &Context<Self>) { cx.transport().lose_connection() }
///     fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
/// }
/// struct Bye(Reactor);
/// impl Protocol for Bye {
///     fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
///     fn connection_lost(&mut self, _cx: &Context<Self>, _reason: Failure) { let _ = self.0.stop(); }
/// }
/// let reactor = Reactor::new().unwrap();
/// let port = listen_tcp(&reactor, 0, for_protocol(|| Hello)).unwrap();
/// let r = reactor.clone();
/// connect_tcp(&reactor, "127.0.0.1", port.port(), for_protocol(move || Bye(r.clone())));
/// reactor.run_without_signal_handlers().unwrap();
/// ```
#[doc(alias = "connectTCP")]
pub fn connect_tcp<A>(reactor: &Reactor, host: &str, port: u16, factory: A) -> TcpConnector
where
    A: IntoFactory,
    A::Factory: ClientFactory,
{
    connect_tcp_with(reactor, host, port, factory, ConnectOptions::default())
}

/// [`connect_tcp`] with options (timeout, bind address).
///
/// ```
/// use std::time::Duration;
/// use twistor::prelude::*;
/// use twistor::transport::tcp::{connect_tcp_with, ConnectOptions};
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let reactor = Reactor::new().unwrap();
/// let opts = ConnectOptions { timeout: Some(Duration::from_secs(5)), ..Default::default() };
/// let c = connect_tcp_with(&reactor, "127.0.0.1", 9, for_protocol(|| Quiet), opts);
/// c.disconnect();
/// ```
#[doc(alias = "connectTCP")]
pub fn connect_tcp_with<A>(
    reactor: &Reactor,
    host: &str,
    port: u16,
    factory: A,
    options: ConnectOptions,
) -> TcpConnector
where
    A: IntoFactory,
    A::Factory: ClientFactory,
{
    let ops = Box::new(FactoryOps(counted(factory.into_factory())));
    let c = TcpConnector::unstarted(reactor.downgrade(), host, port, ops, options);
    c.connect();
    c
}

// ---- connect_protocol ------------------------------------------------------------------------

/// Connects `protocol` to `host:port` and fires with its [`Handle`] once connected (Twisted's
/// `ClientCreator.connectTCP` / `connectProtocol`, with a 30 s timeout; see
/// [`connect_protocol_with`]). Cancelling the Deferred stops the attempt.
///
/// ```
/// use twistor::prelude::*;
///
/// struct Quiet;
/// impl Protocol for Quiet {
///     fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
/// }
/// let reactor = Reactor::new().unwrap();
/// let port = listen_tcp(&reactor, 0, for_protocol(|| Quiet)).unwrap();
/// let r = reactor.clone();
/// let d = connect_protocol(&reactor, "127.0.0.1", port.port(), Quiet)
///     .add_callback(move |handle| {
///         handle.with(|_p, cx| cx.transport().lose_connection());
///         let _ = r.stop();
///     });
/// reactor.run_without_signal_handlers().unwrap();
/// twistor::testing::success_result_of(&d);
/// ```
#[doc(alias = "connectProtocol")]
pub fn connect_protocol<P: Protocol>(
    reactor: &Reactor,
    host: &str,
    port: u16,
    protocol: P,
) -> Deferred<Handle<P>> {
    connect_protocol_with(reactor, host, port, protocol, ConnectOptions::default())
}

/// [`connect_protocol`] with options (timeout, bind address).
///
/// ```
/// use twistor::prelude::*;
/// use twistor::transport::tcp::{connect_protocol_with, ConnectOptions};
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let reactor = Reactor::new().unwrap();
/// let opts = ConnectOptions::default().timeout_secs(5.0).unwrap();
/// let d = connect_protocol_with(&reactor, "127.0.0.1", 9, Quiet, opts);
/// d.cancel();
/// ```
#[doc(alias = "connectProtocol")]
pub fn connect_protocol_with<P: Protocol>(
    reactor: &Reactor,
    host: &str,
    port: u16,
    protocol: P,
    options: ConnectOptions,
) -> Deferred<Handle<P>> {
    let reactor = reactor.downgrade();
    connect_one(protocol, |ops| {
        TcpConnector::unstarted(reactor, host, port, ops, options).0
    })
}

// ---- the reactor interface -------------------------------------------------------------------

/// What opens TCP ports and connections: the [`Reactor`], or a
/// [`MemoryReactor`](crate::testing::MemoryReactor) that records the calls. Code that takes
/// `&impl ReactorTcp` can be tested without sockets (Twisted's `IReactorTCP`). The methods
/// have the free functions' names and forms: a short one with Twisted's defaults, a `_with`
/// one with options.
#[doc(alias = "IReactorTCP")]
pub trait ReactorTcp {
    /// As [`listen_tcp_with`].
    #[doc(alias = "listenTCP")]
    fn listen_tcp_with<A>(
        &self,
        port: u16,
        factory: A,
        options: ListenOptions,
    ) -> Result<ListeningPort, CannotListenError>
    where
        A: IntoFactory,
        A::Factory: Factory;

    /// As [`connect_tcp_with`].
    #[doc(alias = "connectTCP")]
    fn connect_tcp_with<A>(
        &self,
        host: &str,
        port: u16,
        factory: A,
        options: ConnectOptions,
    ) -> TcpConnector
    where
        A: IntoFactory,
        A::Factory: ClientFactory;

    /// As [`listen_tcp`].
    #[doc(alias = "listenTCP")]
    fn listen_tcp<A>(&self, port: u16, factory: A) -> Result<ListeningPort, CannotListenError>
    where
        A: IntoFactory,
        A::Factory: Factory,
    {
        self.listen_tcp_with(port, factory, ListenOptions::default())
    }

    /// As [`connect_tcp`].
    #[doc(alias = "connectTCP")]
    fn connect_tcp<A>(&self, host: &str, port: u16, factory: A) -> TcpConnector
    where
        A: IntoFactory,
        A::Factory: ClientFactory,
    {
        self.connect_tcp_with(host, port, factory, ConnectOptions::default())
    }
}

impl ReactorTcp for Reactor {
    fn listen_tcp_with<A>(
        &self,
        port: u16,
        factory: A,
        options: ListenOptions,
    ) -> Result<ListeningPort, CannotListenError>
    where
        A: IntoFactory,
        A::Factory: Factory,
    {
        listen_tcp_with(self, port, factory, options)
    }

    fn connect_tcp_with<A>(
        &self,
        host: &str,
        port: u16,
        factory: A,
        options: ConnectOptions,
    ) -> TcpConnector
    where
        A: IntoFactory,
        A::Factory: ClientFactory,
    {
        connect_tcp_with(self, host, port, factory, options)
    }
}

/// A shared reactor is a reactor (tests hold an `Rc<MemoryReactor>` where a callback needs
/// to keep one).
impl<T: ReactorTcp> ReactorTcp for Rc<T> {
    fn listen_tcp_with<A>(
        &self,
        port: u16,
        factory: A,
        options: ListenOptions,
    ) -> Result<ListeningPort, CannotListenError>
    where
        A: IntoFactory,
        A::Factory: Factory,
    {
        (**self).listen_tcp_with(port, factory, options)
    }

    fn connect_tcp_with<A>(
        &self,
        host: &str,
        port: u16,
        factory: A,
        options: ConnectOptions,
    ) -> TcpConnector
    where
        A: IntoFactory,
        A::Factory: ClientFactory,
    {
        (**self).connect_tcp_with(host, port, factory, options)
    }
}
