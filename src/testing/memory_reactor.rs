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
use crate::transport::tcp::{Connector, ListeningPort, ReactorTcp};

/// A recorded `listen_tcp` call.
pub struct ListenCall {
    /// The port asked for.
    pub port: u16,
    /// The backlog.
    pub backlog: u32,
    /// The interface.
    pub interface: String,
    factory: Rc<dyn Any>,
}

impl ListenCall {
    /// The factory, if it is an `F`.
    pub fn factory<F: 'static>(&self) -> Option<Rc<F>> {
        self.factory.clone().downcast::<F>().ok()
    }
}

/// A recorded `connect_tcp` call.
pub struct ConnectCall {
    /// The host.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The timeout, seconds.
    pub timeout: f64,
    /// The local address to bind.
    pub bind_address: Option<SocketAddr>,
    /// The connector returned (it never connects by itself).
    pub connector: Connector,
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
/// use std::rc::Rc;
/// use twistor::protocol::{for_protocol, Context, FactoryFn, Protocol};
/// use twistor::testing::MemoryReactor;
/// use twistor::transport::tcp::ReactorTcp;
///
/// struct P;
/// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
///
/// // Code under test takes any ReactorTcp.
/// fn start(r: &impl ReactorTcp) {
///     r.listen_tcp(8080, Rc::new(for_protocol(|| P)), 50, "127.0.0.1").unwrap();
///     r.connect_tcp("example.com", 80, Rc::new(for_protocol(|| P)), 30.0, None);
/// }
/// let mr = MemoryReactor::new();
/// start(&mr);
/// assert_eq!(mr.tcp_servers()[0].port, 8080);
/// assert!(mr.tcp_servers()[0].factory::<FactoryFn<P>>().is_some());
/// assert_eq!(mr.tcp_clients()[0].host, "example.com");
/// ```
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
    pub fn tcp_servers(&self) -> Vec<Rc<ListenCall>> {
        self.servers.borrow().clone()
    }

    /// The `connect_tcp` calls so far.
    pub fn tcp_clients(&self) -> Vec<Rc<ConnectCall>> {
        self.clients.borrow().clone()
    }
}

impl ReactorTcp for MemoryReactor {
    fn listen_tcp<F: Factory>(
        &self,
        port: u16,
        factory: Rc<F>,
        backlog: u32,
        interface: &str,
    ) -> Result<ListeningPort, CannotListenError> {
        let ip = interface.parse().unwrap_or([0, 0, 0, 0].into());
        // Port 0 gets a made-up port, as a real listen would pick one.
        let host = SocketAddr::new(
            ip,
            if port == 0 {
                30000 + self.servers.borrow().len() as u16
            } else {
                port
            },
        );
        self.servers.borrow_mut().push(Rc::new(ListenCall {
            port,
            backlog,
            interface: interface.to_string(),
            factory,
        }));
        Ok(ListeningPort::recorded(host))
    }

    fn connect_tcp<F: ClientFactory>(
        &self,
        host: &str,
        port: u16,
        factory: Rc<F>,
        timeout: f64,
        bind_address: Option<SocketAddr>,
    ) -> Connector {
        let connector = Connector::recorded(host, port, factory.clone(), timeout, bind_address);
        self.clients.borrow_mut().push(Rc::new(ConnectCall {
            host: host.to_string(),
            port,
            timeout,
            bind_address,
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
