//! Policies around protocols (Twisted's `protocols.policies`): idle timeouts, wrapping
//! factories, throttling.
//!
//! - [`IdleTimeout`] is `TimeoutMixin`: a protocol owns one and calls `reset_timeout` on
//!   traffic; when it expires, the protocol's [`TimeoutProtocol::timeout_connection`] runs
//!   (default: `lose_connection`).
//! - [`WrappingFactory`] builds a [`ProtocolWrapper`] around each protocol of a wrapped factory:
//!   the wrapper is the wrapped protocol's transport, so it sees every byte both ways and can
//!   count, delay or cut them. [`WrapperPolicy`] is what a wrapping factory decides.
//! - [`TimeoutFactory`]: close after a period with no reads or writes.
//! - [`ThrottlingFactory`]: a maximum number of connections and read/write rate limits.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use crate::Failure;
use crate::protocol::{Context, Factory, Protocol, ProtocolDriver, attach};
use crate::time::{DelayedCall, ReactorTime};
use crate::transport::{Address, Producer, ProducerError, Transport, TransportImpl};

// ---- TimeoutMixin --------------------------------------------------------------------------

/// A protocol with an idle timeout: what happens when it expires.
pub trait TimeoutProtocol: Protocol {
    /// The timeout expired (Twisted's `timeoutConnection`): closes by default.
    fn timeout_connection(&mut self, cx: &Context<Self>) {
        cx.transport().lose_connection();
    }
}

/// Twisted's `TimeoutMixin`, as a value a protocol owns.
///
/// ```
/// use twistor::protocol::{Context, Protocol};
/// use twistor::protocols::policies::{IdleTimeout, TimeoutProtocol};
/// use twistor::testing::StringTransport;
/// use twistor::Clock;
///
/// struct Idle { timeout: IdleTimeout }
/// impl Protocol for Idle {
///     fn connection_made(&mut self, cx: &Context<Self>) { self.timeout.set_timeout(Some(3.0), cx); }
///     fn data_received(&mut self, _cx: &Context<Self>, _d: &[u8]) { self.timeout.reset_timeout(); }
/// }
/// impl TimeoutProtocol for Idle {}
///
/// let clock = Clock::new();
/// let st = StringTransport::new();
/// st.connect(Idle { timeout: IdleTimeout::new(clock.clone()) });
/// clock.advance(2.5);
/// assert!(!st.disconnecting());
/// clock.advance(1.0);
/// assert!(st.disconnecting());
/// ```
pub struct IdleTimeout {
    clock: Rc<dyn ReactorTime>,
    period: Option<f64>,
    call: Option<DelayedCall>,
}

impl IdleTimeout {
    /// No timeout yet; timers go on `clock`.
    pub fn new(clock: impl ReactorTime + 'static) -> IdleTimeout {
        IdleTimeout {
            clock: Rc::new(clock),
            period: None,
            call: None,
        }
    }

    /// Sets (or with `None` cancels) the timeout; returns the previous period.
    pub fn set_timeout<P: TimeoutProtocol>(
        &mut self,
        period: Option<f64>,
        cx: &Context<P>,
    ) -> Option<f64> {
        let previous = std::mem::replace(&mut self.period, period);
        match (period, self.call.as_ref().filter(|c| c.active())) {
            (None, Some(c)) => {
                let _ = c.cancel();
                self.call = None;
            }
            (Some(p), Some(c)) => {
                let _ = c.reset(p);
            }
            (Some(p), None) => {
                let me = cx.handle();
                self.call = Some(self.clock.call_later_boxed(
                    p,
                    Box::new(move || {
                        me.with(|proto, cx| proto.timeout_connection(cx));
                    }),
                ));
            }
            (None, None) => {}
        }
        previous
    }

    /// Restarts the timer (call it on traffic); nothing if there is no running timer.
    pub fn reset_timeout(&mut self) {
        if let (Some(p), Some(c)) = (self.period, self.call.as_ref())
            && c.active()
        {
            let _ = c.reset(p);
        }
    }

    /// The current period.
    pub fn period(&self) -> Option<f64> {
        self.period
    }
}

impl Drop for IdleTimeout {
    fn drop(&mut self) {
        if let Some(c) = self.call.take()
            && c.active()
        {
            let _ = c.cancel();
        }
    }
}

// ---- wrapping ------------------------------------------------------------------------------

/// What a wrapping factory decides about the connections it wraps. Every method has a
/// pass-through default.
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
    /// A wrapped connection ended.
    fn connection_lost(&self, _wrapper: &WrapperTransport) {}
}

/// The transport a wrapped protocol sees: it forwards to the real transport and tells the
/// policy about the traffic.
pub struct WrapperTransport {
    real: Transport,
    policy: Weak<dyn WrapperPolicy>,
    producer: RefCell<Option<Rc<dyn Producer>>>,
    me: RefCell<Weak<WrapperTransport>>,
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
}

impl TransportImpl for WrapperTransport {
    fn write(&self, data: &[u8]) {
        if let (Some(p), Some(me)) = (self.policy(), self.me.borrow().upgrade()) {
            p.bytes_written(&me, data.len());
        }
        self.real.write(data)
    }
    fn write_sequence(&self, chunks: &[&[u8]]) {
        let n = chunks.iter().map(|c| c.len()).sum();
        if let (Some(p), Some(me)) = (self.policy(), self.me.borrow().upgrade()) {
            p.bytes_written(&me, n);
        }
        self.real.write_sequence(chunks)
    }
    fn lose_connection(&self) {
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
}

/// Sits between a real transport and a wrapped protocol (Twisted's `ProtocolWrapper`).
///
/// It keeps its policy alive (as Twisted's wrapper keeps its factory): a connection outlives
/// the factory that made it (a port stopped and dropped), and its policy must go on seeing
/// its traffic, or a [`TimeoutFactory`] would close a busy connection.
pub struct ProtocolWrapper<P: Protocol> {
    inner: Option<P>,
    driver: Option<Rc<dyn ProtocolDriver>>,
    wrapper: Option<Rc<WrapperTransport>>,
    policy: Rc<dyn WrapperPolicy>,
}

impl<P: Protocol> Protocol for ProtocolWrapper<P> {
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
            let (driver, _handle) = attach(inner, Transport::new(wrapper.clone()));
            self.driver = Some(driver.clone());
            self.wrapper = Some(wrapper);
            driver.make_connection();
        }
    }
    fn data_received(&mut self, _cx: &Context<Self>, data: &[u8]) {
        if let Some(w) = &self.wrapper {
            self.policy.bytes_read(w, data.len());
        }
        if let Some(d) = &self.driver {
            d.data_received(data);
        }
    }
    fn connection_lost(&mut self, _cx: &Context<Self>, reason: Failure) {
        if let Some(w) = &self.wrapper {
            self.policy.connection_lost(w);
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
/// `WrappingFactory`).
pub struct WrappingFactory<F: Factory, W: WrapperPolicy> {
    factory: F,
    policy: Rc<W>,
}

impl<F: Factory, W: WrapperPolicy> WrappingFactory<F, W> {
    /// Wraps `factory` with `policy`.
    pub fn new(factory: F, policy: W) -> Self {
        WrappingFactory {
            factory,
            policy: Rc::new(policy),
        }
    }
    /// The policy.
    pub fn policy(&self) -> &Rc<W> {
        &self.policy
    }
}

impl<F: Factory, W: WrapperPolicy> Factory for WrappingFactory<F, W> {
    type Protocol = ProtocolWrapper<F::Protocol>;
    fn build_protocol(&self, addr: &Address) -> Option<Self::Protocol> {
        if !self.policy.admit(addr) {
            return None;
        }
        let inner = self.factory.build_protocol(addr)?;
        Some(ProtocolWrapper {
            inner: Some(inner),
            driver: None,
            wrapper: None,
            policy: self.policy.clone(),
        })
    }
    fn start_factory(&self) {
        self.factory.start_factory()
    }
    fn stop_factory(&self) {
        self.factory.stop_factory()
    }
}

// ---- TimeoutFactory ------------------------------------------------------------------------

/// Closes a connection after `period` seconds with no reads or writes (Twisted's
/// `TimeoutFactory`, default 1800 s).
pub struct IdlePolicy {
    clock: Rc<dyn ReactorTime>,
    period: f64,
    timers: RefCell<Vec<(Weak<WrapperTransport>, DelayedCall)>>,
}

impl IdlePolicy {
    fn timer_of(&self, w: &WrapperTransport) -> Option<DelayedCall> {
        self.timers
            .borrow()
            .iter()
            .find(|(t, _)| std::ptr::eq(t.as_ptr(), w))
            .map(|(_, c)| c.clone())
    }
    fn touch(&self, w: &WrapperTransport) {
        if let Some(c) = self.timer_of(w)
            && c.active()
        {
            let _ = c.reset(self.period);
        }
    }
}

impl WrapperPolicy for IdlePolicy {
    fn connection_made(&self, w: &WrapperTransport) {
        let real = w.real().clone();
        let call = self
            .clock
            .call_later_boxed(self.period, Box::new(move || real.lose_connection()));
        let me = w.me.borrow().clone();
        let mut timers = self.timers.borrow_mut();
        timers.retain(|(t, _)| t.strong_count() > 0);
        timers.push((me, call));
    }
    fn bytes_read(&self, w: &WrapperTransport, _n: usize) {
        self.touch(w)
    }
    fn bytes_written(&self, w: &WrapperTransport, _n: usize) {
        self.touch(w)
    }
    fn connection_lost(&self, w: &WrapperTransport) {
        if let Some(c) = self.timer_of(w)
            && c.active()
        {
            let _ = c.cancel();
        }
        self.timers
            .borrow_mut()
            .retain(|(t, _)| !std::ptr::eq(t.as_ptr(), w) && t.strong_count() > 0);
    }
}

/// A [`WrappingFactory`] that closes idle connections.
pub type TimeoutFactory<F> = WrappingFactory<F, IdlePolicy>;

/// Wraps `factory` so its connections close after `period` idle seconds on `clock`.
///
/// ```
/// use twistor::protocols::policies::timeout_factory;
/// use twistor::protocol::{for_protocol, Context, Protocol};
/// use twistor::Clock;
/// struct P;
/// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let _f = timeout_factory(for_protocol(|| P), Clock::new(), 1800.0);
/// ```
pub fn timeout_factory<F: Factory>(
    factory: F,
    clock: impl ReactorTime + 'static,
    period: f64,
) -> TimeoutFactory<F> {
    WrappingFactory::new(
        factory,
        IdlePolicy {
            clock: Rc::new(clock),
            period,
            timers: RefCell::new(Vec::new()),
        },
    )
}

// ---- ThrottlingFactory -----------------------------------------------------------------------

/// Limits connections and bandwidth (Twisted's `ThrottlingFactory`): beyond `max_connections`
/// new connections are refused; if more than `read_limit` bytes/s were read in the last second,
/// every connection stops reading for `total/limit - 1` seconds; likewise writes, by pausing the
/// wrapped protocols' registered producers.
pub struct ThrottlePolicy {
    clock: Rc<dyn ReactorTime>,
    max_connections: usize,
    read_limit: Option<u64>,
    write_limit: Option<u64>,
    live: RefCell<Vec<Weak<WrapperTransport>>>,
    read_this_second: Cell<u64>,
    written_this_second: Cell<u64>,
    checker: RefCell<Option<DelayedCall>>,
    me: RefCell<Weak<ThrottlePolicy>>,
}

impl ThrottlePolicy {
    fn live(&self) -> Vec<Rc<WrapperTransport>> {
        self.live
            .borrow()
            .iter()
            .filter_map(|w| w.upgrade())
            .collect()
    }

    fn check(self: &Rc<Self>) {
        let read = self.read_this_second.replace(0);
        let written = self.written_this_second.replace(0);
        if let Some(limit) = self.read_limit.filter(|l| read > *l && *l > 0) {
            let pause = read as f64 / limit as f64 - 1.0;
            let conns = self.live();
            for c in &conns {
                c.real().pause_producing();
            }
            self.clock.call_later_boxed(
                pause,
                Box::new(move || {
                    for c in conns {
                        c.real().resume_producing();
                    }
                }),
            );
        }
        if let Some(limit) = self.write_limit.filter(|l| written > *l && *l > 0) {
            let pause = written as f64 / limit as f64 - 1.0;
            let producers: Vec<_> = self.live().iter().filter_map(|c| c.producer()).collect();
            for p in &producers {
                p.pause_producing();
            }
            self.clock.call_later_boxed(
                pause,
                Box::new(move || {
                    for p in producers {
                        p.resume_producing();
                    }
                }),
            );
        }
        self.schedule_check();
    }

    fn schedule_check(&self) {
        let me = self.me.borrow().clone();
        let call = self.clock.call_later_boxed(
            1.0,
            Box::new(move || {
                if let Some(me) = me.upgrade() {
                    me.check();
                }
            }),
        );
        *self.checker.borrow_mut() = Some(call);
    }
}

impl WrapperPolicy for Rc<ThrottlePolicy> {
    fn admit(&self, _addr: &Address) -> bool {
        self.live.borrow_mut().retain(|w| w.strong_count() > 0);
        self.live.borrow().len() < self.max_connections
    }
    fn connection_made(&self, w: &WrapperTransport) {
        let first = self.live().is_empty();
        self.live.borrow_mut().push(w.me.borrow().clone());
        if first && (self.read_limit.is_some() || self.write_limit.is_some()) {
            self.schedule_check();
        }
    }
    fn bytes_read(&self, _w: &WrapperTransport, n: usize) {
        self.read_this_second
            .set(self.read_this_second.get() + n as u64);
    }
    fn bytes_written(&self, _w: &WrapperTransport, n: usize) {
        self.written_this_second
            .set(self.written_this_second.get() + n as u64);
    }
    fn connection_lost(&self, w: &WrapperTransport) {
        self.live
            .borrow_mut()
            .retain(|t| !std::ptr::eq(t.as_ptr(), w) && t.strong_count() > 0);
        if self.live().is_empty()
            && let Some(c) = self.checker.borrow_mut().take()
            && c.active()
        {
            let _ = c.cancel();
        }
    }
}

/// A [`WrappingFactory`] that throttles.
pub type ThrottlingFactory<F> = WrappingFactory<F, Rc<ThrottlePolicy>>;

/// Wraps `factory` with connection and rate limits (bytes per second; `None`: unlimited).
///
/// ```
/// use twistor::protocols::policies::throttling_factory;
/// use twistor::protocol::{for_protocol, Context, Factory, Protocol};
/// use twistor::transport::Address;
/// use twistor::Clock;
/// struct P;
/// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let f = throttling_factory(for_protocol(|| P), Clock::new(), 0, None, None);
/// assert!(f.build_protocol(&Address::Memory("peer".into())).is_none()); // no room
/// ```
pub fn throttling_factory<F: Factory>(
    factory: F,
    clock: impl ReactorTime + 'static,
    max_connections: usize,
    read_limit: Option<u64>,
    write_limit: Option<u64>,
) -> ThrottlingFactory<F> {
    let policy = Rc::new(ThrottlePolicy {
        clock: Rc::new(clock),
        max_connections,
        read_limit,
        write_limit,
        live: RefCell::new(Vec::new()),
        read_this_second: Cell::new(0),
        written_this_second: Cell::new(0),
        checker: RefCell::new(None),
        me: RefCell::new(Weak::new()),
    });
    *policy.me.borrow_mut() = Rc::downgrade(&policy);
    WrappingFactory::new(factory, policy)
}
