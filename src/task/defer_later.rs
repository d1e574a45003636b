//! `defer_later`: a Deferred that fires after a delay (Twisted's `task.deferLater`).
//!
//! As in Twisted, the delayed call fires a `Deferred<()>`, and the function runs as that
//! Deferred's first callback, so a failure or a panic of the function lands on the chain. The
//! Deferred's canceller cancels the delayed call: cancelling before the delay elapses runs
//! nothing, leaves no pending call behind, and fails the Deferred with
//! [`CancelledError`](crate::defer::CancelledError).

use std::cell::RefCell;
use std::rc::Rc;

use crate::Deferred;
use crate::defer::{IntoDeferred, maybe_deferred};
use crate::time::{DelayedCall, ReactorTime};

/// Calls `f` after `delay` seconds of `clock` and returns a Deferred that fires with its
/// result. `f` returns `Result<T, Failure>` (an `Err` or a panic fails the Deferred) or a
/// `Deferred<T>` (the result waits for it).
///
/// ```
/// use twistor::task::{defer_later, Clock};
/// use twistor::testing::{assert_no_result, success_result_of};
///
/// let clock = Clock::new();
/// let d = defer_later(&clock, 3.0, || Ok("done"));
/// clock.advance(2.0);
/// assert_no_result(&d);
/// clock.advance(1.0);
/// assert_eq!(success_result_of(&d), "done");
/// ```
///
/// Cancelling it cancels the delayed call:
///
/// ```
/// use twistor::defer::CancelledError;
/// use twistor::task::{defer_later, Clock};
///
/// let clock = Clock::new();
/// let d = defer_later(&clock, 1.0, || -> Result<(), twistor::Failure> { panic!("never runs") });
/// d.cancel();
/// assert!(clock.get_delayed_calls().is_empty());
/// assert!(twistor::testing::failure_result_of(&d).is::<CancelledError>());
/// ```
#[doc(alias = "deferLater")]
pub fn defer_later<R: IntoDeferred + 'static>(
    clock: impl ReactorTime,
    delay: f64,
    f: impl FnOnce() -> R + 'static,
) -> Deferred<R::Output> {
    defer_later_value(clock, delay, ()).add_callback_deferred(move |()| maybe_deferred(f))
}

/// A Deferred that fires with `value` after `delay` seconds of `clock` (Twisted's
/// `deferLater` without a callable, which fires with `None`: pass `()`). Cancelling it
/// cancels the delayed call.
///
/// ```
/// use twistor::task::{defer_later_value, Clock};
/// use twistor::testing::{assert_no_result, success_result_of};
///
/// let clock = Clock::new();
/// let d = defer_later_value(&clock, 2.0, ());
/// assert_no_result(&d);
/// clock.advance(2.0);
/// success_result_of(&d);
/// ```
#[doc(alias = "deferLater")]
pub fn defer_later_value<T: 'static>(clock: impl ReactorTime, delay: f64, value: T) -> Deferred<T> {
    let slot: Rc<RefCell<Option<DelayedCall>>> = Rc::new(RefCell::new(None));
    let s = slot.clone();
    let (d, fire) = Deferred::with_canceller(move |_: &crate::Resolver<T>| {
        let call = s.borrow_mut().take();
        if let Some(call) = call {
            let _ = call.cancel();
        }
    });
    let call = clock.call_later_boxed(
        delay,
        Box::new(move || {
            let _ = fire.callback(value);
        }),
    );
    *slot.borrow_mut() = Some(call);
    d
}
