//! `defer_later`: Twisted's `test_task.py::DeferLaterTests`, ported to a `Clock`.

mod util;

use std::cell::Cell;
use std::rc::Rc;

use twistor::defer::CancelledError;
use twistor::task::{Clock, defer_later, defer_later_value};
use twistor::testing::{assert_no_result, failure_result_of, success_result_of};
use twistor::time::ReactorTime;
use twistor::{Deferred, Failure};
use util::Log;

#[derive(Debug, thiserror::Error)]
#[error("test exception")]
struct TestException;

/// test_callback: fires after the delay with the callable's result; the callable runs then.
#[test]
fn test_callback() {
    let clock = Clock::new();
    let results = Log::new();
    let r = results.clone();
    let d = defer_later(&clock, 3.0, move || {
        r.push(("foo", "bar"));
        Ok("flag")
    });
    clock.advance(2.0);
    assert!(results.is_empty());
    assert_no_result(&d);
    clock.advance(1.0);
    assert_eq!(results.get(), [("foo", "bar")]);
    assert_eq!(success_result_of(&d), "flag");
}

/// test_errback: an error from the callable fails the Deferred.
#[test]
fn test_errback() {
    let clock = Clock::new();
    let d = defer_later(&clock, 1.0, || Err::<(), _>(Failure::new(TestException)));
    clock.advance(1.0);
    assert!(failure_result_of(&d).is::<TestException>());
}

/// A panic in the callable fails the Deferred too.
#[test]
fn test_panic_is_failure() {
    let clock = Clock::new();
    let d = defer_later(&clock, 1.0, || -> Result<u8, Failure> { panic!("boom") });
    clock.advance(1.0);
    let f = failure_result_of(&d);
    assert_eq!(
        f.downcast_ref::<twistor::failure::PanicError>()
            .unwrap()
            .message,
        "boom"
    );
}

/// test_cancel: cancelling cancels the delayed call (nothing pending, nothing runs) and fails
/// with CancelledError.
#[test]
fn test_cancel() {
    let clock = Clock::new();
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    let d = defer_later(&clock, 1.0, move || {
        c.set(true);
        Ok(())
    });
    d.cancel();
    assert!(clock.get_delayed_calls().is_empty());
    assert!(!called.get());
    assert!(failure_result_of(&d).is::<CancelledError>());
    clock.advance(5.0);
    assert!(!called.get());
}

/// test_noCallback: without a callable the Deferred fires with the unit value (Twisted's None).
#[test]
fn test_no_callback() {
    let clock = Clock::new();
    let d = defer_later_value(&clock, 2.0, ());
    assert_no_result(&d);
    clock.advance(2.0);
    success_result_of(&d);
}

#[test]
fn test_value_and_cancel_of_value() {
    let clock = Clock::new();
    let d = defer_later_value(&clock, 1.5, 42);
    clock.advance(1.5);
    assert_eq!(success_result_of(&d), 42);

    let d = defer_later_value(&clock, 1.0, "never");
    d.cancel();
    assert!(clock.get_delayed_calls().is_empty());
    assert!(failure_result_of(&d).is::<CancelledError>());
}

/// The callable may return a Deferred: the result waits for it, and cancelling then cancels
/// that Deferred.
#[test]
fn test_callable_returns_deferred() {
    let clock = Clock::new();
    let (inner, fire_inner) = Deferred::<u32>::new();
    let d = defer_later(&clock, 1.0, move || inner);
    clock.advance(1.0);
    assert_no_result(&d);
    fire_inner.callback(7).unwrap();
    assert_eq!(success_result_of(&d), 7);

    let (inner, fire_inner) = Deferred::<u32>::new();
    let d = defer_later(&clock, 1.0, move || inner);
    clock.advance(1.0);
    d.cancel();
    assert!(fire_inner.called());
    // The inner's failure moved down the chain (the inner is left holding `()`).
    assert!(failure_result_of(&d).is::<CancelledError>());
}

/// Works through the time trait: a `Rc<dyn ReactorTime>` is a clock too.
#[test]
fn test_with_dyn_reactor_time() {
    let clock = Clock::new();
    let time: Rc<dyn ReactorTime> = Rc::new(clock.clone());
    let d = defer_later(time, 1.0, || Ok(1));
    clock.advance(1.0);
    assert_eq!(success_result_of(&d), 1);
}
