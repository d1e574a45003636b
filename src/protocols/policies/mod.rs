//! Policies around protocols (Twisted's `protocols.policies`): idle timeouts, wrapping
//! factories, throttling, connection limits, traffic logging.
//!
//! - [`IdleTimeout`] is `TimeoutMixin`: a protocol, or a framing receiver's handler, owns one
//!   and calls `reset_timeout` on traffic; when it expires, the owner's
//!   [`TimeoutProtocol::timeout_connection`] runs (default: `lose_connection`). It works with
//!   any callback context ([`ProtocolContext`](crate::protocols::ProtocolContext)).
//! - [`WrappingFactory`] builds a [`ProtocolWrapper`] around each protocol of a wrapped factory:
//!   the wrapper is the wrapped protocol's transport, so it sees every byte both ways and can
//!   count, delay or cut them. [`WrapperPolicy`] is what a wrapping factory decides. Any
//!   factory can be wrapped, framing receivers included, and a wrapped client factory is
//!   still a client factory.
//! - [`TimeoutFactory`]: close after a period with no reads or writes.
//! - [`ThrottlingFactory`]: a maximum number of connections and read/write rate limits.
//! - [`LimitTotalConnectionsFactory`]: at most so many connections; past it, refuse or serve
//!   an overflow protocol.
//! - [`TrafficLoggingFactory`]: every connection's traffic, through `log` or to a writer.
//!
//! Periods are finite seconds, `>= 0`; a negative, NaN or infinite period is refused with
//! [`BadDuration`](crate::task::BadDuration) rather than read as "no timeout".

mod limit;
mod logging;
mod throttling;
mod timeout;
mod wrapping;

pub use limit::{LimitTotalConnectionsFactory, NoOverflow, Refused};
pub use logging::{
    TrafficLog, TrafficLoggingFactory, traffic_logging_factory, traffic_logging_factory_to,
};
pub use throttling::{ThrottleOptions, ThrottlePolicy, ThrottlingFactory, throttling_factory};
pub use timeout::{IdlePolicy, IdleTimeout, TimeoutFactory, TimeoutProtocol, timeout_factory};
pub use wrapping::{ProtocolWrapper, WrapperPolicy, WrapperTransport, WrappingFactory};
