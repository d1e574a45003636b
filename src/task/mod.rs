//! Task utilities: Twisted's `twisted.internet.task`.
//!
//! Everything here takes the time trait ([`ReactorTime`](crate::time::ReactorTime)), so it
//! runs on the deterministic [`Clock`] in tests and on the reactor in programs:
//!
//! - [`Clock`]: time that only moves when told to;
//! - [`LoopingCall`]: call a function every N seconds, skipping missed intervals, waiting for
//!   a returned Deferred before the next call;
//! - [`defer_later`]: a Deferred that fires after a delay (cancellable);
//! - [`Cooperator`] / [`CooperativeTask`]: run many iterators a step at a time, in time
//!   slices, without blocking the loop;
//! - [`react`]: a program's `main` as a function returning a Deferred.
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use twistor::task::Clock;
//!
//! let clock = Clock::new();
//! let rang = Rc::new(Cell::new(false));
//! let r = rang.clone();
//! clock.call_later(30.0, move || r.set(true));
//! clock.advance(29.0);
//! assert!(!rang.get());
//! clock.advance(1.0);
//! assert!(rang.get());
//! ```

mod clock;
mod cooperator;
mod defer_later;
mod duration;
mod looping;
mod react;
mod step;

pub use clock::Clock;
pub use cooperator::{
    CooperativeTask, Cooperator, CooperatorBuilder, DEFAULT_TICK_DELAY, DEFAULT_TIME_SLICE,
    SchedulerError,
};
pub use defer_later::{defer_later, defer_later_value};
pub use duration::BadDuration;
pub use looping::{LoopingCall, LoopingCallError, LoopingOptions};
pub use react::{ReactOptions, SystemExit, react, react_with};
pub use step::{Step, StepOutcome};
