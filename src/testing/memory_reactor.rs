//! `MemoryReactor`: records `listen_tcp`/`connect_tcp` calls instead of making them, with a
//! [`Clock`] for time (Twisted's `MemoryReactorClock`).

use std::any::Any;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use crate::error::CannotListenError;
use crate::protocol::{ClientFactory, Factory};
use crate::task::Clock;
use crate::time::{DelayedCall, ReactorTime};
use crate::transport::Address;
use crate::transport::factory::counted;
use crate::transport::listener::ListeningPort;
use crate::transport::tcp::{ConnectOptions, IntoFactory, ListenOptions, ReactorTcp, TcpConnector};

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
