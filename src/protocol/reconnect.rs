//! `ReconnectingClientFactory`: reconnect with exponential back-off (Twisted's).
//!
//! After a failed attempt or a lost connection, while still trying: `retries += 1`; give up
//! past `max_retries`; `delay = min(delay * factor, max_delay)`; with jitter, `delay` is drawn
//! from a normal distribution around itself (`delay * jitter` standard deviation); then
//! `connector.connect()` runs after `delay` on the given clock. The multiplication comes before
//! the first wait, so with the defaults the first retry waits about e seconds. The delay is
//! never reset by itself: call [`reset_delay`](ReconnectingClientFactory::reset_delay) once a
//! connection works (e.g. in `connection_made`). `stop_trying` cancels a pending retry and stops
//! an attempt in progress.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::{ClientFactory, Factory};
use crate::Failure;
use crate::time::{DelayedCall, ReactorTime};
use crate::transport::Address;
use crate::transport::connector::Connector;

/// What the factory retries: a [`Connector`], or a test double.
pub trait Connectable {
    /// Starts a new attempt.
    fn connect(&self);
    /// Stops an attempt in progress (errors ignored).
    fn stop_connecting(&self);
}

impl Connectable for Rc<dyn Connector> {
    fn connect(&self) {
        Connector::connect(&**self)
    }
    fn stop_connecting(&self) {
        let _ = Connector::stop_connecting(&**self);
    }
}

/// Twisted's back-off parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Longest wait, seconds (3600).
    pub max_delay: f64,
    /// Starting delay, seconds (1.0).
    pub initial_delay: f64,
    /// Multiplier per retry (e).
    pub factor: f64,
    /// Relative standard deviation of the Gaussian jitter (0.119626565582); 0 for none.
    pub jitter: f64,
    /// Give up after this many retries (unlimited by default).
    pub max_retries: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            max_delay: 3600.0,
            initial_delay: 1.0,
            factor: std::f64::consts::E,
            jitter: 0.119_626_565_582,
            max_retries: None,
        }
    }
}

/// A client factory that reconnects (Twisted's `ReconnectingClientFactory`), wrapping the
/// factory that builds the protocols.
///
/// ```
/// use std::rc::Rc;
/// use twistor::protocol::{for_protocol, Context, Protocol};
/// use twistor::protocol::reconnect::{Backoff, Connectable, ReconnectingClientFactory};
/// use twistor::{Clock, Failure};
///
/// struct P;
/// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
///
/// struct Fake(std::cell::Cell<u32>);
/// impl Connectable for Fake {
///     fn connect(&self) { self.0.set(self.0.get() + 1) }
///     fn stop_connecting(&self) {}
/// }
///
/// let clock = Clock::new();
/// let f = ReconnectingClientFactory::new(for_protocol(|| P), clock.clone())
///     .with_backoff(Backoff { jitter: 0.0, ..Backoff::default() });
/// let fake = Rc::new(Fake(Default::default()));
/// f.connection_failed(fake.clone(), Failure::msg("refused"));
/// clock.advance(2.7);
/// assert_eq!(fake.0.get(), 0);
/// clock.advance(0.02); // e seconds after the failure
/// assert_eq!(fake.0.get(), 1);
/// ```
pub struct ReconnectingClientFactory<F: Factory> {
    inner: F,
    clock: Rc<dyn ReactorTime>,
    backoff: Backoff,
    delay: Cell<f64>,
    retries: Cell<u32>,
    continue_trying: Cell<bool>,
    connector: RefCell<Option<Rc<dyn Connectable>>>,
    call: RefCell<Option<DelayedCall>>,
    rng: Cell<u64>,
}

impl<F: Factory> ReconnectingClientFactory<F> {
    /// Wraps `factory`, scheduling retries on `clock`, with Twisted's default back-off.
    pub fn new(factory: F, clock: impl ReactorTime + 'static) -> Self {
        let backoff = Backoff::default();
        ReconnectingClientFactory {
            inner: factory,
            clock: Rc::new(clock),
            backoff,
            delay: Cell::new(backoff.initial_delay),
            retries: Cell::new(0),
            continue_trying: Cell::new(true),
            connector: RefCell::new(None),
            call: RefCell::new(None),
            rng: Cell::new(0x9E37_79B9_7F4A_7C15),
        }
    }

    /// Sets the back-off parameters (and resets the delay to the new initial delay).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self.delay.set(backoff.initial_delay);
        self
    }

    /// Seeds the jitter's random numbers (for reproducible tests).
    pub fn with_seed(self, seed: u64) -> Self {
        self.rng.set(seed.max(1));
        self
    }

    /// The wrapped factory.
    pub fn factory(&self) -> &F {
        &self.inner
    }

    /// The delay the next retry would be based on.
    pub fn delay(&self) -> f64 {
        self.delay.get()
    }

    /// Retries so far since the last reset.
    pub fn retries(&self) -> u32 {
        self.retries.get()
    }

    /// True while it keeps retrying.
    pub fn continue_trying(&self) -> bool {
        self.continue_trying.get()
    }

    /// Call after a successful connection: back to the initial delay, zero retries, trying.
    pub fn reset_delay(&self) {
        self.delay.set(self.backoff.initial_delay);
        self.retries.set(0);
        self.continue_trying.set(true);
    }

    /// Stops retrying: cancels a pending retry and stops an attempt in progress.
    pub fn stop_trying(&self) {
        let call = self.call.borrow_mut().take();
        if let Some(c) = call {
            let _ = c.cancel();
        }
        self.continue_trying.set(false);
        let connector = self.connector.borrow().clone();
        if let Some(c) = connector {
            c.stop_connecting();
        }
    }

    /// The failure hook, for any [`Connectable`].
    pub fn connection_failed(&self, connector: Rc<dyn Connectable>, reason: Failure) {
        if self.continue_trying.get() {
            *self.connector.borrow_mut() = Some(connector.clone());
            log::info!(target: "twistor::protocol", "connection failed: {reason}; will retry");
            self.retry(connector);
        }
    }

    /// The connection-lost hook, for any [`Connectable`].
    pub fn connection_lost(&self, connector: Rc<dyn Connectable>, reason: Failure) {
        if self.continue_trying.get() {
            *self.connector.borrow_mut() = Some(connector.clone());
            log::info!(target: "twistor::protocol", "connection lost: {reason}; will retry");
            self.retry(connector);
        }
    }

    fn retry(&self, connector: Rc<dyn Connectable>) {
        if !self.continue_trying.get() {
            return;
        }
        self.retries.set(self.retries.get() + 1);
        if let Some(max) = self.backoff.max_retries
            && self.retries.get() > max
        {
            log::info!(target: "twistor::protocol", "abandoning after {max} retries");
            return;
        }
        let mut delay = (self.delay.get() * self.backoff.factor).min(self.backoff.max_delay);
        self.delay.set(delay);
        if self.backoff.jitter > 0.0 {
            delay = (delay + self.gaussian() * delay * self.backoff.jitter).max(0.0);
        }
        let call = self
            .clock
            .call_later_boxed(delay, Box::new(move || connector.connect()));
        *self.call.borrow_mut() = Some(call);
    }

    /// A standard normal sample (xorshift64* and Box-Muller; no dependency).
    fn gaussian(&self) -> f64 {
        let next = || {
            let mut x = self.rng.get();
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.rng.set(x);
            ((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 1.0) / (1u64 << 53) as f64
        };
        let (u1, u2) = (next(), next());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

impl<F: Factory> Factory for ReconnectingClientFactory<F> {
    type Protocol = F::Protocol;
    fn build_protocol(&self, addr: &Address) -> Option<F::Protocol> {
        self.inner.build_protocol(addr)
    }
    fn start_factory(&self) {
        self.inner.start_factory()
    }
    fn stop_factory(&self) {
        self.inner.stop_factory()
    }
}

impl<F: Factory> ClientFactory for ReconnectingClientFactory<F> {
    fn started_connecting(&self, connector: &Rc<dyn Connector>) {
        *self.connector.borrow_mut() = Some(Rc::new(connector.clone()));
    }
    fn client_connection_failed(&self, connector: &Rc<dyn Connector>, reason: Failure) {
        self.connection_failed(Rc::new(connector.clone()), reason)
    }
    fn client_connection_lost(&self, connector: &Rc<dyn Connector>, reason: Failure) {
        self.connection_lost(Rc::new(connector.clone()), reason)
    }
}
