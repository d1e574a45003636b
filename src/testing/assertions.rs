//! trial's `successResultOf`, `failureResultOf` and `assertNoResult`: look at a Deferred
//! *now*, and panic with a clear message (like `assert!`) if it is not in the expected state.
//!
//! Each one leaves the Deferred holding `()` when it finds a result, whatever the outcome:
//! a failure that a test looked at (or tripped over) must not be reported again as
//! unhandled when the Deferred goes away.

use std::error::Error;

use crate::{Deferred, Failure};

/// The success value `d` holds now. Takes it out (the Deferred is left holding `()`), as
/// trial's `successResultOf` does.
///
/// # Panics
/// If `d` has no result yet, is paused, or holds a failure.
///
/// ```
/// let d = twistor::Deferred::succeed(3);
/// assert_eq!(twistor::testing::success_result_of(&d), 3);
/// ```
#[doc(alias = "successResultOf")]
#[track_caller]
pub fn success_result_of<T: 'static>(d: &Deferred<T>) -> T {
    match d.take_result() {
        Some(Ok(v)) => v,
        Some(Err(f)) => {
            panic!("success result expected on {d:?}, found failure result instead: {f:?}")
        }
        None => panic!("success result expected on {d:?}, found no result instead"),
    }
}

/// The failure `d` holds now. Takes it out, so it is not reported as unhandled. To check its
/// type as well, use [`failure_result_of_types`].
///
/// # Panics
/// If `d` has no result yet, is paused, or holds a success.
///
/// ```
/// let d = twistor::Deferred::<u8>::fail(twistor::Failure::msg("x"));
/// assert_eq!(twistor::testing::failure_result_of(&d).error_message(), "x");
/// ```
#[doc(alias = "failureResultOf")]
#[track_caller]
pub fn failure_result_of<T: 'static>(d: &Deferred<T>) -> Failure {
    match d.take_result() {
        Some(Err(f)) => f,
        Some(Ok(_)) => panic!("failure result expected on {d:?}, found success result instead"),
        None => panic!("failure result expected on {d:?}, found no result instead"),
    }
}

/// Asserts that `d` has no result now (unfired, paused, or waiting on another Deferred).
///
/// # Panics
/// If `d` holds a result. A failure found there is swallowed first (the Deferred is left
/// holding `()`, as trial's `assertNoResult` does): the panic reports it, so it must not be
/// reported a second time as an unhandled error.
///
/// ```
/// twistor::testing::assert_no_result(&twistor::Deferred::<u8>::new().0);
/// ```
#[doc(alias = "assertNoResult")]
#[track_caller]
pub fn assert_no_result<T: 'static>(d: &Deferred<T>) {
    if d.has_result() && d.paused() == 0 {
        let what = match d.take_result() {
            Some(Err(f)) => format!("failure result {f:?}"),
            _ => "a result".to_string(),
        };
        panic!("no result expected on {d:?}, found {what} instead");
    }
}

/// One expected error type for [`failure_result_of_types`]: `ErrorType::of::<E>()`.
#[derive(Clone, Copy)]
pub struct ErrorType {
    name: &'static str,
    matches: fn(&Failure) -> bool,
}

impl ErrorType {
    /// The error type `E`.
    pub fn of<E: Error + 'static>() -> ErrorType {
        ErrorType {
            name: std::any::type_name::<E>(),
            matches: Failure::is::<E>,
        }
    }
}

impl std::fmt::Debug for ErrorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// The failure `d` holds now, which must wrap one of the `expected` error types (trial's
/// `failureResultOf(d, *expectedTypes)`). Takes it out, as [`failure_result_of`] does.
///
/// # Panics
/// If `d` has no result yet, is paused, holds a success, or holds a failure of another type.
///
/// ```
/// use twistor::{Deferred, Failure, defer::CancelledError};
/// use twistor::testing::{ErrorType, failure_result_of_types};
///
/// let (d, _r) = Deferred::<u8>::new();
/// d.cancel();
/// let f = failure_result_of_types(
///     &d,
///     &[ErrorType::of::<std::io::Error>(), ErrorType::of::<CancelledError>()],
/// );
/// assert!(f.is::<CancelledError>());
/// ```
///
/// ```should_panic
/// use twistor::{Deferred, Failure, testing::{ErrorType, failure_result_of_types}};
/// let d = Deferred::<u8>::fail(Failure::msg("not an I/O error"));
/// failure_result_of_types(&d, &[ErrorType::of::<std::io::Error>()]);
/// ```
#[doc(alias = "failureResultOf")]
#[track_caller]
pub fn failure_result_of_types<T: 'static>(d: &Deferred<T>, expected: &[ErrorType]) -> Failure {
    let f = failure_result_of(d);
    if !expected.iter().any(|e| (e.matches)(&f)) {
        panic!(
            "failure of type {} expected on {d:?}, found type {} instead: {f:?}",
            expected
                .iter()
                .map(|e| e.name)
                .collect::<Vec<_>>()
                .join(" or "),
            f.type_name()
        );
    }
    f
}
