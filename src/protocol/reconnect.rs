//! `ReconnectingClientFactory`: reconnect with exponential back-off (Twisted's).
//!
//! After a failed attempt or a lost connection, while still trying: `retries += 1`; give up
//! past `max_retries`; with jitter, `delay` is first drawn from a normal distribution around
//! itself (`delay * jitter` standard deviation, kept as the new delay); `connector.connect()` is
//! scheduled after `delay` on the given clock; only then `delay = min(delay * factor,
//! max_delay)`. So the first retry waits `initial_delay` (1 s by default), the next ones about
//! e, e², ... seconds, up to `max_delay`.
//!
//! The jitter's random numbers come from a generator seeded from entropy, so clients started
//! together (in one process or many) spread their retries instead of hammering a recovering
//! server in lockstep; [`with_seed`](ReconnectingClientFactory::with_seed) makes them
//! reproducible for tests.
//!
//! The delay is never reset by itself: call
//! [`reset_delay`](ReconnectingClientFactory::reset_delay) once a connection works (e.g. in
//! `connection_made`). `stop_trying` cancels a pending retry and stops an attempt in progress.

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
    #[doc(alias = "stopConnecting")]
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

/// A [`Backoff`] parameter that is NaN or negative (or an infinite `initial_delay`).
///
/// ```
/// use twistor::protocol::reconnect::BadBackoff;
/// let e = BadBackoff { field: "jitter", value: -1.0 };
/// assert_eq!(e.to_string(), "back-off jitter must be >= 0, not -1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("back-off {field} must be >= 0, not {value}")]
pub struct BadBackoff {
    /// The parameter's name.
    pub field: &'static str,
    /// The refused value.
    pub value: f64,
}

impl Backoff {
    fn check(&self) -> Result<(), BadBackoff> {
        let fields = [
            ("max_delay", self.max_delay, true),
            ("initial_delay", self.initial_delay, false),
            ("factor", self.factor, true),
            ("jitter", self.jitter, false),
        ];
        for (field, value, may_be_infinite) in fields {
            if value.is_nan() || value < 0.0 || (value.is_infinite() && !may_be_infinite) {
                return Err(BadBackoff { field, value });
            }
        }
        Ok(())
    }
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
///     .with_backoff(Backoff { jitter: 0.0, ..Backoff::default() })?;
/// let fake = Rc::new(Fake(Default::default()));
/// f.connection_failed(fake.clone(), Failure::msg("refused"));
/// clock.advance(0.99);
/// assert_eq!(fake.0.get(), 0);
/// clock.advance(0.01); // the initial delay after the failure
/// assert_eq!(fake.0.get(), 1);
/// assert_eq!(f.delay(), std::f64::consts::E); // the next retry waits e seconds
/// # Ok::<(), twistor::protocol::reconnect::BadBackoff>(())
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
    rng: RefCell<fastrand::Rng>,
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
            rng: RefCell::new(fastrand::Rng::new()),
        }
    }

    /// Sets the back-off parameters (and resets the delay to the new initial delay). A NaN
    /// or negative parameter is refused ([`BadBackoff`]); `max_delay` may be infinite.
    ///
    /// ```
    /// use twistor::protocol::{for_protocol, Context, Protocol};
    /// use twistor::protocol::reconnect::{Backoff, ReconnectingClientFactory};
    /// use twistor::Clock;
    ///
    /// struct P;
    /// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// let f = ReconnectingClientFactory::new(for_protocol(|| P), Clock::new());
    /// let err = f.with_backoff(Backoff { factor: f64::NAN, ..Backoff::default() }).err();
    /// assert_eq!(err.map(|e| e.to_string()).as_deref(), Some("back-off factor must be >= 0, not NaN"));
    /// ```
    pub fn with_backoff(mut self, backoff: Backoff) -> Result<Self, BadBackoff> {
        backoff.check()?;
        self.backoff = backoff;
        self.delay.set(backoff.initial_delay);
        Ok(self)
    }

    /// Seeds the jitter's random numbers, for reproducible tests (by default they are seeded
    /// from entropy, so that clients do not retry in lockstep).
    ///
    /// ```
    /// use std::rc::Rc;
    /// use twistor::protocol::{for_protocol, Context, Protocol};
    /// use twistor::protocol::reconnect::{Connectable, ReconnectingClientFactory};
    /// use twistor::{Clock, Failure};
    ///
    /// struct P;
    /// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// struct Fake;
    /// impl Connectable for Fake { fn connect(&self) {} fn stop_connecting(&self) {} }
    ///
    /// let delays: Vec<f64> = (0..2)
    ///     .map(|_| {
    ///         let f = ReconnectingClientFactory::new(for_protocol(|| P), Clock::new()).with_seed(7);
    ///         f.connection_failed(Rc::new(Fake), Failure::msg("refused"));
    ///         f.delay()
    ///     })
    ///     .collect();
    /// assert_eq!(delays[0], delays[1]);
    /// ```
    pub fn with_seed(self, seed: u64) -> Self {
        *self.rng.borrow_mut() = fastrand::Rng::with_seed(seed);
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
    #[doc(alias = "continueTrying")]
    pub fn continue_trying(&self) -> bool {
        self.continue_trying.get()
    }

    /// Call after a successful connection: back to the initial delay, zero retries, trying.
    #[doc(alias = "resetDelay")]
    pub fn reset_delay(&self) {
        self.delay.set(self.backoff.initial_delay);
        self.retries.set(0);
        self.continue_trying.set(true);
    }

    /// Stops retrying: cancels a pending retry and stops an attempt in progress.
    #[doc(alias = "stopTrying")]
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
    #[doc(alias = "clientConnectionFailed")]
    pub fn connection_failed(&self, connector: Rc<dyn Connectable>, reason: Failure) {
        if self.continue_trying.get() {
            *self.connector.borrow_mut() = Some(connector.clone());
            log::info!(target: "twistor::protocol", "connection failed: {reason}; will retry");
            self.retry(connector);
        }
    }

    /// The connection-lost hook, for any [`Connectable`].
    #[doc(alias = "clientConnectionLost")]
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
        let mut delay = self.delay.get();
        if self.backoff.jitter > 0.0 {
            delay += self.gaussian() * delay * self.backoff.jitter;
            self.delay.set(delay);
        }
        // A normal draw can come out negative: retry at once then.
        let call = self
            .clock
            .call_later_boxed(delay.max(0.0), Box::new(move || connector.connect()));
        *self.call.borrow_mut() = Some(call);
        // The back-off grows after scheduling, so the first retry waits `initial_delay`.
        self.delay
            .set((delay * self.backoff.factor).min(self.backoff.max_delay));
    }

    /// A standard normal sample (Box-Muller).
    fn gaussian(&self) -> f64 {
        let mut rng = self.rng.borrow_mut();
        // `1 - f64()` is in (0, 1]: the logarithm stays finite.
        let (u1, u2) = (1.0 - rng.f64(), rng.f64());
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
