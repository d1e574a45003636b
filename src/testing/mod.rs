//! The testing toolkit: run protocol code with no sockets and no real time.
//!
//! - Deferred assertions: [`success_result_of`], [`failure_result_of`], [`assert_no_result`]
//!   (trial's `successResultOf` and friends): they look at a Deferred *now* and panic with a
//!   clear message if it is not in the expected state, so use them in tests, like `assert!`.
//! - [`StringTransport`]: a transport that records writes (Twisted's `StringTransport` and
//!   `StringTransportWithDisconnection`).
//! - [`connected_server_and_client`] and [`IOPump`]: two protocols connected in memory
//!   (Twisted's `iosim`), and [`AccumulatingProtocol`].
//!
//! - [`MemoryReactor`]: records `listen_tcp`/`connect_tcp` (through the
//!   [`ReactorTcp`](crate::transport::tcp::ReactorTcp) trait) and tells time with a `Clock`.
//!
//! Time in these tests comes from a [`Clock`](crate::Clock).

mod iosim;
mod memory_reactor;
mod memory_spawn;
mod string_transport;

pub use iosim::{AccumulatingProtocol, IOPump, connected_server_and_client};
pub use memory_reactor::{ConnectCall, ListenCall, MemoryReactor};
pub use string_transport::{ReadState, StringTransport};

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

/// The failure `d` holds now. Takes it out, so it is not reported as unhandled.
///
/// # Panics
/// If `d` has no result yet, is paused, or holds a success.
///
/// ```
/// let d = twistor::Deferred::<u8>::fail(twistor::Failure::msg("x"));
/// assert_eq!(twistor::testing::failure_result_of(&d).error_message(), "x");
/// ```
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
/// If `d` holds a result.
///
/// ```
/// twistor::testing::assert_no_result(&twistor::Deferred::<u8>::new());
/// ```
#[track_caller]
pub fn assert_no_result<T: 'static>(d: &Deferred<T>) {
    if d.has_result() && d.paused() == 0 {
        panic!("no result expected on {d:?}, found a result");
    }
}
