//! `add_timeout`: Twisted's `test_defer.py::DeferredAddTimeoutTests`, ported to a `Clock`, with
//! two worked examples (the `e27_` and `e28_` tests).

mod util;

use std::cell::Cell;
use std::rc::Rc;

use twistor::defer::{CancelledError, TimeoutError};
use twistor::testing::{assert_no_result, failure_result_of, success_result_of};
use twistor::{Clock, Deferred, Failure};

#[derive(Debug, thiserror::Error)]
#[error("value error")]
struct ValueError;

#[test]
fn test_timed_out() {
    let clock = Clock::new();
    let (d, _fire) = Deferred::<()>::new();
    let d = d.add_timeout(10.0, &clock);
    assert_no_result(&d);
    clock.advance(15.0);
    let f = failure_result_of(&d);
    assert!(f.is::<TimeoutError>());
    assert_eq!(f.downcast_ref::<TimeoutError>().unwrap().0, 10.0);
}

#[test]
fn test_timed_out_custom() {
    let clock = Clock::new();
    let (d, _fire) = Deferred::<&str>::new();
    let d = d.add_timeout_with(10.0, &clock, |_, _| Ok("OVERRIDDEN"));
    clock.advance(15.0);
    assert_eq!(success_result_of(&d), "OVERRIDDEN");
}

#[test]
fn test_success_result_before_timeout() {
    let clock = Clock::new();
    let (d, fire_d) = Deferred::<&str>::new();
    let out = d.add_timeout(10.0, &clock);
    // A callback added after the timeout returns a Deferred that must never be cancelled.
    let inner_cancelled = Rc::new(Cell::new(false));
    let ic = inner_cancelled.clone();
    let (inner, fire_inner) = Deferred::<&str>::with_canceller(move |_| ic.set(true));
    let out = out.add_callback_deferred(move |_| inner);
    clock.advance(5.0);
    fire_d.callback("Result").unwrap();
    assert!(clock.get_delayed_calls().is_empty());
    clock.advance(15.0);
    assert!(!inner_cancelled.get());
    assert_no_result(&out);
    fire_inner.callback("inner").unwrap();
    assert_eq!(success_result_of(&out), "inner");
}

#[test]
fn test_failure_before_timeout() {
    let clock = Clock::new();
    let (d, fire_d) = Deferred::<()>::new();
    let out = d.add_timeout(10.0, &clock);
    clock.advance(5.0);
    fire_d.errback(ValueError).unwrap();
    assert!(failure_result_of(&out).is::<ValueError>());
    assert!(clock.get_delayed_calls().is_empty());
}

#[test]
fn test_cancel_before_timeout() {
    let clock = Clock::new();
    let (d, fire_d) = Deferred::<()>::new();
    let out = d.add_timeout(10.0, &clock);
    fire_d.cancel();
    let f = failure_result_of(&out);
    assert!(
        f.is::<CancelledError>(),
        "plain CancelledError, not converted"
    );
    assert!(clock.get_delayed_calls().is_empty());
    clock.advance(15.0);
}

#[test]
fn test_provided_cancel_success() {
    let clock = Clock::new();
    let (d, _fire) = Deferred::with_canceller(|d| d.callback("I was cancelled!").unwrap());
    let d = d.add_timeout(10.0, &clock);
    clock.advance(15.0);
    assert_eq!(success_result_of(&d), "I was cancelled!");
}

#[test]
fn test_provided_cancel_failure() {
    let clock = Clock::new();
    let (d, _fire) = Deferred::<()>::with_canceller(|d| d.errback(ValueError).unwrap());
    let d = d.add_timeout(10.0, &clock);
    clock.advance(15.0);
    assert!(failure_result_of(&d).is::<ValueError>());
}

#[test]
fn test_errback_added_before_timeout_suppresses_cancellation() {
    let clock = Clock::new();
    let (d, _fire) = Deferred::<()>::new();
    let d = d
        .add_errback(|f: Failure| {
            f.trap::<CancelledError>()?;
            Ok(())
        })
        .add_timeout(10.0, &clock);
    clock.advance(15.0);
    assert_eq!(success_result_of(&d), ());
}

#[test]
fn e27_timeout_fires_timeout_error() {
    let clock = Clock::new();
    let (d, _fire) = Deferred::<()>::new();
    let d = d.add_timeout(5.0, &clock);
    clock.advance(5.0);
    assert!(failure_result_of(&d).is::<TimeoutError>());
}

#[test]
fn e28_result_before_timeout_clears_call() {
    let clock = Clock::new();
    let (d, fire_d) = Deferred::new();
    let out = d.add_timeout(5.0, &clock);
    fire_d.callback("ok").unwrap();
    assert_eq!(success_result_of(&out), "ok");
    assert!(clock.get_delayed_calls().is_empty());
}
