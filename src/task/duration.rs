//! Durations given by users (intervals, time slices, timeouts): a number of seconds, finite
//! and `>= 0`. A NaN, negative or infinite value is refused with [`BadDuration`] where it is
//! given, rather than clamped or read as "none" later.

/// A duration that is NaN, negative or infinite; `what` names the setting.
///
/// ```
/// use twistor::task::{BadDuration, Clock, Cooperator};
/// let err = Cooperator::builder(Clock::new()).time_slice(-0.5).err();
/// assert_eq!(
///     err.map(|e| e.to_string()).as_deref(),
///     Some("time_slice must be a finite number of seconds >= 0, not -0.5")
/// );
/// # let _ = BadDuration { what: "tick_delay", seconds: 0.0 };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("{what} must be a finite number of seconds >= 0, not {seconds}")]
pub struct BadDuration {
    /// The setting (`time_slice`, `tick_delay`, `timeout`...).
    pub what: &'static str,
    /// The refused value.
    pub seconds: f64,
}

impl BadDuration {
    /// `seconds` if it is a valid duration for `what`.
    pub(crate) fn check(what: &'static str, seconds: f64) -> Result<f64, BadDuration> {
        if seconds.is_finite() && seconds >= 0.0 {
            Ok(seconds)
        } else {
            Err(BadDuration { what, seconds })
        }
    }
}
