//! `Deferred::add_timeout`: cancel a Deferred that takes too long (Twisted's `addTimeout`).
//!
//! A delayed call on the given clock cancels the Deferred when the timeout passes, and a
//! converter added right after it turns the resulting `CancelledError` into a
//! [`TimeoutError`]. Only callbacks added *before* `add_timeout` are covered; those added after
//! see the converted result. Firing first cancels the delayed call, so nothing is cancelled
//! later (inner Deferreds returned by later callbacks are left alone).

use std::cell::Cell;
use std::rc::Rc;

use super::errors::{CancelledError, TimeoutError};
use crate::time::ReactorTime;
use crate::{Deferred, Failure};

impl<T: 'static> Deferred<T> {
    /// Cancels this Deferred if it has no result after `timeout` seconds of `clock`, and then
    /// fails it with [`TimeoutError`] (if cancelling produced a `CancelledError`; a canceller's
    /// own result is kept).
    ///
    /// ```
    /// use twistor::{Clock, Deferred, defer::TimeoutError, testing::failure_result_of};
    ///
    /// let clock = Clock::new();
    /// let (d, _r) = Deferred::<()>::new();
    /// let d = d.add_timeout(5.0, &clock);
    /// clock.advance(5.0);
    /// assert!(failure_result_of(&d).is::<TimeoutError>());
    /// assert!(clock.get_delayed_calls().is_empty());
    /// ```
    #[doc(alias = "addTimeout")]
    pub fn add_timeout(self, timeout: f64, clock: &impl ReactorTime) -> Deferred<T> {
        self.add_timeout_with(timeout, clock, move |r, t| match r {
            Err(f) if f.is::<CancelledError>() => Err(Failure::new(TimeoutError(t))),
            other => other,
        })
    }

    /// Like [`add_timeout`](Self::add_timeout), with Twisted's `onTimeoutCancel`: when the
    /// timeout cancelled the Deferred, `on_timeout_cancel(result, timeout)` decides the result.
    ///
    /// ```
    /// use twistor::{Clock, Deferred, testing::success_result_of};
    ///
    /// let clock = Clock::new();
    /// let (d, _r) = Deferred::<&str>::new();
    /// let d = d.add_timeout_with(10.0, &clock, |_, _| Ok("OVERRIDDEN"));
    /// clock.advance(15.0);
    /// assert_eq!(success_result_of(&d), "OVERRIDDEN");
    /// ```
    #[doc(alias = "addTimeout")]
    pub fn add_timeout_with(
        self,
        timeout: f64,
        clock: &impl ReactorTime,
        on_timeout_cancel: impl FnOnce(Result<T, Failure>, f64) -> Result<T, Failure> + 'static,
    ) -> Deferred<T> {
        let timed_out = Rc::new(Cell::new(false));
        let flag = timed_out.clone();
        let target = self.cancel_handle();
        let call = clock.call_later_boxed(
            timeout,
            Box::new(move || {
                flag.set(true);
                target.cancel();
            }),
        );
        self.add_both(move |r| {
            if timed_out.get() {
                on_timeout_cancel(r, timeout)
            } else {
                r
            }
        })
        .add_both(move |r| {
            if call.active() {
                let _ = call.cancel();
            }
            r
        })
    }
}
