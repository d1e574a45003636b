//! Time: the [`ReactorTime`] trait, [`DelayedCall`] handles and the [`TimerQueue`] behind them.
//!
//! Twisted's `IReactorTime` is the one interface for "something that tells time and schedules
//! calls". Here it is the [`ReactorTime`] trait, implemented by the deterministic test clock
//! [`Clock`](crate::task::Clock) (and by the real reactor), so code that takes
//! `&impl ReactorTime` or `Rc<dyn ReactorTime>` — LoopingCall, `defer_later`, protocol
//! timeouts — is testable without real time.
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use twistor::task::Clock;
//! use twistor::time::ReactorTime;
//!
//! // A function that only knows "some clock".
//! fn remind(time: &dyn ReactorTime, fired: Rc<Cell<bool>>) {
//!     time.call_later_boxed(5.0, Box::new(move || fired.set(true)));
//! }
//!
//! let clock = Clock::new();
//! let fired = Rc::new(Cell::new(false));
//! remind(&clock, fired.clone());
//! clock.advance(4.9);
//! assert!(!fired.get());
//! clock.advance(0.1);
//! assert!(fired.get());
//! ```

mod queue;

use std::rc::Rc;

pub use queue::{DelayedCall, TimerQueue};

/// Something that tells time and schedules calls: Twisted's `IReactorTime`.
///
/// Implemented by [`Clock`](crate::task::Clock) and by the real reactor; blanket
/// implementations for `&T`, `Box<T>` and `Rc<T>` make `Rc<dyn ReactorTime>` and
/// `&dyn ReactorTime` work wherever a `ReactorTime` is expected.
///
/// ```
/// use std::rc::Rc;
/// use twistor::task::Clock;
/// use twistor::time::ReactorTime;
///
/// let clock = Clock::new();
/// let time: Rc<dyn ReactorTime> = Rc::new(clock.clone());
/// let call = time.call_later(2.0, || println!("two seconds later"));
/// assert_eq!(call.get_time(), 2.0);
/// assert_eq!(time.get_delayed_calls(), vec![call]);
/// ```
#[doc(alias = "IReactorTime")]
pub trait ReactorTime {
    /// The current time, in seconds (virtual time for a [`Clock`](crate::task::Clock)).
    ///
    /// ```
    /// use twistor::task::Clock;
    /// use twistor::time::ReactorTime;
    ///
    /// let clock = Clock::new();
    /// clock.advance(1.5);
    /// assert_eq!(ReactorTime::seconds(&clock), 1.5);
    /// ```
    fn seconds(&self) -> f64;

    /// Schedules `f` to run once, `delay` seconds from now; the object-safe form of
    /// [`call_later`](ReactorTime::call_later).
    ///
    /// A negative or NaN `delay` is clamped to 0 with a warning in the log (Twisted asserts).
    ///
    /// ```
    /// use twistor::task::Clock;
    /// use twistor::time::ReactorTime;
    ///
    /// let clock = Clock::new();
    /// let call = clock.call_later_boxed(3.0, Box::new(|| ()));
    /// assert_eq!(call.get_time(), 3.0);
    /// ```
    fn call_later_boxed(&self, delay: f64, f: Box<dyn FnOnce()>) -> DelayedCall;

    /// The calls that are scheduled and neither cancelled nor called, sorted by time, then by
    /// the order they were scheduled in.
    ///
    /// ```
    /// use twistor::task::Clock;
    /// use twistor::time::ReactorTime;
    ///
    /// let clock = Clock::new();
    /// let late = clock.call_later(2.0, || ());
    /// let early = clock.call_later(1.0, || ());
    /// assert_eq!(ReactorTime::get_delayed_calls(&clock), vec![early, late]);
    /// ```
    #[doc(alias = "getDelayedCalls")]
    fn get_delayed_calls(&self) -> Vec<DelayedCall>;

    /// Schedules `f` to run once, `delay` seconds from now, and returns a handle that can
    /// cancel, reset or delay it. Twisted's `callLater`.
    ///
    /// A negative or NaN `delay` is clamped to 0 with a warning in the log.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use twistor::task::Clock;
    /// use twistor::time::ReactorTime;
    ///
    /// fn schedule(time: &impl ReactorTime, hits: Rc<Cell<u32>>) {
    ///     time.call_later(1.0, move || hits.set(hits.get() + 1));
    /// }
    /// let clock = Clock::new();
    /// let hits = Rc::new(Cell::new(0));
    /// schedule(&clock, hits.clone());
    /// clock.advance(1.0);
    /// assert_eq!(hits.get(), 1);
    /// ```
    #[doc(alias = "callLater")]
    fn call_later<F: FnOnce() + 'static>(&self, delay: f64, f: F) -> DelayedCall
    where
        Self: Sized,
    {
        self.call_later_boxed(delay, Box::new(f))
    }
}

/// Pointers to a time source are time sources (`&T`, `Rc<T>`, `Box<T>`).
macro_rules! forward_reactor_time {
    ($($ptr:ty),*) => {$(
        impl<T: ReactorTime + ?Sized> ReactorTime for $ptr {
            fn seconds(&self) -> f64 {
                (**self).seconds()
            }
            fn call_later_boxed(&self, delay: f64, f: Box<dyn FnOnce()>) -> DelayedCall {
                (**self).call_later_boxed(delay, f)
            }
            fn get_delayed_calls(&self) -> Vec<DelayedCall> {
                (**self).get_delayed_calls()
            }
        }
    )*};
}

forward_reactor_time!(&T, Rc<T>, Box<T>);

/// Why [`DelayedCall::cancel`], [`reset`](DelayedCall::reset) or
/// [`delay`](DelayedCall::delay) refused: Twisted's `AlreadyCalled` and `AlreadyCancelled`.
///
/// ```
/// use twistor::task::Clock;
/// use twistor::time::DelayedCallError;
///
/// let clock = Clock::new();
/// let call = clock.call_later(1.0, || ());
/// call.cancel().unwrap();
/// assert_eq!(call.cancel(), Err(DelayedCallError::AlreadyCancelled));
/// assert_eq!(
///     DelayedCallError::AlreadyCancelled.to_string(),
///     "the delayed call was already cancelled"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum DelayedCallError {
    /// The call has already run (or is running right now: a call is marked called just
    /// before its function starts).
    #[error("the delayed call was already called")]
    AlreadyCalled,
    /// The call was cancelled before.
    #[error("the delayed call was already cancelled")]
    AlreadyCancelled,
}

/// Clamps a `call_later` delay: negative and NaN delays become 0, with a warning.
pub(crate) fn clamp_delay(delay: f64) -> f64 {
    if delay >= 0.0 {
        delay
    } else {
        log::warn!(target: "twistor::time", "call_later: delay {delay} is negative or NaN, using 0");
        0.0
    }
}
