//! The names most programs use, in one import.
//!
//! ```
//! use twistor::prelude::*;
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
//!         cx.transport().write(data);
//!     }
//! }
//! let reactor = Reactor::new().unwrap();
//! let port = listen_tcp(&reactor, 0, for_protocol(|| Echo)).unwrap();
//! assert_ne!(port.port(), 0);
//! ```

pub use crate::defer::Deferred;
pub use crate::endpoints::{
    ClientEndpoint, ServerEndpoint, client_from_string, server_from_string,
};
pub use crate::failure::Failure;
pub use crate::protocol::{ClientFactory, Context, Factory, Handle, Protocol, for_protocol};
pub use crate::reactor::Reactor;
pub use crate::task::Clock;
pub use crate::transport::connector::Connector;
pub use crate::transport::tcp::{
    ConnectOptions, ListenOptions, connect_protocol, connect_tcp, listen_tcp,
};
pub use crate::transport::{Address, Transport};
