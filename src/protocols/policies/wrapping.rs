//! `WrappingFactory` and `ProtocolWrapper`: a protocol between the transport and the one the
//! user's factory built, seeing every byte both ways (Twisted's `policies.ProtocolWrapper`).

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use crate::Failure;
use crate::protocol::{ClientFactory, Context, Factory, Protocol, ProtocolDriver, attach};
use crate::transport::connector::Connector;
use crate::transport::{Address, Producer, ProducerError, Transport, TransportImpl};

/// What a wrapping factory decides about the connections it wraps. Every method has a
/// pass-through default.
///
/// ```
/// use std::cell::Cell;
/// use twistor::protocol::{for_protocol, Context, Factory, Protocol};
/// use twistor::protocols::policies::{WrapperPolicy, WrapperTransport, WrappingFactory};
/// use twistor::transport::Address;
///
/// /// Refuses every other connection.
/// #[derive(Default)]
/// struct EveryOther(Cell<u32>);
/// impl WrapperPolicy for EveryOther {
///     fn admit(&self, _addr: &Address) -> bool {
///         self.0.set(self.0.get() + 1);
///         self.0.get() % 2 == 1
///     }
/// }
/// struct P;
/// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let f = WrappingFactory::new(for_protocol(|| P), EveryOther::default());
/// let addr = Address::Memory("peer".into());
/// assert!(f.build_protocol(&addr).is_some());
/// assert!(f.build_protocol(&addr).is_none());
/// ```
pub trait WrapperPolicy: 'static {
    /// May refuse a new connection (return false).
    fn admit(&self, _addr: &Address) -> bool {
        true
    }
    /// A wrapped connection started.
    fn connection_made(&self, _wrapper: &WrapperTransport) {}
    /// `n` bytes arrived on a wrapped connection.
    fn bytes_read(&self, _wrapper: &WrapperTransport, _n: usize) {}
    /// The wrapped protocol wrote `n` bytes.
    fn bytes_written(&self, _wrapper: &WrapperTransport, _n: usize) {}
    /// Bytes arrived on a wrapped connection; the default counts them with `bytes_read`.
    fn data_read(&self, wrapper: &WrapperTransport, data: &[u8]) {
        self.bytes_read(wrapper, data.len())
    }
    /// The wrapped protocol wrote `chunks` (one `write` is one chunk); the default counts
    /// them with `bytes_written`.
    fn data_written(&self, wrapper: &WrapperTransport, chunks: &[&[u8]]) {
        self.bytes_written(wrapper, chunks.iter().map(|c| c.len()).sum())
    }
    /// The wrapped protocol asked to close the connection.
    fn lose_connection(&self, _wrapper: &WrapperTransport) {}
    /// A wrapped connection ended, for `reason`.
    fn connection_lost(&self, _wrapper: &WrapperTransport, _reason: &Failure) {}
}

/// The transport a wrapped protocol sees: it forwards to the real transport and tells the
/// policy about the traffic. Policies get it in every hook.
///
/// ```
/// use std::cell::RefCell;
/// use twistor::protocol::{for_protocol, Context, Factory, Protocol};
/// use twistor::protocols::policies::{WrapperPolicy, WrapperTransport, WrappingFactory};
/// use twistor::testing::StringTransport;
/// use twistor::transport::Address;
///
/// /// Remembers the peer of each connection.
/// #[derive(Default)]
/// struct Peers(RefCell<Vec<Address>>);
/// impl WrapperPolicy for Peers {
///     fn connection_made(&self, w: &WrapperTransport) {
///         self.0.borrow_mut().push(w.real().get_peer());
///         assert!(w.producer().is_none());
///     }
/// }
/// struct P;
/// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let f = WrappingFactory::new(for_protocol(|| P), Peers::default());
/// let st = StringTransport::new();
/// st.connect(f.build_protocol(&Address::Memory("peer".into())).unwrap());
/// assert_eq!(f.policy().0.borrow().len(), 1);
/// ```
pub struct WrapperTransport {
    real: Transport,
    policy: Weak<dyn WrapperPolicy>,
    producer: RefCell<Option<Rc<dyn Producer>>>,
    pub(super) me: RefCell<Weak<WrapperTransport>>,
}

impl WrapperTransport {
    /// The real transport underneath.
    pub fn real(&self) -> &Transport {
        &self.real
    }
    /// The producer the wrapped protocol registered, if any.
    pub fn producer(&self) -> Option<Rc<dyn Producer>> {
        self.producer.borrow().clone()
    }
    fn policy(&self) -> Option<Rc<dyn WrapperPolicy>> {
        self.policy.upgrade()
    }
    fn written(&self, chunks: &[&[u8]]) {
        if let (Some(p), Some(me)) = (self.policy(), self.me.borrow().upgrade()) {
            p.data_written(&me, chunks);
        }
    }
}

impl TransportImpl for WrapperTransport {
    fn write(&self, data: &[u8]) {
        self.written(&[data]);
        self.real.write(data)
    }
    fn write_sequence(&self, chunks: &[&[u8]]) {
        self.written(chunks);
        self.real.write_sequence(chunks)
    }
    fn lose_connection(&self) {
        if let (Some(p), Some(me)) = (self.policy(), self.me.borrow().upgrade()) {
            p.lose_connection(&me);
        }
        self.real.lose_connection()
    }
    fn abort_connection(&self) {
        self.real.abort_connection()
    }
    fn abort_with(&self, reason: Failure) {
        self.real.abort_with(reason)
    }
    fn lose_write_connection(&self) {
        self.real.lose_write_connection()
    }
    fn get_host(&self) -> Address {
        self.real.get_host()
    }
    fn get_peer(&self) -> Address {
        self.real.get_peer()
    }
    fn disconnecting(&self) -> bool {
        self.real.disconnecting()
    }
    fn pause_producing(&self) {
        self.real.pause_producing()
    }
    fn resume_producing(&self) {
        self.real.resume_producing()
    }
    fn stop_producing(&self) {
        self.real.stop_producing()
    }
    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        self.real.register_producer(producer.clone(), streaming)?;
        *self.producer.borrow_mut() = Some(producer);
        Ok(())
    }
    fn unregister_producer(&self) {
        self.producer.borrow_mut().take();
        self.real.unregister_producer()
    }
    fn set_write_buffer_limits(&self, high: usize, low: usize) {
        self.real.set_write_buffer_limits(high, low)
    }
    fn set_read_backpressure(&self, on: bool) {
        self.real.set_read_backpressure(on)
    }
    fn buffered(&self) -> usize {
        self.real.buffered()
    }
    fn tcp(&self) -> Option<crate::transport::TcpExt> {
        self.real.tcp()
    }
    fn tls(&self) -> Option<crate::tls::TlsInfo> {
        self.real.tls()
    }
    fn start_tls(
        &self,
        config: crate::tls::TlsConfig,
        already_received: &[u8],
    ) -> Result<(), crate::tls::TlsError> {
        self.real.start_tls(config, already_received)
    }
}

/// Connects a wrapped protocol, of whatever type, to its wrapper transport.
type Attach = Box<dyn FnOnce(Transport) -> Rc<dyn ProtocolDriver>>;

/// Sits between a real transport and a wrapped protocol (Twisted's `ProtocolWrapper`). The
/// wrapped protocol's type is erased, so one wrapper type serves every policy, including
/// those that pick between two protocols ([`LimitTotalConnectionsFactory`]'s overflow).
///
/// It keeps its policy alive (as Twisted's wrapper keeps its factory): a connection outlives
/// the factory that made it (a port stopped and dropped), and its policy must go on seeing
/// its traffic, or a [`TimeoutFactory`] would close a busy connection.
///
/// [`LimitTotalConnectionsFactory`]: super::LimitTotalConnectionsFactory
/// [`TimeoutFactory`]: super::TimeoutFactory
///
/// ```
/// use twistor::protocol::{for_protocol, Context, Factory, Protocol};
/// use twistor::protocols::policies::{ProtocolWrapper, WrappingFactory};
/// use twistor::testing::StringTransport;
/// use twistor::transport::Address;
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, cx: &Context<Self>, d: &[u8]) { cx.transport().write(d) }
/// }
/// struct Pass;
/// impl twistor::protocols::policies::WrapperPolicy for Pass {}
/// let f = WrappingFactory::new(for_protocol(|| Echo), Pass);
/// let wrapper: ProtocolWrapper = f.build_protocol(&Address::Memory("x".into())).unwrap();
/// let st = StringTransport::new();
/// st.connect(wrapper);
/// st.deliver(b"hi");
/// assert_eq!(st.value(), b"hi");
/// ```
pub struct ProtocolWrapper {
    inner: Option<Attach>,
    driver: Option<Rc<dyn ProtocolDriver>>,
    wrapper: Option<Rc<WrapperTransport>>,
    policy: Rc<dyn WrapperPolicy>,
}

impl ProtocolWrapper {
    /// Wraps `protocol`, governed by `policy`.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use twistor::protocol::{Context, Protocol};
    /// use twistor::protocols::policies::{ProtocolWrapper, WrapperPolicy};
    /// use twistor::testing::StringTransport;
    ///
    /// struct Hello;
    /// impl Protocol for Hello {
    ///     fn connection_made(&mut self, cx: &Context<Self>) { cx.transport().write(b"hello") }
    ///     fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
    /// }
    /// struct Pass;
    /// impl WrapperPolicy for Pass {}
    /// let st = StringTransport::new();
    /// st.connect(ProtocolWrapper::new(Hello, Rc::new(Pass)));
    /// assert_eq!(st.value(), b"hello");
    /// ```
    pub fn new<P: Protocol>(protocol: P, policy: Rc<dyn WrapperPolicy>) -> ProtocolWrapper {
        ProtocolWrapper {
            inner: Some(Box::new(move |t| attach(protocol, t).0)),
            driver: None,
            wrapper: None,
            policy,
        }
    }
}

impl Protocol for ProtocolWrapper {
    fn connection_made(&mut self, cx: &Context<Self>) {
        let wrapper = Rc::new(WrapperTransport {
            real: cx.transport().clone(),
            policy: Rc::downgrade(&self.policy),
            producer: RefCell::new(None),
            me: RefCell::new(Weak::new()),
        });
        *wrapper.me.borrow_mut() = Rc::downgrade(&wrapper);
        self.policy.connection_made(&wrapper);
        if let Some(inner) = self.inner.take() {
            let driver = inner(Transport::new(wrapper.clone()));
            self.driver = Some(driver.clone());
            self.wrapper = Some(wrapper);
            driver.make_connection();
        }
    }
    fn data_received(&mut self, _cx: &Context<Self>, data: &[u8]) {
        if let Some(w) = &self.wrapper {
            self.policy.data_read(w, data);
        }
        if let Some(d) = &self.driver {
            d.data_received(data);
        }
    }
    fn connection_lost(&mut self, _cx: &Context<Self>, reason: Failure) {
        if let Some(w) = &self.wrapper {
            self.policy.connection_lost(w, &reason);
        }
        if let Some(d) = self.driver.take() {
            d.connection_lost(reason);
        }
        self.wrapper = None;
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
}

/// Wraps every protocol of `factory` in a [`ProtocolWrapper`] governed by `policy` (Twisted's
/// `WrappingFactory`). It is a client factory too, when the wrapped one is: the client hooks
/// go to the wrapped factory.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use twistor::protocol::{for_protocol, ClientFactory, Context, Factory, Protocol};
/// use twistor::protocols::policies::{WrapperPolicy, WrapperTransport, WrappingFactory};
/// use twistor::testing::StringTransport;
/// use twistor::transport::Address;
///
/// /// Counts the bytes read on every connection.
/// #[derive(Default)]
/// struct Count(Cell<usize>);
/// impl WrapperPolicy for Count {
///     fn bytes_read(&self, _w: &WrapperTransport, n: usize) { self.0.set(self.0.get() + n) }
/// }
/// struct Sink;
/// impl Protocol for Sink { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
///
/// let f = WrappingFactory::new(for_protocol(|| Sink), Count::default());
/// let st = StringTransport::new();
/// st.connect(f.build_protocol(&Address::Memory("peer".into())).unwrap());
/// st.deliver(b"hello");
/// assert_eq!(f.policy().0.get(), 5);
/// fn is_client<F: ClientFactory>(_: &F) {}
/// is_client(&f);
/// ```
pub struct WrappingFactory<F: Factory, W: WrapperPolicy> {
    factory: F,
    policy: Rc<W>,
}

impl<F: Factory, W: WrapperPolicy> WrappingFactory<F, W> {
    /// Wraps `factory` with `policy`.
    ///
    /// ```
    /// use twistor::protocol::{for_protocol, Context, Protocol};
    /// use twistor::protocols::policies::{WrapperPolicy, WrappingFactory};
    /// struct P;
    /// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// struct Pass;
    /// impl WrapperPolicy for Pass {}
    /// let _f = WrappingFactory::new(for_protocol(|| P), Pass);
    /// ```
    pub fn new(factory: F, policy: W) -> Self {
        WrappingFactory {
            factory,
            policy: Rc::new(policy),
        }
    }

    /// The policy.
    ///
    /// ```
    /// use twistor::protocol::{for_protocol, Context, Protocol};
    /// use twistor::protocols::policies::{WrapperPolicy, WrappingFactory};
    /// struct P;
    /// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// struct Named(&'static str);
    /// impl WrapperPolicy for Named {}
    /// assert_eq!(WrappingFactory::new(for_protocol(|| P), Named("x")).policy().0, "x");
    /// ```
    pub fn policy(&self) -> &Rc<W> {
        &self.policy
    }

    /// The wrapped factory.
    ///
    /// ```
    /// use twistor::protocol::{for_protocol, Context, Protocol};
    /// use twistor::protocols::policies::{WrapperPolicy, WrappingFactory};
    /// struct P;
    /// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// struct Pass;
    /// impl WrapperPolicy for Pass {}
    /// let f = WrappingFactory::new(for_protocol(|| P), Pass);
    /// let _inner = f.wrapped_factory();
    /// ```
    #[doc(alias = "wrappedFactory")]
    pub fn wrapped_factory(&self) -> &F {
        &self.factory
    }
}

impl<F: Factory, W: WrapperPolicy> Factory for WrappingFactory<F, W> {
    type Protocol = ProtocolWrapper;
    fn build_protocol(&self, addr: &Address) -> Option<ProtocolWrapper> {
        if !self.policy.admit(addr) {
            return None;
        }
        let inner = self.factory.build_protocol(addr)?;
        Some(ProtocolWrapper::new(inner, self.policy.clone()))
    }
    fn start_factory(&self) {
        self.factory.start_factory()
    }
    fn stop_factory(&self) {
        self.factory.stop_factory()
    }
}

impl<F: ClientFactory, W: WrapperPolicy> ClientFactory for WrappingFactory<F, W> {
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
