//! Reporting errors nobody asked for: unhandled failures and contained panics.
//!
//! Twisted prints "Unhandled error in Deferred" to stderr with no setup at all, and sends it
//! to the log observers once logging is configured. twistor does the same through one
//! function, [`error`]:
//!
//! * **a `log` logger is installed** — the report is a `log::error!` record with the given
//!   target, so it goes wherever the application's logs go and its filters apply;
//! * **no logger** — the report is written to stderr (with `eprintln!`, so a test harness
//!   capturing output captures it too).
//!
//! # How "a logger is installed" is decided
//!
//! The rule is `log::max_level() != LevelFilter::Off`. The `log` crate starts with the
//! maximum level at `Off` and with a no-op logger; every logger implementation raises the
//! maximum level when it is installed (it must: the `log!` macros drop every record above
//! it). So `Off` means either "no logger" or "a logger that would receive nothing" — in both
//! cases a `log::error!` would vanish, and an error that nobody handled must not vanish.
//! Comparing `log::logger()` with the no-op logger would need the address of a private
//! zero-sized static, which the `log` crate does not promise to keep stable; the level rule
//! needs no such assumption.
//!
//! A program that wants these reports silenced installs a logger and filters the `twistor`
//! targets out.

/// Reports an error that no caller can handle: to the `log` logger if one is installed, else
/// to stderr (see the module docs for the rule).
///
/// `target` is the `log` target (`"twistor::defer"`, `"twistor::reactor"`...); on stderr it
/// prefixes the message.
///
/// ```
/// // No logger in this doctest: this line goes to stderr.
/// twistor::report::error("twistor::doc", format_args!("something failed: {}", 42));
/// ```
pub fn error(target: &str, message: std::fmt::Arguments<'_>) {
    if logger_installed() {
        log::error!(target: target, "{message}");
    } else {
        eprintln!("[{target}] ERROR: {message}");
    }
}

/// True if `log` records at error level can reach a logger (module docs, "How...").
///
/// ```
/// // Doctests install no logger.
/// assert!(!twistor::report::logger_installed());
/// ```
pub fn logger_installed() -> bool {
    log::max_level() != log::LevelFilter::Off
}

/// [`error`] with `format!`-style arguments: `report_error!("twistor::defer", "x: {}", x)`.
/// It also takes `log::error!`'s `target: "..."` form, so switching a call is a rename.
///
/// ```
/// twistor::report_error!("twistor::doc", "lost {} bytes", 3);
/// ```
#[macro_export]
macro_rules! report_error {
    (target: $target:expr, $($arg:tt)+) => {
        $crate::report::error($target, format_args!($($arg)+))
    };
    ($target:expr, $($arg:tt)+) => {
        $crate::report::error($target, format_args!($($arg)+))
    };
}

/// An errback that reports the failure and ends the error track (Twisted's
/// `d.addErrback(log.err)`): `d.add_errback(log_error)`, no type to restate.
///
/// Twisted's `log.err` returns `None`, so the chain goes on with `None`. A typed chain
/// cannot switch to `None` in place, so the chain goes on with `T::default()`: `()` for the
/// usual end of a chain, and `None` for a chain of `Option`s. For a `T` that is not
/// `Default`, [`Deferred::add_errback_logged`](crate::Deferred::add_errback_logged) does the
/// same and continues with `Option<T>` (`None` for the failure).
///
/// The report goes through [`error`] (target `twistor::defer`).
///
/// ```
/// use twistor::{Deferred, Failure, defer::log_error, testing::success_result_of};
///
/// let d = Deferred::<()>::fail(Failure::msg("lost")).add_errback(log_error);
/// success_result_of(&d); // handled: nothing is reported again when `d` goes away
///
/// let d = Deferred::<String>::fail(Failure::msg("lost"))
///     .add_callback(Some)
///     .add_errback(log_error);
/// assert_eq!(success_result_of(&d), None);
/// ```
#[track_caller]
pub fn log_error<T: Default>(failure: crate::Failure) -> Result<T, crate::Failure> {
    error(
        "twistor::defer",
        format_args!("Unhandled error: {failure:?}"),
    );
    Ok(T::default())
}
