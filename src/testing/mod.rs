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
//!   [`ReactorTcp`](crate::transport::tcp::ReactorTcp) trait) and `listen_unix`/`connect_unix`
//!   (through [`ReactorUnix`](crate::transport::unix::ReactorUnix)), and tells time with a
//!   `Clock`.
//!
//! Time in these tests comes from a [`Clock`](crate::Clock).

mod assertions;
mod iosim;
mod memory_reactor;
mod memory_spawn;
mod string_transport;

pub use assertions::{
    ErrorType, assert_no_result, failure_result_of, failure_result_of_types, success_result_of,
};
pub use iosim::{AccumulatingProtocol, IOPump, connected_server_and_client};
pub use memory_reactor::{ConnectCall, ListenCall, MemoryReactor, UnixConnectCall, UnixListenCall};
pub use string_transport::{ReadState, StringTransport};
