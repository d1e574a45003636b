//! twisted.web: HTTP/1.1 for servers and clients.
//!
//! This module holds the pieces the server and the client share: [`Headers`] (an ordered,
//! case-insensitive header map whose values cannot carry a line break onto the wire),
//! [`date`] (HTTP dates), [`status`] (codes and reason phrases) and [`chunked`] (the
//! chunked transfer coding, strict where leniency let requests be smuggled).
//!
//! The server: [`Site`] (a factory serving a [`resource`] tree) builds one
//! [`http::HttpChannel`] per connection, which hands each [`Request`] to the site.

pub mod chunked;
pub mod client;
pub mod date;
pub mod encoding;
pub mod headers;
pub mod http;
pub mod proxy;
pub mod request;
pub mod resource;
pub mod session;
pub mod site;
pub mod static_files;
pub mod status;
pub mod vhost;

pub use headers::{Headers, InvalidHeaderName};
pub use http::HttpLimits;
pub use request::Request;
pub use site::Site;
