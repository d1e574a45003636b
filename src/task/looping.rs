//! `LoopingCall`: call a function every `interval` seconds (Twisted's `task.LoopingCall`).
//!
//! # Scheduling: skipped intervals, no catch-up
//!
//! `start(interval)` (or [`start_with`](LoopingCall::start_with) and [`LoopingOptions`])
//! records `starttime = clock.seconds()`. Calls are due on the
//! *boundaries* `starttime + k * interval`. After a call completes (for a function that returns
//! a [`Deferred`], when that Deferred fires), the next call is scheduled on the next boundary
//! **strictly in the future**, measured from the time the call completed (`when`):
//!
//! ```text
//! until_next = interval - ((when - starttime) mod interval)
//! if when + until_next == when { until_next = interval }   // too small to move a float
//! ```
//!
//! So when the clock jumps (a late reactor, a slow call, a slow Deferred), the boundaries that
//! were missed are skipped: the function runs once, late, and is never called several times in
//! a row to catch up. With an interval of 0 every call is scheduled with `call_later(0)`.
//!
//! # Counting skipped intervals
//!
//! [`LoopingCall::with_count`] passes the function the number of boundaries crossed since its
//! previous call: `floor((now - starttime) / interval) - floor((last - starttime) / interval)`
//! (truncation towards zero, as Python's `int()`), where `last` is the time of the previous
//! call, or `starttime - interval` for the first call of a `now = true` start (so it counts 1),
//! or `starttime` for a delayed start. When that count is 0 (a call that runs before the
//! boundary it was meant for, which float rounding can cause) the function is **not called**
//! and the loop goes on as if it had returned `()`. With an interval of 0 the count is always 1.
//!
//! # Completion and the start Deferred
//!
//! `start` returns a `Deferred<LoopingCall>`:
//! * `stop()` while a call is *scheduled* cancels it and fires that Deferred at once;
//! * `stop()` while the function runs, or while its Deferred is pending, makes the Deferred fire
//!   when that call completes (no further call is scheduled);
//! * a failure — an `Err`, a panic, or a failed Deferred — sets `running()` to false and
//!   errbacks the start Deferred with it, even if the function stopped the loop first.
//!
//! # Re-entrancy
//!
//! No `RefCell` borrow is held while user code runs. The function may call `stop`, `reset`,
//! `set_interval`, even `start_with(.., LoopingOptions { now: false })` on
//! its own `LoopingCall`, or advance the clock. The
//! function is taken out of its cell while it runs, so it is never called re-entrantly:
//! a start with `now` from inside the function is refused with
//! [`LoopingCallError::Reentrant`], and a scheduled call that comes due while the function is
//! still running (it advanced the clock after restarting its own loop) fails that run with
//! the same error.
//!
//! Each `start` begins a new *run* (a generation number). If a run is stopped while its call is
//! in flight and the loop is started again before that call completes, the old call, when it
//! completes, fires the *old* run's start Deferred and does not schedule anything; the new run
//! is unaffected. (Twisted loses the old Deferred and ends up with two scheduled calls.)
//!
//! # Ownership
//!
//! A scheduled call holds the `LoopingCall` strongly, as Twisted's reactor does: a started loop
//! keeps running after every handle is dropped, until it is stopped or fails.

use std::cell::RefCell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use super::step::{Step, StepOutcome};
use crate::time::{DelayedCall, ReactorTime};
use crate::{Deferred, Failure};

/// How [`LoopingCall::start_with`] starts a loop. The default is Twisted's: the first call
/// runs at once.
///
/// ```
/// use twistor::task::LoopingOptions;
/// assert!(LoopingOptions::default().now);
/// let later = LoopingOptions { now: false };
/// assert!(!later.now);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopingOptions {
    /// Call the function at once (inside `start`), rather than one interval later.
    pub now: bool,
}

impl Default for LoopingOptions {
    fn default() -> Self {
        LoopingOptions { now: true }
    }
}

/// Why a [`LoopingCall`] method refused (Twisted asserts or raises `ValueError`).
///
/// ```
/// use twistor::task::{Clock, LoopingCall, LoopingCallError, LoopingOptions};
/// let lc = LoopingCall::new(Clock::new(), || ());
/// assert_eq!(lc.stop(), Err(LoopingCallError::NotRunning));
/// assert_eq!(
///     LoopingCallError::NotRunning.to_string(),
///     "tried to stop or reset a LoopingCall that was not running"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LoopingCallError {
    /// The interval was negative or NaN.
    #[error("interval must be >= 0 (got {0})")]
    BadInterval(f64),
    /// `start` on a loop that is running.
    #[error("tried to start an already running LoopingCall")]
    AlreadyRunning,
    /// `stop` or `reset` on a loop that is not running.
    #[error("tried to stop or reset a LoopingCall that was not running")]
    NotRunning,
    /// The function would have been called while it was already running (see the module docs).
    #[error("the LoopingCall function was called while it was still running")]
    Reentrant,
}

enum Func {
    Plain(Box<dyn FnMut() -> StepOutcome>),
    Counted(Box<dyn FnMut(u64) -> StepOutcome>),
}

struct State {
    running: bool,
    interval: Option<f64>,
    starttime: Option<f64>,
    /// The scheduled call, if any (`None` while the function runs or its Deferred is pending).
    call: Option<DelayedCall>,
    /// The current run's start Deferred; taken when it fires.
    deferred: Option<crate::Resolver<LoopingCall>>,
    /// Incremented by each `start`.
    generation: u64,
    /// Start Deferreds of earlier runs whose last call is still in flight.
    orphans: Vec<(u64, crate::Resolver<LoopingCall>)>,
    run_at_start: bool,
    /// `with_count`: when the function was last called.
    real_last_time: Option<f64>,
}

struct Inner {
    clock: Rc<dyn ReactorTime>,
    st: RefCell<State>,
    /// Taken out while it runs.
    func: RefCell<Option<Func>>,
}

/// Calls a function repeatedly, every `interval` seconds of a [`ReactorTime`]; Twisted's
/// `LoopingCall`.
///
/// * Calls are due on the boundaries `starttime + k * interval`. After a call completes, the
///   next one is scheduled on the next boundary *strictly in the future*: boundaries missed
///   because the clock jumped or a call (or its Deferred) was slow are skipped, never caught
///   up. [`with_count`](Self::with_count) tells the function how many boundaries passed.
/// * If the function returns a [`Deferred`], the next call is scheduled only once it fired.
/// * `stop()` fires the Deferred returned by `start` with this `LoopingCall`: at once if a
///   call is scheduled, else when the running call (or its Deferred) completes.
/// * A failure (`Err`, panic, failed Deferred) ends the loop and errbacks that Deferred.
/// * The function may call `stop`, `reset`, `set_interval` or a start without `now` on its own
///   loop; it is never called re-entrantly ([`LoopingCallError::Reentrant`]).
///
/// `LoopingCall` is a cheap handle (clones share the same loop); a scheduled call holds it,
/// so a started loop runs on without handles until it stops or fails. It never panics:
/// misuse returns a [`LoopingCallError`], and a panic in the function becomes a failure of the
/// loop.
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use twistor::task::{Clock, LoopingCall};
///
/// let clock = Clock::new();
/// let times = Rc::new(RefCell::new(Vec::new()));
/// let (c, t) = (clock.clone(), times.clone());
/// let lc = LoopingCall::new(clock.clone(), move || t.borrow_mut().push(c.seconds()));
/// let done = lc.start(1.0).unwrap();
/// clock.pump(&[0.5, 0.5, 3.2, 0.8]);
/// assert_eq!(*times.borrow(), [0.0, 1.0, 4.2, 5.0]); // 2.0 ran late at 4.2; 3.0, 4.0 skipped
/// lc.stop().unwrap();
/// assert!(twistor::testing::success_result_of(&done).ptr_eq(&lc));
/// assert!(clock.get_delayed_calls().is_empty());
/// ```
#[derive(Clone)]
pub struct LoopingCall {
    inner: Rc<Inner>,
}

impl LoopingCall {
    fn with_func(clock: impl ReactorTime + 'static, func: Func) -> LoopingCall {
        LoopingCall {
            inner: Rc::new(Inner {
                clock: Rc::new(clock),
                st: RefCell::new(State {
                    running: false,
                    interval: None,
                    starttime: None,
                    call: None,
                    deferred: None,
                    generation: 0,
                    orphans: Vec::new(),
                    run_at_start: false,
                    real_last_time: None,
                }),
                func: RefCell::new(Some(func)),
            }),
        }
    }

    /// A loop that calls `f` on `clock` once started. `f` returns a [`Step`]: `()`,
    /// `Result<(), Failure>` or `Deferred<()>`.
    ///
    /// ```
    /// use twistor::task::{Clock, LoopingCall};
    /// let lc = LoopingCall::new(Clock::new(), || Ok(()));
    /// assert!(!lc.running());
    /// ```
    pub fn new<R: Step>(
        clock: impl ReactorTime + 'static,
        mut f: impl FnMut() -> R + 'static,
    ) -> LoopingCall {
        Self::with_func(clock, Func::Plain(Box::new(move || f().into_outcome())))
    }

    /// A loop whose function receives the number of intervals that elapsed since its previous
    /// call: 1 normally, more after skipped intervals, always 1 with an interval of 0. It is
    /// never called with 0 (Twisted's `LoopingCall.withCount`).
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// use twistor::task::{Clock, LoopingCall};
    ///
    /// let clock = Clock::new();
    /// let seen = Rc::new(RefCell::new(Vec::new()));
    /// let (c, s) = (clock.clone(), seen.clone());
    /// let lc = LoopingCall::with_count(clock.clone(), move |n| s.borrow_mut().push((c.seconds(), n)));
    /// let _done = lc.start(1.0).unwrap();
    /// clock.advance(3.5);
    /// clock.advance(0.5);
    /// assert_eq!(*seen.borrow(), [(0.0, 1), (3.5, 3), (4.0, 1)]);
    /// ```
    pub fn with_count<R: Step>(
        clock: impl ReactorTime + 'static,
        mut f: impl FnMut(u64) -> R + 'static,
    ) -> LoopingCall {
        Self::with_func(clock, Func::Counted(Box::new(move |n| f(n).into_outcome())))
    }

    /// Starts calling the function every `interval` seconds, the first time now (inside
    /// `start`, Twisted's default `now=True`); [`start_with`](LoopingCall::start_with) takes
    /// [`LoopingOptions`] to start one interval later. Returns the Deferred that fires with this `LoopingCall`
    /// when the loop is stopped, or fails with the function's failure.
    ///
    /// Errors: [`BadInterval`](LoopingCallError::BadInterval) for a negative or NaN interval,
    /// [`AlreadyRunning`](LoopingCallError::AlreadyRunning),
    /// [`Reentrant`](LoopingCallError::Reentrant) for a start with `now` from inside the
    /// function.
    ///
    /// ```
    /// use twistor::task::{Clock, LoopingCall, LoopingCallError, LoopingOptions};
    /// let lc = LoopingCall::new(Clock::new(), || ());
    /// assert_eq!(lc.start(-1.0).err(), Some(LoopingCallError::BadInterval(-1.0)));
    /// let _d = lc.start_with(1.0, LoopingOptions { now: false }).unwrap();
    /// assert_eq!(lc.start_with(1.0, LoopingOptions { now: false }).err(), Some(LoopingCallError::AlreadyRunning));
    /// # lc.stop().unwrap();
    /// ```
    #[track_caller]
    pub fn start(&self, interval: f64) -> Result<Deferred<LoopingCall>, LoopingCallError> {
        self.start_with(interval, LoopingOptions::default())
    }

    /// [`start`](LoopingCall::start) with options other than the defaults: with
    /// `LoopingOptions { now: false }` the first call comes one interval after the start.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// use twistor::task::{Clock, LoopingCall, LoopingOptions};
    /// let clock = Clock::new();
    /// let n = Rc::new(Cell::new(0));
    /// let m = n.clone();
    /// let lc = LoopingCall::new(clock.clone(), move || m.set(m.get() + 1));
    /// let _d = lc.start_with(2.0, LoopingOptions { now: false }).unwrap();
    /// assert_eq!(n.get(), 0);
    /// clock.advance(2.0);
    /// assert_eq!(n.get(), 1);
    /// ```
    #[track_caller]
    pub fn start_with(
        &self,
        interval: f64,
        options: LoopingOptions,
    ) -> Result<Deferred<LoopingCall>, LoopingCallError> {
        let LoopingOptions { now } = options;
        let inner = &self.inner;
        let (d, fire) = Deferred::new();
        let starttime = {
            let mut st = inner.st.borrow_mut();
            if st.running {
                return Err(LoopingCallError::AlreadyRunning);
            }
            if interval.is_nan() || interval < 0.0 {
                return Err(LoopingCallError::BadInterval(interval));
            }
            if now && inner.func.borrow().is_none() {
                return Err(LoopingCallError::Reentrant);
            }
            if let Some(old) = st.deferred.take() {
                // The previous run was stopped while its call was in flight.
                let epoch = st.generation;
                st.orphans.push((epoch, old));
            }
            st.generation += 1;
            st.running = true;
            st.deferred = Some(fire);
            let starttime = inner.clock.seconds();
            st.starttime = Some(starttime);
            st.interval = Some(interval);
            st.run_at_start = now;
            st.real_last_time = None;
            starttime
        };
        if now {
            run_call(inner);
        } else {
            schedule_from(inner, starttime);
        }
        Ok(d)
    }

    /// Stops the loop: no further calls. If a call is scheduled it is cancelled and the start
    /// Deferred fires now; if the function is running or its Deferred is pending, the start
    /// Deferred fires when that completes. [`NotRunning`](LoopingCallError::NotRunning) if the
    /// loop is not running.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// use twistor::task::{Clock, LoopingCall, LoopingOptions};
    /// let clock = Clock::new();
    /// let ran = Rc::new(Cell::new(false));
    /// let r = ran.clone();
    /// let lc = LoopingCall::new(clock.clone(), move || r.set(true));
    /// let d = lc.start_with(10.0, LoopingOptions { now: false }).unwrap();
    /// lc.stop().unwrap();
    /// assert!(clock.get_delayed_calls().is_empty());
    /// assert!(twistor::testing::success_result_of(&d).ptr_eq(&lc));
    /// clock.advance(20.0);
    /// assert!(!ran.get());
    /// ```
    pub fn stop(&self) -> Result<(), LoopingCallError> {
        let (call, d) = {
            let mut st = self.inner.st.borrow_mut();
            if !st.running {
                return Err(LoopingCallError::NotRunning);
            }
            st.running = false;
            match st.call.take() {
                Some(call) => (Some(call), st.deferred.take()),
                None => (None, None),
            }
        };
        if let Some(call) = call {
            let _ = call.cancel();
        }
        if let Some(d) = d {
            let _ = d.callback(self.clone());
        }
        Ok(())
    }

    /// Skips the scheduled call and restarts the interval timer from now (`starttime` becomes
    /// now). Does nothing while the function runs or its Deferred is pending.
    /// [`NotRunning`](LoopingCallError::NotRunning) if the loop is not running.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// use twistor::task::{Clock, LoopingCall, LoopingOptions};
    /// let clock = Clock::new();
    /// let ran = Rc::new(Cell::new(0));
    /// let r = ran.clone();
    /// let lc = LoopingCall::new(clock.clone(), move || r.set(r.get() + 1));
    /// let _d = lc.start_with(2.0, LoopingOptions { now: false }).unwrap();
    /// clock.advance(1.0);
    /// lc.reset().unwrap();
    /// clock.advance(1.0);
    /// assert_eq!(ran.get(), 0);
    /// clock.advance(1.0);
    /// assert_eq!(ran.get(), 1);
    /// # lc.stop().unwrap();
    /// ```
    pub fn reset(&self) -> Result<(), LoopingCallError> {
        let inner = &self.inner;
        let (call, now) = {
            let mut st = inner.st.borrow_mut();
            if !st.running {
                return Err(LoopingCallError::NotRunning);
            }
            match st.call.take() {
                Some(call) => {
                    let now = inner.clock.seconds();
                    st.starttime = Some(now);
                    (call, now)
                }
                None => return Ok(()),
            }
        };
        let _ = call.cancel();
        schedule_from(inner, now);
        Ok(())
    }

    /// True from `start` until `stop` or a failure.
    ///
    /// ```
    /// use twistor::task::{Clock, LoopingCall};
    /// let lc = LoopingCall::new(Clock::new(), || ());
    /// let _d = lc.start(1.0).unwrap();
    /// assert!(lc.running());
    /// lc.stop().unwrap();
    /// assert!(!lc.running());
    /// ```
    pub fn running(&self) -> bool {
        self.inner.st.borrow().running
    }

    /// The interval of the last `start` (or `set_interval`), `None` before the first start.
    ///
    /// ```
    /// use twistor::task::{Clock, LoopingCall, LoopingOptions};
    /// let lc = LoopingCall::new(Clock::new(), || ());
    /// assert_eq!(lc.interval(), None);
    /// let _d = lc.start_with(0.5, LoopingOptions { now: false }).unwrap();
    /// assert_eq!(lc.interval(), Some(0.5));
    /// # lc.stop().unwrap();
    /// ```
    pub fn interval(&self) -> Option<f64> {
        self.inner.st.borrow().interval
    }

    /// Changes the interval (Twisted's `lc.interval = x`); it takes effect when the next call
    /// is scheduled. [`BadInterval`](LoopingCallError::BadInterval) if negative or NaN.
    ///
    /// ```
    /// use twistor::task::{Clock, LoopingCall};
    /// let lc = LoopingCall::new(Clock::new(), || ());
    /// lc.set_interval(2.0).unwrap();
    /// assert_eq!(lc.interval(), Some(2.0));
    /// assert!(lc.set_interval(f64::NAN).is_err());
    /// ```
    pub fn set_interval(&self, interval: f64) -> Result<(), LoopingCallError> {
        if interval.is_nan() || interval < 0.0 {
            return Err(LoopingCallError::BadInterval(interval));
        }
        self.inner.st.borrow_mut().interval = Some(interval);
        Ok(())
    }

    /// When the loop was last started (or reset), `None` before the first start.
    ///
    /// ```
    /// use twistor::task::{Clock, LoopingCall, LoopingOptions};
    /// let clock = Clock::new();
    /// clock.advance(3.0);
    /// let lc = LoopingCall::new(clock.clone(), || ());
    /// let _d = lc.start_with(1.0, LoopingOptions { now: false }).unwrap();
    /// assert_eq!(lc.starttime(), Some(3.0));
    /// # lc.stop().unwrap();
    /// ```
    pub fn starttime(&self) -> Option<f64> {
        self.inner.st.borrow().starttime
    }

    /// The scheduled call, if one is scheduled now (Twisted's `lc.call`).
    ///
    /// ```
    /// use twistor::task::{Clock, LoopingCall};
    /// let lc = LoopingCall::new(Clock::new(), || ());
    /// let _d = lc.start(1.0).unwrap();
    /// assert_eq!(lc.call().map(|c| c.get_time()), Some(1.0));
    /// # lc.stop().unwrap();
    /// ```
    pub fn call(&self) -> Option<DelayedCall> {
        self.inner.st.borrow().call.clone()
    }

    /// True if both handles are the same loop.
    ///
    /// ```
    /// use twistor::task::{Clock, LoopingCall};
    /// let lc = LoopingCall::new(Clock::new(), || ());
    /// assert!(lc.ptr_eq(&lc.clone()));
    /// ```
    pub fn ptr_eq(&self, other: &LoopingCall) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for LoopingCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.st.borrow();
        write!(f, "LoopingCall<")?;
        match st.interval {
            Some(i) => write!(f, "{i}")?,
            None => write!(f, "None")?,
        }
        write!(f, ">(running: {})", st.running)
    }
}

/// How long until the next boundary strictly after `when` (module docs).
fn how_long(interval: f64, starttime: f64, when: f64) -> f64 {
    if interval == 0.0 {
        return 0.0;
    }
    let running_for = when - starttime;
    // Python's `%` for a positive divisor: the result has the divisor's sign.
    let until_next = interval - running_for.rem_euclid(interval);
    if when == when + until_next {
        interval
    } else {
        until_next
    }
}

/// Python's `int(t / interval)` relative to `starttime`.
fn interval_of(t: f64, starttime: f64, interval: f64) -> i64 {
    ((t - starttime) / interval) as i64
}

fn schedule_from(inner: &Rc<Inner>, when: f64) {
    let delay = {
        let st = inner.st.borrow();
        how_long(
            st.interval.unwrap_or(0.0),
            st.starttime.unwrap_or(when),
            when,
        )
    };
    let me = inner.clone();
    let call = inner
        .clock
        .call_later_boxed(delay, Box::new(move || run_call(&me)));
    let old = inner.st.borrow_mut().call.replace(call);
    if let Some(old) = old {
        // Not reachable through the public API; never leave two calls scheduled.
        let _ = old.cancel();
    }
}

/// The count for a `with_count` function, or `None` if it should not be called now.
fn count_for_call(inner: &Inner) -> Option<u64> {
    let now = inner.clock.seconds();
    let mut st = inner.st.borrow_mut();
    let interval = st.interval.unwrap_or(0.0);
    if interval == 0.0 {
        st.real_last_time = Some(now);
        return Some(1);
    }
    let starttime = st.starttime.unwrap_or(now);
    let last = st.real_last_time.unwrap_or(if st.run_at_start {
        starttime - interval
    } else {
        starttime
    });
    let count = interval_of(now, starttime, interval) - interval_of(last, starttime, interval);
    if count > 0 {
        st.real_last_time = Some(now);
        Some(count as u64)
    } else {
        None
    }
}

/// Calls the function once, with no borrow held; a panic becomes a failure.
fn call_func(inner: &Inner) -> StepOutcome {
    let Some(mut func) = inner.func.borrow_mut().take() else {
        return StepOutcome::Failed(Failure::new(LoopingCallError::Reentrant));
    };
    let out = match &mut func {
        Func::Plain(f) => catch_unwind(AssertUnwindSafe(f)),
        Func::Counted(f) => match count_for_call(inner) {
            Some(n) => catch_unwind(AssertUnwindSafe(|| f(n))),
            None => Ok(StepOutcome::Done),
        },
    };
    *inner.func.borrow_mut() = Some(func);
    out.unwrap_or_else(|p| StepOutcome::Failed(Failure::from_panic(&*p)))
}

/// One iteration (Twisted's `LoopingCall.__call__`).
fn run_call(inner: &Rc<Inner>) {
    let epoch = {
        let mut st = inner.st.borrow_mut();
        st.call = None;
        st.generation
    };
    match call_func(inner) {
        StepOutcome::Done => completed(inner, epoch, Ok(())),
        StepOutcome::Failed(f) => completed(inner, epoch, Err(f)),
        StepOutcome::Wait(d) => {
            let me = inner.clone();
            let _ = d.add_both(move |r| {
                completed(&me, epoch, r);
                Ok(())
            });
        }
    }
}

/// A call of run `gen` completed with `result`.
fn completed(inner: &Rc<Inner>, epoch: u64, result: Result<(), Failure>) {
    let this = || LoopingCall {
        inner: inner.clone(),
    };
    let mut st = inner.st.borrow_mut();
    if epoch != st.generation {
        // A call of an earlier, stopped run: finish that run only.
        let Some(i) = st.orphans.iter().position(|(g, _)| *g == epoch) else {
            return;
        };
        let (_, d) = st.orphans.remove(i);
        drop(st);
        let _ = match result {
            Ok(()) => d.callback(this()),
            Err(f) => d.errback(f),
        };
        return;
    }
    match result {
        Ok(()) if st.running => {
            drop(st);
            schedule_from(inner, inner.clock.seconds());
        }
        Ok(()) => {
            let d = st.deferred.take();
            drop(st);
            if let Some(d) = d {
                let _ = d.callback(this());
            }
        }
        Err(f) => {
            st.running = false;
            let d = st.deferred.take();
            drop(st);
            match d {
                Some(d) => {
                    let _ = d.errback(f);
                }
                None => crate::report_error!(target: "twistor::task", "LoopingCall failed: {f:?}"),
            }
        }
    }
}
