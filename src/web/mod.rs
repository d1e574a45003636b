//! twisted.web: HTTP/1.1 for servers and clients.
//!
//! This module holds the pieces the server and the client share: [`Headers`] (an ordered,
//! case-insensitive header map whose values cannot carry a line break onto the wire),
//! [`date`] (HTTP dates), [`status`] (codes and reason phrases) and [`chunked`] (the
//! chunked transfer coding, strict where leniency let requests be smuggled).

pub mod chunked;
pub mod client;
pub mod date;
pub mod headers;
pub mod status;

pub use headers::{Headers, InvalidHeaderName};
