//! Endpoints (Twisted's `twisted.internet.endpoints`): where to listen or connect, as a
//! value that can be written as a string (`tcp:8080:interface=127.0.0.1`,
//! `unix:/run/app.sock`, `tcp:host=example.com:port=80`), so a program serves or connects
//! wherever its configuration says without knowing the transport.
//!
//! - [`ServerEndpoint::listen`] gives a Deferred of the [`ListeningPort`]; a port that
//!   cannot be listened on gives an already failed Deferred.
//! - [`ClientEndpoint::connect`] gives a Deferred of the protocol's [`Handle`], fired after
//!   its `connection_made`; cancelling it stops the attempt with
//!   [`ConnectingCancelledError`].
//! - [`server_from_string`] and [`client_from_string`] read descriptions; see the
//!   [`strings`] module for the forms, the escaping and the case rules (`ssl:` servers,
//!   `tls:` and `ssl:` clients included).
//! - [`TlsServerEndpoint`] and [`wrap_client_tls`] put TLS on top of any other endpoint; a
//!   TLS client's `connect` fires once the server is verified, or fails naming why not.
//! - [`HostnameEndpoint`] races a name's addresses (RFC 8305, Happy Eyeballs).
//! - [`SystemdServerEndpoint`] listens on a socket inherited by socket activation.
//!
//! ```
//! use twistor::endpoints::{client_from_string, server_from_string, ClientEndpoint, ServerEndpoint};
//! use twistor::prelude::*;
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) { cx.transport().write(data) }
//! }
//! let reactor = Reactor::new().unwrap();
//! let server = server_from_string("tcp:0:interface=127.0.0.1").unwrap();
//! let port = twistor::testing::success_result_of(&server.listen(&reactor, for_protocol(|| Echo)));
//! let client = client_from_string(&format!("tcp:127.0.0.1:{}", port.port())).unwrap();
//! let connected = client.connect(&reactor, for_protocol(|| Echo));
//! while !connected.has_result() {
//!     reactor.iterate(std::time::Duration::from_millis(10)).unwrap();
//! }
//! assert!(twistor::testing::success_result_of(&connected).alive());
//! ```
//!
//! [`ListeningPort`]: crate::transport::listener::ListeningPort
//! [`Handle`]: crate::protocol::Handle

mod client;
mod description;
mod error;
mod hostname;
mod server;
pub mod strings;
mod systemd;
mod tls;

pub use client::{
    ClientEndpoint, ConnectingFactory, ConnectingProtocol, EndpointReactor, ProtocolOf,
    Tcp4ClientEndpoint, UnixClientEndpoint, connect_protocol,
};
pub use description::{Description, quote_string_argument};
pub use error::{AlreadyListened, ConnectingCancelledError, EndpointError, ErrorKind, NoProtocol};
pub use hostname::{HostnameEndpoint, HostnameOptions, NameResolver, Tcp6ClientEndpoint};
pub use server::{ServerEndpoint, Tcp4ServerEndpoint, Tcp6ServerEndpoint, UnixServerEndpoint};
pub use strings::{
    AnyClientEndpoint, AnyServerEndpoint, ClientDescription, ServerDescription,
    TlsClientDescription, TlsServerDescription, client_from_string, parse_client, parse_server,
    server_from_string,
};
pub use systemd::{ListenFds, SocketDomain, SocketSelector, SystemdError, SystemdServerEndpoint};
pub use tls::{TlsClientEndpoint, TlsServerEndpoint, wrap_client_tls};
