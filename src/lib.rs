//! twistor: Twisted's model of asynchronous I/O, in Rust.
//!
//! # A result you don't have yet
//!
//! Suppose a function places an order for food and returns at once. What it returns is a
//! placeholder for the meal: a [`Deferred`]. To act on the meal, attach callbacks; the return
//! value of each callback is passed to the next.
//!
//! ```
//! use twistor::Deferred;
//!
//! fn eat_meal(meal: &str) -> bool {
//!     meal == "eggs benedict" // was it any good?
//! }
//!
//! fn compliment_chef(praiseworthy: bool) -> &'static str {
//!     if praiseworthy { "Wuu chef!" } else { "I sneeze in your face!" }
//! }
//!
//! let placeholder = Deferred::new();          // order_food()
//! let said = placeholder
//!     .clone()
//!     .add_callback(eat_meal)
//!     .add_callback(compliment_chef);
//! placeholder.callback("eggs benedict").unwrap(); // the meal arrives
//! assert_eq!(twistor::testing::success_result_of(&said), "Wuu chef!");
//! ```
//!
//! # No magic
//!
//! There are no threads, no I/O and no hidden event loop in that: a Deferred is bookkeeping.
//! `callback` runs the chain right there, in the caller. A callback that blocks, blocks.
//!
//! # Errors
//!
//! A placeholder stands for a success *or* a failure. Callbacks run on the success track,
//! errbacks on the failure track; a callback that returns `Err` (or panics) moves the chain to
//! the failure track, an errback that returns `Ok` moves it back. With them you can write each
//! shape of `try`/`except`/`else`/`finally`:
//!
//! | Python | twistor |
//! |---|---|
//! | handle the error, then do the action anyway | `d.add_errback(handle).add_callback(act)` |
//! | `try`/`except`/`else` | `d.add_callbacks(act, handle)` |
//! | handle an error of the whole operation | `d.add_callback_try(act).add_errback(handle)` |
//! | `finally` | `d.add_both(cleanup)` |
//!
//! Failures are [`Failure`]s: any `std::error::Error`, or a caught panic.
//!
//! # Time, without a reactor
//!
//! Time is one trait, [`time::ReactorTime`] (`seconds`, `call_later`), implemented by the
//! deterministic [`Clock`] that moves only when told to, so code built on it
//! ([`Deferred::add_timeout`], [`task::LoopingCall`], [`task::defer_later`]) is tested without
//! waiting.
//!
//! ```
//! use twistor::{Clock, Deferred, testing::failure_result_of};
//! use twistor::defer::TimeoutError;
//!
//! let clock = Clock::new();
//! let slow = Deferred::<()>::new().add_timeout(30.0, &clock);
//! clock.advance(30.0);
//! assert!(failure_result_of(&slow).is::<TimeoutError>());
//! ```
#![warn(missing_docs)]

pub mod defer;
pub mod error;
pub mod failure;
pub mod protocol;
pub mod protocols;
pub mod reactor;
pub mod task;
pub mod testing;
pub mod time;
pub mod transport;

pub use defer::Deferred;
pub use failure::Failure;
pub use task::Clock;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
