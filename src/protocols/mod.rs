//! Ready-made protocols (Twisted's `twisted.protocols`).
//!
//! * [`basic`]: framing. Lines ([`LineReceiver`](basic::LineReceiver),
//!   [`LineOnlyReceiver`](basic::LineOnlyReceiver)), netstrings
//!   ([`NetstringReceiver`](basic::NetstringReceiver)) and length-prefixed strings
//!   ([`Int8StringReceiver`](basic::Int8StringReceiver),
//!   [`Int16StringReceiver`](basic::Int16StringReceiver),
//!   [`Int32StringReceiver`](basic::Int32StringReceiver)).
//! * [`policies`]: idle timeouts ([`IdleTimeout`](policies::IdleTimeout)), wrapping factories,
//!   [`TimeoutFactory`](policies::TimeoutFactory), [`ThrottlingFactory`](policies::ThrottlingFactory),
//!   [`LimitTotalConnectionsFactory`](policies::LimitTotalConnectionsFactory),
//!   [`TrafficLoggingFactory`](policies::TrafficLoggingFactory).
//! * [`ProtocolContext`]: what every callback context offers, so that policies work with any
//!   protocol.
//! * [`portforward`]: a TCP port forwarder with back-pressure both ways.
//! * [`reverse`]: the paper's line reverser server and `RemoteReverser` client.
//! * [`wire`]: the small Internet services: echo, discard, chargen, quote of the day, daytime.
//!
//! ```
//! use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
//! use twistor::testing::StringTransport;
//!
//! struct Echo;
//! impl LineHandler for Echo {
//!     fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
//!         cx.send_line(line);
//!     }
//! }
//! let st = StringTransport::new();
//! st.connect(LineReceiver::new(Echo));
//! st.deliver(b"hello\r\nwor");
//! st.deliver(b"ld\r\n");
//! assert_eq!(st.value(), b"hello\r\nworld\r\n");
//! ```

pub mod basic;
mod context;
pub mod policies;
pub mod portforward;
pub mod reverse;
pub mod wire;

pub use context::{ProtocolContext, Reach};
