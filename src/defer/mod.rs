//! Deferreds: results you don't have yet.
//!
//! The [`Deferred`] is the centre of Twisted: a placeholder for a result with a chain of
//! callbacks (run on success) and errbacks (run on failure). Around it this module holds the
//! [`Failure`](crate::Failure) helpers, the list combinators ([`DeferredList`],
//! [`gather_results`], [`race`]), the concurrency primitives ([`DeferredLock`],
//! [`DeferredSemaphore`], [`DeferredQueue`]) and the bridge to `async`/`.await`.
//!
//! # One thread
//!
//! Deferreds, and the protocol handles and transports the framework holds, belong to the
//! thread of their reactor: they share state through `Rc` and `RefCell`, without locks. None
//! of them is `Send`, so moving one to another thread does not compile (work on another
//! thread comes back through the reactor's `call_from_thread` / `defer_to_thread`):
//!
//! ```compile_fail
//! fn send<T: Send>() {}
//! send::<twistor::Deferred<u8>>();
//! ```
//!
//! ```compile_fail
//! fn send<T: Send>() {}
//! send::<twistor::Resolver<u8>>();
//! ```
//!
//! ```compile_fail
//! fn send<T: Send>() {}
//! send::<twistor::defer::CancelHandle>();
//! ```
//!
//! ```compile_fail
//! struct P;
//! impl twistor::protocol::Protocol for P {
//!     fn data_received(&mut self, _: &twistor::protocol::Context<Self>, _: &[u8]) {}
//! }
//! fn send<T: Send>() {}
//! send::<twistor::protocol::Handle<P>>();
//! ```
//!
//! ```compile_fail
//! fn send<T: Send>() {}
//! send::<twistor::transport::Transport>();
//! ```
//!
//! The same code with a `Send` type compiles, so the blocks above fail for the reason given:
//!
//! ```
//! fn send<T: Send>() {}
//! send::<twistor::defer::CancelledError>();
//! ```

use std::sync::atomic::{AtomicBool, Ordering};

mod deferred;
mod errors;
pub(crate) mod future;
mod list;
mod lock;
mod queue;
mod timeout;
pub(crate) mod value;

pub use crate::report::log_error;
pub use deferred::{
    CancelHandle, Deferred, DeferredRef, IntoDeferred, Resolver, execute, maybe_deferred,
};
pub use errors::{
    AlreadyCalledError, CancelledError, ChainTypeError, CircularChainError, FailureGroup,
    FirstError, QueueOverflow, QueueUnderflow, TimeoutError,
};
pub use future::DeferredFuture;
pub use list::{
    DeferredList, FireOnOneResult, gather_results, gather_results_consume_errors, race,
};
pub use lock::{
    DeferredLock, DeferredSemaphore, InvalidTokensError, NotLockedError, TooManyReleasesError,
};
pub use queue::DeferredQueue;

static DEBUG: AtomicBool = AtomicBool::new(false);

/// Turns debug mode on or off for the whole process (Twisted's `setDebugging`).
///
/// In debug mode, `AlreadyCalledError` and unhandled-failure reports name where the Deferred
/// was created and first fired, and every `Failure` captures a backtrace. Off by default.
///
/// ```
/// twistor::defer::set_debugging(true);
/// assert!(twistor::defer::get_debugging());
/// twistor::defer::set_debugging(false);
/// ```
#[doc(alias = "setDebugging")]
pub fn set_debugging(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

/// Whether debug mode is on (Twisted's `getDebugging`).
#[doc(alias = "getDebugging")]
pub fn get_debugging() -> bool {
    DEBUG.load(Ordering::Relaxed)
}
