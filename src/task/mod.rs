//! Task utilities: Twisted's `twisted.internet.task`.
//!
//! For now this holds [`Clock`], the deterministic [`ReactorTime`](crate::time::ReactorTime)
//! that only moves when told to, so that code which schedules calls can be tested without
//! real time.
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
mod looping;

pub use clock::Clock;
pub use cooperator::{
    CooperativeTask, Cooperator, CooperatorBuilder, SchedulerError, TaskStep, DEFAULT_TICK_DELAY,
    DEFAULT_TIME_SLICE,
};
pub use defer_later::{defer_later, defer_later_value};
pub use looping::{LoopResult, LoopingCall, LoopingCallError, StepOutcome};
