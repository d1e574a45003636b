//! `MemoryReactor`: records `listen_tcp`/`connect_tcp` (and `listen_unix`/`connect_unix`)
//! calls instead of making them, with a
//! [`Clock`] for time (Twisted's `MemoryReactorClock`).

use std::any::Any;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::error::CannotListenError;
use crate::protocol::{ClientFactory, Factory};
use crate::task::Clock;
use crate::time::{DelayedCall, ReactorTime};
use crate::transport::Address;
use crate::transport::factory::counted;
use crate::transport::listener::ListeningPort;
use crate::transport::tcp::{ConnectOptions, IntoFactory, ListenOptions, ReactorTcp, TcpConnector};
use crate::transport::unix::{ReactorUnix, UnixConnectOptions, UnixConnector, UnixListenOptions};

/// A recorded `listen_tcp` call.
#[non_exhaustive]
pub struct ListenCall {
    /// The port asked for.
    pub port: u16,
    /// The options given.
    pub options: ListenOptions,
    factory: Rc<dyn Any>,
}

impl ListenCall {
    /// The factory, if it is an `F`.
    pub fn factory<F: 'static>(&self) -> Option<Rc<F>> {
        self.factory.clone().downcast::<F>().ok()
    }
}

/// A recorded `connect_tcp` call.
#[non_exhaustive]
pub struct ConnectCall {
    /// The host.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The options given (timeout, bind address).
    pub options: ConnectOptions,
    /// The connector returned (it never connects by itself).
    pub connector: TcpConnector,
    factory: Rc<dyn Any>,
}

impl ConnectCall {
    /// The factory, if it is an `F`.
    pub fn factory<F: 'static>(&self) -> Option<Rc<F>> {
        self.factory.clone().downcast::<F>().ok()
    }
}

/// A reactor that records TCP calls and tells time with a [`Clock`].
///
/// ```
/// use twistor::prelude::*;
/// use twistor::protocol::FactoryFn;
/// use twistor::testing::MemoryReactor;
/// use twistor::transport::tcp::{ConnectOptions, ListenOptions, ReactorTcp};
///
/// struct P;
/// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
///
/// // Code under test takes any ReactorTcp.
/// fn start(r: &impl ReactorTcp) {
///     let opts = ListenOptions { interface: "127.0.0.1".into(), ..Default::default() };
///     r.listen_tcp_with(8080, for_protocol(|| P), opts).unwrap();
///     r.connect_tcp("example.com", 80, for_protocol(|| P));
/// }
/// let mr = MemoryReactor::new();
/// start(&mr);
/// assert_eq!(mr.tcp_servers()[0].port, 8080);
/// assert!(mr.tcp_servers()[0].factory::<FactoryFn<P>>().is_some());
/// assert_eq!(mr.tcp_clients()[0].host, "example.com");
/// ```
#[doc(alias = "MemoryReactorClock")]
#[derive(Default)]
pub struct MemoryReactor {
    clock: Clock,
    servers: RefCell<Vec<Rc<ListenCall>>>,
    clients: RefCell<Vec<Rc<ConnectCall>>>,
    unix_servers: RefCell<Vec<Rc<UnixListenCall>>>,
    unix_clients: RefCell<Vec<Rc<UnixConnectCall>>>,
}

impl MemoryReactor {
    /// A memory reactor at time 0.
    pub fn new() -> MemoryReactor {
        MemoryReactor::default()
    }

    /// Its clock (advance it to run timers).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The `listen_tcp` calls so far.
    #[doc(alias = "tcpServers")]
    pub fn tcp_servers(&self) -> Vec<Rc<ListenCall>> {
        self.servers.borrow().clone()
    }

    /// The `connect_tcp` calls so far.
    #[doc(alias = "tcpClients")]
    pub fn tcp_clients(&self) -> Vec<Rc<ConnectCall>> {
        self.clients.borrow().clone()
    }

    /// The `listen_unix` calls so far.
    ///
    /// ```
    /// use twistor::prelude::*;
    /// use twistor::testing::MemoryReactor;
    /// use twistor::transport::unix::ReactorUnix;
    ///
    /// struct P;
    /// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// let mr = MemoryReactor::new();
    /// mr.listen_unix("/run/app.sock", for_protocol(|| P)).unwrap();
    /// mr.connect_unix("/run/other.sock", for_protocol(|| P));
    /// assert_eq!(mr.unix_servers()[0].path, std::path::Path::new("/run/app.sock"));
    /// assert_eq!(mr.unix_clients()[0].path, std::path::Path::new("/run/other.sock"));
    /// ```
    #[doc(alias = "unixServers")]
    pub fn unix_servers(&self) -> Vec<Rc<UnixListenCall>> {
        self.unix_servers.borrow().clone()
    }

    /// The `connect_unix` calls so far.
    #[doc(alias = "unixClients")]
    pub fn unix_clients(&self) -> Vec<Rc<UnixConnectCall>> {
        self.unix_clients.borrow().clone()
    }
}

impl ReactorTcp for MemoryReactor {
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
        let ip = options.interface.parse().unwrap_or([0, 0, 0, 0].into());
        // Port 0 gets a made-up port, as a real listen would pick one.
        let host = SocketAddr::new(
            ip,
            if port == 0 {
                30000 + self.servers.borrow().len() as u16
            } else {
                port
            },
        );
        let factory: Rc<dyn Any> = factory.into_factory();
        self.servers.borrow_mut().push(Rc::new(ListenCall {
            port,
            options,
            factory,
        }));
        Ok(ListeningPort::recorded(Address::Tcp(host)))
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
        let factory = factory.into_factory();
        let connector =
            TcpConnector::recorded(host, port, counted(factory.clone()), options.clone());
        self.clients.borrow_mut().push(Rc::new(ConnectCall {
            host: host.to_string(),
            port,
            options,
            connector: connector.clone(),
            factory,
        }));
        connector
    }
}

/// A recorded `listen_unix` call.
#[non_exhaustive]
pub struct UnixListenCall {
    /// The path asked for.
    pub path: PathBuf,
    /// The options given.
    pub options: UnixListenOptions,
    factory: Rc<dyn Any>,
}

impl UnixListenCall {
    /// The factory, if it is an `F`.
    pub fn factory<F: 'static>(&self) -> Option<Rc<F>> {
        self.factory.clone().downcast::<F>().ok()
    }
}

/// A recorded `connect_unix` call.
#[non_exhaustive]
pub struct UnixConnectCall {
    /// The path.
    pub path: PathBuf,
    /// The options given (timeout, `check_pid`).
    pub options: UnixConnectOptions,
    /// The connector returned (it never connects by itself).
    pub connector: UnixConnector,
    factory: Rc<dyn Any>,
}

impl UnixConnectCall {
    /// The factory, if it is an `F`.
    pub fn factory<F: 'static>(&self) -> Option<Rc<F>> {
        self.factory.clone().downcast::<F>().ok()
    }
}

impl ReactorUnix for MemoryReactor {
    fn listen_unix_with<A>(
        &self,
        path: impl AsRef<Path>,
        factory: A,
        options: UnixListenOptions,
    ) -> Result<ListeningPort, CannotListenError>
    where
        A: IntoFactory,
        A::Factory: Factory,
    {
        let path = path.as_ref().to_path_buf();
        let factory: Rc<dyn Any> = factory.into_factory();
        self.unix_servers.borrow_mut().push(Rc::new(UnixListenCall {
            path: path.clone(),
            options,
            factory,
        }));
        Ok(ListeningPort::recorded(Address::Unix(Some(path))))
    }

    fn connect_unix_with<A>(
        &self,
        path: impl AsRef<Path>,
        factory: A,
        options: UnixConnectOptions,
    ) -> UnixConnector
    where
        A: IntoFactory,
        A::Factory: ClientFactory,
    {
        let factory = factory.into_factory();
        let connector =
            UnixConnector::recorded(path.as_ref(), counted(factory.clone()), options.clone());
        self.unix_clients
            .borrow_mut()
            .push(Rc::new(UnixConnectCall {
                path: path.as_ref().to_path_buf(),
                options,
                connector: connector.clone(),
                factory,
            }));
        connector
    }
}

impl ReactorTime for MemoryReactor {
    fn seconds(&self) -> f64 {
        self.clock.seconds()
    }
    fn call_later_boxed(&self, delay: f64, f: Box<dyn FnOnce()>) -> DelayedCall {
        self.clock.call_later_boxed(delay, f)
    }
    fn get_delayed_calls(&self) -> Vec<DelayedCall> {
        self.clock.get_delayed_calls()
    }
}
