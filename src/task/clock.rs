//! `Clock`: Twisted's deterministic fake `IReactorTime` (`twisted.internet.task.Clock`).

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;

use crate::time::{DelayedCall, ReactorTime, TimerQueue};

/// A deterministic clock for tests: time starts at 0 and moves only when
/// [`advance`](Clock::advance) or [`pump`](Clock::pump) is called; Twisted's `task.Clock`.
///
/// It implements [`ReactorTime`], so anything written against that trait (timeouts, looping
/// calls, `defer_later`) can be driven step by step. Like Twisted's `Clock`:
/// * calls with equal deadlines run in the order they were scheduled;
/// * calls that become due *during* an `advance` (a `call_later(0.0, ..)` made by a running
///   call, say) run in that same `advance`;
/// * a panic in a call propagates out of `advance` (Twisted lets the exception out); the call
///   that panicked is already marked called and the clock stays usable.
///
/// `Clock` is a cheap handle: clones share the same time and calls. It is single-threaded.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use twistor::task::Clock;
///
/// let clock = Clock::new();
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let (c, l) = (clock.clone(), log.clone());
/// clock.call_later(1.0, move || {
///     l.borrow_mut().push(("first", c.seconds()));
///     let l2 = l.clone();
///     let c2 = c.clone();
///     c.call_later(0.0, move || l2.borrow_mut().push(("second", c2.seconds())));
/// });
/// clock.advance(1.0);
/// assert_eq!(*log.borrow(), [("first", 1.0), ("second", 1.0)]);
/// ```
#[derive(Clone)]
pub struct Clock {
    inner: Rc<ClockInner>,
}

/// What the `Clock` handles share.
struct ClockInner {
    /// The virtual time; shared with the queue's "now" closure (for `DelayedCall::reset`).
    now: Rc<Cell<f64>>,
    /// The pending calls.
    queue: TimerQueue,
}

impl Clock {
    /// Creates a clock at time 0 with no pending calls.
    ///
    /// ```
    /// use twistor::task::Clock;
    ///
    /// let clock = Clock::new();
    /// assert_eq!(clock.seconds(), 0.0);
    /// assert!(clock.get_delayed_calls().is_empty());
    /// ```
    pub fn new() -> Clock {
        let now = Rc::new(Cell::new(0.0));
        let n = now.clone();
        Clock {
            inner: Rc::new(ClockInner {
                now,
                queue: TimerQueue::new(move || n.get()),
            }),
        }
    }

    /// The current virtual time, in seconds.
    ///
    /// ```
    /// use twistor::task::Clock;
    ///
    /// let clock = Clock::new();
    /// clock.advance(2.5);
    /// assert_eq!(clock.seconds(), 2.5);
    /// ```
    pub fn seconds(&self) -> f64 {
        self.inner.now.get()
    }

    /// Schedules `f` to run once, `delay` seconds from now; returns its [`DelayedCall`].
    /// A negative or NaN `delay` is clamped to 0 with a warning in the log.
    ///
    /// ```
    /// use twistor::task::Clock;
    ///
    /// let clock = Clock::new();
    /// let call = clock.call_later(1.0, || println!("later"));
    /// assert_eq!(call.get_time(), 1.0);
    /// assert!(call.active());
    /// ```
    #[doc(alias = "callLater")]
    pub fn call_later<F: FnOnce() + 'static>(&self, delay: f64, f: F) -> DelayedCall {
        self.inner.queue.schedule_after(delay, Box::new(f))
    }

    /// Moves time forward by `amount` seconds, then runs, one at a time and earliest first,
    /// every call whose deadline is at or before the (possibly further advanced) current time,
    /// including calls scheduled or moved sooner while it runs.
    ///
    /// Panics from a call propagate to the caller; calls not yet run stay scheduled. As in
    /// Twisted, a negative `amount` moves time backwards (nothing runs); a NaN `amount` is
    /// ignored with a warning.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use twistor::task::Clock;
    ///
    /// let clock = Clock::new();
    /// let hits = Rc::new(Cell::new(0));
    /// for delay in [1.0, 2.0, 3.0] {
    ///     let h = hits.clone();
    ///     clock.call_later(delay, move || h.set(h.get() + 1));
    /// }
    /// clock.advance(2.0);
    /// assert_eq!(hits.get(), 2);
    /// ```
    pub fn advance(&self, amount: f64) {
        if amount.is_nan() {
            log::warn!("Clock::advance: NaN amount ignored");
            return;
        }
        let inner = &self.inner;
        inner.now.set(inner.now.get() + amount);
        // Re-read `now` each time: a call may itself advance this clock.
        while let Some((_call, f)) = inner.queue.pop_due(inner.now.get()) {
            f();
        }
    }

    /// Calls [`advance`](Clock::advance) with each amount in turn; Twisted's `pump`.
    ///
    /// ```
    /// use twistor::task::Clock;
    ///
    /// let clock = Clock::new();
    /// clock.pump(&[1.0, 0.5, 0.25]);
    /// assert_eq!(clock.seconds(), 1.75);
    /// ```
    pub fn pump(&self, timings: &[f64]) {
        for &amount in timings {
            self.advance(amount);
        }
    }

    /// The pending calls (neither called nor cancelled), sorted by deadline, then by
    /// scheduling order; Twisted's `getDelayedCalls` (and `clock.calls`).
    ///
    /// ```
    /// use twistor::task::Clock;
    ///
    /// let clock = Clock::new();
    /// let a = clock.call_later(2.0, || ());
    /// let b = clock.call_later(1.0, || ());
    /// let c = clock.call_later(3.0, || ());
    /// c.cancel().unwrap();
    /// assert_eq!(clock.get_delayed_calls(), vec![b, a]);
    /// ```
    #[doc(alias = "getDelayedCalls")]
    pub fn get_delayed_calls(&self) -> Vec<DelayedCall> {
        self.inner.queue.active_calls()
    }
}

impl Default for Clock {
    /// Same as [`Clock::new`].
    fn default() -> Clock {
        Clock::new()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clock")
            .field("seconds", &self.seconds())
            .field("pending", &self.inner.queue.len_active())
            .finish()
    }
}

impl ReactorTime for Clock {
    fn seconds(&self) -> f64 {
        Clock::seconds(self)
    }

    fn call_later_boxed(&self, delay: f64, f: Box<dyn FnOnce()>) -> DelayedCall {
        self.inner.queue.schedule_after(delay, f)
    }

    fn get_delayed_calls(&self) -> Vec<DelayedCall> {
        Clock::get_delayed_calls(self)
    }
}
