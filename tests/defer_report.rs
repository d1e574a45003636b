//! Errors are never silent: unhandled failures and contained panics reach stderr when no
//! logger is installed, and the logger when one is.

mod util;

use std::error::Error;
use std::process::Command;

use twistor::defer::log_error;
use twistor::testing::success_result_of;
use twistor::{Deferred, Failure};
use util::{capture_logs, captured_errors};

const CHILD: &str = "TWISTOR_REPORT_CHILD";

/// Runs one test of this binary in a fresh process (no logger installed there) and returns
/// its stderr.
fn child_stderr(test: &str) -> String {
    let exe = std::env::current_exe().expect("test executable path");
    let out = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("run the test binary");
    assert!(out.status.success(), "child failed: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The child half of `no_logger_reports_to_stderr`: does nothing unless run by it.
#[test]
fn child_drops_failures_without_logger() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    assert!(!twistor::report::logger_installed());
    drop(Deferred::<()>::fail(Failure::msg("nobody handled me")));
    let d = Deferred::<()>::fail(Failure::msg("logged on purpose")).add_errback(log_error);
    success_result_of(&d);
    let reactor = twistor::reactor::Reactor::new().expect("a reactor");
    reactor.call_later(0.0, || panic!("timed call exploded"));
    let r = reactor.clone();
    reactor.call_later(0.0, move || {
        let _ = r.stop();
    });
    reactor
        .run_without_signal_handlers()
        .expect("the reactor runs");
}

#[test]
#[cfg_attr(miri, ignore)]
fn no_logger_reports_to_stderr() {
    let err = child_stderr("child_drops_failures_without_logger");
    assert!(
        err.contains("Unhandled error in Deferred") && err.contains("nobody handled me"),
        "stderr: {err}"
    );
    assert!(
        err.contains("Unhandled error") && err.contains("logged on purpose"),
        "stderr: {err}"
    );
    // The panic hook prints the panic itself; the reactor's report follows it.
    assert!(
        err.contains("ERROR") && err.contains("panic: timed call exploded"),
        "stderr: {err}"
    );
}

#[test]
fn logger_receives_unhandled_failures() {
    capture_logs();
    assert!(twistor::report::logger_installed());
    drop(Deferred::<()>::fail(Failure::msg("dropped with a logger")));
    let errors = captured_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("Unhandled error in Deferred"));
    assert!(errors[0].contains("dropped with a logger"));
}

#[test]
fn log_error_ends_the_error_track() {
    capture_logs();
    let d = Deferred::<u32>::fail(Failure::msg("gone"))
        .add_callback(Some)
        .add_errback(log_error);
    assert_eq!(success_result_of(&d), None);
    drop(d);
    let errors = captured_errors();
    assert_eq!(
        errors.len(),
        1,
        "reported once, not again on drop: {errors:?}"
    );
    assert!(errors[0].contains("gone"));
    // A success passes by untouched.
    let d = Deferred::succeed(()).add_errback(log_error);
    success_result_of(&d);
    assert_eq!(captured_errors().len(), 1);
}

#[test]
fn failure_converts_into_box_dyn_error() {
    fn main_like(fail: bool) -> Result<u8, Box<dyn Error>> {
        let r: Result<u8, Failure> = if fail {
            Err(Failure::new(std::io::Error::other("disk on fire")))
        } else {
            Ok(1)
        };
        Ok(r?)
    }
    assert_eq!(main_like(false).ok(), Some(1));
    let e = main_like(true).expect_err("the failure comes through");
    assert!(e.to_string().contains("disk on fire"));
    let back = e
        .downcast_ref::<twistor::failure::FailureError>()
        .expect("a FailureError");
    assert!(back.0.is::<std::io::Error>());
}

/// trial's `assertNoResult` swallows a failure it finds: the test failure reports it, the
/// Deferred must not report it again when it goes away.
#[test]
fn assert_no_result_swallows_the_failure_it_finds() {
    capture_logs();
    let d = Deferred::<u8>::fail(Failure::msg("already failed"));
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        twistor::testing::assert_no_result(&d)
    }))
    .expect_err("a result was there");
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("already failed"), "{msg}");
    drop(d);
    assert_eq!(captured_errors(), Vec::<String>::new());
}

#[test]
fn failure_result_of_types_accepts_any_expected_type() {
    use twistor::defer::CancelledError;
    use twistor::testing::{ErrorType, failure_result_of_types};
    let d = Deferred::<u8>::fail(Failure::new(CancelledError));
    let f = failure_result_of_types(
        &d,
        &[
            ErrorType::of::<std::fmt::Error>(),
            ErrorType::of::<CancelledError>(),
        ],
    );
    assert!(f.is::<CancelledError>());
}

#[test]
#[should_panic(expected = "failure of type core::fmt::Error expected")]
fn failure_result_of_types_rejects_other_types() {
    use twistor::testing::{ErrorType, failure_result_of_types};
    let d = Deferred::<u8>::fail(Failure::msg("a message"));
    failure_result_of_types(&d, &[ErrorType::of::<std::fmt::Error>()]);
}

#[test]
fn add_errback_logged_works_for_any_type() {
    struct NotDefault(u8);
    capture_logs();
    let d = Deferred::<NotDefault>::fail(Failure::msg("refused")).add_errback_logged();
    assert!(success_result_of(&d).is_none());
    let d = Deferred::succeed(NotDefault(3)).add_errback_logged();
    assert_eq!(success_result_of(&d).map(|v| v.0), Some(3));
    let errors = captured_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("refused"));
}
