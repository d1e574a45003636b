//! Idle timeouts: [`IdleTimeout`] (Twisted's `TimeoutMixin`) inside any protocol or framing
//! handler, and [`TimeoutFactory`] around a whole factory.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use super::wrapping::{WrapperPolicy, WrapperTransport, WrappingFactory};
use crate::Failure;
use crate::protocol::{Context, Factory};
use crate::protocols::context::ProtocolContext;
use crate::task::BadDuration;
use crate::time::{DelayedCall, ReactorTime};

/// What happens when an [`IdleTimeout`] expires (Twisted's `timeoutConnection`), for the
/// owner of the callback context `C`: a protocol (`C` is its [`Context`], the default) or a
/// framing receiver's handler (`C` is its `LineContext`, `StringContext`...).
///
/// ```
/// use twistor::protocols::basic::{LineContext, LineHandler};
/// use twistor::protocols::policies::TimeoutProtocol;
///
/// struct Chat;
/// impl LineHandler for Chat {
///     fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {}
/// }
/// impl TimeoutProtocol<LineContext<Self>> for Chat {
///     fn timeout_connection(&mut self, cx: &LineContext<Self>) {
///         cx.transport().abort_connection();
///     }
/// }
/// ```
pub trait TimeoutProtocol<C: ProtocolContext<Owner = Self> = Context<Self>>:
    Sized + 'static
{
    /// The timeout expired: closes the connection (`lose_connection`) by default.
    #[doc(alias = "timeoutConnection")]
    fn timeout_connection(&mut self, cx: &C) {
        cx.transport().lose_connection();
    }
}

/// Twisted's `TimeoutMixin`, as a value a protocol (or a framing handler) owns: `set_timeout`
/// in `connection_made`, `reset_timeout` on traffic, and the owner's
/// [`TimeoutProtocol::timeout_connection`] runs when the period passes with no reset.
///
/// Twisted's
///
/// ```python
/// class Chat(LineReceiver, TimeoutMixin):
///     def connectionMade(self): self.setTimeout(60)
///     def lineReceived(self, line): self.resetTimeout(); self.sendLine(line)
///     def timeoutConnection(self): self.transport.abortConnection()
/// ```
///
/// is, with a [`LineReceiver`](crate::protocols::basic::LineReceiver):
///
/// ```
/// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
/// use twistor::protocols::policies::{IdleTimeout, TimeoutProtocol};
/// use twistor::testing::StringTransport;
/// use twistor::Clock;
///
/// struct Chat { timeout: IdleTimeout }
/// impl LineHandler for Chat {
///     fn connection_made(&mut self, cx: &LineContext<Self>) { self.timeout.set_timeout(Some(60.0), cx).ok(); }
///     fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) { self.timeout.reset_timeout(); cx.send_line(line) }
/// }
/// impl TimeoutProtocol<LineContext<Self>> for Chat {
///     fn timeout_connection(&mut self, cx: &LineContext<Self>) { cx.transport().abort_connection() }
/// }
///
/// let clock = Clock::new();
/// let st = StringTransport::new();
/// st.connect(LineReceiver::new(Chat { timeout: IdleTimeout::new(clock.clone()) }));
/// clock.advance(59.0);
/// st.deliver(b"hi\r\n");
/// clock.advance(59.0);
/// assert!(!st.disconnecting());
/// clock.advance(1.0);
/// assert!(st.disconnecting());
/// ```
///
/// and with a plain protocol the context is the protocol's own:
///
/// ```
/// use twistor::protocol::{Context, Protocol};
/// use twistor::protocols::policies::{IdleTimeout, TimeoutProtocol};
/// use twistor::testing::StringTransport;
/// use twistor::Clock;
///
/// struct Idle { timeout: IdleTimeout }
/// impl Protocol for Idle {
///     fn connection_made(&mut self, cx: &Context<Self>) { self.timeout.set_timeout(Some(3.0), cx).ok(); }
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
#[doc(alias = "TimeoutMixin")]
pub struct IdleTimeout {
    clock: Rc<dyn ReactorTime>,
    period: Option<f64>,
    call: Option<DelayedCall>,
}

impl IdleTimeout {
    /// No timeout yet; timers go on `clock`.
    ///
    /// ```
    /// use twistor::protocols::policies::IdleTimeout;
    /// assert_eq!(IdleTimeout::new(twistor::Clock::new()).period(), None);
    /// ```
    pub fn new(clock: impl ReactorTime + 'static) -> IdleTimeout {
        IdleTimeout {
            clock: Rc::new(clock),
            period: None,
            call: None,
        }
    }

    /// Sets (or with `None` cancels) the timeout, and returns the previous period (Twisted's
    /// `setTimeout`). `cx` is the callback context of the owner, whose
    /// [`TimeoutProtocol::timeout_connection`] runs on expiry. A negative, NaN or infinite
    /// period is refused ([`BadDuration`]) and changes nothing.
    ///
    /// ```
    /// use twistor::protocol::{Context, Protocol};
    /// use twistor::protocols::policies::{IdleTimeout, TimeoutProtocol};
    /// use twistor::testing::StringTransport;
    /// use twistor::Clock;
    ///
    /// struct P(IdleTimeout);
    /// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// impl TimeoutProtocol for P {}
    /// let st = StringTransport::new();
    /// let h = st.connect(P(IdleTimeout::new(Clock::new())));
    /// h.with(|p, cx| {
    ///     assert_eq!(p.0.set_timeout(Some(5.0), cx), Ok(None));
    ///     assert_eq!(p.0.set_timeout(Some(f64::NAN), cx).map_err(|e| e.to_string()),
    ///         Err("timeout must be a finite number of seconds >= 0, not NaN".to_string()));
    ///     assert_eq!(p.0.set_timeout(None, cx), Ok(Some(5.0)));
    /// });
    /// ```
    #[doc(alias = "setTimeout")]
    pub fn set_timeout<C>(
        &mut self,
        period: Option<f64>,
        cx: &C,
    ) -> Result<Option<f64>, BadDuration>
    where
        C: ProtocolContext,
        C::Owner: TimeoutProtocol<C>,
    {
        if let Some(p) = period {
            BadDuration::check("timeout", p)?;
        }
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
                let owner = cx.reach();
                self.call = Some(self.clock.call_later_boxed(
                    p,
                    Box::new(move || {
                        owner.with(|o: &mut C::Owner, cx: &C| o.timeout_connection(cx));
                    }),
                ));
            }
            (None, None) => {}
        }
        Ok(previous)
    }

    /// Restarts the timer (call it on traffic); nothing if there is no running timer
    /// (Twisted's `resetTimeout`).
    ///
    /// ```
    /// use twistor::protocols::policies::IdleTimeout;
    /// let mut t = IdleTimeout::new(twistor::Clock::new());
    /// t.reset_timeout(); // no timer: nothing happens
    /// ```
    #[doc(alias = "resetTimeout")]
    pub fn reset_timeout(&mut self) {
        if let (Some(p), Some(c)) = (self.period, self.call.as_ref())
            && c.active()
        {
            let _ = c.reset(p);
        }
    }

    /// The current period.
    #[doc(alias = "timeOut")]
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

/// Closes a connection after `period` seconds with no reads or writes (Twisted's
/// `TimeoutFactory`'s protocol); see [`timeout_factory`].
///
/// ```
/// use twistor::protocol::{for_protocol, Context, Factory, Protocol};
/// use twistor::protocols::policies::timeout_factory;
/// use twistor::testing::StringTransport;
/// use twistor::transport::Address;
/// use twistor::Clock;
///
/// struct P;
/// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let clock = Clock::new();
/// let f = timeout_factory(for_protocol(|| P), clock.clone(), 2.0).unwrap();
/// let st = StringTransport::new();
/// st.connect(f.build_protocol(&Address::Memory("peer".into())).unwrap());
/// clock.advance(1.5);
/// st.deliver(b"x"); // traffic: the idle period starts again
/// clock.advance(1.5);
/// assert!(!st.disconnecting());
/// clock.advance(0.5);
/// assert!(st.disconnecting());
/// ```
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
    fn connection_lost(&self, w: &WrapperTransport, _reason: &Failure) {
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

/// Wraps `factory` so its connections close after `period` idle seconds on `clock` (Twisted's
/// `TimeoutFactory`, whose default is 1800 s). A negative, NaN or infinite period is refused.
///
/// ```
/// use twistor::protocols::policies::timeout_factory;
/// use twistor::protocol::{for_protocol, Context, Protocol};
/// use twistor::Clock;
/// struct P;
/// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let _f = timeout_factory(for_protocol(|| P), Clock::new(), 1800.0).unwrap();
/// assert!(timeout_factory(for_protocol(|| P), Clock::new(), -1.0).is_err());
/// ```
#[doc(alias = "TimeoutFactory")]
pub fn timeout_factory<F: Factory>(
    factory: F,
    clock: impl ReactorTime + 'static,
    period: f64,
) -> Result<TimeoutFactory<F>, BadDuration> {
    BadDuration::check("timeout", period)?;
    Ok(WrappingFactory::new(
        factory,
        IdlePolicy {
            clock: Rc::new(clock),
            period,
            timers: RefCell::new(Vec::new()),
        },
    ))
}
