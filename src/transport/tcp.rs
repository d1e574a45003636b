//! TCP (Twisted's `IReactorTCP`, `tcp.py`): binding and name resolution, the TCP connector,
//! the TCP socket options, and `listen_tcp` / `connect_tcp` / `connect_protocol`.
//!
//! The connection itself is the shared [`stream`](super::stream) core over a TCP socket, and
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

use std::cell::{Cell, RefCell};
use std::io::{self, IoSlice, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, ToSocketAddrs};
use std::rc::{Rc, Weak};
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};

use super::connector::{Connector, ConnectorState};
use super::factory::{AnyClientFactory, AnyFactory, counted};
use super::listener::{Listener, Port};
use super::stream::{StreamConnection, StreamSocket};
use super::{Address, TransportImpl};
use crate::error::{
    CannotListenError, ConnectTimeoutError, DnsLookupError, InvalidTimeoutError,
    NotConnectingError, UserError, connect_error_from_io,
};
use crate::protocol::{ClientFactory, Factory, Handle, Protocol, ProtocolDriver, attach};
use crate::reactor::sources::SourceHandler;
use crate::reactor::{Reactor, WeakReactor};
use crate::time::DelayedCall;
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

/// What a TCP connector reports to: a factory, or `connect_protocol`'s one protocol.
trait ClientOps {
    fn started(&self, c: &Rc<dyn Connector>);
    /// Builds the protocol on `conn`; `None` if refused.
    fn build(
        &self,
        conn: &Rc<StreamConnection<TcpStream>>,
        addr: &Address,
    ) -> Option<Rc<dyn ProtocolDriver>>;
    /// The built protocol's `connection_made` ran.
    fn running(&self) {}
    fn failed(&self, c: &Rc<dyn Connector>, reason: Failure);
    fn lost(&self, c: &Rc<dyn Connector>, reason: Failure);
    fn do_start(&self);
    fn do_stop(&self);
}

struct FactoryOps(Rc<dyn AnyClientFactory>);

impl ClientOps for FactoryOps {
    fn started(&self, c: &Rc<dyn Connector>) {
        self.0.started(c)
    }
    fn build(
        &self,
        conn: &Rc<StreamConnection<TcpStream>>,
        addr: &Address,
    ) -> Option<Rc<dyn ProtocolDriver>> {
        self.0.build(addr, conn.transport())
    }
    fn failed(&self, c: &Rc<dyn Connector>, reason: Failure) {
        self.0.failed(c, reason)
    }
    fn lost(&self, c: &Rc<dyn Connector>, reason: Failure) {
        self.0.lost(c, reason)
    }
    fn do_start(&self) {
        self.0.do_start()
    }
    fn do_stop(&self) {
        if let Err(f) = self.0.do_stop() {
            log::error!(target: "twistor::tcp", "stop_factory panicked: {f}");
        }
    }
}

struct Attempt {
    stream: Option<TcpStream>,
    token: Option<Token>,
    timeout: Option<DelayedCall>,
    /// Bumped per attempt so a late resolution or event of an old attempt is ignored.
    id: u64,
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
pub struct TcpConnector {
    inner: Rc<ConnectorInner>,
}

struct ConnectorInner {
    reactor: WeakReactor,
    host: String,
    port: u16,
    options: ConnectOptions,
    state: Cell<ConnectorState>,
    factory_started: Cell<bool>,
    attempt: RefCell<Option<Attempt>>,
    next_attempt: Cell<u64>,
    conn: RefCell<Option<Rc<StreamConnection<TcpStream>>>>,
    ops: Box<dyn ClientOps>,
}

impl std::fmt::Debug for TcpConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<TcpConnector {}:{} {:?}>",
            self.inner.host,
            self.inner.port,
            self.inner.state.get()
        )
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

impl TcpConnector {
    /// A disconnected connector; `ops` is what it reports to.
    fn unstarted(
        reactor: WeakReactor,
        host: &str,
        port: u16,
        ops: Box<dyn ClientOps>,
        options: ConnectOptions,
    ) -> TcpConnector {
        TcpConnector {
            inner: Rc::new(ConnectorInner {
                reactor,
                host: host.to_string(),
                port,
                options,
                state: Cell::new(ConnectorState::Disconnected),
                factory_started: Cell::new(false),
                attempt: RefCell::new(None),
                next_attempt: Cell::new(0),
                conn: RefCell::new(None),
                ops,
            }),
        }
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
        Rc::new(self.clone())
    }

    fn current(&self, id: u64) -> bool {
        self.inner.state.get() == ConnectorState::Connecting
            && self
                .inner
                .attempt
                .borrow()
                .as_ref()
                .is_some_and(|a| a.id == id)
    }

    fn start_attempt(&self) {
        let inner = &self.inner;
        if inner.state.get() != ConnectorState::Disconnected {
            return;
        }
        inner.state.set(ConnectorState::Connecting);
        if !inner.factory_started.replace(true) {
            inner.ops.do_start();
        }
        let id = inner.next_attempt.get() + 1;
        inner.next_attempt.set(id);
        *inner.attempt.borrow_mut() = Some(Attempt {
            stream: None,
            token: None,
            timeout: None,
            id,
        });
        inner.ops.started(&self.as_dyn());
        if inner.state.get() != ConnectorState::Connecting {
            return; // stopped from started_connecting
        }
        let Some(reactor) = inner.reactor.upgrade() else {
            return;
        };
        if let Some(t) = inner.options.timeout {
            let me = self.clone();
            let call = reactor.call_later(t.as_secs_f64(), move || {
                me.fail_attempt(
                    id,
                    Failure::new(ConnectTimeoutError(format!(
                        "connecting to {}:{} took longer than {} s",
                        me.inner.host,
                        me.inner.port,
                        t.as_secs_f64()
                    ))),
                );
            });
            if let Some(a) = inner.attempt.borrow_mut().as_mut() {
                a.timeout = Some(call);
            }
        }
        match inner.host.parse::<IpAddr>() {
            Ok(ip) => self.connect_to(&reactor, id, SocketAddr::new(ip, inner.port)),
            Err(_) => {
                let name = format!("{}:{}", inner.host, inner.port);
                let me = self.clone();
                let r = reactor.clone();
                let _ = reactor
                    .defer_to_thread_try(move || {
                        let addrs: Vec<SocketAddr> = name.to_socket_addrs()?.collect();
                        // Twisted's connectTCP uses the first IPv4 address.
                        addrs
                            .iter()
                            .find(|a| a.is_ipv4())
                            .or(addrs.first())
                            .copied()
                            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
                    })
                    .add_both(move |r2| {
                        match r2 {
                            Ok(addr) => me.connect_to(&r, id, addr),
                            Err(f) => me.fail_attempt(
                                id,
                                Failure::new(DnsLookupError(format!(
                                    "{}: {}",
                                    me.inner.host,
                                    f.error_message()
                                ))),
                            ),
                        }
                        Ok(())
                    });
            }
        }
    }

    fn connect_to(&self, reactor: &Reactor, id: u64, addr: SocketAddr) {
        if !self.current(id) {
            return;
        }
        let stream = (|| -> io::Result<TcpStream> {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            socket.set_nonblocking(true)?;
            if let Some(b) = self.inner.options.bind_address {
                socket.bind(&b.into())?;
            }
            match socket.connect(&addr.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => return Err(e),
            }
            Ok(TcpStream::from_std(socket.into()))
        })();
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => return self.fail_attempt(id, connect_error_from_io(e)),
        };
        let handler = Rc::new(AttemptHandler {
            connector: self.clone(),
            id,
        });
        match reactor.register_source(&mut stream, Interest::WRITABLE, handler) {
            Ok(token) => {
                if let Some(a) = self.inner.attempt.borrow_mut().as_mut() {
                    a.stream = Some(stream);
                    a.token = Some(token);
                }
            }
            Err(e) => self.fail_attempt(id, connect_error_from_io(e)),
        }
    }

    /// Ends the current attempt (deregisters, cancels the timeout) and returns its stream.
    fn end_attempt(&self, reactor: Option<&Reactor>) -> Option<TcpStream> {
        let attempt = self.inner.attempt.borrow_mut().take()?;
        if let Some(c) = attempt.timeout {
            let _ = c.cancel();
        }
        let mut stream = attempt.stream;
        if let (Some(r), Some(t), Some(s)) = (reactor, attempt.token, stream.as_mut()) {
            r.deregister_source(t, s);
        }
        stream
    }

    fn fail_attempt(&self, id: u64, reason: Failure) {
        if !self.current(id) {
            return;
        }
        let reactor = self.inner.reactor.upgrade();
        drop(self.end_attempt(reactor.as_ref()));
        self.failed(reason);
    }

    /// The attempt is over and failed: tell the factory (which may reconnect).
    fn failed(&self, reason: Failure) {
        self.inner.state.set(ConnectorState::Disconnected);
        self.inner.ops.failed(&self.as_dyn(), reason);
        self.maybe_stop_factory();
    }

    fn maybe_stop_factory(&self) {
        // Reconnecting from the hook keeps the factory started.
        if self.inner.state.get() == ConnectorState::Disconnected
            && self.inner.factory_started.replace(false)
        {
            self.inner.ops.do_stop();
        }
    }

    fn connected(&self, reactor: &Reactor, id: u64) {
        if !self.current(id) {
            return;
        }
        let Some(stream) = self.end_attempt(Some(reactor)) else {
            return;
        };
        let established = stream.local_addr().and_then(|local| {
            let peer = stream.peer_addr()?;
            let conn =
                StreamConnection::new(reactor, stream, Address::Tcp(local), Address::Tcp(peer))?;
            Ok((conn, peer))
        });
        let (conn, peer) = match established {
            Ok(c) => c,
            Err(e) => return self.failed(connect_error_from_io(e)),
        };
        self.inner.state.set(ConnectorState::Connected);
        // The connection keeps its connector alive (a caller may drop the one it got); the
        // cycle ends when the connection closes and drops this closure.
        let me = self.clone();
        conn.set_on_closed(move |reason| {
            me.inner.conn.borrow_mut().take();
            me.inner.state.set(ConnectorState::Disconnected);
            me.inner.ops.lost(&me.as_dyn(), reason);
            me.maybe_stop_factory();
        });
        *self.inner.conn.borrow_mut() = Some(conn.clone());
        match self.inner.ops.build(&conn, &Address::Tcp(peer)) {
            Some(driver) => {
                conn.start(driver);
                self.inner.ops.running();
            }
            // Refused by the factory: drop the connection.
            None => conn.abort_connection(),
        }
    }

    /// Where it connects to: the host as given and the port.
    pub fn destination(&self) -> (String, u16) {
        (self.inner.host.clone(), self.inner.port)
    }
}

impl Connector for TcpConnector {
    fn connect(&self) {
        self.start_attempt()
    }

    fn stop_connecting(&self) -> Result<(), NotConnectingError> {
        if self.inner.state.get() != ConnectorState::Connecting {
            return Err(NotConnectingError);
        }
        let id = self
            .inner
            .attempt
            .borrow()
            .as_ref()
            .map(|a| a.id)
            .unwrap_or(0);
        self.fail_attempt(id, Failure::new(UserError));
        Ok(())
    }

    fn disconnect(&self) {
        match self.inner.state.get() {
            ConnectorState::Connecting => {
                let _ = self.stop_connecting();
            }
            ConnectorState::Connected => {
                let conn = self.inner.conn.borrow().clone();
                if let Some(c) = conn {
                    c.lose_connection();
                }
            }
            ConnectorState::Disconnected => {}
        }
    }

    fn get_destination(&self) -> Address {
        match self.inner.host.parse::<IpAddr>() {
            Ok(ip) => Address::Tcp(SocketAddr::new(ip, self.inner.port)),
            Err(_) => Address::Name {
                host: self.inner.host.clone(),
                port: self.inner.port,
            },
        }
    }

    fn state(&self) -> ConnectorState {
        self.inner.state.get()
    }
}

struct AttemptHandler {
    connector: TcpConnector,
    id: u64,
}

impl SourceHandler for AttemptHandler {
    fn ready(&self, reactor: &Reactor, _readable: bool, _writable: bool, _read_closed: bool) {
        self.connector.attempt_ready(reactor, self.id)
    }
    fn flush(&self, _reactor: &Reactor) {}
}

impl TcpConnector {
    /// The attempt's socket became writable: connected, failed, or a spurious wake-up.
    fn attempt_ready(&self, reactor: &Reactor, id: u64) {
        if !self.current(id) {
            return;
        }
        let status = {
            let attempt = self.inner.attempt.borrow();
            let Some(s) = attempt.as_ref().and_then(|a| a.stream.as_ref()) else {
                return;
            };
            match s.take_error() {
                Ok(Some(e)) | Err(e) => Err(e),
                Ok(None) => match s.peer_addr() {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
                    Err(e) => Err(e),
                },
            }
        };
        match status {
            Ok(true) => self.connected(reactor, id),
            Ok(false) => {} // spurious wake-up: still connecting
            Err(e) => self.fail_attempt(id, connect_error_from_io(e)),
        }
    }
}

// ---- connect_protocol ------------------------------------------------------------------------

struct OneShot<P: Protocol> {
    protocol: RefCell<Option<P>>,
    handle: RefCell<Option<Handle<P>>>,
    result: Deferred<Handle<P>>,
    /// Set by the canceller: the attempt's failure (a `UserError`) must not fire `result`,
    /// which then fails with `CancelledError`.
    cancelled: Rc<Cell<bool>>,
}

impl<P: Protocol> ClientOps for OneShot<P> {
    fn started(&self, _c: &Rc<dyn Connector>) {}
    fn build(
        &self,
        conn: &Rc<StreamConnection<TcpStream>>,
        _addr: &Address,
    ) -> Option<Rc<dyn ProtocolDriver>> {
        let p = self.protocol.borrow_mut().take()?;
        let (driver, handle) = attach(p, conn.transport());
        *self.handle.borrow_mut() = Some(handle);
        Some(driver)
    }
    fn running(&self) {
        // After `connection_made`, as in Twisted.
        let handle = self.handle.borrow_mut().take();
        if let Some(h) = handle {
            let _ = self.result.callback(h);
        }
    }
    fn failed(&self, _c: &Rc<dyn Connector>, reason: Failure) {
        if !self.cancelled.get() {
            let _ = self.result.errback(reason);
        }
    }
    fn lost(&self, _c: &Rc<dyn Connector>, _reason: Failure) {}
    fn do_start(&self) {}
    fn do_stop(&self) {}
}

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
pub fn connect_protocol_with<P: Protocol>(
    reactor: &Reactor,
    host: &str,
    port: u16,
    protocol: P,
    options: ConnectOptions,
) -> Deferred<Handle<P>> {
    let connector_slot: Rc<RefCell<Option<TcpConnector>>> = Rc::new(RefCell::new(None));
    let slot = connector_slot.clone();
    let cancelled = Rc::new(Cell::new(false));
    let was_cancelled = cancelled.clone();
    let result = Deferred::with_canceller(move |_d: &Deferred<Handle<P>>| {
        was_cancelled.set(true);
        let c = slot.borrow_mut().take();
        if let Some(c) = c {
            c.disconnect();
        }
    });
    let ops = Box::new(OneShot {
        protocol: RefCell::new(Some(protocol)),
        handle: RefCell::new(None),
        result: result.clone(),
        cancelled,
    });
    let c = TcpConnector::unstarted(reactor.downgrade(), host, port, ops, options);
    *connector_slot.borrow_mut() = Some(c.clone());
    c.connect();
    result
}

// ---- the reactor interface -------------------------------------------------------------------

/// What opens TCP ports and connections: the [`Reactor`], or a
/// [`MemoryReactor`](crate::testing::MemoryReactor) that records the calls. Code that takes
/// `&impl ReactorTcp` can be tested without sockets (Twisted's `IReactorTCP`). The methods
/// have the free functions' names and forms: a short one with Twisted's defaults, a `_with`
/// one with options.
pub trait ReactorTcp {
    /// As [`listen_tcp_with`].
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
    fn listen_tcp<A>(&self, port: u16, factory: A) -> Result<ListeningPort, CannotListenError>
    where
        A: IntoFactory,
        A::Factory: Factory,
    {
        self.listen_tcp_with(port, factory, ListenOptions::default())
    }

    /// As [`connect_tcp`].
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
