//! The errors defined by the Deferred machinery (Twisted's `defer.py` exceptions).

use std::fmt;
use std::panic::Location;

use crate::Failure;

/// A Deferred was fired a second time (Twisted's `AlreadyCalledError`).
///
/// Firing twice is a bug in the producer; twistor reports it as an `Err` and leaves the first
/// result in place. In [debug mode](crate::defer::set_debugging) the message names where the
/// Deferred was created (`C:`) and first fired (`I:`).
///
/// ```
/// use twistor::Deferred;
/// let (_d, r) = Deferred::new();
/// r.callback(1).unwrap();
/// assert!(r.callback(2).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlreadyCalledError {
    /// Where the Deferred was created (set in debug mode).
    pub created_at: Option<&'static Location<'static>>,
    /// Where it was first fired (set in debug mode).
    pub first_fired_at: Option<&'static Location<'static>>,
    /// Where the second firing happened.
    pub fired_again_at: &'static Location<'static>,
}

impl fmt::Display for AlreadyCalledError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Deferred already called (fired again at {})",
            self.fired_again_at
        )?;
        if let Some(c) = self.created_at {
            write!(f, "\n C: created at {c}")?;
        }
        if let Some(i) = self.first_fired_at {
            write!(f, "\n I: first fired at {i}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AlreadyCalledError {}

/// The Deferred was cancelled (Twisted's `CancelledError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, thiserror::Error)]
#[error("Deferred was cancelled")]
pub struct CancelledError;

/// `add_timeout` cancelled the Deferred after its timeout (Twisted's `defer.TimeoutError`,
/// not the connect timeout of the TCP layer).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("Deferred timed out after {0} seconds")]
pub struct TimeoutError(pub f64);

/// A callback ran with a result of another type than it was written for.
///
/// The API makes this impossible: the one chain handle is consumed by every callback it adds,
/// and resolvers are typed by the chain's first type. The chain still checks each value's type
/// as it takes it out (the check is one comparison), and would report a mismatch as this
/// failure rather than read a value as the wrong type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Deferred callback expected a {expected} but the chain holds a {found}")]
pub struct ChainTypeError {
    /// The type the callback expected.
    pub expected: &'static str,
    /// The type the chain held.
    pub found: &'static str,
}

/// A callback returned the very Deferred it was attached to (Twisted warns and breaks the chain;
/// twistor puts this failure on the chain instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "Callback returned the Deferred it was attached to; this breaks the callback chain and will raise an exception in the future."
)]
pub struct CircularChainError;

/// The first failure seen by `gather_results` or a `DeferredList` with `fire_on_one_errback`
/// (Twisted's `FirstError`): the original failure and the index of the input that failed.
///
/// ```
/// use twistor::Failure;
/// use twistor::defer::FirstError;
/// let e = FirstError { sub_failure: Failure::msg("some text"), index: 3 };
/// assert_eq!(e.to_string(), "FirstError[#3, MessageError: some text]");
/// ```
#[derive(Clone)]
pub struct FirstError {
    /// The input's failure.
    pub sub_failure: Failure,
    /// The input's position in the list.
    pub index: usize,
}

impl fmt::Display for FirstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FirstError[#{}, {}]", self.index, self.sub_failure)
    }
}

impl fmt::Debug for FirstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FirstError[#{}, {}({:?})]",
            self.index,
            self.sub_failure.short_type_name(),
            self.sub_failure.error_message()
        )
    }
}

impl PartialEq for FirstError {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index && self.sub_failure.ptr_eq(&other.sub_failure)
    }
}

impl std::error::Error for FirstError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.sub_failure.error())
    }
}

/// Every input of a `race` failed: their failures, in input order (Twisted's `FailureGroup`).
#[derive(Clone)]
pub struct FailureGroup {
    /// The failures, sorted by input index.
    pub failures: Vec<Failure>,
}

impl fmt::Display for FailureGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FailureGroup[")?;
        for (i, x) in self.failures.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{x}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for FailureGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for FailureGroup {}

/// `DeferredQueue::put` on a queue that holds `size` items already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("DeferredQueue is full")]
pub struct QueueOverflow;

/// `DeferredQueue::get` on an empty queue that already has `backlog` waiting getters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("DeferredQueue has too many waiting getters")]
pub struct QueueUnderflow;
