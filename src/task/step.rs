//! What one step of a repeated job produced: the one shape shared by
//! [`LoopingCall`](crate::task::LoopingCall) functions, [`Cooperator`](crate::task::Cooperator)
//! task items and reactor system-event triggers.

use crate::{Deferred, Failure};

/// What a step produced, normalised: done, failed, or done when a Deferred fires.
///
/// ```
/// use twistor::task::{Step, StepOutcome};
/// assert!(matches!(().into_outcome(), StepOutcome::Done));
/// ```
#[derive(Debug)]
pub enum StepOutcome {
    /// Done now, successfully.
    Done,
    /// Failed now.
    Failed(Failure),
    /// Done when this Deferred fires (a failure of the Deferred is a failure of the step).
    Wait(Deferred<()>),
}

/// What a step may return: `()` (done), `Result<(), Failure>` (`Err` fails: a
/// [`LoopingCall`](crate::task::LoopingCall) stops and fails its start Deferred, a cooperative
/// task fails), `Deferred<()>` (wait for it; a failure is a failure of the step), or a
/// [`StepOutcome`] (any of the three, chosen at run time).
///
/// There is one implementation per shape, so closures and iterators need no annotations:
/// `|| ()`, `|| Ok(())` (the error type is inferred as [`Failure`], and `?` works inside),
/// `|| some_deferred`, `(0..3).map(|_| Ok(()))`.
///
/// ```
/// use twistor::task::{Clock, Cooperator, LoopingCall};
/// use twistor::{Deferred, Failure};
///
/// let clock = Clock::new();
/// let _unit = LoopingCall::new(clock.clone(), || ());
/// let _fallible = LoopingCall::new(clock.clone(), || {
///     let _n: u8 = "7".parse()?;
///     Ok(())
/// });
/// let _waits = LoopingCall::new(clock.clone(), || Deferred::<()>::succeed(()));
/// let _task = Cooperator::new(clock).cooperate((0..3).map(|_| Ok::<(), Failure>(())));
/// ```
pub trait Step {
    /// Converts the value into what happens next.
    ///
    /// ```
    /// use twistor::task::{Step, StepOutcome};
    /// let r: Result<(), twistor::Failure> = Err(twistor::Failure::msg("x"));
    /// assert!(matches!(r.into_outcome(), StepOutcome::Failed(_)));
    /// assert!(matches!(twistor::Deferred::<()>::new().0.into_outcome(), StepOutcome::Wait(_)));
    /// ```
    fn into_outcome(self) -> StepOutcome;
}

impl Step for () {
    fn into_outcome(self) -> StepOutcome {
        StepOutcome::Done
    }
}

impl Step for Result<(), Failure> {
    fn into_outcome(self) -> StepOutcome {
        match self {
            Ok(()) => StepOutcome::Done,
            Err(f) => StepOutcome::Failed(f),
        }
    }
}

impl Step for Deferred<()> {
    fn into_outcome(self) -> StepOutcome {
        StepOutcome::Wait(self)
    }
}

/// For steps that sometimes wait and sometimes don't: return the outcome itself.
impl Step for StepOutcome {
    fn into_outcome(self) -> StepOutcome {
        self
    }
}
